"""The physics evaluation grid (issue 4): train every network of the study, then compare them.

Two steps that run separately (the first can resume, the second re-runs in minutes)::

    l0emu grid train --events TRAIN.root --models-dir models/grid/ [--bits 2,3,4] [--seeds 0,1,2]
    l0emu grid evaluate --models-dir models/grid/ --events HELDOUT.root \
        [--events-hard HELDOUT_hard.root] -o report/

(the command line is :mod:`l0emu.validation.cli_grid`).

``train`` fills ``--models-dir`` with one directory per network, each written by
:func:`firmware.train.train_run` (``model.h5`` + ``record.json``): the 9x16 teacher (float,
trained once and shared by every distilled student), the 9x384 teacher, and the student
without and with distillation, float and at each bit width, for each seed. A directory whose
``record.json`` exists is skipped, so an interrupted grid resumes where it stopped.

``evaluate`` runs every trained network on samples of the default and the hard scenario,
streaming the events in chunks so a 1M-event sample fits in memory, and writes ``grid.md``,
``grid.csv``, ``grid.json`` and the plots of :mod:`validation.plots`. Every quantized
network is evaluated **firmware-exact**: converted with hls4ml (:data:`CONVERT_SETTINGS`, the
shipped student's input type) and run through the bit-exact emulator, the product itself;
float networks (teachers, float students) have no firmware type and are evaluated with
Keras. Each row says which (``evaluated_by``).

The evaluation protocol (:mod:`firmware.protocol`, docs/protocol.md): a sample whose
generator scenario and seed repeat a training or validation file of any network is refused;
``--validation`` in the train step gives early stopping its own files. Per recipe the report
gives the median and the spread (lowest, highest) over the training seeds.

Metrics come from :mod:`l0emu.results.metrics`: plateau efficiency (true pT >= 1.5 x threshold,
:func:`l0emu.results.metrics.plateau_min_pt`, Clopper-Pearson 68 %), 50 % point, relative pT
resolution over :data:`l0emu.results.metrics.RESOLUTION_EDGES`, fake rate on background (no muon
above 3 GeV) with its one-sided 95 % upper limit. A network is dead when its training record
says so or when its pT output is constant on the sample (spread below 1 % of the true pT's,
:data:`firmware.train.DEAD_RELATIVE_STD`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from l0emu.firmware.dataset import pt_targets
from l0emu.firmware.models import SUPPORTED_NBITS, check_nbits, load_model
from l0emu.firmware.protocol import MIN_TRAINING_SEEDS, check_evaluation_sample, median_and_spread, model_samples, seed_role
from l0emu.firmware.train import PRESETS, constant_outputs, file_sha256, train_run
from l0emu.util.atomic import atomic_path
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError, InputFileError
from l0emu.trigger.events import iterate_events, open_events
from l0emu.trigger.images import fragment_hits, hits_to_images, pooled_to_float
from l0emu.results.metrics import DEFAULT_THRESHOLD, physics_summary, plateau_min_pt, resolution_range_text
from l0emu.schema import SIGNAL_PT_MIN
from l0emu.util.serialize import jsonable

from .plots import make_grid_plots

__all__ = [
    "TEACHER_9X16",
    "TEACHER_9X384",
    "GridJob",
    "GridModel",
    "plan_grid",
    "train_grid",
    "RECORD_FIELDS",
    "find_models",
    "evaluate_grid",
    "write_report",
    "markdown_summary",
]

TEACHER_9X16 = "teacher_9x16"
TEACHER_9X384 = "teacher_9x384"
CHUNK_EVENTS = 100_000  # events read and fragmented at once
FULL_IMAGE_BATCH = 4096  # 9x384 images built at once (~56 MB as float32)
# Keras batches: a 9x384 batch's conv activations take ~0.5 MB per event and layer
FULL_IMAGE_PREDICT_BATCH = 256
PREDICT_BATCH = 4096
# hls4ml settings of the grid's conversions: the shipped student's (convert.yml), whose 2-bit
# unsigned input holds the fragment pixels 0, 1/2, 1 exactly
CONVERT_SETTINGS = {"layers": {"image": {"precision": {"result": "ap_ufixed<2,1>"}}}}
FIRMWARE_EXACT = "firmware-exact (hls4ml conversion, l0emu emulator)"
KERAS = "Keras predict (float network: no firmware type)"


@dataclasses.dataclass(frozen=True)
class GridJob:
    """One network of the grid: its directory name and the arguments of ``train_run``."""

    name: str
    architecture: str
    nbits: int | None = None
    kd: bool = False
    seed: int = 0


def student_name(nbits, kd: bool, seed: int) -> str:
    return f"student_{'float' if nbits is None else f'q{nbits}'}_{'kd' if kd else 'nokd'}_s{seed}"


def plan_grid(bits, seeds, *, teacher_9x384: bool = True) -> list[GridJob]:
    """Every network of the grid, the 9x16 teacher first (the distilled students need it)."""
    jobs = [GridJob(TEACHER_9X16, "teacher", seed=seeds[0])]
    if teacher_9x384:
        jobs.append(GridJob(TEACHER_9X384, "teacher-9x384", seed=seeds[0]))
    for nbits in [None, *bits]:
        for kd in (False, True):
            jobs.extend(GridJob(student_name(nbits, kd, seed), "student", nbits, kd, seed) for seed in seeds)
    return jobs


def train_grid(events, models_dir, *, bits=SUPPORTED_NBITS, seeds=(0, 1, 2), preset="fast", max_events=None, epochs=None, teacher_9x384=True, validation_events=None) -> dict:
    """Train the missing networks of the grid into ``models_dir``; return ``{"trained": [...], "skipped": [...]}``.

    ``teacher_9x384=False`` leaves out the 9x384 teacher, by far the slowest network to train
    and to evaluate on a CPU; a later run with it adds it to the same directory.
    """
    for path in [*events, *(validation_events or [])]:
        open_events(str(path))  # a missing or broken file fails now, not after the first training
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    jobs = plan_grid([check_nbits(b) for b in bits], list(seeds), teacher_9x384=teacher_9x384)
    done = {"trained": [], "skipped": []}
    with tqdm(jobs, desc="grid", unit="model") as bar:
        for job in bar:
            output = models_dir / job.name
            if (output / "record.json").is_file():
                done["skipped"].append(job.name)
                continue
            bar.set_postfix_str(job.name)
            record = train_run(
                [str(p) for p in events], output, architecture=job.architecture, nbits=job.nbits, preset=preset,
                kd=job.kd, teacher_path=models_dir / TEACHER_9X16 if job.kd else None, seed=job.seed,
                max_events=max_events, epochs=epochs, verbose=False, validation_events=validation_events,
            )  # fmt: skip
            dead = " DEAD: " + "; ".join(record["dead_network"]["reasons"]) if record["dead_network"]["dead"] else ""
            bar.write(f"{job.name}: {record['wall_time_s']:.0f} s, plateau {_number(record['metrics']['plateau']['efficiency'])}{dead}")
            done["trained"].append(job.name)
    return done


# the fields of firmware.train's record.json that the evaluation reads
RECORD_FIELDS = (
    ("config", "architecture"), ("config", "nbits"), ("config", "kd"), ("config", "seed"), ("config", "preset"),
    ("targets", "eta_frame"), ("targets", "pt_scale_gev"), ("targets", "preprocessing"), ("data", "sha256"),
    ("model", "parameters"), ("dead_network", "dead"), ("dead_network", "reasons"),
)  # fmt: skip


@dataclasses.dataclass
class GridModel:
    """A trained network of the grid, as its ``record.json`` describes it."""

    name: str
    path: Path
    record: dict

    @property
    def config(self) -> dict:
        return self.record["config"]

    @property
    def label(self) -> str:
        # the seed's student is "student"; a wider variant keeps its architecture name
        # (student-wide, student-wider) so tables and bit-width plots never mix the two
        return {"teacher": "teacher 9x16", "teacher-9x384": "teacher 9x384"}.get(self.config["architecture"], self.config["architecture"])

    @property
    def full_image(self) -> bool:
        return self.record["targets"]["eta_frame"] == "sector"

    @property
    def stride(self) -> int | None:
        fragment = self.record["targets"]["preprocessing"].get("fragment")
        return None if fragment is None else int(fragment["stride"])

    @property
    def layers(self) -> tuple | None:
        """The RPC layers its images are made of; None: all nine (records before layer sets have no entry)."""
        layers = self.record["targets"]["preprocessing"].get("layers")
        return None if layers is None else tuple(layers)

    @property
    def quantized(self) -> bool:
        return self.config["nbits"] is not None

    @property
    def pt_scale(self) -> float:
        return float(self.record["targets"]["pt_scale_gev"])

    def sort_key(self):
        order = {"teacher 9x384": 0, "teacher 9x16": 1}.get(self.label, 2)
        nbits = self.config["nbits"]
        return (order, 0 if nbits is None else 1, nbits or 0, self.config["kd"], self.config["seed"])


def find_models(models_dir) -> list[GridModel]:
    """The trained networks of ``models_dir`` (directories with a ``record.json``), in table order."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        msg = f"models directory {str(models_dir)!r} does not exist; 'l0emu grid train' writes it"
        raise InputFileError(msg)
    models = []
    for record_path in sorted(models_dir.glob("*/record.json")):
        try:
            record = json.loads(record_path.read_text())
        except json.JSONDecodeError as err:
            msg = f"{str(record_path)!r} is not JSON ({err})"
            raise InputFileError(msg) from None
        for section, field in RECORD_FIELDS:
            if not isinstance(record, dict) or field not in (record.get(section) or {}):
                msg = f"{str(record_path)!r} lacks {section}.{field}: not a training record of 'l0emu train'"
                raise InputFileError(msg)
        outputs = record["config"].get("outputs", ["pt", "eta"])
        if list(outputs) != ["pt", "eta"]:
            msg = (f"{str(record_path)!r}: outputs {','.join(outputs)} are per sector-logic candidate window; the grid "
                   "compares one-window pT networks (run a multi network with 'l0emu run --spec')")
            raise InputFileError(msg)
        models.append(GridModel(record_path.parent.name, record_path.parent, record))
    if not models:
        msg = f"models directory {str(models_dir)!r} holds no trained network (no */record.json)"
        raise InputFileError(msg)
    return sorted(models, key=GridModel.sort_key)


def _check_held_out(path, scenario: str, models) -> dict:
    """The sample's description; refuses a file that repeats a training or validation sample of
    one of the networks (same generator scenario and seed, or the same bytes), or is of another scenario."""
    if open_events(str(path)).num_entries == 0:
        msg = f"{str(path)!r}: the events tree is empty; the {scenario!r} sample needs events"
        raise InputFileError(msg)
    identity = check_evaluation_sample(path, {m.name: m.record for m in models}, hashes=file_sha256(path))
    unknown = sorted({p for m in models for p in model_samples(m.record)["unknown"]})
    caveat = f"; generator of training file(s) {', '.join(unknown)} unknown (record predates the protocol), checked by hash only" if unknown else ""
    if identity is None:
        return {"path": Path(path).name, "scenario": scenario, "generator": "unknown (no l0emu simulate settings)" + caveat, "role": None}
    if identity.scenario != scenario:
        msg = f"{str(path)!r} was simulated with scenario {identity.scenario!r}, given as the {scenario!r} sample"
        raise ConfigError(msg)
    role = seed_role(identity.seed)
    role_text = f" ({role} seed range)" if role else " (outside the protocol's seed ranges)"
    return {"path": Path(path).name, "scenario": scenario, "generator": f"l0emu simulate, scenario {scenario!r}, seed {identity.seed}{role_text}{caveat}", "role": role}


def firmware_emulator(model, work_dir) -> Emulator:
    """The bit-exact emulator of a quantized network, converted with hls4ml into ``work_dir``:
    QKeras with :data:`CONVERT_SETTINGS`, HGQ2 with hls4ml's bit-exact types (its own input quantizer)."""
    from l0emu.firmware.hls4ml_bridge import convert  # hls4ml: only when a quantized network is evaluated

    hgq2 = model.config.get("quantizer") == "hgq2"
    settings = None if hgq2 else CONVERT_SETTINGS
    path = model.path / model.record["model"].get("file", "model.h5")
    _, spec = convert(path, Path(work_dir) / model.name, settings, name=model.name, origin="grid conversion settings")
    return Emulator.from_spec(spec)


def load_networks(models, work_dir) -> dict:
    """``{name: Emulator}`` for quantized networks (firmware-exact), ``{name: Keras model}`` otherwise."""
    return {m.name: firmware_emulator(m, work_dir) if m.quantized else load_model(m.path) for m in tqdm(models, desc="loading networks", unit="net")}


def _predict_full_images(network, chunk, layers=None) -> np.ndarray:
    """Predictions on whole-sector images of ``layers`` (None: 9x384), built batch by batch
    from the hits (never the whole chunk)."""
    outputs = []
    offsets = chunk.hit_offsets
    for start in range(0, len(chunk), FULL_IMAGE_BATCH):
        stop = min(start + FULL_IMAGE_BATCH, len(chunk))
        lo, hi = offsets[start], offsets[stop]
        images = hits_to_images(offsets[start : stop + 1] - lo, chunk.hit_layer[lo:hi], chunk.hit_strip[lo:hi], layers)
        outputs.append(network.predict(images[..., np.newaxis], batch_size=FULL_IMAGE_PREDICT_BATCH, verbose=0))
    return np.concatenate(outputs)


def predict_sample(models, networks, path) -> tuple[np.ndarray, dict]:
    """``(true_pt, {name: outputs (n, 2)})`` of every network on every event of ``path``."""
    n_events = open_events(str(path)).num_entries
    true_pt, outputs = [], {m.name: [] for m in models}
    with tqdm(total=n_events * len(models), desc=Path(path).name, unit="evt·net", unit_scale=True) as bar:
        for chunk in iterate_events([str(path)], step_size=CHUNK_EVENTS):
            true_pt.append(chunk.true_pt)
            fragments = {}
            for model in models:
                if model.full_image:
                    outputs[model.name].append(_predict_full_images(networks[model.name], chunk, model.layers))
                else:
                    key = (model.stride, model.layers)
                    if key not in fragments:
                        fragments[key] = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, model.stride, model.layers)[1]
                    pooled = fragments[key]
                    network = networks[model.name]
                    if isinstance(network, Emulator):  # the firmware's outputs, in network units
                        outputs[model.name].append(network.to_float(network.predict_raw(pooled)))
                    else:
                        outputs[model.name].append(network.predict(pooled_to_float(pooled), batch_size=PREDICT_BATCH, verbose=0))
                bar.update(len(chunk))
    empty = np.zeros((0, 2), np.float32)
    return np.concatenate(true_pt), {k: np.concatenate(v) if v else empty for k, v in outputs.items()}


def _row(model, scenario, true_pt, output, threshold) -> dict:
    summary = physics_summary(true_pt, output[:, 0].astype(np.float64) * model.pt_scale, threshold)
    trained = model.record["dead_network"]
    reasons = [f"training: {r}" for r in trained["reasons"]] or (["training: flagged dead"] if trained["dead"] else [])
    # the pT target is known here (eta's needs the window): compare the pT output's spread with it
    reasons += [f"held-out: {r}" for r in constant_outputs(output[:, :1], pt_targets(true_pt, model.pt_scale)[:, np.newaxis])]
    config = model.config
    return {
        "scenario": scenario, "model": model.label, "name": model.name, "bits": config["nbits"], "kd": bool(config["kd"]),
        "seed": config["seed"], "parameters": model.record["model"]["parameters"], "preset": config["preset"],
        "evaluated_by": FIRMWARE_EXACT if model.quantized else KERAS, "dead": bool(reasons), "dead_reasons": reasons, **summary,
    }  # fmt: skip


def evaluate_grid(models_dir, samples: dict, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Evaluate every network of ``models_dir`` on ``samples`` (``{scenario: events path}``)."""
    models = find_models(models_dir)
    hgq2 = [m.name for m in models if m.config.get("quantizer") == "hgq2"]
    if hgq2:
        # the grid's rows and KD statistics group students by one bit width
        msg = (f"{str(models_dir)!r}: {', '.join(hgq2)} are HGQ2 students (a width per weight); the grid compares "
               "QKeras bit widths: score them with the physics-versus-cost study (python -m l0emu.validation.pareto)")
        raise ConfigError(msg)
    descriptions = [_check_held_out(path, scenario, models) for scenario, path in samples.items()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="l0emu-grid-") as work_dir:
        networks = load_networks(models, work_dir)
        for description, path in zip(descriptions, samples.values()):
            true_pt, outputs = predict_sample(models, networks, path)
            background = true_pt < SIGNAL_PT_MIN
            description.update(n_events=len(true_pt), n_background=int(background.sum()), n_plateau=int((true_pt >= plateau_min_pt(threshold)).sum()))
            rows += [_row(m, description["scenario"], true_pt, outputs[m.name], threshold) for m in models]
    # names only (models_dir, each sample's path): a result to commit carries no machine paths
    return {"format": "l0emu-grid/2", "models_dir": Path(models_dir).name, "threshold_gev": threshold, "samples": descriptions, "rows": rows}


# ---------------------------------------------------------------- report


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _permille(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{1000 * value:.2f}"


def _bits(bits) -> str:
    return "float" if bits is None else str(bits)


def _is_student(row) -> bool:
    return row["model"] == "student"


CSV_COLUMNS = (
    "scenario", "model", "name", "bits", "kd", "seed", "parameters", "plateau", "plateau_low", "plateau_high",
    "half_efficiency_pt", "resolution_rms", "resolution_bias", "fake_rate", "fake_fired", "fake_total", "fake_ul95", "dead",
)  # fmt: skip


def _flat(row) -> dict:
    plateau, fake, resolution = row["plateau"], row["fake_rate"], row["resolution"]
    return {
        "scenario": row["scenario"], "model": row["model"], "name": row["name"], "bits": _bits(row["bits"]),
        "kd": row["kd"], "seed": row["seed"], "parameters": row["parameters"], "plateau": plateau["efficiency"],
        "plateau_low": plateau["low"], "plateau_high": plateau["high"], "half_efficiency_pt": row["half_efficiency_pt"],
        "resolution_rms": resolution["overall_rms"], "resolution_bias": resolution["overall_bias"],
        "fake_rate": fake["rate"], "fake_fired": fake["fired"], "fake_total": fake["total"], "fake_ul95": fake["upper"],
        "dead": row["dead"],
    }  # fmt: skip


def _plateau_text(plateau) -> str:
    eff = plateau["efficiency"]
    if eff is None or math.isnan(eff):
        return "n/a"
    return f"{eff:.4f} +{plateau['high'] - eff:.4f}/-{eff - plateau['low']:.4f}"


def _main_table(rows) -> list[str]:
    lines = [
        "| model | bits | KD | seed | evaluated by | plateau ± err | 50 % point [GeV] | resolution RMS | fake rate [‰] | fake 95 % UL [‰] | dead? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fake = row["fake_rate"]
        lines.append(
            f"| {row['model']} | {_bits(row['bits'])} | {'yes' if row['kd'] else 'no'} | {row['seed']} "
            f"| {'firmware-exact' if row.get('evaluated_by') == FIRMWARE_EXACT else 'Keras'} | {_plateau_text(row['plateau'])} | {_number(row['half_efficiency_pt'], 3)} "
            f"| {_number(row['resolution']['overall_rms'], 3)} | {_permille(fake['rate'])} ({fake['fired']}/{fake['total']}) "
            f"| {_permille(fake['upper'])} | {'**DEAD**' if row['dead'] else 'no'} |"
        )
    return lines


def _median(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(values)) if values else float("nan")


def kd_effect(rows) -> list[dict]:
    """Per bit width: median over seeds of each metric without and with KD (dead networks
    included), and for plateau and fake UL the spread over seeds (``*_low``, ``*_high``)."""
    effect = []
    for bits in _student_bits(rows):
        entry = {"bits": bits}
        for kd in (False, True):
            group = [r for r in rows if _is_student(r) and r["bits"] == bits and r["kd"] == kd]
            key = "kd" if kd else "nokd"
            entry[f"n_{key}"] = len(group)
            entry[f"dead_{key}"] = sum(r["dead"] for r in group)
            entry[f"half_pt_{key}"] = _median([r["half_efficiency_pt"] for r in group])
            entry[f"resolution_{key}"] = _median([r["resolution"]["overall_rms"] for r in group])
            for name, values in (("plateau", [r["plateau"]["efficiency"] for r in group]), ("fake_ul", [r["fake_rate"]["upper"] for r in group])):
                spread = median_and_spread(values)
                entry[f"{name}_{key}"], entry[f"{name}_{key}_low"], entry[f"{name}_{key}_high"] = spread["median"], spread["low"], spread["high"]
        effect.append(entry)
    return effect


def _spread(entry, name, key, text=_number) -> str:
    return f"{text(entry[f'{name}_{key}'])} [{text(entry[f'{name}_{key}_low'])}, {text(entry[f'{name}_{key}_high'])}]"


def _student_bits(rows) -> list:
    present = {r["bits"] for r in rows if _is_student(r)}
    return sorted((b for b in present if b is not None)) + ([None] if None in present else [])


def _kd_table(rows) -> list[str]:
    lines = [
        "| bits | plateau no KD → KD, median [lowest, highest] | 50 % point no KD → KD [GeV] | resolution no KD → KD | fake 95 % UL no KD → KD [‰], median [lowest, highest] | dead no KD / KD |",
        "|---|---|---|---|---|---|",
    ]
    for e in kd_effect(rows):
        delta = e["plateau_kd"] - e["plateau_nokd"]
        lines.append(
            f"| {_bits(e['bits'])} | {_spread(e, 'plateau', 'nokd')} → {_spread(e, 'plateau', 'kd')} ({delta:+.4f}) "
            f"| {_number(e['half_pt_nokd'], 3)} → {_number(e['half_pt_kd'], 3)} "
            f"| {_number(e['resolution_nokd'], 3)} → {_number(e['resolution_kd'], 3)} "
            f"| {_spread(e, 'fake_ul', 'nokd', _permille)} → {_spread(e, 'fake_ul', 'kd', _permille)} "
            f"| {e['dead_nokd']}/{e['n_nokd']} / {e['dead_kd']}/{e['n_kd']} |"
        )
    few = sorted({_bits(e["bits"]) for e in kd_effect(rows) if min(e["n_nokd"], e["n_kd"]) < MIN_TRAINING_SEEDS})
    if few:
        lines += ["", f"Fewer than {MIN_TRAINING_SEEDS} training seeds for bits {', '.join(few)}: the protocol asks for at least {MIN_TRAINING_SEEDS}."]
    return lines


def dead_counts(rows) -> list[dict]:
    """Dead students per (bits, KD) over seeds; a network counts once, dead in any scenario."""
    by_name = {}
    for row in rows:
        if _is_student(row):
            previous = by_name.get(row["name"], (row["bits"], row["kd"], False))
            by_name[row["name"]] = (row["bits"], row["kd"], previous[2] or row["dead"])
    counts = []
    for bits in _student_bits(rows):
        entry = {"bits": bits}
        for kd in (False, True):
            flags = [dead for b, k, dead in by_name.values() if b == bits and k == kd]
            entry["kd" if kd else "nokd"] = {"dead": sum(flags), "seeds": len(flags)}
        counts.append(entry)
    return counts


def markdown(result, plots) -> str:
    rows = result["rows"]
    threshold = result["threshold_gev"]
    lines = [
        "# Physics evaluation grid",
        "",
        f"Networks from `{result['models_dir']}`; threshold {threshold:g} GeV. "
        "Quantized networks are evaluated **firmware-exact** (hls4ml conversion run through the bit-exact l0emu emulator); "
        "float networks (teachers, float students) with **Keras** `predict`; the column *evaluated by* says which.",
        f"Plateau: efficiency for true pT >= {plateau_min_pt(threshold):g} GeV (1.5 x threshold, `l0emu.results.metrics.plateau_min_pt`), Clopper-Pearson 68 % interval. "
        f"Resolution: RMS of (pT_pred - pT_true)/pT_true for true pT in {resolution_range_text()}. "
        f"Fake rate: background events (no muon above {SIGNAL_PT_MIN:g} GeV) firing the threshold, "
        "with its one-sided Clopper-Pearson 95 % upper limit (UL); the requirement is UL < 2 ‰. "
        "Dead: the training record found a dead network, or its pT output is constant on the held-out sample (spread below 1 % of the target's).",
        "",
    ]
    for sample in result["samples"]:
        lines.append(
            f"- **{sample['scenario']}**: `{sample['path']}` ({sample['generator']}): {sample['n_events']} events, "
            f"{sample['n_background']} background, {sample['n_plateau']} on the plateau"
        )
    for sample in result["samples"]:
        scenario_rows = [r for r in rows if r["scenario"] == sample["scenario"]]
        lines += ["", f"## Scenario `{sample['scenario']}`", "", *_main_table(scenario_rows)]
        lines += ["", f"### What KD adds (`{sample['scenario']}`; medians over seeds, dead networks included)", ""]
        lines += _kd_table(scenario_rows)
    lines += ["", "## Dead networks (students, over seeds)", "", "| bits | no KD | KD |", "|---|---|---|"]
    for entry in dead_counts(rows):
        lines.append(f"| {_bits(entry['bits'])} | {entry['nokd']['dead']}/{entry['nokd']['seeds']} | {entry['kd']['dead']}/{entry['kd']['seeds']} |")
    dead_rows = [r for r in rows if r["dead"]]
    for row in {r["name"]: r for r in dead_rows}.values():
        lines.append(f"- `{row['name']}`: " + "; ".join(row["dead_reasons"]))
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(result, output_dir, turn_on_bits: int = 4) -> list[Path]:
    """Write grid.md, grid.csv, grid.json and the plots into ``output_dir``; return the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = make_grid_plots(result["rows"], output_dir, turn_on_bits=turn_on_bits, threshold=result["threshold_gev"])
    table = io.StringIO()
    writer = csv.DictWriter(table, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_flat(r) for r in result["rows"])
    document = jsonable({**result, "kd_effect": {s["scenario"]: kd_effect([r for r in result["rows"] if r["scenario"] == s["scenario"]]) for s in result["samples"]}, "dead_counts": dead_counts(result["rows"])})
    texts = {"grid.md": markdown(result, plots), "grid.csv": table.getvalue(), "grid.json": json.dumps(document, indent=1, allow_nan=False) + "\n"}
    written = []
    for name, text in texts.items():
        with atomic_path(output_dir / name, final=True) as tmp:  # the plots are written: the report ends the command
            tmp.write_text(text)
        written.append(output_dir / name)
    return written + plots


def markdown_summary(result) -> str:
    """One line per scenario and bit width: what KD adds to the median plateau and fake UL."""
    lines = []
    for sample in result["samples"]:
        rows = [r for r in result["rows"] if r["scenario"] == sample["scenario"]]
        lines.append(f"{sample['scenario']} ({sample['n_events']} events):")
        for e in kd_effect(rows):
            lines.append(
                f"  {_bits(e['bits']):>5}: plateau {_number(e['plateau_nokd'])} -> {_number(e['plateau_kd'])} with KD, "
                f"fake UL {_permille(e['fake_ul_nokd'])} -> {_permille(e['fake_ul_kd'])} permille, "
                f"dead {e['dead_nokd']}/{e['n_nokd']} -> {e['dead_kd']}/{e['n_kd']}"
            )
    return "\n".join(lines)

