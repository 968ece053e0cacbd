"""Binomial confidence intervals (Clopper-Pearson), numpy-only so the runtime floor has them.

The regularized incomplete beta function is evaluated with the Lentz continued fraction
(Numerical Recipes 6.4) and inverted by bisection; exact to ~1e-12, vectorized over bins.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["regularized_beta", "clopper_pearson", "upper_limit"]


def _betacf(a, b, x, iterations=300, eps=1e-15):
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of Beta(a, b) at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(64):  # 2^-64: below a double's resolution on [0, 1]
        mid = 0.5 * (lo + hi)
        if regularized_beta(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k, n, cl: float = 0.6827):
    """Central Clopper-Pearson interval ``(low, high)`` for k successes in n trials (arrays ok).

    Bins with n == 0 give (nan, nan).
    """
    k = np.atleast_1d(np.asarray(k, dtype=np.float64))
    n = np.atleast_1d(np.asarray(n, dtype=np.float64))
    alpha = 1.0 - cl
    low = np.full(np.broadcast(k, n).shape, np.nan)
    high = np.full_like(low, np.nan)
    for i, (ki, ni) in enumerate(zip(*np.broadcast_arrays(k, n))):
        if ni <= 0:
            continue
        low[i] = 0.0 if ki == 0 else _beta_quantile(alpha / 2, ki, ni - ki + 1)
        high[i] = 1.0 if ki == ni else _beta_quantile(1 - alpha / 2, ki + 1, ni - ki)
    return low, high


def upper_limit(k: int, n: int, cl: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper limit on a rate from k of n (k = 0: 1-(1-cl)^(1/n) ~ 3/n)."""
    if n <= 0:
        return float("nan")
    if k >= n:
        return 1.0
    return _beta_quantile(cl, k + 1, n - k)
