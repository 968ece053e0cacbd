"""Wide dense and convolution layers as BLAS matrix products over whole batches of events, where that is exact.

The generated kernel of :mod:`l0emu.fixedpoint._codegen` computes each output of each event
as its own sum, looping over a block of 32 events; for wide dense layers (a teacher, a
100-unit MLP) that code is memory bound and runs at a tenth of a core's multiply-add rate.
A matrix product over thousands of events at once, (events x inputs) @ (inputs x outputs)
in double precision (single where the sums stay below 2**24), runs near that rate, and it is
exact where :func:`_codegen`'s own interval analysis proves the layer's sum exact (``_SumPlan.exact``: every product and every
partial sum fits the accumulator, so hls4ml's per-step casts are all the identity, or the
accumulator wraps around and the exact sum is wrapped once) and every
partial sum, in any order, stays below 2**53 (``_SumPlan.dt`` is ``f32`` or ``f64``): then
any summation order, BLAS's included, gives the same integer.

A network is cut into stages, in spec order:

- a *matrix* stage: one dense layer with at least :data:`MIN_WEIGHTS` weights whose sum is
  exact as above; ``numpy.matmul`` does the products and sums, and a generated numba loop adds
  the biases and applies the layer's result casts and the relu/linear layers fused after it,
  with the very cast lines :mod:`_codegen` writes for its own epilogues;
- a *convolution* stage: the same for a conv2d layer of at least :data:`MIN_CONV_WORK`
  multiply-adds per event, each output pixel's window first copied into a row (im2col);
- a *max-pool* stage: a max pool whose windows tile its input and whose types are its input's;
- a *kernel* stage: every other run of layers, as the spec of that run alone (its input the
  tensor before it) through the unchanged code generator.

Stages pass int64-valued float64 mantissas to each other. Networks with several heads, or
layers that read anything but the layer before them, and networks with no matrix stage keep
the single generated kernel.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from numba import njit

from l0emu.fixedpoint import _codegen
from l0emu.fixedpoint.aptypes import parse_type
from l0emu.fixedpoint.spec import chain_spec

__all__ = ["MIN_WEIGHTS", "Staged", "plan_stages"]

# Chosen on one-core runs during development (docs/bench/emulator.md): dense layers from 16x16
# weights up ran faster as matrix products once they held most of the network's work, while
# cutting a network whose work is mostly convolutions (the shipped student) into stages was
# slower: its one kernel keeps a block of events in cache through every layer. So a network is
# staged only where its matrix-stage layers hold at least MIN_SHARE of its multiply-adds.
MIN_WEIGHTS = 256
MIN_SHARE = 0.5
# A convolution is a matrix stage from this many multiply-adds per event: the teacher's (110k
# to 187k) ran 1.9x faster so; the shipped student's (at most 19k) and a conv jet tagger's (7k)
# ran faster in the kernel's unrolled sums, literal weights over blocks of 32 events.
MIN_CONV_WORK = 1 << 16
# events per matrix product: the activations of the widest layers stay in the core's cache
CHUNK = 2048
CHUNK_ELEMENTS = 1 << 16  # and at most this many values in one stage's output (512 KiB of float64)
# elements of one im2col block of a convolution stage (1 MiB of float64: within a core's L2)
IM2COL_ELEMENTS = 1 << 17


class _MatrixStage:
    """One dense layer (and the elementwise layers fused after it) as ``x @ W``, then a numba loop
    adding the biases and casting each sum into the result type."""

    def __init__(self, weights, bias, epilogue, n_out):
        self.weights = weights
        self.bias = bias
        self.epilogue = epilogue
        self.n_out = n_out

    def __call__(self, x, out):
        acc = np.matmul(x.astype(self.weights.dtype, copy=False), self.weights)
        self.epilogue(acc, self.bias, out)


class _ConvStage(_MatrixStage):
    """One conv2d layer as a matrix product: every output pixel's window copied into a row
    (im2col, from a zero-bordered copy of each event), ``rows @ W``, then the epilogue on
    (pixels, filters). Events go through in groups whose rows stay within :data:`IM2COL_ELEMENTS`.
    """

    def __init__(self, weights, bias, epilogue, layer):
        super().__init__(weights, bias, epilogue, int(np.prod(layer["output_shape"])))
        (h, w, c), (top, bottom, left, right) = layer["input_shape"], layer["pad"]
        self.geometry = np.array([h, w, c, top, bottom, left, right, *layer["kernel"], *layer["strides"], *layer["output_shape"][:2]], np.int64)
        self.padded_size = (h + top + bottom) * (w + left + right) * c
        self.pixels = int(np.prod(layer["output_shape"][:2]))
        self.group = max(1, IM2COL_ELEMENTS // (self.pixels * len(weights)))

    def __call__(self, x, out):
        taps, filters = self.weights.shape
        padded = np.zeros(self.padded_size, self.weights.dtype)  # the border stays zero
        rows = np.empty((min(self.group, len(x)) * self.pixels, taps), self.weights.dtype)
        acc = np.empty((len(rows), filters), self.weights.dtype)
        for start in range(0, len(x), self.group):
            stop = min(start + self.group, len(x))
            n_rows = (stop - start) * self.pixels
            _im2col(x[start:stop], self.geometry, padded, rows[:n_rows])
            np.matmul(rows[:n_rows], self.weights, out=acc[:n_rows])
            self.epilogue(acc[:n_rows], self.bias, out[start:stop].reshape(-1, filters))


@njit(cache=True, nogil=True)
def _im2col(x, geometry, padded, rows):
    """Each output pixel's window of each event as one row of ``rows``: taps in the generated
    kernel's order (kernel row, kernel column, channel), so the weights keep their layout.
    ``padded`` holds one event with its zero border; a window row is one contiguous run of it."""
    h, w, c, top, _, left, right, kh, kw, sh, sw, oh_n, ow_n = geometry
    wp = w + left + right
    run = kw * c
    r = 0
    for e in range(x.shape[0]):
        for i in range(h):
            base = ((top + i) * wp + left) * c
            for j in range(w * c):
                padded[base + j] = x[e, i * w * c + j]
        for oh in range(oh_n):
            for ow in range(ow_n):
                for a in range(kh):
                    src = ((oh * sh + a) * wp + ow * sw) * c
                    for t in range(run):
                        rows[r, a * run + t] = padded[src + t]
                r += 1


class _MaxPoolStage:
    """A max pool whose windows tile its input (strides equal to the pool, no padding) and whose
    accumulator and result types are its input's: the window's largest mantissa, no cast."""

    def __init__(self, layer):
        self.geometry = np.array([*layer["input_shape"], *layer["pool"], *layer["output_shape"][:2]], np.int64)
        self.n_out = int(np.prod(layer["output_shape"]))

    def __call__(self, x, out):
        _max_pool(x, self.geometry, out)


@njit(cache=True, nogil=True)
def _max_pool(x, geometry, out):
    """out[e, (oh, ow, ch)]: the largest of x[e, (oh * ph + a, ow * pw + b, ch)] over the window."""
    h, w, c, ph, pw, oh_n, ow_n = geometry
    for e in range(x.shape[0]):
        for oh in range(oh_n):
            for ow in range(ow_n):
                o = (oh * ow_n + ow) * c
                first = (oh * ph * w + ow * pw) * c
                for ch in range(c):
                    out[e, o + ch] = x[e, first + ch]
                for a in range(ph):
                    for b in range(pw):
                        i = ((oh * ph + a) * w + ow * pw + b) * c
                        for ch in range(c):
                            out[e, o + ch] = max(out[e, o + ch], x[e, i + ch])


def _is_plain_max_pool(layer, x) -> bool:
    """Whether ``layer`` is a max pool :class:`_MaxPoolStage` computes (``x``: its input tensor)."""
    if layer["op"] != "max_pool2d" or any(int(p) for p in layer["pad"]) or list(layer["strides"]) != list(layer["pool"]):
        return False
    acc_t = parse_type(layer["accum_type"]) if "accum_type" in layer else x.type
    return acc_t == x.type and parse_type(layer["result_type"]) == x.type


class _KernelStage:
    """A run of layers through the generated kernel of their own spec."""

    def __init__(self, kernel, n_out):
        self.kernel = kernel
        self.n_out = n_out
        self.table = np.zeros(1, np.float64)

    def __call__(self, x, out, table=None, lookup=False):
        raw = np.empty(out.shape, np.int64)
        # the kernel indexes its table with the input (typed even where it does not look up)
        data = x if x.dtype.kind in "iu" else x.astype(np.int64)
        self.kernel(data, self.table if table is None else table, raw, lookup, ())
        out[...] = raw


class Staged:
    """The network as stages; :meth:`run` has the generated kernel's signature and results."""

    def __init__(self, stages, source):
        self.stages = stages
        self.source = source  # the epilogues' module, for readers of the generated code

    def run(self, data, table, out, lookup):
        # one BLAS thread: the emulator is a one-core kernel (the trigger runs several of them);
        # OpenBLAS's own threads on a busy or pinned core ran the products 2-3x slower
        with _blas_controller().limit(limits=1, user_api="blas"):
            self._run(data, table, out, lookup)

    def _run(self, data, table, out, lookup):
        n = len(data)
        # events per chunk: every stage's output stays within a core's cache, and its buffer is
        # allocated once (fresh pages of a large allocation cost the kernel's zeroing each time)
        chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // max(stage.n_out for stage in self.stages), n))
        buffers = [np.empty((chunk, stage.n_out), np.float64) for stage in self.stages]
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            x = data[start:stop]
            for k, (stage, buffer) in enumerate(zip(self.stages, buffers)):
                y = buffer[: stop - start]
                if k == 0 and isinstance(stage, _KernelStage):
                    stage(x, y, table, lookup)
                elif k == 0:
                    stage(table[x] if lookup else x.astype(np.float64), y)
                else:
                    stage(x, y)
                x = y
            out[start:stop] = x


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (scanned once: it takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _chain(spec) -> bool:
    """Whether every layer reads the one before it and the outputs read the last layer only."""
    return not any("inputs" in layer for layer in spec["layers"]) and not any("layer" in out for out in spec["outputs"])


def _sub_spec(spec, layers, tensor):
    """The spec of ``layers`` alone, reading ``tensor`` (its whole output tensor as the one head)."""
    return chain_spec(f"{spec['name']}_{layers[0]['name']}", spec["source"], tensor.shape, str(tensor.type), layers)


def _matrix_plan(gen, layer, x, where):
    """The layer's exact sum plan, or None where the matrix product would not be exact."""
    if layer["op"] not in ("dense", "conv2d") or layer["product"] not in ("mult", "weight_ternary", "weight_binary"):
        return None
    if len(layer["weights"]) < MIN_WEIGHTS:
        return None
    if layer["op"] == "conv2d" and _multiply_adds(layer) < MIN_CONV_WORK:
        return None
    if layer["op"] == "dense":
        x, geometry = gen._dense_geometry(layer, x)
    else:
        x, geometry = gen._conv_geometry(layer, x, where)
    plan = gen._sum_plan(layer, x, geometry, where)
    return plan if plan.exact and plan.dt in ("f32", "f64") else None


def _epilogue(gen, name, title, plan, steps, where):
    """Source of the numba loop ``(acc, bias, y)``: bias added, then ``steps`` cast as the
    generated kernel casts (float domain where exact, ``cast_mantissa`` otherwise)."""
    lines = _codegen._Emitter()
    res = gen._apply_steps(lines, "v", plan.acc_src, plan.lo, plan.hi, steps, "f64", True)
    domain = "f64"
    if res is None:
        lines = _codegen._Emitter()
        res = gen._apply_steps(lines, "v", plan.acc_src, plan.lo, plan.hi, steps, "i64", False)
        domain = "i64"
    v, lo, hi = res
    em = _codegen._Emitter()
    em.extend(["", "", "@njit(cache=True, nogil=True, error_model='numpy')"])
    with em.block(f"def {name}(acc, bias, y):"):
        em.append(f'"""{title}: bias added to the matrix product, then the result casts"""')
        with em.block("for e in range(acc.shape[0]):"), em.block("for o in range(acc.shape[1]):"):
            em.append("v = acc[e, o] + bias[o]" if domain == "f64" else "v = np.int64(acc[e, o] + bias[o])")
            em.extend(lines.lines)
            em.append(f"y[e, o] = {v}")
    return em.lines, lo, hi


def plan_stages(spec, load_kernel):
    """The network as :class:`Staged`, or None where it keeps the single generated kernel.

    ``load_kernel(source, stem)`` imports a generated module (the emulator's disk cache) and
    returns it. The intervals of every tensor come from generating the whole network once,
    so each matrix stage sees the same mantissa bounds the single kernel would.
    """
    if not _chain(spec):
        return None
    layers = spec["layers"]
    gen = _codegen._Generator(spec, fuse=True)
    gen.build()
    made = {name: tensor for name, tensor in gen.traced}
    source_of = lambda k: made[layers[k - 1]["name"]] if k else gen.tensors[0]  # noqa: E731
    kept = {layers[-1]["name"]}
    stages, functions, run_start, k = [], [], 0, 0
    while k < len(layers):
        layer = layers[k]
        where = f"layer {layer['name']!r}"
        if _is_plain_max_pool(layer, source_of(k)):
            if run_start < k:
                stages.append(_kernel_stage(spec, layers[run_start:k], source_of(run_start), load_kernel))
            stages.append(_MaxPoolStage(layer))
            k = run_start = k + 1
            continue
        plan = _matrix_plan(gen, layer, source_of(k), where)
        if plan is None:
            k += 1
            continue
        if run_start < k:
            stages.append(_kernel_stage(spec, layers[run_start:k], source_of(run_start), load_kernel))
        steps, nxt = gen._fused_steps(layers, k, kept)
        group = " + ".join(layers[j]["name"] for j in range(k, nxt))
        name = f"epilogue{len(functions)}_{_codegen._identifier(layer['name'])}"
        lines, _, _ = _epilogue(gen, name, group, plan, plan.result_steps([("cast", parse_type(layer["result_type"])), *steps]), where)
        functions.append((name, lines, plan, layer))
        stages.append(len(functions) - 1)  # replaced by the matrix stage once the module is loaded
        k = run_start = nxt
    matrix_work = sum(_multiply_adds(layer) for _, _, _, layer in functions)
    if not functions or matrix_work < MIN_SHARE * sum(map(_multiply_adds, layers)):
        return None
    if run_start < len(layers):
        stages.append(_kernel_stage(spec, layers[run_start:], source_of(run_start), load_kernel))
    source = "\n".join(_HEADER.format(name=spec["name"]).splitlines() + [line for _, lines, _, _ in functions for line in lines]) + "\n"
    module = load_kernel(source, f"{spec['name']}_epilogues")
    for j, stage in enumerate(stages):
        if isinstance(stage, int):
            name, _, plan, layer = functions[stage]
            n_out = int(layer["n_out"] if layer["op"] == "dense" else layer["output_shape"][-1])
            # single precision where every partial sum, in any order, stays below 2**24 (twice the rate)
            dtype = np.float32 if plan.dt == "f32" else np.float64
            weights = np.array([_codegen._scaled(c, plan.up) for c in plan.weights], dtype).reshape(-1, n_out)
            bias = np.array(plan.bias, np.float64)
            if layer["op"] == "dense":
                stages[j] = _MatrixStage(weights, bias, getattr(module, name), n_out)
            else:
                stages[j] = _ConvStage(weights, bias, getattr(module, name), layer)
    return Staged(stages, source)


_HEADER = '''"""Epilogues of the matrix stages of network {name!r}, generated by l0emu.fixedpoint._batched."""

import numpy as np
from numba import njit
from numpy import float32 as f32, float64 as f64

from l0emu.fixedpoint.casts import cast_mantissa


@njit(cache=True, nogil=True)
def cast(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits):
    """l0emu.fixedpoint.casts.cast_mantissa behind one call, so numba types its body once per module."""
    return cast_mantissa(m, src_frac, width, frac, signed, rounding_code, overflow_code, sat_bits)
'''


def _multiply_adds(layer) -> int:
    """Multiply-adds per event of a dense or conv2d layer (0 for the other ops)."""
    if layer["op"] == "dense":
        return int(layer["n_in"]) * int(layer["n_out"])
    if layer["op"] == "conv2d":
        return int(np.prod(layer["output_shape"])) * len(layer["weights"]) // int(layer["output_shape"][-1])
    return 0


def _kernel_stage(spec, layers, tensor, load_kernel):
    sub = _sub_spec(spec, layers, tensor)
    source, heads, _ = _codegen.generate(sub, fuse=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    module = load_kernel(source, f"{sub['name']}_{digest}")
    return _KernelStage(module.network, heads[0][1].size)
