"""The ``l0`` file: the per-event tree (TTree or RNTuple) and the turn-on histograms beside it."""

from __future__ import annotations

import numpy as np

from l0emu.errors import ConfigError
from l0emu.results.rates import TriggerCounts, pt_histogram
from l0emu.schema import L0_TREE, MULTI_BRANCHES, MULTI_TRUTH_BRANCHES

__all__ = ["OUTPUT_FORMATS", "l0_branch_types", "make_l0_writer", "turn_on_histograms", "write_histograms"]

# how the ``l0`` table is stored: a TTree (the default, what every ROOT version reads) or an
# RNTuple (ROOT 6.34+'s columnar format, which the LHC experiments adopt for the HL-LHC)
OUTPUT_FORMATS = ("ttree", "rntuple")


def l0_branch_types(branches, two_muon_branches=()) -> dict:
    """Branch name -> dtype of the ``l0`` tree (docs/design.md); a multi-candidate spec adds
    ``two_muon_branches`` (``l0_2mu_pt<T>``) and the branches of docs/multi_muon.md."""
    types = {
        "event_id": np.uint64,
        "pt": np.float32,
        "eta": np.float32,
        "pt_raw": np.int64,
        "eta_raw": np.int64,
    }
    types.update({b: np.bool_ for b in branches})
    if two_muon_branches:
        types.update({b: np.bool_ for b in two_muon_branches})
        types.update(MULTI_BRANCHES)
    types.update({"n_muons": np.uint8, "true_pt": np.float32, "true_eta": np.float32})
    if two_muon_branches:
        types.update(MULTI_TRUTH_BRANCHES)
    return types


def make_l0_writer(file, branches, output_format: str = "ttree", two_muon_branches=()):
    """The empty ``l0`` TTree or RNTuple in ``file`` (an uproot writable file); both take ``extend``."""
    if output_format not in OUTPUT_FORMATS:
        msg = f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}"
        raise ConfigError(msg)
    make = file.mkrntuple if output_format == "rntuple" else file.mktree
    return make(L0_TREE, l0_branch_types(branches, two_muon_branches))


def turn_on_histograms(counts: TriggerCounts, denominator: str = "h_true_pt_denominator",
                       events: str = "signal events", variable: str = "true muon pT") -> dict:
    """ROOT name -> :class:`hist.Hist` vs true pT: the shared denominator and one numerator per threshold."""
    import hist

    def filled(values, title):
        h = pt_histogram(title, storage=hist.storage.Double())
        h.view()[:] = values
        return h

    histograms = {denominator: filled(counts.denominator, f"{events} vs {variable}")}
    for b in counts.branches:
        histograms[f"h_{b}_numerator"] = filled(counts.numerator[b], f"{events} with {b} vs {variable}")
    return histograms


def write_histograms(file, counts: TriggerCounts, multi=None) -> None:
    """Numerator per threshold and the shared denominator, written as TH1D by uproot from hist objects.

    A multi spec's two-muon turn-ons (``multi``, :class:`l0emu.results.multi_rates.MultiCounts`) add
    ``h_true_pt2_denominator`` (crossings with two signal muons vs the second muon's pT) and
    ``h_l0_2mu_pt<T>_numerator``.
    """
    histograms = turn_on_histograms(counts)
    if multi is not None:
        histograms.update(turn_on_histograms(multi.pairs, "h_true_pt2_denominator", "events with two signal muons",
                                             "second muon true pT"))
    for name, h in histograms.items():
        file[name] = h
