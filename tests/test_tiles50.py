"""Session 50, helper tiles: tiling, the temporal window's ends and the Predictor's settings (bench/tiles50.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plexloc.infer import Predictor, iter_frame_blocks, sliding_windows, tiles
from test_infer import _random_model


@pytest.mark.parametrize("margin", [-5, -1])
def test_a_negative_tile_margin_is_refused(margin):
    """A negative margin cut each tile's input inside its core: a random network on 3 frames of 128 x 128 in 32-px
    tiles found 69 localizations at margin -5 where the whole frames had 134, without a word."""
    net = _random_model()
    with pytest.raises(ValueError, match="margin_px must be a whole number of pixels >= 0"):
        Predictor(net, tile_px=32, margin_px=margin)
    with pytest.raises(ValueError, match="tile margin"):
        tiles(128, 32, margin)


@pytest.mark.parametrize("tile", [0, -3, 2.5])
def test_a_tile_size_below_one_pixel_is_refused_by_name(tile):
    net = _random_model()
    with pytest.raises(ValueError, match="tile_px must be a whole number of pixels >= 1"):
        Predictor(net, tile_px=tile)


@pytest.mark.parametrize("threshold", [math.nan, 0.0, -1.0, 1.5, 2.0])
def test_a_threshold_outside_0_1_is_refused(threshold):
    """NaN or above 1 found no localization at all, 0 or below every weak maximum (the CLI refused them already)."""
    net = _random_model()
    with pytest.raises(ValueError, match=r"threshold .* must lie in \(0, 1\]"):
        Predictor(net, threshold=threshold)
    Predictor(net, threshold=1.0)  # the ends the CLI accepts stay accepted


def test_tiles_cover_every_pixel_once_for_any_size():
    for size in (1, 2, 31, 32, 33, 300, 511, 700):
        for tile in (1, 7, 32, 256):
            for margin in (0, 5, 40):
                cover = np.zeros(size, int)
                for c0, c1, i0, i1 in tiles(size, tile, margin, 4):
                    cover[c0:c1] += 1
                    assert 0 <= i0 <= c0 and c1 <= i1 <= size and i0 % 4 == 0
                assert (cover == 1).all(), (size, tile, margin)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_short_movies_and_one_frame_chunks_give_every_frame_its_window(n):
    """Frame t's window is t-1, t, t+1, the movie's edge frame repeated at its ends, for movies of 1 and 2 frames and
    for chunks of one frame (a folder of single-frame TIFFs)."""
    movie = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 2, 3).clone()
    for chunk in (1, 2, n):
        for batch in (1, 2, 16):
            seen = {}
            for first, block in iter_frame_blocks([movie[i:i + chunk] for i in range(0, n, chunk)], window=3,
                                                  batch_frames=batch):
                w = sliding_windows(block, 3)
                for j in range(w.shape[0]):
                    assert first + j not in seen
                    seen[first + j] = w[j, :, 0, 0, 0].tolist()
            assert seen == {t: [float(max(t - 1, 0)), float(t), float(min(t + 1, n - 1))] for t in range(n)}


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (1, 1), (2, 2), (3, 70)])
def test_frames_of_one_row_or_column_run_whole_and_tiled_alike(shape):
    """Frames narrower than the network's pooling cell go through (no error), and tiling them along their long side
    gives the whole frame's pixels, none twice."""
    net = _random_model(seed=1)
    x = torch.rand(1, 3, 1, *shape) * 100 + 20
    whole = Predictor(net, tile_px=256).localize(x)
    tiled = Predictor(net, tile_px=16, margin_px=40).localize(x)
    key = lambda e: sorted(zip(e.sample.tolist(), e.pixel_row.tolist(), e.pixel_col.tolist()))  # noqa: E731
    assert key(whole) == key(tiled)
    assert len(set(key(tiled))) == len(tiled)
