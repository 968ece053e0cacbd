"""Training choices shown by ``l0emu train --help`` and ``l0emu grid --help``.

They live here, apart from the modules that use them, because those modules import
TensorFlow (or numba) and a verb's ``--help`` must not: it would take seconds.
:mod:`firmware.models`, :mod:`firmware.distill` and :mod:`firmware.dataset` re-export the
first three; ``tests/test_cli.py`` checks that the
names below match :data:`firmware.train.PRESETS` and :data:`firmware.train.ARCHITECTURES`.
"""

from __future__ import annotations

__all__ = ["SUPPORTED_NBITS", "DEFAULT_GAMMAS", "DEFAULT_STRIDE", "PRESET_NAMES", "ARCHITECTURE_NAMES", "OUTPUT_SETS"]

SUPPORTED_NBITS = (2, 3, 4, 5, 6, 8)
DEFAULT_GAMMAS = (0.1, 0.1, 0.1)  # hint-loss weights gamma_1..3 of the seed study
DEFAULT_STRIDE = 8  # strips between candidate fragmentation windows
PRESET_NAMES = ("fast", "paper")
ARCHITECTURE_NAMES = ("student", "student-wide", "student-wider", "teacher", "teacher-9x384")
# the networks' output sets, in output order (firmware.dataset): one window's muon, or one
# sector-logic candidate window's muon with its charge and whether there is one (issue 11)
OUTPUT_SETS = (("pt", "eta"), ("pt", "eta", "charge", "presence"))
