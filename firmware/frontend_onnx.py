"""The ONNX front end: float ONNX and QONNX (``Quant`` nodes, e.g. a Brevitas export) models.

hls4ml 1.3.0 reads ONNX only after qonnx has cleaned it up: :func:`cleaned_model` applies what
hls4ml's own QONNX tests apply before ``convert_from_onnx_model`` (``cleanup_model``,
``ConvertToChannelsLastAndClean``, ``GemmToMatMul``, ``cleanup_model`` again), with the
network's input made channels last too, as the spec holds every tensor. A float
model takes ``default_precision`` (``ap_fixed<16,6>``) where hls4ml's config asks for one; a
QONNX model takes its types from its ``Quant`` nodes, which hls4ml turns into layer types and
ApplyAlpha (scale) layers. The ``--config`` file's ``layers`` name the layers of hls4ml's config,
the (cleaned) ONNX node names.

Refused here, by node: an ONNX op hls4ml 1.3.0 has no parser for, a ``Quant`` node whose bit
width varies per element (the spec holds one type per tensor), and one with a scale per channel
(hls4ml 1.3.0 fails on it). Layers hls4ml builds but the emulator does not model are refused by
``extract_spec``, by layer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from l0emu.errors import ConfigError, InputFileError, SpecError

from .hls4ml_bridge import (
    FRONT_ENDS,
    FrontEnd,
    apply_layer_settings,
    conversion_settings,
    from_channels_first,
    hls4ml_call,
    project_config,
    refuse_bit_exact,
    to_channels_first,
)
from .keras_env import hls4ml_module

__all__ = ["ONNX_MODEL_FILE", "OnnxFrontEnd", "build_onnx_model", "cleaned_model", "load_onnx_model", "run_onnx"]

ONNX_MODEL_FILE = "model.onnx"
# ONNX ops hls4ml 1.3.0's parser drops without a layer (onnx_to_hls.parse_onnx_model)
_SKIPPED_OPS = ("Dropout", "Identity")
_WHAT = "the ONNX model"


def load_onnx_model(path):
    """The ``onnx.ModelProto`` in ``path``, as given (cleaned only when built)."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        msg = f"model {str(path)!r} does not exist or is not a file; pass an .onnx file"
        raise InputFileError(msg)
    try:
        return onnx.load(str(path))
    except (OSError, DecodeError) as err:
        msg = f"cannot load an ONNX model from {str(path)!r}: {err}"
        raise InputFileError(msg) from None


def cleaned_model(model):
    """The qonnx ``ModelWrapper`` hls4ml 1.3.0 reads: cleaned up, channels last (its input too), Gemm as MatMul."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        # GemmToMatMul warns about every opset after 9; the Gemm of later opsets has the same attributes
        warnings.filterwarnings("ignore", message="The GemmToMatMul transformation only offers explicit support", category=UserWarning)
        wrapper = cleanup_model(ModelWrapper(model))
        # the input too: else a Transpose node stays at the input, which hls4ml keeps as a layer in io_stream
        wrapper = wrapper.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
        wrapper = _with_gemm_bias(wrapper).transform(GemmToMatMul())
        return cleanup_model(wrapper)


def _with_gemm_bias(wrapper):
    """Give each Gemm without a bias (a PyTorch ``Linear(bias=False)``) a zero one: qonnx 1.0's
    GemmToMatMul reads the third input unconditionally."""
    for node in wrapper.graph.node:
        if node.op_type == "Gemm" and len(node.input) == 2:
            shape = wrapper.get_tensor_shape(node.output[0])
            name = wrapper.make_new_valueinfo_name()
            wrapper.set_initializer(name, np.zeros(shape[-1:], dtype=np.float32))
            node.input.append(name)
    return wrapper


def _file_names(model, op_type) -> str:
    """The names the ONNX file gives its nodes of ``op_type`` (qonnx's cleanup renames every node)."""
    names = [node.name or "(unnamed)" for node in model.graph.node if node.op_type == op_type]
    return f" (in the file: {', '.join(repr(n) for n in names)})" if names else ""


# Quant inputs: (x, scale, zero point, bit width)
_SCALE, _BIT_WIDTH = 1, 3


def _per_element(wrapper, node, index) -> bool:
    """Whether the Quant input ``index`` is a constant with more than one value."""
    value = wrapper.get_initializer(node.input[index]) if len(node.input) > index else None
    return value is not None and np.asarray(value).size != 1


def _check_quant(wrapper, node, origin):
    if _per_element(wrapper, node, _BIT_WIDTH):
        msg = f"{origin}: QONNX node {node.name!r} quantizes with a bit width per element; the spec holds one type per tensor"
        raise SpecError(msg)
    if _per_element(wrapper, node, _SCALE):
        shape = list(np.asarray(wrapper.get_initializer(node.input[_SCALE])).shape)
        msg = (
            f"{origin}: QONNX node {node.name!r} quantizes with a scale per channel (shape {shape}), which hls4ml 1.3.0 "
            "fails to convert (its precision inference loses the scale layer's input); use per-tensor scales "
            "(Brevitas: a PerTensor weight quantizer)"
        )
        raise SpecError(msg)


def _check_nodes(model, wrapper, origin):
    """Refuse, by node name, ops hls4ml cannot parse and Quant nodes with per-element bit widths or scales."""
    from hls4ml.converters.onnx_to_hls import get_supported_onnx_layers
    from qonnx.core.modelwrapper import ModelWrapper

    given = ModelWrapper(model)
    for node in given.graph.node:  # before the cleanup, so that the message has the file's name
        if node.op_type == "Quant":
            _check_quant(given, node, origin)
    parsed = set(get_supported_onnx_layers()) | set(_SKIPPED_OPS)
    for node in wrapper.graph.node:
        if node.op_type not in parsed:
            msg = (
                f"{origin}: ONNX node {node.name!r}{_file_names(model, node.op_type)} is a {node.op_type}, which hls4ml 1.3.0 "
                f"cannot convert; it converts {', '.join(sorted(parsed))}"
            )
            raise ConfigError(msg)
        if node.op_type == "Quant":  # constants the cleanup folded
            _check_quant(wrapper, node, origin)
            if wrapper.get_initializer(node.input[_BIT_WIDTH]) is None:
                msg = f"{origin}: QONNX node {node.name!r} quantizes with a bit width that is not a constant; the spec holds one type per tensor"
                raise SpecError(msg)


def build_onnx_model(model, settings, output_dir, origin="conversion settings"):
    """An ONNX model -> hls4ml ModelGraph (all passes applied; nothing written): ``(hls_model, {})``."""
    settings = conversion_settings(settings, origin)
    refuse_bit_exact(settings, origin)
    hls4ml = hls4ml_module()
    from hls4ml.model import ModelGraph

    wrapper = cleaned_model(model)
    _check_nodes(model, wrapper, origin)
    config = project_config(settings, output_dir)
    hls_config = hls4ml_call(
        _WHAT,
        hls4ml.utils.config.config_from_onnx_model,
        wrapper,
        granularity="name",
        backend=settings["backend"],
        default_precision=settings["default_precision"],
        default_reuse_factor=settings["reuse_factor"],
    )
    hls_config["Model"]["Strategy"] = settings["strategy"]
    config["HLSConfig"] = apply_layer_settings(hls_config, settings, {}, origin)
    layers, inputs, outputs = hls4ml_call(_WHAT, hls4ml.converters.parse_onnx_model, wrapper.model)
    return hls4ml_call(_WHAT, ModelGraph.from_layer_list, config, layers, inputs, outputs), {}



def run_onnx(model, x) -> np.ndarray:
    """The ONNX model's own outputs for ``x`` (float32, channels last as the spec's input),
    computed by qonnx's executor on the cleaned-up graph in its own (channels-first) layout,
    its Quant nodes in numpy; outputs of rank 3 or more come back channels last."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    wrapper = cleanup_model(ModelWrapper(model))
    if len(wrapper.graph.input) != 1 or len(wrapper.graph.output) != 1 or isinstance(x, (list, tuple)):
        msg = f"the ONNX model has {len(wrapper.graph.input)} inputs and {len(wrapper.graph.output)} outputs; l0emu computes the own outputs only of ONNX models with one input and one output"
        raise ConfigError(msg)
    wrapper = wrapper.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    name_in, name_out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    x = to_channels_first(x, wrapper.get_tensor_shape(name_in)[1:])
    return from_channels_first(execute_onnx(wrapper, {name_in: x})[name_out])


class OnnxFrontEnd(FrontEnd):
    """Float ONNX and QONNX files; the project keeps the file as given and cleans it when built."""

    name = "onnx"
    model_file = ONNX_MODEL_FILE
    description = "ONNX / QONNX: an .onnx file (float, or quantized with QONNX Quant nodes, e.g. a Brevitas export)"
    framework = "ONNX"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".onnx"

    def load(self, path):
        return load_onnx_model(path)

    def save(self, model, path: Path):
        Path(path).write_bytes(model.SerializeToString())

    def build(self, model, settings, output_dir, origin):
        return build_onnx_model(model, settings, output_dir, origin)

    def predict(self, model, x):
        return run_onnx(model, x)


FRONT_ENDS[OnnxFrontEnd.name] = OnnxFrontEnd()
