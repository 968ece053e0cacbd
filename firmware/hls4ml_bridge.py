"""The hls4ml bridge: a Keras/QKeras model -> hls4ml project + ``spec.json``, and C-simulation access.

The spec is read off the hls4ml ``ModelGraph`` after all of hls4ml's passes, so it holds the
types the HLS templates use and the weights as the generated code holds them: mantissas of
the values in ``firmware/weights/*.txt`` (what the C-simulation loads; the synthesis headers
carry the same literals) cast into their weight types as ``ap_fixed(double)`` does.

hls4ml 1.3.0 would pick its Keras-3 parser because the installed ``keras`` is 3.x; our
models are tf-keras, so we call its Keras-2 parser directly (docs/design.md, "Known facts").
Keras 3 models (HGQ2) take the Keras-3 parser through their own front end
(:mod:`l0emu.firmware.frontend_keras3`), which registers itself in :data:`FRONT_ENDS`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np

from l0emu.fixedpoint.aptypes import KERNEL_MAX_WIDTH, parse_type
from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError, InputFileError, L0emuError, SpecError, did_you_mean
from l0emu.fixedpoint._codegen import generate
from l0emu.fixedpoint.casts import float_to_mantissa
from l0emu.fixedpoint.emulator import check_stream_pools
from l0emu.fixedpoint.spec import FORMAT, SOFTMAX_IMPLEMENTATIONS, STRATEGIES, output_layout, read_spec, validate_spec, write_spec

from .keras_env import hls4ml_module, keras, numpy_product_alias, qkeras
from .template_fields import check_layer_settings

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SETTINGS",
    "FRONT_ENDS",
    "FrontEnd",
    "KERAS_MODEL_FILE",
    "SPEC_FILE",
    "SUPPORTED_KERAS_LAYERS",
    "apply_layer_settings",
    "build_hls_model",
    "conversion_settings",
    "compile_model",
    "convert",
    "csim_output_layers",
    "csim_predict",
    "csim_raw",
    "csim_trace",
    "extract_spec",
    "front_end_for",
    "from_channels_first",
    "hls4ml_call",
    "load_converted",
    "load_keras_model",
    "project_config",
    "project_front_end",
    "project_keys",
    "read_convert_config",
    "refuse_bit_exact",
    "to_channels_first",
]

KERAS_MODEL_FILE = "keras_model.h5"
TRAINING_RECORD_FILE = "record.json"  # written by `l0emu train` beside model.h5
CONFIG_FILE = "l0emu_convert.json"
SPEC_FILE = "spec.json"
PROJECT_RECORD_FILE = "training_record.json"  # the model's TRAINING_RECORD_FILE, copied into the project

DEFAULT_SETTINGS = {
    "backend": "Vitis",
    "part": "xcvu13p-fhga2104-2L-e",
    "clock_period": 2,
    "io_type": "io_parallel",
    "project_name": "myproject",
    "reuse_factor": 1,
    "strategy": "Latency",
    "default_precision": "ap_fixed<16,6>",
    "layers": {},
    "outputs": None,
    "preprocessing": None,
    "bit_exact": None,  # Keras 3 models: hls4ml's type inference from HGQ2's quantizers (None: on where the model has them)
}
_IO_TYPES = ("io_parallel", "io_stream")
_STRATEGIES = ("Latency", "Resource")
# per-layer override keys -> hls4ml's per-layer config keys
_LAYER_KEYS = {"precision": "Precision", "reuse_factor": "ReuseFactor", "strategy": "Strategy", "table_size": "TableSize",
               "implementation": "Implementation"}  # fmt: skip

# Keras layer classes whose hls4ml implementation the emulator reproduces.
SUPPORTED_KERAS_LAYERS = (
    "InputLayer",
    "Conv2D",
    "QConv2D",
    "QConv2DBatchnorm",
    "Dense",
    "QDense",
    "Activation",
    "QActivation",
    "ReLU",
    "Flatten",
    "MaxPooling2D",
    "AveragePooling2D",
    "ZeroPadding2D",
    "LeakyReLU",
    "BatchNormalization",
    "QBatchNormalization",
    "Dropout",
    "Conv1D",
    "QConv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "ZeroPadding1D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Reshape",
    "UpSampling1D",
    "UpSampling2D",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
)
_ACTIVATIONS = {"relu": "relu", "linear": "linear", "sigmoid": "sigmoid", "tanh": "tanh"}
_LEAKY = ("leakyrelu", "leaky_relu")  # Keras LeakyReLU, QKeras quantized_relu(negative_slope)
# activations hls4ml computes from a lookup table (nnet_activation.h): the C++ function that fills it
_TABLE_INITS = {"sigmoid": "init_sigmoid_table", "tanh": "init_tanh_table"}
# layer names hls4ml cannot take (it calls the graph's input edge "input")
_RESERVED_NAMES = ("input",)


# ---------------------------------------------------------------- loading and settings


def load_keras_model(path):
    """Load a Keras/QKeras model from an ``.h5`` file or a SavedModel directory."""
    path = Path(path)
    if not path.exists():
        msg = f"model {str(path)!r} does not exist; pass a Keras .h5 file or a SavedModel directory"
        raise InputFileError(msg)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        msg = f"model {str(path)!r} is a directory without saved_model.pb, so not a SavedModel"
        raise InputFileError(msg)
    custom_objects = {}
    qkeras.utils._add_supported_quantized_objects(custom_objects)
    try:
        return keras.models.load_model(str(path), custom_objects=custom_objects, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        msg = f"cannot load a Keras model from {str(path)!r}: {err}"
        raise InputFileError(msg) from None


def read_convert_config(path) -> dict:
    """Read conversion settings from a JSON or YAML file; unknown keys are errors.

    Keys (all optional): io_type, part, clock_period, project_name, reuse_factor, strategy,
    default_precision, outputs (the spec's output list), preprocessing, and ``layers``:
    ``{layer name: {"precision": {"result"|"weight"|"bias"|"accum"|...: type},
    "reuse_factor": n, "strategy": "Latency"|"Resource", "table_size": n (sigmoid, tanh, softmax),
    "implementation": "stable"|"latency"|"argmax" (softmax)}}``, and for Keras 3 models ``bit_exact``
    (hls4ml's type inference from HGQ2's quantizers; default: on where the model has them).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"conversion config {str(path)!r} does not exist"
        raise ConfigError(msg)
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yml", ".yaml"):
            import yaml

            settings = yaml.safe_load(text) or {}
        else:
            settings = json.loads(text)
    except ValueError as err:  # json.JSONDecodeError and yaml.YAMLError both derive from it
        msg = f"conversion config {str(path)!r} cannot be parsed: {err}"
        raise ConfigError(msg) from None
    if not isinstance(settings, dict):
        msg = f"conversion config {str(path)!r}: expected a mapping of settings, got {type(settings).__name__}"
        raise ConfigError(msg)
    return settings


def conversion_settings(overrides, origin) -> dict:
    """``DEFAULT_SETTINGS`` with ``overrides`` applied, every key and value checked (``origin`` names the source)."""
    settings = json.loads(json.dumps(DEFAULT_SETTINGS))
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_SETTINGS:
            msg = f"{origin}: unknown setting {key!r}{did_you_mean(key, DEFAULT_SETTINGS)}"
            raise ConfigError(msg)
        settings[key] = value
    if settings["backend"] != DEFAULT_SETTINGS["backend"]:
        # the emulator follows the Vitis backend's templates (its Resource convolution, for one, differs from Vivado's)
        msg = f"{origin}: backend {settings['backend']!r} is not emulated; the emulator follows hls4ml's {DEFAULT_SETTINGS['backend']} templates"
        raise ConfigError(msg)
    if settings["io_type"] not in _IO_TYPES:
        msg = f"{origin}: io_type {settings['io_type']!r} is not one of {', '.join(_IO_TYPES)}"
        raise ConfigError(msg)
    if settings["strategy"] not in _STRATEGIES:
        msg = f"{origin}: strategy {settings['strategy']!r} is not one of {', '.join(_STRATEGIES)}"
        raise ConfigError(msg)
    if not isinstance(settings["reuse_factor"], int) or settings["reuse_factor"] < 1:
        msg = f"{origin}: reuse_factor must be a positive integer, got {settings['reuse_factor']!r}"
        raise ConfigError(msg)
    for name, layer in settings["layers"].items():
        for key in layer:
            if key not in _LAYER_KEYS:
                msg = f"{origin}: layers.{name}: unknown setting {key!r}{did_you_mean(key, _LAYER_KEYS)}"
                raise ConfigError(msg)
    return settings


def _record_beside(model_path: Path) -> Path:
    """Where ``l0emu train`` put the model's record: beside model.h5, or in a SavedModel directory."""
    return (model_path if model_path.is_dir() else model_path.parent) / TRAINING_RECORD_FILE


def _with_training_targets(settings, model_path) -> dict:
    """Fill ``outputs``/``preprocessing`` from the training record beside the model, if any.

    The physical meaning of the outputs (pT scale, eta frame) and the fragmentation stride
    are facts of training, recorded by `l0emu train`; the config may still override them.
    """
    record_path = _record_beside(model_path)
    if not record_path.is_file():
        return settings
    targets = json.loads(record_path.read_text()).get("targets", {})
    for key in ("outputs", "preprocessing"):
        if settings[key] is None and targets.get(key) is not None:
            settings[key] = targets[key]
    return settings


# ---------------------------------------------------------------- front ends


def hls4ml_call(what, function, *args, **kwargs):
    """``function(*args, **kwargs)`` of hls4ml's converters, quietly (its parsers print every layer
    they read; a conversion prints only its summary), its refusals as ConfigError about ``what``."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return function(*args, **kwargs)
    except Exception as err:  # hls4ml raises bare Exceptions for unsupported layers and attributes
        msg = f"hls4ml could not convert {what}: {type(err).__name__}: {err}"
        raise ConfigError(msg) from None


class FrontEnd:
    """How one kind of model enters l0emu: read from a file, copied into the project, and
    turned into an hls4ml ModelGraph. ``convert`` picks one by the model path
    (:func:`front_end_for`), records its ``name`` in the project, and
    :func:`load_converted` rebuilds the graph from ``model_file`` with the same one.
    """

    name = "keras2"
    model_file = KERAS_MODEL_FILE  # the model's copy inside a converted project
    description = "Keras 2 / QKeras: an .h5 file or a SavedModel directory"
    framework = "QKeras"  # the name `l0emu validate` gives the model's own outputs

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in (".h5", ".hdf5") or path.is_dir()

    def load(self, path):
        return load_keras_model(path)

    def save(self, model, path: Path):
        model.save(str(path))

    def build(self, model, settings, output_dir, origin):
        """``(hls_model, renamed)``: the ModelGraph and the layers renamed for hls4ml."""
        return build_hls_model(model, settings, output_dir, origin)

    def predict(self, model, x):
        """The framework's own outputs for ``x`` (one array, or one per input)."""
        return model.predict(x, batch_size=4096, verbose=0)


FRONT_ENDS = {front.name: front for front in (FrontEnd(),)}


def to_channels_first(x, shape) -> np.ndarray:
    """Inputs channels last as the spec's, ``(n, ..., C)``, as a channels-first framework takes
    them: float32 of shape ``(n, *shape)``, ``shape = (C, ...)`` without the batch dimension."""
    n, x = len(x), np.asarray(x, dtype=np.float32)
    if len(shape) > 1:
        x = np.moveaxis(x.reshape(n, *shape[1:], shape[0]), -1, 1)
    return np.ascontiguousarray(x.reshape(n, *shape))


def from_channels_first(y) -> np.ndarray:
    """A channels-first framework's outputs as the spec's: channels last (rank 3 or more), one
    row of float64 values per event."""
    y = np.asarray(y, dtype=np.float64)
    return (np.moveaxis(y, 1, -1) if y.ndim > 2 else y).reshape(len(y), -1)


def front_end_for(path) -> FrontEnd:
    """The front end that reads the model at ``path``; an error lists what each one takes."""
    path = Path(path)
    for front in FRONT_ENDS.values():
        if front.accepts(path):
            return front
    takes = "; ".join(front.description for front in FRONT_ENDS.values())
    msg = f"model {str(path)!r}: no front end reads a {path.suffix or 'suffix-less'} file; l0emu takes {takes}"
    raise InputFileError(msg)


def project_front_end(record: dict) -> FrontEnd:
    """The front end a converted project was made with (projects before front ends: Keras 2)."""
    return FRONT_ENDS[record.get("front_end", FrontEnd.name)]


# ---------------------------------------------------------------- conversion


def _check_supported(model):
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_KERAS_LAYERS:
            msg = (
                f"layer {layer.name!r} is a {kind}, which l0emu cannot emulate; "
                f"supported layer types: {', '.join(SUPPORTED_KERAS_LAYERS)}"
            )
            raise ConfigError(msg)
        if kind == "QActivation" and layer.get_config().get("activation") == "softmax":
            # hls4ml 1.3.0's QKeras parser raises a bare "Unsupported QKeras activation: unknown" here
            msg = f"layer {layer.name!r}: hls4ml cannot convert QActivation('softmax'); use a Keras Activation('softmax')"
            raise ConfigError(msg)


def _model_arch(model):
    """The model JSON as hls4ml's Keras-2 parser reads it, with reserved layer names renamed.

    hls4ml names the graph's input edge ``input``, so a layer of that name collides with it.
    Only weightless layers can carry that name in practice (the input layer); the weights
    are still read from the Keras model by their original names.
    """
    arch = json.loads(model.to_json())
    taken = {layer.name for layer in model.layers}
    renamed = {}
    for reserved in _RESERVED_NAMES:
        if reserved in taken:
            new, i = f"{reserved}_layer", 1
            while new in taken:
                new, i = f"{reserved}_layer_{i}", i + 1
            if model.get_layer(reserved).weights:
                msg = f"layer {reserved!r}: hls4ml reserves this name; rename the layer in the Keras model"
                raise ConfigError(msg)
            renamed[reserved] = new
    config = arch["config"]
    for layer in config["layers"]:
        layer["config"]["name"] = renamed.get(layer["config"]["name"], layer["config"]["name"])
        if "name" in layer:
            layer["name"] = layer["config"]["name"]
        for node in layer.get("inbound_nodes", []):
            for edge in node:
                edge[0] = renamed.get(edge[0], edge[0])
    for key in ("input_layers", "output_layers"):
        for edge in config.get(key, []):
            edge[0] = renamed.get(edge[0], edge[0])
    return arch, renamed


class _ArchWithLayers(dict):
    """A model-JSON dict that also answers ``get_layer``, as hls4ml's config helper needs."""

    def __init__(self, arch, model, renamed):
        super().__init__(arch)
        self._model = model
        self._original = {new: old for old, new in renamed.items()}

    def get_layer(self, name):
        return self._model.get_layer(self._original.get(name, name))


def _hls_config(hls4ml, arch_dict, settings, renamed, origin):
    config = hls4ml.utils.config_from_keras_model(
        arch_dict,
        granularity="name",
        backend=settings["backend"],
        default_precision=settings["default_precision"],
        default_reuse_factor=settings["reuse_factor"],
    )
    return apply_layer_settings(config, settings, renamed, origin)


def apply_layer_settings(config, settings, renamed, origin):
    """Write the settings' strategy and per-layer overrides (``layers``) into an hls4ml config from
    ``config_from_*_model(granularity="name")``; every front end's layer names go through here
    (``renamed``: names hls4ml knows under another name)."""
    config["Model"]["Strategy"] = settings["strategy"]
    names = config["LayerName"]
    for keras_name, layer in settings["layers"].items():
        name = renamed.get(keras_name, keras_name)
        if name not in names:
            msg = f"{origin}: layers.{keras_name}: no such layer in the model{did_you_mean(keras_name, names)}"
            raise ConfigError(msg)
        for key, value in layer.items():
            if key == "precision":
                names[name].setdefault("Precision", {})
                if isinstance(names[name]["Precision"], str):
                    names[name]["Precision"] = {"result": names[name]["Precision"]}
                names[name]["Precision"].update(value)
            else:
                names[name][_LAYER_KEYS[key]] = value
    return config


def refuse_bit_exact(settings, origin):
    """``bit_exact`` only means something to hls4ml's Keras-3 (HGQ2) path; elsewhere it would be ignored."""
    if settings["bit_exact"] is not None:
        msg = f"{origin}: bit_exact is a setting of Keras 3 (.keras) models; this front end takes its types from the config"
        raise ConfigError(msg)


def project_keys(settings: dict, output_dir) -> dict:
    """The project-wide keys of an hls4ml conversion, from checked :func:`conversion_settings`."""
    return {"output_dir": str(output_dir), **{key: settings[key] for key in ("project_name", "backend", "part", "clock_period", "io_type")}}


def project_config(settings: dict, output_dir) -> dict:
    """hls4ml's ``create_config`` of the project: what every front end's ModelGraph starts from."""
    hls4ml_module()
    from hls4ml.utils.config import create_config

    return create_config(**project_keys(settings, output_dir))


def build_hls_model(model, settings: dict, output_dir, origin="conversion settings"):
    """Convert ``model`` into an hls4ml ModelGraph (all passes applied; nothing written).

    Returns ``(hls_model, renamed)`` where ``renamed`` maps reserved Keras names to new ones.
    """
    settings = conversion_settings(settings, origin)
    refuse_bit_exact(settings, origin)
    _check_supported(model)
    hls4ml = hls4ml_module()
    arch, renamed = _model_arch(model)
    arch_dict = _ArchWithLayers(arch, model, renamed)
    config = project_config(settings, output_dir)
    config["HLSConfig"] = _hls_config(hls4ml, arch_dict, settings, renamed, origin)
    reader = hls4ml.converters.KerasModelReader(arch_dict)
    layer_list, inputs, outputs, _ = hls4ml.converters.parse_keras_model(arch, reader)
    try:
        hls_model = hls4ml.model.ModelGraph.from_layer_list(config, layer_list, inputs, outputs)
    except (ValueError, TypeError, KeyError, AssertionError, RuntimeError) as err:
        msg = f"hls4ml could not convert the model: {type(err).__name__}: {err}"
        raise ConfigError(msg) from None
    return hls_model, renamed


def _model_hash(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path)).encode() if path.is_dir() else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _write_project(hls_model, directory):
    hls_model.config.config["OutputDir"] = str(directory)
    with numpy_product_alias():  # hls4ml 1.3.0 writes auto_po2 weights with np.product
        hls_model.write()


def convert(model_path, out_dir, settings=None, *, name=None, compile=False, origin="conversion settings"):
    """Convert the model at ``model_path`` into an hls4ml project in ``out_dir`` with ``spec.json``.

    Writes the project, a copy of the Keras model (``keras_model.h5``) and the settings used
    (``l0emu_convert.json``) so :func:`load_converted` can rebuild the same ModelGraph, and a
    copy of the model's ``record.json`` (``l0emu train``'s) as ``training_record.json``, so that
    ``l0emu run`` finds which events the network was trained and chosen on. The model is named
    by file name and hash only: a project carries no paths of the machine it was made on.
    Returns ``(hls_model, spec)``.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    settings = _with_training_targets(conversion_settings(settings, origin), model_path)
    if not model_path.exists():
        msg = f"model {str(model_path)!r} does not exist"
        raise InputFileError(msg)
    front = front_end_for(model_path)
    model = front.load(model_path)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / CONFIG_FILE).is_file():
        msg = f"output directory {str(out_dir)!r} is not empty and holds no earlier conversion; refusing to overwrite it"
        raise ConfigError(msg)
    name = name or (model_path.parent.name if model_path.stem == "model" else model_path.stem)
    with atomic_path(out_dir, directory=True, parents=True, inputs=[model_path]) as tmp:
        tmp.mkdir()
        hls_model, renamed = front.build(model, settings, tmp, origin)
        _write_project(hls_model, tmp)
        source = {
            "model_file": model_path.name,
            "model_sha256": _model_hash(model_path),
            "hls4ml_version": hls4ml_module().__version__,
            "backend": settings["backend"],
            "part": settings["part"],
            "clock_period_ns": settings["clock_period"],
            "io_type": settings["io_type"],
            "project_name": settings["project_name"],
            "renamed_layers": renamed,
        }
        spec = extract_spec(hls_model, name, source, settings)
        generate(spec)  # the emulator's own refusals (po2 shifts that drop bits, ap_int from I < 0) come at convert
        write_spec(spec, tmp / SPEC_FILE)
        front.save(model, tmp / front.model_file)
        record = {"name": name, "front_end": front.name, "settings": settings, "source": source}
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=1) + "\n")
        if _record_beside(model_path).is_file():
            shutil.copyfile(_record_beside(model_path), tmp / PROJECT_RECORD_FILE)
    # the project's config and build script must name the final directory, not the temporary one
    _write_project(hls_model, out_dir)
    if compile:
        compile_model(hls_model)
    return hls_model, spec


def compile_model(hls_model):
    """Write and compile the C-simulation library (g++, about 10 s) and load it."""
    try:
        with numpy_product_alias():  # compile() writes the project first (auto_po2: np.product)
            hls_model.compile()
    except Exception as err:  # hls4ml raises a bare Exception when build_lib.sh fails
        msg = f"compiling the hls4ml project in {hls_model.config.get_output_dir()!r} failed: {err}"
        raise L0emuError(msg) from None


# ---------------------------------------------------------------- spec extraction


def _type(precision, where) -> str:
    hls4ml = hls4ml_module()
    types = hls4ml.model.types
    if isinstance(precision, (types.FixedPrecisionType, types.IntegerPrecisionType)) and not isinstance(
        precision, types.ExponentPrecisionType
    ):
        try:
            t = parse_type(str(precision))
        except SpecError as err:  # e.g. an accumulator hls4ml inferred wider than 64 bits
            msg = f"{where}: hls4ml chose type {precision}, which the emulator cannot hold ({err})"
            raise SpecError(msg) from None
        if t.width > KERNEL_MAX_WIDTH:
            msg = f"{where}: hls4ml chose type {t}, which the emulator cannot hold (its kernels compute up to {KERNEL_MAX_WIDTH} bits)"
            raise SpecError(msg)
        return str(t)
    if isinstance(precision, types.XnorPrecisionType):
        # binary weights of XNOR networks: uint<1> holds 0 for -1 and 1 for +1 (BinaryQuantizer(1))
        return str(parse_type("ap_uint<1>"))
    msg = f"{where}: hls4ml chose type {precision} ({type(precision).__name__}), which the spec cannot hold"
    raise SpecError(msg)


def _layer_type(layer, attr):
    return _type(layer.get_attr(attr).precision, f"layer {layer.name!r}, {attr}")


def _weight_text(layer, var):
    path = Path(layer.model.config.get_output_dir()) / "firmware" / "weights" / f"{var.name}.txt"
    if not path.is_file():
        msg = f"layer {layer.name!r}: weights file {str(path)!r} is missing; write the project first"
        raise SpecError(msg)
    return path.read_text().strip()


def _mantissas(layer, key):
    """Mantissas of a weight array as the C-simulation loads it (``ap_fixed(double)`` of the txt values)."""
    var = layer.weights[key]
    if isinstance(var.type.precision, hls4ml_module().model.types.ExponentPrecisionType):
        msg = f"layer {layer.name!r}: {key} has hls4ml's exponent (po2) type {var.type.precision}, which the emulator takes for kernels and ApplyAlpha scales only"
        raise SpecError(msg)
    values = np.array([float(token) for token in _weight_text(layer, var).split(",")], dtype=np.float64)
    values = values.reshape(var.data.shape)
    dst = parse_type(_type(var.type.precision, f"layer {layer.name!r}, {key}"))
    return float_to_mantissa(values, dst), str(dst)


_EXPONENT_PAIR = re.compile(r"\{\s*([-+0-9.eE]+)\s*,\s*([-+0-9]+)\s*\}")


def _exponent_scale(layer, key="scale"):
    """Exponent-typed weights (an ApplyAlpha scale of QKeras ``alpha='auto_po2'``, a
    ``quantized_po2`` kernel) as exact fixed mantissas.

    hls4ml stores ``{sign, exponent}`` pairs (sign 1 = positive) and multiplies by shifting
    (``product::weight_exponential``). Each value ``+-2**e`` is stored as a mantissa of the
    narrowest signed type that holds every exponent present: ``max(0, -min e)`` fractional
    bits and ``max(max e, 0) + 2`` integer bits (the type must stay within 64 bits even
    when the exponent's ``ap_int<W>`` range is wide). The returned width ``W`` of the
    exponent sets hls4ml's shift type.
    """
    var = layer.weights[key]
    pairs = [(float(sign), int(exp)) for sign, exp in _EXPONENT_PAIR.findall(_weight_text(layer, var))]
    if len(pairs) != var.data.size:
        msg = f"layer {layer.name!r}: read {len(pairs)} exponent scales from the weights file, expected {var.data.size}"
        raise SpecError(msg)
    exponents = [e for _, e in pairs]
    frac = max(0, -min(exponents))
    integer = max(max(exponents), 0) + 2
    dst = parse_type(f"ap_fixed<{integer + frac},{integer}>")
    mantissas = [(1 if sign == 1.0 else -1) * (1 << (e + frac)) for sign, e in pairs]
    return mantissas, str(dst), int(var.type.precision.width)  # hls4ml derives the width with numpy


def _product(layer):
    hls4ml = hls4ml_module()
    backend = hls4ml.backends.get_backend("vivado")
    weight_key = "scale" if "scale" in layer.weights else "weight"
    return backend.product_type(layer.get_input_variable().type.precision, layer.weights[weight_key].type.precision)


def _shapes(layer):
    shapes = {
        "input_shape": [int(d) for d in layer.get_input_variable().shape],
        "output_shape": [int(d) for d in layer.get_output_variable().shape],
    }
    for field, shape in shapes.items():
        if min(shape) < 1:  # seen after a Keras Reshape with a -1 dimension, which hls4ml 1.3.0 propagates unresolved
            msg = f"layer {layer.name!r}: hls4ml gives it the {field.replace('_', ' ')} {shape}, which is not a shape (a Reshape with -1 before it? give the dimension)"
            raise SpecError(msg)
    return shapes


def _strategy(layer) -> str:
    """The layer's strategy after hls4ml's passes: latency or resource, others refused by name."""
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if strategy not in STRATEGIES:
        why = {
            "distributed_arithmetic": "its adder graphs are built by da4ml with their own intermediate types",
            "resource_unrolled": "its kernel is generated code with its own order of additions",
            "compressed": "it computes from a sparse weight table in its own order",
        }.get(strategy, "hls4ml's code for it is not modelled")
        msg = f"layer {layer.name!r}: strategy {strategy!r} is not emulated ({why}); use Latency or Resource"
        raise SpecError(msg)
    return strategy


def _weighted(layer, keras_order_axes):
    strategy = _strategy(layer)
    exponents = isinstance(layer.weights["weight"].type.precision, hls4ml_module().model.types.ExponentPrecisionType)
    if exponents:  # quantized_po2 kernels: {sign, exponent} pairs in the weights file
        weights, weight_type, exponent_width = _exponent_scale(layer, "weight")
        weights = np.array(weights, dtype=np.int64).reshape(layer.weights["weight"].data.shape)
    else:
        weights, weight_type = _mantissas(layer, "weight")
    biases, bias_type = _mantissas(layer, "bias")
    if layer.get_attr("_weights_transposed", False):
        # the Resource strategy stored them transposed; the spec keeps Keras' order
        weights = np.transpose(weights, keras_order_axes)
    extra = {"weight_exponent_width": exponent_width} if exponents else {}
    return {
        "weight_type": weight_type,
        "bias_type": bias_type,
        "accum_type": _layer_type(layer, "accum_t"),
        "weights_shape": [int(d) for d in weights.shape],
        "weights": [int(v) for v in weights.reshape(-1)],
        "biases": [int(v) for v in biases.reshape(-1)],
        "product": _product(layer),
        **extra,
        "strategy": strategy,
        "reuse_factor": int(layer.get_attr("reuse_factor", 1)),
    }


def _ints(layer, *attrs):
    # hls4ml computes some attributes with numpy; the spec is JSON
    return [int(layer.get_attr(attr)) for attr in attrs]


def _pad(layer):
    return [int(layer.get_attr(f"pad_{side}", 0)) for side in ("top", "bottom", "left", "right")]


def _conv2d(layer):
    entry = {
        "op": "conv2d",
        "kernel": _ints(layer, "filt_height", "filt_width"),
        "strides": _ints(layer, "stride_height", "stride_width"),
        "padding": str(layer.get_attr("padding", "valid")),
        "pad": _pad(layer),
        "filters": int(layer.get_attr("n_filt")),
    }
    entry.update(_weighted(layer, (1, 2, 3, 0)))
    return entry


def _dense(layer):
    n_in, n_out = _ints(layer, "n_in", "n_out")
    entry = {"op": "dense", "n_in": n_in, "n_out": n_out}
    entry.update(_weighted(layer, (1, 0)))
    return entry


def _activation(layer):
    kind = str(layer.get_attr("activation")).lower()
    if kind in _LEAKY and layer.class_name in ("LeakyReLU", "ParametrizedActivation"):
        return _leaky_relu(layer)
    if kind == "softmax" and layer.class_name == "Softmax":
        return _softmax(layer)
    if (kind, layer.class_name) in _QUANTIZED_ACTIVATIONS:
        return _quantized_activation(layer, kind)
    if kind == "thresholdedrelu" and layer.class_name == "ParametrizedActivation":
        return _thresholded_relu(layer)
    if layer.class_name == "TernaryTanh":
        # hls4ml 1.3.0 has no function template for it: the C-simulation reads an array nothing wrote
        msg = (
            f"layer {layer.name!r}: a ternary activation with threshold 0.5 that no batch norm precedes becomes an "
            "hls4ml TernaryTanh layer, for which hls4ml 1.3.0 writes no code (its output is never computed); "
            "put a BatchNormalization before it or use another threshold"
        )
        raise SpecError(msg)
    # subclasses (Softmax, ParametrizedActivation, ...) carry other class names
    if kind not in _ACTIVATIONS or layer.class_name != "Activation":
        msg = (
            f"layer {layer.name!r}: activation {kind!r} ({layer.class_name}) cannot be emulated; "
            f"supported activations: {', '.join(_ACTIVATIONS)}, softmax, LeakyReLU / quantized_relu(negative_slope), "
            "binary_tanh, hard_sigmoid / hard_tanh (QKeras quantized_sigmoid / quantized_tanh)"
        )
        raise SpecError(msg)
    if kind in _TABLE_INITS:
        return _table_activation(layer, kind)
    return {"op": _ACTIVATIONS[kind]}


def _thresholded_relu(layer):
    """hls4ml 1.3.0's Keras-3 parser turns every Keras ``ReLU`` layer into ``thresholded_relu``
    (nnet_activation.h), threshold 0 included, with an unsigned ``param_t`` (``ap_ufixed<2,32>``).
    Its ``data > theta`` then compares a signed and an unsigned integer, and C's conversions can
    turn a negative value into a large unsigned one: on an HGQ2 network (``ap_fixed<17,5>`` into
    the comparison) negative values passed, and every event differed from Keras."""
    msg = (
        f"layer {layer.name!r}: hls4ml 1.3.0 writes a Keras 3 ReLU layer as thresholded_relu, whose "
        "comparison with its unsigned threshold type lets negative values through in the C-simulation; "
        "use the quantized layer's own activation (e.g. QDense(..., activation='relu')) instead"
    )
    raise SpecError(msg)


# (activation, hls4ml class) -> spec op, for QKeras' binary, ternary and hard activations
_QUANTIZED_ACTIVATIONS = {
    ("binary_tanh", "Activation"): "binary_tanh",
    ("hard_sigmoid", "HardActivation"): "hard_sigmoid",
    ("hard_tanh", "HardActivation"): "hard_tanh",
}


def _quantized_activation(layer, kind):
    """binary_tanh (nnet_activation.h) and the hard activations, whose ``slope``
    and ``shift`` are the literals the config template prints, converted into their types."""
    op = _QUANTIZED_ACTIVATIONS[(kind, layer.class_name)]
    if op == "binary_tanh":
        precision = layer.get_attr("result_t").precision
        hls_types = hls4ml_module().model.types
        if precision.width == 1 and not precision.signed and not isinstance(precision, hls_types.IntegerPrecisionType | hls_types.XnorPrecisionType):
            # binary_cast maps -1 to 0 only for the C++ type ap_uint<1>; a 1-bit ap_ufixed would wrap it to 1
            msg = f"layer {layer.name!r}: binary_tanh into the 1-bit fixed type {precision} is not supported; use ap_uint<1>"
            raise SpecError(msg)
    entry = {"op": op}
    if layer.class_name == "HardActivation":
        for field in ("slope", "shift"):
            kind_t = _layer_type(layer, f"{field}_t")
            value = float_to_mantissa(np.array([float(str(layer.get_attr(field)))]), parse_type(kind_t))
            entry.update({f"{field}_type": kind_t, field: int(value[0])})
    return entry


def _bn_quantized_tanh(layer):
    """hls4ml's BatchNormalizationQuantizedTanh: thresholds as the C-simulation loads them."""
    if layer.get_attr("quantize") == 2:
        threshold, kind = _mantissas(layer, "threshold")
        return {"op": "bn_binary_tanh", "threshold_type": kind, "threshold": [int(v) for v in threshold.reshape(-1)]}
    hi, kind = _mantissas(layer, "threshold_hi")
    lo, kind_lo = _mantissas(layer, "threshold_lo")
    if kind_lo != kind:
        msg = f"layer {layer.name!r}: threshold_hi ({kind}) and threshold_lo ({kind_lo}) have different types"
        raise SpecError(msg)
    entry = {"op": "bn_ternary_tanh", "threshold_type": kind}
    entry.update({"threshold_hi": [int(v) for v in hi.reshape(-1)], "threshold_lo": [int(v) for v in lo.reshape(-1)]})
    return entry


def _leaky_relu(layer):
    """LeakyReLU / quantized_relu(negative_slope): nnet::leaky_relu's ``alpha`` is the literal
    the config template prints (Python's str of activ_param), converted into param_t."""
    param_type = _layer_type(layer, "param_t")
    literal = float(str(layer.get_attr("activ_param")))
    param = float_to_mantissa(np.array([literal]), parse_type(param_type))
    return {"op": "leaky_relu", "param_type": param_type, "param": int(param[0])}


def _table_activation(layer, kind):
    """sigmoid / tanh: hls4ml's lookup table, filled by its own C++ (the project's headers)."""
    size = int(layer.get_attr("table_size", 1024))
    table_type = _layer_type(layer, "table_t")
    firmware = Path(layer.model.config.get_output_dir()) / "firmware"
    values = _lookup_table(str(firmware), kind, size, table_type)
    table = float_to_mantissa(np.array(values, dtype=np.float64), parse_type(table_type))
    return {"op": kind, "table_size": size, "table_type": table_type, "table": [int(v) for v in table]}


_TABLE_PROGRAM = """#include <cstdio>
#include "nnet_utils/nnet_activation.h"
struct table_config {{ typedef {table_type} table_t; static const unsigned table_size = {size}; }};
int main() {{
    static table_config::table_t table[{size}];
    nnet::{init}<table_config, {size}>(table);
    for (unsigned i = 0; i < {size}; i++) std::printf("%.17g\\n", table[i].to_double());
    return 0;
}}
"""
# (kind, size, type) -> values: one g++ run per table and process. Every project's
# nnet_activation.h is a copy of the installed hls4ml's template, so the path is not part of the key.
_TABLES = {}


def _lookup_table(firmware, kind, size, table_type):
    """The table nnet::init_<kind>_table fills, compiled with g++ and the flags of hls4ml's
    build_lib.sh (-O3, C++23 where the compiler has it), so libm computes it as in the C-simulation."""
    key = (kind, size, table_type)
    if key in _TABLES:
        return _TABLES[key]
    cpp_type = str(parse_type(table_type))
    program = _TABLE_PROGRAM.format(table_type=cpp_type, size=size, init=_TABLE_INITS[kind])
    values = _printed_values(firmware, program, f"{kind} table ({size} entries of {table_type})")
    if len(values) != size:
        msg = f"{kind} table: read {len(values)} values from hls4ml's initializer, expected {size}"
        raise SpecError(msg)
    _TABLES[key] = values
    return values


def _printed_values(firmware, program, what) -> list:
    """The numbers a C++ ``program`` on hls4ml's headers prints, compiled with g++ and the flags
    of hls4ml's build_lib.sh (-O3, C++23 where the compiler has it), so libm computes as in the
    C-simulation."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        source, binary = Path(tmp) / "table.cpp", Path(tmp) / "table"
        source.write_text(program)
        for std in ("-std=c++23", "-std=c++11"):
            command = ["g++", "-O3", "-fPIC", std, f"-I{firmware}/ap_types", f"-I{firmware}", str(source), "-o", str(binary)]
            built = subprocess.run(command, capture_output=True, text=True, check=False)
            if built.returncode == 0:
                break
        else:
            msg = f"{what}: g++ failed on hls4ml's nnet_activation.h: {built.stderr[-400:]}"
            raise L0emuError(msg)
        printed = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    return [float(v) for v in printed.split()]


_SOFTMAX_PROGRAM = """#include <cstdio>
#include "nnet_utils/nnet_activation.h"
struct softmax_config : nnet::activ_config {{
    static const unsigned exp_table_size = {exp_size};
    static const unsigned inv_table_size = {inv_size};
    static constexpr float exp_scale = {exp_scale};
    typedef {exp_table_t} exp_table_t;
    typedef {inv_table_t} inv_table_t;
    typedef {inv_inp_t} inv_inp_t;
}};
int main() {{
    static softmax_config::exp_table_t exp_table[{exp_size}];
    static softmax_config::inv_table_t inv_table[{inv_size}];
    nnet::init_exp_table<{exp_index_t}, softmax_config>(exp_table, {negative});
    nnet::init_invert_table<softmax_config::inv_inp_t, softmax_config>(inv_table);
    for (unsigned i = 0; i < {exp_size}; i++) std::printf("%.17g\\n", exp_table[i].to_double());
    for (unsigned i = 0; i < {inv_size}; i++) std::printf("%.17g\\n", inv_table[i].to_double());
    return 0;
}}
"""
# the typedefs of the softmax config struct hls4ml prints -> the spec's fields
_SOFTMAX_TYPES = {"exp_table_t": "exp_table_type", "inv_table_t": "inv_table_type", "accum_t": "accum_type",
                  "inv_inp_t": "inv_input_type", "inp_norm_t": "norm_type"}  # fmt: skip


def _softmax(layer):
    """nnet::softmax as the layer's config struct (the text hls4ml writes into parameters.h)
    sets it up: implementation, table sizes, exp_scale and types; the tables filled by
    hls4ml's own init_exp_table / init_invert_table."""
    config = str(layer.get_attr("config_cpp"))
    implementation = _config_value(layer, config, r"softmax_implementation::(\w+);")
    n_in = int(layer.get_attr("n_in"))
    stream_pack = getattr(layer.get_input_variable().type, "n_elem", n_in)
    if implementation not in SOFTMAX_IMPLEMENTATIONS or len(layer.get_input_variable().shape) != 1 or stream_pack != n_in:
        msg = (
            f"layer {layer.name!r}: softmax implementation {implementation!r} over input shape "
            f"{list(layer.get_input_variable().shape)} cannot be emulated; supported: implementation "
            f"{', '.join(SOFTMAX_IMPLEMENTATIONS)} over a 1-D input (e.g. after a Dense layer)"
        )
        raise SpecError(msg)
    if implementation == "argmax":
        return {"op": "softmax", "implementation": "argmax"}
    typedefs = dict((alias, text.strip()) for text, alias in re.findall(r"typedef ([^;]+) (\w+);", config))
    types = {field: _config_type(layer, typedefs[alias]) for alias, field in _SOFTMAX_TYPES.items()}
    sizes = {table: int(_config_value(layer, config, rf"{table}_table_size = (\d+);")) for table in ("exp", "inv")}
    stable = implementation == "stable"
    program = _SOFTMAX_PROGRAM.format(
        exp_size=sizes["exp"],
        inv_size=sizes["inv"],
        exp_scale=_config_value(layer, config, r"exp_scale = ([^;]+);"),
        exp_table_t=types["exp_table_type"],
        inv_table_t=types["inv_table_type"],
        inv_inp_t=types["inv_input_type"],
        exp_index_t=types["norm_type"] if stable else _type(layer.get_input_variable().type.precision, f"layer {layer.name!r}, input"),
        negative="true" if stable else "false",
    )
    firmware = Path(layer.model.config.get_output_dir()) / "firmware"
    values = _printed_values(str(firmware), program, f"layer {layer.name!r}: softmax tables")
    if len(values) != sizes["exp"] + sizes["inv"]:
        msg = f"layer {layer.name!r}: read {len(values)} softmax table values from hls4ml's initializers, expected {sizes['exp'] + sizes['inv']}"
        raise SpecError(msg)
    entry = {"op": "softmax", "implementation": implementation}
    for table, start, stop in (("exp", 0, sizes["exp"]), ("inv", sizes["exp"], len(values))):
        kind = parse_type(types[f"{table}_table_type"])
        entry[f"{table}_table_size"] = sizes[table]
        entry[f"{table}_table"] = [int(v) for v in float_to_mantissa(np.array(values[start:stop]), kind)]
    entry.update(types if stable else {k: v for k, v in types.items() if k != "norm_type"})
    return entry


def _config_value(layer, config, pattern) -> str:
    found = re.search(pattern, config)
    if not found:
        msg = f"layer {layer.name!r}: hls4ml's softmax config has no match for {pattern!r}:\n{config}"
        raise SpecError(msg)
    return found.group(1).strip()


def _config_type(layer, text) -> str:
    """A type the config struct names: an ap type literal, or one of the layer's named types."""
    if text.startswith("ap_"):
        return _type_text(text, f"layer {layer.name!r}")
    for value in layer.attributes.values():
        if getattr(value, "name", None) == text and hasattr(value, "precision"):
            return _type(value.precision, f"layer {layer.name!r}, {text}")
    msg = f"layer {layer.name!r}: the softmax config names type {text!r}, which the layer does not define"
    raise SpecError(msg)


def _type_text(text, where) -> str:
    try:
        return str(parse_type(text))
    except SpecError as err:
        msg = f"{where}: type {text!r}: {err}"
        raise SpecError(msg) from None


def _pooling(layer):
    op = {"Max": "max_pool2d", "Average": "avg_pool2d"}[layer.get_attr("pool_op")]
    entry = {
        "op": op,
        "pool": _ints(layer, "pool_height", "pool_width"),
        "strides": _ints(layer, "stride_height", "stride_width"),
        "padding": str(layer.get_attr("padding", "valid")),
        "pad": _pad(layer),
    }
    if op == "avg_pool2d":
        entry["accum_type"] = _layer_type(layer, "accum_t")
    return entry


def _scale(layer):
    hls4ml = hls4ml_module()
    bias, bias_type = _mantissas(layer, "bias")
    entry = {"op": "scale", "bias_type": bias_type, "bias": [int(v) for v in bias.reshape(-1)], "product": _product(layer)}
    if isinstance(layer.weights["scale"].type.precision, hls4ml.model.types.ExponentPrecisionType):
        scale, scale_type, exponent_width = _exponent_scale(layer)
        entry["scale_exponent_width"] = exponent_width
    else:
        scale, scale_type = _mantissas(layer, "scale")
        scale = [int(v) for v in scale.reshape(-1)]
    entry.update({"scale_type": scale_type, "scale": scale})
    return entry


def _zero_pad(layer):
    return {"op": "zero_pad2d", "pad": _pad(layer)}


def _flatten(layer):
    """hls4ml's Reshape (and io_stream's Repack): ``flatten`` into one dimension, else ``reshape``."""
    return {"op": "flatten" if len(layer.get_output_variable().shape) == 1 else "reshape"}


def _conv1d(layer):
    entry = {
        "op": "conv1d",
        "kernel": _ints(layer, "filt_width"),
        "strides": _ints(layer, "stride_width"),
        "padding": str(layer.get_attr("padding", "valid")),
        "pad": _ints(layer, "pad_left", "pad_right"),
        "filters": int(layer.get_attr("n_filt")),
    }
    entry.update(_weighted(layer, (1, 2, 0)))
    return entry


def _pooling1d(layer):
    op = {"Max": "max_pool1d", "Average": "avg_pool1d"}[layer.get_attr("pool_op")]
    entry = {
        "op": op,
        "pool": _ints(layer, "pool_width"),
        "strides": _ints(layer, "stride_width"),
        "padding": str(layer.get_attr("padding", "valid")),
        "pad": _ints(layer, "pad_left", "pad_right"),
    }
    if op == "avg_pool1d":
        entry["accum_type"] = _layer_type(layer, "accum_t")
    return entry


def _global_pooling(layer, rank):
    kind = {"Max": "max", "Average": "avg"}[layer.get_attr("pool_op")]
    entry = {"op": f"global_{kind}_pool{rank}d"}
    if kind == "avg":
        entry["accum_type"] = _layer_type(layer, "accum_t")
    return entry


def _zero_pad1d(layer):
    return {"op": "zero_pad1d", "pad": _ints(layer, "pad_left", "pad_right")}


def _resize(layer):
    """UpSampling1D / 2D: hls4ml's Resize with nearest-neighbour interpolation."""
    algorithm = layer.get_attr("algorithm", "nearest")
    if algorithm != "nearest" or layer.get_attr("align_corners", False):
        msg = f"layer {layer.name!r}: upsampling with interpolation {algorithm!r} (align_corners {layer.get_attr('align_corners', False)}) is not supported; use 'nearest'"
        raise SpecError(msg)
    shape_in, shape_out = layer.get_input_variable().shape, layer.get_output_variable().shape
    if any(o % i for i, o in zip(shape_in[:-1], shape_out[:-1])):
        msg = f"layer {layer.name!r}: upsampling {list(shape_in)} to {list(shape_out)} is not by whole factors"
        raise SpecError(msg)
    return {"op": f"upsample{len(shape_in) - 1}d", "size": [int(o) // int(i) for i, o in zip(shape_in[:-1], shape_out[:-1])]}


_MERGES = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def _merge(layer):
    """Keras merges of two tensors (nnet_merge.h); a Concatenate's axis counted within one event."""
    if isinstance(layer, hls4ml_module().model.layers.Concatenate):
        rank = len(layer.get_input_variable(layer.inputs[0]).shape)
        axis = int(layer.get_attr("axis"))
        normalized = axis - 1 if axis > 0 else rank + axis
        if not 0 <= normalized < rank:
            msg = f"layer {layer.name!r}: concatenation axis {axis} is not an axis of the {rank}-D inputs"
            raise SpecError(msg)
        return {"op": "concatenate", "axis": normalized}
    op = str(layer.get_attr("op", "")).lower()
    if op not in _MERGES or isinstance(layer, hls4ml_module().model.layers.Dot):
        msg = f"layer {layer.name!r}: merge {op or type(layer).__name__!r} is not supported; supported: {', '.join(_MERGES)}, concatenate"
        raise SpecError(msg)
    shapes = [list(layer.get_input_variable(name).shape) for name in layer.inputs]
    if shapes[0] != shapes[1]:
        msg = f"layer {layer.name!r}: {op} of shapes {shapes[0]} and {shapes[1]} broadcasts, which is not supported"
        raise SpecError(msg)
    return {"op": op}


def _fpga_layers():
    hls4ml_module()
    from hls4ml.backends.fpga import fpga_layers

    return fpga_layers


def _repack():
    hls4ml_module()
    from hls4ml.backends.fpga.passes.repack_stream import Repack

    return Repack


def _input_type(layer):
    return _type(layer.get_input_variable().type.precision, f"layer {layer.name!r}, input")


def _fixed_point_quantizer():
    hls4ml_module()
    from hls4ml.model.optimizer.passes.hgq_proxy_model import FixedPointQuantizer  # importable once hls4ml_module() ran

    return FixedPointQuantizer


def _quantize(layer):
    """hls4ml's FixedPointQuantizer (HGQ2's quantizers; generate_mask_fn writes one cast per
    element, ``ap_fixed<B, I, AP_<RND>, AP_<SAT>>(inp[j])``, or 0 where B = 0): its mask
    ``(k, B, I)``, broadcast over the input as hls4ml does, as the spec's k, i, f bits."""
    shape = tuple(int(d) for d in layer.get_input_variable().shape)
    k, width, integer = (np.broadcast_to(np.asarray(a)[0], shape).astype(np.int64).ravel() for a in layer.mask_kbi)
    return {
        "op": "quantize",
        "element_types": {
            "k": [int(v) for v in k],
            "i": [int(v) for v in integer - k],
            "f": [int(v) for v in width - integer],
            "rounding": str(layer.RND),
            "overflow": str(layer.SAT),
        },
    }


def _layer_entry(layer):
    hls_layers = hls4ml_module().model.layers
    handlers = (
        (hls_layers.Conv2D, _conv2d),
        (hls_layers.Dense, _dense),
        (hls_layers.Activation, _activation),
        (hls_layers.Pooling2D, _pooling),
        (hls_layers.BatchNormalization, _scale),
        (hls_layers.ZeroPadding2D, _zero_pad),
        (hls_layers.Reshape, _flatten),
        (_repack(), _flatten),
        (hls_layers.Conv1D, _conv1d),
        (hls_layers.Pooling1D, _pooling1d),
        (hls_layers.GlobalPooling1D, lambda layer: _global_pooling(layer, 1)),
        (hls_layers.GlobalPooling2D, lambda layer: _global_pooling(layer, 2)),
        (hls_layers.ZeroPadding1D, _zero_pad1d),
        (hls_layers.Resize, _resize),
        (hls_layers.Merge, _merge),
        (_fpga_layers().BatchNormalizationQuantizedTanh, _bn_quantized_tanh),
        (_fixed_point_quantizer(), _quantize),
    )
    for kind, handler in handlers:
        if isinstance(layer, kind):
            check_layer_settings(layer)
            entry = {"name": layer.name}
            entry.update(handler(layer))
            entry.update(_shapes(layer))
            entry["result_type"] = _layer_type(layer, "result_t")
            if entry["op"] in ("flatten", "upsample1d", "upsample2d") and entry["result_type"] != _input_type(layer):
                msg = f"layer {layer.name!r}: hls4ml's {type(layer).__name__} into type {entry['result_type']} casts its input ({_input_type(layer)}), which l0emu does not emulate"
                raise SpecError(msg)
            return entry
    supported = ", ".join(kind.__name__ for kind, _ in handlers)
    msg = f"hls4ml layer {layer.name!r} is a {type(layer).__name__}, which l0emu cannot emulate; supported: {supported}"
    raise SpecError(msg)


def _default_outputs(n_out):
    return [{"name": f"y{i}", "index": i, "scale": 1.0, "offset": 0.0, "unit": "network"} for i in range(n_out)]


def _graph(hls_model):
    """The graph as the spec holds it: ``(layers, sources, heads)``.

    ``layers``: hls4ml's layers in its order without the Input and io_stream's Clone layers
    (a Clone copies a stream it feeds to several layers, value for value when its type is
    its input's); ``sources``: the names of the layers (or inputs) each layer reads, two for
    a merge; ``heads``: the layers behind ``hls_model.outputs``, in that order.
    """
    hls_layers = hls4ml_module().model.layers
    from hls4ml.backends.fpga.passes.clone import Clone  # importable once hls4ml_module() set it up
    producer, layers, sources = {}, [], {}  # producer: hls4ml tensor name -> spec layer (or input) name
    for layer in hls_model.get_layers():
        if isinstance(layer, hls_layers.Input):
            producer[layer.outputs[0]] = layer.name
            continue
        arity = 2 if isinstance(layer, hls_layers.Merge) else 1
        if len(layer.inputs) != arity:
            msg = f"layer {layer.name!r} reads {len(layer.inputs)} tensors ({', '.join(layer.inputs)}); the emulator runs a {type(layer).__name__} on {arity}"
            raise SpecError(msg)
        source = producer[layer.inputs[0]]
        if isinstance(layer, Clone):
            if _layer_type(layer, "result_t") != _type(layer.get_input_variable().type.precision, f"layer {layer.name!r}, input"):
                msg = f"layer {layer.name!r}: hls4ml's io_stream copy of {source!r} casts it into another type, which l0emu does not emulate"
                raise SpecError(msg)
            producer.update((out, source) for out in layer.outputs)
            continue
        producer.update((out, layer.name) for out in layer.outputs)
        layers.append(layer)
        sources[layer.name] = [producer[name] for name in layer.inputs]
    return layers, sources, [producer[out] for out in hls_model.outputs]


def _outputs(settings_outputs, heads, entries) -> list:
    """The spec's outputs: those of the settings, each reading one of the model's output
    layers; by default every output value, ``y0..`` for one output layer (as a chain spec
    always had) and ``<layer>`` or ``<layer>_<i>`` with its ``layer`` for several."""
    sizes = {entry["name"]: int(np.prod(entry["output_shape"])) for entry in entries}
    if not settings_outputs and len(heads) == 1:
        return _default_outputs(sizes[heads[0]])
    if not settings_outputs:
        return [
            {"name": head if sizes[head] == 1 else f"{head}_{i}", "layer": head, "index": i, "scale": 1.0, "offset": 0.0, "unit": "network"}
            for head in heads
            for i in range(sizes[head])
        ]  # fmt: skip
    for out in settings_outputs:
        if len(heads) > 1 and "layer" not in out:
            msg = f"output {out.get('name')!r} names no 'layer'; the model has {len(heads)} output layers ({', '.join(heads)}): give each output its layer"
            raise SpecError(msg)
        layer = out.get("layer", entries[-1]["name"])
        if layer not in heads:
            msg = f"output {out.get('name')!r} reads layer {layer!r}, which is not an output of the model (outputs: {', '.join(heads)}){did_you_mean(layer, heads)}"
            raise SpecError(msg)
    return settings_outputs


def extract_spec(hls_model, name, source, settings=None) -> dict:
    """The spec of a written hls4ml ModelGraph (types and weights as its HLS code holds them)."""
    settings = settings or DEFAULT_SETTINGS
    hls_layers = hls4ml_module().model.layers
    layers = list(hls_model.get_layers())
    inputs = [hls_model.graph[name] for name in hls_model.inputs]  # in the model's input order
    kept, sources, heads = _graph(hls_model)
    entries, previous = [], inputs[0].name
    for layer in kept:
        entry = _layer_entry(layer)
        if sources[layer.name] != [previous]:  # a branch or a merge: name what it reads (absent: the layer before)
            entry = {"name": entry["name"], "op": entry["op"], "inputs": sources[layer.name], **entry}
        entries.append(entry)
        previous = layer.name
    spec = {
        "format": FORMAT,
        "name": name,
        "source": source,
        "inputs": [
            {"name": inp.name, "shape": [int(d) for d in inp.get_output_variable().shape], "type": _layer_type(inp, "result_t")}
            for inp in inputs
        ],
        "layers": entries,
        "outputs": _outputs(settings["outputs"], heads, entries),
    }
    if settings["preprocessing"]:
        spec["preprocessing"] = settings["preprocessing"]
    check_stream_pools(validate_spec(spec, origin=f"spec of {name!r}"))  # refused at convert, not only when emulated
    return spec


# ---------------------------------------------------------------- C-simulation


def _as_batch(hls_model, x):
    """``x`` as hls4ml's predict takes it: one array of samples, or a list of one per input
    (``x`` a list or tuple of arrays in the model's input order)."""
    shapes = [tuple(v.shape) for v in hls_model.get_input_variables()]
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(shapes):
        msg = f"the network takes {len(shapes)} inputs {[list(s) for s in shapes]}, got {len(arrays)} arrays"
        raise ConfigError(msg)
    batches = []
    for array, shape in zip(arrays, shapes):
        array = np.ascontiguousarray(array, dtype=np.float64)
        if array.size % int(np.prod(shape)):
            msg = f"input of shape {array.shape} does not hold whole samples of the network's input shape {list(shape)}"
            raise ConfigError(msg)
        batches.append(array.reshape((-1, *shape)))
    return batches[0] if len(batches) == 1 else batches


def _n_samples(batch) -> int:
    return len(batch[0] if isinstance(batch, list) else batch)


def csim_output_layers(hls_model) -> list:
    """Names of the spec layers behind the model's outputs, in hls4ml's (and Keras') order."""
    return _graph(hls_model)[2]


def _csim_heads(hls_model, x) -> dict:
    """C-simulation outputs (float64, (n, size)) by output layer name, in hls4ml's order."""
    batch = _as_batch(hls_model, x)
    y = hls_model.predict(batch)  # one array, or a list of one per output
    heads = csim_output_layers(hls_model)
    values = y if len(heads) > 1 else [y]
    return {head: np.asarray(v, dtype=np.float64).reshape(_n_samples(batch), -1) for head, v in zip(heads, values)}


def csim_predict(hls_model, x) -> np.ndarray:
    """Outputs of the C-simulation (float64, shape (n, n_out)), several output layers' side by
    side in hls4ml's order; doubles, so exact for <=53-bit types."""
    return np.concatenate(list(_csim_heads(hls_model, x).values()), axis=1)


def csim_raw(hls_model, x, spec) -> np.ndarray:
    """Mantissas (int64) of the C-simulation outputs, in the columns of the emulator's
    ``predict_raw`` (:func:`l0emu.fixedpoint.spec.output_layout`), each output layer in its result type."""
    values = _csim_heads(hls_model, x)
    types = {layer["name"]: parse_type(layer["result_type"]) for layer in spec["layers"]}
    parts = []
    for head, _, _ in output_layout(spec)[0]:
        if head not in values:
            msg = f"spec output layer {head!r} is not an output of the C-simulation ({', '.join(values)}); spec and project disagree"
            raise SpecError(msg)
        scaled = np.ldexp(values[head], types[head].frac)
        raw = np.rint(scaled)
        if not np.array_equal(raw, scaled):
            msg = f"C-simulation outputs of {head!r} are not multiples of its type's lsb ({types[head]}); spec and project disagree"
            raise SpecError(msg)
        parts.append(raw.astype(np.int64))
    return np.concatenate(parts, axis=1)


def csim_trace(hls_model, x) -> dict:
    """hls4ml's trace: every layer's output per sample, keyed by hls4ml layer name (recompiles)."""
    batch = _as_batch(hls_model, x)
    for layer in hls_model.get_layers():
        layer.set_attr("trace", True)
    with numpy_product_alias():  # trace() rewrites the project (auto_po2: np.product)
        _, trace = hls_model.trace(batch)
    return {name: np.asarray(values, dtype=np.float64).reshape(_n_samples(batch), *values.shape[1:]) for name, values in trace.items()}


# ---------------------------------------------------------------- reloading


def _existing_library(hls_model):
    """The compiled library of the project as last written, if it was compiled after that write."""
    import yaml

    directory = Path(hls_model.config.get_output_dir())
    config_path = directory / "hls4ml_config.yml"
    if not config_path.is_file():
        return None

    class TagBlindLoader(yaml.SafeLoader):
        """hls4ml writes a Keras 3 model's entry as ``!keras_model PATH``; only ``Stamp`` is read here."""

    TagBlindLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    stamp = yaml.load(config_path.read_text(), Loader=TagBlindLoader).get("Stamp")  # noqa: S506 (a SafeLoader)
    library = directory / "firmware" / f"{hls_model.config.get_project_name()}-{stamp}.so"
    return (stamp, library) if library.is_file() else None


def _format2(spec) -> dict:
    """A format-1 spec (one ``input``) as format 2 writes it (``inputs``), to compare with a rebuilt one."""
    if "inputs" in spec:
        return spec
    top = {key: value for key, value in spec.items() if key != "input"}
    return {**top, "format": FORMAT, "inputs": [spec["input"]]} if "name" in spec["input"] else spec


def load_converted(directory, *, compile=True):
    """Rebuild the hls4ml ModelGraph of a converted project; return ``(hls_model, spec)``.

    The rebuilt spec must equal ``spec.json``. With ``compile``, the project's existing
    C-simulation library is loaded when present; otherwise the project is compiled.
    """
    directory = Path(directory)
    record_path = directory / CONFIG_FILE
    if not record_path.is_file():
        msg = f"{str(directory)!r} holds no {CONFIG_FILE}; it was not written by 'l0emu convert'"
        raise InputFileError(msg)
    record = json.loads(record_path.read_text())
    saved = read_spec(directory / SPEC_FILE)
    front = project_front_end(record)
    model = front.load(directory / front.model_file)
    hls_model, _ = front.build(model, record["settings"], directory, str(record_path))
    spec = extract_spec(hls_model, record["name"], record["source"], record["settings"])
    if spec != _format2(saved):
        msg = f"{str(directory / SPEC_FILE)!r} differs from what hls4ml builds now from {front.model_file}; re-run 'l0emu convert'"
        raise SpecError(msg)
    if compile:
        existing = _existing_library(hls_model)
        if existing:
            hls_model.config.config["Stamp"] = existing[0]
            hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(existing[1]))
        else:
            compile_model(hls_model)
    return hls_model, spec


# front ends in their own modules register themselves in FRONT_ENDS when imported; importing them
# here (after every name they build on exists) puts them in the registry whoever imports first.
# They import their frameworks (Keras 3, ONNX, torch) lazily.
from . import frontend_keras3, frontend_onnx, frontend_torch  # noqa: E402, F401
