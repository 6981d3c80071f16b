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
    fig, axes = plt.subplots(cal.n_channels, 3, figsize=(9, 3 * cal.n_channels), squeeze=False)
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
            (axes[c, 1], v[:, cy, :], f"ch{c} xz", (*ext_x, *ext_z), ("x (nm)", "z (nm)")),
            (axes[c, 2], v[:, :, cx], f"ch{c} yz", (*ext_y, *ext_z), ("y (nm)", "z (nm)")),
        ):
            ax.imshow(img, cmap="magma", aspect="equal", extent=extent, interpolation="nearest",
                      origin="upper" if img is v[z0] else "lower")
            ax.set_title(title)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
    fig.tight_layout()
    written.append(_save(fig, out.with_name(out.stem + "_psf.png")))
    plt.close(fig)
    if loo and loo.get("n_fits"):
        fig, ax = plt.subplots(figsize=(5, 4))
        tz, fz, who = np.array(loo["true_z_nm"]), np.array(loo["fit_z_nm"]), np.array(loo["bead"])
        for b in np.unique(who):
            s = who == b
            ax.plot(tz[s], fz[s], ".", ms=3)
        lim = [tz.min(), tz.max()]
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set_xlabel("stage z of the bead (nm)")
        ax.set_ylabel("fitted z, leave-one-bead-out (nm)")
        ax.set_title(f"bias {loo['z_bias_nm']:.1f} nm, RMSE {loo['z_rmse_nm']:.1f} nm")
        fig.tight_layout()
        written.append(_save(fig, out.with_name(out.stem + "_zcal.png")))
        plt.close(fig)
    if result.transform_residual_nm:
        fig, ax = plt.subplots(figsize=(5, 4))
        for c, res in enumerate(result.transform_residual_nm, start=1):
            ax.bar(np.arange(len(res)) + 0.4 * (c - 1), res, width=0.4, label=f"channel {c}")
        ax.set_xlabel("bead")
        ax.set_ylabel("transform residual (nm)")
        ax.legend()
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
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, out.with_name(out.stem + "_sigma.png"))
    plt.close(fig)
    return path
