"""Page parts generated when the site is built (called from executed code blocks).

The CLI reference comes from the verbs' own parsers, the results tables from the result
files committed in docs/ and l0emu/data/, so that a page cannot drift from either.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
from pathlib import Path

__all__ = ["REPO", "cli_reference", "grid_kd_table", "image", "rates_row", "shipped_table", "teachers_table"]

REPO = Path(__file__).resolve().parents[2]


def _help(prog: str, module_name: str) -> str:
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=prog, description=module.DESCRIPTION)
    module.add_arguments(parser)
    return parser.format_help()


def cli_reference() -> str:
    """Markdown: every verb's and benchmark's ``--help``, from its ``add_arguments``."""
    from l0emu.cli import dispatch

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page has a fixed width
    parts = []
    verbs = [(f"l0emu {name}", module) for name, module in dispatch.VERBS.items()]
    verbs += [(f"l0emu bench {name}", module) for name, module in dispatch.benchmarks().items()]
    for prog, module_name in verbs:
        parts.append(f"## `{prog}`\n\n{dispatch.description(module_name)}\n\n```text\n{_help(prog, module_name)}```\n")
    return "\n".join(parts)


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def grid_kd_table(path: str) -> str:
    """Markdown: the grid's medians per bit width, no KD -> KD, from ``grid.json``'s
    ``kd_effect`` and ``dead_counts`` (what ``l0emu grid evaluate`` writes)."""
    grid = json.loads((REPO / path).read_text(encoding="utf-8"))
    effect = {s: {row["bits"]: row for row in rows} for s, rows in grid["kd_effect"].items()}
    dead = {row["bits"]: row for row in grid["dead_counts"]}
    lines = [
        "| bits | default: plateau no KD → KD | default: fake UL [‰] | hard: plateau no KD → KD "
        "| hard: fake UL [‰] no KD → KD | dead no KD / KD |",
        "|---|---|---|---|---|---|",
    ]
    for bits, d in dead.items():
        de, ha = effect["default"][bits], effect["hard"][bits]
        lines.append(
            f"| {'float' if bits is None else bits} "
            f"| {_fmt(de['plateau_nokd'], 3)} → {_fmt(de['plateau_kd'], 3)} "
            f"| {_fmt(de['fake_ul_nokd'] * 1e3, 2)} → {_fmt(de['fake_ul_kd'] * 1e3, 2)} "
            f"| {_fmt(ha['plateau_nokd'], 3)} → {_fmt(ha['plateau_kd'], 3)} "
            f"| {_fmt(ha['fake_ul_nokd'] * 1e3, 2)} → {_fmt(ha['fake_ul_kd'] * 1e3, 2)} "
            f"| {d['nokd']['dead']}/{d['nokd']['seeds']} / {d['kd']['dead']}/{d['kd']['seeds']} |"
        )
    return "\n".join(lines)


def rates_row(path: str, threshold: float) -> dict:
    """The row of threshold ``threshold`` in a ``*_rates.json`` that ``l0emu run`` wrote."""
    table = json.loads((REPO / path).read_text(encoding="utf-8"))
    for row in table["rows"]:
        if row.get("threshold_gev") == threshold:
            return row
    msg = f"{path}: no row for threshold {threshold} GeV"
    raise KeyError(msg)


def image(path: str, alt: str) -> str:
    """An ``<img>`` holding a repository PNG inline: files outside docs/ (the shipped networks'
    plots) are not pages of the site, but their figures belong on it."""
    data = base64.b64encode((REPO / path).read_bytes()).decode()
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def shipped_table(files: dict) -> str:
    """Markdown: the 10 GeV row of each scenario's rate file (``{scenario: path}``), as the
    README's table of the shipped student shows it."""
    lines = [
        "| scenario | plateau efficiency (true pT ≥ 15 GeV) | 50 % point | fake rate (background fired) | fake rate, 95 % UL |",
        "|---|---|---|---|---|",
    ]
    for scenario, path in files.items():
        row = rates_row(path, 10.0)
        fired = f"{row['background_fired']:,} / {row['background_events']:,}"
        if row["background_fired"]:
            fired += f" = {row['fake_rate'] * 1e3:.2f} ‰"
        ul = row["fake_rate_ul95"] * 1e3
        lines.append(
            f"| {scenario} | {row['plateau_efficiency']:.4f} ({row['plateau_events']:,} muons) "
            f"| {row['half_efficiency_gev']:.2f} GeV | {fired} | {ul:.{3 if ul < 0.01 else 2}f} ‰ |"
        )
    return "\n".join(lines)


def teachers_table(path: str) -> str:
    """Markdown: each teacher's parameters, plateau and fake rate per scenario, from the
    ``rows`` of a ``grid.json`` holding only teachers."""
    grid = json.loads((REPO / path).read_text(encoding="utf-8"))
    label = {"teacher 9x384": "9×384 (whole sector)", "teacher 9x16": "9×16 (fragment)"}
    rows = {(row["model"], row["scenario"]): row for row in grid["rows"]}
    lines = [
        "| teacher | parameters | default: plateau, fake UL | hard: plateau, fake (UL) |",
        "|---|---|---|---|",
    ]
    for model in dict.fromkeys(model for model, _ in rows):
        default, hard = rows[model, "default"], rows[model, "hard"]
        d_fake, h_fake = default["fake_rate"], hard["fake_rate"]
        lines.append(
            f"| {label.get(model, model)} | {default['parameters']:,} "
            f"| {default['plateau']['efficiency']:.4f}, {d_fake['fired']}/{d_fake['total']:,} ({d_fake['upper'] * 1e3:.3f} ‰) "
            f"| {hard['plateau']['efficiency']:.4f}, {h_fake['rate'] * 1e3:.2f} ‰ ({h_fake['upper'] * 1e3:.2f} ‰) |"
        )
    return "\n".join(lines)
