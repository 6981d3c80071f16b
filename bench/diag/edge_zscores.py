"""Diagnostic (bench/RESULTS.md, issue 3, calibrated uncertainty): the z-score spread of matched localizations by
slab of true z and by distance of the true position to the nearest frame edge.

A 3D astigmatic spot near the frame edge is cut off in the direction it is stretched (y at one end of the z range,
x at the other); if the network does not widen its sigma there, those pairs inflate the pooled z-score sd.

Two sources of pairs:
- ``tables PREFIX --frame-px W [--px-nm P]``: a kept truth/prediction pair (``bench/accuracy.py --keep-tables``);
- ``validation RUN --size W --density D --samples N``: the run's own training simulation drawn again at W x W px
  and density D (a fresh seed), predicted with the run's model; sigmas multiplied by the run's calibration factors.

    PYTHONPATH=src python bench/diag/edge_zscores.py tables bench/out/acc3d_bgfix_cal/3d_astigmatic_d0.1 --frame-px 64
    PYTHONPATH=src python bench/diag/edge_zscores.py validation bench/out/acc3d_bgfix/3d_astigmatic_run --size 64 --density 0.1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from plexloc.evaluate.matching import Matching, match
from plexloc.table import LocTable

SLABS_NM = (-500.0, -300.0, -100.0, 100.0, 300.0, 500.0)


def report(truth: LocTable, pred: LocTable, m: Matching, frame_nm: tuple[float, float], edge_nm: float,
           factors: dict[str, float] | None = None) -> list[dict]:
    """One row per (slab, edge / inner): n, z-score sd per axis, share of |z_y| > 4; printed as a table."""
    factors = factors or {}
    xt, yt, zt = (np.asarray(truth[k], float)[m.tp_truth] for k in ("x_nm", "y_nm", "z_nm"))
    zs = {ax: err / (np.asarray(pred[f"sigma_{ax}_nm"], float)[m.tp_pred] * factors.get(ax, 1.0))
          for ax, err in (("x", m.dx), ("y", m.dy), ("z", m.dz))}
    w, h = frame_nm
    edge = np.minimum.reduce([xt, w - xt, yt, h - yt])
    rows = []
    print(f"{'true z nm':>14} {'where':>8} {'n':>6} {'sd x':>6} {'sd y':>6} {'sd z':>6} {'|z_y|>4':>8}")
    for lo, hi in zip(SLABS_NM[:-1], SLABS_NM[1:]):
        in_slab = (zt >= lo) & (zt < hi)
        for where, sel in (("edge", in_slab & (edge < edge_nm)), ("inner", in_slab & (edge >= edge_nm))):
            n = int(sel.sum())
            row = {"z_lo": lo, "z_hi": hi, "where": where, "n": n}
            row.update({f"sd_{ax}": float(zs[ax][sel].std()) if n > 1 else float("nan") for ax in "xyz"})
            row["tail4_y"] = float(np.mean(np.abs(zs["y"][sel]) > 4)) if n else float("nan")
            rows.append(row)
            print(f"{lo:>6.0f}..{hi:<6.0f} {where:>8} {n:>6} {row['sd_x']:>6.2f} {row['sd_y']:>6.2f} {row['sd_z']:>6.2f}"
                  f" {100 * row['tail4_y']:>7.2f}%")
    return rows


def from_tables(prefix: str) -> tuple[LocTable, LocTable]:
    from plexloc.io import read_table

    truth, pred = read_table(prefix + "_truth.csv"), read_table(prefix + "_pred.csv")
    print(f"{prefix}: {len(truth)} truth rows, {len(pred)} localizations")
    return truth, pred


def from_validation(run: str, size: int, density: float, samples: int, seed: int) -> tuple[LocTable, LocTable, tuple, dict]:
    from plexloc.config import TrainConfig, validate_config
    from plexloc.infer.extract import extract
    from plexloc.infer.fit import sigma_factors, to_table
    from plexloc.nets.io import load_model
    from plexloc.simulation.simulator import Simulator
    from plexloc.train.trainer import training_simulation
    from plexloc.train.validation import ValidationSet, batch_aux, batch_photons

    model, cfg, meta = load_model(f"{run}/model.pt")
    cfg = validate_config(cfg, TrainConfig, source=f"{run}/model.pt")
    cfg = cfg.model_copy(update={"frame_size": (size, size),
                                 "emitters": cfg.emitters.model_copy(update={"density_per_um2": density})})
    sim = Simulator(training_simulation(cfg))
    vs = ValidationSet.simulate(sim, n_samples=samples, batch_size=32, window=model.spec.window,
                                min_target_photons=cfg.training.min_target_photons, seed=seed)
    tables, k = [], 0
    with torch.no_grad():
        for b in vs.batches:
            pred = model.decode(model(batch_photons(sim, b.frames), batch_aux(sim, b, model.spec)))
            ex = extract(pred, model.spec, threshold=cfg.training.detection_threshold)
            tables.append(to_table(ex, np.arange(k, k + b.frames.shape[0]), model))
            k += b.frames.shape[0]
    factors = sigma_factors(meta)
    print(f"{run}: {samples} samples of {size}x{size} px at {density}/um^2; sigma factors {factors}")
    return vs.truth, LocTable.concat(tables), (size * cfg.px_size_nm, size * cfg.px_size_nm), factors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="source", required=True)
    t = sub.add_parser("tables")
    t.add_argument("prefix", help="PREFIX_truth.csv and PREFIX_pred.csv")
    t.add_argument("--frame-px", type=int, required=True)
    t.add_argument("--px-nm", type=float, default=100.0)
    v = sub.add_parser("validation")
    v.add_argument("run")
    v.add_argument("--size", type=int, default=64)
    v.add_argument("--density", type=float, default=0.1)
    v.add_argument("--samples", type=int, default=1024)
    v.add_argument("--seed", type=int, default=99)
    for p in (t, v):
        p.add_argument("--edge-nm", type=float, default=300.0)
        p.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.source == "tables":
        truth, pred = from_tables(a.prefix)
        frame_nm, factors = (a.frame_px * a.px_nm, a.frame_px * a.px_nm), {}
    else:
        truth, pred, frame_nm, factors = from_validation(a.run, a.size, a.density, a.samples, a.seed)
    report(truth, pred, match(truth, pred, dim=3), frame_nm, a.edge_nm, factors)


if __name__ == "__main__":
    main()
