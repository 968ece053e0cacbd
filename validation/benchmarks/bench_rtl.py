"""The RTL table: da4ml pipeline and resource estimates, Verilator build and bit-exactness.

    nice l0emu bench rtl DIR [DIR ...] [--latency-cutoff 5 [K ...]]
        [--clock-ns 2] [--simulate N [--events FILE.root ...]]

For every converted project DIR (holding spec.json) and every latency cutoff, traces the
network with da4ml (the same path as ``l0emu rtl``) into a scratch directory and prints one
markdown row: weight/activation widths, input type, pipeline stages, latency at the clock,
da4ml's LUT and FF estimates and their share of an xcvu13p. With ``--simulate N`` (first
cutoff only), also compiles the Verilog with Verilator, runs N events (the first N of
``--events`` fragmented at the spec's stride, else random inputs) and counts events whose
outputs differ from the numba emulator (and the other references) in any bit.

Estimates are da4ml's, not synthesis results; latency = stages x clock assumes every stage
meets timing at that clock, which only synthesis and place-and-route can confirm.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from l0emu.fixedpoint.aptypes import parse_type
from l0emu.fixedpoint.spec import spec_inputs

__all__ = ["DESCRIPTION", "COLUMNS", "add_arguments", "main"]

DESCRIPTION = "the RTL table: da4ml pipeline and resource estimates, Verilator build and bit-exactness"

COLUMNS = (
    "model", "w/a bits", "input", "cutoff", "stages", "latency ns", "LUT (est.)", "LUT % vu13p",
    "FF (est.)", "FF % vu13p", "trace s", "Verilator build s", "sim events/s", "events", "differing events",
)


def _widths(spec) -> str:
    """'w/a': weight width of the first weighted layer and result width of the first relu
    (the quantized body; an unquantized output layer keeps hls4ml's default type)."""
    weight = next(parse_type(layer["weight_type"]).width for layer in spec["layers"] if "weight_type" in layer)
    relu = next((parse_type(layer["result_type"]).width for layer in spec["layers"] if layer["op"] == "relu"), "-")
    return f"{weight}/{relu}"


def _short(t) -> str:
    return f"{'ap_fixed' if t.signed else 'ap_ufixed'}<{t.width},{t.integer}>"


def _simulate(spec, build, directory, args, cutoff):
    import numpy as np

    from l0emu.firmware import rtl

    if args.events:
        inputs = rtl.event_inputs(spec, args.events, args.simulate)
    else:
        inputs = rtl.random_inputs(spec, args.simulate, seed=args.seed)
    got, compile_s, simulate_s = rtl.simulate(build, inputs, cutoff, args.clock_ns)
    differing = np.zeros(len(got), dtype=bool)
    for name, reference in rtl.references(spec, build, inputs).items():
        bad = np.any(got != np.asarray(reference).reshape(got.shape), axis=1)
        if bad.any():
            print(f"# {directory}: RTL vs {name}: {int(bad.sum())} events differ")
        differing |= bad
    return [f"{compile_s:.0f}", f"{len(got) / simulate_s:,.0f}", f"{len(got):,}", f"{int(differing.sum())}"]


def _row(directory, cutoff, args, simulate):
    from l0emu.firmware import rtl  # da4ml and numba: only when the benchmark runs
    from l0emu.fixedpoint.spec import read_spec

    spec = read_spec(directory)

    with tempfile.TemporaryDirectory(prefix="l0emu-bench-rtl-") as tmp:
        started = time.perf_counter()
        build, s = rtl.build_rtl(spec, tmp, cutoff, args.clock_ns)
        trace_s = time.perf_counter() - started
    row = [
        Path(directory).name, _widths(spec), _short(parse_type(spec_inputs(spec)[0]["type"])),
        f"{cutoff:g}", str(s["stages"]), f"{s['latency_ns']:g}", f"{s['luts']:,.0f}", f"{100 * s['lut_share']:.3f}",
        f"{s['ffs']:,}", f"{100 * s['ff_share']:.3f}", f"{trace_s:.0f}",
    ]
    row += _simulate(spec, build, directory, args, cutoff) if simulate else ["-"] * 4
    print("| " + " | ".join(row) + " |", flush=True)
    return row


def add_arguments(parser) -> None:
    parser.add_argument("directories", nargs="+", metavar="DIR", help="converted projects holding spec.json")
    parser.add_argument("--latency-cutoff", type=float, nargs="+", default=[5.0], metavar="K", help="da4ml delay units per pipeline stage, one row each (default 5)")
    parser.add_argument("--clock-ns", type=float, default=2.0, help="clock period in ns (default 2)")
    parser.add_argument("--simulate", type=int, default=0, metavar="N", help="Verilator events per project (first cutoff only)")
    parser.add_argument("--events", nargs="+", metavar="FILE.root", help="event files for --simulate (default: random inputs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def main(args) -> int:
    print(f"# da4ml estimates at a {args.clock_ns:g} ns clock; no synthesis or place-and-route was run")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    rows = []
    for directory in args.directories:
        for n, cutoff in enumerate(args.latency_cutoff):
            rows.append(_row(directory, cutoff, args, simulate=args.simulate > 0 and n == 0))
    return 1 if any(row[-1] not in ("-", "0") for row in rows) else 0

