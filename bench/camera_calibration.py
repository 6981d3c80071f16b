"""Camera calibration accuracy (``plexloc calibrate-camera``, :mod:`plexloc.camera.calibration`): cameras of known
settings simulated with the project's own camera models (sCMOS with per-pixel offset, gain and read-noise maps; the
SMLM Challenge EMCCD), their settings measured back from dark frames plus flat fields, or from dark frames plus a
simulated SMLM movie (2D Gaussian PSF, background 40-120 photons/px, densities 0.1-2 emitters/µm²).

Per case: the measured gain (sCMOS ``e_per_adu``, EMCCD ``e_per_adu`` at the true EM gain) against the truth, the
offset and read-noise errors, and the photons a frame converts to with the measured camera against the true one.
Last, flats whose lamp flickers from frame to frame (``--flicker``, rms share of the light per frame), measured as
``calibrate-camera`` does and without the flicker taken out (the plain temporal variance, as before review 34).

``--movie-flicker``: the movie method under an excitation laser whose power changes from frame to frame (rms share
per frame; it scales the background and the emitters alike), on several seeds (``--seeds``), for each illumination
profile (``--movie-profiles``: the simulator's background ``variation``, 0 uniform, 0.5 within 0.5x-1.5x of the
mean) and slow bleaching (``--movie-bleach``: the share of the light lost, linearly, over the movie). Every seed
draws its own dark frames, emitters and noise, the same at every flicker level (paired): the table gives each case's
gain error over the seeds and its paired change from the flicker-free movie.

    PYTHONPATH=src python bench/camera_calibration.py --out bench/camera_calibration.json
    PYTHONPATH=src python bench/camera_calibration.py --only-movie-flicker --movie-flicker 0 0.01 0.02 0.05 \
        --out bench/camera_calibration_movie_flicker.json
    PYTHONPATH=src python bench/camera_calibration.py --only-movie-flicker --movie-flicker 0 0.02 --movie-bleach 0 0.5 \
        --seeds 12 --out bench/camera_calibration_movie35b.json    # session 35b's movie method (the _before file: 9a883fd's)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.camera.calibration import calibrate_camera, movie_transfer, stack_stats
from plexloc.camera.models import EMCCD, SCMOS, camera_from_config
from plexloc.config import SimulationConfig, load_camera_config
from plexloc.simulation import Simulator

from accuracy import commit  # bench/ is the script's folder, first on sys.path

SIZE = 64


def scmos_truth(seed: int):
    rng = np.random.default_rng(seed)
    gain = rng.normal(0.5, 0.01, (SIZE, SIZE)).astype(np.float32)
    base = rng.normal(100.0, 3.0, (SIZE, SIZE)).astype(np.float32)
    read = np.abs(rng.normal(1.5, 0.5, (SIZE, SIZE))).astype(np.float32)
    cam = SCMOS(qe=0.8, e_per_adu=torch.tensor(gain), baseline=torch.tensor(base), read_sigma=torch.tensor(read))
    return cam, {"e_per_adu": gain, "baseline": base, "read_sigma": read}


def emccd_truth():
    return EMCCD(qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4), \
        {"e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 74.4, "em_gain": 300.0}


def frames(cam, photons, n: int, gen: torch.Generator) -> np.ndarray:
    p = torch.full((n, SIZE, SIZE), float(photons)) if np.isscalar(photons) else torch.as_tensor(photons)
    return cam(p, generator=gen).numpy()


def photon_ratio(cal, cam, gen) -> float:
    """Mean photons of frames at 100 photons/px converted with the measured camera (its YAML and maps written and read
    back as a user's fit reads them) over those converted with the true camera."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "camera.yaml"
        cal.save(path)
        measured = camera_from_config(load_camera_config(path))
    adu = torch.as_tensor(frames(cam, 100.0, 50, gen))
    return float(measured.to_photons(adu.clone()).mean() / cam.to_photons(adu.clone()).mean())


def row_of(name: str, cal, truth: dict, cam, gen, seconds: float) -> dict:
    e = cal.config["e_per_adu"]
    e_meas = float(np.mean(e)) if not np.isscalar(e) else float(e)
    e_true = float(np.mean(truth["e_per_adu"]))
    if cal.kind == "scmos":
        base_err = float(np.sqrt(np.mean((cal.maps["baseline"] - truth["baseline"]) ** 2)))
        read_ratio = float(np.median(cal.maps["read_variance"] / np.maximum(truth["read_sigma"] ** 2, 1e-6)))
    else:
        base_err = abs(cal.config["baseline"] - truth["baseline"])
        read_ratio = (cal.config["read_sigma"] / truth["read_sigma"]) ** 2
    gain_map = float(np.std(cal.maps["e_per_adu"] / truth["e_per_adu"] - 1)) if "e_per_adu" in cal.maps else math.nan
    return {"case": name, "kind": cal.kind, "e_per_adu": e_meas, "e_per_adu_true": e_true,
            "gain_error_pct": 100 * (e_meas / e_true - 1), "gain_map_scatter_pct": 100 * gain_map,
            "gain_map_se_pct": 100 * cal.gain_map_se if "e_per_adu" in cal.maps else math.nan,
            "baseline_rms_error_adu": base_err, "read_variance_ratio": read_ratio,
            "photon_ratio": photon_ratio(cal, cam, gen),
            "clipped_pct": 100 * cal.transfer.clipped if math.isfinite(cal.transfer.clipped) else math.nan,
            "crowding_note": any("crowd" in n for n in cal.notes), "seconds": seconds}


def movie_case(kind: str, density: float, dark, cam, cam_cfg: dict, gen, n_frames: int):
    data = {"px_size_nm": 100.0, "frame_size": [SIZE, SIZE], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
            "camera": cam_cfg, "emitters": {"density_per_um2": density, "photons_range": [1000.0, 5000.0]},
            "background": {"range": [40.0, 120.0]}}
    sim = Simulator(SimulationConfig.model_validate(data))
    sim.channels[0].camera = cam  # the per-pixel truth of the sCMOS case
    mv = sim.simulate_movie(n_frames, generator=gen).frames.reshape(n_frames, SIZE, SIZE).numpy()
    t0 = time.perf_counter()
    tc = movie_transfer(np.array_split(mv, 4), dark.mean, dark.read_variance)
    cal = calibrate_camera(dark, kind=kind, movie=tc, em_gain=300.0 if kind == "emccd" else None,
                           qe=0.8 if kind == "scmos" else 0.9)
    return cal, time.perf_counter() - t0


MOVIE_BG = 80.0  # photons/px/frame: the flicker movies' mean background (the middle of the movie rows' 40-120)


def cam_config(kind: str) -> dict:
    return ({"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5} if kind == "scmos"
            else {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
                  "baseline": 100.0, "read_sigma": 74.4})


def flicker_movie(cam, cam_cfg: dict, *, flicker: float, profile: float, bleach: float, density: float, n_frames: int,
                  gen: torch.Generator) -> np.ndarray:
    """(T, H, W) ADU: a 2D Gaussian movie of background ``MOVIE_BG`` photons/px times a smooth illumination profile of
    relative amplitude ``profile``, every frame's expected photons (background and emitters: both are excited by the
    laser) times ``(1 - bleach * t / T) * (1 + flicker * N(0, 1))``. The standard normal draws happen at every
    flicker level, so that one seed gives the same emitters, background and profile whatever ``flicker``."""
    data = {"px_size_nm": 100.0, "frame_size": [SIZE, SIZE], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
            "camera": cam_cfg, "emitters": {"density_per_um2": density, "photons_range": [1000.0, 5000.0]},
            "background": {"range": [MOVIE_BG, MOVIE_BG], "variation": profile}}
    sim = Simulator(SimulationConfig.model_validate(data))
    sim.channels[0].camera = cam
    em = sim.sample_emitters(n_sequences=1, n_frames=n_frames, generator=gen,
                             margin_nm=sim.channel_margin_px() * 100.0)
    bg = sim.sample_background(n_sequences=1, n_frames=n_frames, generator=gen)
    z = torch.randn(n_frames, generator=gen)
    scale = (1.0 - bleach * torch.arange(n_frames) / n_frames) * (1.0 + flicker * z)
    with torch.no_grad():
        expected = sim.expected_photons(em, bg) * scale[None, :, None, None]
        return sim.camera(expected, generator=gen)[0].numpy()


def movie_flicker_rows(args) -> tuple[list[dict], list[dict]]:
    """Per seed and case, the movie method's gain error for every flicker level (the offset and read noise come from
    the dark frames, which the movie does not touch); and the summary over the seeds, with each flicker level's
    paired change from the same seed's flicker-free movie."""
    rows = []
    for kind in ("scmos", "emccd"):
        cam, truth = scmos_truth(1) if kind == "scmos" else emccd_truth()
        e_true = float(np.mean(truth["e_per_adu"]))
        for profile in args.movie_profiles:
            for bleach in args.movie_bleach:
                for seed in range(args.seeds):
                    for flicker in args.movie_flicker:
                        gen = torch.Generator().manual_seed(10_000 + seed)  # the same draws at every flicker level
                        dark = stack_stats([frames(cam, 0.0, args.dark_frames, gen)])
                        t0 = time.perf_counter()
                        mv = flicker_movie(cam, cam_config(kind), flicker=flicker, profile=profile, bleach=bleach,
                                           density=args.movie_flicker_density, n_frames=args.movie_frames, gen=gen)
                        t1 = time.perf_counter()
                        tc = movie_transfer(np.array_split(mv, 4), dark.mean, dark.read_variance)
                        cal = calibrate_camera(dark, kind=kind, movie=tc, em_gain=300.0 if kind == "emccd" else None,
                                               qe=0.8 if kind == "scmos" else 0.9)
                        e = float(np.mean(cal.config["e_per_adu"]))
                        rows.append({"kind": kind, "profile": profile, "bleach": bleach, "flicker": flicker,
                                     "seed": seed, "e_per_adu": e, "e_per_adu_true": e_true,
                                     "gain_error_pct": 100 * (e / e_true - 1),
                                     "clipped_pct": 100 * cal.transfer.clipped,
                                     "simulate_s": t1 - t0, "calibrate_s": time.perf_counter() - t1})
    summary = []
    key = lambda r: (r["kind"], r["profile"], r["bleach"])  # noqa: E731
    for case in dict.fromkeys(map(key, rows)):
        base = {r["seed"]: r["gain_error_pct"] for r in rows if key(r) == case and r["flicker"] == 0.0}
        for flicker in args.movie_flicker:
            sel = [r for r in rows if key(r) == case and r["flicker"] == flicker]
            err = np.array([r["gain_error_pct"] for r in sel])
            paired = np.array([r["gain_error_pct"] - base[r["seed"]] for r in sel if r["seed"] in base])
            sd = lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else math.nan  # noqa: E731
            summary.append({"kind": case[0], "profile": case[1], "bleach": case[2], "flicker": flicker,
                            "seeds": len(err), "gain_error_pct_mean": float(err.mean()), "gain_error_pct_sd": sd(err),
                            "paired_change_pct_mean": float(paired.mean()) if len(paired) else math.nan,
                            "paired_change_pct_sd": sd(paired),
                            "paired_change_pct_se": sd(paired) / math.sqrt(len(paired)) if len(paired) else math.nan,
                            "calibrate_s_mean": float(np.mean([r["calibrate_s"] for r in sel]))})
    return rows, summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dark-frames", type=int, default=500)
    ap.add_argument("--flat-frames", type=int, default=500)
    ap.add_argument("--movie-frames", type=int, default=300)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    ap.add_argument("--flicker", type=float, nargs="*", default=[0.01, 0.05],
                    help="flat-field lamp flicker cases (rms share per frame; none: no such rows)")
    ap.add_argument("--movie-flicker", type=float, nargs="*", default=[],
                    help="movie cases under a laser that flickers from frame to frame (rms share per frame; include 0 "
                    "for the paired change; none: no such rows)")
    ap.add_argument("--movie-profiles", type=float, nargs="+", default=[0.0, 0.5, 0.8],
                    help="--movie-flicker: the illumination profile's relative amplitude (background 'variation')")
    ap.add_argument("--movie-bleach", type=float, nargs="+", default=[0.0],
                    help="--movie-flicker: share of the light lost (linearly) over the movie")
    ap.add_argument("--movie-flicker-density", type=float, default=0.1, help="--movie-flicker: emitters per um^2")
    ap.add_argument("--seeds", type=int, default=24, help="--movie-flicker: seeds per case")
    ap.add_argument("--only-movie-flicker", action="store_true", help="only the --movie-flicker rows")
    ap.add_argument("--out", type=Path, default=Path("bench/out/camera_calibration.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.only_movie_flicker:
        return movie_flicker_main(args)
    gen = torch.Generator().manual_seed(11)
    rows = []
    for kind in ("scmos", "emccd"):
        cam, truth = scmos_truth(1) if kind == "scmos" else emccd_truth()
        dark = stack_stats([frames(cam, 0.0, args.dark_frames, gen)])
        levels = (50.0, 200.0, 800.0) if kind == "scmos" else (5.0, 20.0, 80.0)
        t0 = time.perf_counter()
        flats = [stack_stats([frames(cam, lv, args.flat_frames, gen)]) for lv in levels]
        sim_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cal = calibrate_camera(dark, kind=kind, flats=flats, em_gain=300.0 if kind == "emccd" else None,
                               gain_map="yes" if kind == "scmos" else "auto")
        rows.append(row_of(f"dark {args.dark_frames} + 3 flats x {args.flat_frames}", cal, truth, cam, gen,
                           time.perf_counter() - t0))
        del sim_s
        cam_cfg = cam_config(kind)
        for density in args.densities:
            cal, secs = movie_case(kind, density, dark, cam, cam_cfg, gen, args.movie_frames)
            rows.append(row_of(f"dark {args.dark_frames} + movie {args.movie_frames} frames, {density:g}/um^2", cal,
                               truth, cam, gen, secs))
    gen = torch.Generator().manual_seed(12)  # its own stream: the rows above stay those of earlier runs
    plain = lambda st: dataclasses.replace(st, detrended_var=None)  # noqa: E731
    for kind in ("scmos", "emccd") if args.flicker else ():
        cam, truth = scmos_truth(1) if kind == "scmos" else emccd_truth()
        dark = stack_stats([frames(cam, 0.0, args.dark_frames, gen)])
        levels = (50.0, 200.0, 800.0) if kind == "scmos" else (5.0, 20.0, 80.0)
        for flicker in args.flicker:
            scale = 1.0 + flicker * torch.randn(args.flat_frames, 1, 1, generator=gen)
            flats = [stack_stats([frames(cam, (lv * scale).expand(-1, SIZE, SIZE), args.flat_frames, gen)])
                     for lv in levels]
            for how, d, fl in (("", dark, flats), (", uncorrected", plain(dark), [plain(f) for f in flats])):
                t0 = time.perf_counter()
                cal = calibrate_camera(d, kind=kind, flats=fl, em_gain=300.0 if kind == "emccd" else None,
                                       gain_map="yes" if kind == "scmos" else "auto")
                rows.append(row_of(f"dark {args.dark_frames} + 3 flats x {args.flat_frames}, lamp flicker "
                                   f"{100 * flicker:g} %{how}", cal, truth, cam, gen, time.perf_counter() - t0))
    print("| camera | data | e_per_adu measured / true | error % | gain map scatter % (stated SE) | offset RMS error ADU "
          "| read variance ratio | photons measured / true camera | clipped differences % | crowding note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gm = (f"{r['gain_map_scatter_pct']:.1f} ({r['gain_map_se_pct']:.1f})" if math.isfinite(r["gain_map_scatter_pct"])
              else "-")
        cl = f"{r['clipped_pct']:.3f}" if math.isfinite(r["clipped_pct"]) else "-"
        print(f"| {r['kind']} | {r['case']} | {r['e_per_adu']:.4g} / {r['e_per_adu_true']:.4g} | {r['gain_error_pct']:+.1f} "
              f"| {gm} | {r['baseline_rms_error_adu']:.3f} | {r['read_variance_ratio']:.3f} | {r['photon_ratio']:.3f} | {cl} "
              f"| {'yes' if r['crowding_note'] else 'no'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commit": commit(), "torch": torch.__version__, "args": vars(args) | {"out": str(args.out)},
                                    "rows": rows}, indent=1))
    return 0


def movie_flicker_main(args) -> int:
    t0 = time.perf_counter()
    rows, summary = movie_flicker_rows(args)
    seconds = time.perf_counter() - t0
    print("| camera | illumination profile | bleach | laser flicker % rms | seeds | gain error % mean +- sd "
          "| paired change from 0 % flicker, mean +- sd (SE) |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['kind']} | {r['profile']:g} | {r['bleach']:g} | {100 * r['flicker']:g} | {r['seeds']} "
              f"| {r['gain_error_pct_mean']:+.2f} +- {r['gain_error_pct_sd']:.2f} "
              f"| {r['paired_change_pct_mean']:+.3f} +- {r['paired_change_pct_sd']:.3f} "
              f"({r['paired_change_pct_se']:.3f}) |")
    print(f"{len(rows)} movies in {seconds:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commit": commit(), "torch": torch.__version__,
                                    "args": vars(args) | {"out": str(args.out)}, "seconds": seconds,
                                    "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
