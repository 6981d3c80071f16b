"""Diagnostic: the bright-spot check of ``plexloc fit`` (:func:`plexloc.infer.domain.bright_spot_checks`) for
multi-channel models, measured as the one-channel version was (bench/RESULTS.md, "σ from the neighbourhood's spread, a
check for emitters brighter than training"): movies with emitters in the training range and 3-6x above it, fitted with
a briefly trained small model; per channel the spots above 1.5x the channel's training maximum, the share of their
photons that the network's localizations give them, and whether the check warns.

Two models, trained on CPU (one thread) for ``--minutes`` each where their run folder does not exist yet:

- ``biplane``: ``linked`` photons, throughputs 0.4 / 0.6 (channel 1's training maximum 0.6 x 8,000 = 4,800), channel 1
  rotated by 0.3 degrees and shifted by (+40, -25) nm on a 128 x 128 px chip, movies at ROI offset (40, 30) px;
- ``dual``: ``independent`` photons, channel ranges 300-4,000 and 500-8,000, channel 1 shifted by (+40, +25) nm.

Movies: 96 x 96 px, 100 frames (the PSF-shape check looks at 100), Gaussian PSFs, density per um^2 as given. Cases:
in range, every channel "3x" and "6x" (emitters at 2.4-3x and 4.8-6x the channel's training maximum; linked: the
emitters' flux), and for ``dual`` channel 1 alone "4x" (3.2-4x; channel 0 in range). Emitters on for part of a frame
are dimmer, so not every spot of a bright movie is above 1.5x. Where a model finds the bright emitters, a second row ("lost", constructed) drops
the table's rows within 4 px of every true emitter brighter than 1.5x in a channel, to show the check on a network that
loses them.

    .venv/bin/python bench/diag/bright_spots_multichannel.py --out /tmp/bsmc [--minutes 6] [--densities 0.2,1,3]
    .venv/bin/python bench/diag/bright_spots_multichannel.py --print /tmp/bsmc/bright_spots_multichannel.json

Prints a table and writes ``OUT/bright_spots_multichannel.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

FRAME = 96
FRAMES = 100
CHIP = [192, 192]
ROI = (40, 30)


def _gauss(sigma: float) -> dict:
    return {"kind": "gaussian", "sigma_nm": sigma}


CAM = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
       "read_sigma": 74.4}
MODEL = {"features": 16, "depth": 2, "union_features": 16, "union_depth": 2}
TRAINING = {"batch_size": 8, "validate_every": 200, "validation_samples": 64, "warmup_steps": 50, "lr": 1e-3,
            "amp": False}


def _rot(deg: float, dx: float, dy: float) -> list[list[float]]:
    a = math.radians(deg)
    return [[math.cos(a), -math.sin(a), dx], [math.sin(a), math.cos(a), dy], [0.0, 0.0, 1.0]]


CONFIGS = {
    "biplane": {
        "px_size_nm": 100.0, "frame_size": [32, 32], "chip_size_px": CHIP,
        "photon_model": {"kind": "linked"},
        "channels": [
            {"psf": _gauss(130.0), "camera": CAM, "throughput": 0.4},
            {"psf": _gauss(130.0), "camera": CAM, "throughput": 0.6, "transform": _rot(0.3, 40.0, -25.0)},
        ],
        "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 8000.0], "on_time_frames": 2.0,
                     "z_range_nm": [0.0, 0.0]},
        "background": {"range": [20.0, 100.0]},
        "model": MODEL, "training": TRAINING,
    },
    "dual": {
        "px_size_nm": 100.0, "frame_size": [32, 32],
        "photon_model": {"kind": "independent", "channel_photons_range": [[300.0, 4000.0], [500.0, 8000.0]]},
        "channels": [
            {"psf": _gauss(130.0), "camera": CAM},
            {"psf": _gauss(140.0), "camera": CAM, "transform": _rot(0.0, 40.0, 25.0)},
        ],
        "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 8000.0], "on_time_frames": 2.0,
                     "z_range_nm": [0.0, 0.0]},
        "background": {"range": [20.0, 100.0]},
        "model": MODEL, "training": TRAINING,
    },
}

#: (name, per-channel multiple of the training range (None: in range), for the ``dual`` model only)
CASES = {
    "biplane": [("in range", None), ("3x", 3.0), ("6x", 6.0)],
    "dual": [("in range", None), ("3x", 3.0), ("6x", 6.0), ("ch1 only 4x", (1.0, 4.0))],
}


def train(name: str, run: Path, minutes: float) -> None:
    from plexloc.config import TrainConfig
    from plexloc.train import Trainer

    torch.manual_seed(0)
    cfg = TrainConfig.model_validate(CONFIGS[name])
    tr = Trainer(cfg, run)
    tr.run(minutes=minutes)


def movie_config(name: str, scale) -> dict:
    """The simulation configuration of a movie: the model's, 96 x 96 px at ROI ``ROI``, with every channel's photon range
    multiplied by ``scale`` (a number, or one per channel for ``independent``; None: the training range).
    ``scale`` k of a range [lo, hi] is [k hi / 1.25, k hi]: all of it well above 1.5x the maximum for k >= 3."""
    c = json.loads(json.dumps(CONFIGS[name]))
    c.pop("model"), c.pop("training")
    c["frame_size"] = [FRAME, FRAME]
    if name == "biplane":
        c["chip_size_px"], c["roi_offset_px"] = [160, 160], list(ROI)
    if scale is None:
        return c
    if c["photon_model"]["kind"] == "linked":
        hi = c["emitters"]["photons_range"][1]
        c["emitters"]["photons_range"] = [scale * hi / 1.25, scale * hi]
    else:
        ks = scale if isinstance(scale, tuple) else (scale,) * len(c["channels"])
        rng = c["photon_model"]["channel_photons_range"]
        c["photon_model"]["channel_photons_range"] = [r if k == 1.0 else [k * r[1] / 1.25, k * r[1]] for r, k in zip(rng, ks)]
    return c


def _lose(table, truth, bright_cols: list[str], radius_nm: float = 400.0):
    """The table without its rows within ``radius_nm`` of a true emitter (same frame) that is brighter than 1.5x its
    channel's maximum in any channel (``bright_cols``: boolean truth columns): a network that lost them."""
    keep = np.ones(len(table), bool)
    f, x, y = (np.asarray(table[k]) for k in ("frame", "x_nm", "y_nm"))
    bright = np.zeros(len(truth), bool)
    for b in bright_cols:
        bright |= b
    tf, tx, ty = (np.asarray(truth[k])[bright] for k in ("frame", "x_nm", "y_nm"))
    for a, b, cc in zip(tf, tx, ty):
        keep &= ~((f == a) & (np.hypot(x - b, y - cc) <= radius_nm))
    return table[keep]


def measure(name: str, run: Path, densities: list[float], out: Path) -> list[dict]:
    from plexloc.config import SimulationConfig, TrainConfig, load_config, validate_config
    from plexloc.infer import fit_movie
    from plexloc.infer.domain import bright_spot_checks, training_ranges
    from plexloc.io.tiff import write_movie
    from plexloc.simulation import Simulator

    model_cfg = load_config(run / "config.yaml", TrainConfig)
    ranges = training_ranges(model_cfg)
    rows = []
    for case, scale in CASES[name]:
        for dens in densities:
            cfg = validate_config(movie_config(name, scale), SimulationConfig)
            sim = Simulator(cfg)
            m = sim.simulate_movie(FRAMES, generator=torch.Generator().manual_seed(1), density_per_um2=dens)
            paths = []
            for c in range(m.frames.shape[0]):
                paths.append(out / f"{name}_{case.replace(' ', '_')}_{dens}_ch{c}.tif")
                write_movie(paths[-1], m.frames[c].numpy().astype(np.uint16))
            st: dict = {}
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = fit_movie([str(p) for p in paths], str(run), stats=st, device="cpu",
                                  roi_offset_px=tuple(cfg.roi_offset_px))
            seconds = time.perf_counter() - t0
            spots = [c for c in st["domain"].checks if c.kind == "spots"]
            row = {"model": name, "case": case, "density_per_um2": dens, "localizations": len(table),
                   "truth": len(m.truth), "fit_s": round(seconds, 1), "channels": []}
            for c, chk in enumerate(spots):
                row["channels"].append({"column": chk.column, "train_hi": chk.train_hi,
                                        "spots": int(st["psf_shape"][c].n_spots),
                                        "above": chk.fraction_above, "median": chk.median, "note": chk.note,
                                        "far_fraction": float(st["psf_shape"][c].far_fraction),
                                        "warns": chk.warning is not None, "warning": chk.warning})
            others = [c.column for c in st["domain"].checks if c.warning and c.kind == "photons"]
            row["table_photon_check_warns"] = others
            rows.append(row)
            # constructed: the same movie, the table without the rows of the emitters that are too bright
            his = [ranges.get(f"photons_ch{c}", (None, None, None))[2] for c in range(len(cfg.channels))]
            if "photons" in ranges:
                thr = np.array([ch.throughput for ch in model_cfg.channels])
                his = list(ranges["photons"][2] * thr / thr.sum())
            bright_cols = [np.asarray(m.truth[f"photons_ch{c}"]) > 1.5 * h for c, h in enumerate(his)]
            if scale is not None and any(b.any() for b in bright_cols):
                lost = _lose(table, m.truth, bright_cols)  # (the movie's 100 frames are the PSF check's)
                checks = bright_spot_checks(st["psf_shape"], lost, model_cfg, roi_offset_px=tuple(cfg.roi_offset_px))
                rows.append({"model": name, "case": case + " (rows of the bright emitters dropped)",
                             "density_per_um2": dens, "localizations": len(lost), "truth": len(m.truth),
                             "channels": [{"column": k.column, "train_hi": k.train_hi, "above": k.fraction_above,
                                           "median": k.median, "note": k.note, "warns": k.warning is not None,
                                           "warning": k.warning} for k in checks]})
            print(_line(rows[-2] if rows[-1]["case"] != case else rows[-1]), flush=True)
            if rows[-1]["case"] != case:
                print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    cells = []
    for ch in r["channels"]:
        share = ch["note"] if ch["note"] else "-"
        cells.append(f"{ch['column']}: above {100 * ch['above']:.0f} % | {share} | {'WARNS' if ch['warns'] else 'silent'}")
    table = r.get("table_photon_check_warns")
    tail = "" if table is None else f" || table's photon check: {', '.join(table) if table else 'silent'}"
    return f"| {r['model']} | {r['case']} | {r['density_per_um2']:g} | " + " || ".join(cells) + tail + " |"


def summary(rows: list[dict]) -> str:
    """One line per model, case, density and channel (the table of bench/RESULTS.md's one-channel measurement)."""
    out = ["| model | emitters | density /um^2 | channel (training max) | spots above 1.5x | network's share of their "
           "photons | bright-spot check | the table's photon check |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table = r.get("table_photon_check_warns")
        table = "-" if table is None else ("warns (" + ", ".join(table) + ")" if table else "silent")
        for ch in r["channels"]:
            judged = not ch["note"].startswith("not judged")
            share = ch["note"].split("gives them ")[1].split(" of")[0] if "gives them" in ch["note"] else "-"
            above = f"{100 * ch['above']:.1f} %" if judged else "not judged (" + ch["note"].split(": ")[1].split(" are")[0] + " wide)"
            verdict = "**warns**" if ch["warns"] else "silent"
            out.append(f"| {r['model']} | {r['case']} | {r['density_per_um2']:g} | {ch['column'].split()[0]} "
                       f"({ch['train_hi']:.4g}) | {above} | {share} | {verdict} | {table} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/bsmc")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--densities", default="0.2,1")
    ap.add_argument("--models", default="biplane,dual")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--print", metavar="JSON", help="only print the table of a JSON this script wrote")
    a = ap.parse_args()
    if a.print:
        print(summary(json.loads(Path(a.print).read_text())))
        return
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in a.models.split(","):
        run = out / f"{name}_run"
        if not (run / "model.pt").exists():
            train(name, run, a.minutes)
        if a.train_only:
            continue
        rows += measure(name, run, [float(d) for d in a.densities.split(",")], out)
    if not a.train_only:
        (out / "bright_spots_multichannel.json").write_text(json.dumps(rows, indent=1, default=float))
        print(summary(rows))
        print(f"wrote {out / 'bright_spots_multichannel.json'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
