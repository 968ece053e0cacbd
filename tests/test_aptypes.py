"""ap type strings: every spelling hls4ml and the ap headers use, round trips, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from l0emu.fixedpoint.aptypes import MAX_WIDTH, ApType, parse_type
from l0emu.errors import SpecError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ap_fixed<16,6>", ApType(16, 6, True, "TRN", "WRAP", 0)),
        ("ap_fixed<16,6,AP_RND_CONV,AP_SAT,0>", ApType(16, 6, True, "RND_CONV", "SAT", 0)),
        ("ap_fixed<16,6,AP_RND>", ApType(16, 6, True, "RND", "WRAP", 0)),
        ("ap_ufixed<4,0,AP_RND_CONV,AP_SAT>", ApType(4, 0, False, "RND_CONV", "SAT", 0)),
        ("ap_fixed<8,3,AP_TRN_ZERO,AP_WRAP,2>", ApType(8, 3, True, "TRN_ZERO", "WRAP", 2)),
        ("ap_fixed<8,-3,AP_RND_MIN_INF,AP_SAT_ZERO>", ApType(8, -3, True, "RND_MIN_INF", "SAT_ZERO", 0)),
        ("ap_ufixed<3,9,AP_RND_INF,AP_SAT_SYM>", ApType(3, 9, False, "RND_INF", "SAT_SYM", 0)),
        ("ap_fixed<6,2,AP_RND_ZERO,AP_SAT>", ApType(6, 2, True, "RND_ZERO", "SAT", 0)),
        ("ap_int<8>", ApType(8, 8, True, "TRN_ZERO", int_kind=True)),
        ("ap_uint<1>", ApType(1, 1, False, "TRN_ZERO", int_kind=True)),
        ("fixed<16,6,RND_CONV,SAT>", ApType(16, 6, True, "RND_CONV", "SAT", 0)),
        ("ufixed<8,0,RND,SAT_SYM,0>", ApType(8, 0, False, "RND", "SAT_SYM", 0)),
        ("int<12>", ApType(12, 12, True, "TRN_ZERO", int_kind=True)),
        ("uint<64>", ApType(64, 64, False, "TRN_ZERO", int_kind=True)),
        ("  ap_fixed < 18 , 8 , AP_RND , AP_SAT >  ", ApType(18, 8, True, "RND", "SAT", 0)),
        ("ap_fixed<10,+2,rnd_conv,ap_sat>", ApType(10, 2, True, "RND_CONV", "SAT", 0)),
    ],
)
def test_every_spelling_parses(text, expected):
    parsed = parse_type(text)
    assert parsed == expected
    assert parse_type(str(parsed)) == parsed


def test_canonical_string():
    assert str(parse_type("fixed<16,6>")) == "ap_fixed<16,6,AP_TRN,AP_WRAP,0>"
    assert str(parse_type("ap_uint<3>")) == "ap_uint<3>"
    assert str(parse_type("ap_ufixed<4,0,AP_RND_CONV,AP_SAT>")) == "ap_ufixed<4,0,AP_RND_CONV,AP_SAT,0>"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("ap_fixed<4>", "takes 2 to 5 arguments"),
        ("ap_fixed<4,2,AP_FOO>", "unsupported rounding mode 'AP_FOO'; supported: AP_TRN, AP_TRN_ZERO"),
        ("ap_fixed<4,2,AP_RND,AP_CLAMP>", "unsupported overflow mode 'AP_CLAMP'; supported: AP_WRAP, AP_SAT"),
        ("ap_fixed<4,2,AP_RND,AP_WRAP_SM>", "unsupported overflow mode 'AP_WRAP_SM'"),
        ("fixed<0,1>", "width must be 1..64, got 0"),
        ("ap_fixed<65,1>", "width must be 1..64, got 65"),
        ("ap_int<8,2>", "takes exactly one argument"),
        ("ap_fixed<a,2>", "the width W must be an integer, got 'a'"),
        ("ap_fixed<8,2.5>", "the integer bits I must be an integer"),
        ("ap_fixed<8,2,AP_RND,AP_WRAP,9>", "saturation bits N must be 0..W (8), got 9"),
        ("ap_fixed<8,2,AP_RND,AP_WRAP,2,1>", "takes 2 to 5 arguments"),
        ("ap_fixed<8,2", "is not an ap type"),
        ("float", "is not an ap type"),
        ("exponent<4,2>", "is not an ap type"),
        ("", "is not an ap type"),
    ],
)
def test_malformed_types_are_refused_quoting_the_text(text, complaint):
    with pytest.raises(SpecError) as info:
        parse_type(text)
    message = str(info.value)
    assert repr(text) in message
    assert complaint in message


def test_non_string_is_refused():
    with pytest.raises(SpecError, match="expected a string"):
        parse_type(16)


def test_constructor_checks_like_the_parser():
    with pytest.raises(SpecError, match="unsupported rounding mode 'ROUND'"):
        ApType(8, 4, True, "ROUND")
    with pytest.raises(SpecError, match=f"width must be 1..{MAX_WIDTH}"):
        ApType(0, 0)


@pytest.mark.parametrize(
    ("text", "frac", "low", "high", "lsb"),
    [
        ("ap_fixed<8,3>", 5, -128, 127, 2.0**-5),
        ("ap_ufixed<4,0>", 4, 0, 15, 1 / 16),
        ("ap_fixed<3,5>", -2, -4, 3, 4.0),
        ("ap_ufixed<6,-2>", 8, 0, 63, 2.0**-8),
        ("ap_int<1>", 0, -1, 0, 1.0),
        ("ap_fixed<64,10>", 54, -(2**63), 2**63 - 1, 2.0**-54),
    ],
)
def test_range_and_lsb(text, frac, low, high, lsb):
    t = parse_type(text)
    assert (t.frac, t.min_mantissa, t.max_mantissa, t.lsb) == (frac, low, high, lsb)


def test_to_float():
    t = parse_type("ap_fixed<8,3>")
    values = t.to_float(np.array([[-128, 1], [127, 0]], dtype=np.int64))
    assert values.dtype == np.float64
    assert values.tolist() == [[-4.0, 1 / 32], [127 / 32, 0.0]]
    assert parse_type("ap_fixed<3,5>").to_float([3, -4]).tolist() == [12.0, -16.0]


def test_codes_order_matches_cast_mantissa_arguments():
    assert parse_type("ap_ufixed<6,2,AP_RND_CONV,AP_SAT_SYM,1>").codes() == (6, 4, False, 6, 3, 1)
    assert parse_type("ap_fixed<16,6>").codes() == (16, 10, True, 0, 0, 0)
