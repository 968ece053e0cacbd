#!/usr/bin/env bash
# The result files of docs/frontends.md, from the repository root (about 15 minutes on 2 cores).
set -euo pipefail
# the HGQ2 draws of the random-architecture suite at full size, with hypothesis' statistics
L0EMU_TEST_SCALE=full .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_random_architectures.py \
    -k hgq2 --hypothesis-show-statistics -o console_output_style=classic 2>/dev/null \
    | grep -v '^[0-9.]*s \(call\|setup\|teardown\)' > docs/frontends/hgq2_random_full.txt
