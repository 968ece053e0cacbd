"""Errors raised by l0emu and its sibling packages.

Every message names what is wrong and where (file, tree, branch, entry, layer or field),
so that the CLI can print it as is and exit non-zero.
"""

from __future__ import annotations

import difflib

__all__ = ["L0emuError", "ConfigError", "InputFileError", "SpecError", "did_you_mean"]


class L0emuError(Exception):
    """Base class of every error l0emu reports to a user."""


class ConfigError(L0emuError, ValueError):
    """An impossible setting or command-line option."""


class InputFileError(L0emuError):
    """An input file that is missing, unreadable, or does not follow the event schema."""


class SpecError(L0emuError, ValueError):
    """A network spec (``spec.json``) that is malformed or asks for something unsupported."""


def did_you_mean(name: str, candidates) -> str:
    """A suffix for error messages listing the nearest existing names, as uproot does for keys."""
    candidates = sorted(str(c) for c in candidates)
    close = difflib.get_close_matches(str(name), candidates, n=3, cutoff=0.5)
    if close:
        return f" (did you mean {', '.join(repr(c) for c in close)}?)"
    if candidates:
        shown = ", ".join(repr(c) for c in candidates[:12])
        more = "" if len(candidates) <= 12 else f", ... {len(candidates) - 12} more"
        return f" (available: {shown}{more})"
    return " (nothing is available)"
