"""The one trigger sector l0emu models: layers, stations, strips and the eta <-> strip map.

Every other module takes these facts from here. One phi sector of the ATLAS barrel RPC
system as a 9 x 384 image: rows are RPC layers (0-2 inner station BI, 3-6 middle BM,
7-8 outer BO), columns are eta strips over |eta| < 1.05.
"""

from __future__ import annotations

import numpy as np

from l0emu.errors import ConfigError

__all__ = [
    "N_LAYERS",
    "N_STRIPS",
    "ETA_MIN",
    "ETA_MAX",
    "STRIP_WIDTH",
    "STATIONS",
    "STATION_OF_LAYER",
    "LAYER_RADIUS_M",
    "ALL_LAYERS",
    "LAYER_SETS",
    "check_layers",
    "layer_set",
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

# The RPC layers whose rows form the network's image (spec ``preprocessing.layers``, issue 11):
# every layer, or one station alone, e.g. the seeds' 4x384 image of the middle station BM.
ALL_LAYERS = tuple(range(N_LAYERS))
LAYER_SETS = {
    "all": ALL_LAYERS,
    "middle": tuple(int(k) for k in np.flatnonzero(STATION_OF_LAYER == STATIONS.index("BM"))),  # (3, 4, 5, 6)
}


def check_layers(layers, where: str = "layers") -> tuple:
    """``layers`` as a tuple of ints: at least one RPC layer index in ``[0, N_LAYERS)``, strictly increasing."""
    items = list(layers) if isinstance(layers, (list, tuple, np.ndarray)) else None
    if not items:
        msg = f"{where}: expected a non-empty list of RPC layer indices in [0, {N_LAYERS - 1}], got {layers!r}"
        raise ConfigError(msg)
    for i, k in enumerate(items):
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 0 <= k < N_LAYERS:
            msg = f"{where}[{i}]: {k!r} is not an RPC layer index in [0, {N_LAYERS - 1}]"
            raise ConfigError(msg)
        if i and k <= items[i - 1]:
            msg = f"{where}[{i}]: {k} follows {items[i - 1]}; layers must be strictly increasing (image rows in layer order)"
            raise ConfigError(msg)
    return tuple(int(k) for k in items)


def layer_set(text) -> tuple:
    """A layer set by name (:data:`LAYER_SETS`) or as comma-separated indices (``"3,4,5,6"``)."""
    if isinstance(text, str) and text in LAYER_SETS:
        return LAYER_SETS[text]
    parts = str(text).split(",")
    if not all(p.strip().isdigit() for p in parts):
        msg = f"layer set {text!r} is neither a name ({', '.join(LAYER_SETS)}) nor comma-separated layer indices (e.g. 3,4,5,6)"
        raise ConfigError(msg)
    return check_layers([int(p) for p in parts], where=f"layer set {text!r}")


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
