"""Training with charge and presence outputs on sector-logic candidate windows (issue 11).

Targets of hand-made events with known answers, one small `l0emu train --outputs
pt,eta,charge,presence` run (4-bit student distilled from a teacher trained alongside, one
epoch each) on a tiny `multi` sample, the refusals, and the converted student: a valid
spec whose emulator equals the hls4ml C-simulation on candidate windows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from l0emu.errors import ConfigError
from l0emu.trigger.geometry import eta_to_strip, strip_to_eta
from l0emu.trigger.sector import MIN_CANDIDATE_HITS

from conftest import make_event, write_events

pytest.importorskip("l0emu.firmware.keras_env")
from l0emu.cli.dispatch import main as cli_main  # noqa: E402
from l0emu.firmware.dataset import (  # noqa: E402
    BACKGROUND_ETA, MULTI_OUTPUTS, PT_SCALE, load_training_data, output_specs, preprocessing_spec, split_examples, split_indices,
)  # fmt: skip
from l0emu.firmware.train import event_weights, train_run  # noqa: E402

MULTI = ",".join(MULTI_OUTPUTS)
BACKGROUND = [0.0, BACKGROUND_ETA, 0.0, 0.0]


def _track(strip):
    """A straight track through all nine layers: nine lit pixels, a candidate of its own."""
    return [(layer, strip) for layer in range(9)]


def _muon(pt, strip, charge):
    return (pt, float(strip_to_eta(strip)), charge)


def _signal(pt, strip, low, charge):
    """The targets of a window at ``low`` holding this muon, from the eta the file stores (float32)."""
    stored = eta_to_strip(np.float32(strip_to_eta(strip)))
    return [pt / PT_SCALE, (stored - low) / 32, charge, 1.0]


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    """Four events; a track at strip 100 is chosen as window start 80 (the middle of the tied
    starts 72..96), one at strip 300 as start 280."""
    events = [
        # two muons in two far-apart windows, each with its own track
        make_event(0, _track(100) + _track(300), [_muon(12.0, 101.5, 1), _muon(8.0, 290.25, -1)]),
        # two muons in one window: the harder gives the targets, whatever the order in the file
        make_event(1, _track(100), [_muon(6.0, 95.0, 1), _muon(15.0, 110.0, -1)]),
        # background only (a soft 2 GeV muon in the window is background too); two noise hits: one
        # candidate, start 8 (the middle of the starts 0, 8, 16 holding strip 17)
        make_event(2, [(4, 17), (8, 300)], [_muon(2.0, 20.0, 1)]),
        # a muon outside every candidate: its window is labelled background, the muon gives no example
        make_event(3, _track(100), [_muon(10.0, 200.0, 1)]),
    ]
    return write_events(tmp_path_factory.mktemp("hand") / "hand.root", events)


def test_hand_made_targets_are_exactly_the_specified_ones(hand_made):
    data = load_training_data(hand_made, outputs=MULTI)
    assert data.outputs == MULTI_OUTPUTS and data.n_events == 4
    assert data.event_index.tolist() == [0, 0, 1, 2, 3] and data.candidate.tolist() == [0, 1, 0, 0, 0]
    assert data.window_start.tolist() == [80, 280, 80, 8, 80] and data.n_candidates.tolist() == [2, 1, 1, 1]
    expected = np.array([
        _signal(12.0, 101.5, 80, 1), _signal(8.0, 290.25, 280, -1),
        _signal(15.0, 110.0, 80, -1),
        BACKGROUND,
        BACKGROUND,
    ], np.float32)  # fmt: skip
    np.testing.assert_array_equal(data.targets, expected)
    assert data.is_signal.tolist() == [True, True, True, False, False]
    assert data.true_charge.tolist() == [1, -1, -1, 0, 0]
    # --background-weight weighs the windows without a muon
    np.testing.assert_array_equal(event_weights(data.is_signal, 3.0), [1.0, 1.0, 1.0, 3.0, 3.0])
    np.testing.assert_array_equal(data.true_pt, np.float32([12.0, 8.0, 15.0, 0.0, 0.0]))
    assert data.event_id.tolist() == [0, 0, 1, 2, 3]
    # each window's image is the sector logic's: the track's nine pixels, pooled
    assert data.images.shape == (5, 9, 16, 1)
    np.testing.assert_array_equal(data.images[[0, 1, 2, 4]].sum(axis=(1, 2, 3)), [4.5] * 4)


def test_single_muon_targets_of_candidate_zero_are_the_event_targets(hand_made):
    # where the leading muon lies in the single window, candidate 0 is labelled as the event always was
    data = load_training_data(hand_made, outputs=MULTI)
    events = load_training_data(hand_made)
    first = data.candidate == 0
    np.testing.assert_array_equal(data.images[first], events.images)
    np.testing.assert_array_equal(data.window_start[first], events.window_start)
    np.testing.assert_array_equal(data.targets[first][:3, :2], events.targets[:3])
    # a muon outside the window: its old label had an eta outside [0, 1); now the window is background
    assert events.targets[3, 1] > 1 and events.targets[3, 0] == np.float32(10.0 / PT_SCALE)
    np.testing.assert_array_equal(data.targets[first][3], BACKGROUND)


def test_spec_entries_of_the_four_outputs():
    names = [o["name"] for o in output_specs("window", MULTI_OUTPUTS)]
    assert names == ["pt", "eta", "charge", "presence"]
    assert output_specs("window", MULTI_OUTPUTS)[2:] == [
        {"name": "charge", "index": 2, "scale": 1.0, "offset": 0.0, "unit": "e"},
        {"name": "presence", "index": 3, "scale": 1.0, "offset": 0.0, "unit": "muon"},
    ]
    assert output_specs("window", MULTI_OUTPUTS)[:2] == output_specs("window")
    assert preprocessing_spec("window", 8, MULTI_OUTPUTS)["fragment"] == {"window": 32, "pool": 2, "stride": 8, "candidates": 3, "min_hits": MIN_CANDIDATE_HITS}
    assert preprocessing_spec("window", 8) == {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}}
    # four rows: a muon lights about four pixels, so a further candidate needs 3 (l0emu.trigger.sector.min_candidate_hits)
    assert preprocessing_spec("window", 8, MULTI_OUTPUTS, (3, 4, 5, 6))["fragment"]["min_hits"] == 3
    with pytest.raises(ConfigError, match="frame 'window'"):
        output_specs("sector", MULTI_OUTPUTS)
    with pytest.raises(ConfigError, match="allowed output sets are 'pt,eta' or 'pt,eta,charge,presence'"):
        output_specs("window", ("pt", "charge"))


@pytest.fixture(scope="module")
def tiny_multi(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "tiny_multi.root"
    assert cli_main(["simulate", "-n", "3000", "--seed", "17", "--scenario", "multi", "-o", str(path)]) == 0
    return path


def test_candidates_of_a_multi_sample_split_by_event(tiny_multi):
    data = load_training_data(tiny_multi, outputs=MULTI)
    events = load_training_data(tiny_multi)
    assert data.n_events == len(events) == 3000 and len(data) > 3000  # the second and third candidates
    first = data.candidate == 0
    np.testing.assert_array_equal(data.images[first], events.images)
    np.testing.assert_array_equal(data.window_start[first], events.window_start)
    train, validation, test = split_examples(data, 0.15, 0.15, 0)
    assert len(train) + len(validation) + len(test) == len(data)
    parts = [set(data.event_index[p].tolist()) for p in (train, validation, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for ours, theirs in zip(split_examples(events, 0.15, 0.15, 0), split_indices(3000, 0.15, 0.15, 0)):
        np.testing.assert_array_equal(ours, theirs)  # event examples: the old split, order included


@pytest.fixture(scope="module")
def multi_run(tiny_multi, tmp_path_factory):
    """`l0emu train --outputs pt,eta,charge,presence`: 4-bit student, KD from a teacher trained first."""
    out = tmp_path_factory.mktemp("models") / "multi_q4_kd"
    argv = ["train", str(tiny_multi), "-o", str(out), "--outputs", MULTI, "--epochs", "1", "--max-events", "3000",
            "--nbits", "4", "--kd", "--seed", "1", "--background-weight", "2"]  # fmt: skip
    return cli_main(argv), out


def test_cli_trains_a_four_output_student_and_teacher(multi_run, capsys):
    from l0emu.firmware.models import load_model

    rc, out = multi_run
    assert rc == 0
    record = json.loads((out / "record.json").read_text())
    assert record["config"]["outputs"] == list(MULTI_OUTPUTS) and record["config"]["kd"] is True
    assert record["targets"]["outputs"] == output_specs("window", MULTI_OUTPUTS)
    assert record["targets"]["preprocessing"] == preprocessing_spec("window", 8, MULTI_OUTPUTS)
    assert record["targets"]["background"] == {"pt": 0.0, "eta": BACKGROUND_ETA, "charge": 0.0, "presence": 0.0}
    assert record["data"]["n_events"] == 3000 and record["data"]["n_examples"] > 3000
    assert record["data"]["n_train"] + record["data"]["n_validation"] + record["data"]["n_test"] == record["data"]["n_examples"]
    for model in (load_model(out), load_model(out / "teacher")):
        assert model.output_shape == (None, 4)
    candidates = record["metrics"]["candidates"]
    confusion = np.array(candidates["count_confusion"]["matrix"])
    assert confusion.shape == (4, 4) and confusion.sum() == candidates["count_confusion"]["n_events"] == 450  # 15 % of the events
    assert candidates["presence_on_muon_windows"]["total"] + candidates["presence_on_empty_windows"]["total"] == record["metrics"]["n_test"]
    assert "candidates" in record["teacher"]["metrics"]


def test_bad_outputs_are_refused_with_the_allowed_sets(tiny_multi, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", str(tiny_multi), "-o", str(tmp_path / "out"), "--outputs", "pt,eta,count"])
    assert exit_info.value.code == 2
    assert "'pt,eta', 'pt,eta,charge,presence'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="allowed output sets are 'pt,eta' or 'pt,eta,charge,presence'"):
        train_run(tiny_multi, tmp_path / "api", outputs="pt,eta,charge", verbose=False)
    with pytest.raises(ConfigError, match="'teacher-9x384'.*9x16 network"):
        train_run(tiny_multi, tmp_path / "big", architecture="teacher-9x384", outputs=MULTI, verbose=False)


def test_a_teacher_with_other_outputs_is_refused(multi_run, tiny_multi, tmp_path):
    from l0emu.firmware.models import build_teacher

    two = tmp_path / "pt_eta_teacher.h5"
    build_teacher((9, 16, 1)).save(two)
    with pytest.raises(ConfigError, match="has outputs 2 .*student is trained with outputs pt,eta,charge,presence"):
        train_run(tiny_multi, tmp_path / "a", kd=True, teacher_path=two, outputs=MULTI, verbose=False)
    # the multi teacher (its record names four outputs) cannot teach a pt,eta student
    with pytest.raises(ConfigError, match="has outputs pt,eta,charge,presence; the student is trained with outputs pt,eta:"):
        train_run(tiny_multi, tmp_path / "b", kd=True, teacher_path=multi_run[1], verbose=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.hls4ml
def test_converted_multi_student_is_valid_and_the_emulator_equals_the_c_simulation(multi_run, tiny_multi, tmp_path, capsys):
    pytest.importorskip("hls4ml")
    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.trigger.events import load_events
    from l0emu.firmware.hls4ml_bridge import csim_raw, load_converted
    from l0emu.trigger.images import pooled_to_float
    from l0emu.trigger.sector import sector_candidates
    from l0emu.fixedpoint.spec import validate_spec

    out = tmp_path / "fw"
    assert cli_main(["convert", str(multi_run[1] / "model.h5"), "-o", str(out), "--compile"]) == 0
    assert "outputs: pt, eta, charge, presence; sector logic: up to 3 candidate windows, min_hits 6" in capsys.readouterr().out
    hls_model, spec = load_converted(out)
    validate_spec(spec)
    assert spec["outputs"] == output_specs("window", MULTI_OUTPUTS)
    assert spec["preprocessing"] == preprocessing_spec("window", 8, MULTI_OUTPUTS)

    chunk = load_events(str(tiny_multi), entry_stop=200)
    _, pooled, n_found = sector_candidates(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8)
    windows = pooled[np.arange(3)[None, :] < n_found[:, None]]  # every present candidate, further ones included
    assert len(windows) > 250 and (n_found > 1).any()
    emulator = Emulator.from_spec(spec)
    ours, theirs = emulator.predict_raw(windows), csim_raw(hls_model, pooled_to_float(windows), spec)
    assert ours.shape == (len(windows), 4)
    for name, j in emulator.columns.items():
        differ = np.flatnonzero(ours[:, j] != theirs[:, j])
        assert not len(differ), f"{name}: {len(differ)} of {len(windows)} windows differ (first #{differ[0]})"
    assert len(np.unique(ours[:, emulator.column("pt")])) > 1  # a constant output would prove little
