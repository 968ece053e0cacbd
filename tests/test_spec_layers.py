"""Spec format 2: several inputs, merges, 1-D layers, global pools, reshape, upsampling —
checked field by field, and what the emulator computes for them on hand-made inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from l0emu.errors import ConfigError, SpecError
from l0emu.fixedpoint.emulator import Emulator
from l0emu.fixedpoint.spec import MERGE_OPS, OPS, spec_inputs, validate_spec

T = "ap_fixed<8,3>"


def two_input_spec():
    layers = [
        {"name": "c1", "op": "conv1d", "inputs": ["seq"], "input_shape": [6, 2], "output_shape": [4, 2], "result_type": T, "kernel": [3],
         "strides": [1], "padding": "valid", "pad": [0, 0], "filters": 2, "weight_type": "ap_fixed<4,1>", "bias_type": "ap_fixed<4,1>",
         "accum_type": "ap_fixed<12,5>", "weights_shape": [3, 2, 2], "weights": [(i * 5) % 15 - 7 for i in range(12)], "biases": [1, -2],
         "product": "mult"},
        {"name": "skip", "op": "add", "inputs": ["c1", "c1"], "input_shape": [4, 2], "output_shape": [4, 2], "result_type": "ap_fixed<9,4>"},
        {"name": "gap", "op": "global_avg_pool1d", "input_shape": [4, 2], "output_shape": [2], "result_type": T, "accum_type": "ap_fixed<12,5>"},
        {"name": "up", "op": "upsample1d", "inputs": ["skip"], "input_shape": [4, 2], "output_shape": [8, 2], "result_type": "ap_fixed<9,4>", "size": [2]},
        {"name": "rs", "op": "reshape", "input_shape": [8, 2], "output_shape": [16], "result_type": "ap_fixed<9,4>"},
        {"name": "join", "op": "concatenate", "inputs": ["gap", "scalars"], "input_shape": [2], "output_shape": [5], "result_type": T, "axis": 0},
    ]  # fmt: skip
    return {
        "format": "l0emu-spec/2", "name": "two_inputs", "source": {},
        "inputs": [{"name": "seq", "shape": [6, 2], "type": T}, {"name": "scalars", "shape": [3], "type": "ap_fixed<6,2>"}],
        "layers": layers,
        "outputs": [{"name": "y", "layer": "join", "index": 0, "scale": 1.0, "offset": 0.0},
                    {"name": "u", "layer": "rs", "index": 0, "scale": 1.0, "offset": 0.0}],
    }  # fmt: skip


def _edit(spec, path, value):
    spec = copy.deepcopy(spec)
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("layers", 1, "inputs"), ["c1"], r"layer 'skip' at layers\[1\]\.inputs: a add reads 2 layer or input names: expected a list of 2"),
        (("layers", 1, "inputs"), ["c1", "sq"], r"inputs\[1\]: 'sq' is not a network input or an earlier layer \(did you mean 'seq'"),
        (("layers", 5, "inputs"), ["gap", "seq"], r"layers\[5\]\.inputs: cannot concatenate \[2\] and \[6, 2\] along axis 0"),
        (("layers", 5, "axis"), 1, r"layers\[5\]\.axis: 1 is not in \[0, 0\]"),
        (("layers", 5, "output_shape"), [4], r"output_shape: is \[4\], but joining the inputs along axis 0 gives \[5\]"),
        (("layers", 0, "kernel"), [7], r"layers\[0\]\.kernel: \[7\] is larger than the padded input width 6"),
        (("layers", 0, "weights_shape"), [3, 2, 3], r"weights_shape: is \[3, 2, 3\], but kernel x input channels x filters gives \[3, 2, 2\]"),
        (("layers", 2, "output_shape"), [1, 2], r"layers\[2\]\.output_shape: is \[1, 2\], but the input's channels gives \[2\]"),
        (("layers", 3, "size"), [3], r"layers\[3\]\.output_shape: is \[8, 2\], but input_shape times size gives \[12, 2\]"),
        (("layers", 4, "output_shape"), [15], r"layers\[4\]\.output_shape: \[15\] does not hold the 16 values"),
        (("inputs", 1, "name"), "seq", r"inputs\[1\]\.name: input name 'seq' is used twice"),
        (("inputs",), [], r"inputs: expected a non-empty list of network inputs"),
        (("inputs", 0, "typ"), T, r"inputs\[0\]\.typ: unknown field 'typ'"),
    ],
)
def test_bad_fields_are_refused_with_their_path(path, value, message):
    with pytest.raises(SpecError, match=message):
        validate_spec(_edit(two_input_spec(), path, value), origin="spec.json")


def test_a_merge_names_its_two_tensors():
    spec = two_input_spec()
    del spec["layers"][1]["inputs"]
    with pytest.raises(SpecError, match=r"layer 'skip' at layers\[1\]: missing field 'inputs'"):
        validate_spec(spec)
    assert set(MERGE_OPS) == {"add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"} <= set(OPS)


def test_format_1_still_reads_and_gives_the_same_kernel():
    """A format-1 spec (one ``input`` object) is read as the same network as its format-2 form."""
    spec2 = two_input_spec()
    spec2["inputs"] = spec2["inputs"][:1]
    spec2["layers"] = spec2["layers"][:5]
    spec2["outputs"] = [spec2["outputs"][1]]
    spec1 = {key: value for key, value in spec2.items() if key != "inputs"}
    spec1.update({"format": "l0emu-spec/1", "input": spec2["inputs"][0]})
    assert spec_inputs(validate_spec(spec1)) == spec_inputs(validate_spec(spec2))
    assert Emulator(spec1).source == Emulator(spec2).source
    with pytest.raises(SpecError, match=r"format 'l0emu-spec/1' is not one of .*unknown field 'inputs'|unknown field 'inputs'"):
        validate_spec({**spec1, "inputs": spec2["inputs"]})


def _values(t_frac, mantissas):
    return np.asarray(mantissas, dtype=np.float64) * 2.0**-t_frac


def test_merges_compute_hls4mls_arithmetic_on_hand_picked_values():
    """add / subtract / multiply exact then cast; average halves the exact sum (the cast
    rounds it: AP_RND here); maximum / minimum pick a value; concatenate casts each side."""
    results = {"add": "ap_fixed<6,3>", "subtract": "ap_fixed<6,3,AP_TRN,AP_SAT>", "multiply": "ap_fixed<8,3>",
               "average": "ap_fixed<5,2,AP_RND>", "maximum": "ap_fixed<4,2>", "minimum": "ap_fixed<4,2>"}  # fmt: skip
    a, b = np.array([[1.75, -2.5, 3.875, -0.125]]), np.array([[-0.5, 3.0, 3.75, -3.5]])
    for op, result in results.items():
        layer = {"name": op, "op": op, "inputs": ["a", "b"], "input_shape": [4], "output_shape": [4], "result_type": result}
        spec = {"format": "l0emu-spec/2", "name": op, "source": {}, "layers": [layer],
                "inputs": [{"name": "a", "shape": [4], "type": "ap_fixed<8,3>"}, {"name": "b", "shape": [4], "type": "ap_fixed<6,3>"}],
                "outputs": [{"name": f"y{i}", "index": i, "scale": 1.0, "offset": 0.0} for i in range(4)]}  # fmt: skip
        emulator = Emulator(spec)
        got = emulator.to_float(emulator.predict_raw([a, b]))[0]
        expected = {
            "add": [1.25, 0.5, -0.375, -3.625],  # 7.625 wraps in ap_fixed<6,3> ([-4, 4))
            "subtract": [2.25, -4.0, 0.125, 3.375],  # -5.5 saturates at -4
            "multiply": [-0.875, 0.5, -1.46875, 0.4375],  # -7.5 and 14.53125 wrap into [-4, 4)
            # (a + b) / 2 = 0.625, 0.25, 3.8125, -1.8125; AP_RND on lsb 1/8 rounds the ties up,
            # then 3.875 wraps into [-2, 2)
            "average": [0.625, 0.25, -0.125, -1.75],
            # the larger / smaller value, truncated to lsb 1/4 and wrapped into [-2, 2)
            "maximum": [1.75, -1.0, -0.25, -0.25],
            "minimum": [-0.5, 1.5, -0.25, 0.5],
        }[op]
        assert got.tolist() == pytest.approx(expected, abs=0), op


def test_predict_takes_one_array_per_input():
    emulator = Emulator(two_input_spec())
    seq, scalars = np.zeros((5, 6, 2)), np.ones((5, 3))
    assert emulator.predict_raw([seq, scalars]).shape == (5, emulator.n_outputs)
    with pytest.raises(ConfigError, match=r"takes 2 input arrays \[\(6, 2\), \(3,\)\], got 1"):
        emulator.predict_raw(seq)
    with pytest.raises(ConfigError, match=r"emulator input 'scalars' has shape \(5, 4\)"):
        emulator.predict_raw([seq, np.ones((5, 4))])
    with pytest.raises(ConfigError, match=r"uint8 lit-pixel counts feed one-input networks only"):
        emulator.predict_raw([seq.astype(np.uint8), scalars.astype(np.uint8)])


def test_conv1d_resource_is_refused_where_its_order_is_not_modelled():
    """io_parallel conv_1d_resource_cl adds in conv_2d_resource_cl's order (emulated); io_stream
    runs Resource through compute_output_buffer_1d (refused), and a reuse factor beyond the
    kernel's inputs makes the 1-D kernel assert (refused)."""
    spec = two_input_spec()
    spec["layers"][0].update(strategy="resource", reuse_factor=2)
    validate_spec(copy.deepcopy(spec))
    stream = copy.deepcopy(spec)
    stream["source"]["io_type"] = "io_stream"
    with pytest.raises(SpecError, match=r"layer 'c1'.*strategy: an io_stream Conv1D with the Resource strategy is not emulated"):
        validate_spec(stream)
    spec["layers"][0]["reuse_factor"] = 12
    with pytest.raises(SpecError, match=r"reuse_factor: 12 exceeds the 6 inputs of each output pixel.*conv_1d_resource_cl"):
        validate_spec(spec)
