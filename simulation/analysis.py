"""Measurements on generated events, shared by the plots and the physics tests."""

from __future__ import annotations

import numpy as np

from l0emu.trigger.geometry import STATION_OF_LAYER
from l0emu.trigger.images import WINDOW_STRIPS, fragment_hits

from .block import EventBlock

__all__ = ["hit_event_index", "single_muon_events", "bo_bi_offset", "fragment_survival"]

_BI, _BO = 0, int(STATION_OF_LAYER.max())


def hit_event_index(block: EventBlock) -> np.ndarray:
    """Event index (within the block) of every hit."""
    return np.repeat(np.arange(len(block)), np.diff(block.hit_offsets))


def single_muon_events(block: EventBlock) -> np.ndarray:
    """Indices of events with exactly one muon: all their non-noise hits are that muon's."""
    return np.flatnonzero(block.n_muons == 1)


def _station_mean_strip(block, station, event, muon_hit):
    in_station = muon_hit & (STATION_OF_LAYER[block.hit_layer] == station)
    counts = np.bincount(event[in_station], minlength=len(block))
    sums = np.bincount(event[in_station], weights=block.hit_strip[in_station], minlength=len(block))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, counts


def bo_bi_offset(block: EventBlock):
    """Mean BO strip minus mean BI strip of the muon's hits, for single-muon events hitting both.

    Returns ``(pt, charge, offset)`` arrays over those events.
    """
    event = hit_event_index(block)
    muon_hit = ~block.hit_is_noise
    bi, n_bi = _station_mean_strip(block, _BI, event, muon_hit)
    bo, n_bo = _station_mean_strip(block, _BO, event, muon_hit)
    chosen = single_muon_events(block)
    chosen = chosen[(n_bi[chosen] > 0) & (n_bo[chosen] > 0)]
    first_muon = block.muon_offsets[chosen]
    return block.muon_pt[first_muon], block.muon_charge[first_muon], bo[chosen] - bi[chosen]


def fragment_survival(block: EventBlock, stride: int):
    """Fraction of the muon's hits inside the window fragmentation keeps, per single-muon event.

    Fragmentation sees every hit (noise included), as the trigger does. Returns
    ``(pt, fraction)`` over single-muon events with at least one muon hit.
    """
    chosen_start, _ = fragment_hits(block.hit_offsets, block.hit_layer, block.hit_strip, stride)
    event = hit_event_index(block)
    muon_hit = ~block.hit_is_noise
    start = chosen_start[event].astype(np.int64)
    inside = muon_hit & (block.hit_strip >= start) & (block.hit_strip < start + WINDOW_STRIPS)
    n_muon_hits = np.bincount(event[muon_hit], minlength=len(block))
    n_inside = np.bincount(event[inside], minlength=len(block))
    chosen = single_muon_events(block)
    chosen = chosen[n_muon_hits[chosen] > 0]
    return block.muon_pt[block.muon_offsets[chosen]], n_inside[chosen] / n_muon_hits[chosen]
