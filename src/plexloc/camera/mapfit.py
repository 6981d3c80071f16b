"""Do an sCMOS camera's per-pixel maps belong to the movie's pixels? Maps measured on one camera region (or binning)
and used on a movie of another convert every pixel with another pixel's offset and gain, silently: a map of the
whole chip cut at the wrong ROI corner (a wrong ``--roi-offset``), maps cropped by hand at the wrong corner, or maps
of unbinned pixels on a binned movie.

The offset map carries each pixel's own offset (a few ADU of pixel-to-pixel and column-to-column spread on an
sCMOS), and so do the movie's raw frames: the median of each pixel over the first frames is its offset plus a signal
that varies smoothly, plus the median's noise. Both high-passed (less their 5 x 5 local mean), the movie's and the
map's correlate where the map is the movie's region (a correlation near :func:`expected_correlation`: the map's
spread less its own measurement noise, :func:`map_noise_var`, over the movie's) and not elsewhere (zero within
about ``1 / sqrt(pixels)``). :func:`map_match` measures that correlation where the map is used and, where it is far
below what a right map gives, searches the whole map (and its 2 x 2 and 4 x 4 binned sums) for the region whose
offsets the movie's pixels carry, by FFT cross-correlation (a normalized one over every placement inside the map:
the circular shift-finding correlations of plexloc.calibrate.register and plexloc.post.drift do not fit).

Measured (bench/camwalk48.py, seeds 0 and 1, 90 random sCMOS chips and camera ROIs: offset spread 0.3-5 ADU, read
noise 0.8-3 e-, 0.25-2 e-/ADU, 2-200 photons/px under a beam, 0-1.5 spots/um^2, 2-64 frames, maps measured from 100
dark frames), before the map's own noise was left out of the expected correlation: right maps told 0/90; maps cut at
another corner told 90/90 with the right corner named 89/90; one row off told 90/90 (found 89/90); a 2x2-binned movie
under the unbinned maps told 64/90, each with its binning named. With it (seed 0, 30 chips): right maps 0/30 (0.93-5.6
of the expected correlation), another corner 28/30 (all 28 named), one row off 27/30, 2x2 binned 20/30: the maps of
least structure for their noise now say nothing, and nearly flat offsets (corrected on the camera: 0.02-0.1 ADU) or
maps of 20 dark frames over 0.3-0.6 ADU, right, are no longer told as another region's (6/15 and 3/15 were).
The finding is told only where a right map's correlation would be at least :data:`MIN_Z` standard errors above zero
(maps with so little structure, or frames so noisy, that a wrong region could not be told, say nothing). The check
reads the central 512 x 512 pixels at most (:data:`MAX_SIDE`): 0.1 s a fit on 2048 x 2048 frames with right maps; the
search of a 2048 x 2048 chip map, only where the map does not fit, took 3-6 s on a busy 2-core machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_SIDE", "MIN_PIXELS", "MIN_Z", "MISMATCH_FRACTION", "MapMatch", "central", "decisive", "expected_correlation", "find", "highpass",
           "map_match", "map_noise_var", "movie_offsets", "search_map"]

#: a right map's expected correlation, in standard errors (``r * sqrt(pixels)``), at or above which the check speaks
MIN_Z = 12.0
#: the correlation where the map is used, as a fraction of a right map's, below which the maps are told as not the
#: movie's (right maps read 0.49-1.02 of it, a wrong region's -0.14 to 0.09, one row off 0.04-0.20)
MISMATCH_FRACTION = 0.3
#: a region the search names must read at least this fraction of a right map's expected correlation ...
FOUND_FRACTION = 0.5
#: ... and this many standard errors above zero (the largest of a few million wrong placements reads about 5.5)
FOUND_Z = 10.0
#: frames of fewer pixels say nothing (a 32 x 32 frame): over a few hundred pixels the spreads that give the expected
#: correlation are themselves uncertain by tens of percent
MIN_PIXELS = 1024
#: the binnings searched (b x b sums of the map's pixels)
BINNINGS = (1, 2, 4)
_SIZE = 5  # the local mean's window (pixels)
_HP_WHITE = 1.0 - 1.0 / _SIZE**2  # the variance of white noise after highpass, per unit variance


#: frames larger than this (per side) are compared on their central square of this size: a 2048 x 2048 movie's check
#: took 4.5 s on the whole frame; 512 x 512 pixels hold ample evidence (a right map reads 0.3 or more, a wrong one
#: within 0.01 of zero)
MAX_SIDE = 512


def central(shape: tuple[int, int], side: int = MAX_SIDE) -> tuple[tuple[slice, slice], tuple[int, int]]:
    """The central window of at most ``side`` x ``side`` of a frame ``shape`` (H, W): its slices and its corner
    (x, y) in the frame."""
    h, w = int(shape[0]), int(shape[1])
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return (slice(y0, y0 + min(h, side)), slice(x0, x0 + min(w, side))), (x0, y0)


def highpass(img: np.ndarray) -> np.ndarray:
    """``img`` less its 5 x 5 local mean (float64): what varies from pixel to pixel, an offset map's structure."""
    from scipy import ndimage

    x = np.asarray(img, dtype=np.float64)
    return x - ndimage.uniform_filter(x, _SIZE, mode="reflect")


def movie_offsets(raw_median: np.ndarray) -> np.ndarray:
    """The movie's pixel-to-pixel structure: the high-passed median of each pixel over the first frames (ADU),
    clipped at 4 robust standard deviations (a spot that stayed in the median, a hot pixel: they do not decide the
    correlation), less its mean."""
    from plexloc.evaluate.uncertainty import robust_sd

    a = highpass(raw_median)
    sd = robust_sd(a)
    if sd > 0:
        a = np.clip(a, -4 * sd, 4 * sd)
    return a - a.mean()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else math.nan


def map_noise_var(read_sigma, e_per_adu, *, dark_frames: int | None = None) -> float:
    """The variance (ADU^2) of an offset map's own measurement noise after :func:`highpass`: the read noise
    ``read_sigma`` (e-; a map or a scalar) over ``e_per_adu``, averaged over ``dark_frames`` dark frames (default
    plexloc calibrate-camera's fewest, :data:`plexloc.camera.calibration.MIN_DARK_FRAMES`: a map of more frames is
    taken as that noisy, a right map's expected correlation as lower than it is, never higher)."""
    if dark_frames is None:
        from plexloc.camera.calibration import MIN_DARK_FRAMES

        dark_frames = MIN_DARK_FRAMES
    v = (np.asarray(read_sigma, dtype=np.float64) / np.asarray(e_per_adu, dtype=np.float64)) ** 2
    return float(np.median(v)) / dark_frames * _HP_WHITE


def expected_correlation(a: np.ndarray, map_hp: np.ndarray, noise_var: float = 0.0) -> float:
    """The correlation a right map would give: the movie's pixels being the map's offsets plus independent noise, the
    map's high-passed variance less its own measurement noise ``noise_var`` (:func:`map_noise_var`, which no movie
    shares), over the movie's and the map's spreads; at most 1, 0 where the map's spread is no more than its noise
    (an offset corrected on the camera, nearly flat, measured on few dark frames: right maps read 0.15-0.4 of the
    expected correlation without the noise and were told as another ROI's 6 times in 15)."""
    from plexloc.evaluate.uncertainty import robust_sd

    sa, sb = robust_sd(a), robust_sd(map_hp)
    if not (sa > 0 and sb > 0):
        return math.nan
    return min(max(sb * sb - noise_var, 0.0) / (sa * sb), 1.0)


def _binned(m: np.ndarray, b: int) -> np.ndarray:
    if b == 1:
        return m
    h, w = (m.shape[0] // b) * b, (m.shape[1] // b) * b
    return m[:h, :w].reshape(h // b, b, w // b, b).sum(axis=(1, 3))


def search_map(a: np.ndarray, full_map: np.ndarray, *, binnings=BINNINGS, noise_var: float = 0.0
               ) -> tuple[int, int, int, float, float]:
    """Where in ``full_map`` (and its b x b binned sums) the movie's structure ``a`` (:func:`movie_offsets`) fits best:
    ``(x, y, binning, r, expected)``, the column and row of the frames' corner in the binned map's pixels, the
    correlation there and the one a right map of that binning would give. One FFT cross-correlation per binning;
    binnings whose map is smaller than the frames are skipped (``r`` NaN where none fits). ``noise_var``: the map's
    own noise per unbinned pixel (:func:`map_noise_var`; a b x b sum holds b^2 times it)."""
    from scipy import ndimage, signal

    h, w = a.shape
    best = (0, 0, 1, math.nan, math.nan)
    na = math.sqrt(float((a * a).sum()))
    for b in binnings:
        m = _binned(np.asarray(full_map, dtype=np.float64), b)
        if m.shape[0] < h or m.shape[1] < w or na == 0:
            continue
        hp = highpass(m)
        num = signal.fftconvolve(hp, a[::-1, ::-1], mode="valid")
        # each window's energy about its own mean: sum(x^2) - sum(x)^2 / n, from local means over the window
        n = h * w
        s1 = ndimage.uniform_filter(hp, (h, w), mode="constant") * n
        s2 = ndimage.uniform_filter(hp * hp, (h, w), mode="constant") * n
        oy, ox = h // 2, w // 2  # uniform_filter centres its window: shift to its corner
        s1 = s1[oy:oy + m.shape[0] - h + 1, ox:ox + m.shape[1] - w + 1]
        s2 = s2[oy:oy + m.shape[0] - h + 1, ox:ox + m.shape[1] - w + 1]
        energy = np.clip(s2 - s1 * s1 / n, 1e-12, None)
        r = num / (na * np.sqrt(energy))
        y, x = np.unravel_index(int(np.argmax(r)), r.shape)
        rb = float(r[y, x])
        if not rb <= best[3]:  # (NaN: the first)
            best = (int(x), int(y), b, rb, expected_correlation(a, hp[y:y + h, x:x + w], noise_var * b * b))
    return best


def decisive(expected: float, pixels: int) -> bool:
    """A right map would stand out: its expected correlation ``expected`` (:func:`expected_correlation`) at least
    :data:`MIN_Z` standard errors, over at least :data:`MIN_PIXELS` pixels."""
    return bool(pixels >= MIN_PIXELS and np.isfinite(expected) and expected * math.sqrt(pixels) >= MIN_Z)


@dataclass
class MapMatch:
    """How well an sCMOS camera's offset map fits a movie's pixels (:func:`map_match`)."""

    #: the correlation of the movie's pixel structure with the map where it is used
    r: float
    #: the correlation a right map would give (:func:`expected_correlation`)
    expected: float
    #: pixels compared
    pixels: int
    #: where a search of the whole map found the movie's pixels: (x, y, binning, r), or None (not searched, or none
    #: found)
    found: tuple[int, int, int, float] | None = None

    @property
    def decisive(self) -> bool:
        """A right map would stand out (:func:`decisive`)."""
        return decisive(self.expected, self.pixels)

    @property
    def mismatch(self) -> bool:
        """The map is not the movie's region: decisive, and the correlation below :data:`MISMATCH_FRACTION` of a
        right map's."""
        return self.decisive and np.isfinite(self.r) and self.r < MISMATCH_FRACTION * self.expected


def map_match(raw_median: np.ndarray, used_map: np.ndarray, full_map: np.ndarray | None = None, *,
              used: tuple[int, int] | None = None, noise_var: float = 0.0,
              corner: tuple[int, int] | None = None) -> MapMatch:
    """The offset map ``used_map`` (H, W; ADU) that converts a movie, against the movie's own pixel offsets: the
    median of each raw pixel over its first frames, ``raw_median`` (H, W; ADU). Where the map does not fit
    (:attr:`MapMatch.mismatch`) and ``full_map`` (the chip's map the used one was cut from, or the used map itself)
    is given, the region of it (and binning) that does is searched for (:func:`search_map`) and kept where it reads
    at least :data:`FOUND_FRACTION` of a right map's correlation and :data:`FOUND_Z` standard errors, and is not the
    ``used`` corner (x, y) at binning 1. ``noise_var``: the map's own measurement noise (:func:`map_noise_var`).
    ``corner``: ``raw_median`` and ``used_map`` are already the frames' window (:func:`central`) whose corner (x, y)
    in the frames this is; None: the whole frames, cut to that window here."""
    if corner is None:
        win, corner = central(np.shape(raw_median))  # (the whole frame up to MAX_SIDE per side)
        raw_median, used_map = np.asarray(raw_median)[win], np.asarray(used_map)[win]
    cx, cy = corner
    a = movie_offsets(raw_median)
    hp = highpass(used_map)
    out = MapMatch(_corr(a, hp), expected_correlation(a, hp, noise_var), int(a.size))
    if out.mismatch and full_map is not None:
        out.found = find(a, full_map, (cx, cy), used=used, noise_var=noise_var)
    return out


def find(a: np.ndarray, full_map: np.ndarray, corner: tuple[int, int] = (0, 0), *,
         used: tuple[int, int] | None = None, noise_var: float = 0.0) -> tuple[int, int, int, float] | None:
    """The frames' corner (x, y), binning and correlation where the movie's structure ``a`` (:func:`movie_offsets` of
    the frames' window whose corner is ``corner``) fits ``full_map`` clearly (:data:`FOUND_FRACTION` of a right map's
    correlation and :data:`FOUND_Z` standard errors, the frames' corner on the map: the frames may reach past a map
    cut to their size, whose chip's maps hold them; not the ``used`` corner at binning 1); None where nothing does.
    Unbinned first, the binnings only where it finds nothing (each search of a 2048 x 2048 map takes seconds)."""
    for binnings in (BINNINGS[:1], BINNINGS[1:]):
        x, y, b, r, exp = search_map(a, full_map, binnings=binnings, noise_var=noise_var)
        x, y = x - corner[0], y - corner[1]  # the window's corner -> the frames'
        if (np.isfinite(r) and r >= FOUND_FRACTION * exp and r * math.sqrt(a.size) >= FOUND_Z and x >= 0 and y >= 0
                and not (b == 1 and used is not None and (x, y) == tuple(used))):
            return (x, y, b, r)
    return None
