"""Does a movie fit the camera settings that convert it to photons? The camera check every command that reads a
movie runs on its first frames (network and MLE fits, ``detect``, ``estimate-priors``; ``simulate`` on what it
writes).

Two findings, per channel (:func:`check_camera`):

- **noise** (:func:`noise_ratio`, a photon-transfer check that needs no model): the pixel noise between
  consecutive frames against what the camera settings predict for that signal, on the dimmer pixels (where no spot
  changed; frames too crowded for that are not measured, and the finding says so). Photons that a wrong gain or
  e-/ADU scales by k carry k times the predicted variance (EMCCD, sCMOS: shot noise dominated); a baseline set
  below the camera's offset adds photons that carry no noise (ratio < 1). Outside ``NOISE_RANGE`` it is a
  warning: with e_per_adu and em_gain swapped (45 and 300 of the SMLM Challenge EMCCD) the ratio is 43.6, with the
  baseline 100 ADU low 0.75 (at the range's edge: a smaller baseline error goes unseen), with the right camera 0.98
  (examples/2d_gaussian.yaml, 200 frames). The warning names the settings that would fit (:func:`_likely_values`):
  the e_per_adu / em_gain if the baseline is right, and the baseline the dimmer pixels' photon transfer gives if the
  gain is right (a baseline too high reads as a ratio above 1 too). Where the read noise is ``READ_NOISE_SHARE`` of
  the predicted pixel variance or more (an sCMOS at a photon or two per pixel) it is named first, with the ``read_sigma``
  that fits (a read noise in ADU written for e- at 0.46 e-/ADU: 1.6 e- fitted for 1.6), and the e_per_adu that
  fits is solved with the read noise held in e- (:func:`_gain_factor`). On an EMCCD below ``MIN_EMCCD_PHOTONS`` a ratio
  under ``MIN_DIM_EMCCD_RATIO`` is still told (an e_per_adu written as ADU/e-), with the e_per_adu that fits where the
  one written, read as ADU per e- or as photons per ADU, makes the noise fit (:func:`_e_per_adu_unit`). Frames without
  any noise between them (ratio 0: synthetic, not from a camera) are not told about.
- **baseline**: the pixels against the camera's baseline (:func:`dim_offset`): where half of the pixels' medians
  over the frames sit below it by more than their noise, the baseline is above the camera's offset (photons
  taken away, negative in dim pixels). An EMCCD's settings (offset 300 ADU) on an sCMOS movie at 100-150 ADU read a
  signal of 0 photons/px, where the noise is not measured, and the fit's photons came out 99.8 % low with no warning
  about the camera: it is a warning naming the baseline that fits (at most the dim pixels' level), and where the noise
  warning fires it names the baseline first (an sCMOS offset map 80 ADU high was advised as a read_sigma of 5.1 e-
  for 1.4 first).
- **saturation**: the share of pixels at the camera's clipping level (:func:`clip_level`): the camera's
  ``saturation_adu`` where it is set, else a level found in the first frames (:func:`find_clip_adu`: a 12-bit
  camera's 4095 written into a 16-bit file, or any value the pixels pile up at, as a full well clips a 16-bit movie
  at 1000 ADU), else the movie's integer maximum (65535 for uint16, 255 for uint8),
  which a camera or the simulator clips to. Above ``MAX_SATURATED_FRACTION`` (0.01 %) it is a warning: at e_per_adu
  1 2 % of the pixels clip, and bright emitters were fitted at 0.32x (network) and 0.55x (MLE) their photons. A
  level found in the movie is a warning at any share (it names the level and the setting). Float movies have no
  integer maximum and are not looked at for a level: only a set ``saturation_adu`` applies to them.

Below the warning's share a few bright spots (beads, dirt) may still clip, and their localizations are wrong (MLE:
photons about 3x too low with converged 1 and a CRLB far too small). The fits flag them row by row: the column
``saturated_px`` counts the pixels of the localization's spot at the clipping level (:func:`clip_threshold_photons`,
:func:`count_clipped`), and ``plexloc filter --no-saturated`` drops them.

A finding is a :class:`CameraWarning` (``plexloc COMMAND: warning: ...`` on the command line) naming the movie,
the channel, what was measured and the camera settings it was measured against. Where the camera was read from a file
(``--camera camera.yaml``, a configuration's camera section or the file its ``camera:`` names; :func:`camera_source`)
the warning names that file and each setting by its field there with its value now and the one that would fit
(``... The settings that would fit, in camera.yaml: e_per_adu about 0.439 e-/ADU (now 4.6) if the baseline is right``;
``config.yaml``'s ``camera.e_per_adu``, ``channels.1.camera.e_per_adu``): it named the movie alone, and a user of a
configuration that includes a camera file had to find which file holds the value. Where a fit was given no camera
and took the one its model was trained with (:func:`camera_model`; ``plexloc fit/process --model RUN_DIR`` without
``--camera``) the warning says so, names each setting by its camera field with its value now, and gives the fix: the
movie's camera with ``--camera CAMERA.yaml`` (a multi-channel model: every channel's, one ``--camera`` per
channel in channel order), written out with the first setting that would fit put in
(``camera: {kind: emccd, ..., e_per_adu: 4.63, ...}``), or measured with ``plexloc calibrate-camera``; the run
folder holds nothing the fit reads for the camera.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

# torch is imported in the functions that use it: the numpy-only parts (saturation_adu, detect_clip_adu, head_frames)
# serve plexloc info without it (its import took 1-3 s of the command's 2-5 s)
if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from plexloc.camera.mapfit import MapMatch

__all__ = ["CameraCheck", "CameraWarning", "ChannelCheck", "CLIP_BITS", "MAX_SATURATED_FRACTION", "MIN_CLIPPED_PIXELS",
           "MIN_SHOT_ELECTRONS", "NOISE_FRAMES", "NOISE_RANGE", "READ_NOISE_SHARE", "camera_model", "camera_source", "check_camera", "clip_level", "clip_threshold_photons", "count_clipped",
           "detect_clip_adu", "dim_offset", "find_clip_adu", "head_frames", "later_frames", "noise_measure", "noise_ratio", "noise_ratio_detail", "piled_up_level", "read_noise_share", "saturation_adu"]

#: accepted measured / predicted pixel variance (bench/RESULTS.md, issue 3, "training-domain check")
NOISE_RANGE = (0.75, 1.35)
#: frames of 256 x 256 pixels the noise check looks at (fits keep this many pixels, >= 2 frames)
NOISE_FRAMES = 64
#: below this signal (photons per pixel) the noise of an EMCCD frame is not measured: the correct camera gave a ratio
#: of 0.43 at 0.5 photons/px and 0.73 at 1 (a false alarm), 0.93 at 2 (examples/2d_gaussian.yaml's camera)
MIN_EMCCD_PHOTONS = 2.0
#: ... except where the ratio is below this: the correct camera read 0.37-1.01 at 0-1.9 photons/px (2d_gaussian.yaml at
#: 0.5 emitters/um^2, 64 frames, seeds 1-2), photons scaled down 10x 0.011-0.065, and an e_per_adu written as ADU/e-
#: (1/45 for 45: photons 2,025x too few) put the signal at 0.03 photons/px, where it went unmeasured, without a word
#: (tests/test_camera43.py)
MIN_DIM_EMCCD_RATIO = 0.2
#: below this many electrons per pixel (qe x photons + spurious charge; an ideal camera's photons) the noise of a camera
#: without EM gain whose noise there is mostly shot noise (read noise under ``MAX_SHOT_READ_SHARE`` of it) is not
#: measured: Poisson counts of a few electrons are far from Gaussian, and their spread over the pair's own mean reads
#: high (a right ideal camera 1.46-1.53 at 0.5-1 photons/px, 1.18-1.21 at 1.5; a qCMOS of 0.27 e- read noise 1.34-1.37
#: at 0.55 e-, 1.25-1.28 at 1.3 e-: false warnings; 1.09-1.16 from 2 e-; tests/test_camera_walk44.py) ...
MIN_SHOT_ELECTRONS = 2.0
#: ... where the read noise is less than this share of the predicted variance (a qCMOS of 0.43 e- at 1.3 e-/px, 12 %,
#: read 1.19-1.21; an sCMOS of 0.7 e- at 1.25 e-/px, 28 %, 1.12-1.15 and of 1 e-, 44 %, 1.10-1.11: still measured)
MAX_SHOT_READ_SHARE = 0.3
#: ... unless the ratio is above this (no right camera reads it there: at most 1.53) or below ``MIN_DIM_EMCCD_RATIO``
#: (since session 49 also an EMCCD's under ``MIN_EMCCD_PHOTONS`` is measured where its plain and high-passed ratios
#: are both above this: a baseline above the offset, :func:`noise_measure`; the crowding test's upper bound too)
MAX_DIM_SHOT_RATIO = 2.0
#: the pixel noise (ADU, one frame) below which it is not measured: where the noise is a fraction of the camera's step,
#: the dimmer pixels' differences are a few whole ADU and their spread says little even dithered (a right sCMOS at
#: 7.5 e-/ADU read 0.45-1.47 at 0.3-0.45 ADU, 0.95-1.02 from 0.57 ADU; at 4 e-/ADU 0.73 at 0.46 ADU, 0.98 at 0.51;
#: tests/test_camera44.py)
MIN_NOISE_ADU = 0.5
#: quantiles of each frame pair's pixels (by their mean) whose noise is measured; the ratio is the smallest
#: (:func:`noise_ratio_detail`)
NOISE_QUANTILES = (0.5, 0.25)
#: the dimmest pixels, whose noise ratio :func:`_noise_stats` also gives: the crowding guard before session 49, kept
#: for ratios still above ``NOISE_RANGE`` after the high-pass (spots too sharp for it: :func:`noise_measure`)
CROWDED_QUANTILE = 0.1
#: the noise ratio over its 4-neighbour high-passed value above which the spots that changed between the frames raised
#: it, and the high-passed one is taken (:func:`noise_measure`): 0.97-1.05 on right cameras at 0.3 emitters/um^2 and
#: 2-1000 photons/px without a beam (bench/camera49.py)
MAX_CROWDING = 1.15
#: ... and above which the frames are too crowded to measure (the high-passed ratio holds spots too: right cameras at 5
#: emitters/um^2 read 1.23-1.41 there, at 6-26x)
MAX_HP_CROWDING = 3.0
#: EMCCD signal (photons/px) under which a high-passed ratio under NOISE_RANGE, where the plain one is within it, is no
#: finding (:func:`noise_measure`): EM noise at a few photons/px reads low high-passed (right cameras 0.81-0.88 at 2-3
#: photons/px, 0.92-1.00 at 10)
MIN_EMCCD_HP_PHOTONS = 10.0
#: relative standard error of a squared robust spread (1.4826 MAD) of n Gaussian values is about this over sqrt(n): the
#: crowding switch asks for MAX_CROWDING plus 3 such errors of the two ratios, so that a small movie's chance spread
#: is no crowding (24x20-px frames, 4 of them, of a right sCMOS with per-pixel maps: the plain ratio 0.81-1.03, the
#: high-passed one 0.60-1.04 from about 300 values, taken where their quotient passed 1.15: told 0.60x in 3 of 8 seeds)
MAD_VAR_REL_SE = 2.33
#: share of the predicted pixel variance, at the signal the noise was measured at, from which the camera's read noise is
#: named as a cause of a noise ratio outside ``NOISE_RANGE``: an sCMOS read noise of 3.48 written for 1.6 e- (ADU for
#: e- at 0.46 e-/ADU) is 91 % of it at 1.4 photons/px, and the ratio of 0.29 was advised as an e_per_adu of 1.61 for
#: 0.46 (photons 3.5x off had it been followed); the read_sigma that fits read 1.6 e- (tests/test_camera44.py)
READ_NOISE_SHARE = 0.25
#: the largest EM gain of a camera (Andor iXon 1000, Hamamatsu ImagEM 1200): a noise ratio whose gain explanation needs
#: more (or less than 1) is told as a baseline error first (an EMCCD's baseline set 100 ADU above its offset read 13x,
#: and em_gain 3903 was advised before the right baseline; tests/test_camera44.py)
MAX_EM_GAIN = 1200.0
#: an EMCCD's em_gain below this (1: no multiplication) with a read noise too high for the movie is told as a gain
#: perhaps folded into e_per_adu, whose read_sigma must then be divided by it too (em_gain 1, e_per_adu 0.15 for a
#: camera of gain 300 and 45 e-/ADU, read_sigma kept at 74.4 e-, was advised a baseline 317 ADU high and an e_per_adu
#: 8.6x its value; tests/test_camera47.py)
FOLDED_EM_GAIN = 2.0
#: an EMCCD read out without EM gain (its conventional amplifier: em_gain 1 set on purpose) has no excess noise; until
#: session 49 the EMCCD model kept it at any em_gain and such a movie read (1 + read share) / 2 (0.70 at 8 e- read noise
#: and 50 photons/px), told with this fix (tests/test_review47b.py). The model's excess noise is now 2 - 1/em_gain (1 at
#: gain 1: :func:`plexloc.camera.models.excess_noise_factor`) and such a movie fits; the note is kept for a ratio that
#: the model's excess noise at em_gain under FOLDED_EM_GAIN, taken away, still explains (:func:`_em_off_ratio`)
EM_OFF_NOTE = "kind: scmos with the same qe, spurious_charge, e_per_adu, baseline and read_sigma"
#: noise ratios of an sCMOS camera at which the warning also asks whether the frames are an EMCCD's: its excess noise
#: doubles the variance (an EMCCD movie read with sCMOS settings that give the right photons read 1.95, and was advised
#: an e_per_adu half the one that gave them; tests/test_camaudit46.py)
EMCCD_AS_SCMOS = (1.6, 2.6)
#: the quantile of the pixels' medians over the frames that :func:`dim_offset` holds against the baseline: a scalar
#: baseline on an sCMOS whose pixel offsets spread by 3-5 ADU puts the 1st percentile 6-7 ADU below it and the 10th
#: 4-6 ADU, which at 0-2 photons/px of background read as a baseline too high (false warnings); the median does not
#: move with the spread, and a baseline set far above the offset puts every pixel below it
DIM_QUANTILE = 0.5
#: the note of a camera whose noise does not depend on the signal (nothing to check)
ADDITIVE_NOTE = "a camera with signal-independent noise has no gain to check"
#: share of pixels at the dtype's maximum above which a movie is called saturated (0.01 %)
MAX_SATURATED_FRACTION = 1e-4
#: bit depths whose full scale ``2**k - 1`` :func:`detect_clip_adu` looks for (cameras of 8 to 16 bits)
CLIP_BITS = tuple(range(8, 17))
#: pixels at exactly ``2**k - 1`` (and none above) from which a movie is taken to clip there ...
MIN_CLIPPED_PIXELS = 4
#: ... where that value holds at least this many times the mean count of each of the 16 values below it (a clipped
#: tail piles up on one value; an unclipped movie's largest values are spread out, about one pixel each)
MIN_CLIP_PILEUP = 4.0


#: frame side (px) under which the noise is not measured (NaN, with :func:`too_few_pixels_note`): right cameras on
#: 3-8 px square frames (2-64 frames, 2 emitters/um^2, 20 photons/px) were told in 17-100 % of seeds (the tiles
#: walk's 3 x 5 px crop: "0.16x ... baseline about 573 ADU too low"); at 12 px only with 2 frames, which
#: :data:`MAX_CROWDING`'s chance band refuses (bench/small50.py)
MIN_NOISE_SIDE_PX = 12
#: pixels per frame under which a movie of 2 frames (one pair) is not measured: right cameras on 12-32 px frames, 2
#: frames, were told in 17-67 % of seeds, 4 frames and more in 0-17 %, 64 x 64 px of 2 frames in none
#: (bench/small50.py)
MIN_ONE_PAIR_PIXELS = 64 * 64


def too_few_pixels_note(h: int, w: int, why: str = "") -> str:
    """The note of a noise check refused for its frames' size or its few pixels (:data:`MIN_NOISE_SIDE_PX`)."""
    return (f"too few pixels to check the camera: {h} x {w} px per frame"
            + (f", {why}" if why else f", under the {MIN_NOISE_SIDE_PX} px a side its noise is judged from")
            + "; check the camera on a larger region or more frames of the same camera and settings")


class CameraWarning(UserWarning):
    """The movie does not fit the camera settings: its noise, or pixels clipped at the dtype's maximum."""


def head_frames(frame_shape: Sequence[int], *, max_frames: int = NOISE_FRAMES) -> int:
    """How many of a movie's first frames the check looks at: as many as ``max_frames`` frames of 256 x 256
    pixels hold, at least 2 and at most ``max_frames`` (whole frames: camera maps are per pixel)."""
    h, w = int(frame_shape[-2]), int(frame_shape[-1])
    return min(max(max_frames * 256 * 256 // max(h * w, 1), 2), max_frames)


def noise_ratio(photons: Tensor, camera, *, max_frames: int = NOISE_FRAMES) -> float:
    """Measured over predicted pixel variance (:func:`noise_ratio_detail`, without its note)."""
    return noise_ratio_detail(photons, camera, max_frames=max_frames)[0]


def noise_ratio_detail(photons: Tensor, camera, *, max_frames: int = NOISE_FRAMES) -> tuple[float, str]:
    """Measured over predicted pixel variance and why it is NaN (:func:`noise_measure`, without the signal level)."""
    return noise_measure(photons, camera, max_frames=max_frames)[:2]


def noise_measure(photons: Tensor, camera, *, max_frames: int = NOISE_FRAMES, stats: dict | None = None
                  ) -> tuple[float, str, float]:
    """Measured over predicted pixel variance of one channel's photon frames ``(T, H, W)`` (T >= 2): 1 when the
    camera settings that converted them are right.

    Consecutive frames ``a, b``: ``d = a - b`` (less its median over the frame, so that a background that changes
    from frame to frame does not count) against ``2 * camera.noise_variance_photons((a + b) / 2)``, on the dimmer
    part of each frame pair's pixels, as the squared robust spread (1.4826 MAD) of the normalised differences.

    Which pixels: blinking emitters change between frames by far more than noise, so only the dimmer pixels of
    each pair count, chosen by the mean of ``(a + b) / 2`` over their 3x3 neighbourhood (it follows the spots'
    tails, and hardly the pixel's own noise, so that the choice does not bias the difference: by the pixel's own
    value a low-light EMCCD's skewed noise read 0.80-0.82 in the dimmer quarter). The ratio is the smaller of the
    dimmer half's and the dimmer quarter's (``NOISE_QUANTILES``): in crowded frames the dimmer half still holds
    spots that changed (a correct camera read 1.14-1.33 at 2 emitters/um^2 by the half alone, 1.01-1.07 now).
    Where even the quarter is crowded (its ratio more than ``MAX_CROWDING`` times that of its 4-neighbour high-pass,
    which keeps the camera's pixel-to-pixel noise and drops most of the smooth spots) the high-passed ratio is taken,
    and where more than ``MAX_HP_CROWDING`` times, the noise is not measured (NaN, with a note). Ranking the dimmer
    pixels against the dimmest tenth, the guard before session 49, failed under a beam at high background (a right
    sCMOS at 1000 photons/px and 2 emitters/um^2 read 3.12 and was told): the beam, not the spots, ranks them there.
    That guard is kept for a ratio still above ``NOISE_RANGE`` after the high-pass, where the spots are too sharp for
    it (under about a pixel sd): the frames are then too crowded (NaN, with a note).

    Whole ADU: each frame is dithered by a uniform step of one ADU (in photons, per pixel for maps; seeded, so the
    ratio is reproducible) whose variance the prediction adds: the differences of a camera of several e- per ADU are
    a few whole values, whose median absolute deviation jumps (a right sCMOS read 1.21 at 1 e-/ADU and 1-2
    photons/px, 1.5-1.8 at 4-7.5 e-/ADU; dithered 0.98-1.08). Below ``MIN_NOISE_ADU`` of noise per frame (the
    movie's, less the rounding and the dither) it is not measured (NaN, with a note).

    Shot noise of a few electrons: on a camera without EM gain whose predicted noise is mostly shot noise (an ideal
    camera's photon frames, a qCMOS), below ``MIN_SHOT_ELECTRONS`` per pixel it is not measured (NaN, with a note)
    unless the ratio is beyond ``MAX_DIM_SHOT_RATIO`` or under ``MIN_DIM_EMCCD_RATIO``: Poisson counts over their pair's
    own mean read up to 1.53 there on a right camera.

    Frames: the first :func:`head_frames` of ``photons`` (at most ``max_frames`` frames of 256 x 256 pixels' worth):
    time and memory do not grow with the frame size (64 frames of 2048 x 2048 px took 186 s and 15 GB; 2 of them, 2.5
    s).

    Returns ``(ratio, note, level)``: the note says why the ratio is NaN; ``level`` is the median signal (photons/px)
    of the dimmer half of the pixels (NaN where not measured). ``stats``: a dict that receives the statistics the
    ratio was taken from (:func:`_noise_stats`: ``ratios``, ``hp_ratios``, ``level``, ...), where they were computed
    (not for an additive camera or one frame), so that a caller reads them without computing them again. NaN with fewer than two frames, on an EMCCD
    below ``MIN_EMCCD_PHOTONS`` per pixel (unless the ratio is under ``MIN_DIM_EMCCD_RATIO``, which no right camera
    reads there: a gain or e_per_adu far too high, the photons scaled down many times, returns its ratio; or above
    ``MAX_DIM_SHOT_RATIO`` plain and high-passed: a signal taken away, returns it too), in frames
    too crowded, and for a camera whose noise does not depend on the signal (``additive``, seed 002's model): it has no gain to get wrong, and the emitters' noiseless changes
    between frames, which shot noise would otherwise dwarf, read as noise (a correct quad-plane movie at 50
    emitters per 64x64 frame: 1.44)."""
    if getattr(camera, "kind", None) == "additive":
        return math.nan, ADDITIVE_NOTE, math.nan
    x = photons[:_frames_for(photons, max_frames)].detach().float().cpu()
    if x.ndim != 3 or x.shape[0] < 2:
        return math.nan, "one frame", math.nan
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if min(h, w) < MIN_NOISE_SIDE_PX:
        raw = x[1:] - x[:-1]
        if not bool((raw - raw.flatten(1).median(dim=1).values[:, None, None]).any()):
            # no noise at all between the frames (1 x 1 px frames, a saturated crop): 0 as before, which the fit's
            # domain check reports as "no pixel noise between frames"
            return 0.0, "", float(((x[1:] + x[:-1]) / 2).clamp_min(0.0).median())
        return math.nan, too_few_pixels_note(h, w), math.nan
    if x.shape[0] == 2 and h * w < MIN_ONE_PAIR_PIXELS:
        return math.nan, too_few_pixels_note(h, w, f"2 frames, one pair of them, under the {MIN_ONE_PAIR_PIXELS} "
                                             "px a frame that one pair is judged from"), math.nan
    cam = _on_cpu(camera)
    st = _noise_stats(x, cam)
    if stats is not None:  # handed back: the crowded-EMCCD swap path reads its high-passed ratios, not recomputed
        stats.update(st)
    level = st["level"]
    if not st["any_noise"]:
        return 0.0, "", level  # no noise at all between the frames: synthetic, not from a camera (not told)
    # the pixel noise's variance in ADU^2 less the rounding to whole ADU and the dither (1/12 ADU^2 each): 0 or less
    # where the differences spread no more than the rounding and the dither do
    noise_var = st["noise_var_adu"]
    noise_adu = math.sqrt(max(noise_var, 0.0))
    if noise_adu < MIN_NOISE_ADU:
        unit = "photons" if getattr(cam, "kind", None) == "ideal" else "ADU"  # an ideal camera's frames: whole photons
        # (it said "a pixel noise of 0 photons" of Poisson frames at 0.05-0.2 photons/px: their noise is not 0, it is
        # no larger than the rounding)
        shown = (f"no larger than the rounding to whole {unit}" if noise_var <= 0 else
                 f"of {noise_adu:.2g} {unit}" if noise_adu >= 0.1 else f"below 0.1 {unit}")
        why = ("an ideal camera's frames are photons" if unit == "photons" else
               "the camera's steps are too coarse for it")
        return (math.nan, f"a pixel noise {shown}, under the {MIN_NOISE_ADU:g} {unit} it is measured from ({why})",
                math.nan)
    ratios = st["ratios"]
    ratio = min(ratios[q] for q in NOISE_QUANTILES)
    hp = min(st["hp_ratios"][q] for q in NOISE_QUANTILES)
    if (getattr(camera, "em_gain", None) is not None and level < MIN_EMCCD_PHOTONS and not 0 < ratio < MIN_DIM_EMCCD_RATIO
            and not min(ratio, hp) > MAX_DIM_SHOT_RATIO):
        # EM-gain noise at a photon or two per pixel is far from Gaussian: the spread says little (a right camera reads
        # 0.37-1.01 there, high-passed 0.75-0.92), but a ratio far below that is a gain far too high, and one above
        # MAX_DIM_SHOT_RATIO plain and high-passed a signal taken away (the SMLM Challenge EMCCD's baseline 50 ADU high
        # at 2 photons/px and 2 emitters/um^2 read a signal of 0 photons/px and went untold; bench/camera49.py)
        return (math.nan, f"an EMCCD signal of {level:.2g} photons/px, under the {MIN_EMCCD_PHOTONS:g} it is measured "
                "from", math.nan)
    if getattr(camera, "em_gain", None) is None and MIN_DIM_EMCCD_RATIO <= ratio <= MAX_DIM_SHOT_RATIO:
        electrons = float(getattr(cam, "qe", 1.0)) * level + float(getattr(cam, "spurious_charge", 0.0) or 0.0)
        share = read_noise_share(cam, level)
        if electrons < MIN_SHOT_ELECTRONS and not (np.isfinite(share) and share >= MAX_SHOT_READ_SHARE):
            # Poisson counts of a few electrons over their own pair's mean read high (a right camera up to 1.53)
            return (math.nan, f"a signal of {electrons:.2g} e-/px ({level:.2g} photons/px), under the "
                    f"{MIN_SHOT_ELECTRONS:g} e- it is measured from where shot noise dominates", math.nan)
    # crowding: spots that changed between the frames are smooth over several pixels, the camera's noise is not; the
    # 4-neighbour high-pass of the normalised differences keeps the noise and drops most of the spots. Where the plain
    # spread exceeds the high-passed one by MAX_CROWDING, the spots raised it and the high-passed ratio is the one
    # measured (a right sCMOS at 1000 photons/px under a beam, 2 emitters/um^2: 3.12 plain, 1.15 high-passed; the
    # dimmer quarter against the dimmest tenth, the guard before, is ranked by the beam there and saw no crowding).
    # Where it exceeds it by MAX_HP_CROWDING even the high-pass holds spots (right cameras at 5 emitters/um^2 read up
    # to 1.41): too crowded, unless the ratio is beyond what crowding gives a right camera (under NOISE_RANGE, or
    # over MAX_DIM_SHOT_RATIO: em_gain and e_per_adu swapped read 66-120)
    crowding = ratio / hp if np.isfinite(hp) and hp > 0 else 1.0
    n_plain, n_hp = st["counts"], st["hp_counts"]
    chance = 3.0 * MAD_VAR_REL_SE * math.sqrt(1.0 / max(n_plain, 1) + 1.0 / max(n_hp, 1))
    if (MAX_CROWDING < crowding <= MAX_CROWDING + chance and not NOISE_RANGE[0] <= ratio <= NOISE_RANGE[1]
            and NOISE_RANGE[0] <= hp <= NOISE_RANGE[1]):
        # the dimmer pixels change more than their pixel-to-pixel noise explains, by less than chance does in so few
        # of them: spots or camera cannot be told apart, and the plain ratio outside NOISE_RANGE with the high-passed
        # one inside it is no finding (right cameras on 16-40 px frames, 2 emitters/um^2: plain 1.37-1.72, high-passed
        # 0.86-1.16, told in 10-30 % of seeds; the tiles walk's 20 x 20 px, 6 frames: "1.60x"; bench/small50.py)
        return math.nan, too_few_pixels_note(
            int(x.shape[-2]), int(x.shape[-1]),
            f"{x.shape[0]} frames: the dimmer pixels change {crowding:.2f}x as much between frames as their "
            f"pixel-to-pixel noise explains (measured {ratio:.2f}x the prediction, high-passed {hp:.2f}x), within "
            f"what chance gives so few pixels, so spots and camera noise cannot be told apart"), math.nan
    if crowding > MAX_CROWDING + chance and not 0 < ratio < NOISE_RANGE[0]:
        if crowding > MAX_HP_CROWDING and NOISE_RANGE[0] <= hp <= MAX_DIM_SHOT_RATIO:
            return math.nan, (f"frames too crowded: the dimmer pixels change {crowding:.2f}x as much between frames "
                              "as their pixel-to-pixel noise explains"), math.nan
        if (getattr(camera, "em_gain", None) is not None and level < MIN_EMCCD_HP_PHOTONS and hp < NOISE_RANGE[0]
                and ratio >= NOISE_RANGE[0]):
            # an EMCCD's skewed noise at a few photons/px reads low high-passed (right cameras 0.81-0.88 at 2-3
            # photons/px without spots, 0.72-0.76 at 1.5-2 photons/px and 2 emitters/um^2, told as too low): the
            # spots raised the plain ratio, the high-pass is no measure here
            return math.nan, (f"frames too crowded: the dimmer pixels change {crowding:.2f}x as much between frames "
                              f"as their pixel-to-pixel noise explains, at an EMCCD signal of {level:.2g} "
                              "photons/px"), math.nan
        hp_chance = LOW_HP_SE * MAD_VAR_REL_SE / math.sqrt(max(n_hp, 1))
        if hp < NOISE_RANGE[0] <= hp * (1.0 + hp_chance):
            # the high-passed ratio under NOISE_RANGE by less than its standard error (LOW_HP_SE)
            return math.nan, too_few_pixels_note(
                int(x.shape[-2]), int(x.shape[-1]),
                f"{x.shape[0]} frames: the dimmer pixels change {crowding:.2f}x as much between frames as their "
                f"pixel-to-pixel noise explains, and that noise reads {hp:.2f}x the prediction from {n_hp} values, "
                f"under {NOISE_RANGE[0]:g} by less than its standard error on so few"), math.nan
        ratio = hp
    # spots under about a pixel sd (160 nm pixels, a 2x2-binned movie) are not smooth and stay in the high-pass: a right
    # EMCCD or sCMOS at 1-5 emitters/um^2 read 1.4-5.4 there (sd 0.8 px) and up to 133 (sd 0.5 px), and was told.
    # Where the ratio is still above NOISE_RANGE and the dimmer quarter changes more than MAX_CROWDING times as much
    # as the dimmest tenth (the guard before session 49, which said so for all of them), the frames are too crowded;
    # not where the dimmer half reads no signal (a baseline above the offset: the pixels' means, clipped at 0, rank
    # nothing)
    old_crowding = ratios[NOISE_QUANTILES[-1]] / max(ratios[CROWDED_QUANTILE], 1e-12)
    # (session 51 lifted this guard where the high-passed ratio and the dimmest tenth agreed within MAX_CROWDING and
    # plain / high-passed was at most 2, to tell a crowded movie's e_per_adu 2x; its review withdrew that: right
    # cameras with sharp spots (sd 0.8 px at 160 nm) under a beam, 1-2 emitters/um^2, 200-1000 photons/px, read
    # high-passed 1.26-1.84 with the tenth within 0.88-1.15x of it, and 22 more of 64 such checks were told:
    # tests/test_camera51_review.py)
    if ratio > NOISE_RANGE[1] and old_crowding > MAX_CROWDING and level > 0:
        return math.nan, (f"frames too crowded: the dimmer quarter of the pixels changes {old_crowding:.2f}x as much "
                          "between frames as the dimmest tenth, and the spots are too sharp for the pixel-to-pixel "
                          "noise to be told from them"), math.nan
    return ratio, "", level


#: standard errors of the high-passed ratio (from its values, ``MAD_VAR_REL_SE``) by which it must lie under
#: NOISE_RANGE, where the crowding switch takes it, to be told too low (else "too few pixels"): right sCMOS cameras on
#: 16 and 20 px frames, 6 frames, 2 emitters/um^2 read 0.75 and 0.70 from 180 and 318 values (crowding 7.3 and 1.8)
#: and were told too low in 1 of 6 seeds each; e_per_adu 0.5x on 16-24 px frames, 4-16 frames, read 0.46-0.65 from
#: 99-613 values. One error declines both right cameras and 1 of those 108 wrong ones, two 7, three 24
#: (bench/camera51.py, section small): the two overlap on so few pixels, one error is the compromise
LOW_HP_SE = 1.0
#: frame pairs' pixels the noise check holds at once (:func:`_noise_stats`): 16 pairs of 256 x 256, about 4 MB per
#: float32 temporary; the whole head (64 frames of 256 x 256) at once took about 200 MB of them
NOISE_CHUNK_PX = 1 << 20
#: the 4-neighbour high-pass ``z - mean(4 neighbours)`` of independent unit-variance pixels has variance 1 + 4/16
_HP_VAR = 1.25


def _noise_stats(x: Tensor, cam) -> dict:
    """The statistics of :func:`noise_measure` over frames ``x`` (T, H, W) in photons (T >= 2), frame pairs taken a
    chunk of ``NOISE_CHUNK_PX`` pixels at a time (each frame's dither drawn once, in order, from one seeded generator:
    the same numbers as one draw for the whole head), keeping only the selected pixels' values:

    - ``ratios``: the squared robust spread of the normalised differences ``z`` in each of ``NOISE_QUANTILES`` and
      ``CROWDED_QUANTILE`` (chosen per pair by the 3x3 mean of the pair's mean);
    - ``hp_ratios``: the same of the 4-neighbour high-pass of ``z`` over ``_HP_VAR`` (interior pixels): the camera's
      noise is independent from pixel to pixel and reads the same, but the spots that changed between the frames are
      smooth over several pixels and mostly drop out (:data:`MAX_CROWDING`);
    - ``level``: the median of the pair means in the dimmer half; ``noise_var_adu``: the variance of one frame's noise
      in ADU^2 less rounding and dither; ``any_noise``: whether the undithered differences vary at all there;
    - ``counts``, ``hp_counts``: the values the dimmer quarter's plain and high-passed spreads are taken from."""
    import torch

    from plexloc.evaluate.uncertainty import MAD_TO_SD

    t, h, w = (int(v) for v in x.shape)
    qs = (*NOISE_QUANTILES, CROWDED_QUANTILE)
    with torch.no_grad():
        # one ADU in photons (per pixel for maps): the differences of whole ADU are dithered by a uniform step, whose
        # variance step^2 / 12 per frame the prediction adds, so that their spread is that of a continuous variable
        step = (cam.to_photons(torch.ones((h, w))) - cam.to_photons(torch.zeros((h, w)))).abs()
        gen = torch.Generator().manual_seed(0)
        kernel = torch.tensor([[0.0, -0.25, 0.0], [-0.25, 1.0, -0.25], [0.0, -0.25, 0.0]])[None, None]
        per = max(1, NOISE_CHUNK_PX // max(h * w, 1))
        zs: dict[float, list] = {q: [] for q in qs}
        hps: dict[float, list] = {q: [] for q in NOISE_QUANTILES}
        levels, dn, any_noise = [], [], False
        prev = (torch.rand((1, h, w), generator=gen) - 0.5) * step  # frame 0's dither
        for i0 in range(0, t - 1, per):
            i1 = min(i0 + per, t - 1)  # pairs i0 .. i1 - 1: frames i0 .. i1
            a, b = x[i0:i1], x[i0 + 1:i1 + 1]
            dith = (torch.rand((i1 - i0, h, w), generator=gen) - 0.5) * step
            dither = torch.cat([prev, dith])
            prev = dith[-1:]
            m = ((a + b) / 2).clamp_min_(0.0)
            var = (cam.noise_variance_photons(m) + step.square() / 12.0).mul_(2.0).clamp_min_(2e-6)  # (ideal: m itself)
            d = (a + dither[:-1]).sub_(b + dither[1:])
            d.sub_(d.flatten(1).median(dim=1).values[:, None, None])
            z = d / var.sqrt_()
            del var
            # pixels chosen by their 3x3 neighbourhood's mean: it finds the spots' tails as well, and depends little on
            # the pixel's own noise (choosing by the pixel's own value read a low-light EMCCD's skewed noise 0.80-0.82
            # at 3-6 photons/px in the dimmer quarter, 0.6-0.7 in the tenth; by the neighbourhood 0.95-1.06)
            sm = torch.nn.functional.avg_pool2d(m[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
            cuts = sm.flatten(1).quantile(torch.tensor(qs, dtype=sm.dtype), dim=1)  # (len(qs), pairs)
            masks = {q: sm <= cut[:, None, None] for q, cut in zip(qs, cuts)}
            del sm
            half = masks[NOISE_QUANTILES[0]]
            levels.append(m[half])
            if not any_noise:
                raw = a - b  # (undithered)
                any_noise = bool((raw - raw.flatten(1).median(dim=1).values[:, None, None])[half].any())
                del raw
            dn.append((d / step.clamp_min(1e-12))[half])
            del d, m
            for q, k in masks.items():
                zs[q].append(z[k])
            if h > 2 and w > 2:
                hp = torch.nn.functional.conv2d(z[:, None], kernel)[:, 0]  # (pairs, H - 2, W - 2)
                for q in NOISE_QUANTILES:
                    hps[q].append(hp[masks[q][:, 1:-1, 1:-1]])
                del hp
            del z, masks
        level = float(torch.cat(levels).median())
        del levels

    def spread2(parts: list) -> float:
        """The squared robust sd (:func:`plexloc.evaluate.uncertainty.robust_sd`'s) of the parts, in float32 and in
        place: a float64 copy and its temporaries took 48 MB more on 64 frames of 256 x 256."""
        if not parts:
            return math.nan
        v = torch.cat(parts).numpy()
        parts.clear()
        if not v.size:
            return math.nan
        v -= np.median(v)
        np.abs(v, out=v)
        return (MAD_TO_SD * float(np.median(v))) ** 2

    noise_var = spread2(dn) / 2.0 - 2.0 / 12.0
    q_last = NOISE_QUANTILES[-1]  # the fewest values of the quantiles the ratio is the smallest of
    counts = sum(int(v.numel()) for v in zs[q_last])
    hp_counts = sum(int(v.numel()) for v in hps[q_last])
    return {"counts": counts, "hp_counts": hp_counts, "ratios": {q: spread2(v) for q, v in zs.items()},
            "hp_ratios": {q: spread2(v) / _HP_VAR for q, v in hps.items()},
            "level": level, "noise_var_adu": noise_var, "any_noise": any_noise}


def dim_offset(photons: Tensor, camera, *, max_frames: int = NOISE_FRAMES) -> tuple[float, float, float]:
    """Where one channel's pixels sit against the camera's baseline: ``(adu, photons, margin)``, the ``DIM_QUANTILE``
    quantile (the median) of the pixels' medians over the first :func:`head_frames` of ``photons`` ``(T, H, W)``
    (T >= 2), in ADU above the baseline (per pixel for maps) and in photons, and how far below the baseline a right
    camera's could sit by noise alone (ADU: 3 x 1.25 x those pixels' noise per frame over sqrt(T), plus 1 ADU of
    rounding, as ``plexloc info`` allows for its 1st percentile). All NaN for a camera without a baseline (ideal,
    additive) or fewer than two frames.

    A baseline above the camera's offset makes the dim pixels' photons negative; where it is far above (an EMCCD's
    settings, offset 300 ADU, on an sCMOS movie at 100-150 ADU) the noise check sees a signal of 0 photons/px and
    says only that it could not measure there: the fit's photons came out 99.8 % low with no warning about the
    camera (tests/test_camaudit46.py)."""
    import torch

    from plexloc.evaluate.uncertainty import robust_sd

    nan = (math.nan, math.nan, math.nan)
    if getattr(camera, "baseline", None) is None or getattr(camera, "kind", None) in ("ideal", "additive"):
        return nan
    x = photons[:_frames_for(photons, max_frames)].detach().float().cpu()
    if x.ndim != 3 or x.shape[0] < 2:
        return nan
    with torch.no_grad():
        cam = _on_cpu(camera)
        p0 = cam.to_photons(torch.zeros(x.shape[-2:]))  # the photons of 0 ADU, per pixel for maps
        step = cam.to_photons(torch.ones(x.shape[-2:])) - p0  # photons per ADU (> 0)
        at_base = p0 + torch.as_tensor(cam.baseline, dtype=torch.float32) * step  # the photons at the baseline
        med = x.median(dim=0).values
        above = (med - at_base) / step.clamp_min(1e-12)  # each pixel's median in ADU above the baseline
        q = float(above.flatten().quantile(DIM_QUANTILE))
        dim = above <= q + 1e-6
        d = (x[1:] - x[:-1]) / step.clamp_min(1e-12)
        noise = robust_sd(d[:, dim].numpy().astype(np.float64)) / math.sqrt(2.0)
        photons_q = float((at_base + q * step).flatten()[dim.flatten()].median())
    margin = 3.0 * 1.25 * noise / math.sqrt(x.shape[0]) + 1.0
    return q, photons_q, margin


def _map_match(photons: Tensor, camera, *, max_frames: int = NOISE_FRAMES) -> MapMatch | None:
    """An sCMOS camera's baseline map against the pixel offsets of the movie's first :func:`head_frames` of
    ``photons`` ``(T, H, W)`` (:func:`plexloc.camera.mapfit.map_match`), searched over the chip's map where the
    camera's maps were cut from one (:func:`plexloc.camera.models.cut_maps_to_movie` keeps it); None without a
    baseline map or with fewer than two frames. Only the frames' central window is read
    (:func:`plexloc.camera.mapfit.central`): each of its pixels' median over the frames is converted back to ADU (the
    conversion is monotone per pixel, so the median commutes with it), with the window's part of the maps: no second
    conversion of the frames, and on 2048 x 2048 frames no whole-frame median (it took 0.4-1.1 s of every fit with
    right maps; 0.1 s on the window)."""
    import torch

    base = getattr(camera, "baseline", None)
    if getattr(camera, "kind", None) != "scmos" or not _is_tensor(base) or base.ndim != 2:
        return None
    if photons.ndim != 3 or tuple(photons.shape[-2:]) != tuple(base.shape):
        return None
    k = min(_frames_for(photons, max_frames), int(photons.shape[0]))
    if k < 2:
        return None
    from plexloc.camera.mapfit import central, map_match, map_noise_var
    from plexloc.camera.models import SCMOS

    win, corner = central(tuple(base.shape))

    def part(t):
        return (t[win] if t.ndim == 2 else t).detach().double().cpu()

    cam = SCMOS(qe=camera.qe, spurious_charge=camera.spurious_charge, e_per_adu=part(camera.e_per_adu),
                baseline=part(camera.baseline), read_sigma=part(camera.read_sigma))
    with torch.no_grad():
        x = photons[:k, win[0], win[1]].detach().float().cpu()
        raw_median = cam.expected_adu(x.median(dim=0).values).double().numpy()
    chip = getattr(camera, "chip_baseline", None)
    cut = getattr(camera, "map_cut", None)
    full = (chip if chip is not None else camera.baseline).detach().cpu().numpy()  # (made float64 where searched)
    return map_match(raw_median, cam.baseline.numpy(), full,
                     used=(cut[0], cut[1]) if cut is not None else (0, 0), corner=corner,
                     noise_var=map_noise_var(cam.read_sigma.numpy(), cam.e_per_adu.numpy()))


def _frames_for(photons, max_frames: int) -> int:
    """How many of ``photons``' first frames the noise check uses: :func:`head_frames` (at most ``max_frames`` frames
    of 256 x 256 pixels' worth, at least 2), so that its time and memory do not grow with the frame size (64 frames of
    2048 x 2048 px given: 2 used)."""
    shape = tuple(photons.shape)
    return head_frames(shape, max_frames=max_frames) if len(shape) >= 2 else max_frames


def _on_cpu(camera):
    """The camera with its buffers on the CPU: itself, or a copy (``Module.cpu()`` would move the caller's)."""
    import torch

    if isinstance(camera, torch.nn.Module) and any(b.device.type != "cpu" for b in camera.buffers()):
        import copy

        return copy.deepcopy(camera).cpu()
    return camera


def _is_tensor(v) -> bool:
    """Whether ``v`` is a torch tensor, without importing torch (where it is not imported, nothing is a tensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, torch.Tensor)


def saturation_adu(dtype) -> float | None:
    """The value a movie of this pixel type clips at: the integer dtype's maximum; None for float movies."""
    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if dt.kind in "iu" else None


def find_clip_adu(raw, dtype=None) -> tuple[float | None, str]:
    """The level a camera clips at, found in raw frames (ADU) that do not reach the pixel type's maximum, and how it
    was known: their largest value held by at least :data:`MIN_CLIPPED_PIXELS` pixels and by at least
    :data:`MIN_CLIP_PILEUP` times the mean count of the 16 values below it (a clipped tail piles up on one value; an
    unclipped movie's largest values are spread out), and

    - ``(level, "found")`` where it is a full scale ``2**k - 1`` (``k`` in :data:`CLIP_BITS`: 4095 of a 12-bit
      camera, 16383 of a 14-bit one);
    - ``(level, "pile-up")`` where it is any other value (a camera whose full well, or whose offset and gain, end its
      range there: a 16-bit movie clipped at 1000 ADU was fitted with 5 % of its pixels there and not one row
      flagged), held at at least :data:`MIN_CLIPPED_PIXELS` different pixel positions (a hot pixel stuck at the
      movie's maximum is no clipping level), in the frames that are not constant (blank frames, all at one value,
      are no clipped tail and are left out: until session 51 a level held by half of all the pixels or more was
      taken for them, and bright, dense first frames clipped over 53-60 % of their pixels went unfound); a level
      held by half of those frames' pixels or more with no value within 16 ADU under it is none either (blank frames
      at one value with a zero border or dead pixels; session-51 review);
    - ``(None, "")`` otherwise: nothing clipped in these frames, no such pile-up.

    ``dtype``: the movie's pixel type (default the array's; its own maximum is :func:`saturation_adu`'s level, not a
    finding), so that frames converted to float (a split view's channels) are looked at as the file's integers. Float
    movies are not looked at, as they have no integer maximum either (a camera's raw counts are integers; set
    ``saturation_adu`` for a float movie that clips). One implementation for every reader: the camera check, both
    fits (:func:`clip_level`) and ``plexloc info``."""
    x = np.asarray(raw.detach().cpu().numpy() if _is_tensor(raw) else raw)
    full = saturation_adu(dtype if dtype is not None else x.dtype)
    if not x.size or full is None:
        return None, ""
    top = float(x.max())  # a float: ``top - 16`` of a uint16 maximum under 16 would wrap round
    if top >= full:  # at the pixel type's maximum: that level is the dtype's, not a finding
        return None, ""
    if top in {float(2**k - 1) for k in CLIP_BITS} and _piles_up(x, top):
        return top, "found"
    if x.ndim < 2:
        return None, ""
    # constant frames (blank, all zeros, one value throughout) hold no clipped tail: left out, and only they (the
    # guard before session 51, half of all the pixels at the level, also hid bright dense frames clipped over most
    # of their pixels)
    frames = x.reshape(-1, *x.shape[-2:])
    flat = frames.reshape(len(frames), -1)
    varied = flat.min(axis=1) != flat.max(axis=1)
    if not varied.all():  # (a copy only where there are constant frames)
        frames = frames[varied]
    if not frames.size:
        return None, ""
    top = float(frames.max())
    if top in {float(2**k - 1) for k in CLIP_BITS} or not _piles_up(frames, top):
        return None, ""
    if 2 * int(np.count_nonzero(frames == top)) >= frames.size and not np.any((frames >= top - 16) & (frames < top)):
        # most pixels at it and none within 16 ADU under it: blank frames at one value with a zero border or dead
        # pixels, not a clipped tail (noiseless frames at 100 ADU, a 6 px zero border: 100 "pile-up" in a5db5b5; a
        # bright frame clipped over 63 % of its pixels keeps values just under its level; session-51 review)
        return None, ""
    places = _clipped_places(frames, frames == top, top)
    if int(np.count_nonzero(places)) < MIN_CLIPPED_PIXELS:  # a hot pixel (or three) stuck at the maximum
        return None, ""
    return top, "pile-up"


def _piles_up(x: np.ndarray, top: float) -> bool:
    """Whether ``top``, the largest of values ``x``, is held by at least :data:`MIN_CLIPPED_PIXELS` of them and by at
    least :data:`MIN_CLIP_PILEUP` times the mean count of each of the 16 values below it."""
    n_top = int(np.count_nonzero(x == top))
    n_below = int(np.count_nonzero((x >= top - 16) & (x < top)))
    return n_top >= MIN_CLIPPED_PIXELS and n_top >= MIN_CLIP_PILEUP * max(n_below / 16.0, 1.0)


def _clipped_places(frames: np.ndarray, at: np.ndarray, top: float) -> np.ndarray:
    """(H, W): the pixel positions where ``frames`` (T, H, W) reach ``top`` (``at``) as a clipped spot does. A position
    at ``top`` in every frame (T >= 2) counts only where its 8 neighbours not so stuck hold light (at least a quarter
    of ``top`` above the frames' median) in at least half of the frames: a spot, a bead clipped in every frame, has a
    bright rim (a Gaussian PSF of sigma >= 0.7 px puts >= 36 % of its peak on a side neighbour); a defect pixel, a
    column stuck above every spot or a burned-in overlay have a dark one (5 stuck pixels or one stuck column of an
    unclipped sCMOS movie were taken as its clipping level, every spot touching them flagged: session 50's review)."""
    places = at.any(axis=0)
    if len(frames) < 2:
        return places
    stuck = at.all(axis=0)
    if not stuck.any():
        return places
    base = float(np.median(frames))
    lit = np.where(stuck, np.float32(base), frames.astype(np.float32, copy=False))
    h, w = lit.shape[-2:]
    pad = np.pad(lit, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rim = np.full_like(lit, -np.inf)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                np.maximum(rim, pad[:, dy:dy + h, dx:dx + w], out=rim)
    bright = (rim >= base + 0.25 * (top - base)).mean(axis=0) >= 0.5
    return places & (~stuck | bright)


def detect_clip_adu(raw, dtype=None) -> float | None:
    """A full scale ``2**k - 1`` below the pixel type's maximum that raw frames (ADU) clip at (:func:`find_clip_adu`'s
    ``"found"``: a 12-bit camera's 4095 in a 16-bit file); None otherwise."""
    level, how = find_clip_adu(raw, dtype)
    return level if how == "found" else None


def piled_up_level(raw, dtype=None) -> float | None:
    """A clipping level that is no full scale ``2**k - 1`` where raw frames' (ADU) pixels pile up
    (:func:`find_clip_adu`'s ``"pile-up"``: a full well, 1000 ADU in a 16-bit movie); None otherwise."""
    level, how = find_clip_adu(raw, dtype)
    return level if how == "pile-up" else None


def later_frames(n_frames: int, head: int) -> list[int]:
    """Frames spread evenly over a movie's frames after its first ``head`` (those the camera check reads), as many as
    ``head`` at most: the fits look for the clipping level in them too (:func:`clip_level` of the first frames and
    these), so that a camera that clips only later (the illumination raised, a bright bead drifting into focus) is
    found before the fit (a movie clipped at 1000 ADU from frame 70 of 100, the check reading 64: its rows were fitted
    from clipped light and none was flagged). Empty where the movie has no more frames."""
    rest = int(n_frames) - int(head)
    if rest <= 0 or head <= 0:
        return []
    return sorted({int(v) for v in np.linspace(head, n_frames - 1, min(int(head), rest)).round()})


def clip_level(raw_head, camera, dtype) -> tuple[float | None, str]:
    """Where a channel's raw values clip, and how that was known: ``(saturation_adu, "setting")`` where the camera
    sets it; else the level :func:`find_clip_adu` finds in the first frames ``raw_head`` (ADU; None: not looked at),
    ``(level, "found")`` for a full scale 2^k - 1 and ``(level, "pile-up")`` for any other; else ``(max, "dtype")``,
    the integer pixel type's maximum; else ``(None, "")`` (a float movie)."""
    set_level = getattr(camera, "saturation_adu", None)
    if set_level is not None:
        return float(set_level), "setting"
    if raw_head is not None:
        found, how = find_clip_adu(raw_head, dtype)
        if found is not None:
            return found, how
    level = saturation_adu(dtype)
    return (level, "dtype") if level is not None else (None, "")


def clip_threshold_photons(camera, level: float | None, frame_shape: Sequence[int] | None = None,
                           *, device: torch.device | str = "cpu") -> Tensor | None:
    """The clipping level in photons: a pixel of a frame converted by ``camera`` is clipped where its photons are at
    or above this (a scalar tensor, or an (H, W) map for a camera with per-pixel maps, on ``device``); None where
    ``level`` is. The conversion rises with the ADU at every pixel, so the comparison in photons selects the same
    pixels as ``raw >= level`` on integer ADU: the threshold is that of ``level - 0.5``, halfway to the value below
    (float32 keeps that half step at 65535 ADU). A fit compares its windows of photons with it, with no second copy
    of the raw frames."""
    import torch

    if level is None:
        return None
    cam = _on_cpu(camera)
    shape = tuple(int(v) for v in frame_shape[-2:]) if getattr(cam, "map_shape", None) is not None else (1, 1)
    with torch.no_grad():
        top = cam.to_photons(torch.full(shape, float(level) - 0.5))
    top = top.reshape(()) if shape == (1, 1) else top
    return top.to(device)


def count_clipped(windows: Tensor, threshold: Tensor | None, rows: Tensor | None = None,
                  cols: Tensor | None = None) -> Tensor:
    """Pixels at the clipping level in each window ``windows`` (N, R, R) of photons: ``(N,)`` int64. ``threshold``:
    :func:`clip_threshold_photons` (a scalar, or an (H, W) map read at the windows' frame pixels ``rows``, ``cols``,
    (N, R, 1) and (N, 1, R)); None: zeros."""
    import torch

    if threshold is None:
        return torch.zeros(windows.shape[0], dtype=torch.int64, device=windows.device)
    top = threshold[rows, cols] if threshold.ndim == 2 else threshold
    return (windows >= top).flatten(1).sum(dim=1)


def read_noise_share(camera, level: float) -> float:
    """The share of the predicted pixel variance at ``level`` photons/px that is the camera's read noise (the median
    pixel's for a map); NaN for a camera without ``read_sigma`` or where the level is not finite."""
    import torch

    rs = getattr(camera, "read_sigma", None)
    if rs is None or not np.isfinite(level):
        return math.nan
    cam = _on_cpu(camera)
    shape = tuple(getattr(cam, "map_shape", None) or ())
    with torch.no_grad():
        total = float(cam.noise_variance_photons(torch.full(shape, float(level))).double().median())
    return _read_variance(cam) / total if total > 0 else math.nan


def _read_variance(cam) -> float:
    """The read noise's variance in photons^2 (``read_sigma`` e- after any EM gain, over the gain and qe)."""
    rs = cam.read_sigma
    rs = float(rs.double().median()) if _is_tensor(rs) else float(rs)
    gain = float(getattr(cam, "em_gain", None) or 1.0)
    return (rs / gain) ** 2 / float(cam.qe) ** 2


def _likely_read_sigma(cam, ratio: float, level: float, field: str | None = None) -> tuple[str, dict[str, float]]:
    """The read noise that would give the measured noise (the gain and baseline right), as text, and the field's
    value that fits ({} for a map); "" where the read noise is under ``READ_NOISE_SHARE`` of the predicted noise or
    no read noise explains the ratio. ``field``: the path of the camera's fields in its file (:func:`_advice`)."""
    share = read_noise_share(cam, level)
    if not (np.isfinite(share) and share >= READ_NOISE_SHARE):
        return "", {}
    v_read = _read_variance(cam)
    total = v_read / share
    need = ratio * total - (total - v_read)  # the measured variance less what is not read noise
    if need <= 0:
        # the movie's noise no more than its signal alone gives (within the accepted range): the read noise is near 0 (an
        # EMCCD's read_sigma in e- after the gain register, its EM gain folded into e_per_adu with em_gain 1)
        if ratio * total < NOISE_RANGE[0] * (total - v_read):  # with no read noise still too low: not the read noise
            return "", {}
        name = "read_variance" if _read_noise_field(cam) == "read_variance" else "read_sigma"
        return (_advice(field, name, float(cam.read_sigma) ** 2 if name == "read_variance" else float(cam.read_sigma),
                        "0 e-" + ("²" if name == "read_variance" else ""),
                        "the movie's noise is that of its signal alone")
                + " if the gain and baseline are right") if not (_is_tensor(cam.read_sigma) and cam.read_sigma.ndim) \
            else (f"the {field or ''}{name} map near 0 if the gain and baseline are right"), {}
    gain = float(getattr(cam, "em_gain", None) or 1.0)
    k = math.sqrt(need / v_read) if v_read > 0 else math.inf
    rs = cam.read_sigma
    # an sCMOS whose configuration gives read_variance (e-^2; plexloc calibrate-camera's map): that field, squared
    variance = _read_noise_field(cam) == "read_variance"
    name = "read_variance" if variance else "read_sigma"
    if _is_tensor(rs) and rs.ndim:
        b = round(k)
        # a movie binned b x b (b^2 pixels summed) under maps measured without binning: b times each map's read noise,
        # which maps too flat for the offsets' correlation (plexloc.camera.mapfit) leave untold otherwise
        binned = (f" (a movie binned {b}x{b} under maps measured without binning reads {b}x their read noise: maps "
                  "measured at the movie's binning, plexloc calibrate-camera)" if b in (2, 3, 4) and abs(k - b) < 0.15 * b
                  else "")
        return (f"the {field or ''}{name} map about {k ** 2 if variance else k:.3g}x its values if the gain and "
                f"baseline are right{binned}"), {}
    fit = math.sqrt(need) * float(cam.qe) * gain  # e-
    value = f"{fit ** 2:.3g}" if variance else f"{fit:.3g}"
    return (_advice(field, name, float(rs) ** 2 if variance else float(rs), f"{value} e-²" if variance else f"{value} e-")
            + " if the gain and baseline are right"), {name: float(value)}


def _read_noise_field(cam) -> str:
    """The camera field that gives its read noise: ``read_variance`` where its configuration gave that
    (:func:`plexloc.camera.camera_from_config`), else ``read_sigma``."""
    return getattr(cam, "read_noise_field", None) or "read_sigma"


def _advice(field: str | None, name: str, now: float, fit: str, remark: str = "") -> str:
    """One setting that would fit, as text: ``"e_per_adu about 0.45 e-/ADU"``; where the camera was read from a file
    (``field``: the path of its fields there, ``""`` for a file of the camera's fields alone, ``"camera."``,
    ``"channels.1.camera."``) the field as written there and its value now: ``"camera.e_per_adu about 0.45 e-/ADU
    (now 4.6)"``; ``remark`` in the parentheses: ``"em_gain about 1948 (an em_gain no EMCCD has: 1200 at most)"``,
    ``"... (now 45; an em_gain no EMCCD has: 1200 at most)"``."""
    said = "; ".join(t for t in ("" if field is None else f"now {now:g}", remark) if t)
    return f"{field or ''}{name} about {fit}" + (f" ({said})" if said else "")


def _gain_factor(cam, ratio: float, level: float) -> float:
    """The factor ``c`` on e_per_adu that explains a noise ``ratio`` measured at ``level`` photons/px: ``1 / ratio``
    where shot noise dominates (photons scaled by k read k). Where the read noise is ``READ_NOISE_SHARE`` of the
    predicted variance or more it is solved for: the photons scale by c but the read noise, in e-, does not, so the
    measured variance ``ratio * V(level)`` times c^2 equals the variance the corrected camera predicts at
    ``c * level`` (between ``1 / ratio`` and ``1 / sqrt(ratio)``; an sCMOS at 0.46 e-/ADU set to 0.23, read noise
    1.6 e-, 1.4 photons/px: 0.43 advised 0.86 before, now 0.44)."""
    import torch

    share = read_noise_share(cam, level)
    if not (np.isfinite(share) and share >= READ_NOISE_SHARE and level > 0):
        return 1.0 / ratio
    import copy

    from scipy.optimize import brentq

    shape = tuple(getattr(cam, "map_shape", None) or ())
    e0 = cam.e_per_adu
    other = copy.deepcopy(cam)  # once: the root search sets its e_per_adu
    with torch.no_grad():
        v_m = ratio * float(cam.noise_variance_photons(torch.full(shape, float(level))).double().median())

        def excess(log_c: float) -> float:  # rises with c (c^2 against at most c)
            c = math.exp(log_c)
            other.e_per_adu = e0 * c if _is_tensor(e0) else float(e0) * c
            v = float(other.noise_variance_photons(torch.full(shape, float(level) * c)).double().median())
            return v_m * c * c - v

        lo, hi = math.log(1e-4), math.log(1e4)
        if excess(lo) * excess(hi) > 0:
            return 1.0 / ratio
        return math.exp(brentq(excess, lo, hi, xtol=1e-12))


def _likely_values(camera, photons: Tensor, ratio: float, level: float, *, max_frames: int = NOISE_FRAMES,
                   gain_factor: float | None = None, field: str | None = None,
                   values: list[dict[str, float]] | None = None, baseline_first: bool = False) -> str:
    """What the camera settings would likely be for a noise ``ratio`` measured at ``level`` photons/px, as text: the
    gain that scales the photons by the ratio (the baseline right: shot noise dominating, photons scaled by k read
    k), and the baseline that the photon transfer of the dimmer half of the pixels gives (the gain right: their mean
    squared frame-to-frame difference over 2 is the noise of their mean signal, ``V(s) = V(0) + s (V(1) - V(0))``
    under the camera settings, which gives the signal s; the settings' signal there less s is the baseline's error:
    106.5 ADU for the SMLM Challenge EMCCD's 100 and 100.2 for an sCMOS's 100, whatever baseline was set, at 20-100
    photons/px). "" where nothing can be said (an EMCCD below ``MIN_EMCCD_PHOTONS``: the ratio is no scale there).
    ``field``: the path of the camera's fields in the file it was read from, each setting named by it with its value
    now (:func:`_advice`); None: the setting's name alone. ``values``, where given, receives one dict per alternative
    named, in the text's order: the fields of that alternative's first setting and their values that fit
    (``{"e_per_adu": 0.439}``; ``{}`` where it is a map's factor), from which a camera that fits is written
    (:attr:`CameraCheck.noise_warnings` of a model's camera). ``baseline_first``: half of the pixels sit below the
    baseline (:func:`dim_offset`), which no gain or read noise explains: the baseline, where one is named, comes
    first."""
    import torch

    if not (np.isfinite(ratio) and ratio > 0):
        return ""
    cam = _on_cpu(camera)
    if getattr(cam, "em_gain", None) is not None and np.isfinite(level) and level < MIN_EMCCD_PHOTONS:
        return ""
    parts = [p for p in [_likely_read_sigma(cam, ratio, level, field)] if p[0]]
    read_first = bool(parts)
    e, g = getattr(cam, "e_per_adu", None), getattr(cam, "em_gain", None)
    if e is not None:
        e_val = float(e) if not _is_tensor(e) or e.ndim == 0 else None
        c = _gain_factor(cam, ratio, level) if gain_factor is None else gain_factor
        e_fit = f"{e_val * c:.3g}" if e_val is not None else ""
        gain = (_advice(field, "e_per_adu", e_val, f"{e_fit} e-/ADU") if e_val is not None else
                f"the {field or ''}e_per_adu map about {c:.3g}x its values")
        em = "" if g is None else " or " + _advice(
            field, "em_gain", float(g), f"{g / c:.3g}" if g / c < 1000 else f"{g / c:.0f}",
            "" if _plausible_em_gain(g / c) else f"an em_gain no EMCCD has: {MAX_EM_GAIN:g} at most")
        parts.append((gain + em + " if the baseline is right", {"e_per_adu": float(e_fit)} if e_fit else {}))
    gain_first = g is None or _plausible_em_gain(g / c) if e is not None else True
    x = photons[:_frames_for(photons, max_frames)].detach().float().cpu()
    if hasattr(cam, "baseline") and x.ndim == 3 and x.shape[0] >= 2:
        a, b = x[:-1], x[1:]
        m = (a + b) / 2
        d = a - b
        d = d - d.flatten(1).median(dim=1).values[:, None, None]
        sm = torch.nn.functional.avg_pool2d(m[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
        dim = sm <= sm.flatten(1).quantile(NOISE_QUANTILES[0], dim=1)[:, None, None]
        mean, var = float(m[dim].double().mean()), float(d[dim].double().square().mean()) / 2.0
        shape = tuple(getattr(cam, "map_shape", None) or ())
        with torch.no_grad():
            v0 = float(cam.noise_variance_photons(torch.zeros(shape)).double().median())
            v1 = float(cam.noise_variance_photons(torch.ones(shape)).double().median())
            signal = max((var - v0) / max(v1 - v0, 1e-12), 0.0)
            delta = float((cam.expected_adu(torch.full(shape, mean)) -
                           cam.expected_adu(torch.full(shape, signal))).double().median())
        base = cam.baseline
        base_val = float(base.double().median()) if _is_tensor(base) else float(base)
        if np.isfinite(delta) and abs(delta) >= 1.0 and base_val + delta >= 0:  # (below 0: no baseline explains it)
            if _is_tensor(base) and base.ndim:
                parts.append((f"the {field or ''}baseline map about {abs(delta):.0f} ADU "
                              f"{'higher' if delta > 0 else 'lower'} if the gain is right", {}))
            else:
                parts.append((_advice(field, "baseline", base_val, f"{base_val + delta:.0f} ADU")
                              + " if the gain is right", {"baseline": float(f"{base_val + delta:.0f}")}))
            if not gain_first or baseline_first:  # the gain's explanation needs an impossible EM gain, or the dim
                # pixels sit below the baseline: the baseline's comes first; after a read noise that explains the
                # ratio, where no pixel sits below the baseline (an EMCCD's gain folded into e_per_adu, read_sigma kept)
                parts.insert(1 if read_first and not baseline_first else 0, parts.pop())
    if values is not None:
        values.extend(v for _, v in parts)
    return "; ".join(t for t, _ in parts)


def _e_per_adu_unit(camera, photons: Tensor, *, max_frames: int = NOISE_FRAMES, field: str | None = None,
                    values: list[dict[str, float]] | None = None) -> str:
    """The e_per_adu that fits where the noise check measured no gain (an EMCCD's photons scaled down so far that they
    read under ``MIN_EMCCD_PHOTONS``): the camera's scalar e_per_adu read in another unit, as ADU per e- (1 / e_per_adu)
    or as photons per ADU (e_per_adu x em_gain x qe, the gain folded in), where the frames converted with it read a
    noise ratio within ``NOISE_RANGE`` (the e_per_adu of a camera YAML written in photons per ADU, 0.0667 for 12 e-/ADU
    at gain 200 and qe 0.9, was warned about with no value that fits). Its advice as :func:`_likely_values` gives it;
    "" where neither fits."""
    import copy

    import torch

    cam = _on_cpu(camera)
    e = getattr(cam, "e_per_adu", None)
    if e is None or (_is_tensor(e) and e.ndim) or getattr(cam, "kind", None) not in ("emccd", "scmos"):
        return ""
    e = float(e)
    qe, g = float(getattr(cam, "qe", 1.0)), getattr(cam, "em_gain", None)
    sc = float(getattr(cam, "spurious_charge", 0.0) or 0.0)
    options = [(1.0 / e, f"1 / {e:g}: written as ADU per e-?")]
    if g is not None:
        options.append((e * float(g) * qe, f"{e:g} x em_gain {float(g):g} x qe {qe:g}: written as photons per ADU?"))
    lo, hi = NOISE_RANGE
    best = None
    for e_new, why in options:
        alt = copy.deepcopy(cam)
        alt.e_per_adu = torch.as_tensor(e_new, dtype=torch.float32) if _is_tensor(getattr(cam, "e_per_adu")) else e_new
        # photons are linear in e_per_adu: (photons + sc / qe) scales by e_new / e
        ph = (photons[:_frames_for(photons, max_frames)].detach().float().cpu() + sc / qe) * (e_new / e) - sc / qe
        r = noise_measure(ph, alt, max_frames=max_frames)[0]
        if np.isfinite(r) and lo <= r <= hi and (best is None or abs(math.log(r)) < best[0]):
            best = (abs(math.log(r)), e_new, why)  # the one whose ratio is nearest 1
    if best is None:
        return ""
    if values is not None:
        values.append({"e_per_adu": float(f"{best[1]:.4g}")})
    return _advice(field, "e_per_adu", e, f"{best[1]:.4g} e-/ADU", best[2])


#: em_gain over e_per_adu (or its inverse) under which a swap of the two is not named (:func:`_swap_ratio`): exchanged,
#: they scale the photons by under 4x, which NOISE_RANGE (1.8x wide) cannot tell from an e_per_adu off by as much (an
#: EMCCD at em_gain 10 and 8 e-/ADU given e_per_adu 12 or 16 was advised em_gain 12 or 16, e_per_adu 10, as a swap);
#: "the two swapped?" is still asked there
MIN_SWAP_GAIN_RATIO = 2.0


def _swap_ratio(camera, photons: Tensor, *, max_frames: int = NOISE_FRAMES) -> float:
    """An EMCCD's noise ratio (:func:`noise_measure`) with its em_gain and e_per_adu exchanged, the frames converted
    back to ADU and again with the exchanged values, where it is within ``NOISE_RANGE`` (frames too crowded swapped
    back: their high-passed ratio, up to ``MAX_DIM_SHOT_RATIO``; an EMCCD signal under ``MIN_EMCCD_PHOTONS`` swapped
    back: their plain ratio, from ``MIN_DIM_EMCCD_RATIO``); else NaN (and for any other
    camera, an em_gain within ``MIN_SWAP_GAIN_RATIO`` of e_per_adu, or an e_per_adu under 1, which no em_gain can be). The ratio alone does not
    tell a swap: at 2 photons/px the SMLM Challenge EMCCD's swapped values (photons 44x high) read 30x and were advised
    as an e_per_adu of 9.9 or an em_gain no EMCCD has."""
    import copy

    import torch

    cam = _on_cpu(camera)
    if getattr(cam, "kind", None) != "emccd":
        return math.nan
    g, e = float(cam.em_gain), float(cam.e_per_adu)
    if e < 1.0 or abs(math.log(g / e)) < math.log(MIN_SWAP_GAIN_RATIO):
        return math.nan
    alt = copy.deepcopy(cam)
    alt.em_gain, alt.e_per_adu = e, g
    with torch.no_grad():
        ph = alt.to_photons(cam.expected_adu(photons[:_frames_for(photons, max_frames)].detach().float().cpu()))
    st: dict = {}  # noise_measure's statistics: read below, not computed again (bench/clip50.py)
    r, note, _ = noise_measure(ph, alt, max_frames=max_frames, stats=st)
    if np.isfinite(r):
        return r if NOISE_RANGE[0] <= r <= NOISE_RANGE[1] else math.nan
    if note.startswith("frames too crowded"):
        # swapped back, too crowded to measure: the high-passed ratio, which on right cameras so crowded read 1.23-1.41
        # (5 emitters/um^2; the swap as given 33-54x: bench/camera49.py), within NOISE_RANGE[0]-MAX_DIM_SHOT_RATIO
        r = min(st["hp_ratios"][q] for q in NOISE_QUANTILES)
        return r if NOISE_RANGE[0] <= r <= MAX_DIM_SHOT_RATIO else math.nan
    if not note.startswith("an EMCCD signal"):
        return math.nan
    # swapped back, the signal is under MIN_EMCCD_PHOTONS, where a right camera reads MIN_DIM_EMCCD_RATIO-1.01 (the
    # SMLM Challenge EMCCD at 2 photons/px, swapped back: 0.5-0.9; as given 30x)
    r = min(st["ratios"][q] for q in NOISE_QUANTILES)
    return r if MIN_DIM_EMCCD_RATIO <= r <= NOISE_RANGE[1] else math.nan


def _em_gain_fit(cam, c: float) -> float:
    """The em_gain that explains the noise with e_per_adu kept (the gain factor ``c`` on e_per_adu, 1 / c on em_gain);
    NaN without EM gain."""
    g = getattr(cam, "em_gain", None)
    return float(g) / c if g is not None and np.isfinite(c) and c > 0 else math.nan


def _plausible_em_gain(gain: float) -> bool:
    """An EM gain a camera can have: 1 (no multiplication) to ``MAX_EM_GAIN``."""
    return bool(np.isfinite(gain) and 1.0 <= gain <= MAX_EM_GAIN)


def camera_source(camera) -> tuple[str, str] | None:
    """The file a camera was read from and the path of its fields there (``("camera.yaml", "")``, ``("config.yaml",
    "camera.")``, ``("config.yaml", "channels.1.camera.")``), as :func:`plexloc.camera.camera_from_config` keeps it
    from a configuration the loaders read (:func:`plexloc.config.load_config`,
    :func:`~plexloc.config.load_camera_configs`); None for a camera built in Python."""
    src = getattr(camera, "config_source", None)
    return (str(src[0]), str(src[1])) if src else None


def camera_model(camera) -> tuple[str, dict | None] | None:
    """The model whose training configuration gave a camera (the model as the user named it: a run folder or model
    file) and the camera's fields there (None where they name files: sCMOS maps), as
    :func:`plexloc.camera.models.model_camera` keeps them for a fit given no camera; None for any other camera."""
    src = getattr(camera, "model_source", None)
    return (str(src[0]), src[1]) if src else None


def _yaml_number(v: float) -> str:
    """A number as YAML reads it back as a number (PyYAML reads ``1e-05``, without a dot, as text)."""
    t = f"{v:g}"
    return np.format_float_positional(v, trim="-") if "e" in t else t


def _camera_yaml(fields: dict) -> str:
    """A camera's fields as a one-line YAML camera section, ``camera: {kind: emccd, qe: 0.9, ...}``, which a
    ``--camera`` file can hold as it is (:func:`plexloc.config.load_camera_config`)."""
    return "camera: {" + ", ".join(f"{k}: {v if isinstance(v, str) else _yaml_number(float(v))}"
                                   for k, v in fields.items()) + "}"


def camera_settings(camera, file: str = "") -> str:
    """The settings that convert ADU to photons, for messages: ``em_gain 300, e_per_adu 45 e-/ADU, ...``; ``file``:
    the file the camera was read from (``emccd camera of camera.yaml (...)``)."""
    parts = []
    for name, unit in (("em_gain", ""), ("e_per_adu", " e-/ADU"), ("baseline", " ADU"), ("qe", ""),
                       ("read_sigma", " e-")):
        v = getattr(camera, name, None)
        if v is None:
            continue
        if _is_tensor(v):
            v = float(v) if v.ndim == 0 else None
        parts.append(f"{name} {v:g}{unit}" if v is not None else f"{name} per-pixel map")
    return (f"{getattr(camera, 'kind', 'camera')} camera" + (f" of {file}" if file else "")
            + (f" ({', '.join(parts)})" if parts else ""))


def _map_fix(found: tuple[int, int, int, float] | None, cut: tuple[int, int, str] | None) -> str:
    """The fix that :attr:`CameraCheck.map_warnings` gives for maps that are not the movie's pixels': ``found``, where
    the movie's pixels fit the map (:attr:`plexloc.camera.mapfit.MapMatch.found`: x, y, binning, correlation), and
    ``cut``, where the maps were cut from the chip's (:attr:`ChannelCheck.map_cut`)."""
    if found is None:
        return ("Give the maps of the movie's region and binning: cut the chip's maps at the ROI's corner "
                "(--roi-offset X Y) or measure them on dark frames taken as the movie was (plexloc calibrate-camera)")
    x, y, b, r = found
    if b != 1:
        return (f"The movie's pixels fit the map's {b}x{b} binned sums at binned x {x}, y {y} (correlation {r:.2f}): the "
                f"movie was recorded with {b}x{b} binning and the maps without; measure them on dark frames at the "
                "movie's binning and region (plexloc calibrate-camera)")
    how = cut[2] if cut is not None else ""
    if "roi_offset_px" in how:  # (plexloc info, fit --method mle: the configuration's ROI)
        give = f"set roi_offset_px: [{x}, {y}] in the configuration (or give --roi-offset {x} {y})"
    else:
        give = f"give --roi-offset {x} {y}" + (
            " (it takes precedence over the movie's metadata)" if cut is not None and "--roi-offset" not in how else "")
    return (f"The movie's pixels fit the map at chip x {x}, y {y} (correlation {r:.2f}): {give}"
            + (", with the full chip's maps" if cut is None else "") + ", or crop the maps to that region")


def _folded_ratio(ch: ChannelCheck) -> float:
    """The noise ratio of an EMCCD set to em_gain under :data:`FOLDED_EM_GAIN` had its model the excess noise of a high
    EM gain (F^2 = 2), where that is within ``NOISE_RANGE`` and the ratio measured is above it; else 0. The EM gain
    folded into e_per_adu (em_gain 1, e_per_adu 0.15 for a camera of gain 300 and 45 e-/ADU, read_sigma divided by the
    gain): the model at em_gain 1 has no excess noise (F^2 = 2 - 1/G = 1), the movie has twice the signal's variance,
    and the ratio of 1.85 was advised as an e_per_adu of 0.081 or an em_gain of 1.85 (photons 1.9x off had it been
    followed)."""
    from plexloc.camera.models import excess_noise_factor

    r, g = ch.noise_ratio, ch.em_gain_value
    if not (ch.em_gain and np.isfinite(g) and g < FOLDED_EM_GAIN and np.isfinite(r) and r > NOISE_RANGE[1]):
        return 0.0
    share = ch.read_share if np.isfinite(ch.read_share) else 0.0
    r2 = r / (share + (1.0 - share) * 2.0 / excess_noise_factor(g))
    return r2 if NOISE_RANGE[0] <= r2 <= NOISE_RANGE[1] else 0.0


def _em_off_ratio(ch: ChannelCheck) -> float:
    """The noise ratio an EMCCD read out without EM gain (its conventional amplifier: no excess noise) shows under the
    emccd model, ``share + (1 - share) / F^2`` with F^2 the model's excess noise at its em_gain (``(1 + read share)
    / 2`` before session 49, when F^2 was 2 at any gain), where the camera is an EMCCD with em_gain under
    :data:`FOLDED_EM_GAIN` and the measured ratio is that within :data:`NOISE_RANGE`; else 0."""
    from plexloc.camera.models import excess_noise_factor

    r, g = ch.noise_ratio, ch.em_gain_value
    if not (ch.em_gain and np.isfinite(g) and g < FOLDED_EM_GAIN and np.isfinite(r) and 0 < r < 1):
        return 0.0
    share = ch.read_share if np.isfinite(ch.read_share) else 0.0
    # (the model's excess noise at this gain, 2 - 1/G: 1 at em_gain 1, where the conventional amplifier fits it)
    expected = share + (1.0 - share) / excess_noise_factor(g)
    return expected if NOISE_RANGE[0] <= r / expected <= NOISE_RANGE[1] else 0.0


@dataclass
class ChannelCheck:
    """One channel's findings: the noise ratio (NaN where not measured), the pixels at the clipping level."""

    channel: int
    noise_ratio: float
    saturated: int
    pixels: int
    saturation_adu: float | None
    settings: str = ""
    #: why the noise ratio is NaN ("" where measured, or not asked for)
    noise_note: str = ""
    #: the camera has an EM gain (the clipping advice names it; an sCMOS has none)
    em_gain: bool = False
    #: where ``saturation_adu`` came from (:func:`clip_level`): "setting", "found" (a full scale 2^k - 1 in the
    #: frames), "pile-up" (another level the frames' values pile up at), "dtype" ("" for a float movie)
    level_source: str = "dtype"
    #: the settings that would fit the measured noise (:func:`_likely_values`), for the noise warning
    likely: str = ""
    #: the signal (photons/px) at which the noise ratio was measured (NaN where not)
    noise_level: float = math.nan
    #: the read noise's share of the predicted variance at ``noise_level`` (:func:`read_noise_share`; NaN where not
    #: measured or without read noise)
    read_share: float = math.nan
    #: the factor on e_per_adu that would explain the noise ratio (:func:`_gain_factor`; NaN where not measured)
    gain_factor: float = math.nan
    #: the em_gain that the gain's explanation of the noise ratio needs (NaN without EM gain or where not measured)
    em_gain_fit: float = math.nan
    #: the camera's kind ("ideal": frames taken as photons, with no gain or offset to advise)
    kind: str = ""
    #: the file the camera was read from ("": a camera built in Python) and the path of its fields there
    #: (:func:`camera_source`): the warnings name them, so that the user knows what to edit
    camera_file: str = ""
    camera_field: str = ""
    #: the field that gives the camera's read noise: "read_variance" where its configuration gave that (e-^2)
    read_noise_field: str = "read_sigma"
    #: the model whose training configuration gave the camera (a fit given no camera: :func:`camera_model`), as the
    #: user named it; "" for any other camera. Its warnings say so and give the fix: the movie's camera with --camera
    camera_model: str = ""
    #: that camera's fields with the first setting that would fit put in (None where it cannot be written: maps, or
    #: nothing advised), for the ``--camera`` YAML the warning writes out
    fitting_camera: dict | None = None
    #: the pixels against the baseline (:func:`dim_offset`): the median of the pixels' medians over the
    #: frames, in ADU above the baseline (negative: below it) and in photons, and how far below it a right camera's
    #: could sit by noise alone (ADU); NaN where not measured
    dim_adu: float = math.nan
    dim_photons: float = math.nan
    dim_margin_adu: float = math.nan
    #: the camera's baseline (ADU; NaN for per-pixel maps) and the map's file where it is one
    baseline: float = math.nan
    baseline_map: str = ""
    #: pixels above a ``saturation_adu`` the camera sets (by a whole ADU): the camera does not clip there
    above_level: int = 0
    #: the camera's em_gain (NaN without one)
    em_gain_value: float = math.nan
    #: an sCMOS offset map against the movie's own pixel offsets (:func:`plexloc.camera.mapfit.map_match`): None
    #: without a baseline map
    map_match: MapMatch | None = None
    #: where the maps were cut from a larger (chip) map: the corner (x, y) and where it came from (--roi-offset, the
    #: movie's metadata); None where the maps are used as given
    map_cut: tuple[int, int, str] | None = None
    #: an EMCCD's noise ratio with its em_gain and e_per_adu swapped, where that fits (:func:`_swap_ratio`; the swap
    #: is named first); NaN elsewhere
    swap_ratio: float = math.nan

    @property
    def saturated_fraction(self) -> float:
        return self.saturated / self.pixels if self.pixels else 0.0


@dataclass
class CameraCheck:
    """The findings of :func:`check_camera` for every channel; :attr:`warnings` are the messages."""

    channels: list[ChannelCheck] = field(default_factory=list)
    source: str = ""
    frames: int = 0
    noise_range: tuple[float, float] = NOISE_RANGE
    max_saturated: float = MAX_SATURATED_FRACTION

    #: each channel's movie where they are separate files (messages name the channel's own file)
    sources: list[str] = field(default_factory=list)
    #: a caller has told a baseline above the camera's offset itself (``plexloc info``'s comparison of the settings):
    #: :attr:`baseline_warnings` does not say it again
    baseline_told: bool = False
    #: ... and a ``saturation_adu`` that the movie's pixels exceed: :attr:`saturation_warnings` does not say it again
    above_level_told: bool = False

    def _where(self, c: int) -> str:
        chan = f"channel {c}: " if len(self.channels) > 1 else ""
        src = self.sources[c] if c < len(self.sources) else self.source
        return f"{src}: {chan}" if src else chan

    def _model_fix(self, ch: ChannelCheck) -> str:
        """For a camera taken from a model's training configuration: where it came from and the fix, the movie's
        camera given with ``--camera`` (with the camera that would fit written out where it can be; a multi-channel
        model's fit takes every channel's, one ``--camera`` per channel in channel order), not an edit of the run
        folder (the model file holds its configuration)."""
        written = f"e.g. the first setting above put in: {_camera_yaml(ch.fitting_camera)}" if ch.fitting_camera else ""
        kind = " (its kind, emccd or scmos, and settings)" if ch.kind == "ideal" else ""
        if len(self.channels) > 1:  # one camera given for a multi-channel model is refused: every channel's
            fix = ("give every channel's camera with --camera once per channel, in channel order (CH0.yaml, CH1.yaml, "
                   f"...), or one configuration with every channel's camera{kind}"
                   + (f"; channel {ch.channel}'s, {written}" if written else ""))
        else:
            fix = "give the movie's camera with --camera CAMERA.yaml" + (f", {written}" if written else kind)
        return (f"No camera was given, so these are the settings of the camera the model was trained with "
                f"({ch.camera_model}'s training configuration, channels.{ch.channel}.camera): {fix}; or measure the "
                "camera with plexloc calibrate-camera (editing the run folder changes nothing: the model file holds "
                "its configuration)")

    def source_advice(self, c: int) -> str:
        """What channel ``c``'s noise warning adds to a finding said elsewhere (a network fit's training-domain
        report): the settings that would fit, named in the camera's file where it was read from one, and where the
        camera is a model's the fix (:meth:`_model_fix`); "" where neither applies or nothing was told."""
        ch = self.channels[c] if c < len(self.channels) else None
        lo, hi = self.noise_range
        if ch is None or not np.isfinite(ch.noise_ratio) or ch.noise_ratio <= 0 or lo <= ch.noise_ratio <= hi:
            return ""
        if ch.camera_model:
            return (f"The settings that would fit: {ch.likely}. " if ch.likely else "") + self._model_fix(ch)
        if ch.camera_file and ch.likely:
            return f"The settings that would fit, in {ch.camera_file}: {ch.likely}"
        return ""

    @property
    def noise_warnings(self) -> list[str]:
        out = []
        lo, hi = self.noise_range
        for ch in self.channels:
            r = ch.noise_ratio
            if not np.isfinite(r) or r <= 0 or lo <= r <= hi:  # 0: no noise at all (a synthetic movie): not told
                continue
            if (ch.em_gain and r > 1 and np.isfinite(ch.noise_level) and ch.noise_level <= 0
                    and np.isfinite(ch.dim_adu) and ch.dim_adu < -ch.dim_margin_adu):
                continue  # an EMCCD with no signal left in the dimmer half (measured there since session 49) and half
                # of the pixels below the baseline: the baseline warning tells it, with the baseline that fits
            dim = ch.em_gain and np.isfinite(ch.noise_level) and ch.noise_level < MIN_EMCCD_PHOTONS
            em_off = _em_off_ratio(ch)
            gain = "an em_gain set too {} or an e_per_adu too {}" if ch.em_gain else "an e_per_adu too {1}"  # sCMOS: none
            c = ch.gain_factor if np.isfinite(ch.gain_factor) and ch.gain_factor > 0 else 1.0 / r
            swapped = np.isfinite(ch.swap_ratio)  # (named first, below)
            gain_cause = (gain.format("low", "high") + f" (photons scaled up about {1 / c:.2g}x"
                          + ("; the two swapped?" if ch.em_gain and not swapped else "") + ")" if r > 1 else
                          gain.format("high", "low") + " (photons scaled down "
                          + (f"many times: they read {ch.noise_level:.2g} photons/px, where a right camera's ratio is "
                             f"{MIN_DIM_EMCCD_RATIO:g}-1.35; an e_per_adu written as ADU/e-?)" if dim else
                             f"about {c:.2g}x)"))
            base_cause = ("a baseline above the camera's offset (photons taken away: the dim pixels' signal reads lower "
                          "than their noise)" if r > 1 else
                          "a baseline below the camera's offset (photons added that carry no noise)")
            if ch.em_gain and np.isfinite(ch.em_gain_fit) and not _plausible_em_gain(ch.em_gain_fit):
                # the em_gain explanation needs a gain no EMCCD has: the e_per_adu one stays; the baseline comes first
                # only where the dim pixels' photon transfer names a baseline (an e_per_adu typed 10x: none)
                e_cause = (f"an e_per_adu too high{'' if swapped else ', or em_gain and e_per_adu swapped'} (photons scaled up about "
                           f"{1 / c:.2g}x; an em_gain set too low alone would have to be {ch.em_gain_fit:.0f}, which no "
                           "EMCCD has)" if r > 1 else
                           f"an e_per_adu too low (photons scaled down about {c:.2g}x; an em_gain set too high alone "
                           f"would have to be {ch.em_gain_fit:.2g}, which no EMCCD has)")
                names_baseline = "if the gain is right" in ch.likely  # (the baseline's advice alone ends so)
                cause = f"{base_cause}, or {e_cause}" if names_baseline else f"{e_cause}, or {base_cause}"
            else:
                cause = f"{gain_cause}, or {base_cause}"
            folded = _folded_ratio(ch)
            if folded:
                cause = (f"an EM gain folded into e_per_adu (em_gain {ch.em_gain_value:g}: the emccd model has then no "
                         "excess noise, F^2 = 2 - 1/em_gain, where the EM register of a high gain doubles the signal's "
                         f"variance; with it the noise reads {folded:.2f}x): give em_gain and e_per_adu as the camera is "
                         "set (e_per_adu that of its A/D converter, read_sigma in e- after the gain register), "
                         f"or {cause}")
            if swapped:
                cause = (f"em_gain and e_per_adu swapped (photons scaled {'up' if r > 1 else 'down'} about "
                         f"{r if r > 1 else 1 / r:.2g}x; with the two exchanged the noise fits, "
                         f"{ch.swap_ratio:.2f}x), or {cause}")
            if ch.kind == "ideal":  # frames taken as photons: no gain, offset or read noise to blame
                cause = ("raw camera counts read as photons (an ideal camera takes the frames as photons: raw ADU above "
                         "a camera's offset carry less noise than their values)" if r < 1 else
                         "frames converted to photons from a camera with read noise or EM gain (an EMCCD's excess noise "
                         "doubles the variance), or photons scaled up")
                cause += ("; give the raw movie with its camera's kind (emccd or scmos) and settings instead of kind: "
                          "ideal" + (f" in {ch.camera_file}" if ch.camera_file else ""))
            elif em_off:
                # em_gain about 1 and the noise of a camera without excess noise: the conventional amplifier (EM off),
                # which the EMCCD model (excess noise at any em_gain) does not describe; the rest after it
                cause = (f"an EMCCD read out without EM gain (the conventional amplifier, em_gain {ch.em_gain_value:g}: "
                         f"the noise is {r / em_off:.2f}x that of a camera without excess noise), which the emccd model "
                         "does not describe (it keeps the EM register's excess noise, twice the signal's variance, at "
                         f"any em_gain): give it as {EM_OFF_NOTE}; else {cause}")
            elif np.isfinite(ch.read_share) and ch.read_share >= READ_NOISE_SHARE:
                # the field the camera's configuration gives its read noise by (read_variance: e-^2)
                unit = ("read_variance is in e-², a read noise variance in ADU² times e_per_adu²"
                        if ch.read_noise_field == "read_variance" else
                        "read_sigma is in e-, a read noise in ADU times e_per_adu")
                folded = (f"; with em_gain {ch.em_gain_value:g} an EMCCD's EM gain may be folded into e_per_adu: read_sigma, "
                          "in e- after the gain register, is then divided by that gain too, or better, em_gain and "
                          "e_per_adu given as the camera is set (e_per_adu that of its A/D converter, without the gain)"
                          if ch.em_gain_value < FOLDED_EM_GAIN and r < 1 else "")
                cause = (f"a {ch.read_noise_field} set too {'low' if r > 1 else 'high'} (read noise is "
                         f"{ch.read_share:.0%} of the predicted pixel variance at {ch.noise_level:.2g} photons/px; "
                         f"{unit}{folded}), or {cause}")
            if ch.kind == "scmos" and EMCCD_AS_SCMOS[0] <= r <= EMCCD_AS_SCMOS[1]:
                # an EMCCD's excess noise doubles the variance: halving e_per_adu, as advised, would halve the photons
                cause += (", or an EMCCD's frames read as an sCMOS's (its EM gain's excess noise doubles the variance; "
                          "then kind: emccd with its em_gain and e_per_adu, and the e_per_adu advised here would halve "
                          "the photons)")
            if ch.kind != "ideal" and np.isfinite(ch.dim_adu) and ch.dim_adu < -ch.dim_margin_adu and base_cause in cause:
                # half of the pixels sit below the baseline: no gain or read noise explains that, the baseline first
                rest = cause.replace(f", or {base_cause}", "").replace(f"{base_cause}, or ", "")
                cause = (f"a baseline above the camera's offset (half of the pixels sit {-ch.dim_adu:.3g} ADU or more below it, "
                         f"{ch.dim_photons:.3g} photons/px: photons taken away), or {rest}")
            elif r > 1 and np.isfinite(ch.noise_level) and ch.noise_level <= 0 and base_cause in cause:
                # the dimmer half reads no signal at all, yet noise far above the read noise: photons taken away
                rest = cause.replace(f", or {base_cause}", "").replace(f"{base_cause}, or ", "")
                cause = (f"a baseline above the camera's offset (the dimmer half of the pixels reads "
                         f"{ch.noise_level:.2g} photons/px, with the noise of a signal: photons taken away), or {rest}")
            # a camera read from a file: the file to edit, and each setting by its field there with its value now
            in_file = f" in {ch.camera_file}" if ch.camera_file else ""
            likely = (f" The settings that would fit{',' + in_file if in_file else ''}: "
                      + (f"{EM_OFF_NOTE} (an EMCCD without EM gain); else " if em_off else "")
                      + f"{ch.likely}." if ch.likely else
                      (f" The settings that would fit{',' + in_file if in_file else ''}: {EM_OFF_NOTE}." if em_off
                       else ""))
            shown = f"{r:.2f}" if r >= 0.01 else f"{r:.2g}"
            # a model's camera (no --camera given): the camera to give, not a file to edit
            fix = (self._model_fix(ch) if ch.camera_model else
                   f"Check the camera's values{in_file} against the movie, or measure them (plexloc calibrate-camera)")
            wrong = ("the noise model is wrong (the photons' mean may be right)" if em_off or folded else
                     "the photons and background are wrong")
            out.append(
                f"{self._where(ch.channel)}the pixel noise between frames is {shown}x what the camera settings predict "
                f"for that signal (accepted {lo:g}-{hi:g}; {ch.settings}): {wrong}, likely from {cause}.{likely} {fix}"
            )
        return out

    @property
    def saturation_warnings(self) -> list[str]:
        out = []
        for ch in self.channels:
            if ch.saturation_adu is not None and ch.level_source in ("found", "pile-up") and ch.saturated:
                if ch.level_source == "found":
                    k = int(round(math.log2(ch.saturation_adu + 1)))
                    how = f" (2^{k} - 1)", f"(a {k}-bit camera in a file whose maximum is higher)"
                else:  # any other level the values pile up at (find_clip_adu)
                    how = (", piled up there", "(its full well, or its offset and gain, end its range below the file's "
                           "integer maximum)")
                out.append(
                    f"{self._where(ch.channel)}{ch.saturated} pixels ({100 * ch.saturated_fraction:.3g} %) sit at "
                    f"exactly {ch.saturation_adu:.0f} ADU{how[0]} and none above it in the first {self.frames} "
                    f"frames: the camera clips there {how[1]}. plexloc fit "
                    f"flags the rows whose spot reaches it (column saturated_px; plexloc filter --no-saturated drops "
                    f"them): their photons come out low. Set {ch.camera_field}saturation_adu: "
                    f"{ch.saturation_adu:.0f} in "
                    + (ch.camera_file if ch.camera_file else
                       f"a camera YAML given with --camera CAMERA.yaml (no camera was given: the camera is the one the "
                       f"model was trained with, {ch.camera_model}'s training configuration)" if ch.camera_model else
                       "the camera section (camera YAML or configuration)")
                    + " to make it the level, or "
                    + ("lower the EM gain or the exposure" if ch.em_gain else "shorten the exposure or lower the illumination")
                )
                continue
            if ch.saturation_adu is None or ch.saturated_fraction <= self.max_saturated:
                continue
            if ch.level_source == "setting" and ch.above_level and self.above_level_told:
                continue
            if ch.level_source == "setting" and ch.above_level:
                # pixels above the level: no camera clips there (a 12-bit setting on a 16-bit camera's movie): its
                # spots at or above it are flagged as saturated in error (column saturated_px)
                out.append(
                    f"{self._where(ch.channel)}{ch.above_level} pixel values of the first {self.frames} frames lie above "
                    f"the camera's saturation_adu, {ch.saturation_adu:.0f} ADU ({ch.camera_field}saturation_adu"
                    + (f" in {ch.camera_file}" if ch.camera_file else "") + "): the camera does not clip there, and the "
                    "fits flag every spot that reaches it as saturated (column saturated_px, which plexloc filter "
                    "--no-saturated drops); set saturation_adu to the level the camera's values pile up at (plexloc "
                    "info shows any), or leave it out")
                continue
            if ch.level_source == "setting":
                out.append(
                    f"{self._where(ch.channel)}{100 * ch.saturated_fraction:.3g} % of the pixels "
                    f"({ch.saturated} of {ch.pixels}) reach {ch.saturation_adu:.0f} ADU, the camera's saturation_adu: "
                    f"they were clipped, and bright emitters come out with too few photons ({ch.settings}). "
                    + ("Lower the EM gain or the exposure" if ch.em_gain else "Shorten the exposure or lower the illumination")
                )
                continue
            out.append(
                f"{self._where(ch.channel)}{100 * ch.saturated_fraction:.3g} % of the pixels "
                f"({ch.saturated} of {ch.pixels}) sit at {ch.saturation_adu:.0f} ADU, the pixel type's maximum: they "
                f"were clipped, and bright emitters come out with too few photons ({ch.settings}). "
                + ("Lower the EM gain or the exposure" if ch.em_gain else "Shorten the exposure or lower the illumination")
                + " (a simulation: raise e_per_adu)"
            )
        return out

    @property
    def baseline_warnings(self) -> list[str]:
        """A baseline above the camera's offset by more than noise explains (:func:`dim_offset`), where the noise
        warning, which names a baseline that fits where its photon transfer can, has not been given: the fit's photons
        and background come out low or negative."""
        out = []
        lo, hi = self.noise_range
        for ch in [] if self.baseline_told else self.channels:
            if not (np.isfinite(ch.dim_adu) and ch.dim_adu < -ch.dim_margin_adu):
                continue
            if (np.isfinite(ch.noise_ratio) and ch.noise_ratio > 0 and not lo <= ch.noise_ratio <= hi
                    and "if the gain is right" in ch.likely):
                continue  # the noise warning says it, with the baseline that fits first
            field = f"{ch.camera_field}baseline"
            in_file = f" in {ch.camera_file}" if ch.camera_file else ""
            if np.isfinite(ch.baseline):
                fits = (f"The setting that would fit{',' + in_file if in_file else ''}: {field} at most about {ch.baseline + ch.dim_adu:.4g} ADU "
                        f"(now {ch.baseline:g})")
            else:
                named = f" ({ch.baseline_map})" if ch.baseline_map else ""
                fits = (f"The {field} map{named}{in_file} lies above this camera's offset: a map of another camera, "
                        "readout mode or region of the chip?")
            fix = (self._model_fix(ch) if ch.camera_model else
                   "Measure the offset on dark frames of this camera at the movie's settings (plexloc calibrate-camera)")
            out.append(
                f"{self._where(ch.channel)}half of the pixels sit {-ch.dim_adu:.3g} ADU or more below the "
                f"camera's baseline "
                f"(their medians over the first {self.frames} frames; {ch.settings}), {ch.dim_photons:.3g} photons/px: "
                f"a baseline above the camera's offset takes photons away, and the photons and background come out "
                f"low or negative. {fits}. {fix}")
        return out

    @property
    def map_warnings(self) -> list[str]:
        """sCMOS maps that are not the movie's pixels' (:func:`plexloc.camera.mapfit.map_match`): every pixel converted
        with another pixel's offset and gain. Told first: they explain any noise or baseline finding after them."""
        out = []
        for ch in self.channels:
            m = ch.map_match
            if m is None or not m.mismatch:
                continue
            in_file = f" in {ch.camera_file}" if ch.camera_file else ""
            named = f" ({ch.baseline_map})" if ch.baseline_map else ""
            if ch.map_cut is not None:
                x0, y0, how = ch.map_cut
                used = f"cut at chip x {x0}, y {y0} ({how})"
            else:
                used = "as given, the frames' size"
            out.append(
                f"{self._where(ch.channel)}the sCMOS baseline map{named}{in_file}, {used}, is not this movie's pixels' "
                f"offset map: the pixel-to-pixel offsets of the first {self.frames} frames correlate {m.r:.2f} with it "
                f"where a map of the movie's region and binning gives about {m.expected:.2f}, so every pixel is "
                f"converted with another pixel's offset, gain and read noise (maps of another ROI or binning). "
                f"{_map_fix(m.found, ch.map_cut)}")
        return out

    @property
    def warnings(self) -> list[str]:
        return self.map_warnings + self.noise_warnings + self.baseline_warnings + self.saturation_warnings

    @property
    def notes(self) -> list[str]:
        """Why a channel's noise was not measured (too crowded, an EMCCD too dim, one frame), for the user to know
        that the camera settings went unchecked; a camera without a gain (``additive``) is not mentioned."""
        return [f"{self._where(ch.channel)}the camera check could not measure the pixel noise ({ch.noise_note}), "
                "so the camera's gain and e-/ADU were not checked against the movie"
                for ch in self.channels if ch.noise_note and not np.isfinite(ch.noise_ratio)
                and not ch.noise_note.startswith(ADDITIVE_NOTE)]

    @property
    def finding(self) -> str:
        """One line for an error message that may come from the camera: the warnings, or that it was consistent."""
        if self.warnings:
            return "the camera check found: " + "; ".join(self.warnings)
        ratios = ", ".join(f"{c.noise_ratio:.2f}" for c in self.channels if np.isfinite(c.noise_ratio))
        notes = "; ".join(dict.fromkeys(c.noise_note for c in self.channels if c.noise_note)) or "one frame"
        return (f"the camera check found the movie's noise consistent with the camera settings (measured / predicted "
                f"variance {ratios})" if ratios else f"the camera check could not measure the noise ({notes})")

    def add(self, other: CameraCheck) -> CameraCheck:
        """Both checks' pixel counts summed per channel (chunks of one movie); the first measured noise ratio."""
        if not self.channels:
            return other
        def one(a: ChannelCheck, b: ChannelCheck) -> ChannelCheck:
            noise = a if np.isfinite(a.noise_ratio) else b
            return ChannelCheck(a.channel, noise.noise_ratio, a.saturated + b.saturated, a.pixels + b.pixels,
                                a.saturation_adu, a.settings, noise.noise_note, a.em_gain, a.level_source, noise.likely,
                                noise.noise_level, noise.read_share, noise.gain_factor, noise.em_gain_fit, a.kind,
                                a.camera_file, a.camera_field, a.read_noise_field, a.camera_model,
                                noise.fitting_camera, a.dim_adu, a.dim_photons, a.dim_margin_adu, a.baseline,
                                a.baseline_map, a.above_level + b.above_level, a.em_gain_value, a.map_match,
                                a.map_cut, noise.swap_ratio)

        chans = [one(a, b) for a, b in zip(self.channels, other.channels)]
        return CameraCheck(chans, self.source, self.frames + other.frames, self.noise_range, self.max_saturated,
                           self.sources)

    def warn(self, *, noise: bool = True, stacklevel: int = 2) -> None:
        """Each finding as a :class:`CameraWarning` (``noise=False``: the maps' and the saturation ones only)."""
        for w in (self.warnings if noise else self.map_warnings + self.saturation_warnings):
            warnings.warn(w, CameraWarning, stacklevel=stacklevel + 1)


def check_camera(
    frames: Sequence[Tensor | np.ndarray],
    cameras: Sequence,
    *,
    dtype,
    adu: bool = False,
    noise: bool = True,
    source: str = "",
    max_frames: int = NOISE_FRAMES,
    noise_range: tuple[float, float] = NOISE_RANGE,
    max_saturated: float = MAX_SATURATED_FRACTION,
    warn: bool = True,
    levels: Sequence[tuple[float | None, str]] | None = None,
) -> CameraCheck:
    """Check a movie's first frames against its cameras (see the module docstring).

    Args:
        frames: one ``(T, H, W)`` stack per channel, in photons (as a fit converts them with ``cameras``), or with
            ``adu=True`` the raw ADU.
        cameras: one :class:`~plexloc.camera.Camera` per channel.
        dtype: the movie's pixel type (its integer maximum is the clipping level where the camera sets none and none
            is found: :func:`clip_level`).
        noise: measure the noise ratio (a simulation, made with its own camera, needs only the saturation).
        source: the movie, named in the messages; or one name per channel (a file per channel).
        max_frames: the noise ratio uses at most this many frames (:func:`noise_ratio`).
        warn: issue each finding as a :class:`CameraWarning`.
        levels: each channel's :func:`clip_level` where the caller has it (a fit: it found the level in the raw
            frames); default: the camera's ``saturation_adu``, in ADU frames (``adu=True``) a level found in them
            (:func:`detect_clip_adu`), else the pixel type's maximum.

    Returns:
        The :class:`CameraCheck`; its ``finding`` is the line for an error that may come from the camera.
    """
    import torch

    many = not isinstance(source, (str, os.PathLike))
    out = CameraCheck([], str(source[0]) if many and len(source) else "" if many else str(source), 0,
                      tuple(noise_range), float(max_saturated), [str(s) for s in source] if many else [])
    for c, (f, cam) in enumerate(zip(frames, cameras)):
        x = torch.as_tensor(f).detach().to("cpu", torch.float32)
        cam = _on_cpu(cam)
        level, how = levels[c] if levels is not None else clip_level(f if adu else None, cam, dtype)
        with torch.no_grad():
            ph = cam.to_photons(x) if adu and noise else x
            n_sat = above = 0
            if level is not None:
                if adu:
                    n_sat = int((x >= level - 0.5).sum())
                    above = int((x >= level + 0.5).sum()) if how == "setting" else 0
                else:  # the clipping level in photons (per pixel for camera maps); to_photons rises with ADU
                    n_sat = int((x >= clip_threshold_photons(cam, level, x.shape)).sum())
                    above = (int((x >= clip_threshold_photons(cam, level + 1.0, x.shape)).sum()) if how == "setting"
                             else 0)
        st: dict = {}  # noise_measure's statistics (the crowded swap path reads them)
        ratio, note, signal = (noise_measure(ph, cam, max_frames=max_frames, stats=st) if noise
                               else (math.nan, "", math.nan))
        swap_crowded = math.nan
        if noise and note.startswith("frames too crowded") and getattr(cam, "kind", None) == "emccd":
            # an EMCCD's em_gain and e_per_adu swapped in frames too crowded to measure (its ratio 45-50x at 5
            # emitters/um^2) is still told where the frames swapped back fit (:func:`_swap_ratio`), by the high-pass
            swap_crowded = _swap_ratio(cam, ph, max_frames=max_frames)
            if np.isfinite(swap_crowded):
                ratio, note, signal = min(st["hp_ratios"][q] for q in NOISE_QUANTILES), "", st["level"]
        lo, hi = noise_range
        told = noise and np.isfinite(ratio) and ratio > 0 and not lo <= ratio <= hi
        c_fit = _gain_factor(cam, ratio, signal) if told else math.nan
        file, fields = camera_source(cam) or ("", "")  # the file the camera was read from: named in the advice
        # a model's training camera (a fit given no camera): each setting by its camera field, with its value now
        model, model_fields = camera_model(cam) or ("", None)
        dim = dim_offset(ph, cam, max_frames=max_frames) if noise else (math.nan, math.nan, math.nan)
        match = _map_match(ph, cam, max_frames=max_frames) if noise else None
        values: list[dict[str, float]] = []
        likely = (_likely_values(cam, ph, ratio, signal, max_frames=max_frames, gain_factor=c_fit,
                                 field=fields if file else "" if model else None, values=values,
                                 baseline_first=bool(dim[0] < -dim[2])) if told else "")
        c_fit = c_fit if likely else math.nan
        if told and not likely:  # photons scaled down so far that no gain is measured: an e_per_adu of another unit?
            likely = _e_per_adu_unit(cam, ph, max_frames=max_frames, field=fields if file else "" if model else None,
                                     values=values)
        swap = (swap_crowded if np.isfinite(swap_crowded) else _swap_ratio(cam, ph, max_frames=max_frames)) if told \
            else math.nan
        if np.isfinite(swap):  # em_gain and e_per_adu swapped: the swap named first, with both values
            g0, e0 = float(cam.em_gain), float(cam.e_per_adu)
            where = fields if file else "" if model else None
            likely = (_advice(where, "em_gain", g0, f"{e0:g}") + " and " + _advice(where, "e_per_adu", e0, f"{g0:g} e-/ADU")
                      + f" (the two swapped back: the noise reads {swap:.2f}x the prediction)"
                      + (f"; else {likely}" if likely else ""))
            values.insert(0, {"em_gain": e0, "e_per_adu": g0})
        fitting = ({**model_fields, **values[0]} if model_fields is not None and values and values[0] else None)
        base = getattr(cam, "baseline", None)
        base = float(base) if base is not None and (not _is_tensor(base) or base.ndim == 0) else math.nan
        out.channels.append(ChannelCheck(c, ratio, n_sat, int(x.numel()), level,
                                         camera_settings(cam, file or (f"{model}'s training configuration" if model
                                                                       else "")), note,
                                         getattr(cam, "em_gain", None) is not None, how, likely, signal,
                                         read_noise_share(cam, signal) if noise else math.nan,
                                         c_fit, _em_gain_fit(cam, c_fit), str(getattr(cam, "kind", "")), file, fields,
                                         _read_noise_field(cam), model, fitting, *dim, base,
                                         str(getattr(cam, "map_files", {}).get("baseline", "")), above,
                                         float(getattr(cam, "em_gain", None) or math.nan), match,
                                         getattr(cam, "map_cut", None), swap))
        out.frames = int(x.shape[0]) if x.ndim == 3 else 1
    if warn:
        out.warn(stacklevel=2)
    return out
