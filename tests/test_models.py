"""The seed networks: per-layer output shapes and parameter counts of the seed 000 table."""

import numpy as np
import pytest

from l0emu.errors import ConfigError, InputFileError

models = pytest.importorskip("l0emu.firmware.models")
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402

# (layer name, output shape without batch, parameters) for every layer with parameters
# or a shape change, as the seed 000 table lists them.
TEACHER_384 = [
    ("conv1", (9, 384, 10), 100),
    ("conv2", (9, 384, 10), 910),
    ("pool1", (9, 192, 10), 0),
    ("conv3", (9, 192, 17), 1547),
    ("conv4", (9, 192, 17), 2618),
    ("conv5", (9, 192, 17), 2618),
    ("pool2", (4, 96, 17), 0),
    ("flatten", (6528,), 0),
    ("dense1", (10,), 65290),
    ("dense2", (10,), 110),
    ("output", (2,), 22),
]
TEACHER_16 = [
    ("conv1", (9, 16, 10), 100),
    ("conv2", (9, 16, 10), 910),
    ("pool1", (9, 8, 10), 0),
    ("conv3", (9, 8, 17), 1547),
    ("conv4", (9, 8, 17), 2618),
    ("conv5", (9, 8, 17), 2618),
    ("pool2", (4, 4, 17), 0),
    ("flatten", (272,), 0),
    ("dense1", (10,), 2730),
    ("dense2", (10,), 110),
    ("output", (2,), 22),
]
STUDENT = [
    ("conv1", (7, 14, 1), 10),
    ("conv2", (5, 12, 1), 10),
    ("conv3", (3, 10, 6), 60),
    ("conv4", (1, 8, 6), 330),
    ("flatten", (48,), 0),
    ("dense1", (10,), 490),
    ("dense2", (10,), 110),
    ("output", (2,), 22),
]
# the wider students: the same layers and names, more filters and units (issue 12)
STUDENT_WIDER = [
    ("conv1", (7, 14, 6), 60),
    ("conv2", (5, 12, 6), 330),
    ("conv3", (3, 10, 10), 550),
    ("conv4", (1, 8, 10), 910),
    ("flatten", (80,), 0),
    ("dense1", (20,), 1620),
    ("dense2", (20,), 420),
    ("output", (2,), 42),
]
STUDENT_WIDE = [
    ("conv1", (7, 14, 4), 40),
    ("conv2", (5, 12, 4), 148),
    ("conv3", (3, 10, 8), 296),
    ("conv4", (1, 8, 8), 584),
    ("flatten", (64,), 0),
    ("dense1", (16,), 1040),
    ("dense2", (16,), 272),
    ("output", (2,), 34),
]


def _table(model, rows):
    return [(name, tuple(model.get_layer(name).output_shape[1:]), model.get_layer(name).count_params()) for name, _, _ in rows]


@pytest.mark.parametrize("nbits", [None, 4])
@pytest.mark.parametrize(
    ("build", "rows", "total"),
    [
        (lambda nbits: models.build_teacher((9, 384, 1), nbits=nbits), TEACHER_384, 73215),
        (lambda nbits: models.build_teacher((9, 16, 1), nbits=nbits), TEACHER_16, 10655),
        (lambda nbits: models.build_student(nbits=nbits), STUDENT, 1032),
        (lambda nbits: models.build_student(nbits=nbits, width="student-wide"), STUDENT_WIDE, 2414),
        (lambda nbits: models.build_student(nbits=nbits, width="student-wider"), STUDENT_WIDER, 3932),
    ],
    ids=["teacher_9x384", "teacher_9x16", "student", "student_wide", "student_wider"],
)
def test_layer_table_matches_seed(build, rows, total, nbits):
    model = build(nbits)
    assert _table(model, rows) == rows
    assert model.count_params() == total
    assert sum(n for _, _, n in rows) == total


def test_activations_are_separate_relu_layers_and_no_layer_is_named_input():
    model = models.build_student()
    names = [layer.name for layer in model.layers]
    assert names == [
        "image", "conv1", "relu1", "conv2", "relu2", "conv3", "relu3", "conv4", "relu4",
        "flatten", "dense1", "dense_relu1", "dense2", "dense_relu2", "output",
    ]  # fmt: skip
    assert "input" not in names
    for name in ("conv1", "conv2", "conv3", "conv4", "dense1", "dense2", "output"):
        assert model.get_layer(name).get_config()["activation"] == "linear", name


def test_quantized_student_quantizes_every_layer_but_the_output():
    model = models.build_student(nbits=3)
    for name in ("conv1", "conv2", "conv3", "conv4", "dense1", "dense2"):
        layer = model.get_layer(name)
        for quantizer in (layer.kernel_quantizer_internal, layer.bias_quantizer_internal):
            assert isinstance(quantizer, qkeras.quantized_bits), name
            assert (quantizer.bits, quantizer.integer, quantizer.alpha) == (3, 0, 1), name
    for name in ("relu1", "relu2", "relu3", "relu4", "dense_relu1", "dense_relu2"):
        layer = model.get_layer(name)
        assert isinstance(layer, qkeras.QActivation), name
        assert isinstance(layer.quantizer, qkeras.quantized_relu), name
        assert (layer.quantizer.bits, layer.quantizer.integer) == (3, 0), name
    output = model.get_layer("output")
    assert type(output) is keras.layers.Dense
    assert output.get_config()["activation"] == "linear"


def test_wider_students_keep_the_layer_names_the_hints_and_the_bridge_use():
    seed = [layer.name for layer in models.build_student().layers]
    for width in ("student-wide", "student-wider"):
        assert [layer.name for layer in models.build_student(nbits=4, width=width).layers] == seed
        assert models.build_student(nbits=4, width=width).name == width.replace("-", "_") + "_q4"


def test_unknown_student_width_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown student width 'student-huge'; choose one of student, student-wide, student-wider"):
        models.build_student(width="student-huge")


def test_float_student_has_no_qkeras_layers():
    model = models.build_student()
    assert not any(type(layer).__module__.startswith("qkeras") for layer in model.layers)


@pytest.mark.parametrize("nbits", [1, 7, 16, 4.0, "4", True])
def test_unsupported_bit_width_is_refused_with_the_supported_list(nbits):
    with pytest.raises(ConfigError, match=r"supported widths are 2, 3, 4, 5, 6, 8"):
        models.build_student(nbits=nbits)


def test_saved_quantized_model_loads_back_with_the_same_predictions(tmp_path):
    model = models.build_student(nbits=4)
    model.save(tmp_path / "model.h5")
    loaded = models.load_model(tmp_path)
    x = np.random.default_rng(1).integers(0, 3, size=(5, 9, 16, 1)).astype(np.float32) / 2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_model_names_the_missing_file(tmp_path):
    with pytest.raises(InputFileError, match=r"model\.h5"):
        models.load_model(tmp_path)
