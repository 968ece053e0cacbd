"""``l0emu run --workers``: measured 1 -> 2 workers, and a projection for N from per-stage costs.

    l0emu bench scaling EVENTS.root [--step-size S] [--repeats R]

Runs the trigger job (the shipped default network) on EVENTS.root in one process and with a
local dask cluster of 1 and 2 workers (each worker writes its own part files, the client
merges counts), best of ``--repeats`` each, and prints events/s. Then times the stages of one
work unit of ``--step-size`` events in this process, one thread: reading and checking
(uproot), deciding (fragmentation and the emulator), writing the part file, and the client's
share (merging one unit's counts), and projects N workers as

    rate(N) = min(N * S / task_seconds, S / client_seconds)

per S-event unit: workers scale until the client saturates, whose per-unit cost is dask's
per-task handling (timed on trivial tasks) plus merging one unit's counts. The cluster's
start-up (timed too) is a fixed cost a long run amortises. Storage and network bandwidth are
not modelled: the projection holds while they keep up with reading the inputs (about
34 B/event) and writing the parts (about 23 B/event).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "l0emu run with 1 and 2 dask workers, and an N-worker projection from per-stage costs"


def add_arguments(parser) -> None:
    parser.add_argument("events_file", metavar="EVENTS", help="an events ROOT file (l0emu simulate)")
    parser.add_argument("--step-size", type=int, default=500_000, help="events per work unit (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, the best is kept (default %(default)s)")


def _job_rate(events_file, spec, workers, step_size, repeats, directory) -> float:
    from l0emu.schema import DEFAULT_THRESHOLDS
    from l0emu.trigger.job import run_job

    best = 0.0
    for k in range(repeats):
        out = directory / f"w{workers}_{k}" / "l0.root"
        out.parent.mkdir()
        result = run_job([events_file], spec, out, DEFAULT_THRESHOLDS, step_size=step_size, workers=workers, progress=False)
        best = max(best, result.n_events / result.seconds)
    return best


def _stage_seconds(events_file, spec, step_size, directory) -> dict:
    """One unit's stages, in this process, one thread (after a warm-up unit)."""
    from l0emu.results.rates import TriggerCounts
    from l0emu.schema import DEFAULT_THRESHOLDS
    from l0emu.trigger import job
    from l0emu.trigger.events import plan_ranges, read_range

    unit = plan_ranges([events_file], step_size)[0]
    trigger = job._worker_trigger(job.json.dumps(spec, sort_keys=True), DEFAULT_THRESHOLDS, 1)
    trigger.decide(read_range(*unit))  # compile
    t0 = time.perf_counter()
    chunk = read_range(*unit)
    t1 = time.perf_counter()
    trigger.decide(chunk)
    t2 = time.perf_counter()
    n, counts, _ = job.process_part(unit, job.json.dumps(spec, sort_keys=True), DEFAULT_THRESHOLDS, str(directory / "part.root"))
    t3 = time.perf_counter()
    total = TriggerCounts.empty(DEFAULT_THRESHOLDS)
    t4 = time.perf_counter()
    for _ in range(100):
        total = total + counts
    t5 = time.perf_counter()
    part_s = t3 - t2
    return {"events": n, "read_s": t1 - t0, "decide_s": t2 - t1, "write_s": max(part_s - (t2 - t0), 0.0),
            "task_s": part_s, "client_merge_s": (t5 - t4) / 100}


def _dask_costs(tasks: int = 400) -> tuple:
    """(seconds to start a one-worker local cluster, client + scheduler seconds per task): the
    second from ``tasks`` trivial tasks submitted at once, so the worker is never the limit."""
    from dask.distributed import Client, LocalCluster

    started = time.perf_counter()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50) as cluster:
        with Client(cluster) as client:
            start_s = time.perf_counter() - started
            client.gather(client.map(abs, range(-10, 0), pure=False))  # warm
            t0 = time.perf_counter()
            client.gather(client.map(abs, range(tasks), pure=False))
            per_task_s = (time.perf_counter() - t0) / tasks
    return start_s, per_task_s


def main(args) -> int:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from l0emu.cli.run import default_spec_path
    from l0emu.fixedpoint.spec import read_spec

    spec = read_spec(default_spec_path())
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rates = {w: _job_rate(args.events_file, spec, w, args.step_size, args.repeats, directory) for w in (0, 1, 2)}
        stages = _stage_seconds(args.events_file, spec, args.step_size, directory)
    cores = len(os.sched_getaffinity(0))
    print(f"l0emu run, shipped default network, {args.events_file}, step size {args.step_size:,}, {cores} usable cores, best of {args.repeats}")
    print(f"  one process (2 threads, one writer): {rates[0]:12,.0f} events/s")
    print(f"  --workers 1:                         {rates[1]:12,.0f} events/s")
    print(f"  --workers 2:                         {rates[2]:12,.0f} events/s  (x{rates[2] / rates[1]:.2f} over one worker)")
    n = stages["events"]
    print(f"one unit of {n:,} events, one thread: read {stages['read_s']:.3f} s, decide {stages['decide_s']:.3f} s, "
          f"write part {stages['write_s']:.3f} s (task {stages['task_s']:.3f} s = {n / stages['task_s']:,.0f} events/s); "
          f"client merge {stages['client_merge_s'] * 1e6:.0f} us")
    start_s, per_task_s = _dask_costs()
    client_cap = n / (per_task_s + stages["client_merge_s"])
    print(f"dask: a one-worker local cluster starts in {start_s:.1f} s; the client and scheduler handle a task in "
          f"{per_task_s * 1e3:.2f} ms; merging one unit's counts takes {stages['client_merge_s'] * 1e6:.0f} us")
    print(f"projection for a long run, one core per worker, storage keeping up: rate(N) = min(N x {n / stages['task_s']:,.0f}, "
          f"{client_cap:,.0f}) events/s (the second: the client's bound at {n:,} events per task)")
    for workers in (1, 2, 4, 8, 16, 64, 256):
        print(f"  projected --workers {workers:4d}: {min(workers * n / stages['task_s'], client_cap):14,.0f} events/s")
    return 0
