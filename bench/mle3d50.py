"""Session 50, helper mle3d: ``plexloc fit --method mle`` on dense 3D astigmatic movies, and its rows on the z bound.

``examples/3d_astigmatic.yaml`` (64x64 px of 100 nm, EMCCD, astigmatic Gaussian) is simulated with its emitters over
z -600..600 nm (the example's own range, and so the fit's z bounds, is -500..500) at 0.1, 0.5 and 1 active emitters
per um^2 and fitted with ``plexloc fit --method mle`` under the example's config. Per density: rows, rows on the z bound
(``at_bound & 2``) and how many of those are truly inside the range (|z_true| < 500) or beyond it, converged; the
scores (JI, RMSE lat/ax, efficiency; SMLM 2016 matching, 250 nm lateral / 500 nm axial) of all rows, of the rows off
the bound and of the rows on it; the rows on the bound split by their nearest true neighbour (crowded spots); their
z error against their ``crlb_z_nm`` (z-score); the fit's own summary lines that mention the bound.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/mle3d50.py --out bench/mle3d50.json`` (CPU, one core; about 2 min on
the 2-core session-50 machine, shared: 600 frames at 0.1, 200 at 0.5 and 1 per um^2); ``--fit-z-nm 600 --out
bench/mle3d50_fit600.json``: the fit's range widened to the simulated one (the rows left on the bound are not beyond it).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from plexloc.evaluate.matching import match
from plexloc.io.tables import read_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "3d_astigmatic.yaml"
Z_FIT = 500.0


def plexloc(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "plexloc.cli.main", *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"plexloc {' '.join(args)}: {run.stderr}")
    return run.stdout + run.stderr


def scores(truth, pred, sel_pred=None) -> dict:
    """JI, RMSE and efficiencies of ``pred`` (rows ``sel_pred`` of it) against the whole truth."""
    if sel_pred is not None:
        pred = pred[np.asarray(sel_pred, bool)]
    m = match(truth, pred, dim=3)
    tp = int(m.n_tp)
    fp, fn = len(pred) - tp, len(truth) - tp
    ji = 100.0 * tp / max(tp + fp + fn, 1)
    d = {k: np.asarray(pred[k], float)[m.tp_pred] - np.asarray(truth[k], float)[m.tp_truth] for k in ("x_nm", "y_nm", "z_nm")}
    lat = float(np.sqrt(np.mean(d["x_nm"] ** 2 + d["y_nm"] ** 2))) if tp else float("nan")
    ax = float(np.sqrt(np.mean(d["z_nm"] ** 2))) if tp else float("nan")
    e_lat = 100 - np.sqrt((100 - ji) ** 2 + lat**2)
    e_ax = 100 - np.sqrt((100 - ji) ** 2 + (0.5 * ax) ** 2)
    return {"rows": len(pred), "tp": tp, "jaccard": ji, "rmse_lat": lat, "rmse_ax": ax, "eff_lat": float(e_lat),
            "eff_ax": float(e_ax), "eff_3d": float((e_lat + e_ax) / 2)}


def analyse(truth, fit, summary: str) -> dict:
    n = len(fit)
    zb = (np.asarray(fit["at_bound"], np.int64) & 2) != 0
    conv = np.asarray(fit["converged"], bool)
    m = match(truth, fit, dim=3)
    zt_all = np.asarray(truth["z_nm"], float)
    tx, ty = np.asarray(truth["x_nm"], float), np.asarray(truth["y_nm"], float)
    fr = np.asarray(truth["frame"], np.int64)
    # nearest true neighbour in the same frame (nm), per truth row
    nn = np.full(len(truth), np.inf)
    for f in np.unique(fr):
        i = np.flatnonzero(fr == f)
        if len(i) > 1:
            dd = np.hypot(tx[i, None] - tx[None, i], ty[i, None] - ty[None, i])
            np.fill_diagonal(dd, np.inf)
            nn[i] = dd.min(axis=1)
    matched = np.zeros(n, bool)
    matched[m.tp_pred] = True
    zt = np.full(n, np.nan)
    zt[m.tp_pred] = zt_all[m.tp_truth]
    nnp = np.full(n, np.nan)
    nnp[m.tp_pred] = nn[m.tp_truth]
    zf = np.asarray(fit["z_nm"], float)
    err_lat = np.full(n, np.nan)
    err_lat[m.tp_pred] = np.hypot(np.asarray(fit["x_nm"], float)[m.tp_pred] - tx[m.tp_truth],
                                  np.asarray(fit["y_nm"], float)[m.tp_pred] - ty[m.tp_truth])
    err_z = zf - zt
    out = {"rows": n, "on_z_bound": int(zb.sum()), "on_z_bound_pct": 100.0 * zb.sum() / max(n, 1),
           "on_z_bound_converged": int((zb & conv).sum()), "converged_pct": 100.0 * conv.mean(),
           "on_bound_unmatched": int((zb & ~matched).sum())}
    inside = matched & (np.abs(zt) < Z_FIT)
    beyond = matched & (np.abs(zt) >= Z_FIT)
    out["on_bound_true_inside"] = int((zb & inside).sum())
    out["on_bound_true_beyond"] = int((zb & beyond).sum())
    out["matched_true_beyond"] = int(beyond.sum())
    out["true_beyond_on_bound_pct"] = 100.0 * (zb & beyond).sum() / max(beyond.sum(), 1)
    for tag, sel in (("on_bound_true_inside", zb & inside), ("on_bound_true_beyond", zb & beyond),
                     ("off_bound", ~zb & matched)):
        out[f"{tag}_rmse_lat"] = float(np.sqrt(np.nanmean(err_lat[sel] ** 2))) if sel.any() else None
        out[f"{tag}_median_abs_dz"] = float(np.median(np.abs(err_z[sel]))) if sel.any() else None
    # the true z of the rows on the bound that are truly inside: how far inside?
    zin = np.abs(zt[zb & inside])
    out["on_bound_inside_true_absz_hist"] = {f"{lo}-{lo + 100}": int(((zin >= lo) & (zin < lo + 100)).sum())
                                            for lo in range(0, int(Z_FIT), 100)}
    # crowding: nearest true neighbour of the matched rows, on the bound and off it
    for tag, sel in (("on_bound", zb & matched), ("off_bound", ~zb & matched)):
        v = nnp[sel]
        out[f"{tag}_nn_lt_500nm_pct"] = 100.0 * float(np.mean(v < 500)) if sel.any() else None
        out[f"{tag}_nn_median_nm"] = float(np.median(v)) if sel.any() else None
    # the CRLB of the rows on the bound against their z error
    cz = np.asarray(fit["crlb_z_nm"], float)
    for tag, sel in (("on_bound", zb & matched), ("off_bound", ~zb & matched)):
        if sel.any():
            fin = sel & np.isfinite(cz)
            out[f"{tag}_crlb_z_nan_pct"] = 100.0 * float(np.mean(~np.isfinite(cz[sel])))
            out[f"{tag}_crlb_z_median"] = float(np.median(cz[fin])) if fin.any() else None
            out[f"{tag}_zscore_rms"] = float(np.sqrt(np.mean((err_z[fin] / cz[fin]) ** 2))) if fin.any() else None
    # the lateral CRLB against the lateral error (rms z-score and median |error| / CRLB), off the bound and on it
    # (true z inside the range / beyond it)
    for a in ("x", "y"):
        e = np.full(n, np.nan)
        e[m.tp_pred] = np.asarray(fit[f"{a}_nm"], float)[m.tp_pred] - np.asarray(truth[f"{a}_nm"], float)[m.tp_truth]
        c = np.asarray(fit[f"crlb_{a}_nm"], float)
        for tag, sel in (("off_bound", ~zb & matched), ("on_bound_true_inside", zb & inside),
                         ("on_bound_true_beyond", zb & beyond)):
            if sel.any():
                out[f"{tag}_{a}_zscore_rms"] = float(np.sqrt(np.mean((e[sel] / c[sel]) ** 2)))
                out[f"{tag}_{a}_median_abs_over_crlb"] = float(np.median(np.abs(e[sel]) / c[sel]))
    out["scores_all"] = scores(truth, fit)
    out["scores_off_bound"] = scores(truth, fit, ~zb)
    out["scores_truth_inside_vs_all_rows"] = scores(truth[np.abs(zt_all) < Z_FIT], fit)
    out["summary_bound_lines"] = [ln for ln in summary.splitlines() if "bound" in ln]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "mle3d50.json")
    ap.add_argument("--densities", type=float, nargs="+", default=(0.1, 0.5, 1.0))
    ap.add_argument("--frames", type=int, nargs="+", default=(600, 200, 200))
    ap.add_argument("--fit-args", nargs="*", default=[], help="extra arguments of plexloc fit")
    ap.add_argument("--keep", type=Path, default=None, help="keep the movies and fits in this folder")
    ap.add_argument("--fit-z-nm", type=float, default=500.0,
                    help="the fit's z range +-this (the example's emitters.z_range_nm; 600: the simulated range)")
    args = ap.parse_args()
    global Z_FIT
    Z_FIT = args.fit_z_nm
    result = {"machine": platform.platform(), "python": platform.python_version(), "fit_args": args.fit_args,
              "fit_z_range_nm": [-Z_FIT, Z_FIT], "densities": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load(EXAMPLE.read_text())
        cfg["emitters"]["z_range_nm"] = [-600.0, 600.0]
        cfg_path = work / "sim600.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        fit_cfg = yaml.safe_load(EXAMPLE.read_text())
        fit_cfg["emitters"]["z_range_nm"] = [-Z_FIT, Z_FIT]
        fit_path = work / f"fit{Z_FIT:g}.yaml"
        fit_path.write_text(yaml.safe_dump(fit_cfg))
        for density, frames in zip(args.densities, args.frames):
            sim = work / f"sim_{density:g}"
            if not (sim / "movie.tif").exists():
                plexloc("simulate", str(cfg_path), "--frames", str(frames), "--out", str(sim), "--density",
                        f"{density:g}", "--seed", "1")
            t0 = time.perf_counter()
            summary = plexloc("fit", str(sim / "movie.tif"), "--method", "mle", "--config", str(fit_path), "--out",
                              str(sim / f"mle{Z_FIT:g}.csv"), *args.fit_args)
            dt = time.perf_counter() - t0
            truth, fit = read_table(sim / "truth.csv"), read_table(sim / f"mle{Z_FIT:g}.csv")
            row = {"frames": frames, "truth_rows": len(truth), "fit_seconds": dt, **analyse(truth, fit, summary)}
            result["densities"][f"{density:g}"] = row
            s = row["scores_all"]
            print(f"{density:g}/um2: {row['rows']} rows, {row['on_z_bound']} on the z bound ({row['on_z_bound_pct']:.1f} %;"
                  f" true z inside {row['on_bound_true_inside']}, beyond {row['on_bound_true_beyond']}, unmatched "
                  f"{row['on_bound_unmatched']}); JI {s['jaccard']:.1f} RMSE lat {s['rmse_lat']:.1f} ax {s['rmse_ax']:.1f}"
                  f" E3D {s['eff_3d']:.1f}; off bound: RMSE lat {row['scores_off_bound']['rmse_lat']:.1f}; {dt:.0f} s",
                  flush=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
