"""z drift on 3D tables: the z drift each engine finds against the truth, before and after session 39's change.

    python bench/drift_z.py [--engines comet,rcc] [--seeds 2] [--molecules 800] [--out bench/drift_z39.json]

Every case is a 3,000-frame table of blinking molecules on filaments that run through z -400..+400 nm
(``plexloc.post.synthetic.structure_points("lines", z_range_nm=...)``, 5 on-events per molecule; lateral precision
9 nm, axial 40 nm, as an astigmatic network's fit), with a lateral drift that wobbles by about 70 nm
(``wobbly_drift``) and a z drift: ``z40`` linear 0 -> 40 nm, ``z100`` linear 0 -> 100 nm, ``zsine`` a sine of 30 nm
amplitude and 1.3 periods, ``z0`` none. Each engine runs with its defaults (10 windows, split-half test on). Per row:

- ``z_actual_nm``: the z curve's error, RMS over the frames after removing the offset (``drift_error_rms(axes=(2,))``),
  and ``z_found_nm``: the z drift over the movie that a straight line through the z curve gives (true: 40, 100, 0, 0);
- ``z_reported_nm``: ``info["z_uncertainty_nm"]`` and ``z_ratio`` = reported / actual;
- ``before_*``: the z curve before the change: COMET's own z knots (kept in ``info["comet_segment_z_nm"]``) through
  the same spline, RCC's 0;
- ``xy_actual_nm`` (``drift_error_rms``) and ``xy_reported_nm`` (``uncertainty_nm``), which the change leaves alone.

One numba/torch thread. COMET: 15-60 s a run on the shared CPU, three runs a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

N_FRAMES = 3000
CASES = ("z40", "z100", "zsine", "z0")


def case_table(name: str, seed: int, n_mol: int):
    from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift

    rng = np.random.default_rng([seed, CASES.index(name)])
    truth = wobbly_drift(N_FRAMES, 70.0, rng=rng)
    t = np.linspace(0.0, 1.0, N_FRAMES)
    truth[:, 2] = {"z40": 40.0 * t, "z100": 100.0 * t, "zsine": 30.0 * np.sin(2 * np.pi * 1.3 * t),
                   "z0": 0.0 * t}[name]
    mol = structure_points("lines", n_mol, fov_nm=12000.0, rng=rng, z_range_nm=(-400.0, 400.0))
    table = blinking_table(mol, n_frames=N_FRAMES, rng=rng, drift_nm=truth, events_per_molecule=5, precision_nm=9.0,
                           precision_z_nm=40.0)
    return table, truth


def _found(frames: np.ndarray, z: np.ndarray) -> float:
    return float(np.polyfit(frames, z, 1)[0] * (N_FRAMES - 1))


def run_one(name: str, seed: int, engine: str, n_mol: int) -> dict:
    from plexloc.post.drift import UnreliableDriftWarning, _curve, drift_error_rms, estimate_drift

    table, truth = case_table(name, seed, n_mol)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreliableDriftWarning)
        res = estimate_drift(table, engine=engine, **({"seed": seed} if engine == "comet" else {}))
    seconds = time.perf_counter() - t0
    f, d, info = res.frames, res.drift_nm, res.info
    true = truth[f]
    before = np.zeros(len(f))
    if engine == "comet" and "comet_segment_z_nm" in info:
        k = np.asarray(info["comet_segment_z_nm"], dtype=float)
        before = _curve(res.segment_frames, np.column_stack([k, k, k]), f.astype(float))[:, 2]
        before -= before[0]
    b = d.copy()
    b[:, 2] = before
    row = {"case": name, "seed": seed, "engine": engine, "rows": len(table), "seconds": seconds,
           "z_true_nm": _found(f, true[:, 2]),
           "z_found_nm": _found(f, d[:, 2]), "z_actual_nm": drift_error_rms(d, true, axes=(2,)),
           "z_reported_nm": info.get("z_uncertainty_nm"),
           "before_z_found_nm": _found(f, before), "before_z_actual_nm": drift_error_rms(b, true, axes=(2,)),
           "xy_actual_nm": drift_error_rms(d, true), "xy_reported_nm": info.get("uncertainty_nm"),
           "z_pairs": info.get("z_pairs"), "z_unreliable": bool(info.get("z_unreliable", False)),
           "warnings": [str(w.message)[:160] for w in caught]}
    if row["z_reported_nm"] is not None:
        row["z_ratio"] = row["z_reported_nm"] / row["z_actual_nm"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="comet,rcc")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--molecules", type=int, default=800, help="molecules a table (800: about 10,000 localizations)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    rows = []
    for engine in args.engines.split(","):
        for name in args.cases.split(","):
            for seed in range(args.seeds):
                r = run_one(name, seed, engine, args.molecules)
                rows.append(r)
                rep = r["z_reported_nm"]
                print(f"{engine:5s} {name:6s} seed {seed}: z found {r['z_found_nm']:6.1f} of {r['z_true_nm']:6.1f} "
                      f"(before {r['before_z_found_nm']:6.1f}), z error {r['z_actual_nm']:5.2f} nm (before "
                      f"{r['before_z_actual_nm']:5.2f}), z reported {rep if rep is None else round(rep, 2)} "
                      f"ratio {r.get('z_ratio', float('nan')):.2f}; xy error {r['xy_actual_nm']:.2f} reported "
                      f"{r['xy_reported_nm']:.2f}; {r['seconds']:.0f} s", flush=True)
                if args.out is not None:
                    args.out.write_text(json.dumps({"rows": rows}, indent=1))
    ratios = np.array([r["z_ratio"] for r in rows if "z_ratio" in r])
    if len(ratios):
        print(f"z reported / actual: geometric mean {np.exp(np.mean(np.log(ratios))):.2f}, "
              f"{ratios.min():.2f}-{ratios.max():.2f} over {len(ratios)} tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
