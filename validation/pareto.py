"""Physics versus firmware cost of trained students: the study of docs/pareto/.

Every network of a models directory (``l0emu train`` outputs) is scored on a default- and a
hard-scenario *validation* sample (docs/protocol.md; refused when it repeats a training or
validation sample of any network, as ``l0emu grid evaluate`` refuses it) at the 10 GeV
threshold: plateau efficiency, fake rate and its 95 % upper limit
(:func:`l0emu.results.metrics.physics_summary`). Its cost is da4ml's estimate (LUTs, FFs,
pipeline stages at a 2 ns clock, latency cutoff 5; not synthesis):

- a QKeras network is converted with hls4ml (the grid's settings, the shipped student's input
  type), scored with the bit-exact emulator and estimated from its spec (:mod:`firmware.rtl`);
- an HGQ2 network (``model.keras``) is converted the same way (hls4ml's bit-exact path),
  scored with the emulator and estimated from its spec, as for QKeras: the logic ``l0emu rtl``
  builds and proves. Beside it, da4ml's estimate of the logic HGQ2's own firmware flow traces
  from the model (``model_trace_estimate``), whose Keras 3 predict is checked against that
  logic on the default sample. Students whose ReLUs are Keras ``ReLU`` layers (``l0emu
  train`` made them so before), which hls4ml 1.3.0 mis-builds and ``l0emu convert`` refuses,
  are scored with Keras 3 predict and estimated from that traced logic: HGQ2 quantizes every
  weight, bias and layer input, so Keras computes what the logic computes;
- a float network has no firmware type: Keras predict, no cost (a reference only).

Usage (docs/pareto/study.sh)::

    python -m l0emu.validation.pareto evaluate MODELS --default DEFAULT.root --hard HARD.root --study study.sh -o docs/pareto
    python -m l0emu.validation.pareto report docs/pareto      # table and plot again from pareto.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from l0emu.errors import InputFileError
from l0emu.results.metrics import DEFAULT_THRESHOLD, physics_summary
from l0emu.util.atomic import atomic_path
from l0emu.util.serialize import jsonable

__all__ = ["LOGIC_CHECK_EVENTS", "logic_check", "TARGETS", "LUT_BUDGET", "LATENCY_BUDGET_NS", "FORMAT", "evaluate", "meets_targets", "study_commands", "write_report", "main"]

FORMAT = "l0emu-pareto/1"
# the issue's targets for the default student (10 GeV threshold): plateau at least, fake 95 % UL below
TARGETS = {"default": {"plateau": 0.99, "fake_ul": 0.2e-3}, "hard": {"plateau": 0.96, "fake_ul": 1.5e-3}}
LUT_BUDGET = 30_000  # da4ml's estimate
LATENCY_BUDGET_NS = 84.0
LOGIC_CHECK_EVENTS = 20_000
HGQ2_EXACT = "Keras 3 predict (HGQ2: fixed point throughout, what the firmware computes)"


def _kind(model) -> str:
    config = model.config
    if config.get("quantizer") == "hgq2":
        return "hgq2"
    return "float" if config["nbits"] is None else "qkeras"


def logic_check(network, comb, model, path, n_events: int = LOGIC_CHECK_EVENTS) -> dict:
    """Keras 3 predict of an HGQ2 network against da4ml's interpretation of the logic traced from
    it (what the Verilog computes), on the first ``n_events`` events of ``path``."""
    from l0emu.trigger.events import iterate_events
    from l0emu.trigger.images import fragment_hits, pooled_to_float

    chunk = next(iterate_events([str(path)], step_size=n_events))
    pixels = pooled_to_float(fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, model.stride, model.layers)[1])
    keras_out = network.predict(pixels, batch_size=4096, verbose=0)
    logic_out = np.asarray(comb.predict(pixels.reshape(len(pixels), -1)), dtype=keras_out.dtype).reshape(keras_out.shape)
    return {"events": int(len(pixels)), "sample": Path(path).name, "differing_events": int(np.sum(np.any(keras_out != logic_out, axis=1)))}


def _network_and_cost(model, work_dir, check_path):
    """``(network for predict_sample, da4ml estimate or None, how it was scored)``."""
    from l0emu.firmware import rtl

    kind = _kind(model)
    if kind == "hgq2":
        from l0emu.firmware.hgq2_student import load_hgq2_model, trace_firmware

        network = load_hgq2_model(model.path)
        comb = trace_firmware(network)
        check = {"keras_vs_traced_logic": logic_check(network, comb, model, check_path)}
        model_cost = rtl.estimate(comb)
        if any(type(layer).__name__ == "ReLU" for layer in network.layers):
            return network, {**model_cost, **check}, HGQ2_EXACT
        emulator, spec_cost, scored_by = _firmware(model, work_dir)
        return emulator, {**spec_cost, **check, "model_trace_estimate": model_cost}, scored_by
    if kind == "float":
        from l0emu.firmware.models import load_model

        from .grid import KERAS

        return load_model(model.path), None, KERAS
    return _firmware(model, work_dir)


def _firmware(model, work_dir):
    """Converted with hls4ml as the grid converts: ``(emulator, da4ml estimate of its spec, how it was scored)``."""
    from l0emu.firmware import rtl

    from .grid import FIRMWARE_EXACT, firmware_emulator

    emulator = firmware_emulator(model, work_dir)
    return emulator, rtl.estimate(rtl.trace_spec(emulator.spec).comb), FIRMWARE_EXACT


def meets_targets(row) -> dict:
    """Which targets ``row`` meets: physics per scenario, LUTs, latency, and all of them."""
    met = {}
    for scenario, target in TARGETS.items():
        s = row[scenario]
        met[scenario] = s["plateau"] is not None and s["plateau"] >= target["plateau"] and s["fake_ul"] < target["fake_ul"]
    met["luts"] = row["luts"] is not None and row["luts"] <= LUT_BUDGET
    met["latency"] = row["latency_ns"] is not None and row["latency_ns"] <= LATENCY_BUDGET_NS
    met["all"] = all(met.values())
    return met


def _label(model) -> str:
    config, kind = model.config, _kind(model)
    if kind == "hgq2":
        text = f"HGQ2 beta={config['beta']:g}"
        if config.get("target_ebops"):
            text += f" steered to {config['target_ebops']:,.0f} EBOPs"
    else:
        text = "float" if kind == "float" else f"QKeras {config['nbits']}-bit"
    return f"{config['architecture']} {text}" + (" KD" if config["kd"] else "")


def _row(model, summaries, cost, scored_by, command) -> dict:
    config, hgq2 = model.config, model.record.get("hgq2") or {}
    row = {
        "name": model.name, "label": _label(model), "architecture": config["architecture"], "quantizer": _kind(model),
        "nbits": config["nbits"], "beta": config.get("beta"), "kd": bool(config["kd"]), "parameters": model.record["model"]["parameters"],
        "ebops": hgq2.get("ebops"), "luts": None if cost is None else cost["luts"], "ffs": None if cost is None else cost["ffs"],
        "stages": None if cost is None else cost["stages"], "latency_ns": None if cost is None else cost["latency_ns"],
        "evaluated_by": scored_by, "command": command, "n_train": model.record["data"]["n_train"],
        "epochs_run": len(model.record.get("history", {}).get("val_loss", [])),
        "keras_vs_traced_logic": None if cost is None else cost.get("keras_vs_traced_logic"),
        "model_trace_estimate": None if cost is None else cost.get("model_trace_estimate"),
    }  # fmt: skip
    for scenario, summary in summaries.items():
        fake, plateau = summary["fake_rate"], summary["plateau"]
        row[scenario] = {
            "plateau": plateau["efficiency"], "plateau_low": plateau["low"], "plateau_high": plateau["high"],
            "half_efficiency_pt": summary["half_efficiency_pt"], "fake_rate": fake["rate"], "fake_fired": fake["fired"],
            "fake_total": fake["total"], "fake_ul": fake["upper"],
        }  # fmt: skip
    row["meets"] = meets_targets(row)
    return row


def study_commands(script) -> dict:
    """``{model name: the command line of study.sh that trained it}`` (lines with ``-o .../NAME``), variables as written."""
    commands = {}
    for line in Path(script).read_text().splitlines():
        match = re.search(r"\btrain\b.*\s-o\s+\S*?([^/\s]+)(\s|$)", line)
        if match and not line.lstrip().startswith("#"):
            commands[match.group(1)] = line.strip()
    return commands


def study_variables(script) -> list[str]:
    """The variable assignments of the study script (``M=...``), which its commands use."""
    return [line.strip() for line in Path(script).read_text().splitlines() if re.match(r"^[A-Z]\w*=", line.strip())]


def evaluate(models_dir, samples: dict, study_script, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Score and estimate every network of ``models_dir`` on ``samples`` (``{"default": path, "hard": path}``)."""
    from .grid import _check_held_out, find_models, predict_sample

    models = find_models(models_dir)
    commands = study_commands(study_script)
    missing = [m.name for m in models if m.name not in commands]
    if missing:
        msg = f"{str(study_script)!r} has no training command for {', '.join(missing)} (a line with '-o .../NAME'): every point needs the command that made it"
        raise InputFileError(msg)
    descriptions = {scenario: _check_held_out(path, scenario, models) for scenario, path in samples.items()}
    with tempfile.TemporaryDirectory(prefix="l0emu-pareto-") as work_dir:
        loaded = {m.name: _network_and_cost(m, work_dir, samples["default"]) for m in models}
        networks = {name: value[0] for name, value in loaded.items()}
        summaries = {m.name: {} for m in models}
        for scenario, path in samples.items():
            true_pt, outputs = predict_sample(models, networks, path)
            descriptions[scenario].update(n_events=len(true_pt))
            for m in models:
                summaries[m.name][scenario] = physics_summary(true_pt, outputs[m.name][:, 0].astype(np.float64) * m.pt_scale, threshold)
    rows = [_row(m, summaries[m.name], loaded[m.name][1], loaded[m.name][2], commands[m.name]) for m in models]
    return jsonable({
        "format": FORMAT, "threshold_gev": threshold, "samples": list(descriptions.values()),
        "targets": {**TARGETS, "luts": LUT_BUDGET, "latency_ns": LATENCY_BUDGET_NS},
        "cost": "da4ml estimates (not synthesis): 2 ns clock, latency cutoff 5", "study_variables": study_variables(study_script), "rows": rows,
    })  # fmt: skip


# ---------------------------------------------------------------- report

CSV_FIELDS = ("name", "label", "architecture", "quantizer", "nbits", "beta", "kd", "parameters", "ebops", "luts", "ffs", "stages", "latency_ns")
SCENARIO_FIELDS = ("plateau", "plateau_low", "plateau_high", "half_efficiency_pt", "fake_rate", "fake_fired", "fake_total", "fake_ul")


def _csv(result) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *(f"{s}_{f}" for s in TARGETS for f in SCENARIO_FIELDS), "meets_all", "command"])
    for row in result["rows"]:
        writer.writerow([*(row[f] for f in CSV_FIELDS), *(row[s][f] for s in TARGETS for f in SCENARIO_FIELDS), row["meets"]["all"], row["command"]])
    return out.getvalue()


def _fmt(value, spec) -> str:
    return "-" if value is None else format(value, spec)


def _cheapest_meeting(rows):
    meeting = [r for r in rows if r["meets"]["default"] and r["meets"]["hard"] and r["luts"] is not None]
    return min(meeting, key=lambda r: r["luts"]) if meeting else None


def _table(rows) -> list[str]:
    lines = [
        "| network | params | EBOPs | LUTs (est.) | FFs (est.) | latency [ns] | default plateau | default fake UL [‰] | hard plateau | hard fake UL [‰] | all targets? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(rows, key=lambda r: (r["luts"] is None, r["luts"] or 0))
    for r in ordered:
        d, h = r["default"], r["hard"]
        lines.append(
            f"| `{r['name']}` ({r['label']}){' †' if r['evaluated_by'] == HGQ2_EXACT else ''} | {r['parameters']:,} | {_fmt(r['ebops'], ',')} | {_fmt(r['luts'], ',.0f')} | {_fmt(r['ffs'], ',')} "
            f"| {_fmt(r['latency_ns'], 'g')} | {d['plateau']:.4f} | {d['fake_ul'] * 1e3:.2f} | {h['plateau']:.4f} | {h['fake_ul'] * 1e3:.2f} "
            f"| {'**yes**' if r['meets']['all'] else 'no'} |"
        )
    return lines


def _counts(rows, field) -> str:
    values = sorted({r.get(field) for r in rows if r.get(field) is not None})
    return " or ".join(f"{v:,}" for v in values) if values else "an unrecorded number of"


def _logic_lines(rows) -> list[str]:
    checked = [r for r in rows if r.get("keras_vs_traced_logic")]
    if not checked:
        return []
    events = {r["keras_vs_traced_logic"]["events"] for r in checked}
    differing = sum(r["keras_vs_traced_logic"]["differing_events"] for r in checked)
    return [
        "Cross-check of the HGQ2 networks: Keras 3 predict against da4ml's interpreter of the logic traced from each",
        f"(what its Verilog computes), {', '.join(f'{n:,}' for n in sorted(events))} events of the default sample each: "
        f"{differing} events with a differing output over {len(checked)} networks.",
    ]


def _model_trace_lines(rows) -> list[str]:
    lines = [
        f"- `{r['name']}`: {e['luts']:,.0f} LUTs, {e['ffs']:,} FFs, {e['latency_ns']:g} ns (spec: {r['luts']:,.0f} LUTs, {r['latency_ns']:g} ns)"
        for r in rows if (e := r.get("model_trace_estimate"))
    ]  # fmt: skip
    if not lines:
        return []
    return ["", "The converted HGQ2 networks as HGQ2's own flow traces them from the model instead (da4ml's estimate), for comparison:", "", *lines, ""]


def _keras_scored_lines(rows) -> list[str]:
    if not any(r["evaluated_by"] == HGQ2_EXACT for r in rows):
        return []
    return [
        "The HGQ2 networks marked † have Keras `ReLU` layers between their quantized layers (the",
        "student builder made them so before), which hls4ml 1.3.0 writes as a thresholded relu whose C-simulation",
        "lets negative values through, so `l0emu convert` refuses them: they were scored with Keras 3 predict,",
        "the decision of the logic da4ml traces from the model (checked below), and estimated from that logic.",
    ]


def _cheapest_per_target(rows) -> list[str]:
    """For each physics target alone, the cheapest network with firmware that meets it."""
    checks = {
        f"{scenario} plateau >= {target['plateau']}": lambda r, s=scenario, t=target: r[s]["plateau"] >= t["plateau"]
        for scenario, target in TARGETS.items()
    }
    checks.update({
        f"{scenario} fake UL < {target['fake_ul'] * 1e3:g} ‰": lambda r, s=scenario, t=target: r[s]["fake_ul"] < t["fake_ul"]
        for scenario, target in TARGETS.items()
    })  # fmt: skip
    lines = []
    for text, check in checks.items():
        meeting = sorted((r for r in rows if r["luts"] is not None and check(r)), key=lambda r: r["luts"])
        found = f"`{meeting[0]['name']}` ({meeting[0]['luts']:,.0f} LUTs)" if meeting else "none"
        lines.append(f"- {text}: {found}")
    return lines


def _markdown(result) -> str:
    rows = result["rows"]
    samples = "; ".join(f"{s['scenario']}: {s['path']}, {s['n_events']:,} events, {s['generator']}" for s in result["samples"])
    best = _cheapest_meeting(rows)
    front = (
        f"On these validation samples the cheapest network meeting both scenarios' physics targets is `{best['name']}` "
        f"({best['label']}, {best['luts']:,.0f} LUTs, {best['latency_ns']:g} ns): "
        + ("it also meets the LUT and latency budget." if best["meets"]["all"] else f"above the {LUT_BUDGET:,}-LUT budget, so the targets are **not** all reached by any network here.")
        if best else "No network here meets both scenarios' physics targets on these validation samples: the targets are **not** reached."
    )
    commands = [f"- `{r['name']}`: `{r['command']}`" for r in sorted(rows, key=lambda r: r["name"])]
    return "\n".join([
        "# Physics versus firmware cost",
        "",
        "Generated by `python -m l0emu.validation.pareto report docs/pareto` from `pareto.json`, which",
        "`docs/pareto/study.sh` writes (every command of the study is there). Do not edit by hand.",
        "",
        f"Threshold {result['threshold_gev']:g} GeV. Validation samples only (docs/protocol.md): {samples}. "
        f"Cost: {result['cost']}. Targets: default plateau >= {TARGETS['default']['plateau']} with fake 95 % UL < "
        f"{TARGETS['default']['fake_ul'] * 1e3:g} ‰, hard plateau >= {TARGETS['hard']['plateau']} with UL < "
        f"{TARGETS['hard']['fake_ul'] * 1e3:g} ‰, at most {LUT_BUDGET:,} LUTs and {LATENCY_BUDGET_NS:g} ns.",
        "",
        "How each network is scored: QKeras and HGQ2 networks are converted with hls4ml and run through the",
        "bit-exact emulator; their cost is da4ml's estimate of that spec, the logic `l0emu rtl` builds and",
        "proves in Verilator. Float networks are references without a cost.",
        *_model_trace_lines(rows),
        *_keras_scored_lines(rows),
        *_logic_lines(rows),
        "Every figure is one training seed on validation samples: a screen for recipes, not a result.",
        f"The networks were trained on {_counts(rows, 'n_train')} events (the shipped student's recipe: 700,002), "
        f"for {_counts(rows, 'epochs_run')} epochs (early stopping kept the best epoch's weights).",
        "",
        *_table(rows),
        "",
        "![plateau and fake-rate upper limit versus LUTs](pareto.png)",
        "",
        "## Where the front points",
        "",
        front,
        "",
        "Each physics target alone, the cheapest network (with firmware) that meets it:",
        "",
        *_cheapest_per_target(rows),
        "",
        "Limits of this screen: one seed per point. The points trained on 180,000 events (the shipped",
        "recipe: 700,002) are screens; their HGQ2 trainings ran 10-15 epochs at a fixed beta while the EBOPs",
        "were still falling (the `ebops` entry of each record's history), so their physics is a lower bound",
        "of the recipe's. The HGQ2 points trained on the shipped student's full mixture start from its",
        "weights and steer beta towards a budget of EBOPs (`--target-ebops`) for the epochs their commands give.",
        "The float networks (the students' and the distillation teacher's) show the physics each architecture",
        "reaches without a firmware type.",
        "",
        "The rule for the next default student: the cheapest network that meets the targets on",
        "validation samples; its recipe is then trained with three seeds, and the figures reported",
        "are medians on fresh test samples (seeds never used before). Shipping it is a separate step.",
        "",
        "## Commands",
        "",
        "Each network's training command, with the variables of `study.sh`:",
        "",
        "```bash",
        *result.get("study_variables", []),
        "```",
        "",
        *commands,
        "",
    ])  # fmt: skip


def _plot(result, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["luts"] is not None]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    colours = {"default": "tab:blue", "hard": "tab:red"}
    markers = {"qkeras": "o", "hgq2": "^"}
    for scenario, colour in colours.items():
        for kind, marker in markers.items():
            chosen = [r for r in rows if r["quantizer"] == kind]
            if not chosen:
                continue
            x = [r["luts"] for r in chosen]
            top.scatter(x, [r[scenario]["plateau"] for r in chosen], c=colour, marker=marker, label=f"{scenario}, {kind}")
            bottom.scatter(x, [max(r[scenario]["fake_ul"] * 1e3, 1e-3) for r in chosen], c=colour, marker=marker)
        top.axhline(TARGETS[scenario]["plateau"], color=colour, ls="--", lw=1)
        bottom.axhline(TARGETS[scenario]["fake_ul"] * 1e3, color=colour, ls="--", lw=1)
    for r in rows:
        top.annotate(r["name"], (r["luts"], r["hard"]["plateau"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    for axis in (top, bottom):
        axis.axvline(LUT_BUDGET, color="grey", ls=":", lw=1)
    top.set_xscale("log")
    bottom.set_yscale("log")
    top.set_ylabel("plateau efficiency (10 GeV)")
    bottom.set_ylabel("fake rate 95 % UL [‰]")
    bottom.set_xlabel("LUTs (da4ml estimate)")
    top.legend(fontsize=7)
    top.set_title("validation samples; dashed: targets, dotted: LUT budget", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_report(result, output_dir) -> list[Path]:
    """``pareto.json``, ``pareto.csv``, ``pareto.md`` and ``pareto.png`` in ``output_dir``."""
    output_dir = Path(output_dir)
    texts = {"pareto.json": json.dumps(result, indent=1, allow_nan=False) + "\n", "pareto.csv": _csv(result), "pareto.md": _markdown(result)}
    for name, text in texts.items():
        with atomic_path(output_dir / name, parents=True) as tmp:
            tmp.write_text(text)
    with atomic_path(output_dir / "pareto.png", parents=True) as tmp:
        _plot(result, tmp)
    return [output_dir / name for name in (*texts, "pareto.png")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l0emu.validation.pareto", description="physics versus firmware cost of trained students")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("evaluate", help="score and estimate every network of MODELS, then write the report")
    run.add_argument("models", help="directory of 'l0emu train' outputs")
    run.add_argument("--default", required=True, help="default-scenario validation sample")
    run.add_argument("--hard", required=True, help="hard-scenario validation sample")
    run.add_argument("--study", required=True, help="the study script holding every network's training command")
    run.add_argument("-o", "--output", required=True, help="directory for pareto.json/.csv/.md/.png")
    again = verbs.add_parser("report", help="table and plot again from DIR/pareto.json")
    again.add_argument("output", help="directory holding pareto.json")
    args = parser.parse_args(argv)
    if args.verb == "evaluate":
        result = evaluate(args.models, {"default": args.default, "hard": args.hard}, args.study)
    else:
        result = json.loads((Path(args.output) / "pareto.json").read_text())
    for path in write_report(result, args.output):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
