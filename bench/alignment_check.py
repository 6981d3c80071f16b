"""The model-free channel-alignment check (plexloc.calibrate.alignment) on simulated multi-channel movies.

For each example configuration, density and frame size a movie is simulated (plexloc.simulation) and checked as
configured and as a user gets it wrong: a split-view flip forgotten (channel 1 mirrored left-right), the split-view
boxes swapped, the channel movies given in the wrong order, channel 1's transform off by 1, 2, 3 px in x. The table
gives the normalised correlation at zero shift of the configured geometry and the best alternative, the peak's
position, the status and whether a ChannelAlignmentWarning was emitted; the JSON holds every geometry's numbers.
The timing row runs the check on 200 frames of 2 x 256 x 256 (this machine's CPU, torch threads as given).

    PYTHONPATH=src .venv/bin/python bench/alignment_check.py --json bench/out/alignment_check.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
from plexloc.config import load_config
from plexloc.config.models import SplitViewConfig
from plexloc.io.splitview import join_frames, split_frames
from plexloc.simulation import Simulator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "biplane": "biplane.yaml",
    "dual_plex": "dual_color_plex.yaml",
    "dual": "dual_color.yaml",
    "quad": "quad_plane.yaml",
}


def simulate(name: str, density: float, size: int, n_frames: int, seed: int):
    """Photon frames (C, T, H, W) numpy, the configuration and the ROI offset the movie sits at."""
    cfg = load_config(ROOT / "examples" / EXAMPLES[name])
    upd: dict = {"frame_size": (size, size)}
    roi = (0, 0)
    if cfg.chip_size_px is not None:  # dual_color_plex: a 256 x 256 chip, its transform rotates about the chip origin
        roi = (96, 96) if size <= 160 else (0, 0)
        upd.update(chip_size_px=(max(256, size), max(256, size)), roi_offset_px=roi)
    cfg = cfg.model_copy(update=upd)
    sim = Simulator(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        movie = sim.simulate_movie(n_frames, generator=torch.Generator().manual_seed(seed), density_per_um2=density)
        photons = torch.stack([ch.camera.to_photons(movie.frames[c]) for c, ch in enumerate(sim.channels)])
    return photons.numpy().astype(np.float32), cfg, roi


def scenarios(photons: np.ndarray, cfg, roi) -> list[dict]:
    """(name, frames per channel, transforms, split, sources) of the configured and the wrong geometries."""
    C, T, H, W = photons.shape
    px = cfg.px_size_xy_nm
    transforms = [np.asarray(ch.transform, dtype=np.float64) for ch in cfg.channels]
    sources = [f"movie_ch{c}.tif" for c in range(C)]
    out = [dict(name="correct", frames=list(photons), transforms=transforms, split=None, sources=sources)]
    if C == 2:  # a dual-view camera: channel 1's box mirrored left-right on the chip
        true_split = SplitViewConfig(boxes=[(0, 0, W, H), (W, 0, W, H)], flip=["none", "x"])
        raw = join_frames(np.moveaxis(photons, 0, 1), true_split, (H, 2 * W))
        for label, split in (
            ("split correct", true_split),
            ("split flip forgotten", SplitViewConfig(boxes=true_split.boxes, flip=["none", "none"])),
            ("split boxes swapped", SplitViewConfig(boxes=true_split.boxes[::-1], flip=["none", "x"])),
        ):
            cut = split_frames(raw, split)
            out.append(dict(name=label, frames=[cut[:, c] for c in range(C)], transforms=transforms, split=split,
                            sources="movie_splitview.tif"))
    else:  # one camera per plane: channel 1's movie mirrored (a camera read out the other way)
        mirrored = list(photons)
        mirrored[1] = photons[1][:, :, ::-1]
        out.append(dict(name="ch1 mirrored", frames=mirrored, transforms=transforms, split=None, sources=sources))
    order = list(photons)
    order[0], order[1] = order[1], order[0]
    out.append(dict(name="tiffs swapped 0-1", frames=order, transforms=transforms, split=None, sources=sources))
    for k in (1, 2, 3):
        wrong = [t.copy() for t in transforms]
        wrong[1][0, 2] += k * px[0]  # the configured transform k px off in x
        out.append(dict(name=f"transform +{k} px x", frames=list(photons), transforms=wrong, split=None,
                        sources=sources))
    for o in out:
        o["roi"] = roi
    return out


def run_case(s: dict, px) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = check_channel_alignment(s["frames"], s["transforms"], px, roi_offset_px=s["roi"], split=s["split"],
                                      sources=s["sources"])
    warned = [str(w.message) for w in caught if issubclass(w.category, ChannelAlignmentWarning)]
    cfg = rep.configured
    best = None
    if rep.alternatives:
        best = max(rep.alternatives, key=lambda g: np.mean([p.at_zero for p in g.pairs]))
    return {
        "scenario": s["name"], "status": rep.status, "warned": len(warned), "warnings": warned,
        "cfg_zero": None if cfg is None else float(np.mean([p.at_zero for p in cfg.pairs])),
        "cfg_snr": None if cfg is None else float(min(p.snr for p in cfg.pairs)),
        "cfg_shift": None if cfg is None else [list(p.shift_px) for p in cfg.pairs],
        "best_alt": None if best is None else best.name,
        "best_alt_zero": None if best is None else float(np.mean([p.at_zero for p in best.pairs])),
        "notes": list(rep.notes), "seconds": rep.seconds, "report": rep.as_dict(),
    }


def expected_warning(scenario: str) -> bool | None:
    """Should the check warn? None: not decidable by geometry for every configuration (reported, not scored)."""
    if scenario in ("correct", "split correct", "transform +1 px x"):
        return False
    if scenario in ("tiffs swapped 0-1", "split boxes swapped"):
        return None
    return True


def timing(threads: int, repeats: int = 3) -> dict:
    """Wall and CPU seconds of the check on 200 frames of 2 x 256 x 256 (Poisson noise: the cost does not depend on
    the content): with biplane.yaml's transform (a translation to 0.35 px over the frame: the spectra are shifted)
    and with dual_color_plex.yaml's (a 1 degree rotation: channel 1 is warped bilinearly, once per geometry)."""
    rng = np.random.default_rng(0)
    T, H, W = 200, 256, 256
    frames = [rng.poisson(20.0, size=(T, H, W)).astype(np.float32) for _ in range(2)]
    out = {"frames": T, "shape": [2, H, W], "threads": threads}
    for label, tr in (("biplane", [[1.002, 0.001, 35.0], [-0.001, 0.998, -20.0], [0.0, 0.0, 1.0]]),
                      ("dual_color_plex", [[0.9998, -0.0175, 60.0], [0.0175, 0.9998, -35.0], [0.0, 0.0, 1.0]])):
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            check_channel_alignment(frames, [np.eye(3), np.array(tr)], 100.0, warn=False)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[label] = {"wall_s": wall, "cpu_s": cpu, "best_wall_s": min(wall), "best_cpu_s": min(cpu)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=list(EXAMPLES))
    ap.add_argument("--densities", type=float, nargs="+", default=[0.03, 0.65, 3.0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 160])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-only", action="store_true", help="only the run-time rows")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "alignment_check.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing_only:
        tm = timing(args.threads)
        for label in ("biplane", "dual_color_plex"):
            t = tm[label]
            print(f"{label}: best wall {t['best_wall_s']:.2f} s, CPU {t['best_cpu_s']:.2f} s ({args.threads} threads)")
        return
    rows = []
    print(f"{'config':10s} {'dens':>5s} {'size':>4s} {'scenario':22s} {'status':15s} {'warn':>4s} {'ok':>3s} "
          f"{'cfg@0':>7s} {'snr':>6s} {'best alt':>10s} {'alt@0':>7s}  shift ch1 (px)")
    for name in args.configs:
        for size in args.sizes:
            for dens in args.densities:
                photons, cfg, roi = simulate(name, dens, size, args.frames, args.seed)
                for s in scenarios(photons, cfg, roi):
                    r = run_case(s, cfg.px_size_xy_nm)
                    exp = expected_warning(s["name"])
                    r.update(config=name, density=dens, size=size, expected_warning=exp,
                             correct_call=None if exp is None else (r["warned"] > 0) == exp)
                    rows.append(r)
                    sh = r["cfg_shift"][0] if r["cfg_shift"] else [float("nan")] * 2
                    ok = "-" if exp is None else ("yes" if r["correct_call"] else "NO")
                    f = lambda v: "   -   " if v is None else f"{v:7.3f}"  # noqa: E731
                    snr = r["cfg_snr"] if r["cfg_snr"] is not None else float("nan")
                    print(f"{name:10s} {dens:5.2f} {size:4d} {s['name']:22s} {r['status']:15s} {r['warned']:4d} "
                          f"{ok:>3s} {f(r['cfg_zero'])} {snr:6.1f} "
                          f"{str(r['best_alt']):>10s} {f(r['best_alt_zero'])}  ({sh[0]:+.2f}, {sh[1]:+.2f})", flush=True)
    scored = [r for r in rows if r["expected_warning"] is not None]
    false_alarms = sum(1 for r in scored if not r["expected_warning"] and r["warned"])
    silent = sum(1 for r in scored if not r["expected_warning"])
    missed = sum(1 for r in scored if r["expected_warning"] and not r["warned"])
    should = sum(1 for r in scored if r["expected_warning"])
    swaps = [r for r in rows if r["expected_warning"] is None]
    tm = timing(args.threads)
    summary = {"false_alarms": false_alarms, "silent_cases": silent, "missed": missed, "should_warn": should,
               "swaps_warned": sum(1 for r in swaps if r["warned"]), "swaps": len(swaps), "timing": tm}
    print(f"false alarms {false_alarms}/{silent} (correct geometry and 1 px errors); missed {missed}/{should} "
          f"(flip forgotten / mirrored, 2 and 3 px transform errors); swaps warned "
          f"{summary['swaps_warned']}/{len(swaps)}")
    for label in ("biplane", "dual_color_plex"):
        t = tm[label]
        print(f"check run time, 200 frames of 2x256x256, {label} transform, {args.threads} thread(s): best wall "
              f"{t['best_wall_s']:.2f} s, CPU {t['best_cpu_s']:.2f} s (wall {', '.join(f'{v:.2f}' for v in t['wall_s'])})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                     "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
