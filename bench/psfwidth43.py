"""The spot-shape finding of the training-domain check (plexloc.infer.domain.spot_shape_checks) on simulated movies.

A 3D network does not place emitters beyond its training z range at the range's edge: it folds them back inside it
(bench/zedge42.py). Their spots have widths the model's PSF has at no z of its range, and so do the spots of a movie
whose PSF is not the model's. This bench simulates movies with the project's simulator and reports, per movie, the
finding's share of bright isolated spots outside the PSF's widths and whether it fires:

- models: examples/3d_astigmatic.yaml (astigmatic, trained over +-500 nm) and examples/2d_gaussian.yaml (2D, 130 nm);
- movies: in range (z uniform over the training range); 20 % and 50 % of the molecules 200-500 nm beyond it (|z| 700-
  1000 nm, either side); the model's PSF 1.2x and 1.3x wider (s0_nm, sigma_nm), z in range;
- densities 0.1, 0.5 and 1 emitters/um^2, several seeds, and three photon / background settings inside the training
  ranges: the training's own ("full"), dim emitters on the brightest background ("dim", photons lo..2 lo, background
  the top fifth of its range) and bright emitters on the dimmest ("bright", photons hi/2..hi, background the bottom
  fifth).

The rows the finding reads are the truth's, inside the field of view (what a network that finds every emitter would
report; the light of emitters in the simulator's margin is in the frames, their rows are not), in the first
``--frames`` frames; the PSF-shape report (curve of the model's PSF, estimator scatter) is
plexloc.psf.check.check_psf_shapes on the same frames, as plexloc fit runs it. With ``--model RUN`` the movies of the
3D cases are also fitted by that network (plexloc.infer.fit_movie, CPU) and its own rows and stats["domain"] give the
finding, as plexloc fit reports it. The finding's run time is measured against the fit's.

    OMP_NUM_THREADS=1 .venv/bin/python bench/psfwidth43.py --seeds 3 --json bench/psfwidth43.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from plexloc.config import SimulationConfig, TrainConfig, validate_config
from plexloc.infer.domain import DomainCheck, spot_shape_checks
from plexloc.psf.check import check_psf_shapes
from plexloc.simulation import Simulator
from plexloc.table import LocTable

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"3d": ROOT / "examples/3d_astigmatic.yaml", "2d": ROOT / "examples/2d_gaussian.yaml"}
#: (name, beyond share, PSF width scale)
CASES = {
    "3d": [("in range", 0.0, 1.0), ("20 % beyond", 0.2, 1.0), ("50 % beyond", 0.5, 1.0), ("PSF 1.2x wider", 0.0, 1.2),
           ("PSF 1.3x wider", 0.0, 1.3)],
    "2d": [("in range", 0.0, 1.0), ("PSF 1.2x wider", 0.0, 1.2), ("PSF 1.3x wider", 0.0, 1.3)],
}
EXPECT = {"in range": "silent"}  # every other case: "fires"
BEYOND_NM = (200.0, 500.0)


def model_config(kind: str) -> TrainConfig:
    return validate_config(yaml.safe_load(MODELS[kind].read_text()), TrainConfig)


def photon_settings(cfg: TrainConfig) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """``{name: (photons_range, background range)}`` inside the training ranges."""
    plo, phi = cfg.emitters.photons_range
    blo, bhi = cfg.background.range
    fifth = 0.2 * (bhi - blo)
    return {"full": ((plo, phi), (blo, bhi)), "dim": ((plo, 2 * plo), (bhi - fifth, bhi)),
            "bright": ((phi / 2, phi), (blo, blo + fifth))}


def place_z(em, lo: float, hi: float, beyond: float, seed: int) -> None:
    """Each molecule's z (in place, on ``em.xyz_nm``): uniform in [lo, hi], or for a share ``beyond`` of them
    ``BEYOND_NM`` past either end."""
    rng = np.random.default_rng(seed + 7919)
    uniq, inv = np.unique(em.id.cpu().numpy(), return_inverse=True)
    z = rng.uniform(lo, hi, len(uniq))
    out = rng.random(len(uniq)) < beyond
    side = rng.choice([-1.0, 1.0], int(out.sum()))
    z[out] = np.where(side > 0, hi, lo) + side * rng.uniform(*BEYOND_NM, int(out.sum()))
    em.xyz_nm[:, 2] = torch.as_tensor(z[inv], dtype=em.xyz_nm.dtype)


def simulate(kind: str, *, beyond: float, scale: float, photons, bg, density: float, seed: int, frames: int,
             size: int):
    """Raw frames (ADU), the same in photons, and the truth rows inside the field of view."""
    d = yaml.safe_load(MODELS[kind].read_text())
    d["frame_size"] = [size, size]
    d["emitters"]["photons_range"], d["background"]["range"] = list(photons), list(bg)
    lo, hi = d["emitters"]["z_range_nm"]
    if kind == "3d":
        d["psf"]["s0_nm"] = [v * scale for v in d["psf"]["s0_nm"]]
        d["emitters"]["z_range_nm"] = [lo - BEYOND_NM[1], hi + BEYOND_NM[1]]  # the PSF built to hold them
    else:
        d["psf"]["sigma_nm"] = d["psf"]["sigma_nm"] * scale
    sim = Simulator(validate_config(d, SimulationConfig))
    g = torch.Generator().manual_seed(seed)
    em = sim.sample_emitters(n_sequences=1, n_frames=frames, generator=g, density_per_um2=density,
                             margin_nm=sim.channel_margin_px() * max(sim.px_size_nm))
    if kind == "3d":
        place_z(em, lo, hi, beyond, seed)
    bgl = sim.sample_background(n_sequences=1, n_frames=frames, generator=g)
    with torch.no_grad():
        raw = sim.camera(sim.expected_photons(em, bgl), generator=g)
    truth = sim.truth_table(em, bgl)
    return raw[0], sim.to_photons(raw)[0], truth


def finding(frames_ph: torch.Tensor, rows: LocTable, cfg: TrainConfig) -> tuple[dict, float, float]:
    """The spot-shape check of the frames with ``rows``: its numbers, and the PSF check's and its own seconds."""
    t0 = time.perf_counter()
    (rep,) = check_psf_shapes([frames_ph], cfg, warn=False)
    t1 = time.perf_counter()
    checks = spot_shape_checks([rep], rows, [frames_ph], cfg)
    t2 = time.perf_counter()
    if not checks:  # no bright isolated row to measure: no check, not judged
        checks = [DomainCheck("spot shape", "shape", math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                              note="no bright isolated rows")]
    (chk,) = checks
    n = int(chk.note.split(" spots")[0]) if chk.note and chk.note[0].isdigit() else 0
    return ({"spots": n, "share": chk.fraction_above, "fires": chk.warning is not None, "note": chk.note,
             "width_q05_median_q95_nm": [chk.q05, chk.median, chk.q95], "psf_width_nm": [chk.train_lo, chk.train_hi],
             "model_far_fraction": rep.model_far_fraction, "psf_check_far_fraction": rep.far_fraction,
             "psf_check_warned": rep.warning is not None, "warning": chk.warning}, t1 - t0, t2 - t1)


def network(raw: torch.Tensor, model: str, frames: int) -> tuple[dict, float]:
    """plexloc fit's own finding: fit_movie's stats["domain"] spot-shape check, and the fit's seconds."""
    from plexloc.infer import fit_movie

    stats: dict = {}
    t = time.perf_counter()
    table = fit_movie(raw[:frames].cpu().numpy(), model, device="cpu", stats=stats)
    dt = time.perf_counter() - t
    chk = [c for c in stats["domain"].checks if c.kind == "shape"]
    c = chk[0] if chk else None
    return ({"rows": len(table), "share": c.fraction_above if c else None, "fires": bool(c and c.warning),
             "note": c.note if c else "no check", "fit_seconds": stats.get("seconds"),
             "check_seconds": stats.get("check_seconds"), "z_edge_warned": bool(stats.get("z_edge") and
                                                                                stats["z_edge"].warning)}, dt)


def estimator(kind: str, *, n: int = 400, seed: int = 0) -> list[dict]:
    """The width estimator against photons and background: the model's own PSF (``kind``) at z uniform over its
    training range, through its camera, measured (a) by the PSF-shape check's Poisson maximum-likelihood elliptical
    Gaussian (what the finding uses) and (b) by second moments of the window less its border median. Per photon /
    background setting: the median bias and the robust spread (1.4826 MAD) of ``sqrt(sigma_x sigma_y)`` over the
    noiseless truth (the noiseless ML fit of the same window: the curve the finding compares with), in percent."""
    from plexloc.psf.check import _noisy, _render_windows, fit_elliptical_gaussian
    from plexloc.simulation.simulator import Channel

    cfg = model_config(kind)
    z_lo, z_hi = cfg.emitters.z_range_nm
    ch = Channel.from_config(cfg.channels[0], px_size_nm=cfg.px_size_xy_nm, z_extent_nm=max(abs(z_lo), abs(z_hi), 1.0))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    R = 11 if kind == "3d" else 9  # the PSF-shape check's window for these models
    out = []
    for setting, (photons, bg) in photon_settings(cfg).items():
        z = rng.uniform(z_lo, z_hi, n) if z_hi > z_lo else np.zeros(n)
        fx, fy = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
        ph, b = rng.uniform(*photons, n), rng.uniform(*bg, n)
        clean = fit_elliptical_gaussian(_render_windows(ch.psf, z, fx, fy, R, ph, b))
        truth = np.sqrt(clean.sx * clean.sy)
        win = _noisy(_render_windows(ch.psf, z, fx, fy, R, ph, b), ch.camera, gen)
        ml = fit_elliptical_gaussian(win)
        w_ml = np.where(ml.ok, np.sqrt(ml.sx * ml.sy), np.nan)
        border = torch.cat([win[:, 0], win[:, -1], win[:, 1:-1, 0], win[:, 1:-1, -1]], dim=1).median(dim=1).values
        p = (win - border[:, None, None]).clamp_min(0)
        c = torch.arange(R, dtype=p.dtype) + 0.5
        tot = p.sum((1, 2)).clamp_min(1e-9)
        px_, py_ = p.sum(1), p.sum(2)
        mx, my = (px_ * c).sum(1) / tot, (py_ * c).sum(1) / tot
        vx = (px_ * (c - mx[:, None]) ** 2).sum(1) / tot
        vy = (py_ * (c - my[:, None]) ** 2).sum(1) / tot
        w_mom = torch.sqrt(torch.sqrt(vx * vy)).numpy()
        row = {"model": kind, "setting": setting, "photons_range": list(photons), "bg_range": list(bg),
               "ml_converged": float(np.mean(ml.ok))}
        for name, w in (("ml", w_ml), ("moments", w_mom)):
            rel = w / truth - 1.0
            rel = rel[np.isfinite(rel)]
            row[f"{name}_bias_pct"] = float(100 * np.median(rel))
            row[f"{name}_spread_pct"] = float(100 * 1.4826 * np.median(np.abs(rel - np.median(rel))))
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=64, help="frames per movie (plexloc fit keeps 64 for its checks)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    ap.add_argument("--kinds", nargs="+", default=["3d", "2d"])
    ap.add_argument("--model", help="a trained 3D run (+-500 nm, examples/3d_astigmatic.yaml): fit the 3D movies")
    ap.add_argument("--json", default=str(ROOT / "bench/psfwidth43.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    est = [e for kind in args.kinds for e in estimator(kind)]
    print("| model | photons / bg | ML bias | ML spread | moments bias | moments spread | ML converged |")
    print("|---|---|---|---|---|---|---|")
    for e in est:
        print(f"| {e['model']} | {e['setting']} ({e['photons_range'][0]:g}-{e['photons_range'][1]:g} photons, "
              f"{e['bg_range'][0]:g}-{e['bg_range'][1]:g}/px) | {e['ml_bias_pct']:+.1f} % | {e['ml_spread_pct']:.1f} % "
              f"| {e['moments_bias_pct']:+.1f} % | {e['moments_spread_pct']:.1f} % | {100 * e['ml_converged']:.0f} % |")
    print()
    rows = []
    print("| model | movie | photons / bg | density /um^2 | seed | spots judged | outside the PSF's widths | fires | "
          "PSF check far | check s |" + (" network: spots share fires | fit s |" if args.model else ""))
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.model else ""))
    for kind in args.kinds:
        cfg = model_config(kind)
        for setting, (photons, bg) in photon_settings(cfg).items():
            for name, beyond, scale in CASES[kind]:
                for dens in args.densities:
                    for seed in range(args.seeds):
                        raw, ph, truth = simulate(kind, beyond=beyond, scale=scale, photons=photons, bg=bg,
                                                  density=dens, seed=seed, frames=args.frames, size=args.size)
                        res, t_psf, t_shape = finding(ph, truth, cfg)
                        row = {"model": kind, "movie": name, "setting": setting, "photons_range": list(photons),
                               "bg_range": list(bg), "density_per_um2": dens, "seed": seed,
                               "expected": EXPECT.get(name, "fires"), "psf_check_seconds": t_psf,
                               "shape_check_seconds": t_shape, **res}
                        net = ""
                        if args.model and kind == "3d" and setting == "full" and seed == 0:
                            row["network"], row["fit_wall_seconds"] = network(raw, args.model, args.frames)
                            nw = row["network"]
                            share = f"{100 * nw['share']:.1f} %" if nw["share"] is not None and np.isfinite(
                                nw["share"]) else "-"
                            net = f" {nw['note']} {share} {'yes' if nw['fires'] else 'no'} | {row['fit_wall_seconds']:.1f} |"
                        ok = row["fires"] == (row["expected"] == "fires")
                        judged = bool(np.isfinite(res["share"]))
                        share = f"{100 * res['share']:.1f} %" if judged else "-"
                        verdict = "yes" if res["fires"] else ("no" if judged else "not judged")
                        print(f"| {kind} | {name} | {setting} | {dens:g} | {seed} | {res['spots']} | {share} | "
                              f"{verdict}{'' if ok else ' (UNEXPECTED)'} | "
                              f"{100 * res['psf_check_far_fraction']:.0f} % | {t_shape:.2f} |{net}", flush=True)
                        rows.append(row)
    summary = {}
    for kind in args.kinds:
        settings = list(photon_settings(model_config(kind)))
        for name, *_ in CASES[kind]:
            for setting in settings:
                for dens in args.densities:
                    sel = [r for r in rows if r["model"] == kind and r["movie"] == name and r["setting"] == setting
                           and r["density_per_um2"] == dens]
                    if not sel:
                        continue
                    sh = [r["share"] for r in sel if np.isfinite(r["share"])]
                    summary[f"{kind} | {name} | {setting} | {dens:g}"] = {
                        "fired": sum(r["fires"] for r in sel), "movies": len(sel),
                        "not_judged": sum(not np.isfinite(r["share"]) for r in sel),
                        "share_min": min(sh) if sh else None, "share_max": max(sh) if sh else None,
                        "spots_min": min(r["spots"] for r in sel), "expected": EXPECT.get(name, "fires")}
    print("\n| model | movie | photons / bg | density /um^2 | fired / movies | share outside, min-max | spots, min |")
    print("|---|---|---|---|---|---|---|")
    for k, v in summary.items():
        lo = f"{100 * v['share_min']:.1f}-{100 * v['share_max']:.1f} %" if v["share_min"] is not None else "-"
        nj = f", {v['not_judged']} not judged" if v["not_judged"] else ""
        print(f"| {k} | {v['fired']} / {v['movies']}{nj} (expected: {v['expected']}) | {lo} | {v['spots_min']} |")
    t_shape = [r["shape_check_seconds"] for r in rows]
    t_psf = [r["psf_check_seconds"] for r in rows]
    print(f"\nspot-shape finding: median {np.median(t_shape):.3f} s, max {np.max(t_shape):.3f} s per movie "
          f"({args.frames} frames of {args.size}x{args.size}); the PSF-shape check it reads: median {np.median(t_psf):.2f} s")
    fits = [r["fit_wall_seconds"] for r in rows if "fit_wall_seconds" in r]
    if fits:
        print(f"network fit (fit_movie, CPU, all its checks): median {np.median(fits):.1f} s per movie")
    unexpected = [r for r in rows if r["fires"] != (r["expected"] == "fires")]
    print(f"unexpected verdicts: {len(unexpected)} of {len(rows)}")
    Path(args.json).write_text(json.dumps({"args": vars(args), "estimator": est, "rows": rows, "summary": summary}, indent=1,
                                          default=float))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
