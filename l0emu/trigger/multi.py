"""Several muons per sector in the trigger job: decisions from the candidates, truth of two muons.

A multi network's spec has ``preprocessing.fragment.candidates`` (:mod:`l0emu.fixedpoint.spec`): the
trigger runs the sector logic (:mod:`l0emu.trigger.sector`) and the network on every present
candidate window. Per event, in fixed point as firmware would:

- a candidate *counts* as a muon where its raw ``presence`` output is at least the mantissa
  of 0.5 (:meth:`l0emu.fixedpoint.emulator.Emulator.threshold_mantissa`);
- the *leading* candidate is the counted one with the highest raw pT, the lower candidate
  index on ties; its charge is +1 where the raw ``charge`` output is at least the mantissa
  of 0 (physical charge >= 0), else -1;
- ``l0_pt<T>`` fires when at least one counted candidate has pT >= T, ``l0_2mu_pt<T>`` when
  at least two do.

The truth side gives the leading muon's charge, the second muon's pT and eta, and the number
of signal muons (pT >= :data:`l0emu.schema.SIGNAL_PT_MIN`), with the leading muon chosen as
:attr:`l0emu.trigger.events.EventChunk.true_pt` chooses it.
"""

from __future__ import annotations

import numba
import numpy as np

from l0emu.trigger.geometry import eta_to_strip

__all__ = ["candidate_decisions", "two_muon_truth"]


@numba.njit(cache=True, nogil=True)
def _decide_kernel(starts, raw, pt_col, charge_col, presence_col, presence_raw, charge_raw, pt_raw_thresholds,
                   lead, n_mu, charge, above):
    # one pass over each event's candidates: a few integer comparisons each, as the firmware's
    for event in range(starts.shape[0]):
        best = -1
        for k in range(starts.shape[1]):
            if starts[event, k] < 0 or raw[event, k, presence_col] < presence_raw:
                continue
            n_mu[event] += 1
            pt = raw[event, k, pt_col]
            if best < 0 or pt > raw[event, best, pt_col]:  # strictly higher: ties keep the lower index
                best = k
            for t in range(pt_raw_thresholds.shape[0]):
                above[t, event] += pt >= pt_raw_thresholds[t]
        if best >= 0:
            lead[event] = best
            charge[event] = 1 if raw[event, best, charge_col] >= charge_raw else -1


def candidate_decisions(starts, raw, columns: dict, presence_raw: int, charge_raw: int, pt_raw_thresholds: dict) -> dict:
    """Per event: the counted candidates, the leading one, its charge and the threshold counts.

    ``starts`` int16 (n, K) window starts (-1: absent), ``raw`` int64 (n, K, n_outputs);
    ``columns`` maps ``pt``, ``charge``, ``presence`` to raw columns; ``presence_raw``,
    ``charge_raw`` and ``pt_raw_thresholds`` (branch -> mantissa) are compared with ``>=``.
    Returns ``lead`` (n,) candidate index (0 where none counts), ``found`` (n,) bool (any
    counted), ``n_mu`` uint8, ``charge`` int8 (0 where none counts) and ``above``: per pT
    branch the number of counted candidates at or above its threshold (uint8).
    """
    n = len(starts)
    lead = np.zeros(n, np.int64)
    n_mu = np.zeros(n, np.uint8)
    charge = np.zeros(n, np.int8)
    thresholds = np.array(list(pt_raw_thresholds.values()), np.int64)
    above = np.zeros((len(thresholds), n), np.uint8)
    _decide_kernel(np.ascontiguousarray(starts), np.ascontiguousarray(raw), columns["pt"], columns["charge"],
                   columns["presence"], int(presence_raw), int(charge_raw), thresholds, lead, n_mu, charge, above)
    return {"lead": lead, "found": n_mu > 0, "n_mu": n_mu, "charge": charge,
            "above": dict(zip(pt_raw_thresholds, above))}


@numba.njit(cache=True, nogil=True)
def _two_muon_kernel(offsets, pt, eta, charge, signal_min, lead_charge, pt2, eta2, n_signal, has_two):
    for event in range(offsets.shape[0] - 1):
        a, b = offsets[event], offsets[event + 1]
        first, second = -1, -1
        for k in range(a, b):  # pT is finite: the reader refuses NaN and infinity
            if first < 0 or pt[k] > pt[first]:
                first = k
        if first < 0:
            continue
        count = 0
        for k in range(a, b):
            count += pt[k] >= signal_min
            if k != first and (second < 0 or pt[k] > pt[second]):
                second = k
        lead_charge[event] = charge[first]
        n_signal[event] = min(count, 255)
        if second >= 0:
            has_two[event] = True
            pt2[event] = pt[second]
            eta2[event] = eta[second]


def two_muon_truth(muons, true_eta, signal_min: float) -> dict:
    """``true_charge`` (int8, leading muon, 0 if none), ``true_pt2`` and ``true_eta2``
    (float32, second muon: the first highest pT among the others; 0 if none), ``n_signal``
    (uint8, muons with pT >= ``signal_min``) and ``separation`` (float64, |strip(eta1) -
    strip(eta2)| of the two leading muons, nan with fewer than two) for one chunk.

    ``muons`` is the chunk's :class:`l0emu.trigger.events.MuonTruth`, ``true_eta`` its leading muon's eta.
    """
    n = len(muons.offsets) - 1
    lead_charge = np.zeros(n, np.int8)
    pt2 = np.zeros(n, np.float32)
    eta2 = np.zeros(n, np.float32)
    n_signal = np.zeros(n, np.uint8)
    has_two = np.zeros(n, np.bool_)
    _two_muon_kernel(muons.offsets, muons.pt, muons.eta, muons.charge, float(signal_min), lead_charge, pt2, eta2,
                     n_signal, has_two)
    separation = np.where(has_two, np.abs(eta_to_strip(true_eta) - eta_to_strip(eta2)), np.nan)
    return {"true_charge": lead_charge, "true_pt2": pt2, "true_eta2": eta2, "n_signal": n_signal, "separation": separation}
