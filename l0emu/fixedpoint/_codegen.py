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
  emitted from the same rules as :func:`l0emu.fixedpoint.casts.cast_mantissa` (floor, the dropped
  fraction, then the overflow mode) and tested against it exhaustively.
  A tensor of per-element types (a quantize layer's, as HGQ2 networks have) keeps each
  element's fractional bits; where those put every product on the accumulator grid even
  though the tensor's type does not, the sum is exact all the same, its coefficients
  scaled by a power of two below one (exact dyadic floats).
- *modular*: when the products fit without rounding but partial sums may leave an
  accumulator that wraps around (``AP_WRAP``, as hls4ml's bit-exact type inference writes
  them), every per-step cast is a reduction modulo 2**width, which commutes with addition:
  the sum is computed exactly as above and wrapped once, at the end.
- *stepwise*: otherwise every product, bias and partial sum goes through
  :func:`l0emu.fixedpoint.casts.cast_mantissa` in int64, in hls4ml's order of operations.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np

from l0emu.fixedpoint.aptypes import OVERFLOW_CODES, ROUNDING_CODES, ApType, Expr, cast_target, element_types, parse_type, xnor_cast_type
from l0emu.errors import SpecError
from l0emu.fixedpoint.casts import cast_mantissa
from l0emu.fixedpoint.spec import output_layout, spec_inputs

__all__ = ["BLOCK", "ELEMENT_TYPE_LIMIT", "UNROLL_LIMIT", "Tensor", "as_2d", "generate", "merge_expr", "resource_order", "upsample_index"]

BLOCK = 32
UNROLL_LIMIT = 1024
# distinct element types of a quantize layer up to which each gets its own (float-domain) loop
ELEMENT_TYPE_LIMIT = 4
CHAINS = 4  # independent partial sums per exact output sum
_EXACT_LIMIT = {"f32": 1 << 24, "f64": 1 << 53}
_PRODUCTS = ("mult", "weight_ternary", "weight_binary", "both_binary", "data_binary", "weight_exponential")


@dataclass
class Tensor:
    """A network tensor: its buffer name, element count, ap type and mantissa interval."""

    name: str
    shape: tuple
    type: ApType
    lo: int
    hi: int
    # fractional bits per element where some element is coarser than the type (a quantize
    # layer's element types, kept by views of its buffer; an element without bits: _NO_BITS);
    # None: all the type's
    fracs: tuple | None = None

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


_NO_BITS = -(1 << 30)  # the fractional bits of an element that is always 0


def _scaled(c: int, up: int):
    """``c * 2**up``: an int where ``up >= 0``, else the exact dyadic float (a sum whose
    products all land on the accumulator grid by their elements' own fractional bits)."""
    return c << up if up >= 0 else c * 2.0**up


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
        half_fits = max(abs(lo), abs(hi)) + (1 << (shift - 1)) <= limit
        direct = _direct_rounding(dst.rounding, t, dt, half_fits)
        if direct:
            out.append(f"{q} = {direct}")
        else:
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


def _direct_rounding(rounding, t, dt, half_fits):
    """One vector instruction where one rounds ``t`` exactly like ``rounding``: ``t`` is an
    exact float, so rint (ties to even), trunc and floor are exact; ``t +- 0.5`` is exact
    when ``half_fits`` (the mantissa plus half an output step stays below 2**24 / 2**53)."""
    if rounding == "TRN":
        return f"np.floor({t})"
    if rounding == "RND_CONV":
        return f"np.rint({t})"
    if rounding == "TRN_ZERO":
        return f"np.trunc({t})"
    if rounding == "RND" and half_fits:
        return f"np.floor({t} + {_const(dt, 0.5)})"
    if rounding == "RND_MIN_INF" and half_fits:
        return f"np.ceil({t} - {_const(dt, 0.5)})"
    return ""


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


class _Emitter:
    """Lines of Python source with an indentation context: ``append`` writes one line at the
    current depth, ``block(header)`` writes a header and indents what is emitted inside it."""

    def __init__(self):
        self.lines = []
        self.depth = 0

    def append(self, text: str) -> None:
        self.lines.append("    " * self.depth + text if text else "")

    def extend(self, lines) -> None:
        for line in lines:
            self.append(line)

    @contextmanager
    def block(self, header: str):
        self.append(header)
        self.depth += 1
        try:
            yield self
        finally:
            self.depth -= 1


def _at(base: str, offset: int, lane: str = "e") -> str:
    """Index ``base + offset * BLOCK + lane`` without zero terms (``base`` may be empty)."""
    parts = [p for p in (base, f"{offset} * BLOCK" if offset else "", lane) if p]
    return " + ".join(parts) if parts else "0"


def _exact_sum(em, target: str, bias: str, terms: list) -> None:
    """``target = bias + terms`` as ``CHAINS`` interleaved partial sums added at the end.

    One left-to-right chain makes every addition wait for the previous one; independent
    chains keep the vector units busy. The exact path's sums are exact in any order, so
    the regrouping changes no bit.
    """
    if len(terms) < 2 * CHAINS:
        chains = [[bias, *terms]]
    else:
        chains = [terms[k::CHAINS] for k in range(CHAINS)]
        chains[0] = [bias, *chains[0]]
    names = []
    for k, chain in enumerate(chains):
        name = target if len(chains) == 1 else f"_s{k}"  # buffers never start with "_"
        names.append(name)
        with em.block(f"{name} = ("):
            head = chain[0]
            em.append(head[2:] if head.startswith("+ ") else head)
            em.extend(chain[1:])
        em.append(")")
    if len(chains) > 1:
        em.append(f"{target} = {' + '.join(names)}")


def _times(variable: str, factor: int) -> str:
    return variable if factor == 1 else f"{variable} * {factor}"


def _products_on_grid(x: Tensor, w: list, geometry, drop: int) -> bool:
    """Whether every product of a sum is a multiple of ``2**drop`` product steps (the bits the
    accumulator drops), by the fractional bits of the elements each tap reads at any output
    pixel and each weight's own trailing zeros."""
    if x.fracs is None:
        return False
    n_out = geometry.n_out
    for i, tap in enumerate(geometry.taps):
        # the finest element this tap reads, as trailing zero bits of its mantissa
        zeros = x.type.frac - max(x.fracs[start + tap] for start in geometry.starts)
        for c in w[i * n_out : (i + 1) * n_out]:
            if c and zeros + _trailing_zeros(c) < drop:
                return False
    return True


def _trailing_zeros(c: int) -> int:
    return (c & -c).bit_length() - 1


def _term(coefficient: int, operand: str, dt: str) -> str:
    """`` + c * operand`` of an exact sum, without a multiplication by +-1."""
    if coefficient == 1:
        return f"+ {operand}"
    if coefficient == -1:
        return f"- {operand}"
    return f"+ {_const(dt, coefficient)} * {operand}"


@dataclass
class _Geometry:
    """Where a conv2d/dense output reads its inputs: loops over output pixels, per-pixel
    setup (``r``: the window's first input row, ``q``: the output pixel's first row, in rows
    of BLOCK events), the input offset of each tap and the output shape."""

    loops: list
    setup: list
    taps: list
    n_out: int
    shape: tuple
    window: str = ""  # base of the tap indices ("r" in a convolution)
    pixel: str = ""  # base of the output indices ("q" in a convolution)
    starts: tuple = (0,)  # each output pixel's first input element (its window's origin)


@dataclass
class _SumPlan:
    """The arithmetic of one conv2d/dense accumulation (see the module docstring)."""

    weights: list  # products' integer coefficients (ternary/binary: -1, 0, 1)
    offsets: list  # each product is ``offset + coefficient * x`` (nonzero for XNOR data only)
    w_frac: int
    bias: list  # biases cast into accum_t (exact path: plus the products' offsets)
    acc_t: ApType  # the type every product and partial sum is cast into (aptypes.cast_target)
    acc_src: ApType  # accum_t as declared: the source of the result casts
    up: int  # exact path: the coefficients times 2**up are in accum_t's frac (up < 0: by the elements' own bits)
    exact: bool  # the exact (or modular) sum; the stepwise one if False
    wraps: bool  # modular: the exact sum is wrapped into acc_t before the result casts
    dt: str
    lo: int
    hi: int
    shifts: tuple | None = None  # po2 weights whose shifts drop bits: (signs, exponents, r_T), see _shifts

    def result_steps(self, steps: list) -> list:
        """The casts after the sum: a modular sum is first wrapped into ``acc_t``."""
        return [("cast", self.acc_t), *steps] if self.wraps else steps


def _element_fracs(types, res_t: ApType) -> tuple:
    """Each element's fractional bits after its own type and the result type."""
    return tuple(_NO_BITS if t is None else min(t.frac, res_t.frac) for t in types)


class _Generator:
    def __init__(self, spec, fuse: bool):
        self.spec = spec
        self.fuse = fuse
        self.names = _Names()
        self.taken = set()  # buffer and array names in use
        self.buffers = []  # (name, size, numpy dtype): allocated once, reused by every block
        self.functions = []  # source lines of the per-layer kernels
        self.calls = []  # the per-block calls of the driver
        self.tensors = []
        self.traced = []  # (layer name, tensor) in trace order
        self.arrays = []  # (name, values, numpy dtype): module-level constants of looped layers
        self.inputs = []  # the network inputs' tensors, in the spec's order

    # -- names, buffers and kernels ---------------------------------------------------
    def _name(self, stem: str) -> str:
        base = _identifier(stem) or "t"
        base = base if base[0].isalpha() else f"t_{base}"
        name, i = base, 1
        while name in self.taken or name in _RESERVED:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def _buffer(self, stem, size, dt):
        name = self._name(stem)
        self.buffers.append((name, int(size), _NP[dt]))
        return name

    def _array(self, stem, values, dt):
        name = self._name(_identifier(stem).upper())
        self.arrays.append((name, [float(v) if dt in _EXACT_LIMIT else int(v) for v in values], _NP[dt]))
        return name

    def _tensor(self, stem, shape, t: ApType, lo, hi, where):
        _dtype_for(lo, hi, where)
        tensor = Tensor("", tuple(int(s) for s in shape), t, int(lo), int(hi))
        tensor.name = self._buffer(stem, tensor.size, tensor.dtype)
        self.tensors.append(tensor)
        return tensor

    @contextmanager
    def _kernel(self, title, args, loops=()):
        """A small njit kernel; yields an emitter inside ``loops`` and adds the driver's call."""
        name = f"k{len(self.functions)}_{_identifier(title.split(':')[0].replace(' + ', '_'))[:40]}"
        em = _Emitter()
        em.extend(["", "", "@njit(cache=True, nogil=True, error_model='numpy')"])
        with em.block(f"def {name}({', '.join(args)}):"):
            em.append(f'"""{title}"""')
            with ExitStack() as stack:
                for loop in loops:
                    stack.enter_context(em.block(loop))
                yield em
        self.functions.append(em.lines)
        self.calls.append(f"{name}({', '.join(args)})")

    # -- epilogue ---------------------------------------------------------------------
    def _apply_steps(self, out, v, src, lo, hi, steps, dt, exact):
        """Emit the casts of ``steps`` on ``v`` (of type ``src``); return the final (variable, lo, hi) or None."""
        frac = src.frac
        for kind, t in steps:
            if kind == "xnor":  # nnet_mult.h's cast for XNOR data and weights: 2 * acc - n_in
                if exact and 2 * max(abs(lo), abs(hi)) + t > _EXACT_LIMIT[dt]:
                    return None
                z = self.names("z")
                out.append(f"{z} = {v} * {_const(dt, 2) if exact else 2} - {_const(dt, t) if exact else t}")
                v, lo, hi = z, 2 * lo - t, 2 * hi - t
                continue
            if kind == "relu":
                z = self.names("z")
                zero = f"{dt}(0.0)" if exact else "np.int64(0)"
                out.append(f"{z} = {v} if {v} > {zero} else {zero}")
                v, lo, hi = z, max(lo, 0), max(hi, 0)
            declared, t = t, cast_target(t, src)
            if exact:
                res = _emit_float_cast(out, self.names, v, frac, lo, hi, t, dt)
                if res is None:
                    return None
                v, lo, hi = res
            else:
                lo, hi, _ = _cast_interval(lo, hi, frac, t)
                v = _emit_int_cast(out, self.names, v, frac, t)
            frac, src = t.frac, declared
        return v, lo, hi

    def _cast_kernel(self, title, stem, x, src, lo, hi, steps, shape, where, dt):
        """Elementwise kernel: ``steps`` applied to buffer ``x`` (mantissas of type ``src``,
        an ApType or Expr); the float domain where it holds every intermediate exactly, int64 otherwise."""
        body = _Emitter()
        res = None
        if dt != "i64":
            body.append(f"v = {x}[j]")
            res = self._apply_steps(body, "v", src, lo, hi, steps, dt, True)
        if res is None:
            body = _Emitter()
            body.append(f"v = np.int64({x}[j])")
            res = self._apply_steps(body, "v", src, lo, hi, steps, "i64", False)
        v, ylo, yhi = res
        y = self._tensor(stem, shape, steps[-1][1], ylo, yhi, where)
        with self._kernel(title, [x, y.name], [f"for j in range({y.size} * BLOCK):"]) as em:
            em.extend(body.lines)
            em.append(f"{y.name}[j] = {v}")
        return y

    def _fused_steps(self, layers, k, kept):
        """Elementwise layers after ``layers[k]`` that fold into its epilogue: each reads the
        layer before it, whose tensor nothing else needs (``kept``: read twice or an output)."""
        steps = []
        j = k + 1
        while self.fuse and j < len(layers) and layers[j]["op"] in ("relu", "linear"):
            if _sources(layers, j) != [layers[j - 1]["name"]] or layers[j - 1]["name"] in kept:
                break
            steps.append(("relu" if layers[j]["op"] == "relu" else "cast", _type(layers[j], "result_type")))
            j += 1
        return steps, j

    # -- the network --------------------------------------------------------------------
    def build(self):
        """Emit every layer in spec order, each reading the tensors its source layers made;
        return the output layers' tensors as ``[(layer name, Tensor)]`` in column order."""
        made = {}  # tensors by name: the network inputs', then each layer's
        for j, inp in enumerate(spec_inputs(self.spec)):
            t_in = parse_type(inp["type"])
            x = self._tensor(f"{inp.get('name', 'input')}_in", inp["shape"], t_in, t_in.min_mantissa, t_in.max_mantissa, "input")
            self.inputs.append(x)
            made.update({inp["name"]: x} if "name" in inp else {})
            made.setdefault(_INPUT_KEY, x)
        layers = self.spec["layers"]
        heads, _ = output_layout(self.spec)
        kept = {name for name, _, _ in heads} | _read_twice(layers)
        k = 0
        while k < len(layers):
            layer = layers[k]
            where = f"layer {layer['name']!r}"
            emit = _OP_EMITTERS.get(layer["op"])
            if emit is None:
                msg = f"{where}: op {layer['op']!r} has no emulator implementation"
                raise SpecError(msg)
            steps, nxt = self._fused_steps(layers, k, kept) if layer["op"] in _FUSING else ([], k + 1)
            group = [layers[j]["name"] for j in range(k, nxt)]
            sources = [made[name] for name in _sources(layers, k)]
            x = sources[0] if len(sources) == 1 else sources
            try:
                y = emit(self, layer, x, [("cast", _type(layer, "result_type")), *steps], where, group)
            except SpecError as err:
                if str(err).startswith(where):
                    raise
                msg = f"{where}: {err}"
                raise SpecError(msg) from None
            for name in group:
                self.traced.append((name, y))
                made[name] = y
            k = nxt
        return [(name, made[name]) for name, _, _ in heads]

    # -- one function per op --------------------------------------------------------------
    def _flatten(self, layer, x, steps, where, group):
        return Tensor(x.name, tuple(layer["output_shape"]), x.type, x.lo, x.hi, x.fracs)

    def _elementwise(self, layer, x, steps, where, group):
        """relu / linear: the cast into the result type (after max(x, 0) for relu)."""
        step = ("relu" if layer["op"] == "relu" else "cast", steps[0][1])
        title = " + ".join(group)
        return self._cast_kernel(title, f"{layer['name']}_out", x.name, x.type, x.lo, x.hi, [step], layer["output_shape"], where, x.dtype)

    def _zero_pad(self, layer, x, steps, where, group):
        res_t = steps[0][1]
        p, _ = self._padded(x, layer["pad"], where, layer["name"])
        if res_t == x.type:
            return Tensor(p.name, tuple(layer["output_shape"]), res_t, p.lo, p.hi)
        title = f"{layer['name']}: cast"
        return self._cast_kernel(title, f"{layer['name']}_out", p.name, p.type, p.lo, p.hi, [("cast", res_t)], layer["output_shape"], where, p.dtype)

    def _padded(self, x, pad, where, stem):
        top, bottom, left, right = (int(p) for p in pad)
        if not (top or bottom or left or right):
            return x, x.shape
        h, w, c = x.shape
        shape = (h + top + bottom, w + left + right, c)
        # the border stays zero: it is allocated zeroed and only the interior is written
        p = self._tensor(f"{stem}_padded", shape, x.type, min(x.lo, 0), max(x.hi, 0), where)
        loops = [f"for i in range({h}):", f"for j in range({w * c} * BLOCK):"]
        with self._kernel(f"{stem}: zero border", [x.name, p.name], loops) as em:
            row = f"(({top} + i) * {shape[1] * c} + {left * c}) * BLOCK + j" if (top or left) else f"i * {shape[1] * c} * BLOCK + j"
            em.append(f"{p.name}[{row}] = {x.name}[i * {w * c} * BLOCK + j]")
        return p, shape

    def _shifts(self, layer, x, where):
        """quantized_po2 kernels (nnet_mult.h weight_exponential): ``y = r_T(x) << e`` (bits shifted
        out are lost, a right shift floors), ``r_T(-y)`` for sign 0, r_T = ap_fixed<2*(E+W), E+W>.
        None where every shift keeps every bit of every input it sees: then the product is
        ``x * (+-2**e)``, a plain multiplication by the spec's exact mantissas. Otherwise
        ``(signs, exponents, r_T)``, one sign and exponent per weight, for the stepwise sum."""
        if layer["product"] != "weight_exponential":
            return None
        half = int(layer["weight_exponent_width"]) + x.type.width
        wt = _type(layer, "weight_type")
        exponents = [abs(int(m)).bit_length() - 1 - wt.frac for m in layer["weights"]]
        if all(_shift_is_exact(x, half, e) for e in set(exponents)):
            return None
        if 2 * half > 62:
            msg = (f"{where}: po2 weights shift {x.type} in hls4ml's ap_fixed<{2 * half},{half}>, which drops bits here "
                   "and is wider than the emulator's int64 arithmetic")
            raise SpecError(msg)
        return [1 if int(m) > 0 else -1 for m in layer["weights"]], exponents, ApType(2 * half, half)

    def _weights(self, layer, x, where):
        """(coefficients, offsets or None, fractional bits): each product is ``offset + coefficient * x``."""
        product = layer["product"]
        if product not in _PRODUCTS:
            msg = f"{where}: product {product!r} is not supported; supported: {', '.join(_PRODUCTS)}"
            raise SpecError(msg)
        w = [int(v) for v in layer["weights"]]
        wt = _type(layer, "weight_type")
        if product == "mult":
            return w, None, wt.frac
        if product == "weight_exponential":
            return w, None, wt.frac  # exact values; _shifts says whether hls4ml's shifts keep them
        # weight_ternary / weight_binary return -a, 0 or a in a's own type (nnet_mult.h):
        # ternary: w == 0 -> 0, w == -1 -> -a, anything else (1, and -2 of ap_int<2>) -> a
        if product == "weight_ternary":
            return [0 if v == 0 else (-1 if v == -1 else 1) for v in w], None, 0
        if product == "weight_binary":
            return [-1 if v == 0 else 1 for v in w], None, 0  # 0 -> -a, else a
        return _xnor_data_products(product, w, wt, x.type, where)

    def _conv_geometry(self, layer, x, where):
        x, (_, wp, c) = self._padded(x, layer["pad"], where, layer["name"])
        kh, kw = (int(v) for v in layer["kernel"])
        sh, sw = (int(v) for v in layer["strides"])
        oh_n, ow_n, n_out = (int(v) for v in layer["output_shape"])
        geometry = _Geometry(
            loops=[f"for oh in range({oh_n}):", f"for ow in range({ow_n}):"],
            setup=[f"r = ({_times('oh', sh * wp * c)} + {_times('ow', sw * c)}) * BLOCK", f"q = (oh * {ow_n} + ow) * {_times('BLOCK', n_out)}"],
            taps=[(a * wp + b) * c + ch for a in range(kh) for b in range(kw) for ch in range(c)],
            n_out=n_out,
            shape=(oh_n, ow_n, n_out),
            window="r",
            pixel="q",
            starts=tuple((oh * sh * wp + ow * sw) * c for oh in range(oh_n) for ow in range(ow_n)),
        )
        return x, geometry

    def _dense_geometry(self, layer, x):
        n_in, n_out = int(layer["n_in"]), int(layer["n_out"])
        return x, _Geometry(loops=[], setup=[], taps=list(range(n_in)), n_out=n_out, shape=(n_out,))

    def _sum_plan(self, layer, x, geometry, where) -> _SumPlan:
        """Choose the exact or the stepwise arithmetic by interval analysis of the mantissas."""
        w, offsets, w_frac = self._weights(layer, x, where)
        offsets = offsets or [0] * len(w)
        acc_src = _type(layer, "accum_type")
        bias_t = _type(layer, "bias_type")
        bias = [_cast_const(b, bias_t.frac, cast_target(acc_src, bias_t)) for b in layer["biases"]]
        # the products (ternary / binary ones return the input's own type); partial sums of an
        # integer accumulator have no fraction bits, so the products' conversion is every step's
        shifts = self._shifts(layer, x, where)
        product = Expr.product(x.type, _type(layer, "weight_type")) if layer["product"] in ("mult", "weight_exponential") else x.type
        acc_t = cast_target(acc_src, shifts[2] if shifts else product)
        up = acc_t.frac - (x.type.frac + w_frac)
        n_out = geometry.n_out
        acc_lo = acc_hi = span = prod_lo = prod_hi = 0
        start = list(bias)  # exact path: the bias plus the products' constant offsets
        exact = shifts is None and (up >= 0 or (not any(offsets) and _products_on_grid(x, w, geometry, -up)))
        wraps = False
        if exact:
            # hls4ml casts every product into accum_t on its own (the ``mult`` array), then
            # adds them to the bias-initialised accumulator, casting each partial sum. Each
            # product and each partial sum must therefore fit accum_t's range (under SAT_SYM
            # without its most negative value, which that mode gives up). Partial sums run
            # bias first, so they lie in [bias + negative terms, bias + positive terms].
            for o in range(n_out):
                lo = hi = bias[o]
                t_lo = t_hi = 0  # partial sums of the coefficient terms alone (the sum's chains)
                for i in range(len(geometry.taps)):
                    c_, off = _scaled(w[i * n_out + o], up), _scaled(offsets[i * n_out + o], up)
                    p_lo, p_hi = off + min(c_ * x.lo, c_ * x.hi), off + max(c_ * x.lo, c_ * x.hi)
                    lo += min(p_lo, 0)
                    hi += max(p_hi, 0)
                    prod_lo, prod_hi = min(prod_lo, p_lo), max(prod_hi, p_hi)
                    t_lo, t_hi = t_lo + min(p_lo - off, 0), t_hi + max(p_hi - off, 0)
                    start[o] += off
                acc_lo, acc_hi = min(acc_lo, lo), max(acc_hi, hi)
                # every chain is a partial sum of the terms, the first one also holds the start
                chains = max(t_hi, -t_lo) + (abs(start[o]) if start[o] != bias[o] else 0)
                span = max(span, hi - bias[o], bias[o] - lo, chains)
            # scaled coefficients bound the sums by fractions; the sums themselves are integers
            acc_lo, prod_lo, acc_hi, prod_hi, span = math.floor(acc_lo), math.floor(prod_lo), math.ceil(acc_hi), math.ceil(prod_hi), math.ceil(span)
            t_lo, t_hi = _target_range(acc_t)
            fits = t_lo <= min(acc_lo, prod_lo) and max(acc_hi, prod_hi) <= t_hi
            wraps = not fits and acc_t.saturation == "WRAP" and acc_t.sat_bits == 0
            exact = fits or wraps
        if exact:
            # Every per-step cast is the identity here, so the sum is exact integer arithmetic.
            dt = _dtype_for(min(acc_lo, -span), max(acc_hi, span), where)
            dt = "f64" if x.dtype == "f64" else dt
        else:
            dt = "i64"
            acc_lo, acc_hi = _full(acc_t)
            _int_product_fits(x.type, where)
        return _SumPlan(w, offsets, w_frac, start if exact else bias, acc_t, acc_src, up, exact, wraps, dt, acc_lo, acc_hi, shifts)

    def _dot(self, layer, x, steps, where, group):
        """conv2d/dense: hls4ml's product, bias-initialised accumulation, then the casts."""
        if layer["op"] == "conv2d":
            x, geometry = self._conv_geometry(layer, x, where)
        else:
            x, geometry = self._dense_geometry(layer, x)
        plan = self._sum_plan(layer, x, geometry, where)
        if layer.get("strategy") == "resource" and not plan.exact:
            _reorder(plan, geometry, resource_order(len(geometry.taps), geometry.n_out, int(layer.get("reuse_factor", 1)), where))
        if layer["product"] == "both_binary":
            steps = [*_xnor_result_steps(len(geometry.taps), plan.acc_t, where), *steps]
        acc = self._buffer(f"{layer['name']}_acc", int(np.prod(geometry.shape)), plan.dt)
        title = " + ".join(group)
        with self._kernel(f"{title}: accumulate", [x.name, acc], geometry.loops) as em:
            if sum(1 for v in plan.weights if v) > UNROLL_LIMIT:
                self._looped_sum(em, layer["name"], x, acc, plan, geometry)
            else:
                self._unrolled_sum(em, x, acc, plan, geometry)
        return self._cast_kernel(f"{title}: result casts", f"{layer['name']}_out", acc, plan.acc_src, plan.lo, plan.hi, plan.result_steps(steps), geometry.shape, where, plan.dt)

    def _unrolled_sum(self, em, x, acc, plan, geometry):
        """Each output's sum written out: literal weights, zeros dropped, one term per line."""
        em.extend(geometry.setup)
        n_out, dt = geometry.n_out, plan.dt
        with em.block("for e in range(BLOCK):"):
            shared = plan.exact and n_out > 1
            if shared:
                # each input loaded once for all outputs (stores to acc could alias it otherwise)
                used = sorted({i for i in range(len(geometry.taps)) for o in range(n_out) if plan.weights[i * n_out + o]})
                em.extend(f"_x{i} = {x.name}[{_at(geometry.window, geometry.taps[i])}]" for i in used)
            for o in range(n_out):
                out = f"{acc}[{_at(geometry.pixel, o)}]"
                taps = [(i, plan.weights[i * n_out + o]) for i in range(len(geometry.taps))]
                taps = [(i, c_) for i, c_ in taps if c_]
                if plan.exact:
                    operand = (lambda i: f"_x{i}") if shared else (lambda i: f"{x.name}[{_at(geometry.window, geometry.taps[i])}]")
                    terms = [_term(_scaled(c_, plan.up), operand(i), dt) for i, c_ in taps]
                    _exact_sum(em, out, _const(dt, plan.bias[o]), terms)
                    continue
                p_frac, codes = x.type.frac + plan.w_frac, _codes(plan.acc_t)
                em.append(f"s = np.int64({plan.bias[o]})")
                for i, c_ in taps:
                    operand = f"np.int64({x.name}[{_at(geometry.window, geometry.taps[i])}])"
                    if plan.shifts:
                        signs, exponents, r_t = plan.shifts
                        em.extend(_shifted_product(operand, x.type.frac, signs[i * n_out + o], str(exponents[i * n_out + o]), r_t, codes))
                    else:
                        product = f"np.int64({c_}) * {operand}"
                        offset = plan.offsets[i * n_out + o]
                        product = f"np.int64({offset}) + {product}" if offset else product
                        em.append(f"p = cast({product}, {p_frac}, {codes})")
                    em.append(f"s = cast(s + p, {plan.acc_t.frac}, {codes})")
                em.append(f"{out} = s")

    def _looped_sum(self, em, stem, x, acc, plan, geometry):
        """A sum looping over module-level weight arrays: bias first, then the taps in input
        order, so each output sees hls4ml's order of operations."""
        weights = self._array(f"{stem}_weights", [_scaled(v, plan.up) for v in plan.weights] if plan.exact else plan.weights, plan.dt)
        biases = self._array(f"{stem}_biases", plan.bias, plan.dt)
        taps = self._array(f"{stem}_taps", geometry.taps, "i64")
        offsets = self._array(f"{stem}_offsets", plan.offsets, "i64") if any(plan.offsets) and not plan.exact else ""
        sign_array = self._array(f"{stem}_signs", plan.shifts[0], "i64") if plan.shifts else ""
        exponent_array = self._array(f"{stem}_exponents", plan.shifts[1], "i64") if plan.shifts else ""
        n_out = geometry.n_out
        em.extend(geometry.setup or ["r = 0", "q = 0"])
        index = "q + o * BLOCK + e"
        with em.block(f"for o in range({n_out}):"), em.block("for e in range(BLOCK):"):
            em.append(f"{acc}[{index}] = {biases}[o]")
        with em.block(f"for i in range({len(geometry.taps)}):"):
            em.append(f"base = r + {taps}[i] * BLOCK")
            with em.block(f"for o in range({n_out}):"):
                em.append(f"c = {weights}[i * {n_out} + o]")
                with em.block("if c != 0:"), em.block("for e in range(BLOCK):"):
                    if plan.exact:
                        em.append(f"{acc}[{index}] += c * {x.name}[base + e]")
                    elif plan.shifts:
                        signs, exponents, r_t = plan.shifts
                        em.extend(_shifted_product(f"np.int64({x.name}[base + e])", x.type.frac, f"{sign_array}[i * {n_out} + o]",
                                                   f"{exponent_array}[i * {n_out} + o]", r_t, _codes(plan.acc_t)))
                        em.append(f"{acc}[{index}] = cast({acc}[{index}] + p, {plan.acc_t.frac}, {_codes(plan.acc_t)})")
                    else:
                        p_frac, codes = x.type.frac + plan.w_frac, _codes(plan.acc_t)
                        offset = f"{offsets}[i * {n_out} + o] + " if offsets else ""
                        em.append(f"p = cast({offset}np.int64(c) * np.int64({x.name}[base + e]), {p_frac}, {codes})")
                        em.append(f"{acc}[{index}] = cast({acc}[{index}] + p, {plan.acc_t.frac}, {codes})")

    def _leaky_relu(self, layer, x, steps, where, group):
        """nnet::leaky_relu: ``x`` if ``x > 0`` else ``alpha * x`` at full precision, each cast
        into the result type (int64: the two branches have different fractions)."""
        res_t, param_t = steps[0][1], _type(layer, "param_type")
        alpha = int(layer["param"])
        if max(abs(x.lo), abs(x.hi)) * max(abs(alpha), 1) >= 1 << 62:
            msg = f"{where}: alpha * x ({param_t} times {x.type}) exceeds the emulator's int64 arithmetic"
            raise SpecError(msg)
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, *_full(res_t), where)
        positive, negative = _codes(cast_target(res_t, x.type)), _codes(cast_target(res_t, Expr.product(param_t, x.type)))
        with self._kernel(f"{' + '.join(group)}: leaky_relu", [x.name, y.name], [f"for j in range({y.size} * BLOCK):"]) as em:
            em.append(f"v = np.int64({x.name}[j])")
            em.append(f"w = cast(v, {x.type.frac}, {positive}) if v > 0 else cast(np.int64({alpha}) * v, {x.type.frac + param_t.frac}, {negative})")
            em.append(f"{y.name}[j] = w")
        return y

    def _select(self, layer, x, res_t, values, where):
        """A tensor of ``res_t`` holding one of ``values`` (mantissas of ``res_t``) per element."""
        return self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, min(values), max(values), where)

    def _binary_tanh(self, layer, x, steps, where, group):
        """nnet::binary_tanh: +1 if ``x >= 0`` else -1 (an ap_int<2>), then binary_cast: into a
        1-bit unsigned integer result (hls4ml's XNOR ap_uint<1>) -1 becomes 0, else a plain cast."""
        res_t = steps[0][1]
        xnor = (res_t.width, res_t.signed, res_t.frac) == (1, False, 0)
        plus, minus = _cast_const(1, 0, res_t), 0 if xnor else _cast_const(-1, 0, res_t)
        y = self._select(layer, x, res_t, (plus, minus), where)
        with self._kernel(f"{' + '.join(group)}: binary_tanh", [x.name, y.name], [f"for j in range({y.size} * BLOCK):"]) as em:
            em.append(f"{y.name}[j] = {_const(y.dtype, plus)} if {x.name}[j] >= 0 else {_const(y.dtype, minus)}")
        return y

    def _bn_quantized_tanh(self, layer, x, steps, where, group):
        """hls4ml's BatchNormalizationQuantizedTanh (nnet_batchnorm.h): binary ``x >= t`` -> 1
        else 0; ternary ``x > hi`` -> 1, ``x <= lo`` -> -1, else 0; cast into the result type.
        Thresholds are brought onto x's grid (rounded so each comparison keeps its outcome) and
        clipped to x's interval widened by one, which changes no outcome."""
        res_t, t_t = steps[0][1], _type(layer, "threshold_type")
        shift = x.type.frac - t_t.frac

        def on_grid(field, ceil):
            values = [int(v) << shift if shift >= 0 else (-((-int(v)) >> -shift) if ceil else int(v) >> -shift) for v in layer[field]]
            return self._array(f"{layer['name']}_{field}", [min(max(v, x.lo - 1), x.hi + 1) for v in values], x.dtype)

        binary = layer["op"] == "bn_binary_tanh"
        values = [_cast_const(v, 0, res_t) for v in ((1, 0) if binary else (1, 0, -1))]
        y = self._select(layer, x, res_t, values, where)
        count = len(layer["threshold" if binary else "threshold_hi"])
        consts = [_const(y.dtype, v) for v in values]
        loops = [f"for j in range({y.size}):"]
        with self._kernel(f"{' + '.join(group)}: {layer['op']}", [x.name, y.name], loops) as em:
            if binary:
                em.append(f"t = {on_grid('threshold', True)}[j % {count}]")
                test = f"{consts[0]} if {x.name}[j * BLOCK + e] >= t else {consts[1]}"
            else:
                em.append(f"hi = {on_grid('threshold_hi', False)}[j % {count}]")
                em.append(f"lo = {on_grid('threshold_lo', False)}[j % {count}]")
                v = f"{x.name}[j * BLOCK + e]"
                test = f"{consts[0]} if {v} > hi else ({consts[2]} if {v} <= lo else {consts[1]})"
            with em.block("for e in range(BLOCK):"):
                em.append(f"{y.name}[j * BLOCK + e] = {test}")
        return y

    def _hard_activation(self, layer, x, steps, where, group):
        """nnet::hard_sigmoid / hard_tanh: ``s = slope * x + shift`` at full precision, clipped to
        [0, 1]; hard_tanh then ``2 s - 1``; cast into the result type."""
        res_t = steps[0][1]
        slope_t, shift_t = _type(layer, "slope_type"), _type(layer, "shift_type")
        frac = max(x.type.frac + slope_t.frac, shift_t.frac, 0)
        slope = int(layer["slope"]) << (frac - x.type.frac - slope_t.frac)
        shift = int(layer["shift"]) << (frac - shift_t.frac)
        if max(abs(x.lo), abs(x.hi)) * max(abs(slope), 1) + abs(shift) >= 1 << 61:
            msg = f"{where}: slope * x ({slope_t} times {x.type}) exceeds the emulator's int64 arithmetic"
            raise SpecError(msg)
        one = 1 << frac
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, *_full(res_t), where)
        with self._kernel(f"{' + '.join(group)}: {layer['op']}", [x.name, y.name], [f"for j in range({y.size} * BLOCK):"]) as em:
            em.append(f"s = np.int64({x.name}[j]) * {slope} + {shift}")
            em.append(f"s = {one} if s > {one} else (0 if s < 0 else s)")
            if layer["op"] == "hard_tanh":
                em.append(f"s = 2 * s - {one}")
            em.append(f"{y.name}[j] = cast(s, {frac}, {_codes(res_t)})")
        return y

    def _table_activation(self, layer, x, steps, where, group):
        """sigmoid / tanh as nnet_activation.h computes them: ``int data_round = x * N / R``
        (the ap_fixed product and division truncate toward zero, then to_int does, and the int
        keeps 32 bits), ``index = data_round + (R / 2) * N / R`` clipped to [0, N - 1], then the
        table entry cast into the result type (precomputed here: the kernel only looks up)."""
        n, span = int(layer["table_size"]), _TABLE_SPAN[layer["op"]]
        table_t, res_t = _type(layer, "table_type"), steps[0][1]
        entries = [_cast_const(v, table_t.frac, cast_target(res_t, table_t)) for v in layer["table"]]
        frac = x.type.frac
        factor, divisor = (n, span << frac) if frac >= 0 else (n << -frac, span)
        if max(abs(x.lo), abs(x.hi)) * factor >= 1 << 62:
            msg = f"{where}: x * table_size ({x.type} times {n}) exceeds the emulator's int64 arithmetic"
            raise SpecError(msg)
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, min(entries), max(entries), where)
        table = self._array(f"{layer['name']}_table", entries, y.dtype)
        half = (span // 2) * n // span
        with self._kernel(f"{' + '.join(group)}: {layer['op']} table", [x.name, y.name], [f"for j in range({y.size} * BLOCK):"]) as em:
            em.append(f"a = np.int64({x.name}[j]) * {factor}")
            em.append(f"d = a // {divisor} if a >= 0 else -((-a) // {divisor})")
            em.append(f"d = ((d + {_INT32 // 2}) & {_INT32 - 1}) - {_INT32 // 2}")  # int data_round
            em.append(f"k = ((d + {half} + {_INT32 // 2}) & {_INT32 - 1}) - {_INT32 // 2}")  # int index
            em.append(f"k = 0 if k < 0 else ({n - 1} if k > {n - 1} else k)")
            em.append(f"{y.name}[j] = {table}[k]")
        return y

    def _softmax(self, layer, x, steps, where, group):
        """nnet::softmax (stable / latency: nnet_activation.h, the same in io_stream) in int64,
        one event at a time: table lookups addressed by the top bits of the index type's
        two's-complement pattern, hls4ml's adder tree with a cast after every addition, then
        ``exp * inverse`` cast into the result type. argmax: :meth:`_softmax_argmax`."""
        if layer["implementation"] == "argmax":
            return self._softmax_argmax(layer, x, steps, where, group)
        res_t, acc_t, inv_t = steps[0][1], _type(layer, "accum_type"), _type(layer, "inv_table_type")
        stable = layer["implementation"] == "stable"
        exp_index_t = _type(layer, "norm_type") if stable else x.type
        inv_index_t = _type(layer, "inv_input_type")
        exp_bits = _table_bits(layer, "exp_table_size", exp_index_t, where)
        inv_bits = _table_bits(layer, "inv_table_size", inv_index_t, where)
        if acc_t.width + inv_t.width > 62:
            msg = f"{where}: softmax products of {acc_t} and {inv_t} exceed the emulator's int64 arithmetic"
            raise SpecError(msg)
        exp_t = _type(layer, "exp_table_type")
        exp = self._array(f"{layer['name']}_exp", [_cast_const(v, exp_t.frac, acc_t) for v in layer["exp_table"]], "i64")
        inv = self._array(f"{layer['name']}_inv", layer["inv_table"], "i64")
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, *_full(res_t), where)
        n = x.size
        with self._kernel(f"{' + '.join(group)}: softmax", [x.name, y.name], ["for e in range(BLOCK):"]) as em:
            em.extend(f"_x{i} = np.int64({x.name}[{_at('', i)}])" for i in range(n))
            if stable:
                em.append("_m = _x0")  # Op_max's tree picks the largest value, whatever the order
                em.extend(f"_m = _x{i} if _x{i} > _m else _m" for i in range(1, n))
                em.extend(f"_x{i} = cast(_m - _x{i}, {x.type.frac}, {_codes(exp_index_t)})" for i in range(n))
            shift, mask = exp_index_t.width - exp_bits, (1 << exp_index_t.width) - 1
            em.extend(f"_e{i} = {exp}[(_x{i} & {mask}) >> {shift}]" for i in range(n))
            total = _adder_tree(em, [f"_e{i}" for i in range(n)], f"{acc_t.frac}, {_codes(acc_t)}")
            em.append(f"_s = cast({total}, {acc_t.frac}, {_codes(inv_index_t)})")
            shift, mask = inv_index_t.width - inv_bits, (1 << inv_index_t.width) - 1
            em.append(f"_v = {inv}[(_s & {mask}) >> {shift}]")
            for i in range(n):
                em.append(f"{y.name}[{_at('', i)}] = cast(_e{i} * _v, {acc_t.frac + inv_t.frac}, {_codes(res_t)})")
        return y

    def _softmax_argmax(self, layer, x, steps, where, group):
        """softmax_argmax: the result type's 1 at the first maximum (a later input must be
        strictly larger to take it), its 0 elsewhere (both cast from int as the C++ does)."""
        res_t = steps[0][1]
        one, zero = _cast_const(1, 0, res_t), _cast_const(0, 0, res_t)
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, min(one, zero), max(one, zero), where)
        with self._kernel(f"{' + '.join(group)}: softmax argmax", [x.name, y.name], ["for e in range(BLOCK):"]) as em:
            em.extend([f"_m = {x.name}[e]", "_k = 0"])
            for i in range(1, x.size):
                em.extend([f"_v = {x.name}[{_at('', i)}]", f"_k = {i} if _v > _m else _k", "_m = _v if _v > _m else _m"])
            for i in range(x.size):
                em.append(f"{y.name}[{_at('', i)}] = {_const(y.dtype, one)} if _k == {i} else {_const(y.dtype, zero)}")
        return y

    def _pool(self, layer, x, steps, where, group):
        """hls4ml's pooling2d_cl, stepwise in int64 (max: compare in the input type; average:
        sum in accum_t with its overflow, then truncating division by the unpadded count)."""
        ph, pw = (int(v) for v in layer["pool"])
        sh, sw = (int(v) for v in layer["strides"])
        top, _, left, _ = (int(v) for v in layer["pad"])
        h, w, c = x.shape
        oh_n, ow_n, _ = (int(v) for v in layer["output_shape"])
        # hls4ml infers a max pool's accum_t as its input type; a spec may omit it
        acc_t = _type(layer, "accum_type") if "accum_type" in layer else x.type
        res_t = steps[0][1]
        is_max = layer["op"] == "max_pool2d"
        wide = max(acc_t.frac, x.type.frac)  # ap_fixed += adds at full precision
        # pad_val<T, Max>: only the top bit set (the most negative value if T is signed)
        pad = -(1 << (x.type.width - 1)) if x.type.signed else 1 << (x.type.width - 1)
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, *_full(res_t), where)
        loops = [f"for oh in range({oh_n}):", f"for ow in range({ow_n}):", f"for ch in range({c}):", "for e in range(BLOCK):"]
        with self._kernel(f"{layer['name']}: {layer['op']}", [x.name, y.name], loops) as em:
            em.extend(["m = np.int64(0)", "count = 0"])
            for a in range(ph):
                for b in range(pw):
                    row, col = f"(oh * {sh} + {a} - {top})", f"(ow * {sw} + {b} - {left})"
                    inside = f"(0 <= {row} < {h}) and (0 <= {col} < {w})"
                    em.append(f"p = np.int64({x.name}[(({row} * {w} + {col}) * {c} + ch) * BLOCK + e]) if {inside} else np.int64({pad})")
                    if is_max:
                        em.append("m = p" if (a, b) == (0, 0) else "m = p if p > m else m")
                    else:
                        summed = f"(m << {wide - acc_t.frac}) + (p << {wide - x.type.frac})"
                        em.append(f"m = cast({summed}, {wide}, {_codes(cast_target(acc_t, Expr.sum(acc_t, x.type)))}) if {inside} else m")
                        em.append(f"count += 1 if {inside} else 0")
            if is_max:
                em.append(f"m = cast(m, {x.type.frac}, {_codes(cast_target(acc_t, x.type))})")
            else:
                # ap_fixed /= unsigned: integer division of the mantissa, truncating toward zero
                em.append("m = -((-m) // count) if m < 0 else m // count")
            em.append(f"m = cast(m, {acc_t.frac}, {_codes(cast_target(res_t, acc_t))})")
            em.append(f"{y.name}[((oh * {ow_n} + ow) * {c} + ch) * BLOCK + e] = m")
        return y

    def _scale(self, layer, x, steps, where, group):
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
                return self._scale_shifted(layer, x, steps, where, group, signs, exponents, half)
            # every shift is lossless: the product is x * (+-2**e) exactly, a plain multiplication
            s_frac = max(0, -min(exponents))
            scales = [sign << (e + s_frac) for sign, e in zip(signs, exponents)]
        frac = max(x.type.frac + s_frac, b_t.frac)
        scales = [v << (frac - x.type.frac - s_frac) for v in scales]
        biases = [int(v) << (frac - b_t.frac) for v in layer["bias"]]
        channels = len(scales)
        bounds = [(b + min(s * x.lo, s * x.hi), b + max(s * x.lo, s * x.hi)) for s, b in zip(scales, biases)]
        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
        largest = max(abs(v) for v in scales) * max(abs(x.lo), abs(x.hi))
        dt = _dtype_for(min(lo, -largest), max(hi, largest), where)
        dt = "f64" if x.dtype == "f64" else dt
        acc = self._buffer(f"{layer['name']}_acc", x.size, dt)
        title = " + ".join(group)
        loops = [f"for i in range({x.size // channels}):", "for e in range(BLOCK):"]
        with self._kernel(f"{title}: scale and bias", [x.name, acc], loops) as em:
            for ch in range(channels):
                index = f"(i * {channels} + {ch}) * BLOCK + e"
                em.append(f"{acc}[{index}] = {_const(dt, scales[ch])} * {x.name}[{index}] + {_const(dt, biases[ch])}")
        src = Expr.sum(Expr.product(x.type, s_t) if product == "mult" else Expr(x.type.integer + max(exponents), True, frac), b_t)
        return self._cast_kernel(f"{title}: result casts", f"{layer['name']}_out", acc, Expr(src.integer, src.signed, frac), lo, hi, steps, layer["output_shape"], where, dt)

    def _scale_shifted(self, layer, x, steps, where, group, signs, exponents, half):
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
        acc = self._buffer(f"{layer['name']}_acc", x.size, "i64")
        title = " + ".join(group)
        loops = [f"for i in range({x.size // channels}):", "for e in range(BLOCK):"]
        with self._kernel(f"{title}: shift and bias", [x.name, acc], loops) as em:
            for ch in range(channels):
                index = f"(i * {channels} + {ch}) * BLOCK + e"
                em.append(f"r = cast(np.int64({x.name}[{index}]), {x.type.frac}, {_codes(r_t)})")
                em.append(f"y = cast(r, {r_t.frac - exponents[ch]}, {_codes(r_t)})")
                if signs[ch] < 0:
                    em.append(f"y = cast(-y, {r_t.frac}, {_codes(r_t)})")
                em.append(f"{acc}[{index}] = (y << {up}) + np.int64({biases[ch]})")
        lo = (r_t.min_mantissa << up) + min(biases)
        hi = (r_t.max_mantissa << up) + max(biases)
        src = Expr.sum(r_t, b_t)
        return self._cast_kernel(f"{title}: result casts", f"{layer['name']}_out", acc, Expr(src.integer, True, frac), lo, hi, steps, layer["output_shape"], where, "i64")


    # -- 1-D layers and global pools: hls4ml's 1-D kernels are its 2-D ones on one row ----
    def _one_row(self, layer, x, steps, where, group):
        """conv1d, max/avg_pool1d, zero_pad1d and the global pools through their 2-D emitters:
        hls4ml's 1-D templates (conv_1d_latency_cl, pooling1d_cl, zeropad1d_cl,
        global_pooling1d_cl / 2d_cl) compute what the 2-D ones compute on a [1, w, c] image
        (same products, accumulation order and casts; a global pool is one window over all)."""
        flat = as_2d(layer)
        view = Tensor(x.name, tuple(flat["input_shape"]), x.type, x.lo, x.hi)
        y = _OP_EMITTERS[flat["op"]](self, flat, view, steps, where, group)
        return Tensor(y.name, tuple(layer["output_shape"]), y.type, y.lo, y.hi)

    def _reshape(self, layer, x, steps, where, group):
        """reshape: hls4ml keeps the row-major order, so the buffer is reused as it is; io_stream's
        Repack copies it into the result type (a cast where the types differ)."""
        res_t = steps[0][1]
        if res_t == x.type:
            return Tensor(x.name, tuple(layer["output_shape"]), x.type, x.lo, x.hi, x.fracs)
        return self._cast_kernel(f"{layer['name']}: cast", f"{layer['name']}_out", x.name, x.type, x.lo, x.hi, [("cast", res_t)], layer["output_shape"], where, x.dtype)

    def _quantize(self, layer, x, steps, where, group):
        """quantize (hls4ml's FixedPointQuantizer): element j cast into its own type, then into
        the result type; an element without bits is 0. Up to ``ELEMENT_TYPE_LIMIT`` distinct
        element types: one loop per type over its elements (float-domain casts where exact);
        more: one int64 loop over all elements reading each one's type from arrays, so numba's
        compile time does not grow with the number of types."""
        res_t = steps[0][1]
        spec_types = layer["element_types"]
        types = element_types(*(spec_types[key] for key in ("k", "i", "f", "rounding", "overflow")))
        groups = {}
        for j, t in enumerate(types):
            groups.setdefault(t, []).append(j)
        title = f"{' + '.join(group)}: quantize"
        if len(groups) > ELEMENT_TYPE_LIMIT:
            return self._quantize_looped(layer, x, res_t, types, title, where)
        loops, lo, hi = [], None, None
        for t, elements in groups.items():
            body, value, vlo, vhi = self._element_cast(x, t, res_t)
            loops.append((self._array(f"{layer['name']}_elements", elements, "i64"), body, value))
            lo, hi = (vlo, vhi) if lo is None else (min(lo, vlo), max(hi, vhi))
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, lo, hi, where)
        y.fracs = _element_fracs(types, res_t)
        with self._kernel(title, [x.name, y.name]) as em:
            for elements, body, value in loops:
                with em.block(f"for j in {elements}:"), em.block("for e in range(BLOCK):"):
                    em.extend(body)
                    em.append(f"{y.name}[j * BLOCK + e] = {value}")
        return y

    def _quantize_looped(self, layer, x, res_t, types, title, where):
        """The int64 loop of :meth:`_quantize`: width, frac and signedness per element from arrays."""
        bounds = [(0, 0) if t is None else _cast_interval(*_cast_interval(x.lo, x.hi, x.type.frac, t)[:2], t.frac, res_t)[:2] for t in types]
        y = self._tensor(f"{layer['name']}_out", layer["output_shape"], res_t, min(b[0] for b in bounds), max(b[1] for b in bounds), where)
        y.fracs = _element_fracs(types, res_t)
        stem = layer["name"]
        width = self._array(f"{stem}_width", [0 if t is None else t.width for t in types], "i64")
        frac = self._array(f"{stem}_frac", [0 if t is None else t.frac for t in types], "i64")
        signed = self._array(f"{stem}_signed", [0 if t is None else int(t.signed) for t in types], "i64")
        modes = layer["element_types"]
        codes = f"{ROUNDING_CODES[modes['rounding']]}, {OVERFLOW_CODES[modes['overflow']]}, 0"
        with self._kernel(title, [x.name, y.name], [f"for j in range({y.size}):"]) as em:
            em.append(f"w, p, c = {width}[j], {frac}[j], {signed}[j] != 0")
            with em.block("for e in range(BLOCK):"):
                em.append(f"v = np.int64({x.name}[j * BLOCK + e])")
                em.append(f"q = cast(v, {x.type.frac}, w, p, c, {codes}) if w > 0 else np.int64(0)")
                em.append(f"{y.name}[j * BLOCK + e] = cast(q, p, {_codes(res_t)})")
        return y

    def _element_cast(self, x, t, res_t):
        """Lines computing one element of type ``t`` (None: no bits, so 0) cast into ``res_t``
        from ``x[j * BLOCK + e]``: ``(lines, value, lo, hi)``, in floats where exact."""
        if t is None:
            return [], "0", 0, 0
        steps = [("cast", t), ("cast", res_t)]
        if x.dtype != "i64":
            body, v = _Emitter(), self.names("v")
            body.append(f"{v} = {x.name}[j * BLOCK + e]")
            res = self._apply_steps(body, v, x.type, x.lo, x.hi, steps, x.dtype, True)
            if res is not None:
                return body.lines, *res
        body, v = _Emitter(), self.names("v")
        body.append(f"{v} = np.int64({x.name}[j * BLOCK + e])")
        return body.lines, *self._apply_steps(body, v, x.type, x.lo, x.hi, steps, "i64", False)

    def _gather(self, layer, x, index, res_t, where):
        """A tensor whose element ``o`` is ``x[index[o]]`` cast into ``res_t`` (a copy where the types agree)."""
        g = self._tensor(f"{layer['name']}_gathered", layer["output_shape"], x.type, x.lo, x.hi, where)
        table = self._array(f"{layer['name']}_index", index, "i64")
        with self._kernel(f"{layer['name']}: {layer['op']}", [x.name, g.name], [f"for o in range({g.size}):"]) as em:
            em.append(f"base = {table}[o] * BLOCK")
            with em.block("for e in range(BLOCK):"):
                em.append(f"{g.name}[o * BLOCK + e] = {x.name}[base + e]")
        if res_t == x.type:
            return g
        return self._cast_kernel(f"{layer['name']}: cast", f"{layer['name']}_out", g.name, g.type, g.lo, g.hi, [("cast", res_t)], layer["output_shape"], where, g.dtype)

    def _upsample(self, layer, x, steps, where, group):
        """nnet::resize_nearest (:func:`upsample_index`); the resized array has the input's
        type (any result type is a cast of it)."""
        return self._gather(layer, x, upsample_index(x.shape, layer["output_shape"], where), steps[0][1], where)

    def _concatenate(self, layer, xs, steps, where, group):
        """nnet::concatenate{1,2,3}d: each input's elements cast into the result type, placed
        side by side along ``axis``."""
        res_t, axis = steps[0][1], int(layer["axis"])
        out_shape = tuple(layer["output_shape"])
        positions = np.arange(int(np.prod(out_shape))).reshape(out_shape)
        parts = np.split(positions, [xs[0].shape[axis]], axis=axis)
        casts = []
        for j, x in enumerate(xs):
            if x.type == res_t:
                casts.append(x)
                continue
            stem = f"{layer['name']}_in{j}"
            casts.append(self._cast_kernel(f"{layer['name']}: cast input {j}", stem, x.name, x.type, x.lo, x.hi, [("cast", res_t)], x.shape, where, x.dtype))
        y = self._tensor(f"{layer['name']}_out", out_shape, res_t, min(t.lo for t in casts), max(t.hi for t in casts), where)
        for j, (t, part) in enumerate(zip(casts, parts)):
            table = self._array(f"{layer['name']}_place{j}", part.reshape(-1).tolist(), "i64")
            with self._kernel(f"{layer['name']}: concatenate input {j}", [t.name, y.name], [f"for i in range({t.size}):"]) as em:
                em.append(f"base = {table}[i] * BLOCK")
                with em.block("for e in range(BLOCK):"):
                    em.append(f"{y.name}[base + e] = {t.name}[i * BLOCK + e]")
        return y

    def _merge(self, layer, xs, steps, where, group):
        """nnet_merge.h's elementwise merges: the exact ap_fixed sum, difference or product of
        the two inputs (average: the sum times ap_ufixed<1,0>(0.5), exact), or the larger /
        smaller one (cast(a > b ? a : b) is cast(max(a, b))), then the cast into the result type."""
        a, b = xs
        op = layer["op"]
        if any(kind == "cast" and t.int_kind for kind, t in steps):
            msg = f"{where}: an {steps[0][1]} result of {op} is not emulated (an ap_int converts by the C++ type of the merged expression, not checked against the C-simulation)"
            raise SpecError(msg)
        if op == "multiply":
            ends = [p * q for p in (a.lo, a.hi) for q in (b.lo, b.hi)]
            sa = sb = 0
        else:
            common = max(a.type.frac, b.type.frac)
            sa, sb = common - a.type.frac, common - b.type.frac
            sign = -1 if op == "subtract" else 1
            ends = [(p << sa) + sign * (q << sb) for p in (a.lo, a.hi) for q in (b.lo, b.hi)]
            if op in ("maximum", "minimum"):
                ends = [v << s for t, s in ((a, sa), (b, sb)) for v in (t.lo, t.hi)]
        lo, hi = min(ends), max(ends)
        bound = max(abs(lo), abs(hi), *(abs(v) << s for t, s in ((a, sa), (b, sb)) for v in (t.lo, t.hi)))
        dt = "i64" if bound > _EXACT_LIMIT["f64"] else _dtype_for(-bound, bound, where)
        if dt == "i64" and bound >= 1 << 62:
            msg = f"{where}: {op} of {a.type} and {b.type} exceeds the emulator's int64 arithmetic"
            raise SpecError(msg)
        acc = self._buffer(f"{layer['name']}_acc", a.size, dt)
        title = " + ".join(group)

        def operand(t, shift):
            # in dt: an f32 input times an f32 input would round a product that dt holds exactly
            v = f"{dt}({t.name}[j])" if dt != "i64" else f"np.int64({t.name}[j])"
            if not shift:
                return v
            return f"{v} * {_const(dt, 1 << shift)}" if dt != "i64" else f"({v} << {shift})"

        p, q = operand(a, sa), operand(b, sb)
        value = {"add": f"{p} + {q}", "subtract": f"{p} - {q}", "average": f"{p} + {q}", "multiply": f"{p} * {q}",
                 "maximum": f"{p} if {p} > {q} else {q}", "minimum": f"{p} if {p} < {q} else {q}"}[op]  # fmt: skip
        args = list(dict.fromkeys([a.name, b.name, acc]))  # a tensor merged with itself is one argument
        with self._kernel(f"{title}: {op}", args, [f"for j in range({a.size} * BLOCK):"]) as em:
            em.append(f"{acc}[j] = {value}")
        return self._cast_kernel(f"{title}: result casts", f"{layer['name']}_out", acc, merge_expr(op, a.type, b.type), lo, hi, steps,
                                 layer["output_shape"], where, dt)


def merge_expr(op, a, b) -> Expr:
    """The C++ type of the expression nnet_merge.h casts into the result: a + b, a - b (signed),
    a * b, (a + b) * ap_ufixed<1,0>(0.5) (the sum's mantissa read one bit finer: halved), or
    the common type of a and b that ``a > b ? a : b`` reads."""
    if op == "multiply":
        return Expr.product(a, b)
    total = Expr.sum(a, b)
    frac = total.frac + (1 if op == "average" else 0)
    if op in ("maximum", "minimum"):
        return Expr(total.integer - 1, total.signed, frac)
    return Expr(total.integer, total.signed or op == "subtract", frac)


def upsample_index(in_shape, out_shape, where) -> list:
    """The input element (row-major index) each output element of nnet::resize_nearest
    (nnet_image.h) reads: output pixel (i, j) reads input row ``(i * y_ratio) >> 16`` and column
    ``(j * x_ratio) >> 16``, ratio = (in << 16) / out + 1 in int; a 1-D shape is one row."""
    shape = tuple(in_shape) if len(in_shape) == 3 else (1, *in_shape)
    out = tuple(out_shape) if len(out_shape) == 3 else (1, *out_shape)
    (h, w, c), (oh, ow, _) = shape, out
    y_ratio, x_ratio = (h << 16) // oh + 1, (w << 16) // ow + 1
    if max((oh - 1) * y_ratio, (ow - 1) * x_ratio) >= 1 << 31:
        msg = f"{where}: an upsampled size of {oh}x{ow} overflows hls4ml's int index arithmetic"
        raise SpecError(msg)
    return [(((i * y_ratio) >> 16) * w + ((j * x_ratio) >> 16)) * c + k for i in range(oh) for j in range(ow) for k in range(c)]


_INPUT_KEY = object()  # the network input among the layer names: a layer without "inputs" reads it first
# input range R that a table activation's index spans: x * table_size / R (nnet_activation.h)
_TABLE_SPAN = {"sigmoid": 16, "tanh": 8}
_INT32 = 1 << 32

# op -> its emitter; the keys are the spec's op list (l0emu.fixedpoint.spec.OPS), checked by the tests
_OP_EMITTERS = {
    "leaky_relu": _Generator._leaky_relu,
    "binary_tanh": _Generator._binary_tanh,
    "bn_binary_tanh": _Generator._bn_quantized_tanh,
    "bn_ternary_tanh": _Generator._bn_quantized_tanh,
    "hard_sigmoid": _Generator._hard_activation,
    "hard_tanh": _Generator._hard_activation,
    "sigmoid": _Generator._table_activation,
    "tanh": _Generator._table_activation,
    "softmax": _Generator._softmax,
    "conv2d": _Generator._dot,
    "dense": _Generator._dot,
    "relu": _Generator._elementwise,
    "linear": _Generator._elementwise,
    "max_pool2d": _Generator._pool,
    "avg_pool2d": _Generator._pool,
    "scale": _Generator._scale,
    "flatten": _Generator._flatten,
    "zero_pad2d": _Generator._zero_pad,
    "conv1d": _Generator._one_row,
    "max_pool1d": _Generator._one_row,
    "avg_pool1d": _Generator._one_row,
    "zero_pad1d": _Generator._one_row,
    "global_max_pool1d": _Generator._one_row,
    "global_avg_pool1d": _Generator._one_row,
    "global_max_pool2d": _Generator._one_row,
    "global_avg_pool2d": _Generator._one_row,
    "reshape": _Generator._reshape,
    "upsample1d": _Generator._upsample,
    "upsample2d": _Generator._upsample,
    "concatenate": _Generator._concatenate,
    "quantize": _Generator._quantize,
    **{op: _Generator._merge for op in ("add", "subtract", "multiply", "average", "maximum", "minimum")},
}
# ops whose following relu/linear layers fold into their result casts
_FUSING = ("conv2d", "dense", "scale", "conv1d", "add", "subtract", "multiply", "average", "maximum", "minimum")
# names the generated module defines or imports: buffers must not shadow them
_RESERVED = {"np", "njit", "f32", "f64", "cast", "cast_mantissa", "BLOCK", "network", "x", "table", "out", "lookup", "trace",
             "n", "start", "m", "e", "i", "j", "o", "r", "q", "s", "p", "c", "v", "y", "a", "d", "k", "w", "base", "count", "oh", "ow", "ch",
             "t", "hi", "lo"}


_NP = {"f32": "float32", "f64": "float64", "i64": "int64"}


def _identifier(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def _codes(t: ApType) -> str:
    if t.int_kind:  # its conversion depends on the source: callers pass cast_target(t, source)
        msg = f"a cast into {t} here is not emulated (an ap_int/ap_uint converts values by the source's type)"
        raise SpecError(msg)
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

def as_2d(layer) -> dict:
    """The 2-D layer hls4ml's 1-D kernel (or global pool) computes: one row, the whole input as
    a global pool's window."""
    op, shape = layer["op"], layer["input_shape"]
    row = [1, *shape] if len(shape) == 2 else list(shape)
    out = [1, *layer["output_shape"]] if op in ("conv1d", "max_pool1d", "avg_pool1d", "zero_pad1d") else [1, 1, shape[-1]]
    flat = {**layer, "input_shape": row, "output_shape": out}
    if op.startswith("global_"):
        kind = "max_pool2d" if "max" in op else "avg_pool2d"
        return {**flat, "op": kind, "pool": row[:2], "strides": row[:2], "pad": [0, 0, 0, 0]}
    pad = [0, 0, *layer["pad"]]
    if op == "zero_pad1d":
        return {**flat, "op": "zero_pad2d", "pad": pad}
    flat.update(strides=[1, *layer["strides"]], pad=pad)
    if op == "conv1d":
        return {**flat, "op": "conv2d", "kernel": [1, *layer["kernel"]], "weights_shape": [1, *layer["weights_shape"]]}
    return {**flat, "op": op.replace("1d", "2d"), "pool": [1, *layer["pool"]]}


def _sources(layers, k) -> list:
    """The names of the tensors ``layers[k]`` reads: its ``inputs``, else the previous layer's
    (the first network input, under ``_INPUT_KEY``, for the first layer)."""
    if "inputs" in layers[k]:
        return list(layers[k]["inputs"])
    return [layers[k - 1]["name"] if k else _INPUT_KEY]


def _read_twice(layers) -> set:
    """Names of tensors more than one layer reads (their values must outlive the first reader)."""
    counts = {}
    for k in range(len(layers)):
        for name in _sources(layers, k):
            counts[name] = counts.get(name, 0) + 1
    return {name for name, count in counts.items() if count > 1}


def _xnor_data_products(product, w, wt: ApType, x_t: ApType, where):
    """both_binary / data_binary (nnet_mult.h) on XNOR data, ``ap_uint<1>`` holding 0 for -1:
    both_binary returns ``a == w`` (0 or 1), data_binary ``a == 0 ? -w : w``; as
    ``offset + coefficient * a``: both_binary w = 1 -> a, w = 0 -> 1 - a; data_binary -w + 2 w a."""
    if (x_t.width, x_t.signed, x_t.frac) != (1, False, 0):
        msg = f"{where}: product {product!r} takes hls4ml's XNOR data (ap_uint<1>), got input type {x_t}"
        raise SpecError(msg)
    if product == "data_binary":
        return [2 * v for v in w], [-v for v in w], wt.frac
    if (wt.width, wt.signed, wt.frac) != (1, False, 0):
        msg = f"{where}: product 'both_binary' takes XNOR weights (ap_uint<1>), got weight type {wt}"
        raise SpecError(msg)
    return [1 if v else -1 for v in w], [0 if v else 1 for v in w], 0


def _xnor_result_steps(n_in: int, acc_t: ApType, where) -> list:
    """nnet_mult.h's cast for XNOR data and weights: ``ap_int<ceillog2(n_in) + 2>(acc * 2 - n_in)``,
    the ap_fixed -> ap_int conversion truncating toward zero and wrapping (ap_fixed_base::to_ap_int_base),
    before the usual cast into the result type."""
    if acc_t.frac < 0:
        msg = f"{where}: an XNOR layer's accumulator {acc_t} has no unit bit for acc * 2 - n_in"
        raise SpecError(msg)
    return [("xnor", n_in << acc_t.frac), ("cast", xnor_cast_type(n_in))]


def _table_bits(layer, field, index_t: ApType, where) -> int:
    """log2 of a softmax table's size: the top bits of ``index_t`` that address it."""
    bits = int(layer[field]).bit_length() - 1
    if bits > index_t.width:
        msg = f"{where}: {field} {layer[field]} needs {bits} address bits, more than {index_t} has"
        raise SpecError(msg)
    return bits


def _adder_tree(em, terms: list, cast_args: str) -> str:
    """nnet::reduce with Op_add<accum_t>: the first pow2(floorlog2(N - 1)) terms reduced, the
    rest reduced, the two added and cast into accum_t; emits the sums, returns the total's name."""
    if len(terms) == 1:
        return terms[0]
    left = 1 << ((len(terms) - 1).bit_length() - 1)
    a, b = _adder_tree(em, terms[:left], cast_args), _adder_tree(em, terms[left:], cast_args)
    name = f"_t{len(em.lines)}"
    em.append(f"{name} = cast({a} + {b}, {cast_args})")
    return name


def resource_order(n_in: int, n_out: int, rf: int, where) -> list:
    """The order in which hls4ml's Resource kernel adds the products into each output: input
    indices, the same for every output. It runs the index arithmetic of nnet_dense_resource.h
    (``dense_resource_rf_leq_nin`` for rf <= n_in, ``_rf_gt_nin_rem0`` for rf a multiple of n_in;
    Vitis' ``conv_2d_resource_cl`` and the io_stream kernels share them) on the transposed
    weights ``w[o * n_in + i]``, and checks that each output reads each of its inputs once."""
    seen = [[] for _ in range(n_out)]
    block = -(-(n_in * n_out) // rf)
    if rf <= n_in:
        multscale = block // n_out
        for ir in range(rf):
            w_index, in_index, out_index, step = ir, ir, 0, 0
            for _ in range(block):
                seen[out_index].append((w_index, in_index))
                w_index, in_index = w_index + rf, in_index + rf
                in_index = ir if in_index >= n_in else in_index
                out_index, step = (out_index + 1, 0) if step + 1 >= multscale else (out_index, step + 1)
    elif rf % n_in == 0:
        outscale = rf // n_in
        for ir in range(rf):
            w_index, out_index = ir, ir // n_in
            for _ in range(block):
                seen[out_index].append((w_index, ir % n_in))
                w_index += rf
                if w_index >= n_in * n_out:
                    break
                out_index += outscale
    else:
        msg = f"{where}: reuse factor {rf} for {n_in} x {n_out} takes hls4ml's dense_resource_rf_gt_nin, which the emulator does not model"
        raise SpecError(msg)
    order = [i for _, i in seen[0]]
    for o, terms in enumerate(seen):
        if [i for _, i in terms] != order or any(w != o * n_in + i for w, i in terms) or sorted(order) != list(range(n_in)):
            msg = f"{where}: hls4ml's Resource kernel with reuse factor {rf} does not compute a plain {n_in} x {n_out} product"
            raise SpecError(msg)
    return order


def _reorder(plan: _SumPlan, geometry: _Geometry, order: list) -> None:
    """Put the taps (and the weight rows) in the order the products are added."""
    n_out = geometry.n_out

    def rows(values):
        return [values[i * n_out + o] for i in order for o in range(n_out)]

    geometry.taps = [geometry.taps[i] for i in order]
    plan.weights, plan.offsets = rows(plan.weights), rows(plan.offsets)
    if plan.shifts:
        plan.shifts = (rows(plan.shifts[0]), rows(plan.shifts[1]), plan.shifts[2])


def _shifted_product(operand: str, x_frac: int, sign, exponent: str, r_t: ApType, acc_codes: str) -> list:
    """Lines computing ``p``, weight_exponential's product cast into accum_t: ``r_T(x) << e`` in r_T
    (a shift moves the binary point; the cast back into r_T drops and wraps bits as the shift does),
    negated in r_T for a negative sign. ``sign``: +-1 or the expression of one."""
    r_codes = _codes(r_t)
    lines = [f"p = cast({operand}, {x_frac}, {r_codes})", f"p = cast(p, {r_t.frac} - {exponent}, {r_codes})"]
    if sign != 1:
        lines.append(f"p = cast(-p, {r_t.frac}, {r_codes})" if sign == -1 else f"p = cast(-p, {r_t.frac}, {r_codes}) if {sign} < 0 else p")
    return [*lines, f"p = cast(p, {r_t.frac}, {acc_codes})"]


def _int_product_fits(x_t: ApType, where) -> None:
    """Stepwise products are int64: input mantissas (< 2**53, as stored) times weights must fit."""
    if x_t.width > 53:
        msg = f"{where}: the stepwise int64 path needs input widths up to 53 bits, got {x_t}"
        raise SpecError(msg)


def generate(spec: dict, *, fuse: bool = True, block: int = BLOCK):
    """Source of the kernel module for ``spec``: per-layer kernels and the driver
    ``network(x, table, out, lookup, trace)``.

    Returns ``(source, heads, traced)``; ``heads`` lists (layer name, Tensor) for each layer
    the outputs read, whose tensors ``out`` holds side by side in that order
    (:func:`l0emu.fixedpoint.spec.output_layout`); ``traced`` lists (layer name, Tensor) for every layer
    (fused layers share the tensor of their group's last layer). With ``fuse=False`` no layer
    is fused and ``trace`` receives every layer's mantissas.
    """
    gen = _Generator(spec, fuse)
    heads = gen.build()
    n_in = sum(t.size for t in gen.inputs)
    side_by_side = " (the inputs side by side)" if len(gen.inputs) > 1 else ""  # one input: the kernel of before, byte for byte
    lines = [
        f'"""Emulator kernels of network {spec["name"]!r}, generated by l0emu.fixedpoint._codegen from its spec."""',
        "",
        "import numpy as np",
        "from numba import njit",
        "from numpy import float32 as f32, float64 as f64",
        "",
        "from l0emu.fixedpoint.casts import cast_mantissa",
        "",
        f"BLOCK = {block}",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def cast(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits):",
        '    """l0emu.fixedpoint.casts.cast_mantissa behind one call, so numba types its body once per module."""',
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
        f'    """x: (n, {n_in}) input mantissas{side_by_side}, or uint8 codes whose mantissas are table[code]."""',
        "    n = x.shape[0]",
    ]
    lines += [f"    {name} = np.zeros({size} * BLOCK, np.{dtype})" for name, size, dtype in gen.buffers]
    lines += [
        "    for start in range(0, n, BLOCK):",
        "        m = min(BLOCK, n - start)",
    ]
    first = 0
    for t in gen.inputs:
        column = f"{first} + i" if first else "i"
        lines += [
            "        for e in range(m):",
            f"            for i in range({t.size}):",
            f"                {t.name}[i * BLOCK + e] = table[x[start + e, {column}]] if lookup else x[start + e, {column}]",
        ]
        first += t.size
    lines += ["        " + call for call in gen.calls]
    column = 0
    for _, y in heads:
        lines += [
            "        for e in range(m):",
            f"            for j in range({y.size}):",
            f"                out[start + e, {f'{column} + j' if column else 'j'}] = np.int64({y.name}[j * BLOCK + e])",
        ]
        column += y.size
    if not fuse:
        for k, (_, t) in enumerate(gen.traced):
            lines += [
                "        for e in range(m):",
                f"            for j in range({t.size}):",
                f"                trace[{k}][start + e, j] = np.float64({t.name}[j * BLOCK + e])",
            ]
    return "\n".join(lines) + "\n", heads, gen.traced
