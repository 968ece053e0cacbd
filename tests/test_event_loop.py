"""The event loop's fast paths (issue 14) against plain references built here.

Each kernel that replaced numpy/awkward/hist code is checked for exact equality with a
straightforward reference on inputs chosen to hit its edges: bin edges, overflow, NaN and
ties of the leading muon, every stride's window ranges, and work units on basket boundaries.
"""

from __future__ import annotations

import hist
import numpy as np
import pytest
from conftest import make_event, write_events
from test_trigger import assert_same_l0, counting_spec, sample_events

from l0emu.errors import InputFileError
from l0emu.trigger.events import _leading, load_events, open_events, plan_ranges
from l0emu.trigger.geometry import N_STRIPS
from l0emu.trigger.images import WINDOW_STRIPS, window_ranges, window_starts
from l0emu.trigger.job import run_job
from l0emu.results.metrics import plateau_min_pt
from l0emu.results.rates import PT_BINS, TriggerCounts
from l0emu.schema import SIGNAL_PT_MIN, threshold_branch


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


@pytest.mark.parametrize("stride", [1, 3, 7, 8, 16, 24, 32, 33, 100, 352])
def test_window_ranges_list_exactly_the_windows_holding_each_strip(stride):
    starts = window_starts(stride).astype(np.int64)
    first, end = window_ranges(starts)
    for s in range(N_STRIPS):
        holding = [w for w in range(len(starts)) if starts[w] <= s < starts[w] + WINDOW_STRIPS]
        assert list(range(first[s], end[s])) == holding, (stride, s)


def _reference_counts(columns, thresholds):
    """The counts as numpy masks and hist fills compute them (the code before issue 14)."""

    def binned(values):
        axis = hist.axis.Variable(PT_BINS, underflow=False, overflow=False)
        return hist.Hist(axis, storage=hist.storage.Int64()).fill(values).values().astype(np.int64)

    true_pt = np.asarray(columns["true_pt"], dtype=np.float64)
    signal = true_pt >= SIGNAL_PT_MIN
    clipped = np.minimum(true_pt[signal], PT_BINS[-1] - 1e-9)
    out = {"denominator": binned(clipped), "background": int((~signal).sum()),
           "max_signal_pt": float(true_pt[signal].max()) if signal.any() else 0.0}
    for t in thresholds:
        fired = np.asarray(columns[threshold_branch(t)], dtype=bool)
        on_plateau = true_pt >= plateau_min_pt(t)
        out[t] = (binned(clipped[fired[signal]]), int(fired[~signal].sum()),
                  int((on_plateau & signal).sum()), int((on_plateau & signal & fired).sum()))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_equal_the_histogram_reference_at_edges_and_overflow(dtype):
    rng = np.random.default_rng(14)
    edges = np.concatenate([PT_BINS, np.nextafter(PT_BINS, -np.inf), np.nextafter(PT_BINS, np.inf)])
    # a truth pT that is NaN or infinite is refused (test_rates), not counted
    special = np.array([-1.0, 0.0, 2.999, 3.0, 7.5, 15.0, 59.999999, 60.0, 80.0, 1e6])
    pt = np.concatenate([rng.uniform(0.0, 70.0, 20_000), edges, special]).astype(dtype)
    rng.shuffle(pt)
    thresholds = (2.0, 5.0, 10.0, 20.0, 45.0)  # plateaus 3 (the signal edge), 7.5, 15, 30, 67.5
    columns = {"true_pt": pt}
    for t in thresholds:
        columns[threshold_branch(t)] = rng.random(len(pt)) < 0.4
    counts = TriggerCounts.from_columns(columns, thresholds)
    ref = _reference_counts(columns, thresholds)
    np.testing.assert_array_equal(counts.denominator, ref["denominator"])
    assert (counts.background, counts.max_signal_pt) == (ref["background"], ref["max_signal_pt"])
    for t in thresholds:
        b = threshold_branch(t)
        numerator, fired_background, total, passed = ref[t]
        np.testing.assert_array_equal(counts.numerator[b], numerator)
        assert (counts.background_fired[b], counts.plateau_total[b], counts.plateau_passed[b]) == (
            fired_background, total, passed)


def _reference_leading(pt_lists, eta_lists):
    """First highest pT per event; 0 for no muon (a NaN pT is refused by the reader)."""
    lead_pt, lead_eta = [], []
    for pts, etas in zip(pt_lists, eta_lists):
        if not pts:
            lead_pt.append(0.0), lead_eta.append(0.0)
            continue
        k = pts.index(max(pts))
        lead_pt.append(pts[k]), lead_eta.append(etas[k])
    return np.float32(lead_pt), np.float32(lead_eta)


def test_leading_muon_equals_the_reference_with_ties_and_offset_ranges():
    import awkward as ak

    rng = np.random.default_rng(7)
    counts = rng.integers(0, 5, 3000)
    pt = rng.integers(0, 6, counts.sum()).astype(np.float32)  # small integers: many ties
    eta = rng.normal(size=len(pt)).astype(np.float32)
    jagged_pt, jagged_eta = ak.unflatten(pt, counts), ak.unflatten(eta, counts)
    for lo in (0, 1234):  # a slice keeps offsets that do not start at 0
        got = _leading("test.root", lo, jagged_pt[lo:], jagged_eta[lo:])
        want = _reference_leading(jagged_pt[lo:].to_list(), jagged_eta[lo:].to_list())
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    pt[5] = np.nan
    with pytest.raises(InputFileError, match=r"test.root':events/muon_pt entry \d+: value nan is not a finite number"):
        _leading("test.root", 0, ak.unflatten(pt, counts), jagged_eta)


def test_work_units_end_on_basket_boundaries_and_give_the_same_output(tmp_path):
    events = write_events(tmp_path / "ev.root", sample_events(90, seed=5), entries_per_cluster=20)
    boundaries = open_events(str(events)).common_entry_offsets()
    assert boundaries == [0, 20, 40, 60, 80, 90]
    for step, stops in ((50, [40, 90]), (20, [20, 40, 60, 80, 90]), (15, [15, 20, 35, 40, 55, 60, 75, 90])):
        units = plan_ranges([str(events)], step)
        assert [u[2] for u in units] == stops
        assert [u[1] for u in units] == [0, *stops[:-1]]
    whole = load_events(str(events))
    assert len(whole) == 90
    run_job([str(events)], counting_spec(), tmp_path / "a.root", (5.0, 8.0), step_size=1000, progress=False)
    run_job([str(events)], counting_spec(), tmp_path / "b.root", (5.0, 8.0), step_size=15, progress=False)
    assert_same_l0(tmp_path / "a.root", tmp_path / "b.root")


def test_rntuple_units_end_on_cluster_boundaries(tmp_path):
    events = [make_event(i, [(0, i % 384)]) for i in range(25)]
    path = write_events(tmp_path / "ev.root", events, fmt="rntuple", entries_per_cluster=10)
    assert [u[1:] for u in plan_ranges([str(path)], 7)] == [(0, 7), (7, 10), (10, 17), (17, 20), (20, 25)]
    assert [u[1:] for u in plan_ranges([str(path)], 25)] == [(0, 25)]
