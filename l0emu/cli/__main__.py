"""``python -m l0emu.cli``: the ``l0emu`` console script, for subprocesses that need this interpreter."""

import sys

from l0emu.cli.dispatch import main

sys.exit(main())
