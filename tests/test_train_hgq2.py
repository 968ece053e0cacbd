"""``l0emu train --quantizer hgq2``: HGQ2 students (Keras 3) with the training record, distillation
and a float start; their widths, reload, da4ml's tracing and the pareto study's scoring.

Tiny toy samples and one or two epochs: the checks are on the machinery, not on physics.
"""

import json

import numpy as np
import pytest

from l0emu.errors import ConfigError

import l0emu.firmware.keras_env  # noqa: E402,F401  (before hgq: tf.keras must resolve to tf-keras, for QKeras)

pytest.importorskip("hgq")
from l0emu.firmware.hgq2_student import MODEL_FILE, load_hgq2_model, trace_firmware  # noqa: E402
from l0emu.firmware.train import train_run  # noqa: E402
from l0emu.cli.dispatch import main as cli_main  # noqa: E402
from test_training import write_toy_events  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return write_toy_events(tmp_path_factory.mktemp("events") / "toy.root", 400, seed=5)


@pytest.fixture(scope="module")
def hgq2_run(events, tmp_path_factory):
    """A float student (1 epoch), then an HGQ2 student started from it and distilled from a
    teacher trained in the same run (3 epochs, beta steered towards 2,000 EBOPs), through the CLI."""
    models = tmp_path_factory.mktemp("models")
    assert cli_main(["train", str(events), "-o", str(models / "float"), "--epochs", "1", "--seed", "1"]) == 0
    out = models / "hgq2_kd"
    argv = ["train", str(events), "-o", str(out), "--quantizer", "hgq2", "--beta", "1e-4", "--kd", "--epochs", "3",
            "--init-from", str(models / "float"), "--seed", "1", "--background-weight", "3", "--target-ebops", "2000"]  # fmt: skip
    assert cli_main(argv) == 0
    return out


def test_record_names_the_quantizer_beta_and_float_start(hgq2_run):
    record = json.loads((hgq2_run / "record.json").read_text())
    config = record["config"]
    assert (config["quantizer"], config["beta"], config["kd"], config["nbits"]) == ("hgq2", 1e-4, True, None)
    assert config["target_ebops"] == 2000
    assert config["init_from"]["path"] == "float"
    assert record["model"]["file"] == MODEL_FILE and (hgq2_run / MODEL_FILE).is_file()
    assert record["model"]["parameters"] == 1032  # kernels and biases of the seed student, as its QKeras twin
    assert record["teacher"]["source"] == "trained in this run"
    assert {"keras3", "hgq2"} <= set(record["versions"])
    assert set(record["history"]) >= {"loss", "hint_loss", "val_loss"}
    assert record["metrics"]["plateau"] is not None and "fake_rate" in record["metrics"]


def test_beta_is_steered_towards_the_target(hgq2_run):
    """Two epochs at --beta (the warm-up, then the controller's start), then HGQ2's PID
    controller raises it: the student is far above 2,000 EBOPs."""
    history = json.loads((hgq2_run / "record.json").read_text())["history"]
    assert history["beta"][:2] == pytest.approx([1e-4, 1e-4])
    assert history["beta"][2] > 1.1e-4
    assert all(e > 2000 for e in history["ebops"])
    # early stopping watched the validation loss plus the share by which EBOPs exceed the budget
    for loss, ebops, objective in zip(history["val_loss"], history["ebops"], history["val_objective"]):
        assert objective == pytest.approx(loss + ebops / 2000 - 1)


def test_widths_are_heterogeneous_after_training(hgq2_run):
    layers = json.loads((hgq2_run / "record.json").read_text())["hgq2"]["layers"]
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "dense1", "dense2", "output"]
    # the traced input ranges give each element of a layer's input its own integer bits
    assert max(layer["input_bits"]["distinct"] for layer in layers.values()) > 1


def test_model_reloads_and_da4ml_traces_what_keras_computes(hgq2_run):
    model = load_hgq2_model(hgq2_run)
    assert [layer.name for layer in model.layers if hasattr(layer, "kq")][-1] == "output"
    pixels = np.random.default_rng(0).integers(0, 3, (64, 9, 16, 1)) / 2  # fragment pixels are 0, 1/2, 1
    keras_out = model.predict(pixels.astype(np.float32), verbose=0)
    logic_out = trace_firmware(model).predict(pixels.reshape(64, -1))
    np.testing.assert_array_equal(keras_out, logic_out)


def test_hgq2_refuses_nbits_teachers_and_beta_without_it(events, tmp_path):
    with pytest.raises(ConfigError, match="drop --nbits"):
        train_run([events], tmp_path / "a", quantizer="hgq2", nbits=4)
    with pytest.raises(ConfigError, match="trains the students"):
        train_run([events], tmp_path / "b", quantizer="hgq2", architecture="teacher")
    with pytest.raises(ConfigError, match="need --quantizer hgq2"):
        train_run([events], tmp_path / "c", beta=1e-5)
    with pytest.raises(ConfigError, match="from 1 to 16"):
        train_run([events], tmp_path / "e", quantizer="hgq2", init_bits=0)
    with pytest.raises(ConfigError, match="finite number >= 0"):
        train_run([events], tmp_path / "d", quantizer="hgq2", beta=-1.0)


@pytest.mark.hls4ml
def test_the_trained_student_converts_and_csim_equals_emulator_and_keras(hgq2_run, tmp_path):
    """The student as `l0emu train --quantizer hgq2` saves it goes through hls4ml as it is: its
    C-simulation, the emulator and Keras 3 give the same bits on fragment-like images."""
    from l0emu import convert
    from l0emu.fixedpoint.emulator import Emulator

    hls_model, spec = convert(hgq2_run / MODEL_FILE, tmp_path / "fw", compile=True)
    assert "relu" in [layer["op"] for layer in spec["layers"]]
    pixels = (np.random.default_rng(1).integers(0, 3, (300, 9, 16, 1)) / 2).astype(np.float32)
    csim = np.asarray(hls_model.predict(pixels)).reshape(300, -1)
    emulator = Emulator.from_spec(spec)
    emulated = emulator.to_float(emulator.predict_raw(pixels))
    keras_out = load_hgq2_model(hgq2_run).predict(pixels, verbose=0)
    np.testing.assert_array_equal(csim, emulated)
    np.testing.assert_array_equal(csim, keras_out)


@pytest.mark.hls4ml
def test_the_pareto_study_scores_the_student_firmware_exact(hgq2_run, tmp_path):
    """An HGQ2 student hls4ml builds is converted and scored with the emulator, its cost from
    that spec, its Keras output checked against da4ml's traced logic."""
    from l0emu.validation.grid import FIRMWARE_EXACT, KERAS
    from l0emu.validation.pareto import evaluate

    held_out = write_toy_events(tmp_path / "held_out.root", 300, seed=11)
    script = tmp_path / "study.sh"
    script.write_text("l0emu train x -o m/float\nl0emu train x -o m/hgq2_kd --quantizer hgq2\n")
    result = evaluate(hgq2_run.parent, {"default": held_out, "hard": held_out}, script)
    rows = {row["name"]: row for row in result["rows"]}
    assert (rows["hgq2_kd"]["evaluated_by"], rows["float"]["evaluated_by"]) == (FIRMWARE_EXACT, KERAS)
    assert rows["hgq2_kd"]["luts"] > 0 and rows["float"]["luts"] is None
    assert rows["hgq2_kd"]["keras_vs_traced_logic"]["differing_events"] == 0
    assert rows["hgq2_kd"]["model_trace_estimate"]["luts"] > 0  # HGQ2's own trace, for comparison


def test_the_grid_refuses_hgq2_students_by_name(hgq2_run, tmp_path):
    """The grid groups students by one bit width; an HGQ2 student is sent to the pareto study."""
    from l0emu.validation.grid import evaluate_grid

    held_out = write_toy_events(tmp_path / "held_out.root", 50, seed=12)
    with pytest.raises(ConfigError, match=r"hgq2_kd are HGQ2 students .*\(python -m l0emu\.validation\.pareto\)"):
        evaluate_grid(hgq2_run.parent, {"default": held_out})
