"""Known-answer checks of the MLE fitter and the CRLB from the review of plexloc.mle and plexloc.evaluate.crlb."""

from __future__ import annotations

import torch

from plexloc.camera import EMCCD, SCMOS
from plexloc.mle.fit import FitChannel, fit_rois, noise_terms
from plexloc.mle.models import roi_model_for
from plexloc.psf import GaussianPSF

R = 11
PX = 100.0


def _windows(psf, camera, n, *, photons, bg, seed):
    """n windows of one emitter at a fixed sub-pixel position, raw -> photons."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n,), 5.3 * PX)
    y = torch.full((n,), 5.8 * PX)
    img = psf.render(x, y, torch.zeros(n), torch.full((n,), float(photons)), torch.arange(n), n_frames=n,
                     frame_shape=(R, R)) + bg
    return camera.to_photons(camera(img, generator=g)), x.double(), y.double()


def _fit(psf, camera, data):
    k, off = noise_terms(camera.noise_variance_photons, data[0])
    origins = torch.zeros(data.shape[0], 1, 2, dtype=torch.int64)
    return fit_rois([data], [FitChannel(roi_model_for(psf))], origins=origins, k=[k], offset=[off])


def test_background_is_unbiased_at_low_background_under_read_noise():
    """Read noise makes empty pixels read below 0; the effective counts were clamped at 0 before the fit, which
    lifts their mean above the model and the fitted background with it: at 0.5 photons/px the mean fitted bg was
    0.554 on the EMCCD (+11 %) and 0.524 on the sCMOS (+5 %; 4,000 windows, standard error ~0.002). The score is
    linear in the data, so the unclamped counts give an unbiased fit: within 2.5 % now (measured -1 % / -2 %)."""
    psf = GaussianPSF(sigma_nm=130.0)
    for camera, seed in ((EMCCD(), 1), (SCMOS(qe=0.8, e_per_adu=0.5, read_sigma=1.5), 2)):
        data, x, y = _windows(psf, camera, 4000, photons=500.0, bg=0.5, seed=seed)
        res = _fit(psf, camera, data)
        bias = float(res.bg_ch[:, 0].mean()) - 0.5
        assert abs(bias) < 0.0125, (camera.kind, bias)
        assert abs(float(res.photons.mean()) / 500.0 - 1.0) < 0.01
        assert abs(float((res.x_nm - x).mean())) < 0.6 and abs(float((res.y_nm - y).mean())) < 0.6
        assert bool(res.converged.all())
        # the goodness-of-fit statistics stay finite (they take the clamped, Poisson-like counts)
        assert bool(torch.isfinite(res.llr).all()) and bool(torch.isfinite(res.loglik).all())


def test_crlb_of_a_zero_photon_emitter_is_infinite_in_position_and_does_not_fail_the_batch():
    """An emitter without photons carries no position information: its x, y bound is inf, and its photon and
    background bounds are those of the 2 x 2 problem ``mu = N p + b`` at N = 0, ``var_N = b n / (n Σp² - (Σp)²)``
    (n pixels of the PSF's patch p); the other rows of the batch keep their bounds. torch's inverse failed the whole
    batch with a singular-matrix error before."""
    from plexloc.camera import IdealCamera
    from plexloc.evaluate.crlb import crlb

    psf = GaussianPSF(sigma_nm=130.0)
    bg = 10.0
    both = crlb(psf, IdealCamera(), photons=torch.tensor([1000.0, 0.0]), bg=bg)
    one = crlb(psf, IdealCamera(), photons=1000.0, bg=bg)
    for key in ("crlb_x_nm", "crlb_y_nm", "crlb_photons", "crlb_bg"):
        torch.testing.assert_close(both[key][0], one[key], rtol=1e-9, atol=0)
    assert torch.isinf(both["crlb_x_nm"][1]) and torch.isinf(both["crlb_y_nm"][1])
    xy = torch.tensor([(psf.roi_px[1] + 0.5) * PX], dtype=torch.float64)
    p = psf.double().patches(xy, xy, torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))[0][0]
    n, s1, s2 = p.numel(), float(p.sum()), float((p * p).sum())
    var_n = bg * n / (n * s2 - s1 * s1)
    var_b = bg * s2 / (n * s2 - s1 * s1)
    torch.testing.assert_close(float(both["crlb_photons"][1]), var_n**0.5, rtol=1e-6, atol=0)
    torch.testing.assert_close(float(both["crlb_bg"][1]), var_b**0.5, rtol=1e-6, atol=0)


def test_detect_default_threshold_follows_the_camera_noise(tmp_path):
    """``plexloc detect``'s default threshold was a fixed 20 photons (from the PSF): on pure EMCCD background of 1,000
    photons/px it found 13 spots per frame. It is now at least 6 sigma of the filtered image's noise (the fitter's
    rule): no spot on pure background at 10 or 1,000 photons/px, and a bright spot on the high background is still
    found."""
    import numpy as np
    import pandas as pd

    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    cfg = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "2d_gaussian.yaml")
    cam = EMCCD(qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4)
    psf = GaussianPSF(sigma_nm=130.0)
    for bg in (10.0, 1000.0):
        g = torch.Generator().manual_seed(0)
        write_movie(tmp_path / "bg.tif", cam(torch.full((40, 48, 48), bg), generator=g).numpy().astype(np.uint16))
        assert main(["detect", str(tmp_path / "bg.tif"), "--config", cfg, "--out", str(tmp_path / "bg.csv")]) == 0
        assert len(pd.read_csv(tmp_path / "bg.csv")) == 0, bg
    img = psf.render(torch.tensor([2450.0]), torch.tensor([2350.0]), torch.zeros(1), torch.tensor([20000.0]),
                     torch.zeros(1, dtype=torch.long), n_frames=1, frame_shape=(48, 48)) + 1000.0
    write_movie(tmp_path / "spot.tif", cam(img, generator=torch.Generator().manual_seed(1)).numpy().astype(np.uint16))
    assert main(["detect", str(tmp_path / "spot.tif"), "--config", cfg, "--out", str(tmp_path / "spot.csv")]) == 0
    locs = pd.read_csv(tmp_path / "spot.csv")
    assert len(locs) == 1 and abs(float(locs["x_nm"][0]) - 2450.0) < 30 and abs(float(locs["y_nm"][0]) - 2350.0) < 30


def test_centroids_of_spots_at_the_frame_edge_stay_inside_the_frame():
    """The centroid baseline padded its boxes by replicating the edge pixel, which weighed as signal pulled an edge
    spot's centroid outward: `plexloc detect` on a 64x64 movie gave 287 of 2,710 rows outside the frame (x from -37
    to 6441 nm). Outside the frame the box now holds background only."""
    import torch

    from plexloc.mle.detection import localize_centroid

    h = w = 32
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    frames = []
    for cx, cy in ((0.3, 16.4), (31.7, 10.3), (12.4, 0.2), (20.3, 31.8), (16.3, 16.2)):
        frames.append(10.0 + 400.0 * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.0**2)))
    locs = localize_centroid(torch.stack(frames), px_size_nm=(100.0, 100.0), threshold_photons=20.0)
    assert sorted(locs["frame"].tolist()) == [0, 1, 2, 3, 4]
    x, y = locs["x_nm"], locs["y_nm"]
    assert (x >= 0).all() and (x <= 100.0 * w).all() and (y >= 0).all() and (y <= 100.0 * h).all(), (x, y)
    centre = locs["frame"] == 4  # a spot away from the edge: where it is, to a few nm
    assert abs(x[centre][0] - 1630.0) < 5 and abs(y[centre][0] - 1620.0) < 5
