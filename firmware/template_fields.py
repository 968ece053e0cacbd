"""The closed world of the bridge: every field hls4ml writes into a layer's C++, and what became of it.

hls4ml writes a layer's code from templates (its Vitis backend's config and function templates)
whose ``{fields}`` it fills from the layer's attributes. For every hls4ml layer class the bridge
emulates, :data:`TEMPLATE_FIELDS` lists each such field with what the bridge does with it:

- ``"spec: ..."``: read into the spec (the named fields), so the emulator computes from it;
- ``"no bits: ..."``: it cannot change a result bit, with the reason;
- ``"refused: ..."``: the bridge refuses the values the emulator does not model
  (:func:`check_layer_settings`, called for every layer at ``convert``), and the spec cannot say them,
  so a spec that is read never holds them.

``tests/test_closed_world.py`` compares this table with the installed hls4ml's templates: a field
that appears there and not here fails the test, so a new hls4ml setting cannot pass unnoticed.
"""

from __future__ import annotations

from l0emu.errors import SpecError

__all__ = ["REFUSED_SUBCLASSES", "TEMPLATE_FIELDS", "check_layer_settings"]

_NAME = "no bits: names the config struct, a C++ variable or the function called"
_PRAGMA = "no bits: sets HLS pragmas (pipelining, partitioning), not arithmetic"
_IO = "spec: source.io_type (io_stream's buffering of the same values)"
_FUNCTION = {field: _NAME for field in ("index", "config", "input", "output")}
_TYPES = {"input_t": "spec: the input's type (input.type or the previous layer's result_type)", "output_t": "spec: result_type"}
_FORMAT = {"data_format": "refused: channels_first (the spec is channels last, as Keras and hls4ml's io_parallel)"}
_ACTIVATION = {
    **_FUNCTION, **_TYPES, "iotype": _IO, "reuse": _PRAGMA, "n_in": "spec: input_shape", "type": _NAME,
    "activation": "spec: op (the activation function)",
}
_TABLE = {"table_size": "spec: table_size (sigmoid, tanh; others have no table)", "table_t": "spec: table_type (sigmoid, tanh; others have no table)"}
_DOT = {
    **_FUNCTION, **_TYPES, "w": _NAME, "b": _NAME, "accum_t": "spec: accum_type", "bias_t": "spec: bias_type",
    "weight_t": "spec: weight_type (po2 kernels: the exact values of their {sign, exponent} pairs and weight_exponent_width)",
    "product_type": "spec: product", "reuse": "spec: reuse_factor (Resource: the order of additions)",
    "strategy": "spec: strategy (latency, resource; others refused)", "dense_function": "spec: strategy and reuse_factor, which choose it",
    "nzeros": "no bits: counts zero weights for resource estimates", "n_in": "spec: n_in / kernel x input channels",
    "n_out": "spec: n_out / filters",
}  # fmt: skip
_SPATIAL = {f"{side}": "spec: pad" for side in ("pad_top", "pad_bottom", "pad_left", "pad_right")}
_SPATIAL.update({"in_height": "spec: input_shape", "in_width": "spec: input_shape", "out_height": "spec: output_shape",
                 "out_width": "spec: output_shape", "stride_height": "spec: strides", "stride_width": "spec: strides"})  # fmt: skip
_CONV_BUFFERS = "no bits: how the input window is buffered (im2col fill, line buffer, partitions); which inputs meet which weights follows from kernel, strides and pad"

TEMPLATE_FIELDS = {
    "Dense": {**_DOT, "iotype": _IO, "nonzeros": "no bits: counts nonzero weights for resource estimates",
              "index_t": "no bits: index type of the compressed strategy, which is refused"},
    "Conv2D": {
        **_DOT, **_SPATIAL, **_FORMAT, "n_chan": "spec: input_shape", "n_filt": "spec: filters", "filt_height": "spec: kernel",
        "filt_width": "spec: kernel", "implementation": "refused: anything but linebuffer in io_stream (Vitis asserts it)",
        **{field: _CONV_BUFFERS for field in ("config_t", "fill_fn", "instructions", "min_height", "min_width", "n_partitions",
                                              "scale_index_height_type", "scale_index_width_type")},
    },  # fmt: skip
    "Pooling2D": {
        **_FUNCTION, **_TYPES, **_SPATIAL, **_FORMAT, "accum_t": "spec: accum_type", "pool_op": "spec: op (max_pool2d, avg_pool2d)",
        "pool_height": "spec: pool", "pool_width": "spec: pool", "n_filt": "spec: input_shape", "reuse": _PRAGMA,
        "count_pad": "refused: true on an average pool with padding (the emulator divides by the unpadded count, hls4ml's Keras default; a max pool, or no padding, ignores it)",
        "implementation": "refused: anything but linebuffer in io_stream (Vitis asserts it)",
        "n_in": "no bits: the 1-D pooling's width, not read by pooling2d", "n_out": "no bits: the 1-D pooling's width, not read by pooling2d",
    },  # fmt: skip
    "ZeroPadding2D": {**_FUNCTION, **_TYPES, **{k: v for k, v in _SPATIAL.items() if not k.startswith("stride")}, **_FORMAT,
                      "n_chan": "spec: input_shape"},
    "BatchNormalization": {
        **_FUNCTION, **_TYPES, "iotype": _IO, "reuse": _PRAGMA, "n_in": "spec: input_shape", "n_filt": "spec: input_shape",
        "scale": _NAME, "bias": _NAME, "scale_t": "spec: scale_type (po2: scale_exponent_width)", "bias_t": "spec: bias_type",
        "product_type": "spec: product",
    },  # fmt: skip
    "BatchNormalizationQuantizedTanh": {
        **_FUNCTION, "input_t": _TYPES["input_t"], "iotype": _IO, "reuse": _PRAGMA, "n_in": "spec: input_shape",
        "n_filt": "spec: threshold count (per channel or per element)", "threshold": _NAME,
        "quantize": "spec: op (bn_binary_tanh, bn_ternary_tanh)",
    },  # fmt: skip
    "Activation": {**_ACTIVATION, **_TABLE},
    "HardActivation": {**_ACTIVATION, "slope": "spec: slope", "slope_t": "spec: slope_type", "shift": "spec: shift", "shift_t": "spec: shift_type"},
    "ParametrizedActivation": {**_ACTIVATION, **_TABLE, "param": "spec: param", "param_t": "spec: param_type"},
    "Softmax": {
        **_ACTIVATION, "implementation": "spec: implementation (stable, latency, argmax; legacy refused)",
        "accum_t": "spec: accum_type", "exp_table_t": "spec: exp_table_type", "inv_table_t": "spec: inv_table_type",
        "inv_inp_t": "spec: inv_input_type", "inp_norm_t_str": "spec: norm_type", "exp_table_size": "spec: exp_table_size",
        "inv_table_size": "spec: inv_table_size", "exp_scale": "spec: exp_table (the entries hls4ml's initializer computes with it)",
        "axis": "refused: any input but 1-D (one slice, so the axis is the input)", "n_slice": "refused: n_slice != n_in (1-D input only)",
        "n_inner": "refused: n_inner != 1 (1-D input only)", "n_outer": "refused: n_outer != 1 (1-D input only)",
        "parallelization_factor": "no bits: how many slices run in parallel; a 1-D input is one slice",
    },  # fmt: skip
    "Reshape": {},  # hls4ml writes no code for a flatten in io_parallel (and a copy in io_stream)
    "Conv1D": {
        **_DOT, **_FORMAT, "n_chan": "spec: input_shape", "n_filt": "spec: filters", "filt_width": "spec: kernel",
        "in_width": "spec: input_shape", "out_width": "spec: output_shape", "pad_left": "spec: pad", "pad_right": "spec: pad",
        "stride_width": "spec: strides", "implementation": "refused: anything but linebuffer in io_stream (Vitis asserts it)",
        "dilation": "refused: anything but 1 (hls4ml's Keras parser sets none; its buffers ignore it)",
        "conv_fn": "no bits: Conv1DLatency, Conv1DResource or, for a pointwise io_parallel Latency kernel, BatchedDenseForConv1D, "
                   "whose pointwise_conv_1d_latency_cl casts each product into accum_t and adds it to the bias channel by channel, "
                   "as the im2col kernel does",
        **{field: _CONV_BUFFERS for field in ("config_t", "fill_fn", "instructions", "min_width", "n_partitions", "scale_index_type")},
    },  # fmt: skip
    **dict.fromkeys(("Pooling1D", "GlobalPooling1D", "GlobalPooling2D"), {}),
    "ZeroPadding1D": {},
    "Merge": {
        **{field: _NAME for field in ("index", "config", "input1", "input2", "output")}, "input1_t": "spec: the first input's type",
        "input2_t": "spec: the second input's type", "output_t": "spec: result_type", "merge": "spec: op (add, subtract, multiply, "
        "average, maximum, minimum)", "reuse": _PRAGMA, "n_elem": "spec: input_shape", "n_elem1": "spec: input_shape",
        "n_elem2": "spec: the second input's shape",
    },  # fmt: skip
    "Concatenate": {
        **{field: _NAME for field in ("index", "config", "input1", "input2", "output")}, "input1_t": "spec: the first input's type",
        "input2_t": "spec: the second input's type", "output_t": "spec: result_type", "merge": "spec: op (concatenate)",
        "axis": "spec: axis", **{f"n_elem{k}_{d}": "spec: the inputs' shapes" for k in (1, 2) for d in range(3)},
    },  # fmt: skip
    "FixedPointQuantizer": {
        **_TYPES, "input": _NAME, "output": _NAME, "namespace": _NAME,
        "name": "spec: element_types (it names the function hls4ml generates for the layer, one cast per element "
                "into that element's type, its modes the layer's RND and SAT; io_stream refused by hls4ml)",
    },  # fmt: skip
    "Resize": {
        **_FUNCTION, "input_t": _TYPES["input_t"], "in_height": "spec: input_shape", "in_width": "spec: input_shape",
        "out_height": "spec: output_shape", "out_width": "spec: output_shape", "n_chan": "spec: input_shape",
        "algorithm": "refused: anything but nearest (bilinear, align_corners)",
    },  # fmt: skip
}
# the 1-D and global pools fill the 2-D pool's template (pool_op: max or average; n_in, n_out: the 1-D width)
for _pool in ("Pooling1D", "GlobalPooling1D", "GlobalPooling2D"):
    TEMPLATE_FIELDS[_pool] = {**TEMPLATE_FIELDS["Pooling2D"], "pool_op": "spec: op (max or average pool)",
                              "n_in": "spec: input_shape (1-D width)", "n_out": "spec: output_shape (1-D width)"}
TEMPLATE_FIELDS["ZeroPadding1D"] = dict(TEMPLATE_FIELDS["ZeroPadding2D"])
# QONNX scales (Quant nodes with a scale that is not folded into a type) become ApplyAlpha layers,
# which hls4ml writes with the batch-normalization templates
TEMPLATE_FIELDS["ApplyAlpha"] = dict(TEMPLATE_FIELDS["BatchNormalization"])
# a 1x1 convolution (hls4ml's pointwise class) and QKeras' QConv2DBatchnorm fill the convolution's templates
TEMPLATE_FIELDS["PointwiseConv2D"] = TEMPLATE_FIELDS["Conv2DBatchnorm"] = dict(TEMPLATE_FIELDS["Conv2D"])
TEMPLATE_FIELDS["PointwiseConv1D"] = dict(TEMPLATE_FIELDS["Conv1D"])

# Subclasses of emulated hls4ml classes whose arithmetic differs from their parent's: the layer
# handlers would take them by class, so they are refused by name (the ONNX and PyTorch parsers make them).
REFUSED_SUBCLASSES = {
    "DepthwiseConv1D": "each channel convolved with its own kernel (a grouped convolution), which the emulator's convolution does not model",
    "DepthwiseConv2D": "each channel convolved with its own kernel (a grouped convolution), which the emulator's convolution does not model",
    "BiasAdd": "a bias added to one tensor by hls4ml's merge templates, which the emulator does not model",
}


def check_layer_settings(layer) -> None:
    """Refuse, by layer and setting, the values of template fields the emulator does not model
    (and, by layer, the classes of :data:`REFUSED_SUBCLASSES`)."""
    refused = next((name for name in REFUSED_SUBCLASSES if name in {cls.__name__ for cls in type(layer).__mro__}), None)
    if refused:
        msg = f"layer {layer.name!r} is hls4ml's {refused}: {REFUSED_SUBCLASSES[refused]}"
        raise SpecError(msg)
    if str(layer.get_attr("data_format", "channels_last")) != "channels_last":
        msg = f"layer {layer.name!r}: data_format {layer.get_attr('data_format')!r} is not emulated; use channels_last"
        raise SpecError(msg)
    if int(layer.get_attr("dilation", 1)) != 1:
        msg = f"layer {layer.name!r}: dilation {layer.get_attr('dilation')} is not emulated; use 1"
        raise SpecError(msg)
    if layer.get_attr("count_pad", False) and _averages_padding(layer):
        msg = f"layer {layer.name!r}: count_pad=True (padding counted in the average) is not emulated"
        raise SpecError(msg)
    io_type = layer.model.config.get_config_value("IOType")
    implementation = str(layer.get_attr("implementation", "linebuffer")).lower()
    if io_type == "io_stream" and ("Conv" in layer.class_name or "Pooling" in layer.class_name) and implementation != "linebuffer":
        msg = f"layer {layer.name!r}: io_stream implementation {implementation!r} is not emulated; use linebuffer"
        raise SpecError(msg)


def _averages_padding(layer) -> bool:
    """Whether ``count_pad`` changes bits: only an average pool divides by the count, and
    only padded cells make it differ (hls4ml's PyTorch parser sets it on every pool)."""
    padded = any(int(layer.get_attr(f"pad_{side}", 0)) for side in ("top", "bottom", "left", "right"))
    return str(layer.get_attr("pool_op", "")) == "Average" and padded
