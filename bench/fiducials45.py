"""Drift from fiducial markers (``estimate_drift(engine="fiducials")``) against the known drift, beside RCC.

Synthetic blinking tables (:func:`plexloc.post.synthetic.blinking_table`: filaments, 10,000 frames, a smooth
non-linear drift of about 100 nm, :func:`~plexloc.post.synthetic.wobbly_drift`; in 3D also 40 nm in z) plus fiducial
markers (:func:`~plexloc.post.synthetic.with_fiducials`: 3 nm lateral precision, 8 nm in z, localized in 90 % of the
frames, 50,000 photons; 12,000 molecules, about 90,000 rows, or 1,500 for a sparse sample). Cases: 2, 3 and 5
markers (2D), 3 markers (3D), one of 3 bleaching at half-time, one of 4 that detaches (moves 80 nm on its own from frame 4,000 on), and no marker (the error). For each: the error of the
curve (RMS over the frames of estimated minus true, x and y together after the constant offset, as
:func:`plexloc.post.drift.drift_error_rms`; z alone in 3D), the engine's own ``uncertainty_nm``, the goal (the
markers' precision over sqrt(n markers x 0.9 x smoothing frames), x and y together), the rows removed (and how many of
them were markers'), the time; RCC (10 windows) on the same table without its markers (what the sample alone gives)
and with them.

    OMP_NUM_THREADS=1 .venv/bin/python bench/fiducials45.py [--out bench/fiducials45.json] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from plexloc.errors import InputError
from plexloc.post.drift import apply_drift, drift_error_rms, estimate_drift
from plexloc.post.fiducials import FIDUCIAL_SMOOTH_FRAMES
from plexloc.post.synthetic import blinking_table, structure_points, with_fiducials, wobbly_drift

N_FRAMES = 10_000
FOV_NM = 20_000.0
PRECISION_NM = 3.0
CASES = {  # name: (markers, 3D, extra with_fiducials arguments)
    "2 markers": (2, False, {}),
    "3 markers": (3, False, {}),
    "5 markers": (5, False, {}),
    "3 markers, 3D": (3, True, {}),
    "3, one bleaches at 5,000": (3, False, {"last_frames": [None, N_FRAMES // 2, None]}),
    "4, one detaches at 4,000": (4, False, {"detach": 1}),
    "3 markers, sparse sample": (3, False, {"molecules": 1500}),
    "no marker": (0, False, {}),
}


def case_table(markers: int, three_d: bool, extra: dict, seed: int):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(N_FRAMES, 100.0, rng=rng)
    if three_d:
        truth[:, 2] = 40.0 * np.sin(np.linspace(0.0, 2.5, N_FRAMES) + rng.uniform(0, 2 * np.pi))
        truth[:, 2] -= truth[0, 2]
    extra = dict(extra)
    mol = structure_points("lines", extra.pop("molecules", 12_000), fov_nm=FOV_NM, rng=rng,
                           z_range_nm=(-400.0, 400.0) if three_d else None)
    t = blinking_table(mol, n_frames=N_FRAMES, rng=rng, drift_nm=truth, precision_z_nm=40.0 if three_d else None)
    if markers:
        kw = dict(extra)
        if "detach" in kw:
            motion = np.zeros((N_FRAMES, 3))
            start = 4000
            motion[start:, 0] = np.linspace(0.0, 80.0, N_FRAMES - start)
            motion[start:, 1] = np.linspace(0.0, -30.0, N_FRAMES - start)
            own: list = [None] * markers
            own[kw.pop("detach")] = motion
            kw["own_motion_nm"] = own
        t = with_fiducials(t, markers, n_frames=N_FRAMES, fov_nm=FOV_NM, drift_nm=truth, rng=rng,
                           precision_nm=PRECISION_NM, precision_z_nm=8.0 if three_d else None, **kw)
    return t, truth


def run_case(name: str, seed: int) -> dict:
    markers, three_d, extra = CASES[name]
    t, truth = case_table(markers, three_d, extra, seed)
    row: dict = {"case": name, "seed": seed, "rows": len(t), "marker_rows": int(np.sum(t["id"] < 0))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            res = estimate_drift(t, engine="fiducials")
        except InputError as err:
            row.update(error=str(err), seconds=time.perf_counter() - t0)
            res = None
        if res is not None:
            out = apply_drift(t, res)
            row["seconds"] = time.perf_counter() - t0
    row["warnings"] = [str(w.message) for w in caught if "fiducials" in str(w.message)]
    if res is not None:
        used = res.info["n_fiducials"]
        row.update(
            error_nm=drift_error_rms(res.at(np.arange(N_FRAMES)), truth),
            uncertainty_nm=res.info["uncertainty_nm"],
            goal_nm=float(np.sqrt(2.0) * PRECISION_NM / np.sqrt(max(used, 1) * 0.9 * FIDUCIAL_SMOOTH_FRAMES)),
            used=used, found=res.info["n_found"], rows_removed=len(t) - len(out),
            marker_rows_left=int(np.sum(out["id"] < 0)),
            unreliable=bool(res.info.get("unreliable", False)),
        )
        if three_d:
            row.update(z_error_nm=drift_error_rms(res.at(np.arange(N_FRAMES)), truth, axes=(2,)),
                       z_uncertainty_nm=res.info.get("z_uncertainty_nm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = t[t["id"] >= 0]
        t0 = time.perf_counter()
        rcc = estimate_drift(sample, engine="rcc", split_half=False)
        row["rcc_sample_seconds"] = time.perf_counter() - t0
        row["rcc_sample_error_nm"] = drift_error_rms(rcc.at(np.arange(N_FRAMES)), truth)
        if three_d:
            row["rcc_sample_z_error_nm"] = drift_error_rms(rcc.at(np.arange(N_FRAMES)), truth, axes=(2,))
        if markers:
            with_markers = estimate_drift(t, engine="rcc", split_half=False)
            row["rcc_with_markers_error_nm"] = drift_error_rms(with_markers.at(np.arange(N_FRAMES)), truth)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("fiducials45.json"))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rows = [run_case(name, seed) for name in CASES for seed in range(args.seeds)]
    head = (f"{'case':26s} {'seed':>4s} {'rows':>7s} {'used':>5s} {'err nm':>7s} {'unc nm':>7s} {'goal':>5s} "
            f"{'z err':>6s} {'removed':>8s} {'left':>4s} {'s':>5s} {'RCC sample':>10s} {'RCC +mk':>8s}")
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['case']:26s} {r['seed']:4d} {r['rows']:7d}  ERROR: {r['error'][:90]}  "
                  f"(RCC sample {r['rcc_sample_error_nm']:.1f} nm)")
            continue
        z = f"{r['z_error_nm']:6.2f}" if "z_error_nm" in r else f"{'':6s}"
        print(f"{r['case']:26s} {r['seed']:4d} {r['rows']:7d} {r['used']:2d}/{r['found']:<2d} {r['error_nm']:7.2f} "
              f"{r['uncertainty_nm']:7.2f} {r['goal_nm']:5.2f} {z} {r['rows_removed']:8d} {r['marker_rows_left']:4d} "
              f"{r['seconds']:5.2f} {r['rcc_sample_error_nm']:10.2f} {r.get('rcc_with_markers_error_nm', np.nan):8.2f}")
    with open(args.out, "w") as f:
        json.dump({"n_frames": N_FRAMES, "fov_nm": FOV_NM, "precision_nm": PRECISION_NM,
                   "smooth_frames": FIDUCIAL_SMOOTH_FRAMES, "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
