"""RCC's lateral uncertainty on sparse single-filament tables: does it see the error along the filament, and would a
bootstrap of the on-events see it better? (session 43; no change to the library came of it: see below)

    OMP_NUM_THREADS=1 .venv/bin/python bench/drift43.py --boot 0 --seeds 20 --rows 300,500,1000 \
        --structures lines,3d_lines --out bench/drift43_calibration.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/drift43.py --boot 20 --taus 1,0.5 --seeds 5 --rows 500 \
        --structures lines,3d_lines,uniform,clusters --out bench/drift43_bootstrap.json

The tables are ``bench/drift_calibration40.py``'s (``drift_engines39``'s generator: a 10 um field, 5 on-events per
molecule of 2.5 frames, 10 nm precision; 300 / 500 / 1,000 rows over 1,000 frames are 24 / 40 / 80 molecules, on one
filament up to 500 rows and on two at 1,000; ``3d_lines`` the same lines through z -400..+400 nm with a wobble), more
seeds than there (3 a case). RCC as the CLI runs it (10 windows, 20 nm pixels, ``max_drift_nm`` 300). Per table:

- ``actual_nm`` (``drift_error_rms``), ``reported_nm`` (``info["uncertainty_nm"]``, the linearized peaks of session
  40, ``_rcc_noise``), ``none_nm`` (the drift's own RMS), ``hurts`` (actual > none), ``unreliable`` (RCC's flag);
- ``along_nm`` / ``across_nm``: the actual error's RMS along and across the localizations' principal axis (the
  filament's direction where there is one filament; ``elongation`` the ratio of the two axes' spreads);
- with ``--boot B``: for each ``tau`` in ``--taus``, a bootstrap of the estimate over the on-events (the
  independent units of ``_rcc_noise``, ``_events``): every on-event's rows taken ``w`` times, ``w`` Poisson(1)
  (``tau`` 1: the ordinary bootstrap) or, for ``tau`` < 1, 0 / 1 / 2 with probabilities ``tau²/2``, ``1 - tau²``,
  ``tau²/2`` (mean 1, variance ``tau²``: a perturbation bootstrap that rarely drops a whole event), the windows'
  drifts found again by ``_rcc_solve`` (the same windows, pixels and blur, the full search: a peak may jump to
  another maximum of the cross-correlation), their deviations from the table's own solution divided by ``tau``, and
  their covariance taken through the curve (``_curve_noise``) with the interpolation term (``_interpolation_error``)
  as RCC's own uncertainty is: ``boot{tau}_nm``, and the flag ``drift_unreliable`` would give it.

Summary per structure and rows: the ratio reported / actual (geometric mean, range, within 0.7-1.4x) for the
linearized peaks and each bootstrap, and the flags: flagged, flagged though the correction helps, not flagged
though it hurts (printed as a markdown table; JSON ``rows`` and ``summary``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import drift_calibration40 as c40  # noqa: E402

BAND = (0.7, 1.4)


def _weights(rng: np.random.Generator, n: int, tau: float) -> np.ndarray:
    """Integer bootstrap weights of ``n`` on-events: Poisson(1) for ``tau`` >= 1, else 0 / 1 / 2 (variance tau²)."""
    if tau >= 1.0:
        return rng.poisson(1.0, n)
    return rng.choice(3, size=n, p=[tau**2 / 2, 1.0 - tau**2, tau**2 / 2])


def run_table(structure: str, drift: str, rows: int, seed: int, boot: int, taus: list[float]) -> dict:
    from plexloc.post import drift as D

    table, truth = c40.case_table(structure, drift, rows, seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", D.UnreliableDriftWarning)
        res = D.rcc_drift(table, n_segments=10, render_px_nm=20.0, max_drift_nm=300.0, device="cpu")
    seconds = time.perf_counter() - t0
    frames, info = res.frames, res.info
    true = truth[frames]
    err = res.drift_nm[:, :2] - true[:, :2]
    err -= err.mean(axis=0)
    frame, x, y = table["frame"], table["x_nm"], table["y_nm"]
    pos = np.column_stack([x, y]) - truth[frame, :2]
    pos -= pos.mean(axis=0)
    spread, axes = np.linalg.eigh(pos.T @ pos)
    row = {"structure": structure, "drift": drift, "rows_asked": rows, "seed": seed, "rows": len(table),
           "actual_nm": D.drift_error_rms(res.drift_nm, true), "reported_nm": info["uncertainty_nm"],
           "none_nm": D.drift_error_rms(np.zeros_like(res.drift_nm), true), "curve_rms_nm": info["curve_rms_nm"],
           "unreliable": bool(info.get("unreliable", False)), "pair_residual_ratio": info.get("pair_residual_ratio"),
           "along_nm": float(np.sqrt(np.mean((err @ axes[:, 1]) ** 2))),
           "across_nm": float(np.sqrt(np.mean((err @ axes[:, 0]) ** 2))),
           "elongation": float(np.sqrt(spread[1] / max(spread[0], 1e-9))), "seconds": seconds}
    row["hurts"] = bool(row["actual_nm"] > row["none_nm"])
    if boot <= 0:
        return row
    # the estimate's own windows, pixels and blur (as rcc_drift makes them), and its on-events
    seg, centre = D._segments(frame, 10)
    n_seg = len(centre)
    px, blur = info["render_px_nm"], info["blur_nm"]
    x0, y0 = x.min(), y.min()
    w = int(np.ceil((x.max() - x0) / px)) + 1
    h = int(np.ceil((y.max() - y0) / px)) + 1
    flat = np.minimum(((y - y0) / px).astype(np.int64), h - 1) * w + np.minimum(((x - x0) / px).astype(np.int64), w - 1)
    sol0 = D._rcc_solve(flat, seg, n_seg, h, w, px, blur, 300.0, "cpu")[0]
    curve = D._curve(centre, sol0, frames.astype(float))
    c_xy = curve[frame - frames[0]]
    event = D._events(np.column_stack([x - c_xy[:, 0], y - c_xy[:, 1]]), frame, D.RCC_EVENT_LINK_NM)
    for tau in taus:
        rng = np.random.default_rng([seed, rows, int(round(tau * 1000))])
        t1 = time.perf_counter()
        dev = []
        for _ in range(boot):
            take = _weights(rng, int(event.max()) + 1, tau)[event]
            idx = np.repeat(np.arange(len(frame)), take)
            present = np.bincount(seg[idx], minlength=n_seg) > 0
            if not present.all():  # a window lost every row: this resample says nothing of the windows' drifts
                continue
            sol = D._rcc_solve(flat[idx], seg[idx], n_seg, h, w, px, blur, 300.0, "cpu")[0]
            dev.append((sol - sol0) / tau)
        dev_a = np.array(dev)
        cov = np.stack([dev_a[:, :, c].T @ dev_a[:, :, c] / len(dev_a) for c in range(2)])
        noise, knot_var = D._curve_noise(cov, centre, frames)
        interp = D._interpolation_error(frame, seg, centre, sol0, frames, knot_var)
        unc = float(np.hypot(noise, interp))
        key = f"boot{tau:g}"
        row[f"{key}_nm"] = unc
        row[f"{key}_unreliable"] = bool(D.drift_unreliable(unc, row["curve_rms_nm"]))
        row[f"{key}_resamples"] = len(dev_a)
        row[f"{key}_seconds"] = time.perf_counter() - t1
    return row


def _gm(v):
    v = [x for x in v if x and np.isfinite(x)]
    return float(np.exp(np.mean(np.log(v)))) if v else None


def summary(rows: list[dict], taus: list[float]) -> list[dict]:
    estimators = [("linearized peaks", "reported_nm", "unreliable")] + [
        (f"bootstrap tau {t:g}", f"boot{t:g}_nm", f"boot{t:g}_unreliable") for t in taus]
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["structure"], r["rows_asked"]), []).append(r)
    out = []
    print("| structure | rows | tables | along / across actual (nm rms) | hurts | uncertainty | ratio gm (range) "
          "| in 0.7-1.4x | flagged | flagged, helps | not flagged, hurts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (structure, n), rs in sorted(by.items()):
        along = float(np.sqrt(np.mean([r["along_nm"] ** 2 for r in rs])))
        across = float(np.sqrt(np.mean([r["across_nm"] ** 2 for r in rs])))
        for name, key, flag in estimators:
            ok = [r for r in rs if r.get(key) is not None and r["actual_nm"] > 0]
            if not ok:
                continue
            rat = [r[key] / r["actual_nm"] for r in ok]
            rec = {"structure": structure, "rows_asked": n, "tables": len(ok), "estimator": name,
                   "along_nm_rms": along, "across_nm_rms": across, "hurts": int(sum(r["hurts"] for r in ok)),
                   "ratio_gmean": _gm(rat), "ratio_range": [float(min(rat)), float(max(rat))],
                   "in_band": int(sum(BAND[0] <= v <= BAND[1] for v in rat)),
                   "flagged": int(sum(r[flag] for r in ok)),
                   "flagged_but_helps": int(sum(r[flag] and not r["hurts"] for r in ok)),
                   "unflagged_but_hurts": int(sum((not r[flag]) and r["hurts"] for r in ok))}
            out.append(rec)
            print(f"| {structure} | {n:,} | {len(ok)} | {along:.1f} / {across:.1f} | {rec['hurts']} | {name} | "
                  f"{rec['ratio_gmean']:.2f} ({rec['ratio_range'][0]:.2f}-{rec['ratio_range'][1]:.2f}) | "
                  f"{rec['in_band']} | {rec['flagged']} | {rec['flagged_but_helps']} | {rec['unflagged_but_hurts']} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="500", help="rows asked (300, 500, 1000, ...: drift_calibration40's sizes)")
    ap.add_argument("--structures", default="lines,3d_lines")
    ap.add_argument("--drifts", default="linear,wobble,settling", help="(3d_lines: wobble only, as its generator)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--boot", type=int, default=0, help="bootstrap resamples per table and tau (0: none)")
    ap.add_argument("--taus", default="1", help="bootstrap weight spreads: 1 Poisson(1), < 1 a perturbation bootstrap")
    ap.add_argument("--out", type=Path, default=Path("bench/drift43.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    taus = [float(v) for v in args.taus.split(",")] if args.boot > 0 else []
    rows: list[dict] = []
    t0 = time.perf_counter()
    for n in [int(v) for v in args.rows.split(",")]:
        for structure in args.structures.split(","):
            drifts = ["wobble"] if structure == "3d_lines" else args.drifts.split(",")
            for drift in drifts:
                for seed in range(args.seeds):
                    r = run_table(structure, drift, n, seed, args.boot, taus)
                    rows.append(r)
                    boots = " ".join(f"boot{t:g} {r[f'boot{t:g}_nm']:6.1f}" for t in taus)
                    print(f"{structure:9s} {drift:8s} {n:5d} seed {seed:2d}: actual {r['actual_nm']:6.1f} (along "
                          f"{r['along_nm']:5.1f}, across {r['across_nm']:5.1f}) reported {r['reported_nm']:6.1f} "
                          f"{boots} none {r['none_nm']:5.1f} {'FLAG' if r['unreliable'] else 'ok  '}"
                          f"{' hurts' if r['hurts'] else ''}", flush=True)
                    args.out.write_text(json.dumps({"rows": rows}, indent=1))
    print(f"{time.perf_counter() - t0:.0f} s\n")
    result = {"command": " ".join(sys.argv), "summary": summary(rows, taus), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
