"""Memory of fitting a long, dense movie: the table held whole (``fit_movie`` then ``write_table``) against
the table streamed to its file (``fit_movie_to_file``, what ``plexloc fit`` does).

A network that detects nearly everywhere (freshly initialised, detection bias 0) on 64x64 frames makes a
few hundred localizations per frame, so that a few thousand frames give millions of rows on a CPU in
minutes. Each (mode, frames) runs in its own process; the figure is the peak of its anonymous resident
memory (``RssAnon``: what the process allocated, sampled every 0.1 s) above what it held just before the
fit (model loaded, torch imported). The memory-mapped movie's pages (``RssFile``, page cache that the
kernel takes back when it needs it) are reported beside it. Prints a table, writes JSON and a PNG of
peak memory against rows.

    python bench/fit_memory.py --frames 500 1000 2000 4000 --out bench/fit_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from accuracy import commit  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def _status_mb() -> dict[str, float]:
    """RssAnon and RssFile of this process, MB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    return out


def child(mode: str, movie: str, model: str, out: str) -> dict:
    """One fit in this process; the peaks of its anonymous and file-backed resident memory above those before."""
    import threading

    import torch

    from plexloc.config.models import IdealCameraConfig
    from plexloc.infer import fit_movie, fit_movie_to_file
    from plexloc.io import write_table
    from plexloc.nets.io import load_model

    torch.set_num_threads(1)
    net, _, _ = load_model(model)
    cam = IdealCameraConfig()
    # warm on a short movie beside the long one: the allocator's and torch's steady state is not the table
    fit_movie(movie.replace(".tif", "_warm.tif"), net, camera=cam, batch_frames=16)
    before = _status_mb()
    peaks = dict(before)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            for k, v in _status_mb().items():
                peaks[k] = max(peaks[k], v)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    if mode == "in_memory":
        table = fit_movie(movie, net, camera=cam, batch_frames=16)
        write_table(table, out)
        rows = len(table)
    else:
        rows = fit_movie_to_file(movie, net, out, camera=cam, batch_frames=16)
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    for k, v in _status_mb().items():
        peaks[k] = max(peaks[k], v)
    return {"mode": mode, "rows": rows, "anon_before_mb": before["RssAnon"], "peak_above_mb": peaks["RssAnon"] - before["RssAnon"],
            "file_pages_above_mb": peaks["RssFile"] - before["RssFile"], "seconds": seconds,
            "file_mb": Path(out).stat().st_size / 2**20}


def make_inputs(folder: Path, frames: int, size: int) -> tuple[str, str]:
    import torch

    from plexloc.io.tiff import write_movie
    from plexloc.nets import Localizer, LocalizerSpec
    from plexloc.nets.io import save_model

    torch.manual_seed(0)
    spec = LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0], input_scale=[20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # detections nearly everywhere: many rows per frame
    save_model(folder / "model.pt", net, {}, meta={})
    rng = np.random.default_rng(0)
    movie = folder / f"movie_{frames}.tif"
    frames_px = rng.poisson(40.0, size=(frames, size, size)).astype(np.uint16)
    write_movie(movie, frames_px)
    write_movie(str(movie).replace(".tif", "_warm.tif"), frames_px[:32])
    return str(movie), str(folder / "model.pt")


def plot(rows: list[dict], path: Path) -> None:
    """Peak allocated memory against localizations, one line per mode."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode in ("in_memory", "streamed"):
        sel = [r for r in rows if r["mode"] == mode]
        ax.plot([r["rows"] / 1e6 for r in sel], [r["peak_above_mb"] for r in sel], "o-",
                label={"in_memory": "table held whole", "streamed": "streamed to the file"}[mode])
    ax.set_xlabel("localizations (millions)")
    ax.set_ylabel("peak allocated MB")
    ax.set_title("plexloc fit: memory above the loaded model", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    ap.add_argument("--size", type=int, default=64, help="frame size in pixels")
    ap.add_argument("--suffix", default=".csv", choices=[".csv", ".h5"], help="table format")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "fit_memory_cpu.json")
    ap.add_argument("--plot", type=Path, help="only draw the PNG of an earlier JSON")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "MOVIE", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.plot:
        plot(json.loads(args.plot.read_text())["runs"], args.plot.with_suffix(".png"))
        return
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for frames in args.frames:
            movie, model = make_inputs(folder, frames, args.size)
            for mode in ("in_memory", "streamed"):
                out = folder / f"locs_{mode}{args.suffix}"
                res = subprocess.run([sys.executable, __file__, "--child", mode, movie, model, str(out)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                r["frames"] = frames
                rows.append(r)
                print(f"{mode:>10} {frames:>6} frames {r['rows']:>9} rows  peak +{r['peak_above_mb']:7.1f} MB  "
                      f"(movie pages +{r['file_pages_above_mb']:.0f} MB)  "
                      f"{r['seconds']:6.1f} s  file {r['file_mb']:.1f} MB", flush=True)
                out.unlink()
            Path(movie).unlink()
            Path(movie.replace(".tif", "_warm.tif")).unlink()
    print("\n| mode | frames | rows | peak memory above the loaded model, MB | bytes per row | movie pages mapped, MB "
          "| s | table file MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['frames']} | {r['rows']:,} | {r['peak_above_mb']:.1f} | "
              f"{r['peak_above_mb'] * 2**20 / max(r['rows'], 1):.0f} | {r['file_pages_above_mb']:.0f} | {r['seconds']:.1f} | "
              f"{r['file_mb']:.1f} |")
    meta = {"commit": commit(), "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
            "size_px": args.size, "format": args.suffix, "command": " ".join(sys.argv)}
    args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
