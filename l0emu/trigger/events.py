"""Read event files (docs/design.md schema) in chunks, with errors that name the file, branch and entry.

The ``events`` object may be a TTree or an RNTuple (what uproot 5.7 writes for
``file["events"] = {...}``); both are read through the same ``keys``/``num_entries``/
``arrays`` calls and pass the same checks. The reader checks, before any physics runs: the
file exists and is ROOT, the ``events`` tree and every needed branch (RNTuple: field) exist
with the schema's dtypes, and every hit's layer and strip lie inside the sector. Jagged
branches come back in awkward's flat layout (offsets + contents), which the numba kernels
in :mod:`l0emu.trigger.images` take directly.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import warnings

import awkward as ak
import numba
import numpy as np
import uproot
from uproot.behaviors.RNTuple import RNTuple

from l0emu.errors import InputFileError, SpecError, did_you_mean
from l0emu.trigger.geometry import N_LAYERS
from l0emu.trigger.images import FRAGMENT_STRIPS, first_out_of_range, fragment_hits
from l0emu.schema import EVENT_JAGGED, EVENT_SCALARS, EVENTS_TREE
from l0emu.trigger.samples import check_distinct

__all__ = [
    "EventChunk",
    "MuonTruth",
    "RangeReader",
    "expand_paths",
    "first_fragments",
    "first_network_images",
    "open_events",
    "iterate_events",
    "load_events",
    "plan_ranges",
]

_NEEDED = ("event_id", "n_muons", "muon_pt", "muon_eta", "hit_layer", "hit_strip")


@dataclasses.dataclass
class MuonTruth:
    """Every muon of a chunk's events in the flat layout: event ``i`` holds muons
    ``offsets[i]:offsets[i + 1]``, in the file's order (by falling pT, the generator sorts them)."""

    offsets: np.ndarray  # int64 (n_events + 1,)
    pt: np.ndarray  # float32, GeV
    eta: np.ndarray  # float32
    charge: np.ndarray  # int8, +1 or -1


@dataclasses.dataclass
class EventChunk:
    """One contiguous entry range of one file: truth and hits, hits as offsets + contents."""

    path: str
    entry_start: int
    event_id: np.ndarray
    n_muons: np.ndarray
    true_pt: np.ndarray  # leading muon (highest pT), 0 for events without muons
    true_eta: np.ndarray
    hit_offsets: np.ndarray
    hit_layer: np.ndarray
    hit_strip: np.ndarray
    muons: MuonTruth | None = None  # every muon, only when asked for (``muons=True``)

    def __len__(self) -> int:
        return len(self.event_id)


def expand_paths(patterns) -> list[str]:
    """Expand globs; a pattern that matches nothing, or a file named twice (also through a
    link or by two patterns), is an error naming it."""
    paths = []
    for pattern in map(str, patterns):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            msg = f"no file matches {pattern!r}"
            raise InputFileError(msg)
        paths.extend(matches)
    check_distinct(paths)
    return paths


def open_events(path):
    """The checked ``events`` TTree or RNTuple of ``path`` (both have ``keys``, ``num_entries``, ``arrays``)."""
    if os.path.isdir(path):
        msg = f"{path!r} is a directory, not an event file (give its files, e.g. '{os.path.join(path, '*.root')}')"
        raise InputFileError(msg)
    if not os.path.isfile(path):
        msg = f"{path!r}: no such file"
        raise InputFileError(msg)
    try:
        file = uproot.open(path)
    except Exception as err:  # uproot raises many kinds for non-ROOT or truncated files
        msg = f"{path!r} is not a readable ROOT file ({type(err).__name__}: {err})"
        raise InputFileError(msg) from None
    try:
        keys = file.keys(cycle=False)
        if EVENTS_TREE not in keys:
            msg = f"{path!r} has no tree {EVENTS_TREE!r}{did_you_mean(EVENTS_TREE, keys)}"
            raise InputFileError(msg)
        tree = file[EVENTS_TREE]
        if not isinstance(tree, (uproot.TTree, RNTuple)):
            msg = f"{path!r}:{EVENTS_TREE} is a {type(tree).__name__}, the event schema is a TTree or an RNTuple"
            raise InputFileError(msg)
        _check_branches(path, tree)
    except InputFileError:
        raise
    except Exception as err:
        msg = f"{path!r}:{EVENTS_TREE} cannot be read; truncated or corrupt? ({type(err).__name__}: {err})"
        raise InputFileError(msg) from None
    return tree


def _column_kind(tree) -> str:
    return "field" if isinstance(tree, RNTuple) else "branch"


def _column_type(tree, name):
    """``(jagged, dtype)`` of one branch or field; dtype None for anything not a flat number type."""
    if isinstance(tree, RNTuple):
        form = tree[name].to_akform()[0].contents[0]
        jagged = isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm))
        inner = form.content if jagged else form
        numeric = isinstance(inner, ak.forms.NumpyForm) and not inner.inner_shape
        return jagged, np.dtype(inner.primitive) if numeric else None
    interpretation = tree[name].interpretation
    jagged = isinstance(interpretation, uproot.interpretation.jagged.AsJagged)
    dtype = interpretation.content.from_dtype if jagged else getattr(interpretation, "from_dtype", None)
    return jagged, None if dtype is None else np.dtype(dtype).newbyteorder("=")


def _check_branches(path, tree):
    """Every needed branch (TTree) or field (RNTuple) exists with the schema's type."""
    names = tree.keys()
    kind = _column_kind(tree)
    for name in _NEEDED:
        if name not in names:
            msg = f"{path!r}:{EVENTS_TREE} has no {kind} {name!r}{did_you_mean(name, names)}"
            raise InputFileError(msg)
        expected = EVENT_SCALARS.get(name, EVENT_JAGGED.get(name))
        jagged, dtype = _column_type(tree, name)
        if (name in EVENT_JAGGED) != jagged or dtype is None or dtype != expected:
            needs = "jagged " if name in EVENT_JAGGED else ""
            msg = (
                f"{path!r}:{EVENTS_TREE}/{name} has type {tree[name].typename!r}, "
                f"the event schema needs {needs}{expected}"
            )
            raise InputFileError(msg)


def _boundaries(tree) -> list[int]:
    """Entries where every needed TTree basket, or every RNTuple cluster, starts; and the end."""
    if isinstance(tree, RNTuple):
        return [int(c.num_first_entry) for c in tree.cluster_summaries] + [tree.num_entries]
    return [int(b) for b in tree.common_entry_offsets(filter_name=list(_NEEDED))]


def _unit_stops(tree, step_size: int) -> list[int]:
    """Entry stops of at most ``step_size`` entries, at basket (cluster) boundaries where possible.

    A range that ends inside a basket makes the next range decompress that basket again
    (issue 14: 500,000-entry steps over 262,144-entry baskets decompressed a third of the
    file twice).
    """
    n = tree.num_entries
    boundaries = _boundaries(tree)
    stops, start = [], 0
    while start < n:
        aligned = [b for b in boundaries if start < b <= start + step_size]
        stop = aligned[-1] if aligned else min(start + step_size, n)
        stops.append(stop)
        start = stop
    return stops


def plan_ranges(paths, step_size: int):
    """``(path, entry_start, entry_stop)`` work units covering every file, in order."""
    ranges = []
    for path in paths:
        tree = open_events(path)
        if tree.num_entries == 0:
            warnings.warn(f"{path!r}: the events tree is empty", stacklevel=2)
        stops = _unit_stops(tree, step_size)
        ranges.extend((path, start, stop) for start, stop in zip([0, *stops[:-1]], stops))
    return ranges


def _flat(array):
    """``(offsets from 0, contents)`` of a jagged array of numbers.

    An entry range read from an RNTuple keeps its whole cluster's contents behind offsets
    that do not start at 0, so the contents are cut to the range, not only the offsets shifted.
    """
    layout = ak.to_layout(array)
    if not isinstance(layout, ak.contents.ListOffsetArray) or not isinstance(layout.content, ak.contents.NumpyArray):
        layout = ak.to_layout(ak.to_packed(array))
    offsets = np.asarray(layout.offsets.data, dtype=np.int64)
    content = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
    if offsets[0] != 0:
        offsets = offsets - offsets[0]
    return offsets, content


@numba.njit(cache=True, nogil=True)
def _leading_kernel(offsets, pt, eta, lead_pt, lead_eta):
    for event in range(offsets.shape[0] - 1):
        first = -1
        for k in range(offsets[event], offsets[event + 1]):
            if first < 0 or pt[k] > pt[first]:
                first = k
        if first >= 0:
            lead_pt[event] = pt[first]
            lead_eta[event] = eta[first]


def _check_finite(path, entry_start, name, offsets, values) -> None:
    """NaN or infinity in a truth branch would make a muon event count as background (a fake)."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        entry = entry_start + int(np.searchsorted(offsets, bad[0], side="right") - 1)
        msg = f"{path!r}:{EVENTS_TREE}/{name} entry {entry}: value {float(values[bad[0]])!r} is not a finite number"
        raise InputFileError(msg)


def _leading(path, entry_start, pt, eta):
    """Leading (highest-pT; the first of equals) muon's pT and eta per event; 0 where there is no muon.

    One numba pass over the flat layout: awkward's argmax and jagged indexing cost as much
    as reading the file, numpy's reduceat/repeat/compare still a seventh of it (profiled in issue 14).
    """
    offsets, pt_flat = _flat(pt)
    eta_offsets, eta_flat = _flat(eta)
    if not np.array_equal(offsets, eta_offsets):
        entry = entry_start + int(np.nonzero(np.diff(offsets) != np.diff(eta_offsets))[0][0])
        msg = f"{path!r}:{EVENTS_TREE} entry {entry}: muon_pt and muon_eta have different lengths"
        raise InputFileError(msg)
    _check_finite(path, entry_start, "muon_pt", offsets, pt_flat)
    _check_finite(path, entry_start, "muon_eta", offsets, eta_flat)
    n = len(offsets) - 1
    lead_pt = np.zeros(n, np.float32)
    lead_eta = np.zeros(n, np.float32)
    _leading_kernel(offsets, pt_flat, eta_flat, lead_pt, lead_eta)
    return lead_pt, lead_eta


def _muon_truth(path, entry_start, arrays) -> MuonTruth:
    offsets, pt = _flat(arrays["muon_pt"])
    for name in ("muon_eta", "muon_charge"):
        other_offsets, _ = _flat(arrays[name])
        if not np.array_equal(offsets, other_offsets):
            entry = entry_start + int(np.nonzero(np.diff(offsets) != np.diff(other_offsets))[0][0])
            msg = f"{path!r}:{EVENTS_TREE} entry {entry}: muon_pt and {name} have different lengths"
            raise InputFileError(msg)
    charge = _flat(arrays["muon_charge"])[1]
    bad = np.nonzero(np.abs(charge) != 1)[0]
    if len(bad):
        entry = entry_start + int(np.searchsorted(offsets, bad[0], side="right") - 1)
        msg = f"{path!r}:{EVENTS_TREE}/muon_charge entry {entry}: charge {int(charge[bad[0]])} is not +1 or -1"
        raise InputFileError(msg)
    eta = _flat(arrays["muon_eta"])[1]
    return MuonTruth(offsets=offsets.astype(np.int64), pt=pt.astype(np.float32), eta=eta.astype(np.float32),
                     charge=charge.astype(np.int8))  # fmt: skip


def read_range(path: str, entry_start: int, entry_stop: int, tree=None, *, muons: bool = False) -> EventChunk:
    """Read one entry range of one file and check its hits.

    ``tree``: ``open_events(path)`` already done, reused across the ranges of one file by a
    single reading thread (opening and checking costs ~8 ms a range, issue 14).
    ``muons``: also read every muon's truth (:class:`MuonTruth`, needs the ``muon_charge`` branch).
    """
    tree = open_events(path) if tree is None else tree
    if muons and "muon_charge" not in tree.keys():
        msg = f"{path!r}:{EVENTS_TREE} has no branch 'muon_charge', which per-muon truth needs{did_you_mean('muon_charge', tree.keys())}"
        raise InputFileError(msg)
    try:
        branches = list(_NEEDED) + (["muon_charge"] if muons else [])
        arrays = tree.arrays(branches, entry_start=entry_start, entry_stop=entry_stop, library="ak")
    except Exception as err:
        msg = (
            f"{path!r}:{EVENTS_TREE} entries {entry_start}-{entry_stop} cannot be read; "
            f"truncated or corrupt? ({type(err).__name__}: {err})"
        )
        raise InputFileError(msg) from None
    offsets, layer = _flat(arrays["hit_layer"])
    strip_offsets, strip = _flat(arrays["hit_strip"])
    if not np.array_equal(offsets, strip_offsets):
        entry = entry_start + int(np.nonzero(np.diff(offsets) != np.diff(strip_offsets))[0][0])
        msg = f"{path!r}:{EVENTS_TREE} entry {entry}: hit_layer and hit_strip have different lengths"
        raise InputFileError(msg)
    bad = first_out_of_range(layer, strip)
    if bad >= 0:
        entry = entry_start + int(np.searchsorted(offsets, bad, side="right") - 1)
        branch = "hit_layer" if not 0 <= int(layer[bad]) < 9 else "hit_strip"
        value = int(layer[bad]) if branch == "hit_layer" else int(strip[bad])
        msg = f"{path!r}:{EVENTS_TREE}/{branch} entry {entry}: value {value} is outside the sector"
        raise InputFileError(msg)
    true_pt, true_eta = _leading(path, entry_start, arrays["muon_pt"], arrays["muon_eta"])
    return EventChunk(
        path=path,
        entry_start=entry_start,
        event_id=np.asarray(arrays["event_id"], dtype=np.uint64),
        n_muons=np.asarray(arrays["n_muons"], dtype=np.uint8),
        true_pt=true_pt,
        true_eta=true_eta,
        hit_offsets=offsets,
        hit_layer=layer,
        hit_strip=strip,
        muons=_muon_truth(path, entry_start, arrays) if muons else None,
    )


class RangeReader:
    """:func:`read_range` that keeps the last file's checked tree open; for one thread at a time."""

    def __init__(self):
        self._path = None
        self._tree = None

    def __call__(self, path: str, entry_start: int, entry_stop: int, *, muons: bool = False) -> EventChunk:
        if path != self._path:
            self._path, self._tree = path, open_events(path)
        return read_range(path, entry_start, entry_stop, self._tree, muons=muons)


def iterate_events(paths, step_size: int = 500_000):
    """Yield :class:`EventChunk` objects over every file, in order."""
    read = RangeReader()
    for path, start, stop in plan_ranges(expand_paths(paths), step_size):
        yield read(path, start, stop)


def load_events(path: str, entry_stop: int | None = None, *, muons: bool = False) -> EventChunk:
    """All (or the first ``entry_stop``) events of one file as a single chunk (``muons``: see :func:`read_range`)."""
    n = open_events(path).num_entries
    stop = n if entry_stop is None else min(int(entry_stop), n)
    return read_range(path, 0, stop, muons=muons)


def _first_events_images(paths, n: int, images_of, rows: int) -> tuple[np.ndarray, int]:
    """``images_of(offsets, layer, strip)`` on the first ``n`` events of ``paths``, chunk by
    chunk, concatenated; returns ``(images, events read)``."""
    images, read = [], 0
    for chunk in iterate_events(paths, step_size=max(n, 1)):
        offsets = chunk.hit_offsets[: min(n - read, len(chunk)) + 1]
        images.append(images_of(offsets, chunk.hit_layer, chunk.hit_strip))
        read += len(offsets) - 1
        if read >= n:
            break
    return (np.concatenate(images) if images else np.zeros((0, rows, FRAGMENT_STRIPS), np.uint8)), read


def first_network_images(paths, n: int, spec: dict) -> tuple[np.ndarray, int]:
    """The images the trigger job runs ``spec``'s network on, for the first ``n`` events of
    ``paths``: one fragment per event, or, for a multi network (``preprocessing.fragment``
    with ``candidates``), every present sector-logic candidate window (event order, candidate
    0 first). Returns ``(images uint8 (m, rows, 16), events read)``.
    """
    from l0emu.trigger.sector import candidate_images
    from l0emu.fixedpoint.spec import preprocessing_layers

    fragment = (spec.get("preprocessing") or {}).get("fragment")
    if not fragment:
        msg = f"spec {spec.get('name')!r} has no preprocessing.fragment: events cannot be made into its input images"
        raise SpecError(msg)
    stride, layers = int(fragment["stride"]), preprocessing_layers(spec)
    candidates = int(fragment.get("candidates", 0))
    if not candidates:
        pooled = first_fragments(paths, n, stride, layers=layers)
        return pooled, len(pooled)
    min_hits = fragment.get("min_hits")  # None: the sector logic's default for the image rows

    def images_of(offsets, layer, strip):
        return candidate_images(offsets, layer, strip, stride, max_candidates=candidates, min_hits=min_hits, layers=layers)[1]

    return _first_events_images(paths, n, images_of, len(layers))


def first_fragments(paths, n: int, stride: int, layers=None) -> np.ndarray:
    """Fragmented images of the first ``n`` events of ``paths`` at ``stride``, as uint8
    lit-pixel counts (shape (n, rows, 16), rows = the RPC ``layers`` used, all nine by default;
    fewer events if the files hold fewer)."""

    def images_of(offsets, layer, strip):
        return fragment_hits(offsets, layer, strip, stride, layers=layers)[1]

    return _first_events_images(paths, n, images_of, N_LAYERS if layers is None else len(layers))[0]
