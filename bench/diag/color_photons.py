"""Diagnostic (bench/RESULTS.md, issue 10, colour assignment): what the network's per-channel photons and their
sigmas do to the colours of a kept ratiometric prediction.

From ``PREFIX_truth.csv`` / ``PREFIX_pred.csv`` (``bench/multichannel.py --keep-tables``) and the configuration's dye
ratios it prints
- the photon read-out of the full on-frames (truth photons >= 98 % of the dye's flux): median relative error per
  dye and channel (a head pulled towards the middle of its training range reads one dye high and the other low);
- the photon z-scores (error / predicted sigma) per channel, sd and robust sd, over all matched pairs;
- the rejected localizations at the threshold: how many, which dye, their median photons;
- reliability of ``color_prob``: matched pairs binned by the probability of their most probable colour (eq. 3
  again, every row given a colour), with the share of correct colours in each bin; a calibrated probability has
  the two equal.

    PYTHONPATH=src python bench/diag/color_photons.py bench/out/mc_dual75/dual_color_plex_d0.03 \
        --config examples/dual_color_plex.yaml [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from plexloc.config import SimulationConfig, TrainConfig, load_config
from plexloc.evaluate.matching import match
from plexloc.evaluate.uncertainty import robust_sd
from plexloc.io import read_table
from plexloc.post.color import assign_colors

BINS = (0.5, 0.7, 0.9, 0.99, 0.999, 1.0 + 1e-9)


def analyse(prefix: str, config: SimulationConfig, threshold: float = 0.9) -> dict:
    truth, pred = read_table(prefix + "_truth.csv"), read_table(prefix + "_pred.csv")
    ratios = [list(r) for r in config.photon_model.ratios]
    flux = float(np.mean(config.emitters.photons_range))
    n_ch = len(ratios[0])
    for table, path, cols in ((truth, prefix + "_truth.csv", ["color"] + [f"photons_ch{c}" for c in range(n_ch)]),
                              (pred, prefix + "_pred.csv", ["color", "color_prob"] + [f"{k}_ch{c}" for k in ("photons", "sigma_photons") for c in range(n_ch)])):
        missing = [c for c in cols if c not in table]
        if missing:
            raise SystemExit(f"{path}: missing column(s) {missing} (a ratiometric table kept by --keep-tables has them)")
    m = match(truth, pred, dim=3)
    dye = np.asarray(truth["color"], int)[m.tp_truth]
    pt = np.stack([np.asarray(truth[f"photons_ch{c}"], float)[m.tp_truth] for c in range(n_ch)], 1)
    pp = np.stack([np.asarray(pred[f"photons_ch{c}"], float)[m.tp_pred] for c in range(n_ch)], 1)
    sp = np.stack([np.asarray(pred[f"sigma_photons_ch{c}"], float)[m.tp_pred] for c in range(n_ch)], 1)
    out: dict = {"prefix": prefix, "matched": int(m.n_tp), "readout": [], "zscores": [], "reliability": []}
    full = pt.sum(1) >= 0.98 * flux
    print(f"{prefix}: {m.n_tp} matched, {int(full.sum())} full on-frames")
    for k, r in enumerate(ratios):
        sel = full & (dye == k)
        for c in range(n_ch):
            rel = float(np.median(pp[sel, c] / pt[sel, c] - 1.0)) if sel.any() else float("nan")
            out["readout"].append({"dye": k, "channel": c, "true": flux * r[c], "n": int(sel.sum()), "median_rel_error": rel})
            print(f"  dye {k} channel {c}: {flux * r[c]:8.0f} photons, median read-out error {100 * rel:+6.1f} % (n {int(sel.sum())})")
    for c in range(n_ch):
        z = (pp[:, c] - pt[:, c]) / sp[:, c]
        out["zscores"].append({"channel": c, "sd": float(z.std()), "robust_sd": robust_sd(z)})
        print(f"  photon z-score channel {c}: sd {z.std():.2f}, robust sd {robust_sd(z):.2f}")
    col = np.asarray(pred["color"], int)[m.tp_pred]
    prob = np.asarray(pred["color_prob"], float)[m.tp_pred]
    rej = prob < threshold
    out["rejected"] = {"share": float(rej.mean()), "by_dye": {str(k): int(np.sum(rej & (dye == k))) for k in range(len(ratios))},
                       "median_photons": float(np.median(pt[rej].sum(1))) if rej.any() else float("nan")}
    print(f"  rejected at {threshold}: {100 * rej.mean():.2f} % ({out['rejected']['by_dye']} by true dye), median "
          f"{out['rejected']['median_photons']:.0f} photons; of the assigned correct "
          f"{100 * np.mean(col[~rej] == dye[~rej]):.2f} %")
    again, _ = assign_colors(pred, ratios, threshold=0.0)
    c_all = np.asarray(again["color"], int)[m.tp_pred]
    p_all = np.asarray(again["color_prob"], float)[m.tp_pred]
    ok = c_all == dye
    print("  color_prob bin      n   correct %   mean prob %")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (p_all >= lo) & (p_all < hi)
        row = {"lo": lo, "hi": min(hi, 1.0), "n": int(sel.sum()),
               "correct": float(ok[sel].mean()) if sel.any() else float("nan"),
               "mean_prob": float(p_all[sel].mean()) if sel.any() else float("nan")}
        out["reliability"].append(row)
        print(f"  [{lo:.3f}, {row['hi']:.3f}) {row['n']:>6} {100 * row['correct']:>10.1f} {100 * row['mean_prob']:>12.1f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefixes", nargs="+", help="PREFIX_truth.csv and PREFIX_pred.csv")
    ap.add_argument("--config", required=True, help="the data's configuration (photon_model: ratiometric)")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    config = load_config(a.config, TrainConfig).simulation()
    if config.photon_model.kind != "ratiometric":
        raise SystemExit(f"{a.config}: photon_model.kind is '{config.photon_model.kind}', not 'ratiometric'")
    res = [analyse(p, config, a.threshold) for p in a.prefixes]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
