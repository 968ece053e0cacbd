"""``l0emu multi-study``: the shipped single-muon student on up to three sector-logic candidates.

    l0emu multi-study -n 1000000 --seed 321 --seed-hard 322 -o out/multi_test

What is measured and why is :mod:`l0emu.validation.multi_muon`; docs/multi_muon.md quotes it.
"""

from __future__ import annotations

from l0emu.errors import ConfigError
from l0emu.util.atomic import outputs_complete

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "two-muon study: the shipped student on three sector-logic candidate windows"


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--events", type=int, default=400_000, help="crossings per sample (default %(default)s)")
    # no default seeds: the caller states which samples (validation or test, docs/protocol.md) these are
    parser.add_argument("--seed", type=int, required=True, help="multi scenario, default noise")
    parser.add_argument("--seed-hard", type=int, required=True, help="multi scenario with the hard background")
    parser.add_argument("--min-hits", default=None, help="comma-separated candidate pixel minima to compare (default: the sector logic's for the spec's image rows)")
    parser.add_argument("--spec", default=None, help="spec.json (default: the shipped student)")
    parser.add_argument("-o", "--output", required=True, help="output directory")


def _min_hits(text):
    if text is None:
        return None  # run_study takes the sector logic's default for the spec's rows
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        msg = f"--min-hits takes comma-separated integers such as 3,6,9, got {text!r}"
        raise ConfigError(msg) from None


def main(args) -> int:
    from l0emu.validation.multi_muon import run_study

    run_study(events=args.events, seed=args.seed, seed_hard=args.seed_hard, min_hits_values=_min_hits(args.min_hits),
              spec_path=args.spec, output=args.output)
    outputs_complete()
    return 0
