"""The multi-channel workflow walked as a new dual-view lab would (session 44): what was wrong or unclear on the way.

Each test fails on the code before its fix."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
from plexloc.config import SimulationConfig, validate_config
from plexloc.config.models import SplitViewConfig
from plexloc.simulation import Simulator

PX = 100.0
SIZE = 32
EYE = np.eye(3)


def _shift(dx_px: float, dy_px: float = 0.0) -> np.ndarray:
    return np.array([[1.0, 0.0, dx_px * PX], [0.0, 1.0, dy_px * PX], [0.0, 0.0, 1.0]])


def _two_channels(transform=EYE, **over) -> dict:
    d = {
        "px_size_nm": PX,
        "frame_size": [SIZE, SIZE],
        "photon_model": {"kind": "linked"},
        "channels": [
            {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "throughput": 0.5},
            {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "throughput": 0.5,
             "transform": np.asarray(transform).tolist()},
        ],
        "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 5000.0], "z_range_nm": [0.0, 0.0]},
        "background": {"range": [10.0, 10.0]},
    }
    d.update(over)
    return d


@pytest.fixture(scope="module")
def shifted() -> np.ndarray:
    """Photon frames (C, T, H, W): channel 1 three pixels right of channel 0 (r_1 = r_0 + 300 nm)."""
    cfg = validate_config(_two_channels(_shift(3.0)), SimulationConfig)
    return Simulator(cfg).simulate_movie(80, generator=torch.Generator().manual_seed(0)).frames.numpy()


# --- a channel transform given the wrong way round (channel -> reference) ------------------------------------------
def test_reversed_transform_is_named_beside_swapped_movies(shifted):
    """Two channel movies: the inverse transform and swapped movies line up alike; the warning named only the movie
    order, and sent a lab whose movies were in the right order to swap them (a biplane: then the focal planes too)."""
    with pytest.warns(ChannelAlignmentWarning) as rec:
        rep = check_channel_alignment(list(shifted), [EYE, _shift(-3.0)], PX, sources=["a.tif", "b.tif"])
    assert rep.status == "wrong geometry"
    (msg,) = [str(r.message) for r in rec]
    assert "give them to plexloc fit as b.tif a.tif" in msg
    assert "channels.1.transform given in the reverse direction" in msg
    assert "its inverse [[1, 0, 300], [0, 1, 0], [0, 0, 1]] would line up" in msg


def test_reversed_transform_of_a_mirrored_split_view_is_named(shifted):
    """A split view with channel 1 mirrored (flip [none, x]): swapped boxes are no explanation there, and the reversed
    transform was reported as a transform 'off by' 6 px, to be re-measured on beads."""
    split = SplitViewConfig(boxes=[(0, 0, SIZE, SIZE), (SIZE, 0, SIZE, SIZE)], flip=["none", "x"])
    with pytest.warns(ChannelAlignmentWarning) as rec:
        rep = check_channel_alignment(list(shifted), [EYE, _shift(-3.0)], PX, split=split, sources="sv.tif")
    assert rep.status == "misaligned"
    (msg,) = [str(r.message) for r in rec]
    assert re.search(r"peaks at dx = \+(5\.[89]|6\.[01]) px", msg)
    assert "channels.1.transform given in the reverse direction" in msg
    assert "[[1, 0, 300], [0, 1, 0], [0, 0, 1]]" in msg
    assert "re-run plexloc calibrate" not in msg
    # a transform simply 3 px off (not reversed) keeps the old advice
    with pytest.warns(ChannelAlignmentWarning, match="re-run plexloc calibrate") as rec:
        check_channel_alignment(list(shifted), [EYE, EYE], PX, split=split)
    assert "reverse direction" not in str(rec[0].message)
