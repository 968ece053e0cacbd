"""Physics metrics of a pT trigger from predictions of any origin (Keras, spec emulator, firmware).

Inputs are per-event arrays: the leading muon's true pT (GeV, 0 without muons) and the
predicted pT (GeV). An event is signal when its true pT is at least
``l0emu.schema.SIGNAL_PT_MIN`` (3 GeV), background otherwise (soft muons included).

One definition per metric, used by the trigger job's rate table (:mod:`l0emu.results.rates`), the
physics grid and training records alike:

- plateau of threshold T: signal events with true pT >= :func:`plateau_min_pt` (T) =
  ``PLATEAU_FACTOR`` x T (1.5 T; 15 GeV for the default 10 GeV threshold), counted event by
  event, so the region starts exactly at that edge whatever the histogram binning;
- resolution: (pT_pred - pT_true) / pT_true for true pT in
  [``RESOLUTION_EDGES[0]``, ``RESOLUTION_EDGES[-1]``) = [7, 13) GeV, around the default threshold.

Uncertainties are Clopper-Pearson (exact binomial) from :mod:`l0emu.results.stats`: central 68.27 %
intervals for efficiencies, a one-sided 95 % upper limit for the fake rate (exact, which is
close to the 3/N rule when no background event fires).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from l0emu.schema import SIGNAL_PT_MIN
from l0emu.results.stats import clopper_pearson, upper_limit

__all__ = [
    "DEFAULT_THRESHOLD",
    "TURN_ON_EDGES",
    "PLATEAU_FACTOR",
    "PLATEAU_MIN_PT",
    "plateau_min_pt",
    "resolution_range_text",
    "RESOLUTION_EDGES",
    "TurnOn",
    "turn_on_curve",
    "plateau_efficiency",
    "half_efficiency_point",
    "pt_resolution",
    "fake_rate",
    "physics_summary",
]

DEFAULT_THRESHOLD = 10.0  # GeV
TURN_ON_EDGES = np.arange(3.0, 21.0, 1.0)  # 1 GeV bins over [3, 20] GeV
# the plateau of threshold T starts at 1.5 T: far enough above T that a trigger with the
# toy's ~10-20 % pT resolution is fully efficient there (the seed study's definition)
PLATEAU_FACTOR = 1.5
RESOLUTION_EDGES = np.arange(7.0, 14.0, 1.0)  # 1 GeV bins over [7, 13) GeV, around the default threshold


def plateau_min_pt(threshold: float) -> float:
    """Lowest true pT (GeV) of the plateau of ``threshold``: ``PLATEAU_FACTOR * threshold``."""
    threshold = float(threshold)
    if not (np.isfinite(threshold) and threshold > 0):
        msg = f"a pT threshold must be a positive number of GeV, got {threshold!r}"
        raise ValueError(msg)
    return PLATEAU_FACTOR * threshold


PLATEAU_MIN_PT = plateau_min_pt(DEFAULT_THRESHOLD)  # 15 GeV: the plateau of the default threshold


def resolution_range_text(edges=RESOLUTION_EDGES) -> str:
    """The true-pT range of :func:`pt_resolution`, as written in tables: ``[7, 13) GeV``."""
    return f"[{float(edges[0]):g}, {float(edges[-1]):g}) GeV"


@dataclasses.dataclass
class TurnOn:
    """Efficiency per true-pT bin: ``passed / total`` with a Clopper-Pearson interval."""

    edges: np.ndarray
    passed: np.ndarray
    total: np.ndarray
    efficiency: np.ndarray  # nan in empty bins
    low: np.ndarray
    high: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def _arrays(true_pt, pred_pt):
    true_pt = np.asarray(true_pt, dtype=np.float64)
    pred_pt = np.asarray(pred_pt, dtype=np.float64)
    if true_pt.shape != pred_pt.shape or true_pt.ndim != 1:
        msg = f"true and predicted pT must be 1-d arrays of one length, got {true_pt.shape} and {pred_pt.shape}"
        raise ValueError(msg)
    return true_pt, pred_pt


def _ratio(passed, total):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, passed / np.maximum(total, 1), np.nan)


def turn_on_curve(true_pt, pred_pt, threshold: float = DEFAULT_THRESHOLD, edges=TURN_ON_EDGES) -> TurnOn:
    """Fraction of events per true-pT bin whose predicted pT is at least ``threshold``."""
    true_pt, pred_pt = _arrays(true_pt, pred_pt)
    edges = np.asarray(edges, dtype=np.float64)
    total = np.histogram(true_pt, edges)[0]
    passed = np.histogram(true_pt[pred_pt >= threshold], edges)[0]
    low, high = clopper_pearson(passed, total)
    return TurnOn(edges, passed, total, _ratio(passed, total), low, high)


def plateau_efficiency(true_pt, pred_pt, threshold: float = DEFAULT_THRESHOLD, plateau_min: float | None = None) -> dict:
    """Efficiency for true pT >= ``plateau_min`` (default :func:`plateau_min_pt` of ``threshold``).

    Returns ``{efficiency, low, high, passed, total, plateau_min_gev}``; efficiency nan when no
    event reaches the plateau (a sample whose pT range ends below it).
    """
    true_pt, pred_pt = _arrays(true_pt, pred_pt)
    plateau_min = plateau_min_pt(threshold) if plateau_min is None else float(plateau_min)
    on_plateau = true_pt >= plateau_min
    total = int(on_plateau.sum())
    passed = int((pred_pt[on_plateau] >= threshold).sum())
    low, high = clopper_pearson(passed, total)
    efficiency = float(_ratio(np.float64(passed), np.float64(total)))
    return {"efficiency": efficiency, "low": float(low[0]), "high": float(high[0]), "passed": passed, "total": total, "plateau_min_gev": plateau_min}


def half_efficiency_point(curve: TurnOn) -> float:
    """True pT where the turn-on first reaches 50 %, linearly interpolated between bin centres.

    nan when the curve never reaches 50 %; the first centre when it starts at or above 50 %.
    """
    keep = curve.total > 0
    x, eff = curve.centers[keep], curve.efficiency[keep]
    above = np.nonzero(eff >= 0.5)[0]
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(x[0])
    x0, x1, e0, e1 = x[i - 1], x[i], eff[i - 1], eff[i]
    return float(x0 + (0.5 - e0) * (x1 - x0) / (e1 - e0))


def pt_resolution(true_pt, pred_pt, edges=RESOLUTION_EDGES) -> dict:
    """Relative resolution ``(pred - true) / true`` per true-pT bin.

    Returns ``edges``, ``count``, ``bias`` (mean) and ``rms`` (standard deviation) per bin (nan
    when empty), and ``overall_bias`` / ``overall_rms`` over all events inside the edges.
    """
    true_pt, pred_pt = _arrays(true_pt, pred_pt)
    edges = np.asarray(edges, dtype=np.float64)
    inside = (true_pt >= edges[0]) & (true_pt < edges[-1])
    relative = (pred_pt[inside] - true_pt[inside]) / true_pt[inside]
    which = np.digitize(true_pt[inside], edges) - 1
    count = np.bincount(which, minlength=len(edges) - 1)
    bias = np.full(len(edges) - 1, np.nan)
    rms = np.full(len(edges) - 1, np.nan)
    for b in np.nonzero(count)[0]:
        values = relative[which == b]
        bias[b], rms[b] = values.mean(), values.std()
    return {
        "edges": edges,
        "count": count,
        "bias": bias,
        "rms": rms,
        "overall_bias": float(relative.mean()) if len(relative) else float("nan"),
        "overall_rms": float(relative.std()) if len(relative) else float("nan"),
    }


def fake_rate(true_pt, pred_pt, threshold: float = DEFAULT_THRESHOLD, cl: float = 0.95) -> dict:
    """Fraction of background events (true pT < 3 GeV) with predicted pT >= ``threshold``.

    ``upper`` is the one-sided Clopper-Pearson limit at ``cl`` (~3/N with no fake).
    """
    true_pt, pred_pt = _arrays(true_pt, pred_pt)
    background = true_pt < SIGNAL_PT_MIN
    total = int(background.sum())
    fired = int((pred_pt[background] >= threshold).sum())
    if total == 0:
        rate = upper = float("nan")
    else:
        rate = fired / total
        upper = upper_limit(fired, total, cl)
    return {"rate": rate, "upper": float(upper), "cl": cl, "fired": fired, "total": total}


def physics_summary(true_pt, pred_pt, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Every metric above as plain JSON-ready numbers and lists."""
    curve = turn_on_curve(true_pt, pred_pt, threshold)
    resolution = pt_resolution(true_pt, pred_pt)
    return {
        "threshold_gev": threshold,
        "interval": "Clopper-Pearson 68.27% (efficiencies), one-sided 95% upper limit (fake rate)",
        "resolution_range": resolution_range_text(),
        "turn_on": {
            "edges": curve.edges.tolist(),
            "passed": curve.passed.tolist(),
            "total": curve.total.tolist(),
            "efficiency": [None if np.isnan(e) else float(e) for e in curve.efficiency],
        },
        "plateau": plateau_efficiency(true_pt, pred_pt, threshold),
        "half_efficiency_pt": half_efficiency_point(curve),
        "resolution": {
            "edges": resolution["edges"].tolist(),
            "count": resolution["count"].tolist(),
            "bias": [None if np.isnan(v) else float(v) for v in resolution["bias"]],
            "rms": [None if np.isnan(v) else float(v) for v in resolution["rms"]],
            "overall_bias": resolution["overall_bias"],
            "overall_rms": resolution["overall_rms"],
        },
        "fake_rate": fake_rate(true_pt, pred_pt, threshold),
    }
