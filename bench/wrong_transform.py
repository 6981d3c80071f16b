"""How far off can a channel transform be before a multi-channel network gives duplicates? (issue 10)

A trained multi-channel model (any run folder, e.g. the biplane model of ``bench/calibrate_fullpath.py``)
fits a movie whose channel 1 is shifted by ``k`` pixels in x: the same as a true transform that differs
from the model's ``T_1`` by ``k`` pixels. For each ``k`` the table is scored against the truth and
:func:`plexloc.post.duplicates.channel_duplicates` is run as ``plexloc fit`` runs it: one localization
per channel instead of one per molecule shows up as same-frame pairs at the channel offset.

    PYTHONPATH=src python bench/wrong_transform.py --model /tmp/fp45/run \\
        --movie /tmp/fp45/sim/movie_ch0.tif /tmp/fp45/sim/movie_ch1.tif --truth /tmp/fp45/sim/truth.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import torch

from plexloc.evaluate import evaluate
from plexloc.infer import fit_movie
from plexloc.io.tables import read_table
from plexloc.io.tiff import write_movie
from plexloc.post.duplicates import channel_duplicates

ROOT = Path(__file__).resolve().parents[1]


def shifted(src: Path, dst: Path, shift_px: int) -> Path:
    """Channel movie moved by ``shift_px`` pixels in +x; the uncovered columns repeat the edge column."""
    a = tifffile.imread(src)
    if shift_px:
        a = np.concatenate([np.repeat(a[..., :1], shift_px, axis=-1), a[..., :-shift_px]], axis=-1)
    write_movie(dst, a)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--movie", type=Path, nargs="+", required=True, help="one TIFF per channel")
    ap.add_argument("--truth", type=Path, required=True)
    ap.add_argument("--shifts", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--channel", type=int, default=1, help="the channel that is shifted")
    ap.add_argument("--dim", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "wrong_transform.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    truth = read_table(args.truth)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.shifts:
            movies = list(args.movie)
            movies[args.channel] = shifted(args.movie[args.channel], Path(tmp) / f"shift{k}.tif", k)
            table = fit_movie(movies, args.model)
            m = evaluate(truth, table, dim=args.dim).to_dict()
            rep = channel_duplicates(table, warn=False)
            rows.append({
                "shift_px": k, "n_truth": len(truth), "n_pred": len(table), "jaccard": m["jaccard"], "precision": m["precision"],
                "recall": m["recall"], "rmse_lat": m["rmse_lat"], "rmse_ax": m.get("rmse_ax"),
                "dup_offset_nm": [float(v) for v in rep.offset_nm], "dup_fraction": rep.fraction, "dup_background": rep.background,
                "dup_pairs": rep.pairs, "dup_expected_pairs": rep.expected_pairs, "dup_p_value": rep.p_value,
                "warns": rep.warning is not None,
            })
            r = rows[-1]
            print(f"shift {k} px: {r['n_pred']} locs / {r['n_truth']} true, JI {r['jaccard']:.1f} %, precision {r['precision']:.1f} %, "
                  f"pairs at ({r['dup_offset_nm'][0]:.0f}, {r['dup_offset_nm'][1]:.0f}) nm: {r['dup_fraction']:.3f} of locs "
                  f"(chance {r['dup_background']:.3f}), warns: {r['warns']}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    print("\n| shift px | locs / true | JI % | precision % | RMSE lat / ax nm | pair offset nm | share in pairs | chance | warns |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ax = "-" if r["rmse_ax"] is None else f"{r['rmse_ax']:.1f}"
        print(f"| {r['shift_px']} | {r['n_pred']} / {r['n_truth']} | {r['jaccard']:.1f} | {r['precision']:.1f} | {r['rmse_lat']:.1f} / {ax} | "
              f"({r['dup_offset_nm'][0]:.0f}, {r['dup_offset_nm'][1]:.0f}) | {r['dup_fraction']:.3f} | {r['dup_background']:.3f} | {'yes' if r['warns'] else 'no'} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"commit": commit, "settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
