"""Time of the MLE fit (:func:`plexloc.mle.fit_movie`) of a CPU sCMOS movie with per-pixel maps, and a hash of its table.

The movie: a 2D Gaussian PSF (130 nm, 100 nm pixels) and a 3D astigmatic one (examples/3d_astigmatic.yaml's PSF) on an
sCMOS with per-pixel gain (0.45-0.55 ADU/e-), offset (95-105 ADU) and read noise (1.5 e-, 15 % of the pixels 25 e-),
64 x 64 px, 0.3 emitters/um^2, 800-3,000 photons on 5-15 photons/px (the 2D movie also at 0.5-2 photons/px). Each movie
is fitted ``--repeats`` times in one process (the first includes warm-up) and the best time is reported; the table is
written with :func:`plexloc.io.tables.write_table` and its SHA-256 printed, to compare the tables of two versions of the
code byte for byte (run the same command with ``PYTHONPATH`` set to another checkout's ``src``). Also the time spent in
:func:`plexloc.mle.fit.background_only_fit` (the detection test's background-only fit, sCMOS maps: Newton steps).

    OMP_NUM_THREADS=1 .venv/bin/python bench/mle_scmos_timing43.py [--frames 400] [--repeats 3] [--out bench/mle_scmos_timing43.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import plexloc
import plexloc.mle.fit as mle_fit
from plexloc.config import validate_config
from plexloc.config.models import SimulationConfig
from plexloc.io.tables import write_table
from plexloc.mle import fit_movie
from plexloc.simulation import Simulator

ROOT = Path(__file__).resolve().parents[1]
PSFS = {
    "2d_gaussian": {"kind": "gaussian", "sigma_nm": 130.0},
    "3d_astigmatic": {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0,
                      "A": [0.0, 0.0], "B": [0.0, 0.0]},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    shape = (64, 64)
    rng = np.random.default_rng(43)
    read = np.where(rng.uniform(size=shape) < 0.15, 25.0, 1.5).astype(np.float32)
    gain = rng.uniform(0.45, 0.55, shape).astype(np.float32)
    offset = rng.uniform(95, 105, shape).astype(np.float32)
    # time inside the background-only fit (wrapped where _fit_batch calls it)
    spent = {"s": 0.0, "calls": 0}
    inner = mle_fit.background_only_fit

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent["s"] += time.perf_counter() - t0
            spent["calls"] += 1

    mle_fit.background_only_fit = timed
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, arr in (("read", read), ("gain", gain), ("offset", offset)):
            np.save(tmp / f"{name}.npy", arr)
        cam = {"kind": "scmos", "qe": 0.8, "e_per_adu": str(tmp / "gain.npy"), "baseline": str(tmp / "offset.npy"),
               "read_sigma": str(tmp / "read.npy")}
        for psf_name, bg in (("2d_gaussian", [5.0, 15.0]), ("2d_gaussian", [0.5, 2.0]), ("3d_astigmatic", [5.0, 15.0])):
            psf = PSFS[psf_name]
            em = {"density_per_um2": 0.3, "photons_range": [800.0, 3000.0]}
            if psf_name.startswith("3d"):
                em["z_range_nm"] = [-500.0, 500.0]
            cfg = validate_config({"px_size_nm": 100.0, "frame_size": list(shape), "psf": psf, "camera": cam,
                                   "emitters": em, "background": {"range": bg}}, SimulationConfig)
            movie = Simulator(cfg).simulate_movie(args.frames, generator=torch.Generator().manual_seed(7))
            frames = movie.frames[0].numpy()
            times, bg_times = [], []
            table = None
            for _ in range(args.repeats):
                spent["s"], spent["calls"] = 0.0, 0
                t0 = time.perf_counter()
                table = fit_movie(frames, cfg, roi_offset_px=(0, 0))
                times.append(time.perf_counter() - t0)
                bg_times.append(spent["s"])
            write_table(table, tmp / "t.csv")
            digest = hashlib.sha256((tmp / "t.csv").read_bytes()).hexdigest()
            row = {"psf": psf_name, "bg": bg, "frames": args.frames, "rows": len(table), "best_s": min(times),
                   "times_s": times, "background_only_s": bg_times[int(np.argmin(times))],
                   "background_only_calls": spent["calls"], "table_sha256": digest,
                   "p_spot_sum": float(np.sum(table["p_spot"])), "spot_llr_sum": float(np.sum(table["spot_llr"]))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    src = str(Path(plexloc.__file__).resolve().parents[1])
    print(f"\nMLE fit of a {shape[0]}x{shape[1]} sCMOS movie with per-pixel maps, {args.frames} frames, CPU, 1 thread "
          f"(plexloc from {src})")
    print("| PSF | bg (photons/px) | rows | fit, best of %d (s) | background-only fit (s) | table SHA-256 (first 12) |"
          % args.repeats)
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['psf']} | {r['bg'][0]:g}-{r['bg'][1]:g} | {r['rows']} | {r['best_s']:.2f} | "
              f"{r['background_only_s']:.3f} | {r['table_sha256'][:12]} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows, "src": src, "command": "OMP_NUM_THREADS=1 .venv/bin/python "
                                        f"bench/mle_scmos_timing43.py --frames {args.frames} --repeats {args.repeats}"},
                                       indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
