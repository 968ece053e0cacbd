"""Conv1D, 1-D and global pools, ZeroPadding1D, Reshape, UpSampling, merges, Concatenate and
several inputs: emulator == hls4ml 1.3.0 C-simulation, bit for bit, io_parallel and io_stream.

The first four cases are the networks hls4ml C-simulates but ``convert`` used to refuse
(QConv1D + MaxPooling1D, a residual Add, two inputs joined by Concatenate,
GlobalAveragePooling2D). The composite cases put every new layer into one network each (few
compiles: each costs ~10 s) with narrow types, so sums and products wrap and round.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.errors import L0emuError  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.validation.compare import full_range_inputs  # noqa: E402

pytestmark = pytest.mark.hls4ml
L = keras.layers
N_EVENTS = 3000
NARROW = {"default_precision": "ap_fixed<8,3>"}


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def _random_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    return model


def _compare(model, tmp_path, settings):
    """Convert and compile ``model``; return (spec, events that differ) on full-range inputs."""
    model.save(str(tmp_path / "model.h5"))
    hls_model, spec = bridge.convert(tmp_path / "model.h5", tmp_path / "fw", settings, name="case", compile=True)
    x = full_range_inputs(N_EVENTS, spec, seed=1)
    theirs = bridge.csim_raw(hls_model, x, spec)
    ours = Emulator.from_spec(spec).predict_raw(x)
    assert ours.shape == theirs.shape
    return spec, int(np.count_nonzero(np.any(ours != theirs, axis=1)))


def _conv1d_max_pool():
    inp = keras.Input((12, 2), name="x")
    q = "quantized_bits(4,0,alpha=1)"
    h = qkeras.QConv1D(3, 3, kernel_quantizer=q, bias_quantizer=q, name="conv")(inp)
    h = qkeras.QActivation("quantized_relu(6,2)", name="relu")(h)
    h = L.MaxPooling1D(2, name="pool")(h)
    return keras.Model(inp, L.Dense(2, name="out")(L.Flatten(name="flat")(h)))


def _residual_add():
    inp = keras.Input((6,), name="x")
    h = L.Dense(6, name="d2")(L.Activation("relu", name="r1")(L.Dense(6, name="d1")(inp)))
    return keras.Model(inp, L.Dense(2, name="out")(L.Add(name="skip")([h, inp])))


def _two_inputs_concatenated():
    image, scalars = keras.Input((4, 6, 1), name="image"), keras.Input((3,), name="scalars")
    h = L.Flatten(name="flat")(L.Activation("relu", name="relu")(L.Conv2D(2, (2, 2), name="conv")(image)))
    joined = L.Concatenate(name="join")([h, L.Dense(4, name="features")(scalars)])
    return keras.Model([image, scalars], L.Dense(2, name="out")(joined))


def _global_average_pool_2d():
    inp = keras.Input((4, 5, 2), name="x")
    h = L.GlobalAveragePooling2D(name="gap")(L.Conv2D(3, (2, 2), name="conv")(inp))
    return keras.Model(inp, L.Dense(2, name="out")(h))


@pytest.mark.parametrize(
    "build, ops",
    [
        (_conv1d_max_pool, {"conv1d", "max_pool1d"}),
        (_residual_add, {"add"}),
        (_two_inputs_concatenated, {"concatenate"}),
        (_global_average_pool_2d, {"global_avg_pool2d"}),
    ],
)
def test_networks_convert_used_to_refuse(build, ops, tmp_path):
    """Reproduction 4: each converts now and equals the C-simulation on every event."""
    spec, differ = _compare(_random_weights(build()), tmp_path, {})
    assert ops <= {layer["op"] for layer in spec["layers"]}
    assert differ == 0


def _every_layer_parallel():
    """Every new layer in io_parallel: padded 1-D pools, strided Conv1D, every merge, both
    upsamplings, a Reshape into 2-D, global pools of both ranks, Concatenate on two axes."""
    inp = keras.Input((8, 2), name="x")
    a = L.Conv1D(2, 3, strides=2, name="c1")(L.ZeroPadding1D((1, 2), name="zp")(inp))
    b = L.AveragePooling1D(2, strides=1, padding="same", name="ap")(inp)
    b = L.MaxPooling1D(2, name="mp")(L.Conv1D(2, 2, name="c2")(b))
    a = L.Conv1D(2, 3, name="c3")(a)
    s, p = L.Subtract(name="sub")([a, b]), L.Multiply(name="mul")([a, b])
    mx = L.Maximum(name="max")([L.Average(name="avg")([s, p]), a])
    u = L.UpSampling1D(2, name="up")(L.Minimum(name="min")([mx, b]))
    r = L.UpSampling2D((2, 1), name="up2")(L.Reshape((2, 3, 2), name="rs")(u))
    c = L.Concatenate(axis=-1, name="cat")([L.GlobalMaxPooling1D(name="gmp")(u), L.GlobalAveragePooling1D(name="gap")(u)])
    c = L.Concatenate(axis=1, name="cat2")([c, L.GlobalMaxPooling2D(name="gmp2")(r)])
    return keras.Model(inp, L.Dense(2, name="out")(c))


def _every_layer_stream():
    """The io_stream subset hls4ml runs: pools without padding, every merge, UpSampling1D,
    global pools (their accumulators set wide enough below), Concatenate."""
    inp = keras.Input((8, 2), name="x")
    a = L.Conv1D(2, 3, name="c3")(L.Conv1D(2, 3, strides=2, name="c1")(L.ZeroPadding1D((1, 2), name="zp")(inp)))
    b = L.Conv1D(2, 2, name="c2")(L.MaxPooling1D(2, name="mp")(inp))
    s, p = L.Subtract(name="sub")([a, b]), L.Multiply(name="mul")([a, b])
    mx = L.Maximum(name="max")([L.Average(name="avg")([s, p]), a])
    u = L.UpSampling1D(2, name="up")(L.Add(name="add")([L.Minimum(name="min")([mx, b]), a]))
    c = L.Concatenate(name="cat")([L.GlobalMaxPooling1D(name="gmp")(u), L.GlobalAveragePooling1D(name="gap")(u)])
    return keras.Model(inp, L.Dense(2, name="out")(c))


def _every_layer_stream_2d():
    inp = keras.Input((4, 4, 2), name="x")
    u = L.UpSampling2D((2, 1), name="up2")(L.Conv2D(2, 2, name="c")(inp))
    b = L.Conv2D(2, (4, 2), name="c2")(u)
    c = L.Concatenate(name="cat")([L.GlobalMaxPooling2D(name="gmp2")(u), L.GlobalAveragePooling2D(name="gap2")(b)])
    c = L.Concatenate(name="cat2")([c, L.Flatten(name="f")(L.Reshape((3, 4), name="rs")(b))])
    return keras.Model(inp, L.Dense(2, name="out")(c))


def _wrapping_stream_pools():
    """io_stream average pools whose accumulator wraps (ap_fixed<13,3> summing ap_fixed<16,6>):
    modulo 2**13 the stream's tree of sums equals io_parallel's sum in order."""
    inp = keras.Input((6, 4, 2), name="x")
    a = L.AveragePooling2D((2, 1), name="ap2")(L.Conv2D(2, 2, name="c")(inp))
    joined = L.Concatenate(name="cat")([L.GlobalAveragePooling2D(name="gap2")(a), L.GlobalAveragePooling1D(name="gap1")(L.Reshape((6, 2), name="rs")(a))])
    return keras.Model(inp, L.Dense(2, name="out")(joined))


WRAPPING = {"io_type": "io_stream", "layers": {"c": {"precision": {"result": "ap_fixed<16,6>"}},
                                                **{name: {"precision": {"accum": "ap_fixed<13,3>", "result": "ap_fixed<14,4>"}} for name in ("ap2", "gap2", "gap1")}}}  # fmt: skip


def _typed(model, io_type):
    """Narrow result types on every layer; accumulators wide enough for io_stream's pools."""
    layers = {}
    for layer in model.layers[1:]:
        precision = {"result": "ap_fixed<10,4>"}
        if any(key in type(layer).__name__ for key in ("Pool", "Conv", "Dense")):
            precision["accum"] = "ap_fixed<24,12>"
        layers[layer.name] = {"precision": precision}
    return {"io_type": io_type, "layers": layers}


@pytest.mark.slow
@pytest.mark.parametrize(
    "build, settings",
    [
        (_every_layer_parallel, NARROW),
        (_every_layer_stream, "io_stream"),
        (_every_layer_stream_2d, "io_stream"),
        (_wrapping_stream_pools, WRAPPING),
    ],
    ids=["parallel", "stream_1d", "stream_2d", "stream_wrapping_pools"],
)
def test_every_new_layer(build, settings, tmp_path):
    model = _random_weights(build())
    settings = _typed(model, settings) if isinstance(settings, str) else settings
    spec, differ = _compare(model, tmp_path, settings)
    assert differ == 0, f"{differ} of {N_EVENTS} events differ ({[layer['op'] for layer in spec['layers']]})"


def test_io_stream_pool_with_a_narrow_accumulator_is_refused(tmp_path):
    """hls4ml's io_stream pools compute in accum_t, io_parallel's on the inputs: where the
    two differ, convert refuses, naming the layer and the setting."""
    inp = keras.Input((6, 2), name="x")
    model = keras.Model(inp, L.GlobalAveragePooling1D(name="gap")(L.Conv1D(2, 2, name="c")(inp)))
    model.save(str(tmp_path / "model.h5"))
    settings = {"io_type": "io_stream", "layers": {"gap": {"precision": {"accum": "ap_fixed<8,3,AP_TRN,AP_SAT>"}}}}
    with pytest.raises(L0emuError, match=r"layer 'gap': an io_stream global_avg_pool1d with accum_t ap_fixed<8,3"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", settings)


def test_dot_merge_is_refused_naming_the_layer(tmp_path):
    inp = keras.Input((6,), name="x")
    dot = L.Dot(axes=1, name="dot")([L.Dense(4, name="a")(inp), L.Dense(4, name="b")(inp)])
    keras.Model(inp, dot).save(str(tmp_path / "dot.h5"))
    with pytest.raises(L0emuError, match="layer 'dot' is a Dot, which l0emu cannot emulate"):
        bridge.convert(tmp_path / "dot.h5", tmp_path / "fw")


@pytest.mark.slow
def test_validate_draws_every_input(tmp_path, capsys, monkeypatch):
    """``l0emu validate --random / --full-range`` on a two-input network: every input drawn,
    every output bit compared with the C-simulation."""
    from l0emu.cli.dispatch import main

    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    _random_weights(_two_inputs_concatenated()).save(str(tmp_path / "model.h5"))
    bridge.convert(tmp_path / "model.h5", tmp_path / "fw", NARROW, compile=True)
    for extra in ([], ["--full-range"]):
        assert main(["validate", str(tmp_path / "fw"), "--random", "500", *extra]) == 0
        out = capsys.readouterr().out
        assert "events compared:                  500" in out and "RESULT: bit-exact" in out, out
