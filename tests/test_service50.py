"""The job service's leftovers of session 49 and a facility admin's walk (session 50): each test fails on the code
before its fix."""

from __future__ import annotations

import time

import numpy as np
from service_support import AgentThread, LiveServer, make_service
from test_service49 import warner_app

from plexloc.cli.main import main
from plexloc.service.client import Client


def test_submit_says_what_it_attaches_on_stderr_and_prints_the_job_id_alone(tmp_path, capsys):
    """``J=$(plexloc submit plexloc-simulate --input config=sim.yaml)``: the "attaching gain.npy ..." lines the
    configuration's maps brought were on stdout, and J held them before the id. Now stdout is the id alone."""
    svc = make_service(tmp_path)
    try:
        np.save(tmp_path / "gain.npy", np.full((8, 8), 0.5))
        cfg = tmp_path / "cam.yaml"
        cfg.write_text("px_size_nm: 100\nframe_size: [8, 8]\npsf: {kind: gaussian}\n"
                       "camera: {kind: scmos, e_per_adu: gain.npy, read_variance: gain.npy}\n")
        with LiveServer(svc.app) as live:
            assert main(["submit", "plexloc-simulate", "--server", live.url, "--token", svc.user_token,
                         "--input", f"config={cfg}"]) == 0
            cap = capsys.readouterr()
            with Client(live.url, svc.user_token) as c:
                (job,) = c.jobs()
        assert cap.out == job["id"] + "\n", cap.out
        assert cap.err.count("attaching") == 1 and "gain.npy to input files (named by" in cap.err, cap.err
    finally:
        svc.app.state.engine.dispose()


def test_the_mail_says_the_error_and_the_warnings_in_the_service_words(tmp_path):
    """A job's mail named its program's options ("give the movie's camera with --camera CAMERA.yaml", "check the
    camera (--camera ...) and the detection --threshold") where ``plexloc status`` says how a job gets them
    (``--input camera=CAMERA.yaml``, ``--set threshold=VALUE``). Now the mail says what status says."""
    from sqlalchemy import select

    from plexloc.service import admin
    from plexloc.service.db import Outbox

    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    try:
        with svc.sessions().begin() as s:
            _, token = admin.create_user(s, "carol", email="carol@example.org")
        with LiveServer(svc.app) as live, AgentThread(live.url, svc.worker_token), Client(live.url, token) as c:
            ok = c.submit("warner", entry_point="run")
            bad = c.submit("warner", entry_point="run", config={"mode": "fail"})
            said = {j: c.wait(j, timeout=30) for j in (ok["id"], bad["id"])}
        with svc.sessions().begin() as s:
            mails = {row.subject.split()[2]: row.body for row in s.scalars(select(Outbox))}
        assert said[ok["id"]]["state"] == "succeeded" and said[bad["id"]]["state"] == "failed", said
        body = mails[ok["id"]]
        for w in said[ok["id"]]["warnings"]:  # each warning as the job's answer (plexloc status) says it
            assert f"\n- {w}" in body, (w, body)
        assert "check the camera (--input camera=FILE, or the model's) and the detection --set threshold=VALUE" in body
        assert "--camera" not in body and "--threshold" not in body, body
        body = mails[bad["id"]]
        assert said[bad["id"]]["error"] in body and "give the movie's camera with --input camera=CAMERA.yaml" in body
        assert "--camera" not in body, body
    finally:
        svc.app.state.engine.dispose()


def _old_database(tmp_path, lines_of: dict[str, list[str]]):
    """A database at revision 0005 holding succeeded jobs (2 attempts) with the log ``lines_of[job id]``; returns
    (engine, cfg)."""
    from service_support import database_at_0005

    return database_at_0005(tmp_path / "old.db", lines_of, attempts=2)


def test_the_upgrade_counts_an_old_jobs_warnings_as_a_new_jobs_are_counted(tmp_path):
    """Migration 0006 counted an old job's warnings with SQL LIKE over all its attempts (a lapsed attempt's warnings
    too, and ``plexloc fit: WARNING:`` in SQLite, which LIKE compares without case), while a new job's are counted as
    its lines are stored, the last attempt's only, by regular expression: the list said 5 warnings where the job's
    answer listed 2. Now the upgrade counts as the server does (``words.warning_counts``, which the server's own
    count agrees with)."""
    from alembic import command
    from sqlalchemy import select, text

    from plexloc.service import jobs as ops
    from plexloc.service.db import Job, User
    from plexloc.service.words import CLAIMED, warning_counts

    lines = [f"{CLAIMED}w1 (attempt 1)", "plexloc fit: warning: first attempt", "x.py:1: UserWarning: lapsed",
             f"{CLAIMED}w2 (attempt 2)", "plexloc fit: WARNING: not a warning the server counts",
             "plexloc fit: warning: a", "tick", "warning: b"]
    engine, cfg = _old_database(tmp_path, {"a": lines, "b": ["tick"]})
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        counts = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    engine.dispose()
    assert counts == {"a": 2, "b": 0}, counts
    # the server's own count of the same lines, stored as a job runs (a claim starts it again)
    svc = make_service(tmp_path / "new")
    try:
        with svc.sessions().begin() as s:
            job = ops.submit(s, s.scalar(select(User).where(User.name == "alice")), svc.app.state.registry,
                             ops.JobRequest("ticker", entry_point="tick"))
            s.flush()
            for line in lines:
                if line.startswith(CLAIMED):
                    job.warning_count = 0  # as a claim does (jobs.claim)
                ops.add_log(s, job, [line])
            assert job.warning_count == 2
            assert warning_counts(s, [job.id]) == {job.id: 2} and warning_counts(s) == {job.id: 2}
            assert s.get(Job, job.id).warning_count == 2
    finally:
        svc.app.state.engine.dispose()


def test_a_worker_busy_through_a_server_restart_reads_the_new_applications_at_once(tmp_path):
    """The admin restarted the server with an application added while a worker ran a long job: the worker never saw
    the server down (its pings went on, or were retried), so it kept the list of what it can run read before, and
    the new application's jobs waited up to 5 minutes (``can_run_refresh_s``). Now every pull's answer names the
    server's registry, and a worker whose list was read under another reads it again at once."""
    from service_support import script_app

    from plexloc.service.apps import Registry

    svc = make_service(tmp_path)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token) as agent:
                assert agent.can_run_refresh_s == 300.0  # the default: not shortened here
                long = c.submit("ticker", entry_point="tick", config={"n": 4, "dt": 0.3})
                deadline = time.monotonic() + 20
                while c.job(long["id"])["state"] != "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                apps = script_app(tmp_path / "later", "import sys; open(sys.argv[2] + '/a.txt', 'w').write('a')",
                                  name="later")
                svc.app.state.registry = Registry.load(list(svc.settings.apps_dirs) + [apps])  # as a restart does
                job = c.submit("later", entry_point="run", config={"mode": "x"})
                t0 = time.monotonic()
                assert c.wait(long["id"], timeout=30)["state"] == "succeeded"
                assert c.wait(job["id"], timeout=15)["state"] == "succeeded"
                took = time.monotonic() - t0
        assert took < 15, took
    finally:
        svc.app.state.engine.dispose()


def test_a_pipeline_input_is_checked_against_the_columns_its_producer_declares(tmp_path):
    """``comet --input locs=job:FIT/locs.csv``: the check of a CSV input's columns (session 49) read only uploaded
    files, so a fit's plexloc table for COMET waited for the fit, then failed on a worker with pandas' KeyError. Now the
    producing entry point's declared output columns (plexloc's tables: frame, x_nm, y_nm, z_nm, photons) are checked
    at submission (422, naming the job's output, its columns, those missing and the conversion); an output whose
    producer declares none is accepted as before."""
    from plexloc.service.client import ServiceError

    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    movie, model = tmp_path / "m.tif", tmp_path / "model.pt"
    movie.write_bytes(b"II*\x00" + bytes(60))
    model.write_bytes(b"not read")
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            fit = c.submit("plexloc-fit", entry_point="fit",
                           inputs={"movie": [c.upload(movie)["id"]], "model": [c.upload(model)["id"]]})
            try:
                c.submit("comet", inputs={"locs": [f"job:{fit['id']}/locs.csv"]})
                raise AssertionError("accepted")
            except ServiceError as err:
                assert err.status == 422, err
                detail = str(err.detail)
            assert detail.startswith(f"inputs.locs: job:{fit['id']}/locs.csv (an output of plexloc-fit fit, whose "
                                     "columns are frame, x_nm, y_nm, z_nm, photons) lacks the column(s) 'x [nm]', "
                                     "'y [nm]' that comet drift reads; COMET reads ThunderSTORM's CSV"), detail
            assert [j["id"] for j in c.jobs()] == [fit["id"]]  # refused: not queued to wait for the fit
            other = c.submit("warner", entry_point="run")  # its locs.csv declares no columns: not judged here
            assert c.submit("comet", inputs={"locs": [f"job:{other['id']}/locs.csv"]})["state"] == "queued"
    finally:
        svc.app.state.engine.dispose()


def test_a_reused_file_removed_meanwhile_is_uploaded_again_not_refused(tmp_path, capsys, monkeypatch):
    """Two submissions of the same configuration at once: B reuses the file A uploaded, A's job is refused and A's
    clean-up deletes its upload before B's job is created: B was refused ("no file ID") for a file its user gave.
    Now B uploads it again and its job is submitted, with the new file."""
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("a: 1\n")
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as other:
            first = other.upload(cfg)  # submission A's upload, about to be removed by its clean-up
            real = Client.upload

            def upload_then_a_cleans_up(self, path, **kw):
                f = real(self, path, **kw)
                if f.get("reused"):
                    other.delete_file(f["id"])  # A, refused, removes its upload while B goes on
                return f

            monkeypatch.setattr(Client, "upload", upload_then_a_cleans_up)
            code = main(["submit", "warner", "--server", live.url, "--token", svc.user_token, "--entry", "run",
                         "--input", f"camera={cfg}"])
            cap = capsys.readouterr()
            assert code == 0, cap.err
            (job,) = other.jobs()
            (f,) = other.files(kind="upload")
        assert cap.out == job["id"] + "\n", cap.out
        assert job["inputs"]["camera"] == [f["id"]] and f["id"] != first["id"], (job, f)
        assert f"file:{first['id']} was removed from the server meanwhile" in cap.err, cap.err
    finally:
        svc.app.state.engine.dispose()


def test_the_web_page_uses_a_file_already_on_the_server_instead_of_uploading_it_again(tmp_path):
    """The web page uploaded a file each time it was chosen (the command line uses the copy already in the user's
    space: same name and SHA-256). Now the page hashes it (crypto.subtle), asks the server, and says it is there;
    a changed file is uploaded."""
    import pytest

    from service_support import chromium_executable, signed_in_page

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = chromium_executable()
    if chromium is None:
        pytest.skip("no chromium executable")
    svc = make_service(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello from the browser\n")
    try:
        with LiveServer(svc.app) as live, sync_api.sync_playwright() as pw, Client(live.url, svc.user_token) as c:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = signed_in_page(browser, live.url, svc.user_token)
                statuses = []
                for text in ("hello from the browser\n", None, "changed\n"):
                    if text is not None:
                        notes.write_text(text)
                    page.set_input_files("#file-input", [])
                    page.set_input_files("#file-input", str(notes))
                    page.evaluate("document.querySelector('#upload-status').textContent = ''")
                    page.click("#upload")
                    page.wait_for_function("() => /notes.txt: (uploaded|already)/.test("
                                           "document.querySelector('#upload-status').textContent)")
                    statuses.append(page.inner_text("#upload-status"))
            finally:
                browser.close()
            uploads = c.files(kind="upload")
        assert statuses[0] == "notes.txt: uploaded" and statuses[2] == "notes.txt: uploaded", statuses
        assert statuses[1].startswith("notes.txt: already on the server (file:"), statuses
        assert len(uploads) == 2 and {f["size"] for f in uploads} == {23, 8}, uploads
    finally:
        svc.app.state.engine.dispose()


def test_a_full_store_makes_the_job_wait_for_space_and_tells_the_admin(tmp_path, caplog):
    """The store's disk filled while a training ran: its model's upload was refused (507) and the job failed at its
    end, the model lost, while the server's own log said nothing to its administrator. Now the worker waits for the
    space (as for a store outage, up to ``storage_wait_s``), saying so in the job's log, and the server logs a warning
    naming the file, its size and the bytes free; once space is freed the job succeeds with its outputs."""
    import logging

    svc = make_service(tmp_path)
    store = svc.app.state.storage
    real, refused = store.free_bytes, []

    def full():
        if len(refused) < 2:
            refused.append(1)
            return 0
        return real()

    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, storage_wait_s=60):
                store.free_bytes = full  # the disk full from the job's start on, freed after two refusals
                with caplog.at_level(logging.WARNING, logger="plexloc.service"):
                    job = c.submit("ticker", entry_point="tick", config={"n": 2})
                    done = c.wait(job["id"], timeout=60)
            lines = [x["line"] for x in c.log(job["id"])["lines"]]
            names = sorted(o["name"] for o in c.outputs(job["id"]))
        assert done["state"] == "succeeded", done["error"]
        assert names == ["log.txt", "ticks.txt"], names
        waits = [x for x in lines if "HTTP 507" in x and "retrying" in x]
        assert len(waits) == 2 and "waiting up to 60 s in all for the space" in waits[0], lines
        said = [r.getMessage() for r in caplog.records if "file store is full" in r.getMessage()]
        assert len(said) == 2 and said[0].startswith("the file store is full: ticks.txt ("), said
    finally:
        svc.app.state.engine.dispose()


def test_serve_logs_with_times_and_without_the_workers_routine_requests(tmp_path):
    """``plexloc serve``'s output: uvicorn's line for every request, one a second for each idle worker's pull (about
    260 lines in 4 minutes with two workers), and the service's own warnings ("job ...: lease lapsed -> queued")
    without a time among them. Now each line has its time and the workers' routine requests that succeed are left
    out (``--log-worker-requests`` keeps them); a user's requests are logged as before."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    from plexloc.service import admin
    from plexloc.service.db import open_database

    data = tmp_path / "data"
    data.mkdir()
    engine, sessions = open_database(f"sqlite:///{data / 'plexloc.db'}")
    with sessions.begin() as s:
        _, user = admin.create_user(s, "alice")
        _, worker = admin.create_worker(s, "w1")
    engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "plexloc.cli.main", "serve", "--data-dir", str(data), "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        with AgentThread(url, worker, poll_s=0.1):
            time.sleep(2.0)  # about 20 pulls
        httpx.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {user}"}, timeout=10)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    lines = log.read_text().splitlines()
    assert not [x for x in lines if "/worker/v1/jobs/pull" in x], lines
    assert [x for x in lines if '"GET /api/v1/jobs HTTP/1.1" 200' in x], lines
    dated = [x for x in lines if x[:4].isdigit() and x[4] == "-"]
    assert len(dated) == len(lines) - 1 and lines[0].startswith("plexloc service on "), lines


def test_a_pipeline_output_without_the_columns_fails_its_next_job_when_it_is_made(tmp_path):
    """A producer that declares no columns (any application's table): its ``locs.csv`` handed to COMET, whose slot
    reads ThunderSTORM's columns, was found out only when COMET ran (pandas' KeyError on a worker, after the wait).
    Now the header is read when the source succeeds, and the waiting job fails at once, naming the columns missing,
    the file's header and the conversion."""
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", warner_app(tmp_path / "warner")])
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            src = c.submit("warner", entry_point="run")
            comet = c.submit("comet", inputs={"locs": [f"job:{src['id']}/locs.csv"]})
            assert comet["state"] == "queued"  # accepted: its source's columns are not known yet
            with AgentThread(live.url, svc.worker_token):
                assert c.wait(src["id"], timeout=30)["state"] == "succeeded"
                ended = c.wait(comet["id"], timeout=5)
        assert ended["state"] == "failed", ended
        assert ended["error"] == (f"input locs: job {src['id']}'s output locs.csv lacks the column(s) 'x [nm]', 'y [nm]' "
                                  "that comet drift reads (its header: frame, x_nm, y_nm, z_nm, photons); COMET reads "
                                  "ThunderSTORM's CSV: write a plexloc table (frame, x_nm, y_nm) as one with plexloc "
                                  "convert locs.csv locs.thunderstorm.csv, and submit that"), ended["error"]
    finally:
        svc.app.state.engine.dispose()
