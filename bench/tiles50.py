"""Session 50, helper tiles: large frames, tiling, the temporal window's ends and movie input, walked end to end.

A trained run (``--model``, e.g. the 4-minute demo network: ``plexloc demo``'s run folder) and its own configuration
simulate the movies (``plexloc simulate``), ``plexloc fit`` fits them, and the numbers are taken against the truth:

1. ``seams``: a 300 x 700 movie (20 frames, 1 emitter/um^2) fitted with ``--tile 64``, ``256`` and whole (1000):
   whether the tables are the same, localizations per truth emitter, recall and RMSE in bins of the distance to the
   64-px tile grid's cut lines (emitters within 3 px of the frame's edge left out), pairs of localizations closer
   than half a pixel in one frame (duplicates); recall and RMSE of each frame (the first and the last frame's window
   repeats the edge frame).
2. ``small``: frames smaller than the training size (20 x 20, 33 x 31) and strips of 1-5 rows and 1 column cut from
   the 300 x 700 movie: localizations, recall, precision.
3. ``folder``: the first 128 x 128 of the movie as one stack, as a folder of one-frame TIFFs named img_0 .. img_19
   (natural order) and img_000 .., a BigTIFF, and its first 1 and 2 frames: tables the same as the stack's?
4. ``extract`` (in this process, the same Predictor): 96 x 96 movies at 0.5 and 2 emitters/um^2 with the emitters
   as sampled, moved onto a pixel border in x, onto a pixel corner, or (those within 3 px) onto a 32-px tile border,
   fitted whole and in 32-px tiles: localizations, recall, RMSE, pairs closer than half a pixel.
5. ``window``: the first and last frame's window (edge frame repeated) against the edge frame mirrored and an inner
   frame's window, 12 movies of 5 frames of 128 x 128 at 1 emitter/um^2 (float32).
6. ``threshold``: recall, precision and RMSE at detection thresholds 0.2-0.9 (96 x 96, 20 frames, 0.5 and 2/um^2).
7. ``stream`` (``--stream-frames``): peak resident memory of ``plexloc fit`` on movies of 64 x 64 frames of those
   lengths (the 200-frame simulated movie repeated, written by MovieWriter), and its frames/s.

    OMP_NUM_THREADS=1 .venv/bin/python bench/tiles50.py --model RUN --work /tmp/tiles50b --out bench/tiles50.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PLEXLOC = str(Path(sys.executable).with_name("plexloc"))
PX = 100.0


def sh(*args: str) -> str:
    out = subprocess.run([PLEXLOC, *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"plexloc {' '.join(args)}: {out.stderr[-2000:]}")
    return out.stderr + out.stdout


def fit(movie: Path, model: str, out: Path, *extra: str) -> dict:
    t0 = time.perf_counter()
    text = sh("fit", str(movie), "--model", model, "--out", str(out), "--device", "cpu", *extra)
    m = re.search(r"wrote .* \((\d+) localizations, ([\d.]+) frames/s", text)
    return {"locs": int(m.group(1)) if m else None, "frames_per_s": float(m.group(2)) if m else None,
            "seconds": round(time.perf_counter() - t0, 1)}


def scores(truth, pred) -> dict:
    from plexloc.evaluate.matching import match
    m = match(truth, pred, dim=2)
    n_t, n_p = len(truth), len(pred)
    return {"truth": n_t, "locs": n_p, "recall": round(m.n_tp / max(n_t, 1), 4),
            "precision": round(m.n_tp / max(n_p, 1), 4) if n_p else None,
            "rmse_nm": round(float(np.sqrt(np.mean(m.dx ** 2 + m.dy ** 2))), 2) if m.n_tp else None}


def duplicates(frame, x, y, radius_nm: float = PX / 2) -> int:
    from scipy.spatial import cKDTree
    n = 0
    for f in np.unique(frame):
        s = frame == f
        n += len(cKDTree(np.c_[x[s], y[s]]).query_pairs(radius_nm))
    return n


def seams(work: Path, model: str, cfg: str) -> dict:
    from plexloc.evaluate.matching import match
    from plexloc.io.tables import read_table
    h, w = 300, 700
    sim = work / "sim300x700"
    if not (sim / "movie.tif").exists():
        sh("simulate", "--config", cfg, "--frames", "20", "--frame-size", str(h), str(w), "--density", "1.0",
           "--out", str(sim), "--seed", "1", "--device", "cpu")
    truth = read_table(sim / "truth.csv")
    out = {"frame": [h, w], "frames": 20, "density_per_um2": 1.0, "fits": {}}
    tables = {}
    for tile in (64, 256, 1000):
        f = work / f"fit300_t{tile}.csv"
        out["fits"][tile] = fit(sim / "movie.tif", model, f, "--tile", str(tile))
        tables[tile] = read_table(f)
    ref = tables[1000]
    for tile in (64, 256):
        t = tables[tile]
        same = len(t) == len(ref) and np.array_equal(t["frame"], ref["frame"])
        d = np.hypot(t["x_nm"] - ref["x_nm"], t["y_nm"] - ref["y_nm"]) if same else None
        out["fits"][tile]["vs_whole"] = {"same_rows": bool(same),
                                         "max_position_diff_nm": float(d.max()) if same else None}
    pred = tables[64]
    m = match(truth, pred, dim=2)

    def grid_dist(x_nm, y_nm, tile=64):
        x, y = x_nm / PX, y_nm / PX
        d = np.full(x.shape, np.inf)
        for k in range(1, (w - 1) // tile + 1):
            d = np.minimum(d, np.abs(x - k * tile))
        for k in range(1, (h - 1) // tile + 1):
            d = np.minimum(d, np.abs(y - k * tile))
        return d

    def inside(x_nm, y_nm):
        return np.minimum.reduce([x_nm / PX, y_nm / PX, w - x_nm / PX, h - y_nm / PX]) >= 3

    dt, dp = grid_dist(truth["x_nm"], truth["y_nm"]), grid_dist(pred["x_nm"], pred["y_nm"])
    it, ip = inside(truth["x_nm"], truth["y_nm"]), inside(pred["x_nm"], pred["y_nm"])
    hit = np.zeros(len(truth), bool)
    hit[m.tp_truth] = True
    err = np.full(len(truth), np.nan)
    err[m.tp_truth] = m.dx ** 2 + m.dy ** 2
    bins = []
    for lo, hi in ((0, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 32)):
        st, sp = it & (dt >= lo) & (dt < hi), ip & (dp >= lo) & (dp < hi)
        bins.append({"px_from_cut": [lo, hi], "truth": int(st.sum()), "locs": int(sp.sum()),
                     "locs_per_truth": round(sp.sum() / max(st.sum(), 1), 4), "recall": round(hit[st].mean(), 4),
                     "rmse_nm": round(float(np.sqrt(np.nanmean(err[st & hit]))), 2)})
    out["tile64_by_distance_to_cut"] = bins
    out["duplicate_pairs_half_px"] = {tile: duplicates(t["frame"], t["x_nm"], t["y_nm"]) for tile, t in tables.items()}
    pf, tf = pred["frame"], truth["frame"]
    hit_p = np.zeros(len(pred), bool)
    hit_p[m.tp_pred] = True
    out["per_frame"] = [{"frame": f, "recall": round(hit[tf == f].mean(), 4), "precision": round(hit_p[pf == f].mean(), 4),
                         "rmse_nm": round(float(np.sqrt(np.nanmean(err[(tf == f) & hit]))), 2)} for f in range(20)]
    mid = out["per_frame"][1:-1]
    out["middle_frames"] = {k: {"mean": round(float(np.mean([r[k] for r in mid])), 4),
                                "sd": round(float(np.std([r[k] for r in mid], ddof=1)), 4)} for k in ("recall", "rmse_nm")}
    return out


def small(work: Path, model: str, cfg: str) -> dict:
    import tifffile

    from plexloc.io.tables import read_table
    from plexloc.table import LocTable
    out = {}
    for h, w in ((20, 20), (33, 31)):
        d = work / f"small_{h}x{w}"
        if not (d / "movie.tif").exists():
            sh("simulate", "--config", cfg, "--frames", "20", "--frame-size", str(h), str(w), "--density", "1.0",
               "--out", str(d), "--seed", "3", "--device", "cpu")
        r = fit(d / "movie.tif", model, d / "fit.csv")
        out[f"{h}x{w}"] = {**scores(read_table(d / "truth.csv"), read_table(d / "fit.csv")), "fps": r["frames_per_s"]}
    movie = tifffile.imread(work / "sim300x700" / "movie.tif")
    truth = read_table(work / "sim300x700" / "truth.csv")
    for name, (r0, r1, c0, c1) in {"1x700": (100, 101, 0, 700), "2x700": (100, 102, 0, 700),
                                   "3x700": (100, 103, 0, 700), "5x700": (100, 105, 0, 700),
                                   "300x1": (0, 300, 100, 101)}.items():
        d = work / f"strip_{name}"
        d.mkdir(exist_ok=True)
        tifffile.imwrite(d / "movie.tif", np.ascontiguousarray(movie[:, r0:r1, c0:c1]))
        fit(d / "movie.tif", model, d / "fit.csv")
        x, y = truth["x_nm"] / PX, truth["y_nm"] / PX
        s = (x >= c0) & (x < c1) & (y >= r0) & (y < r1)
        sub = LocTable({k: truth[k][s] - (c0 * PX if k == "x_nm" else r0 * PX if k == "y_nm" else 0)
                        for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
        out[f"strip_{name}"] = scores(sub, read_table(d / "fit.csv"))
    return out


def folder(work: Path, model: str) -> dict:
    import tifffile
    m = tifffile.imread(work / "sim300x700" / "movie.tif")[:, :128, :128]
    tifffile.imwrite(work / "m128.tif", m)
    tifffile.imwrite(work / "m128_big.tif", m, bigtiff=True)
    for sub, fmt in (("folder", "img_{}.tif"), ("folder_pad", "img_{:03d}.tif")):
        (work / sub).mkdir(exist_ok=True)
        for i in range(len(m)):
            tifffile.imwrite(work / sub / fmt.format(i), m[i])
    tifffile.imwrite(work / "one.tif", m[:1])
    tifffile.imwrite(work / "two.tif", m[:2])
    out = {}
    ref = None
    for name in ("m128.tif", "folder", "folder_pad", "m128_big.tif", "one.tif", "two.tif"):
        f = work / f"fit_{name}.csv"
        out[name] = fit(work / name, model, f)
        rows = f.read_text().splitlines()[1:]
        if ref is None:
            ref = rows
        elif name in ("folder", "folder_pad", "m128_big.tif"):
            out[name]["same_table_as_stack"] = rows == ref
        else:
            n = int(name == "two.tif") + 1
            out[name]["rows_in_stack_fit_of_these_frames"] = sum(int(r.split(",")[0]) < n for r in ref)
    return out


def extract_walk(model: str) -> dict:
    import torch
    from scipy.optimize import linear_sum_assignment

    from plexloc.config import SimulationConfig, TrainConfig, validate_config
    from plexloc.infer.predict import Predictor, iter_frame_blocks
    from plexloc.nets.io import load_model
    from plexloc.simulation import Simulator
    net, cfg, _ = load_model(model)
    size, n, tile = 96, 20, 32
    data = validate_config(cfg, TrainConfig, source="run").simulation().model_dump()
    data["frame_size"] = [size, size]
    sim = Simulator(validate_config(data, SimulationConfig, source="--size"))
    out = []
    for density in (0.5, 2.0):
        for mode in ("as_sampled", "x_on_pixel_border", "on_pixel_corner", "on_tile_border"):
            g = torch.Generator().manual_seed(11)
            em = sim.sample_emitters(n_sequences=1, n_frames=n, generator=g, density_per_um2=density, margin_nm=0.0)
            xyz = em.xyz_nm.clone()
            if mode in ("x_on_pixel_border", "on_pixel_corner"):
                xyz[:, 0] = torch.round(xyz[:, 0] / PX) * PX
            if mode == "on_pixel_corner":
                xyz[:, 1] = torch.round(xyz[:, 1] / PX) * PX
            if mode == "on_tile_border":
                for a in (0, 1):
                    cut = torch.round(xyz[:, a] / (tile * PX)) * tile * PX
                    near = ((xyz[:, a] - cut).abs() < 3 * PX) & (cut > 0) & (cut < size * PX)
                    xyz[near, a] = cut[near]
            em.xyz_nm = xyz
            bg = sim.sample_background(n_sequences=1, n_frames=n, generator=g)
            raw = sim.camera(sim.expected_photons(em, bg), generator=g)
            movie = sim.to_photons(raw.round().clamp(0, 65535)).permute(1, 0, 2, 3).contiguous()
            t = np.c_[em.frame_ix.numpy(), xyz[:, 0].numpy(), xyz[:, 1].numpy()]
            row = {"density_per_um2": density, "emitters": mode, "truth": len(t)}
            if mode == "on_tile_border":
                row["truth_on_a_tile_border"] = int(((t[:, 1:] % (tile * PX)) == 0).any(1).sum())
            for tp_ in (1000, tile):
                pred = Predictor(net, tile_px=tp_)
                parts = []
                for first, block in iter_frame_blocks([movie], window=net.spec.window, batch_frames=8):
                    ex = pred.localize_frames(block)
                    parts.append(np.c_[ex.sample.numpy() + first, ex.x_nm.double().numpy(), ex.y_nm.double().numpy()])
                p = np.concatenate(parts)
                tp, se = 0, 0.0
                for f in range(n):
                    pf, tf = p[p[:, 0] == f][:, 1:], t[t[:, 0] == f][:, 1:]
                    if len(pf) and len(tf):
                        d = np.hypot(tf[:, None, 0] - pf[None, :, 0], tf[:, None, 1] - pf[None, :, 1])
                        c = np.where(d <= 250, d, 1e6)
                        r, cc = linear_sum_assignment(c)
                        ok = c[r, cc] < 1e6
                        tp += int(ok.sum())
                        se += float((d[r, cc][ok] ** 2).sum())
                row["whole" if tp_ == 1000 else f"tile{tile}"] = {
                    "locs": len(p), "recall": round(tp / len(t), 4), "rmse_nm": round(float(np.sqrt(se / max(tp, 1))), 2),
                    "pairs_closer_than_half_px": duplicates(p[:, 0], p[:, 1], p[:, 2])}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def window_ends(model: str, seeds: int = 12, frames: int = 5) -> dict:
    """The first and last frame's window (the edge frame repeated, as iter_frame_blocks builds it) against the edge
    frame mirrored (its neighbour on both sides) and against an inner frame's own window: 128 x 128 movies of
    ``frames`` frames at 1 emitter/um^2, ``seeds`` of them, float32, recall, precision and RMSE of those frames."""
    import torch
    from scipy.optimize import linear_sum_assignment

    from plexloc.config import SimulationConfig, TrainConfig, validate_config
    from plexloc.infer.predict import Predictor
    from plexloc.nets.io import load_model
    from plexloc.simulation import Simulator
    net, cfg, _ = load_model(model)
    data = validate_config(cfg, TrainConfig, source="run").simulation().model_dump()
    data["frame_size"] = [128, 128]
    sim = Simulator(validate_config(data, SimulationConfig, source="--size"))
    pred = Predictor(net, precision="float32")
    n = frames
    cases = {"repeat_first": ([0, 0, 1], 0), "mirror_first": ([1, 0, 1], 0), "inner_second": ([0, 1, 2], 1),
             "repeat_last": ([n - 2, n - 1, n - 1], n - 1), "mirror_last": ([n - 2, n - 1, n - 2], n - 1),
             "inner_second_last": ([n - 3, n - 2, n - 1], n - 2)}
    st = {k: {"truth": 0, "locs": 0, "tp": 0, "se": 0.0} for k in cases}
    for seed in range(seeds):
        g = torch.Generator().manual_seed(100 + seed)
        em, chunks = sim.iter_movie(n, generator=g, density_per_um2=1.0, chunk_frames=n)
        raw = torch.cat([r for _, r, _ in chunks], dim=1)
        movie = sim.to_photons(raw.round().clamp(0, 65535)).permute(1, 0, 2, 3).contiguous()
        truth = sim.truth_table(em)
        for k, (idx, f) in cases.items():
            ex = pred.localize(movie[idx][None])
            p = np.c_[ex.x_nm.double().numpy(), ex.y_nm.double().numpy()]
            s = truth["frame"] == f
            t = np.c_[truth["x_nm"][s], truth["y_nm"][s]]
            d = np.hypot(t[:, None, 0] - p[None, :, 0], t[:, None, 1] - p[None, :, 1])
            c = np.where(d <= 250, d, 1e6)
            r, cc = linear_sum_assignment(c)
            ok = c[r, cc] < 1e6
            st[k]["truth"] += len(t)
            st[k]["locs"] += len(p)
            st[k]["tp"] += int(ok.sum())
            st[k]["se"] += float((d[r, cc][ok] ** 2).sum())
    return {k: {"truth": v["truth"], "locs": v["locs"], "recall": round(v["tp"] / v["truth"], 4),
                "precision": round(v["tp"] / max(v["locs"], 1), 4), "rmse_nm": round(float(np.sqrt(v["se"] / v["tp"])), 2)}
            for k, v in st.items()}


def threshold_sweep(model: str, thresholds=(0.2, 0.3, 0.5, 0.7, 0.9)) -> list[dict]:
    """Recall, precision and RMSE at each detection threshold: 96 x 96 movies (20 frames) at 0.5 and 2 emitters/um^2
    as sampled, the whole frame, float32."""
    import torch
    from scipy.optimize import linear_sum_assignment

    from plexloc.config import SimulationConfig, TrainConfig, validate_config
    from plexloc.infer.predict import Predictor, iter_frame_blocks
    from plexloc.nets.io import load_model
    from plexloc.simulation import Simulator
    net, cfg, _ = load_model(model)
    data = validate_config(cfg, TrainConfig, source="run").simulation().model_dump()
    data["frame_size"] = [96, 96]
    sim = Simulator(validate_config(data, SimulationConfig, source="--size"))
    out = []
    for density in (0.5, 2.0):
        g = torch.Generator().manual_seed(11)
        em, chunks = sim.iter_movie(20, generator=g, density_per_um2=density, chunk_frames=20)
        raw = torch.cat([r for _, r, _ in chunks], dim=1)
        movie = sim.to_photons(raw.round().clamp(0, 65535)).permute(1, 0, 2, 3).contiguous()
        truth = sim.truth_table(em)
        for thr in thresholds:
            pred = Predictor(net, threshold=thr, precision="float32")
            parts = []
            for first, block in iter_frame_blocks([movie], window=net.spec.window, batch_frames=8):
                ex = pred.localize_frames(block)
                parts.append(np.c_[ex.sample.numpy() + first, ex.x_nm.double().numpy(), ex.y_nm.double().numpy()])
            p = np.concatenate(parts)
            tp, se = 0, 0.0
            for f in range(20):
                pf = p[p[:, 0] == f][:, 1:]
                s = truth["frame"] == f
                tf = np.c_[truth["x_nm"][s], truth["y_nm"][s]]
                if len(pf) and len(tf):
                    d = np.hypot(tf[:, None, 0] - pf[None, :, 0], tf[:, None, 1] - pf[None, :, 1])
                    c = np.where(d <= 250, d, 1e6)
                    r, cc = linear_sum_assignment(c)
                    ok = c[r, cc] < 1e6
                    tp += int(ok.sum())
                    se += float((d[r, cc][ok] ** 2).sum())
            out.append({"density_per_um2": density, "threshold": thr, "truth": len(truth), "locs": len(p),
                        "recall": round(tp / len(truth), 4), "precision": round(tp / max(len(p), 1), 4),
                        "rmse_nm": round(float(np.sqrt(se / max(tp, 1))), 2),
                        "pairs_closer_than_half_px": duplicates(p[:, 0], p[:, 1], p[:, 2])})
            print(json.dumps(out[-1]), flush=True)
    return out


def stream(work: Path, model: str, cfg: str, lengths: list[int]) -> list[dict]:
    import tifffile

    from plexloc.io.tiff import MovieWriter
    sim = work / "sim64"
    if not (sim / "movie.tif").exists():
        sh("simulate", "--config", cfg, "--frames", "200", "--frame-size", "64", "64", "--density", "0.5",
           "--out", str(sim), "--seed", "2", "--device", "cpu")
    base = tifffile.imread(sim / "movie.tif")
    out = []
    for n in lengths:
        path = work / f"long{n}.tif"
        with MovieWriter(path) as w:
            for k in range(0, n, len(base)):
                w.write(base[: min(len(base), n - k)])
        cmd = ["/usr/bin/time", "-f", "%M", PLEXLOC, "fit", str(path), "--model", model, "--out",
               str(work / f"fit_long{n}.csv"), "--device", "cpu"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        peak_kb = int(res.stderr.strip().splitlines()[-1])
        fps = re.findall(r"([\d.]+) frames/s", res.stdout + res.stderr)  # the closing line is on stdout
        progress = re.findall(r"([\d.]+)frame/s", res.stderr)
        out.append({"frames": n, "file_mb": round(path.stat().st_size / 1e6, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
                    "seconds": round(time.perf_counter() - t0, 1), "frames_per_s": float(fps[-1]) if fps else None,
                    "progress_shows_frames_per_s": bool(progress)})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a trained run folder (its config.yaml simulates the movies)")
    ap.add_argument("--work", required=True, type=Path, help="a folder for the movies and tables")
    ap.add_argument("--parts", nargs="+", default=["seams", "small", "folder", "extract"],
                    choices=["seams", "small", "folder", "extract", "window", "threshold", "stream"])
    ap.add_argument("--stream-frames", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--out", type=Path, default=HERE / "tiles50.json")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    cfg = str(Path(a.model) / "config.yaml")
    res = json.loads(a.out.read_text()) if a.out.exists() else {}
    res["conditions"] = {"model": a.model, "cpu": platform.processor() or platform.machine(),
                         "threads": os.environ.get("OMP_NUM_THREADS"), "date": time.strftime("%Y-%m-%d")}
    if "seams" in a.parts:
        res["seams"] = seams(a.work, a.model, cfg)
    if "small" in a.parts:
        res["small"] = small(a.work, a.model, cfg)
    if "folder" in a.parts:
        res["folder"] = folder(a.work, a.model)
    if "extract" in a.parts:
        res["extract"] = extract_walk(a.model)
    if "window" in a.parts:
        res["window_ends"] = window_ends(a.model)
    if "threshold" in a.parts:
        res["threshold"] = threshold_sweep(a.model)
    if "stream" in a.parts:
        res["stream"] = stream(a.work, a.model, cfg, a.stream_frames)
    res["self_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    a.out.write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: v for k, v in res.items() if k != "extract"}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
