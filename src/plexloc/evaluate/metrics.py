"""Detection and localization scores of the SMLM Challenge 2016 (Sage et al. 2019).

Definitions follow ``docs/conventions.md`` (Evaluation): Jaccard index, recall and precision in
percent; RMSEs and biases in nm over matched pairs; efficiencies with the challenge's weights
(lateral 1 nm⁻¹, axial 0.5 nm⁻¹); colour accuracy and rejection; the gridding artefact.

Undefined scores are ``None``, never NaN: RMSEs, biases, efficiencies and colour scores without
any matched pair, recall without ground truth, precision without predictions, and the axial
scores (``rmse_ax, rmse_vol, eff_ax, eff_3d, bias_z``) in 2D. The Jaccard index is 0 whenever
nothing matched (also when both tables are empty).

``dim`` is the dimensionality of the scores, ``matching_dim`` that of the matching they were computed from, and
``max_lat_nm`` / ``max_ax_nm`` the thresholds that matching held its pairs to. A 3D matching scored in 2D
(``evaluate_matching(..., dim=2)``) keeps ``max_ax_nm``: its pairs (and so tp, fp, fn, the Jaccard index and the
lateral RMSE) were allowed only within that axial distance, which a 2D matching does not ask; ``max_ax_nm`` is
``None`` only where the matching itself was 2D.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plexloc.errors import InputError
from plexloc.evaluate.gridding import gridding_deviation
from plexloc.evaluate.matching import Matching, match
from plexloc.table import LocTable, as_table

__all__ = ["Metrics", "drift_in_errors", "evaluate", "evaluate_matching", "frame_scores", "gridding_deviation",
           "merged_rows_note", "scale_mismatch"]

#: Keys that :meth:`Metrics.to_dict` always writes (``None`` where not applicable).
CORE_KEYS: tuple[str, ...] = (
    "jaccard",
    "recall",
    "precision",
    "tp",
    "fp",
    "fn",
    "rmse_lat",
    "rmse_ax",
    "rmse_vol",
    "eff_lat",
    "eff_ax",
    "eff_3d",
)
COLOR_KEYS: tuple[str, ...] = ("color_accuracy", "color_rejection")
GRIDDING_KEYS: tuple[str, ...] = ("gridding_dev_x", "gridding_dev_y")
#: photon scores (not the SMLM Challenge's): the median relative error of the matched pairs' photons and the median
#: of its absolute value, percent, over pairs whose true and predicted photons are positive
PHOTON_KEYS: tuple[str, ...] = ("photons_bias", "photons_rel_err")

#: Efficiency weights of the SMLM Challenge 2016 (per nm): lateral 1, axial 0.5.
EFF_WEIGHT_LAT = 1.0
EFF_WEIGHT_AX = 0.5


@dataclass(frozen=True)
class Metrics:
    """Scores of one prediction table against ground truth. Percentages are 0..100, distances nm; a score that is
    undefined is ``None`` (module docstring).

    Attributes:
        dim: the scores' dimensionality (2: the axial scores are ``None``).
        n_truth, n_pred: rows of the truth and of the predictions scored.
        tp, fp, fn: matched pairs, unmatched predictions (false positives), unmatched truth rows (false negatives).
        jaccard, recall, precision: ``100 tp / (tp + fp + fn)``, ``100 tp / n_truth``, ``100 tp / n_pred`` (%).
        rmse_lat, rmse_ax, rmse_vol: ``sqrt(mean(dx² + dy²))``, ``sqrt(mean(dz²))``, ``sqrt(mean(dx² + dy² + dz²))``
            over the pairs (nm).
        eff_lat, eff_ax, eff_3d: the SMLM Challenge's efficiencies (%; weights 1 and 0.5 per nm).
        bias_x, bias_y, bias_z: the mean of ``pred - truth`` over the pairs (nm).
        has_color, color_accuracy, color_rejection: whether both tables have a ``color`` column, and then correct and
            rejected (-1) colours per pair (%).
        px_size_nm, gridding_dev_x, gridding_dev_y: the pixel size given and the gridding artefact of the matched
            predictions (largest relative deviation from uniform of the sub-pixel histogram; only with a pixel size).
        max_lat_nm, max_ax_nm, matching_dim: the matching's thresholds (nm; ``max_ax_nm`` ``None`` for a 2D matching
            only, see the module docstring) and dimensionality.
        photons_bias, photons_rel_err: the median of ``pred / truth - 1`` of the pairs' photons and of its absolute
            value (%; not the Challenge's).
        warnings: what the checks of :func:`evaluate` (or :func:`evaluate_matching`) found (:mod:`plexloc.evaluate.checks`: tables numbered a frame
            apart, frames one table lacks, other coordinates, ...), one sentence each; also issued as
            :class:`~plexloc.evaluate.checks.EvaluationWarning` s. Not in :meth:`to_dict`.
        matching: the :class:`~plexloc.evaluate.matching.Matching` the scores come from: the pairs
            (``truth[m.tp_truth]``, ``pred[m.tp_pred]``, ``m.delta_nm``), the false positives and negatives; with
            :func:`frame_scores` the scores of every frame. Not in :meth:`to_dict`, nor compared.
    """

    dim: int
    n_truth: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    jaccard: float
    recall: float | None
    precision: float | None
    rmse_lat: float | None
    rmse_ax: float | None
    rmse_vol: float | None
    eff_lat: float | None
    eff_ax: float | None
    eff_3d: float | None
    bias_x: float | None
    bias_y: float | None
    bias_z: float | None
    has_color: bool = False
    color_accuracy: float | None = None
    color_rejection: float | None = None
    px_size_nm: float | None = None
    gridding_dev_x: float | None = None
    gridding_dev_y: float | None = None
    max_lat_nm: float | None = None
    max_ax_nm: float | None = None
    matching_dim: int | None = None
    photons_bias: float | None = None
    photons_rel_err: float | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)
    matching: Matching | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (plain ints, floats and ``None``; never NaN).

        Always has :data:`CORE_KEYS`; the colour keys only when colours were evaluated, the
        gridding keys only when a pixel size was given.
        """
        out: dict[str, Any] = {k: getattr(self, k) for k in CORE_KEYS}
        if self.has_color:
            out.update({k: getattr(self, k) for k in COLOR_KEYS})
        out.update(bias_x=self.bias_x, bias_y=self.bias_y, bias_z=self.bias_z)
        out.update({k: getattr(self, k) for k in PHOTON_KEYS})
        if self.px_size_nm is not None:
            out.update({k: getattr(self, k) for k in GRIDDING_KEYS})
            out["px_size_nm"] = self.px_size_nm
        out.update(
            n_truth=self.n_truth,
            n_pred=self.n_pred,
            dim=self.dim,
            matching_dim=self.matching_dim,
            max_lat_nm=self.max_lat_nm,
            max_ax_nm=self.max_ax_nm,
        )
        return {k: _plain(v) for k, v in out.items()}

    def format_table(self) -> str:
        """A readable, aligned text table with units.

        >>> t = LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [1.0]})
        >>> print(evaluate(t, t, dim=2).format_table())
        metric            value  unit
        -----------------------------
        dim                   2
        n_truth               1
        n_pred                1
        tp                    1
        fp                    0
        fn                    0
        jaccard          100.00  %
        recall           100.00  %
        precision        100.00  %
        rmse_lat           0.00  nm
        eff_lat          100.00  %
        bias_x             0.00  nm
        bias_y             0.00  nm
        photons_bias       0.00  %
        photons_rel_err    0.00  %
        """
        rows: list[tuple[str, str, str]] = []
        rows.append(("dim", str(self.dim), ""))
        if self.matching_dim is not None and self.matching_dim != self.dim:  # the pairs held to the axial limit
            rows.append(("matching_dim", str(self.matching_dim), ""))
            rows.append(("max_ax_nm", _fmt(self.max_ax_nm), "nm"))
        for key in ("n_truth", "n_pred", "tp", "fp", "fn"):
            rows.append((key, str(getattr(self, key)), ""))
        pct = ["jaccard", "recall", "precision"]
        nm = ["rmse_lat", "rmse_ax", "rmse_vol"]
        eff = ["eff_lat", "eff_ax", "eff_3d"]
        bias = ["bias_x", "bias_y", "bias_z"]
        if self.dim == 2:  # the axial scores do not exist in 2D
            nm, eff, bias = nm[:1], eff[:1], bias[:2]
        for key in pct:
            rows.append((key, _fmt(getattr(self, key)), "%"))
        for key in nm:
            rows.append((key, _fmt(getattr(self, key)), "nm"))
        for key in eff:
            rows.append((key, _fmt(getattr(self, key)), "%"))
        for key in bias:
            rows.append((key, _fmt(getattr(self, key)), "nm"))
        rows += [(k, _fmt(getattr(self, k)), "%") for k in PHOTON_KEYS if getattr(self, k) is not None]
        if self.has_color:
            rows += [(k, _fmt(getattr(self, k)), "%") for k in COLOR_KEYS]
        if self.px_size_nm is not None:
            rows += [(k, _fmt(getattr(self, k)), "rel.") for k in GRIDDING_KEYS]
        w_key = max(len("metric"), *(len(r[0]) for r in rows))
        w_val = max(len("value"), *(len(r[1]) for r in rows))
        lines = [f"{'metric':<{w_key}}  {'value':>{w_val}}  unit", "-" * (w_key + w_val + 8)]
        lines += [f"{k:<{w_key}}  {v:>{w_val}}  {u}".rstrip() for k, v, u in rows]
        return "\n".join(lines)


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _pct(num: int, den: int) -> float | None:
    return None if den == 0 else 100.0 * num / den


def scale_mismatch(
    truth: LocTable, pred: LocTable, *, factor: float = 20.0, min_rows: int = 10
) -> list[str]:
    """Warnings where a coordinate of ``pred`` spreads ``factor`` times more or less than the truth's.

    A table in pixels (x / 100 for 100 nm pixels) or with z in um (z / 1000) matches nothing, or
    matches with an axial RMSE that means nothing, and the scores alone do not say why. The spread
    is the interquartile range of ``x_nm``, ``y_nm``, ``z_nm`` over all rows (a few outliers do not
    move it); a column is compared only where both tables have ``min_rows`` rows and a spread > 0
    (a 2D table's constant z is not compared). Returns one line per suspect column, else ``[]``.

    >>> t = LocTable({"frame": [0] * 20, "x_nm": np.linspace(0, 6400, 20), "y_nm": np.linspace(0, 6400, 20),
    ...               "z_nm": np.zeros(20), "photons": np.ones(20)})
    >>> scale_mismatch(t, t.with_columns(x_nm=t["x_nm"] / 100))   # doctest: +ELLIPSIS
    ["predicted x_nm spreads 32 nm (interquartile range) where the truth's spreads 3200 nm: 100x less; ..."]
    """
    out: list[str] = []
    if len(truth) < min_rows or len(pred) < min_rows:
        return out
    for col in ("x_nm", "y_nm", "z_nm"):
        if col not in truth or col not in pred:
            continue
        t = np.asarray(truth[col], float)
        p = np.asarray(pred[col], float)
        t, p = t[np.isfinite(t)], p[np.isfinite(p)]
        if t.size < min_rows or p.size < min_rows:
            continue
        st = float(np.subtract(*np.percentile(t, [75, 25])))
        sp = float(np.subtract(*np.percentile(p, [75, 25])))
        if st <= 0 or sp <= 0:
            continue
        ratio = sp / st
        if ratio < 1 / factor or ratio > factor:
            k = 1 / ratio if ratio < 1 else ratio
            how = (f"{k:,.0f}" if k >= 100 else f"{k:.3g}") + ("x less" if ratio < 1 else "x more")
            out.append(
                f"predicted {col} spreads {sp:.4g} nm (interquartile range) where the truth's spreads "
                f"{st:.4g} nm: {how}; is one table in pixels or um instead of nm?"
            )
    return out


def merged_rows_note(pred: LocTable) -> str | None:
    """A line where ``pred`` is a merged table (``plexloc merge``: rows with ``n_merged`` > 1), else ``None``.

    The scores match per frame: a merged row sits in its event's first frame with the event's summed photons, so the
    truth rows of the event's other frames count as missed and the photons read high (a 2D MLE table of 18,766 rows,
    merged into 6,939: JI 85 % before, 32 % after, photons +119 %); nothing in the numbers says why.

    >>> merged_rows_note(LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [1.0],
    ...                            "n_merged": [3], "frame_last": [2]}))  # doctest: +ELLIPSIS
    'the predictions are a merged table: 1 of 1 rows stand for 2-3 frames (n_merged) ...'
    """
    if "n_merged" not in pred or not len(pred):
        return None
    n = np.asarray(pred["n_merged"], float)
    many = np.isfinite(n) & (n > 1)
    if not many.any():
        return None
    return (f"the predictions are a merged table: {int(many.sum())} of {len(pred)} rows stand for 2-"
            f"{int(n[many].max())} frames (n_merged) and are matched in their first frame only, so the truth of the "
            "other frames counts as missed (recall, JI) and the summed photons read high; score the table before "
            "plexloc merge")


def color_label_mismatch(truth: LocTable, pred: LocTable, matching: Matching, *, min_gain: float = 20.0) -> str | None:
    """A line where ``pred``'s colour numbers look permuted against ``truth``'s, else ``None``: the relabelling of
    the predicted colours that agrees with the truth on the most matched pairs (a maximum-weight assignment of the
    confusion matrix) would raise ``color_accuracy`` by ``min_gain`` points or more.

    ``plexloc color`` without ``--ratios`` numbers the colours by descending fraction of photons in channel 0, which
    is the simulation's order only where the configuration lists its dyes that way: ratios of ``[[0.3, 0.7], [0.8,
    0.2]]`` scored 1.1 % colour accuracy for colours that were 98.9 % right, and nothing said why.

    >>> from plexloc.evaluate.matching import match
    >>> t = LocTable({"frame": [0, 0, 1], "x_nm": [0.0, 900.0, 0.0], "y_nm": [0.0] * 3, "z_nm": [0.0] * 3,
    ...               "photons": [1.0] * 3, "color": [0, 1, 0]})
    >>> p = t.with_columns(color=np.array([1, 0, 1]))
    >>> print(color_label_mismatch(t, p, match(t, p, dim=2)))  # doctest: +ELLIPSIS
    the predicted colours look numbered in another order than the truth's: read as 0 -> 1, 1 -> 0 they would ...
    """
    if "color" not in truth or "color" not in pred or not len(matching.tp_pred):
        return None
    from scipy.optimize import linear_sum_assignment

    ct = np.asarray(truth["color"])[matching.tp_truth].astype(np.int64)
    cp = np.asarray(pred["color"])[matching.tp_pred].astype(np.int64)
    ok = (ct >= 0) & (cp >= 0)
    if not ok.any():
        return None
    k = int(max(ct[ok].max(), cp[ok].max())) + 1
    confusion = np.zeros((k, k), np.int64)  # rows: predicted colour, columns: true colour
    np.add.at(confusion, (cp[ok], ct[ok]), 1)
    rows, cols = linear_sum_assignment(-confusion)
    tp = len(matching.tp_pred)
    given = 100.0 * np.trace(confusion) / tp
    best = 100.0 * confusion[rows, cols].sum() / tp
    if best - given < min_gain:
        return None
    # a predicted colour paired with a colour the truth does not have (more colours estimated than simulated) is said
    mapping = ", ".join(f"{r} -> {c if confusion[:, c].any() else 'none of the truth colours'}"
                        for r, c in zip(rows, cols) if confusion[r].any())
    fix = ("plexloc color without --ratios numbers the colours by descending photon fraction in channel 0, so give "
           "--ratios in the truth's colour order")
    if any(confusion[r].any() and not confusion[:, c].any() for r, c in zip(rows, cols)):
        # more colours assigned than the truth has: the order is not what --ratios in another order would fix
        n_true = len(np.unique(ct[ok]))
        n_pred = len(np.unique(cp[ok]))
        fix = (f"the table has {n_pred} colours for the truth's {n_true}: assign {n_true} (plexloc color --colors "
               f"{n_true}, or --ratios of the truth's {n_true} dyes in its order)")
    return (f"the predicted colours look numbered in another order than the truth's: read as {mapping} they would "
            f"score a colour accuracy of {best:.2f} % instead of {given:.2f} %; {fix}")


def drift_in_errors(truth: LocTable, pred: LocTable, matching: Matching, drift_frames: np.ndarray,
                    drift_nm: np.ndarray, *, min_range_nm: float = 10.0) -> float | None:
    """How much of a simulated stage drift the matched errors carry: the least-squares slope of ``pred - truth``
    against the drift of each pair's frame (x, y, and z in 3D, pooled; 1: not corrected, 0: corrected), or ``None``
    where the drift spans under ``min_range_nm`` or fewer than 10 pairs matched.

    ``truth.csv`` of ``plexloc simulate --drift-nm`` holds the sample's own positions and ``truth_drift.csv``
    (``drift_frames``, ``drift_nm`` (n, 3)) the drift the frames show; a table scored without its drift correction
    has the drift in its errors (a 2D MLE table of a movie drifting 60 nm by 40 nm: RMSE 46 nm, biases 30 / -20 nm,
    against 20 nm drift-corrected), which the scores do not say.
    """
    drift_nm = np.asarray(drift_nm, float).reshape(-1, 3)
    drift_frames = np.asarray(drift_frames, np.int64)
    if matching.n_tp < 10 or drift_nm.size == 0:
        return None
    axes = [0, 1] if matching.dim == 2 else [0, 1, 2]
    span = np.ptp(drift_nm[:, axes], axis=0)
    if float(span.max()) < min_range_nm:
        return None
    frames = np.asarray(truth["frame"], np.int64)[matching.tp_truth]
    pos = np.searchsorted(drift_frames, frames)
    known = (pos < len(drift_frames)) & (drift_frames[np.minimum(pos, len(drift_frames) - 1)] == frames)
    if known.sum() < 10:
        return None
    d = drift_nm[pos[known]][:, axes]
    d = d - d.mean(axis=0)  # a constant offset is a bias, not drift
    r = np.asarray(matching.delta_nm, float)[known][:, axes]
    ok = np.all(np.isfinite(r), axis=1)
    r = r[ok] - r[ok].mean(axis=0)
    d = d[ok]
    den = float(np.sum(d * d))
    return float(np.sum(r * d) / den) if den > 0 else None


def _check_px(px_size_nm: float | None) -> None:
    if px_size_nm is None:
        return
    if isinstance(px_size_nm, bool) or not isinstance(px_size_nm, (int, float, np.integer, np.floating)):
        raise InputError(f"px_size_nm must be a number of nm, got {px_size_nm!r}")
    if not (math.isfinite(px_size_nm) and px_size_nm > 0):
        raise InputError(f"px_size_nm must be a finite number > 0 nm, got {px_size_nm!r}")


def evaluate_matching(
    truth: LocTable,
    pred: LocTable,
    matching: Matching,
    *,
    dim: int | None = None,
    px_size_nm: float | None = None,
    checks: bool = True,
) -> Metrics:
    """Scores from a matching already made by :func:`~plexloc.evaluate.matching.match`.

    Args:
        truth, pred: the tables ``matching`` was made from.
        matching: the pairs.
        dim: 2 or 3; defaults to ``matching.dim``. With 2, the axial scores are ``None``; a 3D matching scored in 2D
            reports its axial threshold as ``max_ax_nm`` and ``matching_dim`` 3 (its pairs were held to it).
        px_size_nm: camera pixel size (nm) for the gridding artefact; ``None`` skips it.
        checks: warn as :func:`evaluate` does (:class:`~plexloc.evaluate.checks.EvaluationWarning`, also kept in
            ``Metrics.warnings``; :mod:`plexloc.evaluate.checks`: tables numbered a frame apart, in
            pixels or um, in other coordinates, scored in 3D without a predicted z, ...); ``False`` skips them (a
            training loop's validation). Without them a fit in pixels scored JI 0 here without a word where
            :func:`evaluate` said why.
    """
    dim = matching.dim if dim is None else dim
    if isinstance(dim, bool) or dim not in (2, 3):
        raise InputError(f"dim must be 2 or 3, got {dim!r}")
    if dim == 3 and matching.dim == 2:  # its pairs were never held to the axial tolerance
        raise InputError("3D scores need a 3D matching (match(..., dim=3)); this one was matched in 2D")
    _check_px(px_size_nm)
    truth, pred = as_table(truth, name="truth"), as_table(pred, name="pred")
    n_truth, n_pred = len(truth), len(pred)
    tp, fp, fn = matching.n_tp, matching.n_fp, matching.n_fn
    if tp + fn != n_truth or tp + fp != n_pred:
        raise InputError(
            f"matching (tp={tp}, fp={fp}, fn={fn}) does not fit tables of {n_truth} truth and "
            f"{n_pred} predicted rows"
        )

    jaccard = 100.0 * tp / (tp + fp + fn) if tp else 0.0
    recall = _pct(tp, n_truth)
    precision = _pct(tp, n_pred)

    rmse_lat = rmse_ax = rmse_vol = eff_lat = eff_ax = eff_3d = None
    bias_x = bias_y = bias_z = None
    if tp:
        dx, dy, dz = matching.dx, matching.dy, matching.dz
        lat2 = float(np.mean(dx * dx + dy * dy))
        rmse_lat = math.sqrt(lat2)
        eff_lat = 100.0 - math.hypot(100.0 - jaccard, EFF_WEIGHT_LAT * rmse_lat)
        bias_x, bias_y = float(np.mean(dx)), float(np.mean(dy))
        if dim == 3:
            ax2 = float(np.mean(dz * dz))
            rmse_ax = math.sqrt(ax2)
            rmse_vol = math.sqrt(lat2 + ax2)
            eff_ax = 100.0 - math.hypot(100.0 - jaccard, EFF_WEIGHT_AX * rmse_ax)
            eff_3d = 0.5 * (eff_lat + eff_ax)
            bias_z = float(np.mean(dz))

    has_color = "color" in truth and "color" in pred
    color_accuracy = color_rejection = None
    if has_color and tp:
        c_true = truth["color"][matching.tp_truth]
        c_pred = pred["color"][matching.tp_pred]
        rejected = c_pred == -1
        color_accuracy = 100.0 * np.count_nonzero((c_pred == c_true) & ~rejected) / tp
        color_rejection = 100.0 * np.count_nonzero(rejected) / tp

    photons_bias = photons_rel_err = None
    if tp:
        p = np.asarray(pred["photons"], float)[matching.tp_pred]
        t = np.asarray(truth["photons"], float)[matching.tp_truth]
        ok = (p > 0) & (t > 0) & np.isfinite(p) & np.isfinite(t)
        if ok.any():
            rel = p[ok] / t[ok] - 1.0
            photons_bias, photons_rel_err = 100.0 * float(np.median(rel)), 100.0 * float(np.median(np.abs(rel)))

    grid_x = grid_y = None
    if px_size_nm is not None:
        grid_x = gridding_deviation(pred["x_nm"][matching.tp_pred], float(px_size_nm))
        grid_y = gridding_deviation(pred["y_nm"][matching.tp_pred], float(px_size_nm))

    found = ()
    if checks:  # as evaluate() runs them (they were evaluate's only: evaluate_matching said nothing of pixels read as nm)
        import warnings

        from plexloc.evaluate.checks import EvaluationWarning, evaluation_checks

        found = tuple(f.message for f in evaluation_checks(truth, pred, matching, px_size_nm=px_size_nm)
                      if not f.note)
        for message in found:
            warnings.warn(message, EvaluationWarning, stacklevel=2)
    return Metrics(
        dim=int(dim),
        n_truth=n_truth,
        n_pred=n_pred,
        tp=tp,
        fp=fp,
        fn=fn,
        jaccard=jaccard,
        recall=recall,
        precision=precision,
        rmse_lat=rmse_lat,
        rmse_ax=rmse_ax,
        rmse_vol=rmse_vol,
        eff_lat=eff_lat,
        eff_ax=eff_ax,
        eff_3d=eff_3d,
        bias_x=bias_x,
        bias_y=bias_y,
        bias_z=bias_z,
        has_color=has_color,
        color_accuracy=None if color_accuracy is None else float(color_accuracy),
        color_rejection=None if color_rejection is None else float(color_rejection),
        px_size_nm=None if px_size_nm is None else float(px_size_nm),
        gridding_dev_x=grid_x,
        gridding_dev_y=grid_y,
        max_lat_nm=matching.max_lat_nm,
        # the thresholds the pairs were held to: a 3D matching scored in 2D still matched only within max_ax_nm (None
        # here made its tp / JI read as a 2D matching's)
        max_ax_nm=matching.max_ax_nm,
        matching_dim=int(matching.dim),
        photons_bias=photons_bias,
        photons_rel_err=photons_rel_err,
        matching=matching,
        warnings=found,
    )


def evaluate(
    truth: LocTable,
    pred: LocTable,
    *,
    dim: int | None = None,
    max_lat_nm: float = 250.0,
    max_ax_nm: float = 500.0,
    px_size_nm: float | None = None,
    frames: tuple[int, int] | None = None,
    checks: bool = True,
) -> Metrics:
    """Match ``pred`` to ``truth`` frame by frame and score it (SMLM Challenge 2016), and check what the scores alone
    do not say.

    Args:
        truth: ground-truth emitters (a :class:`~plexloc.table.LocTable`, or a dict or pandas DataFrame of its
            columns; nm, frames from 0).
        pred: predicted localizations (the same).
        dim: 3 (lateral and axial) or 2 (``z_nm`` ignored; axial scores ``None``); ``None`` (default): as
            ``plexloc evaluate`` picks (:func:`~plexloc.evaluate.checks.pick_dim`): 3 where the truth's z varies and
            the predictions have a z, else 2 (a 2D truth scored in 3D reported an ``eff_3d`` that means nothing;
            ``Metrics.dim`` says which).
        max_lat_nm, max_ax_nm: matching thresholds (inclusive), see :func:`match`.
        px_size_nm: camera pixel size (nm) for the gridding artefact; ``None`` skips it.
        frames: ``(first, last)``: score the rows of both tables in frames ``first..last`` only (inclusive; e.g. the
            frames a fit saw). Frames that hold no truth row are refused. ``Metrics.matching`` then indexes the rows
            of the tables as given (``truth[m.matching.tp_truth]``), and holds only the rows of those frames.
        checks: warn (:class:`~plexloc.evaluate.checks.EvaluationWarning`, one sentence each, also kept in
            ``Metrics.warnings``) where the tables look numbered a frame apart, where one has rows in frames beyond the
            other's (a fit of part of a movie), where the predictions look in other coordinates (offset, x and y
            exchanged, mirrored, z of the other sign, pixels or um read as nm), have no z in 3D, are a merged table,
            number their colours in another order, carry the simulated drift, or where the two tables look swapped
            (:mod:`plexloc.evaluate.checks`; as ``plexloc evaluate`` does). They match the tables a few times more
            (0.13 s instead of 0.01 s for 4,000 rows, 0.9-1.4 s instead of 0.1-0.2 s for 60,000; the frame and coordinate
            checks look at the first 50,000 and 20,000 truth rows only); ``False`` skips them (a
            training loop's validation).

    Returns:
        the scores, with the matching they come from (``Metrics.matching``) and the checks' findings
        (``Metrics.warnings``).

    Example:
        >>> t = LocTable({"frame": [0, 1], "x_nm": [100.0, 300.0], "y_nm": [100.0, 100.0],
        ...               "z_nm": [0.0, 0.0], "photons": [1e3, 1e3]})
        >>> p = t.with_columns(x_nm=t["x_nm"] + 10.0)
        >>> m = evaluate(t, p)                          # z 0 everywhere: scored in 2D
        >>> m.dim, m.jaccard, m.rmse_lat, m.eff_lat, m.rmse_ax
        (2, 100.0, 10.0, 90.0, None)
        >>> m.matching.tp_pred.tolist(), m.matching.dx.tolist(), m.warnings
        ([0, 1], [10.0, 10.0], ())
    """
    import warnings

    from plexloc.evaluate.checks import EvaluationWarning, evaluation_checks, pick_dim

    _check_px(px_size_nm)
    truth, pred = as_table(truth, name="truth"), as_table(pred, name="pred")
    masks = None
    if frames is not None:
        from plexloc.evaluate.frames import restrict_frames

        (truth, pred), masks = restrict_frames(truth, pred, frames)
    if dim is None:
        dim = pick_dim(truth, pred)[0]
    matching = match(truth, pred, dim=dim, max_lat_nm=max_lat_nm, max_ax_nm=max_ax_nm)
    metrics = evaluate_matching(truth, pred, matching, dim=dim, px_size_nm=px_size_nm, checks=False)
    found = []
    if checks:  # named by their files, or truth and pred; the notes (no colour scores: has_color says it) are the CLI's
        found = [f for f in evaluation_checks(truth, pred, matching, px_size_nm=px_size_nm) if not f.note]
        for finding in found:
            warnings.warn(finding.message, EvaluationWarning, stacklevel=2)
    if masks is not None:  # the pairs as rows of the tables given (indices into the frames' rows picked the wrong rows)
        t_rows, p_rows = np.flatnonzero(masks[0]), np.flatnonzero(masks[1])
        matching = dataclasses.replace(matching, tp_truth=t_rows[matching.tp_truth], tp_pred=p_rows[matching.tp_pred],
                                       fp=p_rows[matching.fp], fn=t_rows[matching.fn])
    return dataclasses.replace(metrics, warnings=tuple(f.message for f in found), matching=matching)


def frame_scores(truth: LocTable, pred: LocTable, matching: Matching) -> dict[str, np.ndarray]:
    """The scores of every frame of ``truth`` and ``pred`` (tables ``matching`` was made from, e.g.
    ``evaluate(truth, pred).matching``; with ``evaluate(..., frames=(first, last))`` the rows of those frames only, the
    rows its matching holds): columns (numpy arrays, one row per frame either table has there, ascending)
    ``frame, n_truth, n_pred, tp, fp, fn`` and ``jaccard, recall, precision`` (%), ``rmse_lat`` (nm) and, for a 3D
    matching, ``rmse_ax`` (nm); NaN where undefined (no pair, no truth row, no prediction). For the scores against
    density or time (``pandas.DataFrame(frame_scores(...))`` makes a frame of them).

    >>> t = LocTable({"frame": [0, 0, 1], "x_nm": [0.0, 900.0, 0.0], "y_nm": [0.0] * 3, "z_nm": [0.0] * 3,
    ...               "photons": [1.0] * 3})
    >>> s = frame_scores(t, t[:2], match(t, t[:2], dim=2))
    >>> s["frame"].tolist(), s["tp"].tolist(), s["fn"].tolist(), s["jaccard"].tolist()
    ([0, 1], [2, 0], [0, 1], [100.0, 0.0])
    """
    truth, pred = as_table(truth, name="truth"), as_table(pred, name="pred")
    tf, pf = np.asarray(truth["frame"], np.int64), np.asarray(pred["frame"], np.int64)
    # the rows the matching holds: every row of the tables, or (evaluate(..., frames=)) every row of the frames scored
    t_rows = np.sort(np.concatenate([matching.tp_truth, matching.fn]).astype(np.int64))
    p_rows = np.sort(np.concatenate([matching.tp_pred, matching.fp]).astype(np.int64))
    fits = all(not r.size or (r[0] >= 0 and r[-1] < len(f)) for r, f in ((t_rows, tf), (p_rows, pf)))
    if fits and (t_rows.size or p_rows.size):
        span = np.concatenate([tf[t_rows], pf[p_rows]])
        lo, hi = int(span.min()), int(span.max())
        fits = all(np.array_equal(r, np.flatnonzero((f >= lo) & (f <= hi))) for r, f in ((t_rows, tf), (p_rows, pf)))
    elif fits:
        fits = not len(tf) and not len(pf)
    if not fits:
        raise InputError(f"matching (tp={matching.n_tp}, fp={matching.n_fp}, fn={matching.n_fn}) does not fit tables "
                         f"of {len(tf)} truth and {len(pf)} predicted rows (it holds every row of the frames it "
                         "covers: the tables it was made from, as given to evaluate)")
    pair_frames = tf[matching.tp_truth]
    tf, pf = tf[t_rows], pf[p_rows]
    frames = np.unique(np.concatenate([tf, pf]))
    k = len(frames)

    def count(rows_frames: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(np.searchsorted(frames, rows_frames), weights=weights, minlength=k)

    n_truth, n_pred = count(tf).astype(np.int64), count(pf).astype(np.int64)
    tp = count(pair_frames).astype(np.int64)
    fp, fn = n_pred - tp, n_truth - tp

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.maximum(den, 1), np.nan)

    out = {"frame": frames, "n_truth": n_truth, "n_pred": n_pred, "tp": tp, "fp": fp, "fn": fn,
           "jaccard": np.where(tp + fp + fn > 0, 100.0 * ratio(tp, tp + fp + fn), 0.0),
           "recall": 100.0 * ratio(tp, n_truth), "precision": 100.0 * ratio(tp, n_pred)}
    d = np.asarray(matching.delta_nm, float).reshape(-1, 3)
    out["rmse_lat"] = np.sqrt(ratio(count(pair_frames, d[:, 0] ** 2 + d[:, 1] ** 2), tp))
    if matching.dim == 3:
        out["rmse_ax"] = np.sqrt(ratio(count(pair_frames, d[:, 2] ** 2), tp))
    return out
