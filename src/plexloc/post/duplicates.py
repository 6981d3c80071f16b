"""Detecting one localization per channel instead of one per molecule (a wrong channel transform).

With a transform that is off by a vector ``v``, a multi-channel network may report a molecule twice in the
same frame, the copies ``v`` apart (thesis 4.1.1). :func:`channel_duplicates` looks for that pattern: the
displacements of all same-frame pairs between ``min_offset_nm`` and ``max_offset_nm`` apart (each pair once,
oriented into the half-plane ``dx > 0``) are histogrammed; the peak (or each of the candidate
``offsets_nm``) is the suspected offset. ``fraction`` is the share of localizations in a pair within
``tol_nm`` of it; ``background`` is the same share at the offset turned by 90 degrees (what unrelated
neighbours give at that distance), and ``excess = fraction - background``. A warning is issued where
``excess > warn_fraction``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from plexloc.errors import InputError
from plexloc.post.pairs import displacement_peak, frame_points, same_frame_pairs
from plexloc.table import LocTable

__all__ = ["DuplicateReport", "DuplicateWarning", "channel_duplicates"]


class DuplicateWarning(UserWarning):
    """Localizations come in pairs at a constant offset: the channel transform is probably wrong."""


@dataclass
class DuplicateReport:
    offset_nm: np.ndarray  # (2,), the suspected offset (nan: no pairs)
    fraction: float  # localizations in a pair at the offset
    background: float  # the same at the offset turned by 90 degrees
    n: int
    warning: str | None

    @property
    def excess(self) -> float:
        return self.fraction - self.background

    def to_dict(self) -> dict:
        return {"offset_nm": self.offset_nm.tolist(), "fraction": self.fraction, "background": self.background,
                "excess": self.excess, "n": self.n, "warning": self.warning}


def _share(d: np.ndarray, i: np.ndarray, j: np.ndarray, offset: np.ndarray, tol: float, n: int) -> float:
    near = np.hypot(*(d - offset).T) <= tol
    return len(np.union1d(i[near], j[near])) / max(n, 1)


def channel_duplicates(
    table: LocTable,
    offsets_nm=None,
    *,
    max_offset_nm: float = 1000.0,
    min_offset_nm: float = 100.0,
    tol_nm: float = 50.0,
    warn_fraction: float = 0.05,
    warn: bool = True,
) -> DuplicateReport:
    """Look for same-frame pairs at a constant offset; see the module docstring.

    Args:
        offsets_nm: candidate offsets ``[(dx, dy), ...]`` (nm) to test, e.g. the differences between the
            transform used and a fresh calibration; ``None``: the peak of the displacement histogram.
        warn: issue a :class:`DuplicateWarning` when the excess exceeds ``warn_fraction``.
    """
    if not 0 <= min_offset_nm < max_offset_nm:
        raise InputError(f"need 0 <= min_offset_nm < max_offset_nm, got {min_offset_nm} and {max_offset_nm}")
    n = len(table)
    pts = frame_points(table["x_nm"], table["y_nm"], table["frame"], max_offset_nm)
    i, j = same_frame_pairs(pts, pts, max_offset_nm)
    d = pts[j, :2] - pts[i, :2]
    r = np.hypot(d[:, 0], d[:, 1])
    keep = (i < j) & (r >= min_offset_nm)
    i, j, d = i[keep], j[keep], d[keep]
    flip = (d[:, 0] < 0) | ((d[:, 0] == 0) & (d[:, 1] < 0))
    d[flip] *= -1
    if offsets_nm is None:
        candidates = [displacement_peak(d, max_offset_nm, bin_nm=tol_nm / 2, refine_nm=tol_nm)[0]] if len(d) else []
    else:
        candidates = [np.asarray(o, float).reshape(2) for o in np.atleast_2d(np.asarray(offsets_nm, float))]
        candidates = [-o if (o[0] < 0 or (o[0] == 0 and o[1] < 0)) else o for o in candidates]
    best = DuplicateReport(offset_nm=np.full(2, np.nan), fraction=0.0, background=0.0, n=n, warning=None)
    for off in candidates:
        frac = _share(d, i, j, off, tol_nm, n)
        turned = np.array([-off[1], off[0]])
        turned = -turned if turned[0] < 0 or (turned[0] == 0 and turned[1] < 0) else turned
        bg = _share(d, i, j, turned, tol_nm, n)
        if np.isnan(best.offset_nm).all() or frac - bg > best.excess:
            best = DuplicateReport(offset_nm=off, fraction=frac, background=bg, n=n, warning=None)
    if best.excess > warn_fraction:
        best.warning = (f"{100 * best.fraction:.1f} % of the localizations come in same-frame pairs "
                        f"({best.offset_nm[0]:.0f}, {best.offset_nm[1]:.0f}) nm apart ({100 * best.background:.1f} % "
                        f"expected by chance): the channel transform is probably wrong (one localization per "
                        f"channel instead of one per molecule)")
        if warn:
            warnings.warn(best.warning, DuplicateWarning, stacklevel=2)
    return best
