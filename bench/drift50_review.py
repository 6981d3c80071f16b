"""Session 50 review of RCC's 2-window peak check (3 windows' shifts must add up), by the reach searched.

Chance tables: clusters that live in one window only (``tests/test_drift50_review._clusters_of_one_window``: 300, 1,000
and 3,000 rows; 15 rows in 40 nm, 40 in 60 nm, 8 in 20 nm; 12 seeds each; no drift): how many read a 2-window peak in
the checked band (4.5-6 standard deviations), how many of those pass the check, and how many are accepted with a peak
above 6 (the peak rule's own false acceptances, not checked). Right tables: bench/drift50.py's sparse lines (500-2,000
rows, 2D and 3D, 10 seeds): estimates <= 10 nm off that are refused, and those further off that are accepted. Reaches 50, 100 and 300 nm (chance tables) and
50, 100 and 300 nm (lines); the default reach with 40 and 60 nm render pixels (both). Since drift2 (session 50) the chance tables accepted with a peak >= 6 are listed
(error, then rows, per cluster, radius, seed, peak). The JSON's "before" holds the rows of the code before drift2's
reference region (59ddba8), "before_review" those of 234474e (before the review's allowance, fewer fields).

    OMP_NUM_THREADS=1 python bench/drift50_review.py --out bench/drift50_review.json   (about 90 s)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from drift50 import lines_table  # noqa: E402
from test_drift50_review import _clusters_of_one_window  # noqa: E402

from plexloc.post import drift as D  # noqa: E402


def chance(reach: float, px: float = 20.0) -> dict:
    band = band_passed = strong_accepted = 0
    errors, strong_errors, strong_cases = [], [], []
    for rows in (300, 1000, 3000):
        for pc, rad in ((15, 40.0), (40, 60.0), (8, 20.0)):
            for s in range(12):
                t = _clusters_of_one_window(rows, 1000 * rows + s, pc, rad)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = D.rcc_drift(t, n_segments=2, max_drift_nm=reach, render_px_nm=px)
                z, ok = r.info["peak_z_min"], not r.info.get("unreliable")
                err = float(D.drift_error_rms(r.drift_nm, np.zeros_like(r.drift_nm)))
                if 4.5 <= z < 6.0:
                    band += 1
                    band_passed += ok
                    if ok:
                        errors.append(round(err, 1))
                elif z >= 6.0 and ok:
                    strong_accepted += 1
                    strong_errors.append(round(err, 1))
                    strong_cases.append([rows, pc, rad, s, round(z, 2)])
    return {"reach_nm": reach, "render_px_nm": px, "tables": 108, "in_band": band, "in_band_accepted": band_passed,
            "in_band_accepted_error_nm": errors, "strong_peak_accepted": strong_accepted,
            "strong_peak_accepted_error_nm": strong_errors, "strong_peak_accepted_cases": strong_cases}


def lines(reach: float, px: float = 20.0) -> dict:
    out = {}
    for z in (False, True):
        right = refused = wrong_accepted = 0
        for seed in range(10):
            for n in (500, 1000, 2000):
                t, d = lines_table(n, seed, z)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = D.rcc_drift(t, n_segments=2, max_drift_nm=reach, render_px_nm=px)
                if D.drift_error_rms(r.drift_nm, d[r.frames]) <= 10:
                    right += 1
                    refused += bool(r.info.get("unreliable"))
                else:
                    wrong_accepted += not r.info.get("unreliable")
        out["3d" if z else "2d"] = {"right": right, "refused": refused, "wrong_accepted": wrong_accepted}
    return {"reach_nm": reach, "render_px_nm": px, **out}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {"commit": commit, "chance": [chance(r) for r in (50.0, 100.0, 300.0)],
           "lines": [lines(r) for r in (50.0, 100.0, 300.0)],
           # the default reach with a coarse render pixel (fields above 82 / 123 µm at 2,048 px)
           "coarse_px": {"chance": [chance(300.0, px) for px in (40.0, 60.0)],
                         "lines": [lines(300.0, px) for px in (40.0, 60.0)]}}
    for c in res["chance"] + res["coarse_px"]["chance"]:
        print(f"chance, reach {c['reach_nm']:.0f} nm, pixel {c['render_px_nm']:.0f} nm: {c['in_band']} of 108 in the band 4.5-6, {c['in_band_accepted']} "
              f"accepted {c['in_band_accepted_error_nm']}; peak >= 6 accepted: {c['strong_peak_accepted']} "
              f"{c['strong_peak_accepted_error_nm']} {c['strong_peak_accepted_cases']}")
    for r in res["lines"] + res["coarse_px"]["lines"]:
        print(f"lines, reach {r['reach_nm']:.0f} nm, pixel {r['render_px_nm']:.0f} nm: right refused 2D {r['2d']['refused']}/{r['2d']['right']}, "
              f"3D {r['3d']['refused']}/{r['3d']['right']}; > 10 nm off accepted 2D {r['2d']['wrong_accepted']}/"
              f"{30 - r['2d']['right']}, 3D {r['3d']['wrong_accepted']}/{30 - r['3d']['right']}")
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
