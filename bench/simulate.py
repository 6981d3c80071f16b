"""Simulator throughput: frames per second for each PSF model, on CPU or GPU.

Two workloads:
- ``density``: 64x64 frames at 1 active emitter per um^2 (about 41 emitters a frame);
- ``goal``:    40x40 frames with about 10 emitters each (0.625 per um^2), the DECODE-Plex thesis'
  reference workload (100,000 spline-PSF frames in < 0.5 s on an RTX 4090 with a custom CUDA kernel).

For each, the time of the whole simulation (emitter sampling, PSF rendering, background, EMCCD
noise) and of rendering alone is measured over ``--repeats`` runs after a warm-up; the median is
reported. Prints a table and writes JSON.

    python bench/simulate.py --device cpu  [--frames 2000]
    python bench/simulate.py --device cuda [--frames 100000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from plexloc.config import SimulationConfig, validate_config
from plexloc.psf import AstigmaticPSF, SplinePSF
from plexloc.simulation import Simulator

CAMERA = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
          "baseline": 100.0, "read_sigma": 74.4}
PSFS = {
    "gaussian": {"kind": "gaussian", "sigma_nm": 130.0},
    "astigmatic": {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0},
    "spline": None,  # built from an astigmatic volume (27x27 px, 10 nm z steps, like a bead calibration)
}
WORKLOADS = {"density": ((64, 64), 1.0), "goal": ((40, 40), 10 / (4.0 * 4.0))}


def spline_from_astigmatic(device) -> SplinePSF:
    roi, dz, nz = 27, 10.0, 161
    astig = AstigmaticPSF(roi_px=roi, px_size_nm=(100.0, 100.0))
    zs = torch.arange(nz, dtype=torch.float64) * dz - (nz - 1) / 2 * dz
    c = torch.full((nz,), (roi // 2 + 0.5) * 100.0, dtype=torch.float64)
    with torch.no_grad():
        vol, _, _ = astig.double().patches(c, c, zs, torch.ones(nz, dtype=torch.float64))
    return SplinePSF.from_volume(vol.numpy(), dz_nm=dz).to(device)


def make_simulator(psf_name: str, frame_shape, density: float, device, spline: SplinePSF | None) -> Simulator:
    psf_cfg = PSFS[psf_name] or {"kind": "gaussian"}  # spline PSF swapped in below
    cfg = validate_config(
        {
            "frame_size": list(frame_shape),
            "psf": psf_cfg,
            "camera": CAMERA,
            "emitters": {"density_per_um2": density, "photons_range": [1000, 10000], "on_time_frames": 2.0,
                         "z_range_nm": [0, 0] if psf_name == "gaussian" else [-500, 500]},
            "background": {"range": [20, 100]},
        },
        SimulationConfig,
    )
    sim = Simulator(cfg)
    if psf_name == "spline":
        sim.channels[0].psf = spline
    return sim.to(device)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_run(fn, device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_one(psf_name, workload, frames, device, repeats, spline) -> dict:
    frame_shape, density = WORKLOADS[workload]
    sim = make_simulator(psf_name, frame_shape, density, device, spline)
    gen = torch.Generator(device=device).manual_seed(0)
    ch = sim.channels[0]
    em = sim.sample_emitters(n_sequences=1, n_frames=frames, generator=gen)

    def full():
        with torch.no_grad():
            e = sim.sample_emitters(n_sequences=1, n_frames=frames, generator=gen)
            b = sim.sample_background(n_sequences=1, n_frames=frames, generator=gen)
            sim.camera(sim.expected_photons(e, b), generator=gen)

    def render():
        with torch.no_grad():
            ch.render(em.xyz_nm, em.photons[:, 0], em.frame_ix, n_frames=frames, frame_shape=frame_shape)

    t_full = time_run(full, device, repeats)
    t_render = time_run(render, device, repeats)
    return {
        "psf": psf_name,
        "workload": workload,
        "frame_shape": list(frame_shape),
        "frames": frames,
        "emitters_per_frame": len(em) / frames,
        "seconds_full": t_full,
        "seconds_render": t_render,
        "fps_full": frames / t_full,
        "fps_render": frames / t_render,
    }


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=None, help="frames per run (default 2000 on CPU, 100000 on CUDA)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="JSON output (default bench/out/simulate_<device>.json)")
    p.add_argument("--psf", nargs="*", default=list(PSFS))
    p.add_argument("--workload", nargs="*", default=list(WORKLOADS))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    frames = args.frames or (100_000 if device.type == "cuda" else 2000)
    spline = spline_from_astigmatic(device) if "spline" in args.psf else None
    rows = []
    for workload in args.workload:
        for psf_name in args.psf:
            row = bench_one(psf_name, workload, frames, device, args.repeats, spline)
            rows.append(row)
            print(f"  {workload:8s} {psf_name:10s} {row['fps_full']:12.0f} frames/s full, {row['fps_render']:12.0f} render",
                  file=sys.stderr)
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/simulate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = args.out or Path("bench/out") / f"simulate_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"\nsimulator throughput on {meta['device']} (torch {meta['torch']}, {meta['threads']} threads, commit {meta['commit']})")
    print("| workload | frame | PSF | emitters/frame | full sim frames/s | render-only frames/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['frame_shape'][0]}x{r['frame_shape'][1]} | {r['psf']} | {r['emitters_per_frame']:.1f} "
              f"| {r['fps_full']:,.0f} | {r['fps_render']:,.0f} |")
    print(f"(JSON: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
