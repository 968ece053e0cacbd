"""The trigger job: event files in, ``l0`` tree, histograms, tables and plots out.

Work is split into (file, entry range) units. They run in this process or on a dask
cluster, and are consumed in order with a bounded number in flight, so memory is set
by the chunk size and the output is identical event by event whatever the split. In this
process one writer thread writes the ``l0`` tree into ``l0.root``; on a cluster each task
writes its unit's tree into its own part file (``l0_parts/part-NNNNN.root``, read as one
dataset in name order) and returns only its counts, which the client merges into the
histograms and tables, so no single writer caps the cluster.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uproot
from tqdm import tqdm

from l0emu.util.atomic import OutputSet, signals_deferred
from l0emu.errors import ConfigError, InputFileError
from l0emu.trigger.events import RangeReader, expand_paths, plan_ranges, read_range
from l0emu.results.l0_file import OUTPUT_FORMATS, make_l0_writer, write_histograms
from l0emu.results.multi_rates import MultiCounts, is_count_column, is_multi_spec
from l0emu.results.rates import RateAssumptions, TriggerCounts
from l0emu.results.report import RunReport
from l0emu.schema import L0_TREE, threshold_branch
from l0emu.trigger.logic import Trigger
from l0emu.trigger.samples import check_same_settings

__all__ = ["JobResult", "compute_threads", "merge_parts", "parts_directory", "process_part", "run_job", "side_outputs"]


@dataclasses.dataclass
class JobResult:
    n_events: int
    seconds: float  # the event loop, reading and writing included
    compile_seconds: float  # building the trigger: spec checks and the emulator's JIT
    cpu_seconds: float  # CPU time of this process's threads over the event loop (not dask workers')
    report: RunReport  # the rate rows, tables and plots, made from the run's counts
    outputs: dict

    @property
    def rows(self) -> list:
        return self.report.rows

    @property
    def counts(self) -> TriggerCounts:
        return self.report.counts

    @property
    def multi(self) -> MultiCounts | None:
        """A multi-candidate spec's two-muon, charge and count figures (None otherwise)."""
        return self.report.multi


def side_outputs(output, multi: bool = False) -> dict:
    """Paths written beside the ROOT file: l0.root -> l0_rates.csv, l0_rates.json, l0_turn_on.png;
    with ``multi`` (a multi-candidate spec) also l0_turn_on_2mu.png, l0_charge_id.png,
    l0_muon_count.png and l0_two_muon_separation.png."""
    output = Path(output)
    stem = output.with_suffix("")
    paths = {
        "root": output,
        "csv": Path(f"{stem}_rates.csv"),
        "json": Path(f"{stem}_rates.json"),
        "turn_on_png": Path(f"{stem}_turn_on.png"),
    }
    if multi:
        paths.update({
            "turn_on_2mu_png": Path(f"{stem}_turn_on_2mu.png"),
            "charge_png": Path(f"{stem}_charge_id.png"),
            "muon_count_png": Path(f"{stem}_muon_count.png"),
            "separation_png": Path(f"{stem}_two_muon_separation.png"),
        })
    return paths


# how the CLI names each output in messages
_OUTPUT_OPTION = {"root": "-o", "csv": "rates table", "json": "rates table", "turn_on_png": "turn-on plot",
                  "turn_on_2mu_png": "two-muon turn-on plot", "charge_png": "charge-identification plot",
                  "muon_count_png": "muon-count plot", "separation_png": "two-muon separation plot"}

# Triggers built in this process (a dask worker keeps its own), least recently used last:
# a long-lived worker serving many specs keeps at most this many compiled networks.
_MAX_WORKER_TRIGGERS = 4
_WORKER_TRIGGERS: collections.OrderedDict = collections.OrderedDict()
_WORKER_TRIGGERS_LOCK = threading.Lock()
# chunks read ahead of the one being decided (each holds step_size events of hits)
_READ_AHEAD = 2
# the l0 tree's compression, chosen on measured size and CPU (issue 14, the shipped student's
# output of 2M events, writing included): none 45.0 B/event at 16.3 M events per core-second,
# LZ4(1) 23.1 B at 5.9 M, ZSTD(1) 15.1 B at 3.9 M, ZLIB(1) 15.8 B at 1.1 M, ZSTD(3) 13.5 B at
# 2.5 M, LZMA(1) 11.6 B at 0.14 M. On two cores the writer thread competes with fragmentation
# and the network for CPU, so CPU per event sets the loop's rate: LZ4(1) costs two thirds of
# ZSTD(1)'s CPU (8 % of the whole loop) for half as much again on disk, still below the
# input's 34 B/event.
_COMPRESSION = ("LZ4", 1)


def compute_threads() -> int:
    """Threads for fragmentation and the network in a single-process job: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _worker_trigger(spec_text: str, thresholds, threads: int = 1) -> Trigger:
    """One Trigger per process, spec, thresholds and thread count: compiled once per worker."""
    key = (hashlib.sha256(spec_text.encode()).hexdigest(), tuple(thresholds), int(threads))
    with _WORKER_TRIGGERS_LOCK:
        trigger = _WORKER_TRIGGERS.get(key)
        if trigger is not None:
            _WORKER_TRIGGERS.move_to_end(key)
            return trigger
    trigger = Trigger(json.loads(spec_text), tuple(thresholds), threads=threads)
    with _WORKER_TRIGGERS_LOCK:
        _WORKER_TRIGGERS[key] = trigger
        while len(_WORKER_TRIGGERS) > _MAX_WORKER_TRIGGERS:
            _, dropped = _WORKER_TRIGGERS.popitem(last=False)
            dropped.close()
    return trigger


def process_part(unit, spec_text: str, thresholds, part, output_format: str = "ttree") -> tuple:
    """A worker's task: decide one unit and write its ``l0`` tree into the ROOT file ``part``.

    Returns ``(events, TriggerCounts, MultiCounts or None)``: the counts are all that travels
    back to the client, which merges them (the columns stay on the worker's disk).
    """
    trigger = _worker_trigger(spec_text, thresholds)
    columns = trigger.decide(read_range(*unit, muons=trigger.multi))
    algorithm, level = _COMPRESSION
    with uproot.recreate(part, compression=getattr(uproot, algorithm)(level)) as file:
        counts = TriggerCounts.empty(thresholds)
        two_muon = MultiCounts.empty(thresholds).pairs.branches if trigger.multi else ()
        tree = make_l0_writer(file, counts.branches, output_format, two_muon)
        counts, multi_counts = (_extend_multi if trigger.multi else _extend)(tree, columns, thresholds)
    return len(columns["event_id"]), counts, multi_counts


def parts_directory(output) -> Path:
    """Where ``--workers``/``--scheduler`` runs keep the ``l0`` tree: l0.root -> l0_parts/, one
    ``part-NNNNN.root`` per work unit in event order (``uproot.concatenate("l0_parts/*.root:l0")``)."""
    output = Path(output)
    return output.with_name(f"{output.with_suffix('').name}_parts")


def _local(units, trigger: Trigger):
    """Decide units in order while a reader thread decompresses the next ones.

    Three stages run at once: the reader thread (uproot), the calling thread deciding the
    current chunk with ``trigger.threads`` blocks (numba kernels, which release the GIL),
    and the writer thread of :func:`_write_l0` compressing the previous chunk.
    """
    read = RangeReader()  # used by the one reader thread only
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="l0emu-reader") as reader:
        muons = trigger.multi  # a multi spec's truth columns need every muon
        pending = collections.deque(reader.submit(read, *unit, muons=muons) for unit in units[:_READ_AHEAD])
        following = iter(units[_READ_AHEAD:])
        try:
            while pending:
                chunk = pending.popleft().result()
                unit = next(following, None)
                if unit is not None:
                    pending.append(reader.submit(read, *unit, muons=muons))
                yield trigger.decide(chunk)
        finally:
            for future in pending:
                future.cancel()


def _extend(tree, columns, thresholds) -> tuple:
    tree.extend(columns)
    return TriggerCounts.from_columns(columns, thresholds), None


def _extend_multi(tree, columns, thresholds) -> tuple:
    tree.extend({key: value for key, value in columns.items() if not is_count_column(key)})
    return TriggerCounts.from_columns(columns, thresholds), MultiCounts.from_columns(columns, thresholds)


def _write_l0(file, results, thresholds, on_chunk, output_format: str = "ttree", multi: bool = False) -> tuple:
    """Write the ``l0`` tree from ``results`` on a writer thread, one chunk in flight, in order.

    Returns ``(TriggerCounts, MultiCounts)``; the second is None unless ``multi`` (a multi-candidate spec).
    """
    counts = TriggerCounts.empty(thresholds)
    multi_counts = MultiCounts.empty(thresholds) if multi else None
    two_muon = multi_counts.pairs.branches if multi else ()
    tree = make_l0_writer(file, counts.branches, output_format, two_muon)  # TTree or RNTuple
    extend = _extend_multi if multi else _extend

    def merge(done):
        nonlocal counts, multi_counts
        part, multi_part = done.result()
        counts = counts + part
        if multi:
            multi_counts = multi_counts + multi_part

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="l0emu-writer") as writer:
        in_flight = None
        for columns in results:
            if in_flight is not None:
                merge(in_flight)
            in_flight = writer.submit(extend, tree, columns, thresholds)
            on_chunk(len(columns["event_id"]))
        if in_flight is not None:
            merge(in_flight)
    return counts, multi_counts


def _distributed(units, spec_text, thresholds, client, in_flight, parts: Path, output_format):
    """Each unit a task that writes its own part file; yields ``(events, counts, multi counts)``
    in unit order, with at most ``in_flight`` tasks submitted ahead."""
    tasks = ((unit, parts / f"part-{k:05d}.root") for k, unit in enumerate(units))
    futures = collections.deque()

    def submit(task):
        unit, part = task
        futures.append(client.submit(process_part, unit, spec_text, thresholds, str(part), output_format, pure=False))

    for task in tasks:
        submit(task)
        if len(futures) >= in_flight:
            break
    while futures:
        head = futures.popleft()
        result = head.result()
        head.release()
        task = next(tasks, None)
        if task is not None:
            submit(task)
        yield result


def _merge_counts(results, thresholds, on_chunk, multi: bool) -> tuple:
    """The client's share of a distributed run: the sum of the workers' counts."""
    counts = TriggerCounts.empty(thresholds)
    multi_counts = MultiCounts.empty(thresholds) if multi else None
    for n, part, multi_part in results:
        counts = counts + part
        if multi:
            multi_counts = multi_counts + multi_part
        on_chunk(n)
    return counts, multi_counts


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
            _check_worker_count(workers, sum(client.nthreads().values()), f"the scheduler at {scheduler}")
            yield client
        return
    with contextlib.ExitStack() as stack:
        # an interrupt while the workers start would leave a half-built cluster that dask's
        # exit handler fails to close (a traceback after l0emu's message): it waits until they are up
        with signals_deferred():
            # the workers' own log lines (cancelled tasks on an interrupt, "Compute Failed" with the
            # worker-side traceback of an error the client re-raises) would surround l0emu's one message
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=logging.CRITICAL))
            client = stack.enter_context(Client(cluster))
        yield client


def _check_worker_count(workers: int, slots: int, where: str) -> None:
    """Refuse more workers than ``where`` has cores (or scheduler threads) to run them on:
    the extra processes would only compete for the same cores and memory."""
    if workers > slots:
        msg = f"--workers {workers}: {where} has {slots} usable core{'s' if slots != 1 else ''}; give at most {slots}"
        raise ConfigError(msg)


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
    output_format: str = "ttree",
    allow_mixed: bool = False,
    final: bool = False,
) -> JobResult:
    """Run the trigger over ``inputs`` and write every output atomically.

    ``output_format`` stores the ``l0`` table as a ``"ttree"`` (default) or an ``"rntuple"``;
    the histograms are the same TH1D objects either way. Inputs simulated with different
    physics settings are refused unless ``allow_mixed`` (:mod:`l0emu.trigger.samples`); the
    tables then name the mixed settings. ``final``: these outputs end the command
    (:class:`~l0emu.util.atomic.OutputSet`).
    """
    if step_size < 1:
        msg = f"--step-size must be >= 1, got {step_size}"
        raise ConfigError(msg)
    if output_format not in OUTPUT_FORMATS:
        msg = f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}"
        raise ConfigError(msg)
    if workers and not scheduler:
        _check_worker_count(workers, compute_threads(), "this machine")
    thresholds = tuple(float(t) for t in thresholds)
    paths = expand_paths(inputs)
    mixed = check_same_settings(paths, allow_mixed=allow_mixed)
    multi = is_multi_spec(spec)
    outputs = side_outputs(output, multi)
    # every output checked before any work starts, written under temporary names and
    # renamed together at the end (or none of them)
    output_set = OutputSet(inputs=paths, final=final)
    tmp = {
        key: output_set.add(output if key == "root" else path, option=_OUTPUT_OPTION.get(key, "output"))
        for key, path in outputs.items()
    }
    distributed = bool(workers or scheduler)
    parts = output_set.add(parts_directory(output), directory=True, option="parts directory") if distributed else None
    units = plan_ranges(paths, step_size)
    spec_text = json.dumps(spec, sort_keys=True)
    # built (and its emulator compiled) before any output is opened: a bad spec fails here,
    # and the single-process loop reuses it
    threads = compute_threads() if not workers and not scheduler else 1
    compile_start = time.perf_counter()
    trigger = _worker_trigger(spec_text, thresholds, threads)
    trigger.compile()
    compile_seconds = time.perf_counter() - compile_start
    n_events = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    bar = tqdm(total=sum(u[2] - u[1] for u in units), unit="ev", unit_scale=True, disable=not progress)

    def on_chunk(n):
        nonlocal n_events
        n_events += n
        bar.update(n)

    with output_set, contextlib.ExitStack() as stack:
        client = stack.enter_context(_client(workers, scheduler))
        algorithm, level = _COMPRESSION
        with uproot.recreate(tmp["root"], compression=getattr(uproot, algorithm)(level)) as file:
            if client is None:
                counts, multi_counts = _write_l0(file, _local(units, trigger), thresholds, on_chunk, output_format, multi)
            else:
                # the workers write the l0 tree, part by part, into the (temporary) parts directory;
                # l0.root gets the histograms of the merged counts
                parts.mkdir()
                in_flight = 2 * sum(client.nthreads().values()) + 1
                results = _distributed(units, spec_text, thresholds, client, in_flight, parts, output_format)
                counts, multi_counts = _merge_counts(results, thresholds, on_chunk, multi)
            write_histograms(file, counts, multi_counts)
        bar.close()
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - cpu0
        report = RunReport(counts, thresholds, assumptions, multi_counts, mixed)
        metadata = {"spec": spec.get("name"), "inputs": paths, "events": n_events, "mixed_settings": mixed}
        report.write(tmp, spec.get("name"), metadata)
    if distributed:
        outputs = {**outputs, "parts": parts_directory(output)}
    return JobResult(n_events, seconds, compile_seconds, cpu_seconds, report, outputs)


def _part_files(parts) -> list:
    """Part files in order: a parts directory's ``part-*.root`` by name, or the files/globs given."""
    if len(parts) == 1 and Path(parts[0]).is_dir():
        files = sorted(str(p) for p in Path(parts[0]).glob("part-*.root"))
        if not files:
            msg = f"{str(parts[0])!r} holds no part-*.root files"
            raise InputFileError(msg)
        return files
    return expand_paths(parts)


def _part_thresholds(path, keys) -> tuple:
    """The thresholds of a part's decision branches (l0_pt7p5 -> 7.5); a multi run's parts are refused."""
    if "l0_n_mu" in keys:
        msg = (f"{path!r}: a multi-candidate run's part (its charge and muon-count tables need counts the "
               "tree does not keep); its l0emu run wrote the tables")
        raise InputFileError(msg)
    thresholds = []
    for key in keys:
        if key.startswith("l0_pt"):
            try:
                value = float(key.removeprefix("l0_pt").replace("p", "."))
            except ValueError:
                value = None
            if value is None or threshold_branch(value) != key:
                msg = f"{path!r}:{L0_TREE} branch {key!r} is not a decision branch l0_pt<T>"
                raise InputFileError(msg)
            thresholds.append(value)
    if not thresholds:
        msg = f"{path!r}:{L0_TREE} has no decision branch l0_pt<T>"
        raise InputFileError(msg)
    return tuple(thresholds)


def merge_parts(parts, output, assumptions: RateAssumptions = RateAssumptions()) -> JobResult:
    """``l0emu merge``: the histograms (``output``) and the tables and plots beside it, from part
    files' ``l0`` trees (a finished ``--workers`` run's ``l0_parts/``, or parts of several runs of
    one network and thresholds). The counts are recomputed from each part's ``true_pt`` and
    decision branches, so they equal the counts the run merged."""
    paths = _part_files(parts)
    outputs = side_outputs(output)
    output_set = OutputSet(inputs=paths)
    tmp = {key: output_set.add(path, option=_OUTPUT_OPTION.get(key, "output")) for key, path in outputs.items()}
    t0 = time.perf_counter()
    thresholds, counts, n_events = None, None, 0
    for path in paths:
        with uproot.open(path) as file:
            if L0_TREE not in file:
                msg = f"{path!r} holds no {L0_TREE!r} tree: not a part file of l0emu run --workers"
                raise InputFileError(msg)
            tree = file[L0_TREE]
            found = _part_thresholds(path, tree.keys())
            if thresholds is None:
                thresholds, counts = found, TriggerCounts.empty(found)
            elif found != thresholds:
                msg = f"{path!r} has thresholds {found}, {paths[0]!r} has {thresholds}: parts of one run's thresholds only"
                raise InputFileError(msg)
            branches = ["true_pt", *(threshold_branch(t) for t in thresholds)]
            for columns in tree.iterate(branches, step_size=1_000_000, library="np"):
                counts = counts + TriggerCounts.from_columns(columns, thresholds)
                n_events += len(columns["true_pt"])
    with output_set:
        with uproot.recreate(tmp["root"]) as file:
            write_histograms(file, counts)
        report = RunReport(counts, thresholds, assumptions)
        report.write(tmp, "l0emu merge", {"parts": paths, "events": n_events})
    return JobResult(n_events, time.perf_counter() - t0, 0.0, 0.0, report, outputs)
