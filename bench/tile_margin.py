"""Tiled against whole-frame prediction of a trained network: how much tile margin its outputs need.

``Predictor`` cuts frames larger than ``tile_px`` into cores with ``margin_px`` of context
(src/plexloc/infer/predict.py). :func:`~plexloc.infer.predict.tile_margin_px` is the exact margin for any weights
(the receptive radius plus the extraction's reach: 55 px at depths 2 / 2, 119 px at 3 / 3); a trained network
depends little on the outer part of its reach, and this measures how little. A movie of large frames is simulated
with the run's own configuration (its PSF, camera, channels), converted to photons, and predicted whole
(``tile_px`` above the frame) and in ``--tile-px`` tiles with each of ``--margins`` (``default``: the Predictor's
default for this network; ``exact``: ``tile_margin_px``). Each tiled table is matched to the whole frame's by
(frame, pixel): localizations only in one of the two ("pixels that differ"), and for those in both the largest,
the rms and the 99.9th percentile of the position difference (nm, 3D; z included), how many differ by more than
0.1 and 1 nm, the largest photon (relative) and probability difference; also the seconds of each prediction
(network and extraction; the movie is in memory). Prints a table and writes JSON (``--out``).

A few nm at single localizations can be float rounding, not the margin: a neighbour pixel whose predicted position
lies within ~1e-5 px of the extraction's merge radius (0.5 px) joins the maximum's weighted mean in one run and not
in another (tile shapes change the convolutions' rounding; the exact margin's row is the floor). ``--merge-radius-px
0`` takes each maximum pixel's own position (no threshold between the network's outputs and the positions). The
photon and probability columns have no such threshold and show how fast the outputs converge with the margin.

    python bench/tile_margin.py --model RUN --frames 10 --size 600 600 --density 1.0 \\
        --margins 24 32 40 48 56 80 exact default --threads 1 --out OUT.json
    python bench/tile_margin.py --model RUN --device cuda --fp32 --frames 50 --size 1024 1024 \\
        --margins 24 40 56 80 exact

The numbers of src/plexloc/infer/predict.py's docstring came from runs trained with ``plexloc train CONFIG --device
cpu --minutes 8 --threads 1``, CONFIG an example (3d_astigmatic.yaml; biplane_plex.yaml with ``chip_size_px: [640,
640]``) plus ``model: {features: 16, depth: 3, union_features: 16, union_depth: 3}`` and ``training: {batch_size: 8,
lr: 0.001, warmup_steps: 50, validation_samples: 128}``.

A multi-channel run's chip (``chip_size_px``) is widened to the frame where it is smaller (the channel
transforms are then used beyond the chip the network was trained on: its transformation indicator extrapolates).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from accuracy import commit  # bench/ is the script's folder, first on sys.path


def simulate_photons(cfg: dict, size: tuple[int, int], frames: int, density: float | None, seed: int,
                     device: torch.device) -> torch.Tensor:
    """(frames, C, H, W) float32 photons of a movie simulated with the run's configuration at ``size`` (H, W)."""
    from plexloc.config import SimulationConfig, TrainConfig, validate_config
    from plexloc.simulation import Simulator

    data = validate_config(cfg, TrainConfig, source="the run's configuration").simulation().model_dump()
    data["frame_size"] = list(size)
    data["roi_offset_px"] = [0, 0]
    if data.get("chip_size_px") is not None:
        data["chip_size_px"] = [max(int(a), int(b)) for a, b in zip(data["chip_size_px"], size)]
    data.pop("split_view", None)
    sim_cfg = validate_config(data, SimulationConfig, source="--size")
    sim = Simulator(sim_cfg).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    _, chunks = sim.iter_movie(frames, generator=gen, density_per_um2=density, chunk_frames=max(frames, 1))
    parts = []
    for _, raw, _ in chunks:  # raw (C, t, H, W) ADU: as written to a uint16 TIFF, then back to photons
        adu = raw.round().clamp_(0, 65535).to(torch.float32)
        parts.append(torch.stack([ch.camera.to_photons(adu[c]) for c, ch in enumerate(sim.channels)], dim=1))
    return torch.cat(parts).cpu()


def predict(net, movie: torch.Tensor, *, tile_px: int, margin_px: int | None, transforms, threshold: float,
            batch_frames: int, amp: bool = True) -> tuple[dict[str, np.ndarray], float, int]:
    """The localizations of the movie (t, C, H, W) as numpy columns, the seconds taken and the margin used."""
    from plexloc.infer.predict import Predictor, iter_frame_blocks

    pred = Predictor(net, threshold=threshold, tile_px=tile_px, margin_px=margin_px, transforms=transforms, amp=amp)
    spec = net.spec
    cols: dict[str, list[np.ndarray]] = {}
    dev = pred.device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for first, block in iter_frame_blocks([movie.to(dev)], window=spec.window, batch_frames=batch_frames):
        ex = pred.localize_frames(block)
        got = {
            "frame": ex.sample.cpu().numpy().astype(np.int64) + first,
            "row": ex.pixel_row.cpu().numpy().astype(np.int64),
            "col": ex.pixel_col.cpu().numpy().astype(np.int64),
            "x": ex.x_nm.double().cpu().numpy(), "y": ex.y_nm.double().cpu().numpy(),
            "z": ex.z_nm.double().cpu().numpy(),
            "photons": ex.photons.double().sum(dim=1).cpu().numpy(), "prob": ex.prob.double().cpu().numpy(),
        }
        for k, v in got.items():
            cols.setdefault(k, []).append(v)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    return out, seconds, pred.margin_px


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], shape: tuple[int, int]) -> dict:
    """Localizations of ``got`` against ``ref`` matched by (frame, pixel)."""
    h, w = shape
    key_r = (ref["frame"] * h + ref["row"]) * w + ref["col"]
    key_g = (got["frame"] * h + got["row"]) * w + got["col"]
    common, ir, ig = np.intersect1d(key_r, key_g, assume_unique=True, return_indices=True)
    out = {"locs": int(len(key_g)), "only_whole": int(len(key_r) - len(common)),
           "only_tiled": int(len(key_g) - len(common)), "matched": int(len(common))}
    if len(common):
        d = np.sqrt(sum((ref[c][ir] - got[c][ig]) ** 2 for c in ("x", "y", "z")))
        dxy = np.sqrt(sum((ref[c][ir] - got[c][ig]) ** 2 for c in ("x", "y")))
        rel = np.abs(ref["photons"][ir] - got["photons"][ig]) / np.maximum(np.abs(ref["photons"][ir]), 1e-9)
        out.update(max_nm=float(d.max()), rms_nm=float(np.sqrt(np.mean(d**2))), p999_nm=float(np.quantile(d, 0.999)),
                   over_0p1nm=int(np.count_nonzero(d > 0.1)), over_1nm=int(np.count_nonzero(d > 1.0)),
                   max_xy_nm=float(dxy.max()), max_photons_rel=float(rel.max()),
                   max_prob=float(np.abs(ref["prob"][ir] - got["prob"][ig]).max()))
        # where the largest difference sits: (frame, row, column)
        out["worst_pixel"] = [int(got["frame"][ig][d.argmax()]), int(got["row"][ig][d.argmax()]),
                              int(got["col"][ig][d.argmax()])]
    else:
        out.update(max_nm=None, rms_nm=None, p999_nm=None, over_0p1nm=0, over_1nm=0, max_xy_nm=None,
                   max_photons_rel=None, max_prob=None, worst_pixel=None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a trained run folder or model file")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, nargs=2, default=(600, 600), metavar=("H", "W"), help="frame size (px)")
    ap.add_argument("--density", type=float, default=1.0, help="active emitters per um^2 per frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile-px", type=int, default=256)
    ap.add_argument("--margins", nargs="+", default=["24", "40", "56", "80", "exact", "default"],
                    help="margins (px) to compare with the whole frame; 'exact': tile_margin_px, 'default': the "
                         "Predictor's default")
    ap.add_argument("--batch-frames", type=int, default=10, help="frames per prediction batch")
    ap.add_argument("--threshold", type=float, default=None, help="default: the run's detection_threshold")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=1, help="time each prediction this many times (the least)")
    ap.add_argument("--merge-radius-px", type=float, default=None,
                    help="the extraction's merge radius (default: the package's, 0.5 px); 0: every localization is its "
                         "maximum pixel's own position, no threshold between the network's outputs and the "
                         "positions")
    ap.add_argument("--fp32", action="store_true",
                    help="no bfloat16 autocast on CUDA or a bfloat16 CPU (the Predictor's and plexloc fit's default uses it; its "
                         "rounding then dominates the differences)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from plexloc.infer.predict import MAX_DEFAULT_MARGIN_PX, Predictor, receptive_radius, tile_margin_px
    from plexloc.nets.io import load_model

    if args.merge_radius_px is not None:  # the Predictor's extraction, with this merge radius
        import functools

        import plexloc.infer.predict as predict_module

        predict_module.extract = functools.partial(predict_module.extract, merge_radius_px=args.merge_radius_px)
    device = torch.device(args.device)
    net, cfg, _ = load_model(args.model, device=device)
    spec = net.spec
    transforms = ([torch.tensor(ch["transform"], dtype=torch.float64) for ch in cfg["channels"]]
                  if spec.n_aux else None)
    threshold = (args.threshold if args.threshold is not None
                 else float((cfg.get("training") or {}).get("detection_threshold", 0.5)))
    t0 = time.perf_counter()
    movie = simulate_photons(cfg, tuple(args.size), args.frames, args.density, args.seed, device)
    sim_s = time.perf_counter() - t0
    shape = tuple(movie.shape[-2:])
    whole_tile = max(shape) + 1
    kw = dict(transforms=transforms, threshold=threshold, batch_frames=args.batch_frames, amp=not args.fp32)
    # warm-up (allocator, kernels) on the first frames, whole and tiled: the first timed run is not penalised
    warm = movie[: min(args.frames, spec.window)]
    predict(net, warm, tile_px=whole_tile, margin_px=0, **kw)
    predict(net, warm, tile_px=args.tile_px, margin_px=None, **kw)

    def timed(tile_px: int, margin: int | None):
        best = None
        for _ in range(max(args.repeats, 1)):
            locs, s, used = predict(net, movie, tile_px=tile_px, margin_px=margin, **kw)
            best = s if best is None else min(best, s)
        return locs, best, used

    exact = tile_margin_px(spec)
    print(f"{args.model}: depths {spec.depth}/{spec.union_depth}, {spec.features}/{spec.union_features} features, "
          f"{spec.n_channels} channel(s); receptive radius {receptive_radius(spec)} px, exact margin {exact} px; "
          f"{args.frames} frames of {shape[0]}x{shape[1]}, tiles {args.tile_px} px, {device}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'margin':>8} {'px':>4} {'locs':>7} {'only whole':>10} {'only tiled':>10} {'max nm':>9} {'rms nm':>9} "
          f"{'p99.9 nm':>9} {'>0.1nm':>6} {'>1nm':>5} {'max phot':>8} {'max prob':>8} {'s':>7}", flush=True)
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731

    def show(r: dict) -> None:
        print(f"{r['margin']:>8} {fmt(r['margin_px'], 'd'):>4} {r['locs']:>7d} {r['only_whole']:>10d} "
              f"{r['only_tiled']:>10d} {fmt(r['max_nm'], '.4f'):>9} {fmt(r['rms_nm'], '.5f'):>9} "
              f"{fmt(r.get('p999_nm'), '.4f'):>9} {r.get('over_0p1nm', 0):>6d} {r.get('over_1nm', 0):>5d} "
              f"{fmt(r.get('max_photons_rel'), '.1e'):>8} {fmt(r.get('max_prob'), '.1e'):>8} {r['seconds']:>7.2f}",
              flush=True)

    ref, ref_s, _ = timed(whole_tile, 0)
    rows = [{"margin": "whole", "margin_px": None, "locs": int(len(ref["frame"])), "only_whole": 0, "only_tiled": 0,
             "matched": int(len(ref["frame"])), "max_nm": 0.0, "rms_nm": 0.0, "p999_nm": 0.0, "over_0p1nm": 0,
             "over_1nm": 0, "seconds": ref_s}]
    show(rows[0])
    for m in args.margins:
        margin = exact if m == "exact" else None if m == "default" else int(m)
        got, s, used = timed(args.tile_px, margin)
        rows.append({"margin": m, "margin_px": used, **compare(ref, got, shape), "seconds": s})
        show(rows[-1])

    chosen = Predictor(net, tile_px=args.tile_px, transforms=transforms, amp=not args.fp32)
    default = chosen.margin_px
    info = {
        "model": str(args.model), "depth": spec.depth, "union_depth": spec.union_depth, "features": spec.features,
        "union_features": spec.union_features, "channels": spec.n_channels, "window": spec.window,
        "receptive_radius_px": receptive_radius(spec), "tile_margin_px": exact, "default_margin_px": default,
        "max_default_margin_px": MAX_DEFAULT_MARGIN_PX, "frames": args.frames, "size": list(shape),
        "density_per_um2": args.density, "seed": args.seed, "merge_radius_px": args.merge_radius_px,
        "tile_px": args.tile_px, "threshold": threshold,
        # the arithmetic and layout the Predictor chose on this device (bfloat16 and NHWC on a bf16 oneDNN CPU too)
        "precision": chosen.precision, "channels_last": chosen.channels_last,
        "device": str(device), "threads": torch.get_num_threads(), "simulate_s": sim_s, "commit": commit(),
        "torch": torch.__version__, "machine": platform.node(),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
