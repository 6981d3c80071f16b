"""Where the training simulation's time goes: samples/s of ``Trainer``'s batch generation (simulate + camera +
ADU -> photons, as ``bench/throughput.py``'s "simulation only"), the torch ops dispatched per batch (each one a
kernel launch on a GPU) and the host-device sync points per batch, for a configuration at the Plex training sizes.

Ops are counted below autograd with a ``TorchDispatchMode`` (what would launch kernels). Sync points: on CUDA,
``torch.cuda.set_sync_debug_mode("warn")``'s warnings (exact); on any device also the dispatched ops that must
wait for the device's data (``item``/``_local_scalar_dense``, ``nonzero``, ``unique``, boolean-mask indexing,
``repeat_interleave`` without ``output_size``, copies to the host, ``bincount``, ``masked_select``) counted by name,
which is how a CPU run estimates what a GPU run would wait for.

    PYTHONPATH=src python bench/diag/sim_profile.py --device cpu --threads 1 --render patch default --out bench/out/sim_profile.json
    PYTHONPATH=src python bench/diag/sim_profile.py --device cuda --out bench/out/sim_profile_gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from plexloc.config import TrainConfig, load_config
from plexloc.train import Trainer
from plexloc.train.validation import batch_photons

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["examples/quad_plane.yaml", "examples/dual_color_plex.yaml", "examples/2d_gaussian.yaml"]
#: dispatched ops that wait for the device's data before they return (or before the host can go on)
SYNC_OPS = ("_local_scalar_dense", "nonzero", "_unique", "unique_dim", "unique_consecutive", "masked_select",
            "bincount", "repeat_interleave.Tensor", "item")


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched (below autograd), and those of them that synchronise."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket.__name__) + ("." + func._overloadname if func._overloadname != "default" else "")
        self.ops[name] += 1
        kwargs = kwargs or {}
        sync = any(s in name for s in SYNC_OPS) and not (name.startswith("repeat_interleave") and kwargs.get("output_size"))
        if name.startswith("index.") or name.startswith("index_put"):  # a boolean mask index has a data-dependent size
            idx = args[1] if len(args) > 1 else []
            sync = sync or any(t is not None and t.dtype == torch.bool for t in idx)
        if name.startswith("_to_copy") or name.startswith("copy_"):
            dev = kwargs.get("device")
            src = args[0] if name.startswith("_to_copy") else args[1]
            dst_dev = dev if dev is not None else (args[0].device if name.startswith("copy_") else None)
            sync = sync or (dst_dev is not None and torch.device(dst_dev).type == "cpu" and src.device.type != "cpu")
        if sync:
            self.syncs[name] += 1
        return func(*args, **(kwargs or {}))


def make_trainer(config: Path, *, size: int, batch: int, window: int | None, device: str) -> Trainer:
    cfg = load_config(config, TrainConfig).model_dump()
    cfg["frame_size"] = [size, size]
    cfg["training"].update(batch_size=batch, validation_samples=2)
    cfg["model"].update(features=4, union_features=4, depth=1, union_depth=1)  # the network is not measured
    if window is not None:
        cfg["model"]["window"] = window
    return Trainer(TrainConfig.model_validate(cfg), tempfile.mkdtemp() + "/run", device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_render(tr: Trainer, variant: str) -> None:
    """``patch``: every PSF renders patch by patch (the renderer before 2026-12-04's separable one); ``default``."""
    for m in tr.sim.modules():
        if hasattr(m, "separable_max_pixels"):
            if variant == "patch":
                m.separable_max_pixels = 0
            else:
                m.__dict__.pop("separable_max_pixels", None)  # the class default


def count(step, device: torch.device) -> tuple[OpCounter, int | None]:
    counter = OpCounter()
    cuda_syncs = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with counter:
                step()
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
        if device.type == "cuda":
            cuda_syncs = sum("synchroniz" in str(w.message) for w in caught)
    return counter, cuda_syncs


def measure(config: Path, args) -> list[dict]:
    """One row per render variant, their repeats interleaved (a busy machine slows all alike)."""
    device = torch.device(args.device)
    tr = make_trainer(config, size=args.size, batch=args.batch, window=args.window, device=args.device)

    def step():
        return batch_photons(tr.sim, tr.generator().frames)

    times: dict[str, list[float]] = {v: [] for v in args.render}
    for v in args.render:
        set_render(tr, v)
        for _ in range(args.warmup):
            step()
    sync(device)
    for _ in range(args.repeats):
        for v in args.render:
            set_render(tr, v)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[v].append(time.perf_counter() - t0)
    rows = []
    for v in args.render:
        set_render(tr, v)
        ts = sorted(times[v])
        med = ts[len(ts) // 2]
        counter, cuda_syncs = count(step, device)
        row = {
            "config": str(config), "render": v, "channels": tr.sim.n_channels, "batch": args.batch,
            "window": tr.generator.window, "size": args.size, "margin_px": tr.generator.margin_px,
            "ms_per_batch_median": 1e3 * med, "ms_per_batch_min": 1e3 * ts[0],
            "us_per_sample": 1e6 * med / args.batch, "samples_per_s": args.batch / med,
            "ops_per_batch": sum(counter.ops.values()), "sync_ops_per_batch": sum(counter.syncs.values()),
            "cuda_syncs_per_batch": cuda_syncs, "sync_ops": dict(counter.syncs.most_common()),
            "top_ops": dict(counter.ops.most_common(15)),
        }
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            with profile(activities=acts) as prof:
                step()
                sync(device)
            key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
            row["profile"] = prof.key_averages().table(sort_by=key, row_limit=args.profile)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=CONFIGS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=80, help="training ROI (px)")
    ap.add_argument("--window", type=int, default=3, help="frames per sample (0: the configuration's model.window)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--render", nargs="+", default=["default"], choices=["default", "patch"],
                    help="render variants, measured interleaved: default, patch (every PSF patch by patch, as before "
                         "the separable render)")
    ap.add_argument("--profile", type=int, default=0, help="also print the profiler's top N operators")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "sim_profile.json")
    args = ap.parse_args(argv)
    args.window = args.window or None
    torch.set_num_threads(args.threads)
    rows = []
    for c in args.configs:
        path = Path(c) if Path(c).exists() else ROOT / c
        rows += measure(path, args)
    print(f"device {args.device}, {args.threads} thread(s), torch {torch.__version__}")
    print("| config | render | C | batch x window x size | margin px | ms/batch (median) | us/sample | samples/s | ops/batch "
          "| sync ops/batch | CUDA syncs/batch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['config']).name} | {r['render']} | {r['channels']} | {r['batch']} x {r['window']} x {r['size']} "
              f"| {r['margin_px']:.0f} | {r['ms_per_batch_median']:.1f} | {r['us_per_sample']:.0f} "
              f"| {r['samples_per_s']:,.0f} | {r['ops_per_batch']} | {r['sync_ops_per_batch']} "
              f"| {'-' if r['cuda_syncs_per_batch'] is None else r['cuda_syncs_per_batch']} |")
    for r in rows:
        print(f"\n{Path(r['config']).name} ({r['render']}): sync ops {r['sync_ops']}\n  top ops {r['top_ops']}")
        if "profile" in r:
            print(r["profile"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "threads": args.threads, "torch": torch.__version__,
                                    "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
