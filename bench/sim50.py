"""Session 50: the simulator against closed forms, its reproducibility and its memory (CPU).

Measures, each beside the value the configuration and conventions.md give:
- camera output per pixel (flat 50 photons/px, no emitters): ADU mean and variance, EMCCD and sCMOS;
- emitters (sample_emitters, 400 sequences x 10 frames, 3 x 2 µm): active density per frame, mean photons per row,
  on-time mean and P(on-time > tau) of the events inside a 3,000-frame movie;
- background: frame mean over [lo, hi], field amplitude; z uniform over z_range_nm;
- photon models: linked per-channel share, independent per-channel means and their sum;
- truth.csv: the share of dim rows (an emitter on for a small part of a frame); its bg against the background under
  the emitter (and the frame's mean, the column before session 50);
- reproducibility: the same movie for --chunk 7, 1 and the default; same seed same movie, other seed other movie;
- memory: peak RSS of ``plexloc simulate`` (256 x 256 px sCMOS, background variation) for 300 and 1,500 frames.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/sim50.py  (writes bench/sim50.json)
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml

from plexloc.config import SimulationConfig, validate_config
from plexloc.config.models import EmitterConfig
from plexloc.simulation import Simulator, sample_emitters

ROOT = Path(__file__).resolve().parents[1]
EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
         "read_sigma": 74.4}
SCMOS = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}
EYE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def cfg(**fields):
    data = {"px_size_nm": 100.0, "frame_size": [32, 40], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    if "channels" in fields:
        del data["psf"], data["camera"]
    data.update(fields)
    return validate_config(data, SimulationConfig)


def row(rows, what, measured, expected, unit=""):
    measured, expected = float(measured), float(expected)
    rel = (measured / expected - 1) * 100 if expected else float("nan")
    rows.append({"what": what, "measured": measured, "expected": expected, "rel_diff_pct": rel,
                 "unit": unit})


def camera_moments(rows):
    p = 50.0
    for name, cam in (("emccd", EMCCD), ("scmos", SCMOS)):
        sim = Simulator(cfg(camera=cam, frame_size=[64, 64], emitters={"density_per_um2": 0.0},
                            background={"range": [p, p]}))
        f = sim.simulate_movie(96, generator=gen(1)).frames.double()
        g = cam.get("em_gain", 1.0)
        f2 = 2.0 if "em_gain" in cam else 1.0
        e = cam["qe"] * p + cam["spurious_charge"]
        row(rows, f"{name} ADU mean per pixel (50 photons/px)", f.mean(), e * g / cam["e_per_adu"] + cam["baseline"],
            "ADU")
        row(rows, f"{name} ADU variance per pixel", f.var(),
            (f2 * e * g**2 + cam["read_sigma"] ** 2) / cam["e_per_adu"] ** 2 + 1 / 12, "ADU^2")


def emitters(rows):
    tau, lo, hi, dens = 2.0, 1000.0, 3000.0, 1.5
    c = EmitterConfig(density_per_um2=dens, photons_range=(lo, hi), on_time_frames=tau, z_range_nm=(-400.0, 600.0))
    fov, S, T = (3000.0, 2000.0), 400, 10
    em = sample_emitters(c, n_sequences=S, n_frames=T, fov_nm=fov, generator=gen(2))
    area = fov[0] * fov[1] * 1e-6
    per = torch.bincount(em.frame_ix % T, minlength=T).double() / (S * area)
    row(rows, "active density, mean over frames", per.mean(), dens, "1/um^2")
    row(rows, "active density, frame 0", per[0], dens, "1/um^2")
    row(rows, "photons per truth row (flux x tau/(tau+1))", em.photons.mean(), (lo + hi) / 2 * tau / (tau + 1),
        "photons")
    z = em.xyz_nm[:, 2].double()
    row(rows, "z mean (uniform -400..600)", z.mean(), 100.0, "nm")
    row(rows, "z std (uniform: 1000/sqrt(12))", z.std(), 1000 / math.sqrt(12), "nm")
    fixed = EmitterConfig(density_per_um2=1.0, photons_range=(1000.0, 1000.0), on_time_frames=tau)
    T = 3000
    em = sample_emitters(fixed, n_sequences=1, n_frames=T, fov_nm=(4000.0, 4000.0), generator=gen(3))
    n = int(em.id.max()) + 1
    on = torch.zeros(n, dtype=torch.float64).index_add_(0, em.id, em.photons[:, 0].double() / 1000.0)
    first = torch.full((n,), T, dtype=torch.int64).scatter_reduce(0, em.id, em.frame_ix, "amin")
    last = torch.full((n,), -1, dtype=torch.int64).scatter_reduce(0, em.id, em.frame_ix, "amax")
    inner = on[(first >= 1) & (last <= T - 2) & (last >= 0)]
    row(rows, f"on-time mean ({inner.numel()} events inside the movie)", inner.mean(), tau, "frames")
    row(rows, "P(on-time > mean) (exponential: 1/e)", (inner > tau).double().mean(), math.exp(-1), "")
    dim = em.photons[:, 0] < 100.0  # on for under a tenth of a frame
    return {"dim_rows_under_10pct_of_flux": float(dim.double().mean())}


def background(rows):
    c = cfg(frame_size=[40, 48], emitters={"density_per_um2": 0.0},
            background={"range": [20.0, 100.0], "variation": 0.3, "variation_scale_nm": 1500.0})
    bg = Simulator(c).simulate_movie(400, generator=gen(4)).bg[0].double()
    level = bg.mean(dim=(1, 2))
    row(rows, "background frame mean (uniform 20..100)", level.mean(), 60.0, "photons/px")
    row(rows, "background frame mean, std (80/sqrt(12))", level.std(), 80 / math.sqrt(12), "photons/px")
    rel = bg / level[:, None, None] - 1
    row(rows, "background field: largest |relative deviation|", rel.abs().amax(dim=(1, 2)).mean(), 0.3, "")


def truth_bg():
    """The truth's bg against the background of the emitter's pixel (background.variation 0.1, as
    examples/3d_astigmatic.yaml, and 0.5), and how far the frame's mean (the column before session 50) was from it."""
    out = {}
    for v in (0.1, 0.5):
        c = cfg(frame_size=[40, 48], emitters={"density_per_um2": 1.0, "photons_range": [1000.0, 2000.0]},
                background={"range": [50.0, 50.0], "variation": v, "variation_scale_nm": 3000.0})
        mov = Simulator(c).simulate_movie(60, generator=gen(7))
        t = mov.truth
        f = np.asarray(t["frame"])
        i = np.floor(np.asarray(t["y_nm"]) / 100).astype(int)
        j = np.floor(np.asarray(t["x_nm"]) / 100).astype(int)
        local = mov.bg[0].numpy()[f, i, j]
        mean = mov.bg[0].double().mean(dim=(1, 2)).numpy()[f]
        out[f"variation_{v:g}"] = {
            "rows": len(t), "truth_bg_max_abs_rel_err_pct": float(np.max(np.abs(t["bg"] / local - 1)) * 100),
            "frame_mean_max_abs_rel_err_pct": float(np.max(np.abs(mean / local - 1)) * 100),
            "frame_mean_rms_rel_err_pct": float(np.sqrt(np.mean((mean / local - 1) ** 2)) * 100)}
    return out


def photon_models(rows):
    ch = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "transform": EYE}
    t = Simulator(cfg(channels=[{**ch, "throughput": 0.7}, {**ch, "throughput": 0.2}],
                      emitters={"density_per_um2": 2.0, "photons_range": [1000.0, 1000.0]})
                  ).simulate_movie(40, generator=gen(5)).truth
    row(rows, "linked: photons_ch0 / photons (0.7 / 0.9)", np.mean(t["photons_ch0"] / t["photons"]), 0.7 / 0.9, "")
    ranges = [[100.0, 200.0], [1000.0, 3000.0]]
    t = Simulator(cfg(channels=[ch, ch], photon_model={"kind": "independent", "channel_photons_range": ranges},
                      emitters={"density_per_um2": 2.0, "blinking": False})).simulate_movie(60, generator=gen(6)).truth
    for k, (lo, hi) in enumerate(ranges):
        row(rows, f"independent: photons_ch{k} mean (uniform {lo:g}..{hi:g})", np.mean(t[f"photons_ch{k}"]),
            (lo + hi) / 2, "photons")
    row(rows, "independent: photons = sum of channels (max |diff|)",
        np.abs(t["photons"] - t["photons_ch0"] - t["photons_ch1"]).max() + 1, 1.0, "photons + 1")


def simulate(args, out):
    cmd = [sys.executable, "-m", "plexloc.cli.main", "simulate", *map(str, args), "--out", str(out), "--device", "cpu"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def reproducibility(tmp):
    example = ROOT / "src" / "plexloc" / "examples" / "2d_gaussian.yaml"
    base = [example, "--frames", 300, "--seed", 3]
    simulate(base, tmp / "ref")
    ref = tifffile.imread(tmp / "ref" / "movie.tif").astype(np.int64)
    out = {}
    for chunk in (7, 1):
        simulate([*base, "--chunk", chunk], tmp / f"c{chunk}")
        m = tifffile.imread(tmp / f"c{chunk}" / "movie.tif").astype(np.int64)
        out[f"max_abs_diff_adu_chunk{chunk}_vs_default"] = int(np.abs(m - ref).max())
    simulate(base, tmp / "again")
    out["same_seed_identical"] = bool(np.array_equal(tifffile.imread(tmp / "again" / "movie.tif"), ref))
    simulate([example, "--frames", 300, "--seed", 4], tmp / "other")
    out["other_seed_identical"] = bool(np.array_equal(tifffile.imread(tmp / "other" / "movie.tif"), ref))
    again = tmp / "ref" / "config.yaml"
    simulate([again, "--frames", 300, "--seed", 3], tmp / "fromsaved")
    out["saved_config_reproduces_movie"] = bool(np.array_equal(tifffile.imread(tmp / "fromsaved" / "movie.tif"), ref))
    out["saved_config_first_line"] = again.read_text().splitlines()[0]
    return out


def memory(tmp):
    big = tmp / "big.yaml"
    big.write_text(yaml.safe_dump({
        "px_size_nm": 100.0, "frame_size": [256, 256], "psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": SCMOS,
        "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 5000.0], "on_time_frames": 2.0},
        "background": {"range": [20.0, 100.0], "variation": 0.2}}))
    out = {}
    for frames in (300, 1500):
        code = ("import resource, sys; from plexloc.cli.main import main; "
                f"main(['simulate', '{big}', '--frames', '{frames}', '--out', '{tmp / f'big{frames}'}', "
                "'--device', 'cpu']); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        out[f"peak_rss_mb_{frames}_frames"] = int(res.stdout.strip().splitlines()[-1]) / 1024
        out[f"seconds_{frames}_frames"] = time.perf_counter() - t0
    return out


def main():
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = []
    camera_moments(rows)
    extra = emitters(rows)
    background(rows)
    photon_models(rows)
    extra["truth_bg"] = truth_bg()
    with tempfile.TemporaryDirectory() as d:
        repro = reproducibility(Path(d))
        mem = memory(Path(d))
    print(f"{'quantity':62s} {'measured':>11s} {'expected':>11s} {'diff %':>7s}")
    for r in rows:
        print(f"{r['what'][:62]:62s} {r['measured']:11.4g} {r['expected']:11.4g} {r['rel_diff_pct']:7.2f}  {r['unit']}")
    for k, v in {**extra, **repro, **mem}.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    result = {"rows": rows, **extra, "reproducibility": repro, "memory": mem, "torch": torch.__version__,
              "seconds": time.perf_counter() - t0,
              "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(__file__).with_suffix(".json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
