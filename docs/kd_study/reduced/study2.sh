#!/usr/bin/env bash
# second batch of the reduced KD study: soft targets (hints off), and hint weights x10
set -uo pipefail
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
L=/work/main/.venv/bin/l0emu
cd /tmp/kd_study
T="train_default.root train_hard.root train_hard2.root"
V="--validation val_default.root val_hard.root"
C="--preset fast --background-weight 5 --max-events 21000 --epochs 8"
run() { local name=$1; shift; [ -f models/$name/record.json ] && return 0; echo "$(date +%T) $name"; $L train $T -o models/$name $C $V "$@" > logs/$name.log 2>&1 || echo "FAILED $name"; }
for s in 0 1 2; do
  run student_q4_kdsoft_s$s --nbits 4 --kd --teacher models/teacher_float --gammas 0 0 0 --soft-weight 1 --seed $s
  run student_q4_kdg1_s$s --nbits 4 --kd --teacher models/teacher_float --gammas 1 1 1 --seed $s
done
echo "$(date +%T) done2"
