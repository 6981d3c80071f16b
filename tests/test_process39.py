"""plexloc process: a lab's movies to localizations, drift correction, report, merged table, image and FRC in one
command (plexloc.workflow). A tiny network (4 features, a few steps at a high learning rate on dense emitters, so that
it reports localizations at a low threshold) fits a small simulated movie whose stage drifts 200 nm in x and -100 nm
in y; its molecules stay on for 40 frames on average, so that the time windows share them and the drift can be
measured (the MLE fitter's table: the tiny network's positions are too coarse for a reliable estimate)."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_TRAIN

from plexloc.cli.main import main
from plexloc.io.tables import read_table
from plexloc.io.tiff import write_movie

GOOD_FILES = {"locs.csv", "report.html", "merged.csv", "image.png", "image_legend.png", "summary.json"}
FRAME_PX = 40  # the movie's frames, 100 nm pixels: a 4 um field, 400 px at the image's 10 nm
DRIFT_NM = (200.0, -100.0, 0.0)  # the stage's drift at the last frame, linear from 0 at frame 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(model run folder, a good movie, a corrupt movie, the movie's configuration)."""
    root = tmp_path_factory.mktemp("lab")
    train = {**TINY_TRAIN, "emitters": {**TINY_TRAIN["emitters"], "density_per_um2": 10.0},
             "training": {**TINY_TRAIN["training"], "lr": 0.01, "validate_every": 10}}
    (root / "train.yaml").write_text(yaml.safe_dump(train))
    movie = {**TINY_TRAIN, "frame_size": [FRAME_PX, FRAME_PX],
             "emitters": {**TINY_TRAIN["emitters"], "density_per_um2": 2.0, "on_time_frames": 40.0,
                          "drift": {"linear_nm": list(DRIFT_NM)}}}
    (root / "movie.yaml").write_text(yaml.safe_dump(movie))
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the camera defaults and the model's poor validation, as a user sees them
            assert main(["train", str(root / "train.yaml"), "--out", str(root / "run"), "--steps", "10", "--device",
                         "cpu", "--threads", "1"]) == 0
            assert main(["simulate", str(root / "movie.yaml"), "--frames", "120", "--out", str(root / "sim"),
                         "--device", "cpu", "--seed", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    good = root / "cell1.tif"
    (root / "sim" / "movie.tif").rename(good)
    bad = root / "cell2.tif"  # cut short: its metadata declares 120 frames
    bad.write_bytes(good.read_bytes()[:150_000])
    return root / "run", good, bad, root / "movie.yaml"


def _process(argv: list[str], capsys) -> tuple[int, str, str]:
    """``plexloc process ARGV`` with warnings shown as a user sees them; (exit code, stdout, stderr)."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        rc = main(["process", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _hidden(folder: Path) -> list[Path]:
    """Temporary files and folders left anywhere below ``folder``."""
    return [p for p in folder.rglob(".*")]


def test_two_movies_one_corrupt(lab, tmp_path, capsys):
    """The good movie's folder holds every file, with consistent numbers; the corrupt one is reported in summary.csv
    with its error, has a folder marked failed, and the exit code is 1; nothing temporary is left."""
    run, good, bad, _ = lab
    out = tmp_path / "out"
    rc, stdout, stderr = _process([str(good), str(bad), "--model", str(run), "--out", str(out), "--threshold", "0.05",
                                   "--device", "cpu", "--drift-engine", "rcc"], capsys)
    assert rc == 1, stderr
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["status"] == "ok" and s["error"] is None
    files = {p.name for p in (out / "cell1").iterdir()}
    drift = s["drift"]
    assert drift["engine"] == "rcc" and drift["state"] in ("applied", "unreliable"), drift
    expected = GOOD_FILES | {"drift.png"} | ({"locs_dc.csv"} if drift["state"] == "applied" else set())
    assert files == expected and set(s["files"]) == expected
    locs = read_table(out / "cell1" / "locs.csv")
    table = read_table(out / "cell1" / drift["table"])
    merged = read_table(out / "cell1" / "merged.csv")
    assert len(locs) == s["fit"]["rows"] > 100 and len(table) == len(locs)
    assert s["fit"]["frames"] == 120 and s["fit"]["frames_per_s"] > 0
    assert len(merged) == s["merge"]["rows"] and 0 < len(merged) <= len(locs)
    assert int(merged["n_merged"].sum()) == len(locs)
    if drift["state"] == "applied":
        assert "drift_x_nm" in table and len(drift["range_nm"]) == 3
    import matplotlib.image

    img = matplotlib.image.imread(out / "cell1" / "image.png")
    assert img.shape[:2] == (FRAME_PX * 10, FRAME_PX * 10) == (s["image"]["height_px"], s["image"]["width_px"])
    assert (out / "cell1" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert s["report"]["summary"]["localizations"] == str(len(table))
    assert s["nena"]["pairs"] > 0 and "frc" in s
    # the corrupt movie: its folder marked failed, its row with the error
    assert sorted(p.name for p in (out / "cell2").iterdir()) == ["FAILED.txt", "summary.json"]
    failed = json.loads((out / "cell2" / "summary.json").read_text())
    assert failed["status"] == "failed" and "cell2.tif" in failed["error"] and "TIFF" in failed["error"]
    with open(out / "summary.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["cell1"]["status"] == "ok" and int(rows["cell1"]["rows"]) == len(locs)
    assert int(rows["cell1"]["merged_rows"]) == len(merged) and rows["cell1"]["error"] == ""
    assert rows["cell2"]["status"] == "failed" and rows["cell2"]["error"] == failed["error"]
    assert rows["cell2"]["movies"] == str(bad)
    # the table printed: one line a movie, and the error
    lines = stdout.splitlines()
    assert lines[1].split()[:3] == ["cell1", "ok", str(len(locs))] and lines[2].split()[:2] == ["cell2", "failed"]
    assert f"cell2: {failed['error']}" in stdout and "1 of 2 movie(s) processed; failed: cell2" in stdout
    assert _hidden(out) == []


def test_mle_drift_is_measured_and_subtracted(lab, tmp_path, capsys):
    """--method mle --config: the stage's drift (200 nm in x) measured and subtracted (locs_dc.csv, its drift columns),
    NeNA of the table before merging (an MLE table: no caveat), the image Gaussians of the CRLB (a histogram before
    session 42: it read sigma columns only)."""
    _, good, _, config = lab
    out = tmp_path / "out"
    rc, stdout, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out),
                                   "--device", "cpu", "--drift-engine", "rcc"], capsys)
    assert rc == 0, stderr
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["drift"]["state"] == "applied" and s["drift"]["uncertainty_nm"] < 20, s["drift"]  # actual error 14.2 nm
    assert abs(s["drift"]["range_nm"][0] - DRIFT_NM[0]) < 30 and s["drift"]["range_nm"][2] == 0
    dc = read_table(out / "cell1" / "locs_dc.csv")
    last = dc["frame"] == dc["frame"].max()
    assert abs(float(dc["drift_x_nm"][last].mean()) - DRIFT_NM[0]) < 30
    assert abs(float(dc["drift_y_nm"][last].mean()) - DRIFT_NM[1]) < 30
    assert 3 < s["nena"]["sigma_nm"] < 20 and s["nena"]["caveat"] is None
    assert s["image"]["method"] == "gaussian" and s["fit"]["method"] == "mle" and s["model"] is None
    with open(out / "summary.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["drift_range_nm"]) == round(max(s["drift"]["range_nm"][:2]), 1) and row["drift"] == "applied"
    assert float(row["nena_nm"]) == round(s["nena"]["sigma_nm"], 1)


def test_no_drift_skips_it_and_a_rerun_replaces_the_folder(lab, tmp_path, capsys):
    """--no-drift: no drift.png, no locs_dc.csv, the report of locs.csv; run again over an earlier folder, the earlier
    files go (no locs_dc.csv of the first run left beside the new ones) and nothing temporary stays."""
    run, good, _, _ = lab
    out = tmp_path / "out"
    (out / "cell1").mkdir(parents=True)
    (out / "cell1" / "locs_dc.csv").write_text("an earlier run's\n")
    # an earlier run's folder has its summary.json (one without is not replaced: session 43, test_process43)
    (out / "cell1" / "summary.json").write_text(json.dumps({"name": "cell1", "movies": [str(good)], "status": "ok"}))
    rc, _, stderr = _process([str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device",
                              "cpu", "--no-drift"], capsys)
    assert rc == 0, stderr
    assert {p.name for p in (out / "cell1").iterdir()} == GOOD_FILES
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["drift"] == {"state": "off", "reason": "--no-drift", "table": "locs.csv"} and "drift" not in s["steps"]
    assert _hidden(out) == []


def test_unreliable_drift_keeps_the_table_uncorrected(lab, tmp_path, capsys, monkeypatch):
    """Where the drift engine calls its estimate unreliable (info["unreliable"], with its warning), the drift is not
    subtracted: no locs_dc.csv, the report and merge take locs.csv, and the summary and stderr say why."""
    import plexloc.post.drift as drift

    real = drift.estimate_drift

    def unreliable(table, **options):
        result = real(table, **options)
        result.info["unreliable"] = True
        warnings.warn("the drift estimate is not reliable (a test)", drift.UnreliableDriftWarning, stacklevel=2)
        return result

    monkeypatch.setattr(drift, "estimate_drift", unreliable)
    run, good, _, _ = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device",
                              "cpu", "--drift-engine", "rcc", "--no-merge"], capsys)
    assert rc == 0, stderr
    assert {p.name for p in (out / "cell1").iterdir()} == GOOD_FILES - {"merged.csv"} | {"drift.png"}
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["drift"]["state"] == "unreliable" and s["drift"]["table"] == "locs.csv"
    assert any("not reliable (a test)" in w for w in s["warnings"])
    assert "cell1: drift not subtracted" in stderr and "warning: the drift estimate is not reliable" in stderr
    assert s["merge"]["state"] == "off" and s["report"]["summary"]["localizations"] == str(s["fit"]["rows"])


def test_a_failing_step_marks_the_folder_and_an_interrupt_leaves_it(lab, tmp_path, capsys, monkeypatch):
    """A step that fails (here the merge): the folder holds the files finished before it, FAILED.txt and summary.json
    naming the step and the error, exit code 1. Ctrl-C during a later run: that folder stays as it was, and no partial
    folder is left."""
    import plexloc.post.merge as merge

    def broken(*a, **k):
        raise RuntimeError("merge broke")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    run, good, _, _ = lab
    out = tmp_path / "out"
    argv = [str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device", "cpu", "--no-drift"]
    monkeypatch.setattr(merge, "merge_localizations", broken)
    rc, stdout, _ = _process(argv, capsys)
    assert rc == 1 and "cell1: merge: RuntimeError: merge broke" in stdout
    before = {p.name: p.read_bytes() for p in (out / "cell1").iterdir()}
    # (session 40's walk: the report follows the merge, its FRC of merged.csv: a failed merge leaves no report)
    assert set(before) == {"locs.csv", "summary.json", "FAILED.txt"}
    s = json.loads(before["summary.json"])
    assert s["status"] == "failed" and s["error"] == "merge: RuntimeError: merge broke" and "fit" in s["steps"]
    assert before["FAILED.txt"].decode().strip() == s["error"] and set(s["files"]) == set(before)
    monkeypatch.setattr(merge, "merge_localizations", interrupted)
    rc, _, _ = _process(argv, capsys)
    assert rc == 130
    assert {p.name: p.read_bytes() for p in (out / "cell1").iterdir()} == before
    assert _hidden(out) == [] and sorted(p.name for p in out.iterdir()) == ["cell1", "summary.csv"]


def test_acquisitions_and_bad_options(tmp_path, capsys):
    """Movie names without .tif/.ome, one per channel grouped; a multi-channel configuration given another number of
    movies than its channels, and options that do not apply, are refused before any fit (exit 2, nothing written)."""
    from plexloc.config import load_config
    from plexloc.workflow import ProcessOptions, acquisition_name, group_movies

    assert acquisition_name(["a/cell1.ome.tif"]) == "cell1" and acquisition_name(["run.2/x.tiff"]) == "x"
    assert acquisition_name(["cell1_ch0.tif", "cell1_ch1.tif"]) == "cell1"
    assert acquisition_name(["left.tif", "right.tif"]) == "left"
    dual = Path(__file__).resolve().parents[1] / "examples" / "dual_color.yaml"
    options = ProcessOptions(method="mle", config=load_config(dual))
    acq = group_movies(["c_ch0.tif", "c_ch1.tif"], options)
    assert [(a.name, [m.name for m in a.movies]) for a in acq] == [("c", ["c_ch0.tif", "c_ch1.tif"])]
    out = tmp_path / "out"
    rc, _, err = _process(["a_ch0.tif", "a_ch1.tif", "b_ch0.tif", "--method", "mle", "--config", str(dual), "--out",
                           str(out)], capsys)
    assert rc == 2 and "2 channels and no split_view" in err and "3 were given" in err and "once per acquisition" in err
    rc, _, err = _process(["a.tif", "--method", "mle", "--config", str(dual), "--threshold", "0.5", "--out", str(out)],
                          capsys)
    assert rc == 2 and "--threshold applies to --method network only" in err
    rc, _, err = _process(["a.tif", "--out", str(out)], capsys)
    assert rc == 2 and "--model RUN_DIR is required" in err
    assert not out.exists()


def test_help_says_what_is_written_and_in_which_order(capsys):
    with pytest.raises(SystemExit):
        main(["process", "--help"])
    text = capsys.readouterr().out
    order = [text.index(name) for name in ("1. locs.csv", "2. drift.png", "locs_dc.csv", "3. merged.csv",
                                           "4. report.html", "5. image.png", "6. summary.json", "DIR/summary.csv")]
    assert order == sorted(order) and "separate commands" in text and "FAILED.txt" in text


def test_service_application_renders_the_command():
    """plexloc-process on the job service: every movie to one command (no foreach: summary.csv covers them all), the
    model by reference as plexloc-fit takes it, the folders' files as outputs."""
    from plexloc.service.apps import Registry

    _, _, ep = Registry.load().resolve("plexloc-process", None, "process")
    assert ep.foreach is None and ep.inputs["model"].suffixes == [".pt"] and ep.inputs["movie"].multiple
    argv = ep.render(config=ep.validate_config({"threshold": 0.2, "no_drift": True, "render_px": 20}),
                     inputs={"movie": ["a.tif", "b.tif"], "model": ["model.pt"]}, output_dir="o", work_dir="w",
                     device="cuda")
    # --input-names file-name: summary.csv and summary.json name the movies as uploaded, not the worker's paths
    assert argv == ["plexloc", "process", "a.tif", "b.tif", "--model", "model.pt", "--out", "o", "--device", "cuda",
                    "--input-names", "file-name", "--threshold", "0.2", "--no-drift", "--render-px", "20.0"]
    assert "--no-merge" not in ep.render(config=ep.validate_config({"no_merge": False}),
                                         inputs={"movie": ["a.tif"], "model": ["m.pt"]}, output_dir="o", work_dir="w",
                                         device="cpu")
    outputs = {o.path for o in ep.outputs}
    assert {"summary.csv", "*/locs.csv", "*/merged.csv", "*/image.png", "*/report.html", "*/summary.json",
            "*/FAILED.txt"} <= outputs
    with pytest.raises(Exception, match="drift_engine"):
        ep.validate_config({"drift_engine": "magic"})
    assert ep.render(config=ep.validate_config({"precision": "float32", "refine_mle": True}),
                     inputs={"movie": ["a.tif"], "model": ["m.pt"]}, output_dir="o", work_dir="w",
                     device="cuda")[-3:] == ["--precision", "float32", "--refine-mle"]
    # the MLE fitter, as plexloc-fit's mle: the configuration (its files beside it), no GPU
    _, _, mle = Registry.load().resolve("plexloc-process", None, "mle")
    assert mle.hardware.gpus == 0 and mle.inputs["files"].beside == "config" and mle.inputs["movie"].multiple
    argv = mle.render(config=mle.validate_config({"min_photons": 200, "drift_engine": "rcc"}),
                      inputs={"movie": ["a.tif", "b.tif"], "config": ["c.yaml"]}, output_dir="o", work_dir="w",
                      device="cpu")
    assert argv == ["plexloc", "process", "a.tif", "b.tif", "--method", "mle", "--config", "c.yaml", "--out", "o",
                    "--device", "cpu", "--input-names", "file-name", "--min-photons", "200.0", "--drift-engine", "rcc"]
    assert {o.path for o in mle.outputs} == outputs and "*/image_legend.png" in outputs
    with pytest.raises(Exception, match="threshold"):
        mle.validate_config({"threshold": 0.5})


def test_doctests():
    import doctest

    import plexloc.workflow

    assert doctest.testmod(plexloc.workflow).failed == 0


def test_service_job_processes_the_movies(lab, tmp_path):
    """A plexloc-process job on a worker: both movies to one command; the good movie's files and summary.csv come
    back (no_drift given: --no-drift), and the corrupt movie fails the job (exit code 1) with its row saying why, its outputs uploaded all the
    same."""
    from service_support import AgentThread, LiveServer, make_service

    from plexloc.service.client import Client

    run, good, bad, _ = lab
    svc = make_service(tmp_path, lease_s=10)
    cpu = {"cpus": 1, "gpus": 0, "gpu_memory_mb": 0, "memory_mb": 2000}
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c, AgentThread(live.url, svc.worker_token):
        movies = [c.upload(good)["id"], c.upload(bad)["id"]]
        job = c.submit("plexloc-process", entry_point="process", hardware=cpu,
                       config={"threshold": 0.05, "no_drift": True},
                       inputs={"movie": movies, "model": c.upload(run / "model.pt")["id"]})
        job = c.wait(job["id"], timeout=120)
        assert job["state"] == "failed" and "exited with code 1" in job["error"], job["error"]
        got = tmp_path / "got"
        c.download(job["id"], got)
    with open(got / "summary.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["cell1"]["status"] == "ok" and rows["cell2"]["status"] == "failed" and "TIFF" in rows["cell2"]["error"]
    assert {p.name for p in (got / "cell1").iterdir()} == GOOD_FILES  # no_drift: no drift.png, no locs_dc.csv
    assert sorted(p.name for p in (got / "cell2").iterdir()) == ["FAILED.txt", "summary.json"]
    assert len(read_table(got / "cell1" / "locs.csv")) == int(rows["cell1"]["rows"])


def test_fit_options_reach_the_fitters(lab, tmp_path, capsys, monkeypatch):
    """--split-view, --roi-offset, --precision and --refine-mle mean what they mean to plexloc fit: the network gets
    them (a one-box split view crops the field of view to its 20 x 40 pixels, float32, rows refined), the MLE fitter
    the ROI offset and the configuration with its split_view replaced; the network's options are refused with
    --method mle. The model's note (not trained enough) is said once and kept in summary.json, by the library."""
    import plexloc.infer
    import plexloc.mle

    run, good, _, config = lab
    (tmp_path / "split.yaml").write_text(yaml.safe_dump({"split_view": {"boxes": [[0, 0, 20, 40]]}}))
    seen = {}
    real = plexloc.infer.fit_movie_to_file

    def spy(movie, model, out, **kw):
        seen.update(kw)
        return real(movie, model, out, **kw)

    monkeypatch.setattr(plexloc.infer, "fit_movie_to_file", spy)
    out = tmp_path / "out"
    split = ["--split-view", str(tmp_path / "split.yaml"), "--roi-offset", "3", "4"]
    rc, _, stderr = _process([str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device",
                              "cpu", "--no-drift", *split, "--precision", "float32", "--refine-mle"], capsys)
    assert rc == 0, stderr
    assert seen["roi_offset_px"] == (3, 4) and seen["split_view"].boxes == [(0, 0, 20, 40)]
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["fit"]["precision"] == "float32" and seen["refine_mle"] and s["fit"]["refined_rows"] > 0
    assert (s["image"]["width_px"], s["image"]["height_px"]) == (200, 400)
    note = "the model detected poorly on its own validation set"
    assert stderr.count(note) == 1 and f"plexloc process: warning: {note}" in stderr
    assert any(w.startswith(f"ModelNotReadyWarning: {note}") for w in s["warnings"])

    def stop(movie, cfg, path, **kw):
        seen.update(kw, config=cfg)
        raise RuntimeError("stopped")

    monkeypatch.setattr(plexloc.mle, "fit_movie_to_file", stop)
    rc, _, _ = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), *split], capsys)
    assert rc == 1 and seen["roi_offset_px"] == (3, 4) and seen["config"].split_view.boxes == [(0, 0, 20, 40)]
    for extra in (["--precision", "bfloat16"],):  # (--refine-mle refines MLE fits too since session 51)
        rc, _, err = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), *extra],
                              capsys)
        assert rc == 2 and f"{extra[0]} applies to --method network only" in err


def test_a_3d_table_is_coloured_by_z_with_its_key(lab, tmp_path, monkeypatch):
    """A table whose z spreads (a 3D model's): image.png coloured by z (RGB), image_legend.png beside it, the z range
    of its colours in summary.json; a 2D table (one z) stays grey, its key the scale bar's length alone (session 40).
    The fit is a table written in its place (process_movies, the library, over the MLE configuration's field of
    view)."""
    import matplotlib.image
    import numpy as np

    import plexloc.workflow as workflow
    from plexloc.config import load_config
    from plexloc.io.tables import write_table
    from plexloc.table import LocTable

    _, good, _, config = lab
    rng = np.random.default_rng(1)
    n = 3000

    def fit(z_nm):
        def write(acq, folder, options, progress):
            write_table(LocTable({"frame": rng.integers(0, 120, n), "x_nm": rng.uniform(0, 4000, n),
                                  "y_nm": rng.uniform(0, 4000, n), "z_nm": z_nm, "photons": np.full(n, 1000.0),
                                  "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 10.0)}),
                        folder / "locs.csv")
            return {"method": "mle", "rows": n, "frames": 120, "seconds": 1.0, "frames_per_s": 120.0, "notes": []}
        return write

    options = workflow.ProcessOptions(method="mle", config=load_config(config), drift=False)
    monkeypatch.setattr(workflow, "_fit", fit(rng.uniform(-300, 300, n)))
    [r] = workflow.process_movies([good], tmp_path / "3d", options, progress=False)
    folder = tmp_path / "3d" / "cell1"
    image = r.summary["image"]
    assert r.ok and image["color_by"] == "z" and image["legend"] == "image_legend.png" and image["cmap"] == "turbo"
    assert -300 < image["z_range_nm"][0] < -270 and 270 < image["z_range_nm"][1] < 300
    assert {"image.png", "image_legend.png"} <= set(r.summary["files"]) == {p.name for p in folder.iterdir()}
    rgb = matplotlib.image.imread(folder / "image.png")
    assert rgb.ndim == 3 and np.abs(rgb[..., 0] - rgb[..., 2]).max() > 0.2  # colours, not grey
    assert matplotlib.image.imread(folder / "image_legend.png").ndim == 3
    monkeypatch.setattr(workflow, "_fit", fit(np.zeros(n)))
    [r] = workflow.process_movies([good], tmp_path / "2d", options, progress=False)
    assert r.summary["image"]["color_by"] is None and "z_range_nm" not in r.summary["image"]
    assert r.summary["image"]["legend"] == "image_legend.png" and "image_legend.png" in r.summary["files"]
    grey = matplotlib.image.imread(tmp_path / "2d" / "cell1" / "image.png")
    assert grey.ndim == 2 or np.array_equal(grey[..., 0], grey[..., 2])


def test_a_fit_that_finds_nothing_is_said(lab, tmp_path, capsys):
    """A movie the fit found no localization in read 'ok' in the table and summary.json with nothing said (the
    facility walk of 2026-12-06): now a warning, in the summary's warnings (and the report's)."""
    run, _, _, _ = lab
    dark = tmp_path / "dark.tif"
    write_movie(dark, np.full((30, FRAME_PX, FRAME_PX), 100, np.uint16))  # the camera's baseline: no light
    # the 10-step model sees spots in noise: a photon floor no spot reaches leaves the table empty
    with pytest.warns(UserWarning, match="dark: the fit found no localizations"):  # shown as issued
        rc, _, _ = _process([str(dark), "--model", str(run), "--out", str(tmp_path / "out"), "--no-drift",
                             "--min-photons", "1e9"], capsys)
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "dark" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["fit"]["rows"] == 0
    assert any("dark: the fit found no localizations" in w for w in summary["warnings"])
