"""Every table and plot of a finished trigger run, made in one place from its counts.

:class:`RunReport` turns a run's mergeable counts (:class:`~l0emu.results.rates.TriggerCounts`,
and :class:`~l0emu.results.multi_rates.MultiCounts` for a multi-candidate network) into the
rate/efficiency rows, the multi tables, the terminal summary, the CSV and JSON tables and the
plots. The event loop, the CLI and ``l0emu merge``-style consumers all go through it, so a
figure is computed once and printed, written and plotted from the same numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np

from l0emu.results.multi_rates import MultiCounts, multi_tables, two_muon_rows
from l0emu.results.plotting import errorbar_hist, label, new_figure, save_figure, styled
from l0emu.results.rates import PT_BINS, RateAssumptions, TriggerCounts, rate_table
from l0emu.util.serialize import jsonable

__all__ = [
    "RunReport",
    "format_table",
    "format_multi_tables",
    "write_csv",
    "write_json",
    "plot_turn_on",
    "plot_charge_identification",
    "plot_muon_count",
    "plot_two_muon_separation",
]

_TABLE_COLUMNS = (
    ("threshold_gev", "threshold [GeV]", "{:g}"),
    ("plateau_efficiency", "plateau eff", "{:.4f}"),
    ("plateau_from_gev", "plateau from [GeV]", "{:g}"),
    ("half_efficiency_gev", "50% point [GeV]", "{:.2f}"),
    ("fake_rate", "fake rate", "{:.2e}"),
    ("fake_rate_ul95", "fake 95% UL", "{:.2e}"),
    ("l0_rate_khz", "L0 rate [kHz]", "{:.2f}"),
)




@dataclasses.dataclass
class RunReport:
    """The figures of one run: rate rows (single-muon thresholds, then a multi spec's two-muon
    rows) and, for a multi spec, its charge, count and separation tables."""

    counts: TriggerCounts
    thresholds: tuple
    assumptions: RateAssumptions
    multi: MultiCounts | None = None
    mixed: str | None = None  # which simulation settings the inputs mix (l0emu.trigger.samples)
    rows: list = dataclasses.field(init=False)
    tables: dict | None = dataclasses.field(init=False)

    def __post_init__(self):
        self.rows = rate_table(self.counts, self.thresholds, self.assumptions)
        self.tables = None
        if self.multi is not None:
            self.rows += two_muon_rows(self.multi, self.assumptions)
            self.tables = multi_tables(self.multi)

    def text(self) -> str:
        """The terminal summary: the rate table, the multi tables, the rate assumptions."""
        parts = [format_table(self.rows)]
        if self.mixed:
            parts.append(self.mixed)
        if self.tables is not None:
            parts.append(format_multi_tables(self.tables))
        parts.append(self.assumptions.describe())
        return "\n".join(parts)

    def write(self, paths: dict, name: str, metadata: dict) -> None:
        """Write the CSV and JSON tables and the plots to ``paths`` (keys of
        :func:`l0emu.trigger.job.side_outputs`); ``metadata`` goes into the JSON as it is."""
        write_csv(paths["csv"], self.rows, self.assumptions, self.tables, self.mixed)
        if self.tables is not None:
            metadata = {**metadata, "multi": self.tables}
        write_json(paths["json"], self.rows, self.assumptions, metadata)
        plot_turn_on(paths["turn_on_png"], self.counts, self.thresholds, f"{name}: L0 turn-on")
        if self.multi is not None:
            plot_turn_on(paths["turn_on_2mu_png"], self.multi.pairs, self.multi.thresholds, f"{name}: two-muon turn-on",
                         xlabel="second muon true $p_T$ [GeV]", item=r"L0 2$\mu$, $p_T$")
            plot_charge_identification(paths["charge_png"], self.tables, f"{name}: one muon, ≥ 1 L0 candidate")
            plot_muon_count(paths["muon_count_png"], self.tables, f"{name}: true vs L0 muon count")
            plot_two_muon_separation(paths["separation_png"], self.tables, f"{name}: two-muon efficiency")


def _cell(value, fmt):
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return fmt.format(value)


def format_table(rows) -> str:
    """The rate/efficiency table as fixed-width text for the terminal; with a multi spec's
    two-muon rows, an item column first (``pt10``, ``2mu_pt10``)."""
    columns = _TABLE_COLUMNS
    if any(row.get("branch", "").startswith("l0_2mu_") for row in rows):
        columns = (("branch", "item", "{}"), *_TABLE_COLUMNS)
    header = [title for _, title, _ in columns]
    lines = [[_cell(row[key], fmt) for key, _, fmt in columns] for row in rows]
    if columns is not _TABLE_COLUMNS:
        lines = [[line[0].removeprefix("l0_"), *line[1:]] for line in lines]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    # why a cell is n/a (e.g. a threshold beyond the sample's pT range), under the table
    def item(row):
        return row["branch"].removeprefix("l0_") if columns is not _TABLE_COLUMNS else f"{row['threshold_gev']:g} GeV"

    out += [f"  {item(row)}: {row['note']}" for row in rows if row.get("note")]
    return "\n".join(out)


def format_multi_tables(tables: dict) -> str:
    """A multi spec's charge-identification figure and muon-count matrix, for the terminal."""
    charge = tables["charge_identification"]
    above = charge["above_pt_min"]
    lines = [tables["two_muon_rate"],
             f"charge identification ({charge['selection']}), true pT >= {charge['above_pt_min_gev']:g} GeV: "
             f"{above['k']:,} / {above['n']:,} = {_cell(above['value'], '{:.4f}')}"]
    count = tables["muon_count"]
    lines.append(f"muon count, rows {count['rows']}; columns {count['columns']}:")
    lines += ["  " + "  ".join(f"{n:>9,}" for n in row) for row in count["events"]]
    return "\n".join(lines)


def write_csv(path, rows, assumptions: RateAssumptions, tables: dict | None = None, mixed: str | None = None) -> None:
    """The rate table; a multi spec's two-muon rows add columns (blank in the single-muon rows),
    and its ``tables`` (:func:`l0emu.results.multi_rates.multi_tables`) follow as sections, each after a
    blank line and a ``#`` line naming it. ``mixed``: the settings a mixed sample mixes, a ``#`` line."""
    with open(path, "w", newline="") as f:
        f.write(f"# {assumptions.describe()}\n")
        if mixed:
            f.write(f"# {mixed}\n")
        if tables is not None:
            f.write(f"# {tables['two_muon_rate']}\n")
        fieldnames = list(dict.fromkeys(key for row in rows for key in row)) or ["threshold_gev"]
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        if tables is not None:
            _write_multi_sections(f, tables)


def _write_multi_sections(f, tables: dict) -> None:
    charge, count, separation = (tables[k] for k in ("charge_identification", "muon_count", "two_muon_separation"))
    sections = [
        (f"charge identification vs true pT: {charge['selection']}",
         ["pt_low_gev", "pt_high_gev", "events", "passed", "efficiency", "low68", "high68"],
         [[lo, hi, n, k, v, a, b] for lo, hi, n, k, v, a, b in zip(
             charge["pt_edges_gev"][:-1], charge["pt_edges_gev"][1:], charge["n"], charge["k"], charge["value"],
             charge["low"], charge["high"]) if n]),
        (f"muon count: rows {count['rows']}; columns {count['columns']}",
         ["true_muons", *(f"l0_n_mu_{j}" for j in range(len(count["events"])))],
         [[i, *row] for i, row in enumerate(count["events"])]),
        (f"two-muon efficiency vs separation: {separation['selection']}",
         ["branch", "pair_min_pt_gev", "separation_low", "separation_high", "events", "fired", "efficiency", "low68", "high68"],
         [[b, t["pair_min_pt_gev"], lo, hi, n, k, v, a, c]
          for b, t in separation["by_branch"].items()
          for lo, hi, n, k, v, a, c in zip(separation["edges_strips"][:-1], separation["edges_strips"][1:], t["n"], t["k"],
                                           t["value"], t["low"], t["high"])]),
    ]
    writer = csv.writer(f)
    for title, header, lines in sections:
        f.write(f"\n# {title}\n")
        writer.writerow(header)
        writer.writerows(lines)


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
def plot_turn_on(path, counts: TriggerCounts, thresholds, title: str, *, xlabel: str = "true muon $p_T$ [GeV]",
                 item: str = "L0 $p_T$") -> None:
    """Efficiency vs true pT per threshold, 68 % Clopper-Pearson error bars (mplhep, no pyplot)."""
    fig, ax = new_figure(figsize=(8, 6))
    for t, b in zip(thresholds, counts.branches):
        curve = counts.turn_on(b)
        errorbar_hist(ax, curve.efficiency, curve.edges, curve.low, curve.high, label=f"{item} ≥ {t:g} GeV")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("L0 efficiency")
    populated = np.flatnonzero(counts.denominator)
    upper = PT_BINS[populated[-1] + 1] if len(populated) else PT_BINS[-1]
    ax.set_xlim(PT_BINS[0], min(PT_BINS[-1], upper + 2.0))  # the sample's pT range, not the binning's
    ax.set_ylim(0.0, 1.45)  # room for the label and the legend above the plateau
    label(ax)
    ax.legend(loc="upper left", ncols=2, fontsize="x-small", title=title, title_fontsize="x-small")
    save_figure(fig, path)


@styled
def plot_charge_identification(path, tables: dict, title: str) -> None:
    """Charge-identification efficiency vs true pT (single-muon crossings with a counted candidate)."""
    charge = tables["charge_identification"]
    fig, ax = new_figure(figsize=(8, 6))
    errorbar_hist(ax, charge["value"], charge["pt_edges_gev"], charge["low"], charge["high"],
                  label="$q_{L0} = q_{true}$")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    populated = np.flatnonzero(charge["n"])
    upper = charge["pt_edges_gev"][populated[-1] + 1] if len(populated) else charge["pt_edges_gev"][-1]
    ax.set_xlim(charge["pt_edges_gev"][0], upper + 2.0)
    ax.set_ylim(0.0, 1.45)  # room for the label and the legend above the plateau
    ax.set_xlabel("true muon $p_T$ [GeV]")
    ax.set_ylabel("charge identification efficiency")
    label(ax)
    ax.legend(loc="upper left", fontsize="x-small", title=title, title_fontsize="x-small")
    save_figure(fig, path)


@styled
def plot_muon_count(path, tables: dict, title: str) -> None:
    """The muon-count matrix: fraction of each true count's crossings per ``l0_n_mu``, with the counts."""
    count = tables["muon_count"]
    events = np.asarray(count["events"])
    fraction = np.asarray(count["fraction_of_row"], dtype=np.float64)
    fig, ax = new_figure(figsize=(8, 6.5))
    image = ax.imshow(np.nan_to_num(fraction), origin="lower", cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the row")
    last = len(events) - 1
    ticks = [str(i) for i in range(last)] + [f"≥{last}"]
    ax.set_xticks(range(len(events)), ticks)
    ax.set_yticks(range(len(events)), ticks)
    for (i, j), n in np.ndenumerate(events):
        if events[i].sum():
            ax.text(j, i, f"{fraction[i, j]:.3f}\n({n:,})", ha="center", va="center", fontsize="x-small",
                    color="white" if fraction[i, j] > 0.6 else "black")
    ax.set_xlabel("L0 muon candidates ($l0\\_n\\_mu$)")
    ax.set_ylabel("true muons ($p_T$ ≥ 3 GeV)")
    ax.set_title(title, fontsize="x-small", loc="left")
    save_figure(fig, path)


@styled
def plot_two_muon_separation(path, tables: dict, title: str) -> None:
    """Two-muon efficiency vs the two leading muons' separation in strips, per two-muon threshold."""
    separation = tables["two_muon_separation"]
    fig, ax = new_figure(figsize=(8, 6))
    for b, t in separation["by_branch"].items():
        if sum(t["n"]):
            errorbar_hist(ax, t["value"], separation["edges_strips"], t["low"], t["high"],
                          label=f"{b}, both muons ≥ {t['pair_min_pt_gev']:g} GeV")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axvline(32.0, color="grey", lw=0.8, ls=":")  # one window
    ax.set_xlim(separation["edges_strips"][0], separation["edges_strips"][-1])
    ax.set_ylim(0.0, 1.35)
    ax.set_xlabel("separation of the two leading muons [strips]")
    ax.set_ylabel("two-muon efficiency")
    label(ax)
    ax.legend(loc="upper left", fontsize="x-small", title=title, title_fontsize="x-small")
    save_figure(fig, path)
