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

from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError, SpecError
from l0emu.trigger.events import EventChunk, MuonTruth
from l0emu.trigger.geometry import N_LAYERS, strip_to_eta
from l0emu.trigger.images import fragment_hits
from l0emu.trigger.multi import candidate_decisions, two_muon_truth
from l0emu.results.multi_rates import N_SIGNAL, SEPARATION
from l0emu.schema import DEFAULT_THRESHOLDS, SIGNAL_PT_MIN, threshold_branch, two_muon_branch
from l0emu.trigger.sector import candidate_images, candidate_outputs
from l0emu.fixedpoint.spec import preprocessing_layers

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

    A spec whose ``preprocessing.fragment`` has ``candidates`` (a multi network) runs the
    sector logic of :mod:`l0emu.trigger.sector` and the network on every present candidate window;
    its decisions and extra branches are :mod:`l0emu.trigger.multi`'s. :attr:`multi` says which.
    A spec with ``preprocessing.layers`` builds windows and images from those RPC layers
    alone (:attr:`layers`; None: all nine).
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
        layers = preprocessing_layers(spec)
        self.layers = None if len(layers) == N_LAYERS else layers  # None: the 9-layer path, no hit copies
        self.pt_out = _output(spec, "pt")
        self.eta_out = _output(spec, "eta")
        self.frac = self.emulator.output_type_of("eta").frac
        self.eta_shift = _power_of_two_shift(self.eta_out["scale"], "output 'eta'")
        self.threshold_raw = {
            threshold_branch(t): self.emulator.threshold_mantissa("pt", t) for t in self.thresholds
        }
        self.candidates = int(fragment.get("candidates", 0))
        self.multi = self.candidates > 0  # decide() then needs every muon's truth (read_range(..., muons=True))
        if self.multi:
            self._init_multi(fragment)
        self._pool = None

    def _init_multi(self, fragment) -> None:
        self.min_hits = fragment.get("min_hits")  # None: the sector logic's default for the image rows
        for name in ("charge", "presence"):
            _output(self.spec, name)
        self.multi_columns = {name: self.emulator.column(name) for name in ("pt", "charge", "presence")}
        # the firmware's comparisons: presence >= 0.5 counts a candidate, charge >= 0 is +1
        self.presence_raw = self.emulator.threshold_mantissa("presence", 0.5)
        self.charge_raw = self.emulator.threshold_mantissa("charge", 0.0)
        self.two_muon_branches = {threshold_branch(t): two_muon_branch(t) for t in self.thresholds}

    def __repr__(self) -> str:
        return f"Trigger({self.spec.get('name')!r}, thresholds={self.thresholds}, stride={self.stride}, threads={self.threads})"

    def compile(self) -> float:
        """Compile (or load from numba's cache) every kernel now; returns the seconds it took."""
        started = time.perf_counter()
        offsets = np.zeros(2, np.int64)
        _, pooled = fragment_hits(offsets, np.zeros(0, np.uint8), np.zeros(0, np.int16), self.stride, self.layers)
        self.emulator.predict_raw(pooled)
        if self.multi:
            starts, raw = self._candidates_raw(offsets, np.zeros(0, np.uint8), np.zeros(0, np.int16))
            candidate_decisions(starts, raw, self.multi_columns, self.presence_raw, self.charge_raw, self.threshold_raw)
            no_muons = MuonTruth(offsets[:1], np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int8))
            two_muon_truth(no_muons, np.zeros(0, np.float32), SIGNAL_PT_MIN)
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the worker threads of ``threads`` > 1 (they are restarted when needed)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _candidates_raw(self, offsets, layer, strip):
        """Candidate starts (int16, (n, candidates), -1: absent) and raw outputs (int64, (n, candidates, n_outputs))."""
        starts, images, found = candidate_images(offsets, layer, strip, self.stride, max_candidates=self.candidates,
                                                 min_hits=self.min_hits, layers=self.layers)
        return starts, candidate_outputs(self.emulator, images, found, self.candidates)

    def network_raw(self, chunk: EventChunk):
        """Window starts (int16, (n,)) and raw network outputs (int64, (n, n_outputs)); for a
        multi spec, per candidate: (n, candidates) starts (-1: absent) and (n, candidates, n_outputs)."""
        offsets = np.ascontiguousarray(chunk.hit_offsets, dtype=np.int64)
        n = len(offsets) - 1
        blocks = min(self.threads, max(1, n // _MIN_BLOCK_EVENTS))
        if blocks == 1:
            if self.multi:
                return self._candidates_raw(offsets, chunk.hit_layer, chunk.hit_strip)
            starts, pooled = fragment_hits(offsets, chunk.hit_layer, chunk.hit_strip, self.stride, self.layers)
            return starts, self.emulator.predict_raw(pooled)
        edges = np.linspace(0, n, blocks + 1).astype(np.int64)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="l0emu-trigger")

        def block(a, b):
            # offsets keep their absolute values: the kernel indexes the whole hit arrays
            if self.multi:
                return self._candidates_raw(offsets[a : b + 1], chunk.hit_layer, chunk.hit_strip)
            starts, pooled = fragment_hits(offsets[a : b + 1], chunk.hit_layer, chunk.hit_strip, self.stride, self.layers)
            return starts, self.emulator.predict_raw(pooled)

        parts = list(self._pool.map(block, edges[:-1], edges[1:]))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def decide(self, chunk: EventChunk) -> dict:
        """Output columns of the ``l0`` tree for one chunk (docs/design.md schema)."""
        return self.columns(chunk, *self.network_raw(chunk))

    def columns(self, chunk: EventChunk, starts, raw) -> dict:
        """The ``l0`` columns from :meth:`network_raw`'s window starts and raw outputs."""
        if self.multi:
            return self._multi_columns(chunk, starts, raw)
        return self._window_columns(chunk, starts, raw)

    def _window_columns(self, chunk: EventChunk, starts, raw) -> dict:
        """The columns of one window per event (``starts`` (n,), ``raw`` (n, n_outputs))."""
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

    def _multi_columns(self, chunk: EventChunk, starts, raw) -> dict:
        """The columns of a multi spec: the leading counted candidate's pT and eta (0 if none),
        the single- and two-muon decisions, the candidate count and charge, two muons' truth;
        and the :mod:`l0emu.trigger.multi` columns the counts read (not written)."""
        if chunk.muons is None:
            msg = f"{chunk.path!r}: the multi-candidate spec {self.spec.get('name')!r} needs every muon's truth; read with muons=True"
            raise ConfigError(msg)
        decided = candidate_decisions(starts, raw, self.multi_columns, self.presence_raw, self.charge_raw,
                                      self.threshold_raw)
        rows = np.arange(len(decided["lead"]))
        found = decided["found"]
        # the leading candidate's outputs through the single-window code, then 0 where none counted
        lead = self._window_columns(chunk, starts[rows, decided["lead"]], raw[rows, decided["lead"]])
        for key in ("pt", "eta", "pt_raw", "eta_raw"):
            lead[key] = np.where(found, lead[key], 0).astype(lead[key].dtype)
        truth = two_muon_truth(chunk.muons, chunk.true_eta, SIGNAL_PT_MIN)
        columns = {key: lead[key] for key in ("event_id", "pt", "eta", "pt_raw", "eta_raw")}
        for branch in self.threshold_raw:
            columns[branch] = decided["above"][branch] >= 1
        for branch, two in self.two_muon_branches.items():
            columns[two] = decided["above"][branch] >= 2
        columns["l0_n_mu"] = decided["n_mu"]
        columns["l0_charge"] = decided["charge"]
        for key in ("n_muons", "true_pt", "true_eta"):
            columns[key] = lead[key]
        columns["true_charge"] = truth["true_charge"]
        columns["true_pt2"] = truth["true_pt2"]
        columns[N_SIGNAL] = truth["n_signal"]
        columns[SEPARATION] = truth["separation"]
        return columns
