"""Session 49: RCC on tables without shared structure (2 windows, the default 300 nm reach), RCC under a stage jump,
fiducials given by position across a gap, and two different markers within the search's reach; with session 48's
honest tables (bench/drift_walk48.py), where a "dimmed", "joined" or "unreliable" is false.

    OMP_NUM_THREADS=1 python bench/drift49.py --out bench/drift49.json          # ~4 min on one thread
    PYTHONPATH=<old tree>/src python bench/drift49.py --out /tmp/drift49_before.json   # the code before
    python bench/drift49.py --table bench/drift49.json --before /tmp/drift49_before.json
    python bench/drift49.py --table bench/drift49.json    # with the rows of the code before (9386aee) it keeps

Columns as drift_walk48's (residual drift actual / reported, nm: rms over the frames after the mean offset, x and y
together), with ``step`` (the stage jump RCC found: its frame) and the cases' truth.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drift_walk48 as w48  # noqa: E402

from plexloc.table import LocTable  # noqa: E402


def _structure_free(n: int, seed: int) -> Any:
    def post(t: LocTable, rng: np.random.Generator) -> LocTable:
        r = np.random.default_rng(seed)
        return LocTable({"frame": np.sort(r.integers(0, 1000, n)), "x_nm": r.uniform(0, 5000, n),
                         "y_nm": r.uniform(0, 5000, n), "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    return post


def _late(frame: int) -> w48.Post:
    def post(t: LocTable, rng: np.random.Generator) -> LocTable:
        return t[~((t["id"] == -2) & (t["frame"] < frame))]
    return post


def _all_off(a: int, b: int) -> w48.Post:
    return w48._off(a, b)


CASES = [
    # RCC, 2 windows, no structure shared (one row per molecule), no drift (the "truth" is read as zero: kind linear
    # on an empty structure is replaced by the table below, so the residual is measured against 0 via --truth zero)
    *[w48.Case(f"rcc2_free_{n}_s{s}", "rcc", "none", False, n_frames=1000, molecules=10, post=_structure_free(n, s),
               options={"n_segments": 2}) for n, s in ((1000, 1), (200, 3), (1000, 0), (3000, 2))],
    w48.Case("rcc_dense_step", "rcc", "step", False, molecules=8000),
    w48.Case("rcc_step_25k", "rcc", "step", False, molecules=2000),
    # 2 windows: a straight line (the step, and a sine: the bend said)
    w48.Case("rcc2_step_25k", "rcc", "step", False, molecules=2000, options={"n_segments": 2}),
    w48.Case("rcc2_sine_dense", "rcc", "sine", False, molecules=8000, options={"n_segments": 2}),
    w48.Case("fid_given_all_off_500", "fiducials", "sine", False, fids=3, post=_all_off(2000, 2500),
             options={"given": True}),
    w48.Case("fid_found_all_off_500", "fiducials", "sine", True, fids=3, post=_all_off(2000, 2500),
             false_if=("unreliable", "dimmed")),
    *[w48.Case(f"fid_two_{sep}nm_300_apart" + ("_3rd" if third else ""), "fiducials", "sine", False,
               fids=3 if third else 2, post=_late(2300),
               fid_kw={"last_frames": [2000, None, None][: 3 if third else 2],
                       "positions_nm": np.array([[4000.0, 4000.0], [4000.0 + sep, 4000.0], [7000.0, 2000.0]]
                                                [: 3 if third else 2])})
      for sep, third in ((50, False), (100, False), (70, True), (40, False))],
    # honest tables of session 48
    *[c for c in w48.CASES if c.honest and c.engine != "comet"],
]


_DRIFT_OF = w48.drift_of


def drift_of(kind: str, n: int, z: bool = False) -> np.ndarray:
    if kind == "none":
        return np.zeros((n, 3))
    return _DRIFT_OF(kind, n, z)


def run_case(case: w48.Case) -> dict[str, Any]:
    given = bool(case.options.get("given"))
    opts = {k: v for k, v in case.options.items() if k != "given"}
    if given:
        orig = w48.fiducial_drift

        def with_positions(t: LocTable, **kw: Any) -> Any:
            xy = np.column_stack([t["x_nm"], t["y_nm"]])
            pos = [np.median(xy[t["id"] == -k], axis=0) for k in range(1, case.fids + 1)]
            return orig(t, positions_nm=pos, **kw)
        w48.fiducial_drift = with_positions
    seen: list[Any] = []
    rcc = w48.rcc_drift

    def rcc_seen(t: LocTable, **kw: Any) -> Any:
        seen.append(rcc(t, **kw))
        return seen[-1]
    w48.rcc_drift = rcc_seen
    try:
        import dataclasses
        row = w48.run_case(dataclasses.replace(case, options=opts))
    finally:
        w48.rcc_drift = rcc
        if given:
            w48.fiducial_drift = orig
    step = seen[-1].info.get("step") if seen else None
    row["step"] = int(step["frame"]) if step else None
    return row


def table(res: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    before = before or res.get("before")  # bench/drift49.json keeps the code before's rows (9386aee) under "before"
    old = {r["case"]: r for r in (before or {}).get("rows", [])}
    lines = [f"code {res.get('commit', '?')}" + (f" (before: {before.get('commit', '?')})" if before else ""),
             f"{'case':28s} {'eng':5s} {'rows':>7s} {'fid':>3s} {'actual':>7s} {'report':>7s} {'unrel':>5s} "
             f"{'join':>4s} {'step':>6s} {'false':>5s}" + ("   before: actual / report / unrel" if before else "")]
    for r in res["rows"]:
        b = old.get(r["case"])
        was = (f"   {b['actual_nm']:7.2f} / {b['reported_nm']:6.2f} / {'yes' if b['unreliable'] else '-'}"
               if b else "")
        lines.append(f"{r['case']:28s} {r['engine'][:5]:5s} {r['rows']:7d} {r['n_fiducials'] or '':>3} "
                     f"{r['actual_nm']:7.2f} {r['reported_nm']:7.2f} {'yes' if r['unreliable'] else '-':>5s} "
                     f"{r['joined']:4d} {str(r.get('step') or '-'):>6s} {r['false'] if r['honest'] else '':>5} {was}")
    honest = [r for r in res["rows"] if r["honest"]]
    lines.append(f"honest cases {len(honest)}: false flags {sum(r['false'] for r in honest)}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="*", help="comma-separated case names or patterns (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (with the code's commit)")
    ap.add_argument("--table", type=Path, default=None, help="print the table of this JSON and stop")
    ap.add_argument("--before", type=Path, default=None, help="with --table: a JSON of the code before, side by side")
    a = ap.parse_args()
    if a.table is not None:
        before = json.loads(a.before.read_text()) if a.before else None
        print(table(json.loads(a.table.read_text()), before))
        return 0
    w48.drift_of = drift_of  # "none": no drift (the structure-free tables)
    pats = [p.strip() for p in a.cases.split(",") if p.strip()]
    chosen = [c for c in CASES if any(fnmatch.fnmatch(c.name, p) for p in pats)]
    return w48.run_cases(chosen, a.out, run_case, table)


if __name__ == "__main__":
    sys.exit(main())
