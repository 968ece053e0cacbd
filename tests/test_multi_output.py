"""Networks with several output layers (heads): the spec's ``inputs``/``layer`` fields, the
emulator's column layout, and bit-exactness against hls4ml 1.3.0's C-simulation.

The hls4ml cases convert one QKeras model (a conv trunk, then three heads of different
result types: a linear Dense, a Dense + sigmoid table and a Dense + quantized_relu) with
io_parallel and io_stream (which inserts a Clone layer), and compare every output value on
random fragment-like and full-range inputs.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from l0emu.fixedpoint.spec import spec_inputs
from l0emu.fixedpoint._codegen import generate
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError, SpecError
from l0emu.fixedpoint.spec import output_layout, read_spec, validate_spec

N_EVENTS = 2000
STUDENT = "l0emu/data/default_student/spec.json"
T = "ap_fixed<12,4>"


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


# ---------------------------------------------------------------- hand-built specs (no hls4ml)


def _dense(name, n_in, n_out, rng, result=T, **extra):
    return {
        "name": name, "op": "dense", **extra, "n_in": n_in, "n_out": n_out,
        "weight_type": "ap_fixed<4,1>", "bias_type": "ap_fixed<4,1>", "accum_type": "ap_fixed<20,8>",
        "weights_shape": [n_in, n_out], "weights": [int(v) for v in rng.integers(-8, 8, n_in * n_out)],
        "biases": [int(v) for v in rng.integers(-8, 8, n_out)], "product": "mult",
        "input_shape": [n_in], "output_shape": [n_out], "result_type": result,
    }  # fmt: skip


def branched_spec(seed=0) -> dict:
    """input[4] -> trunk dense(3) -> relu -> head ``a`` dense(1); head ``b`` dense(2) and its relu
    read the trunk's relu; head ``pre`` reads the trunk dense before its relu (so that relu
    may not fold into the dense's casts)."""
    rng = np.random.default_rng(seed)
    layers = [
        _dense("trunk", 4, 3, rng),
        {"name": "trunk_relu", "op": "relu", "input_shape": [3], "output_shape": [3], "result_type": "ap_ufixed<8,3>"},
        _dense("a", 3, 1, rng, result="ap_fixed<16,6>"),
        _dense("b_dense", 3, 2, rng, inputs=["trunk_relu"]),
        {"name": "b", "op": "relu", "input_shape": [2], "output_shape": [2], "result_type": "ap_ufixed<6,2,AP_RND,AP_SAT>"},
        {"name": "pre", "op": "linear", "inputs": ["trunk"], "input_shape": [3], "output_shape": [3], "result_type": "ap_fixed<10,5>"},
    ]
    outputs = [
        {"name": "a", "layer": "a", "index": 0, "scale": 2.0, "offset": 1.0},
        {"name": "b1", "layer": "b", "index": 1, "scale": 1.0, "offset": 0.0},
        {"name": "b0", "layer": "b", "index": 0, "scale": 1.0, "offset": 0.0},
        {"name": "pre2", "layer": "pre", "index": 2, "scale": 0.5, "offset": 0.0},
    ]
    spec = {"format": "l0emu-spec/2", "name": "branched", "source": {}, "inputs": [{"name": "x", "shape": [4], "type": "ap_fixed<8,3>"}],
            "layers": layers, "outputs": outputs}  # fmt: skip
    return validate_spec(spec)


def _inputs(n, seed=1):
    return np.random.default_rng(seed).integers(-128, 128, (n, 4)).astype(np.float32) / 32


def test_layout_columns_follow_the_outputs_first_mention():
    heads, columns = output_layout(branched_spec())
    assert heads == [("a", 0, 1), ("b", 1, 2), ("pre", 3, 3)]
    assert columns == {"a": 0, "b1": 2, "b0": 1, "pre2": 5}


def test_heads_equal_the_unfused_trace_and_keep_their_own_types():
    """The fused kernel's heads equal every layer computed on its own (trace), each column in
    its head's type; ``pre`` reads the trunk before its relu, which therefore is not fused."""
    emu = Emulator.from_spec(branched_spec())
    x = _inputs(3000)
    raw = emu.predict_raw(x)
    assert raw.shape == (3000, 6) and emu.n_outputs == 6
    trace = emu.trace(x)
    np.testing.assert_array_equal(emu.to_float(raw), np.concatenate([trace[name].reshape(3000, -1) for name in ("a", "b", "pre")], axis=1))
    assert len(np.unique(trace["trunk"] < 0)) == 2  # the relu has negatives to clip, so an unwanted fusion would show
    assert [str(t) for t in emu.output_types] == [
        "ap_fixed<16,6,AP_TRN,AP_WRAP,0>", *["ap_ufixed<6,2,AP_RND,AP_SAT,0>"] * 2, *["ap_fixed<10,5,AP_TRN,AP_WRAP,0>"] * 3
    ]
    physical = emu.predict(x)
    assert set(physical) == {"a", "b1", "b0", "pre2"}
    np.testing.assert_array_equal(physical["a"], 1.0 + 2.0 * trace["a"][:, 0])
    np.testing.assert_array_equal(physical["b1"], trace["b"][:, 1])
    np.testing.assert_array_equal(physical["pre2"], 0.5 * trace["pre"][:, 2])
    assert emu.output_type_of("pre2") == emu.output_types[5] and emu.column("b0") == 1
    with pytest.raises(ConfigError, match=r"outputs of different types \(a: ap_fixed<16,6.*use output_type_of"):
        emu.output_type
    with pytest.raises(ConfigError, match=r"no output 'b2' \(did you mean 'b1', 'b0'"):
        emu.column("b2")
    # a threshold on a head is counted in that head's own lsb (2**-10 for 'a': 16 bits, 6 integer)
    assert emu.threshold_mantissa("a", 3.0) == 1 << 10


def test_old_specs_give_the_same_kernel_with_explicit_defaults():
    """A chain spec (the shipped student) has one head, the last layer, with the outputs'
    indices as columns; writing its implicit defaults out changes no byte of the kernel."""
    spec = read_spec(STUDENT)
    heads, columns = output_layout(spec)
    assert heads == [(spec["layers"][-1]["name"], 0, 2)] and columns == {"pt": 0, "eta": 1}
    explicit = copy.deepcopy(spec)
    for previous, layer in zip(explicit["layers"], explicit["layers"][1:]):
        layer["inputs"] = [previous["name"]]
    explicit["layers"][0]["inputs"] = [spec_inputs(spec)[0]["name"]]
    for out in explicit["outputs"]:
        out["layer"] = spec["layers"][-1]["name"]
    assert generate(validate_spec(explicit))[0] == generate(spec)[0]
    emu = Emulator.from_spec(STUDENT)
    assert emu.output_types == (emu.output_type,) * 2 and emu.n_outputs == 2


def _edit(spec, path, value):
    spec = copy.deepcopy(spec)
    target = spec
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spec


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("layers", 3, "inputs"), ["trunk_rlu"], r"layers\[3\]\.inputs\[0\]: 'trunk_rlu' is not a network input or an earlier layer \(did you mean 'trunk_relu'"),
        (("layers", 3, "inputs"), ["b"], r"layer 'b_dense' at layers\[3\]\.inputs\[0\]: 'b' is not a network input or an earlier layer"),
        (("layers", 3, "inputs"), ["trunk", "a"], r"inputs: a dense reads one layer name: expected a list of 1"),
        (("layers", 3, "inputs"), "trunk_relu", r"inputs: a dense reads one layer name: expected a list of 1"),
        (("layers", 3, "inputs"), ["x"], r"layers\[3\]\.input_shape: is \[3\], but the network input gives \[4\]"),
        (("layers", 5, "inputs"), ["a"], r"layers\[5\]\.input_shape: is \[3\], but layer 'a' gives \[1\]"),
        (("layers", 3, "inputs"), _DROP, r"layers\[3\]\.input_shape: is \[3\], but the previous layer gives \[1\]"),
        (("outputs", 1, "layer"), "bb", r"outputs\[1\]\.layer: output 'b1' reads layer 'bb', which the spec does not have \(did you mean 'b'"),
        (("outputs", 1, "index"), 2, r"outputs\[1\]\.index: output 'b1' has index 2, layer 'b' has 2 outputs"),
        (("outputs", 1, "layer"), 7, r"outputs\[1\]\.layer: expected a non-empty string, got int 7"),
        (("outputs", 1, "layr"), "b", r"outputs\[1\]\.layr: unknown field 'layr' \(did you mean 'layer'"),
    ],
)
def test_spec_errors_name_the_field_and_the_nearest_layers(path, value, message):
    with pytest.raises(SpecError, match=message):
        validate_spec(_edit(branched_spec(), path, value), origin="spec.json")


def test_a_name_of_both_the_input_and_a_layer_is_ambiguous():
    spec = _edit(branched_spec(), ("layers", 0, "name"), "x")
    spec = _edit(spec, ("layers", 1, "inputs"), ["x"])
    with pytest.raises(SpecError, match=r"layer name 'x' is used twice \(by an earlier layer or a network input\)"):
        validate_spec(spec)


def test_rtl_builds_several_heads_in_the_emulators_columns():
    """The RTL path's traced graph and its reference give the emulator's columns, each in its head's type."""
    from l0emu.firmware import rtl

    spec = branched_spec()
    x = _inputs(2000)
    reference = rtl.evaluate_exact(spec, x)
    assert np.array_equal(Emulator.from_spec(spec).predict_raw(x), reference)
    build = rtl.trace_spec(spec)
    assert [str(t) for t in build.output_types] == [str(Emulator.from_spec(spec).output_types[j]) for j in range(6)]
    assert np.array_equal(rtl.interpret(build, x), reference)


# ---------------------------------------------------------------- hls4ml C-simulation


def _heads_model():
    from l0emu.firmware.keras_env import keras, qkeras

    def q(bits):
        return {"kernel_quantizer": qkeras.quantized_bits(bits, 0, alpha=1), "bias_quantizer": qkeras.quantized_bits(bits, 0, alpha=1)}

    image = keras.Input((9, 16, 1), name="image")
    x = qkeras.QConv2D(2, (3, 3), name="conv1", **q(4))(image)
    x = qkeras.QActivation(qkeras.quantized_relu(6, 3), name="relu1")(x)
    x = keras.layers.MaxPooling2D((1, 2), name="pool1")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = qkeras.QDense(8, name="trunk", **q(6))(x)
    x = qkeras.QActivation(qkeras.quantized_relu(8, 4), name="trunk_relu")(x)
    pt = qkeras.QDense(1, name="pt", **q(6))(x)
    charge = keras.layers.Activation("sigmoid", name="charge")(qkeras.QDense(1, name="charge_dense", **q(6))(x))
    count = qkeras.QActivation(qkeras.quantized_relu(6, 2), name="count")(qkeras.QDense(3, name="count_dense", **q(6))(x))
    model = keras.Model(image, [pt, charge, count])
    rng = np.random.default_rng(8)  # a seed under which every output value varies on fragments
    model.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def converted(request, tmp_path_factory):
    """(project dir, hls_model, spec) of the three-head model, compiled."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge

    base = tmp_path_factory.mktemp(f"heads_{request.param}")
    _heads_model().save(str(base / "heads.h5"))
    hls_model, spec = bridge.convert(base / "heads.h5", base / "fw", {"io_type": request.param}, name="heads", compile=True)
    return base / "fw", hls_model, spec


@pytest.mark.hls4ml
def test_bridge_writes_branches_and_one_output_per_value(converted):
    _, _, spec = converted
    reads = {layer["name"]: layer.get("inputs") for layer in spec["layers"]}
    assert reads["count_dense"] == reads["pt"] == ["trunk_relu"] and reads["charge"] == ["charge_dense"]
    assert not any(kind.startswith("clone") for kind in reads)  # io_stream's copies are no layers of the spec
    assert [(o["name"], o["layer"], o["index"]) for o in spec["outputs"]] == [
        ("pt", "pt", 0), ("charge", "charge", 0), ("count_0", "count", 0), ("count_1", "count", 1), ("count_2", "count", 2)
    ]


@pytest.mark.hls4ml
@pytest.mark.parametrize("inputs", ["fragments", "full_range"])
def test_every_head_equals_the_c_simulation(converted, inputs):
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.trigger.images import pooled_to_float
    from l0emu.validation.compare import full_range_inputs, random_fragments

    _, hls_model, spec = converted
    emu = Emulator.from_spec(spec)
    if inputs == "fragments":
        x = random_fragments(N_EVENTS, seed=5, shape=tuple(spec_inputs(spec)[0]["shape"]))
        floats = pooled_to_float(x)
    else:
        x = floats = full_range_inputs(N_EVENTS, spec, seed=5)
    ours, theirs = emu.predict_raw(x), bridge.csim_raw(hls_model, floats, spec)
    assert ours.shape == (N_EVENTS, 5)
    for name, j in emu.columns.items():
        differ = np.flatnonzero(ours[:, j] != theirs[:, j])
        assert not len(differ), f"{name}: {len(differ)} of {N_EVENTS} events differ (first #{differ[0]}: {ours[differ[0], j]} vs {theirs[differ[0], j]})"
        assert len(np.unique(ours[:, j])) > 1, f"{name} is constant on these inputs: the comparison would prove little"
    # each head in its own type: the values are the C-simulation's doubles
    np.testing.assert_array_equal(emu.to_float(ours), bridge.csim_predict(hls_model, floats))
    assert len(set(emu.output_types)) == 3


@pytest.mark.hls4ml
def test_bridge_refuses_outputs_that_name_no_model_output(converted):
    from l0emu.firmware import hls4ml_bridge as bridge

    _, hls_model, spec = converted
    base = {**bridge.DEFAULT_SETTINGS}
    unnamed = {**base, "outputs": [{"name": "pt", "index": 0, "scale": 1.0, "offset": 0.0}]}
    with pytest.raises(SpecError, match=r"output 'pt' names no 'layer'; the model has 3 output layers \(pt, charge, count\)"):
        bridge.extract_spec(hls_model, "heads", spec["source"], unnamed)
    inner = {**base, "outputs": [{"name": "t", "layer": "trunk_relu", "index": 0, "scale": 1.0, "offset": 0.0}]}
    with pytest.raises(SpecError, match=r"reads layer 'trunk_relu', which is not an output of the model \(outputs: pt, charge, count\)"):
        bridge.extract_spec(hls_model, "heads", spec["source"], inner)


@pytest.mark.hls4ml
def test_validate_compares_every_output(converted, capsys, tmp_path):
    from l0emu.cli.dispatch import main

    directory, _, spec = converted
    if spec["source"]["io_type"] != "io_parallel":
        pytest.skip("one validate run covers the command; the heads' bits are compared above for both io types")
    for extra in ([], ["--full-range"]):
        rc = main(["validate", str(directory), "--random", "300", *extra])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "per output: pt 0, charge 0, count_0 0, count_1 0, count_2 0" in out and "RESULT: bit-exact" in out
    saved = json.loads((directory / "spec.json").read_text())
    assert saved == spec and re.search(r"qkeras", out, re.IGNORECASE)
