"""RCC or COMET drift: the reported uncertainty against the actual error, on tables with a known drift.

    python bench/drift_uncertainty.py [--seeds 5] [--cases lines_linear,lines_sine] [--out bench/out/drift_unc.json]
    python bench/drift_uncertainty.py --engine comet --seeds 3 --cases lines_linear,rings_sine,clusters_exp_p15 \
        --scale 0.5 [--before OLD.json] --out bench/drift_uncertainty_comet.json

Every case is a 3,000-frame table of blinking molecules on a structure (``plexloc.post.synthetic``: lines, rings or
clusters; 5 on-events per molecule of 2.5 frames on average; a fixed localization precision) with a known drift:
linear, linear + slow sine (``wobbly_drift``) or an exponential settling. For each case and seed it runs
``rcc_drift`` (``--segments`` windows, 10 by default; 20 nm pixels) and records

- ``actual_nm``: the true error of the curve, ``drift_error_rms`` (lateral RMS over the frames of estimated minus
  true drift, after removing the constant offset, as the tests measure it);
- ``old_nm``: the figure that ``uncertainty_nm`` held before (the windows' agreement; kept as
  ``window_agreement_nm``; on a checkout before the change it is ``uncertainty_nm`` itself);
- ``new_nm``: ``uncertainty_nm`` now (split-half test and interpolation term), with its parts;
- the ratios reported / actual, and the seconds with and without the split-half test.

Prints one row per case and seed and a summary per case (geometric mean, smallest and largest ratio), and writes it
all as JSON to ``--out``. One torch thread.

``--engine comet`` runs ``comet_drift`` instead (``--segments`` windows, its default ``max_drift_nm`` 300 and pair cap,
``seed`` = the case's seed, split-half test on; one numba and torch thread): each row holds ``actual_nm``,
``reported_nm`` (its ``uncertainty_nm``), ``ratio`` = reported / actual, the split-half figures in its ``info`` and the
seconds. ``--before OLD.json`` (a COMET output of this script from an earlier checkout) adds that checkout's
``reported_nm`` and ``actual_nm`` of the same case and seed as ``before_nm`` / ``before_actual_nm``, and
``before_ratio`` = before_nm / before_actual_nm, that checkout's own ratio (until session 36 against this run's actual
error, which was the same while only the split-half test changed; COMET's windows changed the estimate itself).
For RCC, ``--before OLD.json`` (an RCC output of this script from an earlier checkout) adds that checkout's
``uncertainty_nm`` and interpolation term of the same case and seed (``before_nm``, ``before_ratio``,
``before_interp_nm``) and prints them against this run's, case by case.
``--rows RUN.json`` summarises an earlier run's rows again instead of running (with ``--before``).
``--scale`` multiplies the molecules of every case (0.5: about 50,000 localizations instead of 100,000), for COMET,
which takes about 20-60 s a run on one CPU thread and three runs a table, and for RCC.

Both engines also record the parts of the error, from the arguments that the interpolation term
(``plexloc.post.drift._interpolation_error``, wrapped while the bench runs) was given: the windows (the window of every
row and the knots' frames) and the knots. ``construction_nm``: the error of the curve built from the *true* mean drift
of every window (over its rows) against the true drift, what the interpolation term estimates; ``knot_noise_nm``: the
estimated curve against that curve, what the split-half term estimates (both as ``drift_error_rms``);
``interp_true_knots_nm``: the term given the true windows' means and no noise. Printed with the term and
``interp / construction`` where the construction's error is above 0.1 nm (a linear drift: 0).

    python bench/drift_uncertainty.py --seeds 5 --scale 0.25 --out bench/drift_interpolation35_rcc_s025_before.json
    (on the checkout before; then on this one:)
    python bench/drift_uncertainty.py --seeds 5 --scale 0.25 --before bench/drift_interpolation35_rcc_s025_before.json \
        --out bench/drift_interpolation35_rcc_s025.json
    (and --scale 1 -> ..._s1_before.json, ..._s1.json; 9 cases x 5 seeds, 60-90 s on one thread)
    python bench/drift_uncertainty.py --engine comet --seeds 3 --scale 0.25 --cases rings_sine,clusters_exp_p15 \
        --before bench/drift_uncertainty_comet.json --out bench/drift_interpolation35_comet_s025.json   (310 s)

Session 36 (the split-half test's halves at common window centres; COMET in our 10 windows), one thread each, the
``_before`` files from the checkout before (its src on PYTHONPATH):

    python bench/drift_uncertainty.py --seeds 5 --scale 1 --before bench/drift_rcc36_s1_before.json \
        --out bench/drift_rcc36_s1.json          (and --scale 0.25 -> drift_rcc36_s025*.json)
    python bench/drift_uncertainty.py --engine comet --seeds 3 --scale 0.25 \
        --cases lines_linear,rings_sine,clusters_exp_p15 --out RUN.json                      (15 min)
    python bench/drift_uncertainty.py --engine comet --rows RUN.json --before bench/drift_comet36_s025_before.json \
        --out bench/drift_comet36_s025.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

import plexloc.post.drift as drift_module
from plexloc.post.drift import drift_error_rms, rcc_drift
from plexloc.post.synthetic import blinking_table, linear_drift, settling_drift, structure_points, wobbly_drift
from plexloc.table import LocTable

N_FRAMES = 3000

#: name: (structure, molecules, field of view nm, localization precision nm, drift)
CASES: dict[str, tuple[str, int, float, float, str]] = {
    "lines_linear": ("lines", 8000, 12000.0, 10.0, "linear"),
    "lines_sine": ("lines", 8000, 12000.0, 10.0, "sine"),
    "rings_sine": ("rings", 8000, 12000.0, 10.0, "sine"),
    "clusters_linear_p20": ("clusters", 8000, 12000.0, 20.0, "linear"),
    "clusters_exp_p15": ("clusters", 8000, 12000.0, 15.0, "exp"),
    "clusters_fastexp_p10": ("clusters", 8000, 8000.0, 10.0, "fastexp"),
    "rings_sine_p15": ("rings", 4000, 8000.0, 15.0, "sine"),
    "sparse_lines_sine_p20": ("lines", 4000, 24000.0, 20.0, "sine"),
    "large_lines_sine_p5": ("lines", 40000, 25000.0, 5.0, "sine"),
}


def drift_of(kind: str, rng: np.random.Generator) -> np.ndarray:
    """``(N_FRAMES, 3)`` drift: linear (90, -60) nm; linear + slow sine of about 100 nm; exponential settling (time
    constant 0.15-0.4 of the movie; ``fastexp``: 0.2, and half of it in the first 14 % of the movie)."""
    if kind == "linear":
        return linear_drift(N_FRAMES, (90.0, -60.0, 0.0))
    if kind == "sine":
        return wobbly_drift(N_FRAMES, 100.0, rng=rng)
    return settling_drift(N_FRAMES, rng.uniform(0.15, 0.4) if kind == "exp" else 0.2)


def case_table(name: str, seed: int, scale: float = 1.0) -> tuple[LocTable, np.ndarray]:
    """The table of ``name`` for ``seed`` (frame, x_nm, y_nm, z_nm, photons) and its true drift per frame.

    ``scale`` multiplies the case's molecules (the same field of view: a sparser structure)."""
    structure, n_mol, fov, precision, drift = CASES[name]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    truth = drift_of(drift, rng)
    mol = structure_points(structure, max(1, int(round(n_mol * scale))), fov_nm=fov, rng=rng)
    t = blinking_table(mol, n_frames=N_FRAMES, rng=rng, drift_nm=truth, events_per_molecule=5,
                       precision_nm=precision)
    return LocTable({c: t[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), truth


class _TermArgs:
    """Wraps ``_interpolation_error`` while the bench runs and keeps the arguments of its last call."""

    def __enter__(self):
        self.args = None
        self.inner = getattr(drift_module, "_interpolation_error", None)
        if self.inner is not None:
            def wrapped(frame, seg, centre, knots, frames, knot_var, *a, **k):
                self.args = (np.asarray(frame), np.asarray(seg), np.asarray(centre, dtype=float),
                             np.asarray(knots, dtype=float)[:, :2].copy(), np.asarray(frames), float(knot_var))
                return self.inner(frame, seg, centre, knots, frames, knot_var, *a, **k)
            drift_module._interpolation_error = wrapped
        return self

    def __exit__(self, *exc):
        if self.inner is not None:
            drift_module._interpolation_error = self.inner
        return False


def error_parts(args: tuple | None, truth: np.ndarray) -> dict:
    """``construction_nm``, ``knot_noise_nm``, ``interp_true_knots_nm`` and ``knot_var_nm2`` (the term's input) and
    ``knot_var_true_nm2`` (the knots' error variance per axis, constant offset removed) from the term's arguments."""
    if args is None:
        return {}
    frame, seg, centre, knots, frames, knot_var = args
    n = len(centre)
    means = np.array([truth[frame[seg == k], :2].mean(axis=0) for k in range(n)])
    through_true = drift_module._curve(centre, means, frames)
    dk = knots - means
    dk -= dk.mean(axis=0)
    return {"construction_nm": drift_error_rms(through_true, truth[frames]),
            "knot_noise_nm": drift_error_rms(drift_module._curve(centre, knots, frames), through_true),
            "interp_true_knots_nm": drift_module._interpolation_error(frame, seg, centre, means, frames, 0.0),
            "knot_var_nm2": knot_var, "knot_var_true_nm2": float(np.mean(dk**2)), "n_knots": n}


def _interp_ratio(r: dict) -> float | None:
    c, i = r.get("construction_nm"), r.get("interpolation_error_nm")
    return None if c is None or i is None or c <= 0.1 else i / c


def run_one(name: str, seed: int, segments: int = 10, scale: float = 1.0) -> dict:
    t, truth = case_table(name, seed, scale)
    t0 = time.perf_counter()
    plain = rcc_drift(t, n_segments=segments, split_half=False) if _has_split_half() else None
    s_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    with _TermArgs() as term:
        res = rcc_drift(t, n_segments=segments)
    s_full = time.perf_counter() - t0
    actual = drift_error_rms(res.drift_nm, truth[res.frames])
    info = res.info
    old = float(info.get("window_agreement_nm", info["uncertainty_nm"]))
    new = float(info["uncertainty_nm"])
    if plain is not None:
        assert np.array_equal(plain.drift_nm, res.drift_nm)  # the split-half test never changes the estimate
    return {"case": name, "seed": seed, "segments": segments, "scale": scale, "rows": len(t), "actual_nm": actual,
            "old_nm": old, "new_nm": new, **error_parts(term.args, truth),
            "old_ratio": old / actual, "new_ratio": new / actual,
            "half_difference_nm": info.get("half_difference_nm"), "interpolation_error_nm": info.get(
                "interpolation_error_nm"), "half_block_frames": info.get("half_block_frames"),
            "seconds_split_half": s_full, "seconds_without": s_plain if plain is not None else None,
            "unreliable": bool(info.get("unreliable", False))}


def run_comet(name: str, seed: int, segments: int = 10, scale: float = 1.0, backend: str | None = None) -> dict:
    from plexloc.post.drift import UnreliableDriftWarning, comet_drift

    t, truth = case_table(name, seed, scale)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, _TermArgs() as term:
        warnings.simplefilter("always", UnreliableDriftWarning)
        res = comet_drift(t, n_segments=segments, seed=seed, backend=backend)
    seconds = time.perf_counter() - t0
    actual = drift_error_rms(res.drift_nm, truth[res.frames])
    info = res.info
    reported = float(info.get("uncertainty_nm", float("nan")))
    keep = ("half_difference_nm", "half_block_frames", "interpolation_error_nm", "n_pairs", "max_locs_per_segment",
            "pairs_estimated", "backend")
    return {"case": name, "seed": seed, "segments": segments, "scale": scale, "rows": len(t), "actual_nm": actual,
            "reported_nm": reported, "ratio": reported / actual, **{k: info[k] for k in keep if k in info},
            **error_parts(term.args, truth),
            "seconds_split_half": seconds, "unreliable": bool(info.get("unreliable", False)),
            "warnings": [str(w.message)[:200] for w in caught]}


def _gstats(v: np.ndarray) -> tuple[float, float, float]:
    return float(np.exp(np.mean(np.log(v)))), float(v.min()), float(v.max())


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows per case, in the order of first appearance, and all of them as "all"."""
    groups = {name: [r for r in rows if r["case"] == name] for name in dict.fromkeys(r["case"] for r in rows)}
    groups["all"] = rows
    return groups


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _term_summary(rs: list[dict]) -> dict:
    """The interpolation term against the construction's error over rows ``rs``: means, and interp / construction
    (mean, min, max, how many are 0) where the construction's error is above 0.1 nm."""
    out: dict = {}
    if all("construction_nm" in r for r in rs):
        out["construction_nm_mean"] = float(np.mean([r["construction_nm"] for r in rs]))
        out["knot_noise_nm_mean"] = float(np.mean([r["knot_noise_nm"] for r in rs]))
    if all(r.get("interpolation_error_nm") is not None for r in rs):
        out["interp_nm_mean"] = float(np.mean([r["interpolation_error_nm"] for r in rs]))
        out["interp_zero"] = int(sum(r["interpolation_error_nm"] == 0.0 for r in rs))
    q = np.array([x for x in (_interp_ratio(r) for r in rs) if x is not None])
    if len(q):
        out.update(interp_ratio_mean=float(q.mean()), interp_ratio_min=float(q.min()), interp_ratio_max=float(q.max()))
    return out


def _term_text(row: dict) -> str:
    if "interp_ratio_mean" not in row:
        return "-"
    return (f"{row['interp_ratio_mean']:.2f} [{row['interp_ratio_min']:.2f}, {row['interp_ratio_max']:.2f}]")


def main_comet(args: argparse.Namespace) -> int:
    before = {}
    if args.before is not None:
        before = {(r["case"], r["seed"]): r for r in json.loads(args.before.read_text())["rows"]}
    rows = []
    print("| case | seed | rows | actual nm | reported nm | reported/actual | before nm | before/actual | "
          "half-diff nm | block frames | construction nm | interp nm | knot noise nm | s (split-half) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    if args.rows is not None:  # the rows of an earlier run of this script, summarised again (with --before)
        done = json.loads(args.rows.read_text())["rows"]
        jobs = [(r["case"], r["seed"], r) for r in done]
    else:
        jobs = [(name, seed, None) for name in args.cases.split(",") for seed in range(args.seeds)]
    for name, seed, r in jobs:
        r = {k: v for k, v in r.items() if not k.startswith("before")} if r is not None else run_comet(
            name, seed, args.segments, args.scale, args.backend)
        b = before.get((name, seed))
        if b is not None:
            # against that run's own actual error: a change of the full estimate (COMET's windows, session 36)
            # changes the actual error too
            r.update(before_nm=b["reported_nm"], before_ratio=b["reported_nm"] / b["actual_nm"],
                     before_actual_nm=b["actual_nm"], before_seconds=b["seconds_split_half"])
        rows.append(r)
        bn = "-" if b is None else f"{r['before_nm']:.2f}"
        br = "-" if b is None else f"{r['before_ratio']:.2f}"
        print(f"| {name} | {seed} | {r['rows']:,} | {r['actual_nm']:.2f} | {r['reported_nm']:.2f} | "
              f"{r['ratio']:.2f} | {bn} | {br} | {r.get('half_difference_nm', float('nan')):.2f} | "
              f"{r.get('half_block_frames', '-')} | {_f(r.get('construction_nm'))} | "
              f"{_f(r.get('interpolation_error_nm'))} | {_f(r.get('knot_noise_nm'))} | {r['seconds_split_half']:.1f} |",
              flush=True)
    summary = []
    print()
    print("| case | seeds | rows (mean) | actual nm (mean) | reported/actual gmean [min, max] | "
          "before/actual gmean [min, max] | construction nm (mean) | interp nm (mean; 0s) | "
          "interp/construction mean [min, max] | s split-half (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in _groups(rows).items():
        g, lo, hi = _gstats(np.array([r["ratio"] for r in rs]))
        row = {"case": name, "seeds": len(rs), "rows_mean": float(np.mean([r["rows"] for r in rs])),
               "actual_nm_mean": float(np.mean([r["actual_nm"] for r in rs])),
               "ratio_gmean": g, "ratio_min": lo, "ratio_max": hi,
               "seconds_split_half_mean": float(np.mean([r["seconds_split_half"] for r in rs])), **_term_summary(rs)}
        bt = "-"
        if all("before_ratio" in r for r in rs):
            bg, blo, bhi = _gstats(np.array([r["before_ratio"] for r in rs]))
            row.update(before_ratio_gmean=bg, before_ratio_min=blo, before_ratio_max=bhi)
            bt = f"{bg:.2f} [{blo:.2f}, {bhi:.2f}]"
        summary.append(row)
        iz = "-" if "interp_nm_mean" not in row else f"{row['interp_nm_mean']:.2f}; {row['interp_zero']}"
        print(f"| {name} | {len(rs)} | {row['rows_mean']:,.0f} | {row['actual_nm_mean']:.2f} | {g:.2f} [{lo:.2f}, "
              f"{hi:.2f}] | {bt} | {_f(row.get('construction_nm_mean'))} | {iz} | {_term_text(row)} | "
              f"{row['seconds_split_half_mean']:.1f} |", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"engine": "comet", "n_frames": N_FRAMES, "segments": args.segments,
                                        "scale": args.scale, "cases": {k: list(v) for k, v in CASES.items()},
                                        "before": str(args.before) if args.before is not None else None,
                                        "rows_from": str(args.rows) if args.rows is not None else None,
                                        "rows": rows, "summary": summary}, indent=1))
        print(f"wrote {args.out}")
    return 0


def _has_split_half() -> bool:
    import inspect

    return "split_half" in inspect.signature(rcc_drift).parameters


def main(argv=None) -> int:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before COMET imports numba
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=("rcc", "comet"), default="rcc", help="drift engine (default rcc)")
    ap.add_argument("--scale", type=float, default=1.0, help="times the molecules of every case (default 1)")
    ap.add_argument("--backend", default=None, help="COMET backend (default: fastest available)")
    ap.add_argument("--before", type=Path, default=None,
                    help="JSON of an earlier run (same engine), compared row by row")
    ap.add_argument("--rows", type=Path, default=None,
                    help="COMET: take the rows from this JSON of an earlier run instead of running (to add --before)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per case (0..N-1)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names: " + ", ".join(CASES))
    ap.add_argument("--segments", type=int, default=10, help="time windows (default 10, as plexloc drift)")
    ap.add_argument("--out", type=Path, default=None, help="write rows and summary as JSON here")
    args = ap.parse_args(argv)
    if args.engine == "comet":
        return main_comet(args)
    before = {}
    if args.before is not None:  # an RCC output of this script from an earlier checkout: its uncertainty and term
        before = {(r["case"], r["seed"]): r for r in json.loads(args.before.read_text())["rows"]}
    rows = []
    print("| case | seed | rows | actual nm | old nm | old/actual | new nm | new/actual | half-diff/2 nm | interp nm "
          "| construction nm | interp/construction | knot noise nm | s (split-half) | s (without) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        for seed in range(args.seeds):
            r = run_one(name, seed, args.segments, args.scale)
            b = before.get((name, seed))
            if b is not None:
                r.update(before_nm=b["new_nm"], before_ratio=b["new_nm"] / r["actual_nm"],
                         before_interp_nm=b.get("interpolation_error_nm"), before_actual_nm=b["actual_nm"])
            rows.append(r)
            hd = "-" if r["half_difference_nm"] is None else f"{r['half_difference_nm'] / 2:.2f}"
            ip = "-" if r["interpolation_error_nm"] is None else f"{r['interpolation_error_nm']:.2f}"
            sw = "-" if r["seconds_without"] is None else f"{r['seconds_without']:.1f}"
            print(f"| {name} | {seed} | {r['rows']:,} | {r['actual_nm']:.2f} | {r['old_nm']:.2f} | "
                  f"{r['old_ratio']:.2f} | {r['new_nm']:.2f} | {r['new_ratio']:.2f} | {hd} | {ip} | "
                  f"{_f(r.get('construction_nm'))} | {_f(_interp_ratio(r))} | {_f(r.get('knot_noise_nm'))} | "
                  f"{r['seconds_split_half']:.1f} | {sw} |", flush=True)
    summary = []
    print()
    print("| case | seeds | actual nm (mean) | old/actual gmean [min, max] | new/actual gmean [min, max] | "
          "construction nm (mean) | interp nm (mean; 0s) | interp/construction mean [min, max] | "
          "s split-half / without |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rs in _groups(rows).items():
        og, olo, ohi = _gstats(np.array([r["old_ratio"] for r in rs]))
        ng, nlo, nhi = _gstats(np.array([r["new_ratio"] for r in rs]))
        s1 = float(np.mean([r["seconds_split_half"] for r in rs]))
        s0 = [r["seconds_without"] for r in rs]
        s0m = float(np.mean(s0)) if None not in s0 else None
        row = {"case": name, "seeds": len(rs), "actual_nm_mean": float(np.mean([r["actual_nm"] for r in rs])),
               "old_ratio_gmean": og, "old_ratio_min": olo, "old_ratio_max": ohi,
               "new_ratio_gmean": ng, "new_ratio_min": nlo, "new_ratio_max": nhi,
               "seconds_split_half_mean": s1, "seconds_without_mean": s0m, **_term_summary(rs)}
        summary.append(row)
        if all("before_ratio" in r for r in rs):
            bg, blo, bhi = _gstats(np.array([r["before_ratio"] for r in rs]))
            bi = [r["before_interp_nm"] for r in rs]
            bq = np.array([r["before_interp_nm"] / r["construction_nm"] for r in rs
                           if r.get("construction_nm", 0.0) > 0.1 and r["before_interp_nm"] is not None])
            row.update(before_ratio_gmean=bg, before_ratio_min=blo, before_ratio_max=bhi,
                       before_interp_nm_mean=float(np.mean(bi)), before_interp_zero=int(sum(v == 0.0 for v in bi)))
            if len(bq):
                row.update(before_interp_ratio_mean=float(bq.mean()), before_interp_ratio_min=float(bq.min()),
                           before_interp_ratio_max=float(bq.max()))
        iz = "-" if "interp_nm_mean" not in row else f"{row['interp_nm_mean']:.2f}; {row['interp_zero']}"
        print(f"| {name} | {len(rs)} | {row['actual_nm_mean']:.2f} | {row['old_ratio_gmean']:.2f} "
              f"[{row['old_ratio_min']:.2f}, {row['old_ratio_max']:.2f}] | {row['new_ratio_gmean']:.2f} "
              f"[{row['new_ratio_min']:.2f}, {row['new_ratio_max']:.2f}] | {_f(row.get('construction_nm_mean'))} | "
              f"{iz} | {_term_text(row)} | {s1:.1f} / {'-' if s0m is None else f'{s0m:.1f}'} |", flush=True)
    if before:
        print()
        print("| case | before/actual gmean [min, max] | after/actual gmean [min, max] | construction nm (mean) | "
              "interp before nm (mean; 0s) | interp after nm (mean; 0s) | interp/construction before | after |")
        print("|---|---|---|---|---|---|---|---|")
        for row in summary:
            if "before_ratio_gmean" not in row:
                continue
            bt = "-" if "before_interp_ratio_mean" not in row else (
                f"{row['before_interp_ratio_mean']:.2f} [{row['before_interp_ratio_min']:.2f}, "
                f"{row['before_interp_ratio_max']:.2f}]")
            print(f"| {row['case']} | {row['before_ratio_gmean']:.2f} [{row['before_ratio_min']:.2f}, "
                  f"{row['before_ratio_max']:.2f}] | {row['new_ratio_gmean']:.2f} [{row['new_ratio_min']:.2f}, "
                  f"{row['new_ratio_max']:.2f}] | {_f(row.get('construction_nm_mean'))} | "
                  f"{row['before_interp_nm_mean']:.2f}; {row['before_interp_zero']} | {row['interp_nm_mean']:.2f}; "
                  f"{row['interp_zero']} | {bt} | {_term_text(row)} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"engine": "rcc", "n_frames": N_FRAMES, "segments": args.segments,
                                        "scale": args.scale,
                                        "before": str(args.before) if args.before is not None else None,
                                        "cases": {k: list(v) for k, v in CASES.items()},
                                        "rows": rows, "summary": summary}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
