"""The full path of issue 6 on an independent vectorial PSF: calibrate -> train -> fit -> evaluate.

1. Bead z-stacks of a biplane microscope (second plane +500 nm, affine channel transform, EMCCD) rendered
   with psfmodels' vectorial PSF (:mod:`plexloc.calibrate.synthetic`), written as TIFFs (ADU);
2. ``plexloc calibrate ch0.tif ch1.tif --camera camera.yaml --out PSF.h5`` (spline PSF per plane, transform);
3. a training config with ``psf: {kind: spline, calibration: PSF.h5, channel: c}`` per plane and the
   calibrated transform; ``plexloc train`` (a small model, ``--minutes``);
4. the test movie: emitters (positions, z, photons, blinking) from ``plexloc simulate`` on that config
   (``truth.csv``); its frames are *re-rendered* with the vectorial PSF (:class:`VectorialVolume`: psfmodels
   sampled at 20 nm laterally (5x oversampled) and 10 nm axially, linearly interpolated in z, exact Fourier
   shifts, summed over pixels). That ground truth never goes through the beads, their registration or a spline:
   the calibrated spline only ever saw noisy 100 nm x 50 nm bead stacks, so the movie's PSF stays independent;
   the spline-rendered movie of ``plexloc simulate`` is fitted too, as the same-PSF reference;
5. ``plexloc fit`` with the network and with ``--method mle`` (the calibrated spline), ``plexloc evaluate``
   in 3D and 2D.

    PYTHONPATH=src python bench/calibrate_fullpath.py [--minutes 4] [--frames 300] [--json bench/calibrate_fullpath.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from plexloc.calibrate import load_calibration
from plexloc.calibrate.synthetic import VectorialBeads, VectorialVolume, render_bead_stacks, render_movie, vectorial_focus_nm
from plexloc.camera.models import EMCCD
from plexloc.cli.main import main as plexloc
from plexloc.io import write_movie
from plexloc.io.tables import read_table

CAMERA = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 74.4}
T1 = [[1.003, 0.004, 35.0], [-0.004, 1.003, -20.0], [0.0, 0.0, 1.0]]
PLANE_OFFSET_NM = 500.0
Z_RANGE = (-600.0, 600.0)


def _cli(*args) -> None:
    rc = plexloc([str(a) for a in args])
    if rc != 0:
        raise SystemExit(f"plexloc {' '.join(map(str, args))} failed with exit code {rc}")


def calibration_beads(work: Path, m: VectorialBeads, zf: float, *, n_beads: int, seed: int) -> list[Path]:
    side = int(np.ceil(np.sqrt(n_beads)))
    spacing = 1700.0
    size = int(np.ceil((1000.0 + spacing * side) / m.px_size_nm)) + 2
    rng = np.random.default_rng(seed)
    xy = np.array([(1000.0 + spacing * i, 1000.0 + spacing * j) for i in range(side) for j in range(side)])[:n_beads]
    xy = xy + rng.uniform(-50, 50, xy.shape)
    zs = np.arange(-1000.0, 1001.0, 50.0)
    raws, _ = render_bead_stacks(
        m, xy_nm=xy, z_stage_nm=zs, bead_dz_nm=rng.uniform(-30, 30, n_beads) + zf, frame_shape=(size, size),
        photons=2e5, bg=50.0, cameras=[EMCCD(), EMCCD()], transforms=[np.eye(3), np.array(T1)],
        plane_offset_nm=[0.0, PLANE_OFFSET_NM], throughput=[0.5, 0.5], roi_px=15, seed=seed,
    )
    paths = []
    for c, r in enumerate(raws):
        paths.append(work / f"beads_ch{c}.tif")
        write_movie(paths[-1], np.clip(np.round(r), 0, 65535).astype(np.uint16))
    return paths


def train_config(work: Path, cal_path: Path, *, density: float) -> Path:
    cal = load_calibration(cal_path)
    ch = [{"psf": {"kind": "spline", "calibration": cal_path.name, "channel": c}, "camera": CAMERA, "throughput": 0.5}
          for c in range(2)]
    ch[1]["transform"] = np.asarray(cal.channels[1].transform_nm).tolist()
    ch[1]["z_offset_nm"] = 0.0  # the second plane's calibrated spline holds its focal offset
    cfg = {
        "px_size_nm": 100.0,
        "frame_size": [32, 32],
        "photon_model": {"kind": "linked"},
        "channels": ch,
        "emitters": {"density_per_um2": density, "photons_range": [1000.0, 10000.0], "on_time_frames": 2.0,
                     "z_range_nm": list(Z_RANGE)},
        "background": {"range": [20.0, 100.0], "variation": 0.0},
        "model": {"window": 3, "features": 16, "depth": 2, "union_features": 16, "union_depth": 2},
        "training": {"batch_size": 16, "lr": 0.001, "warmup_steps": 50, "validate_every": 200,
                     "validation_samples": 128, "lr_patience": 4},
    }
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def vectorial_movie(work: Path, sim: Path, m: VectorialBeads, zf: float, *, frames: int, bg: float, seed: int) -> list[Path]:
    truth = read_table(sim / "truth.csv")
    vol = VectorialVolume(m, z_range_nm=(Z_RANGE[0] - PLANE_OFFSET_NM - 50 + zf, Z_RANGE[1] + 50 + zf), dz_nm=10.0, roi_px=15)
    raws = render_movie(
        vol, frame=np.asarray(truth["frame"]), xy_nm=np.column_stack([np.asarray(truth["x_nm"]), np.asarray(truth["y_nm"])]),
        z_nm=np.asarray(truth["z_nm"]), photons=np.asarray(truth["photons"]), n_frames=frames, frame_shape=(64, 64), bg=bg,
        cameras=[EMCCD(), EMCCD()], z_focus_nm=zf, transforms=[np.eye(3), np.array(T1)],
        plane_offset_nm=[0.0, PLANE_OFFSET_NM], throughput=[0.5, 0.5], seed=seed,
    )
    paths = []
    for c, r in enumerate(raws):
        paths.append(work / f"vectorial_ch{c}.tif")
        write_movie(paths[-1], np.clip(np.round(r), 0, 65535).astype(np.uint16))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="bench/calibrate_fullpath.json")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--beads", type=int, default=12)
    ap.add_argument("--density", type=float, default=0.3, help="active emitters per um^2 (train and test)")
    ap.add_argument("--bg", type=float, default=50.0, help="test movie background, photons/px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 where the cores are shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = None if args.work else tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t = time.time()
    m = VectorialBeads()
    zf = vectorial_focus_nm(m)
    beads = calibration_beads(work, m, zf, n_beads=args.beads, seed=args.seed)
    (work / "camera.yaml").write_text(yaml.safe_dump(CAMERA))
    cal_path = work / "PSF.h5"
    _cli("calibrate", *beads, "--z-step", 50, "--pixel-size", 100, "--camera", work / "camera.yaml", "--out", cal_path)
    cal_report = json.loads(cal_path.with_suffix(".json").read_text())
    times["calibrate_s"] = time.time() - t
    cfg = train_config(work, cal_path, density=args.density)
    t = time.time()
    _cli("simulate", cfg, "--frames", args.frames, "--out", work / "sim", "--seed", 1000 + args.seed, "--frame-size", 64, 64,
         "--device", "cpu")
    movie_v = vectorial_movie(work, work / "sim", m, zf, frames=args.frames, bg=args.bg, seed=args.seed)
    times["movies_s"] = time.time() - t
    t = time.time()
    _cli("train", cfg, "--out", work / "run", "--minutes", args.minutes, "--threads", args.threads, "--device", args.device)
    times["train_s"] = time.time() - t
    log = (work / "run" / "log.csv").read_text().strip().splitlines()
    steps = int(log[-1].split(",")[0]) if len(log) > 1 and log[-1].split(",")[0].isdigit() else None
    movie_s = [work / "sim" / f"movie_ch{c}.tif" for c in range(2)]
    rows = []
    for movie_name, movie in (("vectorial", movie_v), ("spline (same PSF)", movie_s)):
        for method in ("network", "mle"):
            out = work / f"locs_{movie_name.split()[0]}_{method}.csv"
            t = time.time()
            if method == "network":
                _cli("fit", *movie, "--model", work / "run", "--out", out, "--device", args.device)  # the training camera
            else:
                _cli("fit", *movie, "--method", "mle", "--config", cfg, "--out", out)
            fit_s = time.time() - t
            row = {"movie": movie_name, "method": method, "fit_s": fit_s}
            for dim in (3, 2):
                js = work / f"eval_{movie_name.split()[0]}_{method}_{dim}d.json"
                _cli("evaluate", work / "sim" / "truth.csv", out, "--dim", dim, "--json", js)
                e = json.loads(js.read_text())
                row[f"{dim}d"] = {k: e.get(k) for k in ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d", "bias_x", "bias_y", "bias_z")}
            rows.append(row)
    print(f"\ncalibration: beads used {cal_report['n_beads_used']}, leave-one-out z bias {cal_report.get('z_bias_nm', float('nan')):.1f} nm, "
          f"z RMSE {cal_report.get('z_rmse_nm', float('nan')):.1f} nm; training {times['train_s']:.0f} s ({steps} steps)")
    print(f"{'movie':<18} {'method':<8} {'JI 3D %':>8} {'RMSE lat':>9} {'RMSE ax':>8} {'E3D %':>6} {'JI 2D %':>8} {'RMSE lat 2D':>11} {'fit s':>6}")
    def f(v):  # metrics are None where nothing matched
        return float("nan") if v is None else v

    for r in rows:
        a, b = r["3d"], r["2d"]
        print(f"{r['movie']:<18} {r['method']:<8} {f(a['jaccard']):8.1f} {f(a['rmse_lat']):9.1f} {f(a['rmse_ax']):8.1f} "
              f"{f(a['eff_3d']):6.1f} {f(b['jaccard']):8.1f} {f(b['rmse_lat']):11.1f} {r['fit_s']:6.1f}")
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "vectorial_focus_nm": zf,
        "calibration": {k: cal_report.get(k) for k in ("n_beads_used", "z_bias_nm", "z_rmse_nm", "xy_bias_nm", "transforms", "transform_residual_nm", "throughput_ratio", "focus_offset_nm")},
        "train_steps": steps,
        "times_s": times,
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
