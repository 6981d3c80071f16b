"""Picasso's astigmatic 3D path, for ``bench/accuracy.py --compare-picasso``; runs in the bench-only venv
that has ``picassosr`` (``python3 -m venv .venv-bench && .venv-bench/bin/pip install picassosr``).

    python bench/picasso_astig_worker.py BEADS.tif BEADS_TRUTH.csv MOVIE.tif OUT_PREFIX --step-nm 10
        --px 100 --baseline 100 --sensitivity 45 --gain 300 --qe 0.9 --boxes 7,9 --min-ng 2000,5000

Picasso's workflow for astigmatic 3D, as a user runs it:

1. Calibration (``picasso.zfit.calibrate_z``): a bead z-stack, frame ``k`` at stage position
   ``z_k = (n - 1) * step / 2 - k * step`` (Picasso's own convention: the first frame is the top of the
   stack), fitted with ``gausslq`` at the beads' known pixels (``BEADS_TRUTH.csv``: frame, row, col), and
   its 6th-order polynomials of the spot widths against z.
2. Each (box, minimum net gradient): identification, ``gausslq`` fit, ``zfit`` with the calibration
   (magnification factor 1: the beads and the molecules are simulated in the same medium; Picasso's
   default filter of 2x the calibration's RMS residual).

Writes ``OUT_PREFIX_box<B>_ng<NG>.csv`` (frame, x_nm, y_nm, z_nm, photons; conventions.md: pixel centres at
``(i + 0.5) * px``), ``OUT_PREFIX_calibration.json`` (the polynomials and the bead fit's z error) and
``OUT_PREFIX_timing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tifffile  # noqa: E402
from picasso_common import ids_at_pixels, write_locs  # noqa: E402


def _fit(movie, ids, box: int, cam: dict):
    from picasso import localize

    spots = localize.get_spots(movie, ids, box, cam)
    theta = localize.fit_spots_gauss(spots, mle=False)
    return localize.locs_from_fits_gauss(ids, theta, box, em=cam["Gain"] > 1)


def _info(movie, px: float) -> list[dict]:
    n, h, w = movie.shape
    return [{"Frames": int(n), "Width": int(w), "Height": int(h), "Pixelsize": float(px)}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("beads")
    ap.add_argument("beads_truth")
    ap.add_argument("movie")
    ap.add_argument("out")
    ap.add_argument("--step-nm", type=float, required=True)
    ap.add_argument("--px", type=float, default=100.0)
    ap.add_argument("--baseline", type=float, default=100.0)
    ap.add_argument("--sensitivity", type=float, default=45.0)
    ap.add_argument("--gain", type=float, default=300.0)
    ap.add_argument("--qe", type=float, default=0.9)
    ap.add_argument("--boxes", default="7,9")
    ap.add_argument("--min-ng", default="2000,5000,10000")
    ap.add_argument("--calibration-box", type=int, default=11)
    a = ap.parse_args()
    from picasso import zfit

    cam = {"Baseline": a.baseline, "Sensitivity": a.sensitivity, "Gain": a.gain, "Qe": a.qe}
    timing: dict = {}

    # 1. calibration from the bead stack at the beads' known pixels
    beads = tifffile.imread(a.beads).astype(np.float32)
    ids = ids_at_pixels(pd.read_csv(a.beads_truth), a.calibration_box, beads.shape[1:])
    t0 = time.perf_counter()
    bead_locs = _fit(beads, ids, a.calibration_box, cam)
    cal = zfit.calibrate_z(bead_locs, _info(beads, a.px), a.step_nm, 1.0)
    timing["calibration_s"] = time.perf_counter() - t0
    # the calibration's own z error on the beads (stage position of each bead frame against its fitted z)
    n = beads.shape[0]
    z_stage = (n - 1) * a.step_nm / 2 - bead_locs["frame"].to_numpy() * a.step_nm
    fitted, _ = zfit.zfit(bead_locs.copy(), _info(beads, a.px), calibration=dict(cal), magnification_factor=1.0,
                          pixelsize=a.px, filter=0)
    zs = (n - 1) * a.step_nm / 2 - fitted["frame"].to_numpy() * a.step_nm
    inner = np.abs(zs) <= 500
    cal_out = {"X Coefficients": cal["X Coefficients"], "Y Coefficients": cal["Y Coefficients"],
               "bead_locs": int(len(bead_locs)), "stage_range_nm": [float(z_stage.min()), float(z_stage.max())],
               "bead_z_rmse_nm_within_500": float(np.sqrt(np.mean((fitted["z"].to_numpy()[inner] - zs[inner]) ** 2))),
               "bead_z_bias_nm_within_500": float(np.mean(fitted["z"].to_numpy()[inner] - zs[inner]))}
    with open(f"{a.out}_calibration.json", "w") as f:
        json.dump(cal_out, f, indent=1)

    # 2. the movie, for every (box, minimum net gradient)
    from picasso import localize

    movie = tifffile.imread(a.movie).astype(np.float32)
    localize.identify(movie[:5], 5000.0, 7, return_info=False)  # numba compiles on first use; not timed
    for box in (int(b) for b in a.boxes.split(",")):
        for ng in (float(g) for g in a.min_ng.split(",")):
            t0 = time.perf_counter()
            ids = localize.identify(movie, ng, box, return_info=False)
            locs = _fit(movie, ids, box, cam)
            locs, _ = zfit.zfit(locs, _info(movie, a.px), calibration=dict(cal), magnification_factor=1.0,
                                pixelsize=a.px)
            timing[f"box{box}_ng{ng:g}_s"] = time.perf_counter() - t0
            write_locs(locs, f"{a.out}_box{box}_ng{ng:g}.csv", a.px)
    with open(f"{a.out}_timing.json", "w") as f:
        json.dump(timing, f, indent=1)


if __name__ == "__main__":
    main()
