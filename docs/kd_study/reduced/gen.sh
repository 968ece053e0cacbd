#!/usr/bin/env bash
# KD study samples: training seeds 111-113, validation seeds 211/212 (never used for README figures)
set -euo pipefail
L=l0emu  # run in the study directory; study.sh continues there
mkdir -p logs models
$L simulate -n 20000 --seed 111 -o train_default.root
$L simulate -n 20000 --seed 112 --scenario hard -o train_hard.root
$L simulate -n 20000 --seed 113 --scenario hard -o train_hard2.root
$L simulate -n 200000 --seed 211 -o val_default.root
$L simulate -n 200000 --seed 212 --scenario hard -o val_hard.root
T="train_default.root train_hard.root train_hard2.root"
$L train $T -o models/teacher_float --architecture teacher --preset fast --seed 11 --background-weight 5 > logs/teacher_float.log 2>&1
