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

__all__ = [
    "REPO",
    "bit_exactness_table",
    "cli_reference",
    "grid_kd_table",
    "image",
    "inference_decisions_table",
    "inference_throughput_table",
    "multi_rates_table",
    "multi_study_table",
    "multi_targets_table",
    "muon_count_table",
    "rates_row",
    "separation_table",
    "shipped_table",
    "teachers_table",
    "thresholds_table",
]

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


def _per_mille(value: float) -> str:
    per_mille = value * 1e3
    return f"{per_mille:.{3 if per_mille < 0.1 else 2}f} ‰"


def _fired(entry: dict) -> str:
    """``k / n = rate (UL ...)`` of a fraction in a ``*_targets.json``."""
    fired = f"{entry['k']:,} / {entry['n']:,}"
    if entry["k"]:
        fired += f" = {_per_mille(entry['value'])}"
    return f"{fired} (UL {_per_mille(entry['upper_limit_95'])})"


def _efficiency(entry: dict) -> str:
    return f"{entry['value']:.4f} ({entry['n']:,})"


# The multi network's targets: (row label, key in *_targets.json, cell format, target as
# written, whether a sample meets it).
MULTI_TARGETS = [
    ("one-muon crossings, pT ≥ 15 GeV: `l0_pt10`", "one_muon_plateau", _efficiency, "≥ 0.97", lambda e: e["value"] >= 0.97),
    ("background crossings: `l0_pt10` fires", "background_single_fires", _fired, "UL < 2 ‰", lambda e: e["upper_limit_95"] < 2e-3),
    ("exactly two muons, both ≥ 15 GeV: `l0_2mu_pt10`", "two_muon_efficiency", _efficiency, "≥ 0.80", lambda e: e["value"] >= 0.80),
    ("one-muon crossings: `l0_2mu_pt10` fires", "one_muon_double_fires", _fired, "≤ 1 %", lambda e: e["value"] <= 0.01),
    ("background crossings: `l0_2mu_pt10` fires", "background_double_fires", _fired, "≤ 0.5 ‰", lambda e: e["value"] <= 5e-4),
    ("one-muon crossings, pT ≥ 10 GeV: `l0_charge == true_charge`", "charge", _efficiency, "≥ 0.97", lambda e: e["value"] >= 0.97),
]


def multi_targets_table(default: str, hard: str) -> str:
    """Markdown: the multi student's target figures on its two test samples, from the
    ``*_targets.json`` that docs/results/multi_student/commands.sh writes."""
    samples = [json.loads((REPO / path).read_text(encoding="utf-8")) for path in (default, hard)]
    lines = [
        "| 10 GeV | default noise | hard background | target | met: default / hard |",
        "|---|---|---|---|---|",
    ]
    for label, key, cell, target, met in MULTI_TARGETS:
        verdicts = " / ".join("yes" if met(s[key]) else "**no**" for s in samples)
        lines.append(f"| {label} | {cell(samples[0][key])} | {cell(samples[1][key])} | {target} | {verdicts} |")
    return "\n".join(lines)


def _read(path: str) -> dict:
    return json.loads((REPO / path).read_text(encoding="utf-8"))


NETWORK = {"teacher": "teacher", "student_float": "float student", "student_q4": "4-bit student"}


def inference_throughput_table(path: str, batches=(1, 256, 4096, 65536)) -> str:
    """Markdown: events/s (latency per call) of every swept backend at ``batches``, and the
    single-point rows (FPGA estimate, quoted figures, what did not run), from a ``bench.json``
    that ``l0emu bench inference`` wrote."""
    from l0emu.validation.benchmarks.bench_inference import _fmt_latency, _fmt_rate

    timing = _read(path)["timing"]
    sweep = {(p["model"], p["backend"], p["batch"]): p for p in timing if p.get("sweep")}
    lines = ["| events/s (latency per call) | " + " | ".join(f"batch {b:,}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    for model, backend in dict.fromkeys((m, b) for m, b, _ in sweep):
        cells = []
        for batch in batches:
            point = sweep.get((model, backend, batch))
            ok = point is not None and "skipped" not in point
            cells.append(f"{_fmt_rate(point['events_per_s'])} ({_fmt_latency(point['latency_s'])})" if ok else "–")
        lines.append(f"| {NETWORK[model]}, {backend} | " + " | ".join(cells) + " |")
    for p in timing:
        if p.get("sweep"):
            continue
        if "events_per_s" in p:
            figure = f"{_fmt_rate(p['events_per_s'])} ({_fmt_latency(p['latency_s'])}, batch {p['batch']:,})"
        else:
            # why it did not run, as the benchmark wrote it; not the parenthesis after it, which
            # quotes a build time measured once on another network
            figure = p["note"].split(" (", 1)[0]
        lines.append(f"| {NETWORK[p['model']]}, {p['backend']} | {figure} |" + " |" * (len(batches) - 1))
    return "\n".join(lines)


def inference_decisions_table(path: str) -> str:
    """Markdown: each backend's decisions at 10 GeV against the emulator of the same network,
    from a ``bench.json`` that ``l0emu bench inference`` wrote."""
    lines = [
        "| network | backend | events | plateau eff | 50 % point | fake rate | decisions differing from the emulator |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in _read(path)["physics"]:
        differ = "reference"
        if "differing_decisions" in e:
            differ = f"{e['differing_decisions']:,} ({100 * e['differing_fraction']:.3g} %)"
        lines.append(
            f"| {NETWORK[e['model']]} | {e['backend']} | {e['events']:,} | {e['plateau_efficiency']:.4f} "
            f"| {e['half_efficiency_gev']:.2f} GeV | {e['background_fired']:,} / {e['background_events']:,} | {differ} |"
        )
    return "\n".join(lines)


def bit_exactness_table(path: str) -> str:
    """Markdown: the shipped networks against the C-simulation, from the ``check.json`` that
    docs/explanations/bit_exactness/check.py writes."""
    lines = [
        "| network | inputs | compared | with any differing bit | what `l0emu validate` runs |",
        "|---|---|---|---|---|",
    ]
    for c in _read(path)["checks"]:
        compared = f"{c['inputs_compared']:,}" + (f" (of {c['events']:,} events)" if "events" in c and c["events"] != c["inputs_compared"] else "")
        lines.append(f"| {c['network']} | {c['inputs']} | {compared} | {c['differing']:,} | `{c['command']}` |")
    return "\n".join(lines)


def _rate_khz(value) -> str:
    return "n/a" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")


def multi_rates_table(default: str, hard: str) -> str:
    """Markdown: the rows of two ``l0_rates.json`` (default noise, hard background) whose
    plateau the samples reach, as ``l0emu run --model multi`` wrote them."""
    tables = [{row["branch"]: row for row in json.loads((REPO / p).read_text(encoding="utf-8"))["rows"]} for p in (default, hard)]
    lines = [
        "| item | plateau, default | 50 % point | fake UL | L0 rate [kHz] | plateau, hard | fake UL | L0 rate [kHz] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for branch, d in tables[0].items():
        h = tables[1][branch]
        if d["plateau_efficiency"] is None:
            continue  # the threshold's plateau lies beyond the sample's muons: no figure
        lines.append(
            f"| `{branch}` | {d['plateau_efficiency']:.4f} | {_fmt(d['half_efficiency_gev'], 2)} GeV "
            f"| {_per_mille(d['fake_rate_ul95'])} | {_rate_khz(d['l0_rate_khz'])} "
            f"| {h['plateau_efficiency']:.4f} | {_per_mille(h['fake_rate_ul95'])} | {_rate_khz(h['l0_rate_khz'])} |"
        )
    return "\n".join(lines)


def muon_count_table(path: str) -> str:
    """Markdown: true muons above 3 GeV (rows) against ``l0_n_mu`` (columns), from the
    ``multi.muon_count`` of an ``l0_rates.json``."""
    counts = json.loads((REPO / path).read_text(encoding="utf-8"))["multi"]["muon_count"]["events"]
    lines = ["| true \\ found | 0 | 1 | 2 | 3 |", "|---|---|---|---|---|"]
    for true, row in enumerate(counts):
        label = f"≥ {true}" if true == len(counts) - 1 else str(true)
        lines.append(f"| {label} | " + " | ".join(f"{n:,}" for n in row) + " |")
    return "\n".join(lines)


def thresholds_table(default: str, hard: str) -> str:
    """Markdown: every threshold of two ``l0_rates.json`` (default and hard scenario, the
    same network), as ``l0emu run`` wrote them."""
    tables = [json.loads((REPO / p).read_text(encoding="utf-8"))["rows"] for p in (default, hard)]
    lines = [
        "| T [GeV] | default: plateau | 50 % point | fake rate | L0 rate | hard: plateau | 50 % point | fake rate (UL) | L0 rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d, h in zip(*tables, strict=True):
        fake = [f"{r['background_fired']:,} / {r['background_events']:,}" if not r["background_fired"] else _per_mille(r["fake_rate"]) for r in (d, h)]
        lines.append(
            f"| {d['threshold_gev']:g} | {d['plateau_efficiency']:.4f} | {d['half_efficiency_gev']:.2f} GeV | {fake[0]} "
            f"| {d['l0_rate_khz']:.2f} kHz | {h['plateau_efficiency']:.4f} | {h['half_efficiency_gev']:.2f} GeV "
            f"| {fake[1]} ({_per_mille(h['fake_rate_ul95'])}) | {h['l0_rate_khz']:.2f} kHz |"
        )
    return "\n".join(lines)


def _share(entry: dict) -> str:
    return f"{entry['k']:,} / {entry['n']:,} = {entry['value']:.4f}"


# (row label, group, key, cell format) of the multi study's table, from multi_study.json
MULTI_STUDY_ROWS = [
    ("two muons, both pT ≥ 15 GeV (exactly 2 muons): ≥ 2 candidates fire", "two_muon", "two_fire", _share),
    ("— same, each muon inside its own firing window", "two_muon", "two_fire_matched", _share),
    ("≥ 2 muons with the two leading ≥ 15 GeV (2 and 3 muons): ≥ 2 fire", "two_muon", "two_fire_ge2_muons", _share),
    ("two muons: a single window holds both", "two_muon", "single_window_holds_both", _share),
    ("two muons: the single window fires (one muon found)", "two_muon", "single_window_fires", _share),
    ("one muon: a second candidate fires", "one_muon", "second_candidate_fires", _fired),
    ("one muon: ≥ 2 candidates fire", "one_muon", "two_fire", _fired),
    ("one muon, pT ≥ 15 GeV: plateau of the single window", "one_muon", "plateau_single_window", _share),
    ("one muon, pT ≥ 15 GeV: plateau of any candidate", "one_muon", "plateau_any_candidate", _share),
    ("no signal muon: ≥ 2 candidates fire", "background", "two_fire", _fired),
    ("no signal muon: the single window fires", "background", "single_window_fires", _fired),
    ("no signal muon: any candidate fires", "background", "any_fires", _fired),
]


def multi_study_table(path: str, min_hits: int = 6) -> str:
    """Markdown: what ``l0emu multi-study`` measured for one ``min_hits`` (a single-muon
    network on each candidate window, 10 GeV), default noise and hard background."""
    study = json.loads((REPO / path).read_text(encoding="utf-8"))["by_min_hits"][str(min_hits)]
    lines = ["| 10 GeV | default noise | hard background |", "|---|---|---|"]
    for label, group, key, cell in MULTI_STUDY_ROWS:
        lines.append(f"| {label} | {cell(study['default'][group][key])} | {cell(study['hard'][group][key])} |")
    return "\n".join(lines)


def separation_table(rates: str, study: str) -> str:
    """Markdown: two-muon efficiency at 10 GeV per separation bin, the multi network (its
    ``l0_rates.json``, ``l0_2mu_pt10``) against a single-muon network on the same sector logic
    (``multi_study.json``, min_hits 6), default noise."""
    multi = json.loads((REPO / rates).read_text(encoding="utf-8"))["multi"]["two_muon_separation"]
    single = json.loads((REPO / study).read_text(encoding="utf-8"))["by_min_hits"]["6"]["default"]["two_muon"]["by_separation"]
    edges = multi["edges_strips"]
    if edges != single["edges"]:
        msg = f"{rates} and {study} bin the separation differently"
        raise ValueError(msg)
    bins = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    lines = ["| separation [strips] | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
    for label, values in (("shipped multi student", multi["by_branch"]["l0_2mu_pt10"]["value"]),
                          ("shipped single-muon student, same sector logic", single["two_fire"]["value"])):
        lines.append(f"| {label} | " + " | ".join(_fmt(v, 3) for v in values) + " |")
    return "\n".join(lines)
