"""Hits -> images and input fragmentation (l0emu/images.py) on hand-made events with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from l0emu.errors import ConfigError
from l0emu.trigger.images import (
    FRAGMENT_STRIPS,
    WINDOW_STRIPS,
    first_out_of_range,
    fragment_hits,
    fragment_images,
    hits_to_images,
    pooled_to_float,
    window_starts,
)

from conftest import jagged_hits

LAST_START = 384 - WINDOW_STRIPS


def test_window_starts_cover_the_right_edge():
    assert window_starts(32).tolist() == list(range(0, LAST_START + 1, 32))
    assert window_starts(5).tolist() == [*range(0, 351, 5), LAST_START]
    assert window_starts(1).tolist() == list(range(LAST_START + 1))


@pytest.mark.parametrize("stride", [0, -1, LAST_START + 1, 2.0])
def test_window_starts_reject_impossible_strides(stride):
    with pytest.raises(ConfigError, match="stride"):
        window_starts(stride)


def test_single_hit_is_centred_by_the_tie_rule():
    # windows starting at 69..100 all hold the hit: the middle of that run is 84
    starts, pooled = fragment_hits(*jagged_hits([(4, 100)]), stride=1)
    assert starts.tolist() == [84]
    expected = np.zeros((9, FRAGMENT_STRIPS), np.uint8)
    expected[4, (100 - 84) // 2] = 1
    assert np.array_equal(pooled[0], expected)


def test_first_run_of_tied_windows_wins():
    # two single hits far apart tie; the first run (starts 0..10) is chosen, middle 5
    starts, _ = fragment_hits(*jagged_hits([(0, 10), (0, 200)]), stride=1)
    assert starts.tolist() == [5]


def test_window_with_most_hits_wins_over_earlier_windows():
    event = [(0, 10), (3, 250), (4, 251), (5, 252)]
    starts, pooled = fragment_hits(*jagged_hits(event), stride=32)
    assert starts.tolist() == [224]
    assert pooled[0].sum() == 3


def test_pooling_counts_lit_pixels_per_pair_of_strips():
    # window start 0 (stride 32, only hits in the first window): pairs (0,1) (2,3) ...
    event = [(0, 0), (0, 1), (0, 3), (8, 30), (8, 31), (2, 6)]
    starts, pooled = fragment_hits(*jagged_hits(event), stride=32)
    assert starts.tolist() == [0]
    expected = np.zeros((9, FRAGMENT_STRIPS), np.uint8)
    expected[0, 0] = 2
    expected[0, 1] = 1
    expected[8, 15] = 2
    expected[2, 3] = 1
    assert np.array_equal(pooled[0], expected)
    assert np.array_equal(pooled_to_float(pooled)[0, ..., 0], expected * 0.5)


@pytest.mark.parametrize(("stride", "strip", "start"), [(32, 383, LAST_START), (7, 383, LAST_START), (1, 383, LAST_START), (1, 370, 345)])
def test_right_edge_window_is_reachable(stride, strip, start):
    starts, pooled = fragment_hits(*jagged_hits([(1, strip)]), stride=stride)
    assert starts.tolist() == [start]
    assert pooled[0, 1, (strip - start) // 2] == 1


def test_empty_event_takes_the_middle_window():
    starts, pooled = fragment_hits(*jagged_hits([]), stride=1)
    assert starts.tolist() == [LAST_START // 2]
    assert not pooled.any()


def test_hits_to_images_is_binary_with_duplicates():
    images = hits_to_images(*jagged_hits([(2, 7), (2, 7), (8, 383)], [(0, 0)]))
    assert images.shape == (2, 9, 384) and images.dtype == np.uint8
    assert images[0, 2, 7] == 1 and images[0, 8, 383] == 1 and images[0].sum() == 2
    assert images[1, 0, 0] == 1 and images[1].sum() == 1


@pytest.mark.parametrize("stride", [1, 3, 8, 32])
def test_fragment_hits_equals_fragment_images(stride):
    rng = np.random.default_rng(7)
    events = []
    for _ in range(300):
        noise = [(int(rng.integers(9)), int(rng.integers(384))) for _ in range(rng.integers(0, 12))]
        centre = int(rng.integers(384))
        track = [(layer, int(np.clip(centre + layer * rng.integers(-3, 4), 0, 383))) for layer in range(9)]
        events.append(noise + (track if rng.random() < 0.5 else []))
    offsets, layer, strip = jagged_hits(*events)
    starts_hits, pooled_hits = fragment_hits(offsets, layer, strip, stride)
    starts_images, pooled_images = fragment_images(hits_to_images(offsets, layer, strip), stride)
    assert np.array_equal(starts_hits, starts_images)
    assert np.array_equal(pooled_hits, pooled_images)


def test_first_out_of_range_names_the_hit():
    _, layer, strip = jagged_hits([(0, 1), (8, 383), (9, 0)])
    assert first_out_of_range(layer, strip) == 2
    assert first_out_of_range(layer[:2], strip[:2]) == -1
    assert first_out_of_range(np.array([0], np.int16), np.array([384], np.int16)) == 0


@pytest.mark.parametrize("stride", [1, 3, 7, 8, 16, 24, 32, 100, 352])
def test_hit_based_fragmentation_equals_image_based_on_random_events(stride):
    # dense and edge-heavy events with duplicate hits: every window rule is exercised
    rng = np.random.default_rng(stride)
    counts = rng.integers(0, 40, 2000)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    layer = rng.integers(0, 9, offsets[-1]).astype(np.uint8)
    near_edge = rng.random(offsets[-1]) < 0.5
    strip = np.where(near_edge, rng.integers(340, 384, offsets[-1]), rng.integers(0, 384, offsets[-1])).astype(np.int16)
    starts_h, pooled_h = fragment_hits(offsets, layer, strip, stride)
    starts_i, pooled_i = fragment_images(hits_to_images(offsets, layer, strip), stride)
    np.testing.assert_array_equal(starts_h, starts_i)
    np.testing.assert_array_equal(pooled_h, pooled_i)
