#!/usr/bin/env bash
# Samples of the paper-preset KD study (issue 12); seeds and roles as in docs/protocol.md.
set -euo pipefail
S="--set pt_spectrum=power --set pt_power_index=1 --set pt_max=50"     # log-flat 3-50 GeV: every threshold trains
R="--set pt_spectrum=power --set pt_power_index=2 --set pt_max=50"     # simulation.settings.RATE_SPECTRUM
# training (1 : 2 default : hard) and early stopping
l0emu simulate -n 350000 --seed 121 $S -o train_default.root
l0emu simulate -n 350000 --seed 122 --scenario hard $S -o train_hard.root
l0emu simulate -n 350000 --seed 123 --scenario hard $S -o train_hard2.root
# the capacity study's second half of the mixture (flat 3-20 GeV, the scenarios' own spectrum)
l0emu simulate -n 350000 --seed 141 -o train_flat_default.root
l0emu simulate -n 350000 --seed 142 --scenario hard -o train_flat_hard.root
l0emu simulate -n 350000 --seed 143 --scenario hard -o train_flat_hard2.root
l0emu simulate -n 200000 --seed 221 $S -o val_default.root
l0emu simulate -n 200000 --seed 222 --scenario hard $S -o val_hard.root
# choice (validation role): the study's table and the choice of the network to ship
l0emu simulate -n 300000 --seed 241 -o choose_default.root
l0emu simulate -n 300000 --seed 242 --scenario hard -o choose_hard.root
l0emu simulate -n 300000 --seed 243 $R -o choose_rate_default.root
l0emu simulate -n 300000 --seed 244 --scenario hard $R -o choose_rate_hard.root
# test: simulated once, looked at only for the figures of the recipe chosen on the samples above
l0emu simulate -n 1000000 --seed 341 -o test_default.root
l0emu simulate -n 1000000 --seed 342 --scenario hard -o test_hard.root
l0emu simulate -n 1000000 --seed 343 $R -o test_rate_default.root
l0emu simulate -n 1000000 --seed 344 --scenario hard $R -o test_rate_hard.root
