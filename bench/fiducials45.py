"""Drift from fiducial markers (``estimate_drift(engine="fiducials")``) against the known drift, beside RCC.

Synthetic blinking tables (:func:`plexloc.post.synthetic.blinking_table`: filaments, 10,000 frames, a smooth
non-linear drift of about 100 nm, :func:`~plexloc.post.synthetic.wobbly_drift`; in 3D also 40 nm in z) plus fiducial
markers (:func:`~plexloc.post.synthetic.with_fiducials`: 3 nm lateral precision, 8 nm in z, localized in 90 % of the
frames, 50,000 photons; 12,000 molecules, about 90,000 rows, or 1,500 for a sparse sample). Cases: 2, 3 and 5
markers (2D), 3 markers (3D), one of 3 bleaching at half-time, one of 3 bleaching at frame 3,000 beside a dense patch
of the sample (100 molecules of about 2,000 photons within 100 nm of it, localized in about a third of the frames:
``patch rm`` counts the patch's rows after the bleach removed as the marker's), one of 4 that detaches (moves 80 nm on
its own from frame 4,000 on), and no marker (the error). For each: the error of the
curve (RMS over the frames of estimated minus true, x and y together after the constant offset, as
:func:`plexloc.post.drift.drift_error_rms`; z alone in 3D), the engine's own ``uncertainty_nm``, the goal (the
markers' precision over sqrt(n markers x 0.9 x smoothing frames), x and y together), the rows removed (and how many of
them were markers'), the time; RCC (10 windows) on the same table without its markers (what the sample alone gives)
and with them.

``--fast``: drift faster than RCC's windows can follow, on top of the same slow drift (3 markers, 2D): a vibration of
20 nm amplitude (x and y, a third of a period apart) with a period of 200, 50 or 10 frames, and a stage jump of 50 nm
(x; 20 nm in y) at frame 5,000; and the slow drift with every other frame localized (frames 0, 2, 4, ...). For each the
markers' error and reported ``uncertainty_nm`` at ``--smooth`` 1, 3, 5 (the default) and 11 frames, the error at the
jump (RMS over frames 4,990..5,010), and RCC's error (sample only). The reported uncertainty is the smoothed curve's
noise with the smoothing's bias where the engine measures it (``smoothing_bias_nm``); ``bias_nm`` is that bias from the
truth (the moving mean applied to the true drift, against it; what the error tends to when the noise is small).

    OMP_NUM_THREADS=1 .venv/bin/python bench/fiducials45.py [--out bench/fiducials45.json] [--seeds 3]
    OMP_NUM_THREADS=1 .venv/bin/python bench/fiducials45.py --fast [--out bench/fiducials45_fast.json] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable
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
    "3, one bleaches by a patch": (3, False, {"last_frames": [None, 3000, None], "patch": 100}),
    "4, one detaches at 4,000": (4, False, {"detach": 1}),
    "3 markers, sparse sample": (3, False, {"molecules": 1500}),
    "no marker": (0, False, {}),
}


#: the markers of a case with a patch of the sample (beside the second)
PATCH_MARKERS_NM = np.array([[5000.0, 5000.0], [15000.0, 6000.0], [10000.0, 15000.0]])
#: ... its radius (nm) and on-events per molecule (about 3,750 rows over the movie)
PATCH_RADIUS_NM = 100.0
PATCH_EVENTS = 15.0

JUMP_FRAME = 5000
#: --fast cases: name: (the fast drift added to the slow one, or None; every other frame only)
FAST_CASES = {
    "slow drift only": (None, False),
    "vibration, 200-frame period": (("vibration", 200), False),
    "vibration, 50-frame period": (("vibration", 50), False),
    "vibration, 10-frame period": (("vibration", 10), False),
    "50 nm jump at 5,000": (("jump", 50.0), False),
    "slow, every other frame": (None, True),
}
FAST_SMOOTH = (1, 3, 5, 11)
FAST_MARKERS = 3


def fast_motion(kind: tuple | None) -> np.ndarray:
    """``(N_FRAMES, 3)`` the fast drift of a --fast case (added to the slow one)."""
    out = np.zeros((N_FRAMES, 3))
    f = np.arange(N_FRAMES)
    if kind is None:
        return out
    if kind[0] == "vibration":
        period = kind[1]
        out[:, 0] = 20.0 * np.sin(2 * np.pi * f / period)
        out[:, 1] = 20.0 * np.sin(2 * np.pi * f / period + 2 * np.pi / 3)
    elif kind[0] == "jump":
        out[f >= JUMP_FRAME, 0] = kind[1]
        out[f >= JUMP_FRAME, 1] = 0.4 * kind[1]
    return out


def moving_mean_bias(truth: np.ndarray, smooth: int) -> float:
    """The smoothing's own error: a (clipped) moving mean of ``smooth`` frames of the true drift, against it."""
    from scipy.ndimage import uniform_filter1d

    return drift_error_rms(uniform_filter1d(truth, size=smooth, axis=0, mode="nearest"), truth)


def case_table(markers: int, three_d: bool, extra: dict, seed: int, fast: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(N_FRAMES, 100.0, rng=rng)
    if fast is not None:
        truth = truth + fast
    if three_d:
        truth[:, 2] = 40.0 * np.sin(np.linspace(0.0, 2.5, N_FRAMES) + rng.uniform(0, 2 * np.pi))
        truth[:, 2] -= truth[0, 2]
    extra = dict(extra)
    patch = extra.pop("patch", 0)
    mol = structure_points("lines", extra.pop("molecules", 12_000), fov_nm=FOV_NM, rng=rng,
                           z_range_nm=(-400.0, 400.0) if three_d else None)
    t = blinking_table(mol, n_frames=N_FRAMES, rng=rng, drift_nm=truth, precision_z_nm=40.0 if three_d else None)
    if patch:  # ids from len(mol) on
        ang, r = rng.uniform(0, 2 * np.pi, patch), PATCH_RADIUS_NM * np.sqrt(rng.uniform(0, 1, patch))
        spot = PATCH_MARKERS_NM[1] + np.column_stack([r * np.cos(ang), r * np.sin(ang)])
        pt = blinking_table(spot, n_frames=N_FRAMES, rng=rng, drift_nm=truth, events_per_molecule=PATCH_EVENTS)
        pt = pt.with_columns(id=np.asarray(pt["id"]) + len(mol))
        t = LocTable.concat([t, pt]).sort_by_frame()
        extra["positions_nm"] = PATCH_MARKERS_NM[:markers]
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


def rcc_on_sample(t, truth: np.ndarray, at: np.ndarray, row: dict):
    """RCC on the sample's rows alone (the markers' left out), its seconds and error over the frames ``at`` in
    ``row``."""
    t0 = time.perf_counter()
    rcc = estimate_drift(t[t["id"] >= 0], engine="rcc", split_half=False)
    row["rcc_sample_seconds"] = time.perf_counter() - t0
    row["rcc_sample_error_nm"] = drift_error_rms(rcc.at(at), truth[at])
    return rcc


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
        if extra.get("patch"):  # the patch's rows after the marker bleached, and how many of them were removed
            n_mol = extra.get("molecules", 12_000)
            after = (np.asarray(t["id"]) >= n_mol) & (np.asarray(t["frame"]) > extra["last_frames"][1])
            row.update(patch_rows_after=int(after.sum()), patch_removed=int(np.sum(res.remove_rows(t) & after)))
        if three_d:
            row.update(z_error_nm=drift_error_rms(res.at(np.arange(N_FRAMES)), truth, axes=(2,)),
                       z_uncertainty_nm=res.info.get("z_uncertainty_nm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rcc = rcc_on_sample(t, truth, np.arange(N_FRAMES), row)
        if three_d:
            row["rcc_sample_z_error_nm"] = drift_error_rms(rcc.at(np.arange(N_FRAMES)), truth, axes=(2,))
        if markers:
            with_markers = estimate_drift(t, engine="rcc", split_half=False)
            row["rcc_with_markers_error_nm"] = drift_error_rms(with_markers.at(np.arange(N_FRAMES)), truth)
    return row


def run_fast_case(name: str, seed: int) -> dict:
    kind, alternate = FAST_CASES[name]
    t, truth = case_table(FAST_MARKERS, False, {}, seed, fast=fast_motion(kind))
    if alternate:
        t = t[np.asarray(t["frame"]) % 2 == 0]
    at = np.arange(0, N_FRAMES, 2) if alternate else np.arange(N_FRAMES)
    row: dict = {"case": name, "seed": seed, "rows": len(t), "markers": {}}
    for smooth in FAST_SMOOTH:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            try:
                res = estimate_drift(t, engine="fiducials", smooth_frames=smooth)
            except InputError as err:
                row["markers"][str(smooth)] = {"error": str(err)}
                continue
            seconds = time.perf_counter() - t0
        est = res.at(at)
        entry = {"error_nm": drift_error_rms(est, truth[at]), "uncertainty_nm": res.info["uncertainty_nm"],
                 "bias_nm": moving_mean_bias(truth, smooth), "used": res.info["n_fiducials"],
                 "unreliable": bool(res.info.get("unreliable", False)), "seconds": seconds,
                 "warnings": [str(w.message) for w in caught if "fiducials" in str(w.message)]}
        if kind is not None and kind[0] == "jump":
            near = np.arange(JUMP_FRAME - 10, JUMP_FRAME + 11)
            e = res.at(near)[:, :2] - truth[near, :2]
            e -= (est[:, :2] - truth[at, :2]).mean(axis=0)  # the whole curve's constant offset
            entry["jump_error_nm"] = float(np.sqrt(np.mean(np.sum(e**2, axis=1))))
        row["markers"][str(smooth)] = entry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rcc = rcc_on_sample(t, truth, at, row)
        if kind is not None and kind[0] == "jump":
            near = np.arange(JUMP_FRAME - 10, JUMP_FRAME + 11)
            e = rcc.at(near)[:, :2] - truth[near, :2]
            e -= (rcc.at(at)[:, :2] - truth[at, :2]).mean(axis=0)
            row["rcc_jump_error_nm"] = float(np.sqrt(np.mean(np.sum(e**2, axis=1))))
    return row


def main_fast(args: argparse.Namespace) -> None:
    rows = [run_fast_case(name, seed) for name in FAST_CASES for seed in range(args.seeds)]
    head = f"{'case':28s} {'seed':>4s} " + " ".join(f"{'s=' + str(k) + ' err/unc/bias':>20s}" for k in FAST_SMOOTH)
    print(head + f" {'jump err s=5':>12s} {'RCC err':>8s} {'RCC jump':>8s}")
    for r in rows:
        cells = []
        for k in FAST_SMOOTH:
            m = r["markers"][str(k)]
            cells.append(f"{'ERROR':>20s}" if "error" in m else
                         f"{m['error_nm']:6.2f}/{m['uncertainty_nm']:5.2f}/{m['bias_nm']:5.2f}"
                         + ("!" if m["unreliable"] else " ") + " ")
        jump = r["markers"][str(FIDUCIAL_SMOOTH_FRAMES)].get("jump_error_nm")
        print(f"{r['case']:28s} {r['seed']:4d} " + " ".join(cells)
              + (f" {jump:12.2f}" if jump is not None else f" {'':12s}")
              + f" {r['rcc_sample_error_nm']:8.2f}"
              + (f" {r['rcc_jump_error_nm']:8.2f}" if "rcc_jump_error_nm" in r else ""))
    print("err/unc/bias: the markers' error (nm, rms over the frames, x and y), their reported uncertainty_nm, and the "
          "moving mean's own bias on the true drift; !: flagged unreliable")
    summary = {}
    for name in FAST_CASES:
        mine = [r for r in rows if r["case"] == name]
        summary[name] = {
            "rcc_sample_error_nm": float(np.mean([r["rcc_sample_error_nm"] for r in mine])),
            **{f"smooth_{k}": {q: float(np.mean([r["markers"][str(k)][q] for r in mine]))
                               for q in ("error_nm", "uncertainty_nm", "bias_nm", "jump_error_nm")
                               if all(q in r["markers"][str(k)] for r in mine)} for k in FAST_SMOOTH}}
    print("\nmean over seeds: " + f"{'case':28s} " + " ".join(f"{'s=' + str(k) + ' err/unc':>13s}"
                                                               for k in FAST_SMOOTH) + f" {'RCC err':>8s}")
    for name, m in summary.items():
        print(f"{'':17s}{name:28s} " + " ".join(
            f"{m[f'smooth_{k}'].get('error_nm', np.nan):6.2f}/{m[f'smooth_{k}'].get('uncertainty_nm', np.nan):5.2f} "
            for k in FAST_SMOOTH) + f" {m['rcc_sample_error_nm']:8.2f}")
    out = args.out or Path(__file__).with_name("fiducials45_fast.json")
    with open(out, "w") as f:
        json.dump({"n_frames": N_FRAMES, "fov_nm": FOV_NM, "precision_nm": PRECISION_NM, "markers": FAST_MARKERS,
                   "smooth_frames": list(FAST_SMOOTH), "jump_frame": JUMP_FRAME, "vibration_amplitude_nm": 20.0,
                   "summary": summary, "rows": rows}, f, indent=1)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="default bench/fiducials45.json, with --fast bench/fiducials45_fast.json")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="the fast-drift cases and the --smooth sweep")
    args = ap.parse_args()
    if args.fast:
        main_fast(args)
        return
    args.out = args.out or Path(__file__).with_name("fiducials45.json")
    rows = [run_case(name, seed) for name in CASES for seed in range(args.seeds)]
    head = (f"{'case':26s} {'seed':>4s} {'rows':>7s} {'used':>5s} {'err nm':>7s} {'unc nm':>7s} {'goal':>5s} "
            f"{'z err':>6s} {'removed':>8s} {'left':>4s} {'s':>5s} {'RCC sample':>10s} {'RCC +mk':>8s} "
            f"{'patch rm':>10s}")
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['case']:26s} {r['seed']:4d} {r['rows']:7d}  ERROR: {r['error'][:90]}  "
                  f"(RCC sample {r['rcc_sample_error_nm']:.1f} nm)")
            continue
        z = f"{r['z_error_nm']:6.2f}" if "z_error_nm" in r else f"{'':6s}"
        print(f"{r['case']:26s} {r['seed']:4d} {r['rows']:7d} {r['used']:2d}/{r['found']:<2d} {r['error_nm']:7.2f} "
              f"{r['uncertainty_nm']:7.2f} {r['goal_nm']:5.2f} {z} {r['rows_removed']:8d} {r['marker_rows_left']:4d} "
              f"{r['seconds']:5.2f} {r['rcc_sample_error_nm']:10.2f} {r.get('rcc_with_markers_error_nm', np.nan):8.2f}"
              + (f" {r['patch_removed']:4d}/{r['patch_rows_after']:<5d}" if "patch_rows_after" in r else ""))
    with open(args.out, "w") as f:
        json.dump({"n_frames": N_FRAMES, "fov_nm": FOV_NM, "precision_nm": PRECISION_NM,
                   "smooth_frames": FIDUCIAL_SMOOTH_FRAMES, "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
