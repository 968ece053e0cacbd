"""One pass over a chunk's decisions for the turn-on, fake-rate and plateau counts.

:meth:`l0emu.results.rates.TriggerCounts.from_columns` calls :func:`count_chunk`. A numba kernel
instead of numpy masks: a hist fill and eight boolean selections per threshold cost as much
as compressing the ``l0`` tree (issue 14 profile). Kept out of :mod:`l0emu.results.rates` so that
``--help`` does not import numba.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.errors import InputFileError

__all__ = ["count_chunk"]


@numba.njit(cache=True, nogil=True)
def _bin(edges, x):
    # the bin i with edges[i] <= x < edges[i + 1], as hist and np.searchsorted(side="right") - 1
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@numba.njit(cache=True, nogil=True)
def _count(true_pt, fired, edges, signal_min, overflow, plateau_min, numerator, denominator, totals):
    # totals: [background, then per threshold: background fired, plateau total, plateau passed]
    n_thresholds = fired.shape[0]
    max_signal = 0.0
    for e in range(true_pt.shape[0]):
        pt = np.float64(true_pt[e])
        if not pt >= signal_min:  # count_chunk refused NaN before
            totals[0] += 1
            for t in range(n_thresholds):
                totals[1 + 3 * t] += fired[t, e]
            continue
        max_signal = max(max_signal, pt)
        b = _bin(edges, min(pt, overflow))
        denominator[b] += 1
        for t in range(n_thresholds):
            numerator[t, b] += fired[t, e]
            if pt >= plateau_min[t]:
                totals[2 + 3 * t] += 1
                totals[3 + 3 * t] += fired[t, e]
    return max_signal


def count_chunk(true_pt, fired, edges, signal_min: float, plateau_min, truth: str = "true_pt"):
    """Counts of one chunk: ``fired`` is (n_thresholds, n_events) bool, ``edges`` the pT binning.

    Signal events have ``true_pt >= signal_min`` and are binned with overflow folded into the
    last bin. A truth pT that is not a finite number is refused, naming the ``truth`` branch, as
    the event readers refuse it: NaN would count as background, a fake. Returns ``(numerator (n_thresholds, n_bins), denominator (n_bins), background,
    background_fired, plateau_total, plateau_passed, max_signal_pt)``, counts as int64.
    """
    true_pt = np.ascontiguousarray(true_pt)
    bad = np.flatnonzero(~np.isfinite(true_pt))
    if len(bad):
        msg = (f"the {truth!r} branch holds {float(true_pt[bad[0]])!r} at entry {int(bad[0])} of this chunk ({len(bad)} such "
               "entries): a truth pT that is not a finite number is neither signal nor background, so it is not counted")
        raise InputFileError(msg)
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    if not edges[0] <= signal_min:  # every signal event must fall in a bin
        msg = f"count_chunk: the first pT bin edge {edges[0]:g} lies above the signal threshold {signal_min:g} GeV"
        raise ValueError(msg)
    fired = np.ascontiguousarray(fired, dtype=np.bool_)
    n_thresholds, n_bins = fired.shape[0], len(edges) - 1
    numerator = np.zeros((n_thresholds, n_bins), np.int64)
    denominator = np.zeros(n_bins, np.int64)
    totals = np.zeros(1 + 3 * n_thresholds, np.int64)
    max_signal = _count(
        true_pt, fired, edges, float(signal_min), float(edges[-1] - 1e-9),
        np.asarray(plateau_min, dtype=np.float64), numerator, denominator, totals,
    )
    per = totals[1:].reshape(n_thresholds, 3)
    return numerator, denominator, int(totals[0]), per[:, 0], per[:, 1], per[:, 2], float(max_signal)
