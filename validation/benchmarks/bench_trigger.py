"""Benchmark the trigger job end to end (ROOT in -> ROOT out) with the shipped student.

Prints events/s and peak RSS for a single-process run and for local dask clusters of 1
and 2 workers, each as a separate ``l0emu run`` process on the same generated sample; beside
each, uproot's read-only rate of the branches the trigger reads (awkward arrays, measured just
before and after the run) and their ratio, the same in CPU time (what a loaded machine still
measures), the shipped student's emulator rate on one core, and the CPU seconds of each stage
of the single-process loop (issue 14). ``--model multi --scenario multi`` times the multi
network's job (sector logic, up to three candidates per crossing) on a ``multi`` sample; the
one-core emulator rate and the stage profile are the single-window loop's and are skipped there.

    l0emu bench trigger --events 5000000 --modes single
    l0emu bench trigger --events 1000000 --modes single --model multi --scenario multi
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


# uproot alone: the branches the trigger reads, as awkward arrays, chunk by chunk, best of 2
# passes; prints events per wall second and per CPU second
_READ_ONLY = """
import sys, time, uproot
from l0emu.trigger.events import _NEEDED
tree = uproot.open(sys.argv[1])["events"]
best, best_cpu = float("inf"), float("inf")
for _ in range(2):
    started, cpu = time.perf_counter(), time.process_time()
    n = sum(len(a) for a in tree.iterate(list(_NEEDED), step_size=int(sys.argv[2]), library="ak"))
    best, best_cpu = min(best, time.perf_counter() - started), min(best_cpu, time.process_time() - cpu)
print(n / best, n / best_cpu)
"""

# the shipped student's emulator on one core (affinity and numba threads), from the uint8
# fragments of the sample's first events, best of 3
_EMULATOR_ONE_CORE = """
import os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from l0emu.cli.run import default_spec_path
from l0emu.fixedpoint.emulator import Emulator
from l0emu.trigger.events import first_fragments
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

# CPU seconds of each stage of the single-process loop, each timed alone on one thread
# (time.thread_time) over the sample's work units: what the pipeline has to fit on the cores
_STAGES = """
import json, sys, time
import uproot
from l0emu.cli.run import default_spec_path
from l0emu.trigger.events import _NEEDED, RangeReader, open_events, plan_ranges
from l0emu.trigger.images import fragment_hits
from l0emu.trigger.job import _COMPRESSION
from l0emu.results.l0_file import make_l0_writer
from l0emu.results.rates import TriggerCounts
from l0emu.schema import DEFAULT_THRESHOLDS
from l0emu.fixedpoint.spec import read_spec
from l0emu.trigger.logic import Trigger

trigger = Trigger(read_spec(default_spec_path()), DEFAULT_THRESHOLDS)
trigger.compile()
units = plan_ranges([sys.argv[1]], int(sys.argv[2]))
seconds = dict.fromkeys(["uproot", "read", "fragment", "emulator", "columns", "write", "counts"], 0.0)

def timed(stage, function, *args):
    started = time.thread_time()
    result = function(*args)
    seconds[stage] += time.thread_time() - started
    return result

tree = open_events(sys.argv[1])
read = RangeReader()
algorithm, level = _COMPRESSION
with uproot.recreate(sys.argv[3], compression=getattr(uproot, algorithm)(level)) as file:
    writer = make_l0_writer(file, tuple(trigger.threshold_raw))
    for path, start, stop in units:
        timed("uproot", lambda: tree.arrays(list(_NEEDED), entry_start=start, entry_stop=stop, library="ak"))
        chunk = timed("read", read, path, start, stop)
        hits = (chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip)
        starts, pooled = timed("fragment", fragment_hits, *hits, trigger.stride)
        raw = timed("emulator", trigger.emulator.predict_raw, pooled)
        columns = timed("columns", trigger.columns, chunk, starts, raw)
        timed("write", writer.extend, columns)
        timed("counts", TriggerCounts.from_columns, columns, trigger.thresholds)
n = units[-1][2] if units else 0
print(json.dumps({"events": n, "units": len(units), "compression": f"{algorithm}({level})", "seconds": seconds}))
"""

_STAGE_LABELS = {
    "uproot": "uproot alone: the branches as awkward arrays (inside read)",
    "read": "reading a unit: uproot + hit checks + leading muon",
    "fragment": "fragmentation (numba)",
    "emulator": "network emulator (numba)",
    "columns": "output columns (pT, global eta, decisions)",
    "write": "l0 tree: compression + writing",
    "counts": "turn-on / fake-rate counts",
}

_MODES = {"single": ("single process", []), "dask1": ("dask 1 worker", ["--workers", "1"]), "dask2": ("dask 2 workers", ["--workers", "2"])}


def _python_rates(code, *argv) -> list[float]:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        msg = f"benchmark helper failed:\n{proc.stderr}"
        raise L0emuError(msg)
    return [float(v) for v in proc.stdout.strip().splitlines()[-1].split()]


def _loop_figures(stdout):
    """(events/s, CPU seconds) of the event loop from the 'l0emu run:' line."""
    for line in stdout.splitlines():
        if line.startswith("l0emu run:") and "events/s" in line:
            inside = line.rsplit("(", 1)[1]
            cpu = inside.split(" s of CPU")[0].rsplit(" ", 1)[-1] if " s of CPU" in inside else "nan"
            return float(inside.split()[0].replace(",", "")), float(cpu)
    return float("nan"), float("nan")


def _print_stages(events, step_size, output, results) -> dict:
    """Run and print the per-stage CPU profile; returns it."""
    argv = [sys.executable, "-c", _STAGES, str(events), str(step_size), str(output)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = f"stage profile failed:\n{proc.stderr}"
        raise L0emuError(msg)
    profile = json.loads(proc.stdout.strip().splitlines()[-1])
    n, seconds = profile["events"], profile["seconds"]
    print(f"CPU per stage, one thread, {n:,} events in {profile['units']} units, l0 tree {profile['compression']}:")
    for stage, label in _STAGE_LABELS.items():
        rate = n / seconds[stage] / 1e6 if seconds[stage] else float("inf")
        print(f"  {label:55s} {seconds[stage]:6.2f} s  {rate:7.2f} M events/s")
    total = sum(v for k, v in seconds.items() if k != "uproot")  # uproot is inside read
    cores = len(os.sched_getaffinity(0))
    best = n / total * cores
    print(f"  {'all stages':55s} {total:6.2f} s  {n / total / 1e6:7.2f} M events/s per core")
    single = results.get("single process")
    if single:
        read_rate = single["uproot_read_only_events_per_cpu_s"]
        print(
            f"  perfectly spread over {cores} free cores: {best:,.0f} events/s, {100 * best / read_rate:.0f} % of uproot's "
            f"read-only {read_rate:,.0f} events per CPU-second"
        )
    return profile


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=5_000_000, help="events of the generated sample (default %(default)s)")
    parser.add_argument("--step-size", type=int, default=500_000, help="l0emu run --step-size (default %(default)s)")
    parser.add_argument("--keep", help="directory to keep the sample and outputs in")
    parser.add_argument("--model", default="default", help="l0emu run --model: the shipped network to run (default %(default)s)")
    parser.add_argument("--scenario", default="default", help="l0emu simulate --scenario of the sample (default %(default)s)")
    parser.add_argument(
        "--modes", nargs="+", choices=sorted(_MODES), default=["single", "dask1", "dask2"],
        help="what to run: single process and/or local dask clusters of 1 and 2 workers (default: all)",
    )
    parser.add_argument(
        "--emulator-events", type=int, default=1_000_000,
        help="fragments of the sample for the one-core emulator rate (default %(default)s; 0: skip)",
    )
    parser.add_argument(
        "--no-profile", action="store_true",
        help="skip the per-stage CPU profile of the single-process loop (one thread over the whole sample)",
    )


def main(args) -> int:
    work = Path(args.keep or tempfile.mkdtemp(prefix="l0emu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events = work / ("events.root" if args.scenario == "default" else f"events_{args.scenario}.root")
    if not events.exists():
        _run(["simulate", "-n", str(args.events), "--seed", "7", "--scenario", args.scenario, "-o", str(events)], "simulate")
    print(f"sample: {args.events:,} {args.scenario!r} events, {events.stat().st_size / 1e6:.0f} MB ({events}); network --model {args.model}")
    single_window = args.model == "default"  # the emulator rate and stage profile run the default student's loop
    results = {}
    for mode in args.modes:
        label, extra = _MODES[mode]
        out = work / f"l0_{label.replace(' ', '_')}.root"
        cmd = ["run", str(events), "-o", str(out), "--model", args.model, "--step-size", str(args.step_size), "--no-progress"] + extra
        # uproot's read-only rate of the same branches just before and after each run, so
        # the ratio compares like with like on a machine whose load changes
        load = os.getloadavg()[0]
        before, before_cpu = _python_rates(_READ_ONLY, events, args.step_size)
        wall, rss_mb, stdout = _run(cmd, label)
        after, after_cpu = _python_rates(_READ_ONLY, events, args.step_size)
        loop_rate, loop_cpu = _loop_figures(stdout)
        read_rate, read_cpu_rate = (before + after) / 2, (before_cpu + after_cpu) / 2
        cores = len(os.sched_getaffinity(0))
        results[label] = {
            "wall_s": wall, "loop_events_per_s": loop_rate, "process_events_per_s": args.events / wall,
            "peak_rss_mb": rss_mb, "uproot_read_only_events_per_s": read_rate, "loop_over_read_only": loop_rate / read_rate,
            "loop_cpu_s": loop_cpu, "uproot_read_only_events_per_cpu_s": read_cpu_rate, "load_average": load,
        }
        print(
            f"{label:15s}: {loop_rate:12,.0f} events/s in the event loop "
            f"({100 * loop_rate / read_rate:.0f} % of uproot's read-only {read_rate:,.0f} events/s of the same branches, "
            f"{before:,.0f} before / {after:,.0f} after), "
            f"{args.events / wall:12,.0f} events/s for the whole command (start-up and JIT included), "
            f"peak RSS {rss_mb:,.0f} MB, load average {load:.1f} on {cores} cores"
        )
        if not extra:  # the loop's CPU time on free cores against uproot's on one: what a loaded machine still supports
            print(
                f"{'':15s}  CPU: the loop used {loop_cpu:.2f} s ({args.events / loop_cpu:,.0f} events per CPU-second), "
                f"uproot alone {read_cpu_rate:,.0f} events per CPU-second: on {cores} free cores at most "
                f"{cores * args.events / loop_cpu:,.0f} events/s, "
                f"{100 * cores * args.events / loop_cpu / read_cpu_rate:.0f} % "
                "of uproot's read-only rate"
            )
    if "dask 1 worker" in results and "dask 2 workers" in results:
        one, two = results["dask 1 worker"]["loop_events_per_s"], results["dask 2 workers"]["loop_events_per_s"]
        print(f"scaling 1 -> 2 workers: x{two / one:.2f}")
    if not single_window and (args.emulator_events > 0 or not args.no_profile):
        print(f"one-core emulator rate and stage profile skipped: they time the default student's single-window loop, not --model {args.model}")
    if args.emulator_events > 0 and single_window:
        rate = _python_rates(_EMULATOR_ONE_CORE, events, args.emulator_events)[0]
        results["emulator one core"] = {"events_per_s": rate, "events": args.emulator_events}
        print(f"shipped student's emulator, one core, uint8 fragments of the sample: {rate:,.0f} events/s")
    if not args.no_profile and single_window:
        results["stages"] = _print_stages(events, args.step_size, work / "l0_stages.root", results)
    print(json.dumps({"events": args.events, "scenario": args.scenario, "model": args.model, "cpus": os.cpu_count(), "results": results}))
    return 0

