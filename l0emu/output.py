"""Trigger job outputs: the ``l0`` tree and turn-on histograms (ROOT), tables (CSV, JSON), plots."""

from __future__ import annotations

import csv
import json
import math

import numpy as np

from .rates import PT_BINS, RateAssumptions, TriggerCounts
from .serialize import jsonable

__all__ = ["l0_branch_types", "write_histograms", "write_csv", "write_json", "plot_turn_on", "format_table"]

_TABLE_COLUMNS = (
    ("threshold_gev", "threshold [GeV]", "{:g}"),
    ("plateau_efficiency", "plateau eff", "{:.4f}"),
    ("plateau_from_gev", "plateau from [GeV]", "{:g}"),
    ("half_efficiency_gev", "50% point [GeV]", "{:.2f}"),
    ("fake_rate", "fake rate", "{:.2e}"),
    ("fake_rate_ul95", "fake 95% UL", "{:.2e}"),
    ("l0_rate_khz", "L0 rate [kHz]", "{:.2f}"),
)


def l0_branch_types(branches) -> dict:
    """Branch name -> dtype of the ``l0`` tree (DESIGN.md)."""
    types = {
        "event_id": np.uint64,
        "pt": np.float32,
        "eta": np.float32,
        "pt_raw": np.int64,
        "eta_raw": np.int64,
    }
    types.update({b: np.bool_ for b in branches})
    types.update({"n_muons": np.uint8, "true_pt": np.float32, "true_eta": np.float32})
    return types


def write_histograms(file, counts: TriggerCounts) -> None:
    """Numerator per threshold and the shared denominator, as TH1D vs true pT."""
    file["h_true_pt_denominator"] = (counts.denominator.astype(np.float64), PT_BINS)
    for b in counts.branches:
        file[f"h_{b}_numerator"] = (counts.numerator[b].astype(np.float64), PT_BINS)


def _cell(value, fmt):
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return fmt.format(value)


def format_table(rows) -> str:
    """The rate/efficiency table as fixed-width text for the terminal."""
    header = [title for _, title, _ in _TABLE_COLUMNS]
    lines = [[_cell(row[key], fmt) for key, _, fmt in _TABLE_COLUMNS] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def write_csv(path, rows, assumptions: RateAssumptions) -> None:
    with open(path, "w", newline="") as f:
        f.write(f"# {assumptions.describe()}\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["threshold_gev"])
        writer.writeheader()
        writer.writerows(rows)


def write_json(path, rows, assumptions: RateAssumptions, metadata: dict) -> None:
    document = {
        "assumptions": {**vars(assumptions), "description": assumptions.describe()},
        **metadata,
        "rows": rows,
    }
    with open(path, "w") as f:
        json.dump(jsonable(document), f, indent=1)
        f.write("\n")


def plot_turn_on(path, counts: TriggerCounts, thresholds, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t, b in zip(thresholds, counts.branches):
        curve = counts.turn_on(b)
        eff, ok = curve.efficiency, curve.total > 0
        ax.errorbar(
            curve.centers[ok], eff[ok], yerr=[eff[ok] - curve.low[ok], curve.high[ok] - eff[ok]], xerr=0.5,
            fmt="o", ms=3, label=f"pT ≥ {t:g} GeV",
        )
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("true muon pT [GeV]")
    ax.set_ylabel("L0 efficiency")
    ax.set_ylim(-0.02, 1.08)
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


