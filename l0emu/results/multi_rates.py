"""Counts and tables of a multi-candidate trigger (docs/multi_muon.md), merged by addition.

Beside the single-muon rows of :func:`l0emu.results.rates.rate_table` a multi spec's job reports:

- one two-muon row per threshold T (``l0_2mu_pt<T>``): the turn-on and plateau against the
  *second* muon's pT in crossings with at least two signal muons, the fake rate on crossings
  without a signal muon, how often it fires on crossings with exactly one signal muon, and
  an L0 rate;
- charge identification vs true pT: crossings with exactly one signal muon and at least one
  counted candidate, the fraction with ``l0_charge == true_charge``;
- the muon-count matrix: true signal muons (0, 1, 2, 3 or more) against ``l0_n_mu``;
- two-muon efficiency vs the two leading muons' separation in strips, per threshold T, for
  crossings whose two leading muons both have pT >= 1.5 T (:func:`l0emu.results.metrics.plateau_min_pt`;
  15 GeV for ``l0_2mu_pt10``).

"Signal muon": pT >= :data:`l0emu.schema.SIGNAL_PT_MIN`, as everywhere in l0emu.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from l0emu.results.metrics import plateau_min_pt
from l0emu.results.rates import PT_BINS, RateAssumptions, TriggerCounts, _muon_efficiency, l0_rate_khz, rate_row
from l0emu.schema import SIGNAL_PT_MIN, two_muon_branch
from l0emu.results.stats import clopper_pearson, upper_limit

__all__ = ["CHARGE_PT_MIN", "MAX_COUNT", "N_SIGNAL", "SEPARATION", "SEPARATION_EDGES", "TWO_MUON_RATE", "MultiCounts", "is_count_column", "is_multi_spec",
           "multi_tables", "two_muon_rows"]

# how two_muon_rows' L0 rate is made (written beside the tables)
TWO_MUON_RATE = (
    "l0_2mu_pt<T> rows: turn-on, plateau (second muon pT >= 1.5 T) and 50 % point vs the second muon's true pT "
    "(crossings with >= 2 muons above 3 GeV); fake rate on crossings without such a muon; L0 rate = bunch-crossing "
    "rate x [(1 - f_mu) x fake rate + f_mu x fraction of one-muon crossings firing it, averaged over the rate "
    "spectrum as the single-muon efficiency is]; crossings with two real muons (order f_mu^2) are left out"
)
# columns of a multi spec's chunk that the counts read and the l0 tree does not hold (the writer
# drops them): signal muons per crossing, the two leading muons' separation in strips (nan: < 2)
N_SIGNAL = "_n_signal"
SEPARATION = "_separation"
# GeV: the charge-identification figure quoted alone (issue 11: single muons >= 10 GeV)
CHARGE_PT_MIN = 10.0
# its first bin: CHARGE_PT_MIN is an edge of PT_BINS, and overflow is folded into the last bin
_CHARGE_FIRST_BIN = int(np.searchsorted(PT_BINS, CHARGE_PT_MIN))
# the muon-count matrix's last row and column hold this many or more
MAX_COUNT = 3
# strips between the two leading muons (a window is 32 strips, a sector 384); the study's binning
SEPARATION_EDGES = np.array([0, 8, 16, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384], dtype=np.float64)

def is_multi_spec(spec: dict) -> bool:
    """Whether ``spec`` asks for the sector logic's candidates (``preprocessing.fragment.candidates``)."""
    return bool(((spec.get("preprocessing") or {}).get("fragment") or {}).get("candidates"))


def is_count_column(name: str) -> bool:
    """Whether a column of :meth:`l0emu.trigger.logic.Trigger.decide` is for the counts only (not an l0 branch)."""
    return name.startswith("_")


def _fraction(k, n) -> dict:
    k, n = int(k), int(n)
    low, high = clopper_pearson(k, n)
    return {"k": k, "n": n, "value": k / n if n else float("nan"), "low": float(low[0]), "high": float(high[0])}


def _binned(k, n) -> dict:
    k, n = np.asarray(k, np.int64), np.asarray(n, np.int64)
    low, high = clopper_pearson(k, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    return {"k": k.tolist(), "n": n.tolist(), "value": value.tolist(), "low": np.asarray(low).tolist(),
            "high": np.asarray(high).tolist()}


@dataclasses.dataclass
class MultiCounts:
    """Integer counts of the multi-candidate items; add two to merge."""

    thresholds: tuple
    pairs: TriggerCounts  # two-muon branches vs the second muon's pT: crossings with >= 2 signal muons
    one_muon: TriggerCounts  # two-muon branches vs true pT: crossings with exactly one signal muon
    every: TriggerCounts  # two-muon branches vs the leading pT: its background is crossings without one
    # branch "charge": l0_charge == true_charge vs true pT, one-muon crossings with a candidate (no plateau read)
    charge: TriggerCounts
    count_matrix: np.ndarray  # (MAX_COUNT + 1, MAX_COUNT + 1): true signal muons x l0_n_mu
    separation_total: np.ndarray  # (n_thresholds, n_separation_bins)
    separation_fired: np.ndarray

    @classmethod
    def empty(cls, thresholds) -> MultiCounts:
        thresholds = tuple(float(t) for t in thresholds)
        size = (len(thresholds), len(SEPARATION_EDGES) - 1)

        def two():
            return TriggerCounts.empty(thresholds, two_muon_branch)

        return cls(thresholds, two(), two(), two(), TriggerCounts.empty((CHARGE_PT_MIN,), _charge_branch),
                   np.zeros((MAX_COUNT + 1, MAX_COUNT + 1), np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64))

    @classmethod
    def from_columns(cls, columns: dict, thresholds) -> MultiCounts:
        """Counts of one chunk of a multi spec's columns (:meth:`l0emu.trigger.logic.Trigger.decide`)."""
        thresholds = tuple(float(t) for t in thresholds)
        n_signal = np.asarray(columns[N_SIGNAL])
        true_pt, pt2 = np.asarray(columns["true_pt"]), np.asarray(columns["true_pt2"])
        fired = {two_muon_branch(t): np.asarray(columns[two_muon_branch(t)]) for t in thresholds}
        # count_chunk counts pT < SIGNAL_PT_MIN as background: -1 takes a crossing out of the signal part
        outside = np.float32(-1.0)

        def two(pt, truth="true_pt"):
            return TriggerCounts.from_columns({"true_pt": pt, **fired}, thresholds, two_muon_branch, truth)

        pairs = two(np.where(n_signal >= 2, pt2, outside), "true_pt2")
        one_muon = two(np.where(n_signal == 1, true_pt, outside))
        every = two(true_pt)
        with_candidate = (n_signal == 1) & (np.asarray(columns["l0_n_mu"]) > 0)
        correct = np.asarray(columns["l0_charge"]) == np.asarray(columns["true_charge"])
        charge = TriggerCounts.from_columns({"true_pt": np.where(with_candidate, true_pt, outside), "charge": correct},
                                            (CHARGE_PT_MIN,), _charge_branch)
        cells = np.minimum(n_signal, MAX_COUNT).astype(np.int64) * (MAX_COUNT + 1) + np.minimum(columns["l0_n_mu"], MAX_COUNT)
        matrix = np.bincount(cells, minlength=(MAX_COUNT + 1) ** 2).reshape(MAX_COUNT + 1, MAX_COUNT + 1)
        n_bins = len(SEPARATION_EDGES) - 1
        total = np.zeros((len(thresholds), n_bins), np.int64)
        passed = np.zeros((len(thresholds), n_bins), np.int64)
        separation = np.asarray(columns[SEPARATION])
        for i, t in enumerate(thresholds):
            both = (n_signal >= 2) & (pt2 >= plateau_min_pt(t))
            bins = np.clip(np.searchsorted(SEPARATION_EDGES, separation[both], side="right") - 1, 0, n_bins - 1)
            total[i] = np.bincount(bins, minlength=n_bins)
            passed[i] = np.bincount(bins[fired[two_muon_branch(t)][both]], minlength=n_bins)
        return cls(thresholds, pairs, one_muon, every, charge, matrix.astype(np.int64), total, passed)

    def __add__(self, other: MultiCounts) -> MultiCounts:
        if self.thresholds != other.thresholds:
            msg = f"cannot merge multi counts for thresholds {self.thresholds} and {other.thresholds}"
            raise ValueError(msg)
        return MultiCounts(self.thresholds, self.pairs + other.pairs, self.one_muon + other.one_muon,
                           self.every + other.every, self.charge + other.charge, self.count_matrix + other.count_matrix,
                           self.separation_total + other.separation_total, self.separation_fired + other.separation_fired)


def _charge_branch(_threshold) -> str:
    return "charge"


def two_muon_rows(counts: MultiCounts, assumptions: RateAssumptions) -> list[dict]:
    """One row per threshold for ``l0_2mu_pt<T>``, with the keys of :func:`l0emu.results.rates.rate_table`'s rows and
    the one-muon firing figures; what each figure is: :data:`TWO_MUON_RATE`.
    """
    rows = []
    for t, b in zip(counts.thresholds, counts.pairs.branches):
        curve = counts.pairs.turn_on(b)
        k, n = counts.pairs.plateau_passed[b], counts.pairs.plateau_total[b]
        fired, n_bkg = counts.every.background_fired[b], counts.every.background
        fake = fired / n_bkg if n_bkg else float("nan")
        one_k, one_n = int(counts.one_muon.numerator[b].sum()), int(counts.one_muon.denominator.sum())
        one_plateau_n = counts.one_muon.plateau_total[b]
        one_plateau = counts.one_muon.plateau_passed[b] / one_plateau_n if one_plateau_n else float("nan")
        one_eff = _muon_efficiency(counts.one_muon.turn_on(b).efficiency, assumptions.spectrum_index, one_plateau)
        rate = l0_rate_khz(assumptions, fake, one_eff)
        notes = []
        if n == 0:
            notes.append(f"no crossing with two muons of pT >= {plateau_min_pt(t):g} GeV: no plateau")
        if one_plateau_n == 0:
            notes.append(f"no one-muon crossing with pT >= {plateau_min_pt(t):g} GeV: no rate")
        note = "; ".join(notes)
        row = rate_row(t, b, curve, passed=k, total=n, signal_events=int(counts.pairs.denominator.sum()), fired=fired,
                       background=n_bkg, rate=rate, note=note)
        rows.append({
            **row,
            "one_muon_events": one_n,
            "one_muon_fired": one_k,
            "one_muon_fire_rate": one_k / one_n if one_n else float("nan"),
            "one_muon_fire_ul95": upper_limit(one_k, one_n) if one_n else float("nan"),
        })
    return rows


def multi_tables(counts: MultiCounts) -> dict:
    """The charge-identification, muon-count and separation tables, as the JSON output holds them."""
    charge = counts.charge
    separation = {}
    for i, (t, b) in enumerate(zip(counts.thresholds, counts.pairs.branches)):
        separation[b] = {"pair_min_pt_gev": plateau_min_pt(t),
                         **_binned(counts.separation_fired[i], counts.separation_total[i])}
    matrix = counts.count_matrix
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(matrix.sum(axis=1, keepdims=True) > 0, matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1), np.nan)
    return {
        "two_muon_rate": TWO_MUON_RATE,
        "charge_identification": {
            "selection": f"crossings with exactly one muon of pT >= {SIGNAL_PT_MIN:g} GeV and l0_n_mu >= 1; "
                         "passed: l0_charge == true_charge",
            "pt_edges_gev": PT_BINS.tolist(),
            **_binned(charge.numerator["charge"], charge.denominator),
            "above_pt_min_gev": CHARGE_PT_MIN,
            "above_pt_min": _fraction(charge.numerator["charge"][_CHARGE_FIRST_BIN:].sum(),
                                      charge.denominator[_CHARGE_FIRST_BIN:].sum()),
        },
        "muon_count": {
            "rows": f"true muons with pT >= {SIGNAL_PT_MIN:g} GeV: 0..{MAX_COUNT} (the last: {MAX_COUNT} or more)",
            "columns": f"l0_n_mu: 0..{MAX_COUNT}",
            "events": matrix.tolist(),
            "fraction_of_row": fraction.tolist(),
        },
        "two_muon_separation": {
            "selection": "crossings whose two leading muons both have pT >= plateau_min_pt(T) (1.5 T); "
                         "separation |strip(eta1) - strip(eta2)|",
            "edges_strips": SEPARATION_EDGES.tolist(),
            "by_branch": separation,
        },
    }
