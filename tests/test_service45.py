"""The job service, session 45: the submission check collects the loader's notes through the loader's own API
(config.io.collected_notes) instead of saving and restoring the module's private note set, and a re-run checks its
inputs as a submission does."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import httpx
import pytest
import yaml
from service_support import (  # noqa: F401 (fixtures)
    EXAMPLE, AgentThread, LiveServer, auth, http, live, make_service, script_app, service, ticker_app,
)

from plexloc.config import CameraDefaultsWarning, load_camera_configs, load_config
from plexloc.config import io as config_io
from plexloc.service.client import Client

GOOD = yaml.safe_load(EXAMPLE.read_text())


# -- the loader's notes, collected for the caller ----------------------------------------------------------------------
def test_collected_notes_gives_the_notes_to_the_caller_and_a_later_load_still_warns(tmp_path):
    """Inside collected_notes() a configuration (and a camera YAML) that leaves camera fields out is not warned of:
    the note is appended to the caller's list, and not recorded as given, so a load of the same file outside the block
    warns as it did before. Before: no such API (the service saved and restored config.io._noted around each check)."""
    from plexloc.config.io import collected_notes

    sparse = tmp_path / "sparse.yaml"
    sparse.write_text(yaml.safe_dump({**GOOD, "camera": {"kind": "emccd", "qe": 0.9}}))
    cam = tmp_path / "cam.yaml"
    cam.write_text("kind: emccd\nqe: 0.9\nem_gain: 100\n")
    noted = set(config_io._noted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here fails the test
        with collected_notes() as notes:
            load_config(sparse)
            load_camera_configs(cam)
            with collected_notes() as inner:  # nested: the innermost collects
                load_camera_configs(cam)
    assert len(notes) == 2 and len(inner) == 1, (notes, inner)
    assert notes[0].startswith(f"{sparse}: camera field(s) not given, defaults used")
    assert "camera.em_gain 300" in notes[0] and "camera.baseline 100 ADU" in notes[0], notes[0]
    assert notes[1].startswith(f"{cam}: camera field(s) not given") and "em_gain" not in notes[1], notes[1]
    assert inner == [notes[1]]
    assert config_io._noted == noted  # not recorded as given
    with pytest.warns(CameraDefaultsWarning, match="defaults used") as caught:  # outside: warned, as always
        load_config(sparse)
    assert [str(w.message) for w in caught] == [notes[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(sparse)  # once per process, as before


def test_the_submission_check_warns_of_nothing_and_keeps_no_note(http, service):  # noqa: F811
    """A configuration with camera fields left out is accepted at submission without a warning on the server and with
    no note kept for the server's lifetime; config_inputs no longer touches the module's private note set."""
    from plexloc.service import config_inputs

    assert "_noted" not in config_inputs.__dict__ and "._noted" not in Path(config_inputs.__file__).read_text()
    tok = service.user_token
    data = yaml.safe_dump({**GOOD, "camera": {"kind": "emccd"}}).encode()
    r = http.post("/api/v1/files", json={"name": "sparse.yaml", "size": len(data)}, headers=auth(tok))
    up = r.json()
    assert http.put(up["upload_url"], content=data).status_code == 200
    fid = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(tok)).json()["id"]
    noted = set(config_io._noted)
    r = http.post("/api/v1/jobs", json={"application": "plexloc-simulate", "inputs": {"config": [fid]}},
                  headers=auth(tok))
    assert r.status_code == 201, r.text
    assert config_io._noted == noted


# -- a re-run checks its inputs as a submission does --------------------------------------------------------------------
#: writes out.yaml (a configuration with px_size_nm "100 nm": it cannot load) into its output folder
MAKER = textwrap.dedent("""
    import pathlib, sys
    mode, out = sys.argv[1], pathlib.Path(sys.argv[2])
    (out / "out.yaml").write_text(pathlib.Path(mode).read_text())
""")


def test_a_rerun_of_a_job_whose_configuration_cannot_load_is_refused_like_a_submission(tmp_path):
    """A simulate job whose configuration is another job's output (not checked at submission: it was still to come)
    fails on the worker: that output cannot load. Its re-run takes the output's file, now there. Before: the re-run
    was queued (201) and failed on a worker again. After: 422 as at submission, naming the slot, the file and the
    field; no job queued. A re-run of a job whose configuration loads is still queued."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "px_size_nm": "100 nm"}))
    svc = make_service(tmp_path, apps_dirs=[ticker_app(tmp_path / "apps"),
                                            script_app(tmp_path / "maker", MAKER, name="maker", outputs=("*.yaml",))])
    with LiveServer(svc.app) as srv, Client(srv.url, svc.user_token) as c:
        with AgentThread(srv.url, svc.worker_token):
            maker = c.submit("maker", entry_point="run", config={"mode": str(bad)})
            sim = c.submit("plexloc-simulate", config={"frames": 2}, inputs={"config": [f"job:{maker['id']}/out.yaml"]})
            failed = c.wait(sim["id"], timeout=120)
        assert c.job(maker["id"])["state"] == "succeeded"
        assert failed["state"] == "failed" and "px_size_nm" in (failed["error"] or ""), failed
        jobs_before = {j["id"] for j in c._get("/jobs")}
        with httpx.Client(base_url=srv.url, timeout=30) as h:
            r = h.post(f"/api/v1/jobs/{sim['id']}/rerun", headers=auth(svc.user_token))
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["field"] == "inputs.config", body
            assert "(out.yaml)" in body["detail"] and "field 'px_size_nm'" in body["detail"], body
            assert "'100 nm'" in body["detail"] and "plexloc-check-" not in body["detail"], body
            assert {j["id"] for j in c._get("/jobs")} == jobs_before  # nothing queued
            # a job whose inputs load is re-run as before
            ok = c.submit("ticker", entry_point="tick", config={"n": 1})
            r = h.post(f"/api/v1/jobs/{ok['id']}/rerun", headers=auth(svc.user_token))
            assert r.status_code == 201 and r.json()["rerun_of"] == ok["id"], r.text
    svc.app.state.engine.dispose()


def test_a_rerun_refuses_what_a_submission_refuses_under_todays_rules(http, service):  # noqa: F811
    """A job accepted before its configuration was checked (an older server: here written to the database directly,
    as ops.submit does without the route's checks) is re-run only if its configuration loads today."""
    from plexloc.service import jobs as ops
    from plexloc.service.db import User

    tok = service.user_token
    data = b"kind: emccd\nqe: 1.5\n"
    up = http.post("/api/v1/files", json={"name": "cam.yaml", "size": len(data)}, headers=auth(tok)).json()
    assert http.put(up["upload_url"], content=data).status_code == 200
    cam = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(tok)).json()["id"]
    movie = b"II*\x00" + bytes(60)
    up = http.post("/api/v1/files", json={"name": "m.tif", "size": len(movie)}, headers=auth(tok)).json()
    assert http.put(up["upload_url"], content=movie).status_code == 200
    mov = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(tok)).json()["id"]
    up = http.post("/api/v1/files", json={"name": "model.pt", "size": 3}, headers=auth(tok)).json()
    assert http.put(up["upload_url"], content=b"abc").status_code == 200
    model = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(tok)).json()["id"]
    with service.sessions().begin() as s:
        user = s.query(User).filter_by(name="alice").one()
        old = ops.submit(s, user, service.app.state.registry, ops.JobRequest(
            application="plexloc-fit", entry_point="fit", inputs={"movie": [mov], "model": [model], "camera": [cam]}),
            max_attempts=1)
        s.flush()
        old_id = old.id
    r = http.post(f"/api/v1/jobs/{old_id}/rerun", headers=auth(tok))
    assert r.status_code == 422 and r.json()["field"] == "inputs.camera", r.text
    assert "(cam.yaml)" in r.json()["detail"] and "field 'qe'" in r.json()["detail"] and "1.5" in r.json()["detail"]
    assert [j["id"] for j in http.get("/api/v1/jobs", headers=auth(tok)).json()] == [old_id]


# -- a failed attempt's report ------------------------------------------------------------------------------------------
def _noting_fit(rows: int = 300):
    """test_process40's fake fit, with the saturated-rows note that names the table (as workflow._fit words it)."""
    from test_process40 import _fake_fit

    base = _fake_fit(rows)

    def fit(acq, folder, options, progress):
        out = base(acq, folder, options, progress)
        out["notes"] = [f"3 rows touch pixels clipped; plexloc filter {folder.parent / acq.name / 'locs.csv'} --out "
                        "OUT --no-saturated drops them"]
        return out
    return fit


def test_a_failed_attempts_report_says_it_failed_and_names_its_own_table(tmp_path, monkeypatch, capsys):
    """plexloc process (a plexloc-process job runs it) fails in a step after the report (here the image). Before, the
    attempt's report.html read as a complete result, and beside an earlier result (NAME.failed) its note named
    `plexloc filter a/locs.csv`: the earlier result's table, which this attempt never wrote. Now the page's title says
    "(failed)", a section under it gives the error and the files the folder holds, and the note names
    a.failed/locs.csv; the earlier result's report is untouched. A failure before the report writes none, and the
    command's reminder of the fit's notes no longer points at a report.html that is not there."""
    import re as _re

    import plexloc.workflow as workflow
    from plexloc.cli.main import main
    from test_process40 import EXAMPLES, _movie

    out, movie = tmp_path / "out", _movie(tmp_path / "a.tif")
    argv = ["process", str(movie), "--method", "mle", "--config", str(EXAMPLES / "2d_gaussian.yaml"), "--out",
            str(out), "--no-drift", "--input-names", "file-name"]
    monkeypatch.setattr(workflow, "_fit", _noting_fit())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example configuration's camera defaults
        assert main(argv) == 0
    earlier = (out / "a" / "report.html").read_text(encoding="utf-8")

    def broken_render(*a, **k):
        raise ValueError("render broke")

    monkeypatch.setattr(workflow, "_render", broken_render)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 1
    assert "(also in its report.html and summary.json)" in capsys.readouterr().err  # it has one
    assert (out / "a" / "report.html").read_text(encoding="utf-8") == earlier
    page = (out / "a.failed" / "report.html").read_text(encoding="utf-8")
    assert "<title>plexloc process: a (failed)</title>" in page and "<h1>plexloc process: a (failed)</h1>" in page
    error = "image: ValueError: render broke (the earlier result in a is kept; this attempt is a.failed)"
    assert (out / "a.failed" / "FAILED.txt").read_text() == error + "\n"
    assert f"<h2>This attempt failed</h2><p class=\"na\">{error}</p>" in page, page[:2000]
    assert ("this folder holds FAILED.txt, locs.csv, merged.csv, report.html, summary.json only" in page)
    assert sorted(p.name for p in (out / "a.failed").iterdir()) == [
        "FAILED.txt", "locs.csv", "merged.csv", "report.html", "summary.json"]
    assert "plexloc filter a.failed/locs.csv --out OUT" in page and "plexloc filter a/locs.csv" not in page
    assert page.index("This attempt failed") < page.index("<h2>Summary</h2>")
    assert "(failed)" not in earlier and "This attempt failed" not in earlier
    # a failure before the report: none written, and the reminder says where the notes are
    import plexloc.post.merge as merge

    def broken_merge(*a, **k):
        raise ValueError("merge broke")

    monkeypatch.setattr(merge, "merge_localizations", broken_merge)
    shutil_out = out / "a.failed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert not (shutil_out / "report.html").exists()
    assert "note(s) on the fit above (also in its summary.json)" in err, err
    assert _re.search(r"report\.html", err) is None, err
