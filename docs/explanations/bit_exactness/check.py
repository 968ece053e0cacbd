"""The shipped networks against hls4ml's C-simulation, bit for bit: writes check.json beside
this script (what docs/explanations/bit_exactness.md shows). Run from an empty directory:

    bash docs/explanations/bit_exactness/check.sh

Arguments: the directories ``l0emu convert`` wrote for the default and the multi student, and
the event files of the default and hard scenarios. Each check is ``l0emu validate``'s
comparison (validation.compare.compare); events/s are left out: a loaded machine's timings.
"""

import json
import sys
from pathlib import Path

from l0emu.fixedpoint.spec import read_spec
from l0emu.trigger.events import first_network_images
from l0emu.validation.compare import compare, full_range_inputs

EVENTS = 20_000
OUT = Path(__file__).with_name("check.json")


def _check(network, project, inputs_label, counts, command):
    result = compare(project, counts)
    print(f"{network}, {inputs_label}:\n{result.summary()}", flush=True)
    return {
        "network": network, "inputs": inputs_label, "command": command,
        "inputs_compared": result.n_events, "differing": result.n_mismatched,
        "differing_by_output": result.mismatched_by_output,
    }


def main(default_project, multi_project, default_events, hard_events):
    checks = []
    for label, events in (("default-scenario events", default_events), ("hard-scenario events", hard_events)):
        counts, n = first_network_images([events], EVENTS, read_spec(default_project))
        command = f"l0emu validate fw/default_student --events {Path(events).name} --max-events {EVENTS}"
        checks.append({**_check("default student", default_project, label, counts, command), "events": n})
    counts = full_range_inputs(EVENTS, read_spec(default_project), seed=0)
    command = f"l0emu validate fw/default_student --random {EVENTS} --full-range --seed 0"
    checks.append(_check("default student", default_project, "full-range random inputs", counts, command))
    counts, n = first_network_images([hard_events], EVENTS, read_spec(multi_project))
    command = f"l0emu validate fw/multi_student --events {Path(hard_events).name} --max-events {EVENTS}"
    checks.append({**_check("multi student", multi_project, "candidate windows of hard-scenario events", counts, command), "events": n})
    OUT.write_text(json.dumps({"checks": checks}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
