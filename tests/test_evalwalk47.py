"""Session 47's walk of ``plexloc evaluate`` as a method developer: the SMLM Challenge's CSV tables, frames numbered
from 1 by another tool, a truth with frames the fit never saw."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.evaluate import evaluate
from plexloc.evaluate.alignment import coordinate_mismatch
from plexloc.evaluate.challenge import challenge_layout, read_challenge_csv
from plexloc.evaluate.frames import frame_coverage, frame_shift
from plexloc.io import write_locs
from plexloc.table import LocTable

CHALLENGE_HEADER = "Ground-truth,frame,xnano,ynano,znano,intensity"


def _movie(n_mol: int = 150, n_frames: int = 30, on: int = 3, seed: int = 0) -> tuple[LocTable, LocTable]:
    """A truth of ``n_mol`` molecules, each on for ``on`` frames in a row, 0.5 um or more apart; a fit finding 5 of 6 of them
    (x, y within 20 nm, z within 40 nm)."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n_frames - on + 1, n_mol)
    frame = (start[:, None] + np.arange(on)).ravel()
    x = np.repeat((np.arange(n_mol) % 10) * 2000.0 + rng.uniform(0, 1500, n_mol), on)
    y = np.repeat((np.arange(n_mol) // 10) * 2000.0 + rng.uniform(0, 1500, n_mol), on)
    z = np.repeat(rng.uniform(-400, 400, n_mol), on)
    truth = LocTable({"frame": frame, "x_nm": x, "y_nm": y, "z_nm": z, "photons": np.full(frame.size, 2000.0),
                      "id": np.repeat(np.arange(n_mol), on)}).sort_by_frame()
    keep = rng.random(len(truth)) < 5 / 6
    t = truth[keep]
    n = len(t)
    pred = LocTable({"frame": t["frame"], "x_nm": t["x_nm"] + rng.uniform(-20, 20, n),
                     "y_nm": t["y_nm"] + rng.uniform(-20, 20, n), "z_nm": t["z_nm"] + rng.uniform(-40, 40, n),
                     "photons": t["photons"] * 1.1})
    return truth, pred


def _challenge_text(table: LocTable, header: str | None, origin: int = 1) -> str:
    rows = [f"{i + 1}, {int(f) + origin}, {x:.4f}, {y:.4f}, {z:.4f}, {p:.1f}"
            for i, (f, x, y, z, p) in enumerate(zip(*(table[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons"))))]
    return "\n".join(([header] if header else []) + rows) + "\n"


def _scores(capsys, *args) -> tuple[dict, str]:
    out = args[-1]
    assert main(["evaluate", *args[:-1], "--json", str(out)]) == 0
    with open(out) as f:
        return json.load(f), capsys.readouterr().err


# --- the SMLM Challenge's CSV --------------------------------------------------------------------------------------

def test_challenge_tables_are_read_and_score_as_plexloc_tables(tmp_path, capsys):
    """activations.csv (the challenge's ground truth: its header, frames from 1) and a localization file in its column
    order, with or without a header, were refused as plexloc CSVs ('missing required column(s) x_nm ...')."""
    truth, pred = _movie()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.csv")
    ref, _ = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), tmp_path / "ref.json")
    assert ref["dim"] == 3 and 0 < ref["tp"] < len(truth)
    (tmp_path / "activations.csv").write_text(_challenge_text(truth, CHALLENGE_HEADER + " "))  # the trailing blank
    for name, header in (("bare.csv", None), ("short.csv", "id,frame,x,y,z,intensity")):
        (tmp_path / name).write_text(_challenge_text(pred, header))
        got, err = _scores(capsys, str(tmp_path / "activations.csv"), str(tmp_path / name), tmp_path / "c.json")
        assert "read" in err and "SMLM Challenge" in err and "warning" not in err
        for key in ("tp", "fp", "fn", "dim", "jaccard"):
            assert got[key] == ref[key], key
        for key in ("rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "photons_bias"):
            assert got[key] == pytest.approx(ref[key], abs=1e-3), key


def test_challenge_reader_numbers_frames_from_zero_and_keeps_the_index(tmp_path):
    path = tmp_path / "activations.csv"
    path.write_text(f"{CHALLENGE_HEADER}\n7, 1, 100.5, 200.25, -30, 800\n8, 3, 5, 6, 0, 900.5\n")
    assert challenge_layout(path) == "header"
    t = read_challenge_csv(path)
    assert t["frame"].tolist() == [0, 2] and t["id"].tolist() == [7, 8]
    assert t["x_nm"].tolist() == [100.5, 5.0] and t["y_nm"].tolist() == [200.25, 6.0]
    assert t["z_nm"].tolist() == [-30.0, 0.0] and t["photons"].tolist() == [800.0, 900.5]
    assert read_challenge_csv(path, frame_origin=0)["frame"].tolist() == [1, 3]
    plexloc = tmp_path / "p.csv"
    plexloc.write_text("frame,x_nm,y_nm,z_nm,photons,id\n0,1,2,3,4,5\n")  # six columns, but plexloc's
    assert challenge_layout(plexloc) is None


@pytest.mark.parametrize("line, words", [
    ("3, 2, nan, 5, 0, 100", ["line 3", "'xnano'", "'nan'"]),
    ("3, 2, 4, abc, 0, 100", ["line 3", "'ynano'", "'abc'"]),
    ("3, 2.5, 4, 5, 0, 100", ["line 3", "'frame'", "2.5", "whole number"]),
    ("3, 0, 4, 5, 0, 100", ["line 3", "'frame'", "frame 0", "below 1", "--truth-frame-origin 0"]),
    ("3, 2, 4, 5, 0", ["line 3", "5 values", "6"]),
])
def test_challenge_reader_names_file_line_column_and_value(tmp_path, line, words):
    path = tmp_path / "activations.csv"
    path.write_text(f"{CHALLENGE_HEADER}\n1, 1, 10, 20, 0, 100\n{line}\n")
    with pytest.raises(InputError) as err:
        read_challenge_csv(path)
    text = str(err.value)
    assert str(path) in text and all(w in text for w in words), text


def test_challenge_truth_numbered_from_zero_is_read_with_its_origin(tmp_path, capsys):
    truth, pred = _movie()
    (tmp_path / "act.csv").write_text(_challenge_text(truth, CHALLENGE_HEADER, origin=0))
    write_locs(pred, tmp_path / "pred.csv")
    assert main(["evaluate", str(tmp_path / "act.csv"), str(tmp_path / "pred.csv")]) == 2
    assert "--truth-frame-origin 0" in capsys.readouterr().err
    got, _ = _scores(capsys, str(tmp_path / "act.csv"), str(tmp_path / "pred.csv"), "--truth-frame-origin", "0",
                     tmp_path / "m.json")
    assert got["tp"] == evaluate(truth, pred).tp


# --- frames numbered from 1 ----------------------------------------------------------------------------------------

def test_predictions_numbered_from_one_are_warned_with_the_numbers_and_the_fix(tmp_path, capsys):
    """A table from a tool numbering its frames from 1 matched the truth a frame apart and scored a JI well below the
    fit's (its emitters, on for 3 frames, still met the truth of the next frame) without a word."""
    truth, pred = _movie()
    right = evaluate(truth, pred)
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred.with_columns(frame=pred["frame"] + 1), tmp_path / "pred1.csv")
    off, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred1.csv"), tmp_path / "m.json")
    assert off["tp"] < 0.8 * right.tp  # the scores as numbered (the old code's, said now)
    assert "numbered a frame apart" in err and "--pred-frame-origin 1" in err, err
    assert f"{right.tp} pairs match instead of {off['tp']}" in err
    assert f"JI {right.jaccard:.2f} % instead of {off['jaccard']:.2f} %" in err
    fixed, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred1.csv"), "--pred-frame-origin", "1",
                         tmp_path / "m.json")
    assert "warning" not in err
    assert (fixed["tp"], fixed["jaccard"]) == (right.tp, pytest.approx(right.jaccard))


def test_one_frame_emitters_numbered_from_one_match_nothing_and_it_is_said(tmp_path, capsys):
    truth, pred = _movie(on=1, n_frames=10)
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred.with_columns(frame=pred["frame"] + 1), tmp_path / "pred1.csv")
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred1.csv"), tmp_path / "m.json")
    assert got["tp"] == 0 and got["jaccard"] == 0.0
    assert f"{len(pred)} pairs match instead of 0" in err and "--pred-frame-origin 1" in err


def test_truth_numbered_from_one_names_the_truth_option(tmp_path, capsys):
    truth, pred = _movie()
    write_locs(truth.with_columns(frame=truth["frame"] + 1), tmp_path / "truth1.csv")
    write_locs(pred, tmp_path / "pred.csv")
    _, err = _scores(capsys, str(tmp_path / "truth1.csv"), str(tmp_path / "pred.csv"), tmp_path / "m.json")
    assert "read one higher" in err and "--truth-frame-origin 1" in err


def test_frame_origin_below_the_tables_frames_is_refused_naming_file_and_value(tmp_path, capsys):
    truth, pred = _movie()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), "--pred-frame-origin", "1"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "pred.csv") in err and "'frame' holds 0" in err and "--pred-frame-origin 1" in err


def test_thunderstorm_frames_keep_their_format_origin(tmp_path, capsys):
    truth, pred = _movie()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.thunderstorm.csv")  # 1-based by its format, read as frame - 1
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred.thunderstorm.csv"),
                       tmp_path / "m.json")
    assert "warning" not in err and got["tp"] == evaluate(truth, pred).tp


def test_aligned_tables_say_nothing_of_frames():
    truth, pred = _movie()
    assert frame_shift(truth, pred) is None
    cover = frame_coverage(truth, pred)
    assert cover.truth_outside == 0 and cover.pred_outside == 0


# --- frames the fit never saw --------------------------------------------------------------------------------------

def test_truth_frames_the_fit_never_saw_are_said_and_frames_scores_them_alone(tmp_path, capsys):
    """A fit of the movie's first half scored against the whole truth: the second half's emitters all counted as
    missed (JI about half the fit's) without a word."""
    truth, pred = _movie()
    half = pred[pred["frame"] < 15]
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(half, tmp_path / "half.csv")
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "half.csv"), tmp_path / "m.json")
    t15 = truth[truth["frame"] < 15]
    inside = evaluate(t15, half)
    lo, hi = int(half["frame"].min()), int(half["frame"].max())
    assert got["fn"] >= int(np.count_nonzero(truth["frame"] > hi))
    outside = int(np.count_nonzero((truth["frame"] > hi) | (truth["frame"] < lo)))
    assert f"has {outside} of {len(truth)} rows in frames beyond the predictions' {lo}..{hi}" in err, err
    t_in = truth[(truth["frame"] >= lo) & (truth["frame"] <= hi)]
    assert f"JI {evaluate(t_in, half).jaccard:.2f} %" in err and f"--frames {lo} {hi}" in err
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "half.csv"), "--frames", "0", "14",
                       tmp_path / "m.json")
    assert "warning" not in err and f"{len(t15)} of {len(truth)} truth rows" in err
    assert (got["tp"], got["fn"], got["frames"]) == (inside.tp, inside.fn, [0, 14])
    assert got["jaccard"] == pytest.approx(inside.jaccard)


def test_predictions_beyond_the_truths_frames_are_said(tmp_path, capsys):
    truth, pred = _movie()
    write_locs(truth[truth["frame"] < 15], tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.csv")
    _, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), tmp_path / "m.json")
    n = int(np.count_nonzero(pred["frame"] > int(truth[truth["frame"] < 15]["frame"].max())))
    assert f"has {n} of {len(pred)} rows in frames beyond the truth's" in err and "false positives" in err


def test_frames_first_above_last_is_refused(tmp_path, capsys):
    truth, pred = _movie()
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(pred, tmp_path / "pred.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), "--frames", "5", "2"]) == 2
    assert "--frames 5 2" in capsys.readouterr().err


def test_doctests():
    import doctest

    import plexloc.evaluate.alignment as alignment_module
    import plexloc.evaluate.challenge as challenge_module
    import plexloc.evaluate.frames as frames_module

    for module in (alignment_module, challenge_module, frames_module):
        assert doctest.testmod(module).failed == 0


def test_z_unknown_in_some_truth_rows_names_the_line_and_the_fix(tmp_path, capsys):
    """'first at row 2' counted from 0 after the header, where the file's line is 4; and '(dim=2 ignores z)' did not
    say how many rows lack z nor how to score the table."""
    truth = tmp_path / "truth.csv"
    truth.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,100,10,1000\n0,900,100,-20,1000\n1,100,100,,1000\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("frame,x_nm,y_nm,z_nm,photons\n0,110,100,10,1000\n")
    assert main(["evaluate", str(truth), str(pred), "--dim", "3"]) == 2
    err = capsys.readouterr().err
    assert str(truth) in err and "'z_nm'" in err and "row 2" in err and "line 4 of the file" in err
    assert "z is unknown in 1 of 3 rows" in err and "--dim 2" in err


def test_predictions_matching_by_chance_do_not_read_as_moved():
    """Predictions unrelated to the truth match a few rows by chance in any frame: a move's count differs by noise only
    (10 more pairs, 5 % more, read as moved in 2 of these 20 draws; the counts' 3 sd is asked too)."""
    rng = np.random.default_rng(5)
    false_alarms = 0
    for _ in range(20):
        n, m, frames = 300, 250, 60
        truth = LocTable({"frame": rng.integers(0, frames, n), "x_nm": rng.uniform(0, 5000, n),
                          "y_nm": rng.uniform(0, 5000, n), "z_nm": np.zeros(n), "photons": np.ones(n)})
        pred = LocTable({"frame": rng.integers(0, frames, m), "x_nm": rng.uniform(0, 5000, m),
                         "y_nm": rng.uniform(0, 5000, m), "z_nm": np.zeros(m), "photons": np.ones(m)})
        false_alarms += frame_shift(truth, pred, dim=2) is not None
    assert false_alarms == 0


# --- positions in other coordinates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    (lambda p: p.with_columns(x_nm=p["x_nm"] + 1600.0, y_nm=p["y_nm"] + 800.0),
     [r"offset from the truth's by x \+(159[5-9]|160[0-5]) nm, y \+(79[5-9]|80[0-5]) nm",
      r"subtract (159[5-9]|160[0-5]) nm from the predictions' x_nm and (79[5-9]|80[0-5]) nm from their y_nm"]),
    (lambda p: p.with_columns(x_nm=p["y_nm"], y_nm=p["x_nm"]), ["x and y look exchanged", "exchange"]),
    (lambda p: p.with_columns(z_nm=-p["z_nm"]), ["z looks of the opposite sign", "negate the predictions' z_nm"]),
])
def test_predictions_in_other_coordinates_are_said_with_the_numbers(tmp_path, capsys, change, words):
    """A table measured from a region of interest's corner, with x and y exchanged or with z of the other sign matched
    almost nothing (JI a few %, for a fit worth 70 %) without a word."""
    truth, pred = _movie()
    right = evaluate(truth, pred)
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(change(pred), tmp_path / "pred.csv")
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), tmp_path / "m.json")
    assert got["jaccard"] < 0.75 * right.jaccard
    assert f"{right.tp} pairs match instead of {got['tp']}" in err, err
    assert f"JI {right.jaccard:.2f} % instead of {got['jaccard']:.2f} %" in err
    assert all(re.search(w, err) for w in words), err


def test_a_small_offset_is_a_bias_not_a_warning(tmp_path, capsys):
    truth, pred = _movie()
    moved = pred.with_columns(x_nm=pred["x_nm"] + 50.0)  # half a pixel: in bias_x
    assert coordinate_mismatch(truth, moved) is None
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(moved, tmp_path / "pred.csv")
    got, err = _scores(capsys, str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), tmp_path / "m.json")
    assert "warning" not in err and got["bias_x"] == pytest.approx(50.0, abs=3.0)
