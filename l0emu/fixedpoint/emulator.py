"""The bit-exact network emulator: hls4ml's C-simulation arithmetic, compiled per network.

:class:`Emulator` reads a spec (``spec.json``), generates a numba kernel specialised to that
network (see :mod:`l0emu.fixedpoint._codegen`; the source is :attr:`Emulator.source` and is written to
the cache directory so numba can cache the machine code), and runs blocks of events
through it. Outputs are the mantissas of the output layers' result types (the last layer,
or each head the spec's outputs name), equal bit for bit to the HLS code's outputs;
:meth:`Emulator.predict` maps them to physical units.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from l0emu.fixedpoint._batched import plan_stages
from l0emu.fixedpoint._float_inputs import float32_to_mantissa
from l0emu.fixedpoint._codegen import generate
from l0emu.fixedpoint.aptypes import ApType, parse_type
from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError, SpecError, did_you_mean
from l0emu.fixedpoint.casts import float_to_mantissa
from l0emu.fixedpoint.spec import output_layout, read_spec, spec_inputs, validate_spec

__all__ = ["Emulator", "cache_dir", "check_stream_pools"]

_N_CODES = 256  # uint8 lit-pixel counts index a table of input mantissas


def cache_dir() -> Path:
    """Where generated kernels live: ``$L0EMU_CACHE_DIR`` or ``~/.cache/l0emu/kernels``."""
    default = Path.home() / ".cache" / "l0emu" / "kernels"
    return Path(os.environ.get("L0EMU_CACHE_DIR", default))


def _load_kernel(source: str, stem: str):
    """Write ``source`` under the cache directory (named by its hash) and import it."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}_{digest}.py"
    if not path.is_file() or path.read_text() != source:
        with atomic_path(path) as tmp:
            tmp.write_text(source)
    name = f"l0emu_kernel_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # numba's on-disk cache pickles references to the sibling kernels by module name:
    # the module must be importable under that name when a later process loads the cache
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _check_stream_convolutions(spec):
    """Refuse the io_stream convolution hls4ml computes differently from Keras: a kernel one
    row high (and wider than one column) with a vertical stride above 1.

    hls4ml's line buffer takes its one-dimensional path for such a kernel
    (``compute_output_buffer_1d`` in nnet_conv_stream.h), which has no vertical stride
    counter: it streams out a result for every input row, more than the layer's outputs.
    Found by the hypothesis suite and checked against the C-simulation; every other stride,
    tiling the input or not, is exact, 1x1 kernels with strides included.
    """
    if spec.get("source", {}).get("io_type") != "io_stream":
        return
    for layer in spec["layers"]:
        if layer["op"] != "conv2d":
            continue
        (kh, kw), (sh, _) = layer["kernel"], layer["strides"]
        if kh == 1 and kw > 1 and sh > 1:
            msg = (
                f"layer {layer['name']!r}: an io_stream conv2d with a {kh}x{kw} kernel and vertical stride {sh} "
                "is not supported (hls4ml's one-row line buffer ignores the vertical stride and streams out "
                "every row); convert with io_parallel, or use a vertical stride of 1"
            )
            raise SpecError(msg)


_STREAM_POOLS = ("max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "global_max_pool1d", "global_avg_pool1d", "global_max_pool2d",
                 "global_avg_pool2d")


def check_stream_pools(spec):
    """Refuse the io_stream pools whose arithmetic differs from io_parallel's, which the
    emulator computes (hls4ml 1.3.0, nnet_pooling_stream.h).

    io_stream pools cast every input into accum_t first, then add (a tree for a window, one
    by one for a global pool) casting each sum into accum_t, or take the maximum of the casts
    (a global max starting from accum_t's most negative value); io_parallel adds the inputs
    themselves in order. Both give the same bits when every input converts into accum_t
    exactly and no sum of the window's inputs leaves accum_t's range, or, for an average,
    when accum_t keeps every fractional bit and wraps (sums modulo 2**W in any order); this
    is checked here. io_stream pooling with padding aborts hls4ml's C-simulation (an assertion).
    """
    if spec.get("source", {}).get("io_type") != "io_stream":
        return
    types = {inp.get("name"): parse_type(inp["type"]) for inp in spec_inputs(spec)}
    previous = spec_inputs(spec)[0].get("name")
    for layer in spec["layers"]:
        source = layer.get("inputs", [previous])[0]
        previous = layer["name"]
        x_t = types[source]
        types[layer["name"]] = parse_type(layer["result_type"])
        if layer["op"] not in _STREAM_POOLS:
            continue
        where = f"layer {layer['name']!r}: an io_stream {layer['op']}"
        if any(layer.get("pad", ())):
            msg = f"{where} with padding {layer['pad']} is not supported (hls4ml's io_stream pooling asserts there is none); use padding 'valid' or io_parallel"
            raise SpecError(msg)
        acc_t = parse_type(layer["accum_type"]) if "accum_type" in layer else x_t
        shape = layer["input_shape"]
        count = math.prod(layer["pool"]) if "pool" in layer else math.prod(shape[:-1])
        n = count if "avg" in layer["op"] else 1
        low, high = n * min(x_t.min_mantissa, 0), n * max(x_t.max_mantissa, 0)
        shift = acc_t.frac - x_t.frac
        fits = acc_t.min_mantissa <= low << max(shift, 0) and high << max(shift, 0) <= acc_t.max_mantissa
        wraps = n > 1 and acc_t.saturation == "WRAP" and not acc_t.sat_bits
        if shift < 0 or acc_t.sat_bits or not (fits or wraps):
            what = f"the sum of {n} inputs of {x_t}" if n > 1 else f"its input type {x_t}"
            msg = (
                f"{where} with accum_t {acc_t} is not supported: {what} does not fit accum_t exactly, where hls4ml's "
                "io_stream pooling computes in accum_t (not as io_parallel does); widen accum_t or use io_parallel"
            )
            raise SpecError(msg)


class Emulator:
    """A compiled, bit-exact emulator of one network spec."""

    def __init__(self, spec: dict):
        self.spec = validate_spec(spec)
        _check_stream_convolutions(spec)
        check_stream_pools(spec)
        self.input_types: tuple = tuple(parse_type(inp["type"]) for inp in spec_inputs(spec))
        self.input_shapes: tuple = tuple(tuple(int(s) for s in inp["shape"]) for inp in spec_inputs(spec))
        self.input_type: ApType = self.input_types[0]  # the (first) input's, which the trigger's images feed
        self.input_shape = self.input_shapes[0]
        self.source, heads, _ = generate(spec, fuse=True)
        # raw output columns: the heads' tensors side by side (l0emu.fixedpoint.spec.output_layout)
        self.output_types: tuple = tuple(tensor.type for _, tensor in heads for _ in range(tensor.size))
        self.n_outputs = len(self.output_types)
        self.output_layers, self.columns = output_layout(spec)
        self.outputs = {out["name"]: out for out in spec["outputs"]}
        self._kernel = self._compile(self.source, "network")
        # wide dense layers as exact matrix products where that is provably exact (None: the kernel alone)
        self._staged = plan_stages(spec, _load_kernel)
        self._trace_kernel = None
        self._trace_tensors = None
        self.compile_seconds = {}
        counts = np.arange(_N_CODES, dtype=np.float64) * 0.5
        self._table = float_to_mantissa(counts, self.input_type).astype(np.float64)
        self._float_table = np.zeros(1, np.float64)

    @classmethod
    def from_spec(cls, spec_or_path) -> Emulator:
        """Build from a spec dict, a ``spec.json`` path, or a project directory holding one."""
        if isinstance(spec_or_path, dict):
            return cls(spec_or_path)
        return cls(read_spec(spec_or_path))

    def _compile(self, source, stem):
        return _load_kernel(source, f"{self.spec['name']}_{stem}").network

    # -- inputs ---------------------------------------------------------------------------
    def _inputs(self, x):
        """(codes or mantissas as a (n, n_in) array, the inputs side by side; lookup table;
        whether to look up). ``x``: one array, or a list or tuple of one per network input."""
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(arrays) != len(self.input_shapes):
            msg = f"the network {self.spec['name']!r} takes {len(self.input_shapes)} input arrays {list(self.input_shapes)}, got {len(arrays)}"
            raise ConfigError(msg)
        flats = [self._flat(np.asarray(a), shape, j) for j, (a, shape) in enumerate(zip(arrays, self.input_shapes))]
        if len({len(f) for f in flats}) != 1:
            msg = f"the network {self.spec['name']!r} got input arrays of different event counts {[len(f) for f in flats]}"
            raise ConfigError(msg)
        if all(f.dtype == np.uint8 for f in flats) and len(flats) == 1:
            return np.ascontiguousarray(flats[0]), self._table, True
        for f in flats:
            if f.dtype.kind != "f":
                kinds = "uint8 lit-pixel counts (one-input networks) or floats" if len(flats) == 1 else "floats (uint8 lit-pixel counts feed one-input networks only)"
                msg = f"emulator input must be {kinds}, got dtype {f.dtype}"
                raise ConfigError(msg)
        # nnet::convert_data<float, input_t>: the float32 value, through double, into input_t
        parts = [float32_to_mantissa(f, t) for f, t in zip(flats, self.input_types)]
        return (parts[0] if len(parts) == 1 else np.ascontiguousarray(np.concatenate(parts, axis=1))), self._float_table, False

    def _flat(self, x, shape, j):
        n_in = int(np.prod(shape))
        if x.ndim < 1 or int(np.prod(x.shape[1:])) != n_in:
            which = "" if len(self.input_shapes) == 1 else f" {spec_inputs(self.spec)[j].get('name', j)!r}"
            msg = f"emulator input{which} has shape {x.shape}; the network {self.spec['name']!r} takes (n, {shape})"
            raise ConfigError(msg)
        return x.reshape(len(x), n_in)

    def _run(self, kernel, x, trace, key):
        data, table, lookup = self._inputs(x)
        out = np.empty((len(data), self.n_outputs), np.int64)
        signature_key = (key, data.dtype.str)
        started = time.perf_counter()
        kernel(data, table, out, lookup, trace(len(data)))
        if signature_key not in self.compile_seconds:
            self.compile_seconds[signature_key] = time.perf_counter() - started
        return out

    # -- output types ---------------------------------------------------------------------
    @property
    def output_type(self) -> ApType:
        """The ap type of every raw output column, where all share one (always true of a
        network with one output layer); otherwise an error pointing to :meth:`output_type_of`."""
        if len(set(self.output_types)) == 1:
            return self.output_types[0]
        per_output = ", ".join(f"{name}: {self.output_type_of(name)}" for name in self.outputs)
        msg = f"network {self.spec['name']!r} has outputs of different types ({per_output}); use output_type_of(name)"
        raise ConfigError(msg)

    def output_type_of(self, output_name: str) -> ApType:
        """The ap type of the raw column of spec output ``output_name``."""
        return self.output_types[self.column(output_name)]

    def column(self, output_name: str) -> int:
        """The :meth:`predict_raw` column of spec output ``output_name``."""
        if output_name not in self.columns:
            msg = f"network {self.spec['name']!r} has no output {output_name!r}{did_you_mean(output_name, self.columns)}"
            raise ConfigError(msg)
        return self.columns[output_name]

    # -- public API -----------------------------------------------------------------------
    def predict_raw(self, x) -> np.ndarray:
        """Output mantissas, int64, shape (n, :attr:`n_outputs`).

        The columns are the whole output tensors of :attr:`output_layers` side by side, in the
        order the spec's ``outputs`` first name them: for a spec whose outputs name no
        ``layer``, the last layer's tensor, so output ``o`` is column ``o["index"]``. Spec
        output ``name`` is column :meth:`column` (name), of type :meth:`output_type_of` (name);
        column ``j`` is a mantissa of ``output_types[j]``.

        ``x`` is either uint8 lit-pixel counts shaped like the input (pixel value count/2, as
        :func:`l0emu.trigger.images.fragment_hits` returns them) or float values cast into the input
        type as hls4ml's ``convert_data<float, input_t>`` does. A network with several inputs
        takes a list (or tuple) of float arrays, one per spec input in the spec's order.
        """
        if self._staged is None:
            return self._run(self._kernel, x, lambda n: (), "network")
        data, table, lookup = self._inputs(x)
        out = np.empty((len(data), self.n_outputs), np.int64)
        self._staged.run(data, table, out, lookup)
        return out

    def predict(self, x) -> dict:
        """Physical outputs: ``offset + scale * y`` per spec output (window frames stay relative)."""
        return self.to_physical(self.predict_raw(x))

    def to_float(self, raw) -> np.ndarray:
        """Raw output columns -> their values (float64, same shape), each in its own head's type."""
        raw = np.asarray(raw)
        values = np.empty(raw.shape, np.float64)
        for _, first, size in self.output_layers:
            values[..., first : first + size] = self.output_types[first].to_float(raw[..., first : first + size])
        return values

    def to_physical(self, raw) -> dict:
        """Raw output mantissas -> ``offset + scale * y`` per spec output name."""
        return {name: out["offset"] + out["scale"] * self.output_type_of(name).to_float(raw[:, self.columns[name]]) for name, out in self.outputs.items()}

    def threshold_mantissa(self, output_name: str, physical_threshold: float) -> int:
        """The smallest raw output whose physical value is >= the threshold (exact arithmetic).

        ``y_raw >= threshold_mantissa(...)`` is then the firmware's fixed-point comparison.
        Returns ``max_mantissa + 1`` when no representable output reaches the threshold.
        """
        out_type = self.output_type_of(output_name)
        out = self.outputs[output_name]
        scale = Fraction(out["scale"])
        if scale <= 0:
            msg = f"output {output_name!r} has scale {out['scale']}; a '>=' threshold needs a positive scale"
            raise SpecError(msg)
        units = (Fraction(physical_threshold) - Fraction(out["offset"])) / scale * (Fraction(2) ** out_type.frac)
        raw = math.ceil(units)
        return int(min(max(raw, out_type.min_mantissa), out_type.max_mantissa + 1))

    def trace(self, x) -> dict:
        """Every layer's output as float64 values, shape (n, *output_shape), by layer name."""
        if self._trace_kernel is None:
            source, _, traced = generate(self.spec, fuse=False)
            self._trace_kernel = self._compile(source, "trace")
            self._trace_tensors = traced
        buffers = {}

        def make(n):
            arrays = tuple(np.zeros((n, t.size), np.float64) for _, t in self._trace_tensors)
            buffers["arrays"] = arrays
            return arrays

        self._run(self._trace_kernel, x, make, "trace")
        result = {}
        for (name, tensor), mantissas in zip(self._trace_tensors, buffers["arrays"]):
            values = tensor.type.to_float(mantissas)
            result[name] = values.reshape((len(values),) + tensor.shape)
        return result
