"""Colour assignment against its threshold: accuracy and rejection of matched localizations as the
``color_prob`` threshold moves, so that two methods can be compared at the same rejection.

Two readings of accuracy are printed: conventions.md's (correct colours / TP, so accuracy + rejection <= 100)
and the share of correct colours among the localizations that were given one (correct / (TP - rejected)).
The DECODE-Plex manuscript's figures (99.8 % with about 3 % rejected) can only be the second: under the first
they would add up to more than 100.

Input: the prediction and truth tables that ``bench/accuracy.py --keep-tables`` writes (``*_pred.csv`` with
``color`` and ``color_prob``, ``*_truth.csv`` with ``color``).

    python bench/color_sweep.py bench/out/mc_dual/dual_color_plex_d0.65_pred.csv --rejection 3 9 --json out.json
        [--config examples/dual_color_plex.yaml]

A table keeps ``color = -1`` for the localizations below its own threshold, so their most probable colour is not
in it: with ``--config`` the colours are assigned again from the table's per-channel photons and sigmas with the
configuration's ratios (eq. 3, every row given its most probable colour) and every threshold is read; without
it, thresholds below the table's own are left out (they would count those rows as wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from plexloc.evaluate.matching import match
from plexloc.io import read_table


def sweep(truth, pred, thresholds, *, dim: int = 3) -> list[dict]:
    """Accuracy (of TP and of the assigned) and rejection (% of TP) at each ``color_prob`` threshold."""
    m = match(truth, pred, dim=dim)
    tp = m.n_tp
    if tp == 0:
        return []
    c_true = np.asarray(truth["color"])[m.tp_truth]
    c_pred = np.asarray(pred["color"])[m.tp_pred]
    prob = np.asarray(pred["color_prob"], float)[m.tp_pred]
    rows = []
    for t in thresholds:
        rejected = prob < t
        correct = np.count_nonzero((c_pred == c_true) & ~rejected)
        assigned = tp - np.count_nonzero(rejected)
        rows.append({"threshold": float(t), "tp": int(tp), "rejection": 100.0 * (tp - assigned) / tp,
                     "accuracy": 100.0 * correct / tp,
                     "accuracy_assigned": 100.0 * correct / assigned if assigned else float("nan")})
    return rows


def at_rejection(rows: list[dict], target: float) -> dict | None:
    """The row of the lowest threshold whose rejection reaches ``target`` percent (None if none does)."""
    for r in rows:  # thresholds ascend, so rejection does too
        if r["rejection"] >= target:
            return r
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pred", type=Path, nargs="+", help="prediction tables (*_pred.csv; the truth is *_truth.csv beside each)")
    ap.add_argument("--rejection", type=float, nargs="*", default=[3.0, 9.0], help="report the accuracy at these rejections (%%)")
    ap.add_argument("--dim", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--config", type=Path, default=None,
                    help="the configuration whose photon_model.ratios colour the tables again (then every threshold is read)")
    args = ap.parse_args(argv)
    ratios = None
    if args.config is not None:
        from plexloc.config import load_config

        ratios = load_config(args.config).photon_model.ratios
    thresholds = np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -6, 41)[1:]])
    out = {}
    print("| table | threshold | rejection % | accuracy % (of TP) | accuracy % (of assigned) |")
    print("|---|---|---|---|---|")
    for p in args.pred:
        truth_path = p.with_name(p.name.replace("_pred.csv", "_truth.csv"))
        truth, pred = read_table(truth_path), read_table(p)
        for path, table, cols in ((truth_path, truth, ("color",)), (p, pred, ("color", "color_prob"))):
            missing = [c for c in cols if c not in table]
            if missing:
                print(f"{path}: no column {', '.join(missing)} (a colour-assigned table is needed)", file=sys.stderr)
                return 2
        if ratios is not None:
            from plexloc.post.color import assign_colors

            pred = assign_colors(pred, ratios, threshold=0.0)[0]
            usable = thresholds
        else:  # only thresholds at or above the table's own: below it, rows with color -1 have no colour to read
            rejected = np.asarray(pred["color"]) < 0
            own = float(np.max(np.asarray(pred["color_prob"], float)[rejected])) if rejected.any() else 0.0
            usable = thresholds[thresholds > own]
        rows = sweep(truth, pred, usable, dim=args.dim)
        out[p.name] = rows
        picks = [r for r in rows if abs(r["threshold"] - 0.9) < 1e-9]
        picks += [r for r in (at_rejection(rows, t) for t in args.rejection) if r is not None]
        for r in picks:
            print(f"| {p.name} | {r['threshold']:.4g} | {r['rejection']:.2f} | {r['accuracy']:.2f} | {r['accuracy_assigned']:.2f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
