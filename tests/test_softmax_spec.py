"""The spec's ``softmax`` op without hls4ml: its field rules, and the emulator against a plain
model of nnet::softmax written from the template (nnet_activation.h) on small hand-made tables
whose types wrap and saturate. The C-simulation comparison is tests/test_softmax.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from l0emu.fixedpoint.aptypes import parse_type
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import SpecError
from l0emu.fixedpoint.casts import cast_mantissa
from l0emu.fixedpoint.spec import validate_spec

IN_T = parse_type("ap_fixed<4,2>")


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def softmax_spec(implementation, n):
    """x (n) -> softmax. stable: x_max - x in ap_ufixed<3,1> wraps past 2; the 8-entry exp table
    takes all 3 bits, the 16-entry inverse table the top 4 of inv_input_type's 6; accum saturates."""
    layer = {"name": "probs", "op": "softmax", "implementation": implementation, "input_shape": [n], "output_shape": [n],
             "result_type": "ap_ufixed<8,1,AP_RND,AP_SAT>"}  # fmt: skip
    if implementation != "argmax":
        layer.update({
            "exp_table_size": 8, "exp_table_type": "ap_ufixed<6,2>", "exp_table": [63, 40, 22, 13, 7, 4, 2, 1],
            "inv_table_size": 16, "inv_table_type": "ap_ufixed<8,2>", "inv_table": [255 - 15 * i for i in range(16)],
            "accum_type": "ap_ufixed<6,3,AP_RND,AP_SAT>", "inv_input_type": "ap_ufixed<6,3,AP_TRN,AP_WRAP>",
        })  # fmt: skip
        if implementation == "latency":
            layer["exp_table_size"], layer["exp_table"] = 16, [(37 * i) % 64 for i in range(16)]
        if implementation == "stable":
            layer["norm_type"] = "ap_ufixed<3,1>"
    outputs = [{"name": f"p{i}", "index": i, "scale": 1.0, "offset": 0.0} for i in range(n)]
    return {"format": "l0emu-spec/2", "name": "softmax", "source": {}, "inputs": [{"name": "x", "shape": [n], "type": str(IN_T)}],
            "layers": [layer], "outputs": outputs}  # fmt: skip


def _cast(m, frac, type_text):
    return int(cast_mantissa(int(m), int(frac), *parse_type(type_text).codes()))


def _index(m, type_text, size):
    """softmax_idx_from_real_val: the top log2(size) bits of the value's W-bit pattern."""
    t = parse_type(type_text) if isinstance(type_text, str) else type_text
    return (m & ((1 << t.width) - 1)) >> (t.width - (size.bit_length() - 1))


def _tree(values, add):
    """nnet::reduce: the first pow2(floorlog2(N - 1)) values, then the rest."""
    if len(values) == 1:
        return values[0]
    left = 1 << ((len(values) - 1).bit_length() - 1)
    return add(_tree(values[:left], add), _tree(values[left:], add))


def reference(layer, x):
    """One event of nnet::softmax_stable / softmax_latency / softmax_argmax, step by step."""
    res = layer["result_type"]
    if layer["implementation"] == "argmax":
        first = int(np.argmax(x))  # the first of equal maxima, as the template's strict '>'
        return [_cast(1 if i == first else 0, 0, res) for i in range(len(x))]
    acc, exp_t, inv_t = (parse_type(layer[f]) for f in ("accum_type", "exp_table_type", "inv_table_type"))
    if layer["implementation"] == "stable":
        x = [_cast(max(x) - v, IN_T.frac, layer["norm_type"]) for v in x]
        index_t = layer["norm_type"]
    else:
        index_t = IN_T
    e = [_cast(layer["exp_table"][_index(v, index_t, layer["exp_table_size"])], exp_t.frac, layer["accum_type"]) for v in x]
    total = _tree(e, lambda a, b: _cast(a + b, acc.frac, layer["accum_type"]))
    s = _cast(total, acc.frac, layer["inv_input_type"])
    inverse = layer["inv_table"][_index(s, layer["inv_input_type"], layer["inv_table_size"])]
    return [_cast(v * inverse, acc.frac + inv_t.frac, res) for v in e]


@pytest.mark.parametrize(("implementation", "n"), [("stable", 3), ("latency", 3), ("argmax", 3), ("stable", 5)])
def test_emulator_follows_the_template(implementation, n):
    """Every input of ap_fixed<4,2>^3 (4,096 events); for 5 classes (tree 4 + 1) 3,000 random ones."""
    spec = validate_spec(softmax_spec(implementation, n))
    if n == 3:
        grid = np.arange(IN_T.min_mantissa, IN_T.max_mantissa + 1)
        m = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    else:
        m = np.random.default_rng(0).integers(IN_T.min_mantissa, IN_T.max_mantissa + 1, (3000, n))
    ours = Emulator.from_spec(spec).predict_raw(IN_T.to_float(m).astype(np.float32))
    expected = np.array([reference(spec["layers"][0], [int(v) for v in row]) for row in m])
    assert np.array_equal(ours, expected)
    assert len(np.unique(expected, axis=0)) >= (n if implementation == "argmax" else 50)


@pytest.mark.parametrize(
    ("implementation", "change", "message"),
    [
        ("stable", {"exp_table_size": 6, "exp_table": [1] * 6}, "exp_table_size: is 6; a softmax addresses its tables with bits"),
        ("stable", {"inv_table_size": 128, "inv_table": [1] * 128}, "128 entries need more address bits than inv_input_type"),
        ("stable", {"norm_type": None}, "softmax implementation 'stable' needs field 'norm_type'"),
        ("latency", {"norm_type": "ap_ufixed<3,1>"}, "softmax implementation 'latency' does not read 'norm_type'"),
        ("argmax", {"accum_type": "ap_fixed<8,3>"}, "softmax implementation 'argmax' does not read 'accum_type'"),
        ("stable", {"implementation": "legacy"}, "implementation 'legacy' is not one of 'stable', 'latency', 'argmax'"),
        ("stable", {"exp_table": [64] + [1] * 7}, r"exp_table\[0\]: mantissa 64 is outside exp_table_type"),
        ("stable", {"input_shape": [1, 3], "output_shape": [1, 3]}, "a softmax takes a 1-D input"),
    ],
)
def test_softmax_fields_are_checked(implementation, change, message):
    spec = copy.deepcopy(softmax_spec(implementation, 3))
    layer = spec["layers"][0]
    for key, value in change.items():
        if value is None:
            del layer[key]
        else:
            layer[key] = value
    if "input_shape" in change:
        spec["inputs"][0]["shape"] = change["input_shape"]
    with pytest.raises(SpecError, match=f"layer 'probs'.*({message})"):
        validate_spec(spec)


def test_latency_table_wider_than_the_input_is_refused_by_the_emulator():
    """latency addresses its exp table with the input's own bits: 32 entries need 5 of its 4."""
    spec = softmax_spec("latency", 3)
    spec["layers"][0].update({"exp_table_size": 32, "exp_table": [1] * 32})
    with pytest.raises(SpecError, match="layer 'probs'.*exp_table_size 32 needs 5 address bits"):
        Emulator.from_spec(validate_spec(spec))
