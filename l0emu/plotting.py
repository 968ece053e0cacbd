"""Saving matplotlib figures the way every l0emu output is written: atomically."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path

__all__ = ["save_figure"]


def save_figure(fig, path) -> Path:
    """Write ``fig`` as PNG to ``path`` (temporary name, then rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
