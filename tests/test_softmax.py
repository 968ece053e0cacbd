"""softmax: emulator == hls4ml 1.3.0 C-simulation, bit for bit.

Small dense networks with a softmax head of 3-5 classes: hls4ml's default (stable, tables of
1024 entries of ap_fixed<18,8,AP_RND,AP_SAT>, the exp table capped by the input width), stable
and latency with 1024 and 256 entries and set table / sum types, io_parallel and io_stream, and
argmax. The dense layer's result saturates, so random inputs over the input type's whole range
drive the softmax inputs to both ends of their type (about a third of the values at each end;
when the cases were written, the exp lookups reached both the first and the last entry of every
table). Each case compiles one C-simulation (module-scoped, shared by its checks).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.fixedpoint.spec import spec_inputs  # noqa: E402
from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras, qkeras  # noqa: E402
from l0emu.fixedpoint.aptypes import parse_type  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.errors import L0emuError, SpecError  # noqa: E402
from l0emu.firmware import rtl  # noqa: E402

pytestmark = pytest.mark.hls4ml

N_RANDOM = 2000
SET_TYPES = {"exp_table": "ap_ufixed<12,2,AP_RND,AP_SAT>", "inv_table": "ap_ufixed<12,4,AP_RND,AP_SAT>",
             "accum": "ap_ufixed<14,4,AP_RND,AP_SAT>", "inv_inp": "ap_ufixed<10,4,AP_TRN,AP_SAT>",
             "result": "ap_ufixed<10,1,AP_RND,AP_SAT>"}  # fmt: skip
# name -> (io_type, classes, softmax layer settings (None: Dense(..., activation='softmax')),
#          the dense's result type, (implementation, table_size) expected)
CASES = {
    "default": ("io_parallel", 4, None, "ap_fixed<10,4,AP_TRN,AP_SAT>", ("stable", 1024)),
    "stable_256_types": ("io_parallel", 3, {"table_size": 256, "precision": SET_TYPES}, "ap_fixed<9,3,AP_RND,AP_SAT>", ("stable", 256)),
    "latency_1024": ("io_parallel", 5, {"implementation": "latency"}, "ap_fixed<12,4,AP_TRN,AP_SAT>", ("latency", 1024)),
    "stream_stable": ("io_stream", 4, None, "ap_fixed<10,4,AP_TRN,AP_SAT>", ("stable", 1024)),
    "stream_latency_256_types": ("io_stream", 5, {"implementation": "latency", "table_size": 256, "precision": SET_TYPES},
                                 "ap_fixed<10,3,AP_TRN,AP_SAT>", ("latency", 256)),
    "stream_argmax": ("io_stream", 4, {"implementation": "argmax", "precision": {"result": "ap_ufixed<4,1>"}},
                      "ap_fixed<10,3,AP_TRN,AP_SAT>", ("argmax", None)),
}  # fmt: skip


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def _model(classes, head):
    """x (6) -> Dense(classes) -> softmax; ``head`` None: Dense(..., activation='softmax')."""
    inp = keras.Input((6,), name="x")
    if head is None:
        out = keras.layers.Dense(classes, activation="softmax", name="d")(inp)
    else:
        out = keras.layers.Activation("softmax", name="probs")(keras.layers.Dense(classes, name="d")(inp))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(classes)
    model.set_weights([rng.uniform(-3, 3, (6, classes)).astype("f4"), rng.uniform(-1, 1, classes).astype("f4")])
    return model


@pytest.fixture(scope="module", params=list(CASES))
def converted(request, tmp_path_factory):
    """(name, spec, C-simulation raw outputs, inputs) of one compiled case."""
    io_type, classes, head, softmax_in, _ = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    _model(classes, head).save(str(tmp / "model.h5"))
    layers = {"x": {"precision": {"result": "ap_fixed<10,4>"}}, "d": {"precision": {"result": softmax_in}}}
    if head is not None:  # hls4ml keeps the dense's linear activation as its own layer before it
        layers.update({"d_linear": {"precision": {"result": softmax_in}}, "probs": head})
    hls_model, spec = bridge.convert(tmp / "model.h5", tmp / "fw", {"io_type": io_type, "layers": layers}, name="case", compile=True)
    t = parse_type(spec_inputs(spec)[0]["type"])
    rng = np.random.default_rng(len(request.param))
    mantissas = rng.integers(t.min_mantissa, t.max_mantissa + 1, (N_RANDOM, *spec_inputs(spec)[0]["shape"]))
    edges = np.stack([np.full(spec_inputs(spec)[0]["shape"], v) for v in (0, t.min_mantissa, t.max_mantissa)])
    x = t.to_float(np.concatenate([edges, mantissas]))
    return request.param, spec, bridge.csim_raw(hls_model, x, spec), x


def test_spec_holds_hls4ml_softmax_setup(converted):
    """The implementation and table sizes hls4ml chose: stable caps its exp table at
    2**(W - 1) entries for a signed W-bit input, the address bits of its ap_ufixed x_max - x."""
    name, spec, _, _ = converted
    layer, before = spec["layers"][-1], spec["layers"][-2]
    implementation, size = CASES[name][4]
    assert (layer["op"], layer["implementation"]) == ("softmax", implementation)
    if implementation != "argmax":
        width = parse_type(before["result_type"]).width
        exp_size = min(size, 2 ** (width - 1)) if implementation == "stable" else size
        assert (layer["exp_table_size"], layer["inv_table_size"]) == (exp_size, size)
    if CASES[name][2] is None:
        assert {layer[f] for f in ("exp_table_type", "inv_table_type", "accum_type", "inv_input_type")} == {"ap_fixed<18,8,AP_RND,AP_SAT,0>"}


def test_emulator_equals_csim(converted):
    name, spec, theirs, x = converted
    ours = Emulator.from_spec(spec).predict_raw(x.astype(np.float32))
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert not len(bad), f"{name}: {len(bad)} of {len(x)} events differ (first: emulator {ours[bad[0]]}, csim {theirs[bad[0]]})"
    # the outputs are not degenerate: several distinct probability vectors
    assert len(np.unique(theirs, axis=0)) > (2 if CASES[name][4][0] == "argmax" else 20)


def test_unsupported_softmax_is_refused_naming_the_layer(tmp_path):
    """hls4ml's legacy softmax and QKeras QActivation('softmax') are refused at convert, by name."""
    _model(3, {}).save(str(tmp_path / "model.h5"))
    with pytest.raises(L0emuError, match="'probs'.*legacy.*supported: implementation stable, latency, argmax"):
        bridge.convert(tmp_path / "model.h5", tmp_path / "fw", {"layers": {"probs": {"implementation": "legacy"}}})
    inp = keras.Input((6,), name="x")
    quantized = keras.Model(inp, qkeras.QActivation("softmax", name="qprobs")(keras.layers.Dense(3, name="d")(inp)))
    quantized.save(str(tmp_path / "q.h5"))
    with pytest.raises(L0emuError, match="'qprobs'.*softmax"):
        bridge.convert(tmp_path / "q.h5", tmp_path / "fw_q")


def test_rtl_refuses_softmax_naming_the_layer(converted):
    _, spec, _, _ = converted
    with pytest.raises(SpecError, match=f"layer {spec['layers'][-1]['name']!r}.*'softmax'.*no RTL builder"):
        rtl.check_supported(spec)
