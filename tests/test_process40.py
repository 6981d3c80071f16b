"""plexloc process, session 40: the drift options of plexloc drift (--drift-segments, --max-drift); summary.csv that
describes the folders in OUT after an interrupt or a rerun on fewer movies; a full disk named with its file; paths in
summary.csv/summary.json relative to OUT (and the movies' file names in a service job); the warnings of reading the
camera file in summary.json; a 2D image's scale bar length in image_legend.png.

The fit is a table written in its place (``workflow._fit`` monkeypatched, as test_process39's 3D test does), so that
these run in seconds without a network; the steps after it are the real ones."""

from __future__ import annotations

import csv
import errno
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import plexloc.workflow as workflow
from plexloc.cli.main import main
from plexloc.io.tiff import write_movie
from test_process39 import lab  # noqa: F401 (the module's fixture: a tiny network and a drifting movie)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAME_PX = 16  # 100 nm pixels (examples/2d_gaussian.yaml): a 1.6 um field


def _config():
    from plexloc.config import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example's camera defaults, if any
        return load_config(EXAMPLES / "2d_gaussian.yaml")


def _movie(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_movie(path, np.full((5, FRAME_PX, FRAME_PX), 100, np.uint16))
    return path


def _fake_fit(rows: int = 400, seed: int = 0, *, warn: bool = False):
    """``workflow._fit``'s stand-in: ``rows`` localizations over the field of view into ``folder/locs.csv``; ``warn``:
    a warning naming that file, as the drift engines' do."""
    from plexloc.io.tables import write_table
    from plexloc.table import LocTable

    def fit(acq, folder, options, progress):
        rng = np.random.default_rng(seed)
        side = FRAME_PX * 100.0
        write_table(LocTable({"frame": np.sort(rng.integers(0, 100, rows)), "x_nm": rng.uniform(0, side, rows),
                              "y_nm": rng.uniform(0, side, rows), "z_nm": np.zeros(rows),
                              "photons": np.full(rows, 1000.0)}), folder / "locs.csv")
        if warn:
            warnings.warn(f"{folder / 'locs.csv'}: a warning that names the table (a test)", UserWarning, stacklevel=2)
        return {"method": options.method, "rows": rows, "frames": 100, "seconds": 1.0, "frames_per_s": 100.0,
                "notes": []}
    return fit


def _options(**kw):
    return workflow.ProcessOptions(method="mle", config=_config(), **{"drift": False, **kw})


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def _hidden(folder: Path) -> list[Path]:
    return list(folder.rglob(".*"))


# 1. the drift options ------------------------------------------------------------------------------------------------

def test_the_drift_options_of_plexloc_drift_reach_the_estimate_and_the_summary(tmp_path, monkeypatch,
                                                                                 estimate_drift_calls):
    """plexloc process had neither --segments nor --max-drift of plexloc drift: the estimate always took 10 windows
    and 300 nm. Now --drift-segments and --max-drift (plexloc drift's defaults), passed to estimate_drift and
    recorded in summary.json; bad values refused before any fit."""
    from plexloc.cli.main import build_parser
    from plexloc.errors import InputError

    seen = estimate_drift_calls
    monkeypatch.setattr(workflow, "_fit", _fake_fit(2000))
    movie = _movie(tmp_path / "cell1.tif")
    options = _options(drift=True, drift_segments=4, max_drift_nm=150.0)
    with pytest.warns(UserWarning, match="drift estimate is not reliable"):  # 4 windows of a small table
        [r] = workflow.process_movies([movie], tmp_path / "out", options, progress=False)
    assert seen["n_segments"] == 4 and seen["max_drift_nm"] == 150.0
    s = json.loads((tmp_path / "out" / "cell1" / "summary.json").read_text())
    assert s["drift"]["segments"] == 4 and s["drift"]["max_drift_nm"] == 150.0 and r.summary["drift"] == s["drift"]
    defaults = workflow.ProcessOptions()
    assert (defaults.drift_segments, defaults.max_drift_nm) == (10, workflow.MAX_DRIFT_NM)
    for bad in ({"drift_segments": 1}, {"drift_segments": 2.5}, {"max_drift_nm": 0.0}, {"max_drift_nm": float("nan")}):
        with pytest.raises(InputError, match=next(iter(bad))):
            workflow.process_movies([movie], tmp_path / "bad", _options(**bad), progress=False)
    assert not (tmp_path / "bad").exists()
    # the command line: plexloc drift's names and defaults
    parser = build_parser()
    args = parser.parse_args(["process", "a.tif", "--out", "o", "--model", "m.pt"])
    assert (args.drift_segments, args.max_drift) == (10, workflow.MAX_DRIFT_NM)
    d = parser.parse_args(["drift", "l.csv", "--out", "o.csv"])
    assert (d.segments, d.max_drift) == (args.drift_segments, args.max_drift)
    args = parser.parse_args(["process", "a.tif", "--out", "o", "--model", "m.pt", "--drift-segments", "4",
                              "--max-drift", "150"])
    assert (args.drift_segments, args.max_drift) == (4, 150.0)
    for bad in (["--drift-segments", "1"], ["--max-drift", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["process", "a.tif", "--out", "o", "--model", "m.pt", *bad])


def test_the_service_application_offers_the_drift_options():
    from plexloc.service.apps import Registry

    for entry, inputs in (("process", {"movie": ["a.tif"], "model": ["m.pt"]}),
                          ("mle", {"movie": ["a.tif"], "config": ["c.yaml"]})):
        _, _, ep = Registry.load().resolve("plexloc-process", None, entry)
        argv = ep.render(config=ep.validate_config({"drift_segments": 4, "max_drift": 150.0}), inputs=inputs,
                         output_dir="o", work_dir="w", device="cpu")
        assert argv[-4:] == ["--drift-segments", "4", "--max-drift", "150.0"], argv
        for bad in ({"drift_segments": 1}, {"max_drift": 0.0}, {"drift_segments": 2.5}):
            with pytest.raises(Exception, match=next(iter(bad))):
                ep.validate_config(bad)


# 2. summary.csv describes the folders in OUT -------------------------------------------------------------------------

def test_summary_csv_describes_every_folder_after_an_interrupt_and_a_rerun_on_fewer_movies(tmp_path, monkeypatch):
    """After Ctrl-C (or SIGTERM), summary.csv was the earlier run's (its row of an acquisition since replaced gave the
    old numbers) or missing; a rerun on fewer movies wrote a summary.csv without the folders it kept. Now summary.csv
    always lists every acquisition folder in OUT, this run's results winning by name, the others from their
    summary.json; written atomically."""
    import plexloc.post.merge as merge

    out = tmp_path / "out"
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b", "c")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    workflow.process_movies(movies, out, _options(), progress=False)
    assert {n: r["rows"] for n, r in _rows(out).items()} == {"a": "300", "b": "300", "c": "300"}
    before_b = (out / "b" / "summary.json").read_bytes()

    # a rerun of a and b with more rows, interrupted during b's merge: a is new, b and c the earlier ones
    monkeypatch.setattr(workflow, "_fit", _fake_fit(500, seed=1))
    real_merge = merge.merge_localizations
    calls = []

    def interrupted(table, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_merge(table, **kw)

    monkeypatch.setattr(merge, "merge_localizations", interrupted)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        workflow.process_movies(movies[:2], out, _options(), progress=False, log=lines.append)
    rows = _rows(out)
    assert list(rows) == ["a", "b", "c"]
    assert rows["a"]["rows"] == "500" and rows["b"]["rows"] == "300" and rows["c"]["rows"] == "300"
    assert (out / "b" / "summary.json").read_bytes() == before_b and _hidden(out) == []
    assert any(line.startswith("interrupted after 1 of 2 acquisition(s) processed") for line in lines), lines

    # a rerun on fewer movies: the folders kept stay in summary.csv; a folder removed leaves it
    monkeypatch.setattr(merge, "merge_localizations", real_merge)
    monkeypatch.setattr(workflow, "_fit", _fake_fit(700, seed=2))
    import shutil

    shutil.rmtree(out / "c")
    results = workflow.process_movies(movies[1:2], out, _options(), progress=False)
    rows = _rows(out)
    assert [r.acquisition.name for r in results] == ["b"]
    assert list(rows) == ["b", "a"] and rows["b"]["rows"] == "700" and rows["a"]["rows"] == "500"
    assert rows["a"]["movies"] == str(movies[0]) and rows["a"]["status"] == "ok"
    # an unreadable summary.json: its folder still listed, saying so
    (out / "d").mkdir()
    (out / "d" / "summary.json").write_text("{not json")
    workflow.process_movies(movies[1:2], out, _options(), progress=False)
    rows = _rows(out)
    assert rows["d"]["status"] == "unknown" and "d/summary.json cannot be read" in rows["d"]["error"]
    assert _hidden(out) == []


def test_an_interrupt_on_the_command_line_writes_summary_csv(tmp_path, monkeypatch, capsys):
    """The command: Ctrl-C ends with exit code 130 and summary.csv of the folders there (none before: a new one)."""
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b")]
    real = workflow._render
    calls = []

    def render(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(workflow, "_render", render)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example configuration's camera defaults
        rc = main(["process", *map(str, movies), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"),
                   "--out", str(tmp_path / "out"), "--no-drift"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    rows = _rows(tmp_path / "out")  # b, under way, has no folder but a row (session 44; test_process44)
    assert list(rows) == ["a", "b"] and [r["status"] for r in rows.values()] == ["ok", "interrupted"]


# 3. a full disk --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e))
def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, code):
    """'[Errno 28] No space left on device' named no file: now the file, the space left, and no temporary file."""
    from plexloc.io._atomic import DiskFullError, atomic_path

    target = tmp_path / "sub" / "locs.csv"
    target.parent.mkdir()
    target.write_text("old")
    with pytest.raises(DiskFullError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(code, "No space left on device")
    err = info.value
    assert isinstance(err, OSError) and err.errno == code and err.path == target
    assert str(err).startswith(f"cannot write {target}: the disk ") and " free in " in str(err)
    assert ("quota" in str(err)) == (code != errno.ENOSPC)
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["locs.csv"]


def test_a_full_disk_while_a_table_streams_names_the_table(tmp_path, monkeypatch):
    """The fit's table is written as the frames are fitted (TableWriter, in a thread): its full disk named no file."""
    import plexloc.io.tables as tables
    from plexloc.io._atomic import DiskFullError
    from plexloc.table import LocTable

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tables, "_write_csv_lines", full)
    part = LocTable({"frame": [0], "x_nm": [1.0], "y_nm": [2.0], "z_nm": [0.0], "photons": [900.0]})
    path = tmp_path / "locs.csv"
    with pytest.raises(DiskFullError, match=f"cannot write {path}: the disk is full"):
        with tables.TableWriter(path, background=True) as w:
            w.append(part)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_ends_the_run_naming_the_file_in_its_final_folder(tmp_path, monkeypatch, capsys):
    """A full disk during a step: the error names the file in OUT/NAME (not the hidden folder, which is removed,
    an earlier OUT/NAME kept), the run stops (the next movies would fail too), summary.csv is written, and the command
    says it in one line (exit code 2). A bare ENOSPC (no file) names the acquisition's folder."""
    import plexloc.io.tables as tables
    import plexloc.post.merge as merge
    from plexloc.io._atomic import DiskFullError, atomic_path

    out = tmp_path / "out"
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    workflow.process_movies(movies[:1], out, _options(), progress=False)
    before = {p.name: p.read_bytes() for p in (out / "a").iterdir()}
    real_write = tables.write_table

    def full(table, path, **kw):
        if Path(path).name != "merged.csv":
            return real_write(table, path, **kw)
        with atomic_path(path) as tmp:
            tmp.write_text("frame,x_nm")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tables, "write_table", full)
    with pytest.raises(DiskFullError) as info:
        workflow.process_movies(movies, out, _options(), progress=False)
    assert info.value.path == out / "a" / "merged.csv" and ".partial-" not in str(info.value)
    assert {p.name: p.read_bytes() for p in (out / "a").iterdir()} == before  # the earlier folder kept
    rows = _rows(out)  # a kept, b not started: each a row (session 44; test_process44)
    assert not (out / "b").exists() and _hidden(out) == [] and list(rows) == ["a", "b"]
    assert [r["status"] for r in rows.values()] == ["ok", "not_started"]
    # on the command line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["process", str(movies[1]), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"),
                   "--out", str(out), "--no-drift"])
    err = capsys.readouterr().err
    assert rc == 2 and f"plexloc process: error: cannot write {out / 'b' / 'merged.csv'}: the disk is full" in err
    # a writer that names no file
    monkeypatch.setattr(tables, "write_table", real_write)

    def bare(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(merge, "merge_localizations", bare)
    with pytest.raises(DiskFullError, match=f"cannot write {out / 'b'}: the disk is full"):
        workflow.process_movies(movies[1:], out, _options(), progress=False)
    assert _hidden(out) == [] and not (out / "b").exists()


# 4. paths relative to OUT; a service job's movies by their names ----------------------------------------------------

def test_a_service_job_names_no_scratch_path(tmp_path, monkeypatch):
    """A job's summary.csv and summary.json named the worker's scratch folder (/tmp/plexloc-job-17-x/in/movie/
    cell1.tif, /tmp/plexloc-job-17-x/out/cell1/locs.csv): now the movies and the model by the names uploaded
    (--input-names file-name, which the service's application gives) and the files inside OUT relative to it."""
    from plexloc.service.apps import Registry

    scratch = tmp_path / "plexloc-job-17-x"
    good = _movie(scratch / "in" / "movie" / "cell1.tif")
    bad = scratch / "in" / "movie" / "cell2.tif"
    bad.write_bytes(good.read_bytes()[:200])  # a corrupt TIFF: its error names the file
    out = scratch / "out"
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300, warn=True))
    with pytest.warns(UserWarning, match="a warning that names the table"):
        workflow.process_movies([good, bad], out, _options(input_names="file-name"), progress=False)
    texts = {p.relative_to(out): p.read_text() for p in out.rglob("*") if p.suffix in (".csv", ".json", ".html")
             and p.name not in ("locs.csv", "merged.csv", "locs_dc.csv")}
    assert {str(p) for p in texts} >= {"summary.csv", "cell1/summary.json", "cell2/summary.json", "cell1/report.html"}
    for path, text in texts.items():
        assert str(scratch) not in text and str(tmp_path) not in text, (path, text[:2000])
    rows = _rows(out)
    assert rows["cell1"]["movies"] == "cell1.tif" and rows["cell2"]["movies"] == "cell2.tif"
    assert rows["cell2"]["status"] == "failed" and "cell2.tif" in rows["cell2"]["error"]
    s = json.loads(texts[Path("cell1/summary.json")])
    assert s["movies"] == ["cell1.tif"]
    assert "UserWarning: cell1/locs.csv: a warning that names the table (a test)" in s["warnings"]
    # the service's application asks for it
    for entry in ("process", "mle"):
        _, _, ep = Registry.load().resolve("plexloc-process", None, entry)
        argv = ep.render(config=ep.validate_config({}), inputs={"movie": ["a.tif"], "model": ["m.pt"],
                                                                "config": ["c.yaml"]},
                         output_dir="o", work_dir="w", device="cpu")
        assert argv[argv.index("--input-names") + 1] == "file-name"


def test_paths_inside_out_are_relative_and_the_movies_as_given(tmp_path, monkeypatch):
    """On a user's machine: the movies as given (a relative path stays relative), the files inside OUT relative to
    OUT, in summary.json; what is printed keeps the path the user can open."""
    monkeypatch.chdir(tmp_path)
    _movie(tmp_path / "data" / "cell1.tif")
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300, warn=True))
    with pytest.warns(UserWarning, match="a warning that names the table"):
        [r] = workflow.process_movies(["data/cell1.tif"], tmp_path / "results", _options(), progress=False)
    s = json.loads((tmp_path / "results" / "cell1" / "summary.json").read_text())
    assert s["movies"] == ["data/cell1.tif"] and r.summary == s
    assert "UserWarning: cell1/locs.csv: a warning that names the table (a test)" in s["warnings"]
    # one absolute path, on purpose: movies_resolved (session 44: the same movie run from another folder is known)
    assert s.pop("movies_resolved") == [str((tmp_path / "data" / "cell1.tif").resolve())]
    assert str(tmp_path) not in json.dumps(s) and _rows(tmp_path / "results")["cell1"]["movies"] == "data/cell1.tif"
    with pytest.raises(Exception, match="input_names"):
        workflow.process_movies(["data/cell1.tif"], tmp_path / "results", _options(input_names="basename"),
                                progress=False)


# 5. every warning in summary.json -----------------------------------------------------------------------------------

def test_the_camera_defaults_warning_is_in_every_summary_json(tmp_path, monkeypatch, capsys):
    """A camera file that leaves fields out: its CameraDefaultsWarning (issued as the command read the file, before
    any movie) was printed but not in summary.json's warnings, which listed only those of the steps. Now in each
    acquisition's summary.json (and report.html), with those of the steps."""
    camera = tmp_path / "partial_camera.yaml"
    camera.write_text("camera: {kind: emccd, em_gain: 100.0}\n")
    movies = [_movie(tmp_path / f"{name}.tif") for name in ("a", "b")]
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300, warn=True))
    with pytest.warns(UserWarning, match="a warning that names the table"):
        rc = main(["process", *map(str, movies), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"),
                   "--camera", str(camera), "--out", str(tmp_path / "out"), "--no-drift"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("camera field(s) not given, defaults used") == 1  # said once, as before
    for name in ("a", "b"):
        s = json.loads((tmp_path / "out" / name / "summary.json").read_text())
        noted = [w for w in s["warnings"] if w.startswith("CameraDefaultsWarning: ")]
        assert len(noted) == 1 and f"{camera}: camera field(s) not given, defaults used" in noted[0], s["warnings"]
        assert any("a warning that names the table" in w for w in s["warnings"])  # the steps' too
        assert "camera field(s) not given" in (tmp_path / "out" / name / "report.html").read_text()


# 6. a 2D image's scale bar -----------------------------------------------------------------------------------------

def test_a_2d_image_has_a_key_with_its_scale_bar(tmp_path, monkeypatch):
    """A grey (2D) image.png's scale bar had its length only in summary.json: now image_legend.png beside it, as the
    3D image's key (the same figure code), says it and the pixel; plexloc render's grey PNG still gets none."""
    import matplotlib.image

    import plexloc.render.figures as figures
    from plexloc.render.image import render

    seen = {}
    real = figures.legend_figure

    def spy(rendered, **kw):
        seen.update(kw)
        return real(rendered, **kw)

    monkeypatch.setattr(figures, "legend_figure", spy)
    monkeypatch.setattr(workflow, "_fit", _fake_fit(300))
    [r] = workflow.process_movies([_movie(tmp_path / "cell1.tif")], tmp_path / "out", _options(), progress=False)
    image = r.summary["image"]
    assert image["color_by"] is None and image["scale_bar_nm"] > 0 and image["legend"] == "image_legend.png"
    assert seen["scale_bar_nm"] == image["scale_bar_nm"] and "image_legend.png" in r.summary["files"]
    key = matplotlib.image.imread(tmp_path / "out" / "cell1" / "image_legend.png")
    assert key.ndim == 3 and key.shape[1] > key.shape[0]
    from plexloc.table import LocTable

    grey = render(LocTable({"frame": [0, 1], "x_nm": [10.0, 500.0], "y_nm": [10.0, 500.0], "z_nm": [0.0, 0.0],
                            "photons": [1.0, 1.0]}), px_size_nm=10.0, method="histogram")
    assert real(grey, scale_bar_nm=100.0) is None and real(grey, scale_bar_nm=0.0, grey=True) is None
    assert real(grey, scale_bar_nm=100.0, grey=True)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_real_service_job_names_no_scratch_path(lab, tmp_path):  # noqa: F811
    """End to end: a plexloc-process job run by a worker (its scratch folder plexloc-job-N-*/in, /out): summary.csv
    and the summary.json files name the movies as uploaded and nothing of the scratch folder."""
    from service_support import AgentThread, LiveServer, make_service

    from plexloc.service.client import Client

    run, good, bad, _ = lab
    svc = make_service(tmp_path, lease_s=10)
    cpu = {"cpus": 1, "gpus": 0, "gpu_memory_mb": 0, "memory_mb": 2000}
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c, AgentThread(live.url, svc.worker_token):
        job = c.submit("plexloc-process", entry_point="process", hardware=cpu,
                       config={"threshold": 0.05, "no_drift": True},
                       inputs={"movie": [c.upload(good)["id"], c.upload(bad)["id"]],
                               "model": c.upload(run / "model.pt")["id"]})
        job = c.wait(job["id"], timeout=120)
        got = tmp_path / "got"
        c.download(job["id"], got)
    rows = _rows(got)
    assert rows["cell1"]["movies"] == "cell1.tif" and rows["cell2"]["movies"] == "cell2.tif"
    assert rows["cell2"]["status"] == "failed" and "cell2.tif" in rows["cell2"]["error"]
    for path in (got / "summary.csv", got / "cell1" / "summary.json", got / "cell2" / "summary.json",
                 got / "cell1" / "report.html"):
        text = path.read_text()
        assert "plexloc-job-" not in text and "/in/movie/" not in text and "/out/" not in text, path
    assert json.loads((got / "cell1" / "summary.json").read_text())["model"] == "model.pt"
