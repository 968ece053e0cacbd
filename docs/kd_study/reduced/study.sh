#!/usr/bin/env bash
# Reduced KD study (issue 12): 4-bit students, fast preset cut to 21,000 training events (7k per file)
# and at most 8 epochs (the CPU is shared by 7 people), background weight 5, mixture default:hard = 1:2
# (seeds 111-113), early stopping on validation samples (seeds 211/212); one TF thread per op.
set -uo pipefail
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
L=l0emu  # run in the directory gen.sh filled
T="train_default.root train_hard.root train_hard2.root"
V="--validation val_default.root val_hard.root"
C="--preset fast --background-weight 5 --max-events 21000 --epochs 8"
run() { local name=$1; shift; [ -f models/$name/record.json ] && return 0; echo "$(date +%T) $name"; $L train $T -o models/$name $C $V "$@" > logs/$name.log 2>&1 || echo "FAILED $name"; }
for s in 0 1 2; do
  run student_q4_nokd_s$s --nbits 4 --seed $s
  run student_q4_kd_s$s --nbits 4 --kd --teacher models/teacher_float --seed $s
  run student_float_nokd_s$s --seed $s
  run student_q4_fromfloat_s$s --nbits 4 --init-from models/student_float_nokd_s$s --seed $s
done
for s in 0 1 2; do
  run student_q4_kdqteacher_s$s --nbits 4 --kd --teacher models/teacher_q4 --seed $s
done
# second batch: soft targets (hints off), and hint weights x10
for s in 0 1 2; do
  run student_q4_kdsoft_s$s --nbits 4 --kd --teacher models/teacher_float --gammas 0 0 0 --soft-weight 1 --seed $s
  run student_q4_kdg1_s$s --nbits 4 --kd --teacher models/teacher_float --gammas 1 1 1 --seed $s
done
echo "$(date +%T) done"
