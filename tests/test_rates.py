import numpy as np
import pytest

from l0emu.errors import ConfigError, InputFileError
from l0emu.results.rates import PT_BINS, RateAssumptions, TriggerCounts, rate_table


def _columns(true_pt, fired):
    return {"true_pt": np.asarray(true_pt, np.float32), "l0_pt10": np.asarray(fired, bool)}


def test_counts_split_the_sample_into_signal_and_background():
    cols = _columns([0.0, 2.5, 12.2, 16.0, 16.5, 80.0], [True, False, True, True, False, True])
    c = TriggerCounts.from_columns(cols, [10])
    assert c.background == 2 and c.background_fired["l0_pt10"] == 1
    assert c.denominator.sum() == 4
    assert c.denominator[12] == 1 and c.denominator[16] == 2 and c.denominator[-1] == 1  # 80 GeV -> last bin
    assert c.numerator["l0_pt10"][16] == 1 and c.numerator["l0_pt10"][-1] == 1
    assert (c.plateau_passed["l0_pt10"], c.plateau_total["l0_pt10"]) == (2, 3) and c.max_signal_pt == 80.0


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_truth_that_is_not_a_number_is_refused_naming_the_branch(value):
    """Not counted as background (a fake), as the event readers refuse such truth."""
    cols = _columns([0.0, 12.2, value, 16.0], [True, False, True, True])
    with pytest.raises(InputFileError, match=rf"the 'true_pt' branch holds {value!r} at entry 2 of this chunk \(1 such entries\)"):
        TriggerCounts.from_columns(cols, [10])


def test_merging_counts_equals_counting_once():
    rng = np.random.default_rng(3)
    pt = rng.uniform(0, 25, 1000)
    fired = rng.random(1000) < pt / 25
    whole = TriggerCounts.from_columns(_columns(pt, fired), [10])
    parts = TriggerCounts.from_columns(_columns(pt[:300], fired[:300]), [10]) + TriggerCounts.from_columns(
        _columns(pt[300:], fired[300:]), [10]
    )
    assert parts.background == whole.background
    assert parts.background_fired == whole.background_fired
    np.testing.assert_array_equal(parts.denominator, whole.denominator)
    np.testing.assert_array_equal(parts.numerator["l0_pt10"], whole.numerator["l0_pt10"])
    assert (parts.plateau_passed, parts.plateau_total) == (whole.plateau_passed, whole.plateau_total)
    assert parts.max_signal_pt == whole.max_signal_pt


def test_plateau_starts_exactly_at_one_and_a_half_times_the_threshold():
    # T = 5: the plateau starts at 7.5 GeV, inside the [7, 8) histogram bin
    pt = np.array([7.4, 7.5, 7.6, 7.9, 8.5, 0.0])
    fired = np.array([True, False, True, True, True, False])
    counts = TriggerCounts.from_columns({"true_pt": pt.astype(np.float32), "l0_pt5": fired}, [5])
    (row,) = rate_table(counts, [5], RateAssumptions())
    assert row["plateau_from_gev"] == 7.5
    assert (row["plateau_events"], row["plateau_efficiency"]) == (4, 0.75)


def test_a_threshold_beyond_the_sample_has_no_plateau_and_no_rate():
    # a sample that stops at 20 GeV has no plateau for T = 20 (30 GeV): n/a, never 0 kHz
    pt = np.concatenate([np.repeat(np.arange(3.5, 20.0, 1.0), 10), np.zeros(100)])
    cols = {"true_pt": pt.astype(np.float32), "l0_pt10": pt >= 10, "l0_pt20": np.zeros(len(pt), bool)}
    counts = TriggerCounts.from_columns(cols, [10, 20])
    ten, twenty = rate_table(counts, [10, 20], RateAssumptions())
    assert ten["plateau_efficiency"] == 1.0 and ten["l0_rate_khz"] > 0 and ten["note"] == ""
    assert np.isnan(twenty["plateau_efficiency"]) and np.isnan(twenty["l0_rate_khz"])
    assert "outside the sample's pT range" in twenty["note"] and "30 GeV" in twenty["note"]

def test_rate_table_on_a_perfect_step_trigger():
    pt = np.repeat(np.arange(3.5, 20.0, 1.0), 100)
    fired = pt >= 10
    background = np.zeros(1000)
    cols = _columns(np.concatenate([pt, background]), np.concatenate([fired, background > 1]))
    counts = TriggerCounts.from_columns(cols, [10])
    assumptions = RateAssumptions(bunch_crossing_mhz=40.0, muon_fraction=0.0, spectrum_index=3.0)
    (row,) = rate_table(counts, [10], assumptions)
    assert row["plateau_efficiency"] == 1.0 and row["plateau_from_gev"] == 15.0
    assert row["half_efficiency_gev"] == pytest.approx(10.0)  # midway between the 9.5 and 10.5 bin centres
    assert row["fake_rate"] == 0.0 and row["fake_rate_ul95"] == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-9)
    assert row["l0_rate_khz"] == 0.0


def test_rate_from_muons_follows_the_stated_spectrum():
    # efficiency 1 everywhere above 3 GeV, no fakes: rate = f_bx * f_mu
    pt = np.concatenate([np.repeat(np.arange(3.5, 30.0, 1.0), 10), np.zeros(50)])
    counts = TriggerCounts.from_columns(_columns(pt, pt > 0), [10])
    (row,) = rate_table(counts, [10], RateAssumptions(40.0, 1e-3, 3.0))
    assert row["l0_rate_khz"] == pytest.approx(40e3 * 1e-3, rel=1e-9)
    assert PT_BINS[0] == 0.0 and PT_BINS[-1] == 60.0 and len(PT_BINS) == 61


def test_rate_is_unknown_without_background_events():
    pt = np.full(10, 12.0)
    counts = TriggerCounts.from_columns(_columns(pt, pt > 0), [10])
    (row,) = rate_table(counts, [10], RateAssumptions())
    assert np.isnan(row["fake_rate"]) and np.isnan(row["l0_rate_khz"])


@pytest.mark.parametrize(
    "kwargs, field",
    [({"bunch_crossing_mhz": 0}, "bunch_crossing_mhz"), ({"muon_fraction": 2}, "muon_fraction"),
     ({"spectrum_index": 1.0}, "spectrum_index")],
)
def test_bad_assumptions_name_the_setting(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        RateAssumptions(**kwargs)
