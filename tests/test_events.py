import numpy as np
import pytest
from conftest import make_event, write_events

from l0emu.errors import InputFileError
from l0emu.trigger.events import iterate_events, load_events, plan_ranges


def test_reads_truth_and_hits_in_flat_layout(tiny_events):
    chunk = load_events(str(tiny_events))
    assert len(chunk) == 3
    np.testing.assert_array_equal(chunk.event_id, [0, 1, 2])
    np.testing.assert_array_equal(chunk.hit_offsets, [0, 9, 11, 11])
    assert chunk.hit_layer.dtype == np.uint8 and chunk.hit_strip.dtype == np.int16
    np.testing.assert_array_equal(chunk.true_pt, np.float32([12.0, 0, 0]))
    np.testing.assert_array_equal(chunk.true_eta, np.float32([0.05, 0, 0]))


def test_leading_muon_is_the_highest_pt_whatever_the_order(tmp_path):
    event = make_event(0, [(0, 1)], [(5.0, 0.1, 1), (9.0, -0.2, -1)])
    event["muon_pt"], event["muon_eta"] = [5.0, 9.0], [0.1, -0.2]  # not sorted on purpose
    chunk = load_events(str(write_events(tmp_path / "m.root", [event])))
    assert chunk.true_pt[0] == np.float32(9.0) and chunk.true_eta[0] == np.float32(-0.2)


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_every_muon_is_read_on_request(tmp_path, fmt):
    events = [make_event(0, [(0, 1)], [(9.0, -0.2, -1), (5.0, 0.1, 1)]), make_event(1), make_event(2, [], [(4.0, 0.3, 1)])]
    path = str(write_events(tmp_path / "m.root", events, fmt=fmt))
    assert load_events(path).muons is None
    muons = load_events(path, muons=True).muons
    np.testing.assert_array_equal(muons.offsets, [0, 2, 2, 3])
    np.testing.assert_array_equal(muons.pt, np.float32([9.0, 5.0, 4.0]))
    np.testing.assert_array_equal(muons.eta, np.float32([-0.2, 0.1, 0.3]))
    np.testing.assert_array_equal(muons.charge, [-1, 1, 1])
    assert muons.charge.dtype == np.int8


def test_a_charge_that_is_not_one_is_named(tmp_path):
    event = make_event(0, [], [(9.0, 0.0, 1)])
    event["muon_charge"] = [0]
    path = str(write_events(tmp_path / "m.root", [make_event(1), event]))
    with pytest.raises(InputFileError, match=r"muon_charge entry 1: charge 0 is not \+1 or -1"):
        load_events(path, muons=True)


def test_chunks_cover_every_entry_in_order(tiny_events):
    chunks = list(iterate_events([str(tiny_events)], step_size=2))
    assert [len(c) for c in chunks] == [2, 1]
    assert [c.entry_start for c in chunks] == [0, 2]
    np.testing.assert_array_equal(chunks[1].hit_offsets, [0, 0])
    np.testing.assert_array_equal(chunks[0].hit_offsets, [0, 9, 11])


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_events(str(tmp_path / "nope.root"))


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(InputFileError, match="no file matches"):
        list(iterate_events([str(tmp_path / "*.root")]))


def test_not_a_root_file(tmp_path):
    path = tmp_path / "text.root"
    path.write_text("hello, I am not ROOT\n" * 50)
    with pytest.raises(InputFileError, match="not a readable ROOT file"):
        load_events(str(path))


def test_truncated_file(tiny_events, tmp_path):
    data = tiny_events.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.root"):
        load_events(str(cut))


def test_missing_tree_lists_what_is_there(tmp_path):
    path = write_events(tmp_path / "t.root", [make_event(0)], tree="evnts")
    with pytest.raises(InputFileError, match=r"no tree 'events'.*'evnts'"):
        load_events(str(path))


@pytest.mark.parametrize("fmt, kind", [("ttree", "branch"), ("rntuple", "field")])
def test_missing_branch_names_it_and_nearest_keys(tmp_path, fmt, kind):
    event = make_event(0, [(0, 1)])
    event["hit_strips"] = event.pop("hit_strip")
    path = write_events(tmp_path / "b.root", [event], dtypes={"hit_strips": np.int16}, fmt=fmt)
    with pytest.raises(InputFileError, match=rf"b.root'?:events has no {kind} 'hit_strip'.*'hit_strips'"):
        load_events(str(path))


@pytest.mark.parametrize("fmt, typename", [("ttree", r"float\[\]"), ("rntuple", "std::vector<float>")])
def test_branch_of_the_wrong_type(tmp_path, fmt, typename):
    path = write_events(tmp_path / "w.root", [make_event(0, [(0, 1)])], dtypes={"hit_strip": np.float32}, fmt=fmt)
    with pytest.raises(InputFileError, match=rf"events/hit_strip has type '{typename}'.*jagged int16"):
        load_events(str(path))


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_scalar_where_the_schema_is_jagged(tmp_path, fmt):
    event = make_event(0)
    event["hit_layer"] = 3  # one number per event instead of one per hit
    path = write_events(tmp_path / "s.root", [event], fmt=fmt)
    with pytest.raises(InputFileError, match=r"events/hit_layer has type .*the event schema needs jagged uint8"):
        load_events(str(path))


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
@pytest.mark.parametrize("hit, branch, value", [((9, 10), "hit_layer", 9), ((3, 384), "hit_strip", 384), ((3, -1), "hit_strip", -1)])
def test_index_out_of_range_names_branch_and_entry(tmp_path, hit, branch, value, fmt):
    events = [make_event(0, [(0, 1)]), make_event(1, [(1, 2), hit])]
    path = write_events(tmp_path / "r.root", events, fmt=fmt)
    with pytest.raises(InputFileError, match=rf"events/{branch} entry 1: value {value} is outside"):
        load_events(str(path))


def test_empty_file_warns_and_gives_no_work(tmp_path):
    path = write_events(tmp_path / "empty.root", [])
    with pytest.warns(UserWarning, match="empty"):
        assert plan_ranges([str(path)], 10) == []


def _random_events(n, seed=5):
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        hits = [(int(rng.integers(9)), int(rng.integers(384))) for _ in range(int(rng.integers(0, 12)))]
        muons = [(float(rng.uniform(3, 20)), float(rng.uniform(-1, 1)), int(rng.choice([-1, 1]))) for _ in range(int(rng.integers(0, 3)))]
        events.append(make_event(i, hits, muons))
    return events


@pytest.mark.parametrize("step", [1, 7, 16, 50])
def test_rntuple_copy_reads_exactly_like_the_ttree(tmp_path, step):
    # several RNTuple clusters of 16 events; entry ranges of 7 cross their boundaries
    events = _random_events(50)
    ttree = write_events(tmp_path / "t.root", events, entries_per_cluster=16)
    rntuple = write_events(tmp_path / "n.root", events, fmt="rntuple", entries_per_cluster=16)
    chunks_t = list(iterate_events([str(ttree)], step_size=step))
    chunks_n = list(iterate_events([str(rntuple)], step_size=step))
    assert [c.entry_start for c in chunks_n] == [c.entry_start for c in chunks_t]
    for a, b in zip(chunks_t, chunks_n, strict=True):
        for name in ("event_id", "n_muons", "true_pt", "true_eta", "hit_offsets", "hit_layer", "hit_strip"):
            got, expected = getattr(b, name), getattr(a, name)
            assert got.dtype == expected.dtype, name
            np.testing.assert_array_equal(got, expected, err_msg=f"{name}, entries from {a.entry_start}")


def test_rntuple_written_by_plain_assignment_is_read(tmp_path):
    # uproot 5.7 writes an RNTuple for the simplest call, file["events"] = {...}
    import uproot

    source = write_events(tmp_path / "t.root", _random_events(20))
    with uproot.open(source) as f:
        arrays = f["events"].arrays()
    path = tmp_path / "assigned.root"
    with uproot.recreate(path) as f:
        f["events"] = {name: arrays[name] for name in arrays.fields}
    with uproot.open(path) as f:
        assert f.classnames()["events;1"] == "ROOT::RNTuple"
    a, b = load_events(str(source)), load_events(str(path))
    np.testing.assert_array_equal(b.hit_strip, a.hit_strip)
    np.testing.assert_array_equal(b.true_pt, a.true_pt)


def test_truncated_rntuple(tmp_path):
    path = write_events(tmp_path / "n.root", _random_events(30), fmt="rntuple")
    data = path.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.root.*(not a readable ROOT file|truncated or corrupt)"):
        load_events(str(cut))


def test_empty_rntuple_warns_and_gives_no_work(tmp_path):
    path = write_events(tmp_path / "empty.root", [], fmt="rntuple")
    with pytest.warns(UserWarning, match="empty"):
        assert plan_ranges([str(path)], 10) == []


def test_events_of_another_kind_is_refused_with_a_clear_message(tmp_path):
    import uproot

    path = tmp_path / "h.root"
    with uproot.recreate(path) as f:
        f["events"] = (np.ones(3), np.arange(4.0))  # a histogram, not a TTree or RNTuple
    with pytest.raises(InputFileError, match="events is a .*TH1D.*the event schema is a TTree or an RNTuple"):
        load_events(str(path))
