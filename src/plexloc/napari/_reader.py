"""napari reader: a localization table becomes a rendered image layer and a points layer, both in nm.

Layers are returned as napari "layer data tuples" ``(data, kwargs, layer_type)``, so this module
needs no napari. Coordinates are ``(y_nm, x_nm)`` (napari's row, column order); the image layer has
``scale = (px, px)`` and ``translate`` at its pixel centres so that it overlays the points exactly.
Point properties carry every column of the table (frame, photons, z_nm, ...). Large tables: the
points layer shows at most ``max_points`` localizations (a seeded random subset, and its layer
name says so); the image always uses all of them. A table with a ``color`` column (a multi-colour
fit) gives one image layer per colour instead of one, on one pixel grid, blended additively in the
colours of ``plexloc render`` and the report (:data:`~plexloc.render.image.COLOR_PALETTE`; rejected
rows, -1, a grey layer, hidden), and its points are coloured alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.errors import InputError

__all__ = ["get_reader", "read_localizations"]

LayerData = tuple[Any, dict, str]

#: napari's colormap for colour k (``k % 6``): the hues of :data:`plexloc.render.image.COLOR_PALETTE`
COLORMAPS = ("magenta", "green", "blue", "yellow", "red", "cyan")


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerData]] | None:
    """The reader for ``path`` when plexloc can read it (napari's reader contribution), else None."""
    from plexloc.io.formats import format_of

    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        format_of(path)
    except InputError:
        return None
    if not Path(path).is_file():
        return None
    return read_localizations


def read_localizations(path: str | os.PathLike | list, *, px_size_nm: float | None = None,
                       max_points: int = 1_000_000, seed: int = 0) -> list[LayerData]:
    """Read a table and return ``[image layer, points layer]``, or an image layer per colour and the points layer
    (module docstring)."""
    from plexloc.io.formats import read_locs
    from plexloc.render.image import default_method, render, sigma_xy_columns

    if isinstance(path, list):
        path = path[0]
    table = read_locs(path)
    name = Path(path).name
    if len(table) == 0:
        raise InputError("the table has no localizations to show", source=path)
    extent_nm = max(np.ptp(table["x_nm"]), np.ptp(table["y_nm"]), 1.0)
    px = float(px_size_nm) if px_size_nm is not None else max(5.0, float(np.ceil(extent_nm / 2000)))
    gaussian = default_method(table) == "gaussian"  # the rule of plexloc render (an MLE table: its CRLB)
    options = {"method": "gaussian" if gaussian else "histogram", "px_size_nm": px,
               **({"min_sigma_nm": px / 2} if gaussian else {})}

    def layer(r, label: str, colormap: str, **kwargs) -> LayerData:
        x0, _, y0, _ = r.extent_nm
        vals = r.image[r.image > 0]
        top = float(np.quantile(vals, 0.995)) if vals.size else 1.0
        return (r.image.astype(np.float32),
                {"name": f"{label} (rendered, {px:g} nm)", "scale": (px, px), "translate": (y0 + px / 2, x0 + px / 2),
                 "colormap": colormap, "contrast_limits": (0.0, top if top > 0 else 1.0),
                 "metadata": {"px_size_nm": px, "source": str(path)}, **kwargs}, "image")

    if "color" in table:
        # one layer per colour on the grid of the whole table (a multi-colour table opened as one grey image showed
        # its colours summed, and its points in one colour: the channels could not be told apart)
        from plexloc.render.image import COLOR_PALETTE, _gaussian_extent, _geometry, _sigma_columns

        colour = np.asarray(table["color"]).astype(np.int64)
        if gaussian:  # the extent that render gives the whole table (as render_color finds it), without rendering it
            cols_x, cols_y, _ = _sigma_columns(table, None)
            extent = _gaussian_extent(table, px, cols_x, cols_y, px / 2)
        else:  # the histogram's default extent (render's own rule), one for every colour
            extent = _geometry(table, px, None, 2**28)[0]
        image_layers = [layer(render(table[colour == k], extent_nm=extent, **options),
                              f"{name} rejected (colour -1)" if k < 0 else f"{name} colour {k}",
                              "gray" if k < 0 else COLORMAPS[k % len(COLORMAPS)], blending="additive",
                              visible=bool(k >= 0))
                        for k in np.unique(colour)]
        rgba = np.ones((len(table), 4))
        rgba[:, :3] = np.where((colour >= 0)[:, None], COLOR_PALETTE[np.maximum(colour, 0) % len(COLOR_PALETTE)], 0.5)
    else:
        image_layers = [layer(render(table, **options), name, "magma")]
        rgba = None
    rows = np.arange(len(table))
    label = name
    if len(table) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(table), max_points, replace=False))
        label = f"{name} ({max_points} of {len(table)} shown)"
    coords = np.column_stack([table["y_nm"][rows], table["x_nm"][rows]])
    sx, sy = sigma_xy_columns(table) if gaussian else (None, None)
    size = 2 * np.sqrt(0.5 * (table[sx][rows] ** 2 + table[sy][rows] ** 2)) if gaussian else np.full(len(rows), 2 * px)
    points_layer: LayerData = (
        coords,
        {"name": label, "properties": {c: table[c][rows] for c in table.columns}, "size": size,
         "face_color": "cyan" if rgba is None else rgba[rows], "opacity": 0.6, "visible": False,
         "metadata": {"source": str(path), "rows": len(table)}},
        "points",
    )
    return [*image_layers, points_layer]
