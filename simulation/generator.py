"""Toy RPC events for one barrel trigger sector, generated block by block.

Reproducibility: events come in fixed blocks of :data:`BLOCK_EVENTS`, and block ``b``
draws from its own generator seeded by ``SeedSequence(seed, spawn_key=(b,))``. The user's
chunk size only decides how blocks are cut and joined for writing, so the same seed and
settings give identical arrays for any chunk size, and the first N events of a longer
run equal an N-event run.

Physics (see :mod:`simulation.settings` for the numbers): muons with pT from a flat or
power-law spectrum, random charge, eta uniform; the toroid bend grows with charge/pT and
the lever arm of each layer; multiple-scattering smear; per-layer efficiency; clusters of
1-3 strips placed around the crossing point; uniform noise per strip; and, in the ``hard``
scenario, single-station segments, layer-correlated clusters and soft muons in background
crossings. Muon truth is sorted by pT, leading first.
"""

from __future__ import annotations

import numpy as np

from l0emu.trigger.geometry import LAYER_RADIUS_M, N_LAYERS, N_STRIPS, STATION_OF_LAYER, eta_to_strip

from .block import EventBlock
from .kernels import emit_hits
from .settings import SimSettings

__all__ = ["BLOCK_EVENTS", "generate_block", "iter_chunks", "generate", "bend_lever", "ms_lever"]

BLOCK_EVENTS = 1 << 15

_STATION_FIRST_LAYER = np.searchsorted(STATION_OF_LAYER, np.arange(STATION_OF_LAYER.max() + 1))
_STATION_N_LAYERS = np.bincount(STATION_OF_LAYER)
_MAX_STATION_LAYERS = int(_STATION_N_LAYERS.max())
# lower layer of each pair of adjacent layers in the same station
_ADJACENT_PAIRS = np.flatnonzero(STATION_OF_LAYER[:-1] == STATION_OF_LAYER[1:])
_FIRST_BO_LAYER = int(_STATION_FIRST_LAYER[-1])
# strips cannot move further than this outside the sector and still matter (clusters are <= 3)
_CLIP_MARGIN = 8.0


def bend_lever(settings: SimSettings) -> np.ndarray:
    """Per layer: bend offset in units of the first BO layer's (quadratic in radius past the field start)."""
    return _linear_lever(settings) ** 2


def ms_lever(settings: SimSettings) -> np.ndarray:
    """Per layer: multiple-scattering smear in units of the first BO layer's (linear in radius)."""
    return _linear_lever(settings)


def _linear_lever(settings: SimSettings) -> np.ndarray:
    r0 = settings.field_start_radius_m
    return np.clip((LAYER_RADIUS_M - r0) / (LAYER_RADIUS_M[_FIRST_BO_LAYER] - r0), 0.0, None)


def _block_rng(seed: int, block_index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block_index,))))


def _sample_pt(settings: SimSettings, u: np.ndarray) -> np.ndarray:
    a, b = settings.pt_min, settings.pt_max
    if settings.pt_spectrum == "flat":
        return a + u * (b - a)
    k = settings.pt_power_index
    if k == 1.0:
        return a * (b / a) ** u
    # inverse CDF of dN/dpT ~ pT**-k on [a, b]
    return (a ** (1 - k) + u * (b ** (1 - k) - a ** (1 - k))) ** (1 / (1 - k))


def _cluster_sizes(u: np.ndarray, settings: SimSettings, efficiency: float) -> np.ndarray:
    """0 (no hit, probability 1-efficiency) or 1/2/3 strips with the settings' fractions, from one uniform."""
    t1 = efficiency * settings.cluster_size_1
    t2 = efficiency * (settings.cluster_size_1 + settings.cluster_size_2)
    return ((u < efficiency) * (1 + (u >= t1) + (u >= t2))).astype(np.uint8)


def _first_strips(x: np.ndarray, size: np.ndarray) -> np.ndarray:
    """First strip of a cluster crossing continuous strip coordinate ``x``.

    Size 1: the crossed strip; 2: it and the neighbour on the side of the crossing point;
    3: it and both neighbours.
    """
    x = np.clip(x, -_CLIP_MARGIN, N_STRIPS + _CLIP_MARGIN)
    strip = np.floor(x)
    left_pair = (size == 2) & (x - strip < 0.5)
    return (strip - (size == 3) - left_pair).astype(np.int16)


def _offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _signal_counts(settings, rng, background):
    """Muons per crossing: 0 for background, else uniform 1..max_muons or the multi fractions."""
    n = len(background)
    if not settings.multi_muon:  # the historical draw, unchanged so old samples regenerate bit for bit
        return np.where(background, 0, 1 + rng.integers(0, settings.max_muons, n))
    # fractions of all crossings -> probabilities given a signal crossing
    _, one, two, three = settings.muon_count_fractions()
    signal = max(one + two + three, 1e-300)
    u = rng.random(n)
    count = 1 + (u >= one / signal).astype(np.int64) + (u >= (one + two) / signal)
    return np.where(background, 0, count)


def _sample_muons(settings, rng, background):
    n = len(background)
    n_signal = _signal_counts(settings, rng, background)
    soft = background & (rng.random(n) < settings.soft_muon_fraction)
    n_muons = n_signal + soft
    total = int(n_muons.sum())
    event = np.repeat(np.arange(n), n_muons)
    is_soft = np.repeat(soft, n_muons)
    u = rng.random(total)
    pt = np.where(is_soft, settings.soft_pt_min + u * (settings.soft_pt_max - settings.soft_pt_min), _sample_pt(settings, u))
    charge = np.where(rng.random(total) < 0.5, -1, 1).astype(np.int8)
    eta = settings.eta_min + rng.random(total) * (settings.eta_max - settings.eta_min)
    order = np.lexsort((-pt, event))  # grouped by event, leading muon first
    return n_muons, pt[order].astype(np.float32), eta[order].astype(np.float32), charge[order]


def _muon_clusters(settings, rng, pt, eta, charge):
    """Clusters (layer, first strip, size) of each muon in each layer, shape (n_muons * 9,)."""
    pt = pt.astype(np.float64)[:, None]
    size = _cluster_sizes(rng.random((len(pt), N_LAYERS)), settings, settings.layer_efficiency)
    smear = rng.standard_normal((len(pt), N_LAYERS))
    x = (
        eta_to_strip(eta)[:, None]
        + charge[:, None] * (settings.bend_strips_gev / pt) * bend_lever(settings)
        + (settings.ms_strips_gev / pt) * ms_lever(settings) * smear
    )
    layer = np.broadcast_to(np.arange(N_LAYERS, dtype=np.uint8), size.shape)
    return layer.ravel(), _first_strips(x, size).ravel(), size.ravel()


def _segment_clusters(settings, rng, n_events):
    """Single-station segments of soft particles: a short straight line across one station."""
    counts = rng.poisson(settings.segment_rate, n_events) if settings.segment_rate > 0 else np.zeros(n_events, np.int64)
    total = int(counts.sum())
    station = rng.integers(0, len(_STATION_N_LAYERS), total)
    centre = rng.random(total) * N_STRIPS
    slope = (2 * rng.random(total) - 1) * settings.segment_slope_max
    slot = np.arange(_MAX_STATION_LAYERS)
    in_station = slot[None, :] < _STATION_N_LAYERS[station][:, None]
    size = _cluster_sizes(rng.random((total, _MAX_STATION_LAYERS)), settings, settings.layer_efficiency) * in_station
    layer = np.minimum(_STATION_FIRST_LAYER[station][:, None] + slot[None, :], N_LAYERS - 1).astype(np.uint8)
    x = centre[:, None] + slope[:, None] * slot[None, :]
    return counts * _MAX_STATION_LAYERS, layer.ravel(), _first_strips(x, size).ravel(), size.astype(np.uint8).ravel()


def _correlated_clusters(settings, rng, n_events):
    """The same strips lit in two adjacent layers of one station."""
    rate = settings.correlated_cluster_rate
    counts = rng.poisson(rate, n_events) if rate > 0 else np.zeros(n_events, np.int64)
    total = int(counts.sum())
    lower = _ADJACENT_PAIRS[rng.integers(0, len(_ADJACENT_PAIRS), total)]
    size = _cluster_sizes(rng.random(total), settings, 1.0)
    first = rng.integers(0, N_STRIPS, total).astype(np.int16)
    layer = np.stack([lower, lower + 1], axis=1).astype(np.uint8)
    return counts * 2, layer.ravel(), np.repeat(first, 2), np.repeat(size, 2)


def _noise_clusters(settings, rng, n_events):
    """Uncorrelated noise: each of the 9*384 strips fires with probability noise_rate.

    The count per crossing is binomial; positions are drawn uniformly with replacement and
    repeats merge in the kernel, which lowers the occupancy by a relative ~noise_rate/2.
    """
    n_pixels = N_LAYERS * N_STRIPS
    counts = rng.binomial(n_pixels, settings.noise_rate, n_events)
    pixel = rng.integers(0, n_pixels, int(counts.sum()))
    layer = (pixel // N_STRIPS).astype(np.uint8)
    first = (pixel % N_STRIPS).astype(np.int16)
    return counts, layer, first, np.ones(len(pixel), np.uint8)


def generate_block(settings: SimSettings, block_index: int) -> EventBlock:
    """The :data:`BLOCK_EVENTS` events of block ``block_index`` (event ids from ``block_index * BLOCK_EVENTS``)."""
    rng = _block_rng(settings.seed, block_index)
    n = BLOCK_EVENTS
    background = rng.random(n) < settings.background_fraction
    n_muons, pt, eta, charge = _sample_muons(settings, rng, background)
    muon_layer, muon_first, muon_size = _muon_clusters(settings, rng, pt, eta, charge)
    sources = [(n_muons * N_LAYERS, muon_layer, muon_first, muon_size, False)]
    sources.append((*_segment_clusters(settings, rng, n), True))
    sources.append((*_correlated_clusters(settings, rng, n), True))
    sources.append((*_noise_clusters(settings, rng, n), True))

    source_offsets = np.empty((len(sources), n + 1), np.int64)
    base = 0
    for k, (counts, layer, _, _, _) in enumerate(sources):
        source_offsets[k] = base + _offsets(counts)
        base += len(layer)
    hit_offsets, hit_layer, hit_strip, hit_is_noise = emit_hits(
        source_offsets,
        np.concatenate([s[1] for s in sources]),
        np.concatenate([s[2] for s in sources]),
        np.concatenate([s[3] for s in sources]),
        np.concatenate([np.full(len(s[1]), s[4]) for s in sources]),
    )
    return EventBlock(
        event_id=np.arange(block_index * n, (block_index + 1) * n, dtype=np.uint64),
        n_muons=n_muons.astype(np.uint8),
        muon_offsets=_offsets(n_muons),
        muon_pt=pt,
        muon_eta=eta,
        muon_charge=charge,
        hit_offsets=hit_offsets,
        hit_layer=hit_layer,
        hit_strip=hit_strip,
        hit_is_noise=hit_is_noise,
    )


def iter_chunks(settings: SimSettings, n_events: int, chunk_size: int):
    """Yield the first ``n_events`` events as blocks of ``chunk_size`` (the last one shorter)."""
    pending: list[EventBlock] = []
    buffered = 0
    produced = 0
    block_index = 0
    while produced < n_events:
        want = min(chunk_size, n_events - produced)
        while buffered < want:
            pending.append(generate_block(settings, block_index))
            buffered += BLOCK_EVENTS
            block_index += 1
        merged = EventBlock.concatenate(pending)
        rest = merged.slice(want, len(merged))
        pending = [rest] if len(rest) else []
        buffered -= want
        produced += want
        yield merged.slice(0, want)


def generate(settings: SimSettings, n_events: int) -> EventBlock:
    """All ``n_events`` events in memory (tests, studies); files are written by :mod:`simulation.events_io`."""
    if n_events == 0:
        return generate_block(settings, 0).slice(0, 0)
    return EventBlock.concatenate(iter_chunks(settings, n_events, BLOCK_EVENTS))
