"""The staged emulator (wide dense layers as BLAS matrix products) against the single kernel,
the pure-Python reference and hls4ml's C-simulation, bit for bit.

The networks are chosen so that the staged path is taken (asserted): wide ``ap_fixed<16,6>``
weights and inputs over their full range, accumulators wide enough for the exact path, and
result types that round, saturate, wrap and zero; layers whose sums are not provably exact
stay in kernel stages between the matrix stages.
"""

from __future__ import annotations

import numpy as np
import pytest

from l0emu.fixedpoint import _batched
from l0emu.fixedpoint.emulator import Emulator
from test_emulator import conv, dense, elementwise, make_spec, pool, random_inputs, ref_network

RESULTS = ["ap_fixed<16,6>", "ap_fixed<16,6,AP_RND,AP_SAT>", "ap_fixed<12,4,AP_RND_CONV,AP_SAT_SYM>",
           "ap_fixed<10,3,AP_RND_ZERO,AP_SAT_ZERO>", "ap_ufixed<8,2,AP_RND_INF,AP_WRAP>", "ap_fixed<14,5,AP_TRN_ZERO,AP_WRAP>"]


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def _kernel_only(emu, x):
    return emu._run(emu._kernel, x, lambda n: (), "network")


def mlp(widths, rng, *, acc="ap_fixed<48,24>", narrow=(), wt="ap_fixed<16,6>", input_type="ap_fixed<16,6>"):
    """Dense layers of ``widths`` with ``wt`` weights, each followed by a relu or linear layer
    into one of RESULTS; the layers in ``narrow`` get an accumulator that is not provably exact."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        layer = dense(f"dense{k}", n_in, n_out, rng, acc="ap_fixed<16,6>" if k in narrow else acc, wt=wt)
        layer["bias_type"] = "ap_fixed<16,6>"
        layer["biases"] = rng.integers(-(1 << 15), 1 << 15, n_out).tolist()
        op = "relu" if k % 2 == 0 else "linear"
        layers += [layer, elementwise(f"act{k}", op, (n_out,), RESULTS[(k + int(rng.integers(6))) % len(RESULTS)])]
    return make_spec(layers, (widths[0],), input_type)


@pytest.mark.parametrize("seed", range(2))
def test_wide_mlp_staged_equals_kernel_and_reference(seed):
    rng = np.random.default_rng(seed)
    spec = mlp([16, 24, 16, 5], rng)
    emu = Emulator.from_spec(spec)
    assert emu._staged is not None
    m, x = random_inputs(spec, 300, rng, density=1.0)
    got = emu.predict_raw(x)
    np.testing.assert_array_equal(got, _kernel_only(emu, x))
    np.testing.assert_array_equal(got[:40], ref_network(spec, m[:40].reshape(40, -1)))


def test_narrow_types_take_single_precision_products():
    """4-bit weights on 8-bit inputs: every partial sum below 2**24, so float32 matrix products."""
    rng = np.random.default_rng(9)
    spec = mlp([16, 16, 16, 5], rng, acc="ap_fixed<32,16>", wt="ap_fixed<4,1>", input_type="ap_fixed<8,3>")
    emu = Emulator.from_spec(spec)
    assert emu._staged.stages[0].weights.dtype == np.float32
    m, x = random_inputs(spec, 300, rng, density=1.0)
    got = emu.predict_raw(x)
    np.testing.assert_array_equal(got, _kernel_only(emu, x))
    np.testing.assert_array_equal(got[:40], ref_network(spec, m[:40].reshape(40, -1)))


def test_inexact_layers_stay_in_kernel_stages():
    """A narrow accumulator (per-step casts that wrap) keeps its layer in the generated kernel."""
    rng = np.random.default_rng(7)
    spec = mlp([16, 16, 4, 16, 16, 5], rng, narrow=(1,))
    emu = Emulator.from_spec(spec)
    kinds = [type(stage).__name__ for stage in emu._staged.stages]
    assert kinds == ["_MatrixStage", "_KernelStage", "_MatrixStage", "_KernelStage"]
    m, x = random_inputs(spec, 200, rng, density=1.0)
    got = emu.predict_raw(x)
    np.testing.assert_array_equal(got, _kernel_only(emu, x))
    np.testing.assert_array_equal(got[:20], ref_network(spec, m[:20].reshape(20, -1)))


def test_chunks_and_uint8_codes(monkeypatch):
    """Events cross chunk boundaries (a partial last chunk); uint8 codes go through the input table."""
    monkeypatch.setattr(_batched, "CHUNK", 64)
    rng = np.random.default_rng(3)
    spec = mlp([16, 16, 16, 5], rng)
    emu = Emulator.from_spec(spec)
    codes = rng.integers(0, 256, (1000, 16)).astype(np.uint8)
    np.testing.assert_array_equal(emu.predict_raw(codes), _kernel_only(emu, codes))
    _, x = random_inputs(spec, 1000, rng, density=1.0)
    np.testing.assert_array_equal(emu.predict_raw(x), _kernel_only(emu, x))


def test_networks_mostly_elsewhere_keep_one_kernel():
    """Small dense layers (the shipped student's kind) are not cut into stages."""
    rng = np.random.default_rng(5)
    spec = mlp([16, 12, 12, 5], rng)
    assert Emulator.from_spec(spec)._staged is None


@pytest.mark.slow
@pytest.mark.hls4ml
def test_staged_equals_csim(tmp_path):
    """A float Keras MLP converted with hls4ml's defaults (ap_fixed<16,6>), staged, against the C-simulation."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras

    layers = keras.layers
    inputs = keras.Input((16,))
    h = layers.Dense(64, activation="relu")(inputs)
    h = layers.BatchNormalization()(layers.Dense(48)(h))
    h = layers.Activation("relu")(h)
    model = keras.Model(inputs, layers.Dense(5)(h))
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) + (1.0 if w.ndim == 1 and i == 7 else 0.0)
                       for i, w in enumerate(model.get_weights())])  # fmt: skip
    model.save(str(tmp_path / "model.h5"))
    hls_model, spec = bridge.convert(tmp_path / "model.h5", tmp_path / "fw", compile=True)
    emu = Emulator.from_spec(spec)
    assert emu._staged is not None
    _, x = random_inputs(spec, 2000, rng, density=1.0)
    np.testing.assert_array_equal(emu.predict_raw(x.astype(np.float32)), bridge.csim_raw(hls_model, x, spec))


def test_shipped_student_keeps_one_kernel():
    """The trigger's network is convolution-dominated: the staged path must not take it."""
    from l0emu.cli.run import default_spec_path
    from l0emu.fixedpoint.spec import read_spec

    assert Emulator(read_spec(default_spec_path()))._staged is None


def _conv_network(rng):
    """A wide 'same' convolution (f64 products), a max pool that tiles, a strided convolution
    with asymmetric padding and narrow types (f32 products), then a small dense head."""
    c1, shape = conv("conv1", (8, 10, 12), 12, rng, padding="same", acc="ap_fixed<32,16>", wt="ap_fixed<6,2>")
    relu1 = elementwise("relu1", "relu", shape, "ap_fixed<8,3>")
    pool1, shape = pool("pool1", "max_pool2d", shape, result_type="ap_fixed<8,3>")
    c2, _ = conv("conv2", shape, 12, rng, acc="ap_fixed<24,12>", res="ap_fixed<10,3,AP_RND_ZERO,AP_SAT_ZERO>", strides=(2, 2))
    c2.update(pad=[0, 1, 0, 1], padding="same", output_shape=[2, 2, 12])  # TensorFlow's 'same' for stride 2 on even sizes
    flat = {"name": "flat", "op": "flatten", "input_shape": [2, 2, 12], "output_shape": [48], "result_type": c2["result_type"]}
    head = dense("head", 48, 5, rng, acc="ap_fixed<32,16>")
    return make_spec([c1, relu1, pool1, c2, flat, head], (8, 10, 12))


def test_wide_convolutions_as_matrix_stages(monkeypatch):
    monkeypatch.setattr(_batched, "MIN_CONV_WORK", 0)  # conv2 too, though it is small
    rng = np.random.default_rng(21)
    spec = _conv_network(rng)
    emu = Emulator.from_spec(spec)
    stages = emu._staged.stages
    assert [type(stage).__name__ for stage in stages] == ["_ConvStage", "_MaxPoolStage", "_ConvStage", "_KernelStage"]
    assert (stages[0].weights.dtype, stages[2].weights.dtype) == (np.float64, np.float32)
    m, x = random_inputs(spec, 150, rng, density=0.9)
    got = emu.predict_raw(x)
    np.testing.assert_array_equal(got, _kernel_only(emu, x))
    np.testing.assert_array_equal(got[:6], ref_network(spec, m[:6].reshape(6, -1)))
    # im2col groups of 3 events inside chunks of 8: partial last groups and a partial last chunk
    monkeypatch.setattr(_batched, "CHUNK", 8)
    stages[0].group = 3
    np.testing.assert_array_equal(emu.predict_raw(x[:45]), got[:45])


@pytest.mark.parametrize(("bias", "acc", "products"), [(1, "ap_fixed<40,40>", np.float32), (2, "ap_fixed<40,40>", np.float64),
                                                       (1, "ap_fixed<25,25>", np.float32), (1, "ap_fixed<25,25,AP_TRN,AP_SAT>", None)])
def test_convolution_product_precision_at_its_bound(bias, acc, products, monkeypatch):
    """Sums reaching 2**24 exactly (bias 1 plus 255 times 65,793) take float32 products; one more
    takes float64; an accumulator one value short of the sum wraps the exact sum once (the
    sum 2**24 becomes -2**24) or, saturating, keeps the generated kernel's per-step casts."""
    monkeypatch.setattr(_batched, "MIN_CONV_WORK", 0)
    rng = np.random.default_rng(23)
    per_tap = [664] * 98 + [721]  # the 99 taps' weights of every filter sum to 65,793
    weights = [w for w in per_tap for _ in range(11)]
    layer, _ = conv("conv", (4, 4, 11), 11, rng, padding="same", acc=acc, wt="ap_fixed<16,16>", weights=weights)
    layer.update(bias_type="ap_fixed<8,8>", biases=[bias] * 11)
    spec = make_spec([layer], (4, 4, 11), "ap_ufixed<8,8>")
    emu = Emulator.from_spec(spec)
    if products is None:
        assert emu._staged is None
        return
    assert emu._staged.stages[0].weights.dtype == products
    x = np.full((40, 4, 4, 11), 255.0, np.float32)
    x[20:] = rng.integers(0, 256, x[20:].shape)
    got = emu.predict_raw(x)
    np.testing.assert_array_equal(got, _kernel_only(emu, x))
    if acc == "ap_fixed<25,25>":  # the per-step casts of the reference wrap too
        assert got.min() == -(1 << 24)
        np.testing.assert_array_equal(got[18:22], ref_network(spec, x[18:22].astype(np.int64).reshape(4, -1)))
    else:
        assert got.max() == (1 << 24) - 1 + bias


@pytest.mark.slow
@pytest.mark.hls4ml
def test_convolution_stages_equal_csim(tmp_path, monkeypatch):
    """A float Keras conv net converted with hls4ml's defaults: 'same' and strided convolutions
    and a max pool as stages, against the C-simulation."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras

    monkeypatch.setattr(_batched, "MIN_CONV_WORK", 0)
    layers = keras.layers
    inputs = keras.Input((6, 8, 3))
    h = layers.MaxPooling2D(2)(layers.Conv2D(12, 3, padding="same", activation="relu")(inputs))
    h = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(h)
    model = keras.Model(inputs, layers.Dense(4)(layers.Flatten()(h)))
    rng = np.random.default_rng(12)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(str(tmp_path / "model.h5"))
    hls_model, spec = bridge.convert(tmp_path / "model.h5", tmp_path / "fw", compile=True)
    emu = Emulator.from_spec(spec)
    assert [type(stage).__name__ for stage in emu._staged.stages][:3] == ["_ConvStage", "_MaxPoolStage", "_ConvStage"]
    _, x = random_inputs(spec, 500, rng, density=1.0)
    np.testing.assert_array_equal(emu.predict_raw(x.astype(np.float32)), bridge.csim_raw(hls_model, x, spec))
