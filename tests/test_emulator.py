"""The generated emulator against a slow, obviously-correct pure-Python reference.

The reference follows the hls4ml 1.3.0 templates line by line on Python ints
(nnet_conv2d_latency.h, nnet_dense_latency.h, nnet_mult.h, nnet_activation.h,
nnet_pooling.h, nnet_batchnorm.h, nnet_padding.h) with ap_fixed casts written out from
ap_fixed_base.h; the emulator must equal it bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from l0emu.fixedpoint.spec import spec_inputs
from l0emu.fixedpoint._codegen import _emit_float_cast, _Names
from l0emu.fixedpoint.aptypes import ROUNDING_CODES, parse_type
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError, SpecError
from l0emu.fixedpoint.casts import cast_mantissa

ROUNDINGS = list(ROUNDING_CODES)
OVERFLOWS = ["WRAP", "SAT", "SAT_ZERO", "SAT_SYM"]


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


# ----------------------------------------------------------------------------- reference


def ref_cast(m, src_frac, t):
    """ap_fixed_base conversion: quantize the dropped bits, then the overflow mode."""
    shift = src_frac - t.frac
    if shift > 0:
        q = m >> shift
        rem = m - (q << shift)
        half = 1 << (shift - 1)
        neg = m < 0
        q += {
            "TRN": False,
            "TRN_ZERO": neg and rem != 0,
            "RND": rem >= half,
            "RND_ZERO": rem > half or (rem == half and neg),
            "RND_MIN_INF": rem > half,
            "RND_INF": rem > half or (rem == half and not neg),
            "RND_CONV": rem > half or (rem == half and q % 2 == 1),
        }[t.rounding]
    else:
        q = m << -shift
    lo, hi = t.min_mantissa, t.max_mantissa
    if t.saturation == "SAT_SYM" and t.signed:
        lo = -hi
    if lo <= q <= hi:
        return q
    if t.saturation in ("SAT", "SAT_SYM"):
        return hi if q > hi else lo
    if t.saturation == "SAT_ZERO":
        return 0
    q &= (1 << t.width) - 1
    return q - (1 << t.width) if t.signed and q >> (t.width - 1) else q


def ref_product(x, x_frac, w, w_t, kind):
    """nnet::product::<kind>::product -> (mantissa, frac)."""
    if kind == "mult":
        return x * w, x_frac + w_t.frac
    if kind == "weight_ternary":
        return (0 if w == 0 else (-x if w == -1 else x)), x_frac
    return (-x if w == 0 else x), x_frac  # weight_binary


def ref_weight_exponential(x, x_t, s, s_t, exponent_width):
    """nnet::product::weight_exponential -> (mantissa, frac): r_T = ap_fixed<2*(E+W), E+W> (TRN,
    WRAP; may exceed 64 bits, so on Python ints); ``r_T(a) << w.weight`` keeps r_T's width
    (ap_fixed_base::operator<< / >> on V); sign 0 negates into r_T."""
    half = exponent_width + x_t.width

    def wrap(m):  # two's complement in 2*half bits
        m &= (1 << (2 * half)) - 1
        return m - (1 << (2 * half)) if m >> (2 * half - 1) else m

    def floor_shift(m, k):  # m * 2**k, floored (Python's >> floors)
        return m << k if k >= 0 else m >> -k

    e = abs(s).bit_length() - 1 - s_t.frac  # the spec holds +-2**e as a scale_type mantissa
    r = wrap(floor_shift(x, half - x_t.frac))
    y = wrap(floor_shift(r, e))
    return (wrap(-y) if s < 0 else y), half


def ref_dot(layer, xs, x_frac, weights_for):
    """One output of dense_latency / conv_2d_latency_cl: bias, products, ordered sum, cast."""
    acc_t, bias_t, w_t = (parse_type(layer[f]) for f in ("accum_type", "bias_type", "weight_type"))
    res_t = parse_type(layer["result_type"])
    out = []
    for o, b in enumerate(layer["biases"]):
        acc = ref_cast(b, bias_t.frac, acc_t)
        for x, w in zip(xs, weights_for(o)):
            p, p_frac = ref_product(x, x_frac, w, w_t, layer["product"])
            acc = ref_cast(acc + ref_cast(p, p_frac, acc_t), acc_t.frac, acc_t)
        out.append(ref_cast(acc, acc_t.frac, res_t))
    return out


def ref_pad(x, shape, pad):
    h, w, c = shape
    top, bottom, left, right = pad
    wp = w + left + right
    out = [0] * ((h + top + bottom) * wp * c)
    for i in range(h):
        for j in range(w):
            for ch in range(c):
                out[((i + top) * wp + j + left) * c + ch] = x[(i * w + j) * c + ch]
    return out, (h + top + bottom, wp, c)


def ref_layer(layer, x, x_t):
    op = layer["op"]
    res_t = parse_type(layer["result_type"])
    if op == "flatten":
        return x, x_t
    if op == "dense":
        n_out = layer["n_out"]
        return ref_dot(layer, x, x_t.frac, lambda o: layer["weights"][o::n_out]), res_t
    if op == "relu":
        return [ref_cast(v, x_t.frac, res_t) if v > 0 else 0 for v in x], res_t
    if op == "linear":
        return [ref_cast(v, x_t.frac, res_t) for v in x], res_t
    if op == "zero_pad2d":
        padded, _ = ref_pad(x, layer["input_shape"], layer["pad"])
        return [ref_cast(v, x_t.frac, res_t) for v in padded], res_t
    if op == "leaky_relu":
        p_t = parse_type(layer["param_type"])
        return [ref_cast(v, x_t.frac, res_t) if v > 0 else ref_cast(layer["param"] * v, x_t.frac + p_t.frac, res_t) for v in x], res_t
    if op in ("sigmoid", "tanh"):
        n, span, t_t = layer["table_size"], {"sigmoid": 16, "tanh": 8}[op], parse_type(layer["table_type"])
        out = []
        for v in x:
            num, den = v * n, span * 2**x_t.frac  # x * N / R, truncated toward zero (exact rationals)
            d = abs(num) // den if x_t.frac >= 0 else abs(num) * 2**-x_t.frac // span
            d = -d if num < 0 else d
            k = min(max(d + (span // 2) * n // span, 0), n - 1)
            out.append(ref_cast(layer["table"][k], t_t.frac, res_t))
        return out, res_t
    if op == "scale":
        s_t, b_t = parse_type(layer["scale_type"]), parse_type(layer["bias_type"])
        frac = max(x_t.frac + s_t.frac, b_t.frac)
        c = len(layer["scale"])
        out = []
        for i, v in enumerate(x):
            s, b = layer["scale"][i % c], layer["bias"][i % c]
            if layer.get("product") == "weight_exponential":
                y, y_frac = ref_weight_exponential(v, x_t, s, s_t, layer["scale_exponent_width"])
                frac = max(y_frac, b_t.frac)
                full = (y << (frac - y_frac)) + (b << (frac - b_t.frac))
            else:
                full = (v * s << (frac - x_t.frac - s_t.frac)) + (b << (frac - b_t.frac))
            out.append(ref_cast(full, frac, res_t))
        return out, res_t
    if op == "conv2d":
        xp, (hp, wp, c) = ref_pad(x, layer["input_shape"], layer["pad"])
        kh, kw = layer["kernel"]
        sh, sw = layer["strides"]
        oh_n, ow_n, f = layer["output_shape"]
        out = []
        for oh in range(oh_n):
            for ow in range(ow_n):
                window = [
                    xp[((oh * sh + a) * wp + ow * sw + b) * c + ch] for a in range(kh) for b in range(kw) for ch in range(c)
                ]
                out += ref_dot(layer, window, x_t.frac, lambda o: layer["weights"][o::f])
        return out, res_t
    return ref_pool(layer, x, x_t, res_t), res_t


def ref_pool(layer, x, x_t, res_t):
    """pooling2d_cl: restricted padded loops, pad_val, max in T / average in accum_t."""
    h, w, c = layer["input_shape"]
    ph, pw = layer["pool"]
    sh, sw = layer["strides"]
    top, bottom, left, right = layer["pad"]
    is_max = layer["op"] == "max_pool2d"
    acc_t = parse_type(layer["accum_type"]) if "accum_type" in layer else x_t  # hls4ml: max accum = input
    pad_val = (-(1 << (x_t.width - 1)) if x_t.signed else 1 << (x_t.width - 1)) if is_max else 0
    rw = (w + left + right - pw) // sw * sw + 1
    rh = (h + top + bottom - ph) // sh * sh + 1
    ow_n = layer["output_shape"][1]
    out = [0] * (layer["output_shape"][0] * ow_n * c)
    for ff in range(c):
        for ii in range(0, rh, sh):
            for jj in range(0, rw, sw):
                pool, overlap = [], 0
                for kk in range(ph):
                    for ll in range(pw):
                        if top <= ii + kk < h + top and left <= jj + ll < w + left:
                            pool.append(x[((ii + kk - top) * w + jj + ll - left) * c + ff])
                            overlap += 1
                        else:
                            pool.append(pad_val)
                if is_max:
                    y = ref_cast(max(pool), x_t.frac, acc_t)
                else:
                    wide = max(acc_t.frac, x_t.frac)
                    y = 0
                    for v in pool:
                        y = ref_cast((y << (wide - acc_t.frac)) + (v << (wide - x_t.frac)), wide, acc_t)
                    y = -((-y) // overlap) if y < 0 else y // overlap  # C division truncates toward 0
                out[((ii // sh) * ow_n + jj // sw) * c + ff] = ref_cast(y, acc_t.frac, res_t)
    return out


def ref_network(spec, x_mantissas):
    rows = []
    for event in x_mantissas:
        x, x_t = [int(v) for v in event], parse_type(spec_inputs(spec)[0]["type"])
        for layer in spec["layers"]:
            x, x_t = ref_layer(layer, x, x_t)
        rows.append(x)
    return np.array(rows, dtype=np.int64)


# ------------------------------------------------------------------------- spec builders


def make_spec(layers, input_shape, input_type="ap_fixed<8,3>"):
    n_out = int(np.prod(layers[-1]["output_shape"]))
    return {
        "format": "l0emu-spec/2",
        "name": "tiny",
        "source": {"io_type": "io_parallel"},
        "inputs": [{"name": "image", "shape": list(input_shape), "type": input_type}],
        "layers": layers,
        "outputs": [{"name": f"y{i}", "index": i, "scale": 2.0, "offset": 0.5, "unit": "GeV"} for i in range(n_out)],
    }


def conv(name, shape, filters, rng, *, padding="valid", strides=(1, 1), acc="ap_fixed<20,8>", res=None,
         wt="ap_fixed<4,1>", product="mult", weights=None):
    h, w, c = shape
    pad = [1, 1, 1, 1] if padding == "same" else [0, 0, 0, 0]
    oh = (h + pad[0] + pad[1] - 3) // strides[0] + 1
    ow = (w + pad[2] + pad[3] - 3) // strides[1] + 1
    wbits = parse_type(wt)
    if weights is None:
        weights = rng.integers(wbits.min_mantissa, wbits.max_mantissa + 1, 9 * c * filters).tolist()
    layer = {
        "name": name, "op": "conv2d", "input_shape": [h, w, c], "output_shape": [oh, ow, filters],
        "kernel": [3, 3], "strides": list(strides), "padding": padding, "pad": pad, "filters": filters,
        "weight_type": wt, "bias_type": "ap_fixed<4,1>", "accum_type": acc, "result_type": res or acc,
        "weights": weights, "weights_shape": [3, 3, c, filters],
        "biases": rng.integers(-8, 8, filters).tolist(), "product": product,
    }
    return layer, (oh, ow, filters)


def dense(name, n_in, n_out, rng, *, acc="ap_fixed<20,8>", res=None, wt="ap_fixed<6,2>", product="mult"):
    wbits = parse_type(wt)
    return {
        "name": name, "op": "dense", "input_shape": [n_in], "output_shape": [n_out], "n_in": n_in, "n_out": n_out,
        "weight_type": wt, "bias_type": "ap_fixed<6,2>", "accum_type": acc, "result_type": res or acc,
        "weights": rng.integers(wbits.min_mantissa, wbits.max_mantissa + 1, n_in * n_out).tolist(),
        "weights_shape": [n_in, n_out], "biases": rng.integers(-32, 32, n_out).tolist(), "product": product,
    }


def elementwise(name, op, shape, result_type):
    return {"name": name, "op": op, "input_shape": list(shape), "output_shape": list(shape), "result_type": result_type}


def pool(name, op, shape, *, pool_size=(2, 2), strides=(2, 2), pad=(0, 0, 0, 0), result_type, accum_type=None):
    h, w, c = shape
    oh = (h + pad[0] + pad[1] - pool_size[0]) // strides[0] + 1
    ow = (w + pad[2] + pad[3] - pool_size[1]) // strides[1] + 1
    layer = {
        "name": name, "op": op, "input_shape": [h, w, c], "output_shape": [oh, ow, c], "pool": list(pool_size),
        "strides": list(strides), "padding": "same" if any(pad) else "valid", "pad": list(pad),
        "result_type": result_type,
    }
    if accum_type:
        layer["accum_type"] = accum_type
    return layer, (oh, ow, c)


def random_inputs(spec, n, rng, density=0.5):
    """Float inputs exactly on the input type's grid (so both paths see the same mantissas)."""
    t = parse_type(spec_inputs(spec)[0]["type"])
    shape = spec_inputs(spec)[0]["shape"]
    m = rng.integers(t.min_mantissa, t.max_mantissa + 1, (n, *shape))
    m = np.where(rng.random(m.shape) < density, m, 0)
    return m, t.to_float(m)


def assert_matches_reference(spec, n=37, seed=0, trace=False):
    """n = 37 events: one full block of 32 and a partial one; ``trace`` also checks trace()."""
    rng = np.random.default_rng(seed)
    m, x = random_inputs(spec, n, rng)
    emu = Emulator.from_spec(spec)
    got = emu.predict_raw(x)
    want = ref_network(spec, m.reshape(n, -1))
    np.testing.assert_array_equal(got, want)
    if trace:
        traced = emu.trace(x)
        assert list(traced) == [layer["name"] for layer in spec["layers"]]
        last = traced[spec["layers"][-1]["name"]].reshape(n, -1)
        np.testing.assert_array_equal(last, emu.output_type.to_float(want))
    return emu, got


# --------------------------------------------------------------------------------- tests


def test_student_like_network_exact_path():
    rng = np.random.default_rng(1)
    layers, s = [], (9, 16, 1)
    for i, f in enumerate([1, 2]):
        layer, s = conv(f"conv{i}", s, f, rng, acc="ap_fixed<25,12>")
        layers += [layer, elementwise(f"relu{i}", "relu", s, "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>")]
    n = int(np.prod(s))
    layers.append(elementwise("flatten", "flatten", (n,), "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>") | {"input_shape": list(s)})
    layers += [dense("dense", n, 3, rng, acc="ap_fixed<25,12>"), elementwise("out", "linear", (3,), "ap_fixed<12,6,AP_RND,AP_SAT>")]
    spec = make_spec(layers, (9, 16, 1), "ap_fixed<16,6>")
    emu, _ = assert_matches_reference(spec, trace=True)
    # the wide accumulators are provably lossless: sums are emitted without per-step casts
    assert "cast(s + p" not in emu.source


@pytest.mark.parametrize("stepwise", [False, True])
def test_big_layers_loop_over_weight_arrays(monkeypatch, stepwise):
    """Above UNROLL_LIMIT nonzero weights a layer loops over module-level arrays: same bits
    on both arithmetics, with hls4ml's order of operations where per-step casts matter."""
    monkeypatch.setattr("l0emu.fixedpoint._codegen.UNROLL_LIMIT", 8)
    rng = np.random.default_rng(5)
    acc = "ap_fixed<7,3,AP_RND,AP_SAT>" if stepwise else "ap_fixed<25,12>"
    layer, s = conv("conv", (5, 6, 2), 3, rng, padding="same", strides=(1, 2), acc=acc)
    relu = elementwise("relu", "relu", s, "ap_ufixed<5,2,AP_RND,AP_SAT>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), relu["result_type"]) | {"input_shape": list(s)}
    out = dense("out", int(np.prod(s)), 3, rng, acc=acc)
    small = dense("small", 3, 2, rng, acc=acc if stepwise else "ap_fixed<40,20>")  # 6 weights: unrolled
    emu, _ = assert_matches_reference(make_spec([layer, relu, flat, out, small], (5, 6, 2)), trace=True)
    assert emu.source.count("= np.array(") == 6  # weights, biases and taps of the two big layers
    assert ("cast(s + p" in emu.source) is stepwise  # the small layer, unrolled


@pytest.mark.parametrize("modes", [("RND", "TRN_ZERO", "RND_CONV", "RND_ZERO"), ("RND_INF", "RND_MIN_INF", "TRN", "RND")])
def test_result_casts_every_rounding_mode(modes):
    """Casts that drop bits, one rounding mode per cast; two networks cover all seven modes."""
    conv_mode, relu_mode, dense_mode, out_mode = modes
    rng = np.random.default_rng(2)
    layer, s = conv("conv", (4, 5, 2), 3, rng, padding="same", res=f"ap_fixed<6,2,AP_{conv_mode},AP_SAT>")
    relu = elementwise("relu", "relu", s, f"ap_ufixed<3,1,AP_{relu_mode},AP_SAT>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), relu["result_type"]) | {"input_shape": list(s)}
    hidden = dense("hidden", int(np.prod(s)), 4, rng, res=f"ap_fixed<9,4,AP_{dense_mode},AP_WRAP>")
    out = elementwise("out", "linear", (4,), f"ap_fixed<6,3,AP_{out_mode},AP_SAT_SYM>")
    assert_matches_reference(make_spec([layer, relu, flat, hidden, out], (4, 5, 2)))


@pytest.mark.parametrize("overflows", [("WRAP", "SAT"), ("SAT_ZERO", "SAT_SYM")])
def test_narrow_accumulators_cast_every_step(overflows):
    """Accumulators that overflow and products that lose bits: hls4ml's per-step casts and order."""
    conv_mode, dense_mode = overflows
    rng = np.random.default_rng(3)
    acc = f"ap_fixed<7,3,AP_RND,AP_{conv_mode}>"
    layer, s = conv("conv", (5, 5, 2), 2, rng, strides=(2, 2), acc=acc, res=f"ap_fixed<6,3,AP_TRN,AP_{conv_mode}>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), layer["result_type"]) | {"input_shape": list(s)}
    out = dense("out", int(np.prod(s)), 3, rng, acc=f"ap_fixed<6,2,AP_TRN_ZERO,AP_{dense_mode}>")
    emu, _ = assert_matches_reference(make_spec([layer, flat, out], (5, 5, 2)))
    assert "cast(s + p" in emu.source


@pytest.mark.parametrize("unroll_limit", [10_000, 8])
def test_wrapping_accumulators_sum_exactly_and_wrap_once(unroll_limit, monkeypatch):
    """Products that fit without rounding, partial sums that leave a wrapping accumulator (as
    hls4ml's bit-exact inference writes them): the exact sum wrapped once is the reference's
    per-step wrapping, unrolled and looped, whatever the inputs."""
    monkeypatch.setattr("l0emu.fixedpoint._codegen.UNROLL_LIMIT", unroll_limit)
    rng = np.random.default_rng(31)
    layer, s = conv("conv", (5, 6, 2), 4, rng, acc="ap_fixed<9,3>", res="ap_fixed<7,2,AP_RND,AP_SAT>")  # frac 6 = 3 + 3
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), layer["result_type"]) | {"input_shape": list(s)}
    out = dense("out", int(np.prod(s)), 3, rng, acc="ap_fixed<10,3>", wt="ap_fixed<6,1>")  # frac 5 + 5 + ... fits 7
    out["accum_type"] = out["result_type"] = "ap_fixed<12,2>"  # frac 10 = 5 + 5
    spec = make_spec([layer, flat, out], (5, 6, 2), "ap_fixed<6,3>")
    emu, _ = assert_matches_reference(spec, n=300)
    assert " + p, " not in emu.source  # no per-step casts, unrolled or looped


@pytest.mark.parametrize("overflow", OVERFLOWS)
def test_single_products_that_overflow_the_accumulator_are_cast(overflow):
    """Bias + sum fits the accumulator but one product alone does not (issue 10's case, in
    every overflow mode): hls4ml casts each product into accum_t first, so the emulator
    must not take its exact path; SAT_SYM also gives up the most negative value."""
    acc = f"ap_fixed<16,6,AP_TRN,AP_{overflow}>"
    layer = {
        "name": "d", "op": "dense", "input_shape": [1], "output_shape": [1], "n_in": 1, "n_out": 1,
        "weight_type": "ap_fixed<4,2>", "bias_type": "ap_fixed<8,6>", "accum_type": acc, "result_type": acc,
        "weights": [4], "weights_shape": [1, 1], "biases": [-63], "product": "mult",
    }  # fmt: skip
    spec = make_spec([layer], (1,), "ap_ufixed<6,6>")
    m = np.arange(64).reshape(64, 1)
    emu = Emulator.from_spec(spec)
    got = emu.predict_raw(parse_type("ap_ufixed<6,6>").to_float(m))
    np.testing.assert_array_equal(got, ref_network(spec, m))
    # a wrapping accumulator sums exactly and wraps once (modular arithmetic); the others step
    assert ("cast(s + p" in emu.source) is (overflow != "WRAP")
    # SAT_SYM: x = 31, w = -1, b = -1 reaches exactly -32, the value SAT_SYM gives up
    sym = dict(layer, accum_type="ap_fixed<16,6,AP_TRN,AP_SAT_SYM>", result_type="ap_fixed<16,6>", weights=[-4], biases=[-4])
    spec = make_spec([sym], (1,), "ap_ufixed<5,5>")
    m = np.arange(32).reshape(32, 1)
    got = Emulator.from_spec(spec).predict_raw(m.astype(np.float64))
    want = ref_network(spec, m)
    assert want[31, 0] == -(1 << 15) + 1
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("table_size", [1024, 37])
def test_leaky_relu_and_table_activations(table_size):
    """leaky_relu, sigmoid and tanh against the reference: inputs past both ends of the
    tables, negative values truncated toward zero, odd table sizes."""
    rng = np.random.default_rng(table_size)
    hidden = dense("d", 6, 8, rng, acc="ap_fixed<14,6>", res="ap_fixed<12,6,AP_RND,AP_SAT>")
    leaky = elementwise("leaky", "leaky_relu", (8,), "ap_fixed<10,5,AP_RND_CONV,AP_SAT>") | {"param_type": "ap_fixed<8,1>", "param": 77}
    table_t = parse_type("ap_fixed<18,8>")
    sig = elementwise("sig", "sigmoid", (8,), "ap_fixed<9,3,AP_RND,AP_SAT>") | {
        "table_size": table_size, "table_type": str(table_t),
        "table": rng.integers(-(1 << 11), 1 << 11, table_size).tolist(),
    }  # fmt: skip
    tanh = elementwise("th", "tanh", (8,), "ap_fixed<8,1>") | {
        "table_size": table_size, "table_type": str(table_t), "table": rng.integers(-1024, 1024, table_size).tolist(),
    }  # fmt: skip
    emu, _ = assert_matches_reference(make_spec([hidden, leaky, sig, tanh], (6,)), n=300, trace=True)
    assert "TABLE" in emu.source


def _float_cast_function(src_t, dst_t, dt):
    """The emitted float-domain cast lines as a plain Python function (numpy scalars)."""
    lines = []
    res = _emit_float_cast(lines, _Names(), "v", src_t.frac, src_t.min_mantissa, src_t.max_mantissa, dst_t, dt)
    assert res is not None
    body = "".join(f"    {line}\n" for line in lines)
    namespace = {"np": np, "f32": np.float32, "f64": np.float64}
    exec(f"def cast_v(v):\n{body}    return {res[0]}\n", namespace)  # noqa: S102 - our own generated code
    return namespace["cast_v"]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("overflow", OVERFLOWS)
@pytest.mark.parametrize(
    ("src", "dst"),
    [("ap_fixed<9,4>", "ap_fixed<5,2>"), ("ap_ufixed<8,3>", "ap_fixed<6,4>"), ("ap_fixed<6,4>", "ap_ufixed<6,1>")],
)
@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_float_domain_cast_exhaustive(src, dst, rounding, overflow, dt):
    """Every source mantissa through the emitted float cast = cast_mantissa = the reference."""
    t_src = parse_type(src)
    t_dst = parse_type(f"{dst[:-1]},AP_{rounding},AP_{overflow}>")
    cast_v = _float_cast_function(t_src, t_dst, dt)
    scalar = {"f32": np.float32, "f64": np.float64}[dt]
    for m in range(t_src.min_mantissa, t_src.max_mantissa + 1):
        got = cast_v(scalar(m))
        assert float(got).is_integer()
        assert int(got) == ref_cast(m, t_src.frac, t_dst) == cast_mantissa(m, t_src.frac, *t_dst.codes()), m


@pytest.mark.parametrize("overflow", ["WRAP", "SAT_ZERO"])
def test_compiled_elementwise_cast(overflow):
    """The same casts compiled by numba in a one-layer network (float32 SIMD path)."""
    t_src = parse_type("ap_fixed<9,4>")
    t_dst = parse_type(f"ap_fixed<5,2,AP_RND_CONV,AP_{overflow}>")
    spec = make_spec([elementwise("cast", "linear", (1,), str(t_dst))], (1,), str(t_src))
    m = np.arange(t_src.min_mantissa, t_src.max_mantissa + 1)
    got = Emulator.from_spec(spec).predict_raw(t_src.to_float(m)[:, None])[:, 0]
    assert got.tolist() == [ref_cast(int(v), t_src.frac, t_dst) for v in m]


def test_special_products():
    """weight_ternary maps w = -2 of ap_int<2> to +a (nnet_mult.h), unlike a multiplication;
    weight_binary maps w = 0 to -a."""
    rng = np.random.default_rng(4)
    ternary = rng.integers(-2, 2, 9 * 2 * 2).tolist()
    assert -2 in ternary
    layer, s = conv("conv", (4, 4, 2), 2, rng, wt="ap_int<2>", product="weight_ternary", weights=ternary)
    relu = elementwise("relu", "relu", s, "ap_fixed<8,4,AP_RND_INF,AP_SAT_SYM>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), relu["result_type"]) | {"input_shape": list(s)}
    out = dense("out", int(np.prod(s)), 2, rng, wt="ap_uint<1>", product="weight_binary")
    assert_matches_reference(make_spec([layer, relu, flat, out], (4, 4, 2)))


@pytest.mark.parametrize(("in_type", "mid_type"), [("ap_fixed<8,3>", "ap_fixed<7,3,AP_RND,AP_SAT>"), ("ap_ufixed<8,3>", "ap_ufixed<7,3,AP_RND,AP_SAT>")])
def test_pooling(in_type, mid_type):
    """Max then average pooling, padded and not; an unsigned max pads with 2**(W-1) as
    pad_val<T, Max> sets only the top bit."""
    first_op, second_op = ("max_pool2d", "avg_pool2d") if in_type.startswith("ap_fixed") else ("avg_pool2d", "max_pool2d")
    acc = "ap_fixed<10,4,AP_TRN,AP_WRAP>"
    first, s = pool("p1", first_op, (5, 5, 2), pad=(0, 1, 0, 1), result_type=mid_type,
                    accum_type=acc if first_op == "avg_pool2d" else None)
    second, s = pool("p2", second_op, s, strides=(1, 1), pad=(0, 1, 0, 1) if second_op == "max_pool2d" else (0, 0, 0, 0),
                     result_type="ap_fixed<6,3,AP_RND_CONV,AP_SAT>", accum_type=acc if second_op == "avg_pool2d" else None)
    assert_matches_reference(make_spec([first, second], (5, 5, 2), in_type))


def test_scale_and_zero_padding():
    rng = np.random.default_rng(6)
    padl = {"name": "pad", "op": "zero_pad2d", "input_shape": [3, 4, 2], "output_shape": [5, 6, 2],
            "pad": [1, 1, 1, 1], "result_type": "ap_fixed<8,3>"}
    layer, s = conv("conv", (5, 6, 2), 2, rng)
    scale = {"name": "bn", "op": "scale", "input_shape": list(s), "output_shape": list(s),
             "scale_type": "ap_fixed<8,2>", "bias_type": "ap_fixed<8,3>", "scale": [37, -90], "bias": [12, -70],
             "result_type": "ap_fixed<9,4,AP_RND_CONV,AP_SAT>", "product": "mult"}
    relu = elementwise("relu", "relu", s, "ap_ufixed<5,2,AP_RND,AP_SAT>")
    assert_matches_reference(make_spec([padl, layer, scale, relu], (3, 4, 2)))


def exponential_scale(name, shape, exponents, signs, *, exponent_width, result_type):
    """An ApplyAlpha layer as the bridge exports QKeras auto_po2: +-2**e as exact mantissas."""
    frac = 1 << (exponent_width - 1)
    return {
        "name": name, "op": "scale", "input_shape": list(shape), "output_shape": list(shape),
        "product": "weight_exponential", "scale_exponent_width": exponent_width,
        "scale_type": f"ap_fixed<{2 * frac + 1},{frac + 1}>",
        "scale": [sign * (1 << (e + frac)) for sign, e in zip(signs, exponents)],
        "bias_type": "ap_fixed<6,2>", "bias": list(range(-len(signs), len(signs), 2))[: len(signs)],
        "result_type": result_type,
    }


@pytest.mark.parametrize(
    ("conv_result", "exponent_width", "exponents", "lossless"),
    [
        # hls4ml's usual case: lossless shifts, emitted as a float multiplication
        ("ap_fixed<12,5>", 3, [-2, 1, 0], True),
        # a wide conv result: r_T = ap_fixed<76,38> exceeds 64 bits, but its shifts are lossless
        ("ap_fixed<35,15>", 3, [-2, 3, 0], True),
        # r_T = ap_fixed<22,11>: x << 15 loses its top bits (wraps), x >> 16 floors to 0 or -1
        ("ap_fixed<6,3>", 5, [15, -16, 3], False),
        # r_T = ap_fixed<18,9> holds 9 fraction bits, x has 7: right shifts by 8 and 5 floor
        ("ap_fixed<5,-2>", 4, [-8, 7, -5], False),
    ],
)
def test_weight_exponential_scale(conv_result, exponent_width, exponents, lossless):
    """QKeras alpha='auto_po2': conv, then ApplyAlpha's shift product, negative signs included."""
    rng = np.random.default_rng(11)
    layer, s = conv("conv", (4, 5, 2), 3, rng, padding="same", acc="ap_fixed<20,8>", res=conv_result)
    scale = exponential_scale("alpha", s, exponents, [1, -1, -1], exponent_width=exponent_width, result_type="ap_fixed<16,6>")
    relu = elementwise("relu", "relu", s, "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>")
    emu, _ = assert_matches_reference(make_spec([layer, scale, relu], (4, 5, 2)), n=70, trace=True)
    assert ("shift and bias" in emu.source) is not lossless


def test_weight_exponential_bad_scales_are_spec_errors():
    shape = (2,)
    layer = exponential_scale("alpha", shape, [0, 1], [1, 1], exponent_width=2, result_type="ap_fixed<8,3>")
    layer["scale"][0] = 3
    with pytest.raises(SpecError, match=r"'alpha'.*mantissa 3 is not \+-2\*\*e"):
        Emulator.from_spec(make_spec([layer], shape))
    layer = exponential_scale("alpha", shape, [0, 2], [1, 1], exponent_width=3, result_type="ap_fixed<8,3>")
    layer["scale_exponent_width"] = 2
    with pytest.raises(SpecError, match=r"'alpha'.*exponent 2 does not fit"):
        Emulator.from_spec(make_spec([layer], shape))


def test_uint8_counts_equal_float_inputs_and_outputs():
    rng = np.random.default_rng(7)
    layer, s = conv("conv", (9, 16, 1), 2, rng)
    relu = elementwise("relu", "relu", s, "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), relu["result_type"]) | {"input_shape": list(s)}
    out = dense("out", int(np.prod(s)), 2, rng)
    emu = Emulator.from_spec(make_spec([layer, relu, flat, out], (9, 16, 1), "ap_fixed<16,6>"))
    counts = (rng.integers(0, 3, (70, 9, 16)) * (rng.random((70, 9, 16)) < 0.1)).astype(np.uint8)
    raw = emu.predict_raw(counts)
    np.testing.assert_array_equal(raw, emu.predict_raw(counts.astype(np.float32)[..., None] * 0.5))
    physical = emu.predict(counts)
    np.testing.assert_array_equal(physical["y1"], 0.5 + 2.0 * emu.output_type.to_float(raw[:, 1]))


def test_threshold_mantissa_is_the_smallest_passing_raw_value():
    rng = np.random.default_rng(8)
    emu = Emulator.from_spec(make_spec([dense("out", 3, 2, rng, res="ap_fixed<10,5>")], (3,)))
    lsb = 2.0**-5  # physical = 0.5 + 2 * raw * 2**-5
    t = emu.threshold_mantissa("y0", 10.0)
    assert 0.5 + 2 * t * lsb >= 10.0 > 0.5 + 2 * (t - 1) * lsb
    assert emu.threshold_mantissa("y0", 1e6) == emu.output_type.max_mantissa + 1
    with pytest.raises(ConfigError, match="no output 'pt'"):
        emu.threshold_mantissa("pt", 10.0)


def test_bad_input_shape_is_a_config_error():
    emu = Emulator.from_spec(make_spec([dense("out", 3, 2, np.random.default_rng(9))], (3,)))
    with pytest.raises(ConfigError, match="takes"):
        emu.predict_raw(np.zeros((4, 5)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["layers"][0].update(op="conv3d"), r"layer 'out'.*unknown op 'conv3d'"),
        (lambda s: s["layers"][0].update(accum_type="ap_fixed<20;8>"), r"layer 'out'.*accum_type"),
        (lambda s: s["layers"][0]["weights"].pop(), r"layer 'out'.*'weights' holds 5 values"),
        (lambda s: s["layers"][0].update(product="weight_cubic"), r"layer 'out'.*product.*'weight_cubic'"),
    ],
)
def test_bad_specs_name_the_layer_and_field(edit, message, tmp_path):
    spec = make_spec([dense("out", 3, 2, np.random.default_rng(10))], (3,))
    edit(spec)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(SpecError, match=message):
        Emulator.from_spec(path)


def test_io_stream_one_row_kernel_with_vertical_stride_is_refused():
    rng = np.random.default_rng(0)
    stream = {"source": {"io_type": "io_stream"}}
    layer, _ = conv("c", (6, 6, 1), 1, rng, strides=(2, 2))  # (6 - 3) % 2 == 1: exact all the same
    Emulator.from_spec({**make_spec([layer], (6, 6, 1)), **stream})
    layer = {**layer, "kernel": [1, 3], "strides": [2, 1], "output_shape": [3, 4, 1], "weights": layer["weights"][:3],
             "weights_shape": [1, 3, 1, 1]}  # fmt: skip
    spec = make_spec([layer], (6, 6, 1))
    Emulator.from_spec(spec)  # io_parallel is exact
    with pytest.raises(SpecError, match="layer 'c': an io_stream conv2d with a 1x3 kernel and vertical stride 2"):
        Emulator.from_spec({**spec, **stream})


def test_every_spec_op_has_one_emitter():
    """The generator's dispatch table and the spec's op list are the same set of ops."""
    from l0emu.fixedpoint._codegen import _OP_EMITTERS
    from l0emu.fixedpoint.spec import OPS

    assert set(_OP_EMITTERS) == set(OPS)


def test_generated_source_is_readable():
    """Buffers carry their layer's name, each term of a sum has its own line, and no
    multiplication by one or zero offset is emitted."""
    rng = np.random.default_rng(12)
    layer, s = conv("conv1", (5, 6, 1), 2, rng, acc="ap_fixed<25,12>")
    flat = elementwise("flatten", "flatten", (int(np.prod(s)),), layer["result_type"]) | {"input_shape": list(s)}
    out = dense("head", int(np.prod(s)), 2, rng, acc="ap_fixed<30,14>")
    emu = Emulator.from_spec(make_spec([layer, flat, out], (5, 6, 1)))
    source = emu.source
    for name in ("image_in", "conv1_acc", "conv1_out", "head_acc", "head_out"):
        assert f"{name} = np.zeros(" in source, name
    assert " * 1 " not in source and "+ 0 * BLOCK" not in source and "f32(1.0) *" not in source
    assert max(len(line) for line in source.splitlines()) < 160
