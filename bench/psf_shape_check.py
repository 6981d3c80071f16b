"""The PSF-shape check (plexloc.psf.check) on simulated movies: correct model -> silent, wrong model -> warned.

Movies from the project's simulator (examples/2d_gaussian.yaml, examples/3d_astigmatic.yaml, and an astigmatic
spline PSF: the tests' calibration fixture, a spline of the default astigmatic model on 41 z slices every 25 nm) at
0.1, 0.5 and 2 emitters/um^2, checked against:

- the correct model (false alarms counted over seeds);
- a 2D model on a 3D movie; a 3D model on a 2D movie (round spots: reported, not warned);
- a movie taken at 160 nm pixels checked against the 100-nm model (spots 0.62x as wide in pixels), and a 100-nm
  movie against a 160-nm model (1.6x).

Then the check's run time on 200 frames of 256 x 256 (2D and 3D, 0.5 emitters/um^2).

    .venv/bin/python bench/psf_shape_check.py --seeds 3 --out bench/psf_shape_check.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
import yaml

from plexloc.config import SimulationConfig, validate_config
from plexloc.psf import AstigmaticPSF, SplinePSF
from plexloc.psf.check import PSFShapeWarning, check_psf_shape
from plexloc.simulation import Simulator

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"2d": ROOT / "examples/2d_gaussian.yaml", "3d": ROOT / "examples/3d_astigmatic.yaml"}


def spline_psf(px: float = 100.0) -> SplinePSF:
    """The tests' spline fixture (tests/conftest.py): the default astigmatic PSF on 41 slices every 25 nm, 27 px."""
    roi, nz, dz = 27, 41, 25.0
    centre = (roi // 2 + 0.5) * px
    z = (torch.arange(nz, dtype=torch.float64) - nz // 2) * dz
    xy = torch.full((nz,), centre, dtype=torch.float64)
    patch, _, _ = AstigmaticPSF(roi_px=roi, px_size_nm=(px, px)).patches(xy, xy, z, torch.ones_like(z))
    return SplinePSF.from_volume(patch.numpy(), dz_nm=dz, px_size_nm=(px, px))


def simulator(kind: str, *, size: int, px: float = 100.0) -> tuple[Simulator, SimulationConfig]:
    d = yaml.safe_load(CONFIGS["2d" if kind == "2d" else "3d"].read_text())
    d["frame_size"], d["px_size_nm"] = [size, size], px
    cfg = validate_config(d, SimulationConfig)
    sim = Simulator(cfg)
    if kind == "spline":
        sim.channels[0].psf = spline_psf(px)
    return sim, cfg


def movie(kind: str, density: float, seed: int, *, frames: int, size: int, px: float = 100.0) -> torch.Tensor:
    sim, _ = simulator(kind, size=size, px=px)
    m = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed), density_per_um2=density)
    return sim.to_photons(m.frames)[0]


def check(frames: torch.Tensor, model: str, *, px: float = 100.0):
    sim, cfg = simulator(model, size=16, px=px)
    ch = sim.channels[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        r = check_psf_shape(frames, ch.psf, z_range_nm=cfg.emitters.z_range_nm, z_offset_nm=ch.z_offset_nm,
                            camera=ch.camera)
        dt = time.perf_counter() - t
    warned = any(issubclass(w.category, PSFShapeWarning) for w in caught)
    return r, warned, dt


CASES = [  # (name, movie kind, movie px, model kind, model px, expected: "silent" / "warn" / "report")
    ("2d correct", "2d", 100.0, "2d", 100.0, "silent"),
    ("3d correct", "3d", 100.0, "3d", 100.0, "silent"),
    ("spline correct", "spline", 100.0, "spline", 100.0, "silent"),
    ("2d model on 3d movie", "3d", 100.0, "2d", 100.0, "warn"),
    ("2d model on spline movie", "spline", 100.0, "2d", 100.0, "warn"),
    ("3d model on 2d movie", "2d", 100.0, "3d", 100.0, "report"),
    ("160-nm movie, 100-nm model", "2d", 160.0, "2d", 100.0, "warn"),
    ("100-nm movie, 160-nm model", "2d", 100.0, "2d", 160.0, "warn"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 2.0])
    ap.add_argument("--out", default=str(ROOT / "bench/psf_shape_check.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    print(f"{'case':30s} {'dens':>5s} {'seed':>4s} {'spots':>5s} {'med sx':>6s} {'med sy':>6s} {'sx/sy 5-95%':>11s} "
          f"{'far':>5s} {'base':>5s} {'scale':>5s} {'z IQR':>6s} {'s':>5s}  verdict")
    for name, mk, mpx, model, px, expect in CASES:
        for dens in args.densities:
            for seed in range(args.seeds):
                frames = movie(mk, dens, seed, frames=args.frames, size=args.size, px=mpx)
                r, warned, dt = check(frames, model, px=px)
                mx, my = r.median_sigma_nm
                e = r.ellipticity_range
                ok = (warned if expect == "warn" else not warned)
                print(f"{name:30s} {dens:5.1f} {seed:4d} {r.n_spots:5d} {mx:6.0f} {my:6.0f} {e[0]:5.2f}-{e[1]:5.2f} "
                      f"{100 * r.far_fraction:4.0f}% {100 * r.baseline_far_fraction:4.0f}% {r.width_scale:5.2f} "
                      f"{r.z_iqr_nm:6.0f} {dt:5.2f}  {'WARN' if warned else 'silent'}{'' if ok else ' (UNEXPECTED)'}")
                rows.append({"case": name, "movie": mk, "movie_px_nm": mpx, "model": model, "model_px_nm": px,
                             "expected": expect, "density_per_um2": dens, "seed": seed, "warned": warned,
                             "as_expected": ok, "seconds": dt, **r.as_dict()})
    summary = {}
    for name, *_ , expect in CASES:
        for dens in args.densities:
            sel = [r for r in rows if r["case"] == name and r["density_per_um2"] == dens]
            summary[f"{name} @ {dens}"] = f"warned {sum(r['warned'] for r in sel)} of {len(sel)} (expected: {expect})"
    print("\nsummary")
    for k, v in summary.items():
        print(f"  {k:40s} {v}")

    timing = []
    for mk in ("2d", "3d"):
        frames = movie(mk, 0.5, 0, frames=200, size=256)
        times = []
        for _ in range(3):
            r, warned, dt = check(frames, mk)
            times.append(dt)
        timing.append({"movie": mk, "frames": 200, "frame_size": [256, 256], "density_per_um2": 0.5,
                       "seconds": times, "frames_used": r.frames, "spots": r.n_spots,
                       "threads": torch.get_num_threads()})
        print(f"run time, {mk}, 200 frames of 256 x 256 at 0.5/um^2: {', '.join(f'{t:.2f}' for t in times)} s "
              f"({r.frames} frames looked at, {r.n_spots} spots)")
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary, "timing": timing},
                                         indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
