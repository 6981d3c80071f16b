"""A channel transform refined from localizations of the same movie fitted in each channel alone.

:func:`register_channels` finds ``T`` (3x3, nm, reference -> channel: ``r_c = T r_0``, conventions.md) from a
reference table and a channel table, each in its own channel's coordinates:

1. a global shift: the peak of the histogram of displacements between all same-frame pairs within
   ``max_shift_nm`` (:func:`plexloc.post.pairs.displacement_peak`);
2. matching: each reference localization's predicted position ``T r_0`` is paired with its nearest channel
   localization of the same frame within a radius (mutual nearest neighbours only);
3. a least-squares affine fit with outlier rejection (:func:`plexloc.calibrate.spline.fit_affine`, the one
   the bead calibration uses); steps 2-3 repeat at each radius of ``radii_nm`` until the pairs stop changing.

The result carries the residuals (nm) of the pairs used and the transform's own uncertainty: the standard error of
the position it maps, at the worst corner of the reference table's extent (:func:`transform_uncertainty`), divided by
one minus the share of chance pairs (:func:`chance_share`, an upper bound), which add nothing to the fit. Few pairs
with large residuals (a dim channel seen in a few percent of the frames) fit a transform whose corners are tens of nm
off, although every pair was right; that is warned above ``max_uncertainty_nm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plexloc.calibrate.spline import fit_affine
from plexloc.errors import InputError
from plexloc.post.pairs import displacement_peak, frame_points, mutual_nearest, same_frame_pairs
from plexloc.table import LocTable

__all__ = ["Registration", "chance_share", "register_channels", "transform_uncertainty"]

#: the transform's standard error (nm, the mapped position's rms error at the worst corner of the fitted field) above
#: which it is warned: a typical localization precision; the transform's error adds to every channel-1 position
MAX_UNCERTAINTY_NM = 10.0


@dataclass
class Registration:
    transform: np.ndarray  # (3, 3), nm, reference -> channel
    initial_shift_nm: np.ndarray  # (2,)
    n_reference: int
    n_channel: int
    n_pairs: int  # matched in the last round
    n_used: int  # kept by the outlier rejection
    residual_nm: dict[str, float]
    warning: str | None = None  # why the transform may not be trusted (few pairs for the localizations given)
    #: standard error (nm, rms over x and y) of the position the transform maps, at the worst corner of the reference
    #: table's extent (:func:`transform_uncertainty`)
    uncertainty_nm: float = float("nan")
    #: upper bound on the share of chance pairs among the pairs (:func:`chance_share`); ``uncertainty_nm`` is
    #: ``1 / (1 - chance_share)`` times the least-squares standard error
    chance_share: float = 0.0

    def to_dict(self) -> dict:
        return {
            "transform": self.transform.tolist(),
            "direction": "reference -> channel, r_c = T r_0 (homogeneous, nm)",
            "initial_shift_nm": self.initial_shift_nm.tolist(),
            "n_reference": self.n_reference,
            "n_channel": self.n_channel,
            "n_pairs": self.n_pairs,
            "n_used": self.n_used,
            "residual_nm": self.residual_nm,
            "transform_uncertainty_nm": self.uncertainty_nm,
            "chance_pairs_share_bound": self.chance_share,
            "warning": self.warning,
        }


def _apply(T: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ T[:2, :2].T + T[:2, 2]


def transform_uncertainty(src: np.ndarray, residual_nm: np.ndarray, extent: np.ndarray) -> float:
    """Standard error (nm, ``sqrt(var_x + var_y)``) of ``T p`` for an affine ``T`` fitted by least squares to the pairs
    whose reference positions are ``src`` (N, 2) and residual lengths ``residual_nm`` (N,), largest over the corners of
    ``extent`` ((2, 2): the lowest and highest x and y). Each axis's noise variance is estimated from the residuals,
    ``sum(r^2) / (2 (N - 3))`` (3 parameters per axis); ``var = sigma^2 p^T (A^T A)^-1 p`` with ``A = [src, 1]``.
    Infinite where fewer than 4 pairs leave no degree of freedom."""
    n = len(src)
    if n < 4:
        return float("inf")
    c = src.mean(axis=0)  # centred: the normal matrix stays well conditioned at chip-sized coordinates
    A = np.column_stack([src - c, np.ones(n)])
    cov = np.linalg.pinv(A.T @ A)
    s2 = float(np.sum(np.asarray(residual_nm, float) ** 2)) / (2 * (n - 3))
    corners = np.array([[x - c[0], y - c[1], 1.0] for x in extent[:, 0] for y in extent[:, 1]])
    per_axis = s2 * np.einsum("ij,jk,ik->i", corners, cov, corners)
    return float(np.sqrt(2 * per_axis.max()))


#: the largest chance-pair share :func:`chance_share` reports (its bound reads high where most molecules have partners)
MAX_CHANCE_SHARE = 0.5


def chance_share(mapped: np.ndarray, frame_r: np.ndarray, xy_c: np.ndarray, frame_c: np.ndarray, radius_nm: float,
                 n_pairs: int, pairs: tuple[np.ndarray, np.ndarray] | None = None, same_nm: float = 0.0) -> float:
    """Upper bound on the share of chance pairs (two different molecules matched in one frame) among ``n_pairs``: the
    same mutual-nearest matching within ``radius_nm`` with the reference's frames moved by half the movie (each frame
    number to the one half the list of frames further on, cyclically), where only chance pairs can match. It reads high
    where most molecules have true partners (those take the places chance pairs would get), tight where few do, the
    case that matters; at most :data:`MAX_CHANCE_SHARE`, 0 for tables of one frame.

    Why it matters: a chance pair's partner is the channel localization nearest the position the transform predicts,
    so it sits around that prediction and pulls the fit towards the transform it was matched with, adding nothing;
    the least-squares standard error counts it as a pair. Linearized, the fit's error is that of the true pairs alone,
    ``1 / (1 - f)`` times larger than the standard error of all pairs for a chance share ``f``. Session 50 measured
    the standard error 1.3-1.4x low (rms at the worst corner) at 6-19 % chance pairs.

    ``pairs`` (the real matching's ``(i, j)``) and ``same_nm``: a moved match whose channel localization is, in its own
    frame, the true partner of a reference localization within ``same_nm`` of the moved one is the same emitter seen
    again (a bead or fiducial in every frame, a binding site), not a chance pair, and is not counted: before, a bead
    table read the cap (0.5) with no chance pair at all and its uncertainty 2x the error (30 beads x 20 frames, 30 nm
    noise: 16.0 nm reported, 7.9 nm rms error, warned; review of session 51)."""
    frames = np.unique(frame_r)
    if len(frames) < 2 or n_pairs == 0:
        return 0.0
    moved = frames[(np.searchsorted(frames, frame_r) + len(frames) // 2) % len(frames)]
    ci, cj = mutual_nearest(mapped, moved, xy_c, frame_c, radius_nm)
    if pairs is not None and same_nm > 0 and len(ci):
        partner = np.full(len(xy_c), -1)
        partner[pairs[1]] = pairs[0]  # each channel localization's reference partner in its own frame (-1: none)
        q = partner[cj]
        again = (q >= 0) & (np.hypot(*(mapped[np.maximum(q, 0)] - mapped[ci]).T) <= same_nm)
        ci = ci[~again]
    return float(min(len(ci) / n_pairs, MAX_CHANCE_SHARE))


def register_channels(
    reference: LocTable,
    channel: LocTable,
    *,
    max_shift_nm: float = 3000.0,
    radii_nm: tuple[float, ...] = (300.0, 150.0, 100.0),
    bin_nm: float = 25.0,
    min_pairs: int = 20,
    min_matched_fraction: float = 0.1,
    max_rounds: int = 10,
    max_uncertainty_nm: float = MAX_UNCERTAINTY_NM,
    names: tuple[str, str] = ("the reference table", "the channel table"),
) -> Registration:
    """Affine transform reference -> channel from two single-channel tables of the same movie (nm).

    ``warning`` is set where fewer than ``min_pairs`` pairs, or fewer than ``min_matched_fraction`` of the smaller
    table's localizations, were matched: two tables of the same movie match most of their molecules, unrelated ones
    a few by chance (which an affine fit follows just as well).

    At each radius the matching and the fit repeat (at most ``max_rounds`` times) until the pairs stop changing: with
    one round per radius, pairs missed at the first radius were never found again (a 5 degree rotation matched
    2,269 of 3,240 molecules and its corners were off by 17 nm; now 3,220 and 1.5 nm, as at 1 degree).

    ``names`` (the tables' files, for the CLI) name them in the errors; a position that is not finite is refused
    naming its table, column, row and value.

    ``warning`` is also set where the transform's standard error at the worst corner of the reference table's extent
    (``uncertainty_nm``, :func:`transform_uncertainty`) is above ``max_uncertainty_nm``: 25-38 pairs of a channel seen
    in 5 % of the frames (46 nm residual rms) put a 64-px field's corners 34-43 nm off, silently, before."""
    if len(reference) < 3 or len(channel) < 3:
        raise InputError(f"registration needs >= 3 localizations in each table, got {len(reference)} in {names[0]} "
                         f"and {len(channel)} in {names[1]}")
    for table, name in zip((reference, channel), names):
        table.check_finite(("x_nm", "y_nm", "frame"), name=name)
    xy_r = np.column_stack([reference["x_nm"], reference["y_nm"]]).astype(float)
    xy_c = np.column_stack([channel["x_nm"], channel["y_nm"]]).astype(float)
    fr, fc = np.asarray(reference["frame"]), np.asarray(channel["frame"])
    i, j = same_frame_pairs(frame_points(*xy_r.T, fr, max_shift_nm), frame_points(*xy_c.T, fc, max_shift_nm),
                            max_shift_nm)
    if len(i) == 0:
        shared = np.intersect1d(fr, fc)  # which of the two it is: frames apart, or positions apart
        why = (f"they share {len(shared)} frame(s) but no pair of the same frame lies within {max_shift_nm:g} nm "
               "(--max-shift)" if len(shared) else
               f"{names[0]} has frames {int(fr.min())}-{int(fr.max())}, "
               f"{names[1]} frames {int(fc.min())}-{int(fc.max())}")
        raise InputError(f"no localizations of {names[0]} and {names[1]} share a frame within {max_shift_nm:g} nm: "
                         f"{why}; register tables fitted from the same movie")
    shift, _ = displacement_peak(xy_c[j] - xy_r[i], max_shift_nm, bin_nm=bin_nm, refine_nm=2 * bin_nm)
    T = np.eye(3)
    T[:2, 2] = shift
    res = used = None
    n_pairs = 0
    for radius in radii_nm:
        previous = None
        for _ in range(max_rounds):  # match and fit again until the pairs stop changing
            i, j = mutual_nearest(_apply(T, xy_r), fr, xy_c, fc, radius)
            n_pairs = len(i)
            if n_pairs < 3:
                raise InputError(f"only {n_pairs} localizations of {names[0]} and {names[1]} matched within "
                                 f"{radius:g} nm after the global shift {shift.round(1).tolist()} nm; the tables "
                                 "may not come from the same movie")
            if previous is not None and np.array_equal(previous[0], i) and np.array_equal(previous[1], j):
                break
            previous = (i, j)
            T, res, used = fit_affine(xy_r[i], xy_c[j])
    r = res[used]
    stats = {"rms": float(np.sqrt(np.mean(r**2))), "median": float(np.median(r)),
             "q90": float(np.quantile(r, 0.9)), "max": float(r.max())}
    smaller = min(len(reference), len(channel))
    fraction = n_pairs / smaller
    extent = np.array([xy_r.min(axis=0), xy_r.max(axis=0)])
    # the same emitter's two reference localizations lie 2 s0 apart (rms), within the pairs' residual rms,
    # sqrt(2 (s0^2 + s1^2)), where the channel is no more precise than the reference (partly, where it is)
    chance = chance_share(_apply(T, xy_r), fr, xy_c, fc, radii_nm[-1], n_pairs, pairs=(i, j),
                          same_nm=stats["rms"])
    uncertainty = transform_uncertainty(xy_r[i][used], r, extent) / (1.0 - chance)
    warning = None
    if n_pairs < min_pairs or fraction < min_matched_fraction:
        warning = (f"only {n_pairs} pairs matched ({100 * fraction:.1f} % of the smaller table's {smaller} "
                   "localizations): the tables may not come from the same movie, or too few molecules were seen in "
                   "both channels; do not trust this transform")
    elif not uncertainty <= max_uncertainty_nm:
        warning = (f"the transform is uncertain by {uncertainty:.0f} nm (standard error of the position it maps at the "
                   f"corners of the reference table's {extent[1, 0] - extent[0, 0]:.0f} x "
                   f"{extent[1, 1] - extent[0, 1]:.0f} nm extent; {int(used.sum())} pairs, residual rms "
                   f"{stats['rms']:.0f} nm), more than {max_uncertainty_nm:g} nm: its error adds to every position of "
                   "this channel; register tables of more frames (more molecules seen in both channels), or calibrate "
                   "on beads (plexloc calibrate)")
    return Registration(transform=T, initial_shift_nm=shift, n_reference=len(reference), n_channel=len(channel),
                        n_pairs=n_pairs, n_used=int(used.sum()), residual_nm=stats, warning=warning,
                        uncertainty_nm=uncertainty, chance_share=chance)
