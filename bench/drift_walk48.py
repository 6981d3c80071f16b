"""Session 48: the drift engines on the cases that the session's drift changes are about, and on honest tables where
they must say nothing new: residual drift actual / reported, and what was flagged.

    # everything (~3-5 min on one thread), a table and one JSON
    OMP_NUM_THREADS=1 python bench/drift_walk48.py --out bench/drift_walk48.json
    # some cases (names or a prefix before '*'); COMET cases are skipped unless --comet (about 2 min each)
    OMP_NUM_THREADS=1 python bench/drift_walk48.py --cases 'fid_*,rcc_rows*' --out /tmp/dw.json
    # the code before a change: PYTHONPATH=<old tree>/src python bench/drift_walk48.py ...
    # print the table of a JSON written before
    python bench/drift_walk48.py --table bench/drift_walk48.json

Every table is ``blinking_table`` over ``structure_points('lines')`` in a 10 x 10 um field (seeded), drifted by a
linear (120, -80 nm; 40 nm in z for 3D), sine (60 and 40 nm, 2 and 1.5 periods) or step (50, 20 nm at mid-movie, on a
slope) curve, with ``with_fiducials`` markers (50,000 photons, 10 % spread, 3 nm, in 90 % of the frames) where the
engine is ``fiducials``. The cases:

* what the changes fix: a marker's photons fall to 35 % at mid-movie (one marker; one of three; the whole table's
  photons), a marker 10x dimmer than the others, every marker off for 250 or 500 frames at once, markers that blink
  (off in blocks of 50 frames), two markers bleached by frames 2,000 and 3,000 (the drift after is not measured), RCC
  on 40 and 200 localizations (4 and 20 a window);
* honest tables, where a "dimmed", "joined" or "unreliable" is false (column ``false``): three steady markers (linear,
  sine, step; 3D), a marker that truly bleaches at frame 1,500 (also with a cluster of sample molecules on its place),
  two different markers 50 nm apart, one bleaching at frame 2,000 and the other there from 2,600 (joined, they make
  one track that jumps 50 nm; alone, nothing measures the drift between them, and "unreliable" is right), and RCC on dense (99,000 rows) and sparse (7,500; 300 and 600 localizations a
  window) tables.

Per case: rows, fiducials used, the residual drift (rms over the frames after removing the mean offset, x and y
together; z where 3D) and the figure reported (``uncertainty_nm``), unreliable, markers followed as dimmed
(``photon_changes``), markers joined across a gap (``stretches``), the warnings' first words, seconds.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plexloc.post.drift import comet_drift, drift_error_rms, rcc_drift
from plexloc.post.fiducials import fiducial_drift
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points, with_fiducials
from plexloc.table import LocTable

FOV_NM = 10000.0


def drift_of(kind: str, n: int, z: bool = False) -> np.ndarray:
    t = np.linspace(0, 1, n)
    if kind == "linear":
        return linear_drift(n, (120.0, -80.0, 40.0 if z else 0.0))
    if kind == "sine":
        return np.stack([60 * np.sin(2 * np.pi * 2 * t), 40 * np.sin(2 * np.pi * 1.5 * t + 1) - 40 * np.sin(1),
                         30 * np.sin(2 * np.pi * t) if z else 0 * t], 1)
    if kind == "step":
        return np.stack([40 * t + 50.0 * (t >= 0.5), -30 * t + 20.0 * (t >= 0.5), 0 * t], 1)
    raise ValueError(kind)


Post = Callable[[LocTable, np.random.Generator], LocTable]


@dataclass
class Case:
    name: str
    engine: str  # fiducials | rcc | comet
    kind: str
    honest: bool  # a dimmed / joined / unreliable here is false (those of ``false_if``)
    n_frames: int = 5000
    molecules: int = 3000
    z: bool = False
    fids: int = 0
    fid_kw: dict[str, Any] = field(default_factory=dict)
    post: Post | None = None
    events: float = 5.0
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    false_if: tuple[str, ...] = ("unreliable", "dimmed", "joined")


def _photons(factor: float, who: str) -> Post:
    def post(t: LocTable, rng: np.random.Generator) -> LocTable:
        sel = t["frame"] >= 2500
        if who == "one":
            sel &= t["id"] == -1
        elif who == "markers":
            sel &= t["id"] < 0
        return t.with_columns(photons=np.where(sel, factor, 1.0) * t["photons"])
    return post


def _dim_one(t: LocTable, rng: np.random.Generator) -> LocTable:
    return t.with_columns(photons=np.where(t["id"] == -1, 0.1, 1.0) * t["photons"])


def _blink(t: LocTable, rng: np.random.Generator) -> LocTable:
    f = t["frame"]
    off = ((f // 50) % 2 == 1) & (rng.uniform(0, 1, len(f)) < 0.95)
    return t[~((t["id"] == -1) & off)]


def _off(a: int, b: int) -> Post:
    def post(t: LocTable, rng: np.random.Generator) -> LocTable:
        f = t["frame"]
        return t[~((t["id"] < 0) & (f >= a) & (f < b))]
    return post


def _late_second(t: LocTable, rng: np.random.Generator) -> LocTable:
    """Marker 2 (id -2) there from frame 2,600 only."""
    return t[~((t["id"] == -2) & (t["frame"] < 2600))]


def _subsample(n: int) -> Post:
    def post(t: LocTable, rng: np.random.Generator) -> LocTable:
        return t[np.sort(rng.choice(len(t), n, replace=False))]
    return post


def _cluster_on_first(t: LocTable, rng: np.random.Generator) -> LocTable:
    """40 sample molecules within 60 nm of marker 1's place, blinking over the whole movie (drifted)."""
    sel = t["id"] == -1
    x0, y0 = float(np.median(t["x_true_nm"][sel])), float(np.median(t["y_true_nm"][sel]))
    n = int(t["frame"].max()) + 1
    pts = np.column_stack([x0 + rng.normal(0, 60, 40), y0 + rng.normal(0, 60, 40), np.zeros(40)])
    extra = blinking_table(pts, n_frames=n, rng=rng, drift_nm=drift_of("sine", n), events_per_molecule=20.0)
    return LocTable({c: np.concatenate([t[c], extra[c]]) for c in t.columns}).sort_by_frame()


CASES = [
    # what the session's changes are about
    Case("fid_one_dims035", "fiducials", "sine", False, fids=1, post=_photons(0.35, "one")),
    Case("fid_3_markers_dim035", "fiducials", "sine", False, fids=3, post=_photons(0.35, "markers")),
    Case("fid_all_photons035", "fiducials", "sine", False, fids=3, post=_photons(0.35, "all")),
    Case("fid_one_10x_dimmer", "fiducials", "sine", False, fids=2, post=_dim_one),
    Case("fid_all_off_250_lin", "fiducials", "linear", False, fids=3, post=_off(2000, 2250)),
    Case("fid_all_off_500_sine", "fiducials", "sine", False, fids=3, post=_off(2000, 2500)),
    Case("fid_blink_1_of_3", "fiducials", "sine", False, fids=3, post=_blink),
    Case("fid_blink_1_of_2", "fiducials", "sine", False, fids=2, post=_blink),
    Case("fid_2_bleach_by_3000", "fiducials", "sine", False, fids=2, fid_kw={"last_frames": [2000, 3000]}),
    Case("rcc_rows40", "rcc", "linear", False, n_frames=3000, molecules=600, post=_subsample(40)),
    Case("rcc_rows200", "rcc", "linear", False, n_frames=3000, molecules=600, post=_subsample(200)),
    # honest tables
    Case("fid_3_linear", "fiducials", "linear", True, fids=3),
    Case("fid_3_sine", "fiducials", "sine", True, fids=3),
    Case("fid_3_step", "fiducials", "step", True, fids=3),
    Case("fid_3_sine_3d", "fiducials", "sine", True, z=True, fids=3),
    Case("fid_1_of_3_bleaches", "fiducials", "sine", True, fids=3, fid_kw={"last_frames": [1500, None, None]}),
    Case("fid_bleach_on_cluster", "fiducials", "sine", True, fids=3, fid_kw={"last_frames": [1500, None, None]},
         post=_cluster_on_first),
    Case("fid_two_close_markers", "fiducials", "sine", True, fids=3, post=_late_second,
         fid_kw={"last_frames": [2000, None, None],
                 "positions_nm": np.array([[4000.0, 4000.0], [4050.0, 4000.0], [7000.0, 2000.0]])}),
    # nothing measures the drift between the two: "unreliable" is right (they share no frame), "joined" is false
    Case("fid_two_close_alone", "fiducials", "sine", True, fids=2, post=_late_second, false_if=("dimmed", "joined"),
         fid_kw={"last_frames": [2000, None], "positions_nm": np.array([[4000.0, 4000.0], [4050.0, 4000.0]])}),
    Case("rcc_dense_linear", "rcc", "linear", True, molecules=8000),
    Case("rcc_dense_sine20", "rcc", "sine", True, molecules=8000, options={"n_segments": 20}),
    Case("rcc_dense_3d_linear", "rcc", "linear", True, molecules=8000, z=True),
    Case("rcc_sparse_linear", "rcc", "linear", True, n_frames=3000, molecules=600),
    Case("rcc_300_a_window", "rcc", "linear", True, n_frames=3000, molecules=600, post=_subsample(3000)),
    Case("rcc_35_a_window", "rcc", "linear", False, n_frames=1000, molecules=40, events=3.0),
    Case("comet_sparse_linear", "comet", "linear", True, n_frames=3000, molecules=600),
]


def make(case: Case) -> tuple[LocTable, np.ndarray]:
    rng = np.random.default_rng(case.seed)
    d = drift_of(case.kind, case.n_frames, case.z)
    pts = structure_points("lines", case.molecules, fov_nm=FOV_NM, rng=rng,
                           **({"z_range_nm": (-400, 400)} if case.z else {}))
    t = blinking_table(pts, n_frames=case.n_frames, rng=rng, drift_nm=d, events_per_molecule=case.events,
                       precision_z_nm=30.0 if case.z else None)
    if case.fids:
        t = with_fiducials(t, case.fids, n_frames=case.n_frames, fov_nm=FOV_NM, drift_nm=d, rng=rng,
                           precision_z_nm=8.0 if case.z else None, **case.fid_kw)
    if case.post is not None:
        t = case.post(t, rng)
    return t, d


def run_case(case: Case) -> dict[str, Any]:
    t, d = make(case)
    engine = {"fiducials": fiducial_drift, "rcc": rcc_drift, "comet": comet_drift}[case.engine]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = engine(t, **case.options)
    seconds = time.perf_counter() - start
    info = r.info
    fids = info.get("fiducials", [])
    dimmed = sum(1 for f in fids if f.get("photon_changes"))
    joined = sum(1 for f in fids if f.get("stretches"))
    unreliable = bool(info.get("unreliable"))
    row = {
        "case": case.name, "engine": case.engine, "drift": case.kind, "honest": case.honest, "rows": len(t),
        "n_fiducials": info.get("n_fiducials"),
        "actual_nm": round(drift_error_rms(r.drift_nm, d[r.frames]), 2),
        "reported_nm": round(float(info.get("uncertainty_nm", float("nan"))), 2),
        "unreliable": unreliable, "dimmed": dimmed, "joined": joined,
        "warnings": [f"{type(w.message).__name__}: {str(w.message)[:160]}" for w in caught],
        "seconds": round(seconds, 2),
    }
    if case.z:
        row["actual_z_nm"] = round(drift_error_rms(r.drift_nm, d[r.frames], axes=(2,)), 2)
        row["reported_z_nm"] = round(float(info.get("z_uncertainty_nm", float("nan"))), 2)
    flags = {"unreliable": int(unreliable), "dimmed": dimmed, "joined": joined}
    row["false"] = sum(flags[k] for k in case.false_if) if case.honest else 0
    return row


def table(res: dict[str, Any]) -> str:
    lines = [f"code {res.get('commit', '?')}",
             f"{'case':24s} {'eng':5s} {'rows':>7s} {'fid':>3s} {'actual':>7s} {'report':>7s} {'unrel':>5s} "
             f"{'dim':>3s} {'join':>4s} {'false':>5s} {'s':>6s}"]
    for r in res["rows"]:
        z = f"  z {r['actual_z_nm']:.2f}/{r['reported_z_nm']:.2f}" if "actual_z_nm" in r else ""
        lines.append(f"{r['case']:24s} {r['engine'][:5]:5s} {r['rows']:7d} {r['n_fiducials'] or '':>3} "
                     f"{r['actual_nm']:7.2f} {r['reported_nm']:7.2f} {'yes' if r['unreliable'] else '-':>5s} "
                     f"{r['dimmed']:3d} {r['joined']:4d} {r['false'] if r['honest'] else '':>5} {r['seconds']:6.1f}{z}")
    honest = [r for r in res["rows"] if r["honest"]]
    lines.append(f"honest cases {len(honest)}: false flags {sum(r['false'] for r in honest)} "
                 f"(dimmed {sum(r['dimmed'] for r in honest)}, joined {sum(r['joined'] for r in honest)}, unreliable "
                 f"{sum(r['unreliable'] for r in honest if r['case'] != 'fid_two_close_alone')} besides "
                 "fid_two_close_alone's, which is right)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="*", help="comma-separated case names or patterns (default: all)")
    ap.add_argument("--comet", action="store_true", help="run the COMET cases too (about 2 min each)")
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (with the code's commit)")
    ap.add_argument("--table", type=Path, default=None, help="print the table of this JSON and stop")
    a = ap.parse_args()
    if a.table is not None:
        print(table(json.loads(a.table.read_text())))
        return 0
    pats = [p.strip() for p in a.cases.split(",") if p.strip()]
    chosen = [c for c in CASES if any(fnmatch.fnmatch(c.name, p) for p in pats)
              and (a.comet or c.engine != "comet")]
    return run_cases(chosen, a.out, run_case, table)


def run_cases(chosen: list[Case], out: Path | None, run: Callable[[Case], dict[str, Any]],
              table: Callable[[dict[str, Any]], str]) -> int:
    """Runs the ``chosen`` cases with ``run`` (a JSON line each, but the warnings), prints ``table`` of the result and
    writes it (the commit and folder of the plexloc measured, the rows) to ``out`` when given. bench/drift49.py's main
    too."""
    import plexloc
    src = Path(plexloc.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    res: dict[str, Any] = {"commit": commit, "plexloc": str(src), "rows": []}
    for case in chosen:
        row = run(case)
        res["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "warnings"}), flush=True)
    print(table(res))
    if out is not None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
