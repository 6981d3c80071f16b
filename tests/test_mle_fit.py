"""The MLE fitter on single windows: models against the PSF classes, Fisher information against the
CRLB module, efficiency and bias on simulated windows, free width, sCMOS maps, spline z, LLR statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from conftest import PX_NM
from plexloc.camera import EMCCD, SCMOS, AdditiveNoiseCamera, IdealCamera
from plexloc.evaluate.crlb import crlb
from plexloc.mle.fit import A_FLOOR, AT_BOUND_BITS, FitChannel, fit_rois, noise_terms
from plexloc.mle.models import GaussianRoiModel, PSFRoiModel, SplineRoiModel, roi_model_for
from plexloc.psf import AstigmaticPSF, GaussianPSF

R = 13


def _windows(psf, camera, n, *, photons, bg, z_range=(0.0, 0.0), seed=0, roi=R):
    """n single-emitter windows (emitter within +-0.5 px of the centre), raw -> photons; truth dict."""
    g = torch.Generator().manual_seed(seed)
    x = (roi / 2 + torch.rand(n, generator=g) - 0.5) * PX_NM
    y = (roi / 2 + torch.rand(n, generator=g) - 0.5) * PX_NM
    z = z_range[0] + (z_range[1] - z_range[0]) * torch.rand(n, generator=g)
    ph = torch.as_tensor(photons, dtype=torch.float32).expand(n).clone()
    b = torch.as_tensor(bg, dtype=torch.float32).expand(n).clone()
    img = psf.render(x, y, z, ph, torch.arange(n), n_frames=n, frame_shape=(roi, roi)) + b[:, None, None]
    data = camera.to_photons(camera(img, generator=g))
    return data, {"x": x.double(), "y": y.double(), "z": z.double(), "photons": ph.double(), "bg": b.double()}


def _fit(psf, camera, data, **kw):
    k, off = noise_terms(camera.noise_variance_photons, data[0])
    origins = torch.zeros(data.shape[0], 1, 2, dtype=torch.int64)
    model = kw.pop("model", None) or roi_model_for(psf, free_sigma=kw.pop("free_sigma", False))
    return fit_rois([data], [FitChannel(model)], origins=origins, k=[k], offset=[off], **kw)


def _rms(v):
    return float(torch.sqrt(torch.mean(torch.as_tensor(v) ** 2)))


@pytest.mark.parametrize("kind", ["gaussian", "astigmatic"])
def test_analytic_window_model_equals_the_psf_class_and_its_autodiff(make_psf, kind):
    """The closed-form erf model and its derivatives equal the PSF class's own patches placed on the
    window, differentiated by forward-mode AD (up to the tails, < 1e-6, that the PSF's own patch cuts off)."""
    psf = make_psf(kind).double()
    g = torch.Generator().manual_seed(1)
    x = 3.0 + 7.0 * torch.rand(64, generator=g, dtype=torch.float64)
    y = 3.0 + 7.0 * torch.rand(64, generator=g, dtype=torch.float64)
    z = -600.0 + 1200.0 * torch.rand(64, generator=g, dtype=torch.float64)
    ones = torch.ones_like(x)
    a = GaussianRoiModel(psf)(x, y, z, ones, R)
    b = PSFRoiModel(psf)(x, y, z, ones, R)
    for name in ("psf", "d_x", "d_y") + (("d_z",) if kind == "astigmatic" else ()):
        assert_close(getattr(a, name), getattr(b, name), rtol=1e-7, atol=5e-6)
    # the window model sums to the PSF's integral over the window (not more than 1)
    assert float(a.psf.sum(dim=(1, 2)).max()) <= 1.0 + 1e-9


def test_spline_window_model_equals_the_psf_class_and_its_autodiff(make_psf):
    psf = make_psf("spline")
    g = torch.Generator().manual_seed(2)
    x = 3.0 + 9.0 * torch.rand(50, generator=g)
    y = 3.0 + 9.0 * torch.rand(50, generator=g)
    z = -480.0 + 960.0 * torch.rand(50, generator=g)
    ones = torch.ones_like(x)
    a = SplineRoiModel(psf)(x, y, z, ones, 15)
    b = PSFRoiModel(psf)(x, y, z, ones, 15)
    for name in ("psf", "d_x", "d_y", "d_z"):
        assert_close(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-6)


def test_free_width_derivative_matches_finite_differences():
    psf = GaussianPSF(sigma_nm=130.0).double()
    model = GaussianRoiModel(psf, free_sigma=True)
    x = torch.tensor([6.3, 6.8], dtype=torch.float64)
    s = torch.tensor([1.0, 1.2], dtype=torch.float64)
    h = 1e-6
    num = (model(x, x, x * 0, s + h, R).psf - model(x, x, x * 0, s - h, R).psf) / (2 * h)
    assert_close(model(x, x, x * 0, s, R).d_s, num, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kind", ["gaussian", "astigmatic"])
def test_fisher_information_of_the_fit_equals_the_crlb_module(kind):
    """At the true parameters of noise-free windows the fitter's CRLB (its Fisher matrix at the
    optimum) equals :func:`plexloc.evaluate.crlb.crlb` for the same window, EMCCD camera."""
    psf = GaussianPSF(sigma_nm=130.0, roi_px=41) if kind == "gaussian" else AstigmaticPSF(roi_px=41)
    cam = EMCCD()
    n = 6
    z = torch.linspace(-400, 400, n, dtype=torch.float64) if kind == "astigmatic" else torch.zeros(n, dtype=torch.float64)
    x = torch.full((n,), 6.5 * PX_NM, dtype=torch.float64)
    roi = 41  # large enough that the window holds the whole PSF, like crlb()'s patch
    ph, bg = 3000.0, 40.0
    exp = psf.double().render(x + 14 * PX_NM, x + 14 * PX_NM, z, torch.full((n,), ph, dtype=torch.float64),
                              torch.arange(n), n_frames=n, frame_shape=(roi, roi)) + bg
    # noise-free data: the fit lands on the truth, so its Fisher matrix is the one at the truth
    res = _fit(psf.float(), cam, exp.float(), z_starts_nm=[0.0], z_range_nm=(-800.0, 800.0))
    want = crlb(psf, cam, x_nm=x + 14 * PX_NM, y_nm=x + 14 * PX_NM, z_nm=z, photons=ph, bg=bg)
    assert_close(res.x_nm, x + 14 * PX_NM, rtol=0, atol=0.05)
    assert_close(res.crlb["x_nm"], want["crlb_x_nm"], rtol=2e-3, atol=0)
    assert_close(res.crlb["photons"], want["crlb_photons"], rtol=2e-3, atol=0)
    assert_close(res.crlb["bg"], want["crlb_bg"], rtol=2e-3, atol=0)
    if kind == "astigmatic":
        assert_close(res.crlb["z_nm"], want["crlb_z_nm"], rtol=2e-3, atol=0)


def test_gaussian_fit_is_efficient_and_unbiased_on_emccd_windows():
    """6,000 windows, 2,000 photons, bg 50, EMCCD: RMSE / CRLB within 5 % (statistical error ~1 %),
    |bias| < 0.5 nm (standard error ~0.1 nm), photons unbiased within 0.5 %; LLR mean ~ its dof."""
    psf, cam = GaussianPSF(sigma_nm=130.0), EMCCD()
    data, t = _windows(psf, cam, 6000, photons=2000.0, bg=50.0, seed=3)
    res = _fit(psf, cam, data)
    b = crlb(psf, cam, x_nm=t["x"], y_nm=t["y"], photons=2000.0, bg=50.0)
    for ax in ("x", "y"):
        d = getattr(res, f"{ax}_nm") - t[ax]
        assert _rms(d) / _rms(b[f"crlb_{ax}_nm"]) < 1.05
        assert abs(float(d.mean())) < 0.5
    assert abs(float(res.photons.mean()) / 2000.0 - 1) < 0.005
    assert abs(float(res.bg_ch.mean()) / 50.0 - 1) < 0.005
    assert bool(res.converged.all())
    assert float(res.iterations.float().mean()) < 10
    dof = res.n_pixels - res.n_params
    assert abs(float(res.llr.mean()) / dof - 1) < 0.05


def test_fit_under_signal_independent_noise_is_efficient():
    """The additive camera (no shot noise on the signal) has no Poisson form; with the slope floor the
    effective-count likelihood approaches its Gaussian one: 4,000 windows of 800 photons on background 0,
    RMSE / CRLB (the constant-variance Fisher information) within 8 % (statistical error ~1.5 %), photons
    unbiased within 1 %. Without shot noise the bound is far below the sCMOS one at the same read noise."""
    cam = AdditiveNoiseCamera(noise_rate=10.0, read_sigma=3.0)
    k, off = noise_terms(cam.noise_variance_photons, torch.zeros(R, R))
    assert float(k) == pytest.approx(1.0 / A_FLOOR) and float(off) == pytest.approx((10.0 + 9.0 + 1 / 12) / A_FLOOR**2)
    psf = GaussianPSF(sigma_nm=130.0)
    data, t = _windows(psf, cam, 4000, photons=800.0, bg=0.0, seed=8)
    res = _fit(psf, cam, data)
    b = crlb(psf, cam, x_nm=t["x"], y_nm=t["y"], photons=800.0, bg=0.0)
    for ax in ("x", "y"):
        assert 0.95 < _rms(getattr(res, f"{ax}_nm") - t[ax]) / _rms(b[f"crlb_{ax}_nm"]) < 1.08
    assert abs(float(res.photons.mean()) / 800.0 - 1) < 0.01
    shot = crlb(psf, SCMOS(qe=1.0, e_per_adu=1.0, read_sigma=3.0), photons=800.0, bg=0.0)
    assert float(b["crlb_x_nm"].mean()) < 0.8 * float(shot["crlb_x_nm"].mean())


def test_free_sigma_recovers_the_width():
    true_psf = GaussianPSF(sigma_nm=150.0)
    cam = IdealCamera()
    data, t = _windows(true_psf, cam, 2000, photons=3000.0, bg=10.0, seed=4)
    res = _fit(GaussianPSF(sigma_nm=120.0), cam, data, free_sigma=True)  # wrong start width
    sigma = res.sigma_scale * 120.0
    assert abs(float(sigma.median()) - 150.0) < 1.5
    assert _rms(res.x_nm - t["x"]) / _rms(crlb(true_psf, cam, photons=3000.0, bg=10.0)["crlb_x_nm"]) < 1.15


def test_scmos_per_pixel_maps_are_used():
    """With a strongly varying read-noise map the Huang et al. weighting keeps the fit efficient,
    and ignoring the map (a scalar camera of the median noise) is measurably worse."""
    g = torch.Generator().manual_seed(5)
    read = torch.where(torch.rand(R, R, generator=g) < 0.2, torch.tensor(30.0), torch.tensor(1.0))
    cam = SCMOS(qe=0.8, e_per_adu=0.5, baseline=100.0, read_sigma=read)
    psf = GaussianPSF(sigma_nm=130.0)
    data, t = _windows(psf, cam, 4000, photons=1500.0, bg=10.0, seed=6)
    good = _fit(psf, cam, data)
    flat = SCMOS(qe=0.8, e_per_adu=0.5, baseline=100.0, read_sigma=float(read.median()))
    bad = _fit(psf, flat, data)
    e_good, e_bad = _rms(good.x_nm - t["x"]), _rms(bad.x_nm - t["x"])
    assert e_good < 0.9 * e_bad
    # the per-pixel CRLB (Fisher information with the map) matches the error
    assert 0.93 < e_good / _rms(good.crlb["x_nm"]) < 1.07


def test_spline_fit_recovers_z(make_psf):
    """The spline model (any PSF through forward-mode AD) fits z of astigmatic-spline spots."""
    psf = make_psf("spline")
    cam = EMCCD()
    data, t = _windows(psf, cam, 600, photons=5000.0, bg=30.0, z_range=(-300.0, 300.0), seed=7)
    res = _fit(psf, cam, data, z_range_nm=(-450.0, 450.0))
    b = crlb(psf, cam, x_nm=t["x"], y_nm=t["y"], z_nm=t["z"], photons=5000.0, bg=30.0)
    dz = res.z_nm - t["z"]
    assert _rms(dz) / _rms(b["crlb_z_nm"]) < 1.15
    assert _rms(res.x_nm - t["x"]) / _rms(b["crlb_x_nm"]) < 1.15
    assert abs(float(dz.mean())) < 3 * _rms(dz) / math.sqrt(len(dz)) + 1.0


def test_astigmatic_multi_start_finds_z_on_both_sides_of_focus():
    psf, cam = AstigmaticPSF(), EMCCD()
    data, t = _windows(psf, cam, 1500, photons=5000.0, bg=30.0, z_range=(-500.0, 500.0), seed=8, roi=17)
    res = _fit(psf, cam, data, z_range_nm=(-750.0, 750.0))
    dz = (res.z_nm - t["z"]).numpy()
    b = crlb(psf, cam, x_nm=t["x"], y_nm=t["y"], z_nm=t["z"], photons=5000.0, bg=30.0)["crlb_z_nm"].numpy()
    assert np.mean(np.abs(dz) > 5 * b) < 0.003  # no start-dependent wrong branch
    assert _rms(dz) / _rms(b) < 1.07


def test_astigmatic_fit_bounded_to_the_emitter_range_at_low_photons():
    """1,500 photons, bg 100, EMCCD, z uniform in +-500 nm, 19-px windows (the 3D bar's dim frames).

    The maximum-likelihood estimate is not efficient at this signal (even a z-only MLE by exhaustive
    search, everything else known, is 8 % above the bound at the same SNR: bench/RESULTS.md); most of
    the excess is dim spots whose likelihood peaks beyond the range the emitters span. Bounded to that
    range (z held at the bound by an active set) the fit is 4-5 % closer to the bound than with bounds
    250 nm wider (measured 1.03-1.06 vs 1.07-1.11 on three seeds of 2,000 windows) and every fit converges, inside
    the range or with z held on its bound (then converged is 0 and at_bound says z: tests/test_mle41_bounds.py)."""
    psf, cam = AstigmaticPSF(), EMCCD()
    data, t = _windows(psf, cam, 2000, photons=1500.0, bg=100.0, z_range=(-500.0, 500.0), seed=9, roi=19)
    b = _rms(crlb(psf, cam, x_nm=t["x"], y_nm=t["y"], z_nm=t["z"], photons=1500.0, bg=100.0)["crlb_z_nm"])
    starts = [-333.3, 0.0, 333.3]
    tight = _fit(psf, cam, data, z_starts_nm=starts, z_range_nm=(-500.0, 500.0))
    wide = _fit(psf, cam, data, z_starts_nm=starts, z_range_nm=(-750.0, 750.0))
    r_tight, r_wide = _rms(tight.z_nm - t["z"]) / b, _rms(wide.z_nm - t["z"]) / b
    assert r_tight <= 1.08, (r_tight, r_wide)  # standard error ~1.6 %
    assert r_wide - r_tight > 0.025, (r_tight, r_wide)  # same windows: the difference is much steadier
    assert abs(float((tight.z_nm - t["z"]).mean())) < 3.0  # standard error ~1.2 nm
    on_z_bound = tight.at_bound == AT_BOUND_BITS["z"]
    assert bool((tight.converged | on_z_bound).all()) and float(tight.iterations.float().mean()) < 8
    assert not bool((tight.converged & on_z_bound).any())
    assert float(tight.z_nm.min()) >= -500.0 and float(tight.z_nm.max()) <= 500.0


def test_empty_input_gives_empty_result():
    psf = GaussianPSF()
    res = fit_rois([torch.zeros(0, R, R)], [FitChannel(roi_model_for(psf))], origins=torch.zeros(0, 1, 2, dtype=torch.int64))
    assert len(res) == 0 and res.crlb["x_nm"].shape == (0,)


@pytest.mark.parametrize("kind", ["gaussian", "gaussian_free_sigma", "astigmatic"])
def test_separable_score_equals_the_full_jacobian(kind):
    """The fast path (gradient and Fisher matrix from the Gaussian's 1D factors) gives the same numbers
    as the full Jacobian ``J diag(1/m) Jᵀ`` of the same windows."""
    from plexloc.mle.fit import _Problem, _score

    psf = AstigmaticPSF() if kind == "astigmatic" else GaussianPSF(sigma_nm=130.0)
    model = roi_model_for(psf, free_sigma=kind == "gaussian_free_sigma")
    n = 50
    g = torch.Generator().manual_seed(10)
    prob = _Problem([FitChannel(model)], R, linked=True, origins=torch.zeros(n, 1, 2, dtype=torch.int64),
                    device="cpu", dtype=torch.float64)
    assert prob.separable
    cols = [5.0 + 3 * torch.rand(n, 2, generator=g, dtype=torch.float64)]
    if prob.is_3d:
        cols.append(-400 + 800 * torch.rand(n, 1, generator=g, dtype=torch.float64))
    if prob.free_sigma:
        cols.append(0.8 + 0.4 * torch.rand(n, 1, generator=g, dtype=torch.float64))
    cols += [1000 + 3000 * torch.rand(n, 1, generator=g, dtype=torch.float64), 10 + 50 * torch.rand(n, 1, generator=g, dtype=torch.float64)]
    theta = torch.cat(cols, dim=1)
    k, off = torch.tensor(0.45, dtype=torch.float64), torch.tensor(0.02, dtype=torch.float64)
    idx = torch.arange(n)
    m_sep, jac_sep = prob.evaluate(theta, idx, [k], [off])
    prob.separable = False
    m_full, jac_full = prob.evaluate(theta, idx, [k], [off])
    x = torch.poisson(m_full, generator=g)
    assert_close(m_sep, m_full, rtol=1e-12, atol=1e-12)
    for a, b in zip(_score(jac_sep, m_sep, x), _score(jac_full, m_full, x)):
        assert_close(a, b, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("linked", [True, False])
def test_channel_blocks_score_equals_the_full_jacobian(linked):
    """Multi-channel models keep one Jacobian block per channel (its own photons and background only); their
    gradient and Fisher matrix equal the full ``J diag(1/m) Jᵀ`` of the zero-padded Jacobian, also with an affine
    transform, a 2D channel beside a 3D one and per-pixel (sCMOS) noise maps in one channel."""
    from plexloc.mle.fit import _ChannelJacobians, _Problem, _score

    n = 40
    g = torch.Generator().manual_seed(3)
    t1 = torch.tensor([[0.9998, -0.0175, 35.0], [0.0175, 0.9998, -20.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    chans = [FitChannel(roi_model_for(AstigmaticPSF()), fraction=0.6),
             FitChannel(roi_model_for(AstigmaticPSF()), transform=t1, z_offset_nm=400.0, fraction=0.4),
             FitChannel(roi_model_for(GaussianPSF(sigma_nm=130.0)), transform=torch.eye(3, dtype=torch.float64), fraction=0.5)]
    origins = torch.randint(0, 40, (n, 3, 2), generator=g)
    prob = _Problem(chans, R, linked=linked, origins=origins, device="cpu", dtype=torch.float64)
    cols = [5.0 + 3 * torch.rand(n, 2, generator=g, dtype=torch.float64), -300 + 600 * torch.rand(n, 1, generator=g, dtype=torch.float64)]
    cols.append(1000 + 3000 * torch.rand(n, 1 if linked else 3, generator=g, dtype=torch.float64))
    cols.append(10 + 50 * torch.rand(n, 3, generator=g, dtype=torch.float64))
    theta = torch.cat(cols, dim=1)
    k = [torch.tensor(0.45, dtype=torch.float64), 0.3 + torch.rand(n, R, R, generator=g, dtype=torch.float64),
         torch.tensor(1.0, dtype=torch.float64)]
    off = [torch.tensor(0.02, dtype=torch.float64), torch.rand(n, R, R, generator=g, dtype=torch.float64),
           torch.tensor(0.0, dtype=torch.float64)]
    m, jac = prob.evaluate(theta, torch.arange(n), k, off)
    assert isinstance(jac, _ChannelJacobians)
    dense = jac.dense()
    assert dense.shape == (n, prob.P, 3 * R * R)
    # another channel's photons (independent) and background have no effect on a channel's pixels
    RR = R * R
    assert float(dense[:, prob.i_bg + 1, :RR].abs().max()) == 0.0 and float(dense[:, prob.i_bg + 1, RR : 2 * RR].abs().min()) > 0
    # the blocks' derivatives against forward-mode differentiation of the expected effective counts
    def model(th):
        mu = prob.expected_photons(th[None], torch.tensor([i]))[0].reshape(3, R * R)
        return torch.cat([k_c.reshape(-1)[i * RR : (i + 1) * RR] * mu[c] + o_c.reshape(-1)[i * RR : (i + 1) * RR]
                          if k_c.ndim else k_c * mu[c] + o_c for c, (k_c, o_c) in enumerate(zip(k, off))])

    for i in (0, 7, 31):
        ref = torch.func.jacfwd(model)(theta[i])  # (C R², P)
        assert_close(dense[i], ref.T, rtol=1e-6, atol=1e-8)
        assert_close(m[i], model(theta[i]), rtol=1e-10, atol=1e-10)
    x = torch.poisson(m, generator=g)
    for a, b in zip(_score(jac, m, x), _score(dense, m, x)):
        assert_close(a, b, rtol=1e-10, atol=1e-9)


def test_a_linked_single_channel_keeps_its_photon_fraction():
    """One linked channel that sees a share of the light (``fraction`` 0.5) models half the emitter's photons on
    the separable fast path too: its model equals the general path's, and a fit of windows simulated with half of
    2,000 photons gives back about 2,000 (the fast path ignored the fraction: 1,000)."""
    from plexloc.mle.fit import _Problem

    model = roi_model_for(GaussianPSF(sigma_nm=130.0))
    n = 40
    prob = _Problem([FitChannel(model, fraction=0.5)], R, linked=True, origins=torch.zeros(n, 1, 2, dtype=torch.int64),
                    device="cpu", dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    theta = torch.cat([5.0 + 3 * torch.rand(n, 2, generator=g, dtype=torch.float64),
                       torch.full((n, 1), 2000.0, dtype=torch.float64), torch.full((n, 1), 5.0, dtype=torch.float64)], dim=1)
    one, zero = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    m_fast, _ = prob.evaluate(theta, torch.arange(n), [one], [zero])
    prob.separable = False
    m_full, _ = prob.evaluate(theta, torch.arange(n), [one], [zero])
    assert_close(m_fast, m_full, rtol=1e-12, atol=1e-12)
    data, _ = _windows(GaussianPSF(sigma_nm=130.0), IdealCamera(), 200, photons=1000.0, bg=5.0)
    res = fit_rois([data], [FitChannel(model, fraction=0.5)], origins=torch.zeros(200, 1, 2, dtype=torch.int64), linked=True)
    assert abs(float(res.photons.median()) - 2000.0) < 100.0
