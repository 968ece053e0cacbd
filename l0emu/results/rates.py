"""Turn-on histograms, fake rates and L0 rates from trigger decisions.

Counts are integers accumulated chunk by chunk and merged by addition, so a run split
over files, entry ranges or dask workers gives exactly the tables of a single process.

The plateau of threshold T is :func:`l0emu.results.metrics.plateau_min_pt` (1.5 T), counted event by
event (not from the histogram bins, whose edges need not fall on 1.5 T). A threshold whose
plateau holds no muon of the sample (a sample that stops below 1.5 T) gets no plateau and
no L0 rate: the row says so in ``note`` instead of extrapolating the rate to zero.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from l0emu.errors import ConfigError
from l0emu.schema import SIGNAL_PT_MIN, threshold_branch
from l0emu.results.metrics import TurnOn, half_efficiency_point, plateau_min_pt
from l0emu.results.stats import clopper_pearson, upper_limit

__all__ = ["PT_BINS", "RateAssumptions", "TriggerCounts", "l0_rate_khz", "pt_histogram", "rate_row", "rate_table"]

# true-pT binning (GeV) of the turn-on histograms written by the trigger job: 1 GeV bins up
# to 60 GeV, past the 50 GeV end of the falling spectrum used for rates (simulation.settings)
PT_BINS = np.arange(0.0, 61.0, 1.0)


def pt_histogram(name: str = "", storage=None):
    """An empty histogram on the turn-on binning: true muon pT in ``PT_BINS`` (GeV).

    No flow bins: the trigger job folds overflow into the last bin before filling, so
    every signal event is counted in the denominator. Integer storage by default (exact
    counts); ROOT output uses Double, which uproot writes as a TH1D. Returns a
    :class:`hist.Hist`; hist is imported here, not with the module, to keep ``--help`` fast.
    """
    import hist

    axis = hist.axis.Variable(PT_BINS, name="true_pt", label="true muon $p_T$ [GeV]", underflow=False, overflow=False)
    return hist.Hist(axis, storage=storage if storage is not None else hist.storage.Int64(), name=name)


@dataclasses.dataclass(frozen=True)
class RateAssumptions:
    """What turns efficiencies into an L0 rate; written beside every table."""

    bunch_crossing_mhz: float = 40.0
    # fraction of crossings in which this sector holds a muon above SIGNAL_PT_MIN
    muon_fraction: float = 1e-3
    # muon spectrum above SIGNAL_PT_MIN used for the rate: dN/dpT ~ pT^-index
    spectrum_index: float = 3.0

    def __post_init__(self):
        if not self.bunch_crossing_mhz > 0:
            msg = f"bunch_crossing_mhz must be > 0, got {self.bunch_crossing_mhz!r}"
            raise ConfigError(msg)
        if not 0.0 <= self.muon_fraction <= 1.0:
            msg = f"muon_fraction must be in [0, 1], got {self.muon_fraction!r}"
            raise ConfigError(msg)
        if not self.spectrum_index > 1.0:
            msg = f"spectrum_index must be > 1 (a normalisable spectrum), got {self.spectrum_index!r}"
            raise ConfigError(msg)

    def describe(self) -> str:
        return (
            f"L0 rate = {self.bunch_crossing_mhz:g} MHz x [(1 - f_mu) x fake rate + f_mu x "
            f"efficiency averaged over dN/dpT ~ pT^-{self.spectrum_index:g} above {SIGNAL_PT_MIN:g} GeV], "
            f"f_mu = {self.muon_fraction:g} (crossings of this sector with a muon above "
            f"{SIGNAL_PT_MIN:g} GeV); true-pT bins without events, and the spectrum beyond "
            f"{PT_BINS[-1]:g} GeV, take the plateau efficiency (true pT >= 1.5 x threshold); a threshold "
            "whose plateau holds no muon of the sample has no rate (n/a), never an extrapolated one."
        )


@dataclasses.dataclass
class TriggerCounts:
    """Integer counts per threshold branch; add two to merge."""

    branches: tuple
    numerator: dict
    denominator: np.ndarray
    background: int = 0
    background_fired: dict = dataclasses.field(default_factory=dict)
    # per branch: signal events with true pT >= plateau_min_pt(threshold), and those that fired
    plateau_total: dict = dataclasses.field(default_factory=dict)
    plateau_passed: dict = dataclasses.field(default_factory=dict)
    max_signal_pt: float = 0.0  # highest true pT of a signal event (GeV), 0 without any

    @classmethod
    def empty(cls, thresholds, branch=threshold_branch) -> TriggerCounts:
        """Zero counts; ``branch`` names each threshold's decision (two-muon items: ``two_muon_branch``)."""
        branches = tuple(branch(t) for t in thresholds)
        zeros = np.zeros(len(PT_BINS) - 1, np.int64)
        return cls(
            branches=branches,
            numerator={b: zeros.copy() for b in branches},
            denominator=zeros.copy(),
            background_fired={b: 0 for b in branches},
            plateau_total={b: 0 for b in branches},
            plateau_passed={b: 0 for b in branches},
        )

    @classmethod
    def from_columns(cls, columns: dict, thresholds, branch=threshold_branch, truth: str = "true_pt") -> TriggerCounts:
        """Counts of one chunk; ``columns["true_pt"]`` holds the truth pT, read from the ``truth`` branch."""
        from l0emu.results.counting import count_chunk  # numba: not imported for --help

        counts = cls.empty(thresholds, branch)
        true_pt = np.asarray(columns["true_pt"])
        fired = np.zeros((len(counts.branches), len(true_pt)), bool)
        for i, b in enumerate(counts.branches):
            fired[i] = columns[b]
        plateau = [plateau_min_pt(t) for t in thresholds]  # counted among signal events only
        numerator, denominator, background, background_fired, plateau_total, plateau_passed, max_pt = count_chunk(
            true_pt, fired, PT_BINS, SIGNAL_PT_MIN, plateau, truth
        )
        counts.denominator += denominator
        counts.background = background
        counts.max_signal_pt = max_pt
        for i, b in enumerate(counts.branches):
            counts.numerator[b] += numerator[i]
            counts.background_fired[b] = int(background_fired[i])
            counts.plateau_total[b] = int(plateau_total[i])
            counts.plateau_passed[b] = int(plateau_passed[i])
        return counts

    def __add__(self, other: TriggerCounts) -> TriggerCounts:
        if self.branches != other.branches:
            msg = f"cannot merge counts for thresholds {self.branches} and {other.branches}"
            raise ValueError(msg)
        return TriggerCounts(
            branches=self.branches,
            numerator={b: self.numerator[b] + other.numerator[b] for b in self.branches},
            denominator=self.denominator + other.denominator,
            background=self.background + other.background,
            background_fired={b: self.background_fired[b] + other.background_fired[b] for b in self.branches},
            plateau_total={b: self.plateau_total[b] + other.plateau_total[b] for b in self.branches},
            plateau_passed={b: self.plateau_passed[b] + other.plateau_passed[b] for b in self.branches},
            max_signal_pt=max(self.max_signal_pt, other.max_signal_pt),
        )

    def turn_on(self, branch) -> TurnOn:
        """Efficiency vs true pT for one threshold, with 68 % Clopper-Pearson intervals."""
        k, n = self.numerator[branch], self.denominator
        low, high = clopper_pearson(k, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            eff = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        return TurnOn(PT_BINS, k, n, eff, low, high)


def _spectrum_weights(index):
    lo = np.maximum(PT_BINS[:-1], SIGNAL_PT_MIN)
    hi = np.maximum(PT_BINS[1:], SIGNAL_PT_MIN)
    integral = lambda a: a ** (1.0 - index) / (index - 1.0)  # noqa: E731  int_a^inf pT^-index
    inside = integral(lo) - integral(hi)
    tail = integral(PT_BINS[-1])
    return inside / integral(SIGNAL_PT_MIN), tail / integral(SIGNAL_PT_MIN)


def _muon_efficiency(eff, index, plateau: float):
    """Efficiency averaged over the rate spectrum; empty bins and the tail take ``plateau``."""
    if np.isnan(plateau):
        return float("nan")
    fill = float(plateau)
    filled = np.where(np.isnan(eff), fill, eff)
    weights, tail = _spectrum_weights(index)
    return float(np.sum(weights * filled) + tail * fill)


def l0_rate_khz(assumptions: RateAssumptions, fake: float, muon_efficiency: float) -> float:
    """40 MHz x [(1 - f_mu) x fake rate + f_mu x efficiency over the rate spectrum], in kHz."""
    f_mu = assumptions.muon_fraction
    return assumptions.bunch_crossing_mhz * 1e3 * ((1.0 - f_mu) * fake + f_mu * muon_efficiency)


def rate_row(threshold, branch, curve, *, passed, total, signal_events, fired, background, rate, note) -> dict:
    """A rate-table row: the keys every table of the trigger job shares (one place for their names)."""
    return {
        "threshold_gev": float(threshold),
        "branch": branch,
        "plateau_from_gev": plateau_min_pt(threshold),
        "plateau_efficiency": passed / total if total else float("nan"),
        "plateau_events": total,
        "half_efficiency_gev": half_efficiency_point(curve),
        "signal_events": signal_events,
        "background_events": background,
        "background_fired": fired,
        "fake_rate": fired / background if background else float("nan"),
        "fake_rate_ul95": upper_limit(fired, background) if background else float("nan"),
        "l0_rate_khz": rate,
        "note": note,
    }


def rate_table(counts: TriggerCounts, thresholds, assumptions: RateAssumptions) -> list[dict]:
    """One row per threshold: plateau, 50 % point, fake rate (+95 % UL), L0 rate in kHz."""
    rows = []
    for t, b in zip(thresholds, counts.branches):
        curve = counts.turn_on(b)
        k, n = counts.plateau_passed[b], counts.plateau_total[b]
        fired, n_bkg = counts.background_fired[b], counts.background
        fake = fired / n_bkg if n_bkg else float("nan")
        muon_eff = _muon_efficiency(curve.efficiency, assumptions.spectrum_index, k / n if n else float("nan"))
        note = ""
        if n and k == 0 and fired == 0:
            note = f"no event fired: the network's pT output never reached {float(t):g} GeV on this sample"
        if n == 0:
            note = (
                f"threshold outside the sample's pT range: no muon with true pT >= {plateau_min_pt(t):g} GeV "
                f"(highest {counts.max_signal_pt:.1f} GeV); no plateau, no rate"
            )
        rows.append(rate_row(t, b, curve, passed=k, total=n, signal_events=int(counts.denominator.sum()), fired=fired,
                             background=n_bkg, rate=l0_rate_khz(assumptions, fake, muon_eff), note=note))
    return rows
