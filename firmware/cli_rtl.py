"""``l0emu rtl DIR``: spec -> Verilog via da4ml, optionally checked bit for bit in Verilator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from l0emu.util.atomic import check_output, outputs_complete
from l0emu.errors import ConfigError

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "spec -> Verilog via da4ml, checked in Verilator"


def add_arguments(parser):
    parser.add_argument("directory", metavar="DIR", help="project directory holding spec.json; Verilog goes to DIR/rtl/")
    parser.add_argument(
        "--latency-cutoff", type=float, default=5.0, metavar="K",
        help="da4ml delay units (adder levels) per pipeline stage; smaller = more stages (default 5, as da4ml's CLI)",
    )
    parser.add_argument("--clock-ns", type=float, default=2.0, help="clock period in ns for the timing constraint and latency (default 2)")
    parser.add_argument(
        "--simulate", type=int, default=0, metavar="N",
        help="compile with Verilator and compare N events bit for bit with the emulator and a pure-Python reference",
    )
    parser.add_argument(
        "--events", nargs="+", metavar="FILE.root",
        help="with --simulate: the first N events of these files, made into network inputs as the trigger job makes them (default: random inputs)",
    )
    parser.add_argument("--csim", action="store_true", help="with --simulate: also compare with hls4ml's C-simulation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input events (default 0)")


def _print_summary(summary):
    print(f"RTL written to {summary['rtl_dir']}/ (Verilog, da4ml)")
    print("  estimates from da4ml, not synthesis results (no Vivado/Vitis here):")
    print(f"  pipeline stages         {summary['stages']} (latency cutoff {summary['latency_cutoff']:g})")
    print(f"  latency (estimate)      {summary['latency_ns']:g} ns at a {summary['clock_ns']:g} ns clock")
    print(f"  LUTs (estimate)         {summary['luts']:.0f}  = {100 * summary['lut_share']:.3f} % of an xcvu13p (1,728,000)")
    print(f"  FFs (estimate)          {summary['ffs']}  = {100 * summary['ff_share']:.3f} % of an xcvu13p (3,456,000)")


def _compare(name, got, reference) -> bool:
    differ = got != reference
    events = np.any(differ, axis=1)
    if events.any():
        first = int(np.flatnonzero(events)[0])
        print(
            f"  RTL vs {name}: {int(events.sum())} of {len(got)} events differ; first: event {first}, "
            f"RTL {got[first].tolist()} vs {reference[first].tolist()}"
        )
        return False
    print(f"  RTL vs {name}: all {len(got)} events equal, every output bit")
    return True


def main(args) -> int:
    from l0emu.firmware import rtl
    from l0emu.fixedpoint.spec import read_spec  # numba: not for --help

    if args.simulate < 0:
        msg = f"--simulate takes a number of events >= 0, got {args.simulate}"
        raise ConfigError(msg)
    if args.events and not args.simulate:
        msg = "--events needs --simulate N (how many of its events to run)"
        raise ConfigError(msg)
    spec = read_spec(args.directory)
    check_output(Path(args.directory) / "rtl", directory=True, inputs=args.events or (), option="output")
    build, summary = rtl.build_rtl(spec, args.directory, args.latency_cutoff, args.clock_ns)
    if not args.simulate:
        outputs_complete()
        _print_summary(summary)
        return 0
    _print_summary(summary)

    if args.events:
        inputs = rtl.event_inputs(spec, args.events, args.simulate)
        source = f"{len(inputs)} network inputs from the first {args.simulate} events of {', '.join(args.events)}"
    else:
        inputs = rtl.random_inputs(spec, args.simulate, seed=args.seed)
        source = f"{args.simulate} random events (seed {args.seed})"
    print(f"simulating {source} in Verilator (compiling the Verilog; this takes a while) ...")
    got, compile_seconds, simulate_seconds = rtl.simulate(build, inputs, args.latency_cutoff, args.clock_ns)
    print(f"  Verilator build: {compile_seconds:.1f} s; simulation: {simulate_seconds:.1f} s = {len(got) / simulate_seconds:,.0f} events/s")
    references = rtl.references(spec, build, inputs, args.directory if args.csim else None)
    if "pure-Python reference" not in references:
        print(f"  pure-Python reference skipped: {rtl.exact_limit(spec)}")
    ok = all([_compare(name, got, np.asarray(ref).reshape(got.shape)) for name, ref in references.items()])
    outputs_complete()
    print("RTL simulation: bit-exact" if ok else "RTL simulation: MISMATCH")
    return 0 if ok else 1
