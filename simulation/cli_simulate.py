"""``l0emu simulate``: toy RPC events into a ROOT file, with a summary and optional plots."""

from __future__ import annotations

import argparse

from pathlib import Path

from l0emu.util.atomic import OutputSet
from l0emu.errors import ConfigError

from .settings import SCENARIOS, settings_for_scenario

__all__ = ["DESCRIPTION", "add_arguments", "main", "parse_overrides"]

DESCRIPTION = "generate toy RPC events into a ROOT file"

# set by their own options, so `--set` may not change them behind the user's back
_OWN_OPTIONS = {"seed": "--seed", "scenario": "--scenario"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--events", type=int, required=True, help="number of bunch crossings to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file")
    parser.add_argument("--scenario", default="default", help=f"named settings: {', '.join(SCENARIOS)} (default: default)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="events per write (memory vs speed; the events do not depend on it; default 2^18)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set noise_rate=2e-3 (repeatable)")
    parser.add_argument("--plots", metavar="DIR", help="also write control plots (PNG) into DIR")


def parse_overrides(items) -> dict:
    """``["key=value", ...]`` -> dict; keys are checked against the settings later."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            msg = f"--set expects KEY=VALUE, got {item!r}"
            raise ConfigError(msg)
        if key in _OWN_OPTIONS:
            msg = f"--set {key}=...: use {_OWN_OPTIONS[key]} for {key!r}"
            raise ConfigError(msg)
        overrides[key] = value.strip()
    return overrides


def main(args) -> int:
    from .events_io import DEFAULT_CHUNK_SIZE, write_events  # numba and uproot: not for --help

    if args.chunk_size is None:
        args.chunk_size = DEFAULT_CHUNK_SIZE
    settings = settings_for_scenario(args.scenario, seed=args.seed, overrides=parse_overrides(args.overrides))
    # the events file and the plots are one unit: both checked now, both kept or neither
    with OutputSet(final=True) as outputs:
        events_tmp = outputs.add(args.output, option="-o")
        plots_tmp = outputs.add_into(args.plots, option="--plots") if args.plots else None
        summary = write_events(events_tmp, settings, args.events, chunk_size=args.chunk_size, progress=True)
        plots = []
        if plots_tmp is not None:
            from .plots import make_plots  # matplotlib only when asked

            plots = [Path(args.plots) / path.name for path in make_plots(settings, plots_tmp)]
    print(f"wrote {args.output}  (scenario {settings.scenario!r}, seed {settings.seed})")
    for line in summary.lines():
        print("  " + line)
    for path in plots:
        print(f"  plot {path}")
    return 0
