"""``l0emu train``: train a (quantized, distilled) network on an events file."""

from __future__ import annotations

import argparse

from l0emu.trigger.samples import check_distinct
from l0emu.util.atomic import check_output, outputs_complete
from l0emu.errors import ConfigError
from l0emu.trigger.geometry import LAYER_SETS, layer_set

from .options import ARCHITECTURE_NAMES, DEFAULT_GAMMAS, DEFAULT_STRIDE, OUTPUT_SETS, PRESET_NAMES, SUPPORTED_NBITS

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "train teacher/student networks (QKeras, distillation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events", nargs="+", help="events ROOT file(s) from 'l0emu simulate'; several are mixed in equal parts")
    parser.add_argument("-o", "--output", required=True, help="output directory, e.g. models/NAME/")
    parser.add_argument("--nbits", type=int, default=None, help=f"quantization-aware training at this width ({', '.join(map(str, SUPPORTED_NBITS))}); default float")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="fast", help="training schedule (default fast)")
    parser.add_argument("--architecture", choices=ARCHITECTURE_NAMES, default="student", help="network to train: the seed's student (default), its wider variants student-wide and student-wider (firmware.models.STUDENT_WIDTHS), or a teacher")
    parser.add_argument("--kd", action=argparse.BooleanOptionalAction, default=None, help="distil the student from a 9x16 teacher (default: on when --teacher is given)")
    parser.add_argument("--teacher", default=None, help="trained teacher (directory with model.h5, or the .h5) for --kd; without it a teacher is trained first")
    parser.add_argument("--gammas", type=float, nargs=3, default=list(DEFAULT_GAMMAS), metavar="G", help="hint weights gamma_1..3")
    parser.add_argument("--background-weight", type=float, default=1.0, metavar="W", help="loss weight of background events (no muon above 3 GeV) relative to signal; above 1 trades efficiency for fewer fakes (default 1)")
    parser.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help=f"fragmentation stride in strips (default {DEFAULT_STRIDE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling")
    parser.add_argument("--max-events", type=int, default=None, help="read at most this many events (default: the preset's)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epoch counts")
    parser.add_argument("--validation", nargs="+", default=None, metavar="EVENTS", help="validation file(s) of other generator seeds: early stopping and the record's metrics use them, every training event trains (docs/protocol.md)")
    parser.add_argument("--soft-weight", type=float, default=0.0, metavar="A", help="with --kd, also fit the teacher's outputs with this weight (soft targets; default 0)")
    parser.add_argument("--quantizer", choices=("qkeras", "hgq2"), default="qkeras", help="qkeras (default: one width, --nbits) or hgq2 (students only: a learned width per weight and activation, Keras 3, saved as model.keras)")
    parser.add_argument("--beta", type=float, default=None, metavar="B", help="with --quantizer hgq2: weight of the resource regulariser (beta x EBOPs; default 1e-5, larger is cheaper)")
    parser.add_argument("--target-ebops", type=float, default=None, metavar="N", help="with --quantizer hgq2: steer beta each epoch (HGQ2's BetaPID, starting at --beta) towards N EBOPs, and keep the epoch with the best validation loss within that budget")
    parser.add_argument("--init-bits", type=int, default=None, metavar="N", help="with --quantizer hgq2: start every weight and bias at N bits and every layer input at N fractional bits (default HGQ2's: 8 and 6)")
    parser.add_argument("--init-from", default=None, metavar="MODEL", help="start from the weights of this network of the same architecture (e.g. QAT from a float-trained student)")
    parser.add_argument(
        "--outputs", choices=[",".join(s) for s in OUTPUT_SETS], default=",".join(OUTPUT_SETS[0]), metavar="NAMES",
        help="network outputs: pt,eta (one window per event, default) or pt,eta,charge,presence (one example per "
             "sector-logic candidate window, up to 3 per event: several muons per sector; 9x16 networks only)",
    )  # fmt: skip
    parser.add_argument(
        "--layers", default="all", metavar="SET",
        help=f"RPC layers whose rows form the images: {' or '.join(LAYER_SETS)} (layers "
             f"{','.join(map(str, LAYER_SETS['middle']))}: the middle station's 4x16 windows), or indices such as 3,4,5,6 (default all)",
    )  # fmt: skip


def main(args) -> int:
    layers = layer_set(args.layers)  # a bad --layers fails before anything is written or loaded
    # the output is checked before TensorFlow loads and hours of training start
    inputs = [*args.events, *(args.validation or ()), *(p for p in (args.teacher, args.init_from) if p)]
    check_output(args.output, directory=True, parents=True, inputs=inputs, option="-o")
    check_distinct([*args.events, *(args.validation or ())])  # a file twice would weigh its events twice
    from .train import train_run  # TensorFlow: imported only when training runs

    if args.kd is False and args.teacher is not None:
        msg = "--teacher is only used for distillation; drop --no-kd or --teacher"
        raise ConfigError(msg)
    kd = args.teacher is not None if args.kd is None else args.kd
    record = train_run(
        args.events, args.output, architecture=args.architecture, nbits=args.nbits, preset=args.preset,
        kd=kd, teacher_path=args.teacher, seed=args.seed, stride=args.stride, gammas=tuple(args.gammas),
        background_weight=args.background_weight, max_events=args.max_events, epochs=args.epochs,
        validation_events=args.validation, soft_weight=args.soft_weight, init_from=args.init_from,
        outputs=args.outputs, layers=layers, quantizer=args.quantizer, beta=args.beta, init_bits=args.init_bits,
        target_ebops=args.target_ebops,
    )  # fmt: skip
    outputs_complete()
    print(summary(record, args.output))
    return 0  # a dead network is a result (2-bit QAT often dies, seed 002), reported above


def summary(record: dict, output) -> str:
    """A one-screen summary of a training record."""
    config, metrics = record["config"], record["metrics"]
    bits = f"{config['nbits']}-bit" if config["nbits"] else "float"
    if config.get("quantizer") == "hgq2":
        bits = f"HGQ2 beta {config['beta']:g}, {record['hgq2']['ebops']} EBOPs"
    fake = metrics["fake_rate"]
    examples = "windows" if "candidates" in metrics else "events"  # sector-logic candidates (--outputs)
    lines = [
        f"trained {record['model']['name']} ({config['architecture']}, {bits}, KD {'on' if config['kd'] else 'off'}, "
        f"{record['model']['parameters']} parameters) on {record['data']['n_train']} {examples} "
        f"in {record['wall_time_s']:.0f} s",
        f"{metrics.get('evaluated_on', 'test split')} ({metrics['n_test']} {examples}, Keras), threshold {metrics['threshold_gev']:g} GeV:",
        f"  plateau efficiency (pT >= 15 GeV): {_fmt(metrics['plateau']['efficiency'])}",
        f"  50% point: {_fmt(metrics['half_efficiency_pt'])} GeV",
        f"  resolution around threshold (rms of dpT/pT): {_fmt(metrics['resolution']['overall_rms'])}",
        f"  fake rate: {_fmt(fake['rate'])} ({fake['fired']}/{fake['total']}, 95% upper {_fmt(fake['upper'])})",
        f"  eta rms: {_fmt(metrics['eta_rms_strips'])} strips",
    ]
    if "candidates" in metrics:
        lines += _candidate_lines(record, metrics)
    if record["teacher"]:
        lines.append(f"  teacher plateau efficiency: {_fmt(record['teacher']['metrics']['plateau']['efficiency'])}")
    dead = record["dead_network"]
    if dead["dead"]:
        lines.append("DEAD NETWORK: " + "; ".join(dead["reasons"]) + " (try another --seed or more bits)")
    lines.append(f"wrote {output}: {record['model']['file']}, record.json" + (", teacher/model.h5" if record["teacher"] and record["teacher"]["source"] == "trained in this run" else ""))
    return "\n".join(lines)


def _candidate_lines(record, metrics) -> list[str]:
    """The four-output figures: the pT ones above are per candidate window."""
    candidates = metrics["candidates"]
    charge = candidates["charge_correct"]
    lines = [
        f"  outputs {','.join(record['config']['outputs'])}: the figures above are per sector-logic candidate window "
        f"({metrics['n_test']} windows of {candidates['count_confusion']['n_events']} events)",
        f"  charge correct (window muon pT >= {candidates['charge_correct_pt_min_gev']:g} GeV): {_fmt(charge['fraction'])} ({charge['passed']}/{charge['total']})",
        f"  presence >= 0.5: on windows with a muon {_fmt(candidates['presence_on_muon_windows']['fraction'])}, "
        f"on windows without {_fmt(candidates['presence_on_empty_windows']['fraction'])}",
        "  true muons (rows 0-3) vs windows found (columns 0-3), events:",
    ]
    return lines + [f"    {row}: " + " ".join(f"{n:>7}" for n in counts) for row, counts in enumerate(candidates["count_confusion"]["matrix"])]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"
