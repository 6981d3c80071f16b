"""Positions of two tables in different coordinates: what the scores alone do not say.

A table from another tool or setting may hold the same localizations in other coordinates than the truth's: measured
from the corner of a region of interest instead of the chip's (an offset), with x and y exchanged (x along rows), or
with z of the other sign (z > 0 towards the objective). Each matched almost nothing and scored a Jaccard index of a few
percent (an MLE fit worth 65 %: 1.4 % offset by 1.6 / 0.8 um, 3.9 % with x and y exchanged, 26 % with z negated)
without a word, as tables in pixels did before :func:`plexloc.evaluate.metrics.scale_mismatch`.

:func:`coordinate_mismatch` tries each (the offset found as the peak of the same-frame position differences) and
returns the one that matches clearly more pairs, as :func:`plexloc.evaluate.frames.frame_shift` does for frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plexloc.evaluate.frames import _clearly_more, _first_rows, _scored
from plexloc.table import LocTable

__all__ = ["CoordinateMismatch", "coordinate_mismatch", "position_offset"]

#: the bin of the position differences' histogram (nm) in which the offset is found
_BIN_NM = 50.0


@dataclass(frozen=True)
class CoordinateMismatch:
    """``pred`` matched better with its coordinates changed by ``kind``: ``'offset'`` (``offset_nm``, (dx, dy), taken
    from its x_nm, y_nm), ``'swap'`` (x and y exchanged; then, where ``offset_nm`` is given, taken from the exchanged
    x_nm, y_nm), ``'mirror_x'`` or ``'mirror_y'`` (that coordinate negated, then ``offset_nm`` taken: the truth's
    y_nm is ``-dy - y_nm`` of the predictions for ``'mirror_y'``) or ``'z_sign'`` (z negated); ``tp`` pairs as they
    are, ``tp_changed`` changed, and the Jaccard indices (%) both ways, over the ``n_truth`` truth rows compared."""

    kind: str
    tp: int
    tp_changed: int
    jaccard: float
    jaccard_changed: float
    n_truth: int
    offset_nm: tuple[float, float] | None = None


def position_offset(truth: LocTable, pred: LocTable, *, max_pairs: int = 250_000) -> tuple[float, float] | None:
    """The most common lateral difference ``pred - truth`` (nm) of rows in the same frame: the peak of their
    histogram in 50 nm bins, refined to the mean of the differences within 100 nm of it. Frames are taken in order
    until ``max_pairs`` differences (a first frame of more: rows of it drawn at random, seeded; 250,000 find an offset
    from a few hundred pairs of the same molecules, at a quarter of the time of 1,000,000); ``None`` without any
    frame in common.

    >>> t = LocTable({"frame": [0, 0, 1], "x_nm": [0.0, 3000.0, 500.0], "y_nm": [0.0, 0.0, 900.0],
    ...               "z_nm": [0.0] * 3, "photons": [1.0] * 3})
    >>> position_offset(t, t.with_columns(x_nm=t["x_nm"] + 1600.0, y_nm=t["y_nm"] - 800.0))
    (1600.0, -800.0)
    """
    tf = np.asarray(truth["frame"], np.int64)
    pf = np.asarray(pred["frame"], np.int64)
    t_order, p_order = np.argsort(tf, kind="stable"), np.argsort(pf, kind="stable")
    tf, pf = tf[t_order], pf[p_order]
    tx, ty = np.asarray(truth["x_nm"], float)[t_order], np.asarray(truth["y_nm"], float)[t_order]
    px, py = np.asarray(pred["x_nm"], float)[p_order], np.asarray(pred["y_nm"], float)[p_order]
    frames, t_start, t_count = np.unique(tf, return_index=True, return_counts=True)
    p_lo, p_hi = np.searchsorted(pf, frames, "left"), np.searchsorted(pf, frames, "right")
    dxs, dys = [], []
    total = 0
    rng = np.random.default_rng(0)
    for k in np.flatnonzero(p_hi > p_lo):
        ts = np.arange(t_start[k], t_start[k] + t_count[k])
        ps = np.arange(p_lo[k], p_hi[k])
        n = ts.size * ps.size
        if n > max_pairs:  # a frame of more pairs alone (a table of one frame): rows of both drawn at random, as many
            # of each as keep the share of pairs of the same molecule; it held every pair (12,000 rows in one frame:
            # 1.2 GB each of dx and dy, and a MemoryError)
            if total:
                break
            keep = np.sqrt(max_pairs / n)
            ts = np.sort(rng.choice(ts, max(1, int(ts.size * keep)), replace=False))
            ps = np.sort(rng.choice(ps, max(1, int(ps.size * keep)), replace=False))
            n = ts.size * ps.size
        elif total and total + n > max_pairs:
            break
        dxs.append(np.subtract.outer(px[ps], tx[ts]).ravel())
        dys.append(np.subtract.outer(py[ps], ty[ts]).ravel())
        total += n
    if not dxs:
        return None
    dx, dy = np.concatenate(dxs), np.concatenate(dys)
    ok = np.isfinite(dx) & np.isfinite(dy)
    dx, dy = dx[ok], dy[ok]
    if not dx.size:
        return None
    ix, iy = np.floor(dx / _BIN_NM).astype(np.int64), np.floor(dy / _BIN_NM).astype(np.int64)
    # the peak over 2 x 2 bins (an offset on a bin edge splits its pairs): each pair counts for the four 2 x 2 blocks
    # that hold its bin, a block named by its lower corner bin
    ix, iy = ix - ix.min() + 1, iy - iy.min() + 1
    span = int(iy.max()) + 2
    keys = np.concatenate([(ix - u) * span + (iy - v) for u in (0, 1) for v in (0, 1)])
    blocks, counts = np.unique(keys, return_counts=True)
    peak = int(blocks[np.argmax(counts)])
    at = (peak // span - 1 + int(np.floor(np.min(dx) / _BIN_NM)), peak % span - 1 + int(np.floor(np.min(dy) / _BIN_NM)))
    cx, cy = (at[0] + 1) * _BIN_NM, (at[1] + 1) * _BIN_NM  # the corner the four bins share
    near = np.hypot(dx - cx, dy - cy) <= 2 * _BIN_NM
    return float(np.mean(dx[near])), float(np.mean(dy[near]))


def coordinate_mismatch(truth: LocTable, pred: LocTable, *, dim: int = 3, max_lat_nm: float = 250.0,
                        max_ax_nm: float | None = 500.0, max_rows: int = 20_000, min_gain: float = 0.05,
                        min_pairs: int = 10) -> CoordinateMismatch | None:
    """``pred`` in other coordinates than ``truth`` (module docstring), or ``None``.

    The tables are matched (:func:`~plexloc.evaluate.matching.match`, the same thresholds) as they are and with ``pred`` moved back by its
    :func:`position_offset` (where that is beyond ``max_lat_nm / 2``: a smaller one is a bias, in the scores'
    ``bias_x``, ``bias_y``), with x and y exchanged, and in 3D with z negated; where fewer than half the rows of the
    smaller table pair, also with x and y exchanged and moved, and with x or y mirrored and moved (the offset of the
    mirrored table: the mirror's axis). The change that matches ``min_pairs``,
    ``min_gain`` (a fraction) and three standard deviations of the counts more pairs than the tables as they are, and
    the most pairs, is returned. Only the first frames, up to ``max_rows`` truth rows, are compared.

    >>> rng = np.random.default_rng(0)
    >>> t = LocTable({"frame": np.repeat(np.arange(20), 10), "x_nm": rng.uniform(0, 6400, 200),
    ...               "y_nm": rng.uniform(0, 6400, 200), "z_nm": rng.uniform(-500, 500, 200), "photons": np.ones(200)})
    >>> coordinate_mismatch(t, t.with_columns(x_nm=t["y_nm"], y_nm=t["x_nm"])).kind
    'swap'
    >>> coordinate_mismatch(t, t.with_columns(z_nm=-t["z_nm"])).kind
    'z_sign'
    >>> m = coordinate_mismatch(t, t.with_columns(y_nm=6400.0 - t["y_nm"]))   # y counted from the other edge
    >>> m.kind, round(-m.offset_nm[1])
    ('mirror_y', 6400)
    >>> coordinate_mismatch(t, t) is None
    True
    """
    if not len(truth) or not len(pred):
        return None
    t, p = _first_rows(truth, pred, max_rows)
    if not len(t) or not len(p):
        return None
    options = {"dim": dim, "max_lat_nm": max_lat_nm, "max_ax_nm": max_ax_nm}
    tp0, ji0 = _scored(t, p, **options)

    def moved(table: LocTable, *, always: bool = False) -> tuple[LocTable, tuple[float, float] | None]:
        """``table`` moved back by its offset from the truth, where that is beyond ``max_lat_nm / 2`` (or
        ``always``)."""
        off = position_offset(t, table)
        if off is None or not (always or np.hypot(*off) > max_lat_nm / 2):
            return table, None
        return table.with_columns(x_nm=table["x_nm"] - off[0], y_nm=table["y_nm"] - off[1]), off

    tries: list[tuple[str, LocTable, tuple[float, float] | None]] = []
    table, offset = moved(p)
    if offset is not None:
        tries.append(("offset", table, offset))
    swapped = p.with_columns(x_nm=p["y_nm"], y_nm=p["x_nm"])
    tries.append(("swap", swapped, None))
    if dim == 3:
        tries.append(("z_sign", p.with_columns(z_nm=-np.asarray(p["z_nm"], float)), None))
    if tp0 < 0.5 * min(len(t), len(p)):  # few pairs: also x and y exchanged and moved, or one of them mirrored (counted
        # from the image's other edge: y = c - y), each with its offset (the mirror's c); a mirrored y matched 4 % of a
        # fit worth 74 % without a word. (Not tried where most rows pair already: it cannot be, and it costs time.)
        table, offset = moved(swapped)
        if offset is not None:
            tries.append(("swap", table, offset))
        for axis in ("x", "y"):
            table, offset = moved(p.with_columns(**{f"{axis}_nm": -np.asarray(p[f"{axis}_nm"], float)}), always=True)
            if offset is not None:
                tries.append((f"mirror_{axis}", table, offset))
    best = None
    for kind, table, off in tries:
        tp, ji = _scored(t, table, **options)
        if (_clearly_more(tp, tp0, min_pairs=min_pairs, min_gain=min_gain)
                and (best is None or tp > best.tp_changed)):
            best = CoordinateMismatch(kind, tp0, tp, ji0, ji, len(t), off)
    return best
