"""The trigger job: event files in, ``l0`` tree, histograms, tables and plots out.

Work is split into (file, entry range) units. They run in this process or on a dask
cluster, and are consumed in order with a bounded number in flight, so memory is set
by the chunk size and the output is identical event by event whatever the split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uproot
from tqdm import tqdm

from .atomic import atomic_path
from .errors import ConfigError
from .events import expand_paths, plan_ranges, read_range
from .output import l0_branch_types, plot_turn_on, write_csv, write_histograms, write_json
from .rates import RateAssumptions, TriggerCounts, rate_table
from .schema import L0_TREE
from .trigger import Trigger

__all__ = ["JobResult", "run_job", "side_outputs"]


@dataclasses.dataclass
class JobResult:
    n_events: int
    seconds: float  # the event loop, reading and writing included
    compile_seconds: float  # building the trigger: spec checks and the emulator's JIT
    rows: list
    counts: TriggerCounts
    outputs: dict


def side_outputs(output) -> dict:
    """Paths written beside the ROOT file: l0.root -> l0_rates.csv, l0_rates.json, l0_turn_on.png."""
    output = Path(output)
    stem = output.with_suffix("")
    return {
        "root": output,
        "csv": Path(f"{stem}_rates.csv"),
        "json": Path(f"{stem}_rates.json"),
        "turn_on_png": Path(f"{stem}_turn_on.png"),
    }


_WORKER_TRIGGERS: dict = {}


def _worker_trigger(spec_text: str, thresholds) -> Trigger:
    """One Trigger per process and spec: the emulator is compiled once per worker."""
    key = (hashlib.sha256(spec_text.encode()).hexdigest(), tuple(thresholds))
    if key not in _WORKER_TRIGGERS:
        _WORKER_TRIGGERS[key] = Trigger(json.loads(spec_text), tuple(thresholds))
    return _WORKER_TRIGGERS[key]


def process_range(unit, spec_text: str, thresholds):
    """Decide one (path, start, stop) unit; returns the ``l0`` columns. Runs on workers too."""
    trigger = _worker_trigger(spec_text, thresholds)
    return trigger.decide(read_range(*unit))


def _local(units, spec_text, thresholds):
    """Decide units in order while a reader thread decompresses the next one.

    The numba kernels release the GIL, so reading overlaps the emulation.
    """
    trigger = _worker_trigger(spec_text, thresholds)
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(read_range, *units[0]) if units else None
        for i in range(len(units)):
            chunk = upcoming.result()
            upcoming = reader.submit(read_range, *units[i + 1]) if i + 1 < len(units) else None
            yield trigger.decide(chunk)


def _distributed(units, spec_text, thresholds, client, in_flight):
    futures = []
    pending = iter(units)
    for unit in pending:
        futures.append(client.submit(process_range, unit, spec_text, thresholds, pure=False))
        if len(futures) >= in_flight:
            break
    while futures:
        head = futures.pop(0)
        result = head.result()
        head.release()
        nxt = next(pending, None)
        if nxt is not None:
            futures.append(client.submit(process_range, nxt, spec_text, thresholds, pure=False))
        yield result


@contextlib.contextmanager
def _client(workers, scheduler):
    if not workers and not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError as err:
        msg = "--workers/--scheduler need dask.distributed: pip install -e '.[dask]'"
        raise ConfigError(msg) from err
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client


def run_job(
    inputs,
    spec: dict,
    output,
    thresholds,
    *,
    step_size: int = 500_000,
    assumptions: RateAssumptions = RateAssumptions(),
    workers: int = 0,
    scheduler: str | None = None,
    progress: bool = True,
) -> JobResult:
    """Run the trigger over ``inputs`` and write every output atomically."""
    if step_size < 1:
        msg = f"--step-size must be >= 1, got {step_size}"
        raise ConfigError(msg)
    thresholds = tuple(float(t) for t in thresholds)
    paths = expand_paths(inputs)
    units = plan_ranges(paths, step_size)
    spec_text = json.dumps(spec, sort_keys=True)
    # built (and its emulator compiled) before any output is opened: a bad spec fails here,
    # and the single-process loop reuses it
    compile_start = time.perf_counter()
    _worker_trigger(spec_text, thresholds)
    compile_seconds = time.perf_counter() - compile_start
    outputs = side_outputs(output)
    counts = TriggerCounts.empty(thresholds)
    n_events = 0
    t0 = time.perf_counter()
    bar = tqdm(total=sum(u[2] - u[1] for u in units), unit="ev", unit_scale=True, disable=not progress)
    with contextlib.ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_path(path)) for key, path in outputs.items()}
        client = stack.enter_context(_client(workers, scheduler))
        results = (
            _local(units, spec_text, thresholds)
            if client is None
            else _distributed(units, spec_text, thresholds, client, in_flight=2 * max(workers, 1) + 1)
        )
        with uproot.recreate(tmp["root"], compression=uproot.ZSTD(1)) as file:
            tree = file.mktree(L0_TREE, l0_branch_types(counts.branches))
            for columns in results:
                tree.extend(columns)
                counts = counts + TriggerCounts.from_columns(columns, thresholds)
                n_events += len(columns["event_id"])
                bar.update(len(columns["event_id"]))
            write_histograms(file, counts)
        bar.close()
        seconds = time.perf_counter() - t0
        rows = rate_table(counts, thresholds, assumptions)
        metadata = {"spec": spec.get("name"), "inputs": paths, "events": n_events}
        write_csv(tmp["csv"], rows, assumptions)
        write_json(tmp["json"], rows, assumptions, metadata)
        plot_turn_on(tmp["turn_on_png"], counts, thresholds, f"{spec.get('name')}: L0 turn-on")
    return JobResult(n_events, seconds, compile_seconds, rows, counts, outputs)
