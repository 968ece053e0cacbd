"""Emulator == hls4ml 1.3.0 C-simulation, bit for bit, on small hand-built networks.

Each case builds a Keras/QKeras model with chosen weights, converts it with the bridge
(types set through the conversion config where the case is about types), compiles the
C-simulation and compares every output bit on random inputs over the input type's whole
range (uniform mantissas plus zero, the minimum and the maximum).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.fixedpoint.spec import spec_inputs  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras  # noqa: E402
from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.validation.compare import full_range_inputs as full_range  # noqa: E402

pytestmark = pytest.mark.hls4ml

N_RANDOM = 2000


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def full_range_inputs(spec, n, seed=0):
    """``n`` inputs whose mantissas are uniform over the input type, after all-zero, all-min
    and all-max events (``n + 3`` in all), as float values of the input type."""
    return full_range(n + 3, spec, seed).astype(np.float64)


def convert_and_compare(model, tmp_path, settings=None, x=None, n=N_RANDOM):
    """Convert ``model``, compile its C-simulation; return (spec, inputs, emulator, csim) outputs."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    model.save(str(tmp_path / "model.h5"))
    hls_model, spec = bridge.convert(tmp_path / "model.h5", tmp_path / "fw", settings or {}, name="case", compile=True)
    x = full_range_inputs(spec, n) if x is None else x
    theirs = bridge.csim_raw(hls_model, x, spec)
    ours = Emulator.from_spec(spec).predict_raw(x.astype(np.float32))
    return spec, x, ours, theirs


def assert_same(ours, theirs, x):
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert not len(bad), f"{len(bad)} of {len(x)} events differ (first: input {x[bad[0]].ravel()[:8]}, emulator {ours[bad[0]]}, csim {theirs[bad[0]]})"


def test_integer_result_type_truncates_toward_zero(tmp_path):
    """A result declared ap_int (as hls4ml infers for quantized_relu(2,1,negative_slope=0.5))
    takes a fractional value truncated toward zero (ap_fixed_base::to_ap_int_base), not
    floored: found by the random-architecture suite (-0.17 became 0, the emulator said -1)."""
    inp = keras.Input((3,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
    model.set_weights([np.array([[0.75, -0.5], [-0.25, 0.5], [0.5, 0.25]], "f4"), np.array([-0.25, 0.125], "f4")])
    settings = {"layers": {"x": {"precision": {"result": "ap_fixed<8,4>"}}, "d": {"precision": {"result": "ap_int<4>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings)
    assert spec["layers"][0]["result_type"] == "ap_int<4>"
    assert (theirs < 0).any() and (theirs > 0).any()
    assert_same(ours, theirs, x)


def test_saturating_accumulator_saturates_each_product(tmp_path):
    """Issue 10's reproduction: one input ap_ufixed<6,6>, w = 1, b = -31.5, accumulator
    ap_fixed<16,6,AP_TRN,AP_SAT>. hls4ml casts the product x * 1 into accum_t on its own,
    so x >= 32 saturates to 32 - 2**-10 before the bias is added, though x - 31.5 fits."""
    inp = keras.Input((1,), name="x")
    model = keras.Model(inp, keras.layers.Dense(1, name="d")(inp))
    model.set_weights([np.ones((1, 1), "f4"), np.array([-31.5], "f4")])
    settings = {
        "layers": {
            "x": {"precision": {"result": "ap_ufixed<6,6>"}},
            "d": {"precision": {"weight": "ap_fixed<4,2>", "bias": "ap_fixed<8,6>", "accum": "ap_fixed<16,6,AP_TRN,AP_SAT>",
                                "result": "ap_fixed<16,6>"}},
        }
    }  # fmt: skip
    x = np.arange(64, dtype=np.float64).reshape(64, 1)
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, x=x)
    dense = spec["layers"][0]
    assert (spec_inputs(spec)[0]["type"], dense["accum_type"]) == ("ap_ufixed<6,6,AP_TRN,AP_WRAP,0>", "ap_fixed<16,6,AP_TRN,AP_SAT,0>")
    # the C-simulation does saturate the product: x = 63 gives 32 - 2**-10 - 31.5
    assert theirs[63, 0] == (1 << 10) // 2 - 1
    assert_same(ours, theirs, x)


def _bn_weights(model, seed):
    """Random kernels and biases; BN gamma/beta/mean/variance away from the identity."""
    rng = np.random.default_rng(seed)
    weights = []
    for w, var in zip(model.get_weights(), model.weights):
        name = var.name
        if "moving_variance" in name:
            weights.append(rng.uniform(0.3, 2.0, w.shape).astype("f4"))
        elif "gamma" in name:
            weights.append(rng.uniform(0.5, 1.5, w.shape).astype("f4") * rng.choice([-1, 1], w.shape).astype("f4"))
        else:
            weights.append(rng.uniform(-1, 1, w.shape).astype("f4"))
    model.set_weights(weights)
    return model


def test_batchnorm_fused_into_dense(tmp_path):
    """Dense -> BatchNormalization: hls4ml folds the BN into the dense weights (no scale layer)."""
    inp = keras.Input((6,), name="x")
    x = keras.layers.Dense(4, name="d")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = _bn_weights(keras.Model(inp, x), 1)
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, {"layers": {"x": {"precision": {"result": "ap_fixed<8,3>"}}}})
    assert [layer["op"] for layer in spec["layers"]] == ["dense"]
    assert_same(ours, theirs, x)


def test_batchnorm_kept_as_its_own_layer(tmp_path):
    """Conv -> ReLU -> BatchNormalization -> Dense: the BN stays an hls4ml layer (a ``scale``)."""
    inp = keras.Input((4, 5, 2), name="image")
    x = keras.layers.Conv2D(3, (2, 2), name="conv")(inp)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(2, name="out")(x)
    model = _bn_weights(keras.Model(inp, x), 2)
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, {"layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}})
    assert "scale" in [layer["op"] for layer in spec["layers"]]
    assert_same(ours, theirs, x)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_qbatchnormalization(io_type, tmp_path):
    """QConv2D -> QActivation -> QBatchNormalization(quantized_bits) -> QDense."""
    from l0emu.firmware.keras_env import qkeras

    q = "quantized_bits(6,2,alpha=1)"
    inp = keras.Input((5, 5, 2), name="image")
    x = qkeras.QConv2D(3, (3, 3), kernel_quantizer=q, bias_quantizer=q, name="conv")(inp)
    x = qkeras.QActivation("quantized_relu(6,2)", name="relu")(x)
    x = qkeras.QBatchNormalization(gamma_quantizer=q, beta_quantizer=q, mean_quantizer=q,
                                   variance_quantizer="quantized_bits(8,4,alpha=1)", name="qbn")(x)  # fmt: skip
    x = keras.layers.Flatten(name="flat")(x)
    x = qkeras.QDense(2, kernel_quantizer=q, bias_quantizer=q, name="out")(x)
    model = _bn_weights(keras.Model(inp, x), 3)
    settings = {"io_type": io_type, "layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings)
    assert "scale" in [layer["op"] for layer in spec["layers"]]
    assert_same(ours, theirs, x)


@pytest.mark.parametrize(
    ("kind", "table"),
    [
        ("sigmoid", {}),  # hls4ml's defaults: 1024 entries of ap_fixed<18,8>
        ("tanh", {}),
        ("sigmoid", {"table_size": 300, "precision": {"table": "ap_fixed<12,2,AP_RND,AP_SAT>", "result": "ap_ufixed<8,0,AP_RND,AP_SAT>"}}),
        ("tanh", {"table_size": 2048, "precision": {"table": "ap_fixed<14,2>", "result": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>"}}),
    ],
)
def test_table_activations(kind, table, tmp_path):
    """Dense -> sigmoid/tanh: hls4ml's lookup table, its index arithmetic (truncation toward
    zero, clipping) and table sizes/types set in the config; inputs reach past both ends."""
    inp = keras.Input((5,), name="x")
    x = keras.layers.Dense(3, name="d")(inp)
    x = keras.layers.Activation(kind, name="act")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(-3, 3, (5, 3)).astype("f4"), rng.uniform(-1, 1, 3).astype("f4")])
    settings = {"layers": {"x": {"precision": {"result": "ap_fixed<10,4>"}}, "act": table}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings)
    act = spec["layers"][-1]
    assert act["op"] == kind and act["table_size"] == table.get("table_size", 1024)
    assert_same(ours, theirs, x)


@pytest.mark.parametrize("kind", ["keras", "qkeras"])
def test_leaky_relu(kind, tmp_path):
    """Keras LeakyReLU(alpha=0.3) and QKeras quantized_relu(negative_slope=0.25), both
    nnet::leaky_relu in hls4ml, behind a conv so negative inputs occur."""
    from l0emu.firmware.keras_env import qkeras

    inp = keras.Input((4, 4, 1), name="image")
    x = keras.layers.Conv2D(2, (2, 2), name="conv")(inp)
    if kind == "keras":
        x = keras.layers.LeakyReLU(alpha=0.3, name="leaky")(x)
    else:
        x = qkeras.QActivation("quantized_relu(6,2,negative_slope=0.25)", name="leaky")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(7)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    settings = {"layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings)
    assert "leaky_relu" in [layer["op"] for layer in spec["layers"]]
    assert_same(ours, theirs, x)


@pytest.mark.parametrize("quantizer", ["binary(alpha=1)", "ternary(alpha=1)"])
def test_binary_and_ternary_weights(quantizer, tmp_path):
    """QDense/QConv2D with binary weights (hls4ml's uint<1> XNOR type, product weight_binary)
    and ternary weights (ap_int<2>, weight_ternary) on fixed-point inputs."""
    from l0emu.firmware.keras_env import qkeras

    bias = "quantized_bits(4,2,alpha=1)"
    inp = keras.Input((4, 4, 1), name="image")
    x = qkeras.QConv2D(3, (2, 2), kernel_quantizer=quantizer, bias_quantizer=bias, name="conv")(inp)
    x = qkeras.QActivation("quantized_relu(6,3)", name="relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = qkeras.QDense(3, kernel_quantizer=quantizer, bias_quantizer=bias, name="out")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(8)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    settings = {"layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings)
    products = {layer["product"] for layer in spec["layers"] if "product" in layer}
    assert products == {"weight_binary" if quantizer.startswith("binary") else "weight_ternary"}
    assert_same(ours, theirs, x)


def test_qconv2dbatchnorm_and_a_dense_only_network_on_a_flattened_input(tmp_path):
    """QKeras QConv2DBatchnorm (hls4ml folds the batch norm into the conv), then a dense-only
    stack on a flattened image. (QKeras 0.9.0 has no QDenseBatchnorm.)"""
    from l0emu.firmware.keras_env import qkeras

    q = "quantized_bits(6,2,alpha=1)"
    inp = keras.Input((5, 6, 1), name="image")
    x = qkeras.QConv2DBatchnorm(2, (3, 3), kernel_quantizer=q, bias_quantizer=q, name="convbn")(inp)
    x = qkeras.QActivation("quantized_relu(6,2)", name="relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = qkeras.QDense(5, kernel_quantizer=q, bias_quantizer=q, name="d1")(x)
    x = qkeras.QActivation("quantized_relu(6,2)", name="relu2")(x)
    x = keras.layers.Dense(2, name="out")(x)
    model = _bn_weights(keras.Model(inp, x), 9)
    settings = {"layers": {"image": {"precision": {"result": "ap_fixed<8,3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path / "convbn", settings)
    assert spec["layers"][0]["op"] == "conv2d"
    assert_same(ours, theirs, x)

    flat_in = keras.Input((9, 16, 1), name="image")
    y = keras.layers.Flatten(name="flat")(flat_in)
    y = qkeras.QDense(8, kernel_quantizer=q, bias_quantizer=q, name="d1")(y)
    y = qkeras.QActivation("quantized_relu(6,2)", name="relu")(y)
    y = keras.layers.Dense(2, name="out")(y)
    dense_only = keras.Model(flat_in, y)
    rng = np.random.default_rng(10)
    dense_only.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in dense_only.get_weights()])
    spec, x, ours, theirs = convert_and_compare(dense_only, tmp_path / "dense", settings)
    assert [layer["op"] for layer in spec["layers"] if layer["op"] != "flatten"][:2] == ["dense", "relu"]
    assert_same(ours, theirs, x)
