"""Emulator vs hls4ml C-simulation vs QKeras on the same inputs, event by event.

The emulator must equal the C-simulation bit for bit on every output of every event; for
the first event that differs, hls4ml's trace locates the first layer whose outputs differ.
QKeras (the Keras model saved in the project by ``l0emu convert``) is compared in values.
"""

from __future__ import annotations

import json

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from l0emu.firmware.hls4ml_bridge import CONFIG_FILE, csim_output_layers, csim_raw, csim_trace, load_converted, project_front_end
from l0emu.util.atomic import atomic_path
from l0emu.fixedpoint.aptypes import parse_type
from l0emu.errors import ConfigError
from l0emu.fixedpoint.emulator import Emulator
from l0emu.fixedpoint.spec import spec_inputs
from l0emu.trigger.images import FRAGMENT_STRIPS, pooled_to_float
from l0emu.trigger.geometry import N_LAYERS

__all__ = ["Comparison", "full_range_inputs", "random_fragments", "random_inputs", "compare", "write_testbench"]


@dataclass
class Comparison:
    """What ``l0emu validate`` reports."""

    n_events: int
    n_mismatched: int
    first_mismatch: int | None
    first_layer: str | None
    qkeras_max_dev_emulator: float
    qkeras_max_dev_csim: float
    rates: dict = field(default_factory=dict)  # events/s of "emulator", "csim", "qkeras"
    emulator_compile_s: float = 0.0
    mismatched_by_output: dict = field(default_factory=dict)  # spec output name -> events whose value differs
    framework: str = "QKeras"  # the model's own framework, as its front end names it (compared in values)

    @property
    def ok(self) -> bool:
        return self.n_mismatched == 0

    def summary(self) -> str:
        lines = [
            f"events compared:                  {self.n_events}",
            f"events with any differing bit:    {self.n_mismatched}",
        ]
        if len(self.mismatched_by_output) > 1:
            lines.append("  per output: " + ", ".join(f"{name} {k}" for name, k in self.mismatched_by_output.items()))
        if self.first_mismatch is not None:
            lines.append(f"first differing event:            {self.first_mismatch} (first differing layer: {self.first_layer})")
        lines += [
            f"{'max |' + self.framework + ' - emulator|:':34s}{self.qkeras_max_dev_emulator:.6g}",
            f"{'max |' + self.framework + ' - C-simulation|:':34s}{self.qkeras_max_dev_csim:.6g}",
            f"numba compile (first call):       {self.emulator_compile_s:.1f} s",
        ]
        lines += [f"{name + ' events/s:':34s}{rate:,.0f}" for name, rate in self.rates.items()]
        lines.append("RESULT: " + ("bit-exact" if self.ok else "MISMATCH"))
        return "\n".join(lines)


def random_fragments(n: int, seed: int = 0, occupancy: float = 0.08, shape=(N_LAYERS, FRAGMENT_STRIPS)) -> np.ndarray:
    """Random sparse lit-pixel counts (0, 1, 2 -> pixel values 0, .5, 1) like real fragments,
    ``shape`` per event (a 9x16 fragment by default; any network input shape works)."""
    rng = np.random.default_rng(seed)
    lit = rng.random((n, *shape)) < occupancy
    return (lit * rng.integers(1, 3, lit.shape)).astype(np.uint8)


def full_range_inputs(n: int, spec: dict, seed: int = 0):
    """``n`` float inputs (float32) whose mantissas cover the spec's input type: three edge
    events (all zero, all at the minimum, all at the maximum), then uniform mantissas. A
    network with several inputs gets a list of one such array per input, each over its type.

    For networks whose inputs are not fragments; values are exact in float32 up to 24-bit
    input types, the precision in which hls4ml's ``convert_data<float, input_t>`` reads them.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for inp in spec_inputs(spec):
        t = parse_type(inp["type"])
        shape = tuple(int(d) for d in inp["shape"])
        edges = np.stack([np.full(shape, v, dtype=np.int64) for v in (0, t.min_mantissa, t.max_mantissa)])
        uniform = rng.integers(t.min_mantissa, t.max_mantissa + 1, (max(n - 3, 0), *shape), dtype=np.int64)
        arrays.append(t.to_float(np.concatenate([edges, uniform])[:n]).astype(np.float32))
    return arrays[0] if len(arrays) == 1 else arrays


def random_inputs(n: int, spec: dict, seed: int = 0):
    """``l0emu validate --random``: :func:`random_fragments` of the input's shape (uint8 counts);
    a network with several inputs gets a list of pixel values (floats), one array per input."""
    inputs = spec_inputs(spec)
    if len(inputs) == 1:
        return random_fragments(n, seed=seed, shape=tuple(inputs[0]["shape"]))
    return [pooled_to_float(random_fragments(n, seed=seed + j, shape=tuple(inp["shape"]))) for j, inp in enumerate(inputs)]


def _as_floats(inputs):
    """Network input values: uint8 lit-pixel counts become pixel values; floats stay (per input)."""
    if isinstance(inputs, list):
        return [_as_floats(x) for x in inputs]
    return pooled_to_float(inputs) if inputs.dtype == np.uint8 else np.asarray(inputs, dtype=np.float64)


def _take(inputs, index):
    """Events ``index`` (a slice or an index array) of one input array or of each of several."""
    return [x[index] for x in inputs] if isinstance(inputs, list) else inputs[index]


def _count(inputs) -> int:
    return len(inputs[0] if isinstance(inputs, list) else inputs)


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def _first_differing_layer(hls_model, emulator, image) -> str:
    """``image``: one event (each input's array of length 1). Walk the spec's layers in order; the first whose trace values differ from hls4ml's."""
    theirs = csim_trace(hls_model, _as_floats(image))
    ours = emulator.trace(image)
    for name, values in ours.items():
        if name in theirs and not np.array_equal(values.reshape(-1), theirs[name].reshape(-1)):
            return name
    return "none of the traced layers (only the final outputs differ)"


def _keras_columns(keras_out, hls_model, emulator, n) -> np.ndarray:
    """QKeras outputs in the emulator's raw columns: Keras gives one array per model output in
    the model's order, which hls4ml's outputs keep."""
    arrays = keras_out if isinstance(keras_out, list) else [keras_out]
    by_layer = dict(zip(csim_output_layers(hls_model), (np.asarray(a, dtype=np.float64).reshape(n, -1) for a in arrays)))
    return np.concatenate([by_layer[name] for name, _, _ in emulator.output_layers], axis=1)


def compare(project_dir, counts: np.ndarray) -> Comparison:
    """Run the emulator, the C-simulation and QKeras on ``counts``: uint8 lit-pixel counts
    shaped like the network input, or float input values (:func:`full_range_inputs`); a list
    of float arrays, one per input, for a network with several inputs."""
    project_dir = Path(project_dir)
    hls_model, spec = load_converted(project_dir, compile=True)
    emulator = Emulator.from_spec(spec)
    floats = _as_floats(counts)
    emulator.predict_raw(_take(counts, slice(0, 1)))  # compile before timing
    ours, t_emu = _timed(emulator.predict_raw, counts)
    theirs, t_csim = _timed(csim_raw, hls_model, floats, spec)
    front = project_front_end(json.loads((project_dir / CONFIG_FILE).read_text()))
    model = front.load(project_dir / front.model_file)
    keras_out, t_keras = _timed(lambda x: front.predict(model, x), floats)
    n = _count(counts)
    keras_out = _keras_columns(keras_out, hls_model, emulator, n)
    bad = np.flatnonzero(np.any(ours != theirs, axis=1))
    first = int(bad[0]) if len(bad) else None
    return Comparison(
        n_events=n,
        n_mismatched=len(bad),
        first_mismatch=first,
        first_layer=_first_differing_layer(hls_model, emulator, _take(counts, slice(first, first + 1))) if first is not None else None,
        qkeras_max_dev_emulator=float(np.max(np.abs(keras_out - emulator.to_float(ours)), initial=0.0)),
        qkeras_max_dev_csim=float(np.max(np.abs(keras_out - emulator.to_float(theirs)), initial=0.0)),
        rates={"emulator": _rate(n, t_emu), "C-simulation": _rate(n, t_csim), front.framework: _rate(n, t_keras)},
        emulator_compile_s=sum(emulator.compile_seconds.values()),
        mismatched_by_output={name: int(np.count_nonzero(ours[:, j] != theirs[:, j])) for name, j in emulator.columns.items()},
        framework=front.framework,
    )


def write_testbench(project_dir, counts: np.ndarray) -> tuple[Path, Path]:
    """hls4ml's ``tb_data`` files: one event per line, space-separated; outputs from the emulator."""
    project_dir = Path(project_dir)
    emulator = Emulator.from_spec(project_dir)
    if len(emulator.input_shapes) > 1:
        msg = f"--write-testbench writes one input file; the network {emulator.spec['name']!r} has {len(emulator.input_shapes)} inputs"
        raise ConfigError(msg)
    outputs = emulator.to_float(emulator.predict_raw(counts))
    inputs = _as_floats(counts).reshape(len(counts), -1)
    tb = project_dir / "tb_data"
    tb.mkdir(exist_ok=True)
    paths = (tb / "tb_input_features.dat", tb / "tb_output_predictions.dat")
    for path, rows in zip(paths, (inputs, outputs)):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(" ".join(repr(float(v)) for v in row) + "\n" for row in rows))
    return paths
