"""Why the astigmatic MLE misses the axial CRLB at low signal (issue 5): single-window measurements.

    python bench/mle_axial_diagnostics.py [--n 3000] [--out bench/out/mle_axial_diagnostics.json]

Windows of 19 px, PSF and EMCCD of examples/3d_astigmatic.yaml, z uniform in +-500 nm, emitter within
+-0.5 px of the window centre. Ratios are RMSE_z / sqrt(mean CRLB_z²) (CRLB at the true parameters,
:func:`plexloc.evaluate.crlb.crlb`). Rows:

- ``camera``: EMCCD at N photons / bg b against an ideal (Poisson) camera at N/2, b/2 (the same
  Fisher information): an EMCCD-specific loss would show as a higher EMCCD ratio;
- ``starts``: three z starts against the true z as the only start; ``true start higher ll`` is the
  fraction of the windows where the two differ by > 10 nm in which the true-start fit has the higher
  likelihood (if ~0: the default fit finds the global maximum, the excess is the MLE's own);
- ``z-only MLE``: x, y, photons, bg known, z by exhaustive search of the exact Poisson likelihood
  (5 nm grid + parabola; the global maximum), ideal camera, against the z-only CRLB;
- ``bounds``: z bounded to +-750 nm against +-500 nm (the emitters' range).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plexloc.camera import EMCCD, IdealCamera  # noqa: E402
from plexloc.config import load_config  # noqa: E402
from plexloc.evaluate.crlb import crlb, fisher_information  # noqa: E402
from plexloc.mle.fit import FitChannel, fit_rois, noise_terms  # noqa: E402
from plexloc.mle.models import roi_model_for  # noqa: E402
from plexloc.simulation.simulator import Channel  # noqa: E402

ROI, PX = 19, 100.0
STARTS = [-333.3, 0.0, 333.3]


def windows(psf, camera, n, photons, bg, seed):
    g = torch.Generator().manual_seed(seed)
    x = (ROI / 2 + torch.rand(n, generator=g) - 0.5) * PX
    y = (ROI / 2 + torch.rand(n, generator=g) - 0.5) * PX
    z = -500.0 + 1000.0 * torch.rand(n, generator=g)
    img = psf.render(x, y, z, torch.full((n,), float(photons)), torch.arange(n), n_frames=n, frame_shape=(ROI, ROI)) + float(bg)
    return camera.to_photons(camera(img, generator=g)), {"x": x.double(), "y": y.double(), "z": z.double()}


def fit(psf, camera, data, **kw):
    k, off = noise_terms(camera.noise_variance_photons, data[0])
    kw.setdefault("z_starts_nm", STARTS)
    kw.setdefault("z_range_nm", (-750.0, 750.0))
    return fit_rois([data], [FitChannel(roi_model_for(psf))], origins=torch.zeros(data.shape[0], 1, 2, dtype=torch.int64),
                    k=[k], offset=[off], **kw)


def ratio(dz, cz) -> float:
    return float(np.sqrt(np.mean(np.asarray(dz) ** 2) / np.mean(np.asarray(cz) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mle_axial_diagnostics.json")
    a = ap.parse_args()
    cfg = load_config(ROOT / "examples" / "3d_astigmatic.yaml")
    psf = Channel.from_config(cfg.channels[0], px_size_nm=cfg.px_size_xy_nm, z_extent_nm=750.0).psf
    em, ideal = EMCCD(), IdealCamera()
    rows = []

    def bound(camera, t, photons, bg):
        return crlb(psf, camera, x_nm=t["x"], y_nm=t["y"], z_nm=t["z"], photons=float(photons), bg=float(bg))["crlb_z_nm"].numpy()

    for ph, bg, seed in ((1500, 50, 1), (1500, 120, 2)):
        d, t = windows(psf, em, a.n, ph, bg, seed)
        cz = bound(em, t, ph, bg)
        res = fit(psf, em, d)
        r_em = ratio(res.z_nm - t["z"], cz)
        d2, t2 = windows(psf, ideal, a.n, ph / 2, bg / 2, seed)
        r_id = ratio(fit(psf, ideal, d2).z_nm - t2["z"], bound(ideal, t2, ph / 2, bg / 2))
        rows.append({"test": "camera", "photons": ph, "bg": bg, "emccd": r_em, "ideal_half": r_id})
        # the true z as the only start (windows grouped by z rounded to 10 nm)
        zs = torch.round(t["z"] / 10) * 10
        z_true, ll_true = torch.zeros(a.n, dtype=torch.float64), torch.zeros(a.n, dtype=torch.float64)
        for zv in torch.unique(zs):
            sel = zs == zv
            r = fit(psf, em, d[sel], z_starts_nm=[float(zv)])
            z_true[sel], ll_true[sel] = r.z_nm, r.loglik
        differ = (z_true - res.z_nm).abs().numpy() > 10
        higher = float(np.mean((ll_true - res.loglik).numpy()[differ] > 1e-3)) if differ.any() else float("nan")
        rows.append({"test": "starts", "photons": ph, "bg": bg, "three_starts": r_em, "true_start": ratio(z_true - t["z"], cz),
                     "differ_frac": float(differ.mean()), "true_start_higher_ll": higher})
        r500 = ratio(fit(psf, em, d, z_range_nm=(-500.0, 500.0)).z_nm - t["z"], cz)
        rows.append({"test": "bounds", "photons": ph, "bg": bg, "pm750": r_em, "pm500": r500})
    # z-only MLE by exhaustive search, ideal camera
    model = roi_model_for(psf)
    grid = torch.arange(-750.0, 750.01, 5.0)
    G = grid.numel()
    for ph, bg, seed in ((600, 50, 9), (750, 60, 10), (1500, 25, 11)):
        d, t = windows(psf, ideal, a.n, ph, bg, seed)
        best = torch.zeros(a.n, dtype=torch.float64)
        for s0 in range(0, a.n, 100):
            sl = slice(s0, min(s0 + 100, a.n))
            n = d[sl].shape[0]
            ev = model((t["x"][sl] / PX).float().repeat_interleave(G), (t["y"][sl] / PX).float().repeat_interleave(G),
                       grid.repeat(n), torch.ones(n * G), ROI)
            mu = ph * ev.psf.reshape(n, G, ROI, ROI).double() + bg
            ll = (d[sl].double()[:, None] * torch.log(mu) - mu).sum(dim=(2, 3))
            i = ll.argmax(dim=1).clamp(1, G - 2)
            l0, l1, l2 = (ll.gather(1, (i + o)[:, None])[:, 0] for o in (-1, 0, 1))
            best[sl] = grid[i].double() + 5.0 * (0.5 * (l0 - l2) / (l0 - 2 * l1 + l2)).clamp(-1, 1)
        info, _ = fisher_information([(psf, ideal)], x_nm=t["x"], y_nm=t["y"], z_nm=t["z"],
                                     photons=torch.full((a.n,), float(ph), dtype=torch.float64), bg=torch.full((a.n,), float(bg), dtype=torch.float64))
        rows.append({"test": "z-only MLE", "photons": ph, "bg": bg, "ratio": ratio(best - t["z"], (1.0 / info[:, 2, 2]).sqrt())})
    for r in rows:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"n": a.n, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
