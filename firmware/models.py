"""The seed networks (seed 000 layer table): the VGG-like teacher and the small student.

Both regress two outputs, ``(pt, eta)`` in the target units of :mod:`firmware.dataset`, or,
with ``n_outputs=4``, ``(pt, eta, charge, presence)`` of a sector-logic candidate window: the
same network with four linear units in its output layer.
Activations are separate layers (``conv1`` then ``relu1``, ...) so hls4ml and the spec see
every cast. With ``nbits`` the networks are built for quantization-aware training (seed 002):
QKeras ``QConv2D``/``QDense`` with ``quantized_bits(nbits, 0, alpha=1)`` kernels and biases,
``QActivation(quantized_relu(nbits, 0))`` activations, and an unquantized linear output
layer (``Dense(2)``, or ``Dense(4)``) as in the study.

Parameter counts (the table's rows): teacher 9x384 73,215; teacher 9x16 10,655; student
1,032 (the table's student total, 732, does not match its own rows).

Layer names (stable: the distillation hints and the hls4ml bridge refer to them):

- teacher: ``conv1 relu1 conv2 relu2 pool1 conv3 relu3 conv4 relu4 conv5 relu5 pool2
  flatten dense1 dense_relu1 dense2 dense_relu2 output``
- student: ``conv1 relu1 conv2 relu2 conv3 relu3 conv4 relu4 flatten dense1 dense_relu1
  dense2 dense_relu2 output``

The input layer is ``image`` (hls4ml rejects a layer named ``input``).
"""

from __future__ import annotations

from pathlib import Path

from l0emu.errors import ConfigError, InputFileError
from l0emu.geometry import N_LAYERS
from l0emu.images import FRAGMENT_STRIPS

from .keras_env import keras, qkeras
from .options import SUPPORTED_NBITS  # defined without TensorFlow, for the CLI's --help

__all__ = [
    "SUPPORTED_NBITS",
    "STUDENT_INPUT_SHAPE",
    "N_OUTPUTS",
    "check_nbits",
    "build_teacher",
    "build_student",
    "custom_objects",
    "load_model",
]

STUDENT_INPUT_SHAPE = (N_LAYERS, FRAGMENT_STRIPS, 1)
N_OUTPUTS = 2  # (pt, eta)


def check_nbits(nbits):
    """Return ``nbits`` if it is ``None`` (float) or a supported width, else raise ConfigError."""
    if nbits is None or (isinstance(nbits, int) and not isinstance(nbits, bool) and nbits in SUPPORTED_NBITS):
        return nbits
    widths = ", ".join(str(b) for b in SUPPORTED_NBITS)
    msg = f"unsupported bit width {nbits!r}: supported widths are {widths} (or none for float)"
    raise ConfigError(msg)


class _Layers:
    """Makes float or QKeras layers of one bit width, so both architectures share the code."""

    def __init__(self, nbits):
        self.nbits = check_nbits(nbits)

    def _quantizers(self):
        return {
            "kernel_quantizer": qkeras.quantized_bits(self.nbits, 0, alpha=1),
            "bias_quantizer": qkeras.quantized_bits(self.nbits, 0, alpha=1),
        }

    def conv(self, filters, padding, name):
        if self.nbits is None:
            return keras.layers.Conv2D(filters, (3, 3), padding=padding, name=name)
        return qkeras.QConv2D(filters, (3, 3), padding=padding, name=name, **self._quantizers())

    def dense(self, units, name):
        if self.nbits is None:
            return keras.layers.Dense(units, name=name)
        return qkeras.QDense(units, name=name, **self._quantizers())

    def relu(self, name):
        if self.nbits is None:
            return keras.layers.Activation("relu", name=name)
        return qkeras.QActivation(qkeras.quantized_relu(self.nbits, 0), name=name)

    @staticmethod
    def output(n_outputs):
        # The output layer stays unquantized and linear in every variant (seed 002).
        return keras.layers.Dense(n_outputs, activation="linear", name="output")


def _chain(x, layers):
    for layer in layers:
        x = layer(x)
    return x


def _check_n_outputs(n_outputs):
    if n_outputs not in (2, 4) or isinstance(n_outputs, bool):
        msg = f"the networks have 2 outputs (pt, eta) or 4 (pt, eta, charge, presence), not {n_outputs!r}"
        raise ConfigError(msg)
    return n_outputs


def build_teacher(input_shape=STUDENT_INPUT_SHAPE, nbits=None, name=None, n_outputs=N_OUTPUTS):
    """The VGG-like teacher for ``(9, 384, 1)`` or ``(9, 16, 1)`` images (seed 000)."""
    make = _Layers(nbits)
    image = keras.Input(shape=tuple(input_shape), name="image")
    layers = [
        make.conv(10, "same", "conv1"), make.relu("relu1"),
        make.conv(10, "same", "conv2"), make.relu("relu2"),
        keras.layers.MaxPooling2D((1, 2), name="pool1"),
        make.conv(17, "same", "conv3"), make.relu("relu3"),
        make.conv(17, "same", "conv4"), make.relu("relu4"),
        make.conv(17, "same", "conv5"), make.relu("relu5"),
        keras.layers.MaxPooling2D((2, 2), name="pool2"),
        keras.layers.Flatten(name="flatten"),
        make.dense(10, "dense1"), make.relu("dense_relu1"),
        make.dense(10, "dense2"), make.relu("dense_relu2"),
        make.output(_check_n_outputs(n_outputs)),
    ]  # fmt: skip
    default = f"teacher_{input_shape[0]}x{input_shape[1]}" + (f"_q{nbits}" if nbits else "")
    return keras.Model(image, _chain(image, layers), name=name or default)


def build_student(nbits=None, name=None, n_outputs=N_OUTPUTS):
    """The student for fragmented ``(9, 16, 1)`` images (seed 000), float or QKeras."""
    make = _Layers(nbits)
    image = keras.Input(shape=STUDENT_INPUT_SHAPE, name="image")
    layers = [
        make.conv(1, "valid", "conv1"), make.relu("relu1"),
        make.conv(1, "valid", "conv2"), make.relu("relu2"),
        make.conv(6, "valid", "conv3"), make.relu("relu3"),
        make.conv(6, "valid", "conv4"), make.relu("relu4"),
        keras.layers.Flatten(name="flatten"),
        make.dense(10, "dense1"), make.relu("dense_relu1"),
        make.dense(10, "dense2"), make.relu("dense_relu2"),
        make.output(_check_n_outputs(n_outputs)),
    ]  # fmt: skip
    default = "student" + (f"_q{nbits}" if nbits else "")
    return keras.Model(image, _chain(image, layers), name=name or default)


def custom_objects() -> dict:
    """The QKeras classes Keras needs to deserialize a saved (Q)Keras model."""
    objects = {}
    qkeras.utils._add_supported_quantized_objects(objects)
    return objects


def load_model(path):
    """Load a float or QKeras ``.h5`` model (a directory means its ``model.h5``), uncompiled."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.h5"
    if not path.is_file():
        msg = f"no model at {str(path)!r}; 'l0emu train' writes model.h5 into its output directory"
        raise InputFileError(msg)
    try:
        return keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
    except (OSError, ValueError) as err:
        msg = f"cannot read Keras model {str(path)!r}: {err}"
        raise InputFileError(msg) from None
