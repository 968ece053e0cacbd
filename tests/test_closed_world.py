"""The closed world: every field hls4ml's templates write into an emulated layer's C++ is accounted for.

For each hls4ml layer class the bridge emulates, the fields of every config and function
template the installed hls4ml's Vitis backend holds for it must be listed in
``firmware.template_fields.TEMPLATE_FIELDS``, as read into the spec, unable to change a bit
(with the reason) or refused; the refusals are checked at ``convert``.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("hls4ml")

from l0emu.errors import ConfigError, SpecError  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import hls4ml_module, keras  # noqa: E402
from l0emu.firmware.template_fields import REFUSED_SUBCLASSES, TEMPLATE_FIELDS  # noqa: E402

pytestmark = pytest.mark.hls4ml


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _texts(v)


def _backend_template_fields(backend: str) -> dict:
    """{hls4ml layer class name: fields of every template the backend registers for it}."""
    hls4ml = hls4ml_module()
    from hls4ml.model.optimizer import get_optimizer

    fields = {}
    for name in hls4ml.backends.get_backend(backend)._get_layer_templates():
        template = get_optimizer(name)
        classes = template.layer_class if isinstance(template.layer_class, (list, tuple)) else [template.layer_class]
        found = {f for text in _texts(vars(template)) for f in re.findall(r"\{(\w+)(?:\.\w+)*\}", text)}
        for cls in classes:
            fields.setdefault(cls.__name__, set()).update(found)
    return fields


def _template_fields() -> dict:
    """{hls4ml layer class name: fields of every Vitis template written for it}; a class with no
    template of Vitis' own is written by the Vivado backend's, which Vitis builds on (HGQ2's
    FixedPointQuantizer)."""
    vitis = _backend_template_fields("Vitis")
    inherited = {name: found for name, found in _backend_template_fields("Vivado").items() if name not in vitis}
    return {**inherited, **vitis}


def _emulated_classes() -> list:
    """The hls4ml classes the bridge's layer handlers take (from a converted layer's error message)."""
    hls_layers = hls4ml_module().model.layers
    from hls4ml.backends.fpga import fpga_layers
    from hls4ml.model.optimizer.passes.hgq_proxy_model import FixedPointQuantizer

    return [hls_layers.Conv2D, hls_layers.Dense, hls_layers.Activation, hls_layers.HardActivation, hls_layers.ParametrizedActivation,
            hls_layers.Softmax, hls_layers.Pooling2D, hls_layers.BatchNormalization, hls_layers.ZeroPadding2D, hls_layers.Reshape,
            fpga_layers.BatchNormalizationQuantizedTanh, hls_layers.Conv1D, hls_layers.Pooling1D, hls_layers.GlobalPooling1D,
            hls_layers.GlobalPooling2D, hls_layers.ZeroPadding1D, hls_layers.Merge, hls_layers.Concatenate, hls_layers.Resize,
            hls_layers.ApplyAlpha, fpga_layers.PointwiseConv1D, fpga_layers.PointwiseConv2D, hls_layers.Conv2DBatchnorm,
            FixedPointQuantizer]  # fmt: skip


def test_every_template_field_of_an_emulated_layer_is_accounted_for():
    fields = _template_fields()
    for cls in _emulated_classes():
        listed = TEMPLATE_FIELDS[cls.__name__]
        missing = sorted(fields.get(cls.__name__, set()) - set(listed))
        assert not missing, f"{cls.__name__}: hls4ml's templates write {missing}, which the closed world does not list"
        for field, fate in listed.items():
            assert re.match(r"(spec|no bits|refused): \S", fate), f"{cls.__name__}.{field}: {fate!r}"


# subclasses of emulated classes that their own handler refuses by name (bridge._activation, bridge._merge)
_REFUSED_BY_HANDLER = ("PReLU", "TernaryTanh", "Dot")


def test_every_subclass_of_an_emulated_class_is_listed_or_refused():
    """The handlers take layers by class, so a subclass hls4ml's ONNX or PyTorch parsers make
    (ApplyAlpha, DepthwiseConv2D, ...) is emulated only where the table lists its templates."""
    hls4ml = hls4ml_module()
    emulated = _emulated_classes()
    for cls in set(hls4ml.model.layers.layer_map.values()):
        if cls in emulated or not any(issubclass(cls, parent) for parent in emulated):
            continue
        name = cls.__name__
        assert name in TEMPLATE_FIELDS or name in REFUSED_SUBCLASSES or name in _REFUSED_BY_HANDLER, f"{name} is taken as its parent"


def test_a_refused_subclass_is_refused_by_layer_name():
    from hls4ml.model.layers import DepthwiseConv2D

    from l0emu.firmware.template_fields import check_layer_settings

    layer = DepthwiseConv2D.__new__(DepthwiseConv2D)  # only its class and name are read before the refusal
    layer.name = "dw"
    with pytest.raises(SpecError, match=r"layer 'dw' is hls4ml's DepthwiseConv2D: each channel convolved with its own kernel"):
        check_layer_settings(layer)


def test_the_table_lists_no_field_hls4ml_does_not_write():
    """Stale rows hide nothing, but they mislead: each listed field is one hls4ml writes."""
    fields = _template_fields()
    for name, listed in TEMPLATE_FIELDS.items():
        stale = sorted(set(listed) - fields.get(name, set()))
        assert not stale, f"{name}: {stale} are listed but no Vitis template of hls4ml writes them"


@pytest.mark.slow
def test_count_pad_is_refused_at_convert(tmp_path, monkeypatch):
    inp = keras.Input((5, 5, 1), name="x")  # "same" pads the odd width: count_pad would change the border averages
    model = keras.Model(inp, keras.layers.AveragePooling2D(2, padding="same", name="p")(inp))
    model.save(str(tmp_path / "model.h5"))
    hls4ml = hls4ml_module()
    original = hls4ml.model.layers.Pooling2D.initialize

    def counting_pad(self):
        original(self)
        self.set_attr("count_pad", True)

    monkeypatch.setattr(hls4ml.model.layers.Pooling2D, "initialize", counting_pad)
    with pytest.raises(SpecError, match=r"layer 'p': count_pad=True .* is not emulated"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", {}, name="case")


def test_a_backend_other_than_vitis_is_refused(tmp_path):
    inp = keras.Input((4,), name="x")
    keras.Model(inp, keras.layers.Dense(2, name="d")(inp)).save(str(tmp_path / "model.h5"))
    with pytest.raises(ConfigError, match=r"backend 'Vivado' is not emulated; the emulator follows hls4ml's Vitis templates"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", {"backend": "Vivado"}, name="case")
