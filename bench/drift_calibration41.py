"""Is the z drift's ``z_uncertainty_nm`` calibrated (and RCC's lateral ``uncertainty_nm`` on 3D tables)? Reported
uncertainty against the actual error on simulated 3D tables (session 41; modelled on ``bench/drift_calibration40.py``).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration41.py \
        --out bench/drift_calibration41.json
    # the code before session 41 (a worktree of that commit), the same tables:
    PYTHONPATH=/tmp/wt_h1/src OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration41.py \
        --out bench/drift_calibration41_before.json
    # both side by side (no run):
    .venv/bin/python bench/drift_calibration41.py --out bench/drift_calibration41.json \
        --before bench/drift_calibration41_before.json --summary-only
    # COMET (its lateral curve, the same z pairs), 9 tables of 2,000 rows, new code and old (about 1.5 min each):
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration41.py --engines comet --rows 2000 \
        --seeds 1 --e39-seeds 0 --out bench/drift_calibration41_comet.json
    PYTHONPATH=/tmp/wt_h1/src OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration41.py \
        --engines comet --rows 2000 --seeds 1 --e39-seeds 0 --out bench/drift_calibration41_comet_before.json

(RCC: about 1 minute each on one thread.)

Tables: molecules on a 3D structure (``structure_points(..., z_range_nm=(-400, 400))``: ``lines`` (filaments between
two random depths), ``clusters`` (30 nm sigma around a random depth) or ``uniform`` (anywhere in the 800 nm)), a 10 um
field, 5 on-events per molecule of 2.5 frames on average, precision 10 nm laterally and 40 nm in z (an astigmatic
fit), and a drift, lateral and axial: ``linear`` (0 -> (100, -60) nm, z 0 -> 40 nm), ``wobble`` (``wobbly_drift``,
about 70 nm; z 0 -> 30 nm plus a 15 nm sine of 1.1 periods) or ``settling`` (``settling_drift`` tau 0.15; z settles by
-50 nm with the same time constant). Sizes (rows asked: frames): 500: 1,000, 1,000: 1,000, 2,000: 2,000, 5,000: 3,000,
10,000: 5,000, 20,000: 8,000; 10 windows; seeds per case: 4 at 500 and 1,000 rows, 3 at 2,000 and 5,000, 2 above
(``--seeds``). Besides (``e39``, summarized apart; ``--e39-seeds``, 6): ``bench/drift_engines39.py``'s 3D lines (a
lateral wobble, z 0 -> 40 nm; the tables of session 40's 3D figures) up to 10,000 rows.

The engine: RCC (``--engines rcc,comet`` adds COMET, whose z comes from the same pairs; minutes a table), with the
CLI's options (10 windows, max_drift_nm 300, 20 nm pixels, uncertainty on). Per table: ``z_nm`` (actual z error,
``drift_error_rms(axes=(2,))``), ``z_reported_nm`` (``info["z_uncertainty_nm"]``), ``z_ratio``; the same laterally
(``xy_nm``, ``reported_nm``, ``ratio``); ``z_from`` (``info["z_uncertainty_from"]``, absent before session 41), the
flags and the seconds. Summary per engine and size: geometric mean and range of the z ratio and of the lateral ratio,
the share within 0.7-1.4x, the z flags.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

FOV_NM = 10_000.0
EVENTS = 5
MEAN_ON = 2.5
SIZES = {500: 1000, 1000: 1000, 2000: 2000, 5000: 3000, 10000: 5000, 20000: 8000}
SEEDS = {500: 4, 1000: 4, 2000: 3, 5000: 3, 10000: 2, 20000: 2}
STRUCTURES = ("lines", "clusters", "uniform")
DRIFTS = ("linear", "wobble", "settling")
BAND = (0.7, 1.4)


def truth_of(kind: str, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    from plexloc.post.synthetic import linear_drift, settling_drift, wobbly_drift

    t = np.linspace(0.0, 1.0, n_frames)
    if kind == "linear":
        return linear_drift(n_frames, (100.0, -60.0, 40.0))
    if kind == "wobble":
        d = wobbly_drift(n_frames, 70.0, rng=rng)
        phase = rng.uniform(0, 2 * np.pi)
        d[:, 2] = 30.0 * t + 15.0 * (np.sin(2 * np.pi * 1.1 * t + phase) - np.sin(phase))
        return d
    if kind == "settling":
        d = settling_drift(n_frames, 0.15)
        d[:, 2] = -50.0 * (1.0 - np.exp(-t / 0.15))
        return d
    raise ValueError(kind)


def case_table(structure: str, drift: str, rows: int, seed: int):
    from plexloc.post.synthetic import blinking_table, structure_points
    from plexloc.table import LocTable

    if structure == "e39":  # bench/drift_engines39.py's (and drift_calibration40.py's) 3D lines, its own drift
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import drift_engines39 as e39

        e39.SIZES.setdefault(300, 1000)  # as drift_calibration40.py
        e39.SIZES.setdefault(500, 1000)
        return e39.case_table("3d_lines", "wobble", rows, seed)
    n_frames = SIZES[rows]
    rng = np.random.default_rng([seed, rows, zlib.crc32(f"3d/{structure}/{drift}".encode())])
    truth = truth_of(drift, n_frames, rng)
    n_mol = max(10, int(round(rows / (EVENTS * MEAN_ON))))
    mol = structure_points(structure, n_mol, fov_nm=FOV_NM, rng=rng, z_range_nm=(-400.0, 400.0))
    t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=EVENTS,
                       mean_on_frames=MEAN_ON, precision_nm=10.0, precision_z_nm=40.0)
    return LocTable({c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), truth


def run_one(structure: str, drift: str, rows: int, seed: int, engine: str) -> dict:
    from plexloc.errors import InputError
    from plexloc.post.drift import COMET_MAX_PAIRS, UnreliableDriftWarning, drift_error_rms, estimate_drift

    table, truth = case_table(structure, drift, rows, seed)
    opts = (dict(max_pairs=COMET_MAX_PAIRS, max_drift_nm=300.0, n_segments=10, split_half=True) if engine == "comet"
            else dict(max_drift_nm=300.0, n_segments=10, render_px_nm=20.0, device="cpu", split_half=True))
    row = {"structure": structure, "drift": drift, "rows_asked": rows, "seed": seed, "engine": engine,
           "rows": len(table), "frames": SIZES[rows]}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreliableDriftWarning)
        try:
            res = estimate_drift(table, engine=engine, **opts)
        except InputError as err:
            row.update(seconds=time.perf_counter() - t0, error=str(err)[:200])
            return row
    row["seconds"] = time.perf_counter() - t0
    d, info = res.drift_nm, res.info
    true = truth[res.frames]
    row["xy_nm"] = drift_error_rms(d, true)
    row["none_nm"] = drift_error_rms(np.zeros_like(d), true)
    row["reported_nm"] = info.get("uncertainty_nm")
    if row["reported_nm"] is not None and row["xy_nm"] > 0:
        row["ratio"] = row["reported_nm"] / row["xy_nm"]
    row["unreliable"] = bool(info.get("unreliable", False))
    row["z_nm"] = drift_error_rms(d, true, axes=(2,))
    row["z_none_nm"] = drift_error_rms(np.zeros_like(d), true, axes=(2,))
    row["z_reported_nm"] = info.get("z_uncertainty_nm")
    if row["z_reported_nm"] is not None and row["z_nm"] > 0:
        row["z_ratio"] = row["z_reported_nm"] / row["z_nm"]
    row["z_unreliable"] = bool(info.get("z_unreliable", False))
    row["z_hurts"] = bool(row["z_nm"] > row["z_none_nm"])
    for k in ("z_uncertainty_from", "z_pairs", "z_pair_spread_nm", "z_noise_nm", "z_interpolation_error_nm",
              "z_pair_residual_ratio", "z_half_difference_nm", "pair_residual_ratio", "noise_nm",
              "interpolation_error_nm", "events", "pairs_used"):
        if k in info:
            row[k] = info[k]
    row["warnings"] = [str(w.message)[:160] for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    return row


def key(r: dict) -> tuple:
    return (r["structure"], r["drift"], r["rows_asked"], r["seed"], r["engine"])


def grid(args) -> list[tuple]:
    cases = [(s, d, n, seed) for n in args.rows for s in args.structures for d in args.drifts
             for seed in range(args.seeds or SEEDS[n])]
    return cases + [("e39", "wobble", n, seed) for n in args.rows if n <= 10000 for seed in range(args.e39_seeds)]


def _gm(v):
    v = [x for x in v if x and np.isfinite(x)]
    return float(np.exp(np.mean(np.log(v)))) if v else None


def summary(rows: list[dict], label: str = "") -> list[dict]:
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["engine"], r["rows_asked"], r["structure"] == "e39"), []).append(r)
    out = []
    if label:
        print(f"\n== {label}")
    print(f"{'engine':6} {'rows':>6} {'e39':>3} {'n':>3} | {'z rep':>6} {'z act':>6} {'z ratio gm':>10} {'range':>11} "
          f"{'in band':>7} {'z flag':>6} | {'xy rep':>6} {'xy act':>6} {'xy ratio gm':>11} {'range':>11} "
          f"{'in band':>7}")
    for (eng, n, e39), rs in sorted(by.items()):
        ok = [r for r in rs if "z_nm" in r]
        zr = [r["z_ratio"] for r in ok if r.get("z_ratio") and np.isfinite(r["z_ratio"])]
        xr = [r["ratio"] for r in ok if r.get("ratio") and np.isfinite(r["ratio"])]

        def rms(k):
            v = [r[k] for r in ok if r.get(k) is not None and np.isfinite(r[k])]
            return float(np.sqrt(np.mean(np.square(v)))) if v else None

        rec = {"engine": eng, "rows_asked": n, "e39": e39, "tables": len(rs), "z_reported_nm_rms": rms("z_reported_nm"),
               "z_actual_nm_rms": rms("z_nm"), "z_ratio_gmean": _gm(zr),
               "z_ratio_range": [float(min(zr)), float(max(zr))] if zr else None,
               "z_in_band": int(sum(BAND[0] <= x <= BAND[1] for x in zr)), "z_flagged": int(sum(r.get(
                   "z_unreliable", False) for r in ok)),
               "z_flagged_but_helps": int(sum(r.get("z_unreliable", False) and not r["z_hurts"] for r in ok)),
               "z_unflagged_but_hurts": int(sum(not r.get("z_unreliable", False) and r["z_hurts"] for r in ok)),
               "xy_reported_nm_rms": rms("reported_nm"), "xy_actual_nm_rms": rms("xy_nm"), "xy_ratio_gmean": _gm(xr),
               "xy_ratio_range": [float(min(xr)), float(max(xr))] if xr else None,
               "xy_in_band": int(sum(BAND[0] <= x <= BAND[1] for x in xr)),
               "seconds_mean": float(np.mean([r["seconds"] for r in rs]))}
        zrr = rec["z_ratio_range"] or [np.nan, np.nan]
        xrr = rec["xy_ratio_range"] or [np.nan, np.nan]
        print(f"{eng:6} {n:6d} {'yes' if e39 else 'no':>3} {len(rs):3d} | {rec['z_reported_nm_rms'] or np.nan:6.2f} "
              f"{rec['z_actual_nm_rms'] or np.nan:6.2f} {rec['z_ratio_gmean'] or np.nan:10.2f} "
              f"{zrr[0]:5.2f}-{zrr[1]:<5.2f} {rec['z_in_band']:3d}/{len(zr):<3d} {rec['z_flagged']:6d} | "
              f"{rec['xy_reported_nm_rms'] or np.nan:6.2f} {rec['xy_actual_nm_rms'] or np.nan:6.2f} "
              f"{rec['xy_ratio_gmean'] or np.nan:11.2f} {xrr[0]:5.2f}-{xrr[1]:<5.2f} "
              f"{rec['xy_in_band']:3d}/{len(xr):<3d}")
        out.append(rec)
    return out


def compare(before: list[dict], after: list[dict]) -> list[dict]:
    b = {(r["engine"], r["rows_asked"], r.get("e39", False)): r for r in before}
    out = []
    print("\n== before -> after (geometric mean (range) of reported / actual)")
    print(f"{'engine':6} {'rows':>6} {'e39':>3} {'n':>3} | {'z before':>20} {'z after':>20} {'in band':>9} | "
          f"{'xy before':>20} {'xy after':>20} {'in band':>9}")

    def fmt(x, k):
        return "-" if not x.get(k + "_range") else (f"{x[k + '_gmean']:.2f} ({x[k + '_range'][0]:.2f}-"
                                                    f"{x[k + '_range'][1]:.2f})")

    for r in after:
        k = (r["engine"], r["rows_asked"], r.get("e39", False))
        if k not in b:
            continue
        o = b[k]
        print(f"{k[0]:6} {k[1]:6d} {'yes' if k[2] else 'no':>3} {r['tables']:3d} | {fmt(o, 'z_ratio'):>20} "
              f"{fmt(r, 'z_ratio'):>20} "
              f"{o['z_in_band']:>3} -> {r['z_in_band']:<3} | {fmt(o, 'xy_ratio'):>20} {fmt(r, 'xy_ratio'):>20} "
              f"{o['xy_in_band']:>3} -> {r['xy_in_band']:<3}")
        out.append({"key": list(k), "before": o, "after": r})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(str(n) for n in SIZES))
    ap.add_argument("--structures", default=",".join(STRUCTURES))
    ap.add_argument("--drifts", default=",".join(DRIFTS))
    ap.add_argument("--engines", default="rcc")
    ap.add_argument("--seeds", type=int, default=0, help="seeds per case (default: 4 up to 1,000 rows, 3 to 5,000, 2 "
                                                          "above)")
    ap.add_argument("--e39-seeds", type=int, default=6, help="seeds of drift_engines39.py's 3D lines (a wobble "
                    "laterally, z 0 -> 40 nm; the tables of session 40's 3D figures) per size up to 10,000 rows")
    ap.add_argument("--out", type=Path, default=Path("bench/drift_calibration41.json"))
    ap.add_argument("--before", type=Path, default=None, help="a JSON of this script on the old code, to compare")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args(argv)
    args.rows = [int(v) for v in args.rows.split(",")]
    args.structures = args.structures.split(",")
    args.drifts = args.drifts.split(",")
    rows: list[dict] = []
    if (args.resume or args.summary_only) and args.out.exists():
        rows = json.loads(args.out.read_text())["rows"]
    import plexloc.post.drift as drift_module

    code = str(Path(drift_module.__file__).resolve())
    if not args.summary_only:
        import torch

        torch.set_num_threads(1)
        done = {key(r) for r in rows}
        t0 = time.perf_counter()
        for case in grid(args):
            for engine in args.engines.split(","):
                if (*case, engine) in done:
                    continue
                r = run_one(*case, engine)
                rows.append(r)
                print(f"{engine:5s} {case[0]:9s} {case[1]:8s} {r['rows']:6d} rows seed {case[3]}: z actual "
                      f"{r.get('z_nm', np.nan):6.2f} reported {r.get('z_reported_nm') or np.nan:6.2f} "
                      f"({r.get('z_uncertainty_from', '-')}) | xy actual {r.get('xy_nm', np.nan):6.2f} reported "
                      f"{r.get('reported_nm') or np.nan:6.2f}; {r['seconds']:.1f} s", flush=True)
                args.out.write_text(json.dumps({"rows": rows}, indent=1))
        print(f"{time.perf_counter() - t0:.0f} s")
    result = {"code": code, "summary": summary(rows, label=str(args.out)), "rows": rows}
    if args.before is not None:
        before = json.loads(args.before.read_text())
        result["compare"] = compare(before["summary"], result["summary"])
    args.out.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
