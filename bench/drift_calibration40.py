"""Is the drift engines' ``uncertainty_nm`` calibrated? Reported uncertainty against the actual error, and the
``unreliable`` flag against the truth, on the tables of ``bench/drift_engines39.py`` (its generator, imported).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration40.py \
        --out bench/drift_calibration40.json
    # the code before session 40 (a worktree of that commit), the same tables:
    PYTHONPATH=/tmp/wt_drift/src OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_calibration40.py \
        --out bench/drift_calibration40_before.json
    # both side by side (no run):
    .venv/bin/python bench/drift_calibration40.py --out bench/drift_calibration40.json \
        --before bench/drift_calibration40_before.json --summary-only

The default grid is a reduced one of session 39's (168 tables there): 1,000 and 2,000 rows (3 seeds), 5,000 (2
seeds), 10,000 (1 seed, the wobble only) of lines, clusters and uniform molecules under a linear, wobble and settling
drift; 3D lines with a wobble up to ``--max-3d-rows`` (5,000; 3 seeds at 1,000 and 2,000, 2 at 5,000). Nearly all the
time is COMET's: the session-40 run on the old code (bench/drift_calibration40_before.json) took about 15 minutes on
the shared 2-core CPU while other jobs ran (COMET 2-90 s a table); its 3D 10,000-row COMET case was cut by a timeout.
``--rows``, ``--seeds``, ``--structures``, ``--drifts``, ``--engines``, ``--engines rcc`` (about 1 minute),
``--no-3d`` change it. ``--rows`` also takes 300 and 500 (over 1,000 frames: 24 and 40 molecules, 30 and 50 rows a
window, where some corrections hurt), and ``--noise-rows 1000,2000`` adds tables without any structure (every
localization a molecule of its own, 2 seeds a drift; grouped apart, ``N``), where no correction can help: the
flag's real alarms. Session 40's RCC runs (RCC's uncertainty from the whole table, the flag of
``drift.drift_unreliable``), on the old code and on the new, the same tables:

    PYTHONPATH=/tmp/wt_rcc/src OMP_NUM_THREADS=1 .venv/bin/python bench/drift_calibration40.py --engines rcc \
        --rows 300,500,1000,2000,5000,10000 --noise-rows 1000,2000 --out bench/drift_calibration40_rcc_before.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/drift_calibration40.py --engines rcc \
        --rows 300,500,1000,2000,5000,10000 --noise-rows 1000,2000 --out bench/drift_calibration40_rcc.json \
        --before bench/drift_calibration40_rcc_before.json

(about 30 s and 50 s on one thread). COMET's flag (its uncertainty unchanged) on the sparse and structure-free tables,
old code and new: ``--engines comet --rows 300,500 --noise-rows 1000,2000 --no-3d``
(bench/drift_calibration40_comet_sparse_before.json, bench/drift_calibration40_comet_sparse.json; about 5 minutes
each). ``ideal_flag`` and the false alarms / misses are each code's own rule, so
across the two they differ in what they count; ``flag+helps`` (flagged though the correction helps) and
``ok+hurts`` (not flagged though it hurts) compare the flags with the truth alike.

Per table and engine (``drift_engines39.run_one``: the CLI's options, split-half test on): ``rows`` and
``molecules`` (molecules with at least one localization), ``xy_nm`` (actual error, ``drift_error_rms``),
``reported_nm`` (``info["uncertainty_nm"]``), ``ratio`` = reported / actual, ``none_nm`` (the drift's own RMS: the
error left without correction), ``unreliable`` (the engine's flag), ``ideal_flag`` (the engine's own rule applied to
the *actual* error instead of the reported one: what a perfectly calibrated uncertainty would flag) and ``hurts``
(the correction leaves more error than no correction: ``xy_nm > none_nm``). Summary per engine, rows asked and
dimension: the geometric mean and range of the ratio, the share of tables within 0.7-1.4x, the flags, false alarms
(flagged where ``ideal_flag`` is not) and misses (not flagged where it is), and flagged-but-helps / not-flagged-but-
hurts. 3D: ``z_ratio`` = ``z_uncertainty_nm`` / z error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import drift_engines39 as e39  # noqa: E402

BAND = (0.7, 1.4)
DEFAULT_SEEDS = {300: 3, 500: 3, 1000: 3, 2000: 3, 5000: 2, 10000: 1}
# sizes below drift_engines39's (session 40's threshold check): 300 and 500 rows over 1,000 frames (24 and 40
# molecules, 30 and 50 rows a window), where some corrections hurt
e39.SIZES.setdefault(300, 1000)
e39.SIZES.setdefault(500, 1000)
_case_table = e39.case_table


def case_table(structure: str, drift: str, rows: int, seed: int, *, truth_columns: bool = False):
    """drift_engines39's tables, and ``noise``: no structure at all, every localization a molecule of its own
    (uniform over the 10 um field and the movie, precision 10 nm, the same drifts), where no correction can help:
    the flag's real alarms."""
    if structure != "noise":
        return _case_table(structure, drift, rows, seed, truth_columns=truth_columns)
    import zlib

    from plexloc.table import LocTable

    n_frames = e39.SIZES[rows]
    rng = np.random.default_rng([seed, rows, zlib.crc32(f"noise/{drift}".encode())])
    truth = e39.truth_of(drift, n_frames, rng)
    frame = np.sort(rng.integers(0, n_frames, rows))
    xy = rng.uniform(0, e39.FOV_NM, (rows, 2)) + truth[frame, :2] + rng.normal(0, 10.0, (rows, 2))
    cols = {"frame": frame, "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(rows), "photons": np.full(rows, 2e3)}
    if truth_columns:
        cols["id"] = np.arange(rows)
    return LocTable(cols), truth


e39.case_table = case_table  # run_one's tables


def ideal_flag(engine: str, actual_nm: float, curve_rms_nm: float, render_px_nm: float = 20.0) -> bool:
    """The engine's unreliability rule applied to the actual error (the code under test: its rule, or the one before
    session 40, which had no :func:`plexloc.post.drift.drift_unreliable`)."""
    from plexloc.post import drift

    rule = getattr(drift, "drift_unreliable", None)
    if rule is not None:
        import inspect

        params = inspect.signature(rule).parameters  # its arguments changed: session 40's, 40's review, 41's
        if "engine" not in params:
            return bool(rule(actual_nm, curve_rms_nm))
        if "render_px_nm" not in params:
            return bool(rule(engine, actual_nm, curve_rms_nm))
        return bool(rule(engine, actual_nm, curve_rms_nm, render_px_nm=render_px_nm))
    limit = max(render_px_nm, drift.RCC_MAX_UNCERTAINTY_NM) if engine == "rcc" else drift.COMET_MAX_UNCERTAINTY_NM
    return not actual_nm <= limit


def run_case(structure: str, drift: str, rows: int, seed: int, engine: str) -> dict:
    row = e39.run_one(structure, drift, rows, seed, engine)
    full, _ = case_table(structure, drift, rows, seed, truth_columns=True)
    row["molecules"] = int(len(np.unique(full["id"])))
    row["is_3d"] = structure == "3d_lines"
    if "xy_nm" in row:
        row["ideal_flag"] = ideal_flag(engine, row["xy_nm"], row["curve_rms_nm"])
        row["hurts"] = bool(row["xy_nm"] > row["none_nm"])
        if row.get("z_reported_nm") is not None and row.get("z_nm"):
            row["z_ratio"] = row["z_reported_nm"] / row["z_nm"]
    return row


def grid(args) -> list[tuple]:
    cases = []
    for rows in args.rows:
        seeds = args.seeds if args.seeds else DEFAULT_SEEDS.get(rows, 1)
        drifts = args.drifts if rows <= 5000 else [d for d in args.drifts if d == "wobble"] or args.drifts[:1]
        for structure in args.structures:
            for drift in drifts:
                for seed in range(seeds):
                    cases.append((structure, drift, rows, seed))
        if args.with_3d and rows <= args.max_3d_rows:
            for seed in range(seeds):
                cases.append(("3d_lines", "wobble", rows, seed))
    for rows in args.noise_rows:
        for drift in args.drifts:
            for seed in range(2):
                cases.append(("noise", drift, rows, seed))
    return cases


def _gm(v):
    v = [x for x in v if x and np.isfinite(x)]
    return float(np.exp(np.mean(np.log(v)))) if v else None


def summary(rows: list[dict], label: str = "") -> list[dict]:
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["engine"], r["structure"] == "noise", r["rows_asked"],
                       bool(r.get("is_3d", r["structure"] == "3d_lines"))), []).append(r)
    out = []
    if label:
        print(f"\n== {label}")
    print(f"{'engine':6} {'rows':>6} {'3D':>3} {'n':>3} {'locs':>6} {'mols':>5} | {'reported':>8} {'actual':>7} "
          f"{'ratio gm':>8} {'range':>11} {'in band':>7} | {'flag':>4} {'f.alarm':>7} {'miss':>4} | "
          f"{'flag+helps':>10} {'ok+hurts':>8} | {'z ratio':>7}")
    for (eng, noise, n, is3d), rs in sorted(by.items()):
        ok = [r for r in rs if "xy_nm" in r]
        rat = [r["ratio"] for r in ok if r.get("ratio")]
        rec = {"engine": eng, "rows_asked": n, "is_3d": is3d, "noise": noise, "tables": len(rs),
               "rows_mean": float(np.mean([r["rows"] for r in rs])),
               "molecules_mean": float(np.mean([r.get("molecules", np.nan) for r in rs])),
               "reported_nm_rms": float(np.sqrt(np.mean([r["reported_nm"] ** 2 for r in ok
                                                         if r.get("reported_nm") is not None
                                                         and np.isfinite(r["reported_nm"])]))) if ok else None,
               "actual_nm_rms": float(np.sqrt(np.mean([r["xy_nm"] ** 2 for r in ok]))) if ok else None,
               "ratio_gmean": _gm(rat),
               "ratio_range": [float(min(rat)), float(max(rat))] if rat else None,
               "in_band": int(sum(BAND[0] <= x <= BAND[1] for x in rat)),
               "flagged": int(sum(bool(r.get("unreliable")) for r in rs)),
               "false_alarms": int(sum(bool(r.get("unreliable")) and not r["ideal_flag"] for r in ok)),
               "misses": int(sum(not r.get("unreliable") and r["ideal_flag"] for r in ok)),
               "flagged_but_helps": int(sum(bool(r.get("unreliable")) and not r["hurts"] for r in ok)),
               "unflagged_but_hurts": int(sum(not r.get("unreliable") and r["hurts"] for r in ok)),
               "z_ratio_gmean": _gm([r.get("z_ratio") for r in ok])}
        rr = rec["ratio_range"] or [np.nan, np.nan]
        print(f"{eng:6} {n:6d} {'N' if noise else 'yes' if is3d else 'no':>3} {len(rs):3d} {rec['rows_mean']:6.0f} "
              f"{rec['molecules_mean']:5.0f} | {rec['reported_nm_rms'] or np.nan:8.2f} {rec['actual_nm_rms'] or np.nan:7.2f} "
              f"{rec['ratio_gmean'] or np.nan:8.2f} {rr[0]:5.2f}-{rr[1]:<5.2f} {rec['in_band']:3d}/{len(rat):<3d} | "
              f"{rec['flagged']:4d} {rec['false_alarms']:7d} {rec['misses']:4d} | {rec['flagged_but_helps']:10d} "
              f"{rec['unflagged_but_hurts']:8d} | {rec['z_ratio_gmean'] or np.nan:7.2f}")
        out.append(rec)
    for eng in sorted({r["engine"] for r in rows}):
        ok = [r for r in rows if r["engine"] == eng and r.get("ratio") and r["structure"] != "noise"]
        rat = np.array([r["ratio"] for r in ok])
        in_band = int(np.sum((rat >= BAND[0]) & (rat <= BAND[1])))
        print(f"{eng}: all {len(rat)} tables with a structure: ratio gm {_gm(rat):.2f}, {in_band}"
              f" in {BAND[0]}-{BAND[1]}, flagged {sum(bool(r.get('unreliable')) for r in ok)}, false alarms "
              f"{sum(bool(r.get('unreliable')) and not r['ideal_flag'] for r in ok)}, misses "
              f"{sum(not r.get('unreliable') and r['ideal_flag'] for r in ok)}, flagged but helps "
              f"{sum(bool(r.get('unreliable')) and not r['hurts'] for r in ok)}, unflagged but hurts "
              f"{sum(not r.get('unreliable') and r['hurts'] for r in ok)}")
    return out


def compare(before: list[dict], after: list[dict]) -> list[dict]:
    """Before/after per engine, rows asked and dimension: ratio gm (range), in band, flags (false alarms, misses)."""
    b = {(r["engine"], r["rows_asked"], r["is_3d"], r.get("noise", False)): r for r in before}
    out = []
    print("\n== before -> after")
    print(f"{'engine':6} {'rows':>6} {'3D':>3} {'n':>3} | {'ratio gm (range) before':>24} {'after':>20} | "
          f"{'in band':>9} | {'flags (false alarm/miss) before':>30} {'after':>10} | {'flag+helps':>10}")
    for r in after:
        k = (r["engine"], r["rows_asked"], r["is_3d"], r.get("noise", False))
        if k not in b:
            continue
        o = b[k]

        def rng(x):
            if not x["ratio_range"]:
                return "-"
            return f"{x['ratio_gmean']:.2f} ({x['ratio_range'][0]:.2f}-{x['ratio_range'][1]:.2f})"

        kind = "N" if k[3] else "yes" if k[2] else "no"
        print(f"{k[0]:6} {k[1]:6d} {kind:>3} {r['tables']:3d} | {rng(o):>24} {rng(r):>20} | "
              f"{o['in_band']:>3} -> {r['in_band']:<3} | {o['flagged']:>4} ({o['false_alarms']}/{o['misses']}) "
              f"{'':>18} {r['flagged']:>4} ({r['false_alarms']}/{r['misses']}) | {o['flagged_but_helps']} -> "
              f"{r['flagged_but_helps']}")
        out.append({"key": list(k), "before": o, "after": r})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000,2000,5000,10000", help="rows asked (also 300, 500: 1,000 frames)")
    ap.add_argument("--noise-rows", default="", help="structure-free tables (every localization a molecule of its "
                    "own; 2 seeds a drift) of these sizes, e.g. 1000,2000: where the flag must fire")
    ap.add_argument("--structures", default=",".join(e39.STRUCTURES))
    ap.add_argument("--drifts", default=",".join(e39.DRIFTS))
    ap.add_argument("--engines", default=",".join(e39.ENGINES))
    ap.add_argument("--seeds", type=int, default=0, help="seeds per case (default: 3 up to 2,000 rows, 2 at 5,000, 1 "
                                                          "above)")
    ap.add_argument("--no-3d", dest="with_3d", action="store_false")
    ap.add_argument("--max-3d-rows", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("bench/drift_calibration40.json"))
    ap.add_argument("--before", type=Path, default=None, help="a JSON of this script on the old code, to compare")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args(argv)
    args.rows = [int(v) for v in args.rows.split(",")]
    args.noise_rows = [int(v) for v in args.noise_rows.split(",") if v]
    args.structures = [v for v in args.structures.split(",") if v and v != "none"]
    args.drifts = args.drifts.split(",")
    rows: list[dict] = []
    if (args.resume or args.summary_only) and args.out.exists():
        rows = json.loads(args.out.read_text())["rows"]
    import plexloc.post.drift as drift_module

    code = str(Path(drift_module.__file__).resolve())
    if not args.summary_only:
        import torch

        torch.set_num_threads(1)
        done = {e39.key(r) for r in rows}
        t0 = time.perf_counter()
        for case in grid(args):
            for engine in args.engines.split(","):
                if (*case, engine) in done:
                    continue
                r = run_case(*case, engine)
                rows.append(r)
                print(f"{engine:5s} {case[0]:9s} {case[1]:8s} {r['rows']:6d} rows {r['molecules']:5d} mol seed "
                      f"{case[3]}: actual {e39._fmt(r.get('xy_nm'))} reported {e39._fmt(r.get('reported_nm'))} "
                      f"(none {e39._fmt(r.get('none_nm'), 5, 1)}) {'FLAG' if r.get('unreliable') else 'ok  '}"
                      f"{' (ideal flag)' if r.get('ideal_flag') else ''}; {r['seconds']:.1f} s", flush=True)
                args.out.write_text(json.dumps({"rows": rows}, indent=1))
        print(f"{time.perf_counter() - t0:.0f} s")
    result = {"code": code, "summary": summary(rows, label=str(args.out)), "rows": rows}
    if args.before is not None:
        before = json.loads(args.before.read_text())
        result["compare"] = compare(before["summary"], result["summary"])
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
