"""Figures of the evaluation grid (PNG, mplhep style, no pyplot), drawn from its result rows.

Rows are the per-(network, scenario) dicts of :func:`validation.grid.evaluate_grid`: ``model``
(``teacher 9x384``, ``teacher 9x16``, ``student``), ``bits`` (None for float), ``kd``, ``seed``,
and the :func:`l0emu.results.metrics.physics_summary` entries. Versus-bits figures show, per scenario,
the median over seeds with min/max bars, without and with KD, and the teachers as lines. Turn-on curves carry 68 % Clopper-Pearson error bars computed from the
rows' passed/total counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from l0emu.results.metrics import resolution_range_text
from l0emu.results.plotting import label, new_figure, save_figure, styled
from l0emu.results.stats import clopper_pearson

__all__ = ["FAKE_RATE_LIMIT", "plot_turn_on", "plot_resolution", "plot_versus_bits", "make_grid_plots"]

FAKE_RATE_LIMIT = 2e-3  # the experiment's requirement on the fake rate (seed 000)
KD_STYLE = {False: ("no KD", "tab:blue", "o"), True: ("KD", "tab:red", "s")}
TEACHER_STYLE = {"teacher 9x384": ("black", "-"), "teacher 9x16": ("dimgray", "--")}

# metric name -> (value of a row, axis label, file name)
METRICS = {
    "plateau": (lambda r: r["plateau"]["efficiency"], "plateau efficiency (pT >= 15 GeV)", "plateau_vs_bits.png"),
    "resolution": (lambda r: r["resolution"]["overall_rms"], f"pT resolution RMS, true pT in {resolution_range_text()}", "resolution_vs_bits.png"),
    "fake_ul": (lambda r: r["fake_rate"]["upper"], "fake rate, 95 % upper limit", "fake_rate_vs_bits.png"),
}


def _value(value) -> float:
    return np.nan if value is None else float(value)


def _scenarios(rows) -> list[str]:
    return list(dict.fromkeys(r["scenario"] for r in rows))


def _curve(ax, row, name, **style):
    """One turn-on as an mplhep step histogram with Clopper-Pearson error bars."""
    import mplhep

    turn_on = row["turn_on"]
    edges = np.asarray(turn_on["edges"], dtype=float)
    efficiency = np.array([_value(e) for e in turn_on["efficiency"]])
    low, high = clopper_pearson(turn_on["passed"], turn_on["total"])
    yerr = np.nan_to_num(np.array([efficiency - low, high - efficiency]))
    mplhep.histplot(efficiency, edges, yerr=yerr, histtype="step", label=name, ax=ax, **style)


@styled
def plot_turn_on(rows, path, *, bits: int, threshold: float) -> Path:
    """Turn-on overlays, one panel per scenario: teachers, float students, ``bits``-bit students (first seed)."""
    scenarios = _scenarios(rows)
    fig, axes = new_figure(1, len(scenarios), figsize=(8 * len(scenarios), 6.5), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for row, legend, style in _shown_networks([r for r in rows if r["scenario"] == scenario], bits):
            _curve(ax, row, legend, **style)
        ax.axvline(threshold, color="gray", linewidth=0.8)
        ax.set(xlabel="true muon $p_T$ [GeV]", ylabel=f"efficiency (pred. $p_T$ ≥ {threshold:g} GeV)", ylim=(0.0, 1.3))
        ax.grid(alpha=0.3)
        label(ax, rlabel=f"scenario {scenario}")
        ax.legend(fontsize="xx-small", loc="upper left", ncols=2)
    return save_figure(fig, path)


def _shown_networks(here, bits):
    """``(row, legend, style)`` of the networks a per-scenario overlay shows: teachers, then the
    float and ``bits``-bit students without and with KD (first seed each)."""
    shown = []
    for model, (color, line) in TEACHER_STYLE.items():
        shown += [(row, model, {"color": color, "linestyle": line}) for row in [r for r in here if r["model"] == model][:1]]
    for width, line in ((None, "-"), (bits, ":")):
        for kd in (False, True):
            group = [r for r in here if r["model"] == "student" and r["bits"] == width and r["kd"] == kd]
            for row in sorted(group, key=lambda r: r["seed"])[:1]:
                name = "float" if width is None else f"{width}-bit"
                legend = f"student {name}, {KD_STYLE[kd][0]} (seed {row['seed']})"
                shown.append((row, legend, {"color": KD_STYLE[kd][1], "linestyle": line}))
    return shown


@styled
def plot_resolution(rows, path, *, bits: int) -> Path:
    """Relative pT resolution per true-pT bin, one panel per scenario: bias with RMS bars (mplhep)."""
    import mplhep

    scenarios = _scenarios(rows)
    fig, axes = new_figure(1, len(scenarios), figsize=(8 * len(scenarios), 6.5), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        shown = _shown_networks([r for r in rows if r["scenario"] == scenario], bits)
        if not shown:
            continue
        edges = np.asarray(shown[0][0]["resolution"]["edges"], dtype=float)
        bias = [np.array([_value(v) for v in row["resolution"]["bias"]]) for row, _, _ in shown]
        rms = [np.nan_to_num(np.array([_value(v) for v in row["resolution"]["rms"]])) for row, _, _ in shown]
        # one call so that mplhep sets the networks side by side inside each bin (xoffsets)
        mplhep.histplot(bias, edges, yerr=[np.array([r, r]) for r in rms], histtype="errorbar", xoffsets=True,
                        label=[legend for _, legend, _ in shown], color=[style["color"] for _, _, style in shown], ax=ax)
        ax.axhline(0.0, color="gray", linewidth=0.8)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.6 * (high - low))  # room for the legend above the bars
        ax.set(xlabel="true muon $p_T$ [GeV]", ylabel="($p_T^{pred} - p_T^{true}$) / $p_T^{true}$")
        ax.grid(alpha=0.3)
        label(ax, rlabel=f"scenario {scenario}")
        ax.legend(fontsize="xx-small", ncols=2, title="bias, bars: RMS", title_fontsize="xx-small")
    return save_figure(fig, path)


def _bit_positions(rows):
    """Categorical x axis: quantized widths ascending, then float."""
    present = {r["bits"] for r in rows if r["model"] == "student"}
    order = sorted(b for b in present if b is not None) + ([None] if None in present else [])
    return order, {b: i for i, b in enumerate(order)}


@styled
def plot_versus_bits(rows, metric: str, path) -> Path:
    """``metric`` vs bit width, one panel per scenario: median over seeds with min/max bars, no KD vs KD."""
    value_of, axis_label, _ = METRICS[metric]
    scenarios = _scenarios(rows)
    order, position = _bit_positions(rows)
    fig, axes = new_figure(1, len(scenarios), figsize=(8 * len(scenarios), 6.5), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        here = [r for r in rows if r["scenario"] == scenario]
        for kd, (name, color, marker) in KD_STYLE.items():
            # quantized widths joined by a line; float apart, since it is not a bit width
            for widths, line, legend in ((order[:-1] if None in order else order, "-", f"student, {name}"), ([None], "none", None)):
                xs, median, low, high = [], [], [], []
                for bits in widths:
                    values = [_value(value_of(r)) for r in here if r["model"] == "student" and r["bits"] == bits and r["kd"] == kd]
                    values = [v for v in values if not np.isnan(v)]
                    if values:
                        xs.append(position[bits] + (0.08 if kd else -0.08))
                        median.append(np.median(values))
                        low.append(np.median(values) - min(values))
                        high.append(max(values) - np.median(values))
                if xs:
                    ax.errorbar(xs, median, yerr=[low, high], color=color, marker=marker, linestyle=line, capsize=3, label=legend)
        for model, (color, line) in TEACHER_STYLE.items():
            for row in [r for r in here if r["model"] == model][:1]:
                ax.axhline(_value(value_of(row)), color=color, linestyle=line, linewidth=1, label=model)
        if metric == "fake_ul":
            ax.axhline(FAKE_RATE_LIMIT, color="tab:green", linewidth=1.5, label="requirement 2 ‰")
            ax.set_yscale("log")
        ax.set_xticks(range(len(order)), ["float" if b is None else str(b) for b in order])
        ax.minorticks_off()
        ax.set(xlabel="bits", ylabel=axis_label)
        ax.grid(alpha=0.3)
        label(ax, rlabel=f"scenario {scenario}")
        ax.legend(fontsize="xx-small", title="median over seeds, min/max bars", title_fontsize="xx-small")
    return save_figure(fig, path)


def make_grid_plots(rows, output_dir, *, turn_on_bits: int, threshold: float) -> list[Path]:
    """Every grid figure into ``output_dir``; returns the paths."""
    output_dir = Path(output_dir)
    quantized = [b for b in _bit_positions(rows)[0] if b is not None]
    if quantized and turn_on_bits not in quantized:
        turn_on_bits = quantized[0]  # the requested width was not trained: show the narrowest one
    paths = [plot_turn_on(rows, output_dir / "turn_on.png", bits=turn_on_bits, threshold=threshold)]
    paths.append(plot_resolution(rows, output_dir / "resolution.png", bits=turn_on_bits))
    paths += [plot_versus_bits(rows, metric, output_dir / METRICS[metric][2]) for metric in METRICS]
    return paths
