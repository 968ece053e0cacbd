"""``l0emu acceptance`` (validation/acceptance.py) at CI size: the same code path as the 200,000-event issue-3 runs.

Seed students at 3 and 8 bits with random weights (two hls4ml compiles), on fragmented
events of a freshly simulated held-out sample. The 9x16 teacher is left to the full run:
numba takes many minutes to compile its emulator kernels (10,655 weights unrolled as
constants), too long for CI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from conftest import scaled  # noqa: E402
from l0emu.firmware.models import build_student  # noqa: E402
from l0emu.cli.dispatch import main as l0emu_main  # noqa: E402
from l0emu.validation import acceptance  # noqa: E402

N_EVENTS = scaled(2_000, 20_000)


def _save_random(model, path, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("f4") for w in model.get_weights()])
    path.parent.mkdir(parents=True)
    model.save(str(path))


@pytest.mark.slow
@pytest.mark.hls4ml
def test_acceptance_students_and_teacher_are_bit_exact(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path / "kernels"))
    models = tmp_path / "models"
    for bits in (3, 8):
        _save_random(build_student(bits), models / f"seed_q{bits}" / "model.h5", bits)
    report_path = tmp_path / "report.json"
    code = l0emu_main([
        "acceptance", "--events", str(N_EVENTS), "--bits", "3,8", "--no-teacher", "--models-dir", str(models), "--train-events", str(tmp_path / "none.root"),
        "--work-dir", str(tmp_path / "work"), "-o", str(report_path),
    ])  # fmt: skip
    report = json.loads(report_path.read_text())
    rows = {row["model"]: row for row in report["rows"]}
    assert list(rows) == ["seed_q3", "seed_q8"]
    assert rows["seed_q3"]["parameters"] == rows["seed_q8"]["parameters"] == 1032
    for row in rows.values():
        assert row["events"] == N_EVENTS and row["provenance"]["made"] == "loaded"
        assert row["differing_events"] == 0 and row["differing_bits"] == 0, row
    assert code == 0 and report["bit_exact"]
    out = capsys.readouterr().out
    assert "zero differing output bits" in out and "seed_q8" in out


def test_missing_model_without_training_events_is_a_config_error(tmp_path):
    with pytest.raises(acceptance.ConfigError, match=r"seed_q4.*--train-events"):
        acceptance.model_sources([4], tmp_path / "models", train_events=tmp_path / "none.root", with_teacher=False)
