"""The distillation study's summary (validation.kd_study) on hand-made grid rows."""

import math

from l0emu.validation.kd_study import markdown, recipe_of, summarize


def _row(name, seed, plateau, fake_ul, scenario="default", bits=4, dead=False):
    return {
        "scenario": scenario, "name": name, "model": "student", "bits": bits, "seed": seed, "dead": dead,
        "evaluated_by": "firmware-exact (hls4ml conversion, l0emu emulator)", "plateau": {"efficiency": plateau},
        "fake_rate": {"upper": fake_ul}, "half_efficiency_pt": 10.0, "resolution": {"overall_rms": 0.2},
    }  # fmt: skip


def test_recipes_group_seeds_and_report_median_and_spread():
    assert recipe_of("student_q4_kd_s12") == "student_q4_kd" and recipe_of("teacher_float") == "teacher_float"
    rows = [
        _row("student_q4_kd_s0", 0, 0.95, 2e-3), _row("student_q4_kd_s1", 1, 0.97, 1e-3), _row("student_q4_kd_s2", 2, 0.90, 4e-3, dead=True),
        _row("student_q4_nokd_s0", 0, 0.96, float("nan")), _row("student_q4_kd_s0", 0, 0.5, 9e-3, scenario="hard"),
    ]  # fmt: skip
    summary = {(e["scenario"], e["recipe"]): e for e in summarize(rows)}
    kd = summary[("default", "student_q4_kd")]
    assert kd["seeds"] == [0, 1, 2] and kd["dead"] == 1
    assert kd["plateau"] == {"median": 0.95, "low": 0.90, "high": 0.97, "n": 3}
    assert kd["fake_ul"]["median"] == 2e-3
    assert math.isnan(summary[("default", "student_q4_nokd")]["fake_ul"]["median"])
    assert summary[("hard", "student_q4_kd")]["plateau"]["n"] == 1
    result = {"threshold_gev": 10.0, "models_dir": "m", "samples": []}
    text = markdown(result, list(summary.values()))
    assert "| `student_q4_kd` | 4 | firmware-exact | 0,1,2 | 1 | 0.9500 [0.9000, 0.9700] | 2.00 [1.00, 4.00] |" in text
    assert "Fewer than 3 seeds" in text and "`student_q4_nokd`" in text
