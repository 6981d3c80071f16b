"""Defects found by the 2026-12-06 walk of training and fitting on a user's own sCMOS microscope (108-nm pixels,
3D astigmatic, 200x180 frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from plexloc.camera.models import SCMOS
from plexloc.config import TrainConfig
from plexloc.infer.domain import check_training_domain
from plexloc.table import LocTable


def _empty() -> LocTable:
    return LocTable({k: np.zeros(0) for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})


def test_a_forgotten_baseline_is_named_with_the_baseline_that_would_fit():
    """plexloc fit with a camera file whose baseline was left at 0 (the camera adds 100 ADU): the noise check read
    0.51 and said 'photons come out about 2x too few: check the gain and e-/ADU', while the photons were 12 % high
    (evaluate: photons_bias +11.8 %) and the background 57 photons/px too high. A gain off by 2 and a baseline too
    low read alike; the warning now gives the other reading with the baseline that would fit (the walk: 107 ADU for
    a true 100)."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=0.0, read_sigma=1.6)
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[120.0], cameras=[cam], warn=False)
    noise = next(c for c in rep.checks if c.column == "noise")
    assert "about 2x too few" in noise.warning  # the gain reading stays
    # 120 photons/px predicted, 60 seen: 60 photons * 0.8 / 0.46 = 104 ADU of baseline missing
    assert "baseline is about 104 ADU too low (camera.baseline 0 ADU; about 104 would fit)" in noise.warning
    # a ratio above the range (gain too high, or baseline too high) gets no baseline-too-low reading
    rep = check_training_domain(_empty(), cfg, noise=[5.0], movie_bg=[120.0], cameras=[cam], warn=False)
    assert "baseline is about" not in next(c for c in rep.checks if c.column == "noise").warning
    # without the cameras (library callers): as before
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[120.0], warn=False)
    assert "baseline is about" not in next(c for c in rep.checks if c.column == "noise").warning


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_movie_below_the_baseline_is_named_as_not_raw_counts(dtype):
    """A float32 movie already in photons (baseline subtracted) and an 8-bit export of a 16-bit sCMOS movie, fitted
    with the camera's baseline of 100 ADU: the movie's mean pixel came out -18.8 / -26.5 photons/px and the warning
    said only 'below the model's training background ... check the camera settings'. A mean below zero means the
    frames average less than the baseline: the warning now says that the frames are not raw counts, naming the
    movie's pixel type."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    rep = check_training_domain(_empty(), cfg, movie_bg=[-18.8], movie_dtype=np.dtype(dtype), warn=False)
    bg = next(c for c in rep.checks if c.column == "bg (movie)")
    assert f"a {np.dtype(dtype).name} movie whose frames are not the camera's raw counts" in bg.warning
    rep = check_training_domain(_empty(), cfg, movie_bg=[0.5], movie_dtype=np.dtype(dtype), warn=False)
    bg = next(c for c in rep.checks if c.column == "bg (movie)")
    assert bg.warning and "raw counts" not in bg.warning  # low, but not below the baseline: as before


def test_camera_maps_give_the_baseline_hint_too():
    """An sCMOS with per-pixel maps: the hint is the maps' mean."""
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    cam = SCMOS(qe=0.8, e_per_adu=torch.full((8, 8), 0.5), baseline=torch.zeros(8, 8), read_sigma=torch.ones(8, 8))
    rep = check_training_domain(_empty(), cfg, noise=[0.5], movie_bg=[100.0], cameras=[cam], warn=False)
    assert "baseline is about 80 ADU too low" in next(c for c in rep.checks if c.column == "noise").warning
