"""Maximum-likelihood refinement of another localizer's table, with every neighbour in the model.

A network trained on the simulator finds emitters that overlap, but where its positions are well above the
Cramér-Rao bound (a small model, or a setting it cannot beat the single-frame bound in: emitters that are on for
one frame only) a maximum-likelihood fit from its estimates can bring them down to the bound. A plain fit of one
emitter per window is biased by the light of the neighbours, so here each window's expected image is

    mu = the emitter being fitted + background + sum over the other localizations of the frame near it

with the neighbours held at their current estimates (the table's, then the previous round's): the data and the
model of :func:`plexloc.mle.fit.fit_rois` get the neighbours' expected photons as a known, per-pixel term.

A refit is kept only where it converged (or converged with z held on its bound: an emitter at the edge of the z range;
a refit with its photons, position or width on a bound is not kept: :data:`plexloc.mle.fit.AT_BOUND_BITS`; before,
such refits of an untrained network's rows were kept with 1 photon and a sigma_x of 20 um) and stayed near its start: within ``max_shift_px`` / ``max_shift_z_nm``, and,
where the table has ``sigma_*_nm``, with a shift consistent with the table's and the fit's uncertainties (a chi-square
test, ``shift_pvalue``); other rows keep the table's values. On seed 002's quad-plane setting at 0.331/um^2
(bench/RESULTS.md, 2026-12-04) that test kept 88 % of the refits and turned a lateral RMSE of 14.9 nm with every refit
kept into 8.7 nm (the network's: 9.8); the refits it drops are pulled onto an emitter that the table missed.
Last, the model has to explain the pixels that hold the fitted emitter's light (``fit_pvalue``, :func:`core_deviance`):
a refit pulled by an emitter missing from the table, or beside a neighbour far off, fails that chi-square test. On the
same setting (bench/RESULTS.md, 2026-12-04, second section) it dropped 7 % of the refits, most of them 18-24x off their
CRLB (z-score sd), and took the refined table's z-score sd from 4.4 / 5.6 (x / z) to 1.6 / 1.3. Refined rows get the CRLB at the
fit as ``crlb_*`` and as their ``sigma_*_nm`` (an efficient estimate's error is its bound), with the nearest
neighbours' positions and photons free in it (:func:`joint_covariance`; the fit held them at their estimates, whose
errors move it where spots overlap), the window's ``llr`` and ``roi_px``, and the refit's detection test ``spot_llr``
and ``p_spot`` (:func:`plexloc.mle.fit.spot_pvalue`, as the MLE fitter's rows have them); column ``refined`` (1 / 0)
says which rows changed.

A refined row's ``spot_llr`` is twice the log-likelihood ratio of its refit against the window's background alone,
where both models hold the light of the frame's other localizations at their estimates (the known per-pixel term above):
it tests this emitter given its neighbours, not whether the window holds light at all. Its null is that of an isolated
window when the neighbours' estimates are right; their errors are not in it, and a row with nothing under it beside a
bright emitter is then judged significant more often than the p-value says (bench/refine_significance43.py: of such
refined phantom rows 0-0.6 % had ``p_spot`` < 0.01 in 2D, but 3-29 % in 3D, astigmatic, beside 2,000-5,000-photon
emitters; on pure noise 0-1.3 %, and with every converged refit kept, 0.4-1.5 %, the fitter's null).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from plexloc.mle.detection import Candidates
from plexloc.mle.fit import AT_BOUND_BITS, NOT_CONVERGED_BOUNDS, _Problem, fit_rois
from plexloc.table import LocTable

def _photons_per_channel(table: LocTable, n_channels: int, fractions: list[float], linked: bool) -> np.ndarray:
    """(N, P) photon parameters of the fitter: the total (linked) or one count per channel."""
    if linked:
        return np.asarray(table["photons"], np.float64)[:, None]
    cols = [f"photons_ch{c}" for c in range(n_channels)]
    if all(c in table for c in cols):
        return np.stack([np.asarray(table[c], np.float64) for c in cols], axis=1)
    total = np.asarray(table["photons"], np.float64)
    return total[:, None] * np.asarray(fractions)[None, :]


def _pairs(frame: np.ndarray, row: np.ndarray, col: np.ndarray, reach_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i != j, of the same frame with the larger of the row and column distances below ``reach_px``."""
    from scipy.spatial import cKDTree

    if len(frame) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gap = 4.0 * (max(row.max(), col.max()) + 2 * reach_px + 1.0)  # frames far apart along a third axis
    pts = np.stack([frame.astype(np.float64) * gap, row.astype(np.float64), col.astype(np.float64)], axis=1)
    pairs = cKDTree(pts).query_pairs(reach_px, p=np.inf, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return i.astype(np.int64), j.astype(np.int64)


#: pixels whose expected photons from the fitted emitter are at least this share of its photons make its core
CORE_SHARE = 0.002


def others_images(problem: _Problem, theta_abs: Tensor, frame: Tensor, n_frames: int, frame_shape: tuple[int, int]) -> Tensor:
    """(N, C, R, R): in every window, the expected photons of all the other localizations of its frame (no background).

    The sum over every pair of a frame within reach of the partner's image in the window, in O(N) instead of O(pairs): each
    localization is drawn once, on a window of 2 R - 1 pixels around its own (R pixels of light on either side, as far
    as a pair reaches), onto a canvas of its frame per channel padded by R // 2 pixels; each window is then cut from
    the canvas and its own localization taken away. ``frame`` (N,): each window's frame index (0 .. n_frames - 1)."""
    n, C, R = theta_abs.shape[0], problem.C, problem.roi
    pad = R // 2
    big_r = R + 2 * pad  # 2 R - 1 for an odd R
    H, W = frame_shape[0] + 2 * pad, frame_shape[1] + 2 * pad
    dev, dtype = theta_abs.device, theta_abs.dtype
    org = problem.origins.to(dev)  # (N, C, 2): row, col of every channel's window (frame pixels)
    big = _Problem(problem.channels, big_r, linked=problem.linked, origins=org - pad, device=dev, dtype=dtype)
    th = theta_abs.clone()
    th[:, 0] -= (org[:, 0, 1] - pad).to(dtype)
    th[:, 1] -= (org[:, 0, 0] - pad).to(dtype)
    th[:, problem.i_bg :] = 0.0
    own = big.expected_photons(th, torch.arange(n, device=dev)).reshape(n, C, big_r, big_r)
    ar_big, ar = torch.arange(big_r, device=dev), torch.arange(R, device=dev)
    base = frame.to(dev)[:, None, None] * H
    out = torch.empty(n, C, R, R, device=dev, dtype=dtype)
    for c in range(C):
        # padded canvas pixel = frame pixel + pad: the big window starts at the window's origin there
        rows, cols = org[:, c, 0, None] + ar_big, org[:, c, 1, None] + ar_big
        flat = ((base + rows[:, :, None]) * W + cols[:, None, :]).reshape(-1)
        canvas = torch.zeros(n_frames * H * W, device=dev, dtype=dtype)
        canvas.index_add_(0, flat, own[:, c].reshape(-1))
        rows, cols = org[:, c, 0, None] + pad + ar, org[:, c, 1, None] + pad + ar
        cut = canvas[((base + rows[:, :, None]) * W + cols[:, None, :]).reshape(-1)].reshape(n, R, R)
        out[:, c] = cut - own[:, c, pad : pad + R, pad : pad + R]
    return out.clamp_min_(0.0)  # rounding of the subtraction


def core_deviance(problem: _Problem, theta_win: Tensor, known: Tensor | None, rois: list[Tensor], ks: list[Tensor],
                  offs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """The Poisson deviance of each window's core and the core's pixel count, both ``(N,)``.

    The core is the pixels, over all channels, that hold at least :data:`CORE_SHARE` of the fitted emitter's
    expected photons; the deviance ``2 sum (x log(x / m) - (x - m))`` is that of the effective counts (``k`` and
    offset of each channel's noise model) against the whole model: the emitter (``theta_win``, window pixels, with
    its background), plus ``known`` (the neighbours' expected photons). Where the model is right it is chi-square
    distributed with about (core pixels - the emitter's parameters) degrees of freedom; an emitter missed next to
    the fitted one, or a neighbour far off, shows as a large deviance here, where a test over the whole window
    (``llr``) is also set off by misfits far from the emitter."""
    n, C, R = theta_win.shape[0], problem.C, problem.roi
    idx = torch.arange(n, device=theta_win.device)
    no_bg = theta_win.clone()
    no_bg[:, problem.i_bg :] = 0.0
    own = problem.expected_photons(no_bg, idx).reshape(n, C, R, R)
    total = own.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    dev = torch.zeros(n, device=theta_win.device, dtype=theta_win.dtype)
    count = torch.zeros_like(dev)
    for c in range(C):
        mu = own[:, c] + theta_win[:, problem.i_bg + c, None, None]
        if known is not None:
            mu = mu + known[:, c]
        m = (ks[c] * mu + offs[c]).clamp_min(1e-6)
        x = (ks[c] * rois[c] + offs[c]).clamp_min(0.0)
        d = 2.0 * (torch.where(x > 0, x * torch.log(x.clamp_min(1e-30) / m), torch.zeros_like(x)) - (x - m))
        core = own[:, c] >= CORE_SHARE * total[:, None, None]
        dev += (d * core).sum(dim=(1, 2))
        count += core.sum(dim=(1, 2))
    return dev, count


def joint_covariance(problem: _Problem, theta_abs: Tensor, bg: Tensor, rows: Tensor, i: np.ndarray, j: np.ndarray,
                    ks: list[Tensor], offs: list[Tensor], known: Tensor | None, *, max_neighbours: int = 4,
                    chunk: int = 128) -> Tensor:
    """The Cramér-Rao covariances ``(len(rows), P, P)`` of the windows ``rows``' emitters with their nearest neighbours'
    positions and photons free too, not held at their estimates.

    A refit with its neighbours held fixed has the bound of that conditional problem, which is too small where a
    neighbour's light overlaps the emitter's: the neighbour's own estimate is uncertain, and its error moves the fit.
    Here the Fisher matrix of each window holds the emitter's parameters (and backgrounds) and, for each of its
    ``max_neighbours`` nearest paired neighbours, their positions and photons, over the window's pixels (the
    neighbours' light outside the window is not counted, so the bound errs large); the emitter's block of its inverse
    is the bound. ``theta_abs``: every window's estimates (x, y in absolute reference pixels), ``bg`` ``(N, C)``,
    ``i, j``: the pairs of windows within reach, ``known`` ``(N, C, R, R)``: the other localizations' light in each
    window at ``theta_abs`` (:func:`others_images`; ``None``: none)."""
    dev, dtype = theta_abs.device, theta_abs.dtype
    n_all, P, Q, C, R = theta_abs.shape[0], problem.P, problem.i_bg, problem.C, problem.roi
    K = max_neighbours
    # each window's K nearest neighbours (-1: none)
    nb = np.full((n_all, K), -1, np.int64)
    if len(i) and K > 0:
        t = theta_abs[:, :2].cpu().numpy()
        d = np.hypot(*(t[i] - t[j]).T)
        order = np.lexsort((d, i))
        i_s, j_s = i[order], j[order]
        first = np.searchsorted(i_s, i_s, side="left")
        rank = np.arange(len(i_s)) - first
        near = rank < K
        nb[i_s[near], rank[near]] = j_s[near]
    nb_t = torch.as_tensor(nb, device=dev)
    org = problem.origins[:, 0].to(dtype)
    dense = _Problem(problem.channels, R, linked=problem.linked, origins=problem.origins, device=dev, dtype=dtype)
    dense.separable = False  # the full Jacobian: the neighbours' columns join it
    zero = torch.zeros((), device=dev, dtype=dtype)
    out = []
    for a in range(0, len(rows), chunk):
        w = rows[a : a + chunk]
        b = len(w)
        pick = lambda t, idx: t[idx] if t.ndim == 3 else t  # noqa: E731 - per-window noise maps or scalars
        th = theta_abs[w].clone()
        th[:, 0] -= org[w, 1]
        th[:, 1] -= org[w, 0]
        th[:, problem.i_bg :] = bg[w]
        offs_w = [pick(o, w) + (pick(k, w) * known[w, c] if known is not None else 0.0) for c, (k, o) in enumerate(zip(ks, offs))]
        m, J = dense.evaluate(th, w, [pick(k, w) for k in ks], offs_w)
        J = J.dense() if hasattr(J, "dense") else J  # (b, P, C R²)
        cols = [J]
        nbw = nb_t[w]  # (b, K)
        valid = nbw >= 0
        if K > 0 and bool(valid.any()):
            ww = w.repeat_interleave(K)
            thn = theta_abs[nbw.clamp_min(0).reshape(-1)].clone()
            thn[:, 0] -= org[ww, 1]
            thn[:, 1] -= org[ww, 0]
            thn[:, problem.i_bg :] = 0.0
            _, Jn = dense.evaluate(thn, ww, [pick(k, ww) for k in ks], [zero] * C)
            Jn = (Jn.dense() if hasattr(Jn, "dense") else Jn)[:, :Q]  # positions and photons, not backgrounds
            Jn = Jn * valid.reshape(-1, 1, 1).to(dtype)
            cols.append(Jn.reshape(b, K * Q, -1))
        Jall = torch.cat(cols, dim=1)
        # the (small) matrix in float64 also on a GPU: float32 inverses were off by up to 6 % (3D, 1.5/um^2)
        F = torch.bmm(Jall / m[:, None, :], Jall.transpose(1, 2)).double()
        M = F.shape[1]
        if M > P:  # empty neighbour slots: unit diagonal, no coupling
            pad = (~valid).repeat_interleave(Q, dim=1).double()
            F[:, P:, P:] += torch.diag_embed(pad)
        scale = torch.sqrt(torch.diagonal(F, dim1=1, dim2=2).clamp_min(1e-30))
        Fn = F / scale[:, :, None] / scale[:, None, :]
        eye = torch.eye(M, device=dev, dtype=torch.float64)
        cov = torch.linalg.solve_ex(Fn + 1e-12 * eye, eye.expand_as(Fn))[0] / scale[:, :, None] / scale[:, None, :]
        out.append(cov[:, :P, :P])
    return torch.cat(out) if out else torch.zeros(0, P, P, device=dev, dtype=torch.float64)


def refine_frames(
    fitter,
    photons: Tensor,
    table: LocTable,
    *,
    frame_offset: int = 0,
    rounds: int = 2,
    max_shift_px: float = 1.0,
    max_shift_z_nm: float = 300.0,
    shift_pvalue: float | None = 0.01,
    fit_pvalue: float | None = 1e-3,
    joint_neighbours: int = 4,
    max_iter: int = 30,
    model_neighbours: bool = True,
    max_windows: int | None = None,
) -> LocTable:
    """Refine the rows of ``table`` in the photon frames ``photons`` (C, T, H, W) of frames
    ``frame_offset .. frame_offset + T - 1`` by maximum likelihood with the neighbours modelled.

    Args:
        fitter: an :class:`~plexloc.mle.MLEFitter` of the movie's configuration (PSFs, cameras, transforms).
        photons: the frames in photons (after each channel's ``camera.to_photons``), on the fitter's device.
        table: localizations of those frames (``frame, x_nm, y_nm, z_nm, photons``; ``photons_chN`` for
            independent photons); rows of other frames are returned unchanged.
        rounds: refits; each round's neighbours are the previous round's estimates (the first: the table's).
        max_shift_px, max_shift_z_nm: a refit further than this from the table's row (reference pixels, nm)
            is not kept (it was pulled onto a neighbour or onto noise).
        shift_pvalue: where the table has ``sigma_x_nm, sigma_y_nm`` (and ``sigma_z_nm`` in 3D), a refit is kept only
            if ``sum over axes (shift / sqrt(sigma² + CRLB²))²`` is below the chi-square quantile of ``1 - shift_pvalue``
            (2 or 3 degrees of freedom); ``None``: no such test.
        fit_pvalue: a refit is kept only if the model explains the pixels around its emitter: the deviance of the
            window's core (:func:`core_deviance`) below the chi-square quantile of ``1 - fit_pvalue`` with (core
            pixels - the emitter's parameters) degrees of freedom; ``None``: no such test. It drops the refits that
            an emitter missing from the table pulled off (a refined row's σ is its CRLB, which cannot know of that).
        joint_neighbours: the refined rows' CRLB (``crlb_*``, their σ) is that of the emitter with this many of its
            nearest neighbours' positions and photons free too (:func:`joint_covariance`); 0: with the neighbours
            held at their estimates, as the fit had them (too small where spots overlap).
        model_neighbours: False fits each window as if its emitter were alone (for comparison).
        max_windows: rows refined at a time (memory: each holds a window per channel, several times over); the
            frames are split into groups of at most this many rows (a frame's rows stay together: neighbours are
            within a frame), so the result does not depend on it. Default 1,024 on the CPU (the arrays stay small:
            1,435 quad-plane rows took 15.9 s in one group, 11.9 s in two), 16,384 on a GPU.

    Returns:
        The table with refined ``x_nm, y_nm, z_nm``, photons (``photons_chN``), ``crlb_x_nm, crlb_y_nm, crlb_z_nm``,
        the ``sigma_*`` columns (positions, photons) set to the CRLB where refined (``crlb_z_nm``, ``sigma_z_nm``
        NaN where the refit held z on its bound: no estimate of z, :class:`~plexloc.mle.fit.FitResult`), the
        window's ``llr`` (deviance) and ``roi_px``, the refit's ``spot_llr`` and ``p_spot`` (its emitter against the
        background with the neighbours' light in both models), and ``refined`` (1.0 / 0.0); the new columns are NaN
        on the rows not refined.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for name, p in (("shift_pvalue", shift_pvalue), ("fit_pvalue", fit_pvalue)):
        if p is not None and not 0.0 < p < 1.0:
            raise ValueError(f"{name} must be in (0, 1) or None, got {p}")
    if joint_neighbours < 0:
        raise ValueError(f"joint_neighbours must be >= 0, got {joint_neighbours}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    C, T, H, W = photons.shape
    if C != len(fitter.channels):
        raise ValueError(f"{C} channels of photons for a {len(fitter.channels)}-channel fitter")
    if fitter.roi_px > min(H, W):
        raise ValueError(f"the fitting window ({fitter.roi_px} px) is larger than the frames ({H} x {W} px)")
    n_all = len(table)
    frame_all = np.asarray(table["frame"], np.int64) - frame_offset if n_all else np.zeros(0, np.int64)
    sel = np.flatnonzero((frame_all >= 0) & (frame_all < T))
    out = {k: np.array(table[k]) for k in table.columns}  # copies; integer columns (frame, id, color) stay integer
    for k in ("x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm", "sigma_y_nm", "sigma_z_nm", "sigma_photons",
              *(f"photons_ch{c}" for c in range(photons.shape[0])), *(f"sigma_photons_ch{c}" for c in range(photons.shape[0]))):
        if k in out:
            out[k] = out[k].astype(np.float64)
    for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "llr", "spot_llr", "p_spot", "roi_px", "refined"):
        out.setdefault(k, np.full(n_all, np.nan if k != "refined" else 0.0))
    if len(sel) == 0:
        return LocTable(out)
    opts = dict(rounds=rounds, max_shift_px=max_shift_px, max_shift_z_nm=max_shift_z_nm, shift_pvalue=shift_pvalue,
                fit_pvalue=fit_pvalue, joint_neighbours=joint_neighbours, max_iter=max_iter,
                model_neighbours=model_neighbours)
    if max_windows is None:
        max_windows = 1024 if photons.device.type == "cpu" else 16384
    for part in _frame_groups(frame_all, sel, max_windows):
        _refine_rows(fitter, photons, table, out, frame_all, part, **opts)
    return LocTable(out)


def _frame_groups(frame_all: np.ndarray, sel: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """``sel`` split into runs of whole frames with at most ``max_rows`` rows each (a frame with more is alone)."""
    order = sel[np.argsort(frame_all[sel], kind="stable")]
    frames, starts = np.unique(frame_all[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    groups, cur, n = [], [], 0
    for a, b in zip(starts, ends):
        if cur and n + (b - a) > max_rows:
            groups.append(np.sort(np.concatenate(cur)))
            cur, n = [], 0
        cur.append(order[a:b])
        n += b - a
    if cur:
        groups.append(np.sort(np.concatenate(cur)))
    return groups


def _refine_rows(fitter, photons: Tensor, table: LocTable, out: dict, frame_all: np.ndarray, sel: np.ndarray, *,
                 rounds: int, max_shift_px: float, max_shift_z_nm: float, shift_pvalue: float | None,
                 fit_pvalue: float | None, joint_neighbours: int, max_iter: int, model_neighbours: bool) -> None:
    """:func:`refine_frames` on the rows ``sel`` of ``table`` (whole frames), written into the columns ``out``."""
    C, _, H, W = photons.shape
    n_all = len(table)
    dev = photons.device
    dtype = torch.float64 if dev.type == "cpu" else torch.float32
    px = fitter.config.px_size_xy_nm
    R = fitter.roi_px
    fr = [ch.fraction for ch in fitter.fit_channels]
    linked = fitter.linked
    linked_sum = sum(fr) if C > 1 else 1.0  # FitResult.photons of a linked fit: the parameter times this
    sub = table[sel] if len(sel) < n_all else table
    x_px = np.asarray(sub["x_nm"], np.float64) / px[0]
    y_px = np.asarray(sub["y_nm"], np.float64) / px[1]
    z = np.asarray(sub["z_nm"], np.float64)
    frame = frame_all[sel]
    row = np.clip(np.floor(y_px), 0, H - 1).astype(np.int64)
    col = np.clip(np.floor(x_px), 0, W - 1).astype(np.int64)
    cand = Candidates(frame, row, col, np.zeros(len(sel)))
    rois, origins, _, ks, offs = fitter.windows(photons, cand, R)
    problem = _Problem(fitter.fit_channels, R, linked=linked, origins=origins, device=dev, dtype=dtype)
    i_np, j_np = _pairs(frame, y_px, x_px, float(R)) if model_neighbours else (np.zeros(0, np.int64),) * 2
    frames_u, frame_local = np.unique(frame, return_inverse=True)  # the canvases: one per frame of the group
    frame_t = torch.as_tensor(frame_local, device=dev)

    def others(th: Tensor) -> Tensor | None:  # the other localizations' light in every window
        return others_images(problem, th, frame_t, len(frames_u), (H, W)) if model_neighbours else None

    n_ph = _photons_per_channel(sub, C, fr, linked)
    # the current estimates, x / y in absolute reference pixels
    parts = [x_px[:, None], y_px[:, None]]
    if problem.is_3d:
        parts.append(z[:, None])
    if problem.free_sigma:
        parts.append(np.ones((len(sel), 1)))
    parts += [n_ph / (linked_sum if linked else 1.0), np.zeros((len(sel), C))]
    theta = torch.as_tensor(np.concatenate(parts, axis=1), device=dev, dtype=dtype)
    start = theta.clone()
    axes = ("x", "y", "z") if problem.is_3d else ("x", "y")
    from scipy.stats import chi2

    table_sigma, chi2_max = None, None
    if shift_pvalue is not None and all(f"sigma_{a}_nm" in sub for a in axes):
        table_sigma = [torch.as_tensor(np.asarray(sub[f"sigma_{a}_nm"], np.float64), device=dev, dtype=dtype) for a in axes]
        chi2_max = float(chi2.ppf(1.0 - shift_pvalue, len(axes)))
    org0 = origins[:, 0].to(dtype)
    # the emitter's own parameters (the background acts on the whole window)
    n_emitter_params = len(axes) + int(problem.free_sigma) + (1 if linked else C)
    # the windows' data and noise terms, the same every round (the neighbours' images change)
    rois = [r.to(dtype) for r in rois]
    ks = [torch.as_tensor(k, device=dev, dtype=dtype) for k in ks]
    offs = [torch.as_tensor(o, device=dev, dtype=dtype) for o in offs]
    kept = torch.zeros(len(sel), dtype=torch.bool, device=dev)
    res = None
    for rnd in range(rounds):
        known = others(theta)
        adj_rois = rois if known is None else [r - known[:, c] for c, r in enumerate(rois)]
        adj_offs = offs if known is None else [o + k * known[:, c] for c, (o, k) in enumerate(zip(offs, ks))]
        xy = torch.stack([theta[:, 0] - org0[:, 1], theta[:, 1] - org0[:, 0]], dim=1)
        res = fit_rois(
            adj_rois, fitter.fit_channels, origins=origins, k=ks, offset=adj_offs, linked=linked,
            z_range_nm=fitter.z_range_nm if problem.is_3d else None, start_xy=xy,
            start_z_nm=theta[:, 2] if problem.is_3d else None, max_iter=max_iter,
        )
        fx = res.x_nm.to(dev, dtype) / px[0]
        fy = res.y_nm.to(dev, dtype) / px[1]
        fz = res.z_nm.to(dev, dtype)
        # converged, or held on the z bound alone (an emitter at the edge of the z range: its x, y are the fit's);
        # a refit with photons, position or width on a bound is no fit of an emitter (photons 1, sigma_x 20 um)
        z_only = (res.at_bound & NOT_CONVERGED_BOUNDS) == AT_BOUND_BITS["z"]
        ok = (res.converged | (res.extra["lm_converged"] & z_only)).to(dev) & torch.isfinite(fx) & torch.isfinite(fy)
        ok &= ((fx - start[:, 0]).abs() <= max_shift_px) & ((fy - start[:, 1]).abs() <= max_shift_px)
        if problem.is_3d:
            ok &= (fz - start[:, 2]).abs() <= max_shift_z_nm
        if table_sigma is not None:  # the shift against what the table's and the fit's uncertainties allow
            shift_nm = [(fx - start[:, 0]) * px[0], (fy - start[:, 1]) * px[1], fz - start[:, 2]][: len(axes)]
            # (z held on its bound has no CRLB, NaN: the gate reads the bound's value at the bound, crlb_z_held)
            fit_sd = [res.crlb["x_nm"], res.crlb["y_nm"], res.extra["crlb_z_held"]]
            d2 = sum((sh / torch.sqrt(sg**2 + sd.to(dev, dtype) ** 2).clamp_min(1e-9)) ** 2
                     for sh, sg, sd in zip(shift_nm, table_sigma, fit_sd))
            ok &= torch.nan_to_num(d2, nan=float("inf")) <= chi2_max
        # the fits as parameters (x / y in absolute reference pixels; the fitted width; the fitter's photon parameters:
        # per channel, or the linked total's parameter, res.photons being it times the fractions' sum)
        fit = start.clone()
        fit[:, 0], fit[:, 1] = fx, fy
        if problem.is_3d:
            fit[:, 2] = fz
        if problem.free_sigma:
            fit[:, problem.i_n - 1] = res.sigma_scale.to(dev, dtype)
        ph = res.photons_ch.to(dev, dtype) if not linked else (res.photons.to(dev, dtype) / linked_sum)[:, None]
        fit[:, problem.i_n : problem.i_bg] = ph
        # the model around the emitter against its data, in the last round: earlier rounds only make the neighbours
        # of the next, and a refit beside a neighbour still at its (poor) start value is not yet judged
        if fit_pvalue is not None and rnd == rounds - 1:
            th_win = fit.clone()
            th_win[:, 0] -= org0[:, 1]
            th_win[:, 1] -= org0[:, 0]
            th_win[:, problem.i_bg :] = res.bg_ch.to(dev, dtype)
            dev_core, n_core = core_deviance(problem, th_win, known, rois, ks, offs)
            dof = (n_core - n_emitter_params).clamp_min(1.0).cpu().numpy()
            limit = torch.as_tensor(chi2.isf(fit_pvalue, dof), device=dev, dtype=dtype)
            ok &= torch.nan_to_num(dev_core, nan=float("inf")) <= limit
        # accepted rows move to their fits (and are the neighbours of the next round); the others stay
        theta = torch.where(ok[:, None], fit, start)
        kept = ok
    keep = kept.cpu().numpy()
    rows = sel[keep]
    # the bound with the nearest neighbours free too (the fits held them at their estimates)
    bound = {f"{a}_nm": res.crlb[f"{a}_nm"].numpy()[keep] for a in ("x", "y", "z")}
    bound.update({k: res.crlb[k].numpy()[keep] for k in res.crlb if k.startswith("photons")})
    if joint_neighbours > 0 and keep.any():
        cov = joint_covariance(problem, theta, res.bg_ch.to(dev, dtype), torch.as_tensor(np.flatnonzero(keep), device=dev),
                               i_np, j_np, ks, offs, others(theta), max_neighbours=joint_neighbours).cpu().double()
        var = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0)
        bound["x_nm"], bound["y_nm"] = (var[:, 0].sqrt() * px[0]).numpy(), (var[:, 1].sqrt() * px[1]).numpy()
        if problem.is_3d:  # (z held on its bound: no estimate of z, NaN, as the fit's own crlb_z_nm)
            held_z = (res.at_bound.numpy()[keep] & AT_BOUND_BITS["z"]) != 0
            bound["z_nm"] = np.where(held_z, np.nan, var[:, 2].sqrt().numpy())
        i_n, i_bg = problem.i_n, problem.i_bg
        if linked:
            bound["photons"] = (var[:, i_n].sqrt() * linked_sum).numpy()
        else:
            bound["photons"] = cov[:, i_n:i_bg, i_n:i_bg].sum(dim=(1, 2)).clamp_min(0).sqrt().numpy()
            for c in range(C):
                bound[f"photons_ch{c}"] = var[:, i_n + c].sqrt().numpy()
    th = theta.cpu().numpy()[keep]
    out["x_nm"][rows] = th[:, 0] * px[0]
    out["y_nm"][rows] = th[:, 1] * px[1]
    if problem.is_3d:
        out["z_nm"][rows] = th[:, 2]
    out["photons"][rows] = th[:, problem.i_n : problem.i_bg].sum(axis=1) * (linked_sum if linked else 1.0)
    for c in range(C):  # linked: each channel's share of the one photon parameter (a truth table carries them)
        if f"photons_ch{c}" in out:
            out[f"photons_ch{c}"][rows] = th[:, problem.i_n] * fr[c] if linked else th[:, problem.i_n + c]
    for ax in ("x", "y", "z"):
        crlb = bound[f"{ax}_nm"]
        out[f"crlb_{ax}_nm"][rows] = crlb
        if f"sigma_{ax}_nm" in out and (ax != "z" or problem.is_3d):
            out[f"sigma_{ax}_nm"][rows] = crlb
    # photon sigmas likewise (colour assignment reads photons_chN with sigma_photons_chN)
    if "sigma_photons" in out:
        out["sigma_photons"][rows] = bound["photons"]
    for c in range(C):
        if f"sigma_photons_ch{c}" in out and f"photons_ch{c}" in bound:
            out[f"sigma_photons_ch{c}"][rows] = bound[f"photons_ch{c}"]
        elif f"sigma_photons_ch{c}" in out and linked:
            out[f"sigma_photons_ch{c}"][rows] = bound["photons"] * fr[c] / linked_sum
    out["llr"][rows] = res.llr.numpy()[keep]
    # the fit's own detection test (fit_rois): the emitter against the window's background with the neighbours' light,
    # the null the fitter's p_spot is calibrated on
    out["spot_llr"][rows] = res.spot_llr.numpy()[keep]
    out["p_spot"][rows] = res.p_spot.numpy()[keep]
    out["roi_px"][rows] = float(R)
    out["refined"][rows] = 1.0
    # an MLE fitter's table (columns converged, at_bound: plexloc fit --method mle --refine-mle): its fit's own columns
    # follow the refit, so that at_bound & 2 marks the rows whose crlb_z_nm is NaN (a refit moved off the z bound, or
    # onto it) and converged says what plexloc filter --converged keeps; a network's table has none of them
    if "at_bound" in out and "converged" in out:
        mle_cols = {"converged": res.converged.numpy(), "at_bound": res.at_bound.numpy(), "iterations": res.iterations.numpy(),
                    "loglik": res.loglik.numpy(), "bg": res.bg_ch[:, 0].numpy(),
                    **{f"bg_ch{c}": res.bg_ch[:, c].numpy() for c in range(C)}}
        for k, v in mle_cols.items():
            if k in out:
                out[k][rows] = v[keep].astype(out[k].dtype)
        if "crlb_photons" in out:
            out["crlb_photons"][rows] = bound["photons"]
        if "crlb_bg" in out and "bg" in res.crlb:
            out["crlb_bg"][rows] = res.crlb["bg"].numpy()[keep]
        if problem.free_sigma and "psf_sigma_x_nm" in out:  # the refit's width (a free-width fit's table), as its x, y
            s0 = fitter.channels[0].psf.sigma_nm
            for ax, s_ax in (("x", s0[0]), ("y", s0[1])):
                if f"psf_sigma_{ax}_nm" in out:
                    out[f"psf_sigma_{ax}_nm"][rows] = th[:, problem.i_n - 1] * s_ax
