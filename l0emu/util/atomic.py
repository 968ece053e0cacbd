"""Outputs as one unit, and interrupts that leave nothing behind.

Every command's outputs form an :class:`OutputSet`: each path is checked when it is
added, before any work starts (not a directory, parent a writable directory, not one of
the inputs, no two the same); each is written under a temporary name beside its target
(``.NAME.partial-PID``); on success all are renamed onto their targets together, and on
any failure or interrupt every temporary is removed and earlier files are left as they
were. :func:`atomic_path` is the one-output case.

:func:`handle_signals` turns SIGTERM and SIGHUP (what batch systems and ``timeout`` send)
into :class:`Interrupted`, a ``KeyboardInterrupt``, so they take the cleanup path SIGINT
takes; while an output set is being renamed into place, signals wait until it is done.
Once a command's final output set (``final=True``) is committed, its work is done: a signal
arriving then no longer turns it into a failure; :func:`late_signal` reports it instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path

from l0emu.errors import ConfigError

__all__ = [
    "HANDLED_SIGNALS",
    "Interrupted",
    "OutputSet",
    "atomic_path",
    "check_output",
    "handle_signals",
    "late_signal",
    "outputs_complete",
    "signals_deferred",
]

HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A signal asked the command to stop; ``signum`` is the signal (exit status 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


_state = {"committing": 0, "pending": [], "interrupted": False, "complete": False, "late": None}


def _on_signal(signum, frame):
    if _state["interrupted"]:
        return  # a second SIGTERM (or Ctrl-C) must not break the cleanup the first one started
    if _state["complete"]:
        _state["late"] = _state["late"] or signum  # the outputs are all written: nothing to stop
        return
    if _state["committing"]:
        _state["pending"].append(signum)  # raised once the renames are done
        return
    _state["interrupted"] = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals(signums=HANDLED_SIGNALS):
    """Raise :class:`Interrupted` on ``signums`` inside the block (main thread only); restore after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in signums}
    _state.update(interrupted=False, complete=False, late=None)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.update(interrupted=False, complete=False)


def outputs_complete() -> None:
    """The command's outputs are all written and only its summary is left: a signal from now
    on is late (:func:`late_signal`), not a failure. For verbs whose last output is written
    inside a library function also used mid-way by other commands."""
    _state["complete"] = True


def late_signal() -> int | None:
    """The first signal that arrived after the final outputs were committed (None if none);
    the command succeeded and says so rather than exiting 128 + signum."""
    return _state["late"]


@contextlib.contextmanager
def _signals_deferred(final: bool):
    _state["committing"] += 1
    try:
        yield
        if final:
            _state["complete"] = True
    finally:
        _state["committing"] -= 1
        if not _state["committing"] and _state["pending"]:
            signum = _state["pending"][0]
            _state["pending"].clear()
            if _state["complete"]:
                _state["late"] = _state["late"] or signum
            else:
                _state["interrupted"] = True
                raise Interrupted(signum)


def signals_deferred():
    """Inside the block, :func:`handle_signals`' signals wait and are raised when it ends: for a
    step an interrupt must not cut in half (starting a dask cluster)."""
    return _signals_deferred(final=False)


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child.resolve().is_relative_to(parent.resolve())


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def check_output(target, *, directory: bool = False, parents: bool = False, inputs=(), option: str = "output") -> Path:
    """Check that ``target`` can be written before any work starts; return it as a Path.

    A file output must not be (or end in ``/`` like) a directory; a directory output must
    not be a file; its parent must be a directory (created later when ``parents``); no
    ``inputs`` may be the target or, for a directory output, lie inside it.
    """
    raw = os.fspath(target)
    if not raw.strip():
        msg = f"{option}: an empty path"
        raise ConfigError(msg)
    path = Path(raw)
    what = f"{option} {raw!r}"
    if not directory and (raw.endswith(os.sep) or raw.endswith("/")):
        msg = f"{what} ends in '/', which names a directory; give a file name"
        raise ConfigError(msg)
    if not directory and path.is_dir():
        msg = f"{what} is a directory; give a file name"
        raise ConfigError(msg)
    if not directory:
        _check_regular(path, what)
    if directory and (path.exists() or path.is_symlink()) and not path.is_dir():
        msg = f"{what} exists and is not a directory"
        raise ConfigError(msg)
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        msg = f"{what}: its parent {str(parent)!r} is not a directory"
        raise ConfigError(msg)
    if not parent.exists():
        ancestor = _existing_ancestor(parent)
        if not parents:
            msg = f"{what}: directory {str(parent)!r} does not exist"
            raise ConfigError(msg)
        if not ancestor.is_dir():
            msg = f"{what}: {str(ancestor)!r} is not a directory"
            raise ConfigError(msg)
    if parent.is_dir():
        _probe(path, option)
    for item in inputs:
        item = Path(item)
        if _same(path, item) or (directory and (item.exists() or item.is_symlink()) and _inside(item, path)):
            how = "is" if _same(path, item) else "holds"
            msg = f"{what} {how} the input {str(item)!r}; refusing to overwrite an input"
            raise ConfigError(msg)
    return path


def _check_regular(path: Path, what: str) -> None:
    """An existing file output must be a regular file (or a link to one): the final rename
    would replace a FIFO, a socket or a device such as /dev/null with a plain file."""
    if path.exists() and not path.is_file():
        msg = f"{what} exists and is not a regular file (a device, FIFO or socket); give a file name"
        raise ConfigError(msg)


def _probe(target: Path, option: str) -> None:
    """Create and remove a file beside ``target``: the only sure test of writability (root, /proc, read-only mounts)."""
    probe = target.parent / f".{target.name}.probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        _remove(probe)
    except OSError as err:
        msg = f"{option} {str(target)!r} cannot be written: {err.strerror or err}"
        raise ConfigError(msg) from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class OutputSet:
    """The outputs of one command, checked up front and committed together.

    ``add`` checks a target and returns the temporary path to write; ``add_into`` takes a
    directory whose files (unknown up front, e.g. plots) are outputs while the directory's
    other files stay. Used as a context manager: on a clean exit :meth:`commit` renames
    every temporary onto its target (all or none); on an exception every temporary goes.
    ``final``: these are the command's last outputs, so a signal arriving during or after
    their commit does not undo a finished command (module docstring).
    """

    def __init__(self, inputs=(), *, final: bool = False):
        self.inputs = [Path(p) for p in inputs]
        self.final = final
        self._entries: list[tuple[Path, Path, str]] = []  # (target, temporary, "file"|"dir"|"into")
        self._made: list[Path] = []  # directories this set created, removed if it fails

    def _tmp(self, target: Path) -> Path:
        parent = target.parent
        return parent / f".{target.name}.partial-{os.getpid()}"

    def _register(self, target, kind: str, parents: bool, option: str) -> Path:
        path = check_output(target, directory=kind != "file", parents=parents, inputs=self.inputs, option=option)
        for known, _, _ in self._entries:
            if _same(known, path) or (kind != "file" and _inside(known, path)) or _inside(path, known):
                msg = f"{option} {str(path)!r} and output {str(known)!r} are the same or nested; every output needs its own path"
                raise ConfigError(msg)
        if self._make_parents(path.parent):
            _probe(path, option)
        tmp = self._tmp(path)
        _remove(tmp)
        self._entries.append((path, tmp, kind))
        return tmp

    def _make_parents(self, parent: Path) -> bool:
        missing = [p for p in (parent, *parent.parents) if not p.exists()]
        for p in reversed(missing):
            try:
                p.mkdir()
            except OSError as err:
                msg = f"cannot create directory {str(p)!r}: {err.strerror or err}"
                raise ConfigError(msg) from None
            self._made.append(p)
        return bool(missing)

    def add(self, target, *, directory: bool = False, parents: bool = False, option: str = "output") -> Path:
        """Check ``target`` now; return the temporary path to write it under (not created)."""
        return self._register(target, "dir" if directory else "file", parents, option)

    def add_into(self, directory, *, option: str = "output directory") -> Path:
        """Files written into the returned (created) directory become ``directory``'s on commit."""
        tmp = self._register(directory, "into", True, option)
        tmp.mkdir()
        return tmp

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.discard()
            return False
        try:
            self.commit()
        except BaseException:  # commit cleans up after itself; this covers a signal just before it
            self.discard()
            raise
        return False

    def discard(self) -> None:
        """Remove every temporary and every directory this set created."""
        for _, tmp, _ in self._entries:
            _remove(tmp)
        for made in reversed(self._made):
            with contextlib.suppress(OSError):
                made.rmdir()
        self._entries, self._made = [], []

    def _moves(self) -> list[tuple[Path, Path, bool]]:
        """(temporary, target, replace-a-directory) for every file or directory to rename."""
        moves = []
        for target, tmp, kind in self._entries:
            if not (tmp.exists() or tmp.is_symlink()):
                msg = f"output {str(target)!r} was not written"
                raise ConfigError(msg)
            if kind == "into":
                moves.extend((item, target / item.name, item.is_dir()) for item in sorted(tmp.iterdir()))
            else:
                moves.append((tmp, target, kind == "dir"))
        for _, target, _ in moves:
            for item in self.inputs:
                if _same(target, item):
                    msg = f"output {str(target)!r} is the input {str(item)!r}; refusing to overwrite an input"
                    raise ConfigError(msg)
            if target.is_dir() and not target.is_symlink() and not any(d for _, t, d in moves if t == target and d):
                msg = f"cannot write {str(target)!r}: it is a directory"
                raise ConfigError(msg)
            if not target.is_dir():
                _check_regular(target, f"output {str(target)!r}")
        return moves

    def commit(self) -> list[Path]:
        """Rename every temporary onto its target: all of them, or none (earlier files restored)."""
        try:
            with _signals_deferred(self.final):
                moves = self._moves()
                self._rename_all(moves)
        except BaseException:
            self.discard()
            raise
        targets = [target for target, _, _ in self._entries]
        for _, tmp, kind in self._entries:
            if kind == "into":
                _remove(tmp)
        self._entries, self._made = [], []
        return targets

    def _rename_all(self, moves) -> None:
        pid = os.getpid()
        done, backups, made = [], [], []
        try:
            for _, target, _ in moves:
                if not target.parent.exists():  # the directory of add_into
                    target.parent.mkdir()
                    made.append(target.parent)
            for tmp, target, _ in moves:
                if target.exists() or target.is_symlink():
                    backup = target.parent / f".{target.name}.previous-{pid}"
                    _remove(backup)
                    _keep_aside(target, backup)
                    backups.append((backup, target))
                os.replace(tmp, target)
                done.append(target)
        except OSError as err:
            for target in done:
                _remove(target)
            for backup, target in backups:
                if target.exists() and os.path.samefile(backup, target):
                    backup.unlink()  # still the old file (a hard link): rename(2) would do nothing
                else:
                    os.replace(backup, target)
            for directory in made:
                _remove(directory)
            msg = f"cannot write {err.filename or 'the outputs'!s}: {err.strerror or err}; no output was kept"
            raise ConfigError(msg) from None
        for backup, _ in backups:
            _remove(backup)


def _keep_aside(target: Path, backup: Path) -> None:
    """Keep ``target``'s old content at ``backup`` for a rollback. A file is hard-linked, so
    that ``target`` never stops existing for a concurrent reader (a cache); a directory moves."""
    if target.is_file() and not target.is_symlink():
        try:
            os.link(target, backup)
            return
        except OSError:
            pass  # a file system without hard links
    os.replace(target, backup)


@contextlib.contextmanager
def atomic_path(target, *, directory: bool = False, parents: bool = False, inputs=(), final: bool = False):
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary name lives in the same directory so the final rename is atomic. On any
    exception, KeyboardInterrupt included, the temporary file or directory is removed, and
    so are the missing parent directories that ``parents`` created.
    """
    with OutputSet(inputs) as outputs:
        yield outputs.add(target, directory=directory, parents=parents)
