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
1,032 (the table's student total, 732, does not match its own rows). The wider students
(:data:`STUDENT_WIDTHS`, same layers and names, more filters and units): 2,414 and 3,932.

Fewer rows (a layer set, e.g. the middle station's 4x16 windows, issue 11): the teacher's
"same" convolutions take any height. The student's four "valid" 3x3 convolutions take 9 rows
down to 1 (9-7-5-3-1); for ``rows`` < 9 each convolution's kernel height is clipped to the
rows it gets, ``min(3, height)``, so the last one still ends at one row and the dense part
(48 inputs: 6 filters x 1 row x 8 columns) is the same. For 4 rows the kernels are 3x3, 2x3,
1x3, 1x3 (4-2-1-1-1 rows); the widths (16-14-12-10-8) do not change. 9 rows: unchanged.

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
from l0emu.trigger.geometry import N_LAYERS
from l0emu.trigger.images import FRAGMENT_STRIPS

from .keras_env import keras, qkeras
from .options import SUPPORTED_NBITS  # defined without TensorFlow, for the CLI's --help

__all__ = [
    "SUPPORTED_NBITS",
    "STUDENT_INPUT_SHAPE",
    "STUDENT_WIDTHS",
    "N_OUTPUTS",
    "check_nbits",
    "build_teacher",
    "build_student",
    "student_kernel_heights",
    "custom_objects",
    "load_model",
]

STUDENT_INPUT_SHAPE = (N_LAYERS, FRAGMENT_STRIPS, 1)
# student variants -> (filters of conv1..conv4, units of dense1, dense2): the seed's student and
# two wider ones between it and the 9x16 teacher in capacity (issue 12: the float 1k student's
# ceiling is below the targets, the teacher's above them; docs/kd_study/README.md)
STUDENT_WIDTHS = {
    "student": ((1, 1, 6, 6), (10, 10)),
    "student-wide": ((4, 4, 8, 8), (16, 16)),
    "student-wider": ((6, 6, 10, 10), (20, 20)),
}
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

    def conv(self, filters, padding, name, kernel=(3, 3)):
        if self.nbits is None:
            return keras.layers.Conv2D(filters, kernel, padding=padding, name=name)
        return qkeras.QConv2D(filters, kernel, padding=padding, name=name, **self._quantizers())

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


def student_kernel_heights(rows: int = N_LAYERS) -> tuple:
    """Kernel heights of the student's four valid convolutions for ``rows``-row windows:
    3 each for 9 rows, clipped to the height each one gets (module docstring)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= N_LAYERS:
        msg = f"the student takes windows of 1 to {N_LAYERS} rows (RPC layers), not {rows!r}"
        raise ConfigError(msg)
    heights = []
    for _ in range(4):
        heights.append(min(3, rows))
        rows -= heights[-1] - 1
    return tuple(heights)


def build_student(nbits=None, name=None, n_outputs=N_OUTPUTS, rows: int = N_LAYERS, width: str = "student"):
    """The student for fragmented ``(rows, 16, 1)`` images (seed 000: 9 rows), float or QKeras;
    ``width`` names its filters and dense units (:data:`STUDENT_WIDTHS`)."""
    if width not in STUDENT_WIDTHS:
        msg = f"unknown student width {width!r}; choose one of {', '.join(STUDENT_WIDTHS)}"
        raise ConfigError(msg)
    filters, units = STUDENT_WIDTHS[width]
    make = _Layers(nbits)
    kh = student_kernel_heights(rows)
    image = keras.Input(shape=(rows, *STUDENT_INPUT_SHAPE[1:]), name="image")
    layers = [
        make.conv(filters[0], "valid", "conv1", (kh[0], 3)), make.relu("relu1"),
        make.conv(filters[1], "valid", "conv2", (kh[1], 3)), make.relu("relu2"),
        make.conv(filters[2], "valid", "conv3", (kh[2], 3)), make.relu("relu3"),
        make.conv(filters[3], "valid", "conv4", (kh[3], 3)), make.relu("relu4"),
        keras.layers.Flatten(name="flatten"),
        make.dense(units[0], "dense1"), make.relu("dense_relu1"),
        make.dense(units[1], "dense2"), make.relu("dense_relu2"),
        make.output(_check_n_outputs(n_outputs)),
    ]  # fmt: skip
    rows_tag = f"_{rows}x{STUDENT_INPUT_SHAPE[1]}" if rows != N_LAYERS else ""
    default = width.replace("-", "_") + rows_tag + (f"_q{nbits}" if nbits else "")
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
