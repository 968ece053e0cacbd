"""Every knob of the toy RPC simulation, in one frozen settings object.

The defaults are the "Toy detector defaults" of docs/design.md, not tuned to flatter the
network. Every value is written into each event file (see :mod:`simulation.events_io`), so
a sample is regenerated bit for bit from the file alone.

Bending: the toroid bends muons in eta. A straight track from the interaction point lights
the same eta strip in every layer (strips are eta bins), so the track's shape is its bend:
the eta offset of layer ``l`` is ``charge * bend_strips_gev / pt * lever(l)``, with
``lever = ((r - field_start_radius_m) / (r_BO - field_start_radius_m))**2`` (quadratic,
as for a constant field starting at ``field_start_radius_m``; 0 inside, 1 at the first BO
layer). With the default 120 strip*GeV the BO-BI offset is ~40 strips at 3 GeV, 12 at
10 GeV (inside a 32-strip window) and 6 at 20 GeV. Multiple scattering smears each layer
by a Gaussian of ``ms_strips_gev / pt * linear_lever(l)`` strips.

Muon pT: the default is flat in [3, 20] GeV, the training sample of every shipped network
(kept so that its meaning does not change). Rates and plateaus need muons well above the
highest default threshold (20 GeV, whose plateau starts at 30 GeV), which a sample ending at
20 GeV does not hold: :data:`RATE_SPECTRUM` is the documented falling spectrum for rate and
plateau estimates, dN/dpT ~ pT^-2 over [3, 50] GeV (about 4 % of muons above 30 GeV), used
by the main job (``.ci/main``)::

    l0emu simulate -n 1000000 --seed 1 --set pt_spectrum=power --set pt_power_index=2 --set pt_max=50 -o events.root

The trigger job re-weights efficiencies to its own rate spectrum (``--spectrum-index``), so
the sample's index only sets how many muons land in each pT bin.

``background_fraction`` (default 0.5) is the fraction of crossings generated without a
signal muon: half signal, half background is a balanced training sample. Rates at the LHC
are a different question, answered in the trigger job with its stated assumptions.

Muon count: with ``two_muon_fraction`` and ``three_muon_fraction`` both 0 (every scenario
but ``multi``), a signal crossing holds 1..``max_muons`` muons, uniformly (the historical
rule, kept so that existing samples regenerate bit for bit). Otherwise the count is drawn
with fractions *of all crossings*: 0 muons ``background_fraction``, 2 muons
``two_muon_fraction``, 3 muons ``three_muon_fraction``, 1 muon the rest
(:meth:`SimSettings.muon_count_fractions`, also written into each file's metadata); each
muon has its own pT, eta and charge. The ``multi`` scenario (docs/multi_muon.md) is 25 % /
30 % / 30 % / 15 % for 0 / 1 / 2 / 3 muons on the default noise; the ``hard`` background is
combined with it by ``--set`` of its four values::

    l0emu simulate -n 200000 --seed 7 --scenario multi -o multi.root
    l0emu simulate -n 200000 --seed 8 --scenario multi --set noise_rate=3e-3 --set segment_rate=0.5 \
        --set correlated_cluster_rate=0.5 --set soft_muon_fraction=0.3 -o multi_hard.root
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from l0emu.errors import ConfigError, did_you_mean
from l0emu.trigger.geometry import ETA_MAX, ETA_MIN

__all__ = ["SimSettings", "PHYSICAL_RANGES", "SCENARIOS", "PT_SPECTRA", "RATE_SPECTRUM", "settings_for_scenario"]

PT_SPECTRA = ("flat", "power")
# the falling spectrum for rate and plateau estimates (module docstring): overrides of any scenario
RATE_SPECTRUM = {"pt_spectrum": "power", "pt_power_index": 2.0, "pt_max": 50.0}


# Bounds of the knobs that have no natural end, at ten times their default: a value beyond
# them is a typo or a unit slip, not a detector (bend_strips_gev=1e300 bends every muon out of
# the sector and leaves only noise hits). At 1200 strip*GeV a 20 GeV muon bends by 60 strips
# between BI and BO, a sixth of the sector; at 30 strip*GeV scattering smears a 3 GeV muon by
# 10 strips; a background segment steeper than 20 strips per layer crosses a fragment window
# (16 strips) between two layers; a pT spectrum falling as pT^-10 keeps only 0.2 % of its
# muons above twice pt_min.
PHYSICAL_RANGES = {
    "bend_strips_gev": (0.0, 1200.0),
    "ms_strips_gev": (0.0, 30.0),
    "segment_slope_max": (0.0, 20.0),
    "pt_power_index": (0.0, 10.0),
}


@dataclass(frozen=True)
class SimSettings:
    """Generator settings; build with :func:`settings_for_scenario`, check with :meth:`validate`."""

    seed: int = 0
    scenario: str = "default"
    # event composition
    background_fraction: float = 0.5
    max_muons: int = 1
    two_muon_fraction: float = 0.0  # of all crossings (module docstring: muon count)
    three_muon_fraction: float = 0.0
    # signal muons
    pt_min: float = 3.0
    pt_max: float = 20.0
    pt_spectrum: str = "flat"
    pt_power_index: float = 2.0  # dN/dpT ~ pT**-index when pt_spectrum == "power"
    eta_min: float = ETA_MIN
    eta_max: float = ETA_MAX
    # toroid bending and multiple scattering
    bend_strips_gev: float = 120.0
    field_start_radius_m: float = 4.3
    ms_strips_gev: float = 3.0
    # RPC response
    layer_efficiency: float = 0.95
    cluster_size_1: float = 0.70
    cluster_size_2: float = 0.25
    cluster_size_3: float = 0.05
    noise_rate: float = 1e-3  # per strip per crossing
    # correlated background (scenario "hard")
    segment_rate: float = 0.0  # mean single-station segments per crossing
    segment_slope_max: float = 2.0  # strips per layer
    correlated_cluster_rate: float = 0.0  # mean two-layer clusters per crossing
    soft_muon_fraction: float = 0.0  # of background crossings, carrying one soft muon
    soft_pt_min: float = 1.0
    soft_pt_max: float = 3.0

    def validate(self) -> SimSettings:
        """Raise ConfigError naming the first impossible setting; return self."""
        _check_int(self, "seed", 0, 2**63 - 1)
        if self.scenario not in SCENARIOS:
            msg = f"setting 'scenario': unknown scenario {self.scenario!r}" + did_you_mean(self.scenario, SCENARIOS)
            raise ConfigError(msg)
        _check_int(self, "max_muons", 1, 3)
        for name in ("background_fraction", "layer_efficiency", "soft_muon_fraction",
                     "cluster_size_1", "cluster_size_2", "cluster_size_3"):
            _check_range(self, name, 0.0, 1.0)
        _check_range(self, "noise_rate", 0.0, 0.1)
        for name in ("segment_rate", "correlated_cluster_rate"):
            _check_range(self, name, 0.0, 20.0)
        for name, (low, high) in PHYSICAL_RANGES.items():
            _check_range(self, name, low, high)
        _check_range(self, "field_start_radius_m", 0.0, 9.0)
        _check_interval(self, "pt_min", "pt_max", 0.1, 1e4)
        _check_interval(self, "soft_pt_min", "soft_pt_max", 0.1, 1e4)
        _check_interval(self, "eta_min", "eta_max", ETA_MIN, ETA_MAX)
        total = self.cluster_size_1 + self.cluster_size_2 + self.cluster_size_3
        if abs(total - 1.0) > 1e-9:
            msg = f"settings 'cluster_size_1/2/3' must sum to 1, got {total!r}"
            raise ConfigError(msg)
        _check_muon_counts(self)
        if self.pt_spectrum not in PT_SPECTRA:
            msg = f"setting 'pt_spectrum': unknown spectrum {self.pt_spectrum!r}" + did_you_mean(self.pt_spectrum, PT_SPECTRA)
            raise ConfigError(msg)
        return self

    @property
    def multi_muon(self) -> bool:
        """True when the muon count is drawn from the fractions (module docstring), not uniformly."""
        return self.two_muon_fraction > 0 or self.three_muon_fraction > 0

    def muon_count_fractions(self) -> list[float] | None:
        """Fractions of crossings with 0, 1, 2, 3 muons, or None for the uniform 1..max_muons rule."""
        if not self.multi_muon:
            return None
        one = 1.0 - self.background_fraction - self.two_muon_fraction - self.three_muon_fraction
        return [self.background_fraction, round(max(one, 0.0), 12), self.two_muon_fraction, self.three_muon_fraction]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SimSettings:
        """Exactly the stored values (no scenario defaults re-applied), validated."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                msg = f"unknown setting {key!r}" + did_you_mean(key, known)
                raise ConfigError(msg)
        return cls(**{key: _coerce(key, value) for key, value in values.items()}).validate()

    def with_overrides(self, overrides: dict) -> SimSettings:
        """A copy with ``overrides`` (values may be strings, as from ``--set key=value``)."""
        merged = self.to_dict()
        merged.update(overrides)
        return SimSettings.from_dict(merged)


# A named scenario is a set of overrides of the defaults.
SCENARIOS = {
    "default": {},
    "hard": {
        "noise_rate": 3e-3,
        "segment_rate": 0.5,
        "correlated_cluster_rate": 0.5,
        "soft_muon_fraction": 0.3,
    },
    # 0 / 1 / 2 / 3 muons in 25 / 30 / 30 / 15 % of crossings (docs/multi_muon.md)
    "multi": {
        "background_fraction": 0.25,
        "two_muon_fraction": 0.30,
        "three_muon_fraction": 0.15,
        "max_muons": 3,
    },
}


def settings_for_scenario(scenario: str = "default", *, seed: int = 0, overrides: dict | None = None) -> SimSettings:
    """Defaults, then the scenario's overrides, then the user's ``overrides``; validated."""
    if scenario not in SCENARIOS:
        msg = f"unknown scenario {scenario!r}" + did_you_mean(scenario, SCENARIOS)
        raise ConfigError(msg)
    values = {"seed": seed, "scenario": scenario, **SCENARIOS[scenario], **(overrides or {})}
    return SimSettings().with_overrides(values)


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(SimSettings)}


def _coerce(key: str, value):
    kind = _FIELD_TYPES[key]
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        msg = f"setting {key!r} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}"
        raise ConfigError(msg) from None


def _check_int(settings, name, low, high):
    value = getattr(settings, name)
    if not low <= value <= high:
        msg = f"setting {name!r} must be an integer in [{low}, {high}], got {value!r}"
        raise ConfigError(msg)


def _check_muon_counts(settings):
    for name in ("two_muon_fraction", "three_muon_fraction"):
        _check_range(settings, name, 0.0, 1.0)
    total = settings.background_fraction + settings.two_muon_fraction + settings.three_muon_fraction
    if total > 1.0 + 1e-12:
        msg = f"settings 'background_fraction' + 'two_muon_fraction' + 'three_muon_fraction' must be <= 1, got {total!r}"
        raise ConfigError(msg)
    largest = 3 if settings.three_muon_fraction > 0 else 2 if settings.two_muon_fraction > 0 else 1
    if settings.max_muons < largest:
        msg = f"setting 'max_muons' must be >= {largest} when that many muons are drawn, got {settings.max_muons!r}"
        raise ConfigError(msg)


def _check_range(settings, name, low, high):
    value = getattr(settings, name)
    if not (math.isfinite(value) and low <= value <= high):
        allowed = f"a finite number >= {low:g}" if math.isinf(high) else f"in [{low:g}, {high:g}]"
        msg = f"setting {name!r} must be {allowed}, got {value!r}"
        raise ConfigError(msg)


def _check_interval(settings, low_name, high_name, low, high):
    lo, hi = getattr(settings, low_name), getattr(settings, high_name)
    _check_range(settings, low_name, low, high)
    _check_range(settings, high_name, low, high)
    if not lo < hi:
        msg = f"settings {low_name!r} < {high_name!r} required, got {lo!r} >= {hi!r}"
        raise ConfigError(msg)
