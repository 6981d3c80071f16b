"""Session 51, helper evaluate: uncertainty scores on every kind of table, and de-biasing's sigma power on tables with
repeated localizations of a molecule.

Part A (uncertainty): a 3D truth of 3,000 emitters (z -400..400 nm, photons 500-5,000, seed 0) and three predictions
with errors drawn at their own stated uncertainty: a network table (``sigma_*_nm``), an MLE table (``crlb_*_nm`` only,
10 % of ``crlb_z_nm`` NaN as rows held on the z bound), and 10 % of the network's ``sigma_x_nm`` NaN with those rows'
errors 10x (the worst rows without a sigma); :func:`error_scores`, :func:`sigma_calibration` and
:func:`zscore_by_neighbour`'s ``tail4`` (all right: about 1, 1 and the normal's 0.00006; over about 2,500 isolated
pairs the JSON's 0-0.0004 is one pair or none).

Part B (de-biasing): 2D tables of molecules on a 64 x 64 pixel field (100 nm pixels), photons log-uniform 300-10,000,
sigma = ``--sigma-k`` / sqrt(photons) (default 200 nm: sigma 2-12 nm), each molecule localized ``k`` times (1, or
1 + Poisson(``--k-mean``), default 9: 10 on average; the repeated localizations of an on-event, bright molecules'
repeats falling nearly on one sub-pixel spot), every localization pulled to its pixel centre by
``a px sin(2 pi u) / (2 pi)`` with ``a`` each ``--pull`` (pull independent of sigma) or ``--pull`` x sigma / median
sigma clipped to 0.95 (pull scaled by sigma). Lateral RMSE to the molecules' positions before and after ``debias``
with the measured power, 0 and 1. bench/evaluate51.json was written by

    OMP_NUM_THREADS=1 .venv/bin/python bench/evaluate51.py --rows 5000 --seeds 1 2 3 4 5 6 --pull 0.3 0.1 \
        --out bench/evaluate51.json
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import error_scores, sigma_calibration, zscore_by_neighbour
from plexloc.post.debias import debias
from plexloc.table import LocTable

PX = 100.0
SIGMA_K = 500.0  # sigma = SIGMA_K / sqrt(photons) nm (--sigma-k)


def uncertainty_tables(seed: int = 0, n: int = 3000):
    rng = np.random.default_rng(seed)
    fr = rng.integers(0, 300, n)
    x, y, z = rng.uniform(0, 6400, n), rng.uniform(0, 6400, n), rng.uniform(-400, 400, n)
    ph = rng.uniform(500, 5000, n)
    truth = LocTable({"frame": fr, "x_nm": x, "y_nm": y, "z_nm": z, "photons": ph})
    s = 1500 / np.sqrt(ph)
    sz = 2 * s

    def noisy(scale=1.0):
        return dict(frame=fr, x_nm=x + scale * s * rng.normal(size=n), y_nm=y + s * rng.normal(size=n),
                    z_nm=z + sz * rng.normal(size=n), photons=ph)
    net = LocTable({**noisy(), "sigma_x_nm": s, "sigma_y_nm": s, "sigma_z_nm": sz})
    cz = sz.copy()
    cz[rng.uniform(size=n) < 0.1] = np.nan
    mle = LocTable({**noisy(), "crlb_x_nm": s, "crlb_y_nm": s, "crlb_z_nm": cz})
    bad = rng.uniform(size=n) < 0.1
    scale = np.where(bad, 10.0, 1.0)
    sx = np.where(bad, np.nan, s)
    part = LocTable({**noisy(scale), "sigma_x_nm": sx, "sigma_y_nm": s, "sigma_z_nm": sz})
    return truth, {"network": net, "mle": mle, "network_nan_sigma_x": part}


def part_a() -> dict:
    truth, preds = uncertainty_tables()
    bound = {k: np.full(len(truth), 20.0) for k in ("crlb_x_nm", "crlb_y_nm", "crlb_z_nm")}
    out = {}
    for name, p in preds.items():
        m = match(truth, p, dim=3)
        es = error_scores(p, m, bound, dim=3)
        sc = sigma_calibration(p, m, truth, dim=3)
        nb = zscore_by_neighbour(p, m, truth)
        out[name] = {"zscore_rsd": [es[f"zscore_rsd_{a}"] for a in "xyz"],
                     "zscore_std": [es[f"zscore_std_{a}"] for a in "xyz"],
                     "sigma_cal": [sc[f"sigma_cal_{a}"] for a in "xyz"],
                     "tail4_isolated": nb[-1]["tail4"]}
    return out


def molecules(rng, n_mol: int, repeats: bool, scaled: bool, pull: float = 0.5, k_mean: float = 4.0):
    mx, my = rng.uniform(0, 64 * PX, n_mol), rng.uniform(0, 64 * PX, n_mol)
    ph = np.exp(rng.uniform(np.log(300), np.log(10000), n_mol))
    k = 1 + rng.poisson(k_mean, n_mol) if repeats else np.ones(n_mol, int)
    idx = np.repeat(np.arange(n_mol), k)
    s = SIGMA_K / np.sqrt(ph[idx])
    x = mx[idx] + s * rng.normal(size=len(idx))
    y = my[idx] + s * rng.normal(size=len(idx))
    a = np.clip(pull * s / np.median(s), 0, 0.95) if scaled else np.full(len(idx), pull)
    x = x + a * PX * np.sin(2 * np.pi * np.mod(x, PX) / PX) / (2 * np.pi)
    y = y + a * PX * np.sin(2 * np.pi * np.mod(y, PX) / PX) / (2 * np.pi)
    t = LocTable({"frame": np.arange(len(idx)), "x_nm": x, "y_nm": y, "z_nm": np.zeros(len(idx)),
                  "photons": ph[idx], "sigma_x_nm": s, "sigma_y_nm": s})
    return t, mx[idx], my[idx]


def rmse(t, tx, ty) -> float:
    return float(np.sqrt(np.mean((t["x_nm"] - tx) ** 2 + (t["y_nm"] - ty) ** 2)))


def _map_abs(u: np.ndarray) -> float:
    """The library's measure of a half's bias: mean |F(u) - u| (plexloc.post.debias._map_shift)."""
    order = np.argsort(u, kind="stable")
    d = np.empty(len(u))
    d[order] = (np.arange(len(u)) + 0.5) / len(u) - u[order]
    return float(np.abs(d).mean())


def _harmonic(u: np.ndarray) -> float:
    """Gridding energy sum_k |mean exp(2 pi i k u)|^2 / k^2, k = 1..3 (its counting noise ~ 1.64 / n_eff)."""
    return float(sum(abs(np.mean(np.exp(2j * np.pi * k * u))) ** 2 / k**2 for k in (1, 2, 3)))


NOISE_PERIODS = (0.6, 0.743, 1.15, 1.33, 1.52)


def _noise(v: np.ndarray, f) -> float:
    """``f`` of positions ``v`` at periods other than the pixel (whole periods), averaged: counting noise only."""
    out = []
    lo = float(v.min())
    for k in NOISE_PERIODS:
        per = k * PX
        n = np.floor((float(v.max()) - lo) / per)
        w = v[v < lo + n * per] - lo
        out.append(f(np.mod(w, per) / per))
    return float(np.mean(out))


def variant_power(pos: np.ndarray, sigma: np.ndarray, kind: str) -> float:
    """The sigma power of one axis (one slab) by two noise-corrected variants of the library's estimator, tried in
    session 51 and not adopted: ``quadrature`` (each half's mean |F(u) - u| less its noise at other periods, in
    quadrature) and ``harmonic`` (the first three harmonics' energy less theirs at other periods). 0 where neither half
    is above its noise, 1 where only the upper half is."""
    upper = sigma > np.median(sigma)
    ex, sg = [], []
    for half in (upper, ~upper):
        v = pos[half]
        u = np.mod(v, PX) / PX
        if kind == "quadrature":
            b, n = _map_abs(u), _noise(v, _map_abs)
            ex.append(math.sqrt(max(b * b - n * n, 0.0)))
        else:
            ex.append(math.sqrt(max(_harmonic(u) - _noise(v, _harmonic), 0.0)))
        sg.append(float(sigma[half].mean()))
    if ex[0] == 0:
        return 0.0
    if ex[1] == 0:
        return 1.0
    return float(np.clip(math.log(ex[0] / ex[1]) / math.log(sg[0] / sg[1]), 0.0, 1.0))


def part_b(rows: int, seeds, pull: float, k_mean: float) -> list[dict]:
    from plexloc.evaluate.gridding import gridding_check

    out = []
    for scaled in (False, True):
        for repeats in (False, True):
            for seed in seeds:
                rng = np.random.default_rng(seed)
                n_mol = int(rows / (1 + k_mean)) if repeats else rows
                t, tx, ty = molecules(rng, n_mol, repeats, scaled, pull, k_mean)
                chk = gridding_check(t["x_nm"], t["y_nm"], PX)
                row = {"sigma_k": SIGMA_K, "a": pull, "k_mean": k_mean,
                       "pull": "scaled by sigma" if scaled else "independent of sigma", "repeats": repeats,
                       "seed": seed, "rows": len(t), "molecules": n_mol, "before": rmse(t, tx, ty),
                       "gridding": [chk.dev_x, chk.dev_y, chk.noise], "gridded": chk.gridded}
                t0 = time.perf_counter()
                d, rep = debias(t, PX)
                row["seconds"] = time.perf_counter() - t0
                row["p"] = [rep.sigma_power.get("x"), rep.sigma_power.get("y")]
                row["halves"] = rep.sigma_halves
                row["measured"] = rmse(d, tx, ty)
                res = {}
                for p in (0.0, 1.0):
                    res[p] = debias(t, PX, sigma_power=p)[0]
                    row[f"p{p:g}"] = rmse(res[p], tx, ty)
                for kind in ("quadrature", "harmonic"):
                    pv = [variant_power(np.asarray(t[c], float), np.asarray(t["sigma_x_nm"], float), kind)
                          for c in ("x_nm", "y_nm")]
                    dx = debias(t, PX, sigma_power=pv[0])[0]["x_nm"] - tx
                    dy = debias(t, PX, sigma_power=pv[1])[0]["y_nm"] - ty
                    row[f"p_{kind}"] = pv
                    row[kind] = float(np.sqrt(np.mean(dx**2 + dy**2)))
                out.append(row)
                print(f"{row['pull']:22s} a {pull} repeats {str(repeats):5s} seed {seed} rows {len(t):6d} "
                      f"({'gridded' if chk.gridded else 'within noise'} {chk.dev_x:.2f}/{chk.dev_y:.2f} vs "
                      f"{chk.noise:.2f}): p {row['p'][0]:.2f}/{row['p'][1]:.2f} (quadrature {row['p_quadrature'][0]:.2f}"
                      f"/{row['p_quadrature'][1]:.2f}, harmonic {row['p_harmonic'][0]:.2f}/{row['p_harmonic'][1]:.2f})  "
                      f"RMSE before {row['before']:.2f}  measured p {row['measured']:.2f}  p=0 {row['p0']:.2f}  p=1 "
                      f"{row['p1']:.2f}  quadrature {row['quadrature']:.2f}  harmonic {row['harmonic']:.2f} nm", flush=True)
    return out


def summary(rows: list[dict]) -> list[dict]:
    """Per (pull, kind, repeats): the mean powers and RMSEs over the seeds."""
    out = []
    for key in sorted({(r["a"], r["pull"], r["repeats"]) for r in rows}):
        rs = [r for r in rows if (r["a"], r["pull"], r["repeats"]) == key]
        best = [min(r["p0"], r["p1"]) for r in rs]
        s = {"a": key[0], "pull": key[1], "repeats": key[2], "n": len(rs),
             "gridded": sum(r["gridded"] for r in rs)}
        for k in ("p", "p_quadrature", "p_harmonic"):
            s[k] = float(np.mean([r[k] for r in rs]))
        for k in ("before", "measured", "p0", "p1", "quadrature", "harmonic"):
            s[k] = float(np.mean([r[k] for r in rs]))
        for k in ("measured", "quadrature", "harmonic"):
            s[f"{k}_over_best"] = float(np.mean([r[k] - b for r, b in zip(rs, best)]))
        out.append(s)
        print(f"{key[1]:22s} a {key[0]} repeats {str(key[2]):5s} ({s['gridded']}/{len(rs)} gridded): p {s['p']:.2f} "
              f"quadrature {s['p_quadrature']:.2f} harmonic {s['p_harmonic']:.2f} | RMSE before {s['before']:.2f} "
              f"measured {s['measured']:.3f} p0 {s['p0']:.3f} p1 {s['p1']:.3f} quadrature {s['quadrature']:.3f} "
              f"harmonic {s['harmonic']:.3f} | over the better of p0/p1: measured {s['measured_over_best']:.3f} "
              f"quadrature {s['quadrature_over_best']:.3f} harmonic {s['harmonic_over_best']:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--pull", type=float, nargs="+", default=[0.5, 0.1])
    ap.add_argument("--k-mean", type=float, default=9.0)
    ap.add_argument("--sigma-k", type=float, default=200.0)
    args = ap.parse_args()
    global SIGMA_K
    SIGMA_K = args.sigma_k
    res = {"args": vars(args)}
    if not args.skip_a:
        res["uncertainty"] = part_a()
        for k, v in res["uncertainty"].items():
            print(k, {a: [None if not math.isfinite(x) else round(x, 4) for x in b] if isinstance(b, list) else b
                      for a, b in v.items()})
    t0 = time.perf_counter()
    res["debias"] = [r for a in args.pull for r in part_b(args.rows, args.seeds, a, args.k_mean)]
    res["debias_summary"] = summary(res["debias"])
    res["seconds"] = time.perf_counter() - t0
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1, default=float)


if __name__ == "__main__":
    main()
