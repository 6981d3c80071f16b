"""Session 41: the bead calibration's double-bead check (``_second_bead`` / ``_double_fit`` in
plexloc/calibrate/beads.py): its decisions on a test set and its cost, for a before/after comparison.

    # decisions (one bead per 31 x 31 stack, detect_beads with roi 15) and per-bead seconds of the check
    OMP_NUM_THREADS=1 python bench/beads41.py decisions --out bench/beads41_after.json
    # seconds of calibrate_spline (4, 20, 50 beads) and of the check alone, one thread (--model pupil: beads of the
    # pupil PSF, whose single spots never fit to noise, so that the check fits every slice's pair)
    OMP_NUM_THREADS=1 python bench/beads41.py timing --out bench/beads41_timing_after.json
    # compare two decision files (same reason on every case; separations within --tol px)
    python bench/beads41.py compare bench/beads41_before.json bench/beads41_after.json

Run the 'before' files with PYTHONPATH pointing at the old source tree.

Test set: beads rendered with plexloc's Gaussian astigmatic model (as the calibration tests) and with the scalar
pupil-function astigmatic PSF of plexloc.calibrate.synthetic (Airy rings, non-Gaussian defocus); singles bright and
dim at bead focus -300, 0, +300 nm off the stack's centre and two sub-pixel positions; doubles 1-4 px apart along x,
along y and diagonally, brightness ratios 1:1, 1:2, 1:4, bright and dim; Poisson noise (photons) and an
EMCCD-like excess noise (gamma of the Poisson count, twice the variance).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)
FRAME = (31, 31)
ROI = 15
BG = 20.0


def _gauss_render(emitters, dz_nm, shape=FRAME, z=ZS):
    """Noise-free expected photons (n_z, H, W) of emitters [(x_nm, y_nm, photons)] at bead focus ``dz_nm``."""
    from plexloc.psf import AstigmaticPSF

    psf = AstigmaticPSF(px_size_nm=(PX, PX), roi_px=15)
    xy = np.asarray([e[:2] for e in emitters], float)
    ph = np.asarray([e[2] for e in emitters], float)
    n = len(xy)
    zz = (z[:, None] + np.full(n, dz_nm)[None, :]).ravel()
    frames = psf.render(
        torch.tensor(np.tile(xy[:, 0], len(z)), dtype=torch.float32),
        torch.tensor(np.tile(xy[:, 1], len(z)), dtype=torch.float32),
        torch.tensor(zz, dtype=torch.float32),
        torch.tensor(np.tile(ph, len(z)), dtype=torch.float32),
        torch.arange(len(z)).repeat_interleave(n),
        n_frames=len(z),
        frame_shape=shape,
    )
    return frames.numpy().astype(np.float64)


_PUPIL_CACHE: dict = {}


def _pupil_render(emitters, dz_nm, shape=FRAME, z=ZS):
    from plexloc.calibrate.synthetic import PupilAstigmaticBeads, _bead_windows, _fine_size

    m = PupilAstigmaticBeads()
    key = (float(dz_nm), len(z), float(z[0]))
    if key not in _PUPIL_CACHE:
        _PUPIL_CACHE[key] = m.fine_stack(z + dz_nm, _fine_size(21, m.oversample))
    out = np.zeros((len(z), *shape))
    for x, y, ph in emitters:
        win, r0, c0 = _bead_windows(m, z + dz_nm, x, y, 21, fine=_PUPIL_CACHE[key])
        rs, cs, re, ce = max(r0, 0), max(c0, 0), min(r0 + 21, shape[0]), min(c0 + 21, shape[1])
        out[:, rs:re, cs:ce] += ph * win[:, rs - r0 : re - r0, cs - c0 : ce - c0]
    return out


def cases():
    """The test set: dicts with name, model, noise, emitters, dz, seed, and the truth (single / double)."""
    cx, cy = 15.5 * PX, 15.5 * PX
    out = []
    for model in ("gauss", "pupil"):
        bright, dim = (2e4, 3e3) if model == "gauss" else (1e5, 1.5e4)
        for noise in ("poisson", "emccd"):
            seed = 0
            for ph, tag in ((bright, "bright"), (dim, "dim")):
                for dz in (-300.0, 0.0, 300.0):
                    for off in ((0.0, 0.0), (37.0, -21.0)):
                        seed += 1
                        out.append(dict(name=f"{model}/{noise}/single/{tag}/dz{dz:+.0f}/off{off[0]:.0f}",
                                        model=model, noise=noise, truth="single", sep_px=0.0, ratio=0.0, dz=dz,
                                        emitters=[(cx + off[0], cy + off[1], ph)], seed=seed))
            for ph, tag in ((bright, "bright"), (dim, "dim")):
                for sep in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
                    for r in (1.0, 0.5, 0.25):
                        for ang, atag in ((0.0, "x"), (90.0, "y"), (45.0, "diag")):
                            if tag == "dim" and atag != "diag":
                                continue
                            if noise == "emccd" and atag == "y":
                                continue
                            seed += 1
                            u, v = np.cos(np.radians(ang)), np.sin(np.radians(ang))
                            h = sep * PX / 2
                            dz = (0.0, 150.0, -150.0)[seed % 3]
                            em = [(cx - h * u + 13.0, cy - h * v - 7.0, ph), (cx + h * u + 13.0, cy + h * v - 7.0, ph * r)]
                            out.append(dict(name=f"{model}/{noise}/double/{tag}/sep{sep:g}/ratio1:{1 / r:g}/{atag}",
                                            model=model, noise=noise, truth="double", sep_px=sep, ratio=r, dz=dz,
                                            emitters=em, seed=seed))
    return out


def render_case(c) -> np.ndarray:
    mu = (_gauss_render if c["model"] == "gauss" else _pupil_render)(c["emitters"], c["dz"]) + BG
    rng = np.random.default_rng(1000 + c["seed"] + (0 if c["noise"] == "poisson" else 500) + (0 if c["model"] == "gauss" else 7000))
    counts = rng.poisson(mu).astype(np.float64)
    if c["noise"] == "emccd":
        counts = np.where(counts > 0, rng.gamma(np.maximum(counts, 1e-9), 1.0), 0.0)
    return counts


def run_decisions(out_path: str) -> None:
    from plexloc.calibrate.beads import detect_beads

    rows = []
    t_all = time.perf_counter()
    for c in cases():
        stack = render_case(c)
        t0 = time.perf_counter()
        sel = detect_beads(stack, roi_px=ROI)
        dt = time.perf_counter() - t0
        # the bead nearest the centre
        i = int(np.argmin(np.hypot(sel.rows - 15, sel.cols - 15))) if len(sel.rows) else -1
        rows.append(dict(name=c["name"], truth=c["truth"], sep_true_px=c["sep_px"], ratio=c["ratio"],
                         n_found=int(len(sel.rows)), reasons=[str(r) for r in sel.reason],
                         reason=str(sel.reason[i]) if i >= 0 else "none",
                         sep_px=(None if i < 0 or not np.isfinite(sel.separation_px[i]) else float(sel.separation_px[i])),
                         seconds=dt))
        print(f"{c['name']:55s} found {len(sel.rows)} {rows[-1]['reason']!r:26s} sep {rows[-1]['sep_px']} {dt:.3f}s",
              flush=True)
    json.dump(dict(cases=rows, total_s=time.perf_counter() - t_all, python=sys.version.split()[0]),
              open(out_path, "w"), indent=1)


def _grid_stack(n_beads: int, z=ZS, seed=0, model="gauss") -> np.ndarray:
    """n beads on a grid 20 px apart (2e4 photons Gaussian astigmatic model, or 1e5 photons pupil PSF; bg 20),
    Poisson, photons."""
    k = int(np.ceil(np.sqrt(n_beads)))
    H = W = 20 * k + 10
    rng = np.random.default_rng(seed)
    ph = 2e4 if model == "gauss" else 1e5
    em = [((15 + 20 * (i % k)) * PX + rng.uniform(-50, 50), (15 + 20 * (i // k)) * PX + rng.uniform(-50, 50), ph)
          for i in range(n_beads)]
    dzs = rng.uniform(-40, 40, n_beads) if model == "gauss" else rng.choice([-30.0, 0.0, 30.0], n_beads)
    mu = np.full((len(z), H, W), BG)
    for e, dz in zip(em, dzs):
        mu += (_gauss_render if model == "gauss" else _pupil_render)([e], dz, shape=(H, W), z=z)
    return rng.poisson(mu).astype(np.float64)


def run_timing(out_path: str, n_list=(4, 20, 50), repeats: int = 1, model: str = "gauss") -> None:
    from plexloc.calibrate import calibrate_spline
    from plexloc.calibrate import beads as B

    res = []
    for n in n_list:
        for z, ztag in ((ZS, "33 slices (50 nm)"), (np.arange(-1000.0, 1000.1, 20.0), "101 slices (20 nm)")):
            if n == 50 and len(z) > 33:
                continue
            if model != "gauss" and len(z) > 33:
                continue
            stack = _grid_stack(n, z=z, model=model)
            dz = float(z[1] - z[0])
            # the check alone, timed inside calibrate_spline
            orig = B._second_bead
            spent = [0.0]

            def timed(*a, **k):
                t0 = time.perf_counter()
                try:
                    return orig(*a, **k)
                finally:
                    spent[0] += time.perf_counter() - t0

            B._second_bead = timed
            try:
                best, best_chk = np.inf, np.inf
                for _ in range(repeats):
                    spent[0] = 0.0
                    t0 = time.perf_counter()
                    r = calibrate_spline([stack], z_step_nm=dz, px_size_nm=PX, roi_px=ROI)
                    t = time.perf_counter() - t0
                    best, best_chk = min(best, t), min(best_chk, spent[0])
            finally:
                B._second_bead = orig
            row = dict(model=model, n_beads=n, slices=ztag, calibrate_spline_s=best, double_check_s=best_chk,
                       n_used=r.summary["n_beads_used"], rejected=r.summary["rejected"])
            print(row, flush=True)
            res.append(row)
    json.dump(dict(rows=res, python=sys.version.split()[0]), open(out_path, "w"), indent=1)


def compare(a_path: str, b_path: str, tol: float) -> int:
    a = {r["name"]: r for r in json.load(open(a_path))["cases"]}
    b = {r["name"]: r for r in json.load(open(b_path))["cases"]}
    bad, dsep = 0, []
    for name, ra in a.items():
        rb = b[name]
        same = ra["reasons"] == rb["reasons"]
        if ra["sep_px"] is not None and rb["sep_px"] is not None:
            dsep.append(abs(ra["sep_px"] - rb["sep_px"]))
            same &= dsep[-1] <= tol
        else:
            same &= (ra["sep_px"] is None) == (rb["sep_px"] is None)
        if not same:
            bad += 1
            print("DIFFERENT", name, ra["reasons"], ra["sep_px"], "->", rb["reasons"], rb["sep_px"])
    ta, tb = sum(r["seconds"] for r in a.values()), sum(r["seconds"] for r in b.values())
    print(f"{len(a)} cases, {bad} different; max |separation change| {max(dsep, default=0):.4f} px over {len(dsep)} "
          f"doubles; detect_beads total {ta:.1f} s -> {tb:.1f} s")
    return bad


def table(path: str) -> None:
    """Decisions table: per (model, noise, truth, brightness, separation, ratio) how many cases were called double."""
    rows = json.load(open(path))["cases"]
    from collections import defaultdict

    agg = defaultdict(list)
    for r in rows:
        parts = r["name"].split("/")
        key = "/".join(parts[:4]) + ("" if r["truth"] == "single" else f"/sep{r['sep_true_px']:g}/1:{1 / r['ratio']:g}")
        agg[key].append(r)
    print(f"{'case':44s} n  double  other-reason  fitted sep (px)")
    for k, rs in agg.items():
        nd = sum(r["reason"] == "second bead in window" for r in rs)
        other = sorted({r["reason"] for r in rs if r["reason"] not in ("", "second bead in window")})
        seps = [f"{r['sep_px']:.2f}" for r in rs if r["sep_px"] is not None]
        print(f"{k:44s} {len(rs):2d} {nd:4d}    {','.join(other) or '-':12s}  {' '.join(seps)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["decisions", "timing", "compare", "table"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--out")
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--n", default="4,20,50")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default="gauss", choices=["gauss", "pupil"])
    a = ap.parse_args()
    if a.what == "decisions":
        run_decisions(a.out)
    elif a.what == "timing":
        run_timing(a.out, tuple(int(v) for v in a.n.split(",")), a.repeats, a.model)
    elif a.what == "compare":
        sys.exit(1 if compare(a.files[0], a.files[1], a.tol) else 0)
    else:
        table(a.files[0])
