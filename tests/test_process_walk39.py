"""plexloc process as an imaging facility runs it (session 39's walk): what the user reads afterwards must name the
files that are there and say what was done. Uses test_process39's small lab (a tiny network, a drifting movie)."""

from __future__ import annotations

import json
import re
import warnings

from test_process39 import _hidden, _process, lab  # noqa: F401 (lab: the module's fixture)


def _unreliable_drift(monkeypatch):
    """estimate_drift that calls its estimate unreliable with a warning naming the table's file, as COMET's do."""
    import plexloc.post.drift as drift

    real = drift.estimate_drift

    def unreliable(table, **options):
        result = real(table, **options)
        result.info["unreliable"] = True
        warnings.warn(f"{table.source}: the drift estimate is not reliable (a test)", drift.UnreliableDriftWarning,
                      stacklevel=2)
        return result

    monkeypatch.setattr(drift, "estimate_drift", unreliable)


def test_warnings_name_the_final_folder_not_the_hidden_one(lab, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A warning that names the table's file named the hidden temporary folder (results/.cell1.partial-bup26ipy/
    locs.csv), gone when the user reads it, on stderr and in summary.json; now results/cell1/locs.csv on stderr, and
    cell1/locs.csv (relative to results, session 40) in summary.json."""
    _unreliable_drift(monkeypatch)
    run, good, _, _ = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device",
                              "cpu", "--drift-engine", "rcc", "--no-merge"], capsys)
    assert rc == 0, stderr
    s = json.loads((out / "cell1" / "summary.json").read_text())
    final = str(out / "cell1" / "locs.csv")
    assert any(w.startswith("UnreliableDriftWarning: cell1/locs.csv: ") for w in s["warnings"]), s["warnings"]
    assert f"{final}: the drift estimate is not reliable" in stderr
    assert ".partial-" not in stderr and ".partial-" not in json.dumps(s)
    assert ".partial-" not in (out / "cell1" / "report.html").read_text()
    assert _hidden(out) == []


def _text(html: str) -> str:
    """The page's words (no images, styles or tags)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_report_says_what_was_done_with_which_model_and_the_warnings(lab, tmp_path, capsys,  # noqa: F811
                                                                          monkeypatch):
    """report.html said neither the movie nor the model nor that the drift was estimated but not subtracted (its drift
    section said 'run plexloc drift first'), nor the warnings; now a "How this table was made" section (movie, model,
    threshold, drift, what follows the report) and a "Warnings" section."""
    _unreliable_drift(monkeypatch)
    run, good, _, _ = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device",
                              "cpu", "--drift-engine", "rcc"], capsys)
    assert rc == 0, stderr
    text = _text((out / "cell1" / "report.html").read_text())
    made = text.split("How this table was made", 1)[1].split("Warnings", 1)[0]
    assert f"movie {good}" in made and f"network {run}" in made and "threshold 0.05" in made
    assert "drift not subtracted, the table is locs.csv uncorrected" in made and "RCC estimate spans" in made
    # session 46: the line said "... (drift.png) is not reliable (see the warnings)" after the figures, and the drift
    # section showed no curve although drift.png was written: now the verdict first, and the estimate drawn
    assert ("the table is locs.csv uncorrected: the estimate is not reliable (see the warnings). The RCC estimate "
            "spans") in made and "(drift.png) is not reliable" not in made
    page = (out / "cell1" / "report.html").read_text()
    assert 'alt="drift curve, estimated, not subtracted"' in page
    assert "merged (radius 50 nm, gap 1) into merged.csv" in made
    assert "the drift estimate is not reliable (a test)" in text.split("Warnings", 1)[1]
    assert "run plexloc drift first" not in text
    s = json.loads((out / "cell1" / "summary.json").read_text())
    assert s["report"]["not_available"]["drift"].startswith("not subtracted")


def test_the_report_of_a_corrected_table_and_of_no_drift(lab, tmp_path, capsys):  # noqa: F811
    """--method mle: the report says the drift was subtracted (locs_dc.csv) and which configuration fitted;
    --no-drift: that it was not corrected."""
    _, good, _, config = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), "--device",
                              "cpu", "--drift-engine", "rcc", "--no-merge"], capsys)
    assert rc == 0, stderr
    text = _text((out / "cell1" / "report.html").read_text())
    assert "maximum likelihood" in text and "drift subtracted: the RCC estimate spans" in text
    assert "this table is locs_dc.csv" in text and "not merged (--no-merge)" in text
    rc, _, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), "--device",
                              "cpu", "--no-drift"], capsys)
    assert rc == 0, stderr
    text = _text((out / "cell1" / "report.html").read_text())
    assert "drift not corrected (--no-drift)" in text
    assert "Drift curve not available: not corrected (--no-drift)" in text


def test_the_drift_step_says_how_far_it_is(lab, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The drift step, the longest of a long movie (COMET: 411 s against a 98 s fit for 10,000 frames on one CPU
    thread), showed a bare count ('drift (comet): 282step [03:19]'): now COMET's pass of 3 (the table, then its two
    halves) and RCC's pairs out of their total, which the job service reads as a fraction."""
    monkeypatch.setenv("PLEXLOC_PROGRESS", "1")  # the bar as on a terminal (as the service's workers have it)
    _, good, _, config = lab
    for engine, shown in (("rcc", r"drift \(rcc\): 100%.*\| (\d+)/\1 "), ("comet", r"drift \(comet\): .*pass 3/3")):
        out = tmp_path / engine
        rc, _, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out),
                                  "--device", "cpu", "--drift-engine", engine, "--no-merge"], capsys)
        assert rc == 0, stderr
        assert re.search(shown, stderr.replace("\r", "\n")), stderr[-2000:]


def test_help_names_every_summary_column(capsys):
    """summary.csv's columns were documented only in the code (SUMMARY_COLUMNS' comment): the help names each, with
    its unit where it has one."""
    import pytest

    from plexloc.cli.main import main
    from plexloc.workflow import SUMMARY_COLUMNS

    with pytest.raises(SystemExit):
        main(["process", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for column in SUMMARY_COLUMNS:
        assert re.search(rf"\b{column} \(", text), column
    assert "replaced whole once its new one is complete" in text


def test_a_rerun_says_what_it_replaces_and_what_it_keeps(lab, tmp_path, capsys):  # noqa: F811
    """Run again into a folder of an earlier run: the movie processed again says it replaces its earlier folder, and
    the earlier folders of other movies, kept, are named (nothing was said); summary.csv lists them too (session
    40: it describes every folder in OUT)."""
    run, good, _, _ = lab
    out = tmp_path / "out"
    (out / "cell0").mkdir(parents=True)  # an earlier run's movie, not processed now
    (out / "cell0" / "summary.json").write_text("{}\n")
    argv = [str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device", "cpu", "--no-drift"]
    rc, _, stderr = _process(argv, capsys)
    assert rc == 0, stderr
    assert "replaces the earlier" not in stderr
    assert f"{out} also holds 1 earlier result folder(s) not processed now" in stderr and ": cell0" in stderr
    rc, _, stderr = _process(argv, capsys)
    assert rc == 0, stderr
    assert f"[1/1] cell1: {good} (replaces the earlier {out / 'cell1'} once done)" in stderr
    assert (out / "cell0" / "summary.json").read_text() == "{}\n"
    assert [line.split(",")[0] for line in (out / "summary.csv").read_text().splitlines()] == ["name", "cell1",
                                                                                               "cell0"]


def test_a_wrong_camera_is_said_as_found_and_in_the_report(lab, tmp_path, capsys):  # noqa: F811
    """A camera file of another camera (an sCMOS for the EMCCD movie): the fit's note (pixel noise many times what
    the camera predicts) was printed only after the last movie of the batch, and was not in report.html; now said as
    the movie's fit ends, before its next step, and listed in the report's warnings."""
    run, good, _, _ = lab
    camera = tmp_path / "scmos.yaml"
    camera.write_text("camera: {kind: scmos, baseline: 400.0, e_per_adu: 0.5, qe: 0.8, read_sigma: 1.5, "
                      "spurious_charge: 0.0}\n")
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--model", str(run), "--camera", str(camera), "--out", str(out),
                              "--threshold", "0.05", "--device", "cpu", "--no-drift"], capsys)
    assert rc == 0, stderr
    lines = stderr.splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("cell1: note: noise: the pixel noise"))
    assert lines.index("cell1: report") > note
    assert re.search(r"cell1: \d+ note\(s\) on the fit above", stderr)
    text = _text((out / "cell1" / "report.html").read_text())
    assert "fit: noise: the pixel noise between frames is" in text.split("Warnings", 1)[1]
    assert "the camera given (--camera)" in text


def test_sigterm_ends_the_run_as_ctrl_c_does(lab, tmp_path, capsys, monkeypatch):  # noqa: F811
    """SIGTERM during a fit (a scheduler's or timeout's kill) killed the process where it stood and left the hidden
    DIR/.NAME.partial-* folder for good; now it ends the run as Ctrl-C: nothing partial, the earlier folder kept, exit
    130, and the handler before restored. (The handler is called here as the signal would call it.)"""
    import signal

    import plexloc.workflow as workflow

    run, good, _, _ = lab
    out = tmp_path / "out"
    argv = [str(good), "--model", str(run), "--out", str(out), "--threshold", "0.05", "--device", "cpu", "--no-drift"]
    rc, _, stderr = _process(argv, capsys)
    assert rc == 0, stderr
    before = {p.name: p.read_bytes() for p in (out / "cell1").iterdir()}
    real_fit = workflow._fit

    def terminated(acq, folder, options, progress):
        real_fit(acq, folder, options, progress)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler), "SIGTERM has its default action: the process would die here"
        handler(signal.SIGTERM, None)

    monkeypatch.setattr(workflow, "_fit", terminated)
    default = signal.getsignal(signal.SIGTERM)
    rc, _, stderr = _process(argv, capsys)
    assert rc == 130 and "plexloc process: interrupted" in stderr
    assert signal.getsignal(signal.SIGTERM) is default
    assert {p.name: p.read_bytes() for p in (out / "cell1").iterdir()} == before and _hidden(out) == []


def test_the_printed_table_marks_values_with_a_caveat():
    """The printed table gave a network's NeNA (3.3 nm where the errors spread 5.5 nm) and the FRC of a table not
    merged (--no-merge: 15.3 nm, none once merged) as bare numbers; now marked, the caveat said under the table."""
    from pathlib import Path

    from plexloc.workflow import Acquisition, AcquisitionResult, format_summary

    def result(name, nena_caveat, frc_caveat):
        s = {"status": "ok", "fit": {"rows": 10, "frames": 5, "frames_per_s": 1.0}, "drift": {"state": "off"},
             "merge": {"rows": None}, "nena": {"sigma_nm": 3.3, "caveat": nena_caveat},
             "frc": {"resolution_nm": 15.3, "caveat": frc_caveat}, "seconds": 1.0}
        return AcquisitionResult(Acquisition(name, (Path(f"{name}.tif"),)), Path(name), s)

    text = format_summary([result("a", "NeNA reads low", "unmerged"), result("b", "NeNA reads low", None)])
    rows = {line.split()[0]: line.split() for line in text.splitlines()}
    assert rows["a"][8:10] == ["3.3*", "15.3+"] and rows["b"][8:10] == ["3.3*", "15.3"]
    assert "* NeNA: NeNA reads low" in text and "+ FRC of a: unmerged" in text


def test_a_warning_during_a_bar_starts_a_line_of_its_own(lab, tmp_path, capsys, monkeypatch):  # noqa: F811
    """With the bar drawn (a terminal; the job service's log, PLEXLOC_PROGRESS=1), a warning issued at the end of the
    drift estimate ran on after the bar: 'drift (comet): 981evaluation [00:09, ...]plexloc process: warning: ...'."""
    monkeypatch.setenv("PLEXLOC_PROGRESS", "1")
    _unreliable_drift(monkeypatch)
    _, good, _, config = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), "--device",
                              "cpu", "--drift-engine", "rcc", "--no-merge"], capsys)
    assert rc == 0, stderr
    fragments = [f for f in re.split(r"[\r\n]", stderr) if "the drift estimate is not reliable (a test)" in f]
    assert fragments and all(f.startswith("plexloc process: warning: ") for f in fragments), fragments


def test_the_default_drift_engine_is_plexloc_drifts(lab, tmp_path, capsys):  # noqa: F811
    """process's drift step defaulted to COMET while plexloc drift now defaults to RCC (its help said 'as plexloc
    drift'); COMET took 411 s of a 10,000-frame movie's 516 s on one CPU thread (the fit 98 s), RCC 0.3 s."""
    from plexloc.workflow import ProcessOptions

    assert ProcessOptions().drift_engine == "rcc"
    _, good, _, config = lab
    out = tmp_path / "out"
    rc, _, stderr = _process([str(good), "--method", "mle", "--config", str(config), "--out", str(out), "--device",
                              "cpu", "--no-merge"], capsys)
    assert rc == 0, stderr
    assert json.loads((out / "cell1" / "summary.json").read_text())["drift"]["engine"] == "rcc"
