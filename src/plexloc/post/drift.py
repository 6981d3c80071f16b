"""Drift correction: estimate the stage drift over the movie from the localizations themselves.

Two engines behind one function, :func:`estimate_drift`:

``comet``
    COMET (Reinkensmeier & Bates; ``comet-smlm`` on PyPI, the drift correction that DECODE-OpenCloud
    ships): the localizations are cut into time windows and the drift of every window is found by
    maximising the overlap of all pairs of nearby localizations (KD-tree pairs, Gaussian kernel from
    coarse to fine, L-BFGS-B), then interpolated per frame. An optional extra
    (``pip install plexloc[drift]``: it brings numba and pandas); runs on CUDA, torch or the CPU.
``rcc``
    Redundant cross-correlation (Wang et al. 2014, Opt. Express 22:15982), written here: the
    localizations are cut into ``n_segments`` windows of equal counts, each is rendered as a
    histogram, every pair of windows is cross-correlated by FFT (torch, any device) with a Gaussian
    blur, the peak is located to sub-pixel precision (least-squares quadratic fit to the log of the
    peak), the over-determined system ``r_ij = d_j - d_i`` is solved by least squares, pairs with
    outlying residuals are dropped and the system solved again. Lateral (x, y); z as below.

Since session 49 RCC also checks that every window's cross-correlation peak stands out of chance (:func:`_peak_prominence`,
:data:`RCC_MIN_PEAK_Z`; 2 windows of 1,000 structure-free rows read 170 nm of drift as known to +-29 nm, not flagged),
keeps a stage jump sharp (:func:`_rcc_step`: the two windows around the largest jump cut into blocks, each correlated
with the rest of the table; a 50 nm jump was spread over the 400 frames between two windows' centres, 4.5 nm rms off
reported +-1.8, now 1.7), and with 2 windows says where the drift bends between them (:func:`_two_window_bend`,
``info["bend_nm"]``, added to the uncertainty).

z (both engines, session 39): after x and y, from the pairs of localizations within 50 nm of each other laterally
(:data:`Z_PAIR_RADIUS_NM`, after the lateral correction) that lie in different windows: each says ``z_i - z_j = d_a -
d_b`` plus noise, and a robust least-squares fit gives the windows' z drifts (:func:`_z_knots`), through which the z
curve runs as x and y do. The pairs are chosen laterally only, so their z differences are symmetric about the drift's
and nothing draws the fit towards 0. COMET's own z (kept in ``info["comet_segment_z_nm"]``) comes from its isotropic
kernel, which sharpens to about 1 nm while a pair's z difference spreads over sqrt(2) times the z precision: on
3D tables of 10,000 localizations (filaments through z -400..+400 nm, precision 9 nm laterally and 40 nm in z,
``bench/drift_z.py``) its z curve was 3.9-10.0 nm rms off (a z drift of 0 read as up to 13 nm over the movie, 40 as
16-59 nm), the pairs' 1.1-3.1 nm (bench/drift_z39_comet.json); RCC had no z, now 1.0-4.0 nm, and 10.7 nm on one
table of 12 whose filaments crossed at other depths (pairs of neighbours spread 94 nm in z instead of 57;
bench/drift_z39_rcc.json). ``info["z_uncertainty_nm"]`` is the z curve's expected error (as ``uncertainty_nm`` for x
and y, z alone: :func:`_z_drift`): 0.66-1.40x the actual error with COMET (geometric mean 0.98, 8 tables), 0.49-1.87x
with RCC (1.00, 12 tables; 10.7 nm reported for that 10.7 nm error); above :data:`Z_MAX_UNCERTAINTY_NM` and above half the z curve's own RMS an
:class:`UnreliableDriftWarning` says the z correction is mostly noise. A table whose z is one value (2D) or not known
keeps a z drift of 0.

Since session 41 ``z_uncertainty_nm`` comes from the whole table (:func:`_z_noise`), as RCC's lateral one since session
40, no longer from a split-half test (``info["z_uncertainty_from"]``: "pairs"; "split-half" where no redundant pair of
windows checks the model, 2 windows). The z knots solve the robust fit's estimating equation over the pairs; its
sandwich, with the molecules' on-events as the independent units (one on-event is in many pairs), gives the knots'
covariance, which goes through the curve (``z_noise_nm``) and into the interpolation term; where the pairs of windows'
residuals exceed what the model expects beyond chance the covariance is scaled up (``z_pair_residual_ratio``). Against
simulated truth (``bench/drift_calibration41.py``: 3D lines, clusters and uniform molecules, z -400..+400 nm at 40 nm
precision, linear, wobble and settling drifts in x, y and z, 500-20,000 rows over 10 windows, 162 tables;
bench/drift_calibration41.json, before: bench/drift_calibration41_before.json), RCC's z reported / actual, geometric
mean (range) per size, split-half -> whole table: 500 rows 1.05 (0.45-3.87) -> 1.00 (0.59-1.93), 1,000 0.99 (0.29-1.83)
-> 1.05 (0.47-2.38), 2,000 1.14 (0.55-1.72) -> 1.14 (0.70-1.87), 5,000 0.92 (0.40-2.33) -> 0.98 (0.69-1.43), 10,000 1.05
(0.54-2.76) -> 1.03 (0.65-1.81), 20,000 1.18 (0.60-2.59) -> 1.15 (0.75-1.92); within 0.7-1.4x 97 -> 123 of 162. On one
sample blinked 16 times (tests/test_drift41.py) the figure is the RMS of the z error over the realizations (1.01-1.10x;
0.90-1.12x over 9 samples); on 30 blinkings of one sample of clusters the figure spread +-15 % from table to table, the
split-half test's +-21 %. On session 39's 3D lines (6 tables a size; bench/drift_engines39.py's) 0.85 / 1.05 / 0.75 /
0.97 / 0.84 -> 0.72 / 1.11 / 0.83 / 1.05 / 0.92 at 500 / 1,000 / 2,000 / 5,000 / 10,000 rows: at 500 rows the lateral
correction itself fails on 5 of them (29-74 nm off, more than the 50 nm of the z pairs), which no model of the z pairs
sees. COMET's z (the same pairs after its lateral curve; 9 tables of 2,000 rows, bench/drift_calibration41_comet.json):
1.32 -> 1.33, RCC's 1.36 on the same tables (a sample that over-reads; the interpolation term reads a linear z drift's
knots' noise as a bend). Cost: none in time (298,482 rows: 51 s either way), +0.2 GB (1.18 GB).

Since session 46 a z curve is subtracted only where it is more than noise (:func:`_z_significance`): the windows' z
drifts are tested against their covariance (the pairs' sandwich above), all windows (chi-square of 9 degrees of freedom
for 10 windows) and their linear and quadratic trend in time (2), and where the smaller p-value is not below
:data:`Z_SIGNIFICANCE` (0.01) the z drift is 0 (``info["z_significant"]`` False; ``z_p_value``,
``z_estimated_rms_nm``: the curve not subtracted; the knots stay in ``z_segment_drift_nm``). Before, ``plexloc
process`` on a drift-free 3D movie (examples/3d_astigmatic.yaml, 200 frames, MLE) subtracted a z curve spanning 40 nm
"known to +-5.4 nm": the figure was right as an rms (the curve's 7.0 nm rms was its whole error; 10 drift-free movies
of 200 frames, 4 of 1,000: 2.5-9.4 nm rms, 0.71-1.52x the reported figure), but the span of 10 noisy knots, run
straight past the first and last window, is 3.5-5.7 times it. Now those 14 get no z correction (p 0.05-0.79); 40 nm
linear z drifts (6 movies) are all found (p below 3e-4) and their error is as before (4.5-7.4 nm against 4.5-6.6),
and a 20 nm one over 1,000 frames (3.6 nm against 3.5); 20 nm over 200 frames (5.8 nm rms, about the uncertainty) is
not found on 2 of 2 (5.8 nm left against 5.0 and 5.7 after the old correction). On bench/drift_calibration41.py's
tables (all drifting in z, 40 nm precision; 500-2,000 rows, 2 seeds, 54 tables) 6 are no longer corrected, 5 of 18 at
500 rows and 1 of 18 at 1,000 (rms of the z error per size 10.79 -> 11.22, 6.71 -> 6.90, 4.53 -> 4.53 nm). The trend
test is what finds a slow drift on a short movie (a 40 nm linear drift over 200 frames: 19.6 of 9, p 0.02, for all
windows, 16.8 of 2, p 2e-4, for the trend). The same for COMET, whose z is the same pairs. And rows whose z is the
fit's bound (``at_bound`` & 2, or the table's extreme z repeated: a clip) are left out of the z pairs
(``info["z_rows_at_bound"]``, :func:`_z_at_bound`): such a z does not move with the sample, pairs of two clipped rows
say "no drift", and the curve read a 60 nm drift as 22-31 nm with 38 % of the rows clipped (tests/test_zdrift46.py);
on the MLE movies above (9 % of the rows on the bound) it changed the z error by -0.9..+0.8 nm.

RCC's lateral figure read 0.57x on session 40's three 3D tables of 500 rows (0.69x on 6 here, 0.92x on the 36 others of
500 rows): not the z, which the lateral estimate never sees (the same curve with z set to 0), but a single filament (40
molecules make one line, :func:`plexloc.post.synthetic.structure_points`) whose cross-correlation is a ridge: the error
lies along the filament (22-87 nm along it, 1.6-3.6 nm across, 6 tables), at chance maxima of the ridge that the linear
model of the peak does not see, and shared by all pairs of a window, which the residuals' check cannot see. Checking the
residuals along their two principal directions apart changed 0.69x to 0.69x (session 41, not kept). Those tables are
mostly flagged (the correction hurts on 17 of 42 at 500 rows: 15 flagged, 2 not).

Both give the drift of every frame, a smooth curve through the windows' estimates (natural cubic
spline, extended linearly past the first and last window centre), referenced to the first frame
(``drift(first frame) = 0``), and both say how far to trust it (``info["uncertainty_nm"]``, and an
:class:`UnreliableDriftWarning` where subtracting the curve would likely not help: :func:`drift_unreliable`, the
uncertainty above 10 nm and above the curve's own RMS / sqrt(2), or above 30 nm; session 40. Before, above 10 nm
for COMET and above the render pixel, 20 nm, for RCC, whatever the drift).

RCC's ``uncertainty_nm`` since session 40 (:func:`_rcc_noise`): the same quantity, from the whole table. Each pair
of windows' shift is the peak of a cross-correlation, a sum over pairs of localizations; linearized at the peak
(its gradient over its Hessian), the shift's error is a sum of the shares of independent units, the molecules'
on-events (:func:`_events`: rows in consecutive frames within 50 nm; a Poisson process of arrivals, so the sum of
their squared shares is the variance, less the pairs of localizations counted in two units), and through the
least-squares solve of the redundant pairs each unit moves each window's drift by a known amount; the windows'
covariance then gives the curve's noise (``noise_nm``), and the interpolation term below (with the knots' noise from
that covariance) is added in quadrature. A check: the pairs' residuals from the solution are compared with what this
model expects of them, and where they exceed it by more than chance (pairs off at chance peaks of the background:
no structure the windows share, too few localizations) the covariance is scaled up by the excess
(``pair_residual_ratio``). Against simulated truth (``bench/drift_calibration40.py``: lines, clusters, uniform
molecules and 3D lines in a 10 um field, 300-10,000 localizations over 10 windows, linear, wobble and settling
drifts; bench/drift_calibration40_rcc.json), reported / actual error, geometric mean (range) per size: 1,000 rows 0.93
(0.55-1.38), 2,000 1.03 (0.62-2.55), 5,000 0.93 (0.59-1.30), 10,000 0.99; 3D 1.09, 0.84, 0.90 at 1,000, 2,000,
5,000; 300 and 500 rows 0.95 and 1.08 (3D 0.91 and 0.57); 12 tables without any structure 0.89-1.04; 120 of 143
tables with a structure within 0.7-1.4x (the split-half test: 82, and 1.55 / 1.52 / 1.08 at 1,000 / 2,000 /
5,000 rows, single tables up to 12.9x). A table of 994,729 rows (lines, 20 um, 10,000 frames): 0.90 reported for
0.91 nm actual. What it left: the split-half test below, whose halves (half the rows each) lose the correlation
peak in windows where the whole table keeps it, so that it measured a failed half at a few hundred rows a window,
and whose 1.15 was fitted on dense tables; spatial halves, a jackknife and a bootstrap over tiles (all refits of
parts: the same loss) and robust spreads were tried and read 5-10x too high on single sparse tables (session 40).
Linearized units coarser than the on-event over-read where the sample is dense around them (60 nm tiles: clusters
1.3-1.6x; a tile's place in a cluster is a mean, not noise), 1 um tiles fail where few of them hold the structure
(a single cluster: 0.5x), and the FFT's gradients at the sub-pixel peak (bilinear) read 0.92x of the exact pair sums.
The split-half test below is no longer run for x and y: its one use beside this would be to catch an estimate
that failed, which the residuals' check does (the 12 tables without structure: all flagged, reported 0.73-1.32x the
actual error), while its halves' over-read called good sparse corrections unreliable. ``split_half=False`` still
skips the uncertainty (z's included). Time: the uncertainty costs about what the split-half test
did where z is found (994,729 rows, 3D, one thread: 13-15 s either way, 1.06-1.09 GB), more on a 2D table (the
same rows without z: 0.8 s without the uncertainty, 2.2 s with the split-half test, 4.6 s now: the on-events and
the pairs of localizations, sub-sampled to 4 million).

Until session 40 (kept for the record, and for COMET, below): RCC's ``uncertainty_nm`` was its expected error: the
RMS over the frames of the estimated minus the true drift, x and y

RCC's ``uncertainty_nm`` is its expected error: the RMS over the frames of the estimated minus the true drift, x and y
together, after removing the constant offset (:func:`drift_error_rms`, as the tests measure it). It has two parts,
added in quadrature. The split-half test: the table is cut into two halves by blocks of consecutive frames in each
window (8 blocks of equal counts a window, so that each on-event of a molecule stays in one half and the halves' errors
are independent, dealt in the Thue-Morse order so that both halves have the same mean frame in every window:
:func:`_half_split`), RCC is run on each half with the same windows, and half the RMS difference of their curves,
times 1.15 (:data:`RCC_HALF_DIFFERENCE_SCALE`, measured), is the noise of the full curve. The interpolation term:
the error that the curve's construction from windows makes on a smooth drift through the windows' estimates (a
window gives its mean drift; the curve has no curvature at its ends and runs straight past them), zero for a
linear drift; the knots' noise expected in it is taken out at each end separately (:func:`_interpolation_error`).
Against simulated truth (``bench/drift_uncertainty.py``: lines, rings, clusters; linear, linear + sine and
exponential drifts; 49,000-499,000 localizations over 3,000 frames, precision 5-20 nm; 10 windows; 9 cases x 5
seeds; bench/drift_interpolation35_rcc_s1.json) it was 0.59-1.76x the actual error of a table (38 of 45 within
0.67-1.5x; geometric means per case 0.81-1.17x, 0.98 over all; old figure 0.07-0.32x); with a quarter of the
molecules (12,000-125,000 localizations, ``--scale 0.25``) 0.61-1.93x (36 of 45; per case 0.85-1.29x, 1.08 over
all). Those halves were alternate blocks, whose centres lay a block apart: on a steep settling their curves differed
by more than noise, and the split-half term read the knots' noise 1.39x too high (fast settling, 100,000 rows, rms
over 5 tables). With the halves at common centres (session 36; bench/drift_rcc36_s1.json, bench/drift_rcc36_s025.json,
before: bench/drift_rcc36_*_before.json): 1.06x there; the whole figure 0.45-1.75x (per case 0.84-1.22x, 1.00 over
all), a quarter of the molecules 0.66-1.93x (per case 0.93-1.31x, 1.09 over all). On the fast settling it went
0.95 -> 0.84x: the interpolation term reads 0.76x of the construction's error there, which the split-half term's
excess had hidden. Elsewhere the new halves changed the halves' difference by chance only (one table's by 0.45-1.81x,
the mean over the 35 tables without a settling by +6 +- 3 % and +1 +- 5 %): one split's estimate is as noisy as
that. The interpolation term against the error the construction actually makes (the curve through the true windows'
means), on the 35 tables that bend: mean 0.96x, 0 in 1 (a quarter of the molecules: 1.25x, 0 in 4); before the
term's noise was taken out per end and RCC's knots' noise from common centres it was 0.69x, 0 in 11 (1.11x, 0 in 8),
the whole figure 0.57-1.73x (geometric means per case 0.77-1.15x, 0.92 over all). The actual error of one table
itself varies by about +-20 % around its expectation (blinking realizations of one sample: the reported figure was
1.0-1.16x that expectation, spread +-10-18 %). Measured with the term before that change: 20 windows: 0.65-1.50x;
with windows too coarse for the drift (5 windows for a sine of 1.3 periods or a settling) the interpolation term is
a guess (0.39-2.4x). Before, ``uncertainty_nm`` was how well the pairs of
windows agree, now ``info["window_agreement_nm"]``: a lower bound, 0.07-0.32x the actual error.
The split-half test cost two more RCC runs (about 3x the time; ``rcc_drift(split_half=False)``,
``plexloc drift --split-half no``). COMET's ``uncertainty_nm`` is the same quantity, made the same way: the same
windows and halves (:func:`_half_split`), half the RMS difference of their COMET curves, x and y together (times
:data:`COMET_HALF_DIFFERENCE_SCALE`, 1), and the interpolation term from COMET's windows, in quadrature. Against
simulated truth (``bench/drift_uncertainty.py --engine comet``: lines + linear, rings + sine, clusters + settling;
about 25,000 localizations over 3,000 frames; 3 seeds each) it was 0.49-1.54x the actual error (geometric means per
case 0.64-1.22x, 0.87 over all) with COMET's own windows (9 where 10 were asked) and alternate blocks; with our 10
windows and the halves at common centres (session 36, bench/drift_comet36_s025.json) 0.76-1.42x (per case
1.03-1.12x, 1.07 over all), and the curve itself better (actual error, means per case: lines + linear 3.17 -> 2.59
nm, rings + sine 5.45 -> 3.01, clusters + settling 5.85 -> 4.79). Before that, half the RMS difference of two
*random* halves of the rows, per lateral axis, it was 0.21-0.87x (means 0.27-0.78x, 0.48 over all): the frames of one
on-event fell in both halves. With 9 windows its interpolation term there was mostly noise
(bench/drift_interpolation35_comet_s025.json): on rings + sine 0, 0 and 2.6 nm against a construction error of
2.8-3.1 nm (the knots' noise expected in the term, 2.7-3.9 nm, is larger than the bend; the last window twice as
long, the curve ran straight for over 400 frames past its knot), on clusters + settling 4.0-8.4 nm against 0.7-0.9 nm
(the halves' difference under-reads COMET's knots' noise there: 5.3-8.8 against 6.2-16.2 nm² per axis). With 10:
rings + sine 2.1-2.8 nm against 1.3-1.6 nm (1.61x), clusters + settling 1.7-3.1 nm against 0.65-0.92 nm (3.28x):
still an over-read where the bend is small.

:func:`apply_drift` subtracts the drift and records what was subtracted in the columns ``drift_x_nm, drift_y_nm,
drift_z_nm`` (added to earlier corrections, if any), which the report plots.

Example:
    >>> import numpy as np
    >>> from plexloc.post.synthetic import blinking_table, linear_drift, structure_points
    >>> rng = np.random.default_rng(0)
    >>> truth = linear_drift(1000, (80.0, -40.0, 0.0))
    >>> t = blinking_table(structure_points("lines", 4000, fov_nm=8000.0, rng=rng), n_frames=1000,
    ...                    rng=rng, drift_nm=truth, events_per_molecule=6)
    >>> res = estimate_drift(t, engine="rcc", n_segments=8)
    >>> err = res.at(np.arange(1000))[:, :2] - truth[:, :2]
    >>> bool(np.sqrt(np.mean((err - err.mean(0)) ** 2)) < 5.0)
    True
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = [
    "DRIFT_COLUMNS",
    "ENGINES",
    "DriftResult",
    "MAX_DRIFT_NM",
    "apply_drift",
    "COMET_MAX_PAIRS",
    "comet_available",
    "drift_error_rms",
    "drift_unreliable",
    "estimate_pairs",
    "estimate_drift",
    "rcc_drift",
]

ENGINES = ("comet", "fiducials", "rcc")
DRIFT_COLUMNS = ("drift_x_nm", "drift_y_nm", "drift_z_nm")


def comet_available() -> bool:
    """Whether the optional ``comet-smlm`` package can be imported."""
    return importlib.util.find_spec("comet") is not None


@dataclass
class DriftResult:
    """The drift of every frame ``frames[0] .. frames[-1]`` (nm, columns x, y, z).

    ``segment_frames``/``segment_drift_nm`` are the per-window estimates the curve goes through. ``remove_rows``: a
    function of a table giving the rows :func:`apply_drift` leaves out (the ``fiducials`` engine's markers), or None.
    """

    frames: np.ndarray
    drift_nm: np.ndarray
    engine: str
    segment_frames: np.ndarray = field(default_factory=lambda: np.zeros(0))
    segment_drift_nm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    elapsed_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    remove_rows: Callable[[LocTable], np.ndarray] | None = None

    def at(self, frames: np.ndarray) -> np.ndarray:
        """``(N, 3)`` drift at the given frames (clamped to the covered range)."""
        idx = np.clip(np.asarray(frames, dtype=np.int64) - int(self.frames[0]), 0, len(self.frames) - 1)
        return self.drift_nm[idx]

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "elapsed_s": self.elapsed_s,
            "n_frames": int(len(self.frames)),
            "max_abs_drift_nm": [float(v) for v in np.abs(self.drift_nm).max(axis=0)] if len(self.frames) else [],
            "segment_frames": self.segment_frames.tolist(),
            "segment_drift_nm": np.asarray(self.segment_drift_nm).tolist(),
            **self.info,
        }


def drift_error_rms(estimated_nm: np.ndarray, true_nm: np.ndarray, axes: tuple[int, ...] = (0, 1)) -> float:
    """Lateral RMS error over frames of an estimated drift curve, after removing the constant offset.

    A constant offset shifts the whole image and does not blur it, so it is not an error of the
    correction; what is left is ``sqrt(mean_f |e_f - mean(e)|²)`` over x and y (``axes=(2,)``: z alone).
    """
    ax = list(axes)
    e = np.asarray(estimated_nm, dtype=float)[:, ax] - np.asarray(true_nm, dtype=float)[:, ax]
    e = e - e.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(e**2, axis=1))))


def _curve(seg_frames: np.ndarray, seg_drift: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Natural cubic spline through the window estimates, linear past the ends."""
    from scipy.interpolate import CubicSpline

    if len(seg_frames) == 1:
        out = np.repeat(seg_drift[:1], len(frames), axis=0)
    else:
        spline = CubicSpline(seg_frames, seg_drift, axis=0, bc_type="natural" if len(seg_frames) > 2 else "not-a-knot")
        out = spline(np.clip(frames, seg_frames[0], seg_frames[-1]))
        d1 = spline(seg_frames[0], 1)
        d2 = spline(seg_frames[-1], 1)
        lo = frames < seg_frames[0]
        hi = frames > seg_frames[-1]
        out[lo] = spline(seg_frames[0]) + (frames[lo] - seg_frames[0])[:, None] * d1
        out[hi] = spline(seg_frames[-1]) + (frames[hi] - seg_frames[-1])[:, None] * d2
    return out


def _segments(frame: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Window index per localization (equal counts, never splitting a frame) and window centre frames.

    Windows that would hold no localization (a crowded frame that several equal-count cuts fall in: the first frame
    of a dSTORM movie, where every molecule is on) are dropped, so that every window has rows and a centre that is
    the mean frame of its rows; there may then be fewer than ``n_segments`` windows.
    """
    order = np.argsort(frame, kind="stable")
    edges = np.unique(frame[order][np.linspace(0, len(frame) - 1, n_segments + 1).astype(np.int64)[1:-1]])
    _, seg = np.unique(np.searchsorted(edges, frame, side="right"), return_inverse=True)
    seg = seg.ravel().astype(np.int64)
    counts = np.bincount(seg)
    centre = np.bincount(seg, weights=frame.astype(float)) / counts
    return seg, centre


def _peak_subpixel(cc: np.ndarray, r: int) -> tuple[float, float, float]:
    """Peak (row, col, height) of ``cc``: least-squares quadratic fit to log(cc) in a (2r+1)² window."""
    return _peak_fit(cc, r)[:3]


def _peak_fit(cc: np.ndarray, r: int) -> tuple[float, float, float, np.ndarray]:
    """:func:`_peak_subpixel`'s peak (row, col, height) and the Hessian of ``cc`` at it (per pixel², ``[[xx, xy], [xy,
    yy]]``, x the columns) from the same fit: at a maximum the Hessian of ``cc`` is ``cc`` times that of its log, the
    fitted quadratic's, ``cc`` the fitted height there; NaN where the fit has no maximum inside the window."""
    nan = np.full((2, 2), np.nan)
    i, j = np.unravel_index(int(np.argmax(cc)), cc.shape)
    i = min(max(i, r), cc.shape[0] - r - 1)
    j = min(max(j, r), cc.shape[1] - r - 1)
    win = cc[i - r : i + r + 1, j - r : j + r + 1].astype(np.float64)
    if not win.max() > 0:  # no positive peak to fit (the log needs one): the integer peak
        return float(i), float(j), float(cc[i, j]), nan
    win = np.log(np.maximum(win, win.max() * 1e-3))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(float)
    a = np.stack([np.ones(win.size), xx.ravel(), yy.ravel(), xx.ravel() ** 2, yy.ravel() ** 2, (xx * yy).ravel()], 1)
    c, *_ = np.linalg.lstsq(a, win.ravel(), rcond=None)
    hess = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    try:
        dx, dy = np.linalg.solve(hess, -c[1:3])
    except np.linalg.LinAlgError:
        dx = dy = 0.0
    curvature = nan
    if not (abs(dx) <= r and abs(dy) <= r):  # not a maximum inside the window: keep the integer peak
        dx = dy = 0.0
    elif np.all(np.linalg.eigvalsh(hess) < 0):
        height = np.exp(c[0] + c[1] * dx + c[2] * dy + c[3] * dx**2 + c[4] * dy**2 + c[5] * dx * dy)
        curvature = float(height) * hess
    return i + dy, j + dx, float(cc[i, j]), curvature


def _peak_prominence(win: np.ndarray, pi: float, pj: float, r: int) -> float:
    """How far the cross-correlation peak at (``pi``, ``pj``) stands above the rest of the window ``win`` (shifts up to
    max_drift_nm or :data:`RCC_PEAK_REFERENCE_NM`, whichever is larger):
    (peak - mean) / standard deviation of the window outside a disk of radius ``2 r + 1`` pixels around the peak
    (``r`` the peak fit's radius, the blur in pixels). Two windows without shared structure correlate as a random
    field whose largest value over the window is a few of its standard deviations; a shared structure stands far
    above them (:data:`RCC_MIN_PEAK_Z`)."""
    yy, xx = np.mgrid[: win.shape[0], : win.shape[1]]
    i, j = int(round(pi)), int(round(pj))
    i = min(max(i, 0), win.shape[0] - 1)
    j = min(max(j, 0), win.shape[1] - 1)
    rest = win[(yy - i) ** 2 + (xx - j) ** 2 > (2 * r + 1) ** 2]
    sd = float(rest.std()) if rest.size > 1 else 0.0
    if not sd > 0:
        return float("inf") if win[i, j] > 0 else 0.0
    return float((win[i, j] - rest.mean()) / sd)


def _second_peak_z(win: np.ndarray, pi: float, pj: float, r: int) -> float:
    """The highest value of ``win`` outside :func:`_peak_prominence`'s disk around the peak at (``pi``, ``pj``), in
    the same units ((value - mean) / standard deviation of that rest): the runner-up of the correlation (session
    51); NaN where there is no rest."""
    yy, xx = np.mgrid[: win.shape[0], : win.shape[1]]
    i = min(max(int(round(pi)), 0), win.shape[0] - 1)
    j = min(max(int(round(pj)), 0), win.shape[1] - 1)
    rest = win[(yy - i) ** 2 + (xx - j) ** 2 > (2 * r + 1) ** 2]
    sd = float(rest.std()) if rest.size > 1 else 0.0
    if not sd > 0:
        return float("nan")
    return float((rest.max() - rest.mean()) / sd)


#: an estimate known to within this (``uncertainty_nm``, nm) is never called unreliable (:func:`drift_unreliable`);
#: without the uncertainty (``split_half=False``), RCC's windows' own disagreement above this or the render pixel
#: makes it unreliable
RCC_MAX_UNCERTAINTY_NM = 10.0
#: an estimate known to no better than this (nm) is always called unreliable (:func:`drift_unreliable`)
DRIFT_UNRELIABLE_ABOVE_NM = 30.0
#: RCC with fewer localizations than this per time window is unreliable whatever its uncertainty says (its figure was
#: validated from 30 a window, bench/drift_calibration40.py; 4 and 20 a window read 3.5x and 2.9x too low; session 48)
RCC_MIN_ROWS_PER_WINDOW = 30
#: a time window whose pairs' cross-correlation peaks all stand less than this many standard deviations above the rest
#: of the correlation (:func:`_peak_prominence`, :data:`RCC_PEAK_REFERENCE_NM`) makes RCC unreliable (session 49).
#: Measured on 2-window RCC at the default reach:
#: tables without structure 2.4-5.2 (80 tables of 200-10,000 uniform random rows, one row per molecule), tables of
#: lines 4.7-18 (1,000-5,000 rows; the 5.6 one was 16 nm off, reported +-1.4), clusters 11-20, blinking uniform
#: molecules 35-41
RCC_MIN_PEAK_Z = 6.0
#: ... but a 2-window RCC whose peak stands at least this high (and below :data:`RCC_MIN_PEAK_Z`) is checked again with
#: 3 windows (session 50): the three pairs' shifts of a shared structure add up (window 0 -> 1 -> 2 is window 0 -> 2),
#: chance peaks do not (:data:`RCC_MAX_CLOSURE_NM`). Sparse lines (500-2,000 rows) read 5.2-6.2 with 1.6-7 nm errors
RCC_CHECKED_PEAK_Z = 4.5
#: ... the 3-window check passes where the pairs' shifts miss closing by no more than this (nm, x and y together).
#: Measured (bench/drift50.json): sparse lines 0.7-14.4 nm where the 2-window estimate was right (0.3-7.1 nm off),
#: 30.3 and 33.5 nm where it was 8.5 and 13.6 nm off; 100 structure-free tables 47-828 nm (any peak; session 50
#: review: one-window clusters in the checked band 35-668 nm). At the default reach (:data:`MAX_DRIFT_NM`);
#: a smaller max_drift_nm allows this times max_drift_nm / MAX_DRIFT_NM (session 50 review: chance shifts lie within
#: the reach, and so does their closure; the chance of a closure within the allowance stays that of the default's)
RCC_MAX_CLOSURE_NM = 20.0
#: ... and a 2-window RCC with fewer rows than this per window is checked so whatever its peak (session 51): the
#: correlation of a sparse table is a few bright spots, and clusters that live in one window only read chance peaks of
#: 6-21 standard deviations (7 of 216 such tables of 300-3,000 rows accepted at 20 and 40 nm render pixels, 5-186 nm
#: off, all of 300-1,000 rows; their closures 33-572 nm). Not on dense tables: a 2-window stage jump of 150 nm (24-25k
#: rows, peak 8-10) misses closing by 117-142 nm because its middle window holds the jump (bench/drift51.py)
RCC_STRONG_CHECK_ROWS = 1000
#: ... whose allowance, where its peak is strong, shrinks with a smaller reach no further than this (nm; session 51
#: review, bench/drift51_review.py): right sparse tables (1,200-1,800 rows; 2D and 3D lines, rings, clusters, bead-like
#: clusters; 20 and 40 nm pixels; 0-9.9 nm off) close within 0.04-12.8 nm at reaches of 50-150 nm, and the scaled
#: allowance refused 26 of 173 strong-peak estimates at max_drift_nm 100 (6.7 nm allowed) and 68 of 173 at 50 (3.3
#: nm), this floor 4 and 4. Strong chance peaks of one-window clusters close 12.6-209 nm at 100 nm (none of 38 passes
#: either way) and 0-86 nm at 50 (2 of 34 pass 3.3 nm, 4 pass this floor, 3.9-38 nm off; all were accepted before the
#: check). The 4.5-6 band keeps the scaled allowance (session 50 review)
RCC_STRONG_MIN_CLOSURE_NM = 10.0
#: RCC reads a pair's peak significance (:func:`_peak_prominence`) against the cross-correlation of shifts up to this
#: (nm) or max_drift_nm, whichever is larger (session 50): with the searched window only, a reach of about 100 nm or
#: less left (nearly) nothing outside the peak's own disk, every peak read infinitely significant, and chance peaks of
#: tables without shared structure passed (29 / 9 of 108 at 50 / 100 nm, bench/drift50_review.py). The default
#: reach's (:data:`MAX_DRIFT_NM`), so the default's figures are unchanged. Never less than twice the diameter of the
#: peak's disk that :func:`_peak_prominence` leaves out (10 render pixels at the default blur): with a render pixel
#: above 30 nm (fields above 61 µm at 2,048 px) 300 nm alone would leave the same too small rest
RCC_PEAK_REFERENCE_NM = 300.0
#: the largest drift between two windows searched for (nm): COMET's pair radius, RCC's cross-correlation window; the
#: one default of :func:`rcc_drift`, :func:`comet_drift`, plexloc drift and plexloc process --max-drift
#: (:data:`plexloc.workflow.MAX_DRIFT_NM` is this). rcc_drift's own default was 1000 before session 48
MAX_DRIFT_NM = 300.0


def _reach_hint(closure_nm: float, max_drift_nm: float) -> str:
    """The words of a failed 3-window check (:data:`RCC_MAX_CLOSURE_NM`) that point to the reach, where a reach below
    the default shrank the allowance and the closure is within the default's (session 51): chance closures grow with
    the reach searched, a right table's does not; else ""."""
    if max_drift_nm >= MAX_DRIFT_NM or not closure_nm <= RCC_MAX_CLOSURE_NM:
        return ""
    return (f"a larger reach (max_drift_nm, plexloc drift --max-drift, {max_drift_nm:g} nm here: the allowance shrinks "
            f"with it; at the default {MAX_DRIFT_NM:g} nm {RCC_MAX_CLOSURE_NM:g} nm are allowed, and chance peaks "
            "miss by more there, 47-828 nm measured), ")


def _why_unreliable(uncertainty_nm: float, curve_rms_nm: float) -> str:
    """The reason :func:`drift_unreliable` gives, for the warnings."""
    if uncertainty_nm <= curve_rms_nm / np.sqrt(2.0):
        return f"more than {DRIFT_UNRELIABLE_ABOVE_NM:.0f} nm, too little to trust whatever it corrects"
    return "subtracting it would likely not help"


def drift_unreliable(uncertainty_nm: float, curve_rms_nm: float) -> bool:
    """Whether a drift estimate known to ``uncertainty_nm`` (its expected error, ``info["uncertainty_nm"]``) is
    unreliable: subtracting it would likely not help. The estimated curve's RMS about its mean (x and y together,
    ``curve_rms_nm``) holds the true drift and the estimate's error, about ``sqrt(drift² + error²)``; subtracting
    leaves the error instead of the drift, which helps while the error is below the drift, that is below
    ``curve_rms_nm / sqrt(2)``. Unreliable where the uncertainty is above that and above
    :data:`RCC_MAX_UNCERTAINTY_NM` (10 nm: a correction known that well is kept whatever it corrects), or above
    :data:`DRIFT_UNRELIABLE_ABOVE_NM` (30 nm) whatever the curve, or not known (NaN). The same rule for both engines
    (before session 40 RCC's threshold was its render pixel, 20 nm; until session 41 an unused ``engine`` argument
    came first).

    Why the 30 nm: where a table is so sparse that most cross-correlation peaks are chance, the curve is mostly
    error and the uncertainty under-reads it (RCC, 300-500 localizations over 10 windows, the tables where the
    correction hurt: 0.6-0.75x), so ``curve_rms_nm / sqrt(2)`` is met by an estimate that is wrong. Measured on
    bench/drift_calibration40.py's tables (RCC, session 40's uncertainty; 143 tables of lines, clusters and uniform
    molecules, 300-10,000 localizations, and 12 without any structure): from 1,000 localizations up no correction
    hurt and none is flagged (the rule before: 14 flagged); at 300-500, of 60 tables 23 hurt: 23 flagged, 3 of them
    helping, 3 that hurt not flagged (without the 30 nm: 16 flagged, 2 helping, 9 missed; the rule before, on the
    uncertainty before: 36 flagged, 13 helping, none missed); the 12 tables without structure all flagged. COMET (its
    uncertainty unchanged; bench/drift_calibration40_before.json, 83 tables of 1,000-10,000 rows): 5 flagged, 4 of
    them helping, none missed (before: 23 flagged, 22 helping); 54 of 300-500 rows, 18 of which it hurt
    (bench/drift_calibration40_comet_sparse.json): 27 flagged, 11 helping, 2 missed (before: 42, 24, none); the 12
    without structure all flagged (without the 30 nm: 2 of them missed).
    """
    limit = max(RCC_MAX_UNCERTAINTY_NM, min(curve_rms_nm / np.sqrt(2.0), DRIFT_UNRELIABLE_ABOVE_NM))
    return not uncertainty_nm <= limit  # NaN (not known) is unreliable too


#: (since session 40 used only where no redundant pair of windows checks RCC's peaks, :func:`_rcc_split_half`;
#: bench/drift_uncertainty.py reads it)
#: the RCC split-half term is this times half the RMS difference of the two halves' curves. For two independent
#: halves, each with twice the error variance of the full table, half their difference would be the full table's
#: error; measured against the windows' actual error on simulated tables it is 0.85x on average (0.67-1.05 by
#: structure; the same with the halves split by molecule): the cross-correlation is quadratic in the data, and its
#: error's variance grew only 1.7-1.8x with half the data (lines, clusters)
RCC_HALF_DIFFERENCE_SCALE = 1.15


class UnreliableDriftWarning(UserWarning):
    """The drift estimate's windows do not agree with each other: the estimated curve is mostly noise."""


def _rcc_solve(flat_idx: np.ndarray, seg: np.ndarray, n_seg: int, h: int, w: int, px: float, blur: float,
               max_drift_nm: float, device: str, progress: Callable[[int, int], None] | None = None,
               ) -> tuple[np.ndarray, np.ndarray, float, float, dict[str, np.ndarray]]:
    """RCC of the windows ``seg`` (0..n_seg-1) of the localizations at pixels ``flat_idx`` (row * w + col).

    Returns the windows' drift ``(n_seg, 2)`` (window 0 at zero), the pairs kept, the residual threshold, the
    error of one pair's shift from the kept pairs' disagreement with the solution (per axis) and the pairs for
    :func:`_rcc_noise`: ``pairs`` ``(n_pairs, 2)`` (windows i < j), ``shifts`` (nm, x and y: ``d_j - d_i``),
    ``curvature`` (the Hessian of each pair's cross-correlation at its peak, per nm², NaN where the fit found no
    maximum), ``heights``, ``solver`` (the least-squares map from the kept pairs' shifts to the windows' drifts) and
    ``design`` (``(n_pairs, n_seg)``: each pair's shift as ``d_j - d_i``).
    """
    import torch

    dev = torch.device(device)
    flat = torch.as_tensor(flat_idx, device=dev)
    seg_t = torch.as_tensor(seg, device=dev)
    m = int(np.ceil(max_drift_nm / px))
    r = max(2, int(round(blur / px)))
    # the peak's significance is read against shifts up to RCC_PEAK_REFERENCE_NM (and at least twice the diameter of
    # the peak's disk left out) even where the search is narrower (session 50): at a reach of 100 nm or less the
    # searched window left nothing outside the peak's own disk. At the default reach and pixel (300 nm, 20 nm) m_ref = m
    m_ref = max(m, int(np.ceil(RCC_PEAK_REFERENCE_NM / px)), 2 * (2 * r + 1))
    # zero-padded by the largest shift correlated (and the peak's fitting radius): the circular correlation then
    # holds no wrapped-around copy of a shift inside the window, however narrow the field
    hp, wp = h + m_ref + r + 1, w + m_ref + r + 1
    ky = torch.fft.fftfreq(hp, d=px, device=dev)[:, None]
    kx = torch.fft.rfftfreq(wp, d=px, device=dev)[None, :]
    gauss = torch.exp(-2 * np.pi**2 * blur**2 * (kx**2 + ky**2)) ** 2  # blur of both images
    spectra = []
    for s in range(n_seg):
        img = torch.bincount(flat[seg_t == s], minlength=h * w).reshape(h, w).to(torch.float32)
        spectra.append(torch.fft.rfft2(img - img.mean(), s=(hp, wp)))
    pairs, shifts, weights, curvatures, peak_z, second_z = [], [], [], [], [], []
    total = n_seg * (n_seg - 1) // 2
    done = 0
    for i in range(n_seg):
        for j in range(i + 1, n_seg):
            cc = torch.fft.irfft2(spectra[i].conj() * spectra[j] * gauss, s=(hp, wp))
            # window of shifts -m_ref..m_ref around zero (wrapping), as a small array with zero at (m_ref, m_ref); the
            # peak is searched for in its -m..m centre, its significance read on all of it
            rows = torch.arange(-m_ref, m_ref + 1, device=dev) % hp
            cols = torch.arange(-m_ref, m_ref + 1, device=dev) % wp
            ref = cc[rows][:, cols].cpu().numpy()
            o = m_ref - m
            win = ref[o : o + 2 * m + 1, o : o + 2 * m + 1]
            pi, pj, height, curvature = _peak_fit(win, r)
            peak_z.append(_peak_prominence(ref, pi + o, pj + o, r))
            second_z.append(_second_peak_z(ref, pi + o, pj + o, r))
            curvatures.append(curvature / px**2)
            pairs.append((i, j))
            shifts.append(((pj - m) * px, (pi - m) * px))
            weights.append(height)
            done += 1
            if progress is not None:
                progress(done, total)
    pairs_a = np.array(pairs)
    r_ij = np.array(shifts)
    a = np.zeros((len(pairs), n_seg))
    a[np.arange(len(pairs)), pairs_a[:, 1]] = 1.0
    a[np.arange(len(pairs)), pairs_a[:, 0]] = -1.0
    anchor = np.zeros((1, n_seg))
    anchor[0, 0] = 1.0  # d_0 = 0
    keep = np.ones(len(pairs), bool)
    sol = np.linalg.lstsq(np.vstack([a, anchor]), np.vstack([r_ij, np.zeros((1, 2))]), rcond=None)[0]
    resid = np.linalg.norm(a @ sol - r_ij, axis=1)
    threshold = max(3.0 * float(np.median(resid)), px)
    keep = resid <= threshold
    # every window must stay in at least one pair; otherwise keep its best pairs
    covered = np.zeros(n_seg, bool)
    covered[pairs_a[keep].ravel()] = True
    for s in np.flatnonzero(~covered):
        involved = np.flatnonzero((pairs_a == s).any(axis=1))
        keep[involved[np.argsort(resid[involved])[:2]]] = True
    if not keep.all():
        sol = np.linalg.lstsq(np.vstack([a[keep], anchor]), np.vstack([r_ij[keep], np.zeros((1, 2))]), rcond=None)[0]
    solver = np.linalg.pinv(np.vstack([a[keep], anchor]))[:, : int(keep.sum())]  # sol = solver @ r_ij[keep]
    # the redundancy of RCC measures its own precision: the pairs' disagreement with the solution (per axis, with
    # the degrees of freedom the fit used) is the error of one pair's shift, sigma_pair; the drift of a window is
    # then known to about sigma_pair * sqrt(2 / n_windows) (the complete graph of pairs)
    resid_kept = (a[keep] @ sol - r_ij[keep])
    dof = max(int(keep.sum()) - (n_seg - 1), 1)
    sigma_pair = float(np.sqrt((resid_kept**2).sum() / (2 * dof)))
    return sol, keep, threshold, sigma_pair, {"pairs": pairs_a, "shifts": r_ij, "curvature": np.array(curvatures),
                                              "heights": np.array(weights), "solver": solver, "design": a,
                                              "peak_z": np.array(peak_z), "second_z": np.array(second_z)}


def _three_window_closure(flat_idx: np.ndarray, frame: np.ndarray, h: int, w: int, px: float, blur: float,
                          max_drift_nm: float, device: str) -> dict[str, Any] | None:
    """The table cut into 3 windows: how far the shifts of its pairs miss adding up (``closure_nm``, x and y together:
    ``|s_01 + s_12 - s_02|``) and their weakest peak (``peak_z_min``); None where 3 windows of at least
    :data:`RCC_MIN_ROWS_PER_WINDOW` rows cannot be made."""
    seg, centre = _segments(frame, 3)
    if len(centre) < 3 or np.bincount(seg).min() < RCC_MIN_ROWS_PER_WINDOW:
        return None
    *_, fit = _rcc_solve(flat_idx, seg, 3, h, w, px, blur, max_drift_nm, device)
    s = fit["shifts"]  # pairs (0, 1), (0, 2), (1, 2)
    miss = s[0] + s[2] - s[1]
    return {"closure_nm": float(np.hypot(miss[0], miss[1])), "peak_z_min": float(np.min(fit["peak_z"])),
            "windows": 3}


#: on-events (:func:`_events`): rows in the same or the next frame within this of each other in x and in y (nm)
RCC_EVENT_LINK_NM = 50.0


def _events(xy: np.ndarray, frame: np.ndarray, radius_nm: float) -> np.ndarray:
    """The on-event of every row (ids 0..n-1): rows in the same or the next frame within ``radius_nm`` of each other
    in x and in y (``xy``: drift-corrected positions), chained (across windows too: an event that spans two is one
    unit in both). Two molecules that close in consecutive frames become one event, which only counts their errors
    as shared (more than they are)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(frame)
    pts = np.column_stack([xy, (np.asarray(frame, dtype=float) - float(np.min(frame))) * radius_nm])
    pr = cKDTree(pts).query_pairs(radius_nm * (1 + 1e-9), p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pr)), (pr[:, 0], pr[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


#: :func:`_rcc_noise`'s check of the pairs' residuals: residuals this small (nm, per pair and axis) need no explanation
RCC_RESIDUAL_FLOOR_NM = 1.0
#: ... and an excess of their sum of squares up to this many times its chance spread scales nothing
RCC_RESIDUAL_CHANCE = 2.0

#: at most about this many pairs of localizations (over all pairs of windows) in :func:`_rcc_noise`; above it, the
#: sums over units are taken over a random share of the units (scaled up)
RCC_NOISE_MAX_PAIRS = 4_000_000


def _rcc_noise(pos_px: np.ndarray, seg: np.ndarray, n_seg: int, px: float, blur: float, fit: dict[str, np.ndarray],
               keep: np.ndarray, unit: np.ndarray, seed: int = 0, progress: Callable[[int, int], None] | None = None,
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """The error covariance of the windows' drifts, ``(2, n_seg, n_seg)`` (nm², x and y), of :func:`_rcc_solve`'s
    solution from its pairs ``fit`` (kept: ``keep``), ``pos_px`` the rows' pixels (x, y: as rendered) and ``unit``
    the independent unit of every row (ids; the on-events of :func:`_events`); ``progress(done, total)`` after each
    pair of windows.

    The cross-correlation of windows i and j is a sum over pairs of localizations, ``CC(s) = sum_ab K(p_b - p_a -
    s)`` (``K``: the correlation's Gaussian, variance ``2 blur²``), and its peak ``s`` is where the gradient ``g =
    -sum_ab grad K(p_b - p_a - s)`` vanishes: a change ``dg`` moves it by ``-H^-1 dg`` (``H``: the peak's Hessian,
    from the fit, :func:`_peak_fit`). ``g`` is a two-sample U-statistic over the units of the two windows: the
    units (on-events: a Poisson process of independent arrivals, given the sample) each bring ``U_u``, the sum over
    their localizations' pairs with the other window, and the variance of ``g`` is ``sum_u U_u U_u^T`` over the
    units of both windows (uncentred: the units' number is as random as their place), less ``sum_uv k_uv k_uv^T``
    (``k_uv``: the pairs between unit u of window i and unit v of window j, counted in both ``U_u`` and ``U_v``).
    The solve is linear (``fit["solver"]``), so every unit moves every window's drift by a known amount through all
    the pairs of its window, and the windows' covariance is the sum over units of the outer products, less the
    pairs' own term. The pairs are taken within 4 standard deviations of ``K`` (exactly as the cross-correlation
    sees them; the FFT's gradients, bilinearly interpolated to the sub-pixel shift, read 0.92x). This uses the whole
    table at the estimate's own peaks: no half of it, which at a few localizations per window loses the peak where
    the whole table keeps it (session 40). Not in it: how the curve's construction from windows misses a bending
    drift (:func:`_interpolation_error`); a pair whose peak is a chance maximum of the background (an error beyond
    the linear range; mostly dropped by the solve's residual test).

    Units grouped more coarsely than the on-event over-read where the sample is dense around them (a tile of a
    cluster carries its place in the cluster as a mean, not noise; 60 nm tiles read clusters 1.3-1.6x) and tiles
    far larger than the correlation fail where few of them hold the structure (one cluster: 0.5x).
    """
    from scipy.spatial import cKDTree

    pairs, shifts, curvature = fit["pairs"][keep], fit["shifts"][keep], fit["curvature"][keep]
    solver = fit["solver"]
    n_p = len(pairs)
    var_k = 2.0 * (blur / px) ** 2  # the correlation's Gaussian, pixels²
    finite = np.isfinite(curvature).all(axis=(1, 2))
    info: dict[str, Any] = {"pairs_without_peak_fit": int((~finite).sum())}
    # a pair whose fit found no maximum (kept by the solve to cover its window): the median fitted peak's
    # curvature, or where no pair has one (nothing the windows share), that of a single Gaussian of the
    # correlation's width as high as the pairs' median maximum (the residuals' check then scales the noise up)
    if finite.any():
        fallback = np.median(curvature[finite], axis=0)
    else:
        fallback = -max(float(np.median(np.abs(fit["heights"][keep]))), 1e-12) / (var_k * px**2) * np.eye(2)
    curvature = np.where(finite[:, None, None], curvature, fallback)
    inv_h = np.linalg.inv(curvature)
    reach = 4.0 * np.sqrt(var_k)
    order = np.argsort(seg, kind="stable")
    bounds = np.searchsorted(seg[order], np.arange(n_seg + 1))
    rows_of = [order[bounds[k] : bounds[k + 1]] for k in range(n_seg)]
    _, unit = np.unique(unit, return_inverse=True)
    unit = unit.ravel().astype(np.int64)
    n_units = int(unit.max()) + 1
    trees = [cKDTree(pos_px[rows]) for rows in rows_of]
    rng = np.random.default_rng(seed)
    est = 0.0  # how many pairs: from 100 rows of every pair's first window
    for p in range(n_p):
        i, j = pairs[p]
        pick = rows_of[i][rng.choice(len(rows_of[i]), min(len(rows_of[i]), 100), replace=False)]
        found = trees[j].query_ball_point(pos_px[pick] + shifts[p] / px, reach, return_length=True)
        est += float(np.sum(found)) * len(rows_of[i]) / len(pick)
    frac = min(1.0, RCC_NOISE_MAX_PAIRS / max(est, 1.0))
    sampled = rng.random(n_units) < frac if frac < 1.0 else np.ones(n_units, bool)
    info["noise_unit_share"] = frac
    # every sampled unit's share of every pair's gradient: D_u = U_u + V_u - k_uu, the pairs of localizations that
    # involve the unit, each once (k_uu: those between its own rows in the two windows, an on-event that spans
    # both); scaled by 1/sqrt(frac)
    local = np.full(n_units, -1, dtype=np.int64)
    local[sampled] = np.arange(int(sampled.sum()))
    n_s = int(sampled.sum())
    shares: list[tuple[np.ndarray, int, np.ndarray]] = []  # (units, pair, (n, 2) shares of the shift error)
    pair_term = np.zeros((n_p, 2))
    for p in range(n_p):
        i, j = pairs[p]
        ra, rb = rows_of[i], rows_of[j]
        grad = np.zeros((n_s, 2))
        for side, (rows_q, tree_other, rows_other, sign) in enumerate(
                ((ra[sampled[unit[ra]]], trees[j], rb, 1.0), (rb[sampled[unit[rb]]], trees[i], ra, -1.0))):
            if not len(rows_q):
                continue
            moved = pos_px[rows_q] + sign * shifts[p] / px  # onto the other window's pixels
            dm = cKDTree(moved).sparse_distance_matrix(tree_other, reach, output_type="ndarray")
            if not len(dm):
                continue
            d = sign * (pos_px[rows_other[dm["j"]]] - moved[dm["i"]])  # p_b - p_a - s (pixels)
            # -grad K (per nm), K the pixel-normalized Gaussian of the rendered correlation
            hv = d * (np.exp(-0.5 * np.sum(d**2, axis=1) / var_k) / (2 * np.pi * var_k**2 * px))[:, None]
            uq, uo = unit[rows_q[dm["i"]]], unit[rows_other[dm["j"]]]
            for c in range(2):
                grad[:, c] += np.bincount(local[uq], weights=hv[:, c], minlength=n_s)
            if side == 0:
                same = uq == uo  # k_uu: counted in U_u and in V_u, once too many
                for c in range(2):
                    grad[:, c] -= np.bincount(local[uq[same]], weights=hv[same, c], minlength=n_s)
                # the pairs' own term: k_uv (u != v) is in D_u and in D_v, its own noise counted twice (a
                # U-statistic): once is taken out
                key = uq[~same] * n_units + uo[~same]
                _, inv = np.unique(key, return_inverse=True)
                kk = np.column_stack([np.bincount(inv.ravel(), weights=hv[~same, c]) for c in range(2)])
                pair_term[p] = np.diag(inv_h[p] @ (kk.T @ kk / frac) @ inv_h[p].T)
        nz = np.flatnonzero(np.any(grad != 0, axis=1))
        shares.append((nz, p, -grad[nz] @ inv_h[p].T / np.sqrt(frac)))  # each unit's share of the shift error
        if progress is not None:
            progress(p + 1, n_p)
    # the pairs' error covariance (per axis), then the windows' through the solve
    from scipy.sparse import coo_matrix

    u_idx = np.concatenate([u for u, _, _ in shares])
    p_idx = np.concatenate([np.full(len(u), p) for u, p, _ in shares])
    pair_cov = np.zeros((2, n_p, n_p))
    for c in range(2):
        vals = np.concatenate([e[:, c] for _, _, e in shares])
        m = coo_matrix((vals, (u_idx, p_idx)), shape=(n_s, n_p)).tocsr()
        pair_cov[c] = (m.T @ m).toarray() - np.diag(pair_term[:, c])
    # S C S^T per axis as two products: the einsum of one contraction over both pair indices cost O(n_seg^6)
    # (60 windows: 25 s of a 27 s estimate)
    cov = np.stack([solver @ pair_cov[c] @ solver.T for c in range(2)])
    # the check: RCC's pairs are redundant, and their residuals from the solution must be as large as this error
    # model says. Where a pair's peak is a chance maximum of the background (no structure the windows share, or a
    # window with too few localizations) its shift is off by far more than the linear model of its peak allows:
    # the residuals then exceed their expectation by the factor by which the model under-reads, and the windows'
    # covariance is scaled up by it (never down)
    design = fit["design"][keep]
    resid_op = np.eye(n_p) - design @ solver
    sol = solver @ shifts
    resid = shifts - design @ sol  # (n_p, 2)
    # the residuals' sum of squares against its expectation, the trace of their covariance (x and y), less twice
    # its chance spread (sqrt(2 trace(C²)) for Gaussian residuals): only an excess beyond chance scales the model
    # up. Residuals of a nm or less need no explanation (one pair of windows may see the same few molecules as the
    # next, and the residuals and their expectation are then nearly 0): 1 nm² per residual is added to both
    res_cov = [resid_op @ pair_cov[c] @ resid_op.T for c in range(2)]
    floor = 2.0 * n_p * RCC_RESIDUAL_FLOOR_NM**2
    expected = max(float(np.trace(res_cov[0]) + np.trace(res_cov[1])), 0.0) + floor
    spread = float(np.sqrt(2.0 * sum(np.sum(c * c) for c in res_cov)))
    observed = float(np.sum(resid**2)) + floor
    ratio = (observed - RCC_RESIDUAL_CHANCE * spread) / expected
    info.update(pair_residual_ratio=ratio,
                noise_pair_term=float(np.sum(pair_term) / max(float(np.trace(pair_cov[0] + pair_cov[1]))
                                                               + float(np.sum(pair_term)), 1e-300)))
    return cov * max(1.0, ratio), info


def _curve_noise(cov: np.ndarray, centre: np.ndarray, frames: np.ndarray) -> tuple[float, float]:
    """The curve's noise and its knots' error variance from the windows' error covariance ``cov`` ``(2, n_seg,
    n_seg)`` (x, y): the RMS over the frames of x and y together after removing the constant offset (as
    :func:`drift_error_rms`), and the variance per axis and window of the knots' errors about their mean (as
    :func:`_knot_variance`)."""
    n_seg = len(centre)
    basis = _curve(centre, np.eye(n_seg), frames.astype(float))
    basis -= basis.mean(axis=0)
    gram = basis.T @ basis / len(frames)
    total = cov[0] + cov[1]
    centring = np.eye(n_seg) - 1.0 / n_seg
    knot_var = max(float(np.trace(centring @ total @ centring)) / (2 * n_seg), 0.0)
    return float(np.sqrt(max(float(np.sum(gram * total)), 0.0))), knot_var


#: blocks of frames per window in the split-half test (:func:`_half_split`): a power of 2, for the Thue-Morse order
HALF_BLOCKS_PER_WINDOW = 8


def _half_split(frame: np.ndarray, seg: np.ndarray, n_seg: int, blocks_per_window: int = HALF_BLOCKS_PER_WINDOW,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of the table for the split-half test (RCC, COMET): blocks of consecutive frames per window, dealt to
    the halves in the Thue-Morse order (A B B A B A A B for 8 blocks).

    Every window is cut into ``blocks_per_window`` blocks of (nearly) equal row counts, each frame whole in the block
    of its middle row, and block ``b`` goes to the first half where ``b`` has an even number of 1 bits. A molecule's
    on-event lasts a few consecutive frames, so blocks keep (nearly) each event in one half: the halves then see
    different on-events and their errors are independent. A random split of the rows would put the frames of one
    event in both halves, and their shared sampling of which molecules shone in which window would go unseen (half
    the halves' difference against the windows' actual error: rows split at random 0.5-0.65x, blocks 0.75-1.05x, as
    much as a split by molecule).

    Why this order: for 2^k blocks the Thue-Morse order gives both halves equal sums of ``b^0 .. b^(k-1)``; with 8
    blocks of equal counts the halves' rows have the same mean rank and spread of ranks in every window, hence (to a
    frame or two) the same mean frame, however the rows thin out over the window. The halves then estimate the same
    quantity, the drift's mean over the window at the same centre frame, and their difference is noise. Alternate
    blocks (A B A B ..., about 10 a window, until session 36) put one half's centre a block earlier than the other's
    (12-58 frames on a 3,000-frame table of 50,000 rows; this order: 1.8 at most; tests/test_drift36.py): on a steep
    settling the two halves' curves then differ by what the drift does over those frames and by how each curve,
    through its own centres, misses the bend, which is no noise. Through the true mean drift of each half's windows
    (no noise at all) the halves' curves differed by 0.94 nm rms on a settling with a time constant of 0.2 of the
    movie (now 0.23), and RCC's split-half term read the knots' noise 1.39x too high on that settling at 100,000 rows
    (rms over 5 tables, bench/drift_uncertainty.py; now 1.06x; the knots' error variance at the window centres
    1.72 -> 1.25x; bench/drift_rcc36_s1.json). A window whose blocks leave one half with under a quarter of its rows
    (a window of one or two frames) alternates its rows instead.

    Returns the mask of the first half and the blocks' mean length (frames) in every window.
    """
    big = np.iinfo(np.int64).max
    start = np.full(n_seg, big, dtype=np.int64)
    stop = np.full(n_seg, -big, dtype=np.int64)
    f = frame.astype(np.int64)
    np.minimum.at(start, seg, f)
    np.maximum.at(stop, seg, f)
    span = stop - start + 1
    n_blocks = max(int(blocks_per_window), 1)
    n = np.bincount(seg, minlength=n_seg)
    # the rows of a window in frame order; each frame goes whole to the block of its middle row's rank
    _, inverse, per_frame = np.unique(seg.astype(np.int64) * (int(f.max() - f.min()) + 1) + (f - f.min()),
                                      return_inverse=True, return_counts=True)
    frame_start = np.cumsum(per_frame) - per_frame  # rank of each (window, frame)'s first row in the sorted table
    frame_seg = np.zeros(len(per_frame), dtype=np.int64)
    frame_seg[inverse.ravel()] = seg
    middle = frame_start - (np.cumsum(n) - n)[frame_seg] + 0.5 * per_frame  # rank inside its window
    frame_block = np.minimum((middle * n_blocks / n[frame_seg]).astype(np.int64), n_blocks - 1)
    # the Thue-Morse sequence: the parity of the number of 1 bits of the block index
    thue_morse = np.array([bin(b).count("1") % 2 for b in range(n_blocks)])
    half = thue_morse[frame_block[inverse.ravel()]] == 0
    n_a = np.bincount(seg[half], minlength=n_seg)
    uneven = (n_a < 0.25 * n) | (n - n_a < 0.25 * n)
    if uneven.any():
        rows = np.flatnonzero(uneven[seg])
        rows = rows[np.lexsort((f[rows], seg[rows]))]
        rank = np.arange(len(rows)) - np.searchsorted(seg[rows], seg[rows])  # position inside its window
        half[rows] = rank % 2 == 0
    return half, np.maximum(1, span // n_blocks)


def _plausible_drift_basis(centre: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``(len(f), n)``: a smooth drift through ``n`` knots at frames ``centre``, as a linear map of the knots.

    The not-a-knot cubic spline between the first and last knot; past them its value and slope at the end knot and
    the curvature of the least-squares parabola through the 4 knots at that end (a cubic extrapolated from the end
    knots bends with their noise, 3x as much as this, and overshot the construction's error on a slow sine by 1.2x).
    """
    from scipy.interpolate import CubicSpline

    n = len(centre)
    spline = CubicSpline(centre, np.eye(n), axis=0, bc_type="not-a-knot")
    f = np.asarray(f, dtype=float)
    out = spline(np.clip(f, centre[0], centre[-1]))
    m = min(4, n)
    for past, end, idx in ((f < centre[0], centre[0], np.arange(m)), (f > centre[-1], centre[-1], np.arange(n - m, n))):
        if not past.any():
            continue
        dc = centre[idx] - end
        curvature = np.zeros(n)
        curvature[idx] = 2.0 * np.linalg.pinv(np.stack([np.ones(m), dc, dc**2], axis=1))[2]
        dt = (f[past] - end)[:, None]
        out[past] = spline(end)[None, :] + dt * spline(end, 1)[None, :] + 0.5 * dt**2 * curvature[None, :]
    return out


def _interpolation_error(frame: np.ndarray, seg: np.ndarray, centre: np.ndarray, knots: np.ndarray,
                         frames: np.ndarray, knot_var: float, max_eval: int = 20_000) -> float:
    """Lateral RMS error of the curve that comes from its construction from windows, estimated from the knots (nm).

    The curve goes through each window's *mean* drift at the window's mean frame, a natural spline between the
    windows and a straight line past the first and last window centre. Where the drift bends, that misses it (the
    mean of a bent curve is not its value at the mean frame; no curvature at the end knots; a straight line past
    them), by the same amount for every split of the table, so no split-half test sees it. It is estimated as the
    error that this construction makes on a plausible drift through the knots (:func:`_plausible_drift_basis`,
    ``P``): the windows' means of ``P`` over the table's frames, the curve through them, minus ``P``; RMS over the
    frames of x and y together after removing the constant offset. The construction is linear in the knots and
    exact for a linear drift (zero). The knots' noise (variance ``knot_var`` per axis and window) bends ``P`` too:
    its expected contribution is subtracted, separately at the start (frames before the second knot), at the end
    (after the second-last) and in between, each part kept at 0 or above. The construction's error lives at the ends
    (98-100 % of its square before the second and after the second-last knot on sines and settlings, 10 windows),
    where ``P``'s bend comes from the curvature of the last few knots, as noisy as the bend itself is small; one
    sum over all frames let the noise of an end that does not bend (a settling bends only at the start), whenever
    it fell below its expectation, cancel the other end's bend. Measured from the true windows' drifts of simulated
    tables (10 windows): 0.85x the actual error of the construction for an exponential settling, 1.03-1.06x for a
    linear drift plus a slow sine (0.7 and 1.3 periods over the movie); it cannot be right where the windows sample
    the drift too coarsely (a period within a few windows). From the estimated knots it is as noisy as the knots'
    curvature at the ends: where the noise expected there is as large as the bend it is 0 in some tables and several
    times the construction's error in others (RCC, 12,000-125,000 rows, 35 bent tables: 0-5.4x, mean 1.25x, 0 in
    4; COMET's windows, about 25,000 rows of rings on a sine: 0 in 2 of 3; bench/drift_interpolation35_*.json).
    """
    n_seg = len(centre)
    if n_seg < 3:
        return 0.0
    ev = frames if len(frames) <= max_eval else np.unique(np.linspace(frames[0], frames[-1], max_eval).round())
    uf, inv = np.unique(frame, return_inverse=True)
    counts = np.bincount(inv.ravel(), minlength=len(uf)).astype(float)
    useg = np.zeros(len(uf), dtype=np.int64)
    useg[inv.ravel()] = seg  # every frame is in one window
    wsum = np.zeros((n_seg, n_seg))
    np.add.at(wsum, useg, counts[:, None] * _plausible_drift_basis(centre, uf))
    means = wsum / np.bincount(useg, weights=counts, minlength=n_seg)[:, None]  # window means of each basis curve
    basis = _curve(centre, means, ev.astype(float)) - _plausible_drift_basis(centre, ev)
    basis -= basis.mean(axis=0)
    k = np.asarray(knots, dtype=float)[:, :2]  # x and y together (or one column: z alone)
    raw = np.sum((basis @ k) ** 2, axis=1)
    noise = k.shape[1] * knot_var * np.sum(basis**2, axis=1)
    start, end = ev < centre[1], ev > centre[-2]
    total = sum(max(float(raw[r].sum() - noise[r].sum()), 0.0) for r in (start, end, ~start & ~end))
    return float(np.sqrt(total / len(ev)))


def _knot_variance(half_difference: np.ndarray, centres: np.ndarray, frames: np.ndarray, scale: float) -> float:
    """The error variance of the full curve's knots, per axis, from the two halves' curves' difference
    ``half_difference`` (frames ``frames``, x and y) at the knots' frames ``centres``: each half has half the rows,
    so a knot's error variance is a quarter of the difference's (times ``scale``², the split-half test's measured
    factor); NaN with fewer than 2 finite knots."""
    at = np.clip(np.round(centres).astype(np.int64) - int(frames[0]), 0, len(frames) - 1)
    dk = half_difference[at]
    dk = dk[np.isfinite(dk).all(axis=1)]
    return float(np.mean((dk - dk.mean(axis=0)) ** 2)) * scale**2 / 4.0 if len(dk) >= 2 else float("nan")


def _rcc_split_half(frame: np.ndarray, seg: np.ndarray, n_seg: int, centre: np.ndarray, frames: np.ndarray,
                    flat: np.ndarray, h: int, w: int, px: float, blur: float, max_drift_nm: float, device: str,
                    ) -> tuple[dict[str, Any], float, float]:
    """RCC's split-half test (its uncertainty until session 40, now where no redundant pair of windows checks
    :func:`_rcc_noise`): RCC run on the two halves of :func:`_half_split`; half their curves' RMS difference (times
    :data:`RCC_HALF_DIFFERENCE_SCALE`) is the curve's noise. Returns the info (``half_difference_nm``,
    ``half_block_frames``, ``uncertainty_from``), the noise (nm, NaN where a half has under 2 windows) and the knots'
    error variance per axis (:func:`_knot_variance`)."""
    half, block = _half_split(frame, seg, n_seg)
    curves = []
    for part in (half, ~half):
        present = np.bincount(seg[part], minlength=n_seg) > 0
        if present.sum() < 2:
            curves.append(np.full((len(frames), 2), np.nan))
            continue
        remap = np.cumsum(present) - 1
        s_h = remap[seg[part]]
        c_h = np.bincount(s_h, weights=frame[part].astype(float)) / np.bincount(s_h)  # the half's own centres
        sol_h = _rcc_solve(flat[part], s_h, int(present.sum()), h, w, px, blur, max_drift_nm, device)[0]
        curves.append(_curve(c_h, sol_h, frames))
    e = curves[0] - curves[1]
    e = e - e.mean(axis=0)
    half_diff = float(np.sqrt(np.mean(np.sum(e**2, axis=1))))  # lateral, as drift_error_rms
    knot_var = _knot_variance(e, centre, frames, RCC_HALF_DIFFERENCE_SCALE)
    info = {"half_difference_nm": half_diff, "half_block_frames": int(np.median(block)),
            "uncertainty_from": "split-half"}
    return info, RCC_HALF_DIFFERENCE_SCALE * half_diff / 2.0, knot_var


#: RCC's step check (:func:`_rcc_step`): the two windows around the largest jump between knots are cut into this many
#: blocks of equal counts, each cross-correlated with the rest of the table (drift-corrected)
RCC_STEP_BLOCKS = 8
#: ... a step is kept where it fits the blocks' drifts this many times better (residual sum of squares) than a
#: quadratic through them, and better than a straight line by an F ratio (2 and 2 B - 6 degrees of freedom, 2 B - 8
#: where the step falls inside a block, which is then left out) above :data:`RCC_STEP_F`
RCC_STEP_RATIO = 10.0
RCC_STEP_F = 30.0
#: ... a found step's timing is then looked at finer: the blocks on either side of it (and the one holding it) are cut
#: into this many sub-blocks each, whose drifts show whether the stage jumped or settled (session 51)
RCC_STEP_SUBBLOCKS = 4


def _rcc_step(x: np.ndarray, y: np.ndarray, frame: np.ndarray, seg: np.ndarray, centre: np.ndarray, sol: np.ndarray,
              frames: np.ndarray, *, x0: float, y0: float, h: int, w: int, px: float, blur: float,
              max_drift_nm: float, device: str, blocks_out: dict[str, Any] | None = None,
              reference_curve: np.ndarray | None = None) -> dict[str, Any] | None:
    """A step of the drift (the stage jumped) between two windows' centres, or None.

    The curve through the windows' drifts is smooth: a stage that jumps by 50 nm at one frame is spread over the
    frames between two windows' centres (bench/drift_walk48.py's step: the knots right to 1-3 nm, the curve 4.5 nm rms
    off, 20-25 nm off for 200 frames, while the uncertainty, whose model of the curve between windows is smooth,
    read 1.8). Here the interval whose jump departs most from the others' pace is looked at closer: the rows of its
    two windows are cut into :data:`RCC_STEP_BLOCKS` blocks of equal counts, each cross-correlated with the rest of
    the table corrected by the curve (a well-sampled reference), which gives the drift of every block. A step (a jump
    between two blocks on a straight line) is kept where it fits those drifts :data:`RCC_STEP_RATIO` times better
    than a quadratic and beats a straight line by an F ratio above :data:`RCC_STEP_F`; every block's peak must stand
    out (:data:`RCC_MIN_PEAK_Z`). Returns ``frame`` (the first frame after the step), ``size_nm`` (x, y),
    ``block_frames`` and ``block_drift_nm`` (the blocks' mean frames and drifts), ``f_ratio``, ``quadratic_ratio``
    and the knots on either side (``left``, ``right``: frames and drifts) that :func:`_stepped_curve` joins."""
    n_seg = len(centre)
    if n_seg < 2:
        return None
    gap = np.diff(centre)
    jumps = np.diff(sol, axis=0)
    pace = np.median(jumps / gap[:, None], axis=0) if n_seg > 2 else np.zeros(2)
    excess = np.linalg.norm(jumps - pace * gap[:, None], axis=1)
    k = int(np.argmax(excess))
    near = (seg == k) | (seg == k + 1)
    rest = ~near
    # with 2 windows every row is near: each block is then correlated with all the other rows
    if (n_seg > 2 and rest.sum() < RCC_MIN_ROWS_PER_WINDOW) or near.sum() < RCC_STEP_BLOCKS * RCC_MIN_ROWS_PER_WINDOW:
        return None
    curve = _curve(centre, sol, frames) if reference_curve is None else reference_curve
    idx = frame.astype(np.int64) - int(frames[0])
    xr, yr = x[rest] - curve[idx[rest], 0], y[rest] - curve[idx[rest], 1]

    def pixels(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        ix = np.clip(((xs - x0) / px).astype(np.int64), 0, w - 1)
        iy = np.clip(((ys - y0) / px).astype(np.int64), 0, h - 1)
        return iy * w + ix

    ref = pixels(xr, yr)
    if n_seg == 2:
        ref_all = pixels(x - curve[idx, 0], y - curve[idx, 1])
    f_near = frame[near]
    block, b_centre = _segments(f_near, RCC_STEP_BLOCKS)
    if len(b_centre) < RCC_STEP_BLOCKS:
        return None
    pix_near = pixels(x[near], y[near])
    b_drift = np.zeros((len(b_centre), 2))
    for b in range(len(b_centre)):
        sel = block == b
        r_b = ref if n_seg > 2 else ref_all[~sel]  # 2 windows: near is every row, in the order of the table
        flat = np.concatenate([r_b, pix_near[sel]])
        s2 = np.concatenate([np.zeros(len(r_b), np.int64), np.ones(int(sel.sum()), np.int64)])
        d, _, _, _, fit = _rcc_solve(flat, s2, 2, h, w, px, blur, max_drift_nm, device)
        if not fit["peak_z"][0] >= RCC_MIN_PEAK_Z:
            return None
        b_drift[b] = d[1] - d[0]
    t = (b_centre - b_centre.mean()) / max(float(np.ptp(b_centre)), 1.0)
    ones = np.ones_like(t)
    if blocks_out is not None:
        blocks_out.update(frames=b_centre, drift=b_drift)

    def rss(design: np.ndarray, use: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(design, b_drift[use], rcond=None)
        return float(np.sum((design @ coef - b_drift[use]) ** 2))

    n_b = len(t)
    best = None
    # the step between two blocks (inside=False), or inside block j (its drift a mix of both sides: left out of the
    # fit, and the step's frame placed in it by the mix)
    for j, inside in [(j, False) for j in range(1, n_b)] + [(j, True) for j in range(1, n_b - 1)]:
        use = np.ones(n_b, bool)
        if inside:
            use[j] = False
        after = (np.arange(n_b) >= j).astype(float)
        lin = np.column_stack([ones, t])[use]
        quad = np.column_stack([ones, t, t**2])[use]
        stp = np.column_stack([ones, t, after])[use]
        dof = 2 * (int(use.sum()) - 3)
        r_step = max(rss(stp, use), 1e-12)
        if best is None or r_step / dof < best[0]:
            best = (r_step / dof, j, inside, use, rss(lin, use), rss(quad, use), r_step, dof)
    _, j, inside, use, rss_line, rss_quad, rss_step, dof = best
    f_ratio = (rss_line - rss_step) / 2.0 / (rss_step / dof)
    quad_ratio = rss_quad / rss_step
    if not (f_ratio > RCC_STEP_F and quad_ratio > RCC_STEP_RATIO):
        return None
    after = (np.arange(n_b) >= j).astype(float)
    coef, *_ = np.linalg.lstsq(np.column_stack([ones, t, after])[use], b_drift[use], rcond=None)
    fb = np.sort(f_near[block == j])
    first_after = int(fb[0])
    if inside:  # the share of block j after the step, from where its drift lies between the two sides
        lo = coef[0] + coef[1] * t[j]
        size = coef[2]
        share = float(np.clip(np.dot(b_drift[j] - lo, size) / max(float(np.dot(size, size)), 1e-12), 0.0, 1.0))
        first_after = int(fb[min(int(round((1.0 - share) * len(fb))), len(fb) - 1)])
    keep_b = np.ones(n_b, bool)
    if inside:
        keep_b[j] = False
    before = keep_b & (np.arange(n_b) < j)
    later = keep_b & (np.arange(n_b) >= j)
    # the step's own error (session 50), two terms in quadrature, over the movie's frames (x and y together):
    # - the blocks' scatter about the fitted step (per block, with the 3 coefficients per axis the fit used), the
    #   error of the curve they make over the frames they span, counted in the share of the frames they span;
    # - its timing: the blocks cannot tell a jump from a move anywhere within one block's frames (a stage settling
    #   over a few hundred frames reads as a jump). A jump where the stage moved steadily over one block is |size| /
    #   sqrt(12) rms off over that block's frames (the rms of a ramp minus a step at its middle), counted in the share
    #   of the frames one block holds. Without it a found step was reported +-1.0-2.6 nm for 2.4-16 nm (session 49)
    n_used = int(use.sum())
    misfit = float(np.sqrt(rss_step / max(n_used - 3, 1)))
    span = float(np.ptp(f_near) + 1)
    n_frames = float(len(frames))
    scatter = misfit * float(np.sqrt(min(span / n_frames, 1.0)))
    timing = float(np.linalg.norm(coef[2])) / np.sqrt(12.0) * float(np.sqrt(min(span / n_b / n_frames, 1.0)))
    fine = _step_timing_fine(frame, near, f_near, block, j, inside, b_centre, coef, first_after, misfit,
                             ref if n_seg > 2 else None, ref_all if n_seg == 2 else None, pix_near,
                             np.column_stack([x[near] - x0, y[near] - y0]), h=h, w=w, px=px, blur=blur,
                             max_drift_nm=max_drift_nm, device=device, n_frames=n_frames)
    coarse_timing = timing
    if fine is not None:
        timing, first_after = fine
    step_error = float(np.hypot(scatter, timing))
    left = (np.concatenate([centre[:k], b_centre[before]]), np.vstack([sol[:k], b_drift[before]]))
    right = (np.concatenate([b_centre[later], centre[k + 2:]]), np.vstack([b_drift[later], sol[k + 2:]]))
    found = {"frame": first_after, "size_nm": [float(coef[2, 0]), float(coef[2, 1])], "f_ratio": float(f_ratio),
            "quadratic_ratio": float(quad_ratio), "block_misfit_nm": misfit, "error_nm": step_error,
            "timing_error_nm": timing, "timing_from": "one block" if fine is None else "sub-blocks",
            "block_timing_error_nm": coarse_timing,
            "block_frames": b_centre.tolist(),
            "block_drift_nm": b_drift.tolist(), "between_windows": [k, k + 1], "inside_block": bool(inside), "left": left, "right": right}
    if n_seg == 2 and reference_curve is None:
        # with 2 windows the blocks' reference is the rest of the table corrected by the straight line, which a jump
        # doubles (two copies of the structure, the jump apart): the blocks' drifts were biased by it, 8-12 nm off
        # for a 150 nm jump. Once more against the table corrected by the stepped curve (session 51); kept where the
        # step is found again
        again = _rcc_step(x, y, frame, seg, centre, sol, frames, x0=x0, y0=y0, h=h, w=w, px=px, blur=blur,
                          max_drift_nm=max_drift_nm, device=device, blocks_out=blocks_out,
                          reference_curve=_stepped_curve(found, frames))
        if again is not None:
            again["reference"] = "stepped curve"
            return again
    return found


def _step_timing_fine(frame: np.ndarray, near: np.ndarray, f_near: np.ndarray, block: np.ndarray, j: int,
                      inside: bool, b_centre: np.ndarray, coef: np.ndarray, first_after: int, misfit: float,
                      ref: np.ndarray | None, ref_all: np.ndarray | None, pix_near: np.ndarray,
                      xy_near: np.ndarray, *, h: int, w: int,
                      px: float, blur: float, max_drift_nm: float, device: str, n_frames: float
                      ) -> tuple[float, int] | None:
    """:func:`_rcc_step`'s timing error seen finer, and the step's frame placed finer (session 51): the blocks around
    the step (j - 1 and j, and j + 1 where the step falls inside block j) are cut into :data:`RCC_STEP_SUBBLOCKS`
    sub-blocks each, each correlated with the reference as the blocks were. The step's frame is placed by halving a
    bracket of frames, from the middle of the sub-block before the first that reads more than half the step (or the
    first frame) to that one's middle: where the bracket's rows sit better on the reference shifted by the step than
    unshifted, more of them lie after the step, and the step is kept in its first half, else in its second (where no
    sub-block reads past half the step, the blocks' placement is kept). The timing error: each sub-block's
    drift minus the fitted step model's mean over its rows, less its expected noise (the blocks' misfit times sqrt of
    the sub-blocks per block), counted over the frames it spans; plus the placement's own error, a jump of |size|
    placed at the middle of the last bracket, a quarter of it off on average (|size|^2 x bracket / 4 over the movie's
    frames). A sharp
    jump fits the sub-blocks; a stage that settled over a few hundred frames does not, and the rms misfit is the
    stepped curve's actual error there (the one-block term, |size| / sqrt(12) over a block, read settlings 3-4x low
    and true jumps 1.3-2.4x high, session 50). Returns (timing error in nm, the step's first frame); None where a
    sub-block has too few rows or its peak does not stand out: the one-block term and placement are kept."""
    around = [j - 1, j] + ([j + 1] if inside and j + 1 < len(b_centre) else [])
    sel_near = np.isin(block, around)
    n_sub = RCC_STEP_SUBBLOCKS * len(around)
    if sel_near.sum() < n_sub * RCC_MIN_ROWS_PER_WINDOW:
        return None
    sub, sub_centre = _segments(f_near[sel_near], n_sub)
    if len(sub_centre) < n_sub:
        return None
    scale = max(float(np.ptp(b_centre)), 1.0)
    f_sel = f_near[sel_near]
    line = coef[0][None, :] + ((f_sel - b_centre.mean()) / scale)[:, None] * coef[1][None, :]
    pix_sel = pix_near[sel_near]
    near_idx = np.flatnonzero(near)[sel_near]  # rows of the table
    def drift_of(rows: np.ndarray) -> np.ndarray | None:
        """The drift of the rows ``rows`` (of the blocks around the step), correlated with the reference."""
        if ref is not None:
            r_b = ref
        else:
            out = np.ones(len(frame), bool)
            out[near_idx[rows]] = False
            r_b = ref_all[out]
        flat = np.concatenate([r_b, pix_sel[rows]])
        s2 = np.concatenate([np.zeros(len(r_b), np.int64), np.ones(int(rows.sum()), np.int64)])
        d, _, _, _, fit = _rcc_solve(flat, s2, 2, h, w, px, blur, max_drift_nm, device)
        return d[1] - d[0] if fit["peak_z"][0] >= RCC_MIN_PEAK_Z else None

    d_sub = np.zeros((n_sub, 2))
    for b in range(n_sub):
        d_b = drift_of(sub == b)
        if d_b is None:
            return None
        d_sub[b] = d_b
    size = coef[2]
    s2n = max(float(np.dot(size, size)), 1e-12)

    # the step's frame, by halving a bracket of frames: a stretch of frames whose rows sit better on the reference
    # (the rest of the table, corrected) shifted by the drift after the step than before holds more rows after the
    # step than before (the correlation of a mix is the mix of the two sides' correlations, each largest at its own
    # shift), so the step lies in its first half. The two candidate shifts are known, so no peak has to stand out
    # and the halving goes down to a few dozen rows (the blocks' mix alone placed a 150 nm jump 10-14 frames late:
    # a jump wider than the peak doubles a block's image, whose peak is then the larger copy's, not the mix)
    from scipy.ndimage import gaussian_filter

    mids = np.array([(f_sel[sub == b].min() + f_sel[sub == b].max() + 1) / 2.0 for b in range(n_sub)])
    reads_after = np.array([float(np.dot(d_sub[b] - line[sub == b].mean(axis=0), size)) / s2n > 0.5
                            for b in range(n_sub)])
    if reads_after.any():
        k = int(np.argmax(reads_after))
        lo_f = float(f_sel.min()) if k == 0 else float(mids[k - 1])
        hi_f = float(mids[k])
        xy_sel = xy_near[sel_near] - line  # positions on the reference's, before the step
        if ref is not None:
            r_img = ref
        else:
            out = np.ones(len(frame), bool)
            out[near_idx[(f_sel >= lo_f) & (f_sel < hi_f)]] = False
            r_img = ref_all[out]
        img = gaussian_filter(np.bincount(r_img, minlength=h * w).reshape(h, w).astype(float),
                              float(np.sqrt(2.0) * blur / px))

        def score(rows: np.ndarray, shift: np.ndarray) -> float:
            ix = np.clip(np.floor((xy_sel[rows, 0] - shift[0]) / px).astype(np.int64), 0, w - 1)
            iy = np.clip(np.floor((xy_sel[rows, 1] - shift[1]) / px).astype(np.int64), 0, h - 1)
            return float(img[iy, ix].sum())

        while hi_f - lo_f >= 2.0:
            rows = (f_sel >= lo_f) & (f_sel < hi_f)
            if not rows.any():
                break
            mid = (lo_f + hi_f) / 2.0
            if score(rows, size) > score(rows, np.zeros(2)):
                hi_f = mid
            else:
                lo_f = mid
        first_after = int(np.ceil((lo_f + hi_f) / 2.0))
        bracket = hi_f - lo_f
    else:
        bracket = float(np.ptp(f_sel) + 1) / n_sub
    model = line + (f_sel >= first_after)[:, None] * size[None, :]
    noise_var = misfit**2 * RCC_STEP_SUBBLOCKS
    total = 0.0
    for b in range(n_sub):
        sb = sub == b
        miss = d_sub[b] - model[sb].mean(axis=0)
        total += max(float(np.sum(miss**2)) - noise_var, 0.0) * float(np.ptp(f_sel[sb]) + 1) / n_frames
    # a sharp jump placed wrong by delta frames is |size| off over them: the frame anywhere within the last bracket,
    # placed at its middle, is a quarter of it off on average
    placement_sq = s2n * bracket / 4.0 / n_frames
    return float(np.sqrt(total + placement_sq)), first_after


def _two_window_bend(b_frames: np.ndarray, b_drift: np.ndarray, curve: np.ndarray, frames: np.ndarray
                     ) -> float | None:
    """How far the straight line of a 2-window RCC (``curve``, x and y per frame) is from a polynomial of degree 3-5
    through the blocks' drifts (:func:`_rcc_step`'s), rms over the frames after the constant offset (nm), where the
    polynomial (the degree with the largest F ratio over a line) beats the line by an F ratio above
    :data:`RCC_STEP_F`; else None. On 2-window tables of 5,000-98,717 rows (session 49): linear drifts F 0.6-8.8 (3
    tables), wobbles and settlings 12-363 (a cubic alone missed a sine of 2 periods, F 4.2 for 62 nm off)."""
    n_b = len(b_frames)
    scale = max(float(np.ptp(b_frames)), 1.0)
    mid = float(np.mean(b_frames))
    t = (b_frames - mid) / scale

    def design(tt: np.ndarray, deg: int) -> np.ndarray:
        return np.column_stack([tt**k for k in range(deg + 1)])

    def fit(deg: int) -> tuple[np.ndarray, float]:
        c, *_ = np.linalg.lstsq(design(t, deg), b_drift, rcond=None)
        return c, float(np.sum((design(t, deg) @ c - b_drift) ** 2))

    _, rss_line = fit(1)
    best: tuple[float, int, np.ndarray] | None = None
    for deg in (3, 4, 5):
        if n_b - deg - 1 < 2:
            break
        c, rss = fit(deg)
        f_ratio = (rss_line - rss) / (2.0 * (deg - 1)) / (max(rss, 1e-12) / (2.0 * (n_b - deg - 1)))
        if best is None or f_ratio > best[0]:
            best = (f_ratio, deg, c)
    if best is None or not best[0] > RCC_STEP_F:
        return None
    tf = (np.clip(frames, b_frames[0], b_frames[-1]) - mid) / scale
    e = design(tf, best[1]) @ best[2] - curve
    e -= e.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(e**2, axis=1))))


#: ... below :data:`RCC_STEP_F`, a cubic through the blocks whose F ratio over their line exceeds this counts its
#: noise-corrected bend quietly (:func:`_two_window_bend_below_gate`; session 51). The 1 % point of F(4, 8), the
#: cubic's degrees of freedom over 8 blocks: 2-window straight drifts read 0.2-5.3, wobbles 3.6-85 (bench/drift51.py;
#: without it a straight drift of 25k rows, 0.77 nm off, was reported +-3.3 instead of +-0.73)
RCC_BEND_QUIET_F = 7.0


def _two_window_bend_below_gate(b_frames: np.ndarray, b_drift: np.ndarray, curve: np.ndarray, frames: np.ndarray
                                ) -> float:
    """Where :func:`_two_window_bend`'s F gate stays shut: how far the straight line of a 2-window RCC is from a cubic
    through the blocks' drifts (rms over the frames after the constant offset, nm), less what the blocks' own noise
    puts there (session 51): the cubic's departure from the blocks' best line holds 2 of the blocks' noise dimensions
    per axis, 2 * 2 sigma² / n_blocks in the mean square (sigma² per axis from the cubic's residual); 0 where the
    cubic's F ratio over the line is :data:`RCC_BEND_QUIET_F` or less. Without it, 2-window wobbles whose blocks read
    F 10.6-23 were 12-15 nm off, reported +-2-4 (bench/drift51.py)."""
    n_b = len(b_frames)
    if n_b < 6:
        return 0.0
    scale = max(float(np.ptp(b_frames)), 1.0)
    mid = float(np.mean(b_frames))
    t = (b_frames - mid) / scale
    design = np.column_stack([t**k for k in range(4)])
    c, *_ = np.linalg.lstsq(design, b_drift, rcond=None)
    rss = float(np.sum((design @ c - b_drift) ** 2))
    line, *_ = np.linalg.lstsq(design[:, :2], b_drift, rcond=None)
    rss_line = float(np.sum((design[:, :2] @ line - b_drift) ** 2))
    f_ratio = (rss_line - rss) / 4.0 / (max(rss, 1e-12) / (2.0 * (n_b - 4)))
    if not f_ratio > RCC_BEND_QUIET_F:
        return 0.0
    sigma2 = rss / (2.0 * (n_b - 4))
    tf = (np.clip(frames, b_frames[0], b_frames[-1]) - mid) / scale
    e = np.column_stack([tf**k for k in range(4)]) @ c - curve
    e -= e.mean(axis=0)
    mean_sq = float(np.mean(np.sum(e**2, axis=1)))
    return float(np.sqrt(max(mean_sq - 2.0 * 2.0 * sigma2 / n_b, 0.0)))


def _stepped_curve(step: dict[str, Any], frames: np.ndarray) -> np.ndarray:
    """The lateral curve (x, y) with :func:`_rcc_step`'s step kept sharp: the curve through the knots before it up to
    the frame before, through those after it from its frame on (each extended straight past its last knot)."""
    lo = _curve(step["left"][0], step["left"][1], frames)
    hi = _curve(step["right"][0], step["right"][1], frames)
    return np.where((frames < step["frame"])[:, None], lo, hi)


def rcc_drift(
    table: LocTable,
    *,
    n_segments: int = 10,
    render_px_nm: float = 20.0,
    blur_nm: float | None = None,
    max_drift_nm: float = MAX_DRIFT_NM,
    max_image_px: int = 2048,
    device: str = "cpu",
    split_half: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> DriftResult:
    """Redundant cross-correlation drift estimate (see the module docstring).

    Args:
        table: localizations (frame, x_nm, y_nm).
        n_segments: number of time windows (equal localization counts); >= 2.
        render_px_nm: pixel of the rendered windows (grown so that the image fits ``max_image_px``).
        blur_nm: Gaussian blur of the cross-correlation (default ``1.5 * render_px_nm``).
        max_drift_nm: largest drift between two windows searched for (default :data:`MAX_DRIFT_NM`, 300 nm). A
            smaller reach still reads each peak's significance against shifts up to :data:`RCC_PEAK_REFERENCE_NM`.
        max_image_px: largest image side rendered.
        device: torch device of the FFTs.
        split_half: estimate how far the curve is known (``info["uncertainty_nm"]``; the name is the option's,
            shared with COMET, whose estimate is a split-half test, and with z's): for x and y since session 40 from
            the whole table (:func:`_rcc_noise`; where no redundant pair of windows checks it, 2 windows, the
            split-half test, :func:`_rcc_split_half`, ``info["uncertainty_from"]``), for z since session 41 from
            the whole table too (:func:`_z_noise`; the split-half test of :func:`_z_drift` where no redundant pair
            of windows checks it, ``info["z_uncertainty_from"]``); the estimate itself is the same either way.
            Without it ``uncertainty_nm`` is not known and the unreliability warning judges the windows' agreement,
            a lower bound.
        progress: called as ``progress(done, total)`` after each pair of windows (twice as many with
            ``split_half``: their cross-correlations, then their errors).

    ``info`` holds, besides the settings: ``uncertainty_nm``, the expected error of the curve, in the units of
    :func:`drift_error_rms` (RMS over the frames of x and y together, after removing the constant offset), from
    ``noise_nm`` (the windows' noise through the curve) and ``interpolation_error_nm`` (the curve's error from its
    construction out of windows) in quadrature; ``curve_rms_nm``, the estimated curve's own RMS (the same units; the
    unreliability rule, :func:`drift_unreliable`, compares the two); ``events``, the on-events taken as the
    independent units; ``noise_unit_share`` (1, or the share of the units the noise was summed over on a large
    table), ``noise_pair_term`` (the share of the windows' noise variance taken out for the pairs counted twice)
    and ``pairs_without_peak_fit``; ``window_agreement_nm`` and ``pair_error_nm``, how well the pairs of windows
    agree (per axis; a lower bound of the error, 0.07-0.32x); ``step`` where a stage jump was found (its ``error_nm``,
    from the blocks' scatter and ``timing_error_nm``, counts in ``uncertainty_nm`` since session 50;
    ``uncertainty_without_step_nm`` the figure without it); ``peak_check`` where a 2-window peak of
    :data:`RCC_CHECKED_PEAK_Z` to :data:`RCC_MIN_PEAK_Z` standard deviations was checked with 3 windows
    (``closure_nm``, ``passed``, ``allowed_nm``: :data:`RCC_MAX_CLOSURE_NM`, less below the default reach, a strong
    peak's no less than :data:`RCC_STRONG_MIN_CLOSURE_NM`; its
    ``peak_z_min`` the 3 windows' weakest peak; session 50; ``weak_windows`` still lists the 2 windows where it
    passed; since session 51 also every 2-window peak of a table with fewer than :data:`RCC_STRONG_CHECK_ROWS` rows a
    window, ``strong_peak`` then True); ``second_peak_z``, the runner-up of the weakest pair's correlation in the
    peak's units (session 51, for the record: it did not tell chance peaks from right ones); the step's
    ``timing_from`` ("sub-blocks" where its frame was placed by halving and its timing read from sub-blocks,
    :func:`_step_timing_fine`, session 51; "one block" the session-50 term) and ``block_timing_error_nm`` (that
    term); ``bend_below_gate_nm`` (2 windows, no step, the F gate shut: the noise-corrected bend counted in
    ``uncertainty_nm``, :func:`_two_window_bend_below_gate`). Until session 40 ``uncertainty_nm`` came from two
    halves of the table (``half_difference_nm``, ``half_block_frames``), which read it up to 13x too high on sparse
    tables.
    """
    if n_segments < 2:
        raise InputError(f"n_segments must be >= 2 for RCC, got {n_segments}")
    t0 = time.perf_counter()
    table.check_finite(("x_nm", "y_nm"))
    frame = table["frame"]
    x, y = table["x_nm"], table["y_nm"]
    if len(np.unique(frame)) < n_segments:
        raise InputError(f"RCC with {n_segments} windows needs at least {n_segments} distinct frames, "
                         f"the table has {len(np.unique(frame))}", source=table.source)
    seg, centre = _segments(frame, n_segments)
    n_seg = len(centre)
    if n_seg < 2:
        raise InputError(f"RCC: the {len(frame)} localizations fill only {n_seg} time window of equal counts (frame "
                         f"{int(frame.min())} holds {int(np.count_nonzero(frame == frame.min()))} of them); at least 2 "
                         "windows are needed", source=table.source)
    x0, y0 = x.min(), y.min()
    extent = max(x.max() - x0, y.max() - y0) + 1e-6
    px = max(float(render_px_nm), extent / max_image_px)
    blur = 1.5 * px if blur_nm is None else float(blur_nm)
    w = int(np.ceil((x.max() - x0) / px)) + 1
    h = int(np.ceil((y.max() - y0) / px)) + 1
    ix = np.minimum(((x - x0) / px).astype(np.int64), w - 1)
    iy = np.minimum(((y - y0) / px).astype(np.int64), h - 1)
    flat = iy * w + ix
    n_pairs = n_seg * (n_seg - 1) // 2
    passes = 2 if split_half else 1  # the pairs' cross-correlations, then (split_half) their errors

    def pass_progress(k: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(k * n_pairs + done, passes * n_pairs)

    sol, keep, threshold, sigma_pair, fit = _rcc_solve(flat, seg, n_seg, h, w, px, blur, max_drift_nm, device,
                                                  pass_progress(0))
    # the windows' agreement: the pairs' disagreement with the solution (per axis, with the degrees of freedom the
    # fit used) is the error of one pair's shift, sigma_pair; a window's drift is then known to sigma_pair *
    # sqrt(2 / n_windows) (the complete graph of pairs). It sees only how the pairs disagree, not what every pair
    # of a window shares (which molecules shone in it) nor the curve between the windows: a lower bound, measured
    # 0.07-0.32x the actual error (bench/drift_uncertainty.py); info["window_agreement_nm"]
    agreement = sigma_pair * float(np.sqrt(2.0 / n_seg))
    frames = np.arange(int(frame.min()), int(frame.max()) + 1)
    info: dict[str, Any] = {}
    if split_half:
        # how far the curve is known, from the whole table at its own peaks (:func:`_rcc_noise`), the on-events of
        # the molecules (:func:`_events`) as the independent units, and the curve's construction from windows
        curve = _curve(centre, sol, frames)
        c_xy = curve[frame.astype(np.int64) - int(frames[0])]
        event = _events(np.column_stack([x - c_xy[:, 0], y - c_xy[:, 1]]), frame, RCC_EVENT_LINK_NM)
        step = pass_progress(1)
        curve_rms = drift_error_rms(curve, np.zeros((len(frames), 2)))
        if int(keep.sum()) > n_seg - 1:
            cov, noise_info = _rcc_noise(np.column_stack([ix, iy]).astype(float), seg, n_seg, px, blur, fit, keep,
                                         event, progress=None if step is None else lambda done, total: step(
                                             n_pairs if done == total else done, n_pairs))
            noise, knot_var = _curve_noise(cov, centre, frames)
            noise_info["uncertainty_from"] = "peaks"
            source = (f"from the {n_seg} windows' cross-correlation peaks and the {int(event.max()) + 1} on-events "
                      "under them")
        else:
            # no redundant pair of windows (2 windows, or the kept pairs a tree): nothing checks the peaks' linear
            # model, which reads a few nm at chance peaks of a table without shared structure (2 windows, 40-1,000
            # uniform rows: 0.06-31 nm reported for 190-680 nm actual, none flagged). The split-half test (before
            # session 40) sees such a failure: its halves' peaks fall elsewhere
            noise_info, noise, knot_var = _rcc_split_half(frame, seg, n_seg, centre, frames, flat, h, w, px, blur,
                                                          max_drift_nm, device)
            if step is not None:
                step(n_pairs, n_pairs)
            source = (f"from two halves of the table: no redundant pair among the {n_seg} windows checks their "
                      "cross-correlation peaks")
        interp = _interpolation_error(frame, seg, centre, sol, frames, knot_var) if np.isfinite(knot_var) else 0.0
        uncertainty = float(np.hypot(noise, interp))
        info.update(noise_nm=noise, interpolation_error_nm=interp, uncertainty_nm=uncertainty, curve_rms_nm=curve_rms,
                    events=int(event.max()) + 1, **noise_info)
        unreliable = drift_unreliable(uncertainty, curve_rms)  # NaN warns too
        if unreliable:
            warnings.warn(
                f"RCC: the drift is known to about +-{uncertainty:.0f} nm (rms over the frames, x and y; {source}), for a "
                f"curve of {curve_rms:.0f} nm rms: {_why_unreliable(uncertainty, curve_rms)}, and this drift estimate "
                "is not reliable. Too few localizations per window, or no structure that several windows share; try "
                "fewer windows (n_segments, plexloc drift --segments) or the COMET engine", UnreliableDriftWarning,
                stacklevel=2)
    else:
        unreliable = agreement > max(px, RCC_MAX_UNCERTAINTY_NM)
        if unreliable:
            # a lower bound of the error: above it the curve is noise
            warnings.warn(
                f"RCC: the drifts of the {n_seg} windows disagree by about {sigma_pair:.0f} nm from pair to pair (a "
                f"window's drift is known to +-{agreement:.0f} nm at best): this drift estimate is not reliable. Too "
                "few localizations per window, or no structure that several windows share; try fewer windows "
                "(n_segments, plexloc drift --segments) or the COMET engine", UnreliableDriftWarning, stacklevel=2)
    # every window's best cross-correlation peak must stand out of the correlation's chance maxima (session 49): with
    # 2 windows nothing else checks the one peak, and a structure-free table of 1,000 rows read 170 nm of drift
    # known to +-29 nm, not flagged
    peak_z = fit["peak_z"]
    best_z = np.full(n_seg, -np.inf)
    np.maximum.at(best_z, fit["pairs"][:, 0], peak_z)
    np.maximum.at(best_z, fit["pairs"][:, 1], peak_z)
    weak = np.flatnonzero(~(best_z >= RCC_MIN_PEAK_Z))
    info.update(peak_z_min=float(np.min(peak_z)), peak_z_median=float(np.median(peak_z)), weak_windows=weak.tolist(),
                second_peak_z=float(fit["second_z"][int(np.argmin(peak_z))]))
    strong_failed = False
    sparse = n_seg == 2 and len(table) / n_seg < RCC_STRONG_CHECK_ROWS
    if n_seg == 2 and ((len(weak) and float(np.min(peak_z)) >= RCC_CHECKED_PEAK_Z) or (not len(weak) and sparse)):
        # a peak between chance's and the rule's, or any peak of a sparse table (session 51, RCC_STRONG_CHECK_ROWS):
        # 3 windows' shifts must add up (session 50). Sparse 2-window lines that the rule refused (3D lines, 936
        # rows, 2.9 nm off, peak 4.8) pass; chance peaks miss by 35-828 nm
        closure = _three_window_closure(flat, frame, h, w, px, blur, max_drift_nm, device)
        if closure is not None:
            # the chance closure scales with the reach searched (3 shifts anywhere within it: 47-828 nm at the
            # default 300 nm, 18-400 at 100 nm, and 1 render pixel, 20 nm, at 50 nm where chance peaks sit on whole
            # pixels: 2 of 6 chance peaks of 4.5-6 passed, 19-36 nm off; session 50 review): the allowance with it
            allowed = RCC_MAX_CLOSURE_NM * min(1.0, max_drift_nm / MAX_DRIFT_NM)
            if not len(weak):  # a strong peak of a sparse table (RCC_STRONG_MIN_CLOSURE_NM)
                allowed = max(allowed, RCC_STRONG_MIN_CLOSURE_NM)
            closure.update(passed=closure["closure_nm"] <= allowed, allowed_nm=allowed, strong_peak=not len(weak))
            info["peak_check"] = closure
            if closure["passed"]:
                weak = weak[:0]
            elif not len(weak):
                strong_failed = True
    if strong_failed and not unreliable:
        unreliable = True
        check = info["peak_check"]
        warnings.warn(
            f"RCC: 2 time windows of {len(table) / n_seg:.0f} localizations each (fewer than "
            f"{RCC_STRONG_CHECK_ROWS} a window): their cross-correlation peak stands {float(np.min(peak_z)):.1f} "
            "standard deviations, but the chance peaks of so sparse a table read up to 21; cut into 3 windows, the "
            f"pairs' shifts miss adding up by {check['closure_nm']:.0f} nm ({check['allowed_nm']:.3g} allowed), and "
            f"this drift estimate of {len(table)} localizations is not reliable. Use more localizations (the whole "
            f"acquisition), {_reach_hint(check['closure_nm'], max_drift_nm)}or fiducial markers (engine fiducials); "
            "if the sample did not drift, keep the uncorrected table", UnreliableDriftWarning, stacklevel=2)
    if len(weak) and not unreliable:
        unreliable = True
        fewer = "" if n_seg <= 2 else f"fewer windows (n_segments, plexloc drift --segments, got {n_seg}), "
        warnings.warn(
            f"RCC: the cross-correlation peak of {len(weak)} of the {n_seg} time windows (window(s) "
            f"{', '.join(str(int(k)) for k in weak[:5])}{', ...' if len(weak) > 5 else ''}; best peak "
            f"{float(best_z[weak].max()):.1f} standard deviations above the rest of the correlation) does not stand "
            f"out of the chance maxima of windows that share no structure (2.4-5.2 standard deviations measured; "
            f"{RCC_MIN_PEAK_Z:g} needed"
            + (f"; cut into 3 windows, the pairs' shifts miss adding up by {info['peak_check']['closure_nm']:.0f} nm, "
               f"{info['peak_check']['allowed_nm']:.3g} allowed" if "peak_check" in info else "")
            + f"), and this drift estimate of {len(table)} localizations is not reliable. Use "
            f"more localizations per window (the whole acquisition), {fewer}"
            + (_reach_hint(info["peak_check"]["closure_nm"], max_drift_nm) if "peak_check" in info else "")
            + "or fiducial markers (engine fiducials); "
            "if the sample did not drift, keep the uncorrected table", UnreliableDriftWarning, stacklevel=2)
    per_window = len(table) / n_seg
    if per_window < RCC_MIN_ROWS_PER_WINDOW and not unreliable:
        # below the tables its uncertainty was validated on (bench/drift_calibration40.py: from 300 rows over 10
        # windows), a few chance peaks make the curve and the figure reads it low: 40 rows over 10 windows read
        # +-30 nm for 105 nm actual, 200 rows +-15 nm for 43 nm, neither flagged (session 48)
        unreliable = True
        fewer = int(len(table) // RCC_MIN_ROWS_PER_WINDOW)
        warnings.warn(
            f"RCC: {len(table)} localizations over {n_seg} time windows, {per_window:.0f} a window: too few for the "
            f"windows' cross-correlations (at least {RCC_MIN_ROWS_PER_WINDOW} a window), and this drift estimate is not "
            "reliable; "
            + (f"use fewer windows (n_segments, plexloc drift --segments {fewer})" if fewer >= 2 else
               "the table is too sparse for a drift from the sample's structure: use fiducial markers (engine "
               "fiducials) or keep it uncorrected"), UnreliableDriftWarning, stacklevel=2)
    seg_drift = np.column_stack([sol, np.zeros(n_seg)])
    curve = _curve(centre, seg_drift, frames)
    blocks: dict[str, Any] = {}
    step = None if unreliable else _rcc_step(x, y, frame, seg, centre, sol, frames, x0=x0, y0=y0, h=h, w=w, px=px,
                                             blur=blur, max_drift_nm=max_drift_nm, device=device, blocks_out=blocks)
    if step is not None:
        # a stage jump, kept sharp instead of spread over the frames between two windows' centres
        curve[:, :2] = _stepped_curve(step, frames)
        info["step"] = {k: v for k, v in step.items() if k not in ("left", "right")}
        if split_half and np.isfinite(info.get("uncertainty_nm", np.nan)):
            # the stepped curve is made of the blocks' drifts, not of the windows' whose noise the uncertainty
            # counts: a found step was 1.7-16 nm off, reported +-1-2.6 (session 49); the blocks' own scatter counts now
            info["uncertainty_without_step_nm"] = info["uncertainty_nm"]
            info["uncertainty_nm"] = float(np.hypot(info["uncertainty_nm"], step["error_nm"]))
            # the rule judges the figure with the step's error in it (session 51; before, the flag was decided
            # without it and never looked at again)
            if drift_unreliable(info["uncertainty_nm"], info["curve_rms_nm"]):
                unreliable = True
                warnings.warn(
                    f"RCC: the stage jumped by {float(np.hypot(*step['size_nm'])):.0f} nm near frame {step['frame']}, "
                    f"and with the jump's own error (+-{step['error_nm']:.0f} nm: its timing, from blocks of the "
                    f"windows around it) the drift is known to about +-{info['uncertainty_nm']:.0f} nm for a curve of "
                    f"{info['curve_rms_nm']:.0f} nm rms: "
                    f"{_why_unreliable(info['uncertainty_nm'], info['curve_rms_nm'])}, and this drift estimate is "
                    "not reliable. Use more windows (n_segments, plexloc drift --segments) or fiducial markers "
                    "(engine fiducials)", UnreliableDriftWarning, stacklevel=2)
    elif n_seg == 2 and blocks and split_half and np.isfinite(info.get("uncertainty_nm", np.nan)):
        bend = _two_window_bend(blocks["frames"], blocks["drift"], curve[:, :2], frames)
        if bend is not None:
            # 2 windows make a straight line: a drift that bends within them (a wobble) was 11-17 nm off, reported
            # +-0.5-5 nm (the interpolation term sees no curvature through 2 knots)
            info["bend_nm"] = bend
            info["uncertainty_nm"] = float(np.hypot(info["uncertainty_nm"], bend))
            if drift_unreliable(info["uncertainty_nm"], info["curve_rms_nm"]) and not unreliable:
                unreliable = True
            warnings.warn(
                f"RCC: with 2 time windows the drift is a straight line, but blocks of the windows, each correlated "
                f"with the rest of the table, show it bends: the line is about {bend:.0f} nm rms off it (counted in "
                f"the uncertainty, now +-{info['uncertainty_nm']:.0f} nm)"
                + (", and this drift estimate is not reliable" if unreliable else "")
                + ". Use more windows (n_segments, plexloc drift --segments)", UnreliableDriftWarning, stacklevel=2)
        else:
            # below the gate, a bend the blocks show beyond their noise (F above RCC_BEND_QUIET_F) still counts,
            # without a warning (session 51: 2-window wobbles 12-15 nm off were reported +-2-4)
            quiet = _two_window_bend_below_gate(blocks["frames"], blocks["drift"], curve[:, :2], frames)
            info["bend_below_gate_nm"] = quiet
            info["uncertainty_nm"] = float(np.hypot(info["uncertainty_nm"], quiet))
            if drift_unreliable(info["uncertainty_nm"], info["curve_rms_nm"]) and not unreliable:
                unreliable = True
                warnings.warn(
                    f"RCC: with 2 time windows the drift is a straight line, and blocks of the windows, each correlated "
                    f"with the rest of the table, put it about {quiet:.0f} nm rms off a curve (counted in the "
                    f"uncertainty, now +-{info['uncertainty_nm']:.0f} nm for a curve of {info['curve_rms_nm']:.0f} nm "
                    f"rms): {_why_unreliable(info['uncertainty_nm'], info['curve_rms_nm'])}, and this drift estimate "
                    "is not reliable. Use more windows (n_segments, plexloc drift --segments)",
                    UnreliableDriftWarning, stacklevel=2)
    info.update(_with_z_drift(table, frames, curve, seg, centre, centre, seg_drift, split_half=split_half, seed=0,
                              engine="RCC"))
    offset = curve[:1].copy()  # reference: drift(first frame) = 0
    curve -= offset
    seg_drift = seg_drift - offset
    return DriftResult(
        frames=frames,
        drift_nm=curve,
        engine="rcc",
        segment_frames=centre,
        segment_drift_nm=seg_drift,
        elapsed_s=time.perf_counter() - t0,
        info={
            "n_segments": n_seg,
            "render_px_nm": px,
            "blur_nm": blur,
            "pairs_used": int(keep.sum()),
            "pairs_total": n_pairs,
            "residual_threshold_nm": threshold,
            "pair_error_nm": sigma_pair,
            "window_agreement_nm": agreement,
            **info,
            **({"unreliable": True} if unreliable else {}),
        },
    )


#: COMET's ``uncertainty_nm`` (the expected error of its curve, x and y together, as RCC's) is judged by the same rule
#: as RCC's (:func:`drift_unreliable`), never unreliable below this; until session 40, unreliable above it
COMET_MAX_UNCERTAINTY_NM = RCC_MAX_UNCERTAINTY_NM

#: COMET's split-half term is this times half the RMS difference of the two halves' curves (see
#: RCC_HALF_DIFFERENCE_SCALE). Not fitted: 1 is the value for two independent halves. With it, COMET's
#: uncertainty_nm was 0.49-1.54x the actual error (geometric mean 0.87; per case 0.86 lines + linear drift, 0.64
#: rings + sine, 1.22 clusters + settling; bench/drift_uncertainty.py --engine comet --scale 0.25, 3 cases x 3 seeds,
#: about 25,000 localizations, bench/drift_uncertainty_comet.json): no constant factor fits all three cases better
COMET_HALF_DIFFERENCE_SCALE = 1.0


def _comet_knots(dataset: np.ndarray, windows: np.ndarray, *, max_drift_nm: float, backend: str | None, seed: int,
                 max_locs_per_segment: int | None, progress: Callable[[str, dict], None] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, Any]:
    """One COMET run: the window centre frames and the windows' drift (nm, ``(S, 3)``; NaN rows dropped).

    The windows are ours, handed to COMET as window ids (its ``segmentation_mode=-1``, comet-smlm >= 1.2):
    ``windows`` (a window id per row of ``dataset``, ``[x, y, z, frame]``; :func:`_segments` of the frames into
    windows of equal counts, as RCC's). COMET's own "number of windows" mode (0) makes
    fewer windows than asked: it turns ``S`` into a minimum count per window, ``ceil(N / S)`` localizations, closes a
    window at the first whole frame that reaches it and merges a short remainder into the last window, so every
    window overshoots by part of a frame and the last one falls short (10 asked, 9 made on the bench's tables, the
    last about twice as long). A window's centre is the mean frame of the rows that COMET used in it (all of them, or
    its sample under ``max_locs_per_segment``), as COMET's own centres.
    """
    from comet import comet_run_kd

    frame = dataset[:, 3]
    present, window_id = np.unique(np.asarray(windows, dtype=np.int64), return_inverse=True)
    window_id = window_id.ravel()
    by_window = dataset.copy()
    by_window[:, 3] = window_id  # COMET's mode -1: the last column holds the window id instead of the frame
    _, details = comet_run_kd(
        dataset=by_window,
        segmentation_mode=-1,
        segmentation_var=1,
        max_drift_nm=float(max_drift_nm),
        # COMET's L-BFGS-B box is +-drift_max_bound_factor * max_drift_nm per window, and its code default is 2
        # (its docstring says 1): windows could move 600 nm apart with --max-drift 300, beyond the pair radius
        # that the cost sees. 1: no window further than max_drift_nm from the windows' mean
        drift_max_bound_factor=1.0,
        max_locs_per_segment=max_locs_per_segment,
        mode=backend,
        return_corrected_locs=False,
        random_state=seed,
        progress=progress,
        return_details=True,
    )
    kd = np.asarray(details.knot_drift_nm, dtype=float).reshape(len(present), -1)
    used = np.asarray(details.segmentation.loc_valid, dtype=bool)
    knots = (np.bincount(window_id[used], weights=frame[used], minlength=len(present))
             / np.maximum(np.bincount(window_id[used], minlength=len(present)), 1))
    knot_drift = np.zeros((len(present), 3))
    knot_drift[:, : min(3, kd.shape[1])] = kd[:, :3]
    ok = np.isfinite(knot_drift).all(axis=1)
    return knots[ok], knot_drift[ok], details


def _comet_rows_window(details: Any, n_rows: int, n_knots: int) -> np.ndarray | None:
    """The window (index into the knots kept, NaN rows dropped) of every row that COMET used, -1 for the others.

    From COMET's ``details.segmentation`` (its windows and the rows it kept under ``max_locs_per_segment``); None
    where that is missing or does not match the knots.
    """
    sg = getattr(details, "segmentation", None)
    loc_seg = getattr(sg, "loc_segments", None)
    loc_valid = getattr(sg, "loc_valid", None)
    kd = getattr(details, "knot_drift_nm", None)
    if loc_seg is None or loc_valid is None or kd is None:
        return None
    loc_seg = np.asarray(loc_seg, dtype=np.int64)
    kd = np.asarray(kd, dtype=float)
    ok = np.isfinite(kd.reshape(len(kd), -1)).all(axis=1)
    if len(loc_seg) != n_rows or int(ok.sum()) != n_knots:
        return None
    remap = np.where(ok, np.cumsum(ok) - 1, -1)
    inside = (loc_seg >= 0) & (loc_seg < len(ok)) & np.asarray(loc_valid, dtype=bool)
    out = np.full(n_rows, -1, dtype=np.int64)
    out[inside] = remap[loc_seg[inside]]
    return out


#: default cap on COMET's pairs of localizations (``comet_drift(max_pairs=...)``, ``plexloc drift --max-pairs``). COMET
#: pairs every two localizations within ``max_drift_nm`` of each other, so at a fixed field of view the pair count
#: grows as the square of the table (a 40 um field of lines, 300 nm radius: 16 million pairs at 1e5 localizations,
#: 271 million at 1e6); each pair costs about 24 bytes while the pairs are found and every evaluation of the cost
#: visits all of them (1e6 localizations on a 2-core CPU: 6.5 GB and about an hour). 2e7 pairs: about 0.5 GB and
#: 1-2 minutes on that CPU, split-half test included.
COMET_MAX_PAIRS = 20_000_000


def estimate_pairs(xyz_nm: np.ndarray, radius_nm: float, *, sample: int = 50_000, seed: int = 0) -> float:
    """Expected number of pairs of rows of ``xyz_nm`` ``(N, 3)`` within ``radius_nm``, from a random sample.

    Counts the pairs among ``sample`` random rows (KD-tree) and scales by ``N (N - 1) / (m (m - 1))``: each pair of the
    table is in the sample with that probability. Exact when ``N <= sample``. Time and memory: those of the sample.
    """
    from scipy.spatial import cKDTree

    n = len(xyz_nm)
    if n < 2:
        return 0.0
    m = min(n, int(sample))
    pts = xyz_nm if m == n else xyz_nm[np.random.default_rng(seed).choice(n, m, replace=False)]
    tree = cKDTree(pts)
    within = tree.count_neighbors(tree, float(radius_nm))  # ordered pairs, each point with itself included
    pairs_m = (int(within) - m) / 2.0
    return pairs_m * (n * (n - 1.0)) / (m * (m - 1.0))


#: lateral radius (nm) of the pairs of localizations that the z drift is measured from (:func:`_z_knots`): after the
#: lateral correction, two localizations of one molecule lie within sqrt(2) x 2.5 lateral precisions of each other
#: (50 nm: 96 % of them at 14 nm precision, 75 % at 21 nm, 50 % at 30 nm: 1 - exp(-R^2 / (4 sigma^2)))
Z_PAIR_RADIUS_NM = 50.0
#: most pairs the z drift is measured from (rows are sub-sampled above it; :func:`_z_knots`)
Z_MAX_PAIRS = 5_000_000
#: the z drift's uncertainty above which, and above half the z curve's own RMS, the z correction is unreliable
Z_MAX_UNCERTAINTY_NM = 10.0


def _z_knots(xy: np.ndarray, z: np.ndarray, seg: np.ndarray, n_seg: int, *, radius_nm: float = Z_PAIR_RADIUS_NM,
             max_pairs: int = Z_MAX_PAIRS, seed: int = 0) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """The z drift of every window ``(n_seg,)`` (window 0 at 0; NaN where a window has no pair), from pairs of
    localizations of different windows within ``radius_nm`` of each other laterally (``xy``: already corrected for the
    lateral drift); its ``info``; and the fit for :func:`_z_noise` (``rows`` ``(n_pairs, 2)``, the pairs' rows;
    ``windows`` ``(n_pairs, 2)``, theirs; ``residual``, ``weight`` (the final Welsch weights), ``scale`` (the
    weights' width, nm) and ``anchor``; empty without pairs).

    A pair ``(i, j)`` in windows ``a != b`` says ``z_i - z_j = d_a - d_b`` plus the difference of their z errors (one
    molecule) or of their depths (two neighbours): a robust least-squares fit of the windows' drifts ``d`` to all
    pairs (iteratively reweighted, Welsch weights of 2.5 robust standard deviations of the residuals), as RCC's
    windows from their pairs. The pairs are chosen by lateral distance alone, so a pair's z difference is symmetric
    about ``d_a - d_b``, and the fit is not drawn towards 0 by a pair radius in z (see :func:`comet_drift`). Where the
    pairs would exceed ``max_pairs``, a random subset of rows (``seed``) is kept.
    """
    from scipy.spatial import cKDTree

    info: dict[str, Any] = {}
    n = len(z)
    keep_rows = np.arange(n)
    pairs = estimate_pairs(np.column_stack([xy, np.zeros(n)]), radius_nm, seed=seed)
    if pairs > max_pairs:
        frac = np.sqrt(max_pairs / pairs)
        keep_rows = np.sort(np.random.default_rng(seed).choice(n, max(2, int(n * frac)), replace=False))
        info["z_rows_used"] = int(len(keep_rows))
    p = cKDTree(xy[keep_rows]).query_pairs(float(radius_nm), output_type="ndarray")
    i, j = keep_rows[p[:, 0]], keep_rows[p[:, 1]]
    a, b = seg[i], seg[j]
    other = a != b
    a, b, dz = a[other], b[other], (z[i] - z[j])[other]
    info["z_pairs"] = int(len(dz))
    knots = np.full(n_seg, np.nan)
    if len(dz) == 0:
        return knots, info, {}
    cover = np.bincount(a, minlength=n_seg) + np.bincount(b, minlength=n_seg)
    anchor = int(np.argmax(cover > 0))
    w = np.ones(len(dz))
    d = np.zeros(n_seg)
    r = dz.copy()
    scale = 0.0
    ab, ba, aa, bb = a * n_seg + b, b * n_seg + a, a * (n_seg + 1), b * (n_seg + 1)  # flat (row, column) indices
    for it in range(50):
        size = n_seg * n_seg
        m = (np.bincount(aa, weights=w, minlength=size) + np.bincount(bb, weights=w, minlength=size)
             - np.bincount(ab, weights=w, minlength=size) - np.bincount(ba, weights=w, minlength=size))
        rhs = np.bincount(a, weights=w * dz, minlength=n_seg) - np.bincount(b, weights=w * dz, minlength=n_seg)
        m = m.reshape(n_seg, n_seg)
        m[anchor, anchor] += float(w.sum())  # d_anchor = 0
        new = np.linalg.lstsq(m, rhs, rcond=None)[0]
        step = float(np.max(np.abs(new - d)))
        d = new
        r = dz - (d[a] - d[b])
        scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        if not scale > 0:
            break
        w = np.exp(-0.5 * (r / (2.5 * scale)) ** 2)
        if it > 0 and step < 1e-3:
            break
    info["z_pair_spread_nm"] = scale
    knots[cover > 0] = d[cover > 0] - d[anchor]
    fit = {"rows": np.column_stack([i[other], j[other]]), "windows": np.column_stack([a, b]), "residual": r,
           "weight": w, "scale": 2.5 * scale, "anchor": anchor}
    return knots, info, fit


def _z_curve(frame: np.ndarray, centre: np.ndarray, knots: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The per-frame z drift through the windows' z drifts at their centres (NaN knots left out), as the lateral."""
    ok = np.isfinite(knots)
    if ok.sum() < 2:
        return np.full(len(frames), np.nan)
    return _curve(centre[ok], knots[ok, None], frames)[:, 0]


#: :func:`_z_noise`'s check of the pairs of windows' residuals: residuals this small (nm) need no explanation (as
#: :data:`RCC_RESIDUAL_FLOOR_NM`)
Z_RESIDUAL_FLOOR_NM = 1.0


def _z_noise(fit: dict[str, Any], unit: np.ndarray, n_seg: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The error covariance ``(n_seg, n_seg)`` (nm², 0 in the rows of the anchor window and of windows without pairs)
    of :func:`_z_knots`'s windows' z drifts, from the whole table: ``fit``, :func:`_z_knots`'s pairs, and ``unit``,
    the independent unit of every row (the on-events of :func:`_events`). None where it cannot be had: no redundant
    pair of windows (fewer pairs of windows with pairs than free windows: nothing checks the model), or the windows
    with pairs not linked into one system.

    The windows' z drifts ``d`` solve the robust fit's estimating equation ``G(d) = sum_p psi(r_p) c_p = 0`` over the
    pairs ``p`` of localizations (``r_p = dz_p - (d_a - d_b)``, ``c_p = e_a - e_b``, ``psi(r) = w(r) r`` with the
    Welsch weight ``w``), so their error is ``H^-1 G(d_true)``, ``H = sum_p psi'(r_p) c_p c_p^T``: the sandwich of an
    M-estimator. ``G`` is a sum over pairs of localizations, and pairs are not independent (one on-event of a molecule
    pairs with every on-event of it, and of its neighbours, in the other windows): as for RCC (:func:`_rcc_noise`),
    the units are the on-events, each brings ``D_u``, the sum of ``psi`` over the pairs it is in, per pair of
    windows, and the covariance of the pairs of windows' sums is ``sum_u D_u D_u^T`` less ``sum_uv k_uv k_uv^T``
    (``k_uv``: the pairs between units u != v, counted in ``D_u`` and in ``D_v``): exact for a sum that is linear in
    the units' errors, and uncentred, so that which on-events fell in which window (a neighbour at another depth, in
    one window and not in the next) is noise too. The check: the pairs of windows are redundant (45 for 10 windows
    and 9 free drifts), and their sums at the solution, ``s_q`` (``q`` a pair of windows), must be as large as this
    model says: ``sum_q s_q² / h_q`` (``h_q`` the pair of windows' share of ``H``) against its expectation, less
    twice its chance spread, scales the covariance up by the excess (never down; ``z_pair_residual_ratio``), as
    :func:`_rcc_noise`'s check.
    """
    info: dict[str, Any] = {}
    if not fit:
        return None, info
    rows, win = fit["rows"], fit["windows"]
    r, w, s2 = fit["residual"], fit["weight"], float(fit["scale"]) ** 2
    _, unit = np.unique(unit, return_inverse=True)
    unit = unit.ravel().astype(np.int64)
    n_units = int(unit.max()) + 1
    lo, hi = win.min(axis=1), win.max(axis=1)
    sign = np.where(win[:, 0] < win[:, 1], 1.0, -1.0)  # c_p = sign * (e_lo - e_hi)
    psi = sign * w * r
    dpsi = w * (1.0 - r**2 / s2) if s2 > 0 else w.copy()
    qkey, q = np.unique(lo * n_seg + hi, return_inverse=True)
    q = q.ravel()
    n_q = len(qkey)
    q_lo, q_hi = qkey // n_seg, qkey % n_seg
    covered = np.unique(np.concatenate([q_lo, q_hi]))
    anchor = int(fit["anchor"])
    free = covered[covered != anchor]
    if n_q <= len(free) or not len(free):
        return None, info
    col = np.full(n_seg, -1, dtype=np.int64)
    col[free] = np.arange(len(free))
    design = np.zeros((n_q, len(free)))  # each pair of windows as d_lo - d_hi, the anchor's column left out
    has = col[q_lo] >= 0
    design[np.flatnonzero(has), col[q_lo[has]]] = 1.0
    has = col[q_hi] >= 0
    design[np.flatnonzero(has), col[q_hi[has]]] = -1.0
    h_q = np.bincount(q, weights=dpsi, minlength=n_q)
    bread = design.T @ (h_q[:, None] * design)
    if not np.all(np.linalg.eigvalsh(bread) > 0):  # psi' < 0 beyond the weights' width: the fixed weights instead
        h_q = np.bincount(q, weights=w, minlength=n_q)
        bread = design.T @ (h_q[:, None] * design)
        if not np.all(np.linalg.eigvalsh(bread) > 0):  # not one linked system
            return None, info
    from scipy.sparse import coo_matrix

    ua, ub = unit[rows[:, 0]], unit[rows[:, 1]]
    two = ua != ub
    # D_u per pair of windows (a pair of two rows of one unit, an on-event that spans two windows, counted once)
    shares = coo_matrix((np.concatenate([psi, psi[two]]), (np.concatenate([ua, ub[two]]), np.concatenate([q, q[two]]))),
                        shape=(n_units, n_q)).tocsr()
    cov_s = (shares.T @ shares).toarray()
    uv = np.minimum(ua[two], ub[two]) * n_units + np.maximum(ua[two], ub[two])
    _, k = np.unique(uv, return_inverse=True)
    twice = coo_matrix((psi[two], (k.ravel(), q[two])), shape=(int(k.max()) + 1 if len(k) else 0, n_q)).tocsr()
    cov_s -= (twice.T @ twice).toarray()
    inv_b = np.linalg.inv(bread)
    gain = inv_b @ design.T  # the free windows' drifts per unit of each pair of windows' sum
    cov_free = gain @ cov_s @ gain.T
    # the check: the pairs of windows' sums at the solution against what the model expects of them
    s_obs = np.bincount(q, weights=psi, minlength=n_q)
    resid_op = np.eye(n_q) - (h_q[:, None] * design) @ gain
    scale_q = np.where(h_q > 0, 1.0 / np.sqrt(np.maximum(h_q, 1e-300)), 0.0)
    res_cov = scale_q[:, None] * (resid_op @ cov_s @ resid_op.T) * scale_q[None, :]
    floor = Z_RESIDUAL_FLOOR_NM**2 * float(np.sum(h_q[h_q > 0]))
    expected = max(float(np.trace(res_cov)), 0.0) + floor
    spread = float(np.sqrt(2.0 * np.sum(res_cov * res_cov)))
    observed = float(np.sum((s_obs * scale_q) ** 2)) + floor
    ratio = (observed - RCC_RESIDUAL_CHANCE * spread) / expected
    cov = np.zeros((n_seg, n_seg))
    cov[np.ix_(free, free)] = cov_free * max(1.0, ratio)
    info.update(z_pair_residual_ratio=ratio, z_events=n_units, z_window_pairs=n_q)
    return cov, info


#: a z curve is subtracted only where its windows' z drifts differ from none beyond chance at this level (the
#: smaller p-value of :func:`_z_significance`'s two tests); else the z drift is 0 (``info["z_significant"]`` False)
Z_SIGNIFICANCE = 0.01


def _z_significance(knots: np.ndarray, cov: np.ndarray, centre: np.ndarray) -> dict[str, Any]:
    """Whether the windows' z drifts ``knots`` (relative to the anchor window, whose row of ``cov`` is 0) differ from
    no drift beyond their noise ``cov`` (:func:`_z_noise`): two chi-square tests, their smaller p-value
    (``z_p_value``) against :data:`Z_SIGNIFICANCE` (``z_significant``). All windows (``z_chi2`` of ``z_chi2_dof``
    degrees of freedom, ``knots' C^-1 knots``), which any shape of drift raises; and the linear and quadratic trend in
    time (``z_trend_chi2``, 2 degrees of freedom: the generalized least-squares fit of ``t``, ``t²`` from the anchor's
    centre, its ``beta' (X' C^-1 X) beta``), which holds the whole of a slow drift's signal in 2 instead of 9
    dimensions and so finds it where the first test does not (a 40 nm linear z drift over 200 frames of a 3D
    astigmatic movie: chi-square 19.6 of 9, p 0.02, against a drift-free table's 16.8 of 9). Empty where there is no
    free window."""
    from scipy.stats import chi2

    free = np.flatnonzero(np.isfinite(knots) & (np.diag(cov) > 0))
    if not len(free):
        return {}
    c = cov[np.ix_(free, free)]
    k = knots[free]
    ck = np.linalg.solve(c, k)
    stat = float(k @ ck)
    p_all = float(chi2.sf(stat, len(free)))
    out: dict[str, Any] = {"z_chi2": stat, "z_chi2_dof": int(len(free))}
    p = p_all
    if len(free) >= 3:
        anchor = centre[np.isfinite(knots) & ~np.isin(np.arange(len(knots)), free)]
        t0 = float(anchor[0]) if len(anchor) else 0.0
        span = max(float(np.ptp(centre)), 1.0)
        x = (centre[free] - t0) / span
        design = np.column_stack([x, x**2])
        cx = np.linalg.solve(c, design)
        trend = float((design.T @ ck) @ np.linalg.solve(design.T @ cx, design.T @ ck))
        out["z_trend_chi2"] = trend
        p = min(p, float(chi2.sf(trend, 2)))
    out.update(z_p_value=p, z_significant=bool(p < Z_SIGNIFICANCE))
    return out


def _z_drift(frame: np.ndarray, xy: np.ndarray, z: np.ndarray, seg: np.ndarray, centre: np.ndarray,
             frames: np.ndarray, *, split_half: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The z drift of every frame ``frames`` and of every window (``seg``, centres ``centre``) from the pairs of
    :func:`_z_knots`, and its ``info``: ``z_uncertainty_nm`` (with ``split_half``), as the lateral ``uncertainty_nm``
    but for z alone, the expected RMS over the frames of the estimated minus the true z drift after removing the
    constant offset (:func:`drift_error_rms` ``axes=(2,)``): the z curve's noise (``z_noise_nm``) and its
    interpolation error (:func:`_interpolation_error` of the z knots, ``z_interpolation_error_nm``) in quadrature.
    The noise since session 41 from the whole table (:func:`_z_noise`: the pairs' sandwich, the on-events of
    :func:`_events` as the units, checked against the pairs of windows' residuals), ``z_uncertainty_from`` "pairs";
    where that cannot be had (no redundant pair of windows), "split-half": half the RMS difference of the z curves
    of the two halves of :func:`_half_split` (the same windows, the same lateral correction), as before session 41.
    """
    n_seg = len(centre)
    knots, info, fit = _z_knots(xy, z, seg, n_seg, seed=seed)
    curve = _z_curve(frame, centre, knots, frames)
    if not np.isfinite(curve).all():  # fewer than 2 windows with pairs: no z drift (said by :func:`_with_z_drift`)
        return curve, knots, info
    if split_half:
        ok = np.isfinite(knots)
        cov, noise_info = _z_noise(fit, _events(xy, frame, RCC_EVENT_LINK_NM), n_seg) if fit else (None, {})
        if cov is not None:
            info.update(noise_info)
            c_ok = cov[np.ix_(ok, ok)]
            basis = _curve(centre[ok], np.eye(int(ok.sum())), frames.astype(float))
            basis -= basis.mean(axis=0)
            noise = float(np.sqrt(max(float(np.sum((basis.T @ basis / len(frames)) * c_ok)), 0.0)))
            centring = np.eye(int(ok.sum())) - 1.0 / ok.sum()
            knot_var = max(float(np.trace(centring @ c_ok @ centring)) / ok.sum(), 0.0)
            info["z_uncertainty_from"] = "pairs"
            info.update(_z_significance(knots, cov, centre))
        else:
            half, _ = _half_split(frame, seg, n_seg)
            curves = []
            for part in (half, ~half):
                k, _, _ = _z_knots(xy[part], z[part], seg[part], n_seg, seed=seed)
                curves.append(_z_curve(frame[part], centre, k, frames))
            e = curves[0] - curves[1]
            e = e - e.mean()
            half_diff = float(np.sqrt(np.mean(e**2)))
            at = np.clip(np.round(centre).astype(np.int64) - int(frames[0]), 0, len(frames) - 1)
            dk = e[at]
            dk = dk[np.isfinite(dk)]
            knot_var = float(np.mean((dk - dk.mean()) ** 2)) / 4.0 if len(dk) >= 2 else float("nan")
            noise = half_diff / 2.0
            info.update(z_half_difference_nm=half_diff, z_uncertainty_from="split-half")
        interp = 0.0
        if np.isfinite(knot_var) and ok.all():
            interp = _interpolation_error(frame, seg, centre, knots[:, None], frames, knot_var)
        info.update(z_noise_nm=noise, z_interpolation_error_nm=interp, z_uncertainty_nm=float(np.hypot(noise, interp)))
    return curve, knots, info


#: the ``at_bound`` bit of a z on the fit's z bound (:data:`plexloc.mle.fit.AT_BOUND_BITS`, not imported: torch)
Z_AT_BOUND_BIT = 2


def _z_at_bound(table: LocTable) -> np.ndarray:
    """The rows whose z is not a measurement but a bound: ``at_bound`` with the z bit (the MLE fit ended on its z
    bound, :data:`Z_AT_BOUND_BIT`), and, in any table, rows at the table's lowest or highest z where more than one row
    holds exactly that value (a continuous estimate repeats no value: a clip to the z range, as a network's output or
    a fitter without the column gives). Such a z does not move with the sample: in pairs across windows it reads a z
    drift as less than it is, and a molecule near the bound, fitted on it in some frames and not in others, gives pairs
    hundreds of nm off."""
    z = np.asarray(table["z_nm"], dtype=float)
    out = np.zeros(len(z), dtype=bool)
    if "at_bound" in table:
        bits = np.asarray(table["at_bound"])
        ok = np.isfinite(bits) if bits.dtype.kind == "f" else np.ones(len(bits), dtype=bool)
        out[ok] = (bits[ok].astype(np.int64) & Z_AT_BOUND_BIT) != 0
    known = np.isfinite(z)
    if known.sum() > 2:
        for edge in (float(np.min(z[known])), float(np.max(z[known]))):
            hit = z == edge
            if hit.sum() > 1:
                out |= hit
    return out


def _with_z_drift(table: LocTable, frames: np.ndarray, curve: np.ndarray, seg: np.ndarray, centre: np.ndarray,
                  seg_frames: np.ndarray, seg_drift: np.ndarray, *, split_half: bool, seed: int, engine: str,
                  ) -> dict[str, Any]:
    """Put the z drift of :func:`_z_drift` into ``curve[:, 2]`` (every frame) and ``seg_drift[:, 2]`` (at the knots
    ``seg_frames``), in place, after the lateral drift ``curve[:, :2]``; returns the ``info`` entries. Nothing where z
    is known in no row (NaN) or is one value (a 2D table). Rows without a finite z are left out of the z pairs
    (``info["z_rows_without_z"]``; one NaN skipped the z correction before, and RCC kept z at 0, COMET its own z). Warns (:class:`UnreliableDriftWarning`) where the z
    uncertainty is above :data:`Z_MAX_UNCERTAINTY_NM` and above half the z curve's RMS about its mean (the z drift
    is mostly noise), or is not known (a half of the table without 2 windows of pairs); and where fewer than 2
    windows have pairs at all, the z drift is 0 (left uncorrected, ``info["z_unreliable"]``) with a warning, the
    lateral drift kept (an InputError before, which lost the lateral estimate too). Since session 46: rows whose z is
    on the fit's bound (:func:`_z_at_bound`) are left out of the pairs (``info["z_rows_at_bound"]``), unless that
    would leave fewer than 2 rows; and where the windows' z drifts are not significant (:func:`_z_significance`,
    ``info["z_significant"]`` False) the z drift is 0, with a warning only where its uncertainty is above
    :data:`Z_MAX_UNCERTAINTY_NM` (a z drift of that size would go unseen; ``info["z_unreliable"]``)."""
    z = table["z_nm"].astype(float)
    known = np.isfinite(z)
    if not known.any() or float(np.ptp(z[known])) == 0.0:
        return {}
    frame = table["frame"]
    idx = frame.astype(np.int64) - int(frames[0])
    xy = np.column_stack([table["x_nm"] - curve[idx, 0], table["y_nm"] - curve[idx, 1]])
    n_without = int((~known).sum())
    at_bound = _z_at_bound(table) & known
    n_bound = int(at_bound.sum())
    if n_bound and n_bound < int(known.sum()) - 1:  # z on the fit's bound says only "beyond it": not a z to compare
        known &= ~at_bound
    else:
        n_bound = 0
    if n_without or n_bound:  # the rows with a z (the windows stay the table's)
        frame, xy, z, seg = frame[known], xy[known], z[known], np.asarray(seg)[known]
    zc, knots, info = _z_drift(frame, xy, z, seg, centre, frames, split_half=split_half, seed=seed)
    where = f"{table.source}: " if table.source else ""
    left_out = (f" ({n_without} of {len(known)} localizations without a finite z left out)" if n_without else "")
    if n_without:
        info["z_rows_without_z"] = n_without
    if n_bound:
        info["z_rows_at_bound"] = n_bound
    info["z_segment_frames"] = centre.tolist()
    info["z_segment_drift_nm"] = knots.tolist()
    if not np.isfinite(zc).all():
        curve[:, 2] = 0.0
        seg_drift[:, 2] = 0.0
        info["z_unreliable"] = True
        warnings.warn(
            f"{where}{engine}: no z drift: the localizations of {int(np.isfinite(knots).sum())} of {len(centre)} time "
            f"windows have neighbours within {Z_PAIR_RADIUS_NM:g} nm laterally in other windows{left_out}, 2 are "
            "needed; z is left uncorrected (drift_z_nm 0). Too few localizations, or each molecule seen in one window "
            "only; try fewer windows (n_segments, plexloc drift --segments)", UnreliableDriftWarning, stacklevel=3)
        return info
    rms = float(np.sqrt(np.mean((zc - zc.mean()) ** 2)))
    unc = info.get("z_uncertainty_nm")
    if info.get("z_significant") is False:  # no z drift beyond the noise: none subtracted (the estimate in info)
        curve[:, 2] = 0.0
        seg_drift[:, 2] = 0.0
        info["z_estimated_rms_nm"] = rms
        if unc is not None and not unc <= Z_MAX_UNCERTAINTY_NM:  # and a z drift of that size would go unseen
            info["z_unreliable"] = True
            warnings.warn(
                f"{where}{engine}: no z drift beyond the noise was found (the windows' z drifts differ from none with "
                f"p = {info['z_p_value']:.2g}; z left uncorrected, drift_z_nm 0), but the z drift is known to about "
                f"+-{unc:.0f} nm (rms over the frames) only: a z drift of that size would go unseen. Too few "
                "localizations per window, or z too imprecise; try fewer windows (n_segments, plexloc drift "
                "--segments)", UnreliableDriftWarning, stacklevel=3)
        return info
    curve[:, 2] = zc
    seg_drift[:, 2] = np.interp(seg_frames, frames, zc)
    if unc is not None:
        if not (unc <= Z_MAX_UNCERTAINTY_NM or unc <= 0.5 * rms):
            info["z_unreliable"] = True
            how = ("from the pairs of localizations near each other in different windows"
                   if info.get("z_uncertainty_from") == "pairs" else "from two halves of the table")
            known = (f"known to about +-{unc:.0f} nm (rms over the frames, {how})"
                     if np.isfinite(unc) else "not known (a half of the table has fewer than 2 windows with pairs)")
            warnings.warn(
                f"{where}{engine}: the z drift is {known}, for a z curve of {rms:.0f} nm rms about its mean: the z "
                f"correction is mostly noise "
                f"and not reliable. Too few localizations per window, or z too imprecise; try fewer windows "
                f"(n_segments, plexloc drift --segments). If the sample did not drift in z, keep the z uncorrected",
                UnreliableDriftWarning, stacklevel=3)
    return info


def comet_drift(
    table: LocTable,
    *,
    n_segments: int = 10,
    max_drift_nm: float = MAX_DRIFT_NM,
    backend: str | None = None,
    seed: int = 0,
    max_locs_per_segment: int | None = None,
    split_half: bool = True,
    max_pairs: int | None = COMET_MAX_PAIRS,
    progress: Callable[[str, dict], None] | None = None,
) -> DriftResult:
    """COMET drift estimate (optional package ``comet-smlm``; see the module docstring).

    COMET gives the drift of every window (the knots); the per-frame curve is the natural cubic spline through them,
    extended linearly past the first and last window centre, as for RCC. (COMET's own curve is a not-a-knot spline
    that is *extrapolated as a cubic* out to the first and last frame: on a drift-free 200-frame movie its windows
    spanned 181 nm in x and the curve 435 nm.)

    The windows are ours, as RCC's (:func:`_segments`: ``n_segments`` windows of equal counts, never splitting a
    frame), handed to COMET as window ids (its ``segmentation_mode=-1``); the halves of the split-half test are run in
    the same windows. COMET's own "number of windows" mode made one window fewer than asked (10 asked, 9 made on the
    bench's tables, the last about twice as long; see :func:`_comet_knots`). Fewer windows than asked are made only
    where a crowded frame holds several equal-count cuts (``info["n_segments"]`` says how many).

    COMET maximises the overlap of pairs of localizations whatever the data: on a table without structure shared
    between windows (each molecule seen in one window only, or too few localizations) it still returns a drift, the
    shift that best superposes chance neighbours, tens to hundreds of nm. Its reliability is measured by a split-half
    test, as RCC's: two more runs on two halves of the table made of blocks of consecutive frames
    (:func:`_half_split`, 8 blocks in each of the table's equal-count windows, so that each on-event of a
    molecule stays in one half and the halves' errors are independent; a capped run gives each half half the cap).
    Their curves differ (after removing the constant offset) by ``half_difference_nm``, RMS over the frames of x and y
    together; each half has half the localizations (twice the error variance of the full estimate, the difference
    four times), so the full curve's noise is ``COMET_HALF_DIFFERENCE_SCALE * half_difference_nm / 2``. Added in
    quadrature: the error of the curve's construction from windows (``interpolation_error_nm``, as RCC's; zero for a
    linear drift). ``info["uncertainty_nm"]`` is the sum, the expected error of the curve in the units of
    :func:`drift_error_rms` (RMS over the frames of x and y together, after removing the constant offset), the same
    quantity as RCC's; where :func:`drift_unreliable` calls it unreliable (as RCC's: subtracting the curve would
    likely not help; ``info["curve_rms_nm"]``, the curve's own RMS), or where the curve spans more than
    ``max_drift_nm`` (beyond the pair radius that the cost sees), an :class:`UnreliableDriftWarning` is issued.
    (Before, it was half
    the RMS difference of two *random* halves of the rows, per lateral axis: the frames of one on-event fell in both
    halves; see ``bench/drift_uncertainty.py --engine comet``.) ``info["half_block_frames"]``: the blocks' mean
    length (median over the windows).

    Args:
        table: localizations (frame, x_nm, y_nm, z_nm).
        n_segments: number of time windows (equal counts, as RCC's).
        max_drift_nm: pair search radius (largest drift between windows); also the bound of every window's drift
            around the windows' mean.
        backend: COMET's compute backend (``cuda``, ``torch``, ``cpu``); default: fastest available.
        seed: seeds COMET's sub-sampling of crowded windows.
        max_locs_per_segment: cap of localizations per window (COMET sub-samples above it).
        split_half: run the split-half test (about 1.5x the time); without it ``uncertainty_nm`` is not known and
            no unreliability warning is issued.
        max_pairs: where ``max_locs_per_segment`` is None and the table has more pairs within ``max_drift_nm`` than
            this (:func:`estimate_pairs`), every window is sub-sampled (COMET's ``max_locs_per_segment``) to about
            this many pairs, and ``info`` records ``pairs_estimated`` and ``max_locs_per_segment``. The pair count
            grows as the square of the table, and with it COMET's memory and time (:data:`COMET_MAX_PAIRS`); None:
            every localization, whatever it costs.
        progress: called as ``progress(stage, info)`` by COMET (its stages; ``info["run"]`` and
            ``info["n_evaluations"]`` while it optimises), with ``info["pass"]`` = 1 for the full table and 2, 3 for
            the halves of the split-half test.
    """
    if not comet_available():
        raise InputError("drift engine 'comet' needs the optional package comet-smlm: pip install 'plexloc[drift]' "
                         "(or use engine 'rcc')")
    import matplotlib

    matplotlib.use("Agg")  # COMET imports pyplot; never open a window

    t0 = time.perf_counter()
    frame = table["frame"]
    dataset = np.column_stack([table["x_nm"], table["y_nm"], table["z_nm"], frame.astype(float)])
    stages: dict[str, Any] = {}

    def watch(stage: str, info: dict) -> None:
        if stage == "segmentation":
            stages["n_segments"] = int(info.get("n_segments", 0))
        elif stage == "pairs_done":
            stages["n_pairs"] = int(info.get("n_pairs", 0))

    capped: dict[str, Any] = {}
    if max_locs_per_segment is None and max_pairs is not None:
        pairs = estimate_pairs(dataset[:, :3], max_drift_nm, seed=seed)
        if pairs > max_pairs:
            # pairs grow as the square of the rows kept: keep sqrt(max_pairs / pairs) of each window's rows
            max_locs_per_segment = max(100, int(len(dataset) / max(int(n_segments), 1) * np.sqrt(max_pairs / pairs)))
            capped = {"pairs_estimated": float(pairs), "max_locs_per_segment": max_locs_per_segment}
    run = dict(max_drift_nm=max_drift_nm, backend=backend, seed=seed,
               max_locs_per_segment=max_locs_per_segment)

    def passing(k: int) -> Callable[[str, dict], None] | None:
        if progress is None:
            return None
        return lambda stage, info: progress(stage, {**info, "pass": k})

    def watch_and_report(stage: str, info: dict) -> None:
        watch(stage, info)
        if progress is not None:
            progress(stage, {**info, "pass": 1})

    # our windows (equal counts, as RCC's), handed to COMET: its own segmentation made 9 of 10 (:func:`_comet_knots`)
    windows, centre = _segments(frame, int(n_segments))
    seg_frames, seg_drift, details = _comet_knots(dataset, windows, progress=watch_and_report, **run)
    lo, hi = int(frame.min()), int(frame.max())
    frames = np.arange(lo, hi + 1)
    if len(seg_frames) < 2:
        raise InputError(f"COMET estimated the drift of {len(seg_frames)} window(s), 2 are needed: use more windows "
                         f"(n_segments, plexloc drift --segments; got {n_segments})", source=table.source)
    d = _curve(seg_frames, seg_drift, frames)
    offset = d[:1].copy()  # reference: drift(first frame) = 0
    d -= offset
    seg_drift = seg_drift - offset
    info: dict[str, Any] = {"backend": getattr(details, "backend", backend), "max_drift_nm": max_drift_nm, **stages,
                            **capped}
    where = f"{table.source}: " if table.source else ""
    span = float(np.ptp(d[:, :2], axis=0).max())
    if split_half:
        # the halves: blocks of consecutive frames in each of the table's equal-count windows (as RCC's,
        # :func:`_half_split`), so that each on-event stays in one half and the halves' errors are independent. A
        # capped run (max_locs_per_segment) keeps half the cap in each half: each half has half the rows that the
        # full estimate used
        half, block = _half_split(frame, windows, int(windows.max()) + 1)
        run_h = dict(run, max_locs_per_segment=None if max_locs_per_segment is None
                     else max(1, int(max_locs_per_segment) // 2))
        curves = []
        for k_pass, part in enumerate((half, ~half), start=2):  # each half in the full table's windows
            f, k, _ = _comet_knots(dataset[part], windows[part], progress=passing(k_pass), **run_h)
            curves.append(_curve(f, k, frames)[:, :2] if len(f) >= 2 else np.full((len(frames), 2), np.nan))
        e = curves[0] - curves[1]
        e -= e.mean(axis=0)
        half_diff = float(np.sqrt(np.mean(np.sum(e**2, axis=1))))  # x and y together, as drift_error_rms
        noise = COMET_HALF_DIFFERENCE_SCALE * half_diff / 2.0
        # the curve's error from its construction out of windows (zero for a linear drift), as for RCC; a window's
        # error variance per axis from the halves' curves at the knots
        knot_var = _knot_variance(e, seg_frames, frames, COMET_HALF_DIFFERENCE_SCALE)
        rows_seg = _comet_rows_window(details, len(dataset), len(seg_frames))
        interp = 0.0
        if rows_seg is not None and np.isfinite(knot_var):
            used = rows_seg >= 0
            if len(np.unique(rows_seg[used])) == len(seg_frames):
                interp = _interpolation_error(frame[used], rows_seg[used], seg_frames, seg_drift[:, :2], frames,
                                              knot_var)
        uncertainty = float(np.hypot(noise, interp))
        info.update(half_difference_nm=half_diff, half_block_frames=int(np.median(block)),
                    interpolation_error_nm=interp, uncertainty_nm=uncertainty)
        curve_rms = drift_error_rms(d[:, :2], np.zeros((len(d), 2)))
        info["curve_rms_nm"] = curve_rms
        if drift_unreliable(uncertainty, curve_rms):  # NaN (a half without 2 windows) warns too
            info["unreliable"] = True
            warnings.warn(
                f"{where}COMET: two halves of the {len(dataset)} localizations (blocks of about "
                f"{int(np.median(block))} frames) give drifts that differ by {half_diff:.0f} nm rms: the drift is "
                f"known to about +-{uncertainty:.0f} nm (rms over the frames, x and y), for a curve of {curve_rms:.0f} "
                f"nm rms that spans {span:.0f} nm: {_why_unreliable(uncertainty, curve_rms)}, and this drift "
                "estimate is not reliable. Too few localizations per window, or no "
                f"structure that several windows share (each molecule seen in one window only); try fewer windows "
                f"(n_segments, plexloc drift --segments, got {n_segments}). If the sample did not drift, keep the "
                "uncorrected table", UnreliableDriftWarning, stacklevel=2)
    # z from pairs of localizations near each other laterally (:func:`_z_drift`), not COMET's own z, which its
    # isotropic kernel read with a large error (a 3D table, z precision 40 nm: 3.9-6.5 nm rms against 0.8-2.1)
    comet_z = seg_drift[:, 2].copy()
    z_info = _with_z_drift(table, frames, d, windows, centre, seg_frames, seg_drift, split_half=split_half,
                           seed=seed, engine="COMET")
    if z_info:
        z0 = float(d[0, 2])  # reference: drift(first frame) = 0
        d[:, 2] -= z0
        seg_drift[:, 2] -= z0
        info.update(z_info, comet_segment_z_nm=comet_z.tolist())
    if span > max_drift_nm:
        info["unreliable"] = True
        warnings.warn(
            f"{where}COMET: the drift curve spans {span:.0f} nm, more than the largest drift searched for "
            f"(max_drift_nm, plexloc drift --max-drift, {max_drift_nm:g} nm): pairs further apart were never "
            "compared and this drift estimate is not reliable; raise --max-drift if the sample drifted that far",
            UnreliableDriftWarning, stacklevel=2)
    return DriftResult(
        frames=frames,
        drift_nm=d,
        engine="comet",
        segment_frames=seg_frames,
        segment_drift_nm=seg_drift,
        elapsed_s=time.perf_counter() - t0,
        info=info,
    )


def estimate_drift(table: LocTable, *, engine: str = "rcc", **options: Any) -> DriftResult:
    """Estimate the drift with ``engine`` (``rcc``, the default, ``comet``, or ``fiducials``: from fiducial markers,
    :func:`plexloc.post.fiducials.fiducial_drift`); options go to that engine's function.
    On 168 simulated 2D tables (1,000-200,000 localizations; ``bench/drift_engines39.py``) RCC's error was 1.2-1.8x
    smaller than COMET's and it ran 5-300x faster; COMET did better on sparse 3D tables (under about 300
    localizations per window).

    Raises:
        InputError: unknown engine, comet without its package, too few localizations or frames.
    """
    if engine not in ENGINES:
        raise InputError(f"drift engine {engine!r} unknown; choose one of {', '.join(ENGINES)}")
    if len(table) < 10:
        raise InputError(f"drift estimation needs localizations, the table has {len(table)}", source=table.source)
    if engine == "fiducials":
        from plexloc.post.fiducials import fiducial_drift

        table.check_finite(("x_nm", "y_nm"))
        return fiducial_drift(table, **options)
    if engine == "comet" and bool(np.all(np.isnan(table["z_nm"]))):
        # a 2D table with z unknown (NaN in every row, docs/conventions.md) was refused ("column 'z_nm' has 12000
        # non-finite values"); COMET sees it as the 2D table it is, z = 0, whose z drift is 0
        table = table.with_columns(z_nm=np.zeros(len(table)))
    table.check_finite(("x_nm", "y_nm", "z_nm") if engine == "comet" else ("x_nm", "y_nm"))
    if engine == "comet":
        return comet_drift(table, **options)
    return rcc_drift(table, **options)


def apply_drift(table: LocTable, drift: DriftResult) -> LocTable:
    """Subtract the drift of each localization's frame; add it to ``drift_x_nm, drift_y_nm, drift_z_nm``. Rows that
    ``drift.remove_rows`` names (the fiducial markers) are left out."""
    if drift.remove_rows is not None:
        table = table[~drift.remove_rows(table)]
    d = drift.at(table["frame"])
    cols = {
        "x_nm": table["x_nm"] - d[:, 0],
        "y_nm": table["y_nm"] - d[:, 1],
        "z_nm": table["z_nm"] - d[:, 2],
    }
    for k, name in enumerate(DRIFT_COLUMNS):
        cols[name] = (table[name] if name in table else 0.0) + d[:, k]
    return table.with_columns(**cols)
