"""Defects found by deploying the service as a lab would (session 38): each test fails on the code before its fix."""

from __future__ import annotations

import httpx
import pytest
from service_support import LiveServer, auth, make_service, postgres_server  # noqa: F401 (fixture)

from plexloc.service import jobs as ops
from plexloc.service.apps import Hardware
from plexloc.service.db import File, Job, User, Worker
from sqlalchemy import select

CPU_WORKER = Hardware(cpus=8, memory_mb=16000, gpus=0, gpu_memory_mb=0)  # what `plexloc worker` detects on a CPU box


@pytest.fixture
def svc(tmp_path):
    service = make_service(tmp_path, lease_s=10.0)
    yield service
    service.app.state.engine.dispose()


def _user(session, name="alice") -> User:
    return session.scalar(select(User).where(User.name == name))


def _worker(session, name="w1") -> Worker:
    return session.scalar(select(Worker).where(Worker.name == name))


def test_gpu_entry_point_run_on_cpu_is_claimed_by_a_cpu_worker(svc):
    """plexloc-train's defaults ask one GPU with 8000 MB: a job submitted with ``{"gpus": 0}`` (``plexloc submit
    --gpus 0``, as the README says for a CPU worker) kept the 8000 MB of GPU memory and waited, queued, for ever: no CPU
    worker (0 MB of GPU memory) took it."""
    reg = svc.app.state.registry
    with svc.sessions().begin() as s:
        job = ops.submit(s, _user(s), reg, _train_request(s, svc))
        s.flush()
        assert job.hardware["gpu_memory_mb"] == 0
        can = [("plexloc-train", job.version, "train")]
        got = ops.claim(s, _worker(s), can_run=can, hardware=CPU_WORKER, lease_s=10.0)
        assert got is not None and got.id == job.id


def test_queued_cpu_job_with_gpu_memory_left_in_its_hardware_is_claimed(svc):
    """A job queued before the fix (gpus 0, gpu_memory_mb 8000 in its row) is claimed too: a job with no GPU needs no
    GPU memory."""
    reg = svc.app.state.registry
    with svc.sessions().begin() as s:
        job = ops.submit(s, _user(s), reg, _train_request(s, svc))
        job.hardware = {**job.hardware, "gpu_memory_mb": 8000}
        s.flush()
        got = ops.claim(s, _worker(s), can_run=[("plexloc-train", job.version, "train")], hardware=CPU_WORKER, lease_s=10.0)
        assert got is not None and got.id == job.id


def _train_request(session, svc) -> ops.JobRequest:
    f = File(user_id=_user(session).id, name="train.yaml", size=1, sha256="0" * 64, storage_key="u/x/train", state="ready")
    session.add(f)
    session.flush()
    return ops.JobRequest("plexloc-train", inputs={"config": [f.id]}, hardware={"gpus": 0})


def _output(http, token, job_id, name, data):
    import hashlib

    r = http.post(f"/worker/v1/jobs/{job_id}/outputs", json={"name": name, "size": len(data),
                                                              "sha256": hashlib.sha256(data).hexdigest()},
                  headers=auth(token))
    assert r.status_code == 201, r.text
    up = r.json()
    assert http.put(up["upload_url"], content=data).status_code == 200
    assert http.post(f"/worker/v1/jobs/{job_id}/outputs/{up['file']['id']}/complete", headers=auth(token)).status_code == 200
    return up["file"]


def _pull(http, token):
    return http.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 2, "memory_mb": 8000}}, headers=auth(token))


def test_outputs_of_an_attempt_whose_worker_died_are_not_served(tmp_path):
    """A worker killed (kill -9) after uploading some outputs: its attempt never finished, so those files are partial.
    They were listed as the job's outputs while it waited for its next attempt, and stayed beside that attempt's
    outputs when it did not write the same files (here an optional preview.png): a succeeded job with a stale file.
    The server's own sweeper (lease 2 s) deletes them. (A lease of 0.5 s lapsed once, on an idle 2-core machine in a
    full make test, between the pull and the first output's registration: 403 'does not hold job'.)"""
    import time

    import httpx

    svc = make_service(tmp_path, lease_s=2.0, sweep_interval_s=0.1)
    user = auth(svc.user_token)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "picture"}, headers=user)
        job_id = r.json()["id"]
        assert _pull(http, svc.worker_token).json()["job_id"] == job_id
        stale = _output(http, svc.worker_token, job_id, "preview.png", b"half a picture")
        storage = svc.app.state.storage
        deadline = time.monotonic() + 10
        while http.get(f"/api/v1/jobs/{job_id}", headers=user).json()["state"] != "queued":  # the worker is dead
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.get(f"/api/v1/jobs/{job_id}/outputs", headers=user).json() == []
        assert http.get(f"/api/v1/files/{stale['id']}", headers=user).status_code == 404
        assert not any(p.is_file() for p in storage.root.rglob(f"{stale['id']}*"))  # its bytes too
        log = [x["line"] for x in http.get(f"/api/v1/jobs/{job_id}/log", headers=user).json()["lines"]]
        assert any("1 output(s) of attempt 1 deleted" in line and "preview.png" in line for line in log), log
        assert _pull(http, svc.worker2_token).json()["job_id"] == job_id
        _output(http, svc.worker2_token, job_id, "ticks.txt", b"3")
        assert http.post(f"/worker/v1/jobs/{job_id}/finish", json={"state": "succeeded"},
                         headers=auth(svc.worker2_token)).status_code == 200
        assert [o["name"] for o in http.get(f"/api/v1/jobs/{job_id}/outputs", headers=user).json()] == ["ticks.txt"]
    svc.app.state.engine.dispose()


def test_a_server_restart_longer_than_the_lease_does_not_take_running_jobs_from_their_workers(tmp_path):
    """The server stopped for longer than the lease (a reboot of its machine, an upgrade): no worker could ping, so at
    start its sweeper found every running job's lease lapsed and gave the job to another worker, from the start, while
    the first still ran it (an attempt used up by the server's own outage; the third such restart failed the job,
    "worker stopped answering"). Leases are renewed at start-up."""
    import time

    import httpx

    from plexloc.service.app import create_app

    svc = make_service(tmp_path, lease_s=2.0)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"}, headers=auth(svc.user_token))
        job_id = r.json()["id"]
        assert _pull(http, svc.worker_token).json()["job_id"] == job_id
    svc.app.state.engine.dispose()
    with svc.sessions().begin() as s:  # the server was down 60 s: the lease lapsed long ago
        s.get(Job, job_id).lease_expires_at = time.time() - 60
    app = create_app(svc.settings.model_copy(update={"sweep_interval_s": 0.05}))  # the restarted server
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        time.sleep(0.5)  # ten sweeps
        r = http.post(f"/worker/v1/jobs/{job_id}/ping", json={"stage": "running"}, headers=auth(svc.worker_token))
        assert r.status_code == 200, r.text  # the worker still holds its job
        assert http.get(f"/api/v1/jobs/{job_id}", headers=auth(svc.user_token)).json()["attempts"] == 1
    app.state.engine.dispose()


def test_a_worker_whose_token_is_disabled_stops_its_running_job(tmp_path):
    """``plexloc admin disable worker w1`` while w1 runs a job: its pings got 401, which the agent ignored, so the job's
    command ran on to its end (a GPU held for hours) although the server had given the job to another worker; only the
    finish, refused, ended it. A 401 now ends the job on the worker, as a lost lease does."""
    import threading
    import time

    from service_support import wait_for_stage

    from plexloc.service import admin
    from plexloc.service.agent import Agent
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000), ping_s=0.2, kill_grace_s=1)
        job = client.submit("ticker", entry_point="tick", config={"n": 100, "dt": 0.1})  # 10 s
        spec = agent.pull()
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(agent.execute(spec)))
        t.start()
        wait_for_stage(client, job["id"], "running")
        with svc.sessions().begin() as s:
            admin.set_active(s, "worker", "w1", False)
        t0 = time.monotonic()
        t.join(30)
        elapsed = time.monotonic() - t0
        agent.close()
        assert result == ["lost"] and elapsed < 4, (result, elapsed)
    svc.app.state.engine.dispose()


def test_worker_cli_log_is_quiet_when_idle_and_says_once_that_its_token_is_refused(tmp_path):
    """``plexloc worker``'s log had a line per request (httpx at INFO: an idle worker's pull each second, 86,400 lines a
    day), and a refused token (disabled, rotated) was one 'pull failed ... retrying' warning a second, for ever."""
    import os
    import signal
    import subprocess
    import sys
    import time

    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live:
        runs = {}
        for name, token in [("good", svc.worker_token), ("bad", "plxw_not-a-token")]:
            env = {**os.environ, "PLEXLOC_WORKER_TOKEN": token}
            # (--container-runtime none: a Docker client without its daemon is warned about at start, session 48)
            p = subprocess.Popen([sys.executable, "-m", "plexloc.cli.main", "worker", "--server", live.url, "--poll", "0.1",
                                  "--cpus", "1", "--gpus", "0", "--container-runtime", "none"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(4)
            p.send_signal(signal.SIGTERM)
            runs[name] = p.communicate(timeout=30)[0]
    svc.app.state.engine.dispose()
    assert "HTTP Request" not in runs["good"], runs["good"][-2000:]
    assert len(runs["good"].strip().splitlines()) <= 2, runs["good"][-2000:]  # the start line (and a warning at most)
    refused = [line for line in runs["bad"].splitlines() if "refuses this worker's token" in line]
    assert len(refused) == 1 and "pull failed" not in runs["bad"], runs["bad"][-2000:]


def test_a_failed_commands_error_names_the_users_file_not_the_workers_folder_and_cancel_from_the_cli(tmp_path, capsys):
    """A job with a bad configuration failed with "python exited with code 2: plexloc simulate: error:
    /tmp/plexloc-job-ID-xyz/in/config/bad.yaml: ..." (the interpreter the worker runs plexloc with, the worker's own
    folder); now "plexloc exited with code 2: ... config/bad.yaml: ..." (the input's slot and name). And ``plexloc
    status JOB --cancel`` cancels (there was no way to cancel from the command line), ``plexloc status`` lists."""
    from service_support import AgentThread, wait_for_stage

    from plexloc.cli.main import main
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    bad = tmp_path / "bad.yaml"
    # a camera included by absolute path: only the worker reads it (the server accepts the job), and it is not there
    bad.write_text("px_size_nm: 100\nframe_size: [8, 8]\npsf: {kind: gaussian}\ncamera: /nonexistent/plexloc/camera.yaml\n")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        with AgentThread(live.url, svc.worker_token):
            fail = c.submit("plexloc-simulate", config={"frames": 2}, inputs={"config": c.upload(bad)["id"]})
            j = c.wait(fail["id"], timeout=120)
        assert j["state"] == "failed" and j["error"].startswith("plexloc exited with code 2: "), j["error"]
        assert "config/bad.yaml" in j["error"] and "plexloc-job-" not in j["error"], j["error"]
        cli = ["--server", live.url, "--token", svc.user_token]
        with AgentThread(live.url, svc.worker_token):
            slow = c.submit("ticker", entry_point="tick", config={"n": 400, "dt": 0.05})
            wait_for_stage(c, slow["id"], "running")
            capsys.readouterr()
            assert main(["status", slow["id"], "--cancel", *cli]) == 0
            assert capsys.readouterr().out.startswith("running (cancel requested")
            assert c.wait(slow["id"], timeout=30)["state"] == "cancelled"
        assert main(["status", *cli]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in listing] == [slow["id"], fail["id"]]
        assert "cancelled" in listing[0] and "failed" in listing[1]
    svc.app.state.engine.dispose()


def test_a_full_store_is_said_before_and_during_an_upload_not_a_bare_500(tmp_path, monkeypatch):
    """The local store's disk full (a 3 MB tmpfs on the live deployment): the upload's PUT failed with 'Internal Server
    Error' and a traceback in the server's log, the client told nothing. Now a file larger than the free space is
    refused at registration (507, the bytes free named), and a write that fails half-way answers 507 with the bytes
    stored (the part file exactly what reached the disk): the upload resumes there once space is freed."""
    import errno
    import hashlib

    import httpx

    from plexloc.service import storage as st
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    store = svc.app.state.storage
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        monkeypatch.setattr(st.LocalStorage, "free_bytes", lambda self: 1000)
        with pytest.raises(Exception, match="507") as err:
            c._post("/files", {"name": "big.tif", "size": len(data)})
        assert "1000 bytes free" in str(err.value)
        monkeypatch.undo()
        created = c._post("/files", {"name": "big.tif", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        real_write = st.write_all
        budget = {"left": 5 * 2**20 // 2}  # the disk takes 2.5 MiB, then is full

        def full_disk(f, chunk):
            n = min(len(chunk), budget["left"])
            real_write(f, chunk[:n])
            budget["left"] -= n
            if n < len(chunk):
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("plexloc.service.api_storage.write_all", full_disk)
        r = httpx.put(created["upload_url"] + "&offset=0", content=data, timeout=30)
        assert r.status_code == 507 and "No space left on device" in r.json()["detail"], r.text
        with svc.sessions()() as s:
            key = s.get(File, created["file"]["id"]).storage_key
        assert r.json()["offset"] == store.received(key) == 5 * 2**20 // 2
        monkeypatch.undo()  # space freed: the client's upload resumes and completes
        from plexloc.service import transfer

        path = tmp_path / "big.tif"
        path.write_bytes(data)
        transfer.upload(c.bytes_http, created["upload_url"], path)
        assert c._post(f"/files/{created['file']['id']}/complete")["state"] == "ready"
        assert store.path(key).read_bytes() == data
    svc.app.state.engine.dispose()


def test_download_of_a_running_job_is_refused_and_of_a_failed_one_is_not_exit_0(tmp_path, capsys):
    """``plexloc download`` of a job still uploading its outputs wrote the ones there so far and exited 0 (a script
    `plexloc download J && analyse` analysed half a result); of a failed job, exit 0 too."""
    import httpx

    from plexloc.cli.main import main

    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        common = ["--server", live.url, "--token", svc.user_token]
        r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "picture"}, headers=auth(svc.user_token))
        job_id = r.json()["id"]
        assert _pull(http, svc.worker_token).json()["job_id"] == job_id
        _output(http, svc.worker_token, job_id, "preview.png", b"the first of two outputs")  # ticks.txt comes next
        capsys.readouterr()
        assert main(["download", job_id, *common, "--out", str(tmp_path / "dl")]) == 1
        assert "is assigned: its outputs are not final yet" in capsys.readouterr().err
        assert not (tmp_path / "dl").exists()
        assert http.post(f"/worker/v1/jobs/{job_id}/finish", json={"state": "failed", "error": "it broke"},
                         headers=auth(svc.worker_token)).status_code == 200
        assert main(["download", job_id, *common, "--out", str(tmp_path / "dl")]) == 1
        err = capsys.readouterr().err
        assert "warning: job" in err and "failed (it broke)" in err and "not a result" in err
        assert (tmp_path / "dl" / "preview.png").read_bytes() == b"the first of two outputs"
    svc.app.state.engine.dispose()


def test_a_queued_job_no_present_worker_can_take_says_why(http, capsys):
    """A GPU job with CPU workers only (plexloc-train submitted without --gpus 0) waited, queued, without a word: the
    first job of the live deployment sat 10 min. ``GET /jobs/ID`` (plexloc status -v, the web page) now says why."""
    from plexloc.service.client import Client

    svc, live = http
    with Client(live.url, svc.user_token) as c:
        gpu = c.submit("ticker", entry_point="gpu")
        assert "no worker has asked for jobs" in c.job(gpu["id"])["note"]
        hw = {"cpus": 8, "memory_mb": 16000, "gpus": 0, "gpu_memory_mb": 0}
        with httpx.Client(base_url=live.url) as h:
            r = h.post("/worker/v1/jobs/pull", json={"hardware": hw, "can_run": [
                {"application": "ticker", "version": "1.0", "entry_point": "gpu"}]}, headers=auth(svc.worker_token))
            assert r.status_code == 204  # it cannot take the job
        note = c.job(gpu["id"])["note"]
        assert "has the hardware this job asks (1 GPU(s)" in note and "w1: 0 GPU(s), 8 CPU(s)" in note and "--gpus 0" in note
        cpu = c.submit("ticker", entry_point="gpu", hardware={"gpus": 0})
        assert c.job(cpu["id"])["note"] is None  # w1 can take this one
        from plexloc.cli.main import main

        capsys.readouterr()
        assert main(["status", gpu["id"], "-v", "--server", live.url, "--token", svc.user_token]) == 0
        assert "note: no worker seen in the last 10 min has the hardware" in capsys.readouterr().out


@pytest.fixture
def http(tmp_path):
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live:
        yield svc, live
    svc.app.state.engine.dispose()


def test_job_folders_a_killed_worker_left_are_deleted_at_the_next_start(tmp_path):
    """kill -9 of a worker mid-job left its job folder (inputs, a training's checkpoints) in the work folder for ever:
    on the live deployment one per kill. A worker starting deletes the folders whose worker process is gone, and only
    those (not another running worker's, not a --keep-work folder of a job that ended)."""
    import os
    import subprocess

    from plexloc.service.agent import _MARK, Agent, _host, _process_start

    dead = subprocess.Popen(["true"])
    dead.wait()
    work = tmp_path / "work"
    (left := work / "plexloc-job-aaaa-x1").mkdir(parents=True)
    (left / "in").mkdir()
    (left / "in" / "movie.tif").write_bytes(b"\0" * 1000)
    (left / _MARK).write_text(f"{dead.pid} 12345 {_host()}")
    (running := work / "plexloc-job-bbbb-x2").mkdir()
    (running / _MARK).write_text(f"{os.getpid()} {_process_start(os.getpid())} {_host()}")
    (reused := work / "plexloc-job-cccc-x3").mkdir()  # its pid now belongs to another process (started later)
    (reused / _MARK).write_text(f"{os.getpid()} 1 {_host()}")
    (kept := work / "plexloc-job-dddd-x4").mkdir()  # --keep-work, its job over: no mark
    (elsewhere := work / "plexloc-job-eeee-x5").mkdir()  # a worker in another container sharing the folder
    (elsewhere / _MARK).write_text(f"{dead.pid} 12345 another-host")
    agent = Agent("http://127.0.0.1:9", "plxw_x", work_dir=work, hardware=Hardware(cpus=1, memory_mb=100))
    try:
        assert agent.run(max_jobs=0) == 0
    finally:
        agent.close()
    assert not left.exists() and not reused.exists()
    assert running.exists() and kept.exists() and elsewhere.exists()


class _Cutting(httpx.BaseTransport):
    """Loopback HTTP that records each request's Range header and cuts the first response's body after ``cut`` bytes
    (a connection reset mid-download)."""

    def __init__(self, cut: int | None):
        self.inner, self.cut, self.ranges = httpx.HTTPTransport(), cut, []

    def close(self):
        self.inner.close()

    def handle_request(self, request):
        self.ranges.append(request.headers.get("range"))
        resp = self.inner.handle_request(request)
        cut, self.cut = self.cut, None
        if cut is None:
            return resp
        inner = resp.stream

        class Stream(httpx.SyncByteStream):
            def __iter__(self):
                n = 0
                for chunk in inner:
                    yield chunk[: cut - n]
                    n += len(chunk)
                    if n >= cut:
                        raise httpx.ReadError("connection reset by peer")

            def close(self):
                inner.close()

        return httpx.Response(resp.status_code, headers=resp.headers, stream=Stream(), extensions=resp.extensions)


def test_an_interrupted_download_resumes_where_it_stopped_and_never_leaves_half_a_file(http, tmp_path):
    """A download cut half-way started again from byte 0 at every try (a multi-GB result over a flaky link might never
    arrive), and nothing of it was kept for a later ``plexloc download``. Now the part file resumes by an HTTP range,
    in the same call and in the next; the output itself appears only whole and checked."""
    import hashlib

    from plexloc.service import transfer
    from plexloc.service.client import Client

    svc, live = http
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    src = tmp_path / "locs.csv"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with Client(live.url, svc.user_token) as c:
        f = c.upload(src)
        url = c._get(f"/files/{f['id']}/download-url")["url"]
    dest = tmp_path / "dl" / "locs.csv"
    with httpx.Client(transport=(cutting := _Cutting(2**20))) as h:
        with pytest.raises(transfer.TransferError, match="failed after 1 tries"):
            transfer.download(h, url, dest, sha256=sha, retries=0)
    assert cutting.ranges == [None]  # one try, from the start
    assert not dest.exists()  # never half written
    with httpx.Client(transport=(again := _Cutting(None))) as h:
        assert transfer.download(h, url, dest, sha256=sha).read_bytes() == data
    assert again.ranges == [f"bytes={2**20}-"]  # the next call went on from the first MiB
    assert list((tmp_path / "dl").iterdir()) == [dest]  # no part file left
    with httpx.Client(transport=(once := _Cutting(2 * 2**20))) as h:  # cut, then resumed in the same call
        assert transfer.download(h, url, tmp_path / "b.csv", sha256=sha).read_bytes() == data
    assert once.ranges == [None, f"bytes={2 * 2**20}-"]


def test_the_web_pages_download_links_are_renewed_before_their_signed_urls_expire(tmp_path):
    """The web page drew a finished job's output links once: left open past the URLs' life (an hour by default), every
    link answered 403 'signed URL refused: expired' until the page was reloaded. It draws them again, with fresh URLs,
    before they expire (here a 2 s life)."""
    import threading
    import time

    pw_api = pytest.importorskip("playwright.sync_api")
    from test_service_web import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("no chromium executable")
    from plexloc.service.agent import Agent
    from plexloc.service.client import Client

    svc = make_service(tmp_path, url_ttl_s=2)
    with LiveServer(svc.app) as live, pw_api.sync_playwright() as pw, Client(live.url, svc.user_token) as c:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.1, ping_s=0.2)
        worker = threading.Thread(target=agent.run, daemon=True)
        worker.start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            job = c.submit("ticker", entry_point="tick")
            assert c.wait(job["id"], timeout=30)["state"] == "succeeded"
            page = browser.new_page()
            page.goto(live.url + "/")
            page.fill("#token", svc.user_token)
            page.click("#save-token")
            page.wait_for_selector(f"#jobs td:has-text('{job['id']}')")
            page.click(f"#jobs td:has-text('{job['id']}')")
            page.wait_for_selector("#outputs a:has-text('ticks.txt')")
            time.sleep(4)  # twice the URLs' life
            href = page.get_attribute("#outputs a:has-text('ticks.txt')", "href")
            r = httpx.get(href)
            assert r.status_code == 200 and r.text == "3", r.text
        finally:
            browser.close()
            agent.stop.set()
            worker.join(timeout=10)
            agent.close()
    svc.app.state.engine.dispose()


def test_a_finish_lost_in_a_network_outage_is_sent_again(http):
    """The worker sent a job's finish once: a connection error then (the server restarting, the network down for a
    moment at the end of a long training) left the job running until its lease lapsed, and it ran again from the
    start. The finish is sent again, the lease kept by pings meanwhile; a finish whose answer was lost (it got
    through) is recognised."""
    from plexloc.service.agent import Agent
    from plexloc.service.client import Client

    svc, live = http
    with Client(live.url, svc.user_token) as c:
        for lose in ("request", "answer"):
            agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), ping_s=0.2)
            real_post = agent.http.post
            lost = []

            def flaky(url, *a, **kw):
                if url.endswith("/finish") and not lost:
                    lost.append(url)
                    if lose == "answer":
                        real_post(url, *a, **kw)  # it arrives; its answer does not
                    raise httpx.ConnectError("connection refused")
                return real_post(url, *a, **kw)

            agent.http.post = flaky
            job = c.submit("ticker", entry_point="tick")
            try:
                spec = agent.pull()
                assert agent.execute(spec) == "succeeded" and lost, lose
            finally:
                agent.close()
            assert c.job(job["id"])["state"] == "succeeded"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_one_users_batch_does_not_hold_every_worker(tmp_path, request, db):
    """Two users of one lab: alice's batch of jobs (or one submitted with a huge priority) went first in full, bob's
    one job waited for all of it (first come, first served; any user may give any priority). Now the users with
    fewest jobs running go first: bob's job is the second claimed."""
    from service_support import fresh_postgres_db

    db_url = fresh_postgres_db(request.getfixturevalue("postgres_server")) if db == "postgresql" else None
    svc = make_service(tmp_path, db_url=db_url)
    reg = svc.app.state.registry
    cpu = Hardware(cpus=8, memory_mb=16000)
    tick = [("ticker", "1.0", "tick")]
    try:
        with svc.sessions().begin() as s:
            alice = [ops.submit(s, _user(s), reg, ops.JobRequest("ticker", entry_point="tick", priority=p))
                     for p in (10**9, 10**9, 0)]
            bob = ops.submit(s, _user(s, "bob"), reg, ops.JobRequest("ticker", entry_point="tick"))
            for t, job in enumerate([*alice, bob]):
                job.created_at = float(t)
        with svc.sessions().begin() as s:
            got = [ops.claim(s, _worker(s, w), can_run=tick, hardware=cpu, lease_s=60).id for w in ("w1", "w2")]
        assert got == [alice[0].id, bob.id]
        with svc.sessions().begin() as s:  # one job each running: alice's next by priority
            assert ops.claim(s, _worker(s), can_run=tick, hardware=cpu, lease_s=60).id == alice[1].id
    finally:
        svc.app.state.engine.dispose()
