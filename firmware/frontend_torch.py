"""The PyTorch front end: a ``torch.nn.Module`` and its input shape, through hls4ml's PyTorch parser.

A module enters as a file l0emu writes (:func:`save_torch_model`): the module traced by
``torch.fx`` (a ``GraphModule``: generated forward code plus standard ``torch.nn`` leaf modules,
so it loads without the user's class definitions) and its input shape, channels first as PyTorch
takes it, without the batch dimension. The project keeps that file, and hls4ml traces the same
``GraphModule`` again when the project is rebuilt (docs/design.md, "Front ends").

hls4ml's channels-last conversion is ``internal``: the network's input is channels last, as
the spec and the emulator hold every tensor (hls4ml's ``full`` conversion would add a transpose
layer at the input). Unquantized, every type is ``default_precision`` (``ap_fixed<16,6>``) where
hls4ml's config asks for one; the ``--config`` file's ``layers`` name hls4ml's layer names (the
traced module's node names). ``torch`` is imported only here, when a model is read or built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from l0emu.errors import ConfigError, InputFileError

from .hls4ml_bridge import (
    FRONT_ENDS,
    FrontEnd,
    apply_layer_settings,
    conversion_settings,
    convert,
    from_channels_first,
    hls4ml_call,
    project_config,
    refuse_bit_exact,
    to_channels_first,
)
from .keras_env import hls4ml_module

__all__ = ["TORCH_MODEL_FILE", "TorchFrontEnd", "TorchModel", "build_torch_model", "convert_module", "load_torch_model", "save_torch_model"]

TORCH_MODEL_FILE = "torch_model.pt"
_WHAT = "the PyTorch module"


class TorchModel:
    """A traced module and its input shape (channels first, no batch dimension)."""

    def __init__(self, module, input_shape):
        self.module = module
        self.input_shape = [int(d) for d in input_shape]


def _traced(module, input_shape):
    """``module`` as the ``GraphModule`` hls4ml's tracer makes of it (its leaf modules kept)."""
    import torch

    from hls4ml.utils.torch import CustomFXTracer

    if not isinstance(module, torch.nn.Module):
        msg = f"expected a torch.nn.Module, got {type(module).__name__}"
        raise ConfigError(msg)
    if not input_shape or any(int(d) < 1 for d in input_shape):
        msg = f"input_shape {input_shape!r}: give the module's input shape without the batch dimension, channels first, e.g. (1, 9, 16)"
        raise ConfigError(msg)
    hls4ml_module()  # sets up TensorFlow's environment before hls4ml's imports
    try:
        graph = CustomFXTracer().trace(module.eval())
    except (TypeError, NotImplementedError, RuntimeError) as err:  # torch.fx's refusals of data-dependent control flow
        msg = f"torch.fx cannot trace {type(module).__name__}: {err}"
        raise ConfigError(msg) from None
    return torch.fx.GraphModule(module, graph, class_name=type(module).__name__)


def save_torch_model(module, input_shape, path) -> Path:
    """Write ``module`` (traced) and its input shape to ``path``, the file the PyTorch front end reads."""
    path = Path(path)
    _write(TorchModel(_traced(module, input_shape), input_shape), path)
    return path


def _write(model: TorchModel, path: Path):
    import torch

    torch.save({"l0emu_torch_model": 1, "module": model.module, "input_shape": model.input_shape}, path)


def load_torch_model(path) -> TorchModel:
    """The traced module and input shape in a file :func:`save_torch_model` wrote."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        msg = f"model {str(path)!r} does not exist or is not a file"
        raise InputFileError(msg)
    try:
        # a pickle: the GraphModule's code runs when it loads, so only files l0emu wrote are read
        saved = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as err:
        msg = f"cannot load a PyTorch model from {str(path)!r}: {err}"
        raise InputFileError(msg) from None
    if not isinstance(saved, dict) or saved.get("l0emu_torch_model") != 1:
        msg = (
            f"{str(path)!r} is not a model file written by l0emu (a traced module and its input shape); "
            "pass the torch.nn.Module itself to l0emu.convert(module, output, input_shape=...)"
        )
        raise InputFileError(msg)
    return TorchModel(saved["module"], saved["input_shape"])


def build_torch_model(model: TorchModel, settings, output_dir, origin="conversion settings"):
    """A traced module -> hls4ml ModelGraph (all passes applied; nothing written): ``(hls_model, {})``."""
    settings = conversion_settings(settings, origin)
    refuse_bit_exact(settings, origin)
    hls4ml = hls4ml_module()
    from hls4ml.converters.pytorch_to_hls import parse_pytorch_model
    from hls4ml.model import ModelGraph

    config = project_config(settings, output_dir)
    hls_config = hls4ml_call(
        _WHAT,
        hls4ml.utils.config.config_from_pytorch_model,
        model.module,
        tuple(model.input_shape),
        granularity="name",
        backend=settings["backend"],
        default_precision=settings["default_precision"],
        default_reuse_factor=settings["reuse_factor"],
        channels_last_conversion="internal",
    )
    hls_config["Model"]["Strategy"] = settings["strategy"]
    # the module and its (tuple) shape stay out of the config hls4ml writes to hls4ml_config.yml, which loads safely
    input_shape = hls_config.pop("InputShape")
    hls_config.pop("PytorchModel")
    config["HLSConfig"] = apply_layer_settings(hls_config, settings, {}, origin)
    layers, inputs, outputs = hls4ml_call(_WHAT, parse_pytorch_model, {**config, "PytorchModel": model.module, "InputShape": input_shape})
    return hls4ml_call(_WHAT, ModelGraph.from_layer_list, config, layers, inputs, outputs), {}



def run_torch(model: TorchModel, x) -> np.ndarray:
    """The module's own outputs for ``x`` (channels last as the spec's input), in float32;
    outputs of rank 3 or more come back channels last."""
    import torch

    if isinstance(x, (list, tuple)):
        msg = f"the PyTorch module takes one input of shape {model.input_shape}, got {len(x)} arrays"
        raise ConfigError(msg)
    with torch.no_grad():
        return from_channels_first(model.module(torch.from_numpy(to_channels_first(x, model.input_shape))).numpy())


class TorchFrontEnd(FrontEnd):
    """PyTorch modules, as the file :func:`save_torch_model` writes."""

    name = "pytorch"
    model_file = TORCH_MODEL_FILE
    description = "PyTorch: a torch.nn.Module with its input shape (l0emu.convert), or the .pt file it writes"
    framework = "PyTorch"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".pt"

    def load(self, path):
        return load_torch_model(path)

    def save(self, model, path: Path):
        _write(model, path)

    def build(self, model, settings, output_dir, origin):
        return build_torch_model(model, settings, output_dir, origin)

    def predict(self, model, x):
        return run_torch(model, x)


def convert_module(module, input_shape, out_dir, settings=None, *, name=None, compile=False, origin="conversion settings"):
    """Convert a ``torch.nn.Module`` (input shape channels first, no batch dimension) as
    :func:`l0emu.firmware.hls4ml_bridge.convert` converts a model file; ``name`` defaults to
    the module's class name. Returns ``(hls_model, spec)``."""
    name = name or type(module).__name__
    with tempfile.TemporaryDirectory() as tmp:
        path = save_torch_model(module, input_shape, Path(tmp) / f"{name}.pt")
        return convert(path, out_dir, settings, name=name, compile=compile, origin=origin)


FRONT_ENDS[TorchFrontEnd.name] = TorchFrontEnd()
