"""Sector logic for several muons (l0emu/sector.py): candidate windows on hand-made inputs with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from l0emu.errors import ConfigError
from l0emu.trigger.images import fragment_hits, hits_to_images, window_starts
from l0emu.trigger.sector import NO_CANDIDATE, candidate_images, choose_candidates, min_candidate_hits, predict_candidates, sector_candidates
from l0emu.simulation.generator import generate
from l0emu.simulation.settings import SCENARIOS, settings_for_scenario

from conftest import jagged_hits

STRIDE = 8  # window starts 0, 8, ..., 352: window w starts at strip 8 * w


def _counts(**peaks):
    hits = np.zeros(len(window_starts(STRIDE)), np.int32)
    for name, value in peaks.items():
        hits[int(name.removeprefix("w"))] = value
    return hits


def test_highest_windows_in_order_with_the_tie_rule():
    # a run of four tied windows 9..12 (middle: 10, start 80), then 8 hits at window 30, 3 at 40
    counts = _counts(w9=11, w10=11, w11=11, w12=11, w30=8, w40=3)
    assert choose_candidates(counts, STRIDE).tolist() == [80, 240, NO_CANDIDATE]
    assert choose_candidates(counts, STRIDE, min_hits=3).tolist() == [80, 240, 320]
    assert choose_candidates(counts, STRIDE, max_candidates=1).tolist() == [80]


def test_windows_overlapping_a_candidate_are_excluded():
    # window 13 (start 104) overlaps candidate 80..111; window 14 (start 112) does not
    counts = _counts(w10=12, w13=10, w14=9)
    assert choose_candidates(counts, STRIDE).tolist() == [80, 112, NO_CANDIDATE]
    # an excluded window ends a run of ties: 12..16 tie at 9 hits, 12 and 13 overlap 80..111,
    # so the run is 14..16 and its middle 15 (start 120), not the middle of 12..16 (112)
    counts = _counts(w10=12, w12=9, w13=9, w14=9, w15=9, w16=9)
    assert choose_candidates(counts, STRIDE).tolist() == [80, 120, NO_CANDIDATE]


def test_the_first_candidate_always_exists_further_ones_need_min_hits():
    empty = np.zeros(len(window_starts(STRIDE)), np.int32)
    # all windows tie at 0: the middle one, as the single-window fragmentation does
    assert choose_candidates(empty, STRIDE).tolist() == [176, NO_CANDIDATE, NO_CANDIDATE]
    assert choose_candidates(empty, STRIDE, min_hits=0).tolist()[1] != NO_CANDIDATE


def _reference_candidates(counts, starts, max_candidates, min_hits):
    """The rule in plain Python: best window (middle of the first tied run) among those not
    sharing a strip with an earlier candidate, checking every window for overlap."""
    counts, chosen = [int(c) for c in counts], []
    for k in range(max_candidates):
        best = max(counts)
        if best < 0 or (k and best < min_hits):
            break
        first = counts.index(best)
        last = first
        while last + 1 < len(counts) and counts[last + 1] == best:
            last += 1
        start = int(starts[(first + last) // 2])
        chosen.append(start)
        counts = [-1 if s < start + 32 and s + 32 > start else c for s, c in zip(starts, counts)]
    return chosen + [NO_CANDIDATE] * (max_candidates - len(chosen))


@pytest.mark.parametrize("stride", [1, 5, 8, 12, 16, 32, 100])
def test_candidates_equal_the_plain_rule_on_random_counts(stride):
    # the exclusion walks only the run of windows around each candidate: checked against a scan
    # of all windows, with strides whose last window is the right-edge one (12, 100) and with ties
    starts = window_starts(stride)
    rng = np.random.default_rng(stride)
    for _ in range(300):
        counts = rng.integers(0, rng.choice([3, 12, 40]), len(starts)).astype(np.int32)
        for max_candidates, min_hits in ((3, 6), (4, 0), (12, 1)):
            got = choose_candidates(counts, stride, max_candidates=max_candidates, min_hits=min_hits).tolist()
            assert got == _reference_candidates(counts, starts, max_candidates, min_hits), (counts.tolist(), max_candidates)


def test_min_hits_default_follows_the_image_rows():
    assert (min_candidate_hits(), min_candidate_hits(9), min_candidate_hits(4), min_candidate_hits(1)) == (6, 6, 3, 1)
    # two straight tracks in the middle station (layers 3-6), four pixels each, 100 strips apart
    layer = np.array([3, 4, 5, 6, 3, 4, 5, 6], np.uint8)
    strip = np.array([50, 50, 50, 50, 150, 150, 150, 150], np.int16)
    offsets = np.array([0, 8], np.int64)
    middle = (3, 4, 5, 6)
    assert sector_candidates(offsets, layer, strip, STRIDE, layers=middle)[2].tolist() == [2]  # min_hits 3
    assert sector_candidates(offsets, layer, strip, STRIDE, layers=middle, min_hits=6)[2].tolist() == [1]
    assert sector_candidates(offsets, layer, strip, STRIDE)[2].tolist() == [1]  # nine layers: 6


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"max_candidates": 0}, "max_candidates"),
    ({"max_candidates": 13}, "max_candidates"),
    ({"min_hits": -1}, "min_hits"),
    ({"min_hits": 2.5}, "min_hits"),
])
def test_impossible_arguments_are_named(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        choose_candidates(np.zeros(len(window_starts(STRIDE)), np.int32), STRIDE, **kwargs)
    offsets, layer, strip = jagged_hits([])
    with pytest.raises(ConfigError, match=named):
        sector_candidates(offsets, layer, strip, STRIDE, **kwargs)


def test_two_straight_tracks_become_two_candidates_with_exact_images():
    track_a = [(row, 50) for row in range(9)]  # 9 lit pixels in strip 50
    track_b = [(row, 300) for row in range(9)] + [(0, 301)]  # 10 in strips 300-301: the leading one
    duplicate = [(4, 50)]  # a repeated hit counts once
    offsets, layer, strip = jagged_hits(track_a + track_b + duplicate, [], [(3, 10)] * 7)
    starts, pooled, n_found = sector_candidates(offsets, layer, strip, STRIDE)
    assert n_found.tolist() == [2, 1, 1]
    # windows 34..37 (starts 272..296) hold track b: middle 35 -> 280; track a: windows 3..6 -> 32
    assert starts[0].tolist() == [280, 32, NO_CANDIDATE]
    expected_b = np.zeros((9, 16), np.uint8)
    expected_b[:, (300 - 280) // 2] = 1
    expected_b[0, (300 - 280) // 2] = 2  # strips 300 and 301 pool into one pixel
    expected_a = np.zeros((9, 16), np.uint8)
    expected_a[:, (50 - 32) // 2] = 1
    assert np.array_equal(pooled[0, 0], expected_b)
    assert np.array_equal(pooled[0, 1], expected_a)
    assert not pooled[0, 2].any()
    # one lit pixel is below min_hits for a second candidate, and the empty event has one (empty) window
    assert not pooled[1].any()
    assert starts[2, 1] == NO_CANDIDATE and pooled[2, 0].sum() == 1


# strides 7 and 5 add an extra window at the right edge (start 352), which the kernel counts apart
@pytest.mark.parametrize(("scenario", "stride"), [("multi", STRIDE), ("hard", STRIDE), ("multi", 7), ("hard", 5), ("multi", 1)])
def test_simulated_events_first_candidate_is_the_single_window_and_the_rest_are_disjoint(scenario, stride):
    settings = settings_for_scenario(scenario, seed=31, overrides=SCENARIOS["hard"] if scenario == "multi" else {})
    block = generate(settings, 3000)
    offsets, layer, strip = block.hit_offsets, block.hit_layer, block.hit_strip
    starts, pooled, n_found = sector_candidates(offsets, layer, strip, stride)
    compact_starts, images, compact_found = candidate_images(offsets, layer, strip, stride)
    assert np.array_equal(compact_starts, starts) and np.array_equal(compact_found, n_found)
    assert np.array_equal(images, pooled[np.arange(3)[None, :] < n_found[:, None]])  # event order, candidate 0 first
    single_start, single_pooled = fragment_hits(offsets, layer, strip, stride)
    assert np.array_equal(starts[:, 0], single_start)
    assert np.array_equal(pooled[:, 0], single_pooled)
    images = hits_to_images(offsets, layer, strip)
    # window counts summed from the 9x384 images, independently of the kernel's incremental counts
    cumulative = np.zeros((len(images), 385), np.int64)
    np.cumsum(images.sum(axis=1, dtype=np.int64), axis=1, out=cumulative[:, 1:])
    low = window_starts(stride).astype(np.int64)
    window_hits = cumulative[:, low + 32] - cumulative[:, low]
    for event in range(len(starts)):
        assert np.array_equal(choose_candidates(window_hits[event], stride), starts[event])
        present = starts[event, : n_found[event]]
        assert (starts[event, n_found[event]:] == NO_CANDIDATE).all()
        assert not pooled[event, n_found[event]:].any()
        lows = np.sort(present.astype(np.int64))
        assert (np.diff(lows) >= 32).all()  # no strip in two candidates
        for c, low in enumerate(present):
            window = images[event][:, low : low + 32]
            assert pooled[event, c].sum() == window.sum()
            assert c == 0 or window.sum() >= 6
    if scenario == "multi":
        assert (n_found >= 2).any() and (n_found == 3).any()


def test_predict_candidates_runs_the_network_on_present_candidates_only():
    class Doubler:
        """Stands in for an Emulator: one output, twice the lit pixels, so rows can be checked."""

        def predict_raw(self, pooled):
            assert pooled.shape[1:] == (9, 16)
            return 2 * pooled.reshape(len(pooled), -1).sum(axis=1, dtype=np.int64)[:, None]

    pooled = np.zeros((2, 3, 9, 16), np.uint8)
    pooled[0, 0, 0, 0] = 2
    pooled[0, 1, 1, 1] = 1
    pooled[1, 0, 2, 2] = 1
    pooled[1, 2, 3, 3] = 1  # beyond n_candidates: ignored
    raw = predict_candidates(Doubler(), pooled, np.array([2, 1], np.uint8))
    assert raw.tolist() == [[[4], [2], [0]], [[2], [0], [0]]]


def test_multi_muon_study_on_a_small_sample_is_consistent(tmp_path):
    from l0emu.cli.run import default_spec_path
    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.validation.multi_muon import evaluate, plot_two_muon_efficiency

    emulator = Emulator.from_spec(default_spec_path())
    settings = settings_for_scenario("multi", seed=41)
    # evaluate() itself raises if candidate 0 and the single-window trigger differ on any event
    result = evaluate(generate(settings, 4000), emulator, STRIDE, pt_min=settings.pt_min)
    two = result["two_muon"]
    assert sum(result["crossings_by_signal_muons"]) == 4000
    assert two["two_fire_matched"]["k"] <= two["two_fire"]["k"] <= two["two_fire"]["n"] > 0
    assert sum(two["by_separation"]["two_fire"]["n"]) == two["two_fire"]["n"]
    assert sum(two["by_separation"]["two_fire"]["k"]) == two["two_fire"]["k"]
    # two straight-line strips inside one 32-strip window are less than 32 strips apart
    holds = np.array(two["by_separation"]["single_window_holds_both"]["k"])
    assert holds[np.array(two["by_separation"]["edges"][:-1]) >= 32].sum() == 0
    path = plot_two_muon_efficiency({"default": result, "hard": result}, tmp_path / "eff.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_multi_study_verb_writes_its_figures_and_refuses_bad_minima(tmp_path, capsys):
    from l0emu import cli

    assert cli.main(["multi-study", "-n", "1500", "--seed", "250", "--seed-hard", "251", "--min-hits", "3,x", "-o", str(tmp_path)]) == 2
    assert "--min-hits" in capsys.readouterr().err
    assert cli.main(["multi-study", "-n", "1500", "--seed", "250", "--seed-hard", "251", "-o", str(tmp_path)]) == 0
    study = json.loads((tmp_path / "multi_study.json").read_text())
    assert set(study["by_min_hits"][next(iter(study["by_min_hits"]))]) == {"default", "hard"}
    assert (tmp_path / "two_muon_efficiency.png").read_bytes()[:4] == b"\x89PNG"
