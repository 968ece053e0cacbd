"""The Keras 3 front end: ``.keras`` files and Keras 3 model objects, HGQ2 layers included.

hls4ml 1.3.0 reads a Keras 3 model with its Keras-3 parser (``convert_from_keras_model``
dispatches on the installed ``keras``, which is 3.x here; tf-keras models go through the
Keras-2 path of :class:`~l0emu.firmware.hls4ml_bridge.FrontEnd`). For HGQ2 models hls4ml
turns every quantizer into a ``FixedPointQuantizer`` layer and, with ``bit_exact`` left to
its default, infers every type of the graph from the quantizers; the conversion settings'
strategy and per-layer overrides still apply (:func:`~l0emu.firmware.hls4ml_bridge.apply_layer_settings`).
Layers the Keras-3 parser would hand to da4ml's combinational fallback or to the Keras-2
handlers are refused: the emulator models neither.

Keras 3 lives beside tf-keras in one process: ``import keras`` is Keras 3 whatever
``TF_USE_LEGACY_KERAS`` says (that variable only decides what ``tf.keras`` is).
"""

from __future__ import annotations

from pathlib import Path

from l0emu.errors import ConfigError, InputFileError

from .hls4ml_bridge import FRONT_ENDS, FrontEnd, apply_layer_settings, conversion_settings, project_keys
from .keras_env import hls4ml_module, keras3_module

__all__ = ["KERAS3", "MODEL_FILE", "Keras3FrontEnd", "is_keras3_model", "keras3"]

MODEL_FILE = "model.keras"


def keras3():
    """Keras 3 with HGQ2's layers registered (hgq registers them with Keras' serialization on import)."""
    import hgq  # noqa: F401

    return keras3_module()


def is_keras3_model(model) -> bool:
    """Whether ``model`` is a Keras 3 model object (not a tf-keras one)."""
    return isinstance(model, keras3().Model)


def _bit_exact(model, settings, origin) -> bool:
    """Whether hls4ml infers every type from the model's quantizers (``bit_exact``; by default
    where the model has HGQ2 layers). It then overwrites every result, accumulator and weight
    type, so a precision the settings give for a layer would be silently ignored: refused."""
    bit_exact = settings["bit_exact"]
    if bit_exact is not None and not isinstance(bit_exact, bool):
        msg = f"{origin}: bit_exact must be true, false or absent, got {bit_exact!r}"
        raise ConfigError(msg)
    if bit_exact is None:
        bit_exact = any(type(layer).__module__.startswith("hgq.") for layer in model.layers)
    ignored = [name for name, layer in settings["layers"].items() if "precision" in layer]
    if bit_exact and ignored:
        msg = (
            f"{origin}: layers.{ignored[0]}.precision: hls4ml's bit-exact type inference (on for HGQ2 models) sets every "
            "type from the quantizers and would ignore it; set bit_exact: false to convert with the settings' types"
        )
        raise ConfigError(msg)
    return bit_exact


class Keras3FrontEnd(FrontEnd):
    name = "keras3"
    model_file = MODEL_FILE
    description = "Keras 3 / HGQ2: a .keras file or a Keras 3 model object (Python API)"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".keras"

    def load(self, path):
        path = Path(path)
        if not path.is_file():
            msg = f"model {str(path)!r} does not exist or is not a file; pass a Keras 3 .keras file"
            raise InputFileError(msg)
        try:
            return keras3().models.load_model(str(path), compile=False)
        except (OSError, ValueError, TypeError, KeyError) as err:
            msg = f"cannot load a Keras 3 model from {str(path)!r}: {err}"
            raise InputFileError(msg) from None

    def save(self, model, path: Path):
        model.save(str(path))

    def build(self, model, settings, output_dir, origin):
        """``(hls_model, {})``: hls4ml's Keras-3 parse of ``model`` with all passes (Keras 3
        names its input layers ``input_layer``, so nothing needs renaming)."""
        settings = conversion_settings(settings, origin)
        bit_exact = _bit_exact(model, settings, origin)
        hls4ml = hls4ml_module()
        config = hls4ml.utils.config_from_keras_model(
            model,
            granularity="name",
            backend=settings["backend"],
            default_precision=settings["default_precision"],
            default_reuse_factor=settings["reuse_factor"],
        )
        for layer in config["LayerName"].values():
            # the helper's default 1 would override the layer's own parallelization factor (HGQ2's
            # convolutions carry one); it sets how many output pixels are computed at once, no bits
            layer.pop("ParallelizationFactor", None)
        config = apply_layer_settings(config, settings, {}, origin)
        try:
            hls_model = hls4ml.converters.convert_from_keras_model(
                model,
                **project_keys(settings, output_dir),
                hls_config=config,
                bit_exact=bit_exact,
                allow_da_fallback=False,
                allow_v2_fallback=False,
            )
        except (ValueError, TypeError, KeyError, AssertionError, RuntimeError, NotImplementedError) as err:
            msg = f"hls4ml could not convert the Keras 3 model: {type(err).__name__}: {err}"
            raise ConfigError(msg) from None
        return hls_model, {}

    def predict(self, model, x):
        return model.predict(x, batch_size=4096, verbose=0)


KERAS3 = Keras3FrontEnd()
FRONT_ENDS[KERAS3.name] = KERAS3
