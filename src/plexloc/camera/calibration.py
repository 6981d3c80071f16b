"""Camera calibration: the camera YAML that converts a movie to photons, measured on the camera instead of copied
from a spec sheet (``plexloc calibrate-camera``).

What a user records, and what it gives:

- **dark frames** (shutter closed, the exposure and gain of the experiment): per pixel, the offset (the mean, ADU)
  and the read noise (half the mean squared difference of consecutive frames, ADU², so that an offset that creeps
  during the recording is not counted as noise);
- **flat fields** (one TIFF stack per illumination level, the sample replaced by even light) *or the SMLM movie
  itself*: the photon-transfer slope, the pixel variance above the read noise per ADU of signal above the offset.
  A camera that turns ``S`` electrons into ``S / e_per_adu`` ADU (sCMOS) gives variance ``S / e_per_adu²``, slope
  ``1 / e_per_adu``; an EMCCD (``em_gain * S / e_per_adu`` ADU, excess-noise factor ``F^2 = 2 - 1/em_gain``,
  :func:`plexloc.camera.models.excess_noise_factor`) gives slope ``F^2 * em_gain / e_per_adu``, so only the ratio
  is measured and the EM gain setting is given by the user.

Flats give the slope per pixel too, and with enough frames (the per-pixel gain's standard error under
:data:`GAIN_MAP_MAX_SE`) an sCMOS gain map. From a movie (:func:`movie_transfer`), each pixel's pairs of consecutive frames
whose neighbouring pixels show no emitter in either frame (the background: an emitter lights its neighbours too) give
the variance of the frame difference against the pair's signal, binned by the pixel's median level. The choice uses
the neighbours' noise, never the pixel's own, so the kept differences are not truncated and need no correction (the
earlier choice of the pixels below each pair's median read an EMCCD's gain 5 % high and an sCMOS's 2-6 % low under an
uneven beam: bench/diag/movie_gain.py).

The quantum efficiency is not measurable this way (photon transfer counts electrons): it stays the configured or
default value, and the report says so. Dark frames include the EMCCD's clock-induced charge (``spurious_charge``);
its mean and variance are taken out of the offset and read noise so that the simulator and the fit do not count it
twice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plexloc.errors import InputError

__all__ = ["CameraCalibration", "StackStats", "calibrate_camera", "movie_transfer", "stack_stats",
           "CLIP_SD", "GAIN_MAP_MAX_SE", "GUARD_SD", "MIN_DARK_FRAMES", "NEIGHBOUR_RADIUS", "NEIGHBOUR_SD", "SPIKE_SD"]

#: fewest dark (or flat) frames: the per-pixel read variance of N frames has a relative standard error of sqrt(2 / N)
MIN_DARK_FRAMES = 20
#: an sCMOS gain map is written where the per-pixel gain's median relative standard error is below this (2 %); else a
#: single gain: a noisier map would add more error per pixel than the gain differences it corrects (typically 1-3 %)
GAIN_MAP_MAX_SE = 0.02
#: EM gains from which an EMCCD's measured read noise is checked: referred to its input (read_sigma / em_gain) it is
#: under 1 e- from a gain of about 100 (74.4 e- / 300 = 0.25 e- for the SMLM Challenge camera); above
#: ``MAX_EMCCD_INPUT_READ_E`` the stacks are most likely an sCMOS's (1.6 e- read as 965 e- after a gain of 300, 3.2 e-
#: at the input) or were recorded with the gain lower (tests/test_calibrate_camera_clip44.py)
MIN_CHECKED_EM_GAIN = 100.0
MAX_EMCCD_INPUT_READ_E = 1.5
#: above this read noise (median, e- rms) an sCMOS's dark frames held light: no sCMOS reads it (0.7-3 e-); a flat of
#: 50 photons/px given as --dark read 6.4 e- and an offset 89 ADU high without a word, and the movie's photons came out
#: 28 % low (``plexloc calibrate-camera`` warns; tests/test_camaudit46.py)
SCMOS_MAX_READ_E = 5.0
#: movie photon transfer: the kept frame differences beyond this many standard deviations are counted (``clipped``,
#: a crowding measure; they stay in the variance)
CLIP_SD = 3.5
#: the offset drifting by more than this share of the read noise between the first and last tenth of the dark
#: frames is reported (a camera still warming up, or light reaching the sensor)
MAX_DARK_DRIFT = 0.5
#: movie photon transfer: above this share of the kept frame differences beyond CLIP_SD of their expected spread (a
#: Gaussian: 0.047 %), emitters crowd the background and the gain reads low (bench/camera_calibration.py, 2D Gaussian
#: movies of 300 frames, 2026-12-06, bench/RESULTS.md session 35: 0.037-0.043 % at 0.1-0.5 emitters/um^2, within
#: 0.3 %; 1/um^2 0.040-0.045 %, e_per_adu 1.7-1.9 % low; 2/um^2 sCMOS 0.16 % 15.8 % low, EMCCD 0.085 % 11.4 % low)
MAX_CLIPPED = 0.0008
#: movie photon transfer: a pixel's pair of frames is kept where its neighbours within this many pixels (the pixel
#: itself left out) show no emitter in either frame (:func:`movie_transfer`)
NEIGHBOUR_RADIUS = 1
#: ... no emitter: their mean no more than this many of its own standard deviations (over the frames, from the
#: distance of the median to the 15.9 % quantile: emitters only add light) above its median. Keeps about 70 % of a
#: clean movie's pairs; 1 against 2 halves the crowding bias (a one-movie check at 1 emitter/um^2, sCMOS:
#: e_per_adu -1.6 % against -3.5 %)
NEIGHBOUR_SD = 1.0
#: movie photon transfer: a kept frame difference beyond this many robust standard deviations (a cosmic ray) is left
#: out (a Gaussian loses 1e-23 of its variance, a Laplace 0.2 %)
GUARD_SD = 10.0
#: the smallest share of the read noise's variance the signal must add in a flat (or a movie bin) to count
MIN_EXCESS = 0.5
#: a flat whose light changes from frame to frame by more than this share (rms) is named in a note; the flicker is
#: taken out of the photon transfer at any level (:func:`stack_stats`' ``detrended_var``)
FLICKER_NOTE = 0.002
#: the per-pixel maps calibrate-camera writes next to a camera YAML, as ``<stem>_<field>.npy``
MAP_FIELDS = ("baseline", "e_per_adu", "read_variance")
QUANTISATION_VAR = 1.0 / 12.0  # ADU²: rounding to integers, in every frame the camera writes (and the simulator)


@dataclass
class StackStats:
    """Per-pixel temporal statistics of a stack of frames (ADU), gathered chunk by chunk.

    ``mean`` (H, W); ``diff_var`` (H, W): half the mean squared difference of consecutive frames (the temporal
    variance without slow drifts); ``frame_means`` (T,): each frame's mean; ``saturated``: pixel values at the integer
    dtype's maximum, ``saturated_map`` (H, W): the pixels that reach it in any frame; ``integer``: every value a whole
    number (a camera's rounding to ADU, whose variance 1/12 the read noise leaves out); ``spikes`` (H, W): the pixels
    whose single-frame spike (a cosmic ray, :data:`SPIKE_SD`) was taken out of ``mean`` and ``diff_var``, with
    ``spike_adu`` its height; ``source``: the file it came from; ``detrended_var`` (H, W): ``diff_var`` less the part
    of each pixel's frame differences that follows the differences of the frame means (a lamp that flickers from
    frame to frame: :func:`stack_stats`), what the photon transfer uses (None: ``diff_var``)."""

    frames: int
    mean: np.ndarray
    diff_var: np.ndarray
    frame_means: np.ndarray
    saturated: int = 0
    source: str = ""
    saturated_map: np.ndarray | None = None
    integer: bool = True
    spikes: np.ndarray | None = None
    spike_adu: np.ndarray | None = None
    detrended_var: np.ndarray | None = None
    #: a clipping level below the pixel type's maximum found in the first frames (:func:`~plexloc.camera.check.
    #: find_clip_adu`: a 12-bit camera's 4095 in a 16-bit file, or another value they pile up at, as a full well or
    #: an ADC range ends a 16-bit camera's at 1000 ADU), the values at it there, and how it was known ("found": a full
    #: scale 2^k - 1, "pile-up": another value)
    clip_adu: float | None = None
    clip_values: int = 0
    clip_source: str = ""

    @property
    def transfer_var(self) -> np.ndarray:
        """(H, W) ADU²: the temporal variance the photon transfer uses: ``detrended_var`` where there is one."""
        return self.diff_var if self.detrended_var is None else self.detrended_var

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mean.shape)

    @property
    def read_variance(self) -> np.ndarray:
        """(H, W) ADU²: the temporal variance less the rounding to integers where the frames are whole numbers (of
        dark frames: the read noise)."""
        return np.maximum(self.diff_var - (QUANTISATION_VAR if self.integer else 0.0), 0.0)

    def spike_note(self, what: str) -> str | None:
        """A note on the spikes taken out (None where there were none)."""
        if self.spikes is None or not self.spikes.any():
            return None
        r, c = (int(v) for v in np.unravel_index(int(np.argmax(np.where(self.spikes, self.spike_adu, -np.inf))),
                                                 self.spikes.shape))
        return (f"{self.source or what}: {int(self.spikes.sum())} single-frame spike(s) (cosmic rays) taken out of the "
                f"pixels' {what} statistics, the largest {float(self.spike_adu[r, c]):.4g} ADU above its neighbours "
                f"at row {r}, column {c}")


#: a pixel's value that stands out above both neighbouring frames by more than this many of the pixel's own temporal
#: standard deviations (without it) is a cosmic ray, taken out of that pixel's mean and variance (the largest one per
#: pixel). High enough that an EMCCD's clock-induced charge (exponential, em_gain / e_per_adu ADU per electron, 4
#: read-noise sd at the SMLM Challenge settings) is mostly kept: at 25 sd, 0.6 % of the benchmark EMCCD's dark variance went
#: (bench/camera_calibration.py); at 40, 0.2 %. An sCMOS of 1.5 e- read noise: spikes above 60 e-.
SPIKE_SD = 40.0


def stack_stats(chunks: Iterable[np.ndarray], *, source: str | os.PathLike = "", saturation: float | None = None,
                max_frames: int | None = None, spike_sd: float | None = SPIKE_SD) -> StackStats:
    """:class:`StackStats` of the frames of ``chunks`` (arrays ``(t, H, W)``, ADU, in order), read once: memory is a
    few frames whatever the stack's length. ``max_frames`` stops early. At least two frames are needed. Per pixel, the
    frame that stands out most above its neighbours is taken out where it stands out by more than ``spike_sd`` of the
    pixel's standard deviations (None: never; needs 3 frames).

    ``detrended_var``: a flat's light source that flickers from frame to frame by a share ``f`` adds ``f² s²`` to the
    variance of a pixel of signal ``s``, which the photon transfer reads as shot noise (1 % flicker: the gain 2.8 %
    low, 5 %: 27 % low, tests/test_camera_calibration_review34.py). Each pixel's frame differences are regressed on
    the differences of the frame means without that pixel (leave-one-out, so that the pixel's own noise is not in the
    regressor), and the residual variance is divided by the differences less the noise such a fit takes out, ``1 -
    rho`` differences (``rho``: the regressor's lag-1 autocorrelation; consecutive differences share a frame). A
    coefficient per pixel follows any illumination (vignetting) and needs no offset; a flicker-free stack loses 1.5
    of its differences' worth of precision. Needs 4 frames and 2 pixels (else ``diff_var``)."""
    n, saturated, integer = 0, 0, True
    means: list[float] = []
    shape = None
    for chunk in chunks:
        raw = np.asarray(chunk)
        if raw.ndim == 2:
            raw = raw[None]
        if max_frames is not None:
            raw = raw[: max(0, max_frames - n)]
        if not len(raw):
            break
        if shape is None:
            shape = raw.shape[1:]
            # work buffers, made once: a fresh 2048 x 2048 float64 temporary per frame costs more than the arithmetic
            total, diff2, tmp, tmp2 = (np.zeros(shape) for _ in range(4))
            cur, prev, prev2 = (np.zeros(shape) for _ in range(3))
            sat_map = np.zeros(shape, bool)
            # per pixel: the largest spike so far, and (previous, spike, next) values; below the least a spike can be
            # (spike_sd times the rounding's sd) nothing is kept, which leaves few pixels to update per frame
            best = np.full(shape, -np.inf if spike_sd is None else spike_sd * math.sqrt(QUANTISATION_VAR))
            trip = [np.full(shape, np.nan) for _ in range(3)]  # NaN: no neighbour there
            at = np.zeros(shape, np.int64)  # the frame of each pixel's largest spike
            cross = np.zeros(shape)  # per pixel: the sum of its frame differences times the frame means' differences
            nan = np.full(shape, np.nan)
        elif raw.shape[1:] != shape:
            raise InputError(f"frame {n} has shape {raw.shape[1:]}, the first {shape}", source=source or None)
        whole = raw.dtype.kind in "iub"
        for frame in raw:
            np.copyto(cur, frame, casting="unsafe")
            if not whole:
                if not np.all(np.isfinite(cur)):
                    r, c = (int(v) for v in np.argwhere(~np.isfinite(cur))[0])
                    raise InputError(f"frame {n} has {float(cur[r, c])!r} at row {r}, column {c}", source=source or None)
                if integer:
                    integer = bool(np.array_equal(cur, np.rint(cur, out=tmp)))
            total += cur
            means.append(float(cur.mean()))
            if saturation is not None:
                hit = frame >= saturation
                if hit.any():
                    saturated += int(np.count_nonzero(hit))
                    sat_map |= hit
            if n >= 1:
                np.subtract(prev, cur, out=tmp)
                np.multiply(tmp, tmp, out=tmp2)
                diff2 += tmp2
                np.multiply(tmp, means[-2] - means[-1], out=tmp2)
                cross += tmp2
                if spike_sd is not None:
                    if n == 1:  # the first frame: its one neighbour
                        _consider(best, trip, tmp, nan, prev, cur, at, n - 1)
                    else:  # the frame before: both neighbours
                        np.subtract(prev, prev2, out=tmp2)
                        np.minimum(tmp, tmp2, out=tmp)
                        _consider(best, trip, tmp, prev2, prev, cur, at, n - 1)
            cur, prev, prev2 = prev2, cur, prev
            n += 1
    if n < 2:
        raise InputError(f"needs at least 2 frames, got {n}", source=source or None)
    n_diff = n - 1
    spikes = spike_adu = None
    counts, n_diffs = np.full(shape, float(n)), np.full(shape, float(n_diff))
    dm = -np.diff(np.array(means))  # the frame means' differences, in the order of the pixels' (earlier - later)
    sxx: float | np.ndarray = float(dm @ dm)  # per pixel where a spike was taken out
    if spike_sd is not None and n >= 3:
        _consider(best, trip, np.subtract(prev, prev2, out=tmp), prev2, prev, nan, at, n - 1)  # the last frame
        a, b, c = trip
        has_a, has_c = np.isfinite(a), np.isfinite(c)
        a0, c0 = np.where(has_a, a, 0.0), np.where(has_c, c, 0.0)
        d2 = (diff2 - np.where(has_a, (b - a0) ** 2, 0.0) - np.where(has_c, (c0 - b) ** 2, 0.0)
              + np.where(has_a & has_c, (c0 - a0) ** 2, 0.0))
        nd = n_diff - has_a.astype(float) - has_c + (has_a & has_c)
        var_wo = d2 / (2.0 * np.maximum(nd, 1.0))
        spikes = best > spike_sd * np.sqrt(np.maximum(var_wo, QUANTISATION_VAR))
        spike_adu = np.where(spikes, best, 0.0)
        total = np.where(spikes, total - b, total)
        counts = np.where(spikes, counts - 1.0, counts)
        diff2, n_diffs = np.where(spikes, d2, diff2), np.where(spikes, nd, n_diffs)
        # the regression of the spike's pixel: its two differences around the spike become one, a - c, whose
        # frame-mean difference is the sum of the two
        x_a = np.where(has_a, dm[np.clip(at - 1, 0, n_diff - 1)], 0.0)
        x_c = np.where(has_c, dm[np.clip(at, 0, n_diff - 1)], 0.0)
        both = (has_a & has_c).astype(float)
        cross = np.where(spikes, cross - (a0 - b) * x_a - (b - c0) * x_c + both * (a0 - c0) * (x_a + x_c), cross)
        sxx = np.where(spikes, sxx - x_a ** 2 - x_c ** 2 + both * (x_a + x_c) ** 2, sxx)
    detrended = _detrended_var(diff2, cross, sxx, n_diffs, dm, int(np.prod(shape)))
    return StackStats(n, total / counts, diff2 / (2.0 * n_diffs), np.array(means), saturated, str(source),
                      saturated_map=sat_map, integer=integer, spikes=spikes, spike_adu=spike_adu,
                      detrended_var=detrended)


def _detrended_var(d2: np.ndarray, cross: np.ndarray, sxx: np.ndarray, n_diffs: np.ndarray, dm: np.ndarray,
                   pixels: int) -> np.ndarray | None:
    """Half the mean squared frame difference of each pixel less the part that follows the frame means (see
    :func:`stack_stats`): ``d2`` the pixel's sum of squared differences, ``cross`` their sum times ``dm`` (the frame
    means' differences), ``sxx`` the sum of ``dm²`` over the same differences, ``pixels`` the pixels in a frame mean."""
    if pixels < 2 or len(dm) < 3 or not float(dm @ dm) > 0:
        return None
    # leave-one-out: the frame mean times the pixels, less the pixel's own difference
    sdx = pixels * cross - d2
    sxx_loo = pixels * pixels * sxx - 2.0 * pixels * cross + d2
    fit = np.divide(sdx * sdx, sxx_loo, out=np.zeros_like(d2), where=sxx_loo > 0)
    rho = float(dm[:-1] @ dm[1:]) / float(dm @ dm)
    return np.clip(d2 - fit, 0.0, None) / (2.0 * np.maximum(n_diffs - 1.0 + rho, 1.0))


def _consider(best: np.ndarray, trip: list[np.ndarray], z: np.ndarray, a: np.ndarray, b: np.ndarray,
              c: np.ndarray, at: np.ndarray, frame: int) -> None:
    """Keep, per pixel, the larger of the spike so far and ``z``, with its frame's values and neighbours ``a, b, c``
    and its frame number (in ``at``)."""
    better = np.greater(z, best).ravel()
    idx = np.flatnonzero(better)
    if len(idx) > better.size // 8:
        better = better.reshape(best.shape)
        np.copyto(best, z, where=better)
        for arr, v in zip(trip, (a, b, c)):
            np.copyto(arr, v, where=better)
        np.copyto(at, frame, where=better)
    elif len(idx):
        best.ravel()[idx] = z.ravel()[idx]
        for arr, v in zip(trip, (a, b, c)):
            arr.ravel()[idx] = v.ravel()[idx]
        at.ravel()[idx] = frame


#: pixels read at once (float64 working copies of 2^22 pixels: 32 MB; a 2048 x 2048 camera one frame at a time)
CHUNK_PIXELS = 2**22


def chunk_frames_for(frame_shape: Sequence[int], most: int = 64) -> int:
    """Frames per chunk so that a chunk holds at most :data:`CHUNK_PIXELS` pixels (at least one frame)."""
    from plexloc.io.tiff import frames_per_chunk

    return frames_per_chunk(int(frame_shape[-2]) * int(frame_shape[-1]), most, budget=CHUNK_PIXELS)


def movie_stats(path: str | os.PathLike, *, max_frames: int | None = None) -> StackStats:
    """:func:`stack_stats` of a TIFF stack (or folder of TIFFs) on disk, streamed in chunks of at most
    :data:`CHUNK_PIXELS` pixels."""
    from plexloc.camera.check import find_clip_adu, saturation_adu
    from plexloc.io.tiff import open_movie

    head: list[np.ndarray] = []

    def chunks(movie):
        for _, c in movie.iter_chunks(chunk_frames_for(movie.frame_shape)):
            if not head:
                head.append(np.asarray(c))
            yield c

    with open_movie(path) as movie:
        stats = stack_stats(chunks(movie), source=path, saturation=saturation_adu(movie.dtype), max_frames=max_frames)
        # the shared finder (a full scale 2^k - 1, or any value the values pile up at: flats clipped at 1000 ADU in a
        # 16-bit file were taken without a word, session 50)
        level, how = find_clip_adu(head[0], movie.dtype) if head else (None, "")
        if level is None and head and (full := saturation_adu(movie.dtype)) is not None:
            # most values at the largest one, below the file's maximum: find_clip_adu leaves that out (a movie's blank
            # first frames), but a flat (or a dark stack) holds no such value unless it clipped there, most of it or
            # all (a flat 60 % at 1000 ADU read e_per_adu 41.9 for 0.46, a flat all at it 'too dim': session 50)
            top = float(head[0].max())
            if top < full and 2 * int(np.count_nonzero(head[0] == top)) >= head[0].size:
                level, how = top, "pile-up"
    if level is not None:  # the values at a camera's clipping level below the file's: counted, not left out (that biased)
        stats.clip_adu, stats.clip_values = float(level), int(np.count_nonzero(head[0] >= level))
        stats.clip_source = how
    return stats


@dataclass
class TransferCurve:
    """Photon transfer: ``excess_var`` (ADU², the variance above the read noise) against ``signal_adu`` (above the
    offset), one point per flat or movie bin, with the pixels (or pixel pairs) behind each; ``slope`` through the
    origin and its standard error."""

    signal_adu: np.ndarray
    excess_var: np.ndarray
    counts: np.ndarray
    slope: float
    slope_se: float
    source: str = "flats"
    clipped: float = math.nan  # movie: the share of frame differences beyond CLIP_SD (emitters switching)
    flicker: np.ndarray | None = None  # flats: each one's frame-to-frame change of the light (rms share), taken out
    kept: float = math.nan  # movie: the share of pixel pairs whose neighbours show no emitter (the rest left out)

    def to_dict(self) -> dict:
        return {"source": self.source, "slope": self.slope, "slope_se": self.slope_se, "clipped": self.clipped,
                "kept": self.kept,
                "signal_adu": self.signal_adu.tolist(), "excess_var_adu2": self.excess_var.tolist(),
                "counts": self.counts.tolist(),
                "flicker_rms": None if self.flicker is None else self.flicker.tolist()}


def _through_origin(s: np.ndarray, e: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope of ``e = k s`` and its standard error (from the residuals; one point: the
    point's own ratio and NaN)."""
    k = float(np.sum(w * s * e) / np.sum(w * s * s))
    if len(s) < 2:
        return k, math.nan
    r = e - k * s
    dof = len(s) - 1
    return k, float(math.sqrt(np.sum(w * r * r) / dof / np.sum(w * s * s)))


def _gaussian_clip_factor(c: float) -> float:
    """Variance of a standard Gaussian clipped to [-c, c] (what a clipped estimate must be divided by; the movie
    method before 2026-12-06, kept for bench/diag/movie_gain.py)."""
    phi = math.exp(-c * c / 2.0) / math.sqrt(2.0 * math.pi)
    inside = math.erf(c / math.sqrt(2.0))
    return 1.0 - 2.0 * c * phi / inside


def _neighbour_mean(e: np.ndarray, radius: int) -> np.ndarray:
    """(T, h, w): per frame, the mean of ``e`` over each pixel's neighbours within ``radius`` pixels (a square, the
    pixel itself left out; fewer at the edges)."""
    t, h, w = e.shape
    pad = np.zeros((t, h + 2 * radius, w + 2 * radius), np.float32)
    pad[:, radius:radius + h, radius:radius + w] = e
    one = np.zeros((h + 2 * radius, w + 2 * radius), np.float32)
    one[radius:radius + h, radius:radius + w] = 1.0
    total = np.zeros_like(e)
    count = np.zeros((h, w), np.float32)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            total += pad[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            count += one[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
    return total / count


def movie_transfer(chunks: Iterable[np.ndarray], offset: np.ndarray, read_var: np.ndarray, *, bins: int = 12,
                   max_frames: int = 300, window_px: int = 256, radius: int = NEIGHBOUR_RADIUS,
                   reject_sd: float = NEIGHBOUR_SD, source: str = "") -> TransferCurve:
    """Photon transfer from an SMLM movie's background (module docstring), on the central ``window_px`` square of the
    first ``max_frames`` frames.

    Every pair of consecutive frames ``a, b`` and pixel gives a signal ``(a + b) / 2 - offset`` and a difference
    ``(a - b) / sqrt(2)``. A pixel's pair is kept where, in both frames, its neighbours (within ``radius`` pixels, the
    pixel itself left out) are no brighter than expected by more than ``reject_sd`` of their own spread (per pixel,
    over the frames): an emitter lights its neighbours too. The choice uses the neighbours' noise only, never the
    pixel's own, so it does not shape the kept differences' distribution (nothing to correct for; choosing by the
    pixel's own values, the dimmer half, read an EMCCD's gain 5 % high: bench/diag/movie_gain.py). "Expected" is
    each pixel's median over the frames, scaled to each frame's median (a laser that flickers or bleaches). From each
    pair's differences the part that follows the pixels' levels (over the kept pixels, a line: a change of the light
    between the frames, the same share of every pixel's light, plus a change of the offset) is taken out. The kept
    pairs are binned by the pixel's level (its median over the frames, at quantiles: an uneven illumination is a range
    of signals); each bin's point is the mean signal and the mean squared difference less the read variance, and the
    slope is a line through the origin. A difference beyond :data:`GUARD_SD` robust standard deviations (a cosmic ray)
    is left out; ``clipped`` is the share of kept differences beyond :data:`CLIP_SD` (emitters the neighbours missed:
    a crowded movie)."""
    h, w = offset.shape
    r0, c0 = max(0, (h - window_px) // 2), max(0, (w - window_px) // 2)
    win = (slice(r0, r0 + min(h, window_px)), slice(c0, c0 + min(w, window_px)))
    parts, n = [], 0
    for chunk in chunks:
        x = np.asarray(chunk)
        x = x[: max(0, max_frames - n)]
        if not len(x):
            break
        parts.append(np.array(x[(slice(None), *win)], dtype=np.float32))  # a copy: not a view of the whole frames
        n += len(x)
    if n < 3:
        raise InputError(f"the movie needs at least 3 frames, got {n}", source=source or None)
    y = np.concatenate(parts)
    y -= np.asarray(offset, np.float32)[win]  # signal above the offset, ADU
    rvar = np.asarray(read_var, np.float64)[win]
    level = np.median(y, axis=0)  # (h, w): each pixel's background (emitters are rare at any one pixel)
    # each frame's light relative to the levels (flicker, bleaching, a background that changes), then the excess
    lv = float(np.median(level))
    from plexloc.evaluate.uncertainty import robust_sd

    scale = np.median(y.reshape(n, -1), axis=1) / lv if lv > 0 else np.ones(n, np.float32)
    excess = y - scale.astype(np.float32)[:, None, None] * level
    nb = _neighbour_mean(excess, radius)
    centre = np.median(nb, axis=0)
    spread = centre - np.quantile(nb, 0.158655, axis=0)  # the lower side: emitters only add light
    quiet = nb <= centre + reject_sd * np.maximum(spread, 1e-6)
    del excess, nb
    keep = quiet[:-1] & quiet[1:]  # (n - 1, h, w)
    m = (y[:-1] + y[1:]) / 2.0
    d = (y[:-1] - y[1:]) / np.float32(math.sqrt(2.0))
    del y
    # per pair, take out a + b * level over its kept pixels (least squares; 2 of the kept differences' worth of variance)
    lc = (level - level.mean()).astype(np.float64)
    kf = keep.reshape(n - 1, -1).astype(np.float64)
    dd, ll = d.reshape(n - 1, -1).astype(np.float64), lc.ravel()
    s0, s1, s2 = kf.sum(axis=1), kf @ ll, kf @ (ll * ll)
    t0, t1 = (kf * dd).sum(axis=1), (kf * dd) @ ll
    det = s0 * s2 - s1 * s1
    ok_det = det > 1e-9 * np.maximum(s0 * s2, 1e-30)
    beta = np.where(ok_det, (s0 * t1 - s1 * t0) / np.where(ok_det, det, 1.0), 0.0)
    alpha = (t0 - beta * s1) / np.maximum(s0, 1.0)
    resid = dd - alpha[:, None] - beta[:, None] * ll[None, :]
    dof = np.where(s0 > 2, s0 / np.maximum(s0 - 1.0 - ok_det, 1.0), 1.0)  # the fitted line's share of the variance
    fk = keep.reshape(n - 1, -1)
    dr, e2 = resid[fk], (resid * resid * dof[:, None])[fk]
    del dd, resid
    lvl = np.broadcast_to(level, keep.shape)[keep].astype(np.float64)
    s, r = m[keep].astype(np.float64), np.broadcast_to(rvar, keep.shape)[keep]
    if len(s) < 100:
        raise InputError(f"only {len(s)} pixel pairs of the movie are clear of emitters: too crowded (or too small) to "
                         "measure the gain", source=source or None)
    edges = np.unique(np.quantile(lvl, np.linspace(0.0, 1.0, bins + 1)))
    idx = np.clip(np.searchsorted(edges, lvl, side="right") - 1, 0, max(len(edges) - 2, 0))
    ss, ee, cc, used = [], [], [], np.zeros(len(s), bool)
    for k in range(max(len(edges) - 1, 1)):
        sel = np.flatnonzero(idx == k)
        if len(sel) < 100:
            continue
        sd = robust_sd(dr[sel])
        sel = sel[e2[sel] <= (GUARD_SD * sd) ** 2] if sd > 0 else sel
        used[sel] = True
        ss.append(float(s[sel].mean())), ee.append(float(np.mean(e2[sel] - r[sel]))), cc.append(len(sel))
    s_arr, e_arr, c_arr = np.array(ss), np.array(ee), np.array(cc)
    ok = s_arr > 0
    if not ok.any():
        raise InputError("the movie's background is not above the dark offset: no photon transfer to measure "
                         "(a dark movie, or dark frames taken at another setting)", source=source or None)
    # weights: the variance of a variance estimate grows with its square, and shrinks with the pixels behind it
    w_ = c_arr[ok] / np.maximum(e_arr[ok] + float(r.mean()), 1e-12) ** 2
    k, se = _through_origin(s_arr[ok], e_arr[ok], w_)
    # the share of kept differences beyond CLIP_SD of their expected spread (each pair's own signal on the line)
    z = dr[used] / np.sqrt(np.maximum(max(k, 0.0) * s[used] + r[used], 1e-12))
    clipped = float(np.mean(np.abs(z) > CLIP_SD * max(robust_sd(z), 1e-12))) if len(z) else math.nan
    return TransferCurve(s_arr, e_arr, c_arr, k, se, "movie", clipped=clipped, kept=float(keep.mean()))


@dataclass
class CameraCalibration:
    """A measured camera: ``config`` is the camera YAML mapping (:mod:`plexloc.config.models`' ``EMCCDConfig`` or
    ``SCMOSConfig`` fields); ``maps`` the sCMOS per-pixel maps it names (written next to the YAML by :meth:`save`);
    ``offset_adu`` and ``read_sigma_adu`` the dark frames' per-pixel offset and read noise; ``transfer`` the photon
    transfer; ``notes`` what the user should know (also printed by the CLI)."""

    kind: str
    config: dict
    maps: dict[str, np.ndarray]
    offset_adu: np.ndarray
    read_sigma_adu: np.ndarray
    transfer: TransferCurve | None
    dark_frames: int
    gain_map_se: float = math.nan
    notes: list[str] = field(default_factory=list)
    #: the notes that are warnings (the CLI prints them on stderr)
    warnings: list[str] = field(default_factory=list)

    def report(self) -> dict:
        """Numbers for a JSON report (no arrays)."""
        q = lambda a: {p: float(np.percentile(a, p)) for p in (1, 50, 99)}  # noqa: E731
        out = {"kind": self.kind, "camera": {k: (f"<{k} map>" if k in self.maps else v) for k, v in self.config.items()},
               "dark_frames": self.dark_frames, "offset_adu_percentiles": q(self.offset_adu),
               "read_sigma_adu_percentiles": q(self.read_sigma_adu), "gain_map_relative_se": self.gain_map_se,
               "notes": list(self.notes)}
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_dict()
        return out

    def stale_maps(self, path: str | os.PathLike) -> list[Path]:
        """The map files of an earlier run next to the camera YAML ``path`` (``<stem>_<field>.npy``, :data:`MAP_FIELDS`)
        that this calibration does not write, so that its YAML does not name them (a gain map of a run with more
        flat frames, the sCMOS maps before an EMCCD): :meth:`save` removes them."""
        path = Path(path)
        return [p for name in MAP_FIELDS if name not in self.maps
                for p in [path.with_name(f"{path.stem}_{name}.npy")] if p.is_symlink() or p.is_file()]

    def save(self, path: str | os.PathLike, *, figure: str | os.PathLike | None = None,
             report: str | os.PathLike | None = None) -> list[Path]:
        """Write the camera YAML at ``path`` and its maps next to it as ``<stem>_<field>.npy`` (named relative to the
        YAML, which is how camera files find their maps), and the ``figure`` (PNG) and JSON ``report`` where given;
        an earlier run's maps that this one does not write (:meth:`stale_maps`) are removed, so that every map next to
        the YAML is one it names.

        All are written to temporary files first, which take their names only once every one is written, in the
        order of :func:`plexloc.io._atomic.atomic_pair`: the old YAML is moved aside first (it must not name maps of
        this run), then the stale maps, then the new maps, figure and report take their names (the files they replace
        kept by a hard link), the YAML last. A YAML that is there names the maps that are there at every moment; a
        failure (an exception) puts the earlier run's files back as they were and leaves none of the new ones. A
        process killed between the renames leaves no YAML, and the old files as hidden ``.NAME.*.old`` backups.
        Returns the files written, the YAML first."""
        import yaml

        from plexloc.io.jsonfile import write_json
        from plexloc.io._atomic import _backup_name, _remove, _temporary_for

        path = Path(path)
        data = dict(self.config)
        targets: list[tuple[Path, object]] = []
        for name, arr in self.maps.items():
            target = path.with_name(f"{path.stem}_{name}.npy")
            data[name] = target.name
            targets.append((target, np.asarray(arr, dtype=np.float32)))
        header = "".join(f"# {line}\n" for line in ["camera measured by plexloc calibrate-camera", *self.notes])
        if figure is not None:
            targets.append((Path(figure), "figure"))
        if report is not None:
            targets.append((Path(report), "report"))
        targets.append((path, header + yaml.safe_dump(data, sort_keys=False)))
        resolved = {t.resolve() for t, _ in targets}
        if len(resolved) != len(targets):
            raise InputError("the camera YAML, its maps, the figure and the JSON report need different names", source=path)
        stale = [p for p in self.stale_maps(path) if p.resolve() not in resolved]

        def set_aside(target: Path, *, keep: bool) -> Path:
            """Move ``target`` to a hidden backup next to it (``keep``: a hard link where the file system has them,
            so that the target stays until the new file replaces it)."""
            backup = _backup_name(target)
            try:
                if keep:
                    backup.unlink()
                    try:
                        os.link(target, backup)
                        return backup
                    except OSError:  # no hard links here
                        pass
                os.replace(target, backup)
            except BaseException:
                _remove(backup)
                raise
            return backup

        temps: list[Path] = []
        kept: list[tuple[Path, Path]] = []  # (file of the earlier run, its backup), to put back on a failure
        placed: list[Path] = []  # the names the new files took
        try:
            for target, content in targets:
                tmp = _temporary_for(target)
                temps.append(tmp)
                if isinstance(content, np.ndarray):
                    with open(tmp, "wb") as fh:
                        np.save(fh, content, allow_pickle=False)
                elif content == "figure":
                    self.figure(tmp)
                elif content == "report":
                    write_json(self.report(), tmp)
                else:
                    tmp.write_text(content)
            mask = os.umask(0)
            os.umask(mask)
            for tmp in temps:
                os.chmod(tmp, 0o666 & ~mask)
            if path.is_symlink() or path.exists():  # the old YAML first: no moment where it names the new maps
                kept.append((path, set_aside(path, keep=False)))
            for old in stale:
                kept.append((old, set_aside(old, keep=False)))
            for tmp, (target, _) in zip(temps, targets):
                if target != path and (target.is_symlink() or target.exists()):
                    kept.append((target, set_aside(target, keep=True)))
                os.replace(tmp, target)
                placed.append(target)
        except BaseException:
            # best effort: the new files off their names, the earlier run's back (a backup that cannot be put back
            # stays, hidden, next to its name)
            restored = {t for t, _ in kept}
            _remove(*(t for t in placed if t not in restored))
            for target, backup in reversed(kept):
                try:
                    if os.path.lexists(target) and os.path.samefile(backup, target):  # a link never replaced: a
                        backup.unlink()  # rename onto the same file would do nothing and leave the backup
                    else:
                        os.replace(backup, target)
                except OSError:
                    pass
            _remove(*temps)
            raise
        _remove(*(b for _, b in kept))
        return [path] + [t for t, _ in targets[:-1]]

    def figure(self, path: str | os.PathLike) -> Path:
        """Photon transfer (variance above the read noise against signal, with the fitted line) and the dark frames'
        offset and read-noise histograms, as a PNG (atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from plexloc.io._atomic import atomic_path

        fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
        t = self.transfer
        if t is not None and len(t.signal_adu):
            ax[0].plot(t.signal_adu, t.excess_var, "o", label=f"{t.source}")
            xs = np.linspace(0.0, max(float(np.max(t.signal_adu)), 1e-9), 50)
            ax[0].plot(xs, t.slope * xs, "-", label=f"slope {t.slope:.4g} ADU² per ADU")
            ax[0].legend()
        else:  # (blank axes)
            ax[0].text(0.5, 0.5, "no photon transfer measured\n(give flats or a movie)", ha="center", va="center",
                       transform=ax[0].transAxes, color="0.3")
        ax[0].set(xlabel="signal above offset (ADU)", ylabel="variance above read noise (ADU²)", title="photon transfer")
        # the medians the command prints ('dark frames: offset ... ADU, read noise ... ADU'), marked and named
        for a, values, digits in ((ax[1], self.offset_adu, 5), (ax[2], self.read_sigma_adu, 4)):
            v = np.asarray(values, dtype=float).ravel()
            v = v[np.isfinite(v)]
            if v.size:
                a.hist(v, bins=100)
                med = float(np.median(v))
                a.axvline(med, color="C3", ls="--", lw=1, label=f"median {med:.{digits}g} ADU")
                a.legend(fontsize=8)
            # at most 6 ticks: the offset's labels ran into each other (100.75101.00)
            a.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))
        ax[1].set(xlabel="offset (ADU)", ylabel="pixels", title=f"dark offset ({self.dark_frames} frames)")
        ax[2].set(xlabel="read noise (ADU)", ylabel="pixels", title="dark read noise", yscale="log")
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        return path


def _lit_dark(kind: str, dark: StackStats, transfer: TransferCurve, em_gain: float | None) -> str:
    """What a flat too dim against the dark frames' noise adds where the brighter flats measure a gain by which that
    noise is more than any camera of the kind reads (an sCMOS's above ``SCMOS_MAX_READ_E``, an EMCCD's input-referred
    above ``MAX_EMCCD_INPUT_READ_E``): light reached the dark frames, and the flat is not to blame (a dark of 40
    photons/px from a light leak refused the 50 photons/px flat as "too dim; record it brighter"). "" otherwise."""
    read = float(dark.read_variance.mean())
    ok = transfer.excess_var >= MIN_EXCESS * read
    slopes = transfer.excess_var[ok] / np.maximum(transfer.signal_adu[ok], 1e-12)
    if not ok.any() or not np.all(transfer.signal_adu[ok] > 0):
        return ""
    slope = float(np.median(slopes))  # ADU² per ADU: 1 / e_per_adu (sCMOS), F^2 em_gain / e_per_adu (EMCCD)
    if kind == "scmos":
        read_e, most, what = math.sqrt(read) / slope, SCMOS_MAX_READ_E, "any sCMOS's (0.7-3 e-)"
    else:
        read_e, most, what = 2.0 * math.sqrt(read) / slope, MAX_EMCCD_INPUT_READ_E, "an EMCCD's at its input (under 1 e-)"
    if not read_e > most or (kind == "emccd" and (em_gain or 0.0) < MIN_CHECKED_EM_GAIN):
        return ""
    return (f"; or light reached the dark frames (--dark {dark.source or 'DARK'}): by the brighter flats' gain their "
            f"noise is {read_e:.2g} e- rms{' at the input' if kind == 'emccd' else ''}, above {what}, and their offset "
            f"{float(np.median(dark.mean)):.5g} ADU; record them with the sensor covered (a light leak, the shutter "
            "open?)")


def _flicker(dark: StackStats, flat: StackStats) -> float:
    """The flat's frame-to-frame change of the light, as an rms share of its signal above the dark offset: the frame
    means' differences less their noise (the pixels' variance over the pixels), halved (0 where none shows)."""
    dm = np.diff(flat.frame_means)
    signal = float(np.mean(flat.mean - dark.mean))
    if len(dm) < 2 or not signal > 0:
        return math.nan
    noise = 2.0 * float(np.mean(flat.transfer_var)) / flat.mean.size
    excess = float(np.mean(dm * dm)) - noise
    # the mean of the squared differences of n frame means scatters by about noise * sqrt(3 / n) (neighbouring
    # differences share a frame): an excess within 3 of that is no flicker (a steady simulated EMCCD flat read 0.33 %)
    if excess < 3.0 * noise * math.sqrt(3.0 / len(dm)):
        return 0.0
    return math.sqrt(excess / 2.0) / signal


def _flat_transfer(dark: StackStats, flats: Sequence[StackStats]) -> tuple[TransferCurve, np.ndarray, np.ndarray]:
    """Photon transfer of flat fields: one point per flat (the means over its pixels that never reach the pixel
    type's maximum in it or in the dark frames: a clipped pixel's variance reads low), and each pixel's slope through
    the origin over the flats where it is not clipped, with its relative standard error (from the temporal variance
    estimates' own error)."""
    s = np.stack([f.mean - dark.mean for f in flats])  # (K, H, W)
    e = np.stack([f.transfer_var - dark.transfer_var for f in flats])  # without a flickering lamp's share
    dark_sat = dark.saturated_map if dark.saturated_map is not None else np.zeros(dark.shape, bool)
    use = np.stack([~(dark_sat | (f.saturated_map if f.saturated_map is not None else False)) for f in flats])
    counts = use.reshape(len(flats), -1).sum(axis=1)
    nz = np.maximum(counts, 1)
    s_lvl = np.where(use, s, 0.0).reshape(len(flats), -1).sum(axis=1) / nz
    e_lvl = np.where(use, e, 0.0).reshape(len(flats), -1).sum(axis=1) / nz
    w = np.array([f.frames for f in flats], float) / np.maximum(e_lvl + dark.diff_var.mean(), 1e-12) ** 2
    ok = (s_lvl > 0) & (counts > 0)
    k, se = _through_origin(s_lvl[ok], e_lvl[ok], w[ok]) if ok.any() else (math.nan, math.nan)
    if ok.sum() == 1:  # one flat: the slope's error from the pixels' spread
        ratio = (e[ok] / np.where((s[ok] > 0) & use[ok], s[ok], np.nan)).ravel()
        se = float(np.nanstd(ratio) / math.sqrt(np.isfinite(ratio).sum()))
    su, eu = np.where(use, s, 0.0), np.where(use, e, 0.0)
    per_pixel = (su * eu).sum(axis=0) / np.maximum((su * su).sum(axis=0), 1e-12)
    # relative error of one pixel's slope: the half mean squared difference of N frames estimates a variance to a
    # relative sd of sqrt(3 / N) (neighbouring differences share a frame), and the slope weighs level k by s_k^2
    s2 = np.clip(s_lvl, 0.0, None) ** 2
    rel = math.sqrt(float(np.sum(s2 * s2 * 3.0 / np.array([f.frames for f in flats], float)))) / max(float(s2.sum()), 1e-12)
    if ok.sum() >= 2 and math.isfinite(k):
        # the residuals of a few points about a line through the origin say how well they line up, not how well each
        # is known: two flats leave one degree of freedom, and the slope's error read 0.0026 % where flats of 100
        # frames of 32 x 32 pixels know it to ~0.4 %. The levels' own error is added in quadrature: each level's
        # temporal variance (flat, and the dark's taken from it) known to a relative sd of sqrt(3 / frames) per pixel,
        # over the pixels used, through the fit's weights
        vd = float(np.mean(dark.transfer_var))
        fr = np.array([f.frames for f in flats], float)
        var_e = ((e_lvl + vd) ** 2 * 3.0 / fr + vd**2 * 3.0 / max(dark.frames, 1)) / np.maximum(counts, 1)
        ws = (w * s_lvl)[ok]
        se_levels = math.sqrt(float(np.sum(ws * ws * var_e[ok]))) / max(float(np.sum(w[ok] * s_lvl[ok] ** 2)), 1e-300)
        se = math.sqrt((se if math.isfinite(se) else 0.0) ** 2 + se_levels**2)
    flicker = np.array([_flicker(dark, f) for f in flats])
    return TransferCurve(s_lvl, e_lvl, counts, k, se, "flats", flicker=flicker), per_pixel, np.full(s.shape[1:], rel)


def calibrate_camera(
    dark: StackStats,
    *,
    kind: str,
    flats: Sequence[StackStats] = (),
    movie: TransferCurve | None = None,
    em_gain: float | None = None,
    qe: float | None = None,
    spurious_charge: float | None = None,
    gain_map: str = "auto",
) -> CameraCalibration:
    """The camera configuration of dark frames plus flats (``flats``: :func:`stack_stats` of each level) or a movie's
    photon transfer (``movie``: :func:`movie_transfer`).

    Args:
        kind: ``"scmos"`` (offset and read-noise maps, a gain map where flats measure it well enough: ``gain_map``
            ``"auto"``, ``"yes"`` or ``"no"``) or ``"emccd"`` (scalars; ``em_gain`` is the camera's EM gain setting).
        qe, spurious_charge: not measurable here; the kind's defaults where not given (the notes say so).

    Raises:
        InputError: too few dark frames, flats of another frame size, no transfer given, flats no brighter than the
            dark, a non-positive slope, an EMCCD without ``em_gain``.
    """
    from plexloc.config.models import EMCCDConfig, SCMOSConfig

    if kind not in ("scmos", "emccd"):
        raise InputError(f"camera kind must be 'scmos' or 'emccd', got {kind!r}")
    if dark.frames < MIN_DARK_FRAMES:
        raise InputError(f"{dark.frames} dark frames; at least {MIN_DARK_FRAMES} are needed (the read noise of N frames "
                         f"is known to sqrt(2/N): 100 or more give 14 %)", source=dark.source or None)
    for f in flats:
        if f.shape != dark.shape:
            raise InputError(f"flat of frame size {f.shape}, the dark frames {dark.shape}: record both on the same "
                             "region of the chip", source=f.source or None)
    if not flats and movie is None:
        raise InputError("the photon transfer needs flat fields or a movie (with the dark frames)")
    if kind == "emccd" and (em_gain is None or em_gain < 1):
        raise InputError(f"an EMCCD's EM gain setting is needed (em_gain >= 1, got {em_gain}): photon transfer measures "
                         "only em_gain / e_per_adu")
    notes: list[str] = []
    warned: list[str] = []
    defaults = (EMCCDConfig if kind == "emccd" else SCMOSConfig)()
    qe = defaults.qe if qe is None else float(qe)
    sc = defaults.spurious_charge if spurious_charge is None else float(spurious_charge)
    read_var = dark.read_variance
    tenth = max(1, dark.frames // 10)
    drift = float(dark.frame_means[-tenth:].mean() - dark.frame_means[:tenth].mean())
    typical_read = math.sqrt(float(np.median(dark.diff_var)))
    if abs(drift) > MAX_DARK_DRIFT * typical_read:
        notes.append(f"the dark frames' mean moved by {drift:+.3g} ADU from the first to the last tenth ({typical_read:.3g} "
                     "ADU read noise): the camera was still settling, or light reached the sensor")
    if dark.saturated:
        notes.append(f"{dark.saturated} dark pixel values sit at the pixel type's maximum")
    if (note := dark.spike_note("dark")) is not None:
        notes.append(note)
    per_pixel = rel = None
    if flats:
        transfer, per_pixel, rel = _flat_transfer(dark, flats)
        for f, s_lvl, e_lvl, n_use in zip(flats, transfer.signal_adu, transfer.excess_var, transfer.counts):
            n_sat = int(f.saturated_map.sum()) if f.saturated_map is not None else 0
            if n_use == 0:
                raise InputError(f"every pixel of this flat reaches the pixel type's maximum ({f.saturated} values at it): "
                                 "saturated, its variance is clipped; record it dimmer", source=f.source or None)
            if s_lvl <= 0 and e_lvl < -MIN_EXCESS * float(read_var.mean()):  # darker and quieter than the dark frames
                raise InputError(f"this flat is no brighter than the dark frames ({s_lvl:.4g} ADU above their offset "
                                 f"{float(np.median(dark.mean)):.5g} ADU): were the dark and flat stacks swapped (--dark "
                                 f"{dark.source or '?'}), its variance {-e_lvl:.3g} ADU² below theirs?", source=f.source or None)
            if f.clip_adu is not None and e_lvl < MIN_EXCESS * float(read_var.mean()):  # its light clipped away, not dim
                raise InputError(f"{f.clip_values} value(s) of this flat's first frames sit at {f.clip_adu:.0f} ADU, where "
                                 f"the camera clips ({s_lvl:.4g} ADU above the dark frames' offset): its variance is "
                                 f"clipped away ({e_lvl:.3g} ADU² above theirs); record it dimmer, below "
                                 f"{f.clip_adu:.0f} ADU", source=f.source or None)
            if e_lvl < MIN_EXCESS * float(read_var.mean()):
                raise InputError(f"this flat adds {s_lvl:.3g} ADU of signal and {e_lvl:.3g} ADU² of variance above the "
                                 f"dark frames (read noise {float(read_var.mean()):.3g} ADU²): too dim to measure the gain; "
                                 "record it brighter" + _lit_dark(kind, dark, transfer, em_gain), source=f.source or None)
            if s_lvl <= 0:  # below the dark offset but noisier than the dark frames: not the same camera setting
                raise InputError(f"this flat is {-s_lvl:.4g} ADU below the dark frames' offset ({float(np.median(dark.mean)):.5g} "
                                 f"ADU, --dark {dark.source or '?'}) yet adds {e_lvl:.3g} ADU² of variance to theirs: the "
                                 "dark frames were recorded at another camera setting (readout mode, gain or offset); "
                                 "record them at the flats' settings", source=f.source or None)
            if n_sat:
                notes.append(f"{f.source or 'a flat'}: {n_sat} pixel(s) reach the pixel type's maximum in some frame "
                             f"({f.saturated} values): left out of its photon transfer (their variance is clipped)")
            if f.clip_adu is not None:
                what = (f"a {int(round(math.log2(f.clip_adu + 1)))}-bit camera's full scale" if f.clip_source != "pile-up"
                        else "where its values pile up and none lies above (the camera's full well, or its ADC range, "
                             "ends there)")
                text = (f"{f.source or 'a flat'}: {f.clip_values} value(s) of its first frames sit at {f.clip_adu:.0f} ADU, "
                        f"{what}: those pixels' variance is "
                        "clipped, which reads as a higher e_per_adu (0.514 for 0.46, +12 %, with a simulated flat whose mean sat "
                        "1 sd below it); record the flats "
                        f"dimmer, below {f.clip_adu:.0f} ADU")
                notes.append(text)
                warned.append(text)
            if (note := f.spike_note("flat")) is not None:
                notes.append(note)
        flickering = [(f, fl) for f, fl in zip(flats, transfer.flicker) if fl > FLICKER_NOTE]
        if flickering:
            from dataclasses import replace

            raw = _flat_transfer(replace(dark, detrended_var=None), [replace(f, detrended_var=None) for f in flats])[0]
            notes.append("the light changed from frame to frame (a flickering lamp) by "
                         + ", ".join(f"{100 * fl:.2g} % rms in {f.source or 'a flat'}" for f, fl in flickering)
                         + ": that share of each pixel's variance, which reads as shot noise, was taken out (left in, the "
                         f"gain would read {100 * (transfer.slope / raw.slope - 1):+.2g} %)")
        if movie is not None:
            notes.append("flats and a movie given: the flats' slope is used; the movie's is in the report")
    else:
        transfer = movie
        if math.isfinite(transfer.clipped) and transfer.clipped > MAX_CLIPPED:
            notes.append(f"{100 * transfer.clipped:.2g} % of the movie's frame differences are emitters switching (a clean "
                         f"background: {100 * 0.00047:.2g} %): a crowded movie reads the gain low (e_per_adu 2 % low at 1 "
                         "emitter/um^2, 11-16 % at 2 in simulations); flats, or a sparser part of the movie, measure it "
                         "better")
    if not (transfer.slope > 0 and math.isfinite(transfer.slope)):
        raise InputError(f"the photon-transfer slope is {transfer.slope:.3g}: the variance does not grow with the signal "
                         f"(signal {np.round(transfer.signal_adu, 3).tolist()} ADU, variance above the read noise "
                         f"{np.round(transfer.excess_var, 3).tolist()} ADU²)")
    slope = transfer.slope
    maps: dict[str, np.ndarray] = {}
    gain_se = float(np.median(rel)) if rel is not None else math.nan
    if kind == "scmos":
        e_per_adu: float | np.ndarray = 1.0 / slope
        use_map = per_pixel is not None and (gain_map == "yes" or (gain_map == "auto" and gain_se <= GAIN_MAP_MAX_SE))
        if use_map:
            good = per_pixel > 0
            e_map = np.where(good, 1.0 / np.where(good, per_pixel, 1.0), 1.0 / slope)
            maps["e_per_adu"] = e_map
            e_per_adu = e_map
            if (~good).any():
                notes.append(f"{int((~good).sum())} pixel(s) without a measurable gain take the mean gain")
        elif per_pixel is not None and gain_map != "no":
            notes.append(f"one gain for every pixel: the flats' {sum(f.frames for f in flats)} frames measure each "
                         f"pixel's gain to {100 * gain_se:.1f} %, worse than the {100 * GAIN_MAP_MAX_SE:g} % a gain map "
                         "needs (record more flat frames, or --gain-map yes)")
        maps["baseline"] = dark.mean - sc / np.asarray(e_per_adu)
        maps["read_variance"] = np.maximum(read_var * np.asarray(e_per_adu) ** 2 - sc, 0.0)  # e-², less the dark charge
        config = {"kind": "scmos", "qe": qe, "spurious_charge": sc,
                  "e_per_adu": float(np.mean(e_per_adu)) if "e_per_adu" not in maps else maps["e_per_adu"],
                  "baseline": maps["baseline"], "read_variance": maps["read_variance"]}
        read_sigma_adu = np.sqrt(read_var)
    else:
        from plexloc.camera.models import excess_noise_factor

        f2 = excess_noise_factor(float(em_gain))  # 2 - 1/G: 1.8 at gain 5 (2 read e_per_adu 11 % high there)
        e_per_adu = f2 * float(em_gain) / slope
        cic_mean = sc * float(em_gain) / e_per_adu
        cic_var = f2 * sc * (float(em_gain) / e_per_adu) ** 2
        # the mean over pixels (hot pixels left out), not the median: the dark charge's rare large jumps sit in a few
        # pixels' variance, and are then taken out as their mean
        typical = read_var[read_var <= 10.0 * max(float(np.median(read_var)), 1e-12)]
        read_adu2 = max(float(typical.mean()) - cic_var, 0.0)
        config = {"kind": "emccd", "qe": qe, "spurious_charge": sc, "em_gain": float(em_gain), "e_per_adu": e_per_adu,
                  "baseline": float(np.median(dark.mean)) - cic_mean, "read_sigma": math.sqrt(read_adu2) * e_per_adu}
        read_sigma_adu = np.sqrt(read_var)
        input_read = config["read_sigma"] / float(em_gain)
        if float(em_gain) >= MIN_CHECKED_EM_GAIN and input_read > MAX_EMCCD_INPUT_READ_E:
            text = (f"the read noise measured is {config['read_sigma']:.3g} e- after an EM gain of {float(em_gain):g}, "
                    f"{input_read:.2g} e- at the input, where an EMCCD at that gain reads under 1 e- (the point of its "
                    "gain): are these an sCMOS's frames (then --kind scmos), was the EM gain lower or off when the "
                    "stacks were recorded (then --em-gain as set then), or did light reach the dark frames (a light "
                    "leak, the shutter open: its amplified shot noise reads as read noise, and its light as offset, "
                    f"here {config['baseline']:.5g} ADU; record --dark {dark.source or 'DARK'} again with the sensor "
                    "covered)?")
            notes.append(text)
            warned.append(text)
    rel_se = transfer.slope_se / slope if math.isfinite(transfer.slope_se) else math.nan
    notes.append(f"photon transfer ({transfer.source}): {slope:.5g} ADU² per ADU"
                 + (f" (+-{100 * rel_se:.2g} %)" if math.isfinite(rel_se) else "")
                 + (f" -> e_per_adu {1.0 / slope:.4g}" + (" (the map's mean " f"{float(np.mean(e_per_adu)):.4g})" if "e_per_adu" in maps else "")
                    if kind == "scmos"
                    else f" -> e_per_adu {e_per_adu:.4g} at em_gain {float(em_gain):g}"))
    notes.append(f"qe {qe:g} and spurious_charge {sc:g} are not measured here (spec sheet or default): photons scale "
                 "with 1 / qe")
    config = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in config.items()}
    return CameraCalibration(kind, config, maps, dark.mean, read_sigma_adu, transfer, dark.frames, gain_se, notes, warned)
