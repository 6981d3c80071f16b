"""Give a trained model the σ calibration factors and position offsets of today's trainer, without training.

Scores the run's ``model.pt`` on its own validation set (the same samples as its training drew; ``--samples`` draws
more from the same stream) and rewrites the file's validation meta (``plexloc.train.recalibrate_model``). For runs
saved before the trainer measured ``sigma_cal_*`` / ``offset_cal_*`` (2026-12-03), which ``plexloc fit`` then
applies. Prints the factors before and after.

    PYTHONPATH=src python bench/diag/recalibrate.py bench/out/mc_biplane/biplane_plex_run --samples 2048 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from plexloc.nets.io import load_model
from plexloc.train import recalibrate_model

KEYS = ("sigma_cal_x", "sigma_cal_y", "sigma_cal_z", "offset_cal_x", "offset_cal_y", "offset_cal_z", "jaccard", "eff_3d")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder or model file")
    ap.add_argument("--samples", type=int, default=None, help="validation samples (default: the run's own number)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    before = (load_model(args.run)[2].get("validation") or {})
    t0 = time.perf_counter()
    after = recalibrate_model(args.run, n_samples=args.samples, device=args.device)["validation"]
    print(f"rescored in {time.perf_counter() - t0:.0f} s")
    print(f"{'key':<14} {'before':>10} {'after':>10}")
    for k in KEYS:
        b, a = before.get(k), after.get(k)
        print(f"{k:<14} {'-' if b is None else f'{b:.3f}':>10} {'-' if a is None else f'{a:.3f}':>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
