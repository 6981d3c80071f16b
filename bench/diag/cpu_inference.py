"""Fitting speed on the CPU: the network's arithmetic and memory layout, ELU in place, inference mode, torch.compile,
frames per batch and threads; frames/s of ``Predictor.localize_frames`` (frame U-Nets once per frame, union U-Net and
heads per window, extraction), the part of ``plexloc fit`` that the network's settings change.

Two networks: a trained model (``--model``, its own training configuration simulates the frames) and a fresh
DECODE-sized one (``--features`` 48, depth 2, built as ``bench/throughput.py`` builds it; fresh weights detect
nothing, so its extraction costs nothing). Frames: one simulated movie per frame size at ``--density`` emitters per
um^2, converted to photons by the model's camera. Every variant has its own copy of the network; within a repeat the
variants run one after the other on the same block of frames (interleaved, so a busy machine slows them alike), and
each variant's frames/s is the median over the repeats. ``rows`` compares every variant's localizations with the
first variant's (the code before 2026-12-06: float32, NCHW, ELUs out of place): ``same`` where both have a
localization at the same pixels of the same frames, with the largest position difference (nm).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/diag/cpu_inference.py --model /tmp/s35/2d_avg_run \\
        --out bench/cpu_inference.json [--compile] [--threads 2] [--model none --features 48 --sizes 256 --batch 4]

Prints a table per network and frame size and writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import plexloc.nets.unet as unet
from plexloc.camera import camera_from_config
from plexloc.config import TrainConfig, load_config
from plexloc.infer.predict import Predictor, cpu_bf16_supported, cpu_channels_last_supported
from plexloc.nets import Localizer
from plexloc.nets.io import load_model
from plexloc.simulation import Simulator
from plexloc.train import make_spec

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Variant:
    """One way of running the network: the Predictor's settings, ELUs in place or not, inference mode or no_grad."""

    name: str
    precision: str = "float32"
    channels_last: bool = False
    elu_in_place: bool = True
    inference_mode: bool = False
    compile: bool = False


VARIANTS = [
    Variant("float32 NCHW, ELU out of place (before)", elu_in_place=False),
    Variant("float32 NCHW"),
    Variant("float32 NHWC (default)", channels_last=True),
    Variant("float32 NHWC, inference_mode", channels_last=True, inference_mode=True),
    Variant("bfloat16 NCHW", precision="bfloat16"),
    Variant("bfloat16 NHWC (option)", precision="bfloat16", channels_last=True),
]


def photon_frames(config: TrainConfig, size: int, n: int, density: float) -> torch.Tensor:
    """``n`` simulated frames (n, C, size, size) in photons: the configuration's emitters, background and camera."""
    data = config.simulation().model_dump()
    data["frame_size"] = [size, size]
    sim = Simulator(type(config.simulation()).model_validate(data))
    adu = sim.simulate_movie(n, generator=torch.Generator().manual_seed(0), density_per_um2=density).frames  # (C, n, H, W)
    cams = [camera_from_config(ch.camera) for ch in config.channels]
    return torch.stack([cam.to_photons(adu[c].float()) for c, cam in enumerate(cams)], dim=1)


class Runner:
    """A variant's Predictor on its own copy of the network, and a call that runs a block through it."""

    def __init__(self, net: Localizer, v: Variant, threshold: float):
        self.v = v
        self.predictor = Predictor(copy.deepcopy(net), threshold=threshold, precision=v.precision,
                                   channels_last=v.channels_last, compile=v.compile)

    def __call__(self, block: torch.Tensor):
        unet.ELU_IN_PLACE_IN_INFERENCE = self.v.elu_in_place
        try:
            with torch.inference_mode() if self.v.inference_mode else nullcontext():
                return self.predictor.localize_frames(block)
        finally:
            unet.ELU_IN_PLACE_IN_INFERENCE = True


def timed(fn: Callable, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def compare(ref, ex) -> dict:
    """Rows of ``ex`` against ``ref``: the same (frame, pixel) keys, and the largest position difference there."""
    def keyed(e):
        key = ((e.sample.long() * 100_000 + e.pixel_row.long()) * 100_000 + e.pixel_col.long()).numpy()
        return key, np.stack([e.x_nm.numpy(), e.y_nm.numpy(), e.z_nm.numpy()], 1), e.photons[:, 0].numpy()
    k0, p0, f0 = keyed(ref)
    k1, p1, f1 = keyed(ex)
    common, i0, i1 = np.intersect1d(k0, k1, return_indices=True)
    d = np.abs(p0[i0] - p1[i1]).max() if len(common) else 0.0
    rel = (np.abs(f0[i0] - f1[i1]) / np.maximum(f0[i0], 1e-9)).max() if len(common) else 0.0
    return {"rows": len(k1), "rows_ref": len(k0), "rows_only_here": int(len(k1) - len(common)),
            "rows_only_ref": int(len(k0) - len(common)), "max_dpos_nm": float(d), "max_dphotons_rel": float(rel),
            "same": bool(len(common) == len(k0) == len(k1))}


def bench_variants(label: str, net: Localizer, frames: torch.Tensor, batch: int, repeats: int, threshold: float,
                   variants: list[Variant]) -> list[dict]:
    block = frames[: batch + net.spec.window - 1]
    runners = [Runner(net, v, threshold) for v in variants]
    first, outs, times = {}, {}, {r.v.name: [] for r in runners}
    for r in runners:  # warm-up (oneDNN's primitives; compilation): its time is the start-up cost
        first[r.v.name], outs[r.v.name] = timed(r, block)
    for _ in range(repeats):
        for r in runners:
            times[r.v.name].append(timed(r, block)[0])
    ref = outs[variants[0].name]
    rows = []
    for r in runners:
        t = statistics.median(times[r.v.name])
        rows.append({"network": label, "size": int(frames.shape[-1]), "batch_frames": batch,
                     "threads": torch.get_num_threads(), "variant": r.v.name, "precision": r.predictor.precision,
                     "channels_last": r.predictor.channels_last, "frames_per_s": batch / t,
                     "frames_per_s_each": [batch / x for x in times[r.v.name]],
                     "first_call_s": first[r.v.name], "startup_s": max(first[r.v.name] - t, 0.0),
                     **compare(ref, outs[r.v.name])})
    return rows


def bench_batches(label: str, net: Localizer, frames: torch.Tensor, batches: list[int], repeats: int,
                  threshold: float) -> list[dict]:
    """The default Predictor (float32, NHWC on a oneDNN CPU) at several frames per batch, interleaved."""
    pred = Predictor(copy.deepcopy(net), threshold=threshold)
    t_win = net.spec.window - 1
    blocks = {b: frames[: b + t_win] for b in batches}
    for b in batches:
        pred.localize_frames(blocks[b])
    times = {b: [] for b in batches}
    for _ in range(repeats):
        for b in batches:
            times[b].append(timed(pred.localize_frames, blocks[b])[0])
    return [{"network": label, "size": int(frames.shape[-1]), "batch_frames": b, "threads": torch.get_num_threads(),
             "variant": "default, batch sweep", "precision": pred.precision, "channels_last": pred.channels_last,
             "frames_per_s": b / statistics.median(times[b]), "frames_per_s_each": [b / x for x in times[b]]}
            for b in batches]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/s35/2d_avg_run", help="a trained run folder or model file ('none': skip)")
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "2d_gaussian.yaml",
                    help="the fresh network's configuration")
    ap.add_argument("--features", type=int, default=48, help="the fresh network's features (both U-Nets; 0: none)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 4],
                    help="frames per batch of the variants' comparison, one per size (frame U-Nets: 2 more)")
    ap.add_argument("--batch-sweep", type=int, nargs="*", default=[4, 16, 32],
                    help="frames per batch for the default's sweep (64-px frames only; none: skip)")
    ap.add_argument("--density", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (float32 NHWC): tens of s per shape")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "cpu_inference.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variants = list(VARIANTS) + ([Variant("float32 NHWC, torch.compile", channels_last=True, compile=True)]
                                 if args.compile else [])
    if not cpu_bf16_supported():
        variants = [v for v in variants if v.precision != "bfloat16"]
        print("no bfloat16 instructions on this CPU: the bfloat16 variants are left out", file=sys.stderr)

    nets, threshold = [], 0.5
    if args.model != "none":
        trained, cfg, _ = load_model(args.model)
        threshold = float((cfg.get("training") or {}).get("detection_threshold", 0.5))
        nets.append((f"trained {trained.spec.features} features ({Path(args.model).name})", trained,
                     TrainConfig.model_validate(cfg)))
    if args.features:
        data = load_config(args.config, TrainConfig).model_dump()
        data["model"].update(features=args.features, union_features=args.features, depth=2, union_depth=2)
        fresh_cfg = TrainConfig.model_validate(data)
        fresh = Localizer(make_spec(fresh_cfg, Simulator(fresh_cfg.simulation()))).eval()
        nets.append((f"fresh {args.features} features", fresh, fresh_cfg))

    rows: list[dict] = []
    for label, net, config in nets:
        for size, batch in zip(args.sizes, args.batch):
            n_frames = max([batch] + (args.batch_sweep if size <= 64 else [])) + net.spec.window - 1
            frames = photon_frames(config, size, n_frames, args.density)
            part = bench_variants(label, net, frames, batch, args.repeats, threshold, variants)
            if args.batch_sweep and size <= 64:
                part += bench_batches(label, net, frames, args.batch_sweep, args.repeats, threshold)
            rows += part
            print(f"\n{label}, {size}x{size} px, {torch.get_num_threads()} thread(s)")
            print("| variant | batch | frames/s (median) | each repeat | first call s | rows (same as before?) | max d pos nm |")
            print("|---|---|---|---|---|---|---|")
            for r in part:
                same = (f"{r['rows']} ({'same' if r['same'] else '+%d -%d' % (r['rows_only_here'], r['rows_only_ref'])})"
                        if "rows" in r else "")
                dpos = f"{r['max_dpos_nm']:.3g}" if "rows" in r else ""
                first = f"{r['first_call_s']:.1f}" if "first_call_s" in r else ""
                each = " ".join(f"{x:.2f}" for x in r["frames_per_s_each"])
                print(f"| {r['variant']} | {r['batch_frames']} | {r['frames_per_s']:.2f} | {each} | {first} | {same} | {dpos} |")
            sys.stdout.flush()
    result = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "bf16_supported": cpu_bf16_supported(),
              "channels_last_supported": cpu_channels_last_supported(), "model": str(args.model),
              "density_per_um2": args.density, "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
