"""The shipped students' emulator rates under whichever l0emu is imported (old_vs_new.sh runs
it under two checkouts): uint8 fragments (the trigger's input) and float inputs, one core,
best of ``repeats``, the same events for both checkouts. Usage: old_vs_new.py EVENTS REPEATS."""

import importlib.resources
import sys
import time

import numpy as np

from l0emu.fixedpoint.emulator import Emulator
from l0emu.trigger.images import pooled_to_float
from l0emu.validation.compare import random_fragments


def best_rate(fn, x, repeats):
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def main(events, repeats):
    counts = random_fragments(events, seed=1)
    floats = pooled_to_float(counts[: events // 4])
    for student in ("default_student", "multi_student"):
        emulator = Emulator.from_spec(str(importlib.resources.files("l0emu") / "data" / student))
        emulator.predict_raw(counts[:64])
        emulator.predict_raw(floats[:64])
        fragments = best_rate(emulator.predict_raw, counts, repeats)
        from_floats = best_rate(emulator.predict_raw, floats, repeats)
        checksum = int(emulator.predict_raw(counts[:10000]).sum())
        print(f"{student}: {fragments:,.0f} ev/s from uint8 fragments, {from_floats:,.0f} ev/s from floats; output checksum {checksum}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
