"""Layer sets (issue 11, 4x384): images, windows and networks of a chosen set of RPC layers.

The spec's ``preprocessing.layers`` (e.g. the middle station's [3, 4, 5, 6]) makes the images of
those layers' rows only; hits on the other layers are dropped before the window is chosen.
"""

from __future__ import annotations

import importlib.resources
import json
import warnings

import numpy as np
import pytest
from conftest import make_event, write_events

from l0emu.fixedpoint.spec import spec_inputs
from l0emu import cli
from l0emu.errors import ConfigError, SpecError
from l0emu.trigger.events import first_fragments, load_events
from l0emu.trigger.geometry import ALL_LAYERS, LAYER_SETS, N_LAYERS, check_layers, layer_set
from l0emu.trigger.images import fragment_hits, fragment_images, hits_to_images, select_layers
from l0emu.schema import L0_TREE
from l0emu.trigger.sector import sector_candidates
from l0emu.fixedpoint.spec import preprocessing_layers, validate_spec, write_spec
from l0emu.trigger.logic import Trigger

MIDDLE = LAYER_SETS["middle"]


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def counting_spec(layers=None, candidates=None):
    """A network whose pT is the window's lit pixels (GeV) and eta the window centre; ``layers`` rows."""
    rows = N_LAYERS if layers is None else len(layers)
    pixels = rows * 16
    n_out = 4 if candidates else 2
    # weight mantissa 4 = 1.0 in ap_fixed<4,2>: pt = sum of pixel values = lit pixels / 2 (scale 2 GeV)
    per_pixel = [4, 0, 0, 4] if candidates else [4, 0]
    dense = {
        "name": "count", "op": "dense", "input_shape": [pixels], "output_shape": [n_out], "n_in": pixels, "n_out": n_out,
        "weight_type": "ap_fixed<4,2>", "bias_type": "ap_fixed<4,2>", "accum_type": "ap_fixed<16,9>",
        "result_type": "ap_fixed<16,9>", "weights": per_pixel * pixels, "weights_shape": [pixels, n_out],
        "biases": [0, 2, 0, 0][:n_out], "product": "mult",
    }  # fmt: skip
    flatten = {"name": "flatten", "op": "flatten", "input_shape": [rows, 16, 1], "output_shape": [pixels],
               "result_type": "ap_ufixed<2,1>"}  # fmt: skip
    fragment = {"window": 32, "pool": 2, "stride": 8}
    outputs = [
        {"name": "pt", "index": 0, "scale": 2.0, "offset": 0.0, "unit": "GeV"},
        {"name": "eta", "index": 1, "scale": 32.0, "offset": 0.0, "unit": "strip", "frame": "window"},
    ]
    if candidates:
        fragment.update(candidates=candidates, min_hits=3)
        outputs += [{"name": "charge", "index": 2, "scale": 1.0, "offset": 0.0, "unit": "e"},
                    {"name": "presence", "index": 3, "scale": 2.0, "offset": -2.5, "unit": "1"}]  # fmt: skip
    preprocessing = {"image": [9, 384], "fragment": fragment}
    if layers is not None:
        preprocessing["layers"] = list(layers)
    return {
        "format": "l0emu-spec/2", "name": "counting_layers", "source": {"io_type": "io_parallel"},
        "inputs": [{"name": "image", "shape": [rows, 16, 1], "type": "ap_ufixed<2,1>"}],
        "preprocessing": preprocessing, "layers": [flatten, dense], "outputs": outputs,
    }  # fmt: skip


def random_hits(n, seed, max_hits=25):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_hits, n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    layer = rng.integers(0, 9, offsets[-1]).astype(np.uint8)
    # clustered strips, so windows compete
    strip = np.clip(rng.normal(rng.choice([60, 200, 330], offsets[-1]), 20), 0, 383).astype(np.int16)
    return offsets, layer, strip


def filtered_by_numpy(offsets, layer, strip, layers):
    """The reference of select_layers: keep, renumber, recount."""
    keep = np.isin(layer, layers)
    row = np.searchsorted(np.asarray(layers), layer[keep]).astype(layer.dtype)
    event = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    new_offsets = np.concatenate([[0], np.cumsum(np.bincount(event[keep], minlength=len(offsets) - 1))])
    return new_offsets, row, strip[keep]


# ------------------------------------------------------------------ names and the spec


def test_layer_sets_are_named_in_geometry():
    assert LAYER_SETS["middle"] == (3, 4, 5, 6)
    assert LAYER_SETS["all"] == ALL_LAYERS == tuple(range(9))
    assert layer_set("middle") == layer_set("3,4,5,6") == (3, 4, 5, 6)


@pytest.mark.parametrize("bad", ["3,3", "4,3", "9", "-1", "middel", "", "3,,4"])
def test_bad_layer_sets_are_refused(bad):
    with pytest.raises(ConfigError, match="layer"):
        layer_set(bad)


def test_check_layers_refuses_empty_and_bools():
    for bad in ([], [True], [1.0], None):
        with pytest.raises(ConfigError):
            check_layers(bad)


def test_spec_with_layers_is_valid_and_read():
    spec = validate_spec(counting_spec(MIDDLE))
    assert preprocessing_layers(spec) == MIDDLE
    assert preprocessing_layers(counting_spec()) == ALL_LAYERS


@pytest.mark.parametrize(
    ("layers", "rows", "message"),
    [
        ([3, 4, 5, 9], 4, r"preprocessing\.layers\[3\]: 9 is not in \[0, 8\]"),
        ([-1, 4, 5, 6], 4, r"preprocessing\.layers\[0\]: -1 is not in \[0, 8\]"),
        ([3, 5, 4, 6], 4, r"preprocessing\.layers\[2\]: 4 follows 5; layers must be strictly increasing"),
        ([3, 3, 4, 5], 4, r"preprocessing\.layers\[1\]: 3 follows 3"),
        ([], 4, r"preprocessing\.layers: expected a non-empty list"),
        ("middle", 4, r"preprocessing\.layers: expected a non-empty list"),
        ([3, 4.0, 5, 6], 4, r"preprocessing\.layers\[1\]: expected an integer"),
        ([3, 4, 5, 6], 9, r"input\.shape: is \[9, 16, 1\], but preprocessing gives images of layers \[3, 4, 5, 6\] of \[4, 16\]"),
        ([3, 4, 5, 6, 7], 4, r"input\.shape: is \[4, 16, 1\], .*of \[5, 16\]"),
    ],
)
def test_spec_refuses_bad_layers_naming_the_field(layers, rows, message):
    spec = counting_spec([0] * rows)  # a network of `rows` rows...
    spec["preprocessing"]["layers"] = layers  # ...with these layers
    with pytest.raises(SpecError, match=message):
        validate_spec(spec)


def test_unfragmented_spec_needs_len_layers_x_384():
    spec = counting_spec(MIDDLE)
    del spec["preprocessing"]["fragment"]
    with pytest.raises(SpecError, match=r"input\.shape: .*of \[4, 384\]"):
        validate_spec(spec)


# ------------------------------------------------------------------ images


def test_select_layers_equals_a_numpy_filter_and_keeps_nine_layers_untouched():
    offsets, layer, strip = random_hits(300, seed=1)
    for layers in (MIDDLE, (0,), (2, 7, 8)):
        got = select_layers(offsets, layer, strip, layers)
        for a, b in zip(got, filtered_by_numpy(offsets, layer, strip, layers)):
            np.testing.assert_array_equal(a, b)
        assert got[1].dtype == layer.dtype and got[2].dtype == strip.dtype
    same = select_layers(offsets, layer, strip, ALL_LAYERS)
    assert same[1] is layer and same[2] is strip  # no copy on the 9-layer path


def test_select_layers_takes_offsets_into_the_middle_of_the_hits():
    # the trigger's thread blocks pass offsets[a:b+1] with absolute values
    offsets, layer, strip = random_hits(200, seed=2)
    whole = fragment_hits(offsets, layer, strip, 8, MIDDLE)
    part = fragment_hits(offsets[50:121], layer, strip, 8, MIDDLE)
    np.testing.assert_array_equal(part[0], whole[0][50:120])
    np.testing.assert_array_equal(part[1], whole[1][50:120])


def test_every_layer_event_gives_the_nine_layer_rows_where_windows_agree():
    # a straight track on all nine layers plus noise spread over the sector
    hits = [(layer, 100 + layer // 3) for layer in range(9)] + [(1, 250), (7, 251), (4, 20)]
    offsets = np.array([0, len(hits)])
    layer = np.array([h[0] for h in hits], np.uint8)
    strip = np.array([h[1] for h in hits], np.int16)
    start9, pooled9 = fragment_hits(offsets, layer, strip, 8)
    start4, pooled4 = fragment_hits(offsets, layer, strip, 8, MIDDLE)
    assert start4[0] == start9[0]
    np.testing.assert_array_equal(pooled4, pooled9[:, list(MIDDLE)])
    np.testing.assert_array_equal(hits_to_images(offsets, layer, strip, MIDDLE), hits_to_images(offsets, layer, strip)[:, list(MIDDLE)])
    assert pooled4.shape == (1, 4, 16) and pooled4.sum() == 4


def test_dropping_layers_changes_the_chosen_window():
    # six hits on BI/BO near strip 300 outweigh four BM hits near strip 50 on nine layers, not on the middle station
    hits = [(0, 300), (1, 300), (2, 301), (7, 303), (8, 303), (0, 305)] + [(3, 50), (4, 50), (5, 51), (6, 51)]
    offsets = np.array([0, len(hits)])
    layer = np.array([h[0] for h in hits], np.uint8)
    strip = np.array([h[1] for h in hits], np.int16)
    start9, _ = fragment_hits(offsets, layer, strip, 8)
    start4, pooled4 = fragment_hits(offsets, layer, strip, 8, MIDDLE)
    assert start9[0] <= 300 and 305 < start9[0] + 32
    assert start4[0] <= 50 and 51 < start4[0] + 32
    assert pooled4.sum() == 4  # every middle-station hit, as row = its layer - 3
    rows = np.nonzero(pooled4[0])[0]
    np.testing.assert_array_equal(rows, [0, 1, 2, 3])


@pytest.mark.parametrize("layers", [MIDDLE, (0, 8), (4,)])
def test_hit_path_equals_image_path_and_filtered_nine_layer_kernel(layers):
    offsets, layer, strip = random_hits(400, seed=3)
    start, pooled = fragment_hits(offsets, layer, strip, 8, layers)
    ref_start, ref_pooled = fragment_images(hits_to_images(offsets, layer, strip, layers), 8)
    np.testing.assert_array_equal(start, ref_start)
    np.testing.assert_array_equal(pooled, ref_pooled)
    # the kernels on hits filtered by numpy (with the layer kept as its original index) and rows picked after
    keep = np.isin(layer, layers)
    event = np.repeat(np.arange(400), np.diff(offsets))
    kept_offsets = np.concatenate([[0], np.cumsum(np.bincount(event[keep], minlength=400))])
    start9, pooled9 = fragment_hits(kept_offsets, layer[keep], strip[keep], 8)
    np.testing.assert_array_equal(start, start9)
    np.testing.assert_array_equal(pooled, pooled9[:, list(layers)])


def test_sector_candidates_with_layers_lead_with_the_single_window():
    offsets, layer, strip = random_hits(400, seed=4)
    starts, pooled, found = sector_candidates(offsets, layer, strip, 8, min_hits=2, layers=MIDDLE)
    start, single = fragment_hits(offsets, layer, strip, 8, MIDDLE)
    assert pooled.shape == (400, 3, 4, 16)
    np.testing.assert_array_equal(starts[:, 0], start)
    np.testing.assert_array_equal(pooled[:, 0], single)
    # the 9-row kernel on hits filtered and renumbered by numpy: rows 4-8 stay empty
    ref_starts, ref_pooled, ref_found = sector_candidates(*filtered_by_numpy(offsets, layer, strip, MIDDLE), 8, min_hits=2)
    np.testing.assert_array_equal(starts, ref_starts)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(pooled, ref_pooled[:, :, :4])
    assert not ref_pooled[:, :, 4:].any() and found.max() > 1


# ------------------------------------------------------------------ trigger


def _sample(tmp_path, n=90):
    rng = np.random.default_rng(5)
    events = []
    for i in range(n):
        hits = [(int(rng.integers(0, 9)), int(rng.integers(0, 384))) for _ in range(int(rng.integers(0, 12)))]
        s0 = int(rng.integers(10, 360))
        hits += [(k, s0 + k // 3) for k in range(9) if rng.random() < 0.8]
        events.append(make_event(i, hits, [(float(5 + i % 20), 0.1, 1)]))
    return write_events(tmp_path / "events.root", events)


def test_trigger_builds_images_from_the_spec_layers(tmp_path):
    chunk = load_events(str(_sample(tmp_path)))
    trigger = Trigger(counting_spec(MIDDLE))
    starts, raw = trigger.network_raw(chunk)
    ref_start, ref_pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, MIDDLE)
    np.testing.assert_array_equal(starts, ref_start)
    # pT (GeV) = lit pixels of the window's middle-station rows
    pt = trigger.emulator.to_physical(raw)["pt"]
    np.testing.assert_array_equal(pt, ref_pooled.reshape(len(pt), -1).sum(axis=1))
    assert Trigger(counting_spec()).layers is None and trigger.layers == MIDDLE


def test_multi_candidate_trigger_uses_the_spec_layers(tmp_path):
    chunk = load_events(str(_sample(tmp_path)), muons=True)
    trigger = Trigger(counting_spec(MIDDLE, candidates=3))
    starts, raw = trigger.network_raw(chunk)
    ref_starts, ref_pooled, found = sector_candidates(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, min_hits=3, layers=MIDDLE)
    np.testing.assert_array_equal(starts, ref_starts)
    present = np.arange(3)[None, :] < found[:, None]
    pt = trigger.emulator.to_physical(raw[present])["pt"]
    np.testing.assert_array_equal(pt, ref_pooled[present].reshape(len(pt), -1).sum(axis=1))


def test_l0emu_run_with_a_layer_set_spec(tmp_path):
    import uproot

    events = _sample(tmp_path)
    spec_path = write_spec(counting_spec(MIDDLE), tmp_path / "spec.json")
    out = tmp_path / "l0.root"
    assert cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(out), "--thresholds", "2", "--no-progress"]) == 0
    chunk = load_events(str(events))
    _, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, MIDDLE)
    with uproot.open(out) as file:
        pt = file[L0_TREE]["pt"].array(library="np")
    np.testing.assert_array_equal(pt, pooled.reshape(len(pt), -1).sum(axis=1))


# ------------------------------------------------------------------ training, conversion, C-simulation


def test_student_kernels_fit_every_row_count():
    from firmware.models import build_student, student_kernel_heights

    assert student_kernel_heights(9) == (3, 3, 3, 3)
    assert student_kernel_heights(4) == (3, 2, 1, 1)
    assert student_kernel_heights(1) == (1, 1, 1, 1)
    nine, four = build_student(), build_student(rows=4)
    assert four.input_shape[1:] == (4, 16, 1) and four.get_layer("conv4").output_shape[1:] == (1, 8, 6)
    assert four.get_layer("flatten").output_shape == nine.get_layer("flatten").output_shape == (None, 48)
    assert nine.count_params() == 1032 and nine.name == "student" and four.name == "student_4x16"
    with pytest.raises(ConfigError, match="1 to 9 rows"):
        student_kernel_heights(10)


@pytest.mark.slow
def test_train_middle_convert_and_emulator_equals_csim(tmp_path):
    import uproot

    from validation.compare import compare

    sample = tmp_path / "sim.root"
    assert cli.main(["simulate", "-n", "2000", "--seed", "123", "-o", str(sample)]) == 0
    model = tmp_path / "middle"
    rc = cli.main(["train", str(sample), "-o", str(model), "--layers", "middle", "--nbits", "4", "--kd",
                   "--epochs", "1", "--max-events", "2000", "--seed", "2"])  # fmt: skip
    assert rc == 0
    record = json.loads((model / "record.json").read_text())
    assert record["data"]["layers"] == [3, 4, 5, 6]
    assert record["targets"]["preprocessing"]["layers"] == [3, 4, 5, 6]
    project = tmp_path / "fw"
    assert cli.main(["convert", str(model / "model.h5"), "-o", str(project)]) == 0
    spec = json.loads((project / "spec.json").read_text())
    assert spec["preprocessing"]["layers"] == [3, 4, 5, 6] and spec_inputs(spec)[0]["shape"] == [4, 16, 1]
    chunk = load_events(str(sample), entry_stop=300)
    _, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, MIDDLE)
    result = compare(project, pooled)
    assert result.n_events == 300 and result.n_mismatched == 0
    out = tmp_path / "l0.root"
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # run on its own training sample: the protocol's warning, printed by the CLI
        assert cli.main(["run", str(sample), "--spec", str(project / "spec.json"), "-o", str(out), "--no-progress"]) == 0
    trigger = Trigger(spec)
    with uproot.open(out) as file:
        pt_raw = file[L0_TREE]["pt_raw"].array(library="np")
    raw = trigger.emulator.predict_raw(fragment_hits(*_hits(load_events(str(sample))), 8, MIDDLE)[1])
    np.testing.assert_array_equal(pt_raw, raw[:, trigger.emulator.column("pt")])


def _hits(chunk):
    return chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip


def test_nine_layer_spec_is_unchanged_by_the_layer_field():
    # the 9-layer preprocessing entry has no 'layers': every existing spec reads the same
    from firmware.dataset import preprocessing_spec

    assert preprocessing_spec("window", 8) == {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": 8}}
    assert preprocessing_spec("window", 8, layers=MIDDLE)["layers"] == [3, 4, 5, 6]
    assert preprocessing_spec("sector", 8, layers=MIDDLE) == {"image": [9, 384], "layers": [3, 4, 5, 6]}
    shipped = json.loads((importlib.resources.files("l0emu") / "data" / "default_student" / "spec.json").read_text())
    assert "layers" not in shipped["preprocessing"] and preprocessing_layers(validate_spec(shipped)) == ALL_LAYERS


def test_first_fragments_follow_the_layer_set(tmp_path):
    # the inputs of `l0emu validate --events`, `run --check-firmware` and the RTL checks
    events = [make_event(i, [(layer, 40 * i + layer) for layer in range(9)] + [(0, 300), (1, 301), (2, 302)]) for i in range(5)]
    path = str(write_events(tmp_path / "e.root", events))
    chunk = load_events(path)
    middle = first_fragments([path], 4, 8, layers=(3, 4, 5, 6))
    assert middle.shape == (4, 4, 16)
    expected = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8, layers=(3, 4, 5, 6))[1][:4]
    np.testing.assert_array_equal(middle, expected)
    np.testing.assert_array_equal(first_fragments([path], 4, 8), fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8)[1][:4])
