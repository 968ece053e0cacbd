"""Outputs as one unit (l0emu.util.atomic): checked up front, committed together, never half-kept."""

from __future__ import annotations

import os
import signal

import pytest

from l0emu.util import atomic
from l0emu.util.atomic import Interrupted, OutputSet, atomic_path, check_output, handle_signals
from l0emu.errors import ConfigError


def _names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_outputs_are_committed_together(tmp_path):
    with OutputSet() as outputs:
        a = outputs.add(tmp_path / "a.txt")
        b = outputs.add(tmp_path / "b.txt")
        a.write_text("A")
        b.write_text("B")
        assert _names(tmp_path) == sorted([a.name, b.name])  # only temporaries until the end
    assert _names(tmp_path) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "A"


def test_a_failure_keeps_none_and_leaves_earlier_files(tmp_path):
    (tmp_path / "a.txt").write_text("old A")
    with pytest.raises(RuntimeError, match="boom"), OutputSet() as outputs:
        outputs.add(tmp_path / "a.txt").write_text("new A")
        outputs.add(tmp_path / "b.txt").write_text("new B")
        raise RuntimeError("boom")
    assert _names(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old A"


def test_a_rename_failing_midway_restores_every_earlier_file(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"old {name}")
    calls = []
    real_replace = os.replace

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # a: rename, b: rename fails (old files are hard-linked aside)
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(ConfigError, match="No space left on device; no output was kept"), OutputSet() as outputs:
        outputs.add(tmp_path / "a.txt").write_text("new a")
        outputs.add(tmp_path / "b.txt").write_text("new b")
    assert _names(tmp_path) == ["a.txt", "b.txt"]
    assert [(tmp_path / n).read_text() for n in ("a.txt", "b.txt")] == ["old a.txt", "old b.txt"]


def test_an_output_not_written_fails_the_set(tmp_path):
    with pytest.raises(ConfigError, match="b.txt' was not written"), OutputSet() as outputs:
        outputs.add(tmp_path / "a.txt").write_text("A")
        outputs.add(tmp_path / "b.txt")
    assert _names(tmp_path) == []


def test_add_into_keeps_the_directory_s_other_files(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "mine.txt").write_text("keep")
    (plots / "a.png").write_text("old")
    with OutputSet() as outputs:
        scratch = outputs.add_into(plots)
        (scratch / "a.png").write_text("new")
        (scratch / "b.png").write_text("new")
    assert _names(plots) == ["a.png", "b.png", "mine.txt"]
    assert (plots / "a.png").read_text() == "new" and _names(tmp_path) == ["plots"]


def test_add_into_a_new_directory_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), OutputSet() as outputs:
        (outputs.add_into(tmp_path / "new" / "plots") / "a.png").write_text("x")
        raise RuntimeError
    assert _names(tmp_path) == []


def test_directory_outputs_create_and_remove_their_parents(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "models" / "grid" / "student", directory=True, parents=True) as tmp:
        tmp.mkdir()
        (tmp / "model.h5").write_text("x")
        raise RuntimeError
    assert _names(tmp_path) == []
    with atomic_path(tmp_path / "models" / "student", directory=True, parents=True) as tmp:
        tmp.mkdir()
    assert (tmp_path / "models" / "student").is_dir()


@pytest.mark.parametrize(
    ("make", "target", "kwargs", "message"),
    [
        (None, "out/", {}, "ends in '/'"),
        ("dir", "x", {}, "'x' is a directory"),
        ("file", "x/y.root", {}, "its parent 'x' is not a directory"),
        (None, "missing/y.root", {}, "directory 'missing' does not exist"),
        ("file", "x", {"directory": True}, "exists and is not a directory"),
        ("file", "x/a/b", {"directory": True, "parents": True}, "'x' is not a directory"),
        ("file", "x", {"inputs": ["x"]}, "is the input 'x'"),
        ("file", "link", {"inputs": ["x"]}, "is the input 'x'"),
        ("file", ".", {"directory": True, "inputs": ["x"]}, "holds the input 'x'"),
    ],
)
def test_check_output_refuses(make, target, kwargs, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if make == "dir":
        os.mkdir("x")
    elif make == "file":
        with open("x", "w") as f:
            f.write("input")
        os.symlink("x", "link")
    with pytest.raises(ConfigError, match=message):
        check_output(target, option="-o", **kwargs)
    if make == "file":
        assert (tmp_path / "x").read_text() == "input"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_check_output_tries_to_write():
    with pytest.raises(ConfigError, match="cannot be written"):
        check_output("/proc/l0emu_test.root", option="-o")


def test_two_outputs_with_one_path_are_refused(tmp_path):
    outputs = OutputSet()
    outputs.add(tmp_path / "a.root")
    with pytest.raises(ConfigError, match="the same or nested"):
        outputs.add(tmp_path / "." / "a.root")
    outputs.discard()
    assert _names(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signals_raise_interrupted(signum):
    with pytest.raises(Interrupted) as caught, handle_signals():
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs between bytecodes of the main thread
            pass
    assert caught.value.signum == signum and isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signum) is not atomic._on_signal  # restored


def test_a_signal_during_the_renames_waits_until_they_are_done(tmp_path):
    with pytest.raises(Interrupted), handle_signals(), OutputSet() as outputs:
        outputs.add(tmp_path / "a.txt").write_text("A")
        real_rename_all = outputs._rename_all

        def rename_all_with_signal(moves):
            atomic._on_signal(signal.SIGTERM, None)  # arrives in the middle: must not raise here
            real_rename_all(moves)

        outputs._rename_all = rename_all_with_signal
    assert _names(tmp_path) == ["a.txt"]  # committed whole, then interrupted
