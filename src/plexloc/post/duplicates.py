"""Detecting one localization per channel instead of one per molecule (a wrong channel transform).

With a transform that is off by a vector ``v``, a multi-channel network may report a molecule twice in the
same frame, the copies ``v`` apart (thesis 4.1.1). :func:`channel_duplicates` looks for that pattern and
decides with a test whose false-alarm rate is fixed, so that it stays silent for a correct transform at any
density and fires when many localizations are doubled:

1. Same-frame pairs between ``min_offset_nm`` and ``max_offset_nm`` apart give displacements ``d`` (taken with
   both signs: a pair at ``v`` is also one at ``-v``). The candidate ``v`` is the peak of their histogram (or
   each of the given ``offsets_nm``).
2. ``K`` = pairs within ``tol_nm`` of ``+-v``. Without duplicates, localizations of one frame carry no pair
   structure at a fixed vector, so the pair displacements around ``v`` are as dense as anywhere on the ring
   ``| |d| - |v| | <= 2 tol`` (isotropy); the pairs on that ring, away from ``+-v``, give the expected count
   ``mu`` by area, and ``K`` is tested against ``Poisson(mu)`` with ``mu`` raised by one ring pair's worth (``mu``
   is itself a count's estimate: an empty ring gave ``mu`` = 0 and p = 0 for any 2 pairs). The p-value is corrected
   for the number of places the peak search looked at (ring area / disc area, Bonferroni).
3. The warning fires when ``p < alpha / looks`` (a consistent offset, not chance; default ``alpha`` 1e-3 per
   table) **and** the excess share of localizations in such pairs, ``fraction - background``, is above
   ``warn_fraction`` (default 5 %: *many* localizations are doubled, not a handful of coincidences, which
   at high density are significant but harmless). The share is counted within the radius around ``+-v``
   (``tol`` x 1-4, at most ``|v| / 2``) where the excess is largest: noisy copies spread beyond ``tol``, and a fixed
   50 nm read 17.5 % for every molecule doubled with 80 nm noise. That only where the p-value passes: otherwise the
   share is the one within ``tol`` (the largest of five excesses read about twice the share on random tables).

A wrong transform doubles (nearly) every molecule, so its excess is close to 100 %; random neighbours at
3 per um^2 and a correct transform give an excess near 0 and a p-value that rarely passes the corrected
threshold (false-alarm rates in bench/RESULTS.md, issue 10, from ``bench/duplicates_false_alarm.py``).

Structures (filaments) break the isotropy of step 2: pairs along a few straight filaments are denser at
their directions than on the rest of the ring (ten random filaments at 3-6 per um^2 fired in 3 of 8 tables,
excess up to 22 %). So ``mu`` is also estimated from pairs between *different* frames (lags of a quarter, half
and three quarters of the frame range: a structure's pairs occur across frames as within one, duplicates only
within one), scaled by the ratio of same-frame to cross-frame pair opportunities, and the larger of the two
estimates is used (the cross-frame one needs at least 4 frames).
"""

from __future__ import annotations

import math
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
    fraction: float  # share of localizations in a same-frame pair at +-offset
    background: float  # the share expected by chance (2 * expected pairs / n)
    n: int
    warning: str | None
    pairs: int = 0  # K, pairs within tol of +-offset
    expected_pairs: float = 0.0  # mu, from the ring at the same distance
    p_value: float = 1.0  # P(Poisson(mu + one ring pair's worth) >= K), uncorrected (module docstring, step 2)
    looks: float = 1.0  # places searched (Bonferroni factor)
    #: radius (nm) around +-offset at which ``fraction`` and ``background`` were counted: the one of ``tol_nm`` x 1,
    #: 1.5, 2, 3, 4 (at most half the offset) with the largest excess (noisy copies spread beyond ``tol_nm``) where the
    #: p-value passes; ``tol_nm`` where it does not (no consistent offset: a largest-of-five pick reads high)
    share_radius_nm: float = 0.0

    @property
    def excess(self) -> float:
        return self.fraction - self.background

    def to_dict(self) -> dict:
        return {"offset_nm": self.offset_nm.tolist(), "fraction": self.fraction, "background": self.background,
                "excess": self.excess, "n": self.n, "pairs": self.pairs, "expected_pairs": self.expected_pairs,
                "p_value": self.p_value, "looks": self.looks, "share_radius_nm": self.share_radius_nm,
                "warning": self.warning}


#: multiples of ``tol_nm`` at which the share of localizations in pairs is counted (:func:`channel_duplicates`):
#: copies with 80 nm noise put most pairs beyond 50 nm of the offset, and 100 % doubled read 17.5 % at ``tol_nm``
SHARE_RADII = (1.0, 1.5, 2.0, 3.0, 4.0)


def _poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    from scipy.stats import poisson

    return float(poisson.sf(k - 1, mu))


def _test_offset(d: np.ndarray, i: np.ndarray, j: np.ndarray, v: np.ndarray, tol: float, n: int) -> DuplicateReport:
    r = float(np.hypot(*v))
    dist_p = np.hypot(*(d - v).T)
    dist_m = np.hypot(*(d + v).T)
    near = (dist_p <= tol) | (dist_m <= tol)
    k = int(near.sum())
    ring = (np.abs(np.hypot(d[:, 0], d[:, 1]) - r) <= 2 * tol) & (dist_p > 2 * tol) & (dist_m > 2 * tol)
    ring_area = math.pi * ((r + 2 * tol) ** 2 - max(r - 2 * tol, 0.0) ** 2) - 2 * math.pi * (2 * tol) ** 2
    per_pair = 2 * math.pi * tol**2 / ring_area if ring_area > 0 else 0.0
    mu = float(ring.sum()) * per_pair
    frac = len(np.union1d(i[near], j[near])) / max(n, 1)
    # the p-value from mu estimated by one pair more: mu is itself a count's estimate, and an empty ring (a small
    # table) gave mu = 0 and p = 0 for any 2 pairs (random tables of 50 localizations in one frame warned)
    return DuplicateReport(offset_nm=v, fraction=frac, background=min(2 * mu / max(n, 1), 1.0), n=n, warning=None,
                           pairs=k, expected_pairs=mu, p_value=_poisson_sf(k, mu + per_pair))


def _cross_frame_expected(xy: np.ndarray, frame: np.ndarray, v: np.ndarray, tols, reach: float) -> list[float] | None:
    """Same-frame pairs expected within each of ``tols`` of ``+-v`` from the pairs between frames ``lag`` apart
    (None: too few frames). The cross-frame pairs are found once for all ``tols``."""
    if len(frame) == 0:
        return None
    f0 = int(frame.min())
    counts = np.bincount(frame - f0).astype(float)
    span = len(counts)
    if span < 4:
        return None
    same = float(np.sum(counts * (counts - 1) / 2))
    a = frame_points(xy[:, 0], xy[:, 1], frame, reach)
    k = np.zeros(len(tols))
    opportunities = 0.0
    for lag in sorted({span // 4, span // 2, 3 * span // 4}):
        b = frame_points(xy[:, 0], xy[:, 1], frame - lag, reach)
        i, j = same_frame_pairs(a, b, reach)  # j is lag frames after i
        d = xy[j] - xy[i]
        near = np.minimum(np.hypot(*(d - v).T), np.hypot(*(d + v).T))
        k += [np.count_nonzero(near <= tol) for tol in tols]
        opportunities += float(np.sum(counts[:-lag] * counts[lag:]))
    return [float(c) * same / opportunities for c in k] if opportunities > 0 else None


def channel_duplicates(
    table: LocTable,
    offsets_nm=None,
    *,
    max_offset_nm: float = 1000.0,
    min_offset_nm: float = 100.0,
    tol_nm: float = 50.0,
    warn_fraction: float = 0.05,
    alpha: float = 1e-3,
    warn: bool = True,
) -> DuplicateReport:
    """Look for same-frame pairs at a constant offset; see the module docstring for the decision rule.

    Args:
        offsets_nm: candidate offsets ``[(dx, dy), ...]`` (nm) to test, e.g. the differences between the
            transform used and a fresh calibration; ``None``: the peak of the displacement histogram.
        tol_nm: radius around ``+-offset`` within which a pair counts (localization noise of both copies).
        warn_fraction: least excess share of localizations in pairs at the offset for a warning.
        alpha: false-alarm probability per table (before the correction for the search).
        warn: issue a :class:`DuplicateWarning` when the rule fires (``report.warning`` is set either way).
    """
    if not 0 <= min_offset_nm < max_offset_nm:
        raise InputError(f"need 0 <= min_offset_nm < max_offset_nm, got {min_offset_nm} and {max_offset_nm}")
    if not (tol_nm > 0 and 0 < alpha < 1):
        raise InputError(f"need tol_nm > 0 and 0 < alpha < 1, got {tol_nm} and {alpha}")
    n = len(table)
    reach = max_offset_nm + 2 * SHARE_RADII[-1] * tol_nm  # the widest share radius's ring
    pts = frame_points(table["x_nm"], table["y_nm"], table["frame"], reach)
    i, j = same_frame_pairs(pts, pts, reach)
    keep = i < j
    i, j = i[keep], j[keep]
    d = pts[j, :2] - pts[i, :2]
    if offsets_nm is None:
        r = np.hypot(d[:, 0], d[:, 1])
        search = (r >= min_offset_nm) & (r <= max_offset_nm)
        sym = np.concatenate([d[search], -d[search]])
        candidates = [displacement_peak(sym, max_offset_nm, bin_nm=tol_nm / 2, refine_nm=tol_nm)[0]] if len(sym) else []
        looks = max((max_offset_nm**2 - min_offset_nm**2) / (2 * tol_nm**2), 1.0)
    else:
        candidates = [np.asarray(o, float).reshape(2) for o in np.atleast_2d(np.asarray(offsets_nm, float))]
        looks = float(max(len(candidates), 1))
    best = DuplicateReport(offset_nm=np.full(2, np.nan), fraction=0.0, background=0.0, n=n, warning=None, looks=looks)
    for off in candidates:
        off = -off if (off[0] < 0 or (off[0] == 0 and off[1] < 0)) else off  # reported in the half-plane dx > 0
        rep = None
        # the test at tol_nm; the share where the copies' spread is counted whole (discs at +-offset apart)
        radii = [k * tol_nm for k in SHARE_RADII if k == 1 or k * tol_nm <= np.hypot(*off) / 2]
        crosses = _cross_frame_expected(pts[:, :2], np.asarray(table["frame"], np.int64), off, radii,
                                        float(np.hypot(*off)) + radii[-1])  # pairs nearer than |offset| + radius
        for m, rho in enumerate(radii):
            r = _test_offset(d, i, j, off, rho, n)
            cross = None if crosses is None else crosses[m]
            if cross is not None and cross > r.expected_pairs:  # structure: pairs at off in other frames too
                r.expected_pairs = cross
                r.background = min(2 * cross / max(n, 1), 1.0)
                r.p_value = max(r.p_value, _poisson_sf(r.pairs, cross))  # the larger of the two estimates
            if rep is None:
                rep = r
                rep.share_radius_nm = rho
                if rep.p_value >= alpha / looks:
                    # no consistent offset at tol_nm: the largest of 5 radii's excesses is a look-elsewhere pick
                    # (random tables read 2x the share at tol_nm); the share stays at tol_nm
                    break
            elif r.excess > rep.excess:
                rep.fraction, rep.background, rep.share_radius_nm = r.fraction, r.background, rho
        rep.looks = looks
        if np.isnan(best.offset_nm).all() or rep.excess > best.excess:
            best = rep
    if best.p_value < alpha / looks and best.excess > warn_fraction:
        best.warning = (f"{100 * best.fraction:.1f} % of the localizations come in same-frame pairs "
                        f"({best.offset_nm[0]:.0f}, {best.offset_nm[1]:.0f}) nm apart (within "
                        f"{best.share_radius_nm:.0f} nm; {100 * best.background:.1f} % expected by chance; "
                        f"{best.pairs} pairs within {tol_nm:g} nm where {best.expected_pairs:.1f} were expected): the "
                        f"channel transform is probably wrong (one localization per channel instead of one per molecule)")
        if warn:
            warnings.warn(best.warning, DuplicateWarning, stacklevel=2)
    return best
