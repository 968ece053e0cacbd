"""``l0emu run`` on RNTuple event files and ``--output-format rntuple``: the same job as with TTrees.

Event files are written twice from the same events, as a TTree and as an RNTuple of several
clusters; the trigger (the counting spec of test_trigger, whose answers are known) must give
identical decisions, histograms and tables, and bad RNTuple inputs the errors a TTree gets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from conftest import make_event, write_events
from test_trigger import counting_spec, sample_events

from l0emu import cli
from l0emu.trigger.job import run_job
from l0emu.results.rates import PT_BINS
from l0emu.schema import L0_TREE
from l0emu.fixedpoint.spec import write_spec


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


@pytest.fixture
def spec_path(tmp_path):
    return write_spec(counting_spec(), tmp_path / "spec.json")


def _read(path):
    with uproot.open(path) as f:
        table = f[L0_TREE]
        columns = table.arrays(library="np")
        types = {name: columns[name].dtype for name in columns}
        histograms = {k: f[k] for k in f.keys(cycle=False) if k.startswith("h_")}
        return f.classnames()[f"{L0_TREE};1"], columns, types, {k: (h.classname, h.values(), h.axis().edges()) for k, h in histograms.items()}


def test_rntuple_events_give_identical_decisions_histograms_and_tables(tmp_path):
    events = sample_events(90)
    ttree = write_events(tmp_path / "t.root", events, entries_per_cluster=32)
    rntuple = write_events(tmp_path / "n.root", events, fmt="rntuple", entries_per_cluster=32)
    # chunks of 7 entries cross the RNTuple's cluster boundaries
    a = run_job([str(ttree)], counting_spec(), tmp_path / "from_ttree.root", (5.0, 8.0), step_size=7, progress=False)
    b = run_job([str(rntuple)], counting_spec(), tmp_path / "from_rntuple.root", (5.0, 8.0), step_size=7, progress=False)
    _, columns_a, _, hists_a = _read(a.outputs["root"])
    _, columns_b, _, hists_b = _read(b.outputs["root"])
    assert sorted(columns_a) == sorted(columns_b)
    for name in columns_a:
        np.testing.assert_array_equal(columns_b[name], columns_a[name], err_msg=name)
    assert columns_a["l0_pt5"].sum() > 0 and not columns_a["l0_pt8"].all()  # decisions that can differ
    for name, (_, values, _) in hists_a.items():
        np.testing.assert_array_equal(hists_b[name][1], values, err_msg=name)
    assert json.dumps(a.rows) == json.dumps(b.rows)
    assert a.n_events == b.n_events == 90


def test_output_format_rntuple_reads_back_with_the_same_columns_and_values(tmp_path, spec_path, capsys):
    events = write_events(tmp_path / "ev.root", sample_events(60))
    outputs = {}
    for fmt in ("ttree", "rntuple"):
        out = tmp_path / f"l0_{fmt}.root"
        rc = cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(out), "--thresholds", "5,7.5",
                       "--output-format", fmt, "--no-progress"])
        assert rc == 0, capsys.readouterr().err
        outputs[fmt] = _read(out)
    kind_t, columns_t, types_t, hists_t = outputs["ttree"]
    kind_n, columns_n, types_n, hists_n = outputs["rntuple"]
    assert (kind_t, kind_n) == ("TTree", "ROOT::RNTuple")
    assert types_n == types_t  # every column, with its dtype
    assert {"event_id", "pt", "eta", "pt_raw", "eta_raw", "l0_pt5", "l0_pt7p5", "n_muons", "true_pt", "true_eta"} == set(types_t)
    for name in columns_t:
        np.testing.assert_array_equal(columns_n[name], columns_t[name], err_msg=name)
    # the histograms stay TH1D beside either table, on the turn-on binning
    assert set(hists_n) == set(hists_t) == {"h_true_pt_denominator", "h_l0_pt5_numerator", "h_l0_pt7p5_numerator"}
    for name, (classname, values, edges) in hists_t.items():
        assert classname == hists_n[name][0] == "TH1D"
        np.testing.assert_array_equal(edges, PT_BINS)
        np.testing.assert_array_equal(hists_n[name][1], values)
    signal = columns_t["true_pt"] >= 3.0
    assert hists_t["h_true_pt_denominator"][1].sum() == signal.sum()
    assert hists_t["h_l0_pt5_numerator"][1].sum() == (columns_t["l0_pt5"] & signal).sum()


def test_unknown_output_format_is_refused(tmp_path, spec_path, capsys):
    events = write_events(tmp_path / "ev.root", sample_events(6))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--output-format", "parquet"])
    assert exit_info.value.code == 2 and "--output-format" in capsys.readouterr().err
    assert not (tmp_path / "l0.root").exists()


def _missing_field(d, fmt):
    event = make_event(0, [(0, 1)])
    event["hit_strips"] = event.pop("hit_strip")
    return write_events(d / "b.root", [event], dtypes={"hit_strips": np.int16}, fmt=fmt)


def _truncated(d, fmt):
    good = write_events(d / "good.root", sample_events(300), fmt=fmt)
    cut = d / "cut.root"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    good.unlink()
    return cut


BAD_INPUTS = {
    # name: (make(d, fmt), message for a TTree, message for an RNTuple)
    "missing-branch": (_missing_field, "has no branch 'hit_strip' (did you mean 'hit_strips'", "has no field 'hit_strip' (did you mean 'hit_strips'"),
    "wrong-type": (
        lambda d, fmt: write_events(d / "w.root", [make_event(0, [(0, 1)])], dtypes={"hit_layer": np.int32}, fmt=fmt),
        "events/hit_layer has type", "events/hit_layer has type 'std::vector<std::int32_t>', the event schema needs jagged uint8",
    ),
    "out-of-range": (
        lambda d, fmt: write_events(d / "r.root", [make_event(0, [(0, 1)]), make_event(1, [(2, 400)])], fmt=fmt),
        "events/hit_strip entry 1: value 400 is outside the sector", "events/hit_strip entry 1: value 400 is outside the sector",
    ),
    "truncated": (_truncated, "cut.root", "cut.root"),
}


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_rntuple_inputs_give_the_errors_a_ttree_gets(tmp_path, spec_path, capsys, case, fmt):
    make, ttree_message, rntuple_message = BAD_INPUTS[case]
    path = make(tmp_path, fmt)
    rc = cli.main(["run", str(path), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and path.name in err
    assert (ttree_message if fmt == "ttree" else rntuple_message) in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("l0")) == []
