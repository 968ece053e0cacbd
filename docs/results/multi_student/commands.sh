#!/usr/bin/env bash
# The shipped multi student on its fresh test samples (seeds 371/372, 1,000,000 `multi`
# crossings each), firmware-exact: the rate tables and the target figures beside this script,
# and the plots of docs/multi_muon/shipped_*.png.
# Run from an empty directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
l0emu simulate -n 1000000 --seed 371 --scenario multi -o test_multi.root
l0emu simulate -n 1000000 --seed 372 --scenario multi --set noise_rate=3e-3 --set segment_rate=0.5 \
    --set correlated_cluster_rate=0.5 --set soft_muon_fraction=0.3 -o test_multi_hard.root
for sample in test_multi test_multi_hard; do
    l0emu run "$sample.root" --model multi -o "l0_$sample.root" --no-progress
    cp "l0_${sample}_rates.json" "$HERE/${sample}_rates.json"
    python "$HERE/targets.py" "$sample.root" "l0_$sample.root" "$HERE/${sample}_targets.json"
done
for plot in turn_on turn_on_2mu two_muon_separation charge_id muon_count; do
    cp "l0_test_multi_$plot.png" "$HERE/../../multi_muon/shipped_$plot.png"
done
cp l0_test_multi_hard_turn_on.png "$HERE/../../multi_muon/shipped_hard_turn_on.png"
