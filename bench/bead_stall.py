"""Session 47: the stalled-stage note of ``plexloc calibrate`` (``plexloc.calibrate.spline._stalled_slices``).

A bead z-stack whose stage did not step between two slices (a missed trigger, a stalled piezo) shows the beads at the
same z twice, and every later slice sits one step short of the z the calibration gives it. Here: stacks of 16 beads
from ``simulate_bead_stacks`` through ``examples/3d_astigmatic.yaml``'s EMCCD camera (its noise, gain and ADU,
converted back to photons as ``plexloc calibrate`` does), with the configuration's astigmatic Gaussian PSF and with a
pupil-model PSF (Airy rings, non-Gaussian defocus), 2e3, 2e4 and 1e5 photons per bead, background 20, z steps 10, 20 and
50 nm, seeds 0-1; each stack once as taken and once with the stage stalled at one slice near focus. Counts false
notes (a stack without a stall named) and stalls found (the right slice named)::

    OMP_NUM_THREADS=1 python bench/bead_stall.py --out bench/bead_stall.json

Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.calibrate import beads as B
from plexloc.calibrate.spline import _stalled_slices
from plexloc.calibrate.synthetic import simulate_bead_stacks
from plexloc.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples" / "3d_astigmatic.yaml"


def notes_of(cfg, z: np.ndarray, *, psf: str, photons: float, seed: int) -> list[str]:
    b = simulate_bead_stacks(cfg, n_beads=16, z_nm=z, photons=photons, bg=20.0, psf=psf, seed=seed)
    st = b.cameras[0].to_photons(torch.as_tensor(b.raw[0], dtype=torch.float32)).numpy().astype(np.float64)
    sel = B.detect_beads(st, roi_px=15)
    return _stalled_slices(st, sel, roi_px=15, src="stack")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/bead_stall.json"))
    args = ap.parse_args()
    cfg = load_config(CONFIG)
    rows, t0 = [], time.time()
    for psf in ("config", "pupil"):
        for photons in (2e3, 2e4, 1e5):
            for dz in (10.0, 20.0, 50.0):
                half = 400.0 if dz == 10.0 else 700.0
                z = np.arange(-half, half + 1.0, dz)
                false, found = 0, 0
                for seed in (0, 1):
                    false += bool(notes_of(cfg, z, psf=psf, photons=photons, seed=seed))
                    k = len(z) // 2 + (5 if seed else -5)  # the stage stalls between slices k and k + 1
                    stalled = np.concatenate([z[: k + 1], z[k:-1]])
                    n = notes_of(cfg, stalled, psf=psf, photons=photons, seed=seed)
                    found += bool(n) and f"slice(s) {k + 1} (" in n[0] and n[0].count(" against ") == 1
                rows.append({"psf": psf, "photons": photons, "z_step_nm": dz, "stacks": 2, "false_notes": false,
                             "stalls_found": found})
                print(f"{psf} {photons:g} {dz:g} nm: false {false}/2, found {found}/2 ({time.time() - t0:.0f} s)",
                      flush=True)
    print("\n| PSF | photons | z step (nm) | false notes | stalls found |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['psf']} | {r['photons']:g} | {r['z_step_nm']:g} | {r['false_notes']}/2 | {r['stalls_found']}/2 |")
    args.out.write_text(json.dumps({"config": str(CONFIG.name), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
