"""The MLE fitter's accuracy bar (issue 5) on simulated movies at 0.05 emitters/µm².

    python bench/mle_bars.py [--case 2d 3d biplane] [--frames-3d 12000] [--roi 0] [--out bench/out/mle_bars.json]

Uses the helpers of ``tests/test_mle_movie.py`` (``_simulate_all``, ``_scores``: same movies, seeds, matching,
isolation and LLR filter, reference bound :func:`plexloc.evaluate.crlb.crlb` at the true parameters).
Cases: ``2d`` (examples/2d_gaussian.yaml, flux 1,000-10,000, 2,500 frames, seed 11), ``3d``
(examples/3d_astigmatic.yaml, seed 12, ``--frames-3d`` frames), ``biplane`` (examples/biplane.yaml,
1,500 frames, seed 16). For 3D cases the axial ratio is also broken down by the true per-frame
photons. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from plexloc.mle import MLEFitter, fit_movie  # noqa: E402
from test_mle_movie import _scores, _simulate_all  # noqa: E402

CASES = {
    "2d": dict(name="2d_gaussian.yaml", frames=2500, seed=11, photons=(1000.0, 10000.0), dim=2, n_params=4),
    "3d": dict(name="3d_astigmatic.yaml", frames=12000, seed=12, photons=None, dim=3, n_params=5),
    "biplane": dict(name="biplane.yaml", frames=1500, seed=16, photons=None, dim=3, n_params=6),
}


def run_case(case: str, frames: int, roi: int | None, tmp: Path, dump: Path | None = None) -> dict:
    c = CASES[case]
    cfg, sim, truth, paths, everyone = _simulate_all(c["name"], frames, tmp, seed=c["seed"], photons=c["photons"])
    opts = {"roi_px": roi} if roi else {}
    t0 = time.perf_counter()
    locs = fit_movie(paths if sim.n_channels > 1 else paths[0], cfg, batch_frames=1000, **opts)
    secs = time.perf_counter() - t0
    fitter = MLEFitter(cfg, **opts)
    s = _scores(sim, truth, locs, dim=c["dim"], roi_px=fitter.roi_px, n_params=c["n_params"], fov_nm=sim.fov_nm, detail=True,
               everyone=everyone)
    if c["dim"] == 3:  # RMSE_z / CRLB_z of the kept pairs by their true per-frame photons
        bins = {}
        for lo, hi in ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8000), (8000, 1e9)):
            k = (s["photons"] >= lo) & (s["photons"] < hi)
            if k.sum() > 20:
                bins[f"{lo:g}-{hi:g}"] = {"n": int(k.sum()), "ratio_z": float(np.sqrt(np.mean(s["d_z"][k] ** 2) / np.mean(s["crlb_z"][k] ** 2)))}
        s["z_by_photons"] = bins
    if dump is not None:
        np.savez(dump, **{k: v for k, v in s.items() if isinstance(v, np.ndarray)})
    s = {k: v for k, v in s.items() if not isinstance(v, np.ndarray)}
    s.update(case=case, frames=frames, roi_px=fitter.roi_px, fit_s=secs)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--frames-3d", type=int, default=12000)
    ap.add_argument("--roi", type=int, default=0, help="fitting window (0: the fitter's default)")
    ap.add_argument("--dump", action="store_true", help="also write the kept pairs' errors and bounds (OUT_<case>.npz)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mle_bars.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mle_bars_") as tmp:
        for case in args.case:
            frames = args.frames_3d if case == "3d" else CASES[case]["frames"]
            d = Path(tmp) / case
            d.mkdir()
            rows.append(run_case(case, frames, args.roi or None, d, args.out.with_name(f"{args.out.stem}_{case}.npz") if args.dump else None))
            r = rows[-1]
            ratios = " / ".join(f"{r.get(f'ratio_{a}', float('nan')):.3f}" for a in "xyz")
            biases = " / ".join(f"{r.get(f'bias_{a}', float('nan')):.2f}" for a in "xyz")
            print(f"| {case} | {r['frames']} | {r['roi_px']} | {r['n']} | {ratios} | {biases} | {r['jaccard']:.1f} | {r['fit_s']:.0f} s |", flush=True)
            if "z_by_photons" in r:
                print("   z ratio by photons:", {k: round(v["ratio_z"], 3) for k, v in r["z_by_photons"].items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
