"""The evaluation protocol (firmware.protocol): sample identities, refusals, seed summaries, and
``l0emu train --validation`` / ``--init-from`` / ``--soft-weight`` that rely on it."""

import json
import math

import numpy as np
import pytest

from l0emu.cli.dispatch import main as l0emu_main
from l0emu.errors import ConfigError
from l0emu.firmware.protocol import (
    SampleId,
    check_disjoint,
    check_evaluation_sample,
    describe_samples,
    median_and_spread,
    model_samples,
    sample_id,
    seed_role,
)
from l0emu.simulation.events_io import read_events


def _simulate(path, n, seed, scenario="default", *extra):
    assert l0emu_main(["simulate", "-n", str(n), "--seed", str(seed), "--scenario", scenario, "-o", str(path), *extra]) == 0
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    base = tmp_path_factory.mktemp("protocol")
    return {
        "train": _simulate(base / "train.root", 400, 111),
        "train_hard": _simulate(base / "train_hard.root", 400, 112, "hard"),
        # the same seed and scenario, fewer events and another pT spectrum: other bytes, same crossings
        "train_again": _simulate(base / "train_again.root", 200, 111, "default", "--set", "pt_max=50"),
        "validation": _simulate(base / "validation.root", 300, 211),
        "test": _simulate(base / "test.root", 300, 301),
        "test_hard_seed_111": _simulate(base / "hard_111.root", 200, 111, "hard"),
    }


def test_a_file_knows_its_generator_scenario_and_seed(samples):
    assert sample_id(samples["train_hard"]) == SampleId("hard", 112)
    described = describe_samples([samples["validation"]])
    assert [{k: v for k, v in d.items() if k != "fingerprint"} for d in described] == [{"path": "validation.root", "scenario": "default", "seed": 211}]
    assert described[0]["fingerprint"]["events"] == 300  # a file name, no directory; and its events by content
    assert (seed_role(111), seed_role(211), seed_role(301), seed_role(7)) == ("training", "validation", "test", None)


def test_same_seed_and_scenario_share_the_background_crossings(samples):
    # why the hash check was not enough: another size and pT range, yet the first noise crossings agree
    a, b = read_events(samples["train"]), read_events(samples["train_again"])
    both_background = np.flatnonzero((a.n_muons[:200] == 0) & (b.n_muons == 0))
    assert len(both_background) > 50
    for i in both_background[:20]:
        np.testing.assert_array_equal(a.hit_strip[a.hit_offsets[i] : a.hit_offsets[i + 1]], b.hit_strip[b.hit_offsets[i] : b.hit_offsets[i + 1]])


def _record(samples, training, validation=()):
    return {"data": {"paths": [str(samples[k]) for k in training], "sha256": [], "samples": describe_samples([samples[k] for k in training]),
                     "validation_samples": describe_samples([samples[k] for k in validation])}}  # fmt: skip


def test_evaluation_refuses_a_repeated_training_or_validation_sample(samples):
    record = _record(samples, ["train", "train_hard"], ["validation"])
    with pytest.raises(ConfigError, match=r"train_again.root.*scenario 'default', seed 111.*repeats a training or validation sample of 'net'"):
        check_evaluation_sample(samples["train_again"], {"net": record})
    with pytest.raises(ConfigError, match="validation.root"):
        check_evaluation_sample(samples["validation"], {"net": record})
    # another scenario with a training seed, and a test seed, are new events
    assert check_evaluation_sample(samples["test_hard_seed_111"], {"net": record}) == SampleId("hard", 111)
    assert check_evaluation_sample(samples["test"], {"net": record}) == SampleId("default", 301)


def test_a_record_without_samples_reads_its_files_or_lists_them_unknown(samples, tmp_path):
    old = {"data": {"paths": [str(samples["train"]), str(tmp_path / "gone.root")], "sha256": []}}
    found = model_samples(old)
    assert found == {"known": {SampleId("default", 111)}, "unknown": [str(tmp_path / "gone.root")]}
    with pytest.raises(ConfigError, match="repeats"):
        check_evaluation_sample(samples["train_again"], {"old": old})


def test_a_teachers_samples_count_for_its_student(samples):
    record = {"data": {"samples": [], "validation_samples": []}, "teacher": {"samples": describe_samples([samples["train"]])}}
    with pytest.raises(ConfigError, match="repeats"):
        check_evaluation_sample(samples["train_again"], {"student": record})


def test_validation_files_may_not_repeat_a_training_file(samples):
    check_disjoint([samples["train"], samples["train_hard"]], [samples["validation"]])
    with pytest.raises(ConfigError, match=r"validation file .*train_again.root.*repeats training file .*train.root"):
        check_disjoint([samples["train"]], [samples["train_again"]])


def test_median_and_spread_over_seeds():
    assert median_and_spread([0.97, 0.95, float("nan"), 0.99]) == {"median": 0.97, "low": 0.95, "high": 0.99, "n": 3}
    empty = median_and_spread([None, float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["median"])


# ---------------------------------------------------------------- training under the protocol

pytest.importorskip("l0emu.firmware.keras_env")


@pytest.fixture(scope="module")
def float_run(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "float"
    rc = l0emu_main(["train", str(samples["train"]), str(samples["train_hard"]), "-o", str(out), "--epochs", "1",
                     "--validation", str(samples["validation"])])  # fmt: skip
    return rc, out


def test_train_with_validation_files_records_every_sample(float_run, samples):
    rc, out = float_run
    assert rc == 0
    record = json.loads((out / "record.json").read_text())
    assert [(s["scenario"], s["seed"]) for s in record["data"]["samples"]] == [("default", 111), ("hard", 112)]
    assert [(s["scenario"], s["seed"]) for s in record["data"]["validation_samples"]] == [("default", 211)]
    assert record["data"]["n_train"] == record["data"]["n_events"] == 800  # every training event trains
    assert record["metrics"]["evaluated_on"].startswith("validation files") and record["metrics"]["n_test"] == record["data"]["n_validation"]
    with pytest.raises(ConfigError, match="repeats a training or validation sample"):
        check_evaluation_sample(samples["validation"], {"float": record})


def test_train_refuses_a_validation_file_with_a_training_seed(samples, tmp_path, capsys):
    rc = l0emu_main(["train", str(samples["train"]), "-o", str(tmp_path / "m"), "--epochs", "1", "--validation", str(samples["train_again"])])
    assert rc != 0 and "repeats training file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_qat_starts_from_the_float_weights(float_run, samples, tmp_path):
    from l0emu.firmware.models import build_student, load_model
    from l0emu.firmware.train import _initialise_from

    student = build_student(nbits=4)
    _initialise_from(student, float_run[1])
    donor = load_model(float_run[1])
    for layer in student.layers:
        for mine, theirs in zip(layer.get_weights(), donor.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ConfigError, match="no layer|has weights"):
        from l0emu.firmware.models import build_teacher

        _initialise_from(build_teacher(), float_run[1])


def test_soft_targets_need_a_teacher(samples, tmp_path, capsys):
    rc = l0emu_main(["train", str(samples["train"]), "-o", str(tmp_path / "m"), "--epochs", "1", "--soft-weight", "1"])
    assert rc != 0 and "need --kd" in capsys.readouterr().err
