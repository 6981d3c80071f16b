"""Review 50: the on-the-fly training batches (BatchGenerator) before and after session 50's simulator change.

Draws ``--batches`` batches of 16 samples (window 3) of four configurations (2d_gaussian, 3d_astigmatic, 2d_gaussian with
background.variation 0.3, biplane with 0.2) and prints samples/s and a SHA-256 of the frames, bg maps and targets. Run it
with the code to compare on PYTHONPATH (a worktree of d2b311a: ``PYTHONPATH=/tmp/wt/src``) and without; interleave the
runs, the machine is shared. ``OMP_NUM_THREADS=1 .venv/bin/python bench/sim50_batches.py --batches 30``"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources as ir
import time

import torch

import plexloc
from plexloc.config import load_config
from plexloc.simulation import Simulator
from plexloc.simulation.generator import BatchGenerator

CASES = [("2d_gaussian", None), ("3d_astigmatic", None), ("2d_gaussian", 0.3), ("biplane", 0.2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(plexloc.__file__)
    for name, variation in CASES:
        cfg = load_config(ir.files("plexloc") / "examples" / f"{name}.yaml")
        if variation is not None:
            data = cfg.model_dump()
            data["background"]["variation"] = variation
            cfg = type(cfg).model_validate(data)
        sim = Simulator(cfg)
        gen = BatchGenerator(sim, batch_size=16, window=3, seed=1)
        gen()  # warm-up
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for _ in range(args.batches):
            b = gen()
            for t in (b.frames, b.bg, b.target_xyz_nm, b.target_photons):
                h.update(t.numpy().tobytes())
        dt = time.perf_counter() - t0
        print(f"{name} variation={variation} {tuple(sim.frame_shape)}: {args.batches * 16 / dt:.1f} samples/s, "
              f"sha256 {h.hexdigest()[:16]}", flush=True)


if __name__ == "__main__":
    main()
