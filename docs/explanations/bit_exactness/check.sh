#!/usr/bin/env bash
# The shipped networks against hls4ml's C-simulation (check.json beside this script).
# Run from an empty directory; the event files are new samples of seeds 361/362.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(python -c "import importlib.resources as r; print(r.files('l0emu') / 'data')")
for net in default_student multi_student; do
    l0emu convert "$DATA/$net/keras_model.h5" -o "fw/$net" --config "$DATA/$net/convert.yml" --name "$net"
done
l0emu simulate -n 20000 --seed 361 -o events_default.root
l0emu simulate -n 20000 --seed 362 --scenario hard -o events_hard.root
python "$HERE/check.py" fw/default_student fw/multi_student events_default.root events_hard.root
