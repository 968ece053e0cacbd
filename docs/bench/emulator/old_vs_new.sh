#!/bin/sh
# The shipped students' emulator rates, old and new code alternately under the same process
# load: OLD is a checkout of the commit before the exact-or-refused work was merged (f44a1e0),
# NEW this one, both run by NEW's virtual environment. Old's subpackages (firmware, simulation,
# validation) live beside its l0emu/, so a directory of links makes them one package.
# Usage: old_vs_new.sh OLD NEW SCRATCH > old_vs_new.txt
set -e
OLD=$1 NEW=$2 SCRATCH=$3
mkdir -p "$SCRATCH/pkg_old/l0emu" "$SCRATCH/pkg_new/l0emu"
for pair in "old $OLD" "new $NEW"; do
  set -- $pair
  for f in "$2"/l0emu/*; do ln -sfn "$f" "$SCRATCH/pkg_$1/l0emu/"; done
  for sub in simulation firmware validation; do ln -sfn "$2/$sub" "$SCRATCH/pkg_$1/l0emu/$sub"; done
done
echo "old: $(git -C "$OLD" log --oneline -1)"
echo "new: $(git -C "$NEW" log --oneline -1) and its working tree"
uptime
for round in 1 2 3; do
  for tree in old new; do
    printf 'round %s %s ' "$round" "$tree"
    PYTHONPATH="$SCRATCH/pkg_$tree" NUMBA_NUM_THREADS=1 L0EMU_CACHE_DIR="$SCRATCH/kernels_$tree" \
      taskset -c 0 nice "$NEW/.venv/bin/python" "$NEW/docs/bench/emulator/old_vs_new.py" 400000 3 | tr '\n' ' '
    echo
  done
done
uptime
