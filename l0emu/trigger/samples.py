"""What a run's input files are, as a sample: one physics composition, each file once.

A rate table assumes one sample composition, so the files of a run must have been
generated with the same physics: scenario, spectrum, detector and noise settings. Files of
one production differ in generator seed and event count (and may come from another l0emu
version); that is normal and never refused. Any other difference in the settings that
``l0emu simulate`` stores in each file (``settings`` object, :data:`l0emu.schema.SETTINGS_TREE`)
is refused, naming the first differing setting, unless the user allows a mixed sample; the
report then says which settings it mixes.
"""

from __future__ import annotations

import json
import os

import uproot

from l0emu.errors import ConfigError, InputFileError
from l0emu.schema import SETTINGS_TREE

__all__ = ["PER_FILE_SETTINGS", "check_distinct", "check_same_settings", "read_stored_metadata", "stored_settings"]

# settings that differ between the files of one production
PER_FILE_SETTINGS = ("seed",)
# metadata keys that are not physics: the event count and the writing version
_NOT_PHYSICS = ("n_events", "l0emu_version")


def check_distinct(paths) -> None:
    """Refuse a file given twice, by another name or through a link: its events would count twice."""
    seen = {}
    for path in paths:
        try:
            stat = os.stat(path)
            key = (stat.st_dev, stat.st_ino)
        except OSError:
            key = os.path.realpath(path)  # missing: the reader names it
        if key in seen:
            same = "" if str(seen[key]) == str(path) else f" (the same file as {str(seen[key])!r})"
            msg = f"input {str(path)!r} is given twice{same}: its events would be counted twice"
            raise InputFileError(msg)
        seen[key] = path


def read_stored_metadata(path) -> dict | None:
    """The JSON object an event file stores as :data:`l0emu.schema.SETTINGS_TREE` (what
    ``l0emu simulate`` wrote: format, version, event count, geometry, settings); None for a
    file without one. The one reader of it (:func:`l0emu.simulation.events_io.read_metadata`
    calls it and checks the format)."""
    try:
        with uproot.open(path) as file:
            if SETTINGS_TREE not in file.keys(cycle=False):
                return None
            text = str(file[SETTINGS_TREE])
    except Exception as err:  # uproot raises many kinds for unreadable files
        msg = f"{str(path)!r}: its {SETTINGS_TREE!r} object cannot be read ({type(err).__name__}: {err})"
        raise InputFileError(msg) from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"{str(path)!r}: the {SETTINGS_TREE!r} object is not JSON ({err})"
        raise InputFileError(msg) from None
    if not isinstance(metadata, dict):
        msg = f"{str(path)!r}: the {SETTINGS_TREE!r} object is not a JSON object"
        raise InputFileError(msg)
    return metadata


def stored_settings(path) -> dict | None:
    """The physics settings stored in an event file, flattened (``settings.pt_max``,
    ``geometry.n_strips``, ...), without per-file ones; None for a file without them."""
    metadata = read_stored_metadata(path)
    if metadata is None:
        return None
    # the generator settings first, the scenario first of them: the first difference named is the telling one
    settings = metadata.get("settings") if isinstance(metadata.get("settings"), dict) else {}
    flat = {f"settings.{k}": settings[k] for k in sorted(settings, key=lambda k: (k != "scenario", k)) if k not in PER_FILE_SETTINGS}
    for key, value in metadata.items():
        if key in (*_NOT_PHYSICS, "settings"):
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _differences(first: dict | None, other: dict | None) -> list[str]:
    if first is None or other is None:
        return [] if first is other else ["stored settings"]
    return [key for key in dict.fromkeys([*first, *other]) if first.get(key) != other.get(key)]


def _shown(settings: dict | None, key: str) -> str:
    if settings is None:
        return "none stored"
    return json.dumps(settings.get(key)) if key in settings else "absent"


def check_same_settings(paths, *, allow_mixed: bool = False) -> str | None:
    """Refuse files whose stored physics settings differ, naming the first differing setting;
    with ``allow_mixed``, return a description of every mixed setting (None for one sample)."""
    if len(paths) < 2:
        return None
    settings = [stored_settings(path) for path in paths]
    mixed = {}
    for path, other in zip(paths[1:], settings[1:]):
        if not allow_mixed and (settings[0] is None) != (other is None):
            without, with_ = (path, paths[0]) if other is None else (paths[0], path)
            msg = (
                f"{str(without)!r} has no stored simulation settings and {str(with_)!r} has: they may not be one "
                "sample composition (pass --allow-mixed to merge them anyway)"
            )
            raise ConfigError(msg)
        for key in _differences(settings[0], other):
            if not allow_mixed:
                msg = (
                    f"{str(path)!r} and {str(paths[0])!r} were simulated with different settings: "
                    f"{key} is {_shown(other, key)} vs {_shown(settings[0], key)}; a rate table needs one "
                    "sample composition (pass --allow-mixed to merge them anyway)"
                )
                raise ConfigError(msg)
            mixed.setdefault(key, [])
    if not mixed:
        return None
    for key, values in mixed.items():
        values.extend(dict.fromkeys(_shown(s, key) for s in settings))
    return "mixed sample: " + "; ".join(f"{key} {', '.join(values)}" for key, values in mixed.items())
