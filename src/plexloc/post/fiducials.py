"""Drift from fiducial markers: beads or gold particles in the sample, localized in (nearly) every frame.

The drift engine ``fiducials`` of :func:`plexloc.post.drift.estimate_drift` (``plexloc drift --engine fiducials``), as
ThunderSTORM's "fiducial markers", Picasso's "undrift from picked" and SMAP's fiducial correction.

Finding them (:func:`find_fiducials`). The movie is cut into time windows of ``max(20, n_frames / 50)`` frames
(:data:`WINDOWS`), short enough that the stage drifts a few nm within one. In each window the localizations are counted
on a grid of ``radius_nm / 2`` pixels; every 2x2 block that holds about as many rows as the window has frames is a
candidate, its centre the median of its rows, refined twice as the median of the rows within ``radius_nm`` of it
(default 150 nm, :data:`FIDUCIAL_RADIUS_NM`); a candidate localized in at least ``min_share`` of the window's frames
(default 0.5, :data:`FIDUCIAL_MIN_SHARE`) seeds a track. A track is followed from its seed forward and backward through
the windows (the centre of each window's rows within ``radius_nm`` of the last centre, so that a drift of up to
``radius_nm`` per window is followed) while they look like the marker's rows of the window it was seeded in (each
frame's row nearest the centre, in at least ``min_share / 2`` of the window's frames, as near it, or the straight
line they follow in time within the window, as :data:`_LIKE_SPREAD` times their median distance there (so that a fast
drift within a window is followed), or :data:`_LIKE_FLOOR` of the radius, and as bright as :data:`_EDGE_PHOTONS` times
the median photons of its rows in the window followed before, where the table's photons vary (a bead that dims slowly is
followed): a marker that bleached beside a dense patch of the sample was followed onto the patch's rows, which lie all
over it and are dimmer, and removed them through the rest of the movie), and in every frame of a window where it is
present its localization is the row nearest its position there (the window centres, interpolated), from its first to its
last that looks like the marker. A track is a fiducial where it is localized in at least ``min_share`` of the frames
from its first to its last and that stretch is at least a quarter of the movie (:data:`FIDUCIAL_MIN_SPAN`; every share
counts only the frames the table has rows in, so that a table of every other frame, alternating excitation or a camera
that drops frames, has its markers in all of them): a bead that bleaches half-way is used for the half it lasts; and
where it is brighter than the sample, its median photons at least ``min_brightness`` (default 2,
:data:`FIDUCIAL_MIN_BRIGHTNESS`) times the other rows' median (a dense spot of the sample, a short filament of 200
molecules, is localized as often; not applied where the table's photons are one value). Two markers within ``radius_nm``
of each other, both localized in most frames, are two tracks (each frame's row nearest a path between them would jump
from one to the other); a track beside a marker that takes a share of its rows is none of its own. Or the user gives the
fiducials' positions (``positions_nm``, nm, where they are at any time of the movie), each followed from the window
where most of its frames lie within ``radius_nm`` of it; a position whose track is localized less often or over a
shorter stretch than a found marker's is refused (a sample molecule's few frames are no drift).

Since session 48 a marker whose photons change at once, an illumination, focus or camera-gain change, is followed
through, not taken for bleached (:func:`_steady`): where the rows at its place in a window are dimmer than half its
photons before, but lie there in as many frames with steady photons from one frame to the next (the median
``|log|`` ratio of consecutive rows at most :data:`_STEADY_LOG`), they are the marker dimmed; a bleached marker leaves
no rows there, or a patch of the sample's, whose photons jump from frame to frame. ``info["fiducials"][k]
["photon_changes"]`` gives the frame and the photons before and after, and a :class:`FiducialWarning` says it. A single
marker whose photons fell to 35 % at mid-movie ended there (5,000 frames, sine drift: 38.3 nm rms off, reported +-3.5
nm); now 2.0 nm, reported 2.1. And a marker off for longer than its search follows (:data:`_MAX_MISSED_WINDOWS`
windows: a long blink, out of focus) is one track, its tracks before and after joined where the later starts within
``radius_nm`` of where the earlier left off, as often localized and as bright, and where the path's jump across the
gap is the drift's as other markers measure it (:func:`_join`, :func:`_jump_confirmed`; ``stretches``): every
marker off for 250 frames of 2,000 cut all the tracks in two, and the drift across was not measured (39 nm off, called
unreliable); now 1.3 nm. Two different markers 50 nm apart, one bleached and the other there from later on, are not
joined (their jump was taken for drift: 24 nm off, reported +-11.5 nm, reliable; the review of session 48). A track keeps the rows that look like the marker (:func:`_track`), not every frame's nearest
row between its first and last: a marker that blinks off for tens of frames beside the sample took the sample's rows
in its off frames (its share read 70 % for 47 %; two markers "disagreed" by 9 nm, 5.5 nm off; now 1.7 nm where its
share is allowed, 2.1 nm from the other alone where not), and a spot as bright and as long as a marker but localized
in fewer frames than ``min_share`` asks is said, with the share that would use it.

Since session 49 markers given by position are joined across a gap as found ones are (the tracks after the gap found
from the seeds, :func:`_join`; given markers ended at the gap: every marker off for 500 frames of 5,000, 9.6 nm off and
called not measured, now 2.1 as found), and a track is cut where it comes back from a gap of 2 windows or more off its
own pace and off the other markers' jump (:func:`_split_off_pace`): two different markers 40-100 nm apart, one bleached
and the other there 200-300 frames later, were one track 20-49 nm off reported +-2.2.

The drift (:func:`fiducial_drift`). Per frame, each fiducial's displacement from its own reference position; each
fiducial weighs ``1 / s²`` per axis, ``s`` its localization scatter read from the differences of its positions in
consecutive frames (robust: 1.4826 x their median absolute deviation / sqrt(2)) and, where two or more fiducials share
frames, scaled by one factor per axis to the scatter they show against each other in the same frames, where the drift
cancels (:func:`_cross_scale`): a drift that moves from one frame to the next, a vibration, is in each one's own steps
(a 20 nm vibration of a 10-frame period read 8.5 nm for 3). The references are fitted with the drift (alternately: the
weighted mean of the fiducials' displacements per frame, then each reference as the median of its positions less the
drift), so that fiducials present over different stretches (one bleached) agree where they overlap. The per-frame drift
is smoothed with a weighted moving mean of ``smooth_frames`` frames (default 5, :data:`FIDUCIAL_SMOOTH_FRAMES`; 1:
none), frames with no fiducial interpolated linearly and the ends held constant (a warning where a stretch without
fiducials is longer than :data:`FIDUCIAL_LONG_GAP_FRAMES`). A localization more than :data:`FIDUCIAL_OUTLIER_SIGMA` of
its own steps' scatters off the running median of its :data:`_OWN_MEDIAN_FRAMES` nearest localizations is dropped first
(a sample molecule nearer than the bead in that frame, a bad fit). z where the fiducials' rows have a finite z and the
table's z is not one value; the drift in z is 0 otherwise.

Checking them against each other. Each fiducial's smoothed displacement (over :data:`FIDUCIAL_CHECK_FRAMES` frames) is
compared with the drift from the others; a fiducial that departs from them by more than
:data:`FIDUCIAL_REJECT_FACTOR` times the expected noise and more than :data:`FIDUCIAL_REJECT_NM` (rms over the frames,
x and y, after the constant offset) has moved on its own (detached, or a sample blob taken for a bead): the worst is
left out and the check repeated while 3 or more remain, each with a warning. Two that disagree cannot say which one
moved: both are kept, with a warning, and the disagreement enters the uncertainty. One fiducial cannot be checked at
all: a warning says so.

Its uncertainty (``info["uncertainty_nm"]``, the quantity of the other engines: the expected RMS over the frames of the
estimated minus the true drift, x and y together, after the constant offset; :func:`plexloc.post.drift.drift_error_rms`)
is the smoothed curve's noise, ``1 / sum of the weights`` in each frame's window (``info["uncertainty_per_frame_nm"]``,
frame by frame, x and y together), scaled up where the fiducials' smoothed tracks disagree with each other more than
that noise says (``info["residual_ratio"]``); over the frames the table has rows in. The smoothing's own bias, a drift
faster than ``smooth_frames`` flattened by the moving mean, is added where the residuals of the unsmoothed per-frame
drift about the smoothed one exceed their noise (``info["smoothing_bias_nm"]``; a warning says so where it is half the
noise or more), the noise expected of those residuals from the markers' scatter against each other: a vibration of
20 nm and a period of 10 frames gave 7.3 nm error at the default 5 frames, 7.4 nm said (3.3 before the bias was
counted), 2.7 nm error at 1 frame, 2.7 said (7.5 while the scatter came from each marker's own steps), 21.9 nm at 11
frames, 21.9 said (bench/fiducials45.py --fast). The same rule as the other engines' calls it unreliable
(:func:`plexloc.post.drift.drift_unreliable`, an :class:`~plexloc.post.drift.UnreliableDriftWarning`), and so does a
frame that no fiducial spans (the ones before it and after it share none: a stage jump beyond ``radius_nm`` cuts every
track in two, and the drift across is not measured; ``info["unlinked_at_frames"]``); z's likewise
(``z_uncertainty_nm``; unreliable above 10 nm and above half the z curve's RMS, as for the other engines).
Frames beyond the smoothing's reach of every fiducial (all bleached before the end, none yet there, all off at once)
are not measured: their drift is held or interpolated, and its expected error there, from the drift's own motion where
it is measured over as many frames (:func:`_gap_error`), enters the uncertainty (``info["unmeasured_nm"]``; NaN, not
known, where no measured stretch is as long as the gap); where it decides the verdict, the warning names the frames and
the fix. Before session 48 those frames took their neighbours' noise: two markers bleached by frame 3,000 of 5,000 on
a sine drift left 47 nm rms of error reported as +-2.9 nm, and the drift was subtracted as reliable (now +-49 nm,
unreliable).

The fiducials' own rows (every localization within ``radius_nm`` of a fiducial's position, frames of its first to its
last, the ones left out included) are removed by :func:`plexloc.post.drift.apply_drift` unless ``keep_fiducials``:
they would outshine the sample in the image (``DriftResult.remove_rows``; ``info["fiducial_rows"]`` counts them in
the table the drift came from).

Example:
    >>> import numpy as np
    >>> from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials, wobbly_drift
    >>> rng = np.random.default_rng(0)
    >>> truth = wobbly_drift(2000, 100.0, rng=rng)
    >>> t = blinking_table(structure_points("lines", 2000, fov_nm=8000.0, rng=rng), n_frames=2000, rng=rng,
    ...                    drift_nm=truth)
    >>> t = with_fiducials(t, 3, n_frames=2000, fov_nm=8000.0, drift_nm=truth, rng=rng)
    >>> res = fiducial_drift(t)
    >>> from plexloc.post.drift import drift_error_rms
    >>> bool(drift_error_rms(res.drift_nm, truth) < 2.0), res.info["n_fiducials"]
    (True, 3)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = [
    "FIDUCIAL_MIN_BRIGHTNESS",
    "FIDUCIAL_MIN_SHARE",
    "FIDUCIAL_RADIUS_NM",
    "FIDUCIAL_SMOOTH_FRAMES",
    "FiducialWarning",
    "Fiducial",
    "fiducial_drift",
    "fiducial_settings",
    "find_fiducials",
    "parse_position",
]

#: a fiducial is localized within this of its position (nm); its rows are removed within it
FIDUCIAL_RADIUS_NM = 150.0
#: a fiducial is localized in at least this share of the frames from its first to its last (and of a window's)
FIDUCIAL_MIN_SHARE = 0.5
#: a fiducial's median photons are at least this times the median of the other rows (the table's photons vary)
FIDUCIAL_MIN_BRIGHTNESS = 2.0
#: ... and that stretch covers at least this share of the movie
FIDUCIAL_MIN_SPAN = 0.25
#: ... and it is localized in at least this many frames (a table with rows in 1-3 frames had its bright sample rows
#: taken for markers and removed; session 48)
FIDUCIAL_MIN_FRAMES = 10
#: the per-frame drift is smoothed by a weighted moving mean of this many frames
FIDUCIAL_SMOOTH_FRAMES = 5
#: a stretch of frames without any fiducial longer than this is said (its drift is interpolated or held)
FIDUCIAL_LONG_GAP_FRAMES = 100
#: the fiducials' tracks are compared with each other smoothed over this many frames (or the smoothing, if longer)
FIDUCIAL_CHECK_FRAMES = 51
#: a fiducial is left out where its track departs from the others' by more than this times the expected noise ...
FIDUCIAL_REJECT_FACTOR = 5.0
#: ... and more than this (nm, rms over the frames, x and y, after the constant offset)
FIDUCIAL_REJECT_NM = 5.0
#: a fiducial's localization this many scatters off its own running median is dropped
FIDUCIAL_OUTLIER_SIGMA = 5.0
#: candidates refined per window (the most crowded blocks)
_CANDIDATES_PER_WINDOW = 40
#: a track is followed no further than this many windows in a row without it (bleached: the search stops)
_MAX_MISSED_WINDOWS = 5
#: a fiducial's localization this many scatters off its own running median (:data:`_OWN_MEDIAN_FRAMES` of its
#: localizations) is dropped before the drift is fitted (a sample molecule nearer than the bead in that frame, a bad
#: fit)
_OWN_MEDIAN_FRAMES = 11
#: a fiducial's scatter is floored at this (nm), so that an exact (simulated) track does not take all the weight
_SCATTER_FLOOR_NM = 0.05
#: past a fiducial's first and last frame (the window where it appeared or bleached), its rows are those within the
#: radius at least this times its median photons (:func:`remove_mask`)
_EDGE_PHOTONS = 0.5
#: a track is followed (and its rows kept) where its rows look like the marker of the window it was seeded in: each
#: frame's row nearest its path within this many times the marker's median distance there from its centre or from the
#: line its rows follow in time within the window, whichever is smaller (:func:`_off_marker`) ...
_LIKE_SPREAD = 3.0
#: ... (or this share of the radius, whichever is larger: an exact track, a simulation's, has a distance of 0) ...
_LIKE_FLOOR = 0.1
#: ... and at least :data:`_EDGE_PHOTONS` times the median photons of its rows in the window followed before (where
#: the table's photons vary): a marker that bleached beside a dense patch of the sample was followed on the sample's
#: rows (their positions fed the drift, and the patch's rows through the rest of the movie were removed as the
#: marker's)

#: ... unless the rows that lie where the marker is, in as many frames, keep steady photons from one frame to the next
#: (the median of ``|log(photons[i + 1] / photons[i])|`` of consecutive rows at most this): the marker itself, dimmed
#: or brightened at once (an illumination or focus change, the laser power or the camera's gain changed), followed
#: through. A bleached marker leaves no rows there in most frames, and a patch of the sample's rows changes from one
#: frame to the next as much as its molecules' photons differ (about 1.1 for exponential photons; a marker's 10 %
#: photon spread gives about 0.1): :func:`_steady`
_STEADY_LOG = 0.35

#: the markers' scatter is scaled to their scatter against each other where they share this many steps between
#: frames (:func:`_cross_scale`)
_MIN_CROSS_STEPS = 50
#: ... pairing each marker with this many others (the next in order)
_CROSS_PARTNERS = 4
#: a track sharing more than this share of its rows with a marker's track (with more rows) is beside it, no marker
_SHARED_ROWS = 0.2
#: a track with two or more rows within the radius in more than this share of its frames is looked at as two markers
_DOUBLE_SHARE = 0.25
#: ... and split where two spots lie more than this many times their scatter apart
_DOUBLE_SEPARATION = 4.0


class FiducialWarning(UserWarning):
    """Something about the fiducials that the user should know: one only, one left out, one bleached, a gap."""


def WINDOWS(n_frames: int) -> int:  # noqa: N802 (documented as a rule, like a constant)
    """Frames per time window of the search: ``max(20, ceil(n_frames / 50))``, the whole movie if shorter."""
    return int(min(max(n_frames, 1), max(20, math.ceil(n_frames / 50))))


@dataclass
class Fiducial:
    """One fiducial's track: its localizations (``rows`` of the table, one per frame ``frames``) and the centres of the
    windows it is present in (``window_frames``, ``window_xy_nm``: its path, raw coordinates, which
    :func:`remove_mask` follows); ``reach``: the frames from the start of the window before its first present one to
    the end of the window after its last (where it appeared or bleached: localized too seldom there to be followed,
    its rows are still removed, :func:`remove_mask`)."""

    rows: np.ndarray
    frames: np.ndarray
    window_frames: np.ndarray
    window_xy_nm: np.ndarray
    share: float  # of the frames from its first to its last
    photons: float  # median
    given: bool = False  # a position the user gave
    reach: tuple[int, int] | None = None  # None: its first to its last frame
    #: where its photons changed at once and it was followed through (:func:`_follow`): ``(frame, median photons
    #: before, median photons after)`` each
    photon_changes: tuple[tuple[int, float, float], ...] = ()
    #: the stretches ``(first, last)`` of frames it was followed over, where :func:`_join` joined its tracks across a
    #: gap (off for longer than the search follows); empty: one, its first to its last frame
    segments: tuple[tuple[int, int], ...] = ()

    @property
    def stretches(self) -> tuple[tuple[int, int], ...]:
        """The stretches of frames it was followed over: :attr:`segments`, or its first to its last frame."""
        return self.segments or ((self.first, self.last),)

    @property
    def first(self) -> int:
        return int(self.frames[0])

    @property
    def last(self) -> int:
        return int(self.frames[-1])

    def path(self, frames: np.ndarray) -> np.ndarray:
        """``(n, 2)`` its position (x, y nm, raw) at ``frames`` (interpolated between window centres, held past
        them)."""
        f = np.asarray(frames, dtype=float)
        return np.column_stack([np.interp(f, self.window_frames, self.window_xy_nm[:, 0]),
                                np.interp(f, self.window_frames, self.window_xy_nm[:, 1])])


def parse_position(text: str) -> tuple[float, ...]:
    """``"X,Y"`` or ``"X,Y,Z"`` (nm) to a tuple; InputError naming the text otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values):
        raise InputError(f"a fiducial's position must be X,Y in nm (two finite numbers, e.g. 1520,3300), got {text!r}")
    return values


def _check_settings(min_share: Any, radius_nm: Any, min_brightness: Any) -> None:
    """InputError naming the setting (and plexloc drift's option) where one is out of range."""
    def number(v: Any) -> float:
        try:
            return float("nan") if isinstance(v, bool) else float(v)
        except (TypeError, ValueError):
            return float("nan")

    if not 0 < number(min_share) <= 1:
        raise InputError(f"fiducial_min_share (--fiducial-min-frames) must be a share of the frames in (0, 1], got "
                         f"{min_share!r}")
    if not (math.isfinite(number(min_brightness)) and number(min_brightness) >= 0):
        raise InputError(f"min_brightness (--fiducial-min-brightness) must be a ratio >= 0, got {min_brightness!r}")
    if not (math.isfinite(number(radius_nm)) and number(radius_nm) > 0):
        raise InputError(f"fiducial radius must be a number of nm > 0, got {radius_nm!r}")


def _check_smooth(smooth_frames: Any) -> None:
    if isinstance(smooth_frames, bool) or not isinstance(smooth_frames, (int, np.integer)) or smooth_frames < 1:
        raise InputError(f"smooth_frames (plexloc drift --smooth) must be an integer >= 1, got {smooth_frames!r}")


def fiducial_settings(*, min_share: float | None = None, radius_nm: float | None = None,
                      min_brightness: float | None = None, positions_nm: Sequence[Sequence[float]] | None = None,
                      smooth_frames: int | None = None, keep_fiducials: bool | None = None) -> dict[str, Any]:
    """:func:`fiducial_drift`'s keyword arguments, checked, with their defaults where None: what a caller records
    before the estimate (``plexloc process --drift-engine fiducials`` checks them before any fit and puts them in
    summary.json). ``positions_nm`` comes back as a list of ``[x, y]`` (or ``[x, y, z]``) floats, or None.

    Raises:
        InputError: a setting out of range (naming it and plexloc drift's option), a position that is not 2 or 3
            finite numbers.
    """
    out: dict[str, Any] = {
        "min_share": FIDUCIAL_MIN_SHARE if min_share is None else min_share,
        "radius_nm": FIDUCIAL_RADIUS_NM if radius_nm is None else radius_nm,
        "min_brightness": FIDUCIAL_MIN_BRIGHTNESS if min_brightness is None else min_brightness,
        "smooth_frames": FIDUCIAL_SMOOTH_FRAMES if smooth_frames is None else smooth_frames,
        "keep_fiducials": False if keep_fiducials is None else keep_fiducials,
    }
    _check_settings(out["min_share"], out["radius_nm"], out["min_brightness"])
    _check_smooth(out["smooth_frames"])
    if not isinstance(out["keep_fiducials"], (bool, np.bool_)):
        raise InputError(f"keep_fiducials (--keep-fiducials) must be True or False, got {keep_fiducials!r}")
    given = None
    if positions_nm is not None:
        given = []
        for pos in positions_nm:
            try:
                p = [float(v) for v in pos]
            except (TypeError, ValueError):
                p = []
            if len(p) not in (2, 3) or not all(math.isfinite(v) for v in p):
                raise InputError(f"a fiducial's position (positions_nm, --fiducial X,Y) must be two finite numbers "
                                 f"x, y in nm, got {pos!r}")
            given.append(p)
    out.update(min_share=float(out["min_share"]), radius_nm=float(out["radius_nm"]),
               min_brightness=float(out["min_brightness"]), smooth_frames=int(out["smooth_frames"]),
               keep_fiducials=bool(out["keep_fiducials"]), positions_nm=given)
    return out


def _window_index(frame: np.ndarray, f0: int, length: int) -> np.ndarray:
    return (frame - f0) // length


def _share(frames: np.ndarray, n: int) -> float:
    return len(np.unique(frames)) / max(n, 1)


def _refine(xy: np.ndarray, frame: np.ndarray, centre: np.ndarray, radius: float, n_frames: int
            ) -> tuple[np.ndarray, float, np.ndarray]:
    """The median of the rows within ``radius`` of ``centre`` (twice), the share of the ``n_frames`` frames they lie
    in, and the rows (a mask)."""
    for _ in range(3):
        inside = np.sum((xy - centre) ** 2, axis=1) <= radius**2
        if not inside.any():
            return centre, 0.0, inside
        centre = np.median(xy[inside], axis=0)
    inside = np.sum((xy - centre) ** 2, axis=1) <= radius**2
    return centre, _share(frame[inside], n_frames), inside


def _occupied_between(occupied: np.ndarray, first: int, last: int) -> int:
    """How many of the frames ``occupied`` (sorted, unique: the frames the table has rows in) lie in
    ``first..last``."""
    return int(np.searchsorted(occupied, last, side="right") - np.searchsorted(occupied, first, side="left"))


def _seeds(xy: np.ndarray, frame: np.ndarray, win: np.ndarray, n_win: int, win_frames: np.ndarray, radius: float,
           min_share: float) -> tuple[list[tuple[float, int, np.ndarray]], float, int]:
    """Per window the crowded spots localized in at least ``min_share`` of its frames (``win_frames``: per window the
    frames the table has rows in): ``(share, window, centre)``; and the largest share any spot reached, with its
    window."""
    seeds: list[tuple[float, int, np.ndarray]] = []
    best, best_w = 0.0, 0
    order = np.argsort(win, kind="stable")
    bounds = np.searchsorted(win[order], np.arange(n_win + 1))
    px = radius / 2.0
    for w in range(n_win):
        idx = order[bounds[w]:bounds[w + 1]]
        if not len(idx):
            continue
        n_w = int(win_frames[w])
        p, fr = xy[idx], frame[idx]
        ij = np.floor((p - p.min(axis=0)) / px).astype(np.int64)
        m = int(ij[:, 1].max()) + 2
        keys, counts = np.unique(ij[:, 0] * m + ij[:, 1], return_counts=True)
        block = counts.copy()
        for step in (1, m, m + 1):  # the 2x2 block the bin opens
            at = np.searchsorted(keys, keys + step)
            hit = at < len(keys)
            hit[hit] = keys[at[hit]] == keys[hit] + step
            block[hit] += counts[at[hit]]
        top = np.argsort(-block, kind="stable")[:_CANDIDATES_PER_WINDOW]
        found: list[np.ndarray] = []
        for k in top:
            if block[k] < 0.5 * min_share * n_w and found:  # enough rows to be a candidate (the first always: `best`)
                break
            i, j = divmod(int(keys[k]), m)
            in_block = ((ij[:, 0] == i) | (ij[:, 0] == i + 1)) & ((ij[:, 1] == j) | (ij[:, 1] == j + 1))
            centre, share, _ = _refine(p, fr, np.median(p[in_block], axis=0), radius, n_w)
            if share > best:
                best, best_w = share, w
            if share >= min_share and all(np.hypot(*(centre - c)) > radius for c in found):
                found.append(centre)
                seeds.append((share, w, centre))
            if block[k] < 0.5 * min_share * n_w:
                break
    return seeds, best, best_w


@dataclass
class _Likeness:
    """What the rows of a marker look like (:func:`_like_reference`): the largest distance from its path of a row that
    is its own (nm), and the fewest photons (NaN: the photons are not compared); ``window_photons``: per time window
    the fewest photons its rows there were taken with (:func:`_follow`: half the median of its rows in the window
    before, so that a bead that dims slowly is followed; NaN where it was not followed)."""

    within_nm: float
    min_photons: float
    window_photons: np.ndarray | None = None
    #: the windows where the marker's photons changed at once and it was followed by its steady rows (:func:`_steady`)
    changed_windows: list[int] = field(default_factory=list)

    def mask(self, d2: np.ndarray, photons: np.ndarray, min_photons: float | np.ndarray | None = None) -> np.ndarray:
        """Which rows (squared distances ``d2`` from the path, their ``photons``) look like the marker's (at least
        ``min_photons``, by default :attr:`min_photons`)."""
        ok = d2 <= self.within_nm**2
        floor = self.min_photons if min_photons is None else min_photons
        with np.errstate(invalid="ignore"):
            ok &= ~(photons < floor)  # NaN photons or floor: not told apart
        return ok


def _nearest_per_frame(d2: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Indices (into ``d2``) of each frame's row nearest the path (squared distances ``d2``)."""
    o = np.lexsort((d2, frame))
    return o[np.r_[True, frame[o][1:] != frame[o][:-1]]]


def _off_marker(xy: np.ndarray, frame: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """How far the rows ``xy`` (one a frame, ``frame``, within one window) lie off the marker: their squared distances
    ``d2`` from its centre or path, or from the straight line in time that they follow (least squares), whichever is
    smaller. From the centre alone, a bead that drifted 200 nm in a window of a settling stage lay mostly beyond 3 times
    the spread of a quiet window, and its track was cut there; the rows of a patch of the sample lie all over it, near
    neither."""
    f = frame.astype(float)
    if len(xy) < 4 or np.ptp(f) == 0:
        return d2
    a = np.column_stack([np.ones(len(f)), f - f.mean()])
    return np.minimum(d2, np.sum((xy - a @ np.linalg.lstsq(a, xy, rcond=None)[0]) ** 2, axis=1))


def _like_reference(xy: np.ndarray, frame: np.ndarray, photons: np.ndarray, centre: np.ndarray, radius: float,
                    vary: bool) -> _Likeness:
    """What the marker looks like in the rows ``xy`` (one window) within ``radius`` of ``centre``: each frame's row
    nearest it, their median distance from it or from the line they follow in time (:func:`_off_marker`) times
    :data:`_LIKE_SPREAD` (at least :data:`_LIKE_FLOOR` of the radius)
    and :data:`_EDGE_PHOTONS` times their median photons (where the table's photons ``vary``)."""
    d2 = np.sum((xy - centre) ** 2, axis=1)
    inside = np.flatnonzero(d2 <= radius**2)
    if not len(inside):
        return _Likeness(radius, float("nan"))
    near = inside[_nearest_per_frame(d2[inside], frame[inside])]
    spread = float(np.median(np.sqrt(_off_marker(xy[near], frame[near], d2[near]))))
    floor = float(_EDGE_PHOTONS * np.median(photons[near])) if vary else float("nan")
    return _Likeness(min(radius, max(_LIKE_SPREAD * spread, _LIKE_FLOOR * radius)), floor)


def _steady(photons: np.ndarray) -> bool:
    """Whether ``photons`` (one row a frame, in frame order) are one steady emitter's: consecutive rows differ by a
    median ``|log|`` ratio of at most :data:`_STEADY_LOG` (a step between two levels is one pair of many)."""
    p = photons[np.isfinite(photons) & (photons > 0)]
    if len(p) < 5:
        return False
    return float(np.median(np.abs(np.diff(np.log(p))))) <= _STEADY_LOG


def _photon_changes(frame: np.ndarray, photons: np.ndarray, win: np.ndarray, windows: Sequence[int]
                    ) -> tuple[tuple[int, float, float], ...]:
    """Where a track's photons changed at once (``frame``, ``photons``, ``win``: its rows; ``windows``: where
    :func:`_follow` followed it through a change): the frame that splits its rows of that window and the windows on
    either side best into two levels (of log photons), with the median photons before and after."""
    out = []
    for w in sorted(set(windows)):
        at = np.flatnonzero((np.abs(win - w) <= 1) & np.isfinite(photons) & (photons > 0))
        if len(at) < 4:
            continue
        lp = np.log(photons[at])
        n = len(lp)
        i = np.arange(1, n)
        c = np.cumsum(lp)[:-1]
        score = np.abs(c / i - (lp.sum() - c) / (n - i)) * np.sqrt(i * (n - i))
        cut = int(i[np.argmax(score)])
        out.append((int(frame[at][cut]), float(np.median(photons[at][:cut])), float(np.median(photons[at][cut:]))))
    return tuple(out)


def _follow(xy: np.ndarray, frame: np.ndarray, photons: np.ndarray, order: np.ndarray, bounds: np.ndarray,
            n_win: int, win_frames: np.ndarray, start: int, centre: np.ndarray, radius: float, present_share: float,
            vary: bool) -> tuple[np.ndarray, _Likeness]:
    """From window ``start`` at ``centre``, forward and backward: the centre in each window where the rows within
    ``radius`` of the last centre lie in at least ``present_share`` of its frames (of the ``win_frames`` the table has
    rows in; NaN elsewhere), and so do the rows that look like the marker of window ``start`` (its :class:`_Likeness`,
    returned too: each frame's row nearest the centre, as near it or the line they follow in time as the marker's
    there, and at least half as bright as
    the marker's in the window followed before). A marker that
    bleached beside a dense patch of the sample is not followed onto the patch's rows (they lie all over the patch,
    and are dimmer)."""
    centres = np.full((n_win, 2), np.nan)
    idx = order[bounds[start]:bounds[start + 1]]
    like = _like_reference(xy[idx], frame[idx], photons[idx], centre, radius, vary)
    like.window_photons = np.full(n_win, np.nan)
    for direction in (1, -1):
        c = centre
        w = start if direction == 1 else start - 1
        misses = 0
        step = np.zeros(2)  # the centre's move a window, where last followed
        floor = like.min_photons  # from the last window followed: a bead that dims slowly is followed
        while 0 <= w < n_win and misses < _MAX_MISSED_WINDOWS:
            idx = order[bounds[w]:bounds[w + 1]]
            n_w = int(win_frames[w])
            share = 0.0
            if len(idx):
                new, share, inside = _refine(xy[idx], frame[idx], c, radius, n_w)
                if share >= present_share:  # and the rows look like the marker's
                    rows = idx[inside]
                    d2 = np.sum((xy[rows] - new) ** 2, axis=1)
                    k = _nearest_per_frame(d2, frame[rows])
                    near = rows[k]
                    off = _off_marker(xy[near], frame[near], d2[k])
                    ok = like.mask(off, photons[near], floor)
                    share = _share(frame[near][ok], n_w)
                    with np.errstate(invalid="ignore"):
                        bright = _share(frame[rows][photons[rows] >= floor], n_w)
                    if share < present_share and np.isfinite(floor) and bright < present_share:
                        # dimmer than half the marker before: bleached, or dimmed at once (:func:`_dimmed_floor`)
                        dimmed = _dimmed_floor(like, off, xy[near], frame[near], photons[near], floor, n_w,
                                               c + step * (misses + 1), present_share)
                        if dimmed is not None:
                            floor = dimmed
                            ok = like.mask(off, photons[near], floor)
                            share = _share(frame[near][ok], n_w)
                            like.changed_windows.append(w)
            if share >= present_share:
                step = (new - c) / (misses + 1)
                c = new
                centres[w] = c
                like.window_photons[w] = floor
                seen = photons[near][ok]
                seen = seen[np.isfinite(seen)]
                if np.isfinite(floor) and len(seen):
                    floor = float(_EDGE_PHOTONS * np.median(seen))
                misses = 0
            else:
                misses += 1
            w += direction
    return centres, like


def _dimmed_floor(like: _Likeness, off: np.ndarray, xy: np.ndarray, frame: np.ndarray, photons: np.ndarray,
                  floor: float, n_w: int, paced: np.ndarray, present_share: float) -> float | None:
    """The photon floor to follow a marker on with, where in a window its rows (each frame's nearest: ``off``, ``xy``,
    ``frame``, ``photons``) fell below ``floor`` (half the marker's before) because it dimmed at once (an illumination
    change), else ``None`` (bleached: its place left to the sample's rows). A dimmed marker keeps steady rows, where it
    was, in ``present_share`` of the window's ``n_w`` frames. Where rows as bright as the marker are still there,
    though not each frame's nearest, it is there beside another steady emitter (a dimmer marker within the radius):
    the track was handed from one to the other and back as "dimmed", the drift of two markers 40 nm apart 17 nm off,
    reported +-2.1 nm (session 48's review); the caller asks only where there are none."""
    here = like.mask(off, photons, float("nan"))
    p = photons[here]
    # ... and where the marker was: a dimmer emitter beside a bleached marker (another marker 40 nm off) keeps steady
    # rows too, and the line in time through both (:func:`_off_marker`) hid the jump to it (8 nm off for 1.7, the jump
    # taken for drift)
    with np.errstate(invalid="ignore"):
        dim = here & ~(photons >= floor)
        was = xy[here & (photons >= floor)]
    # (its place from the last window followed on at the drift's pace there, ``paced``, where the window has no
    # bright rows: a sine drift moves 15 nm a window of 40 frames)
    at = np.median(was, axis=0) if len(was) >= 3 else paced
    stayed = not dim.any() or float(np.hypot(*(np.median(xy[dim], axis=0) - at))) <= like.within_nm
    if _share(frame[here], n_w) >= present_share and _steady(p) and stayed:
        return float(_EDGE_PHOTONS * np.percentile(p, 25))
    return None


def _two_spots(r: np.ndarray) -> np.ndarray | None:
    """Two spots in the offsets ``r`` ``(n, 2)`` of a track's rows from its path (two markers within the radius, both
    localized in most frames): their centres ``(2, 2)`` by 2-means, where they lie more than
    :data:`_DOUBLE_SEPARATION` times their scatter apart; None otherwise."""
    if len(r) < 20:
        return None
    u = np.linalg.eigh(np.cov(r.T))[1][:, -1]  # the axis the offsets spread along
    side = r @ u > np.median(r @ u)
    mu = np.zeros((2, 2))
    for _ in range(20):
        if side.all() or not side.any():
            return None
        mu = np.stack([np.median(r[~side], axis=0), np.median(r[side], axis=0)])
        new = np.sum((r - mu[1]) ** 2, axis=1) < np.sum((r - mu[0]) ** 2, axis=1)
        if np.array_equal(new, side):
            break
        side = new
    spread = max(float(1.4826 * np.median(np.linalg.norm(r[side] - mu[1], axis=1))),
                 float(1.4826 * np.median(np.linalg.norm(r[~side] - mu[0], axis=1))), _SCATTER_FLOOR_NM)
    return mu if float(np.linalg.norm(mu[1] - mu[0])) > _DOUBLE_SEPARATION * spread else None


def _track(xy: np.ndarray, frame: np.ndarray, photons: np.ndarray, win: np.ndarray, centres: np.ndarray, f0: int,
           length: int, n_frames: int, occupied: np.ndarray, radius: float, given: bool,
           like: _Likeness | None = None) -> list[Fiducial]:
    """The rows of the track whose window centres are ``centres``: in each frame of a window it is present in, the row
    nearest its path within ``radius``, from the first to the last that looks like the marker (``like``, of
    :func:`_follow`: in the window where it bleached, the sample's rows after it are not its own). Two tracks where two
    markers lie within ``radius`` of each other (localized together in at least :data:`_DOUBLE_SHARE` of its frames,
    :func:`_two_spots`): each its own, its path shifted to it (the row nearest the path took one or the other, a track
    jumping between them)."""
    present = np.flatnonzero(np.isfinite(centres[:, 0]))
    if not len(present):
        return []
    wf = f0 + present * length + (np.minimum(length, n_frames - present * length) - 1) / 2.0
    reach = (f0 + max(int(present[0]) - 1, 0) * length, f0 + min((int(present[-1]) + 2) * length, n_frames) - 1)
    wxy = centres[present]
    base = Fiducial(rows=np.zeros(0, np.int64), frames=np.zeros(0, np.int64), window_frames=wf, window_xy_nm=wxy,
                    share=0.0, photons=float("nan"), given=given)
    cand = np.flatnonzero(np.isin(win, present))
    path = base.path(frame[cand])
    d2 = np.sum((xy[cand] - path) ** 2, axis=1)
    near = d2 <= radius**2
    cand, path = cand[near], path[near]
    if not len(cand):
        return []
    per_frame = np.bincount(frame[cand] - f0)
    spots = None
    offsets = [np.zeros(2)]
    if np.count_nonzero(per_frame >= 2) > _DOUBLE_SHARE * np.count_nonzero(per_frame):
        # offsets from each window's mean (its median jumps from one marker to the other from window to window)
        at = np.searchsorted(present, win[cand])
        n_at = np.bincount(at, minlength=len(present))
        mean = np.column_stack([np.bincount(at, xy[cand, a], minlength=len(present)) for a in (0, 1)])
        mean = np.where(n_at[:, None] > 0, mean / np.maximum(n_at, 1)[:, None], wxy)
        spots = _two_spots(xy[cand] - mean[at])
        if spots is not None:
            wxy = mean
            path = np.column_stack([np.interp(frame[cand], wf, wxy[:, a]) for a in (0, 1)])
            offsets = list(spots)
    out = []
    for j, off in enumerate(offsets):
        d2 = np.sum((xy[cand] - path - off) ** 2, axis=1)
        mine = np.ones(len(cand), dtype=bool)
        if spots is not None:  # the rows nearer this spot than the other
            mine = d2 <= np.sum((xy[cand] - path - offsets[1 - j]) ** 2, axis=1)
        c, dd = cand[mine], d2[mine]
        if not len(c):
            continue
        keep = _nearest_per_frame(dd, frame[c])
        rows, dd = c[keep], dd[keep]
        if like is not None:  # from its first row to its last that look like the marker
            floors = like.min_photons if like.window_photons is None else like.window_photons[win[rows]]
            apart = dd.copy()
            for w in np.unique(win[rows]):  # each window's rows apart
                at = win[rows] == w
                apart[at] = _off_marker(xy[rows[at]], frame[rows[at]], dd[at])
            own = np.flatnonzero(like.mask(apart, photons[rows], floors))
            if not len(own):
                continue
            rows = rows[own]
        changes = ()
        if like is not None and like.changed_windows:
            inside = [w for w in like.changed_windows if win[rows[0]] <= w <= win[rows[-1]]]
            changes = _photon_changes(frame[rows], photons[rows], win[rows], inside)
        fid = Fiducial(rows=rows, frames=frame[rows], window_frames=wf, window_xy_nm=wxy + off, share=0.0,
                       photons=float("nan"), given=given, reach=reach, photon_changes=changes)
        fid.share = len(rows) / max(_occupied_between(occupied, fid.first, fid.last), 1)
        fid.photons = float(np.median(photons[rows]))
        out.append(fid)
    return out


#: a marker's tracks before and after a gap are joined only where their path's jump across it is within this (nm) of
#: the jump of another marker's path over the same frames (:func:`_jump_confirmed`): the drift's. Markers' paths are
#: window medians, known to about 1 nm; two different markers closer than this are one spot to a search of 150 nm
_JOIN_AGREE_NM = 10.0


def _jump(a: Fiducial, b: Fiducial) -> tuple[np.ndarray, float, float]:
    """The jump of the path from ``a``'s last window to ``b``'s first, and those windows' centre frames."""
    return b.window_xy_nm[0] - a.window_xy_nm[-1], float(a.window_frames[-1]), float(b.window_frames[0])


def _jump_confirmed(a: Fiducial, b: Fiducial, steady: Sequence[Fiducial], pairs: Sequence[tuple[Fiducial, Fiducial]]
                    ) -> bool:
    """Whether the jump of the path across the gap from ``a`` to ``b`` is the drift's: within :data:`_JOIN_AGREE_NM`
    of the median jump over the same frames of the ``steady`` tracks that span the gap, or, where none does (every
    marker off at once), of another track's jump to its partner (``pairs``) across a gap that overlaps this one."""
    jump, t1, t2 = _jump(a, b)
    span = [s for s in steady if s is not a and s is not b and s.window_frames[0] <= t1 and s.window_frames[-1] >= t2]
    if span:
        other = np.median([s.path(np.array([t2]))[0] - s.path(np.array([t1]))[0] for s in span], axis=0)
        return float(np.hypot(*(jump - other))) <= _JOIN_AGREE_NM
    for c, e in pairs:
        if e is b or c.rows[-1] == a.rows[-1]:
            continue
        other, c1, c2 = _jump(c, e)
        if c1 < t2 and c2 > t1 and float(np.hypot(*(jump - other))) <= _JOIN_AGREE_NM:
            return True
    return False


#: :func:`_split_off_pace`: a gap of at least this many windows without the marker is checked
_JUMP_CHECK_MISSES = 2
#: ... and a jump off the pace is cut only above this many times the largest jump the track's own path makes off its
#: pace over as many frames where it is there throughout (:func:`_own_off_pace`; session 49 review)
_OWN_PACE_FACTOR = 1.5


def _own_off_pace(wf: np.ndarray, long_gap: np.ndarray, span: float, length: int,
                  off_pace: Callable[[int, int], float]) -> float | None:
    """The largest jump off its pace (``off_pace(i, j)``) the track makes from a window ``i`` to the window ``j``
    about ``span`` frames later, over every such pair whose frames between (and 3 windows on each side, the pace's)
    hold no gap of the check (``long_gap``, per step of ``wf``): what the drift alone makes the path do across a gap
    that long. None where no such pair is on the track."""
    worst = None
    for i in range(3, len(wf)):
        j = int(np.searchsorted(wf, wf[i] + span - 0.5 * length))
        if j + 3 >= len(wf) or wf[j] - wf[i] > span + length or long_gap[i - 3:j + 3].any():
            continue
        off = off_pace(i, j)
        worst = off if worst is None else max(worst, off)
    return worst


def _split_off_pace(track: Fiducial, others: Sequence[Fiducial], length: int, occupied: np.ndarray,
                    photons: np.ndarray) -> list[Fiducial]:
    """``track`` cut at every gap of :data:`_JUMP_CHECK_MISSES` windows or more across which its path jumps by more
    than :data:`_JOIN_AGREE_NM` (or 5 times its window centres' own noise) off its own pace (a line through up to 4
    window centres on each side) and off the jump of the ``others`` followed across the gap, where there are any (a
    stage jump moves them all), else by more than :data:`_OWN_PACE_FACTOR` times the largest such jump its own path
    makes over as many frames (:func:`_own_off_pace`: what a curving drift alone does): two different markers within
    the search's reach, one bleached and the other there from later on, were followed as one track (50-100 nm apart,
    300 frames apart: 24-48 nm off, reported +-2.3; session 49). :func:`_join` joins the pieces again where other
    markers say the drift jumped as much."""
    wf, wxy = track.window_frames, track.window_xy_nm
    # the centres' own noise, from the second differences of three consecutive windows (the drift's pace cancels; a
    # wide radius takes sample rows in)
    gap = np.diff(wf)
    consecutive = (gap[:-1] <= 1.5 * length) & (gap[1:] <= 1.5 * length)
    bend = np.diff(wxy, n=2, axis=0)[consecutive]
    noise = (float(np.hypot(*(1.4826 * np.median(np.abs(bend - np.median(bend, axis=0)), axis=0)))) / np.sqrt(6.0)
             if len(bend) >= 5 else 0.0)
    limit = max(_JOIN_AGREE_NM, 5.0 * noise)

    def off_pace(i: int, j: int) -> float:
        """How far the path jumps from window ``i`` to window ``j`` off the pace of up to 4 windows on each side."""
        before, after = slice(max(i - 3, 0), i + 1), slice(j, min(j + 4, len(wf)))
        paces = [np.polyfit(wf[s_], wxy[s_], 1)[0] for s_ in (before, after) if len(wf[s_]) >= 2]
        pace = np.mean(paces, axis=0) if paces else np.zeros(2)
        return float(np.hypot(*(wxy[j] - wxy[i] - pace * (wf[j] - wf[i]))))

    long_gap = np.diff(wf) >= (_JUMP_CHECK_MISSES + 1) * length
    cuts = []
    for i in np.flatnonzero(long_gap):
        off = off_pace(i, i + 1)
        if off <= limit:
            continue
        # a curving drift makes the marker's own path jump off that pace too (one marker blinking off for 200
        # frames on a sine drift of 60 nm and 2 periods in 2,000 frames: 12-18 nm, cut, and the drift across it
        # called not measured, 12-13 nm off; session 49 review): the same jump over as many frames, measured on the
        # track where it is there throughout, is what the drift alone makes, and the jump must stand out of that
        # (where no other marker is followed across the gap: those say what the drift did there)
        span = [o for o in others if o is not track and o.window_frames[0] <= wf[i] and o.window_frames[-1] >= wf[i + 1]]
        if span:  # other markers followed across say what the drift did (a stage jump: as much)
            theirs = np.median([o.path(wf[i + 1:i + 2])[0] - o.path(wf[i:i + 1])[0] for o in span], axis=0)
            if float(np.hypot(*(wxy[i + 1] - wxy[i] - theirs))) <= limit:
                continue
        else:
            own = _own_off_pace(wf, long_gap, wf[i + 1] - wf[i], length, off_pace)
            if own is not None and off <= _OWN_PACE_FACTOR * own:
                continue
        cuts.append(0.5 * (wf[i] + wf[i + 1]))
    if not cuts:
        return [track]
    out = []
    edges = [-np.inf, *cuts, np.inf]
    reach = track.reach or (track.first, track.last)
    for lo, hi in zip(edges[:-1], edges[1:]):
        r = (track.frames >= lo) & (track.frames < hi)
        wsel = (wf >= lo) & (wf < hi)
        if not r.any() or not wsel.any():
            continue
        frames = track.frames[r]
        piece = Fiducial(rows=track.rows[r], frames=frames, window_frames=wf[wsel], window_xy_nm=wxy[wsel], share=0.0,
                         photons=float(np.median(photons[track.rows[r]])), given=track.given,
                         reach=(int(max(reach[0], lo)) if np.isfinite(lo) else reach[0],
                                int(min(reach[1], hi)) if np.isfinite(hi) else reach[1]),
                         photon_changes=tuple(c for c in track.photon_changes if lo <= c[0] < hi))
        piece.share = len(piece.rows) / max(_occupied_between(occupied, piece.first, piece.last), 1)
        out.append(piece)
    return out


def _join(tracks: list[Fiducial], radius: float, min_share: float, occupied: np.ndarray, photons: np.ndarray
          ) -> list[Fiducial]:
    """Tracks of one marker that was not localized for a while, longer than :data:`_MAX_MISSED_WINDOWS` windows (a
    long blink, out of focus), joined into one: a track that starts after another ends, where that one left off
    (within ``radius`` of its path there), localized in at least ``min_share`` of its own frames and as bright
    (within a factor 1 / :data:`_EDGE_PHOTONS` of its median photons, ``photons`` of the table's rows): a patch of the
    sample found where a marker bleached is neither. Each is joined to the earliest such track after it (the nearest
    of those starting first). The joined track's frames without a localization are a gap its drift is interpolated
    over (:func:`_gap_error`); ``Fiducial.segments`` keeps the stretches, whose rows alone :func:`remove_mask`
    removes.

    Two different markers within ``radius`` of each other, one bleached and the other there from later on, are as
    close and as bright: the jump of the path across the gap is taken for the drift's only where other markers say the
    drift jumped as much (within :data:`_JOIN_AGREE_NM`; :func:`_jump_confirmed`). Joined unconfirmed, two markers 50
    nm apart, the one from frame 2,000 and the other from 2,600, made a track whose drift was 24 nm off, reported
    +-4.1 nm and reliable (with a third marker beside them: 12.6 nm off for 1.7); a marker whose gap nothing else
    spans stays two tracks, and the drift across it is called not measured."""
    def partner(a: Fiducial, pool: list[Fiducial]) -> int | None:
        """The index in ``pool`` of the track ``a`` would be joined to: the earliest plausible one after it."""
        end = a.path(np.array([a.last]))[0]
        cand = [(b.first, float(np.hypot(*(b.path(np.array([b.first]))[0] - end))), i) for i, b in enumerate(pool)
                if b.first > a.last and b.share >= min_share
                and _EDGE_PHOTONS * a.photons <= b.photons <= a.photons / _EDGE_PHOTONS]
        cand = [c for c in cand if c[1] <= radius]
        return min(cand)[2] if cand else None

    ordered = sorted(tracks, key=lambda f: f.first)
    steady = [f for f in ordered if f.share >= min_share]
    pairs = []  # every track's plausible partner: the jumps other markers make across a gap
    for i, c in enumerate(ordered):
        j = partner(c, ordered[i + 1:])
        if j is not None:
            pairs.append((c, ordered[i + 1 + j]))
    pool = list(ordered)
    out: list[Fiducial] = []
    while pool:
        a = pool.pop(0)
        while True:
            i = partner(a, pool)
            if i is None or not _jump_confirmed(a, pool[i], steady, pairs):
                break
            b = pool.pop(i)
            rows = np.r_[a.rows, b.rows]
            reach = (min((a.reach or (a.first, a.last))[0], a.first), max((b.reach or (b.first, b.last))[1], b.last))
            joined = Fiducial(rows=rows, frames=np.r_[a.frames, b.frames],
                              window_frames=np.r_[a.window_frames, b.window_frames],
                              window_xy_nm=np.r_[a.window_xy_nm, b.window_xy_nm], share=0.0,
                              photons=float(np.median(photons[rows])), given=a.given, reach=reach,
                              photon_changes=a.photon_changes + b.photon_changes,
                              segments=a.stretches + b.stretches)
            joined.share = len(rows) / max(_occupied_between(occupied, joined.first, joined.last), 1)
            a = joined
        out.append(a)
    return out


def _seeded_tracks(seeds: list, xy: np.ndarray, frame: np.ndarray, photons: np.ndarray, order: np.ndarray,
                   bounds: np.ndarray, n_win: int, win_frames: np.ndarray, win: np.ndarray, f0: int, length: int,
                   n_frames: int, occupied: np.ndarray, radius_nm: float, present_share: float, vary: bool
                   ) -> list[Fiducial]:
    """The tracks followed from ``seeds`` (:func:`_seeds`, brightest share first), before :func:`_join`."""
    followed: list[np.ndarray] = []  # the window centres of every track followed
    tracks: list[Fiducial] = []
    for share, w, centre in seeds:
        # a spot on a track already followed (its centre in that window within the radius) seeds nothing new
        if any(np.isfinite(c[w, 0]) and np.hypot(*(c[w] - centre)) <= radius_nm for c in followed):
            continue
        centres, like = _follow(xy, frame, photons, order, bounds, n_win, win_frames, w, centre, radius_nm,
                                present_share, vary)
        followed.append(centres)
        for fid in _track(xy, frame, photons, win, centres, f0, length, n_frames, occupied, radius_nm, False, like):
            # one spot followed twice (from seeds the first track's search stopped short of): counted once
            if any(len(np.intersect1d(fid.rows, g.rows, assume_unique=True)) > 0.5 * min(len(fid.rows), len(g.rows))
                   for g in tracks):
                continue
            tracks.append(fid)
    return tracks


def find_fiducials(table: LocTable, *, min_share: float = FIDUCIAL_MIN_SHARE, radius_nm: float = FIDUCIAL_RADIUS_NM,
                   min_brightness: float = FIDUCIAL_MIN_BRIGHTNESS,
                   positions_nm: Sequence[Sequence[float]] | None = None) -> list[Fiducial]:
    """The fiducials of ``table`` (see the module docstring), brightest first; ``positions_nm``: the user's (x, y nm,
    raw coordinates of the table), each followed through the movie.

    Raises:
        InputError: no fiducial found (the largest share of frames any spot reached, and what to change); a given
            position with no localizations near it; bad settings.
    """
    _check_settings(min_share, radius_nm, min_brightness)
    where = f"{table.source}: " if table.source else ""
    if len(table) == 0:
        raise InputError(f"{where}no fiducial found: the table has no localizations")
    frame = np.asarray(table["frame"], dtype=np.int64)
    n_distinct = len(np.unique(frame))
    if n_distinct < FIDUCIAL_MIN_FRAMES:
        # a marker localized in 1-3 frames is any bright row of the sample: they were taken for markers, and removed
        raise InputError(f"{where}fiducial markers give the drift frame by frame, and a marker is localized in at least "
                         f"{FIDUCIAL_MIN_FRAMES} frames: column frame has {n_distinct} distinct value(s) "
                         f"({int(frame.min())}..{int(frame.max())}); give the table of a movie (with its frame "
                         "numbers), or keep it uncorrected")
    xy = np.column_stack([table["x_nm"], table["y_nm"]])
    photons = np.asarray(table["photons"], dtype=float)
    f0 = int(frame.min())
    n_frames = int(frame.max()) - f0 + 1
    length = WINDOWS(n_frames)
    n_win = math.ceil(n_frames / length)
    win = _window_index(frame, f0, length)
    # shares count the frames the table has rows in (alternating excitation, a camera that drops frames: a marker in
    # every frame there is one), not the frames between them with no localization at all
    occupied = np.unique(frame)
    win_frames = np.bincount(_window_index(occupied, f0, length), minlength=n_win)
    order = np.argsort(win, kind="stable")
    bounds = np.searchsorted(win[order], np.arange(n_win + 1))
    present_share = 0.5 * float(min_share)
    finite = photons[np.isfinite(photons)]
    vary = len(finite) > 0 and float(np.ptp(finite)) > 0  # the photons tell rows apart
    fids: list[Fiducial] = []
    if positions_nm is not None and len(positions_nm):
        # the tracks of the whole table, found from the seeds as for markers not given: they say what the drift did
        # across a given marker's gap (:func:`_split_off_pace`) and hold its track after a gap its search does not
        # follow (:func:`_join`)
        seeds = _seeds(xy, frame, win, n_win, win_frames, radius_nm, min_share)[0]
        seeds.sort(key=lambda s: -s[0])
        seeded = _seeded_tracks(seeds, xy, frame, photons, order, bounds, n_win, win_frames, win, f0, length, n_frames,
                                occupied, radius_nm, present_share, vary)
        seeded = [p for t in seeded for p in _split_off_pace(t, [o for o in seeded if o.share >= min_share], length,
                                                              occupied, photons)]
        steady = [t for t in seeded if t.share >= min_share]
        for pos in positions_nm:
            p = np.asarray(pos, dtype=float)[:2]
            near = np.sum((xy - p) ** 2, axis=1) <= radius_nm**2
            if not near.any():
                raise InputError(f"{where}no localization lies within {radius_nm:g} nm of the fiducial given at "
                                 f"({p[0]:g}, {p[1]:g}) nm in any frame; give its position in the table's nm "
                                 "(x_nm, y_nm), or a larger radius")
            counts = np.bincount(win[near], minlength=n_win)
            start = int(np.argmax(counts))
            c0 = np.median(xy[near & (win == start)], axis=0)
            centres, like = _follow(xy, frame, photons, order, bounds, n_win, win_frames, start, c0, radius_nm,
                                    present_share, vary)
            if not np.isfinite(centres[:, 0]).any():  # too sparse to pass the window test: the window it is in
                centres[start] = c0
            found = _track(xy, frame, photons, win, centres, f0, length, n_frames, occupied, radius_nm, True, like)
            if not found:
                raise InputError(f"{where}no track of localizations near the fiducial given at ({p[0]:g}, {p[1]:g}) nm")
            # two markers within the radius: the one given (its path nearest the position)
            fid = min(found, key=lambda f: float(np.min(np.sum((f.window_xy_nm - p) ** 2, axis=1))))
            # two markers within the radius, one bleached and the other there from later on, followed as one track:
            # apart, as found ones are, and the one given the piece whose median path is nearest the position (given,
            # both were one track 14 nm off whichever was given; session 49 review)
            fid = min(_split_off_pace(fid, steady, length, occupied, photons),
                      key=lambda f: float(np.hypot(*(np.median(f.window_xy_nm, axis=0) - p))))
            span = fid.last - fid.first + 1
            if fid.share < min_share or span < FIDUCIAL_MIN_SPAN * n_frames or len(fid.rows) < FIDUCIAL_MIN_FRAMES:
                raise InputError(
                    f"{where}the fiducial given at ({p[0]:g}, {p[1]:g}) nm is localized in {len(fid.rows)} frames "
                    f"({fid.first}..{fid.last}, {100 * fid.share:.0f} % of them, over {100 * span / n_frames:.0f} % of "
                    f"the movie): not a marker, which is localized in at least {100 * min_share:.0f} % of the "
                    f"frames over at least {100 * FIDUCIAL_MIN_SPAN:.0f} % of the movie, and in at least "
                    f"{FIDUCIAL_MIN_FRAMES} frames; give a marker's position "
                    "in the table's nm (x_nm, y_nm), or a lower share (fiducial_min_share, --fiducial-min-frames)")
            if any(len(np.intersect1d(fid.rows, g.rows)) > 0.5 * len(fid.rows) for g in fids):
                warnings.warn(f"{where}the fiducial given at ({p[0]:g}, {p[1]:g}) nm follows the same localizations "
                              "as one given before it; it is counted once", FiducialWarning, stacklevel=3)
                continue
            fids.append(fid)
        # a given marker off for longer than its search follows (a long blink, out of focus, every marker off at once)
        # is joined across the gap as a found one is (:func:`_join`, the same checks): its track after the gap is
        # found from the seeds, as for markers not given. Before session 49 a given marker ended at its gap, and with
        # every marker off for 500 frames of 5,000 the drift was 9.6 nm off and called not measured (found: 2.1)
        others = [t for t in seeded if not any(len(np.intersect1d(t.rows, g.rows)) for g in fids)]
        joined = _join(fids + others, radius_nm, min_share, occupied, photons)
        out: list[Fiducial] = []
        for g in fids:
            track = next(t for t in joined if np.isin(g.rows[0], t.rows))
            track.given = True
            if not any(track is o for o in out):
                out.append(track)
        return out
    seeds, best, best_w = _seeds(xy, frame, win, n_win, win_frames, radius_nm, min_share)
    seeds.sort(key=lambda s: -s[0])
    best_track, best_span = 0.0, (0, 0)
    tracks = _seeded_tracks(seeds, xy, frame, photons, order, bounds, n_win, win_frames, win, f0, length, n_frames,
                            occupied, radius_nm, present_share, vary)
    # two markers within the search's reach, one after the other: apart (:func:`_split_off_pace`)
    # (the others that say what the drift did: markers, localized in min_share of their frames, as _join's; a patch
    # of the sample followed for a while, its path wandering, cut a lone marker that blinked off: session 49 review)
    steady = [t for t in tracks if t.share >= min_share]
    tracks = [p for t in tracks for p in _split_off_pace(t, steady, length, occupied, photons)]
    # one marker off for longer than its search follows (a long blink, out of focus; every marker at once: the drift
    # across was not measured, and the whole estimate was called unreliable): its tracks before and after, joined
    tracks = _join(tracks, radius_nm, min_share, occupied, photons)
    for fid in tracks:
        long_enough = (fid.last - fid.first + 1 >= FIDUCIAL_MIN_SPAN * n_frames
                       and len(fid.rows) >= FIDUCIAL_MIN_FRAMES)
        if long_enough and fid.share > best_track:
            best_track, best_span = fid.share, (fid.first, fid.last)
        if fid.share >= min_share and long_enough:
            fids.append(fid)
    # a track beside a marker (seeded off its edge, its path within the radius of it part of the time) takes a share
    # of the marker's rows and sample rows elsewhere: it is no marker of its own (it would be left out as "moved on its
    # own" if not, with a false warning); the one with the more rows stays
    kept: list[Fiducial] = []
    for fid in sorted(fids, key=lambda f: -len(f.rows)):
        if not any(len(np.intersect1d(fid.rows, g.rows, assume_unique=True)) > _SHARED_ROWS * len(fid.rows)
                   for g in kept):
            kept.append(fid)
    fids = kept
    # brighter than the sample: a dense spot of the sample (a short filament, a cluster) can be localized as often
    dim: list[Fiducial] = []
    if fids and min_brightness > 0 and float(np.ptp(photons)) > 0:
        theirs = np.zeros(len(frame), dtype=bool)
        for fid in fids:
            theirs[fid.rows] = True
        sample = float(np.median(photons[~theirs])) if (~theirs).any() else 0.0
        dim = [f for f in fids if not f.photons >= min_brightness * sample]
        fids = [f for f in fids if f.photons >= min_brightness * sample]
        # as bright as a marker and as long, but localized in fewer of its frames (a marker that blinks): not used, and
        # its rows stay in the table, so said
        theirs = np.zeros(len(frame), dtype=bool)
        for fid in fids:
            theirs[fid.rows] = True
        seldom = [f for f in tracks if f.share < min_share and f.share >= 0.5 * min_share
                  and f.last - f.first + 1 >= FIDUCIAL_MIN_SPAN * n_frames and f.photons >= min_brightness * sample
                  and not theirs[f.rows].any()]
        if fids and seldom:
            f = max(seldom, key=lambda g: g.share)
            xy0 = np.median(xy[f.rows], axis=0)
            warnings.warn(
                f"{where}fiducials: {len(seldom)} spot(s) as bright as a marker, e.g. at ({xy0[0]:.0f}, {xy0[1]:.0f}) "
                f"nm, localized in {100 * f.share:.0f} % of frames {f.first}..{f.last}, under the "
                f"{100 * min_share:.0f} % a marker needs: not used, and their rows are kept; if it is a marker that "
                f"blinks, lower the share (--fiducial-min-frames {0.9 * f.share:.2f}) or give its position "
                "(--fiducial X,Y)", FiducialWarning, stacklevel=3)
    if not fids:
        w0 = f0 + best_w * length
        most = (f"{100 * best_track:.0f} % of frames {best_span[0]}..{best_span[1]}" if best_track else
                f"{100 * best:.0f} % of frames {w0}..{min(w0 + length, f0 + n_frames) - 1}, but no longer")
        raise InputError(
            f"{where}no fiducial found: no spot of localizations within {radius_nm:g} nm was localized in at least "
            f"{100 * min_share:.0f} % of the frames over at least {100 * FIDUCIAL_MIN_SPAN:.0f} % of the movie (the "
            f"most: {most})" + (f"; {len(dim)} spot(s) localized that often had a median of {dim[0].photons:.0f} "
                                f"photons or less, under {min_brightness:g}x the sample's {sample:.0f}: lower "
                                "min_brightness (--fiducial-min-brightness), or" if dim else "; lower")
            + " the share (fiducial_min_share, plexloc drift --fiducial-min-frames), give the "
            "fiducials' positions (positions_nm, --fiducial X,Y), or use a drift engine from the sample's structure "
            "(rcc, comet)")
    fids.sort(key=lambda f: -f.photons)
    return fids


def remove_mask(table: LocTable, fiducials: Sequence[Fiducial], radius_nm: float) -> np.ndarray:
    """The rows of ``table`` (raw coordinates) within ``radius_nm`` of a fiducial's path, frames of its first to its
    last: its own localizations, and what else was fitted in its glare; and, through the rest of its ``reach`` (the
    windows where it appeared or bleached, localized too seldom to be followed: a bead that bleaches 40 frames into a
    window of 200 left those 40 rows), the rows within ``radius_nm`` of its path held there that are at least
    :data:`_EDGE_PHOTONS` times its median photons (all of them where the table's photons do not tell)."""
    frame = np.asarray(table["frame"], dtype=np.int64)
    xy = np.column_stack([table["x_nm"], table["y_nm"]])
    photons = np.asarray(table["photons"], dtype=float)
    out = np.zeros(len(table), dtype=bool)
    for fid in fiducials:
        lo, hi = fid.reach if fid.reach is not None else (fid.first, fid.last)
        cand = np.flatnonzero((frame >= min(lo, fid.first)) & (frame <= max(hi, fid.last)))
        if len(cand):
            near = np.sum((xy[cand] - fid.path(frame[cand])) ** 2, axis=1) <= radius_nm**2
            inside = np.zeros(len(cand), dtype=bool)
            for a, b in fid.stretches:  # a gap it was joined across (:func:`_join`): the bright rows only, as its reach
                inside |= (frame[cand] >= a) & (frame[cand] <= b)
            with np.errstate(invalid="ignore"):
                bright = ~(photons[cand] < _EDGE_PHOTONS * fid.photons)  # NaN photons: not told apart, removed
            out[cand[near & (inside | bright)]] = True
    return out


def _moving(a: np.ndarray, half: int) -> np.ndarray:
    """Sums of ``a`` (frames along axis 0) over the centred windows ``[f - half, f + half]`` (clipped at the ends)."""
    n = len(a)
    cs = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    f = np.arange(n)
    return cs[np.minimum(f + half + 1, n)] - cs[np.maximum(f - half, 0)]


def _combine(q: np.ndarray, w: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean over the fiducials (axis 0) of the displacements ``q`` ``(K, N, 3)``, NaN where missing, weights
    ``w`` ``(K, 3)``, smoothed over frames by a weighted moving mean of ``2 half + 1`` frames: the curve ``(N, 3)`` (NaN
    where no fiducial is in a frame's window) and its variance ``1 / sum of the weights``."""
    ok = np.isfinite(q)
    wq = np.where(ok, w[:, None, :], 0.0)
    num = _moving(np.sum(wq * np.where(ok, q, 0.0), axis=0), half)
    den = _moving(np.sum(wq, axis=0), half)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan), np.where(den > 0, 1.0 / den, np.nan)


def _fill(a: np.ndarray) -> np.ndarray:
    """NaN frames of each column interpolated linearly, held constant past the ends (0 where a column has none)."""
    out = a.copy()
    f = np.arange(len(a))
    for k in range(a.shape[1]):
        ok = np.isfinite(a[:, k])
        out[:, k] = np.interp(f, f[ok], a[ok, k]) if ok.any() else 0.0
    return out


def _scatter(p: np.ndarray, frames: np.ndarray, occupied: np.ndarray) -> np.ndarray:
    """A track's localization scatter per axis (nm): 1.4826 x the median absolute deviation of its steps between
    consecutive frames (of the ``occupied`` frames the table has rows in: every other frame localized, a step of two),
    over sqrt(2); of its positions about their median where it has fewer than 10 such steps."""
    out = np.full(p.shape[1], np.nan)
    step = np.diff(np.searchsorted(occupied, frames)) == 1
    for k in range(p.shape[1]):
        d = np.diff(p[:, k])[step]
        d = d[np.isfinite(d)]
        if len(d) >= 10:
            out[k] = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0)
        else:
            v = p[np.isfinite(p[:, k]), k]
            out[k] = 1.4826 * np.median(np.abs(v - np.median(v))) if len(v) else np.nan
    return np.maximum(out, _SCATTER_FLOOR_NM)


def _cross_scale(pos: np.ndarray, s: np.ndarray, used: np.ndarray, axes: list[int]) -> np.ndarray:
    """Per axis the factor (``(3,)``, 1 on the other axes) that brings the markers' scatter ``s`` ``(K, 3)`` (each
    marker's, from its own steps between frames: :func:`_scatter`) to the scatter the ``used`` markers show against
    each other. A drift that moves between consecutive frames (a vibration) is in each marker's own steps and was read
    as scatter (a 20 nm vibration of a 10-frame period: 8.5 nm for 3); it is common to the markers and cancels in the
    difference of two in the same frame. The steps of that difference between consecutive columns of ``pos``
    ``(K, N, 3)`` (NaN where a marker is missing; the frames the table has rows in), each over the standard deviation
    ``s`` gives it (``sqrt(2 (s_k² + s_j²))``), pooled over pairs of markers (each with its next
    :data:`_CROSS_PARTNERS` in order): the factor is 1.4826 x their median absolute deviation (steps, not positions: a
    marker's slow motion of its own, one that detached, cancels). 1 where fewer than :data:`_MIN_CROSS_STEPS` such
    steps (one marker; markers that never share two consecutive frames)."""
    out = np.ones(pos.shape[2])
    k_used = np.flatnonzero(used)
    n = len(k_used)
    if n < 2:
        return out
    pairs = sorted({(min(i, (i + j) % n), max(i, (i + j) % n)) for i in range(n)
                    for j in range(1, min(n - 1, _CROSS_PARTNERS) + 1)})
    for a in axes:
        z = []
        for i, j in pairs:
            k, m = k_used[i], k_used[j]
            step = np.diff(pos[k, :, a] - pos[m, :, a])
            step = step[np.isfinite(step)]
            z.append(step / np.sqrt(2.0 * (s[k, a] ** 2 + s[m, a] ** 2)))
        pooled = np.concatenate(z)
        if len(pooled) >= _MIN_CROSS_STEPS:
            out[a] = 1.4826 * float(np.median(np.abs(pooled - np.median(pooled))))
    return out


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` that is NaN, without numpy's warning, where a slice has no finite value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def _drop_outliers(pos: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``pos`` ``(K, N, 3)`` with each fiducial's localizations more than :data:`FIDUCIAL_OUTLIER_SIGMA` scatters off
    the running median of its own :data:`_OWN_MEDIAN_FRAMES` nearest localizations set to NaN (x, y and z together
    laterally; z alone in z). Its own track, not the others': two fiducials that part would otherwise both be cut."""
    from scipy.ndimage import median_filter

    pos = pos.copy()
    for k in range(len(pos)):
        at = np.flatnonzero(np.isfinite(pos[k, :, 0]))
        if len(at) < 3:
            continue
        p = pos[k, at]
        med = np.column_stack([median_filter(p[:, a], size=min(_OWN_MEDIAN_FRAMES, len(at)), mode="nearest")
                               for a in range(3)])
        off = np.abs(p - med) > FIDUCIAL_OUTLIER_SIGMA * s[k]
        pos[k, at[off[:, 0] | off[:, 1]]] = np.nan
        z_off = at[off[:, 2] & ~(off[:, 0] | off[:, 1])]
        pos[k, z_off, 2] = np.nan
    return pos


def _solve(pos: np.ndarray, s: np.ndarray, used: np.ndarray, half: int, iterations: int = 4
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed drift of the ``used`` fiducials (filled), its variance (filled), and their references ``(K, 3)``
    fitted with it."""
    w = 1.0 / s**2
    c = _nanmedian(pos, axis=1)
    for _ in range(iterations):
        d, v = _combine(pos[used] - c[used][:, None, :], w[used], half)
        d, v = _fill(d), _fill(v)
        c = _nanmedian(pos - d[None], axis=1)
    return d, v, c


#: the smoothing's bias is counted where the frames' residuals exceed their noise by this many standard errors
_BIAS_SIGNIFICANCE = 3.0


def _smoothing_bias(pos: np.ndarray, c: np.ndarray, s: np.ndarray, used: np.ndarray, half: int,
                    has_rows: np.ndarray) -> float:
    """The rms error (x and y together, nm) that the moving mean adds by flattening a drift faster than its ``2 half +
    1`` frames (a vibration), from the residuals of the unsmoothed per-frame drift ``d1`` about the smoothed ``d`` (both
    of the same references ``c``): with ``d_f`` the ``d1``-weighted mean of its window, ``var(d1_f - d_f) = v1_f - v_f``
    from noise alone, so ``mean((d1 - d)^2 - (v1 - v))`` is the mean squared bias. ``s`` is the markers' scatter
    against each other (:func:`_cross_scale`): their own steps between frames take in a drift that moves between
    consecutive frames (a 20 nm vibration of a 10-frame period: 8.5 nm for 3), which would be taken for noise and the
    bias missed. 0 unless the mean exceeds :data:`_BIAS_SIGNIFICANCE` standard errors (the residuals of a window's
    frames counted as one)."""
    q, w = pos[used] - c[used][:, None, :], 1.0 / s[used] ** 2
    d1, v1 = _combine(q, w, 0)
    d, v = _combine(q, w, half)
    ok = has_rows & np.all(np.isfinite(d1[:, :2]), axis=1)
    if ok.sum() < 10 * (2 * half + 1):
        return 0.0
    excess = np.sum((d1[ok, :2] - d[ok, :2]) ** 2 - (v1[ok, :2] - v[ok, :2]), axis=1)
    mean, se = float(np.mean(excess)), float(np.std(excess) * np.sqrt((2 * half + 1) / ok.sum()))
    return float(np.sqrt(mean)) if mean > _BIAS_SIGNIFICANCE * se else 0.0


def _disagreement(pos: np.ndarray, c: np.ndarray, s: np.ndarray, used: np.ndarray, k: int, half: int,
                  axes: list[int]) -> tuple[float, float]:
    """Fiducial ``k``'s smoothed displacement against the other used fiducials' drift: the RMS of their difference over
    the frames both cover (``axes`` together, after the constant offset) and what their noise alone would make of it."""
    w = 1.0 / s**2
    others = used.copy()
    others[k] = False
    d_o, v_o = _combine(pos[others] - c[others][:, None, :], w[others], half)
    d_k, v_k = _combine(pos[k:k + 1] - c[k:k + 1][:, None, :], w[k:k + 1], half)
    both = np.all(np.isfinite(d_o[:, axes]) & np.isfinite(d_k[:, axes]), axis=1)
    if both.sum() < 2:
        return float("nan"), float("nan")
    e = d_k[both][:, axes] - d_o[both][:, axes]
    e -= e.mean(axis=0)
    return (float(np.sqrt(np.mean(np.sum(e**2, axis=1)))),
            float(np.sqrt(np.mean(np.sum(v_k[both][:, axes] + v_o[both][:, axes], axis=1)))))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs (inclusive) of the runs of True in ``mask``."""
    m = np.r_[False, mask, False].astype(np.int8)
    starts = np.flatnonzero(np.diff(m) == 1)
    ends = np.flatnonzero(np.diff(m) == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


#: at most this many frame lags are evaluated per gap length (:func:`_gap_error`; interpolated between them)
_GAP_LAGS = 64


def _gap_error(d: np.ndarray, measured: np.ndarray, gaps: list[tuple[int, int]], noise_var: float) -> np.ndarray:
    """The expected error (x and y together, nm) of the drift ``d`` ``(N, 2)`` in the frames of each gap (runs of
    frames without any fiducial, ``(start, end)`` indices; NaN elsewhere and where it cannot be judged), from the
    drift's own motion where the fiducials measure it (``measured``): a gap between two measured frames is
    interpolated linearly, and the error ``tau`` frames into a gap of ``L`` frames from measured to measured is the rms
    over the measured stretches of ``d(t + tau) - d(t) - tau / L (d(t + L) - d(t))``; a gap at the start or the end is
    held constant, its error ``d(t + tau) - d(t)``. The curve's own noise in those differences (``noise_var``: its
    variance per frame, x and y summed) is taken out. Where no measured stretch is as long as the gap the error is not
    known: NaN in its frames (a drift followed for 2,000 frames says nothing of the 3,000 after the last marker
    bleached)."""
    n = len(d)
    out = np.full(n, np.nan)
    t_all = np.flatnonzero(measured)

    def rms(tau: np.ndarray, length: int | None) -> np.ndarray:
        e = np.full(len(tau), np.nan)
        for i, lag in enumerate(tau):
            far = int(lag) if length is None else int(length)
            t = t_all[t_all + far < n]
            t = t[measured[t + lag] & measured[t + far]]
            if not len(t):
                continue
            diff = d[t + lag] - d[t]
            var = 2.0 * noise_var
            if length is not None:
                r = lag / length
                diff = diff - r * (d[t + length] - d[t])
                var = noise_var * ((1.0 - r) ** 2 + 1.0 + r**2)
            e[i] = math.sqrt(max(float(np.mean(np.sum(diff**2, axis=1))) - var, 0.0))
        return e

    def lags(k: int) -> np.ndarray:
        return np.unique(np.linspace(1, k, min(k, _GAP_LAGS)).round().astype(np.int64))

    def at(tau: np.ndarray, e: np.ndarray, k: int) -> np.ndarray:
        """``e`` at the lags 1..k, from the lags ``tau`` it is known at (a table of every other frame knows the even
        ones only); NaN where none is."""
        ok = np.isfinite(e)
        if not ok.any():
            return np.full(k, np.nan)
        lag = np.arange(1, k + 1)
        out = np.interp(lag, tau[ok], e[ok])
        # beyond the longest lag measured (and the next lag evaluated): not known
        out[lag > tau[ok].max() + max(int(np.max(np.diff(tau), initial=1)), 2)] = np.nan
        return out

    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for a, b in gaps:
        k = b - a + 1
        if a > 0 and b < n - 1:  # between two measured frames: interpolated
            key = ("between", k + 1)
            if key not in cache:
                tau = lags(k)
                cache[key] = tau, rms(tau, k + 1)
            tau, e = cache[key]
            out[a:b + 1] = at(tau, e, k)
        else:  # before the first or after the last: held constant
            key = ("held", k)
            if key not in cache:
                tau = lags(k)
                cache[key] = tau, rms(tau, None)
            tau, e = cache[key]
            e = at(tau, e, k)
            out[a:b + 1] = e if b == n - 1 else e[::-1]
    return out


def fiducial_drift(
    table: LocTable,
    *,
    min_share: float = FIDUCIAL_MIN_SHARE,
    radius_nm: float = FIDUCIAL_RADIUS_NM,
    min_brightness: float = FIDUCIAL_MIN_BRIGHTNESS,
    positions_nm: Sequence[Sequence[float]] | None = None,
    smooth_frames: int = FIDUCIAL_SMOOTH_FRAMES,
    keep_fiducials: bool = False,
) -> Any:
    """The drift of every frame from fiducial markers (see the module docstring), a
    :class:`~plexloc.post.drift.DriftResult` of engine ``"fiducials"``.

    Args:
        table: localizations (frame, x_nm, y_nm; z_nm where known).
        min_share: a fiducial is localized in at least this share of the frames from its first to its last (of those
            the table has rows in; and that stretch is at least a quarter of the movie); default 0.5.
        radius_nm: its localizations lie within this of its position; its rows are removed within it (default 150).
        min_brightness: its median photons are at least this times the median of the other rows (default 2; 0: any;
            not applied where the table's photons are one value, nor to ``positions_nm``).
        positions_nm: the fiducials' positions (x, y nm, raw coordinates of the table, at any time of the movie)
            instead of finding them.
        smooth_frames: the per-frame drift is a weighted moving mean over this many frames (default 5; 1: none; an
            even number takes one frame more).
        keep_fiducials: keep the fiducials' rows in the table :func:`~plexloc.post.drift.apply_drift` returns (by
            default they are removed: ``DriftResult.remove_rows``).

    ``info``: ``n_fiducials`` (used), ``fiducials`` (each: ``x_nm``, ``y_nm``, ``z_nm``, its reference position,
    ``first_frame``, ``last_frame``, ``frames`` localized, ``share`` of the frames from its first to its last,
    ``photons`` median, ``precision_nm`` (x, y, z scatter), ``used``, and where it was left out ``rejected`` with
    ``disagreement_nm``; ``stretches`` where its tracks were joined across a gap, ``photon_changes`` where it was
    followed through a change of its photons), ``uncertainty_nm`` and ``uncertainty_per_frame_nm`` (x and y together),
    ``noise_nm``, ``residual_ratio``, ``curve_rms_nm``, ``z_uncertainty_nm`` (3D), ``fiducial_rows`` (the rows that
    would be removed, in this table), ``frames_without_fiducial``, ``unmeasured_frames`` (``[first, last]`` stretches
    beyond the smoothing's reach of every fiducial: held or interpolated, not measured) and ``unmeasured_nm`` (their
    expected error, rms over the frames; NaN: not known), ``fewer_fiducials_from_frame``, ``unlinked_at_frames``,
    ``unreliable``.

    Raises:
        InputError: no fiducial found, bad settings (:func:`find_fiducials`).
    """
    from plexloc.post.drift import (
        Z_MAX_UNCERTAINTY_NM,
        DriftResult,
        UnreliableDriftWarning,
        _why_unreliable,
        drift_error_rms,
        drift_unreliable,
    )

    _check_smooth(smooth_frames)
    t0 = time.perf_counter()
    where = f"{table.source}: " if table.source else ""
    fids = find_fiducials(table, min_share=min_share, radius_nm=radius_nm, min_brightness=min_brightness,
                          positions_nm=positions_nm)
    frame = np.asarray(table["frame"], dtype=np.int64)
    frames = np.arange(int(frame.min()), int(frame.max()) + 1)
    n = len(frames)
    occupied = np.unique(frame)
    has_rows = np.zeros(n, dtype=bool)
    has_rows[occupied - frames[0]] = True
    k_all = len(fids)
    z = np.asarray(table["z_nm"], dtype=float)
    finite_z = z[np.isfinite(z)]
    has_z = bool(len(finite_z)) and float(np.ptp(finite_z)) > 0.0
    pos = np.full((k_all, n, 3), np.nan)
    s = np.zeros((k_all, 3))
    for k, fid in enumerate(fids):
        at = fid.frames - frames[0]
        pos[k, at, 0] = table["x_nm"][fid.rows]
        pos[k, at, 1] = table["y_nm"][fid.rows]
        if has_z:
            pos[k, at, 2] = z[fid.rows]
        s[k] = _scatter(pos[k, at], fid.frames, occupied)
    if not has_z:
        pos[..., 2] = 0.0
        s[:, 2] = 1.0
    elif not np.isfinite(pos[..., 2]).any():
        has_z = False  # the fiducials have no z: the z drift is not known from them
        pos[..., 2] = 0.0
        s[:, 2] = 1.0
    s[~np.isfinite(s)] = 1.0
    half = int(smooth_frames) // 2
    check_half = max(half, FIDUCIAL_CHECK_FRAMES // 2)
    used = np.ones(k_all, dtype=bool)
    rejected: dict[int, float] = {}
    lat = [0, 1]
    clean = _drop_outliers(pos, s)  # against each one's own running median: its own steps' scatter
    # the scatter without the drift's motion between frames (the markers' against each other); a factor per axis
    # leaves the weighted means, the drift and the references, as they are, and scales their variance
    # (floored again: exact markers, a simulation's, differ by 0 between frames, a factor 0 that took every scatter to
    # 0 and divided by it in the weights)
    s = np.maximum(s * _cross_scale(clean[:, has_rows], s, used, [0, 1, 2] if has_z else [0, 1]), _SCATTER_FLOOR_NM)
    d, v, c = _solve(clean, s, used, half)
    notes: list[str] = []
    # a fiducial that moved on its own: the worst left out while 3 or more remain
    while used.sum() >= 3:
        dev = np.full(k_all, np.nan)
        expect = np.full(k_all, np.nan)
        for k in np.flatnonzero(used):
            dev[k], expect[k] = _disagreement(clean, c, s, used, k, check_half, lat)
        limit = np.maximum(FIDUCIAL_REJECT_FACTOR * expect, FIDUCIAL_REJECT_NM)
        excess = np.where(used & np.isfinite(dev), dev / limit, 0.0)
        worst = int(np.argmax(excess))
        if not excess[worst] > 1.0:
            break
        used[worst] = False
        rejected[worst] = float(dev[worst])
        fid = fids[worst]
        xy0 = np.median(pos[worst, :, :2][np.isfinite(pos[worst, :, 0])], axis=0)
        warnings.warn(
            f"{where}fiducials: the fiducial at ({xy0[0]:.0f}, {xy0[1]:.0f}) nm (frames {fid.first}..{fid.last}) "
            f"moved {dev[worst]:.0f} nm rms against the other {int(used.sum())} (smoothed over "
            f"{2 * check_half + 1} frames; their noise: {expect[worst]:.1f} nm): it moved on its own (detached?) "
            "and is left out of the drift; its rows are still removed", FiducialWarning, stacklevel=3)
        d, v, c = _solve(clean, s, used, half)
    n_used = int(used.sum())
    # how far the smoothed curve is known: its noise, scaled up where the fiducials disagree beyond it
    ratio_lat = ratio_z = 1.0
    pair = ""
    if n_used >= 2:
        r_lat, r_z = [], []
        for k in np.flatnonzero(used):
            dv, ex = _disagreement(clean, c, s, used, k, half, lat)
            if np.isfinite(dv) and ex > 0:
                r_lat.append((dv / ex) ** 2)
            if has_z:
                dv, ex = _disagreement(clean, c, s, used, k, half, [2])
                if np.isfinite(dv) and ex > 0:
                    r_z.append((dv / ex) ** 2)
        ratio_lat = float(np.sqrt(max(1.0, np.mean(r_lat)))) if r_lat else 1.0
        ratio_z = float(np.sqrt(max(1.0, np.mean(r_z)))) if r_z else 1.0
        if n_used == 2:
            k0 = int(np.flatnonzero(used)[0])
            dv, ex = _disagreement(clean, c, s, used, k0, check_half, lat)
            if np.isfinite(dv) and dv > max(FIDUCIAL_REJECT_FACTOR * ex, FIDUCIAL_REJECT_NM):
                pair = f"{dv:.0f}"
                warnings.warn(
                    f"{where}fiducials: the two fiducials disagree by {dv:.0f} nm rms (smoothed over "
                    f"{2 * check_half + 1} frames; their noise: {ex:.1f} nm): one of them moved on its own, and two "
                    "cannot say which; the drift is their mean, its uncertainty counts the disagreement. Give the "
                    "position of the one to trust (positions_nm, plexloc drift --fiducial X,Y) or find a third",
                    FiducialWarning, stacklevel=3)
    else:
        only = fids[int(np.flatnonzero(used)[0])]
        warnings.warn(
            f"{where}fiducials: one fiducial only (frames {only.first}..{only.last}): the drift is its track, and its "
            "uncertainty (from its own scatter) cannot be checked against a second fiducial; a fiducial that moved on "
            "its own would go unseen",
            FiducialWarning, stacklevel=3)
    per_frame = ratio_lat * np.sqrt(v[:, 0] + v[:, 1])
    # over the frames the table has rows in (every other frame localized: the others need no drift, and their curve,
    # between two frames with rows, is known better than theirs)
    noise = float(np.sqrt(np.mean(v[has_rows, 0] + v[has_rows, 1])))
    uncertainty = float(np.sqrt(np.mean(per_frame[has_rows] ** 2)))
    bias = _smoothing_bias(clean, c, s, used, half, has_rows) if half > 0 else 0.0
    if bias > 0:  # a drift faster than the smoothing, flattened by it: its rms error added to the noise
        if bias > max(1.0, 0.5 * uncertainty):
            notes.append(f"the drift moves faster than the smoothing over {2 * half + 1} frames follows (it flattens "
                         f"about {bias:.1f} nm rms of it, counted in the uncertainty): a smaller --smooth "
                         "(smooth_frames) follows it, at more noise")
        uncertainty = float(np.hypot(uncertainty, bias))
        per_frame = np.hypot(per_frame, bias)
    # frames beyond the smoothing's reach of every fiducial (all bleached, none yet there, a long blink of every one):
    # their drift is interpolated or held, not measured; its expected error from the drift's own motion where it is
    # measured (:func:`_gap_error`), NaN where that cannot tell (a gap longer than any measured stretch)
    raw_w = np.sum(np.isfinite(clean[used][..., 0]), axis=0)
    unmeasured = [(a, b) for a, b in _runs(raw_w == 0) if has_rows[a + half:b - half + 1].any()]
    gap_nm = 0.0
    if unmeasured:
        gap_err = _gap_error(d[:, :2], raw_w > 0, unmeasured, float(np.mean(v[raw_w > 0, 0] + v[raw_w > 0, 1])))
        in_gap = np.zeros(n, dtype=bool)
        for a, b in unmeasured:
            in_gap[a:b + 1] = True
        per_frame = np.where(in_gap, np.hypot(per_frame, gap_err), per_frame)
        gap_nm = float(np.sqrt(np.mean(np.where(in_gap & has_rows, gap_err, 0.0)[has_rows] ** 2)))
        uncertainty = float(np.sqrt(np.mean(per_frame[has_rows] ** 2)))
    curve = d.copy()
    if not has_z:
        curve[:, 2] = 0.0
    curve -= curve[:1]  # reference: drift(first frame) = 0
    curve_rms = drift_error_rms(curve, np.zeros((n, 3)))
    info: dict[str, Any] = {
        "min_share": float(min_share),
        "radius_nm": float(radius_nm),
        "min_brightness": float(min_brightness),
        "smooth_frames": 2 * half + 1,
        "window_frames": WINDOWS(n),
        "n_fiducials": n_used,
        "n_found": k_all,
        "positions_given": positions_nm is not None and len(positions_nm) > 0,
        "noise_nm": noise,
        "residual_ratio": ratio_lat,
        "uncertainty_nm": uncertainty,
        "uncertainty_from": "fiducials",
        "uncertainty_per_frame_nm": [round(float(u), 3) for u in per_frame],
        "smoothing_bias_nm": bias,
        "unmeasured_nm": gap_nm,
        # the frames it is (first, last; beyond the smoothing's reach of every fiducial): drift_figure shades them
        "unmeasured_frames": [[int(frames[a]), int(frames[b])] for a, b in unmeasured],
        "curve_rms_nm": curve_rms,
    }
    if pair:
        info["pair_disagreement_nm"] = float(pair)
    listing = []
    for k, fid in enumerate(fids):
        entry = {"x_nm": float(c[k, 0]), "y_nm": float(c[k, 1]), "z_nm": float(c[k, 2]) if has_z else None,
                 "first_frame": fid.first, "last_frame": fid.last, "frames": int(len(fid.rows)),
                 "share": round(fid.share, 4), "photons": fid.photons,
                 "precision_nm": [float(v_) for v_ in (s[k] if has_z else s[k, :2])], "used": bool(used[k]),
                 "given": fid.given}
        if k in rejected:
            entry.update(rejected="moved against the others", disagreement_nm=rejected[k])
        if fid.segments:  # tracks of one marker joined across a gap (:func:`_join`)
            entry["stretches"] = [[int(a), int(b)] for a, b in fid.segments]
        if fid.photon_changes:
            entry["photon_changes"] = [{"frame": f, "photons_before": a, "photons_after": b}
                                       for f, a, b in fid.photon_changes]
        listing.append(entry)
    info["fiducials"] = listing
    # a marker whose photons changed at once and that stays localized where it is: dimmed (or brightened), not bleached
    changed = [(k, ch) for k, fid in enumerate(fids) for ch in fid.photon_changes]
    if changed:
        notes.append(", ".join(
            f"the fiducial at ({c[k, 0]:.0f}, {c[k, 1]:.0f}) nm changed from {a:.0f} to {b:.0f} photons at about "
            f"frame {f}" for k, (f, a, b) in changed[:3]) + (", ..." if len(changed) > 3 else "")
            + ": it stays localized at its place with steady photons, so it was followed through as dimmed (or "
            "brightened: the illumination, focus or camera gain changed), not bleached; if it did bleach and "
            "something else took its place, give the other markers' positions (--fiducial X,Y)")
    # bleached (or late) fiducials: from which frame the drift rests on fewer
    tol = max(2 * half + 1, int(0.02 * n))
    counts = np.zeros(n, dtype=np.int64)
    for k in np.flatnonzero(used):
        counts[fids[k].first - frames[0]:fids[k].last - frames[0] + 1] += 1
    ends = sorted({fids[k].last for k in np.flatnonzero(used) if fids[k].last < frames[-1] - tol})
    starts = sorted({fids[k].first for k in np.flatnonzero(used) if fids[k].first > frames[0] + tol})
    if ends or starts:
        parts = [f"from frame {f + 1} on {int(counts[f + 1 - frames[0]])} of {n_used}" for f in ends]
        parts += [f"until frame {f - 1} on {int(counts[f - 1 - frames[0]])} of {n_used}" for f in starts]
        if ends:
            info["fewer_fiducials_from_frame"] = int(ends[0] + 1)
        if starts:
            info["fewer_fiducials_until_frame"] = int(starts[-1] - 1)
        notes.append("the drift rests " + ", ".join(parts) + " fiducials (bleached, or not yet there)")
    # frames with rows but without any fiducial: interpolated, held constant at the ends (frames the table has no rows
    # in need no drift: every other frame localized is no gap)
    gaps = _runs(raw_w == 0)
    info["frames_without_fiducial"] = int(np.sum((raw_w == 0) & has_rows))
    long = [(a, b) for a, b in gaps if b - a + 1 > FIDUCIAL_LONG_GAP_FRAMES and has_rows[a:b + 1].any()]
    if long:
        info["longest_gap_frames"] = max(b - a + 1 for a, b in long)
        said = ", ".join(f"{frames[a]}..{frames[b]}" for a, b in sorted(long, key=lambda g: g[0] - g[1])[:3])
        notes.append(f"{len(long)} stretch(es) of over {FIDUCIAL_LONG_GAP_FRAMES} frames have no fiducial ({said}"
                     + (", ..." if len(long) > 3 else "") + "): the drift there is interpolated, held constant past "
                     "the first and last fiducial frame, and not measured")
    if notes:
        warnings.warn(f"{where}fiducials: " + "; ".join(notes), FiducialWarning, stacklevel=3)
    # fiducials that share no frame with the ones before them (a stage jump beyond the radius cuts each marker's track
    # in two; markers that do not overlap in time): the drift across is not measured, its curve's offset there not known
    spans = sorted((fids[k].first, fids[k].last) for k in np.flatnonzero(used))
    unlinked, reach = [], spans[0][1]
    for a, b in spans[1:]:
        if a > reach:
            unlinked.append((reach, a))
        reach = max(reach, b)
    unreliable = drift_unreliable(uncertainty, curve_rms)
    if unlinked:
        info["unlinked_at_frames"] = [int(a) for _, a in unlinked]
        unreliable = True
        info["unreliable"] = True
        warnings.warn(
            f"{where}fiducials: no fiducial is localized both before and after frame "
            + ", ".join(f"{a} (the last before it ends at {e})" for e, a in unlinked[:3])
            + ": the drift across is not measured, and the curve after it may be off by any amount (a stage jump "
            f"beyond the {radius_nm:g} nm radius cuts each marker's track in two); this drift estimate is not "
            "reliable. A larger radius (--fiducial-radius) follows a jump up to it", UnreliableDriftWarning,
            stacklevel=3)
    elif unreliable and unmeasured and not gap_nm < 0.5 * uncertainty:  # NaN too: the unmeasured frames decide it
        info["unreliable"] = True
        said = ", ".join(f"{frames[a]}..{frames[b]}" for a, b in sorted(unmeasured, key=lambda g: g[0] - g[1])[:3])
        share = float(np.mean([any(a <= i <= b for a, b in unmeasured) for i in np.flatnonzero(has_rows)]))
        err = (f"the drift's own motion where the fiducials measure it puts its error there at about +-{gap_nm:.0f} nm "
               f"rms over the movie's frames (+-{uncertainty:.0f} nm in all, for a curve of {curve_rms:.0f} nm rms)"
               if math.isfinite(gap_nm) else "no stretch that they measure is as long, so its error there is not "
               "known")
        warnings.warn(
            f"{where}fiducials: no fiducial is localized in frames {said}"
            + (", ..." if len(unmeasured) > 3 else "") + f" ({100 * share:.0f} % of the frames with rows; bleached, "
            f"or not yet there): the drift there is held or interpolated, not measured, and {err}; this drift "
            "estimate is not reliable. Use a drift engine from the sample's structure (--engine rcc), or keep only "
            "the frames the fiducials cover (plexloc filter --exclude-frames "
            + ",".join(f"{frames[a]}-{frames[b]}" for a, b in unmeasured) + ")", UnreliableDriftWarning, stacklevel=3)
    elif unreliable:
        info["unreliable"] = True
        warnings.warn(
            f"{where}fiducials: the drift is known to about +-{uncertainty:.0f} nm (rms over the frames, x and y; from "
            f"{n_used} fiducial(s)' scatter and agreement), for a curve of {curve_rms:.0f} nm rms: "
            f"{_why_unreliable(uncertainty, curve_rms)}, and this drift estimate is not reliable. Check the fiducials "
            "(plexloc drift --json lists them), give their positions (--fiducial X,Y), or use rcc",
            UnreliableDriftWarning, stacklevel=3)
    if has_z:
        z_unc = float(ratio_z * np.sqrt(np.mean(v[has_rows, 2])))
        z_rms = float(np.sqrt(np.mean((curve[:, 2] - curve[:, 2].mean()) ** 2)))
        info.update(z_uncertainty_nm=z_unc, z_uncertainty_from="fiducials", z_residual_ratio=ratio_z)
        if not (z_unc <= Z_MAX_UNCERTAINTY_NM or z_unc <= 0.5 * z_rms):
            info["z_unreliable"] = True
            warnings.warn(
                f"{where}fiducials: the z drift is known to about +-{z_unc:.0f} nm (rms over the frames), for a z "
                f"curve of {z_rms:.0f} nm rms about its mean: the z correction is mostly noise and not reliable. If "
                "the sample did not drift in z, keep the z uncorrected", UnreliableDriftWarning, stacklevel=3)
    removal = remove_mask(table, fids, float(radius_nm))
    info["fiducial_rows"] = int(removal.sum())
    info["keep_fiducials"] = bool(keep_fiducials)
    kept = list(fids)

    def remove_rows(t: LocTable) -> np.ndarray:  # this table's mask is the one just counted: not computed again
        return removal if t is table else remove_mask(t, kept, float(radius_nm))

    return DriftResult(
        frames=frames,
        drift_nm=curve,
        engine="fiducials",
        elapsed_s=time.perf_counter() - t0,
        info=info,
        remove_rows=None if keep_fiducials else remove_rows,
    )
