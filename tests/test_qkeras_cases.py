"""hls4ml's own QKeras test cases (hls4ml test/pytest/test_qkeras.py), emulator == C-simulation.

hls4ml's suite checks its C-simulation against QKeras within a tolerance; here each of its
cases (the binary/ternary table, XNOR networks, quantizers as activations, negative_slope,
QConv2DBatchnorm, a dense layer with ``alpha='auto_po2'``) is converted by the bridge,
compiled once (module-scoped: a C-simulation build takes about 10 s) and compared bit for bit
with the emulator on 2,000 random inputs over the input type's whole range plus zero, the
minimum and the maximum. Cases are chained into a few small networks where the chain keeps
each case's layer pattern, so the file compiles five C-simulations.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.errors import L0emuError  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from test_csim_ops import full_range_inputs  # noqa: E402

pytestmark = pytest.mark.hls4ml

N_RANDOM = 2000
BIAS = "quantized_bits(5,2)"  # hls4ml's test_btnn bias quantizer


def _random_weights(model, seed):
    """Uniform kernels and biases; BatchNormalization statistics away from the identity
    (variance 0.3-2, gamma of either sign) so thresholds land inside the input range."""
    rng = np.random.default_rng(seed)
    weights = []
    for w, var in zip(model.get_weights(), model.weights):
        if "moving_variance" in var.name:
            weights.append(rng.uniform(0.3, 2.0, w.shape))
        elif "gamma" in var.name:
            weights.append(rng.uniform(0.5, 1.5, w.shape) * rng.choice([-1, 1], w.shape))
        else:
            weights.append(rng.uniform(-1, 1, w.shape))
    model.set_weights([w.astype("f4") for w in weights])
    return model


def _dense_act(x, name, units, kernel, activation, batchnorm=False, bias=BIAS):
    x = qkeras.QDense(units, kernel_quantizer=kernel, bias_quantizer=bias, name=name)(x)
    if batchnorm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return qkeras.QActivation(activation, name=f"{name}_act")(x)


def xnor_dense():
    """Binary weights into binary activations (XNOR: both_binary), binary activations into
    ternary and fixed weights (data_binary), a ternary activation with threshold 0.3 after a
    batch norm (bn_ternary_tanh), binary weights on its int<2> output (weight_binary)."""
    inp = keras.Input((10,), name="x")
    x = _dense_act(inp, "d1", 16, "binary(alpha=1)", "binary", batchnorm=True)
    x = _dense_act(x, "d2", 12, "binary(alpha=1)", "binary_tanh", batchnorm=True)
    x = _dense_act(x, "d3", 8, "ternary(alpha=1)", "ternary(threshold=0.3)", batchnorm=True)
    x = _dense_act(x, "d4", 6, "binary(alpha=1)", "binary", batchnorm=True)
    x = qkeras.QDense(4, kernel_quantizer="quantized_bits(4,1,alpha=1)", bias_quantizer=BIAS, name="d5")(x)
    return _random_weights(keras.Model(inp, x), 1)


def xnor_conv():
    """The same products in convolutions (the XNOR result cast counts kernel taps x channels)."""
    inp = keras.Input((5, 5, 2), name="image")
    x = qkeras.QConv2D(3, (2, 2), kernel_quantizer="binary(alpha=1)", bias_quantizer=BIAS, name="c1")(inp)
    x = keras.layers.BatchNormalization(name="c1_bn")(x)
    x = qkeras.QActivation("binary", name="c1_act")(x)
    x = qkeras.QConv2D(4, (2, 2), kernel_quantizer="binary(alpha=1)", bias_quantizer=BIAS, name="c2")(x)
    x = keras.layers.BatchNormalization(name="c2_bn")(x)
    x = qkeras.QActivation("binary_tanh", name="c2_act")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = qkeras.QDense(3, kernel_quantizer="quantized_bits(6,2,alpha=1)", bias_quantizer=BIAS, name="out")(x)
    return _random_weights(keras.Model(inp, x), 2)


def btnn_table():
    """test_btnn's binary/ternary table chained: case 1 (ternary weights, binary_tanh, no batch
    norm), cases 4, 6, 5 (ternary(alpha='auto') weights, batch norm, ternary activations with
    thresholds 0.33 (QKeras' default), 0.8, 0.2), case 3 (the same into binary()), cases 2 and 7
    (binary() weights, whose alpha becomes a scale hls4ml merges with binary_tanh / binary())."""
    inp = keras.Input((10,), name="x")
    x = _dense_act(inp, "case1", 10, "ternary(alpha=1)", "binary_tanh")
    x = _dense_act(x, "case4", 10, "ternary(alpha='auto')", "ternary", batchnorm=True)
    x = _dense_act(x, "case6", 10, "ternary(alpha='auto')", "ternary(threshold=0.8)", batchnorm=True)
    x = _dense_act(x, "case5", 10, "ternary(alpha='auto')", "ternary(threshold=0.2)", batchnorm=True)
    x = _dense_act(x, "case3", 10, "ternary(alpha='auto')", "binary", batchnorm=True)
    x = _dense_act(x, "case2", 10, "binary", "binary_tanh")
    x = _dense_act(x, "case7", 10, "binary", "binary")
    return _random_weights(keras.Model(inp, x), 3)


# test_quantizer's quantizers as activations. hls4ml removes a quantized_bits activation (a
# linear one) without narrowing the dense before it, so each shares a random QDense with the
# quantized_relu after it, which keeps the next dense's types narrow.
QUANTIZERS = (
    ("quantized_bits(8,0)", "quantized_relu(4)"), ("quantized_bits(8,4)", "quantized_relu(4,2)"),
    ("quantized_bits(4,2)", "quantized_relu(8)"), ("quantized_bits(4,0)", "quantized_relu(8,4)"),
    ("quantized_bits(10,0)", "quantized_relu(10)"), ("quantized_relu(10,5)",),
)  # fmt: skip
# test_quantizer_special and negative_slope: hard tanh / sigmoid, the real sigmoid's table, leaky relu
SPECIAL = ("quantized_tanh(8)", "quantized_sigmoid(5)", "quantized_sigmoid(7,use_real_sigmoid=True)",
           "quantized_relu(4,2,negative_slope=0.25)")  # fmt: skip
# test_qactivation_kwarg: QDense(activation=...) with these kernel and bias quantizers; its
# quantized_relu(4, 0) and (8, 0) are test_quantizer's quantized_relu(4) and (8) above
KWARG_CASES = (
    ("k_relu2", "quantized_bits(4,0,alpha=1)", "quantized_relu(2,0)"),
    ("k_binary", "binary", "binary"),
    ("k_ternary", "ternary", "ternary"),
)


def quantizer_chain():
    """test_single_dense_activation_exact (QDense(16), quantized_bits(4, 0) kernels with alpha=1 and
    alpha='auto_po2', quantized_relu(4, 0)) on the input, then test_quantizer_special's quantizers
    and negative_slope and test_quantizer's quantizers as activations (each after a random QDense
    of 8 units), and test_qactivation_kwarg."""
    inp = keras.Input((16,), name="x")
    x = _dense_act(inp, "fc1", 16, "quantized_bits(4,0,alpha=1)", "quantized_relu(4,0)", bias="quantized_bits(4,0,alpha=1)")
    x = _dense_act(x, "fc2", 16, "quantized_bits(4,0,alpha='auto_po2')", "quantized_relu(4,0)", bias="quantized_bits(4,0,alpha=1)")
    for i, quantizers in enumerate(tuple((q,) for q in SPECIAL) + QUANTIZERS):
        x = qkeras.QDense(8, kernel_quantizer="quantized_bits(6,2,alpha=1)", bias_quantizer="quantized_bits(6,2,alpha=1)", name=f"d{i}")(x)
        for j, quantizer in enumerate(quantizers):
            x = qkeras.QActivation(quantizer, name=f"q{i}_{j}")(x)
    for name, quantizer, activation in KWARG_CASES:
        x = qkeras.QDense(10, activation=activation, kernel_quantizer=quantizer, bias_quantizer=quantizer, name=name)(x)
    return _random_weights(keras.Model(inp, x), 5)


def qconv2dbn():
    """test_qconv2dbn: QConv2DBatchnorm(4, 3x3) on 8x8x1, quantized_bits(8, 0) kernels, quantized_relu(8, 0),
    hls4ml's default type fixed<24,8>."""
    inp = keras.Input((8, 8, 1), name="image")
    x = qkeras.QConv2DBatchnorm(4, (3, 3), kernel_quantizer="quantized_bits(8,0,alpha=1)",
                                bias_quantizer="quantized_bits(8,0,alpha=1)", activation="quantized_relu(8,0)", name="convbn")(inp)  # fmt: skip
    return _random_weights(keras.Model(inp, x), 8)


# name -> (builder, conversion settings)
MODELS = {
    "xnor_dense": (xnor_dense, {"layers": {"x": {"precision": {"result": "ap_fixed<8,3>"}}}}),
    "xnor_conv": (xnor_conv, {"layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}}),
    "btnn_table": (btnn_table, {}),
    "quantizer_chain": (quantizer_chain, {"layers": {"x": {"precision": {"result": "ap_fixed<10,2>"}}}}),
    "qconv2dbn": (qconv2dbn, {"default_precision": "ap_fixed<24,8>", "layers": {"image": {"precision": {"result": "ap_fixed<11,1>"}}}}),
}


class Case(NamedTuple):
    spec: dict
    x: np.ndarray  # inputs (float values of the input type)
    ours: np.ndarray  # emulator output mantissas
    theirs: np.ndarray  # C-simulation output mantissas
    project: Path  # the converted project
    hls_model: object


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """``compiled(name)`` -> a :class:`Case`, built once per module."""
    cache = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))

        def get(name):
            if name not in cache:
                builder, settings = MODELS[name]
                directory = tmp_path_factory.mktemp(name)
                builder().save(str(directory / "model.h5"))
                hls_model, spec = bridge.convert(directory / "model.h5", directory / "fw", settings, name=name, compile=True)
                x = full_range_inputs(spec, N_RANDOM)
                theirs = bridge.csim_raw(hls_model, x, spec)
                ours = Emulator.from_spec(spec).predict_raw(x.astype(np.float32))
                cache[name] = Case(spec, x, ours, theirs, directory / "fw", hls_model)
            return cache[name]

        yield get


def _ops(spec):
    return [(layer["op"], layer.get("product")) for layer in spec["layers"]]


def assert_same(ours, theirs, x):
    assert ours.shape == theirs.shape
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert not len(bad), f"{len(bad)} of {len(x)} events differ (first: input {x[bad[0]].ravel()[:8]}, emulator {ours[bad[0]]}, csim {theirs[bad[0]]})"


def test_xnor_dense_network(compiled):
    spec, x, ours, theirs, *_ = compiled("xnor_dense")
    assert _ops(spec) == [
        ("dense", "weight_binary"), ("bn_binary_tanh", None), ("dense", "both_binary"), ("bn_binary_tanh", None),
        ("dense", "data_binary"), ("bn_ternary_tanh", None), ("dense", "weight_binary"), ("bn_binary_tanh", None),
        ("dense", "data_binary"),
    ]  # fmt: skip
    xnor = parse_type(spec["layers"][1]["result_type"])  # hls4ml's XNOR uint<1>
    assert (xnor.width, xnor.signed, xnor.frac) == (1, False, 0)
    assert_same(ours, theirs, x)
    # the outputs vary: the network is not a constant behind saturated thresholds
    assert len(np.unique(theirs, axis=0)) > 20


def test_xnor_conv_network(compiled):
    spec, x, ours, theirs, *_ = compiled("xnor_conv")
    assert ("conv2d", "both_binary") in _ops(spec) and ("dense", "data_binary") in _ops(spec)
    assert_same(ours, theirs, x)
    assert len(np.unique(theirs, axis=0)) > 20


def test_btnn_table(compiled):
    spec, x, ours, theirs, *_ = compiled("btnn_table")
    ops = _ops(spec)
    assert ("binary_tanh", None) in ops and ops.count(("bn_ternary_tanh", None)) == 3 and ("bn_binary_tanh", None) in ops
    assert ("dense", "both_binary") in ops
    assert_same(ours, theirs, x)
    assert len(np.unique(theirs, axis=0)) > 20


def test_quantizers_auto_po2_and_qactivation_kwarg(compiled):
    spec, x, ours, theirs, *_ = compiled("quantizer_chain")
    ops = _ops(spec)
    assert any(layer.get("product") == "weight_exponential" for layer in spec["layers"])  # auto_po2's ApplyAlpha
    assert "bnbt_k_binary_alpha" in [layer["name"] for layer in spec["layers"]]  # the layer hls4ml's test looks for
    assert {"hard_tanh", "hard_sigmoid", "sigmoid", "leaky_relu", "relu"} <= {op for op, _ in ops}
    names = [layer["name"] for layer in spec["layers"]]
    assert "q4_0" not in names and "q4_1" in names  # hls4ml drops the quantized_bits activation, keeps the relu
    assert_same(ours, theirs, x)
    # a deep chain of narrow activations can end in few values: compare every layer's output
    # with hls4ml's trace (one more build), and require each activation to take many values
    case = compiled("quantizer_chain")
    theirs_by_layer = bridge.csim_trace(case.hls_model, x)
    ours_by_layer = Emulator.from_spec(spec).trace(x.astype(np.float32))
    compared = 0
    for layer in spec["layers"]:
        if layer["name"] in theirs_by_layer:
            mine = np.asarray(ours_by_layer[layer["name"]]).reshape(len(x), -1)
            assert np.array_equal(mine, theirs_by_layer[layer["name"]].reshape(len(x), -1)), layer["name"]
            compared += 1
            wanted = 2 if layer["op"].startswith("bn_") else 3  # the thresholds' outputs: both signs at least
            assert len(np.unique(mine)) >= wanted, f"{layer['name']} ({layer['op']}) takes {len(np.unique(mine))} values"
    assert compared >= len(spec["layers"]) - 2


def test_qconv2dbatchnorm(compiled):
    spec, x, ours, theirs, *_ = compiled("qconv2dbn")
    assert spec["layers"][0]["op"] == "conv2d"
    assert_same(ours, theirs, x)


@pytest.mark.parametrize("name", ["xnor_dense", "xnor_conv", "btnn_table", "quantizer_chain"])
def test_rtl_graph_of_binary_ternary_and_hard_activations(compiled, name):
    """da4ml's traced graph (interpreted) == the RTL path's pure-Python reference == emulator,
    on the converted specs (the quantizer chain whole: hard activations, the sigmoid table,
    leaky_relu, the threshold ops)."""
    from l0emu.firmware import rtl

    spec, x, ours, *_ = compiled(name)
    x, ours = x[:500], ours[:500]
    reference = rtl.evaluate_exact(spec, x)
    assert np.array_equal(reference, ours)
    assert np.array_equal(rtl.interpret(rtl.trace_spec(spec), x), reference)


def test_xnor_network_through_verilator(compiled, capsys):
    """``l0emu rtl --simulate 2000 --csim`` on the converted XNOR network: the Verilog in Verilator,
    the emulator, the reference, da4ml's interpreter and the C-simulation agree on every bit."""
    from l0emu import cli

    project = compiled("xnor_dense").project
    assert cli.main(["rtl", str(project), "--simulate", str(N_RANDOM), "--csim"]) == 0
    out = capsys.readouterr().out
    for name in ("numba emulator", "pure-Python reference", "da4ml interpreter", "hls4ml C-simulation"):
        assert f"RTL vs {name}: all {N_RANDOM} events equal, every output bit" in out


def test_thresholds_finer_than_the_input_keep_every_comparison():
    """bn_ternary_tanh / bn_binary_tanh with thresholds on a finer grid than their input (hls4ml
    gives them the input's type; a spec may not): the emulator rounds each threshold onto the
    input grid so ``>``, ``<=`` and ``>=`` keep their outcome; the RTL reference compares the
    exact values. Every input value of each element, plus random events."""
    from l0emu.firmware import rtl
    from l0emu.fixedpoint.spec import validate_spec

    def layer(name, op, result, **fields):
        return {"name": name, "op": op, "input_shape": [4], "output_shape": [4], "result_type": result, **fields}

    ternary = layer("tern", "bn_ternary_tanh", "ap_fixed<2,2>", threshold_type="ap_fixed<10,3>",
                    threshold_hi=[5, 37, -100, 128], threshold_lo=[-7, 36, -300, 127])  # fmt: skip
    binary = layer("bin", "bn_binary_tanh", "ap_uint<1>", threshold_type="ap_fixed<8,4>", threshold=[-9, 0, 7, 16])
    outputs = [{"name": f"y{i}", "index": i, "scale": 1.0, "offset": 0.0} for i in range(4)]
    spec = validate_spec({"format": "l0emu-spec/2", "name": "thresholds", "source": {}, "inputs": [{"name": "x", "shape": [4], "type": "ap_fixed<6,3>"}],
                          "layers": [ternary, binary], "outputs": outputs})  # fmt: skip
    t = parse_type("ap_fixed<6,3>")
    every = np.repeat(np.arange(t.min_mantissa, t.max_mantissa + 1)[:, None], 4, axis=1)
    random = np.random.default_rng(11).integers(t.min_mantissa, t.max_mantissa + 1, (N_RANDOM, 4))
    x = t.to_float(np.concatenate([every, random]))
    reference = rtl.evaluate_exact(spec, x)
    assert np.array_equal(Emulator.from_spec(spec).predict_raw(x.astype(np.float32)), reference)
    assert len(np.unique(reference, axis=0)) > 4


def test_standalone_ternary_tanh_is_refused(tmp_path):
    """hls4ml 1.3.0 turns a ternary activation with threshold 0.5 and no batch norm before it
    into a TernaryTanh layer and writes no code for it (the C-simulation reads an array
    nothing wrote): convert refuses it by name."""
    inp = keras.Input((6,), name="x")
    model = keras.Model(inp, _dense_act(inp, "d", 4, "binary(alpha=1)", "ternary(threshold=0.5)"))
    model.save(str(tmp_path / "model.h5"))
    with pytest.raises(L0emuError, match="layer 'd_act': a ternary activation with threshold 0.5.*writes no code"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw")
