"""Import TensorFlow, tf-keras, QKeras and hls4ml the way this stack needs (DESIGN.md).

TensorFlow 2.21 ships Keras 3, but QKeras 0.9.0 needs Keras 2: ``TF_USE_LEGACY_KERAS=1``
must be set before TensorFlow is first imported. Every module of ``firmware`` and
``validation`` that needs these libraries imports them through this module.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

__all__ = ["tf", "keras", "qkeras", "hls4ml_module"]

if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    msg = "TF_USE_LEGACY_KERAS must be 1 for QKeras; unset it or set it to 1 before starting"
    raise RuntimeError(msg)

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
import qkeras  # noqa: E402


def hls4ml_module():
    """hls4ml, imported on first use (it is slow to import and only the bridge needs it).

    hls4ml 1.3.0 still calls ``np.product`` (removed in numpy 2) when it writes a model
    whose QKeras kernels use ``alpha='auto_po2'``. We keep numpy 2 and restore that one
    alias, which numpy 1.x defined as exactly ``np.prod``; tests cover that path.
    """
    if not hasattr(np, "product"):
        np.product = np.prod
    import hls4ml

    return hls4ml
