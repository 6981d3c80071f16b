"""Session 48's walk of the evaluation as a method developer in Python: the library's ``evaluate`` warns as
``plexloc evaluate`` does (one implementation, plexloc.evaluate.checks), keeps its matching and scores frames; the SMLM
Challenge's CSV is read wherever a table is read."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.evaluate import evaluate
from plexloc.evaluate.checks import EvaluationWarning
from plexloc.evaluate.metrics import frame_scores
from plexloc.io import read_locs, write_locs
from plexloc.table import LocTable
from test_evalwalk47 import _movie  # a truth and a fit finding 5 of 6 of its rows

CHALLENGE_HEADER = "Ground-truth,frame,xnano,ynano,znano,intensity"


def _quiet(truth, pred, **options):
    """``evaluate`` with every warning an error: nothing may be warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return evaluate(truth, pred, **options)


# --- the library warns as the CLI does --------------------------------------------------------------------------

#: each mistake a method developer makes in a notebook, and what is said (the CLI's sentence; a regular expression)
MISTAKES = {
    "frames from 1": (lambda p: p.with_columns(frame=p["frame"] + 1),
                      "the two tables look numbered a frame apart: with the predictions' frames read one lower"),
    "half the frames": (lambda p: p[p["frame"] < 15], r"rows in frames beyond the predictions' 0\.\.14"),
    "ROI corner": (lambda p: p.with_columns(x_nm=p["x_nm"] - 1600.0, y_nm=p["y_nm"] - 800.0),
                   r"the predictions' positions look offset from the truth's by x -1[56]\d\d nm, y -[78]\d\d nm"),
    "x/y swap": (lambda p: p.with_columns(x_nm=p["y_nm"], y_nm=p["x_nm"]), "the predictions' x and y look exchanged"),
    "y mirror": (lambda p: p.with_columns(y_nm=30000.0 - p["y_nm"]),
                 r"the predictions' y looks mirrored: the truth's y is about (299\d\d|300\d\d) nm minus theirs"),
    "z sign": (lambda p: p.with_columns(z_nm=-p["z_nm"]), "the predictions' z looks of the opposite sign"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_library_evaluate_warns_where_truth_and_fit_disagree(mistake):
    """evaluate() scored each of these at JI 0-40 % without a word (the CLI warned since session 47); it warns now,
    with the JI both ways, and keeps the sentence in Metrics.warnings; checks=False is silent."""
    truth, pred = _movie()
    ref = _quiet(truth, pred)  # the fit as it is: nothing to say
    assert ref.warnings == () and ref.jaccard > 75
    change, words = MISTAKES[mistake]
    wrong = change(pred)
    with pytest.warns(EvaluationWarning, match=words) as record:
        m = evaluate(truth, wrong)
    assert m.jaccard < 45  # half the frames: 41 %; the others under 35 %
    said = [str(w.message) for w in record if issubclass(w.category, EvaluationWarning)]
    assert len(said) == 1 and m.warnings == tuple(said)
    if mistake != "half the frames":  # the JI once changed back is the fit's (over the same rows)
        ji = re.search(r"JI ([\d.]+) % instead of ([\d.]+) %", said[0])
        assert float(ji.group(2)) == pytest.approx(m.jaccard, abs=0.01)
        assert float(ji.group(1)) > 75
    silent = _quiet(truth, wrong, checks=False)
    assert silent.warnings == () and silent.jaccard == m.jaccard


def test_library_fixes_are_worded_for_python():
    truth, pred = _movie()
    with pytest.warns(EvaluationWarning, match=re.escape("pred.with_columns(frame=pred['frame'] - 1)")):
        evaluate(truth, pred.with_columns(frame=pred["frame"] + 1))
    with pytest.warns(EvaluationWarning, match=re.escape("score them with evaluate(..., frames=(0, 14))")):
        evaluate(truth, pred[pred["frame"] < 15])
    flat = pred.with_columns(z_nm=np.zeros(len(pred)))  # a 2D fit's z against a 3D truth, scored in 3D as asked
    with pytest.warns(EvaluationWarning, match="the predictions have no z .z_nm 0 in every row.*dim=2 scores them"):
        evaluate(truth, flat, dim=3)
    with pytest.warns(EvaluationWarning, match="were the two swapped.*evaluate.truth, pred."):
        evaluate(pred.with_columns(prob=np.ones(len(pred))), truth, dim=3)


def test_library_and_cli_say_the_same_sentence(tmp_path, capsys):
    """One implementation: the CLI prints the library's finding (tables named by their files)."""
    truth, pred = _movie()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred.with_columns(x_nm=pred["y_nm"], y_nm=pred["x_nm"]), tmp_path / "swap.csv")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "swap.csv"), "--json", str(out)]) == 0
    err = capsys.readouterr().err
    with pytest.warns(EvaluationWarning) as record:
        m = evaluate(read_locs(tmp_path / "truth.csv"), read_locs(tmp_path / "swap.csv"))
    (message,) = [str(w.message) for w in record]
    assert message.startswith(f"{tmp_path / 'swap.csv'} against {tmp_path / 'truth.csv'}: the predictions' x and y")
    assert f"warning: {message}\n" in err
    with open(out) as f:
        d = json.load(f)
    assert d["warnings"] == [message] == list(m.warnings) and d["jaccard"] == pytest.approx(m.jaccard)
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "truth.csv"), "--json", str(out)]) == 0
    with open(out) as f:
        assert json.load(f)["warnings"] == []


def test_library_warns_of_the_simulated_drift_beside_the_truth_file(tmp_path):
    truth, pred = _movie()
    drift = np.linspace(0.0, 80.0, 30)
    write_locs(truth, tmp_path / "truth.csv")
    (tmp_path / "truth_drift.csv").write_text("frame,x_nm,y_nm,z_nm\n" + "".join(
        f"{f},{d:.3f},{-d / 2:.3f},0\n" for f, d in enumerate(drift)))
    frames = np.asarray(pred["frame"], np.int64)
    drifted = pred.with_columns(x_nm=pred["x_nm"] + drift[frames], y_nm=pred["y_nm"] - drift[frames] / 2)
    with pytest.warns(EvaluationWarning, match="follow the stage drift of .*truth_drift.csv"):
        evaluate(read_locs(tmp_path / "truth.csv"), drifted, dim=2)
    _quiet(truth, drifted, dim=2)  # a truth in memory has no file beside it: nothing looked for


def test_frames_scores_the_frames_a_fit_saw():
    truth, pred = _movie()
    half = pred[pred["frame"] < 15]
    m = _quiet(truth, half, frames=(0, 14))
    inside = truth[truth["frame"] <= 14]
    assert m.n_truth == len(inside) and m.n_pred == len(half)
    assert m.jaccard == _quiet(inside, half).jaccard > 75
    with pytest.raises(InputError, match=r"frames 40 50: the truth has no rows in those frames \(it spans frames 0..29"):
        evaluate(truth, pred, frames=(40, 50))
    with pytest.raises(InputError, match="FIRST must not be above LAST"):
        evaluate(truth, pred, frames=(5, 2))


# --- what the result holds ----------------------------------------------------------------------------------------

def test_metrics_keep_their_matching_and_frame_scores_add_up():
    truth, pred = _movie()
    m = _quiet(truth, pred)
    mt = m.matching
    assert (mt.n_tp, mt.n_fp, mt.n_fn) == (m.tp, m.fp, m.fn)
    assert np.array_equal(truth["frame"][mt.tp_truth], pred["frame"][mt.tp_pred])  # pairs within a frame
    d = pred["x_nm"][mt.tp_pred] - truth["x_nm"][mt.tp_truth]
    assert np.allclose(d, mt.dx) and float(np.mean(d)) == pytest.approx(m.bias_x)
    assert "matching" not in m.to_dict() and "warnings" not in m.to_dict()
    s = frame_scores(truth, pred, mt)
    assert s["frame"].tolist() == list(range(30))
    assert int(s["tp"].sum()) == m.tp and int(s["fp"].sum()) == m.fp and int(s["fn"].sum()) == m.fn
    assert int(s["n_truth"].sum()) == len(truth)
    f = 7
    in_f = truth["frame"][mt.tp_truth] == f
    assert s["rmse_lat"][f] == pytest.approx(np.sqrt(np.mean(mt.dx[in_f] ** 2 + mt.dy[in_f] ** 2)))
    assert s["rmse_ax"][f] == pytest.approx(np.sqrt(np.mean(mt.dz[in_f] ** 2)))
    assert s["jaccard"][f] == pytest.approx(100 * s["tp"][f] / (s["tp"][f] + s["fp"][f] + s["fn"][f]))
    # a frame without predictions: precision and RMSE undefined (NaN), JI 0
    s2 = frame_scores(truth, pred[pred["frame"] != f], _quiet(truth, pred[pred["frame"] != f], checks=False).matching)
    assert s2["jaccard"][f] == 0 and np.isnan(s2["precision"][f]) and np.isnan(s2["rmse_lat"][f])
    assert "rmse_ax" not in frame_scores(truth, pred, _quiet(truth, pred, dim=2).matching)
    with pytest.raises(InputError, match="does not fit tables"):
        frame_scores(truth, pred[:10], mt)


# --- the SMLM Challenge's CSV wherever a table is read ---------------------------------------------------------------

def _challenge_text(table: LocTable, header: str | None, origin: int = 1) -> str:
    rows = [f"{i + 1},{int(f) + origin},{x:.4f},{y:.4f},{z:.4f},{p:.1f}"
            for i, (f, x, y, z, p) in enumerate(zip(*(table[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons"))))]
    return "\n".join(([header] if header else []) + rows) + "\n"


def test_read_locs_reads_the_challenge_csv(tmp_path):
    """read_locs (the library's reader, and every command's) refused the challenge's files: 'missing required
    column(s) ['x_nm', ...]'."""
    truth, _ = _movie()
    for name, header in (("activations.csv", CHALLENGE_HEADER), ("short.csv", "id,frame,x,y,z,intensity"),
                         ("bare.csv", None)):
        (tmp_path / name).write_text(_challenge_text(truth, header))
        t = read_locs(tmp_path / name)
        assert t["frame"].tolist() == truth["frame"].tolist()  # numbered from 1 in the file
        assert np.allclose(t["x_nm"], truth["x_nm"], atol=1e-4) and np.allclose(t["z_nm"], truth["z_nm"], atol=1e-4)
        assert t["photons"].tolist() == truth["photons"].tolist() and t["id"].tolist() == list(range(1, len(t) + 1))
    (tmp_path / "zero.csv").write_text(_challenge_text(truth, CHALLENGE_HEADER, origin=0))
    assert read_locs(tmp_path / "zero.csv", frame_origin=0)["frame"].tolist() == truth["frame"].tolist()
    with pytest.raises(InputError, match=r"zero.csv: line 2, column 'frame': frame 0 is below 1.*frame_origin=0"):
        read_locs(tmp_path / "zero.csv")


def test_plexloc_and_thunderstorm_csvs_are_read_as_before(tmp_path):
    truth, _ = _movie()
    six = truth  # frame, x_nm, y_nm, z_nm, photons, id: a plexloc CSV of six columns (its header names x_nm)
    assert len(six.columns) == 6
    write_locs(six, tmp_path / "six.csv")
    back = read_locs(tmp_path / "six.csv")
    assert back.columns == six.columns and np.allclose(back["x_nm"], six["x_nm"], atol=1e-3)
    write_locs(truth, tmp_path / "ts.thunderstorm.csv")
    ts = read_locs(tmp_path / "ts.thunderstorm.csv")
    assert ts["frame"].tolist() == truth["frame"].tolist() and np.allclose(ts["x_nm"], truth["x_nm"], atol=1e-2)
    # ThunderSTORM's columns in a file named .csv: refused with the hint to rename it, as before
    (tmp_path / "ts.csv").write_text((tmp_path / "ts.thunderstorm.csv").read_text())
    with pytest.raises(InputError, match="its columns are ThunderSTORM's: name the file ts.thunderstorm.csv"):
        read_locs(tmp_path / "ts.csv")
    # a file of bare numbers that are not the challenge's six: no challenge table, refused as before
    (tmp_path / "five.csv").write_text("1,2,3,4,5\n6,7,8,9,10\n")
    with pytest.raises(InputError, match="missing required column"):
        read_locs(tmp_path / "five.csv")


def test_render_and_filter_read_the_challenge_csv(tmp_path):
    truth, _ = _movie()
    path = tmp_path / "activations.csv"
    path.write_text(_challenge_text(truth, CHALLENGE_HEADER))
    assert main(["render", str(path), "--out", str(tmp_path / "img.png")]) == 0
    assert (tmp_path / "img.png").stat().st_size > 0
    assert main(["filter", str(path), "--out", str(tmp_path / "f.csv"), "--min-photons", "10"]) == 0
    out = read_locs(tmp_path / "f.csv")
    assert len(out) == len(truth) and out["frame"].tolist() == truth["frame"].tolist()
    (tmp_path / "zero.csv").write_text(_challenge_text(truth, CHALLENGE_HEADER, origin=0))
    assert main(["filter", str(tmp_path / "zero.csv"), "--frame-origin", "0", "--out", str(tmp_path / "g.csv"),
                 "--min-photons", "10"]) == 0
    assert read_locs(tmp_path / "g.csv")["frame"].tolist() == truth["frame"].tolist()
