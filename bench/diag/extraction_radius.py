"""Diagnostic (bench/RESULTS.md, issue 3, "Gridding came from the extraction"): one trained run scored at one
density with several extraction merge radii (``plexloc.infer.extract.MERGE_RADIUS_PX``; 0 is the maximum pixel
alone). Prints JI, RMSE, gridding (and the matched truth's, the counting-noise floor) and z-score spreads.

    PYTHONPATH=src python bench/diag/extraction_radius.py RUN_DIR DENSITY FRAMES [DIM] [RADII]
    e.g. bench/out/acc2d_diag/2d_gaussian_run 2 1000 2 0,0.5,1,10
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch

import plexloc.infer.extract  # noqa: F401  (the module, not the function the package re-exports)
from plexloc.config import load_config
from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import gridding_deviation
from plexloc.evaluate.uncertainty import neighbour_distance_nm, robust_sd
from plexloc.infer import fit_movie
from plexloc.io.tiff import write_movie
from plexloc.simulation import Simulator

E = sys.modules["plexloc.infer.extract"]


def main() -> None:
    run, density, frames = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    dim = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    radii = [float(r) for r in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0.0, 0.5, 1.0, 10.0]
    cfg = load_config(os.path.join(run, "config.yaml"))
    sd = cfg.simulation().model_dump()
    sd["frame_size"] = [64, 64]
    sd["emitters"]["density_per_um2"] = density
    sim = Simulator(type(cfg.simulation()).model_validate(sd))
    mov = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(11))
    truth = mov.truth[mov.truth["photons"] >= 100]
    tmp = tempfile.mkdtemp()
    paths = []
    for c in range(mov.frames.shape[0]):
        paths.append(os.path.join(tmp, f"ch{c}.tif"))
        write_movie(paths[-1], mov.frames[c].numpy().astype(np.uint16))
    nd = neighbour_distance_nm(truth)
    px = cfg.px_size_xy_nm[0]
    for radius in radii:
        E.MERGE_RADIUS_PX = radius
        pred = fit_movie(paths if len(paths) > 1 else paths[0], run)
        m = match(truth, pred, dim=dim)
        d = m.delta_nm
        zx = d[:, 0] / np.asarray(pred["sigma_x_nm"])[m.tp_pred]
        close = nd[m.tp_truth] < 250
        line = (f"radius {radius}: density {density} truth {len(truth)} TP {m.n_tp} FP {m.n_fp} "
                f"JI {100 * m.n_tp / (m.n_tp + m.n_fp + m.n_fn):.2f} RMSE_lat {math.sqrt((d[:, 0]**2 + d[:, 1]**2).mean()):.2f} "
                f"grid x {gridding_deviation(np.asarray(pred['x_nm'])[m.tp_pred], px):.3f} "
                f"y {gridding_deviation(np.asarray(pred['y_nm'])[m.tp_pred], px):.3f} "
                f"(truth {gridding_deviation(np.asarray(truth['x_nm'])[m.tp_truth], px):.3f}) "
                f"z-score sd x {zx.std():.2f} robust {robust_sd(zx):.2f} close pairs {zx[close].std():.2f}")
        if dim == 3:
            zz = d[:, 2] / np.asarray(pred["sigma_z_nm"])[m.tp_pred]
            line += f" RMSE_ax {math.sqrt((d[:, 2]**2).mean()):.2f} z-score sd z {zz.std():.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
