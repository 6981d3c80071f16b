"""Re-blinking molecules (``emitters.blinks_per_molecule``) make a simulated movie usable for drift correction and FRC.

    OMP_NUM_THREADS=1 .venv/bin/python bench/reblink40.py --out bench/reblink40.json

For each ``blinks_per_molecule`` B (default 1, 5, 20): a movie simulated as ``plexloc simulate`` does
(``Simulator.iter_movie``; ``examples/2d_gaussian.yaml``: EMCCD, Gaussian PSF of 130 nm, 100 nm pixels, 500-8000
photons, background 20-100) with ``--frames`` frames of ``--size`` px, ``--density`` active emitters per um^2 per
frame, the same seed for every B, and a stage drift of 0 -> (80, -50) nm linear plus a 20 nm wobble in x and y
(``emitters.drift``); localized with the MLE fitter (``plexloc.mle.fit_movie``, CPU, one thread) or, with ``--locs
truth``, the truth displaced by the drift plus 10 nm Gaussian noise (seconds instead of minutes). Then RCC
(``estimate_drift``, the defaults ``plexloc drift`` uses: 10 windows, split-half test) and FRC (``plexloc.render.frc``,
5 nm pixels) of the localizations corrected with the estimated drift and, for reference, with the true drift.

Per B: ``molecules`` in the truth, ``truth_rows``, ``locs`` (fitted), ``drift_rms_nm`` (the drift itself, lateral RMS
over the frames after removing its mean: the error of no correction), ``rcc_error_nm`` (``drift_error_rms`` of RCC's
curve against the truth), ``rcc_uncertainty_nm`` (RCC's own estimate of that error), ``unreliable`` (RCC's flag:
``plexloc process`` then leaves the table uncorrected), ``frc_nm`` (after RCC's correction; ``nan``: no crossing),
``frc_true_drift_nm`` (after subtracting the true drift), ``fit_s``, ``rcc_s``.

FRC counts every localization of a molecule (one molecule seen in many frames falls in both halves), so more blinks
give a finer FRC value as well as a usable drift estimate; with B = 1 a molecule's repeats are the frames of one
on-event only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DRIFT = {"linear_nm": [80.0, -50.0, 0.0], "wobble_nm": [20.0, 20.0, 0.0], "seed": 1}


def run_case(blinks: float, args) -> dict:
    import torch
    import yaml

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.post.drift import UnreliableDriftWarning, apply_drift, drift_error_rms, estimate_drift
    from plexloc.render.frc import frc
    from plexloc.simulation import Simulator
    from plexloc.simulation.emitters import movie_drift_nm

    data = yaml.safe_load((ROOT / "examples" / "2d_gaussian.yaml").read_text())
    data["frame_size"] = [args.size, args.size]
    data["emitters"].update(density_per_um2=args.density, blinks_per_molecule=blinks, drift=DRIFT)
    cfg = validate_config(data, SimulationConfig)
    sim = Simulator(cfg)
    n = args.frames
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    drift = movie_drift_nm(cfg.emitters.drift, n)
    if args.locs == "mle":
        from plexloc.mle import fit_movie

        mv = sim.simulate_movie(n, generator=gen, chunk_frames=256)
        truth = mv.truth
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        locs = fit_movie(mv.frames[0].numpy(), cfg)
    else:
        emitters, _ = sim.iter_movie(n, generator=gen)  # the chunks are not rendered
        truth = sim.truth_table(emitters)
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        f = truth["frame"]
        locs = truth.with_columns(x_nm=truth["x_nm"] + drift[f, 0] + rng.normal(0, 10.0, len(f)),
                                  y_nm=truth["y_nm"] + drift[f, 1] + rng.normal(0, 10.0, len(f)))
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_drift(locs)
    t_rcc = time.perf_counter() - t0
    frames = np.arange(n)
    err = drift_error_rms(res.at(frames), drift)
    unreliable = bool(res.info.get("unreliable", False)) or any(
        issubclass(w.category, UnreliableDriftWarning) for w in caught)
    corrected = apply_drift(locs, res)
    d_true = drift[locs["frame"]]
    true_corr = locs.with_columns(x_nm=locs["x_nm"] - d_true[:, 0], y_nm=locs["y_nm"] - d_true[:, 1])
    fov = args.size * 100.0
    extent = (0.0, fov, 0.0, fov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frc_est = frc(corrected, px_size_nm=5.0, extent_nm=extent).resolution_nm
        frc_true = frc(true_corr, px_size_nm=5.0, extent_nm=extent).resolution_nm
    return {
        "blinks_per_molecule": blinks,
        "locs_from": args.locs,
        "molecules": int(len(np.unique(truth["id"]))),
        "truth_rows": int(len(truth)),
        "locs": int(len(locs)),
        "drift_rms_nm": drift_error_rms(np.zeros_like(drift), drift),
        "rcc_error_nm": err,
        "rcc_uncertainty_nm": float(res.info.get("uncertainty_nm", float("nan"))),
        "unreliable": unreliable,
        "frc_nm": float(frc_est),
        "frc_true_drift_nm": float(frc_true),
        "sim_s": t_sim,
        "fit_s": t_fit,
        "rcc_s": t_rcc,
    }


def table(rows: list[dict]) -> str:
    head = (f"{'B':>4} {'molecules':>9} {'truth':>6} {'locs':>6} {'drift rms':>9} {'RCC err':>8} {'RCC unc':>8} "
            f"{'flag':>5} {'FRC':>7} {'FRC true':>8} {'fit s':>6} {'RCC s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['blinks_per_molecule']:>4g} {r['molecules']:>9d} {r['truth_rows']:>6d} {r['locs']:>6d} "
                     f"{r['drift_rms_nm']:>9.1f} {r['rcc_error_nm']:>8.1f} {r['rcc_uncertainty_nm']:>8.1f} "
                     f"{'yes' if r['unreliable'] else 'no':>5} {r['frc_nm']:>7.1f} {r['frc_true_drift_nm']:>8.1f} "
                     f"{r['fit_s']:>6.1f} {r['rcc_s']:>6.1f}")
    return "\n".join(lines) + "\n(nm; RCC err: drift_error_rms of RCC's curve vs the true drift; flag: RCC's unreliable)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blinks", default="1,5,20", help="blinks_per_molecule values, comma separated")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--size", type=int, default=96, help="frame side in pixels (100 nm)")
    ap.add_argument("--density", type=float, default=0.05, help="active emitters per um^2 per frame")
    ap.add_argument("--locs", choices=("mle", "truth"), default="mle",
                    help="mle: fit the movie; truth: truth + drift + 10 nm noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "reblink40.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = []
    for b in (float(v) for v in args.blinks.split(",")):
        rows.append(run_case(b, args))
        print(f"B={b:g}: done ({rows[-1]['fit_s']:.0f} s fit)", flush=True)
    print(table(rows))
    settings = {k: getattr(args, k) for k in ("frames", "size", "density", "locs", "seed")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {**settings, "drift": DRIFT, "torch_threads": 1}, "rows": rows},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
