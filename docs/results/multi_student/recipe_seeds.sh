#!/usr/bin/env bash
# The multi recipe's three training seeds (l0emu/data/multi_student/PROVENANCE.md) on the
# validation samples that chose among them (seeds 245/246, 200,000 `multi` crossings each) and on
# the test samples of commands.sh (371/372): the target figures of targets.py for every seed and
# sample, merged into recipe_seeds.json beside this script. Run from the data directory of the
# provenance's commands (models/wider_q4_bw3_s{0,1,2} trained there).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
H="--set noise_rate=3e-3 --set segment_rate=0.5 --set correlated_cluster_rate=0.5 --set soft_muon_fraction=0.3"
l0emu simulate -n 200000 --seed 245 --scenario multi -o choose_multi.root
l0emu simulate -n 200000 --seed 246 --scenario multi $H -o choose_multi_hard.root
l0emu simulate -n 1000000 --seed 371 --scenario multi -o test_multi.root
l0emu simulate -n 1000000 --seed 372 --scenario multi $H -o test_multi_hard.root
for seed in 0 1 2; do
    l0emu convert "models/wider_q4_bw3_s$seed/model.h5" -o "fw/s$seed" --config "$HERE/../../../l0emu/data/multi_student/convert.yml" --name multi_student
    for sample in choose_multi choose_multi_hard test_multi test_multi_hard; do
        l0emu run "$sample.root" --spec "fw/s$seed/spec.json" -o "out_s$seed/l0_$sample.root" --no-progress
        python "$HERE/targets.py" "$sample.root" "out_s$seed/l0_$sample.root" "out_s$seed/$sample.json"
    done
done
python - "$HERE/recipe_seeds.json" <<'PY'
import json, sys
merged = {f"seed {s}": {sample: json.load(open(f"out_s{s}/{sample}.json"))
                        for sample in ("choose_multi", "choose_multi_hard", "test_multi", "test_multi_hard")} for s in (0, 1, 2)}
open(sys.argv[1], "w").write(json.dumps(merged, indent=1) + "\n")
PY
