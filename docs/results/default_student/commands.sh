#!/usr/bin/env bash
# The shipped default student on its fresh test samples (seeds 341/342, 1,000,000 events each),
# firmware-exact, 10 GeV: the rate tables beside this script. Run from an empty directory.
set -euo pipefail
l0emu simulate -n 1000000 --seed 341 -o test_default.root
l0emu run test_default.root -o l0_default.root --thresholds 10
l0emu simulate -n 1000000 --seed 342 --scenario hard -o test_hard.root
l0emu run test_hard.root -o l0_hard.root --thresholds 10
mv l0_default_rates.json test_default_rates.json
mv l0_hard_rates.json test_hard_rates.json
