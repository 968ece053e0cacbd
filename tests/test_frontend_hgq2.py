"""HGQ2 (Keras 3) networks through the Keras 3 front end.

HGQ2 learns a bit width for every weight and activation; hls4ml turns its activation
quantizers into FixedPointQuantizer layers, a fixed-point type per element, which the spec
holds as the ``quantize`` op. Checked here: the op against the casts on every input value of
a small type (all rounding and overflow modes), its validation, and trained HGQ2 networks
(Dense, Conv2D, max pooling, relu and tanh, per-element widths that differ) bit for bit
against hls4ml's C-simulation on full-range inputs, through ``l0emu convert`` + ``l0emu
validate --full-range`` and through the Python API with a model object, and the RTL path
(da4ml's interpreter of the traced graph, the pure-Python reference, the C-simulation).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import scaled
from l0emu.errors import ConfigError, SpecError
from l0emu.fixedpoint.aptypes import element_types, parse_type
from l0emu.fixedpoint.casts import cast_mantissa
from l0emu.fixedpoint.emulator import Emulator
from l0emu.fixedpoint.spec import validate_spec

N_FULL_RANGE = scaled(2003, 20003)  # the edges (zero, min, max) and uniform mantissas over the input type
INPUT_TYPE = "ap_fixed<8,3,AP_TRN,AP_WRAP,0>"
# (k, i, f) of each element: signed and unsigned, no bits, one bit, integer bits below zero, wider than the input
ELEMENTS = [(0, 0, 0), (1, -1, 0), (0, 1, 0), (1, 0, 1), (0, -1, 3), (1, 2, 2), (0, 3, 4), (1, -2, 5), (1, 4, -1), (0, 2, 6), (1, 1, 7)]
# result types after the per-element cast: one holding every element, one that rounds and saturates again
RESULT_TYPES = ("ap_fixed<14,6,AP_TRN,AP_WRAP,0>", "ap_fixed<5,2,AP_RND_CONV,AP_SAT,0>")


def _element_spec(k, i, f, rounding, overflow):
    return {"k": list(k), "i": list(i), "f": list(f), "rounding": rounding, "overflow": overflow}


def _quantize_spec(modes):
    """One quantize layer per (rounding, overflow) of ``modes``, each reading the network input
    and each an output."""
    k, i, f = (list(column) for column in zip(*ELEMENTS))
    n = len(ELEMENTS)
    layers, outputs = [], []
    for j, (rounding, overflow) in enumerate(modes):
        name = f"q_{rounding}_{overflow}".lower()
        layers.append({"name": name, "op": "quantize", "inputs": ["x"], "input_shape": [n], "output_shape": [n],
                       "result_type": RESULT_TYPES[j % 2], "element_types": _element_spec(k, i, f, rounding, overflow)})  # fmt: skip
        outputs += [{"name": f"{name}_{e}", "layer": name, "index": e, "scale": 1.0, "offset": 0.0, "unit": "network"} for e in range(n)]
    return {"format": "l0emu-spec/2", "name": "quantize_modes", "source": {}, "inputs": [{"name": "x", "shape": [n], "type": INPUT_TYPE}],
            "layers": layers, "outputs": outputs}  # fmt: skip


def _reference(layer, mantissas, src_frac):
    """The quantize layer on Python integers through the casts: element type, then the result type."""
    result = parse_type(layer["result_type"])
    types = element_types(*(layer["element_types"][key] for key in ("k", "i", "f", "rounding", "overflow")))
    out = np.zeros((len(mantissas), len(types)), dtype=np.int64)
    for e, t in enumerate(types):
        for r, m in enumerate(mantissas):
            q = 0 if t is None else int(cast_mantissa(int(m), src_frac, *t.codes()))
            out[r, e] = int(cast_mantissa(q, 0 if t is None else t.frac, *result.codes()))
    return out


@pytest.mark.parametrize(
    ("type_limit", "modes"),
    [
        # more element types than ELEMENT_TYPE_LIMIT: one int64 loop handing each element's type to the casts
        (None, [("RND", "WRAP"), ("TRN", "SAT")]),
        # a loop per type, float-domain casts where exact: each rounding and overflow instruction sequence
        (len(ELEMENTS), [("RND", "WRAP"), ("TRN", "SAT"), ("RND_CONV", "SAT_SYM"), ("TRN_ZERO", "SAT_ZERO")]),
    ],
    ids=["looped", "per-type"],
)
def test_quantize_equals_the_casts_on_every_input_value(type_limit, modes, tmp_path, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    if type_limit is not None:
        monkeypatch.setattr("l0emu.fixedpoint._codegen.ELEMENT_TYPE_LIMIT", type_limit)
    spec = validate_spec(_quantize_spec(modes))
    in_t = parse_type(INPUT_TYPE)
    mantissas = np.arange(in_t.min_mantissa, in_t.max_mantissa + 1)
    x = np.repeat(in_t.to_float(mantissas)[:, None], len(ELEMENTS), axis=1)
    emulator = Emulator.from_spec(spec)
    got = emulator.predict_raw(x)
    for layer in spec["layers"]:
        column = emulator.column(f"{layer['name']}_0")
        expected = _reference(layer, mantissas, in_t.frac)
        np.testing.assert_array_equal(got[:, column : column + len(ELEMENTS)], expected, err_msg=layer["name"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("k", [2, 0], r"element_types\.k\[0\]: a sign bit count is 0 or 1, got 2"),
        ("i", [60, 0], r"element_types\.i\[0\]: element 0 has k \+ i \+ f = 64 bits, not in \[0, 63\]"),
        ("f", [3], r"element_types\.f: expected 2 integers, got 1"),
        ("rounding", "RDN", r"element_types\.rounding: rounding 'RDN' is not one of .* \(did you mean .*'RND'\?\)"),
        ("overflow", "SATURATE", r"element_types\.overflow: overflow 'SATURATE' is not one of"),
    ],
)
def test_element_types_are_checked_by_field(field, value, message):
    layer = {"name": "q", "op": "quantize", "input_shape": [2], "output_shape": [2], "result_type": "ap_fixed<8,3>",
             "element_types": _element_spec([1, 0], [1, 2], [3, 2], "RND", "WRAP")}  # fmt: skip
    layer["element_types"][field] = value
    spec = {"format": "l0emu-spec/2", "name": "q", "source": {}, "inputs": [{"name": "x", "shape": [2], "type": INPUT_TYPE}],
            "layers": [layer], "outputs": [{"name": "y", "index": 0, "scale": 1.0, "offset": 0.0, "unit": "network"}]}  # fmt: skip
    with pytest.raises(SpecError, match=r"layer 'q' at layers\[0\]\." + message):
        validate_spec(spec)


# ---------------------------------------------------------------- HGQ2 networks through hls4ml


def _hgq2():
    pytest.importorskip("hls4ml")
    from l0emu.firmware.frontend_keras3 import keras3  # before hgq: it sets up tf-keras for QKeras

    pytest.importorskip("hgq")

    return keras3()


def _trained(model, shape, seed):
    """A few training steps, then hgq's trace of the activations' ranges (which sets their integer
    bits); HGQ2's bit-width regularisation makes the per-element widths differ."""
    from hgq.utils import trace_minmax

    keras = _hgq2()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 2.0, (512, *shape)).astype(np.float32)
    y = np.stack([x.reshape(len(x), -1).sum(axis=1), np.abs(x).reshape(len(x), -1).max(axis=1)], axis=1)
    y = np.tile(y, (1, model.output_shape[-1]))[:, : model.output_shape[-1]].astype(np.float32)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    trace_minmax(model, x, verbose=0)
    return model


def _distinct_types(spec):
    """How many distinct element types each quantize layer holds."""
    return {
        layer["name"]: len(set(zip(layer["element_types"]["k"], layer["element_types"]["i"], layer["element_types"]["f"])))
        for layer in spec["layers"]
        if layer["op"] == "quantize"
    }


@pytest.fixture(scope="module")
def dense_file(tmp_path_factory):
    """A trained HGQ2 MLP (12 -> 8 relu -> 6 relu -> 2) saved as a .keras file."""
    keras = _hgq2()
    from hgq.layers import QDense

    keras.utils.set_random_seed(1)
    inp = keras.Input((12,), name="features")
    x = QDense(8, activation="relu", name="dense1")(inp)
    x = QDense(6, activation="relu", name="dense2")(x)
    x = QDense(2, name="out")(x)
    path = tmp_path_factory.mktemp("hgq2_dense") / "hgq_mlp.keras"
    _trained(keras.Model(inp, x), (12,), seed=1).save(str(path))
    return path


@pytest.mark.hls4ml
@pytest.mark.slow
def test_a_keras_file_through_convert_and_validate_full_range(dense_file, tmp_path, capsys, monkeypatch):
    from l0emu.cli.dispatch import main

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    config = tmp_path / "convert.json"
    config.write_text(json.dumps({"layers": {"dense1": {"strategy": "Resource", "reuse_factor": 2}}}))
    project = tmp_path / "fw"
    assert main(["convert", str(dense_file), "-o", str(project), "--config", str(config)]) == 0
    capsys.readouterr()
    spec = json.loads((project / "spec.json").read_text())
    record = json.loads((project / "l0emu_convert.json").read_text())
    assert record["front_end"] == "keras3" and (project / "model.keras").is_file()
    dense1 = next(layer for layer in spec["layers"] if layer["name"] == "dense1")
    assert (dense1["strategy"], dense1["reuse_factor"]) == ("resource", 2)
    assert max(_distinct_types(spec).values()) > 1, _distinct_types(spec)
    rc = main(["validate", str(project), "--random", str(N_FULL_RANGE), "--full-range"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"events compared:                  {N_FULL_RANGE}\n" in out
    assert "events with any differing bit:    0\n" in out


def test_a_precision_that_bit_exact_inference_would_ignore_is_refused(dense_file, tmp_path):
    from l0emu.firmware.hls4ml_bridge import convert

    settings = {"layers": {"out": {"precision": {"accum": "ap_fixed<24,8>"}}}}
    with pytest.raises(ConfigError, match=r"layers\.out\.precision: hls4ml's bit-exact type inference .* set bit_exact: false"):
        convert(dense_file, tmp_path / "fw", settings)


@pytest.mark.hls4ml
def test_a_keras_relu_layer_is_refused_by_name(tmp_path):
    """hls4ml 1.3.0 makes it a thresholded relu whose C-simulation lets negative values through."""
    keras = _hgq2()
    from hgq.layers import QDense

    from l0emu.firmware.hls4ml_bridge import convert

    inp = keras.Input((4,), name="features")
    x = keras.layers.ReLU(name="relu_layer")(QDense(3, name="dense")(inp))
    path = tmp_path / "relu.keras"
    keras.Model(inp, QDense(1, name="out")(x)).save(str(path))
    with pytest.raises(SpecError, match=r"layer 'relu_layer': hls4ml 1\.3\.0 writes a Keras 3 ReLU layer as thresholded_relu"):
        convert(path, tmp_path / "fw", {})
    assert not (tmp_path / "fw").exists()


@pytest.mark.hls4ml
def test_per_element_quantizers_in_io_stream_are_refused(dense_file, tmp_path):
    from l0emu.firmware.hls4ml_bridge import convert

    with pytest.raises(ConfigError, match=r"hls4ml could not convert the Keras 3 model: NotImplementedError: Heterogenous quantization .*io_parallel"):
        convert(dense_file, tmp_path / "fw", {"io_type": "io_stream"})


@pytest.mark.hls4ml
def test_an_hls4ml_layer_the_emulator_does_not_model_is_refused_by_name(tmp_path):
    """HGQ2's QEinsumDense becomes hls4ml's EinsumDense, which the bridge has no handler for."""
    keras = _hgq2()
    from hgq.layers import QEinsumDense

    from l0emu.firmware.hls4ml_bridge import convert

    inp = keras.Input((4,), name="x")
    keras.Model(inp, QEinsumDense("bi,ij->bj", output_shape=3, name="einsum")(inp)).save(str(tmp_path / "einsum.keras"))
    with pytest.raises(SpecError, match=r"hls4ml layer 'einsum' is a VitisEinsumDense, which l0emu cannot emulate; supported: .*FixedPointQuantizer"):
        convert(tmp_path / "einsum.keras", tmp_path / "fw", {})


def test_the_api_takes_paths_and_keras3_models_only(tmp_path):
    _hgq2()
    from l0emu import convert
    from l0emu.firmware.keras_env import keras

    tf_keras_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match=r"expected a file path, a Keras 3 model object or a torch.nn.Module, got Sequential"):
        convert(tf_keras_model, tmp_path / "fw")


@pytest.fixture(scope="module")
def conv_project(tmp_path_factory):
    """A trained HGQ2 convolutional net given to the API as a model object: QConv2D (relu),
    max pooling, QDense (tanh, hls4ml's lookup table), QDense; compiled."""
    keras = _hgq2()
    from hgq.layers import QConv2D, QDense, QMaxPooling2D

    from l0emu import convert

    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 1), name="image")
    x = QConv2D(3, (3, 3), activation="relu", name="conv")(inp)
    x = QMaxPooling2D((2, 2), name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = QDense(6, activation="tanh", name="hidden")(x)
    x = QDense(3, name="out")(x)
    model = _trained(keras.Model(inp, x, name="hgq_conv"), (8, 8, 1), seed=3)
    project = tmp_path_factory.mktemp("hgq2_conv") / "fw"
    hls_model, spec = convert(model, project, compile=True)
    return project, hls_model, spec


@pytest.mark.hls4ml
@pytest.mark.slow
def test_a_keras3_model_object_through_the_api_is_bit_exact(conv_project, tmp_path, monkeypatch):
    from l0emu.firmware.hls4ml_bridge import csim_raw
    from l0emu.validation.compare import full_range_inputs

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    project, hls_model, spec = conv_project
    assert json.loads((project / "l0emu_convert.json").read_text())["front_end"] == "keras3"
    assert (project / "model.keras").is_file() and spec["name"] == "hgq_conv"
    assert [layer["op"] for layer in spec["layers"]] == ["quantize", "conv2d", "relu", "quantize", "max_pool2d", "flatten", "quantize",
                                                         "dense", "tanh", "quantize", "dense"]  # fmt: skip
    assert max(_distinct_types(spec).values()) > 1, _distinct_types(spec)
    x = full_range_inputs(N_FULL_RANGE, spec, seed=5)
    np.testing.assert_array_equal(Emulator.from_spec(spec).predict_raw(x), csim_raw(hls_model, x, spec))


@pytest.mark.hls4ml
@pytest.mark.slow
def test_the_rtl_path_builds_an_hgq2_network_and_agrees(conv_project, tmp_path, monkeypatch):
    """da4ml's interpreter of the traced graph, the pure-Python reference and the C-simulation
    against the emulator, and ``l0emu rtl`` writing the graph's Verilog (a Verilator build of
    such a graph is tests/test_rtl.py's path)."""
    pytest.importorskip("da4ml")
    from l0emu.firmware import rtl
    from l0emu.validation.compare import full_range_inputs

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    project, _, spec = conv_project
    build = rtl.trace_spec(spec)
    x = full_range_inputs(N_FULL_RANGE, spec, seed=7)
    references = rtl.references(spec, build, x, project)
    emulator = references.pop("numba emulator")
    assert set(references) == {"pure-Python reference", "da4ml interpreter", "hls4ml C-simulation"}
    for name, values in references.items():
        np.testing.assert_array_equal(np.asarray(values).reshape(emulator.shape), emulator, err_msg=name)
    from l0emu.cli.dispatch import main

    assert main(["rtl", str(project)]) == 0  # the Verilog of the same trace, written by `l0emu rtl`
    assert list((project / "rtl").rglob("*.v"))
