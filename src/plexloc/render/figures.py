"""Figures (matplotlib, Agg backend): drift curve, FRC curve, histograms. Each returns PNG bytes or writes a file."""

from __future__ import annotations

import io
import os

import numpy as np

__all__ = ["drift_figure", "figure_png", "frame_counts_figure", "frc_figure", "histogram_figure", "image_figure",
           "legend_figure", "nena_figure", "no_data", "save_png"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (closes it)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_png(data: bytes, path: str | os.PathLike) -> None:
    from plexloc.io._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def no_data(ax, text: str) -> None:
    """Say in the middle of ``ax`` why it shows nothing (an empty axes, or one line of one point, read as a plot of
    nothing at all); the axes' labels stay, the meaningless 0..1 ticks go."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize=9, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def drift_figure(frames: np.ndarray, drift_nm: np.ndarray, *, segment_frames=None, segment_drift_nm=None,
                 true_drift_nm: np.ndarray | None = None, title: str = "estimated drift",
                 unmeasured_frames=None) -> bytes:
    """Drift x, y (and z when not zero) against frame; window estimates as dots (one legend entry for them). A
    curve of one frame is drawn as points (a line of one point showed nothing); no frames, or no finite drift, say so
    on the axes. ``drift_nm`` of two columns (x, y) is taken as having no z. ``unmeasured_frames``: ``(first, last)``
    stretches whose drift was held or interpolated, not measured (the fiducials engine's
    ``info["unmeasured_frames"]``: no marker localized there), shaded grey with one legend entry."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    frames = np.asarray(frames)
    d = _three_columns(drift_nm)
    seg = _three_columns(segment_drift_nm) if segment_frames is not None and segment_drift_nm is not None else None
    true = _three_columns(true_drift_nm) if true_drift_nm is not None else None
    if not len(frames) or not np.isfinite(d).any():
        no_data(ax, "no drift to show: " + ("no frames" if not len(frames) else "the drift is not a finite number in "
                                            "any frame"))
    else:
        style = "-" if len(frames) > 1 else "o"  # one frame: a point
        for k, (name, colour) in enumerate(zip("xyz", ("C0", "C1", "C2"))):
            if k == 2 and not np.any(np.nan_to_num(d[:, 2])):
                continue
            ax.plot(frames, d[:, k], style, color=colour, label=f"d{name}")
            if seg is not None and len(seg):
                ax.plot(segment_frames, seg[:, k], "o", color=colour, ms=4)
            if true is not None:
                ax.plot(frames, true[:, k], "--", color=colour, lw=1, label=f"true d{name}")
        if seg is not None and len(seg):  # the dots' meaning, once, in grey
            ax.plot([], [], "o", color="0.4", ms=4, label="window estimates")
        for i, (a, b) in enumerate(unmeasured_frames or ()):
            ax.axvspan(a - 0.5, b + 0.5, color="0.85", lw=0, zorder=0,
                       label="not measured (no fiducial)" if i == 0 else None)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax.set_xlabel("frame")
    ax.set_ylabel("drift (nm)")
    ax.set_title(title)
    return figure_png(fig)


def _three_columns(a) -> np.ndarray:
    """(n, 3) float: an (n, 2) array (x, y) gets a z column of zeros."""
    a = np.asarray(a, dtype=float).reshape(len(a), -1) if len(a) else np.zeros((0, 3))
    if a.shape[1] < 3:
        a = np.column_stack([a, np.zeros((len(a), 3 - a.shape[1]))])
    return a


def frc_figure(q_per_nm, frc, frc_smooth, resolution_nm: float, threshold: float) -> bytes:
    """The FRC of two random halves against spatial frequency, its smoothed curve, the threshold and, where the
    smoothed curve crosses it, the resolution (1 / the frequency of the crossing)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    res = f"resolution {resolution_nm:.1f} nm" if np.isfinite(resolution_nm) else "no crossing of the threshold"
    ax.set_title(f"Fourier ring correlation of two random halves: {res}", fontsize=10)
    ax.set_xlabel("spatial frequency (1/nm)")
    ax.set_ylabel("FRC")
    if not len(q_per_nm) or not np.isfinite(np.asarray(frc_smooth, dtype=float)).any():
        no_data(ax, "no FRC curve: no spatial frequencies with a correlation")
        return figure_png(fig)
    ax.plot(q_per_nm, frc, color="0.7", lw=0.8, label="FRC")
    ax.plot(q_per_nm, frc_smooth, color="C0", label="smoothed")
    ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"threshold 1/{round(1 / threshold)}")
    if np.isfinite(resolution_nm):
        ax.axvline(1 / resolution_nm, color="C2", lw=1, label=f"resolution {resolution_nm:.1f} nm")
    ax.set_ylim(-0.1, 1.05)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def nena_figure(distances_nm: np.ndarray, sigma_nm: float, chance_share: float, r_max_nm: float, *,
                predicted_density=None, expected_sigma_nm: float = float("nan"), scale_k: float = float("nan"),
                scale_k_se: float = float("nan")) -> bytes:
    """Histogram of the nearest-neighbour distances in the next frame (as a density) and the NeNA fit
    (:func:`plexloc.render.nena.nena_density`) where there is one; ``predicted_density(d, k=1.0)``: the density of
    the distances if the table's predicted σ times k were right
    (:meth:`plexloc.render.nena.NeNAResult.predicted_density`), drawn dashed for k = 1 with the NeNA it gives,
    ``expected_sigma_nm``, and dotted for the fitted ``scale_k`` where that is not 1 within 2 standard errors
    (``scale_k_se``) and 2 %; None: neither drawn."""
    from plexloc.render.nena import nena_density

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    d = np.asarray(distances_nm, dtype=float)
    ax.set_title("NeNA: distance of each localization to its nearest neighbour in the next frame", fontsize=10)
    ax.set_xlabel("distance to the nearest localization of the next frame (nm)")
    ax.set_ylabel("density (1/nm)")
    if not d.size:
        no_data(ax, "no pairs of localizations in consecutive frames")
        return figure_png(fig)
    ax.hist(d, bins=75, range=(0.0, r_max_nm), density=True, color="0.75", label=f"{len(d)} pairs")
    x = np.linspace(0.0, r_max_nm, 400)
    if np.isfinite(sigma_nm):
        ax.plot(x, nena_density(x, sigma_nm, chance_share, r_max_nm), color="C0",
                label=f"fit: σ {sigma_nm:.1f} nm, {100 * chance_share:.0f} % chance neighbours")
    if predicted_density is not None:
        ax.plot(x, predicted_density(x), color="C3", ls="--",
                label=f"if the predicted σ were right (NeNA {expected_sigma_nm:.1f} nm)")
        se = scale_k_se if np.isfinite(scale_k_se) else 0.0
        if np.isfinite(scale_k) and abs(scale_k - 1.0) > max(0.02, 2.0 * se):
            ax.plot(x, predicted_density(x, k=scale_k), color="C2", ls=":", lw=2,
                    label=f"the predicted σ times k = {scale_k:.2f}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def frame_counts_figure(frames: np.ndarray, *, max_bins: int = 500) -> bytes:
    """Localizations per frame against frame (bleaching, a density too high at the start, a focus lost mid-movie):
    the mean per frame over bins of whole frames, at most ``max_bins`` bins from the first frame to the last (frames
    without localizations count 0), with the overall mean dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    f = np.asarray(frames, dtype=np.int64).ravel()
    if f.size:
        f0, f1 = int(f.min()), int(f.max())
        width = max(1, int(np.ceil((f1 - f0 + 1) / max_bins)))
        counts = np.bincount((f - f0) // width)
        starts = f0 + width * np.arange(counts.size)
        frames_in = np.minimum(starts + width, f1 + 1) - starts  # the last bin can hold fewer frames
        ax.step(starts, counts / frames_in, where="post", color="C0")
        ax.axhline(f.size / (f1 - f0 + 1), color="C3", ls="--", lw=1,
                   label=f"mean {f.size / (f1 - f0 + 1):.3g} per frame over frames {f0}..{f1}")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
        ax.set_title("localizations per frame" + (f" (mean over bins of {width} frames)" if width > 1 else ""),
                     fontsize=9)
    else:
        no_data(ax, "no localizations: the table is empty")
    ax.set_xlabel("frame")
    ax.set_ylabel("localizations per frame")
    return figure_png(fig)


def histogram_figure(values: np.ndarray, *, xlabel: str, bins: int = 60, title: str = "",
                     ylabel: str = "localizations") -> bytes:
    """Histogram of the finite ``values`` between their 0.1 % and 99.9 % quantiles (all of them for 1000 or fewer;
    the number beyond the axes is written in a corner); values that are all alike get a bin centred on them; no finite
    value: said on the axes (it was blank). ``ylabel``: what the bars count (values pooled from two columns are two
    per localization)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    v = np.asarray(values, dtype=float).ravel()
    n_all = v.size
    v = v[np.isfinite(v)]
    if v.size:
        # the 0.1 % tails, as values of the data: interpolated, the quantiles always fell inside the smallest and
        # largest values and left those two out of a small sample (52 of 54 values drawn)
        lo, hi = np.quantile(v, 0.001, method="lower"), np.quantile(v, 0.999, method="higher")
        if not hi > lo:  # one value: a bin around it (it was drawn at the left edge of a 1-wide range)
            half = max(abs(float(lo)) * 0.05, 0.5)
            lo, hi = lo - half, hi + half
        ax.hist(v, bins=bins, range=(lo, hi), color="C0")
        beyond = int(np.sum((v < lo) | (v > hi)))
        if beyond:  # the tails left out of the bars, counted (the bars summed to fewer values than the table has)
            # above the tallest bar (it was written over a tall bar at the right: the background histogram of a fit)
            ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
            ax.text(0.98, 0.97, f"{beyond} of {v.size} values beyond the axes", ha="right", va="top",
                    transform=ax.transAxes, fontsize=7, color="0.3")
    else:
        no_data(ax, "no values: the table is empty" if not n_all else
                f"no finite values: all {n_all} are NaN or infinite")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return figure_png(fig)


def image_figure(image: np.ndarray, *, px_size_nm: float, title: str = "", origin_nm: tuple[float, float] = (0.0, 0.0)) -> bytes:
    """The rendered image with axes in µm (grey or RGB), contrast at the 99.5 % quantile; ``origin_nm`` (x0, y0):
    the position of the image's corner, so that the axes read the localizations' own coordinates."""
    plt = _plt()
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(7, 7 * h / max(w, 1) + 0.5) if h and w else (7, 7))
    vals = image[image > 0]
    if not h or not w:  # (imshow of no pixels: a singular-axis warning and a blank axes)
        no_data(ax, "no image: it has no pixels")
    else:
        top = np.quantile(vals, 0.995) if vals.size else 1.0
        shown = np.clip(image / (top if top > 0 else 1.0), 0, 1)
        x0, y0 = (v / 1000 for v in origin_nm)
        extent = (x0, x0 + w * px_size_nm / 1000, y0 + h * px_size_nm / 1000, y0)
        ax.imshow(shown, cmap="magma" if image.ndim == 2 else None, extent=extent, interpolation="nearest")
        if not vals.size:  # all black: say it is empty rather than dark
            ax.text(0.5, 0.5, "no localizations in the image", ha="center", va="center", transform=ax.transAxes,
                    color="white", fontsize=10)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if title:
        ax.set_title(title, fontsize=9)
    return figure_png(fig)


def legend_figure(rendered, *, scale_bar_nm: float = 0.0, grey: bool = False) -> bytes | None:
    """The key to a coloured image written as a picture (``plexloc render --color-by z|color`` to PNG): the z colour
    scale in nm (the colormap's levels as drawn, the ends saturating) or the colour channels' hues, and the scale bar's
    length. The PNG itself holds only pixels (a scale bar without a number and colours without a scale); None for a
    grey image, or (``grey=True``, as plexloc process writes it beside image.png) for a grey image without a scale
    bar: with one, a key of the scale bar's length and the image's pixel. A z-coloured image's rows without a finite
    z (drawn grey, :func:`plexloc.render.image.render_color`, which counts them in ``rendered.legend``) get a grey
    "no z (N rows)" patch."""
    import re

    import matplotlib

    plt = _plt()
    if rendered.z_range_nm is not None:
        z0, z1 = rendered.z_range_nm
        n = max(int(rendered.n_levels), 1)
        no_z = re.search(r"(\d+) without a finite z in grey", rendered.legend or "")
        fig, ax = plt.subplots(figsize=(5, 1.3))
        cmap = matplotlib.colors.ListedColormap(matplotlib.colormaps[rendered.cmap or "turbo"](np.linspace(0, 1, n)))
        norm = matplotlib.colors.BoundaryNorm(np.linspace(z0, z1, n + 1), n)
        cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=ax, orientation="horizontal")
        ticks = matplotlib.ticker.MaxNLocator(6).tick_values(z0, z1)
        cb.set_ticks(ticks[(ticks >= z0) & (ticks <= z1)])
        cb.set_label(f"z (nm), {z0:.0f} to {z1:.0f} ({rendered.cmap or 'turbo'}; beyond them the end colours)"
                     + (f"; scale bar {scale_bar_nm:g} nm" if scale_bar_nm else ""))
        if no_z is not None:  # grey in the image, and no colour of the scale
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color=(0.5, 0.5, 0.5), label=f"no z ({int(no_z.group(1))} rows)")],
                      loc="lower left", bbox_to_anchor=(0.0, 1.05), frameon=False, borderaxespad=0.0)
        return figure_png(fig)
    if rendered.colors:
        from matplotlib.patches import Patch

        fig, ax = plt.subplots(figsize=(4, 0.4 + 0.3 * len(rendered.colors)))
        ax.axis("off")
        handles = [Patch(color=rgb, label="rejected (color -1)" if k < 0 else f"colour {k}") for k, rgb in rendered.colors]
        ax.legend(handles=handles, loc="center", frameon=False,
                  title=f"scale bar {scale_bar_nm:g} nm" if scale_bar_nm else None)
        return figure_png(fig)
    if grey and scale_bar_nm:  # a grey image: the bar's length (and the pixel), which its pixels do not say
        fig, ax = plt.subplots(figsize=(4, 0.6))
        ax.axis("off")
        h, w = rendered.image.shape[:2]
        px = float(rendered.px_size_nm)
        ax.text(0.5, 0.5, f"scale bar (lower right) {scale_bar_nm:g} nm\n"
                f"pixel {px:g} nm, {w} x {h} px = {w * px / 1000:g} x {h * px / 1000:g} µm",
                ha="center", va="center", transform=ax.transAxes)
        return figure_png(fig)
    return None
