"""Second known-answer review of the job service: failure injection on loopback (a live server, real worker agents,
real subprocesses), each test a defect the first review left."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from service_support import (  # noqa: F401 (fixtures)
    LiveServer, all_log_lines, auth, fresh_postgres_db, gone_within, http, live, make_service, postgres_server,
    quick_kill_agent, script_app, service, ticker_app, wait_for_stage,
)

from plexloc.service import jobs as ops
from plexloc.service import transfer
from plexloc.service.client import Client

#: one test application, its behaviour chosen by the ``mode`` parameter
SCRIPT = r'''
import os, pathlib, signal, subprocess, sys, time
mode, out, arg = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
if mode == "background":  # leaves a child in the background, holding the output pipe, and exits 0
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("child", p.pid, flush=True)
elif mode == "stubborn":  # a child that ignores SIGTERM; the command itself stops on SIGTERM
    p = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    print("child", p.pid, flush=True)
    for i in range(600):
        print(f"PLEXLOC_PROGRESS {(i + 1) / 600:.3f}", flush=True)
        time.sleep(0.1)
elif mode == "flood":  # many lines at once
    sys.stdout.write("".join(f"line {i}\n" for i in range(int(arg))))
elif mode == "binary":  # MBs of bytes with no line end, then a line
    for _ in range(int(arg)):
        sys.stdout.buffer.write(b"\0" * 65536)
    sys.stdout.buffer.write(b"\nend\n")
elif mode == "files":  # several outputs
    for i in range(int(arg)):
        (out / f"part{i}.txt").write_text(str(i))
sys.stdout.flush()
(out / "done.txt").write_text("ok")
'''


def _env(tmp_path, lease_s: float):
    svc = make_service(tmp_path, lease_s=lease_s, sweep_interval_s=0.2,
                       apps_dirs=[ticker_app(tmp_path / "apps"), script_app(tmp_path / "scr", SCRIPT, name="scr")])
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        yield svc, live, client


@pytest.fixture
def env(tmp_path):
    yield from _env(tmp_path, 1.5)


@pytest.fixture
def env_long_lease(tmp_path):
    """As ``env`` with a 10 s lease: for tests about something else than the lease, which a busy machine (a ping
    sending 20,000 lines late by over 1.5 s) must not turn into a lapsed lease and a second run of the job."""
    yield from _env(tmp_path, 10.0)


def _child_pid(c: Client, job_id: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for x in c.log(job_id)["lines"]:
            if x["line"].startswith("child "):
                return int(x["line"].split()[1])
        time.sleep(0.05)
    raise AssertionError("the job never printed its child's pid")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_background_child_of_a_finished_command_is_ended_not_waited_for(env, tmp_path):
    """Before: a command that exits 0 leaving a child in the background (holding the output pipe) kept the worker
    waiting for that child (the job ``running`` for as long as the child lived: 60 s here) and the child ran on,
    unseen. After: the job succeeds at once and the child is gone."""
    svc, live, c = env
    with quick_kill_agent(live.url, svc.worker_token, work_dir=tmp_path):
        job = c.submit("scr", config={"mode": "background"})
        pid = _child_pid(c, job["id"])
        try:
            j = c.wait(job["id"], timeout=15)
            assert j["state"] == "succeeded", j
        finally:
            assert gone_within(pid) is not None, "the job's background child still runs"
    assert not list(tmp_path.glob("plexloc-job-*")), "work folder left behind"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_cancelled_job_leaves_no_process_that_ignored_sigterm(env, tmp_path):
    """Before: on cancel the command's group got SIGTERM; the command stopped, so no SIGKILL followed, and its child
    that ignores SIGTERM ran on as an orphan. After: the job is cancelled, the child killed, the work folder gone."""
    svc, live, c = env
    with quick_kill_agent(live.url, svc.worker_token, work_dir=tmp_path):
        job = c.submit("scr", config={"mode": "stubborn"})
        pid = _child_pid(c, job["id"])
        try:
            c.cancel(job["id"])
            j = c.wait(job["id"], timeout=20)
            assert j["state"] == "cancelled", j
        finally:
            assert gone_within(pid) is not None, "a process of the cancelled job still runs"
    assert not list(tmp_path.glob("plexloc-job-*")), "work folder left behind"


def test_a_job_printing_many_lines_at_once_loses_none_of_them(env_long_lease):
    """20,000 lines printed at once. Before: the server kept the first 1,000 of each ping and dropped the rest
    without a word (999 of 20,000 in the log). After: every line, in order."""
    svc, live, c = env_long_lease
    with quick_kill_agent(live.url, svc.worker_token):
        job = c.submit("scr", config={"mode": "flood", "arg": "20000"})
        assert c.wait(job["id"], timeout=60)["state"] == "succeeded"
    lines = [x for x in all_log_lines(c, job["id"]) if x.startswith("line ")]
    assert lines == [f"line {i}" for i in range(20000)]


def test_the_server_says_when_it_leaves_log_lines_out(service):  # noqa: F811
    """A request with more lines than the server stores (a worker of another kind): the log says how many were left
    out, and a line longer than the limit says it was cut."""
    from sqlalchemy import select

    from plexloc.service.db import Job, JobLog, User

    with service.sessions().begin() as s:
        user = s.scalar(select(User).where(User.name == "alice"))
        job = ops.submit(s, user, service.app.state.registry, ops.JobRequest(application="ticker", entry_point="tick"))
        s.flush()
        ops.add_log(s, job, [f"l{i}" for i in range(ops.MAX_LOG_LINES_PER_PING + 500)] + ["x" * 10_000])
        s.flush()
        lines = s.scalars(select(JobLog.line).where(JobLog.job_id == job.id).order_by(JobLog.id)).all()
        assert isinstance(s.get(Job, job.id), Job)
    assert lines[: ops.MAX_LOG_LINES_PER_PING] == [f"l{i}" for i in range(ops.MAX_LOG_LINES_PER_PING)]
    assert len(lines) == ops.MAX_LOG_LINES_PER_PING + 1 and "501 more log line(s)" in lines[-1]
    ops_line = "y" * (ops.MAX_LOG_LINE + 10)
    with service.sessions().begin() as s:
        ops.add_log(s, s.get(Job, job.id), [ops_line])
        s.flush()
        last = s.scalars(select(JobLog.line).where(JobLog.job_id == job.id).order_by(JobLog.id.desc())).first()
    assert last.startswith("y" * ops.MAX_LOG_LINE) and last.endswith("[... 10 characters cut]")


def test_binary_output_without_line_ends_keeps_the_lease(env):
    """32 MB of NUL bytes without a line end. Before: the worker re-split its ever growing buffer at every read
    (quadratic), its pings starved, the lease (1.5 s) lapsed and the job was taken from it. After: succeeded on
    attempt 1, the long line cut and said so, the line after it logged."""
    svc, live, c = env
    with quick_kill_agent(live.url, svc.worker_token):
        job = c.submit("scr", config={"mode": "binary", "arg": "512"})
        j = c.wait(job["id"], timeout=60)
    assert j["state"] == "succeeded" and j["attempts"] == 1, j
    lines = all_log_lines(c, job["id"])
    assert "end" in lines
    assert any("bytes cut]" in x or "characters cut]" in x for x in lines)
    assert not any("lease" in x for x in lines)


def test_nul_characters_in_a_log_or_error_do_not_break_postgresql(tmp_path, postgres_server):  # noqa: F811
    """Binary output holds NUL bytes; PostgreSQL refuses them in text. Before: the ping (and the finish, whose error
    quotes the output) failed with a 500 on PostgreSQL: the lease could not be renewed and the job was lost and
    retried. After: NUL is stored as U+FFFD."""
    svc = make_service(tmp_path, db_url=fresh_postgres_db(postgres_server))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        job = c.submit("ticker", entry_point="tick")
        w = auth(svc.worker_token)
        spec = c.http.post(f"{live.url}/worker/v1/jobs/pull", json={}, headers=w).json()
        h = {**w, "X-Plexloc-Attempt": str(spec["attempt"])}
        r = c.http.post(f"{live.url}/worker/v1/jobs/{job['id']}/ping", json={"stage": "running", "log": ["a\x00b"]},
                        headers=h)
        assert r.status_code == 200, r.text
        r = c.http.post(f"{live.url}/worker/v1/jobs/{job['id']}/finish",
                        json={"state": "failed", "error": "exited: \x00\x01", "log": ["c\x00"]}, headers=h)
        assert r.status_code == 200, r.text
        j = c.job(job["id"])
        assert j["state"] == "failed" and j["error"] == "exited: \ufffd\x01"
        assert {"a\ufffdb", "c\ufffd"} <= {x["line"] for x in c.log(job["id"])["lines"]}
    svc.app.state.engine.dispose()


def test_a_job_cancelled_while_its_outputs_upload_ends_cancelled(env_long_lease, monkeypatch):
    """Before: a cancel that came while the outputs were uploading was ignored: every file went up and the job
    ended ``succeeded``. After: the upload stops at the next file and the job ends ``cancelled``. (A 10 s lease: with
    1.5 s, a loaded machine once let it lapse, and the sweep ended the job "cancelled (the worker stopped answering)";
    what stops the upload is the cancel, not the lease.)"""
    svc, live, c = env_long_lease
    real = transfer.upload

    def slow_upload(*a, **kw):
        time.sleep(0.4)
        return real(*a, **kw)

    monkeypatch.setattr(transfer, "upload", slow_upload)
    with quick_kill_agent(live.url, svc.worker_token):
        job = c.submit("scr", config={"mode": "files", "arg": "20"})
        wait_for_stage(c, job["id"], "uploading")
        c.cancel(job["id"])
        j = c.wait(job["id"], timeout=30)
    assert j["state"] == "cancelled" and "uploading" in j["error"], j
    names = [o["name"] for o in c.outputs(job["id"])]
    assert len([n for n in names if n.startswith("part")]) < 20, names


# -- uploads --------------------------------------------------------------------------------------------------------
def _register(http, token: str, data: bytes, name: str = "movie.tif") -> dict:
    import hashlib

    r = http.post("/api/v1/files", json={"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                  headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def test_an_upload_whose_last_bytes_arrived_but_were_not_moved_in_place_completes(http, service):  # noqa: F811
    """The server stopped (or the client timed out while the checksum was computed) after the last byte was written
    and before the part was moved into place. The client then sees every byte stored (HEAD) and sends none, and asks
    to complete. Before: 422 'upload incomplete: 10 of 10 bytes received', for ever. After: complete and right."""
    import hashlib

    data = b"0123456789"
    up = _register(http, service.user_token, data)
    from plexloc.service.db import File

    store = service.app.state.storage
    with service.sessions().begin() as s:
        key = s.get(File, up["file"]["id"]).storage_key
    part = store.part_path(key)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)  # every byte in the part file, not moved
    head = http.head(up["upload_url"])
    assert head.headers["Upload-Offset"] == "10"
    r = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(service.user_token))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ready" and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    url = http.get(f"/api/v1/files/{up['file']['id']}/download-url", headers=auth(service.user_token)).json()["url"]
    assert http.get(url).content == data
    # a corrupted part is refused, as an upload's is, and removed
    bad = _register(http, service.user_token, data)
    with service.sessions().begin() as s:
        part = store.part_path(s.get(File, bad["file"]["id"]).storage_key)
    part.write_bytes(b"9876543210")
    r = http.post(f"/api/v1/files/{bad['file']['id']}/complete", headers=auth(service.user_token))
    assert r.status_code == 422 and "checksum mismatch" in r.json()["detail"] and not part.exists()


def test_the_upload_url_of_a_deleted_file_stores_nothing(http, service):  # noqa: F811
    """A signed upload URL lives on (an hour) after its file is deleted. Before: a PUT to it stored the bytes under
    the storage folder, owned by no file (never listed, never expired, never deleted). After: 404, nothing stored."""
    data = b"x" * 1000
    up = _register(http, service.user_token, data)
    assert http.delete(f"/api/v1/files/{up['file']['id']}", headers=auth(service.user_token)).status_code == 204
    r = http.put(up["upload_url"] + "&offset=0", content=data)
    assert r.status_code == 404, r.text
    root = service.app.state.storage.root
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_a_pending_output_of_a_job_that_is_over_is_deleted_with_its_data(http, service):  # noqa: F811
    """A worker cut off half-way through uploading an output, and the job ends (here: out of attempts). Before: the
    half output stayed for ever, listed among the user's files as pending, its partial bytes on disk. After: the
    sweeper deletes it and its bytes; completed outputs stay."""
    from sqlalchemy import select

    from plexloc.service.db import File, Job

    w = auth(service.worker_token)
    up = _register(http, service.user_token, b"abc", name="in.yaml")
    http.put(up["upload_url"], content=b"abc")
    job = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"},
                    headers=auth(service.user_token)).json()
    with service.sessions().begin() as s:
        s.get(Job, job["id"]).max_attempts = 1
    spec = http.post("/worker/v1/jobs/pull", json={}, headers=w).json()
    h = {**w, "X-Plexloc-Attempt": str(spec["attempt"])}
    out = http.post(f"/worker/v1/jobs/{job['id']}/outputs", json={"name": "big.bin", "size": 100}, headers=h).json()
    assert http.put(out["upload_url"], content=b"y" * 40).status_code == 200  # 40 of 100 bytes, then cut off
    with service.sessions().begin() as s:
        key = s.get(File, out["file"]["id"]).storage_key
        assert ops.sweep(s, at=time.time() + 1000) == [(job["id"], "failed")]
    part = service.app.state.storage.part_path(key)
    assert part.exists()
    with service.sessions().begin() as s:
        assert ops.expire_uploads(s, service.app.state.storage, max_age_s=7 * 86400.0) == [out["file"]["id"]]
        assert s.scalars(select(File.name).where(File.job_id == job["id"])).all() == []
    assert not part.exists()
    files = http.get("/api/v1/files", headers=auth(service.user_token)).json()
    assert [f["name"] for f in files] == ["in.yaml"]
