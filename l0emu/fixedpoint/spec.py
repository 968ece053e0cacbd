"""The network spec (``spec.json``): the only thing the emulator knows about a network.

Written by :func:`write_spec` and read by :func:`read_spec`, nowhere else. The firmware
bridge builds the dictionary from the hls4ml model *after* hls4ml's passes, so the types
and integer weights are exactly those of the HLS code.

Format ``l0emu-spec/2``::

    {
      "format": "l0emu-spec/2",
      "name": "student_q4",
      "source": {"model_sha256": ..., "hls4ml_version": ..., "io_type": "io_parallel", ...},
      "inputs": [{"name": "input_1", "shape": [9, 16, 1], "type": "ap_fixed<16,6,AP_TRN,AP_WRAP,0>"}],
      "preprocessing": {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}},
      "layers": [ {"name": ..., "op": ..., ...}, ... ],
      "outputs": [
        {"name": "pt", "index": 0, "scale": 20.0, "offset": 0.0, "unit": "GeV"},
        {"name": "eta", "index": 1, "scale": 32.0, "offset": 0.0, "unit": "strip", "frame": "window"}
      ]
    }

``inputs`` lists every network input (name, shape, type) in the model's order; the
emulator takes one array per input. Format ``l0emu-spec/1`` (still read) has one object
``"input"`` instead, whose ``name`` may be absent; :func:`spec_inputs` gives the list for both.

Every layer has ``name``, ``op``, ``input_shape`` and ``output_shape`` (channels last, as
Keras and hls4ml's io_parallel hold them) and ``result_type``. Per op:

- ``conv2d``: ``kernel`` [kh, kw], ``strides`` [sh, sw], ``padding`` "valid"|"same",
  ``pad`` [top, bottom, left, right] (as hls4ml computed it), ``filters``,
  ``weight_type``, ``bias_type``, ``accum_type``, ``weights`` (integer mantissas,
  flattened from ``weights_shape`` [kh, kw, c_in, c_out] in C order), ``biases``
  (c_out mantissas), ``product`` (hls4ml's product kind, e.g. "mult", "weight_ternary").
- ``dense``: ``n_in``, ``n_out``, the same type and weight fields with
  ``weights_shape`` [n_in, n_out].
- ``relu``, ``linear``: an elementwise activation; the cast into ``result_type`` is the op.
- ``max_pool2d``, ``avg_pool2d``: ``pool`` [ph, pw], ``strides``, ``padding``, ``pad``;
  ``avg_pool2d`` also ``accum_type`` (``max_pool2d`` may give it too; without it the
  emulator uses the input type, which is what hls4ml infers for a max pool's accum_t).
- ``scale``: hls4ml's ApplyAlpha / BatchNormalization (``res = x * scale + bias``):
  ``scale_type``, ``bias_type``, ``scale`` and ``bias`` mantissas, one per channel.
- ``flatten``: a reshape; no arithmetic.
- ``sigmoid``, ``tanh``: hls4ml's lookup-table activations (nnet_activation.h):
  ``table_size`` entries of ``table_type`` in ``table`` (mantissas, as hls4ml's C++ fills
  them); the index is ``trunc(x * table_size / R) + table_size / 2`` clipped to the table,
  R = 16 (sigmoid, inputs -8..8) or 8 (tanh, -4..4), then the entry is cast to ``result_type``.
- ``leaky_relu``: hls4ml's nnet::leaky_relu: ``x`` if ``x > 0`` else ``param * x`` (``param`` a
  ``param_type`` mantissa), at full precision, cast into ``result_type``.
- ``softmax``: hls4ml's nnet::softmax over a 1-D input, ``implementation`` "stable" (hls4ml's
  default), "latency" or "argmax". stable / latency: the input (stable: ``x_max - x``
  cast into ``norm_type``) addresses ``exp_table`` (``exp_table_size`` mantissas of
  ``exp_table_type``) with its top log2(size) bits; the entries, cast into ``accum_type``, are
  summed in hls4ml's adder tree (each sum cast into ``accum_type``), the sum cast into
  ``inv_input_type`` addresses ``inv_table`` the same way, and each entry times the inverse is
  cast into ``result_type``. argmax: 1 at the first maximum, 0 elsewhere, cast into
  ``result_type``; no tables.
- ``zero_pad2d``: ``pad`` [top, bottom, left, right] zeros around each channel (hls4ml inserts
  it before a "same"-padded conv2d in io_stream); the cast into ``result_type`` is the op.
- ``binary_tanh``: nnet::binary_tanh: +1 if ``x >= 0`` else -1, cast into ``result_type``, where a
  1-bit unsigned integer result (hls4ml's XNOR type ``ap_uint<1>``) holds 0 for -1.
- ``bn_binary_tanh``, ``bn_ternary_tanh``: hls4ml's BatchNormalizationQuantizedTanh (a batch norm
  or ApplyAlpha merged with a binary / ternary activation, nnet_batchnorm.h): ``threshold_type``
  mantissas, ``threshold`` (binary: 1 if ``x >= t`` else 0) or ``threshold_hi`` and
  ``threshold_lo`` (ternary: 1 if ``x > hi``, -1 if ``x <= lo``, else 0), one per channel
  (the last axis) or one per element; the result is cast into ``result_type``.
- ``hard_sigmoid``, ``hard_tanh``: nnet::hard_sigmoid / hard_tanh (QKeras quantized_sigmoid and
  quantized_tanh): ``s = slope * x + shift`` at full precision (``slope``, ``shift``: one
  mantissa of ``slope_type`` / ``shift_type``), clipped to [0, 1]; hard_tanh then ``2 s - 1``;
  cast into ``result_type``.

- ``conv1d``: as ``conv2d`` over a ``[width, channels]`` input, with ``kernel`` [kw],
  ``strides`` [sw], ``pad`` [left, right] and ``weights_shape`` [kw, c_in, c_out]; hls4ml's
  1-D kernel computes what its 2-D one does on one row (same products, order and casts).
- ``max_pool1d``, ``avg_pool1d``: as the 2-D pools over ``[width, channels]``, ``pool`` [pw],
  ``strides`` [sw], ``pad`` [left, right]. ``zero_pad1d``: ``pad`` [left, right].
- ``global_max_pool1d``, ``global_avg_pool1d``, ``global_max_pool2d``, ``global_avg_pool2d``:
  one value per channel (output ``[channels]``), the pool over the whole input (hls4ml's
  global_pooling{1,2}d_cl: a max pool's accum_t optional as above, an average's required).
- ``reshape``: the row-major order kept, ``output_shape`` any shape of as many values; a
  result type other than the input's is a cast (io_stream's Repack).
- ``upsample1d``, ``upsample2d``: nearest-neighbour upsampling by the integer factors ``size``
  ([fw] or [fh, fw]), as nnet::resize_nearest indexes.
- merges, reading the two tensors ``inputs`` names (of one shape; ``input_shape`` is the
  first's): ``add``, ``subtract``, ``multiply`` (the exact ap_fixed result), ``average``
  (the exact sum halved), ``maximum``, ``minimum``, each cast into ``result_type``;
  ``concatenate`` (inputs of rank 1 to 3 agreeing off ``axis``; ``axis`` counts the
  dimensions of one event from 0), each element cast into ``result_type``.

- ``quantize``: a type per element (hls4ml's FixedPointQuantizer, which HGQ2 models give it):
  ``element_types`` ``{"k": [...], "i": [...], "f": [...], "rounding": "RND", "overflow": "WRAP"}``,
  one sign bit ``k`` (0 or 1), integer bits ``i`` (sign excluded) and fractional bits ``f`` per
  element of the input (C order). Element ``j`` is cast into ``ap_fixed<k+i+f, k+i, AP_<rounding>,
  AP_<overflow>>`` (``ap_ufixed`` where k = 0), or is 0 where ``k+i+f`` is 0, then into
  ``result_type``.

Optional fields the bridge adds: conv2d/dense ``strategy`` and ``reuse_factor``; ``scale``
``product`` ("mult", or "weight_exponential" for QKeras ``alpha='auto_po2'``, whose
``{sign, exponent}`` scales hls4ml applies as shifts in
``ap_fixed<2*(E+W_in), E+W_in>`` with E = ``scale_exponent_width``; the spec stores them as
exact ``scale_type`` mantissas).

:func:`validate_spec` checks every field against the format and against every other: each
op's fields come from its :class:`OpRule` in :data:`OPS` (required, optional, and a check
that derives the output shape from the input shape and counts the weights), every
mantissa is an integer inside its type, each layer's input shape is the previous layer's
output shape, enumerations and field names are closed sets, and ``preprocessing`` must
match the trigger's fragmentation. A new op plugs in with one :data:`OPS` entry.

Branches and several output layers (heads): a layer may name the tensor it reads, ``"inputs":
["trunk_relu"]`` (a network input's ``name`` or an earlier layer; without it, the layer
before it, or the first input for the first layer; a merge names both of its tensors, so
the layers form a DAG in spec order), and an output may name the layer it reads,
``"layer": "charge"`` (without it, the last layer), its ``index`` counting within that
layer. :func:`output_layout` gives the emulator's raw columns: the named layers' tensors side
by side, in the order ``outputs`` first names them.

``outputs`` maps network output units to physical units: ``physical = offset + scale * y``.
An output with ``"frame": "window"`` is relative to the fragmentation window's low edge
(``unit`` "strip"): the trigger adds the window start in fixed point.

Several muons per sector: ``"fragment": {..., "candidates": 3, "min_hits": 6}`` asks the
trigger for the sector logic of :mod:`l0emu.trigger.sector` (up to ``candidates`` non-overlapping
windows, a further one holding at least ``min_hits`` lit pixels; ``min_hits`` defaults to
:func:`l0emu.trigger.sector.min_candidate_hits` of the image rows: 6 for nine layers) and the network on each candidate. Such a network must
have the outputs the sector logic reads, :data:`CANDIDATE_OUTPUTS`: ``pt``, ``charge`` (the
candidate's charge is +1 where it is >= 0, else -1) and ``presence`` (a candidate counts as a
muon where it is >= 0.5).

A layer set: ``"preprocessing": {..., "layers": [3, 4, 5, 6]}`` builds the images from those
RPC layers' rows only (strictly increasing indices in 0..8, at least one; absent: all nine),
hits on the other layers being dropped before the window is chosen (:func:`l0emu.trigger.images.select_layers`);
``input.shape`` is then ``[len(layers), 16, 1]`` (``[len(layers), 384, 1]`` unfragmented).
:func:`preprocessing_layers` reads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from l0emu.fixedpoint.aptypes import KERNEL_MAX_WIDTH, OVERFLOW_CODES, ROUNDING_CODES, parse_type
from l0emu.util.atomic import atomic_path
from l0emu.errors import SpecError, did_you_mean
from l0emu.trigger.geometry import ALL_LAYERS, N_LAYERS, N_STRIPS
from l0emu.trigger.images import POOL, WINDOW_STRIPS
from l0emu.trigger.sector import MAX_CANDIDATES

__all__ = ["CANDIDATE_OUTPUTS", "ELEMENT_TYPE_KEYS", "FORMAT", "FORMATS", "MERGE_OPS", "OPS", "OpRule", "SOFTMAX_IMPLEMENTATIONS", "STRATEGIES", "chain_spec", "dot_sizes",
           "output_layout", "preprocessing_layers", "read_spec", "spec_inputs", "valid_reuse_factor", "write_spec", "validate_spec"]

FORMAT = "l0emu-spec/2"
# Formats this l0emu reads. /1 has one "input" object instead of "inputs", and wrote an
# ap_int<W> as ap_fixed<W,W,AP_TRN_ZERO,AP_WRAP,0>; /2 writes ap_int<W> / ap_uint<W>, which
# convert from fixed-point values by their own rule (aptypes.cast_target)
FORMATS = ("l0emu-spec/1", FORMAT)

PRODUCTS = ("mult", "weight_ternary", "weight_binary", "both_binary", "data_binary", "weight_exponential")
SCALE_PRODUCTS = ("mult", "weight_exponential")
PADDINGS = ("valid", "same")
# a dense / conv2d layer's strategy as hls4ml's passes leave it; "resource" follows hls4ml's accumulation order
STRATEGIES = ("latency", "resource")
FRAMES = ("window", "sector")


class _Where:
    """Where a field sits in the spec, for messages: ``spec.json: layer 'conv3' at layers[3].weights[17]``."""

    def __init__(self, origin: str, path: str = "", label: str = ""):
        self.origin, self.path, self.label = origin, path, label

    def __truediv__(self, key) -> _Where:
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else str(key))
        return _Where(self.origin, self.path + step, self.label)

    def fail(self, text: str):
        at = f"{self.label} at {self.path}" if self.label else self.path
        msg = f"{self.origin}: {at}: {text}" if at else f"{self.origin}: {text}"
        raise SpecError(msg)


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)[:80]
    return f"{type(value).__name__} {value!r}"[:80]


def _int(value, where: _Where, low: int | None = None, high: int | None = None) -> int:
    if type(value) is not int:  # bool and float (4.0, 4.5) are refused: mantissas and sizes are integers
        where.fail(f"expected an integer, got {_describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        where.fail(f"{value} is not {bounds}")
    return value


def _number(value, where: _Where) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        where.fail(f"expected a finite number, got {_describe(value)}")
    return float(value)


def _str(value, where: _Where) -> str:
    if not isinstance(value, str) or not value:
        where.fail(f"expected a non-empty string, got {_describe(value)}")
    return value


def _choice(value, choices, where: _Where) -> str:
    if value not in choices or not isinstance(value, str):
        field = where.path.rsplit(".", 1)[-1]
        where.fail(f"{field} {_describe(value)} is not one of {', '.join(map(repr, choices))}{did_you_mean(str(value), choices)}")
    return value


def _ints(value, where: _Where, length: int | None = None, low: int = 0) -> list:
    if not isinstance(value, list):
        where.fail(f"expected a list of integers, got {_describe(value)}")
    if length is not None and len(value) != length:
        where.fail(f"expected {length} integers, got {len(value)}")
    return [_int(v, where / i, low) for i, v in enumerate(value)]


def _shape(value, where: _Where) -> list:
    shape = _ints(value, where, low=1)
    if not shape:
        where.fail("a shape needs at least one dimension")
    return shape


def _object(value, where: _Where) -> dict:
    if not isinstance(value, dict):
        where.fail(f"expected a JSON object, got {_describe(value)}")
    return value


def _fields(mapping: dict, required, optional, where: _Where) -> None:
    """Every required field present, no field unknown (with the nearest known name)."""
    known = (*required, *optional)
    for key in required:
        if key not in mapping:
            where.fail(f"missing field {key!r}{did_you_mean(key, mapping.keys())}")
    for key in mapping:
        if key not in known:
            (where / str(key)).fail(f"unknown field {key!r}{did_you_mean(str(key), known)}")


def _type(layer: dict, field: str, where: _Where):
    text = layer[field]
    if not isinstance(text, str):
        (where / field).fail(f"expected an ap type string, got {_describe(text)}")
    try:
        return parse_type(text)
    except SpecError as err:
        (where / field).fail(str(err))


def _mantissas(layer: dict, field: str, type_field: str, count: int, where: _Where) -> None:
    """``layer[field]``: ``count`` integers, each inside ``layer[type_field]``'s range."""
    kind = _type(layer, type_field, where)
    values = layer[field]
    at = where / field
    if not isinstance(values, list):
        at.fail(f"expected a list of integer mantissas, got {_describe(values)}")
    if len(values) != count:
        at.fail(f"{field!r} holds {len(values)} values but the layer's shape needs {count}")
    low, high = kind.min_mantissa, kind.max_mantissa
    for i, v in enumerate(values):
        if type(v) is not int:
            (at / i).fail(f"a mantissa must be an integer, got {_describe(v)}")
        if not low <= v <= high:
            (at / i).fail(f"mantissa {v} is outside {type_field} {kind} [{low}, {high}]")


def _expect_shape(layer: dict, field: str, expected: list, where: _Where, how: str) -> None:
    if layer[field] != expected:
        (where / field).fail(f"is {layer[field]}, but {how} gives {expected}")


def _spatial(layer: dict, window_field: str, where: _Where) -> tuple:
    """(in_h, in_w, c) of a 2-D layer and its window, strides and pad, checked."""
    shape = layer["input_shape"]
    if len(shape) != 3:
        (where / "input_shape").fail(f"a {layer['op']} takes [height, width, channels], got {shape}")
    window = _ints(layer[window_field], where / window_field, 2, low=1)
    strides = _ints(layer["strides"], where / "strides", 2, low=1)
    pad = _ints(layer["pad"], where / "pad", 4, low=0)
    if "padding" in layer:
        _choice(layer["padding"], PADDINGS, where / "padding")
    h, w = shape[0] + pad[0] + pad[1], shape[1] + pad[2] + pad[3]
    if window[0] > h or window[1] > w:
        (where / window_field).fail(f"{window} is larger than the padded input {[h, w]}")
    out = [(h - window[0]) // strides[0] + 1, (w - window[1]) // strides[1] + 1]
    return shape, window, out


def _check_conv2d(layer, where):
    shape, kernel, out = _spatial(layer, "kernel", where)
    filters = _int(layer["filters"], where / "filters", 1)
    _expect_shape(layer, "weights_shape", [*kernel, shape[2], filters], where, "kernel x input channels x filters")
    _expect_shape(layer, "output_shape", [*out, filters], where, "input_shape, kernel, strides and pad")
    _weights(layer, where, filters)


def _check_dense(layer, where):
    n_in = _int(layer["n_in"], where / "n_in", 1)
    n_out = _int(layer["n_out"], where / "n_out", 1)
    if layer["input_shape"][-1] != n_in:
        (where / "n_in").fail(f"is {n_in}, but input_shape {layer['input_shape']} gives {layer['input_shape'][-1]}")
    _expect_shape(layer, "weights_shape", [n_in, n_out], where, "n_in x n_out")
    _expect_shape(layer, "output_shape", [*layer["input_shape"][:-1], n_out], where, "input_shape and n_out")
    _weights(layer, where, n_out)


def _weights(layer, where, n_biases):
    product = _choice(layer["product"], PRODUCTS, where / "product")
    if (product == "weight_exponential") != ("weight_exponent_width" in layer):
        where.fail("'weight_exponent_width' goes with product 'weight_exponential' (quantized_po2 kernels), and only with it")
    if product == "weight_exponential":
        _int(layer["weight_exponent_width"], where / "weight_exponent_width", 1, 32)
        for i, m in enumerate(layer["weights"] if isinstance(layer["weights"], list) else []):
            if type(m) is int and (m == 0 or abs(m) & (abs(m) - 1)):
                (where / "weights" / i).fail(f"a weight_exponential weight is +-2**e, got mantissa {m}")
    _type(layer, "accum_type", where)
    _mantissas(layer, "weights", "weight_type", math.prod(layer["weights_shape"]), where)
    _mantissas(layer, "biases", "bias_type", n_biases, where)
    _optional_knobs(layer, where)


def _optional_knobs(layer, where):
    if "strategy" in layer:
        _choice(layer["strategy"], STRATEGIES, where / "strategy")
    if "reuse_factor" in layer:
        _int(layer["reuse_factor"], where / "reuse_factor", 1)
    if layer.get("strategy") == "resource":
        n_in, n_out = dot_sizes(layer)
        rf = layer.get("reuse_factor", 1)
        if not valid_reuse_factor(n_in, n_out, rf):
            (where / "reuse_factor").fail(f"{rf} is not a reuse factor hls4ml's Resource kernels are correct for with {n_in} inputs x {n_out} "
                                          "outputs (its own rule, FPGABackend._validate_reuse_factor; hls4ml keeps such a factor for a 1x1 "
                                          "convolution, whose io_parallel kernel then reads past its weights)")


def dot_sizes(layer) -> tuple:
    """``(n_in, n_out)`` of the matrix product of a dense or conv2d layer (a conv2d's per pixel)."""
    if layer["op"] == "dense":
        return int(layer["n_in"]), int(layer["n_out"])
    return math.prod(layer["weights_shape"][:-1]), int(layer["filters"])


def valid_reuse_factor(n_in: int, n_out: int, rf: int) -> bool:
    """hls4ml's rule for the reuse factors its Resource kernels compute correctly
    (FPGABackend._validate_reuse_factor)."""
    multiplier_limit = -(-(n_in * n_out) // min(n_in, rf))
    return (multiplier_limit % n_out == 0 or rf >= n_in) and (rf % n_in == 0 or rf < n_in) and (n_in * n_out) % rf == 0


def _check_resource_convs(spec, where) -> None:
    """hls4ml 1.3.0's io_parallel conv_{1,2}d_resource_cl (Vitis) reads past its im2col buffer (2-D)
    or asserts (1-D) when the reuse factor exceeds the kernel's inputs: such a spec is refused. Its
    io_stream conv1d runs the Resource strategy through compute_output_buffer_1d, an order the
    emulator does not model: refused too."""
    stream = spec["source"].get("io_type", "io_parallel") != "io_parallel"
    for i, layer in enumerate(spec["layers"]):
        if layer["op"] not in ("conv1d", "conv2d") or layer.get("strategy") != "resource":
            continue
        at = _Where(where.origin, (where / "layers" / i).path, f"layer {layer['name']!r}")
        if stream and layer["op"] == "conv1d":
            (at / "strategy").fail("an io_stream Conv1D with the Resource strategy is not emulated (hls4ml runs it through "
                    "compute_output_buffer_1d in its own order); use Latency or io_parallel")
        if not stream and layer.get("reuse_factor", 1) > dot_sizes(layer)[0]:
            (at / "reuse_factor").fail(
                f"{layer['reuse_factor']} exceeds the {dot_sizes(layer)[0]} inputs of each output pixel; hls4ml's io_parallel Resource "
                f"convolution (conv_{layer['op'][-2:]}_resource_cl) reads past its input buffer there, so its result is undefined")


def _check_elementwise(layer, where):
    _expect_shape(layer, "output_shape", layer["input_shape"], where, "input_shape (an elementwise op)")


def _check_pool(layer, where):
    shape, _, out = _spatial(layer, "pool", where)
    _expect_shape(layer, "output_shape", [*out, shape[2]], where, "input_shape, pool, strides and pad")
    if "accum_type" in layer:
        _type(layer, "accum_type", where)


def _check_scale(layer, where):
    _check_elementwise(layer, where)
    channels = layer["output_shape"][-1]
    product = _choice(layer.get("product", "mult"), SCALE_PRODUCTS, where / "product")
    if product == "weight_exponential":
        if "scale_exponent_width" not in layer:
            where.fail("a weight_exponential scale needs 'scale_exponent_width'")
        _int(layer["scale_exponent_width"], where / "scale_exponent_width", 1, 32)
    _mantissas(layer, "scale", "scale_type", channels, where)
    _mantissas(layer, "bias", "bias_type", channels, where)


def _check_flatten(layer, where):
    n = math.prod(layer["input_shape"])
    _expect_shape(layer, "output_shape", [n], where, "flattening input_shape")


def _check_zero_pad2d(layer, where):
    shape = layer["input_shape"]
    if len(shape) != 3:
        (where / "input_shape").fail(f"zero_pad2d takes [height, width, channels], got {shape}")
    pad = _ints(layer["pad"], where / "pad", 4, low=0)
    _expect_shape(layer, "output_shape", [shape[0] + pad[0] + pad[1], shape[1] + pad[2] + pad[3], shape[2]], where,
                  "input_shape and pad")  # fmt: skip


def _check_table(layer, where):
    """sigmoid / tanh: hls4ml's lookup table of ``table_size`` ``table_type`` mantissas."""
    _check_elementwise(layer, where)
    size = _int(layer["table_size"], where / "table_size", 1, 1 << 20)
    _mantissas(layer, "table", "table_type", size, where)


def _check_leaky_relu(layer, where):
    """leaky_relu: ``param`` (alpha) is one mantissa of ``param_type``."""
    _check_elementwise(layer, where)
    kind = _type(layer, "param_type", where)
    param = layer["param"]
    if type(param) is not int or not kind.min_mantissa <= param <= kind.max_mantissa:
        (where / "param").fail(f"expected one integer mantissa of param_type {kind}, got {_describe(param)}")


def _check_thresholds(layer, where):
    """bn_binary_tanh / bn_ternary_tanh: threshold mantissas, one per channel or per element."""
    _check_elementwise(layer, where)
    size, channels = math.prod(layer["input_shape"]), layer["input_shape"][-1]
    fields = ("threshold",) if layer["op"] == "bn_binary_tanh" else ("threshold_hi", "threshold_lo")
    for field in fields:
        count = len(layer[field]) if isinstance(layer[field], list) else 0
        _mantissas(layer, field, "threshold_type", count if count in (channels, size) else channels, where)


def _check_hard_activation(layer, where):
    """hard_sigmoid / hard_tanh: ``slope`` and ``shift`` are one mantissa each of their types."""
    _check_elementwise(layer, where)
    for field in ("slope", "shift"):
        kind = _type(layer, f"{field}_type", where)
        value = layer[field]
        if type(value) is not int or not kind.min_mantissa <= value <= kind.max_mantissa:
            (where / field).fail(f"expected one integer mantissa of {field}_type {kind}, got {_describe(value)}")


def _spatial1d(layer, window_field, where) -> tuple:
    """(in_w, c) of a 1-D layer (``input_shape`` [width, channels]), its window and output width, checked."""
    shape = layer["input_shape"]
    if len(shape) != 2:
        (where / "input_shape").fail(f"a {layer['op']} takes [width, channels], got {shape}")
    (window,) = _ints(layer[window_field], where / window_field, 1, low=1)
    (stride,) = _ints(layer["strides"], where / "strides", 1, low=1)
    pad = _ints(layer["pad"], where / "pad", 2, low=0)
    if "padding" in layer:
        _choice(layer["padding"], PADDINGS, where / "padding")
    w = shape[0] + pad[0] + pad[1]
    if window > w:
        (where / window_field).fail(f"[{window}] is larger than the padded input width {w}")
    return shape, (w - window) // stride + 1


def _check_conv1d(layer, where):
    shape, out = _spatial1d(layer, "kernel", where)
    filters = _int(layer["filters"], where / "filters", 1)
    _expect_shape(layer, "weights_shape", [layer["kernel"][0], shape[1], filters], where, "kernel x input channels x filters")
    _expect_shape(layer, "output_shape", [out, filters], where, "input_shape, kernel, strides and pad")
    _weights(layer, where, filters)


def _check_pool1d(layer, where):
    shape, out = _spatial1d(layer, "pool", where)
    _expect_shape(layer, "output_shape", [out, shape[1]], where, "input_shape, pool, strides and pad")
    if "accum_type" in layer:
        _type(layer, "accum_type", where)


def _check_zero_pad1d(layer, where):
    shape = layer["input_shape"]
    if len(shape) != 2:
        (where / "input_shape").fail(f"zero_pad1d takes [width, channels], got {shape}")
    pad = _ints(layer["pad"], where / "pad", 2, low=0)
    _expect_shape(layer, "output_shape", [shape[0] + pad[0] + pad[1], shape[1]], where, "input_shape and pad")


def _check_global_pool(layer, where):
    """global_{max,avg}_pool{1,2}d: one value per channel (the last axis) of a [width, channels]
    (1d) or [height, width, channels] (2d) input."""
    rank = 2 if layer["op"].endswith("1d") else 3
    shape = layer["input_shape"]
    if len(shape) != rank:
        (where / "input_shape").fail(f"a {layer['op']} takes a rank-{rank} input (channels last), got {shape}")
    _expect_shape(layer, "output_shape", [shape[-1]], where, "the input's channels")
    if "accum_type" in layer:
        _type(layer, "accum_type", where)


def _check_reshape(layer, where):
    n = math.prod(layer["input_shape"])
    if math.prod(layer["output_shape"]) != n:
        (where / "output_shape").fail(f"{layer['output_shape']} does not hold the {n} values of input_shape {layer['input_shape']}")


def _check_upsample(layer, where):
    """upsample1d / upsample2d: nearest-neighbour upsampling by integer ``size`` factors."""
    rank = 2 if layer["op"] == "upsample1d" else 3
    shape = layer["input_shape"]
    if len(shape) != rank:
        (where / "input_shape").fail(f"an {layer['op']} takes a rank-{rank} input (channels last), got {shape}")
    size = _ints(layer["size"], where / "size", rank - 1, low=1)
    _expect_shape(layer, "output_shape", [*(n * f for n, f in zip(shape, size)), shape[-1]], where, "input_shape times size")


def _check_merge(layer, where, shapes):
    """add, subtract, multiply, average, maximum, minimum: two tensors of one shape, elementwise."""
    if shapes[1] != shapes[0]:
        (where / "inputs").fail(f"{layer['op']} joins tensors of one shape, got {shapes[0]} and {shapes[1]}")
    _check_elementwise(layer, where)


def _check_concatenate(layer, where, shapes):
    """concatenate: ``axis`` counts the dimensions of one event (0 = the first, channels last)."""
    rank = len(shapes[0])
    if rank > 3:
        (where / "input_shape").fail(f"concatenate joins tensors of rank 1 to 3 (as hls4ml does), got {shapes[0]}")
    axis = _int(layer["axis"], where / "axis", 0, rank - 1)
    other = [n for i, n in enumerate(shapes[1]) if i != axis]
    if len(shapes[1]) != rank or other != [n for i, n in enumerate(shapes[0]) if i != axis]:
        (where / "inputs").fail(f"cannot concatenate {shapes[0]} and {shapes[1]} along axis {axis}")
    expected = [n + shapes[1][i] if i == axis else n for i, n in enumerate(shapes[0])]
    _expect_shape(layer, "output_shape", expected, where, f"joining the inputs along axis {axis}")


SOFTMAX_IMPLEMENTATIONS = ("stable", "latency", "argmax")  # hls4ml's "legacy" is refused at convert
_SOFTMAX_TABLES = ("exp_table_size", "inv_table_size", "exp_table_type", "inv_table_type", "exp_table", "inv_table", "accum_type")
# fields each softmax implementation reads (argmax reads none: it only compares its inputs)
_SOFTMAX_FIELDS = {
    "stable": (*_SOFTMAX_TABLES, "inv_input_type", "norm_type"),
    "latency": (*_SOFTMAX_TABLES, "inv_input_type"),
    "argmax": (),
}


def _check_softmax(layer, where):
    """softmax: hls4ml's nnet::softmax over a 1-D input; the fields its implementation reads."""
    _check_elementwise(layer, where)
    if len(layer["input_shape"]) != 1:
        (where / "input_shape").fail(f"a softmax takes a 1-D input (hls4ml's n_slice = n_in), got {layer['input_shape']}")
    implementation = _choice(layer["implementation"], SOFTMAX_IMPLEMENTATIONS, where / "implementation")
    needed = _SOFTMAX_FIELDS[implementation]
    for field in _SOFTMAX_FIELDS["stable"]:
        if field in needed and field not in layer:
            where.fail(f"softmax implementation {implementation!r} needs field {field!r}")
        if field not in needed and field in layer:
            (where / field).fail(f"softmax implementation {implementation!r} does not read {field!r}")
    for table in ("exp", "inv") if needed else ():
        size = _int(layer[f"{table}_table_size"], where / f"{table}_table_size", 1, 1 << 20)
        _mantissas(layer, f"{table}_table", f"{table}_table_type", size, where)
        if size < 2 or size & (size - 1):
            (where / f"{table}_table_size").fail(f"is {size}; a softmax addresses its tables with bits, so sizes are powers of 2 (>= 2)")
        index_field = {"exp": "norm_type", "inv": "inv_input_type"}[table]
        if index_field in layer and size.bit_length() - 1 > _type(layer, index_field, where).width:
            (where / f"{table}_table_size").fail(f"{size} entries need more address bits than {index_field} has")
    if needed:
        _type(layer, "accum_type", where)


@dataclasses.dataclass(frozen=True)
class OpRule:
    """What an op's layer holds: fields it must have and may have (beyond name, op, shapes and
    result_type), and ``check(layer, where)``, which checks values, counts and the output
    shape it derives from the input shape. A new op plugs in with one entry in :data:`OPS`."""

    required: tuple
    optional: tuple
    check: object
    arity: int = 1  # tensors the op reads; a merge (arity 2) names both in "inputs", and its
    # check also receives their shapes: ``check(layer, where, shapes)``


ELEMENT_TYPE_KEYS = ("k", "i", "f", "rounding", "overflow")
_ELEMENT_BITS = 64  # |i| and |f| bound of one element's type: a wider one is no 64-bit ap_fixed


def _check_element_types(layer, where):
    """quantize: a sign bit, integer and fractional bits per element, each element's type
    at most :data:`KERNEL_MAX_WIDTH` bits wide (0: the element is 0)."""
    _check_elementwise(layer, where)
    at = where / "element_types"
    types = _object(layer["element_types"], at)
    _fields(types, ELEMENT_TYPE_KEYS, (), at)
    _choice(types["rounding"], tuple(ROUNDING_CODES), at / "rounding")
    _choice(types["overflow"], tuple(OVERFLOW_CODES), at / "overflow")
    n = math.prod(layer["input_shape"])
    k = _ints(types["k"], at / "k", n)
    i, f = (_ints(types[key], at / key, n, low=-_ELEMENT_BITS) for key in ("i", "f"))
    for j, (kj, ij, fj) in enumerate(zip(k, i, f)):
        if kj > 1:
            (at / "k" / j).fail(f"a sign bit count is 0 or 1, got {kj}")
        if not 0 <= kj + ij + fj <= KERNEL_MAX_WIDTH:
            (at / "i" / j).fail(f"element {j} has k + i + f = {kj + ij + fj} bits, not in [0, {KERNEL_MAX_WIDTH}]")


_WEIGHTED = ("weight_type", "bias_type", "accum_type", "weights", "weights_shape", "biases", "product")
_KNOBS = ("strategy", "reuse_factor", "weight_exponent_width")
_WINDOW = ("strides", "padding", "pad")

OPS = {
    "conv2d": OpRule(("kernel", *_WINDOW, "filters", *_WEIGHTED), _KNOBS, _check_conv2d),
    "dense": OpRule(("n_in", "n_out", *_WEIGHTED), _KNOBS, _check_dense),
    "relu": OpRule((), (), _check_elementwise),
    "linear": OpRule((), (), _check_elementwise),
    "max_pool2d": OpRule(("pool", *_WINDOW), ("accum_type",), _check_pool),
    "avg_pool2d": OpRule(("pool", *_WINDOW, "accum_type"), (), _check_pool),
    "scale": OpRule(("scale_type", "bias_type", "scale", "bias"), ("product", "scale_exponent_width"), _check_scale),
    "flatten": OpRule((), (), _check_flatten),
    "zero_pad2d": OpRule(("pad",), (), _check_zero_pad2d),
    "sigmoid": OpRule(("table_size", "table_type", "table"), (), _check_table),
    "tanh": OpRule(("table_size", "table_type", "table"), (), _check_table),
    "leaky_relu": OpRule(("param_type", "param"), (), _check_leaky_relu),
    "softmax": OpRule(("implementation",), _SOFTMAX_FIELDS["stable"], _check_softmax),
    "binary_tanh": OpRule((), (), _check_elementwise),
    "bn_binary_tanh": OpRule(("threshold_type", "threshold"), (), _check_thresholds),
    "bn_ternary_tanh": OpRule(("threshold_type", "threshold_hi", "threshold_lo"), (), _check_thresholds),
    "hard_sigmoid": OpRule(("slope_type", "slope", "shift_type", "shift"), (), _check_hard_activation),
    "hard_tanh": OpRule(("slope_type", "slope", "shift_type", "shift"), (), _check_hard_activation),
    "conv1d": OpRule(("kernel", *_WINDOW, "filters", *_WEIGHTED), _KNOBS, _check_conv1d),
    "max_pool1d": OpRule(("pool", *_WINDOW), ("accum_type",), _check_pool1d),
    "avg_pool1d": OpRule(("pool", *_WINDOW, "accum_type"), (), _check_pool1d),
    "zero_pad1d": OpRule(("pad",), (), _check_zero_pad1d),
    "global_max_pool1d": OpRule((), ("accum_type",), _check_global_pool),
    "global_avg_pool1d": OpRule(("accum_type",), (), _check_global_pool),
    "global_max_pool2d": OpRule((), ("accum_type",), _check_global_pool),
    "global_avg_pool2d": OpRule(("accum_type",), (), _check_global_pool),
    "reshape": OpRule((), (), _check_reshape),
    "upsample1d": OpRule(("size",), (), _check_upsample),
    "upsample2d": OpRule(("size",), (), _check_upsample),
    **{op: OpRule((), (), _check_merge, arity=2) for op in ("add", "subtract", "multiply", "average", "maximum", "minimum")},
    "concatenate": OpRule(("axis",), (), _check_concatenate, arity=2),
    "quantize": OpRule(("element_types",), (), _check_element_types),
}
MERGE_OPS = tuple(op for op, rule in OPS.items() if rule.arity == 2)

_LAYER_BASE = ("name", "op", "input_shape", "output_shape", "result_type")
_INPUT = object()  # the key of a format-1 spec's unnamed input, apart from every layer name
_TOP = {"l0emu-spec/1": ("format", "name", "source", "input", "layers", "outputs"),
        FORMAT: ("format", "name", "source", "inputs", "layers", "outputs")}  # fmt: skip
_TOP_OPTIONAL = ("preprocessing",)
CANDIDATE_OUTPUTS = ("pt", "charge", "presence")  # what the sector logic reads (module docstring)


def spec_inputs(spec: dict) -> list:
    """The network inputs of a validated spec, in order: ``{"name", "shape", "type"}`` each
    (a format-1 spec's one ``input``, whose ``name`` may be absent)."""
    return spec["inputs"] if "inputs" in spec else [spec["input"]]


def _check_layer(layer, i, previous, where: _Where, shapes: dict, layer_names: set) -> None:
    """Check ``layers[i]`` (``previous``: the tensor a layer without ``inputs`` reads); record
    its output shape in ``shapes`` (tensor name -> shape)."""
    at = where / "layers" / i
    _object(layer, at)
    for key in ("name", "op"):
        if key not in layer:
            at.fail(f"missing field {key!r}{did_you_mean(key, layer.keys())}")
    name = _str(layer["name"], at / "name")
    if name in shapes:
        (at / "name").fail(f"layer name {name!r} is used twice (by an earlier layer or a network input)")
    at = _Where(where.origin, at.path, f"layer {name!r}")
    if not isinstance(layer["op"], str) or layer["op"] not in OPS:
        (at / "op").fail(f"unknown op {_describe(layer['op'])}; supported ops: {', '.join(sorted(OPS))}")
    rule = OPS[layer["op"]]
    _fields(layer, (*_LAYER_BASE, *rule.required, *(("inputs",) if rule.arity > 1 else ())), (*rule.optional, "inputs"), at)
    for field in ("input_shape", "output_shape"):
        _shape(layer[field], at / field)
    sources = _read_sources(layer, rule.arity, previous, at, shapes)
    if layer["input_shape"] != shapes[sources[0]]:
        source = "the previous layer" if "inputs" not in layer else (f"layer {sources[0]!r}" if sources[0] in layer_names else "the network input")
        (at / "input_shape").fail(f"is {layer['input_shape']}, but {source} gives {shapes[sources[0]]}")
    _type(layer, "result_type", at)
    if rule.arity > 1:
        rule.check(layer, at, [shapes[s] for s in sources])
    else:
        rule.check(layer, at)
    shapes[name] = layer["output_shape"]
    layer_names.add(name)


def _read_sources(layer, arity, previous, at: _Where, shapes: dict) -> list:
    """The tensors a layer reads: those its ``inputs`` names (network inputs or earlier
    layers; ``arity`` of them), else ``previous``."""
    if "inputs" not in layer:
        return [previous]
    inputs = layer["inputs"]
    if not isinstance(inputs, list) or len(inputs) != arity:
        what = "one layer name" if arity == 1 else f"{arity} layer or input names"
        (at / "inputs").fail(f"a {layer['op']} reads {what}: expected a list of {arity}, got {_describe(inputs)}")
    known = [key for key in shapes if key is not _INPUT]
    for j, source in enumerate(inputs):
        _str(source, at / "inputs" / j)
        if source not in shapes:
            (at / "inputs" / j).fail(f"{source!r} is not a network input or an earlier layer{did_you_mean(source, known)}")
    return inputs


def _check_input(entry, at: _Where, named: bool) -> list:
    _object(entry, at)
    _fields(entry, ("name", "shape", "type") if named else ("shape", "type"), () if named else ("name",), at)
    if "name" in entry:
        _str(entry["name"], at / "name")
    _type(entry, "type", at)
    return _shape(entry["shape"], at / "shape")


def _check_inputs(spec, where: _Where) -> dict:
    """The network inputs' shapes by name (a format-1 spec's one input also under ``_INPUT``)."""
    if "input" in spec:
        shape = _check_input(spec["input"], where / "input", named=False)
        return {_INPUT: shape, **({spec["input"]["name"]: shape} if "name" in spec["input"] else {})}
    inputs = spec["inputs"]
    if not isinstance(inputs, list) or not inputs:
        (where / "inputs").fail(f"expected a non-empty list of network inputs, got {_describe(inputs)}")
    shapes = {}
    for j, entry in enumerate(inputs):
        shape = _check_input(entry, where / "inputs" / j, named=True)
        if entry["name"] in shapes:
            (where / "inputs" / j / "name").fail(f"input name {entry['name']!r} is used twice")
        shapes[entry["name"]] = shape
    return shapes


def _check_outputs(spec, shapes: dict, last: str, where: _Where) -> None:
    """Each output reads ``index`` of the layer it names (``layer``; absent: the last layer)."""
    outputs = spec["outputs"]
    if not isinstance(outputs, list) or not outputs:
        (where / "outputs").fail(f"expected a non-empty list of outputs, got {_describe(outputs)}")
    seen = {}
    for j, out in enumerate(outputs):
        at = where / "outputs" / j
        _object(out, at)
        _fields(out, ("name", "index", "scale", "offset"), ("unit", "frame", "layer"), at)
        name = _str(out["name"], at / "name")
        if name in seen:
            (at / "name").fail(f"output name {name!r} is used twice")
        seen[name] = j
        layer = _str(out["layer"], at / "layer") if "layer" in out else last
        if layer not in shapes:
            layers = [key for key in shapes if key is not _INPUT]
            (at / "layer").fail(f"output {name!r} reads layer {layer!r}, which the spec does not have{did_you_mean(layer, layers)}")
        n_out = math.prod(shapes[layer])
        index = _int(out["index"], at / "index", 0)
        if index >= n_out:
            held = f"layer {layer!r} has" if "layer" in out else "the network has"
            (at / "index").fail(f"output {name!r} has index {index}, {held} {n_out} outputs")
        if _number(out["scale"], at / "scale") == 0:
            (at / "scale").fail("a scale of 0 maps every output to the offset")
        _number(out["offset"], at / "offset")
        if "unit" in out:
            _str(out["unit"], at / "unit")
        if "frame" in out:
            _choice(out["frame"], FRAMES, at / "frame")


def _check_preprocessing(spec, input_shape, where: _Where) -> None:
    at = where / "preprocessing"
    pre = _object(spec["preprocessing"], at)
    _fields(pre, ("image",), ("fragment", "layers"), at)
    image = _ints(pre["image"], at / "image", 2, low=1)
    if image != [N_LAYERS, N_STRIPS]:
        (at / "image").fail(f"is {image}; the sector image is [{N_LAYERS}, {N_STRIPS}] (layers x strips)")
    rows = len(_check_layers(pre["layers"], at / "layers")) if "layers" in pre else N_LAYERS
    expected = [rows, N_STRIPS]
    if "fragment" in pre:
        frag_at = at / "fragment"
        fragment = _object(pre["fragment"], frag_at)
        _fields(fragment, ("window", "pool", "stride"), ("candidates", "min_hits"), frag_at)
        # the trigger fragments with these constants: a spec asking for others would be ignored
        if _int(fragment["window"], frag_at / "window", 1) != WINDOW_STRIPS:
            (frag_at / "window").fail(f"is {fragment['window']}; the trigger's fragmentation window is {WINDOW_STRIPS} strips")
        if _int(fragment["pool"], frag_at / "pool", 1) != POOL:
            (frag_at / "pool").fail(f"is {fragment['pool']}; the trigger pools {POOL} strips into one pixel")
        _int(fragment["stride"], frag_at / "stride", 1, N_STRIPS)
        _check_candidates(spec, fragment, frag_at, where)
        expected = [rows, WINDOW_STRIPS // POOL]
    if input_shape[:2] != expected:
        layers = f" of layers {pre['layers']}" if "layers" in pre else ""
        (where / "input" / "shape").fail(f"is {input_shape}, but preprocessing gives images{layers} of {expected}")


def _check_layers(value, at: _Where) -> tuple:
    """``preprocessing.layers``: RPC layer indices, strictly increasing (the rule of :func:`l0emu.trigger.geometry.check_layers`)."""
    if not isinstance(value, list) or not value:
        at.fail(f"expected a non-empty list of RPC layer indices in [0, {N_LAYERS - 1}], got {_describe(value)}")
    for i, k in enumerate(value):
        _int(k, at / i, 0, N_LAYERS - 1)
        if i and k <= value[i - 1]:
            (at / i).fail(f"{k} follows {value[i - 1]}; layers must be strictly increasing (image rows in layer order)")
    return tuple(value)


def preprocessing_layers(spec: dict) -> tuple:
    """The RPC layers (tuple of indices) the validated ``spec``'s images are made of; all nine without ``layers``."""
    layers = (spec.get("preprocessing") or {}).get("layers")
    return ALL_LAYERS if layers is None else tuple(layers)


def _check_candidates(spec, fragment, at: _Where, where: _Where) -> None:
    if "candidates" not in fragment:
        if "min_hits" in fragment:
            (at / "min_hits").fail("is only read with 'candidates' (the sector logic's further windows)")
        return
    _int(fragment["candidates"], at / "candidates", 1, MAX_CANDIDATES)
    if "min_hits" in fragment:
        _int(fragment["min_hits"], at / "min_hits", 1, N_LAYERS * WINDOW_STRIPS)
    names = [out["name"] for out in spec["outputs"]]
    missing = [name for name in CANDIDATE_OUTPUTS if name not in names]
    if missing:
        (where / "outputs").fail(f"has no output named {missing[0]!r}, which the sector logic ('candidates') reads; "
                                 f"it has {names}{did_you_mean(missing[0], names)}")


def validate_spec(spec: dict, origin: str = "spec") -> dict:
    """Check every field of ``spec`` against the format and against each other.

    Returns ``spec`` unchanged or raises :class:`SpecError` naming the field's path
    (``spec.json: layer 'conv3' at layers[3].weights[17]: ...``).
    """
    where = _Where(str(origin))
    _object(spec, where)
    fmt = _choice(spec.get("format"), FORMATS, where / "format") if isinstance(spec.get("format"), str) else None
    if fmt is None:
        (where / "format").fail(f"is {_describe(spec.get('format'))}, this l0emu reads {', '.join(map(repr, FORMATS))}")
    _fields(spec, _TOP[fmt], _TOP_OPTIONAL, where)
    _str(spec["name"], where / "name")
    _object(spec["source"], where / "source")
    if "io_type" in spec["source"]:
        _choice(spec["source"]["io_type"], ("io_parallel", "io_stream"), where / "source" / "io_type")
    shapes = _check_inputs(spec, where)  # tensor shapes by name: the inputs', then each layer's
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        (where / "layers").fail(f"expected a non-empty list of layers, got {_describe(layers)}")
    previous = next(iter(shapes))  # a first layer without "inputs" reads the (first) network input
    layer_names = set()
    for i, layer in enumerate(layers):
        _check_layer(layer, i, previous, where, shapes, layer_names)
        previous = layer["name"]
    _check_outputs(spec, shapes, layers[-1]["name"], where)
    if "preprocessing" in spec:
        if len(spec_inputs(spec)) > 1:
            (where / "preprocessing").fail("the trigger feeds a network one image; a network with several inputs has no preprocessing")
        _check_preprocessing(spec, spec_inputs(spec)[0]["shape"], where)
    _check_resource_convs(spec, where)
    if spec["format"] != FORMAT:
        _check_old_types(spec, where)
    return spec


def _check_old_types(spec, where: _Where) -> None:
    """An /1 spec's ``ap_fixed<W,W,AP_TRN_ZERO,AP_WRAP,0>`` may have been an ap_int<W>, which
    converts values differently (aptypes.cast_target): refused rather than guessed."""
    typed = [(where / "input" / "type", spec["input"]["type"])]
    for i, layer in enumerate(spec["layers"]):
        typed += [(where / "layers" / i / key, value) for key, value in layer.items() if key.endswith("_type")]
    for at, text in typed:
        t = parse_type(text)
        if not t.int_kind and t.integer == t.width and (t.rounding, t.saturation, t.sat_bits) == ("TRN_ZERO", "WRAP", 0):
            at.fail(f"{text} in an {spec['format']} spec may stand for an ap_int<{t.width}> or ap_fixed<{t.width},{t.width},AP_TRN_ZERO>, "
                    f"which convert values differently; re-run 'l0emu convert' to write an {FORMAT} spec")


def chain_spec(name: str, source: dict, input_shape, input_type: str, layers: list) -> dict:
    """The validated spec of the chain ``layers`` (none naming ``inputs``) on one input of
    ``input_shape`` and ``input_type``, named apart from the layers; the last layer's whole
    tensor is its one head (output ``y``). The emulator's stages are such specs."""
    names = {layer["name"] for layer in layers}
    input_name = "stage_input"
    while input_name in names:
        input_name += "_"
    spec = {
        "format": FORMAT,
        "name": name,
        "source": source,
        "inputs": [{"name": input_name, "shape": list(input_shape), "type": input_type}],
        "layers": layers,
        "outputs": [{"name": "y", "index": 0, "offset": 0.0, "scale": 1.0}],
    }
    return validate_spec(spec, origin=f"stage {name!r}")


def output_layout(spec: dict) -> tuple:
    """The columns of the emulator's raw outputs for a validated spec: ``(heads, columns)``.

    ``heads`` lists ``(layer name, first column, size)`` for each layer the outputs read, in
    the order ``outputs`` first names them; the raw outputs are those layers' whole tensors
    side by side. ``columns`` maps each output name to its column. A spec without ``layer``
    fields has one head, the last layer, and its columns are the outputs' ``index``.
    """
    sizes = {layer["name"]: math.prod(layer["output_shape"]) for layer in spec["layers"]}
    last = spec["layers"][-1]["name"]
    heads, first = [], {}
    for out in spec["outputs"]:
        layer = out.get("layer", last)
        if layer not in first:
            first[layer] = sum(size for _, _, size in heads)
            heads.append((layer, first[layer], sizes[layer]))
    columns = {out["name"]: first[out.get("layer", last)] + out["index"] for out in spec["outputs"]}
    return heads, columns


def read_spec(path) -> dict:
    """Read and validate ``spec.json`` (or a project directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "spec.json"
    if not path.is_file():
        msg = f"no network spec at {str(path)!r}; 'l0emu convert' writes one into the project directory"
        raise SpecError(msg)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        msg = f"{str(path)!r} is not valid JSON: {err}"
        raise SpecError(msg) from None
    return validate_spec(spec, origin=str(path))


def write_spec(spec: dict, path) -> Path:
    """Validate ``spec`` and write it atomically to ``path``."""
    path = Path(path)
    validate_spec(spec, origin=str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(spec, indent=1) + "\n")
    return path
