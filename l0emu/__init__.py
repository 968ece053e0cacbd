"""l0emu: bit-accurate emulation of neural-network Level-0 muon triggers on FPGAs.

The package root is the runtime floor: fixed-point types and casts, the network emulator,
the detector geometry, hits -> images and input fragmentation, the trigger event loop,
ROOT I/O, tables and the CLI, on numpy, numba, uproot and awkward only. The toy detector,
the training and firmware path and the validation live in :mod:`l0emu.simulation`,
:mod:`l0emu.firmware` and :mod:`l0emu.validation`.

The names below are the Python API, loaded on first use so that ``import l0emu`` stays
light (no numba, uproot or TensorFlow until a name that needs them is touched)::

    from l0emu import simulate, run_trigger, turn_on_curve
    simulate("events.root", 10_000, seed=1)                 # toy events (l0emu simulate)
    result = run_trigger("events.root", "l0.root")          # the trigger job (l0emu run)

- :func:`simulate`, :func:`write_events`, :func:`settings_for_scenario`: toy events;
- :func:`run_trigger`, :class:`Emulator`, :func:`read_spec`, :func:`write_spec`: the trigger
  job with the shipped student or any ``spec.json``, and the bit-exact emulator itself;
- :func:`load_events`, :func:`iterate_events`: event files (TTree or RNTuple) in chunks;
- :func:`turn_on_curve`, :func:`plateau_efficiency`, :func:`half_efficiency_point`,
  :func:`pt_resolution`, :func:`fake_rate`, :func:`physics_summary`: the metrics;
- :class:`L0emuError` and its subclasses: every error l0emu raises on bad input.

docs/design.md in the repository describes the design.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module defining it; imported by __getattr__ on first access (PEP 562)
_LAZY = {
    "simulate": "l0emu.api",
    "run_trigger": "l0emu.api",
    "convert": "l0emu.api",
    "Emulator": "l0emu.fixedpoint.emulator",
    "read_spec": "l0emu.fixedpoint.spec",
    "write_spec": "l0emu.fixedpoint.spec",
    "load_events": "l0emu.trigger.events",
    "iterate_events": "l0emu.trigger.events",
    "write_events": "l0emu.simulation.events_io",
    "settings_for_scenario": "l0emu.simulation.settings",
    "turn_on_curve": "l0emu.results.metrics",
    "plateau_efficiency": "l0emu.results.metrics",
    "half_efficiency_point": "l0emu.results.metrics",
    "pt_resolution": "l0emu.results.metrics",
    "fake_rate": "l0emu.results.metrics",
    "physics_summary": "l0emu.results.metrics",
    "L0emuError": "l0emu.errors",
    "ConfigError": "l0emu.errors",
    "InputFileError": "l0emu.errors",
    "SpecError": "l0emu.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        msg = f"module 'l0emu' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
