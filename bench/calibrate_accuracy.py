"""Calibration accuracy on beads from an independent vectorial PSF (psfmodels; biplane, EMCCD).

Calibrates two channels from bead z-stacks (+-1000 nm, 50 nm steps), fits held-out beads every 100 nm over
+-600 nm with the calibrated splines (plexloc.mle), and prints z/x/y bias, RMSE and transform residuals.

    PYTHONPATH=src python bench/calibrate_accuracy.py [--json bench/calibrate_accuracy.json] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import time

from plexloc.calibrate.synthetic import biplane_accuracy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="bench/calibrate_accuracy.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--beads", type=int, default=16)
    args = ap.parse_args()
    rows = []
    print(f"{'seed':>4} {'beads':>8} {'z bias':>7} {'z RMSE':>7} {'x bias':>7} {'y bias':>7} {'xy RMSE':>8} {'T max':>6} {'s':>5}")
    for seed in args.seeds:
        t = time.time()
        r = biplane_accuracy(n_beads=args.beads, n_test_beads=16, seed=seed)
        r["seed"], r["seconds"] = seed, time.time() - t
        rows.append(r)
        print(
            f"{seed:>4} {str(r['n_beads_used']):>8} {r['z_bias_nm']:7.2f} {r['z_rmse_nm']:7.2f} {r['x_bias_nm']:7.2f} "
            f"{r['y_bias_nm']:7.2f} {r['xy_rmse_nm']:8.2f} {r['transform_residual_max_nm']:6.2f} {r['seconds']:5.0f}"
        )
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
