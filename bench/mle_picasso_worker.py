"""Picasso side of ``bench/mle_vs_picasso.py``; runs in the bench-only venv that has ``picassosr``.

    python bench/mle_picasso_worker.py MOVIE.tif OUT_PREFIX --box 7 --min-ng 5000 [--ids IDS.csv]
        --baseline 100 --sensitivity 45 --gain 300 --qe 0.9 --px 100 [--serve | --probe NG,NG,...]

Default: Picasso's identification (or with ``--ids``, frame/row/col of our detections, so that both
fitters see the same spots), its boxes and its least-squares (``gausslq``) and maximum-likelihood
(``gaussmle``) Gaussian fits, fastest of ``--repeats``; writes ``OUT_PREFIX_<method>.csv`` (frame, x_nm,
y_nm, z_nm, photons) and ``OUT_PREFIX_timing.json``.

``--serve``: compiles, then reads commands from stdin, one timed run per line, and answers one JSON line
each, so that the caller can interleave Picasso's runs with its own under the same machine load:
``own`` (identify + boxes + both fits) or ``ids`` (our detections: read + boxes + both fits); the first
run of each kind also writes ``OUT_PREFIX_<kind>_<method>.csv``. ``quit`` ends it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
import tifffile
from picasso_common import ids_at_pixels, write_locs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("movie")
    ap.add_argument("out")
    ap.add_argument("--box", type=int, default=7)
    ap.add_argument("--min-ng", type=float, default=5000.0)
    ap.add_argument("--ids", default=None)
    ap.add_argument("--baseline", type=float, default=100.0)
    ap.add_argument("--sensitivity", type=float, default=45.0)
    ap.add_argument("--gain", type=float, default=300.0)
    ap.add_argument("--qe", type=float, default=0.9)
    ap.add_argument("--px", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the fastest is reported")
    ap.add_argument("--probe", default=None, help="comma-separated min net gradients: write OUT_ng<NG>.csv (gausslq) for each")
    ap.add_argument("--serve", action="store_true", help="timed runs on request from stdin (see the module docstring)")
    a = ap.parse_args()
    from picasso import localize

    movie = tifffile.imread(a.movie).astype(np.float32)
    cam = {"Baseline": a.baseline, "Sensitivity": a.sensitivity, "Gain": a.gain, "Qe": a.qe}
    # warm-up: numba compiles on first use; not timed
    ids0 = localize.identify(movie[:20], a.min_ng, a.box, return_info=False)
    sp0 = localize.get_spots(movie[:20], ids0, a.box, cam)
    for mle in (False, True):
        localize.fit_spots_gauss(sp0, mle=mle)
    if a.probe:
        for ng in a.probe.split(","):
            ids = localize.identify(movie, float(ng), a.box, return_info=False)
            theta = localize.fit_spots_gauss(localize.get_spots(movie, ids, a.box, cam))
            write_locs(localize.locs_from_fits_gauss(ids, theta, a.box, em=a.gain > 1), f"{a.out}_ng{ng}.csv", a.px)
        return

    raw = pd.read_csv(a.ids) if a.ids else None

    def read_ids():
        return ids_at_pixels(raw, a.box, movie.shape[1:])

    def one_run(kind: str, prefix: str | None) -> dict:
        """One timed pass: identification (or our ids), boxes, both fits; locs written when prefix is given."""
        t = {}
        t0 = time.perf_counter()
        ids = read_ids() if kind == "ids" else localize.identify(movie, a.min_ng, a.box, return_info=False)
        t["identify_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spots = localize.get_spots(movie, ids, a.box, cam)
        t["spots_s"] = time.perf_counter() - t0
        t["n_ids"] = int(len(ids))
        for name, mle in (("gausslq", False), ("gaussmle", True)):
            t0 = time.perf_counter()
            theta = localize.fit_spots_gauss(spots, mle=mle)
            t[f"{name}_fit_s"] = time.perf_counter() - t0
            if prefix:
                write_locs(localize.locs_from_fits_gauss(ids, theta, a.box, em=a.gain > 1, mle=mle), f"{prefix}_{name}.csv", a.px)
        return t

    if a.serve:
        written = set()
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            kind = line.strip()
            if kind == "quit":
                break
            if kind not in ("own", "ids") or (kind == "ids" and raw is None):
                print(json.dumps({"error": f"unknown command {kind!r}"}), flush=True)
                continue
            res = one_run(kind, None if kind in written else f"{a.out}_{kind}")
            written.add(kind)
            print(json.dumps(res), flush=True)
        return

    runs = [one_run("ids" if a.ids else "own", a.out if i == 0 else None) for i in range(a.repeats)]
    timing = {k: min(rr[k] for rr in runs) for k in runs[0]}
    with open(f"{a.out}_timing.json", "w") as f:
        json.dump(timing, f, indent=2)


if __name__ == "__main__":
    main()
