"""Session 51 review: the 3-window closure allowance of a sparse 2-window table's strong peak at smaller reaches
(max_drift_nm 150 / 100 / 50 nm; drift.RCC_STRONG_MIN_CLOSURE_NM). Right sparse tables (1,200-1,800 rows, 2,000 frames,
a straight drift of 36 nm: 2D and 3D lines, rings, clusters, bead-like clusters over uniform rows) against strong
chance peaks of one-window clusters (tests/test_drift50_review; 300-1,900 rows, no drift), at 20 and 40 nm render
pixels. Every closure is recorded, so the summary gives the refusals and acceptances of the reach-scaled allowance
(20 nm x reach / 300) and of the floor.

    OMP_NUM_THREADS=1 python bench/drift51_review.py --out bench/drift51_review.json    # about 5 min, one core
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_drift50_review import _clusters_of_one_window  # noqa: E402

from plexloc.post import drift as D  # noqa: E402
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points  # noqa: E402
from plexloc.table import LocTable  # noqa: E402

COMBOS = ((150.0, 20.0), (100.0, 20.0), (50.0, 20.0), (100.0, 40.0), (50.0, 40.0))


def structured(kind: str, seed: int, rows: int, *, z: bool = False, mol: int = 600) -> tuple[LocTable, np.ndarray]:
    r = np.random.default_rng(seed + 77)
    d = linear_drift(2000, (30.0, -20.0, 15.0 if z else 0.0))
    pts = structure_points(kind, mol, fov_nm=10000.0, rng=r, **({"z_range_nm": (-400, 400)} if z else {}))
    t = blinking_table(pts, n_frames=2000, rng=r, drift_nm=d, events_per_molecule=5.0,
                       precision_z_nm=30.0 if z else None)
    return t[np.sort(r.choice(len(t), rows, replace=False))] if len(t) > rows else t, d


def beads(seed: int, n_beads: int = 8, per_bead: int = 80, extra: int = 600, n: int = 2000):
    r = np.random.default_rng(seed)
    d = linear_drift(n, (30.0, -20.0, 0.0))
    cx, cy = r.uniform(1000, 9000, n_beads), r.uniform(1000, 9000, n_beads)
    k = np.repeat(np.arange(n_beads), per_bead)
    f = np.concatenate([r.integers(0, n, len(k)), r.integers(0, n, extra)])
    x = np.concatenate([cx[k] + r.normal(0, 8, len(k)), r.uniform(0, 10000, extra)])
    y = np.concatenate([cy[k] + r.normal(0, 8, len(k)), r.uniform(0, 10000, extra)])
    o = np.argsort(f, kind="stable")
    f = f[o]
    return LocTable({"frame": f, "x_nm": x[o] + d[f, 0], "y_nm": y[o] + d[f, 1], "z_nm": np.zeros(len(f)),
                     "photons": np.full(len(f), 1e3)}), d


def run(t: LocTable, d: np.ndarray, reach: float, px: float) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = D.rcc_drift(t, n_segments=2, max_drift_nm=reach, render_px_nm=px)
    c = r.info.get("peak_check") or {}
    return {"reach": reach, "px": px, "rows": len(t), "actual_nm": round(D.drift_error_rms(r.drift_nm, d[r.frames]), 2),
            "peak_z": round(float(r.info["peak_z_min"]), 2), "unreliable": bool(r.info.get("unreliable")),
            "closure_nm": None if not c else round(float(c["closure_nm"]), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--chance-seeds", type=int, default=24)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rows = []
    for s in range(a.seeds):
        for name, mk in (("lines1200", lambda: structured("lines", s, 1200)),
                         ("lines1800", lambda: structured("lines", s, 1800)),
                         ("lines3d1600", lambda: structured("lines", s, 1600, z=True)),
                         ("clusters1400", lambda: structured("clusters", s, 1400, mol=400)),
                         ("rings1400", lambda: structured("rings", s, 1400, mol=400)), ("beads8", lambda: beads(s))):
            t, d = mk()
            for reach, px in COMBOS:
                rows.append({"case": f"{name}_s{s}", "kind": "right", **run(t, d, reach, px)})
    for n in (300, 1000, 1900):
        for pc, rad in ((15, 40.0), (40, 60.0), (8, 20.0)):
            for s in range(a.chance_seeds):
                t = _clusters_of_one_window(n, 1000 * n + s, pc, rad)
                for reach, px in COMBOS:
                    rows.append({"case": f"chance_{n}_{pc}_s{s}", "kind": "chance",
                                 **run(t, np.zeros((1000, 3)), reach, px)})
    summary = []
    for reach, px in COMBOS:
        scaled = D.RCC_MAX_CLOSURE_NM * min(1.0, reach / D.MAX_DRIFT_NM)
        floor = max(scaled, D.RCC_STRONG_MIN_CLOSURE_NM)
        for kind in ("right", "chance"):
            s = [r for r in rows if r["kind"] == kind and r["reach"] == reach and r["px"] == px
                 and r["peak_z"] >= D.RCC_MIN_PEAK_Z and r["closure_nm"] is not None
                 and (kind == "chance" or r["actual_nm"] <= 10.0)]
            c = [r["closure_nm"] for r in s]
            summary.append({"reach": reach, "px": px, "kind": kind, "strong": len(s),
                            "closure_nm": [min(c), max(c)] if c else None,
                            "pass_scaled": sum(x <= scaled for x in c), "pass_floor": sum(x <= floor for x in c),
                            "off_nm_passing_floor": [r["actual_nm"] for r in s if r["closure_nm"] <= floor]})
    for line in summary:
        print(json.dumps(line))
    if a.out:
        body = ",\n".join(json.dumps(r) for r in rows)
        a.out.write_text('{"summary": ' + json.dumps(summary) + ',\n"rows": [\n' + body + "]}\n")


if __name__ == "__main__":
    main()
