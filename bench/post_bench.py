"""Post-processing benchmark: drift (RCC, COMET), merging, rendering, FRC on simulated structures.

Prints a table and writes JSON (``--json``) and the drift-curve figure (``--figure``).

    PYTHONPATH=src python bench/post_bench.py --json bench/post_bench.json --figure bench/post_drift_curve.png
    PYTHONPATH=src python bench/post_bench.py --comet      # adds COMET (optional comet-smlm) on the same data

Every number is measured here on the machine that runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from plexloc.post.drift import drift_error_rms, estimate_drift
from plexloc.post.merge import merge_localizations
from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift
from plexloc.render.frc import frc
from plexloc.render.image import render_gaussian, render_histogram
from plexloc.table import LocTable


def _drift_data(n_target: int, n_frames: int, seed: int):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(n_frames, 125.0, rng=rng)  # spans about 100 nm in x and y
    n_mol = max(1000, n_target // 12)
    mol = structure_points("lines", n_mol, fov_nm=40000.0, rng=rng)
    t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=5)
    return t, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-drift", type=int, default=1_000_000)
    ap.add_argument("--n-merge", type=int, default=10_000_000)
    ap.add_argument("--n-render", type=int, default=10_000_000)
    ap.add_argument("--comet", action="store_true", help="also time COMET (needs comet-smlm) on CPU")
    ap.add_argument("--comet-n", type=int, default=1_000_000)
    ap.add_argument("--drift-only", action="store_true", help="only the drift rows")
    ap.add_argument("--json", default=None)
    ap.add_argument("--figure", default=None)
    args = ap.parse_args()
    rows: list[tuple[str, str, float, str]] = []
    out: dict = {"machine": platform.processor() or platform.machine(), "results": {}}

    t, truth = _drift_data(args.n_drift, 20000, seed=1)
    frames = np.arange(truth.shape[0])
    t0 = time.perf_counter()
    res = estimate_drift(t, engine="rcc", n_segments=12)
    dt = time.perf_counter() - t0
    err = drift_error_rms(res.at(frames), truth)
    rows.append(("drift rcc (12 windows, 20 nm px)", f"{len(t):,} locs", dt, f"error {err:.2f} nm RMS, drift span "
                 f"{np.ptp(truth[:, 0]):.0f}/{np.ptp(truth[:, 1]):.0f} nm"))
    out["results"]["drift_rcc"] = {"n": len(t), "seconds": dt, "rms_error_nm": err, **res.info}
    if args.figure:
        from plexloc.render.figures import drift_figure, save_png

        save_png(drift_figure(res.frames, res.drift_nm, segment_frames=res.segment_frames,
                              segment_drift_nm=res.segment_drift_nm, true_drift_nm=truth - truth[0],
                              title=f"RCC on {len(t):,} localizations: error {err:.2f} nm RMS"), args.figure)
    if args.comet:
        tc = t if args.comet_n >= len(t) else t[np.sort(np.random.default_rng(0).choice(len(t), args.comet_n, replace=False))]
        t0 = time.perf_counter()
        rc = estimate_drift(tc, engine="comet", n_segments=12, max_drift_nm=200.0, backend="cpu",
                            max_locs_per_segment=5000)
        dt = time.perf_counter() - t0
        err = drift_error_rms(rc.at(frames), truth)
        rows.append(("drift comet (cpu, 12 windows, <=5k locs/window)", f"{len(tc):,} locs", dt, f"error {err:.2f} nm RMS"))
        out["results"]["drift_comet"] = {"n": len(tc), "seconds": dt, "rms_error_nm": err, **rc.info}

    if args.drift_only:
        _report(rows, out, args.json)
        return
    rng = np.random.default_rng(2)
    n_mol = args.n_merge // 8
    mol = structure_points("uniform", n_mol, fov_nm=200000.0, rng=rng)
    tm = blinking_table(mol, n_frames=50000, rng=rng, precision_nm=10.0, events_per_molecule=3)
    n_ev = len(np.unique(tm["event"]))
    t0 = time.perf_counter()
    m = merge_localizations(tm, radius_nm=50.0, gap=1)
    dt = time.perf_counter() - t0
    rows.append(("merge (radius 50 nm, gap 1)", f"{len(tm):,} locs", dt, f"{len(m):,} merged vs {n_ev:,} true events "
                 f"({100 * (len(m) / n_ev - 1):+.2f} %)"))
    out["results"]["merge"] = {"n": len(tm), "seconds": dt, "n_out": len(m), "n_events": n_ev}
    del tm, m

    n = args.n_render
    rr = np.random.default_rng(3)
    tr = LocTable({"frame": np.zeros(n, np.int64), "x_nm": rr.uniform(0, 40000, n), "y_nm": rr.uniform(0, 40000, n),
                   "z_nm": np.zeros(n), "photons": np.ones(n), "sigma_x_nm": rr.uniform(3, 30, n),
                   "sigma_y_nm": rr.uniform(3, 30, n)})
    for name, fn in (("render histogram", render_histogram), ("render gaussian (own sigma, levels 10 % apart)", render_gaussian)):
        t0 = time.perf_counter()
        img = fn(tr, px_size_nm=10.0)
        dt = time.perf_counter() - t0
        rows.append((name, f"{n:,} locs", dt, f"{img.image.shape[1]} x {img.image.shape[0]} px of 10 nm"))
        out["results"][name] = {"n": n, "seconds": dt, "shape": list(img.image.shape)}
    t0 = time.perf_counter()
    f = frc(tr[: 1_000_000], px_size_nm=10.0)
    dt = time.perf_counter() - t0
    rows.append(("frc (10 nm px, 4001^2)", "1,000,000 locs", dt, f"{f.image_px if hasattr(f, 'image_px') else f.info['image_px']} px side"))
    out["results"]["frc"] = {"n": 1_000_000, "seconds": dt}

    _report(rows, out, args.json)


def _report(rows, out, json_path) -> None:
    print(f"{'step':<50} {'size':>16} {'seconds':>9}  notes")
    for name, size, sec, note in rows:
        print(f"{name:<50} {size:>16} {sec:>9.2f}  {note}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(out, fh, indent=2, default=float)


if __name__ == "__main__":
    main()
