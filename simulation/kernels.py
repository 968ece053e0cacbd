"""The one numba kernel of the simulation: clusters -> unique hits, event by event.

Sources of hits (muon clusters, segments, correlated clusters, noise) are sampled with
vectorized numpy as *clusters* ``(layer, first strip, size)``. This kernel expands each
cluster into strips, drops strips outside the sector, and keeps each (layer, strip) once
per event: the first source to light a strip owns it, so a muon hit is never relabelled
as noise when noise lands on the same strip.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.trigger.geometry import N_LAYERS, N_STRIPS

__all__ = ["emit_hits"]


@numba.njit(cache=True, nogil=True)
def _emit_hits(source_offsets, layer, first_strip, size, is_noise, out_offsets, out_layer, out_strip, out_noise):
    lit = np.zeros((N_LAYERS, N_STRIPS), np.uint8)
    n_sources, n_events = source_offsets.shape[0], source_offsets.shape[1] - 1
    n = 0
    for event in range(n_events):
        out_offsets[event] = n
        for source in range(n_sources):
            for c in range(source_offsets[source, event], source_offsets[source, event + 1]):
                row = layer[c]
                for j in range(size[c]):
                    strip = first_strip[c] + j
                    if 0 <= strip < N_STRIPS and lit[row, strip] == 0:
                        lit[row, strip] = 1
                        out_layer[n] = row
                        out_strip[n] = strip
                        out_noise[n] = is_noise[c]
                        n += 1
        for h in range(out_offsets[event], n):
            lit[out_layer[h], out_strip[h]] = 0
    out_offsets[n_events] = n
    return n


def emit_hits(source_offsets, layer, first_strip, size, is_noise):
    """Unique in-sector hits of clusters grouped by event.

    ``source_offsets`` (n_sources, n_events + 1) int64: source ``k``'s clusters for event
    ``e`` are ``[source_offsets[k, e], source_offsets[k, e + 1])`` of the flat cluster
    arrays ``layer`` (uint8), ``first_strip`` (int16), ``size`` (uint8), ``is_noise`` (bool).
    Returns ``(hit_offsets int64, hit_layer uint8, hit_strip int16, hit_is_noise bool)``.
    """
    capacity = int(np.sum(size, dtype=np.int64))
    n_events = source_offsets.shape[1] - 1
    out_offsets = np.empty(n_events + 1, np.int64)
    out_layer = np.empty(capacity, np.uint8)
    out_strip = np.empty(capacity, np.int16)
    out_noise = np.empty(capacity, np.bool_)
    n = _emit_hits(
        np.ascontiguousarray(source_offsets, dtype=np.int64),
        np.ascontiguousarray(layer, dtype=np.uint8),
        np.ascontiguousarray(first_strip, dtype=np.int16),
        np.ascontiguousarray(size, dtype=np.uint8),
        np.ascontiguousarray(is_noise, dtype=np.bool_),
        out_offsets, out_layer, out_strip, out_noise,
    )
    return out_offsets, out_layer[:n], out_strip[:n], out_noise[:n]
