"""The emulator against ONNX Runtime's float inference on networks of the hls4ml ecosystem, one core.

    taskset -c 0 l0emu bench networks [--events N] [--repeats R] [--keep DIR]

Builds four float Keras networks with deterministic random weights (no training: throughput
does not depend on what was learnt, only on the weights' bit patterns, which hls4ml's
``ap_fixed<16,6>`` fills either way) and converts each with hls4ml's defaults
(``ap_fixed<16,6>`` everywhere, accumulators wide enough to be exact):

- ``conv_tagger``: a conv2d jet-tagger-like net, 16x16x1 -> two 3x3 convolutions with max
  pooling -> 16 -> 5 (949 parameters);
- ``dense_bn``: a dense jet tagger with batch normalization, 16 -> 64 -> 32 -> 32 -> 5 (4,901);
- ``dense_wide``: 16 x 100 x 100 x 100 x 100 x 100 x 5 (42,605);
- ``teacher``: the 9x16 teacher architecture of ``l0emu bench inference`` (10,655).

Per network, on the same random inputs (normal, sigma 3, so every input bit toggles): the
emulator as built (matrix stages where :mod:`l0emu.fixedpoint._batched` chooses them), the
emulator's single generated kernel, and ONNX Runtime (tf2onnx, opset 13, one thread) on the
float model in calls of 256 and 4,096 events; all four called in turn ``--repeats`` times, the
median of each kept (interleaved, so a shared machine's load moves them alike); and the number of output
bits where the two emulator paths differ (must be 0). :func:`measure` is shared with
``l0emu bench emulator --spec``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["DESCRIPTION", "NETWORKS", "add_arguments", "main", "measure"]

DESCRIPTION = "emulator vs ONNX Runtime float on conv/dense jet taggers, a wide MLP and the teacher, one core"

NETWORKS = ("conv_tagger", "dense_bn", "dense_wide", "teacher")
_EVENTS = {"teacher": 20_000, "conv_tagger": 100_000}  # the others: --events


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="events per dense network (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of timings, each backend once per round in turn; the median is kept (default %(default)s)")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--keep", metavar="DIR", help="build the networks into DIR and keep them (default: a temporary directory)")


def _build(name, rng):
    from l0emu.firmware.keras_env import keras
    from l0emu.firmware.models import build_teacher

    layers = keras.layers
    if name == "teacher":
        return build_teacher(name="teacher")
    if name == "conv_tagger":
        inputs = keras.Input((16, 16, 1))
        h = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, activation="relu")(inputs))
        h = layers.MaxPooling2D(2)(layers.Conv2D(8, 3, activation="relu")(h))
        h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
        return keras.Model(inputs, layers.Dense(5)(h), name=name)
    inputs = keras.Input((16,))
    h = inputs
    for width in (64, 32, 32) if name == "dense_bn" else (100,) * 5:
        h = layers.Dense(width)(h)
        if name == "dense_bn":
            h = layers.BatchNormalization()(h)
        h = layers.Activation("relu")(h)
    return keras.Model(inputs, layers.Dense(5)(h), name=name)


def _randomize(model, rng):
    """Glorot kernels as Keras draws them, and biases and batch-norm statistics away from their
    initial 0/1 (so no layer is an identity hls4ml could fold away)."""
    from l0emu.firmware.keras_env import keras

    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = weights[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.2, shape), rng.normal(0, 0.5, shape), rng.uniform(0.5, 2, shape)])
        elif len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype("float32")])


def build_networks(names, directory: Path) -> dict:
    """name -> converted project directory (spec.json and keras_model.h5)."""
    import numpy as np

    from l0emu.firmware.hls4ml_bridge import convert

    rng = np.random.default_rng(0)
    projects = {}
    for name in names:
        project = directory / name
        if not (project / "spec.json").is_file():
            model = _build(name, rng)
            _randomize(model, rng)
            model.save(str(directory / f"{name}.h5"))
            convert(directory / f"{name}.h5", project, None, name=name)
        projects[name] = project
    return projects


def _best(function, x, repeats) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(x)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def interleaved_rates(functions: dict, x, repeats) -> dict:
    """Median events/s of each function, called in turn ``repeats`` times on ``x``: on a shared
    machine the load then moves every function's timings alike, and the medians' ratios hold."""
    import numpy as np

    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function(x)
            seconds[name].append(time.perf_counter() - started)
    return {name: len(x) / float(np.median(times)) for name, times in seconds.items()}


def _onnx_runner(keras_path, shape, batch):
    # first: it makes tf.keras tf-keras for QKeras before tf2onnx imports TensorFlow
    from l0emu.firmware.models import load_model

    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    model = load_model(str(keras_path))
    signature = (tf.TensorSpec((None, *shape), tf.float32, name="x"),)
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=13)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x):
        for start in range(0, len(x), batch):
            session.run(None, {name: x[start : start + batch]})

    return run


def measure(project: Path, events: int, repeats: int) -> dict:
    """Rates (events/s) of the emulator, its single kernel and ONNX Runtime on one network, and
    the differing output bits between the emulator's two paths."""
    import numpy as np

    from l0emu.fixedpoint.emulator import Emulator
    from l0emu.fixedpoint.spec import read_spec, spec_inputs

    spec = read_spec(project)
    shape = tuple(spec_inputs(spec)[0]["shape"])
    x = np.random.default_rng(1).normal(0, 3, (events, *shape)).astype(np.float32)
    started = time.perf_counter()
    emulator = Emulator(spec)
    kernel = lambda v: emulator._run(emulator._kernel, v, lambda n: (), "network")  # noqa: E731
    staged, single = emulator.predict_raw(x), kernel(x)
    functions = {"emulator": emulator.predict_raw, "emulator_single_kernel": kernel}
    keras_path = project / "keras_model.h5"
    if keras_path.is_file():
        functions.update({f"onnxruntime_float_b{batch}": _onnx_runner(keras_path, shape, batch) for batch in (256, 4096)})
    row = {
        "events": events,
        "stages": [type(s).__name__.strip("_") for s in emulator._staged.stages] if emulator._staged else "one kernel",
        "build_and_first_call_s": round(time.perf_counter() - started, 1),
        "differing_bits": int(np.unpackbits((staged ^ single).view(np.uint8)).sum()),
        "load_average_before": os.getloadavg()[0],
        **interleaved_rates(functions, x, repeats),
        "load_average_after": os.getloadavg()[0],
    }
    return row


def print_row(name, row) -> None:
    ort = max((v for k, v in row.items() if k.startswith("onnxruntime")), default=None)
    ratio = f"{row['emulator'] / ort:5.2f}x" if ort else "  n/a"
    print(f"{name:12s} emulator {row['emulator']:12,.0f} ev/s  single kernel {row['emulator_single_kernel']:12,.0f} ev/s  "
          f"ONNX Runtime float {ort or float('nan'):12,.0f} ev/s (best batch)  emulator/ORT {ratio}  "
          f"differing bits {row['differing_bits']}  stages {row['stages']}", flush=True)


def _matmul_rate(product, repeats) -> float:
    best = float("inf")
    for _ in range(10 * repeats):
        started = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - started)
    return 4096 * 100 * 100 / best


def _int8_products():
    """One-thread byte products with int32 sums, where installed: ONNX Runtime's MatMulInteger
    (uint8 x int8, its VNNI/AMX kernels) and torch's ``_int_mm`` (int8 x int8, oneDNN)."""
    import numpy as np

    products = {}
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [None, 100])
    b = helper.make_tensor_value_info("b", TensorProto.INT8, [100, 100])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [None, 100])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"a": np.ones((4096, 100), np.uint8), "b": np.ones((100, 100), np.int8)}
    products["ORT MatMulInteger u8xs8"] = lambda: session.run(None, feeds)
    try:
        import torch
    except ImportError:
        return products
    torch.set_num_threads(1)
    ta, tb = torch.ones((4096, 100), dtype=torch.int8), torch.ones((100, 100), dtype=torch.int8)
    products["torch _int_mm s8xs8"] = lambda: torch._int_mm(ta, tb)
    return products


def blas_ceilings(repeats: int) -> dict:
    """Multiply-adds per second of one-thread products on 4096x100 @ 100x100: BLAS in double and
    single precision (the exact matrix stages' ceiling against float inference's) and the byte
    products with integer sums that exact arithmetic could use instead. An exact product of two
    16-bit mantissas needs at least four byte products (each operand split in two bytes), so
    those run at a quarter of the byte rate at best."""
    import numpy as np

    from l0emu.fixedpoint._batched import _blas_controller

    rates = {}
    with _blas_controller().limit(limits=1, user_api="blas"):
        for dtype in (np.float64, np.float32):
            a, b = np.ones((4096, 100), dtype), np.ones((100, 100), dtype)
            rates[np.dtype(dtype).name] = _matmul_rate(lambda: np.matmul(a, b), repeats)  # noqa: B023 (called at once)
    for name, product in _int8_products().items():
        product()
        rates[name] = _matmul_rate(product, repeats)
    return rates


def input_conversion_ns(repeats: int) -> dict:
    """ns per value of the generic ``float_to_mantissa`` and the float32 path the emulator takes,
    on a million normal(0, 3) float32 values into ``ap_fixed<16,6>``."""
    import numpy as np

    from l0emu.fixedpoint._float_inputs import float32_to_mantissa
    from l0emu.fixedpoint.aptypes import parse_type
    from l0emu.fixedpoint.casts import float_to_mantissa

    t = parse_type("ap_fixed<16,6>")
    x = np.random.default_rng(2).normal(0, 3, 1_000_000).astype(np.float32)
    functions = {"float_to_mantissa": lambda v: float_to_mantissa(v.astype(np.float64), t),
                 "float32_to_mantissa": lambda v: float32_to_mantissa(v, t)}
    for function in functions.values():
        function(x[:10])  # compile
    return {name: 1e9 / _best(function, x, repeats) for name, function in functions.items()}


def main(args) -> int:
    # one numba thread, set before numba is first imported (l0emu's CLI imports none before this)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        projects = build_networks(args.networks, directory)
        print(f"one core (NUMBA_NUM_THREADS=1, ONNX Runtime 1 thread; run under taskset -c 0); medians of {args.repeats} interleaved rounds")
        ceilings = blas_ceilings(args.repeats)
        print("one thread, 4096x100 @ 100x100 products: " + ", ".join(f"{k} {v / 1e9:.1f} G multiply-adds/s" for k, v in ceilings.items()))
        conversion = input_conversion_ns(args.repeats)
        print("float inputs into ap_fixed<16,6>: " + ", ".join(f"{k} {v:.1f} ns/value" for k, v in conversion.items()))
        rows = {}
        for name, project in projects.items():
            rows[name] = measure(project, _EVENTS.get(name, args.events), args.repeats)
            print_row(name, rows[name])
    print(json.dumps(rows))
    return 1 if any(row["differing_bits"] for row in rows.values()) else 0
