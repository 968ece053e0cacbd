"""Write generated events to ROOT (docs/design.md's event-file schema) and read them back.

Layout written by :func:`write_events`, with uproot:

- TTree ``events`` (:data:`l0emu.schema.EVENTS_TREE`): ``event_id`` (uint64), ``n_muons``
  (uint8), ``muon_pt``/``muon_eta``/``muon_charge`` (float32/float32/int8, jagged, with
  uproot's int32 counter ``nmuon``), ``hit_layer``/``hit_strip``/``hit_is_noise``
  (uint8/int16/bool, jagged, counter ``nhit``). Baskets are ZSTD-compressed (cramjam,
  which uproot already requires).
- a TObjString named ``settings`` (:data:`l0emu.schema.SETTINGS_TREE`): JSON with
  ``format`` (:data:`FORMAT`), ``l0emu_version``, ``n_events``, ``geometry`` and every
  generator ``settings`` value, so ``uproot.open(f)["settings"]`` gives the text and
  :func:`read_settings` the :class:`~simulation.settings.SimSettings`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
from tqdm import tqdm

import l0emu
from l0emu.trigger import geometry
from l0emu.trigger.samples import read_stored_metadata
from l0emu.util.atomic import atomic_path
from l0emu.errors import ConfigError, InputFileError
from l0emu.schema import EVENT_JAGGED, EVENTS_TREE, SETTINGS_TREE, SIGNAL_PT_MIN

from .block import HIT_FIELDS, MUON_FIELDS, EventBlock
from .generator import iter_chunks
from .settings import SimSettings

__all__ = [
    "FORMAT",
    "DEFAULT_CHUNK_SIZE",
    "RunSummary",
    "write_events",
    "read_metadata",
    "read_settings",
    "read_events",
]

FORMAT = "l0emu-events/1"
DEFAULT_CHUNK_SIZE = 1 << 18
_COMPRESSION = uproot.ZSTD(1)


@dataclass
class RunSummary:
    """Counts accumulated while writing, for the one-screen summary."""

    n_events: int = 0
    n_signal: int = 0
    n_hits: int = 0
    n_noise_hits: int = 0
    hits_per_layer: np.ndarray = field(default_factory=lambda: np.zeros(geometry.N_LAYERS, np.int64))
    seconds: float = 0.0

    def add(self, block: EventBlock) -> None:
        self.n_events += len(block)
        has_muon = block.n_muons > 0
        leading_pt = block.muon_pt[block.muon_offsets[:-1][has_muon]]
        self.n_signal += int(np.count_nonzero(leading_pt > SIGNAL_PT_MIN))
        self.n_hits += len(block.hit_layer)
        self.n_noise_hits += int(np.count_nonzero(block.hit_is_noise))
        self.hits_per_layer += np.bincount(block.hit_layer, minlength=geometry.N_LAYERS)

    def lines(self) -> list[str]:
        n = max(self.n_events, 1)
        per_layer = " ".join(f"{h / n:.2f}" for h in self.hits_per_layer)
        rate = self.n_events / self.seconds if self.seconds > 0 else float("nan")
        return [
            f"events            {self.n_events}",
            f"signal fraction   {self.n_signal / n:.4f}  (a muon above {SIGNAL_PT_MIN:g} GeV)",
            f"hits per event    {self.n_hits / n:.3f}",
            f"  per layer 0..8  {per_layer}",
            f"noise fraction    {self.n_noise_hits / max(self.n_hits, 1):.4f}  (of all hits)",
            f"time              {self.seconds:.2f} s  ({rate:,.0f} events/s)",
        ]


def _metadata(settings: SimSettings, n_events: int) -> dict:
    return {
        "format": FORMAT,
        "l0emu_version": l0emu.__version__,
        "n_events": int(n_events),
        "geometry": {
            "n_layers": geometry.N_LAYERS,
            "n_strips": geometry.N_STRIPS,
            "eta_min": geometry.ETA_MIN,
            "eta_max": geometry.ETA_MAX,
            "stations": list(geometry.STATIONS),
            "station_of_layer": geometry.STATION_OF_LAYER.tolist(),
            "layer_radius_m": geometry.LAYER_RADIUS_M.tolist(),
        },
        "settings": settings.to_dict(),
        # 0/1/2/3-muon fractions of the multi scenario (null: uniform 1..max_muons per signal crossing)
        "muon_count_fractions": settings.muon_count_fractions(),
    }


def _jagged(offsets, names, block, prefix) -> ak.Array:
    fields = [name.removeprefix(prefix) for name in names]
    contents = [ak.contents.NumpyArray(getattr(block, name)) for name in names]
    record = ak.contents.RecordArray(contents, fields, length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _branch_data(block: EventBlock) -> dict:
    return {
        "event_id": block.event_id,
        "n_muons": block.n_muons,
        "muon": _jagged(block.muon_offsets, MUON_FIELDS, block, "muon_"),
        "hit": _jagged(block.hit_offsets, HIT_FIELDS, block, "hit_"),
    }


def _record_type(names, prefix) -> str:
    fields = ", ".join(f"{name.removeprefix(prefix)}: {EVENT_JAGGED[name]}" for name in names)
    return f"var * {{{fields}}}"


def _check_request(path, n_events, chunk_size) -> None:
    if not isinstance(n_events, (int, np.integer)) or n_events < 0:
        msg = f"number of events (-n) must be a non-negative integer, got {n_events!r}"
        raise ConfigError(msg)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        msg = f"chunk size (--chunk-size) must be a positive integer, got {chunk_size!r}"
        raise ConfigError(msg)
    if Path(path).is_dir():
        msg = f"cannot write {str(path)!r}: it is a directory"
        raise ConfigError(msg)


def write_events(path, settings: SimSettings, n_events: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 progress: bool = False) -> RunSummary:
    """Generate ``n_events`` with ``settings`` into ROOT file ``path`` (atomically); return the summary."""
    settings.validate()
    _check_request(path, n_events, chunk_size)
    summary = RunSummary()
    start = time.perf_counter()
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp, compression=_COMPRESSION) as out:
            tree = out.mktree(EVENTS_TREE, {
                "event_id": np.uint64,
                "n_muons": np.uint8,
                "muon": _record_type(MUON_FIELDS, "muon_"),
                "hit": _record_type(HIT_FIELDS, "hit_"),
            })
            with tqdm(total=n_events, unit="ev", unit_scale=True, disable=not progress, desc="simulate") as bar:
                # generate the next chunk in a worker thread while this one is compressed and
                # written: numpy, the numba kernel and zstd release the GIL, so both cores work
                with ThreadPoolExecutor(max_workers=1) as pool:
                    chunks = iter_chunks(settings, n_events, chunk_size)
                    pending = pool.submit(next, chunks, None)
                    while (block := pending.result()) is not None:
                        pending = pool.submit(next, chunks, None)
                        tree.extend(_branch_data(block))
                        summary.add(block)
                        bar.update(len(block))
            out[SETTINGS_TREE] = json.dumps(_metadata(settings, n_events), sort_keys=True)
    summary.seconds = time.perf_counter() - start
    return summary


def read_metadata(path) -> dict:
    """The generator metadata stored in an event file (format, version, n_events, geometry,
    settings), read by :func:`l0emu.trigger.samples.read_stored_metadata`; a file without it,
    or of another format, is refused."""
    metadata = read_stored_metadata(path)
    if metadata is None:
        msg = f"{str(path)!r} has no {SETTINGS_TREE!r} object: not written by 'l0emu simulate'"
        raise InputFileError(msg)
    if metadata.get("format") != FORMAT:
        msg = f"{str(path)!r}: settings format {metadata.get('format')!r}, expected {FORMAT!r}"
        raise InputFileError(msg)
    return metadata


def read_settings(path) -> SimSettings:
    """The :class:`SimSettings` an event file was generated with."""
    return SimSettings.from_dict(read_metadata(path)["settings"])


def read_events(path) -> EventBlock:
    """All events of a file as an :class:`EventBlock` (for tests and small studies)."""
    with uproot.open(path) as file:
        arrays = file[EVENTS_TREE].arrays(["event_id", "n_muons", *MUON_FIELDS, *HIT_FIELDS])

    def contents(name):
        return np.asarray(ak.flatten(arrays[name], axis=None))

    def offsets(name):
        return np.asarray(arrays[name].layout.offsets.data, dtype=np.int64) - arrays[name].layout.offsets[0]

    return EventBlock(
        event_id=np.asarray(arrays["event_id"]),
        n_muons=np.asarray(arrays["n_muons"]),
        muon_offsets=offsets("muon_pt"),
        **{name: contents(name) for name in MUON_FIELDS},
        hit_offsets=offsets("hit_layer"),
        **{name: contents(name) for name in HIT_FIELDS},
    )
