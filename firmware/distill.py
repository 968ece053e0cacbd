"""Knowledge distillation with three hints (seed 000), as a Keras model with its own train_step.

Loss per event, with ``y`` the target, ``y_S``/``y_T`` the student/teacher outputs::

    L = ||y - y_S||^2 + sum_i gamma_i H_i   if ||y - y_T||^2 < ||y - y_S||^2
    L = ||y - y_S||^2                      otherwise

so the teacher's hints only act on events where the teacher is closer to the truth. With
``soft_weight`` alpha > 0 the student also regresses onto the teacher's outputs on every
event, ``+ alpha ||y_T - y_S||^2`` (soft targets, the regression analogue of a temperature-
softened classifier output: the teacher's smoother pT estimate instead of the bare truth). The
hint ``H_i = ||A_i - T_i||^2`` is taken as the *mean* squared difference over the hint's
elements (a constant factor per hint that ``gamma_i`` absorbs, which keeps the gammas
comparable between small and large feature maps).

The hints connect (student layer -> adaptation -> teacher layer), see :data:`HINTS`:

1. ``relu2`` (5, 12, 1)  -> 1x1 conv to 10 channels, bilinear resize to (9, 8) -> ``pool1`` (9, 8, 10)
2. ``relu4`` (1, 8, 6)   -> 1x1 conv to 17 channels, bilinear resize to (4, 4) -> ``pool2`` (4, 4, 17)
3. ``dense_relu2`` (10)  -> dense 10                                           -> ``dense_relu2`` (10)

(the seed student's shapes; a wider student's features have more channels or units, which the
same 1x1 convolution or dense adaptation maps onto the teacher's.)

The adaptation layers train with the student and are dropped afterwards: the saved
student is the plain network. The teacher (a 9x16 teacher, float by default: the seed
finds a float teacher more helpful) is frozen.
"""

from __future__ import annotations

from l0emu.errors import ConfigError

from .keras_env import keras, tf
from .options import DEFAULT_GAMMAS  # defined without TensorFlow, for the CLI's --help

__all__ = ["HINTS", "DEFAULT_GAMMAS", "Distiller", "hinted_loss", "squared_error"]

# (student layer, teacher layer) for each hint
HINTS = (("relu2", "pool1"), ("relu4", "pool2"), ("dense_relu2", "dense_relu2"))


def squared_error(y_true, y_pred):
    """``||y - y_pred||^2`` per event (summed over the outputs): the loss of every training."""
    return tf.reduce_sum(tf.square(tf.cast(y_true, y_pred.dtype) - y_pred), axis=-1)


def hinted_loss(y, student_out, teacher_out, adapted, teacher_hints, gammas, soft_weight):
    """The per-event terms of the module's loss: ``(student loss, hint loss, 1 where the hints
    apply, soft-target loss)``; shared by :class:`Distiller` and the HGQ2 students' distiller."""
    student_loss = squared_error(y, student_out)
    teacher_loss = squared_error(y, teacher_out)
    hint_loss = tf.add_n(
        [
            gamma * tf.reduce_mean(tf.square(tf.reshape(a - t, (tf.shape(a)[0], -1))), axis=1)
            for gamma, a, t in zip(gammas, adapted, teacher_hints)
        ]
    )
    use_hints = tf.cast(teacher_loss < student_loss, student_loss.dtype)
    soft_loss = soft_weight * squared_error(teacher_out, student_out)  # every event, 0 when off
    return student_loss, hint_loss, use_hints, soft_loss


def _adaptation(student_tensor, teacher_shape, index):
    """Trainable map from a student feature onto the teacher feature's shape."""
    if len(teacher_shape) == 1:
        return keras.layers.Dense(teacher_shape[0], name=f"adapt{index}_dense")(student_tensor)
    height, width, channels = teacher_shape
    x = keras.layers.Conv2D(channels, (1, 1), name=f"adapt{index}_conv")(student_tensor)
    return keras.layers.Resizing(height, width, interpolation="bilinear", name=f"adapt{index}_resize")(x)


class Distiller(keras.Model):
    """Trains ``student`` (and the adaptation layers) against targets and a frozen ``teacher``.

    ``fit`` takes ``(x, y)`` or ``(x, y, sample_weight)`` like the student would (a weight
    scales the event's whole loss, hints included); ``val_loss`` is the student's plain
    (weighted) squared error, so early stopping compares the same quantity as for training
    without KD.
    Logged: ``loss``, ``student_loss``, ``hint_loss`` and ``hint_fraction`` (the share of
    events where the teacher was closer to the truth and the hints applied).
    """

    def __init__(self, student, teacher, gammas=DEFAULT_GAMMAS, soft_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(soft_weight, (int, float)) and 0.0 <= soft_weight < float("inf")):
            msg = f"soft-target weight must be a number >= 0, got {soft_weight!r}"
            raise ConfigError(msg)
        # the student's input: 9x16, or fewer rows for a layer set (firmware.models)
        if tuple(teacher.input_shape[1:]) != tuple(student.input_shape[1:]):
            msg = (
                f"the distillation teacher {teacher.name!r} takes {tuple(teacher.input_shape[1:])} "
                f"images; hints need a teacher of the student's input {tuple(student.input_shape[1:])}"
            )
            raise ConfigError(msg)
        if tuple(teacher.output_shape[1:]) != tuple(student.output_shape[1:]):
            # the hints apply where the teacher is closer to the same targets: same outputs only
            msg = (
                f"the distillation teacher {teacher.name!r} has {teacher.output_shape[-1]} outputs, the student "
                f"{student.name!r} {student.output_shape[-1]}: train the teacher with the student's outputs"
            )
            raise ConfigError(msg)
        if len(gammas) != len(HINTS):
            msg = f"distillation needs {len(HINTS)} hint weights (gammas), got {len(gammas)}"
            raise ConfigError(msg)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.gammas = tuple(float(g) for g in gammas)
        self.soft_weight = float(soft_weight)
        adapted = [
            _adaptation(student.get_layer(s).output, teacher.get_layer(t).output_shape[1:], i + 1)
            for i, (s, t) in enumerate(HINTS)
        ]
        self.student_with_adapters = keras.Model(student.input, [student.output, *adapted], name="student_adapted")
        hints = [teacher.get_layer(t).output for _, t in HINTS]
        self.teacher_with_hints = keras.Model(teacher.input, [teacher.output, *hints], name="teacher_hints")
        # epoch averages (a bare tensor in the logs would show the last batch only)
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "student_loss", "hint_loss", "hint_fraction")
        }

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _log(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _distillation_terms(self, x, y, training):
        teacher_out, *teacher_hints = self.teacher_with_hints(x, training=False)
        student_out, *adapted = self.student_with_adapters(x, training=training)
        return hinted_loss(y, student_out, teacher_out, adapted, teacher_hints, self.gammas, self.soft_weight)

    def train_step(self, data):
        x, y, weight = _unpack(data)
        with tf.GradientTape() as tape:
            student_loss, hint_loss, use_hints, soft_loss = self._distillation_terms(x, y, training=True)
            loss = tf.reduce_mean(weight * (student_loss + use_hints * hint_loss + soft_loss))
        variables = self.student_with_adapters.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._log(
            loss=loss,
            student_loss=tf.reduce_mean(student_loss),
            hint_loss=tf.reduce_mean(use_hints * hint_loss),
            hint_fraction=tf.reduce_mean(use_hints),
        )

    def test_step(self, data):
        x, y, weight = _unpack(data)
        return self._log(loss=tf.reduce_mean(weight * squared_error(y, self.student(x, training=False))))


def _unpack(data):
    """``(x, y, weight)`` with weight 1 where ``fit`` got no sample weights (Keras' own mean)."""
    x, y, weight = keras.utils.unpack_x_y_sample_weight(data)
    return x, y, tf.ones(tf.shape(y)[:1]) if weight is None else tf.cast(tf.reshape(weight, [-1]), tf.float32)
