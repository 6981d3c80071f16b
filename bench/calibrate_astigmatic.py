"""Astigmatic Gaussian calibration (``plexloc.calibrate.astigmatic``): parameter recovery and self-consistency.

(a) beads rendered with plexloc's own AstigmaticPSF of known parameters (Poisson noise): fitted vs true
    parameters, the largest relative error of the width curves over +-600 nm, leave-one-bead-out z/xy errors;
(c) beads from an astigmatic scalar pupil-function PSF (:class:`PupilAstigmaticBeads`, 0.12 waves of
    astigmatism, EMCCD): a physically different, astigmatic PSF; curve-fit rms and leave-one-bead-out numbers;
(b) beads from psfmodels' vectorial PSF (no astigmatism: psfmodels has no aberration term, so sigma_x(z) and
    sigma_y(z) are nearly symmetric about focus and z is ambiguous in sign): how well the Gaussian defocus
    model describes a physical PSF (curve-fit rms) and the leave-one-bead-out numbers that result.

    PYTHONPATH=src python bench/calibrate_astigmatic.py [--json bench/calibrate_astigmatic.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from plexloc.calibrate.astigmatic import astigmatic_builder, calibrate_astigmatic
from plexloc.calibrate.synthetic import PupilAstigmaticBeads, VectorialBeads, render_bead_stacks, vectorial_focus_nm
from plexloc.calibrate.validate import leave_one_bead_out
from plexloc.camera.models import EMCCD
from plexloc.psf import AstigmaticPSF
from plexloc.psf.functional import astigmatic_sigma

TRUTH = dict(s0_nm=(115.0, 125.0), c_nm=(-280.0, 280.0), d_nm=(380.0, 380.0), A=(0.1, -0.1), B=(0.05, 0.05))
ZS = np.arange(-1000.0, 1001.0, 50.0)


def _grid(n, seed):
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    xy = np.array([(1000.0 + 1700.0 * i, 1000.0 + 1700.0 * j) for i in range(side) for j in range(side)])[:n]
    return xy + rng.uniform(-50, 50, xy.shape), rng, int(np.ceil((1000.0 + 1700.0 * side) / 100.0)) + 2


def _curves(p, z):
    d = p["d_nm"] if isinstance(p["d_nm"], (tuple, list)) else (p["d_nm"],) * 2
    return np.stack([astigmatic_sigma(torch.as_tensor(z), p["s0_nm"][i], p["c_nm"][i], d[i], p["A"][i], p["B"][i]).numpy() for i in (0, 1)], 1)


def own_model(n_beads: int, seed: int) -> dict:
    xy, rng, size = _grid(n_beads, seed)
    psf = AstigmaticPSF(px_size_nm=(100.0, 100.0), roi_px=15, **TRUTH)
    dz = rng.uniform(-30, 30, n_beads)
    n = len(xy)
    f = psf.render(
        torch.tensor(np.tile(xy[:, 0], len(ZS)), dtype=torch.float32),
        torch.tensor(np.tile(xy[:, 1], len(ZS)), dtype=torch.float32),
        torch.tensor((ZS[:, None] + dz[None]).ravel(), dtype=torch.float32),
        torch.full((n * len(ZS),), 5e4), torch.arange(len(ZS)).repeat_interleave(n), n_frames=len(ZS), frame_shape=(size, size),
    )
    stack = torch.poisson(f + 50.0, generator=torch.Generator().manual_seed(seed)).numpy()
    r = calibrate_astigmatic(stack, z_step_nm=50.0, px_size_nm=100.0, roi_px=15)
    z = np.linspace(-300, 300, 6001)
    t = _curves(TRUTH, z)
    z_cross = float(z[np.argmin(np.abs(t[:, 0] - t[:, 1]))])
    fit = r.psf.model_dump(exclude={"roi_px", "kind"})
    zz = np.linspace(-600, 600, 121)
    loo = leave_one_bead_out(r.spline, build_psf=astigmatic_builder())
    return {
        "fit": fit, "truth": TRUTH, "truth_crossing_nm": z_cross,
        "curve_max_rel_err": float(np.abs(_curves(fit, zz) / _curves(TRUTH, zz + z_cross) - 1).max()),
        "curve_fit_rms_nm": list(r.residual_nm), "n_beads_used": r.spline.summary["n_beads_used"],
        **{k: loo[k] for k in ("z_bias_nm", "z_rmse_nm", "xy_bias_nm", "n_fits")},
    }


def vectorial(n_beads: int, seed: int, model=None) -> dict:
    m = model or VectorialBeads()
    zf = vectorial_focus_nm(m) if model is None else 0.0
    xy, rng, size = _grid(n_beads, seed)
    cam = EMCCD()
    raws, _ = render_bead_stacks(m, xy_nm=xy, z_stage_nm=ZS, bead_dz_nm=rng.uniform(-30, 30, n_beads) + zf,
                                 frame_shape=(size, size), photons=2e5, bg=50.0, cameras=[cam], roi_px=15, seed=seed)
    stack = cam.to_photons(torch.as_tensor(raws[0])).numpy()
    r = calibrate_astigmatic(stack, z_step_nm=50.0, px_size_nm=100.0, roi_px=15)
    loo = leave_one_bead_out(r.spline, cameras=[cam], build_psf=astigmatic_builder())
    err = np.array(loo["fit_z_nm"]) - np.array(loo["true_z_nm"])
    tz = np.array(loo["true_z_nm"])
    return {
        "fit": r.psf.model_dump(exclude={"roi_px", "kind"}), "curve_fit_rms_nm": list(r.residual_nm),
        "n_beads_used": r.spline.summary["n_beads_used"],
        **{k: loo[k] for k in ("z_bias_nm", "z_rmse_nm", "xy_bias_nm", "n_fits")},
        "z_abs_rmse_nm": float(np.sqrt(np.mean((np.abs(np.array(loo["fit_z_nm"])) - np.abs(tz)) ** 2))),
        "z_rmse_100_600_nm": float(np.sqrt(np.mean(err[np.abs(tz) >= 100] ** 2))),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="bench/calibrate_astigmatic.json")
    ap.add_argument("--beads", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = {}
    def pupil(n, seed):
        return vectorial(n, seed, PupilAstigmaticBeads())

    for name, fn in (("own_astigmatic", own_model), ("vectorial", vectorial), ("pupil_astigmatic", pupil)):
        t = time.time()
        out[name] = fn(args.beads, args.seed)
        out[name]["seconds"] = time.time() - t
        r = out[name]
        print(f"{name}: s0 {np.round(r['fit']['s0_nm'], 1).tolist()} c {np.round(r['fit']['c_nm'], 1).tolist()} "
              f"d {np.round(r['fit']['d_nm'], 1).tolist()} A {np.round(r['fit']['A'], 3).tolist()} B {np.round(r['fit']['B'], 3).tolist()}; "
              f"curve rms {np.round(r['curve_fit_rms_nm'], 2).tolist()} nm; LOO z bias {r['z_bias_nm']:.1f} nm, z RMSE {r['z_rmse_nm']:.1f} nm, "
              f"xy bias {np.round(r['xy_bias_nm'], 2).tolist()} nm ({r['n_fits']} fits, {r['seconds']:.0f} s)")
    print(f"own model: truth {TRUTH}, crossing at {out['own_astigmatic']['truth_crossing_nm']:.1f} nm, "
          f"largest curve error {100 * out['own_astigmatic']['curve_max_rel_err']:.2f} % over +-600 nm")
    r = out["pupil_astigmatic"]
    print(f"pupil astigmatic: LOO z bias {r['z_bias_nm']:.1f} nm, z RMSE {r['z_rmse_nm']:.1f} nm")
    print(f"vectorial: |z| RMSE {out['vectorial']['z_abs_rmse_nm']:.1f} nm; z RMSE for |z| >= 100 nm {out['vectorial']['z_rmse_100_600_nm']:.1f} nm")
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
