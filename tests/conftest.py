"""Shared fixtures: tiny event files built in tmp_path with uproot, following docs/design.md."""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pytest
import uproot

from l0emu.schema import EVENT_JAGGED, EVENT_SCALARS, EVENTS_TREE

# Size of slow (full-size) checks: "small" in CI, "full" for acceptance runs.
TEST_SCALE = os.environ.get("L0EMU_TEST_SCALE", "small")


def scaled(small: int, full: int) -> int:
    """Pick the problem size for a slow test from L0EMU_TEST_SCALE."""
    return full if TEST_SCALE == "full" else small


def write_events(path, events, *, dtypes=None, tree=EVENTS_TREE, fmt="ttree", entries_per_cluster=None):
    """Write ``events`` (dicts; list values are jagged branches) as an events TTree or RNTuple.

    With no events, an empty tree with the schema's branches is written. ``fmt="rntuple"``
    writes the same columns as an RNTuple, ``entries_per_cluster`` events per ``extend``
    (RNTuple cluster, TTree basket), so that reads can cross cluster boundaries.
    """
    dtypes = {**EVENT_SCALARS, **EVENT_JAGGED, **(dtypes or {})}
    names = list(events[0]) if events else list(EVENT_SCALARS) + list(EVENT_JAGGED)
    columns, types = {}, {}
    for name in names:
        dtype = np.dtype(dtypes[name])
        jagged = isinstance(events[0][name], (list, tuple)) if events else name in EVENT_JAGGED
        if jagged:
            counts = np.array([len(e[name]) for e in events], dtype=np.int64)
            flat = np.array([v for e in events for v in e[name]], dtype=dtype)
            columns[name] = ak.unflatten(flat, counts)
            types[name] = "var * " + str(dtype)
        else:
            columns[name] = np.array([e[name] for e in events], dtype=dtype)
            types[name] = dtype
    step = entries_per_cluster or max(len(events), 1)
    with uproot.recreate(path) as f:
        writer = {"ttree": f.mktree, "rntuple": f.mkrntuple}[fmt](tree, types)
        for start in range(0, len(events), step):
            writer.extend({name: column[start : start + step] for name, column in columns.items()})
    return path


def make_event(event_id, hits=(), muons=()):
    """One event: hits as (layer, strip) pairs, muons as (pt, eta, charge)."""
    muons = sorted(muons, key=lambda m: -m[0])
    return {
        "event_id": event_id,
        "n_muons": len(muons),
        "muon_pt": [m[0] for m in muons],
        "muon_eta": [m[1] for m in muons],
        "muon_charge": [m[2] for m in muons],
        "hit_layer": [h[0] for h in hits],
        "hit_strip": [h[1] for h in hits],
        "hit_is_noise": [False for _ in hits],
    }


@pytest.fixture
def tiny_events(tmp_path):
    """Three events: a 12 GeV muon track, background only, an empty crossing."""
    track = [(layer, 200 + layer // 3) for layer in range(9)]
    events = [
        make_event(0, track, [(12.0, 0.05, 1)]),
        make_event(1, [(4, 17), (8, 300)]),
        make_event(2),
    ]
    return write_events(tmp_path / "tiny.root", events)


def jagged_hits(*events):
    """Jagged hits (offsets, layer, strip) from a list of events, each a list of (layer, strip)."""
    counts = [len(e) for e in events]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = [hit for event in events for hit in event]
    layer = np.array([h[0] for h in flat], dtype=np.uint8)
    strip = np.array([h[1] for h in flat], dtype=np.int16)
    return offsets, layer, strip


# ---------------------------------------------------------------- the RTL path's checks


def network_spec(layers, inputs, outputs=None, name="rtl_test") -> dict:
    """A validated format-2 spec of ``layers``; ``inputs`` maps each network input's name to
    its (shape, type); one output ``pt`` (index 0 of the last layer) unless ``outputs`` are given."""
    from l0emu.fixedpoint.spec import validate_spec

    spec = {
        "format": "l0emu-spec/2", "name": name, "source": {"test": True},
        "inputs": [{"name": key, "shape": list(shape), "type": t} for key, (shape, t) in inputs.items()],
        "layers": layers, "outputs": outputs or [{"name": "pt", "index": 0, "scale": 1.0, "offset": 0.0}],
    }  # fmt: skip
    return validate_spec(spec)


def full_range_values(spec, n, seed):
    """Uniform mantissas over each input type's whole range, events 0 and 1 all-minimum and
    all-maximum, as values (float64); a list for several inputs."""
    from l0emu.fixedpoint.aptypes import parse_type
    from l0emu.fixedpoint.spec import spec_inputs

    rng = np.random.default_rng(seed)
    arrays = []
    for inp in spec_inputs(spec):
        t = parse_type(inp["type"])
        m = rng.integers(t.min_mantissa, t.max_mantissa + 1, size=(n, *inp["shape"]))
        m[0], m[1] = t.min_mantissa, t.max_mantissa
        arrays.append(t.to_float(m))
    return arrays[0] if len(arrays) == 1 else arrays


def assert_rtl_graph_exact(spec, n=400, seed=0, inputs=None):
    """da4ml's interpreter of the traced graph == the pure-Python reference == the numba emulator
    on ``inputs`` (default: :func:`full_range_values`); returns the reference's raw outputs."""
    from l0emu.firmware import rtl
    from l0emu.fixedpoint.emulator import Emulator

    inputs = full_range_values(spec, n, seed) if inputs is None else inputs
    reference = rtl.evaluate_exact(spec, inputs)
    assert np.array_equal(Emulator.from_spec(spec).predict_raw(inputs), reference)
    assert np.array_equal(rtl.interpret(rtl.trace_spec(spec), inputs), reference)
    return reference
