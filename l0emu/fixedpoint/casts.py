"""Bit-exact ap_fixed casts on integer mantissas (numba).

A fixed-point number is an int64 mantissa ``m`` and a number of fractional bits ``frac``:
its value is ``m * 2**-frac``. :func:`cast_mantissa` converts such a number into a target
type exactly as ``ap_fixed_base::operator=`` of the ``ap_fixed_base.h`` header that hls4ml
ships does: first the dropped low bits are quantized with the target's rounding mode, then
the quantized integer is fitted into the target's width with its overflow mode. The
emulator's generated per-network code calls it with the target's constants, the six values
of ``ApType.codes()`` written out as separate arguments (numba cannot inline a ``*args`` call)::

    cast_mantissa(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits)

:func:`float_to_mantissa` is the ``ap_fixed(double)`` constructor: the double is split into
its exact integer significand and exponent (from the raw IEEE bits, as the header does) and
cast like any other fixed-point number.

Every shift amount is clamped below 64 before it reaches the hardware, so source and target
``frac`` may differ by any amount and widths up to :data:`KERNEL_MAX_WIDTH` stay exact.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.fixedpoint.aptypes import KERNEL_MAX_WIDTH, OVERFLOW_CODES, ROUNDING_CODES, ApType

__all__ = [
    "KERNEL_MAX_WIDTH",
    "OVERFLOW_CODES",
    "ROUNDING_CODES",
    "cast_mantissa",
    "double_to_mantissa",
    "float_to_mantissa",
    "quantize_cast",
]

# numba freezes module globals into compiled code as constants.
_TRN = ROUNDING_CODES["TRN"]
_TRN_ZERO = ROUNDING_CODES["TRN_ZERO"]
_RND = ROUNDING_CODES["RND"]
_RND_ZERO = ROUNDING_CODES["RND_ZERO"]
_RND_MIN_INF = ROUNDING_CODES["RND_MIN_INF"]
_RND_INF = ROUNDING_CODES["RND_INF"]
_RND_CONV = ROUNDING_CODES["RND_CONV"]
_WRAP = OVERFLOW_CODES["WRAP"]
_SAT = OVERFLOW_CODES["SAT"]
_SAT_ZERO = OVERFLOW_CODES["SAT_ZERO"]
_SAT_SYM = OVERFLOW_CODES["SAT_SYM"]

_DOUBLE_MANTISSA_BITS = 52
_DOUBLE_EXPONENT_BIAS = 1023


@numba.njit(inline="always", cache=True)
def _round_right_shift(m, shift, rounding_code):
    """``m * 2**-shift`` (shift >= 1) as an integer, rounded with ``rounding_code``."""
    floor = m >> min(shift, 63)
    # qb: the first dropped bit (the half); rest: whether any bit below it is set.
    half = (m >> min(shift - 1, 63)) & 1
    if shift - 1 > 63:
        rest = m != 0
    else:
        rest = (m & ((np.int64(1) << (shift - 1)) - 1)) != 0
    negative = m < 0
    if rounding_code == _TRN:
        increment = False
    elif rounding_code == _TRN_ZERO:
        increment = negative and (half == 1 or rest)
    elif rounding_code == _RND:
        increment = half == 1
    elif rounding_code == _RND_ZERO:
        increment = half == 1 and (negative or rest)
    elif rounding_code == _RND_MIN_INF:
        increment = half == 1 and rest
    elif rounding_code == _RND_INF:
        increment = half == 1 and (not negative or rest)
    else:  # RND_CONV: ties to the even neighbour
        increment = half == 1 and ((floor & 1) == 1 or rest)
    return floor + np.int64(increment)


@numba.njit(inline="always", cache=True)
def _wrap_with_saturation_bits(low_bits, width, signed, sat_bits, negative):
    """AP_WRAP with N > 0 on overflow: force the top N bits as ``overflow_adjust`` does."""
    if signed:
        top = np.int64(1) << (width - 1)
        low_bits = (low_bits | top) if negative else (low_bits & ~top)
        if sat_bits > 1:
            middle = ((np.int64(1) << (sat_bits - 1)) - 1) << (width - sat_bits)
            low_bits = (low_bits & ~middle) if negative else (low_bits | middle)
        return low_bits
    return low_bits | (((np.int64(1) << sat_bits) - 1) << (width - sat_bits))


@numba.njit(inline="always", cache=True)
def cast_mantissa(m, src_frac, dst_width, dst_frac, dst_signed, rounding_code, overflow_code, sat_bits):
    """Cast mantissa ``m`` (value ``m * 2**-src_frac``) into the target type; return its mantissa.

    The target is ``dst_width`` bits (1..KERNEL_MAX_WIDTH) with ``dst_frac`` fractional bits,
    signed or not, with integer mode codes from ``ROUNDING_CODES``/``OVERFLOW_CODES`` and
    ``sat_bits`` (ap_fixed's N); ``ApType.codes()`` gives these six in order.
    """
    m = np.int64(m)
    if dst_signed:
        high = (np.int64(1) << (dst_width - 1)) - 1
        low = -high - 1
    else:
        high = (np.int64(1) << dst_width) - 1
        low = np.int64(0)
    # SAT_SYM gives up the most negative value; a 1-bit signed type (max 0) keeps -1 as the header does.
    if overflow_code == _SAT_SYM and dst_signed and dst_width > 1:
        low = -high
    shift = src_frac - dst_frac
    if shift > 0:
        quantized = _round_right_shift(m, shift, rounding_code)
        too_high = quantized > high
        too_low = quantized < low
        negative = quantized < 0
    else:
        # Exact left shift: compare before shifting so that nothing overflows int64.
        up = min(-shift, 63)
        too_high = m > (high >> up)
        too_low = m < -((-low) >> up)
        quantized = (m << up) if -shift < 64 else np.int64(0)
        negative = m < 0
    if not (too_high or too_low):
        return quantized
    if overflow_code == _SAT or overflow_code == _SAT_SYM:
        return high if too_high else low
    if overflow_code == _SAT_ZERO:
        return np.int64(0)
    # AP_WRAP: keep the low dst_width bits (two's complement wraps them for free).
    low_bits = quantized & ((np.int64(1) << dst_width) - 1)
    if sat_bits > 0:
        low_bits = _wrap_with_saturation_bits(low_bits, dst_width, dst_signed, sat_bits, negative)
    if dst_signed:
        unused = 64 - dst_width
        return (low_bits << unused) >> unused
    return low_bits


@numba.njit(cache=True)
def _cast_array(mantissas, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits):
    out = np.empty_like(mantissas)
    for i in range(mantissas.size):
        out[i] = cast_mantissa(mantissas[i], src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits)
    return out


@numba.njit(inline="always", cache=True)
def double_to_mantissa(bits, width, frac, signed, rounding_code, overflow_code, sat_bits):
    """``ap_fixed(double)`` on the raw IEEE-754 bits (int64) of a double; returns the mantissa.

    As the header does, the significand gets its implicit leading one whatever the exponent,
    so subnormals, infinities and NaNs convert as the header converts them.
    """
    if (bits & 0x7FFFFFFFFFFFFFFF) == 0:
        return np.int64(0)
    exponent = ((bits >> _DOUBLE_MANTISSA_BITS) & 0x7FF) - _DOUBLE_EXPONENT_BIAS
    significand = (bits & ((np.int64(1) << _DOUBLE_MANTISSA_BITS) - 1)) | (np.int64(1) << _DOUBLE_MANTISSA_BITS)
    if bits < 0:
        significand = -significand
    return cast_mantissa(
        significand, _DOUBLE_MANTISSA_BITS - exponent, width, frac, signed, rounding_code, overflow_code, sat_bits
    )


@numba.njit(cache=True)
def _doubles_array(bits, width, frac, signed, rounding_code, overflow_code, sat_bits):
    out = np.empty_like(bits)
    for i in range(bits.size):
        out[i] = double_to_mantissa(bits[i], width, frac, signed, rounding_code, overflow_code, sat_bits)
    return out


def quantize_cast(mantissas, src_frac: int, dst: ApType) -> np.ndarray:
    """Cast int64 ``mantissas`` with ``src_frac`` fractional bits into ``dst``; same shape, int64."""
    values = np.asarray(mantissas)
    if values.dtype.kind not in "iub" or (values.dtype.kind == "u" and values.dtype.itemsize == 8):
        msg = f"quantize_cast: mantissas must be integers that fit int64, got dtype {values.dtype}"
        raise TypeError(msg)
    flat = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    return _cast_array(flat, int(src_frac), *dst.codes()).reshape(values.shape)


def float_to_mantissa(values, dst: ApType) -> np.ndarray:
    """Mantissas of ``values`` (float64) converted into ``dst`` as ``ap_fixed(double)`` does."""
    doubles = np.ascontiguousarray(values, dtype=np.float64)
    bits = doubles.reshape(-1).view(np.int64)
    return _doubles_array(bits, *dst.codes()).reshape(doubles.shape)
