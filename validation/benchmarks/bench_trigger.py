"""Benchmark the trigger job end to end (ROOT in -> ROOT out) with the shipped student.

Prints events/s and peak RSS for a single-process run and for local dask clusters of 1
and 2 workers, each as a separate ``l0emu run`` process on the same generated sample; beside
each, uproot's read-only rate of the branches the trigger reads (awkward arrays, measured just
before and after the run), and the shipped student's emulator rate on one core.

    l0emu bench trigger --events 10000000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from l0emu.errors import L0emuError

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "the trigger job end to end (ROOT in -> ROOT out): one process and local dask clusters"


def _l0emu():
    return [sys.executable, "-m", "l0emu.cli"]


# Each measured command runs under its own small wrapper process, so the peak RSS
# reported (max over the command and all its descendants, dask workers included) is
# that command's alone.
_WRAPPER = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
)


def _run(args, label):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *_l0emu(), *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = f"{label} failed:\n{proc.stderr}"
        raise L0emuError(msg)
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return wall, peak_kb / 1024, proc.stdout


# uproot alone: the branches the trigger reads, as awkward arrays, chunk by chunk, best of 2 passes
_READ_ONLY = """
import sys, time, uproot
from l0emu.events import _NEEDED
tree = uproot.open(sys.argv[1])["events"]
best = float("inf")
for _ in range(2):
    started = time.perf_counter()
    n = sum(len(a) for a in tree.iterate(list(_NEEDED), step_size=int(sys.argv[2]), library="ak"))
    best = min(best, time.perf_counter() - started)
print(n / best)
"""

# the shipped student's emulator on one core (affinity and numba threads), from the uint8
# fragments of the sample's first events, best of 3
_EMULATOR_ONE_CORE = """
import os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from l0emu.cli_run import default_spec_path
from l0emu.emulator import Emulator
from l0emu.events import first_fragments
emulator = Emulator.from_spec(default_spec_path())
fragments = first_fragments([sys.argv[1]], int(sys.argv[2]), int(emulator.spec["preprocessing"]["fragment"]["stride"]))
emulator.predict_raw(fragments[:10])
best = float("inf")
for _ in range(3):
    started = time.perf_counter()
    emulator.predict_raw(fragments)
    best = min(best, time.perf_counter() - started)
print(len(fragments) / best)
"""

_MODES = {"single": ("single process", []), "dask1": ("dask 1 worker", ["--workers", "1"]), "dask2": ("dask 2 workers", ["--workers", "2"])}


def _python_rate(code, *argv):
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        msg = f"benchmark helper failed:\n{proc.stderr}"
        raise L0emuError(msg)
    return float(proc.stdout.strip().splitlines()[-1])


def _events_per_second(stdout):
    for line in stdout.splitlines():
        if line.startswith("l0emu run:") and "events/s" in line:
            return float(line.rsplit("(", 1)[1].split()[0].replace(",", ""))
    return float("nan")


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=10_000_000, help="events of the generated sample (default %(default)s)")
    parser.add_argument("--step-size", type=int, default=500_000, help="l0emu run --step-size (default %(default)s)")
    parser.add_argument("--keep", help="directory to keep the sample and outputs in")
    parser.add_argument(
        "--modes", nargs="+", choices=sorted(_MODES), default=["single", "dask1", "dask2"],
        help="what to run: single process and/or local dask clusters of 1 and 2 workers (default: all)",
    )
    parser.add_argument(
        "--emulator-events", type=int, default=1_000_000,
        help="fragments of the sample for the one-core emulator rate (default %(default)s; 0: skip)",
    )


def main(args) -> int:
    work = Path(args.keep or tempfile.mkdtemp(prefix="l0emu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.root"
    if not events.exists():
        _run(["simulate", "-n", str(args.events), "--seed", "7", "-o", str(events)], "simulate")
    print(f"sample: {args.events:,} events, {events.stat().st_size / 1e6:.0f} MB ({events})")
    results = {}
    for mode in args.modes:
        label, extra = _MODES[mode]
        out = work / f"l0_{label.replace(' ', '_')}.root"
        cmd = ["run", str(events), "-o", str(out), "--step-size", str(args.step_size), "--no-progress"] + extra
        # uproot's read-only rate of the same branches just before and after each run, so
        # the ratio compares like with like on a machine whose load changes
        before = _python_rate(_READ_ONLY, events, args.step_size)
        wall, rss_mb, stdout = _run(cmd, label)
        after = _python_rate(_READ_ONLY, events, args.step_size)
        loop_rate = _events_per_second(stdout)
        read_rate = (before + after) / 2
        results[label] = {
            "wall_s": wall, "loop_events_per_s": loop_rate, "process_events_per_s": args.events / wall,
            "peak_rss_mb": rss_mb, "uproot_read_only_events_per_s": read_rate, "loop_over_read_only": loop_rate / read_rate,
        }
        print(
            f"{label:15s}: {loop_rate:12,.0f} events/s in the event loop "
            f"({100 * loop_rate / read_rate:.0f} % of uproot's read-only {read_rate:,.0f} events/s of the same branches, "
            f"{before:,.0f} before / {after:,.0f} after), "
            f"{args.events / wall:12,.0f} events/s for the whole command (start-up and JIT included), "
            f"peak RSS {rss_mb:,.0f} MB"
        )
    if "dask 1 worker" in results and "dask 2 workers" in results:
        one, two = results["dask 1 worker"]["loop_events_per_s"], results["dask 2 workers"]["loop_events_per_s"]
        print(f"scaling 1 -> 2 workers: x{two / one:.2f}")
    if args.emulator_events > 0:
        rate = _python_rate(_EMULATOR_ONE_CORE, events, args.emulator_events)
        results["emulator one core"] = {"events_per_s": rate, "events": args.emulator_events}
        print(f"shipped student's emulator, one core, uint8 fragments of the sample: {rate:,.0f} events/s")
    print(json.dumps({"events": args.events, "cpus": os.cpu_count(), "results": results}))
    return 0

