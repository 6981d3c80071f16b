"""Same-frame pairs of localizations and the peak of their displacement histogram (shared by
:mod:`plexloc.post.registration` and :mod:`plexloc.post.duplicates`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["displacement_peak", "frame_points", "mutual_nearest", "same_frame_pairs"]


def frame_points(x: np.ndarray, y: np.ndarray, frame: np.ndarray, radius_nm: float) -> np.ndarray:
    """(L, 3) points whose third coordinate puts different frames farther apart than ``radius_nm``."""
    sep = 10.0 * max(float(radius_nm), 1.0)
    return np.column_stack([np.asarray(x, float), np.asarray(y, float), np.asarray(frame, float) * sep])


def same_frame_pairs(a: np.ndarray, b: np.ndarray, radius_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` of points of ``a`` and ``b`` (from :func:`frame_points`) in the same frame
    within ``radius_nm`` of each other (Euclidean, lateral)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = cKDTree(a).sparse_distance_matrix(cKDTree(b), float(radius_nm), output_type="ndarray")
    return m["i"].astype(np.int64), m["j"].astype(np.int64)


def mutual_nearest(xy_a: np.ndarray, frame_a: np.ndarray, xy_b: np.ndarray, frame_b: np.ndarray,
                   radius_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` of points ``xy_a[i]`` and ``xy_b[j]`` (N, 2) of the same frame that are each
    other's nearest neighbour within ``radius_nm``; every point is in at most one pair."""
    if len(xy_a) == 0 or len(xy_b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = frame_points(xy_a[:, 0], xy_a[:, 1], frame_a, radius_nm)
    b = frame_points(xy_b[:, 0], xy_b[:, 1], frame_b, radius_nm)
    dist, j = cKDTree(b).query(a, distance_upper_bound=radius_nm)
    i = np.flatnonzero(np.isfinite(dist))
    j = j[i]
    _, back = cKDTree(a).query(b[j], distance_upper_bound=radius_nm)
    mutual = back == i
    return i[mutual].astype(np.int64), j[mutual].astype(np.int64)


def displacement_peak(d: np.ndarray, extent_nm: float, *, bin_nm: float = 20.0, refine_nm: float = 50.0,
                      exclude_nm: float = 0.0) -> tuple[np.ndarray, int]:
    """Mode of the 2D displacements ``d`` (N, 2) within ``extent_nm``: peak of the histogram (bins of
    ``bin_nm``, smoothed by one bin), refined by the mean of the displacements within ``refine_nm`` of it.
    Displacements shorter than ``exclude_nm`` are left out. Returns ``(offset, count within refine_nm)``."""
    d = d[np.hypot(d[:, 0], d[:, 1]) >= exclude_nm] if exclude_nm > 0 else d
    if len(d) == 0:
        return np.full(2, np.nan), 0
    nb = max(int(np.ceil(2 * extent_nm / bin_nm)), 1)
    h, ex, ey = np.histogram2d(d[:, 0], d[:, 1], bins=nb, range=[[-extent_nm, extent_nm]] * 2)
    h = ndimage.gaussian_filter(h, 1.0, mode="constant")
    i, j = np.unravel_index(np.argmax(h), h.shape)
    peak = np.array([(ex[i] + ex[i + 1]) / 2, (ey[j] + ey[j + 1]) / 2])
    for _ in range(3):
        near = np.hypot(*(d - peak).T) <= refine_nm
        if not near.any():
            break
        peak = d[near].mean(axis=0)
    return peak, int(np.count_nonzero(np.hypot(*(d - peak).T) <= refine_nm))
