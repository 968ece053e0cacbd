"""The network spec (``spec.json``): the only thing the emulator knows about a network.

Written by :func:`write_spec` and read by :func:`read_spec`, nowhere else. The firmware
bridge builds the dictionary from the hls4ml model *after* hls4ml's passes, so the types
and integer weights are exactly those of the HLS code.

Format ``l0emu-spec/1``::

    {
      "format": "l0emu-spec/1",
      "name": "student_q4",
      "source": {"model_sha256": ..., "hls4ml_version": ..., "io_type": "io_parallel", ...},
      "input": {"name": "input_1", "shape": [9, 16, 1], "type": "ap_fixed<16,6,AP_TRN,AP_WRAP,0>"},
      "preprocessing": {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}},
      "layers": [ {"name": ..., "op": ..., ...}, ... ],
      "outputs": [
        {"name": "pt", "index": 0, "scale": 20.0, "offset": 0.0, "unit": "GeV"},
        {"name": "eta", "index": 1, "scale": 32.0, "offset": 0.0, "unit": "strip", "frame": "window"}
      ]
    }

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
- ``zero_pad2d``: ``pad`` [top, bottom, left, right] zeros around each channel (hls4ml inserts
  it before a "same"-padded conv2d in io_stream); the cast into ``result_type`` is the op.

Optional fields the bridge adds: conv2d/dense ``strategy`` and ``reuse_factor``; ``scale``
``product`` ("mult", or "weight_exponential" for QKeras ``alpha='auto_po2'``, whose
``{sign, exponent}`` scales hls4ml applies as shifts in
``ap_fixed<2*(E+W_in), E+W_in>`` with E = ``scale_exponent_width``; the spec stores them as
exact ``scale_type`` mantissas).

``outputs`` maps network output units to physical units: ``physical = offset + scale * y``.
An output with ``"frame": "window"`` is relative to the fragmentation window's low edge
(``unit`` "strip"): the trigger adds the window start in fixed point.
"""

from __future__ import annotations

import json
from pathlib import Path

from .aptypes import parse_type
from .atomic import atomic_path
from .errors import SpecError, did_you_mean

__all__ = ["FORMAT", "OPS", "read_spec", "write_spec", "validate_spec"]

FORMAT = "l0emu-spec/1"

_SHAPE = ("input_shape", "output_shape")
_WEIGHTED = ("weight_type", "bias_type", "accum_type", "weights", "weights_shape", "biases", "product")
_POOL = ("pool", "strides", "padding", "pad")

# op -> fields it must have beyond name/op/result_type
OPS = {
    "conv2d": _SHAPE + ("kernel", "strides", "padding", "pad", "filters") + _WEIGHTED,
    "dense": _SHAPE + ("n_in", "n_out") + _WEIGHTED,
    "relu": _SHAPE,
    "linear": _SHAPE,
    "max_pool2d": _SHAPE + _POOL,
    "avg_pool2d": _SHAPE + _POOL + ("accum_type",),
    "scale": _SHAPE + ("scale_type", "bias_type", "scale", "bias"),
    "flatten": _SHAPE,
    "zero_pad2d": _SHAPE + ("pad",),
}

_TOP = ("format", "name", "source", "input", "layers", "outputs")
_TYPE_FIELDS = ("result_type", "weight_type", "bias_type", "accum_type", "scale_type")


def _require(mapping, keys, where):
    for key in keys:
        if key not in mapping:
            msg = f"{where}: missing field {key!r}{did_you_mean(key, mapping.keys())}"
            raise SpecError(msg)


def _prod(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _check_types(layer, where):
    for field in _TYPE_FIELDS:
        if field in layer:
            try:
                parse_type(layer[field])
            except SpecError as err:
                msg = f"{where}: field {field!r}: {err}"
                raise SpecError(msg) from None


def _check_counts(layer, where):
    pairs = [("weights", _prod(layer.get("weights_shape", ())))]
    if layer["op"] in ("conv2d", "dense"):
        n_out = layer["filters"] if layer["op"] == "conv2d" else layer["n_out"]
        pairs.append(("biases", n_out))
    if layer["op"] == "scale":
        channels = layer["output_shape"][-1]
        pairs = [("scale", channels), ("bias", channels)]
    for field, expected in pairs:
        if field in layer and len(layer[field]) != expected:
            msg = (
                f"{where}: {field!r} holds {len(layer[field])} values but the layer's shape "
                f"needs {expected}"
            )
            raise SpecError(msg)


def validate_spec(spec: dict, origin: str = "spec") -> dict:
    """Check ``spec`` against the format; return it unchanged or raise :class:`SpecError`."""
    if not isinstance(spec, dict):
        msg = f"{origin}: a spec is a JSON object, got {type(spec).__name__}"
        raise SpecError(msg)
    _require(spec, _TOP, origin)
    if spec["format"] != FORMAT:
        msg = f"{origin}: format is {spec['format']!r}, this l0emu reads {FORMAT!r}"
        raise SpecError(msg)
    _require(spec["input"], ("shape", "type"), f"{origin}: input")
    try:
        parse_type(spec["input"]["type"])
    except SpecError as err:
        msg = f"{origin}: input: field 'type': {err}"
        raise SpecError(msg) from None
    for i, layer in enumerate(spec["layers"]):
        _require(layer, ("name", "op", "result_type"), f"{origin}: layers[{i}]")
        where = f"{origin}: layer {layer['name']!r} (layers[{i}])"
        if layer["op"] not in OPS:
            msg = f"{where}: unknown op {layer['op']!r}; supported ops: {', '.join(sorted(OPS))}"
            raise SpecError(msg)
        _require(layer, OPS[layer["op"]], where)
        _check_types(layer, where)
        _check_counts(layer, where)
    n_out = _prod(spec["layers"][-1]["output_shape"]) if spec["layers"] else 0
    for j, out in enumerate(spec["outputs"]):
        _require(out, ("name", "index", "scale", "offset"), f"{origin}: outputs[{j}]")
        if not 0 <= out["index"] < n_out:
            msg = f"{origin}: output {out['name']!r} has index {out['index']}, the network has {n_out} outputs"
            raise SpecError(msg)
    return spec


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
