"""plexloc process, session 43: what a facility's folders do to it. A folder of the output that is not the movie's
own earlier result is never replaced (the movie's own folder of TIFFs given with --out its parent: its frames were
deleted; another movie of the name, another day's cell1.tif: its result was replaced); a failed rerun keeps the
earlier result (it was replaced by the failure's folder); names that differ in case only get two folders (one
folder on a case-insensitive disk); the same movie given twice is fitted once.

The fit is a table written in its place (``workflow._fit`` monkeypatched, as test_process40's), so that these run in
seconds; the steps after it are the real ones."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import plexloc.workflow as workflow
from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.tiff import write_movie
from test_process40 import EXAMPLES, FRAME_PX, _fake_fit, _hidden, _movie, _options, _rows


def _frames_folder(folder: Path, n: int = 3) -> list[Path]:
    """A movie as a folder of one-frame TIFFs (as a microscope's software writes it)."""
    folder.mkdir(parents=True)
    files = [folder / f"img_{k}.tif" for k in range(n)]
    for f in files:
        write_movie(f, np.full((1, FRAME_PX, FRAME_PX), 100, np.uint16))
    return files


def test_the_movies_own_folder_and_a_users_folder_are_never_replaced(tmp_path, monkeypatch):
    """plexloc process data/cell1 --out data (a folder of TIFFs, its results beside it): the acquisition's folder
    name was the movie's own folder, which was replaced by the results, the frames deleted. Now the movie and a
    folder of the user's of a movie's name (no summary.json of plexloc process) stay as they were; the results go
    to the next free name, said in a warning and in summary.json."""
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    data = tmp_path / "data"
    frames = _frames_folder(data / "cell1")
    notes = data / "cell2"  # the user's notes in a folder of a movie's name
    notes.mkdir()
    (notes / "notes.txt").write_text("do not lose me\n")
    cell2 = _movie(tmp_path / "elsewhere" / "cell2.tif")
    with pytest.warns(UserWarning) as caught:
        results = workflow.process_movies([data / "cell1", cell2], data, _options(), progress=False)
    said = [str(w.message) for w in caught]
    assert [r.acquisition.name for r in results] == ["cell1_2", "cell2_2"] and all(r.ok for r in results)
    assert all(f.is_file() for f in frames) and sorted(p.name for p in (data / "cell1").iterdir()) == [
        "img_0.tif", "img_1.tif", "img_2.tif"]
    assert (notes / "notes.txt").read_text() == "do not lose me\n" and len(list(notes.iterdir())) == 1
    assert any(f"{data / 'cell1'} is the movie itself: kept as it is; this movie's results go to "
               f"{data / 'cell1_2'}" in s for s in said), said
    assert any(f"{notes} is not a result folder of plexloc process" in s and str(data / "cell2_2") in s
               for s in said), said
    s = json.loads((data / "cell1_2" / "summary.json").read_text())
    assert any("is the movie itself" in w for w in s["warnings"])
    assert list(_rows(data)) == ["cell1_2", "cell2_2"] and _hidden(data) == []


def _rerunnable(tmp_path: Path):
    """OUT, the movie a.tif, and a function that runs ``plexloc process a.tif --method mle ... --out OUT``."""
    out = tmp_path / "out"
    movie = _movie(tmp_path / "a.tif")
    argv = ["process", str(movie), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"), "--out",
            str(out), "--no-drift"]

    def run() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the example configuration's camera defaults
            return main(argv)

    return out, movie, run


def test_a_failed_rerun_keeps_the_earlier_result(tmp_path, monkeypatch, capsys):
    """A rerun whose movie fails (the file damaged since, a wrong option) replaced the earlier complete result with
    the failure's folder. Now the earlier result stays in OUT/NAME, the failure goes beside it to OUT/NAME.failed
    (FAILED.txt, summary.json, its row in summary.csv saying so), exit code 1; a later successful run replaces NAME
    and removes the out-of-date NAME.failed."""
    out, movie, run = _rerunnable(tmp_path)
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    assert run() == 0
    before = {p.name: p.read_bytes() for p in (out / "a").iterdir()}

    def broken(acq, folder, options, progress):
        raise InputError("corrupt TIFF file: 1 pages can be reached of the 200 frames its metadata declares",
                         source=movie)

    monkeypatch.setattr(workflow, "_fit", broken)
    capsys.readouterr()
    assert run() == 1
    stdout = capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "a").iterdir()} == before  # the earlier result, untouched
    failed = out / "a.failed"
    assert sorted(p.name for p in failed.iterdir()) == ["FAILED.txt", "summary.json"]
    error = json.loads((failed / "summary.json").read_text())["error"]
    assert error.startswith("fit: ") and "1 pages can be reached" in error
    assert error.endswith("(the earlier result in a is kept; this attempt is a.failed)")
    assert (failed / "FAILED.txt").read_text() == error + "\n"
    rows = _rows(out)
    assert list(rows) == ["a.failed", "a"] and rows["a"]["status"] == "ok" and rows["a"]["rows"] == "300"
    assert rows["a.failed"]["status"] == "failed" and rows["a.failed"]["error"] == error
    assert "failed: a.failed" in stdout

    # fails again: the one failed attempt replaced, the result still kept
    assert run() == 1
    assert sorted(p.name for p in out.iterdir()) == ["a", "a.failed", "summary.csv"]
    # a successful run replaces the result and removes the failed attempt, which is out of date
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500, seed=1))
    assert run() == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "summary.csv"]
    assert list(_rows(out)) == ["a"] and _rows(out)["a"]["rows"] == "500" and _hidden(out) == []


def test_a_failure_with_no_earlier_result_takes_the_name(tmp_path, monkeypatch):
    """Without an earlier result (or over an earlier failed attempt) the failure's folder is OUT/NAME, as before."""
    def broken(acq, folder, options, progress):
        raise InputError("not a readable TIFF file", source=acq.movies[0])

    monkeypatch.setattr(workflow, "_fit", broken)
    out = tmp_path / "out"
    movie = _movie(tmp_path / "a.tif")
    for _ in range(2):
        [r] = workflow.process_movies([movie], out, _options(), progress=False)
        assert not r.ok and r.folder == out / "a" and (out / "a" / "FAILED.txt").is_file()
        assert sorted(p.name for p in out.iterdir()) == ["a", "summary.csv"]


def test_another_movie_of_the_name_does_not_replace_the_earlier_result(tmp_path, monkeypatch):
    """Two days' cell1.tif into one results folder, one run each: the second replaced the first's result (the log
    said "replaces the earlier"). Now it goes to cell1_2, said; a rerun of either replaces its own folder."""
    out = tmp_path / "results"
    day1, day2 = _movie(tmp_path / "day1" / "cell1.tif"), _movie(tmp_path / "day2" / "cell1.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    workflow.process_movies([day1], out, _options(), progress=False)
    first = (out / "cell1" / "summary.json").read_bytes()
    monkeypatch.setattr(workflow, "_fit", _fake_fit(400, seed=1))
    with pytest.warns(workflow.ProcessWarning, match=r"holds the result of another movie \(.*day1/cell1.tif\): kept "
                                                     r"as it is; this movie's results go to .*cell1_2"):
        [r] = workflow.process_movies([day2], out, _options(), progress=False)
    assert r.acquisition.name == "cell1_2" and (out / "cell1" / "summary.json").read_bytes() == first
    rows = _rows(out)
    assert rows["cell1"]["movies"] == str(day1) and rows["cell1"]["rows"] == "300"
    assert rows["cell1_2"]["movies"] == str(day2) and rows["cell1_2"]["rows"] == "400"
    # reruns: each replaces its own folder, without a word of another movie; both at once keep their names
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500, seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = workflow.process_movies([day2, day1], out, _options(), progress=False)
    assert [r.acquisition.name for r in results] == ["cell1_2", "cell1"]
    assert sorted(p.name for p in out.iterdir()) == ["cell1", "cell1_2", "summary.csv"]
    assert {n: r["rows"] for n, r in _rows(out).items()} == {"cell1_2": "500", "cell1": "500"}


def test_a_rerun_from_the_job_services_file_names_replaces_its_folder(tmp_path, monkeypatch):
    """input_names="file-name" (the service) records file names only: the same file name is the same movie."""
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    out = tmp_path / "out"
    movie = _movie(tmp_path / "scratch1" / "cell1.tif")
    workflow.process_movies([movie], out, _options(input_names="file-name"), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [r] = workflow.process_movies([movie], out, _options(input_names="file-name"), progress=False)
    assert r.acquisition.name == "cell1" and sorted(p.name for p in out.iterdir()) == ["cell1", "summary.csv"]


def test_names_that_differ_in_case_only_get_two_folders(tmp_path, monkeypatch):
    """Cell.tif and cell.tif were folders Cell and cell: one folder on a case-insensitive disk (macOS, Windows, a
    share of either), where the second replaced the first. Now cell_2; and an earlier run's Cell is not replaced by
    another movie's cell either."""
    opts = _options()
    movies = [_movie(tmp_path / "Cell.tif"), _movie(tmp_path / "cell.tif"), _movie(tmp_path / "a.tif"),
              _movie(tmp_path / "a.tiff")]
    assert [a.name for a in workflow.group_movies(movies, opts)] == ["Cell", "cell_2", "a", "a_2"]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    out = tmp_path / "out"
    workflow.process_movies(movies[:1], out, opts, progress=False)
    with pytest.warns(workflow.ProcessWarning, match="has the name in another case"):
        [r] = workflow.process_movies(movies[1:2], out, opts, progress=False)
    assert r.acquisition.name == "cell_2" and sorted(p.name for p in out.iterdir()) == ["Cell", "cell_2",
                                                                                        "summary.csv"]


def test_the_same_movie_given_twice_is_processed_once(tmp_path, monkeypatch):
    """plexloc process data/*.tif data/a.tif fitted a.tif twice, into a and a_2. Now once, with a warning."""
    monkeypatch.chdir(tmp_path)
    _movie(tmp_path / "data" / "a.tif")
    _movie(tmp_path / "data" / "b.tif")
    calls = []
    fit = _fake_fit(300)

    def counted(acq, folder, options, progress):
        calls.append(acq.name)
        return fit(acq, folder, options, progress)

    monkeypatch.setattr(workflow, "_fit", counted)
    again = tmp_path / "data" / "a.tif"  # the same file by another path
    said = f"{again}: given again (as data/a.tif): processed once, into a"
    with pytest.warns(workflow.ProcessWarning, match=re.escape(said)):
        results = workflow.process_movies(["data/a.tif", "data/b.tif", str(again)], tmp_path / "out",
                                          _options(), progress=False)
    assert calls == ["a", "b"] and [r.acquisition.name for r in results] == ["a", "b"]
    assert list(_rows(tmp_path / "out")) == ["a", "b"]


def test_a_movie_without_spots_says_so_at_every_step(tmp_path, monkeypatch):
    """A fit of no localizations: the drift, merge, report, NeNA and FRC said why they have no value, but image.png
    was a black image with nothing said of it. Now summary.json's image says it is empty, and a warning."""
    monkeypatch.setattr(workflow, "_fit", _fake_fit(0))
    movie = _movie(tmp_path / "dark.tif")
    with pytest.warns(UserWarning) as caught:
        [r] = workflow.process_movies([movie], tmp_path / "out", _options(drift=True), progress=False)
    said = [str(w.message) for w in caught]
    assert r.ok and r.summary["fit"]["rows"] == 0 and any("the fit found no localizations" in s for s in said)
    assert r.summary["drift"]["state"] == "not estimated" and "needs localizations" in r.summary["drift"]["reason"]
    assert r.summary["merge"]["rows"] == 0 and r.summary["nena"]["sigma_nm"] is None
    assert r.summary["frc"]["resolution_nm"] is None and "the table has 0" in r.summary["frc"]["no_value"]
    assert r.summary["image"]["note"] == "empty: the table has no localizations"
    assert "image.png is empty: the table has no localizations" in said
    assert any("image.png is empty" in w for w in r.summary["warnings"])
    assert _rows(tmp_path / "out")["dark"]["drift"] == "not estimated"


def test_another_movies_failed_folder_of_the_name_is_left_alone(tmp_path, monkeypatch):
    """A folder OUT/a.failed that is another movie's failed result (a movie named a.failed.tif) was removed as 'the
    out-of-date failed attempt' when a.tif's rerun succeeded; a.tif's own failed attempt then goes to a.failed_2
    and is the one removed."""
    out, movie, run = _rerunnable(tmp_path)
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    assert run() == 0
    other = out / "a.failed"  # another movie's failed result
    other.mkdir()
    (other / "FAILED.txt").write_text("fit: broken\n")
    (other / "summary.json").write_text(json.dumps({"status": "failed", "movies": ["other/a.failed.tif"]}))

    def broken(acq, folder, options, progress):
        raise InputError("corrupt TIFF file", source=movie)

    monkeypatch.setattr(workflow, "_fit", broken)
    assert run() == 1
    assert (other / "summary.json").read_text().find("a.failed.tif") > 0  # not replaced
    assert (out / "a.failed_2" / "FAILED.txt").is_file()
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500, seed=1))
    assert run() == 0
    assert other.is_dir() and not (out / "a.failed_2").exists()
