"""Write output files so that a failed or interrupted job leaves nothing half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .errors import ConfigError

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(target, *, directory: bool = False):
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary name lives in the same directory so the final rename is atomic. On any
    exception, KeyboardInterrupt included, the temporary file or directory is removed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        msg = f"cannot write {str(target)!r}: directory {str(parent)!r} does not exist"
        raise ConfigError(msg)
    if not os.access(parent, os.W_OK):
        msg = f"cannot write {str(target)!r}: directory {str(parent)!r} is not writable"
        raise ConfigError(msg)
    tmp = parent / f".{target.name}.partial-{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
        if directory and target.exists():
            _remove(target)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
