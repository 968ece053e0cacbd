"""Emulator vs hls4ml C-simulation vs QKeras throughput on the shipped 4-bit student, one core.

    taskset -c 0 l0emu bench emulator [--events N] [--csim-events M] [--network shipped|seed]
    taskset -c 0 l0emu bench emulator --spec PATH [--events N] [--da4ml-events M]

With ``--spec`` (a spec.json, or a converted project directory): any network, with rows for
the emulator as built, its single generated kernel, ONNX Runtime on the float Keras model
beside the spec (``keras_model.h5``, as ``l0emu convert`` writes it; tf2onnx, one thread) and
da4ml's C++ interpreter (``comb_trace(...).predict``, one thread) on the first
``--da4ml-events``, with the bits where da4ml and the emulator differ.

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

DESCRIPTION = "emulator vs C-simulation vs QKeras on the shipped student, or vs ONNX Runtime and da4ml on any --spec, one core"


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
    parser.add_argument("--spec", metavar="PATH", help="any network: spec.json or a converted project directory (ONNX Runtime needs its keras_model.h5)")
    parser.add_argument("--da4ml-events", type=int, default=2_000, help="with --spec: events for da4ml's interpreter, 0 for none (default %(default)s)")


def _spec_rows(args) -> int:
    """``--spec``: the emulator, its single kernel, ONNX Runtime float and da4ml's interpreter."""
    import numpy as np

    from l0emu.firmware.rtl import interpret, trace_spec
    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.fixedpoint.spec import read_spec, spec_inputs
    from l0emu.validation.benchmarks.bench_networks import _best, measure, print_row

    path = Path(args.spec)
    project = path if path.is_dir() else path.parent
    row = measure(project, args.events, args.repeats)
    print_row(read_spec(path)["name"], row)
    if args.da4ml_events:
        spec = read_spec(path)
        x = np.random.default_rng(1).normal(0, 3, (args.da4ml_events, *spec_inputs(spec)[0]["shape"])).astype(np.float32)
        started = time.perf_counter()
        build = trace_spec(spec)
        trace_s = time.perf_counter() - started
        emulator = Emulator(spec)
        # da4ml takes the input values on the input type's grid: the emulator's own cast of the floats
        grid = emulator.input_type.to_float(emulator._inputs(x)[0])
        rate = _best(lambda v: interpret(build, v), grid, args.repeats)
        differing = int(np.unpackbits((interpret(build, grid) ^ emulator.predict_raw(x)).view(np.uint8)).sum())
        print(f"da4ml interpreter {rate:12,.0f} ev/s ({len(x):,} events, traced in {trace_s:.1f} s); bits differing from the emulator: {differing}")
        row["differing_bits"] += differing
    return 1 if row["differing_bits"] else 0


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
    if args.spec:
        return _spec_rows(args)
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

