"""Bead z-stacks -> cubic-spline PSF per channel, channel transforms and throughput ratios.

Steps (:func:`calibrate_spline`), one z-stack per channel, all in photons (camera-normalised):

1. beads: local maxima of the projection over z; border, too close, saturated, double (a second bead in the
   window, too close for its own maximum) and too dim beads are rejected (:mod:`plexloc.calibrate.beads`); in
   several channels, channel c's beads are matched to channel 0's (a whole-frame cross-correlation of the
   projections gives the coarse offset, then nearest neighbours within 3 px) and unmatched beads are rejected;
2. windows of ``roi_px`` pixels, background per bead (median of the window's border over the third of
   the slices where it is lowest) subtracted, brightness normalised;
3. 3D sub-voxel registration to the average (two rounds, :mod:`plexloc.calibrate.register`); beads whose
   shape differs from the average are rejected as ``outlier shape``: a registration residual > 3 x the median, or
   (first registration, >= 5 beads) an anisotropic widening against the mean of the other beads, constant over the
   slices around focus, far outside the beads' spread (:func:`plexloc.calibrate.beads.pair_shape_outliers`: a
   second bead 1.2-2.5 px away that the two-spot fit missed); fewer than 5 beads left after such rejections is a
   note; ``summary['pair_shape_check']`` says whether the pair-shape check ran, on how many beads, and where it did not
   (fewer than ``PAIR_SHAPE_MIN_BEADS`` beads reached it or had their shape measured) why, in its ``note``; in
   channels c > 0 the z shift of each bead is channel 0's (the same bead), only x and y are registered;
4. centring: the average is moved laterally so that its centroid over the slices around focus sits on
   the window's central voxel (iterated, so the centroid window is centred);
4b. smoothing along z (``z_smooth``, :func:`smooth_z`; default on): every pixel's z profile of the average by
   penalised least squares (third differences), weighted by the noise of each voxel measured from the beads' spread
   about the average, the strength chosen by Stein's unbiased risk estimate from that noise (``summary['z_smoothing']``:
   the penalty and the effective degrees of freedom per profile). The spline interpolates its samples: the noise of
   an average of few or dim beads became a z-dependent bias of every fit (session 42, ``bench/spline42.py``; Gaussian
   astigmatic beads, 33 slices, fits of true-PSF emitters of 5000 photons whose CRLB is 12.2 nm; seed 1: 20 beads of
   3000 photons z RMSE 26 -> 13 nm, 5 beads 77 -> 15 nm, bright beads (2e4) 13.8 -> 12.2 nm; a noise-free stack 12.1 either
   way; true bead positions instead of the registration changed nothing: the average's noise, not the registration
   or the interpolation, was the error). ``z_smooth=0`` turns it off;
5. z = 0 (``z0_definition``): the focus of channel 0's average, defined as the z of the maximum of the
   central pixel (maximum of the cubic spline through its slices; the PSF is centred on that pixel) -- or, for an astigmatic
   PSF (second-moment widths sigma_x - sigma_y change sign with an amplitude > 20 % of the width), the
   crossing sigma_x = sigma_y nearest to that maximum;
6. every channel's volume is normalised to sum 1 over the window at z = 0 and splined;
7. several channels: bead positions (nm, each channel's own frame) from the registration shifts, an
   affine ``T_c`` (reference -> channel) by least squares (one pass dropping pairs > 3 x the median
   residual), throughput ratio = median over beads of (channel-c sum / channel-0 sum) at z = 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from plexloc.calibrate.beads import (
    PAIR_SHAPE_MIN_BEADS, PAIR_SHAPE_NAME_MIN_BEADS, WIDTH, BeadSelection, check_number, describe_rejections,
    detect_beads, detection_projection, extract_rois, pair_shape, pair_shape_outliers, rejection_advice, window_stats,
)
from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration
from plexloc.calibrate.register import average_aligned, register, shift_volume
from plexloc.errors import InputError
from plexloc.psf.check import moment_widths

__all__ = ["BeadStacks", "SplineCalibrationResult", "calibrate_spline", "fit_affine", "find_focus", "smooth_z"]


@dataclasses.dataclass
class BeadStacks:
    """The used beads of one channel, after registration.

    ``rois``: raw windows in photons ``(n, n_z, R, R)``; ``clean``: background-subtracted, normalised;
    ``origins``: ``(n, 2)`` frame (row, col) of each window's top-left pixel; ``shifts``: ``(n, 3)``
    voxel shifts onto the average; ``bg``: photons/px per bead; ``scale``: normalisation of each bead;
    ``positions_nm``: ``(n, 2)`` bead (x, y) in this channel's frame.
    """

    rois: np.ndarray
    clean: np.ndarray
    origins: np.ndarray
    shifts: np.ndarray
    bg: np.ndarray
    scale: np.ndarray
    positions_nm: np.ndarray
    residual: np.ndarray


@dataclasses.dataclass
class SplineCalibrationResult:
    calibration: PSFCalibration
    beads: list[BeadStacks]
    selections: list[BeadSelection]
    transform_residual_nm: list[np.ndarray]
    summary: dict


def _bead_background(rois: np.ndarray) -> np.ndarray:
    border = np.concatenate(
        [rois[:, :, 0, :], rois[:, :, -1, :], rois[:, :, 1:-1, 0], rois[:, :, 1:-1, -1]], axis=2
    )  # (n, z, m)
    per_slice = np.median(border, axis=2)  # (n, z)
    k = max(1, per_slice.shape[1] // 3)
    return np.median(np.sort(per_slice, axis=1)[:, :k], axis=1)


#: order of the differences that the z smoothing penalises (3: a quadratic along z is not smoothed; measured against 2 in
#: bench/spline42.py)
Z_SMOOTH_ORDER = 3
#: the smoothing parameters tried (times the profiles' median weight, 1 / variance), then refined around the best
_Z_SMOOTH_GRID = 10.0 ** np.arange(-3.0, 6.01, 0.5)


def _average_variance(clean: np.ndarray, shifts: np.ndarray, avg: np.ndarray) -> np.ndarray | None:
    """Noise variance of each voxel of the average of the aligned beads: the beads' spread about it over
    ``n (n - 1)`` (the variance of a mean), pooled over 3 x 3 x 3 voxels (27 (n - 1) degrees of freedom: five beads
    give the variance to ~15 %). None with fewer than two beads (no spread to measure)."""
    if len(clean) < 2:
        return None
    ss = np.zeros(avg.shape)
    cnt = np.zeros(avg.shape)
    for st, sh in zip(clean, shifts):
        moved, valid = shift_volume(st, sh)
        ss += np.where(valid, (moved - avg) ** 2, 0.0)
        cnt += valid
    ok = cnt >= 2
    var = np.where(ok, ss / np.maximum(cnt * (cnt - 1), 1.0), 0.0)
    num = ndimage.uniform_filter(var, 3, mode="nearest")
    den = ndimage.uniform_filter(ok.astype(np.float64), 3, mode="nearest")
    pooled = num / np.maximum(den, 1e-12)
    if not np.any(pooled > 0):
        return None
    floor = 1e-6 * float(np.median(pooled[pooled > 0]))
    return np.maximum(pooled, floor)


def smooth_z(volume: np.ndarray, variance: np.ndarray, lam: float | None = None, *, order: int = Z_SMOOTH_ORDER
             ) -> tuple[np.ndarray, dict]:
    """Penalised least squares along z of every pixel's profile (a Whittaker smoother, the discrete P-spline):
    ``f = argmin sum_k w_k (y_k - f_k)^2 + lam m sum (Delta^order f)^2``, ``w = 1 / variance`` (the measured noise of
    each voxel), ``m`` the median weight. ``lam`` None: the one value for all pixels that minimises Stein's unbiased
    risk estimate (SURE) summed over them, ``sum w (y - f)^2 - N + 2 tr(H)`` -- an unbiased estimate of the weighted
    squared error of the smoothed volume against the noise-free one, given the noise variance; 0: no smoothing.

    Returns ``(smoothed volume, info)``; info: ``lam``, ``dof`` (mean effective degrees of freedom per profile,
    ``tr(H)``, of ``n_z``), ``sure`` against ``sure_none`` (no smoothing, = N) -- per voxel."""
    if lam is not None:
        check_number("lam (the z smoothing's penalty)", lam, low=0)
    check_number("order", order, low=1, integer=True)
    vol = np.asarray(volume, np.float64)
    nz = vol.shape[0]
    y = vol.reshape(nz, -1).T
    w = 1.0 / np.asarray(variance, np.float64).reshape(nz, -1).T
    m = float(np.median(w))
    D = np.eye(nz)
    for _ in range(order):
        D = np.diff(D, axis=0)
    P = D.T @ D
    eye = np.eye(nz)

    def fit(lv: float):
        H = np.linalg.solve(w[:, :, None] * eye + (lv * m) * P, w[:, :, None] * eye)  # (pixels, nz, nz)
        f = np.einsum("pij,pj->pi", H, y)
        tr = float(np.trace(H, axis1=1, axis2=2).sum())
        return f, tr, float(np.sum(w * (y - f) ** 2) - y.size + 2.0 * tr)

    if lam is None:
        scores = {float(v): fit(float(v))[2] for v in _Z_SMOOTH_GRID}
        best = min(scores, key=scores.get)
        for v in best * 10.0 ** np.array([-0.375, -0.25, -0.125, 0.125, 0.25, 0.375]):
            scores[float(v)] = fit(float(v))[2]
        lam = min(scores, key=scores.get)
    if lam <= 0:
        return vol.copy(), {"lam": 0.0, "dof": float(nz), "sure": 1.0, "sure_none": 1.0}
    f, tr, sure = fit(float(lam))
    info = {"lam": float(lam), "dof": tr / len(y), "sure": sure / y.size, "sure_none": 1.0, "order": order}
    return f.T.reshape(vol.shape), info


def astigmatic_foci_nm(channel: ChannelCalibration, dz_nm: float) -> tuple[float, float]:
    """z (nm, the calibration's z) at which a calibrated PSF is narrowest along x and along y (second moments, over
    the slices whose central pixel holds a fifth of its brightest or more): for an astigmatic PSF, where the
    cylindrical lens focuses each axis."""
    vol = np.asarray(channel.volume, np.float64)
    sx, sy = moment_widths(vol)
    cy, cx = vol.shape[1] // 2, vol.shape[2] // 2
    curve = vol[:, cy, cx]
    ks = np.flatnonzero(curve >= 0.2 * curve.max())
    kx, ky = ks[np.argmin(sx[ks])], ks[np.argmin(sy[ks])]
    return (float(kx) - channel.z0_voxel) * dz_nm, (float(ky) - channel.z0_voxel) * dz_nm


def find_focus(volume: np.ndarray) -> tuple[float, str, np.ndarray]:
    """``(z0_voxel, definition, central_curve)`` of a centred PSF volume (see the module docstring)."""
    nz, ny, nx = volume.shape
    cy, cx = ny // 2, nx // 2
    curve = volume[:, cy, cx].astype(np.float64)
    k = int(np.argmax(curve))
    # maximum of the cubic spline through the central pixel (the spline model's own central pixel)
    fine = np.linspace(max(0, k - 1), min(nz - 1, k + 1), 201)
    z_peak = float(fine[np.argmax(CubicSpline(np.arange(nz), curve)(fine))])
    # astigmatism: second-moment widths per slice
    sx, sy = moment_widths(volume)
    diff = sx - sy
    lo, hi = max(0, k - nz // 3), min(nz, k + nz // 3 + 1)
    d = diff[lo:hi]
    amp = (d.max() - d.min()) / max(float(np.mean((sx + sy)[lo:hi]) / 2), 1e-9)
    crossings = np.flatnonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)
    if amp > 0.2 and len(crossings):
        zc = [lo + i + d[i] / (d[i] - d[i + 1]) for i in crossings]
        z0 = float(min(zc, key=lambda z: abs(z - z_peak)))
        return z0, "astigmatism crossing sigma_x = sigma_y (second moments) of channel 0", curve
    return z_peak, "maximum of the central pixel of channel 0's spline (PSF centred on a pixel)", curve


def _centre(clean: np.ndarray, shifts: np.ndarray, focus_slice: int | None, n_iter: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Adjust the lateral shifts so that the average's centroid around focus is the central voxel."""
    R = clean.shape[-1]
    c = (R - 1) / 2
    avg = average_aligned(clean, shifts)
    for _ in range(n_iter):
        k = int(np.argmax(avg[:, R // 2, R // 2])) if focus_slice is None else focus_slice
        sl = avg[max(0, k - 2) : k + 3].sum(axis=0)
        r = max(2, R // 4)
        win = np.clip(sl[R // 2 - r : R // 2 + r + 1, R // 2 - r : R // 2 + r + 1], 0, None)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        cy = c + float((win * yy).sum() / win.sum())
        cx = c + float((win * xx).sum() / win.sum())
        delta = np.array([0.0, c - cy, c - cx])
        shifts = shifts + delta
        avg = average_aligned(clean, shifts)
        if np.max(np.abs(delta)) < 1e-3:
            break
    return shifts, avg


def _register_all(
    clean: np.ndarray, *, z_shifts: np.ndarray | None, rounds: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    n = len(clean)
    fixed = (z_shifts is not None, False, False)
    shifts = np.zeros((n, 3))
    if z_shifts is not None:
        shifts[:, 0] = z_shifts
    ref = clean[int(np.argmax([c.max() for c in clean]))] if z_shifts is None else average_aligned(clean, shifts)
    resid = np.zeros(n)
    for _ in range(rounds):
        for i in range(n):
            start = None if z_shifts is None else np.array([z_shifts[i], 0.0, 0.0])
            if start is not None:  # coarse lateral start from the integer cross-correlation of projections
                start[1:] = _lateral_start(ref, clean[i])
            shifts[i], resid[i] = register(ref, clean[i], start=start, fixed=fixed)
        if z_shifts is None:
            shifts -= np.median(shifts, axis=0)  # the average stays near the windows' middle
        ref = average_aligned(clean, shifts)
    return shifts, resid


def _lateral_start(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    a, b = ref.sum(axis=0), mov.sum(axis=0)
    shape = [2 * n for n in a.shape]
    cc = np.fft.irfftn(np.fft.rfftn(a, shape, axes=range(len(shape))) * np.conj(np.fft.rfftn(b, shape, axes=range(len(shape)))), shape, axes=range(len(shape)))
    p = np.array(np.unravel_index(np.argmax(cc), cc.shape), dtype=np.float64)
    return np.where(p > np.array(shape) / 2, p - np.array(shape), p)


def fit_affine(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affine 3x3 ``T`` with ``dst ~ T src`` (homogeneous, nm) by least squares, one pass of outlier
    removal (residual > max(3 x median, 1 nm)). Returns ``(T, residual_nm per pair, used mask)``."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    if len(src) < 3:
        raise InputError(f"an affine transform needs >= 3 beads matched in both channels, got {len(src)}")
    A = np.column_stack([src, np.ones(len(src))])
    used = np.ones(len(src), bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(A[used], dst[used], rcond=None)
        res = np.linalg.norm(A @ coef - dst, axis=1)
        new = res <= max(3 * np.median(res[used]), 1.0)
        if new.sum() < 3 or (new == used).all():
            break
        used = new
    T = np.eye(3)
    T[:2, :] = coef.T
    return T, res, used


def _match(ref_rc: np.ndarray, ch_rc: np.ndarray, offset: np.ndarray, max_px: float = 3.0) -> np.ndarray:
    """Index into ``ch_rc`` of each reference bead (-1: none within ``max_px`` after ``offset``)."""
    out = np.full(len(ref_rc), -1)
    if len(ch_rc) == 0:
        return out
    d = np.linalg.norm((ref_rc[:, None, :] + offset) - ch_rc[None, :, :], axis=2)
    for i in range(len(ref_rc)):
        j = int(np.argmin(d[i]))
        if d[i, j] <= max_px and int(np.argmin(d[:, j])) == i:
            out[i] = j
    return out


def _frame_offset(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(row, col) integer offset of ``b``'s content relative to ``a`` (projections)."""
    shape = [2 * n for n in a.shape]
    a = a - np.median(a)
    b = b - np.median(b)
    cc = np.fft.irfftn(np.conj(np.fft.rfftn(a, shape, axes=range(len(shape)))) * np.fft.rfftn(b, shape, axes=range(len(shape))), shape, axes=range(len(shape)))
    p = np.array(np.unravel_index(np.argmax(cc), cc.shape), dtype=np.float64)
    return np.where(p > np.array(shape) / 2, p - np.array(shape), p)


def _sum_at(volume: np.ndarray, z: float) -> float:
    sums = volume.sum(axis=(1, 2))
    return float(np.interp(z, np.arange(len(sums)), sums))


def calibrate_spline(
    stacks: Sequence[np.ndarray],
    *,
    z_step_nm: float,
    px_size_nm: float | tuple[float, float],
    roi_px: int = 15,
    raw_stacks: Sequence[np.ndarray] | None = None,
    saturation_adu: float | None = None,
    dim_fraction: float = 0.3,
    min_distance_px: int | None = None,
    sources: Sequence[str] = (),
    z_smooth: float | None = None,
    exclude_px: Sequence[Sequence[int]] = (),
) -> SplineCalibrationResult:
    """Calibrate one spline PSF per channel from bead z-stacks (photons, ``(n_z, H, W)`` each).

    ``exclude_px``: (row, col) pixels of channel 0's beads to leave out (``--exclude-bead``), each within 2 px of a
    detected bead's pixel (a bead named as a possible pair in a warning); reason ``excluded``.
    ``z_smooth``: None (default) smooths the averaged bead along z with the strength chosen from the beads' measured
    noise (:func:`smooth_z`); 0 keeps the plain average; a positive value is the penalty (times the median weight).
    ``z_step_nm`` and ``px_size_nm`` (one, or x and y) in nm, > 0; ``roi_px`` an odd integer >= 7; ``saturation_adu``
    (raw ADU) > 0; ``dim_fraction`` in [0, 1); ``min_distance_px`` an integer >= 0 (see
    :func:`plexloc.calibrate.beads.detect_beads`).

    Raises:
        InputError: an option out of its range, NaN or infinite (named, with the value), stacks of different
            shapes, too few slices, a blank (constant), dark or repeated slice (named), beads that are streaks in every slice
            (the stack's axes in another order), no usable bead (with the count of each rejection reason), a focus
            at the end of the stack or an implausible axial PSF size (a wrong ``z_step_nm``), fewer than 3 beads
            matched between channels.
    """
    stacks = [np.asarray(s, dtype=np.float64) for s in stacks]
    src = list(sources) + [f"channel {c}" for c in range(len(sources), len(stacks))]
    if not stacks:
        raise InputError("no bead stack given")
    check_number("z_step_nm (--z-step)", z_step_nm, low=0, low_open=True)
    px_values = [px_size_nm] if np.ndim(px_size_nm) == 0 else list(np.asarray(px_size_nm, dtype=object).ravel())
    if len(px_values) not in (1, 2):
        raise InputError(f"px_size_nm must be one pixel size or (x, y) in nm, got {px_size_nm!r}")
    for v in px_values:  # a negative or NaN pixel put every bead position and the PSF's scale checks off
        check_number("px_size_nm (--pixel-size)", v, low=0, low_open=True)
    px = (float(px_values[0]), float(px_values[-1]))
    check_number("roi_px", roi_px, integer=True)
    if roi_px < 7 or roi_px % 2 == 0:
        raise InputError(f"roi_px must be odd and >= 7, got {roi_px}")
    roi_px = int(roi_px)
    if z_smooth is not None:  # a negative or NaN strength was taken as "off" without a word
        try:
            check_number("z_smooth", z_smooth, low=0)
        except InputError:
            raise InputError(f"z_smooth must be None (auto: chosen from the beads' noise), 0 (off) or a finite number "
                             f"> 0 (the penalty), got {z_smooth!r}") from None
    for c, s in enumerate(stacks):
        if s.ndim != 3:
            raise InputError(f"a bead z-stack must be 3-D (z, rows, cols), got shape {s.shape}", source=src[c])
        if s.shape != stacks[0].shape:
            raise InputError(
                f"stack shape {s.shape} differs from channel 0's {stacks[0].shape}; every channel needs the same "
                "slices and frame size",
                source=src[c],
            )
    if stacks[0].shape[0] < MIN_SLICES:
        raise too_few_slices(stacks[0].shape[0], z_step_nm, needs="the spline along z needs them", source=src[0])
    raws = list(raw_stacks) if raw_stacks is not None else stacks
    if len(raws) != len(stacks) or any(np.shape(r) != s.shape for r, s in zip(raws, stacks)):
        raise InputError(f"raw_stacks must hold one stack of each channel's shape {stacks[0].shape}, got "
                         f"{[np.shape(r) for r in raws]} for {len(stacks)} channel(s)")
    for c, s in enumerate(stacks):
        flat = np.flatnonzero(np.ptp(s.reshape(len(s), -1), axis=1) == 0)
        if len(flat):  # a dropped frame written as a constant: its beads vanish for one z and bend every curve
            # the value as the file holds it (raw ADU where given): the photons after the camera's conversion of a
            # blank frame of 100 ADU read "-0.00222222", of 0 ADU "-16.6689"
            value = (f"{float(np.asarray(raws[c])[flat[0]].flat[0]):g} ADU" if raw_stacks is not None
                     else f"{s[flat[0]].flat[0]:g}")
            raise InputError(
                f"slice(s) {', '.join(map(str, flat[:10]))}{' ...' if len(flat) > 10 else ''} of {len(s)} hold one "
                f"constant value ({value}): a dropped or blank frame, no bead image; retake the stack "
                "(removing the slice would shift every later slice's z)",
                source=src[c],
            )
        _refuse_repeated_slices(np.asarray(raws[c]), src=src[c])
    half = roi_px // 2
    # 1. detection and rejection per channel
    sels = [
        detect_beads(
            s, roi_px=roi_px, raw=r, saturation_adu=saturation_adu, dim_fraction=dim_fraction, min_distance_px=min_distance_px
        )
        for s, r in zip(stacks, raws)
    ]
    _exclude(sels[0], exclude_px, src=src[0])
    for c, sel in enumerate(sels):
        _refuse_streaks(stacks[c], sel, roi_px=roi_px, src=src[c])
        if len(sel.used) == 0:
            why = _none_found(stacks[c]) if len(sel.rows) == 0 else rejection_advice(sel)
            raise InputError(f"no beads left: {describe_rejections(sel)}{why}", source=src[c])
    stalls: list[str] = []
    for c, sel in enumerate(sels):
        _refuse_dark_slices(stacks[c], sel, roi_px=roi_px, src=src[c])
        stalls += _stalled_slices(stacks[c], sel, roi_px=roi_px, src=src[c])
    # matching: channel c's bead for each used channel-0 bead
    ref_rc = np.column_stack([sels[0].rows, sels[0].cols]).astype(float)
    partner = [np.arange(len(ref_rc))]
    offsets = [np.zeros(2)]
    keep = sels[0].reason == ""
    for c in range(1, len(stacks)):
        off = _frame_offset(stacks[0].max(axis=0), stacks[c].max(axis=0))
        ch_used = sels[c].used
        ch_rc = np.column_stack([sels[c].rows[ch_used], sels[c].cols[ch_used]]).astype(float)
        m = _match(ref_rc, ch_rc, off)
        partner.append(np.where(m >= 0, ch_used[np.maximum(m, 0)], -1))
        offsets.append(off)
        unmatched = keep & (m < 0)
        sels[0].reason[unmatched] = f"unmatched in channel {c}"
        # its bead in channel c found but rejected there (too close, saturated, ...): said, not only "unmatched" (whose
        # fix, the stacks' order, misled where the order was right)
        all_rc = np.column_stack([sels[c].rows, sels[c].cols]).astype(float)
        for i in np.flatnonzero(unmatched):
            d = np.linalg.norm(ref_rc[i] + off - all_rc, axis=1) if len(all_rc) else np.zeros(0)
            j = int(np.argmin(d)) if len(d) else -1
            if j >= 0 and d[j] <= 3.0 and sels[c].reason[j] != "":
                sels[0].detail[int(i)] = (f"its bead in channel {c} ({src[c]}), pixel (row, col) ({sels[c].rows[j]}, "
                                          f"{sels[c].cols[j]}), was rejected there: {sels[c].reason[j]}"
                                          f"{': ' + sels[c].detail[j] if j in sels[c].detail else ''}")
        keep &= m >= 0
    used0 = np.flatnonzero(keep)
    if len(used0) == 0:
        raise InputError(
            f"no beads left: {describe_rejections(sels[0])} (channel 0); beads are matched within 3 px after a "
            f"whole-frame offset of {offsets[-1].tolist()} px{rejection_advice(sels[0])}",
            source=src[0],
        )
    used0, notes = _screen_beads(stacks[0], sels[0], used0, roi_px=roi_px, px=px, src=src[0])
    notes = stalls + notes
    # 2.-4. windows, registration (channel 0 first: outlier beads are dropped and it is redone), centring
    beads: list[BeadStacks] = []
    volumes = []
    z_shifts = None
    pair_checked, n_shape = False, 0
    # the pair-shape check's fate, for the summary: it needs PAIR_SHAPE_MIN_BEADS beads with a measured shape, and it
    # did not run below that without a word (the user took the beads as checked)
    pair_check: dict = {"ran": False, "min_beads": int(PAIR_SHAPE_MIN_BEADS), "n_beads": int(len(used0)),
                        "n_measured": 0, "n_rejected": 0,
                        "reason": f"{len(used0)} bead(s) reached it, it needs {PAIR_SHAPE_MIN_BEADS}"}
    smoothing: list[dict] = []
    suspects: list[str] = []  # beads that look double where too few were left to reject them
    for c in range(len(stacks)):
        while True:
            idx = partner[c][used0]
            rows, cols = sels[c].rows[idx], sels[c].cols[idx]
            rois = extract_rois(stacks[c], rows, cols, roi_px)
            bg = _bead_background(rois)
            sub = rois - bg[:, None, None, None]
            scale = np.clip(sub, 0, None).max(axis=(1, 2, 3)).clip(1e-9) if c == 0 else beads[0].scale
            clean = sub / scale[:, None, None, None]
            shifts, resid = _register_all(clean, z_shifts=z_shifts)
            if c > 0 or len(used0) < 3:
                break
            limit = max(3 * float(np.median(resid)), 0.05)
            bad = resid > limit
            for i in np.flatnonzero(bad):
                sels[0].detail[int(used0[i])] = (f"registration residual {resid[i]:.3f} of the average's norm > "
                                                 f"{limit:.3f} (3 x the beads' median)")
            if not pair_checked:  # once, on the first registration: a double bead widens along its pair's axis
                pair_checked = True
                pair_check["n_beads"] = int(len(used0))
                pair_check["reason"] = f"{len(used0)} bead(s) reached it, it needs {PAIR_SHAPE_MIN_BEADS}"
                if len(used0) >= PAIR_SHAPE_NAME_MIN_BEADS:  # (3, under PAIR_SHAPE_MIN_BEADS: rejects from 5)
                    v, se = pair_shape(clean, shifts, bg, scale, sels[0].noise_factor)
                    measured = int(np.sum(np.isfinite(v).all(axis=1) & np.isfinite(se)))
                    pair_check["n_measured"] = measured
                if len(used0) >= PAIR_SHAPE_MIN_BEADS:
                    if measured >= PAIR_SHAPE_MIN_BEADS:
                        pair_check.update(ran=True, reason="")
                    else:  # pair_shape_outliers rejects none then
                        pair_check["reason"] = (f"its shape was measured for {measured} of {len(used0)} beads (fewer "
                                                f"than 2 slices around focus in the window), it needs "
                                                f"{PAIR_SHAPE_MIN_BEADS}")
                    pair_bad, details = pair_shape_outliers(v, se)
                    pair_check["n_rejected"] = int(np.sum(pair_bad))
                    for i in np.flatnonzero(pair_bad & ~bad):
                        sels[0].detail[int(used0[i])] = details[i]
                    bad |= pair_bad
                elif len(used0) >= PAIR_SHAPE_NAME_MIN_BEADS:
                    # too few beads to reject on their spread, but a bead far outside it is named: the user can look
                    named, details = pair_shape_outliers(v, se, min_beads=PAIR_SHAPE_NAME_MIN_BEADS)
                    pair_check["named"] = [[int(sels[0].rows[used0[i]]), int(sels[0].cols[used0[i]])]
                                           for i in np.flatnonzero(named)]
                    # several channels: the pixel is channel 0's (what --exclude-bead takes), its stack named
                    of = "" if len(stacks) == 1 else " of channel 0" + ("" if src[0] == "channel 0" else f" ({src[0]})")
                    for i in np.flatnonzero(named):
                        suspects.append(
                            f"the bead{of} at pixel (row, col) ({sels[0].rows[used0[i]]}, "
                            f"{sels[0].cols[used0[i]]}) may be "
                            f"two beads: {details[i]}. With {len(used0)} beads it is kept (beads are rejected for their "
                            f"shape from {PAIR_SHAPE_MIN_BEADS}, whose spread is known well enough): look at it in the "
                            "stack; a pair in the average biases z. If it is one, calibrate again without it "
                            f"(--exclude-bead {sels[0].rows[used0[i]]} {sels[0].cols[used0[i]]}), or take a stack "
                            "with more single beads")
            if not bad.any():
                break
            sels[0].reason[used0[bad]] = "outlier shape"
            n_shape += int(bad.sum())
            used0 = used0[~bad]
        if c == 0:
            z_shifts = shifts[:, 0].copy()
        shifts, avg = _centre(clean, shifts, None)
        if c > 0:
            shifts[:, 0] = z_shifts
            avg = average_aligned(clean, shifts)
        if z_smooth is None or z_smooth > 0:
            var = _average_variance(clean, shifts, avg)
            if var is not None:
                avg, info = smooth_z(avg, var, z_smooth)
                # "auto": chosen by SURE (the leave-one-bead-out check chooses it again from the other beads' noise)
                smoothing.append({"channel": c, **info, "auto": z_smooth is None})
        origins = np.column_stack([rows - half, cols - half])
        pos = np.column_stack([(cols - shifts[:, 2] + 0.5) * px[0], (rows - shifts[:, 1] + 0.5) * px[1]])
        beads.append(BeadStacks(rois, clean, origins, shifts, bg, scale, pos, resid))
        volumes.append(avg)
    if n_shape and len(used0) < PAIR_SHAPE_MIN_BEADS:
        notes.append(f"only {len(used0)} bead(s) left after {n_shape} were rejected as outlier shape ("
                     f"{describe_rejections(sels[0])}): a calibration from so few beads is noisy (z = 0, the PSF's "
                     "tails) and cannot be checked for double beads; take a stack with more single beads")
    if pair_check.get("named"):  # it did not reject, but it named beads (the warnings): no "did not run"
        pair_check["note"] = (
            f"the double-bead shape check rejects beads from {PAIR_SHAPE_MIN_BEADS}: {pair_check['reason']}; it named "
            f"{len(pair_check['named'])} bead(s) that look double (the warnings above) and kept them: take a stack with "
            f"{PAIR_SHAPE_MIN_BEADS} or more single beads")
    elif "named" in pair_check:  # 3-4 beads: it ran to name beads and named none (it said "did not run")
        pair_check["note"] = (
            f"the double-bead shape check rejects beads from {PAIR_SHAPE_MIN_BEADS}: {pair_check['reason']}; with "
            f"{pair_check['n_beads']} it only names beads that look double and named none, but among so few beads it "
            "misses some pairs closer than ~2 px (the two-spot fit misses them too): take a stack with "
            f"{PAIR_SHAPE_MIN_BEADS} or more single beads")
    elif not pair_check["ran"]:  # a check not made, not a finding: kept out of the warnings, printed as a note
        pair_check["note"] = (
            f"the double-bead shape check did not run: {pair_check['reason']} (it measures each bead's widening along "
            "any axis against the other beads' median and spread). A second bead within ~2 px that the two-spot fit "
            "misses ('second bead in window' finds pairs from ~2 px) stays in the average and biases z: take a stack "
            f"with {PAIR_SHAPE_MIN_BEADS} or more single beads")
    notes += suspects
    notes += _drift_note(volumes[0], z_step_nm=z_step_nm, px=px)
    res = _finish(volumes, beads, sels, z_step_nm=z_step_nm, px=px, src=src, n_slices=stacks[0].shape[0], notes=notes)
    res.summary["z_smoothing"] = smoothing
    res.summary["pair_shape_check"] = pair_check
    return res


#: how far (px, in rows and in columns) an ``exclude_px`` pixel may lie from the detected bead's pixel it names
EXCLUDE_REACH_PX = 2


def _exclude(sel: BeadSelection, pixels, *, src: str) -> None:
    """Mark the beads of ``sel`` at ``pixels`` ((row, col), each within :data:`EXCLUDE_REACH_PX` of a bead's pixel) as
    ``excluded``; an :class:`InputError` for a pixel that names no bead, with the nearest beads' pixels."""
    for p in pixels:
        try:
            r, c = (int(v) for v in p)
        except (TypeError, ValueError):
            raise InputError(f"exclude_px must hold (row, col) pixels, got {p!r}") from None
        near = np.flatnonzero((np.abs(sel.rows - r) <= EXCLUDE_REACH_PX) & (np.abs(sel.cols - c) <= EXCLUDE_REACH_PX))
        if len(near) == 0:
            order = np.argsort(np.hypot(sel.rows - r, sel.cols - c))[:3]
            nearest = ", ".join(f"({sel.rows[i]}, {sel.cols[i]})" for i in order) or "none: no bead was found"
            raise InputError(f"--exclude-bead {r} {c}: no bead found within {EXCLUDE_REACH_PX} px of pixel (row, col) "
                             f"({r}, {c}); the nearest beads are at {nearest}", source=src)
        i = int(near[np.argmin(np.hypot(sel.rows[near] - r, sel.cols[near] - c))])
        if sel.reason[i] == "":
            sel.reason[i] = "excluded"
            sel.detail[i] = f"--exclude-bead {r} {c}"


#: the beads' (median) smallest elongation over the slices near focus above which the stack's axes are taken to be in
#: another order: a focused bead is round in some slice (1.00-1.06 for Gaussian, astigmatic and scalar-pupil beads,
#: bright and dim, 20-50 nm steps, with stage drift), a stack saved as rows x slices x columns shows streaks (2.9-3.2
#: in a 15 px window)
STREAK_ELONGATION = 2.0


def _elongation(window: np.ndarray, bg: float) -> float:
    """The smallest elongation (square root of the ratio of the second moments' principal values, of the pixels above
    a fifth of the slice's highest) of one bead's window ``(n_z, R, R)`` over its slices whose centre holds half its
    brightest or more (three-slice running mean, background ``bg`` subtracted)."""
    mean = ndimage.uniform_filter1d(np.asarray(window, np.float64), 3, axis=0, mode="nearest") - bg
    R = mean.shape[-1]
    c = R // 2
    centre = mean[:, c - 1 : c + 2, c - 1 : c + 2].max(axis=(1, 2))
    yy, xx = np.mgrid[:R, :R].astype(np.float64)
    best = np.inf
    for k in np.flatnonzero(centre >= 0.5 * centre.max()):
        img = mean[k]
        w = np.where(img > 0.2 * img.max(), img, 0.0)
        tot = w.sum()
        if not tot > 0:
            continue
        mx, my = (w * xx).sum() / tot, (w * yy).sum() / tot
        cxx, cyy = (w * (xx - mx) ** 2).sum() / tot, (w * (yy - my) ** 2).sum() / tot
        cxy = (w * (xx - mx) * (yy - my)).sum() / tot
        lo, hi = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
        best = min(best, float(np.sqrt(hi / max(lo, 1e-9))))
    return best


def _refuse_streaks(stack: np.ndarray, sel: BeadSelection, *, roi_px: int, src: str) -> None:
    """An :class:`InputError` where the detected beads (those whose window lies inside the frame) are streaks in every
    slice near their focus (median elongation above ``STREAK_ELONGATION``): the stack's axes are not (slices, rows,
    columns). Such a stack said "0 found ... beads too dim", or, once its streaks were detected, was calibrated with
    z = 0 at a slice of noise (leave-one-bead-out z RMSE 370 nm), or had its streaks rejected as double beads."""
    inside = np.flatnonzero(sel.reason != "border")
    if len(inside) == 0:
        return
    rois = extract_rois(stack, sel.rows[inside], sel.cols[inside], roi_px)
    elong = np.array([_elongation(r, b) for r, b in zip(rois, _bead_background(rois))])
    elong = elong[np.isfinite(elong)]
    if len(elong) == 0 or float(np.median(elong)) <= STREAK_ELONGATION:
        return
    n, h, w = np.shape(stack)
    raise InputError(
        f"the {len(elong)} bead(s) found are streaks, not spots, in every slice near their focus (elongation "
        f"{float(np.median(elong)):.1f} : 1, median over the beads; a bead is round in some slice, also an astigmatic "
        f"one): the stack, read as {n} slices of {h} x {w} px (rows x columns), has its axes in another order; check "
        "that its axes are (slices, rows, columns) (a stack saved as rows x slices x columns shows each bead as a "
        "streak along z), and save it so",
        source=src,
    )


#: a slice whose beads hold less than this share of the light of the slices beside it (the smaller of the two sides)
#: is a dark or dropped frame; the beads' light in their windows changes by a few % from one slice to the next
DARK_SLICE_SHARE = 0.5
#: the slices on each side a slice's light is compared with (the brightest of them): a run of up to this many dark
#: slices is found, each member of it seeing a lit slice on either side within reach
DARK_SLICE_REACH = 5


def _refuse_dark_slices(stack: np.ndarray, sel: BeadSelection, *, roi_px: int, src: str) -> None:
    """An :class:`InputError` naming the slices in which the used beads hold less than ``DARK_SLICE_SHARE`` of their
    light in the slices beside them (summed over the beads' windows, their background subtracted; on each side the
    brightest of the :data:`DARK_SLICE_REACH` nearest slices, and of the two sides the dimmer): a frame taken with the
    shutter closed or the laser off, which is noise, not a constant (that is refused before), and was calibrated
    without a word: one dark slice of 33 took the leave-one-bead-out z RMSE from 6.9 to 118 nm. Compared with the
    next slice alone on each side (session 46), two dark slices in a row each had a dark neighbour and were calibrated
    without a word."""
    used = sel.used
    if len(used) == 0:
        return
    rois = extract_rois(stack, sel.rows[used], sel.cols[used], roi_px)
    light = (rois - _bead_background(rois)[:, None, None, None]).sum(axis=(0, 2, 3))  # (n_z,)
    # and far outside the noise of that sum (from its second differences along z, robustly): a single dim bead's
    # window sum scatters by tens of % from slice to slice
    d2 = light[:-2] - 2.0 * light[1:-1] + light[2:]
    noise = 1.4826 * float(np.median(np.abs(d2))) / np.sqrt(6.0) if len(d2) else 0.0
    n, reach = len(light), DARK_SLICE_REACH
    found = np.zeros(n, bool)
    while True:  # the dark slices found are no light beside another (the first two slices dark: the second is named)
        lit = np.where(found, -np.inf, light)
        before = np.array([_brightest(lit[max(0, k - reach):k]) for k in range(n)])
        after = np.array([_brightest(lit[k + 1:k + 1 + reach]) for k in range(n)])
        beside = np.minimum(before, after)
        # judged on one side only (at an end of the stack): dark only where the slice falls far below the fade
        # that side's light follows towards the end, not where the beads fade out of their windows (a biplane channel
        # focused off the stack's centre: its first slices hold no light and the next ones rise slowly; a stack of
        # +-1200 nm at NA 1.49: the end slices hold 31 % of the light at focus, 20-25 % less from slice to slice)
        one_sided = np.isinf(before) | np.isinf(after)
        fade = np.array([_fade_expected(lit, k, noise, reach, forward=bool(np.isinf(before[k]))) if one_sided[k]
                         else np.inf for k in range(n)])
        stepped = ~one_sided | ((light < DARK_SLICE_SHARE * fade) & (fade - light > 8.0 * noise))
        more = (beside > 0) & (light < DARK_SLICE_SHARE * beside) & (beside - light > 8.0 * noise) & stepped
        if not (more & ~found).any():
            break
        found |= more
    dark = np.flatnonzero(found)
    if len(dark) == 0:
        return
    shares = ", ".join(f"{k}: {max(light[k], 0.0) / beside[k]:.0%}" for k in dark[:10])
    raise InputError(
        f"slice(s) {', '.join(map(str, dark[:10]))}{' ...' if len(dark) > 10 else ''} of {len(stack)} hold much less "
        f"of the beads' light than the slices beside them (each one's share of the light beside it, over the "
        f"{len(used)} beads: {shares}): a dark or dropped frame (the shutter closed, the laser off), no bead image; "
        "retake the stack (removing the slice would shift every later slice's z)",
        source=src,
    )


def _refuse_repeated_slices(raw: np.ndarray, *, src: str) -> None:
    """An :class:`InputError` naming the slices that repeat the slice before them pixel for pixel: a frame the camera
    or the acquisition software delivered twice. No two exposures agree in every pixel (their noise differs), and the
    calibration took the copy as the next z, so every later slice's z was one step off without a word."""
    flat = raw.reshape(len(raw), -1)
    same = [k + 1 for k in range(len(flat) - 1) if np.array_equal(flat[k], flat[k + 1])]
    if same:
        raise InputError(
            f"slice(s) {', '.join(map(str, same[:10]))}{' ...' if len(same) > 10 else ''} of {len(raw)} repeat the slice "
            "before them pixel for pixel: a frame saved twice (the camera or the acquisition software repeated it), not "
            "an image of the next z; retake the stack (removing the copy would shift every later slice's z)",
            source=src,
        )


#: a step between two slices changes the beads' windows by less than this share of the change of the steps beside it
#: (both well above the noise) while its own change is within the noise: the stage did not move (a stalled piezo or a
#: missed trigger). Measured (session 47, with STALL_BESIDE 6): no false note on 54 stacks of 16 astigmatic or
#: defocus-symmetric Gaussian beads (Poisson noise, 2e3-1e5 photons, 10-50 nm steps) nor on 36 of
#: bench/bead_stall.py (EMCCD noise, astigmatic Gaussian and pupil-model beads); a stall named where the steps change
#: the beads well beyond the noise (bright beads, 20-50 nm steps: 2e4 photons at 50 nm under Poisson noise, 1e5 at
#: 20-50 nm under an EMCCD's), unseen where a step changes them within it (dim beads, 10 nm steps). The change is
#: measured with the beads' lateral shift between the slices taken out (:func:`_step_changes`): a stage drifting in x/y
#: by a few nm per slice, or jumping 15 nm, changed the steps beside a quiet one far beyond the noise, and 14 of 104
#: stacks of 5-50 nm steps without a stall were told one (2 with the shift taken out, 0 with the steps around required
#: beyond STALL_BESIDE too; bench/bead_stall.py: stalls found 12 of 36, 11 before; tests/test_review47b.py)
STALL_SHARE = 0.2
#: ... and the steps beside it change them by more than this many times the noise (the standard deviation of the
#: measured change of a step that changes nothing)
STALL_BESIDE = 6.0


def _step_changes(rois: np.ndarray) -> np.ndarray | None:
    """The change of the beads' windows ``(n_beads, n_z, R, R)`` (photons) at each step between slices, ``(n_z - 1,)``,
    in units of the noise (0 for noise alone): the mean over the beads' inner pixels (3 from the edge) of
    ``(b - a)^2 / (a + b)`` (1 for Poisson noise alone), divided by the same over the windows' border pixels (which
    carries an EMCCD's excess noise alike), less 1. Each bead's lateral shift between the two slices is taken out first
    (the least-squares fit of ``b - a`` by the gradients of their mean, weighted by the noise): a stage's x/y drift
    moves the beads without a step in z. None where the border holds no noise."""
    a, b = rois[:, :-1], rois[:, 1:]
    var = np.maximum(np.abs(a) + np.abs(b), 1.0)
    edge = np.ones(rois.shape[2:], bool)
    edge[1:-1, 1:-1] = False
    noise = float(np.median(((b - a) ** 2 / var)[:, :, edge].mean(axis=(0, 2))))
    if not noise > 0:
        return None
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    gy, gx = (g[inner] for g in np.gradient(0.5 * (a + b), axis=(2, 3)))
    d, w = (b - a)[inner], 1.0 / var[inner]
    sxx, syy, sxy = ((w * u * v).sum(axis=(2, 3)) for u, v in ((gx, gx), (gy, gy), (gx, gy)))
    bx, by = (w * gx * d).sum(axis=(2, 3)), (w * gy * d).sum(axis=(2, 3))
    det = sxx * syy - sxy**2
    ok = det > 1e-12 * np.maximum(sxx * syy, 1e-300)
    det = np.where(ok, det, 1.0)
    cx = np.where(ok, (syy * bx - sxy * by) / det, 0.0)[..., None, None]
    cy = np.where(ok, (sxx * by - sxy * bx) / det, 0.0)[..., None, None]
    n_in = d.shape[-1] * d.shape[-2]  # the fit takes 2 of each window's n_in terms of noise: scaled back
    q = ((d - cx * gx - cy * gy) ** 2 * w).mean(axis=(2, 3)) * n_in / (n_in - 2)
    return q.mean(axis=0) / noise - 1.0


def _stalled_slices(stack: np.ndarray, sel: BeadSelection, *, roi_px: int, src: str) -> list[str]:
    """A note naming the slices that show the beads as the slice before them did, within the noise, where the steps
    beside change them far beyond it: the stage stalled, so the slices after it were taken one step short of the z the
    calibration gives them. The change of a step: :func:`_step_changes`."""
    used = sel.used
    inner = roi_px - 6
    if len(used) == 0 or inner < 3 or len(stack) < 4:
        return []
    change = _step_changes(extract_rois(stack, sel.rows[used], sel.cols[used], roi_px))
    if change is None:
        return []
    sd = float(np.sqrt(2.0 / (len(used) * inner * inner)))  # of a mean of that many chi-square(1) terms
    typical = float(np.median(change))
    found = []
    for k in range(1, len(change) - 1):
        beside = min(change[k - 1], change[k + 1])
        # the steps around (5 on each side, their median) change the beads far beyond the noise too: a step within it
        # between two that a lateral jump of the stage changed (15 nm) is no stall where the z steps change them less
        around = float(np.median(np.concatenate([change[max(0, k - 5):k], change[k + 1:k + 6]])))
        if change[k] < 3.0 * sd and beside > STALL_BESIDE * sd and change[k] < STALL_SHARE * beside \
                and beside > 0.5 * typical and around > STALL_BESIDE * sd:
            found.append(k)
    if not found:
        return []
    said = ", ".join(f"{k + 1} ({change[k] / sd:+.1f} against {min(change[k - 1], change[k + 1]) / sd:.0f} times the "
                     "noise)" for k in found[:10])
    return [f"{src}: slice(s) {said} show the beads as the slice before them did, within the noise, while the steps "
            "beside change them far beyond it: the stage may have stalled there (a missed trigger or a piezo that did "
            "not step), and every later slice would then sit one step short of its z; check the stage's z log or "
            "retake the stack"]


def _fade_expected(lit: np.ndarray, k: int, noise: float, reach: int, *, forward: bool) -> float:
    """The light slice ``k`` at an end of the stack (or beside dark slices found there) would hold if the beads faded
    towards that end as they do on its lit side (after it where ``forward``): the first slice within
    :data:`DARK_SLICE_REACH` holding at least twice slice ``k``'s light and 8 x ``noise`` more (the slices between
    are dark with ``k`` or on the fade), carried back to ``k`` at its ratio to the slice beyond it (at most 1: no rise
    towards the end). A dark slice holds far less than that; a fading one about as much. Compared with the brightest
    of the slices within reach instead (session 46), beads fading out of their windows by 20-25 % from slice to slice
    (the vectorial PSF of an NA 1.49 objective, 160 nm pixels, 100 nm steps, +-1200 nm) were refused as dark at the
    first two slices (37 %, 45 % of the brightest five slices away)."""
    step = 1 if forward else -1
    own = max(float(lit[k]), 0.0)
    for d in range(1, reach + 1):
        m = k + step * d
        if not 0 <= m < len(lit):
            break
        if np.isfinite(lit[m]) and lit[m] >= 2.0 * own and lit[m] - own > 8.0 * noise:
            beyond = m + step
            ratio = 1.0
            if 0 <= beyond < len(lit) and np.isfinite(lit[beyond]) and lit[beyond] > 0:
                ratio = min(1.0, max(float(lit[m]), 0.0) / float(lit[beyond]))
            return float(lit[m]) * ratio**d
    return np.inf  # no lit slice within reach: judged on the light beside it alone


def _brightest(light: np.ndarray) -> float:
    """The largest of ``light`` (slices beside one, the dark ones found as -inf); inf where there is none: no side."""
    top = float(light.max()) if len(light) else -np.inf
    return top if top > -np.inf else np.inf


def _none_found(stack: np.ndarray, threshold_sigma: float = 8.0) -> str:
    """Why no bead was found (``no beads left: 0 found`` said nothing more): the brightest spot of the stack's maximum
    projection against the detection threshold (:func:`plexloc.calibrate.beads.detect_beads`), in photons above the
    median."""

    proj, med, thr = detection_projection(stack, threshold_sigma)
    peak = float(proj.max())
    n_slices = np.shape(stack)[0]
    return (f"; no spot of the maximum projection over the {n_slices} slices rises above the detection threshold "
            f"(the brightest, smoothed, is {peak - med:.3g} photons above the projection's median, the threshold "
            f"{threshold_sigma:g} x its noise = {thr - med:.3g}): no beads in the field, "
            "beads too dim for the exposure, or the wrong camera settings (--camera: baseline, gain)")


#: combined in-focus SNR (root sum of squares over the used beads) below which a calibration is refused, and below
#: which it is warned of. Four beads of SNR 4.5 / 8 / 13 / 20 each (combined 9 / 16 / 26 / 40; astigmatic Gaussian
#: beads, bg 100 photons) put the crossing (z = 0) 100-200 / 40-75 / 20-40 / 8 nm off; bright beads < 2 nm.
MIN_SNR, WARN_SNR = 15.0, 40.0
#: a bead whose in-focus width is this much (relative) away from the median bead's is rejected as ``outlier width``
WIDTH_TOLERANCE = 0.25


def _screen_beads(stack, sel: BeadSelection, used: np.ndarray, *, roi_px, px, src) -> tuple[np.ndarray, list[str]]:
    """Channel 0's used beads: in-focus widths (an aggregate or a tilted/defect bead is wider: rejected with its
    width and the median's) and the combined signal-to-noise (too dim: an error naming each bead's SNR)."""
    from plexloc.evaluate.uncertainty import robust_sd

    notes: list[str] = []
    rois = extract_rois(stack, sel.rows[used], sel.cols[used], roi_px)
    bg = _bead_background(rois)
    widths, snr, _ = window_stats(rois, bg)
    scale = float(np.sqrt(px[0] * px[1]))
    ok = np.isfinite(widths)
    if ok.sum() >= 3:
        med = float(np.median(widths[ok]))
        mad = robust_sd(widths[ok])
        tol = max(WIDTH_TOLERANCE * med, 4.0 * mad)
        bad = ok & (np.abs(widths - med) > tol)
        for i in np.flatnonzero(bad):
            sel.reason[used[i]] = WIDTH
            sel.detail[int(used[i])] = (
                f"in-focus width (Gaussian sigma) {widths[i] * scale:.0f} nm against the beads' median {med * scale:.0f} "
                f"nm (> {tol / med:.0%} off: an aggregate, a bead off the coverslip or a speck)")
        used, snr = used[~bad], snr[~bad]
    elif ok.sum() == 2 and abs(np.log(widths[0] / widths[1])) > np.log1p(WIDTH_TOLERANCE):
        notes.append(f"the two beads' in-focus widths differ: {widths[0] * scale:.0f} and {widths[1] * scale:.0f} nm (beads "
                     f"at pixel ({sel.rows[used[0]]}, {sel.cols[used[0]]}) and ({sel.rows[used[1]]}, {sel.cols[used[1]]})); "
                     "with two beads the aggregate cannot be told: use a stack with more beads")
    total = float(np.sqrt(np.sum(snr**2)))
    per = ", ".join(f"({sel.rows[u]}, {sel.cols[u]}): {v:.1f}" for u, v in list(zip(used, snr))[:8]) + (" ..." if len(used) > 8 else "")
    if total < MIN_SNR:
        raise InputError(
            f"the beads are too dim to calibrate: in-focus peak SNR (peak / sqrt(peak + background), photons) per bead "
            f"at pixel (row, col) {per}; combined over {len(used)} bead(s) {total:.1f} < {MIN_SNR:g}, which leaves z = 0 "
            "uncertain by ~100 nm: take the stack with more light or a longer exposure, or with more beads",
            source=src,
        )
    if total < WARN_SNR:
        notes.append(f"dim beads: combined in-focus SNR {total:.1f} over {len(used)} bead(s) (per bead {per}) is below "
                     f"{WARN_SNR:g}: z = 0 may be off by 10-70 nm; more light or more beads make it exact")
    return used, notes


#: lateral motion (nm) of the averaged bead's centre over its in-focus range above which the calibration warns
DRIFT_WARN_NM = 30.0


def _drift_note(volume: np.ndarray, *, z_step_nm: float, px) -> list[str]:
    """The centre of the averaged bead (elliptical Gaussian fits) through the slices where its central pixel is
    above 30 % of its peak: a linear motion of more than ``DRIFT_WARN_NM`` is stage drift during the stack (or a
    tilted PSF), which the spline keeps as a z-dependent lateral shift of every localization."""
    from scipy.optimize import least_squares

    from plexloc.calibrate.beads import _gaussian

    nz, R, _ = volume.shape
    c = R // 2
    curve = volume[:, c - 1 : c + 2, c - 1 : c + 2].max(axis=(1, 2))
    ks = np.flatnonzero(curve >= 0.3 * curve.max())
    if len(ks) < 4:
        return []
    yy, xx = np.mgrid[:R, :R].astype(np.float64)
    zs, cx, cy = [], [], []
    for k in ks:
        img = np.asarray(volume[k], np.float64)
        p0 = [float(img.max()), float(c), float(c), np.log(1.5), np.log(1.5), 0.0, 0.0]
        fit = least_squares(lambda p: (_gaussian(p[:6], yy, xx) + p[6] - img).ravel(), p0, method="lm")
        if fit.success and abs(fit.x[1] - c) < R / 3 and abs(fit.x[2] - c) < R / 3:
            zs.append(k * z_step_nm)
            cx.append(fit.x[1] * px[0])
            cy.append(fit.x[2] * px[1])
    if len(zs) < 4:
        return []
    zs = np.asarray(zs)
    span = float(zs.max() - zs.min())
    move = [float(np.polyfit(zs, v, 1)[0]) * span for v in (cx, cy)]
    if max(abs(m) for m in move) <= DRIFT_WARN_NM:
        return []
    return [f"the beads' centre moves by (x, y) = ({move[0]:+.0f}, {move[1]:+.0f}) nm over the {span:.0f} nm of z "
            f"(slices {ks.min()}-{ks.max()}) where they are in focus (> {DRIFT_WARN_NM:g} nm; Gaussian fits of the averaged "
            "bead): stage drift during the stack, or a tilted PSF. The calibration keeps it as a z-dependent shift of "
            "every localization: if the stage drifted, correct the stack's drift or retake it"]


#: the fewest slices a bead z-stack may have (the spline, and the astigmatic fit, which averages the beads as it does)
MIN_SLICES = 8


def too_few_slices(n: int, z_step_nm: float, *, needs: str, source: str) -> InputError:
    """The error of a z-stack of ``n`` < :data:`MIN_SLICES` slices: the z range it covers, what ``needs`` them (the
    model calibrated: "the spline along z needs them") and the stack to take."""
    return InputError(f"a z-stack needs >= {MIN_SLICES} slices, got {n} (z {-(n - 1) / 2 * z_step_nm:+.0f} to "
                      f"{(n - 1) / 2 * z_step_nm:+.0f} nm around its middle with --z-step {z_step_nm:g} nm): {needs}; "
                      "take the stack over the z range to calibrate (usually +-600 nm or more around focus) in steps "
                      "of 10-50 nm", source=source)


#: the axial/lateral ratios (with the right step) of bead stacks at an oil objective of NA 1.4-1.49 and at a water
#: objective of NA 1.0-1.2 (or plexloc's simulated astigmatic Gaussian, 3.2-3.4), from which a ratio read says the
#: steps meant: session 49 review's probe of calibrate_spline, vectorial (psfmodels) NA 1.49 1.62-1.82, NA 1.45 2.41,
#: scalar pupil NA 1.4-1.49 1.76-2.54; water NA 1.2 3.03, NA 1.0 4.06 (the advice said "a ratio of 3 would mean a
#: step of about X", which told a right NA 1.49 stack read 1.64 to take 91 nm for 50)
RATIO_OIL, RATIO_WATER = (1.6, 2.5), (3.0, 4.1)


def _steps_meant(z_step_nm: float, ratio: float) -> str:
    """The steps that the ratio ``ratio`` read with ``z_step_nm`` would mean at real optics (:data:`RATIO_OIL`,
    :data:`RATIO_WATER`): the z of a bead image scales with the step, its width does not."""
    (o1, o2), (w1, w2) = RATIO_OIL, RATIO_WATER
    return (f"the ratio read would mean a step of about {z_step_nm * o1 / ratio:.0f}-{z_step_nm * o2 / ratio:.0f} nm "
            f"at an oil objective of NA 1.4-1.49 (which reads {o1:g}-{o2:g} x with the right step), about "
            f"{z_step_nm * w1 / ratio:.0f}-{z_step_nm * w2 / ratio:.0f} nm at a water objective of NA 1.0-1.2 or on "
            f"plexloc's simulated astigmatic Gaussian ({w1:g}-{w2:g} x)")


#: a stack that reaches less than this far (nm) on one side of focus is noted
SHORT_SIDE_NM = 500.0
#: Gaussian sigma (nm) of a bead in focus: below the first no optics can image visible light (0.21 lambda / NA with
#: 400 nm, NA 1.52: 55 nm), below the second rarely (520 nm, NA 1.49: 73 nm, more with the bead's size); above the third a bead is not in focus
SIGMA_MIN_NM, SIGMA_LOW_NM, SIGMA_HIGH_NM = 50.0, 75.0, 250.0
#: axial FWHM / lateral FWHM of a bead: a widefield PSF is >= 1.7 x longer than wide (NA -> n); 2.3-3 at NA 1.2-1.45,
#: ~3.3 for the astigmatic Gaussian of plexloc, 6 at NA 0.5 (as read from a stack, session 49: 1.6-1.8 for the vectorial
#: PSF at NA 1.49, :data:`RATIO_OIL`, :data:`AXIAL_RATIO_LOW`)
AXIAL_RATIO_MIN, AXIAL_RATIO_MAX = 1.2, 20.0
#: the ratio a bead stack at a high-NA objective rarely leaves, outside which it is warned of (--z-step 2x the step
#: taken, or 0.5x on PSFs that read high enough: not the Gaussian's, below): with the right step, astigmatic Gaussians
#: of foci +-0 to +-600 nm and depths 250-600 nm and the scalar pupil PSF read 1.81-4.88 (steps 25-100 nm); plexloc's
#: default astigmatic Gaussian read 3.2-3.4, 6.6-6.8 with --z-step twice the step and 1.6-1.7 with half of it; the pupil
#: PSF 2.5-2.8 (session 49: calibrate_spline on 9-bead Poisson stacks over +-1200 nm; bench/beads49.py: 6.74 and 1.69
#: for 2x and 0.5x, 0 of its 24 good stacks warned).
#: The low limit 1.45, not 1.7: the vectorial PSF (psfmodels, Gibson-Lanni) of an NA 1.49 oil objective, beads on the
#: coverslip in water, read 1.62-1.82 with the right step (200 nm beads, 100-160 nm pixels, 520-680 nm, steps 50-100 nm;
#: 1.72 for a point at 100 nm pixels) and were told to take a step of about 91 nm for 50 (session 49 review:
#: tests/test_beads49_review.py); the axial FWHM counts slices, +-1 slice (10 % at 50 nm steps) below that. So 0.5x the
#: step on plexloc's astigmatic Gaussian (1.65-1.69) is no longer told by the ratio (it overlaps right stacks)
AXIAL_RATIO_LOW, AXIAL_RATIO_HIGH = 1.45, 6.0


def _scale_checks(volume, z0, *, fwhm_nm, slices, z_step_nm, px, src) -> list[str]:
    """--pixel-size and --z-step against the physics of a bead image: its in-focus lateral width (nm) and the
    ratio of its axial to its lateral extent. Errors where no objective could give them, notes where unusual."""
    zk = int(round(z0))
    lo = max(0, zk - 4)
    w, _, _ = window_stats(volume[None, lo : zk + 5], np.zeros(1))
    sigma_nm = float(w[0]) * float(np.sqrt(px[0] * px[1]))
    if not np.isfinite(sigma_nm):
        return []
    lat_fwhm = 2.355 * sigma_nm
    ratio = fwhm_nm / lat_fwhm
    size = f"--pixel-size {px[0]:g} nm" if px[0] == px[1] else f"--pixel-size {px[0]:g} x {px[1]:g} nm"
    if sigma_nm < SIGMA_MIN_NM:
        raise InputError(
            f"the beads' in-focus width (Gaussian sigma) is {sigma_nm:.0f} nm with {size}: narrower than any "
            f"diffraction-limited image of visible light (>= {SIGMA_MIN_NM:g} nm): check --pixel-size (the camera "
            "pixel divided by the total magnification)",
            source=src,
        )
    if not AXIAL_RATIO_MIN <= ratio <= AXIAL_RATIO_MAX:
        raise InputError(
            f"the PSF is {fwhm_nm:.0f} nm long (axial FWHM of its central pixel, slices {slices[0]}-{slices[1]} with "
            f"--z-step {z_step_nm:g} nm) and {lat_fwhm:.0f} nm wide (lateral FWHM with {size}): {ratio:.2f} x longer "
            f"than wide, where a bead image is {AXIAL_RATIO_MIN:g}-{AXIAL_RATIO_MAX:g} x ({RATIO_OIL[0]:g}-"
            f"{RATIO_WATER[1]:g} at objectives of NA 1.0-1.49): "
            f"check --z-step ({_steps_meant(z_step_nm, ratio)}) and --pixel-size",
            source=src,
        )
    notes = []
    if not AXIAL_RATIO_LOW <= ratio <= AXIAL_RATIO_HIGH:
        # a z step given 2x the step taken wrote a calibration whose every z was twice the true one without a word
        # (the refusal above holds 1.2-20, what no objective gives)
        notes.append(
            f"the PSF is {fwhm_nm:.0f} nm long (axial FWHM of its central pixel, slices {slices[0]}-{slices[1]} with "
            f"--z-step {z_step_nm:g} nm) and {lat_fwhm:.0f} nm wide: {ratio:.2f} x longer than wide, where bead stacks "
            f"at a high-NA objective read {AXIAL_RATIO_LOW:g}-{AXIAL_RATIO_HIGH:g} x (1.6-4.9 for the PSFs tried, "
            "astigmatic or not, vectorial or Gaussian): every z of the calibration scales with --z-step, so check it (the stage step between "
            f"slices; {_steps_meant(z_step_nm, ratio)}) and --pixel-size")
    if sigma_nm < SIGMA_LOW_NM:
        notes.append(f"the beads' in-focus width (Gaussian sigma) is only {sigma_nm:.0f} nm with {size} (green light at "
                     "NA 1.49: ~73 nm): check --pixel-size")
    elif sigma_nm > SIGMA_HIGH_NM:
        notes.append(f"the beads' in-focus width (Gaussian sigma) is {sigma_nm:.0f} nm with {size}, wider than a "
                     f"focused bead (~70-150 nm): check --pixel-size, or the beads are aggregates or never in focus")
    return notes


def _finish(volumes, beads, sels, *, z_step_nm, px, src, n_slices, notes=()) -> SplineCalibrationResult:
    nz = n_slices
    z0, definition, curve = find_focus(volumes[0])
    if z0 < 2 or z0 > nz - 3:
        raise InputError(
            f"the focus of channel 0 lies at slice {z0:.1f} of {nz}, at the end of the stack: the stack must extend "
            "on both sides of focus (check the stack, that its axes are (slices, rows, columns), and --z-step)",
            source=src[0],
        )
    notes = list(notes)
    above = np.flatnonzero(curve >= 0.5 * curve.max())
    fwhm_nm = (above.max() - above.min() + 1) * z_step_nm
    lateral_fwhm_nm = 2.355 * 0.21 * 600.0 / 1.5  # rough in-focus scale of a high-NA objective, for the sanity check
    if not 0.5 * lateral_fwhm_nm <= fwhm_nm <= 20 * lateral_fwhm_nm:
        # the step that would make the PSF about 3x longer than its measured width (as _scale_checks says): a step
        # given 10x too large named no value to try, where one 10x too small did
        w, _, _ = window_stats(volumes[0][None, max(0, int(round(z0)) - 4) : int(round(z0)) + 5], np.zeros(1))
        lat = 2.355 * float(w[0]) * float(np.sqrt(px[0] * px[1]))
        likely = (f" (a PSF 3x longer than its {lat:.0f} nm width would mean a step of about "
                  f"{z_step_nm * 3.0 * lat / fwhm_nm:.0f} nm)" if np.isfinite(lat) and lat > 0 else "")
        raise InputError(
            f"the axial extent (FWHM) of the PSF is {fwhm_nm:.0f} nm with --z-step {z_step_nm:g} nm; a bead PSF is "
            f"{0.5 * lateral_fwhm_nm:.0f}-{20 * lateral_fwhm_nm:.0f} nm long: check --z-step{likely}",
            source=src[0],
        )
    notes += _scale_checks(volumes[0], z0, fwhm_nm=fwhm_nm, slices=(above.min(), above.max()), z_step_nm=z_step_nm,
                           px=px, src=src[0])
    lo, hi = -z0 * z_step_nm, (nz - 1 - z0) * z_step_nm
    if min(-lo, hi) < SHORT_SIDE_NM:
        notes.append(f"the stack covers z = {lo:.0f} to {hi:+.0f} nm around the focus (slice {z0:.1f} of {nz}): the "
                     f"calibration holds only there (a 3D calibration usually spans +-{SHORT_SIDE_NM:.0f} nm or more); "
                     "localizations beyond it are extrapolated (astigmatic) or clipped to the stack's ends (spline)")
    channels = []
    residuals = []
    summary: dict = {"n_beads_used": [], "rejected": [], "z0_definition": definition, "warnings": notes,
                     "z_range_nm": [lo, hi], "rejected_beads": [], "used_beads": []}
    for c, (vol, b) in enumerate(zip(volumes, beads)):
        norm = _sum_at(vol, z0)
        if not norm > 0:
            raise InputError(f"the averaged PSF of channel {c} sums to {norm} at focus", source=src[c])
        volume = (vol / norm).astype(np.float32)
        focus_c = find_focus(volume)[0] if c else z0
        T = np.eye(3)
        ratio = 1.0
        if c > 0:
            if len(b.positions_nm) < 3:  # what left so few (--exclude-bead, rejections) and the fix, not fit_affine's count
                raise InputError(
                    f"an affine transform from channel 0 to channel {c} needs >= 3 beads used in both channels, got "
                    f"{len(b.positions_nm)} ({describe_rejections(sels[0])}, channel 0){rejection_advice(sels[0])}",
                    source=src[0])
            T, res, _ = fit_affine(beads[0].positions_nm, b.positions_nm)
            residuals.append(res)
            sums = []
            for i in range(len(b.rois)):
                m0, _ = shift_volume(beads[0].rois[i] - beads[0].bg[i], beads[0].shifts[i])
                mc, _ = shift_volume(b.rois[i] - b.bg[i], b.shifts[i])
                sums.append(_sum_at(mc, z0) / max(_sum_at(m0, z0), 1e-30))
            # both channels' volumes are normalised at z = 0 over their windows: the ratio of the raw sums
            ratio = float(np.median(sums))
        channels.append(
            ChannelCalibration(
                volume=volume,
                x0_voxel=(volume.shape[2] - 1) / 2,
                y0_voxel=(volume.shape[1] - 1) / 2,
                z0_voxel=z0,
                transform_nm=T,
                throughput_ratio=ratio,
                focus_offset_nm=(focus_c - z0) * z_step_nm,
                n_beads_used=len(b.rois),
                source=src[c],
            )
        )
        summary["n_beads_used"].append(len(b.rois))
        summary["rejected"].append({"found": len(sels[c].rows), **sels[c].counts()})
        sc = sels[c]
        summary["rejected_beads"].append([
            {"row": int(sc.rows[i]), "col": int(sc.cols[i]), "reason": str(sc.reason[i]),
             **({"detail": sc.detail[int(i)]} if int(i) in sc.detail else {})}
            for i in np.flatnonzero(sc.reason != "")])
        # every bead used, where it is and how far its focus lies from the average's: a lab checks its beads against the
        # stack (a tilted coverslip is a z offset growing across the field); PSF.json listed only the rejected ones
        centre = np.asarray(b.origins, np.int64) + b.rois.shape[-1] // 2  # (row, col) of the bead's pixel
        summary["used_beads"].append([
            {"row": int(r), "col": int(cc), "x_nm": float(x), "y_nm": float(y), "z_offset_nm": float(sh[0]) * float(z_step_nm)}
            for (r, cc), (x, y), sh in zip(centre, b.positions_nm, b.shifts)])
    cal = PSFCalibration(channels=channels, px_size_nm=px, dz_nm=float(z_step_nm), z0_definition=definition, inputs=src)
    return SplineCalibrationResult(cal, beads, sels, residuals, summary)
