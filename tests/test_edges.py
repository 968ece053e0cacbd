"""Nothing silently wrong at the edges: outputs that are not regular files, non-finite truth,
a file given twice, mixed simulation settings, out-of-range generator settings, a signal that
lands after the outputs are written, and samples that hold a network's training events.

Each case ran to a silently different result before (a FIFO replaced by a plain file, NaN pT
counted as fakes, duplicated events, merged samples, 100 % noise hits, a finished job exiting
143, a rewritten copy of a training tree accepted as a test sample).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import uproot

from conftest import make_event, write_events
from l0emu.cli.dispatch import main as l0emu_main
from l0emu.errors import ConfigError
from l0emu.util.atomic import check_output


def _track(first_strip):
    return [(layer, first_strip + layer // 3) for layer in range(9)]


@pytest.fixture
def events(tmp_path):
    return write_events(tmp_path / "events.root", [make_event(i, _track(40 + 7 * i), [(6.0 + i, 0.1, 1)]) for i in range(6)])


def _run(argv, capsys):
    rc = l0emu_main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def _simulate(path, n, seed, *extra):
    assert l0emu_main(["simulate", "-n", str(n), "--seed", str(seed), "-o", str(path), *extra]) == 0
    return path


# ------------------------------------------------------------------ 1: outputs that are not regular files


def test_an_output_that_is_a_device_is_refused():
    with pytest.raises(ConfigError, match="'/dev/null' exists and is not a regular file"):
        check_output("/dev/null", option="-o")


@pytest.mark.parametrize("which", ["l0.root", "l0_rates.csv", "l0_turn_on.png"])
def test_run_refuses_a_fifo_output_and_writes_nothing_beside_it(events, tmp_path, capsys, which):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / which)
    rc, _, err = _run(["run", str(events), "-o", str(out / "l0.root"), "--no-progress"], capsys)
    assert rc == 2 and f"{which}' exists and is not a regular file" in err, err
    assert [p.name for p in out.iterdir()] == [which] and (out / which).is_fifo()


def test_simulate_refuses_a_fifo_output(tmp_path, capsys):
    os.mkfifo(tmp_path / "ev.root")
    rc, _, err = _run(["simulate", "-n", "10", "-o", str(tmp_path / "ev.root")], capsys)
    assert rc == 2 and "not a regular file" in err
    assert [p.name for p in tmp_path.iterdir()] == ["ev.root"] and (tmp_path / "ev.root").is_fifo()


# ------------------------------------------------------------------ 2: NaN or infinity in the truth


@pytest.mark.parametrize(("branch", "value"), [("muon_pt", math.nan), ("muon_pt", math.inf), ("muon_eta", -math.inf)])
def test_non_finite_truth_is_refused_with_file_branch_and_entry(tmp_path, capsys, branch, value):
    rows = [make_event(i, _track(40 + 7 * i), [(6.0 + i, 0.1, 1)]) for i in range(5)]
    rows[3][branch] = [value]
    path = write_events(tmp_path / "bad.root", rows)
    rc, _, err = _run(["run", str(path), "-o", str(tmp_path / "l0.root"), "--no-progress"], capsys)
    assert rc == 2 and f"bad.root':events/{branch} entry 3: value {value!r} is not a finite number" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.root"]


# ------------------------------------------------------------------ 3: one file twice


@pytest.mark.parametrize("how", ["twice", "symlink", "hardlink", "glob"])
def test_a_file_given_twice_is_refused(events, tmp_path, capsys, how):
    second = {"twice": str(events), "glob": str(tmp_path / "ev*.root")}.get(how, str(tmp_path / "other.root"))
    if how == "symlink":
        os.symlink(events, second)
    elif how == "hardlink":
        os.link(events, second)
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = _run(["run", str(events), second, "-o", str(out / "l0.root"), "--no-progress"], capsys)
    assert rc == 2 and "is given twice" in err and "counted twice" in err, err
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ 4: mixed simulation settings


@pytest.fixture(scope="module")
def productions(tmp_path_factory):
    base = tmp_path_factory.mktemp("productions")
    return {
        "a": _simulate(base / "a.root", 300, 11),
        "b": _simulate(base / "b.root", 200, 12),  # one production: another seed and size
        "multi": _simulate(base / "multi.root", 300, 13, "--scenario", "multi"),
        "pt50": _simulate(base / "pt50.root", 300, 14, "--set", "pt_max=50"),
    }


def test_files_of_one_production_are_one_sample(productions, tmp_path, capsys):
    rc, out, err = _run(["run", str(productions["a"]), str(productions["b"]), "-o", str(tmp_path / "l0.root"), "--no-progress"], capsys)
    assert rc == 0, err
    assert "mixed" not in out and "mixed" not in (tmp_path / "l0_rates.csv").read_text()


@pytest.mark.parametrize(("other", "setting"), [("multi", "settings.scenario is \"multi\" vs \"default\""),
                                                ("pt50", "settings.pt_max is 50.0 vs 20.0")])
def test_files_with_other_settings_are_refused_naming_the_setting(productions, tmp_path, capsys, other, setting):
    rc, _, err = _run(["run", str(productions["a"]), str(productions[other]), "-o", str(tmp_path / "l0.root"), "--no-progress"], capsys)
    assert rc == 2 and setting in err and "--allow-mixed" in err, err
    assert list(tmp_path.iterdir()) == []


def test_allow_mixed_merges_and_every_table_says_so(productions, tmp_path, capsys):
    argv = ["run", str(productions["a"]), str(productions["multi"]), "-o", str(tmp_path / "l0.root"), "--no-progress", "--allow-mixed"]
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    assert 'mixed sample: settings.scenario "default", "multi"' in out
    assert '# mixed sample: settings.scenario "default", "multi"' in (tmp_path / "l0_rates.csv").read_text()
    assert json.loads((tmp_path / "l0_rates.json").read_text())["mixed_settings"].startswith("mixed sample: settings.scenario")


def test_a_file_without_stored_settings_does_not_mix_silently(productions, events, tmp_path, capsys):
    rc, _, err = _run(["run", str(productions["a"]), str(events), "-o", str(tmp_path / "l0.root"), "--no-progress"], capsys)
    assert rc == 2 and "events.root' has no stored simulation settings" in err and "a.root' has" in err, err


# ------------------------------------------------------------------ 6: generator settings out of range


@pytest.mark.parametrize("setting", ["bend_strips_gev=1e300", "ms_strips_gev=1e9", "segment_slope_max=500", "pt_power_index=99"])
def test_simulate_refuses_settings_outside_their_physical_range(tmp_path, capsys, setting):
    rc, _, err = _run(["simulate", "-n", "10", "-o", str(tmp_path / "ev.root"), "--set", setting], capsys)
    assert rc == 2 and f"setting '{setting.split('=')[0]}' must be in [0, " in err, err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 7: a signal after the outputs are written

LATE_SIGNAL = """
import os, signal, sys
from l0emu.util import atomic
from l0emu.results import report

def rename_all_then_signal(self, moves):  # the signal lands while the final outputs are renamed
    original(self, moves)
    if self.final:  # not the emulator's cache, written on the way
        os.kill(os.getpid(), signal.SIGTERM)

def text_then_signal(self):  # or while the summary is printed
    os.kill(os.getpid(), signal.SIGTERM)
    return original_text(self)

original, original_text = atomic.OutputSet._rename_all, report.RunReport.text
if sys.argv[1] == "commit":
    atomic.OutputSet._rename_all = rename_all_then_signal
else:
    report.RunReport.text = text_then_signal
from l0emu.cli.dispatch import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("verb", "when"), [("run", "commit"), ("run", "summary"), ("simulate", "commit")])
def test_a_signal_after_the_outputs_are_written_keeps_success(events, tmp_path, verb, when):
    argv = ["run", str(events), "-o", "l0.root", "--no-progress"] if verb == "run" else ["simulate", "-n", "100", "-o", "ev.root"]
    result = subprocess.run([sys.executable, "-c", LATE_SIGNAL, when, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"l0emu {verb}: SIGTERM arrived after every output was written; they are complete" in result.stderr
    assert "Traceback" not in result.stderr
    written = {"l0.root", "l0_rates.csv", "l0_rates.json", "l0_turn_on.png"} if verb == "run" else {"ev.root"}
    assert written <= {p.name for p in tmp_path.iterdir()}


# ------------------------------------------------------------------ 8: the protocol by content

PROTOCOL_EVENTS = 20_000  # ~13 landmark events: a shared sample is found with certainty


@pytest.fixture(scope="module")
def trained_on(tmp_path_factory):
    """A network directory whose training record holds one training and one validation sample."""
    from l0emu.firmware.protocol import describe_samples

    base = tmp_path_factory.mktemp("protocol_content")
    train = _simulate(base / "train.root", PROTOCOL_EVENTS, 151)
    validation = _simulate(base / "validation.root", PROTOCOL_EVENTS // 2, 251)
    test = _simulate(base / "test.root", PROTOCOL_EVENTS // 2, 351)
    train_multi = _simulate(base / "train_multi.root", 500, 152, "--scenario", "multi")
    # a copy of the training tree rewritten with uproot: other bytes, no stored settings
    with uproot.open(train) as source:
        arrays = source["events"].arrays(["event_id", "n_muons", "muon_pt", "muon_eta", "muon_charge", "hit_layer", "hit_strip"], library="np")
    rows = [make_event(int(arrays["event_id"][i]), list(zip(arrays["hit_layer"][i], arrays["hit_strip"][i])),
                       list(zip(arrays["muon_pt"][i], arrays["muon_eta"][i], arrays["muon_charge"][i])))
            for i in range(5000, len(arrays["event_id"]))]  # fmt: skip
    rewritten = write_events(base / "rewritten.root", rows)
    network = base / "network"
    network.mkdir()
    shutil.copy(Path(l0emu_spec_dir()) / "spec.json", network / "spec.json")
    record = {"data": {"samples": describe_samples([train, train_multi]), "validation_samples": describe_samples([validation])}}
    (network / "training_record.json").write_text(json.dumps(record))
    return {"train": train, "validation": validation, "test": test, "rewritten": rewritten, "network": network, "record": record}


def l0emu_spec_dir():
    from l0emu.cli.run import default_spec_path

    return Path(str(default_spec_path())).parent


def test_a_rewritten_copy_of_a_training_tree_is_refused_by_content(trained_on):
    from l0emu.firmware.protocol import check_evaluation_sample

    record = trained_on["record"]
    assert all("/" not in s["path"] for s in record["data"]["samples"])  # names only, no machine paths
    with pytest.raises(ConfigError, match=r"rewritten.root' holds events of 'net'.s training or validation samples \(\d+ landmark event\(s\) of its training sample 'train.root'"):
        check_evaluation_sample(trained_on["rewritten"], {"net": record})
    assert check_evaluation_sample(trained_on["test"], {"net": record}).seed == 351


def test_run_warns_loudly_on_training_events(trained_on, tmp_path, capsys):
    spec = str(trained_on["network"])
    for name, sample in (("a", "training sample 'train.root'"), ("b", "validation sample 'validation.root'")):
        given = trained_on["rewritten" if name == "a" else "validation"]
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # printed by the CLI as its users see it, not raised by pytest
            rc, _, err = _run(["run", str(given), "-o", str(tmp_path / f"{name}.root"), "--spec", spec, "--no-progress"], capsys)
        assert rc == 0, err
        assert re.search(rf"l0emu: warning: .* holds events the network was trained or chosen on \(\d+ landmark event\(s\) of its {sample}", err), err
    rc, _, err = _run(["run", str(trained_on["test"]), "-o", str(tmp_path / "c.root"), "--spec", spec, "--no-progress"], capsys)
    assert rc == 0 and "warning" not in err, err  # and no warning raised: pytest makes warnings errors


def test_the_multi_study_refuses_a_networks_sample(trained_on, tmp_path, capsys):
    rc, _, err = _run(["multi-study", "-n", "2000", "--seed", "351", "--seed-hard", "152", "--spec", str(trained_on["network"] / "spec.json"),
                       "-o", str(tmp_path / "study")], capsys)  # fmt: skip
    assert rc == 2 and "scenario 'multi', seed 152 is a training or validation sample of the network (training_record.json)" in err, err


def test_fingerprints_find_shared_events_whatever_the_order_and_size(trained_on):
    from l0emu.trigger.events import load_events
    from l0emu.trigger.fingerprint import fingerprint, fingerprint_arrays, shared_landmarks

    whole = fingerprint([trained_on["train"]])
    chunk = load_events(str(trained_on["train"]))
    order = np.random.default_rng(0).permutation(len(chunk))[: len(chunk) // 2]
    hits = [(chunk.hit_layer[chunk.hit_offsets[i] : chunk.hit_offsets[i + 1]][::-1], chunk.hit_strip[chunk.hit_offsets[i] : chunk.hit_offsets[i + 1]][::-1]) for i in order]
    offsets = np.concatenate([[0], np.cumsum([len(layer) for layer, _ in hits])])
    shuffled = fingerprint_arrays(chunk.event_id[order], offsets, np.concatenate([h[0] for h in hits]), np.concatenate([h[1] for h in hits]))
    assert shared_landmarks(whole, shuffled) == shuffled["landmarks"] > 0  # every landmark of the half is one of the whole's
    assert shared_landmarks(whole, fingerprint([trained_on["test"]])) == 0


# ------------------------------------------------------------------ 8: the shipped networks' samples, by content


def test_every_shipped_record_fingerprints_its_training_and_validation_samples():
    from l0emu.trigger.fingerprint import FINGERPRINT_METHOD

    for record_path in sorted(REPOSITORY.glob("l0emu/data/*/*record.json")):
        data = json.loads(record_path.read_text())["data"]
        samples = [*data["samples"], *data["validation_samples"]]
        assert samples and all(s["fingerprint"]["method"] == FINGERPRINT_METHOD and s["fingerprint"]["landmarks"] > 0 for s in samples), record_path


def test_run_warns_on_a_regenerated_piece_of_a_shipped_training_sample(tmp_path, capsys):
    # the shipped multi student's first training file is seed 131, scenario multi: its first events again
    sample = _simulate(tmp_path / "again.root", 20_000, 131, "--scenario", "multi")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        rc, _, err = _run(["run", str(sample), "-o", str(tmp_path / "l0.root"), "--model", "multi", "--no-progress"], capsys)
    assert rc == 0 and "holds events the network was trained or chosen on" in err and "training sample 'train_multi.root'" in err, err


# ------------------------------------------------------------------ 9: no machine paths in what is shipped

REPOSITORY = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?<![\w.])/(tmp|work|home|root|Users|mnt|scratch)/|[A-Z]:\\\\")


def _shipped_text_files():
    for top in ("l0emu/data", "docs"):
        for path in sorted((REPOSITORY / top).rglob("*")):
            if not path.is_file() or (top == "docs" and path.suffix == ".md"):
                continue  # docs prose is the docs' own test's
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # images, HDF5 weights


def test_shipped_data_and_doc_results_hold_no_machine_paths():
    found = [f"{path.relative_to(REPOSITORY)}: {match.group(0)!r}" for path, text in _shipped_text_files()
             for match in MACHINE_PATH.finditer(text)]  # fmt: skip
    assert not found, found


def test_train_refuses_a_file_given_twice(events, tmp_path, capsys):
    os.symlink(events, tmp_path / "again.root")
    rc, _, err = _run(["train", str(events), "--validation", str(tmp_path / "again.root"), "-o", str(tmp_path / "model")], capsys)
    assert rc == 2 and "again.root' is given twice (the same file as" in err, err
    assert not (tmp_path / "model").exists()
