"""``l0emu run``: the trigger job on event files, with the shipped student by default."""

from __future__ import annotations

import importlib
import importlib.resources
import math
import socket
from pathlib import Path

from l0emu.fixedpoint.aptypes import parse_type
from l0emu.util.atomic import check_output
from l0emu.errors import ConfigError, SpecError, did_you_mean
from l0emu.results.l0_file import OUTPUT_FORMATS
from l0emu.results.rates import RateAssumptions
from l0emu.schema import DEFAULT_THRESHOLDS, threshold_branch

__all__ = ["DESCRIPTION", "SHIPPED_MODELS", "add_arguments", "main", "default_spec_path", "shipped_spec_path",
           "check_thresholds", "check_scheduler"]

DESCRIPTION = "the trigger job: events.root -> L0 decisions, l0.root, tables"

# --model NAME -> the network's directory in l0emu/data/ (each with PROVENANCE.md)
SHIPPED_MODELS = {
    "default": "default_student",  # one muon per sector: pT and eta of the busiest window
    "multi": "multi_student",  # up to three candidate windows: pT, eta, charge, presence
}


def shipped_spec_path(name: str = "default"):
    """The spec of the network shipped inside the package under ``--model name``."""
    if name not in SHIPPED_MODELS:
        msg = f"--model {name!r} is not a shipped network{did_you_mean(name, SHIPPED_MODELS)}"
        raise ConfigError(msg)
    path = importlib.resources.files("l0emu") / "data" / SHIPPED_MODELS[name] / "spec.json"
    if not path.is_file():
        msg = f"the shipped network {name!r} is missing ({path}); pass --spec"
        raise SpecError(msg)
    return path


def default_spec_path():
    """The spec of the default student shipped inside the package."""
    return shipped_spec_path("default")


def _thresholds(text: str):
    """Parse ``--thresholds``: finite, positive, each with its own branch name."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        msg = f"--thresholds must be comma-separated numbers of GeV, got {text!r}"
        raise ConfigError(msg) from None
    if not values:
        msg = f"--thresholds needs at least one number of GeV, got {text!r}"
        raise ConfigError(msg)
    names = {}
    for value in values:
        if not math.isfinite(value) or value <= 0:
            msg = f"--thresholds: {value!r} is not a positive finite number of GeV"
            raise ConfigError(msg)
        if "e" in f"{value:g}":
            continue  # refused by check_thresholds, after the range check that explains it better
        name = threshold_branch(value)
        if name in names:
            msg = f"--thresholds: {names[name]!r} and {value!r} both give branch {name!r}; give distinct thresholds"
            raise ConfigError(msg)
        names[name] = value
    return values


def check_thresholds(thresholds, spec, origin) -> None:
    """Every threshold must lie inside the range the network's pT output can take."""
    outputs = {out.get("name"): out for out in spec["outputs"]}
    if "pt" not in outputs:
        return  # the trigger names the missing output
    out, kind = outputs["pt"], parse_type(spec["layers"][-1]["result_type"])
    ends = [out["offset"] + out["scale"] * kind.to_float(m) for m in (kind.min_mantissa, kind.max_mantissa)]
    low, high = min(ends), max(ends)
    for value in thresholds:
        if not low < value <= high:
            msg = (
                f"--thresholds: {value:g} GeV is outside the pT range of the network in {origin} "
                f"({low:g} to {high:g} GeV, type {kind}): it would fire on {'every' if value <= low else 'no'} event"
            )
            raise ConfigError(msg)
        if "e" in f"{value:g}":
            msg = f"--thresholds: {value!r} GeV cannot name a decision branch (l0_pt<T> needs 1e-4 <= T < 1e6 GeV)"
            raise ConfigError(msg)


def _check_numbers(args) -> None:
    for option, value in (
        ("--bx-rate-mhz", args.bx_rate_mhz), ("--muon-fraction", args.muon_fraction),
        ("--spectrum-index", args.spectrum_index),
    ):
        if not math.isfinite(value):
            msg = f"{option} must be a finite number, got {value!r}"
            raise ConfigError(msg)
    for option, value, low in (("--workers", args.workers, 0), ("--step-size", args.step_size, 1)):
        if value < low:
            msg = f"{option} must be >= {low}, got {value}"
            raise ConfigError(msg)
    if args.check_firmware is not None and args.check_firmware < 1:
        msg = f"--check-firmware takes a number of events >= 1, got {args.check_firmware}"
        raise ConfigError(msg)


def check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with the address in the message, when no dask scheduler answers there."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        msg = f"--scheduler {address!r}: expected HOST:PORT or tcp://HOST:PORT"
        raise ConfigError(msg)
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
            pass
    except OSError as err:
        msg = f"--scheduler {address!r}: no dask scheduler reachable within {timeout:g} s ({err.strerror or err})"
        raise ConfigError(msg) from None


def _spec_file(spec_path) -> Path:
    path = Path(spec_path)
    return path / "spec.json" if path.is_dir() else path


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
    parser.add_argument(
        "--output-format", choices=OUTPUT_FORMATS, default="ttree",
        help="store the l0 table as a TTree or an RNTuple; histograms are TH1D either way (default: %(default)s)",
    )
    network = parser.add_mutually_exclusive_group()
    network.add_argument("--spec", help="network spec.json or converted project dir (default: --model default)")
    network.add_argument(
        "--model", default="default", metavar="NAME",
        help=f"a network shipped in the package: {', '.join(SHIPPED_MODELS)} (default: %(default)s)",
    )
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
        "--check-firmware", type=int, default=None, metavar="N",
        help="also run hls4ml's C-simulation on N of the same images and fail on any differing bit",
    )
    parser.add_argument(
        "--allow-mixed", action="store_true",
        help="merge inputs simulated with different physics settings (refused by default); the tables name them",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    # every argument and every output is checked before any work starts
    thresholds = _thresholds(args.thresholds)
    _check_numbers(args)
    spec_path = args.spec or shipped_spec_path(args.model)
    from l0emu.trigger.events import expand_paths  # uproot and numba: not for --help
    from l0emu.trigger.job import run_job, side_outputs
    from l0emu.fixedpoint.spec import read_spec
    from l0emu.firmware.protocol import warn_run_overlaps

    inputs = [*expand_paths(args.inputs), _spec_file(spec_path)]
    check_output(args.output, inputs=inputs, option="-o")  # the raw text: '-o dir/' is refused
    for key, path in side_outputs(args.output).items():
        check_output(path, inputs=inputs, option="-o" if key == "root" else f"output ({key})")
    spec = read_spec(spec_path)
    check_thresholds(thresholds, spec, _spec_file(spec_path))
    firmware_check = _firmware_check() if args.check_firmware else None
    if args.scheduler:
        check_scheduler(args.scheduler)
    # the evaluation protocol (docs/protocol.md): loud when an input holds the network's training events
    warn_run_overlaps(inputs[:-1], spec_path)
    assumptions = RateAssumptions(args.bx_rate_mhz, args.muon_fraction, args.spectrum_index)
    result = run_job(
        args.inputs, spec, args.output, thresholds,
        step_size=args.step_size, assumptions=assumptions,
        workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
        output_format=args.output_format, allow_mixed=args.allow_mixed,
        final=not args.check_firmware,  # else the C-simulation check is still to come
    )
    rate = result.n_events / result.seconds if result.seconds > 0 else float("nan")
    print(
        f"l0emu run: {result.n_events:,} events with {spec['name']!r} in {result.seconds:.2f} s "
        f"({rate:,.0f} events/s, {result.cpu_seconds:.2f} s of CPU; emulator built in {result.compile_seconds:.1f} s)"
    )
    print(result.report.text())
    for kind, path in result.outputs.items():
        print(f"  {kind:12s} {path}")
    if firmware_check is not None:
        return firmware_check(spec_path, args.inputs, args.check_firmware, thresholds)
    return 0


