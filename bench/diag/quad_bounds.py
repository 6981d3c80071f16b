"""Diagnostic (bench/RESULTS.md, issue 10, quad-plane): how hard each reading of seed 002's setting is, by the
photons of its emitters and the Cramér-Rao bound of its truth, before any localizer is trained.

For each configuration (and, with ``--static``, the same with ``emitters.blinking: false``) it simulates a
movie and reports the rows, the median photons per row (summed over the four planes), the share of rows under
half the configured smallest flux (molecules on for part of a frame only), and the RMS CRLB (x, z) (and median) of all
rows and of the rows at full flux, from the bench's own ``truth_crlb`` (planes joined, photons split by
throughput). JSON with ``--out``.

    PYTHONPATH=src python bench/diag/quad_bounds.py examples/quad_plane.yaml examples/quad_plane_additive.yaml \\
        --static examples/quad_plane.yaml --frames 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from accuracy import truth_crlb  # noqa: E402

from plexloc.config.io import load_config  # noqa: E402
from plexloc.config.training import TrainConfig  # noqa: E402
from plexloc.simulation import Simulator  # noqa: E402


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(v)))) if len(v) else float("nan")


def bounds(config: TrainConfig, *, frames: int, seed: int) -> dict:
    sim = Simulator(config)
    truth = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed)).truth
    b = truth_crlb(truth, sim, config)
    ph = np.asarray(truth["photons"], float)
    n_planes = sum(ch.throughput for ch in config.channels)
    full = ph >= config.emitters.photons_range[0] * n_planes * (1 - 1e-6)
    return {
        "rows": len(truth),
        "median_photons": float(np.median(ph)),
        "share_partial": float(np.mean(ph < 0.5 * config.emitters.photons_range[0] * n_planes)),
        "crlb_x_all": _rms(b["crlb_x_nm"]), "crlb_z_all": _rms(b["crlb_z_nm"]),
        "crlb_x_median": float(np.median(b["crlb_x_nm"])), "crlb_z_median": float(np.median(b["crlb_z_nm"])),
        "crlb_x_full": _rms(b["crlb_x_nm"][full]), "crlb_z_full": _rms(b["crlb_z_nm"][full]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--static", nargs="*", default=[], help="configurations to score again with blinking: false")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = []
    for path, static in [(p, False) for p in a.configs] + [(p, True) for p in a.static]:
        cfg = load_config(path, TrainConfig)
        if static:
            d = cfg.model_dump()
            d["emitters"]["blinking"] = False
            d["emitters"].pop("on_time_frames")
            cfg = TrainConfig.model_validate(d)
        r = {"config": path, "blinking": cfg.emitters.blinking, "camera": cfg.channels[0].camera.kind}
        r.update(bounds(cfg, frames=a.frames, seed=a.seed))
        rows.append(r)
    print("| config | blinking | camera | rows | median photons (4 planes) | rows < half the smallest flux | CRLB x / z nm: RMS, all rows | median, all rows | RMS, rows at full flux |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['blinking']} | {r['camera']} | {r['rows']} | {r['median_photons']:.0f} | {100 * r['share_partial']:.0f} % "
              f"| {r['crlb_x_all']:.1f} / {r['crlb_z_all']:.1f} | {r['crlb_x_median']:.1f} / {r['crlb_z_median']:.1f} "
              f"| {r['crlb_x_full']:.1f} / {r['crlb_z_full']:.1f} |")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
