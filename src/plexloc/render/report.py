"""``plexloc report``: one self-contained HTML page that judges a localization table.

Sections: summary table, rendered image, histograms of photons, background, σ and z, the subpixel
histogram (gridding check: ``x_nm mod px`` and ``y_nm mod px`` in 10 bins, with the largest relative
deviation from uniform as in conventions.md; needs the camera pixel size), the drift curve (from the
``drift_x_nm``/``drift_y_nm`` columns that ``plexloc drift`` writes), the FRC curve (with a caveat next to
the value when the table looks unmerged, :func:`plexloc.render.frc.unmerged_caveat`, and the reason when there is
no value), and the precision measured from the data, NeNA (:mod:`plexloc.render.nena`: the nearest localization in
the next frame; a table before merging), beside the NeNA that the table's predicted σ (or CRLB) give and their fitted
scale k (1: calibrated), with the density of the distances those σ predict drawn over the histogram. Every figure is
an inline base64 PNG; nothing is loaded from elsewhere. A section whose columns are missing says so
("not available: ...") instead of failing. A small inline script counts the images the browser
decoded into ``<body data-images-ok="N" data-images-total="M">`` (used by the headless-browser test).
"""

from __future__ import annotations

import base64
import html
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.evaluate.gridding import gridding_check, subpixel_histogram
from plexloc.io._atomic import atomic_path
from plexloc.table import LocTable, uncertainty_columns

__all__ = ["Report", "build_report", "write_report"]


@dataclass
class Report:
    """The page (``html``), its figures, the summary table and what it could not show; ``frc`` and ``nena``: the
    results behind its FRC and NeNA sections (:class:`~plexloc.render.frc.FRCResult`,
    :class:`~plexloc.render.nena.NeNAResult`; None where not computed), for a caller that reports them too."""

    html: str
    n_figures: int
    summary: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    frc: Any = None
    nena: Any = None


#: the widest image, in image pixels, that the report's figure shows pixel for pixel (7 inches at 100 dpi, less the
#: axes' margins and a colour bar); a wider one is summed in blocks to this width first: shown as it was, every few rows and columns
#: of a fine histogram were skipped (400 isolated localizations at 7 nm pixels: 65 visible)
_DISPLAY_PX = 480
#: z levels of the report's image coloured by z
_Z_LEVELS = 16


def _binned_for_display(image: np.ndarray, max_px: int = _DISPLAY_PX) -> tuple[np.ndarray, int]:
    """The image summed in f x f blocks (``f = ceil(width / max_px)``, zeros padded at the far edges) and f."""
    h, w = image.shape[:2]
    f = int(np.ceil(w / max_px))
    if f <= 1:
        return image, 1
    hb, wb = -(-h // f), -(-w // f)
    pad = np.zeros((hb * f, wb * f) + image.shape[2:])
    pad[:h, :w] = image
    return pad.reshape((hb, f, wb, f) + image.shape[2:]).sum(axis=(1, 3)), f


def _image_png(r, title: str, key, z_note: str = "") -> tuple[bytes, str]:
    """The rendered image with axes in µm, summed to the figure's resolution, contrast at the 99.5 % quantile;
    coloured by z with a colour bar in nm, by channel with a legend of colours and counts."""
    from plexloc.render import figures
    from plexloc.render.image import COLOR_PALETTE

    image, f = _binned_for_display(r.image)
    px = r.px_size_nm * f
    if f > 1:
        title += f", summed {f} x {f} for display ({px:g} nm)"
    plt = figures._plt()
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(7, 7 * h / max(w, 1) + 0.5))
    vals = image[image > 0]
    top = np.quantile(vals, 0.995) if vals.size else 1.0
    shown = np.clip(image / (top if top > 0 else 1.0), 0, 1)
    x0, y0 = r.extent_nm[0] / 1000, r.extent_nm[2] / 1000
    # y grows downwards (rows), as in the movie and the TIFF
    im = ax.imshow(shown, cmap="magma" if image.ndim == 2 else None, interpolation="nearest",
                   extent=(x0, x0 + w * px / 1000, y0 + h * px / 1000, y0))
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if image.ndim == 2:  # the grey image's scale: localizations per displayed pixel (it had none)
        import matplotlib

        im.set_norm(matplotlib.colors.Normalize(0.0, 1.0))
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        ticks = matplotlib.ticker.MaxNLocator(5).tick_values(0.0, float(top))
        ticks = ticks[(ticks >= 0) & (ticks <= top)]
        cb.set_ticks(ticks / (top if top > 0 else 1.0))
        cb.set_ticklabels([f"{t:g}" for t in ticks])
        cb.set_label(f"localizations per {px:g} nm pixel (the brightest 0.5 % of lit pixels: the top colour)")
    if key is not None and key[0] == "z":
        import matplotlib

        z0, z1, n_nan = key[1]
        cmap = matplotlib.colors.ListedColormap(matplotlib.colormaps["turbo"](np.linspace(0, 1, _Z_LEVELS)))
        norm = matplotlib.colors.BoundaryNorm(np.linspace(z0, z1, _Z_LEVELS + 1), _Z_LEVELS)
        cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.02)
        ticks = matplotlib.ticker.MaxNLocator(6).tick_values(z0, z1)
        cb.set_ticks(ticks[(ticks >= z0) & (ticks <= z1)])
        cb.set_label("z (nm)" + (f"; {n_nan} without a finite z in grey" if n_nan else ""))
        title += f", coloured by z ({z0:.0f} to {z1:.0f} nm: the 1-99 % quantiles; beyond them the end colours){z_note}"
    elif key is not None and key[0] == "color":
        from matplotlib.patches import Patch

        ks, counts = np.unique(key[1], return_counts=True)
        handles = [Patch(color=COLOR_PALETTE[k % len(COLOR_PALETTE)] if k >= 0 else (0.5, 0.5, 0.5),
                         label=f"{'rejected' if k < 0 else f'colour {k}'}: {c}") for k, c in zip(ks, counts)]
        ax.legend(handles=handles, fontsize=8, loc="upper right", framealpha=0.6)
        title += ", coloured by colour channel"
    # wrapped to the figure's width (a 3D table's title ran 300 px past the image and widened the figure)
    ax.set_title("\n".join(textwrap.wrap(title, 95)), fontsize=9)
    return figures.figure_png(fig), title


def _converged_text(table: LocTable) -> str | None:
    """How many rows of a maximum-likelihood table (columns ``converged``, ``at_bound``) converged, and the bounds
    the others ended on (the words of :func:`plexloc.mle.pipeline.not_converged_line`); None without the column."""
    if "converged" not in table or not len(table):
        return None
    from plexloc.mle.fit import AT_BOUND_BITS
    from plexloc.mle.pipeline import BOUND_NAMES, not_converged_line

    conv = np.asarray(table["converged"]) == 1
    n, n_ok = len(table), int(conv.sum())
    flagged: dict[str, int] = {"not_converged": n - n_ok}
    z_range = None
    if "at_bound" in table:
        bits = np.asarray(table["at_bound"]).astype(np.int64)
        flagged.update({k: int(np.sum((bits[~conv] & AT_BOUND_BITS[k]) != 0)) for k in BOUND_NAMES})
        z_range = _z_bounds(table, (bits & AT_BOUND_BITS["z"]) != 0)
    # with the rows counted (this table's), the z bound's share and its causes, in the words of the fit's own summary
    # (without them the page kept the old wording and no share beside the fit's "N z on its bound (P % of the M rows")
    line = not_converged_line(flagged, rows=n, z_range_nm=z_range)
    return f"{n_ok} of {n} rows ({100 * n_ok / n:.1f} %)" + (f"; {line}" if line else "")


def _z_bounds(table: LocTable, on_z: np.ndarray) -> tuple[float, float] | None:
    """The fit's z bounds as the rows held on them show them (``at_bound & 2``: their z is the bound; the z drift
    subtracted since, ``drift_z_nm``, added back): (low, high) where those rows sit on exactly two values, one at each
    end, to 0.5 nm; else None (a table whose held rows are all at one end does not show the other)."""
    if not np.any(on_z):
        return None
    z = np.asarray(table["z_nm"], float)[on_z]
    if "drift_z_nm" in table:
        z = z + np.asarray(table["drift_z_nm"], float)[on_z]
    z = z[np.isfinite(z)]
    if not z.size:
        return None
    lo, hi = float(z.min()), float(z.max())
    if hi - lo <= 1.0 or not np.all((np.abs(z - lo) <= 0.5) | (np.abs(z - hi) <= 0.5)):
        return None
    return lo, hi


def held_at_ends(table: LocTable, held: np.ndarray) -> int:
    """Of a merged table's rows held on the z bound (``held``: ``at_bound & 2``, the bits of all its rows), those whose
    z (drift added back) is at the lowest or highest z of them, to 0.5 nm: drawn in the end colours of an image by z
    (the others hold the mean of held and free rows' z: 358 of 431 of a 3D fit's merged rows were at the ends)."""
    zh = np.asarray(table["z_nm"], float) + (np.asarray(table["drift_z_nm"], float) if "drift_z_nm" in table else 0.0)
    zh = zh[held & np.isfinite(zh)]
    if not zh.size:
        return 0
    lo, hi = float(zh.min()), float(zh.max())
    return int(np.sum((np.abs(zh - lo) <= 0.5) | (np.abs(zh - hi) <= 0.5)))


def _refined_text(table: LocTable) -> str | None:
    """How many rows ``--refine-mle`` refitted (column ``refined``), and what their uncertainty columns then hold; None
    without the column. (The page did not say it: the sigma histogram of a refined network table pools two kinds.)"""
    if "refined" not in table or not len(table):
        return None
    n = len(table)
    r = np.asarray(table["refined"], float)
    k = int(np.count_nonzero(r == 1))
    mle = "converged" in table
    kept = ("the first maximum-likelihood fit's values" if mle else
            "the network's values, its predicted sigma_*_nm among them")
    if "n_merged" in table:  # a merged row's refined is its rows' mean (0.9: 9 of 10 refined): 'kept' was wrong
        part = int(np.count_nonzero((r > 0) & (r < 1)))
        return (f"{k} of {n} merged rows ({100 * k / n:.1f} %) of localizations all refitted by plexloc fit --refine-mle "
                f"(refined 1), {part} of some refitted and some that kept {kept} (refined the share refitted), "
                f"{n - k - part} of none (refined 0)")
    return (f"{k} of {n} rows ({100 * k / n:.1f} %) refitted by maximum likelihood with the frame's other localizations "
            f"modelled (plexloc fit --refine-mle: refined 1"
            + ("; their sigma_x/y/z_nm are the CRLB at the refit" if not mle and "sigma_x_nm" in table else "")
            + f"); {n - k} kept {kept} (refined 0)")


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _na(reason: str) -> str:
    return f'<p class="na">not available: {html.escape(reason)}</p>'


def build_report(
    table: LocTable,
    *,
    title: str | None = None,
    px_size_nm: float | None = None,
    camera_px_size_nm: float | None = None,
    frc_px_size_nm: float = 5.0,
    seed: int = 0,
    provenance: Sequence[tuple[str, str]] = (),
    warnings: Sequence[str] = (),
    drift_note: str | None = None,
    drift_png: bytes | None = None,
    frc_table: LocTable | None = None,
    frc_of: str | None = None,
) -> Report:
    """Build the report page (see the module docstring).

    Args:
        px_size_nm: pixel of the rendered image (default: the extent / 1500, at least 5 nm).
        camera_px_size_nm: camera pixel size, for the subpixel (gridding) histogram.
        frc_px_size_nm: pixel of the FRC images.
        provenance: (what, how) rows of a "How this table was made" section under the summary (the movie, the
            model, the drift correction: what ``plexloc process`` did); none: no section.
        warnings: the warnings issued while the table was made, listed in a "Warnings" section; none: no section.
        drift_note: why a table without drift columns has none, said in the drift section in place of "run plexloc
            drift first" (the drift was estimated but not subtracted, or it was turned off).
        drift_png: the picture of that estimate (``plexloc process``'s drift.png), shown under ``drift_note``.
        frc_table: the table whose FRC the report shows, where it is not ``table``: ``plexloc process`` gives its
            merged table (the FRC of the localizations before merging counts a molecule's consecutive frames in both
            halves, and read another value than the merged one that summary.json gives), NeNA staying on ``table``.
        frc_of: what ``frc_table`` is, said beside its value (e.g. "of merged.csv").
    """
    from plexloc.io.tables import describe_columns
    from plexloc.render import figures
    from plexloc.render.frc import frc, unmerged_caveat
    from plexloc.render.nena import nena, nena_against_predicted_text, nena_caveat
    from plexloc.render.image import default_method, render, render_color

    n = len(table)
    table.check_finite(("x_nm", "y_nm"))  # (an infinite x made the image pixel infinite: 'pixel size must be ...')
    sections: list[tuple[str, str]] = []
    missing: dict[str, str] = {}
    n_fig = 0
    summary: dict[str, object] = {"localizations": n}
    # the channels' photons, photons_ch0, photons_ch1, ... (all of them from 0 on; else none is read)
    ch = [f"photons_ch{k}" for k in range(sum(1 for c in table.columns if re.fullmatch(r"photons_ch\d+", c)))]
    ch = ch if all(c in table for c in ch) else []
    per = np.stack([np.asarray(table[c], float) for c in ch], axis=1) if len(ch) >= 2 else np.zeros((n, 0))
    tot = per.sum(axis=1)
    ok = np.isfinite(tot) & (tot > 0)
    z_all = np.asarray(table["z_nm"], dtype=float)
    z_finite = z_all[np.isfinite(z_all)]
    is_3d = bool(np.any(z_finite != 0))
    if n:
        summary["frames"] = f"{int(table['frame'].min())} .. {int(table['frame'].max())} ({len(np.unique(table['frame']))} with localizations)"
        summary["extent x (µm)"] = f"{table['x_nm'].min() / 1000:.2f} .. {table['x_nm'].max() / 1000:.2f}"
        summary["extent y (µm)"] = f"{table['y_nm'].min() / 1000:.2f} .. {table['y_nm'].max() / 1000:.2f}"
        summary["median photons"] = f"{np.nanmedian(table['photons']):.0f}"
        if len(ch) >= 2:  # each channel's (a multi-channel fit's photons_chN)
            summary["median photons per channel"] = ", ".join(
                f"{c[8:]}: {np.nanmedian(per[:, k]):.0f}" if np.isfinite(per[:, k]).any() else f"{c[8:]}: none finite"
                for k, c in enumerate(ch))
        for c, label in (("bg", "median bg (photons/px)"), ("sigma_x_nm", "median σx (nm)"), ("sigma_y_nm", "median σy (nm)"),
                         ("sigma_z_nm", "median σz (nm)"), ("crlb_x_nm", "median CRLB x (nm)"),
                         ("crlb_y_nm", "median CRLB y (nm)"), ("crlb_z_nm", "median CRLB z (nm)"), ("prob", "median prob")):
            if c in table and np.isfinite(table[c]).any():  # (an all-NaN column made 'nan' and a RuntimeWarning)
                n_nan = int(np.sum(~np.isfinite(table[c])))  # (said: an MLE fit's crlb_z_nm is NaN where z is held on
                # its bound, and the median of the others read as the whole table's)
                summary[label] = f"{np.nanmedian(table[c]):.3g}" + (f" ({n_nan} rows NaN, left out)" if n_nan else "")
        if is_3d:  # from the rows that have a z (one NaN made it 'nan .. nan')
            summary["z range (nm)"] = (f"{z_finite.min():.0f} .. {z_finite.max():.0f}"
                                       + (f" ({n - z_finite.size} rows without a finite z)" if z_finite.size < n else ""))
        if "color" in table:
            colours = np.asarray(table["color"]).astype(np.int64)
            ks, counts = np.unique(colours, return_counts=True)
            summary["localizations per colour"] = ", ".join(
                f"{'rejected' if k < 0 else f'colour {k}'}: {c} ({100 * c / n:.1f} %)" for k, c in zip(ks, counts))
        span = int(table["frame"].max()) - int(table["frame"].min()) + 1
        summary["mean localizations per frame"] = f"{n / span:.3g} (over the frames from the first to the last)"
        converged = _converged_text(table)
        if converged:  # an MLE table's rows on a bound of the fit (its z histogram's end bars): said by the fit only
            summary["converged (maximum-likelihood fit)"] = converged
        refined = _refined_text(table)
        if refined:
            summary["refined (--refine-mle)"] = refined
    summary["columns"] = ", ".join(table.columns)
    summary["report settings"] = ""  # (its place in the table; filled in below, once the image's pixel is known)
    image_px = px_size_nm

    def add(key: str, heading: str, body: str) -> None:
        sections.append((heading, body))

    # rendered image: coloured by channel where the table has colours, by z where it is 3D, else grey
    if n:
        ext = max(np.ptp(table["x_nm"]), np.ptp(table["y_nm"]), 1.0)
        px = px_size_nm if px_size_nm is not None else max(5.0, float(np.ceil(ext / 1500)))
        image_px = px
        # Gaussian with each localization's own sigma where every row has one, else a histogram (said in the title)
        method = default_method(table)
        gaussian = method == "gaussian"
        # a margin around the localizations (on the bounding box, the outermost ones lay under the axes' frame, and
        # half of a Gaussian there fell outside)
        m = 0.02 * ext + 2 * px
        opts = {"min_sigma_nm": px / 2} if gaussian else {}
        opts["extent_nm"] = (float(np.floor((table["x_nm"].min() - m) / px) * px), float(table["x_nm"].max() + m),
                             float(np.floor((table["y_nm"].min() - m) / px) * px), float(table["y_nm"].max() + m))
        key = None
        if "color" in table:
            r = render_color(table, color_by="color", method=method, px_size_nm=px, **opts)
            key = ("color", np.asarray(table["color"]).astype(np.int64))
        elif is_3d and np.ptp(z_finite) > 0:  # (one z: a made-up 1 nm scale, 'coloured by z (50 to 51 nm)')
            z0, z1 = (float(v) for v in np.quantile(z_finite, [0.01, 0.99]))
            z1 = z1 if z1 > z0 else z0 + 1.0
            r = render_color(table, color_by="z", method=method, px_size_nm=px, z_range_nm=(z0, z1),
                             n_levels=_Z_LEVELS, **opts)
            key = ("z", (z0, z1, n - z_finite.size))
        else:
            r = render(table, method=method, px_size_nm=px, **opts)
        image_title = f"{'Gaussian (own σ)' if gaussian else 'histogram'}, {px:g} nm pixels"
        held_note = ""
        if key is not None and key[0] == "z" and "at_bound" in table:
            from plexloc.mle.fit import AT_BOUND_BITS

            on_z = (np.asarray(table["at_bound"]).astype(np.int64) & AT_BOUND_BITS["z"]) != 0
            held = int(np.sum(on_z))
            if held and "n_merged" in table:  # a merged row's z is its rows' mean: at the ends only if all were held
                held_note = (f"; {held} rows hold a localization with z held on the fit's bound (at_bound & 2), "
                             f"{held_at_ends(table, on_z)} of them at the ends, in the end colours")
            elif held:  # (their z is the bound: drawn in the end colours as molecules there)
                held_note = (f"; {held} rows {'hold a localization with' if 'n_merged' in table else 'with'} z held on "
                             "the fit's bound (at_bound & 2) in the end colours")
        png, caption = _image_png(r, image_title, key, held_note)
        add("image", "Rendered image", _img(png, "rendered image") + f"<p>{html.escape(caption)}</p>")
        n_fig += 1
    else:
        missing["image"] = "the table is empty"
        add("image", "Rendered image", _na(missing["image"]))

    # histograms
    hists = [("photons", "photons", "photons per localization"), ("bg", "bg", "background (photons/pixel)"),
             ("sigma", None, "σ (nm)"), ("z", "z_nm", "z (nm)")]
    body = []
    if not n:  # one line, not four figures of nothing (each saying the table is empty)
        hists = []
        missing["hist"] = "the table is empty"
    for key, col, label in hists:
        if key == "sigma":
            # the predicted uncertainties, else the Cramér-Rao bounds (what plexloc fit --method mle writes)
            # by the one rule of plexloc.table.uncertainty_columns (NeNA, filtering, the z-scores read the same): the
            # first set with a finite value in some row (all-NaN sigma_* beside a finite CRLB showed 'NaN in every row')
            lateral = list(uncertainty_columns(table, "xy") or [c for c in ("sigma_x_nm", "sigma_y_nm") if c in table]
                           or [c for c in ("crlb_x_nm", "crlb_y_nm") if c in table])
            axial = list(uncertainty_columns(table, "z") or [c for c in ("sigma_z_nm", "crlb_z_nm") if c in table][:1])
            if not lateral and not axial:
                missing["sigma"] = "no sigma_x_nm / sigma_y_nm / sigma_z_nm (or crlb_x_nm / crlb_y_nm / crlb_z_nm) columns"
                body.append(f"<div class='cell'><h3>{label}</h3>{_na(missing['sigma'])}</div>")
                continue
            # lateral and axial apart (pooled, the axial sigmas made a lateral histogram of a 3D table)
            for which, cols, xlabel in (
                    ("sigma", lateral, f"lateral {'CRLB' if lateral and lateral[0].startswith('crlb') else 'σ'} (nm)"),
                    ("sigma_z", axial, f"axial {'CRLB' if axial and axial[0].startswith('crlb') else 'σ'} (nm)")):
                if not cols:
                    continue
                values = np.concatenate([np.asarray(table[c], dtype=float) for c in cols])
                if n and not np.isfinite(values).any():  # a 2D fit's crlb_z_nm (NaN in every row) drew blank axes
                    missing[which] = (f"{' and '.join(cols)} NaN or infinite in every row"
                                      + (" (a 2D table)" if which == "sigma_z" and not is_3d else ""))
                    body.append(f"<div class='cell'><h3>{html.escape(xlabel)}</h3>{_na(missing[which])}</div>")
                    continue
                # x and y pooled: two values per localization, which the title says (the counts read as rows)
                png = figures.histogram_figure(values, xlabel=xlabel, title=" and ".join(cols) + (
                    f" pooled ({len(cols)} values per localization)" if len(cols) > 1 else ""),
                    ylabel="values (x and y: 2 per localization)" if len(cols) > 1 else "localizations")
                # the rows left out of the bars, said under them (an MLE fit's crlb_z_nm, NaN where z is held on its
                # bound: the figure counted 3021 values of 3518 rows and did not say why)
                n_out = int(np.sum(~np.all([np.isfinite(np.asarray(table[c], float)) for c in cols], axis=0)))
                why = ""
                if n_out and "crlb_z_nm" in cols and "at_bound" in table:
                    from plexloc.mle.fit import AT_BOUND_BITS

                    held = (np.asarray(table["at_bound"]).astype(np.int64) & AT_BOUND_BITS["z"]) != 0
                    if np.all(held[~np.isfinite(np.asarray(table["crlb_z_nm"], float))]):
                        why = (" (a localization with z held on the fit's bound, at_bound & 2: no estimate of z, so no "
                               "bound)" if "n_merged" in table else
                               " (z held on the fit's bound, at_bound & 2: no estimate of z, so no bound)")
                said = f"{n_out} of {n} rows without a finite {' / '.join(cols)}: not in the bars{why}"
                note = f"<p>{html.escape(said)}</p>" if n_out else ""
                body.append(f"<div class='cell'>{_img(png, xlabel + ' histogram')}{note}</div>")
                n_fig += 1
            continue
        if col not in table or (key == "z" and not is_3d):
            missing[key] = (f"no '{col}' column" if col not in table else "2D data (z = 0 everywhere)" if z_finite.size
                            else "no finite z (z_nm is NaN or infinite in every row)")
            body.append(f"<div class='cell'><h3>{label}</h3>{_na(missing[key])}</div>")
            continue
        note = ""
        if key == "z" and "at_bound" in table:
            # the fit's z bound piles rows at the ends of the histogram (an astigmatic fit: 521 of 4536 rows), read
            # as molecules there where nothing said what they were
            from plexloc.mle.fit import AT_BOUND_BITS  # (the table is an MLE fit's: its bits, not a copy)

            held = (np.asarray(table["at_bound"]).astype(np.int64) & AT_BOUND_BITS["z"]) != 0
            on_z = int(np.sum(held))
            if on_z and "n_merged" in table:
                # a merged row holds the bits of all its rows and the mean of their z: 431 of 1857 merged rows of a
                # 3D fit had the bit, 358 of them at the ends (the note said all 431 were the end bars)
                zh = np.asarray(table["z_nm"], float) + (np.asarray(table["drift_z_nm"], float) if "drift_z_nm" in
                                                         table else 0.0)
                zh = zh[held & np.isfinite(zh)]
                at_ends = ""
                if zh.size:  # those whose rows were all held at one end: the lowest and highest z of the held rows
                    lo, hi = float(zh.min()), float(zh.max())
                    k_ends = int(np.sum((np.abs(zh - lo) <= 0.5) | (np.abs(zh - hi) <= 0.5)))
                    at_ends = f"; {k_ends} of them at z = {lo:.0f} or {hi:.0f} nm, the bars at the ends"
                note = "<p>" + html.escape(
                    f"{on_z} of {n} merged rows ({100 * on_z / n:.1f} %) hold a localization that ended on the fit's "
                    "z bound (at_bound & 2: a merged row has the bits of all its rows, and the mean of their z)"
                    + at_ends + "; plexloc filter --converged removes them") + "</p>"
            elif on_z:
                note = "<p>" + html.escape(f"{on_z} of {n} rows ({100 * on_z / n:.1f} %) ended on the fit's z bound "
                                           "(at_bound & 2, converged 0): the bars at the ends; plexloc filter "
                                           "--converged removes them") + "</p>"
        body.append(f"<div class='cell'>{_img(figures.histogram_figure(table[col], xlabel=label), key + ' histogram')}"
                    f"{note}</div>")
        n_fig += 1
    # a multi-channel table's photons per channel: channel 0's share of each row's photons, where the dyes of a
    # multi-colour sample are the peaks (the page showed the total only: a dual-colour fit's two dyes, at 0.2-0.4 and
    # 0.7-0.9 of channel 0, were on no figure and no line)
    if n and len(ch) >= 2:
        share = per[ok, 0] / tot[ok]
        label = f"channel 0's share of the photons (photons_ch0 / the sum of {len(ch)} channels)"
        png = figures.histogram_figure(share, xlabel="photons_ch0 / photons of all channels", title=label)
        said = ("a multi-colour sample's dyes are its peaks ("
                + ("plexloc color assigns them" if "color" not in table else "the table's color column") + "); a "
                "multi-plane set-up's share follows z")
        left = int(np.sum(~ok))  # (a NaN in one channel: its row has photons in the others, but no share)
        body.append(f"<div class='cell'>{_img(png, 'channel 0 share histogram')}<p>{html.escape(said)}"
                    + (html.escape(f"; {left} rows left out: a channel's photons not finite, or no photons in all "
                                       "channels together") if left else "")
                    + "</p></div>")
        n_fig += 1
    add("hist", "Histograms", "<div class='grid'>" + "".join(body) + "</div>" if n else _na(missing["hist"]))

    # localizations per frame (bleaching, a density too high at the start, a focus lost mid-movie)
    if n:
        add("frames", "Localizations per frame", _img(figures.frame_counts_figure(table["frame"]),
                                                       "localizations per frame"))
        n_fig += 1

    # subpixel / gridding
    if camera_px_size_nm is None:
        missing["subpixel"] = "pass the camera pixel size (--camera-px-size NM)"
        add("subpixel", "Subpixel histogram (gridding check)", _na(missing["subpixel"]))
    elif n == 0:
        missing["subpixel"] = "the table is empty"
        add("subpixel", "Subpixel histogram (gridding check)", _na(missing["subpixel"]))
    else:
        plt = figures._plt()
        # constrained: the right panel's y label and both titles overlapped their neighbours at (8, 3)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        # what counting noise alone gives: the same histograms at periods other than the pixel's (the demo fit's
        # 19.0 / 20.4 % read as gridding; its truth table read 15 / 14 %, and de-biasing the fit raised its RMSE)
        check = gridding_check(table["x_nm"], table["y_nm"], camera_px_size_nm)
        for ax, c, dev in zip(axes, ("x_nm", "y_nm"), (check.dev_x, check.dev_y)):
            hist = subpixel_histogram(table[c], camera_px_size_nm)
            ax.bar((np.arange(10) + 0.5) / 10, hist, width=0.09, color="C0")
            ax.axhline(hist.mean(), color="C3", ls="--", lw=1)
            ax.set_xlabel(f"{c[0]} mod pixel (fraction of {camera_px_size_nm:g} nm)")
            ax.set_ylabel("localizations")
            ax.set_title(f"{c[0]}: largest deviation {100 * dev:.1f} %\n(counting noise: up to {100 * check.noise:.0f} %)",
                         fontsize=9)
        summary["gridding deviation x / y (%)"] = check.describe()
        add("subpixel", "Subpixel histogram (gridding check)", _img(figures.figure_png(fig), "subpixel histogram"))
        n_fig += 1

    # drift
    if "drift_x_nm" in table and "drift_y_nm" in table and n:
        fr, idx = np.unique(table["frame"], return_index=True)
        d = np.column_stack([table["drift_x_nm"][idx], table["drift_y_nm"][idx],
                             table["drift_z_nm"][idx] if "drift_z_nm" in table else np.zeros(len(idx))])
        summary["drift range x / y (nm)"] = f"{np.ptp(d[:, 0]):.1f} / {np.ptp(d[:, 1]):.1f}"
        if np.any(d[:, 2]):  # a 3D table's z drift (the figure drew it; the summary gave x and y only)
            summary["drift range z (nm)"] = f"{np.ptp(d[:, 2]):.1f}"
        add("drift", "Drift curve", _img(figures.drift_figure(fr, d, title="drift subtracted (the drift_*_nm columns)"),
                                         "drift curve"))
        n_fig += 1
    else:
        missing["drift"] = drift_note or "no drift_x_nm / drift_y_nm columns (run plexloc drift first)"
        shown = _img(drift_png, "drift curve, estimated, not subtracted") if drift_png else ""
        add("drift", "Drift curve", _na(missing["drift"]) + shown)
        n_fig += bool(shown)

    # FRC
    ft = table if frc_table is None else frc_table
    res = None
    if len(ft) >= 100:
        res = frc(ft, px_size_nm=frc_px_size_nm, seed=seed)
        value = f"{res.resolution_nm:.1f}" if np.isfinite(res.resolution_nm) else f"none: {res.info['no_crossing']}"
        value += f" ({frc_of})" if frc_of else ""
        caveat = unmerged_caveat(ft)
        # an unmerged table's value is too optimistic (64 nm on a 200-frame simulation, 656 nm merged): said
        # next to it, where it is read, and above the curve
        # the pixel that limits the value, or that replaced the one asked for, beside it (as plexloc frc says it)
        notes = [res.info[k] for k in ("px_grown", "pixel_limited") if k in res.info]
        summary["FRC resolution (nm)"] = (value + f", {res.px_size_nm:g} nm pixels"
                                          + (f" (caveat: {caveat})" if caveat else "")
                                          + "".join(f" (note: {t})" for t in notes))
        add("frc", "Fourier ring correlation",
            (f"<p>{html.escape(frc_of)}</p>" if frc_of else "")
            + (f'<p class="na">caveat: {html.escape(caveat)}</p>' if caveat else "")
            + "".join(f'<p class="na">note: {html.escape(t)}</p>' for t in notes)
            + _img(figures.frc_figure(res.q_per_nm, res.frc, res.frc_smooth, res.resolution_nm, res.threshold), "FRC curve"))
        n_fig += 1
    else:
        which = f" ({frc_of})" if frc_of else ""
        missing["frc"] = f"FRC needs at least 100 localizations, the table{which} has {len(ft)}"
        add("frc", "Fourier ring correlation", _na(missing["frc"]))

    # NeNA: the precision measured from the repeats of a molecule in consecutive frames (predicted sigmas and the
    # CRLB leave out what the data show: drift within a frame pair, PSF model errors)
    nn = nena(table) if n > 1 else None
    if nn is not None and np.isfinite(nn.sigma_nm):
        caveat = nena_caveat(table)
        # a standard error under 0.05 nm printed as '± 0.0' (12,270 pairs: 0.047 nm): two significant digits there
        se = f"{nn.sigma_se_nm:.2g}" if 0 < nn.sigma_se_nm < 0.05 else f"{nn.sigma_se_nm:.1f}"
        # against the predicted σ: where they vary from row to row the one σ of the fit is neither their median nor
        # their rms (log-normal photons: NeNA 12.2 nm, median σ 10.0, rms 14.3), so the value to compare with is the
        # NeNA those σ give, and their fitted scale k
        against = nena_against_predicted_text(nn)
        summary["NeNA precision (nm)"] = (f"{nn.sigma_nm:.1f} ± {se} ({len(nn.distances_nm)} pairs in "
                                          "consecutive frames)" + (f"; {against}" if against else "")
                                          + (f" (caveat: {caveat})" if caveat else ""))
        add("nena", "Localization precision from the data (NeNA)",
            (f'<p class="na">caveat: {html.escape(caveat)}</p>' if caveat else "")
            + (f"<p>{html.escape(against)}</p>" if against else "")
            + _img(figures.nena_figure(nn.distances_nm, nn.sigma_nm, nn.chance_share, nn.r_max_nm,
                                       predicted_density=nn.predicted_density if np.isfinite(nn.expected_sigma_nm)
                                       else None, expected_sigma_nm=nn.expected_sigma_nm, scale_k=nn.scale_k,
                                       scale_k_se=nn.scale_k_se), "NeNA distances"))
        n_fig += 1
    else:
        missing["nena"] = nn.info["no_value"] if nn is not None else "NeNA needs at least 2 localizations"
        summary["NeNA precision (nm)"] = f"none: {missing['nena']}"
        add("nena", "Localization precision from the data (NeNA)", _na(missing["nena"]))

    from plexloc import __version__
    from plexloc._call import keyword_defaults

    nena_radius = nn.r_max_nm if nn is not None else keyword_defaults(nena)["r_max_nm"]  # (nena's own default)

    # what the page was made with (a report passed on to a colleague said neither its pixels nor its version)
    summary["report settings"] = "; ".join([
        f"plexloc {__version__}",
        "camera pixel " + (f"{camera_px_size_nm:g} nm" if camera_px_size_nm is not None
                           else "not given (no gridding check: --camera-px-size)"),
        "image pixel " + (f"{image_px:g} nm" + (" (automatic: the field's extent / 1500, at least 5 nm)"
                                                  if px_size_nm is None else "") if image_px is not None else "none"),
        f"FRC: {frc_px_size_nm:g} nm pixels asked for, random halves of seed {seed}",
        f"NeNA: the nearest localization of the next frame within {nena_radius:g} nm"])

    # every column: what it means, its unit and its values (a table opened without the README is still explained)
    def num(v) -> str:
        return "" if v is None else f"{v:.6g}"

    col_rows = "".join(
        f"<tr><th>{html.escape(c['column'])}</th><td>{html.escape(c['unit'] or '')}</td>"
        f"<td>{html.escape(c['description'] or 'not a plexloc column (kept from the file as it was)')}</td>"
        f"<td>{num(c['min'])}</td><td>{num(c['median'])}</td><td>{num(c['max'])}</td><td>{c['non_finite'] or ''}</td></tr>"
        for c in describe_columns(table))
    add("columns", "Columns", "<table><tr><th>column</th><th>unit</th><th>meaning</th><th>min</th><th>median</th>"
        f"<th>max</th><th>not finite</th></tr>{col_rows}</table>")

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    title = title or f"plexloc report: {Path(table.source).name if table.source else 'localizations'}"
    if warnings:
        sections.insert(0, ("Warnings", "<ul>" + "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
                            + "</ul>"))
    if provenance:
        sections.insert(0, ("How this table was made", "<table>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in provenance)
            + "</table>"))
    body_html = "".join(f"<section><h2>{html.escape(h)}</h2>{b}</section>" for h, b in sections)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
img {{ max-width: 100%; }} .grid {{ display: flex; flex-wrap: wrap; gap: 1em; }} .cell {{ flex: 1 1 45%; }}
.na {{ color: #a33; font-style: italic; }}
</style></head>
<body data-images-ok="0" data-images-total="{n_fig}">
<h1>{html.escape(title)}</h1>
<section><h2>Summary</h2><table>{rows}</table></section>
{body_html}
<script>
window.addEventListener("load", function () {{
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {{ if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }}
  document.body.setAttribute("data-images-ok", String(ok));
}});
</script>
</body></html>
"""
    return Report(page, n_fig, summary, missing, frc=res, nena=nn)


def write_report(report: Report, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(report.html, encoding="utf-8")
