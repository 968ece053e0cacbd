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
from l0emu.cli_run import default_spec_path  # noqa: E402
from l0emu.emulator import Emulator  # noqa: E402
from l0emu.errors import SpecError  # noqa: E402
from l0emu.spec import read_spec  # noqa: E402


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
        "--backends", "keras", "onnxruntime", "qonnx", "emulator", "gpu",
        "--batch-sizes", "1", "64", "100000", "--min-seconds", "0.01",
    ]
    assert cli.main(argv) == 0
    for name in ("bench.json", "bench.csv", "bench.md", "bench_throughput.png"):
        assert (out / name).stat().st_size > 0, name
    document = json.loads((out / "bench.json").read_text())
    sweep = {(p["backend"], p["batch"]): p for p in document["timing"] if p.get("sweep")}
    assert {b for b, _ in sweep} == {"emulator", "keras", "onnxruntime"}
    assert sweep[("emulator", 64)]["events_per_s"] > 0
    assert "skipped" in sweep[("emulator", 100000)]  # more than the sample holds
    backends = {p["backend"] for p in document["timing"]}
    assert {"FPGA da4ml estimate", "FPGA hls4ml, quoted", "FPGA VHDL, quoted", "qonnx (qonnx executor)"} <= backends
    physics = {e["backend"]: e for e in document["physics"]}
    assert physics["emulator"]["events"] == physics["keras"]["events"] == 3000
    assert "differing_decisions" not in physics["emulator"]  # the reference
    for backend in ("keras", "onnxruntime", "qonnx (qonnx executor)"):
        assert 0 <= physics[backend]["differing_decisions"] <= physics[backend]["events"]
    gpu = [p for p in document["timing"] if p["backend"] == "gpu"]
    if gpu:  # no GPU: a row that says so, never a failure
        assert gpu[0]["note"].startswith("no GPU here")
    assert "| student_q4 | emulator |" in (out / "bench.md").read_text()
