"""A successful command prints only its own summary.

:func:`show_warnings_plainly` prints l0emu's own warnings as ``l0emu: warning: ...``
(Python's default adds the file name and the source line that raised it), and drops the
third-party deprecation and start-up notices a user cannot act on: TensorFlow, tf-keras,
QKeras, hls4ml and dask warnings about their own internals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

__all__ = ["THIRD_PARTY", "show_warnings_plainly"]

# modules whose warnings are about their own internals, not about the user's input
THIRD_PARTY = ("tensorflow", "tf_keras", "keras", "qkeras", "hls4ml", "google", "absl", "distributed", "dask", "h5py")


def _show(message, category, filename, lineno, file=None, line=None):
    stream = sys.stderr if file is None else file
    stream.write(f"l0emu: warning: {message}\n")


@contextlib.contextmanager
def show_warnings_plainly():
    """Inside the block: one-line warnings, third-party noise filtered, TensorFlow's C++ log quiet."""
    # 3: also the C++ "errors" of a CPU-only machine (cuInit failing); real failures raise in Python
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # absl's pre-init warning and dask's "port in use, using a random port" notices
    for name in ("absl", "distributed", "distributed.scheduler", "distributed.nanny", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        for module in THIRD_PARTY:
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
        previous = warnings.showwarning
        warnings.showwarning = _show
        try:
            yield
        finally:
            warnings.showwarning = previous
