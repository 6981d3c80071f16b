"""Does a movie lie inside what the model was trained on? Photons and background, per channel.

A network answers for any input, also for one outside its training: a multi-colour model trained for the
AF647/CF680 split on the dyes' own ranges (channel 0 drew 95-865 photons) assigned the colours of a 20 %/60 %
split (1000-3000 photons in channel 0) at chance and said nothing (bench/RESULTS.md, issue 10). A camera configured with the wrong gain or
conversion factor does the same to every model: photons and background come out scaled.

After a fit, :func:`check_training_domain` compares the network's own estimates with the ranges its training
simulation drew from (:func:`training_ranges`):

- photons (the total for a one-channel or ``linked`` model; each channel's for ``independent`` photons): the
  share of localizations whose estimate lies above ``photon_over`` times the training maximum (for the total,
  ``PHOTON_CEILING_SHARE`` of the head's ceiling, 1.10x, where that is lower). An emitter brighter than any the
  network saw comes out at the top of the range or past it (the output reaches 1.2x the emitters' maximum); far
  brighter ones (2x and more) can be lost instead, which no check of the estimates sees. Dimmer estimates are not
  checked: emitters on for part of a frame are dimmer than the range in every movie.
- background of every channel: the median estimate against the training range widened by ``bg_over`` on both
  sides (both too much and too little background mean the camera conversion or the model is wrong).
- the movie's own mean pixel per channel (read off its first frames, whatever the network estimates): below the
  training background's low end divided by ``bg_over``, or above its high end plus the light of the training's
  densest and brightest emitters, times ``bg_over`` (:func:`emitter_light`: the mean pixel is the background plus
  the emitters' light, so only a mean that the training's frames cannot reach says the background is too high).

- emitters far brighter than training (:func:`bright_spot_checks`, per channel for a multi-channel model): those the estimates
  cannot show, because the network loses them (from about 2x the training maximum, the demo model found none, or a few
  false localizations of in-range photons). The PSF-shape check's bright isolated spots of the movie's first frames
  (:mod:`plexloc.psf.check`, photons from its own Gaussian fit) are compared with the training maximum and with the
  photons the network's localizations give the same spots: where more than ``SPOT_MAX_FRACTION`` of the spots carry
  more than ``SPOT_OVER`` times the maximum and the network accounts for ``SPOT_MIN_SHARE`` of their light or less
  (the lower median over the spots: where half of them are lost, the check says so), it is a warning. Crowded movies, whose isolated-looking spots are often two emitters and read up to twice as bright,
  are told apart by that share: the network finds both emitters of such a spot. A multi-channel model's channels are
  judged one by one, each channel's spots against its own training maximum and the table's photons in that channel of
  the rows mapped into its image by the channel's transform.
- the camera conversion itself (:func:`plexloc.camera.check.noise_ratio`, a photon-transfer check that needs no model): the pixel
  noise between consecutive frames against what the camera settings predict for that signal. Photons that a
  wrong gain or e-/ADU scales by k carry k times the predicted variance (EMCCD, sCMOS: shot noise dominated),
  whatever the model was trained on. The ratio is warned about outside ``NOISE_RANGE``.

- spot shape (:func:`spot_shape_checks`, per channel): emitters beyond a 3D model's training z range, a sample thicker
  than it, another PSF or pixel size, are not placed at the range's edge: the network folds them back inside with a
  wrong z, silently (bench/zedge42.py: median error 408 nm towards the centre). Their spots have widths the model's PSF
  has at no z of its range. The network's own bright rows of the movie's first frames that have no other row within
  ``SHAPE_ISOLATION`` windows (a neighbour widens a spot as much as defocus does), and no peak of the movie's own frames
  there but their own (a short training's network misses neighbours: bench/spotshape44.py), are fitted with the PSF-shape check's
  elliptical Gaussian on its window, and each spot's widths are compared with that check's curve of the model's PSF
  over the training z range (``far``: beyond ``FAR_DISTANCE`` scatter units of it, the estimator's bias and scatter
  measured on the model's own spots at the movie's photons and background); spots tilted against the pixel axes unlike
  the PSF (two emitters that such a network reports as one row) are left out. More than ``SHAPE_FAR_SHARE`` of them far,
  and at least ``SHAPE_MIN_FAR``, is a warning (bench/psfwidth43.py).

A warning names the quantity, the training range, what the data show and what to do. Thresholds and the
measurements behind them are in bench/RESULTS.md (issue 3, "training-domain check").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from plexloc.config import TrainConfig
from plexloc.errors import InputError
from plexloc.camera.check import NOISE_RANGE, noise_ratio  # noqa: F401  (noise_ratio: re-exported)
from plexloc.table import LocTable

__all__ = ["DomainCheck", "DomainReport", "DomainWarning", "bright_spot_checks", "check_training_domain",
           "emitter_light", "noise_ratio", "spot_shape_checks", "training_ranges"]

PHOTON_OVER = 1.25
#: total photons (one channel, or linked channels) are checked against this share of the photon head's ceiling
#: (1.2x the training maximum, ``trainer.PHOTON_SCALE_OVER_MAX``) where it is below ``photon_over``: the head cannot
#: report more, so 1.25x never fired for such a model (the demo model: 12,000-photon emitters, trained to 8,000,
#: came out at 9,332, 1.17x)
PHOTON_CEILING_SHARE = 0.92
PHOTON_MAX_FRACTION = 0.05
BG_OVER = 1.25
#: bright-spot check: a spot is too bright above this multiple of the training maximum ...
SPOT_OVER = 1.5
#: ... the check fires where more than this share of the spots are, ...
SPOT_MAX_FRACTION = 0.05
#: ... at least this many, ...
SPOT_MIN_COUNT = 10
#: ... and the network's localizations within the spot's window carry this share of the spots' light or less (the
#: lower median): exactly half is a loss (a network that finds them gave in-range spots 66-68 %), and so is half of
#: the spots lost (the midpoint of a lost and a found spot's shares read about 0.5, "ok" by chance)
SPOT_MIN_SHARE = 0.5
#: not judged where more than this share of the spots are wider than one emitter (the PSF check's far fraction): in
#: crowded frames most bright spots are several emitters, and a network trained sparser misses some of them (the
#: demo model gave in-range spots at 5 emitters/um^2 43 % of their photons, its far fraction 0.75)
SPOT_MAX_FAR = 0.5
#: spot-shape finding: warn where more than this share of the bright isolated rows' spots have widths the model's PSF
#: has at no z of its training range (beyond the model's own far share, ~0). bench/psfwidth43.py, 0.1-1 emitters/um^2:
#: in-range movies gave at most 1.3 % with the truth's rows and 3.0 % with a small 3D network's own rows (1 /um^2);
#: 20 % of the emitters 200-500 nm beyond the astigmatic model's +-500 nm at least 8.1 % (truth's rows) and 2.4-6.9 %
#: (the network's), a 1.2x wider PSF at least 6.1 %
SHAPE_FAR_SHARE = 0.04
#: ... and at least this many such spots ...
SHAPE_MIN_FAR = 8
#: ... of at least this many spots measured (fewer: reported, not judged)
SHAPE_MIN_SPOTS = 30
#: a row counts as isolated with no other row of its frame within this many of the PSF check's windows (its side R):
#: a neighbour 4 px away widened in-range spots as defocus does (far 21 % at 1 emitter/um^2 with 4 px, 0.4 % with 8 px)
SHAPE_ISOLATION = 0.75
#: ... nor, in the movie's own frames, a peak (the PSF-shape check's detection) above this many times the frame's noise
#: other than its own: a network that misses emitters (a short training) shows no row for a neighbour whose light is in
#: the window (a 200-step dual-colour network found 6 % of the emitters, and 12 % of channel 0's spots read far)
SHAPE_PEAK_SNR = 4.0
#: ... a peak within this many pixels of the row's position is the row's own
SHAPE_OWN_PX = 2.0
#: a spot tilted against the pixel axes beyond this many units of the tilt's scatter more than the model's PSF is at
#: the curve's nearest point (:func:`plexloc.psf.check.spot_tilt`) is two emitters read as one and left out: a short
#: training's network gives one row for two emitters 2-3 px apart, which no peak tells apart either, and their spot
#: reads wider than any z of the range (a 200-step one-channel network: 6-8 % of in-range spots far, most of them such
#: pairs, 15 of 22 tilted beyond 5 units)
SHAPE_MAX_TILT = 3.0
#: ... the tilt's tolerance added to that scatter (rho, in quadrature): very bright spots are not held to a tilt of 0
SHAPE_TILT_FLOOR = 0.03
#: spots fitted at most (run time: the first ones in frame order)
SHAPE_MAX_SPOTS = 1000
#: a spot counts only where its widths are measured to this relative error or better (the estimator's scatter, alpha x
#: the Cramer-Rao bound, over the width, both axes): dim spots on a bright background (the 2D model's 500-1000 photons
#: on 84-100 photons/px: 14 % width scatter) cannot tell a 1.3x wider PSF, and their noise alone read 2.1-2.5 % far
SHAPE_MAX_REL_ERROR = 0.12


class DomainWarning(UserWarning):
    """The movie's photons or background lie outside the model's training ranges."""


@dataclass
class DomainCheck:
    """One quantity: its column, the training range and what the localizations show."""

    column: str
    kind: str  # "photons", "bg", "noise" (train_lo/hi: the accepted ratio range; q05 = median = q95: the ratio),
    # "spots" (the PSF check's bright spots: q05 / median / q95 of their photons; fraction_above: their share above
    # SPOT_OVER x train_hi; note: the share of those spots' light the network's localizations give) or "shape"
    # (spot_shape_checks: train_lo/hi the range of the PSF's width sqrt(sigma_x sigma_y) over the training z range, nm;
    # q05 / median / q95 the spots'; fraction_above: the share of spots whose widths the PSF has at no z of that range)
    train_lo: float
    train_hi: float
    q05: float
    median: float
    q95: float
    fraction_above: float  # share above photon_over * train_hi (photons) or bg_over * train_hi (bg)
    warning: str | None = None
    note: str = ""  # why a noise ratio was not measured (NaN)


@dataclass
class DomainReport:
    n: int
    checks: list[DomainCheck] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [c.warning for c in self.checks if c.warning]

    def format_table(self) -> str:
        lines = ["training domain: | column | training range | data 5% / median / 95% | above range | verdict |"]
        for c in self.checks:
            verdict = "OUTSIDE" if c.warning else "ok"
            if c.kind == "noise":
                got = f"{c.median:.3g}" if np.isfinite(c.median) else f"not measured: {c.note}"
                lines.append(f"| {c.column} (measured / predicted variance) | {c.train_lo:.3g}-{c.train_hi:.3g} | "
                             f"{got} | - | {verdict if np.isfinite(c.median) else '-'} |")
                continue
            above = f"{100 * c.fraction_above:.1f} %" if np.isfinite(c.fraction_above) else "-"
            if c.kind == "shape":
                lines.append(f"| {c.column} (width, nm) | PSF {c.train_lo:.4g}-{c.train_hi:.4g} | {c.q05:.4g} / "
                             f"{c.median:.4g} / {c.q95:.4g} | {above} outside the PSF's range"
                             f"{f' ({c.note})' if c.note else ''} | {verdict if np.isfinite(c.fraction_above) else '-'} |")
                continue
            if c.kind == "spots":
                above += f" ({c.note})" if c.note else ""
            lines.append(
                f"| {c.column} | {c.train_lo:.4g}-{c.train_hi:.4g} | {c.q05:.4g} / {c.median:.4g} / {c.q95:.4g} "
                f"| {above} | {verdict} |"
            )
        return "\n".join(lines)


def training_ranges(config: TrainConfig) -> dict[str, tuple[str, float, float]]:
    """``{column: (kind, lo, hi)}``: the ranges the training simulation draws photons and background from,
    keyed by the output table's column (``photons`` or ``photons_ch{c}``; ``bg`` or ``bg_ch{c}``)."""
    from plexloc.train.trainer import training_simulation

    sim = training_simulation(config)
    out: dict[str, tuple[str, float, float]] = {}
    pm = sim.photon_model
    if pm.kind == "independent" and sim.n_channels > 1:
        ranges = pm.channel_photons_range or [sim.emitters.photons_range] * sim.n_channels
        for c, (lo, hi) in enumerate(ranges):
            out[f"photons_ch{c}"] = ("photons", float(lo), float(hi))
    else:  # the table's photons are the total over the channels: flux times the summed throughputs (linked)
        lo, hi = sim.emitters.photons_range
        total = sum(float(ch.throughput) for ch in sim.channels) if pm.kind == "linked" or sim.n_channels == 1 else 1.0
        out["photons"] = ("photons", float(lo) * total, float(hi) * total)
    for c, ch in enumerate(sim.channels):
        bg = ch.background if ch.background is not None else sim.background
        v = bg.variation
        col = "bg" if sim.n_channels == 1 else f"bg_ch{c}"
        out[col] = ("bg", float(bg.range[0]) * (1.0 - v), float(bg.range[1]) * (1.0 + v))
    return out


def emitter_light(config: TrainConfig) -> dict[str, tuple[float, float, float]]:
    """``{bg column: (light, density, photons)}``: the most light the training simulation's emitters add to a channel's
    mean pixel, ``light = density * photons * pixel area`` (photons/px) at its highest density (per µm², the larger of
    ``emitters.density_per_um2`` and ``training.density_range_per_um2``'s top) and the most photons a channel receives
    from one emitter (``independent``: the channel's own range; else the emitters' maximum times the channel's
    throughput). An upper bound: emitters on for part of a frame, or dimmer than the maximum, add less."""
    from plexloc.train.trainer import training_simulation

    sim = training_simulation(config)
    dens = float(sim.emitters.density_per_um2)
    top = config.training.density_range_per_um2
    if top is not None:
        dens = max(dens, float(top[1]))
    px_x, px_y = sim.px_size_xy_nm
    area_um2 = px_x * px_y * 1e-6
    pm = sim.photon_model
    out: dict[str, tuple[float, float, float]] = {}
    for c, ch in enumerate(sim.channels):
        if pm.kind == "independent" and sim.n_channels > 1:
            ranges = pm.channel_photons_range or [sim.emitters.photons_range] * sim.n_channels
            photons = float(ranges[c][1])
        else:
            photons = float(sim.emitters.photons_range[1]) * float(ch.throughput)
        out["bg" if sim.n_channels == 1 else f"bg_ch{c}"] = (dens * photons * area_um2, dens, photons)
    return out


def _background_field(config: TrainConfig, column: str) -> str:
    """The configuration field that sets a bg column's training range: the channel's own background, or the top
    level's."""
    if column.startswith("bg_ch"):
        c = int(column[len("bg_ch"):])
        if c < len(config.channels) and getattr(config.channels[c], "background", None) is not None:
            return f"channels[{c}].background.range"
    return "background.range"


def check_training_domain(
    table: LocTable,
    config: TrainConfig,
    *,
    photon_over: float = PHOTON_OVER,
    photon_max_fraction: float = PHOTON_MAX_FRACTION,
    bg_over: float = BG_OVER,
    min_localizations: int = 50,
    noise: list[float] | None = None,
    noise_range: tuple[float, float] = NOISE_RANGE,
    movie_bg: list[float] | None = None,
    warn: bool = True,
    noise_notes: list[str] | None = None,
    psf_shape: list | None = None,
    head_table: LocTable | None = None,
    roi_offset_px: tuple[int, int] = (0, 0),
    cameras: Sequence | None = None,
    movie_dtype: Any = None,
    frames: Sequence | None = None,
) -> DomainReport:
    """Compare a fitted table's photon and background estimates with the model's training ranges.

    Fires (a :class:`DomainWarning` when ``warn``, and in the report) where more than ``photon_max_fraction``
    of the localizations have photons above ``photon_over`` x the training maximum, or where a channel's median
    background lies outside ``[lo / bg_over, hi * bg_over]``. Tables with fewer than ``min_localizations`` rows
    are reported but never warned about (too few to tell). ``noise``: each channel's :func:`noise_ratio`, warned
    about outside ``noise_range``; a NaN ratio with its ``noise_notes`` entry (why it was not measured) is a row of
    the report without a verdict. ``movie_bg``: each channel's mean pixel of the movie's first frames (photons),
    read off the movie itself: a briefly trained network holds its own background estimate nearly constant, so the
    table's ``bg`` alone can miss a movie outside training. The mean, not the median: an EMCCD's pixel median sits
    far below its background at a few photons/px (0.33 at 1 photon/px). A mean below the training range (divided
    by ``bg_over``) is warned about, where the table's ``bg`` did not already warn (emitters only add light, so the
    background is lower still); and a mean above the training's highest background plus the light its densest,
    brightest emitters add (:func:`emitter_light`), times ``bg_over``: no training frame was that bright, so the
    background (or the emitters' density or brightness) lies above training, which degrades the network as a
    background below it does. Movies inside training, their emitters included, stay below that.

    For a multi-channel model whose per-channel photons or backgrounds are outside training, the same checks are
    tried with two channels exchanged: where that order fits, the warning says so (movies given in the wrong order,
    or split-view boxes swapped).

    ``psf_shape`` and ``head_table``: the PSF-shape check's reports and the network's (unfiltered) rows of the frames
    it looked at, for :func:`bright_spot_checks` (emitters so bright that the network lost them); ``roi_offset_px``:
    the chip pixel (x, y) of the reference image's corner, where a multi-channel model's transforms act.

    ``cameras`` (the :class:`~plexloc.camera.models.Camera` s the movie was converted with, one per channel) and
    ``movie_dtype`` (the movie's pixel type) sharpen two findings: a noise ratio below the accepted range reads
    the same for a gain off by 1/r and for a baseline set too low (a baseline forgotten: photons about right, the
    background too high), and the warning then gives the baseline that would fit, in ADU; a movie whose mean
    pixel is below the camera's baseline (negative photons) is named as frames that are not the camera's raw
    counts (photons or baseline-subtracted, e.g. a float32 export, or rescaled to 8 bits).

    ``frames``: the movie's first frames in photons, one ``(T, H, W)`` tensor per channel (any device), with
    ``psf_shape`` and ``head_table`` (rows of at least those frames): :func:`spot_shape_checks`, the widths of the
    bright isolated rows' spots against the model's PSF over its training z range (emitters beyond that range, a
    wrong PSF or pixel size)."""
    report = _domain_checks(table, config, photon_over=photon_over, photon_max_fraction=photon_max_fraction,
                            bg_over=bg_over, min_localizations=min_localizations, noise=noise, noise_range=noise_range,
                            movie_bg=movie_bg, noise_notes=noise_notes, cameras=cameras, movie_dtype=movie_dtype)
    report.checks.extend(bright_spot_checks(psf_shape, head_table, config, roi_offset_px=roi_offset_px))
    report.checks.extend(spot_shape_checks(psf_shape, head_table, frames, config, roi_offset_px=roi_offset_px))
    channel_cols = [c for c in report.checks if c.warning and c.kind in ("photons", "bg") and "_ch" in c.column]
    if channel_cols:
        hint = _swap_hint(table, config, movie_bg, photon_over=photon_over,
                          photon_max_fraction=photon_max_fraction, bg_over=bg_over, min_localizations=min_localizations)
        if hint:
            channel_cols[0].warning += ". " + hint
    if warn:
        for w in report.warnings:
            warnings.warn(w, DomainWarning, stacklevel=2)
    return report


def _swap_hint(table: LocTable, config: TrainConfig, movie_bg, **options) -> str | None:
    """Which exchange of two channels makes every per-channel photon and background check pass, said in words;
    None where none does."""
    n = len(config.channels)
    for a in range(n):
        for b in range(a + 1, n):
            swap = {}
            for stem in ("photons_ch", "sigma_photons_ch", "bg_ch"):
                if f"{stem}{a}" in table.columns and f"{stem}{b}" in table.columns:
                    swap[f"{stem}{a}"], swap[f"{stem}{b}"] = table[f"{stem}{b}"], table[f"{stem}{a}"]
            bg = None
            if movie_bg is not None:
                bg = list(movie_bg)
                bg[a], bg[b] = bg[b], bg[a]
            if not swap and bg is None:
                continue
            other = _domain_checks(table.with_columns(**swap) if swap and len(table) else table, config,
                                   movie_bg=bg, **options)
            if not any(c.warning for c in other.checks if c.kind in ("photons", "bg")):
                return (f"with channels {a} and {b} exchanged the photons and backgrounds fit the training: were the "
                        f"channel movies given to plexloc fit in the wrong order, or are the split_view boxes swapped?")
    return None


def _domain_checks(
    table: LocTable,
    config: TrainConfig,
    *,
    photon_over: float,
    photon_max_fraction: float,
    bg_over: float,
    min_localizations: int,
    noise: list[float] | None = None,
    noise_range: tuple[float, float] = NOISE_RANGE,
    movie_bg: list[float] | None = None,
    noise_notes: list[str] | None = None,
    cameras: Sequence | None = None,
    movie_dtype: Any = None,
) -> DomainReport:
    """:func:`check_training_domain`'s checks, without warnings or the channel-order hint."""
    report = DomainReport(n=len(table))
    for c, r in enumerate(noise or []):
        col = "noise" if len(noise) == 1 else f"noise_ch{c}"
        if not np.isfinite(r):
            note = noise_notes[c] if noise_notes and c < len(noise_notes) else ""
            if note:  # said in the report: the check could not tell (too crowded, too dim)
                report.checks.append(DomainCheck(col, "noise", noise_range[0], noise_range[1], r, r, r, math.nan,
                                                 note=note))
            continue
        chk = DomainCheck(col, "noise", noise_range[0], noise_range[1], r, r, r, math.nan)
        if r <= 0.0:  # no difference at all between the frames (1/r divided by zero after a whole fit)
            chk.warning = (
                f"{col}: the movie's first frames show no pixel noise between frames (most pixels change by the "
                "same amount from one frame to the next): the frames are constant, clipped at the pixel type's "
                "maximum, or too small (a pixel or two) to measure the noise, so the camera's gain and e-/ADU cannot "
                "be checked against the movie"
            )
        elif not noise_range[0] <= r <= noise_range[1]:
            chk.warning = (
                f"{col}: the pixel noise between frames is {r:.2f}x what the camera settings predict for that signal "
                f"(accepted {noise_range[0]:g}-{noise_range[1]:g}); photons come out about {max(r, 1 / r):.2g}x too "
                f"{'many' if r > 1 else 'few'}: check the camera's gain and e-/ADU (and baseline) against the movie"
            )
            if r < noise_range[0]:
                hint = _baseline_hint(r, movie_bg[c] if movie_bg and c < len(movie_bg) else None,
                                      cameras[c] if cameras and c < len(cameras) else None)
                if hint:
                    chk.warning += hint
        report.checks.append(chk)
    from plexloc.train.trainer import PHOTON_SCALE_OVER_MAX  # (not at module import: train imports much)

    ranges = training_ranges(config)
    if len(table) == 0:
        _movie_background(report, ranges, movie_bg, bg_over, movie_dtype, config)
        return report
    for column, (kind, lo, hi) in ranges.items():
        if column not in table.columns:
            continue
        v = np.asarray(table[column], dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        q05, med, q95 = (float(q) for q in np.quantile(v, [0.05, 0.5, 0.95]))
        over = photon_over if kind == "photons" else bg_over
        if column == "photons":  # the total: the head's ceiling is 1.2x the maximum, under 1.25x
            over = min(over, PHOTON_CEILING_SHARE * PHOTON_SCALE_OVER_MAX)
        above = float(np.mean(v > over * hi))
        chk = DomainCheck(column, kind, lo, hi, q05, med, q95, above)
        if v.size >= min_localizations:
            if kind == "photons" and above > photon_max_fraction:
                chk.warning = (
                    f"{column}: {100 * above:.0f} % of the localizations have more than {over:.3g}x the "
                    f"{hi:.4g} photons the model trained on (median {med:.4g}, 95th percentile {q95:.4g}); brighter "
                    "emitters than in training give biased photons, and for a multi-colour model wrong colours. "
                    "Check the camera settings (gain, e-/ADU, baseline), or train a model whose photon range covers the data"
                )
            elif kind == "bg" and not (lo / bg_over <= med <= hi * bg_over):
                chk.warning = (
                    f"{column}: median background {med:.4g} photons/px, outside the model's training range "
                    f"{lo:.4g}-{hi:.4g}; check the camera settings (gain, e-/ADU, baseline), or train with a "
                    "background range that covers the data"
                )
        report.checks.append(chk)
    _movie_background(report, ranges, movie_bg, bg_over, movie_dtype, config)
    return report


def bright_spot_checks(
    psf_shape: list | None,
    table: LocTable | None,
    config: TrainConfig,
    *,
    over: float = SPOT_OVER,
    max_fraction: float = SPOT_MAX_FRACTION,
    min_count: int = SPOT_MIN_COUNT,
    min_share: float = SPOT_MIN_SHARE,
    max_far: float = SPOT_MAX_FAR,
    roi_offset_px: tuple[int, int] = (0, 0),
) -> list[DomainCheck]:
    """The bright isolated spots of the movie's first frames against the training maximum and the network's table.

    ``psf_shape``: the :class:`~plexloc.psf.check.PSFShapeReport` s of the movie, one per channel (spots with their
    photons, frame and pixel in that channel's image); ``table``: the network's localizations of at least the frames the
    reports looked at (before any filter), in the reference frame's coordinates. For each spot the photons of the table's
    rows in the same frame within half the spot's fitting window of its centre are summed: their share of the spot's own
    photons is near 1 where the network found it (two emitters of a crowded spot both count) and near 0 where it
    lost it. Only spots whose widths fit one emitter count, and none where more than ``max_far`` of them do not (crowded
    frames). One :class:`DomainCheck` (column ``photons (bright spots)``, kind ``spots``), warned as the module says;
    none without spots.

    A multi-channel model gets one check per channel (column ``photons_ch{c} (bright spots)``), each judged alone with
    the same thresholds: channel c's spots against channel c's training maximum (``linked``: the total's maximum times
    the channel's share of the throughputs, as the simulator splits an emitter's photons; ``independent``: the channel's
    own range, :func:`training_ranges`), and the table's photons in channel c (``linked``: ``photons`` times that share;
    ``independent``: ``photons_ch{c}``; a table without it is not judged) of the rows whose reference position, mapped
    into channel c's image as the simulator and the fit map it (the channel's chip transform at ``roi_offset_px``, the
    chip pixel (x, y) of the reference image's corner), lies within half the spot's window. A one-channel configuration
    given several reports gets none; a multi-channel one given another number of reports than it has channels is an
    :class:`~plexloc.errors.InputError`."""
    if not psf_shape or table is None:
        return []
    n_ch = len(config.channels)
    if n_ch == 1 and len(psf_shape) != 1:
        return []
    if n_ch > 1 and len(psf_shape) != n_ch:
        from plexloc.errors import InputError

        raise InputError(f"psf_shape has {len(psf_shape)} report(s) for a {n_ch}-channel model: give one per channel")
    ranges = training_ranges(config)
    if n_ch == 1 and ("photons" not in ranges or not psf_shape[0].n_spots or not len(psf_shape[0].photons_corrected)):
        return []
    frame = np.asarray(table["frame"], dtype=np.int64)
    order = np.argsort(frame, kind="stable")
    frame = frame[order]
    x_nm = np.asarray(table["x_nm"], dtype=np.float64)[order]
    y_nm = np.asarray(table["y_nm"], dtype=np.float64)[order]
    if n_ch == 1:
        r = psf_shape[0]
        _, lo, hi = ranges["photons"]
        p = np.nan_to_num(np.asarray(table["photons"], dtype=np.float64)[order], nan=0.0)
        px_x, px_y = r.px_size_nm
        chk, bright, ph, frac, share = _spot_check(r, "photons (bright spots)", lo, hi, frame, x_nm / px_x, y_nm / px_y,
                                                   p, over=over, max_far=max_far)
        if _lost(share, bright, frac, min_count=min_count, max_fraction=max_fraction, min_share=min_share):
            chk.warning = _bright_warning(
                "photons", r, bright, ph, frac, share, over, hi, where="the movie's", trained_on="", theirs="their",
                camera="the camera settings", hint=f"photons_range up to about {float(np.quantile(ph, 0.95)):.3g}")
        return [chk]
    import torch

    from plexloc.simulation.geometry import apply_transform, transform_at_roi

    thr = np.array([float(ch.throughput) for ch in config.channels])
    checks = []
    for c, r in enumerate(psf_shape):
        column = f"photons_ch{c}"
        if "photons" in ranges:  # linked: one total, split by the throughputs
            share_c = float(thr[c] / thr.sum())
            _, lo, hi = ranges["photons"]
            lo, hi = lo * share_c, hi * share_c
            p = np.asarray(table["photons"], dtype=np.float64)[order] * share_c
        elif column in ranges:  # independent: the channel's own
            _, lo, hi = ranges[column]
            p = np.asarray(table[column], dtype=np.float64)[order] if column in table.columns else None
        else:
            continue
        if not r.n_spots or not len(r.photons_corrected):
            continue
        if p is None:
            ph = np.asarray(r.photons_corrected, dtype=np.float64)
            q05, med, q95 = (float(q) for q in np.quantile(ph, [0.05, 0.5, 0.95]))
            checks.append(DomainCheck(f"{column} (bright spots)", "spots", lo, hi, q05, med, q95, math.nan,
                                      note=f"not judged: the table has no {column}"))
            continue
        # the rows' reference positions in channel c's image, as the simulator renders them (r_c = T_c(r + o) - o)
        T = transform_at_roi(np.asarray(config.channels[c].transform, dtype=np.float64), roi_offset_px,
                             config.px_size_xy_nm)
        xc, yc = (v.numpy() for v in apply_transform(T, torch.from_numpy(x_nm), torch.from_numpy(y_nm)))
        px_x, px_y = r.px_size_nm
        chk, bright, ph, frac, share = _spot_check(r, f"{column} (bright spots)", lo, hi, frame, xc / px_x, yc / px_y,
                                                   np.nan_to_num(p, nan=0.0), over=over, max_far=max_far)
        if _lost(share, bright, frac, min_count=min_count, max_fraction=max_fraction, min_share=min_share):
            chk.warning = _bright_warning(
                column, r, bright, ph, frac, share, over, hi, where=f"channel {c}'s", trained_on=f" in channel {c}",
                theirs=f"their channel-{c}", camera=f"channel {c}'s camera settings",
                hint=_range_hint(config, c, float(np.quantile(ph, 0.95))))
        checks.append(chk)
    return checks


def spot_shape_checks(
    psf_shape: list | None,
    table: LocTable | None,
    frames: Sequence | None,
    config: TrainConfig,
    *,
    far_share: float = SHAPE_FAR_SHARE,
    min_far: int = SHAPE_MIN_FAR,
    min_spots: int = SHAPE_MIN_SPOTS,
    isolation: float = SHAPE_ISOLATION,
    max_spots: int = SHAPE_MAX_SPOTS,
    max_rel_error: float = SHAPE_MAX_REL_ERROR,
    min_photons: float | None = None,
    peak_snr: float | None = SHAPE_PEAK_SNR,
    own_px: float = SHAPE_OWN_PX,
    max_tilt: float | None = SHAPE_MAX_TILT,
    roi_offset_px: tuple[int, int] = (0, 0),
) -> list[DomainCheck]:
    """The widths of the movie's bright isolated spots against those the model's PSF has over its training z range.

    ``psf_shape``: the :class:`~plexloc.psf.check.PSFShapeReport` s of the movie, one per channel: their curve of the
    model's PSF (``model_sigma_x_nm``, ``model_sigma_y_nm`` over the training z range, less the channel's z offset, as
    the check's estimator reads noiseless spots on its ``window_px`` window) and the estimator's scatter (``alpha``);
    ``table``: the network's rows (reference-channel nm) of at least the first frames; ``frames``: those frames in
    photons, one ``(T, H, W)`` tensor per channel, on any device (the windows are gathered there and fitted on the
    CPU).

    Spots: the rows of frames ``< T`` with ``photons`` of at least ``min_photons`` (default the training range's low
    end for the channel; all rows where the table has no photons for it) and no other row of their frame within
    ``isolation`` times the window's side (neighbours' light widens a spot as defocus does), whose window lies inside
    the frame, and (``peak_snr``, None: not looked for) no peak of the channel's frames within that distance other than
    their own (within ``own_px``), peaks of :func:`~plexloc.psf.check.frame_peaks` above ``peak_snr`` times the frame's
    noise: a network that misses emitters shows no row for a neighbour whose light is in the window; the first
    ``max_spots``. Each window (centred on the row's pixel in channel c's image, mapped by the
    channel's chip transform at ``roi_offset_px`` as :func:`bright_spot_checks` maps it) is fitted with
    :func:`~plexloc.psf.check.fit_elliptical_gaussian`; a spot whose widths lie more than
    :data:`~plexloc.psf.check.FAR_DISTANCE` scatter units from every point of the curve (the PSF-shape check's
    distance) is one the PSF has at no z of its range. Only spots whose widths are measured to ``max_rel_error`` or
    better count (the estimator's scatter, ``alpha`` times the Cramér-Rao bound, over the width, on both axes): dim spots
    on a bright background cannot tell. Spots tilted against the pixel axes (:func:`~plexloc.psf.check.spot_tilt`) more
    than the model's PSF at the curve's nearest point, by ``max_tilt`` units of the tilt's scatter (None: kept), are two
    emitters read as one and left out (the note counts them). More than ``far_share`` of them (beyond the far share of the
    model's own noisy spots) and at least ``min_far`` is a warning; fewer than ``min_spots`` spots are reported, not
    judged. One :class:`DomainCheck` per channel (column ``spot shape``, ``spot shape ch{c}``; kind ``shape``), none
    without frames, rows or reports, and none for a channel without a bright isolated row to measure."""
    if not psf_shape or table is None or frames is None or not len(table):
        return []
    n_ch = len(config.channels)
    if len(psf_shape) != n_ch or len(frames) != n_ch:
        raise InputError(f"spot shape check: {len(psf_shape)} PSF-shape report(s) and {len(frames)} frame stack(s) for "
                         f"a {n_ch}-channel model: give one of each per channel")
    import torch

    from plexloc.psf.check import FAR_DISTANCE, WIDTH_FLOOR, _distances, fit_elliptical_gaussian
    from plexloc.simulation.geometry import apply_transform, transform_at_roi

    ranges = training_ranges(config)
    thr = np.array([float(ch.throughput) for ch in config.channels])
    frame = np.asarray(table["frame"], dtype=np.int64)
    x_nm = np.asarray(table["x_nm"], dtype=np.float64)
    y_nm = np.asarray(table["y_nm"], dtype=np.float64)
    checks = []
    for c, (r, f) in enumerate(zip(psf_shape, frames)):
        f = f if isinstance(f, torch.Tensor) else torch.as_tensor(np.asarray(f))
        if f.ndim != 3:
            raise InputError(f"spot shape check: channel {c}'s frames must be (T, H, W), got {tuple(f.shape)}")
        if not len(r.model_sigma_x_nm):  # no curve of the model's PSF to compare with: no finding (the fit stands)
            continue
        column = "spot shape" if n_ch == 1 else f"spot shape ch{c}"
        # the rows' positions in channel c's image (as the simulator renders them) and their photons there
        if n_ch > 1:
            T = transform_at_roi(np.asarray(config.channels[c].transform, dtype=np.float64), roi_offset_px,
                                 config.px_size_xy_nm)
            xc, yc = (v.numpy() for v in apply_transform(T, torch.from_numpy(x_nm), torch.from_numpy(y_nm)))
        else:
            xc, yc = x_nm, y_nm
        p, lo = None, 0.0
        if "photons" in ranges and "photons" in table.columns:  # one total (linked: split by the throughputs)
            share_c = float(thr[c] / thr.sum()) if n_ch > 1 else 1.0
            p, lo = np.asarray(table["photons"], dtype=np.float64) * share_c, ranges["photons"][1] * share_c
        elif f"photons_ch{c}" in ranges and f"photons_ch{c}" in table.columns:
            p, lo = np.asarray(table[f"photons_ch{c}"], dtype=np.float64), ranges[f"photons_ch{c}"][1]
        floor = lo if min_photons is None else float(min_photons)
        px_x, px_y = r.px_size_nm
        R = int(r.window_px)
        h = R // 2
        n_t, H, W = (int(v) for v in f.shape)
        col = np.floor(xc / px_x)
        row = np.floor(yc / px_y)
        ok = (frame >= 0) & (frame < n_t) & np.isfinite(col) & np.isfinite(row)
        idx = np.nonzero(ok)[0]
        idx = idx[np.argsort(frame[idx], kind="stable")]
        fr, xs, ys = frame[idx], xc[idx] / px_x, yc[idx] / px_y
        # the nearest other row of the same frame (all rows: a dim neighbour widens a spot too)
        near = np.full(len(idx), np.inf)
        if len(idx) > 1:
            from scipy.spatial import cKDTree

            pts = np.stack([fr * (10.0 * (H + W + isolation * R)), xs, ys], axis=1)
            dist, _ = cKDTree(pts).query(pts, k=2)
            near = dist[:, 1]
        keep = near > isolation * R
        keep &= (col[idx] >= h) & (col[idx] < W - h) & (row[idx] >= h) & (row[idx] < H - h)
        if p is not None:
            keep &= np.nan_to_num(p[idx], nan=-np.inf) >= floor
        curve_x, curve_y = np.asarray(r.model_sigma_x_nm) / px_x, np.asarray(r.model_sigma_y_nm) / px_y
        if peak_snr is not None and keep.any():
            keep[keep] = _no_peak_near(f, fr[keep], xs[keep], ys[keep], radius=isolation * R, own_px=own_px,
                                       snr=peak_snr, sigma_det_px=float(np.median(np.sqrt(curve_x * curve_y))))
        sel = idx[keep][:max_spots]
        if not len(sel):  # no spot to measure: nothing to say (as the bright-spot check, none without spots)
            continue
        width = np.sqrt(curve_x * px_x * curve_y * px_y)
        chk = DomainCheck(column, "shape", float(width.min()), float(width.max()), math.nan, math.nan, math.nan,
                          math.nan)
        checks.append(chk)
        dev = f.device
        off = torch.arange(-h, h + 1, device=dev)
        t_ix = torch.as_tensor(frame[sel], device=dev)[:, None, None]
        r_ix = torch.as_tensor(row[sel].astype(np.int64), device=dev)[:, None, None] + off[None, :, None]
        c_ix = torch.as_tensor(col[sel].astype(np.int64), device=dev)[:, None, None] + off[None, None, :]
        win = torch.nan_to_num(f[t_ix, r_ix, c_ix].to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0).cpu()
        fit = fit_elliptical_gaussian(win, sigma0_px=float(np.median(np.sqrt(curve_x * curve_y))))
        # converged, and widths measured precisely enough to tell (the estimator's scatter over the width, both axes)
        use = fit.ok.copy()
        n_fit = int(use.sum())
        use &= ((r.alpha[0] * fit.crlb_sx <= max_rel_error * fit.sx)
                & (r.alpha[1] * fit.crlb_sy <= max_rel_error * fit.sy))
        fit, win = fit.select(use), win[torch.from_numpy(use)]
        tilted = ""
        if max_tilt is not None and len(fit.sx):  # two emitters read as one: tilted unlike the PSF at any z
            straight = _straight(win, fit, r, curve_x, curve_y, max_tilt)
            if not straight.all():
                tilted = f", {int((~straight).sum())} tilted ones left out (two emitters)"
            fit = fit.select(straight)
        n = len(fit.sx)
        if n:
            w = np.sqrt(fit.sx * px_x * fit.sy * px_y)
            chk.q05, chk.median, chk.q95 = (float(q) for q in np.quantile(w, [0.05, 0.5, 0.95]))
        if n < min_spots:
            chk.note = (f"not judged: {n} of {n_fit} bright isolated spots measured to {100 * max_rel_error:.0f} % "
                        f"of their width or better{tilted} (at least {min_spots} needed)")
            continue
        d, k = _distances(fit.sx, fit.sy, fit.crlb_sx, fit.crlb_sy, curve_x, curve_y, r.alpha, WIDTH_FLOOR)
        far = d > FAR_DISTANCE
        share = float(np.mean(far))
        chk.fraction_above = share
        base = float(r.model_far_fraction) if np.isfinite(r.model_far_fraction) else 0.0
        chk.note = f"{n} spots{tilted}; the model's own spots {100 * base:.1f} %"
        if int(far.sum()) >= min_far and share > far_share + base:
            chk.warning = _shape_warning(column, r, config, c, fit, far, k, share, base, n_t, isolation * R,
                                         far_share)
    return checks


def _straight(win, fit, r, curve_x: np.ndarray, curve_y: np.ndarray, max_tilt: float) -> np.ndarray:
    """Which fitted spots (``fit`` of windows ``win``) are tilted against the pixel axes no more than the model's PSF at
    the curve's nearest point (report ``r``'s ``model_tilt``; 0 where not measured): within ``max_tilt`` units of the
    tilt estimate's scatter (``alpha_tilt`` times its Cramér-Rao bound, with ``SHAPE_TILT_FLOOR`` added)."""
    from plexloc.psf.check import WIDTH_FLOOR, _distances, spot_tilt

    rho, crlb = spot_tilt(win, fit)
    _, k = _distances(fit.sx, fit.sy, fit.crlb_sx, fit.crlb_sy, curve_x, curve_y, r.alpha, WIDTH_FLOOR)
    tilt = np.asarray(getattr(r, "model_tilt", np.zeros(0)), dtype=np.float64)
    ref = tilt[k] if len(tilt) == len(curve_x) else 0.0
    d = np.abs(rho - ref) / np.sqrt((float(getattr(r, "alpha_tilt", 1.0)) * crlb) ** 2 + SHAPE_TILT_FLOOR**2)
    return np.isfinite(d) & (d <= max_tilt)


def _no_peak_near(frames, frame: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, radius: float, own_px: float,
                  snr: float, sigma_det_px: float) -> np.ndarray:
    """Which rows (``frame``, position ``xs, ys`` in px of ``frames``' image, pixel centres at ``j + 0.5``) have no peak
    of the movie's own frames within ``radius`` px other than their own (within ``own_px``): peaks of the PSF-shape
    check's detection (:func:`~plexloc.psf.check.frame_peaks`, ``snr`` times the frame's noise, the detection width
    clipped to 0.8-2.5 px as that check clips it), on the frames those rows sit in."""
    import torch
    from scipy.spatial import cKDTree

    from plexloc.psf.check import frame_peaks

    used = np.unique(frame)
    cand, _ = frame_peaks(frames[torch.as_tensor(used, dtype=torch.long, device=frames.device)],
                          sigma_det_px=float(np.clip(sigma_det_px, 0.8, 2.5)), snr=snr)
    ok = np.ones(len(frame), bool)
    if not len(cand.frame):
        return ok
    gap = 10.0 * (sum(frames.shape[-2:]) + radius)  # frames kept apart
    pf = used[cand.frame].astype(np.float64)
    tree = cKDTree(np.stack([pf * gap, cand.col + 0.5, cand.row + 0.5], axis=1))
    pts = np.stack([frame.astype(np.float64) * gap, xs, ys], axis=1)
    for i, hits in enumerate(tree.query_ball_point(pts, r=radius)):
        if hits:
            d = np.hypot(cand.col[hits] + 0.5 - xs[i], cand.row[hits] + 0.5 - ys[i])
            ok[i] = not bool(np.any(d > own_px))
    return ok


def _shape_warning(column: str, r, config: TrainConfig, c: int, fit, far: np.ndarray, k: np.ndarray, share: float,
                   base: float, n_frames: int, iso_px: float, far_share: float) -> str:
    """The text of a spot-shape warning: what was measured against what the PSF allows, and what to do."""
    px_x, px_y = r.px_size_nm
    sx, sy = fit.sx[far] * px_x, fit.sy[far] * px_y
    (xl, xh), (yl, yh) = r.model_sigma_range_nm
    el, eh = r.model_ellipticity_range
    e = np.quantile(fit.sx / fit.sy, [0.05, 0.95])
    zlo, zhi = (float(v) for v in config.emitters.z_range_nm)
    is_3d = len(r.model_z_nm) > 1
    where = f"channel {c}'s" if len(config.channels) > 1 else "the movie's"
    head = (f"{column}: {int(far.sum())} of {len(far)} bright isolated spots of {where} first {n_frames} frames "
            f"({100 * share:.0f} %; rows with no other within {iso_px:.0f} px) have widths the model's {r.psf_kind} PSF "
            + (f"has at no z of its training range {zlo:g}..{zhi:g} nm" if is_3d else "does not have")
            + f" (those spots' median sigma_x {float(np.median(sx)):.0f} nm, sigma_y {float(np.median(sy)):.0f} nm; "
            f"the PSF's sigma_x {xl:.0f}-{xh:.0f} nm, sigma_y {yl:.0f}-{yh:.0f} nm, sigma_x/sigma_y "
            f"{el:.2f}-{eh:.2f}; all spots' sigma_x/sigma_y {e[0]:.2f}-{e[1]:.2f}, 5-95 %), against at most "
            f"{100 * (far_share + base):.0f} % that emitters inside the range give. ")
    if is_3d:
        at_end = float(np.mean((k[far] == 0) | (k[far] == len(r.model_z_nm) - 1)))
        return head + (
            f"{100 * at_end:.0f} % of them lie beyond the widths of the range's ends. Emitters beyond the training z "
            "range (a sample thicker than the range, the focus elsewhere) are not placed at the range's edge: the "
            "network folds them back inside it with a wrong z and says nothing; a PSF or pixel size that is not the "
            "movie's does the same to every spot. Train with an emitters.z_range_nm that covers the sample's depth, "
            "and check the PSF calibration (astigmatism, objective) and px_size_nm against this microscope and movie")
    return head + (
        "Emitters out of focus (a sample thicker than the depth of field, or the focus elsewhere) or a PSF or pixel "
        "size that is not the movie's give such spots, and the network places them silently. Check the PSF's width "
        "and px_size_nm against this microscope and movie, or fit with a 3D model trained over the sample's depth")


def _lost(share: float | None, bright: np.ndarray, frac: float, *, min_count: int, max_fraction: float,
          min_share: float) -> bool:
    """The warning's rule: enough too-bright spots, a large enough share of them, and the network gives them
    ``min_share`` of their light or less (half of it, at the default: half the light missing is a loss)."""
    return share is not None and int(bright.sum()) >= min_count and frac > max_fraction and share <= min_share


def _bright_warning(column: str, r, bright: np.ndarray, ph: np.ndarray, frac: float, share: float, over: float,
                    hi: float, *, where: str, trained_on: str, theirs: str, camera: str, hint: str) -> str:
    """The text of a bright-spot warning (one channel's, or the movie's for a one-channel model)."""
    return (
        f"{column}: {int(bright.sum())} of the {r.n_spots} bright isolated spots of {where} first {r.frames} "
        f"frames ({100 * frac:.0f} %) carry more than {over:g}x the {hi:.4g} photons the model trained on{trained_on} "
        f"(their median {float(np.median(ph[bright])):.4g}), and the network's localizations give them "
        f"{100 * share:.0f} % of {theirs} photons (median): emitters this bright are lost, or split into localizations "
        f"of in-range photons, which no check of the table can see. Check {camera} (gain, e-/ADU, baseline), or "
        f"train a model whose photon range covers the data ({hint})"
    )


def _spot_check(r, column: str, lo: float, hi: float, frame: np.ndarray, x_px: np.ndarray, y_px: np.ndarray,
                p: np.ndarray, *, over: float, max_far: float):
    """One channel's spots (report ``r``) against the training maximum ``hi``, and the photons ``p`` of the table's
    rows (sorted by ``frame``, positions ``x_px, y_px`` in that channel's pixels) near each too-bright one: the check
    without its warning, the too-bright mask, the spots' photons, their share above, and the network's median share of
    their photons (None: not judged, or none too bright)."""
    from plexloc.psf.check import FAR_DISTANCE

    ph = np.asarray(r.photons_corrected, dtype=np.float64)
    q05, med, q95 = (float(q) for q in np.quantile(ph, [0.05, 0.5, 0.95]))
    # spots shaped like one emitter (near the model's width curve); a wider spot is often two
    single = np.asarray(r.distance, dtype=np.float64) <= FAR_DISTANCE
    bright = (ph > over * hi) & single
    frac = float(np.mean(bright))
    chk = DomainCheck(column, "spots", lo, hi, q05, med, q95, frac)
    if np.isfinite(r.far_fraction) and r.far_fraction > max_far:
        # crowding, or (where the PSF-shape check warned) spots unlike the model's PSF: a 1.55x wider PSF at 0.5
        # emitters/um^2 read 98 % "wider than one emitter", which the note called crowded frames
        why = ("crowded frames: a bright spot is often several" if not getattr(r, "warning", None) else
               "crowded frames, where a bright spot is often several, or a PSF or pixel size unlike the model's: see "
               "the PSF-shape warning")
        chk.note = f"not judged: {100 * r.far_fraction:.0f} % of the spots are wider than one emitter ({why})"
        return chk, bright, ph, frac, None
    if not bright.any():
        return chk, bright, ph, frac, None
    # the table's photons near each too-bright spot: same frame, within half the fitting window of the spot's centre
    radius = r.window_px / 2
    r0, c0 = r.origin_px
    shares = []
    for (f, row, col), n in zip(np.asarray(r.spot_pixel)[bright], ph[bright]):
        a, b = np.searchsorted(frame, [f, f + 1])
        near = np.hypot(x_px[a:b] - (c0 + col + 0.5), y_px[a:b] - (r0 + row + 0.5)) <= radius
        shares.append(float(p[a:b][near].sum()) / max(float(n), 1e-9))
    # the lower median: with an even count, half the spots lost (share near 0) and half found no longer average to
    # about 0.5, on either side of the threshold by chance
    share = float(np.quantile(shares, 0.5, method="lower"))
    chk.note = f"the network gives them {100 * share:.0f} % of their photons"
    return chk, bright, ph, frac, share


def _range_hint(config: TrainConfig, c: int, photons: float) -> str:
    """What to train for channel ``c`` to see ``photons``, in the configuration's own fields."""
    pm = config.photon_model
    if pm.kind == "linked":
        t = float(config.channels[c].throughput)
        return f"emitters.photons_range up to about {photons / max(t, 1e-12):.3g}: channel {c} receives {t:g} of it"
    if pm.kind == "ratiometric":  # training widens each channel's dye range (train.trainer.training_simulation)
        top = max(row[c] for row in pm.ratios) * float(config.training.photon_range_widen)
        return (f"emitters.photons_range up to about {photons / max(top, 1e-12):.3g}: training gives channel {c} up to "
                f"{top:.3g} of it, the largest dye ratio times training.photon_range_widen")
    return f"photon_model.channel_photons_range[{c}] up to about {photons:.3g}"


def _baseline_hint(r: float, movie_bg: float | None, camera) -> str | None:
    """For a noise ratio ``r`` below the accepted range: the alternative reading, a baseline set too low by the
    signal that the camera settings predict and the noise does not show. The checked pixels hold about the movie's
    mean signal S (photons); their noise says S * r (shot noise dominating), so the settings add S * (1 - r)
    photons/px that are not there, which is this many ADU of baseline (the camera's own conversion). None where it
    cannot be said (no camera, no mean, or a baseline change that would have to exceed the mean's ADU)."""
    if movie_bg is None or camera is None or not np.isfinite(movie_bg) or movie_bg <= 0 or not 0 < r < 1:
        return None
    import torch

    shape = tuple(getattr(camera, "map_shape", None) or ())  # an sCMOS with per-pixel maps takes whole frames
    try:
        hi = float(camera.expected_adu(torch.full(shape, float(movie_bg))).double().mean())
        lo = float(camera.expected_adu(torch.full(shape, float(movie_bg) * r)).double().mean())
    except (RuntimeError, TypeError, ValueError, AttributeError, InputError):  # no conversion to ADU to be had
        return None
    delta = hi - lo
    base = getattr(camera, "baseline", None)
    base = float(base.float().mean()) if hasattr(base, "float") else (float(base) if base is not None else None)
    if not np.isfinite(delta) or delta <= 0:
        return None
    given = f" (camera.baseline {base:.4g} ADU; about {base + delta:.0f} would fit)" if base is not None else ""
    return (f". Or, with the gain right, the camera's baseline is about {delta:.0f} ADU too low{given}: a baseline "
            "left out or set to 0 reads as this noise ratio, with photons about right and the background too high")


def _movie_background(report: DomainReport, ranges: dict[str, tuple[str, float, float]], movie_bg: list[float] | None,
                      bg_over: float, movie_dtype: Any = None, config: TrainConfig | None = None) -> None:
    """Add a ``bg (movie)`` check per channel: the mean pixel of the movie's first frames against the lower end
    of the channel's training background range divided by ``bg_over``, and against its upper end plus the training
    emitters' light (:func:`emitter_light`, with ``config``) times ``bg_over``; warned only where the table's own
    ``bg`` check did not (see :func:`check_training_domain`)."""
    bg_cols = [col for col, (kind, _, _) in ranges.items() if kind == "bg"]
    warned = {c.column for c in report.checks if c.warning}
    light = emitter_light(config) if config is not None and movie_bg else {}
    for col, value in zip(bg_cols, movie_bg or []):
        if value is None or not np.isfinite(value):
            continue
        _, lo, hi = ranges[col]
        chk = DomainCheck(f"{col} (movie)", "bg", lo, hi, value, value, value, math.nan)
        if col in light and col not in warned:
            add, dens, photons = light[col]
            top = bg_over * (hi + add)
            if value > top:
                chk.warning = (
                    f"{col}: the movie's mean pixel is {value:.4g} photons/px, "
                    + (f"{value / hi:.3g}x " if hi > 0 else "above ") +
                    f"the model's highest training background (range {lo:.4g}-{hi:.4g}) and above {top:.4g}: "
                    f"{bg_over:g}x that background "
                    f"plus the light of the training's densest, brightest emitters ({add:.3g} photons/px: {dens:g} per "
                    f"um^2 of {photons:.4g} photons) (read off the movie's first frames, whatever the network "
                    "estimates). A background above training degrades the network as one below it does: check the "
                    f"camera settings (gain, e-/ADU, baseline), or train with {_background_field(config, col)} "
                    "reaching the movie's background (at most its mean pixel); emitters denser or brighter than "
                    "training (a dSTORM movie's first frames, before most dyes switch off) lift the mean too"
                )
        if col not in warned and value < lo / bg_over:
            chk.warning = (
                f"{col}: the movie's mean pixel is {value:.4g} photons/px, below the model's training background "
                f"{lo:.4g}-{hi:.4g} (read off the movie's first frames, whatever the network estimates); check the "
                "camera settings (gain, e-/ADU, baseline), or train with a background range that covers the data"
            )
            if value < 0:  # below the baseline: not raw counts (photons, baseline subtracted, 8-bit), or baseline too high
                kind = f"a {np.dtype(movie_dtype).name} movie" if movie_dtype is not None else "the movie"
                chk.warning += (
                    f". A mean below zero means the frames average less than the camera's baseline: {kind} whose "
                    "frames are not the camera's raw counts (already photons or baseline-subtracted, as a float32 "
                    "export is; rescaled to 8 bits), or a camera.baseline above the camera's real offset; fit the "
                    "raw ADU movie, or give the camera that wrote these values (--camera)"
                )
        report.checks.append(chk)
