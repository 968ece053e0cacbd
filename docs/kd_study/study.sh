#!/usr/bin/env bash
# The paper-preset KD study (issue 12): a 9x16 teacher on the students' mixture; per seed a float
# student, then 4-bit QAT from it without and with distillation (hints, gamma = 0.1). One TF thread
# per training; the runs were spread over two cores in this order's dependencies.
set -euo pipefail
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
T="train_default.root train_hard.root train_hard2.root"
V="--validation val_default.root val_hard.root"
C="--preset paper --background-weight 5"
l0emu train $T -o models/teacher --architecture teacher --seed 11 $C $V     # 32 epochs (early stop), 2,545 s
for s in 0 1 2; do
  # the float start: early stopping ended every run before its cap (122, 67, 76 epochs;
  # seed 0 ran with the preset's 200-epoch cap, seeds 1 and 2 with --epochs 100)
  l0emu train $T -o models/float_s$s --seed $s $C $V
  l0emu train $T -o models/q4ff_s$s --nbits 4 --init-from models/float_s$s --seed $s --epochs 30 $C $V
  l0emu train $T -o models/q4ff_kd_s$s --nbits 4 --init-from models/float_s$s --kd --teacher models/teacher \
      --seed $s --epochs 30 $C $V
done
# the table: every network on the choice samples, quantized ones firmware-exact
l0emu grid kd-study --models-dir models --events choose_default.root --events-hard choose_hard.root -o report

# Capacity (issue 12, second part): the wider students (firmware.models.STUDENT_WIDTHS) and the
# teacher architecture at 4 bits, float start then QAT, one seed each on 200,000 events ...
l0emu train $T -o capacity/teacher_float_s11 --architecture teacher --seed 11 --max-events 200000 --epochs 30 $C $V
l0emu train $T -o capacity/teacher_q4_s11 --architecture teacher --nbits 4 --init-from capacity/teacher_float_s11 \
    --seed 11 --max-events 200000 --epochs 20 $C $V
for a in wide wider; do
  l0emu train $T -o capacity/${a}_float_s0 --architecture student-$a --seed 0 --max-events 200000 --epochs 40 $C $V
  l0emu train $T -o capacity/${a}_q4_s0 --architecture student-$a --nbits 4 --init-from capacity/${a}_float_s0 \
      --seed 0 --max-events 200000 --epochs 40 $C $V
done
# ... then the recipe of the shipped student: student-wider on the log-flat files plus flat 3-20 GeV
# ones (1 : 2 default : hard each), 700,000 events, float start (cap 80 epochs) then 4-bit QAT (cap 50)
M="$T train_flat_default.root train_flat_hard.root train_flat_hard2.root"
for s in 0 1 2; do
  l0emu train $M -o capacity/wider_mix_float_s$s --architecture student-wider --seed $s --epochs 80 $C $V
  l0emu train $M -o capacity/wider_mix_q4_s$s --architecture student-wider --nbits 4 \
      --init-from capacity/wider_mix_float_s$s --seed $s --epochs 50 $C $V
done
l0emu grid kd-study --models-dir capacity --events choose_default.root --events-hard choose_hard.root -o capacity_report
# the same 4-bit step with KD hints from the float teacher (seeds 0 and 1; evaluated in a directory of their own)
for s in 0 1; do
  l0emu train $M -o capacity_kd/wider_mix_q4_kd_s$s --architecture student-wider --nbits 4 \
      --init-from capacity/wider_mix_float_s$s --kd --teacher capacity/teacher_float_s11 --seed $s --epochs 50 $C $V
done
l0emu grid kd-study --models-dir capacity_kd --events choose_default.root --events-hard choose_hard.root -o capacity_kd_report
