"""Diagnostic (bench/RESULTS.md, issue 10, quad-plane voxel JI): how much of seed 002's voxel-level Jaccard
index a localizer loses to its position errors rather than to its detections.

From a kept truth/prediction pair (``bench/accuracy.py --keep-tables`` or ``bench/multichannel.py
--keep-tables``) it reports the voxel JI of
- the prediction as it is;
- the same detections with every matched localization moved onto its true position (detection errors only);
- the whole truth with Gaussian errors of given RMS (lateral, axial): what a localizer that finds every emitter
  and has those errors scores, e.g. at the CRLB of the data.

    PYTHONPATH=src python bench/diag/voxel_limits.py PREFIX [--errors LAT,AX ...]
    e.g. bench/out/mc_quad_rescore/quad_plane_d0.331 --errors 10,20 20,40 33,60
"""

from __future__ import annotations

import argparse

import numpy as np

from plexloc.evaluate.matching import match
from plexloc.evaluate.voxel import voxel_jaccard
from plexloc.io import read_table
from plexloc.table import LocTable

VOXELS = dict(voxel_nm=(192.0, 192.0, 400.0), origin_nm=(0.0, 0.0, -200.0), shape=(64, 64, 4))  # examples/quad_plane.yaml


def _table(frame, x, y, z) -> LocTable:
    return LocTable({"frame": frame, "x_nm": x, "y_nm": y, "z_nm": z, "photons": np.ones(len(frame))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix", help="PREFIX_truth.csv and PREFIX_pred.csv")
    ap.add_argument("--errors", nargs="*", default=["10,20", "20,40", "33,60"],
                    help="RMS lateral (over x and y together) and axial error in nm, e.g. 20,40")
    a = ap.parse_args()
    truth, pred = read_table(a.prefix + "_truth.csv"), read_table(a.prefix + "_pred.csv")
    t = {k: np.asarray(truth[k], float) for k in ("frame", "x_nm", "y_nm", "z_nm")}
    p = {k: np.asarray(pred[k], float) for k in ("frame", "x_nm", "y_nm", "z_nm")}
    m = match(truth, pred, dim=3)
    rms_lat = float(np.sqrt(np.mean(m.dx**2 + m.dy**2)))
    rms_ax = float(np.sqrt(np.mean(m.dz**2)))
    print(f"truth {len(t['frame'])}, predictions {len(p['frame'])}, matched {len(m.tp_pred)}; "
          f"RMS error lateral {rms_lat:.1f} nm, axial {rms_ax:.1f} nm")
    print("| case | voxel JI % |\n|---|---|")
    print(f"| the prediction | {voxel_jaccard(truth, pred, **VOXELS).jaccard:.1f} |")
    exact = {k: v.copy() for k, v in p.items()}
    for k in ("x_nm", "y_nm", "z_nm"):
        exact[k][m.tp_pred] = t[k][m.tp_truth]
    print(f"| its detections at their true positions | {voxel_jaccard(truth, _table(*exact.values()), **VOXELS).jaccard:.1f} |")
    rng = np.random.default_rng(0)
    n = len(t["frame"])
    for spec in a.errors:
        lat, ax = (float(v) for v in spec.split(","))
        moved = _table(t["frame"], t["x_nm"] + rng.normal(0, lat / np.sqrt(2), n), t["y_nm"] + rng.normal(0, lat / np.sqrt(2), n),
                       t["z_nm"] + rng.normal(0, ax, n))
        print(f"| every emitter found, RMS errors {lat:g} / {ax:g} nm | {voxel_jaccard(truth, moved, **VOXELS).jaccard:.1f} |")


if __name__ == "__main__":
    main()
