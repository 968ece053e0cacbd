"""``l0emu merge``: the histograms and rate tables of a finished ``--workers`` run, from its parts."""

from __future__ import annotations

import math

from l0emu.errors import ConfigError
from l0emu.results.rates import RateAssumptions

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = "histograms and rate tables from the l0 part files of a --workers run (l0_parts/)"


def add_arguments(parser) -> None:
    parser.add_argument("parts", nargs="+", metavar="PARTS", help="a parts directory (l0_parts/), or part files or globs in event order")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file (histograms); the tables and plot go beside it")
    parser.add_argument("--bx-rate-mhz", type=float, default=RateAssumptions.bunch_crossing_mhz)
    parser.add_argument("--muon-fraction", type=float, default=RateAssumptions.muon_fraction,
                        help="fraction of crossings with a muon above 3 GeV in this sector, for rates (default: %(default)s)")
    parser.add_argument("--spectrum-index", type=float, default=RateAssumptions.spectrum_index,
                        help="muon spectrum dN/dpT ~ pT^-index used for rates (default: %(default)s)")


def main(args) -> int:
    from l0emu.trigger.job import merge_parts  # uproot and numba: not for --help

    for option, value in (("--bx-rate-mhz", args.bx_rate_mhz), ("--muon-fraction", args.muon_fraction),
                          ("--spectrum-index", args.spectrum_index)):
        if not math.isfinite(value):
            msg = f"{option} must be a finite number, got {value!r}"
            raise ConfigError(msg)
    result = merge_parts(args.parts, args.output, RateAssumptions(args.bx_rate_mhz, args.muon_fraction, args.spectrum_index))
    print(f"l0emu merge: {result.n_events:,} events from {' '.join(args.parts)}")
    print(result.report.text())
    for kind, path in result.outputs.items():
        print(f"  {kind:12s} {path}")
    return 0
