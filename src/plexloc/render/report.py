"""``plexloc report``: one self-contained HTML page that judges a localization table.

Sections: summary table, rendered image, histograms of photons, background, σ and z, the subpixel
histogram (gridding check: ``x_nm mod px`` and ``y_nm mod px`` in 10 bins, with the largest relative
deviation from uniform as in conventions.md; needs the camera pixel size), the drift curve (from the
``drift_x_nm``/``drift_y_nm`` columns that ``plexloc drift`` writes), and the FRC curve (with a caveat next to
the value when the table looks unmerged, :func:`plexloc.render.frc.unmerged_caveat`, and the reason when there is
no value). Every figure is
an inline base64 PNG; nothing is loaded from elsewhere. A section whose columns are missing says so
("not available: ...") instead of failing. A small inline script counts the images the browser
decoded into ``<body data-images-ok="N" data-images-total="M">`` (used by the headless-browser test).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plexloc.io._atomic import atomic_path
from plexloc.table import LocTable

__all__ = ["Report", "build_report", "gridding_deviation", "write_report"]


@dataclass
class Report:
    html: str
    n_figures: int
    summary: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)


def gridding_deviation(values_nm: np.ndarray, px_size_nm: float, bins: int = 10) -> tuple[np.ndarray, float]:
    """Histogram of ``values mod px`` in ``bins`` bins and its largest relative deviation from uniform."""
    frac = np.mod(values_nm, px_size_nm)
    hist = np.bincount(np.minimum((frac / px_size_nm * bins).astype(np.int64), bins - 1), minlength=bins)
    mean = hist.mean() if hist.size else 0.0
    return hist, float(np.max(np.abs(hist - mean)) / mean) if mean > 0 else float("nan")


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
) -> Report:
    """Build the report page (see the module docstring).

    Args:
        px_size_nm: pixel of the rendered image (default: the extent / 1500, at least 5 nm).
        camera_px_size_nm: camera pixel size, for the subpixel (gridding) histogram.
        frc_px_size_nm: pixel of the FRC images.
    """
    from plexloc.io.tables import describe_columns
    from plexloc.render import figures
    from plexloc.render.frc import frc, unmerged_caveat
    from plexloc.render.image import render

    n = len(table)
    table.check_finite(("x_nm", "y_nm"))  # (an infinite x made the image pixel infinite: 'pixel size must be ...')
    sections: list[tuple[str, str]] = []
    missing: dict[str, str] = {}
    n_fig = 0
    summary: dict[str, object] = {"localizations": n}
    if n:
        summary["frames"] = f"{int(table['frame'].min())} .. {int(table['frame'].max())} ({len(np.unique(table['frame']))} with localizations)"
        summary["extent x (µm)"] = f"{table['x_nm'].min() / 1000:.2f} .. {table['x_nm'].max() / 1000:.2f}"
        summary["extent y (µm)"] = f"{table['y_nm'].min() / 1000:.2f} .. {table['y_nm'].max() / 1000:.2f}"
        summary["median photons"] = f"{np.nanmedian(table['photons']):.0f}"
        for c, label in (("bg", "median bg (photons/px)"), ("sigma_x_nm", "median σx (nm)"), ("sigma_y_nm", "median σy (nm)"),
                         ("sigma_z_nm", "median σz (nm)"), ("prob", "median prob")):
            if c in table:
                summary[label] = f"{np.nanmedian(table[c]):.3g}"
        if np.any(table["z_nm"] != 0):
            summary["z range (nm)"] = f"{table['z_nm'].min():.0f} .. {table['z_nm'].max():.0f}"
    summary["columns"] = ", ".join(table.columns)

    def add(key: str, heading: str, body: str) -> None:
        sections.append((heading, body))

    # rendered image
    if n:
        ext = max(np.ptp(table["x_nm"]), np.ptp(table["y_nm"]), 1.0)
        px = px_size_nm if px_size_nm is not None else max(5.0, float(np.ceil(ext / 1500)))
        # Gaussian with each localization's own sigma where every row has one, else a histogram (said in the title)
        gaussian = ("sigma_x_nm" in table and "sigma_y_nm" in table
                    and bool(np.all(np.isfinite(table["sigma_x_nm"]) & np.isfinite(table["sigma_y_nm"]))))
        r = render(table, method="gaussian" if gaussian else "histogram", px_size_nm=px,
                   **({"min_sigma_nm": px / 2} if gaussian else {}))
        add("image", "Rendered image", _img(figures.image_figure(r.image, px_size_nm=px, origin_nm=(r.extent_nm[0], r.extent_nm[2]),
                                                                 title=f"{'Gaussian (own σ)' if gaussian else 'histogram'}, "
                                                                       f"{px:g} nm pixels"), "rendered image"))
        n_fig += 1
    else:
        missing["image"] = "the table is empty"
        add("image", "Rendered image", _na(missing["image"]))

    # histograms
    hists = [("photons", "photons", "photons per localization"), ("bg", "bg", "background (photons/pixel)"),
             ("sigma", None, "σ (nm)"), ("z", "z_nm", "z (nm)")]
    body = []
    for key, col, label in hists:
        if key == "sigma":
            lateral = [c for c in ("sigma_x_nm", "sigma_y_nm") if c in table]
            if not lateral and "sigma_z_nm" not in table:
                missing["sigma"] = "no sigma_x_nm / sigma_y_nm / sigma_z_nm columns"
                body.append(f"<div class='cell'><h3>{label}</h3>{_na(missing['sigma'])}</div>")
                continue
            # lateral and axial apart (pooled, the axial sigmas made a lateral histogram of a 3D table)
            for cols, xlabel in ((lateral, "lateral σ (nm)"), (["sigma_z_nm"] if "sigma_z_nm" in table else [], "axial σ (nm)")):
                if cols:
                    png = figures.histogram_figure(np.concatenate([table[c] for c in cols]), xlabel=xlabel,
                                                   title=" and ".join(cols))
                    body.append(f"<div class='cell'>{_img(png, xlabel + ' histogram')}</div>")
                    n_fig += 1
            continue
        if col not in table or (key == "z" and not np.any(table["z_nm"] != 0)):
            missing[key] = f"no '{col}' column" if col not in table else "2D data (z = 0 everywhere)"
            body.append(f"<div class='cell'><h3>{label}</h3>{_na(missing[key])}</div>")
            continue
        body.append(f"<div class='cell'>{_img(figures.histogram_figure(table[col], xlabel=label), key + ' histogram')}</div>")
        n_fig += 1
    add("hist", "Histograms", "<div class='grid'>" + "".join(body) + "</div>")

    # subpixel / gridding
    if camera_px_size_nm is None:
        missing["subpixel"] = "pass the camera pixel size (--camera-px-size NM)"
        add("subpixel", "Subpixel histogram (gridding check)", _na(missing["subpixel"]))
    elif n == 0:
        missing["subpixel"] = "the table is empty"
        add("subpixel", "Subpixel histogram (gridding check)", _na(missing["subpixel"]))
    else:
        plt = figures._plt()
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        devs = {}
        for ax, c in zip(axes, ("x_nm", "y_nm")):
            hist, dev = gridding_deviation(table[c], camera_px_size_nm)
            devs[c] = dev
            ax.bar((np.arange(10) + 0.5) / 10, hist, width=0.09, color="C0")
            ax.axhline(hist.mean(), color="C3", ls="--", lw=1)
            ax.set_xlabel(f"{c[0]} mod pixel (fraction of {camera_px_size_nm:g} nm)")
            ax.set_title(f"largest deviation {100 * dev:.1f} %", fontsize=9)
        summary["gridding deviation x / y (%)"] = f"{100 * devs['x_nm']:.1f} / {100 * devs['y_nm']:.1f}"
        add("subpixel", "Subpixel histogram (gridding check)", _img(figures.figure_png(fig), "subpixel histogram"))
        n_fig += 1

    # drift
    if "drift_x_nm" in table and "drift_y_nm" in table and n:
        fr, idx = np.unique(table["frame"], return_index=True)
        d = np.column_stack([table["drift_x_nm"][idx], table["drift_y_nm"][idx],
                             table["drift_z_nm"][idx] if "drift_z_nm" in table else np.zeros(len(idx))])
        summary["drift range x / y (nm)"] = f"{np.ptp(d[:, 0]):.1f} / {np.ptp(d[:, 1]):.1f}"
        add("drift", "Drift curve", _img(figures.drift_figure(fr, d, title="drift subtracted by plexloc drift"), "drift curve"))
        n_fig += 1
    else:
        missing["drift"] = "no drift_x_nm / drift_y_nm columns (run plexloc drift first)"
        add("drift", "Drift curve", _na(missing["drift"]))

    # FRC
    if n >= 100:
        res = frc(table, px_size_nm=frc_px_size_nm, seed=seed)
        value = f"{res.resolution_nm:.1f}" if np.isfinite(res.resolution_nm) else f"none: {res.info['no_crossing']}"
        caveat = unmerged_caveat(table)
        # an unmerged table's value is too optimistic (64 nm on a 200-frame simulation, 656 nm merged): said
        # next to it, where it is read, and above the curve
        summary["FRC resolution (nm)"] = value + (f" (caveat: {caveat})" if caveat else "")
        add("frc", "Fourier ring correlation",
            (f'<p class="na">caveat: {html.escape(caveat)}</p>' if caveat else "")
            + _img(figures.frc_figure(res.q_per_nm, res.frc, res.frc_smooth, res.resolution_nm, res.threshold), "FRC curve"))
        n_fig += 1
    else:
        missing["frc"] = f"FRC needs at least 100 localizations, the table has {n}"
        add("frc", "Fourier ring correlation", _na(missing["frc"]))

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
    return Report(page, n_fig, summary, missing)


def write_report(report: Report, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(report.html, encoding="utf-8")
