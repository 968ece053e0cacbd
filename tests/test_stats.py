import math

import numpy as np
import pytest

from l0emu.stats import clopper_pearson, regularized_beta, upper_limit


def test_regularized_beta_known_values():
    # I_x(1, 1) = x ; I_x(a, 1) = x^a ; I_0.5(a, a) = 0.5
    assert regularized_beta(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)
    assert regularized_beta(3, 1, 0.7) == pytest.approx(0.7**3, abs=1e-14)
    assert regularized_beta(7.5, 7.5, 0.5) == pytest.approx(0.5, abs=1e-12)


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


def test_clopper_pearson_edges_and_empty_bins():
    low, high = clopper_pearson([0, 5, 2], [5, 5, 0])
    assert low[0] == 0.0 and high[1] == 1.0
    assert math.isnan(low[2]) and math.isnan(high[2])
    assert 0 < high[0] < 1 and 0 < low[1] < 1
    np.testing.assert_allclose(high[0], 1 - low[1], rtol=1e-12)
