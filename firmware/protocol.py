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
generator *scenario and seed* equal those of a training or validation file of the network, or
that holds any of their *events*, found by content (:mod:`l0emu.trigger.fingerprint`: the
fingerprint of each training and validation file is stored in the training record)
(:func:`check_evaluation_sample`; ``l0emu run`` warns, :func:`warn_run_overlaps`). The file
hash is not enough: events come in generator blocks seeded by (seed, block), so the first N
events of any two samples with one seed and scenario are the same events, and a copy
rewritten with uproot has other bytes and no stored settings.

Figures for a recipe are the median and the spread (lowest and highest) over at least
:data:`MIN_TRAINING_SEEDS` training seeds (:func:`median_and_spread`), not the best seed.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from l0emu.errors import ConfigError, InputFileError
from l0emu.simulation.events_io import read_metadata
from l0emu.trigger.fingerprint import fingerprint, landmarks

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
    "recorded_fingerprints",
    "overlaps",
    "record_for_spec",
    "warn_run_overlaps",
    "check_generated_sample",
    "RUN_CHECK_EVENTS",
]

ROLES = ("training", "validation", "test")
# conventional generator seeds per role (inclusive); the check does not rely on them
SEED_RANGES = {"training": (100, 199), "validation": (200, 299), "test": (300, 399)}
MIN_TRAINING_SEEDS = 3
# ``l0emu run`` fingerprints the first this many events of each input (module docstring of
# l0emu.trigger.fingerprint: an overlap of 5,000 events is found with probability 99.3 %)
RUN_CHECK_EVENTS = 200_000


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
    """``[{path, scenario, seed, fingerprint}]`` for a training record: the file's name (no
    directory: a record must not carry one machine's paths), its generator identity
    (None when unknown) and the fingerprint of its events."""
    described = []
    for path in paths:
        identity = sample_id(path)
        described.append({"path": Path(path).name, "scenario": identity and identity.scenario,
                          "seed": identity and identity.seed, "fingerprint": fingerprint([path])})  # fmt: skip
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


def check_evaluation_sample(path, models: dict, hashes=None, print_=None) -> SampleId | None:
    """Refuse to evaluate ``models`` (``{name: record}``) on ``path`` when it repeats one of their
    training or validation samples (same scenario and seed), is byte-identical to one (``hashes``:
    the file's sha256, compared with the records' ``data.sha256``) or holds any of their events
    (``print_``: the file's fingerprint, computed here when not given). Returns the file's identity."""
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
    # by content last: a file that names its sample is refused with the clearer message above
    if print_ is None and any(recorded_fingerprints(record) for record in models.values()):
        print_ = fingerprint([path])
    for name, record in models.items():
        shared = overlaps(print_, record) if print_ is not None else []
        if shared:
            msg = (
                f"{str(path)!r} holds events of {name!r}'s training or validation samples ({_overlap_text(shared)}): "
                "evaluate on a test sample with a new --seed"
            )
            raise ConfigError(msg)
    return identity


def recorded_fingerprints(record: dict) -> list[tuple[str, dict]]:
    """``[(description, fingerprint)]`` of every training and validation sample of a training
    record, its teacher's included; samples recorded without a fingerprint are left out."""
    data = record.get("data") or {}
    roles = (("training", data.get("samples")), ("validation", data.get("validation_samples")),
             ("teacher's", (record.get("teacher") or {}).get("samples")))  # fmt: skip
    found = []
    for role, entries in roles:
        for entry in entries or ():
            if entry.get("fingerprint") is not None:
                found.append((f"{role} sample {entry.get('path')!r}", entry["fingerprint"]))
    return found


def overlaps(print_: dict, record: dict) -> list[tuple[str, int]]:
    """``[(sample description, shared landmark events)]`` for every recorded sample whose events ``print_`` shares."""
    mine = landmarks(print_)
    shared = [(what, len(mine & landmarks(theirs))) for what, theirs in recorded_fingerprints(record)]
    return [(what, n) for what, n in shared if n]


def _overlap_text(found) -> str:
    return "; ".join(f"{n} landmark event(s) of its {what}" for what, n in found)


def record_for_spec(spec_path) -> tuple[dict, Path] | None:
    """The training record of the network of ``spec_path`` (a spec.json or a converted
    project): ``training_record.json`` (shipped networks, and what ``l0emu convert`` copies
    from the model's directory) or ``record.json`` beside the spec; None when there is none."""
    spec_path = Path(spec_path)
    directory = spec_path if spec_path.is_dir() else spec_path.parent
    for candidate in (directory / "training_record.json", directory / "record.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text()), candidate
            except json.JSONDecodeError as err:
                msg = f"{str(candidate)!r} is not valid JSON ({err})"
                raise InputFileError(msg) from None
    return None


def check_generated_sample(identity: SampleId, print_: dict, spec_path) -> None:
    """A study that generates its own events (``l0emu multi-study``): refuse when their scenario
    and seed, or any of their events, are a training or validation sample of the network."""
    found = record_for_spec(spec_path)
    if found is None:
        return
    record, where = found
    if identity in model_samples(record)["known"]:
        msg = (f"{identity} is a training or validation sample of the network ({where.name}): "
               "study it on a test sample with a new seed")
        raise ConfigError(msg)
    shared = overlaps(print_, record)
    if shared:
        msg = f"the events of {identity} hold {_overlap_text(shared)} ({where.name}): study it on a test sample with a new seed"
        raise ConfigError(msg)


def warn_run_overlaps(paths, spec_path) -> None:
    """``l0emu run``'s check: a loud warning for every input that holds events its network was
    trained or chosen on (first :data:`RUN_CHECK_EVENTS` events of each input)."""
    found = record_for_spec(spec_path)
    if found is None or not recorded_fingerprints(found[0]):
        return
    record, where = found
    for path in paths:
        shared = overlaps(fingerprint([path], max_events=RUN_CHECK_EVENTS), record)
        if shared:
            warnings.warn(
                f"{str(path)!r} holds events the network was trained or chosen on ({_overlap_text(shared)}, "
                f"per {where.name}): its figures are not test figures (docs/protocol.md)", stacklevel=2,
            )


def median_and_spread(values) -> dict:
    """``{median, low, high, n}`` over the finite ``values`` (one per training seed); nan when none."""
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return {"median": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    return {"median": float(np.median(finite)), "low": min(finite), "high": max(finite), "n": len(finite)}
