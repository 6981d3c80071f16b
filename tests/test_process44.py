"""plexloc process, session 44: after Ctrl-C (or a full disk) every movie given has a row in summary.csv, those
never started too (status ``interrupted`` / ``not_started``: what to run again); summary.json records the movies'
absolute paths (``movies_resolved``) beside the paths as given, so that the same movie run again from another working
folder replaces its own folder (it went to NAME_2, called another movie) and another movie of the same relative path
does not (it replaced the first one's result); a folder of movie folders is refused naming its subfolders.

The fit is a table written in its place (``workflow._fit`` monkeypatched, as test_process40's) where the fit does not
matter, so that these run in seconds; the steps after it are the real ones."""

from __future__ import annotations

import errno
import json
import warnings

import numpy as np
import pytest

import plexloc.workflow as workflow
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.tiff import write_movie
from test_process40 import EXAMPLES, FRAME_PX, _fake_fit, _hidden, _movie, _options, _rows


def _interrupt_at(monkeypatch, call: int, error: BaseException = KeyboardInterrupt()) -> None:
    """``error`` raised by the ``call``-th image step (the acquisition under way then)."""
    real = workflow._render
    calls = []

    def render(*a, **k):
        calls.append(1)
        if len(calls) == call:
            raise error
        return real(*a, **k)

    monkeypatch.setattr(workflow, "_render", render)


# 1. a row for every movie given, after an interrupt ------------------------------------------------------------------

def test_every_movie_given_has_a_row_after_an_interrupt(tmp_path, monkeypatch):
    """Ctrl-C during b of a, b, c: summary.csv had the row of a only (c never started and b's partial folder
    removed), so that a facility read from it that nothing was left to run. Now b (under way) and c (not started)
    have rows saying so, with their movies; a movie whose earlier folder is kept has that folder's row, which says it
    was not processed again; the log names them; the file is written atomically (no temporary file left)."""
    out = tmp_path / "out"
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b", "c", "d")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    workflow.process_movies(movies[3:], out, _options(), progress=False)  # d: an earlier result
    _interrupt_at(monkeypatch, 2)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        workflow.process_movies(movies, out, _options(), progress=False, log=lines.append)
    rows = _rows(out)
    assert list(rows) == ["a", "b", "c", "d"]
    assert [rows[n]["status"] for n in rows] == ["ok", "interrupted", "not_started", "ok"]
    assert [rows[n]["movies"] for n in rows] == [str(m) for m in movies]
    assert rows["b"]["error"] == ("under way when the run was interrupted (Ctrl-C or SIGTERM): no result; process it "
                                  "again")
    assert rows["c"]["error"] == ("not started when the run was interrupted (Ctrl-C or SIGTERM): no result; process "
                                  "it again")
    assert rows["b"]["rows"] == "" and rows["c"]["seconds"] == ""
    assert rows["d"]["rows"] == "300" and rows["d"]["error"] == (
        "not processed again: not started when the run was interrupted (Ctrl-C or SIGTERM); this row is the earlier "
        "result in d")
    assert json.loads((out / "d" / "summary.json").read_text())["error"] is None  # the folder itself untouched
    assert sorted(p.name for p in out.iterdir()) == ["a", "d", "summary.csv"] and _hidden(out) == []
    assert any(line.startswith("interrupted after 1 of 4 acquisition(s) processed") and line.endswith(
        "the acquisition(s) not processed, to run again: b, c, d") for line in lines), lines
    assert any("summary.csv has 4 row(s): the acquisition folders in" in line for line in lines), lines  # 2 folders
    # a complete run afterwards: the rows of this run, no leftover statuses
    _interrupt_at(monkeypatch, 0)
    workflow.process_movies(movies[1:3], out, _options(), progress=False)
    rows = _rows(out)
    assert list(rows) == ["b", "c", "a", "d"] and {r["status"] for r in rows.values()} == {"ok"}
    assert rows["d"]["error"] == ""


def test_a_full_disk_gives_the_movies_left_rows_too(tmp_path, monkeypatch):
    """A full disk ends the run as an interrupt does: the movie under way and those after it have rows saying so;
    the job service's file names (--input-names file-name) name them."""
    out = tmp_path / "out"
    movies = [_movie(tmp_path / "in" / f"{name}.tif") for name in ("a", "b")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    _interrupt_at(monkeypatch, 1, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError):
        workflow.process_movies(movies, out, _options(input_names="file-name"), progress=False)
    rows = _rows(out)
    assert list(rows) == ["a", "b"] and [r["status"] for r in rows.values()] == ["interrupted", "not_started"]
    assert [r["movies"] for r in rows.values()] == ["a.tif", "b.tif"]
    assert rows["b"]["error"] == "not started when the run was stopped by a full disk: no result; process it again"
    assert str(tmp_path) not in (out / "summary.csv").read_text() and _hidden(out) == []


def test_the_command_says_what_an_interrupt_left(tmp_path, monkeypatch, capsys):
    """plexloc process a b, Ctrl-C during a: exit 130, summary.csv with both rows, the log naming them."""
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b")]
    _interrupt_at(monkeypatch, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example configuration's camera defaults
        rc = main(["process", *map(str, movies), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"),
                   "--out", str(tmp_path / "out"), "--no-drift"])
    err = capsys.readouterr().err
    assert rc == 130 and "not processed, to run again: a, b" in err
    assert [r["status"] for r in _rows(tmp_path / "out").values()] == ["interrupted", "not_started"]


# 2. the same movie from another working folder ------------------------------------------------------------------------

def test_the_same_movie_from_another_working_folder_replaces_its_own_folder(tmp_path, monkeypatch):
    """plexloc process a.tif --out OUT from data/, then data/a.tif from data's parent: the rerun went to a_2 with a
    warning that called a.tif another movie (summary.json kept the path as given only). Now summary.json records the
    movie's absolute path too (movies_resolved; movies stays as given), and the rerun replaces a."""
    out = tmp_path / "out"
    movie = _movie(tmp_path / "data" / "a.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    monkeypatch.chdir(tmp_path / "data")
    workflow.process_movies(["a.tif"], out, _options(), progress=False)
    s = json.loads((out / "a" / "summary.json").read_text())
    assert s["movies"] == ["a.tif"] and s["movies_resolved"] == [str(movie.resolve())]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", workflow.ProcessWarning)  # no warning of another movie
        [r] = workflow.process_movies(["data/a.tif"], out, _options(), progress=False)
    assert r.acquisition.name == "a" and r.ok
    assert sorted(p.name for p in out.iterdir()) == ["a", "summary.csv"] and _rows(out)["a"]["rows"] == "500"
    assert json.loads((out / "a" / "summary.json").read_text())["movies"] == ["data/a.tif"]


def test_another_movie_of_the_same_relative_path_does_not_replace_the_result(tmp_path, monkeypatch):
    """day1/a.tif run as a.tif from day1/, then day2/a.tif run as a.tif from day2/ into the same OUT: the paths as
    given were equal, so the second replaced the first's result. Now the absolute paths differ: a_2, with a
    warning."""
    out = tmp_path / "out"
    for day in ("day1", "day2"):
        _movie(tmp_path / day / "a.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    monkeypatch.chdir(tmp_path / "day1")
    workflow.process_movies(["a.tif"], out, _options(), progress=False)
    before = (out / "a" / "summary.json").read_bytes()
    monkeypatch.chdir(tmp_path / "day2")
    with pytest.warns(workflow.ProcessWarning, match=r"holds the result of another movie \(a\.tif\)"):
        [r] = workflow.process_movies(["a.tif"], out, _options(), progress=False)
    assert r.acquisition.name == "a_2" and (out / "a" / "summary.json").read_bytes() == before
    assert json.loads((out / "a_2" / "summary.json").read_text())["movies_resolved"] == [
        str((tmp_path / "day2" / "a.tif").resolve())]


def test_a_summary_json_without_absolute_paths_still_works(tmp_path, monkeypatch):
    """A folder of an earlier plexloc (its summary.json has no movies_resolved): from the same working folder the
    rerun replaces it, as before; from another one it cannot be told from another movie of that relative path, so
    it is kept and the rerun goes to a_2, the warning saying why; the new folder records the absolute path."""
    out = tmp_path / "out"
    _movie(tmp_path / "data" / "a.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    monkeypatch.chdir(tmp_path / "data")
    workflow.process_movies(["a.tif"], out, _options(), progress=False)

    def make_old():
        s = json.loads((out / "a" / "summary.json").read_text())
        del s["movies_resolved"]
        (out / "a" / "summary.json").write_text(json.dumps(s))

    make_old()
    with warnings.catch_warnings():
        warnings.simplefilter("error", workflow.ProcessWarning)
        [r] = workflow.process_movies(["a.tif"], out, _options(), progress=False)
    assert r.acquisition.name == "a" and "movies_resolved" in json.loads((out / "a" / "summary.json").read_text())
    make_old()
    monkeypatch.chdir(tmp_path)
    with pytest.warns(workflow.ProcessWarning) as caught:
        [r] = workflow.process_movies(["data/a.tif"], out, _options(), progress=False)
    said = " ".join(str(w.message) for w in caught)
    assert r.acquisition.name == "a_2" and "holds the result of another movie (a.tif), or of this one given from " \
        "another working folder: its summary.json, written before plexloc process recorded the movies' absolute " \
        "paths (movies_resolved), names them only as given" in said, said


def test_a_failed_attempt_from_another_working_folder_is_this_movies(tmp_path, monkeypatch):
    """The failed attempt beside a result (a.failed) of the same movie given from another working folder was not
    recognised as this movie's: a later success left it behind (and another failure went to a.failed_2)."""
    out = tmp_path / "out"
    _movie(tmp_path / "data" / "a.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    monkeypatch.chdir(tmp_path / "data")
    workflow.process_movies(["a.tif"], out, _options(), progress=False)

    def broken(acq, folder, options, progress):
        raise InputError("not a readable TIFF file", source=acq.movies[0])

    monkeypatch.setattr(workflow, "_fit", broken)
    monkeypatch.chdir(tmp_path)
    [r] = workflow.process_movies(["data/a.tif"], out, _options(), progress=False)
    assert not r.ok and r.folder == out / "a.failed"
    monkeypatch.chdir(tmp_path / "data")
    [r] = workflow.process_movies(["./a.tif"], out, _options(), progress=False)
    assert r.folder == out / "a.failed"  # its own failed attempt replaced, not a.failed_2 beside it
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500))
    monkeypatch.chdir(tmp_path)
    [r] = workflow.process_movies([tmp_path / "data" / "a.tif"], out, _options(), progress=False)
    assert r.ok and sorted(p.name for p in out.iterdir()) == ["a", "summary.csv"]


# 4. a folder of movie folders ---------------------------------------------------------------------------------------

def test_a_folder_of_movie_folders_names_them(tmp_path, capsys):
    """plexloc process data (data/cell1/img_0.tif, ...: a folder of movie folders) failed with "folder holds no
    TIFF files". Now the error names the subfolders that hold TIFFs, and says to give each as a movie."""
    data = tmp_path / "data"
    for cell in ("cell1", "cell2"):
        (data / cell).mkdir(parents=True)
        for k in range(2):
            write_movie(data / cell / f"img_{k}.tif", np.full((1, FRAME_PX, FRAME_PX), 100, np.uint16))
    (data / "notes").mkdir()  # no TIFF: not named
    (data / "notes" / "n.txt").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example configuration's camera defaults
        rc = main(["process", str(data), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"),
                   "--out", str(tmp_path / "out"), "--no-drift"])
    assert rc == 1
    row = _rows(tmp_path / "out")["data"]
    assert row["status"] == "failed" and row["error"] == (
        f"fit: {data}: folder holds no TIFF files (looked for .tif, .tiff, .btf, .tf8), but 2 of its subfolders do "
        f"(cell1, cell2): a folder of TIFFs is one movie, so give each subfolder as a movie ({data / 'cell1'}, ...)")
    # a folder of neither: the reader's own words, as before
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder holds no TIFF files"):
        from plexloc.io.tiff import open_movie

        open_movie(tmp_path / "empty")
    # the reader says it, so plexloc fit does too; a movie folder of its own TIFFs opens as before
    with pytest.raises(InputError, match=r"but 2 of its subfolders do \(cell1, cell2\)"):
        open_movie(data)
    with open_movie(data / "cell1") as movie:
        assert movie.n_frames == 2


# 3. plexloc fit's and process's notes: one wording ----------------------------------------------------------------

class _CameraCheck:
    notes = ["the camera check could not measure the pixel noise (too crowded), so the camera's gain and e-/ADU were "
             "not checked against the movie"]


class _Shape:
    note, enough = "all spots lie at one z: the PSF's z dependence was not checked", True


def _mle_stats(stats: dict) -> int:
    """What an MLE fit reports of a movie with every kind of note, into ``stats``; its rows."""
    stats.update(frames=1, fits=120, dropped={"outside_window": 3, "not_finite": 0, "goodness_of_fit": 2},
                 flagged={"not_converged": 4, "xy": 1, "z": 0, "photons": 3, "width": 0, "not_significant": 1},
                 saturated_rows=1, clip_levels=[(65535.0, "found")], camera=_CameraCheck(), psf_shape=[_Shape()])
    return 115


def test_fit_and_process_say_the_same_notes(tmp_path, monkeypatch, capsys):
    """plexloc fit and plexloc process had a copy each of the notes' wording; process's said less: a fit's counts
    with filters given without "(before the filters)" (they are counted before), the clipped rows without their
    level or the table to filter, and nothing of the camera check's and the PSF shape's notes (the camera's gain and
    e-/ADU unchecked). Now both take plexloc.mle.pipeline's lines: process's notes are the lines fit prints."""
    import plexloc.mle

    def fake(movie, config, out, *, stats, **kw):
        return _mle_stats(stats)

    monkeypatch.setattr(plexloc.mle, "fit_movie_to_file", fake)
    movie = _movie(tmp_path / "cell1.tif")
    out = tmp_path / "out"
    folder = out / ".cell1.partial-x"
    folder.mkdir(parents=True)
    options = _options(filters={"min_photons": 100.0, "max_sigma_nm": None})
    fit = workflow._fit(workflow.Acquisition("cell1", (movie,)), folder, options, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example configuration's camera defaults
        rc = main(["fit", str(movie), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"), "--out",
                   str(tmp_path / "locs.csv"), "--min-photons", "100"])
    assert rc == 0
    printed = [line.removeprefix("note: ") for line in capsys.readouterr().err.splitlines()]
    table = str(out / "cell1" / "locs.csv")  # process: the table where it will be, not the hidden folder
    assert fit["notes"] == [
        _Shape.note, _CameraCheck.notes[0],
        f"1 row (before the filters) touches pixels clipped at 65535 ADU (found in the movie) (column saturated_px > "
        f"0): fitted from clipped light, their photons are low (the more so the more pixels clipped) and their "
        f"uncertainties too small; plexloc filter {table} --out OUT --no-saturated drops them",
        "5 of 120 fits left out: 3 whose position left the fitting window (a neighbour pulled the fit, or no spot); 2 "
        "failed the goodness-of-fit test (min_llr_pvalue)",
        "4 rows (before the filters) did not converge (converged 0, kept), on a bound of the fit (column at_bound): 1 "
        "position at the window's limit; 3 photons at their bound; plexloc filter --converged removes them",
        "1 row (before the filters) has p_spot above 0.01 (kept): background alone gives a spot_llr this large in more "
        "than 1 % of windows; plexloc filter --max-p-spot 0.01 removes them"]
    for note in fit["notes"]:
        assert note.replace(table, str(tmp_path / "locs.csv")) in printed, (note, printed)
    # without filters: no "(before the filters)" in either
    capsys.readouterr()
    fit = workflow._fit(workflow.Acquisition("cell1", (movie,)), folder, _options(), progress=False)
    assert not any("before the filters" in n for n in fit["notes"]) and len(fit["notes"]) == 6
