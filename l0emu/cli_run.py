"""``l0emu run``: the trigger job on event files, with the shipped student by default."""

from __future__ import annotations

import importlib
import importlib.resources

from .errors import ConfigError, SpecError
from .job import run_job
from .output import format_table
from .rates import RateAssumptions
from .spec import read_spec
from .trigger import DEFAULT_THRESHOLDS

__all__ = ["HELP", "add_arguments", "main", "default_spec_path"]

HELP = "the trigger job: events.root -> L0 decisions, l0.root, tables"

DEFAULT_MODEL = "default_student"


def default_spec_path():
    """The spec of the student shipped inside the package."""
    path = importlib.resources.files("l0emu") / "data" / DEFAULT_MODEL / "spec.json"
    if not path.is_file():
        msg = f"the shipped default student is missing ({path}); pass --spec"
        raise SpecError(msg)
    return path


def _thresholds(text: str):
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        msg = f"--thresholds must be comma-separated numbers of GeV, got {text!r}"
        raise ConfigError(msg) from None
    if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
        msg = f"--thresholds must be distinct positive numbers of GeV, got {text!r}"
        raise ConfigError(msg)
    return values


def _firmware_check():
    """l0emu.validation.firmware_check needs hls4ml; loaded by name so the runtime floor never imports it."""
    try:
        module = importlib.import_module("l0emu.validation.firmware_check")
    except ModuleNotFoundError as err:
        msg = f"--check-firmware needs the firmware extra ({err.name} is missing): pip install -e '.[firmware]'"
        raise ConfigError(msg) from err
    return module.check_firmware


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="EVENTS", help="event ROOT files or globs")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file (l0 tree + histograms)")
    parser.add_argument("--spec", help="network spec.json or converted project dir (default: shipped student)")
    parser.add_argument(
        "--thresholds", default=",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS),
        help="pT thresholds in GeV (default: %(default)s)",
    )
    parser.add_argument("--step-size", type=int, default=500_000, help="events per chunk (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=0, help="start a local dask cluster with N workers")
    parser.add_argument("--scheduler", help="address of an existing dask scheduler")
    parser.add_argument("--bx-rate-mhz", type=float, default=RateAssumptions.bunch_crossing_mhz)
    parser.add_argument(
        "--muon-fraction", type=float, default=RateAssumptions.muon_fraction,
        help="fraction of crossings with a muon above 3 GeV in this sector, for rates (default: %(default)s)",
    )
    parser.add_argument(
        "--spectrum-index", type=float, default=RateAssumptions.spectrum_index,
        help="muon spectrum dN/dpT ~ pT^-index used for rates (default: %(default)s)",
    )
    parser.add_argument(
        "--check-firmware", type=int, default=0, metavar="N",
        help="also run hls4ml's C-simulation on N of the same images and fail on any differing bit",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    thresholds = _thresholds(args.thresholds)
    if args.workers < 0:
        msg = f"--workers must be >= 0, got {args.workers}"
        raise ConfigError(msg)
    spec_path = args.spec or default_spec_path()
    spec = read_spec(spec_path)
    assumptions = RateAssumptions(args.bx_rate_mhz, args.muon_fraction, args.spectrum_index)
    result = run_job(
        args.inputs, spec, args.output, thresholds,
        step_size=args.step_size, assumptions=assumptions,
        workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
    )
    rate = result.n_events / result.seconds if result.seconds > 0 else float("nan")
    print(
        f"l0emu run: {result.n_events:,} events with {spec['name']!r} in {result.seconds:.2f} s "
        f"({rate:,.0f} events/s; emulator built in {result.compile_seconds:.1f} s)"
    )
    print(format_table(result.rows))
    print(assumptions.describe())
    for kind, path in result.outputs.items():
        print(f"  {kind:12s} {path}")
    if args.check_firmware:
        return _firmware_check()(spec_path, args.inputs, args.check_firmware, thresholds)
    return 0


