"""Every ap_fixed cast expressed through the few operations da4ml 0.6.0 can trace.

da4ml's ``FixedVariable.quantize`` accepts only the quantization modes ``TRN`` and ``RND``
and the overflow modes ``WRAP``, ``SAT`` and ``SAT_SYM`` (see its asserts). hls4ml's
networks also use ``RND_CONV`` (QKeras activations), and a spec may name any mode of
``ap_fixed_base.h``. Each mode is therefore written here as an identity over primitives
that both backends below provide:

- ``floor(x, f)``: truncate to ``f`` fractional bits (TRN, no overflow);
- ``bit(x, f)``: the bit of weight ``2**-f`` as 0/1; ``is_negative(x)``: the sign as 0/1;
- ``greater(x, c)``/``less(x, c)``: 0/1 comparisons with a constant;
- ``either(a, b)``: logical or of 0/1 values;
- ``clip(x, lo, hi)``, ``wrap(x, t)`` (modular into type ``t``), ``zero_if(c, x)``;
- ``+`` and multiplication by constants.

With ``lsb_x`` the step of the source grid, ``lsb`` the target step and ``half = lsb/2``
(``s`` = sign bit, ``p`` = parity bit of ``x`` at weight ``lsb``)::

    TRN          floor(x)
    RND          floor(x + half)                       ties up
    RND_MIN_INF  floor(x + half - lsb_x)               ties down
    RND_ZERO     floor(x + half - lsb_x + s*lsb_x)     ties toward zero
    RND_INF      floor(x + half - s*lsb_x)             ties away from zero
    RND_CONV     floor(x + half - lsb_x + p*lsb_x)     ties to even
    TRN_ZERO     floor(x + s*(lsb - lsb_x))            toward zero (ceil for x < 0)

They hold because x is a multiple of ``lsb_x``: adding ``-lsb_x`` moves a tie just below
the rounding threshold and leaves every other value on its side of it. Overflow acts on
the rounded value: WRAP is modular, SAT clips to [min, max], SAT_SYM to [-max, max]
(signed, wider than 1 bit) and SAT_ZERO gives 0 outside [min, max], as ``overflow_adjust`` does.

:class:`ExactOps` evaluates the identities on exact float64 values (the pure reference,
proven against :func:`l0emu.fixedpoint.casts.quantize_cast` in the tests); :class:`TracedOps` builds
them as da4ml graph nodes, element by element.
"""

from __future__ import annotations

import numpy as np

from l0emu.fixedpoint.aptypes import ApType
from l0emu.errors import SpecError

__all__ = ["ExactOps", "TracedOps", "cast", "type_bounds"]


def type_bounds(t: ApType) -> tuple[float, float]:
    """The smallest and largest value of ``t``."""
    return t.min_mantissa * t.lsb, t.max_mantissa * t.lsb


def _round(x, src_frac: int, t: ApType, ops):
    """Quantize ``x`` (a multiple of ``2**-src_frac``) to ``t.frac`` bits with ``t.rounding``."""
    f = t.frac
    if f >= src_frac:
        return x
    lsb_x, lsb = 2.0**-src_frac, 2.0**-f
    half = lsb / 2
    mode = t.rounding
    if mode == "TRN":
        return ops.floor(x, f)
    if mode == "RND":
        return ops.floor(x + half, f)
    if mode == "RND_MIN_INF":
        return ops.floor(x + (half - lsb_x), f)
    if mode == "RND_ZERO":
        return ops.floor(x + (half - lsb_x) + ops.is_negative(x) * lsb_x, f)
    if mode == "RND_INF":
        return ops.floor(x + half - ops.is_negative(x) * lsb_x, f)
    if mode == "RND_CONV":
        return ops.floor(x + (half - lsb_x) + ops.bit(x, f) * lsb_x, f)
    if mode == "TRN_ZERO":
        return ops.floor(x + ops.is_negative(x) * (lsb - lsb_x), f)
    msg = f"type {t}: rounding mode {mode!r} has no RTL identity"
    raise SpecError(msg)


def _overflow(x, t: ApType, ops):
    """Bring ``x`` (already on the grid of ``t``) into the range of ``t`` with ``t.saturation``."""
    lo, hi = type_bounds(t)
    mode = t.saturation
    if mode == "WRAP":
        if t.sat_bits:
            msg = f"type {t}: AP_WRAP with saturation bits N={t.sat_bits} has no RTL identity (N must be 0)"
            raise SpecError(msg)
        return ops.wrap(x, t)
    if mode == "SAT":
        return ops.wrap(ops.clip(x, lo, hi), t)
    if mode == "SAT_SYM":
        # a 1-bit signed type has max 0: ap_fixed then keeps its min (-lsb), as SAT does
        symmetric = t.signed and t.width > 1
        return ops.wrap(ops.clip(x, -hi if symmetric else lo, hi), t)
    if mode == "SAT_ZERO":
        outside = ops.either(ops.greater(x, hi), ops.less(x, lo))
        return ops.wrap(ops.zero_if(outside, x), t)
    msg = f"type {t}: overflow mode {mode!r} has no RTL identity"
    raise SpecError(msg)


def cast(x, src_frac: int, t: ApType, ops):
    """``t(x)`` as ap_fixed computes it: quantize first, then handle overflow. An ap_int/ap_uint
    target comes resolved against its source (:func:`l0emu.fixedpoint.aptypes.cast_target`)."""
    if t.int_kind:
        msg = f"type {t}: a cast into an ap_int/ap_uint here is not modelled (its conversion depends on the source's type)"
        raise SpecError(msg)
    return _overflow(_round(x, src_frac, t, ops), t, ops)


class ExactOps:
    """The primitives on float64 arrays of exact values (exact while values need < 53 bits)."""

    @staticmethod
    def floor(x, f):
        return np.floor(np.ldexp(x, f)) * 2.0**-f

    @staticmethod
    def bit(x, f):
        return np.mod(np.floor(np.ldexp(x, f)), 2.0)

    @staticmethod
    def is_negative(x):
        return (np.asarray(x) < 0).astype(np.float64)

    @staticmethod
    def greater(x, c):
        return (np.asarray(x) > c).astype(np.float64)

    @staticmethod
    def less(x, c):
        return (np.asarray(x) < c).astype(np.float64)

    @staticmethod
    def either(a, b):
        return np.maximum(a, b)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def zero_if(c, x):
        return np.where(np.asarray(c) != 0, 0.0, x)

    @staticmethod
    def divide_toward_zero(x, f, d):
        """``x / d`` on the grid of ``2**-f``, truncated toward zero (ap_fixed /= unsigned)."""
        m = np.rint(np.ldexp(np.asarray(x, dtype=np.float64), f)).astype(np.int64)
        q = np.sign(m) * (np.abs(m) // np.asarray(d, dtype=np.int64))
        return np.ldexp(q.astype(np.float64), -f)

    @staticmethod
    def wrap(x, t: ApType):
        lo, _ = type_bounds(t)
        period = 2.0**t.integer
        return np.mod(np.asarray(x, dtype=np.float64) - lo, period) + lo


def _is_const(v) -> bool:
    return not hasattr(v, "low") or v.low == v.high


def _value(v) -> float:
    return float(v.low) if hasattr(v, "low") else float(v)


class TracedOps:
    """The primitives as da4ml ``FixedVariable`` nodes (one scalar at a time).

    Constants are folded with :class:`ExactOps`: da4ml's constant folding of an unsigned
    WRAP uses the signed period, and exact folding keeps the graph free of such nodes.
    """

    def __init__(self, hwconf):
        self.hwconf = hwconf

    def _const(self, value: float):
        from da4ml.trace import FixedVariable

        return FixedVariable.from_const(float(value), hwconf=self.hwconf)

    def _fold(self, name, x, *args):
        return self._const(float(getattr(ExactOps, name)(np.float64(_value(x)), *args)))

    def floor(self, x, f):
        if _is_const(x):
            return self._fold("floor", x, f)
        k, i, _ = x.kif
        return x.quantize(k, i + 1, f, "WRAP", "TRN")

    def bit(self, x, f):
        if _is_const(x):
            return self._fold("bit", x, f)
        # a 1-bit unsigned wrap keeps exactly the bit of weight 2**-f; the shift is free
        return x.quantize(0, 1 - f, f, "WRAP", "TRN") * 2.0**f

    def is_negative(self, x):
        if _is_const(x):
            return self._fold("is_negative", x)
        return x.is_negative()

    def greater(self, x, c):
        if _is_const(x):
            return self._fold("greater", x, c)
        return x > c

    def less(self, x, c):
        if _is_const(x):
            return self._fold("less", x, c)
        return x < c

    def either(self, a, b):
        if _is_const(a):
            return b if _value(a) == 0 else self._const(1.0)
        if _is_const(b):
            return a if _value(b) == 0 else self._const(1.0)
        return a | b

    def clip(self, x, lo, hi):
        if _is_const(x):
            return self._fold("clip", x, lo, hi)
        return x.max_of(lo).min_of(hi)

    def zero_if(self, c, x):
        if _is_const(c):
            return self._const(0.0) if _value(c) != 0 else x
        if _is_const(x) and _value(x) == 0:
            return x
        # c is a 0/1 variable: its most significant bit is the condition
        return c.msb_mux(self._const(0.0), x)

    def divide_toward_zero(self, x, f, d: int):
        """``x / d`` truncated toward zero on the grid of ``2**-f``, with ``d`` a positive
        integer: ``floor((M + s*(d-1)) / d)`` for the mantissa M with sign bit s, the floor
        division as a multiplication by ``c = ceil(2**K / d)`` and a shift. With N >= 0 (an
        offset makes it so) and e = c*d - 2**K < d, ``floor(N*c / 2**K) == floor(N / d)``
        whenever N*e < 2**K, which ``2**K > N_max * d`` guarantees."""
        if d == 1:
            return x
        if _is_const(x):
            return self._const(float(ExactOps.divide_toward_zero(np.float64(_value(x)), f, d)))
        lsb = 2.0**-f
        t = x + self.is_negative(x) * ((d - 1) * lsb)
        # base: a multiple of d*lsb at or below every value of t, so that N = (t - base)/lsb >= 0
        base = np.floor(float(t.low) / (d * lsb)) * (d * lsb)
        n_max = round((float(t.high) - base) / lsb)
        k = (n_max * d).bit_length()
        c = -(-(1 << k) // d)
        q = self.floor((t - base) * (c * 2.0**-k), f)
        return q + base / d

    def wrap(self, x, t: ApType):
        if _is_const(x):
            return self._fold("wrap", x, t)
        if t.signed or x.low >= 0:
            return x.quantize(int(t.signed), t.integer - int(t.signed), t.frac, "WRAP", "TRN")
        # da4ml 0.6.0 wraps a signed value into an unsigned type of more bits than the
        # value's own as if the bits above were zero, not sign copies: wrap into the signed
        # type of the same width, then add 2**integer to negative values
        signed = x.quantize(1, t.integer - 1, t.frac, "WRAP", "TRN")
        if signed.low == signed.high:
            return self._fold("wrap", signed, t)
        unsigned = signed + signed.is_negative() * 2.0**t.integer
        return unsigned.quantize(0, t.integer, t.frac, "WRAP", "TRN")
