"""Binomial confidence intervals (Clopper-Pearson) for efficiencies and fake rates.

Central intervals come from :func:`hist.intervals.clopper_pearson_interval`, one-sided upper
limits from the beta quantile in :mod:`scipy.stats` (which hist's intervals use too). Both
are imported on first use: scipy.stats takes seconds to import, and ``l0emu --help`` or a
bad argument must not wait for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ONE_SIGMA", "clopper_pearson", "upper_limit"]

# central coverage of +-1 standard deviation of a normal distribution, as every table and
# docstring states it (68.27 %); hist's own default is the unrounded norm.cdf(1) - norm.cdf(-1)
ONE_SIGMA = 0.6827


def clopper_pearson(k, n, cl: float = ONE_SIGMA):
    """Central Clopper-Pearson interval ``(low, high)`` for k successes in n trials (arrays ok).

    Returns 1-d float arrays. Bins with n == 0 give (nan, nan): no measurement, not [0, 1].
    """
    from hist.intervals import clopper_pearson_interval

    k = np.atleast_1d(np.asarray(k, dtype=np.float64))
    n = np.atleast_1d(np.asarray(n, dtype=np.float64))
    k, n = np.broadcast_arrays(k, n)
    if np.any(k < 0) or np.any(k > n):
        msg = f"Clopper-Pearson interval needs 0 <= k <= n, got k={k.tolist()} n={n.tolist()}"
        raise ValueError(msg)
    empty = n <= 0
    # scipy warns on beta(0, 1) quantiles of empty bins; give them a harmless n and mask after
    low, high = clopper_pearson_interval(k, np.where(empty, 1.0, n), coverage=cl)
    low, high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    low[empty] = np.nan
    high[empty] = np.nan
    return low, high


def upper_limit(k: int, n: int, cl: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper limit on a rate from k of n (k = 0: 1-(1-cl)^(1/n) ~ 3/n)."""
    if n <= 0:
        return float("nan")
    if k >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(cl, k + 1, n - k))
