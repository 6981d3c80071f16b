"""Second physics review: known answers for the PSFs, the renderer, the cameras and the simulator, computed here
independently (closed forms, scipy), and the defect it found (an astigmatic width model that collapses inside the
emitters' z range was rendered as needles in silence)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from plexloc.camera import EMCCD, SCMOS
from plexloc.config import SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.psf import AstigmaticPSF, SplinePSF
from plexloc.simulation import Simulator


def _frac_inside(pos_px: np.ndarray, sigma_px: np.ndarray, n: int) -> np.ndarray:
    """Share of a 1D Gaussian at ``pos_px`` (pixel units, origin at the frame's edge) inside ``[0, n]``."""
    return 0.5 * (erf((n - pos_px) / (math.sqrt(2) * sigma_px)) - erf(-pos_px / (math.sqrt(2) * sigma_px)))


def _astig_config(z_range, A=(0.0, 0.0), B=(0.0, 0.0)) -> SimulationConfig:  # noqa: N803
    return validate_config({"px_size_nm": 100.0, "frame_size": [16, 16], "camera": {"kind": "ideal"},
                            "psf": {"kind": "astigmatic", "A": list(A), "B": list(B)},
                            "emitters": {"z_range_nm": list(z_range)}}, SimulationConfig)


# ------------------------------------------------------------------------------------------- the defect
def test_astigmatic_width_model_that_collapses_in_the_z_range_is_refused():
    """A = 0.5 (c_y = +250, d = 400): the radicand 1 + u^2 + A u^3 of y is negative below z = -694 nm, where the clamp
    made sigma_y 1e-3 s0 = 0.12 nm (all of a spot's light in one row). The simulator took z in [-1000, 1000] without a
    word; now it names the axis and the z where the model collapses."""
    psf = AstigmaticPSF(A=(0.5, 0.5))
    sy = float(psf.sigma_px(torch.tensor([-1000.0]))[1]) * 100.0
    assert sy < 1.0  # the clamped needle the old simulator rendered
    with pytest.raises(InputError, match=r"width model of y .* collapses"):
        Simulator(_astig_config((-1000.0, 1000.0), A=(0.5, 0.5)))
    # a z offset moves the channel's PSF z into the bad region too
    cfg = validate_config({"px_size_nm": 100.0, "frame_size": [16, 16], "emitters": {"z_range_nm": [-500.0, 500.0]},
                           "channels": [{"psf": {"kind": "astigmatic", "A": [0.5, 0.5]}, "camera": {"kind": "ideal"}},
                                        {"psf": {"kind": "astigmatic", "A": [0.5, 0.5]}, "camera": {"kind": "ideal"},
                                         "z_offset_nm": 400.0}]}, SimulationConfig)
    with pytest.raises(InputError, match="channel 1"):
        Simulator(cfg)
    # models valid over their range pass: the defaults, the calibration bench's truth, and A = 0.5 inside +-500 nm
    Simulator(_astig_config((-750.0, 750.0)))
    Simulator(_astig_config((-750.0, 750.0), A=(0.1, -0.1), B=(0.05, 0.05)))
    Simulator(_astig_config((-500.0, 500.0), A=(0.5, 0.5)))


# ------------------------------------------------------------------------------------ known answers (right)
def test_rendered_frames_hold_the_light_inside_them_by_the_erf_formula():
    """Emitters up to 4 px outside the frame, rectangular pixels, astigmatic widths over +-600 nm: each frame's sum is
    the sum over its emitters of photons x the share of their Gaussian inside the frame (1e-4 relative: the +-4 sigma
    patch), on the separable (small frame) and the patch-wise (large frame) renders."""
    g = torch.Generator().manual_seed(1)
    px = (100.0, 130.0)
    psf = AstigmaticPSF(px_size_nm=px)
    for H, W in ((20, 30), (200, 150)):
        n = 200
        x = (torch.rand(n, generator=g, dtype=torch.float64) * (W + 8) - 4) * px[0]
        y = (torch.rand(n, generator=g, dtype=torch.float64) * (H + 8) - 4) * px[1]
        z = torch.rand(n, generator=g, dtype=torch.float64) * 1200 - 600
        ph = torch.rand(n, generator=g, dtype=torch.float64) * 1000 + 100
        fr = torch.randint(0, 4, (n,), generator=g)
        f = psf.render(x, y, z, ph, fr, n_frames=4, frame_shape=(H, W))
        sx, sy = (s.numpy() for s in psf.sigma_px(z))
        inside = ph.numpy() * _frac_inside(x.numpy() / px[0], sx, W) * _frac_inside(y.numpy() / px[1], sy, H)
        want = np.bincount(fr.numpy(), weights=inside, minlength=4)
        np.testing.assert_allclose(f.sum((1, 2)).numpy(), want, rtol=1e-4)


def test_spline_keeps_the_orientation_of_an_asymmetric_volume():
    """A volume with a side lobe 3 px to +x and another 3 px to -y of the centre renders them at column c + 3 and row
    r - 3 around an emitter at the centre of pixel (r, c) (rectangular pixels), not mirrored or transposed."""
    nz, ny, nx = 6, 15, 17
    yy, xx = np.mgrid[0:ny, 0:nx]
    vol = np.stack([np.exp(-((xx - 8) ** 2 + (yy - 7) ** 2) / (2 * (1.5 + 0.1 * k) ** 2)) for k in range(nz)])
    vol[:, 7, 11] += 0.5
    vol[:, 4, 8] += 0.3
    psf = SplinePSF.from_volume(vol, dz_nm=40.0, px_size_nm=(100.0, 120.0), center=(2, 7, 8))
    r, c = 20, 30
    f = psf.render(torch.tensor([(c + 0.5) * 100.0]), torch.tensor([(r + 0.5) * 120.0]), torch.zeros(1),
                   torch.ones(1), torch.zeros(1, dtype=torch.long), n_frames=1, frame_shape=(40, 60))[0]
    ref = torch.as_tensor(vol[2] / vol[2][:-1, :-1].sum(), dtype=torch.float32)
    torch.testing.assert_close(f[r - 7 : r + 7, c - 8 : c + 8], ref[:-1, :-1], rtol=1e-4, atol=1e-6)
    assert float(f[r, c + 3]) > 2 * float(f[r, c - 3]) and float(f[r - 3, c]) > 1.5 * float(f[r + 3, c])


@pytest.mark.parametrize("photons", [0.5, 50.0, 500.0])
def test_emccd_and_scmos_adu_moments_against_the_closed_forms(photons):
    """EMCCD: mean ``(qe p + c) g / k + b``, variance ``(2 (qe p + c) g^2 + r^2) / k^2 + 1/12``; sCMOS the same
    without the gain and the factor 2 (5 standard errors of 200,000 samples); ``to_photons`` of the mean is ``p``."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    p = torch.full((n,), photons, dtype=torch.float64)
    em = EMCCD(qe=0.8, spurious_charge=0.01, em_gain=100.0, e_per_adu=20.0, baseline=200.0, read_sigma=50.0)
    sc = SCMOS(qe=0.7, spurious_charge=0.1, e_per_adu=2.0, baseline=100.0, read_sigma=3.0)
    for cam, lam, enf, gain, k, r, b in ((em, 0.8 * photons + 0.01, 2.0, 100.0, 20.0, 50.0, 200.0),
                                         (sc, 0.7 * photons + 0.1, 1.0, 1.0, 2.0, 3.0, 100.0)):
        a = cam(p, generator=g).double()
        mean, var = lam * gain / k + b, (enf * lam * gain**2 + r**2) / k**2 + 1 / 12
        assert abs(float(a.mean()) - mean) < 5 * math.sqrt(var / n)
        assert abs(float(a.var()) / var - 1) < 5 * math.sqrt(2 / n) * 3  # heavier tails than a Gaussian's
        assert abs(float(cam.to_photons(torch.tensor([mean]))) - photons) < 1e-3 * max(photons, 1)


def test_scmos_maps_reach_their_own_pixels_on_a_non_square_frame():
    """Per-pixel offset, gain and read noise on a 3 x 5 frame: the mean ADU of pixel (row i, column j) is
    ``p / k_ij + b_ij`` (not the transposed or flattened-other-way pixel's)."""
    b = torch.arange(15, dtype=torch.float32).reshape(3, 5) * 10 + 100
    k = torch.arange(1, 16, dtype=torch.float32).reshape(3, 5) / 5
    cam = SCMOS(qe=1.0, e_per_adu=k, baseline=b, read_sigma=torch.zeros(3, 5))
    a = cam(torch.full((4000, 3, 5), 100.0), generator=torch.Generator().manual_seed(2))
    want = 100.0 / k + b
    se = torch.sqrt(100.0 / k**2 / 4000 + 1 / 12 / 4000)
    assert bool(((a.mean(0) - want).abs() < 5 * se).all())
