"""Events file -> network inputs and training targets (the one place the target units live).

Inputs: the fragmented 9x16 window (seed 002) as the network sees it, lit-pixel count / 2
(:func:`l0emu.images.pooled_to_float`), and on request the binary 9x384 image for the big
teacher.

Targets, two per event, in network units (``physical = offset + scale * y``):

- ``pt``: leading muon pT / :data:`PT_SCALE` (20 GeV), so the [3, 20] GeV range maps to
  [0.15, 1]; muons above :data:`PT_TARGET_MAX` (30 GeV) are labelled 30 GeV. The trigger only
  has to tell a muon above its highest threshold (20 GeV, plateau from 30 GeV) from one below
  it, and a straight track's pT is poorly measured: unclipped, the squared errors of 40-50 GeV
  muons would dominate the loss and take the small network's capacity from the 10 GeV turn-on.
- ``eta``: the leading muon's eta as a strip coordinate relative to the chosen window's low
  edge, in window units: ``(eta_to_strip(eta) - window_low_strip(start)) / 32``. After
  fragmentation the network sees only the window, so only this local eta is learnable; the
  trigger adds the window start back in fixed point (docs/design.md). The 9x384 teacher sees the
  whole sector and learns the sector frame instead: ``eta_to_strip(eta) / 384``.

Background events (no muon above ``l0emu.schema.SIGNAL_PT_MIN`` = 3 GeV, soft muons
included) are labelled ``pt = 0`` and ``eta = 0.5`` (the window centre; the sector centre for
the 9x384 teacher): "no muon" sits at zero pT, far below any threshold, and the eta label
that costs the least when the network is unsure.

:func:`output_specs` gives the same scales as the spec's ``outputs`` entries.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from l0emu.events import EventChunk, load_events
from l0emu.geometry import N_LAYERS, N_STRIPS, eta_to_strip
from l0emu.images import POOL, WINDOW_STRIPS, fragment_hits, hits_to_images, pooled_to_float, window_low_strip
from l0emu.schema import SIGNAL_PT_MIN

from .options import DEFAULT_STRIDE  # defined without numba/TensorFlow imports, for the CLI's --help

__all__ = [
    "PT_SCALE",
    "PT_TARGET_MAX",
    "DEFAULT_STRIDE",
    "BACKGROUND_ETA",
    "FRAMES",
    "preprocessing_spec",
    "TrainingData",
    "eta_scale",
    "output_specs",
    "pt_targets",
    "make_targets",
    "load_training_data",
    "split_indices",
]

PT_SCALE = 20.0  # GeV per network unit
PT_TARGET_MAX = 30.0  # GeV: higher muons are labelled with this pT (module docstring)
BACKGROUND_ETA = 0.5  # eta label of background events, in the frame's units
FRAMES = ("window", "sector")  # 9x16 networks learn eta in the window, the 9x384 teacher in the sector


def eta_scale(frame: str) -> float:
    """Strips per network unit of the eta output in ``frame``."""
    return {"window": float(WINDOW_STRIPS), "sector": float(N_STRIPS)}[frame]


def output_specs(frame: str = "window") -> list[dict]:
    """The spec's ``outputs`` entries for networks trained on these targets."""
    return [
        {"name": "pt", "index": 0, "scale": PT_SCALE, "offset": 0.0, "unit": "GeV"},
        {"name": "eta", "index": 1, "scale": eta_scale(frame), "offset": 0.0, "unit": "strip", "frame": frame},
    ]


def preprocessing_spec(frame: str, stride: int) -> dict:
    """The spec's ``preprocessing`` entry: how the trigger turns hits into this network's input."""
    image = {"image": [N_LAYERS, N_STRIPS]}
    if frame == "sector":
        return image
    return {**image, "fragment": {"window": WINDOW_STRIPS, "pool": POOL, "stride": int(stride)}}


@dataclasses.dataclass
class TrainingData:
    """Inputs, targets and truth of one or more events files, event by event."""

    paths: list
    stride: int
    event_id: np.ndarray  # uint64
    true_pt: np.ndarray  # leading muon pT (GeV), 0 without muons
    true_eta: np.ndarray
    is_signal: np.ndarray  # leading muon above SIGNAL_PT_MIN
    window_start: np.ndarray  # int16: strip of the chosen window's low edge
    images: np.ndarray  # float32 (n, 9, 16, 1): lit-pixel count / 2
    targets: np.ndarray  # float32 (n, 2): window frame
    full_images: np.ndarray | None = None  # uint8 (n, 9, 384, 1), binary, for the 9x384 teacher
    full_targets: np.ndarray | None = None  # float32 (n, 2): sector frame

    def __len__(self) -> int:
        return len(self.event_id)


def pt_targets(true_pt, pt_scale: float = PT_SCALE) -> np.ndarray:
    """The pT target: leading-muon pT (at most :data:`PT_TARGET_MAX`) / ``pt_scale``, 0 for
    background (no muon above 3 GeV)."""
    true_pt = np.asarray(true_pt, dtype=np.float64)
    return np.where(true_pt >= SIGNAL_PT_MIN, np.minimum(true_pt, PT_TARGET_MAX) / pt_scale, 0.0)


def make_targets(true_pt, true_eta, low_strip, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """``(targets float32 (n, 2), is_signal bool (n,))`` for leading-muon truth and frame origin."""
    true_pt = np.asarray(true_pt, dtype=np.float64)
    is_signal = true_pt >= SIGNAL_PT_MIN
    local = (eta_to_strip(true_eta) - np.asarray(low_strip, dtype=np.float64)) / eta_scale(frame)
    targets = np.empty((len(true_pt), 2), np.float32)
    targets[:, 0] = pt_targets(true_pt)
    targets[:, 1] = np.where(is_signal, local, BACKGROUND_ETA)
    return targets, is_signal


def _concatenate_chunks(chunks) -> EventChunk:
    offsets = [chunks[0].hit_offsets]
    for chunk in chunks[1:]:
        offsets.append(chunk.hit_offsets[1:] + offsets[-1][-1])
    joined = {
        name: np.concatenate([getattr(c, name) for c in chunks])
        for name in ("event_id", "n_muons", "true_pt", "true_eta", "hit_layer", "hit_strip")
    }
    return EventChunk(path=",".join(c.path for c in chunks), entry_start=0, hit_offsets=np.concatenate(offsets), **joined)


def load_training_data(paths, entry_stop=None, stride: int = DEFAULT_STRIDE, full_images: bool = False) -> TrainingData:
    """Read events files (checked by :func:`l0emu.events.load_events`) and build inputs and targets.

    Several files are mixed in equal parts (e.g. the default and the hard scenario);
    ``entry_stop`` caps the total.
    """
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    per_file = None if entry_stop is None else -(-int(entry_stop) // len(paths))
    chunk = _concatenate_chunks([load_events(p, entry_stop=per_file) for p in paths])
    start, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, stride)
    targets, is_signal = make_targets(chunk.true_pt, chunk.true_eta, window_low_strip(start), "window")
    data = TrainingData(
        paths=paths,
        stride=int(stride),
        event_id=chunk.event_id,
        true_pt=chunk.true_pt,
        true_eta=chunk.true_eta,
        is_signal=is_signal,
        window_start=start,
        images=pooled_to_float(pooled),
        targets=targets,
    )
    if full_images:
        data.full_images = hits_to_images(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip)[..., np.newaxis]
        data.full_targets, _ = make_targets(chunk.true_pt, chunk.true_eta, np.zeros(len(start)), "sector")
    return data


def split_indices(n: int, validation: float, test: float, seed: int):
    """Shuffled ``(train, validation, test)`` index arrays; the same seed gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test))
    n_val = int(round(n * validation))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]
