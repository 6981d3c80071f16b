"""evaluate_matching runs evaluate's checks (session 49, colour helper): pixels read as nm, tables numbered a frame
apart, 3D scores of a table without z; ``checks=False`` skips them. Empty tables score JI 0 without a warning (as
``evaluate``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from plexloc.evaluate import EvaluationWarning, evaluate, evaluate_matching, match
from plexloc.table import LocTable


def _tables(n_frames: int = 40, per_frame: int = 8, seed: int = 0, z: bool = True):
    rng = np.random.default_rng(seed)
    n = n_frames * per_frame
    frame = np.repeat(np.arange(n_frames), per_frame)
    xy = rng.uniform(500.0, 9500.0, (n, 2))
    zz = rng.uniform(-400.0, 400.0, n) if z else np.zeros(n)
    truth = LocTable({"frame": frame, "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": zz, "photons": np.full(n, 2e3)})
    pred = truth.with_columns(x_nm=xy[:, 0] + rng.normal(0, 15, n), y_nm=xy[:, 1] + rng.normal(0, 15, n),
                              z_nm=zz + (rng.normal(0, 30, n) if z else 0.0))
    return truth, pred


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        out = fn(*a, **kw)
    return out, [str(w.message) for w in got if issubclass(w.category, EvaluationWarning)]


def test_honest_tables_no_warning():
    truth, pred = _tables()
    m, said = _quiet(evaluate_matching, truth, pred, match(truth, pred, dim=3))
    assert said == [] and m.warnings == () and m.jaccard > 99.0


def test_pixels_read_as_nm_warned_as_evaluate_does():
    truth, pred = _tables()
    pix = pred.with_columns(x_nm=pred["x_nm"] / 100.0, y_nm=pred["y_nm"] / 100.0)
    m, said = _quiet(evaluate_matching, truth, pix, match(truth, pix, dim=3))
    ref, ref_said = _quiet(evaluate, truth, pix, dim=3)
    assert m.jaccard < 5.0
    assert said and said == ref_said and m.warnings == tuple(said)
    m2, said2 = _quiet(evaluate_matching, truth, pix, match(truth, pix, dim=3), checks=False)
    assert said2 == [] and m2.warnings == () and m2.jaccard == m.jaccard


def test_frame_origin_warned():
    truth, pred = _tables()
    shifted = pred.with_columns(frame=pred["frame"] + 1)
    m, said = _quiet(evaluate_matching, truth, shifted, match(truth, shifted, dim=3))
    assert any("a frame apart" in s for s in said), said


def test_3d_scores_without_predicted_z_said():
    truth, pred = _tables()
    flat = pred.with_columns(z_nm=np.zeros(len(pred)))  # a 2D fit's table (a format without z reads 0)
    m, said = _quiet(evaluate_matching, truth, flat, match(truth, flat, dim=3))
    assert any("the predictions have no z" in s and "dim=2" in s for s in said), said
    assert m.warnings == tuple(said)


@pytest.mark.parametrize("which", ["pred", "truth", "both"])
def test_empty_tables_scored_quietly(which):
    truth, pred = _tables()
    t = truth[:0] if which in ("truth", "both") else truth
    p = pred[:0] if which in ("pred", "both") else pred
    m, said = _quiet(evaluate_matching, t, p, match(t, p, dim=3))
    assert m.jaccard == 0.0 and said == [] and (m.n_truth, m.n_pred) == (len(t), len(p))
