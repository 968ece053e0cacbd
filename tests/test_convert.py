"""The hls4ml bridge: ``l0emu convert``, spec export and C-simulation access (firmware/hls4ml_bridge.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.fixedpoint.spec import spec_inputs  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.cli.dispatch import main  # noqa: E402
from l0emu.errors import ConfigError, InputFileError  # noqa: E402
from l0emu.fixedpoint.spec import read_spec  # noqa: E402

Q4 = "quantized_bits(4,0,alpha=1)"
PO2 = "quantized_bits(4,0,alpha='auto_po2')"


def _random_weights(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    return model


def tiny_qkeras(seed=0):
    """conv+relu, flatten, dense+relu, unquantized dense output; the input layer is named 'input'."""
    inp = keras.Input((9, 16, 1), name="input")
    x = qkeras.QConv2D(2, (3, 3), kernel_quantizer=Q4, bias_quantizer=Q4, name="c1")(inp)
    x = qkeras.QActivation("quantized_relu(4,0)", name="r1")(x)
    x = keras.layers.Flatten(name="fl")(x)
    x = qkeras.QDense(4, kernel_quantizer=Q4, bias_quantizer=Q4, name="d1")(x)
    x = qkeras.QActivation("quantized_relu(4,0)", name="r2")(x)
    x = keras.layers.Dense(2, name="out")(x)
    return _random_weights(keras.Model(inp, x), seed)


def po2_qkeras(seed=1):
    """auto_po2 kernels (hls4ml adds ApplyAlpha) and a 'same' conv (io_stream pads before it)."""
    inp = keras.Input((9, 16, 1), name="image")
    x = qkeras.QConv2D(2, (3, 3), padding="same", kernel_quantizer=PO2, bias_quantizer=Q4, name="c1")(inp)
    x = qkeras.QActivation("quantized_relu(4,0)", name="r1")(x)
    x = keras.layers.MaxPooling2D((1, 2), name="mp")(x)
    x = keras.layers.Flatten(name="fl")(x)
    x = qkeras.QDense(4, kernel_quantizer=PO2, bias_quantizer=Q4, name="d1")(x)
    x = qkeras.QActivation("quantized_relu(4,0)", name="r2")(x)
    x = keras.layers.Dense(2, name="out")(x)
    model = _random_weights(keras.Model(inp, x), seed)
    # scale the filters and units apart so the per-channel power-of-two alphas differ from 1
    weights = model.get_weights()
    weights[0] *= np.array([1.0, 0.2], dtype="f4")
    weights[2] *= np.array([1.0, 0.5, 0.2, 0.1], dtype="f4")
    model.set_weights(weights)
    return model


def hit_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (n, 9, 16, 1)).astype(np.float64)


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.h5"
    tiny_qkeras().save(str(path))
    return path


@pytest.fixture(scope="module")
def converted(tiny_h5, tmp_path_factory):
    """The tiny model converted (io_parallel) and compiled: one g++ build shared by the tests."""
    out = tmp_path_factory.mktemp("fw") / "tiny"
    hls_model, spec = bridge.convert(tiny_h5, out, compile=True)
    return out, hls_model, spec


def _weights_txt(out, hls_layer, key):
    text = (out / "firmware" / "weights" / f"{hls_layer.weights[key].name}.txt").read_text()
    return np.array([float(t) for t in text.split(",")])


@pytest.mark.hls4ml
def test_convert_writes_project_spec_model_and_settings(converted):
    out, _, spec = converted
    for name in ("spec.json", "keras_model.h5", "l0emu_convert.json", "hls4ml_config.yml", "build_lib.sh"):
        assert (out / name).is_file(), name
    assert read_spec(out) == spec
    assert [layer["op"] for layer in spec["layers"]] == ["conv2d", "relu", "flatten", "dense", "relu", "dense"]
    assert spec["source"]["renamed_layers"] == {"input": "input_layer"}
    assert spec_inputs(spec)[0]["name"] == "input_layer"
    assert spec["source"]["io_type"] == "io_parallel"
    assert spec["source"]["part"] == "xcvu13p-fhga2104-2L-e"
    assert spec["source"]["clock_period_ns"] == 2
    assert all(layer["product"] == "mult" for layer in spec["layers"] if "product" in layer)


@pytest.mark.hls4ml
def test_spec_weights_are_the_generated_header_values(converted):
    out, hls_model, spec = converted
    by_name = {layer.name: layer for layer in hls_model.get_layers()}
    for entry in (e for e in spec["layers"] if e["op"] in ("conv2d", "dense")):
        hls_layer = by_name[entry["name"]]
        for key, field, type_field in (("weight", "weights", "weight_type"), ("bias", "biases", "bias_type")):
            header = _weights_txt(out, hls_layer, key)
            dtype = parse_type(entry[type_field])
            mantissas = np.array(entry[field], dtype=np.int64)
            if entry["name"] == "out":
                # unquantized in Keras: hls4ml prints decimals, ap_fixed<16,6> (AP_TRN) truncates them
                assert entry[type_field] == "ap_fixed<16,6,AP_TRN,AP_WRAP,0>"
                assert np.array_equal(mantissas, np.floor(np.ldexp(header, dtype.frac)).astype(np.int64))
                assert np.all(np.abs(dtype.to_float(mantissas) - header) < dtype.lsb)
            else:
                assert np.array_equal(dtype.to_float(mantissas), header), (entry["name"], key)


@pytest.mark.hls4ml
def test_spec_types_are_the_hls4ml_layer_types(converted):
    _, hls_model, spec = converted
    by_name = {layer.name: layer for layer in hls_model.get_layers()}
    fields = {"result_t": "result_type", "weight_t": "weight_type", "bias_t": "bias_type", "accum_t": "accum_type"}
    for entry in spec["layers"]:
        layer = by_name[entry["name"]]
        for attr, field in fields.items():
            if field in entry:
                assert entry[field] == str(parse_type(str(layer.get_attr(attr).precision))), (entry["name"], field)
    assert spec["layers"][1]["result_type"] == "ap_ufixed<4,0,AP_RND_CONV,AP_SAT,0>"


@pytest.mark.hls4ml
def test_csim_raw_is_exact_and_load_converted_reuses_the_library(converted):
    out, hls_model, spec = converted
    x = hit_images(50)
    raw = bridge.csim_raw(hls_model, x, spec)
    assert raw.dtype == np.int64 and raw.shape == (50, 2)
    frac = parse_type(spec["layers"][-1]["result_type"]).frac
    assert np.array_equal(np.ldexp(raw.astype(np.float64), -frac), bridge.csim_predict(hls_model, x))
    libraries = sorted((out / "firmware").glob("*.so"))
    reloaded, reloaded_spec = bridge.load_converted(out)
    assert reloaded_spec == spec
    assert sorted((out / "firmware").glob("*.so")) == libraries  # nothing was rebuilt
    assert np.array_equal(bridge.csim_raw(reloaded, x, reloaded_spec), raw)


@pytest.mark.hls4ml
def test_auto_po2_io_stream_savedmodel_converts_and_compiles(tmp_path):
    saved = tmp_path / "po2_savedmodel"
    po2_qkeras().save(str(saved), save_format="tf")
    assert not hasattr(np, "product")  # numpy 2: hls4ml's np.product call needs the bridge's shim
    hls_model, spec = bridge.convert(saved, tmp_path / "fw", {"io_type": "io_stream"}, name="po2", compile=True)
    assert not hasattr(np, "product")  # the shim lived only around hls4ml's write and compile
    ops = [layer["op"] for layer in spec["layers"]]
    assert ops[0] == "zero_pad2d" and spec["layers"][0]["pad"] == [1, 1, 1, 1]
    scales = [layer for layer in spec["layers"] if layer["op"] == "scale"]
    assert scales, ops
    for layer in scales:
        assert layer["product"] == "weight_exponential"
        lsb = parse_type(layer["scale_type"]).lsb
        assert all(abs(m) * lsb == 2.0 ** np.round(np.log2(abs(m) * lsb)) for m in layer["scale"])
    assert spec["source"]["io_type"] == "io_stream" and spec["name"] == "po2"
    raw = bridge.csim_raw(hls_model, hit_images(20), spec)
    assert raw.shape == (20, 2)


def test_config_overrides_land_in_project_and_spec(tiny_h5, tmp_path):
    config = tmp_path / "convert.yml"
    config.write_text(
        "reuse_factor: 3\n"
        "strategy: Resource\n"
        "layers:\n"
        "  d1:\n"
        "    precision: {result: 'ap_fixed<12,6,AP_RND,AP_SAT>', accum: 'ap_fixed<18,10>'}\n"
        "    reuse_factor: 4\n"
        "  input:\n"
        "    precision: {result: 'ap_ufixed<1,1>'}\n"
        "outputs:\n"
        "  - {name: pt, index: 0, scale: 20.0, offset: 0.0, unit: GeV}\n"
        "  - {name: eta, index: 1, scale: 32.0, offset: 0.0, unit: strip, frame: window}\n"
    )
    settings = bridge.read_convert_config(config)
    _, spec = bridge.convert(tiny_h5, tmp_path / "fw", settings)
    layers = {layer["name"]: layer for layer in spec["layers"]}
    assert layers["d1"]["result_type"] == "ap_fixed<12,6,AP_RND,AP_SAT,0>"
    assert layers["d1"]["accum_type"] == "ap_fixed<18,10,AP_TRN,AP_WRAP,0>"
    assert layers["d1"]["reuse_factor"] == 4 and layers["c1"]["reuse_factor"] == 3
    assert layers["d1"]["strategy"] == "resource"
    assert spec_inputs(spec)[0]["type"] == "ap_ufixed<1,1,AP_TRN,AP_WRAP,0>"
    assert [o["name"] for o in spec["outputs"]] == ["pt", "eta"]
    parameters = (tmp_path / "fw" / "firmware" / "parameters.h").read_text()
    assert "reuse_factor = 4;" in parameters and "reuse_factor = 3;" in parameters
    # Resource stores weights transposed; the spec keeps Keras' [n_in, n_out] order
    keras_kernel = keras.models.load_model(str(tiny_h5), compile=False, custom_objects=_qkeras_objects()).get_layer("out")
    assert layers["out"]["weights_shape"] == list(keras_kernel.get_weights()[0].shape)


def test_outputs_and_stride_come_from_the_training_record(tiny_h5, tmp_path):
    import json
    import shutil

    from l0emu.firmware.dataset import output_specs, preprocessing_spec

    model_dir = tmp_path / "models" / "student_q4"
    model_dir.mkdir(parents=True)
    shutil.copy(tiny_h5, model_dir / "model.h5")
    targets = {"outputs": output_specs("window"), "preprocessing": preprocessing_spec("window", 4)}
    (model_dir / "record.json").write_text(json.dumps({"targets": targets}))
    _, spec = bridge.convert(model_dir / "model.h5", tmp_path / "fw")
    assert spec["name"] == "student_q4"
    assert spec["outputs"] == targets["outputs"]
    assert spec["preprocessing"]["fragment"] == {"window": 32, "pool": 2, "stride": 4}
    # the record travels with the project (l0emu run checks its samples), the model is named, not located
    assert json.loads((tmp_path / "fw" / "training_record.json").read_text()) == {"targets": targets}
    assert json.loads((tmp_path / "fw" / "l0emu_convert.json").read_text())["source"]["model_file"] == "model.h5"


def _qkeras_objects():
    objects = {}
    qkeras.utils._add_supported_quantized_objects(objects)
    return objects


def test_bad_settings_name_the_key(tiny_h5, tmp_path):
    with pytest.raises(ConfigError, match="reuse_factor"):
        bridge.convert(tiny_h5, tmp_path / "a", {"reuse_factr": 2})
    with pytest.raises(ConfigError, match="layers.dd1.*'d1'"):
        bridge.convert(tiny_h5, tmp_path / "b", {"layers": {"dd1": {"reuse_factor": 2}}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        bridge.read_convert_config(bad)


@pytest.mark.parametrize("kind", ["lstm", "separable_conv1d"])
def test_unsupported_layer_is_named_with_the_supported_list(kind, tmp_path):
    if kind == "lstm":
        inp = keras.Input((9, 16), name="hits")
        out = keras.layers.Dense(2, name="head")(keras.layers.LSTM(4, name="rnn")(inp))
        bad_name, bad_kind = "rnn", "LSTM"
    else:
        inp = keras.Input((16, 1), name="hits")
        out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(keras.layers.SeparableConv1D(2, 3, name="c1d")(inp)))
        bad_name, bad_kind = "c1d", "SeparableConv1D"
    path = tmp_path / "bad.h5"
    keras.Model(inp, out).save(str(path))
    with pytest.raises(ConfigError, match=f"'{bad_name}' is a {bad_kind}.*supported layer types: InputLayer, Conv2D"):
        bridge.convert(path, tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


def test_cli_summary_and_exit_codes(tiny_h5, tmp_path, capsys):
    assert main(["convert", str(tiny_h5), "-o", str(tmp_path / "fw"), "--io-type", "io_stream", "--name", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "network 'tiny'" in printed and "io_stream" in printed
    assert "parameters: 818" in printed  # 20 + 788 + 10
    assert "'input' -> 'input_layer'" in printed and str(tmp_path / "fw" / "spec.json") in printed
    assert json.loads((tmp_path / "fw" / "l0emu_convert.json").read_text())["settings"]["io_type"] == "io_stream"

    assert main(["convert", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    assert main(["convert", str(tiny_h5), "-o", str(busy)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (busy / "notes.txt").read_text() == "keep me"


def test_missing_and_non_model_inputs(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        bridge.load_keras_model(tmp_path / "nope.h5")
    with pytest.raises(InputFileError, match="saved_model.pb"):
        bridge.load_keras_model(tmp_path)
    with pytest.raises(InputFileError, match="l0emu_convert.json"):
        bridge.load_converted(Path(tmp_path))


def test_shipped_spec_is_rebuilt_from_the_shipped_weights_and_config(tmp_path):
    import json
    from pathlib import Path

    import l0emu

    shipped = Path(l0emu.__file__).parent / "data" / "default_student"
    settings = bridge.read_convert_config(shipped / "convert.yml")
    _, spec = bridge.convert(shipped / "keras_model.h5", tmp_path / "fw", settings, name="default_student")
    expected = json.loads((shipped / "spec.json").read_text())
    assert expected["format"] == spec["format"] == "l0emu-spec/2"
    for key in ("name", "inputs", "preprocessing", "layers", "outputs"):
        assert spec[key] == expected[key], key
