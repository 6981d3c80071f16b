"""Review of the job service's session-49 changes (submit --wait's stop, upload reuse, the worker's re-read of the
server's applications, a job's warnings over attempts): each test fails on the code before its fix (ed65fad)."""

from __future__ import annotations

import threading
import time

import httpx
from service_support import AgentThread, LiveServer, auth
from test_service49 import svc  # noqa: F401  (the service with the warner application: a fixture)

from plexloc.cli.main import main
from plexloc.service.client import Client


def test_submit_wait_takes_a_worker_started_a_moment_after_the_job(svc, capsys):  # noqa: F811
    """``plexloc worker ... &`` then ``plexloc submit ... --wait`` (a script, a worker started for the job): the
    worker is seen only at its first pull, after its start-up, and --wait stopped at its first poll (exit 3, "no
    worker has asked for jobs"), the job then run by the worker with no one waiting. Now the note must hold for
    STOP_AFTER_S (30 s) before --wait stops: said at once as a warning, and the wait goes on to the job's end."""
    with LiveServer(svc.app) as live:
        done: list[int] = []
        t = threading.Thread(target=lambda: done.append(main(["submit", "warner", "--server", live.url, "--token",
                                                              svc.user_token, "--entry", "run", "--wait"])), daemon=True)
        t.start()
        time.sleep(3.0)  # the worker's start-up
        with AgentThread(live.url, svc.worker_token):
            t.join(timeout=40)
        assert done == [0], done
        cap = capsys.readouterr()
        assert cap.out.splitlines()[1] == "succeeded", cap.out
        assert "no worker has asked for jobs in the last 10 min" in cap.err and "waiting 30 s for a worker" in cap.err
        assert "Stopped waiting" not in cap.err, cap.err


def test_a_file_whose_stored_bytes_are_gone_is_uploaded_again(svc, tmp_path, capsys):  # noqa: F811
    """Upload reuse (same name and SHA-256) gave a job a file whose bytes had been lost from the store since: the job
    failed on its worker ("TransferError: download of cfg.yaml refused (404)"), where the submission before reuse
    uploaded it again and ran. The server now leaves such a file out of ``GET /files?sha256=``; submit uploads it."""
    from plexloc.service.db import File

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("a: 1\n")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        common = ["--server", live.url, "--token", svc.user_token, "--entry", "run", "--input", f"camera={cfg}"]
        assert main(["submit", "warner", *common]) == 0
        first = c.files(kind="upload")[0]
        with svc.sessions().begin() as s:
            svc.app.state.storage.delete(s.get(File, first["id"]).storage_key)
        assert main(["submit", "warner", *common]) == 0
        assert "already on the server" not in capsys.readouterr().err
        second = c.jobs()[0]["inputs"]["camera"][0]
        assert second != first["id"]
        assert main(["submit", "warner", *common]) == 0  # the new upload's bytes are there: used again
        assert "already on the server (file:" + second in capsys.readouterr().err
        with AgentThread(live.url, svc.worker_token):
            assert c.wait(c.jobs()[0]["id"], timeout=30)["state"] == "succeeded"


def test_a_worker_keeps_taking_jobs_when_reading_the_applications_again_fails(svc):  # noqa: F811
    """The worker's 5-minute re-read of the server's applications raised out of its pull: a failed re-read (the
    server busy, a 500 of /applications) stopped it taking any job (logged as an outage), and an entry point it cannot
    read (a newer server's key: its strict model refuses it) ended the worker with a ValidationError. Now the list read
    before serves on, and an unreadable entry point is left out alone."""
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000), poll_s=0.05)
        try:
            before = agent.can_run()
            assert {"application": "warner", "version": "1", "entry_point": "run"} in before
            agent.can_run_refresh_s = 0.0
            real_get = agent.http.get

            def down(url, *a, **kw):
                if url == "/applications":
                    raise httpx.ConnectError("connection refused")
                return real_get(url, *a, **kw)

            agent.http.get = down
            job = c.submit("warner", entry_point="run")
            spec = agent.pull()
            assert spec is not None and spec["job_id"] == job["id"], spec

            def newer(url, *a, **kw):
                r = real_get(url, *a, **kw)
                if url != "/applications":
                    return r
                apps = r.json()
                for app in apps:
                    if app["name"] == "ticker":
                        for ver in app["versions"].values():
                            for ep in ver["entry_points"].values():
                                ep["a_key_of_a_newer_server"] = 1
                return httpx.Response(200, json=apps, request=r.request)

            agent.http.get = newer
            now = agent.can_run()
            assert {"application": "warner", "version": "1", "entry_point": "run"} in now
            assert not any(t["application"] == "ticker" for t in now), now
        finally:
            agent.close()


def test_warnings_of_a_lapsed_attempt_are_not_counted_with_the_one_that_succeeded(svc):  # noqa: F811
    """A job whose first worker died after two warnings ran again and succeeded with one: it said "succeeded with 3
    warnings", two of them the lapsed attempt's (count and texts kept over attempts). Now each attempt starts its
    count at claim, and the texts are those after the last claim."""
    from sqlalchemy import select

    from plexloc.service import jobs as ops
    from plexloc.service.db import Job

    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        job = http.post("/api/v1/jobs", json={"application": "warner", "entry_point": "run"},
                        headers=auth(svc.user_token)).json()
        w = auth(svc.worker_token)
        pull = {"hardware": {"cpus": 2, "memory_mb": 8000}}
        assert http.post("/worker/v1/jobs/pull", json=pull, headers=w).json()["job_id"] == job["id"]
        assert http.post(f"/worker/v1/jobs/{job['id']}/ping", headers={**w, "X-Plexloc-Attempt": "1"},
                         json={"stage": "running", "log": ["plexloc fit: warning: first a", "warning: first b"]}
                         ).status_code == 200
        with svc.sessions().begin() as s:  # the worker died: its lease lapses, the job goes back to the queue
            s.get(Job, job["id"]).lease_expires_at = 0.0
            ops.sweep(s)
        assert http.get(f"/api/v1/jobs/{job['id']}", headers=auth(svc.user_token)).json()["state"] == "queued"
        assert http.post("/worker/v1/jobs/pull", json=pull, headers=w).json()["job_id"] == job["id"]
        assert http.post(f"/worker/v1/jobs/{job['id']}/ping", headers={**w, "X-Plexloc-Attempt": "2"},
                         json={"stage": "running", "log": ["tick", "warning: second"]}).status_code == 200
        got = http.get(f"/api/v1/jobs/{job['id']}", headers=auth(svc.user_token)).json()
        listed = [j for j in http.get("/api/v1/jobs", headers=auth(svc.user_token)).json() if j["id"] == job["id"]]
        assert (got["warning_count"], got["warnings"]) == (1, ["second"]), got
        assert listed[0]["warning_count"] == 1
        with svc.sessions().begin() as s:
            assert s.scalar(select(Job.warning_count).where(Job.id == job["id"])) == 1
