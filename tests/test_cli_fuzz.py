"""A hostile user at the command line: bad arguments, bad files, and signals.

Every case must exit non-zero with a message naming the culprit, print no traceback, and
leave no file behind (inputs unchanged, no output, no ``.partial`` temporary). Inputs are
built once per module; each case writes into its own empty directory.

The SIGTERM tests run the real CLI in a subprocess whose output commit waits (the only
change: ``OutputSet.commit`` sleeps first), send SIGTERM once the temporary outputs exist,
and check that the command exits 143 with one message and leaves nothing behind.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_event, write_events
from l0emu import cli

PACKAGE_DATA = importlib.resources.files("l0emu") / "data" / "default_student"
STUDENT = json.loads((PACKAGE_DATA / "spec.json").read_text())


def _track(first_strip):
    return [(layer, first_strip + layer // 3) for layer in range(9)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every input the cases need, built once: good and bad event files, good and bad specs."""
    root = tmp_path_factory.mktemp("fuzz_inputs")
    ev = write_events(root / "events.root", [make_event(i, _track(40 + 7 * i), [(6.0 + i, 0.1, 1)]) for i in range(6)])
    mismatch = make_event(0, _track(50), [(12.0, 0.1, 1)])
    mismatch["muon_eta"] = []
    write_events(root / "mismatch.root", [make_event(1, _track(60)), mismatch])
    write_events(root / "empty.root", [])
    (root / "notroot.root").write_text("this is not a ROOT file\n")
    (root / "adir").mkdir()
    (root / "blocked").mkdir()
    (root / "blocked" / "l0_rates.csv").mkdir()  # l0.root's rate table cannot be written there
    (root / "project").mkdir()
    (root / "project" / "spec.json").write_text(json.dumps(STUDENT))
    specs = {
        "null_weights": (("layers", 0, "weights"), None),
        "string_strides": (("layers", 0, "strides"), "1,1"),
        "layers_abc": (("layers",), "abc"),
        "weight_100": (("layers", 0, "weights", 3), 100),
        "mantissa_4p5": (("layers", 0, "weights", 3), 4.5),
        "n_in_47": (("layers", 9, "n_in"), 47),
        "kernel_2x3": (("layers", 0, "kernel"), [2, 3]),
        "padding_full": (("layers", 0, "padding"), "full"),
        "window_64": (("preprocessing", "fragment", "window"), 64),
    }
    for name, (path, value) in specs.items():
        spec = copy.deepcopy(STUDENT)
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        (root / f"{name}.json").write_text(json.dumps(spec))
    (root / "not_json.json").write_text("{ not json")
    return root


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}  # fmt: skip


def _run_cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except BaseException as err:  # a traceback would reach the user: that is the failure
        pytest.fail(f"l0emu {' '.join(argv)} raised {type(err).__name__}: {err}")
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_refused(argv, culprit, files, out_dir, capsys):
    before = _snapshot(files)
    rc, out, err = _run_cli(argv, capsys)
    assert rc != 0, f"exit 0 for {argv}: {out}"
    assert culprit in err, f"{culprit!r} not in {err!r}"
    assert "Traceback" not in err + out
    assert _snapshot(files) == before, "an input changed or a file appeared beside the inputs"
    assert list(out_dir.iterdir()) == [], f"left behind: {list(out_dir.iterdir())}"


RUN_CASES = [
    # outputs
    (["{f}/events.root", "-o", "{f}/events.root"], "is the input"),
    (["{f}/events.root", "-o", "{f}/project/spec.json", "--spec", "{f}/project"], "is the input"),
    (["{f}/events.root", "-o", "{f}/adir"], "is a directory"),
    (["{f}/events.root", "-o", "{o}/sub/"], "ends in '/'"),
    (["{f}/events.root", "-o", "{f}/events.root/l0.root"], "is not a directory"),
    (["{f}/events.root", "-o", "{o}/missing/l0.root"], "does not exist"),
    (["{f}/events.root", "-o", "/proc/l0emu_fuzz.root"], "cannot be written"),
    (["{f}/events.root", "-o", "{f}/blocked/l0.root"], "l0_rates.csv' is a directory"),
    # arguments
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "nan"], "--thresholds: nan"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "inf"], "--thresholds: inf"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "-5"], "--thresholds: -5"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "abc"], "--thresholds"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", ","], "--thresholds needs at least one"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "1e-5"], "cannot name a decision branch"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "1e6"], "outside the pT range"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--thresholds", "10,10.0000001"], "both give branch 'l0_pt10'"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--check-firmware", "-5"], "--check-firmware"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--check-firmware", "0"], "--check-firmware"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler 'tcp://127.0.0.1:1'"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--scheduler", "nonsense"], "--scheduler 'nonsense'"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--workers", "-1"], "--workers"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--step-size", "0"], "--step-size"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spectrum-index", "inf"], "--spectrum-index"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--muon-fraction", "nan"], "--muon-fraction"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--muon-fraction", "2"], "muon_fraction"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--bx-rate-mhz", "0"], "bunch_crossing_mhz"),
    # inputs
    (["{f}/adir", "-o", "{o}/l0.root"], "is a directory, not an event file"),
    (["{f}/nothing.root", "-o", "{o}/l0.root"], "no such file"),
    (["{f}/nothing*.root", "-o", "{o}/l0.root"], "no file matches"),
    (["{f}/notroot.root", "-o", "{o}/l0.root"], "not a readable ROOT file"),
    (["{f}/mismatch.root", "-o", "{o}/l0.root"], "muon_pt and muon_eta have different lengths"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/adir"], "no network spec"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/not_json.json"], "is not valid JSON"),
    # specs
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/null_weights.json"], "layers[0].weights: expected a list"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/string_strides.json"], "layers[0].strides"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/layers_abc.json"], "layers: expected a non-empty list"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/weight_100.json"], "layers[0].weights[3]: mantissa 100"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/mantissa_4p5.json"], "layers[0].weights[3]: a mantissa must be an integer"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/n_in_47.json"], "layers[9].n_in: is 47"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/kernel_2x3.json"], "layers[0].weights_shape"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/padding_full.json"], "layers[0].padding"),
    (["{f}/events.root", "-o", "{o}/l0.root", "--spec", "{f}/window_64.json"], "preprocessing.fragment.window"),
]

SIMULATE_CASES = [
    (["-n", "-5", "-o", "{o}/ev.root"], "-n"),
    (["-n", "10", "-o", "{f}/adir"], "is a directory"),
    (["-n", "10", "-o", "{o}/ev/"], "ends in '/'"),
    (["-n", "10", "-o", "{o}/missing/ev.root"], "does not exist"),
    (["-n", "10", "-o", "/proc/l0emu_fuzz.root"], "cannot be written"),
    (["-n", "10", "-o", "{o}/ev.root", "--plots", "{f}/events.root"], "--plots"),
    (["-n", "10", "-o", "{o}/ev.root", "--plots", "{o}/ev.root"], "the same or nested"),
    (["-n", "10", "-o", "{o}/ev.root", "--set", "noise_rate=inf"], "noise_rate"),
    (["-n", "10", "-o", "{o}/ev.root", "--set", "bend_strips_gev=inf"], "bend_strips_gev' must be in [0, 1200]"),
    (["-n", "10", "-o", "{o}/ev.root", "--set", "bend_strips_gev=1e300"], "bend_strips_gev' must be in [0, 1200]"),
    (["-n", "10", "-o", "{o}/ev.root", "--set", "nosie_rate=1e-3"], "noise_rate"),
    (["-n", "10", "-o", "{o}/ev.root", "--scenario", "hardd"], "hard"),
    (["-n", "10", "-o", "{o}/ev.root", "--chunk-size", "0"], "--chunk-size"),
]

FIRMWARE_CASES = [
    # output checks run before TensorFlow is imported
    (["convert", "{pkg}/keras_model.h5", "-o", "{f}/events.root"], "exists and is not a directory"),
    (["convert", "{f}/project/model.h5", "-o", "{f}/project"], "holds the input"),
    (["convert", "{pkg}/keras_model.h5", "-o", "/proc/l0emu_fuzz"], "cannot be written"),
    (["train", "{f}/events.root", "-o", "{f}/events.root"], "exists and is not a directory"),
    (["train", "{f}/events.root", "-o", "{f}"], "holds the input"),
    (["rtl", "{f}/adir"], "no network spec"),
    (["rtl", "{f}/nothing"], "no network spec"),
    (["rtl", "{f}/project", "--simulate", "-1"], "--simulate"),
    (["rtl", "{f}/project", "--events", "{f}/events.root"], "--events needs --simulate"),
    (["validate", "{f}/project", "--random", "0"], "--random"),
]


def _argv(template, files, out_dir):
    return [a.format(f=files, o=out_dir, pkg=PACKAGE_DATA) for a in template]


@pytest.mark.parametrize(("template", "culprit"), RUN_CASES, ids=[" ".join(c[0][1:]) for c in RUN_CASES])
def test_run_refuses(template, culprit, files, tmp_path, capsys):
    (files / "project" / "model.h5").touch()
    _assert_refused(["run", *_argv(template, files, tmp_path), "--no-progress"], culprit, files, tmp_path, capsys)


@pytest.mark.parametrize(("template", "culprit"), SIMULATE_CASES, ids=[" ".join(c[0]) for c in SIMULATE_CASES])
def test_simulate_refuses(template, culprit, files, tmp_path, capsys):
    _assert_refused(["simulate", *_argv(template, files, tmp_path)], culprit, files, tmp_path, capsys)


@pytest.mark.parametrize(("template", "culprit"), FIRMWARE_CASES, ids=[" ".join(c[0]) for c in FIRMWARE_CASES])
def test_firmware_verbs_refuse(template, culprit, files, tmp_path, capsys):
    (files / "project" / "model.h5").touch()
    _assert_refused(_argv(template, files, tmp_path), culprit, files, tmp_path, capsys)


def test_simulate_plots_failing_removes_the_events_file(tmp_path, capsys, monkeypatch):
    from l0emu.errors import L0emuError
    from l0emu.simulation import plots

    def broken(settings, directory, n_events=20_000):
        (Path(directory) / "half.png").write_bytes(b"\x89PNG")
        msg = f"plot failed in {directory}"
        raise L0emuError(msg)

    monkeypatch.setattr(plots, "make_plots", broken)
    rc, _, err = _run_cli(["simulate", "-n", "20", "-o", str(tmp_path / "ev.root"), "--plots", str(tmp_path / "plots")], capsys)
    assert rc == 2 and "plot failed" in err
    assert list(tmp_path.iterdir()) == []


def test_run_outputs_are_one_unit(files, tmp_path, capsys, monkeypatch):
    """A failure writing the last output (the plot) leaves no l0.root, csv or json either."""
    from l0emu.results import report as job

    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(job, "plot_turn_on", broken)
    argv = ["run", str(files / "events.root"), "-o", str(tmp_path / "l0.root"), "--no-progress"]
    _assert_refused(argv, "No space left on device", files, tmp_path, capsys)


def test_rerun_replaces_earlier_outputs_together(files, tmp_path, capsys):
    argv = ["run", str(files / "events.root"), "-o", str(tmp_path / "l0.root"), "--no-progress"]
    assert _run_cli(argv, capsys)[0] == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["l0.root", "l0_rates.csv", "l0_rates.json", "l0_turn_on.png"]
    assert _run_cli([*argv, "--thresholds", "7.5"], capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert "7.5" in (tmp_path / "l0_rates.csv").read_text()


def _l0emu(args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "l0emu.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kwargs)  # fmt: skip


def test_empty_tree_warning_is_one_plain_line(files, tmp_path):
    result = _l0emu(["run", str(files / "empty.root"), "-o", "l0.root", "--no-progress"], tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [f"l0emu: warning: {str(files / 'empty.root')!r}: the events tree is empty"], result.stderr
    assert "warnings.warn" not in result.stderr


# ------------------------------------------------------------------ SIGTERM

HARNESS = """
import os, sys, time
from l0emu.trigger import job
from l0emu.util import atomic

def waiting_histograms(*args, **kwargs):  # the event loop is done, a dask cluster still runs
    if os.environ.get("L0EMU_FUZZ_WAIT") == "histograms":
        print("L0EMU-FUZZ: waiting with the cluster up", file=sys.stderr, flush=True)
        time.sleep(300)
    return original_histograms(*args, **kwargs)

original_histograms = job.write_histograms
job.write_histograms = waiting_histograms
original = atomic.OutputSet.commit

def waiting_commit(self):
    if not any(target.resolve().is_relative_to(os.getcwd()) for target, _, _ in self._entries):
        return original(self)  # e.g. a cache outside the test's directory
    print("L0EMU-FUZZ: temporary outputs written", file=sys.stderr, flush=True)
    time.sleep(300)
    return original(self)

atomic.OutputSet.commit = waiting_commit
from l0emu.cli.dispatch import main
sys.exit(main(sys.argv[1:]))
"""


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _terminate_when_written(args, cwd, watched, timeout=600, signum=signal.SIGTERM, env=None, children=None):
    """Run the CLI, wait for its outputs under temporary names, send ``signum``; (rc, stderr).

    ``children``, a list, receives the command's child processes alive when the signal is sent."""
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, *args], cwd=cwd, stderr=subprocess.PIPE, env=env)
    buffer, deadline = b"", time.monotonic() + timeout
    try:
        while b"L0EMU-FUZZ" not in buffer:
            if time.monotonic() > deadline or proc.poll() is not None:
                rest = proc.stderr.read() if proc.poll() is not None else b""
                pytest.fail(f"never reached the commit: {(buffer + rest).decode(errors='replace')[-3000:]}")
            if select.select([proc.stderr], [], [], 1.0)[0]:
                buffer += os.read(proc.stderr.fileno(), 65536)
        partial = [p.name for d in watched for p in Path(d).rglob("*") if ".partial-" in p.name]
        assert partial, "no temporary output exists when the signal is sent"
        if children is not None:
            children.extend(_children(proc.pid))
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, (buffer + rest).decode(errors="replace")


def _assert_terminated_cleanly(rc, stderr, directory, before, signum=signal.SIGTERM):
    assert rc == 128 + signum, stderr[-3000:]
    assert stderr.count("interrupted") == 1 and signal.Signals(signum).name in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert _snapshot(directory) == before, f"left behind: {set(_snapshot(directory)) - set(before)}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_run_leaves_nothing(files, tmp_path, signum):
    shutil.copy(files / "events.root", tmp_path / "events.root")
    before = _snapshot(tmp_path)
    rc, stderr = _terminate_when_written(["run", "events.root", "-o", "l0.root", "--no-progress"], tmp_path, [tmp_path],
                                         signum=signum)  # fmt: skip
    _assert_terminated_cleanly(rc, stderr, tmp_path, before, signum)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the dask workers in /proc")
def test_sigterm_with_dask_workers_shuts_them_down(files, tmp_path):
    pytest.importorskip("distributed")
    shutil.copy(files / "events.root", tmp_path / "events.root")
    before, workers = _snapshot(tmp_path), []
    args = ["run", "events.root", "-o", "l0.root", "--no-progress", "--workers", "1"]
    rc, stderr = _terminate_when_written(args, tmp_path, [tmp_path], env={"L0EMU_FUZZ_WAIT": "histograms"}, children=workers)
    _assert_terminated_cleanly(rc, stderr, tmp_path, before)
    assert _messages(stderr) == ["l0emu: interrupted (SIGTERM); no partial output was kept"], stderr[-3000:]
    assert workers, "no dask worker process was running"
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "dask worker processes outlived the command"


def _messages(stderr: str) -> list:
    """stderr's lines without the harness's own markers (which may share a line with what
    follows them): what the user would have seen."""
    for marker in ("L0EMU-FUZZ: waiting with the cluster up", "L0EMU-FUZZ: temporary outputs written"):
        stderr = stderr.replace(marker, "")
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.slow
def test_error_on_a_dask_worker_prints_one_message(tmp_path):
    """A bad value found by a worker ends as l0emu's one line: none of dask's log lines
    ("Compute Failed" with the worker's traceback, cancelled tasks) around it."""
    pytest.importorskip("distributed")
    events = [make_event(i, _track(40 + 7 * i), [(6.0 + i, 0.1, 1)]) for i in range(40)]
    events[33]["hit_strip"][0] = 999  # in the fourth unit of ten events: read by a worker, not the client
    write_events(tmp_path / "events.root", events)
    args = ["run", "events.root", "-o", "l0.root", "--no-progress", "--workers", "1", "--step-size", "10"]
    proc = subprocess.run([sys.executable, "-m", "l0emu.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert _messages(proc.stderr) == [
        "l0emu run: error: 'events.root':events/hit_strip entry 33: value 999 is outside the sector"
    ], proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.root"]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a container's init to reap it has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_during_simulate_with_plots_leaves_nothing(tmp_path):
    rc, stderr = _terminate_when_written(["simulate", "-n", "500", "-o", "ev.root", "--plots", "plots"], tmp_path, [tmp_path])
    _assert_terminated_cleanly(rc, stderr, tmp_path, {})


def test_sigterm_during_rtl_leaves_nothing(tmp_path):
    pytest.importorskip("da4ml")
    shutil.copy(PACKAGE_DATA / "spec.json", tmp_path / "spec.json")
    before = _snapshot(tmp_path)
    rc, stderr = _terminate_when_written(["rtl", "."], tmp_path, [tmp_path])
    _assert_terminated_cleanly(rc, stderr, tmp_path, before)


@pytest.mark.slow
@pytest.mark.hls4ml
def test_sigterm_during_convert_leaves_nothing(tmp_path):
    pytest.importorskip("hls4ml")
    model = str(PACKAGE_DATA / "keras_model.h5")
    config = str(PACKAGE_DATA / "convert.yml")
    rc, stderr = _terminate_when_written(["convert", model, "-o", "fw", "--config", config], tmp_path, [tmp_path])
    _assert_terminated_cleanly(rc, stderr, tmp_path, {})


@pytest.mark.slow
def test_sigterm_during_train_leaves_nothing(tmp_path):
    pytest.importorskip("qkeras")
    from l0emu.simulation.events_io import write_events as simulate_events
    from l0emu.simulation.settings import settings_for_scenario

    simulate_events(tmp_path / "train.root", settings_for_scenario("default", seed=3), 400)
    before = _snapshot(tmp_path)
    args = ["train", "train.root", "-o", "models/student", "--preset", "fast", "--epochs", "1", "--max-events", "400"]
    rc, stderr = _terminate_when_written(args, tmp_path, [tmp_path])
    _assert_terminated_cleanly(rc, stderr, tmp_path, before)
