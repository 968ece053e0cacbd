"""``l0emu run --check-firmware N``: the trigger's decisions against hls4ml's C-simulation.

Takes the first N events of the run's inputs through the same fragmentation, then runs
the emulator and the C-simulation of the spec's hls4ml project on the same images and
compares every output bit and every threshold decision.
"""

from __future__ import annotations

import json
import tempfile
from operator import itemgetter
from pathlib import Path

import numpy as np

from l0emu.firmware.hls4ml_bridge import CONFIG_FILE, convert, csim_raw, project_front_end
from l0emu.errors import InputFileError, SpecError
from l0emu.trigger.events import first_network_images
from l0emu.trigger.images import pooled_to_float
from l0emu.fixedpoint.spec import read_spec, spec_inputs
from l0emu.trigger.logic import Trigger

__all__ = ["check_firmware"]


def _rebuilt_firmware(spec_path: Path, spec: dict, into: Path):
    """Convert the spec's Keras model again with its saved settings, compile it, return the model.

    The rebuilt network must be the one the spec describes (same input, layers and
    outputs), so the C-simulation checks exactly what the emulator runs.
    """
    directory = spec_path if spec_path.is_dir() else spec_path.parent
    record = json.loads((directory / CONFIG_FILE).read_text()) if (directory / CONFIG_FILE).is_file() else {}
    model_file = project_front_end(record).model_file
    missing = [f for f in (CONFIG_FILE, model_file) if not (directory / f).is_file()]
    if missing:
        msg = (
            f"--check-firmware needs the hls4ml conversion beside the spec: {str(directory)!r} lacks "
            f"{', '.join(missing)}; pass --spec pointing into a directory written by 'l0emu convert'"
        )
        raise InputFileError(msg)
    hls_model, rebuilt = convert(directory / model_file, into, record["settings"], name=record["name"], compile=True)
    for key, part in (("inputs", spec_inputs), ("layers", itemgetter("layers")), ("outputs", itemgetter("outputs"))):
        if part(rebuilt) != part(spec):
            msg = f"{str(spec_path)!r}: its {key!r} differ from what hls4ml builds from {model_file}; re-run 'l0emu convert'"
            raise SpecError(msg)
    return hls_model


def check_firmware(spec_path, inputs, n: int, thresholds) -> int:
    """Compare emulator and C-simulation on ``n`` events; print a summary; 0 if identical, else 1."""
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    trigger = Trigger(spec, tuple(thresholds))
    pooled, n_events = first_network_images(inputs, n, spec)
    with tempfile.TemporaryDirectory(prefix="l0emu-check-") as tmp:
        hls_model = _rebuilt_firmware(spec_path, spec, Path(tmp) / "project")
        firmware = csim_raw(hls_model, pooled_to_float(pooled), spec)
    emulated = trigger.emulator.predict_raw(pooled)
    pt = trigger.emulator.column("pt")
    differing_events = np.nonzero((firmware != emulated).any(axis=1))[0]
    differing_decisions = {
        branch: int(((firmware[:, pt] >= t_raw) != (emulated[:, pt] >= t_raw)).sum())
        for branch, t_raw in trigger.threshold_raw.items()
    }
    images = f" ({len(pooled):,} candidate windows)" if trigger.multi else ""
    print(f"firmware check: {n_events:,} events{images}, emulator vs hls4ml C-simulation of {spec['name']!r}")
    print(f"  network inputs with any differing output bit: {len(differing_events)}")
    print("  differing decisions: " + ", ".join(f"{b} {k}" for b, k in differing_decisions.items()))
    if len(differing_events):
        first = int(differing_events[0])
        print(f"  first differing input: #{first}: emulator {emulated[first].tolist()} firmware {firmware[first].tolist()}")
        return 1
    return 0
