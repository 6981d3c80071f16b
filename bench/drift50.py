"""Session 50: RCC's peak rule at 2 windows with the 3-window check (false refusals of right estimates on sparse lines,
false acceptances of chance peaks on tables without shared structure), and a found stage step's own error in the
uncertainty (reported vs actual on tables with and without steps).

    OMP_NUM_THREADS=1 python bench/drift50.py --out bench/drift50.json                 # ~4 min on one thread
    PYTHONPATH=<old tree>/src python bench/drift50.py --out /tmp/drift50_before.json   # the code before
    python bench/drift50.py --table bench/drift50.json --before /tmp/drift50_before.json
    python bench/drift50.py --table bench/drift50.json    # with the rows of the code before (3b71002) it keeps

``peak``: lines (``structure_points('lines')``, 600 molecules, 3,000 frames, linear drift 120, -80 (40 in z for 3D)
nm, subsampled to 500 / 1,000 / 2,000 rows; 10 seeds) and structure-free tables (uniform rows, one a molecule, no
drift, 200-3,000 rows; 20 seeds), 2 windows. A right estimate is one <= 10 nm off (rms over the frames, x and y; on
structure-free tables none is right: every estimate there is chance, and not flagging it is a false acceptance); a
false refusal is a right estimate flagged unreliable, a false acceptance a wrong one not flagged.
``step``: 2,000 molecules of lines, 5,000 frames: a 54 nm jump at frame 2,500 on a slope (drift_walk48's step),
``settling_drift`` (tau 0.01, 0.03 at 10 windows; 0.06 at 2), linear; seeds 0 and 1: actual / reported (nm).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.post import drift as D
from plexloc.post.synthetic import blinking_table, linear_drift, settling_drift, structure_points
from plexloc.table import LocTable

RIGHT_NM = 10.0


def lines_table(rows: int, seed: int, z: bool) -> tuple[LocTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 3000
    d = linear_drift(n, (120.0, -80.0, 40.0 if z else 0.0))
    pts = structure_points("lines", 600, fov_nm=10000.0, rng=rng, **({"z_range_nm": (-400, 400)} if z else {}))
    t = blinking_table(pts, n_frames=n, rng=rng, drift_nm=d, events_per_molecule=5.0,
                       precision_z_nm=30.0 if z else None)
    return t[np.sort(rng.choice(len(t), rows, replace=False))], d


def free_table(rows: int, seed: int) -> tuple[LocTable, np.ndarray]:
    r = np.random.default_rng(seed)
    t = LocTable({"frame": np.sort(r.integers(0, 1000, rows)), "x_nm": r.uniform(0, 5000, rows),
                  "y_nm": r.uniform(0, 5000, rows), "z_nm": np.zeros(rows), "photons": np.full(rows, 1e3)})
    return t, np.zeros((1000, 3))


def step_table(kind: str, seed: int, tau: float | None) -> tuple[LocTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 5000
    t = np.linspace(0, 1, n)
    if kind == "step":
        d = np.stack([40 * t + 50.0 * (t >= 0.5), -30 * t + 20.0 * (t >= 0.5), 0 * t], 1)
    elif kind == "settle":
        d = settling_drift(n, tau)
    else:
        d = np.stack([120 * t, -80 * t, 0 * t], 1)
    pts = structure_points("lines", 2000, fov_nm=10000.0, rng=rng)
    return blinking_table(pts, n_frames=n, rng=rng, drift_nm=d, events_per_molecule=5.0), d


def run(t: LocTable, d: np.ndarray, n_segments: int) -> dict[str, Any]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = D.rcc_drift(t, n_segments=n_segments)
    info = r.info
    st = info.get("step")
    pc = info.get("peak_check")
    return {"rows": len(t), "windows": n_segments,
            "actual_nm": round(D.drift_error_rms(r.drift_nm, d[r.frames]), 2),
            "reported_nm": round(float(info.get("uncertainty_nm", np.nan)), 2),
            "without_step_nm": round(float(info.get("uncertainty_without_step_nm", info.get("uncertainty_nm",
                                                                                             np.nan))), 2),
            "unreliable": bool(info.get("unreliable")), "peak_z_min": round(float(info["peak_z_min"]), 2),
            "closure_nm": None if pc is None else round(pc["closure_nm"], 1),
            "step": None if st is None else int(st["frame"]), "seconds": round(time.perf_counter() - start, 2)}


def peak_rows(line_seeds: int, free_seeds: int) -> list[dict[str, Any]]:
    rows = []
    for seed in range(line_seeds):
        for n in (500, 1000, 2000):
            for z in (False, True):
                rows.append({"case": f"lines{'3d' if z else ''}_{n}_s{seed}", "kind": "lines3d" if z else "lines",
                             **run(*lines_table(n, seed, z), 2)})
    for seed in range(free_seeds):
        for n in (200, 500, 1000, 2000, 3000):
            rows.append({"case": f"free_{n}_s{seed}", "kind": "free", **run(*free_table(n, seed), 2)})
    return rows


def step_rows() -> list[dict[str, Any]]:
    rows = []
    for seed in (0, 1):
        for kind, tau, nseg in (("step", None, 10), ("step", None, 2), ("settle", 0.01, 10), ("settle", 0.03, 10),
                                ("settle", 0.06, 2), ("linear", None, 10), ("linear", None, 2)):
            name = f"{kind}{'' if tau is None else tau}_{nseg}w_s{seed}"
            rows.append({"case": name, "kind": kind, **run(*step_table(kind, seed, tau), nseg)})
    return rows


def closure_of(t: LocTable, max_drift_nm: float = D.MAX_DRIFT_NM) -> dict[str, Any] | None:
    """The 3-window check of rcc_drift (session 50) on any table, whatever its 2-window peak: the chance distribution
    of the closure on tables without shared structure (rcc_drift runs it only on peaks of 4.5-6 SD)."""
    x, y, frame = t["x_nm"], t["y_nm"], t["frame"]
    x0, y0 = x.min(), y.min()
    px = max(20.0, (max(x.max() - x0, y.max() - y0) + 1e-6) / 2048)
    w = int(np.ceil((x.max() - x0) / px)) + 1
    h = int(np.ceil((y.max() - y0) / px)) + 1
    flat = np.minimum(((y - y0) / px).astype(np.int64), h - 1) * w + np.minimum(((x - x0) / px).astype(np.int64), w - 1)
    return D._three_window_closure(flat, frame, h, w, px, 1.5 * px, max_drift_nm, "cpu")


def free_closures(seeds: int) -> list[dict[str, Any]]:
    rows = []
    for seed in range(seeds):
        for n in (200, 500, 1000, 2000, 3000):
            c = closure_of(free_table(n, seed)[0])
            rows.append({"case": f"free_{n}_s{seed}", "closure_nm": None if c is None else round(c["closure_nm"], 1),
                         "peak_z_3": None if c is None else round(c["peak_z_min"], 2)})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for kind in ("lines", "lines3d", "free"):
        rs = [r for r in rows if r["kind"] == kind]
        if not rs:
            continue
        # without shared structure every estimate is chance (one came out 10 nm or less): none is right
        right = [r for r in rs if r["actual_nm"] <= RIGHT_NM and kind != "free"]
        wrong = [r for r in rs if r["actual_nm"] > RIGHT_NM or kind == "free"]
        out[kind] = {"tables": len(rs), "right": len(right), "false_refusals": sum(r["unreliable"] for r in right),
                     "wrong": len(wrong), "false_acceptances": sum(not r["unreliable"] for r in wrong),
                     "peak_z": [min(r["peak_z_min"] for r in rs), max(r["peak_z_min"] for r in rs)]}
    return out


def table(res: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    before = before or res.get("before")  # bench/drift50.json keeps the code before's rows (3b71002) under "before"
    old = {r["case"]: r for r in (before or {}).get("peak", []) + (before or {}).get("step", [])}
    lines = [f"code {res.get('commit', '?')}" + (f" (before: {before.get('commit', '?')})" if before else "")]
    for kind, s in res["summary"].items():
        b = (before or {}).get("summary", {}).get(kind)
        lines.append(f"{kind:8s} tables {s['tables']:3d}: right {s['right']:3d}, false refusals {s['false_refusals']:3d}"
                     f"{' (before ' + str(b['false_refusals']) + ')' if b else ''}; wrong {s['wrong']:3d}, false "
                     f"acceptances {s['false_acceptances']:3d}{' (before ' + str(b['false_acceptances']) + ')' if b else ''}"
                     f"; peak z {s['peak_z'][0]:.2f}-{s['peak_z'][1]:.2f}")
    lines.append(f"{'case':22s} {'rows':>6s} {'win':>3s} {'actual':>7s} {'report':>7s} {'no-step':>7s} {'step':>5s} "
                 f"{'unrel':>5s}" + ("   before: report / unrel" if before else ""))
    for r in res["step"] + [r for r in res["peak"] if r["kind"] != "free" and (r["closure_nm"] is not None or (
            old.get(r["case"]) and old[r["case"]]["unreliable"] != r["unreliable"]))]:
        b = old.get(r["case"])
        was = f"   {b['reported_nm']:7.2f} / {'yes' if b['unreliable'] else '-'}" if b else ""
        lines.append(f"{r['case']:22s} {r['rows']:6d} {r['windows']:3d} {r['actual_nm']:7.2f} {r['reported_nm']:7.2f} "
                     f"{r['without_step_nm']:7.2f} {str(r['step'] or '-'):>5s} {'yes' if r['unreliable'] else '-':>5s}"
                     + (f" closure {r['closure_nm']}" if r['closure_nm'] is not None else "") + was)
    fc = [r["closure_nm"] for r in res.get("free_closure", []) if r["closure_nm"] is not None]
    if fc:
        lines.append(f"3-window closure on {len(fc)} structure-free tables (any peak): {min(fc):.1f}-{max(fc):.1f} nm, "
                     f"{sum(c <= D.RCC_MAX_CLOSURE_NM for c in fc)} within {D.RCC_MAX_CLOSURE_NM:g} nm")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (with the code's commit)")
    ap.add_argument("--table", type=Path, default=None, help="print the table of this JSON and stop")
    ap.add_argument("--before", type=Path, default=None, help="with --table: a JSON of the code before, side by side")
    ap.add_argument("--line-seeds", type=int, default=10)
    ap.add_argument("--free-seeds", type=int, default=20)
    ap.add_argument("--parts", default="peak,step,closure")
    a = ap.parse_args()
    if a.table is not None:
        before = json.loads(a.before.read_text()) if a.before else None
        print(table(json.loads(a.table.read_text()), before))
        return 0
    start = time.perf_counter()
    parts = a.parts.split(",")
    peak = peak_rows(a.line_seeds, a.free_seeds) if "peak" in parts else []
    steps = step_rows() if "step" in parts else []
    fclose = free_closures(a.free_seeds) if "closure" in parts and hasattr(D, "_three_window_closure") else []
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(D.__file__).resolve().parent).stdout.strip()
    res = {"commit": commit, "source": str(Path(D.__file__).resolve()), "peak": peak, "step": steps,
           "free_closure": fclose, "summary": summary(peak), "seconds": round(time.perf_counter() - start, 1)}
    print(table(res))
    if a.out is not None:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
