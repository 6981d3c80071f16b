"""Quad-plane channel order (session 49, colour helper): channels whose transforms place them alike line up the same in
any order, so the geometry check cannot tell a swap. It named one swap ("swap1-2") as undecided where channels 0 and 1
were swapped, said nothing where the order was right, and ``plexloc fit``'s summary line called it "ok" with a swap as
the best alternative. Now a note and the summary say plainly that the order is not checked."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from plexloc.calibrate.alignment import check_channel_alignment
from plexloc.config import load_config
from plexloc.simulation import Simulator
from test_colourwalk48 import SUBPIXEL, _dual_view_movie


def _quad(seed: int):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples" / "quad_plane.yaml")
    cfg = cfg.model_copy(update={"frame_size": (64, 64)})
    sim = Simulator(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        movie = sim.simulate_movie(60, generator=torch.Generator().manual_seed(seed), density_per_um2=1.0)
        photons = [ch.camera.to_photons(movie.frames[c]).numpy() for c, ch in enumerate(sim.channels)]
    return photons, [np.asarray(ch.transform, float) for ch in cfg.channels], cfg.px_size_xy_nm


@pytest.mark.parametrize("swapped", [False, True])
def test_quad_plane_order_said_to_be_unchecked(swapped):
    frames, transforms, px = _quad(0)
    if swapped:
        frames[0], frames[1] = frames[1], frames[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment(frames, transforms, px)
    assert rep.status == "ok" and not rep.findings
    said = [n for n in rep.notes if "channel order not decided" in n]
    assert len(said) == 1 and "and it cannot be" in said[0] and "channels 0, 1, 2, 3" in said[0]
    assert not any("swap1-2 lines up" in n or "swap0-1 lines up" in n for n in rep.notes)
    summary = rep.summary()
    assert "the order of channels 0, 1, 2, 3 is not checked" in summary and "best alternative swap" not in summary
    assert rep.as_dict()["indistinct"] == [[i, j] for i in range(4) for j in range(i + 1, 4)]


def test_subpixel_transform_keeps_its_own_decision():
    """A 47 nm transform (dual_color_splitview) moves the channels enough to tell a swap: no 'cannot' note."""
    from plexloc.config.models import SplitViewConfig

    frames = _dual_view_movie(SUBPIXEL, seed=0)
    split = SplitViewConfig(boxes=[[0, 0, 48, 48], [48, 0, 48, 48]], flip=["none", "none"])
    rep = check_channel_alignment([frames[0], frames[1]], [np.eye(3), SUBPIXEL], 100.0, split=split)
    assert rep.indistinct == () and not any("cannot be" in n for n in rep.notes)
    assert "is not checked" not in rep.summary()
