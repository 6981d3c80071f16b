"""Diagnostic (bench/RESULTS.md, issue 3, "Training-domain check"): fit a simulated movie with a trained run,
with its own camera or a wrongly configured one, and print ``plexloc fit``'s training-domain report.

    PYTHONPATH=src python bench/diag/domain_check.py RUN_DIR DATA_CONFIG DENSITY FRAMES [FIELD=VALUE ...]
    e.g. bench/out/acc2d_bgfix/2d_gaussian_run examples/2d_gaussian.yaml 0.5 300 em_gain=100
         bench/out/mc_dual/dual_color_plex_run examples/dual_color_plex_2060.yaml 0.14 300
FIELD=VALUE changes the reference channel's camera used for fitting (not the one that simulated the movie).
"""
import os
import sys
import tempfile

import numpy as np
import torch

from plexloc.config import load_config
from plexloc.infer import fit_movie
from plexloc.io.tiff import write_movie
from plexloc.simulation import Simulator


def main() -> None:
    run, data_cfg, density, frames = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    changes = dict(a.split("=", 1) for a in sys.argv[5:])
    cfg = load_config(data_cfg)
    sd = cfg.simulation().model_dump()
    sd["frame_size"] = [64, 64]
    sd["emitters"]["density_per_um2"] = density
    mov = Simulator(type(cfg.simulation()).model_validate(sd)).simulate_movie(
        frames, generator=torch.Generator().manual_seed(5))
    tmp = tempfile.mkdtemp()
    paths = []
    for c in range(mov.frames.shape[0]):
        paths.append(os.path.join(tmp, f"ch{c}.tif"))
        write_movie(paths[-1], mov.frames[c].numpy().astype(np.uint16))
    camera = None
    if changes:
        model_cfg = load_config(os.path.join(run, "config.yaml"))
        cams = [ch.camera for ch in model_cfg.channels]
        cams[0] = type(cams[0]).model_validate({**cams[0].model_dump(), **{k: float(v) for k, v in changes.items()}})
        camera = cams if len(cams) > 1 else cams[0]
    stats: dict = {}
    pred = fit_movie(paths if len(paths) > 1 else paths[0], run, camera=camera, stats=stats)
    print(f"{changes or 'camera as trained'}: {len(pred)} localizations, {len(mov.truth)} true")
    print(stats["domain"].format_table())
    for w in stats["domain"].warnings:
        print("warning:", w)


if __name__ == "__main__":
    main()
