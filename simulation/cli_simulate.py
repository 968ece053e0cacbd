"""``l0emu simulate``: toy RPC events into a ROOT file, with a summary and optional plots."""

from __future__ import annotations

import argparse

from l0emu.errors import ConfigError

from .events_io import DEFAULT_CHUNK_SIZE, write_events
from .settings import SCENARIOS, settings_for_scenario

__all__ = ["HELP", "add_arguments", "main", "parse_overrides"]

HELP = "generate toy RPC events into a ROOT file"

# set by their own options, so `--set` may not change them behind the user's back
_OWN_OPTIONS = {"seed": "--seed", "scenario": "--scenario"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--events", type=int, required=True, help="number of bunch crossings to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file")
    parser.add_argument("--scenario", default="default", help=f"named settings: {', '.join(SCENARIOS)} (default: default)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help=f"events per write (memory vs speed; the events do not depend on it; default {DEFAULT_CHUNK_SIZE})")
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
    settings = settings_for_scenario(args.scenario, seed=args.seed, overrides=parse_overrides(args.overrides))
    summary = write_events(args.output, settings, args.events, chunk_size=args.chunk_size, progress=True)
    print(f"wrote {args.output}  (scenario {settings.scenario!r}, seed {settings.seed})")
    for line in summary.lines():
        print("  " + line)
    if args.plots:
        from .plots import make_plots  # matplotlib only when asked

        for path in make_plots(settings, args.plots):
            print(f"  plot {path}")
    return 0
