"""Our MLE fitter against Picasso (``picassosr``) on the same simulated 2D movies.

    python bench/mle_vs_picasso.py [--frames 2000] [--density 0.3] [--device cpu|cuda]
        [--picasso-python .venv-bench/bin/python] [--out bench/out/mle_vs_picasso.json]

Movie: examples/2d_gaussian.yaml (EMCCD of the SMLM Challenge, sigma 130 nm, 100 nm pixels), flux
1,000-10,000 photons, flat background 20-100 photons/px, the given density. Rows:

- ``plexloc mle``: our detection (DoG, noise-based threshold) + MLE with the calibrated width;
- ``plexloc mle free sigma``: the same with the width fitted (as Picasso fits it);
- ``picasso gausslq / gaussmle (own ids)``: Picasso's identification (min net gradient chosen so that
  it finds as many spots as our detection on the first 200 frames) + its least-squares / MLE fit;
- ``plexloc mle (our ids, fit only)``: our fit alone on our detections (movie in memory, in photons);
- ``plexloc mle 7x7 (our ids, fit only)``: the same with Picasso's window size (``--box``);
- ``picasso gausslq / gaussmle (our ids)``: Picasso's fits on our detections (same detection; time =
  cutting its boxes + fitting).

Times: wall clock of detection + fitting (movie already in memory for Picasso; for ours the TIFF is
streamed), medians of ``--repeats`` rounds in which our runs and Picasso's alternate (Picasso's worker
stays up and runs on request), so that both see the same load on a shared machine; Picasso's numba
functions are compiled before timing. Picasso runs in its own venv (it is not a project dependency):
create it with ``python3 -m venv .venv-bench && .venv-bench/bin/pip install picassosr``.
Prints a table (``fit locs/s``: the fit alone, without Picasso's box cutting) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "bench" / "mle_picasso_worker.py"
sys.path.insert(0, str(ROOT / "src"))

from plexloc.config import load_config  # noqa: E402
from plexloc.evaluate import evaluate  # noqa: E402
from plexloc.io.tables import read_table  # noqa: E402
from plexloc.io.tiff import write_movie  # noqa: E402
from plexloc.mle import MLEFitter, fit_movie  # noqa: E402
from plexloc.simulation import Simulator  # noqa: E402


def _first(cand, n_frames: int):
    from plexloc.mle.detection import Candidates

    k = cand.frame < n_frames
    return Candidates(cand.frame[k], cand.row[k], cand.col[k], cand.height[k])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--density", type=float, default=0.3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--picasso-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    ap.add_argument("--box", type=int, default=7, help="Picasso's box (its default 7)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="rounds of timed runs (ours and Picasso's alternate); medians are reported")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mle_vs_picasso.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "examples" / "2d_gaussian.yaml")
    cfg.emitters.density_per_um2 = args.density
    cfg.emitters.photons_range = (1000.0, 10000.0)
    sim = Simulator(cfg)
    mv = sim.simulate_movie(args.frames, generator=torch.Generator().manual_seed(args.seed))
    tmp = Path(tempfile.mkdtemp(prefix="mle_vs_picasso_"))
    movie = tmp / "movie.tif"
    write_movie(movie, mv.frames[0].numpy())
    truth = mv.truth
    rows = []

    def score(name: str, locs, seconds: float, extra=None) -> None:
        m = evaluate(truth, locs, dim=2, px_size_nm=cfg.px_size_xy_nm[0])
        rows.append({"method": name, "n_locs": len(locs), "jaccard": m.jaccard, "rmse_lat_nm": m.rmse_lat,
                     "seconds": seconds, "locs_per_s": len(locs) / seconds, **(extra or {})})

    # ours: warm-up on 20 frames first (as for Picasso), not timed
    warm = tmp / "warm.tif"
    write_movie(warm, mv.frames[0, :20].numpy())
    fit_movie(warm, cfg, device=args.device)
    # our detections, for Picasso's fits on the same spots
    fitter = MLEFitter(cfg, device=args.device)
    ph = fitter.to_photons([mv.frames[0].numpy()])
    cand = fitter.detect(ph)
    fitter.fit_candidates(ph[:, :20], _first(cand, 20))  # warm-up
    ids = tmp / "ids.csv"
    np.savetxt(ids, np.stack([cand.frame, cand.row, cand.col], 1), delimiter=",", header="frame,row,col", comments="", fmt="%d")
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t0

    ours = {
        "plexloc mle": lambda: fit_movie(movie, cfg, device=args.device, batch_frames=1000),
        "plexloc mle free sigma": lambda: fit_movie(movie, cfg, device=args.device, batch_frames=1000, free_sigma=True),
        "plexloc mle (our ids, fit only)": lambda: fitter.fit_candidates(ph, cand),
        "plexloc mle 7x7 (our ids, fit only)": lambda: fitter7.fit_candidates(ph, cand),
    }
    fitter7 = MLEFitter(cfg, device=args.device, roi_px=args.box)  # Picasso's box size, for the fit speed per pixel
    fitter7.fit_candidates(ph[:, :20], _first(cand, 20))
    worker, min_ng, note = None, None, None
    if Path(args.picasso_python).exists():
        cam = fitter.channels[0].camera
        cam_args = ["--baseline", str(cam.baseline), "--sensitivity", str(cam.e_per_adu), "--gain", str(cam.em_gain), "--qe", str(cam.qe)]
        # Picasso's threshold: the min net gradient that gives Picasso its best JI on the first 200 frames
        sub = tmp / "sub.tif"
        write_movie(sub, mv.frames[0, :200].numpy())
        grid = (1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 14000, 20000)
        subprocess.run([args.picasso_python, str(WORKER), str(sub), str(tmp / "probe"), "--box", str(args.box),
                        "--probe", ",".join(map(str, grid)), *cam_args], check=True, capture_output=True, text=True)
        sub_truth = truth[truth["frame"] < 200]
        ji = {ng: evaluate(sub_truth, read_table(tmp / f"probe_ng{ng}.csv"), dim=2).jaccard for ng in grid}
        min_ng = float(max(ji, key=ji.get))
        worker = subprocess.Popen([args.picasso_python, str(WORKER), str(movie), str(tmp / "p"), "--box", str(args.box),
                                   "--min-ng", str(min_ng), "--ids", str(ids), "--serve", *cam_args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(worker.stdout.readline())  # compiled and ready
    else:
        note = f"picasso not run: {args.picasso_python} not found"

    def ask(kind: str) -> dict:
        worker.stdin.write(kind + "\n")
        worker.stdin.flush()
        return json.loads(worker.stdout.readline())

    # rounds: ours and Picasso's runs alternate, so that both see the same machine load (it may be shared)
    times: dict[str, list[float]] = {}
    locs_of = {}
    for _ in range(args.repeats):
        for name, fn in ours.items():
            locs_of[name], dt = timed(fn)
            times.setdefault(name, []).append(dt)
            if worker is not None:
                kind = {"plexloc mle": "own", "plexloc mle (our ids, fit only)": "ids"}.get(name)
                if kind is not None:
                    t = ask(kind)
                    label = "own ids" if kind == "own" else "our ids"
                    for meth in ("gausslq", "gaussmle"):
                        times.setdefault(f"picasso {meth} ({label})", []).append(t["identify_s"] + t["spots_s"] + t[f"{meth}_fit_s"])
                        times.setdefault(f"picasso {meth} ({label}) fit alone", []).append(t[f"{meth}_fit_s"])
    if worker is not None:
        worker.stdin.write("quit\n")
        worker.stdin.close()
        worker.wait()
    for name in ours:
        score(name, locs_of[name], float(np.median(times[name])), {"all_s": times[name]})
    if worker is not None:
        for label, kind in (("own ids", "own"), ("our ids", "ids")):
            for meth in ("gausslq", "gaussmle"):
                key = f"picasso {meth} ({label})"
                score(key, read_table(tmp / f"p_{kind}_{meth}.csv"), float(np.median(times[key])),
                      {"min_net_gradient": min_ng, "fit_only_s": float(np.median(times[key + " fit alone"])), "all_s": times[key]})
    meta = {"frames": args.frames, "density_per_um2": args.density, "device": args.device,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "n_truth": len(truth),
            "date": time.strftime("%Y-%m-%d"), "note": note}
    print(f"| method | locs | JI % | RMSE_lat nm | s | locs/s | fit locs/s |  ({args.frames} frames, {args.density}/um², {args.device})")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fit = f"{r['n_locs'] / r['fit_only_s']:.0f}" if "fit_only_s" in r else "–"
        print(f"| {r['method']} | {r['n_locs']} | {r['jaccard']:.1f} | {r['rmse_lat_nm']:.2f} | {r['seconds']:.2f} | {r['locs_per_s']:.0f} | {fit} |")
    if note:
        print(note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
