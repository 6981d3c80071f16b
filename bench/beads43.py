"""Session 43: can the pair-shape check (``plexloc.calibrate.beads.pair_shape_outliers``) run with fewer than
``PAIR_SHAPE_MIN_BEADS`` (5) beads? Stacks of 3 and 4 beads, calibrated by ``calibrate_spline`` with the check's
minimum set to ``--min-beads`` (the module constants are set for the run; the default 5 is the check off for these
stacks, the "before"):

    # false rejections: clean stacks of 3 and 4 single beads (Gaussian / pupil PSF, Poisson / EMCCD-like noise,
    # bright / dim, seeds 1-5), and catches: one pair 1.5, 2, 2.5 px apart (1:1 and 1:2) among them
    OMP_NUM_THREADS=1 python bench/beads43.py --min-beads 3 --out bench/beads43_min3.json
    OMP_NUM_THREADS=1 python bench/beads43.py --min-beads 5 --out bench/beads43_min5.json

The beads, their PSFs, photons and noise are those of ``bench/beads42.py`` (its ``PHOTONS``, ``LEVELS``, ``ZS``,
``BG``, pixel 100 nm, 15 px windows); here they lie on one row, 20 px apart, random sub-pixel offsets; a pair is
bead 1 replaced by two beads ``sep`` px apart along x (the worst case for an astigmatic z), the second ``ratio``
times as bright. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import beads42 as b42  # noqa: E402  (the same beads, PSFs and noise)


def stack(model: str, n: int, *, seed: int, level: str, noise: str, sep_px: float = 0.0, ratio: float = 1.0,
          pair: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One noisy stack (photons) of ``n`` beads in a row and the (row, col) pixel of each bead."""
    from plexloc.calibrate.synthetic import bead_field

    rng = np.random.default_rng(seed)
    xy = np.array([((15 + 20 * i) * b42.PX, 15 * b42.PX) for i in range(n)]) + rng.uniform(-50, 50, (n, 2))
    ph = b42.PHOTONS[model] * b42.LEVELS[level]
    em = []
    for i, (x, y) in enumerate(xy):
        if sep_px > 0 and i == pair:
            h = sep_px * b42.PX / 2
            em += [(x - h, y, ph), (x + h, y, ph * ratio)]
        else:
            em.append((x, y, ph))
    mu = bead_field(model, em, b42.ZS, (30, 20 * n + 10)) + b42.BG
    counts = np.random.default_rng(20_000 + seed).poisson(mu).astype(np.float64)
    if noise == "emccd":
        counts = np.where(counts > 0, rng.gamma(np.maximum(counts, 1e-9), 1.0), 0.0)
    return counts, np.floor(xy[:, ::-1] / b42.PX).astype(int)


def fates(res, rc) -> list[str]:
    """Per bead: '' (used), or its reason, 'outlier shape (pair)' where the pair-shape check rejected it."""
    sel = res.selections[0]
    out = []
    for r, c in rc:
        d = np.hypot(sel.rows - r, sel.cols - c)
        i = int(np.argmin(d))
        if d[i] > 3:
            out.append("not found")
            continue
        why = str(sel.reason[i])
        if why == "outlier shape" and sel.detail.get(i, "").startswith("anisotropic"):
            why = "outlier shape (pair)"
        out.append(why)
    return out


def run(min_beads: int, ns=(3, 4), seeds=(1, 2, 3, 4, 5), models=("gauss", "pupil")) -> list[dict]:
    from plexloc.calibrate import beads, spline
    from plexloc.errors import InputError

    beads.PAIR_SHAPE_MIN_BEADS = spline.PAIR_SHAPE_MIN_BEADS = min_beads
    cases = [(0.0, 1.0)] + [(s, r) for s in (1.5, 2.0, 2.5) for r in (1.0, 0.5)]
    rows = []
    for n in ns:
        for model in models:
            for noise in ("poisson", "emccd"):
                for level in ("bright", "dim"):
                    for seed in seeds:
                        for sep, ratio in cases:
                            st, rc = stack(model, n, seed=seed, level=level, noise=noise, sep_px=sep, ratio=ratio)
                            t0 = time.perf_counter()
                            row = dict(n=n, model=model, noise=noise, level=level, seed=seed, sep_px=sep, ratio=ratio)
                            try:
                                res = spline.calibrate_spline([st], z_step_nm=b42.DZ, px_size_nm=b42.PX, roi_px=b42.ROI)
                                row.update(fates=fates(res, rc), n_used=int(res.summary["n_beads_used"][0]))
                            except InputError as e:
                                row.update(error=str(e)[:200])
                            row["seconds"] = time.perf_counter() - t0
                            rows.append(row)
                            print(f"n {n} {model} {noise} {level} seed {seed} sep {sep:g} 1:{1 / ratio:g}: "
                                  f"{row.get('fates', row.get('error'))} {row['seconds']:.1f}s", flush=True)
    return rows


def table(rows: list[dict], min_beads: int) -> None:
    print(f"pair-shape check minimum: {min_beads} beads")
    print("| beads | stacks | single beads | singles rejected (pair check / other) | pairs | pairs caught by the pair "
          "check | by other checks | kept | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in rows}):
        sub = [r for r in rows if r["n"] == n]
        ok = [r for r in sub if "fates" in r]
        singles = [f for r in ok for i, f in enumerate(r["fates"]) if not (r["sep_px"] > 0 and i == 1)]
        pairs = [r["fates"][1] for r in ok if r["sep_px"] > 0]
        print(f"| {n} | {len(sub)} | {len(singles)} | {sum(f == 'outlier shape (pair)' for f in singles)} / "
              f"{sum(f not in ('', 'outlier shape (pair)') for f in singles)} | {len(pairs)} | "
              f"{sum(f == 'outlier shape (pair)' for f in pairs)} | "
              f"{sum(f not in ('', 'outlier shape (pair)') for f in pairs)} | {sum(f == '' for f in pairs)} | "
              f"{len(sub) - len(ok)} |")
    for r in rows:
        if "fates" in r and r["sep_px"] > 0 and r["fates"][1] == "":
            print(f"  pair kept: n {r['n']} {r['model']} {r['noise']} {r['level']} seed {r['seed']} sep {r['sep_px']:g} "
                  f"1:{1 / r['ratio']:g}")
        if "fates" in r and any(f == "outlier shape (pair)" for i, f in enumerate(r["fates"])
                                if not (r["sep_px"] > 0 and i == 1)):
            print(f"  single rejected: n {r['n']} {r['model']} {r['noise']} {r['level']} seed {r['seed']} "
                  f"sep {r['sep_px']:g} 1:{1 / r['ratio']:g}: {r['fates']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-beads", type=int, default=5)
    ap.add_argument("--n", default="3,4", help="beads per stack, comma-separated")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--models", default="gauss,pupil")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(a.min_beads, tuple(int(v) for v in a.n.split(",")), tuple(int(v) for v in a.seeds.split(",")),
               tuple(a.models.split(",")))
    table(rows, a.min_beads)
    total = time.perf_counter() - t0
    print(f"total {total:.0f} s")
    if a.out:
        json.dump({"min_beads": a.min_beads, "rows": rows, "total_s": total, "python": sys.version.split()[0]},
                  open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
