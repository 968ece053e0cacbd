"""The pareto study's bookkeeping: commands from the study script, the targets, the report files."""

import csv
import json

import pytest

from l0emu.errors import InputFileError
from l0emu.validation.pareto import FORMAT, HGQ2_EXACT, LUT_BUDGET, evaluate, meets_targets, study_commands, write_report


def scenario(plateau, fake_ul):
    return {"plateau": plateau, "plateau_low": plateau - 0.001, "plateau_high": plateau + 0.001, "half_efficiency_pt": 9.8,
            "fake_rate": fake_ul / 2, "fake_fired": 3, "fake_total": 50_000, "fake_ul": fake_ul}  # fmt: skip


def row(name, luts, default, hard, quantizer="hgq2", latency_ns=20.0):
    r = {"name": name, "label": f"{name} label", "architecture": "student-wider", "quantizer": quantizer, "nbits": None, "beta": 1e-6,
         "kd": False, "parameters": 3932, "ebops": 1000, "luts": luts, "ffs": None if luts is None else 100, "stages": None if luts is None else 10,
         "latency_ns": None if luts is None else latency_ns, "evaluated_by": "test", "command": f"l0emu train x -o m/{name}",
         "default": scenario(*default), "hard": scenario(*hard)}  # fmt: skip
    r["meets"] = meets_targets(r)
    return r


def test_targets_need_both_scenarios_the_lut_budget_and_the_latency():
    good = ((0.992, 0.1e-3), (0.97, 1.0e-3))
    assert row("a", 20_000, *good)["meets"]["all"]
    assert not row("b", LUT_BUDGET + 1, *good)["meets"]["all"]
    assert not row("c", 20_000, *good, latency_ns=86.0)["meets"]["all"]
    assert not row("d", 20_000, (0.989, 0.1e-3), good[1])["meets"]["all"]
    assert not row("e", 20_000, good[0], (0.97, 1.5e-3))["meets"]["all"]  # the upper limit must be below 1.5 permille
    assert not row("f", None, *good)["meets"]["all"]  # a float network has no firmware


def test_study_commands_are_found_by_output_directory(tmp_path):
    script = tmp_path / "study.sh"
    script.write_text("# l0emu train ignored -o $O/commented\nl0emu simulate -n 10 -o $DATA/x.root\nl0emu train $M -o $O/q4_wider --nbits 4\n"
                      "l0emu train $M -o $O/hgq2_b1e-6\n")  # fmt: skip
    assert study_commands(script) == {"q4_wider": "l0emu train $M -o $O/q4_wider --nbits 4", "hgq2_b1e-6": "l0emu train $M -o $O/hgq2_b1e-6"}


def test_a_network_without_its_command_is_refused(tmp_path):
    models = tmp_path / "models" / "lonely"
    models.mkdir(parents=True)
    config = {"architecture": "student", "nbits": None, "kd": False, "seed": 0, "preset": "fast"}
    record = {"config": config, "targets": {"eta_frame": "window", "pt_scale_gev": 20.0, "preprocessing": {}}, "data": {"sha256": []},
              "model": {"parameters": 1}, "dead_network": {"dead": False, "reasons": []}}  # fmt: skip
    (models / "record.json").write_text(json.dumps(record))
    (tmp_path / "study.sh").write_text("l0emu train x -o m/other\n")
    with pytest.raises(InputFileError, match="no training command for lonely"):
        evaluate(tmp_path / "models", {}, tmp_path / "study.sh")


def test_report_files_and_the_cheapest_network_meeting_the_physics(tmp_path):
    rows = [
        row("cheap_bad", 5_000, (0.95, 0.1e-3), (0.90, 1e-3)),
        row("mid_good", 25_000, (0.992, 0.1e-3), (0.97, 1e-3)),
        row("big_good", 200_000, (0.993, 0.1e-3), (0.98, 1e-3), quantizer="qkeras"),
        row("float_ref", None, (0.995, 0.1e-3), (0.985, 1e-3), quantizer="float"),
    ]
    rows[0]["evaluated_by"] = HGQ2_EXACT  # an HGQ2 student hls4ml cannot build as it is: Keras 3 predict
    samples = [{"scenario": s, "path": f"{s}.root", "n_events": 100, "generator": "test"} for s in ("default", "hard")]
    result = {"format": FORMAT, "threshold_gev": 10.0, "samples": samples, "cost": "test", "rows": rows}
    written = write_report(result, tmp_path / "out")
    assert sorted(p.name for p in written) == ["pareto.csv", "pareto.json", "pareto.md", "pareto.png"]
    text = (tmp_path / "out" / "pareto.md").read_text()
    assert "cheapest network meeting both scenarios' physics targets is `mid_good`" in text
    assert "also meets the LUT and latency budget" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["cheap_bad", "mid_good", "big_good", "float_ref"]  # by LUTs, float last
    assert [" †" in line for line in table] == [True, False, False, False]
    assert "The HGQ2 networks marked † have Keras `ReLU` layers" in text
    assert "- `mid_good`: `l0emu train x -o m/mid_good`" in text
    with open(tmp_path / "out" / "pareto.csv", newline="") as file:
        assert [r["meets_all"] for r in csv.DictReader(file)] == ["False", "True", "False", "False"]
    assert json.loads((tmp_path / "out" / "pareto.json").read_text())["rows"][1]["luts"] == 25_000
