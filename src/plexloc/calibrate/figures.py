"""Figures written next to a calibration: PSF slices, z-calibration curve, transform residuals (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from plexloc.io._atomic import atomic_path


def write_figures(result, out: str | os.PathLike, *, loo: dict | None = None) -> list[Path]:
    """PNG figures beside ``out`` (``<stem>_psf.png``, ``<stem>_zcal.png``, ``<stem>_transform.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    cal = result.calibration
    written = []
    fig, axes = plt.subplots(cal.n_channels, 3, figsize=(11, 3.2 * cal.n_channels), squeeze=False)
    for c, ch in enumerate(cal.channels):
        v = ch.volume
        z0 = int(round(ch.z0_voxel))
        cy, cx = v.shape[1] // 2, v.shape[2] // 2
        # every panel in nm around the PSF's centre, to scale (the xz/yz panels were drawn with the aspect inverted,
        # px / dz instead of dz / px: a 20 nm step over 100 nm pixels made them 25x too narrow, slivers)
        px_x, px_y = cal.px_size_nm
        ext_z = ((-0.5 - ch.z0_voxel) * cal.dz_nm, (v.shape[0] - 0.5 - ch.z0_voxel) * cal.dz_nm)
        ext_x = ((-0.5 - ch.x0_voxel) * px_x, (v.shape[2] - 0.5 - ch.x0_voxel) * px_x)
        ext_y = ((-0.5 - ch.y0_voxel) * px_y, (v.shape[1] - 0.5 - ch.y0_voxel) * px_y)
        for ax, img, title, extent, labels in (
            (axes[c, 0], v[z0], f"ch{c} xy at z = 0", (*ext_x, ext_y[1], ext_y[0]), ("x (nm)", "y (nm)")),
            (axes[c, 1], v[:, cy, :], f"ch{c} xz through the centre", (*ext_x, *ext_z), ("x (nm)", "z (nm)")),
            (axes[c, 2], v[:, :, cx], f"ch{c} yz through the centre", (*ext_y, *ext_z), ("y (nm)", "z (nm)")),
        ):
            im = ax.imshow(img, cmap="magma", aspect="equal", extent=extent, interpolation="nearest",
                           origin="upper" if img is v[z0] else "lower")
            ax.set_title(title)
            # the scale of the colours: the share of the photons in a pixel, the window summing to 1 at z = 0
            # (spline.py); said once per row, beside its last panel: each colour bar's label lay over the next panel's
            # z axis label in the figure of two channels
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            if ax is axes[c, -1]:
                bar.set_label("share of the photons", fontsize=8)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
    fig.suptitle("colours: the share of the photons in a pixel, the window summing to 1 at z = 0", fontsize=9)
    fig.tight_layout()
    written.append(_save(fig, out.with_name(out.stem + "_psf.png")))
    plt.close(fig)
    if loo and loo.get("n_fits"):
        fig, ax = plt.subplots(figsize=(5, 4))
        tz, fz, who = np.array(loo["true_z_nm"]), np.array(loo["fit_z_nm"]), np.array(loo["bead"])
        beads = np.unique(who)
        for b in beads:
            s = who == b
            ax.plot(tz[s], fz[s], ".", ms=3, label=f"bead {b}")
        lim = [tz.min(), tz.max()]
        ax.plot(lim, lim, "k-", lw=0.8, label="fitted = stage")
        ax.set_xlabel("stage z of the bead (nm)")
        ax.set_ylabel("fitted z, leave-one-bead-out (nm)")
        # what is shown, and the numbers of PSF.json (the title gave the numbers alone)
        ax.set_title(f"z calibration, each bead fitted with the PSF of the others\n"
                     f"bias {loo['z_bias_nm']:.1f} nm, RMSE {loo['z_rmse_nm']:.1f} nm ({len(beads)} beads)", fontsize=10)
        if len(beads) <= 12:  # one entry per bead; more would hide the points
            ax.legend(fontsize=7, markerscale=3)
        fig.tight_layout()
        written.append(_save(fig, out.with_name(out.stem + "_zcal.png")))
        plt.close(fig)
    if result.transform_residual_nm:
        fig, ax = plt.subplots(figsize=(5, 4))
        residuals = result.transform_residual_nm
        width = 0.8 / len(residuals)  # the channels' bars side by side over each bead's number
        rms = []
        for c, res in enumerate(residuals, start=1):
            res = np.asarray(res, dtype=float)
            ax.bar(np.arange(len(res)) + width * (c - 1 - (len(residuals) - 1) / 2), res, width=width,
                   label=f"channel {c}")
            rms.append(f"ch{c} rms {np.sqrt(np.mean(res**2)):.2g}, max {res.max():.2g} nm" if res.size else f"ch{c}: none")
        # whole beads on the axis (it read 0.5, 1.5, ...), and room above the bars for the legend (it covered them)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylim(0, 1.3 * max((float(np.max(r)) for r in residuals if len(r)), default=1.0) or 1.0)
        ax.set_xlabel("bead")
        ax.set_ylabel("transform residual (nm)")
        ax.set_title("residual of each bead from the fitted channel transform\n" + "; ".join(rms), fontsize=9)
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, out.with_name(out.stem + "_transform.png")))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def write_sigma_figure(result, out: str | os.PathLike) -> Path:
    """``<stem>_sigma.png``: the averaged bead's per-slice widths and the fitted astigmatic defocus curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from plexloc.psf.functional import astigmatic_sigma

    out = Path(out)
    p = result.psf
    z = np.linspace(result.z_nm.min(), result.z_nm.max(), 200)
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, (name, col) in enumerate((("x", "C0"), ("y", "C1"))):
        d = p.d_nm if isinstance(p.d_nm, float) else p.d_nm[i]
        curve = astigmatic_sigma(torch.as_tensor(z), p.s0_nm[i], p.c_nm[i], d, p.A[i], p.B[i]).numpy()
        ax.plot(result.z_nm, result.sigma_nm[:, i], ".", color=col, label=f"sigma_{name} (slices)")
        ax.plot(z, curve, "-", color=col, lw=1, label=f"fit, rms {result.residual_nm[i]:.1f} nm")
    ax.set_xlabel("z (nm)")
    ax.set_ylabel("Gaussian width (nm)")
    ax.set_title("astigmatic defocus curves: the averaged bead's widths", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, out.with_name(out.stem + "_sigma.png"))
    plt.close(fig)
    return path
