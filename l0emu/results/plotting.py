"""Figures the way every l0emu plot is made: mplhep style, a neutral label, saved atomically.

A library must not change the state of the process it runs in, so nothing here touches
pyplot: figures are :class:`matplotlib.figure.Figure` objects drawn on their own canvas
(the caller's backend is never switched, no figure is registered with pyplot), and the
mplhep style is applied with :func:`matplotlib.style.context` only while a plot function
runs (rcParams are restored afterwards). matplotlib and mplhep are imported on first use,
so importing l0emu costs nothing when no plot is asked for.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

from l0emu.util.atomic import atomic_path

__all__ = ["EXPERIMENT", "LABEL_TEXT", "hep_style", "styled", "new_figure", "label", "errorbar_hist", "save_figure"]

# the label every figure carries: this is a toy study, not an experiment's result
EXPERIMENT = "l0emu"
LABEL_TEXT = "toy simulation"


@contextlib.contextmanager
def hep_style():
    """mplhep's ROOT-like style (no experiment's branding) for the duration of the block."""
    import matplotlib.style
    import mplhep

    with matplotlib.style.context(mplhep.style.ROOT):
        yield


def styled(function):
    """Run a plot function inside :func:`hep_style`: figure creation, drawing and saving alike."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with hep_style():
            return function(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=(8, 6), squeeze: bool = True, **subplot_kw):
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot (nothing global is touched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)
    return fig, axes


def label(ax, rlabel: str = "", text: str = LABEL_TEXT) -> None:
    """The experiment-style label: "l0emu toy simulation" at the top left, ``rlabel`` at the right."""
    import mplhep

    # llabel given whole: exp_label would otherwise prepend "Simulation" to the text;
    # scilocator_adjust off: that path (mplhep 1.3.3) measures text on pyplot's current axes,
    # creating a pyplot figure in the caller's process
    mplhep.label.exp_label(exp=EXPERIMENT, llabel=text, rlabel=rlabel, ax=ax, scilocator_adjust=False)


def errorbar_hist(ax, values, edges, low, high, **kwargs):
    """Values per bin with asymmetric errors ``[low, high]`` (absolute edges), as mplhep error bars.

    Bins whose value is nan (no entries) are drawn as nothing rather than as a zero.
    """
    import mplhep

    values = np.asarray(values, dtype=np.float64)
    yerr = np.array([values - np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64) - values])
    return mplhep.histplot(values, np.asarray(edges, dtype=np.float64), yerr=yerr, histtype="errorbar", xerr=True, ax=ax, **kwargs)


def save_figure(fig, path) -> Path:
    """Write ``fig`` as PNG to ``path`` (temporary name, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
