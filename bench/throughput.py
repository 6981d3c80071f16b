"""Network throughput: training samples/s (simulation included) and fitting frames/s end to end.

- ``train``: the whole training step of :class:`plexloc.train.Trainer` (simulate a batch on the device,
  camera normalisation, forward, loss, backward, AdamW step) on 40x40 samples with a temporal window
  of 3, a DECODE-sized network (frame U-Net 48 features, depth 2); also simulation alone and network
  alone, so one sees which one limits.
- ``fit``: ``plexloc.infer.fit_movie_to_file`` (what ``plexloc fit`` runs) on a TIFF of 256x256 frames written
  to disk first: reading (memory-mapped), camera normalisation, windows, forward, extraction, the CSV table
  file. Freshly initialised weights
  detect nothing, so the extraction and the table would cost nothing: ``--fit-train-s S`` first trains the
  network for S seconds on the configuration (about a minute on a GPU gives a model that finds most
  emitters), ``--fit-model RUN`` fits with a trained model instead; the localizations per frame are reported.

Prints a table and writes JSON.

    python bench/throughput.py --device cpu  --train-steps 10 --fit-frames 64
    python bench/throughput.py --device cuda --train-steps 300 --fit-frames 5000 --fit-train-s 60 [--compile]
    # the DECODE-Plex-sized network on dual-colour data (2 x 256 x 256 frames, 80x80 training ROIs):
    python bench/throughput.py --device cuda --config examples/dual_color_plex.yaml --features 64 --depth 3 --train-size 80
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from plexloc.config import TrainConfig, load_config
from plexloc.infer import fit_movie, fit_movie_to_file
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer
from plexloc.train import Trainer, make_spec
from plexloc.train.validation import batch_aux, batch_photons

from accuracy import commit  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(config: TrainConfig, device: torch.device, steps: int, warmup: int, profile: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(config, Path(d) / "run", device=device)
        for _ in range(warmup):
            tr.train_step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        sync(device)
        full = steps * config.training.batch_size / (time.perf_counter() - t0)
        # simulation alone
        t0 = time.perf_counter()
        for _ in range(steps):
            b = tr.generator()
            batch_photons(tr.sim, b.frames)
        sync(device)
        sim = steps * config.training.batch_size / (time.perf_counter() - t0)
        # network alone (a fixed batch)
        b = tr.generator()
        x = batch_photons(tr.sim, b.frames)
        aux = batch_aux(tr.sim, b, tr.model.spec)  # the transformation indicator of multi-channel models
        from plexloc.train.loss import decode_loss
        from plexloc.train.validation import amp_context

        def net_step():
            with amp_context(tr.amp, device):
                raw = tr.forward(x, aux)
            parts = decode_loss(tr.model.decode(raw), tr.model.spec, target_xyz_nm=b.target_xyz_nm,
                                target_photons=b.target_photons, target_mask=b.target_mask, bg=b.bg)
            tr.optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            tr.optimizer.step()

        for _ in range(warmup):
            net_step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            net_step()
        sync(device)
        net = steps * config.training.batch_size / (time.perf_counter() - t0)
        gflop = network_gflop(tr.model.spec, config.frame_size[0], fit=False)
        out = {"train_samples_per_s": full, "simulation_samples_per_s": sim, "network_samples_per_s": net,
               "train_gflop_per_sample": gflop, "network_tflop_per_s": net * gflop / 1e3,
               "amp_bf16": tr.amp, "channels_last": tr.channels_last}  # what the trainer chose on this device
        if profile:  # where the time goes: the operators with the most device (or CPU) time, 3 steps of each part
            out["profile"] = {"simulation": profile_table(lambda: batch_photons(tr.sim, tr.generator().frames), device),
                              "network": profile_table(net_step, device)}
    return out


def profile_table(fn, device: torch.device, steps: int = 3, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            fn()
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def network_gflop(spec, size: int, *, fit: bool) -> float:
    """GFLOP of the network on the ``meta`` device (counted, not run): forward and backward (3x the forward, as
    measured for these convolutions) of one training sample of ``size`` px, or the forward of one fitted frame of
    ``size`` px (its frame U-Nets once, one window through the union U-Net and heads, as fitting computes it)."""
    from torch.utils.flop_counter import FlopCounterMode

    from plexloc.infer.predict import sliding_windows

    with torch.device("meta"):
        net = Localizer(spec)
        aux = torch.zeros(1, spec.n_aux, size, size) if spec.n_aux else None
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            if fit:  # one frame's features, repeated over the window: the other frames' are their own windows' work
                feats = net.frame_features(torch.zeros(1, spec.n_channels, size, size), aux)
                net.union_forward(sliding_windows(feats.expand(spec.window, *feats.shape[1:]), spec.window), aux)
            else:
                net(torch.zeros(1, spec.window, spec.n_channels, size, size), aux)
    return counter.get_total_flops() / 1e9 * (1.0 if fit else 3.0)


def fit_network(config: TrainConfig, device: torch.device, train_s: float = 0.0, model: str | None = None) -> tuple:
    """The network to fit with, its training configuration and what it is: ``model`` (a run folder or model
    file), else a fresh network of ``config`` trained for ``train_s`` seconds (0: untrained, no detections): the
    network that training saves in model.pt (``Trainer.evaluated``, the weights' moving average)."""
    from plexloc.nets.io import load_model
    from plexloc.simulation import Simulator

    if model is not None:
        net, cfg, meta = load_model(model, device=device)
        return net, TrainConfig.model_validate(cfg), {"fit_model": str(model), "fit_model_step": meta.get("step")}
    if train_s <= 0:
        net = Localizer(make_spec(config, Simulator(config.simulation()).to(device))).to(device)
        return net, config, {"fit_model": "fresh weights"}
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(config, Path(d) / "run", device=device)
        t0, steps = time.perf_counter(), 0
        while time.perf_counter() - t0 < train_s:
            tr.train_step()
            steps += 1
        sync(device)
        return tr.evaluated.eval(), config, {"fit_model": f"trained here for {train_s:g} s", "fit_model_step": steps}


def bench_fit(config: TrainConfig, device: torch.device, frames: int, size: int, batch_frames: int,
              channels_last: bool | None = None, train_s: float = 0.0, model: str | None = None,
              compile_fit: bool = False, save: Path | None = None) -> dict:
    from plexloc.nets.io import save_model
    from plexloc.simulation import Simulator

    net, config, about = fit_network(config, device, train_s, model)
    if save is not None:  # for a later step's --fit-model (e.g. the same network compiled)
        save_model(save, net, config.model_dump(mode="json"), {"step": about.get("fit_model_step")})
    data = config.simulation().model_dump()
    data["frame_size"] = [size, size]
    sim = Simulator(type(config.simulation()).model_validate(data)).to(device)
    if channels_last:
        net.channels_last_()
    with tempfile.TemporaryDirectory() as d:
        chunks = sim.simulate_movie(min(frames, 256), generator=torch.Generator(device=device).manual_seed(0)).frames
        paths = []
        for c, chunk in enumerate(chunks):  # one TIFF per channel
            paths.append(Path(d) / f"movie_ch{c}.tif")
            reps = -(-frames // chunk.shape[0])
            movie = np.concatenate([chunk.cpu().numpy().astype(np.uint16)] * reps)[:frames]
            write_movie(paths[-1], movie)
            del movie
        path = paths[0] if len(paths) == 1 else paths
        cfg = config.model_dump(mode="json")
        read_fps = bench_read(paths, config)
        # warm-up: the whole movie once (file cache, cuDNN's choice of algorithms, compilation)
        warm = dict(config=cfg, device=device, batch_frames=batch_frames, compile=compile_fit, channels_last=channels_last)
        fit_movie(path, net, **warm)
        stats: dict = {}
        # TIFF in, table out: the CSV file as plexloc fit writes it (in the background while the network runs)
        n_locs = fit_movie_to_file(path, net, Path(d) / "locs.csv", stats=stats, **warm)
    gflop = network_gflop(net.spec, size, fit=True)
    return {"fit_frames_per_s": stats["frames_per_s"], "fit_check_seconds": stats.get("check_seconds"),
            "read_convert_frames_per_s": read_fps,
            "fit_gflop_per_frame": gflop, "fit_tflop_per_s": stats["frames_per_s"] * gflop / 1e3,
            "fit_frames": frames, "fit_frame_size": size, "channels": len(paths),
            "fit_localizations": n_locs, "fit_localizations_per_frame": n_locs / max(frames, 1), "fit_output": "csv",
            "fit_batch_frames": batch_frames, "fit_compiled": compile_fit, **about}


def bench_read(paths: list[Path], config: TrainConfig, repeats: int = 3) -> float:
    """Frames/s of reading the TIFFs and converting them to photons on the CPU, the part of fitting before the
    device (median of ``repeats`` passes over the movie, the file cache warm)."""
    from plexloc.camera import camera_from_config
    from plexloc.infer.fit import _photon_chunks
    from plexloc.io.tiff import open_movie

    cams = [camera_from_config(ch.camera) for ch in config.channels]
    rates = []
    for _ in range(repeats + 1):
        readers = [open_movie(p) for p in paths]
        t0, n = time.perf_counter(), 0
        for chunk in _photon_chunks(readers, cams, 256):
            n += chunk.shape[0]
        rates.append(n / (time.perf_counter() - t0))
        for r in readers:
            r.close()
    return float(np.median(rates[1:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "2d_gaussian.yaml")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--features", type=int, default=48)
    ap.add_argument("--depth", type=int, default=2, help="down/up stages of both U-Nets (DECODE 2, DECODE-Plex 3)")
    ap.add_argument("--up-kernel", type=int, choices=(1, 3), default=3,
                    help="kernel of the U-Nets' convolutions after up-sampling (plexloc 3, DECODE 1)")
    ap.add_argument("--out-kernel", type=int, choices=(1, 3), default=3, help="kernel of the U-Nets' output convolutions (plexloc 3, DECODE 1)")
    ap.add_argument("--train-size", type=int, default=40, help="training ROI (px; DECODE-Plex 80)")
    ap.add_argument("--train-steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--fit-frames", type=int, default=1000)
    ap.add_argument("--fit-size", type=int, default=256)
    ap.add_argument("--fit-batch", type=int, default=32)
    ap.add_argument("--fit-train-s", type=float, default=0.0,
                    help="train the fitted network this long first (0: fresh weights, which detect nothing)")
    ap.add_argument("--fit-model", default=None, help="fit with this trained model (run folder or model file) instead")
    ap.add_argument("--fit-save", type=Path, default=None, help="save the fitted network as a model file (for --fit-model)")
    ap.add_argument("--compile", action="store_true", help="torch.compile in training (CUDA) and in fitting")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="training.channels_last, and the fitted model's convolutions in NHWC (default: as the trainer "
                    "and plexloc fit choose on the device: NHWC on a oneDNN CPU, NCHW on CUDA)")
    ap.add_argument("--profile", action="store_true", help="also the torch profiler's top operators of simulation and network")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "throughput.json")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cfg = load_config(args.config, TrainConfig).model_dump()
    cfg["frame_size"] = [args.train_size, args.train_size]
    cfg["model"].update(features=args.features, union_features=args.features, depth=args.depth, union_depth=args.depth,
                        up_kernel=args.up_kernel, out_kernel=args.out_kernel)
    cfg["training"].update(batch_size=args.batch_size, validation_samples=8, compile=args.compile,
                           channels_last=args.channels_last)
    config = TrainConfig.model_validate(cfg)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "commit": commit(),
              "config": str(args.config), "batch_size": args.batch_size, "features": args.features,
              "depth": args.depth, "up_kernel": args.up_kernel, "out_kernel": args.out_kernel, "train_size": args.train_size,
              "compile": args.compile}
    result.update(bench_train(config, device, args.train_steps, args.warmup, args.profile))
    result.update(bench_fit(config, device, args.fit_frames, args.fit_size, args.fit_batch, args.channels_last,
                            args.fit_train_s, args.fit_model, args.compile, args.fit_save))
    print(f"| device | layout | train samples/s (sim incl.) | simulation only | network only | fit frames/s ({result['channels']}x{args.fit_size}x{args.fit_size}) | read + convert frames/s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    layout = ("NHWC" if result["channels_last"] else "NCHW") + (", bf16" if result["amp_bf16"] else ", fp32") + (", compiled" if args.compile else "")
    print(f"| {result['device']} ({device.type}) | {layout} | {result['train_samples_per_s']:,.0f} | {result['simulation_samples_per_s']:,.0f} "
          f"| {result['network_samples_per_s']:,.0f} | {result['fit_frames_per_s']:,.1f} "
          f"| {result['read_convert_frames_per_s']:,.0f} |")
    print(f"work: {result['train_gflop_per_sample']:.2f} GFLOP per training sample (forward and backward), network alone at "
          f"{result['network_tflop_per_s']:.1f} TFLOP/s; {result['fit_gflop_per_frame']:.1f} GFLOP per fitted frame, fitting at "
          f"{result['fit_tflop_per_s']:.1f} TFLOP/s")
    print(f"fitted with {result['fit_model']}: {result['fit_localizations_per_frame']:.1f} localizations per frame")
    for part, table in result.get("profile", {}).items():
        print(f"\nprofile: {part}\n{table}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
