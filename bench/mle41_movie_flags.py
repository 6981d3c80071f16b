"""How many rows of a standard movie the MLE fitter calls converged, how many end on a bound of the fit, and the
error / CRLB of the groups: examples/2d_gaussian.yaml and examples/3d_astigmatic.yaml (SMLM Challenge 2016 EMCCD,
64 x 64 px) at 0.5 emitters/um², simulated with a seed and fitted by :func:`plexloc.mle.fit_movie` with its defaults.

Bounds are checked from the table's values (photons at the fitter's lower bound 1, bg at 1e-4, z on the fitter's
z bounds), so the script measures code without the ``at_bound`` column too; with it, its counts are printed as well.
Matching: :func:`plexloc.evaluate.match` (SMLM Challenge rules). RMSE / CRLB: the matched rows' RMSE over the root mean
square of the table's own CRLB (at the fit).
Run: ``OMP_NUM_THREADS=1 python bench/mle41_movie_flags.py --frames 300 --out bench/mle41_movie_flags.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.config import load_config
from plexloc.evaluate import match
from plexloc.mle import MLEFitter, fit_movie
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def group(m, locs, rows: np.ndarray, dim: int) -> dict:
    """RMSE and table CRLB of the matched pairs whose prediction row is in ``rows`` (a boolean mask of locs)."""
    sel = rows[m.tp_pred]
    out = {"rows": int(rows.sum()), "matched": int(sel.sum())}
    if not sel.any():
        return out
    p = locs[m.tp_pred[sel]]
    out["rmse_lat_nm"] = float(np.sqrt(np.mean(m.dx[sel] ** 2 + m.dy[sel] ** 2)))
    out["crlb_lat_nm"] = float(np.sqrt(np.mean(p["crlb_x_nm"] ** 2 + p["crlb_y_nm"] ** 2)))
    out["ratio_lat"] = out["rmse_lat_nm"] / out["crlb_lat_nm"]
    # the root mean square of the CRLB is carried by a few huge bounds (dim spots far from focus): the median too
    out["median_crlb_x_nm"] = float(np.median(p["crlb_x_nm"]))
    out["crlb_not_finite"] = int((~np.isfinite(p["crlb_x_nm"]) | ~np.isfinite(p["crlb_y_nm"])).sum())
    if dim == 3:
        out["rmse_ax_nm"] = float(np.sqrt(np.mean(m.dz[sel] ** 2)))
        out["crlb_ax_nm"] = float(np.sqrt(np.mean(p["crlb_z_nm"] ** 2)))
        out["ratio_ax"] = out["rmse_ax_nm"] / out["crlb_ax_nm"]
        out["median_crlb_z_nm"] = float(np.median(p["crlb_z_nm"]))
    return out


def run(name: str, frames: int, seed: int) -> dict:
    cfg = load_config(EXAMPLES / name)
    cfg.emitters.density_per_um2 = 0.5
    sim = Simulator(cfg)
    movie = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    t0 = time.time()
    locs = fit_movie(movie.frames[0].numpy(), cfg, batch_frames=100)
    dt = time.time() - t0
    fitter = MLEFitter(cfg)
    dim = 3 if fitter.is_3d else 2
    m = match(movie.truth, locs, dim=dim)
    conv = locs["converged"] == 1
    hits = {"photons": locs["photons"] <= 1.0 + 1e-3, "bg": locs["bg"] <= 2e-4}
    if dim == 3:
        lo, hi = fitter.z_range_nm
        hits["z"] = (locs["z_nm"] <= lo + 1e-2) | (locs["z_nm"] >= hi - 1e-2)
    any_hit = np.zeros(len(locs), bool)
    for v in hits.values():
        any_hit |= v
    out = {
        "config": name, "density_per_um2": 0.5, "frames": frames, "seed": seed, "fit_s": round(dt, 1),
        "rows": len(locs), "truth": len(movie.truth), "jaccard": 100.0 * m.n_tp / (m.n_tp + m.n_fp + m.n_fn),
        "converged": int(conv.sum()),
        "bound_hits": {k: int(v.sum()) for k, v in hits.items()},
        "converged_and_at_bound": int((conv & any_hit).sum()),
        "all": group(m, locs, np.ones(len(locs), bool), dim),
        "converged_rows": group(m, locs, conv, dim),
        "not_converged_rows": group(m, locs, ~conv, dim),
        "at_bound_rows": group(m, locs, any_hit, dim),
    }
    if "at_bound" in locs.columns:
        ab = locs["at_bound"].astype(np.int64)
        out["at_bound_column"] = {str(v): int((ab == v).sum()) for v in np.unique(ab)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = [run(n, args.frames, args.seed) for n in ("2d_gaussian.yaml", "3d_astigmatic.yaml")]
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
