"""The ``l0emu`` command line: :mod:`~l0emu.cli.dispatch` dispatches the verbs, :mod:`~l0emu.cli.run`
is ``l0emu run``; the other verbs live beside the stage they drive (simulation, firmware,
validation)."""

from l0emu.cli.dispatch import main

__all__ = ["main"]
