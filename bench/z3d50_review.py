"""Session 50, review of helper z3d: de-biasing's measured sigma power on real network fits (not network-like tables).

For each ``NAME TRUTH PRED`` given, ``plexloc.post.debias.debias`` (defaults: 50-nm z slabs, 200 rows) with the power
measured from the table (the default since e9214d6), ``sigma_power=1`` (DECODE-Plex's proportion, the default before)
and ``sigma_power=0`` (the plain map): lateral RMSE of the matched rows (matched on the input) before and after, the
gridding deviation of x and y and the input's counting-noise level (``bench/z3d50.py``'s ``total``), the measured
power and the sigma halves; 3D tables also per 100-nm slab of the true z.

The fits measured (session 50, CPU, this machine; written to /tmp, not kept):
  2D: the demo model (``make demo``'s run, 4 min of CPU training) and a 3-minute CPU model of examples/demo_2d.yaml
      (``plexloc train examples/demo_2d.yaml --minutes 3 --threads 1``), each fitting ``plexloc simulate
      examples/demo_2d.yaml --frames 600 --frame-size 64 64 --density D --seed 3`` at D = 0.2 and 1 per um^2;
  3D: a 13-minute CPU model of examples/3d_astigmatic.yaml (frame_size 32 x 32, demo_2d.yaml's model and training
      sections; ``--minutes 14 --threads 1``, 1,872 steps, validation JI 79 %) fitting ``plexloc simulate
      examples/3d_astigmatic.yaml --frames 2000 --density 0.1 --seed 4`` and ``--frames 400 --density 1 --seed 5``.

``--stability``: the measured power's spread over 4 seeds of small synthetic 2D tables (uniform positions, photons
500-8,000, sigma 195 nm / sqrt(photons), error of that sd, pulled to the pixel centres with exponent ``pull`` in every
row or ``pull`` x sigma / median sigma) of 250, 1,000 and 5,000 rows, and the RMSE after de-biasing with it against
``sigma_power`` 1 and 0.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/z3d50_review.py --out bench/z3d50_review.json NAME TRUTH PRED ...``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from z3d50 import slab_rows, total  # noqa: E402

from plexloc.io.tables import read_table  # noqa: E402
from plexloc.post.debias import debias  # noqa: E402

PX = 100.0


def _small_table(n: int, pull: float, by_sigma: bool, seed: int):
    from plexloc.table import LocTable

    rng = np.random.default_rng(seed)
    tx = rng.uniform(0, 3200, (n, 2))
    photons = rng.uniform(500, 8000, n)
    sig = 130 * 1.5 / np.sqrt(photons)
    xy = tx + rng.normal(size=(n, 2)) * sig[:, None]
    a = (pull * sig / np.median(sig) if by_sigma else np.full(n, pull))[:, None]
    c = (np.floor(xy / PX) + 0.5) * PX
    u = (xy - c) / PX
    moved = c + PX * np.sign(u) * np.abs(2 * u) ** (1 + a) / 2
    return tx, LocTable({"frame": np.zeros(n, np.int64), "x_nm": moved[:, 0], "y_nm": moved[:, 1], "z_nm": np.zeros(n),
                         "photons": photons, "sigma_x_nm": sig, "sigma_y_nm": sig})


def stability() -> list[dict]:
    def rmse(t, tx):
        return float(np.sqrt(np.mean((np.asarray(t["x_nm"]) - tx[:, 0]) ** 2 + (np.asarray(t["y_nm"]) - tx[:, 1]) ** 2)))

    rows = []
    for by_sigma in (False, True):
        for pull in (0.0, 0.3, 1.0):
            for n in (250, 1000, 5000):
                for seed in range(4):
                    tx, t = _small_table(n, pull, by_sigma, seed)
                    out, rep = debias(t, PX)
                    row = {"by_sigma": by_sigma, "pull": pull, "rows": n, "seed": seed, "sigma_power": rep.sigma_power,
                           "rmse_before": rmse(t, tx), "rmse_measured": rmse(out, tx),
                           "rmse_power_1": rmse(debias(t, PX, sigma_power=1.0)[0], tx),
                           "rmse_power_0": rmse(debias(t, PX, sigma_power=0.0)[0], tx)}
                    rows.append(row)
                g = rows[-4:]
                print(f"{'pull x sigma' if by_sigma else 'pull'} {pull:g}, {n} rows: p x "
                      f"{[round(r['sigma_power']['x'], 2) for r in g]}; RMSE before {np.mean([r['rmse_before'] for r in g]):.2f}, "
                      + ", ".join(f"{k} {np.mean([r['rmse_' + k] for r in g]):.2f}" for k in ("measured", "power_1", "power_0"))
                      + f" nm; worst seed measured - best of 1/0: "
                      f"{max(r['rmse_measured'] - min(r['rmse_power_1'], r['rmse_power_0']) for r in g):+.2f} nm", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stability", action="store_true", help="also the small synthetic tables' sweep")
    ap.add_argument("cases", nargs="*", help="NAME TRUTH PRED, repeated")
    args = ap.parse_args()
    if len(args.cases) % 3:
        ap.error("cases come in threes: NAME TRUTH PRED")
    result = []
    for name, truth_path, pred_path in zip(*[iter(args.cases)] * 3):
        truth, pred = read_table(truth_path), read_table(pred_path)
        is3d = float(truth["z_nm"].max()) > float(truth["z_nm"].min())
        for label, kw in (("measured", {}), ("sigma_power 1", {"sigma_power": 1.0}), ("sigma_power 0", {"sigma_power": 0.0})):
            out, rep = debias(pred, PX, **kw)
            row = {"case": name, "weighting": label, "rows": len(pred), "sigma_power": rep.sigma_power,
                   "sigma_halves": rep.sigma_halves, **total(truth, pred, out)}
            if is3d:
                row["slabs"] = slab_rows(truth, pred, out)
            result.append(row)
            print(f"{name:14s} {label:14s} p {', '.join(f'{k} {v:.2f}' for k, v in rep.sigma_power.items())}: RMSE_lat "
                  f"{row['rmse_lat_before']:.2f} -> {row['rmse_lat_after']:.2f} nm; gridding x {row['grid_x_before']:.3f} "
                  f"-> {row['grid_x_after']:.3f}, y {row['grid_y_before']:.3f} -> {row['grid_y_after']:.3f} (noise "
                  f"{row['grid_noise_before']:.3f})", flush=True)
    out = {"real_fits": result}
    if args.stability:
        out["stability"] = stability()
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
