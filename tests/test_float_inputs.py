"""The fast float32 input conversion equals ap_fixed(double) (casts.float_to_mantissa) on every
rounding and overflow mode, on ties, huge values, subnormals, zeros, infinities and NaN."""

from __future__ import annotations

import numpy as np
import pytest

from l0emu.fixedpoint._float_inputs import float32_to_mantissa
from l0emu.fixedpoint.aptypes import OVERFLOW_CODES, ROUNDING_CODES, parse_type
from l0emu.fixedpoint.casts import float_to_mantissa


def _values(t, rng):
    lsb = 2.0 ** -t.frac
    ties = (rng.integers(-(1 << (t.width + 1)), 1 << (t.width + 1), 2000) + 0.5) * lsb  # halves of an lsb, beyond the range too
    spread = rng.normal(0, 1, 2000) * 2.0 ** rng.integers(-30, 40, 2000)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 2.0**60, -(2.0**60), 2.0**51 * lsb, -(2.0**52) * lsb]
    return np.concatenate([ties, spread, special]).astype(np.float32)


@pytest.mark.parametrize("overflow", list(OVERFLOW_CODES))
@pytest.mark.parametrize("rounding", list(ROUNDING_CODES))
@pytest.mark.parametrize("base", ["ap_fixed<16,6", "ap_ufixed<8,3", "ap_fixed<5,9", "ap_fixed<24,-2", "ap_fixed<40,20"])
def test_equals_ap_fixed_of_double(base, rounding, overflow):
    bits = ",2" if overflow == "WRAP" and base.startswith("ap_fixed<16") else ""
    t = parse_type(f"{base},AP_{rounding},AP_{overflow}{bits}>")
    values = _values(t, np.random.default_rng(len(base) + 7 * len(rounding) + len(overflow)))
    np.testing.assert_array_equal(float32_to_mantissa(values, t), float_to_mantissa(values.astype(np.float64), t))
