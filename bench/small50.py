"""Session 50 (helper "small"): how many pixels and frames the camera check needs to judge a camera.

Right cameras (false accusations) and wrong ones (e_per_adu 2x, baseline 100 ADU off, em_gain and e_per_adu swapped)
on movies of S x S pixels and T frames (spotted_light: 20 photons/px, 2 emitters/um^2, 100 nm pixels), an EMCCD and an
sCMOS, a few seeds per cell. Writes bench/small50.json and prints a table.

    OMP_NUM_THREADS=1 .venv/bin/python bench/small50.py [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import numpy as np
import torch

from plexloc.camera import camera_from_config
from plexloc.camera.check import check_camera
from plexloc.camera.synthetic import spotted_light

EMCCD = {"kind": "emccd", "qe": 0.9, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 60.0,
         "spurious_charge": 0.002}
SCMOS = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}
WRONG = {"right": lambda c: c, "e_per_adu_2x": lambda c: {**c, "e_per_adu": 2 * c["e_per_adu"]},
         "baseline_+100": lambda c: {**c, "baseline": c["baseline"] + 100.0},
         "baseline_-100": lambda c: {**c, "baseline": c["baseline"] - 100.0},
         "swapped": lambda c: {**c, "em_gain": c["e_per_adu"], "e_per_adu": c["em_gain"]}}


def run(sizes, frames, seeds, *, bg=20.0, density=2.0):
    rows = []
    for cam_name, cfg in (("emccd", EMCCD), ("scmos", SCMOS)):
        true = camera_from_config(cfg)
        for s in sizes:
            for t in frames:
                for seed in range(seeds):
                    light = spotted_light(np.random.default_rng(seed), t, (s, s), bg=bg, density=density)
                    raw = true(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(seed + 1))
                    for wname, f in WRONG.items():
                        if wname == "swapped" and cam_name != "emccd":
                            continue
                        cam = camera_from_config(f(cfg))
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            out = check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, warn=False)
                        ch = out.channels[0]
                        rows.append({"camera": cam_name, "setting": wname, "size": s, "frames": t, "seed": seed,
                                     "told": bool(out.warnings), "ratio": float(ch.noise_ratio),
                                     "note": ch.noise_note, "dim_adu": float(ch.dim_adu)})
    return rows


def table(rows, sizes, frames):
    lines = []
    for cam in ("emccd", "scmos"):
        for wname in WRONG:
            sel = [r for r in rows if r["camera"] == cam and r["setting"] == wname]
            if not sel:
                continue
            lines.append(f"\n{cam} {wname}: share of seeds told (rows: size px; columns: frames)")
            lines.append("size " + " ".join(f"{t:>5d}" for t in frames))
            for s in sizes:
                cells = []
                for t in frames:
                    c = [r["told"] for r in sel if r["size"] == s and r["frames"] == t]
                    cells.append(f"{np.mean(c):5.2f}" if c else "    -")
                lines.append(f"{s:4d} " + " ".join(cells))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--sizes", default="3,4,6,8,12,16,20,24,32,64")
    ap.add_argument("--frames", default="2,4,6,16,64")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_suffix(".json")))
    ap.add_argument("--model", default=None, help="a trained run folder: also time --tile sizes (bench 'tiles')")
    a = ap.parse_args()
    if a.model:
        tile_rows = tiles(a.model)
    sizes = [int(v) for v in a.sizes.split(",")]
    frames = [int(v) for v in a.frames.split(",")]
    t0 = time.time()
    rows = run(sizes, frames, a.seeds)
    text = table(rows, sizes, frames)
    print(text)
    print(f"\n{len(rows)} checks in {time.time() - t0:.0f} s")
    pathlib.Path(a.out).write_text(json.dumps({"conditions": {"bg_photons_px": 20.0, "density_um2": 2.0,
                                                              "px_nm": 100.0, "seeds": a.seeds, "emccd": EMCCD,
                                                              "scmos": SCMOS}, "rows": rows,
                                               "tiles": tile_rows if a.model else None}, indent=1))


def tiles(model: str, *, size: int = 128, frames: int = 4, tile_sizes=(8, 16, 32, 64, 256)) -> list[dict]:
    """Seconds of the network's prediction of ``frames`` frames of ``size`` x ``size`` px by tile size (float32, one
    CPU thread; a simulation with the model's own configuration at 1 emitter/um^2), its localizations (the same at
    every tile size) and whether :func:`plexloc.infer.fit.frame_size_warnings` warns."""
    from plexloc.config import SimulationConfig, TrainConfig, validate_config
    from plexloc.infer.fit import frame_size_warnings
    from plexloc.infer.predict import Predictor
    from plexloc.nets.io import load_model
    from plexloc.simulation import Simulator

    net, cfg, _ = load_model(model)
    data = validate_config(cfg, TrainConfig, source="run").simulation().model_dump()
    data["frame_size"] = [size, size]
    sim = Simulator(validate_config(data, SimulationConfig, source="--size"))
    _, chunks = sim.iter_movie(frames + 2, generator=torch.Generator().manual_seed(0), density_per_um2=1.0,
                               chunk_frames=frames + 2)
    raw = torch.cat([r for _, r, _ in chunks], dim=1)
    block = sim.to_photons(raw.round().clamp(0, 65535)).permute(1, 0, 2, 3).contiguous()  # (T, C, H, W)
    out, ref = [], None
    for t in sorted(tile_sizes, reverse=True):
        p = Predictor(net, tile_px=t, precision="float32")
        t0 = time.time()
        with torch.no_grad():
            ex = p.localize_frames(block)
        dt = time.time() - t0
        ref = dt if ref is None else ref
        out.append({"tile_px": t, "seconds": round(dt, 3), "x_of_256": round(dt / ref, 1),
                    "locs": int(ex.x_nm.numel()), "margin_px": p.margin_px,
                    "warned": bool(frame_size_warnings((size, size), t, p.margin_px))})
        print(out[-1], flush=True)
    return out


if __name__ == "__main__":
    main()
