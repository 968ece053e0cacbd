"""The trigger job (``l0emu run``) on tiny files with a hand-built spec whose answers are known.

The spec's network reads a 9x16 fragment and outputs pT = number of lit pixels in the
window (GeV) and a local eta of half the window: decisions can be worked out by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from conftest import make_event, write_events

from l0emu import cli
from l0emu.trigger.events import load_events
from l0emu.trigger.geometry import strip_to_eta
from l0emu.trigger.job import run_job, side_outputs
from l0emu.schema import L0_TREE
from l0emu.fixedpoint.spec import write_spec
from l0emu.trigger.logic import Trigger

# input ap_ufixed<2,1>: mantissa = 2 * value = lit-pixel count (0..2)
# pt unit: sum of pixel values, i.e. (lit pixels)/2; scale 2 GeV -> pT = lit pixels
PIXELS = 9 * 16


def counting_spec(stride=8):
    dense = {
        "name": "count", "op": "dense", "input_shape": [PIXELS], "output_shape": [2], "n_in": PIXELS, "n_out": 2,
        "weight_type": "ap_fixed<4,2>", "bias_type": "ap_fixed<4,2>", "accum_type": "ap_fixed<16,9>",
        "result_type": "ap_fixed<16,9>",
        # weight mantissa 4 = 1.0 for pt, 0 for eta; eta bias mantissa 2 = 0.5 (window centre)
        "weights": [4, 0] * PIXELS, "weights_shape": [PIXELS, 2], "biases": [0, 2], "product": "mult",
    }
    flatten = {"name": "flatten", "op": "flatten", "input_shape": [9, 16, 1], "output_shape": [PIXELS],
               "result_type": "ap_ufixed<2,1>"}
    return {
        "format": "l0emu-spec/2",
        "name": "counting",
        "source": {"io_type": "io_parallel"},
        "inputs": [{"name": "image", "shape": [9, 16, 1], "type": "ap_ufixed<2,1>"}],
        "preprocessing": {"image": [9, 384], "fragment": {"window": 32, "pool": 2, "stride": stride}},
        "layers": [flatten, dense],
        "outputs": [
            {"name": "pt", "index": 0, "scale": 2.0, "offset": 0.0, "unit": "GeV"},
            {"name": "eta", "index": 1, "scale": 32.0, "offset": 0.0, "unit": "strip", "frame": "window"},
        ],
    }


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("L0EMU_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))


def track(strip0, n_layers=9):
    return [(layer, strip0 + layer // 3) for layer in range(n_layers)]


def sample_events(n=60, seed=0):
    """Muons with tracks of 4..9 lit pixels, background with scattered noise, empty crossings."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            n_layers = 4 + i % 6
            events.append(make_event(i, track(int(rng.integers(20, 340)), n_layers), [(float(3 + i % 17), 0.1, 1)]))
        elif kind == 1:
            hits = [(int(rng.integers(0, 9)), int(rng.integers(0, 384))) for _ in range(int(rng.integers(1, 6)))]
            events.append(make_event(i, hits))
        else:
            events.append(make_event(i))
    return events


@pytest.fixture
def spec_path(tmp_path):
    return write_spec(counting_spec(), tmp_path / "spec.json")


def read_l0(path):
    with uproot.open(path) as f:
        return f[L0_TREE].arrays(library="np"), {k: f[k].values() for k in f.keys(cycle=False) if k.startswith("h_")}


def read_l0_histograms(path):
    with uproot.open(path) as f:
        assert L0_TREE not in f, "l0.root of a distributed run holds no tree: the workers' parts do"
        return None, {k: f[k].values() for k in f.keys(cycle=False) if k.startswith("h_")}


def assert_same_l0(path_a, path_b):
    """Every l0 branch and every histogram of two outputs equal, value for value."""
    (a, ha), (b, hb) = read_l0(path_a), read_l0(path_b)
    assert a.keys() == b.keys() and ha.keys() == hb.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for key in ha:
        np.testing.assert_array_equal(ha[key], hb[key])


def test_decisions_are_worked_out_in_fixed_point(tiny_events):
    trigger = Trigger(counting_spec(), (5.0, 9.0, 10.0))
    columns = trigger.decide(load_events(str(tiny_events)))
    # event 0: a 9-pixel track -> pT 9 GeV exactly; fires 5 and 9 (>=), not 10
    assert columns["pt"][0] == np.float32(9.0) and columns["pt_raw"][0] == 9 * 2**7 // 2
    assert [bool(columns[b][0]) for b in ("l0_pt5", "l0_pt9", "l0_pt10")] == [True, True, False]
    # event 1: two noise hits far apart -> at most one lit pixel in any window
    assert columns["pt"][1] == np.float32(1.0) and not columns["l0_pt5"][1]
    # global eta = window start + 16 strips, rebuilt from raw integers
    start = 184  # strips 200-202 lie wholly in the windows starting 176, 184, 192, 200: the middle of the run (index (22+25)//2)
    expected_raw = (start << 7) + (64 << 5)  # local eta mantissa 0.5 * 2^7 = 64, scale 32 = << 5
    assert columns["eta_raw"][0] == expected_raw
    assert columns["eta"][0] == np.float32(strip_to_eta(expected_raw / 2**7))
    assert columns["true_pt"][0] == np.float32(12.0) and columns["n_muons"].tolist() == [1, 0, 0]


def test_job_writes_the_l0_tree_histograms_tables_and_plot(tmp_path, spec_path):
    events = write_events(tmp_path / "ev.root", sample_events())
    out = tmp_path / "l0.root"
    rc = cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(out), "--thresholds", "5,7.5", "--no-progress"])
    assert rc == 0
    arrays, hists = read_l0(out)
    assert list(arrays) == ["event_id", "pt", "eta", "pt_raw", "eta_raw", "l0_pt5", "l0_pt7p5", "n_muons", "true_pt", "true_eta"]
    assert arrays["pt"].dtype == np.float32 and arrays["l0_pt7p5"].dtype == np.bool_ and arrays["event_id"].dtype == np.uint64
    np.testing.assert_array_equal(arrays["event_id"], np.arange(60))
    np.testing.assert_array_equal(arrays["l0_pt5"], arrays["pt"] >= 5)
    signal = arrays["true_pt"] >= 3
    assert set(hists) == {"h_true_pt_denominator", "h_l0_pt5_numerator", "h_l0_pt7p5_numerator"}
    assert hists["h_true_pt_denominator"].sum() == signal.sum()
    assert hists["h_l0_pt5_numerator"].sum() == (arrays["l0_pt5"] & signal).sum()
    paths = side_outputs(out)
    table = json.loads(paths["json"].read_text())
    assert [r["branch"] for r in table["rows"]] == ["l0_pt5", "l0_pt7p5"]
    fake = table["rows"][0]
    assert fake["background_events"] == int((~signal).sum())
    assert fake["background_fired"] == int((arrays["l0_pt5"] & ~signal).sum())
    assert "40 MHz" in table["assumptions"]["description"]
    assert paths["csv"].read_text().startswith("# L0 rate = 40 MHz")
    assert paths["turn_on_png"].read_bytes()[:4] == b"\x89PNG"


def test_same_inputs_give_identical_outputs(tmp_path, spec_path):
    events = write_events(tmp_path / "ev.root", sample_events())
    results = []
    for name in ("a.root", "b.root"):
        run_job([str(events)], counting_spec(), tmp_path / name, (5.0,), step_size=7, progress=False)
        results.append(read_l0(tmp_path / name))
    for key in results[0][0]:
        np.testing.assert_array_equal(results[0][0][key], results[1][0][key])


def test_two_worker_dask_cluster_equals_single_process(tmp_path):
    pytest.importorskip("dask.distributed")
    files = [str(write_events(tmp_path / f"ev{i}.root", sample_events(45, seed=i))) for i in range(2)]
    single = run_job(files, counting_spec(), tmp_path / "single.root", (5.0, 8.0), step_size=10, progress=False)
    spread = run_job(files, counting_spec(), tmp_path / "dask.root", (5.0, 8.0), step_size=10, workers=2, progress=False)
    # the workers wrote the l0 tree, one part per unit of 10 events; l0.root holds the histograms
    parts = sorted((tmp_path / "dask_parts").iterdir())
    assert [p.name for p in parts] == [f"part-{k:05d}.root" for k in range(10)]
    assert spread.outputs["parts"] == tmp_path / "dask_parts"
    (tree, histograms), (_, spread_histograms) = read_l0(tmp_path / "single.root"), read_l0_histograms(tmp_path / "dask.root")
    joined = uproot.concatenate([f"{p}:{L0_TREE}" for p in parts], library="np")
    assert tree.keys() == joined.keys() and histograms.keys() == spread_histograms.keys()
    for key in tree:
        np.testing.assert_array_equal(tree[key], joined[key])
    for key in histograms:
        np.testing.assert_array_equal(histograms[key], spread_histograms[key])
    assert json.dumps(single.rows) == json.dumps(spread.rows)  # nan-aware: NaN prints as NaN
    for key in ("csv", "json"):
        assert single.outputs[key].read_text().replace("single.root", "dask.root") == spread.outputs[key].read_text()
    assert single.n_events == spread.n_events == 90
    # l0emu merge recomputes the counts of a finished set from its parts: the same histograms and tables
    assert cli.main(["merge", str(tmp_path / "dask_parts"), "-o", str(tmp_path / "merged.root")]) == 0
    _, merged_histograms = read_l0_histograms(tmp_path / "merged.root")
    for key in histograms:
        np.testing.assert_array_equal(histograms[key], merged_histograms[key])
    assert (tmp_path / "merged_rates.csv").read_text() == single.outputs["csv"].read_text()


def _outputs_left(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("l0"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.root", "no such file"),
        (lambda d: (d / "text.root").write_text("not ROOT\n" * 40) and d / "text.root", "not a readable ROOT file"),
        (lambda d: write_events(d / "b.root", [{**make_event(0), "hit_strips": [1]}], dtypes={"hit_strips": np.int16})
         if False else _without_branch(d), "no branch 'hit_strip'"),
        (lambda d: write_events(d / "w.root", [make_event(0, [(0, 1)])], dtypes={"hit_layer": np.int32}),
         "hit_layer has type"),
        (lambda d: write_events(d / "r.root", [make_event(0, [(0, 1)]), make_event(1, [(2, 400)])]),
         "hit_strip entry 1: value 400"),
    ],
    ids=["missing", "not-root", "missing-branch", "wrong-type", "out-of-range"],
)
def test_bad_input_names_file_branch_and_entry_and_leaves_nothing(tmp_path, spec_path, capsys, make, message):
    path = make(tmp_path)
    rc = cli.main(["run", str(path), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and path.name in err
    assert _outputs_left(tmp_path) == []


def _without_branch(d):
    event = make_event(0, [(0, 1)])
    event["hit_strips"] = event.pop("hit_strip")
    return write_events(d / "b.root", [event], dtypes={"hit_strips": np.int16})


def test_truncated_file_fails_without_output(tmp_path, spec_path, capsys):
    good = write_events(tmp_path / "ev.root", sample_events(300))
    cut = tmp_path / "cut.root"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    rc = cli.main(["run", str(cut), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--no-progress"])
    assert rc == 2 and "cut.root" in capsys.readouterr().err
    assert _outputs_left(tmp_path) == []


def test_interrupted_run_leaves_no_output(tmp_path, spec_path, monkeypatch, capsys):
    events = write_events(tmp_path / "ev.root", sample_events())
    real = Trigger.decide
    calls = []

    def interrupted(self, chunk):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, chunk)

    monkeypatch.setattr(Trigger, "decide", interrupted)
    rc = cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--step-size", "10", "--no-progress"])
    assert rc == 130 and "no partial output" in capsys.readouterr().err
    assert _outputs_left(tmp_path) == [] and not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_empty_file_gives_zero_rows_and_a_warning(tmp_path, spec_path):
    events = write_events(tmp_path / "empty.root", [])
    with pytest.warns(UserWarning, match="empty"):
        result = run_job([str(events)], counting_spec(), tmp_path / "l0.root", (5.0,), progress=False)
    assert result.n_events == 0
    arrays, _ = read_l0(tmp_path / "l0.root")
    assert len(arrays["event_id"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [(["--thresholds", "10,x"], "--thresholds"), (["--thresholds", "-5"], "--thresholds"),
     (["--workers", "-1"], "--workers"), (["--workers", "100000"], "usable core"),
     (["--muon-fraction", "2"], "muon_fraction"), (["--step-size", "0"], "--step-size")],
)
def test_bad_options_are_named(tmp_path, spec_path, capsys, args, message):
    events = write_events(tmp_path / "ev.root", sample_events(6))
    rc = cli.main(["run", str(events), "--spec", str(spec_path), "-o", str(tmp_path / "l0.root"), "--no-progress", *args])
    assert rc == 2 and message in capsys.readouterr().err
    assert _outputs_left(tmp_path) == []


def test_spec_without_fragmentation_is_refused(tmp_path, capsys):
    spec = counting_spec()
    del spec["preprocessing"]
    path = write_spec(spec, tmp_path / "spec.json")
    events = write_events(tmp_path / "ev.root", sample_events(6))
    rc = cli.main(["run", str(events), "--spec", str(path), "-o", str(tmp_path / "l0.root"), "--no-progress"])
    assert rc == 2 and "preprocessing.fragment" in capsys.readouterr().err


def test_shipped_student_is_the_default_spec(tmp_path):
    events = write_events(tmp_path / "ev.root", sample_events(30))
    rc = cli.main(["run", str(events), "-o", str(tmp_path / "l0.root"), "--no-progress"])
    assert rc == 0
    table = json.loads(side_outputs(tmp_path / "l0.root")["json"].read_text())
    assert table["spec"] == "default_student" and table["events"] == 30


@pytest.mark.hls4ml
def test_check_firmware_agrees_with_the_c_simulation_of_the_shipped_student(tmp_path, capsys):
    pytest.importorskip("hls4ml")
    events = write_events(tmp_path / "ev.root", sample_events(120))
    rc = cli.main(["run", str(events), "-o", str(tmp_path / "l0.root"), "--no-progress", "--check-firmware", "100"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "100 events" in out and "network inputs with any differing output bit: 0" in out


def test_threaded_blocks_and_pipeline_give_the_same_decisions(tmp_path, monkeypatch):
    """Chunks split into thread blocks (every block a few events) and the read/decide/write
    pipeline decide exactly as one block on one thread."""
    import l0emu.trigger.job as job
    import l0emu.trigger.logic as trigger_module

    events = write_events(tmp_path / "ev.root", sample_events(90, seed=3))
    chunk = load_events(str(events))
    one = Trigger(counting_spec(), (5.0, 8.0), threads=1).decide(chunk)
    monkeypatch.setattr(trigger_module, "_MIN_BLOCK_EVENTS", 1)
    threaded = Trigger(counting_spec(), (5.0, 8.0), threads=3)
    many = threaded.decide(chunk)
    threaded.close()
    for key in one:
        np.testing.assert_array_equal(one[key], many[key])
    monkeypatch.setattr(job, "compute_threads", lambda: 1)
    run_job([str(events)], counting_spec(), tmp_path / "a.root", (5.0,), step_size=90, progress=False)
    monkeypatch.setattr(job, "compute_threads", lambda: 3)
    run_job([str(events)], counting_spec(), tmp_path / "b.root", (5.0,), step_size=11, progress=False)
    assert_same_l0(tmp_path / "a.root", tmp_path / "b.root")


def test_trigger_repr_is_short_and_the_worker_cache_is_bounded():
    import l0emu.trigger.job as job

    trigger = Trigger(counting_spec(), (5.0,))
    assert repr(trigger) == "Trigger('counting', thresholds=(5.0,), stride=8, threads=1)"
    job._WORKER_TRIGGERS.clear()
    specs = [json.dumps(counting_spec(stride=s), sort_keys=True) for s in range(1, job._MAX_WORKER_TRIGGERS + 3)]
    for text in specs:
        job._worker_trigger(text, (5.0,))
    assert len(job._WORKER_TRIGGERS) == job._MAX_WORKER_TRIGGERS
    # least recently used dropped first: the newest specs stay
    assert job._worker_trigger(specs[-1], (5.0,)) is job._worker_trigger(specs[-1], (5.0,))
    kept_strides = sorted(t.stride for t in job._WORKER_TRIGGERS.values())
    assert kept_strides == list(range(3, job._MAX_WORKER_TRIGGERS + 3))


def test_leading_muon_is_the_first_highest_pt(tmp_path):
    muons = [[(4.0, 0.1, 1), (9.0, 0.2, -1), (9.0, 0.3, 1)], [], [(3.5, -0.4, 1)]]
    events = [make_event(i, [(0, 10)], m) for i, m in enumerate(muons)]
    # make_event sorts by pT; write them unsorted so "first of equals" is tested
    events[0]["muon_pt"], events[0]["muon_eta"] = [4.0, 9.0, 9.0], [0.1, 0.2, 0.3]
    chunk = load_events(str(write_events(tmp_path / "m.root", events)))
    assert chunk.true_pt.tolist() == [9.0, 0.0, 3.5]
    assert chunk.true_eta.tolist() == [np.float32(0.2), 0.0, np.float32(-0.4)]


def test_merge_refuses_what_is_not_a_part(tmp_path, capsys):
    events = write_events(tmp_path / "ev.root", sample_events(6))
    (tmp_path / "empty").mkdir()
    for parts, message in (([str(events)], "holds no 'l0' tree"), ([str(tmp_path / "empty")], "holds no part-*.root files")):
        assert cli.main(["merge", *parts, "-o", str(tmp_path / "m.root")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m.root").exists()
