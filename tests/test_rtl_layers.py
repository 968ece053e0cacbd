"""The RTL path (da4ml, Verilator) on the 1-D layers, global pools and reshape: the traced
graph equals the pure-Python reference and the emulator, and a converted network's RTL equals
the hls4ml C-simulation. The same for merges, upsampling, several inputs and output layers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import assert_rtl_graph_exact, network_spec
from l0emu.cli import dispatch as cli
from l0emu.errors import SpecError
from l0emu.firmware import rtl
from l0emu.fixedpoint.spec import validate_spec

T = "ap_fixed<8,3>"


def _one_row_spec():
    layers = [
        {"name": "zp", "op": "zero_pad1d", "input_shape": [6, 2], "output_shape": [8, 2], "result_type": T, "pad": [1, 1]},
        {"name": "c1", "op": "conv1d", "input_shape": [8, 2], "output_shape": [6, 3], "result_type": T, "kernel": [3], "strides": [1],
         "padding": "valid", "pad": [0, 0], "filters": 3, "weight_type": "ap_fixed<4,1>", "bias_type": "ap_fixed<4,1>",
         "accum_type": "ap_fixed<8,3,AP_TRN,AP_SAT>", "weights_shape": [3, 2, 3], "weights": [(i * 5) % 15 - 7 for i in range(18)],
         "biases": [1, 2, 3], "product": "mult"},
        {"name": "p1", "op": "avg_pool1d", "input_shape": [6, 3], "output_shape": [3, 3], "result_type": T, "pool": [3], "strides": [2],
         "padding": "same", "pad": [0, 1], "accum_type": "ap_fixed<8,3>"},
        {"name": "p2", "op": "max_pool1d", "input_shape": [3, 3], "output_shape": [2, 3], "result_type": T, "pool": [2], "strides": [1],
         "padding": "valid", "pad": [0, 0]},
        {"name": "rs", "op": "reshape", "input_shape": [2, 3], "output_shape": [3, 2], "result_type": "ap_fixed<6,2>"},
        {"name": "g", "op": "global_avg_pool1d", "input_shape": [3, 2], "output_shape": [2], "result_type": T,
         "accum_type": "ap_fixed<7,2,AP_RND,AP_SAT>"},
    ]  # fmt: skip
    outputs = [{"name": "y0", "index": 0, "scale": 1.0, "offset": 0.0}, {"name": "y1", "index": 1, "scale": 1.0, "offset": 0.0}]
    return network_spec(layers, {"x": ([6, 2], T)}, outputs, name="one_row")


def test_one_row_layers_trace_like_the_reference_and_the_emulator():
    reference = assert_rtl_graph_exact(_one_row_spec(), n=600, seed=3)
    assert len(np.unique(reference, axis=0)) > 20


def _joined_spec(a_type="ap_fixed<8,3>", b_type="ap_ufixed<6,2>", wide="ap_fixed<32,12>"):
    """Two inputs, every elementwise merge (one of them a 46-bit product), UpSampling1D,
    Concatenate on both axes and two output layers."""
    def merge(name, op, result, inputs=("a", "b")):
        return {"name": name, "op": op, "inputs": list(inputs), "input_shape": [3, 2], "output_shape": [3, 2], "result_type": result}

    layers = [
        merge("add", "add", "ap_fixed<6,2,AP_RND,AP_SAT>"), merge("sub", "subtract", "ap_fixed<7,3>"),
        merge("mul", "multiply", wide), merge("avg", "average", "ap_fixed<6,1,AP_RND_CONV,AP_SAT_SYM>", ("add", "sub")),
        merge("max", "maximum", T, ("mul", "avg")), merge("min", "minimum", "ap_ufixed<5,2,AP_RND,AP_SAT>", ("max", "b")),
        {"name": "up", "op": "upsample1d", "input_shape": [3, 2], "output_shape": [6, 2], "size": [2], "result_type": T},
        {"name": "cat", "op": "concatenate", "inputs": ["up", "mul"], "axis": 0, "input_shape": [6, 2], "output_shape": [9, 2],
         "result_type": "ap_fixed<12,5>"},
        {"name": "cat2", "op": "concatenate", "inputs": ["min", "mul"], "axis": 1, "input_shape": [3, 2], "output_shape": [3, 4],
         "result_type": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    ]  # fmt: skip
    outputs = [{"name": "y0", "layer": "cat", "index": 0, "scale": 1.0, "offset": 0.0},
               {"name": "y1", "layer": "cat2", "index": 1, "scale": 1.0, "offset": 0.0}]  # fmt: skip
    return network_spec(layers, {"a": ([3, 2], a_type), "b": ([3, 2], b_type)}, outputs, name="joined")


@pytest.mark.parametrize(("a_type", "b_type"), [("ap_fixed<8,3>", "ap_ufixed<6,2>"), ("ap_fixed<24,10>", "ap_fixed<22,2>")])
def test_merges_upsampling_and_two_inputs_trace_like_the_reference_and_the_emulator(a_type, b_type):
    """The wide case multiplies 24 x 22 bits: the emulator once rounded that product in float32."""
    spec = _joined_spec(a_type, b_type)
    reference = assert_rtl_graph_exact(spec, inputs=rtl.random_inputs(spec, 600, seed=4))
    assert reference.shape == (600, 18 + 12)
    assert len(np.unique(reference, axis=0)) > 250


def test_an_integer_merge_result_is_refused_by_name():
    spec = _joined_spec()
    spec["layers"][1]["result_type"] = "ap_int<6>"
    with pytest.raises(SpecError, match=r"layer 'sub' \(layers\[1\]\): an ap_int<6> result of subtract is not supported by the RTL path"):
        rtl.check_supported(spec)


@pytest.mark.parametrize(("add_type", "layer", "inputs", "message"), [
    ("ap_fixed<34,10>", 2, ["add", "b"], ("layer 'mul' (layers[2]): multiply of ap_fixed<34,10", "product has 56 bits; supported: products of up to 52 bits")),
    ("ap_fixed<40,10>", 3, ["add", "sub"], ("layer 'avg' (layers[3]): average of ap_fixed<40,10", "sum (or difference) has 41 bits; supported: sums of up to 40")),
])  # fmt: skip
def test_merges_wider_than_da4ml_computes_exactly_are_refused(add_type, layer, inputs, message):
    spec = _joined_spec("ap_fixed<24,10>", "ap_fixed<22,2>")
    spec["layers"][0]["result_type"] = add_type
    spec["layers"][layer]["inputs"] = inputs
    with pytest.raises(SpecError, match=".*".join(map(re.escape, message))):
        rtl.check_supported(validate_spec(spec))


@pytest.mark.slow
@pytest.mark.hls4ml
def test_converted_conv1d_network_rtl_equals_the_c_simulation(tmp_path, capsys, monkeypatch):
    """QConv1D, AveragePooling1D, GlobalMaxPooling1D, Dense converted by hls4ml: the RTL built
    from its spec equals the C-simulation (and the emulator) on every output bit."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras, qkeras

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    q = "quantized_bits(4,0,alpha=1)"
    inputs = keras.layers.Input((10, 2), name="hits")
    x = qkeras.QConv1D(2, 3, kernel_quantizer=q, bias_quantizer=q, name="conv")(inputs)
    x = qkeras.QActivation("quantized_relu(4,1)", name="relu")(x)
    x = keras.layers.AveragePooling1D(2, name="pool")(x)
    x = keras.layers.GlobalMaxPooling1D(name="gmax")(x)
    outputs = qkeras.QDense(2, kernel_quantizer=q, bias_quantizer=q, name="out")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(7)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    model.save(str(tmp_path / "conv1d.h5"))
    project = tmp_path / "fw"
    bridge.convert(tmp_path / "conv1d.h5", project, {"layers": {"hits": {"precision": {"result": "ap_fixed<4,2>"}}}})
    assert cli.main(["rtl", str(project), "--simulate", "300", "--csim"]) == 0
    out = capsys.readouterr().out
    assert "RTL vs hls4ml C-simulation: all 300 events equal, every output bit" in out, out


@pytest.mark.slow
@pytest.mark.hls4ml
def test_converted_merge_network_rtl_equals_the_c_simulation(tmp_path, capsys, monkeypatch):
    """Two inputs, every Keras merge, UpSampling1D and Concatenate converted by hls4ml with
    narrow types (sums and products wrap and round): the Verilator simulation of the RTL
    built from its spec equals the C-simulation, the emulator, the reference and da4ml's
    interpreter on every output bit."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    layers = keras.layers
    a, b = keras.Input((4, 2), name="a"), keras.Input((4, 2), name="b")
    s, p = layers.Subtract(name="sub")([a, b]), layers.Multiply(name="mul")([a, b])
    mx = layers.Maximum(name="max")([layers.Average(name="avg")([s, p]), layers.Add(name="add")([a, b])])
    u = layers.UpSampling1D(2, name="up")(layers.Minimum(name="min")([mx, b]))
    joined = layers.Concatenate(axis=1, name="cat")([layers.Flatten(name="flat")(u), layers.Flatten(name="flat_p")(p)])
    keras.Model([a, b], layers.Dense(3, name="out")(joined)).save(str(tmp_path / "merges.h5"))
    project = tmp_path / "fw"
    narrow = {"precision": {"result": "ap_fixed<7,2,AP_RND,AP_SAT>"}}
    settings = {"layers": {"a": {"precision": {"result": "ap_fixed<6,2>"}}, "b": {"precision": {"result": "ap_fixed<8,1>"}},
                           "sub": narrow, "avg": {"precision": {"result": "ap_fixed<6,1>"}}, "min": narrow}}  # fmt: skip
    bridge.convert(tmp_path / "merges.h5", project, settings)
    assert cli.main(["rtl", str(project), "--simulate", "400", "--csim"]) == 0
    out = capsys.readouterr().out
    for name in ("hls4ml C-simulation", "numba emulator", "pure-Python reference", "da4ml interpreter"):
        assert f"RTL vs {name}: all 400 events equal, every output bit" in out, out


def test_an_average_division_wider_than_da4ml_computes_exactly_is_refused():
    """A global average of 5 values in a 25-bit accumulator differed from the reference in
    every event of da4ml's graph (24 bits: exact); the RTL path refuses it by name."""
    spec = _one_row_spec()
    spec["layers"][-1]["accum_type"] = "ap_fixed<26,4>"  # an average over 3: 2 * 27 + 2 bits
    with pytest.raises(SpecError, match=r"layer 'g' \(layers\[5\]\): an average over 3 values in accum_t of 26 bits is not supported"):
        rtl.check_supported(spec)
    spec["layers"][-1]["accum_type"] = "ap_fixed<25,4>"  # 2 * 26 + 2 = 54 bits
    with pytest.raises(SpecError, match="needs a 54-bit product"):
        rtl.check_supported(spec)
    spec["layers"][-1]["accum_type"] = "ap_fixed<24,4>"
    rtl.check_supported(spec)
