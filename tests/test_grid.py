"""The evaluation grid (validation.grid): training plan, resume, evaluation, report, bad input.

The end-to-end part simulates tiny samples, trains a one-width, one-seed grid for one epoch
and evaluates it on held-out default and hard samples; it is marked slow (sizes from
``L0EMU_TEST_SCALE``). The rest runs on hand-made rows and events.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_event, scaled, write_events
from l0emu.cli.dispatch import main as l0emu_main
from l0emu.trigger.events import load_events
from l0emu.trigger.images import fragment_hits, hits_to_images, pooled_to_float
from l0emu.results.metrics import physics_summary
from l0emu.results.stats import upper_limit

pytest.importorskip("l0emu.firmware.keras_env")
from l0emu.firmware.models import load_model  # noqa: E402
from l0emu.validation import grid  # noqa: E402

BITS = 4
# the grid converts with the shipped student's settings (grid.CONVERT_SETTINGS)
SHIPPED_CONVERT = Path(__file__).parents[1] / "l0emu" / "data" / "default_student" / "convert.yml"
SEED = 0
GRID_NAMES = [
    "teacher_9x16", "teacher_9x384",
    "student_float_nokd_s0", "student_float_kd_s0", "student_q4_nokd_s0", "student_q4_kd_s0",
]  # fmt: skip


def test_plan_trains_the_shared_teacher_first_and_every_student_per_seed():
    jobs = grid.plan_grid([2, 8], [0, 5])
    assert jobs[0] == grid.GridJob("teacher_9x16", "teacher", seed=0)
    assert jobs[1] == grid.GridJob("teacher_9x384", "teacher-9x384", seed=0)
    students = {(j.nbits, j.kd, j.seed) for j in jobs[2:]}
    assert students == {(b, kd, s) for b in (None, 2, 8) for kd in (False, True) for s in (0, 5)}
    assert len(jobs) == 2 + 12 and len({j.name for j in jobs}) == len(jobs)
    assert grid.plan_grid([2, 8], [0, 5], teacher_9x384=False) == [j for j in jobs if j.name != "teacher_9x384"]


def _row(bits, kd, seed, dead, plateau, name=None, scenario="default"):
    return {
        "scenario": scenario, "model": "student", "name": name or grid.student_name(bits, kd, seed), "bits": bits, "kd": kd,
        "seed": seed, "dead": dead, "dead_reasons": ["training: test"] if dead else [], "plateau": {"efficiency": plateau},
        "half_efficiency_pt": 9.0, "resolution": {"overall_rms": 0.2}, "fake_rate": {"upper": 1e-3},
    }  # fmt: skip


def test_dead_counts_and_kd_medians_per_bit_width():
    rows = [
        _row(2, False, 0, True, 0.0), _row(2, False, 1, True, 0.0), _row(2, False, 2, False, 0.9),
        _row(2, True, 0, False, 0.95), _row(2, True, 1, False, 0.97), _row(2, True, 2, True, 0.0),
        _row(None, False, 0, False, 0.99), _row(None, True, 0, False, 0.98),
        # the same network dead only in the hard sample still counts once, as dead
        _row(None, True, 0, True, 0.5, scenario="hard"),
    ]  # fmt: skip
    counts = {c["bits"]: c for c in grid.dead_counts(rows)}
    assert list(counts) == [2, None]
    assert counts[2]["nokd"] == {"dead": 2, "seeds": 3} and counts[2]["kd"] == {"dead": 1, "seeds": 3}
    assert counts[None]["kd"] == {"dead": 1, "seeds": 1}
    effect = {e["bits"]: e for e in grid.kd_effect([r for r in rows if r["scenario"] == "default"])}
    assert effect[2]["plateau_nokd"] == 0.0 and effect[2]["plateau_kd"] == 0.95
    assert (effect[2]["dead_nokd"], effect[2]["dead_kd"], effect[2]["n_kd"]) == (2, 1, 3)


class _PixelProbe:
    """Stands in for a 9x384 network: its 'outputs' identify the image it was given."""

    def predict(self, x, batch_size, verbose):
        strips = np.arange(x.shape[2], dtype=np.float64)
        return np.stack([x.sum(axis=(1, 2, 3)), (x[..., 0] * strips).sum(axis=(1, 2))], axis=1)


def test_full_images_are_built_batch_by_batch_from_the_right_hits(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    events = [make_event(i, [(int(rng.integers(9)), int(rng.integers(384))) for _ in range(rng.integers(0, 12))]) for i in range(23)]
    chunk = load_events(str(write_events(tmp_path / "e.root", events)))
    monkeypatch.setattr(grid, "FULL_IMAGE_BATCH", 5)  # 23 events: four full batches and a short one
    got = grid._predict_full_images(_PixelProbe(), chunk)
    expected = _PixelProbe().predict(hits_to_images(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip)[..., None], 0, 0)
    np.testing.assert_array_equal(got, expected)


def test_four_layer_networks_get_images_of_their_layers(tmp_path):
    # a 4x16 student and a 4x384 network must see their own rows, not the nine layers
    rng = np.random.default_rng(2)
    events = [make_event(i, [(int(rng.integers(9)), int(rng.integers(384))) for _ in range(rng.integers(0, 30))]) for i in range(40)]
    path = write_events(tmp_path / "e.root", events)
    chunk = load_events(str(path))
    middle = (3, 4, 5, 6)
    got = grid._predict_full_images(_PixelProbe(), chunk, middle)
    expected = _PixelProbe().predict(hits_to_images(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, middle)[..., None], 0, 0)
    np.testing.assert_array_equal(got, expected)
    record = {"targets": {"preprocessing": {"image": [9, 384], "layers": list(middle), "fragment": {"window": 32, "pool": 2, "stride": 8}},
                          "eta_frame": "window"}, "config": {"nbits": None}}
    nine = {"targets": {"preprocessing": {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}}, "eta_frame": "window"},
            "config": {"nbits": None}}
    models = [grid.GridModel("four", tmp_path, record), grid.GridModel("nine", tmp_path, nine)]
    _, outputs = grid.predict_sample(models, {"four": _PixelProbe(), "nine": _PixelProbe()}, path)
    for model, layers in zip(models, (middle, None)):
        pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, layers)[1]
        np.testing.assert_array_equal(outputs[model.name], _PixelProbe().predict(pooled_to_float(pooled), 0, 0))


def test_wider_students_keep_their_architecture_in_the_table_and_sort_after_the_teachers():
    def model(name, architecture, nbits):
        return grid.GridModel(name, Path("unused"), {"config": {"architecture": architecture, "nbits": nbits, "kd": False, "seed": 0}})

    models = [model("w", "student-wider", 4), model("s", "student", 4), model("t", "teacher", None)]
    assert [m.label for m in models] == ["student-wider", "student", "teacher 9x16"]
    assert [m.name for m in sorted(models, key=lambda m: m.sort_key())] == ["t", "w", "s"]
    # the seed student's bit-width tables only take the seed student
    assert [grid._is_student({"model": m.label}) for m in models] == [False, True, False]


def test_a_multi_network_record_is_refused_by_the_grid(tmp_path, capsys):
    events = write_events(tmp_path / "e.root", [make_event(0)])
    (tmp_path / "models" / "multi").mkdir(parents=True)
    record = {section: {} for section, _ in grid.RECORD_FIELDS}
    for section, field in grid.RECORD_FIELDS:
        record[section][field] = None
    record["config"]["outputs"] = ["pt", "eta", "charge", "presence"]
    (tmp_path / "models" / "multi" / "record.json").write_text(json.dumps(record))
    rc = l0emu_main(["grid", "evaluate", "--models-dir", str(tmp_path / "models"), "--events", str(events), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "per sector-logic candidate window" in err and "multi" in err
    assert not (tmp_path / "r").exists()


def test_missing_models_dir_is_a_clear_error(tmp_path, capsys):
    events = write_events(tmp_path / "e.root", [make_event(0)])
    rc = l0emu_main(["grid", "evaluate", "--models-dir", str(tmp_path / "nowhere"), "--events", str(events), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "nowhere" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    rc = l0emu_main(["grid", "evaluate", "--models-dir", str(tmp_path / "empty"), "--events", str(events), "-o", str(tmp_path / "r")])
    assert rc == 2 and "holds no trained network" in capsys.readouterr().err
    (tmp_path / "empty" / "student").mkdir()
    (tmp_path / "empty" / "student" / "record.json").write_text(json.dumps({"config": {"architecture": "student"}}))
    rc = l0emu_main(["grid", "evaluate", "--models-dir", str(tmp_path / "empty"), "--events", str(events), "-o", str(tmp_path / "r")])
    assert rc == 2 and "lacks config.nbits" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_missing_training_file_fails_before_any_training(tmp_path, capsys):
    rc = l0emu_main(["grid", "train", "--events", str(tmp_path / "absent.root"), "--models-dir", str(tmp_path / "m")])
    assert rc == 2 and "absent.root" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_unsupported_width_and_bad_seed_list_are_refused(tmp_path, capsys):
    events = write_events(tmp_path / "e.root", [make_event(0)])
    rc = l0emu_main(["grid", "train", "--events", str(events), "--models-dir", str(tmp_path / "m"), "--bits", "4,7"])
    assert rc == 2 and "unsupported bit width 7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        l0emu_main(["grid", "train", "--events", str(events), "--models-dir", str(tmp_path / "m"), "--seeds", "0,x"])
    assert exit_info.value.code == 2 and "comma-separated integers" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end (slow)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Samples and a 4-bit, one-seed grid trained for one epoch; the report of its evaluation."""
    base = tmp_path_factory.mktemp("grid")
    held_out = scaled(600, 10000)
    samples = {
        "train": (scaled(1200, 20000), 1, "default"), "default": (held_out, 2, "default"), "hard": (held_out, 3, "hard"),
    }  # fmt: skip
    paths = {}
    for name, (events, seed, scenario) in samples.items():
        paths[name] = base / f"{name}.root"
        assert l0emu_main(["simulate", "-n", str(events), "--seed", str(seed), "--scenario", scenario, "-o", str(paths[name])]) == 0
    models = base / "models"
    common = ["--models-dir", str(models), "--bits", str(BITS), "--seeds", str(SEED), "--max-events", str(scaled(1000, 15000)), "--epochs", "1"]
    assert l0emu_main(["grid", "train", "--events", str(paths["train"]), *common]) == 0
    report = base / "report"
    evaluate = ["evaluate", "--models-dir", str(models), "--events", str(paths["default"]), "--events-hard", str(paths["hard"]), "-o", str(report)]
    assert l0emu_main(["grid", *evaluate]) == 0
    return {"paths": paths, "models": models, "report": report, "common": common}


@pytest.mark.slow
def test_train_writes_every_network_and_kd_students_reuse_the_shared_teacher(trained):
    models = trained["models"]
    assert sorted(p.name for p in models.iterdir()) == sorted(GRID_NAMES)
    for name in GRID_NAMES:
        assert (models / name / "model.h5").is_file()
    for name in ("student_float_kd_s0", "student_q4_kd_s0"):
        record = json.loads((models / name / "record.json").read_text())
        assert record["teacher"]["source"] == "teacher_9x16"  # a name: records carry no machine paths
        assert not (models / name / "teacher").exists()
    assert json.loads((models / "student_q4_nokd_s0" / "record.json").read_text())["config"]["nbits"] == BITS


@pytest.mark.slow
def test_resume_skips_trained_networks_and_trains_only_the_missing(trained, tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    shutil.copytree(trained["models"], models)
    common = [a if a != str(trained["models"]) else str(models) for a in trained["common"]]
    before = {n: (models / n / "record.json").stat().st_mtime_ns for n in GRID_NAMES}
    assert l0emu_main(["grid", "train", "--events", str(trained["paths"]["train"]), *common]) == 0
    assert "trained 0, skipped 6" in capsys.readouterr().out
    assert before == {n: (models / n / "record.json").stat().st_mtime_ns for n in GRID_NAMES}

    shutil.rmtree(models / "student_q4_nokd_s0")
    calls = []

    def record_call(events, output, **kwargs):
        calls.append((output.name, kwargs["architecture"], kwargs["nbits"], kwargs["kd"], kwargs["teacher_path"]))
        return json.loads((trained["models"] / output.name / "record.json").read_text())

    monkeypatch.setattr(grid, "train_run", record_call)
    assert l0emu_main(["grid", "train", "--events", str(trained["paths"]["train"]), *common]) == 0
    assert calls == [("student_q4_nokd_s0", "student", BITS, False, None)]


def _csv_rows(report):
    with open(report / "grid.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_report_has_one_row_per_network_and_scenario_with_kd_and_no_kd(trained):
    report = trained["report"]
    for name in ("grid.md", "grid.csv", "grid.json", "turn_on.png", "plateau_vs_bits.png", "resolution_vs_bits.png", "fake_rate_vs_bits.png"):
        assert (report / name).stat().st_size > 0, name
    rows = _csv_rows(report)
    assert list(rows[0]) == list(grid.CSV_COLUMNS)
    assert sorted((r["scenario"], r["name"]) for r in rows) == sorted((s, n) for s in ("default", "hard") for n in GRID_NAMES)
    students = {(r["scenario"], r["bits"], r["kd"]) for r in rows if r["model"] == "student"}
    assert students == {(s, b, kd) for s in ("default", "hard") for b in ("float", str(BITS)) for kd in ("False", "True")}
    markdown = (report / "grid.md").read_text()
    assert "| model | bits | KD | seed | evaluated by | plateau ± err | 50 % point [GeV] | resolution RMS | fake rate [‰] | fake 95 % UL [‰] | dead? |" in markdown
    # quantized networks through the emulator, float ones with Keras, and the table says so
    assert markdown.count("| student | 4 | yes | 0 | firmware-exact |") == 2 and markdown.count("| teacher 9x384 | float | no | 0 | Keras |") == 2
    assert "true pT >= 15 GeV (1.5 x threshold" in markdown and "true pT in [7, 13) GeV" in markdown
    assert "## Dead networks" in markdown and "### What KD adds (`hard`" in markdown
    document = json.loads((report / "grid.json").read_text())
    for row in document["rows"]:
        fake = row["fake_rate"]
        assert fake["upper"] == upper_limit(fake["fired"], fake["total"], 0.95)
        assert row["evaluated_by"] == (grid.FIRMWARE_EXACT if row["bits"] is not None else grid.KERAS)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["student_q4_kd_s0", "teacher_9x384"])
def test_streamed_evaluation_matches_a_direct_prediction(trained, name, tmp_path):
    """The grid's numbers for a network equal those of predicting the whole sample at once:
    with Keras for a float network, with the trigger job's firmware decisions for a quantized one."""
    chunk = load_events(str(trained["paths"]["default"]))
    if name == "teacher_9x384":
        x = hits_to_images(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip)[..., None]
        pred_pt = load_model(trained["models"] / name).predict(x, verbose=0)[:, 0].astype(np.float64) * 20.0
    else:  # convert as a user would, then the trigger job's pT in fixed point: firmware-exact
        fw = tmp_path / "fw"
        assert l0emu_main(["convert", str(trained["models"] / name / "model.h5"), "-o", str(fw), "--config", str(SHIPPED_CONVERT)]) == 0
        assert l0emu_main(["run", str(trained["paths"]["default"]), "--spec", str(fw / "spec.json"), "-o", str(tmp_path / "l0.root")]) == 0
        import uproot

        pred_pt = uproot.open(tmp_path / "l0.root")["l0"]["pt"].array(library="np").astype(np.float64)
    expected = physics_summary(chunk.true_pt, pred_pt)
    row = next(r for r in json.loads((trained["report"] / "grid.json").read_text())["rows"] if r["name"] == name and r["scenario"] == "default")
    assert row["plateau"]["passed"] == expected["plateau"]["passed"] and row["plateau"]["total"] == expected["plateau"]["total"]
    assert row["fake_rate"]["fired"] == expected["fake_rate"]["fired"] and row["fake_rate"]["total"] == expected["fake_rate"]["total"]
    assert row["turn_on"]["passed"] == expected["turn_on"]["passed"]


def test_a_constant_pt_output_on_the_held_out_sample_is_dead():
    record = {
        "config": {"architecture": "student", "nbits": 4, "kd": False, "seed": 0, "preset": "fast"},
        "targets": {"eta_frame": "window", "pt_scale_gev": 20.0, "preprocessing": {"fragment": {"stride": 8}}},
        "model": {"parameters": 1032}, "dead_network": {"dead": False, "reasons": []},
    }  # fmt: skip
    model = grid.GridModel("student_q4_nokd_s0", Path("unused"), record)
    rng = np.random.default_rng(0)
    true_pt = np.where(rng.random(400) < 0.5, rng.uniform(3, 20, 400), 0.0)
    live = np.stack([true_pt / 20 + 0.01 * rng.standard_normal(400), rng.random(400)], axis=1)
    collapsed = np.stack([0.3 + 1e-5 * rng.standard_normal(400), rng.random(400)], axis=1)
    assert not grid._row(model, "default", true_pt, live, 10.0)["dead"]
    row = grid._row(model, "default", true_pt, collapsed, 10.0)
    assert row["dead"] and row["dead_reasons"][0].startswith("held-out: output 0 is constant")


@pytest.mark.slow
def test_dead_flag_follows_the_training_record(trained, tmp_path):
    models = tmp_path / "models"
    for name in ("student_q4_nokd_s0", "student_q4_kd_s0"):
        shutil.copytree(trained["models"] / name, models / name)
    record_path = models / "student_q4_kd_s0" / "record.json"
    record = json.loads(record_path.read_text())
    record["dead_network"] = {"dead": True, "reasons": ["output 0 is constant (std 0)"], "output_std": [0.0, 0.1]}
    record_path.write_text(json.dumps(record))
    report = tmp_path / "report"
    assert l0emu_main(["grid", "evaluate", "--models-dir", str(models), "--events", str(trained["paths"]["default"]), "-o", str(report)]) == 0
    dead = {r["name"]: r["dead"] for r in _csv_rows(report)}
    assert dead == {"student_q4_nokd_s0": "False", "student_q4_kd_s0": "True"}
    markdown = (report / "grid.md").read_text()
    assert "| student | 4 | yes | 0 |" in markdown and "**DEAD** |" in markdown
    assert "| 4 | 0/1 | 1/1 |" in markdown
    assert "`student_q4_kd_s0`: training: output 0 is constant (std 0)" in markdown


@pytest.mark.slow
def test_training_sample_wrong_scenario_and_empty_sample_are_refused_as_held_out(trained, tmp_path, capsys):
    base = ["evaluate", "--models-dir", str(trained["models"]), "-o", str(tmp_path / "r")]
    assert l0emu_main(["grid", *base, "--events", str(trained["paths"]["train"])]) == 2
    assert "trained 'teacher_9x384'" in capsys.readouterr().err
    # the training seed and scenario again, fewer events: other bytes, the same crossings
    again = tmp_path / "again.root"
    assert l0emu_main(["simulate", "-n", "100", "--seed", "1", "-o", str(again)]) == 0
    assert l0emu_main(["grid", *base, "--events", str(again)]) == 2
    assert "scenario 'default', seed 1) repeats a training or validation sample of 'teacher_9x384'" in capsys.readouterr().err
    assert l0emu_main(["grid", *base, "--events", str(trained["paths"]["hard"])]) == 2
    assert "scenario 'hard', given as the 'default' sample" in capsys.readouterr().err
    assert l0emu_main(["grid", *base, "--events", str(write_events(tmp_path / "none.root", []))]) == 2
    assert "none.root': the events tree is empty" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
