"""Accuracy of the network on SMLM-Challenge-like simulated data, against the CRLB and the MLE fitter.

For each configuration (default ``examples/2d_gaussian.yaml`` and ``examples/3d_astigmatic.yaml``: the
SMLM Challenge 2016 camera, photons and background) one model is trained for ``--minutes`` on 40x40
samples at ``--train-density``, then independent 64x64 test movies are simulated at each density
(default 0.1, 0.5, 1, 2 emitters/um^2), fitted end to end (TIFF in, table out) and scored:
JI, RMSE_lat, RMSE_ax, E_lat, E_ax, E_3D, RMSE / sqrt(mean CRLB^2) over matched emitters, the
standard deviation of the z-scores (error / predicted sigma), and the gridding deviation. Emitters
dimmer than the training's ``min_target_photons`` are removed from the truth (they are not targets).
With ``--compare-mle`` the project's MLE fitter fits the same movies (3D, 1/um^2 is the bar's point);
with ``--compare-picasso`` Picasso's astigmatic workflow does (its own bead calibration and z fit, in the
bench-only venv ``.venv-bench``; the best of a grid of its box sizes and thresholds).
Multi-plane configurations (linked photons, focal planes equally spaced from 0, the z range within their
slabs, e.g. ``examples/quad_plane.yaml``) also get seed 002's voxel-level Jaccard index
(:mod:`plexloc.evaluate.voxel`; voxels = camera pixels x one plane spacing).

Time to accuracy: from the run's validation log, the training time after which the validation
efficiency stays within 2 points of its plateau (the mean of the last three validations). A run of
``--init-from`` (weights of an earlier run, e.g. another GPU lease's, with a fresh optimizer) goes on with
the source's clock and log rows, so the curve spans both; ``seams`` in the JSON mark where the optimizer
restarted.

    python bench/accuracy.py --device cuda --minutes 20
    python bench/accuracy.py --device cpu --minutes 3 --features 16 --frames 100   # a CPU smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.config import TrainConfig, load_config
from plexloc.evaluate import evaluate
from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import gridding_deviation
from plexloc.evaluate.uncertainty import error_scores, table_crlb, zscore_by_neighbour, zscore_slabs
from plexloc.evaluate.voxel import voxel_jaccard
from plexloc.infer import fit_movie
from plexloc.infer.predict import cpu_bf16_supported
from plexloc.io import write_table
from plexloc.io.tiff import write_movie
from plexloc.simulation import Simulator
from plexloc.train import Trainer
from plexloc.train.trainer import log_seams, read_log

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The code's commit: ``PLEXLOC_COMMIT`` where set (bench/gpu.sh sets it from its GPU_COMMIT: a device
    machine's copy of the repository may hold an older HEAD than the files it runs), else git's HEAD."""
    if os.environ.get("PLEXLOC_COMMIT"):
        return os.environ["PLEXLOC_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return "unknown"


def curve_figure(tta: dict, path: Path, title: str) -> None:
    """The learning curve (validation efficiency against training minutes) with the plateau marked."""
    if not tta.get("curve_minutes"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(tta["curve_minutes"], tta["curve_eff"], "o-", ms=3)
    for i, seam in enumerate(tta.get("seams") or []):
        ax.axvline(seam["minutes"], color="grey", ls="-.", lw=0.8, label="optimizer restart" if i == 0 else None)
    ax.axhline(tta["plateau"], color="grey", ls="--", lw=1, label=f"plateau {tta['plateau']:.1f}")
    ax.axvline(tta["minutes_to_plateau"], color="tab:red", ls=":", lw=1, label=f"within 2 points: {tta['minutes_to_plateau']:.1f} min")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("validation efficiency")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def time_to_plateau(log_csv: Path, key: str) -> dict:
    rows = read_log(log_csv)
    t = np.array([float(r["elapsed_s"]) for r in rows])
    e = np.array([float(r.get(key, math.nan)) for r in rows])
    # an --init-from run (a fresh optimizer on an earlier run's weights): where the log's segment changes
    seams = [{"minutes": float(t[i] / 60.0), "step": int(rows[i]["step"]), "segment": int(rows[i].get("segment") or 0),
              "eff_before": float(e[i - 1]) if math.isfinite(e[i - 1]) else None,
              "eff_after": float(e[i]) if math.isfinite(e[i]) else None}
             for i in log_seams(rows)]
    ok = np.isfinite(e)
    if ok.sum() < 3:
        return {"plateau": None, "minutes_to_plateau": None, "seams": seams}
    t, e = t[ok], e[ok]
    plateau = float(np.mean(e[-3:]))
    within = e >= plateau - 2.0
    # first index from which every later validation stays within 2 points
    idx = len(e) - 1
    while idx > 0 and within[idx - 1]:
        idx -= 1
    return {"plateau": plateau, "minutes_to_plateau": float(t[idx] / 60.0), "curve_minutes": (t / 60).tolist(),
            "curve_eff": e.tolist(), "seams": seams}


def train_config(path: Path, args) -> TrainConfig:
    d = load_config(path, TrainConfig).model_dump()
    d["frame_size"] = [args.train_size, args.train_size]
    d["emitters"]["density_per_um2"] = args.train_density
    d["model"].update(features=args.features, union_features=args.features)
    if args.depth is not None:
        d["model"].update(depth=args.depth, union_depth=args.depth)
    if args.up_kernel is not None:
        d["model"].update(up_kernel=args.up_kernel)
    if args.out_kernel is not None:
        d["model"].update(out_kernel=args.out_kernel)
    d["training"].update(batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule, validate_every=args.validate_every,
                         validate_every_s=args.validate_every_s, validation_samples=args.validation_samples,
                         compile=args.compile)
    if args.train_density_range is not None:
        d["training"]["density_range_per_um2"] = list(args.train_density_range)
    if args.train_margin_px is not None:
        d["training"]["margin_px"] = args.train_margin_px
    return TrainConfig.model_validate(d)


def run_config(path: Path, args, device: torch.device, out: Path, save=lambda: None) -> dict:
    """Train (or load) one configuration's model and score it at every density; ``save()`` is called
    after training and after each density, so that a run cut short keeps what it measured."""
    name = path.stem
    config = train_config(path, args)
    run_dir = out / f"{name}_run"
    if args.baselines_only:
        model, steps = None, None
    elif args.resume is not None:  # a run of an earlier call (another GPU lease), trained on from its checkpoint
        run_dir = Path(args.resume)
        trainer = Trainer(config, run_dir, device=device, resume=True)
        config = trainer.config
        print(f"[{name}] resuming {run_dir} at step {trainer.step} ({trainer.elapsed_s / 60:.1f} min), {args.minutes} min "
              f"more on {device} ...", flush=True)
        resumed = {"from_step": trainer.step, "from_minutes": trainer.elapsed_s / 60.0}
        trainer.run(minutes=args.minutes, log=lambda s: print(f"[{name}] {s}", flush=True))
        resumed["total_minutes"] = trainer.elapsed_s / 60.0  # train_minutes below: this call's only
        model = run_dir
        steps = trainer.step
    elif args.init_from is not None:  # a new run on an earlier run's weights (another lease's), its clock continued
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        trainer = Trainer(config, run_dir, device=device, init_from=args.init_from, clock_offset_min="source")
        o = trainer.origin
        print(f"[{name}] from the weights of {o['init_from']} ({o['weights_dtype']}, step {o['step']}, "
              f"{o['elapsed_s'] / 60:.1f} min), a fresh optimizer, {args.minutes} min more on {device} ...", flush=True)
        for note in trainer.init_notes:
            print(f"[{name}] note: {note}", flush=True)
        init = {"path": str(args.init_from), "from_step": o["step"], "from_minutes": o["elapsed_s"] / 60.0,
                "segment": o["segment"], "weights_dtype": o["weights_dtype"], "changed": o["changed"]}
        trainer.run(minutes=args.minutes, log=lambda s: print(f"[{name}] {s}", flush=True))
        init["total_minutes"] = trainer.elapsed_s / 60.0  # train_minutes below: this call's only
        model = run_dir
        steps = trainer.step
    elif args.model is None:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        trainer = Trainer(config, run_dir, device=device)
        print(f"[{name}] training {args.minutes} min on {device} ...", flush=True)
        trainer.run(minutes=args.minutes, log=lambda s: print(f"[{name}] {s}", flush=True))
        model = run_dir
        steps = trainer.step
    else:
        model, steps = Path(args.model), None
    is_3d = config.emitters.z_range_nm[1] > config.emitters.z_range_nm[0]
    dim = 3 if is_3d else 2
    res = {"config": str(path), "dim": dim, "train_minutes": args.minutes, "train_steps": steps, "densities": {}}
    if args.model is None and not args.baselines_only:  # what the trainer chose on this device (bf16, NHWC on a CPU too)
        res["train_bf16"], res["train_channels_last"] = bool(trainer.amp), bool(trainer.channels_last)
    # the network's arithmetic in fitting (precision "auto", the model's training.amp); NHWC on a oneDNN CPU
    amp_ok = device.type == "cuda" or cpu_bf16_supported()
    res["fit_precision"] = "bfloat16" if amp_ok and config.training.amp else "float32"
    if args.resume is not None and not args.baselines_only:
        res["resumed"] = resumed
    if args.init_from is not None and not args.baselines_only:
        res["init_from"] = init
    if args.model is None and not args.baselines_only:  # a resumed run's curve covers all its calls
        res["time_to_accuracy"] = time_to_plateau(run_dir / "log.csv", "eff_3d" if is_3d else "eff_lat")
        curve_figure(res["time_to_accuracy"], out / f"{name}_curve.png", f"{name}: validation efficiency while training")
    save(res)
    sim_data = config.simulation().model_dump()  # test data: the configuration's own photon model (e.g. dye ratios)
    sim_data["frame_size"] = [args.size, args.size]
    if args.roi_offset:  # the test movies' place on the chip (the channel transforms act in chip coordinates)
        sim_data["roi_offset_px"] = list(args.roi_offset)
    n_ch = config.n_channels
    picasso_note = picasso_unavailable(config, dim) if args.compare_picasso else "not asked for"
    beads = picasso_beads(config, out, device) if picasso_note is None else None  # one bead stack per configuration
    for density in args.densities:
        sim_data["emitters"]["density_per_um2"] = density
        sim = Simulator(type(config.simulation()).model_validate(sim_data)).to(device)
        frames = args.frames
        if args.min_emitters:  # enough frames for at least this many emitters at this density
            area_um2 = sim.fov_nm[0] * sim.fov_nm[1] * 1e-6
            frames = max(frames, math.ceil(args.min_emitters / max(density * area_um2, 1e-9)))
        while True:  # the target count is of scored emitters: partial on-frames under the photon cut do not count
            mov = sim.simulate_movie(frames, generator=torch.Generator(device=device).manual_seed(int(density * 1000) + 7))
            truth = mov.truth
            truth = truth[truth["photons"] >= config.training.min_target_photons]
            if len(truth) >= args.min_emitters:
                break
            frames = math.ceil(frames * 1.05 * args.min_emitters / max(len(truth), 1))
        movie_paths = [out / f"{name}_d{density:g}_ch{c}.tif" for c in range(n_ch)]
        for c, mp in enumerate(movie_paths):
            write_movie(mp, mov.frames[c].cpu().numpy().astype(np.uint16))
        bound = truth_crlb(truth, sim, config)
        row: dict = {"frames": frames, "n_truth": len(truth)}
        if not args.baselines_only:
            stats: dict = {}
            pred = fit_movie(movie_paths if n_ch > 1 else movie_paths[0], model, device=device, stats=stats,
                             roi_offset_px=tuple(args.roi_offset) if args.roi_offset else None)
            if config.photon_model.kind == "ratiometric":
                pred = assign_colors_if_available(pred, config)
            row.update(score(truth, pred, bound, config, dim, args.size))
            row["fit_frames_per_s"] = stats.get("frames_per_s")
            if args.keep_tables:  # the network's table and the truth, for analyses after the run
                write_table(pred, out / f"{name}_d{density:g}_pred.csv")
                write_table(truth, out / f"{name}_d{density:g}_truth.csv")
            if args.refine_mle:  # the same fit with every localization refined by the MLE (neighbours modelled)
                stats_r: dict = {}
                pred_r = fit_movie(movie_paths if n_ch > 1 else movie_paths[0], model, device=device, stats=stats_r,
                                   roi_offset_px=tuple(args.roi_offset) if args.roi_offset else None, refine_mle=True)
                if config.photon_model.kind == "ratiometric":
                    pred_r = assign_colors_if_available(pred_r, config)
                row.update({f"refined_{k}": v for k, v in score(truth, pred_r, bound, config, dim, args.size).items()})
                row["refined_fit_frames_per_s"] = stats_r.get("frames_per_s")
                row["refined_share"] = float(np.mean(pred_r["refined"])) if len(pred_r) else None
                if args.keep_tables:
                    write_table(pred_r, out / f"{name}_d{density:g}_refined.csv")
        if args.compare_mle:
            row.update(compare_mle(movie_paths if n_ch > 1 else movie_paths[0], config, truth, dim, device))
            for roi in args.mle_roi_px or []:  # the same movies with other fitting windows: keys mle_roiN_*
                res_roi = compare_mle(movie_paths if n_ch > 1 else movie_paths[0], config, truth, dim, device, roi_px=roi)
                row.update({k.replace("mle_", f"mle_roi{roi}_", 1): v for k, v in res_roi.items()})
        if beads is not None:
            row.update(compare_picasso(movie_paths[0], config, truth, dim, out, beads, density))
        elif args.compare_picasso:
            row["picasso_note"] = picasso_note
        if args.compare_naive and n_ch > 1:
            row.update(compare_naive(movie_paths, config, truth, bound, dim, args.size, device))
        res["densities"][f"{density:g}"] = row
        save(res)
        print(f"[{name}] density {density:g}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
        for mp in movie_paths:
            mp.unlink()
    return res


SCORE_KEYS = ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d",
              "gridding_dev_x", "gridding_dev_y", "color_accuracy", "color_rejection", "tp")


def score(truth, pred, bound: dict, config: TrainConfig, dim: int, size: int) -> dict:
    """The SMLM-Challenge metrics, CRLB ratios, z-scores and (multi-plane) voxel JI of one table."""
    m = match(truth, pred, dim=dim)
    met = evaluate(truth, pred, dim=dim, px_size_nm=config.px_size_xy_nm[0]).to_dict()
    row = {k: met.get(k) for k in SCORE_KEYS}
    row["color_accuracy_assigned"] = assigned_accuracy(row)
    row.update(error_scores(pred, m, bound, dim=dim))
    # the same histogram of the matched emitters' true positions: the deviation that counting noise alone
    # gives with this many emitters (about 0.08 at 10,000), against which the network's reads
    px = config.px_size_xy_nm[0]
    row["gridding_truth_x"] = gridding_deviation(truth["x_nm"][m.tp_truth], px)
    row["gridding_truth_y"] = gridding_deviation(truth["y_nm"][m.tp_truth], px)
    lo, hi = config.emitters.z_range_nm
    if dim == 3:  # calibration per z slab (5 slabs over the emitter range)
        row["zscore_slabs"] = zscore_slabs(pred, m, truth, np.linspace(lo, hi, 6))
    # and by the distance to the nearest neighbour in the frame: < 250 nm, 250-500 nm, isolated
    row["zscore_neighbours"] = zscore_by_neighbour(pred, m, truth)
    vox = plane_voxels(config, size)
    if vox is not None:
        row["voxel_jaccard"] = voxel_jaccard(truth, pred, **vox).jaccard
    return row


def assigned_accuracy(row: dict, prefix: str = "") -> float | None:
    """Correct colours among the localizations given one (DECODE-Plex's reading of colour accuracy), from
    conventions.md's accuracy (correct / TP) and rejection (rejected / TP), both in percent."""
    acc, rej = row.get(prefix + "color_accuracy"), row.get(prefix + "color_rejection")
    if acc is None or rej is None or rej >= 100.0:
        return None
    return 100.0 * acc / (100.0 - rej)


def compare_naive(movie_paths, config: TrainConfig, truth, bound: dict, dim: int, size: int, device) -> dict:
    """The naive alternative: each channel fitted alone by the MLE fitter (its own coordinates, focal plane
    and photons), merged by the transforms (:mod:`plexloc.post.channels`), coloured by eq. 3 with
    shot-noise photon errors (EMCCD excess noise 2) for ratiometric data."""
    from plexloc.mle import fit_movie as fit_mle
    from plexloc.post.channels import channel_config, combine_channels

    t0 = time.perf_counter()
    tables = [fit_mle(p, channel_config(config, c), device=device) for c, p in enumerate(movie_paths)]
    pred = combine_channels(tables, config)
    if config.photon_model.kind == "ratiometric":
        from plexloc.post.color import assign_colors

        emccd = all(ch.camera.kind == "emccd" for ch in config.channels)
        pred, _ = assign_colors(pred, config.photon_model.ratios, excess_noise=2.0 if emccd else 1.0)
    row = score(truth, pred, bound, config, dim, size)
    out = {f"naive_{k}": v for k, v in row.items()}
    out["naive_seconds"] = time.perf_counter() - t0
    return out


def plane_voxels(config: TrainConfig, size: int) -> dict | None:
    """Seed 002's voxel grid for a multi-plane configuration (Sec. 2.1, Table 3): the camera pixels laterally
    and one plane spacing axially, voxel k centred on focal plane k; ``None`` where that does not apply."""
    z = sorted(ch.z_offset_nm for ch in config.channels)
    if config.photon_model.kind != "linked" or len(z) < 2 or z[0] != 0.0:
        return None
    steps = np.diff(z)
    if steps[0] <= 0 or not np.allclose(steps, steps[0]):
        return None
    s = float(steps[0])
    lo, hi = config.emitters.z_range_nm
    if lo < -s / 2 - 1e-6 or hi > z[-1] + s / 2 + 1e-6:
        return None
    px = config.px_size_xy_nm
    return {"voxel_nm": (px[0], px[1], s), "origin_nm": (0.0, 0.0, -s / 2), "shape": (size, size, len(z))}


def truth_crlb(truth, sim: Simulator, config: TrainConfig) -> dict:
    """CRLB of every truth emitter, jointly over the channels: each row's own photon split (its ``photons_chN``:
    throughputs for linked photons, its dye's ratios for ratiometric data) and each channel's own background
    (``bg_chN``), :func:`plexloc.evaluate.uncertainty.table_crlb`. Before 2026-12-04 the bound used the dyes' mean
    fractions and channel 0's background in every channel (20 photons where channel 1 of the dual-colour protocol
    has 135): too low a bound, so the dual-colour RMSE/CRLB ratios of earlier results read high."""
    chans = [(ch.psf, ch.camera) for ch in sim.channels]
    if len(chans) == 1:
        return table_crlb(truth, chans, z_offsets_nm=[sim.channels[0].z_offset_nm])
    if config.photon_model.kind == "ratiometric":
        frac = np.mean(np.asarray(config.photon_model.ratios, float), axis=0)
    else:
        frac = np.array([ch.throughput for ch in sim.channels], float)
    # a table's photons are the sum over the channels (flux x sum of throughputs for linked photons, e.g. 4x the
    # flux for four planes of throughput 1): channel c receives frac_c / sum(frac) of them
    return table_crlb(truth, chans, z_offsets_nm=[ch.z_offset_nm for ch in sim.channels],
                      photon_fractions=list(frac / frac.sum()))


def assign_colors_if_available(pred, config: TrainConfig):
    try:
        from plexloc.post.color import assign_colors
    except ImportError:  # colour assignment not built yet: colour metrics stay empty
        return pred
    return assign_colors(pred, config.photon_model.ratios)[0]  # the network predicts sigma_photons_chN


def compare_mle(movie_path, config: TrainConfig, truth, dim: int, device, roi_px: int | None = None) -> dict:
    """The project's MLE fitter on the same movie; ``roi_px``: its fitting window (default: the fitter's rule)."""
    try:
        from plexloc.mle import fit_movie as fit_mle
    except ImportError:
        return {"mle_eff_3d": None, "mle_note": "plexloc.mle.fit_movie not available"}
    t0 = time.perf_counter()
    pred = fit_mle(movie_path, config, device=device, **({} if roi_px is None else {"roi_px": roi_px}))
    if config.photon_model.kind == "ratiometric":  # the global fit's per-channel photons, coloured by eq. 3
        from plexloc.post.color import assign_colors

        emccd = all(ch.camera.kind == "emccd" for ch in config.channels)
        pred, _ = assign_colors(pred, config.photon_model.ratios, excess_noise=2.0 if emccd else 1.0)
    met = evaluate(truth, pred, dim=dim, px_size_nm=config.px_size_xy_nm[0]).to_dict()
    return {"mle_jaccard": met.get("jaccard"), "mle_recall": met.get("recall"), "mle_precision": met.get("precision"),
            "mle_rmse_lat": met.get("rmse_lat"), "mle_rmse_ax": met.get("rmse_ax"), "mle_eff_lat": met.get("eff_lat"),
            "mle_eff_ax": met.get("eff_ax"), "mle_eff_3d": met.get("eff_3d"), "mle_color_accuracy": met.get("color_accuracy"),
            "mle_color_rejection": met.get("color_rejection"), "mle_seconds": time.perf_counter() - t0}


PICASSO_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
PICASSO_STEP_NM, PICASSO_SPAN_NM = 10.0, 1200.0


def picasso_beads(config: TrainConfig, out: Path, device) -> tuple[Path, Path]:
    """A bead z-stack for Picasso's astigmatic calibration, rendered with the configuration's own PSF and camera
    (so Picasso is calibrated on the exact model the test movies use): 121 frames 10 nm apart from +600 to
    -600 nm (Picasso's order: the first frame is the top), 16 beads per frame on a 4x4 grid with random
    sub-pixel offsets, 20,000 photons each on a background of 20 photons/px."""
    from plexloc.simulation.emitters import Emitters

    sim_data = config.simulation().model_dump()
    sim_data["emitters"]["z_range_nm"] = [-PICASSO_SPAN_NM / 2, PICASSO_SPAN_NM / 2]
    sim = Simulator(type(config.simulation()).model_validate(sim_data)).to(device)
    n = int(round(PICASSO_SPAN_NM / PICASSO_STEP_NM)) + 1
    h, w = sim.frame_shape
    px = sim.px_size_nm
    g = torch.Generator(device="cpu").manual_seed(11)
    rows, cols = np.meshgrid(np.linspace(h / 8, h - h / 8, 4).round(), np.linspace(w / 8, w - w / 8, 4).round(), indexing="ij")
    rows, cols = np.tile(rows.ravel(), n), np.tile(cols.ravel(), n)
    frame = np.repeat(np.arange(n), 16)
    sub = torch.rand(len(frame), 2, generator=g).numpy() - 0.5
    x_nm, y_nm = (cols + 0.5 + sub[:, 0]) * px[0], (rows + 0.5 + sub[:, 1]) * px[1]
    z_nm = (n - 1) * PICASSO_STEP_NM / 2 - frame * PICASSO_STEP_NM
    em = Emitters(xyz_nm=torch.tensor(np.stack([x_nm, y_nm, z_nm], 1), dtype=torch.float32, device=device),
                  photons=torch.full((len(frame), 1), 20000.0, device=device),
                  frame_ix=torch.tensor(frame, device=device), id=torch.arange(len(frame), device=device),
                  color=torch.zeros(len(frame), dtype=torch.long, device=device))
    bg = torch.full((1, n, h, w), 20.0, device=device)
    with torch.no_grad():
        raw = sim.camera(sim.expected_photons(em, bg), generator=torch.Generator(device=device).manual_seed(12))
    tif, csv_path = out / "picasso_beads.tif", out / "picasso_beads.csv"
    write_movie(tif, raw[0].cpu().numpy().astype(np.uint16))
    with open(csv_path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["frame", "row", "col", "x_nm", "y_nm", "z_nm"])
        wr.writerows(zip(frame, rows.astype(int), cols.astype(int), x_nm, y_nm, z_nm))
    return tif, csv_path


def picasso_unavailable(config: TrainConfig, dim: int) -> str | None:
    """Why ``--compare-picasso`` cannot run for this configuration (None: it can)."""
    if not PICASSO_PYTHON.exists():
        return f"{PICASSO_PYTHON} not found (python3 -m venv .venv-bench && .venv-bench/bin/pip install picassosr)"
    if dim != 3 or config.n_channels != 1 or config.channels[0].psf.kind != "astigmatic":
        return "Picasso's 3D path needs one astigmatic channel"
    if config.channels[0].camera.kind != "emccd":
        return f"camera kind {config.channels[0].camera.kind!r}: this comparison passes Picasso EMCCD settings only"
    return None


def compare_picasso(movie_path: Path, config: TrainConfig, truth, dim: int, out: Path, beads: tuple[Path, Path],
                    density: float) -> dict:
    """Picasso's astigmatic 3D workflow (``bench/picasso_astig_worker.py``, in the bench-only venv) on the same
    movie: calibrated on the bead stack ``beads`` (:func:`picasso_beads`), then identification + ``gausslq`` +
    ``zfit`` for every box size and minimum net gradient of a grid; the row reports the best E_3D of the grid
    (chosen with the truth: the most favourable setting for Picasso) and keeps the whole grid."""
    beads, beads_csv = beads
    cam = config.channels[0].camera
    prefix = out / f"picasso_d{density:g}"
    boxes, ngs = "7,9", "500,1000,2000,3500,5000,8000"
    t0 = time.perf_counter()
    subprocess.run([str(PICASSO_PYTHON), str(ROOT / "bench" / "picasso_astig_worker.py"), str(beads), str(beads_csv),
                    str(movie_path), str(prefix), "--step-nm", str(PICASSO_STEP_NM), "--px", str(config.px_size_xy_nm[0]),
                    "--baseline", str(cam.baseline), "--sensitivity", str(cam.e_per_adu), "--gain", str(cam.em_gain),
                    "--qe", str(cam.qe), "--boxes", boxes, "--min-ng", ngs], check=True)
    from plexloc.io import read_table

    grid = []
    for box in boxes.split(","):
        for ng in ngs.split(","):
            path = Path(f"{prefix}_box{box}_ng{ng}.csv")
            pred = read_table(path)
            met = evaluate(truth, pred, dim=dim, px_size_nm=config.px_size_xy_nm[0]).to_dict()
            grid.append({"box": int(box), "min_ng": float(ng), "n_locs": len(pred),
                         **{k: met.get(k) for k in ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d")}})
            path.unlink()
    best = max(grid, key=lambda r: -1e9 if r["eff_3d"] is None else r["eff_3d"])
    cal = json.loads(Path(f"{prefix}_calibration.json").read_text())
    timing = json.loads(Path(f"{prefix}_timing.json").read_text())
    res = {f"picasso_{k}": v for k, v in best.items()}
    res.update({"picasso_grid": grid, "picasso_calibration": cal, "picasso_timing": timing,
                "picasso_seconds": time.perf_counter() - t0})
    return res


def fmt(v, spec=".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=Path, nargs="+",
                    default=[ROOT / "examples" / "2d_gaussian.yaml", ROOT / "examples" / "3d_astigmatic.yaml"])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time per configuration")
    ap.add_argument("--model", default=None, help="skip training and use this run folder (one config only)")
    ap.add_argument("--resume", default=None, help="train this run folder on from its checkpoint.pt for --minutes, then "
                    "score it (one config only; its configuration is the checkpoint's); the learning curve and the time "
                    "to plateau span all its calls")
    ap.add_argument("--init-from", default=None, help="a new run whose network starts from this model's weights (a run "
                    "folder or model file, e.g. bench/pack_weights.py's unpacked bfloat16 file of an earlier lease) with a "
                    "fresh optimizer; its clock and log rows go on from the model's record, so the learning curve spans "
                    "both (the seams are in the JSON's time_to_accuracy); one config only")
    ap.add_argument("--train-density", type=float, default=1.0, help="training density per um^2 (and the validation set's)")
    ap.add_argument("--train-density-range", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                    help="training.density_range_per_um2: each training sample's density log-uniform in [LO, HI] per "
                         "um^2 (the validation set stays at --train-density)")
    ap.add_argument("--features", type=int, default=48)
    ap.add_argument("--depth", type=int, default=None, help="down/up stages of both U-Nets (default: the config's)")
    ap.add_argument("--up-kernel", type=int, choices=(1, 3), default=None,
                    help="model.up_kernel of both U-Nets (default: the config's; DECODE: 1)")
    ap.add_argument("--out-kernel", type=int, choices=(1, 3), default=None,
                    help="model.out_kernel of both U-Nets (default: the config's; DECODE: 1)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--lr-schedule", choices=("plateau", "cosine"), default="plateau",
                    help="cosine: anneal to min_lr over --minutes (a run of known length; no plateau to measure)")
    ap.add_argument("--validate-every", type=int, default=500)
    ap.add_argument("--validate-every-s", type=float, default=None,
                    help="also validate after this many seconds of training (a learning curve on a short run)")
    ap.add_argument("--validation-samples", type=int, default=512)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--frames", type=int, default=1000, help="frames per test movie (at least)")
    ap.add_argument("--min-emitters", type=int, default=0, help="more frames where needed for this many emitters")
    ap.add_argument("--train-size", type=int, default=40, help="training ROI (px)")
    ap.add_argument("--train-margin-px", type=float, default=None,
                    help="training.margin_px: emitters simulated this far outside the training ROI (default: the "
                         "simulator's channel_margin_px)")
    ap.add_argument("--size", type=int, default=64, help="test frame size (px)")
    ap.add_argument("--compare-mle", action="store_true", help="also the project's MLE fitter (a global fit for several channels)")
    ap.add_argument("--refine-mle", action="store_true",
                    help="also the network's table refined by maximum likelihood with its neighbours modelled "
                         "(plexloc fit --refine-mle; keys refined_*)")
    ap.add_argument("--mle-roi-px", type=int, nargs="+", default=None,
                    help="with --compare-mle: also fit with each of these windows (odd px; default: only the fitter's own)")
    ap.add_argument("--compare-picasso", action="store_true",
                    help="3D astigmatic: also Picasso (calibrated on a bead stack of the same PSF; needs .venv-bench with picassosr)")
    ap.add_argument("--compare-naive", action="store_true",
                    help="multi-channel: also each channel fitted alone by the MLE fitter, merged by the transforms")
    ap.add_argument("--baselines-only", action="store_true",
                    help="no network: only the --compare-* fits of the same test movies (no training)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--keep-tables", action="store_true", help="write the network's table and the truth of every density as CSV")
    ap.add_argument("--roi-offset", type=int, nargs=2, default=None, metavar=("X", "Y"),
                    help="test movies cut at this chip pixel (x, y) of the reference channel, given to the network's "
                    "fit as --roi-offset (default: the configuration's, (0, 0)); the baselines do not take it")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "accuracy")
    args = ap.parse_args(argv)
    if args.roi_offset and (args.compare_mle or args.compare_naive or args.compare_picasso or args.baselines_only):
        ap.error("--roi-offset: the MLE, naive and Picasso baselines fit in the configuration's ROI; leave them out")
    if (args.model or args.resume or args.init_from) and len(args.configs) > 1:
        ap.error("--model / --resume / --init-from: one run folder, so one configuration")
    if sum(bool(a) for a in (args.model, args.resume, args.init_from)) > 1:
        ap.error("--model scores a run as it is, --resume trains it on, --init-from trains a new run from its weights: "
                 "give one of them")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "commit": commit(), "args": {k: str(v) for k, v in vars(args).items()}, "configs": []}
    json_path = args.out / "accuracy.json"

    def save() -> None:  # the results so far, rewritten atomically after training and after every density
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2, default=float) + "\n")
        tmp.replace(json_path)

    def keep(res: dict) -> None:
        results["configs"][-1] = res
        save()

    for path in args.configs:
        results["configs"].append({"config": str(path), "densities": {}})
        keep(run_config(path, args, device, args.out, save=keep))
    print("\n| config | density /um^2 | method | JI % | RMSE lat nm | RMSE ax nm | E_lat | E_ax | E_3D | RMSE/CRLB lat | RMSE/CRLB ax | z-score sd x / z | robust sd x / z | grid dev x (truth) | colour acc / rej % (of assigned) | voxel JI % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["configs"]:
        for d, row in r["densities"].items():
            rois = [(f"MLE global, {n}-px window", f"mle_roi{n}_") for n in sorted({int(k[7:].split("_")[0]) for k in row
                    if k.startswith("mle_roi") and k.endswith("_jaccard")})]
            for method, prefix in (("network", ""), ("network + MLE refinement", "refined_"), ("MLE global", "mle_"), *rois, ("each channel alone", "naive_"),
                                   ("Picasso (best box / min ng)", "picasso_")):
                g = lambda k: row.get(prefix + k)  # noqa: E731
                if g("jaccard") is None:
                    continue
                print(f"| {Path(r['config']).stem} | {d} | {method} | {fmt(g('jaccard'))} | {fmt(g('rmse_lat'))} | {fmt(g('rmse_ax'))} | "
                      f"{fmt(g('eff_lat'))} | {fmt(g('eff_ax'))} | {fmt(g('eff_3d'))} | {fmt(g('crlb_ratio_lat'), '.2f')} | "
                      f"{fmt(g('crlb_ratio_ax'), '.2f')} | {fmt(g('zscore_std_x'), '.2f')} / {fmt(g('zscore_std_z'), '.2f')} | "
                      f"{fmt(g('zscore_rsd_x'), '.2f')} / {fmt(g('zscore_rsd_z'), '.2f')} | "
                      f"{fmt(g('gridding_dev_x'), '.2f')} ({fmt(g('gridding_truth_x'), '.2f')}) | {fmt(g('color_accuracy'))} / {fmt(g('color_rejection'))} "
                      f"({fmt(assigned_accuracy(row, prefix), '.2f')}) | "
                      f"{fmt(g('voxel_jaccard'))} |")
        print(f"  {Path(r['config']).stem}: z-score sd x (robust) by nearest neighbour < 250 / 250-500 / > 500 nm, "
              "share of pairs in brackets")
        for d, row in r["densities"].items():
            groups = row.get("zscore_neighbours") or []
            print(f"    {d}/um^2: " + " | ".join(f"{fmt(g['zscore_std_x'], '.2f')} ({fmt(g['zscore_rsd_x'], '.2f')}) "
                                                 f"[{fmt(100 * g['share'], '.0f')} %]" for g in groups))
        tta = r.get("time_to_accuracy") or {}
        if tta.get("plateau") is not None:
            seams = "".join(f"; optimizer restarted at {sm['minutes']:.1f} min (step {sm['step']}: efficiency "
                            f"{fmt(sm['eff_before'])} -> {fmt(sm['eff_after'])})" for sm in tta.get("seams") or [])
            print(f"  {Path(r['config']).stem}: efficiency plateau {tta['plateau']:.1f}, within 2 points after "
                  f"{tta['minutes_to_plateau']:.1f} min{seams}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
