"""l0emu: bit-accurate emulation of neural-network Level-0 muon triggers on FPGAs.

The runtime floor: fixed-point types and casts, the network emulator, the detector
geometry, hits -> images and input fragmentation, the trigger event loop, ROOT I/O,
tables and the CLI. It depends on numpy, numba, uproot and awkward only.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
