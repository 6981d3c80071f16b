"""Session 48's review of the library evaluation (helper evallib's 2813626, 287a70e, b83aff8): evaluate() picks 2D or
3D as plexloc evaluate does; with frames= its matching indexes the tables given; a six-number CSV in another column
order than the SMLM Challenge's is refused instead of read with every column one place off."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from test_evallib48 import _movie

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.evaluate import evaluate
from plexloc.evaluate.metrics import frame_scores
from plexloc.io import read_locs, write_locs


def _quiet(truth, pred, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return evaluate(truth, pred, **options)


# --- dim: as the CLI picks --------------------------------------------------------------------------------------


def test_evaluate_scores_a_2d_truth_in_2d_as_the_cli_does(tmp_path, capsys):
    """evaluate(truth, pred) scored in 3D whatever the tables: a 2D truth (z 0 everywhere) reported eff_3d 80 % and
    rmse_ax the fit's z spread without a word, where plexloc evaluate scored it in 2D. dim=None (the default) picks as
    the CLI does (one function, pick_dim); a 3D truth and fit score exactly as with dim=3."""
    truth, pred = _movie()
    flat_t = truth.with_columns(z_nm=np.zeros(len(truth)))
    flat_p = pred.with_columns(z_nm=np.zeros(len(pred)))
    cases = {  # truth, pred, the dim picked
        "2D truth, 2D fit": (flat_t, flat_p, 2),
        "3D truth, 3D fit": (truth, pred, 3),
        "2D truth, fit with z": (flat_t, pred, 2),
        "3D truth, 2D fit": (truth, flat_p, 2),
        "2D truth, fit with z unknown": (flat_t, pred.with_columns(z_nm=np.full(len(pred), np.nan)), 2),
    }
    for name, (t, p, dim) in cases.items():
        m = _quiet(t, p)
        assert m.dim == dim, name  # (3 before, for all of them)
        from plexloc.evaluate.checks import pick_dim  # the CLI's choice, in the library

        assert pick_dim(t, p)[0] == dim, name
        assert m == _quiet(t, p, dim=dim), name  # the scores of that dim, all fields
        if dim == 2:
            assert m.eff_3d is None and m.rmse_ax is None, name
        write_locs(t, tmp_path / "t.csv")
        write_locs(p, tmp_path / "p.csv")
        assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "p.csv"), "--json",
                     str(tmp_path / "m.json")]) == 0
        out = capsys.readouterr().out
        assert f"scored in {dim}D ({pick_dim(t, p)[1]}; --dim to choose)" in out, name
        with open(tmp_path / "m.json") as f:
            d = json.load(f)
        assert d["dim"] == dim and d["jaccard"] == pytest.approx(m.jaccard), name
        assert (d["eff_3d"] is None) == (m.eff_3d is None) and d["eff_lat"] == pytest.approx(m.eff_lat, abs=1e-3), name
    # dim=3 on a 2D fit against a 3D truth, as asked, and said
    with pytest.warns(Warning, match="the predictions have no z"):
        assert evaluate(truth, flat_p, dim=3).dim == 3


# --- frames=: the pairs are rows of the tables given ------------------------------------------------------------


def test_frames_matching_indexes_the_tables_given():
    """With frames=(10, 19) Metrics.matching indexed the rows of those frames, so truth[m.matching.tp_truth] (its
    documented use) gave rows of frames 0-4 paired with others 5 um away, and frame_scores(truth, pred, m.matching)
    was refused. Both are right now."""
    truth, pred = _movie()
    m = _quiet(truth, pred, frames=(10, 19))
    mt = m.matching
    tf, pf = np.asarray(truth["frame"]), np.asarray(pred["frame"])
    assert set(tf[mt.tp_truth]) <= set(range(10, 20)) and np.array_equal(tf[mt.tp_truth], pf[mt.tp_pred])
    assert np.allclose(np.asarray(pred["x_nm"])[mt.tp_pred] - np.asarray(truth["x_nm"])[mt.tp_truth], mt.dx)
    assert np.sqrt(np.mean(mt.dx ** 2 + mt.dy ** 2)) == pytest.approx(m.rmse_lat)
    assert sorted(np.concatenate([mt.tp_truth, mt.fn]).tolist()) == np.flatnonzero((tf >= 10) & (tf <= 19)).tolist()
    assert sorted(np.concatenate([mt.tp_pred, mt.fp]).tolist()) == np.flatnonzero((pf >= 10) & (pf <= 19)).tolist()
    s = frame_scores(truth, pred, mt)
    assert s["frame"].tolist() == list(range(10, 20))
    assert (int(s["tp"].sum()), int(s["fp"].sum()), int(s["fn"].sum())) == (m.tp, m.fp, m.fn)
    whole = _quiet(truth, pred)  # the whole tables: as before
    assert frame_scores(truth, pred, whole.matching)["frame"].tolist() == list(range(30))
    # a matching of other tables is still refused
    with pytest.raises(InputError, match="does not fit tables"):
        frame_scores(truth, pred[:-1], whole.matching)
    with pytest.raises(InputError, match="does not fit tables"):
        frame_scores(truth[truth["frame"] != 12], pred, m.matching)


# --- six numbers a line: the challenge's order, or refused ------------------------------------------------------


def _user_table(truth, fmt: str) -> str:
    """A user's own table without a header, in plexloc's column order: frame, x, y, z, photons, bg."""
    cols = np.column_stack([truth["frame"], truth["x_nm"], truth["y_nm"], truth["z_nm"], truth["photons"],
                            np.full(len(truth), 50.0)])
    return "\n".join(",".join(fmt % v for v in row) for row in cols) + "\n"


def test_a_headerless_csv_in_another_order_is_refused(tmp_path):
    """frame, x, y, z, photons, bg without a header, positions written as whole nm, were read in the challenge's
    order: x as the frames (frames 250..19472), y as x, photons 50 (29 of 30 simulated tables so written); refused
    now, naming the line and the header that says the order. The challenge's own files (rows in frame order; index
    1..N or a molecule's id) read as before."""
    truth, _ = _movie()
    for name, fmt in (("whole.csv", "%d"), ("decimals.csv", "%.3f")):
        (tmp_path / name).write_text(_user_table(truth, fmt))
        with pytest.raises(InputError, match=re.escape(name) + r": line 2: the second column, the frame in the SMLM "
                           r"Challenge's column order, goes back from \d+(\.\d+)? to .* first column is the frame; .*"
                           r"give the file a header, plexloc's column names .*frame,x_nm,y_nm,z_nm,photons,bg"):
            read_locs(tmp_path / name)
    # with plexloc's header it is plexloc's table
    (tmp_path / "named.csv").write_text("frame,x_nm,y_nm,z_nm,photons,bg\n" + _user_table(truth, "%d"))
    assert read_locs(tmp_path / "named.csv")["x_nm"].tolist() == np.trunc(truth["x_nm"]).tolist()
    # the challenge's order, rows in frame order: read, with the index 1..N or a molecule id (not sorted)
    for ids in (np.arange(1, len(truth) + 1), np.asarray(truth["id"]) + 1):
        rows = np.column_stack([ids, truth["frame"] + 1, truth["x_nm"], truth["y_nm"], truth["z_nm"], truth["photons"]])
        (tmp_path / "bare.csv").write_text("\n".join(",".join(f"{v:.10g}" for v in r) for r in rows) + "\n")
        t = read_locs(tmp_path / "bare.csv")
        assert t["frame"].tolist() == truth["frame"].tolist() and np.allclose(t["x_nm"], truth["x_nm"])
        assert t["id"].tolist() == ids.tolist()


def test_a_frame_that_is_not_whole_is_named_as_written(tmp_path):
    """'{:g}' wrote frame 14793.968 as 14794: 'frame 14794 is not a whole number'."""
    (tmp_path / "c.csv").write_text("id,frame,x,y,z,intensity\n1,1,10,10,0,100\n2,14793.968,761.2,356,0,2000\n")
    with pytest.raises(InputError, match=r"line 3, column 'frame': frame 14793\.968 is not a whole number$"):
        read_locs(tmp_path / "c.csv")
    (tmp_path / "b.csv").write_text("1,1,10,10,0,100\n2,2.5,761.2,356,0,2000\n")
    with pytest.raises(InputError, match=r"frame 2\.5 is not a whole number; a CSV of six numbers a line without a "
                       "header is read in the SMLM Challenge's column order"):
        read_locs(tmp_path / "b.csv")
