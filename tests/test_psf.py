"""Physics of the PSF models: one parametrized test per property over the whole registry, then the
closed forms of each model (pixel-integrated Gaussian, astigmatic defocus law, spline vs its source).

Positions are nm, the centre of pixel (row i, col j) is at ``((j + 0.5) px, (i + 0.5) px)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from torch.testing import assert_close

from conftest import PX_NM, SPLINE_DZ_NM, SPLINE_NZ, SPLINE_ROI, astigmatic_volume
from plexloc.config import load_config
from plexloc.errors import InputError
from plexloc.psf import PSFS, AstigmaticPSF, GaussianPSF, SplinePSF
from plexloc.psf import functional as PF
from plexloc.psf.base import PSF

KINDS = sorted(PSFS)


def _t(values, *, device="cpu", dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=device)


def _render_one(psf, x, y, z, photons, *, frame_shape, device="cpu", dtype=torch.float32):
    return psf.render(
        _t([x], device=device, dtype=dtype), _t([y], device=device, dtype=dtype), _t([z], device=device, dtype=dtype),
        _t([photons], device=device, dtype=dtype), torch.zeros(1, dtype=torch.int64, device=device),
        n_frames=1, frame_shape=frame_shape,
    )[0]


def test_factory_covers_the_registry(make_psf):
    for kind in KINDS:
        psf = make_psf(kind)
        assert isinstance(psf, PSFS[kind]) and psf.kind == kind


# ------------------------------------------------------------------------------- registry-wide
@pytest.mark.parametrize("kind", KINDS)
def test_in_focus_emitter_sums_to_photons(kind, make_psf, device):
    """In focus, in a frame much larger than the PSF, the frame holds all of the emitter's photons
    (for the spline by its normalisation: in-focus sum 1 per photon), at any sub-pixel position."""
    psf = make_psf(kind).to(device)
    gen = torch.Generator().manual_seed(1)
    n = 6
    x = (30.0 + torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    y = (33.0 + torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    x[0], y[0] = 30.5 * PX_NM, 33.5 * PX_NM  # the pixel-centred emitter the spline is normalised on
    photons = torch.full((n,), 1000.0)
    frames = psf.render(
        x.float().to(device), y.float().to(device), torch.zeros(n, device=device), photons.to(device),
        torch.arange(n, device=device), n_frames=n, frame_shape=(64, 64),
    )
    assert_close(frames.sum(dim=(1, 2)).cpu(), photons, rtol=1e-3, atol=0.0)
    if kind == "spline":
        assert_close(frames[0].sum().cpu(), photons[0], rtol=1e-5, atol=0.0)
    assert bool((frames >= -1e-3).all())


@pytest.mark.parametrize("z_nm", [-500.0, 500.0])
def test_astigmatic_default_patch_holds_a_defocused_emitter(z_nm):
    psf = AstigmaticPSF(px_size_nm=(PX_NM, PX_NM))
    frame = _render_one(psf, 32.3 * PX_NM, 31.8 * PX_NM, z_nm, 1.0, frame_shape=(64, 64), dtype=torch.float64)
    assert 0.999 < float(frame.sum()) <= 1.0 + 1e-12
    # and the patch really is the limit: a 7 px patch loses a lot at this defocus
    small = _render_one(AstigmaticPSF(roi_px=7), 32.3 * PX_NM, 31.8 * PX_NM, z_nm, 1.0, frame_shape=(64, 64),
                        dtype=torch.float64)
    assert float(small.sum()) < 0.99


def _assert_gradients_match_central_differences(f, inputs, *, seed: int, h: float = 1e-3) -> None:
    """Autograd gradient of ``sum(w * f(*inputs))`` (w random, fixed seed) against central
    differences of the same scalar, input element by input element (float64). This is
    ``gradcheck``'s fast mode with an explicit generator; the full Jacobian would cost one
    backward pass per patch pixel."""
    out = f(*inputs)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(out.device)
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    grads = torch.autograd.grad((w * f(*inputs)).sum(), inputs, allow_unused=True)
    with torch.no_grad():
        for k, (t, g) in enumerate(zip(inputs, grads)):
            g = torch.zeros_like(t) if g is None else g
            numeric = torch.empty_like(t)
            for i in range(t.numel()):
                args = [a.detach().clone() for a in inputs]
                args[k][i] += h
                up = (w * f(*args)).sum()
                args[k][i] -= 2 * h
                numeric[i] = (up - (w * f(*args)).sum()) / (2 * h)
            assert_close(g, numeric, rtol=1e-5, atol=1e-7 * float(out.abs().max()), msg=f"input {k}: {g} vs {numeric}")


@pytest.mark.parametrize("kind", KINDS)
def test_patch_gradients_match_finite_differences(kind, make_psf, device):
    """d patch / d (x, y, z, photons) from autograd agrees with central differences (float64)."""
    psf = make_psf(kind).double().to(device)
    gen = torch.Generator().manual_seed(2)
    n = 3
    # sub-pixel offsets kept away from pixel borders: the patch position is piecewise constant
    x = (20.0 + torch.tensor([0.13, 0.42, 0.77]) + torch.arange(n)).double() * PX_NM
    y = (15.0 + torch.tensor([0.61, 0.28, 0.35]) + 2 * torch.arange(n)).double() * PX_NM
    z = torch.empty(n, dtype=torch.float64).uniform_(-400.0, 400.0, generator=gen)
    photons = torch.tensor([50.0, 120.0, 800.0], dtype=torch.float64)
    inputs = [t.to(device) for t in (x, y, z, photons)]
    _assert_gradients_match_central_differences(lambda *a: psf.patches(*a)[0], inputs, seed=20)
    # every emitter's patch changes with x, y and photons, and with z exactly for the 3D models
    base = psf.patches(*inputs)[0]
    for k in range(4):
        args = list(inputs)
        args[k] = args[k] + 1.0
        moves = bool(((psf.patches(*args)[0] - base).abs().amax(dim=(1, 2)) > 1e-6).all())
        assert moves == (psf.is_3d if k == 2 else True), f"input {k}"


@pytest.mark.parametrize("kind", KINDS)
def test_render_gradients_match_finite_differences(kind, make_psf):
    """Through the scatter into frames too, including an emitter half over the border."""
    psf = make_psf(kind).double()
    x = torch.tensor([5.37 * PX_NM, 0.21 * PX_NM], dtype=torch.float64)
    y = torch.tensor([7.64 * PX_NM, 9.43 * PX_NM], dtype=torch.float64)
    z = torch.tensor([120.0, -230.0], dtype=torch.float64)
    photons = torch.tensor([300.0, 700.0], dtype=torch.float64)
    frame_ix = torch.tensor([0, 0])

    def f(x, y, z, photons):
        return psf.render(x, y, z, photons, frame_ix, n_frames=1, frame_shape=(15, 13))

    _assert_gradients_match_central_differences(f, [x, y, z, photons], seed=21)


def test_adaptive_patches_render_what_the_full_patch_renders():
    """The default astigmatic patch adapts to each emitter's width: in-focus emitters on small patches, defocused
    ones on large. The frames equal those of the full fixed patch to the +-4 sigma tails (< 3e-4 of the photons),
    the z gradient survives, and a given roi_px is used for every emitter."""
    plane = dict(s0_nm=(100.0, 100.0), c_nm=(0.0, 0.0), d_nm=300.0, z_extent_nm=800.0)  # a focal plane of a biplane
    adaptive = AstigmaticPSF(**plane)
    fixed = AstigmaticPSF(roi_px=adaptive.roi_px[0], **plane)
    g = torch.Generator().manual_seed(0)
    n = 400
    x = 500.0 + 5400.0 * torch.rand(n, generator=g, dtype=torch.float64)
    y = 500.0 + 5400.0 * torch.rand(n, generator=g, dtype=torch.float64)
    z = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 1600.0
    ph = 1000.0 + 4000.0 * torch.rand(n, generator=g, dtype=torch.float64)
    fi = torch.randint(0, 4, (n,), generator=g)
    groups = adaptive.patch_groups(x, y, z, ph)
    assert len(groups) >= 3 and sum(int(i.numel()) for i, *_ in groups) == n
    assert min(p.shape[-1] for _, p, _, _ in groups) <= 11 and max(p.shape[-1] for _, p, _, _ in groups) == adaptive.roi_px[0]
    assert fixed.patch_groups(x, y, z, ph)[0][0] is None  # a given size: one group, every emitter on it
    a = adaptive.render(x, y, z, ph, fi, n_frames=4, frame_shape=(64, 64))
    b = fixed.render(x, y, z, ph, fi, n_frames=4, frame_shape=(64, 64))
    assert float((a - b).abs().sum() / b.sum()) < 3e-4
    assert float((a - b).abs().max()) < 0.05
    zr = z.clone().requires_grad_(True)
    adaptive.render(x, y, zr, ph, fi, n_frames=4, frame_shape=(64, 64)).pow(2).sum().backward()
    assert zr.grad is not None and bool((zr.grad != 0).all())
    flat = GaussianPSF(sigma_nm=130.0)  # one width: one group of the default size, as before
    (index, patch, _, _), = flat.patch_groups(x, y, z, ph)
    assert index is None and patch.shape[-1] == flat.roi_px[0]


@pytest.mark.parametrize("kind", KINDS)
def test_z_dependence_matches_dimensionality(kind, make_psf):
    """2D models ignore z; 3D models change with it."""
    psf = make_psf(kind)
    a = _render_one(psf, 16.4 * PX_NM, 16.7 * PX_NM, 0.0, 1000.0, frame_shape=(33, 33))
    b = _render_one(psf, 16.4 * PX_NM, 16.7 * PX_NM, 300.0, 1000.0, frame_shape=(33, 33))
    if psf.is_3d:
        assert float((a - b).abs().max()) > 0.05 * float(a.max())
    else:
        assert_close(a, b, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_odd_frame_shape_puts_the_emitter_at_row_y_column_x(kind, make_psf, device):
    """37 rows x 31 columns: the peak sits at (row, col) = (y, x) // px, not transposed."""
    psf = make_psf(kind).to(device)
    frame = _render_one(psf, 25.5 * PX_NM, 6.5 * PX_NM, 0.0, 1000.0, frame_shape=(37, 31), device=device)
    assert frame.shape == (37, 31)
    assert divmod(int(frame.argmax()), 31) == (6, 25)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("x_px", "y_px"),
    [(30.6, 20.5), (20.4, 36.7), (30.9, 36.9), (-0.8, 12.3), (15.2, -1.6), (34.0, 12.0), (-9.0, 10.0)],
    ids=["last-col", "last-row", "corner", "left-over", "top-over", "right-outside", "left-outside"],
)
def test_border_emitters_are_cropped_never_wrapped(kind, make_psf, x_px, y_px):
    """An emitter near or over the border lights exactly the part of its image inside the frame:
    rendering into a frame padded by 16 px on every side and cropping gives the same frame."""
    psf = make_psf(kind)
    H, W, pad = 37, 31, 16
    frame = _render_one(psf, x_px * PX_NM, y_px * PX_NM, 0.0, 1000.0, frame_shape=(H, W))
    big = _render_one(
        psf, (x_px + pad) * PX_NM, (y_px + pad) * PX_NM, 0.0, 1000.0, frame_shape=(H + 2 * pad, W + 2 * pad)
    )
    assert_close(frame, big[pad : pad + H, pad : pad + W], rtol=0.0, atol=1e-3)
    if x_px > W - 1:  # the last column: nothing may wrap into the first columns (or the next row)
        assert float(frame[:, :5].abs().max()) == 0.0
    if y_px > H - 1:
        assert float(frame[:5].abs().max()) == 0.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", ["x", "y"])
def test_one_pixel_shift_of_the_emitter_shifts_the_frame(kind, make_psf, axis):
    psf = make_psf(kind)
    gen = torch.Generator().manual_seed(3)
    n, H, W = 5, 37, 31
    x = (8.0 + 15.0 * torch.rand(n, generator=gen)) * PX_NM
    y = (8.0 + 21.0 * torch.rand(n, generator=gen)) * PX_NM
    z = torch.empty(n).uniform_(-400.0, 400.0, generator=gen)
    photons = torch.empty(n).uniform_(500.0, 5000.0, generator=gen)
    frame_ix = torch.zeros(n, dtype=torch.int64)
    dx, dy, dim = (PX_NM, 0.0, 1) if axis == "x" else (0.0, PX_NM, 0)
    a = psf.render(x, y, z, photons, frame_ix, n_frames=1, frame_shape=(H, W))[0]
    b = psf.render(x + dx, y + dy, z, photons, frame_ix, n_frames=1, frame_shape=(H, W))[0]
    rolled = torch.roll(a, 1, dims=dim)
    # interior: away from the borders, where the roll wraps and where patches are cut
    inner = (slice(2, H - 2), slice(2, W - 2))
    assert_close(b[inner], rolled[inner], rtol=0.0, atol=1e-5 * float(a.max()))
    assert float((b[inner] - a[inner]).abs().max()) > 0.1 * float(a.max())  # it did move


@pytest.mark.parametrize("kind", ["gaussian", "astigmatic"])
def test_centroid_equals_emitter_position(kind, make_psf):
    psf = make_psf(kind)
    gen = torch.Generator().manual_seed(4)
    n, H, W = 8, 64, 64
    x = (28.0 + 8.0 * torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    y = (28.0 + 8.0 * torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    z = torch.linspace(-300.0, 300.0, n, dtype=torch.float64)
    frames = psf.render(x, y, z, torch.full((n,), 1000.0, dtype=torch.float64), torch.arange(n), n_frames=n,
                        frame_shape=(H, W))
    cx = (torch.arange(W, dtype=torch.float64) + 0.5) * PX_NM
    cy = (torch.arange(H, dtype=torch.float64) + 0.5) * PX_NM
    total = frames.sum(dim=(1, 2))
    assert_close((frames.sum(dim=1) * cx).sum(dim=1) / total, x, rtol=0.0, atol=1.0)
    assert_close((frames.sum(dim=2) * cy).sum(dim=1) / total, y, rtol=0.0, atol=1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_frame_ix_routes_emitters_and_drops_out_of_range(kind, make_psf, device):
    psf = make_psf(kind).to(device)
    x = _t([10.3, 20.6, 8.8, 15.5, 12.2], device=device) * PX_NM
    y = _t([12.1, 9.4, 20.7, 15.5, 12.2], device=device) * PX_NM
    z = _t([0.0, 100.0, -200.0, 0.0, 0.0], device=device)
    photons = _t([1000.0, 2000.0, 3000.0, 4000.0, 5000.0], device=device)
    frame_ix = torch.tensor([0, 2, 2, 3, -1], device=device)
    frames = psf.render(x, y, z, photons, frame_ix, n_frames=3, frame_shape=(31, 29))

    def alone(i):
        return _render_one(psf, float(x[i]), float(y[i]), float(z[i]), float(photons[i]), frame_shape=(31, 29),
                           device=device)

    assert_close(frames[0], alone(0))
    assert float(frames[1].abs().max()) == 0.0
    assert_close(frames[2], alone(1) + alone(2))
    assert_close(frames.sum(), photons[:3].sum(), rtol=1e-3, atol=0.0)  # frames 3 and -1 contribute nothing


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_device_move_renders_the_same_frames(kind, make_psf):
    psf = make_psf(kind)
    gen = torch.Generator().manual_seed(5)
    n = 40
    args = (
        torch.rand(n, generator=gen) * 31 * PX_NM, torch.rand(n, generator=gen) * 37 * PX_NM,
        torch.empty(n).uniform_(-450.0, 450.0, generator=gen), torch.empty(n).uniform_(100.0, 5000.0, generator=gen),
        torch.randint(0, 4, (n,), generator=gen),
    )
    cpu = psf.render(*args, n_frames=4, frame_shape=(37, 31))
    moved = psf.to("cuda")
    assert all(b.device.type == "cuda" for b in moved.buffers())
    cuda = moved.render(*(a.to("cuda") for a in args), n_frames=4, frame_shape=(37, 31))
    assert cuda.device.type == "cuda"
    assert_close(cuda.cpu(), cpu, rtol=1e-4, atol=1e-4 * float(cpu.max()))


# ------------------------------------------------------------------------- Gaussian closed form
def test_gaussian_patch_equals_pixel_integrated_closed_form():
    """Every pixel is the integral of the 2D Gaussian over its area, computed here with math.erf,
    with anisotropic sigma and pixel size so that swapped axes would show."""
    sx, sy, px, py = 120.0, 150.0, 100.0, 110.0
    psf = GaussianPSF(sigma_nm=(sx, sy), px_size_nm=(px, py), roi_px=11)
    gen = torch.Generator().manual_seed(6)
    x = 500.0 + 800.0 * torch.rand(4, generator=gen, dtype=torch.float64)
    y = 500.0 + 800.0 * torch.rand(4, generator=gen, dtype=torch.float64)
    photons = torch.tensor([1.0, 10.0, 333.0, 4000.0], dtype=torch.float64)
    patch, row0, col0 = psf.patches(x, y, torch.zeros(4, dtype=torch.float64), photons)

    def frac(lo, hi, mu, s):
        return 0.5 * (math.erf((hi - mu) / (math.sqrt(2) * s)) - math.erf((lo - mu) / (math.sqrt(2) * s)))

    expected = np.zeros(tuple(patch.shape))
    for n in range(4):
        xn, yn = float(x[n]), float(y[n])
        # the patch is centred on the emitter's own pixel
        assert int(col0[n]) + 5 == math.floor(xn / px) and int(row0[n]) + 5 == math.floor(yn / py)
        for r in range(11):
            i = int(row0[n]) + r
            fy = frac(i * py, (i + 1) * py, yn, sy)
            for c in range(11):
                j = int(col0[n]) + c
                expected[n, r, c] = float(photons[n]) * fy * frac(j * px, (j + 1) * px, xn, sx)
    assert_close(patch, torch.from_numpy(expected), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- astigmatic widths
def _moment_sigma_px(psf: AstigmaticPSF, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Widths (px) from the second moments of rendered patches, minus the 1/12 px^2 of pixel integration."""
    n = z.shape[0]
    x = torch.full((n,), 30.37 * PX_NM, dtype=torch.float64)
    y = torch.full((n,), 30.81 * PX_NM, dtype=torch.float64)
    frames = psf.render(x, y, z, torch.ones(n, dtype=torch.float64), torch.arange(n), n_frames=n, frame_shape=(61, 61))
    c = torch.arange(61, dtype=torch.float64) + 0.5
    px_x, px_y = frames.sum(dim=1), frames.sum(dim=2)
    vx = (px_x * (c - x[:, None] / PX_NM) ** 2).sum(dim=1) / px_x.sum(dim=1) - 1 / 12
    vy = (px_y * (c - y[:, None] / PX_NM) ** 2).sum(dim=1) / px_y.sum(dim=1) - 1 / 12
    return vx.sqrt(), vy.sqrt()


def test_astigmatic_widths_follow_the_defocus_law():
    s0, c, d, A, B = (110.0, 130.0), (-250.0, 200.0), (400.0, 350.0), (0.12, -0.2), (0.05, 0.03)
    psf = AstigmaticPSF(s0_nm=s0, c_nm=c, d_nm=d, A=A, B=B, px_size_nm=(PX_NM, PX_NM), roi_px=41)
    z = torch.linspace(-500.0, 500.0, 11, dtype=torch.float64)
    sx, sy = _moment_sigma_px(psf, z)
    for i, s in enumerate((sx, sy)):
        u = (z - c[i]) / d[i]
        law = s0[i] * torch.sqrt(1 + u**2 + A[i] * u**3 + B[i] * u**4) / PX_NM
        assert_close(s, law, rtol=0.02, atol=0.0)
        # A and B matter here: the law without them is off by more than the tolerance somewhere
        assert float(((s0[i] * torch.sqrt(1 + u**2) / PX_NM) / s - 1).abs().max()) > 0.02


def test_astigmatic_x_width_is_smallest_at_c_x():
    psf = AstigmaticPSF(c_nm=(-250.0, 250.0), A=(0.1, 0.1), B=(0.02, 0.02), roi_px=41)
    z = torch.arange(-500.0, 501.0, 5.0, dtype=torch.float64)
    sx, sy = _moment_sigma_px(psf, z)
    assert float(z[int(sx.argmin())]) == -250.0
    assert float(z[int(sy.argmin())]) == 250.0


def test_astigmatic_sigma_kernel_clamps_the_radicand():
    """A strongly negative A would make the radicand negative far out; the width stays finite > 0."""
    s = PF.astigmatic_sigma(torch.tensor([-3000.0, 0.0, 3000.0]), 100.0, 0.0, 400.0, -1.0, 0.0)
    assert bool(torch.isfinite(s).all()) and bool((s > 0).all())


# ----------------------------------------------------------------------- spline vs its source
def test_spline_reproduces_its_astigmatic_source(spline_volume):
    """At random sub-pixel x, y and z inside the calibrated range, the spline built from a volume of
    pixel-integrated astigmatic patches reproduces the astigmatic model within 1 % of the peak."""
    spline = SplinePSF.from_volume(spline_volume, dz_nm=SPLINE_DZ_NM, px_size_nm=(PX_NM, PX_NM))
    source = AstigmaticPSF(roi_px=41, px_size_nm=(PX_NM, PX_NM))
    assert spline.z_range_nm == (-500.0, 500.0)
    gen = torch.Generator().manual_seed(7)
    n = 64
    x = (22.0 + torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    y = (21.0 + torch.rand(n, generator=gen, dtype=torch.float64)) * PX_NM
    z = torch.empty(n, dtype=torch.float64).uniform_(-500.0, 500.0, generator=gen)
    ones, fr = torch.ones(n, dtype=torch.float64), torch.arange(n)
    want = source.render(x, y, z, ones, fr, n_frames=n, frame_shape=(45, 45))
    got = spline.render(x, y, z, ones, fr, n_frames=n, frame_shape=(45, 45)).double()
    err = (got - want).abs().amax(dim=(1, 2)) / want.amax(dim=(1, 2))
    assert float(err.max()) < 0.01


def test_spline_knots_interpolate_the_volume(spline_volume):
    """At the sampled z slices and a pixel-centred emitter, the spline returns the volume itself
    (scaled by the in-focus normalisation), in the frame position the volume had."""
    spline = SplinePSF.from_volume(spline_volume, dz_nm=SPLINE_DZ_NM, px_size_nm=(PX_NM, PX_NM))
    z = torch.tensor([-500.0, -250.0, 0.0, 325.0, 500.0])
    xy = torch.full((5,), 13.5 * PX_NM)
    frames = spline.render(xy, xy, z, torch.ones(5), torch.arange(5), n_frames=5, frame_shape=(27, 27))
    idx = ((z + 500.0) / SPLINE_DZ_NM).long().numpy()
    scale = 1.0 / spline_volume[20, :26, :26].sum()  # the normalisation: the in-focus spline patch sums to 1
    # the spline's patch covers 26 of the 27 source columns/rows (one voxel fewer than samples)
    want = torch.from_numpy(spline_volume[idx]).float() * scale
    assert_close(frames[:, :26, :26], want[:, :26, :26], rtol=1e-4, atol=1e-6)


def test_spline_from_a_calibration_file_and_its_z_range(spline_volume, tmp_path):
    """The volume's spline saved as a SMAP calibration and named in a YAML config renders as the
    in-memory spline; emitters.z_range_nm outside the calibrated range (with the channel's focal
    offset) is refused when the Simulator is built."""
    from plexloc.io import SplineCalibration, save_smap_3dcal
    from plexloc.psf import coefficients_from_volume
    from plexloc.simulation import Simulator

    centre = (SPLINE_ROI // 2, SPLINE_ROI // 2, SPLINE_NZ // 2)
    save_smap_3dcal(
        tmp_path / "cal" / "bead_3dcal.mat",
        SplineCalibration(coeff=coefficients_from_volume(spline_volume), dz_nm=SPLINE_DZ_NM, x0=centre[0],
                          y0=centre[1], z0=centre[2]),
    )

    def config(z_range, z_offset=0.0):
        data = {
            "frame_size": [40, 40],
            "channels": [
                {"psf": {"kind": "spline", "calibration": "cal/bead_3dcal.mat"}, "camera": {"kind": "ideal"},
                 "z_offset_nm": z_offset}
            ],
            "emitters": {"z_range_nm": list(z_range)},
        }
        (tmp_path / "sim.yaml").write_text(yaml.safe_dump(data))
        return load_config(tmp_path / "sim.yaml")

    sim = Simulator(config((-500.0, 500.0)))
    loaded = sim.channels[0].psf
    assert isinstance(loaded, SplinePSF) and loaded.z_range_nm == (-500.0, 500.0)
    memory = SplinePSF.from_volume(spline_volume, dz_nm=SPLINE_DZ_NM, px_size_nm=(PX_NM, PX_NM))
    args = (_t([1234.0, 2571.0]), _t([2087.0, 1342.0]), _t([-321.0, 444.0]), _t([1000.0, 3000.0]), torch.tensor([0, 1]))
    assert_close(loaded.render(*args, n_frames=2, frame_shape=(40, 40)),
                 memory.render(*args, n_frames=2, frame_shape=(40, 40)), rtol=1e-5, atol=1e-5)
    for z_range, offset in [((-600.0, 0.0), 0.0), ((0.0, 501.0), 0.0), ((-400.0, 400.0), 150.0)]:
        with pytest.raises(InputError, match=r"z_range_nm.*calibrated z range \[-500, 500\]"):
            Simulator(config(z_range, offset))
    Simulator(config((-350.0, 400.0), 100.0))  # inside once the offset is applied


def test_spline_rejects_bad_coefficients():
    with pytest.raises(InputError, match="shape"):
        SplinePSF(coeff=np.zeros((4, 5, 5, 60), np.float32), x0=2, y0=2, z0=2, dz_nm=10.0)
    with pytest.raises(InputError, match="sums to"):
        SplinePSF(coeff=np.zeros((4, 5, 5, 64), np.float32), x0=2, y0=2, z0=2, dz_nm=10.0)
    coeff = np.ones((4, 5, 5, 64), np.float32)
    coeff[1, 2, 3, 4] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        SplinePSF(coeff=coeff, x0=2, y0=2, z0=2, dz_nm=10.0)
    with pytest.raises(InputError, match="dz_nm"):
        SplinePSF(coeff=np.ones((4, 5, 5, 64), np.float32), x0=2, y0=2, z0=2, dz_nm=0.0)


def test_spline_from_volume_with_nan_raises_input_error():
    bad = astigmatic_volume()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        SplinePSF.from_volume(bad, dz_nm=25.0)


@pytest.mark.parametrize("adaptive", [True, False])
def test_separable_render_equals_the_patch_render(adaptive):
    """Frames of at most ``separable_max_pixels`` render as one product of row and column profiles: the same frames
    as the patch-wise render (:meth:`PSF.render`: each emitter's patch scattered into its frame), to float rounding,
    with emitters over the borders and outside the frame, frames out of range dropped, several patch sizes, a
    non-square frame and pixel, empty frames; the gradients too."""
    plane = dict(s0_nm=(100.0, 130.0), c_nm=(-150.0, 150.0), d_nm=300.0, px_size_nm=(100.0, 110.0), z_extent_nm=900.0)
    psf = AstigmaticPSF(**plane) if adaptive else AstigmaticPSF(roi_px=15, **plane)
    g = torch.Generator().manual_seed(3)
    n, frames, shape = 500, 7, (37, 52)
    x = -1500.0 + 8200.0 * torch.rand(n, generator=g, dtype=torch.float64)  # frame 5200 x 4070 nm, +-1500 outside
    y = -1500.0 + 7100.0 * torch.rand(n, generator=g, dtype=torch.float64)
    z = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 1800.0
    ph = 100.0 + 4000.0 * torch.rand(n, generator=g, dtype=torch.float64)
    fi = torch.randint(-1, frames + 1, (n,), generator=g)
    fi[fi == 2] = 3  # frame 2 stays empty
    assert psf.separable_max_pixels >= shape[0] * shape[1]
    if adaptive:
        assert len(psf.patch_groups(x, y, z, ph)) >= 3
    for dtype in (torch.float64, torch.float32):
        args = [v.to(dtype) for v in (x, y, z, ph)]
        new = psf.render(*args, fi, n_frames=frames, frame_shape=shape)
        ref = PSF.render(psf, *args, fi, n_frames=frames, frame_shape=shape)
        assert new.dtype == ref.dtype == dtype and new.shape == (frames, *shape)
        tol = 1e-9 if dtype == torch.float64 else 2e-5
        assert_close(new, ref, rtol=tol, atol=tol * float(ref.max()))
        assert float(new[2].abs().max()) == 0.0
    # one emitter well inside: all its photons (closed form), on either path
    one = psf.render(_t([2600.0], dtype=torch.float64), _t([2035.0], dtype=torch.float64), _t([0.0], dtype=torch.float64),
                     _t([1000.0], dtype=torch.float64), torch.zeros(1, dtype=torch.int64), n_frames=1, frame_shape=shape)
    assert abs(float(one.sum()) - 1000.0) < 0.1
    # gradients through the profiles and the product equal the scatter's
    xs, ys, zs, ps = (v[:60].clone().requires_grad_(True) for v in (x, y, z, ph))
    w = torch.rand(frames, *shape, generator=g, dtype=torch.float64)
    grads = []
    for render in (psf.render, lambda *a, **k: PSF.render(psf, *a, **k)):
        (render(xs, ys, zs, ps, fi[:60], n_frames=frames, frame_shape=shape) * w).sum().backward()
        grads.append([v.grad.clone() for v in (xs, ys, zs, ps)])
        for v in (xs, ys, zs, ps):
            v.grad = None
    for a, b in zip(*grads):
        assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_frame_slots_lists_each_frames_emitters_in_order():
    fi = torch.tensor([2, 0, 2, -1, 5, 2, 0, 9])
    slots = PF.frame_slots(fi, 6)
    assert slots.tolist() == [[1, 6, 8], [8, 8, 8], [0, 2, 5], [8, 8, 8], [8, 8, 8], [4, 8, 8]]
    assert PF.frame_slots(torch.tensor([-1, 7]), 3).shape == (3, 0)
