"""``l0emu run --check-firmware N``: the trigger's decisions against hls4ml's C-simulation.

Takes the first N events of the run's inputs through the same fragmentation, then runs
the emulator and the C-simulation of the spec's hls4ml project on the same images and
compares every output bit and every threshold decision.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from firmware.hls4ml_bridge import CONFIG_FILE, KERAS_MODEL_FILE, SPEC_FILE, csim_raw, load_converted
from l0emu.errors import InputFileError
from l0emu.events import iterate_events
from l0emu.images import fragment_hits, pooled_to_float
from l0emu.spec import read_spec
from l0emu.trigger import Trigger

__all__ = ["first_events", "check_firmware"]


def first_events(inputs, n: int, stride: int):
    """Fragmented images of the first ``n`` events of ``inputs``, as uint8 lit-pixel counts."""
    pooled = []
    for chunk in iterate_events(inputs, step_size=max(n, 1)):
        pooled.append(fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, stride)[1])
        if sum(len(p) for p in pooled) >= n:
            break
    return np.concatenate(pooled)[:n] if pooled else np.zeros((0, 9, 16), np.uint8)


def _project_copy(spec_path: Path, into: Path) -> Path:
    """Copy a converted project's model, settings and spec so hls4ml can build it anywhere."""
    directory = spec_path if spec_path.is_dir() else spec_path.parent
    missing = [f for f in (SPEC_FILE, CONFIG_FILE, KERAS_MODEL_FILE) if not (directory / f).is_file()]
    if missing:
        msg = (
            f"--check-firmware needs the hls4ml conversion beside the spec: {str(directory)!r} lacks "
            f"{', '.join(missing)}; pass --spec pointing into a directory written by 'l0emu convert'"
        )
        raise InputFileError(msg)
    for name in (SPEC_FILE, CONFIG_FILE, KERAS_MODEL_FILE):
        shutil.copy(directory / name, into / name)
    return into


def check_firmware(spec_path, inputs, n: int, thresholds) -> int:
    """Compare emulator and C-simulation on ``n`` events; print a summary; 0 if identical, else 1."""
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    trigger = Trigger(spec, tuple(thresholds))
    pooled = first_events(inputs, n, trigger.stride)
    with tempfile.TemporaryDirectory(prefix="l0emu-check-") as tmp:
        hls_model, _ = load_converted(_project_copy(spec_path, Path(tmp)))
        firmware = csim_raw(hls_model, pooled_to_float(pooled), spec)
    emulated = trigger.emulator.predict_raw(pooled)
    pt = trigger.pt_out["index"]
    differing_events = np.nonzero((firmware != emulated).any(axis=1))[0]
    differing_decisions = {
        branch: int(((firmware[:, pt] >= t_raw) != (emulated[:, pt] >= t_raw)).sum())
        for branch, t_raw in trigger.threshold_raw.items()
    }
    print(f"firmware check: {len(pooled):,} events, emulator vs hls4ml C-simulation of {spec['name']!r}")
    print(f"  events with any differing output bit: {len(differing_events)}")
    print("  differing decisions: " + ", ".join(f"{b} {k}" for b, k in differing_decisions.items()))
    if len(differing_events):
        first = int(differing_events[0])
        print(f"  first differing event: #{first}: emulator {emulated[first].tolist()} firmware {firmware[first].tolist()}")
        return 1
    return 0
