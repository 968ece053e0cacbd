"""Performance benchmarks, runnable as modules (``python -m l0emu.validation.benchmarks.<name>``)."""
