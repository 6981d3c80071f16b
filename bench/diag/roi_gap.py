"""Diagnostic (bench/RESULTS.md, issue 10, biplane): is the corner-against-middle gap of a multi-channel model
the frame edge, where another channel's image of a molecule leaves the frame?

For each kept table pair (``bench/accuracy.py --keep-tables``) and its ROI offset on the chip, every truth row
and localization is put in one of two regions by where its position and its image in every other channel
(``T_c`` at the absolute chip position, minus the same ROI offset) lie:
- ``inner``: in every channel at least ``--border-nm`` inside the frame;
- ``edge``: the rest (a channel's image near or beyond the frame's edge).
Truth and localizations of a region are matched and scored alone (a localization is kept with the region of its own
position, as the SMLM Challenge crops a field of view). If the model does as well in the inner region at both
offsets, the gap comes from the edge, where a channel sees less of each molecule.

    PYTHONPATH=src python bench/diag/roi_gap.py examples/biplane_plex.yaml \
        bench/out/ft/biplane_eval/biplane_plex_d0.65:0,0 bench/out/ft/biplane_roi96/biplane_plex_d0.65:96,96
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from plexloc.config import SimulationConfig, load_config
from plexloc.evaluate.metrics import evaluate
from plexloc.io import read_table
from plexloc.simulation.simulator import Simulator
from plexloc.table import LocTable


def inner_mask(table: LocTable, sim: Simulator, offset_px: tuple[int, int], frame_px: tuple[int, int],
               border_nm: float) -> np.ndarray:
    """True where the position is ``border_nm`` inside the frame in every channel (frame coordinates, nm)."""
    px = sim.config.px_size_nm
    w_nm, h_nm = frame_px[1] * px, frame_px[0] * px
    xyz = torch.as_tensor(np.stack([np.asarray(table[k], float) for k in ("x_nm", "y_nm", "z_nm")], axis=1))
    offset = torch.tensor([[offset_px[0] * px, offset_px[1] * px]], dtype=xyz.dtype).expand(len(xyz), 2)
    ok = torch.ones(len(xyz), dtype=torch.bool)
    for ch in sim.channels:
        xc, yc, _ = ch.positions(xyz, offset)
        ok &= (xc >= border_nm) & (xc <= w_nm - border_nm) & (yc >= border_nm) & (yc <= h_nm - border_nm)
    return ok.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="the simulation configuration of the tables (channels, transforms, pixel size)")
    ap.add_argument("tables", nargs="+", help="PREFIX:X,Y: PREFIX_truth.csv / PREFIX_pred.csv and the ROI offset (px)")
    ap.add_argument("--border-nm", type=float, default=400.0)
    ap.add_argument("--out", default=None, help="JSON of the rows")
    a = ap.parse_args()
    config = load_config(a.config, SimulationConfig)
    sim = Simulator(config)
    frame_px = tuple(config.frame_size)
    rows = []
    print(f"{'tables':>48} {'offset':>8} {'region':>6} {'truth':>7} {'share':>6} {'JI %':>6} {'RMSE lat':>9} "
          f"{'RMSE ax':>8} {'E_3D':>6}")
    for item in a.tables:
        prefix, off = item.rsplit(":", 1)
        offset = tuple(int(v) for v in off.split(","))
        truth, pred = read_table(prefix + "_truth.csv"), read_table(prefix + "_pred.csv")
        t_in = inner_mask(truth, sim, offset, frame_px, a.border_nm)
        p_in = inner_mask(pred, sim, offset, frame_px, a.border_nm)
        for region, ts, ps in (("all", np.ones_like(t_in), np.ones_like(p_in)), ("inner", t_in, p_in),
                               ("edge", ~t_in, ~p_in)):
            m = evaluate(truth[ts], pred[ps], dim=3)
            row = {"tables": prefix, "offset_px": list(offset), "region": region, "n_truth": int(ts.sum()),
                   "share": float(ts.mean()), "jaccard": m.jaccard, "rmse_lat": m.rmse_lat, "rmse_ax": m.rmse_ax,
                   "eff_3d": m.eff_3d}
            rows.append(row)
            print(f"{prefix[-48:]:>48} {off:>8} {region:>6} {row['n_truth']:>7} {100 * row['share']:>5.1f}% "
                  f"{m.jaccard:>6.1f} {m.rmse_lat:>9.1f} {m.rmse_ax:>8.1f} {m.eff_3d:>6.1f}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"border_nm": a.border_nm, "config": a.config, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
