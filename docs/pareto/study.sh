#!/usr/bin/env bash
# Physics versus firmware cost (docs/pareto/pareto.md): every command of the study.
# Run from the repository root with l0emu installed (the firmware extra, hgq2): samples go to
# $DATA, trained networks to $MODELS (neither is kept in git), the result files to docs/pareto.
# One training at a time, one TensorFlow thread each (the study's figures were made that way
# on a 2-core CPU shared with other jobs).
set -euo pipefail
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
DATA=${DATA:-data}
O=${MODELS:-models}
mkdir -p "$DATA" "$O"

# mixture DIR N_TRAIN N_VAL SEEDS...: the shipped student's mixture (its PROVENANCE.md) in DIR:
# six training files (log-flat 3-50 GeV and flat 3-20 GeV, default and hard) and two log-flat
# early-stopping files, with the eight generator seeds given
S="--set pt_spectrum=power --set pt_power_index=1 --set pt_max=50"
mixture() {
    local dir=$DATA/$1 n=$2 nv=$3
    shift 3
    mkdir -p "$dir"
    l0emu simulate -n "$n" --seed "$1" $S -o "$dir/train_default.root"
    l0emu simulate -n "$n" --seed "$2" --scenario hard $S -o "$dir/train_hard.root"
    l0emu simulate -n "$n" --seed "$3" --scenario hard $S -o "$dir/train_hard2.root"
    l0emu simulate -n "$n" --seed "$4" -o "$dir/train_flat_default.root"
    l0emu simulate -n "$n" --seed "$5" --scenario hard -o "$dir/train_flat_hard.root"
    l0emu simulate -n "$n" --seed "$6" --scenario hard -o "$dir/train_flat_hard2.root"
    l0emu simulate -n "$nv" --seed "$7" $S -o "$dir/val_default.root"
    l0emu simulate -n "$nv" --seed "$8" --scenario hard $S -o "$dir/val_hard.root"
}

# The screen: the mixture with fewer events, so that a training takes minutes (6 x 30,000
# training events, 2 x 20,000 for early stopping), and the two samples every point is scored on,
# 100,000 events each (flat 3-20 GeV). Seeds: training 151-156, validation 261-264 (docs/protocol.md).
mixture screen 30000 20000 151 152 153 154 155 156 261 262
l0emu simulate -n 100000 --seed 263 -o $DATA/choose_default.root
l0emu simulate -n 100000 --seed 264 --scenario hard -o $DATA/choose_hard.root

M="$DATA/screen/train_default.root $DATA/screen/train_hard.root $DATA/screen/train_hard2.root $DATA/screen/train_flat_default.root $DATA/screen/train_flat_hard.root $DATA/screen/train_flat_hard2.root"
C="--preset paper --max-events 180000 --background-weight 5 --validation $DATA/screen/val_default.root $DATA/screen/val_hard.root"
H="$C --quantizer hgq2 --epochs 15 --seed 0"

# float starts of the three widths (also the physics ceiling of each width)
l0emu train $M -o $O/student-wider_float $C --architecture student-wider --epochs 40 --seed 0
l0emu train $M -o $O/student-wide_float $C --architecture student-wide --epochs 40 --seed 0
l0emu train $M -o $O/student_float $C --architecture student --epochs 40 --seed 0

# QKeras students: quantization-aware training from the float start, one width for every
# weight and activation (the shipped student's recipe is q4_wider with more events)
l0emu train $M -o $O/q4_wider $C --architecture student-wider --nbits 4 --init-from $O/student-wider_float --epochs 20 --seed 0
l0emu train $M -o $O/q4_student $C --architecture student --nbits 4 --init-from $O/student_float --epochs 20 --seed 0
l0emu train $M -o $O/q4_wide $C --architecture student-wide --nbits 4 --init-from $O/student-wide_float --epochs 20 --seed 0
l0emu train $M -o $O/q3_wider $C --architecture student-wider --nbits 3 --init-from $O/student-wider_float --epochs 20 --seed 0
l0emu train $M -o $O/q6_wider $C --architecture student-wider --nbits 6 --init-from $O/student-wider_float --epochs 20 --seed 0

# HGQ2 students (a width per weight and input, beta x EBOPs in the loss), from the same float
# start. The first starts at HGQ2's default widths (8 bits per weight) and had not finished
# narrowing them after 15 epochs; the others start at 4 bits (--init-bits 4), 10 epochs each.
l0emu train $M -o $O/hgq2_wider_b1e-6 $H --architecture student-wider --beta 1e-6 --init-from $O/student-wider_float
G="$C --quantizer hgq2 --epochs 10 --seed 0 --init-bits 4 --init-from"
l0emu train $M -o $O/hgq2_wider_b1e-6_i4 $G $O/student-wider_float --architecture student-wider --beta 1e-6
l0emu train $M -o $O/hgq2_wider_b1e-5_i4 $G $O/student-wider_float --architecture student-wider --beta 1e-5
l0emu train $M -o $O/hgq2_wide_b1e-5_i4 $G $O/student-wide_float --architecture student-wide --beta 1e-5
l0emu train $M -o $O/hgq2_wider_b1e-7_i4 $G $O/student-wider_float --architecture student-wider --beta 1e-7
# ... with distillation from a 9x16 float teacher trained in the same run (10 epochs)
l0emu train $M -o $O/hgq2_wider_b1e-6_i4_kd $G $O/student-wider_float --architecture student-wider --beta 1e-6 --kd

# The shipped student's full mixture (l0emu/data/default_student/PROVENANCE.md: 6 x 350,000
# training events, seeds 121-143, 700,002 used; early stopping on seeds 221/222).
mixture full 350000 200000 121 122 123 141 142 143 221 222
F="$DATA/full/train_default.root $DATA/full/train_hard.root $DATA/full/train_hard2.root $DATA/full/train_flat_default.root $DATA/full/train_flat_hard.root $DATA/full/train_flat_hard2.root"
# The shipped default student, for reference (l0emu/data/default_student/PROVENANCE.md: a float start,
# then 4-bit QAT). The study's run scored the shipped weights themselves: keras_model.h5 and
# training_record.json of that folder copied to $O/default_student/model.h5 and record.json.
P="--architecture student-wider --preset paper --background-weight 5 --validation $DATA/full/val_default.root $DATA/full/val_hard.root"
l0emu train $F -o $O/wider_mix_float_s0 $P --epochs 80 --seed 0
l0emu train $F -o $O/default_student $P --nbits 4 --init-from $O/wider_mix_float_s0 --epochs 50 --seed 0
# HGQ2 on that mixture, starting from the shipped 4-bit student's weights at 4 bits, beta steered
# towards a budget of 180,000 EBOPs (--target-ebops: HGQ2's PID controller of beta), at most 40 epochs.
T="--preset paper --background-weight 5 --validation $DATA/full/val_default.root $DATA/full/val_hard.root --architecture student-wider --quantizer hgq2 --beta 3e-6 --init-bits 4 --init-from l0emu/data/default_student/keras_model.h5 --epochs 40"
l0emu train $F -o $O/hgq2_wider_t180k_s0 $T --target-ebops 180000 --seed 0
# ... towards the LUT budget: 50,000 EBOPs, for up to 60 epochs; and for up to 40 epochs distilled
# from a 9x16 float teacher trained on the same mixture (10 epochs; scored as a float reference)
l0emu train $F -o $O/hgq2_wider_t50k_s0 $T --target-ebops 50000 --epochs 60 --seed 0
l0emu train $F -o $O/teacher_9x16 --architecture teacher --preset paper --background-weight 5 --validation $DATA/full/val_default.root $DATA/full/val_hard.root --epochs 10 --seed 7
l0emu train $F -o $O/hgq2_wider_t50k_kd_s0 $T --target-ebops 50000 --seed 0 --teacher $O/teacher_9x16

# Score every network on the validation samples 263/264 and estimate its firmware; writes
# docs/pareto/pareto.json, pareto.csv, pareto.md and pareto.png
python -m l0emu.validation.pareto evaluate $O --default $DATA/choose_default.root --hard $DATA/choose_hard.root \
    --study docs/pareto/study.sh -o docs/pareto
