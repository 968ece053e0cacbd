"""Hits -> 9x384 images, and input fragmentation 9x384 -> 9x16.

Fragmentation (seed 002): slide a 9x32 window over the strips with a configurable
stride, keep the window with the most lit pixels (ties: the middle of the first run
of tied windows, which centres the track), and
average-pool it by (1, 2). Window starts are ``0, stride, 2*stride, ...`` and always
include the right edge ``384-32`` so every strip can be reached.

Pooled images are returned as uint8 *lit-pixel counts* (0, 1 or 2 per pooled pixel):
the pixel value the network sees is ``count / 2``, exact in any fixed-point input type
with at least one fractional bit. :func:`pooled_to_float` gives the float view.

The kernels take jagged hits in awkward's flat layout: ``offsets`` (n_events + 1) and
flat ``layer`` / ``strip`` contents. They assume indices are in range; readers check
that first with :func:`first_out_of_range` and report the entry at fault.

A layer set (``layers``, spec ``preprocessing.layers``, :data:`l0emu.trigger.geometry.LAYER_SETS`)
makes images of those RPC layers' rows only, e.g. 4x384 / 4x16 for the middle station:
:func:`select_layers` drops the other layers' hits and renumbers the kept ones *before*
window counting and pooling, as a firmware wired to those layers alone would, so the
chosen window is the one the network's rows light up. The kernels take the row count
from their output arrays; all nine layers (``layers=None``) pass the hits through untouched.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.errors import ConfigError
from l0emu.trigger.geometry import ALL_LAYERS, N_LAYERS, N_STRIPS, check_layers

__all__ = [
    "WINDOW_STRIPS",
    "POOL",
    "FRAGMENT_STRIPS",
    "window_starts",
    "hits_to_images",
    "fragment_images",
    "fragment_hits",
    "pooled_to_float",
    "first_out_of_range",
    "window_low_strip",
    "window_ranges",
    "select_layers",
]

WINDOW_STRIPS = 32
POOL = 2
FRAGMENT_STRIPS = WINDOW_STRIPS // POOL


def window_starts(stride: int) -> np.ndarray:
    """Candidate window starts (strip index of the window's first column) for ``stride``."""
    if not isinstance(stride, (int, np.integer)) or not 1 <= stride <= N_STRIPS - WINDOW_STRIPS:
        msg = f"fragment stride must be an integer in [1, {N_STRIPS - WINDOW_STRIPS}], got {stride!r}"
        raise ConfigError(msg)
    last = N_STRIPS - WINDOW_STRIPS
    starts = list(range(0, last + 1, int(stride)))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int16)


def window_low_strip(starts):
    """Strip coordinate of a window's low edge (the frame of the network's local eta)."""
    return np.asarray(starts, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _fill_image(image, offsets, layer, strip, event):
    for k in range(offsets[event], offsets[event + 1]):
        image[layer[k], strip[k]] = 1


@numba.njit(cache=True, nogil=True, inline="always")
def best_window(window_hits):
    """``(index, lit pixels)`` of the window with the most lit pixels.

    Ties are the rule (every window holding the whole track ties): take the middle of
    the first run of tied windows, so the track sits near the window centre.
    """
    best_hits = -1
    first = 0
    last = 0
    in_run = False
    for w in range(window_hits.shape[0]):
        hits = window_hits[w]
        if hits > best_hits:
            best_hits = hits
            first = w
            last = w
            in_run = True
        elif hits == best_hits and in_run:
            last = w
        else:
            in_run = False
    return (first + last) // 2, best_hits


@numba.njit(cache=True, nogil=True)
def choose_window(window_hits, starts):
    """Start of the window with the most lit pixels (the rule of :func:`best_window`)."""
    return starts[best_window(window_hits)[0]]


@numba.njit(cache=True, nogil=True)
def _count_windows_from_image(image, starts, window_hits):
    for w in range(starts.shape[0]):
        hits = 0
        for row in range(image.shape[0]):
            for s in range(starts[w], starts[w] + 32):
                hits += image[row, s]
        window_hits[w] = hits


@numba.njit(cache=True, nogil=True)
def _pool_window(image, start, out):
    for row in range(image.shape[0]):
        for j in range(16):
            out[row, j] = image[row, start + 2 * j] + image[row, start + 2 * j + 1]


@numba.njit(cache=True, nogil=True)
def _hits_to_images(offsets, layer, strip, images):
    for event in range(offsets.shape[0] - 1):
        _fill_image(images[event], offsets, layer, strip, event)


@numba.njit(cache=True, nogil=True)
def _fragment_images(images, starts, chosen, pooled):
    window_hits = np.zeros(starts.shape[0], np.int32)
    for event in range(images.shape[0]):
        _count_windows_from_image(images[event], starts, window_hits)
        chosen[event] = choose_window(window_hits, starts)
        _pool_window(images[event], chosen[event], pooled[event])


def window_ranges(starts):
    """Per strip, the windows holding it: ``starts[first[s]:end[s]]`` (int64 arrays of 384).

    Starts are sorted, so the windows holding a strip are contiguous; the kernels look the
    range up instead of dividing by the stride twice per hit (a quarter of fragmentation time, issue 14).
    """
    starts = np.asarray(starts, dtype=np.int64)
    strips = np.arange(N_STRIPS)
    first = np.searchsorted(starts, strips - (WINDOW_STRIPS - 1), side="left")
    end = np.maximum(np.searchsorted(starts, strips, side="right"), first)
    return first.astype(np.int64), end.astype(np.int64)


# inlined at numba IR level: as a called function it cost ~15 % of fragment_hits speed
@numba.njit(cache=True, nogil=True, inline="always")
def count_window_hits(layer, strip, a, b, first_window, end_window, image, window_hits):
    """Mark hits ``a:b`` in ``image`` and count each newly lit pixel once in every window holding it;
    returns the number of lit pixels.

    ``first_window``/``end_window`` come from :func:`window_ranges`. Shared by the
    single-window fragmentation and the sector logic's candidate search, so both see the
    same counts; the caller clears ``image`` and ``window_hits`` after each event.
    """
    lit = 0
    for k in range(a, b):
        row, s = layer[k], strip[k]
        if image[row, s] == 0:
            image[row, s] = 1
            lit += 1
            for w in range(first_window[s], end_window[s]):
                window_hits[w] += 1
    return lit


@numba.njit(cache=True, nogil=True)
def _fragment_hits(offsets, layer, strip, starts, first_window, end_window, chosen, pooled):
    # Work from the hits alone (about ten per event), never scanning the 9x384 image:
    # each newly lit pixel counts once in each window containing it.
    image = np.zeros((pooled.shape[1], 384), np.uint8)  # scratch: marks lit pixels, cleared per event
    window_hits = np.zeros(starts.shape[0], np.int32)
    for event in range(offsets.shape[0] - 1):
        a, b = offsets[event], offsets[event + 1]
        count_window_hits(layer, strip, a, b, first_window, end_window, image, window_hits)
        start = choose_window(window_hits, starts)
        chosen[event] = start
        out = pooled[event]
        out[:, :] = 0
        for k in range(a, b):
            row, s = layer[k], strip[k]
            if image[row, s] == 1:
                image[row, s] = 0  # clearing also makes each pixel count once
                if start <= s < start + 32:
                    out[row, (s - start) // 2] += 1
        window_hits[:] = 0


@numba.njit(cache=True, nogil=True)
def _first_out_of_range(layer, strip, n_layers, n_strips):
    for k in range(layer.shape[0]):
        if layer[k] < 0 or layer[k] >= n_layers or strip[k] < 0 or strip[k] >= n_strips:
            return k
    return -1


@numba.njit(cache=True, nogil=True)
def _select_layers(offsets, layer, strip, row_of_layer, new_offsets, new_layer, new_strip):
    # offsets may start anywhere in the hit arrays (a trigger block): the output starts at 0
    n = 0
    for event in range(offsets.shape[0] - 1):
        new_offsets[event] = n
        for k in range(offsets[event], offsets[event + 1]):
            row = row_of_layer[layer[k]]
            if row >= 0:
                new_layer[n] = row
                new_strip[n] = strip[k]
                n += 1
    new_offsets[offsets.shape[0] - 1] = n
    return n


def _rows(layers) -> int:
    return N_LAYERS if layers is None else len(check_layers(layers))


def select_layers(offsets, layer, strip, layers=None):
    """Hits of the RPC layers ``layers`` only, renumbered to image rows ``0..len(layers)-1``.

    Returns flat ``(offsets int64, layer, strip)`` as the kernels take them. ``layers`` None
    or all nine returns the inputs (made contiguous) unchanged: the 9-layer path copies nothing.
    """
    offsets, layer, strip = _flat(offsets, layer, strip)
    layers = ALL_LAYERS if layers is None else check_layers(layers)
    if layers == ALL_LAYERS:
        return offsets, layer, strip
    row_of_layer = np.full(N_LAYERS, -1, np.int64)  # image row of each RPC layer, -1: dropped
    row_of_layer[list(layers)] = np.arange(len(layers))
    span = int(offsets[-1] - offsets[0])  # the hits of these events: at most this many are kept
    new_offsets = np.empty(len(offsets), np.int64)
    new_layer, new_strip = np.empty(span, layer.dtype), np.empty(span, strip.dtype)
    n = _select_layers(offsets, layer, strip, row_of_layer, new_offsets, new_layer, new_strip)
    return new_offsets, new_layer[:n], new_strip[:n]


def _flat(offsets, layer, strip):
    # layer and strip keep their integer dtype (uint8 / int16 from files): no copies
    return (
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(layer),
        np.ascontiguousarray(strip),
    )


def hits_to_images(offsets, layer, strip, layers=None) -> np.ndarray:
    """Binary occupancy images of ``layers`` (None: all nine), shape ``(n_events, len(layers), 384)``, dtype uint8."""
    offsets, layer, strip = select_layers(offsets, layer, strip, layers)
    images = np.zeros((len(offsets) - 1, _rows(layers), N_STRIPS), np.uint8)
    _hits_to_images(offsets, layer, strip, images)
    return images


def fragment_images(images, stride: int):
    """Fragment ``(n, rows, 384)`` images: returns ``(starts int16 (n,), pooled uint8 (n, rows, 16))``."""
    starts = window_starts(stride)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    chosen = np.empty(len(images), np.int16)
    pooled = np.empty((len(images), images.shape[1], FRAGMENT_STRIPS), np.uint8)
    _fragment_images(images, starts, chosen, pooled)
    return chosen, pooled


def fragment_hits(offsets, layer, strip, stride: int, layers=None):
    """Same as ``fragment_images(hits_to_images(..., layers))`` without materialising the images:
    ``(starts int16 (n,), pooled uint8 (n, len(layers), 16))``, all nine layers for ``layers=None``."""
    starts = window_starts(stride)
    offsets, layer, strip = select_layers(offsets, layer, strip, layers)
    n = len(offsets) - 1
    chosen = np.empty(n, np.int16)
    pooled = np.empty((n, _rows(layers), FRAGMENT_STRIPS), np.uint8)
    _fragment_hits(offsets, layer, strip, starts, *window_ranges(starts), chosen, pooled)
    return chosen, pooled


def pooled_to_float(pooled) -> np.ndarray:
    """Pixel values the network sees: lit-pixel count / 2, as float32 with a channel axis."""
    return (np.asarray(pooled, dtype=np.float32) * 0.5)[..., np.newaxis]


def first_out_of_range(layer, strip) -> int:
    """Index of the first hit whose layer or strip is outside the sector, or -1."""
    return int(_first_out_of_range(np.asarray(layer), np.asarray(strip), N_LAYERS, N_STRIPS))
