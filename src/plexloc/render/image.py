"""Super-resolution images from localization tables: histogram and Gaussian rendering, colour, files.

Geometry. An image of pixel size ``px_size_nm`` covers ``extent_nm = (x0, x1, y0, y1)`` (default: the
localizations' bounding box); pixel (row i, column j) covers ``x0 + [j, j+1) * px``,
``y0 + [i, i+1) * px``. Localizations outside are not drawn (their count is returned in the
:class:`Rendered` result).

``histogram``
    Localizations per pixel (``np.bincount``).
``gaussian``
    Each localization a normalised 2D Gaussian with its own σ (``sigma_x_nm``/``sigma_y_nm``,
    or ``sigma_nm`` for all). Fast for 10^7 rows: σ is quantised to geometric levels ``sigma_step``
    (10 %) apart, the localizations of a level are histogrammed and that histogram is blurred once
    with a separable Gaussian (``scipy.ndimage.gaussian_filter``); the levels add up. Each σ moves by
    at most half a step (<= 5 %); σ wider than ``MAX_SIGMA_PX`` (32) image pixels is drawn at that width.

Colour: ``color_by="z"`` splits z into levels, each rendered and tinted with a colormap entry
(default ``turbo``) and summed (RGB); ``color_by="color"`` tints each colour channel (``color``
column; -1 rejected rows are grey).

Files: ``.tif``/``.tiff`` are written as 16-bit (grey, or RGB for colour), scaled so that the
``saturate`` quantile of non-zero pixels maps to 65535, with the pixel size as resolution (grey:
ImageJ TIFF in µm; RGB: plain TIFF, resolution per cm); ``.png`` 8-bit with the same scaling. A scale bar (white,
bottom right, the largest of 1-2-5 × 10^k nm that is at most a fifth of the width) is drawn into
PNGs and, when ``scale_bar=True``, into TIFFs.

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
from plexloc.table import LocTable

__all__ = [
    "Rendered",
    "nice_scale_bar_nm",
    "render",
    "render_color",
    "render_gaussian",
    "render_histogram",
    "save_image",
]


@dataclass
class Rendered:
    """An image (H, W) or RGB (H, W, 3), float, and its geometry."""

    image: np.ndarray
    px_size_nm: float
    extent_nm: tuple[float, float, float, float]
    n_outside: int = 0
    legend: str = ""


def _geometry(table: LocTable, px: float, extent_nm, max_pixels: int) -> tuple[tuple[float, float, float, float], int, int]:
    if not (np.isfinite(px) and px > 0):
        raise InputError(f"pixel size must be a positive number of nm, got {px!r}")
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
            f"(>= {px * np.sqrt(h * w / max_pixels):.1f} nm) or a smaller extent"
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
    """Localizations per pixel (see the module docstring)."""
    extent, h, w = _geometry(table, float(px_size_nm), extent_nm, max_pixels)
    img, out = _bin(table["x_nm"], table["y_nm"], weights, extent, h, w, float(px_size_nm))
    return Rendered(img, float(px_size_nm), extent, out)


#: the widest Gaussian a localization is drawn with, in image pixels (the filter's cost grows with the width)
MAX_SIGMA_PX = 32.0


def _sigma_of(table: LocTable, sigma_nm: float | None) -> np.ndarray:
    if sigma_nm is not None:
        return np.full(len(table), float(sigma_nm))
    if "sigma_x_nm" in table and "sigma_y_nm" in table:
        return np.sqrt(0.5 * (table["sigma_x_nm"] ** 2 + table["sigma_y_nm"] ** 2))
    for c in ("crlb_x_nm",):
        if c in table:
            return table[c]
    raise InputError("Gaussian rendering needs sigma_x_nm/sigma_y_nm (or crlb_x_nm) columns, or a fixed sigma_nm",
                     source=table.source)


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
    """Each localization a normalised Gaussian of its own σ (see the module docstring).

    Args:
        sigma_nm: one σ for all localizations instead of the table's uncertainties.
        min_sigma_nm: floor of σ (e.g. ``px_size_nm / 2`` so that every spot covers a pixel).
        sigma_step: relative step between σ levels (geometric from the smallest σ to the largest, each σ within
            half a step of its own; σ above :data:`MAX_SIGMA_PX` pixels is drawn at that width, already spread so
            thin that it barely shows, instead of as a sharp bright dot).
    """
    from scipy.ndimage import gaussian_filter

    px = float(px_size_nm)
    extent, h, w = _geometry(table, px, extent_nm, max_pixels)
    sigma = np.maximum(_sigma_of(table, sigma_nm), min_sigma_nm)
    bad = ~np.isfinite(sigma) | (sigma < 0)
    if bad.any():
        raise InputError(f"{int(bad.sum())} localization(s) have no finite uncertainty (first row {np.flatnonzero(bad)[0]})",
                         source=table.source)
    img = np.zeros((h, w))
    n_out = 0
    if len(table) == 0:
        return Rendered(img, px, extent, 0)
    sigma = np.minimum(sigma, MAX_SIGMA_PX * px)
    lo, hi = float(sigma.min()), float(sigma.max())
    lo = max(lo, 1e-3 * px)
    if not sigma_step > 0:
        raise InputError(f"sigma_step must be > 0, got {sigma_step!r}")
    n_levels = max(1, int(np.ceil(np.log(max(hi, lo) / lo) / np.log1p(sigma_step))) + 1)
    levels = np.geomspace(lo, max(hi, lo), n_levels)
    edges = np.sqrt(levels[1:] * levels[:-1])
    which = np.searchsorted(edges, sigma)
    x, y = table["x_nm"], table["y_nm"]
    wts = None if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(levels) + 1))
    for k in range(len(levels)):
        rows = order[bounds[k] : bounds[k + 1]]
        if rows.size == 0:
            continue
        part, out = _bin(x[rows], y[rows], None if wts is None else wts[rows], extent, h, w, px)
        n_out += out
        s = levels[k] / px
        img += gaussian_filter(part, s, mode="constant", truncate=4.0) if s > 0.05 else part
    return Rendered(img, px, extent, n_out)


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
    """RGB image coloured by ``z`` (colormap over z levels) or by ``color`` (one hue per channel)."""
    import matplotlib

    extent, _, _ = _geometry(table, float(px_size_nm), extent_nm, gaussian_options.get("max_pixels", 2**28))
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
        groups = [((level == k) & finite, colors[k]) for k in range(n_levels)]
        if not finite.all():  # rows without a z: grey, as rejected colours
            groups.append((~finite, np.array([0.5, 0.5, 0.5])))
            legend += f"; {int((~finite).sum())} without a finite z in grey"
    elif color_by == "color":
        if "color" not in table:
            raise InputError("colour by channel needs a 'color' column", source=table.source)
        c = table["color"]
        palette = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.3, 0.5, 1.0], [1.0, 0.9, 0.1], [1.0, 0.2, 1.0],
                            [0.1, 1.0, 1.0]])
        groups = [(c == k, palette[k % len(palette)]) for k in np.unique(c[c >= 0])]
        if np.any(c < 0):
            groups.append((c < 0, np.array([0.5, 0.5, 0.5])))
        legend = ", ".join(f"colour {k}: RGB {[round(float(v), 2) for v in palette[k % len(palette)]]}"
                           for k in np.unique(c[c >= 0]))
    else:
        raise InputError(f"color_by must be 'z' or 'color', got {color_by!r}")
    rgb = None
    n_out = 0
    for mask, col in groups:
        if not mask.any():
            continue
        opts = dict(gaussian_options)
        if opts.get("weights") is not None:  # per row of the table: the rows of this colour's
            opts["weights"] = np.asarray(opts["weights"])[mask]
        r = render(table[mask], method=method, px_size_nm=px_size_nm, extent_nm=extent, **opts)
        n_out += r.n_outside
        rgb = r.image[..., None] * col[None, None, :] if rgb is None else rgb + r.image[..., None] * col[None, None, :]
    if rgb is None:
        _, h, w = _geometry(table, float(px_size_nm), extent, 2**31)
        rgb = np.zeros((h, w, 3))
    return Rendered(rgb, float(px_size_nm), extent, n_out, legend)


def render(table: LocTable, *, method: str = "histogram", px_size_nm: float, extent_nm=None, **options) -> Rendered:
    """``render_histogram`` or ``render_gaussian`` by name."""
    if method == "histogram":
        return render_histogram(table, px_size_nm=px_size_nm, extent_nm=extent_nm,
                                **{k: v for k, v in options.items() if k in ("weights", "max_pixels")})
    if method == "gaussian":
        return render_gaussian(table, px_size_nm=px_size_nm, extent_nm=extent_nm, **options)
    raise InputError(f"render method must be 'histogram' or 'gaussian', got {method!r}")


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


def _scaled(image: np.ndarray, saturate: float, top: float) -> np.ndarray:
    vals = image[image > 0]
    hi = np.quantile(vals, saturate) if vals.size else 1.0
    hi = hi if hi > 0 else 1.0
    return np.clip(image / hi, 0.0, 1.0) * top


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
    scale_bar: bool = True,
) -> dict:
    """Write ``.tif``/``.tiff`` (16-bit) or ``.png`` (8-bit), atomically; returns what was written.

    Returns:
        dict with ``path, shape, px_size_nm, scale_bar_nm`` (0 when none was drawn).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise InputError(f"image suffix must be .png, .tif or .tiff, got '{path.suffix}'", source=path)
    img = rendered.image
    width_nm = img.shape[1] * rendered.px_size_nm
    bar_nm = nice_scale_bar_nm(width_nm) if scale_bar else 0.0
    bar_px = int(round(bar_nm / rendered.px_size_nm))
    if suffix == ".png":
        import matplotlib.image

        out = _scaled(img, saturate, 255.0).astype(np.uint8)
        if bar_px:
            _draw_scale_bar(out, bar_px, 255)
        with atomic_path(path) as tmp:
            if out.ndim == 2:
                matplotlib.image.imsave(tmp, out, cmap="gray", vmin=0, vmax=255, format="png",
                                        metadata={"Description": f"pixel {rendered.px_size_nm} nm; scale bar {bar_nm:g} nm"})
            else:
                matplotlib.image.imsave(tmp, out, format="png",
                                        metadata={"Description": f"pixel {rendered.px_size_nm} nm; scale bar {bar_nm:g} nm"})
    else:
        import tifffile

        out = _scaled(img, saturate, 65535.0).astype(np.uint16)
        if bar_px:
            _draw_scale_bar(out, bar_px, 65535)
        um = rendered.px_size_nm / 1000.0
        with atomic_path(path) as tmp:
            if out.ndim == 2:
                tifffile.imwrite(tmp, out, imagej=True, resolution=(1.0 / um, 1.0 / um), metadata={"unit": "um"})
            else:  # ImageJ hyperstacks hold no 16-bit RGB: a plain RGB TIFF with the resolution in cm
                tifffile.imwrite(tmp, out, photometric="rgb", resolution=(1e4 / um, 1e4 / um),
                                 resolutionunit="CENTIMETER", description=f"pixel {rendered.px_size_nm} nm")
    return {"path": str(path), "shape": list(img.shape), "px_size_nm": rendered.px_size_nm, "scale_bar_nm": bar_nm}
