"""The ONNX, QONNX (Brevitas) and PyTorch front ends: each network built here, converted, and
compared bit for bit with hls4ml's C-simulation on 2,000 full-range inputs (four compilations
and one through the CLI); refusals name the node or file at fault."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
pytest.importorskip("qonnx")

pytestmark = pytest.mark.hls4ml
N_INPUTS = 2000  # the claim of docs/frontends.md: 2,000 full-range inputs per network


def _bit_exact(hls_model, spec, seed):
    from l0emu.firmware.hls4ml_bridge import csim_raw
    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.validation.compare import full_range_inputs

    x = full_range_inputs(N_INPUTS, spec, seed=seed)
    np.testing.assert_array_equal(Emulator.from_spec(spec).predict_raw(x), csim_raw(hls_model, x, spec))


def _export_float_onnx(module, shape, path):
    """PyTorch's TorchScript exporter (the dynamo one takes longer and makes the same graph here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's notice that dynamo is the default
        torch.onnx.export(module.eval(), (torch.randn(1, *shape),), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    return path


def _seeded(module, seed):
    """Weights and biases uniform in [-1, 1] from ``seed`` (quantizer scales and batch-norm statistics keep theirs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith((".weight", ".bias")):
                tensor.copy_(torch.empty_like(tensor).uniform_(-1.0, 1.0, generator=generator))
    return module


@pytest.mark.slow
def test_float_onnx_of_a_pytorch_mlp_through_the_cli(tmp_path, capsys, monkeypatch):
    """``l0emu convert model.onnx`` with a per-layer precision, then ``l0emu validate --full-range``."""
    import json

    from l0emu.cli.dispatch import main

    mlp = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    path = _export_float_onnx(_seeded(mlp, 1), (8,), tmp_path / "mlp.onnx")
    (tmp_path / "config.json").write_text(json.dumps({"layers": {"Relu_0": {"precision": {"result": "ap_ufixed<8,3>"}}}}))
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    assert main(["convert", str(path), "-o", str(tmp_path / "fw"), "--config", str(tmp_path / "config.json")]) == 0
    assert "model.onnx" in capsys.readouterr().out
    spec = json.loads((tmp_path / "fw" / "spec.json").read_text())
    types = {layer["name"]: layer["result_type"] for layer in spec["layers"]}
    assert spec["inputs"][0]["type"] == "ap_fixed<16,6,AP_TRN,AP_WRAP,0>"  # the float default
    assert types["Relu_0"] == "ap_ufixed<8,3,AP_TRN,AP_WRAP,0>"
    assert [layer["op"] for layer in spec["layers"]] == ["dense", "relu", "dense", "tanh", "dense"]
    rc = main(["validate", str(tmp_path / "fw"), "--random", str(N_INPUTS), "--full-range"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"events compared:                  {N_INPUTS}" in out
    assert "events with any differing bit:    0" in out
    assert "max |ONNX - C-simulation|:" in out  # the model's own outputs, named by its front end


class _BrevitasNet(torch.nn.Module):
    """Power-of-two input, convolution and ReLU quantizers (hls4ml folds them into types) and a
    float-scaled dense kernel (hls4ml keeps its scale as an ApplyAlpha layer)."""

    def __init__(self):
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int8WeightPerTensorFloat, Uint8ActPerTensorFixedPoint

        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(1, 2, 3, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=4, return_quant_tensor=True)
        self.relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=5, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(2 * 4 * 6, 3, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(self.inp(x))).flatten(1))


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_qonnx_of_a_brevitas_network_is_bit_exact(tmp_path, io_type):
    from brevitas.export import export_qonnx

    from l0emu.firmware.hls4ml_bridge import convert

    net = _seeded(_BrevitasNet(), 2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # brevitas' and torch.export's notices about their own internals
        export_qonnx(net, input_t=torch.randn(1, 1, 6, 8), export_path=str(tmp_path / "brevitas.onnx"))
    hls_model, spec = convert(tmp_path / "brevitas.onnx", tmp_path / "fw", {"io_type": io_type}, compile=True)
    by_op = {layer["op"]: layer for layer in spec["layers"]}
    # the types of the Quant nodes: 4-bit kernel (narrow range), 5-bit unsigned ReLU, rounding to nearest
    assert re.fullmatch(r"ap_fixed<4,-?\d+,AP_RND_CONV,AP_SAT_SYM,0>", by_op["conv2d"]["weight_type"])
    assert re.fullmatch(r"ap_ufixed<5,-?\d+,AP_RND_CONV,AP_SAT,0>", by_op["relu"]["result_type"])
    assert "scale" in by_op  # the float scale of the dense kernel
    assert spec["inputs"][0]["shape"] == [6, 8, 1]  # channels last
    _bit_exact(hls_model, spec, seed=3)


class _TorchConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(3 * 3 * 4, 2)

    def forward(self, x):
        x = self.bn(self.pool(torch.relu(self.conv(x))))  # after the pool, hls4ml keeps the batch norm a layer
        return self.fc(torch.flatten(x, 1))


@pytest.mark.slow
def test_a_torch_module_through_the_api_is_bit_exact_and_rebuilds(tmp_path):
    import l0emu
    from l0emu.firmware.hls4ml_bridge import load_converted

    net = _seeded(_TorchConvNet(), 4)
    with torch.no_grad():
        net.bn.running_mean.copy_(torch.tensor([0.25, -0.5, 0.125]))
        net.bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5]))
    _, spec = l0emu.convert(net, tmp_path / "fw", input_shape=(2, 6, 8), settings={"default_precision": "ap_fixed<14,5>"}, compile=True)
    assert spec["inputs"][0] == {"name": "x", "shape": [6, 8, 2], "type": "ap_fixed<14,5,AP_TRN,AP_WRAP,0>"}
    assert [layer["op"] for layer in spec["layers"]] == ["conv2d", "relu", "max_pool2d", "scale", "flatten", "dense"]
    hls_model, rebuilt = load_converted(tmp_path / "fw")  # from torch_model.pt, with the compiled library
    assert rebuilt == spec
    _bit_exact(hls_model, spec, seed=5)


def _onnx_graph(nodes, initializers, path, shape=(1, 4)):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)])
    path.write_bytes(model.SerializeToString())
    return path


def test_an_onnx_op_hls4ml_cannot_convert_is_refused_by_node(tmp_path):
    from onnx import helper

    from l0emu.errors import ConfigError
    from l0emu.firmware.hls4ml_bridge import convert

    path = _onnx_graph([helper.make_node("Sin", ["x"], ["y"], name="wave")], [], tmp_path / "sin.onnx")
    with pytest.raises(ConfigError, match=r"ONNX node 'Sin_0' \(in the file: 'wave'\) is a Sin, which hls4ml 1.3.0 cannot convert; it converts .*MatMul"):
        convert(path, tmp_path / "fw", {})


@pytest.mark.parametrize(
    ("scale", "bitwidth", "refusal"),
    [
        (0.25, [4, 4, 6, 6], r"QONNX node 'mixed' quantizes with a bit width per element"),
        ([0.25, 0.5, 0.25, 0.5], 4.0, r"QONNX node 'mixed' quantizes with a scale per channel \(shape \[4\]\), which hls4ml 1.3.0 fails"),
    ],
)
def test_a_quant_node_with_values_per_element_is_refused_by_node(tmp_path, scale, bitwidth, refusal):
    from onnx import helper, numpy_helper

    from l0emu.errors import SpecError
    from l0emu.firmware.hls4ml_bridge import convert

    constants = {"scale": np.float32(scale), "zeropt": np.float32(0.0), "bitwidth": np.array(bitwidth, dtype=np.float32)}
    initializers = [numpy_helper.from_array(np.asarray(value, dtype=np.float32), name) for name, value in constants.items()]
    quant = helper.make_node("Quant", ["x", *constants], ["y"], name="mixed", domain="qonnx.custom_op.general", signed=1, narrow=0, rounding_mode="ROUND")
    path = _onnx_graph([quant], initializers, tmp_path / "mixed.onnx")
    with pytest.raises(SpecError, match=refusal):
        convert(path, tmp_path / "fw", {})


def test_model_files_go_to_their_front_end_and_others_are_refused(tmp_path):
    from l0emu.errors import InputFileError
    from l0emu.firmware.hls4ml_bridge import convert, front_end_for

    assert front_end_for(tmp_path / "net.onnx").name == "onnx"
    assert front_end_for(tmp_path / "net.pt").name == "pytorch"
    with pytest.raises(InputFileError, match=r"no front end reads a \.pth file; l0emu takes .*ONNX / QONNX: an \.onnx file.*PyTorch"):
        front_end_for(tmp_path / "net.pth")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(InputFileError, match=r"not a model file written by l0emu .* pass the torch.nn.Module itself"):
        convert(tmp_path / "weights.pt", tmp_path / "fw", {})
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(InputFileError, match=r"cannot load an ONNX model from .*broken.onnx"):
        convert(tmp_path / "broken.onnx", tmp_path / "fw", {})



@pytest.mark.slow
def test_float_onnx_of_a_keras_model_is_bit_exact(tmp_path):
    """tf2onnx's export of a tf-keras network: MatMul, Add and Relu nodes, the float default types."""
    tf2onnx = pytest.importorskip("tf2onnx")
    from l0emu.firmware.hls4ml_bridge import convert
    from l0emu.firmware.keras_env import keras

    inp = keras.Input((8,), name="x")
    model = keras.Model(inp, keras.layers.Dense(3, name="d2")(keras.layers.Dense(6, activation="relu", name="d1")(inp)))
    rng = np.random.default_rng(6)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    import tensorflow as tf

    tf2onnx.convert.from_keras(model, input_signature=(tf.TensorSpec((1, 8), tf.float32, name="x"),), opset=13, output_path=str(tmp_path / "keras.onnx"))
    hls_model, spec = convert(tmp_path / "keras.onnx", tmp_path / "fw", {}, compile=True)
    assert [layer["op"] for layer in spec["layers"]] == ["dense", "relu", "dense"]
    _bit_exact(hls_model, spec, seed=7)


def test_a_layer_setting_names_an_onnx_node_after_the_cleanup(tmp_path):
    from onnx import helper, numpy_helper

    from l0emu.errors import ConfigError
    from l0emu.firmware.hls4ml_bridge import convert

    weights = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    path = _onnx_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="project")], [weights], tmp_path / "matmul.onnx")
    with pytest.raises(ConfigError, match=r"layers.project: no such layer in the model \(available: 'MatMul_0'"):
        convert(path, tmp_path / "fw", {"layers": {"project": {"precision": {"weight": "ap_fixed<8,2>"}}}})


def test_a_front_end_module_imports_first_and_leaves_torch_unloaded():
    """The front ends and the bridge import each other (registration), so a front end may be
    imported before the bridge; none imports torch before a PyTorch model is read."""
    import subprocess
    import sys

    code = "import sys, l0emu.firmware.frontend_onnx as m; print(sorted(m.FRONT_ENDS), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "['keras2', 'keras3', 'onnx', 'pytorch'] False"
