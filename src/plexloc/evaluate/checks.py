"""Checks of an evaluation that its scores alone do not make: one implementation for the library and the CLI.

A truth and a fit that disagree in how they are numbered or placed score a Jaccard index of a few percent to a few
tens of percent, and the numbers alone do not say why (an MLE fit worth JI 69 %: 43 % numbered from 1, 35 % for a fit
of half the frames, 2 % offset by a region of interest's corner, 5 % with x and y exchanged, 4 % with y mirrored,
29 % with z of the other sign). :func:`evaluation_checks` finds each of these and returns a :class:`Finding` with
one sentence naming what and the fix: :func:`plexloc.evaluate.evaluate` issues them as :class:`EvaluationWarning` s
(``checks=False`` switches them off) and keeps them in :attr:`Metrics.warnings <plexloc.evaluate.Metrics>`;
``plexloc evaluate`` prints them. The checks:

``swapped``
    the truth has columns only a fit writes and the predictions none (the arguments in the wrong order).
``no_pred_z``
    scored in 3D where the truth has z and the predictions none (one value in every row: a 2D fit); only where 3D
    was asked (``dim=3``, ``--dim 3``): without it such a pair is scored in 2D (:func:`pick_dim`).
``no_color``
    one table has a ``color`` column and the other not (no colour scores).
``color_order``
    the predicted colours look numbered in another order (:func:`~plexloc.evaluate.metrics.color_label_mismatch`).
``scale``
    a coordinate spread 20 times more or less than the truth's (pixels or um read as nm).
``merged``
    a merged table (``n_merged``), matched in each event's first frame only.
``drift``
    the errors follow the stage drift of ``truth_drift.csv`` beside the truth's file (an uncorrected table).
``frame_shift``
    the tables look numbered a frame apart (:func:`~plexloc.evaluate.frames.frame_shift`).
``coordinates``
    the predictions look offset, with x and y exchanged, mirrored, or with z of the other sign
    (:func:`~plexloc.evaluate.alignment.coordinate_mismatch`).
``truth_frames``, ``pred_frames``
    rows of one table in frames beyond the other's (a fit of part of a movie), beyond what the fit's own recall
    and false positives explain (:func:`~plexloc.evaluate.frames.frame_coverage`).

The fixes are worded for the caller: :data:`LIBRARY_ADVICE` (Python: ``frames=(0, 99)``, ``dim=2``) or the CLI's
options (:class:`Advice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plexloc.evaluate.matching import Matching
from plexloc.table import LocTable

__all__ = ["Advice", "EvaluationWarning", "Finding", "LIBRARY_ADVICE", "evaluation_checks", "no_z", "pick_dim"]


class EvaluationWarning(UserWarning):
    """A finding about two tables scored against each other that the scores alone do not say (module docstring)."""


@dataclass(frozen=True)
class Finding:
    """One check's finding: ``kind`` (module docstring), ``message`` (one sentence: what, the numbers both ways, and
    the fix), ``note`` (a remark rather than a warning: ``no_color``) and ``detail`` (the check's own result, e.g. a
    :class:`~plexloc.evaluate.frames.FrameShift`, where it has one)."""

    kind: str
    message: str
    detail: Any = None
    note: bool = False


@dataclass(frozen=True)
class Advice:
    """How the fixes are worded: ``frame_shift(lower)`` the fix of tables numbered a frame apart (``lower``: the
    predictions' frames one lower match better), ``frames(first, last)`` how to score those frames only, ``dim2`` how
    to score in 2D, ``order`` the call with truth and predictions in their order."""

    frame_shift: Callable[[bool], str]
    frames: Callable[[int, int], str]
    dim2: str
    order: str


def _library_frame_shift(lower: bool) -> str:
    sign, origin = ("-", 1) if lower else ("+", 0)
    return (f"renumber the predictions' frames (pred.with_columns(frame=pred['frame'] {sign} 1): a table numbered "
            f"from {origin} against one numbered from {1 - origin}), and score again")


#: the fixes worded for a Python caller of :func:`plexloc.evaluate.evaluate`
LIBRARY_ADVICE = Advice(
    frame_shift=_library_frame_shift,
    frames=lambda first, last: f"evaluate(..., frames=({first}, {last}))",
    dim2="dim=2",
    order="evaluate(truth, pred)",
)

#: columns only a fit writes (a network's probability and uncertainties, an MLE fit's bounds): a truth table has none
_FIT_COLUMNS = ("prob", "sigma_x_nm", "crlb_x_nm")
#: rows beyond the other table's frames are said where a fit of them at its recall elsewhere would have found this many
#: (none found by chance: about e^-10)
_MIN_EXPECTED = 10.0


def no_z(table: LocTable) -> str | None:
    """Why ``table`` holds no z (a 2D table), else ``None``: ``z_nm`` NaN in every row, or one value in every row of two
    or more (a format without z reads as 0). A table without rows has a z for this purpose (nothing to say)."""
    if not len(table):
        return None
    z = np.asarray(table["z_nm"], float)
    if np.isnan(z).all():
        return "z_nm NaN in every row"
    if len(z) >= 2 and np.isfinite(z).all() and float(np.ptp(z)) == 0:
        return f"z_nm {float(z[0]):g} in every row"
    return None


def pick_dim(truth: LocTable, pred: LocTable) -> tuple[int, str]:
    """The dimensionality to score ``pred`` against ``truth`` in where none is given, and why: 3 where the truth's z
    varies and the predictions have a z (:func:`no_z`), else 2. A 2D truth (z 0 in every row) scored in 3D reports an
    ``eff_3d`` that means nothing, and a 2D fit (z NaN, or 0 in every row as a format without z reads) scored against
    a 3D truth an axial RMSE of the truth's own z spread. ``plexloc evaluate`` without ``--dim`` and
    :func:`plexloc.evaluate.evaluate` without ``dim`` pick so.

    >>> t = LocTable({"frame": [0, 0], "x_nm": [0.0, 900.0], "y_nm": [0.0, 0.0], "z_nm": [0.0, 0.0],
    ...               "photons": [1.0, 1.0]})
    >>> pick_dim(t, t)
    (2, 'the truth has no z')
    >>> pick_dim(t.with_columns(z_nm=np.array([-100.0, 200.0])), t)
    (2, "the truth's z varies, but the predictions have none: z_nm 0 in every row")
    """
    z = np.asarray(truth["z_nm"], float) if "z_nm" in truth else np.zeros(0)
    z = z[np.isfinite(z)]
    truth_z = bool(z.size and float(np.ptp(z)) > 0)
    missing = no_z(pred)
    if truth_z and missing is None:
        return 3, "the truth's z varies"
    return 2, ("the truth has no z" if not truth_z else f"the truth's z varies, but the predictions have none: {missing}")


def _name(table: LocTable, default: str) -> str:
    return str(table.source) if table.source else default


def evaluation_checks(truth: LocTable, pred: LocTable, matching: Matching, *, truth_name: str | None = None,
                      pred_name: str | None = None, px_size_nm: float | None = None, advice: Advice = LIBRARY_ADVICE,
                      truth_path: str | Path | None = None) -> list[Finding]:
    """The findings (module docstring) about ``truth`` and ``pred`` scored by ``matching``, in the order a reader
    wants them; ``[]`` where nothing is amiss.

    Args:
        truth, pred: the tables ``matching`` was made from (LocTables).
        matching: their :func:`~plexloc.evaluate.matching.match`; its thresholds and dimensionality are the checks'.
        truth_name, pred_name: what the messages call the tables (default: their ``source``, else "truth", "pred").
        px_size_nm: the camera pixel size, to give offsets in pixels too.
        advice: how the fixes are worded (:data:`LIBRARY_ADVICE`, or the CLI's options).
        truth_path: the truth's file, beside which ``plexloc simulate`` writes ``truth_drift.csv`` (default: the
            truth's ``source`` where it is a file).
    """
    truth_name = truth_name or _name(truth, "truth")
    pred_name = pred_name or _name(pred, "pred")
    pair = f"{pred_name} against {truth_name}"
    out: list[Finding] = []

    fit_cols = [c for c in _FIT_COLUMNS if c in truth]
    if fit_cols and not any(c in pred for c in _FIT_COLUMNS):  # recall read as precision without a word
        out.append(Finding("swapped", f"the ground truth {truth_name} has columns only a fit writes "
                           f"({', '.join(fit_cols)}) and the predictions {pred_name} have none: were the two swapped? "
                           f"The order is {advice.order}"))
    missing_z = no_z(pred)
    if (matching.dim == 3 and missing_z is not None and not np.isnan(np.asarray(pred["z_nm"], float)).any()
            and no_z(truth) is None):  # (a 2D truth against a 2D fit scored in 3D: nothing axial to say)
        out.append(Finding("no_pred_z", f"{pred_name}: the predictions have no z ({missing_z}), so the axial scores "
                           f"measure the truth's own z spread; {advice.dim2} scores them laterally"))
    if ("color" in truth) != ("color" in pred):  # the colour scores need both (they were left out without a word)
        has, lacks = (truth_name, pred_name) if "color" in truth else (pred_name, truth_name)
        out.append(Finding("no_color", f"no colour scores: {has} has a 'color' column but {lacks} has none "
                           "(plexloc color assigns one)", note=True))
    from plexloc.evaluate.metrics import color_label_mismatch, merged_rows_note, scale_mismatch

    permuted = color_label_mismatch(truth, pred, matching)  # 1 % colour accuracy for colours numbered the other way
    if permuted is not None:
        out.append(Finding("color_order", f"{pair}: {permuted}"))
    scaled = scale_mismatch(truth, pred)  # pixels or um read as nm
    out += [Finding("scale", f"{pair}: {line}") for line in scaled]
    merged = merged_rows_note(pred)  # a merged table scored per frame: JI and photons mean nothing
    if merged is not None:
        out.append(Finding("merged", f"{pred_name}: {merged}"))
    drift = _drift(truth, pred, matching, truth_name, pred_name, truth_path)
    if drift is not None:
        out.append(drift)
    out += _frames_and_coordinates(truth, pred, matching, pair, truth_name, pred_name, px_size_nm, advice,
                                   scaled=bool(scaled))
    return out


def _drift(truth: LocTable, pred: LocTable, matching: Matching, truth_name: str, pred_name: str,
           truth_path: str | Path | None) -> Finding | None:
    """A simulated movie's truth.csv holds the sample's own positions, its truth_drift.csv beside it the stage drift
    the frames show: a table scored without its drift correction had the drift in its RMSE and biases (46 nm where the
    corrected table read 20) and nothing said so. Where the matched errors follow that drift, it is said."""
    from plexloc.evaluate.metrics import drift_in_errors

    if truth_path is None:
        if not truth.source or not Path(str(truth.source)).is_file():
            return None
        truth_path = truth.source
    path = Path(truth_path).parent / "truth_drift.csv"
    if not path.is_file():
        return None
    try:
        data = np.genfromtxt(path, delimiter=",", names=True)
        frames = np.asarray(data["frame"], np.int64).ravel()
        drift = np.column_stack([np.asarray(data[c], float).ravel() for c in ("x_nm", "y_nm", "z_nm")])
    except (OSError, ValueError) as err:  # not the drift file plexloc simulate writes: said, and not used
        return Finding("drift", f"{path} beside the truth is not a drift table (frame, x_nm, y_nm, z_nm): {err}; the "
                       "scores are not checked for an uncorrected drift")
    slope = drift_in_errors(truth, pred, matching, frames, drift)
    if slope is None or slope < 0.5:
        return None
    axes = 2 if matching.dim == 2 else 3
    span = np.ptp(drift[:, :axes], axis=0)
    return Finding("drift", f"the errors of {pred_name} follow the stage drift of {path} ({slope:.2f} of it; the drift "
                   "spans " + ", ".join(f"{v:.0f} nm in {a}" for a, v in zip("xyz", span))
                   + f"): {truth_name} holds the sample's own, drift-free positions, so the RMSE and biases include the "
                   "drift; score the drift-corrected table (plexloc drift, or plexloc process's locs_dc.csv)",
                   detail=slope)


def _frames_and_coordinates(truth: LocTable, pred: LocTable, matching: Matching, pair: str, truth_name: str,
                            pred_name: str, px_size_nm: float | None, advice: Advice, *,
                            scaled: bool) -> list[Finding]:
    """Tables numbered a frame apart, in other coordinates, or with frames the other never reaches: the pairs are made
    within a frame only, so each cost JI without a word (modules plexloc.evaluate.frames and .alignment). ``scaled``:
    a scale mismatch was said (pixels or um read as nm), which other coordinates do not explain."""
    from plexloc.evaluate.frames import frame_coverage, frame_shift, in_frames
    from plexloc.evaluate.metrics import evaluate_matching
    from plexloc.evaluate.matching import match

    options = {"dim": matching.dim, "max_lat_nm": matching.max_lat_nm, "max_ax_nm": matching.max_ax_nm}
    shift = frame_shift(truth, pred, **options)
    if shift is not None:
        lower = shift.shift < 0  # the predictions' frames one lower match better
        of = (f", over the first {shift.n_truth} of {len(truth)} truth rows" if shift.n_truth < len(truth) else "")
        # (the frame spans of tables numbered apart say nothing more, nor do their coordinates)
        return [Finding("frame_shift", f"{pair}: the two tables look numbered a frame apart: with the predictions' "
                        f"frames read one {'lower' if lower else 'higher'}, {shift.tp_shifted} pairs match instead of "
                        f"{shift.tp} (JI {shift.jaccard_shifted:.2f} % instead of {shift.jaccard:.2f} %{of}); the "
                        f"scores match frames as numbered: {advice.frame_shift(lower)}", detail=shift)]
    out: list[Finding] = []
    if not scaled:  # a table in pixels read as nm also matched more moved by some 'offset' (x -4499 nm): a second,
        # contrary advice
        found = _coordinates(truth, pred, matching, pair, px_size_nm)
        if found is not None:
            out.append(found)
    cover = frame_coverage(truth, pred)
    if cover is None:
        return out
    (t0, t1), (p0, p1) = cover.truth_frames, cover.pred_frames
    many_truth = cover.truth_outside >= max(10, 0.05 * cover.n_truth)
    many_pred = cover.pred_outside >= max(10, 0.05 * cover.n_pred)
    if not (many_truth or many_pred):
        return out
    # the frames both tables span, scored alone: the fit's recall and false positives there tell rows beyond them
    # that a fit of all frames leaves so (a sparse truth, a poor fit: the first and last rows all missed; a truth whose
    # last frames hold no emitters, and the fit's false positives in them) from frames the fit never saw or a truth of
    # another movie (1 of 4 fits at 8 % recall of a sparse truth, and 3 of 3 truths ending before the movie with a fit
    # of false positives in every frame, were warned without this)
    first, last = max(t0, p0), min(t1, p1)
    m = None
    if first <= last:
        t, p = in_frames(truth, first, last), in_frames(pred, first, last)
        m = evaluate_matching(t, p, match(t, p, **options), dim=matching.dim, checks=False)
    if many_truth:
        # at the fit's recall in the frames it has, the rows beyond them would have given this many pairs
        found = None if m is None or not m.n_truth else m.tp / m.n_truth * cover.truth_outside
        if found is None or found >= _MIN_EXPECTED:
            inside = "" if found is None else (
                f" (at its recall over frames {first}..{last}, {m.recall:.2f} %, it would have found about "
                f"{found:.0f} of them); over frames {first}..{last} alone JI {m.jaccard:.2f} %: score them with "
                f"{advice.frames(first, last)}")
            out.append(Finding("truth_frames", f"{truth_name} has {cover.truth_outside} of {cover.n_truth} rows in "
                               f"frames beyond the predictions' {p0}..{p1} (the truth spans {t0}..{t1}): they count "
                               f"as missed (fn), as if the fit saw those frames and found nothing{inside}",
                               detail=cover))
    if many_pred:
        # the fit's false positives per frame in the truth's frames, over the frames beyond them that it has rows in
        beyond = max(0, t0 - p0) + max(0, p1 - t1)
        expected = None if m is None else m.fp / (last - first + 1) * beyond
        if expected is None or cover.pred_outside > 1.5 * expected + 3.0 * np.sqrt(expected):
            rate = "" if expected is None else (
                f", where its false positives in the truth's frames would make about {expected:.0f}")
            out.append(Finding("pred_frames", f"{pred_name} has {cover.pred_outside} of {cover.n_pred} rows in frames "
                               f"beyond the truth's {t0}..{t1} (the predictions span {p0}..{p1}{rate}): they count as "
                               f"false positives; is {truth_name} the truth of the movie that was fitted, and numbered "
                               "as its frames?", detail=cover))
    return out


def _coordinates(truth: LocTable, pred: LocTable, matching: Matching, pair: str,
                 px_size_nm: float | None) -> Finding | None:
    """The predictions in other coordinates than the truth (an offset: a region of interest's corner or another
    origin; x and y exchanged; x or y mirrored, counted from the image's other edge; z of the other sign) matched
    almost nothing without a word (module plexloc.evaluate.alignment)."""
    from plexloc.evaluate.alignment import coordinate_mismatch

    found = coordinate_mismatch(truth, pred, dim=matching.dim, max_lat_nm=matching.max_lat_nm,
                                max_ax_nm=matching.max_ax_nm)
    if found is None:
        return None

    def change(*moves: tuple[int, str]) -> str:
        """'subtract 1600 nm from the predictions' x_nm and 800 nm from their y_nm' ('add ... to' where negative)"""
        words, verb = [], None
        for v, col in ((v, col) for v, col in moves if v):
            said = "subtract" if v > 0 else "add"
            words.append(("" if said == verb else said + " ") + f"{abs(v)} nm {'from' if v > 0 else 'to'} "
                         + ("their" if words else "the predictions'") + f" {col}")
            verb = said
        return " and ".join(words)

    def pixels(*values: int) -> str:
        return "" if px_size_nm is None else f" ({', '.join(f'{v / px_size_nm:+.2f}' for v in values)} pixels)"

    dx, dy = (None, None) if found.offset_nm is None else (int(round(v)) for v in found.offset_nm)  # (no '-0 nm')
    near = matching.max_lat_nm / 2  # an offset within it is a bias (bias_x, bias_y), not said
    if found.kind == "offset":
        what = f"the predictions' positions look offset from the truth's by x {dx:+d} nm, y {dy:+d} nm{pixels(dx, dy)}"
        how = "moved back by it"
        fix = (f"is one table measured from a region of interest's corner, or from another origin? Give both in the "
               f"same coordinates ({change((dx, 'x_nm'), (dy, 'y_nm'))})")
    elif found.kind == "swap":
        what = "the predictions' x and y look exchanged" + (
            "" if dx is None else f" and offset (x {dx:+d} nm, y {dy:+d} nm{pixels(dx, dy)} once exchanged)")
        how = "with x_nm and y_nm swapped" + ("" if dx is None else " and moved back")
        fix = ("exchange the predictions' x_nm and y_nm columns (x runs along the image columns, conventions.md)"
               + ("" if dx is None else f", then {change((dx, 'x_nm'), (dy, 'y_nm'))}"))
    elif found.kind.startswith("mirror"):
        axis, other = ("x", "y") if found.kind == "mirror_x" else ("y", "x")
        c, o = (-dx, dy) if axis == "x" else (-dy, dx)  # truth's axis = c - the predictions'
        what = (f"the predictions' {axis} looks mirrored: the truth's {axis} is about {c} nm{pixels(c)} minus theirs"
                + (f", and {other} offset by {o:+d} nm" if abs(o) > near else ""))
        how = f"with {axis}_nm mirrored"
        fix = (f"replace the predictions' {axis}_nm by {c} - {axis}_nm (conventions.md: x and y count from the outer "
               f"corner of pixel (0, 0); another tool may count {axis} from the image's other edge)"
               + (f", then {change((o, f'{other}_nm'))}" if abs(o) > near else ""))
    else:
        what = "the predictions' z looks of the opposite sign"
        how = "with z_nm negated"
        fix = ("negate the predictions' z_nm (z > 0 is away from the objective, conventions.md; another tool may count "
               "it towards the objective)")
    of = f", over the first {found.n_truth} of {len(truth)} truth rows" if found.n_truth < len(truth) else ""
    return Finding("coordinates", f"{pair}: {what}: {how}, {found.tp_changed} pairs match instead of {found.tp} (JI "
                   f"{found.jaccard_changed:.2f} % instead of {found.jaccard:.2f} %{of}); {fix}", detail=found)
