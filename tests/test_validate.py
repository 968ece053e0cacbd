"""``l0emu validate`` on a tiny QKeras network converted by hls4ml (one C-simulation build)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.hls4ml
INPUT_SHAPE = (6, 10, 2)


@pytest.fixture(scope="module")
def stream_project(tmp_path_factory):
    """io_stream with a "same" conv (hls4ml inserts a ZeroPadding2D), ReLU, max pooling and an
    unquantized output layer: the ops a spec gets beyond the io_parallel student's; a 6x10x2
    input, so that --random has to follow the network's input shape."""
    from l0emu.firmware.hls4ml_bridge import convert
    from l0emu.firmware.keras_env import keras, qkeras

    base = tmp_path_factory.mktemp("validate")
    quantizers = {
        "kernel_quantizer": qkeras.quantized_bits(4, 0, alpha=1),
        "bias_quantizer": qkeras.quantized_bits(4, 0, alpha=1),
    }
    image = keras.Input(shape=INPUT_SHAPE, name="image")
    x = qkeras.QConv2D(3, (3, 3), padding="same", name="conv1", **quantizers)(image)
    x = qkeras.QActivation(qkeras.quantized_relu(4, 0), name="relu1")(x)
    x = keras.layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(2, name="output")(x)
    model = keras.Model(image, x)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(str(base / "tiny.h5"))
    convert(base / "tiny.h5", base / "fw", settings={"io_type": "io_stream"}, compile=True)
    return base / "fw"


def test_validate_random_is_bit_exact_and_writes_testbench(stream_project, capsys, monkeypatch, tmp_path):
    from l0emu.cli.dispatch import main

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    rc = main(["validate", str(stream_project), "--random", "300", "--write-testbench"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "events compared:                  300" in out
    assert "events with any differing bit:    0" in out
    assert "RESULT: bit-exact" in out
    features = (stream_project / "tb_data" / "tb_input_features.dat").read_text().splitlines()
    predictions = (stream_project / "tb_data" / "tb_output_predictions.dat").read_text().splitlines()
    assert len(features) == len(predictions) == 300
    assert len(features[0].split()) == 6 * 10 * 2 and len(predictions[0].split()) == 2
    assert set(" ".join(features).split()) <= {"0.0", "0.5", "1.0"}


def test_validate_reports_a_mismatch_and_its_first_layer(stream_project, monkeypatch, tmp_path):
    """A spec whose conv1 bias is off by one lsb: validate must fail and name conv1."""
    import json
    import shutil

    from l0emu.validation.compare import compare, random_fragments

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    broken = tmp_path / "fw"
    shutil.copytree(stream_project, broken)
    spec = json.loads((broken / "spec.json").read_text())
    conv = next(layer for layer in spec["layers"] if layer["name"] == "conv1")
    conv["biases"][0] += 1
    (broken / "spec.json").write_text(json.dumps(spec))
    monkeypatch.setattr("l0emu.validation.compare.load_converted", lambda d, compile: _load_with_spec(stream_project, spec))
    result = compare(broken, random_fragments(200, seed=3, shape=INPUT_SHAPE))
    assert not result.ok
    assert result.first_layer == "conv1"


def _load_with_spec(project, spec):
    from l0emu.firmware.hls4ml_bridge import load_converted

    hls_model, _ = load_converted(project, compile=True)
    return hls_model, spec


def test_validate_full_range_covers_the_input_type(stream_project, capsys, monkeypatch, tmp_path):
    """--full-range: uniform mantissas of the input type plus zero, min and max, still bit-exact."""
    from l0emu.fixedpoint.aptypes import parse_type
    from l0emu.cli.dispatch import main
    from l0emu.fixedpoint.spec import read_spec, spec_inputs
    from l0emu.validation.compare import full_range_inputs

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    spec = read_spec(stream_project)
    x = full_range_inputs(2000, spec, seed=4)
    t = parse_type(spec_inputs(spec)[0]["type"])
    mantissas = np.ldexp(x.astype(np.float64), t.frac)
    assert x.shape == (2000, *INPUT_SHAPE) and x.dtype == np.float32
    assert np.all(mantissas[0] == 0) and np.all(mantissas[1] == t.min_mantissa) and np.all(mantissas[2] == t.max_mantissa)
    assert len(np.unique(mantissas)) > 1000  # far beyond the three fragment pixel values
    rc = main(["validate", str(stream_project), "--random", "2000", "--full-range", "--seed", "4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "events compared:                  2000" in out and "RESULT: bit-exact" in out
    assert main(["validate", str(stream_project), "--events", str(tmp_path / "x.root"), "--full-range"]) == 2
    assert "--full-range" in capsys.readouterr().err
