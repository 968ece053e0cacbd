"""Performance benchmarks, runnable as modules (``python -m validation.benchmarks.<name>``)."""
