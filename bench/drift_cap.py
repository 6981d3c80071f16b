"""COMET drift accuracy with its pair cap (``comet_drift(max_pairs=...)``) on large synthetic tables.

    python bench/drift_cap.py --rows 100000 1000000 --caps none 20000000 10000000 [--json bench/out/drift_cap.json]

Each size is its own table: lines in a 40 um field, 20,000 frames, blinking (``plexloc.post.synthetic``), a
wobbly drift of 125 nm; the same table for every cap of that size. Prints a table (rows, cap, pairs estimated,
localizations kept per window, seconds, drift error rms in nm) and writes JSON. Needs the optional package
comet-smlm (``pip install 'plexloc[drift]'``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from plexloc.post.drift import comet_drift, drift_error_rms
from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift
from plexloc.table import LocTable

N_FRAMES = 20_000


def table(n: int) -> tuple[LocTable, np.ndarray]:
    """``n`` localizations of blinking lines with a known drift (seeded by ``n``), and that drift per frame."""
    rng = np.random.default_rng(n)
    drift = wobbly_drift(N_FRAMES, 125.0, rng=rng)
    mol = structure_points("lines", max(1000, n // 12), fov_nm=40000.0, rng=rng)
    t = blinking_table(mol, n_frames=N_FRAMES, rng=rng, drift_nm=drift, events_per_molecule=5)
    keep = np.sort(rng.choice(len(t), n, replace=False)) if len(t) > n else np.arange(len(t))
    return LocTable({c: np.asarray(t[c])[keep] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")}), np.asarray(drift)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="table sizes")
    ap.add_argument("--caps", nargs="+", default=["none", "20000000"], help="pair caps ('none': compare all)")
    ap.add_argument("--split-half", action="store_true", help="also run COMET's split-half test (about 2.5x the time)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    out = []
    print("| rows | cap | pairs estimated | kept per window | seconds | drift error rms nm |")
    print("|---|---|---|---|---|---|")
    for n in args.rows:
        lt, drift = table(n)
        for cap in args.caps:
            t0 = time.perf_counter()
            r = comet_drift(lt, max_pairs=None if cap == "none" else int(cap), split_half=args.split_half)
            row = {"rows": len(lt), "cap": cap, "pairs_estimated": r.info.get("pairs_estimated"),
                   "max_locs_per_segment": r.info.get("max_locs_per_segment"), "n_pairs": r.info.get("n_pairs"),
                   "seconds": time.perf_counter() - t0, "rms_nm": drift_error_rms(r.drift_nm, drift[r.frames])}
            out.append(row)
            est = f"{row['pairs_estimated']:.3g}" if row["pairs_estimated"] else "-"
            print(f"| {row['rows']:,} | {cap} | {est} | {row['max_locs_per_segment'] or 'all'} | {row['seconds']:.1f} "
                  f"| {row['rms_nm']:.2f} |", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
