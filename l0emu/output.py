"""Trigger job outputs: the ``l0`` tree and turn-on histograms (ROOT), tables (CSV, JSON), plots."""

from __future__ import annotations

import csv
import json
import math

import numpy as np

from .errors import ConfigError
from .plotting import errorbar_hist, label, new_figure, save_figure, styled
from .rates import PT_BINS, RateAssumptions, TriggerCounts, pt_histogram
from .schema import L0_TREE
from .serialize import jsonable

__all__ = [
    "OUTPUT_FORMATS",
    "l0_branch_types",
    "make_l0_writer",
    "turn_on_histograms",
    "write_histograms",
    "write_csv",
    "write_json",
    "plot_turn_on",
    "format_table",
]

# how the ``l0`` table is stored: a TTree (the default, what every ROOT version reads) or an
# RNTuple (ROOT 6.34+'s columnar format, which the LHC experiments adopt for the HL-LHC)
OUTPUT_FORMATS = ("ttree", "rntuple")

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
    """Branch name -> dtype of the ``l0`` tree (docs/design.md)."""
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


def make_l0_writer(file, branches, output_format: str = "ttree"):
    """The empty ``l0`` TTree or RNTuple in ``file`` (an uproot writable file); both take ``extend``."""
    if output_format not in OUTPUT_FORMATS:
        msg = f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}"
        raise ConfigError(msg)
    make = file.mkrntuple if output_format == "rntuple" else file.mktree
    return make(L0_TREE, l0_branch_types(branches))


def turn_on_histograms(counts: TriggerCounts) -> dict:
    """ROOT name -> :class:`hist.Hist` vs true pT: the shared denominator and one numerator per threshold."""
    import hist

    def filled(values, title):
        h = pt_histogram(title, storage=hist.storage.Double())
        h.view()[:] = values
        return h

    histograms = {"h_true_pt_denominator": filled(counts.denominator, "signal events vs true muon pT")}
    for b in counts.branches:
        histograms[f"h_{b}_numerator"] = filled(counts.numerator[b], f"signal events with {b} vs true muon pT")
    return histograms


def write_histograms(file, counts: TriggerCounts) -> None:
    """Numerator per threshold and the shared denominator, written as TH1D by uproot from hist objects."""
    for name, h in turn_on_histograms(counts).items():
        file[name] = h


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
    # why a cell is n/a (e.g. a threshold beyond the sample's pT range), under the table
    out += [f"  {row['threshold_gev']:g} GeV: {row['note']}" for row in rows if row.get("note")]
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


@styled
def plot_turn_on(path, counts: TriggerCounts, thresholds, title: str) -> None:
    """Efficiency vs true pT per threshold, 68 % Clopper-Pearson error bars (mplhep, no pyplot)."""
    fig, ax = new_figure(figsize=(8, 6))
    for t, b in zip(thresholds, counts.branches):
        curve = counts.turn_on(b)
        errorbar_hist(ax, curve.efficiency, curve.edges, curve.low, curve.high, label=f"L0 $p_T$ ≥ {t:g} GeV")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("true muon $p_T$ [GeV]")
    ax.set_ylabel("L0 efficiency")
    populated = np.flatnonzero(counts.denominator)
    upper = PT_BINS[populated[-1] + 1] if len(populated) else PT_BINS[-1]
    ax.set_xlim(PT_BINS[0], min(PT_BINS[-1], upper + 2.0))  # the sample's pT range, not the binning's
    ax.set_ylim(0.0, 1.45)  # room for the label and the legend above the plateau
    label(ax)
    ax.legend(loc="upper left", ncols=2, fontsize="x-small", title=title, title_fontsize="x-small")
    save_figure(fig, path)
