"""One training run: events file -> trained (Q)Keras model + ``record.json`` in an output directory.

A run trains one architecture (``student`` by default, or a teacher), optionally quantized
(QAT, ``nbits``) and, for the student, optionally distilled from a 9x16 teacher
(``kd``): the teacher is read from ``teacher_path`` or, without one, trained first in the
same run (float, as the seed recommends) and saved beside the student.

Without ``validation_events`` the events are split once, by ``seed``, into train /
validation / test; early stopping watches the validation split and the record's metrics come
from the test split (events of the training files' generator seeds, labelled so). With
``validation_events`` (the evaluation protocol, :mod:`firmware.protocol`) every training
event trains, early stopping watches the validation files (other generator seeds, refused
when they repeat a training file's scenario and seed) and the metrics are theirs. Either way
the record lists the generator scenario and seed of every file, which later evaluations
check against.

``outputs`` picks the output set (:data:`firmware.dataset.OUTPUT_SETS`): ``pt,eta`` (one example
per event, as always) or ``pt,eta,charge,presence`` (one example per sector-logic candidate
window, :mod:`firmware.dataset`; 9x16 networks only). With candidates the split is by event
(every window goes with its event) and the record adds per-window charge and presence figures
and the per-event confusion of true vs found muon counts.

``layers`` picks the RPC layers whose rows form the images (:data:`l0emu.trigger.geometry.LAYER_SETS`,
e.g. the middle station's 4x16 windows): the data, every network's input (the student's kernels
as :mod:`firmware.models` adapts them) and the teacher trained for distillation follow; the
record's ``data.layers`` and ``targets.preprocessing.layers`` (which ``l0emu convert`` writes
into the spec) keep it.

Output directory::

    model.h5          the trained network (plain Keras/QKeras; no adaptation layers)
    teacher/model.h5  the teacher, when this run trained one
    record.json       configuration, preset, seeds, data hash, targets, metrics, dead-network
                      check, wall time
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError
from l0emu.trigger.geometry import ALL_LAYERS, check_layers
from l0emu.results.metrics import physics_summary
from l0emu.schema import SIGNAL_PT_MIN
from l0emu.trigger.sector import MAX_CANDIDATES, min_candidate_hits
from l0emu.util.serialize import jsonable

from .dataset import (
    BACKGROUND_ETA, DEFAULT_STRIDE, MULTI_OUTPUTS, PT_ETA, PT_SCALE, check_outputs, eta_scale, load_training_data,
    output_specs, preprocessing_spec, split_examples,
)  # fmt: skip
from .distill import DEFAULT_GAMMAS, HINTS, Distiller, squared_error
from .keras_env import keras, qkeras, tf
from .models import STUDENT_WIDTHS, build_student, build_teacher, check_nbits, load_model
from .protocol import check_disjoint, describe_samples

__all__ = [
    "RECORD_FORMAT",
    "ARCHITECTURES",
    "Preset",
    "PRESETS",
    "DEAD_RELATIVE_STD",
    "constant_outputs",
    "dead_network_check",
    "event_weights",
    "candidate_metrics",
    "file_sha256",
    "train_run",
]

RECORD_FORMAT = "l0emu-train-record/1"
# architecture -> (builder taking nbits, the number of outputs and of image rows (layers), eta frame of its targets)
ARCHITECTURES = {
    **{
        width: (lambda nbits, n_outputs, rows=9, width=width: build_student(nbits=nbits, n_outputs=n_outputs, rows=rows, width=width), "window")
        for width in STUDENT_WIDTHS
    },
    "teacher": (lambda nbits, n_outputs, rows=9: build_teacher((rows, 16, 1), nbits=nbits, n_outputs=n_outputs), "window"),
    "teacher-9x384": (lambda nbits, n_outputs, rows=9: build_teacher((rows, 384, 1), nbits=nbits, n_outputs=n_outputs), "sector"),
}
# the charge-identification figure is taken on windows whose muon is at least this hard (issue 11)
CHARGE_PT_MIN = 10.0
# an output whose spread over the validation events is below this fraction of its target's
# spread is constant: a collapsed network predicts (nearly) the mean whatever the event
DEAD_RELATIVE_STD = 0.01


@dataclasses.dataclass(frozen=True)
class Preset:
    """A training schedule. ``n_events`` caps how many events of the file are read."""

    n_events: int
    epochs: int
    teacher_epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    validation_fraction: float = 0.15
    test_fraction: float = 0.15


PRESETS = {
    # minutes on a 2-core CPU: for CI and quick looks
    "fast": Preset(n_events=50_000, epochs=20, teacher_epochs=10, batch_size=256, learning_rate=3e-3, patience=4),
    # the seed study: 700k events, long schedule, early stopping decides
    "paper": Preset(n_events=700_000, epochs=200, teacher_epochs=100, batch_size=512, learning_rate=1e-3, patience=10),
}


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def constant_outputs(outputs, targets) -> list[str]:
    """Reasons for each output whose spread is below DEAD_RELATIVE_STD of its target's."""
    output_std, target_std = np.std(outputs, axis=0), np.std(targets, axis=0)
    return [
        f"output {i} is constant (std {s:.2g}, under {DEAD_RELATIVE_STD:.0%} of its target's {t:.2g})"
        for i, (s, t) in enumerate(zip(output_std, target_std))
        if s < DEAD_RELATIVE_STD * t
    ]


def dead_network_check(model, x, y, batch_size: int = 4096) -> dict:
    """Is ``model`` dead on ``x`` (targets ``y``): a (nearly) constant output, or a last hidden
    ReLU that is zero everywhere?"""
    if _is_keras3(model):
        from .hgq2_student import dead_probe

        probe = dead_probe(model)
    else:
        probe = keras.Model(model.input, [model.output, model.get_layer("dense_relu2").output])
    outputs, hidden = probe.predict(x, batch_size=batch_size, verbose=0)
    reasons = constant_outputs(outputs, y)
    if not np.any(hidden > 0):
        reasons.append("the last hidden ReLU (dense_relu2) is zero for every event")
    return {"dead": bool(reasons), "reasons": reasons, "output_std": outputs.std(axis=0).tolist()}


def event_weights(is_signal, background_weight: float) -> np.ndarray:
    """Per-event loss weights: 1 for signal, ``background_weight`` for background events.

    A trigger's fake rate is set by the background tail above threshold, which a plain
    squared error weighs no more than a small pT error on a signal muon; weighting background
    up trades a little efficiency near the threshold for fewer fakes.
    """
    _check_background_weight(background_weight)
    return np.where(is_signal, 1.0, float(background_weight)).astype(np.float32)


def _check_background_weight(value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        msg = f"background weight must be a positive number, got {value!r}"
        raise ConfigError(msg)


def _fit(model, fit_data, validation_data, preset, epochs, verbose, label):
    """``fit_data`` / ``validation_data``: ``(x, y, weights)``; early stopping on the latter."""
    if verbose:
        print(f"training {label}: {len(fit_data[0])} events, validation {len(validation_data[0])}, up to {epochs} epochs")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=preset.patience, restore_best_weights=True)
    history = model.fit(
        *fit_data[:2], sample_weight=fit_data[2], validation_data=validation_data,
        epochs=epochs, batch_size=preset.batch_size, callbacks=[stop], verbose=2 if verbose else 0, shuffle=True,
    )  # fmt: skip
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def _compile(model, preset):
    # weighted_metrics=[]: the loss is the only metric, and it is weighted (no Keras warning)
    model.compile(optimizer=keras.optimizers.Adam(preset.learning_rate), loss=squared_error, weighted_metrics=[])


def _evaluate(model, x, y, data, test, frame, source: str) -> dict:
    """Physics metrics of ``model`` (Keras) on events ``test`` of ``data`` (pT in GeV, eta in strips)."""
    prediction = model.predict(x[test], batch_size=4096, verbose=0)
    pred_pt = prediction[:, 0] * PT_SCALE
    true_pt = np.where(data.is_signal[test], data.true_pt[test], 0.0)
    signal = data.is_signal[test]
    eta_error = (prediction[signal, 1] - y[test][signal, 1]) * eta_scale(frame)
    summary = physics_summary(true_pt, pred_pt)
    summary["test_loss"] = float(np.mean(np.sum((prediction - y[test]) ** 2, axis=1)))
    summary["eta_rms_strips"] = float(np.sqrt(np.mean(eta_error**2))) if signal.any() else float("nan")
    summary["n_test"] = int(len(test))
    summary["evaluated_on"] = source
    summary["predictions"] = "Keras predict (QKeras quantizers for a quantized network), not the firmware-exact emulator"
    if data.outputs == MULTI_OUTPUTS:
        summary["candidates"] = candidate_metrics(prediction, data, test)
    return summary


def _fraction(passed, total) -> dict:
    return {"passed": int(passed), "total": int(total), "fraction": float(passed / total) if total else None}


def candidate_metrics(prediction, data, examples) -> dict:
    """Figures of a four-output network on candidate windows ``examples`` of ``data``: charge
    identification (windows with a muon of at least CHARGE_PT_MIN), presence on windows with
    and without a muon, and per event (every event of ``examples``) the confusion of true muon
    count (above SIGNAL_PT_MIN, at most MAX_CANDIDATES) vs windows with presence >= 0.5."""
    charge = np.where(prediction[:, 2] >= 0, 1, -1)  # the trigger's reading
    found = prediction[:, 3] >= 0.5
    signal = data.is_signal[examples]
    hard = signal & (data.true_pt[examples] >= CHARGE_PT_MIN)
    events = data.event_index[examples]
    muon_event = np.repeat(np.arange(data.n_events), np.diff(data.muons.offsets))
    true_count = np.bincount(muon_event[data.muons.pt >= SIGNAL_PT_MIN], minlength=data.n_events)
    found_count = np.bincount(events, weights=found, minlength=data.n_events).astype(np.int64)
    evaluated = np.unique(events)
    confusion = np.zeros((MAX_CANDIDATES + 1, MAX_CANDIDATES + 1), np.int64)
    np.add.at(confusion, (np.minimum(true_count[evaluated], MAX_CANDIDATES), found_count[evaluated]), 1)
    return {
        "charge_correct_pt_min_gev": CHARGE_PT_MIN,
        "charge_correct": _fraction(np.sum(charge[hard] == data.true_charge[examples][hard]), hard.sum()),
        "presence_on_muon_windows": _fraction(found[signal].sum(), signal.sum()),
        "presence_on_empty_windows": _fraction(found[~signal].sum(), (~signal).sum()),
        "count_confusion": {"rows": "true muons above 3 GeV (at most 3)", "columns": "windows with presence >= 0.5",
                            "n_events": int(len(evaluated)), "matrix": confusion.tolist()},
    }  # fmt: skip


def _train_teacher(fit_data, validation_data, preset, seed, verbose):
    keras.utils.set_random_seed(seed + 1)
    shape = fit_data[0].shape[1:]  # the student's input: 9x16, or fewer rows for a layer set
    teacher = build_teacher(shape, n_outputs=fit_data[1].shape[1])
    _compile(teacher, preset)
    label = f"teacher {shape[0]}x{shape[1]} for distillation"
    return teacher, _fit(teacher, fit_data, validation_data, preset, preset.teacher_epochs, verbose, label)


def _initialise_from(model, path) -> str:
    """Copy the weights of the network in ``path`` into ``model``, layer by layer (same names and
    shapes): quantization-aware training from a float-trained start."""
    source = load_model(path)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            donor = source.get_layer(layer.name).get_weights()
        except ValueError:
            msg = f"--init-from {str(path)!r} has no layer {layer.name!r}: not the same architecture"
            raise ConfigError(msg) from None
        if [w.shape for w in donor] != [w.shape for w in weights]:
            msg = f"--init-from {str(path)!r}: layer {layer.name!r} has weights {[w.shape for w in donor]}, the network needs {[w.shape for w in weights]}"
            raise ConfigError(msg)
        layer.set_weights(donor)
    return file_sha256(_model_file(path))


def train_run(
    events_paths,
    output_dir,
    *,
    architecture: str = "student",
    nbits=None,
    preset: str = "fast",
    kd: bool = False,
    teacher_path=None,
    seed: int = 0,
    stride: int = DEFAULT_STRIDE,
    gammas=DEFAULT_GAMMAS,
    soft_weight: float = 0.0,
    init_from=None,
    validation_events=None,
    background_weight: float = 1.0,
    max_events=None,
    epochs=None,
    outputs=PT_ETA,
    layers=ALL_LAYERS,
    quantizer: str = "qkeras",
    beta=None,
    init_bits=None,
    target_ebops=None,
    verbose: bool = True,
) -> dict:
    """Train, evaluate and write ``output_dir`` (atomically); return the record."""
    started = time.time()
    check_nbits(nbits)
    outputs = check_outputs(outputs)
    layers = check_layers(layers)
    _check_background_weight(background_weight)
    beta = _check_quantizer(quantizer, beta, architecture, nbits, init_bits, target_ebops)
    if architecture not in ARCHITECTURES:
        msg = f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        raise ConfigError(msg)
    if preset not in PRESETS:
        msg = f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
        raise ConfigError(msg)
    if kd and architecture not in STUDENT_WIDTHS:
        msg = f"knowledge distillation trains a student; architecture {architecture!r} cannot be distilled"
        raise ConfigError(msg)
    build, frame = ARCHITECTURES[architecture]
    if outputs == MULTI_OUTPUTS and frame != "window":
        msg = f"architecture {architecture!r} sees the whole sector, not candidate windows: outputs {','.join(outputs)} need a 9x16 network (student or teacher)"
        raise ConfigError(msg)
    schedule = PRESETS[preset]
    n_events = schedule.n_events if max_events is None else min(int(max_events), schedule.n_events)
    student_epochs = schedule.epochs if epochs is None else int(epochs)
    teacher_epochs = schedule.teacher_epochs if epochs is None else int(epochs)
    schedule = dataclasses.replace(schedule, epochs=student_epochs, teacher_epochs=teacher_epochs)
    if soft_weight and not kd:
        msg = "soft targets (--soft-weight) come from a teacher: they need --kd"
        raise ConfigError(msg)
    teacher = load_model(teacher_path) if teacher_path is not None else None  # fail before the long part
    if teacher is not None:
        _check_teacher_outputs(teacher, teacher_path, outputs)
    events_paths = [str(p) for p in ([events_paths] if isinstance(events_paths, (str, Path)) else events_paths)]
    validation_events = [str(p) for p in ([validation_events] if isinstance(validation_events, (str, Path)) else validation_events or [])]
    check_disjoint(events_paths, validation_events)

    data = load_training_data(events_paths, entry_stop=n_events, stride=stride, full_images=frame == "sector", outputs=outputs,
                              layers=layers)
    if len(data) < 10:
        msg = f"{', '.join(data.paths)} hold {len(data)} events; training needs at least 10"
        raise ConfigError(msg)
    x, y = (data.full_images, data.full_targets) if frame == "sector" else (data.images, data.targets)
    weights = event_weights(data.is_signal, background_weight)
    if validation_events:
        # the protocol: train on every training event, stop early and measure on other seeds
        val_data = load_training_data(validation_events, entry_stop=_validation_events(n_events, schedule), stride=stride,
                                      full_images=frame == "sector", outputs=outputs, layers=layers)  # fmt: skip
        val_x, val_y = (val_data.full_images, val_data.full_targets) if frame == "sector" else (val_data.images, val_data.targets)
        train, test = np.arange(len(data)), np.arange(len(val_data))
        fit_data = (x, y, weights)
        validation_data = (val_x, val_y, event_weights(val_data.is_signal, background_weight))
        measured = (val_x, val_y, val_data, test, frame, "validation files " + ", ".join(Path(p).name for p in validation_events))
        n_validation = len(val_data)
    else:
        train, validation, test = split_examples(data, schedule.validation_fraction, schedule.test_fraction, seed)
        fit_data = (x[train], y[train], weights[train])
        validation_data = (x[validation], y[validation], weights[validation])
        measured = (x, y, data, test, frame, "test split of the training files (their generator seeds)")
        n_validation = len(validation)

    record = {"format": RECORD_FORMAT, "teacher": None}
    if kd:
        if teacher is None:
            teacher, history = _train_teacher(fit_data, validation_data, schedule, seed, verbose)
            record["teacher"] = {"source": "trained in this run", "file": "teacher/model.h5", "history": history}
        else:
            record["teacher"] = {"source": Path(teacher_path).name, "sha256": file_sha256(_model_file(teacher_path))}
            record["teacher"]["samples"] = _teacher_samples(teacher_path)
        record["teacher"]["metrics"] = _evaluate(teacher, *measured)

    keras.utils.set_random_seed(seed)
    if quantizer == "hgq2":
        model, init_sha, history, hgq2_summary = _train_hgq2(
            architecture, beta, init_bits, target_ebops, fit_data, validation_data, schedule, teacher if kd else None, gammas, soft_weight, init_from, verbose,
        )  # fmt: skip
        record["hgq2"] = hgq2_summary
    else:
        model = build(nbits, len(outputs), len(layers))
        init_sha = _initialise_from(model, init_from) if init_from is not None else None
        trainer = Distiller(model, teacher, gammas, soft_weight=soft_weight) if kd else model
        _compile(trainer, schedule)
        label = f"{model.name}" + (" with distillation" if kd else "")
        history = _fit(trainer, fit_data, validation_data, schedule, schedule.epochs, verbose, label)

    record.update(
        config={
            "architecture": architecture, "nbits": nbits, "kd": kd, "preset": preset,
            "schedule": dataclasses.asdict(schedule), "seed": seed, "teacher_seed": seed + 1 if kd and teacher_path is None else None,
            "split_seed": seed, "hints": [list(h) for h in HINTS] if kd else None, "gammas": list(gammas) if kd else None,
            "background_weight": float(background_weight), "soft_weight": float(soft_weight) if kd else None,
            "init_from": None if init_from is None else {"path": Path(init_from).name, "sha256": init_sha},
            "quantizer": quantizer, "beta": beta, "init_bits": init_bits, "target_ebops": target_ebops,
            "loss": _LOSS[outputs], "outputs": list(outputs),
        },
        data={
            "paths": [Path(p).name for p in data.paths], "sha256": [file_sha256(p) for p in data.paths], "n_events": len(data),
            "samples": describe_samples(data.paths), "validation_samples": describe_samples(validation_events),
            "n_train": len(train), "n_validation": n_validation, "n_test": len(test),
            "n_signal": int(data.is_signal.sum()), "stride": data.stride, "layers": list(layers), **_example_fields(data, layers),
        },
        targets={
            "outputs": output_specs(frame, outputs), "preprocessing": preprocessing_spec(frame, data.stride, outputs, layers),
            "background": {"pt": 0.0, "eta": BACKGROUND_ETA, **({"charge": 0.0, "presence": 0.0} if outputs == MULTI_OUTPUTS else {})},
            "pt_scale_gev": PT_SCALE, "eta_scale_strips": eta_scale(frame), "eta_frame": frame,
        },
        model={"name": model.name, "file": _saved_name(model), "parameters": _parameters(model)},
        history=history,
        metrics=_evaluate(model, *measured),
        dead_network=dead_network_check(model, validation_data[0], validation_data[1]),
        versions={"tensorflow": tf.__version__, "tf_keras": keras.__version__, "qkeras": qkeras.__version__, **_keras3_versions(quantizer)},
    )  # fmt: skip
    record["wall_time_s"] = round(time.time() - started, 1)
    record = jsonable(record)
    _write(Path(output_dir), model, teacher if record["teacher"] and teacher_path is None else None, record)
    return record


_LOSS = {
    PT_ETA: "sum of squared errors over (pt, eta) per event, times the event weight (background_weight on background)",
    MULTI_OUTPUTS: "sum of squared errors over (pt, eta, charge, presence) per candidate window, times its weight "
                   "(background_weight on windows without a muon above 3 GeV)",
}  # fmt: skip


def _example_fields(data, layers) -> dict:
    """The record's description of candidate-window examples (none for event examples)."""
    if data.outputs != MULTI_OUTPUTS:
        return {}
    return {
        "n_events": data.n_events, "n_examples": len(data),
        "examples": f"sector-logic candidate windows (l0emu.trigger.sector: at most {MAX_CANDIDATES}, min_hits {min_candidate_hits(len(layers))}); "
                    "n_train/n_validation/n_test/n_signal count windows, split by event",
    }  # fmt: skip


def _check_teacher_outputs(teacher, teacher_path, outputs) -> None:
    """A distillation teacher must have the student's outputs: the names its ``record.json``
    gives, and without one at least their number."""
    record_path = _model_file(teacher_path).parent / "record.json"
    names = None
    if record_path.is_file():
        names = [o["name"] for o in json.loads(record_path.read_text()).get("targets", {}).get("outputs", [])] or None
    if (names is not None and names != list(outputs)) or teacher.output_shape[-1] != len(outputs):
        have = ",".join(names) if names else f"{teacher.output_shape[-1]} (no record.json names them)"
        msg = (f"--teacher {str(teacher_path)!r} has outputs {have}; the student is trained with outputs {','.join(outputs)}: "
               f"distil from a teacher trained with '--outputs {','.join(outputs)}'")
        raise ConfigError(msg)


def _validation_events(n_events: int, schedule: Preset) -> int:
    """Validation events read from the validation files: as many as the split would hold."""
    return max(10, int(round(n_events * schedule.validation_fraction / (1.0 - schedule.validation_fraction - schedule.test_fraction))))


def _teacher_samples(teacher_path) -> list:
    """The teacher's training and validation samples, from its ``record.json`` beside the model when there is one."""
    record_path = _model_file(teacher_path).parent / "record.json"
    if not record_path.is_file():
        return []
    data = json.loads(record_path.read_text()).get("data") or {}
    return [s for s in [*(data.get("samples") or []), *(data.get("validation_samples") or [])] if s.get("scenario") is not None]


QUANTIZERS = ("qkeras", "hgq2")


def _check_quantizer(quantizer, beta, architecture, nbits, init_bits, target_ebops=None):
    """The regulariser weight of an HGQ2 training (HGQ2's default when None); refuses what HGQ2 cannot train."""
    if quantizer not in QUANTIZERS:
        msg = f"unknown quantizer {quantizer!r}; choose one of {', '.join(QUANTIZERS)}"
        raise ConfigError(msg)
    if quantizer == "qkeras":
        if beta is not None or init_bits is not None or target_ebops is not None:
            msg = "--beta, --init-bits and --target-ebops set HGQ2's regulariser and starting widths: they need --quantizer hgq2"
            raise ConfigError(msg)
        return None
    if nbits is not None:
        msg = "--quantizer hgq2 learns a width per weight and activation: drop --nbits (use --beta for the cost)"
        raise ConfigError(msg)
    if architecture not in STUDENT_WIDTHS:
        msg = f"--quantizer hgq2 trains the students ({', '.join(STUDENT_WIDTHS)}), not {architecture!r}"
        raise ConfigError(msg)
    from .hgq2_student import DEFAULT_BETA, check_beta, check_init_bits, check_target_ebops

    check_init_bits(init_bits)
    check_target_ebops(target_ebops)
    return check_beta(DEFAULT_BETA if beta is None else beta)


def _train_hgq2(architecture, beta, init_bits, target_ebops, fit_data, validation_data, schedule, teacher, gammas, soft_weight, init_from, verbose):
    """Build, initialise and train the HGQ2 student; returns it, the start's sha256, the history and its widths."""
    from . import hgq2_student as h

    rows, n_outputs = fit_data[0].shape[1], fit_data[1].shape[1]
    model = h.build_hgq2_student(beta, n_outputs=n_outputs, rows=rows, width=architecture, init_bits=init_bits)
    init_sha = None
    if init_from is not None:
        h.initialise_from_float(model, load_model(init_from), init_from)
        init_sha = file_sha256(_model_file(init_from))
    trainer = h.HintDistiller(model, teacher, gammas, soft_weight) if teacher is not None else model
    h.compile_student(trainer, schedule.learning_rate)
    label = f"{model.name} (HGQ2, beta {beta:g}" + (f", steered to {target_ebops:g} EBOPs)" if target_ebops else ")")
    label += " with distillation" if teacher is not None else ""
    history = h.fit(trainer, model, beta, fit_data, validation_data, schedule, verbose, label, target_ebops)
    ebops = h.finish(model, fit_data[0])
    return model, init_sha, history, {"ebops": ebops, "layers": h.bit_widths(model), "range_trace": "trace_minmax on the training images"}


def _is_keras3(model) -> bool:
    return type(model).__module__.split(".", 1)[0] == "keras"


def _saved_name(model) -> str:
    from .hgq2_student import MODEL_FILE

    return MODEL_FILE if _is_keras3(model) else "model.h5"


def _parameters(model) -> int:
    """Trainable kernel and bias elements (HGQ2's width variables not counted, so the students compare)."""
    if not _is_keras3(model):
        return int(model.count_params())
    return int(sum(np.prod(layer._kernel.shape) + np.prod(layer.bias.shape) for layer in model.layers if hasattr(layer, "kq")))


def _keras3_versions(quantizer) -> dict:
    if quantizer != "hgq2":
        return {}
    from .hgq2_student import keras3_versions

    return keras3_versions()


def _model_file(path) -> Path:
    path = Path(path)
    return path / "model.h5" if path.is_dir() else path


def _write(output_dir: Path, model, trained_teacher, record) -> None:
    with atomic_path(output_dir, directory=True, parents=True) as tmp:
        tmp.mkdir()
        model.save(tmp / _saved_name(model))
        if trained_teacher is not None:
            (tmp / "teacher").mkdir()
            trained_teacher.save(tmp / "teacher" / "model.h5")
        (tmp / "record.json").write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
