"""Fourier ring correlation (FRC) resolution of a localization table (Nieuwenhuizen et al. 2013).

The resolution is lateral: the halves are images of x and y, and a 3D table's z range is projected into them
(``plexloc frc`` says so next to the value; filter a z slice first for the resolution of one).

The localizations are split at random into two halves (seeded), each is rendered as a histogram
with pixel ``px_size_nm`` over the same extent, its window-weighted mean subtracted, multiplied by a Tukey window
(edges to zero), and Fourier transformed. Without the subtraction the window's taper over the field's mean
density is structure that both halves share: molecules at random places, each seen once, got a resolution of
380-700 nm (2,000-100,000 points) instead of none; structured tables change by under 0.2 nm. Per ring of spatial frequency ``q`` (bins of width ``1 / (N px)``):

    FRC(q) = Re(sum F1 F2*) / sqrt(sum |F1|² sum |F2|²)

The curve is smoothed (Gaussian, ``smooth_bins``) and the resolution is ``1 / q`` at the first
crossing of the threshold ``1/7`` above ``q_min`` (linear interpolation between rings).

What to expect (the check in the tests): for molecules at random positions, each localized on
average ``2 Q`` times with precision σ (so ``Q`` times per half), the expected curve is
``FRC(q) = Q H² / (1 + Q H²)`` with ``H² = exp(-4 π² σ_eff² q²)``, which crosses 1/7 at
``R = 2 π σ_eff / sqrt(ln(6 Q))``; ``σ_eff² = σ² + px²/12`` adds the binning. :func:`expected_frc_resolution`
gives this value. Repeated localizations of one molecule fall in both halves, which is what FRC
measures here; merge on-events first (:mod:`plexloc.post.merge`) for a resolution that does not
count blinking: :func:`unmerged_caveat` says when a table looks unmerged (no ``n_merged``/``frame_last``
columns and localizations that repeat in the next frame), for ``plexloc frc`` and ``plexloc report``
to print next to the value.

A field wider than ``max_image_px`` (4096) pixels is cut into equal square tiles, each windowed and transformed as
above, and the ring sums of the three terms are pooled over the tiles (the pixel is kept; it was grown to fit one
image). A resolution under 3 pixels carries ``info["pixel_limited"]``: the binning's blur then coarsens it.

Where the smoothed curve does not cross 1/7 there is no resolution (``nan``) and
``info["no_crossing"]`` says why: the curve stays above 1/7 up to the highest frequency (the
resolution is finer than 2 pixels, or the table holds exactly repeated positions such as a
ground-truth table), or it is below 1/7 from the lowest frequency considered (too few
localizations, or no structure that the two halves share).

Example:
    >>> import numpy as np
    >>> from plexloc.post.synthetic import blinking_table, structure_points
    >>> rng = np.random.default_rng(0)
    >>> t = blinking_table(structure_points("uniform", 3000, fov_nm=6000.0, rng=rng), n_frames=500,
    ...                    rng=rng, precision_nm=10.0, events_per_molecule=4, mean_on_frames=1.0)
    >>> res = frc(t, px_size_nm=5.0, seed=0)
    >>> q = len(t) / 3000 / 2
    >>> bool(abs(res.resolution_nm / expected_frc_resolution(10.0, q, px_size_nm=5.0) - 1) < 0.2)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["FRCResult", "MIN_LOCALIZATIONS", "expected_frc_resolution", "frc", "unmerged_caveat"]

THRESHOLD = 1.0 / 7.0
#: the fewest localizations a table (or a region of one, plexloc frc --extent) needs for an FRC
MIN_LOCALIZATIONS = 100
#: a resolution under this many pixels is said to be limited by the pixel (``info["pixel_limited"]``)
PIXEL_LIMITED_PX = 3.0


@dataclass
class FRCResult:
    q_per_nm: np.ndarray
    frc: np.ndarray
    frc_smooth: np.ndarray
    resolution_nm: float
    px_size_nm: float
    threshold: float = THRESHOLD
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "resolution_nm": self.resolution_nm,
            "threshold": self.threshold,
            "px_size_nm": self.px_size_nm,
            "q_per_nm": self.q_per_nm.tolist(),
            "frc": self.frc.tolist(),
            "frc_smooth": self.frc_smooth.tolist(),
            **self.info,
        }


def expected_frc_resolution(sigma_nm: float, q_per_half: float, *, px_size_nm: float = 0.0) -> float:
    """``2 π σ_eff / sqrt(ln(6 Q))`` for random molecules localized ``Q`` times per half (module docstring)."""
    if q_per_half <= 1.0 / 6.0:
        return float("inf")
    s = np.sqrt(sigma_nm**2 + px_size_nm**2 / 12.0)
    return float(2 * np.pi * s / np.sqrt(np.log(6.0 * q_per_half)))


def _tukey(n: int, alpha: float = 0.1) -> np.ndarray:
    from scipy.signal.windows import tukey

    return tukey(n, alpha)


def frc(
    table: LocTable,
    *,
    px_size_nm: float = 5.0,
    seed: int = 0,
    max_image_px: int = 4096,
    max_tiles: int = 16,
    smooth_bins: float = 2.0,
    q_min_per_nm: float | None = None,
    extent_nm=None,
) -> FRCResult:
    """FRC resolution of two random halves of ``table`` (module docstring).

    Args:
        px_size_nm: pixel of the rendered halves; a field wider than ``max_image_px`` pixels is cut into equal
            square tiles of at most that side whose ring sums are pooled (``info["tiles"]``); past ``max_tiles``
            tiles the pixel is grown (``info["px_grown"]`` says so; the value used is in the result).
        seed: seed of the random split.
        smooth_bins: σ of the Gaussian smoothing of the curve, in rings.
        q_min_per_nm: crossings below this frequency are ignored (default ``1 / (width / 4)`` i.e. 4 rings).
        extent_nm: ``(x0, x1, y0, y1)`` region; default the bounding box.
    """
    import scipy.fft
    from scipy.ndimage import gaussian_filter1d

    from plexloc.render.image import render_histogram

    if len(table) < MIN_LOCALIZATIONS:
        raise InputError(f"FRC needs at least {MIN_LOCALIZATIONS} localizations, the table has {len(table)}",
                         source=table.source)
    table.check_finite(("x_nm", "y_nm"))
    x, y = table["x_nm"], table["y_nm"]
    if extent_nm is None:
        extent_nm = (x.min(), x.max() + 1e-6, y.min(), y.max() + 1e-6)
    x0, x1, y0, y1 = extent_nm
    px = float(px_size_nm)
    info: dict = {"n_localizations": len(table), "seed": seed}
    # a field wider than max_image_px pixels is cut into square tiles (their ring sums pooled) at the pixel asked for:
    # the pixel was grown to fit one image instead (a 59 µm field at 5 nm: 14.4 nm, where the curve reached 1/7 only at
    # 2 pixels and read 29.1 nm against 26.2 nm at 5 nm, or not at all, with advice to try a smaller pixel that the
    # command then grew again); only past max_tiles tiles does the pixel grow, and then it is said
    def tiles(p: float) -> tuple[int, int, np.ndarray, np.ndarray]:
        """At pixel ``p``: the side (pixels) of the square tiles that just cover the field (one image where it fits),
        their number, each row's tile (column, row of the grid; -1 outside it) and the tiles that hold a row
        ``(m, 2)`` (one image: its own, held or not)."""
        nx, ny = (max(1, int(np.ceil((b - a) / p / max_image_px - 1e-9))) for a, b in ((x0, x1), (y0, y1)))
        if nx * ny == 1:
            side = int(np.ceil(max(x1 - x0, y1 - y0) / p))
        else:
            side = int(np.ceil(max((x1 - x0) / nx, (y1 - y0) / ny) / p - 1e-9))
        ij = np.column_stack([np.floor((x - x0) / (side * p)), np.floor((y - y0) / (side * p))])
        ij[~((ij[:, 0] >= 0) & (ij[:, 0] < nx) & (ij[:, 1] >= 0) & (ij[:, 1] < ny))] = -1
        ij = ij.astype(np.int64)
        if nx * ny == 1:
            return side, 1, ij, np.zeros((1, 2), np.int64)
        # the tiles held, in the order of np.unique(axis=0) (by column, then row), from one integer key per row
        # (np.unique(axis=0) sorted 2 x 10^6 rows as structured records: 3 s of a 2-million-row report's FRC)
        key = np.unique(ij[ij[:, 0] >= 0] @ np.array([ny, 1]))
        return side, nx * ny, ij, np.column_stack([key // ny, key % ny])

    n, grid, ij, held = tiles(px)
    # the tiles that hold localizations are transformed (empty ones cost nothing: they were counted against max_tiles,
    # and a field of two regions far apart had its pixel grown for the tiles between them)
    if len(held) > max_tiles:
        # the finest pixel that max_tiles tiles cover: the best of the tile grids a x (max_tiles // a)
        grown = min(max((x1 - x0) / (a * max_image_px), (y1 - y0) / ((max_tiles // a) * max_image_px))
                    for a in range(1, max_tiles + 1)) * (1 + 1e-9)
        info["px_grown"] = (f"the pixel was grown from {px:g} to {grown:.3g} nm: at {px:g} nm the localizations of "
                            f"the {(x1 - x0) / 1000:.3g} x {(y1 - y0) / 1000:.3g} µm field lie in {len(held)} tiles "
                            f"of {max_image_px} pixels, more than {max_tiles}; give a region (plexloc frc --extent) "
                            "for a finer pixel")
        px = float(grown)
        n, grid, ij, held = tiles(px)
    info["image_px"] = n
    rng = np.random.default_rng(seed)
    half = rng.random(len(table)) < 0.5
    win = np.outer(_tukey(n), _tukey(n))
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    ring = np.rint(np.sqrt(kx**2 + ky**2) * n).astype(np.int64).ravel()
    n_rings = n // 2
    sel = ring < n_rings
    ring = ring[sel]
    del kx, ky

    # exactly n x n (the extent's side over px can round to n + 1 pixels)
    def spectrum(part: LocTable, extent) -> np.ndarray:
        # the window-weighted mean is subtracted first: a uniform field times the window is a shape both halves share,
        # and it alone gave a structure-free table a resolution (20,000 random points, each seen once: 459 nm)
        img = render_histogram(part, px_size_nm=px, extent_nm=extent).image[:n, :n]
        # scipy's FFT: the same numbers as numpy's, 1.6x faster at a tile's side (3941 = 7 x 563 pixels: 2 s -> 1.3 s)
        return scipy.fft.rfft2((img - (img * win).sum() / win.sum()) * win)

    num = np.zeros(n_rings)
    d1 = np.zeros(n_rings)
    d2 = np.zeros(n_rings)
    pooled = 0
    for a, b in held:
        tx0, ty0 = x0 + a * n * px, y0 + b * n * px
        extent = (tx0, tx0 + n * px, ty0, ty0 + n * px)
        if grid > 1:  # (each row in one tile: the grid's)
            inside = (ij[:, 0] == a) & (ij[:, 1] == b)
        else:
            inside = (x >= tx0) & (x < tx0 + n * px) & (y >= ty0) & (y < ty0 + n * px)
        f1, f2 = spectrum(table[half & inside], extent), spectrum(table[~half & inside], extent)
        num += np.bincount(ring, weights=np.real(f1 * np.conj(f2)).ravel()[sel], minlength=n_rings)
        d1 += np.bincount(ring, weights=(np.abs(f1) ** 2).ravel()[sel], minlength=n_rings)
        d2 += np.bincount(ring, weights=(np.abs(f2) ** 2).ravel()[sel], minlength=n_rings)
        pooled += 1
        del f1, f2
    if grid > 1:
        info["tiles"] = pooled
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = num / np.sqrt(d1 * d2)
    curve = np.nan_to_num(curve, nan=0.0)
    if n_rings > 1:
        curve[0] = curve[1]  # the mean is subtracted: ring 0 (the sum of numbers near 0) is noise; it takes ring 1's value
    q = np.arange(n_rings) / (n * px)
    smooth = gaussian_filter1d(curve, smooth_bins, mode="nearest") if smooth_bins > 0 else curve.copy()
    q_min = 4.0 / (n * px) if q_min_per_nm is None else float(q_min_per_nm)
    # the first crossing from above the threshold to below it at or above q_min (a curve already below the threshold
    # at q_min has no crossing there: interpolating towards the ring before would extrapolate, even to negative values)
    below = np.flatnonzero((smooth < THRESHOLD) & (q >= q_min) & (np.arange(n_rings) > 0))
    below = below[smooth[below - 1] >= THRESHOLD] if below.size else below
    if below.size == 0:
        resolution = float("nan")
        considered = smooth[(q >= q_min) & (np.arange(n_rings) > 0)]
        if considered.size and considered[-1] >= THRESHOLD:  # no downward crossing, ends above: above throughout
            info["no_crossing"] = (
                f"the FRC curve stays above the 1/7 threshold up to the highest frequency, 1/{2 * px:g} nm: the "
                f"resolution is finer than 2 pixels of {px:g} nm (try a smaller pixel), or the table holds exactly "
                "repeated positions (a ground-truth table, or copies of one localization)")
        else:
            info["no_crossing"] = (
                f"the FRC curve is below the 1/7 threshold from the lowest frequency considered, 1/{1 / q_min:.0f} nm, "
                f"on: the two halves of the {len(table)} localizations share no structure (too few localizations, "
                "or molecules at random places each seen once)")
    else:
        k = below[0]
        f_a, f_b = smooth[k - 1], smooth[k]
        qc = q[k - 1] + (f_a - THRESHOLD) / (f_a - f_b) * (q[k] - q[k - 1]) if f_a != f_b else q[k]
        resolution = float(1.0 / qc)
        if resolution < PIXEL_LIMITED_PX * px:
            # the binning's blur is part of the curve: on a 20 um region of filaments of 8 nm precision, 26.2 nm at
            # 5 nm pixels read 28.0 at 10 nm (2.8 pixels) and 29.1 at 14.4 nm (2.0 pixels)
            info["pixel_limited"] = (
                f"the resolution is under {PIXEL_LIMITED_PX:g} pixels of {px:.3g} nm ({resolution / px:.1f} pixels): "
                "the pixel's binning coarsens it; a pixel of a quarter of the value or less gives a truer one")
    return FRCResult(q, curve, smooth, resolution, px, info=info)


#: the share of localizations with a neighbour in the next frame above which an unmerged table gets the caveat
UNMERGED_LINKED_FRACTION = 0.05


def unmerged_caveat(table: LocTable, *, radius_nm: float = 50.0) -> str | None:
    """Why an FRC value of ``table`` is too optimistic, or None.

    A table that ``plexloc merge`` made carries ``n_merged`` and ``frame_last``: None. Otherwise the localizations
    that link to one in the next frame within ``radius_nm`` (:func:`plexloc.post.merge.link_localizations`,
    ``gap=0``) are counted; at :data:`UNMERGED_LINKED_FRACTION` or more the table looks unmerged, and the repeated
    localizations of one molecule, which fall in both halves, fake correlation at every frequency: the FRC value is
    finer than the image is (on a 200-frame simulation, 64 nm unmerged, 656 nm merged).
    """
    from plexloc.post.merge import link_localizations

    if "n_merged" in table or "frame_last" in table or len(table) < 2:
        return None
    groups = link_localizations(table, radius_nm=radius_nm, gap=0)
    linked = float(np.mean(np.bincount(groups)[groups] > 1))
    if linked < UNMERGED_LINKED_FRACTION:
        return None
    return (f"the table looks unmerged (no n_merged/frame_last columns; {100 * linked:.0f} % of its localizations "
            f"have one within {radius_nm:g} nm in the next frame): repeated localizations of one molecule fall in "
            "both halves and make the FRC value too optimistic; run plexloc merge first")
