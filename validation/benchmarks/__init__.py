"""Performance benchmarks: ``l0emu bench NAME`` runs ``bench_NAME.py`` of this package.

Each module exposes ``DESCRIPTION`` (one line), ``add_arguments(parser)`` and
``main(args) -> int``, like the ``cli_*.py`` verb modules, and imports TensorFlow, hls4ml
or numba only inside ``main()``. A new ``bench_NAME.py`` here is a new benchmark.
"""
