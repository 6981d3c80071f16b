"""Bead detection in a z-stack and the rejection of beads that cannot be used, with the reasons.

A bead is a local maximum of the background-subtracted, lightly smoothed maximum projection over z.
Each bead is then checked, in this order, and rejected for the first reason that applies:

- ``border``: its window (``roi_px`` x ``roi_px`` pixels, centred on its brightest pixel) leaves the frame;
- ``too close``: another detected bead lies within ``min_distance_px`` (default the window size) in x and y,
  so that the windows overlap (both beads are rejected);
- ``saturated``: a raw pixel of its window reaches ``saturation_adu`` in some slice;
- ``second bead in window``: a second bead too close to make its own maximum of the projection (within ~3 px)
  shares the window. In each slice near focus (peak >= half the bead's highest, every other slice of a
  three-slice running mean) one elliptical Gaussian (free widths and orientation) plus offset and two of the
  same shape are fitted (least squares, Poisson weights); the bead is double when, in at least two of these
  slices, the pair removes at least ``double_fraction`` of the single spot's chi^2 with components at least
  1.5 px apart and the weaker at least a quarter of the stronger (the pair is not fitted in a slice whose single
  spot already fits to within the stack's measured noise: it could not remove that much). Single beads (Gaussian
  or scalar-pupil PSFs) gave at most 0.08; two beads 200-300 nm apart (2-3 px) gave 0.6-0.96 and were taken as one
  bead before, which made s0_x of an astigmatic calibration 159 nm instead of 120 (196 nm with only pairs in the stack);
- ``too dim``: its peak is below ``dim_fraction`` times the median peak of the beads that passed so far.

The two-spot fit misses pairs closer than ~2 px, pairs of the scalar-pupil PSF 2-2.5 px apart and most dim pairs
(session 41: 0 of 60 pupil pairs 2-2.5 px apart). What a missed pair costs (session 42, ``bench/beads42.py``: 20
beads, 1 or 4 of them pairs 1.5-2.5 px apart at 1:1 and 1:2; each calibration scored by MLE fits with its spline of
600 single emitters, 5000 photons, bg 20, rendered with the true PSF at z -600..600 nm): laterally nothing (bias
< 1 nm, RMSE within 1 %); axially a z-dependent bias and a larger RMSE. Bright Gaussian beads (2e4 photons), four
1.5 px pairs kept: z RMSE 13.4 -> 14.6 nm (1.17 -> 1.27 x the CRLB), per-z bias 3.2 -> 7.3 nm rms; dim Gaussian
beads (3000 photons), four 2.5 px pairs: 25.9 -> 36.1 nm (mean of 4 seeds; per-z bias 14 -> 30 nm rms). The
leave-one-bead-out z RMSE of :mod:`plexloc.calibrate.validate` went 6.4 -> 22.5 nm with one missed 1.5 px pair
among 20 bright Gaussian beads. Pupil-PSF pairs of bright beads (1e5 photons) were all caught by the registration
residual (``outlier shape``) or ``outlier width`` already.

``calibrate_spline`` now also checks, after the first registration, each bead against the mean of the *other* beads
(:func:`pair_shape`, :func:`pair_shape_outliers`): a second bead widens it along the pair's axis by the same amount
in every slice (``s^2 w (1 - w)`` px^2), which no z shift, brightness or position makes; a bead far outside the
others' spread (``PAIR_SHAPE_SIGMAS`` standard deviations and ``PAIR_SHAPE_MIN_PX2``) is ``outlier shape``, its
detail the measured excess width, its significance and the pair's axis. It caught every 1.5-2.5 px pair of the
test set (both PSFs, bright and dim, 1:1 and 1:2) and rejected none of 480 single beads (24 clean sets: Gaussian and
pupil PSFs, Poisson and EMCCD-like noise, bright and dim, 3 seeds). Rejecting costs signal: with dim Gaussian beads
four 1.5 px pairs kept gave 27.0 nm and rejected 28.8 (clean 25.9; 4 seeds) -- such a calibration was noise-limited
(2.1 x the true PSF's CRLB in z, 12.2 nm) and a pair that close is worth its photons -- where four 2.5 px pairs went
36.1 -> 29.8 nm and bright beads' four 1.5 px pairs 14.6 -> 13.7 nm (measured before the averaged bead was smoothed
along z, which brought the clean dim calibration to 13.3 nm: ``spline.py``, bench/spline42.py). Pairs closer than
~1.2 px (excess < 0.35 px^2) are kept.

Every rejection is counted, so that a calibration that ends with no usable bead says why.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

from plexloc.errors import InputError

DOUBLE = "second bead in window"
WIDTH = "outlier width"
REJECT_REASONS = ("border", "too close", "saturated", DOUBLE, "too dim", WIDTH, "outlier shape", "excluded")

__all__ = ["REJECT_REASONS", "BeadSelection", "describe_rejections", "detect_beads", "extract_rois", "pair_shape",
           "pair_shape_outliers", "rejection_advice"]


@dataclasses.dataclass
class BeadSelection:
    """Detected beads of one stack.

    Attributes:
        rows, cols: pixel of each detected bead's maximum (all detections).
        peaks: background-subtracted peak of the smoothed projection (photons).
        reason: ``''`` for a used bead, else one of :data:`REJECT_REASONS`.
        background: the stack's background (photons per pixel, median over the stack).
        separation_px: fitted distance (px) between the two beads of each ``second bead in window``, else NaN.
    """

    rows: np.ndarray
    cols: np.ndarray
    peaks: np.ndarray
    reason: np.ndarray
    background: float
    separation_px: np.ndarray | None = None
    #: per rejected bead (index): what was measured, e.g. ``'raw 4095 ADU >= 4095 in slices 14-19'``
    detail: dict = dataclasses.field(default_factory=dict)
    #: the stack's noise variance over its mean (:func:`_noise_factor`; 1.0 where no bead was left to check), which
    #: the double-bead checks weigh their fits by
    noise_factor: float = 1.0

    @property
    def used(self) -> np.ndarray:
        return np.flatnonzero(self.reason == "")

    def counts(self) -> dict[str, int]:
        reasons = [r for r in REJECT_REASONS if np.any(self.reason == r)]
        reasons += sorted({str(r) for r in self.reason if r and r not in REJECT_REASONS})
        return {r: int(np.sum(self.reason == r)) for r in reasons}


def describe_rejections(sel: BeadSelection) -> str:
    """E.g. ``'12 found, 7 too close, 5 saturated'``, then per reason what was measured for up to three beads
    (``'; saturated: bead at pixel (row, col) (12, 31): raw 4095 ADU >= 4095 in 9 slice(s) 12-20'``); double beads add where they are and how far apart their
    two beads were fitted, e.g. ``'3 found, 1 second bead in window (3.0 px apart at pixel (row, col) (11, 13))'``."""
    parts = [f"{len(sel.rows)} found"] + [f"{n} {r}" for r, n in sel.counts().items()]
    double = np.flatnonzero(sel.reason == DOUBLE)
    if len(double) and sel.separation_px is not None:
        where = "; ".join(f"{sel.separation_px[i]:.1f} px apart at pixel (row, col) ({sel.rows[i]}, {sel.cols[i]})"
                          for i in double[:3])
        k = next(k for k, p in enumerate(parts) if p.endswith(DOUBLE))
        parts[k] += f" ({where}{'; ...' if len(double) > 3 else ''})"
    out = ", ".join(parts)
    for r in sel.counts():  # what was measured, per reason (up to 3 beads each)
        idx = [i for i in np.flatnonzero(sel.reason == r) if i in sel.detail]
        if r == DOUBLE or not idx:
            continue
        where = "; ".join(f"bead at pixel (row, col) ({sel.rows[i]}, {sel.cols[i]}): {sel.detail[i]}" for i in idx[:3])
        out += f"; {r}: {where}{'; ...' if len(idx) > 3 else ''}"
    return out


#: what to do about each rejection reason, for a calibration left with no bead (:func:`rejection_advice`)
_ADVICE = {
    "border": "beads whose window leaves the frame: use beads farther from the frame's edge (a larger camera ROI) or a "
              "smaller --roi-px",
    "too close": "beads closer to each other than the window: a sparser bead sample (dilute the beads) or a smaller "
                 "--roi-px",
    "saturated": "beads that reach the camera's saturation level: take the stack with less light (a shorter exposure, "
                 "lower laser power or EM gain), or give --saturation-adu where the camera saturates higher",
    DOUBLE: "two beads in one window: a sparser, well-sonicated bead sample (pairs and aggregates)",
    "too dim": "beads far dimmer than the others: more light, or beads of one size",
    WIDTH: "beads wider or narrower in focus than the others: aggregates or beads off the coverslip (a sparser sample, "
           "beads dried onto the coverslip)",
    "excluded": "beads left out by --exclude-bead: give fewer",
    "outlier shape": "beads whose shape differs from the others' (pairs closer than 2 px, aggregates): a sparser, "
                     "well-sonicated bead sample",
}


def rejection_advice(sel: BeadSelection) -> str:
    """The fix for the rejection reasons of ``sel``, most frequent first, e.g. ``'to fix: saturated (16): take the stack
    with less light ...'``; '' where none has advice. A calibration left with no bead named the reasons and the
    values measured, never what to change."""
    counts = sorted(sel.counts().items(), key=lambda kv: -kv[1])
    parts = [f"{r} ({n}): {_ADVICE[r]}" for r, n in counts if r in _ADVICE]
    parts += [f"{r} ({n}): where its bead there was rejected, that reason's fix (the bead's line); else check that the "
              "stacks are given channel 0 first and show the same beads (--split-view boxes and flips)"
              for r, n in counts if r.startswith("unmatched in channel")]
    return ("; to fix: " + "; ".join(parts)) if parts else ""


def check_number(name: str, value, *, low: float | None = None, low_open: bool = False, high: float | None = None,
                 high_open: bool = False, integer: bool = False, finite: bool = True) -> float:
    """``value`` as a float, or an :class:`InputError` naming ``name`` and the value where it is not a real number (a
    bool, a string, NaN; infinite unless ``finite`` is False), not an integer where ``integer``, or outside ``low`` ..
    ``high`` (``low_open`` / ``high_open``: the bound itself excluded). A NaN or negative threshold turned a check off
    without a word before (a NaN ``saturation_adu`` found no saturated bead, a negative ``dim_fraction`` no dim one)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else float("nan")
    bounds = ([f"{'>' if low_open else '>='} {low:g}"] if low is not None else []) + (
        [f"{'<' if high_open else '<='} {high:g}"] if high is not None else [])
    rule = " ".join(["an integer" if integer else "a finite number" if finite else "a number", *bounds[:1],
                     *(["and " + b for b in bounds[1:]])])
    bad = not ok or np.isnan(v) or ((finite or integer) and not np.isfinite(v)) or (integer and v != round(v))
    if not bad and low is not None:
        bad = v <= low if low_open else v < low
    if not bad and high is not None:
        bad = v >= high if high_open else v > high
    if bad:
        raise InputError(f"{name} must be {rule}, got {value!r}")
    return v


def _gaussian(p: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Elliptical Gaussian ``(amplitude, x, y, log sigma_1, log sigma_2, angle)`` sampled at pixel centres."""
    a, x0, y0, l1, l2, th = p
    c, s = np.cos(th), np.sin(th)
    dx, dy = xx - x0, yy - y0
    u = (c * dx + s * dy) * np.exp(-l1)
    v = (-s * dx + c * dy) * np.exp(-l2)
    return a * np.exp(-0.5 * (u * u + v * v))


def _spots(a: np.ndarray, x0: np.ndarray, y0: np.ndarray, l1: float, l2: float, th: float, yy: np.ndarray,
           xx: np.ndarray, jac: bool) -> tuple:
    """Elliptical Gaussians of one shape ``(l1, l2, th)`` (log widths, angle; as :func:`_gaussian`) with amplitudes
    ``a`` and centres ``(x0, y0)`` (each ``(k, 1)``) on the flat pixel grid ``yy``, ``xx`` (n,): ``g`` (k, n) and,
    with ``jac``, the derivatives of each row by ``(x0, y0, l1, l2, th)`` (each (k, n)); d/da is ``g / a``."""
    c, s = np.cos(th), np.sin(th)
    e1, e2 = np.exp(-l1), np.exp(-l2)
    dx, dy = xx - x0, yy - y0
    u = (c * dx + s * dy) * e1
    v = (-s * dx + c * dy) * e2
    e = np.exp(-0.5 * (u * u + v * v))
    g = a * e
    if not jac:
        return e, g
    gu, gv = g * u, g * v
    d_x0, d_y0 = gu * (c * e1) - gv * (s * e2), gu * (s * e1) + gv * (c * e2)
    return e, g, d_x0, d_y0, gu * u, gv * v, -gu * v * (e1 / e2 - e2 / e1)


def _single_start(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The pixel grids (rows, columns) of a slice and the single spot's start: amplitude, centre, log widths and
    angle from the intensity-weighted moments, offset 0."""
    ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    pos = np.clip(img, 0, None).ravel() + 1e-12
    cov = np.cov(np.vstack([xx.ravel(), yy.ravel()]), aweights=pos)
    mx, my = np.average(xx.ravel(), weights=pos), np.average(yy.ravel(), weights=pos)
    ev, evec = np.linalg.eigh(cov)
    th0 = float(np.arctan2(evec[1, 1], evec[0, 1]))
    return yy, xx, [float(img.max()), mx, my, 0.5 * np.log(max(ev[1], 0.3)), 0.5 * np.log(max(ev[0], 0.3)), th0, 0.0]


def _double_fit(img: np.ndarray, var: np.ndarray, min_chi1: float = 0.0) -> tuple[float, float, float]:
    """One slice of one bead (background-subtracted ``img``, Poisson variance ``var``): one Gaussian plus offset
    against two of the same shape. Returns ``(fraction of the single spot's chi^2 the pair removes, separation px,
    weaker / stronger amplitude)``; all NaN, the pair not fitted, when the single spot's chi^2 is below ``min_chi1``.

    Both fits are Levenberg-Marquardt (MINPACK) with analytic Jacobians (finite differences before: 8 and 11
    evaluations of the model per step; the same minima, ~4x less time)."""
    yy, xx, p0 = _single_start(img)
    w = 1.0 / np.sqrt(var)
    yf, xf, wf, df = yy.ravel(), xx.ravel(), w.ravel(), img.ravel()
    wdf = wf * df
    n = len(df)
    J1 = np.empty((7, n))
    J1[6] = wf
    J2 = np.empty((10, n))
    J2[9] = wf

    def one_res(p):
        _, g = _spots(p[0], p[1], p[2], p[3], p[4], p[5], yf, xf, False)
        return (g + p[6]) * wf - wdf

    def one_jac(p):
        e, _, *d = _spots(p[0], p[1], p[2], p[3], p[4], p[5], yf, xf, True)
        J1[0] = e * wf
        J1[1:6] = np.asarray(d) * wf
        return J1.T

    one = least_squares(one_res, p0, jac=one_jac, method="lm")
    if 2.0 * float(one.cost) < min_chi1:
        return float("nan"), float("nan"), float("nan")
    a, x0, y0, l1, l2, th, off = one.x

    def pair_res(q):
        _, g = _spots(q[0:2, None], q[2:6:2, None], q[3:6:2, None], q[6], q[7], q[8], yf, xf, False)
        return (g[0] + g[1] + q[9]) * wf - wdf

    def pair_jac(q):
        e, _, gx, gy, g1, g2, gt = _spots(q[0:2, None], q[2:6:2, None], q[3:6:2, None], q[6], q[7], q[8], yf, xf, True)
        J2[0:2] = e * wf
        J2[2], J2[3], J2[4], J2[5] = gx[0] * wf, gy[0] * wf, gx[1] * wf, gy[1] * wf
        J2[6], J2[7], J2[8] = (g1[0] + g1[1]) * wf, (g2[0] + g2[1]) * wf, (gt[0] + gt[1]) * wf
        return J2.T

    best = None
    for phi in (th, th + np.pi / 2):  # split along either axis of the single spot
        dx, dy = np.cos(phi), np.sin(phi)
        fit = least_squares(pair_res, [a / 2, a / 2, x0 - dx, y0 - dy, x0 + dx, y0 + dy, l1 - 0.2, l2 - 0.2, th, off],
                            jac=pair_jac, method="lm")
        if best is None or fit.cost < best.cost:
            best = fit
    q = best.x
    chi1, chi2 = 2.0 * float(one.cost), 2.0 * float(best.cost)
    amps = sorted((abs(q[0]), abs(q[1])))
    return (chi1 - chi2) / max(chi1, 1e-12), float(np.hypot(q[4] - q[2], q[5] - q[3])), amps[0] / max(amps[1], 1e-12)


#: slices near focus fitted with one and two spots per bead (the close-pair test)
MAX_PAIR_SLICES = 9


def _noise_factor(stack: np.ndarray, proj: np.ndarray, max_pixels: int = 20000) -> float:
    """Variance over mean of the stack's noise (1 for Poisson photons, 2 for an EMCCD's, 0.1 for ten frames averaged
    per slice), from slice-to-slice differences of the pixels of the dimmer half of the projection (background)."""
    idx = np.flatnonzero(proj.ravel() <= np.median(proj))
    idx = idx[:: max(1, len(idx) // max_pixels)]
    s = np.asarray(stack, np.float64).reshape(len(stack), -1)[:, idx]
    d = np.diff(s, axis=0)
    return float(np.sum(d * d) / max(float(np.sum(s[1:] + s[:-1])), 1e-12))


def _second_bead(window: np.ndarray, background: float, double_fraction: float,
                 noise_factor: float | None = None) -> float:
    """Fitted separation (px) of two beads in one bead's window ``(n_z, R, R)`` (photons), NaN when single
    (see the module docstring).

    ``noise_factor`` (the stack's noise variance over its mean, :func:`_noise_factor`; None: every slice fitted with
    two spots): a slice whose single spot already fits to within noise (chi^2 below ``F (m - 4 sqrt(2 m)) /
    (1 - double_fraction)``, F = min(noise_factor, 1), m the pixels' expected noise chi^2 less the pair's 10
    parameters) is not fitted with two: for the pair to remove ``double_fraction`` of it, its chi^2 would have to lie
    more than 4 standard deviations below noise."""
    mean = ndimage.uniform_filter1d(np.asarray(window, np.float64), 3, axis=0, mode="nearest")
    img = mean - background
    peak = img.max(axis=(1, 2))
    seps = []
    ks = np.flatnonzero(peak >= 0.5 * peak.max())[::2]
    if len(ks) > MAX_PAIR_SLICES:  # fine z steps: as many slices spread over the focal range (0.5-2 s per bead before)
        ks = ks[np.unique(np.linspace(0, len(ks) - 1, MAX_PAIR_SLICES).round().astype(int))]
    for j, k in enumerate(ks):
        if len(seps) + len(ks) - j < 2:  # two slices cannot pass any more: the bead is single whatever this one says
            break
        var = np.clip(mean[k], 1.0, None) / 3.0
        min_chi1 = 0.0
        if noise_factor is not None and double_fraction < 1.0:
            m = float(np.sum(np.clip(mean[k], 0.0, 1.0))) - 10.0  # pixels below 1 photon: their chi^2 is below 1
            floor = min(noise_factor, 1.0) * (m - 4.0 * np.sqrt(2.0 * max(m, 0.0)))
            min_chi1 = max(0.0, floor / (1.0 - double_fraction))
        frac, sep, ratio = _double_fit(img[k], var, min_chi1)
        if frac >= double_fraction and sep >= 1.5 and ratio >= 0.25:
            seps.append(sep)
    return float(np.median(seps)) if len(seps) >= 2 else float("nan")


def detection_projection(stack: np.ndarray, threshold_sigma: float = 8.0) -> tuple[np.ndarray, float, float]:
    """What :func:`detect_beads` detects beads on: the maximum over z of the median-subtracted stack smoothed in x and
    y (1 px), its median, and the detection threshold: median + ``threshold_sigma`` robust standard deviations of the
    projection, lowered to a quarter of the way from the median to the brightest spot (but never below
    ``threshold_sigma`` noise standard deviations, the noise measured from slice-to-slice differences) where that
    is lower.

    The projection's spread is its noise's only where most of the field is background. Beads whose defocused images
    cover most of it (dense beads, bright or saturated beads) made the spread the beads' own: 16 beads clipped at a
    camera's 4095 ADU, or 16 pairs of beads 4 px apart in a 64 x 64 px field, rose to 0.7-0.9 of the threshold, and
    the calibration said "0 found ... beads too dim" of beads that were saturated or touching."""
    stack = np.asarray(stack, dtype=np.float64)
    smooth = ndimage.gaussian_filter(stack - float(np.median(stack)), sigma=(0.0, 1.0, 1.0))
    proj = smooth.max(axis=0)
    med = float(np.median(proj))
    mad = float(np.median(np.abs(proj - med))) * 1.4826
    thr = med + threshold_sigma * max(mad, 1e-9)
    if len(smooth) > 1:
        # the smoothed stack's noise (per slice) from its slice-to-slice differences: a bead changes little from one
        # slice to the next over most of its pixels; larger than the spread of a projection of noise alone (a maximum
        # over slices), so that a stack of noise keeps the threshold above
        d = np.diff(smooth, axis=0)
        noise = float(np.median(np.abs(d - np.median(d)))) * 1.4826 / np.sqrt(2.0)
        floor = med + threshold_sigma * max(noise, 1e-9)
        thr = min(thr, max(floor, med + 0.25 * (float(proj.max()) - med)))
    return proj, med, thr


def detect_beads(
    stack: np.ndarray,
    *,
    roi_px: int,
    raw: np.ndarray | None = None,
    saturation_adu: float | None = None,
    min_distance_px: int | None = None,
    dim_fraction: float = 0.3,
    threshold_sigma: float = 8.0,
    double_fraction: float = 0.5,
) -> BeadSelection:
    """Find beads in ``stack`` (photons, ``(n_z, H, W)``) and mark the unusable ones.

    Args:
        roi_px: window size (odd) cut around each bead.
        raw: the stack in ADU (for the saturation test); default ``stack``.
        saturation_adu: raw value counted as saturated (None: no test).
        min_distance_px: beads closer than this in both x and y reject each other (default ``roi_px``).
        dim_fraction: beads below this fraction of the median peak are too dim.
        threshold_sigma: detection threshold on the projection, in robust standard deviations.
        double_fraction: share of the single-spot fit's chi^2 that two spots must remove for the bead to be
            rejected as ``second bead in window`` (see the module docstring).

    Raises:
        InputError: an option that is not a number in its range (named, with the value): ``roi_px`` not an odd
            integer >= 3, ``saturation_adu`` not > 0, ``min_distance_px`` not an integer >= 0, ``dim_fraction``
            not in [0, 1), ``threshold_sigma`` not > 0, ``double_fraction`` not in (0, 1], or one of them NaN or
            infinite.
    """
    check_number("roi_px", roi_px, low=3, integer=True)
    if int(roi_px) % 2 == 0:
        raise InputError(f"roi_px must be an odd integer >= 3, got {roi_px!r}")
    roi_px = int(roi_px)
    if saturation_adu is not None:
        check_number("saturation_adu", saturation_adu, low=0, low_open=True)
    if min_distance_px is not None:
        check_number("min_distance_px", min_distance_px, low=0, integer=True)
    check_number("dim_fraction", dim_fraction, low=0, high=1, high_open=True)
    check_number("threshold_sigma", threshold_sigma, low=0, low_open=True)
    check_number("double_fraction", double_fraction, low=0, low_open=True, high=1)
    stack = np.asarray(stack, dtype=np.float64)
    nz, h, w = stack.shape
    bg = float(np.median(stack))
    proj, _, thr = detection_projection(stack, threshold_sigma)
    half = roi_px // 2
    footprint = max(3, roi_px // 2) | 1
    is_max = (proj == ndimage.maximum_filter(proj, size=footprint, mode="nearest")) & (proj > thr)
    rows, cols = np.nonzero(is_max)
    peaks = proj[rows, cols]
    order = np.argsort(-peaks)
    rows, cols, peaks = rows[order], cols[order], peaks[order]
    reason = np.full(rows.shape, "", dtype=object)
    detail: dict[int, str] = {}
    border = (rows < half) | (rows >= h - half) | (cols < half) | (cols >= w - half)
    reason[border] = "border"
    for i in np.flatnonzero(border):
        detail[i] = f"its {roi_px}-px window leaves the {h}x{w} (rows x cols) frame"
    md = roi_px if min_distance_px is None else int(min_distance_px)
    if len(rows) > 1:
        dr = np.abs(rows[:, None] - rows[None, :])
        dc = np.abs(cols[:, None] - cols[None, :])
        close = (dr < md) & (dc < md)
        np.fill_diagonal(close, False)
        for i in np.flatnonzero((reason == "") & close.any(axis=1)):
            reason[i] = "too close"
            j = np.flatnonzero(close[i])
            k = j[np.argmin(np.hypot(dr[i, j], dc[i, j]))]
            detail[i] = (f"{np.hypot(dr[i, k], dc[i, k]):.1f} px from the bead at ({rows[k]}, {cols[k]}), windows of "
                         f"{md} px overlap")
    if saturation_adu is not None:
        raw_arr = stack if raw is None else np.asarray(raw)
        for i in np.flatnonzero(reason == ""):
            win = raw_arr[:, rows[i] - half : rows[i] + half + 1, cols[i] - half : cols[i] + half + 1]
            if float(win.max()) >= saturation_adu:
                reason[i] = "saturated"
                ks = np.flatnonzero(win.reshape(len(win), -1).max(axis=1) >= saturation_adu)
                detail[i] = (f"raw {float(win.max()):g} ADU >= {saturation_adu:g} in {len(ks)} slice(s) "
                             f"{ks.min()}-{ks.max()}")
    separation = np.full(len(rows), np.nan)
    noise = _noise_factor(stack, proj) if np.any(reason == "") else 1.0
    for i in np.flatnonzero(reason == ""):
        win = stack[:, rows[i] - half : rows[i] + half + 1, cols[i] - half : cols[i] + half + 1]
        separation[i] = _second_bead(win, bg, double_fraction, noise)
        if np.isfinite(separation[i]):
            reason[i] = DOUBLE
            # what was measured, for the per-bead line of plexloc calibrate (it said "rejected: second bead in window")
            detail[i] = (f"two spots {separation[i]:.1f} px apart fit its slices near focus far better than one (a "
                         "second bead or an aggregate)")
    ok = reason == ""
    if ok.any():
        med = float(np.median(peaks[ok]))
        for i in np.flatnonzero(ok & (peaks < dim_fraction * med)):
            reason[i] = "too dim"
            detail[i] = f"peak {peaks[i]:.0f} photons < {dim_fraction:g} x the median bead's {med:.0f}"
    return BeadSelection(
        rows=rows, cols=cols, peaks=peaks, reason=reason.astype("U40"), background=bg, separation_px=separation,
        noise_factor=float(noise),
        detail=detail,
    )


def flat_top(raw: np.ndarray, *, min_pixels: int = 4) -> tuple[float, int] | None:
    """``(value, n_pixels)`` when the stack's highest raw value is shared by at least ``min_pixels`` pixels and lies
    far above the typical pixel: a flat top, the level at which the camera (or a conversion) clipped, else None.
    Shot noise makes the brightest pixels of beads all different (a 12-bit camera clipped at 4095 in a 16-bit file:
    hundreds of pixels at 4095); clipped beads are wider than they are and made s0 of an astigmatic calibration
    164 nm instead of 120."""
    arr = np.asarray(raw)
    top = arr.max()
    if not np.isfinite(top):
        return None
    n = int(np.count_nonzero(arr == top))
    from plexloc.evaluate.uncertainty import robust_sd

    med = float(np.median(arr))
    spread = robust_sd(arr)
    if n >= min_pixels and float(top) > med + 20.0 * max(spread, 1.0):
        return float(top), n
    return None


def window_stats(windows: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bead window ``(n, n_z, R, R)`` (photons) and background ``bg`` (n,): ``(width_px, snr, focus_slice)``.

    ``width_px``: the smallest geometric-mean Gaussian width sqrt(sigma_1 sigma_2) (elliptical Gaussian plus offset,
    least squares) over the slices near the bead's brightest (the in-focus width; an aggregate or a bead out of the
    coverslip plane is wider); ``snr``: in-focus peak over its shot noise, ``peak / sqrt(peak + bg)`` with the
    peak of a three-slice running mean above background; ``focus_slice``: the slice of that peak."""
    n = len(windows)
    widths, snr, focus = np.full(n, np.nan), np.zeros(n), np.zeros(n, int)
    for i in range(n):
        mean = ndimage.uniform_filter1d(np.asarray(windows[i], np.float64), 3, axis=0, mode="nearest") - bg[i]
        R = mean.shape[-1]
        c = R // 2
        centre = mean[:, c - 1 : c + 2, c - 1 : c + 2].max(axis=(1, 2))
        k = int(np.argmax(centre))
        peak = float(centre[k])
        focus[i] = k
        snr[i] = peak / np.sqrt(max(peak + bg[i], 1.0))
        yy, xx = np.mgrid[:R, :R].astype(np.float64)
        best = np.inf
        for kk in range(max(0, k - 3), min(len(mean), k + 4)):
            img = mean[kk]
            p0 = [float(img[c - 1 : c + 2, c - 1 : c + 2].max()), float(c), float(c), np.log(1.5), np.log(1.5), 0.0, 0.0]
            try:
                fit = least_squares(lambda p: (_gaussian(p[:6], yy, xx) + p[6] - img).ravel(), p0, method="lm")
            except ValueError:
                continue
            a, x0, y0, l1, l2 = fit.x[:5]
            if fit.success and a > 0 and abs(x0 - c) < R / 3 and abs(y0 - c) < R / 3:
                best = min(best, float(np.exp(0.5 * (l1 + l2))))
        widths[i] = best if np.isfinite(best) else np.nan
    return widths, snr, focus


def extract_rois(stack: np.ndarray, rows: np.ndarray, cols: np.ndarray, roi_px: int) -> np.ndarray:
    """``(n_beads, n_z, roi_px, roi_px)`` windows centred on each (row, col); they must lie inside."""
    half = roi_px // 2
    return np.stack([stack[:, r - half : r + half + 1, c - half : c + half + 1] for r, c in zip(rows, cols)]) if len(
        rows
    ) else np.zeros((0, stack.shape[0], roi_px, roi_px))


#: the pair-shape check (:func:`pair_shape_outliers`): beads it needs, its threshold in standard deviations, and the
#: smallest anisotropic excess variance (px^2) it rejects (0.35 px^2: two equal beads 1.2 px apart). The other beads
#: give each bead its template (their mean), the reference shape (the median) and the spread beyond noise; two beads
#: cannot be told apart (each is the other's template: a pair and a single read +e and -e). Session 43
#: (bench/beads43.py, simulated beads as bench/beads42.py, 3 and 4 beads, 5 seeds x Gaussian / pupil x Poisson / EMCCD x
#: bright / dim) with the minimum at 3: none of 1,480 single beads rejected; of 480 pairs 1.5-2.5 px apart (1:1, 1:2),
#: 313 caught by this check and 154 by the others, 13 kept (dim Gaussian beads), against 326 kept with the check off
#: (minimum 5). Not lowered yet: simulated beads are all alike, so how a spread estimated from 3-4 real beads (field-
#: dependent aberrations, bead sizes) holds is not measured.
PAIR_SHAPE_MIN_BEADS = 5
#: with 3 or 4 beads the same check runs but only names the beads it would reject, in a warning (session 48): a pair
#: 1.5-2.5 px apart among so few beads was kept without a word (the two-spot fit misses most below ~2 px)
PAIR_SHAPE_NAME_MIN_BEADS = 3
PAIR_SHAPE_SIGMAS = 6.0
PAIR_SHAPE_MIN_PX2 = 0.35


def _second_differences(m: np.ndarray) -> tuple[np.ndarray, ...]:
    """Templates of a PSF volume ``(n_z, R, R)``: d/dx, d/dy, d2/dx2, d2/dy2, d2/dxdy (central differences, px)."""
    mx, my = np.gradient(m, axis=2), np.gradient(m, axis=1)
    mxx, myy = np.zeros_like(m), np.zeros_like(m)
    mxx[:, :, 1:-1] = m[:, :, 2:] - 2.0 * m[:, :, 1:-1] + m[:, :, :-2]
    myy[:, 1:-1, :] = m[:, 2:, :] - 2.0 * m[:, 1:-1, :] + m[:, :-2, :]
    mxy = np.gradient(mx, axis=1)
    return mx, my, mxx, myy, mxy


def pair_shape(clean: np.ndarray, shifts: np.ndarray, bg: np.ndarray, scale: np.ndarray,
               noise_factor: float = 1.0, focus_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Each bead's anisotropic excess width against the mean of the *other* beads (leave-one-out), a double bead's
    signature: two beads ``s`` px apart with brightness shares ``w`` and ``1 - w`` are one bead widened by the
    covariance ``s^2 w (1 - w) u u^T`` (u along the pair) in every slice, which no z shift or brightness makes.

    ``clean``: registered beads ``(n, n_z, R, R)`` (background-subtracted, divided by ``scale``), ``shifts`` their
    registration shifts, ``bg`` (photons/px) and ``scale`` per bead, ``noise_factor`` the stack's variance over mean.
    Each bead, moved onto the average, is fitted in the slices where the others' mean ``m`` peaks above
    ``focus_fraction`` of its highest as ``a_k m + b_k dm/dx + c_k dm/dy + o_k`` per slice (brightness, position,
    offset) ``+ (S_xx d2m/dx2 + S_yy d2m/dy2 + 2 S_xy d2m/dxdy) / 2`` shared by all slices (weighted least squares,
    Poisson variance of the model times ``noise_factor``, plus the other beads' mean's).

    Returns ``(v, se)``: ``v`` ``(n, 2)`` = ``(S_xx - S_yy, 2 S_xy)`` px^2 (its length is the difference of the excess
    covariance's eigenvalues: ``s^2 w (1 - w)`` for a pair; the direction gives the pair's axis) and ``se`` ``(n,)``
    its standard error (per component, from the fit's covariance, scaled up by the fit's reduced chi^2 when above 1).
    """
    from plexloc.calibrate.register import shift_volume

    n = len(clean)
    moved, valid = zip(*(shift_volume(c, s) for c, s in zip(clean, shifts)))
    moved, valid = np.asarray(moved), np.asarray(valid, np.float64)
    total, count = (moved * valid).sum(axis=0), valid.sum(axis=0)
    # the beads' own variance (clean units): photons / scale^2, summed for the other beads' mean
    var_unit = noise_factor / np.asarray(scale, np.float64) ** 2
    v_out, se_out = np.full((n, 2), np.nan), np.full(n, np.nan)
    R = clean.shape[-1]
    inner = (slice(None), slice(1, R - 1), slice(1, R - 1))
    for i in range(n):
        cnt = count - valid[i]
        m = np.where(cnt > 0, (total - moved[i] * valid[i]) / np.maximum(cnt, 1e-12), 0.0)
        c = R // 2
        curve = m[:, c - 1 : c + 2, c - 1 : c + 2].max(axis=(1, 2))
        ks = np.flatnonzero((curve >= focus_fraction * curve.max()) & (valid[i][:, c, c] > 0))
        if len(ks) < 2:
            continue
        mk = m[ks]
        tmpl = [t[inner] for t in _second_differences(mk)]
        d = moved[i][ks][inner]
        ok = valid[i][ks][inner] > 0
        others = [j for j in range(n) if j != i]
        lam = np.clip(mk[inner], 0.0, None)
        sc, bo = np.asarray(scale, np.float64)[others], np.asarray(bg, np.float64)[others]
        var = var_unit[i] * (lam * scale[i] + bg[i]) + (
            np.sum(var_unit[others] * sc) * lam + np.sum(var_unit[others] * bo)) / len(others) ** 2
        w = np.where(ok, 1.0 / np.sqrt(np.maximum(var, 1e-30)), 0.0)
        # per slice k: nuisance columns B_k (brightness, x, y, offset), shared columns T_k (the three widenings);
        # the nuisance is projected out slice by slice (the normal equations' Schur complement), leaving 3 x 3
        K = len(ks)
        wk = w.reshape(K, -1)
        B = np.stack([mk[inner].reshape(K, -1), tmpl[0].reshape(K, -1), tmpl[1].reshape(K, -1),
                      np.ones_like(wk)], axis=2) * wk[:, :, None]  # (K, P, 4)
        T = np.stack([0.5 * tmpl[2].reshape(K, -1), 0.5 * tmpl[3].reshape(K, -1), tmpl[4].reshape(K, -1)],
                     axis=2) * wk[:, :, None]  # (K, P, 3)
        y = d.reshape(K, -1) * wk
        BtB = np.einsum("kpi,kpj->kij", B, B) + 1e-12 * np.eye(4)
        try:
            G = np.linalg.solve(BtB, np.concatenate([np.einsum("kpi,kpj->kij", B, T),
                                                     np.einsum("kpi,kp->ki", B, y)[:, :, None]], axis=2))
        except np.linalg.LinAlgError:
            continue
        Tr = T - np.einsum("kpi,kij->kpj", B, G[:, :, :3])
        yr = y - np.einsum("kpi,ki->kp", B, G[:, :, 3])
        N = np.einsum("kpi,kpj->ij", Tr, Tr)
        try:
            inv = np.linalg.inv(N)
        except np.linalg.LinAlgError:
            continue
        sol = inv @ np.einsum("kpi,kp->i", Tr, yr)
        dof = max(int(np.count_nonzero(wk)) - 4 * K - 3, 1)
        red = float(np.sum((yr - Tr @ sol) ** 2)) / dof
        cov = inv * max(red, 1.0)
        sxx, syy, sxy = sol
        v_out[i] = (sxx - syy, 2.0 * sxy)
        var_a = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
        var_b = 4.0 * cov[2, 2]
        se_out[i] = float(np.sqrt(max(0.5 * (var_a + var_b), 0.0)))
    return v_out, se_out


def pair_shape_outliers(v: np.ndarray, se: np.ndarray, *, min_beads: int = PAIR_SHAPE_MIN_BEADS
                        ) -> tuple[np.ndarray, list[str]]:
    """Which beads of :func:`pair_shape`'s ``(v, se)`` are double: the deviation ``|v_i - median(v)|`` (component-wise
    median over the beads) above ``PAIR_SHAPE_SIGMAS`` times ``sqrt(se_i^2 + spread^2)`` (``spread``: the beads'
    robust spread beyond their own noise) and above ``PAIR_SHAPE_MIN_PX2``. Returns ``(bad mask, detail per bead)``
    (the detail is '' for a kept bead); needs ``min_beads`` (default ``PAIR_SHAPE_MIN_BEADS``) beads with a value,
    else rejects none."""
    from plexloc.evaluate.uncertainty import robust_sd

    v = np.asarray(v, np.float64)
    se = np.asarray(se, np.float64)
    n = len(v)
    ok = np.isfinite(v).all(axis=1) & np.isfinite(se)
    bad = np.zeros(n, bool)
    details = [""] * n
    if ok.sum() < min_beads:
        return bad, details
    med = np.median(v[ok], axis=0)
    dev = np.hypot(*(v - med).T)
    s_tot2 = 0.5 * (robust_sd(v[ok, 0]) ** 2 + robust_sd(v[ok, 1]) ** 2)
    spread = float(np.sqrt(max(s_tot2 - float(np.median(se[ok])) ** 2, 0.0)))
    sig = np.sqrt(se**2 + spread**2)
    bad = ok & (dev > PAIR_SHAPE_SIGMAS * sig) & (dev > PAIR_SHAPE_MIN_PX2)
    for i in np.flatnonzero(bad):
        d = v[i] - med
        angle = float(np.degrees(0.5 * np.arctan2(d[1], d[0])))
        details[i] = (f"anisotropic excess width {dev[i]:.2f} px^2 against the other beads' median (+-{sig[i]:.2f}: "
                      f"{dev[i] / sig[i]:.0f} sigma), along {angle:+.0f} deg from x towards +y: a second bead ~"
                      f"{2.0 * np.sqrt(dev[i]):.1f} px away if as bright (a pair s px apart, brightness shares w and 1 - w, "
                      f"adds s^2 w (1 - w))")
    return bad, details
