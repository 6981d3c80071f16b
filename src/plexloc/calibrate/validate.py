"""Fitting bead windows with a calibration, and the leave-one-bead-out self-consistency of a calibration.

:func:`fit_windows` fits every window (one per bead and slice) with the project's MLE fitter
(:func:`plexloc.mle.fit_rois`): the calibrated spline of each channel, the channels' transforms, linked
photons split by the throughput ratios, one background per channel, and the cameras' noise model.

:func:`leave_one_bead_out`: for each bead, the PSFs (and transforms) are rebuilt from the *other* beads,
and every slice of the left-out bead's stack is fitted; its z is compared with the slice's stage z
shifted by the bead's own z offset (from the registration), its x, y with its registered position. The other
beads' average is smoothed along z as the calibration's was (``summary['z_smoothing']``: the same penalty, or with
``auto`` the one that Stein's unbiased risk estimate chooses from the other beads' own spread), so that the check
measures the PSF that was written (until session 43 it fitted the unsmoothed average: the z smoothing, on or off,
left the printed z RMSE as it was).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from plexloc.calibrate.fileformat import PSFCalibration
from plexloc.calibrate.register import average_aligned
from plexloc.calibrate.spline import SplineCalibrationResult, _average_variance, _sum_at, fit_affine, smooth_z

__all__ = ["fit_windows", "leave_one_bead_out"]


def _fit_channels(psfs, transforms, ratios):
    from plexloc.mle import FitChannel
    from plexloc.mle.models import roi_model_for

    total = float(sum(ratios))
    return [
        FitChannel(
            model=roi_model_for(p),
            transform=None if c == 0 else torch.as_tensor(np.asarray(t), dtype=torch.float64),
            fraction=float(r) / total,
        )
        for c, (p, t, r) in enumerate(zip(psfs, transforms, ratios))
    ]


def fit_windows(
    psfs: Sequence,
    transforms: Sequence[np.ndarray],
    ratios: Sequence[float],
    rois: Sequence[np.ndarray],
    origins: np.ndarray,
    *,
    cameras: Sequence | None = None,
    crop: int = 1,
):
    """MLE fit of one emitter per window (``crop`` pixels cut from each side first).

    Args:
        psfs: one :class:`~plexloc.psf.PSF` per channel; transforms: ``T_c`` (3x3, nm); ratios: throughput ratios.
        rois: per channel ``(N, R, R)`` windows in photons; origins: ``(N, C, 2)`` frame (row, col) of each
            window's top-left pixel.
        cameras: per channel, for the noise model (default pure Poisson).

    Returns:
        :class:`plexloc.mle.FitResult` (positions in reference nm).
    """
    from plexloc.mle import fit_rois
    from plexloc.mle.fit import noise_terms

    channels = _fit_channels(psfs, transforms, ratios)
    # the spline covers n - 1 pixels of an n-pixel calibration window: fit 1 px inside it, so that every
    # fitted pixel is modelled (a window pixel the model does not reach would be predicted as background only)
    t_rois = [torch.as_tensor(np.asarray(r)[:, crop:-crop, crop:-crop], dtype=torch.float32) for r in rois]
    origins = np.asarray(origins) + crop
    k = off = None
    if cameras is not None:
        k, off = [], []
        for cam, r in zip(cameras, t_rois):
            kc, oc = noise_terms(cam.noise_variance_photons, r[:1])
            k.append(kc if kc.ndim == 0 else kc.expand_as(r))
            off.append(oc if oc.ndim == 0 else oc.expand_as(r))
    return fit_rois(
        t_rois, channels, origins=torch.as_tensor(np.asarray(origins), dtype=torch.int64), k=k, offset=off, linked=True
    )


def calibration_psfs(cal: PSFCalibration) -> list:
    return [cal.psf(c) for c in range(cal.n_channels)]


def leave_one_bead_out(
    result: SplineCalibrationResult,
    *,
    cameras: Sequence | None = None,
    z_limit_nm: float = 600.0,
    max_beads: int = 8,
    build_psf=None,
) -> dict:
    """Self-consistency of a calibration (see the module docstring).

    Returns a dict: ``z_bias_nm``, ``z_rmse_nm``, ``xy_bias_nm`` ([x, y]), ``xy_rmse_nm``, ``n_fits``, and per
    fitted slice ``stage_z_nm``, ``fit_z_nm``, ``bead`` (lists, for the z-calibration figure). Only slices with
    ``|z| <= z_limit_nm`` are fitted, for at most ``max_beads`` beads (spread over the brightness order).
    ``build_psf(volume, z0_voxel, dz_nm, px_size_nm)`` replaces the spline of the other beads' average by
    another model (e.g. :func:`plexloc.calibrate.astigmatic.astigmatic_builder`).
    """
    from plexloc.psf.spline import SplinePSF

    cal = result.calibration
    beads = result.beads
    C = cal.n_channels
    n = len(beads[0].rois)
    if n < 2:
        return {"z_bias_nm": None, "z_rmse_nm": None, "xy_bias_nm": None, "xy_rmse_nm": None, "z_limit_nm": None,
                "n_fits": 0, "note": f"leave-one-bead-out validation skipped: it needs at least 2 beads, {n} used"}
    dz = cal.dz_nm
    z0 = cal.channels[0].z0_voxel
    R = beads[0].rois.shape[-1]
    c_vox = (R - 1) / 2
    nz = beads[0].rois.shape[1]
    stage, fit_z, true_z, dx, dy, who = [], [], [], [], [], []
    k_all = np.arange(nz)
    smoothing = {int(e["channel"]): e for e in result.summary.get("z_smoothing", [])}
    for i in np.unique(np.linspace(0, n - 1, min(n, max_beads)).round().astype(int)):
        zt = (k_all - z0 + beads[0].shifts[i, 0]) * dz
        k = k_all[np.abs(zt) <= z_limit_nm]
        if len(k) == 0:
            continue
        zt = zt[k]
        others = np.array([j for j in range(n) if j != i])
        psfs, transforms = [], []
        for c in range(C):
            b = beads[c]
            vol = average_aligned(b.clean[others], b.shifts[others])
            sm = smoothing.get(c)
            if sm is not None and (sm.get("auto") or sm.get("lam", 0.0) > 0):  # the written PSF was smoothed along z
                var = _average_variance(b.clean[others], b.shifts[others], vol)
                if var is not None:
                    vol = smooth_z(vol, var, None if sm.get("auto") else float(sm["lam"]))[0]
            vol = vol / _sum_at(vol, z0)
            if build_psf is not None:
                psfs.append(build_psf(vol, z0, dz, cal.px_size_nm))
            else:
                psfs.append(SplinePSF.from_volume(vol, dz_nm=dz, px_size_nm=cal.px_size_nm, center=(z0, c_vox, c_vox)))
            transforms.append(
                np.eye(3) if c == 0 else fit_affine(beads[0].positions_nm[others], b.positions_nm[others])[0]
            )
        ratios = [ch.throughput_ratio for ch in cal.channels]
        rois = [beads[c].rois[i][k] for c in range(C)]
        origins = np.stack([np.broadcast_to(beads[c].origins[i], (len(k), 2)) for c in range(C)], axis=1)
        fit = fit_windows(psfs, transforms, ratios, rois, origins, cameras=cameras)
        stage.append((k - z0) * dz)
        true_z.append(zt)
        fit_z.append(fit.z_nm.numpy())
        dx.append(fit.x_nm.numpy() - beads[0].positions_nm[i, 0])
        dy.append(fit.y_nm.numpy() - beads[0].positions_nm[i, 1])
        who.append(np.full(len(k), i))
    stage, fit_z, true_z = np.concatenate(stage), np.concatenate(fit_z), np.concatenate(true_z)
    dx, dy, who = np.concatenate(dx), np.concatenate(dy), np.concatenate(who)
    sel = np.abs(true_z) <= z_limit_nm
    err = fit_z[sel] - true_z[sel]
    return {
        "z_bias_nm": float(np.mean(err)),
        "z_rmse_nm": float(np.sqrt(np.mean(err**2))),
        "xy_bias_nm": [float(np.mean(dx[sel])), float(np.mean(dy[sel]))],
        "xy_rmse_nm": [float(np.sqrt(np.mean(dx[sel] ** 2))), float(np.sqrt(np.mean(dy[sel] ** 2)))],
        "z_limit_nm": float(z_limit_nm),
        "n_fits": int(sel.sum()),
        "stage_z_nm": stage.tolist(),
        "true_z_nm": true_z.tolist(),
        "fit_z_nm": fit_z.tolist(),
        "bead": who.tolist(),
    }


def fit_beads_at(
    cal: PSFCalibration, stacks: Sequence[np.ndarray], positions_nm: Sequence[np.ndarray], *, cameras=None, roi_px: int | None = None
):
    """Fit every slice of beads whose positions are known (``positions_nm[c]``: (n, 2) x, y in channel c's
    frame) in stacks (photons, ``(n_z, H, W)`` per channel) with the calibration ``cal``.

    Windows of ``roi_px`` (default the calibration's window) are centred on each bead's pixel. Returns the
    :class:`plexloc.mle.FitResult` of the ``n * n_z`` windows, bead-major (bead i, slice k at ``i * n_z + k``).
    """
    from plexloc.calibrate.beads import extract_rois

    R = roi_px or cal.channels[0].volume.shape[-1]
    half = R // 2
    nz = stacks[0].shape[0]
    rois, orgs = [], []
    for c in range(cal.n_channels):
        px = cal.px_size_nm
        rc = np.column_stack(
            [np.floor(positions_nm[c][:, 1] / px[1]), np.floor(positions_nm[c][:, 0] / px[0])]
        ).astype(int)
        rois.append(extract_rois(stacks[c], rc[:, 0], rc[:, 1], R).reshape(-1, R, R))
        orgs.append(np.repeat(rc - half, nz, axis=0))
    return fit_windows(
        calibration_psfs(cal),
        [ch.transform_nm for ch in cal.channels],
        [ch.throughput_ratio for ch in cal.channels],
        rois,
        np.stack(orgs, axis=1),
        cameras=cameras,
    )
