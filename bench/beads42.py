"""Session 42: what a double bead that the calibration's checks miss costs, and the check that catches it.

    # cost: calibrate_spline from 20 beads (clean) and from 20 of which 1, 2 or 4 are pairs (1.5, 2, 2.5 px apart,
    # 1:1 and 1:2); each calibration scored by MLE fits (its spline) of single emitters rendered with the TRUE PSF
    OMP_NUM_THREADS=1 python bench/beads42.py cost --out bench/beads42_cost.json
    # false alarms: clean 20-bead sets (Gaussian / pupil PSF, Poisson / EMCCD-like noise, dim / bright, seeds)
    OMP_NUM_THREADS=1 python bench/beads42.py clean --out bench/beads42_clean.json
    # everything (cost, then false alarms), one JSON (~10 min, one thread)
    OMP_NUM_THREADS=1 python bench/beads42.py all --out bench/beads42.json
    # the calibrations' own spread: dim Gaussian beads, 4 seeds, clean against 4 pairs
    OMP_NUM_THREADS=1 python bench/beads42.py cost --models gauss --levels dim --seeds 1,2,3,4 \
        --configs 0:0:1,4:1.5:1,4:2.5:1 --out bench/beads42_seeds.json
    # print the table of a JSON file; before against after
    python bench/beads42.py table --out bench/beads42.json
    python bench/beads42.py compare --before bench/beads42_before.json --out bench/beads42.json

Run the "before" numbers with PYTHONPATH pointing at the old source tree.

Beads: 20 on a 5 x 4 grid 20 px apart (100 nm pixels, 33 slices 50 nm apart over +-800 nm, bg 20 photons/px,
Poisson), random sub-pixel positions, all at the same z; Gaussian astigmatic (plexloc's AstigmaticPSF defaults,
2e4 photons) or the scalar pupil-function astigmatic PSF of plexloc.calibrate.synthetic (1e5 photons). A pair
replaces bead i by two beads centred on it, ``sep`` px apart at angle 0, 90, 45, 135 deg (doubles 1-4: one pair
along x -- the worst case for an astigmatic z -- then one along y, then diagonals), the first with the single's
photons, the second with ``ratio`` times that.

Score: 600 single emitters (24 at each z of -600..600 nm, 50 nm steps, random sub-pixel x, y), 5000 photons,
bg 20, Poisson, rendered with the TRUE PSF (not the calibration), fitted by plexloc.mle.fit_rois with the
calibrated spline (13 px windows). Bias: mean error (x, y, z) over all fits, and the RMS over z of the per-z mean
error (a z-dependent bias that averages out); RMSE against the CRLB of the clean calibration's fits of the same
emitters. Diagnostics: calibrate.validate.leave_one_bead_out (8 beads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)
BG = 20.0
ROI = 15
NX, NY = 5, 4
SPACING = 20
PHOTONS = {"gauss": 2e4, "pupil": 1e5}
TEST_Z = np.arange(-600.0, 601.0, 50.0)
TEST_PER_Z = 24
TEST_PHOTONS = 5000.0
TEST_ROI = 13
ANGLES = (0.0, 90.0, 45.0, 135.0)


def grid_positions(seed: int, n: int = NX * NY) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.array([((15 + SPACING * (i % NX)) * PX, (15 + SPACING * (i // NX)) * PX) for i in range(n)])
    return g + rng.uniform(-50, 50, g.shape)


def frame_shape() -> tuple[int, int]:
    return (SPACING * NY + 10, SPACING * NX + 10)


def field(model: str, *, n_double: int = 0, sep_px: float = 2.0, ratio: float = 1.0, seed: int = 0,
          photons: float | None = None, noise: str = "poisson", double_idx=(3, 11, 16, 7)) -> tuple[np.ndarray, list]:
    """One noisy bead stack (photons) and the emitters [(x, y, photons)]."""
    from plexloc.calibrate.synthetic import bead_field

    ph = PHOTONS[model] if photons is None else photons
    xy = grid_positions(seed)
    em = []
    for i, (x, y) in enumerate(xy):
        if i in double_idx[:n_double]:
            a = np.radians(ANGLES[list(double_idx).index(i)])
            h = sep_px * PX / 2
            em += [(x - h * np.cos(a), y - h * np.sin(a), ph), (x + h * np.cos(a), y + h * np.sin(a), ph * ratio)]
        else:
            em.append((x, y, ph))
    mu = bead_field(model, em, ZS, frame_shape()) + BG
    rng = np.random.default_rng(10_000 + seed)
    counts = rng.poisson(mu).astype(np.float64)
    if noise == "emccd":
        counts = np.where(counts > 0, rng.gamma(np.maximum(counts, 1e-9), 1.0), 0.0)
    return counts, em


_TEST_CACHE: dict = {}


def test_emitters(model: str, seed: int = 123):
    """(windows (N, R, R) photons with Poisson noise, origins (N, 2) (row, col), truth (N, 3) x, y, z nm)."""
    key = (model, seed)
    if key in _TEST_CACHE:
        return _TEST_CACHE[key]
    from plexloc.calibrate.synthetic import true_windows

    rng = np.random.default_rng(seed)
    z = np.repeat(TEST_Z, TEST_PER_Z)
    x = (20 + rng.uniform(0, 1, len(z))) * PX
    y = (20 + rng.uniform(0, 1, len(z))) * PX
    mu, origins = true_windows(model, x, y, z, TEST_ROI)
    win = rng.poisson(mu * TEST_PHOTONS + BG).astype(np.float64)
    out = (win, origins, np.column_stack([x, y, z]))
    _TEST_CACHE[key] = out
    return out


def score(cal, model: str) -> dict:
    from plexloc.mle import FitChannel, fit_rois
    from plexloc.mle.models import roi_model_for

    win, origins, truth = test_emitters(model)
    ch = FitChannel(model=roi_model_for(cal.psf(0)))
    fit = fit_rois([torch.as_tensor(win, dtype=torch.float32)], [ch],
                   origins=torch.as_tensor(origins[:, None, :], dtype=torch.int64))
    est = np.column_stack([fit.x_nm.numpy(), fit.y_nm.numpy(), fit.z_nm.numpy()])
    crlb = np.column_stack([fit.crlb[k].numpy() for k in ("x_nm", "y_nm", "z_nm")])
    return {"err": est - truth, "crlb": crlb, "converged": fit.converged.numpy().astype(bool)}


def summarize(s: dict, ref_crlb: np.ndarray) -> dict:
    err = s["err"]
    zt = np.repeat(TEST_Z, TEST_PER_Z)
    per_z = np.array([err[zt == z].mean(axis=0) for z in TEST_Z])  # (nz, 3)
    rmse = np.sqrt(np.mean(err**2, axis=0))
    crlb = np.sqrt(np.mean(ref_crlb**2, axis=0))
    return {
        "bias_x_nm": float(err[:, 0].mean()), "bias_y_nm": float(err[:, 1].mean()), "bias_z_nm": float(err[:, 2].mean()),
        "bias_lat_zrms_nm": float(np.sqrt(np.mean(per_z[:, 0] ** 2 + per_z[:, 1] ** 2))),
        "bias_z_zrms_nm": float(np.sqrt(np.mean(per_z[:, 2] ** 2))),
        "bias_lat_zmax_nm": float(np.max(np.hypot(per_z[:, 0], per_z[:, 1]))),
        "bias_z_zmax_nm": float(np.max(np.abs(per_z[:, 2]))),
        "rmse_lat_nm": float(np.sqrt(rmse[0] ** 2 + rmse[1] ** 2)), "rmse_z_nm": float(rmse[2]),
        "crlb_lat_nm": float(np.sqrt(crlb[0] ** 2 + crlb[1] ** 2)), "crlb_z_nm": float(crlb[2]),
        "rmse_over_crlb_lat": float(np.sqrt(rmse[0] ** 2 + rmse[1] ** 2) / np.sqrt(crlb[0] ** 2 + crlb[1] ** 2)),
        "rmse_over_crlb_z": float(rmse[2] / crlb[2]),
        "converged": float(s["converged"].mean()),
    }


def calibrate(stack):
    from plexloc.calibrate.spline import calibrate_spline
    from plexloc.errors import InputError

    try:
        return calibrate_spline([stack], z_step_nm=DZ, px_size_nm=PX, roi_px=ROI), None
    except InputError as e:
        return None, str(e)


def _which_rejected(res, em_double_centres) -> list[str]:
    """The reason each double got from the calibration ('' = used)."""
    out = []
    sel = res.selections[0]
    for x, y in em_double_centres:
        d = np.hypot(sel.cols - (x / PX - 0.5), sel.rows - (y / PX - 0.5))
        i = int(np.argmin(d)) if len(d) else -1
        out.append("not found" if i < 0 or d[i] > 3 else str(sel.reason[i]))
    return out


#: bead brightness levels of the cost table: times PHOTONS[model]
LEVELS = {"bright": 1.0, "dim": 0.15}


def run_cost(models=("gauss", "pupil"), seeds=(0,), validate=True, levels=("bright",), configs=None,
             noise="poisson") -> list[dict]:
    from plexloc.calibrate.validate import leave_one_bead_out

    rows = []
    if configs is None:
        configs = [(0, 0.0, 1.0)] + [(n, s, r) for n in (1, 4) for s in (1.5, 2.0, 2.5) for r in (1.0, 0.5)]
    for model, level, seed in [(m, lv, sd) for m in models for lv in levels for sd in seeds]:
            ref = None
            for n, sep, r in configs:
                t0 = time.perf_counter()
                stack, em = field(model, n_double=n, sep_px=sep, ratio=r, seed=seed,
                                  photons=PHOTONS[model] * LEVELS[level], noise=noise)
                xy = grid_positions(seed)
                res, err = calibrate(stack)
                row = dict(model=model, level=level, noise=noise, seed=seed, n_double=n, sep_px=sep, ratio=r)
                if res is None:
                    row.update(error=err)
                    rows.append(row)
                    print(f"{model} {level} seed {seed} doubles {n} sep {sep} 1:{1 / r:g}: ERROR {err}", flush=True)
                    continue
                idx = [3, 11, 16, 7][:n]
                fates = _which_rejected(res, [xy[i] for i in idx])
                s = score(res.calibration, model)
                if ref is None:
                    ref = s["crlb"]
                row.update(summarize(s, ref))
                row.update(n_used=int(res.summary["n_beads_used"][0]), doubles_fate=fates,
                           rejected=res.summary["rejected"][0],
                           rejected_beads=res.summary["rejected_beads"][0],
                           z0_voxel=float(res.calibration.channels[0].z0_voxel))
                if validate:
                    v = leave_one_bead_out(res)
                    row.update(lobo_z_rmse_nm=v["z_rmse_nm"], lobo_z_bias_nm=v["z_bias_nm"],
                               lobo_xy_rmse_nm=float(np.hypot(*v["xy_rmse_nm"])))
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(f"{model} {level} seed {seed} doubles {n} sep {sep} 1:{1 / r:g}: used {row['n_used']} fates {fates} "
                      f"bias lat {row['bias_x_nm']:+.1f},{row['bias_y_nm']:+.1f} z {row['bias_z_nm']:+.1f} "
                      f"(z-rms lat {row['bias_lat_zrms_nm']:.1f} z {row['bias_z_zrms_nm']:.1f}) "
                      f"rmse lat {row['rmse_lat_nm']:.1f} z {row['rmse_z_nm']:.1f} "
                      f"(/crlb {row['rmse_over_crlb_lat']:.3f} {row['rmse_over_crlb_z']:.3f}) "
                      f"lobo z {row.get('lobo_z_rmse_nm', float('nan')):.1f} {row['seconds']:.1f}s", flush=True)
    return rows


def run_clean(models=("gauss", "pupil"), noises=("poisson", "emccd"), levels=("bright", "dim"), seeds=(1, 2, 3)) -> list[dict]:
    rows = []
    for model in models:
        for noise in noises:
            for level in levels:
                for seed in seeds:
                    ph = PHOTONS[model] * (1.0 if level == "bright" else 0.15)
                    stack, _ = field(model, seed=seed, photons=ph, noise=noise)
                    t0 = time.perf_counter()
                    res, err = calibrate(stack)
                    row = dict(model=model, noise=noise, level=level, seed=seed, photons=ph)
                    if res is None:
                        row.update(error=err, n_used=0)
                    else:
                        row.update(n_used=int(res.summary["n_beads_used"][0]), rejected=res.summary["rejected"][0],
                                   rejected_beads=res.summary["rejected_beads"][0])
                    row["seconds"] = time.perf_counter() - t0
                    rows.append(row)
                    print(f"{model} {noise} {level} seed {seed}: used {row['n_used']} of 20 "
                          f"{row.get('rejected', row.get('error'))} {row['seconds']:.1f}s", flush=True)
    return rows


def table_cost(rows: list[dict]) -> None:
    print("| PSF | doubles | sep px | ratio | used | the doubles' fate | bias x/y/z nm | z-rms bias lat/z nm | "
          "RMSE lat/z nm | RMSE/CRLB lat/z | LOBO z RMSE nm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['n_double']} | {r['sep_px']:g} | 1:{1 / r['ratio']:g} | error: {r['error'][:60]} |")
            continue
        fate = ", ".join(f or "used" for f in r["doubles_fate"]) or "-"
        print(f"| {r['model']} | {r['n_double']} | {r['sep_px']:g} | 1:{1 / r['ratio']:g} | {r['n_used']} | {fate} | "
              f"{r['bias_x_nm']:+.1f} / {r['bias_y_nm']:+.1f} / {r['bias_z_nm']:+.1f} | "
              f"{r['bias_lat_zrms_nm']:.1f} / {r['bias_z_zrms_nm']:.1f} | {r['rmse_lat_nm']:.1f} / {r['rmse_z_nm']:.1f} | "
              f"{r['rmse_over_crlb_lat']:.3f} / {r['rmse_over_crlb_z']:.3f} | {r.get('lobo_z_rmse_nm', float('nan')):.1f} |")


def table_clean(rows: list[dict]) -> None:
    n_sets = len(rows)
    n_rej = sum(20 - r["n_used"] for r in rows)
    print(f"clean sets: {n_sets}, beads rejected {n_rej} of {20 * n_sets} ({100 * n_rej / max(20 * n_sets, 1):.2f} %)")
    for r in rows:
        if r["n_used"] != 20:
            print(f"  {r['model']} {r['noise']} {r['level']} seed {r['seed']}: {r.get('rejected', r.get('error'))}")


def compare(before_path: str, after_path: str) -> None:
    """Before / after, case by case: the doubles' fate, z RMSE, per-z bias (rms over z) and lateral RMSE."""
    a, b = json.load(open(before_path)), json.load(open(after_path))
    print("| PSF | beads | doubles | sep px | ratio | used | fate before -> after | z RMSE nm | per-z z bias rms nm | "
          "lateral RMSE nm |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r0, r1 in zip(a.get("cost", []), b.get("cost", [])):
        if "error" in r0 or "error" in r1:
            continue
        f0 = ", ".join(sorted({f or "used" for f in r0["doubles_fate"]})) or "-"
        f1 = ", ".join(sorted({f or "used" for f in r1["doubles_fate"]})) or "-"
        print(f"| {r0['model']} | {r0.get('level', 'bright')} | {r0['n_double']} | {r0['sep_px']:g} | 1:{1 / r0['ratio']:g} | "
              f"{r0['n_used']} -> {r1['n_used']} | {f0} -> {f1} | {r0['rmse_z_nm']:.1f} -> {r1['rmse_z_nm']:.1f} | "
              f"{r0['bias_z_zrms_nm']:.1f} -> {r1['bias_z_zrms_nm']:.1f} | {r0['rmse_lat_nm']:.1f} -> {r1['rmse_lat_nm']:.1f} |")
    for name, d in (("before", a), ("after", b)):
        if d.get("clean"):
            n_rej = sum(20 - r["n_used"] for r in d["clean"])
            print(f"clean sets {name}: {len(d['clean'])}, beads rejected {n_rej} of {20 * len(d['clean'])}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["cost", "clean", "all", "table", "compare"])
    ap.add_argument("--before", default=None, help="compare: the before file (--out: the after file)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--models", default="gauss,pupil")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--levels", default="bright,dim")
    ap.add_argument("--configs", default=None, help="n_double:sep_px:ratio,... (default: 0 doubles, then 1 and 4 "
                    "doubles at 1.5, 2, 2.5 px, 1:1 and 1:2)")
    ap.add_argument("--validate", action="store_true", help="also leave_one_bead_out (8 beads) per calibration")
    a = ap.parse_args(argv)
    if a.what == "compare":
        compare(a.before, a.out)
        return 0
    if a.what == "table":
        d = json.load(open(a.out))
        if d.get("cost"):
            table_cost(d["cost"])
        if d.get("clean"):
            table_clean(d["clean"])
        return 0
    models = tuple(a.models.split(","))
    configs = None if a.configs is None else [
        (int(c.split(":")[0]), float(c.split(":")[1]), float(c.split(":")[2])) for c in a.configs.split(",")]
    t0 = time.perf_counter()
    out: dict = {"python": sys.version.split()[0]}
    if a.what in ("cost", "all"):
        out["cost"] = run_cost(models, tuple(int(s) for s in a.seeds.split(",")), validate=a.validate,
                               levels=tuple(a.levels.split(",")), configs=configs)
    if a.what in ("clean", "all"):
        out["clean"] = run_clean(models)
    out["total_s"] = time.perf_counter() - t0
    if out.get("cost"):
        table_cost(out["cost"])
    if out.get("clean"):
        table_clean(out["clean"])
    print(f"total {out['total_s']:.0f} s")
    if a.out:
        json.dump(out, open(a.out, "w"), indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
