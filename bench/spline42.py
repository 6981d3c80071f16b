"""Session 42: where a spline calibration from dim beads loses z accuracy, and smoothing along z against it.

    # measurement: z RMSE / per-z bias against the number of beads, their photons, a noise-free stack (the spline's
    # own error) and the registration (true bead positions given instead of registered)
    OMP_NUM_THREADS=1 python bench/spline42.py measure --out bench/spline42_measure.json
    # the smoothing (default, from the measured noise) against none on bench/beads42.py's own fields: Gaussian dim and
    # bright beads, seeds 1-4, and the scalar-pupil PSF
    OMP_NUM_THREADS=1 python bench/spline42.py smooth --out bench/spline42_smooth.json
    # both (~10 min on one thread)
    OMP_NUM_THREADS=1 python bench/spline42.py all --out bench/spline42.json
    python bench/spline42.py table --out bench/spline42.json

Beads: bench/beads42.py's Gaussian astigmatic PSF (plexloc's AstigmaticPSF defaults), 100 nm pixels, 33 slices 50 nm
apart over +-800 nm, bg 20 photons/px, Poisson, random sub-pixel positions, all at z = 0, here on an 8 x 5 grid 20 px
apart (the first ``n`` of its 40 places are used). Score: bench/beads42.py's -- 600 single emitters rendered with the
TRUE PSF (5000 photons, bg 20, z -600..600 nm), MLE fits with the calibrated spline; RMSE and the RMS over z of the
per-z mean error. ``crlb_z_nm`` is the mean CRLB of the noise-free calibration's fits of the same emitters (a noisy
spline's own CRLB is too small: its z derivatives are noisy and steep), ``rmse_over_crlb_z`` against it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import beads42 as b42  # noqa: E402

NX, NY = 8, 5


def positions(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.array([((15 + b42.SPACING * (i % NX)) * b42.PX, (15 + b42.SPACING * (i // NX)) * b42.PX) for i in range(NX * NY)])
    return (g + rng.uniform(-50, 50, g.shape))[:n]


def stack(n: int, photons: float, seed: int, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    from plexloc.calibrate.synthetic import bead_field

    xy = positions(seed, n)
    rows = (n - 1) // NX + 1
    shape = (b42.SPACING * rows + 10, b42.SPACING * NX + 10)
    mu = bead_field("gauss", [(x, y, photons) for x, y in xy], b42.ZS, shape) + b42.BG
    if not noise:
        return mu, xy
    return np.random.default_rng(10_000 + seed).poisson(mu).astype(np.float64), xy


@contextlib.contextmanager
def true_registration(xy: np.ndarray):
    """calibrate_spline with each bead's shift from its true position (z shift 0: all beads at z = 0) instead of the
    registration."""
    import plexloc.calibrate.spline as sp

    seen = {}
    orig_extract, orig_reg = sp.extract_rois, sp._register_all

    def extract(st, rows, cols, roi):
        seen["rc"] = (np.asarray(rows), np.asarray(cols))
        return orig_extract(st, rows, cols, roi)

    def reg(clean, *, z_shifts, rounds=2):
        rows, cols = seen["rc"]
        xp, yp = xy[:, 0] / b42.PX - 0.5, xy[:, 1] / b42.PX - 0.5
        j = np.argmin(np.hypot(cols[:, None] - xp[None], rows[:, None] - yp[None]), axis=1)
        sh = np.column_stack([np.zeros(len(rows)), rows - yp[j], cols - xp[j]])
        return sh, np.zeros(len(rows))

    sp.extract_rois, sp._register_all = extract, reg
    try:
        yield
    finally:
        sp.extract_rois, sp._register_all = orig_extract, orig_reg


def calibrate(st, **kw):
    from plexloc.calibrate.spline import calibrate_spline

    return calibrate_spline([st], z_step_nm=b42.DZ, px_size_nm=b42.PX, roi_px=b42.ROI, **kw)


_REF: dict = {}


def ref_crlb() -> np.ndarray:
    """CRLB (x, y, z) of the test emitters under the noise-free calibration (20 beads, registered)."""
    if "crlb" not in _REF:
        st, _ = stack(20, 2e4, 0, noise=False)
        _REF["crlb"] = b42.score(calibrate(st).calibration, "gauss")["crlb"]
    return _REF["crlb"]


def one(n: int, photons: float, seed: int, *, noise: bool = True, oracle: bool = False, **kw) -> dict:
    t0 = time.perf_counter()
    st, xy = stack(n, photons, seed, noise)
    with true_registration(xy) if oracle else contextlib.nullcontext():
        res = calibrate(st, **kw)
    s = b42.score(res.calibration, "gauss")
    row = dict(n_beads=n, photons=photons, seed=seed, noise=noise, registration="true" if oracle else "registered",
               **{k: v for k, v in kw.items()})
    row.update(b42.summarize(s, ref_crlb()))
    row["own_crlb_z_nm"] = float(np.sqrt(np.mean(s["crlb"][:, 2] ** 2)))
    row["n_used"] = int(res.summary["n_beads_used"][0])
    row["z_smoothing"] = res.summary.get("z_smoothing")
    zs = row["z_smoothing"] or [{}]
    row["lam"], row["dof"] = zs[0].get("lam", 0.0), zs[0].get("dof", float(len(b42.ZS)))
    row["seconds"] = time.perf_counter() - t0
    print(f"n {n:3d} ph {photons:7.0f} seed {seed} noise {int(noise)} reg {row['registration']:10s} {kw} used "
          f"{row['n_used']}: z RMSE {row['rmse_z_nm']:.1f} per-z bias {row['bias_z_zrms_nm']:.1f} lat RMSE "
          f"{row['rmse_lat_nm']:.1f} /crlb z {row['rmse_over_crlb_z']:.2f} lam {row['lam']:.3g} dof {row['dof']:.1f} {row['seconds']:.1f}s", flush=True)
    return row


def run_measure(seeds=(1, 2), smoothings=(0.0, None)) -> list[dict]:
    """z_smooth 0: the plain average (the calibration before session 42's smoothing); None: the default."""
    rows = []
    for zs in smoothings:
        kw = {"z_smooth": zs}
        rows.append(one(20, 2e4, 0, noise=False, **kw))
        rows.append(one(20, 2e4, 0, noise=False, oracle=True, **kw))
        for seed in seeds:
            for ph in (3000.0, 1e4, 2e4):
                for n in (5, 10, 20, 40):
                    rows.append(one(n, ph, seed, **kw))
            for ph in (3000.0, 2e4):
                rows.append(one(20, ph, seed, oracle=True, **kw))
    return rows


def table(rows: list[dict]) -> None:
    print("| PSF | beads | photons | seed | noise | registration | options | used | z RMSE nm | per-z z bias rms nm | "
          "lateral RMSE nm | z RMSE / CRLB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        opt = "off (plain average)" if r.get("z_smooth") == 0.0 else f"auto (dof {r.get('dof', float('nan')):.1f})"
        print(f"| {r.get('model', 'gauss')} | {r['n_beads']} | {r['photons']:.0f} | {r['seed']} | {'Poisson' if r['noise'] else 'none'} | "
              f"{r['registration']} | {opt} | {r['n_used']} | {r['rmse_z_nm']:.1f} | {r['bias_z_zrms_nm']:.1f} | "
              f"{r['rmse_lat_nm']:.1f} | {r['rmse_over_crlb_z']:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["measure", "smooth", "all", "table"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--seeds", default="1,2")
    a = ap.parse_args(argv)
    if a.what == "table":
        d = json.load(open(a.out))
        for k in ("measure", "smooth"):
            if d.get(k):
                print(k)
                table(d[k])
                summary_table(d[k])
        return 0
    seeds = tuple(int(s) for s in a.seeds.split(","))
    t0 = time.perf_counter()
    out: dict = {"python": sys.version.split()[0], "crlb_z_nm": None}
    if a.what in ("measure", "all"):
        out["measure"] = run_measure(seeds)
    if a.what in ("smooth", "all"):
        out["smooth"] = run_smooth()
    out["crlb_z_nm"] = float(np.sqrt(np.mean(ref_crlb()[:, 2] ** 2)))
    out["total_s"] = time.perf_counter() - t0
    for k in ("measure", "smooth"):
        if out.get(k):
            print(k)
            table(out[k])
            summary_table(out[k])
    print(f"reference CRLB z {out['crlb_z_nm']:.1f} nm; total {out['total_s']:.0f} s")
    if a.out:
        json.dump(out, open(a.out, "w"), indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return 0


def run_smooth(seeds=(1, 2, 3, 4)) -> list[dict]:
    """bench/beads42.py's own 20-bead fields (5 x 4 grid): Gaussian dim (3000 photons) and bright (2e4) over
    ``seeds``, scalar-pupil PSF dim (1.5e4) and bright (1e5) seed 1; plain average against the default smoothing."""
    from plexloc.calibrate.spline import calibrate_spline

    rows = []
    cases = [("gauss", ph, sd) for ph in (3000.0, 2e4) for sd in seeds] + [("pupil", ph, 1) for ph in (1.5e4, 1e5)]
    ref: dict = {}
    for model, ph, seed in cases:
        st, _ = b42.field(model, seed=seed, photons=ph)
        for zs in (0.0, None):
            t0 = time.perf_counter()
            res = calibrate_spline([st], z_step_nm=b42.DZ, px_size_nm=b42.PX, roi_px=b42.ROI, z_smooth=zs)
            s = b42.score(res.calibration, model)
            if model == "gauss":
                rc = ref_crlb()
            else:  # the bright, plain pupil calibration's CRLB (the first of its cases)
                rc = ref.setdefault(model, s["crlb"])
            row = dict(bench="beads42", model=model, n_beads=20, photons=ph, seed=seed, noise=True,
                       registration="registered", z_smooth=zs)
            row.update(b42.summarize(s, rc))
            row["n_used"] = int(res.summary["n_beads_used"][0])
            zi = res.summary["z_smoothing"] or [{}]
            row["lam"], row["dof"] = zi[0].get("lam", 0.0), zi[0].get("dof", float(len(b42.ZS)))
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(f"beads42 {model} ph {ph:7.0f} seed {seed} z_smooth {zs}: z RMSE {row['rmse_z_nm']:.1f} per-z bias "
                  f"{row['bias_z_zrms_nm']:.1f} lat RMSE {row['rmse_lat_nm']:.1f} lam {row['lam']:.3g} dof "
                  f"{row['dof']:.1f} {row['seconds']:.1f}s", flush=True)
    return rows


def summary_table(rows: list[dict]) -> None:
    """Mean over seeds, plain (off) against smoothed (auto)."""
    keys = sorted({(r.get("model", "gauss"), r["n_beads"], r["photons"], r["noise"], r["registration"]) for r in rows},
                  key=lambda k: (k[0], not k[3], k[4], k[2], k[1]))
    print("| PSF | beads | photons | noise | registration | seeds | z RMSE nm off -> auto | per-z z bias rms nm off -> "
          "auto | lateral RMSE nm off -> auto | z RMSE / CRLB off -> auto | dof (of 33) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        sel = [r for r in rows if (r.get("model", "gauss"), r["n_beads"], r["photons"], r["noise"], r["registration"]) == k]
        off = [r for r in sel if r.get("z_smooth") == 0.0]
        on = [r for r in sel if r.get("z_smooth") is None]
        if not off or not on:
            continue
        m = lambda rs, key: float(np.mean([r[key] for r in rs]))  # noqa: E731
        print(f"| {k[0]} | {k[1]} | {k[2]:.0f} | {'Poisson' if k[3] else 'none'} | {k[4]} | {len(on)} | "
              f"{m(off, 'rmse_z_nm'):.1f} -> {m(on, 'rmse_z_nm'):.1f} | {m(off, 'bias_z_zrms_nm'):.1f} -> "
              f"{m(on, 'bias_z_zrms_nm'):.1f} | {m(off, 'rmse_lat_nm'):.1f} -> {m(on, 'rmse_lat_nm'):.1f} | "
              f"{m(off, 'rmse_over_crlb_z'):.2f} -> {m(on, 'rmse_over_crlb_z'):.2f} | {m(on, 'dof'):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
