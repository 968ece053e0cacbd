"""The same networks on every backend: how fast, and do they decide the same thing?

    l0emu bench inference -o DIR [--models teacher student_float student_q4] [--events N]
        [--teacher-events N] [--batch-sizes 1 16 256 4096 65536] [--teacher PATH] [--student-float PATH]

Models: the 9x16 teacher (float), the float student (the shipped student's architecture) and
the shipped 4-bit student (``l0emu/data/default_student``). The teacher and the float student are not shipped: without
``--teacher`` / ``--student-float`` they are trained here, quickly, with the project's own
training code on a generated sample (the output says so, with the settings). Each network is
converted with hls4ml (the shipped student with its ``convert.yml``), which gives the spec
the firmware-exact emulator runs.

Backends, all on the same fragmented events of one generated default sample:

- ``keras``: (Q)Keras ``predict_on_batch``;
- ``onnxruntime``: ONNX Runtime's CPU provider on a ``tf2onnx`` export (QKeras quantizers
  export as float Round/Clip arithmetic, so the 4-bit student runs as fake-quantized floats),
  on ``--onnx-threads`` threads (default one, like the emulator: on the shared 2-core machine
  its default two threads ran the 4-bit student about 3x slower);
- ``qonnx``: the quantized student as a QONNX graph (the ``qonnx`` package's ``Quant``
  nodes, built from the spec; qonnx 1.0 ships no QKeras converter): what ONNX Runtime can run
  of it, and qonnx's own executor on a few events. The graph and the emulator come from the
  same spec, so their agreement checks the export and qonnx's executor, not the emulator: it
  is not an independent comparison, and the tables say so;
- ``emulator``: the numba fixed-point emulator of the spec (firmware-exact, one core);
  the teacher (~620k multiply-adds per event) runs on every backend on the first
  ``--teacher-events`` only, the students on all ``--events``;
- ``csim``: hls4ml's C-simulation (on ``--csim-events``; the teacher only with ``--csim-teacher-events``);
- ``rtl``: da4ml Verilog in Verilator (the quantized student, ``--rtl-events``);
- ``gpu``: ONNX Runtime's CUDA/TensorRT providers or TensorFlow on a GPU, where present
  ("no GPU here" otherwise);
- FPGA rows: latency = da4ml pipeline stages x clock (an estimate: no synthesis here) and
  the figures quoted by the physics study this project grows from, labelled as quoted.

Timing: per backend, model and batch size, calls on that many events are repeated for at
least ``--min-seconds`` (after one warm-up call); latency is the median call, throughput
batch / latency. A batch size whose call would take longer than ``--max-call-seconds``
(extrapolated from the previous one) is skipped and says so. The decisions are then computed
in calls of the sweep's fastest batch size. Each stage's wall time (sample, trainings,
conversion and C-simulation build per network, each backend, QONNX, da4ml and Verilator) is
printed as it ends and written to bench.json and bench.md.

Physics: per backend, on the events it ran, the decisions at each threshold (the emulator in
fixed point as the trigger does, float backends as pT >= threshold), the turn-on plateau,
50 % point and fake rate at 10 GeV, and the number of events whose 10 GeV decision differs
from the firmware-exact emulator of the same network.

Outputs in DIR: bench.json, bench.csv (one row per timing point), bench.md (the tables) and
bench_throughput.png (throughput vs batch size, log-log).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["DESCRIPTION", "add_arguments", "main", "MODELS", "BACKENDS", "QUOTED"]

DESCRIPTION = "the same networks on Keras, ONNX Runtime, QONNX, emulator, C-simulation, Verilator, GPU, FPGA: speed and decisions"

MODELS = ("teacher", "student_float", "student_q4")
BACKENDS = ("keras", "onnxruntime", "qonnx", "emulator", "csim", "rtl", "gpu")
# ../shared/seeds/003_*.txt, "Inference time per event": quoted, not measured here
QUOTED = (
    ("teacher", "GPU (Tesla V100), quoted", 5e-3, "seeds 003: teacher fp32, 5 ms per event on a Tesla V100"),
    ("student_q4", "FPGA hls4ml, quoted", 438e-9, "seeds 003: student 4 bit, 438 ns (hls4ml), xcvu13p"),
    ("student_q4", "FPGA VHDL, quoted", 84e-9, "seeds 003: student 4 bit, 84 ns (their VHDL), xcvu13p"),
)
MAIN_THRESHOLD = 10.0
THRESHOLDS = (5.0, 10.0, 15.0, 20.0)
_CLOCK_NS = 2.0
_LATENCY_CUTOFF = 5.0
_QONNX_EXEC_EVENTS = 200  # qonnx's executor runs node by node in Python
# its rows' label: the graph is exported from the spec the emulator runs, so it is no independent check of it
QONNX_BACKEND = "qonnx export of the spec (qonnx executor)"
# no build time here: the shipped students' Verilator build times are measured in docs/results/rtl/verilator.txt
_RTL_OFF = ("not run: --rtl-events 0 (the default: a Verilator build takes minutes; the RTL results page gives "
            "the shipped students' build times); --rtl-events N builds it and runs N events")


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", required=True, help="output directory (bench.json, bench.csv, bench.md, bench_throughput.png)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="networks (default: all)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="backends (default: all)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the generated default sample for physics (default %(default)s)")
    parser.add_argument("--events-file", help="use this event file instead of generating one")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 4096, 65536], help="batch sizes of the timing sweep")
    parser.add_argument("--csim-events", type=int, default=20_000, help="C-simulation events per student (default %(default)s)")
    parser.add_argument(
        "--csim-teacher-events", type=int, default=0,
        help="C-simulation events of the teacher (default 0: off; its g++ build takes many minutes and it runs ~84 events/s)",
    )
    parser.add_argument(
        "--teacher-events", type=int, default=100_000,
        help="events the teacher runs on every backend (default %(default)s: its emulator runs a few thousand events/s)",
    )
    parser.add_argument(
        "--rtl-events", type=int, default=0,
        help="Verilator events of the quantized student (default 0: off; its Verilator build alone takes minutes on two cores)",
    )
    parser.add_argument(
        "--onnx-threads", type=int, default=1,
        help="ONNX Runtime CPU threads (default %(default)s, like the emulator; 0: ONNX Runtime's default, all cores)",
    )
    parser.add_argument("--min-seconds", type=float, default=0.3, help="timing: repeat calls for at least this long (default %(default)s)")
    parser.add_argument("--max-call-seconds", type=float, default=10.0, help="timing: skip batch sizes whose call would take longer (default %(default)s)")
    parser.add_argument("--teacher", help="trained 9x16 teacher (model.h5 or its directory); default: train one quickly")
    parser.add_argument("--student-float", help="trained float student (model.h5 or its directory); default: train one quickly")
    parser.add_argument("--train-events", type=int, default=50_000, help="events for the quick trainings (default %(default)s)")
    parser.add_argument("--train-epochs", type=int, default=3, help="epochs of the quick trainings (default %(default)s)")
    parser.add_argument("--seed", type=int, default=14, help="seed of the generated samples (default %(default)s)")


# ---------------------------------------------------------------- inputs and models


def _simulate(n, seed, path):
    cmd = [sys.executable, "-m", "l0emu.cli", "simulate", "-n", str(n), "--seed", str(seed), "-o", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        from l0emu.errors import L0emuError

        msg = f"simulating {path} failed:\n{proc.stderr[-2000:]}"
        raise L0emuError(msg)


def _model_file(path) -> Path:
    path = Path(path)
    return path / "model.h5" if path.is_dir() else path


# options that name files: recorded by name, never with one machine's directories
_PATH_OPTIONS = ("output", "events_file", "teacher", "student_float")


def _settings(args) -> dict:
    """The options of this run for bench.json, paths reduced to their last component."""
    settings = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, type(None)))}
    return {k: Path(v).name if k in _PATH_OPTIONS and isinstance(v, str) else v for k, v in settings.items()}


def _given_source(given) -> str:
    """A model given on the command line: its file and directory names and its hash."""
    from l0emu.firmware.train import file_sha256

    path = _model_file(given)
    return f"given: {path.parent.name}/{path.name}, sha256 {file_sha256(path)}"


def _trained(name, given, work, args, log):
    """The model.h5 of ``name``: given, or trained here with the project's training code."""
    if given:
        log[name] = {"source": _given_source(given)}
        return _model_file(given)
    from l0emu.firmware.train import train_run

    sample = work / "train_events.root"
    started = time.perf_counter()
    if not sample.exists():
        _simulate(args.train_events, args.seed + 1, sample)
        _stage(f"training sample: {args.train_events:,} events simulated", started)
    out = work / "models" / name
    architecture = "teacher" if name == "teacher" else _shipped_architecture()
    started = time.perf_counter()
    if not (out / "model.h5").exists():
        train_run([str(sample)], out, architecture=architecture, preset="fast", max_events=args.train_events,
                  epochs=args.train_epochs, seed=args.seed, verbose=False)
        _stage(f"{name}: quick training ({args.train_events:,} events, {args.train_epochs} epochs, fast preset)", started)
    log[name] = {
        "source": f"trained here: l0emu train {sample.name} --architecture {architecture} --preset fast "
        f"--max-events {args.train_events} --epochs {args.train_epochs} --seed {args.seed} (a quick training, not the paper preset)",
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return out / "model.h5"


def _shipped_dir() -> Path:
    """The shipped default student's directory (weights, convert.yml, training record)."""
    from l0emu.cli.run import default_spec_path

    return Path(str(default_spec_path())).parent


def _shipped_architecture() -> str:
    """The shipped student's architecture (its training record): the float student is trained
    in it, so float and 4-bit rows compare one network."""
    return json.loads((_shipped_dir() / "training_record.json").read_text())["config"]["architecture"]


def _networks(args, work, log):
    """name -> (keras model path, convert settings or None)."""
    from l0emu.firmware.hls4ml_bridge import read_convert_config

    shipped = _shipped_dir()
    networks = {}
    for name in args.models:
        if name == "student_q4":
            networks[name] = (shipped / "keras_model.h5", read_convert_config(shipped / "convert.yml"))
            log[name] = {"source": f"shipped: l0emu/data/{shipped.name}"}
        else:
            given = args.teacher if name == "teacher" else args.student_float
            networks[name] = (_trained(name, given, work, args, log), None)
    return networks


class Network:
    """One network: Keras model, hls4ml project (C-simulation) and spec (emulator)."""

    def __init__(self, name, model_path, settings, work, need_csim):
        from l0emu.fixedpoint.emulator import Emulator
        from l0emu.firmware.hls4ml_bridge import convert
        from l0emu.firmware.models import load_model

        self.name = name
        self.model_path = Path(model_path)
        self.keras = load_model(str(model_path))
        started = time.perf_counter()
        self.hls_model, self.spec = convert(model_path, work / "fw" / name, settings, name=name, compile=need_csim)
        self.convert_seconds = time.perf_counter() - started
        self.emulator = Emulator.from_spec(self.spec)
        self.pt = self.emulator.outputs["pt"]
        self.stride = int(self.spec["preprocessing"]["fragment"]["stride"])
        self._onnx = None

    def onnx(self):
        """``(onnx_model, seconds)`` of the tf2onnx export, made once: ONNX Runtime and the GPU row share it."""
        if self._onnx is None:
            self._onnx = _onnx_export(self)
        return self._onnx

    def pt_gev(self, y):
        """Physical pT from float network outputs."""
        return self.pt["offset"] + self.pt["scale"] * y[:, self.pt["index"]]


# ---------------------------------------------------------------- backends


def _float(pooled):
    from l0emu.trigger.images import pooled_to_float

    return pooled_to_float(pooled)


def _keras_backend(net):
    def run(pooled):
        return net.pt_gev(net.keras.predict_on_batch(_float(pooled)))

    return run, {}


def _onnx_session(onnx_model, threads=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _onnx_export(net):
    import tf2onnx

    from l0emu.firmware.keras_env import tf

    signature = (tf.TensorSpec((None, *net.keras.input_shape[1:]), tf.float32, name="x"),)
    started = time.perf_counter()
    onnx_model, _ = tf2onnx.convert.from_keras(net.keras, input_signature=signature, opset=13)
    return onnx_model, time.perf_counter() - started


def _onnxruntime_backend(net, threads):
    import onnxruntime as ort

    onnx_model, seconds = net.onnx()
    session = _onnx_session(onnx_model, threads)
    ops = sorted({node.op_type for node in onnx_model.graph.node})

    def run(pooled):
        return net.pt_gev(session.run(None, {"x": _float(pooled)})[0])

    return run, {"export": f"tf2onnx {seconds:.1f} s, opset 13, ops: {', '.join(ops)}", "onnxruntime": ort.__version__,
                 "threads": f"{threads} (intra_op_num_threads)" if threads else "ONNX Runtime default (all cores)"}


def _emulator_backend(net):
    def run(pooled):
        raw = net.emulator.predict_raw(pooled)
        return net.emulator.to_physical(raw)["pt"], raw[:, net.pt["index"]]

    return run, {"threads": "one (numba, no parallel loops)"}


def _csim_backend(net):
    from l0emu.firmware.hls4ml_bridge import csim_raw

    def run(pooled):
        raw = csim_raw(net.hls_model, _float(pooled), net.spec)
        return net.emulator.to_physical(raw)["pt"], raw[:, net.pt["index"]]

    return run, {"note": f"hls4ml project converted and compiled in {net.convert_seconds:.0f} s"}


def _gpu_row():
    """Where a GPU is, which providers; otherwise why not."""
    import onnxruntime as ort

    from l0emu.firmware.keras_env import tf

    providers = [p for p in ort.get_available_providers() if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    devices = tf.config.list_physical_devices("GPU")
    if not providers and not devices:
        return None, (
            f"no GPU here: ONNX Runtime providers {ort.get_available_providers()}, "
            "TensorFlow sees no GPU device (tensorflow-cpu)"
        )
    return providers, f"GPU present: ONNX Runtime providers {providers}, TensorFlow devices {[d.name for d in devices]}"


def _gpu_backend(net, providers):
    import onnxruntime as ort

    onnx_model, _ = net.onnx()
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=[*providers, "CPUExecutionProvider"])

    def run(pooled):
        return net.pt_gev(session.run(None, {"x": _float(pooled)})[0])

    return run, {"providers": session.get_providers()}


# ---------------------------------------------------------------- timing


def _time_batch(run, pooled, batch, args):
    x = pooled[:batch]
    run(x)  # warm-up: JIT, graph building, allocation
    times = []
    started = time.perf_counter()
    while not times or (time.perf_counter() - started < args.min_seconds and len(times) < 1000):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    latency = statistics.median(times)
    return {"latency_s": latency, "events_per_s": len(x) / latency, "calls": len(times)}


def _sweep(run, pooled, args, cap):
    """Timing points over the batch sizes, skipping those beyond ``cap`` events or too slow."""
    points = []
    rate = None
    for batch in sorted(args.batch_sizes):
        if batch > min(cap, len(pooled)):
            points.append({"batch": batch, "skipped": f"more than the {min(cap, len(pooled)):,} events this backend runs"})
            continue
        if rate is not None and batch / rate > args.max_call_seconds:
            points.append({"batch": batch, "skipped": f"a call would take about {batch / rate:.0f} s (> --max-call-seconds)"})
            continue
        point = _time_batch(run, pooled, batch, args)
        rate = point["events_per_s"]
        points.append({"batch": batch, **point})
    return points


# ---------------------------------------------------------------- physics


def _physics(pt_gev, fired_raw, truth, n):
    """Plateau, 50 % point, fake rate at each threshold for the first ``n`` events."""
    from l0emu.results.rates import RateAssumptions, TriggerCounts, rate_table
    from l0emu.schema import threshold_branch

    columns = {"true_pt": truth[:n]}
    for t in THRESHOLDS:
        columns[threshold_branch(t)] = fired_raw[t] if fired_raw is not None else pt_gev >= t
    counts = TriggerCounts.from_columns(columns, THRESHOLDS)
    rows = rate_table(counts, THRESHOLDS, RateAssumptions())
    return {row["threshold_gev"]: row for row in rows}, columns


def _decisions(net, pt_raw):
    return {t: pt_raw >= net.emulator.threshold_mantissa("pt", t) for t in THRESHOLDS}


def _physics_entry(backend, net, outputs, truth, reference):
    """Physics summary of one backend on one network, compared with the emulator's decisions."""
    from l0emu.schema import threshold_branch

    if isinstance(outputs, tuple):  # fixed-point backends: thresholds as raw integers
        pt_gev, pt_raw = outputs
        rows, columns = _physics(pt_gev, _decisions(net, pt_raw), truth, len(pt_raw))
    else:
        rows, columns = _physics(outputs, None, truth, len(outputs))
    n = len(columns["true_pt"])
    branch = threshold_branch(MAIN_THRESHOLD)
    main = rows[MAIN_THRESHOLD]
    entry = {
        "model": net.name, "backend": backend, "events": n,
        "plateau_efficiency": main["plateau_efficiency"], "half_efficiency_gev": main["half_efficiency_gev"],
        "fake_rate": main["fake_rate"], "background_fired": main["background_fired"], "background_events": main["background_events"],
    }
    if reference is not None:
        differ = columns[branch] != reference[branch][:n]
        entry["differing_decisions"] = int(differ.sum())
        entry["differing_fraction"] = float(differ.mean()) if n else float("nan")
        entry["differing_any_threshold"] = int(
            sum(columns[threshold_branch(t)] != reference[threshold_branch(t)][:n] for t in THRESHOLDS).astype(bool).sum()
        )
    return entry, columns


# ---------------------------------------------------------------- FPGA and QONNX


def _fpga_rows(net, rtl_events, pooled, work, args, timing, physics, reference, truth, notes):
    """da4ml latency estimate, and (``rtl`` backend) Verilator on ``rtl_events`` events."""
    from l0emu.firmware import rtl

    started = time.perf_counter()
    (work / "rtl" / net.name).mkdir(parents=True, exist_ok=True)
    build, summary = rtl.build_rtl(net.spec, work / "rtl" / net.name, _LATENCY_CUTOFF, _CLOCK_NS)
    trace_seconds = time.perf_counter() - started
    latency = summary["latency_ns"] * 1e-9
    timing.append({
        "model": net.name, "backend": "FPGA da4ml estimate", "batch": 1, "latency_s": latency, "events_per_s": 1e9 / _CLOCK_NS,
        "note": f"{summary['stages']} pipeline stages x {_CLOCK_NS:g} ns (cutoff {_LATENCY_CUTOFF:g}); one event per clock "
        "(fully pipelined, II = 1); estimate, no synthesis run here",
    })
    if rtl_events <= 0:
        if "rtl" in args.backends:
            timing.append({"model": net.name, "backend": "rtl (Verilator)", "note": _RTL_OFF})
        return
    from l0emu.fixedpoint.spec import spec_inputs

    x = _float(pooled[:rtl_events]).reshape((-1, *spec_inputs(net.spec)[0]["shape"]))
    raw, compile_seconds, simulate_seconds = rtl.simulate(build, x, _LATENCY_CUTOFF, _CLOCK_NS)
    pt_raw = raw[:, net.pt["index"]]
    timing.append({
        "model": net.name, "backend": "rtl (Verilator)", "batch": len(x), "latency_s": simulate_seconds,
        "events_per_s": len(x) / simulate_seconds,
        "note": f"one call on all {len(x):,} events, one thread; da4ml trace {trace_seconds:.0f} s, Verilator build {compile_seconds:.0f} s",
    })
    entry, _ = _physics_entry("rtl (Verilator)", net, (net.emulator.to_physical(raw)["pt"], pt_raw), truth, reference)
    physics.append(entry)


def _ort_verdict(model, what):
    try:
        _onnx_session(model.model)
    except Exception as err:  # onnxruntime raises its own exception types for unknown ops
        return f"ONNX Runtime cannot load {what} ({str(err).splitlines()[0][-90:]})"
    return f"ONNX Runtime loads {what}"


def _qonnx_rows(net, pooled, truth, reference, timing, physics, notes, work):
    """The quantized student as QONNX: what ONNX Runtime runs of it, and qonnx's executor."""
    from l0emu.validation.qonnx_export import qonnx_model, run_qonnx, to_qcdq

    started = time.perf_counter()
    model = qonnx_model(net.spec)
    path = work / f"{net.name}.qonnx.onnx"
    model.save(str(path))
    export_seconds = time.perf_counter() - started
    ops = sorted({node.op_type for node in model.graph.node})
    quant = sum(node.op_type == "Quant" for node in model.graph.node)
    ort_note = _ort_verdict(model, "the QONNX graph")
    qcdq, left = to_qcdq(model)
    ort_note += (f"; after qonnx's QuantToQCDQ {left} of {quant} Quant nodes remain (it converts widths 2-8 only; "
                 f"the rest are the wider accumulators and output), and {_ort_verdict(qcdq, 'the QCDQ graph')}")
    notes.append(f"{net.name}: QONNX export from the spec, the emulator's own source, so the qonnx row's agreement "
                 "checks the export and qonnx's executor, not the emulator (not an independent comparison) "
                 f"({export_seconds:.1f} s, {path.name}): {len(model.graph.node)} nodes, "
                 f"{quant} Quant; ops {', '.join(ops)}. {ort_note}.")
    n = min(_QONNX_EXEC_EVENTS, len(pooled))

    def run(x):
        return net.pt_gev(run_qonnx(model, _float(x)))

    started = time.perf_counter()
    pt = run(pooled[:n])
    seconds = time.perf_counter() - started
    timing.append({"model": net.name, "backend": QONNX_BACKEND, "batch": n, "latency_s": seconds,
                   "events_per_s": n / seconds, "note": "qonnx.core.onnx_exec, node by node in Python"})
    entry, _ = _physics_entry(QONNX_BACKEND, net, pt, truth, reference)
    physics.append(entry)


# ---------------------------------------------------------------- outputs


def _write_csv(path, timing):
    fields = ["model", "backend", "batch", "latency_s", "events_per_s", "calls", "skipped", "note"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(timing)


def _fmt_rate(value):
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _fmt_latency(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _markdown(document) -> str:
    sweep = [p for p in document["timing"] if p.get("sweep")]
    batches = sorted({p["batch"] for p in sweep})
    lines = [f"# l0emu bench inference ({document['machine']})", ""]
    lines += ["Throughput in events/s (latency per call) by batch size; measured here unless labelled quoted.", ""]
    lines.append("| model | backend | " + " | ".join(str(b) for b in batches) + " |")
    lines.append("|---|---|" + "---|" * len(batches))
    keys = list(dict.fromkeys((p["model"], p["backend"]) for p in sweep))
    for model, backend in keys:
        cells = []
        for b in batches:
            point = next((p for p in sweep if p["model"] == model and p["backend"] == backend and p["batch"] == b), None)
            if point is None or "skipped" in point:
                cells.append("–")
            else:
                cells.append(f"{_fmt_rate(point['events_per_s'])} ({_fmt_latency(point['latency_s'])})")
        lines.append(f"| {model} | {backend} | " + " | ".join(cells) + " |")
    lines += ["", "| model | backend | batch | events/s | latency | note |", "|---|---|---|---|---|---|"]
    for p in document["timing"]:
        if p.get("sweep"):
            continue
        rate = _fmt_rate(p["events_per_s"]) if "events_per_s" in p else "–"
        latency = _fmt_latency(p["latency_s"]) if "latency_s" in p else "–"
        lines.append(f"| {p['model']} | {p['backend']} | {p.get('batch', '–')} | {rate} | {latency} | {p.get('note', '')} |")
    lines += ["", f"Physics at {MAIN_THRESHOLD:g} GeV on the events each backend ran (first N of the same sample); "
              "differing: events whose decision differs from the firmware-exact emulator of the same network.", ""]
    lines.append("| model | backend | events | plateau eff | 50 % point [GeV] | fake rate | differing decisions | differing, any threshold |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for e in document["physics"]:
        differ = f"{e['differing_decisions']:,} ({100 * e['differing_fraction']:.3g} %)" if "differing_decisions" in e else "reference"
        any_t = f"{e['differing_any_threshold']:,}" if "differing_any_threshold" in e else "–"
        lines.append(
            f"| {e['model']} | {e['backend']} | {e['events']:,} | {e['plateau_efficiency']:.4f} | {e['half_efficiency_gev']:.2f} | "
            f"{e['background_fired']:,} / {e['background_events']:,} | {differ} | {any_t} |"
        )
    lines += ["", "Notes:", ""] + [f"- {n}" for n in document["notes"]]
    lines += ["", f"Where the wall time went ({document['wall_seconds']:.0f} s in all; first calls include numba's compile "
              "where its kernel cache was cold):", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']:.1f} |" for s in document["stages"]]
    return "\n".join(lines) + "\n"


def _plot(path, timing):
    import matplotlib

    matplotlib.use("Agg") if matplotlib.get_backend().lower() != "agg" else None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    keys = list(dict.fromkeys((p["model"], p["backend"]) for p in timing if p.get("sweep")))
    for model, backend in keys:
        points = [p for p in timing if p.get("sweep") and p["model"] == model and p["backend"] == backend and "events_per_s" in p]
        if points:
            ax.plot([p["batch"] for p in points], [p["events_per_s"] for p in points], "o-", ms=3, label=f"{model}: {backend}")
    for p in timing:
        if not p.get("sweep") and "events_per_s" in p and p["backend"].startswith("FPGA"):
            ax.axhline(p["events_per_s"], ls=":", color="grey")
            ax.annotate(f"{p['model']}: {p['backend']}", (1, p["events_per_s"]), fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (events per call)")
    ax.set_ylabel("throughput [events/s]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def _sample(args, work):
    from l0emu.trigger.events import load_events

    path = Path(args.events_file) if args.events_file else work / "events.root"
    if not args.events_file and not path.exists():
        _simulate(args.events, args.seed, path)
    chunk = load_events(str(path), args.events)
    return path, chunk


def _fastest_batch(points, n):
    """The batch size with the highest measured throughput (``n`` when none was timed)."""
    timed = [p for p in points if "events_per_s" in p]
    return max(timed, key=lambda p: p["events_per_s"])["batch"] if timed else n


def _run_chunked(run, pooled, batch):
    """``run`` over all of ``pooled`` in calls of ``batch`` events: bounded memory, and the
    physics pass costs what the sweep's best point says."""
    import numpy as np

    parts = [run(pooled[i:i + batch]) for i in range(0, len(pooled), batch)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts))
    return np.concatenate(parts)


def _run_backend(backend, net, pooled, truth, reference, args, timing, physics, cap, maker):
    started = time.perf_counter()
    run, info = maker(net)
    points = _sweep(run, pooled, args, cap)
    timing.extend({"model": net.name, "backend": backend, "sweep": True, **info, **p} for p in points)
    n = min(cap, len(pooled))
    outputs = _run_chunked(run, pooled[:n], _fastest_batch(points, n))
    entry, columns = _physics_entry(backend, net, outputs, truth, reference)
    physics.append(entry)
    _stage(f"{net.name}: {backend} (set-up, sweep, {n:,} events for the decisions)", started)
    return columns


_STAGES = []  # (what, seconds) of this run, in order: where the wall time went


def _stage(what, started):
    seconds = time.perf_counter() - started
    _STAGES.append((what, seconds))
    print(f"  {seconds:6.1f} s  {what}", flush=True)


def _csim_cap(name, args):
    return args.csim_teacher_events if name == "teacher" else args.csim_events


def _network(name, model_path, settings, work, args):
    started = time.perf_counter()
    csim = "csim" in args.backends and _csim_cap(name, args) > 0
    net = Network(name, model_path, settings, work, need_csim=csim)
    _stage(f"{name}: Keras load, hls4ml conversion" + (" and C-simulation build" if csim else " (no C-simulation build: not run)"), started)
    return net


def _model_events(name, args, total):
    """Events a network runs on its float backends and emulator: the teacher is capped."""
    return min(args.teacher_events, total) if name == "teacher" else total


def _model_rows(net, pooled, truth, args, work, timing, physics, notes, gpu):
    """Every requested backend on one network; the emulator first (the reference)."""
    n = len(pooled)
    csim_cap = _csim_cap(net.name, args)
    reference = _run_backend("emulator", net, pooled, truth, None, args, timing, physics, n, _emulator_backend)
    makers = {
        "keras": (_keras_backend, n), "onnxruntime": (lambda m: _onnxruntime_backend(m, args.onnx_threads), n),
        "csim": (_csim_backend, csim_cap),
    }
    for backend in ("keras", "onnxruntime", "csim"):
        if backend in args.backends and (backend != "csim" or csim_cap > 0):
            maker, cap = makers[backend]
            _run_backend(backend, net, pooled, truth, reference, args, timing, physics, cap, maker)
    if "gpu" in args.backends and gpu[0]:
        _run_backend("gpu (ONNX Runtime)", net, pooled, truth, reference, args, timing, physics, n, lambda m: _gpu_backend(m, gpu[0]))
    quantized = net.name == "student_q4"
    if quantized and "qonnx" in args.backends:
        started = time.perf_counter()
        _qonnx_rows(net, pooled, truth, reference, timing, physics, notes, work)
        _stage(f"{net.name}: QONNX export, ONNX Runtime checks, qonnx executor on {min(_QONNX_EXEC_EVENTS, n)} events", started)
    if quantized:
        started = time.perf_counter()
        rtl_events = min(args.rtl_events, n) if "rtl" in args.backends else 0
        _fpga_rows(net, rtl_events, pooled, work, args, timing, physics, reference, truth, notes)
        _stage(f"{net.name}: da4ml trace" + (f", Verilator build and {rtl_events:,} events" if rtl_events else " (no Verilator run)"), started)


def main(args) -> int:
    import numpy as np

    from l0emu.errors import ConfigError
    from l0emu.firmware import keras_env  # noqa: F401  (TF_USE_LEGACY_KERAS before tf2onnx imports TensorFlow)
    from l0emu.trigger.images import fragment_hits

    if min(args.events, args.teacher_events, *args.batch_sizes) < 1 or args.onnx_threads < 0:
        msg = (f"--events, --teacher-events and --batch-sizes must be >= 1 and --onnx-threads >= 0, got {args.events}, "
               f"{args.teacher_events}, {args.batch_sizes} and {args.onnx_threads}")
        raise ConfigError(msg)
    work = Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _STAGES.clear()
    log = {}
    path, chunk = _sample(args, work)
    _stage(f"sample: {len(chunk):,} events of {path.name} generated or read, and loaded", started)
    networks = _networks(args, work, log)
    timing, physics, notes = [], [], []
    gpu = _gpu_row() if "gpu" in args.backends else (None, None)
    if "gpu" in args.backends and gpu[0] is None:
        for name in networks:
            timing.append({"model": name, "backend": "gpu", "note": gpu[1]})
    for name, (model_path, settings) in networks.items():
        print(f"{name}: {_model_events(name, args, len(chunk)):,} events of {path.name}; backends {', '.join(args.backends)}", flush=True)
        net = _network(name, model_path, settings, work, args)
        fragmented = time.perf_counter()
        _, pooled = fragment_hits(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, net.stride)
        pooled = pooled[:_model_events(name, args, len(pooled))]
        _stage(f"{name}: fragmenting the sample (stride {net.stride})", fragmented)
        _model_rows(net, pooled, np.asarray(chunk.true_pt), args, work, timing, physics, notes, gpu)
    for model, backend, seconds, text in QUOTED:
        if model in networks:
            timing.append({"model": model, "backend": backend, "batch": 1, "latency_s": seconds, "events_per_s": 1.0 / seconds, "note": text})
    notes.insert(0, f"sample: {len(chunk):,} events of {path.name} (default scenario, seed {args.seed}); emulator, Keras and ONNX Runtime "
                 f"run all of them (the teacher the first {min(args.teacher_events, len(chunk)):,}), "
                 f"the C-simulation the first {args.csim_events:,} (teacher {args.csim_teacher_events:,}), "
                 f"Verilator the first {min(args.rtl_events, len(chunk)):,}, qonnx's executor the first {_QONNX_EXEC_EVENTS}")
    notes += [f"{name}: {entry['source']}" + (f" ({entry['train_seconds']} s)" if "train_seconds" in entry else "") for name, entry in log.items()]
    if gpu[1]:
        notes.append(gpu[1])
    document = {
        "machine": f"{platform.node() or 'this machine'}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "settings": _settings(args),
        "timing": timing, "physics": physics, "notes": notes,
        "stages": [{"stage": what, "seconds": seconds} for what, seconds in _STAGES],
        "wall_seconds": time.perf_counter() - started,
    }
    (work / "bench.json").write_text(json.dumps(_jsonable(document), indent=1) + "\n")
    _write_csv(work / "bench.csv", timing)
    (work / "bench.md").write_text(_markdown(document))
    _plot(work / "bench_throughput.png", timing)
    print((work / "bench.md").read_text())
    print(f"wrote {work}/bench.json, bench.csv, bench.md, bench_throughput.png in {document['wall_seconds']:.0f} s")
    return 0


def _jsonable(value):
    from l0emu.util.serialize import jsonable

    return jsonable(value)
