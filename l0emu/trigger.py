"""The L0 decision for a chunk of events: hits -> fragment -> emulated network -> thresholds.

Everything after the network is done in fixed point as firmware would: the predicted pT
is compared with each threshold as raw integers in the output type, and global eta is
rebuilt as the window start plus the network's local eta, by shifts and adds.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .emulator import Emulator
from .errors import ConfigError, SpecError
from .events import EventChunk
from .geometry import strip_to_eta
from .images import fragment_hits
from .schema import DEFAULT_THRESHOLDS, threshold_branch

__all__ = ["Trigger", "DEFAULT_THRESHOLDS"]

# below this many events per block, a thread costs more than it saves
_MIN_BLOCK_EVENTS = 20_000


def _output(spec, name):
    for out in spec["outputs"]:
        if out["name"] == name:
            return out
    names = [o["name"] for o in spec["outputs"]]
    msg = f"the spec {spec.get('name')!r} has no output {name!r} (outputs: {', '.join(names)})"
    raise SpecError(msg)


def _power_of_two_shift(scale, where):
    shift = round(math.log2(scale)) if scale > 0 else None
    if shift is None or shift < 0 or 2.0**shift != scale:
        msg = f"{where}: a window-frame output needs a power-of-two scale >= 1 in strips, got {scale!r}"
        raise SpecError(msg)
    return shift


class Trigger:
    """A configured trigger: the emulated network, the fragmentation stride and thresholds.

    Building one checks the spec and loads the network's generated kernel; numba compiles
    (or loads from its disk cache) on the first :meth:`decide`, or up front with
    :meth:`compile`. ``threads`` > 1 splits each chunk into that many event blocks and runs
    fragmentation and the network on them concurrently (the kernels release the GIL);
    decisions do not depend on it.
    """

    def __init__(self, spec: dict, thresholds=DEFAULT_THRESHOLDS, *, threads: int = 1):
        if int(threads) < 1:
            msg = f"Trigger threads must be >= 1, got {threads!r}"
            raise ConfigError(msg)
        self.spec = spec
        self.thresholds = tuple(float(t) for t in thresholds)
        self.threads = int(threads)
        self.emulator = Emulator.from_spec(spec)
        fragment = (spec.get("preprocessing") or {}).get("fragment")
        if not fragment:
            msg = f"spec {spec.get('name')!r} has no preprocessing.fragment: the trigger runs 9x16 networks"
            raise SpecError(msg)
        self.stride = int(fragment["stride"])
        self.pt_out = _output(spec, "pt")
        self.eta_out = _output(spec, "eta")
        self.frac = self.emulator.output_type_of("eta").frac
        self.eta_shift = _power_of_two_shift(self.eta_out["scale"], "output 'eta'")
        self.threshold_raw = {
            threshold_branch(t): self.emulator.threshold_mantissa("pt", t) for t in self.thresholds
        }
        self._pool = None

    def __repr__(self) -> str:
        return f"Trigger({self.spec.get('name')!r}, thresholds={self.thresholds}, stride={self.stride}, threads={self.threads})"

    def compile(self) -> float:
        """Compile (or load from numba's cache) every kernel now; returns the seconds it took."""
        started = time.perf_counter()
        offsets = np.zeros(2, np.int64)
        _, pooled = fragment_hits(offsets, np.zeros(0, np.uint8), np.zeros(0, np.int16), self.stride)
        self.emulator.predict_raw(pooled)
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the worker threads of ``threads`` > 1 (they are restarted when needed)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def network_raw(self, chunk: EventChunk):
        """Window starts (int16, (n,)) and raw network outputs (int64, (n, n_outputs))."""
        offsets = np.ascontiguousarray(chunk.hit_offsets, dtype=np.int64)
        n = len(offsets) - 1
        blocks = min(self.threads, max(1, n // _MIN_BLOCK_EVENTS))
        if blocks == 1:
            starts, pooled = fragment_hits(offsets, chunk.hit_layer, chunk.hit_strip, self.stride)
            return starts, self.emulator.predict_raw(pooled)
        edges = np.linspace(0, n, blocks + 1).astype(np.int64)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="l0emu-trigger")

        def block(a, b):
            # offsets keep their absolute values: the kernel indexes the whole hit arrays
            starts, pooled = fragment_hits(offsets[a : b + 1], chunk.hit_layer, chunk.hit_strip, self.stride)
            return starts, self.emulator.predict_raw(pooled)

        parts = list(self._pool.map(block, edges[:-1], edges[1:]))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def decide(self, chunk: EventChunk) -> dict:
        """Output columns of the ``l0`` tree for one chunk (docs/design.md schema)."""
        return self.columns(chunk, *self.network_raw(chunk))

    def columns(self, chunk: EventChunk, starts, raw) -> dict:
        """The ``l0`` columns from :meth:`network_raw`'s window starts and raw outputs."""
        pt_raw = raw[:, self.emulator.column("pt")]
        local_raw = raw[:, self.emulator.column("eta")]
        # global eta in strip units with `frac` fractional bits: start << frac + local << log2(scale)
        eta_raw = (starts.astype(np.int64) << self.frac) + (local_raw << self.eta_shift)
        lsb = 2.0**-self.frac
        columns = {
            "event_id": chunk.event_id,
            "pt": self.emulator.to_physical(raw)["pt"].astype(np.float32),
            "eta": strip_to_eta(eta_raw * lsb + self.eta_out["offset"]).astype(np.float32),
            "pt_raw": pt_raw.astype(np.int64),
            "eta_raw": eta_raw.astype(np.int64),
        }
        for branch, t_raw in self.threshold_raw.items():
            columns[branch] = pt_raw >= t_raw
        columns["n_muons"] = chunk.n_muons
        columns["true_pt"] = chunk.true_pt
        columns["true_eta"] = chunk.true_eta
        return columns
