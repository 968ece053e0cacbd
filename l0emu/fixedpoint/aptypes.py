"""Fixed-point precision types, as Xilinx ``ap_fixed`` and hls4ml's ``FixedPrecisionType`` hold them.

An :class:`ApType` is a value of ``width`` bits of which ``integer`` sit left of the binary
point (sign included when ``signed``); ``frac = width - integer`` may be negative or exceed
``width``. A number of the type is an integer *mantissa* ``m`` with value ``m * 2**-frac``.
``rounding`` (quantization) and ``saturation`` (overflow) name the modes of the
``ap_fixed_base.h`` header that hls4ml ships; ``sat_bits`` is its ``N`` template argument,
used by ``AP_WRAP`` only (wrap-with-saturation-bits). ``int_kind`` marks an ``ap_int<W>`` /
``ap_uint<W>``: its value grid is that of ``ap_fixed<W,W>``, but a value converts into it as
``ap_fixed_base::to_ap_int_base`` does, which depends on the source (:func:`cast_target`).

This module holds the facts about the types; :mod:`l0emu.fixedpoint.casts` holds the arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from l0emu.errors import SpecError

__all__ = [
    "ApType",
    "Expr",
    "cast_target",
    "element_types",
    "xnor_cast_type",
    "KERNEL_MAX_WIDTH",
    "MAX_WIDTH",
    "OVERFLOW_CODES",
    "ROUNDING_CODES",
    "parse_type",
]

# Integer codes the numba kernels of l0emu.fixedpoint.casts take; names as in ap_fixed without "AP_".
ROUNDING_CODES = {
    "TRN": 0,
    "TRN_ZERO": 1,
    "RND": 2,
    "RND_ZERO": 3,
    "RND_MIN_INF": 4,
    "RND_INF": 5,
    "RND_CONV": 6,
}
OVERFLOW_CODES = {"WRAP": 0, "SAT": 1, "SAT_ZERO": 2, "SAT_SYM": 3}

# Widths a type string may have; hls4ml's accumulators of the networks we emulate stay far below.
MAX_WIDTH = 64
# Widths the int64 kernels compute exactly: every mantissa and its 2**width range fit in int64.
KERNEL_MAX_WIDTH = 63


@dataclass(frozen=True)
class ApType:
    """``ap_fixed<width, integer, AP_<rounding>, AP_<saturation>, sat_bits>`` (``ap_ufixed`` if unsigned)."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    saturation: str = "WRAP"
    sat_bits: int = 0
    int_kind: bool = False

    def __post_init__(self):
        if not 1 <= self.width <= MAX_WIDTH:
            msg = f"type {self}: width must be 1..{MAX_WIDTH}, got {self.width}"
            raise SpecError(msg)
        if self.rounding not in ROUNDING_CODES:
            msg = f"type {self}: unsupported rounding mode {self.rounding!r}; supported: {_mode_list(ROUNDING_CODES)}"
            raise SpecError(msg)
        if self.saturation not in OVERFLOW_CODES:
            msg = f"type {self}: unsupported overflow mode {self.saturation!r}; supported: {_mode_list(OVERFLOW_CODES)}"
            raise SpecError(msg)
        if not 0 <= self.sat_bits <= self.width:
            msg = f"type {self}: saturation bits N must be 0..width ({self.width}), got {self.sat_bits}"
            raise SpecError(msg)
        if self.int_kind and (self.integer, self.rounding, self.saturation, self.sat_bits) != (self.width, "TRN_ZERO", "WRAP", 0):
            msg = f"type {self}: an ap_int/ap_uint has integer = width, AP_TRN_ZERO (a double converts toward zero) and AP_WRAP"
            raise SpecError(msg)

    def __str__(self):
        if self.int_kind:
            return f"{'ap_int' if self.signed else 'ap_uint'}<{self.width}>"
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width},{self.integer},AP_{self.rounding},AP_{self.saturation},{self.sat_bits}>"

    @property
    def frac(self) -> int:
        """Fractional bits: the value of mantissa ``m`` is ``m * 2**-frac``."""
        return self.width - self.integer

    @property
    def min_mantissa(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_mantissa(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        """The value of one mantissa step, ``2**-frac``."""
        return float(np.ldexp(1.0, -self.frac))

    def to_float(self, mantissas):
        """Values of ``mantissas`` as float64 (exact while mantissas stay within 53 bits)."""
        return np.ldexp(np.asarray(mantissas, dtype=np.float64), -self.frac)

    def codes(self) -> tuple:
        """``(width, frac, signed, rounding_code, overflow_code, sat_bits)``: the trailing
        arguments of :func:`l0emu.fixedpoint.casts.cast_mantissa` that describe this type as its target."""
        if self.width > KERNEL_MAX_WIDTH:
            msg = f"type {self}: the fixed-point kernels compute widths up to {KERNEL_MAX_WIDTH} bits"
            raise SpecError(msg)
        return (
            self.width,
            self.frac,
            bool(self.signed),
            ROUNDING_CODES[self.rounding],
            OVERFLOW_CODES[self.saturation],
            self.sat_bits,
        )


def _mode_list(codes):
    return ", ".join(f"AP_{name}" for name in codes)


_TYPE_RE = re.compile(r"^\s*(ap_fixed|ap_ufixed|fixed|ufixed|ap_int|ap_uint|int|uint)\s*<(.*)>\s*$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_SIGNED_KINDS = {"ap_fixed", "fixed", "ap_int", "int"}
_INTEGER_KINDS = {"ap_int", "ap_uint", "int", "uint"}


def _parse_int(arg, what, text):
    if not _INT_RE.match(arg):
        msg = f"type {text!r}: {what} must be an integer, got {arg!r}"
        raise SpecError(msg)
    return int(arg)


def _parse_mode(arg, codes, what, text):
    name = arg.upper().removeprefix("AP_")
    if name not in codes:
        msg = f"type {text!r}: unsupported {what} mode {arg!r}; supported: {_mode_list(codes)}"
        raise SpecError(msg)
    return name


def parse_type(text: str) -> ApType:
    """Parse ``ap_fixed<W,I[,Q[,O[,N]]]>``, ``ap_ufixed<...>``, ``ap_int<W>``, ``ap_uint<W>`` or
    hls4ml's ``fixed<...>``/``ufixed<...>``/``int<W>``/``uint<W>``; modes with or without ``AP_``."""
    if not isinstance(text, str):
        msg = f"type {text!r}: expected a string such as 'ap_fixed<16,6,AP_RND,AP_SAT>'"
        raise SpecError(msg)
    match = _TYPE_RE.match(text)
    if not match:
        msg = (
            f"type {text!r} is not an ap type; expected ap_fixed<W,I[,Q[,O[,N]]]>, "
            "ap_ufixed<...>, ap_int<W>, ap_uint<W> (or hls4ml's fixed/ufixed/int/uint)"
        )
        raise SpecError(msg)
    kind, body = match.groups()
    args = [arg.strip() for arg in body.split(",")]
    signed = kind in _SIGNED_KINDS
    if kind in _INTEGER_KINDS:
        if len(args) != 1:
            msg = f"type {text!r}: {kind} takes exactly one argument (the width), got {len(args)}"
            raise SpecError(msg)
        width = _parse_int(args[0], "the width", text)
        _check_width(width, text)
        # a double converts into ap_int/ap_uint truncated toward zero (ap_int_base(double));
        # a fixed-point value as cast_target says
        return ApType(width, width, signed, "TRN_ZERO", int_kind=True)
    if not 2 <= len(args) <= 5:
        msg = f"type {text!r}: {kind} takes 2 to 5 arguments <W,I[,Q[,O[,N]]]>, got {len(args)}"
        raise SpecError(msg)
    width = _parse_int(args[0], "the width W", text)
    _check_width(width, text)
    integer = _parse_int(args[1], "the integer bits I", text)
    rounding = _parse_mode(args[2], ROUNDING_CODES, "rounding", text) if len(args) > 2 else "TRN"
    saturation = _parse_mode(args[3], OVERFLOW_CODES, "overflow", text) if len(args) > 3 else "WRAP"
    sat_bits = _parse_int(args[4], "the saturation bits N", text) if len(args) > 4 else 0
    if not 0 <= sat_bits <= width:
        msg = f"type {text!r}: saturation bits N must be 0..W ({width}), got {sat_bits}"
        raise SpecError(msg)
    return ApType(width, integer, signed, rounding, saturation, sat_bits)


def _check_width(width, text):
    if not 1 <= width <= MAX_WIDTH:
        msg = f"type {text!r}: width must be 1..{MAX_WIDTH}, got {width}"
        raise SpecError(msg)


def xnor_cast_type(n_in: int) -> ApType:
    """nnet_mult.h's cast of an XNOR sum over ``n_in`` products, ``ap_int<ceillog2(n_in) + 2>``
    (nnet::ceillog2: 1 for n <= 2, else 1 + ceillog2((n + 1) / 2))."""
    bits, n = 1, n_in
    while n > 2:
        bits, n = bits + 1, (n + 1) // 2
    return parse_type(f"ap_int<{bits + 2}>")



def cast_target(dst: ApType, src: ApType) -> ApType:
    """The ap_fixed type whose cast (:func:`l0emu.fixedpoint.casts.cast_mantissa`) is the
    conversion of a ``src`` value into ``dst``: ``dst`` itself unless it is an ap_int/ap_uint.

    Into an ap_int, ``ap_fixed_base::to_ap_int_base`` keeps the source's integer bits (at least
    one) and adds 1 to a negative value with fraction bits, then the integer wraps into ``dst``:
    with an integer bit (I >= 1) that is truncation toward zero; with none (I = 0) the start is 0
    and the 1-bit sum wraps to -1, the floor. With I < 0 the header reads an uninitialised
    integer, so such a conversion is refused.
    """
    if not dst.int_kind:
        return dst
    if src.integer < 0:
        msg = (f"a cast of {src} into {dst}: with integer bits I < 0, hls4ml's ap_types header "
               "(ap_fixed_base::to_ap_int_base) reads an uninitialised value, so the result is undefined")
        raise SpecError(msg)
    toward_zero = src.integer >= 1 or not src.signed or src.frac <= 0
    return ApType(dst.width, dst.width, dst.signed, "TRN_ZERO" if toward_zero else "TRN")


@dataclass(frozen=True)
class Expr:
    """The C++ type of an ap_fixed expression a cast reads (a product, a sum), as far as
    :func:`cast_target` needs it; unlike an ApType it may be wider than 64 bits."""

    integer: int
    signed: bool
    frac: int

    def __str__(self):
        return f"ap_{'' if self.signed else 'u'}fixed<{self.integer + self.frac},{self.integer}> (an expression)"

    @staticmethod
    def product(a, b) -> Expr:
        """``a * b``: integer bits and fraction bits add up."""
        return Expr(a.integer + b.integer, a.signed or b.signed, a.frac + b.frac)

    @staticmethod
    def sum(a, b) -> Expr:
        """``a + b``: one integer bit more than the wider operand (one more again for a signed/unsigned mix)."""
        integer = max(a.integer + (b.signed and not a.signed), b.integer + (a.signed and not b.signed)) + 1
        return Expr(integer, a.signed or b.signed, max(a.frac, b.frac))


def element_types(k, i, f, rounding: str, overflow: str) -> list:
    """The types of a per-element quantizer (hls4ml's FixedPointQuantizer, HGQ2's k, i, f bits):
    element ``j`` is ``ap_fixed<k+i+f, k+i, AP_<rounding>, AP_<overflow>>`` (``ap_ufixed`` where
    ``k`` is 0), or None where it has no bits, which hls4ml's generated code writes as 0."""
    return [
        ApType(kj + ij + fj, kj + ij, bool(kj), rounding, overflow) if kj + ij + fj > 0 else None
        for kj, ij, fj in zip(k, i, f)
    ]
