"""The fixed-point core: ap types and casts, the network spec, and the bit-exact emulator.

- :mod:`~l0emu.fixedpoint.aptypes`: ``ap_fixed``/``ap_int`` types as objects, and their parser;
- :mod:`~l0emu.fixedpoint.casts`: the casts between them (numba kernels, one rule each);
- :mod:`~l0emu.fixedpoint.spec`: the ``spec.json`` format, read and checked in one place;
- :mod:`~l0emu.fixedpoint.emulator`: :class:`~l0emu.fixedpoint.emulator.Emulator`, which runs
  kernels that :mod:`~l0emu.fixedpoint._codegen` generates from a spec.
"""
