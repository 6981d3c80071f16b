"""The bead calibration's double-bead check (``second bead in window``): its decisions on single and double beads,
its fits against the finite-difference fits it replaced, and the slice it may leave out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from plexloc.calibrate import beads as B
from plexloc.psf import AstigmaticPSF

PX = 100.0
ZS = np.arange(-800.0, 801.0, 50.0)
C = 15.5 * PX  # the centre of a 31 x 31 frame


def _stack(emitters, *, dz=0.0, bg=20.0, seed=0, n_avg=1, emccd=False):
    """(33, 31, 31) Poisson stack (photons) of emitters [(x_nm, y_nm, photons)], astigmatic Gaussian PSF; ``n_avg``
    frames averaged per slice; ``emccd``: gamma excess noise (twice the variance)."""
    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=15)
    xy = np.asarray([e[:2] for e in emitters], float)
    ph = np.asarray([e[2] for e in emitters], float)
    n = len(xy)
    frames = psf.render(
        torch.tensor(np.tile(xy[:, 0], len(ZS)), dtype=torch.float32),
        torch.tensor(np.tile(xy[:, 1], len(ZS)), dtype=torch.float32),
        torch.tensor(np.repeat(ZS + dz, n), dtype=torch.float32),
        torch.tensor(np.tile(ph, len(ZS)), dtype=torch.float32),
        torch.arange(len(ZS)).repeat_interleave(n),
        n_frames=len(ZS),
        frame_shape=(31, 31),
    )
    rng = np.random.default_rng(seed)
    counts = rng.poisson(n_avg * (frames.numpy().astype(np.float64) + bg)).astype(np.float64)
    if emccd:
        counts = np.where(counts > 0, rng.gamma(np.maximum(counts, 1e-9), 1.0), 0.0)
    return counts / n_avg


def _pair(sep_px, ratio, angle_deg=0.0, photons=2e4):
    u, v = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    h = sep_px * PX / 2
    return [(C - h * u + 13.0, C - h * v - 7.0, photons), (C + h * u + 13.0, C + h * v - 7.0, photons * ratio)]


@pytest.mark.parametrize(
    "emitters, dz, seed",
    [
        ([(C, C, 2e4)], 0.0, 1),
        ([(C + 37.0, C - 21.0, 2e4)], 300.0, 2),
        ([(C, C, 3e3)], -300.0, 3),  # dim
        (_pair(1.0, 1.0), 0.0, 4),  # 1 px apart: one spot for this check (fitted closer than 1.5 px)
    ],
)
def test_single_beads_are_used(emitters, dz, seed):
    sel = B.detect_beads(_stack(emitters, dz=dz, seed=seed), roi_px=15)
    assert len(sel.rows) == 1 and list(sel.reason) == [""] and np.isnan(sel.separation_px[0])


@pytest.mark.parametrize(
    "sep, ratio, angle, seed",
    [(2.0, 0.5, 0.0, 11), (2.5, 1.0, 45.0, 12), (3.0, 1.0, 90.0, 13), (3.0, 0.5, 45.0, 14), (4.0, 0.25, 0.0, 15),
     (2.5, 0.25, 90.0, 16)],
)
def test_double_beads_are_rejected_with_their_separation(sep, ratio, angle, seed):
    """Pairs 2-4 px apart, 1:1 to 1:4 (the session-41 decision set's bright Gaussian doubles were all caught at
    these separations and ratios, fitted within 0.05 px)."""
    sel = B.detect_beads(_stack(_pair(sep, ratio, angle), dz=150.0, seed=seed), roi_px=15)
    assert len(sel.rows) == 1 and list(sel.reason) == [B.DOUBLE]
    assert abs(sel.separation_px[0] - sep) < 0.1
    assert "second bead in window (" in B.describe_rejections(sel)


def _fd_double_fit(img, var):
    """The check's fits as they were before session 41 (finite-difference Jacobians), for comparison."""
    yy, xx, p0 = B._single_start(img)  # the same start as the check's
    w = 1.0 / np.sqrt(var)
    one = least_squares(lambda p: ((B._gaussian(p[:6], yy, xx) + p[6] - img) * w).ravel(), p0, method="lm")
    a, x0, y0, l1, l2, th, off = one.x

    def pair(q):
        shape = q[6:9]
        model = B._gaussian([q[0], q[2], q[3], *shape], yy, xx) + B._gaussian([q[1], q[4], q[5], *shape], yy, xx)
        return ((model + q[9] - img) * w).ravel()

    best = None
    for phi in (th, th + np.pi / 2):
        dx, dy = np.cos(phi), np.sin(phi)
        start = [a / 2, a / 2, x0 - dx, y0 - dy, x0 + dx, y0 + dy, l1 - 0.2, l2 - 0.2, th, off]
        fit = least_squares(pair, start, method="lm")
        if best is None or fit.cost < best.cost:
            best = fit
    q = best.x
    chi1, chi2 = 2.0 * float(one.cost), 2.0 * float(best.cost)
    amps = sorted((abs(q[0]), abs(q[1])))
    return (chi1 - chi2) / max(chi1, 1e-12), float(np.hypot(q[4] - q[2], q[5] - q[3])), amps[0] / max(amps[1], 1e-12)


def test_jacobian_of_the_spots_matches_finite_differences():
    yy, xx = np.mgrid[:15, :15].astype(np.float64)
    p = np.array([90.0, 7.1, 6.8, 0.4, 0.2, 0.3])
    e, g, *d = B._spots(np.array([[p[0]]]), np.array([[p[1]]]), np.array([[p[2]]]), p[3], p[4], p[5], yy.ravel(),
                        xx.ravel(), True)
    assert np.allclose(g[0], B._gaussian(p, yy, xx).ravel()) and np.allclose(e[0] * p[0], g[0])
    for k in range(1, 6):
        h = np.zeros(6)
        h[k] = 1e-6
        fd = (B._gaussian(p + h, yy, xx) - B._gaussian(p - h, yy, xx)).ravel() / 2e-6
        assert np.abs(fd - d[k - 1][0]).max() < 1e-6 * p[0]


@pytest.mark.parametrize("emitters, k", [([(C, C, 2e4)], 16), (_pair(2.0, 1.0, 45.0), 16), (_pair(3.0, 0.25), 12),
                                         (_pair(2.0, 0.5, 0.0, 3e3), 16)])
def test_the_fits_reach_the_finite_difference_fits_minima(emitters, k):
    """Analytic Jacobians changed the time, not the answer: chi^2 fraction, separation and ratio as before (on the
    300-case set of bench/beads41.py: the same decisions, separations within 1e-4 px)."""
    from scipy import ndimage

    stack = _stack(emitters, seed=k)
    win = stack[:, 8:23, 8:23]
    mean = ndimage.uniform_filter1d(win, 3, axis=0, mode="nearest")
    img, var = mean[k] - np.median(stack), np.clip(mean[k], 1.0, None) / 3.0
    new, old = B._double_fit(img, var), _fd_double_fit(img, var)
    assert np.allclose(new, old, rtol=0, atol=2e-3), (new, old)


def test_noise_free_pair_and_single():
    """A noise-free pair 3 px apart, 1:2: the pair removes all of the single spot's chi^2, at 3 px, 1:2; a single
    spot: the pair removes nothing."""
    yy, xx = np.mgrid[:15, :15].astype(np.float64)
    shape = [np.log(1.3), np.log(1.6), 0.4]
    one = B._gaussian([500.0, 7.2, 6.9, *shape], yy, xx)
    two = one + B._gaussian([250.0, 7.2 + 3 * np.cos(0.3), 6.9 + 3 * np.sin(0.3), *shape], yy, xx)
    frac, sep, ratio = B._double_fit(two, np.clip(two + 20.0, 1.0, None) / 3.0)
    assert frac > 0.999 and abs(sep - 3.0) < 1e-3 and abs(ratio - 0.5) < 1e-3
    frac, sep, ratio = B._double_fit(one, np.clip(one + 20.0, 1.0, None) / 3.0)
    assert frac < 1e-3


def _fake_fits(monkeypatch, passing):
    """Replace the per-slice fit: the j-th fitted slice passes (3 px, 1:1, all chi^2) when j is in ``passing``."""
    calls = []

    def fake(img, var, min_chi1=0.0):
        calls.append(len(calls))
        return (0.9, 3.0, 1.0) if len(calls) - 1 in passing else (0.1, 0.5, 0.1)

    monkeypatch.setattr(B, "_double_fit", fake)
    return calls


def test_the_slice_left_out_cannot_change_the_decision(monkeypatch):
    """The last slice is not fitted when no earlier one passed (two must pass); a pair that passes in the last two
    slices, or in the first and the last, is still caught, and all slices are fitted then."""
    stack = _stack([(C, C, 2e4)], seed=5)
    win = stack[:, 8:23, 8:23]
    bg = float(np.median(stack))
    calls = _fake_fits(monkeypatch, passing=set())
    assert np.isnan(B._second_bead(win, bg, 0.5))
    n = len(calls) + 1  # slices near focus: all but the last fitted
    assert n >= 3
    for passing in ({n - 2, n - 1}, {0, n - 1}):
        calls = _fake_fits(monkeypatch, passing)
        assert B._second_bead(win, bg, 0.5) == 3.0 and len(calls) == n
    calls = _fake_fits(monkeypatch, {n - 1})  # only the last would pass: single either way
    assert np.isnan(B._second_bead(win, bg, 0.5)) and len(calls) == n - 1


def test_noise_factor_of_poisson_emccd_and_averaged_stacks():
    for kw, f in (({}, 1.0), ({"emccd": True}, 2.0), ({"n_avg": 10}, 0.1)):
        st = _stack([(C, C, 2e4)], **kw)
        proj, _, _ = B.detection_projection(st)
        assert abs(B._noise_factor(st, proj) / f - 1.0) < 0.1, kw


def _count_pair_fits(monkeypatch):
    """(slices fitted, slices whose pair was not fitted) of the double-bead check."""
    seen = [0, 0]
    orig = B._double_fit

    def counted(img, var, min_chi1=0.0):
        out = orig(img, var, min_chi1)
        seen[0] += 1
        seen[1] += int(np.isnan(out[0]))
        return out

    monkeypatch.setattr(B, "_double_fit", counted)
    return seen


def test_the_gate_leaves_out_the_pair_only_where_one_spot_fits_to_noise(monkeypatch):
    """A Gaussian bead with Poisson noise: the single spot fits to noise (chi^2 ~ pixels) in most slices (7 of 8
    here), whose pair is not fitted, and the bead is used. A dim pair 4 px apart (1:2; caught by the full check at
    every seed tried, its slices' chi^2 about twice the pixels') and a bright one 3 px apart: every slice fitted
    with two spots, and both caught as before."""
    seen = _count_pair_fits(monkeypatch)
    sel = B.detect_beads(_stack([(C, C, 2e4)], seed=21), roi_px=15)
    assert list(sel.reason) == [""] and seen[0] >= 3 and seen[1] >= 0.75 * seen[0]
    for sep, ph, seed in ((4.0, 3e3, 22), (3.0, 2e4, 23)):
        seen[:] = [0, 0]
        sel = B.detect_beads(_stack(_pair(sep, 0.5, 45.0, ph), dz=150.0, seed=seed), roi_px=15)
        assert list(sel.reason) == [B.DOUBLE] and abs(sel.separation_px[0] - sep) < 0.15
        assert seen[0] >= 3 and seen[1] == 0


@pytest.mark.parametrize("sep", [2.5, 3.0])
def test_a_dim_pair_in_an_averaged_stack_is_caught_because_the_gate_measures_the_noise(monkeypatch, sep):
    """Ten frames averaged per slice: the noise is a tenth of Poisson's, so a dim pair's single-spot chi^2 lies
    below the pixel count although the pair removes most of it. The gate takes the stack's measured noise (0.1) and
    fits the pairs: caught, as without the gate. A gate that took Poisson noise for granted left out the pair in
    every slice and used the bead."""
    st = _stack(_pair(sep, 0.5, 45.0, 2e3), dz=150.0, seed=31, n_avg=10)
    sel = B.detect_beads(st, roi_px=15)
    assert list(sel.reason) == [B.DOUBLE] and abs(sel.separation_px[0] - sep) < 0.15
    r, c = sel.rows[0], sel.cols[0]
    win, bg = st[:, r - 7 : r + 8, c - 7 : c + 8], float(np.median(st))
    assert abs(B._second_bead(win, bg, 0.5) - sel.separation_px[0]) < 1e-9  # no gate: the same
    seen = _count_pair_fits(monkeypatch)
    assert np.isnan(B._second_bead(win, bg, 0.5, noise_factor=1.0)) and seen[1] >= seen[0] - 1
