"""Issue 3 acceptance: emulator vs hls4ml C-simulation, bit for bit, on fragmented real events.

``l0emu acceptance [--models-dir DIR] [--events 200000] [--bits 2,3,4,5,6,8] [--teacher PATH]
[--events-file FILE] [--train-events FILE] [--work-dir DIR] [-o report.json]``
(the command line is :mod:`l0emu.validation.cli_acceptance`).

For each seed student bit width and the unquantized 9x16 teacher: take the trained model
from ``--models-dir`` (``seed_q{B}/model.h5``; the teacher from ``--teacher`` or
``teacher_9x16/model.h5``) or, when absent, train a quick one with the ``fast`` preset
(a few epochs, so weights and activations are realistic) into that directory; convert and
compile it with hls4ml; fragment a held-out event sample at the model's stride; and compare
every output bit of the emulator and the C-simulation. How each model was made is recorded.
Prints a table, writes a JSON report, exits 1 on any differing bit.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from l0emu.firmware.dataset import DEFAULT_STRIDE
from l0emu.firmware.options import SUPPORTED_NBITS
from l0emu.firmware.hls4ml_bridge import TRAINING_RECORD_FILE, convert, csim_raw, load_keras_model
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError
from l0emu.trigger.images import pooled_to_float

from l0emu.trigger.events import first_fragments

__all__ = ["DEFAULT_BITS", "HELD_OUT_SEED", "model_sources", "held_out_events", "check_model", "run", "format_table"]

DEFAULT_BITS = SUPPORTED_NBITS  # every width the seed student is trained at
HELD_OUT_SEED = 3003  # not a training seed: the comparison runs on events no model saw
QUICK_EPOCHS = 3


def _provenance(model_path: Path, made: str) -> dict:
    record_path = model_path.parent / TRAINING_RECORD_FILE
    info = {"path": f"{model_path.parent.name}/{model_path.name}", "made": made}  # names: a report to commit has no machine paths
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        config = record.get("config", {})
        info.update(
            preset=config.get("preset"),
            epochs=(config.get("schedule") or {}).get("epochs"),
            nbits=config.get("nbits"),
            kd=config.get("kd"),
            training_events=(record.get("data") or {}).get("paths"),
            parameters=(record.get("model") or {}).get("parameters"),
            dead_network=(record.get("dead_network") or {}).get("dead"),
        )
    return info


def _quick_train(train_events, out_dir: Path, architecture: str, nbits) -> None:
    from l0emu.firmware.train import train_run

    if train_events is None or not Path(train_events).is_file():
        msg = f"no trained model at {str(out_dir)!r} and no training events ({train_events!r}) to train a quick one; pass --train-events"
        raise ConfigError(msg)
    train_run([str(train_events)], out_dir, architecture=architecture, nbits=nbits, preset="fast", epochs=QUICK_EPOCHS, seed=0, verbose=False)


def model_sources(bits, models_dir, teacher=None, train_events=None, *, with_teacher=True) -> list[dict]:
    """``[{"name", "path", "provenance"}]``: existing models, or quick ones trained now."""
    models_dir = Path(models_dir)
    wanted = [(f"seed_q{b}", models_dir / f"seed_q{b}" / "model.h5", "student", int(b)) for b in bits]
    if with_teacher:
        default = models_dir / "teacher_9x16" / "model.h5"
        path = Path(teacher) if teacher is not None else default
        path = path / "model.h5" if path.is_dir() else path
        # a missing teacher is trained beside, never over, the lead's teacher_9x16
        trained = path if path.is_file() else models_dir / "teacher_9x16_fast" / "model.h5"
        wanted.append(("teacher_9x16", trained, "teacher", None))
    sources = []
    for name, path, architecture, nbits in wanted:
        made = "loaded"
        if not path.is_file():
            _quick_train(train_events, path.parent, architecture, nbits)
            made = f"trained now: preset fast, {QUICK_EPOCHS} epochs, seed 0"
        sources.append({"name": name, "path": path, "provenance": _provenance(path, made)})
    return sources


def held_out_events(path, n_events: int, seed: int = HELD_OUT_SEED) -> Path:
    """The held-out sample at ``path``, simulated (default scenario, ``seed``) if it does not exist."""
    path = Path(path)
    if not path.is_file():
        from l0emu.simulation.events_io import write_events
        from l0emu.simulation.settings import settings_for_scenario

        path.parent.mkdir(parents=True, exist_ok=True)
        write_events(path, settings_for_scenario("default", seed=seed), n_events, progress=True)
    return path


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def check_model(source: dict, events_file, n_events: int, work_dir) -> dict:
    """Convert + compile ``source``'s model, then compare emulator and C-simulation on
    ``n_events`` fragmented events of ``events_file``; one row of the report."""
    project = Path(work_dir) / source["name"]
    if project.exists():
        shutil.rmtree(project)  # a fresh conversion of this exact model, never a stale one
    hls_model, spec = convert(source["path"], project, name=source["name"], compile=True)
    stride = int(((spec.get("preprocessing") or {}).get("fragment") or {}).get("stride", DEFAULT_STRIDE))
    counts = first_fragments([str(events_file)], n_events, stride)
    if len(counts) < n_events:
        msg = f"{events_file}: holds {len(counts)} events, {n_events} were asked for"
        raise ConfigError(msg)
    emulator = Emulator.from_spec(spec)
    emulator.predict_raw(counts[:1])  # numba compiles on first use: keep it out of the rate
    ours, t_emulator = _timed(emulator.predict_raw, counts)
    theirs, t_csim = _timed(csim_raw, hls_model, pooled_to_float(counts), spec)
    differing = np.any(ours != theirs, axis=1)
    bad = np.flatnonzero(differing)
    return {
        "model": source["name"],
        "parameters": int(load_keras_model(source["path"]).count_params()),
        "events": int(len(counts)),
        "stride": stride,
        "differing_events": int(len(bad)),
        "differing_bits": int(sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(ours[differing].ravel(), theirs[differing].ravel()))),
        "first_differing_event": int(bad[0]) if len(bad) else None,
        "emulator_events_per_s": len(counts) / t_emulator,
        "csim_events_per_s": len(counts) / t_csim,
        "output_type": str(emulator.output_type),
        "provenance": source["provenance"],
        "project": project.name,
    }


def run(sources, events_file, n_events: int, work_dir) -> dict:
    rows = []
    for source in tqdm(sources, desc="models", unit="model"):
        rows.append(check_model(source, events_file, n_events, work_dir))
        tqdm.write(f"{source['name']}: {rows[-1]['differing_events']} of {rows[-1]['events']} events differ")
    return {
        "events_file": Path(events_file).name,
        "n_events": n_events,
        "rows": rows,
        "bit_exact": all(row["differing_events"] == 0 for row in rows),
    }


def format_table(rows) -> str:
    header = f"{'model':14s} {'params':>7s} {'events':>9s} {'differing':>9s} {'emulator ev/s':>14s} {'csim ev/s':>10s}  made"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['model']:14s} {row['parameters']:7d} {row['events']:9d} {row['differing_events']:9d} "
            f"{row['emulator_events_per_s']:14,.0f} {row['csim_events_per_s']:10,.0f}  {row['provenance']['made']}"
        )
    return "\n".join(lines)
