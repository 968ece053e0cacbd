"""A network spec as a QONNX graph (the fastmachinelearning quantized-ONNX dialect hls4ml reads).

qonnx 1.0 ships no Keras/QKeras converter (``qonnx.converters`` went with 0.4.0, which pins
protobuf 3.20 and TensorFlow <= 2.14, neither installable beside TensorFlow 2.21), so the
graph is built from ``spec.json``: every ap type the HLS code uses becomes a ``Quant`` node
(scale 2^-frac, zero point 0, its width and signedness, the rounding mode), on the input, on
each weight and bias initializer (float values of the integer mantissas), after each
accumulation and on each activation. Standard ONNX ``Conv``/``MatMul``/``Add``/``Relu`` do the
arithmetic, in float, which is exact for these widths.

Where QONNX cannot say what ap_fixed does, the graph says so in its doc string: ``Quant``
clips, so an AP_WRAP type is exported as saturation (equal whenever nothing overflows, as
with hls4ml's lossless accumulators), and ap_fixed's AP_RND (half toward +inf) and
AP_RND_MIN_INF have no QONNX rounding mode and are refused.
"""

from __future__ import annotations

import numpy as np

from l0emu.fixedpoint.aptypes import ApType, parse_type
from l0emu.fixedpoint.spec import spec_inputs
from l0emu.errors import SpecError

__all__ = ["QONNX_DOMAIN", "SUPPORTED_OPS", "qonnx_model", "run_qonnx", "to_qcdq"]

QONNX_DOMAIN = "qonnx.custom_op.general"
SUPPORTED_OPS = ("conv2d", "dense", "relu", "linear", "flatten")
# ap_fixed quantization mode -> QONNX Quant rounding_mode (qonnx.custom_op.general.intquant)
_ROUNDING = {"TRN": "FLOOR", "TRN_ZERO": "DOWN", "RND_CONV": "ROUND", "RND_ZERO": "HALF_DOWN", "RND_INF": "HALF_UP"}


class _Graph:
    """Nodes and initializers under construction, with unique tensor names."""

    def __init__(self):
        self.nodes, self.initializers, self.notes = [], [], set()
        self._count = 0

    def name(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem, value, dtype=np.float32):
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op, inputs, stem, domain="", **attrs):
        from onnx import helper

        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def quant(self, x, t: ApType, where):
        if t.rounding not in _ROUNDING:
            msg = f"{where}: type {t} has rounding AP_{t.rounding}, which QONNX's Quant cannot express"
            raise SpecError(msg)
        if t.saturation != "SAT" and not (t.saturation == "WRAP" and t.sat_bits == 0):
            msg = f"{where}: type {t} has overflow AP_{t.saturation}, which QONNX's Quant cannot express"
            raise SpecError(msg)
        if t.saturation == "WRAP":
            self.notes.add("AP_WRAP types are exported as Quant's saturation (equal while nothing overflows)")
        inputs = [x, self.const("scale", 2.0**-t.frac), self.const("zeropt", 0.0), self.const("bitwidth", float(t.width))]
        return self.node("Quant", inputs, "quant", domain=QONNX_DOMAIN, signed=int(t.signed), narrow=0, rounding_mode=_ROUNDING[t.rounding])


def _weights(graph, layer, key, shape, type_key):
    t = parse_type(layer[type_key])
    values = np.ldexp(np.asarray(layer[key], dtype=np.float64), -t.frac).reshape(shape)
    return graph.quant(graph.const(f"{layer['name']}_{key}", values), t, f"layer {layer['name']!r} {key}")


def _conv2d(graph, x, layer):
    kh, kw, cin, cout = layer["weights_shape"]
    w = np.asarray(layer["weights"], dtype=np.float64).reshape(kh, kw, cin, cout).transpose(3, 2, 0, 1)
    wq = _weights(graph, {**layer, "weights": w.ravel()}, "weights", w.shape, "weight_type")
    bq = _weights(graph, layer, "biases", (cout,), "bias_type")
    top, bottom, left, right = (int(v) for v in layer.get("pad", [0, 0, 0, 0]))
    y = graph.node("Conv", [x, wq, bq], layer["name"], kernel_shape=[kh, kw], strides=list(layer["strides"]),
                   pads=[top, left, bottom, right])
    return graph.quant(y, parse_type(layer["accum_type"]), f"layer {layer['name']!r} accumulator")


def _dense(graph, x, layer):
    wq = _weights(graph, layer, "weights", tuple(layer["weights_shape"]), "weight_type")
    bq = _weights(graph, layer, "biases", (int(layer["n_out"]),), "bias_type")
    y = graph.node("Add", [graph.node("MatMul", [x, wq], layer["name"]), bq], layer["name"] + "_bias")
    return graph.quant(y, parse_type(layer["accum_type"]), f"layer {layer['name']!r} accumulator")


def qonnx_model(spec: dict):
    """The spec's network as a qonnx ``ModelWrapper``: input ``x`` (N, H, W, C) float values,
    output ``y`` (N, n_out) values of the last layer's result type."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    if len(spec_inputs(spec)) > 1:
        msg = f"network {spec['name']!r}: several inputs have no QONNX export here (it writes one input 'x')"
        raise SpecError(msg)
    graph = _Graph()
    (inp,) = spec_inputs(spec)
    shape = [int(s) for s in inp["shape"]]
    x = graph.quant("x", parse_type(inp["type"]), "input")
    layout = "nhwc"
    for layer in spec["layers"]:
        op = layer["op"]
        if op not in SUPPORTED_OPS:
            msg = f"layer {layer['name']!r}: op {op!r} has no QONNX export here (supported: {', '.join(SUPPORTED_OPS)})"
            raise SpecError(msg)
        if op == "conv2d":
            if layout == "nhwc":
                x, layout = graph.node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2]), "nchw"
            x = _conv2d(graph, x, layer)
            x = graph.quant(x, parse_type(layer["result_type"]), f"layer {layer['name']!r} result")
        elif op == "dense":
            x = _dense(graph, x, layer)
            x = graph.quant(x, parse_type(layer["result_type"]), f"layer {layer['name']!r} result")
        elif op == "flatten":
            if layout == "nchw":  # hls4ml flattens channels-last
                x, layout = graph.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1]), "nhwc"
            x = graph.node("Flatten", [x], layer["name"], axis=1)
        else:
            if op == "relu":
                x = graph.node("Relu", [x], layer["name"])
            x = graph.quant(x, parse_type(layer["result_type"]), f"layer {layer['name']!r} result")
    n_out = int(np.prod(spec["layers"][-1]["output_shape"]))
    graph.nodes.append(helper.make_node("Identity", [x], ["y"], name="y"))
    doc = f"QONNX export of l0emu spec {spec.get('name')!r}; " + "; ".join(sorted(graph.notes))
    onnx_graph = helper.make_graph(
        graph.nodes, str(spec.get("name", "network")),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])],
        initializer=graph.initializers, doc_string=doc,
    )
    model = helper.make_model(onnx_graph, producer_name="l0emu", opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    model.ir_version = 8
    return ModelWrapper(model)


def run_qonnx(model, x) -> np.ndarray:
    """Outputs of qonnx's reference executor (node by node; slow, for checks)."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    x = np.asarray(x, dtype=np.float32)
    # the executor needs every tensor shape, the batch dimension included
    fixed = model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    return np.asarray(execute_onnx(fixed, {"x": x})["y"], dtype=np.float64)


def to_qcdq(model):
    """qonnx's QuantToQCDQ (QuantizeLinear-Clip-DequantizeLinear, which ONNX Runtime runs) and
    the number of Quant nodes it could not convert (it takes widths 2-8 only)."""
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ

    converted = model.transform(QuantToQCDQ())
    left = sum(node.op_type == "Quant" for node in converted.graph.node)
    return converted, left
