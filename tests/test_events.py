import numpy as np
import pytest
from conftest import make_event, write_events

from l0emu.errors import InputFileError
from l0emu.events import iterate_events, load_events, plan_ranges


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


def test_missing_branch_names_it_and_nearest_keys(tmp_path):
    event = make_event(0, [(0, 1)])
    event["hit_strips"] = event.pop("hit_strip")
    path = write_events(tmp_path / "b.root", [event], dtypes={"hit_strips": np.int16})
    with pytest.raises(InputFileError, match=r"no branch 'hit_strip'.*'hit_strips'"):
        load_events(str(path))


def test_branch_of_the_wrong_type(tmp_path):
    path = write_events(tmp_path / "w.root", [make_event(0, [(0, 1)])], dtypes={"hit_strip": np.float32})
    with pytest.raises(InputFileError, match=r"events/hit_strip has type 'float\[\]'.*int16"):
        load_events(str(path))


@pytest.mark.parametrize("hit, branch, value", [((9, 10), "hit_layer", 9), ((3, 384), "hit_strip", 384), ((3, -1), "hit_strip", -1)])
def test_index_out_of_range_names_branch_and_entry(tmp_path, hit, branch, value):
    events = [make_event(0, [(0, 1)]), make_event(1, [(1, 2), hit])]
    path = write_events(tmp_path / "r.root", events)
    with pytest.raises(InputFileError, match=rf"events/{branch} entry 1: value {value} is outside"):
        load_events(str(path))


def test_empty_file_warns_and_gives_no_work(tmp_path):
    path = write_events(tmp_path / "empty.root", [])
    with pytest.warns(UserWarning, match="empty"):
        assert plan_ranges([str(path)], 10) == []


def test_rntuple_is_refused_with_a_clear_message(tmp_path):
    import awkward as ak
    import uproot

    path = tmp_path / "rn.root"
    with uproot.recreate(path) as f:
        f["events"] = {"event_id": ak.Array(np.arange(3, dtype=np.uint64))}
    with pytest.raises(InputFileError, match="the event schema is a TTree"):
        load_events(str(path))
