"""Throughput and memory of ``l0emu simulate`` (generation + ROOT writing).

    l0emu bench simulate [--events N] [--scenario S] [--big N]

Prints events/s for an N-event run (700k by default, the seed study's sample size) after a
small warm-up run (numba compilation is not part of the rate), the CPU time and machine
load (the rate depends on both on a shared machine), and the process's peak RSS.
``--big N`` also runs N events (e.g. 10,000,000) in a fresh subprocess and reports its
peak RSS, showing that memory stays bounded by the chunk size, not the number of events.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["DESCRIPTION", "run", "add_arguments", "main"]

DESCRIPTION = "throughput and memory of 'l0emu simulate' (generation + ROOT writing)"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(n_events: int, scenario: str, chunk_size: int) -> dict:
    """Write ``n_events`` into a temporary file; return timing, size and peak RSS."""
    from l0emu.simulation.events_io import write_events  # numba: only when it runs
    from l0emu.simulation.settings import settings_for_scenario

    settings = settings_for_scenario(scenario, seed=1)
    with tempfile.TemporaryDirectory(prefix="bench_simulate_") as tmp:
        write_events(Path(tmp) / "warmup.root", settings, 1000)
        path = Path(tmp) / "events.root"
        start, cpu_start = time.perf_counter(), time.process_time()
        summary = write_events(path, settings, n_events, chunk_size=chunk_size)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        size_mb = path.stat().st_size / 1e6
    return {"events": n_events, "seconds": seconds, "events_per_s": n_events / seconds, "cpu_seconds": cpu_seconds,
            "file_mb": size_mb, "hits_per_event": summary.n_hits / max(n_events, 1), "peak_rss_mb": _peak_rss_mb()}


def _report(result: dict, scenario: str) -> str:
    return (f"{scenario}: {result['events']:,} events in {result['seconds']:.2f} s = {result['events_per_s']:,.0f} events/s "
            f"(CPU {result['cpu_seconds']:.2f} s on {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}); "
            f"{result['hits_per_event']:.2f} hits/event; file {result['file_mb']:.1f} MB; peak RSS {result['peak_rss_mb']:.0f} MB")


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=700_000, help="events of the timed run (default %(default)s)")
    parser.add_argument("--scenario", default="default", help="named simulation settings (default %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=None, help="events per write (default: l0emu simulate's)")
    parser.add_argument("--big", type=int, default=0, metavar="N", help="also run N events in a subprocess for peak RSS")


def main(args) -> int:
    from l0emu.simulation.events_io import DEFAULT_CHUNK_SIZE

    chunk_size = DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size
    print(_report(run(args.events, args.scenario, chunk_size), args.scenario))
    if args.big:
        command = [sys.executable, "-m", "l0emu.cli", "bench", "simulate", "--events", str(args.big),
                   "--scenario", args.scenario, "--chunk-size", str(chunk_size)]
        subprocess.run(command, check=True, env=os.environ.copy())
    return 0
