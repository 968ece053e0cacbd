"""The complete spec check: every field against the format and against every other field.

The property test corrupts valid specs (the shipped student's and a small hand-built one
with every op) in ways that are always wrong, and asserts a SpecError that names the field,
never another exception and never a network built from a wrong spec.
"""

from __future__ import annotations

import copy
import importlib.resources
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import scaled
from l0emu.fixedpoint.aptypes import parse_type
from l0emu.errors import SpecError
from l0emu.fixedpoint.spec import FORMAT, OPS, read_spec, validate_spec

STUDENT = json.loads((importlib.resources.files("l0emu") / "data" / "default_student" / "spec.json").read_text())
DENSE1_N_IN = STUDENT["layers"][9]["n_in"]  # the shipped student's flattened width (its filters x 8)


def _weighted(kind, weights_shape, weights, biases, product="mult"):
    return {
        "weight_type": "ap_fixed<4,1>", "bias_type": "ap_fixed<6,2>", "accum_type": "ap_fixed<20,8>",
        "weights_shape": weights_shape, "weights": weights, "biases": biases, "product": product,
    }  # fmt: skip


def small_spec() -> dict:
    """Every op once, io_stream style: zero_pad2d, strided conv2d, exponent scale, pools, flatten, dense."""
    res = "ap_fixed<12,5>"
    act = "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>"
    layers = [
        {"name": "zp", "op": "zero_pad2d", "pad": [1, 1, 1, 1], "input_shape": [6, 7, 1], "output_shape": [8, 9, 1], "result_type": "ap_ufixed<2,1>"},
        {"name": "c1", "op": "conv2d", "kernel": [3, 3], "strides": [2, 1], "padding": "valid", "pad": [0, 0, 0, 0], "filters": 2,
         **_weighted("conv", [3, 3, 1, 2], [(i % 15) - 8 for i in range(18)], [3, -5]),
         "input_shape": [8, 9, 1], "output_shape": [3, 7, 2], "result_type": res},
        {"name": "s1", "op": "scale", "product": "weight_exponential", "scale_exponent_width": 3, "scale_type": "ap_fixed<4,2>",
         "scale": [4, 1], "bias_type": "ap_fixed<6,2>", "bias": [-5, 7], "input_shape": [3, 7, 2], "output_shape": [3, 7, 2], "result_type": res},
        {"name": "r1", "op": "relu", "input_shape": [3, 7, 2], "output_shape": [3, 7, 2], "result_type": act},
        {"name": "mp", "op": "max_pool2d", "pool": [1, 2], "strides": [1, 2], "padding": "valid", "pad": [0, 0, 0, 0],
         "input_shape": [3, 7, 2], "output_shape": [3, 3, 2], "result_type": act},
        {"name": "ap", "op": "avg_pool2d", "pool": [2, 2], "strides": [1, 1], "padding": "valid", "pad": [0, 0, 0, 0],
         "accum_type": "ap_fixed<10,4>", "input_shape": [3, 3, 2], "output_shape": [2, 2, 2], "result_type": act},
        {"name": "fl", "op": "flatten", "input_shape": [2, 2, 2], "output_shape": [8], "result_type": act},
        {"name": "d1", "op": "dense", "n_in": 8, "n_out": 2, **_weighted("dense", [8, 2], [(i % 13) - 6 for i in range(16)], [1, -1]),
         "strategy": "latency", "reuse_factor": 1, "input_shape": [8], "output_shape": [2], "result_type": res},
        {"name": "out", "op": "linear", "input_shape": [2], "output_shape": [2], "result_type": "ap_fixed<8,4,AP_RND,AP_SAT>"},
    ]  # fmt: skip
    return {
        "format": "l0emu-spec/2", "name": "small", "source": {"io_type": "io_stream"},
        "inputs": [{"name": "image", "shape": [6, 7, 1], "type": "ap_ufixed<2,1>"}],
        "layers": layers,
        "outputs": [
            {"name": "pt", "index": 0, "scale": 20.0, "offset": 0.0, "unit": "GeV"},
            {"name": "eta", "index": 1, "scale": 32.0, "offset": 0.0, "unit": "strip", "frame": "window"},
        ],
    }  # fmt: skip


MULTI = json.loads((importlib.resources.files("l0emu") / "data" / "multi_student" / "spec.json").read_text())


def heads_spec() -> dict:
    """Every newer op once, on three heads that read one trunk: softmax tables, sigmoid and tanh
    tables, a leaky slope, hard activations, binary and ternary thresholds, outputs naming layers."""
    from test_softmax_spec import softmax_spec

    res = "ap_fixed<12,5>"
    probs = dict(softmax_spec("stable", 3)["layers"][0], input_shape=[3], output_shape=[3])

    def elementwise(name, op, result, inputs=None, **fields):
        layer = {"name": name, "op": op, "input_shape": [3], "output_shape": [3], "result_type": result, **fields}
        return {**layer, "inputs": inputs} if inputs else layer

    layers = [
        {"name": "trunk", "op": "dense", "n_in": 4, "n_out": 3, **_weighted("dense", [4, 3], [(i % 11) - 5 for i in range(12)], [2, -3, 1]),
         "input_shape": [4], "output_shape": [3], "result_type": res},
        elementwise("trunk_act", "leaky_relu", res, param_type="ap_fixed<8,1>", param=38),
        {"name": "logits", "op": "dense", "inputs": ["trunk_act"], "n_in": 3, "n_out": 3,
         **_weighted("dense", [3, 3], [(i % 7) - 3 for i in range(9)], [0, 1, -1]),
         "input_shape": [3], "output_shape": [3], "result_type": "ap_fixed<10,4>"},
        probs,
        elementwise("sg", "sigmoid", "ap_ufixed<8,0>", ["trunk_act"], table_size=8, table_type="ap_ufixed<8,0>",
                    table=[10, 30, 70, 128, 186, 226, 246, 255]),
        elementwise("th", "tanh", "ap_fixed<8,1>", table_size=8, table_type="ap_fixed<8,1>", table=[-127, -110, -70, 0, 70, 110, 127, 127]),
        elementwise("hs", "hard_sigmoid", "ap_fixed<8,2>", slope_type="ap_fixed<8,1>", slope=32, shift_type="ap_fixed<8,1>", shift=64),
        elementwise("ht", "hard_tanh", "ap_fixed<8,2>", slope_type="ap_fixed<8,1>", slope=64, shift_type="ap_fixed<8,1>", shift=0),
        elementwise("bt", "binary_tanh", "ap_fixed<2,2>"),
        elementwise("bn1", "bn_binary_tanh", "ap_fixed<2,2>", ["trunk_act"], threshold_type=res, threshold=[10, -3, 0]),
        elementwise("bn3", "bn_ternary_tanh", "ap_fixed<2,2>", threshold_type=res, threshold_hi=[5, 6, 7], threshold_lo=[-5, -6, -7]),
    ]  # fmt: skip
    return {
        "format": "l0emu-spec/1", "name": "heads", "source": {"io_type": "io_parallel"},
        "input": {"name": "x", "shape": [4], "type": "ap_fixed<8,3>"},
        "layers": layers,
        "outputs": [
            {"name": "pt", "layer": "probs", "index": 0, "scale": 20.0, "offset": 0.0, "unit": "GeV"},
            {"name": "charge", "layer": "bn1", "index": 1, "scale": 1.0, "offset": 0.0},
            {"name": "presence", "layer": "ht", "index": 2, "scale": 1.0, "offset": 0.0},
            {"name": "eta", "index": 0, "scale": 1.0, "offset": 0.0},
        ],
    }


# ------------------------------------------------------------------ targeted cases


def graph_spec() -> dict:
    """Format 2's graph ops once each: two inputs, 1-D layers, every merge, upsampling, global
    pools, concatenation, a reshape and a quantize (a type per element)."""
    t = "ap_fixed<8,3>"
    acc = "ap_fixed<14,6>"

    def merge(name, op, a, b, shape):
        return {"name": name, "op": op, "inputs": [a, b], "input_shape": shape, "output_shape": shape, "result_type": t}

    layers = [
        {"name": "zp", "op": "zero_pad1d", "inputs": ["seq"], "pad": [1, 1], "input_shape": [6, 2], "output_shape": [8, 2], "result_type": t},
        {"name": "c1", "op": "conv1d", "kernel": [3], "strides": [1], "padding": "valid", "pad": [0, 0], "filters": 2,
         **_weighted("conv", [3, 2, 2], [(i * 5) % 15 - 7 for i in range(12)], [1, -2]), "strategy": "resource", "reuse_factor": 2,
         "input_shape": [8, 2], "output_shape": [6, 2], "result_type": t},
        {"name": "mp", "op": "max_pool1d", "pool": [2], "strides": [2], "padding": "valid", "pad": [0, 0], "accum_type": t,
         "input_shape": [6, 2], "output_shape": [3, 2], "result_type": t},
        {"name": "ap", "op": "avg_pool1d", "inputs": ["c1"], "pool": [2], "strides": [2], "padding": "valid", "pad": [0, 0],
         "accum_type": acc, "input_shape": [6, 2], "output_shape": [3, 2], "result_type": t},
        merge("sub", "subtract", "mp", "ap", [3, 2]),
        merge("mul", "multiply", "mp", "ap", [3, 2]),
        merge("avg", "average", "sub", "mul", [3, 2]),
        merge("mx", "maximum", "avg", "mp", [3, 2]),
        merge("mn", "minimum", "mx", "ap", [3, 2]),
        merge("sum", "add", "mn", "sub", [3, 2]),
        {"name": "up1", "op": "upsample1d", "size": [2], "input_shape": [3, 2], "output_shape": [6, 2], "result_type": t},
        {"name": "gmax1", "op": "global_max_pool1d", "accum_type": t, "input_shape": [6, 2], "output_shape": [2], "result_type": t},
        {"name": "gavg1", "op": "global_avg_pool1d", "inputs": ["up1"], "accum_type": acc, "input_shape": [6, 2], "output_shape": [2], "result_type": t},
        {"name": "up2", "op": "upsample2d", "inputs": ["img"], "size": [2, 2], "input_shape": [2, 3, 2], "output_shape": [4, 6, 2], "result_type": t},
        {"name": "gmax2", "op": "global_max_pool2d", "accum_type": t, "input_shape": [4, 6, 2], "output_shape": [2], "result_type": t},
        {"name": "gavg2", "op": "global_avg_pool2d", "inputs": ["up2"], "accum_type": acc, "input_shape": [4, 6, 2], "output_shape": [2], "result_type": t},
        {"name": "cat1", "op": "concatenate", "inputs": ["gmax1", "gavg1"], "axis": 0, "input_shape": [2], "output_shape": [4], "result_type": t},
        {"name": "cat2", "op": "concatenate", "inputs": ["gmax2", "gavg2"], "axis": 0, "input_shape": [2], "output_shape": [4], "result_type": t},
        {"name": "cat3", "op": "concatenate", "inputs": ["cat1", "cat2"], "axis": 0, "input_shape": [4], "output_shape": [8], "result_type": t},
        {"name": "rs", "op": "reshape", "input_shape": [8], "output_shape": [2, 4], "result_type": t},
        {"name": "q", "op": "quantize", "inputs": ["cat3"], "input_shape": [8], "output_shape": [8], "result_type": acc,
         "element_types": {"k": [1, 0, 1, 0, 1, 0, 1, 1], "i": [0, 1, 2, -1, 3, 0, 1, 2], "f": [2, 3, 0, 4, 1, 0, 5, -1],
                           "rounding": "RND", "overflow": "WRAP"}},
    ]  # fmt: skip
    return {
        "format": "l0emu-spec/2", "name": "graph", "source": {"io_type": "io_parallel"},
        "inputs": [{"name": "seq", "shape": [6, 2], "type": t}, {"name": "img", "shape": [2, 3, 2], "type": "ap_fixed<6,2>"}],
        "layers": layers,
        "outputs": [{"name": "y", "layer": "rs", "index": 0, "scale": 1.0, "offset": 0.0}],
    }  # fmt: skip


def _edit(spec, path, value):
    spec = copy.deepcopy(spec)
    *head, last = path
    target = spec
    for key in head:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return spec


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("layers", 0, "weights", 4), 100, r"layer 'conv1' at layers\[0\]\.weights\[4\]: mantissa 100 is outside weight_type"),
        (("layers", 0, "weights", 4), 4.5, r"layers\[0\]\.weights\[4\]: a mantissa must be an integer, got float 4\.5"),
        (("layers", 0, "weights", 4), None, r"layers\[0\]\.weights\[4\]: a mantissa must be an integer, got null"),
        (("layers", 0, "weights"), None, r"layers\[0\]\.weights: expected a list of integer mantissas, got null"),
        (("layers", 0, "biases", 0), -9, r"layers\[0\]\.biases\[0\]: mantissa -9 is outside bias_type"),
        (("layers", 9, "n_in"), 47, rf"layer 'dense1' at layers\[9\]\.n_in: is 47, but input_shape \[{DENSE1_N_IN}\] gives {DENSE1_N_IN}"),
        (("layers", 0, "kernel"), [3, 2], r"layers\[0\]\.weights_shape: is \[3, 3, 1, \d+\], but kernel x input channels"),
        (("layers", 0, "padding"), "full", r"layers\[0\]\.padding: padding 'full' is not one of 'valid', 'same'"),
        (("layers", 0, "strides"), "1,1", r"layers\[0\]\.strides: expected a list of integers, got '1,1'"),
        (("layers", 0, "strides", 1), 2, r"layers\[0\]\.output_shape: is \[7, 14, \d+\], but input_shape, kernel, strides"),
        (("layers", 0, "pad", 0), -1, r"layers\[0\]\.pad\[0\]: -1 is not >= 0"),
        (("layers", 2, "input_shape"), [7, 14, 2], r"layers\[2\]\.input_shape: is \[7, 14, 2\], but the previous layer gives"),
        (("layers", 0, "product"), "weight_cubic", r"layers\[0\]\.product: product 'weight_cubic' is not one of"),
        (("layers", 0, "kernal"), [3, 3], r"layers\[0\]\.kernal: unknown field 'kernal' \(did you mean 'kernel'\?\)"),
        (("layers", 0, "result_type"), "ap_fixed<4;1>", r"layers\[0\]\.result_type: "),
        (("layers", 1, "op"), "relu6", r"layer 'relu1' at layers\[1\]\.op: unknown op 'relu6'"),
        (("layers",), "abc", r"layers: expected a non-empty list of layers, got 'abc'"),
        (("layers",), [], r"layers: expected a non-empty list of layers"),
        (("layers", 3), "abc", r"layers\[3\]: expected a JSON object, got 'abc'"),
        (("preprocessing", "fragment", "window"), 64, r"preprocessing\.fragment\.window: is 64; the trigger's fragmentation window is 32"),
        (("preprocessing", "fragment", "stride"), 0, r"preprocessing\.fragment\.stride: 0 is not in \[1, 384\]"),
        (("preprocessing", "fragment", "strid"), 8, r"unknown field 'strid' \(did you mean 'stride'\?\)"),
        (("preprocessing", "fragment", "candidates"), 4, r"preprocessing\.fragment\.candidates: 4 is not in \[1, 3\]"),
        (("preprocessing", "fragment", "min_hits"), 6, r"preprocessing\.fragment\.min_hits: is only read with 'candidates'"),
        (("preprocessing", "fragment", "candidates"), 3, r"outputs: has no output named 'charge', which the sector logic"),
        (("outputs", 1, "index"), 2, r"outputs\[1\]\.index: output 'eta' has index 2, the network has 2 outputs"),
        (("outputs", 0, "scale"), 0, r"outputs\[0\]\.scale: a scale of 0"),
        (("outputs", 1, "frame"), "global", r"outputs\[1\]\.frame: frame 'global' is not one of 'window', 'sector'"),
        (("inputs", 0, "shape"), [9, 16, 2], r"layers\[0\]\.input_shape: is \[9, 16, 1\], but .* gives \[9, 16, 2\]"),
        (("inputs", 0, "type"), None, r"inputs\[0\]\.type: expected an ap type string, got null"),
        (("outputs",), _DELETE, r"missing field 'outputs'"),
        (("layer",), [], r"unknown field 'layer' \(did you mean 'layers'\?\)"),
        (("format",), "l0emu-spec/3", r"format: format 'l0emu-spec/3' is not one of 'l0emu-spec/1', 'l0emu-spec/2'"),
    ],
)
def test_bad_fields_are_refused_with_their_path(path, value, message):
    with pytest.raises(SpecError, match=message):
        validate_spec(_edit(STUDENT, path, value), origin="spec.json")


def test_valid_specs_pass_unchanged():
    for spec in (STUDENT, MULTI, small_spec(), heads_spec(), graph_spec()):
        assert validate_spec(copy.deepcopy(spec)) == spec


def test_candidate_spec_names_the_outputs_the_sector_logic_reads():
    spec = copy.deepcopy(STUDENT)
    spec["preprocessing"]["fragment"].update(candidates=3, min_hits=6)
    # the last layer has two outputs: read the same columns under the sector logic's names
    spec["outputs"] += [dict(spec["outputs"][0], name="charge", unit="e"), dict(spec["outputs"][1], name="presence")]
    for out in spec["outputs"][2:]:
        out.pop("frame", None)
    assert validate_spec(copy.deepcopy(spec)) == spec
    with pytest.raises(SpecError, match=r"min_hits: 0 is not in \[1, 288\]"):
        validate_spec(_edit(spec, ("preprocessing", "fragment", "min_hits"), 0))


def test_small_spec_runs_in_the_emulator():
    """The hand-built spec of the property test is a real network, not only a valid document."""
    import numpy as np

    from l0emu.fixedpoint.emulator import Emulator

    emulator = Emulator.from_spec(small_spec())
    assert emulator.predict_raw(np.ones((3, 6, 7), np.uint8)).shape == (3, 2)
    heads = Emulator.from_spec(heads_spec())  # probs, bn1, ht and the last layer side by side, as the outputs name them
    assert heads.predict_raw(np.arange(12.0).reshape(3, 4) / 4).shape == (3, 12)


def test_every_op_has_a_rule():
    assert set(OPS) >= {"conv2d", "dense", "relu", "linear", "max_pool2d", "avg_pool2d", "scale", "flatten", "zero_pad2d"}
    assert all(callable(rule.check) for rule in OPS.values())


def test_read_spec_names_the_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_edit(STUDENT, ("layers", 0, "weights", 17 % 9), 100)))
    with pytest.raises(SpecError, match=rf"{path}: layer 'conv1' at layers\[0\]\.weights\[8\]"):
        read_spec(path)


# ------------------------------------------------------------------ property test

# Mutations that always make a spec wrong. Each site is (path, kind); the kinds say which
# mutations are wrong there for sure (a weight changed inside its range is still a valid spec).
_SHAPE_FIELDS = {"input_shape", "output_shape", "weights_shape", "kernel"}
_COUNT_FIELDS = {"n_in", "n_out", "filters", "table_size", "exp_table_size", "inv_table_size"}
_MANTISSA_LISTS = {"weights": "weight_type", "biases": "bias_type", "scale": "scale_type", "bias": "bias_type",
                   "table": "table_type", "exp_table": "exp_table_type", "inv_table": "inv_table_type",
                   "threshold": "threshold_type", "threshold_hi": "threshold_type", "threshold_lo": "threshold_type"}  # fmt: skip
_MANTISSAS = {"param": "param_type", "slope": "slope_type", "shift": "shift_type"}  # one mantissa each
_ENUMS = {"op", "padding", "product", "frame", "format", "implementation"}
_TYPES = {"result_type", "weight_type", "bias_type", "accum_type", "scale_type", "type", "table_type", "exp_table_type",
          "inv_table_type", "inv_input_type", "norm_type", "param_type", "threshold_type", "slope_type", "shift_type"}
_POSITIVE_INTS = {"reuse_factor", "scale_exponent_width"}  # any non-integer or 0 is wrong
_JUNK = [None, "abc", 4.5, True, [], {}, [1, "x"], -1]
_BAD_TYPES = ["ap_fixed<4;1>", "ap_fixed<0,1>", "ap_fixed<4,1,AP_SAT>", "ap_fixed<4,1,AP_TRN,AP_WRAPS>", "fixed", 16]


def _sites(spec):
    inp = ("inputs", 0) if "inputs" in spec else ("input",)  # format 2 lists its inputs
    sites = [(("layers",), "container"), (("outputs",), "container"), (inp, "container"),
             (("format",), "enum"), ((*inp, "shape"), "input_shape")]  # fmt: skip
    sites += [((top,), "required") for top in ("format", "name", "source", inp[0], "layers", "outputs")]
    sites += [((), "unknown"), (inp, "unknown"), ((*inp, "type"), "type")]
    for i, layer in enumerate(spec["layers"]):
        base = ("layers", i)
        sites += [(base, "unknown"), (base, "container")]
        optional = OPS[layer["op"]].optional
        for field, value in layer.items():
            path = (*base, field)
            # a softmax reads exactly the fields of its implementation: each one present is needed
            if (field not in optional or layer["op"] == "softmax") and field != "inputs":
                sites.append((path, "required"))
            if field == "inputs":
                sites.append((path, "inputs"))
            elif field == "strategy":
                sites.append((path, "strategy"))
            elif field in _POSITIVE_INTS:
                sites.append((path, "window"))
            elif field in _MANTISSAS:
                sites.append((path, "mantissa"))
            if field in _SHAPE_FIELDS:
                sites += [(path, "shape"), ((*path, len(value) - 1), "dim")]
            elif field in _COUNT_FIELDS:
                sites.append((path, "dim"))
            elif field in _MANTISSA_LISTS:
                sites += [(path, "mantissas")] + [((*path, j), "mantissa") for j in range(len(value))]
            elif field in _ENUMS:
                sites.append((path, "enum"))
            elif field in _TYPES:
                sites.append((path, "type"))
            elif field in ("strides", "pool", "pad", "size"):
                sites += [(path, "shape"), ((*path, 0), "window")]
            elif field == "axis":
                sites.append((path, "axis"))
            elif field == "element_types":
                sites += [(path, "element_types"), (path, "unknown")]
                sites += [((*path, key), "required") for key in value]
                sites += [site for key in ("k", "i", "f") for site in (((*path, key), "shape"), ((*path, key, 0), "bits"))]
                sites += [((*path, key), "mode") for key in ("rounding", "overflow")]
    for j, out in enumerate(spec["outputs"]):
        sites += [(("outputs", j), "unknown"), (("outputs", j, "index"), "index"), (("outputs", j, "scale"), "scale")]
        sites += [(("outputs", j, f), "required") for f in ("name", "index", "scale", "offset")]
        sites += [(("outputs", j, f), "enum") for f in ("layer", "frame") if f in out]  # the layer a head's output reads
    if "preprocessing" in spec:
        fragment = spec["preprocessing"]["fragment"]
        sites += [(("preprocessing", "fragment", f), "window") for f in ("window", "pool", "stride", "candidates", "min_hits") if f in fragment]
        sites += [(("preprocessing", "fragment"), "unknown"), (("preprocessing", "image", 1), "dim")]
    return sites


def _get(spec, path):
    for key in path:
        spec = spec[key]
    return spec


def _type_range(spec, path):
    layer = _get(spec, path[:2])
    kind = parse_type(layer[{**_MANTISSA_LISTS, **_MANTISSAS}[path[2]]])
    return kind.min_mantissa, kind.max_mantissa


@st.composite
def corrupted(draw, spec):
    path, kind = draw(st.sampled_from(_sites(spec)))
    spec = copy.deepcopy(spec)
    value = _get(spec, path) if path else spec
    if kind == "unknown":  # names that are no field anywhere in the format
        _get(spec, path)[draw(st.sampled_from(["extra", "kernal", "weight", "typ", "strid"]))] = 1
        return spec, path, kind
    if kind == "required":
        del _get(spec, path[:-1])[path[-1]]
        return spec, path, kind
    if kind in ("container", "shape", "mantissas"):
        new = draw(st.sampled_from(["abc", None, 5, {}] if kind == "container" else ["abc", None, 5, {"a": 1}, [], value[:-1]]))
    elif kind == "dim":
        new = value + draw(st.sampled_from([-1, 1])) if value > 1 else value + 1
    elif kind == "input_shape":
        new = value[:-1] + [value[-1] + 1]
    elif kind == "mantissa":
        low, high = _type_range(spec, path)
        new = draw(st.sampled_from([low - 1, high + 1, value + 0.5, float(value), None, str(value), True, [value]]))
    elif kind == "inputs":  # a tensor that is no input or earlier layer, or not one name in a list
        new = draw(st.sampled_from([["nowhere"], value[0], [], [*value, *value], None, [3], [spec["layers"][-1]["name"]]]))
    elif kind == "element_types":
        new = draw(st.sampled_from(["abc", None, [], {}]))
    elif kind == "bits":  # a sign bit count other than 0 or 1, a type wider than 63 bits, no integer
        new = draw(st.sampled_from([2 if path[-2] == "k" else 70, -65, 0.5, None, "1"]))
    elif kind == "mode":  # HGQ2's modes are hls4ml's upper-case names
        new = draw(st.sampled_from([value + "x", value.lower(), "", None, 3]))
    elif kind == "axis":  # no axis of the joined tensors
        new = draw(st.sampled_from([-1, 3, 1.5, None, "0"]))
    elif kind == "strategy":
        new = draw(st.sampled_from(["fast", "", None, 3]))
    elif kind == "window":  # a pad of 0 may be valid; a stride or pool of 0 never is
        new = draw(st.sampled_from([-1, 1.5, None, "2", [2]] + ([] if "pad" in path else [0])))
    elif kind == "enum":
        new = draw(st.sampled_from([value + "x", value.upper(), "", None, 3]))
    elif kind == "type":
        new = draw(st.sampled_from(_BAD_TYPES))
    elif kind == "index":
        new = draw(st.sampled_from([-1, 99, 0.5, None, "0"]))
    elif kind == "scale":
        new = draw(st.sampled_from([0, None, "20", float("inf"), float("nan")]))
    else:  # pragma: no cover - every kind is listed above
        raise AssertionError(kind)
    if kind == "window" and path[-1] == "stride" and path[0] == "preprocessing":
        new = draw(st.sampled_from([0, -1, 1.5, None, 385]))
    _get(spec, path[:-1])[path[-1]] = new
    return spec, path, kind


def _refused(case):
    spec, path, kind = case
    try:
        validate_spec(spec, origin="spec.json")
    except SpecError as err:
        assert str(err).startswith("spec.json"), err
        return
    pytest.fail(f"corruption {kind} at {path} was accepted")


@settings(max_examples=scaled(500, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(STUDENT))
def test_corrupted_student_specs_are_refused(case):
    _refused(case)


@settings(max_examples=scaled(500, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(small_spec()))
def test_corrupted_small_specs_are_refused(case):
    _refused(case)


@settings(max_examples=scaled(500, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(heads_spec()))
def test_corrupted_heads_specs_are_refused(case):
    _refused(case)


@settings(max_examples=scaled(300, 2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(MULTI))
def test_corrupted_multi_student_specs_are_refused(case):
    _refused(case)


@settings(max_examples=scaled(300, 2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(graph_spec()))
def test_corrupted_graph_specs_are_refused(case):
    _refused(case)


def test_the_property_test_corrupts_every_field_of_every_op():
    """Each op is in one of the corrupted specs, and each of its fields there has a corruption of
    its value (not only its deletion)."""
    specs = (STUDENT, MULTI, small_spec(), heads_spec(), graph_spec())
    assert {layer["op"] for spec in specs for layer in spec["layers"]} == set(OPS)
    for spec in specs:
        valued = {path for path, kind in _sites(spec) if kind not in ("required", "unknown", "container")}
        for i, layer in enumerate(spec["layers"]):
            missing = [f for f in layer if f not in ("name", "op") and ("layers", i, f) not in valued]
            assert not missing, f"{spec['name']} layers[{i}] ({layer['op']}): no corruption of {missing}"
        for j, out in enumerate(spec["outputs"]):
            missing = [f for f in out if f not in ("name", "offset", "unit") and ("outputs", j, f) not in valued]
            assert not missing, f"{spec['name']} outputs[{j}]: no corruption of {missing}"


def test_an_old_spec_still_reads(tmp_path):
    spec = small_spec()
    spec = {**{k: v for k, v in spec.items() if k != "inputs"}, "format": "l0emu-spec/1", "input": spec["inputs"][0]}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert read_spec(path) == spec


def test_an_old_spec_with_an_ambiguous_integer_type_is_refused(tmp_path):
    """/1 wrote ap_int<W> as ap_fixed<W,W,AP_TRN_ZERO,AP_WRAP,0>: which one it meant is unknown."""
    spec = small_spec()
    spec = {**{k: v for k, v in spec.items() if k != "inputs"}, "format": "l0emu-spec/1", "input": spec["inputs"][0]}
    spec["layers"][0]["result_type"] = "ap_fixed<6,6,AP_TRN_ZERO,AP_WRAP,0>"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(SpecError, match=r"result_type: ap_fixed<6,6,AP_TRN_ZERO,AP_WRAP,0> in an l0emu-spec/1 spec may stand for an ap_int<6>.*re-run 'l0emu convert'"):
        read_spec(path)


def test_resource_reuse_factors_follow_hls4mls_rule():
    spec = small_spec()
    dense = spec["layers"][7]
    dense.update(strategy="resource", reuse_factor=3)  # 16 products do not split into 3 equal rounds
    with pytest.raises(SpecError, match=r"layer 'd1' at layers\[7\]\.reuse_factor: 3 is not a reuse factor hls4ml's Resource kernels are correct for with 8 inputs x 2"):
        validate_spec(spec)
    dense.update(reuse_factor=4)
    validate_spec(spec)
    dense.update(strategy="distributed_arithmetic")
    with pytest.raises(SpecError, match=r"strategy 'distributed_arithmetic' is not one of 'latency', 'resource'"):
        validate_spec(spec)


def test_chain_spec_is_validated_and_names_its_input_apart():
    """The emulator's stage specs: one input named apart from the layers, the last layer's tensor the head."""
    from l0emu.fixedpoint.spec import chain_spec, output_layout

    relu = {"name": "stage_input", "op": "relu", "input_shape": [3], "output_shape": [3], "result_type": "ap_fixed<8,3>"}
    lin = {"name": "lin", "op": "linear", "input_shape": [3], "output_shape": [3], "result_type": "ap_fixed<6,2>"}
    spec = chain_spec("net_stage", {"io_type": "io_parallel"}, (3,), "ap_fixed<8,3>", [relu, lin])
    assert spec["inputs"][0]["name"] == "stage_input_" and output_layout(spec)[0] == [("lin", 0, 3)]
    with pytest.raises(SpecError, match=r"stage 'net_stage': .*input_shape: is \[3\], but the previous layer gives \[4\]"):
        chain_spec("net_stage", {}, (4,), "ap_fixed<8,3>", [relu, lin])
