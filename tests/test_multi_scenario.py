"""The `multi` simulation scenario: 0-3 muons per crossing, fractions, truth sorting, metadata, determinism."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from l0emu import cli
from l0emu.errors import ConfigError
from l0emu.simulation import events_io
from l0emu.simulation.generator import generate
from l0emu.simulation.settings import SCENARIOS, settings_for_scenario

N_SIGMA = 5.0  # a statistical check fails beyond this many binomial standard errors
N_EVENTS = 40_000


@pytest.fixture(scope="module")
def multi_block():
    settings = settings_for_scenario("multi", seed=17)
    return settings, generate(settings, N_EVENTS)


def _digest(block) -> str:
    digest = hashlib.sha256()
    for field in dataclasses.fields(block):
        digest.update(np.ascontiguousarray(getattr(block, field.name)).tobytes())
    return digest.hexdigest()


def test_muon_count_fractions_match_the_settings(multi_block):
    settings, block = multi_block
    fractions = settings.muon_count_fractions()
    assert fractions == [0.25, 0.30, 0.30, 0.15]
    counts = np.bincount(block.n_muons, minlength=4)
    assert len(counts) == 4  # never more than three muons
    for k, p in enumerate(fractions):
        sigma = np.sqrt(p * (1 - p) / len(block))
        measured = counts[k] / len(block)
        assert abs(measured - p) < N_SIGMA * sigma, f"{k} muons: measured {measured:.4f}, expected {p}"


def test_truth_is_per_muon_sorted_by_pt_with_independent_eta_and_both_charges(multi_block):
    settings, block = multi_block
    offsets = block.muon_offsets
    assert np.array_equal(np.diff(offsets), block.n_muons)
    pt, eta, charge = block.muon_pt, block.muon_eta, block.muon_charge
    first = offsets[:-1][block.n_muons >= 2]
    assert (pt[first] >= pt[first + 1]).all()
    three = offsets[:-1][block.n_muons == 3]
    assert (pt[three + 1] >= pt[three + 2]).all()
    assert settings.pt_min <= pt.min() and pt.max() <= settings.pt_max
    assert settings.eta_min <= eta.min() and eta.max() <= settings.eta_max
    # both charges, independently per muon: in two-muon crossings, opposite charges in about half
    pairs = offsets[:-1][block.n_muons == 2]
    opposite = np.mean(charge[pairs] != charge[pairs + 1])
    sigma = np.sqrt(0.25 / len(pairs))
    assert abs(opposite - 0.5) < N_SIGMA * sigma
    # eta of the two muons uncorrelated (independent draws): |corr| within a few 1/sqrt(n)
    corr = np.corrcoef(eta[pairs], eta[pairs + 1])[0, 1]
    assert abs(corr) < N_SIGMA / np.sqrt(len(pairs))


def test_every_muon_leaves_hits_so_two_muon_crossings_have_more(multi_block):
    _, block = multi_block
    hits = np.diff(block.hit_offsets)
    mean = [hits[block.n_muons == k].mean() for k in range(4)]
    # ~11 muon hits per muon on ~3.5 noise hits: each muon adds at least 8 on average
    assert all(mean[k + 1] - mean[k] > 8 for k in range(3)), mean


def test_hard_background_combines_with_multi_through_overrides():
    settings = settings_for_scenario("multi", seed=3, overrides={k: str(v) for k, v in SCENARIOS["hard"].items()})
    assert settings.scenario == "multi" and settings.noise_rate == 3e-3 and settings.segment_rate == 0.5
    assert settings.muon_count_fractions() == [0.25, 0.30, 0.30, 0.15]
    block = generate(settings, 4000)
    # soft muons (below pt_min) ride on background crossings only, never beside a signal muon
    leading = block.muon_pt[block.muon_offsets[:-1][block.n_muons >= 1]]
    assert (leading < settings.pt_min).any()
    assert (block.muon_pt[block.muon_offsets[:-1][block.n_muons >= 2]] >= settings.pt_min).all()
    # three times the noise plus segments and correlated clusters: far more hits than plain multi
    plain = generate(settings_for_scenario("multi", seed=3), 4000)
    assert len(block.hit_layer) > 1.5 * len(plain.hit_layer)


@pytest.mark.parametrize(("overrides", "named"), [
    ({"two_muon_fraction": 0.5, "three_muon_fraction": 0.3}, "must be <= 1"),
    ({"three_muon_fraction": -0.1}, "three_muon_fraction"),
    ({"max_muons": 2}, "max_muons"),
    ({"two_muon_fraction": "lots"}, "two_muon_fraction"),
])
def test_impossible_multi_settings_name_the_setting(overrides, named):
    with pytest.raises(ConfigError, match=named):
        settings_for_scenario("multi", overrides=overrides)


def test_same_seed_same_events_and_the_file_carries_the_fractions(tmp_path, multi_block):
    settings, block = multi_block
    again = generate(settings, 5000)
    assert _digest(again) == _digest(block.slice(0, 5000))
    path = tmp_path / "multi.root"
    rc = cli.main(["simulate", "-n", "5000", "--seed", "17", "--scenario", "multi", "--chunk-size", "999", "-o", str(path)])
    assert rc == 0
    metadata = events_io.read_metadata(path)
    assert metadata["muon_count_fractions"] == [0.25, 0.30, 0.30, 0.15]
    assert metadata["settings"]["two_muon_fraction"] == 0.30 and metadata["settings"]["three_muon_fraction"] == 0.15
    stored = events_io.read_settings(path)
    assert stored == settings
    assert _digest(events_io.read_events(path)) == _digest(again)


# The draws of the existing scenarios, pinned: the multi scenario's count draw must not change
# them (digests of the generator before the multi scenario existed; numpy pinned in constraints.txt).
@pytest.mark.parametrize(("scenario", "digest"), [
    ("default", "c0458a9d7a2949f65627948579168cffacd77d5066a911ce6670021e1ee47a91"),
    ("hard", "9cb19fa08b11363553aa7088d65066a9ec10541cdeb9b867227403854d047bb5"),
])
def test_existing_scenarios_are_unchanged(scenario, digest):
    settings = settings_for_scenario(scenario, seed=12)
    assert settings.muon_count_fractions() is None
    assert _digest(generate(settings, 5000)) == digest


def test_cli_multi_with_the_hard_background(tmp_path):
    path = tmp_path / "multi_hard.root"
    sets = [arg for key, value in SCENARIOS["hard"].items() for arg in ("--set", f"{key}={value}")]
    rc = cli.main(["simulate", "-n", "2000", "--seed", "9", "--scenario", "multi", *sets, "-o", str(path)])
    assert rc == 0
    stored = events_io.read_settings(path)
    expected = settings_for_scenario("multi", seed=9, overrides=SCENARIOS["hard"])
    assert stored == expected and stored.segment_rate == 0.5 and stored.three_muon_fraction == 0.15
    assert _digest(events_io.read_events(path)) == _digest(generate(expected, 2000))
