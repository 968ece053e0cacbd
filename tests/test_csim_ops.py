"""Emulator == hls4ml 1.3.0 C-simulation, bit for bit, on small hand-built networks.

Each case builds a Keras/QKeras model with chosen weights, converts it with the bridge
(types set through the conversion config where the case is about types), compiles the
C-simulation and compares every output bit on random inputs over the input type's whole
range (uniform mantissas plus zero, the minimum and the maximum).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from l0emu.firmware import hls4ml_bridge as bridge  # noqa: E402
from l0emu.firmware.keras_env import keras  # noqa: E402
from l0emu.aptypes import parse_type  # noqa: E402
from l0emu.emulator import Emulator  # noqa: E402

pytestmark = pytest.mark.hls4ml

N_RANDOM = 2000


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def full_range_inputs(spec, n, seed=0):
    """``n`` inputs whose mantissas are uniform over the input type, plus all-zero, all-min
    and all-max events, as float values of the input type."""
    t = parse_type(spec["input"]["type"])
    shape = tuple(spec["input"]["shape"])
    rng = np.random.default_rng(seed)
    mantissas = rng.integers(t.min_mantissa, t.max_mantissa + 1, (n, *shape))
    edges = np.stack([np.full(shape, v) for v in (0, t.min_mantissa, t.max_mantissa)])
    return t.to_float(np.concatenate([edges, mantissas]))


def convert_and_compare(model, tmp_path, settings=None, x=None, n=N_RANDOM):
    """Convert ``model``, compile its C-simulation; return (spec, inputs, emulator, csim) outputs."""
    model.save(str(tmp_path / "model.h5"))
    hls_model, spec = bridge.convert(tmp_path / "model.h5", tmp_path / "fw", settings or {}, name="case", compile=True)
    x = full_range_inputs(spec, n) if x is None else x
    theirs = bridge.csim_raw(hls_model, x, spec)
    ours = Emulator.from_spec(spec).predict_raw(x.astype(np.float32))
    return spec, x, ours, theirs


def assert_same(ours, theirs, x):
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    assert not len(bad), f"{len(bad)} of {len(x)} events differ (first: input {x[bad[0]].ravel()[:8]}, emulator {ours[bad[0]]}, csim {theirs[bad[0]]})"


def test_saturating_accumulator_saturates_each_product(tmp_path):
    """Issue 10's reproduction: one input ap_ufixed<6,6>, w = 1, b = -31.5, accumulator
    ap_fixed<16,6,AP_TRN,AP_SAT>. hls4ml casts the product x * 1 into accum_t on its own,
    so x >= 32 saturates to 32 - 2**-10 before the bias is added, though x - 31.5 fits."""
    inp = keras.Input((1,), name="x")
    model = keras.Model(inp, keras.layers.Dense(1, name="d")(inp))
    model.set_weights([np.ones((1, 1), "f4"), np.array([-31.5], "f4")])
    settings = {
        "layers": {
            "x": {"precision": {"result": "ap_ufixed<6,6>"}},
            "d": {"precision": {"weight": "ap_fixed<4,2>", "bias": "ap_fixed<8,6>", "accum": "ap_fixed<16,6,AP_TRN,AP_SAT>",
                                "result": "ap_fixed<16,6>"}},
        }
    }  # fmt: skip
    x = np.arange(64, dtype=np.float64).reshape(64, 1)
    spec, x, ours, theirs = convert_and_compare(model, tmp_path, settings, x=x)
    dense = spec["layers"][0]
    assert (spec["input"]["type"], dense["accum_type"]) == ("ap_ufixed<6,6,AP_TRN,AP_WRAP,0>", "ap_fixed<16,6,AP_TRN,AP_SAT,0>")
    # the C-simulation does saturate the product: x = 63 gives 32 - 2**-10 - 31.5
    assert theirs[63, 0] == (1 << 10) // 2 - 1
    assert_same(ours, theirs, x)
