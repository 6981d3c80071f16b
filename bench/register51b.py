"""Session 51 (helper register2): the duplicate share reported on random tables (no duplicates) and on doubled ones.

The share (``fraction``) and its excess over chance (``excess``) of :func:`plexloc.post.duplicates.channel_duplicates`
on tables of uniform random localizations (no pair structure), and on tables where molecules are doubled 300 nm off
with copy noise. Run it with the plexloc to measure on ``PYTHONPATH`` (a worktree's src for "before")::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/register51b.py --json bench/register51b.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from plexloc.post import synthetic_plex
from plexloc.post.duplicates import channel_duplicates
from plexloc.table import LocTable


def _table(xy, frame):
    n = len(frame)
    return LocTable({"frame": np.asarray(frame, np.int64), "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(n),
                     "photons": np.full(n, 1000.0)})


def random_table(n, frames, field_nm, rng):
    return _table(rng.uniform(0, field_nm, (n, 2)), np.sort(rng.integers(0, frames, n)))


def doubled_table(share, noise, rng, dens=0.14):
    return synthetic_plex.doubled_table(dens, n=6000, share=share, noise_nm=10.0, copy_noise_nm=noise, rng=rng)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    conditions = [("random", dict(n=50, frames=1, field_nm=5000.0)), ("random", dict(n=50, frames=1, field_nm=10000.0)),
                  ("random", dict(n=200, frames=5, field_nm=5000.0)), ("random", dict(n=2000, frames=20, field_nm=10000.0))]
    for kind, kw in conditions:
        rng = np.random.default_rng(51)
        frac, exc, warned, radius = [], [], 0, []
        t0 = time.perf_counter()
        for _ in range(args.trials):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = channel_duplicates(random_table(rng=rng, **kw), warn=False)
            frac.append(rep.fraction)
            exc.append(rep.excess)
            radius.append(getattr(rep, "share_radius_nm", 50.0))
            warned += rep.warning is not None
        rows.append({"kind": kind, **kw, "trials": args.trials, "fraction_mean": float(np.mean(frac)),
                     "excess_mean": float(np.mean(exc)), "excess_p90": float(np.quantile(exc, 0.9)),
                     "share_radius_mean_nm": float(np.mean(radius)), "warned": warned,
                     "s_per_table": (time.perf_counter() - t0) / args.trials})
        print(rows[-1], flush=True)
    for share, noise, dens in [(1.0, 80.0, 0.14), (1.0, 80.0, 3.0), (0.3, 80.0, 0.14), (1.0, 40.0, 0.14)]:
        rng = np.random.default_rng(7)
        frac, warned = [], 0
        for _ in range(3):
            rep = channel_duplicates(doubled_table(share, noise, rng, dens=dens), warn=False)
            frac.append(rep.fraction)
            warned += rep.warning is not None
        rows.append({"kind": "doubled", "share": share, "copy_noise_nm": noise, "density_per_um2": dens, "trials": 3,
                     "fraction_mean": float(np.mean(frac)), "warned": warned})
        print(rows[-1], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
