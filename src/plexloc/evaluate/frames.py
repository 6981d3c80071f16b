"""Frame numbering of the two tables an evaluation matches: checks that the scores alone do not make.

Matching pairs rows of the same frame only, so two tables numbered differently match in the wrong frames without a
word: a table numbered from 1 (from another tool, or written by hand) against plexloc's truth, numbered from 0,
scored JI 40 % for a fit worth 65 % (its emitters, on for several frames, still met their next frame's truth), and
a table of emitters on for one frame each would score 0. Likewise, a truth with frames the fit never saw (a movie fit
in part) counts every emitter of those frames as missed.

:func:`frame_shift` finds a numbering off by one frame (the pairs found with the predictions' frames moved by one
against as numbered); :func:`frame_coverage` the rows of each table in frames beyond the other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plexloc.errors import InputError
from plexloc.evaluate.matching import match
from plexloc.table import LocTable

__all__ = ["FrameCoverage", "FrameShift", "frame_coverage", "frame_shift", "frames_mask", "in_frames", "restrict_frames"]


@dataclass(frozen=True)
class FrameShift:
    """The predictions' frames matched better moved by ``shift`` (added to their frame numbers): ``tp`` pairs as
    numbered, ``tp_shifted`` moved, over the ``n_truth`` truth and ``n_pred`` predicted rows compared (the first
    frames, up to ``max_rows`` truth rows); the Jaccard indices (%) of those rows both ways."""

    shift: int
    tp: int
    tp_shifted: int
    jaccard: float
    jaccard_shifted: float
    n_truth: int
    n_pred: int


def _first_rows(truth: LocTable, pred: LocTable, max_rows: int) -> tuple[LocTable, LocTable]:
    """The rows of both tables in the first frames that hold up to ``max_rows`` truth rows (pred one frame more)."""
    if len(truth) <= max_rows:
        return truth, pred
    last = int(np.sort(np.asarray(truth["frame"], np.int64))[max_rows - 1])
    return truth[truth["frame"] <= last], pred[pred["frame"] <= last + 1]


def _scored(truth: LocTable, pred: LocTable, **options) -> tuple[int, float]:
    """Pairs of :func:`match` (``options``: its thresholds) and the Jaccard index (%) of ``truth`` and ``pred``."""
    m = match(truth, pred, **options)
    total = m.n_tp + m.n_fp + m.n_fn
    return m.n_tp, 100.0 * m.n_tp / total if total else 0.0


def _clearly_more(tp: int, tp0: int, *, min_pairs: int, min_gain: float) -> bool:
    """Whether ``tp`` pairs are clearly more than ``tp0``: by ``min_pairs``, ``min_gain`` (a fraction) and three
    standard deviations of the counts (predictions that match by chance, a poor fit in a dense frame, do not count)."""
    return tp - tp0 >= max(min_pairs, min_gain * tp0, 3.0 * np.sqrt(tp + tp0))


def frame_shift(truth: LocTable, pred: LocTable, *, dim: int = 3, max_lat_nm: float = 250.0,
                max_ax_nm: float | None = 500.0, max_rows: int = 50_000, min_gain: float = 0.05,
                min_pairs: int = 10) -> FrameShift | None:
    """A frame numbering of ``pred`` off by one against ``truth``'s, or ``None``.

    The tables are matched as numbered and with ``pred``'s frames moved by -1 and +1 (as :func:`match`, with the
    same thresholds). A molecule on in frame f is on in f + 1 at most as often as in f, so moved frames find fewer
    pairs than frames numbered alike; where a move finds ``min_pairs``, ``min_gain`` (a fraction) and three standard
    deviations of the counts (``3 sqrt(tp + tp_shifted)``) more pairs than the numbering as it is, the best such move
    is returned. Only the first frames, holding up to ``max_rows`` truth
    rows, are compared (the answer does not need all of a long movie).

    >>> t = LocTable({"frame": [0, 1, 2] * 10, "x_nm": np.arange(30.0) * 1000, "y_nm": np.zeros(30),
    ...               "z_nm": np.zeros(30), "photons": np.ones(30)})
    >>> s = frame_shift(t, t.with_columns(frame=t["frame"] + 1), dim=2)   # numbered from 1
    >>> s.shift, s.tp, s.tp_shifted
    (-1, 0, 30)
    """
    if not len(truth) or not len(pred):
        return None
    t, p = _first_rows(truth, pred, max_rows)
    if not len(t) or not len(p):
        return None
    frames = np.asarray(p["frame"], np.int64)
    options = {"dim": dim, "max_lat_nm": max_lat_nm, "max_ax_nm": max_ax_nm}
    tp0, ji0 = _scored(t, p, **options)
    best = None
    for shift in (-1, 1):
        tp, ji = _scored(t, p.with_columns(frame=frames + shift), **options)
        if (_clearly_more(tp, tp0, min_pairs=min_pairs, min_gain=min_gain)
                and (best is None or tp > best.tp_shifted)):
            best = FrameShift(shift, tp0, tp, ji0, ji, len(t), len(p))
    return best


@dataclass(frozen=True)
class FrameCoverage:
    """The frames each table spans (first, last) and its rows in frames beyond the other's span."""

    truth_frames: tuple[int, int]
    pred_frames: tuple[int, int]
    truth_outside: int
    pred_outside: int
    n_truth: int
    n_pred: int


def frame_coverage(truth: LocTable, pred: LocTable) -> FrameCoverage | None:
    """The frames the two tables span and the rows of each outside the other's span; ``None`` where one is empty.

    >>> t = LocTable({"frame": np.arange(100), "x_nm": np.zeros(100), "y_nm": np.zeros(100), "z_nm": np.zeros(100),
    ...               "photons": np.ones(100)})
    >>> frame_coverage(t, t[t["frame"] < 50]).truth_outside   # a fit of the first 50 frames
    50
    """
    if not len(truth) or not len(pred):
        return None
    tf = np.asarray(truth["frame"], np.int64)
    pf = np.asarray(pred["frame"], np.int64)
    t_span = (int(tf.min()), int(tf.max()))
    p_span = (int(pf.min()), int(pf.max()))
    return FrameCoverage(
        truth_frames=t_span, pred_frames=p_span,
        truth_outside=int(np.count_nonzero((tf < p_span[0]) | (tf > p_span[1]))),
        pred_outside=int(np.count_nonzero((pf < t_span[0]) | (pf > t_span[1]))),
        n_truth=len(truth), n_pred=len(pred),
    )


def frames_mask(table: LocTable, first: int, last: int) -> np.ndarray:
    """Which rows of ``table`` are in frames ``first`` .. ``last`` (inclusive): a boolean mask."""
    f = np.asarray(table["frame"], np.int64)
    return (f >= first) & (f <= last)


def in_frames(table: LocTable, first: int, last: int) -> LocTable:
    """The rows of ``table`` in frames ``first`` .. ``last`` (inclusive)."""
    return table[frames_mask(table, first, last)]


def restrict_frames(truth: LocTable, pred: LocTable, frames: tuple[int, int], *,
                    option: str = "frames") -> tuple[tuple[LocTable, LocTable], tuple[np.ndarray, np.ndarray]]:
    """The rows of ``truth`` and ``pred`` in frames ``first..last`` (``frames``, inclusive, 0-based) and the masks of
    those rows. Frames that hold no truth row are refused (every prediction a false positive: JI 0), naming the frames
    the truth spans; ``option`` is what the messages call the setting (``--frames`` in the CLI)."""
    try:
        first, last = (int(v) for v in frames)
        if any(isinstance(v, bool) or int(v) != v for v in frames):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"{option} must be two whole frame numbers (first, last), got {frames!r}") from None
    if first > last:
        raise InputError(f"{option} {first} {last}: FIRST must not be above LAST")
    if first < 0:
        raise InputError(f"{option} {first} {last}: frames are numbered from 0")
    masks = (frames_mask(truth, first, last), frames_mask(pred, first, last))
    t, p = truth[masks[0]], pred[masks[1]]
    if len(truth) and not len(t):
        f = np.asarray(truth["frame"], np.int64)
        raise InputError(f"{option} {first} {last}: the truth has no rows in those frames (it spans frames "
                         f"{int(f.min())}..{int(f.max())}, numbered from 0 as read); give frames within them",
                         source=truth.source)
    return (t, p), masks
