"""Emulator vs hls4ml C-simulation vs QKeras throughput on the shipped 4-bit student, one core.

    taskset -c 0 l0emu bench emulator [--events N] [--csim-events M] [--network shipped|seed]

``shipped`` (the default) converts the shipped student (``l0emu/data/default_student``: its
Keras model and ``convert.yml``) into a temporary hls4ml project; ``seed`` builds the seed
architecture with ``firmware.models.build_student(nbits=4)`` and deterministic random weights
(throughput depends on the weights: zero weights are dropped from the kernel). Checks the
emulator against the C-simulation bit for bit on the C-simulation's events and prints
events/s from uint8 fragments (what the trigger job passes) and from float inputs, the
C-simulation's and QKeras' rates, and the numba compile time.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "emulator vs hls4ml C-simulation vs QKeras throughput on the shipped 4-bit student, one core"


def _best_rate(function, x, repeats):
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(x)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="events for the emulator timing (default %(default)s)")
    parser.add_argument("--csim-events", type=int, default=20_000, help="events for C-simulation and QKeras (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="emulator timings, the best is kept (default %(default)s)")
    parser.add_argument("--network", choices=("shipped", "seed"), default="shipped", help="the shipped student or the seed architecture with random weights (default %(default)s)")


def _model_and_settings(network, tmp):
    """The Keras model file and conversion settings of the benchmarked network."""
    import importlib.resources

    import numpy as np

    from l0emu.firmware.hls4ml_bridge import read_convert_config
    from l0emu.firmware.models import build_student

    if network == "shipped":
        shipped = importlib.resources.files("l0emu") / "data" / "default_student"
        return Path(str(shipped / "keras_model.h5")), read_convert_config(Path(str(shipped / "convert.yml")))
    model = build_student(nbits=4)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    model_path = Path(tmp) / "student_q4.h5"
    model.save(str(model_path))
    return model_path, None


def main(args) -> int:
    # one numba thread, set before numba is first imported (l0emu's CLI imports none before this)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    import numpy as np

    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.firmware.hls4ml_bridge import convert, csim_raw, load_keras_model
    from l0emu.trigger.images import pooled_to_float
    from l0emu.validation.compare import random_fragments

    with tempfile.TemporaryDirectory() as tmp:
        model_path, settings = _model_and_settings(args.network, tmp)
        model = load_keras_model(model_path)
        hls_model, spec = convert(model_path, Path(tmp) / "fw", settings, compile=True)
        started = time.perf_counter()
        emulator = Emulator.from_spec(spec)
        emulator.predict_raw(random_fragments(1))
        emulator.predict_raw(pooled_to_float(random_fragments(1)))
        compile_s = time.perf_counter() - started
        counts = random_fragments(args.events, seed=1)
        small = counts[: args.csim_events]
        emu_rate = _best_rate(emulator.predict_raw, counts, args.repeats)
        floats = pooled_to_float(counts[: args.events // 4])
        float_rate = _best_rate(emulator.predict_raw, floats, args.repeats)
        started = time.perf_counter()
        csim = csim_raw(hls_model, pooled_to_float(small), spec)
        csim_rate = len(small) / (time.perf_counter() - started)
        keras_rate = _best_rate(lambda x: model.predict(pooled_to_float(x), batch_size=4096, verbose=0), small, 1)
        mismatched = int(np.any(emulator.predict_raw(small) != csim, axis=1).sum())
    print(f"{args.network} student {spec['name']!r}, {len(spec['layers'])} layers, one core (NUMBA_NUM_THREADS=1; run under taskset -c 0)")
    print(f"numba compile + kernel generation:  {compile_s:8.1f} s (cached on disk afterwards)")
    print(f"emulator:       {emu_rate:14,.0f} events/s  from uint8 fragments ({len(counts):,} events, best of {args.repeats})")
    print(f"emulator:       {float_rate:14,.0f} events/s  from float inputs ({len(floats):,} events, best of {args.repeats})")
    print(f"C-simulation:   {csim_rate:14,.0f} events/s  ({len(small):,} events)")
    print(f"QKeras:         {keras_rate:14,.0f} events/s  ({len(small):,} events)")
    print(f"emulator / C-simulation: {emu_rate / csim_rate:,.0f}x; events with differing bits: {mismatched}")
    return 1 if mismatched else 0

