"""Diagnostic (bench/RESULTS.md, issue 3, "A constant position offset"): the mean error per axis of a trained
run on a simulated movie, raw and with the validation calibration that ``plexloc fit`` applies, against the
project's MLE on the same movie (2D runs).

    PYTHONPATH=src python bench/diag/position_bias.py RUN_DIR DENSITY FRAMES MIN_PHOTONS
    e.g. bench/out/acc2d_bgfix/2d_gaussian_run 0.1 1500 1000 ; bench/out/acc3d_bgfix/3d_astigmatic_run 0.5 600 100
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch

from plexloc.config import load_config
from plexloc.evaluate.matching import match
from plexloc.infer import fit_movie
from plexloc.io.tiff import write_movie
from plexloc.simulation import Simulator


def main() -> None:
    run, density, frames, min_photons = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    cfg = load_config(os.path.join(run, "config.yaml"))
    sd = cfg.simulation().model_dump()
    sd["frame_size"] = [64, 64]
    sd["emitters"]["density_per_um2"] = density
    simcfg = type(cfg.simulation()).model_validate(sd)
    mov = Simulator(simcfg).simulate_movie(frames, generator=torch.Generator().manual_seed(21))
    truth = mov.truth[mov.truth["photons"] >= min_photons]
    path = os.path.join(tempfile.mkdtemp(), "movie.tif")
    write_movie(path, mov.frames[0].numpy().astype(np.uint16))
    dim = 3 if cfg.emitters.z_range_nm[1] > cfg.emitters.z_range_nm[0] else 2
    tables = {"network raw": fit_movie(path, run, calibrate_sigma=False), "network calibrated": fit_movie(path, run)}
    if dim == 2:
        from plexloc.mle import fit_movie as fit_mle

        tables["MLE"] = fit_mle(path, simcfg)
    for name, tab in tables.items():
        m = match(truth, tab, dim=dim)
        d = m.delta_nm[:, :dim]
        se = d.std(axis=0) / np.sqrt(m.n_tp)
        means = " ".join(f"d{a} {d[:, i].mean():+.2f} +- {se[i]:.2f}" for i, a in enumerate("xyz"[:dim]))
        print(f"{name}: TP {m.n_tp} {means} RMSE_lat {math.sqrt((d[:, :2]**2).sum(1).mean()):.2f}", flush=True)


if __name__ == "__main__":
    main()
