"""``l0emu acceptance``: emulator vs hls4ml C-simulation, bit for bit, for every model of a directory.

    l0emu acceptance --models-dir models/ [--events 200000] [--bits 2,3,4,5,6,8] [--teacher PATH]
        [--events-file FILE] [--train-events FILE] [--work-dir DIR] [-o report.json]

Paths are relative to the working directory unless given absolute; nothing defaults to one
machine's data folder. What is compared and how is :mod:`l0emu.validation.acceptance`.
"""

from __future__ import annotations

import json
from pathlib import Path

from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError
from l0emu.firmware.options import SUPPORTED_NBITS

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "emulator vs C-simulation for the seed students and the teacher"


def _parse_bits(text: str) -> tuple:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        msg = f"--bits takes comma-separated integers such as 2,3,4, got {text!r}"
        raise ConfigError(msg) from None


def add_arguments(parser) -> None:
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="trained models: seed_q{B}/model.h5, teacher_9x16/model.h5 (default ./models)")
    parser.add_argument("--events", type=int, default=200_000, help="events per model (default 200000)")
    parser.add_argument("--bits", default=",".join(map(str, SUPPORTED_NBITS)), help="seed student widths (default %(default)s)")
    parser.add_argument("--teacher", type=Path, default=None, help="trained 9x16 teacher (.h5 or its directory; default MODELS_DIR/teacher_9x16)")
    parser.add_argument("--no-teacher", action="store_true", help="students only")
    parser.add_argument("--train-events", type=Path, default=None, help="events to train missing models on (without it a missing model is an error)")
    parser.add_argument("--events-file", type=Path, default=None, help="held-out events (default: simulated into --work-dir with a seed no model trained on)")
    parser.add_argument("--work-dir", type=Path, default=Path("acceptance_work"), help="hls4ml projects and the held-out sample (default ./acceptance_work)")
    parser.add_argument("-o", "--output", type=Path, default=Path("acceptance_report.json"), help="JSON report (default ./acceptance_report.json)")


def main(args) -> int:
    if args.events < 1:
        msg = f"--events must be positive, got {args.events}"
        raise ConfigError(msg)
    from l0emu.validation import acceptance  # TensorFlow and hls4ml: only when it runs

    held_out = args.events_file or args.work_dir / f"heldout_seed{acceptance.HELD_OUT_SEED}_{args.events}.root"
    events_file = acceptance.held_out_events(held_out, args.events)
    sources = acceptance.model_sources(_parse_bits(args.bits), args.models_dir, args.teacher, args.train_events, with_teacher=not args.no_teacher)
    report = acceptance.run(sources, events_file, args.events, args.work_dir)
    print(acceptance.format_table(report["rows"]))
    print("RESULT: " + ("zero differing output bits" if report["bit_exact"] else "MISMATCH"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output, final=True) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0 if report["bit_exact"] else 1
