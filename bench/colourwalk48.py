"""Merged different-dye rows and a swapped split view on dual_color_splitview (session 48, colourwalk).

For each density a split-view movie is simulated (``plexloc simulate``, 64x128 px, dyes 0.8 / 0.3 in channel 0) and
fitted by MLE (``plexloc fit --method mle``), as configured and, with ``--swapped``, with the split-view boxes swapped.
Each fitted row is classed against the truth of its frame: ``single`` (one emitter within 500 nm, within 250 nm of
the row), ``mixed`` (two or more within 250 nm, the two brightest of different dyes, the dimmer with >= 25 % of the
brighter's photons), ``same`` (the two brightest of one dye). Colours (``assign_colors``, ratios as configured,
excess noise 2) with eq. 3 alone, ``misfit_alpha`` 1e-3 and ``mixed_prior`` 0.01 / 0.03: per class the rows rejected,
those with ``color_prob`` >= 0.99 and the wrong colours.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/colourwalk48.py --densities 0.5 1 2 --out /tmp/cw48
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "src" / "plexloc" / "examples" / "dual_color_splitview.yaml"
RATIOS = [[0.8, 0.2], [0.3, 0.7]]


def plexloc(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "plexloc.cli.main", *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr)
    return run.stdout + run.stderr


def classify(truth, pred, r_merge: float = 250.0, r_iso: float = 500.0, minor: float = 0.25):
    """Per fitted row its class (single / mixed / same / other) and, for single and same, the truth's colour."""
    tf, pf = np.asarray(truth["frame"]), np.asarray(pred["frame"])
    tx = np.column_stack([truth["x_nm"], truth["y_nm"]])
    px = np.column_stack([pred["x_nm"], pred["y_nm"]])
    tc, tp = np.asarray(truth["color"]), np.asarray(truth["photons"])
    kind, col = np.full(len(pred), "other", object), np.full(len(pred), -1)
    for f in np.unique(pf):
        ti, pi = np.flatnonzero(tf == f), np.flatnonzero(pf == f)
        if not len(ti):
            continue
        tree = cKDTree(tx[ti])
        for p in pi:
            near = tree.query_ball_point(px[p], r_iso)
            close = [ti[j] for j in near if np.hypot(*(tx[ti[j]] - px[p])) <= r_merge]
            if len(near) == 1 and len(close) == 1:
                kind[p], col[p] = "single", tc[close[0]]
            elif len(close) >= 2:
                a, b = sorted(close, key=lambda j: -tp[j])[:2]
                if tc[a] != tc[b] and tp[b] >= minor * tp[a]:
                    kind[p] = "mixed"
                elif tc[a] == tc[b]:
                    kind[p], col[p] = "same", tc[a]
    return kind, col


def score(truth, pred) -> dict:
    from plexloc.post.color import assign_colors

    kind, col = classify(truth, pred)
    variants = {"eq3": {}, "misfit 1e-3": {"misfit_alpha": 1e-3}}
    if "mixed_prior" in inspect.signature(assign_colors).parameters:
        variants.update({"mixed 0.01": {"mixed_prior": 0.01}, "mixed 0.03": {"mixed_prior": 0.03}})
    out = {"rows": {k: int(np.sum(kind == k)) for k in ("single", "mixed", "same", "other")}}
    for name, kw in variants.items():
        colored, report = assign_colors(pred, RATIOS, 0.9, excess_noise=2.0, **kw)
        c, p = np.asarray(colored["color"]), np.asarray(colored["color_prob"])
        res = {"noise_factor": report.noise_factor}
        for k in ("single", "mixed", "same"):
            m = kind == k
            res[k] = {"rejected": int(np.sum(c[m] < 0)), "p_ge_0.99": int(np.sum(p[m] >= 0.99))}
            if k != "mixed":
                res[k]["wrong"] = int(np.sum((c[m] >= 0) & (c[m] != col[m])))
        out[name] = res
    return out


def main() -> None:
    from plexloc.io import read_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--densities", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--swapped", action="store_true", help="also fit with the split-view boxes swapped")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {}
    for i, density in enumerate(args.densities):
        d = args.out / f"dens{density:g}"
        plexloc("simulate", str(CONFIG), "--frames", str(args.frames), "--density", str(density),
                "--seed", str(3 + i), "--out", str(d))
        fit = plexloc("fit", str(d / "movie.tif"), "--method", "mle", "--config", str(d / "config.yaml"),
                      "--out", str(d / "mle.csv"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = score(read_table(d / "truth.csv"), read_table(d / "mle.csv"))
        res["alignment"] = [line for line in fit.splitlines() if line.startswith("channel alignment")]
        if args.swapped:
            import yaml

            with open(d / "config.yaml") as f:
                cfg = yaml.safe_load(f)
            cfg["split_view"]["boxes"] = cfg["split_view"]["boxes"][::-1]
            with open(d / "swapped.yaml", "w") as f:
                yaml.safe_dump(cfg, f)
            fit = plexloc("fit", str(d / "movie.tif"), "--method", "mle", "--config", str(d / "swapped.yaml"),
                          "--out", str(d / "mle_swapped.csv"))
            res["swapped_alignment"] = [line for line in fit.splitlines()
                                        if line.startswith("channel alignment") or "does not line up" in line]
        results[f"{density:g}"] = res
        print(f"density {density:g}/um2: {json.dumps(res, indent=1)}")
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
