"""Networks beyond the Latency path, as a new user writes them: emulator == C-simulation, or refused.

The issue's reproductions: a Resource-strategy dense with a saturating accumulator (hls4ml adds
the products in another order, which shows once the accumulator saturates), a QConv2D + QDense
net at reuse factor 4 (io_parallel and io_stream), a leaky quantized_relu whose result is an
ap_int after an input with one integer bit, and a dense net with quantized_po2 kernels (convert
crashed on their ``{sign, exponent}`` weight text). Settings the emulator does not model are
refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from test_csim_ops import assert_same, convert_and_compare, full_range_inputs  # noqa: E402

from l0emu.errors import ConfigError, SpecError  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from l0emu.fixedpoint._codegen import generate  # noqa: E402
from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.fixedpoint.spec import FORMAT, validate_spec  # noqa: E402

pytestmark = [pytest.mark.hls4ml, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def test_resource_dense_adds_in_hls4mls_order(tmp_path):
    """Dense 4 -> 1, weights 1, accumulator ap_fixed<8,4,AP_TRN,AP_SAT>, reuse factor 2: hls4ml adds
    inputs 0, 2, 1, 3, so [6, -6, 6, -6] saturates at 6 + 6 and ends at -4.0625, not 0."""
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(1, name="d")(inp))
    model.set_weights([np.ones((4, 1), "f4"), np.zeros(1, "f4")])
    settings = {
        "strategy": "Resource", "reuse_factor": 2,
        "layers": {"x": {"precision": {"result": "ap_fixed<8,4>"}},
                   "d": {"precision": {"weight": "ap_fixed<4,2>", "bias": "ap_fixed<4,2>", "accum": "ap_fixed<8,4,AP_TRN,AP_SAT>",
                                       "result": "ap_fixed<8,4>"}}},
    }  # fmt: skip
    x = np.concatenate([[[6.0, -6.0, 6.0, -6.0]], np.random.default_rng(1).integers(-128, 128, (4000, 4)) / 16.0])
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, x=x)
    assert (spec["layers"][0]["strategy"], spec["layers"][0]["reuse_factor"]) == ("resource", 2)
    assert parse_type(spec["layers"][-1]["result_type"]).to_float(theirs[0, 0]) == -4.0625
    assert_same(ours, theirs, x)


def _conv_dense_net():
    inp = keras.Input((5, 5, 2), name="x")
    y = qkeras.QConv2D(4, (2, 2), kernel_quantizer="quantized_bits(4,2,alpha=1)", bias_quantizer="quantized_bits(4,2,alpha=1)", name="c")(inp)
    y = keras.layers.Flatten(name="f")(y)
    y = qkeras.QDense(3, kernel_quantizer="quantized_bits(4,2,alpha=1)", bias_quantizer="quantized_bits(4,2,alpha=1)", name="d")(y)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(4)
    model.set_weights([rng.uniform(-2, 2, w.shape).astype("f4") for w in model.get_weights()])
    return model


@pytest.mark.parametrize(("io_type", "reuse"), [("io_parallel", 4), ("io_stream", 4), ("io_stream", 16)])
def test_resource_conv_and_dense_with_saturating_accumulators(tmp_path, io_type, reuse):
    """QConv2D (8 inputs per pixel) + QDense (64 inputs) at reuse factor 4 (and 16: the conv's
    rf_gt_nin_rem0 kernel in io_stream), accumulators that saturate."""
    acc = {"precision": {"accum": "ap_fixed<7,3,AP_TRN,AP_SAT>", "result": "ap_fixed<8,4>"}}
    settings = {"io_type": io_type, "strategy": "Resource", "reuse_factor": reuse, "layers": {"x": {"precision": {"result": "ap_fixed<6,3>"}}, "c": acc, "d": acc}}
    spec, x, ours, theirs = convert_and_compare(_conv_dense_net(), tmp_path, settings, n=4000)
    kinds = {layer["name"]: (layer["strategy"], layer["reuse_factor"]) for layer in spec["layers"] if "strategy" in layer}
    assert kinds == {"c": ("resource", reuse), "d": ("resource", reuse)}
    assert_same(ours, theirs, x)
    if reuse == 16:
        return
    latency = Emulator.from_spec({**spec, "layers": [{**layer, "strategy": "latency"} if "strategy" in layer else layer for layer in spec["layers"]]})
    assert (latency.predict_raw(x.astype(np.float32)) != theirs).any()  # the order shows


def test_io_parallel_resource_conv_past_its_inputs_is_refused(tmp_path):
    """Vitis' io_parallel conv_2d_resource_cl reads past its im2col buffer for reuse factor > inputs per pixel."""
    settings = {"strategy": "Resource", "reuse_factor": 16}
    model = _conv_dense_net()
    model.save(str(tmp_path / "model.h5"))
    with pytest.raises(SpecError, match=r"layer 'c' at layers\[\d\]\.reuse_factor: 16 exceeds the 8 inputs of each output pixel"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", settings, name="case")


def test_leaky_relu_into_ap_int_after_one_integer_bit(tmp_path):
    """quantized_relu(3,2,negative_slope=0.25) with result ap_int<3> after an ap_fixed<8,1> input:
    alpha * x has no integer bit below its sign, and to_ap_int_base gives -1 for every negative value."""
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, qkeras.QActivation("quantized_relu(3,2,negative_slope=0.25)", name="a")(inp))
    settings = {"layers": {"x": {"precision": {"result": "ap_fixed<8,1>"}}, "a": {"precision": {"result": "ap_int<3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, n=4000)
    assert (theirs == -1).any()
    assert_same(ours, theirs, x)
    assert spec["layers"][0]["result_type"] == "ap_int<3>"


def test_quantized_po2_kernels_convert_and_match(tmp_path):
    """QDense with quantized_po2 kernels: hls4ml writes {sign, exponent} pairs and shifts."""
    inp = keras.Input((6,), name="x")
    y = qkeras.QDense(5, kernel_quantizer="quantized_po2(4,2)", bias_quantizer="quantized_bits(6,2,alpha=1)", name="d1")(inp)
    y = qkeras.QActivation("quantized_relu(6,3)", name="r1")(y)
    y = qkeras.QDense(2, kernel_quantizer="quantized_po2(5,4)", bias_quantizer="quantized_bits(6,2,alpha=1)", name="d2")(y)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(2)
    model.set_weights([rng.uniform(-1.5, 1.5, w.shape).astype("f4") for w in model.get_weights()])
    settings = {"layers": {"x": {"precision": {"result": "ap_fixed<8,3>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, n=4000)
    assert [layer["product"] for layer in spec["layers"] if layer["op"] == "dense"] == ["weight_exponential"] * 2
    assert_same(ours, theirs, x)


def test_distributed_arithmetic_is_refused_by_name(tmp_path):
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
    model.save(str(tmp_path / "model.h5"))
    with pytest.raises((SpecError, ConfigError), match=r"layer 'd'.*distributed_arithmetic"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", {"layers": {"d": {"strategy": "distributed_arithmetic"}}}, name="case")


def test_po2_shifts_wider_than_int64_are_refused_by_layer():
    """r_T = ap_fixed<2(E+W), E+W>: with E = 32 and W = 8 a lossy shift needs 80 bits."""
    spec = {"format": FORMAT, "name": "po2", "source": {}, "inputs": [{"name": "x", "shape": [2], "type": "ap_fixed<8,2>"}],
            "layers": [{"name": "d", "op": "dense", "n_in": 2, "n_out": 1, "weight_type": "ap_fixed<42,2>", "bias_type": "ap_fixed<4,2>",
                        "accum_type": "ap_fixed<40,30>", "weights_shape": [2, 1], "weights": [1, -2], "biases": [0],
                        "product": "weight_exponential", "weight_exponent_width": 32, "input_shape": [2], "output_shape": [1],
                        "result_type": "ap_fixed<40,30>"}],
            "outputs": [{"name": "y", "index": 0, "scale": 1.0, "offset": 0.0}]}  # fmt: skip
    with pytest.raises(SpecError, match=r"layer 'd': po2 weights shift ap_fixed<8,2.* in hls4ml's ap_fixed<80,40>, which drops bits here"):
        generate(validate_spec(spec))


def test_quantized_po2_shifts_that_drop_bits_match(tmp_path):
    """po2 weights 2**-4 on ap_fixed<4,-1> (5 fraction bits): ``r_T(x) >> 4`` in r_T = ap_fixed<16,8> (E = 4) floors away bits."""
    inp = keras.Input((6,), name="x")
    y = qkeras.QDense(4, kernel_quantizer="quantized_po2(4)", bias_quantizer="quantized_bits(6,2,alpha=1)", name="d")(inp)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(-0.006, 0.006, (6, 4)).astype("f4"), rng.uniform(-1, 1, 4).astype("f4")])
    settings = {"layers": {"x": {"precision": {"result": "ap_fixed<4,-1>"}}, "d": {"precision": {"accum": "ap_fixed<16,6>", "result": "ap_fixed<16,6>"}}}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, n=4000)
    assert spec["layers"][0]["product"] == "weight_exponential"
    assert "p = cast(p, " in generate(spec)[0]  # the lossy shifts, step by step
    assert_same(ours, theirs, x)


def test_resource_conv1d_adds_in_conv2ds_order(tmp_path):
    """QConv1D (3 taps x 2 channels per pixel) + QDense at reuse factor 3, io_parallel, saturating
    accumulators: Vitis' conv_1d_resource_cl runs conv_2d_resource_cl's accumulation loop."""
    inp = keras.Input((9, 2), name="x")
    y = qkeras.QConv1D(4, 3, kernel_quantizer="quantized_bits(4,2,alpha=1)", bias_quantizer="quantized_bits(4,2,alpha=1)", name="c")(inp)
    y = keras.layers.Flatten(name="f")(y)
    y = qkeras.QDense(3, kernel_quantizer="quantized_bits(4,2,alpha=1)", bias_quantizer="quantized_bits(4,2,alpha=1)", name="d")(y)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(-2, 2, w.shape).astype("f4") for w in model.get_weights()])
    acc = {"precision": {"accum": "ap_fixed<7,3,AP_TRN,AP_SAT>", "result": "ap_fixed<8,4>"}}
    settings = {"strategy": "Resource", "reuse_factor": 3, "layers": {"x": {"precision": {"result": "ap_fixed<6,3>"}}, "c": acc, "d": acc}}
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, n=4000)
    assert {layer["name"]: layer["strategy"] for layer in spec["layers"] if "strategy" in layer} == {"c": "resource", "d": "resource"}
    assert_same(ours, theirs, x)
