"""``l0emu bench inference`` on tiny settings, and the QONNX export it uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

# TF_USE_LEGACY_KERAS before tf2onnx imports TensorFlow (QKeras needs Keras 2)
pytest.importorskip("l0emu.firmware.keras_env")
pytest.importorskip("onnxruntime")
pytest.importorskip("qonnx")
pytest.importorskip("tf2onnx")

from l0emu import cli  # noqa: E402
from l0emu.cli.run import default_spec_path  # noqa: E402
from l0emu.fixedpoint.emulator import Emulator  # noqa: E402
from l0emu.errors import SpecError  # noqa: E402
from l0emu.fixedpoint.spec import read_spec  # noqa: E402


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def test_qonnx_export_of_the_shipped_student_equals_the_emulator_bit_for_bit():
    from l0emu.validation.qonnx_export import QONNX_DOMAIN, qonnx_model, run_qonnx

    spec = read_spec(default_spec_path())
    model = qonnx_model(spec)
    quant = [n for n in model.graph.node if n.op_type == "Quant"]
    assert quant and all(n.domain == QONNX_DOMAIN for n in quant)
    rng = np.random.default_rng(5)
    pooled = rng.choice([0, 1, 2], p=[0.8, 0.05, 0.15], size=(120, 9, 16)).astype(np.uint8)
    emulator = Emulator.from_spec(spec)
    expected = emulator.output_type.to_float(emulator.predict_raw(pooled))
    got = run_qonnx(model, (pooled * 0.5).astype(np.float32)[..., np.newaxis])
    np.testing.assert_array_equal(got, expected)


def test_qonnx_export_refuses_what_quant_cannot_express():
    from l0emu.validation.qonnx_export import qonnx_model

    spec = read_spec(default_spec_path())
    spec["layers"][1]["result_type"] = "ap_ufixed<4,0,AP_RND,AP_SAT>"
    with pytest.raises(SpecError, match="relu1.*AP_RND"):
        qonnx_model(spec)


def test_bench_inference_writes_its_four_outputs(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = [
        "bench", "inference", "-o", str(out), "--models", "student_q4", "--events", "3000",
        "--backends", "keras", "onnxruntime", "qonnx", "emulator", "gpu", "rtl",
        "--batch-sizes", "1", "64", "100000", "--min-seconds", "0.01",
    ]
    assert cli.main(argv) == 0
    for name in ("bench.json", "bench.csv", "bench.md", "bench_throughput.png"):
        assert (out / name).stat().st_size > 0, name
    document = json.loads((out / "bench.json").read_text())
    sweep = {(p["backend"], p["batch"]): p for p in document["timing"] if p.get("sweep")}
    assert {b for b, _ in sweep} == {"emulator", "keras", "onnxruntime"}
    assert sweep[("emulator", 64)]["events_per_s"] > 0
    assert sweep[("onnxruntime", 64)]["threads"] == "1 (intra_op_num_threads)"  # --onnx-threads default
    assert "skipped" in sweep[("emulator", 100000)]  # more than the sample holds
    backends = {p["backend"] for p in document["timing"]}
    from l0emu.validation.benchmarks.bench_inference import QONNX_BACKEND

    assert {"FPGA da4ml estimate", "FPGA hls4ml, quoted", "FPGA VHDL, quoted", QONNX_BACKEND} <= backends
    physics = {e["backend"]: e for e in document["physics"]}
    assert physics["emulator"]["events"] == physics["keras"]["events"] == 3000
    assert "differing_decisions" not in physics["emulator"]  # the reference
    for backend in ("keras", "onnxruntime", QONNX_BACKEND):
        assert 0 <= physics[backend]["differing_decisions"] <= physics[backend]["events"]
    rtl = [p for p in document["timing"] if p["backend"] == "rtl (Verilator)"]
    assert len(rtl) == 1 and rtl[0]["note"].startswith("not run: --rtl-events 0")  # off by default, and says so
    gpu = [p for p in document["timing"] if p["backend"] == "gpu"]
    if gpu:  # no GPU: a row that says so, never a failure
        assert gpu[0]["note"].startswith("no GPU here")
    assert "| student_q4 | emulator |" in (out / "bench.md").read_text()
    stages = [s["stage"] for s in document["stages"]]
    assert stages[0].startswith("sample: 3,000 events")
    assert "student_q4: emulator (set-up, sweep, 3,000 events for the decisions)" in stages
    assert "Where the wall time went" in (out / "bench.md").read_text()
    # the QONNX graph comes from the spec the emulator runs: said, not sold as an independent check
    assert any("not an independent comparison" in note for note in document["notes"])
    for name in ("bench.json", "bench.md"):  # a result to commit: no directory of this machine in it
        assert str(tmp_path) not in (out / name).read_text(), name


def test_decisions_in_chunks_equal_one_call():
    from l0emu.validation.benchmarks.bench_inference import _fastest_batch, _run_chunked

    spec = read_spec(default_spec_path())
    emulator = Emulator.from_spec(spec)
    rng = np.random.default_rng(7)
    pooled = rng.choice([0, 1, 2], p=[0.8, 0.05, 0.15], size=(1000, 9, 16)).astype(np.uint8)

    def run(x):
        raw = emulator.predict_raw(x)
        return emulator.to_physical(raw)["pt"], raw[:, 0]

    whole = run(pooled)
    chunked = _run_chunked(run, pooled, 64)  # 1000 = 15 x 64 + 40: a short last call
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_run_chunked(lambda x: x.sum(axis=(1, 2)), pooled, 300), pooled.sum(axis=(1, 2)))
    points = [{"batch": 1, "events_per_s": 5.0}, {"batch": 64, "events_per_s": 9.0}, {"batch": 4096, "skipped": "slow"}]
    assert _fastest_batch(points, 1000) == 64
    assert _fastest_batch(points[2:], 1000) == 1000


def test_teacher_events_cap_only_the_teacher(tmp_path):
    import argparse

    from l0emu.errors import ConfigError
    from l0emu.validation.benchmarks.bench_inference import _model_events, add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["-o", "x", "--teacher-events", "500"])
    assert _model_events("teacher", args, 3000) == 500
    assert _model_events("teacher", args, 200) == 200
    assert _model_events("student_q4", args, 3000) == _model_events("student_float", args, 3000) == 3000
    with pytest.raises(ConfigError, match="--teacher-events"):
        main(parser.parse_args(["-o", str(tmp_path / "never"), "--teacher-events", "0"]))
    assert not (tmp_path / "never").exists()


def test_product_ceilings_name_every_arithmetic():
    """The rates `l0emu bench networks` prints before its rows: BLAS double and single, and byte products."""
    from l0emu.validation.benchmarks.bench_networks import blas_ceilings

    rates = blas_ceilings(1)
    assert {"float64", "float32", "ORT MatMulInteger u8xs8"} <= set(rates)
    assert all(rate > 0 for rate in rates.values())
