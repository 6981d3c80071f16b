"""Diagnostic (bench/RESULTS.md, issue 3, dense data): does the network see the second emitter of a close pair that
the extraction drops?

At 2 emitters/µm² a fifth of the emitters are missed, most of them with a true neighbour closer than 300 nm. The
extraction (``plexloc.infer.extract``) takes one localization per 3x3 local maximum of the probability map. If the
network put a second emitter on a neighbouring pixel of that maximum (its own probability, a predicted position
away from the maximum's), a second localization could be taken from the same neighbourhood. This script measures

1. for every missed emitter, the largest probability of a pixel within +-1 px of it whose predicted position lies
   within 0.7 px of the true one (the network "saw" it);
2. the scores of a variant extraction that adds, for every maximum, the neighbours predicting a position farther
   than ``far`` px from the maximum's own, grouped within 0.5 px of the strongest of them, where their summed
   probability reaches ``threshold`` (deduplicated against every localization of the frame within 0.7 px).

The run's own training simulation is drawn again at 64x64 px and the given density (fresh seed, no margin)::

    PYTHONPATH=src python bench/diag/second_emitter.py RUN --density 2 --samples 128 --out bench/second_emitter_cpu_3d.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from plexloc.config.io import validate_config
from plexloc.config.training import TrainConfig
from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import evaluate_matching
from plexloc.evaluate.uncertainty import neighbour_distance_nm, robust_sd
from plexloc.infer.extract import extract
from plexloc.infer.fit import to_table
from plexloc.nets.io import load_model, resolve_model_path
from plexloc.simulation import Simulator
from plexloc.table import LocTable
from plexloc.train.trainer import training_simulation
from plexloc.train.validation import batch_photons, draw_batches, truth_of

MERGE_PX, DUP_PX, SEEN_PX = 0.5, 0.7, 0.7


def predict(run: str, density: float, samples: int, size: int, seed: int):
    model, cfg, _ = load_model(resolve_model_path(run), device="cpu")
    model.eval()
    cfg = dict(cfg)
    cfg["frame_size"] = [size, size]
    cfg["emitters"] = {**cfg["emitters"], "density_per_um2": density}
    config = validate_config(cfg, TrainConfig, source=run)
    sim = Simulator(training_simulation(config))
    batches = draw_batches(sim, n_samples=samples, batch_size=16, window=model.spec.window,
                           min_target_photons=config.training.min_target_photons, seed=seed, margin_px=0.0)
    truth, _ = truth_of(batches)
    with torch.no_grad():
        preds = [model.decode(model(batch_photons(sim, b.frames), None)) for b in batches]
    return model, config, truth, preds


def extra_localizations(pr, ex, far_px: float, threshold: float, min_p: float = 0.05):
    """Per maximum of ``ex``: the probability-weighted position of its far neighbours (see the module docstring), and
    their summed probability; the rows whose sum reaches ``threshold``."""
    P, O, S = pr.prob[:, 0], pr.offset, pr.sigma
    _, H, W = P.shape
    b, r, c = ex.sample, ex.pixel_row, ex.pixel_col
    own_x, own_y = c + 0.5 + O[b, 0, r, c], r + 0.5 + O[b, 1, r, c]
    ps, xs, ys, zs, ss = [], [], [], [], []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if not (dr or dc):
                continue
            rr, cc = r + dr, c + dc
            inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
            rr, cc = rr.clamp(0, H - 1), cc.clamp(0, W - 1)
            x, y = cc + 0.5 + O[b, 0, rr, cc], rr + 0.5 + O[b, 1, rr, cc]
            far = ((x - own_x) ** 2 + (y - own_y) ** 2) > far_px**2
            p = P[b, rr, cc]
            ps.append(torch.where(inside & far & (p >= min_p), p, torch.zeros_like(p)))
            xs.append(x), ys.append(y), zs.append(O[b, 2, rr, cc]), ss.append(S[b, :3, rr, cc])
    p, x, y, z, s = (torch.stack(v, 1) for v in (ps, xs, ys, zs, ss))
    best = p.argmax(1, keepdim=True)
    group = ((x - x.gather(1, best)) ** 2 + (y - y.gather(1, best)) ** 2 <= MERGE_PX**2) & (p > 0)
    w = torch.where(group, p, torch.zeros_like(p))
    mass = w.sum(1)
    den = mass.clamp(min=1e-9)
    keep = torch.nonzero(mass >= threshold).squeeze(1)
    pos = torch.stack([(w * x).sum(1) / den, (w * y).sum(1) / den, (w * z).sum(1) / den], 1)
    sig = (w[..., None] * s).sum(1) / den[:, None]
    return b[keep], pos[keep], sig[keep], mass[keep]


def tables(model, preds, threshold: float, far_px: float | None, extra_threshold: float | None) -> LocTable:
    px = model.spec.px_size_nm
    out, k = [], 0
    for pr in preds:
        ex = extract(pr, model.spec, threshold=threshold)
        t = to_table(ex, np.arange(k, k + pr.prob.shape[0]), model)
        if far_px is not None:
            b, pos, sig, mass = extra_localizations(pr, ex, far_px, extra_threshold)
            fr, xs, ys = b.numpy() + k, pos[:, 0].numpy() * px[0], pos[:, 1].numpy() * px[1]
            f0, x0, y0 = np.asarray(t["frame"]), np.asarray(t["x_nm"]), np.asarray(t["y_nm"])
            kept: list[int] = []
            for i in range(len(fr)):
                same = f0 == fr[i]
                taken = [j for j in kept if fr[j] == fr[i]]
                d = np.hypot(np.r_[x0[same], xs[taken]] - xs[i], np.r_[y0[same], ys[taken]] - ys[i])
                if not d.size or d.min() >= DUP_PX * px[0]:
                    kept.append(i)
            if kept:
                cols = {c: np.zeros(len(kept), np.asarray(t[c]).dtype) for c in t.columns}
                cols.update(frame=fr[kept], x_nm=xs[kept], y_nm=ys[kept], z_nm=pos[kept, 2].numpy(), prob=mass[kept].numpy(),
                            sigma_x_nm=sig[kept, 0].numpy() * px[0], sigma_y_nm=sig[kept, 1].numpy() * px[1],
                            sigma_z_nm=sig[kept, 2].numpy())
                t = LocTable.concat([t, LocTable(cols)])
        out.append(t)
        k += pr.prob.shape[0]
    return LocTable.concat(out)


def score(truth: LocTable, pred: LocTable, dim: int) -> dict:
    m = match(truth, pred, dim=dim)
    met = evaluate_matching(truth, pred, m, dim=dim).to_dict()
    zx = m.dx / np.asarray(pred["sigma_x_nm"])[m.tp_pred]
    keys = ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_3d")
    return {**{k: met.get(k) for k in keys}, "n": len(pred), "zscore_std_x": float(np.std(zx)),
            "zscore_rsd_x": robust_sd(zx)}, m


def seen_share(model, truth: LocTable, preds, missed: np.ndarray) -> np.ndarray:
    """For each missed truth row: the largest probability of a pixel within +-1 px predicting it within SEEN_PX."""
    P = torch.cat([pr.prob for pr in preds])[:, 0].numpy()
    O = torch.cat([pr.offset for pr in preds]).numpy()
    px = model.spec.px_size_nm
    _, H, W = P.shape
    f, tx, ty = (np.asarray(truth["frame"]), np.asarray(truth["x_nm"]) / px[0], np.asarray(truth["y_nm"]) / px[1])
    best = np.zeros(len(missed))
    for n, i in enumerate(missed):
        r0, c0 = int(np.floor(ty[i])), int(np.floor(tx[i]))
        for r in range(max(r0 - 1, 0), min(r0 + 2, H)):
            for c in range(max(c0 - 1, 0), min(c0 + 2, W)):
                if (c + 0.5 + O[f[i], 0, r, c] - tx[i]) ** 2 + (r + 0.5 + O[f[i], 1, r, c] - ty[i]) ** 2 <= SEEN_PX**2:
                    best[n] = max(best[n], P[f[i], r, c])
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--density", type=float, default=2.0)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, config, truth, preds = predict(args.run, args.density, args.samples, args.size, args.seed)
    dim = 3 if model.spec.is_3d else 2
    thr = config.training.detection_threshold
    base, m = score(truth, tables(model, preds, thr, None, None), dim)
    missed = np.setdiff1d(np.arange(len(truth)), m.tp_truth)
    close = neighbour_distance_nm(truth)[missed] < 300.0
    best = seen_share(model, truth, preds, missed)
    result = {"run": args.run, "density": args.density, "samples": args.samples, "emitters": len(truth),
              "missed": int(len(missed)), "missed_with_neighbour_lt_300nm": int(close.sum()),
              "seen": {str(p): {"all": float(np.mean(best >= p)), "close": float(np.mean(best[close] >= p))}
                       for p in (0.1, 0.2, 0.3, 0.5)},
              "current": base, "variants": []}
    print(f"{len(truth)} emitters, {len(missed)} missed ({int(close.sum())} with a neighbour < 300 nm)")
    for p, v in result["seen"].items():
        print(f"  a pixel with p >= {p} predicts the missed emitter: {100 * v['all']:.0f} % of all, {100 * v['close']:.0f} % of close")
    print("| extraction | n | JI % | recall | precision | RMSE lat / ax nm | E_lat | E_3D | z-score sd x (robust) |")
    print("|---|---|---|---|---|---|---|---|---|")

    def line(name: str, s: dict) -> None:
        print(f"| {name} | {s['n']} | {s['jaccard']:.2f} | {s['recall']:.1f} | {s['precision']:.1f} | {s['rmse_lat']:.1f} / "
              f"{s['rmse_ax'] or 0:.1f} | {s['eff_lat']:.2f} | {s['eff_3d'] or 0:.2f} | {s['zscore_std_x']:.2f} ({s['zscore_rsd_x']:.2f}) |")

    line("current", base)
    for far in (0.75, 1.0, 1.5):
        for t in (0.3, 0.5, 0.7):
            s, _ = score(truth, tables(model, preds, thr, far, t), dim)
            result["variants"].append({"far_px": far, "threshold": t, **s})
            line(f"+ far neighbours > {far} px, sum >= {t}", s)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
