"""Randomized QKeras architectures (hypothesis): emulator == hls4ml C-simulation, bit for bit.

Each example draws a small network within what the emulator supports (QConv2D kernel
sizes, filters, padding, strides; max/average pooling; QDense widths; quantizer widths,
integer bits, alpha 1 or power-of-two 'auto_po2'; unsigned quantized_relu, leaky
quantized_relu(negative_slope), signed quantized_bits, sigmoid, tanh or no activation;
BatchNormalization after a layer, which hls4ml fuses or keeps; accumulator and result types
with rounding and saturation set through the conversion config; an unquantized output
Dense, sometimes with a softmax head, stable or latency; the Resource strategy with reuse
factors 1 to 8 (hls4ml takes the nearest valid one); ap_int / ap_uint result types;
quantized_po2 kernels), gives it random weights, converts
it with the bridge (io_parallel, sometimes io_stream), compiles the C-simulation (~10-20 s) and compares every output bit on sparse
hit-like inputs and inputs over the input type's whole range (with zero, min and max).
CI runs 3 examples; ``L0EMU_TEST_SCALE=full`` runs 50. HGQ2 (Keras 3) networks with random
per-element bits go through the Keras 3 front end the same way (CI 1, full 20).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import scaled  # noqa: E402
from l0emu.fixedpoint.spec import spec_inputs  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.errors import SpecError  # noqa: E402
from l0emu.validation.compare import full_range_inputs  # noqa: E402

INPUT_SHAPES = [(9, 16, 1), (5, 7, 1), (6, 6, 2)]
# refusals a drawn network may meet, each naming its layer: accumulators hls4ml infers wider than the
# 63 bits the emulator computes, an io_parallel Resource convolution whose reuse factor hls4ml's code
# overruns, lossy po2 shifts wider than int64, ap_int casts from I < 0 (undefined in the headers), a
# reuse factor hls4ml's rule rejects (kept by hls4ml for a 1x1 convolution)
REFUSALS = ("the emulator cannot hold", "the stepwise int64 path needs", "reads past its input buffer", "drops bits here", "uninitialised", "is not a reuse factor")
N_EVENTS = scaled(200, 1000)


@st.composite
def quantizer(draw):
    bits = draw(st.integers(2, 8))
    integer = draw(st.integers(0, min(2, bits - 1)))
    return bits, integer


@st.composite
def activation(draw):
    kind = draw(st.sampled_from(["relu", "bits", "none", "leaky", "sigmoid", "tanh"]))
    if kind == "none":
        return None
    if kind in ("sigmoid", "tanh"):  # Keras activations: hls4ml's lookup tables
        return kind
    bits, integer = draw(quantizer())
    if kind == "relu":  # unsigned
        return f"quantized_relu({bits},{integer})"
    if kind == "leaky":  # hls4ml's leaky_relu
        return f"quantized_relu({bits},{integer},negative_slope={draw(st.sampled_from([0.25, 0.125, 0.5]))})"
    return f"quantized_bits({bits},{integer},alpha=1)"  # signed linear


@st.composite
def layer_types(draw):
    """None (hls4ml's inference), or accumulator/result types with rounding and saturation."""
    if draw(st.booleans()):
        return None
    width = draw(st.integers(8, 20))
    integer = draw(st.integers(3, 8))
    rounding = draw(st.sampled_from(["AP_TRN", "AP_RND", "AP_RND_CONV", "AP_TRN_ZERO"]))
    overflow = draw(st.sampled_from(["AP_WRAP", "AP_SAT", "AP_SAT_SYM"]))
    result = f"ap_fixed<{draw(st.integers(6, 16))},{draw(st.integers(2, 6))},{rounding},{overflow}>"
    return {
        "accum": f"ap_fixed<{width},{integer},{rounding},{overflow}>",
        "result": draw(st.sampled_from([result, result, f"ap_int<{draw(st.integers(2, 8))}>", f"ap_uint<{draw(st.integers(1, 8))}>"])),
    }


@st.composite
def knobs(draw):
    """hls4ml's strategy and reuse factor of a conv / dense layer, and its kernel quantizer kind."""
    resource = draw(st.sampled_from([False, False, True]))
    return {"strategy": "Resource" if resource else "Latency", "reuse_factor": draw(st.sampled_from([1, 2, 3, 4, 8])) if resource else 1,
            "po2": draw(st.sampled_from([False, False, False, True]))}  # fmt: skip


def _out_size(size, kernel, stride, padding):
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


@st.composite
def architectures(draw):
    """A plain description of a network: ``{"input", "layers", "io_type", "seed"}``."""
    shape = draw(st.sampled_from(INPUT_SHAPES))
    io_type = draw(st.sampled_from(["io_parallel", "io_parallel", "io_stream"]))
    h, w = shape[0], shape[1]
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        stride = draw(st.integers(1, 2))
        padding = draw(st.sampled_from(["same", "valid"]))
        if padding == "valid" and (h < kernel[0] or w < kernel[1]):
            padding = "same"
        if io_type == "io_stream" and kernel[0] == 1 and kernel[1] > 1:
            stride = 1  # not emulated: see l0emu.fixedpoint.emulator._check_stream_convolutions
        h, w = _out_size(h, kernel[0], stride, padding), _out_size(w, kernel[1], stride, padding)
        layers.append({
            "kind": "conv", "filters": draw(st.integers(1, 4)), "kernel": kernel, "stride": stride, "padding": padding,
            "quantizer": draw(quantizer()), "alpha": draw(st.sampled_from(["1", "'auto_po2'"])), "activation": draw(activation()),
            "types": draw(layer_types()), "bn": draw(st.booleans()), **draw(knobs()),
        })  # fmt: skip
        pool = draw(st.sampled_from([None, "max", "average"]))
        size = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        if pool and h >= size[0] and w >= size[1] and size != (1, 1):
            layers.append({"kind": pool, "size": size})
            h, w = h // size[0], w // size[1]
    for _ in range(draw(st.integers(1, 2))):
        layers.append({
            "kind": "dense", "units": draw(st.integers(2, 12)), "quantizer": draw(quantizer()),
            "alpha": draw(st.sampled_from(["1", "'auto_po2'"])), "activation": draw(activation()),
            "types": draw(layer_types()), "bn": draw(st.booleans()), **draw(knobs()),
        })  # fmt: skip
    return {
        "input": shape,
        "layers": layers,
        "io_type": io_type,
        "softmax": draw(st.sampled_from([None, None, "stable", "latency"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(arch):
    """The QKeras model of ``arch`` with random weights (per-channel scales spread the po2 alphas)."""
    keras.backend.clear_session()
    inp = keras.Input(arch["input"], name="image")
    x = inp
    for i, layer in enumerate(arch["layers"]):
        kind = layer["kind"]
        if kind in ("conv", "dense"):
            bits, integer = layer["quantizer"]
            kernel_q = f"quantized_po2({bits},{2 ** integer})" if layer.get("po2") else f"quantized_bits({bits},{integer},alpha={layer['alpha']})"
            bias_q = f"quantized_bits({bits},{integer},alpha=1)"
            if kind == "conv":
                x = qkeras.QConv2D(layer["filters"], layer["kernel"], strides=layer["stride"], padding=layer["padding"],
                                   kernel_quantizer=kernel_q, bias_quantizer=bias_q, name=f"conv{i}")(x)  # fmt: skip
            else:
                if len(x.shape) > 2:
                    x = keras.layers.Flatten(name=f"flatten{i}")(x)
                x = qkeras.QDense(layer["units"], kernel_quantizer=kernel_q, bias_quantizer=bias_q, name=f"dense{i}")(x)
            if layer.get("bn"):
                x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
            if layer["activation"] in ("sigmoid", "tanh"):
                x = keras.layers.Activation(layer["activation"], name=f"act{i}")(x)
            elif layer["activation"]:
                x = qkeras.QActivation(layer["activation"], name=f"act{i}")(x)
        else:
            pooling = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
            x = pooling(layer["size"], name=f"pool{i}")(x)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten_out")(x)
    x = keras.layers.Dense(2, name="out")(x)
    if arch.get("softmax"):
        x = keras.layers.Activation("softmax", name="softmax_out")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(arch["seed"])
    weights = []
    for w, var in zip(model.get_weights(), model.weights):
        values = rng.uniform(-1, 1, w.shape)
        if "moving_variance" in var.name or "gamma" in var.name:  # batch norm: away from 0 and 1
            values = rng.uniform(0.4, 2.0, w.shape)
        if w.ndim > 1:  # kernels: channels a few powers of two apart
            values *= rng.choice([1.0, 0.5, 0.25, 0.1], w.shape[-1])
        weights.append(values.astype("f4"))
    model.set_weights(weights)
    return model


def inputs(spec, n, rng):
    """Half sparse hit-like pixels {0, .5, 1}, half over the input type's whole range (all
    zero, all minimum, all maximum, then uniform mantissas)."""
    shape = tuple(spec_inputs(spec)[0]["shape"])
    t = parse_type(spec_inputs(spec)[0]["type"])
    sparse = rng.choice([0.0, 0.5, 1.0], (n // 2, *shape), p=[0.85, 0.1, 0.05])
    full = full_range_inputs(n - n // 2, spec, seed=int(rng.integers(2**31)))
    return np.concatenate([sparse, full.astype(np.float64)])


def config(arch):
    """Conversion settings: io type and the drawn accumulator/result types per layer."""
    layers = {}
    for i, layer in enumerate(arch["layers"]):
        name = f"conv{i}" if layer["kind"] == "conv" else f"dense{i}"
        if layer.get("types"):
            layers[name] = {"precision": dict(layer["types"])}
        if layer.get("strategy") == "Resource":
            layers.setdefault(name, {}).update(strategy="Resource", reuse_factor=layer["reuse_factor"])
    if arch.get("softmax"):
        layers["softmax_out"] = {"implementation": arch["softmax"]}
    return {"io_type": arch["io_type"], "layers": layers}


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(
    max_examples=scaled(3, 50),
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # shrinking would recompile hls4ml projects for hours
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(arch=architectures())
def test_random_architecture_is_bit_exact(arch, tmp_path_factory, monkeypatch_session_cache):
    directory = tmp_path_factory.mktemp("arch")
    build(arch).save(str(directory / "model.h5"))
    # hls4ml may infer lossless accumulators wider than the 63 bits the emulator computes (seen
    # after table activations and unfused batch norms); convert refuses them, and the rest of REFUSALS, by layer name
    hls_model, spec = _converted(directory / "model.h5", config(arch), "arch", REFUSALS)
    x = inputs(spec, N_EVENTS, np.random.default_rng(arch["seed"]))
    _assert_emulator_equals_csim(hls_model, spec, x, x.astype(np.float32), arch)


def _converted(path, settings_, name, refusals):
    """``(compiled hls_model, spec)``; a draw the converter refuses by one of ``refusals`` is assumed away."""
    try:
        return bridge.convert(path, path.parent / "fw", settings_, name=name, compile=True)
    except SpecError as err:
        assume(not any(refusal in str(err) for refusal in refusals))
        raise


def _assert_emulator_equals_csim(hls_model, spec, x, emulator_x, arch):
    theirs = bridge.csim_raw(hls_model, x, spec)
    ours = Emulator.from_spec(spec).predict_raw(emulator_x)
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert not len(bad), f"{len(bad)} of {len(ours)} events differ (first #{bad[0]}: emulator {ours[bad[0]]}, csim {theirs[bad[0]]}); {arch}"


@pytest.fixture(scope="session")
def monkeypatch_session_cache(tmp_path_factory):
    """Generated kernels go to a session temporary directory, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))
    yield
    mp.undo()


# -- graphs: 1-D convolutions, global pools, upsampling, reshape, merges, several inputs ----

MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _merge_types(draw):
    """A drawn result type for a merge (hls4ml's inference may exceed the emulator's 63 bits)."""
    rounding = draw(st.sampled_from(["AP_TRN", "AP_RND", "AP_RND_CONV"]))
    overflow = draw(st.sampled_from(["AP_WRAP", "AP_SAT"]))
    return f"ap_fixed<{draw(st.integers(6, 14))},{draw(st.integers(2, 5))},{rounding},{overflow}>"


@st.composite
def graphs(draw, kinds=None, joins=True):
    """A network with branches that join: ``{"rank", "input", "blocks", "head", "extra", ...}``.

    ``rank`` 1 (a [width, channels] sequence: Conv1D, 1-D pools, ZeroPadding1D, UpSampling1D)
    or 2 (an image: Conv2D, UpSampling2D); ``blocks`` each a convolution, then a residual merge
    (a same-shaped branch joined by one of :data:`MERGES`), a two-branch Concatenate on a drawn
    axis, or a pool / upsampling / padding / plain convolution; ``head`` a global max / average
    pool, or Flatten (through a Reshape); ``extra`` a second network input of scalar features
    joined before the output. ``kinds`` limits the blocks, ``joins=False`` draws no second input.
    """
    rank = draw(st.sampled_from([1, 2]))
    io_type = draw(st.sampled_from(["io_parallel", "io_parallel", "io_stream"]))
    shape = draw(st.sampled_from([(12, 2), (9, 1)])) if rank == 1 else draw(st.sampled_from([(5, 6, 1), (4, 4, 2)]))
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        choices = ["residual", "concat", "pool", "upsample", "pad", "conv"] if rank == 1 else ["residual", "concat", "upsample", "conv"]
        kind = draw(st.sampled_from([k for k in choices if kinds is None or k in kinds]))
        blocks.append({
            "kind": kind, "filters": draw(st.integers(1, 3)), "kernel": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 2)),
            "merge": draw(st.sampled_from(MERGES)), "merge_type": _merge_types(draw), "axis": draw(st.sampled_from([-1, 1] + ([2] if rank == 2 else []))),
            "pool": draw(st.sampled_from(["max", "average"])), "pad": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
            "quantizer": draw(quantizer()), "activation": draw(st.sampled_from([None, "quantized_relu(6,2)", "quantized_bits(6,2,alpha=1)"])),
        })  # fmt: skip
    return {
        "rank": rank,
        "input": shape,
        "blocks": blocks,
        "head": draw(st.sampled_from(["global_max", "global_average", "flatten"])),
        "extra": draw(st.sampled_from([None, 3])) if joins else None,
        "io_type": io_type,
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv(rank, block, name, padding="valid", filters=None, stride=1):
    bits, integer = block["quantizer"]
    q = f"quantized_bits({bits},{integer},alpha=1)"
    conv = qkeras.QConv1D if rank == 1 else qkeras.QConv2D
    return conv(filters or block["filters"], block["kernel"], strides=stride, padding=padding, kernel_quantizer=q, bias_quantizer=q, name=name)


def _block(arch, block, i, x, merge_types):
    """One drawn block on ``x``; a merge's result type goes into ``merge_types``."""
    rank, layers = arch["rank"], keras.layers
    kind = block["kind"]
    if kind == "pad":
        return layers.ZeroPadding1D(block["pad"], name=f"pad{i}")(x)
    if kind == "upsample":
        return (layers.UpSampling1D(2, name=f"up{i}") if rank == 1 else layers.UpSampling2D((2, 1), name=f"up{i}"))(x)
    width = x.shape[1]
    if kind == "pool":
        padding = "valid" if arch["io_type"] == "io_stream" or width < 2 else "same"
        pool = layers.MaxPooling1D if block["pool"] == "max" else layers.AveragePooling1D
        return pool(2, strides=block["stride"], padding=padding, name=f"pool{i}")(x)
    stride = block["stride"] if min(x.shape[1:-1]) >= block["kernel"] + 1 and arch["io_type"] == "io_parallel" else 1
    x = _conv(rank, block, f"conv{i}", "same" if min(x.shape[1:-1]) < block["kernel"] else "valid", stride=stride)(x)
    if block["activation"]:
        x = qkeras.QActivation(block["activation"], name=f"act{i}")(x)
    if kind == "conv":
        return x
    channels = x.shape[-1]
    branch = _conv(rank, block, f"branch{i}", "same", filters=channels if kind == "residual" else None)(x)
    merge_types[f"merge{i}"] = block["merge_type"]
    if kind == "residual":
        return getattr(layers, block["merge"])(name=f"merge{i}")([x, branch])
    axis = block["axis"] if block["axis"] in (-1, 1) or rank == 2 else -1
    return layers.Concatenate(axis=axis, name=f"merge{i}")([x, branch])


def build_graph(arch):
    """The Keras model of a drawn graph with random weights; its conversion settings."""
    keras.backend.clear_session()
    layers = keras.layers
    inp = keras.Input(arch["input"], name="hits")
    inputs, x, merge_types = [inp], inp, {}
    for i, block in enumerate(arch["blocks"]):
        x = _block(arch, block, i, x, merge_types)
    if arch["head"] == "flatten":
        rows = int(np.prod(x.shape[1:-1]))  # hls4ml 1.3.0 does not resolve a -1 for the layer after it
        x = layers.Flatten(name="flatten")(layers.Reshape((rows, x.shape[-1]), name="reshape")(x))
    else:
        rank = arch["rank"]
        pools = {("global_max", 1): layers.GlobalMaxPooling1D, ("global_max", 2): layers.GlobalMaxPooling2D,
                 ("global_average", 1): layers.GlobalAveragePooling1D, ("global_average", 2): layers.GlobalAveragePooling2D}  # fmt: skip
        x = pools[(arch["head"], rank)](name="global")(x)
    if arch["extra"]:
        features = keras.Input((arch["extra"],), name="features")
        inputs.append(features)
        x = layers.Concatenate(name="join")([x, layers.Dense(3, name="features_dense")(features)])
        merge_types["join"] = "ap_fixed<16,6>"
    model = keras.Model(inputs if len(inputs) > 1 else inp, layers.Dense(2, name="out")(x))
    rng = np.random.default_rng(arch["seed"])
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    precision = {name: {"precision": {"result": t}} for name, t in merge_types.items()}
    # io_stream pools compute in accum_t: wide enough that io_parallel's arithmetic holds
    precision.update({layer.name: {"precision": {"accum": "ap_fixed<32,16>"}} for layer in model.layers if "pool" in type(layer).__name__.lower()})
    return model, {"io_type": arch["io_type"], "layers": precision}


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(
    max_examples=scaled(2, 50),
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(arch=graphs())
def test_random_graph_is_bit_exact(arch, tmp_path_factory, monkeypatch_session_cache):
    """Residual and concatenated branches, 1-D layers, global pools, upsampling, two inputs:
    emulator == C-simulation on full-range inputs of every input."""
    directory = tmp_path_factory.mktemp("graph")
    try:
        model, settings_ = build_graph(arch)
    except ValueError as err:  # Keras refuses a drawn shape (e.g. a kernel larger than the input)
        assume(False)
    model.save(str(directory / "model.h5"))
    hls_model, spec = _converted(directory / "model.h5", settings_, "graph", ["the emulator cannot hold"])
    x = full_range_inputs(N_EVENTS, spec, seed=arch["seed"])
    _assert_emulator_equals_csim(hls_model, spec, x, x, arch)


# -- HGQ2 (Keras 3): a fixed-point type per element ------------------------------------------
# bits drawn per element for HGQ2's quantizer variables (hgq names them by the quantizer's place):
# activations (kif: integer and fractional bits), kernels and biases (kbi: width and integer bits)
HGQ2_BITS = {("iq", "i"): (-1, 3), ("iq", "f"): (0, 5), ("kq", "b"): (1, 6), ("kq", "i"): (-1, 1), ("bq", "b"): (1, 6), ("bq", "i"): (-1, 2)}


@st.composite
def hgq2_architectures(draw):
    """A plain description of an HGQ2 network: QConv2D blocks (pooled or not), then QDense layers."""
    shape = draw(st.sampled_from(INPUT_SHAPES))
    h, w = shape[0], shape[1]
    layers = []
    for _ in range(draw(st.integers(0, 2))):
        kernel = (draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w))))
        stride = draw(st.integers(1, 2))
        h, w = _out_size(h, kernel[0], stride, "valid"), _out_size(w, kernel[1], stride, "valid")
        layers.append({"kind": "conv", "filters": draw(st.integers(1, 3)), "kernel": kernel, "stride": stride,
                       "activation": draw(st.sampled_from([None, "relu", "tanh"]))})  # fmt: skip
        pool = draw(st.sampled_from([None, "max", "average"]))
        if pool and h >= 2 and w >= 2:
            layers.append({"kind": pool, "size": (2, 2)})
            h, w = h // 2, w // 2
    for _ in range(draw(st.integers(1, 2))):
        layers.append({"kind": "dense", "units": draw(st.integers(2, 8)), "activation": draw(st.sampled_from([None, "relu", "tanh"]))})
    return {"input": shape, "layers": layers, "seed": draw(st.integers(0, 2**16))}


def build_hgq2(arch):
    """The HGQ2 model of ``arch`` with random weights and random per-element bits."""
    from hgq.layers import QAveragePooling2D, QConv2D, QDense, QMaxPooling2D

    from l0emu.firmware.frontend_keras3 import keras3

    keras3_ = keras3()
    inp = keras3_.Input(arch["input"], name="image")
    x = inp
    for i, layer in enumerate(arch["layers"]):
        if layer["kind"] == "conv":
            x = QConv2D(layer["filters"], layer["kernel"], strides=layer["stride"], activation=layer["activation"], name=f"conv{i}")(x)
        elif layer["kind"] == "dense":
            if len(x.shape) > 2:
                x = keras3_.layers.Flatten(name=f"flatten{i}")(x)
            x = QDense(layer["units"], activation=layer["activation"], name=f"dense{i}")(x)
        else:
            x = (QMaxPooling2D if layer["kind"] == "max" else QAveragePooling2D)(layer["size"], name=f"pool{i}")(x)
    model = keras3_.Model(inp, x)
    rng = np.random.default_rng(arch["seed"])
    for var in model.weights:
        parts = var.path.split("/")  # e.g. dense0/dense0_kq/fixed_point_quantizer_kbi_2/b
        place, field = parts[-3].rsplit("_", 1)[-1] if len(parts) >= 3 else None, parts[-1]
        if (place, field) in HGQ2_BITS:
            var.assign(rng.integers(*HGQ2_BITS[(place, field)], endpoint=True, size=var.shape).astype("f4"))
        elif field in ("kernel", "bias"):
            var.assign(rng.uniform(-1, 1, var.shape).astype("f4"))
    return model


@pytest.mark.slow
@pytest.mark.hls4ml
@settings(
    max_examples=scaled(1, 20),
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(arch=hgq2_architectures())
def test_random_hgq2_architecture_is_bit_exact(arch, tmp_path_factory, monkeypatch_session_cache):
    """HGQ2 networks with random per-element bits (hls4ml's FixedPointQuantizer layers, the spec's
    quantize op) through the Keras 3 front end: emulator == C-simulation on sparse and full-range inputs."""
    pytest.importorskip("hgq")
    directory = tmp_path_factory.mktemp("hgq2_arch")
    build_hgq2(arch).save(str(directory / "model.keras"))
    hls_model, spec = _converted(directory / "model.keras", {}, "hgq2_arch", REFUSALS)
    x = inputs(spec, N_EVENTS, np.random.default_rng(arch["seed"]))
    _assert_emulator_equals_csim(hls_model, spec, x, x.astype(np.float32), arch)
