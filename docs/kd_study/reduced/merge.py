"""Merge the two evaluation runs of the reduced KD study into one report (same samples)."""
import json, sys
from pathlib import Path
from l0emu.validation.kd_study import markdown, summarize
from l0emu.util.serialize import jsonable

a, b = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
assert [s["path"] for s in a["samples"]] == [s["path"] for s in b["samples"]]
rows = a["rows"] + b["rows"]
result = {**a, "models_dir": "models (evaluated in two runs: batch1, batch2)", "rows": rows}
summary = summarize(rows)
order = ["teacher_float", "teacher_q4", "student_float_nokd", "student_q4_nokd", "student_q4_kd", "student_q4_kdg1",
         "student_q4_kdsoft", "student_q4_kdqteacher", "student_q4_fromfloat"]
summary.sort(key=lambda e: (e["scenario"] != "default", order.index(e["recipe"]) if e["recipe"] in order else 99))
out = Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True)
(out / "kd_study.md").write_text(markdown(result, summary))
(out / "kd_study.json").write_text(json.dumps(jsonable({**result, "summary": summary}), indent=1, allow_nan=False) + "\n")
