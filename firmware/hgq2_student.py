"""HGQ2 students: the students of :mod:`firmware.models` with a learned bit width per weight and activation.

HGQ2 (Keras 3) quantizes every weight, bias and layer input with its own trainable width and
adds a resource term to the loss: beta times the network's EBOPs (effective bit operations,
the sum over multiplications of the product of the two operands' widths, HGQ2's proxy for
LUTs). A larger beta gives a cheaper, less precise network. The weighted layers and their names
are the students' (``conv1 ... dense2 output``): HGQ2's ``QConv2D``/``QDense``, whose input
quantizer makes the type of what the previous layer gives, and the output layer is quantized
too, so the whole network is fixed point and Keras computes what the firmware computes
(hls4ml's bit-exact path, da4ml's tracing of the Keras 3 model).

Each ReLU is its layer's own ``activation="relu"`` (a ReLU of a fixed-point value is exact), not
a layer of its own: hls4ml 1.3.0 mis-builds a Keras ``ReLU`` layer (``l0emu convert`` refuses
it) and da4ml's tracer does not take ``Activation`` layers. So the ReLUs have no names, and
the distillation hints read the layer each belongs to (:data:`HINT_LAYERS`).

Keras 3 lives beside tf-keras in the process (:mod:`firmware.keras_env` sets
``TF_USE_LEGACY_KERAS`` for ``tf.keras``; ``import keras`` is Keras 3); everything Keras 3 of
``l0emu train`` is in this module. Datalane quantizers use HGQ2's default wrap-around overflow,
so :func:`finish` traces the ranges on the training images (``trace_minmax``) before the model
is saved.
"""

from __future__ import annotations

import contextlib

import numpy as np

from l0emu.errors import ConfigError, InputFileError

from .distill import HINTS, hinted_loss, squared_error
from .keras_env import keras3_module as _keras3
from .keras_env import tf
from .models import STUDENT_INPUT_SHAPE, STUDENT_WIDTHS, student_kernel_heights

__all__ = [
    "MODEL_FILE",
    "HINT_LAYERS",
    "DEFAULT_BETA",
    "BETA_PID_GAINS",
    "check_beta",
    "check_init_bits",
    "check_target_ebops",
    "build_hgq2_student",
    "initialise_from_float",
    "HintDistiller",
    "compile_student",
    "fit",
    "finish",
    "dead_probe",
    "bit_widths",
    "load_hgq2_model",
    "trace_firmware",
    "keras3_versions",
]

MODEL_FILE = "model.keras"
# the QKeras students' hint layers (firmware.distill.HINTS, their ReLUs) -> the HGQ2 layer whose
# own activation is that ReLU
HINT_LAYERS = {"relu2": "conv2", "relu4": "conv4", "dense_relu2": "dense2"}
BETA_PID_GAINS = {"p": 1.0, "i": 0.2}  # --target-ebops: proportional and integral gains, log10 scale
DEFAULT_BETA = 1e-5  # HGQ2's own default (hgq.config.global_config["beta0"])


def check_beta(beta) -> float:
    """``beta`` as a float, or ConfigError: the resource regulariser's weight, >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not np.isfinite(beta) or beta < 0:
        msg = f"--beta (the EBOPs regulariser's weight) must be a finite number >= 0, got {beta!r}"
        raise ConfigError(msg)
    return float(beta)


def check_init_bits(bits) -> int | None:
    """``bits`` (None: HGQ2's defaults) if it is a width from 1 to 16, else ConfigError."""
    if bits is None or (isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 16):
        return bits
    msg = f"--init-bits must be a whole number of bits from 1 to 16, got {bits!r}"
    raise ConfigError(msg)


def check_target_ebops(target) -> float | None:
    """``target`` (None: a fixed beta) if it is a finite number of EBOPs > 0, else ConfigError."""
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not np.isfinite(target) or target <= 0:
        msg = f"--target-ebops must be a finite number of EBOPs > 0, got {target!r}"
        raise ConfigError(msg)
    return float(target)


def _width_scopes(init_bits):
    """HGQ2's default scopes, or starting widths: ``init_bits`` bits for every weight and bias,
    ``init_bits`` fractional bits for every layer input (the integer bits come from the traced ranges)."""
    from hgq.config import QuantizerConfigScope

    datalane = QuantizerConfigScope(place="datalane", overflow_mode="WRAP", **({} if init_bits is None else {"f0": init_bits}))
    if init_bits is None:
        return [datalane]
    return [datalane, QuantizerConfigScope(q_type="kbi", place=("weight", "bias"), b0=init_bits)]


def build_hgq2_student(beta: float, n_outputs: int = 2, rows: int = STUDENT_INPUT_SHAPE[0], width: str = "student", name=None, init_bits=None):
    """The student ``width`` (:data:`firmware.models.STUDENT_WIDTHS`) in HGQ2 layers, regularised by
    ``beta``, its widths starting at HGQ2's defaults (8 bits per weight, 6 fractional bits per input) or ``init_bits``."""
    keras = _keras3()
    from hgq.config import LayerConfigScope
    from hgq.layers import QConv2D, QDense

    if width not in STUDENT_WIDTHS:
        msg = f"unknown student width {width!r}; choose one of {', '.join(STUDENT_WIDTHS)}"
        raise ConfigError(msg)
    filters, units = STUDENT_WIDTHS[width]
    kh = student_kernel_heights(rows)
    with contextlib.ExitStack() as scopes:
        for scope in [LayerConfigScope(beta0=check_beta(beta), enable_ebops=True), *_width_scopes(check_init_bits(init_bits))]:
            scopes.enter_context(scope)
        image = keras.Input(shape=(rows, *STUDENT_INPUT_SHAPE[1:]), name="image")
        layers = [
            QConv2D(filters[0], (kh[0], 3), activation="relu", name="conv1"),
            QConv2D(filters[1], (kh[1], 3), activation="relu", name="conv2"),
            QConv2D(filters[2], (kh[2], 3), activation="relu", name="conv3"),
            QConv2D(filters[3], (kh[3], 3), activation="relu", name="conv4"),
            keras.layers.Flatten(name="flatten"),
            QDense(units[0], activation="relu", name="dense1"),
            QDense(units[1], activation="relu", name="dense2"),
            QDense(n_outputs, name="output"),
        ]  # fmt: skip
        x = image
        for layer in layers:
            x = layer(x)
    default = width.replace("-", "_") + "_hgq2"
    return keras.Model(image, x, name=name or default)


def _weighted_layers(model):
    return [layer for layer in model.layers if hasattr(layer, "kq")]


def initialise_from_float(model, source, path) -> None:
    """Copy kernels and biases of the float network ``source`` (tf-keras, same layer names and
    shapes) into the HGQ2 ``model``: HGQ2 training from a float-trained start."""
    for layer in _weighted_layers(model):
        try:
            kernel, bias = source.get_layer(layer.name).get_weights()
        except ValueError:
            msg = f"--init-from {str(path)!r} has no float layer {layer.name!r} with a kernel and a bias: not the same architecture"
            raise ConfigError(msg) from None
        if kernel.shape != tuple(layer._kernel.shape) or bias.shape != tuple(layer.bias.shape):
            msg = (f"--init-from {str(path)!r}: layer {layer.name!r} has weights {[kernel.shape, bias.shape]}, "
                   f"the network needs {[tuple(layer._kernel.shape), tuple(layer.bias.shape)]}")  # fmt: skip
            raise ConfigError(msg)
        layer._kernel.assign(kernel)
        layer.bias.assign(bias)


def _adaptation(keras, student_tensor, teacher_shape, index):
    """Trainable map from a student feature onto the teacher feature's shape (as :mod:`firmware.distill`)."""
    if len(teacher_shape) == 1:
        return keras.layers.Dense(teacher_shape[0], name=f"adapt{index}_dense")(student_tensor)
    height, width, channels = teacher_shape
    x = keras.layers.Conv2D(channels, (1, 1), name=f"adapt{index}_conv")(student_tensor)
    return keras.layers.Resizing(height, width, interpolation="bilinear", name=f"adapt{index}_resize")(x)


def _distiller_class():
    keras = _keras3()

    class HintDistiller(keras.Model):
        """:class:`firmware.distill.Distiller`'s loss for a Keras 3 student: the frozen tf-keras
        teacher's hints where it is closer to the truth, plus the student's EBOPs term."""

        def __init__(self, student, teacher, gammas, soft_weight: float = 0.0, **kwargs):
            super().__init__(**kwargs)
            if len(gammas) != len(HINTS):
                msg = f"distillation needs {len(HINTS)} hint weights (gammas), got {len(gammas)}"
                raise ConfigError(msg)
            self.student, self.gammas, self.soft_weight = student, tuple(float(g) for g in gammas), float(soft_weight)
            teacher.trainable = False
            hints = [teacher.get_layer(t).output for _, t in HINTS]
            self.teacher_with_hints = type(teacher)(teacher.input, [teacher.output, *hints], name="teacher_hints")
            adapted = [
                _adaptation(keras, student.get_layer(HINT_LAYERS[s]).output, tuple(teacher.get_layer(t).output_shape[1:]), i + 1)
                for i, (s, t) in enumerate(HINTS)
            ]
            self.student_with_adapters = keras.Model(student.input, [student.output, *adapted], name="student_adapted")
            self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "student_loss", "hint_loss", "hint_fraction")}

        @property
        def metrics(self):
            return list(self.trackers.values())

        def call(self, inputs, training=False):
            return self.student(inputs, training=training)

        def _log(self, **values):
            for n, v in values.items():
                self.trackers[n].update_state(v)
            return {n: self.trackers[n].result() for n in values}

        def train_step(self, data):
            x, y, weight = _unpack(keras, data)
            with tf.GradientTape() as tape:
                teacher_out, *teacher_hints = self.teacher_with_hints(x, training=False)
                student_out, *adapted = self.student_with_adapters(x, training=True)
                terms = hinted_loss(y, student_out, teacher_out, adapted, teacher_hints, self.gammas, self.soft_weight)
                student_loss, hint_loss, use_hints, soft_loss = terms
                loss = tf.reduce_mean(weight * (student_loss + use_hints * hint_loss + soft_loss)) + tf.add_n([0.0, *self.student.losses])
            variables = self.student_with_adapters.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return self._log(loss=loss, student_loss=tf.reduce_mean(student_loss), hint_loss=tf.reduce_mean(use_hints * hint_loss),
                             hint_fraction=tf.reduce_mean(use_hints))  # fmt: skip

        def test_step(self, data):
            x, y, weight = _unpack(keras, data)
            out = self.student(x, training=False)
            return self._log(loss=tf.reduce_mean(weight * squared_error(y, out)))

    return HintDistiller


def HintDistiller(student, teacher, gammas, soft_weight: float = 0.0):  # noqa: N802 (a class made on first use)
    """Knowledge distillation of an HGQ2 student from a tf-keras teacher (Keras 3 imported on first use)."""
    return _distiller_class()(student, teacher, gammas, soft_weight)


def _unpack(keras, data):
    x, y, weight = keras.utils.unpack_x_y_sample_weight(data)
    return x, y, tf.ones(tf.shape(y)[:1]) if weight is None else tf.cast(tf.reshape(weight, [-1]), tf.float32)


def compile_student(trainer, learning_rate: float) -> None:
    """Adam and the per-event squared error (the QKeras students' loss); Keras 3 adds the EBOPs term."""
    keras = _keras3()
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=None if hasattr(trainer, "student") else squared_error, weighted_metrics=[])


def _student_ebops(student) -> float:
    return float(sum(float(layer.ebops) for layer in _weighted_layers(student)))


def _objective_callback(keras, student, beta, target_ebops):
    """Logs ``ebops`` and the quantity early stopping watches, measured on the validation events,
    so that the weights kept are not those of an early epoch that was better only because it was wider:

    - fixed beta: ``val_objective`` = val_loss + beta x EBOPs, the trade-off the training minimises;
    - a target (beta steered by HGQ2's ``BetaPID``, so beta x EBOPs means nothing across epochs):
      ``val_objective`` = val_loss + max(0, EBOPs / target - 1), the validation loss of a network
      within the budget, an epoch over it penalised by how far (10 % over costs 0.1, the scale of the loss).
    """

    class ValidationObjective(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ebops = _student_ebops(student)
            logs["ebops"] = ebops
            if target_ebops is None:
                logs["val_objective"] = logs["val_loss"] + beta * ebops
            else:
                logs["val_objective"] = logs["val_loss"] + max(0.0, ebops / target_ebops - 1.0)

    return ValidationObjective()


def _beta_controller(student, beta, target_ebops):
    """HGQ2's PID controller of beta (on log10 of EBOPs / target) towards ``target_ebops``: two
    epochs at ``beta`` (a warm-up epoch, then the controller's start), then steered. Integral gain :data:`BETA_PID_GAINS`: HGQ2's default (2e-3)
    is made for thousands of epochs; a student trains for tens, so beta must move within a few."""
    from hgq.utils.sugar import BetaPID

    class StudentBetaPID(BetaPID):
        def get_ebops(self):  # the student's, also when a distiller wraps it
            return _student_ebops(student)

    return StudentBetaPID(target_ebops, init_beta=beta, warmup=1, max_beta=1e-3, **BETA_PID_GAINS)


def fit(trainer, student, beta, fit_data, validation_data, preset, verbose, label, target_ebops=None) -> dict:
    """:func:`firmware.train._fit` for Keras 3; early stopping on ``val_objective`` (above), best
    weights kept; with ``target_ebops``, beta is steered towards that many EBOPs each epoch."""
    keras = _keras3()
    if verbose:
        print(f"training {label}: {len(fit_data[0])} events, validation {len(validation_data[0])}, up to {preset.epochs} epochs")
    callbacks = [] if target_ebops is None else [_beta_controller(student, beta, target_ebops)]
    callbacks += [
        _objective_callback(keras, student, beta, target_ebops),
        keras.callbacks.EarlyStopping(monitor="val_objective", mode="min", patience=preset.patience, restore_best_weights=True),
    ]
    history = trainer.fit(
        *fit_data[:2], sample_weight=fit_data[2], validation_data=validation_data, epochs=preset.epochs,
        batch_size=preset.batch_size, callbacks=callbacks, verbose=2 if verbose else 0, shuffle=True,
    )  # fmt: skip
    return {n: [float(v) for v in values] for n, values in history.history.items()}


def finish(model, x) -> int:
    """Trace the datalane ranges on images ``x`` (the wrap-around quantizers' integer bits); returns the EBOPs."""
    from hgq.utils import trace_minmax

    return int(trace_minmax(model, x, batch_size=4096))


def _width_summary(bits) -> dict:
    bits = np.asarray(bits)
    return {"min": float(bits.min()), "median": float(np.median(bits)), "max": float(bits.max()),
            "distinct": int(len(np.unique(bits))), "zero_fraction": float(np.mean(bits <= 0))}  # fmt: skip


def bit_widths(model) -> dict:
    """Per layer: the widths of its kernel elements and of its input elements (min, median, max,
    how many distinct values, the share of zero-width elements, which the firmware drops) and its EBOPs."""
    return {
        layer.name: {"kernel_bits": _width_summary(layer.kq.bits), "input_bits": _width_summary(layer.iq.bits), "ebops": int(layer.ebops)}
        for layer in _weighted_layers(model)
    }


def dead_probe(model):
    """The model's outputs and its last hidden ReLU (``dense2``'s activation), for the dead-network check."""
    keras = _keras3()
    return keras.Model(model.inputs, [model.outputs[0], model.get_layer(HINT_LAYERS["dense_relu2"]).output])


def load_hgq2_model(path):
    """Load an HGQ2 ``.keras`` model (a directory means its ``model.keras``), uncompiled."""
    from pathlib import Path

    keras = _keras3()
    import hgq  # noqa: F401 (registers HGQ2's layers for deserialisation)

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        msg = f"no HGQ2 model at {str(path)!r}; 'l0emu train --quantizer hgq2' writes {MODEL_FILE} into its output directory"
        raise InputFileError(msg)
    return keras.models.load_model(path, compile=False)


def trace_firmware(model, input_kif=(0, 1, 1)):
    """da4ml's combinational logic of the HGQ2 ``model``, traced from Keras 3 itself (HGQ2's
    da4ml plugin), for inputs of type ``input_kif`` (sign, integer, fractional bits; the
    default: the fragment pixels 0, 1/2, 1 as ``ap_ufixed<2,1>``)."""
    from da4ml.converter import trace_model
    from da4ml.trace import HWConfig, comb_trace

    inputs, outputs = trace_model(model, HWConfig(1, -1, -1), {"hard_dc": 2}, inputs_kif=tuple(input_kif))
    return comb_trace(inputs, outputs)


def keras3_versions() -> dict:
    import hgq

    return {"keras3": _keras3().__version__, "hgq2": hgq.__version__}
