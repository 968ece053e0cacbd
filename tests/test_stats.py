import math

import numpy as np
import pytest

from l0emu.results.stats import ONE_SIGMA, clopper_pearson, upper_limit


def test_upper_limit_zero_events_is_the_exact_form_of_the_rule_of_three():
    n = 500_000
    assert upper_limit(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
    assert upper_limit(0, n) == pytest.approx(3 / n, rel=2e-3)  # -ln(0.05) = 2.996


def test_upper_limit_matches_binomial_tail():
    # At the limit p, P(X <= k | n, p) = 0.05
    k, n = 4, 1000
    p = upper_limit(k, n)
    tail = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    assert tail == pytest.approx(0.05, abs=1e-9)


def test_upper_limits_quoted_for_the_shipped_student():
    # the grid's fake-rate table (docs/grid/grid.md): 0 of 499,821 (default) and 936 of 500,353 (hard) background events;
    # the figures the previous hand-written incomplete beta gave agree to 1e-9 relative
    assert upper_limit(0, 499_821) == pytest.approx(5.993592297e-06, rel=1e-9)
    assert upper_limit(936, 500_353) == pytest.approx(1.974327167e-03, rel=1e-9)
    assert upper_limit(0, 10) == pytest.approx(1 - 0.05**0.1, rel=1e-12)  # 0.2589


def test_clopper_pearson_textbook_values():
    # 95 % central intervals as tabulated (e.g. Clopper & Pearson 1934; Brown, Cai, DasGupta 2001)
    low, high = clopper_pearson([5, 1, 0, 10], [10, 10, 10, 10], cl=0.95)
    np.testing.assert_allclose(low, [0.187086, 0.002529, 0.0, 0.691503], atol=1e-6)
    np.testing.assert_allclose(high, [0.812914, 0.445016, 0.308497, 1.0], atol=1e-6)
    # k = 0: the upper edge is 1 - (alpha/2)^(1/n) exactly
    assert high[2] == pytest.approx(1 - 0.025**0.1, rel=1e-12)


def test_clopper_pearson_default_is_one_sigma():
    assert ONE_SIGMA == pytest.approx(math.erf(1 / math.sqrt(2)), abs=5e-5)  # 68.27 %
    k, n = 3, 7
    low, high = clopper_pearson(k, n)

    def cdf(x, p):  # P(X <= x | n, p)
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(x + 1))

    # the defining tails: P(X >= k | low) = P(X <= k | high) = (1 - coverage) / 2
    assert 1 - cdf(k - 1, low[0]) == pytest.approx((1 - ONE_SIGMA) / 2, abs=1e-12)
    assert cdf(k, high[0]) == pytest.approx((1 - ONE_SIGMA) / 2, abs=1e-12)


def test_clopper_pearson_edges_and_empty_bins():
    low, high = clopper_pearson([0, 5, 0], [5, 5, 0])
    assert low[0] == 0.0 and high[1] == 1.0
    assert math.isnan(low[2]) and math.isnan(high[2])
    assert 0 < high[0] < 1 and 0 < low[1] < 1
    np.testing.assert_allclose(high[0], 1 - low[1], rtol=1e-12)


def test_clopper_pearson_rejects_more_passed_than_total():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson([3], [2])
