"""COMET or RCC as the default drift engine: both engines, with the defaults ``plexloc drift`` / ``plexloc process``
give them, on the same simulated tables from sparse to dense, against the true drift.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py --rows 1000,2000,5000,10000 \
        --max-3d-rows 10000 --out bench/drift_engines39.json
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py --rows 50000 --drifts wobble \
        --no-3d --resume --out bench/drift_engines39.json
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py --rows 200000 --drifts wobble \
        --structures lines --no-3d --resume --out bench/drift_engines39.json
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py --rows 1000,2000 --seeds 6 \
        --no-3d --resume --out bench/drift_engines39.json
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py --rows 1000,2000,5000 \
        --structures none --seeds 6 --max-3d-rows 5000 --resume --out bench/drift_engines39.json \
        --figure bench/drift_engines39.png

(session 39: about 30 min on one thread of the shared 2-core CPU, nearly all of it COMET; 168 tables, each run by
both engines.)

(``--rows 2000,10000`` / ``--structures`` / ``--drifts`` / ``--seeds`` / ``--engines`` / ``--no-3d`` narrow the grid;
``--resume`` keeps the rows already in ``--out`` and runs the rest; ``--summary-only`` prints the table of ``--out``
again; ``--figure PNG`` draws the error against the rows per window.)

Every table: molecules on a structure (``plexloc.post.synthetic.structure_points``: ``lines``, ``clusters`` or
``uniform``, a 10 um field), 5 on-events per molecule of 2.5 frames on average (``blinking_table``), localization
precision 10 nm, and a drift: ``linear`` (0 -> (100, -60) nm), ``wobble`` (``wobbly_drift``, about 70 nm, linear +
slow sine) or ``settling`` (``settling_drift``, time constant 0.15 of the movie: 120/-70 nm, most of it in the first
two windows). Sizes: about 1,000 rows over 1,000 frames, 2,000 over 2,000, 5,000 over 3,000, 10,000 over 5,000,
50,000 over 10,000 and 200,000 over 20,000 (10 windows: 100 to 20,000 rows a window); the molecules are set for the size, the field stays (a sparse table
is a sparsely labelled or short acquisition). ``3d_lines``: lines through z -400..+400 nm, axial precision 40 nm, a
wobble laterally and 0 -> 40 nm in z.

Each engine runs as the CLI runs it (``cli/drift.py`` / ``workflow._drift``): 10 windows, ``max_drift_nm`` 300,
split-half test on; COMET with ``max_pairs=COMET_MAX_PAIRS`` and seed 0, RCC with 20 nm pixels on the CPU. One numba
and torch thread. Per row:

- ``xy_nm``: ``drift_error_rms`` (lateral RMS over the frames of estimated minus true drift after removing the
  constant offset); ``z_nm`` likewise for z (3D); ``none_nm``: the same for no correction (the truth's own RMS);
- ``reported_nm``: ``info["uncertainty_nm"]``, and ``ratio`` = reported / actual;
- ``unreliable``: the engine's flag (``info["unreliable"]``, with its UnreliableDriftWarning); ``plexloc process``
  then keeps the table uncorrected, so ``process_nm`` = ``none_nm`` where flagged, else ``xy_nm``;
- ``seconds``: the engine's wall time (the shared 2-core CPU: +-30 %).
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
#: rows asked for: frames of the movie
SIZES = {1000: 1000, 2000: 2000, 5000: 3000, 10000: 5000, 50000: 10000, 200000: 20000}
STRUCTURES = ("lines", "clusters", "uniform")
DRIFTS = ("linear", "wobble", "settling")
ENGINES = ("rcc", "comet")


def truth_of(kind: str, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    from plexloc.post.synthetic import linear_drift, settling_drift, wobbly_drift

    if kind == "linear":
        return linear_drift(n_frames, (100.0, -60.0, 0.0))
    if kind == "wobble":
        return wobbly_drift(n_frames, 70.0, rng=rng)
    if kind == "settling":
        return settling_drift(n_frames, 0.15)
    raise ValueError(kind)


def case_table(structure: str, drift: str, rows: int, seed: int, *, truth_columns: bool = False):
    """The table (frame, x_nm, y_nm, z_nm, photons) and the true drift per frame; with ``truth_columns`` the table
    keeps every column of ``blinking_table`` (``id``: the molecule, ...), the same rows
    (``bench/drift_calibration40.py``)."""
    from plexloc.post.synthetic import blinking_table, structure_points
    from plexloc.table import LocTable

    n_frames = SIZES[rows]
    rng = np.random.default_rng([seed, rows, zlib.crc32(f"{structure}/{drift}".encode())])
    truth = truth_of(drift, n_frames, rng)
    is3d = structure == "3d_lines"
    if is3d:
        truth[:, 2] = 40.0 * np.linspace(0.0, 1.0, n_frames)
    n_mol = max(10, int(round(rows / (EVENTS * MEAN_ON))))
    mol = structure_points("lines" if is3d else structure, n_mol, fov_nm=FOV_NM, rng=rng,
                           z_range_nm=(-400.0, 400.0) if is3d else None)
    t = blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=EVENTS,
                       mean_on_frames=MEAN_ON, precision_nm=10.0, precision_z_nm=40.0 if is3d else None)
    if truth_columns:
        return t, truth
    return LocTable({c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), truth


def run_one(structure: str, drift: str, rows: int, seed: int, engine: str) -> dict:
    from plexloc.errors import InputError
    from plexloc.post.drift import COMET_MAX_PAIRS, UnreliableDriftWarning, drift_error_rms, estimate_drift

    table, truth = case_table(structure, drift, rows, seed)
    opts = (dict(max_pairs=COMET_MAX_PAIRS, max_drift_nm=300.0, n_segments=10, split_half=True) if engine == "comet"
            else dict(max_drift_nm=300.0, n_segments=10, render_px_nm=20.0, device="cpu", split_half=True))
    row = {"structure": structure, "drift": drift, "rows_asked": rows, "seed": seed, "engine": engine,
           "rows": len(table), "frames": SIZES[rows], "rows_per_window": len(table) / 10}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreliableDriftWarning)
        try:
            res = estimate_drift(table, engine=engine, **opts)
        except InputError as err:
            row.update(seconds=time.perf_counter() - t0, error=str(err)[:200], unreliable=True)
            return row
    row["seconds"] = time.perf_counter() - t0
    f, d, info = res.frames, res.drift_nm, res.info
    true = truth[f]
    row["xy_nm"] = drift_error_rms(d, true)
    row["none_nm"] = drift_error_rms(np.zeros_like(d), true)
    row["curve_rms_nm"] = drift_error_rms(d, np.zeros_like(d))  # the estimate's own RMS about its mean
    row["reported_nm"] = info.get("uncertainty_nm")
    if row["reported_nm"] is not None and row["xy_nm"] > 0:
        row["ratio"] = row["reported_nm"] / row["xy_nm"]
    row["unreliable"] = bool(info.get("unreliable", False))
    row["process_nm"] = row["none_nm"] if row["unreliable"] else row["xy_nm"]
    if structure == "3d_lines":
        row["z_nm"] = drift_error_rms(d, true, axes=(2,))
        row["z_none_nm"] = drift_error_rms(np.zeros_like(d), true, axes=(2,))
        row["z_reported_nm"] = info.get("z_uncertainty_nm")
        row["z_unreliable"] = bool(info.get("z_unreliable", False))
    if "pairs_estimated" in info:
        row["comet_capped_locs_per_window"] = info.get("max_locs_per_segment")
    row["warnings"] = [str(w.message)[:200] for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    return row


def key(r: dict) -> tuple:
    return (r["structure"], r["drift"], r["rows_asked"], r["seed"], r["engine"])


def grid(args) -> list[tuple]:
    cases = []
    for rows in args.rows:
        for structure in args.structures:
            for drift in args.drifts:
                seeds = args.seeds if rows <= args.seeds_up_to else 1
                for seed in range(seeds):
                    cases.append((structure, drift, rows, seed))
    if args.with_3d:
        for rows in args.rows:
            if rows <= args.max_3d_rows:
                for seed in range(args.seeds if rows <= args.seeds_up_to else 1):
                    cases.append(("3d_lines", "wobble", rows, seed))
    return cases


def _fmt(v, w=6, p=2):
    return f"{'-':>{w}}" if v is None else f"{v:{w}.{p}f}"


def summary(rows: list[dict]) -> dict:
    """Per (rows asked, structure, drift): both engines' mean error, flags, ratio, seconds; printed as a table."""
    by: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        by.setdefault((r["rows_asked"], r["structure"], r["drift"]), {}).setdefault(r["engine"], []).append(r)
    out = []
    print(f"{'rows':>7} {'rows/win':>8} {'structure':9} {'drift':8} | {'RCC nm':>6} {'flag':>4} {'ratio':>5} {'s':>5} "
          f"| {'COMET':>6} {'flag':>4} {'ratio':>5} {'s':>6} | {'none':>5} | winner")
    for (n, s, dr), e in sorted(by.items()):
        rec = {"rows_asked": n, "structure": s, "drift": dr}
        cells = []
        for eng in ENGINES:
            rs = e.get(eng, [])
            ok = [r for r in rs if "xy_nm" in r]
            if not ok:
                cells.append(f"{'-':>6} {'-':>4} {'-':>5} {'-':>5}")
                continue
            xy = float(np.sqrt(np.mean([r["xy_nm"] ** 2 for r in ok])))
            rat = [r["ratio"] for r in ok if r.get("ratio")]
            gm = float(np.exp(np.mean(np.log(rat)))) if rat else None
            flags = sum(r["unreliable"] for r in rs)
            sec = float(np.mean([r["seconds"] for r in rs]))
            rec[eng] = {"xy_nm_rms": xy, "flagged": flags, "n": len(rs), "ratio_gmean": gm, "seconds": sec,
                        "process_nm_rms": float(np.sqrt(np.mean([r["process_nm"] ** 2 for r in ok]))),
                        "z_nm_rms": (float(np.sqrt(np.mean([r["z_nm"] ** 2 for r in ok])))
                                     if "z_nm" in ok[0] else None)}
            z = f" z{rec[eng]['z_nm_rms']:.1f}" if rec[eng]["z_nm_rms"] is not None else ""
            cells.append(f"{xy:6.2f} {flags}/{len(rs):<2} {_fmt(gm, 5)} {sec:5.1f}{z}")
        any_ok = [r for v in e.values() for r in v if "none_nm" in r]
        none = float(np.sqrt(np.mean([r["none_nm"] ** 2 for r in any_ok]))) if any_ok else float("nan")
        rec["none_nm_rms"] = none
        win = ""
        if "rcc" in rec and "comet" in rec:
            a, b = rec["rcc"]["xy_nm_rms"], rec["comet"]["xy_nm_rms"]
            win = "tie" if abs(a - b) <= 0.1 * max(a, b) else ("RCC" if a < b else "COMET")
            rec["winner"] = win
        rpw = np.mean([r["rows_per_window"] for v in e.values() for r in v])
        rec["rows_per_window"] = float(rpw)
        print(f"{n:7d} {rpw:8.0f} {s:9} {dr:8} | {cells[0]} | {cells[1]} | {none:5.1f} | {win}")
        out.append(rec)
    return {"cases": out, "by_size": by_size(rows)}


def by_size(rows: list[dict]) -> list[dict]:
    """Per rows asked, over every table run by both engines (2D and 3D apart): RMS error of each engine, the
    geometric mean of COMET / RCC error (paired by table), who is better by more than 10 %, the flags, the error
    ``plexloc process`` leaves (flagged: uncorrected), and the mean seconds."""
    pair: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if "xy_nm" in r or "error" in r:
            pair.setdefault((r["rows_asked"], r["structure"] == "3d_lines", r["structure"], r["drift"], r["seed"]),
                            {})[r["engine"]] = r
    out = []
    print(f"\n{'rows':>7} {'3D':>3} {'n':>3} | {'RCC rms':>7} {'COMET rms':>9} {'C/R gm':>6} | {'R better':>8} "
          f"{'C better':>8} | {'R flag':>6} {'C flag':>6} | {'process R':>9} {'process C':>9} | {'R s':>5} {'C s':>6}")
    for n, is3d in sorted({(k[0], k[1]) for k in pair}):
        both = [v for k, v in pair.items() if k[:2] == (n, is3d) and "xy_nm" in v.get("rcc", {})
                and "xy_nm" in v.get("comet", {})]
        if not both:
            continue
        r = np.array([v["rcc"]["xy_nm"] for v in both])
        c = np.array([v["comet"]["xy_nm"] for v in both])
        pr = np.array([v["rcc"]["process_nm"] for v in both])
        pc = np.array([v["comet"]["process_nm"] for v in both])

        def rms(a):
            return float(np.sqrt(np.mean(a**2)))

        rec = {"rows_asked": n, "is_3d": is3d, "tables": len(both), "rcc_xy_nm_rms": rms(r), "comet_xy_nm_rms": rms(c),
               "comet_over_rcc_gmean": float(np.exp(np.mean(np.log(c / r)))),
               "rcc_better": int(np.sum(r < c / 1.1)), "comet_better": int(np.sum(c < r / 1.1)),
               "rcc_max_nm": float(r.max()), "comet_max_nm": float(c.max()),
               "rcc_flagged": int(sum(v["rcc"]["unreliable"] for v in both)),
               "comet_flagged": int(sum(v["comet"]["unreliable"] for v in both)),
               "rcc_process_nm_rms": rms(pr), "comet_process_nm_rms": rms(pc),
               "rcc_seconds": float(np.mean([v["rcc"]["seconds"] for v in both])),
               "comet_seconds": float(np.mean([v["comet"]["seconds"] for v in both]))}
        for eng in ENGINES:
            rat = [v[eng]["ratio"] for v in both if v[eng].get("ratio")]
            rec[f"{eng}_ratio_gmean"] = float(np.exp(np.mean(np.log(rat)))) if rat else None
            rec[f"{eng}_ratio_range"] = [float(min(rat)), float(max(rat))] if rat else None
        if is3d:
            rec["rcc_z_nm_rms"] = rms(np.array([v["rcc"]["z_nm"] for v in both]))
            rec["comet_z_nm_rms"] = rms(np.array([v["comet"]["z_nm"] for v in both]))
        print(f"{n:7d} {'yes' if is3d else 'no':>3} {len(both):3d} | {rec['rcc_xy_nm_rms']:7.2f} "
              f"{rec['comet_xy_nm_rms']:9.2f} {rec['comet_over_rcc_gmean']:6.2f} | {rec['rcc_better']:8d} "
              f"{rec['comet_better']:8d} | {rec['rcc_flagged']:6d} {rec['comet_flagged']:6d} | "
              f"{rec['rcc_process_nm_rms']:9.2f} {rec['comet_process_nm_rms']:9.2f} | {rec['rcc_seconds']:5.1f} "
              f"{rec['comet_seconds']:6.1f}"
              + (f" | z {rec['rcc_z_nm_rms']:.2f} / {rec['comet_z_nm_rms']:.2f}" if is3d else ""))
        out.append(rec)
    return out


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"rcc": "tab:blue", "comet": "tab:orange"}
    markers = {"lines": "o", "clusters": "s", "uniform": "^", "3d_lines": "D"}
    for r in rows:
        if "xy_nm" not in r:
            continue
        c = colours[r["engine"]]
        face = "none" if r["unreliable"] else c
        ax[0].scatter(r["rows_per_window"], r["xy_nm"], marker=markers[r["structure"]], edgecolors=c,
                      facecolors=face, s=30)
        ax[1].scatter(r["rows_per_window"], r["seconds"], marker=markers[r["structure"]], color=c, s=20)
    for a in ax:
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("localizations per window (10 windows)")
    ax[0].set_ylabel("x/y error, nm rms (open: flagged unreliable)")
    ax[1].set_ylabel("engine seconds (1 thread)")
    for eng, c in colours.items():
        ax[0].scatter([], [], color=c, label=eng)
    for s, m in markers.items():
        ax[0].scatter([], [], marker=m, color="grey", label=s)
    ax[0].legend(fontsize=8)
    fig.suptitle("drift engines: RCC vs COMET, CLI defaults (bench/drift_engines39.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000,2000,5000,10000")
    ap.add_argument("--structures", default=",".join(STRUCTURES))
    ap.add_argument("--drifts", default=",".join(DRIFTS))
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--seeds-up-to", type=int, default=10000, help="largest row count run with --seeds seeds (1 above)")
    ap.add_argument("--no-3d", dest="with_3d", action="store_false")
    ap.add_argument("--max-3d-rows", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=Path("bench/drift_engines39.json"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args(argv)
    args.rows = [int(v) for v in args.rows.split(",")]
    args.structures = [v for v in args.structures.split(",") if v and v != "none"]  # none: the 3D rows only
    args.drifts = args.drifts.split(",")
    rows: list[dict] = []
    if (args.resume or args.summary_only) and args.out.exists():
        rows = json.loads(args.out.read_text())["rows"]
    if not args.summary_only:
        import torch

        torch.set_num_threads(1)
        done = {key(r) for r in rows}
        for case in grid(args):
            for engine in args.engines.split(","):
                if (*case, engine) in done:
                    continue
                r = run_one(*case, engine)
                rows.append(r)
                print(f"{engine:5s} {case[0]:9s} {case[1]:8s} {r['rows']:7d} rows seed {case[3]}: "
                      f"xy {_fmt(r.get('xy_nm'))} nm (none {_fmt(r.get('none_nm'), 5, 1)}), reported "
                      f"{_fmt(r.get('reported_nm'))}, {'UNRELIABLE' if r.get('unreliable') else 'ok'}"
                      + (f", z {r['z_nm']:.2f}" if "z_nm" in r else "") + f"; {r['seconds']:.1f} s"
                      + (f"; {r['error']}" if "error" in r else ""), flush=True)
                args.out.write_text(json.dumps({"rows": rows}, indent=1))
    result = {"command": "OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python bench/drift_engines39.py (the five runs "
              "of its docstring)",
              **summary(rows), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1))
    if args.figure is not None:
        figure(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
