"""A run of consecutive generated events in awkward's flat layout (offsets + contents)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l0emu.schema import EVENT_JAGGED, EVENT_SCALARS

__all__ = ["EventBlock", "MUON_FIELDS", "HIT_FIELDS"]

MUON_FIELDS = ("muon_pt", "muon_eta", "muon_charge")
HIT_FIELDS = ("hit_layer", "hit_strip", "hit_is_noise")


@dataclass(frozen=True)
class EventBlock:
    """Events ``event_id[0] ..``: scalars per event, muon and hit contents with their offsets."""

    event_id: np.ndarray
    n_muons: np.ndarray
    muon_offsets: np.ndarray  # int64, len n + 1, starting at 0
    muon_pt: np.ndarray
    muon_eta: np.ndarray
    muon_charge: np.ndarray
    hit_offsets: np.ndarray  # int64, len n + 1, starting at 0
    hit_layer: np.ndarray
    hit_strip: np.ndarray
    hit_is_noise: np.ndarray

    def __len__(self) -> int:
        return len(self.event_id)

    def slice(self, start: int, stop: int) -> EventBlock:
        """Events ``[start, stop)`` of this block, offsets rebased to 0."""
        m0, m1 = self.muon_offsets[start], self.muon_offsets[stop]
        h0, h1 = self.hit_offsets[start], self.hit_offsets[stop]
        return EventBlock(
            event_id=self.event_id[start:stop],
            n_muons=self.n_muons[start:stop],
            muon_offsets=self.muon_offsets[start : stop + 1] - m0,
            **{name: getattr(self, name)[m0:m1] for name in MUON_FIELDS},
            hit_offsets=self.hit_offsets[start : stop + 1] - h0,
            **{name: getattr(self, name)[h0:h1] for name in HIT_FIELDS},
        )

    @staticmethod
    def concatenate(blocks) -> EventBlock:
        blocks = list(blocks)
        if len(blocks) == 1:
            return blocks[0]
        return EventBlock(
            event_id=np.concatenate([b.event_id for b in blocks]),
            n_muons=np.concatenate([b.n_muons for b in blocks]),
            muon_offsets=_join_offsets([b.muon_offsets for b in blocks]),
            **{name: np.concatenate([getattr(b, name) for b in blocks]) for name in MUON_FIELDS},
            hit_offsets=_join_offsets([b.hit_offsets for b in blocks]),
            **{name: np.concatenate([getattr(b, name) for b in blocks]) for name in HIT_FIELDS},
        )

    def check_dtypes(self) -> None:
        """Assert the schema's dtypes (a programming error if violated, not a user error)."""
        for name, dtype in {**EVENT_SCALARS, **EVENT_JAGGED}.items():
            assert getattr(self, name).dtype == dtype, (name, getattr(self, name).dtype, dtype)


def _join_offsets(parts) -> np.ndarray:
    pieces = [parts[0]]
    end = parts[0][-1]
    for offsets in parts[1:]:
        pieces.append(offsets[1:] + end)
        end = pieces[-1][-1] if len(pieces[-1]) else end
    return np.concatenate(pieces)
