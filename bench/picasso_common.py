"""Shared by the Picasso workers (``bench/mle_picasso_worker.py``, ``bench/picasso_astig_worker.py``), which run in
the bench-only venv with ``picassosr`` and without plexloc."""

from __future__ import annotations

import numpy as np
import pandas as pd


def write_locs(locs, path: str, px: float) -> None:
    """Picasso localizations -> a CSV table in conventions.md's units: Picasso puts pixel centres at integer
    coordinates, ours are at ``(i + 0.5) * px``; ``z_nm`` is Picasso's ``z`` (nm) where it fitted one, else 0.
    Rows without finite x, y are left out."""
    ok = np.isfinite(locs["x"]) & np.isfinite(locs["y"])
    locs = locs[ok]
    z = locs["z"] if "z" in locs else 0.0
    pd.DataFrame({"frame": locs["frame"].astype(int), "x_nm": (locs["x"] + 0.5) * px,
                  "y_nm": (locs["y"] + 0.5) * px, "z_nm": z, "photons": locs["photons"]}).to_csv(path, index=False)


def ids_at_pixels(table: pd.DataFrame, box: int, shape: tuple[int, int]) -> pd.DataFrame:
    """Picasso identifications at given pixels (``table``: frame, row, col), moved inside the frame of ``shape``
    (h, w) so that each ``box`` lies in it, as Picasso's boxes must (and as our fitting windows are)."""
    r = box // 2
    h, w = shape
    return pd.DataFrame({"frame": table["frame"].astype(np.int32), "x": table["col"].clip(r, w - 1 - r).astype(np.int32),
                         "y": table["row"].clip(r, h - 1 - r).astype(np.int32),
                         "net_gradient": np.ones(len(table), np.float32)})
