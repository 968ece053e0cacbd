"""Training pipeline on a tiny stand-in events file: targets, files, record, KD, bad inputs.

The stand-in follows docs/design.md's event schema (written with uproot here, so these tests do
not depend on the simulation): 70 % single muons with a charge/pT-dependent eta bending
between layers, 30 % noise-only events.
"""

import hashlib
import json

import awkward as ak
import numpy as np
import pytest
import uproot

from l0emu.errors import ConfigError, InputFileError
from l0emu.trigger.geometry import LAYER_RADIUS_M, eta_to_strip

pytest.importorskip("l0emu.firmware.keras_env")
from l0emu.firmware.dataset import BACKGROUND_ETA, PT_SCALE, PT_TARGET_MAX, load_training_data, make_targets, output_specs, pt_targets  # noqa: E402
from l0emu.firmware.models import build_student  # noqa: E402
from l0emu.firmware.distill import Distiller, squared_error  # noqa: E402
from l0emu.firmware.train import constant_outputs, dead_network_check, event_weights, train_run  # noqa: E402
from l0emu.cli.dispatch import main as cli_main  # noqa: E402


def write_toy_events(path, n, seed=0, drop=()):
    rng = np.random.default_rng(seed)
    signal = rng.random(n) < 0.7
    pt = rng.uniform(3, 20, n)
    eta = rng.uniform(-0.9, 0.9, n)
    charge = rng.choice([-1, 1], n)
    lever = (LAYER_RADIUS_M - LAYER_RADIUS_M[0]) / (LAYER_RADIUS_M[-1] - LAYER_RADIUS_M[0])
    layers, strips, noise = [], [], []
    for i in range(n):
        layer, strip = [], []
        if signal[i]:
            position = eta_to_strip(eta[i]) + charge[i] * 40.0 / pt[i] * lever
            hit = rng.random(9) < 0.95
            layer += [k for k in range(9) if hit[k]]
            strip += [int(position[k]) for k in range(9) if hit[k]]
        n_noise = rng.poisson(3.5)
        noise.append([False] * len(layer) + [True] * n_noise)
        layers.append(layer + list(rng.integers(0, 9, n_noise)))
        strips.append(strip + list(rng.integers(0, 384, n_noise)))

    def jagged(values, dtype):
        return ak.values_astype(ak.Array(values), dtype)

    branches = {
        "event_id": np.arange(n, dtype=np.uint64),
        "n_muons": signal.astype(np.uint8),
        "muon_pt": jagged([[p] if s else [] for p, s in zip(pt, signal)], np.float32),
        "muon_eta": jagged([[e] if s else [] for e, s in zip(eta, signal)], np.float32),
        "muon_charge": jagged([[c] if s else [] for c, s in zip(charge, signal)], np.int8),
        "hit_layer": jagged(layers, np.uint8),
        "hit_strip": jagged(strips, np.int16),
        "hit_is_noise": jagged(noise, np.bool_),
    }
    kept = {k: v for k, v in branches.items() if k not in drop}
    with uproot.recreate(path) as file:
        tree = file.mktree("events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in kept.items()})
        tree.extend(kept)
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return write_toy_events(tmp_path_factory.mktemp("events") / "toy.root", 300)


@pytest.fixture(scope="module")
def kd_run(events, tmp_path_factory):
    """One CLI run: 4-bit student distilled from a teacher trained in the same run, 1 epoch."""
    out = tmp_path_factory.mktemp("models") / "q4_kd"
    rc = cli_main(["train", str(events), "-o", str(out), "--nbits", "4", "--kd", "--epochs", "1", "--seed", "3", "--background-weight", "3"])
    return rc, out


def test_targets_are_scaled_pt_and_window_local_eta():
    targets, signal = make_targets([10.0, 2.0, 0.0], [0.0, 0.3, 0.0], [176, 0, 40], "window")
    assert signal.tolist() == [True, False, False]
    # eta 0 is strip coordinate 192; the window starts at 176: (192 - 176) / 32 = 0.5
    np.testing.assert_array_equal(targets[0], np.float32([10.0 / PT_SCALE, 0.5]))
    # a 2 GeV muon is below SIGNAL_PT_MIN: labelled background
    np.testing.assert_array_equal(targets[1:], np.float32([[0.0, BACKGROUND_ETA]] * 2))


def test_pt_targets_stop_at_the_target_maximum():
    # above the highest trigger threshold's plateau the label is the maximum, below it the pT itself
    got = pt_targets([PT_TARGET_MAX - 1.0, PT_TARGET_MAX, PT_TARGET_MAX + 15.0, 1.0])
    np.testing.assert_array_equal(got, [(PT_TARGET_MAX - 1.0) / PT_SCALE, PT_TARGET_MAX / PT_SCALE, PT_TARGET_MAX / PT_SCALE, 0.0])
    assert PT_TARGET_MAX >= 1.5 * 20.0  # the 20 GeV threshold's plateau is labelled above 20 GeV


def test_several_files_are_mixed_in_equal_parts(events):
    one = load_training_data(events, entry_stop=100)
    mixed = load_training_data([events, events], entry_stop=200)
    assert len(mixed) == 200 and mixed.paths == [str(events)] * 2
    for half in (slice(0, 100), slice(100, 200)):
        np.testing.assert_array_equal(mixed.images[half], one.images)
        np.testing.assert_array_equal(mixed.targets[half], one.targets)
        np.testing.assert_array_equal(mixed.window_start[half], one.window_start)


def test_loaded_data_reconstructs_global_eta_from_window_and_local_eta(events):
    data = load_training_data(events, full_images=True)
    assert data.images.shape == (300, 9, 16, 1) and data.images.dtype == np.float32
    assert set(np.unique(data.images)) <= {0.0, 0.5, 1.0}
    assert data.full_images.shape == (300, 9, 384, 1)
    s = data.is_signal
    scale = {o["name"]: o["scale"] for o in output_specs("window")}
    strip = data.targets[s, 1].astype(np.float64) * scale["eta"] + data.window_start[s]
    np.testing.assert_allclose(strip, eta_to_strip(data.true_eta[s]), atol=1e-4)
    np.testing.assert_allclose(data.targets[s, 0] * scale["pt"], data.true_pt[s], rtol=1e-6)
    # the 9x384 teacher learns eta in the sector frame
    np.testing.assert_allclose(data.full_targets[s, 1] * 384, eta_to_strip(data.true_eta[s]), atol=1e-4)
    assert (data.targets[~s] == np.float32([0.0, BACKGROUND_ETA])).all()


def test_missing_branch_names_file_and_branch(tmp_path):
    path = write_toy_events(tmp_path / "no_strips.root", 20, drop=("hit_strip",))
    with pytest.raises(InputFileError, match=r"no_strips\.root.*hit_strip"):
        load_training_data(path)


def test_cli_run_writes_model_teacher_and_record(kd_run, events):
    rc, out = kd_run
    assert rc == 0
    assert (out / "model.h5").is_file() and (out / "teacher" / "model.h5").is_file()
    record = json.loads((out / "record.json").read_text())
    assert record["config"]["nbits"] == 4 and record["config"]["kd"] is True
    assert record["config"]["seed"] == 3 and record["config"]["background_weight"] == 3.0
    assert record["config"]["hints"] == [["relu2", "pool1"], ["relu4", "pool2"], ["dense_relu2", "dense_relu2"]]
    assert record["data"]["sha256"] == [hashlib.sha256(events.read_bytes()).hexdigest()]
    assert record["data"]["stride"] == 8 and record["data"]["n_events"] == 300
    assert record["targets"]["outputs"] == output_specs("window")
    assert record["metrics"]["n_test"] == record["data"]["n_test"] == 45
    assert record["metrics"]["fake_rate"]["total"] > 0
    assert set(record["dead_network"]) == {"dead", "reasons", "output_std"}
    assert "hint_fraction" in record["history"]
    assert record["teacher"]["source"] == "trained in this run"
    assert record["wall_time_s"] > 0


def test_saved_student_is_the_plain_network(kd_run):
    from l0emu.firmware.models import load_model

    model = load_model(kd_run[1])
    assert [layer.name for layer in model.layers] == [layer.name for layer in build_student(4).layers]


def test_given_teacher_is_used_and_hashed(kd_run, events, tmp_path):
    teacher_dir = kd_run[1] / "teacher"
    record = train_run(events, tmp_path / "float_kd", kd=True, teacher_path=teacher_dir, epochs=1, verbose=False)
    assert record["teacher"]["source"] == teacher_dir.name  # a name and a hash: no machine paths
    assert record["teacher"]["sha256"] == hashlib.sha256((teacher_dir / "model.h5").read_bytes()).hexdigest()
    assert not (tmp_path / "float_kd" / "teacher").exists()


def test_a_wider_student_distils_through_the_same_hints(kd_run, events, tmp_path):
    # its features have more channels than the seed student's: the adaptations map them onto the teacher's
    from l0emu.firmware.models import load_model

    record = train_run(events, tmp_path / "wide_kd", architecture="student-wide", nbits=4, kd=True,
                       teacher_path=kd_run[1] / "teacher", epochs=1, verbose=False)
    assert record["config"]["architecture"] == "student-wide" and record["config"]["kd"]
    model = load_model(tmp_path / "wide_kd")
    assert model.count_params() == 2414 and not any(layer.name.startswith("adapt") for layer in model.layers)


TARGETS = np.random.default_rng(1).random((50, 2)).astype(np.float32)  # spread ~0.29 per output


def test_forced_dead_network_is_detected():
    model = build_student()
    dense2 = model.get_layer("dense2")
    kernel, bias = dense2.get_weights()
    dense2.set_weights([np.zeros_like(kernel), np.full_like(bias, -1.0)])
    x = np.random.default_rng(0).integers(0, 3, size=(50, 9, 16, 1)).astype(np.float32) / 2
    check = dead_network_check(model, x, TARGETS)
    assert check["dead"]
    assert any("dense_relu2" in reason for reason in check["reasons"])
    assert any("output 0 is constant" in reason for reason in check["reasons"])


def test_live_network_is_not_flagged():
    x = np.random.default_rng(0).integers(0, 3, size=(50, 9, 16, 1)).astype(np.float32) / 2
    model = build_student()
    for name in ("dense1", "dense2"):  # positive biases keep every ReLU open on any input
        kernel, bias = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([kernel, np.full_like(bias, 1.0)])
    check = dead_network_check(model, x, TARGETS)
    assert not check["dead"] and check["reasons"] == []


def test_a_nearly_constant_output_is_dead():
    """Collapsed trainings predict the mean up to ~1e-5: constant next to targets spread ~0.3."""
    rng = np.random.default_rng(2)
    outputs = np.stack([0.4 + 1e-5 * rng.standard_normal(50), 0.5 + 0.05 * rng.standard_normal(50)], axis=1)
    reasons = constant_outputs(outputs, TARGETS)
    assert len(reasons) == 1 and reasons[0].startswith("output 0 is constant")


def test_teacher_dir_without_model_is_refused(events, tmp_path, capsys):
    (tmp_path / "empty_teacher").mkdir()
    rc = cli_main(["train", str(events), "-o", str(tmp_path / "out"), "--teacher", str(tmp_path / "empty_teacher")])
    assert rc != 0
    assert "model.h5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unsupported_bit_width_is_refused(events, tmp_path, capsys):
    rc = cli_main(["train", str(events), "-o", str(tmp_path / "out"), "--nbits", "7"])
    assert rc != 0
    assert "supported widths are 2, 3, 4, 5, 6, 8" in capsys.readouterr().err


def test_events_without_needed_branch_are_refused(tmp_path, capsys):
    path = write_toy_events(tmp_path / "no_pt.root", 20, drop=("muon_pt",))
    rc = cli_main(["train", str(path), "-o", str(tmp_path / "out")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "no_pt.root" in err and "muon_pt" in err


def test_distilling_a_teacher_is_refused(events, tmp_path):
    with pytest.raises(ConfigError, match="cannot be distilled"):
        train_run(events, tmp_path / "out", architecture="teacher", kd=True, verbose=False)


def test_event_weights_weigh_background_only():
    np.testing.assert_array_equal(event_weights(np.array([True, False, True]), 4.0), [1.0, 4.0, 1.0])


@pytest.mark.parametrize("weight", ["0", "-2", "nan"])
def test_bad_background_weight_is_refused(events, tmp_path, capsys, weight):
    rc = cli_main(["train", str(events), "-o", str(tmp_path / "out"), "--background-weight", weight])
    assert rc != 0
    assert "background weight must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_distiller_loss_is_the_weighted_mean_squared_error(kd_run):
    from l0emu.firmware.models import load_model

    student, teacher = load_model(kd_run[1]), load_model(kd_run[1] / "teacher")
    distiller = Distiller(student, teacher)
    distiller.compile(optimizer="adam")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(40, 9, 16, 1)).astype(np.float32) / 2
    y = rng.random((40, 2)).astype(np.float32)
    w = np.where(rng.random(40) < 0.5, 1.0, 5.0).astype(np.float32)
    per_event = squared_error(y, student.predict(x, verbose=0)).numpy()
    got = distiller.evaluate(x, y, sample_weight=w, batch_size=40, verbose=0)
    np.testing.assert_allclose(got, np.mean(w * per_event), rtol=1e-5)
    assert not np.isclose(got, np.mean(per_event), rtol=1e-3)
