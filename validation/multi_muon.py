"""Multi-muon study (issue 11, first phase): the SHIPPED single-muon student on sector-logic candidates.

For each crossing the sector logic (:mod:`l0emu.trigger.sector`) picks up to three non-overlapping
9x32 windows; the shipped 4-bit student (bit-exact emulator) runs on each, and a candidate
*fires* at threshold T when its predicted pT >= T (the fixed-point comparison of the trigger
job). The study measures, on fresh ``multi`` samples (default noise, and with the ``hard``
background added by overrides):

- two-muon crossings with both muons >= 15 GeV: efficiency of ">= 2 candidates fire at 10 GeV"
  (what ``l0_2mu_pt10`` will be) vs the muons' separation in strips, with and without
  requiring that each muon lies in its own firing window; against the single-window choice,
  which holds both muons only when they fall into its one window;
- one-muon crossings: how often a second candidate fires at 10 GeV;
- crossings without a signal muon: the two-candidate rate, and the single-muon rate with
  and without the extra candidates.

Run::

    l0emu multi-study -n 1000000 --seed 321 --seed-hard 322 -o out/multi_test

(seeds 221/222 chose ``min_hits``; 321/322 are the test samples whose figures are quoted).

It writes ``multi_study.json`` (every figure) and ``two_muon_efficiency.png``; docs/multi_muon.md
quotes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from l0emu.util.atomic import atomic_path
from l0emu.cli.run import default_spec_path
from l0emu.fixedpoint.emulator import Emulator
from l0emu.firmware.protocol import SampleId, check_generated_sample
from l0emu.trigger.fingerprint import fingerprint_arrays
from l0emu.trigger.geometry import ALL_LAYERS, eta_to_strip
from l0emu.trigger.images import fragment_hits
from l0emu.trigger.sector import min_candidate_hits, predict_candidates, sector_candidates
from l0emu.simulation.generator import generate
from l0emu.simulation.settings import SCENARIOS, settings_for_scenario
from l0emu.fixedpoint.spec import preprocessing_layers, read_spec
from l0emu.results.stats import clopper_pearson, upper_limit

__all__ = ["SEPARATION_EDGES", "evaluate", "plot_two_muon_efficiency", "run_study"]

# separation of the two muons' straight-line strips; a window is 32 strips wide
SEPARATION_EDGES = np.array([0, 8, 16, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384], dtype=np.float64)
THRESHOLD = 10.0
PLATEAU_PT = 15.0


def _fraction(k, n) -> dict:
    k, n = int(k), int(n)
    low, high = clopper_pearson(k, n)
    return {"k": k, "n": n, "value": k / n if n else float("nan"), "low": float(low[0]), "high": float(high[0]),
            "upper_limit_95": upper_limit(k, n)}


def _muon_pairs(block):
    """Leading and second muon (pT, strip) per crossing; nan where absent."""
    n = len(block)
    first = block.muon_offsets[:-1]
    pt = np.full((n, 2), np.nan)
    strip = np.full((n, 2), np.nan)
    for k in range(2):
        has = block.n_muons > k
        pt[has, k] = block.muon_pt[first[has] + k]
        strip[has, k] = eta_to_strip(block.muon_eta[first[has] + k])
    return pt, strip


def _inside(strip, starts):
    """(n, n_candidates) whether a muon's straight-line strip lies in each candidate window."""
    return (starts >= 0) & (starts <= strip[:, None]) & (strip[:, None] < starts.astype(np.float64) + 32)


def evaluate(block, emulator, stride: int, *, min_hits: int | None = None, pt_min: float) -> dict:
    """Every figure of the study on one sample (see the module docstring); the images are
    made of the RPC layers of the emulator's spec (``min_hits`` None: the sector logic's
    default for them, :func:`l0emu.trigger.sector.min_candidate_hits`)."""
    offsets, layer, strip = block.hit_offsets, block.hit_layer, block.hit_strip
    layers = preprocessing_layers(emulator.spec)
    min_hits = min_candidate_hits(len(layers)) if min_hits is None else min_hits
    layers = None if layers == ALL_LAYERS else layers
    starts, pooled, n_found = sector_candidates(offsets, layer, strip, stride, min_hits=min_hits, layers=layers)
    raw = predict_candidates(emulator, pooled, n_found)
    t_raw = emulator.threshold_mantissa("pt", THRESHOLD)
    pt_index = emulator.column("pt")
    present = np.arange(starts.shape[1])[None, :] < n_found[:, None]
    fires = present & (raw[:, :, pt_index] >= t_raw)
    n_fire = fires.sum(axis=1)
    single_start, single_pooled = fragment_hits(offsets, layer, strip, stride, layers)
    single_fires = emulator.predict_raw(single_pooled)[:, pt_index] >= t_raw
    if not np.array_equal(single_fires, fires[:, 0]) or not np.array_equal(single_start, starts[:, 0]):
        msg = "sector logic: candidate 0 differs from the single-window fragmentation"
        raise AssertionError(msg)

    pt, mu_strip = _muon_pairs(block)
    leading_signal = block.n_muons.astype(bool) & (np.nan_to_num(pt[:, 0]) >= pt_min)
    n_signal = np.where(leading_signal, block.n_muons, 0)
    in_a, in_b = _inside(mu_strip[:, 0], starts), _inside(mu_strip[:, 1], starts)
    # each muon in its own firing window
    matched = ((fires & in_a)[:, :, None] & (fires & in_b)[:, None, :] & ~np.eye(starts.shape[1], dtype=bool)).any(axis=(1, 2))
    single_both = _inside(mu_strip[:, 0], single_start[:, None])[:, 0] & _inside(mu_strip[:, 1], single_start[:, None])[:, 0]

    both_hi = (n_signal >= 2) & (pt[:, 1] >= PLATEAU_PT)
    pair = both_hi & (n_signal == 2)
    separation = np.abs(mu_strip[:, 0] - mu_strip[:, 1])
    one = n_signal == 1
    none = n_signal == 0

    def binned(selection):
        counts = np.histogram(separation[pair], SEPARATION_EDGES)[0]
        passed = np.histogram(separation[pair & selection], SEPARATION_EDGES)[0]
        low, high = clopper_pearson(passed, counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = passed / counts
        return {"k": passed.tolist(), "n": counts.tolist(), "value": value.tolist(), "low": low.tolist(), "high": high.tolist()}

    two = n_fire >= 2
    return {
        "events": len(block),
        "min_hits": int(min_hits),
        "crossings_by_signal_muons": np.bincount(n_signal, minlength=4).tolist(),
        "candidates_per_crossing": np.bincount(n_found, minlength=4).tolist(),
        "two_muon": {
            "two_fire_ge2_muons": _fraction(np.count_nonzero(two & both_hi), np.count_nonzero(both_hi)),
            "two_fire": _fraction(np.count_nonzero(two & pair), np.count_nonzero(pair)),
            "two_fire_matched": _fraction(np.count_nonzero(matched & pair), np.count_nonzero(pair)),
            "single_window_holds_both": _fraction(np.count_nonzero(single_both & pair), np.count_nonzero(pair)),
            "single_window_fires": _fraction(np.count_nonzero(fires[:, 0] & pair), np.count_nonzero(pair)),
            "by_separation": {
                "edges": SEPARATION_EDGES.tolist(),
                "two_fire": binned(two),
                "two_fire_matched": binned(matched),
                "single_window_holds_both": binned(single_both),
            },
        },
        "one_muon": {
            "second_candidate_fires": _fraction(np.count_nonzero(fires[:, 1:].any(axis=1) & one), np.count_nonzero(one)),
            "two_fire": _fraction(np.count_nonzero(two & one), np.count_nonzero(one)),
            "two_fire_pt_ge_15": _fraction(np.count_nonzero(two & one & (pt[:, 0] >= PLATEAU_PT)),
                                           np.count_nonzero(one & (pt[:, 0] >= PLATEAU_PT))),
            "plateau_single_window": _fraction(np.count_nonzero(fires[:, 0] & one & (pt[:, 0] >= PLATEAU_PT)),
                                               np.count_nonzero(one & (pt[:, 0] >= PLATEAU_PT))),
            "plateau_any_candidate": _fraction(np.count_nonzero((n_fire >= 1) & one & (pt[:, 0] >= PLATEAU_PT)),
                                               np.count_nonzero(one & (pt[:, 0] >= PLATEAU_PT))),
        },
        "background": {
            "two_fire": _fraction(np.count_nonzero(two & none), np.count_nonzero(none)),
            "any_fires": _fraction(np.count_nonzero((n_fire >= 1) & none), np.count_nonzero(none)),
            "single_window_fires": _fraction(np.count_nonzero(fires[:, 0] & none), np.count_nonzero(none)),
        },
    }


def plot_two_muon_efficiency(results: dict, path) -> Path:
    """Two-muon efficiency vs separation: sector logic (fires / matched) and the single window's reach."""
    from l0emu.results.plotting import errorbar_hist, hep_style, label, new_figure, save_figure

    with hep_style():
        fig, ax = new_figure(figsize=(10, 7))
        edges = np.asarray(results["default"]["two_muon"]["by_separation"]["edges"])
        curves = [
            ("default", "two_fire", "3 candidates: >= 2 fire at 10 GeV"),
            ("default", "two_fire_matched", "3 candidates: each muon in its own firing window"),
            ("hard", "two_fire", "3 candidates, hard background: >= 2 fire"),
            ("default", "single_window_holds_both", "single window: both muons inside it"),
        ]
        for sample, key, text in curves:
            binned = results[sample]["two_muon"]["by_separation"][key]
            errorbar_hist(ax, binned["value"], edges, binned["low"], binned["high"], label=text)
        ax.set_xlabel("separation of the two muons [strips]")
        ax.set_ylabel("two-muon efficiency")
        ax.set_ylim(0, 1.15)
        ax.set_xlim(0, 384)
        ax.legend(loc="center right", fontsize="x-small", title="both muons pT >= 15 GeV, shipped student",
                  title_fontsize="x-small")
        label(ax, "multi")
        return save_figure(fig, path)


def run_study(*, events: int, seed: int, seed_hard: int, min_hits_values=None, spec_path=None, output) -> dict:
    """Run the study on fresh ``multi`` samples; write multi_study.json and the plot into ``output``
    (``min_hits_values`` None: the sector logic's default for the spec's image rows)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    spec = read_spec(spec_path or default_spec_path())
    spec_file = spec_path or default_spec_path()
    emulator = Emulator.from_spec(spec)
    stride = int(spec["preprocessing"]["fragment"]["stride"])
    samples = {
        "default": settings_for_scenario("multi", seed=seed),
        "hard": settings_for_scenario("multi", seed=seed_hard, overrides=SCENARIOS["hard"]),
    }
    results = {"spec": "shipped default student" if spec_path is None else Path(spec_path).name, "stride": stride, "threshold": THRESHOLD, "by_min_hits": {}}
    for name, settings in samples.items():
        started = time.perf_counter()
        block = generate(settings, events)
        print_ = fingerprint_arrays(block.event_id, block.hit_offsets, block.hit_layer, block.hit_strip)
        check_generated_sample(SampleId(settings.scenario, settings.seed), print_, spec_file)
        for min_hits in min_hits_values or (None,):  # None: evaluate takes the sector logic's default
            res = evaluate(block, emulator, stride, min_hits=min_hits, pt_min=settings.pt_min)
            res["settings"] = settings.to_dict()
            results["by_min_hits"].setdefault(str(res["min_hits"]), {})[name] = res
            print(f"{name} min_hits={res['min_hits']}: two-muon {res['two_muon']['two_fire']['value']:.4f} "
                  f"one-muon 2fire {res['one_muon']['two_fire']['value']:.5f} "
                  f"background 2fire {res['background']['two_fire']['k']}/{res['background']['two_fire']['n']} "
                  f"({time.perf_counter() - started:.0f} s)")
    first = next(iter(results["by_min_hits"]))
    with atomic_path(out / "multi_study.json") as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1, sort_keys=True))
    plot_two_muon_efficiency(results["by_min_hits"][first], out / "two_muon_efficiency.png")
    print(f"wrote {out / 'multi_study.json'} and {out / 'two_muon_efficiency.png'}")
    return results

