"""The spot-shape finding (plexloc.infer.domain.spot_shape_checks) with a network's own rows, one- and two-channel.

Session 44: a 200-step dual-colour network (examples/dual_color.yaml's configuration, a small model trained on the CPU)
fitted a movie simulated from the same configuration, every emitter inside the training z range, and the finding said
"spot shape ch0 ... 12 % OUTSIDE". The network found 145 of 2377 emitters; its rows had no other row within 8 px, but
the frames had: the missed neighbours' light widened the fitted spots. The rows are now also required to have no peak
of the movie's own frames (the PSF-shape check's detection) nearby other than their own.

For each trained run (``--model``, repeatable) movies are simulated from the run's own configuration (64 x 64 px, 64
frames, its emitter density unless ``--density``): in range (z uniform over the training range); 20 % and 50 % of the
molecules 200-500 nm beyond it (either end); the PSF 1.2x and 1.3x wider (every channel's ``s0_nm``). Each movie is
fitted by the network (plexloc.infer.fit_movie, CPU) and the finding is computed on the fit's own PSF-shape reports, its
rows and the movie's photon frames twice: as before (``peak_snr=None``: isolation among the rows only) and as now (the
default), per channel. ``--truth`` adds the truth's rows (inside the field of view), what a network finding every
emitter reports. The finding of plexloc fit's own ``stats["domain"]`` is recorded too (it is the "now" one).

    OMP_NUM_THREADS=1 .venv/bin/python bench/spotshape44.py --model RUN [--model RUN2] --seeds 5 --truth \
        --json bench/spotshape44.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from plexloc.config import SimulationConfig, TrainConfig, validate_config
from plexloc.infer.domain import spot_shape_checks
from plexloc.simulation import Simulator

#: (name, beyond share, PSF width scale)
CASES = [("in range", 0.0, 1.0), ("20 % beyond", 0.2, 1.0), ("50 % beyond", 0.5, 1.0), ("PSF 1.2x wider", 0.0, 1.2),
         ("PSF 1.3x wider", 0.0, 1.3)]
from psfwidth43 import BEYOND_NM, place_z  # noqa: E402  (bench/ is the script's folder: on sys.path)


def run_config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def simulate(d: dict, *, beyond: float, scale: float, seed: int, frames: int, size: int, density: float | None):
    """Raw frames (C, T, H, W) ADU, the same in photons, and the truth rows inside the field of view."""
    d = json.loads(json.dumps(d))
    d["frame_size"] = [size, size]
    d.pop("model", None), d.pop("training", None), d.pop("split_view", None)
    lo, hi = d["emitters"]["z_range_nm"]
    for ch in d["channels"]:
        ch["psf"]["s0_nm"] = [v * scale for v in ch["psf"]["s0_nm"]]
    d["emitters"]["z_range_nm"] = [lo - BEYOND_NM[1], hi + BEYOND_NM[1]]  # the PSF built to hold them
    sim = Simulator(validate_config(d, SimulationConfig))
    g = torch.Generator().manual_seed(seed)
    em = sim.sample_emitters(n_sequences=1, n_frames=frames, generator=g, density_per_um2=density,
                             margin_nm=sim.channel_margin_px() * max(sim.px_size_nm))
    place_z(em, lo, hi, beyond, seed)
    bg = sim.sample_background(n_sequences=1, n_frames=frames, generator=g)
    with torch.no_grad():
        raw = sim.camera(sim.expected_photons(em, bg), generator=g)
    return raw, sim.to_photons(raw), sim.truth_table(em, bg), len(em)


def summary(checks) -> list[dict]:
    out = []
    for c in checks:
        n = int(c.note.split(" spots")[0]) if c.note and c.note[0].isdigit() else 0
        out.append({"column": c.column, "spots": n, "share": c.fraction_above, "fires": c.warning is not None,
                    "note": c.note})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="a trained run folder (repeatable)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--density", type=float, default=None, help="emitters per um^2 (default: the run's)")
    ap.add_argument("--cases", nargs="+", default=[c[0] for c in CASES])
    ap.add_argument("--truth", action="store_true", help="also the truth's rows")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from plexloc.infer import fit_movie

    rows = []
    for run in map(Path, args.model):
        d = run_config(run)
        cfg = validate_config(d, TrainConfig)
        for name, beyond, scale in (c for c in CASES if c[0] in args.cases):
            for seed in range(args.seeds):
                raw, ph, truth, n_em = simulate(d, beyond=beyond, scale=scale, seed=seed, frames=args.frames,
                                                size=args.size, density=args.density)
                frames = [ph[c] for c in range(ph.shape[0])]
                stats: dict = {}
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = fit_movie(raw.numpy() if raw.shape[0] > 1 else raw[0].numpy(), str(run), device="cpu",
                                      stats=stats)
                    t1 = time.perf_counter()
                    reps = stats["psf_shape"]
                    before = spot_shape_checks(reps, table, frames, cfg, peak_snr=None, max_tilt=None)
                    t2 = time.perf_counter()
                    now = spot_shape_checks(reps, table, frames, cfg)
                    t3 = time.perf_counter()
                    res = {"model": str(run), "case": name, "seed": seed, "emitters": n_em, "rows": len(table),
                           "before": summary(before), "now": summary(now),
                           "fit": summary([c for c in stats["domain"].checks if c.kind == "shape"]),
                           "fit_s": t1 - t0, "check_before_s": t2 - t1, "check_now_s": t3 - t2}
                    if args.truth:
                        res["truth_before"] = summary(spot_shape_checks(reps, truth, frames, cfg, peak_snr=None,
                                                                          max_tilt=None))
                        res["truth_now"] = summary(spot_shape_checks(reps, truth, frames, cfg))
                rows.append(res)
                fmt = lambda s: " ".join(f"{100 * c['share']:.1f}%{'!' if c['fires'] else ''}({c['spots']})"  # noqa: E731
                                         for c in s)
                print(f"{run.name} | {name} | seed {seed} | rows {len(table)}/{n_em} | before {fmt(res['before'])} | "
                      f"now {fmt(res['now'])}" + (f" | truth before {fmt(res['truth_before'])} now "
                                                  f"{fmt(res['truth_now'])}" if args.truth else ""), flush=True)
    # fired / judged counts per model, case and rows
    print("\n| model | movie | rows | before: fired / movies (share range) | now: fired / movies (share range) |")
    print("|---|---|---|---|---|")
    for run in args.model:
        for name in [c[0] for c in CASES if c[0] in args.cases]:
            sel = [r for r in rows if r["model"] == str(run) and r["case"] == name]
            for src, b, n in (("network", "before", "now"), ("truth", "truth_before", "truth_now")):
                if b not in sel[0]:
                    continue
                cells = []
                for key in (b, n):
                    fired = sum(any(c["fires"] for c in r[key]) for r in sel)
                    shares = [c["share"] for r in sel for c in r[key] if np.isfinite(c["share"])]
                    unj = sum(1 for r in sel for c in r[key] if not np.isfinite(c["share"]))
                    rng = f"{100 * min(shares):.1f}-{100 * max(shares):.1f} %" if shares else "-"
                    cells.append(f"{fired} / {len(sel)} ({rng}{f', {unj} not judged' if unj else ''})")
                print(f"| {Path(run).name} | {name} | {src} | {cells[0]} | {cells[1]} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
