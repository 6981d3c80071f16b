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

Session 37 (the interpolation term's two faults, diagnosed; the term unchanged): ``--save-args DIR`` keeps every
table's term inputs (npz), ``--rescore DIR [--before-src OLD/drift.py]`` scores the term again on them without running
the engine (COMET: 40-260 s a table on the shared 2-core CPU), ``--rescore DIR --diagnose`` compares the term with the
construction's error from exact knots and with the knots' noise taken out several ways:

    python bench/drift_uncertainty.py --seeds 5 --scale 1 --save-args DIR1 --out bench/drift_interpolation37_rcc_s1.json
    python bench/drift_uncertainty.py --rescore DIR1 --diagnose --out bench/drift_interpolation37_rcc_s1_diagnosis.json
    (and --scale 0.25 -> ..._rcc_s025*.json)
    python bench/drift_uncertainty.py --engine comet --seeds 3 --scale 0.25 \
        --cases rings_sine,clusters_exp_p15,lines_linear,clusters_fastexp_p10 --save-args DIR2   (stopped after 8)
    python bench/drift_uncertainty.py --rescore DIR2 --diagnose --out bench/drift_interpolation37_comet_s025_diagnosis.json

Session 38 (the knots' noise as a correlated noise, tried and not adopted): ``--diagnose --covariance`` adds the term
with the noise taken out as a lag-1 correlated noise estimated from the halves' difference at the knots, three ways,
and the split-half term from that model (:func:`_covariance_variants`), on the same saved inputs:

    python bench/drift_uncertainty.py --rescore DIR1 --diagnose --covariance --out bench/drift_covariance37_rcc_s1.json
    (and DIR of --scale 0.25 -> ..._rcc_s025.json; COMET: session 37's 8 tables and 6 more, seeds 3-4 of
    clusters_exp_p15 and rings_sine and 0-1 of clusters_fastexp_p10, in one folder -> ..._comet_s025.json)
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
    """Wraps ``_interpolation_error`` (and ``_knot_variance``) while the bench runs and keeps the arguments of their
    last calls: the term's inputs, and the halves' curves' difference that the knots' noise variance comes from."""

    def __enter__(self):
        self.args = None
        self.half_difference = None
        self.inner = getattr(drift_module, "_interpolation_error", None)
        self.inner_var = getattr(drift_module, "_knot_variance", None)
        if self.inner is not None:
            def wrapped(frame, seg, centre, knots, frames, knot_var, *a, **k):
                self.args = (np.asarray(frame), np.asarray(seg), np.asarray(centre, dtype=float),
                             np.asarray(knots, dtype=float)[:, :2].copy(), np.asarray(frames), float(knot_var))
                return self.inner(frame, seg, centre, knots, frames, knot_var, *a, **k)
            drift_module._interpolation_error = wrapped
        if self.inner_var is not None:
            def wrapped_var(half_difference, *a, **k):
                self.half_difference = np.asarray(half_difference, dtype=float).copy()
                return self.inner_var(half_difference, *a, **k)
            drift_module._knot_variance = wrapped_var
        return self

    def __exit__(self, *exc):
        if self.inner is not None:
            drift_module._interpolation_error = self.inner
        if self.inner_var is not None:
            drift_module._knot_variance = self.inner_var
        return False

    def save(self, path: Path, truth: np.ndarray, **scalars) -> None:
        """The term's inputs, the halves' difference and the truth as ``path`` (npz), to score the term again
        (``--rescore``) without running the engine: COMET's knots cost minutes a table."""
        if self.args is None or self.half_difference is None:
            return
        frame, seg, centre, knots, frames, knot_var = self.args
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, frame=frame, seg=seg, centre=centre, knots=knots, frames=frames,
                            knot_var=knot_var, half_difference=self.half_difference, truth=truth[:, :2],
                            **{k: np.asarray(v) for k, v in scalars.items()})


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


def run_one(name: str, seed: int, segments: int = 10, scale: float = 1.0, save_dir: Path | None = None) -> dict:
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
    if save_dir is not None:
        term.save(save_dir / f"rcc_{name}_{seed}.npz", truth, case=name, seed=seed, engine="rcc", rows=len(t),
                  actual_nm=actual, half_difference_nm=info.get("half_difference_nm"),
                  noise_scale=drift_module.RCC_HALF_DIFFERENCE_SCALE, reported_nm=new,
                  interpolation_error_nm=info.get("interpolation_error_nm"))
    return {"case": name, "seed": seed, "segments": segments, "scale": scale, "rows": len(t), "actual_nm": actual,
            "old_nm": old, "new_nm": new, **error_parts(term.args, truth),
            "old_ratio": old / actual, "new_ratio": new / actual,
            "half_difference_nm": info.get("half_difference_nm"), "interpolation_error_nm": info.get(
                "interpolation_error_nm"), "half_block_frames": info.get("half_block_frames"),
            "seconds_split_half": s_full, "seconds_without": s_plain if plain is not None else None,
            "unreliable": bool(info.get("unreliable", False))}


def run_comet(name: str, seed: int, segments: int = 10, scale: float = 1.0, backend: str | None = None,
              save_dir: Path | None = None) -> dict:
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
    if save_dir is not None:
        term.save(save_dir / f"comet_{name}_{seed}.npz", truth, case=name, seed=seed, engine="comet", rows=len(t),
                  actual_nm=actual, half_difference_nm=info.get("half_difference_nm"),
                  noise_scale=drift_module.COMET_HALF_DIFFERENCE_SCALE, reported_nm=reported,
                  interpolation_error_nm=info.get("interpolation_error_nm"))
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
            name, seed, args.segments, args.scale, args.backend, args.save_args)
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


def _load_module(path: Path):
    """A drift.py of another checkout as a module of its own (``--before-src``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("plexloc_drift_before", path)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def saved_term(module, z) -> float:
    """The interpolation term that ``module`` (a drift.py) gives on the saved inputs ``z`` of one table: the knots'
    noise variance from the halves' difference at the knots, then the term, as the engines do."""
    frames, centre = z["frames"], z["centre"]
    if hasattr(module, "_interpolation_term"):
        return float(module._interpolation_term(z["frame"], z["seg"], centre, z["knots"], frames,
                                                z["half_difference"], float(z["noise_scale"])))
    kv = module._knot_variance(z["half_difference"], centre, frames, float(z["noise_scale"]))
    if not np.isfinite(kv):
        return 0.0
    return float(module._interpolation_error(z["frame"], z["seg"], centre, z["knots"], frames, kv))


def _end_curvature_basis(centre: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``--diagnose``'s other plausible drift: the not-a-knot spline, past the end knots its value, slope and its own
    curvature at the end knot (the trend of the curvature over the end knots, where the term's basis takes the mean
    curvature of the 4 end knots' parabola)."""
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(centre, np.eye(len(centre)), axis=0, bc_type="not-a-knot")
    f = np.asarray(f, dtype=float)
    out = spline(np.clip(f, centre[0], centre[-1]))
    for past, end in ((f < centre[0], centre[0]), (f > centre[-1], centre[-1])):
        dt = (f[past] - end)[:, None]
        out[past] = spline(end)[None] + dt * spline(end, 1)[None] + 0.5 * dt**2 * spline(end, 2)[None]
    return out


def _construction_map(frame, seg, centre, ev, basis) -> np.ndarray:
    """``(len(ev), n)``: the construction's error on the plausible drift ``basis`` through the knots, as a linear map
    of the knots (what ``_interpolation_error`` squares), constant offset removed."""
    n = len(centre)
    uf, inv = np.unique(frame, return_inverse=True)
    counts = np.bincount(inv.ravel(), minlength=len(uf)).astype(float)
    useg = np.zeros(len(uf), dtype=np.int64)
    useg[inv.ravel()] = seg
    wsum = np.zeros((n, n))
    np.add.at(wsum, useg, counts[:, None] * basis(centre, uf))
    means = wsum / np.bincount(useg, weights=counts, minlength=n)[:, None]
    b = drift_module._curve(centre, means, ev.astype(float)) - basis(centre, ev)
    return b - b.mean(axis=0)


def _term_with_noise(b: np.ndarray, knots: np.ndarray, noise: np.ndarray, ev: np.ndarray, centre: np.ndarray) -> float:
    """The term as ``_interpolation_error`` makes it (start, end and middle each >= 0), with the noise expected per
    frame ``noise`` taken out."""
    raw = np.sum((b @ knots) ** 2, axis=1)
    start, end = ev < centre[1], ev > centre[-2]
    total = sum(max(float(raw[r].sum() - noise[r].sum()), 0.0) for r in (start, end, ~start & ~end))
    return float(np.sqrt(total / len(ev)))


def _lag1_model(d: np.ndarray) -> tuple[float, float]:
    """``(variance, lag-1 correlation)`` per axis of knots' errors ``d`` ``(n, 2)`` under a lag-1 (MA(1)) model
    ``cov = v (I + rho (S + S^T))``, from the mean squares of their first and second differences pooled over the axes
    (both blind to a constant offset, which the curve's error does not see): ``E[diff^2] = 2 v (1 - rho)``,
    ``E[diff2^2] = v (6 - 8 rho)``. rho is kept in [-0.5, 0.5], where the model is a covariance."""
    a = float(np.mean(np.diff(d, axis=0) ** 2))
    c = float(np.mean(np.diff(d, 2, axis=0) ** 2))
    v = (4.0 * a - c) / 2.0
    if not v > 0.0:
        return a / 3.0, -0.5
    rho = float(np.clip(1.0 - a / (2.0 * v), -0.5, 0.5))
    return a / (2.0 * (1.0 - rho)), rho


def _covariance_variants(z, b: np.ndarray, knots: np.ndarray, dk: np.ndarray, frames: np.ndarray,
                         centre: np.ndarray, scale: float) -> tuple[dict, dict]:
    """``--diagnose --covariance`` (session 38): the term with the knots' noise taken out as a *correlated* noise
    estimated from the halves' difference at the knots ``hd`` (times scale / 2, as a full knot's error): ``halves_lag1``
    (the lag-1 model of :func:`_lag1_model`, pooled over x and y), ``halves_mapped`` (``hd`` itself pushed through the
    term's map, any covariance, one realization), ``halves_diff2`` (an iid variance read from the second differences,
    what a bend sees; unbiased for iid knots, where the shipped variance of the knots less their mean is 0.9x at 10
    knots), and ``true_lag1`` (the lag-1 model of the knots' true errors). Also the split-half term from the lag-1
    model (the curve's noise ``sqrt(mean_f c_f^T cov c_f)``, x and y) and the lag-1 figures."""
    at = np.clip(np.round(centre).astype(np.int64) - int(frames[0]), 0, len(frames) - 1)
    hd = z["half_difference"][at] * scale / 2.0
    hd = hd - hd.mean(axis=0)
    n = len(centre)
    a_f = np.sum(b**2, axis=1)
    c_f = 2.0 * np.sum(b[:, 1:] * b[:, :-1], axis=1)
    v_h, rho_h = _lag1_model(hd)
    v_t, rho_t = _lag1_model(dk)
    terms = {"halves_lag1": _term_with_noise(b, knots, 2 * v_h * (a_f + rho_h * c_f), frames, centre),
             "halves_mapped": _term_with_noise(b, knots, np.sum((b @ hd) ** 2, axis=1), frames, centre),
             "halves_diff2": _term_with_noise(b, knots, 2 * float(np.mean(np.diff(hd, 2, axis=0) ** 2)) / 6 * a_f,
                                              frames, centre),
             "true_lag1": _term_with_noise(b, knots, 2 * v_t * (a_f + rho_t * c_f), frames, centre)}
    cmap = drift_module._curve(centre, np.eye(n), frames.astype(float))
    cmap -= cmap.mean(axis=0)
    cov = v_h * (np.eye(n) + rho_h * (np.eye(n, k=1) + np.eye(n, k=-1)))
    split_lag1 = float(np.sqrt(2.0 * np.mean(np.einsum("fi,ij,fj->f", cmap, cov, cmap))))

    def lag1(d):  # as session 37 measured it: the knots less their mean
        return float(np.mean(d[1:] * d[:-1]) / np.mean(d**2))

    extra = {"lag1_model_halves": rho_h, "lag1_model_true": rho_t, "lag1_halves": lag1(hd), "lag1_true": lag1(dk),
             "split_half_lag1_nm": split_lag1}
    return terms, extra


def main_diagnose(args: argparse.Namespace) -> int:
    """Where the term goes wrong, on saved inputs (``--save-args``): the term against the construction's error of
    every table from the true windows' means without noise (``true_knots``; ``true_knots_trend`` with the end
    curvature's trend, :func:`_end_curvature_basis`), and from the estimated knots with the noise taken out as the
    knots' actual errors make it in the term (``realized``: what an exact noise model would give), as iid errors of
    the knots' true mean variance (``iid_true``), and as shipped (``halves``: iid, the variance from the halves)."""
    rows = []
    for path in sorted(args.rescore.glob("*.npz")):
        z = np.load(path)
        frame, seg, centre, frames, truth, knots = (z[k] for k in ("frame", "seg", "centre", "frames", "truth",
                                                                    "knots"))
        means = np.array([truth[frame[seg == k]].mean(axis=0) for k in range(len(centre))])
        construction = drift_error_rms(drift_module._curve(centre, means, frames.astype(float)), truth[frames])
        dk = knots - means
        dk -= dk.mean(axis=0)
        scale = float(z["noise_scale"])
        b = _construction_map(frame, seg, centre, frames, drift_module._plausible_drift_basis)
        b_trend = _construction_map(frame, seg, centre, frames, _end_curvature_basis)
        kv = drift_module._knot_variance(z["half_difference"], centre, frames, scale)
        zero = np.zeros(len(frames))
        terms = {"true_knots": _term_with_noise(b, means, zero, frames, centre),
                 "true_knots_trend": _term_with_noise(b_trend, means, zero, frames, centre),
                 "realized": _term_with_noise(b, knots, np.sum((b @ dk) ** 2, axis=1), frames, centre),
                 "iid_true": _term_with_noise(b, knots, 2 * float(np.mean(dk**2)) * np.sum(b**2, axis=1), frames,
                                              centre),
                 "halves": _term_with_noise(b, knots, 2 * kv * np.sum(b**2, axis=1), frames, centre)}
        noise = scale * float(z["half_difference_nm"]) / 2.0
        actual = float(z["actual_nm"])
        extra: dict = {}
        if args.covariance:
            more, extra = _covariance_variants(z, b, knots, dk, frames, centre, scale)
            terms.update(more)
        ratio = {k: float(np.hypot(noise, v) / actual) for k, v in terms.items()}
        if args.covariance:  # the split-half term alone, and from the lag-1 model with that model's term
            ratio["split_half_only"] = noise / actual
            ratio["lag1_both"] = float(np.hypot(extra["split_half_lag1_nm"], terms["halves_lag1"]) / actual)
        rows.append({"engine": str(z["engine"]), "case": str(z["case"]), "seed": int(z["seed"]), "actual_nm": actual,
                     "construction_nm": construction, "noise_nm": noise, "knot_var_nm2": kv,
                     "knot_var_true_nm2": float(np.mean(dk**2)), "terms_nm": terms, **extra, "ratio": ratio})
    names = list(rows[0]["terms_nm"]) if rows else []
    totals = [k for k in rows[0]["ratio"] if k not in names[:2]] if rows else []
    print("| case | tables | construction nm | knot var halves / true nm^2 | term / construction: "
          + ", ".join(names) + " | reported/actual gmean: " + ", ".join(totals) + " |")
    print("|---|---|---|---|---|---|")
    summary = []
    for name, rs in _groups(rows).items():
        c = np.array([r["construction_nm"] for r in rs])
        bent = c > 0.1
        q = {k: float(np.mean([r["terms_nm"][k] / r["construction_nm"] for r in rs if r["construction_nm"] > 0.1]))
             if bent.any() else None for k in names}
        nm = {k: float(np.mean([r["terms_nm"][k] for r in rs])) for k in names}
        stats = {k: _gstats(np.array([r["ratio"][k] for r in rs])) for k in rows[0]["ratio"]}
        g = {k: v[0] for k, v in stats.items()}
        summary.append({"case": name, "tables": len(rs), "construction_nm_mean": float(c.mean()),
                        "term_over_construction_mean": q, "term_nm_mean": nm, "ratio_gmean": g,
                        "ratio_min": {k: v[1] for k, v in stats.items()},
                        "ratio_max": {k: v[2] for k, v in stats.items()}})
        qt = ", ".join(f"{q[k]:.2f}" if q[k] is not None else f"{nm[k]:.2f} nm" for k in names)
        kv = f"{np.mean([r['knot_var_nm2'] for r in rs]):.2f} / {np.mean([r['knot_var_true_nm2'] for r in rs]):.2f}"
        print(f"| {name} | {len(rs)} | {c.mean():.2f} | {kv} | {qt} | "
              + ", ".join(f"{g[k]:.2f}" for k in totals) + " |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"diagnose": str(args.rescore), "rows": rows, "summary": summary}, indent=1))
        print(f"wrote {args.out}")
    return 0


def main_rescore(args: argparse.Namespace) -> int:
    """The term and the uncertainty again from saved inputs, with this checkout's drift.py and (``--before-src``) an
    earlier one: the knots are the same, only the term's code differs."""
    before = _load_module(args.before_src) if args.before_src is not None else None
    rows = []
    files = sorted(args.rescore.glob("*.npz"))
    print("| engine | case | seed | actual nm | construction nm | noise nm | term before | term after | "
          "reported/actual before | after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in files:
        z = np.load(path)
        case, seed, engine = str(z["case"]), int(z["seed"]), str(z["engine"])
        frame, seg, centre, frames, truth = z["frame"], z["seg"], z["centre"], z["frames"], z["truth"]
        means = np.array([truth[frame[seg == k]].mean(axis=0) for k in range(len(centre))])
        through_true = drift_module._curve(centre, means, frames.astype(float))
        construction = drift_error_rms(through_true, truth[frames])
        knot_noise = drift_error_rms(drift_module._curve(centre, z["knots"], frames.astype(float)), through_true)
        noise = float(z["noise_scale"]) * float(z["half_difference_nm"]) / 2.0
        after = saved_term(drift_module, z)
        actual = float(z["actual_nm"])
        r = {"engine": engine, "case": case, "seed": seed, "rows": int(z["rows"]), "actual_nm": actual,
             "construction_nm": construction, "knot_noise_nm": knot_noise, "noise_nm": noise, "interpolation_error_nm": after,
             "reported_nm": float(np.hypot(noise, after)), "saved_reported_nm": float(z["reported_nm"])}
        r["ratio"] = r["reported_nm"] / actual
        r["new_ratio"] = r["ratio"]
        if before is not None:
            b = saved_term(before, z)
            r.update(before_interp_nm=b, before_nm=float(np.hypot(noise, b)))
            r["before_ratio"] = r["before_nm"] / actual
        rows.append(r)
        print(f"| {engine} | {case} | {seed} | {actual:.2f} | {construction:.2f} | {noise:.2f} | "
              f"{_f(r.get('before_interp_nm'))} | {after:.2f} | {_f(r.get('before_ratio'))} | {r['ratio']:.2f} |")
    summary = []
    print()
    print("| case | tables | construction nm (mean) | term before (mean) | term after (mean) | "
          "term/construction before | after | reported/actual before gmean [min, max] | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rs in _groups(rows).items():
        g, lo, hi = _gstats(np.array([r["ratio"] for r in rs]))
        row = {"case": name, "tables": len(rs), "ratio_gmean": g, "ratio_min": lo, "ratio_max": hi,
               **_term_summary(rs)}
        bt, bq = "-", "-"
        if before is not None:
            bg, blo, bhi = _gstats(np.array([r["before_ratio"] for r in rs]))
            row.update(before_ratio_gmean=bg, before_ratio_min=blo, before_ratio_max=bhi,
                       before_interp_nm_mean=float(np.mean([r["before_interp_nm"] for r in rs])))
            q = np.array([r["before_interp_nm"] / r["construction_nm"] for r in rs if r["construction_nm"] > 0.1])
            if len(q):
                row.update(before_interp_ratio_mean=float(q.mean()), before_interp_ratio_min=float(q.min()),
                           before_interp_ratio_max=float(q.max()))
                bq = f"{q.mean():.2f} [{q.min():.2f}, {q.max():.2f}]"
            bt = f"{bg:.2f} [{blo:.2f}, {bhi:.2f}]"
        summary.append(row)
        print(f"| {name} | {len(rs)} | {row['construction_nm_mean']:.2f} | "
              f"{_f(row.get('before_interp_nm_mean'))} | {row['interp_nm_mean']:.2f} | {bq} | {_term_text(row)} | "
              f"{bt} | {g:.2f} [{lo:.2f}, {hi:.2f}] |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rescore": str(args.rescore), "before_src": str(args.before_src),
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
    ap.add_argument("--save-args", type=Path, default=None,
                    help="keep every table's term inputs here (npz per case and seed), for --rescore")
    ap.add_argument("--rescore", type=Path, default=None,
                    help="score the term again on the npz files of --save-args in this folder (no engine run), with "
                         "this checkout's code and, with --before-src, an earlier drift.py's")
    ap.add_argument("--before-src", type=Path, default=None,
                    help="with --rescore: the drift.py of an earlier checkout, scored on the same inputs")
    ap.add_argument("--diagnose", action="store_true",
                    help="with --rescore: the term against the construction's error from true knots and with the "
                         "knots' noise taken out in several ways (where the term goes wrong)")
    ap.add_argument("--covariance", action="store_true",
                    help="with --diagnose: also the knots' noise as a correlated (lag-1) noise from the halves' "
                         "difference, in the term and in the split-half term (session 38)")
    args = ap.parse_args(argv)
    if args.rescore is not None:
        return main_diagnose(args) if args.diagnose else main_rescore(args)
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
            r = run_one(name, seed, args.segments, args.scale, args.save_args)
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
