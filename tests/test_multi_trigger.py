"""The trigger job on a multi-candidate spec (docs/multi_muon.md): branches, counts, tables, plots.

Two networks: a hand-built counting network whose every output can be worked out by hand (pT =
lit pixels in the window; charge = lit pixels in pooled columns 0-9 minus those in 10-15, so a
balanced image gives exactly 0; presence = lit pixels - 5.5, so a candidate counts from 6 lit
pixels), for the edge cases; and the shipped student with ``charge`` and ``presence`` outputs
reading its existing columns, on a simulated ``multi`` sample, against a numpy reference built
here from the emulator's outputs on each sector candidate.
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import uproot
from conftest import make_event, write_events
from test_trigger import PIXELS, assert_same_l0, counting_spec, read_l0, track

from l0emu import cli
from l0emu.cli.run import default_spec_path
from l0emu.fixedpoint.emulator import Emulator
from l0emu.errors import ConfigError
from l0emu.trigger.events import load_events
from l0emu.trigger.geometry import eta_to_strip, strip_to_eta
from l0emu.trigger.job import run_job, side_outputs
from l0emu.results.metrics import plateau_min_pt
from l0emu.results.multi_rates import N_SIGNAL, SEPARATION, SEPARATION_EDGES
from l0emu.schema import threshold_branch, two_muon_branch
from l0emu.trigger.sector import sector_candidates
from l0emu.fixedpoint.spec import read_spec, write_spec
from l0emu.trigger.logic import Trigger

LEFT_COLUMNS = 10  # the charge output: + for pooled columns 0-9, - for 10-15
THRESHOLDS = (5.0, 8.5)


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def counting_multi_spec():
    """test_trigger's counting network with a third output and the sector logic: pT = lit pixels,
    charge = lit pixels left minus right of LEFT_COLUMNS, presence = lit pixels - 5.5."""
    spec = counting_spec()
    spec["name"] = "counting_multi"
    spec["preprocessing"]["fragment"].update(candidates=3, min_hits=6)
    weights = []
    for pixel in range(PIXELS):  # weight mantissa 4 = 1.0 in ap_fixed<4,2>
        weights += [4, 0, 4 if pixel % 16 < LEFT_COLUMNS else -4]
    dense = spec["layers"][-1]
    dense.update(output_shape=[3], n_out=3, weights=weights, weights_shape=[PIXELS, 3], biases=[0, 2, 0])
    spec["outputs"] += [
        {"name": "charge", "index": 2, "scale": 2.0, "offset": 0.0, "unit": "e"},
        {"name": "presence", "index": 0, "scale": 2.0, "offset": -5.5, "unit": "1"},
    ]
    return spec


def student_multi_spec():
    """The shipped student with the sector logic and outputs that read its two columns:
    charge = local eta - 16 strips (+ in the window's right half), presence = pT - 7.5 GeV."""
    spec = copy.deepcopy(read_spec(default_spec_path()))
    spec["name"] = "student_multi_plumbing"
    spec["preprocessing"]["fragment"].update(candidates=3, min_hits=6)
    pt, eta = spec["outputs"]
    charge = {key: value for key, value in eta.items() if key != "frame"}  # a window-frame output is a position
    spec["outputs"] += [dict(charge, name="charge", unit="e", offset=-16.0), dict(pt, name="presence", unit="1", offset=-7.5)]
    return spec


# (hits, muons) per event, and what the counting network decides, worked out by hand
EDGE_EVENTS = [
    # empty crossing: candidate 0 exists (an empty window) but does not count
    ([], []),
    # tied pT 9 and 9: candidate 0 (window 88, track in columns 8-9: +) leads, not the - one (window 280)
    (track(104) + track(300), [(12.0, 0.1, 1), (7.0, -0.2, -1)]),
    # the same tie with the charges the other way round: candidate 0 (window 80, columns 10-11) is -
    (track(100) + track(304), [(5.0, 0.0, -1)]),
    # 4 lit pixels in column 9 and 4 in column 10 (window 80): charge exactly 0 -> +1; pT 8
    ([(layer, 99) for layer in range(4)] + [(layer, 100) for layer in range(4, 8)], [(9.0, 0.3, 1)]),
    # one more on the right: -1, pT 9
    ([(layer, 99) for layer in range(4)] + [(layer, 100) for layer in range(4, 9)], [(9.0, 0.3, -1)]),
    # 6 lit pixels count (presence exactly 0.5); 5 further ones are no candidate (min_hits 6)
    ([(layer, 200) for layer in range(6)] + [(layer, 350) for layer in range(5)], [(6.0, 0.0, 1), (4.0, 0.5, 1)]),
    # 5 lit pixels: a candidate of pT 5 that does not count, so nothing fires
    ([(layer, 200) for layer in range(5)], []),
    # three tracks of 7: all count, the first run of tied windows leads
    (track(40, 7) + track(200, 7) + track(340, 7), [(9.0, -0.8, 1), (8.0, 0.0, -1), (4.0, 0.8, 1)]),
]
#            n_mu charge pt  lead window start   l0_pt5 l0_pt8p5 2mu_pt5 2mu_pt8p5 true_charge true_pt2 n_signal
EXPECTED = [(0, 0, 0, None, False, False, False, False, 0, 0.0, 0),
            (2, 1, 9, 88, True, True, True, True, 1, 7.0, 2),
            (2, -1, 9, 80, True, True, True, True, -1, 0.0, 1),
            (1, 1, 8, 80, True, False, False, False, 1, 0.0, 1),
            (1, -1, 9, 80, True, True, False, False, -1, 0.0, 1),
            (1, 1, 6, 184, True, False, False, False, 1, 4.0, 2),
            (0, 0, 0, None, False, False, False, False, 0, 0.0, 0),
            (3, 1, 7, 24, True, False, True, False, 1, 8.0, 3)]


@pytest.fixture
def edge_file(tmp_path):
    events = [make_event(i, hits, muons) for i, (hits, muons) in enumerate(EDGE_EVENTS)]
    return write_events(tmp_path / "edges.root", events)


def test_edge_cases_are_decided_in_fixed_point_as_worked_out_by_hand(edge_file):
    trigger = Trigger(counting_multi_spec(), THRESHOLDS)
    columns = trigger.decide(load_events(str(edge_file), muons=True))
    for event, (n_mu, charge, pt, start, *fired, true_charge, true_pt2, n_signal) in enumerate(EXPECTED):
        got = {key: columns[key][event] for key in columns}
        assert (got["l0_n_mu"], got["l0_charge"], got["pt"]) == (n_mu, charge, pt), event
        # the leading candidate's global eta: window start + 16 strips, 0 where nothing counts
        eta_raw = 0 if start is None else (start << 7) + (64 << 5)
        assert got["eta_raw"] == eta_raw and got["pt_raw"] == pt * 2**6, event
        assert got["eta"] == (0 if start is None else np.float32(strip_to_eta(start + 16))), event
        names = [threshold_branch(5), threshold_branch(8.5), two_muon_branch(5), two_muon_branch(8.5)]
        assert [bool(got[b]) for b in names] == fired, event
        assert (got["true_charge"], got["true_pt2"], got[N_SIGNAL]) == (true_charge, true_pt2, n_signal), event
    assert np.isnan(columns[SEPARATION][[0, 2, 3, 4, 6]]).all()
    eta = {1: (0.1, -0.2), 5: (0.0, 0.5), 7: (-0.8, 0.0)}
    for event, (a, b) in eta.items():
        want = abs(eta_to_strip(np.float32(a)) - eta_to_strip(np.float32(b)))
        assert columns[SEPARATION][event] == want


def test_a_chunk_read_without_every_muon_is_refused(edge_file):
    with pytest.raises(ConfigError, match="edges.root.*needs every muon's truth; read with muons=True"):
        Trigger(counting_multi_spec(), THRESHOLDS).decide(load_events(str(edge_file)))


def test_job_writes_the_multi_branches_tables_and_plots(tmp_path, edge_file, capsys):
    out = tmp_path / "l0.root"
    rc = cli.main(["run", str(edge_file), "--spec", str(write_spec(counting_multi_spec(), tmp_path / "spec.json")),
                   "-o", str(out), "--thresholds", "5,8.5", "--no-progress"])
    assert rc == 0
    arrays, hists = read_l0(out)
    assert list(arrays) == ["event_id", "pt", "eta", "pt_raw", "eta_raw", "l0_pt5", "l0_pt8p5", "l0_2mu_pt5",
                            "l0_2mu_pt8p5", "l0_n_mu", "l0_charge", "n_muons", "true_pt", "true_eta", "true_charge",
                            "true_pt2"]
    types = {key: value.dtype for key, value in arrays.items()}
    assert (types["l0_n_mu"], types["l0_charge"], types["true_charge"], types["true_pt2"]) == (
        np.uint8, np.int8, np.int8, np.float32)
    assert arrays["l0_n_mu"].tolist() == [e[0] for e in EXPECTED]
    assert arrays["l0_charge"].tolist() == [e[1] for e in EXPECTED]
    assert arrays["l0_2mu_pt5"].tolist() == [e[6] for e in EXPECTED]
    assert arrays["true_pt2"].tolist() == [e[9] for e in EXPECTED]
    # two-muon turn-ons vs the second muon's pT: events 1 (7 GeV), 5 (4 GeV), 7 (8 GeV)
    assert hists["h_true_pt2_denominator"].nonzero()[0].tolist() == [4, 7, 8]
    assert hists["h_l0_2mu_pt5_numerator"].nonzero()[0].tolist() == [7, 8]  # event 5 fires one candidate only
    paths = side_outputs(out, multi=True)
    for key in ("turn_on_2mu_png", "charge_png", "muon_count_png", "separation_png"):
        assert paths[key].read_bytes()[:4] == b"\x89PNG", key
    table = json.loads(paths["json"].read_text())
    rows = {row["branch"]: row for row in table["rows"]}
    assert list(rows) == ["l0_pt5", "l0_pt8p5", "l0_2mu_pt5", "l0_2mu_pt8p5"]
    # events 1, 5, 7 have two signal muons; 2mu_pt5 fires on 1 and 7; background: events 0 and 6, none fires
    two = rows["l0_2mu_pt5"]
    assert (two["signal_events"], two["background_events"], two["background_fired"]) == (3, 2, 0)
    # one signal muon: events 2, 3, 4; event 2 fires two candidates
    assert (two["one_muon_events"], two["one_muon_fired"]) == (3, 1)
    multi = table["multi"]
    # true count rows 0..3 x l0_n_mu 0..3
    assert multi["muon_count"]["events"] == [[2, 0, 0, 0], [0, 2, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
    # one signal muon with a counted candidate: events 2 (5 GeV, -1 = -1), 3 (9, +1 = +1), 4 (9, -1 = -1)
    charge = multi["charge_identification"]
    assert (sum(charge["n"]), sum(charge["k"]), charge["n"][9], charge["k"][5]) == (3, 3, 2, 1)
    assert charge["above_pt_min"]["n"] == 0 and charge["above_pt_min_gev"] == 10
    # pairs both >= 7.5 GeV (2mu_pt5): event 7 (9 and 8 GeV), fired; none >= 12.75 GeV
    separation = multi["two_muon_separation"]["by_branch"]
    assert (sum(separation["l0_2mu_pt5"]["n"]), sum(separation["l0_2mu_pt5"]["k"])) == (1, 1)
    assert sum(separation["l0_2mu_pt8p5"]["n"]) == 0
    text = paths["csv"].read_text()
    assert "\n# muon count: " in text and "\n# two-muon efficiency vs separation: " in text
    rate_lines = [line for line in text.split("\n\n")[0].splitlines() if not line.startswith("#")]
    assert [r["branch"] for r in csv.DictReader(rate_lines)] == list(rows)
    assert "\n  2mu_pt5                5       1.0000" in capsys.readouterr().out  # the item column


def test_chunks_threads_and_a_whole_file_give_the_same_multi_output(tmp_path, edge_file, monkeypatch):
    import l0emu.trigger.job as job
    import l0emu.trigger.logic as trigger_module

    events = [make_event(i, *EDGE_EVENTS[i % len(EDGE_EVENTS)]) for i in range(40)]
    path = write_events(tmp_path / "ev.root", events)
    monkeypatch.setattr(job, "compute_threads", lambda: 1)
    whole = run_job([str(path)], counting_multi_spec(), tmp_path / "a.root", THRESHOLDS, step_size=1000, progress=False)
    monkeypatch.setattr(job, "compute_threads", lambda: 3)
    monkeypatch.setattr(trigger_module, "_MIN_BLOCK_EVENTS", 1)
    split = run_job([str(path)], counting_multi_spec(), tmp_path / "b.root", THRESHOLDS, step_size=7, progress=False)
    assert_same_l0(tmp_path / "a.root", tmp_path / "b.root")
    assert json.dumps(whole.rows) == json.dumps(split.rows)
    a, b = (json.loads(side_outputs(tmp_path / f"{n}.root")["json"].read_text())["multi"] for n in "ab")
    assert json.dumps(a) == json.dumps(b)


def test_a_spec_without_candidates_writes_todays_branches_only(tmp_path, edge_file):
    spec = counting_multi_spec()
    del spec["preprocessing"]["fragment"]["candidates"], spec["preprocessing"]["fragment"]["min_hits"]
    result = run_job([str(edge_file)], spec, tmp_path / "l0.root", THRESHOLDS, progress=False)
    arrays, hists = read_l0(tmp_path / "l0.root")
    assert list(arrays) == ["event_id", "pt", "eta", "pt_raw", "eta_raw", "l0_pt5", "l0_pt8p5", "n_muons", "true_pt",
                            "true_eta"]
    assert not any("2mu" in h or "pt2" in h for h in hists) and result.multi is None
    assert set(result.outputs) == {"root", "csv", "json", "turn_on_png"}
    assert "\n\n" not in side_outputs(tmp_path / "l0.root")["csv"].read_text()


# ------------------------------------------------------------------ the student on a multi sample


def _reference(path, spec, thresholds):
    """Every multi column from the emulator's physical outputs on each sector candidate, in floats,
    and the truth from the file's jagged branches: independent of the trigger's fixed-point code."""
    emulator = Emulator(spec)
    chunk = load_events(str(path))
    starts, pooled, n_found = sector_candidates(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8)
    present = starts >= 0
    phys = [emulator.predict(np.ascontiguousarray(pooled[:, k])) for k in range(3)]
    value = {name: np.stack([p[name] for p in phys], axis=1) for name in ("pt", "eta", "charge", "presence")}
    counted = present & (value["presence"] >= 0.5)
    with uproot.open(path) as f:
        truth = f["events"].arrays(["muon_pt", "muon_eta", "muon_charge"])
    ref = {key: [] for key in ("l0_n_mu", "l0_charge", "pt", "eta", "true_charge", "true_pt2", "n_signal", "separation")}
    ref.update({b: [] for t in thresholds for b in (threshold_branch(t), two_muon_branch(t))})
    for event in range(len(starts)):
        ks = [k for k in range(3) if counted[event, k]]
        lead = max(ks, key=lambda k: (value["pt"][event, k], -k)) if ks else None
        ref["l0_n_mu"].append(len(ks))
        ref["l0_charge"].append(0 if lead is None else (1 if value["charge"][event, lead] >= 0 else -1))
        ref["pt"].append(0.0 if lead is None else np.float32(value["pt"][event, lead]))
        ref["eta"].append(0.0 if lead is None else np.float32(strip_to_eta(starts[event, lead] + value["eta"][event, lead])))
        for t in thresholds:
            above = sum(value["pt"][event, k] >= t for k in ks)
            ref[threshold_branch(t)].append(above >= 1)
            ref[two_muon_branch(t)].append(above >= 2)
        pts = truth["muon_pt"][event].to_list()
        order = sorted(range(len(pts)), key=lambda i: (-pts[i], i))
        ref["true_charge"].append(int(truth["muon_charge"][event][order[0]]) if pts else 0)
        ref["true_pt2"].append(pts[order[1]] if len(pts) > 1 else 0.0)
        ref["n_signal"].append(sum(p >= 3.0 for p in pts))
        etas = truth["muon_eta"][event].to_list()
        ref["separation"].append(abs(eta_to_strip(etas[order[0]]) - eta_to_strip(etas[order[1]])) if len(pts) > 1 else np.nan)
    return {key: np.asarray(v) for key, v in ref.items()}


def test_student_multi_spec_on_a_simulated_multi_sample_equals_the_reference(tmp_path):
    sample = tmp_path / "multi.root"
    assert cli.main(["simulate", "-n", "3000", "--seed", "77", "--scenario", "multi", "-o", str(sample)]) == 0
    spec, thresholds = student_multi_spec(), (5.0, 10.0)
    out = tmp_path / "l0.root"
    result = run_job([str(sample)], spec, out, thresholds, step_size=1100, progress=False)
    arrays, _ = read_l0(out)
    ref = _reference(sample, spec, thresholds)
    for key in ("l0_n_mu", "l0_charge", "pt", "eta", "true_charge", "true_pt2",
                *(b for t in thresholds for b in (threshold_branch(t), two_muon_branch(t)))):
        np.testing.assert_array_equal(arrays[key], ref[key].astype(arrays[key].dtype), err_msg=key)
    # the sample exercises every case: no, one, two and three counted candidates, both charges
    assert set(ref["l0_n_mu"]) == {0, 1, 2, 3} and set(ref["l0_charge"]) == {-1, 0, 1}
    # the tables from the reference
    table = json.loads(side_outputs(out)["json"].read_text())
    matrix = np.zeros((4, 4), np.int64)
    np.add.at(matrix, (np.minimum(ref["n_signal"], 3), ref["l0_n_mu"]), 1)
    assert table["multi"]["muon_count"]["events"] == matrix.tolist()
    single = (ref["n_signal"] == 1) & (ref["l0_n_mu"] > 0)
    true_pt = arrays["true_pt"]
    high = single & (true_pt >= 10.0)
    correct = ref["l0_charge"] == ref["true_charge"]
    above = table["multi"]["charge_identification"]["above_pt_min"]
    assert (above["n"], above["k"]) == (int(high.sum()), int((high & correct).sum()))
    for t in thresholds:
        b = two_muon_branch(t)
        pair = (ref["n_signal"] >= 2) & (ref["true_pt2"] >= plateau_min_pt(t))
        bins = np.clip(np.searchsorted(SEPARATION_EDGES, ref["separation"][pair], side="right") - 1, 0, 11)
        by = table["multi"]["two_muon_separation"]["by_branch"][b]
        assert by["n"] == np.bincount(bins, minlength=12).tolist()
        assert by["k"] == np.bincount(bins[ref[b][pair]], minlength=12).tolist()
        row = next(r for r in result.rows if r["branch"] == b)
        one = ref["n_signal"] == 1
        assert (row["one_muon_events"], row["one_muon_fired"]) == (int(one.sum()), int((one & ref[b]).sum()))
        none = ref["n_signal"] == 0
        assert (row["background_events"], row["background_fired"]) == (int(none.sum()), int((none & ref[b]).sum()))
        on_plateau = pair
        assert (row["plateau_events"], round(row["plateau_efficiency"] * row["plateau_events"])) == (
            int(on_plateau.sum()), int((on_plateau & ref[b]).sum()))
    assert sum(by["n"]) > 100  # the sample holds pairs above 15 GeV


def test_network_images_of_a_multi_spec_are_its_present_candidates(tmp_path, edge_file):
    # what validate, run --check-firmware and rtl --events feed the C-simulation and the RTL
    from l0emu.trigger.events import first_fragments, first_network_images

    spec = counting_multi_spec()
    chunk = load_events(str(edge_file))
    _, pooled, found = sector_candidates(chunk.hit_offsets, chunk.hit_layer, chunk.hit_strip, 8)
    n = len(found) - 1  # stops one event short: the last event's candidates are left out
    images, read = first_network_images([str(edge_file)], n, spec)
    assert read == n and len(images) == int(found[:n].sum()) > n
    np.testing.assert_array_equal(images, np.concatenate([pooled[e, : found[e]] for e in range(n)]))
    del spec["preprocessing"]["fragment"]["candidates"], spec["preprocessing"]["fragment"]["min_hits"]
    images, read = first_network_images([str(edge_file)], n, spec)
    np.testing.assert_array_equal(images, first_fragments([str(edge_file)], n, 8))
    assert read == n


# ------------------------------------------------------------------ the shipped multi network


@pytest.fixture(scope="module")
def multi_sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "multi.root"
    assert cli.main(["simulate", "-n", "3000", "--seed", "78", "--scenario", "multi", "-o", str(path)]) == 0
    return path


def test_model_multi_runs_the_shipped_multi_network(tmp_path, multi_sample):
    out = tmp_path / "l0.root"
    assert cli.main(["run", str(multi_sample), "--model", "multi", "-o", str(out), "--no-progress"]) == 0
    table = json.loads(side_outputs(out)["json"].read_text())
    assert table["spec"] == "multi_student"
    arrays, _ = read_l0(out)
    assert set(arrays["l0_n_mu"]) <= {0, 1, 2, 3} and "l0_2mu_pt10" in arrays
    # a trained network, not plumbing: it finds the charge of nearly every lone muon above 10 GeV
    above = table["multi"]["charge_identification"]["above_pt_min"]
    assert above["n"] > 300 and above["k"] / above["n"] > 0.97


def test_an_unknown_model_and_model_with_spec_are_refused(tmp_path, multi_sample, capsys):
    out = tmp_path / "l0.root"
    assert cli.main(["run", str(multi_sample), "--model", "mult", "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--model 'mult' is not a shipped network" in err and "did you mean 'multi'" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: --spec and --model exclude each other
        cli.main(["run", str(multi_sample), "--model", "multi", "--spec", "x.json", "-o", str(out)])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.hls4ml
def test_check_firmware_of_the_shipped_multi_network_on_its_candidate_windows(tmp_path, multi_sample, capsys):
    pytest.importorskip("hls4ml")
    rc = cli.main(["run", str(multi_sample), "--model", "multi", "-o", str(tmp_path / "l0.root"), "--no-progress",
                   "--check-firmware", "400"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "firmware check: 400 events (" in out and "candidate windows)" in out
    assert "network inputs with any differing output bit: 0" in out
