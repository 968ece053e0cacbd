"""The evaluation protocol: which sample may serve which purpose (docs/protocol.md explains it).

Three roles, each a set of event files from ``l0emu simulate`` with its own generator seeds:

- **training**: the files a network is fitted on (``l0emu train EVENTS...``);
- **validation**: early stopping (``l0emu train --validation``), and every choice between
  recipes, hyper-parameters or trained networks (grid and KD studies): looked at as often as
  needed, so its figures are optimistic for the network chosen on them;
- **test**: every figure that is reported (README, PROVENANCE), for a recipe fixed before the
  test sample is looked at.

Seeds follow :data:`SEED_RANGES` (training 100-199, validation 200-299, test 300-399) so a
file's role can be read off its seed. What is enforced: an evaluation refuses a file whose
generator *scenario and seed* equal those of a training or validation file of the network
(:func:`check_evaluation_sample`). The file hash is not enough: events come in generator
blocks seeded by (seed, block), so the first N events of any two samples with one seed and
scenario are the same events, and even other settings (a longer pT spectrum) keep the same
noise and background crossings.

Figures for a recipe are the median and the spread (lowest and highest) over at least
:data:`MIN_TRAINING_SEEDS` training seeds (:func:`median_and_spread`), not the best seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from l0emu.errors import ConfigError, InputFileError
from l0emu.simulation.events_io import read_metadata

__all__ = [
    "ROLES",
    "SEED_RANGES",
    "MIN_TRAINING_SEEDS",
    "SampleId",
    "sample_id",
    "describe_samples",
    "seed_role",
    "model_samples",
    "check_disjoint",
    "check_evaluation_sample",
    "median_and_spread",
]

ROLES = ("training", "validation", "test")
# conventional generator seeds per role (inclusive); the check does not rely on them
SEED_RANGES = {"training": (100, 199), "validation": (200, 299), "test": (300, 399)}
MIN_TRAINING_SEEDS = 3


class SampleId(NamedTuple):
    """What makes two samples share events: the generator's scenario and seed."""

    scenario: str
    seed: int

    def __str__(self) -> str:
        return f"scenario {self.scenario!r}, seed {self.seed}"


def sample_id(path) -> SampleId | None:
    """The generator identity stored in an event file; None for a file not written by ``l0emu simulate``."""
    try:
        settings = read_metadata(path)["settings"]
    except InputFileError:
        return None
    try:
        return SampleId(str(settings["scenario"]), int(settings["seed"]))
    except (KeyError, TypeError, ValueError):
        msg = f"{str(path)!r}: its settings lack a usable 'scenario' and 'seed'"
        raise InputFileError(msg) from None


def describe_samples(paths) -> list[dict]:
    """``[{path, scenario, seed}]`` for a training record (scenario/seed None when unknown)."""
    described = []
    for path in paths:
        identity = sample_id(path)
        described.append({"path": str(path), "scenario": identity and identity.scenario, "seed": identity and identity.seed})
    return described


def seed_role(seed: int) -> str | None:
    """The role :data:`SEED_RANGES` gives ``seed``, or None outside them."""
    for role, (low, high) in SEED_RANGES.items():
        if low <= seed <= high:
            return role
    return None


def _identities(entries) -> set:
    return {SampleId(e["scenario"], int(e["seed"])) for e in entries or () if e.get("scenario") is not None}


def model_samples(record: dict) -> dict:
    """``{"known": {SampleId, ...}, "unknown": [path, ...]}``: the training and validation
    samples of a training record (``l0emu train``'s ``record.json``), its teacher's included.

    Records written before the protocol carry only paths and hashes: their files are read if
    they still exist, else listed under ``unknown`` (only their hashes can then be checked).
    """
    data = record.get("data") or {}
    known = _identities(data.get("samples")) | _identities(data.get("validation_samples"))
    known |= _identities((record.get("teacher") or {}).get("samples"))
    unknown = []
    if "samples" not in data:
        for path in data.get("paths", ()):
            identity = sample_id(path) if Path(path).is_file() else None
            if identity is None:
                unknown.append(str(path))
            else:
                known.add(identity)
    return {"known": known, "unknown": unknown}


def check_disjoint(training_paths, validation_paths) -> None:
    """Refuse validation files that share a generator scenario and seed with a training file."""
    training = {sample_id(p): p for p in training_paths}
    for path in validation_paths:
        identity = sample_id(path)
        if identity is not None and identity in training:
            msg = (
                f"validation file {str(path)!r} ({identity}) repeats training file {str(training[identity])!r}: "
                "their events are the same; simulate the validation sample with another --seed"
            )
            raise ConfigError(msg)


def check_evaluation_sample(path, models: dict, hashes=None) -> SampleId | None:
    """Refuse to evaluate ``models`` (``{name: record}``) on ``path`` when it repeats one of their
    training or validation samples (same scenario and seed), or is byte-identical to one (``hashes``:
    the file's sha256, compared with the records' ``data.sha256``). Returns the file's identity."""
    identity = sample_id(path)
    for name, record in models.items():
        if hashes is not None and hashes in (record.get("data") or {}).get("sha256", ()):
            msg = f"{str(path)!r} trained {name!r}; evaluate on a test sample (another 'l0emu simulate --seed')"
            raise ConfigError(msg)
        if identity is not None and identity in model_samples(record)["known"]:
            msg = (
                f"{str(path)!r} ({identity}) repeats a training or validation sample of {name!r}: its events "
                "are the ones the network was fitted or chosen on; evaluate on a test sample with a new --seed"
            )
            raise ConfigError(msg)
    return identity


def median_and_spread(values) -> dict:
    """``{median, low, high, n}`` over the finite ``values`` (one per training seed); nan when none."""
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return {"median": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    return {"median": float(np.median(finite)), "low": min(finite), "high": max(finite), "n": len(finite)}
