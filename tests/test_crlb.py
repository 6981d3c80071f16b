"""The Cramér-Rao bound against what it must equal: the analytic Fisher information of the
pixel-integrated Gaussian, Mortensen et al. (2010)'s maximum-likelihood result (conventions.md;
the thesis's least-squares equation 2.6 with its 16/9 factor is *not* the check), exact scaling laws,
finite differences for every PSF of the registry, and the multi-channel sum.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import erf
from torch.testing import assert_close

from conftest import PX_NM
from plexloc.camera import CAMERAS, EMCCD, SCMOS, AdditiveNoiseCamera, IdealCamera
from plexloc.evaluate.crlb import crlb, fisher_information
from plexloc.psf import PSFS, AstigmaticPSF, GaussianPSF
from plexloc.simulation import shift_transform

KINDS = sorted(PSFS)
F64 = torch.float64


def _f64(*values):
    return [torch.as_tensor(v, dtype=F64) for v in values]


# ------------------------------------------------------------ (a) analytic Gaussian Fisher matrix
def _gaussian_fisher_numpy(x_nm, y_nm, photons, bg, *, sigma_nm, px, half=20):
    """Fisher matrix of (x, y, photons, bg) of a pixel-integrated Gaussian under Poisson noise, on the
    (2 half + 1)^2 pixels around the emitter's pixel, from the closed-form derivatives:
    d mu_k / dx = N e_y (g(k - x) - g(k + 1 - x)) / px, g the Gaussian pdf (pixel units)."""
    s = sigma_nm / px

    def axis(pos_nm):
        u = pos_nm / px
        k = np.arange(math.floor(u) - half, math.floor(u) + half + 1, dtype=np.float64)
        e = 0.5 * (erf((k + 1 - u) / (math.sqrt(2) * s)) - erf((k - u) / (math.sqrt(2) * s)))
        g = lambda t: np.exp(-t * t / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)  # noqa: E731
        return e, (g(k - u) - g(k + 1 - u)) / px

    ex, dex = axis(x_nm)
    ey, dey = axis(y_nm)
    mu = photons * ey[:, None] * ex[None, :] + bg
    grads = [
        photons * ey[:, None] * dex[None, :],
        photons * dey[:, None] * ex[None, :],
        ey[:, None] * ex[None, :],
        np.ones_like(mu),
    ]
    return np.array([[np.sum(a * b / mu) for b in grads] for a in grads])


@pytest.mark.parametrize(("photons", "bg"), [(2000.0, 10.0), (500.0, 2.0), (5000.0, 100.0)])
def test_gaussian_crlb_equals_the_analytic_fisher_information(photons, bg):
    """At a pixel-centred emitter the x row of the Fisher matrix decouples (by symmetry), so the bound
    is 1 / sqrt(I_xx); off-centre x couples (weakly) to photons and bg, so the bounds of (x, y, photons,
    bg) come from inverting the full 4 x 4 matrix.
    Both agree with the library to 1e-6 (the same quantity, computed independently in float64)."""
    sigma = 130.0
    psf = GaussianPSF(sigma_nm=sigma, px_size_nm=(PX_NM, PX_NM), roi_px=41)
    cam = IdealCamera()
    # pixel-centred
    x0 = y0 = 20.5 * PX_NM
    info = _gaussian_fisher_numpy(x0, y0, photons, bg, sigma_nm=sigma, px=PX_NM)
    assert abs(info[0, 1]) + abs(info[0, 2]) + abs(info[0, 3]) < 1e-9 * info[0, 0]
    b = crlb(psf, cam, x_nm=x0, y_nm=y0, photons=photons, bg=bg)
    assert_close(b["crlb_x_nm"], torch.tensor(1 / math.sqrt(info[0, 0]), dtype=F64), rtol=1e-6, atol=0.0)
    assert_close(b["crlb_y_nm"], torch.tensor(1 / math.sqrt(info[1, 1]), dtype=F64), rtol=1e-6, atol=0.0)
    # off-centre: full inversion
    x1, y1 = 20.17 * PX_NM, 23.71 * PX_NM
    info = _gaussian_fisher_numpy(x1, y1, photons, bg, sigma_nm=sigma, px=PX_NM)
    want = np.sqrt(np.diag(np.linalg.inv(info)))
    # photons and bg are strongly coupled: the inversion matters (x hardly couples at sigma = 1.3 px)
    assert want[2] > (1 + 1e-4) / math.sqrt(info[2, 2])
    b = crlb(psf, cam, x_nm=x1, y_nm=y1, photons=photons, bg=bg)
    got = torch.stack([b["crlb_x_nm"], b["crlb_y_nm"], b["crlb_photons"], b["crlb_bg"]])
    assert_close(got, torch.from_numpy(want), rtol=1e-6, atol=0.0)
    assert bool(torch.isnan(b["crlb_z_nm"])), "a 2D PSF has no z bound"


# ------------------------------------------------------------------------------ (b) Mortensen
def _mortensen_var_x(photons, bg, *, sigma_nm, px):
    sa2 = sigma_nm**2 + px**2 / 12
    tau = 2 * math.pi * sa2 * bg / (photons * px**2)
    integral = quad(lambda t: math.log(t) / (1 + t / tau), 0.0, 1.0)[0] if tau > 0 else 0.0
    return sa2 / photons / (1 + integral)


@pytest.mark.parametrize(
    ("photons", "bg"), [(1000.0, 0.0), (1000.0, 10.0), (200.0, 5.0), (5000.0, 50.0), (2000.0, 200.0)]
)
def test_gaussian_crlb_matches_mortensen(photons, bg):
    """Mortensen et al. 2010 within 5 % (their s_a^2 = s^2 + a^2/12 approximates the pixelation);
    an EMCCD without read noise or spurious charge (qe 1) doubles the variance: excess-noise factor 2."""
    sigma = 130.0
    psf = GaussianPSF(sigma_nm=sigma, px_size_nm=(PX_NM, PX_NM), roi_px=31)
    var = _mortensen_var_x(photons, bg, sigma_nm=sigma, px=PX_NM)
    ideal = crlb(psf, IdealCamera(), photons=photons, bg=bg)["crlb_x_nm"]
    emccd = crlb(psf, EMCCD(qe=1.0, spurious_charge=0.0, read_sigma=0.0), photons=photons, bg=bg)["crlb_x_nm"]
    assert_close(ideal**2, torch.tensor(var, dtype=F64), rtol=0.05, atol=0.0)
    assert_close(emccd**2, torch.tensor(2 * var, dtype=F64), rtol=0.05, atol=0.0)


# ------------------------------------------------------------------------- (c) 1/sqrt(N) scaling
@pytest.mark.parametrize("kind", KINDS)
def test_crlb_scales_as_one_over_sqrt_photons_at_zero_background(kind, make_psf):
    """With bg = 0 and Poisson noise, I(N) = D I(1) D with D = diag(sqrt N, sqrt N, [sqrt N], 1/sqrt N,
    1/sqrt N): every position bound times sqrt(N) is the same for all N (to 1e-6). For the spline this
    also pins that pixels without expected signal (exact zeros and ringing in its tails, where the
    derivative is not 0) add no information."""
    psf = make_psf(kind)
    photons = torch.tensor([100.0, 1000.0, 10000.0], dtype=F64)
    b = crlb(psf, IdealCamera(), z_nm=100.0, photons=photons, bg=0.0)
    for name in ["crlb_x_nm", "crlb_y_nm"] + (["crlb_z_nm"] if psf.is_3d else []):
        scaled = b[name] * photons.sqrt()
        assert_close(scaled, scaled[:1].expand(3), rtol=1e-6, atol=0.0, msg=name)
    assert_close(b["crlb_photons"] / photons.sqrt(), b["crlb_photons"][:1].expand(3) / 10.0, rtol=1e-6, atol=0.0)


# ------------------------------------------------------------------------------- (d) astigmatic
def test_astigmatic_crlb_over_the_z_range():
    psf = AstigmaticPSF(c_nm=(-250.0, 250.0), px_size_nm=(PX_NM, PX_NM))
    z = torch.arange(-500.0, 501.0, 10.0, dtype=F64)
    b = crlb(psf, IdealCamera(), z_nm=z, photons=2000.0, bg=10.0)
    for name in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm"):
        assert bool(torch.isfinite(b[name]).all()) and bool((b[name] > 0).all()), name
    # the x bound is smallest near the x focus c_x = -250 nm (pulled a little towards z = 0 by the
    # background, where the y width shrinks), the y bound near c_y = +250 nm
    assert abs(float(z[b["crlb_x_nm"].argmin()]) + 250.0) <= 40.0
    assert abs(float(z[b["crlb_y_nm"].argmin()]) - 250.0) <= 40.0
    # without background the x row decouples from the y width: the minimum is exactly at c_x
    b0 = crlb(psf, IdealCamera(), z_nm=z, photons=2000.0, bg=0.0)
    assert float(z[b0["crlb_x_nm"].argmin()]) == -250.0
    assert float(z[b0["crlb_y_nm"].argmin()]) == 250.0


# ------------------------------------------------------------- (e) Fisher vs finite differences
def _camera(kind: str):
    return {"ideal": IdealCamera(), "emccd": EMCCD(), "scmos": SCMOS(), "additive": AdditiveNoiseCamera()}[kind]


@pytest.mark.parametrize("camera_kind", sorted(CAMERAS))
@pytest.mark.parametrize("kind", KINDS)
def test_fisher_information_matches_finite_differences(kind, camera_kind, make_psf):
    """I = sum_pixels (d mu / d theta)(d mu / d theta)^T / var(mu), with the derivatives by central
    differences of psf.patches (float64) instead of the library's forward-mode autodiff."""
    psf64 = make_psf(kind).double()
    cam = _camera(camera_kind)
    x, y = _f64([21.37 * PX_NM, 14.62 * PX_NM], [17.55 * PX_NM, 12.28 * PX_NM])
    z, photons, bg = _f64([-180.0, 260.0], [1500.0, 4000.0], [8.0, 30.0])
    theta = torch.stack([x, y, z, photons, bg], dim=1)

    def mu(th):
        patch, _, _ = psf64.patches(th[:, 0], th[:, 1], th[:, 2], th[:, 3])
        return patch + th[:, 4, None, None]

    params = [0, 1] + ([2] if psf64.is_3d else []) + [3, 4]
    h = 1e-2  # nm for positions, photons for photons and bg
    with torch.no_grad():
        m = mu(theta)
        grads = []
        for p in params:
            d = torch.zeros_like(theta)
            d[:, p] = h
            grads.append(((mu(theta + d) - mu(theta - d)) / (2 * h)).reshape(2, -1))
        g = torch.stack(grads, dim=1)
        var = cam.noise_variance_photons(m).reshape(2, -1).double()
        want = torch.einsum("npk,nqk->npq", g / var[:, None, :], g)
    got, names = fisher_information([(make_psf(kind), cam)], x_nm=x, y_nm=y, z_nm=z, photons=photons, bg=bg)
    assert names == ["x", "y"] + (["z"] if psf64.is_3d else []) + ["photons", "bg"]
    assert_close(got, want, rtol=1e-5, atol=1e-9 * float(want.abs().max()))


# ------------------------------------------------------------------------ (f) multi-channel sum
@pytest.mark.parametrize("kind", ["astigmatic", "spline"])
def test_two_linked_half_channels_equal_one_full_channel(kind, make_psf):
    """Two identical channels with photon fractions [0.5, 0.5] carry exactly the information of one
    channel with all photons (zero background, ideal camera). Only bg differs: it is added in both
    channels, so its bound halves."""
    z = torch.tensor([-300.0, 0.0, 250.0], dtype=F64)
    x = torch.tensor([15.5, 15.23, 15.81], dtype=F64) * PX_NM
    y = torch.tensor([15.5, 15.64, 15.12], dtype=F64) * PX_NM
    psf = make_psf(kind)
    one = crlb(psf, IdealCamera(), x_nm=x, y_nm=y, z_nm=z, photons=3000.0, bg=0.0)
    two = crlb([(psf, IdealCamera()), (make_psf(kind), IdealCamera())], x_nm=x, y_nm=y, z_nm=z, photons=3000.0,
               bg=0.0, photon_fractions=[0.5, 0.5])
    for name in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "crlb_photons"):
        assert_close(two[name], one[name], rtol=1e-6, atol=0.0, msg=name)
    # one full-photon channel twice is more information than one: the check can fail
    double = crlb([(psf, IdealCamera()), (psf, IdealCamera())], x_nm=x, y_nm=y, z_nm=z, photons=3000.0, bg=0.0)
    assert_close(double["crlb_x_nm"], one["crlb_x_nm"] / math.sqrt(2), rtol=1e-6, atol=0.0)


def test_channel_transform_and_z_offset_are_applied():
    """A channel seen through a whole-pixel shift carries the same information as an unshifted one
    (the PSF is translation invariant on the pixel grid), and a channel whose focal plane is offset
    by dz carries the information of an unshifted channel at z - dz."""
    psf = AstigmaticPSF(px_size_nm=(PX_NM, PX_NM))
    x = y = torch.tensor([15.37 * PX_NM], dtype=F64)
    args = dict(x_nm=x, y_nm=y, z_nm=100.0, photons=2000.0, bg=5.0)
    plain = fisher_information([(psf, IdealCamera())] * 2, **args)[0]
    transforms = [None, shift_transform(PX_NM, -2 * PX_NM)]
    shifted = fisher_information([(psf, IdealCamera())] * 2, transforms=transforms, **args)[0]
    assert_close(shifted, plain, rtol=1e-9, atol=0.0)
    offset = fisher_information([(psf, IdealCamera())], z_offsets_nm=[300.0], **args)[0]
    at_z = fisher_information([(psf, IdealCamera())], **{**args, "z_nm": -200.0})[0]
    assert_close(offset, at_z, rtol=1e-9, atol=0.0)
    assert float((offset - plain / 2).abs().max()) > 1e-3 * float(plain.abs().max())


def test_crlb_of_an_emccd_with_read_noise_is_worse_than_ideal():
    psf = GaussianPSF(px_size_nm=(PX_NM, PX_NM))
    ideal = crlb(psf, IdealCamera(), photons=1000.0, bg=5.0)["crlb_x_nm"]
    clean = crlb(psf, EMCCD(qe=1.0, spurious_charge=0.0, read_sigma=0.0), photons=1000.0, bg=5.0)["crlb_x_nm"]
    noisy = crlb(psf, EMCCD(qe=0.9, spurious_charge=0.002, read_sigma=74.4), photons=1000.0, bg=5.0)["crlb_x_nm"]
    assert float(ideal) < float(clean) < float(noisy)
    assert_close(clean / ideal, torch.tensor(math.sqrt(2), dtype=F64), rtol=1e-3, atol=0.0)


def test_crlb_leaves_the_callers_psf_untouched(make_psf):
    """The bound is computed in float64 on a copy: a float32 PSF stays float32, its coefficients unchanged."""
    psf = make_psf("spline").float()
    before = psf.coeff.clone()
    crlb(psf, IdealCamera(), z_nm=0.0, photons=1000.0, bg=10.0)
    assert psf.coeff.dtype == torch.float32 and torch.equal(psf.coeff, before)


@pytest.mark.gpu
def test_crlb_of_a_psf_on_cuda(make_psf):
    args = dict(z_nm=torch.tensor([-200.0, 100.0]), photons=2000.0, bg=10.0)
    cpu = crlb(make_psf("spline"), IdealCamera(), **args)
    cuda = crlb(make_psf("spline").to("cuda"), IdealCamera(), **args)
    for name, value in cpu.items():
        assert_close(cuda[name].cpu(), value, rtol=1e-6, atol=0.0, equal_nan=True)


def test_crlb_runs_with_warnings_as_errors():
    """torch 2.13 scripts its forward-mode AD decompositions on first use, which warns once per process
    (torch.jit.script is deprecated); the bound must still work under -W error. Only a fresh process
    can see a once-per-process warning."""
    code = textwrap.dedent(
        """
        from plexloc.camera import IdealCamera
        from plexloc.evaluate.crlb import crlb
        from plexloc.psf import GaussianPSF
        crlb(GaussianPSF(), IdealCamera(), photons=1000.0, bg=10.0)
        """
    )
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
