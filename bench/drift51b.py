"""Session 51 (helper drift2), measurement only: where the error of a straight 2-window RCC drift comes from, against
its reported uncertainty (uncertainty_nm, from two halves of the table at 2 windows). Tables: drift_engines39's
case_table, linear drift, uniform 1,000/2,000, clusters 5,000, lines 2,000/10,000 rows, seeds 0-5. Per table: the
actual error (drift_error_rms), the reported figure, and the actual split into (a) the error of the windows' shift
(estimated window 1 minus window 0 against the truth's mean drift over each window's rows; the curve's error if only
that shift were off, rms over the frames after the offset) and (b) the rest (the line through the windows' true means
against the truth). Run: OMP_NUM_THREADS=1 python bench/drift51b.py --out bench/drift51b.json"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_engines39 import case_table  # noqa: E402

from plexloc.post.drift import _curve, _segments, drift_error_rms, rcc_drift  # noqa: E402
from plexloc.table import LocTable  # noqa: E402


def one(structure: str, rows: int, seed: int) -> dict:
    full, d = case_table(structure, "linear", rows, seed, truth_columns=True)
    t = LocTable({c: full[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = rcc_drift(t, n_segments=2)
    frame = np.asarray(t["frame"])
    seg, centre = _segments(frame, 2)
    true_means = np.array([d[frame[seg == k], :2].mean(axis=0) for k in range(2)])
    est = np.asarray(r.segment_drift_nm)[:, :2]
    true_shift = true_means[1] - true_means[0]
    shift_err = (est[1] - est[0]) - true_shift
    # what the correlation of the two windows' images sees of a molecule: its pairs of rows across the windows, each
    # at the drift difference of its own two frames (a molecule's rows lie near each other in time)
    mol = np.asarray(full["id"])
    num, den = np.zeros(2), 0.0
    for m in np.unique(mol):
        a, b = (mol == m) & (seg == 0), (mol == m) & (seg == 1)
        if a.any() and b.any():
            na, nb = int(a.sum()), int(b.sum())
            num += na * nb * (d[frame[b], :2].mean(axis=0) - d[frame[a], :2].mean(axis=0))
            den += na * nb
    pair_shift = num / den if den else np.full(2, np.nan)
    ratio = float(np.dot(est[1] - est[0], true_shift) / np.dot(true_shift, true_shift))
    true_line = _curve(centre, np.column_stack([true_means, np.zeros(2)]), r.frames)[:, :2]
    est_line = _curve(centre, np.column_stack([est, np.zeros(2)]), r.frames)[:, :2]
    truth = d[r.frames, :2]
    info = r.info
    return {"case": f"{structure}_{rows}_s{seed}", "rows": len(t), "events": info.get("events"),
            "peak_z": round(float(info["peak_z_min"]), 1),
            "actual_nm": round(drift_error_rms(r.drift_nm, d[r.frames]), 2),
            "reported_nm": round(float(info.get("uncertainty_nm", np.nan)), 2),
            "noise_nm": round(float(info.get("noise_nm", np.nan)), 2),
            "half_difference_nm": round(float(info.get("half_difference_nm", np.nan)), 2),
            "shift_error_nm": [round(float(v), 2) for v in shift_err],
            "shift_ratio": round(ratio, 3),
            "pair_weighted_ratio": round(float(np.dot(pair_shift, true_shift) / np.dot(true_shift, true_shift)), 3),
            "est_minus_pair_weighted_nm": [round(float(v), 2) for v in (est[1] - est[0]) - pair_shift],
            "from_shift_nm": round(drift_error_rms(np.pad(est_line - true_line, ((0, 0), (0, 1))),
                                                    np.zeros((len(r.frames), 3))), 2),
            "line_vs_truth_nm": round(drift_error_rms(np.pad(true_line, ((0, 0), (0, 1))),
                                                       np.pad(truth, ((0, 0), (0, 1)))), 2),
            "warned": len(w), "unreliable": bool(info.get("unreliable"))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=6)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = [one(s, n, seed) for s, n in (("uniform", 1000), ("uniform", 2000), ("clusters", 5000), ("lines", 2000),
                                         ("lines", 10000)) for seed in range(a.seeds)]
    for r in rows:
        print(json.dumps(r))
    low = [r for r in rows if r["actual_nm"] > 1.5 * r["reported_nm"]]
    print(f"{len(low)}/{len(rows)} reported more than 1.5x low; {time.perf_counter() - t0:.0f} s")
    if a.out:
        a.out.write_text(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
