"""``l0emu grid train|evaluate|kd-study``: the physics grid of :mod:`l0emu.validation.grid`.

Steps that run separately (train can resume, evaluate re-runs in minutes)::

    l0emu grid train --events TRAIN.root [TRAIN_hard.root] --models-dir models/grid/ [--bits 2,3,4] [--seeds 0,1,2]
    l0emu grid evaluate --models-dir models/grid/ --events HELDOUT.root [--events-hard HELDOUT_hard.root] -o report/
    l0emu grid kd-study --models-dir STUDY/models --events CHOOSE.root [--events-hard CHOOSE_hard.root] -o report/

``kd-study`` summarises the distillation study (:mod:`l0emu.validation.kd_study`) with the
grid's evaluation.
"""

from __future__ import annotations

import argparse
import math

from l0emu.firmware.options import PRESET_NAMES, SUPPORTED_NBITS
from l0emu.results.metrics import DEFAULT_THRESHOLD

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "the physics grid: train the study's networks, then evaluate them"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not values:
        msg = "expected at least one integer"
        raise argparse.ArgumentTypeError(msg)
    return values


def add_arguments(parser) -> None:
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    train = steps.add_parser("train", help="train the grid's networks (skips those already trained)")
    train.add_argument("--events", nargs="+", required=True, help="training events file(s); several are mixed in equal parts")
    train.add_argument("--models-dir", required=True, help="one directory per network is written here")
    train.add_argument("--preset", choices=PRESET_NAMES, default="fast", help="training schedule (default fast)")
    train.add_argument("--bits", type=_int_list, default=list(SUPPORTED_NBITS), help="quantized widths, e.g. 2,3,4 (default all supported)")
    train.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="student seeds (default 0,1,2)")
    train.add_argument("--max-events", type=int, default=None, help="read at most this many training events (default: the preset's)")
    train.add_argument("--epochs", type=int, default=None, help="override the preset's epoch counts")
    train.add_argument("--without-teacher-9x384", action="store_true", help="leave out the 9x384 teacher (the slowest network on a CPU)")
    train.add_argument("--validation", nargs="+", default=None, metavar="EVENTS", help="validation file(s) of other generator seeds for early stopping (docs/protocol.md)")
    evaluate = steps.add_parser("evaluate", help="evaluate every trained network on held-out samples; write the report")
    evaluate.add_argument("--models-dir", required=True, help="directory written by the train step")
    evaluate.add_argument("--events", required=True, help="held-out events of the default scenario")
    evaluate.add_argument("--events-hard", default=None, help="held-out events of the hard scenario")
    evaluate.add_argument("-o", "--output", required=True, help="report directory")
    evaluate.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help=f"pT threshold in GeV (default {DEFAULT_THRESHOLD:g})")
    evaluate.add_argument("--turn-on-bits", type=int, default=4, help="quantized width shown in the turn-on overlays (default 4)")
    study = steps.add_parser("kd-study", help="the distillation study: every recipe's median and spread over its seeds")
    study.add_argument("--models-dir", required=True, help="the study's networks, one directory per recipe and seed")
    study.add_argument("--events", required=True, help="validation events of the default scenario")
    study.add_argument("--events-hard", default=None, help="validation events of the hard scenario")
    study.add_argument("-o", "--output", required=True, help="report directory")
    study.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help=f"pT threshold in GeV (default {DEFAULT_THRESHOLD:g})")


def _train(grid, args) -> int:
    done = grid.train_grid(
        args.events, args.models_dir, bits=args.bits, seeds=args.seeds, preset=args.preset,
        max_events=args.max_events, epochs=args.epochs, teacher_9x384=not args.without_teacher_9x384,
        validation_events=args.validation,
    )  # fmt: skip
    print(f"grid in {args.models_dir}: trained {len(done['trained'])}, skipped {len(done['skipped'])} already trained")
    return 0


def _evaluate(grid, args) -> int:
    from l0emu.firmware.models import check_nbits

    samples = {"default": args.events} | ({"hard": args.events_hard} if args.events_hard else {})
    result = grid.evaluate_grid(args.models_dir, samples, args.threshold)
    written = grid.write_report(result, args.output, turn_on_bits=check_nbits(args.turn_on_bits))
    print(grid.markdown_summary(result))
    print(f"wrote {', '.join(p.name for p in written)} into {args.output}")
    return 0


def _kd_study(args) -> int:
    from l0emu.validation.kd_study import run_study

    samples = {"default": args.events} | ({"hard": args.events_hard} if args.events_hard else {})
    summary = run_study(args.models_dir, samples, args.output, args.threshold)
    for e in summary:
        plateau, fake = e["plateau"]["median"], e["fake_ul"]["median"]
        fake_text = "n/a" if math.isnan(fake) else f"{1000 * fake:.2f}"
        print(f"{e['scenario']:>8} {e['recipe']:<28} seeds {len(e['seeds'])}: plateau {plateau:.4f}, fake UL {fake_text} permille")
    print(f"wrote kd_study.md, kd_study.json into {args.output}")
    return 0


def main(args) -> int:
    from l0emu.firmware.keras_env import tf  # TensorFlow: only when the grid runs
    from l0emu.validation import grid

    tf.get_logger().setLevel("ERROR")  # Keras warns about retracing when many networks predict in turn
    steps = {"train": _train, "evaluate": _evaluate, "kd-study": lambda _, a: _kd_study(a)}
    return steps[args.step](grid, args)
