"""One channel, too, is simulated with emitters just outside the field (half a PSF patch): a real movie's edges hold
light from emitters outside, and a network trained without them took those for emitters inside (bench/RESULTS.md,
session 32: 10 % false positives at 0.1/um^2, 97 % of them within 300 nm of the edge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from plexloc.config import load_config
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_one_channel_samples_half_a_patch_around_the_field_and_keeps_the_inside_as_truth():
    torch.manual_seed(0)
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    sim = Simulator(cfg)
    assert sim.channel_margin_px() == np.ceil(max(sim.channels[0].psf.roi_px) / 2) == 7.0
    gen = torch.Generator().manual_seed(3)
    emitters, chunks = sim.iter_movie(400, generator=gen, density_per_um2=2.0)
    xy = emitters.xyz_nm[:, :2].numpy()
    fov = np.asarray(sim.fov_nm)
    outside = (xy < 0).any(axis=1) | (xy >= fov).any(axis=1)
    assert 0.2 < outside.mean() < 0.5  # ((64 + 14) / 64)^2 - 1 = 0.49 of the field's area more, on a 64 px frame
    assert np.abs(xy[outside]).max() < 7 * max(sim.px_size_nm) + fov.max()
    truth = sim.truth_table(emitters)
    assert len(truth) == int((~outside).sum()) and (truth["x_nm"] >= 0).all() and (truth["x_nm"] < fov[0]).all()
    # the signal at the edge is as strong as in the middle (it was weaker: no light from outside)
    frames = torch.cat([raw[0] for _, raw, _ in chunks]).float()
    bg_free = frames - frames.median()  # background and offset are flat in this example
    mean_cols = bg_free.mean(dim=(0, 1))
    edge, middle = float(mean_cols[:2].mean()), float(mean_cols[28:36].mean())
    assert edge > 0.85 * middle
