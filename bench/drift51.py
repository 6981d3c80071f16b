"""Session 51: RCC's 2-window acceptance over many tables: false acceptances of chance peaks (clusters that live in one
window only, structure-free tables) and false refusals of right estimates (sparse lines at 20/40/60 nm render pixels,
dense 2-window tables with stage jumps, settlings, straight drifts and wobbles), with every table's peak z, runner-up
z (``second_peak_z``), 3-window closure (computed on every table, whatever its peak) and reported / actual error.

    OMP_NUM_THREADS=1 python bench/drift51.py --out bench/drift51.json    # about 5 min on one shared core
    python bench/drift51.py --table bench/drift51.json    # with the rows of 3abfe7b (before session 51) beside

bench/drift51.json keeps the rows of the code before (3abfe7b, run from a git worktree with PYTHONPATH) under
"before".

A right estimate is one <= 10 nm off (rms over the frames, x and y); on chance and structure-free tables none is right
(every estimate there is chance, and not flagging it is a false acceptance).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from drift50 import free_table, lines_table, step_table  # noqa: E402
from drift_engines39 import case_table  # noqa: E402
from test_drift50_review import _clusters_of_one_window  # noqa: E402

from plexloc.post import drift as D  # noqa: E402
from plexloc.post.synthetic import blinking_table, structure_points  # noqa: E402
from plexloc.table import LocTable  # noqa: E402

RIGHT_NM = 10.0


def closure_of(t: LocTable, px_asked: float) -> dict[str, Any] | None:
    x, y, frame = t["x_nm"], t["y_nm"], t["frame"]
    x0, y0 = x.min(), y.min()
    px = max(px_asked, (max(x.max() - x0, y.max() - y0) + 1e-6) / 2048)
    w = int(np.ceil((x.max() - x0) / px)) + 1
    h = int(np.ceil((y.max() - y0) / px)) + 1
    flat = np.minimum(((y - y0) / px).astype(np.int64), h - 1) * w + np.minimum(((x - x0) / px).astype(np.int64), w - 1)
    return D._three_window_closure(flat, frame, h, w, px, 1.5 * px, D.MAX_DRIFT_NM, "cpu")


def run(case: str, kind: str, t: LocTable, d: np.ndarray, px: float = 20.0, n_segments: int = 2) -> dict[str, Any]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = D.rcc_drift(t, n_segments=n_segments, render_px_nm=px)
    info = r.info
    pc = info.get("peak_check")
    c = closure_of(t, px)
    return {"case": case, "kind": kind, "px": px, "rows": len(t), "windows": n_segments,
            "actual_nm": round(D.drift_error_rms(r.drift_nm, d[r.frames]), 2),
            "reported_nm": round(float(info.get("uncertainty_nm", np.nan)), 2),
            "unreliable": bool(info.get("unreliable")), "peak_z": round(float(info["peak_z_min"]), 2),
            "second_z": round(float(info.get("second_peak_z", np.nan)), 2),
            "checked": pc is not None, "allowed_nm": None if pc is None else round(pc["allowed_nm"], 1),
            "closure_nm": None if c is None else round(c["closure_nm"], 1),
            "closure_peak_z": None if c is None else round(c["peak_z_min"], 2),
            "step": None if info.get("step") is None else int(info["step"]["frame"]),
            "step_error_nm": None if info.get("step") is None else round(info["step"]["error_nm"], 2),
            "bend_nm": None if info.get("bend_nm") is None else round(info["bend_nm"], 2),
            "bend_below_gate_nm": None if info.get("bend_below_gate_nm") is None else round(info["bend_below_gate_nm"], 2),
            "seconds": round(time.perf_counter() - start, 2)}


def jump_table(size: float, seed: int) -> tuple[LocTable, np.ndarray]:
    """tests/test_drift50_review's guard: lines, 5,000 frames, a jump of ``size`` (54 nm: drift50's) at frame 2,500."""
    rng = np.random.default_rng(seed)
    n = 5000
    t = np.linspace(0, 1, n)
    s = size / 54.0
    d = np.stack([40 * t + 50.0 * s * (t >= 0.5), -30 * t + 20.0 * s * (t >= 0.5), 0 * t], 1)
    table = blinking_table(structure_points("lines", 2000, fov_nm=10000.0, rng=rng), n_frames=n, rng=rng,
                           drift_nm=d, events_per_molecule=5.0)
    return table, d


def rows_chance(px: float, seeds: int) -> list[dict[str, Any]]:
    out = []
    for rows in (300, 1000, 3000):
        for pc, rad in ((15, 40.0), (40, 60.0), (8, 20.0)):
            for s in range(seeds):
                t = _clusters_of_one_window(rows, 1000 * rows + s, pc, rad)
                out.append(run(f"chance_{rows}_{pc}_{rad:g}_s{s}", "chance", t, np.zeros((1000, 3)), px))
    return out


def rows_free(seeds: int) -> list[dict[str, Any]]:
    return [run(f"free_{n}_s{s}", "free", *free_table(n, s)) for s in range(seeds) for n in (200, 500, 1000, 2000, 3000)]


def rows_lines(px: float, seeds: int) -> list[dict[str, Any]]:
    return [run(f"lines{'3d' if z else ''}_{n}_s{s}", "lines3d" if z else "lines", *lines_table(n, s, z), px)
            for s in range(seeds) for n in (500, 1000, 2000) for z in (False, True)]


def rows_dense() -> list[dict[str, Any]]:
    out = []
    for seed in (0, 1):
        for size in (54.0, 150.0):
            out.append(run(f"jump{size:g}_s{seed}", "jump", *jump_table(size, seed)))
        for kind, tau in (("settle", 0.06), ("linear", None)):
            out.append(run(f"{kind}{'' if tau is None else tau}_s{seed}", kind, *step_table(kind, seed, tau)))
    for seed in (0, 1):
        for kind, tau in (("step", None), ("settle", 0.01), ("settle", 0.03)):
            out.append(run(f"{kind}{'' if tau is None else tau}_10w_s{seed}", kind, *step_table(kind, seed, tau),
                           n_segments=10))
    for structure, rows in (("uniform", 1000), ("uniform", 2000), ("clusters", 5000), ("lines", 2000),
                            ("lines", 10000)):
        for drift in ("wobble", "linear"):
            for seed in (0, 1, 2):
                t, d = case_table(structure, drift, rows, seed)
                out.append(run(f"{drift}_{structure}_{rows}_s{seed}", drift if drift == "wobble" else "straight", t, d))
    return out


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in sorted({(r["kind"], r["px"]) for r in rows}):
        rs = [r for r in rows if (r["kind"], r["px"]) == key]
        chance = key[0] in ("chance", "free")
        right = [r for r in rs if r["actual_nm"] <= RIGHT_NM and not chance]
        wrong = [r for r in rs if r["actual_nm"] > RIGHT_NM or chance]
        under = [r for r in rs if not r["unreliable"] and r["actual_nm"] > 1.5 * r["reported_nm"]]
        out.append({"kind": key[0], "px": key[1], "tables": len(rs), "right": len(right),
                    "false_refusals": sum(r["unreliable"] for r in right), "wrong": len(wrong),
                    "false_acceptances": sum(not r["unreliable"] for r in wrong),
                    "accepted_wrong_nm": sorted(r["actual_nm"] for r in wrong if not r["unreliable"]),
                    "accepted_under_reported_1_5x": len(under)})
    return out


def table(res: dict[str, Any]) -> str:
    lines = [f"code {res['commit']}" + (f" (before: {res['before']['commit']})" if res.get("before") else "")]
    old = {(s["kind"], s["px"]): s for s in (res.get("before") or {}).get("summary", [])}
    for s in res["summary"]:
        b = old.get((s["kind"], s["px"]))
        lines.append(f"{s['kind']:8s} px {s['px']:3.0f} tables {s['tables']:3d}: right {s['right']:3d} refused "
                     f"{s['false_refusals']:3d}{' (before ' + str(b['false_refusals']) + ')' if b else ''}; wrong "
                     f"{s['wrong']:3d} accepted {s['false_acceptances']:3d}"
                     f"{' (before ' + str(b['false_acceptances']) + ')' if b else ''} {s['accepted_wrong_nm'][:8]}; "
                     f"accepted and under-reported >1.5x {s['accepted_under_reported_1_5x']}"
                     f"{' (before ' + str(b['accepted_under_reported_1_5x']) + ')' if b else ''}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=12, help="seeds of the chance tables (lines: 10, free: 10)")
    ap.add_argument("--parts", default="chance,free,lines,dense")
    a = ap.parse_args()
    if a.table is not None:
        print(table(json.loads(a.table.read_text())))
        return 0
    start = time.perf_counter()
    parts = a.parts.split(",")
    rows: list[dict[str, Any]] = []
    if "chance" in parts:
        rows += rows_chance(20.0, a.seeds) + rows_chance(40.0, a.seeds)
    if "free" in parts:
        rows += rows_free(10)
    if "lines" in parts:
        for px in (20.0, 40.0, 60.0):
            rows += rows_lines(px, 10)
    if "dense" in parts:
        rows += rows_dense()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(D.__file__).resolve().parent).stdout.strip()
    res = {"commit": commit, "source": str(Path(D.__file__).resolve()), "rows": rows, "summary": summary(rows),
           "seconds": round(time.perf_counter() - start, 1)}
    print(table(res))
    if a.out is not None:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
