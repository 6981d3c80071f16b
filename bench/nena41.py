"""NeNA when the precision varies from row to row: the classic single-σ NeNA against the median, rms and mean of the
per-row σ, the NeNA expected from the predicted σ and the fitted scale k of the predicted σ (session 41).

Tables: ``blinking_table``'s molecules and on-frames, each localization redrawn about its molecule with its own σ:
``σ = s0 · sqrt(N0 / N)`` (s0 = 10 nm at N0 = 1000 photons) with photons log-normal (median 1000; ln-spread 0.5
"narrow", 1.2 "wide") or exponential (mean 1000, floored at 100, as blinking_table draws them), or one σ of 10 nm
(the control). The predicted σ (``sigma_x_nm, sigma_y_nm``, or ``crlb_x_nm, crlb_y_nm``) are the σ the rows were
drawn with, or those divided by 1.5 ("1.5x too small"). Sparse: 8,000 molecules over 40 x 40 µm; dense: 20,000 over
10 x 10 µm (chance neighbours).

    OMP_NUM_THREADS=1 .venv/bin/python bench/nena41.py --out bench/nena41.json [--seeds 3] [--million]
    OMP_NUM_THREADS=1 PYTHONPATH=<checkout of 1b56865>/src .venv/bin/python bench/nena41.py --out bench/nena41_before.json ...
    .venv/bin/python bench/nena41.py --table bench/nena41.json bench/nena41_before.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/nena41.py --compare-old <checkout of 1b56865>/src --out bench/nena41_timing.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.render.nena import nena
from plexloc.table import LocTable

S0_NM, N0 = 10.0, 1000.0


def make_table(photons: str, *, dense: bool = False, seed: int = 0, too_small: float = 1.0, columns: str = "sigma",
               anisotropy: float = 1.0, n_molecules: int | None = None, fov_nm: float | None = None) -> LocTable:
    """A blinking table whose rows have the precision of their photons (module docstring)."""
    rng = np.random.default_rng(seed)
    m = n_molecules or (20000 if dense else 8000)
    fov = fov_nm or (10000.0 if dense else 40000.0)
    t = blinking_table(structure_points("uniform", m, fov_nm=fov, rng=rng), n_frames=1000, rng=rng,
                       precision_nm=1.0, mean_on_frames=2.5)
    n = len(t)
    if photons == "constant":
        n_ph = np.full(n, N0)
    elif photons.startswith("lognormal"):
        n_ph = N0 * np.exp(rng.normal(0.0, float(photons.split(":")[1]), n))
    elif photons == "exponential":
        n_ph = np.maximum(100.0, rng.exponential(N0, n))
    else:
        raise ValueError(photons)
    sx = S0_NM * np.sqrt(N0 / n_ph)
    sy = anisotropy * sx
    x = np.asarray(t["x_true_nm"]) + rng.normal(0.0, 1.0, n) * sx
    y = np.asarray(t["y_true_nm"]) + rng.normal(0.0, 1.0, n) * sy
    cols = {c: np.asarray(t[c]) for c in ("frame", "id", "x_true_nm", "y_true_nm")}
    cols.update(x_nm=x, y_nm=y, z_nm=np.zeros(n), photons=n_ph)
    cx, cy = ("sigma_x_nm", "sigma_y_nm") if columns == "sigma" else ("crlb_x_nm", "crlb_y_nm")
    cols[cx], cols[cy] = sx / too_small, sy / too_small
    return LocTable(cols)


CASES = {  # name: make_table keywords
    "constant 10 nm": dict(photons="constant"),
    "log-normal narrow (0.5)": dict(photons="lognormal:0.5"),
    "log-normal wide (1.2)": dict(photons="lognormal:1.2"),
    "exponential": dict(photons="exponential"),
    "log-normal wide, CRLB columns": dict(photons="lognormal:1.2", columns="crlb"),
    "log-normal wide, σ_y = 1.5 σ_x": dict(photons="lognormal:1.2", anisotropy=1.5),
    "constant, predicted 1.5x too small": dict(photons="constant", too_small=1.5),
    "log-normal wide, predicted 1.5x too small": dict(photons="lognormal:1.2", too_small=1.5),
    "dense constant 10 nm": dict(photons="constant", dense=True),
    "dense log-normal narrow (0.5)": dict(photons="lognormal:0.5", dense=True),
    "dense log-normal wide (1.2)": dict(photons="lognormal:1.2", dense=True),
    "dense exponential": dict(photons="exponential", dense=True),
}


def measure(t: LocTable) -> dict:
    t0 = time.perf_counter()
    r = nena(t)
    sec = time.perf_counter() - t0
    col = "sigma_x_nm" if "sigma_x_nm" in t else "crlb_x_nm"
    coly = col.replace("_x_", "_y_")
    true_sx = np.asarray(t[col]) * 1.0
    s = np.sqrt((np.asarray(t[col]) ** 2 + np.asarray(t[coly]) ** 2) / 2)  # per-axis rms of the row's predicted σ
    out = {"rows": len(t), "pairs": int(len(r.distances_nm)), "nena_nm": r.sigma_nm, "nena_se_nm": r.sigma_se_nm,
           "chance_share": r.chance_share, "median_sigma_nm": float(np.median(true_sx)),
           "rms_sigma_nm": float(np.sqrt(np.mean(s**2))), "mean_sigma_nm": float(np.mean(s)), "seconds": sec}
    for k in ("expected_sigma_nm", "scale_k", "scale_k_se"):
        out[k] = getattr(r, k, None)
    return out


def table(after: str, before: str | None) -> str:
    """The markdown table of RESULTS: seed 0's values, the after-run's expected NeNA and k (± standard error), and
    the spread of NeNA - expected over the seeds in NeNA's standard errors."""
    a = json.load(open(after))["cases"]
    b = json.load(open(before))["cases"] if before else {}
    rows = ["| table | NeNA before (nm) | NeNA after | median σ | mean σ | rms σ | expected NeNA | k | "
            "(NeNA - expected) / SE over seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for name, runs in a.items():
        r = runs[0]
        z = ", ".join(f"{(q['nena_nm'] - q['expected_sigma_nm']) / q['nena_se_nm']:+.1f}" for q in runs)
        old = f"{b[name][0]['nena_nm']:.2f}" if name in b else "-"
        rows.append(f"| {name} | {old} | {r['nena_nm']:.2f} ± {r['nena_se_nm']:.2f} | {r['median_sigma_nm']:.2f} | "
                    f"{r['mean_sigma_nm']:.2f} | {r['rms_sigma_nm']:.2f} | {r['expected_sigma_nm']:.2f} | "
                    f"{r['scale_k']:.3f} ± {r['scale_k_se']:.3f} | {z} |")
    return "\n".join(rows)


def compare_timing(old_src: str) -> dict:
    """NeNA's seconds on about 10^6 rows, this checkout's against the nena.py of ``old_src`` (a checkout's src),
    alternated three times in one process (a shared machine's load moves the seconds of separate runs by 2x)."""
    import importlib.util
    import sys

    from plexloc.render import nena as new

    spec = importlib.util.spec_from_file_location("nena_old", f"{old_src}/plexloc/render/nena.py")
    old = importlib.util.module_from_spec(spec)
    sys.modules["nena_old"] = old
    spec.loader.exec_module(old)
    out = {}
    for name, an in (("isotropic", 1.0), ("σ_y = 1.5 σ_x", 1.5)):
        t = make_table("lognormal:1.2", n_molecules=133_000, fov_nm=163_000.0, seed=0, anisotropy=an)
        sec: dict = {"old": [], "new": []}
        for _ in range(3):
            for key, mod in (("old", old), ("new", new)):
                t0 = time.perf_counter()
                mod.nena(t)
                sec[key].append(time.perf_counter() - t0)
        out[name] = {"rows": len(t), **{f"{k}_seconds": v for k, v in sec.items()}}
        print(f"10^6 {name} ({len(t)} rows): old min {min(sec['old']):.2f} s, new min {min(sec['new']):.2f} s "
              f"(old {', '.join(f'{x:.2f}' for x in sec['old'])}; new {', '.join(f'{x:.2f}' for x in sec['new'])})",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", nargs="+", metavar="JSON", help="print the table of AFTER.json [BEFORE.json] and exit")
    ap.add_argument("--out")
    ap.add_argument("--compare-old", metavar="SRC", help="time NeNA against SRC/plexloc/render/nena.py and exit")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--million", action="store_true", help="also time NeNA on about 10^6 rows")
    a = ap.parse_args()
    if a.table:
        print(table(a.table[0], a.table[1] if len(a.table) > 1 else None))
        return
    if a.compare_old:
        res = compare_timing(a.compare_old)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(res, f, indent=1)
        return
    res: dict = {"cases": {}}
    for name, kw in CASES.items():
        runs = [measure(make_table(seed=s, **kw)) for s in range(a.seeds)]
        res["cases"][name] = runs
        r = runs[0]
        fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
        print(f"{name:45s} rows {r['rows']:7d} pairs {r['pairs']:6d} NeNA {fmt(r['nena_nm'])} ± {fmt(r['nena_se_nm'])}"
              f" chance {100 * r['chance_share']:.1f}% | median σ {fmt(r['median_sigma_nm'])} rms {fmt(r['rms_sigma_nm'])}"
              f" mean {fmt(r['mean_sigma_nm'])} | expected {fmt(r['expected_sigma_nm'])} k {fmt(r['scale_k'])}"
              f" ± {fmt(r['scale_k_se'])} | {r['seconds']:.2f} s"
              + ("".join(f"\n{'':45s} seed {i}: NeNA {fmt(q['nena_nm'])} expected {fmt(q['expected_sigma_nm'])} "
                         f"k {fmt(q['scale_k'])}" for i, q in enumerate(runs[1:], 1))), flush=True)
    if a.million:  # about 10^6 rows: 133,000 molecules over 163 x 163 µm (the sparse density), log-normal wide
        res["million"] = {}
        for name, an in (("isotropic", 1.0), ("σ_y = 1.5 σ_x", 1.5)):
            t = make_table("lognormal:1.2", n_molecules=133_000, fov_nm=163_000.0, seed=0, anisotropy=an)
            r = min((measure(t) for _ in range(2)), key=lambda q: q["seconds"])  # the faster of two (a shared machine)
            res["million"][name] = r
            print(f"10^6 {name}: rows {r['rows']} pairs {r['pairs']} NeNA {r['nena_nm']:.2f} seconds {r['seconds']:.2f}",
                  flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, default=float)


if __name__ == "__main__":
    main()
