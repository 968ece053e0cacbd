"""The toy RPC simulation: schema, reproducibility, physics sanity, settings, CLI, bad input."""

from __future__ import annotations

import dataclasses
import json
import os

import awkward as ak
import numpy as np
import pytest
import uproot

from l0emu import cli
from l0emu.errors import ConfigError
from l0emu.trigger.geometry import N_LAYERS, N_STRIPS, STATION_OF_LAYER
from l0emu.schema import EVENT_JAGGED, EVENT_SCALARS, EVENTS_TREE, SETTINGS_TREE
from l0emu.simulation import events_io
from l0emu.simulation.analysis import bo_bi_offset, fragment_survival, hit_event_index
from l0emu.simulation.block import EventBlock
from l0emu.simulation.generator import BLOCK_EVENTS, generate, iter_chunks
from l0emu.simulation.kernels import emit_hits
from l0emu.simulation.plots import FRAGMENT_STRIDES, make_plots
from l0emu.simulation.settings import RATE_SPECTRUM, SimSettings, settings_for_scenario

SCALE = os.environ.get("L0EMU_TEST_SCALE", "small")
# statistical checks: a deviation beyond this many binomial standard errors fails
N_SIGMA = 5.0


def _assert_blocks_equal(a: EventBlock, b: EventBlock):
    for field in dataclasses.fields(EventBlock):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert x.dtype == y.dtype, field.name
        assert np.array_equal(x, y), field.name


def _assert_binomial(successes, trials, p, what):
    sigma = np.sqrt(p * (1 - p) / trials)
    measured = successes / trials
    assert abs(measured - p) < N_SIGMA * sigma, f"{what}: measured {measured:.5f}, expected {p:.5f} +- {sigma:.5f}"


# --- the kernel on inline inputs --------------------------------------------------------------


def test_emit_hits_drops_out_of_sector_strips_and_repeats():
    # event 0: a muon cluster of 3 strips at the right edge (strip 384 is outside), then noise
    # on a strip the muon already lit (dropped) and a new one; event 1: noise only.
    source_offsets = np.array([[0, 1, 1], [1, 3, 4]])
    layer = np.array([0, 0, 1, 8], np.uint8)
    first = np.array([382, 383, 5, 0], np.int16)
    size = np.array([3, 1, 1, 1], np.uint8)
    is_noise = np.array([False, True, True, True])
    offsets, hit_layer, hit_strip, hit_noise = emit_hits(source_offsets, layer, first, size, is_noise)
    assert offsets.tolist() == [0, 3, 4]
    assert hit_layer.tolist() == [0, 0, 1, 8]
    assert hit_strip.tolist() == [382, 383, 5, 0]
    assert hit_noise.tolist() == [False, False, True, True]


# --- file schema --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hard_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "hard.root"
    settings = settings_for_scenario("hard", seed=11, overrides={"max_muons": 3})
    events_io.write_events(path, settings, 3000, chunk_size=777)
    return path, settings


def test_file_follows_the_event_schema(hard_file):
    path, _ = hard_file
    with uproot.open(path) as file:
        tree = file[EVENTS_TREE]
        arrays = tree.arrays()
        assert set(tree.keys()) == {*EVENT_SCALARS, *EVENT_JAGGED, "nmuon", "nhit"}
        assert str(file[SETTINGS_TREE]).startswith("{")
    for name, dtype in EVENT_SCALARS.items():
        assert np.asarray(arrays[name]).dtype == dtype, name
    for name, dtype in EVENT_JAGGED.items():
        assert np.asarray(ak.flatten(arrays[name])).dtype == dtype, name
    assert np.asarray(arrays["event_id"]).tolist() == list(range(3000))
    block = events_io.read_events(path)
    assert np.array_equal(np.diff(block.muon_offsets), block.n_muons)
    assert block.hit_layer.max() < N_LAYERS and 0 <= block.hit_strip.min() and block.hit_strip.max() < N_STRIPS
    # leading muon first
    event = np.repeat(np.arange(len(block)), block.n_muons)
    same_event = event[1:] == event[:-1]
    assert np.all(block.muon_pt[1:][same_event] <= block.muon_pt[:-1][same_event])
    # each (layer, strip) at most once per event
    key = hit_event_index(block) * (N_LAYERS * N_STRIPS) + block.hit_layer.astype(np.int64) * N_STRIPS + block.hit_strip
    assert len(np.unique(key)) == len(key)


# --- reproducibility -------------------------------------------------------------------------


def test_same_arrays_whatever_the_chunk_size():
    settings = settings_for_scenario("hard", seed=5)
    n = BLOCK_EVENTS + 321
    reference = generate(settings, n)
    for chunk_size in (997, BLOCK_EVENTS, BLOCK_EVENTS + 3, 10 * BLOCK_EVENTS):
        chunks = list(iter_chunks(settings, n, chunk_size))
        assert all(len(c) == chunk_size for c in chunks[:-1])
        _assert_blocks_equal(EventBlock.concatenate(chunks), reference)
    _assert_blocks_equal(generate(settings, 100), reference.slice(0, 100))
    other_seed = generate(dataclasses.replace(settings, seed=6), 100)
    assert not np.array_equal(other_seed.hit_strip[:50], reference.hit_strip[:50])


def test_regenerating_from_stored_settings_is_bit_exact(hard_file):
    path, settings = hard_file
    assert events_io.read_settings(path) == settings
    metadata = events_io.read_metadata(path)
    assert metadata["format"] == events_io.FORMAT and metadata["geometry"]["n_strips"] == N_STRIPS
    _assert_blocks_equal(events_io.read_events(path), generate(events_io.read_settings(path), metadata["n_events"]))


def test_one_reader_of_the_stored_metadata(hard_file, tmp_path):
    """events_io's metadata is the trigger's reading of the same object; a file without one is
    None to the sample check and refused by events_io, as are other formats and non-JSON."""
    from l0emu.errors import InputFileError
    from l0emu.trigger.samples import read_stored_metadata, stored_settings

    path, settings = hard_file
    assert events_io.read_metadata(path) == read_stored_metadata(path)
    assert stored_settings(path)["settings.scenario"] == settings.scenario
    cases = {"bare": None, "other_format": json.dumps({"format": "other/1"}), "not_json": "{settings"}
    for name, text in cases.items():
        with uproot.recreate(tmp_path / f"{name}.root") as f:
            f[EVENTS_TREE] = {"event_id": np.arange(2, dtype=np.int64)}
            if text is not None:
                f[SETTINGS_TREE] = text
    assert read_stored_metadata(tmp_path / "bare.root") is None and stored_settings(tmp_path / "bare.root") is None
    with pytest.raises(InputFileError, match="has no 'settings' object: not written by 'l0emu simulate'"):
        events_io.read_metadata(tmp_path / "bare.root")
    with pytest.raises(InputFileError, match="settings format 'other/1', expected"):
        events_io.read_metadata(tmp_path / "other_format.root")
    for reader in (events_io.read_metadata, stored_settings):
        with pytest.raises(InputFileError, match="the 'settings' object is not JSON"):
            reader(tmp_path / "not_json.root")


def test_settings_round_trip_and_scenarios():
    hard = settings_for_scenario("hard", seed=3, overrides={"noise_rate": "2e-3", "max_muons": "2"})
    assert SimSettings.from_dict(json.loads(json.dumps(hard.to_dict()))) == hard
    assert hard.noise_rate == 2e-3 and hard.max_muons == 2 and hard.segment_rate > 0
    default = settings_for_scenario("default")
    assert default == SimSettings().validate()
    assert settings_for_scenario("hard").noise_rate == 3 * default.noise_rate


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"layer_efficiency": 1.5}, "layer_efficiency"),
        ({"pt_min": 20, "pt_max": 3}, "pt_min"),
        ({"max_muons": 4}, "max_muons"),
        ({"noise_rate": -1e-3}, "noise_rate"),
        ({"cluster_size_1": 0.5}, "cluster_size"),
        ({"pt_spectrum": "falling"}, "pt_spectrum"),
        ({"max_muons": "two"}, "max_muons"),
        ({"noise_rat": 1e-3}, "noise_rate"),
    ],
)
def test_impossible_settings_name_the_setting(overrides, named):
    with pytest.raises(ConfigError, match=named):
        settings_for_scenario("default", overrides=overrides)


# --- physics sanity ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_muons():
    """Signal muons only, central enough never to leave the sector, no noise."""
    settings = settings_for_scenario(
        "default", seed=21, overrides={"background_fraction": 0.0, "noise_rate": 0.0, "eta_min": -0.5, "eta_max": 0.5}
    )
    return settings, generate(settings, 20_000)


def test_bending_falls_with_pt_and_flips_with_charge(clean_muons):
    _, block = clean_muons
    pt, charge, offset = bo_bi_offset(block)
    edges = np.array([3, 4, 6, 9, 13, 20])
    for sign in (-1, 1):
        which = np.digitize(pt[charge == sign], edges) - 1
        means = np.array([offset[charge == sign][which == b].mean() for b in range(len(edges) - 1)])
        assert np.all(np.sign(means) == sign)
        assert np.all(np.diff(np.abs(means)) < 0), means
    low = (pt < 3.5) & (charge == 1)
    high = (pt > 18) & (charge == 1)
    assert offset[low].mean() > 30 and offset[high].mean() < 8  # tens of strips at 3 GeV, a few at 20


def test_efficiency_and_cluster_sizes_match_the_settings(clean_muons):
    settings, block = clean_muons
    event = hit_event_index(block)
    per_layer = np.bincount(event * N_LAYERS + block.hit_layer, minlength=len(block) * N_LAYERS)
    trials = len(block) * N_LAYERS
    _assert_binomial(np.count_nonzero(per_layer), trials, settings.layer_efficiency, "layer efficiency")
    sizes = per_layer[per_layer > 0]
    for size, fraction in enumerate((settings.cluster_size_1, settings.cluster_size_2, settings.cluster_size_3), 1):
        _assert_binomial(np.count_nonzero(sizes == size), len(sizes), fraction, f"cluster size {size}")
    assert sizes.max() == 3


def test_noise_occupancy_and_background_fraction():
    settings = settings_for_scenario("default", seed=8)
    block = generate(settings, 20_000)
    _assert_binomial(np.count_nonzero(block.n_muons == 0), len(block), settings.background_fraction, "background")
    background = np.flatnonzero(block.n_muons == 0)
    noise_hits = np.diff(block.hit_offsets)[background].sum()
    assert np.all(block.hit_is_noise[np.isin(hit_event_index(block), background)])
    pixels = N_LAYERS * N_STRIPS
    # positions are drawn with replacement and repeats merge (see _noise_clusters)
    expected = 1 - (1 - settings.noise_rate / pixels) ** pixels
    _assert_binomial(noise_hits, len(background) * pixels, expected, "noise occupancy")


def test_power_law_spectrum_mean():
    settings = settings_for_scenario("default", seed=4, overrides={"pt_spectrum": "power", "background_fraction": 0.0})
    pt = generate(settings, 20_000).muon_pt.astype(np.float64)
    a, b = settings.pt_min, settings.pt_max
    expected = np.log(b / a) / (1 / a - 1 / b)  # mean of pT**-2 on [a, b]
    assert abs(pt.mean() - expected) < N_SIGMA * pt.std() / np.sqrt(len(pt))
    assert pt.min() >= a and pt.max() <= b


def test_rate_spectrum_reaches_the_plateau_of_every_default_threshold():
    # the main job's sample must hold muons above 1.5 x 20 GeV; .ci/main passes these settings
    from pathlib import Path

    from l0emu.results.metrics import plateau_min_pt
    from l0emu.trigger.logic import DEFAULT_THRESHOLDS

    settings = settings_for_scenario("default", seed=5, overrides={**RATE_SPECTRUM, "background_fraction": 0.0})
    pt = generate(settings, 20_000).muon_pt.astype(np.float64)
    a, b = settings.pt_min, settings.pt_max
    highest_plateau = plateau_min_pt(max(DEFAULT_THRESHOLDS))
    above = (1 / highest_plateau - 1 / b) / (1 / a - 1 / b)  # pT**-2 on [a, b] above the plateau edge
    _assert_binomial(np.count_nonzero(pt >= highest_plateau), len(pt), above, "muons on the 20 GeV plateau")
    assert pt.max() <= b == 50.0
    main_job = (Path(__file__).parents[1] / ".ci" / "main").read_text()
    for key, value in RATE_SPECTRUM.items():
        assert f"--set {key}={value:g}" in main_job if isinstance(value, float) else f"--set {key}={value}" in main_job


def test_hard_scenario_soft_muons_and_correlated_background(hard_file):
    _, settings = hard_file
    block = events_io.read_events(hard_file[0])
    leading = block.muon_pt[block.muon_offsets[:-1][block.n_muons > 0]]
    soft = (leading >= settings.soft_pt_min) & (leading <= settings.soft_pt_max)
    assert np.all(soft | (leading >= settings.pt_min))
    n_background = np.count_nonzero(block.n_muons == 0) + np.count_nonzero(soft)
    _assert_binomial(np.count_nonzero(soft), n_background, settings.soft_muon_fraction, "soft muon fraction")
    # correlated clusters light the same strips in two adjacent layers of one station
    only_pairs = settings_for_scenario(
        "hard", seed=2, overrides={"noise_rate": 0, "segment_rate": 0, "soft_muon_fraction": 0, "background_fraction": 1}
    )
    pairs = generate(only_pairs, 2000)
    event = hit_event_index(pairs)
    lit = set(zip(event.tolist(), pairs.hit_layer.tolist(), pairs.hit_strip.tolist()))
    for e, layer, strip in lit:
        partners = [(e, other, strip) in lit for other in (layer - 1, layer + 1)
                    if 0 <= other < N_LAYERS and STATION_OF_LAYER[other] == STATION_OF_LAYER[layer]]
        assert any(partners)


def test_fragmentation_keeps_most_muon_hits_and_coarser_strides_lose_some():
    block = generate(settings_for_scenario("default", seed=9), 20_000)
    rows = {stride: fragment_survival(block, stride) for stride in FRAGMENT_STRIDES}
    means = []
    for stride, (pt, fraction) in rows.items():
        assert np.median(fraction) == 1.0, stride  # a typical 3-20 GeV muon fits the 9x32 window
        means.append((fraction.mean(), fraction.std() / np.sqrt(len(fraction))))
        # strongly bent (3-5 GeV) muons lose more than stiff ones (10-20 GeV)
        assert fraction[pt < 5].mean() < fraction[pt > 10].mean()
    for (coarse, coarse_err), (fine, fine_err) in zip(means[1:], means[:-1]):
        assert coarse <= fine + N_SIGMA * np.hypot(coarse_err, fine_err)
    assert means[-1][0] < means[0][0] - N_SIGMA * np.hypot(means[-1][1], means[0][1])


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "events.root"
    rc = cli.main(["simulate", "-n", "300", "--seed", "5", "-o", str(out), "--set", "noise_rate=2e-3", "--chunk-size", "64"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "events/s" in text and "signal fraction" in text and "noise fraction" in text
    settings = events_io.read_settings(out)
    assert settings.noise_rate == 2e-3 and settings.seed == 5
    assert len(events_io.read_events(out)) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.root"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "layer_efficiency=1.2"], "layer_efficiency"),
        (["--set", "pt_min=25"], "pt_min"),
        (["--set", "noise_rat=1e-3"], "did you mean 'noise_rate'"),
        (["--set", "noise_rate"], "KEY=VALUE"),
        (["--set", "seed=3"], "--seed"),
        (["--scenario", "hardd"], "did you mean 'hard'"),
        (["-n", "-5"], "non-negative"),
        (["--chunk-size", "0"], "chunk size"),
    ],
)
def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "events.root"
    args = ["simulate", "-n", "10", "-o", str(out), *extra]
    assert cli.main(args) != 0
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_paths(tmp_path, capsys):
    assert cli.main(["simulate", "-n", "10", "-o", str(tmp_path / "missing" / "e.root")]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["simulate", "-n", "10", "-o", str(tmp_path)]) != 0
    assert "directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_leaves_no_file(tmp_path, monkeypatch, capsys):
    real_iter_chunks = events_io.iter_chunks

    def interrupted(*args, **kwargs):
        for i, chunk in enumerate(real_iter_chunks(*args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(events_io, "iter_chunks", interrupted)
    assert cli.main(["simulate", "-n", "500", "--chunk-size", "100", "-o", str(tmp_path / "e.root")]) == 130
    assert list(tmp_path.iterdir()) == []


def test_plots_are_written(tmp_path):
    paths = make_plots(settings_for_scenario("hard", seed=1), tmp_path / "plots", n_events=3000)
    assert len(paths) == 5
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="not a directory"):
        make_plots(settings_for_scenario("default"), paths[0])


@pytest.mark.slow
def test_streamed_file_at_scale(tmp_path):
    n = {"small": 100_000, "full": 2_000_000}[SCALE]
    path = tmp_path / "big.root"
    summary = events_io.write_events(path, settings_for_scenario("default", seed=1), n, chunk_size=50_000)
    assert summary.n_events == n
    with uproot.open(path) as file:
        tree = file[EVENTS_TREE]
        assert tree.num_entries == n
        ids = np.concatenate([np.asarray(a["event_id"]) for a in tree.iterate(["event_id"], step_size=500_000)])
    assert np.array_equal(ids, np.arange(n, dtype=np.uint64))
    _assert_binomial(summary.n_signal, n, 0.5, "signal fraction")
