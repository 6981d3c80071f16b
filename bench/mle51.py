"""Session 51, helper mle: dense 3D MLE tables refined with their neighbours modelled, and the fit's z margin.

``examples/3d_astigmatic.yaml`` is simulated as bench/mle3d50.py does (emitters over z -600..600 nm, seed 1, the
example's fit range -500..500 nm) and fitted with :func:`plexloc.mle.fit_movie`. Each table is then scored as it is
and after :func:`plexloc.mle.refine_frames` (the frame's other rows as a known term of each window's model, what
``plexloc fit --refine-mle`` does to a network's table; ``mle_refine_mle``: the same within the fit,
``fit_movie(refine_mle=True)``, as ``plexloc fit --method mle --refine-mle`` since session 51; ``mle_refined_isolated``:
refitted without the neighbours, a control), and the fit is repeated with ``z_margin_nm`` 100 (bounds
+-600 nm: the simulated range). Per variant: rows, rows on the z bound (|z| within 0.5 nm of the fit's bound: before
session 51 refine did not rewrite ``at_bound``), JI, RMSE lat / ax, E3D (SMLM 2016 matching, 250 / 500 nm), the lateral RMSE of the
rows off the bound, and of the rows on the bound whose true z is inside -500..500; the rows on the bound's median
lateral |error| / crlb_x (point 5 of the brief). ``--split``: a two-emitter trial on the rows held on the z bound
(:func:`split_held`).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/mle51.py --split --out bench/mle51.json`` (CPU, one thread; about a minute on the
2-core shared session-51 machine: 200 frames at 0.5 and 1 per um^2).
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
import tifffile
import yaml

from plexloc.config import load_config
from plexloc.evaluate.matching import match
from plexloc.io.tables import read_table
from plexloc.mle import fit_movie, refine_frames
from plexloc.mle.pipeline import MLEFitter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "3d_astigmatic.yaml"
Z_FIT = 500.0


def scores(truth, pred, sel=None) -> dict:
    if sel is not None:
        pred = pred[np.asarray(sel, bool)]
    m = match(truth, pred, dim=3)
    tp = int(m.n_tp)
    ji = 100.0 * tp / max(len(pred) + len(truth) - tp, 1)
    d = {k: np.asarray(pred[k], float)[m.tp_pred] - np.asarray(truth[k], float)[m.tp_truth] for k in ("x_nm", "y_nm", "z_nm")}
    lat = float(np.sqrt(np.mean(d["x_nm"] ** 2 + d["y_nm"] ** 2))) if tp else float("nan")
    ax = float(np.sqrt(np.mean(d["z_nm"] ** 2))) if tp else float("nan")
    e_lat = 100 - np.sqrt((100 - ji) ** 2 + lat**2)
    e_ax = 100 - np.sqrt((100 - ji) ** 2 + (0.5 * ax) ** 2)
    return {"rows": len(pred), "tp": tp, "jaccard": ji, "rmse_lat": lat, "rmse_ax": ax, "eff_3d": float((e_lat + e_ax) / 2)}


def analyse(truth, fit, z_bound: float) -> dict:
    n = len(fit)
    zf = np.asarray(fit["z_nm"], float)
    zb = np.abs(zf) >= z_bound - 0.5
    m = match(truth, fit, dim=3)
    zt = np.full(n, np.nan)
    zt[m.tp_pred] = np.asarray(truth["z_nm"], float)[m.tp_truth]
    e = {a: np.full(n, np.nan) for a in "xy"}
    for a in "xy":
        e[a][m.tp_pred] = np.asarray(fit[f"{a}_nm"], float)[m.tp_pred] - np.asarray(truth[f"{a}_nm"], float)[m.tp_truth]
    lat = np.hypot(e["x"], e["y"])
    inside = np.isfinite(zt) & (np.abs(zt) < Z_FIT)
    out = {"rows": n, "on_z_bound": int(zb.sum()), "on_z_bound_pct": 100.0 * zb.sum() / max(n, 1),
           "on_bound_true_inside": int((zb & inside).sum()), "scores": scores(truth, fit)}
    for tag, sel in (("off_bound", ~zb & np.isfinite(lat)), ("on_bound_true_inside", zb & inside)):
        out[f"{tag}_rmse_lat"] = float(np.sqrt(np.mean(lat[sel] ** 2))) if sel.any() else None
        cx = np.asarray(fit["crlb_x_nm"], float)
        out[f"{tag}_median_abs_ex_over_crlb_x"] = float(np.median(np.abs(e["x"][sel]) / cx[sel])) if sel.any() else None
    if "refined" in fit:
        out["refined_pct"] = 100.0 * float(np.mean(np.asarray(fit["refined"], float) > 0))
    return out


def split_held(fitter, photons, tab, truth, off_px: float = 0.5, p_gate: float = 1e-3) -> dict:
    """A two-emitter trial on the rows held on the z bound: each is replaced by two rows ``off_px`` either side along
    x (z > 0) or y (z < 0), z 0, half the photons each, and the table refined (each of the two models the other);
    the pair replaces the row where both refits were kept and the window's deviance (``llr``) dropped by more than the
    chi-square quantile of ``1 - p_gate`` with 4 degrees of freedom (``gated``), or wherever both were kept
    (``every_pair``)."""
    from scipy.stats import chi2

    from plexloc.table import LocTable

    held = (np.asarray(tab["at_bound"]) & 2) != 0
    idx = np.flatnonzero(held)
    rest = ~held
    cols = {k: np.asarray(tab[k]) for k in tab.columns}
    new = {k: np.concatenate([v[rest], v[idx], v[idx]]) for k, v in cols.items()}
    n0, m = int(rest.sum()), len(idx)
    along_x = cols["z_nm"][idx] > 0
    px = fitter.config.px_size_xy_nm
    for half, sign in ((slice(n0, n0 + m), -1.0), (slice(n0 + m, n0 + 2 * m), 1.0)):
        new["x_nm"][half] = cols["x_nm"][idx] + np.where(along_x, sign * off_px * px[0], 0.0)
        new["y_nm"][half] = cols["y_nm"][idx] + np.where(~along_x, sign * off_px * px[1], 0.0)
        new["z_nm"][half] = 0.0
        new["photons"][half] = cols["photons"][idx] / 2
    ref = refine_frames(fitter, photons, LocTable(new))
    ok = np.asarray(ref["refined"]) > 0
    a, b = np.arange(n0, n0 + m), np.arange(n0 + m, n0 + 2 * m)
    llr = np.asarray(ref["llr"])
    both = ok[a] & ok[b]
    gain = np.asarray(tab["llr"])[idx] - np.minimum(llr[a], llr[b])
    out = {"held_rows": m, "both_refits_kept": int(both.sum())}
    for tag, acc in (("gated", both & (gain > chi2.isf(p_gate, 4))), ("every_pair", both)):
        sel = np.ones(len(ref), bool)
        sel[a[~acc]] = False
        sel[b[~acc]] = False
        table = LocTable.concat([ref[sel], tab[idx[~acc]]])
        out[tag] = {"split": int(acc.sum()), "scores": scores(truth, table)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "mle51.json")
    ap.add_argument("--densities", type=float, nargs="+", default=(0.5, 1.0))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--keep", type=Path, default=None, help="keep (and reuse) the movies in this folder")
    ap.add_argument("--split", action="store_true", help="also try two emitters for each row held on the z bound")
    args = ap.parse_args()
    result = {"machine": platform.platform(), "python": platform.python_version(), "frames": args.frames,
              "fit_z_range_nm": [-Z_FIT, Z_FIT], "densities": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load(EXAMPLE.read_text())
        cfg["emitters"]["z_range_nm"] = [-600.0, 600.0]
        (work / "sim600.yaml").write_text(yaml.safe_dump(cfg))
        config = load_config(EXAMPLE)
        for density in args.densities:
            sim = work / f"sim_{density:g}"
            if not (sim / "movie.tif").exists():
                subprocess.run([sys.executable, "-m", "plexloc.cli.main", "simulate", str(work / "sim600.yaml"),
                                "--frames", str(args.frames), "--out", str(sim), "--density", f"{density:g}",
                                "--seed", "1"], check=True, capture_output=True)
            truth = read_table(sim / "truth.csv")
            movie = tifffile.imread(sim / "movie.tif")
            row = {"truth_rows": len(truth)}
            t0 = time.perf_counter()
            tab = fit_movie(movie, config)
            row["fit_seconds"] = time.perf_counter() - t0
            row["mle"] = analyse(truth, tab, Z_FIT)
            fitter = MLEFitter(config)
            photons = fitter.to_photons([movie])
            for tag, opts in (("mle_refined", {}), ("mle_refined_isolated", {"model_neighbours": False})):
                t0 = time.perf_counter()
                ref = refine_frames(fitter, photons, tab, **opts)
                row[tag] = analyse(truth, ref, Z_FIT)
                row[tag]["seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            st: dict = {}
            piped = fit_movie(movie, config, refine_mle=True, stats=st)  # the same, as plexloc fit --refine-mle does it
            row["mle_refine_mle"] = analyse(truth, piped, Z_FIT)
            row["mle_refine_mle"].update(seconds=time.perf_counter() - t0, refined_rows=st["refined_rows"],
                                         flagged=st["flagged"], at_bound_z=int(((np.asarray(piped["at_bound"]) & 2) != 0).sum()))
            if args.split:
                row["split_held"] = split_held(fitter, photons, piped, truth)
                sp = row["split_held"]
                print(f"{density:g}/um2 split the {sp['held_rows']} held rows of mle_refine_mle: both refits kept "
                      f"{sp['both_refits_kept']}; " + "; ".join(
                          f"{tag}: {sp[tag]['split']} split, JI {sp[tag]['scores']['jaccard']:.1f} RMSE lat "
                          f"{sp[tag]['scores']['rmse_lat']:.1f} ax {sp[tag]['scores']['rmse_ax']:.1f} E3D "
                          f"{sp[tag]['scores']['eff_3d']:.1f}" for tag in ("gated", "every_pair")), flush=True)
            t0 = time.perf_counter()
            wide = fit_movie(movie, config, z_margin_nm=100.0)
            row["mle_margin100"] = analyse(truth, wide, Z_FIT + 100.0)
            row["mle_margin100"]["seconds"] = time.perf_counter() - t0
            result["densities"][f"{density:g}"] = row
            for tag in ("mle", "mle_refined", "mle_refined_isolated", "mle_refine_mle", "mle_margin100"):
                r = row[tag]
                s = r["scores"]
                print(f"{density:g}/um2 {tag:22s}: {r['rows']} rows, on z bound {r['on_z_bound']} ({r['on_z_bound_pct']:.1f} %,"
                      f" true inside {r['on_bound_true_inside']}); JI {s['jaccard']:.1f} RMSE lat {s['rmse_lat']:.1f} ax "
                      f"{s['rmse_ax']:.1f} E3D {s['eff_3d']:.1f}; lat RMSE off bound {r['off_bound_rmse_lat']:.1f}, on bound "
                      f"(inside) {r['on_bound_true_inside_rmse_lat'] or float('nan'):.1f}; median |ex|/crlb off "
                      f"{r['off_bound_median_abs_ex_over_crlb_x']:.2f} on {r['on_bound_true_inside_median_abs_ex_over_crlb_x'] or float('nan'):.2f}",
                      flush=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
