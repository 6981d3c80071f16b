"""How close errors come to the Cramér-Rao bound, and whether predicted uncertainties are calibrated.

- ``crlb_ratio_lat = RMSE_lat / sqrt(mean(crlb_x^2 + crlb_y^2))`` and ``crlb_ratio_ax = RMSE_ax /
  sqrt(mean(crlb_z^2))`` over matched emitters (1 means the bound is reached);
- ``zscore_std_x/y/z``: standard deviation of ``error / predicted sigma`` over matched pairs (1 means
  the predicted uncertainties are calibrated); :func:`zscore_slabs` gives the same per slab of true z,
  since a model can be calibrated on average and not at the edges of its z range;
- ``zscore_rsd_x/y/z``: the same spread measured robustly (1.4826 x the median absolute deviation), which
  a few gross errors do not move. Where ``zscore_std`` is well above 1 and ``zscore_rsd`` near 1, the
  sigmas are right for most localizations and a minority of large errors (in dense data: two emitters
  reported as one, or a localization matched to the neighbour of its emitter) inflates the standard
  deviation; where both are above 1, the sigmas are under-reported across the board;
  :func:`zscore_by_neighbour` says which localizations those are, grouping the pairs by the distance from the
  emitter to its nearest neighbour in the same frame;
- :func:`sigma_calibration`: the robust z-score spread of the isolated emitters alone, the factor by which the
  predicted sigmas would have to be multiplied to be calibrated where nothing else confuses the network (the
  trainer measures it on its validation set and ``plexloc fit`` applies it, see :mod:`plexloc.infer.fit`).

A predicted sigma must be > 0: every function here that divides by one (``error_scores``, ``zscore_summary``,
``zscore_slabs``, ``zscore_by_neighbour``, ``sigma_calibration``) raises :class:`~plexloc.errors.InputError` naming
the column, how many rows have a sigma <= 0 and the first of them, rather than leave such rows out: a sigma of 0 claims
an exact position, and leaving those rows out would hide the most over-confident predictions from the calibration it
measures (it gave an infinite z-score, and a NaN ``zscore_std`` and a wrong ``zscore_rsd`` with a divide-by-zero
warning). A NaN sigma (unknown: an MLE fit's ``crlb_z_nm`` where it held z on its bound) is not refused; its pair is
left out of the spreads and the count of the pairs that remain is given (``n_x, n_y, n_z``; :func:`zscore_summary`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from plexloc.camera import Camera
from plexloc.evaluate.crlb import crlb
from plexloc.errors import InputError
from plexloc.evaluate.matching import Matching
from plexloc.psf import PSF
from plexloc.table import LocTable, uncertainty_columns

KEYS = ("crlb_ratio_lat", "crlb_ratio_ax", "zscore_std_x", "zscore_std_y", "zscore_std_z",
        "zscore_rsd_x", "zscore_rsd_y", "zscore_rsd_z")
MAD_TO_SD = 1.482602218505602  # 1 / Phi^-1(3/4): the MAD of a normal distribution is 0.6745 sd


def _zscores(err: np.ndarray, pred: LocTable, col: str, rows: np.ndarray) -> np.ndarray:
    """``err / pred[col][rows]``; an :class:`InputError` where the column holds a sigma <= 0 (module docstring)."""
    sigma = np.asarray(pred[col], float)
    bad = np.flatnonzero(sigma <= 0)
    if bad.size:
        raise InputError(f"column '{col}' has {bad.size} row(s) with a predicted sigma <= 0, first at row {bad[0]} "
                         f"({float(sigma[bad[0]])}); a z-score (error / sigma) needs sigma > 0 nm: drop those rows "
                         "or give them their real uncertainty", source=pred.source)
    return err / sigma[rows]


def robust_sd(v: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from the median: the sd of normal data, not moved by outliers."""
    v = np.asarray(v, float)
    return float(MAD_TO_SD * np.median(np.abs(v - np.median(v))))


def table_crlb(
    truth: LocTable,
    channels: Sequence[tuple[PSF, Camera]],
    *,
    bg: np.ndarray | None = None,
    z_offsets_nm: Sequence[float] | None = None,
    photon_fractions: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """CRLB (nm) of every truth row from its photons, z and background (``bg`` or the ``bg`` column).

    Several channels: each row's own split of its photons where the table has ``photons_chN`` (a molecule's dye,
    its share of a partial frame), else ``photon_fractions``; each channel's own background where it has
    ``bg_chN`` (e.g. 20 and 135 photons in the two channels of a dual-colour set-up), else ``bg`` in every one.

    A 3D PSF's bound depends on z: a NaN ``z_nm`` (z unknown, as a 2D table may have) is an :class:`InputError` naming
    the table's file and the column (the bound of those rows was NaN); a 2D PSF's bound ignores z."""
    if any(getattr(psf, "is_3d", True) for psf, _ in channels):
        try:
            truth.check_finite(("z_nm",))
        except InputError as err:
            raise InputError(f"{err.reason}; the CRLB of a 3D PSF needs each emitter's z", source=err.source) from None
    bg_from_table = bg is None
    if bg is None and "bg" not in truth:  # (a KeyError before, which named no table)
        raise InputError("the CRLB needs each emitter's background: the table has no 'bg' column (photons per pixel; "
                         "plexloc simulate's truth.csv has one), and none was given (bg=)", source=truth.source)
    bg = truth["bg"] if bg is None else bg
    if not len(truth):
        return {k: np.zeros(0) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}
    z = torch.as_tensor(truth["z_nm"])
    if len(channels) == 1 and z_offsets_nm:
        z = z - z_offsets_nm[0]
    kw = {}
    n_ch = len(channels)
    if n_ch > 1:
        kw = dict(z_offsets_nm=z_offsets_nm, photon_fractions=photon_fractions)
        if all(f"photons_ch{c}" in truth for c in range(n_ch)):
            per = np.stack([np.asarray(truth[f"photons_ch{c}"], float) for c in range(n_ch)], axis=1)
            tot = per.sum(axis=1, keepdims=True)
            kw["photon_fractions"] = torch.as_tensor(np.where(tot > 0, per / np.where(tot > 0, tot, 1.0), 1.0 / n_ch))
        if bg_from_table and all(f"bg_ch{c}" in truth for c in range(n_ch)):
            per_bg = np.stack([np.asarray(truth[f"bg_ch{c}"], float) for c in range(n_ch)], axis=1)
            # one background parameter scaled per channel; its reference is the channels' mean, so that a channel
            # without background (0 photons) does not make every other channel's scale infinite, and a row
            # without any background (seed 002's additive camera) gets a tiny one in every channel (the bound
            # needs the parameter to act somewhere, and is the zero-background bound to 1e-6 photons)
            mean = per_bg.mean(axis=1)
            none = mean <= 0
            base = np.where(none, 1e-6, mean)
            bg = base
            kw["bg_ratios"] = torch.as_tensor(np.where(none[:, None], 1.0, per_bg / np.where(none, 1.0, mean)[:, None]))
    b = crlb(list(channels), z_nm=z, photons=torch.as_tensor(truth["photons"]), bg=torch.as_tensor(np.asarray(bg, float)), **kw)
    return {k: b[k].cpu().numpy() for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}


def error_scores(pred: LocTable, m: Matching, bound: dict[str, np.ndarray], *, dim: int) -> dict[str, float]:
    """The :data:`KEYS` scores of a matching; NaN where they are undefined (e.g. axial scores in 2D).

    The z-scores divide by the table's uncertainty columns (:func:`zscore_summary`: ``sigma_*_nm``, else an MLE table's
    ``crlb_*_nm``, the rule :func:`zscore_slabs` and :mod:`plexloc.post.debias` follow; before session 51 only
    ``sigma_*_nm``, and every z-score of an MLE table was NaN). A pair whose sigma is not finite (an MLE fit's
    ``crlb_z_nm`` where it held z on its bound) is left out of that axis's spread, not counted in it:
    :func:`zscore_summary` says how many.

    Raises:
        InputError: an uncertainty column used for the z-scores holds a value <= 0 (module docstring)."""
    out = dict.fromkeys(KEYS, math.nan)
    if m.n_tp < 2:
        return out
    t = m.tp_truth
    dx, dy, dz = m.dx, m.dy, m.dz
    out["crlb_ratio_lat"] = math.sqrt(np.mean(dx**2 + dy**2) / np.mean(bound["crlb_x_nm"][t] ** 2 + bound["crlb_y_nm"][t] ** 2))
    if dim == 3:
        out["crlb_ratio_ax"] = math.sqrt(np.mean(dz**2) / np.mean(bound["crlb_z_nm"][t] ** 2))
    sel = np.ones(m.n_tp, bool)
    spread = _group_spread(pred, m, sel, "xyz" if dim == 3 else "xy")  # a 2D table's sigma_z is not read
    for ax in ("x", "y", "z") if dim == 3 else ("x", "y"):
        out[f"zscore_std_{ax}"], out[f"zscore_rsd_{ax}"] = spread[f"zscore_std_{ax}"], spread[f"zscore_rsd_{ax}"]
    return out


def zscore_summary(pred: LocTable, m: Matching, *, dim: int) -> dict[str, dict]:
    """Per axis (``x, y`` and in 3D ``z``), the z-scores over all matched pairs and what they read: ``column``
    (``sigma_x_nm``, else an MLE table's ``crlb_x_nm``; None where the table has neither), ``n`` (matched pairs with a
    finite sigma and error, the ones the spread counts), ``n_left_out`` (matched pairs without: an MLE fit's
    ``crlb_z_nm`` is NaN where it held z on its bound), ``zscore_std`` and ``zscore_rsd`` (as :func:`error_scores`;
    NaN with fewer than 2 pairs or no column). An :class:`InputError` where a column read holds a sigma <= 0."""
    axes = "xyz" if dim == 3 else "xy"
    spread = _group_spread(pred, m, np.ones(m.n_tp, bool), axes) if m.n_tp else {}
    out = {}
    for ax in axes:
        col = _sigma_column(pred, ax)
        n = int(spread.get(f"n_{ax}", 0))
        out[ax] = {"column": col, "n": n, "n_left_out": int(m.n_tp) - n,
                   "zscore_std": spread.get(f"zscore_std_{ax}", math.nan),
                   "zscore_rsd": spread.get(f"zscore_rsd_{ax}", math.nan)}
    return out


def _edges(edges_nm: Sequence[float]) -> np.ndarray:
    edges = np.asarray(edges_nm, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges_nm must be at least two ascending values, got {edges.tolist()}")
    return edges


def _sigma_column(pred: LocTable, ax: str) -> str | None:
    """The column of the rows' predicted 1-sigma along ``ax``: ``sigma_{ax}_nm``, else an MLE table's
    ``crlb_{ax}_nm`` (the rule of :func:`plexloc.table.uncertainty_columns`); None where neither."""
    cols = uncertainty_columns(pred, "z" if ax == "z" else "xy")
    return None if cols is None else cols[-1] if ax != "x" else cols[0]


def _group_spread(pred: LocTable, m: Matching, sel: np.ndarray, axes: str = "xyz") -> dict[str, float]:
    """``zscore_std_*`` and ``zscore_rsd_*`` of the matched pairs ``sel`` (boolean over the pairs; a pair whose sigma or
    error is not finite left out, and ``n_x, n_y, n_z`` the pairs that count: an MLE table's ``crlb_z_nm`` is NaN where
    the fit held z on its bound, and those pairs, the worst, left the z spread without a word); NaN where fewer than 2
    pairs or the table has no sigma column for that axis (:func:`_sigma_column`: an MLE table's CRLB; ``n_*`` 0)."""
    row = {}
    for ax, err in (("x", m.dx), ("y", m.dy), ("z", m.dz)):
        if ax not in axes:
            continue
        col = _sigma_column(pred, ax)
        row[f"zscore_std_{ax}"] = row[f"zscore_rsd_{ax}"] = math.nan
        row[f"n_{ax}"] = 0 if col is None else int(np.sum(
            np.isfinite(err[sel]) & np.isfinite(np.asarray(pred[col], float)[m.tp_pred[sel]])))
        if sel.sum() >= 2 and col is not None:
            zs = _zscores(err[sel], pred, col, m.tp_pred[sel])
            zs = zs[np.isfinite(zs)]  # a row without a sigma (NaN) made the whole group's spread NaN
            if len(zs) >= 2:
                row[f"zscore_std_{ax}"], row[f"zscore_rsd_{ax}"] = float(np.std(zs)), robust_sd(zs)
    return row


def neighbour_distance_nm(truth: LocTable) -> np.ndarray:
    """Lateral distance (nm) from every truth row to the nearest other emitter of the same frame (inf when alone).

    One KD-tree over ``(x, y, frame * L)`` with ``L`` beyond any in-frame distance (as in
    :mod:`plexloc.post.merge`), queried within ``L / 2``: other frames are never within reach."""
    from scipy.spatial import cKDTree

    if len(truth) < 2:
        return np.full(len(truth), np.inf)
    xy = np.c_[np.asarray(truth["x_nm"], float), np.asarray(truth["y_nm"], float)]
    span = float(np.ptp(xy, axis=0).max())
    L = 4.0 * span + 1.0
    pts = np.c_[xy - xy.min(axis=0), np.asarray(truth["frame"], float) * L]
    d, _ = cKDTree(pts).query(pts, k=2, distance_upper_bound=L / 2)
    return d[:, 1]


def zscore_by_neighbour(pred: LocTable, m: Matching, truth: LocTable,
                        edges_nm: Sequence[float] = (0.0, 250.0, 500.0, math.inf)) -> list[dict[str, float]]:
    """The z-score spread of matched pairs grouped by how close the emitter's nearest neighbour in the same
    frame is (lateral nm, ``edges_nm`` ascending): one dict per group with ``d_lo, d_hi, n, share`` (of the
    pairs), ``zscore_std_*``, ``zscore_rsd_*``, ``n_x, n_y, n_z`` (the pairs with a finite sigma and error,
    :func:`_group_spread`) and ``tail4`` (share of pairs with |x z-score| > 4). Isolated
    emitters calibrated and close pairs not means the sigma head does not see the confusion of overlapping
    spots."""
    edges = _edges(edges_nm)
    nn = neighbour_distance_nm(truth)[m.tp_truth]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (nn >= lo) & ((nn < hi) | np.isinf(hi))  # an emitter alone in its frame is at infinity
        row = {"d_lo": float(lo), "d_hi": float(hi), "n": int(sel.sum()), "share": float(sel.mean()) if len(sel) else math.nan}
        row.update(_group_spread(pred, m, sel))
        col = _sigma_column(pred, "x")
        row["tail4"] = math.nan
        if sel.sum() >= 2 and col is not None:  # over the pairs with a finite sigma (n_x): a NaN sigma counted as no tail
            zs = _zscores(m.dx[sel], pred, col, m.tp_pred[sel])
            zs = zs[np.isfinite(zs)]
            row["tail4"] = float(np.mean(np.abs(zs) > 4)) if len(zs) else math.nan
        out.append(row)
    return out


SIGMA_CAL_KEYS = ("sigma_cal_x", "sigma_cal_y", "sigma_cal_z")


def sigma_calibration(pred: LocTable, m: Matching, truth: LocTable, *, dim: int, isolated_nm: float = 500.0,
                      min_pairs: int = 50) -> dict[str, float]:
    """``sigma_cal_x/y/z``: robust standard deviation (1.4826 MAD) of the z-scores of matched emitters with no
    other emitter within ``isolated_nm`` in their frame; NaN with fewer than ``min_pairs`` such pairs with a finite
    sigma (and z in 2D). The sigma is the table's uncertainty column (:func:`zscore_summary`: an MLE table's CRLB).

    Multiplying the predicted sigmas by these factors makes the isolated emitters' z-scores spread 1. Robust,
    because a few hundred pairs with one gross error would move a standard deviation by tens of percent."""
    out = dict.fromkeys(SIGMA_CAL_KEYS, math.nan)
    if m.n_tp < min_pairs:
        return out
    sel = neighbour_distance_nm(truth)[m.tp_truth] > isolated_nm
    if sel.sum() < min_pairs:
        return out
    for ax, err in (("x", m.dx), ("y", m.dy), ("z", m.dz)):
        col = _sigma_column(pred, ax)  # sigma_*_nm, else an MLE table's crlb_*_nm (NaN for it before session 51)
        if (ax == "z" and dim != 3) or col is None:
            continue
        zs = _zscores(err[sel], pred, col, m.tp_pred[sel])
        zs = zs[np.isfinite(zs)]  # a pair without a sigma (NaN) is left out, and the rest must still be min_pairs
        if len(zs) >= min_pairs:
            out[f"sigma_cal_{ax}"] = robust_sd(zs)
    return out


OFFSET_CAL_KEYS = ("offset_cal_x", "offset_cal_y", "offset_cal_z")


def offset_calibration(m: Matching, truth: LocTable, *, dim: int, min_pairs: int = 50) -> dict[str, float]:
    """``offset_cal_x/y/z`` (nm): the median error (prediction - truth) of the matched emitters, where it differs
    from 0 by more than twice its standard error (1.2533 x robust sd / sqrt(n)); else 0. NaN with fewer than
    ``min_pairs`` pairs (and z in 2D). ``truth`` is accepted for symmetry with :func:`sigma_calibration`.

    A network can learn a constant offset of a few nm (2.8 nm in y on a 15-minute CPU model, the same on its
    validation set and on test movies, while the MLE on the same movies is unbiased); subtracting it is free.
    All pairs count (a neighbour pulls either way), and the median keeps gross errors out."""
    out = dict.fromkeys(OFFSET_CAL_KEYS, math.nan)
    n = m.n_tp
    if n < min_pairs:
        return out
    for ax, err in (("x", m.dx), ("y", m.dy), ("z", m.dz)):
        if ax == "z" and dim != 3:
            continue
        med = float(np.median(err))
        se = 1.2533 * robust_sd(err) / math.sqrt(n)
        out[f"offset_cal_{ax}"] = med if abs(med) > 2.0 * se else 0.0
    return out


PHOTON_CAL_KEYS = ("photon_cal", "photon_sigma_cal")


def photon_calibration(pred: LocTable, m: Matching, truth: LocTable, *, isolated_nm: float = 500.0,
                       min_pairs: int = 50) -> dict[str, float]:
    """``photon_cal``: the median ratio predicted / true photons of the matched emitters, where its logarithm
    differs from 0 by more than twice its standard error (1.2533 x robust sd / sqrt(n)); else 1.
    ``photon_sigma_cal``: the robust spread of the isolated emitters' photon z-scores once the photons are divided
    by that scale, ``(photons / s - true) / (sigma_photons / s)`` (as :func:`sigma_calibration` for positions). NaN
    with fewer than ``min_pairs`` pairs, and for tables with per-channel photons (``photons_ch0``: scaling the total
    alone would part it from the channels' sum).

    A network trained for minutes can carry a photon scale error: the demo's 4-minute CPU model read +10.6 % (median
    relative error over 3,540 matched emitters) where the MLE on the same movie read -0.3 %; dividing by the
    validation's ratio is free, as for the position offsets."""
    out = dict.fromkeys(PHOTON_CAL_KEYS, math.nan)
    if m.n_tp < min_pairs or "photons" not in pred or "photons_ch0" in pred:
        return out
    p = np.asarray(pred["photons"], float)[m.tp_pred]
    t = np.asarray(truth["photons"], float)[m.tp_truth]
    ok = (p > 0) & (t > 0) & np.isfinite(p) & np.isfinite(t)
    if ok.sum() < min_pairs:
        return out
    r = np.log(p[ok] / t[ok])
    med = float(np.median(r))
    se = 1.2533 * robust_sd(r) / math.sqrt(int(ok.sum()))
    scale = math.exp(med) if abs(med) > 2.0 * se else 1.0
    out["photon_cal"] = scale
    if "sigma_photons" in pred:
        sig = np.asarray(pred["sigma_photons"], float)[m.tp_pred]
        sel = ok & (neighbour_distance_nm(truth)[m.tp_truth] > isolated_nm) & (sig > 0) & np.isfinite(sig)
        if sel.sum() >= min_pairs:
            out["photon_sigma_cal"] = robust_sd((p[sel] - scale * t[sel]) / sig[sel])
    return out


def zscore_slabs(pred: LocTable, m: Matching, truth: LocTable, edges_nm: Sequence[float]) -> list[dict[str, float]]:
    """Standard deviation of the z-scores (``error / predicted sigma``) of matched pairs in slabs of the
    true z (``edges_nm``, ascending; each slab ``[lo, hi)``, the last ``[lo, hi]``, as numpy's histogram, so that
    emitters at the top of the z range, e.g. beads on a grid of z steps, are not left out): one dict per slab with
    ``z_lo, z_hi, n, zscore_std_x, zscore_std_y, zscore_std_z``, their robust ``zscore_rsd_*`` (NaN where the slab has
    fewer than 2 pairs or the table no sigma column) and ``n_x, n_y, n_z``, the pairs with a finite sigma and error
    that they count (:func:`_group_spread`). An MLE table's ``crlb_*_nm`` are its predicted sigma where it has no
    ``sigma_*_nm`` (every score was NaN for it): bench/z3d50.py's 3D MLE fits at 0.1 emitters per um^2 read robust spreads of 0.97-1.27 in
    every 100-nm slab from -600 to 600 nm (standard deviations 1.3-4.7: a minority of gross errors), 1.9-2.5 laterally
    at 1 per um^2 (overlapping spots)."""
    edges = _edges(edges_nm)
    zt = np.asarray(truth["z_nm"], float)[m.tp_truth]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (zt >= lo) & ((zt < hi) | ((hi == edges[-1]) & (zt == hi)))  # the last slab includes its top edge
        row = {"z_lo": float(lo), "z_hi": float(hi), "n": int(sel.sum())}
        row.update(_group_spread(pred, m, sel))
        out.append(row)
    return out
