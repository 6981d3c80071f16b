"""The bar: beads rendered with an independent vectorial PSF (psfmodels, biplane, EMCCD) are calibrated, and
held-out beads fitted with the calibrated splines recover z, x, y and the channel transform."""

from __future__ import annotations

import pytest

pytest.importorskip("psfmodels")

from plexloc.calibrate.synthetic import biplane_accuracy  # noqa: E402


def test_biplane_vectorial_beads_meet_the_bar():
    r = biplane_accuracy(n_beads=6, n_test_beads=6, z_half_range_nm=800.0, roi_px=13, seed=0)
    assert r["n_beads_used"] == [6, 6]
    assert abs(r["z_bias_nm"]) < 10.0
    assert r["z_rmse_nm"] < 15.0
    assert abs(r["x_bias_nm"]) < 3.0 and abs(r["y_bias_nm"]) < 3.0
    assert r["transform_residual_max_nm"] < 10.0
    # the second plane's focus is recovered (500 nm plane offset, 50 nm slices)
    assert abs(r["focus_offset_nm"] - 500.0) < 25.0


def test_vectorial_movie_renderer_places_emitters_and_photons():
    """The full-path movie renderer: on its z samples it equals the per-bead renderer; emitters land at their
    (transformed) positions with their photons."""
    import numpy as np
    import torch

    from plexloc.calibrate.synthetic import VectorialBeads, VectorialVolume, _bead_windows, render_movie

    class Noiseless(torch.nn.Module):
        def forward(self, photons, *, generator=None):
            return photons

    m = VectorialBeads()
    vol = VectorialVolume(m, z_range_nm=(-200.0, 200.0), dz_nm=20.0, roi_px=11)
    win, r0, c0 = vol.window(60.0, 1234.0, 987.0)
    ref, r1, c1 = _bead_windows(m, np.array([60.0]), 1234.0, 987.0, 11)
    assert (r0, c0) == (r1, c1) and np.abs(win - ref[0]).max() < 1e-6 * ref.max()
    T = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, -50.0], [0.0, 0.0, 1.0]])
    xy = np.array([[1234.0, 987.0], [2010.0, 2560.0]])
    movies = render_movie(vol, frame=np.array([0, 1]), xy_nm=xy, z_nm=np.zeros(2), photons=np.array([1000.0, 2000.0]),
                          n_frames=2, frame_shape=(40, 40), bg=0.0, cameras=[Noiseless(), Noiseless()],
                          transforms=[np.eye(3), T], throughput=[0.5, 0.25])
    yy, xx = np.mgrid[:40, :40]
    for c, (mov, tp) in enumerate(zip(movies, (0.5, 0.25))):
        for f in range(2):
            img = mov[f]
            x_t, y_t = (xy[f] + (T[:2, 2] if c else 0))
            # the vectorial PSF has wide wings: 80-95 % of the light falls inside an 11-px window
            assert 0.8 < img.sum() / ([1000.0, 2000.0][f] * tp) < 0.95
            cx, cy = ((xx + 0.5) * img).sum() / img.sum() * 100, ((yy + 0.5) * img).sum() / img.sum() * 100
            assert abs(cx - x_t) < 5.0 and abs(cy - y_t) < 5.0
