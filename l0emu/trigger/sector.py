"""Sector logic for several muons: up to three candidate 9x16 windows per sector.

The single-window fragmentation of :mod:`l0emu.trigger.images` keeps only the 9x32 window with the
most lit pixels, so a second muon further away than a window is never seen. Here the same
window counts pick up to :data:`MAX_CANDIDATES` *non-overlapping* windows, greedily:

1. candidate 0 is exactly the window :func:`l0emu.trigger.images.fragment_hits` chooses (same counts,
   same tie rule), so the leading candidate reproduces today's single-window trigger bit for bit;
2. every window overlapping a chosen one (sharing a strip) is then excluded, and the window
   with the most lit pixels among the rest is the next candidate, with the same tie rule
   (middle of the first run of tied windows; an excluded window ends a run);
3. a further candidate must hold at least ``min_hits`` lit pixels (a muon lights ~11 of the
   9 layers' strips; noise ~0.3 per window at the default rate), else the search stops.

Everything is integer: per-strip counts of lit pixels, 32-strip window sums, comparisons,
and a mask of excluded windows -- three passes of an argmax over the ~45 window sums that a
firmware sector logic can do in a few clock cycles. Each candidate is pooled (1, 2) as in
:mod:`l0emu.trigger.images` (uint8 lit-pixel counts 0..2) for the network to run on.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.errors import ConfigError
from l0emu.trigger.geometry import N_LAYERS, N_STRIPS
from l0emu.trigger.images import (
    FRAGMENT_STRIPS, WINDOW_STRIPS, best_window, count_window_hits, select_layers, window_ranges, window_starts,
)  # fmt: skip

__all__ = ["MAX_CANDIDATES", "MIN_CANDIDATE_HITS", "NO_CANDIDATE", "choose_candidates", "min_candidate_hits",
           "candidate_images", "sector_candidates", "candidate_outputs", "predict_candidates"]

MAX_CANDIDATES = 3
# a further candidate needs this many lit pixels of the nine layers (docs/multi_muon.md: chosen on the multi study)
MIN_CANDIDATE_HITS = 6
# window start of an absent candidate
NO_CANDIDATE = -1


@numba.njit(cache=True, nogil=True, inline="always")
def _choose_candidates(window_hits, starts, min_hits, lit, masked, chosen):
    """Fill ``chosen`` with up to ``len(chosen)`` window starts; return how many were found.

    Each candidate is the single-window choice (:func:`l0emu.trigger.images.best_window`) among
    the windows not overlapping an earlier one; excluded windows count -1 lit pixels, which
    breaks a run of ties exactly as a window with fewer pixels does. ``lit``: the event's lit
    pixels; once fewer than ``min_hits`` lie outside the chosen windows no further window can
    hold ``min_hits``, and the search stops without another pass (most crossings).
    """
    masked[:] = window_hits
    chosen[:] = -1
    found = 0
    outside = lit
    for k in range(chosen.shape[0]):
        if k > 0 and outside < min_hits:
            break
        best, best_hits = best_window(masked)
        if best_hits < 0 or (k > 0 and best_hits < min_hits):
            break
        start = starts[best]
        chosen[k] = start
        found += 1
        outside -= best_hits  # candidates share no strip: their pixels are disjoint
        # starts increase: the windows sharing a strip with this one are a run around it
        w = best
        while w >= 0 and starts[w] + 32 > start:
            masked[w] = -1
            w -= 1
        w = best + 1
        while w < starts.shape[0] and starts[w] < start + 32:
            masked[w] = -1
            w += 1
    return found


@numba.njit(cache=True, nogil=True)
def _candidate_images(offsets, layer, strip, starts, first_window, end_window, min_hits, chosen, images, n_found):
    # From the hits alone, as images._fragment_hits: each newly lit pixel counts once in each
    # window containing it (about four at stride 8), never summing the 384 strips. The present
    # candidates' images are written one after another (event order): the network runs on
    # them as they are, with no gather. Returns how many were written.
    image = np.zeros((images.shape[1], 384), np.uint8)  # scratch: lit pixels, cleared per event
    window_hits = np.zeros(starts.shape[0], np.int32)
    masked = np.zeros(starts.shape[0], np.int32)
    written = 0
    for event in range(offsets.shape[0] - 1):
        a, b = offsets[event], offsets[event + 1]
        lit = count_window_hits(layer, strip, a, b, first_window, end_window, image, window_hits)
        found = _choose_candidates(window_hits, starts, min_hits, lit, masked, chosen[event])
        n_found[event] = found
        images[written : written + found] = 0
        for k in range(a, b):
            row, s = layer[k], strip[k]
            if image[row, s] == 1:
                image[row, s] = 0  # clearing also makes each pixel count once
                for c in range(found):
                    start = chosen[event, c]
                    if start <= s < start + 32:
                        images[written + c, row, (s - start) // 2] += 1
        written += found
        window_hits[:] = 0
    return written


@numba.njit(cache=True, nogil=True)
def _pad_candidates(compact, n_candidates, padded):
    # per-candidate rows (images or network outputs) written one after another -> (event, candidate)
    i = 0
    for event in range(padded.shape[0]):
        for k in range(n_candidates[event]):
            padded[event, k] = compact[i]
            i += 1


def min_candidate_hits(rows: int = N_LAYERS) -> int:
    """The default ``min_hits`` for images of ``rows`` RPC layers: :data:`MIN_CANDIDATE_HITS`
    for all nine, in proportion for fewer (a muon lights about one pixel per layer; 3 for four)."""
    return max(1, round(MIN_CANDIDATE_HITS * int(rows) / N_LAYERS))


def _check_candidates(max_candidates, min_hits):
    if not isinstance(max_candidates, (int, np.integer)) or not 1 <= max_candidates <= N_STRIPS // WINDOW_STRIPS:
        msg = f"max_candidates must be an integer in [1, {N_STRIPS // WINDOW_STRIPS}], got {max_candidates!r}"
        raise ConfigError(msg)
    if not isinstance(min_hits, (int, np.integer)) or not 0 <= min_hits <= N_LAYERS * WINDOW_STRIPS:
        msg = f"min_hits must be an integer in [0, {N_LAYERS * WINDOW_STRIPS}], got {min_hits!r}"
        raise ConfigError(msg)


def choose_candidates(window_hits, stride: int, *, max_candidates: int = MAX_CANDIDATES,
                      min_hits: int = MIN_CANDIDATE_HITS):
    """Candidate window starts for one sector's window counts (``len(window_starts(stride))``).

    Returns int16 ``(max_candidates,)`` starts, :data:`NO_CANDIDATE` where absent.
    """
    _check_candidates(max_candidates, min_hits)
    starts = window_starts(stride)
    window_hits = np.ascontiguousarray(window_hits, dtype=np.int32)
    if window_hits.shape != starts.shape:
        msg = f"window_hits must have one count per window start ({len(starts)} for stride {stride}), got shape {window_hits.shape}"
        raise ConfigError(msg)
    chosen = np.empty(max_candidates, np.int16)
    masked = np.empty(len(starts), np.int32)
    _choose_candidates(window_hits, starts, int(min_hits), np.iinfo(np.int32).max, masked, chosen)  # no pixel count: no shortcut
    return chosen


def candidate_images(offsets, layer, strip, stride: int, *, max_candidates: int = MAX_CANDIDATES,
                     min_hits: int | None = None, layers=None):
    """Up to ``max_candidates`` non-overlapping windows per event, from jagged hits (awkward's
    flat layout), with the present candidates' images one after another.

    Returns ``(starts int16 (n, max_candidates), images uint8 (m, rows, 16), n_candidates uint8
    (n,))``: absent candidates have start :data:`NO_CANDIDATE`; ``images`` holds event 0's
    candidates in order, then event 1's, ... (m = ``n_candidates.sum()``), what the network runs
    on (:func:`candidate_outputs`). ``layers``: the RPC layers whose hits count and form the
    ``rows`` (None: all nine; :func:`l0emu.trigger.images.select_layers`). ``min_hits``: None takes
    :func:`min_candidate_hits` of the rows. Hit indices must be in range
    (:func:`l0emu.trigger.images.first_out_of_range`).
    """
    rows = N_LAYERS if layers is None else len(layers)
    min_hits = min_candidate_hits(rows) if min_hits is None else min_hits
    _check_candidates(max_candidates, min_hits)
    starts = window_starts(stride)
    offsets, layer, strip = select_layers(offsets, layer, strip, layers)
    n = len(offsets) - 1
    chosen = np.empty((n, max_candidates), np.int16)
    images = np.empty((n * max_candidates, rows, FRAGMENT_STRIPS), np.uint8)  # untouched beyond the written ones
    n_found = np.empty(n, np.uint8)
    written = _candidate_images(offsets, layer, strip, starts, *window_ranges(starts), int(min_hits), chosen, images, n_found)
    return chosen, images[:written], n_found


def sector_candidates(offsets, layer, strip, stride: int, *, max_candidates: int = MAX_CANDIDATES,
                      min_hits: int | None = None, layers=None):
    """:func:`candidate_images` with the images per event and candidate.

    Returns ``(starts int16 (n, max_candidates), pooled uint8 (n, max_candidates, rows, 16),
    n_candidates uint8 (n,))``; absent candidates have start :data:`NO_CANDIDATE` and an
    all-zero image. ``starts[:, 0]`` and ``pooled[:, 0]`` equal :func:`l0emu.trigger.images.fragment_hits`.
    """
    starts, images, n_found = candidate_images(offsets, layer, strip, stride, max_candidates=max_candidates,
                                               min_hits=min_hits, layers=layers)
    pooled = np.zeros((len(n_found), max_candidates) + images.shape[1:], np.uint8)
    _pad_candidates(images, n_found, pooled)
    return starts, pooled, n_found


def candidate_outputs(emulator, images, n_candidates, max_candidates: int) -> np.ndarray:
    """Raw network outputs per candidate, int64 ``(n, max_candidates, n_outputs)``, from
    :func:`candidate_images`' images; rows of absent candidates are 0.

    The network runs once per *present* candidate (firmware runs one copy per candidate in
    parallel; absent ones are ignored).
    """
    n_candidates = np.ascontiguousarray(n_candidates, dtype=np.uint8)
    raw = emulator.predict_raw(images)
    out = np.zeros((len(n_candidates), max_candidates, raw.shape[1]), np.int64)
    _pad_candidates(raw, n_candidates, out)
    return out


def predict_candidates(emulator, pooled, n_candidates) -> np.ndarray:
    """:func:`candidate_outputs` from :func:`sector_candidates`' per-candidate images."""
    pooled = np.asarray(pooled)
    present = np.arange(pooled.shape[1])[None, :] < np.asarray(n_candidates)[:, None]
    return candidate_outputs(emulator, np.ascontiguousarray(pooled[present]), n_candidates, pooled.shape[1])
