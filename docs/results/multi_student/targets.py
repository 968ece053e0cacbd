"""The multi student's target figures (docs/results/multi_student.md) from one test sample:
its event file (the truth: muons above 3 GeV) and the ``l0.root`` that ``l0emu run --model
multi`` wrote for it, event by event. Writes a JSON object; run by commands.sh beside this.

    python targets.py EVENTS.root L0.root OUT.json
"""

import json
import sys

import numpy as np
import uproot

from l0emu.results.stats import upper_limit

THRESHOLD = 10  # GeV: the l0_pt10 and l0_2mu_pt10 decisions
PLATEAU = 15.0  # GeV: 1.5 x the threshold
SIGNAL = 3.0  # GeV: a muon counts above this (the rate tables' n_signal)


def _fraction(passed, selected) -> dict:
    k, n = int(np.count_nonzero(passed & selected)), int(np.count_nonzero(selected))
    return {"k": k, "n": n, "value": k / n if n else None, "upper_limit_95": upper_limit(k, n)}


def targets(events_path: str, l0_path: str) -> dict:
    truth = uproot.open(events_path)["events"].arrays(["event_id", "muon_pt"])
    l0 = uproot.open(l0_path)["l0"].arrays(
        ["event_id", f"l0_pt{THRESHOLD}", f"l0_2mu_pt{THRESHOLD}", "l0_charge", "true_charge", "true_pt", "true_pt2"], library="np"
    )
    if not np.array_equal(np.asarray(truth["event_id"]), l0["event_id"]):
        msg = f"{l0_path}: its events are not those of {events_path}, in order"
        raise ValueError(msg)
    n_signal = np.asarray(np.sum(truth["muon_pt"] > SIGNAL, axis=1))
    one, two, background = n_signal == 1, n_signal == 2, n_signal == 0
    single, double = l0[f"l0_pt{THRESHOLD}"], l0[f"l0_2mu_pt{THRESHOLD}"]
    return {
        "events": int(len(n_signal)),
        "one_muon_plateau": _fraction(single, one & (l0["true_pt"] >= PLATEAU)),
        "background_single_fires": _fraction(single, background),
        "two_muon_efficiency": _fraction(double, two & (l0["true_pt2"] >= PLATEAU)),
        "one_muon_double_fires": _fraction(double, one),
        "background_double_fires": _fraction(double, background),
        # a crossing with no candidate found has l0_charge 0: counted as wrong
        "charge": _fraction(l0["l0_charge"] == l0["true_charge"], one & (l0["true_pt"] >= THRESHOLD)),
    }


if __name__ == "__main__":
    events_path, l0_path, out = sys.argv[1:4]
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"events_file": events_path.rsplit("/", 1)[-1], **targets(events_path, l0_path)}, f, indent=1)
        f.write("\n")
