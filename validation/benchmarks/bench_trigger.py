"""Benchmark the trigger job end to end (ROOT in -> ROOT out) with the shipped student.

Prints events/s and peak RSS for a single-process run and for local dask clusters of 1
and 2 workers, each as a separate ``l0emu run`` process on the same generated sample.

    python -m l0emu.validation.benchmarks.bench_trigger --events 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


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
        sys.exit(f"{label} failed:\n{proc.stderr}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return wall, peak_kb / 1024, proc.stdout


def _events_per_second(stdout):
    for line in stdout.splitlines():
        if line.startswith("l0emu run:") and "events/s" in line:
            return float(line.rsplit("(", 1)[1].split()[0].replace(",", ""))
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--step-size", type=int, default=500_000)
    parser.add_argument("--keep", help="directory to keep the sample and outputs in")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="l0emu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.root"
    if not events.exists():
        _run(["simulate", "-n", str(args.events), "--seed", "7", "-o", str(events)], "simulate")
    print(f"sample: {args.events:,} events, {events.stat().st_size / 1e6:.0f} MB ({events})")
    results = {}
    for label, extra in (("single process", []), ("dask 1 worker", ["--workers", "1"]), ("dask 2 workers", ["--workers", "2"])):
        out = work / f"l0_{label.replace(' ', '_')}.root"
        cmd = ["run", str(events), "-o", str(out), "--step-size", str(args.step_size), "--no-progress"] + extra
        wall, rss_mb, stdout = _run(cmd, label)
        loop_rate = _events_per_second(stdout)
        results[label] = {"wall_s": wall, "loop_events_per_s": loop_rate, "process_events_per_s": args.events / wall, "peak_rss_mb": rss_mb}
        print(
            f"{label:15s}: {loop_rate:12,.0f} events/s in the event loop, "
            f"{args.events / wall:12,.0f} events/s for the whole command (start-up and JIT included), "
            f"peak RSS {rss_mb:,.0f} MB"
        )
    one, two = results["dask 1 worker"]["loop_events_per_s"], results["dask 2 workers"]["loop_events_per_s"]
    print(f"scaling 1 -> 2 workers: x{two / one:.2f}")
    print(json.dumps({"events": args.events, "cpus": os.cpu_count(), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
