"""The distillation study (issue 12): which lever makes KD help a quantized student.

A study directory holds networks trained by ``l0emu train``, one directory per (recipe, seed),
named ``<recipe>_s<seed>`` (e.g. ``student_q4_kd_s0``, ``student_q4_fromfloat_s2``), beside the
teachers they distil from. :func:`run_study` evaluates them all with the grid's evaluation
(:func:`l0emu.validation.grid.evaluate_grid`: firmware-exact for quantized networks, Keras for
float ones, refusing samples that trained or early-stopped any of them) and summarises each
recipe by the median and spread over its seeds (:func:`l0emu.firmware.protocol.median_and_spread`)::

    l0emu grid kd-study --models-dir STUDY/models --events CHOOSE_default.root \\
        --events-hard CHOOSE_hard.root -o docs/kd_study

The samples must be *validation* samples (docs/protocol.md): the study chooses between recipes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from l0emu.util.atomic import atomic_path
from l0emu.firmware.protocol import MIN_TRAINING_SEEDS, median_and_spread
from l0emu.results.metrics import DEFAULT_THRESHOLD, plateau_min_pt
from l0emu.util.serialize import jsonable

__all__ = ["recipe_of", "summarize", "markdown", "run_study"]

_SEED_SUFFIX = re.compile(r"_s(\d+)$")
# (row value, column title, formatter) of each summarised metric
_METRICS = {
    "plateau": (lambda r: r["plateau"]["efficiency"], "plateau", lambda v: f"{v:.4f}"),
    "fake_ul": (lambda r: r["fake_rate"]["upper"], "fake 95 % UL [‰]", lambda v: f"{1000 * v:.2f}"),
    "half_pt": (lambda r: r["half_efficiency_pt"], "50 % point [GeV]", lambda v: f"{v:.2f}"),
    "resolution": (lambda r: r["resolution"]["overall_rms"], "resolution RMS", lambda v: f"{v:.3f}"),
}


def recipe_of(name: str) -> str:
    """``student_q4_kd_s2`` -> ``student_q4_kd``: the network's directory name without its seed."""
    return _SEED_SUFFIX.sub("", name)


def summarize(rows) -> list[dict]:
    """Per (scenario, recipe): seeds, dead networks, and median/low/high of every metric."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["scenario"], recipe_of(row["name"])), []).append(row)
    summary = []
    for (scenario, recipe), group in groups.items():
        entry = {
            "scenario": scenario, "recipe": recipe, "model": group[0]["model"], "bits": group[0]["bits"],
            "evaluated_by": group[0].get("evaluated_by"), "seeds": sorted(r["seed"] for r in group),
            "dead": sum(bool(r["dead"]) for r in group),
        }  # fmt: skip
        for key, (value, _, _) in _METRICS.items():
            entry[key] = median_and_spread([value(r) for r in group])
        summary.append(entry)
    return summary


def _cell(spread, fmt) -> str:
    if spread["n"] == 0:
        return "n/a"
    if spread["n"] == 1:
        return fmt(spread["median"])
    return f"{fmt(spread['median'])} [{fmt(spread['low'])}, {fmt(spread['high'])}]"


def markdown(result, summary) -> str:
    threshold = result["threshold_gev"]
    lines = [
        "# Distillation study",
        "",
        f"Networks from `{result['models_dir']}`; threshold {threshold:g} GeV, plateau from {plateau_min_pt(threshold):g} GeV. "
        "Per recipe: median [lowest, highest] over its training seeds. Quantized networks firmware-exact "
        "(hls4ml conversion through the l0emu emulator), float networks with Keras.",
        "",
    ]
    lines += [f"- **{s['scenario']}**: `{s['path']}` ({s['generator']}): {s['n_events']} events, {s['n_background']} background" for s in result["samples"]]
    titles = " | ".join(title for _, title, _ in _METRICS.values())
    for scenario in dict.fromkeys(e["scenario"] for e in summary):
        lines += ["", f"## Scenario `{scenario}`", "", f"| recipe | bits | evaluated by | seeds | dead | {titles} |", "|---" * (5 + len(_METRICS)) + "|"]
        for e in (e for e in summary if e["scenario"] == scenario):
            cells = " | ".join(_cell(e[key], fmt) for key, (_, _, fmt) in _METRICS.items())
            bits = "float" if e["bits"] is None else e["bits"]
            by = "firmware-exact" if e["evaluated_by"] and e["evaluated_by"].startswith("firmware") else "Keras"
            lines.append(f"| `{e['recipe']}` | {bits} | {by} | {','.join(map(str, e['seeds']))} | {e['dead']} | {cells} |")
    few = sorted({e["recipe"] for e in summary if len(e["seeds"]) < MIN_TRAINING_SEEDS and e["model"] == "student"})
    if few:
        lines += ["", f"Fewer than {MIN_TRAINING_SEEDS} seeds (the protocol's minimum for a recipe's figure): " + ", ".join(f"`{r}`" for r in few) + "."]
    return "\n".join(lines) + "\n"


def run_study(models_dir, samples: dict, output_dir, threshold: float = DEFAULT_THRESHOLD) -> list[dict]:
    """Evaluate, summarise and write ``kd_study.md`` / ``kd_study.json`` into ``output_dir``."""
    from . import grid  # TensorFlow and hls4ml: only when the study runs

    result = grid.evaluate_grid(models_dir, samples, threshold)
    summary = summarize(result["rows"])
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    document = json.dumps(jsonable({**result, "summary": summary}), indent=1, allow_nan=False)
    for name, text in (("kd_study.md", markdown(result, summary)), ("kd_study.json", document + "\n")):
        with atomic_path(output_dir / name, final=True) as tmp:
            tmp.write_text(text)
    return summary
