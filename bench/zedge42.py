"""Where a 3D network puts emitters beyond its training z range, and how an edge rule tells them apart.

For a trained 3D model (a run folder) and simulated movies (folders with ``movie.tif`` and ``truth.csv``, from
``plexloc simulate``), fits each movie (network, CPU), matches it to its truth laterally only (2D matching within
250 nm: an emitter at z = 1000 nm placed at 500 nm still matches) and prints, per movie:

- the model's output band ``z_center +- z_scale`` (``LocalizerSpec``) and its training ``emitters.z_range_nm``;
- the histogram of the fitted z near each end of the training range (20-nm bins), all rows;
- for matched rows with the truth inside / beyond the training range: the fitted z (median, 5th/95th
  percentiles of |z - centre|), the error ``z - z_true`` folded outwards (> 0: further from the range's centre
  than the truth), the predicted sigma_z and the z-score (the folded error over sigma_z);
- the PSF-shape check's verdict (``stats["psf_shape"]``: the first frames' spot widths against the model's PSF);
- the share of all rows within ``m`` nm of an end of the training range or beyond it, for several margins ``m``
  (the edge rule's count; on a movie of in-range emitters, its false alarms).

Usage::

    OMP_NUM_THREADS=1 python bench/zedge42.py --model RUN --movie IN_DIR --movie WIDE_DIR --json out.json

Writes the same numbers as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MARGINS_NM = (10.0, 20.0, 30.0, 50.0, 100.0)


def _summary(v: np.ndarray) -> dict:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0}
    q = np.percentile(v, [5, 25, 50, 75, 95])
    return {"n": int(v.size), "p5": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
            "p95": float(q[4])}


def _robust_sd(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else float("nan")


def measure(model: str, movie_dir: Path, *, device: str = "cpu") -> dict:
    import torch

    from plexloc.evaluate.matching import match
    from plexloc.infer import fit_movie
    from plexloc.io.tables import read_table
    from plexloc.nets.io import load_model

    torch.set_num_threads(1)
    net, cfg, _ = load_model(model)
    spec = net.spec
    band = (spec.z_center_nm - spec.z_scale_nm, spec.z_center_nm + spec.z_scale_nm)
    lo, hi = (float(v) for v in cfg["emitters"]["z_range_nm"])
    stats: dict = {}
    table = fit_movie(movie_dir / "movie.tif", model, device=device, stats=stats)
    truth = read_table(movie_dir / "truth.csv")
    z = np.asarray(table["z_nm"], float)
    out: dict = {"movie": str(movie_dir), "rows": len(table), "truth_rows": len(truth),
                 "band_nm": list(band), "train_z_range_nm": [lo, hi],
                 "truth_z_range_nm": [float(np.min(truth["z_nm"])), float(np.max(truth["z_nm"]))],
                 "z_edge": stats["z_edge"].to_dict() if "z_edge" in stats else None}
    # the fitted z near each end: 20-nm bins from 200 nm inside the range to the band's end
    edges_hi = np.arange(hi - 200.0, band[1] + 20.0, 20.0)
    edges_lo = np.arange(band[0], lo + 200.0 + 1e-9, 20.0)
    out["hist_hi"] = {"edges_nm": edges_hi.tolist(), "counts": np.histogram(z, edges_hi)[0].tolist()}
    out["hist_lo"] = {"edges_nm": edges_lo.tolist(), "counts": np.histogram(z, edges_lo)[0].tolist()}
    out["z_min_nm"], out["z_max_nm"] = float(z.min()), float(z.max())
    # the edge rule: rows within m nm of an end of the training range, or beyond it
    out["edge_share"] = {str(m): float(np.mean((z >= hi - m) | (z <= lo + m))) for m in MARGINS_NM}
    out["edge_count"] = {str(m): int(np.sum((z >= hi - m) | (z <= lo + m))) for m in MARGINS_NM}
    out["beyond_range_rows"] = int(np.sum((z > hi) | (z < lo)))
    # matched rows: truth inside / beyond the training range
    m = match(truth, table, dim=2, max_lat_nm=250.0)
    zt = np.asarray(truth["z_nm"], float)[m.tp_truth]
    zp = z[m.tp_pred]
    sz = np.asarray(table["sigma_z_nm"], float)[m.tp_pred]
    beyond = (zt > hi) | (zt < lo)
    centre = 0.5 * (lo + hi)
    out["matched"] = int(m.n_tp)
    out["recall_2d"] = float(m.n_tp / max(len(truth), 1))
    side = np.where(zt >= centre, 1.0, -1.0)  # errors folded: > 0 is away from the centre, < 0 towards it
    for name, sel in (("in_range", ~beyond), ("beyond", beyond)):
        zs = side[sel] * (zp[sel] - zt[sel]) / sz[sel]
        out[name] = {
            "n": int(sel.sum()),
            "abs_z_fit_from_centre_nm": _summary(np.abs(zp[sel] - centre)),
            "abs_z_true_from_centre_nm": _summary(np.abs(zt[sel] - centre)),
            "dz_outward_nm": _summary(side[sel] * (zp[sel] - zt[sel])),
            "sigma_z_nm": _summary(sz[sel]),
            "z_score_median": float(np.median(zs)) if zs.size else None,
            "z_score_robust_sd": _robust_sd(zs),
            "share_abs_z_score_over_3": float(np.mean(np.abs(zs) > 3)) if zs.size else None,
            "edge_share": {str(mm): float(np.mean((zp[sel] >= hi - mm) | (zp[sel] <= lo + mm))) if sel.any() else None
                           for mm in MARGINS_NM},
        }
    # in-range emitters near the ends (truth within 50 nm of an end): where the network puts them
    near = ~beyond & ((zt >= hi - 50) | (zt <= lo + 50))
    out["in_range_truth_within_50nm_of_end"] = {"n": int(near.sum()),
                                                 "abs_z_fit_from_centre_nm": _summary(np.abs(zp[near] - centre))}
    shapes = stats.get("psf_shape") or []
    out["psf_shape"] = [{"n_spots": int(r.n_spots), "far_fraction": float(r.far_fraction),
                         "crowded_far_fraction": float(r.crowded_far_fraction), "warning": r.warning, "note": r.note}
                        for r in shapes]
    return out


def _print(res: dict) -> None:
    lo, hi = res["train_z_range_nm"]
    print(f"\n{res['movie']}: {res['rows']} rows, truth z {res['truth_z_range_nm'][0]:.0f}..{res['truth_z_range_nm'][1]:.0f}"
          f" nm; model band {res['band_nm'][0]:.0f}..{res['band_nm'][1]:.0f} nm, trained on {lo:.0f}..{hi:.0f} nm; "
          f"fitted z {res['z_min_nm']:.1f}..{res['z_max_nm']:.1f} nm")
    print("fitted z near the upper end (20-nm bins):")
    e, c = res["hist_hi"]["edges_nm"], res["hist_hi"]["counts"]
    print("  " + "  ".join(f"[{e[i]:.0f},{e[i + 1]:.0f}):{c[i]}" for i in range(len(c))))
    print("fitted z near the lower end (20-nm bins):")
    e, c = res["hist_lo"]["edges_nm"], res["hist_lo"]["counts"]
    print("  " + "  ".join(f"[{e[i]:.0f},{e[i + 1]:.0f}):{c[i]}" for i in range(len(c))))
    print(f"matched laterally: {res['matched']} (recall {100 * res['recall_2d']:.1f} %)")
    print(f"{'rows':>10} {'n':>6} {'|z|fit p5':>9} {'median':>7} {'p95':>6} {'sigma_z med':>11} {'dz out':>7} "
          f"{'zscore med':>10} {'rSD':>6} {'|zs|>3':>7}")
    for name in ("in_range", "beyond"):
        r = res[name]
        if not r["n"]:
            continue
        a, s, d = r["abs_z_fit_from_centre_nm"], r["sigma_z_nm"], r["dz_outward_nm"]
        print(f"{name:>10} {r['n']:>6} {a['p5']:>9.0f} {a['median']:>7.0f} {a['p95']:>6.0f} {s['median']:>11.1f} "
              f"{d['median']:>7.0f} {r['z_score_median']:>10.2f} {r['z_score_robust_sd']:>6.2f} "
              f"{100 * r['share_abs_z_score_over_3']:>6.1f}%")
    print("share of all rows within m nm of an end of the training range (or beyond): "
          + ", ".join(f"{m} nm {100 * v:.2f} % ({res['edge_count'][m]})" for m, v in res["edge_share"].items()))
    if res.get("z_edge"):
        print(f"plexloc fit's z-edge count: {res['z_edge']['at_edge']} rows ({100 * res['z_edge']['share']:.2f} %), "
              f"warning: {'yes' if res['z_edge']['warning'] else 'no'}")
    for r in res["psf_shape"]:
        print(f"PSF shape check: {r['n_spots']} spots, far {100 * r['far_fraction']:.1f} % (baseline "
              f"{100 * r['crowded_far_fraction']:.1f} %); warning: {r['warning']}")
    for name in ("in_range", "beyond"):
        if res[name]["n"]:
            print(f"  of the {name} matched rows: "
                  + ", ".join(f"{m} nm {100 * v:.2f} %" for m, v in res[name]["edge_share"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--movie", type=Path, action="append", required=True, help="folder with movie.tif and truth.csv")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    results = []
    for d in args.movie:
        res = measure(args.model, d, device=args.device)
        _print(res)
        results.append(res)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "movies": results}, indent=1))


if __name__ == "__main__":
    main()
