#!/usr/bin/env bash
# The shipped default student on its fresh test samples (seeds 341/342, 1,000,000 events each),
# firmware-exact, 10 GeV, and on the falling-spectrum samples (seeds 343/344) at every default
# threshold: the rate tables beside this script. Run from an empty directory.
set -euo pipefail
l0emu simulate -n 1000000 --seed 341 -o test_default.root
l0emu run test_default.root -o l0_default.root --thresholds 10
l0emu simulate -n 1000000 --seed 342 --scenario hard -o test_hard.root
l0emu run test_hard.root -o l0_hard.root --thresholds 10
mv l0_default_rates.json test_default_rates.json
mv l0_hard_rates.json test_hard_rates.json
# every default threshold on the falling-spectrum test samples (seeds 343/344, muons up to 50 GeV)
FALLING="--set pt_spectrum=power --set pt_power_index=2 --set pt_max=50"
l0emu simulate -n 1000000 --seed 343 $FALLING -o test_falling.root
l0emu run test_falling.root -o l0_falling.root
l0emu simulate -n 1000000 --seed 344 --scenario hard $FALLING -o test_falling_hard.root
l0emu run test_falling_hard.root -o l0_falling_hard.root
mv l0_falling_rates.json test_falling_rates.json
mv l0_falling_hard_rates.json test_falling_hard_rates.json
