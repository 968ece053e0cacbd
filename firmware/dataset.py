"""Events file -> network inputs and training targets (the one place the target units live).

Inputs: the fragmented 9x16 window (seed 002) as the network sees it, lit-pixel count / 2
(:func:`l0emu.trigger.images.pooled_to_float`), and on request the binary 9x384 image for the big
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

Several muons per sector (issue 11, ``outputs = pt,eta,charge,presence``): the examples are
the sector logic's candidate windows (:func:`l0emu.trigger.sector.sector_candidates`, up to three per
event, ``min_hits`` = :func:`l0emu.trigger.sector.min_candidate_hits` of the rows), not events. A true muon belongs
to the candidate whose 32-strip window ``[low, low + 32)`` holds its strip coordinate
``eta_to_strip(eta)``; where several do, the highest-pT one gives the targets
(:func:`window_muons`). Per window, four targets: ``pt`` and ``eta`` as above for that muon,
``charge`` (+1 / -1, scale 1) and ``presence`` (1: a muon above ``SIGNAL_PT_MIN`` is in the
window); a window without one is labelled ``pt = 0``, ``eta = 0.5``, ``charge = 0``,
``presence = 0``. Candidate 0 is the single window above, so single-muon samples work too
(though a muon outside that window now labels it background instead of giving an eta outside
[0, 1)).

A layer set (``layers``, :data:`l0emu.trigger.geometry.LAYER_SETS`, e.g. the middle station's
``(3, 4, 5, 6)``): inputs are made of those RPC layers' rows only, hits on the other layers
dropped before the window is chosen (:func:`l0emu.trigger.images.select_layers`), exactly as the
trigger does with the spec's ``preprocessing.layers``; the targets are unchanged.

:func:`output_specs` gives the same scales as the spec's ``outputs`` entries, and
:func:`preprocessing_spec` the fragmentation (with the sector logic's ``candidates`` and
``min_hits`` for the four-output set, and ``layers`` for a layer set other than all nine).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from l0emu.errors import ConfigError
from l0emu.trigger.events import EventChunk, MuonTruth, load_events
from l0emu.trigger.geometry import ALL_LAYERS, N_LAYERS, N_STRIPS, check_layers, eta_to_strip
from l0emu.trigger.images import POOL, WINDOW_STRIPS, fragment_hits, hits_to_images, pooled_to_float, window_low_strip
from l0emu.schema import SIGNAL_PT_MIN
from l0emu.trigger.sector import MAX_CANDIDATES, min_candidate_hits, sector_candidates

from .options import DEFAULT_STRIDE, OUTPUT_SETS  # defined without numba/TensorFlow imports, for the CLI's --help

__all__ = [
    "PT_SCALE",
    "PT_TARGET_MAX",
    "DEFAULT_STRIDE",
    "BACKGROUND_ETA",
    "FRAMES",
    "OUTPUT_SETS",
    "PT_ETA",
    "MULTI_OUTPUTS",
    "check_outputs",
    "preprocessing_spec",
    "TrainingData",
    "eta_scale",
    "output_specs",
    "pt_targets",
    "make_targets",
    "window_muons",
    "candidate_targets",
    "load_training_data",
    "split_indices",
    "split_examples",
]

PT_SCALE = 20.0  # GeV per network unit
PT_TARGET_MAX = 30.0  # GeV: higher muons are labelled with this pT (module docstring)
BACKGROUND_ETA = 0.5  # eta label of background events, in the frame's units
FRAMES = ("window", "sector")  # 9x16 networks learn eta in the window, the 9x384 teacher in the sector
PT_ETA, MULTI_OUTPUTS = OUTPUT_SETS  # one window's muon; a candidate window's muon, charge and presence


def check_outputs(outputs) -> tuple:
    """The output set ``outputs`` (names, or one comma-separated string) as a tuple of names;
    anything but one of :data:`OUTPUT_SETS` is refused, naming them."""
    names = tuple(outputs.split(",")) if isinstance(outputs, str) else tuple(outputs)
    if names not in OUTPUT_SETS:
        allowed = " or ".join(repr(",".join(s)) for s in OUTPUT_SETS)
        msg = f"unsupported outputs {','.join(map(str, names))!r}: the allowed output sets are {allowed}"
        raise ConfigError(msg)
    return names


def _check_multi_frame(frame: str, outputs) -> bool:
    """Whether ``outputs`` is the four-output set; refused outside the window frame."""
    multi = check_outputs(outputs) == MULTI_OUTPUTS
    if multi and frame != "window":
        msg = f"outputs {','.join(MULTI_OUTPUTS)} are per sector-logic candidate window (frame 'window'), not frame {frame!r}"
        raise ConfigError(msg)
    return multi


def eta_scale(frame: str) -> float:
    """Strips per network unit of the eta output in ``frame``."""
    return {"window": float(WINDOW_STRIPS), "sector": float(N_STRIPS)}[frame]


def output_specs(frame: str = "window", outputs=PT_ETA) -> list[dict]:
    """The spec's ``outputs`` entries for networks trained on these targets (``outputs``: an
    entry of :data:`OUTPUT_SETS`)."""
    specs = [
        {"name": "pt", "index": 0, "scale": PT_SCALE, "offset": 0.0, "unit": "GeV"},
        {"name": "eta", "index": 1, "scale": eta_scale(frame), "offset": 0.0, "unit": "strip", "frame": frame},
    ]
    if _check_multi_frame(frame, outputs):
        # the trigger reads charge >= 0 as +1 and counts a window as a muon where presence >= 0.5
        specs += [
            {"name": "charge", "index": 2, "scale": 1.0, "offset": 0.0, "unit": "e"},
            {"name": "presence", "index": 3, "scale": 1.0, "offset": 0.0, "unit": "muon"},
        ]
    return specs


def preprocessing_spec(frame: str, stride: int, outputs=PT_ETA, layers=ALL_LAYERS) -> dict:
    """The spec's ``preprocessing`` entry: how the trigger turns hits into this network's input
    (for the four-output set, the sector logic's candidate windows; ``layers`` is written
    only when it is not all nine, so 9-layer specs stay as they were)."""
    image = {"image": [N_LAYERS, N_STRIPS]}
    if check_layers(layers) != ALL_LAYERS:
        image["layers"] = list(check_layers(layers))
    multi = _check_multi_frame(frame, outputs)
    if frame == "sector":
        return image
    fragment = {"window": WINDOW_STRIPS, "pool": POOL, "stride": int(stride)}
    if multi:
        fragment.update(candidates=MAX_CANDIDATES, min_hits=min_candidate_hits(len(check_layers(layers))))
    return {**image, "fragment": fragment}


@dataclasses.dataclass
class TrainingData:
    """Inputs, targets and truth of one or more events files, one row per example.

    An example is an event (outputs ``pt,eta``) or a sector-logic candidate window (the four
    outputs; ``event_index`` says whose, ``muons`` and ``n_candidates`` keep every event's truth).
    """

    paths: list
    stride: int
    event_id: np.ndarray  # uint64, the example's event
    true_pt: np.ndarray  # pT (GeV) of the muon giving the targets (the leading one; the window's), 0 without
    true_eta: np.ndarray
    is_signal: np.ndarray  # that muon is above SIGNAL_PT_MIN (the candidate's presence target)
    window_start: np.ndarray  # int16: strip of the window's low edge
    images: np.ndarray  # float32 (n, rows, 16, 1): lit-pixel count / 2; rows = len(layers)
    targets: np.ndarray  # float32 (n, 2) or (n, 4): window frame
    full_images: np.ndarray | None = None  # uint8 (n, rows, 384, 1), binary, for the 9x384 teacher
    full_targets: np.ndarray | None = None  # float32 (n, 2): sector frame
    outputs: tuple = PT_ETA
    event_index: np.ndarray | None = None  # int64: the example's event, 0..n_events-1 in file order
    candidate: np.ndarray | None = None  # uint8: the candidate number (0: the single window)
    true_charge: np.ndarray | None = None  # int8: that muon's charge, 0 without (candidates only)
    muons: MuonTruth | None = None  # every muon of every event (candidates only)
    n_candidates: np.ndarray | None = None  # uint8 per event (candidates only)
    layers: tuple = ALL_LAYERS  # the RPC layers whose rows form the images

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def n_events(self) -> int:
        return len(self.event_id) if self.n_candidates is None else len(self.n_candidates)


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


def window_muons(starts, n_candidates, muons: MuonTruth) -> np.ndarray:
    """int64 ``(n_events, n_slots)``: for each present candidate, the flat index (into ``muons``)
    of the highest-pT muon above ``SIGNAL_PT_MIN`` whose strip coordinate ``eta_to_strip(eta)``
    lies in the window ``[low, low + 32)``; -1 where there is none or the candidate is absent.
    Equal pT: the muon first in the file."""
    starts = np.asarray(starts)
    n, n_slots = starts.shape
    event = np.repeat(np.arange(n), np.diff(muons.offsets))
    strip = eta_to_strip(muons.eta)
    pt = np.asarray(muons.pt, dtype=np.float64)
    order = np.lexsort((np.arange(len(pt)), -pt, event))  # by event, highest pT first
    found = np.full((n, n_slots), -1, np.int64)
    for c in range(n_slots):
        low = window_low_strip(starts[event, c])
        inside = (pt >= SIGNAL_PT_MIN) & (c < np.asarray(n_candidates)[event]) & (low <= strip) & (strip < low + WINDOW_STRIPS)
        chosen = order[inside[order]]
        first = np.flatnonzero(np.diff(event[chosen], prepend=-1) != 0)  # each event's first = its highest pT
        found[event[chosen[first]], c] = chosen[first]
    return found


def candidate_targets(starts, n_candidates, muons: MuonTruth):
    """Targets of every present candidate window (module docstring), events in order, candidates in order.

    Returns ``(event_index int64 (m,), candidate uint8 (m,), targets float32 (m, 4), muon int64 (m,))``:
    ``muon`` is the flat index of the muon giving the targets (:func:`window_muons`), -1 for none.
    """
    starts = np.asarray(starts)
    present = np.arange(starts.shape[1])[None, :] < np.asarray(n_candidates)[:, None]
    event_index, candidate = np.nonzero(present)
    muon = window_muons(starts, n_candidates, muons)[event_index, candidate]
    has = muon >= 0
    pt, strip, charge = np.zeros(len(muon)), np.zeros(len(muon)), np.zeros(len(muon))
    pt[has], strip[has], charge[has] = muons.pt[muon[has]], eta_to_strip(muons.eta[muon[has]]), muons.charge[muon[has]]
    targets = np.empty((len(muon), 4), np.float32)
    targets[:, 0] = pt_targets(pt)
    targets[:, 1] = np.where(has, (strip - window_low_strip(starts[event_index, candidate])) / eta_scale("window"), BACKGROUND_ETA)
    targets[:, 2] = charge
    targets[:, 3] = has
    return event_index.astype(np.int64), candidate.astype(np.uint8), targets, muon


def _concatenate_chunks(chunks) -> EventChunk:
    offsets = [chunks[0].hit_offsets]
    for chunk in chunks[1:]:
        offsets.append(chunk.hit_offsets[1:] + offsets[-1][-1])
    joined = {
        name: np.concatenate([getattr(c, name) for c in chunks])
        for name in ("event_id", "n_muons", "true_pt", "true_eta", "hit_layer", "hit_strip")
    }
    muons = None if chunks[0].muons is None else _concatenate_muons([c.muons for c in chunks])
    return EventChunk(path=",".join(c.path for c in chunks), entry_start=0, hit_offsets=np.concatenate(offsets), muons=muons, **joined)


def _concatenate_muons(parts) -> MuonTruth:
    offsets = [parts[0].offsets]
    for part in parts[1:]:
        offsets.append(part.offsets[1:] + offsets[-1][-1])
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ("pt", "eta", "charge")}
    return MuonTruth(offsets=np.concatenate(offsets), **joined)


def _candidate_data(paths, chunk: EventChunk, stride: int, layers=ALL_LAYERS) -> TrainingData:
    """One example per present sector-logic candidate of every event of ``chunk``."""
    starts, pooled, n_found = sector_candidates(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, stride, layers=layers)
    event_index, candidate, targets, muon = candidate_targets(starts, n_found, chunk.muons)
    has = muon >= 0
    true_pt, true_eta, true_charge = np.zeros(len(muon), np.float32), np.zeros(len(muon), np.float32), np.zeros(len(muon), np.int8)
    true_pt[has], true_eta[has], true_charge[has] = (chunk.muons.pt[muon[has]], chunk.muons.eta[muon[has]], chunk.muons.charge[muon[has]])
    return TrainingData(
        paths=paths, stride=int(stride), event_id=chunk.event_id[event_index], true_pt=true_pt, true_eta=true_eta,
        is_signal=has, window_start=starts[event_index, candidate], images=pooled_to_float(pooled[event_index, candidate]),
        targets=targets, outputs=MULTI_OUTPUTS, event_index=event_index, candidate=candidate, true_charge=true_charge,
        muons=chunk.muons, n_candidates=n_found, layers=tuple(layers),
    )  # fmt: skip


def load_training_data(paths, entry_stop=None, stride: int = DEFAULT_STRIDE, full_images: bool = False, outputs=PT_ETA,
                       layers=ALL_LAYERS) -> TrainingData:
    """Read events files (checked by :func:`l0emu.trigger.events.load_events`) and build inputs and targets.

    Several files are mixed in equal parts (e.g. the default and the hard scenario);
    ``entry_stop`` caps the total of events. ``outputs`` (:data:`OUTPUT_SETS`): the four-output
    set makes one example per sector-logic candidate window (module docstring). ``layers``:
    the RPC layers whose rows form the images (module docstring).
    """
    multi = check_outputs(outputs) == MULTI_OUTPUTS
    layers = check_layers(layers)
    if multi and full_images:
        msg = f"outputs {','.join(MULTI_OUTPUTS)} are per candidate window: no 9x384 images for them"
        raise ConfigError(msg)
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    per_file = None if entry_stop is None else -(-int(entry_stop) // len(paths))
    chunk = _concatenate_chunks([load_events(p, entry_stop=per_file, muons=multi) for p in paths])
    if multi:
        return _candidate_data(paths, chunk, stride, layers)
    start, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, stride, layers)
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
        event_index=np.arange(len(start), dtype=np.int64),
        layers=layers,
    )
    if full_images:
        data.full_images = hits_to_images(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, layers)[..., np.newaxis]
        data.full_targets, _ = make_targets(chunk.true_pt, chunk.true_eta, np.zeros(len(start)), "sector")
    return data


def split_indices(n: int, validation: float, test: float, seed: int):
    """Shuffled ``(train, validation, test)`` index arrays; the same seed gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test))
    n_val = int(round(n * validation))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def split_examples(data: TrainingData, validation: float, test: float, seed: int):
    """``(train, validation, test)`` example indices: events are split (:func:`split_indices`)
    and every candidate window goes with its event, so no event is in two parts. For event
    examples (``pt,eta``) exactly :func:`split_indices` of the examples."""
    if data.outputs == PT_ETA:
        return split_indices(len(data), validation, test, seed)
    parts = split_indices(data.n_events, validation, test, seed)
    return tuple(np.flatnonzero(np.isin(data.event_index, part)) for part in parts)
