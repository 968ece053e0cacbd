"""Control plots of the toy simulation (PNG, mplhep style, no pyplot).

:func:`make_plots` generates its own small samples from the given settings (so the plots
describe exactly the settings written into the event file) and writes: the BO-BI bending
vs pT per charge, per-layer occupancy, three event displays (4 GeV muon, 20 GeV muon,
background only), the fragmentation survival vs stride, and a settings figure.

Figures are :class:`matplotlib.figure.Figure` objects (:mod:`l0emu.results.plotting`): importing
this module or drawing a plot never switches the caller's matplotlib backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import hist
import numpy as np

from l0emu.errors import ConfigError
from l0emu.trigger.geometry import N_LAYERS, N_STRIPS
from l0emu.results.plotting import errorbar_hist, label, new_figure, save_figure, styled

from .analysis import bo_bi_offset, fragment_survival
from .block import EventBlock
from .generator import bend_lever, generate
from .settings import SimSettings

__all__ = [
    "FRAGMENT_STRIDES",
    "make_plots",
    "plot_bending",
    "plot_occupancy",
    "plot_event_displays",
    "plot_fragment_survival",
    "plot_settings",
]

FRAGMENT_STRIDES = (1, 2, 4, 8, 16, 32)
STATION_OF_LAYER_NAME = ["BI"] * 3 + ["BM"] * 4 + ["BO"] * 2


@styled
def plot_bending(block: EventBlock, path) -> Path:
    """Mean (and spread) of the BO-BI strip offset of the muon hits vs true pT, per charge."""
    pt, charge, offset = bo_bi_offset(block)
    edges = np.linspace(pt.min(), pt.max(), 18) if len(pt) else np.linspace(0, 1, 2)
    fig, ax = new_figure(figsize=(8, 6))
    for sign, colour in ((-1, "tab:blue"), (1, "tab:red")):
        chosen = charge == sign
        # a Mean storage keeps count, mean and variance of the offset per pT bin
        profile = hist.Hist(hist.axis.Variable(edges, name="pt"), storage=hist.storage.Mean())
        profile.fill(pt[chosen], sample=offset[chosen])
        view = profile.view()
        filled = view.count > 0
        mean = np.where(filled, view.value, np.nan)
        rms = np.sqrt(np.where(view.count > 1, view.variance, 0.0))
        errorbar_hist(ax, mean, edges, mean - rms, mean + rms, color=colour, label=f"charge {sign:+d} (bars: RMS)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("true muon $p_T$ [GeV]")
    ax.set_ylabel("mean BO $-$ mean BI strip")
    label(ax, rlabel="toroid bending")
    ax.legend(fontsize="small")
    return save_figure(fig, path)


@styled
def plot_occupancy(block: EventBlock, path) -> Path:
    """Mean hits per event per layer, muon hits and noise hits stacked."""
    import mplhep

    n = max(len(block), 1)
    axis = hist.axis.Integer(0, N_LAYERS, name="layer", label="RPC layer", underflow=False, overflow=False)
    muon = hist.Hist(axis, storage=hist.storage.Double()).fill(block.hit_layer[~block.hit_is_noise]) / n
    noise = hist.Hist(axis, storage=hist.storage.Double()).fill(block.hit_layer[block.hit_is_noise]) / n
    fig, ax = new_figure(figsize=(8, 6))
    from matplotlib.patches import Patch

    names, colours = ["muon hits", "noise / correlated background"], ["tab:blue", "tab:orange"]
    mplhep.histplot([muon, noise], stack=True, histtype="fill", color=colours, ax=ax)
    layers = np.arange(N_LAYERS)
    ax.set_xticks(layers + 0.5, [f"{layer}\n{name}" for layer, name in zip(layers, STATION_OF_LAYER_NAME)])
    ax.minorticks_off()
    ax.set_xlabel("RPC layer")
    ax.set_ylabel("hits per event")
    ax.set_ylim(0, 1.45 * float((muon.values() + noise.values()).max() or 1.0))
    label(ax, rlabel=f"{len(block):,} events")
    # plain patches: a stacked StepPatch's own legend entry can come out empty; top layer first
    handles = [Patch(facecolor=colour, label=name) for colour, name in zip(colours, names)]
    ax.legend(handles=handles[::-1], fontsize="small", loc="upper right")
    return save_figure(fig, path)


def _display_image(block: EventBlock, event: int) -> np.ndarray:
    image = np.zeros((N_LAYERS, N_STRIPS))
    lo, hi = block.hit_offsets[event], block.hit_offsets[event + 1]
    image[block.hit_layer[lo:hi], block.hit_strip[lo:hi]] = np.where(block.hit_is_noise[lo:hi], 1.0, 2.0)
    return image


def _first_event(settings: SimSettings, overrides: dict, n_muons: int) -> tuple[EventBlock, int]:
    """First event with ``n_muons`` muons, the leading one central enough to stay in the sector."""
    block = generate(settings.with_overrides(overrides), 256)
    leading_eta = np.zeros(len(block), np.float32)
    has_muon = block.n_muons > 0
    leading_eta[has_muon] = block.muon_eta[block.muon_offsets[:-1][has_muon]]
    return block, int(np.flatnonzero((block.n_muons == n_muons) & (np.abs(leading_eta) < 0.6))[0])


@styled
def plot_event_displays(settings: SimSettings, path) -> Path:
    """9x384 images of a 4 GeV muon, a 20 GeV muon and a background-only crossing."""
    cases = [
        ("4 GeV muon", {"background_fraction": 0.0, "max_muons": 1, "pt_min": 3.99, "pt_max": 4.01}, 1),
        ("20 GeV muon", {"background_fraction": 0.0, "max_muons": 1, "pt_min": 19.99, "pt_max": 20.01}, 1),
        ("background only", {"background_fraction": 1.0, "soft_muon_fraction": 0.0}, 0),
    ]
    from matplotlib.colors import ListedColormap

    fig, axes = new_figure(3, 1, figsize=(11, 7), sharex=True)
    cmap = ListedColormap(["white", "tab:orange", "black"])
    for case, (ax, (title, overrides, n_muons)) in enumerate(zip(axes, cases)):
        # a different seed per display, so the three crossings do not share noise
        block, event = _first_event(settings, {**overrides, "seed": settings.seed + case + 1}, n_muons)
        ax.imshow(_display_image(block, event), aspect="auto", cmap=cmap, vmin=0, vmax=2, interpolation="nearest", origin="lower")
        truth = ""
        if n_muons:
            m = block.muon_offsets[event]
            truth = f": pT {block.muon_pt[m]:.1f} GeV, eta {block.muon_eta[m]:+.2f}, charge {block.muon_charge[m]:+d}"
        ax.set_title(title + truth + "  (black: muon, orange: noise)", fontsize=11, loc="right")
        ax.set_ylabel("layer", fontsize=14)
        ax.set_yticks([0, 3, 7], ["0 BI", "3 BM", "7 BO"])
        ax.tick_params(labelsize=12)
    axes[-1].set_xlabel("$\\eta$ strip")
    label(axes[0])
    return save_figure(fig, path)


@styled
def plot_fragment_survival(block: EventBlock, path, strides=FRAGMENT_STRIDES) -> Path:
    """Fraction of a muon's hits kept by fragmentation vs stride: mean, median, 10 % quantile, per pT band."""
    rows = {stride: fragment_survival(block, stride) for stride in strides}
    fig, ax = new_figure(figsize=(8, 6))
    x = np.asarray(strides)
    ax.plot(x, [np.mean(f) for _, f in rows.values()], "o-", label="mean, all muons")
    ax.plot(x, [np.median(f) for _, f in rows.values()], "s--", label="median")
    ax.plot(x, [np.quantile(f, 0.1) for _, f in rows.values()], "v:", label="10% quantile")
    for lo, hi in ((3, 5), (10, 20)):
        means = [np.mean(f[(pt >= lo) & (pt < hi)]) if np.any((pt >= lo) & (pt < hi)) else np.nan for pt, f in rows.values()]
        ax.plot(x, means, ".-", alpha=0.7, label=f"mean, {lo}-{hi} GeV")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(s) for s in strides])
    ax.set_xlabel("window stride [strips]")
    ax.set_ylabel("muon hits in the 9x32 window")
    ax.set_ylim(0, 1.3)
    label(ax, rlabel="fragmentation")
    ax.legend(fontsize="x-small", ncols=2, loc="lower left")
    return save_figure(fig, path)


@styled
def plot_settings(settings: SimSettings, path) -> Path:
    """The generator settings as text, beside the expected per-layer bend for a few pT values."""
    fig, (text_ax, bend_ax) = new_figure(1, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [0.6, 1.2]})
    text_ax.axis("off")
    text = json.dumps(settings.to_dict(), indent=0).strip("{}").replace('"', "")
    text_ax.text(0, 1, text, va="top", family="monospace", fontsize=9)
    lever = bend_lever(settings)
    for pt in (3, 5, 10, 20):
        bend_ax.plot(settings.bend_strips_gev / pt * lever, np.arange(N_LAYERS), "o-", label=f"{pt} GeV, charge +1")
    bend_ax.set_xlabel("expected $\\eta$ offset [strips]", fontsize=14)
    bend_ax.set_ylabel("layer", fontsize=14)
    label(bend_ax, rlabel="bend per layer")
    bend_ax.legend(fontsize="x-small")
    return save_figure(fig, path)


def make_plots(settings: SimSettings, directory, n_events: int = 20_000) -> list[Path]:
    """All control plots for ``settings`` into ``directory`` (created if its parent exists)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        msg = f"--plots {str(directory)!r} exists and is not a directory"
        raise ConfigError(msg)
    try:
        directory.mkdir(exist_ok=True)
    except OSError as err:
        msg = f"cannot create plot directory {str(directory)!r}: {err}"
        raise ConfigError(msg) from err
    block = generate(settings, n_events)
    return [
        plot_bending(block, directory / "bending_vs_pt.png"),
        plot_occupancy(block, directory / "occupancy.png"),
        plot_event_displays(settings, directory / "event_displays.png"),
        plot_fragment_survival(block, directory / "fragment_survival.png"),
        plot_settings(settings, directory / "settings.png"),
    ]
