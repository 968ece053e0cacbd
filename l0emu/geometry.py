"""The one trigger sector l0emu models: layers, stations, strips and the eta <-> strip map.

Every other module takes these facts from here. One phi sector of the ATLAS barrel RPC
system as a 9 x 384 image: rows are RPC layers (0-2 inner station BI, 3-6 middle BM,
7-8 outer BO), columns are eta strips over |eta| < 1.05.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "N_LAYERS",
    "N_STRIPS",
    "ETA_MIN",
    "ETA_MAX",
    "STRIP_WIDTH",
    "STATIONS",
    "STATION_OF_LAYER",
    "LAYER_RADIUS_M",
    "eta_to_strip",
    "strip_to_eta",
    "strip_center_eta",
]

N_LAYERS = 9
N_STRIPS = 384
ETA_MIN = -1.05
ETA_MAX = 1.05
STRIP_WIDTH = (ETA_MAX - ETA_MIN) / N_STRIPS

STATIONS = ("BI", "BM", "BO")
STATION_OF_LAYER = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2], dtype=np.int8)

# Radial position of each RPC layer (metres): a BI triplet, two BM doublets, one BO doublet.
# The toroid bends muons between stations, so these lever arms set the eta offsets.
LAYER_RADIUS_M = np.array([4.45, 4.48, 4.51, 6.80, 6.83, 7.45, 7.48, 9.80, 9.83])


def eta_to_strip(eta):
    """Continuous strip coordinate of ``eta``: ``384*(eta-eta_min)/(eta_max-eta_min)``.

    Strip ``k`` covers coordinates ``[k, k+1)``; ``np.floor`` of the result is the strip index.
    """
    return N_STRIPS * (np.asarray(eta, dtype=np.float64) - ETA_MIN) / (ETA_MAX - ETA_MIN)


def strip_to_eta(coordinate):
    """Inverse of :func:`eta_to_strip` for a continuous strip coordinate."""
    return ETA_MIN + np.asarray(coordinate, dtype=np.float64) * STRIP_WIDTH


def strip_center_eta(strip):
    """Eta at the centre of integer strip ``strip``."""
    return strip_to_eta(np.asarray(strip, dtype=np.float64) + 0.5)
