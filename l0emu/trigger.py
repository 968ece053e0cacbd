"""The L0 decision for a chunk of events: hits -> fragment -> emulated network -> thresholds.

Everything after the network is done in fixed point as firmware would: the predicted pT
is compared with each threshold as raw integers in the output type, and global eta is
rebuilt as the window start plus the network's local eta, by shifts and adds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .emulator import Emulator
from .errors import SpecError
from .events import EventChunk
from .geometry import strip_to_eta
from .images import fragment_hits
from .schema import threshold_branch

__all__ = ["Trigger", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS = (5.0, 10.0, 15.0, 20.0)


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


@dataclasses.dataclass
class Trigger:
    """A configured trigger: the emulated network, the fragmentation stride and thresholds."""

    spec: dict
    thresholds: tuple = DEFAULT_THRESHOLDS

    def __post_init__(self):
        self.emulator = Emulator.from_spec(self.spec)
        fragment = (self.spec.get("preprocessing") or {}).get("fragment")
        if not fragment:
            msg = f"spec {self.spec.get('name')!r} has no preprocessing.fragment: the trigger runs 9x16 networks"
            raise SpecError(msg)
        self.stride = int(fragment["stride"])
        self.pt_out = _output(self.spec, "pt")
        self.eta_out = _output(self.spec, "eta")
        self.frac = self.emulator.output_type.frac
        self.eta_shift = _power_of_two_shift(self.eta_out["scale"], "output 'eta'")
        self.threshold_raw = {
            threshold_branch(t): self.emulator.threshold_mantissa("pt", float(t)) for t in self.thresholds
        }
        # compile (or load from numba's cache) every kernel now, not inside the first chunk
        self.emulator.predict_raw(np.zeros((1, *self.emulator.input_shape[:2]), np.uint8))

    def decide(self, chunk: EventChunk) -> dict:
        """Output columns of the ``l0`` tree for one chunk (DESIGN.md schema)."""
        starts, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, self.stride)
        raw = self.emulator.predict_raw(pooled)
        pt_raw = raw[:, self.pt_out["index"]]
        local_raw = raw[:, self.eta_out["index"]]
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
