"""Import TensorFlow, tf-keras, QKeras and hls4ml the way this stack needs (docs/design.md).

TensorFlow 2.21 ships Keras 3, but QKeras 0.9.0 needs Keras 2: ``TF_USE_LEGACY_KERAS=1``
must be set before TensorFlow is first imported, so importing this module sets it (the one
change to the process it makes; it refuses to run when the variable says otherwise). Every
module of ``firmware`` and ``validation`` that needs these libraries imports them through
this module. Log verbosity is left alone: the ``l0emu`` CLI quiets TensorFlow for its own
commands, a library user keeps their settings.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

__all__ = ["tf", "keras", "qkeras", "hls4ml_module", "keras3_module", "numpy_product_alias"]

if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    msg = "TF_USE_LEGACY_KERAS must be 1 for QKeras; unset it or set it to 1 before starting"
    raise RuntimeError(msg)

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
import qkeras  # noqa: E402

if getattr(qkeras, "__version__", None) is None:
    # hgq2 ships a Keras 3 shim named ``qkeras`` that overwrites QKeras's files when both
    # are installed from PyPI; .ci/setup installs hgq2 without it (docs/design.md).
    msg = (
        f"the 'qkeras' package at {qkeras.__file__} is not QKeras 0.9.0 (hgq2's Keras 3 shim "
        "replaced it?); reinstall QKeras and install hgq2 without its shim: bash .ci/setup"
    )
    raise ImportError(msg)

if not issubclass(qkeras.QDense, keras.layers.Layer):
    # TensorFlow picks what ``tf.keras`` means when it is first used: Keras 3 (imported first,
    # e.g. by ``import hgq``) fixes it to Keras 3, and QKeras's layers would then be Keras 3
    # layers that tf-keras models take apart into raw TensorFlow ops
    msg = "QKeras's layers are not tf-keras layers: import l0emu.firmware.keras_env (or l0emu's firmware modules) before keras or hgq"
    raise ImportError(msg)


def hls4ml_module():
    """hls4ml, imported on first use (it is slow to import and only the bridge needs it)."""
    import hls4ml

    return hls4ml


def keras3_module():
    """Keras 3 (``import keras``), imported on first use: HGQ2's layers need it. It runs beside
    tf-keras in this process, on the same TensorFlow; ``TF_USE_LEGACY_KERAS`` only decides what
    ``tf.keras`` means."""
    import keras as keras3

    if not keras3.__version__.startswith("3."):
        msg = f"HGQ2 needs Keras 3; 'import keras' gives Keras {keras3.__version__}"
        raise ImportError(msg)
    return keras3


@contextlib.contextmanager
def numpy_product_alias():
    """``np.product`` defined as ``np.prod`` inside the block only, where numpy 2 lacks it.

    hls4ml 1.3.0 still calls ``np.product`` (removed in numpy 2) when it writes the weights
    of a model whose QKeras kernels use ``alpha='auto_po2'``
    (``ExponentWeightVariable.__iter__``). numpy 1.x defined it as exactly ``np.prod``. The
    bridge wraps hls4ml's ``write()`` and ``compile()`` (which writes first) in this block,
    so no other code in the process ever sees the alias; tests cover that path.
    """
    if hasattr(np, "product"):
        yield
        return
    np.product = np.prod
    try:
        yield
    finally:
        del np.product
