"""Python source of one network's emulator kernel, generated from its spec.

The kernel works on blocks of ``BLOCK`` events with the event index innermost, so every
statement of the generated code is a loop over events that LLVM vectorizes. Weights of
small layers are literal constants (zeros dropped); layers with more than ``UNROLL_LIMIT``
nonzero weights loop over module-level weight arrays instead, because numba's compile time
grows steeply with the length of an unrolled kernel (minutes for a 10k-weight teacher).
Padding is a zero border of a padded copy.

Two arithmetics, chosen per layer by interval analysis of the mantissas:

- *exact*: when a layer's products fit its accumulator without rounding and no partial sum
  (in any order) can leave the accumulator's range, hls4ml's per-step casts are all the
  identity, so the sum is plain integer arithmetic. Integers below 2**24 (float32) or 2**53
  (float64) are exact in floating point, whose SIMD units this CPU class has (AVX/FMA,
  no AVX2), so tensors are stored as integer-valued floats. Casts into result types are
  emitted from the same rules as :func:`l0emu.fixed.cast_mantissa` (floor, the dropped
  fraction, then the overflow mode) and tested against it exhaustively.
- *stepwise*: otherwise every product, bias and partial sum goes through
  :func:`l0emu.fixed.cast_mantissa` in int64, in hls4ml's order of operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .aptypes import ApType, parse_type
from .errors import SpecError
from .fixed import cast_mantissa

__all__ = ["BLOCK", "UNROLL_LIMIT", "Tensor", "generate"]

BLOCK = 32
UNROLL_LIMIT = 1024
_EXACT_LIMIT = {"f32": 1 << 24, "f64": 1 << 53}
_PRODUCTS = ("mult", "weight_ternary", "weight_binary")


@dataclass
class Tensor:
    """A network tensor: its buffer name, element count, ap type and mantissa interval."""

    name: str
    shape: tuple
    type: ApType
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> str:
        return _dtype_for(self.lo, self.hi, self.name)


def _dtype_for(lo, hi, where):
    bound = max(abs(lo), abs(hi))
    if bound <= _EXACT_LIMIT["f32"]:
        return "f32"
    if bound <= _EXACT_LIMIT["f64"]:
        return "f64"
    msg = f"{where}: mantissas up to {bound} exceed the 53 bits the emulator stores exactly"
    raise SpecError(msg)


def _const(dtype, value) -> str:
    return f"{dtype}({float(value)!r})"


def _cast_const(m, src_frac, dst: ApType) -> int:
    return int(cast_mantissa(int(m), int(src_frac), *dst.codes()))


def _rounded(m, src_frac, dst: ApType) -> int:
    """``m`` quantized into ``dst``'s frac with its rounding mode, before any overflow."""
    wide = ApType(63, 63 - dst.frac, True, dst.rounding, "SAT")
    return _cast_const(m, src_frac, wide)


def _cast_interval(lo, hi, src_frac, dst: ApType):
    """Interval of ``cast(x)`` for x in [lo, hi], and whether overflow is impossible."""
    qlo, qhi = _rounded(lo, src_frac, dst), _rounded(hi, src_frac, dst)
    tlo, thi = _target_range(dst)
    if tlo <= qlo and qhi <= thi:
        return qlo, qhi, True
    if dst.saturation in ("SAT", "SAT_SYM"):
        return max(min(qlo, thi), tlo), min(max(qhi, tlo), thi), False
    return min(tlo, 0), max(thi, 0), False


def _target_range(t: ApType):
    lo, hi = t.min_mantissa, t.max_mantissa
    if t.saturation == "SAT_SYM" and t.signed and t.width > 1:
        lo = -hi
    return lo, hi


class _Names:
    def __init__(self):
        self.count = 0

    def __call__(self, stem="v"):
        self.count += 1
        return f"{stem}{self.count}"


def _emit_float_cast(out, names, v, src_frac, lo, hi, dst: ApType, dt):
    """Emit float-domain ``cast(v)`` lines into ``out``; return (variable, lo, hi), or None
    where floats of ``dt`` cannot hold every intermediate integer exactly."""
    shift = src_frac - dst.frac
    limit = _EXACT_LIMIT[dt]
    scaled = max(abs(lo), abs(hi)) << max(-shift, 0)
    if scaled > limit:
        return None
    if shift <= 0:
        q = v if shift == 0 else f"({v} * {_const(dt, 2.0 ** -shift)})"
    else:
        t, q = names("t"), names("q")
        out.append(f"{t} = {v} * {_const(dt, 2.0 ** -shift)}")
        out.append(f"{q} = np.floor({t})")
        increment = _round_increment(dst.rounding, t, q, v, dt, lo)
        if increment:
            out.append(f"{q} = {q} + {dt}({increment})")
    qlo, qhi, exact = _cast_interval(lo, hi, src_frac, dst)
    if exact:
        return q, qlo, qhi
    if (1 << dst.width) > limit or (dst.saturation == "WRAP" and dst.sat_bits):
        return None
    tlo, thi = _target_range(dst)
    r = names("r")
    if dst.saturation in ("SAT", "SAT_SYM"):
        out.append(f"{r} = min(max({q}, {_const(dt, tlo)}), {_const(dt, thi)})")
    elif dst.saturation == "SAT_ZERO":
        out.append(f"{r} = {q} if ({q} >= {_const(dt, tlo)}) & ({q} <= {_const(dt, thi)}) else {dt}(0.0)")
    else:
        period = 1 << dst.width
        out.append(
            f"{r} = {q} - {_const(dt, period)} * np.floor(({q} - {_const(dt, tlo)}) * {_const(dt, 1.0 / period)})"
        )
    return r, qlo, qhi


def _round_increment(rounding, t, q, v, dt, lo):
    d = f"({t} - {q})"
    half = _const(dt, 0.5)
    negative_possible = lo < 0
    if rounding == "TRN":
        return ""
    if rounding == "TRN_ZERO":
        return f"({d} > {dt}(0.0)) & ({v} < {dt}(0.0))" if negative_possible else ""
    if rounding == "RND":
        return f"{d} >= {half}"
    if rounding == "RND_ZERO":
        return f"({d} > {half}) | (({d} == {half}) & ({v} < {dt}(0.0)))"
    if rounding == "RND_MIN_INF":
        return f"{d} > {half}"
    if rounding == "RND_INF":
        return f"({d} > {half}) | (({d} == {half}) & ({v} >= {dt}(0.0)))"
    odd = f"({q} - {_const(dt, 2.0)} * np.floor({q} * {half}) != {dt}(0.0))"
    return f"({d} > {half}) | (({d} == {half}) & {odd})"


def _emit_int_cast(out, names, v, src_frac, dst: ApType):
    r = names("r")
    out.append(f"{r} = cast({v}, {src_frac}, {_codes(dst)})")
    return r


def _type(layer, field):
    return parse_type(layer[field])


class _Generator:
    def __init__(self, spec, fuse: bool):
        self.spec = spec
        self.fuse = fuse
        self.names = _Names()
        self.buffers = []  # (name, size, numpy dtype): allocated once, reused by every block
        self.functions = []  # source lines of the per-layer kernels
        self.calls = []  # the per-block calls of the driver
        self.tensors = []
        self.traced = []  # (layer name, tensor) in trace order
        self.arrays = []  # (name, values, numpy dtype): module-level constants of looped layers

    # -- buffers and kernels ----------------------------------------------------------
    def _buffer(self, size, dt):
        name = f"b{len(self.buffers)}"
        self.buffers.append((name, int(size), _NP[dt]))
        return name

    def _array(self, values, dt):
        name = f"W{len(self.arrays)}"
        self.arrays.append((name, [int(v) for v in values], _NP[dt]))
        return name

    def _tensor(self, shape, t: ApType, lo, hi, where):
        _dtype_for(lo, hi, where)
        tensor = Tensor("", tuple(int(s) for s in shape), t, int(lo), int(hi))
        tensor.name = self._buffer(tensor.size, tensor.dtype)
        self.tensors.append(tensor)
        return tensor

    def _kernel(self, comment, args, loops, lines):
        """A small njit kernel ``loops`` deep around ``lines``, and its call in the driver."""
        name = f"k{len(self.functions)}_{_identifier(comment)}"
        src = ["", "", "@njit(cache=True, nogil=True, error_model='numpy')", f"def {name}({', '.join(args)}):"]
        src.append(f'    """{comment}"""')
        depth = 1
        for loop in loops:
            src.append("    " * depth + loop)
            depth += 1
        src += ["    " * depth + line for line in lines]
        self.functions.append(src)
        self.calls.append(f"{name}({', '.join(args)})")

    # -- epilogue ---------------------------------------------------------------------
    def _apply_steps(self, out, v, frac, lo, hi, steps, dt, exact):
        """Emit the casts of ``steps`` on ``v``; return the final (variable, lo, hi) or None."""
        for kind, t in steps:
            if kind == "relu":
                z = self.names("z")
                zero = f"{dt}(0.0)" if exact else "np.int64(0)"
                out.append(f"{z} = {v} if {v} > {zero} else {zero}")
                v, lo, hi = z, max(lo, 0), max(hi, 0)
            if exact:
                res = _emit_float_cast(out, self.names, v, frac, lo, hi, t, dt)
                if res is None:
                    return None
                v, lo, hi = res
            else:
                lo, hi, _ = _cast_interval(lo, hi, frac, t)
                v = _emit_int_cast(out, self.names, v, frac, t)
            frac = t.frac
        return v, lo, hi

    def _cast_kernel(self, comment, x, frac, lo, hi, steps, shape, where, dt):
        """Elementwise kernel: ``steps`` applied to buffer ``x`` (mantissas at ``frac``)."""
        lines = []
        res = None
        if dt != "i64":
            res = self._apply_steps(lines, "v", frac, lo, hi, steps, dt, True)
        if res is None:
            lines = []
            res = self._apply_steps(lines, "v", frac, lo, hi, steps, "i64", False)
            lines.insert(0, f"v = np.int64({x}[j])")
        else:
            lines.insert(0, f"v = {x}[j]")
        v, ylo, yhi = res
        y = self._tensor(shape, steps[-1][1], ylo, yhi, where)
        lines.append(f"{y.name}[j] = {v}")
        self._kernel(comment, [x, y.name], [f"for j in range({y.size} * BLOCK):"], lines)
        return y

    def _fused_steps(self, layers, k):
        """Elementwise layers after ``layers[k]`` that fold into its epilogue."""
        steps = []
        j = k + 1
        while self.fuse and j < len(layers) and layers[j]["op"] in ("relu", "linear"):
            steps.append(("relu" if layers[j]["op"] == "relu" else "cast", _type(layers[j], "result_type")))
            j += 1
        return steps, j

    # -- layers -----------------------------------------------------------------------
    def build(self):
        inp = self.spec["input"]
        t_in = parse_type(inp["type"])
        x = self._tensor(inp["shape"], t_in, t_in.min_mantissa, t_in.max_mantissa, "input")
        layers = self.spec["layers"]
        k = 0
        while k < len(layers):
            layer = layers[k]
            where = f"layer {layer['name']!r}"
            op = layer["op"]
            steps, nxt = ([], k + 1)
            if op in ("conv2d", "dense", "scale"):
                steps, nxt = self._fused_steps(layers, k)
            own = [("cast", _type(layer, "result_type"))]
            names = " + ".join(layers[j]["name"] for j in range(k, nxt))
            if op == "flatten":
                y = Tensor(x.name, tuple(layer["output_shape"]), x.type, x.lo, x.hi)
            elif op in ("conv2d", "dense"):
                y = self._accumulate(layer, x, own + steps, where, names)
            elif op in ("relu", "linear"):
                step = ("relu" if op == "relu" else "cast", own[0][1])
                y = self._cast_kernel(names, x.name, x.type.frac, x.lo, x.hi, [step], layer["output_shape"], where, x.dtype)
            elif op in ("max_pool2d", "avg_pool2d"):
                y = self._pool(layer, x, where)
            elif op == "scale":
                y = self._scale(layer, x, own + steps, where, names)
            elif op == "zero_pad2d":
                y = self._zero_pad(layer, x, where)
            else:
                msg = f"{where}: op {op!r} has no emulator implementation"
                raise SpecError(msg)
            for j in range(k, nxt):
                self.traced.append((layers[j]["name"], y))
            x = y
            k = nxt
        return x

    def _padded(self, x, pad, where):
        top, bottom, left, right = (int(p) for p in pad)
        if not (top or bottom or left or right):
            return x, x.shape
        h, w, c = x.shape
        shape = (h + top + bottom, w + left + right, c)
        # the border stays zero: it is allocated zeroed and only the interior is written
        p = self._tensor(shape, x.type, min(x.lo, 0), max(x.hi, 0), where)
        line = f"{p.name}[(({top} + i) * {shape[1] * c} + {left * c}) * BLOCK + j] = {x.name}[i * {w * c} * BLOCK + j]"
        self._kernel(f"zero border of {where}", [x.name, p.name], [f"for i in range({h}):", f"for j in range({w * c} * BLOCK):"], [line])
        return p, shape

    def _weights(self, layer, where):
        product = layer["product"]
        if product not in _PRODUCTS:
            msg = f"{where}: product {product!r} is not supported; supported: {', '.join(_PRODUCTS)}"
            raise SpecError(msg)
        w = [int(v) for v in layer["weights"]]
        wt = _type(layer, "weight_type")
        if product == "mult":
            return w, wt.frac
        # weight_ternary / weight_binary return -a, 0 or a in a's own type (nnet_mult.h):
        # ternary: w == 0 -> 0, w == -1 -> -a, anything else (1, and -2 of ap_int<2>) -> a
        if product == "weight_ternary":
            return [0 if v == 0 else (-1 if v == -1 else 1) for v in w], 0
        return [-1 if v == 0 else 1 for v in w], 0  # weight_binary: 0 -> -a, else a

    def _accumulate(self, layer, x, steps, where, names):
        """conv2d/dense: hls4ml's product, bias-initialised accumulation, then the casts."""
        if layer["op"] == "conv2d":
            x, (hp, wp, c) = self._padded(x, layer["pad"], where)
            kh, kw = (int(v) for v in layer["kernel"])
            sh, sw = (int(v) for v in layer["strides"])
            oh_n, ow_n, n_out = (int(v) for v in layer["output_shape"])
            offsets = [(a * wp + b) * c + ch for a in range(kh) for b in range(kw) for ch in range(c)]
            # r: the window's first input row, q: the output pixel's first row (rows of BLOCK events)
            taps = [f"r + {off} * BLOCK" for off in offsets]
            loops = [
                f"for oh in range({oh_n}):",
                f"for ow in range({ow_n}):",
                f"r = (oh * {sh * wp} + ow * {sw}) * {c} * BLOCK",
                f"q = (oh * {ow_n} + ow) * {n_out} * BLOCK",
            ]
            out_index = "q + {o} * BLOCK"
            shape = (oh_n, ow_n, n_out)
        else:
            n_in, n_out = int(layer["n_in"]), int(layer["n_out"])
            offsets = list(range(n_in))
            taps = [f"{i} * BLOCK" for i in range(n_in)]
            loops = []
            out_index = "{o} * BLOCK"
            shape = (n_out,)
        w, w_frac = self._weights(layer, where)
        acc_t = _type(layer, "accum_type")
        bias_t = _type(layer, "bias_type")
        bias = [_cast_const(b, bias_t.frac, acc_t) for b in layer["biases"]]
        up = acc_t.frac - (x.type.frac + w_frac)
        n_terms = len(taps)
        acc_lo = acc_hi = span = 0
        exact = up >= 0
        if exact:
            # Sums run bias first, so every partial sum lies in [bias + negative terms,
            # bias + positive terms]; a single product is at most the larger of the two.
            for o in range(n_out):
                lo = hi = bias[o]
                for i in range(n_terms):
                    c_ = w[i * n_out + o] << up
                    lo += min(c_ * x.lo, c_ * x.hi, 0)
                    hi += max(c_ * x.lo, c_ * x.hi, 0)
                acc_lo, acc_hi = min(acc_lo, lo), max(acc_hi, hi)
                span = max(span, hi - bias[o], bias[o] - lo)
            exact = acc_t.min_mantissa <= acc_lo and acc_hi <= acc_t.max_mantissa
        if exact:
            # Every per-step cast is the identity here, so the sum is exact integer arithmetic.
            dt = _dtype_for(min(acc_lo, -span), max(acc_hi, span), where)
            dt = "f64" if x.dtype == "f64" else dt
        else:
            dt = "i64"
            acc_lo, acc_hi = _full(acc_t)
            _int_product_fits(x.type, where)
        acc = self._buffer(int(np.prod(shape)), dt)
        loop_lines = [ln for ln in loops if ln.startswith("for")]
        setup = [ln for ln in loops if not ln.startswith("for")]
        if sum(1 for v in w if v) > UNROLL_LIMIT:
            body = (setup or ["r = 0", "q = 0"]) + self._looped_sum(x, acc, w, up if exact else None, bias, offsets, n_out, acc_t, w_frac, dt)
        else:
            lines = []
            for o in range(n_out):
                out = f"{acc}[{out_index.format(o=o)} + e]"
                if exact:
                    terms = [_const(dt, bias[o])]
                    terms += [f"{_const(dt, w[i * n_out + o] << up)} * {x.name}[{taps[i]} + e]" for i in range(n_terms) if w[i * n_out + o]]
                    lines.append(f"{out} = " + " + ".join(terms))
                    continue
                lines.append(f"s = np.int64({bias[o]})")
                for i in range(n_terms):
                    c_ = w[i * n_out + o]
                    if c_:
                        product = f"np.int64({c_}) * np.int64({x.name}[{taps[i]} + e])"
                        lines.append(f"p = cast({product}, {x.type.frac + w_frac}, {_codes(acc_t)})")
                        lines.append(f"s = cast(s + p, {acc_t.frac}, {_codes(acc_t)})")
                lines.append(f"{out} = s")
            body = setup + ["for e in range(BLOCK):"] + ["    " + ln for ln in lines]
        self._kernel(f"{names}: accumulate", [x.name, acc], loop_lines, body)
        return self._cast_kernel(f"{names}: result casts", acc, acc_t.frac, acc_lo, acc_hi, steps, shape, where, dt)

    def _looped_sum(self, x, acc, w, up, bias, offsets, n_out, acc_t, w_frac, dt):
        """Body of a looped accumulation (after ``r``, the window's first input row, and ``q``,
        the output pixel's first row): bias first, then the taps in input order, so each
        output sees hls4ml's order of operations; ``up`` is None on the stepwise path."""
        exact = up is not None
        weights = self._array([v << up for v in w] if exact else w, dt)
        biases = self._array(bias, dt)
        taps = self._array(offsets, "i64")
        index = "q + o * BLOCK + e"
        if exact:
            accumulate = [f"{acc}[{index}] += c * {x.name}[base + e]"]
        else:
            p_frac, codes = x.type.frac + w_frac, _codes(acc_t)
            accumulate = [
                f"p = cast(np.int64(c) * np.int64({x.name}[base + e]), {p_frac}, {codes})",
                f"{acc}[{index}] = cast({acc}[{index}] + p, {acc_t.frac}, {codes})",
            ]
        return [
            f"for o in range({n_out}):",
            "    for e in range(BLOCK):",
            f"        {acc}[{index}] = {biases}[o]",
            f"for i in range({len(offsets)}):",
            f"    base = r + {taps}[i] * BLOCK",
            f"    for o in range({n_out}):",
            f"        c = {weights}[i * {n_out} + o]",
            "        if c != 0:",
            "            for e in range(BLOCK):",
        ] + ["                " + line for line in accumulate]

    def _pool(self, layer, x, where):
        """hls4ml's pooling2d_cl, stepwise in int64 (max: compare in the input type; average:
        sum in accum_t with its overflow, then truncating division by the unpadded count)."""
        ph, pw = (int(v) for v in layer["pool"])
        sh, sw = (int(v) for v in layer["strides"])
        top, _, left, _ = (int(v) for v in layer["pad"])
        h, w, c = x.shape
        oh_n, ow_n, _ = (int(v) for v in layer["output_shape"])
        # hls4ml infers a max pool's accum_t as its input type; a spec may omit it
        acc_t = _type(layer, "accum_type") if "accum_type" in layer else x.type
        res_t = _type(layer, "result_type")
        is_max = layer["op"] == "max_pool2d"
        wide = max(acc_t.frac, x.type.frac)  # ap_fixed += adds at full precision
        # pad_val<T, Max>: only the top bit set (the most negative value if T is signed)
        pad = -(1 << (x.type.width - 1)) if x.type.signed else 1 << (x.type.width - 1)
        lines = ["m = np.int64(0)", "count = 0"]
        for a in range(ph):
            for b in range(pw):
                row, col = f"(oh * {sh} + {a} - {top})", f"(ow * {sw} + {b} - {left})"
                inside = f"(0 <= {row} < {h}) and (0 <= {col} < {w})"
                lines.append(f"p = np.int64({x.name}[(({row} * {w} + {col}) * {c} + ch) * BLOCK + e]) if {inside} else np.int64({pad})")
                if is_max:
                    lines.append("m = p" if (a, b) == (0, 0) else "m = p if p > m else m")
                else:
                    summed = f"(m << {wide - acc_t.frac}) + (p << {wide - x.type.frac})"
                    lines.append(f"m = cast({summed}, {wide}, {_codes(acc_t)}) if {inside} else m")
                    lines.append(f"count += 1 if {inside} else 0")
        if is_max:
            lines.append(f"m = cast(m, {x.type.frac}, {_codes(acc_t)})")
        else:
            # ap_fixed /= unsigned: integer division of the mantissa, truncating toward zero
            lines.append("m = -((-m) // count) if m < 0 else m // count")
        lines.append(f"m = cast(m, {acc_t.frac}, {_codes(res_t)})")
        y = self._tensor(layer["output_shape"], res_t, *_full(res_t), where)
        lines.append(f"{y.name}[((oh * {ow_n} + ow) * {c} + ch) * BLOCK + e] = m")
        loops = [f"for oh in range({oh_n}):", f"for ow in range({ow_n}):", f"for ch in range({c}):", "for e in range(BLOCK):"]
        self._kernel(f"{layer['name']}: {layer['op']}", [x.name, y.name], loops, lines)
        return y

    def _scale(self, layer, x, steps, where, names):
        """hls4ml's normalize: ``res = product(x, scale) + bias`` at full precision, then cast."""
        product = layer.get("product", "mult")
        if product not in ("mult", "weight_exponential"):
            msg = f"{where}: scale product {product!r} is not supported; supported: mult, weight_exponential"
            raise SpecError(msg)
        s_t, b_t = _type(layer, "scale_type"), _type(layer, "bias_type")
        scales, s_frac = [int(v) for v in layer["scale"]], s_t.frac
        if product == "weight_exponential":
            signs, exponents, half = _exponential_scales(layer, x.type, where)
            if not all(_shift_is_exact(x, half, e) for e in exponents):
                return self._scale_shifted(layer, x, steps, where, names, signs, exponents, half)
            # every shift is lossless: the product is x * (+-2**e) exactly, a plain multiplication
            s_frac = max(0, -min(exponents))
            scales = [sign << (e + s_frac) for sign, e in zip(signs, exponents)]
        frac = max(x.type.frac + s_frac, b_t.frac)
        scales = [v << (frac - x.type.frac - s_frac) for v in scales]
        biases = [int(v) << (frac - b_t.frac) for v in layer["bias"]]
        channels = len(scales)
        bounds = [(b + min(s * x.lo, s * x.hi), b + max(s * x.lo, s * x.hi)) for s, b in zip(scales, biases)]
        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
        product = max(abs(v) for v in scales) * max(abs(x.lo), abs(x.hi))
        dt = _dtype_for(min(lo, -product), max(hi, product), where)
        dt = "f64" if x.dtype == "f64" else dt
        acc = self._buffer(x.size, dt)
        lines = [
            f"{acc}[(i * {channels} + {ch}) * BLOCK + e] = {_const(dt, scales[ch])} * {x.name}[(i * {channels} + {ch}) * BLOCK + e] + {_const(dt, biases[ch])}"
            for ch in range(channels)
        ]
        self._kernel(f"{names}: scale and bias", [x.name, acc], [f"for i in range({x.size // channels}):", "for e in range(BLOCK):"], lines)
        return self._cast_kernel(f"{names}: result casts", acc, frac, lo, hi, steps, layer["output_shape"], where, dt)

    def _scale_shifted(self, layer, x, steps, where, names, signs, exponents, half):
        """product::weight_exponential step by step in int64: ``r_T(x) << e`` keeps r_T's width
        (bits shifted out above are lost, a right shift floors), then ``r_T(-y)`` for sign 0."""
        b_t = _type(layer, "bias_type")
        frac = max(half, b_t.frac)
        biases = [int(v) << (frac - b_t.frac) for v in layer["bias"]]
        up = frac - half
        if 2 * half + up > 62:
            msg = (
                f"{where}: the shift product's type ap_fixed<{2 * half},{half}> drops or wraps bits here and is "
                "too wide for the emulator's int64 arithmetic"
            )
            raise SpecError(msg)
        r_t = ApType(2 * half, half)
        channels = len(biases)
        acc = self._buffer(x.size, "i64")
        lines = []
        for ch in range(channels):
            index = f"(i * {channels} + {ch}) * BLOCK + e"
            lines.append(f"r = cast(np.int64({x.name}[{index}]), {x.type.frac}, {_codes(r_t)})")
            lines.append(f"y = cast(r, {r_t.frac - exponents[ch]}, {_codes(r_t)})")
            if signs[ch] < 0:
                lines.append(f"y = cast(-y, {r_t.frac}, {_codes(r_t)})")
            lines.append(f"{acc}[{index}] = (y << {up}) + np.int64({biases[ch]})")
        lo = (r_t.min_mantissa << up) + min(biases)
        hi = (r_t.max_mantissa << up) + max(biases)
        self._kernel(f"{names}: shift and bias", [x.name, acc], [f"for i in range({x.size // channels}):", "for e in range(BLOCK):"], lines)
        return self._cast_kernel(f"{names}: result casts", acc, frac, lo, hi, steps, layer["output_shape"], where, "i64")

    def _zero_pad(self, layer, x, where):
        res_t = _type(layer, "result_type")
        p, _ = self._padded(x, layer["pad"], where)
        if res_t == x.type:
            return Tensor(p.name, tuple(layer["output_shape"]), res_t, p.lo, p.hi)
        return self._cast_kernel(f"{layer['name']}: cast", p.name, p.type.frac, p.lo, p.hi, [("cast", res_t)], layer["output_shape"], where, p.dtype)


_NP = {"f32": "float32", "f64": "float64", "i64": "int64"}


def _identifier(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.split(":")[0])[:40]


def _codes(t: ApType) -> str:
    return ", ".join(str(c) for c in t.codes())


def _full(t: ApType):
    return min(t.min_mantissa, 0), max(t.max_mantissa, 0)



def _exponential_scales(layer, x_t: ApType, where):
    """Signs, exponents and ``E + W`` (hls4ml's shift type ``r_T`` is ``ap_fixed<2*(E+W), E+W>``)
    of a weight_exponential scale layer.

    The spec holds each ``{sign, exponent}`` as the exact mantissa of +-2**e in
    ``scale_type``; nnet_mult.h computes in ``ap_fixed<2*(E+W), E+W>`` with E the exponent
    width and W the input width.
    """
    if "scale_exponent_width" not in layer:
        msg = f"{where}: a weight_exponential scale needs 'scale_exponent_width' (the exponent's ap_int width)"
        raise SpecError(msg)
    width = int(layer["scale_exponent_width"])
    s_t = _type(layer, "scale_type")
    signs, exponents = [], []
    for m in (int(v) for v in layer["scale"]):
        if m == 0 or abs(m) & (abs(m) - 1):
            msg = f"{where}: weight_exponential scale mantissa {m} is not +-2**e"
            raise SpecError(msg)
        e = abs(m).bit_length() - 1 - s_t.frac
        if not -(1 << (width - 1)) <= e < (1 << (width - 1)):
            msg = f"{where}: exponent {e} does not fit the scale's ap_int<{width}>"
            raise SpecError(msg)
        signs.append(1 if m > 0 else -1)
        exponents.append(e)
    return signs, exponents, width + x_t.width


def _shift_is_exact(x: Tensor, half: int, e: int) -> bool:
    """Whether ``+-(r_T(x) << e)`` in r_T = ap_fixed<2*half, half> equals ``x * 2**e`` for
    every x of the tensor's interval (r_T may be wider than any ApType: only its bounds matter)."""
    if x.type.frac > half or -e > half - x.type.frac:
        return False  # the cast or the right shift would drop bits
    up = half - x.type.frac + max(e, 0)
    r_max = (1 << (2 * half - 1)) - 1
    return -r_max <= x.lo << up and x.hi << up <= r_max

def _int_product_fits(x_t: ApType, where) -> None:
    """Stepwise products are int64: input mantissas (< 2**53, as stored) times weights must fit."""
    if x_t.width > 53:
        msg = f"{where}: the stepwise int64 path needs input widths up to 53 bits, got {x_t}"
        raise SpecError(msg)


def generate(spec: dict, *, fuse: bool = True, block: int = BLOCK):
    """Source of the kernel module for ``spec``: per-layer kernels and the driver
    ``network(x, table, out, lookup, trace)``.

    Returns ``(source, output_tensor, traced)``; ``traced`` lists (layer name, Tensor) for
    every layer (fused layers share the tensor of their group's last layer). With
    ``fuse=False`` no layer is fused and ``trace`` receives every layer's mantissas.
    """
    gen = _Generator(spec, fuse)
    y = gen.build()
    x0 = gen.tensors[0]
    lines = [
        f'"""Emulator kernels of network {spec["name"]!r}, generated by l0emu._codegen from its spec."""',
        "",
        "import numpy as np",
        "from numba import njit",
        "from numpy import float32 as f32, float64 as f64",
        "",
        "from l0emu.fixed import cast_mantissa",
        "",
        f"BLOCK = {block}",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def cast(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits):",
        '    """l0emu.fixed.cast_mantissa behind one call, so numba types its body once per module."""',
        "    return cast_mantissa(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits)",
    ]
    for name, values, dtype in gen.arrays:
        lines += ["", f"{name} = np.array({values!r}, dtype=np.{dtype})"]
    for function in gen.functions:
        lines += function
    lines += [
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def network(x, table, out, lookup, trace):",
        f'    """x: (n, {x0.size}) input mantissas, or uint8 codes whose mantissas are table[code]."""',
        "    n = x.shape[0]",
    ]
    lines += [f"    {name} = np.zeros({size} * BLOCK, np.{dtype})" for name, size, dtype in gen.buffers]
    lines += [
        "    for start in range(0, n, BLOCK):",
        "        m = min(BLOCK, n - start)",
        "        for e in range(m):",
        f"            for i in range({x0.size}):",
        f"                {x0.name}[i * BLOCK + e] = table[x[start + e, i]] if lookup else x[start + e, i]",
    ]
    lines += ["        " + call for call in gen.calls]
    lines += [
        "        for e in range(m):",
        f"            for j in range({y.size}):",
        f"                out[start + e, j] = np.int64({y.name}[j * BLOCK + e])",
    ]
    if not fuse:
        for k, (_, t) in enumerate(gen.traced):
            lines += [
                "        for e in range(m):",
                f"            for j in range({t.size}):",
                f"                trace[{k}][start + e, j] = np.float64({t.name}[j * BLOCK + e])",
            ]
    return "\n".join(lines) + "\n", y, gen.traced
