"""Bead detection in a z-stack and the rejection of beads that cannot be used, with the reasons.

A bead is a local maximum of the background-subtracted, lightly smoothed maximum projection over z.
Each bead is then checked, in this order, and rejected for the first reason that applies:

- ``border``: its window (``roi_px`` x ``roi_px`` pixels, centred on its brightest pixel) leaves the frame;
- ``too close``: another detected bead lies within ``min_distance_px`` (default the window size) in x and y,
  so that the windows overlap (both beads are rejected);
- ``saturated``: a raw pixel of its window reaches ``saturation_adu`` in some slice;
- ``too dim``: its peak is below ``dim_fraction`` times the median peak of the beads that passed so far.

Every rejection is counted, so that a calibration that ends with no usable bead says why.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

REJECT_REASONS = ("border", "too close", "saturated", "too dim", "outlier shape")

__all__ = ["REJECT_REASONS", "BeadSelection", "describe_rejections", "detect_beads", "extract_rois"]


@dataclasses.dataclass
class BeadSelection:
    """Detected beads of one stack.

    Attributes:
        rows, cols: pixel of each detected bead's maximum (all detections).
        peaks: background-subtracted peak of the smoothed projection (photons).
        reason: ``''`` for a used bead, else one of :data:`REJECT_REASONS`.
        background: the stack's background (photons per pixel, median over the stack).
    """

    rows: np.ndarray
    cols: np.ndarray
    peaks: np.ndarray
    reason: np.ndarray
    background: float

    @property
    def used(self) -> np.ndarray:
        return np.flatnonzero(self.reason == "")

    def counts(self) -> dict[str, int]:
        reasons = [r for r in REJECT_REASONS if np.any(self.reason == r)]
        reasons += sorted({str(r) for r in self.reason if r and r not in REJECT_REASONS})
        return {r: int(np.sum(self.reason == r)) for r in reasons}


def describe_rejections(sel: BeadSelection) -> str:
    """E.g. ``'12 found, 7 too close, 5 saturated'``."""
    parts = [f"{len(sel.rows)} found"] + [f"{n} {r}" for r, n in sel.counts().items()]
    return ", ".join(parts)


def detect_beads(
    stack: np.ndarray,
    *,
    roi_px: int,
    raw: np.ndarray | None = None,
    saturation_adu: float | None = None,
    min_distance_px: int | None = None,
    dim_fraction: float = 0.3,
    threshold_sigma: float = 8.0,
) -> BeadSelection:
    """Find beads in ``stack`` (photons, ``(n_z, H, W)``) and mark the unusable ones.

    Args:
        roi_px: window size (odd) cut around each bead.
        raw: the stack in ADU (for the saturation test); default ``stack``.
        saturation_adu: raw value counted as saturated (None: no test).
        min_distance_px: beads closer than this in both x and y reject each other (default ``roi_px``).
        dim_fraction: beads below this fraction of the median peak are too dim.
        threshold_sigma: detection threshold on the projection, in robust standard deviations.
    """
    stack = np.asarray(stack, dtype=np.float64)
    nz, h, w = stack.shape
    bg = float(np.median(stack))
    proj = ndimage.gaussian_filter(stack - bg, sigma=(0.0, 1.0, 1.0)).max(axis=0)
    mad = float(np.median(np.abs(proj - np.median(proj)))) * 1.4826
    thr = np.median(proj) + threshold_sigma * max(mad, 1e-9)
    half = roi_px // 2
    footprint = max(3, roi_px // 2) | 1
    is_max = (proj == ndimage.maximum_filter(proj, size=footprint, mode="nearest")) & (proj > thr)
    rows, cols = np.nonzero(is_max)
    peaks = proj[rows, cols]
    order = np.argsort(-peaks)
    rows, cols, peaks = rows[order], cols[order], peaks[order]
    reason = np.full(rows.shape, "", dtype=object)
    border = (rows < half) | (rows >= h - half) | (cols < half) | (cols >= w - half)
    reason[border] = "border"
    md = roi_px if min_distance_px is None else int(min_distance_px)
    if len(rows) > 1:
        dr = np.abs(rows[:, None] - rows[None, :])
        dc = np.abs(cols[:, None] - cols[None, :])
        close = (dr < md) & (dc < md)
        np.fill_diagonal(close, False)
        reason[(reason == "") & close.any(axis=1)] = "too close"
    if saturation_adu is not None:
        raw_arr = stack if raw is None else np.asarray(raw)
        for i in np.flatnonzero(reason == ""):
            win = raw_arr[:, rows[i] - half : rows[i] + half + 1, cols[i] - half : cols[i] + half + 1]
            if float(win.max()) >= saturation_adu:
                reason[i] = "saturated"
    ok = reason == ""
    if ok.any():
        reason[ok & (peaks < dim_fraction * np.median(peaks[ok]))] = "too dim"
    return BeadSelection(rows=rows, cols=cols, peaks=peaks, reason=reason.astype("U40"), background=bg)


def extract_rois(stack: np.ndarray, rows: np.ndarray, cols: np.ndarray, roi_px: int) -> np.ndarray:
    """``(n_beads, n_z, roi_px, roi_px)`` windows centred on each (row, col); they must lie inside."""
    half = roi_px // 2
    return np.stack([stack[:, r - half : r + half + 1, c - half : c + half + 1] for r, c in zip(rows, cols)]) if len(
        rows
    ) else np.zeros((0, stack.shape[0], roi_px, roi_px))
