"""Physics metrics on tiny hand-made inputs whose answers are known."""

import math

import numpy as np
import pytest

from l0emu.results.metrics import (
    PLATEAU_MIN_PT,
    RESOLUTION_EDGES,
    fake_rate,
    half_efficiency_point,
    physics_summary,
    plateau_efficiency,
    plateau_min_pt,
    pt_resolution,
    resolution_range_text,
    turn_on_curve,
)


def test_turn_on_counts_events_per_true_pt_bin():
    true_pt = np.array([3.5, 3.5, 9.5, 9.5, 9.5, 9.5, 19.9, 1.0])
    pred_pt = np.array([12.0, 2.0, 10.0, 9.99, 11.0, 0.0, 30.0, 50.0])
    curve = turn_on_curve(true_pt, pred_pt, threshold=10.0)
    assert curve.edges[0] == 3.0 and curve.edges[-1] == 20.0 and len(curve.edges) == 18
    assert curve.total[0] == 2 and curve.passed[0] == 1
    assert curve.total[6] == 4 and curve.passed[6] == 2  # 10.0 passes (>=), 9.99 does not
    assert curve.total[16] == 1 and curve.passed[16] == 1
    assert curve.total.sum() == 7  # the 1 GeV event is outside [3, 20]
    assert np.isnan(curve.efficiency[1]) and np.isnan(curve.low[1])
    assert curve.efficiency[6] == 0.5
    assert curve.low[6] < 0.5 < curve.high[6]
    assert curve.high[16] == 1.0


def test_clopper_pearson_interval_matches_the_closed_form_for_all_pass():
    # k = n: the lower edge of the central 68.27 % interval solves p^n = (1 - 0.6827) / 2
    curve = turn_on_curve(np.full(4, 16.5), np.full(4, 20.0))
    assert curve.low[13] == pytest.approx(((1 - 0.6827) / 2) ** (1 / 4), rel=1e-9)


def test_plateau_uses_only_true_pt_at_or_above_15():
    true_pt = np.array([15.0, 16.0, 17.0, 18.0, 14.9])
    pred_pt = np.array([11.0, 9.0, 12.0, 13.0, 20.0])
    plateau = plateau_efficiency(true_pt, pred_pt)
    assert (plateau["passed"], plateau["total"]) == (3, 4)
    assert plateau["efficiency"] == 0.75
    assert plateau["low"] < 0.75 < plateau["high"]


def test_plateau_follows_the_threshold_with_one_definition():
    # 1.5 x T: the rate table and the grid share it (15 GeV at the default 10 GeV threshold)
    assert PLATEAU_MIN_PT == 15.0 and plateau_min_pt(5) == 7.5 and plateau_min_pt(20) == 30.0
    true_pt = np.array([7.4, 7.5, 8.0, 30.0])
    pred_pt = np.array([9.0, 6.0, 4.0, 6.0])
    plateau = plateau_efficiency(true_pt, pred_pt, threshold=5.0)
    assert (plateau["passed"], plateau["total"], plateau["plateau_min_gev"]) == (2, 3, 7.5)
    with pytest.raises(ValueError, match="threshold"):
        plateau_min_pt(0.0)


def test_a_plateau_beyond_the_sample_is_nan_not_zero():
    plateau = plateau_efficiency(np.array([5.0, 19.9]), np.array([25.0, 25.0]), threshold=20.0)
    assert plateau["total"] == 0 and math.isnan(plateau["efficiency"])


def test_resolution_range_text_matches_the_edges_used():
    assert resolution_range_text() == "[7, 13) GeV"
    result = pt_resolution(np.array([6.9, 7.0, 12.9, 13.0]), np.array([7.0, 7.7, 12.9, 13.0]))
    assert result["count"].sum() == 2 and RESOLUTION_EDGES[-1] == 13.0


def test_half_efficiency_point_interpolates_between_bin_centres():
    # bins [8,9): 1 of 4 pass, [9,10): 3 of 4 pass -> 50 % halfway between 8.5 and 9.5
    true_pt = np.array([8.2] * 4 + [9.2] * 4)
    pred_pt = np.array([11, 0, 0, 0, 11, 11, 11, 0], dtype=float)
    assert half_efficiency_point(turn_on_curve(true_pt, pred_pt)) == pytest.approx(9.0)


def test_half_efficiency_point_is_nan_when_never_reached():
    curve = turn_on_curve(np.array([5.0, 12.0]), np.array([0.0, 0.0]))
    assert math.isnan(half_efficiency_point(curve))


def test_resolution_bias_and_rms_per_bin():
    true_pt = np.array([10.0, 10.0, 12.0, 30.0])
    pred_pt = np.array([11.0, 9.0, 12.0, 0.0])
    res = pt_resolution(true_pt, pred_pt, edges=[9.0, 11.0, 13.0])
    assert res["count"].tolist() == [2, 1]
    assert res["bias"].tolist() == [0.0, 0.0]
    assert res["rms"][0] == pytest.approx(0.1)
    assert res["overall_rms"] == pytest.approx(np.std([0.1, -0.1, 0.0]))


def test_fake_rate_counts_background_only_with_upper_limit():
    true_pt = np.array([0.0, 0.0, 0.0, 2.5, 15.0])
    pred_pt = np.array([10.0, 3.0, 1.0, 4.0, 30.0])
    fake = fake_rate(true_pt, pred_pt, threshold=10.0)
    assert (fake["fired"], fake["total"]) == (1, 4)
    assert fake["rate"] == 0.25
    # one-sided 95 % Clopper-Pearson for 1 of 4 solves (1-p)^4 + 4 p (1-p)^3 = 0.05
    p = fake["upper"]
    assert (1 - p) ** 4 + 4 * p * (1 - p) ** 3 == pytest.approx(0.05, abs=1e-9)


def test_fake_rate_limit_without_fakes_is_exact_and_close_to_three_over_n():
    fake = fake_rate(np.zeros(600), np.zeros(600))
    assert fake["rate"] == 0.0 and fake["upper"] == pytest.approx(1 - 0.05 ** (1 / 600), rel=1e-9)
    assert fake["upper"] == pytest.approx(3.0 / 600, rel=5e-3)


def test_summary_is_json_ready():
    import json

    rng = np.random.default_rng(0)
    true_pt = np.concatenate([rng.uniform(3, 20, 200), np.zeros(50)])
    summary = physics_summary(true_pt, true_pt * rng.normal(1, 0.1, 250))
    json.dumps(summary, allow_nan=True)
    assert summary["fake_rate"]["total"] == 50
    assert 9.0 < summary["half_efficiency_pt"] < 11.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        turn_on_curve(np.zeros(3), np.zeros(2))
