"""Super-resolution images from localization tables: histogram and Gaussian rendering, colour, files.

Geometry. An image of pixel size ``px_size_nm`` covers ``extent_nm = (x0, x1, y0, y1)`` (default: the
localizations' bounding box); pixel (row i, column j) covers ``x0 + [j, j+1) * px``,
``y0 + [i, i+1) * px``. Localizations outside are not drawn (their count is returned in the
:class:`Rendered` result).

``histogram``
    Localizations per pixel (``np.bincount``).
``gaussian``
    Each localization a normalised, axis-aligned 2D Gaussian with its own σx and σy: ``sigma_x_nm`` and
    ``sigma_y_nm``, else ``crlb_x_nm`` and ``crlb_y_nm``, else ``crlb_x_nm`` for both (round); ``sigma_nm``
    gives one σ to all, round. It integrates to one (or to its ``weights`` entry), less what falls outside
    the image. ``min_sigma_nm`` floors σx and σy each (a negative σ, too, is raised to it); a NaN or
    infinite σ is an error. Fast for 10^7 rows: σx and σy are quantised, each on its own, to geometric levels
    ``sigma_step`` (10 %) apart; each σ moves by at most half a step (<= 5 %), and σ wider than
    ``MAX_SIGMA_PX`` (32) image pixels is drawn at that width. The Gaussian is separable, so the rows of
    one σy level are first spread along x with the sampled kernel of their own σx level (row by row, or
    for a crowded (σx, σy) group as a histogram filtered along x), and then that image is filtered once
    along y; the σy levels add up. A σy level of few rows (a sparse table's, a colour's share) is drawn
    instead as each row's 2D kernel (the outer product of its y and x kernels) added at its pixel, which is the
    same image without filtering every pixel of the image for them; the cheaper way is chosen per σy level.
    A round table gives the image of a 2D filter per σ level (``scipy.ndimage.gaussian_filter``, truncated at
    4 σ, zeros outside) to rounding error.

Colour: ``color_by="z"`` splits z into levels, each rendered and tinted with a colormap entry
(default ``turbo``) and summed (RGB); ``color_by="color"`` tints each colour channel (``color``
column; -1 rejected rows are grey). Each colour's rows are drawn with the σ levels of their own σ range, as
:func:`render` draws them, straight into the RGB image (no image per colour).

Files: ``.tif``/``.tiff`` are written as 16-bit (grey, or RGB for colour), linear, the brightest pixel at 65535 and
nothing clipped (one grey level is ``max / 65535`` localizations per pixel, returned as ``tiff_value_per_level``), with
the pixel size as resolution (grey: ImageJ TIFF in µm, with the grey-level calibration ``cf=0, c0=0, c1``, its
``vunit`` and the display range 0 to the ``saturate`` quantile of the non-zero pixels; RGB: plain TIFF, resolution per
cm, which ImageJ shows in µm, the value of a grey level in the description); ``.png`` is 8-bit, the ``saturate``
quantile at 255 (brighter pixels clipped: a picture, not data). A scale bar (white, bottom right, the largest of
1-2-5 × 10^k nm that is at most a fifth of the width) is drawn into PNGs, and into TIFFs only when ``scale_bar=True``:
a TIFF is data, its bar's pixels (65535) would be read as localizations by an intensity profile or a threshold, and
its calibration lets Fiji draw one (Analyze > Tools > Scale Bar).

Memory: an image whose working memory (:data:`BYTES_PER_PIXEL` per pixel, more for colour) would exceed
:data:`MEMORY_SHARE` of the memory available is refused before anything is allocated, with the pixel size that
would fit; ``max_pixels`` (2^28) bounds the size on any machine.

Example:
    >>> t = LocTable({"frame": [0, 0], "x_nm": [15.0, 35.0], "y_nm": [5.0, 5.0],
    ...               "z_nm": [0.0, 0.0], "photons": [1.0, 1.0]})
    >>> r = render_histogram(t, px_size_nm=10.0, extent_nm=(0, 40, 0, 20))
    >>> r.image.tolist()
    [[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path
from plexloc.table import LocTable, as_table, uncertainty_columns

__all__ = [
    "Rendered",
    "default_method",
    "nice_scale_bar_nm",
    "render",
    "render_color",
    "render_gaussian",
    "render_histogram",
    "rows_without_sigma",
    "sigma_xy_columns",
    "save_image",
]


@dataclass
class Rendered:
    """An image (H, W) or RGB (H, W, 3), float, and its geometry: ``px_size_nm`` the image pixel (nm);
    ``extent_nm`` ``(x0, x1, y0, y1)`` in the table's coordinates (nm; row 0 of the image at ``y0``, column 0 at
    ``x0``, as ``matplotlib.pyplot.imshow(image, extent=(x0, x1, y1, y0))`` shows it); ``n_outside`` the rows that fell
    outside the extent."""

    image: np.ndarray
    px_size_nm: float
    extent_nm: tuple[float, float, float, float]
    n_outside: int = 0
    legend: str = ""
    #: what a pixel's value counts (written as the TIFF's value unit)
    value_unit: str = "localizations per pixel"
    #: colour by z: the z (nm) at the colormap's start and end, the colormap and its number of levels (for a legend)
    z_range_nm: tuple[float, float] | None = None
    cmap: str = ""
    n_levels: int = 0
    #: colour by channel: (colour index, RGB) of each colour drawn (-1: rejected, grey)
    colors: tuple = ()


#: working memory of one image pixel, in bytes, while it is rendered and written (measured peaks, rounded up: a
#: histogram is counted in int64 and copied to float64, then scaled for the file; a Gaussian image holds the image,
#: the row accumulator, a buffer and a histogram; a colour image its three planes, and for a Gaussian one colour's
#: filtered plane with those of a Gaussian image, and a temporary plane)
BYTES_PER_PIXEL = {"histogram": 24, "gaussian": 32}
#: the share of the memory available that one image may take before it is refused
MEMORY_SHARE = 0.5


def _available_memory_bytes() -> int | None:
    """The memory that can be allocated without swapping (Linux ``MemAvailable``), else the free physical pages;
    None when neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(h: int, w: int, px: float, bytes_per_px: int, what: str, source=None) -> None:
    """Refuse an image whose working memory would exceed :data:`MEMORY_SHARE` of the memory available, before any of
    it is allocated (a 100 µm field at 6.2 nm is 2.6e8 pixels: about 6 GiB as a histogram, 25 GiB coloured by z)."""
    avail = _available_memory_bytes()
    if avail is None:
        return
    need = float(h) * w * bytes_per_px
    budget = MEMORY_SHARE * avail
    if need > budget:
        raise InputError(
            f"an image of {h} x {w} pixels at {px:g} nm ({what}) needs about {need / 2**30:.1f} GiB of memory, more "
            f"than {100 * MEMORY_SHARE:.0f} % of the {avail / 2**30:.1f} GiB available; use a larger pixel size "
            f"(>= {px * np.sqrt(need / budget) * 1.01:.1f} nm) or a smaller extent", source=source
        )


def _value_unit(weights) -> str:
    return "localizations per pixel" if weights is None else "weight per pixel"


def _geometry(table: LocTable, px: float, extent_nm, max_pixels: int) -> tuple[tuple[float, float, float, float], int, int]:
    if not (np.isfinite(px) and px > 0):
        raise InputError(f"pixel size must be a positive number of nm, got {px!r}")
    table.check_finite(("x_nm", "y_nm"))  # (a NaN row was counted as outside the image, or made the extent NaN)
    if extent_nm is None:
        if len(table) == 0:
            raise InputError("cannot render an empty table without an extent", source=table.source)
        x0 = np.floor(table["x_nm"].min() / px) * px
        y0 = np.floor(table["y_nm"].min() / px) * px
        x1 = table["x_nm"].max() + px
        y1 = table["y_nm"].max() + px
        extent_nm = (x0, x1, y0, y1)
    x0, x1, y0, y1 = (float(v) for v in extent_nm)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"extent must be (x0, x1, y0, y1) with x1 > x0 and y1 > y0, got {extent_nm}")
    w = max(1, int(np.ceil((x1 - x0) / px - 1e-9)))  # a side of n pixels that rounding makes n + 1e-14 stays n
    h = max(1, int(np.ceil((y1 - y0) / px - 1e-9)))
    if h * w > max_pixels:
        raise InputError(
            f"an image of {h} x {w} pixels at {px} nm exceeds {max_pixels} pixels; use a larger pixel size "
            f"(>= {px * np.sqrt(h * w / max_pixels):.1f} nm) or a smaller extent", source=table.source
        )
    return (x0, x1, y0, y1), h, w


def _bin(x, y, weights, extent, h, w, px):
    x0, _, y0, _ = extent
    j = np.floor((x - x0) / px)
    i = np.floor((y - y0) / px)
    inside = (j >= 0) & (j < w) & (i >= 0) & (i < h)
    idx = i[inside].astype(np.int64) * w + j[inside].astype(np.int64)
    wts = None if weights is None else weights[inside]
    img = np.bincount(idx, weights=wts, minlength=h * w).reshape(h, w).astype(np.float64)
    return img, int(np.count_nonzero(~inside))


def render_histogram(table: LocTable, *, px_size_nm: float, extent_nm=None, weights=None,
                     max_pixels: int = 2**28) -> Rendered:
    """Localizations per pixel (see the module docstring).

    Args:
        table: a :class:`LocTable` (or a dict or pandas DataFrame of its columns); ``x_nm``, ``y_nm`` are used.
        px_size_nm: the image pixel, nm (e.g. 10 for an image of 10-nm pixels).
        extent_nm: ``(x0, x1, y0, y1)`` nm to draw; default the localizations' bounding box.
        weights: per row, what each localization adds (default 1: a count).
        max_pixels: larger images are refused (as are images over half the memory available).
    """
    table = as_table(table)
    extent, h, w = _geometry(table, float(px_size_nm), extent_nm, max_pixels)
    _check_memory(h, w, float(px_size_nm), BYTES_PER_PIXEL["histogram"], "histogram", table.source)
    img, out = _bin(table["x_nm"], table["y_nm"], weights, extent, h, w, float(px_size_nm))
    return Rendered(img, float(px_size_nm), extent, out, value_unit=_value_unit(weights))


#: the widest Gaussian a localization is drawn with, in image pixels (the filter's cost grows with the width)
MAX_SIGMA_PX = 32.0
#: a σ of at most this many image pixels is drawn as a point along its axis (the blur would not show)
_POINT_SIGMA_PX = 0.05
#: the Gaussian kernels reach ±4 σ (``scipy.ndimage.gaussian_filter``'s default)
_TRUNCATE = 4.0
#: rows prepared per pass (the temporaries of a chunk are reused memory, not fresh pages for each array)
_CHUNK = 1 << 20


def _spread_is_cheaper(n_rows: int, n_taps: int, n_pixels: int) -> bool:
    """Whether a group of rows sharing one x kernel is cheaper spread row by row than histogrammed and filtered along
    x: spreading costs per row and tap, filtering per pixel (and tap); the crossover, 0.8 + taps / 20 kernel entries
    per image pixel, was measured on this project's 2-core CPU (2500 x 2500 pixels, 3 to 81 taps)."""
    return n_taps == 1 or n_rows * n_taps <= n_pixels * (0.8 + n_taps / 20)


def sigma_xy_columns(table: LocTable) -> tuple[str, str] | None:
    """The columns a Gaussian image draws each row's (σx, σy) from: those :func:`plexloc.table.uncertainty_columns`
    offers (the predicted ``sigma_x_nm, sigma_y_nm``, else the MLE's ``crlb_x_nm, crlb_y_nm``), else a lone
    ``crlb_x_nm`` drawn round; None where the table has none of them."""
    cols = uncertainty_columns(table, "xy")
    if cols is not None:
        return cols[0], cols[1]
    for cx, cy in (("sigma_x_nm", "sigma_y_nm"), ("crlb_x_nm", "crlb_y_nm"), ("crlb_x_nm", "crlb_x_nm")):
        if cx in table and cy in table:  # present without a finite value (rows_without_sigma names them)
            return cx, cy
    return None


def _sigma_columns(table: LocTable, sigma_nm: float | None) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    """(σx, σy) per row in nm, read only, and the names they came from."""
    if sigma_nm is not None:
        s = np.full(len(table), float(sigma_nm))
        return s, s, ("sigma_nm", "sigma_nm")
    names = sigma_xy_columns(table)
    if names is not None:
        return np.asarray(table[names[0]], dtype=float), np.asarray(table[names[1]], dtype=float), names
    have = [c for c in ("sigma_x_nm", "sigma_y_nm", "crlb_y_nm") if c in table]
    raise InputError("Gaussian rendering needs sigma_x_nm and sigma_y_nm (or crlb_x_nm [and crlb_y_nm]) columns, or a "
                     f"fixed sigma_nm{'; the table has only ' + ', '.join(have) if have else ''}", source=table.source)


def _levels(lo: float, hi: float, step: float, px: float) -> np.ndarray:
    """Geometric σ levels ``step`` apart from the smallest σ ``lo`` to the largest ``hi``."""
    lo = max(lo, 1e-3 * px)
    hi = max(hi, lo)
    return np.geomspace(lo, hi, max(1, int(np.ceil(np.log(hi / lo) / np.log1p(step))) + 1))


def _level_of(sigma: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each σ's level: the one whose geometric midpoints with its neighbours bracket it (``np.searchsorted`` of the
    midpoints, computed from logarithms, which is several times faster, then corrected where rounding moved it)."""
    n = len(levels)
    if n == 1:
        return np.zeros(sigma.shape, np.int64)
    edges = np.sqrt(levels[1:] * levels[:-1])
    u = np.log(sigma / levels[0])
    u *= (n - 1) / np.log(levels[-1] / levels[0])
    u -= 0.5
    k = np.clip(np.ceil(u), 0, n - 1).astype(np.int64)
    k -= (k > 0) & (sigma <= edges[np.maximum(k - 1, 0)])
    k += (k < n - 1) & (sigma > edges[np.minimum(k, n - 2)])
    return k


def _kernel(s_px: float) -> np.ndarray:
    """The sampled, normalised 1D Gaussian of σ ``s_px`` pixels over ±4 σ; ``[1]`` (a point) at most 0.05 px."""
    if s_px <= _POINT_SIGMA_PX:
        return np.ones(1)
    r = int(_TRUNCATE * s_px + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s_px) ** 2)
    return k / k.sum()


#: the cost, in ns on this project's 2-core CPU, of one kernel entry spread along x row by row (``np.add.at`` of a
#: scalar), one entry of a 2D kernel added where a row falls (``np.add.at`` of an array, with its indices), and one
#: image pixel filtered along y (per pixel and per tap): which way to draw one σy level's rows
#: (:func:`_direct_saving`); from micro-timings on 1500 x 1500 pixels, checked against both ways forced on 2500 x 2500
#: (bench/render41.py calib)
_NS_SPREAD = 4.0
_NS_SPLAT = 10.0
_NS_FILTER_PX = 6.0
_NS_FILTER_TAP = 0.25
#: kernel entries (times colour channels) added per ``np.add.at`` call of a direct splat (its indices and values are
#: two arrays of this many entries, 16 MiB)
_SPLAT_CHUNK = 1 << 20


def _direct_saving(n_entries: int, n_pixels: int, n_taps_y: int, x_cost: float) -> float:
    """The time (ns) that drawing the rows of one σy level each as its 2D kernel (``n_entries`` kernel entries in all,
    times the colour channels) saves over spreading them along x (``x_cost`` ns) and filtering along y over the whole
    image; negative where it costs more. A σy level that holds few rows (every level of a sparse table; the z levels
    of a colour image each hold a share of the rows) was filtered over every pixel of the image for them."""
    y_cost = n_pixels * (_NS_FILTER_PX + _NS_FILTER_TAP * n_taps_y) if n_taps_y > 1 else 2.0 * n_pixels
    return x_cost + y_cost - n_entries * _NS_SPLAT


class _GreySink:
    """Where the Gaussians are drawn: one image plane."""

    n_channels = 1
    #: the cost (ns per pixel) of the planes that filtering along y needs (allocated for the first level filtered)
    setup_ns = 5.0

    def __init__(self, img: np.ndarray):
        self.img = img
        self._flat = img.reshape(-1)

    def prepare(self, n_entries: int, n_pixels: int) -> None:
        pass

    def splat(self, idx: np.ndarray, vals: np.ndarray) -> None:
        np.add.at(self._flat, idx, vals)  # (vals a full array: numpy 2.4's add.at crashed on broadcast values)

    def add(self, plane: np.ndarray) -> None:
        self.img += plane

    def finish(self) -> None:
        pass


class _ColorSink:
    """Where one colour's Gaussians are drawn: a plane of this colour's image, tinted into the RGB image (H, W, 3) at
    the end (one product per channel, as before), or, for a colour of few kernel entries, the RGB image itself (each
    entry times the colour: no plane to fill and tint)."""

    def __init__(self, rgb: np.ndarray, color: np.ndarray):
        self.rgb = rgb
        self._flat = rgb.reshape(-1)
        self.color = np.asarray(color, dtype=float)
        self.channels = [c for c in range(3) if self.color[c]]
        self.n_channels = max(1, len(self.channels))
        #: the plane of this colour, filled and tinted into each channel (ns per pixel), and filtering's own planes
        self.setup_ns = 5.0 + 1.0 + 2.5 * self.n_channels
        self.plane = None
        self._into_plane = False

    def prepare(self, n_entries: int, n_pixels: int) -> None:
        """Draw into a plane of this colour where the ``n_entries`` kernel entries of its rows (all drawn as 2D
        kernels), added once per channel, would cost more than the plane."""
        if (self.n_channels - 1) * n_entries * _NS_SPLAT > (self.setup_ns - 5.0) * n_pixels:
            self.plane = np.zeros(self.rgb.shape[:2])
            self._into_plane = True
            self.n_channels, self.setup_ns = 1, 5.0

    def splat(self, idx: np.ndarray, vals: np.ndarray) -> None:
        if self._into_plane:
            np.add.at(self.plane.reshape(-1), idx, vals)
            return
        idx = idx * 3
        for c in self.channels:
            np.add.at(self._flat, idx + c if c else idx, vals * self.color[c])

    def add(self, plane: np.ndarray) -> None:
        if self.plane is None:
            self.plane = np.array(plane)  # (the caller's buffers are reused)
        else:
            self.plane += plane

    def finish(self) -> None:
        if self.plane is not None:
            for c in self.channels:  # one plane at a time (a product of the whole RGB image was three more planes)
                self.rgb[..., c] += self.color[c] * self.plane
            self.plane = None


def _splat(sink, flat: np.ndarray, wts, ky: np.ndarray, kx: np.ndarray, h: int, w: int, wp: int, pad: int) -> None:
    """Add each row's 2D kernel ``ky ⊗ kx`` (times its weight) at its pixel (``flat``: in the image of ``wp`` columns,
    ``pad`` on each side) to ``sink``; the entries that fall outside the image are dropped (a filter with zeros
    outside: the same image as spreading along x and filtering along y)."""
    ry, rx = len(ky) // 2, len(kx) // 2
    k2 = np.multiply.outer(ky, kx).ravel()
    dy = np.repeat(np.arange(-ry, ry + 1), len(kx))
    dx = np.tile(np.arange(-rx, rx + 1), len(ky))
    off = dy * w + dx
    i, j = np.divmod(flat, wp)
    j -= pad
    inner = (i >= ry) & (i < h - ry) & (j >= rx) & (j < w - rx)  # their kernels stay inside the image
    step = max(1, _SPLAT_CHUNK // (len(k2) * sink.n_channels))
    for sel, whole in ((inner, True), (~inner, False)):
        ii, jj = i[sel], j[sel]
        ww = None if wts is None else wts[sel]
        for c in range(0, len(ii), step):
            si, sj = ii[c : c + step], jj[c : c + step]
            vals = np.tile(k2, len(si)) if ww is None else np.multiply.outer(ww[c : c + step], k2).ravel()
            if whole:
                sink.splat(np.add.outer(si * w + sj, off).ravel(), vals)
            else:
                r, q = np.add.outer(si, dy), np.add.outer(sj, dx)
                ok = (r >= 0) & (r < h) & (q >= 0) & (q < w)
                r *= w
                r += q
                sink.splat(r[ok], vals.reshape(ok.shape)[ok])


def _draw_gaussians(sink, table: LocTable, px: float, extent, h: int, w: int, cols_x, cols_y, names, wts_in,
                    min_sigma_nm: float, sigma_step: float) -> int:
    """Draw the rows of ``table`` (each a Gaussian of its σx, σy from ``cols_x``, ``cols_y``) into ``sink``; the number
    of rows outside the image."""
    from scipy.ndimage import correlate1d

    n = len(table)
    # pass 1: the floor, the finite check and the range of σ per axis
    floor, cap = float(min_sigma_nm), MAX_SIGMA_PX * px
    ranges = []
    for col, name in ((cols_x, names[0]), (cols_y, names[1])):
        lo, hi = np.inf, -np.inf
        for c in range(0, n, _CHUNK):
            s = np.maximum(col[c : c + _CHUNK], floor)
            if not (np.isfinite(s).all() and s.min() >= 0):
                s = np.maximum(col, floor)
                bad = ~np.isfinite(s) | (s < 0)
                k = int(np.flatnonzero(bad)[0])
                raise InputError(f"{int(bad.sum())} localization(s) have no finite uncertainty in {name} "
                                 f"(first row {k}: {float(col[k])!r}); render them with one width for all (plexloc "
                                 "render --sigma NM) or as a histogram (--method histogram)", source=table.source)
            lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
        ranges.append((min(lo, cap), min(hi, cap)))
    if n == 0:
        return 0
    lev_x, lev_y = (_levels(lo, hi, sigma_step, px) for lo, hi in ranges)
    nx = len(lev_x)
    kernels: dict[tuple[int, int], np.ndarray] = {}  # (axis, level) -> kernel, for the levels that occur

    def kernel(axis: int, level: int) -> np.ndarray:
        if (axis, level) not in kernels:
            kernels[axis, level] = _kernel((lev_x, lev_y)[axis][level] / px)
        return kernels[axis, level]

    # pass 2: each row inside the image -> its pixel in an image with a margin of `pad` columns on each side (the x
    # kernels spread into it; it is cut off at the end, as a filter with zeros outside) and its (y, x) level pair
    pad = len(_kernel(lev_x[-1] / px)) // 2
    wp = w + 2 * pad
    x0, _, y0, _ = extent
    xs, ys = table["x_nm"], table["y_nm"]
    flat = np.empty(n, np.int64)
    key = np.empty(n, np.int16 if nx * len(lev_y) < 2**15 else np.int64)  # int16 sorts by radix
    wts = None if wts_in is None else np.empty(n)
    m = 0
    for c in range(0, n, _CHUNK):
        sl = slice(c, c + _CHUNK)
        j = np.floor((xs[sl] - x0) / px)
        i = np.floor((ys[sl] - y0) / px)
        inside = (j >= 0) & (j < w) & (i >= 0) & (i < h)
        k = int(np.count_nonzero(inside))
        i *= wp
        i += j
        flat[m : m + k] = i[inside]
        lv = [_level_of(np.minimum(np.maximum(col[sl][inside], floor), cap), lev)
              for col, lev in ((cols_y, lev_y), (cols_x, lev_x))]
        lv[0] *= nx
        lv[0] += lv[1]
        key[m : m + k] = lv[0]
        if wts is not None:
            wts[m : m + k] = wts_in[sl][inside]
        m += k
    n_out = n - m
    if m == 0:
        return n_out
    flat += pad
    order = np.argsort(key[:m], kind="stable")  # grouped by y level, then x level
    key = key[:m][order]
    flat = flat[:m][order]
    if wts is not None:
        wts = wts[:m][order]
    del order
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], m]
    pairs = [divmod(int(v), nx) for v in key[starts]]  # (y level, x level) of each group, in order
    del key

    # each σy level's rows: drawn each as its 2D kernel where that is cheaper (few rows), else spread along x (row by
    # row, or for a crowded group as a histogram filtered along x) and filtered along y once
    n_px = h * w
    sink.prepare(sum(int(ends[q] - starts[q]) * len(kernel(0, a)) * len(kernel(1, b)) for q, (b, a) in enumerate(pairs)),
                 n_px)
    runs = []  # per σy level: its groups [g, g1), which of them are spread row by row, and whether it is drawn directly
    g = 0
    while g < len(pairs):
        g1 = g
        while g1 < len(pairs) and pairs[g1][0] == pairs[g][0]:
            g1 += 1
        ky = kernel(1, pairs[g][0])
        sizes = [int(ends[q] - starts[q]) for q in range(g, g1)]
        taps = [len(kernel(0, pairs[q][1])) for q in range(g, g1)]
        spread = [_spread_is_cheaper(s, t, n_px) for s, t in zip(sizes, taps)]
        x_cost = _NS_SPREAD * sum(s * t if sp else n_px * (0.8 + t / 20) for s, t, sp in zip(sizes, taps, spread))
        entries = sink.n_channels * len(ky) * sum(s * t for s, t in zip(sizes, taps))
        runs.append([g, g1, spread, _direct_saving(entries, n_px, len(ky), x_cost)])
        g = g1
    # filtering needs planes of its own: worth them only if the levels filtered save more than they cost
    filtered = sum(-r[3] for r in runs if r[3] < 0)
    all_direct = filtered < sink.setup_ns * n_px
    acc = acc_in = buf = hist = tmp = tmp_w = None  # allocated when a σy level is first filtered
    for g, g1, spread, saving in runs:
        ky = kernel(1, pairs[g][0])
        if all_direct or saving >= 0:
            for q in range(g, g1):
                s, e = int(starts[q]), int(ends[q])
                _splat(sink, flat[s:e], None if wts is None else wts[s:e], ky, kernel(0, pairs[q][1]), h, w, wp, pad)
            continue
        if acc is None:
            acc = np.zeros(h * wp)  # one y level's rows, spread along x
            acc_in = acc.reshape(h, wp)[:, pad : pad + w]
            buf = np.empty((h, w))
            longest = int((ends - starts).max())
            tmp = np.empty(longest, np.int64)
            tmp_w = None if wts is None else np.empty(longest)
        else:
            acc.fill(0.0)
        for q in range(g, g1):
            s, e = int(starts[q]), int(ends[q])
            rows, k = flat[s:e], kernel(0, pairs[q][1])
            rw = None if wts is None else wts[s:e]
            if spread[q - g]:
                t_i = tmp[: e - s]
                t_w = None if tmp_w is None else tmp_w[: e - s]
                for t, kv in enumerate(k):
                    np.add(rows, t - len(k) // 2, out=t_i)
                    np.add.at(acc, t_i, kv if rw is None else np.multiply(rw, kv, out=t_w))
            else:
                if hist is None:
                    hist = np.zeros(h * wp)
                else:
                    hist.fill(0.0)
                np.add.at(hist, rows, 1.0 if rw is None else rw)
                correlate1d(hist.reshape(h, wp)[:, pad : pad + w], k, axis=1, output=buf, mode="constant")
                acc_in += buf
        if len(ky) == 1:  # filter along y
            sink.add(acc_in)
        else:
            correlate1d(acc_in, ky, axis=0, output=buf, mode="constant")
            sink.add(buf)
    return n_out


def _gaussian_extent(table: LocTable, px: float, cols_x, cols_y, min_sigma_nm: float):
    """A Gaussian image's default extent: the localizations' bounding box grown by 3 σ (the 99th percentile's, at
    most MAX_SIGMA_PX pixels; on the box itself the outermost localizations lost up to three quarters of their
    Gaussian), in whole pixels from its lower corner; None where there is nothing to grow (an empty table, a bad
    pixel size: :func:`_geometry` says so)."""
    if not (len(table) and np.isfinite(px) and px > 0):
        return None
    table.check_finite(("x_nm", "y_nm"))
    both = np.maximum(np.concatenate([np.asarray(cols_x, float), np.asarray(cols_y, float)]), min_sigma_nm)
    both = both[np.isfinite(both)]  # (a non-finite sigma is named by the check of the σ)
    m = 3.0 * min(float(np.percentile(both, 99)), MAX_SIGMA_PX * px) if both.size else 0.0
    return (np.floor((table["x_nm"].min() - m) / px) * px, table["x_nm"].max() + m + px,
            np.floor((table["y_nm"].min() - m) / px) * px, table["y_nm"].max() + m + px)


def _gaussian_setup(table: LocTable, px: float, extent_nm, sigma_nm, min_sigma_nm, sigma_step, weights, max_pixels):
    """Check the options of a Gaussian image of ``table``; its extent, shape, σ columns and weights."""
    if not (np.isfinite(sigma_step) and sigma_step > 0):
        raise InputError(f"sigma_step must be > 0, got {sigma_step!r}")
    cols_x, cols_y, names = _sigma_columns(table, sigma_nm)
    if extent_nm is None:
        extent_nm = _gaussian_extent(table, px, cols_x, cols_y, min_sigma_nm)
    extent, h, w = _geometry(table, px, extent_nm, max_pixels)
    _check_memory(h, w, px, BYTES_PER_PIXEL["gaussian"], "Gaussian", table.source)
    wts_in = None
    if weights is not None:
        wts_in = np.asarray(weights, dtype=float).ravel()
        if wts_in.size != len(table):
            raise InputError(f"weights has {wts_in.size} values for a table of {len(table)} rows", source=table.source)
    return extent, h, w, cols_x, cols_y, names, wts_in


def render_gaussian(
    table: LocTable,
    *,
    px_size_nm: float,
    extent_nm=None,
    sigma_nm: float | None = None,
    min_sigma_nm: float = 0.0,
    sigma_step: float = 0.1,
    weights=None,
    max_pixels: int = 2**28,
) -> Rendered:
    """Each localization a normalised Gaussian of its own σx and σy (see the module docstring); the default extent is
    the bounding box grown by 3σ (the 99th percentile of σ).

    Args:
        table: a :class:`LocTable` (or a dict or pandas DataFrame of its columns) with ``x_nm``, ``y_nm`` and, unless
            ``sigma_nm`` is given, ``sigma_x_nm``/``sigma_y_nm`` (or ``crlb_*``).
        px_size_nm: the image pixel, nm.
        extent_nm: ``(x0, x1, y0, y1)`` nm to draw.
        sigma_nm: one σ for all localizations, along x and y, instead of the table's uncertainties.
        min_sigma_nm: floor of σx and of σy, each on its own (e.g. ``px_size_nm / 2`` so that every spot
            covers a pixel).
        sigma_step: relative step between σ levels, per axis (geometric from the smallest σ to the largest, each σ
            within half a step of its own; σ above :data:`MAX_SIGMA_PX` pixels is drawn at that width, already spread
            so thin that it barely shows, instead of as a sharp bright dot).
        weights: per row, what each localization integrates to (default 1).

    Raises:
        InputError: no σ columns (and no ``sigma_nm``); a σ that is NaN, infinite or negative after the floor
            (the column, the count and the first row are named); ``sigma_step`` not > 0; ``weights`` of another
            length than the table.
    """
    table = as_table(table)
    px = float(px_size_nm)
    extent, h, w, cols_x, cols_y, names, wts_in = _gaussian_setup(table, px, extent_nm, sigma_nm, min_sigma_nm,
                                                                  sigma_step, weights, max_pixels)
    img = np.zeros((h, w))
    n_out = _draw_gaussians(_GreySink(img), table, px, extent, h, w, cols_x, cols_y, names, wts_in, min_sigma_nm,
                            sigma_step)
    return Rendered(img, px, extent, n_out, value_unit=_value_unit(weights))


#: the RGB of colour channel k (``color`` column) is ``COLOR_PALETTE[k % 6]``; rejected rows (-1) are grey. Two
#: colours are magenta and green, which red-green colour-blind readers tell apart (and which overlap as white)
COLOR_PALETTE = np.array([[1.0, 0.2, 1.0], [0.2, 1.0, 0.2], [0.3, 0.5, 1.0], [1.0, 0.9, 0.1], [1.0, 0.2, 0.2],
                          [0.1, 1.0, 1.0]])


def _gaussian_colors(table: LocTable, groups, rgb: np.ndarray, px: float, extent, *, sigma_nm=None,
                     min_sigma_nm: float = 0.0, sigma_step: float = 0.1, weights=None, max_pixels: int = 2**28) -> int:
    """Each colour's rows (``groups``: (row mask, RGB)) drawn as :func:`render_gaussian` draws them (their own σ
    levels), each Gaussian added to ``rgb`` times its colour: no image per colour (a z level's image was blurred
    along y once per σy level over the whole image, for its share of the rows); the rows outside."""
    n_out = 0
    for mask, col in groups:
        if not mask.any():
            continue
        sub = table[mask]
        wsub = None if weights is None else np.asarray(weights)[mask]  # per row of the table: this colour's rows
        ext, h, w, cols_x, cols_y, names, wts_in = _gaussian_setup(sub, px, extent, sigma_nm, min_sigma_nm, sigma_step,
                                                                   wsub, max_pixels)
        sink = _ColorSink(rgb, col)
        n_out += _draw_gaussians(sink, sub, px, ext, h, w, cols_x, cols_y, names, wts_in, min_sigma_nm, sigma_step)
        sink.finish()
    return n_out


def _histogram_colors(table: LocTable, groups, rgb: np.ndarray, px: float, extent, h: int, w: int, weights) -> int:
    """Each colour's rows (``groups``: (row mask, RGB)) counted per pixel (summed ``weights``) and added to ``rgb``
    times the colour, at the pixels they fall in only (an image per colour was counted, copied and tinted, plane by
    plane); the rows outside. The same numbers, in the same order, as :func:`render_histogram` of each colour."""
    x0, _, y0, _ = extent
    j = np.floor((table["x_nm"] - x0) / px)
    i = np.floor((table["y_nm"] - y0) / px)
    inside = (j >= 0) & (j < w) & (i >= 0) & (i < h)
    flat = np.zeros(len(table), np.int64)
    flat[inside] = i[inside].astype(np.int64) * w + j[inside].astype(np.int64)
    del i, j
    planes = rgb.reshape(-1, 3)
    n_out = 0
    for mask, col in groups:
        if not mask.any():
            continue
        ins = inside[mask]
        n_out += int(np.count_nonzero(~ins))
        wts = None if weights is None else np.asarray(weights)[mask][ins]
        pix, where = np.unique(flat[mask][ins], return_inverse=True)
        total = np.bincount(where, weights=wts, minlength=len(pix)).astype(np.float64)
        for c in range(3):
            if col[c]:
                planes[pix, c] += col[c] * total
    return n_out


def render_color(
    table: LocTable,
    *,
    color_by: str,
    px_size_nm: float,
    extent_nm=None,
    method: str = "histogram",
    cmap: str = "turbo",
    n_levels: int = 16,
    z_range_nm: tuple[float, float] | None = None,
    **gaussian_options,
) -> Rendered:
    """RGB image coloured by ``z`` (colormap over z levels; ``z_range_nm`` default the table's 1st-99th
    percentile) or by ``color`` (one hue per channel); ``px_size_nm`` and ``extent_nm`` as :func:`render`.

    The image is the sum over colours of each colour's image (:func:`render` of its rows, with ``method`` and the
    options) times its RGB; it is drawn in one RGB image, without an image per colour."""
    import matplotlib

    table = as_table(table)
    if extent_nm is None and method == "gaussian":  # grown by the σ, as the grey Gaussian image's (the same frame)
        cols_x, cols_y, _ = _sigma_columns(table, gaussian_options.get("sigma_nm"))
        extent_nm = _gaussian_extent(table, float(px_size_nm), cols_x, cols_y, gaussian_options.get("min_sigma_nm", 0.0))
    extent, h, w = _geometry(table, float(px_size_nm), extent_nm, gaussian_options.get("max_pixels", 2**28))
    _check_memory(h, w, float(px_size_nm), 32 + BYTES_PER_PIXEL.get(method, 32), f"RGB, {method}, coloured by {color_by}",
                  table.source)
    if color_by == "z":
        z = table["z_nm"]
        finite = np.isfinite(z)
        if z_range_nm is not None:
            z0, z1 = z_range_nm
        elif finite.any():  # the range of the rows that have a z (one NaN made every row one colour)
            z0, z1 = float(np.quantile(z[finite], 0.01)), float(np.quantile(z[finite], 0.99))
        else:
            z0, z1 = 0.0, 1.0
        if z1 <= z0:
            z1 = z0 + 1.0
        level = np.clip(np.nan_to_num((z - z0) / (z1 - z0) * n_levels).astype(np.int64), 0, n_levels - 1)
        colors = matplotlib.colormaps[cmap](np.linspace(0, 1, n_levels))[:, :3]
        legend = f"z from {z0:.0f} nm ({cmap} start) to {z1:.0f} nm ({cmap} end)"
        key: dict = {"z_range_nm": (float(z0), float(z1)), "cmap": cmap, "n_levels": int(n_levels)}
        groups = [((level == k) & finite, colors[k]) for k in range(n_levels)]
        if not finite.all():  # rows without a z: grey, as rejected colours
            groups.append((~finite, np.array([0.5, 0.5, 0.5])))
            legend += f"; {int((~finite).sum())} without a finite z in grey"
    elif color_by == "color":
        if "color" not in table:
            raise InputError("colour by channel needs a 'color' column", source=table.source)
        c = table["color"]
        palette = COLOR_PALETTE
        groups = [(c == k, palette[k % len(palette)]) for k in np.unique(c[c >= 0])]
        if np.any(c < 0):
            groups.append((c < 0, np.array([0.5, 0.5, 0.5])))
        legend = ", ".join(f"colour {k}: RGB {[round(float(v), 2) for v in palette[k % len(palette)]]}"
                           for k in np.unique(c[c >= 0]))
        if np.any(c < 0):  # drawn grey, as the key shows; the printed line named the colours only
            legend += f"{'; ' if legend else ''}{int(np.count_nonzero(c < 0))} rejected (color -1) in grey"
        key = {"colors": tuple((int(k), tuple(float(v) for v in palette[k % len(palette)])) for k in np.unique(c[c >= 0]))
               + (((-1, (0.5, 0.5, 0.5)),) if np.any(c < 0) else ())}
    else:
        raise InputError(f"color_by must be 'z' or 'color', got {color_by!r}")
    rgb = np.zeros((h, w, 3))
    if method == "histogram":
        n_out = _histogram_colors(table, groups, rgb, float(px_size_nm), extent, h, w, gaussian_options.get("weights"))
    elif method == "gaussian":
        n_out = _gaussian_colors(table, groups, rgb, float(px_size_nm), extent, **gaussian_options)
    else:
        raise InputError(f"render method must be 'histogram' or 'gaussian', got {method!r}")
    return Rendered(rgb, float(px_size_nm), extent, n_out, legend,
                    value_unit=_value_unit(gaussian_options.get("weights")), **key)


def render(table: LocTable, *, method: str = "histogram", px_size_nm: float, extent_nm=None, **options) -> Rendered:
    """A super-resolved image of ``table`` (a :class:`LocTable`, or a dict or DataFrame of its columns) with pixels of
    ``px_size_nm`` nm over ``extent_nm`` ``(x0, x1, y0, y1)`` nm (default: the localizations' extent):
    ``method="histogram"`` (:func:`render_histogram`: localizations per pixel; options ``weights``, ``max_pixels``)
    or ``"gaussian"`` (:func:`render_gaussian`: each a Gaussian of its σ; its options). Colour by z or by colour
    channel: :func:`render_color`. Write it with :func:`save_image` ``(rendered, path)``."""
    table = as_table(table)
    if method == "histogram":
        return render_histogram(table, px_size_nm=px_size_nm, extent_nm=extent_nm,
                                **{k: v for k, v in options.items() if k in ("weights", "max_pixels")})
    if method == "gaussian":
        return render_gaussian(table, px_size_nm=px_size_nm, extent_nm=extent_nm, **options)
    raise InputError(f"render method must be 'histogram' or 'gaussian', got {method!r}")


def rows_without_sigma(table: LocTable) -> np.ndarray:
    """Per row of ``table``, whether it has no finite, non-negative σx and σy in the columns a Gaussian image draws
    (:func:`sigma_xy_columns`: ``sigma_x_nm, sigma_y_nm``, else an MLE table's ``crlb_x_nm, crlb_y_nm``); every row
    where the table has none of them."""
    table = as_table(table)
    names = sigma_xy_columns(table)
    if names is None:
        return np.ones(len(table), dtype=bool)
    sx, sy = np.asarray(table[names[0]], dtype=float), np.asarray(table[names[1]], dtype=float)
    return ~(np.isfinite(sx) & np.isfinite(sy) & (sx >= 0) & (sy >= 0))


def default_method(table: LocTable) -> str:
    """The render method where none is chosen (``plexloc render``, ``plexloc report``, ``plexloc process``):
    ``"gaussian"``, each localization a Gaussian of its own σ, where the table has σ columns
    (:func:`sigma_xy_columns`: a network's predicted σ, or an MLE fit's CRLB), finite and non-negative in every row;
    else ``"histogram"``, which takes every row (:func:`rows_without_sigma` names those that a Gaussian image could
    not draw).

    Example:
        >>> default_method({"frame": [0], "x_nm": [5.0], "y_nm": [5.0], "z_nm": [0.0], "photons": [1.0],
        ...                 "sigma_x_nm": [8.0], "sigma_y_nm": [float("nan")]})
        'histogram'
        >>> default_method({"frame": [0], "x_nm": [5.0], "y_nm": [5.0], "z_nm": [0.0], "photons": [1.0],
        ...                 "crlb_x_nm": [6.0], "crlb_y_nm": [7.0]})
        'gaussian'
    """
    table = as_table(table)
    return "histogram" if sigma_xy_columns(table) is None or rows_without_sigma(table).any() else "gaussian"


def nice_scale_bar_nm(width_nm: float) -> float:
    """The largest 1, 2 or 5 × 10^k nm that is at most a fifth of ``width_nm``."""
    target = width_nm / 5.0
    if target <= 0:
        return 0.0
    k = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return float(m * 10**k)
    return float(10**k)  # pragma: no cover


#: the fewest pixels a scale bar is drawn with, and the most its drawn length may differ from the length it is given
_MIN_BAR_PX = 2
_BAR_TOLERANCE = 0.05


def _scale_bar(width_nm: float, px: float) -> tuple[float, int]:
    """The scale bar's length (nm) and pixels: the largest 1-2-5 × 10^k nm of at most a fifth of the width whose
    whole pixels draw it to within 5 % and are at least 2; (0, 0) where none is (an image of a few pixels). The bar
    of :func:`nice_scale_bar_nm` was rounded to pixels as it came: on a 1-pixel image its 2 nm were 0 pixels, yet
    printed and keyed as a 2 nm bar; on 10 pixels of 30 nm its 50 nm were 2 pixels, 60 nm."""
    bar = nice_scale_bar_nm(width_nm)
    while bar > 0 and bar >= _MIN_BAR_PX * px * (1 - _BAR_TOLERANCE):
        n = int(round(bar / px))
        if n >= _MIN_BAR_PX and abs(n * px - bar) <= _BAR_TOLERANCE * bar:
            return bar, n
        bar = nice_scale_bar_nm(bar * 5 * 0.999)  # the next smaller 1-2-5 value
    return 0.0, 0


def _display_top(image: np.ndarray, saturate: float) -> float:
    """The ``saturate`` quantile of the non-zero pixels (1 for an empty image)."""
    vals = image[image > 0]
    hi = float(np.quantile(vals, saturate)) if vals.size else 1.0
    return hi if hi > 0 else 1.0


def _levels_of(image: np.ndarray, scale: float, top: float, dtype) -> np.ndarray:
    """``clip(rint(image * scale), 0, top)`` as ``dtype``, a block of rows at a time (no full-size float temporaries)."""
    out = np.empty(image.shape, dtype)
    step = max(1, (1 << 22) // max(1, int(np.prod(image.shape[1:]))))
    for r in range(0, image.shape[0], step):
        block = image[r : r + step] * scale
        np.rint(block, out=block)
        np.clip(block, 0.0, top, out=block)
        out[r : r + step] = block
    return out


def _scaled(image: np.ndarray, saturate: float, top: float) -> np.ndarray:
    return _levels_of(image, top / _display_top(image, saturate), top, np.float64)


def _draw_scale_bar(img: np.ndarray, bar_px: int, value: float) -> None:
    h, w = img.shape[:2]
    thick = max(1, h // 100)
    margin = max(2, w // 40)
    r1 = h - margin
    r0 = max(0, r1 - thick)
    c1 = w - margin
    c0 = max(0, c1 - bar_px)
    img[r0:r1, c0:c1, ...] = value


def save_image(
    rendered: Rendered,
    path: str | os.PathLike,
    *,
    saturate: float = 0.995,
    scale_bar: bool | None = None,
) -> dict:
    """Write ``.tif``/``.tiff`` (16-bit) or ``.png`` (8-bit), atomically; returns what was written.

    ``scale_bar``: None (default) draws it into PNGs only (a TIFF's pixels are data), True into both, False into none.

    Returns:
        dict with ``path, shape, px_size_nm, scale_bar_nm`` (0 when none was drawn).
    """
    if not isinstance(rendered, Rendered):
        swapped = isinstance(path, Rendered)
        raise TypeError("save_image takes (rendered, path)" + (": the arguments are swapped" if swapped else
                        f", got {type(rendered).__name__} for rendered (make one with render(table, px_size_nm=...))"))
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise InputError(f"image suffix must be .png, .tif or .tiff, got '{path.suffix}'", source=path)
    img = rendered.image
    width_nm = img.shape[1] * rendered.px_size_nm
    draw = scale_bar if scale_bar is not None else suffix == ".png"
    bar_nm, bar_px = _scale_bar(width_nm, rendered.px_size_nm) if draw else (0.0, 0)
    info = {}
    # where the image lies in the table's coordinates (a TIFF read in Fiji showed x and y from 0 at the image's corner,
    # not the localizations' own x_nm, y_nm: a region chosen there was not the --extent to give)
    x0, _, y0, _ = (float(v) for v in rendered.extent_nm)
    corner = f"corner of pixel (0, 0) at x {x0:g} nm, y {y0:g} nm"
    if suffix == ".png":
        import matplotlib.image

        out = _levels_of(img, 255.0 / _display_top(img, saturate), 255.0, np.uint8)
        if bar_px:
            _draw_scale_bar(out, bar_px, 255)
        desc = f"pixel {rendered.px_size_nm} nm; {corner}; scale bar {bar_nm:g} nm"
        with atomic_path(path) as tmp:
            if out.ndim == 2:
                matplotlib.image.imsave(tmp, out, cmap="gray", vmin=0, vmax=255, format="png",
                                        metadata={"Description": desc})
            else:
                matplotlib.image.imsave(tmp, out, format="png",
                                        metadata={"Description": desc})
    else:
        import tifffile

        # linear, the brightest pixel at 65535 and nothing clipped (the saturate quantile clipped 0.5 % of the pixels
        # and every count above it: a histogram's 1 and 2 localizations were both 65535); the saturate quantile is the
        # display range that ImageJ opens with, and the calibration (cf, c0, c1, vunit) gives each grey level's value
        peak = float(img.max()) if img.size else 0.0
        scale = 65535.0 / peak if peak > 0 else 1.0
        out = _levels_of(img, scale, 65535.0, np.uint16)
        if bar_px:
            _draw_scale_bar(out, bar_px, 65535)
        per_level = 1.0 / scale
        info = {"tiff_value_per_level": per_level, "value_unit": rendered.value_unit}
        um = rendered.px_size_nm / 1000.0
        with atomic_path(path) as tmp:
            if out.ndim == 2:
                display_max = min(65535.0, max(1.0, round(_display_top(img, saturate) * scale)))
                tifffile.imwrite(tmp, out, imagej=True, resolution=(1.0 / um, 1.0 / um),
                                 metadata={"unit": "um", "min": 0.0, "max": display_max, "cf": 0, "c0": 0.0,
                                           "c1": per_level, "vunit": rendered.value_unit,
                                           # ImageJ's origin in pixels: Fiji's x, y are then the table's (in µm)
                                           "xorigin": -x0 / rendered.px_size_nm, "yorigin": -y0 / rendered.px_size_nm})
            else:  # ImageJ hyperstacks hold no 16-bit RGB: a plain RGB TIFF with the resolution in cm
                tifffile.imwrite(tmp, out, photometric="rgb", resolution=(1e4 / um, 1e4 / um),
                                 resolutionunit="CENTIMETER",
                                 description=f"pixel {rendered.px_size_nm} nm; {corner}; grey level 1 = "
                                 f"{per_level:.6g} {rendered.value_unit} (65535 = the brightest pixel)")
    return {"path": str(path), "shape": list(img.shape), "px_size_nm": rendered.px_size_nm, "scale_bar_nm": bar_nm,
            **info}
