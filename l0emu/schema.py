"""The event file and trigger output schemas (docs/design.md), in one place.

The simulation writes events with these branches and dtypes, the trigger reads them
and checks them against this table, and writes its ``l0`` tree with the names below.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EVENTS_TREE",
    "SETTINGS_TREE",
    "EVENT_SCALARS",
    "EVENT_JAGGED",
    "TRUTH_BRANCHES",
    "HIT_BRANCHES",
    "L0_TREE",
    "SIGNAL_PT_MIN",
    "DEFAULT_THRESHOLDS",
    "threshold_branch",
    "two_muon_branch",
    "MULTI_BRANCHES",
    "MULTI_TRUTH_BRANCHES",
]

EVENTS_TREE = "events"
SETTINGS_TREE = "settings"
L0_TREE = "l0"

# scalar branches: name -> dtype
EVENT_SCALARS = {"event_id": np.dtype(np.uint64), "n_muons": np.dtype(np.uint8)}
# jagged branches: name -> dtype of the contents
EVENT_JAGGED = {
    "muon_pt": np.dtype(np.float32),
    "muon_eta": np.dtype(np.float32),
    "muon_charge": np.dtype(np.int8),
    "hit_layer": np.dtype(np.uint8),
    "hit_strip": np.dtype(np.int16),
    "hit_is_noise": np.dtype(np.bool_),
}
TRUTH_BRANCHES = ("n_muons", "muon_pt", "muon_eta", "muon_charge")
HIT_BRANCHES = ("hit_layer", "hit_strip")

# An event is signal for efficiencies and fake rates only if a muon is above this pT (GeV).
SIGNAL_PT_MIN = 3.0
# GeV: the pT thresholds of `l0emu run` without --thresholds (here, not in trigger.py, so
# that `l0emu run --help` shows them without importing numba)
DEFAULT_THRESHOLDS = (5.0, 10.0, 15.0, 20.0)
# l0 branches a multi-candidate spec adds (docs/multi_muon.md), besides l0_2mu_pt<T> per threshold:
# candidates counted as muons, the leading candidate's charge (0: none), the leading muon's
# true charge (0: none) and the second muon's true pT (0: none)
MULTI_BRANCHES = {"l0_n_mu": np.dtype(np.uint8), "l0_charge": np.dtype(np.int8)}
MULTI_TRUTH_BRANCHES = {"true_charge": np.dtype(np.int8), "true_pt2": np.dtype(np.float32)}


def threshold_branch(threshold_gev: float) -> str:
    """Decision branch name for a pT threshold: 10 -> 'l0_pt10', 7.5 -> 'l0_pt7p5'."""
    text = f"{float(threshold_gev):g}"
    if "e" in text or threshold_gev <= 0:
        msg = f"pT threshold must be a positive number of GeV, got {threshold_gev!r}"
        raise ValueError(msg)
    return "l0_pt" + text.replace(".", "p")


def two_muon_branch(threshold_gev: float) -> str:
    """Two-muon decision branch name: 10 -> 'l0_2mu_pt10' (at least two candidates >= 10 GeV)."""
    return "l0_2mu_" + threshold_branch(threshold_gev).removeprefix("l0_")
