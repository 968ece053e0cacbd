#!/usr/bin/env bash
# da4ml's pipeline, latency and resource estimates of the two shipped networks at the latency
# cutoffs 5 (the default), 2, 3 and 8: estimates.txt beside this script, what `l0emu bench rtl`
# prints. Run from an empty directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(python -c "import importlib.resources as r; print(r.files('l0emu') / 'data')")
for net in default_student multi_student; do
    l0emu convert "$DATA/$net/keras_model.h5" -o "$net" --config "$DATA/$net/convert.yml" --name "$net"
done
l0emu bench rtl default_student multi_student --latency-cutoff 5 2 3 8 > "$HERE/estimates.txt"
# Verilator: each network's Verilog built and run on the network inputs of 20,000
# hard-scenario events (seed 362), compared with the emulator bit for bit: verilator.txt
l0emu simulate -n 20000 --seed 362 --scenario hard -o events_hard.root
l0emu bench rtl multi_student default_student --simulate 20000 --events events_hard.root > "$HERE/verilator.txt"
