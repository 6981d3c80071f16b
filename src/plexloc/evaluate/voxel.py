"""Voxel-level Jaccard index, as Aritake et al. define it for quad-plane localization (seed 002:
"Single-molecule localization by voxel-wise regression using convolutional neural network").

Their definition, followed exactly:

- Section 2.1: the target space ``Phi = [0, S1] x [0, S2] x [0, S3]`` is split into ``n1 x n2 x n3``
  disjoint voxels ``Phi_ijk`` of size ``s_d = S_d / n_d`` (Table 3: 192 x 192 x 400 nm, 64 x 64 x 4 for
  the quad-plane data; each voxel is centred on the point where the image is observed, so in z on the
  focal planes).
- Section 3.2: the label of a voxel is ``c_ijk = 1`` if some molecule ``z_m`` lies in ``Phi_ijk`` and 0
  otherwise (a voxel holding two molecules is one positive voxel).
- Section 4.2, Fig. 7(a) and Table 4: the "Jaccard index of binary classification" compares the estimated
  labels with the true labels over all voxels of all test images: ``JI = TP / (TP + FP + FN)`` with TP,
  FP, FN counted in voxels. (Table 4's 22,878 TP, 1,844 FP and 2,089 FN give their 85.3 %.)

Here an estimated voxel label is 1 where at least one localization of that frame falls into the voxel
(the network's detections are already thresholded), so the score applies to any localizer's output. Each
frame is one observation (one image), so voxels are counted per frame. Positions are in nm
(conventions.md); the grid's corner is ``origin_nm`` (default ``(0, 0, -s3 / 2)``: lateral voxels are the
camera pixels when ``s1, s2`` equal the pixel size, and axial voxel ``k`` is centred on ``z = k * s3``,
which for ``examples/quad_plane.yaml`` are its four focal planes at 0, 400, 800 and 1200 nm). With
``shape`` the target space is the box of ``shape`` voxels and points outside it are left out (as the paper
counts only the voxels of ``Omega``); without it the grid is unbounded.

>>> from plexloc.table import LocTable
>>> t = LocTable({"frame": [0, 0], "x_nm": [10.0, 50.0], "y_nm": [10.0, 10.0], "z_nm": [0.0, 0.0], "photons": [1.0, 1.0]})
>>> p = LocTable({"frame": [0], "x_nm": [100.0], "y_nm": [10.0], "z_nm": [0.0], "photons": [1.0]})
>>> voxel_jaccard(t, p, voxel_nm=(192.0, 192.0, 400.0)).jaccard   # both molecules and the fit in one voxel
100.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["VoxelJaccard", "voxel_jaccard", "voxel_labels"]


@dataclass(frozen=True)
class VoxelJaccard:
    """Voxel-level scores: counts in voxels (summed over frames), ``jaccard`` in percent (0 when no voxel is
    positive in either table). ``*_outside``: points left out because they lie outside ``shape``."""

    tp: int
    fp: int
    fn: int
    jaccard: float
    voxel_nm: tuple[float, float, float]
    origin_nm: tuple[float, float, float]
    shape: tuple[int, int, int] | None
    truth_outside: int
    pred_outside: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {f"voxel_{k}" if not k.startswith("voxel") else k: (list(v) if isinstance(v, tuple) else v)
                for k, v in d.items()}


def _triple(value, name: str, *, positive: bool) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise InputError(f"{name} must be three numbers (x, y, z), got {value!r}") from None
    if len(out) != 3 or not all(np.isfinite(out)) or (positive and min(out) <= 0):
        raise InputError(f"{name} must be three finite{' positive' if positive else ''} numbers (x, y, z) in nm, "
                         f"got {list(value)}")
    return out  # type: ignore[return-value]


def voxel_labels(table: LocTable, *, voxel_nm, origin_nm, shape=None, name: str = "table") -> tuple[np.ndarray, int]:
    """The positive voxels of a table: unique rows ``(frame, i, j, k)`` (i along x, j along y, k along z),
    and the number of points outside ``shape`` (left out).

    Raises:
        InputError: a missing column, or a NaN/inf position (it lies in no voxel; counted as "outside" it
            would pass silently as a missed or spurious molecule). ``name`` says which table in the message.
    """
    for col in ("frame", "x_nm", "y_nm", "z_nm"):
        if col not in table.columns:
            raise InputError(f"{name} has no '{col}' column, which the voxel Jaccard index needs")
    try:
        table.check_finite(("x_nm", "y_nm", "z_nm"))
    except InputError as err:
        raise InputError(f"{name}: {err.reason}; the voxel Jaccard index needs finite positions",
                         source=err.source) from None
    pos = np.column_stack([table["x_nm"], table["y_nm"], table["z_nm"]]).astype(np.float64)
    idx = np.floor((pos - np.asarray(origin_nm)) / np.asarray(voxel_nm))
    keep = np.all(np.isfinite(idx), axis=1)
    if shape is not None:
        keep &= np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    rows = np.column_stack([np.asarray(table["frame"], np.int64)[keep], idx[keep].astype(np.int64)])
    return np.unique(rows, axis=0), int(len(pos) - keep.sum())


def voxel_jaccard(truth: LocTable, pred: LocTable, *, voxel_nm=(192.0, 192.0, 400.0), origin_nm=None,
                  shape=None) -> VoxelJaccard:
    """Voxel-level Jaccard index of ``pred`` against ``truth`` (module docstring: seed 002, Sec. 2.1, 3.2, 4.2).

    Args:
        voxel_nm: voxel size ``(s1, s2, s3)`` along x, y, z in nm (seed 002, Table 3: 192, 192, 400).
        origin_nm: the grid's corner ``(x, y, z)`` in nm; default ``(0, 0, -s3 / 2)``.
        shape: ``(n1, n2, n3)`` voxels of the target space (Table 3: 64, 64, 4); ``None``: unbounded.
    """
    voxel = _triple(voxel_nm, "voxel_nm", positive=True)
    origin = _triple((0.0, 0.0, -voxel[2] / 2) if origin_nm is None else origin_nm, "origin_nm", positive=False)
    if shape is not None:
        shp = tuple(int(n) for n in shape)
        if len(shp) != 3 or min(shp) < 1:
            raise InputError(f"voxel shape must be three counts >= 1 (n_x, n_y, n_z), got {list(shape)}")
        shape = shp
    t, t_out = voxel_labels(truth, voxel_nm=voxel, origin_nm=origin, shape=shape, name="ground-truth table")
    p, p_out = voxel_labels(pred, voxel_nm=voxel, origin_nm=origin, shape=shape, name="predicted table")
    both = np.concatenate([t, p])
    tp = int((np.unique(both, axis=0, return_counts=True)[1] == 2).sum()) if len(both) else 0
    fp, fn = len(p) - tp, len(t) - tp
    den = tp + fp + fn
    return VoxelJaccard(tp=tp, fp=fp, fn=fn, jaccard=100.0 * tp / den if den else 0.0, voxel_nm=voxel,
                        origin_nm=origin, shape=shape, truth_outside=t_out, pred_outside=p_out)
