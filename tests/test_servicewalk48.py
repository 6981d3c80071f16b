"""Defects found by walking the job service as a lab admin and its users (session 48): each test fails on the code
before its fix."""

from __future__ import annotations

import logging
import time

import pytest
from service_support import AgentThread, LiveServer, auth, make_service, script_app, wait_for_stage

from plexloc.service import admin
from plexloc.service.client import Client

#: a job's command that ignores SIGTERM: it runs on for the agent's kill grace after a stop
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: None)
print("started", flush=True)
time.sleep(60)
"""


def test_a_disabled_worker_says_once_that_its_token_is_refused_and_when_it_is_accepted_again(tmp_path, caplog):
    """``plexloc admin disable worker w1`` while w1 runs a job: its log said "the server refused this worker's token ...
    the job is abandoned" on every ping until the job's command had stopped, then "lease lost, abandoned", then "the
    server refuses this worker's token (HTTP 401: missing or invalid token) ... asking again in 60 s" once a minute
    for ever. Now one line says it, naming the job, why (the worker is disabled) and the fix; one more says when the
    token is accepted again, and the worker takes jobs again."""
    apps = script_app(tmp_path / "apps2", STUBBORN, name="stubborn")
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", apps])
    # (make_service's ticker app is in tmp_path / "apps")
    caplog.set_level(logging.INFO, logger="plexloc.worker")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        with AgentThread(live.url, svc.worker_token, ping_s=0.1, kill_grace_s=1.0) as agent:
            agent.auth_retry_s = 0.1
            job = client.submit("stubborn", entry_point="run", config={"mode": "x"})
            wait_for_stage(client, job["id"], "running")
            with svc.sessions().begin() as s:
                admin.set_active(s, "worker", "w1", False)
            time.sleep(2.0)  # the kill grace (1 s) and ~10 refused pulls
            with svc.sessions().begin() as s:
                admin.set_active(s, "worker", "w1", True)
            again = client.submit("ticker", entry_point="tick", config={"n": 2})
            assert client.wait(again["id"], timeout=30)["state"] == "succeeded"
    svc.app.state.engine.dispose()
    lines = [r.getMessage() for r in caplog.records if r.name == "plexloc.worker"]
    refused = [line for line in lines if "refuse" in line]
    assert len(refused) == 1, lines
    assert job["id"] in refused[0] and "abandoned" in refused[0], refused[0]
    assert "disabled" in refused[0] and "plexloc admin enable worker w1" in refused[0], refused[0]
    assert not any("lease lost" in line for line in lines), lines
    assert sum("accepts this worker's token again" in line for line in lines) == 1, lines


@pytest.fixture
def svc(tmp_path):
    service = make_service(tmp_path)
    yield service
    service.app.state.engine.dispose()


def test_a_refused_token_says_whether_it_is_missing_unknown_or_disabled(svc):
    """Every refused token was "missing or invalid token": a user whose account the admin had disabled looked for a
    typo in a token that was right. Now the answer says which, and the way out."""
    import httpx

    with svc.sessions().begin() as s:
        admin.set_active(s, "user", "bob", False)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        def detail(headers, path="/api/v1/jobs"):
            r = http.get(path, headers=headers)
            assert r.status_code == 401, r.text
            return r.json()["detail"]

        assert detail({}).startswith("no token: send the user's token as 'Authorization: Bearer plxu_...'")
        assert detail(auth("plxu_not-a-token")).startswith("unknown token (mistyped, or replaced by 'plexloc admin rotate")
        assert detail(auth(svc.other_token)) == ("the user 'bob' is disabled: the service's administrator enables it "
                                                  "again (plexloc admin enable user bob)")
        with svc.sessions().begin() as s:
            admin.set_active(s, "worker", "w2", False)
        r = http.post("/worker/v1/jobs/pull", headers=auth(svc.worker2_token), json={})
        assert r.status_code == 401 and "the worker 'w2' is disabled" in r.json()["detail"], r.text
        assert http.get("/api/v1/jobs", headers=auth(svc.user_token)).status_code == 200
        r = http.get("/api/v1/jobs", headers=auth(svc.worker_token))
        assert r.status_code == 403 and r.json()["detail"] == "a worker token cannot use this API: use a user token (plxu_...)"


def test_a_tiff_whose_header_points_past_its_end_is_refused_at_submission(svc, tmp_path):
    """A movie with a TIFF's first four bytes and anything after them (a damaged file; a copy cut off before the image
    directory, which libtiff writes after the pixels) was queued, waited behind the other jobs (12 min behind a
    training in the walk), and failed on the worker: "TIFF file holds no image ... invalid offset to first page
    1651663207". Now 422 at submission, naming the slot, the file and the offset; real TIFFs pass."""
    import io

    import numpy as np
    import tifffile

    from plexloc.service.client import ServiceError

    def upload(client, name, data):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return client.upload(path)["id"]

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        model = upload(client, "model.pt", b"not read")
        real = []
        for kw in ({}, {"bigtiff": True}, {"byteorder": ">"}):
            buf = io.BytesIO()
            tifffile.imwrite(buf, np.zeros((3, 8, 8), np.uint16), **kw)
            real.append(buf.getvalue())
        cut = real[0][:4] + (10_000).to_bytes(4, "little") + real[0][8:]  # names a directory beyond its 672 bytes
        for name, data, first in [("bad2.tif", b"II*\x00garbage", int.from_bytes(b"garb", "little")),
                                  ("cut.tif", cut, 10_000),
                                  ("big.tiff", real[1][:8] + (2**40).to_bytes(8, "little") + real[1][16:], 2**40),
                                  ("motorola.tif", b"MM\x00*\x7f\xff\xff\xff" + bytes(100), 2**31 - 1)]:
            with pytest.raises(ServiceError) as err:
                client.submit("plexloc-fit", entry_point="fit",
                              inputs={"movie": [upload(client, name, data)], "model": [model]})
            detail = str(err.value.detail)
            assert err.value.status == 422 and detail.startswith("inputs.movie: file "), detail
            assert (f"({name}) is a damaged TIFF: its header puts the first image directory at byte {first}, past the "
                    f"file's end ({len(data)} bytes)") in detail, detail
        assert client.jobs() == []
        for i, data in enumerate(real):
            job = client.submit("plexloc-fit", entry_point="fit",
                                inputs={"movie": [upload(client, f"ok{i}.tif", data)], "model": [model]})
            assert job["state"] == "queued"


def test_submit_says_at_once_when_no_worker_present_can_take_the_job(svc, tmp_path, capsys):
    """``plexloc submit plexloc-train ... --gpus 0`` on a lab's 2-core CPU worker: the job asks 4 cores, no worker could
    take it, and submit printed only its id; the job sat queued until its user asked ``plexloc status -v``. Now the
    submission's answer carries the note, and submit says it on stderr (the id alone stays on stdout)."""
    from plexloc.cli.main import main
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    with LiveServer(svc.app) as live:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000))
        assert agent.pull() is None  # the worker is seen (it pulled; nothing queued)
        agent.close()
        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["submit", "ticker", *common, "--entry", "tick", "--cpus", "4"]) == 0
        out, err = capsys.readouterr()
        job_id = out.strip()
        assert len(job_id) == 16, out
        assert err.startswith(f"plexloc submit: warning: job {job_id} is queued, but no worker seen in the last 10 min "
                              "has the hardware this job asks (4 CPU(s), 10 MB RAM): w1: 0 GPU(s), 2 CPU(s), 8000 MB RAM"), err
        assert "--cpus 2" in err, err
        assert main(["submit", "ticker", *common, "--entry", "tick"]) == 0  # one that fits: no warning
        assert capsys.readouterr().err == ""


def test_the_quota_refusal_says_when_the_user_is_over_it_already(tmp_path):
    """A training's outputs (never refused) took a user of a 2 MiB quota to 48.5 MiB; the next upload was refused with
    "your files take 48.5 MiB of your quota of 2.05 MiB; small.tif needs 408 KiB more", read as if 408 KiB were
    missing. Now: over the quota already, and the file's size."""
    from plexloc.service.client import ServiceError

    svc = make_service(tmp_path, user_quota_bytes=1000)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(bytes(600))
    (src / "b.bin").write_bytes(bytes(500))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        client.upload(src / "a.bin")
        with pytest.raises(ServiceError) as err:
            client.upload(src / "b.bin")
        assert err.value.status == 413
        assert str(err.value.detail).startswith("b.bin: your files take 600 B, of your quota of 1000 B, 400 B free; "
                                                "b.bin is 500 B: delete files or ended jobs"), err.value.detail
        with svc.sessions().begin() as s:  # a job's outputs took the user past it
            from plexloc.service.db import File, User
            from sqlalchemy import select

            f = s.scalar(select(File).join(User, File.user_id == User.id).where(User.name == "alice"))
            f.size = 5000
        with pytest.raises(ServiceError) as err:
            client.upload(src / "b.bin")
        assert str(err.value.detail).startswith("b.bin: your files take 4.88 KiB, already over your quota of 1000 B "
                                                "(a job's outputs are kept even past it); b.bin is 500 B"), err.value.detail
    svc.app.state.engine.dispose()


def test_a_worker_whose_server_is_down_says_so_once_and_again_when_it_answers(tmp_path, caplog):
    """The server restarted (an upgrade, a reboot): its worker said "pull failed ([Errno 111] Connection refused);
    retrying" every second (3,600 lines an hour of downtime) and asked as often. Now it says it once, asks with growing
    pauses (up to 30 polls; the review: 10), and says when the server answers again; then it takes jobs as before."""
    import socket

    svc = make_service(tmp_path)
    with socket.socket() as s:  # a free port, nothing listening on it yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.INFO, logger="plexloc.worker")
    url = f"http://127.0.0.1:{port}"
    with AgentThread(url, svc.worker_token, poll_s=0.01) as agent:
        t0 = time.monotonic()
        time.sleep(1.5)  # the old worker asked ~100 times (each 0.01 s), saying each
        with LiveServer(svc.app, port=port) as live, Client(live.url, svc.user_token) as client:
            job = client.submit("ticker", entry_point="tick", config={"n": 2})
            assert client.wait(job["id"], timeout=30)["state"] == "succeeded"
            waited = time.monotonic() - t0
        assert agent.max_pull_pause_s == pytest.approx(0.1)  # 10 polls (the review: 30 let a 63-s outage cost 28 s more)
    svc.app.state.engine.dispose()
    lines = [r.getMessage() for r in caplog.records if r.name == "plexloc.worker"]
    lines = lines[:[i for i, line in enumerate(lines) if line.endswith(": succeeded")][0]]  # (the server's end: down again)
    down = [line for line in lines if "cannot pull jobs" in line]
    assert len(down) == 1 and down[0].startswith(f"cannot pull jobs from {url} (") and "growing pauses" in down[0], lines
    assert sum(line.startswith("the server answers again (after ") for line in lines) == 1, lines
    assert not any("pull failed" in line for line in lines), lines
    assert waited < 15, waited


def test_a_queued_jobs_note_names_the_workers_that_are_disabled(svc):
    """The lab's only worker disabled (``plexloc admin disable worker w1``): the queued job's note said "no worker has
    asked for jobs in the last 10 min", though w1 asked every second; it now names the disabled worker and the fix."""
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000))
        assert agent.pull() is None  # w1 is seen
        agent.close()
        with svc.sessions().begin() as s:
            admin.set_active(s, "worker", "w1", False)
        job = client.submit("ticker", entry_point="tick")
        assert job["note"] == client.job(job["id"])["note"] == (
            "no enabled worker has asked for jobs in the last 10 min (disabled by the service's administrator: w1; "
            "plexloc admin enable worker NAME): the job waits until one does")


FAILING = """
import sys
print("reading movie.tif", flush=True)
print("error: movie.tif: frame 3 is cut off", flush=True)
sys.exit(2)
"""


def test_the_web_page_lists_why_a_job_failed_and_why_a_token_is_refused(tmp_path):
    """The web page's job list said only "failed" (the error showed after a click on the job); a refused token said
    "401: missing or invalid token". Now the list shows the error under the state, and a token the admin disabled says
    so. In headless Chromium (skipped without it)."""
    from service_support import chromium_executable, signed_in_page

    playwright = pytest.importorskip("playwright.sync_api")
    chromium = chromium_executable()
    if chromium is None:
        pytest.skip("no chromium executable")
    apps = script_app(tmp_path / "apps2", FAILING, name="failing")
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", apps])
    with svc.sessions().begin() as s:
        admin.set_active(s, "user", "bob", False)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client, playwright.sync_playwright() as pw:
        with AgentThread(live.url, svc.worker_token):
            job = client.submit("failing", entry_point="run", config={"mode": "x"})
            assert client.wait(job["id"], timeout=30)["state"] == "failed"
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = signed_in_page(browser, live.url, svc.user_token)
            cell = page.wait_for_selector("#jobs .job-error", timeout=10000)
            assert cell.text_content() == "python exited with code 2: reading movie.tif | error: movie.tif: frame 3 is cut off"
            log_bytes = client.job(job["id"])["output_bytes"]  # its log.txt
            assert 0 < log_bytes < 1000 and page.text_content("#jobs .job-space") == f"{log_bytes} B"
            page.fill("#token", svc.other_token)
            page.click("#save-token")
            page.wait_for_selector("#error:has-text('disabled')", timeout=10000)
            assert "the user 'bob' is disabled" in page.text_content("#error")
        finally:
            browser.close()
    svc.app.state.engine.dispose()


def test_status_lists_the_space_each_jobs_outputs_take(svc, capsys):
    """Over the quota after a training (its checkpoint.pt 40 MB, model.pt 10 MB), the 413 said "delete files or ended
    jobs you no longer need", but no list said which jobs took the space. ``plexloc status`` now gives each job's outputs
    and log (the API's ``output_bytes``), ``-v`` the job's."""
    from plexloc.cli.main import main
    from plexloc.service.db import File
    from plexloc.service.settings import size_text
    from sqlalchemy import func, select

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick", config={"n": 2})
        queued = client.submit("ticker", entry_point="tick", config={"n": 2})
        from plexloc.service.agent import Agent
        from plexloc.service.apps import Hardware

        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000))
        assert agent.execute(agent.pull()) == "succeeded"  # the older job, the other stays queued
        agent.close()
        with svc.sessions().begin() as s:
            size = s.scalar(select(func.sum(File.size)).where(File.job_id == job["id"]))
        assert size > 0 and client.job(job["id"])["output_bytes"] == size
        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["status", *common]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(queued["id"]) and lines[0].endswith("queued      0%        0 B"), lines
        assert lines[1].startswith(job["id"]) and lines[1].endswith(f"succeeded 100%  {size_text(size):>9}"), lines
        assert main(["status", job["id"], "-v", *common]) == 0
        assert f"attempts 1  outputs and log {size_text(size)}" in capsys.readouterr().out
    svc.app.state.engine.dispose()


def test_disabling_a_worker_sends_its_job_back_to_the_queue_and_says_so(svc, capsys):
    """``plexloc admin disable worker w1`` while w1 held a job: the command said nothing, the job stayed "running" until
    its lease lapsed (30 s by default; the worker, refused, could neither ping nor finish it) and its user read "lease
    of worker w1 lapsed". Now the admin is told which jobs go back to the queue, the next sweep re-queues them, and
    each job's log says the worker was disabled. Rotating a worker's token does the same."""
    from plexloc.cli.main import main
    from plexloc.service import jobs as ops
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware
    from plexloc.service.client import ServiceError
    from service_support import all_log_lines

    data = ["--data-dir", str(svc.settings.data_dir)]
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        for action in ("disable", "rotate"):
            job = client.submit("ticker", entry_point="tick")
            agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=2, memory_mb=8000))  # (rotated last)
            assert agent.pull()["job_id"] == job["id"]
            assert client.job(job["id"])["state"] == "assigned"
            assert main(["admin", *data, action, "worker", "w1"]) == 0
            out, err = capsys.readouterr()
            if action == "disable":
                assert err == f"worker w1 disabled; its job(s) {job['id']} go back to the queue (the worker stops them at " \
                              "its next ping)\n", err
                with pytest.raises(ServiceError) as refused:
                    agent.pull()
                assert refused.value.status == 401
                assert main(["admin", *data, "enable", "worker", "w1"]) == 0
            else:
                assert out.startswith("plxw_") and err == f"worker w1: its job(s) {job['id']} go back to the queue\n", err
            agent.close()
            with svc.sessions().begin() as s:
                assert (job["id"], "queued") in ops.sweep(s)
            why = "was disabled" if action == "disable" else "got a new token"
            assert (f"[service] worker w1 {why} by the service's administrator during attempt 1: the job goes back to "
                    "the queue (that attempt does not count: 3 left)") in all_log_lines(client, job["id"])
            assert client.job(job["id"])["state"] == "queued"
            client.cancel(job["id"])
    svc.app.state.engine.dispose()


def _fake_program(folder, name: str, code: int, said: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit {code}\n")
    path.chmod(0o755)


def test_a_worker_offers_a_container_runtime_only_when_it_works(tmp_path, monkeypatch):
    """A lab machine with Docker's client but no daemon running (or a user outside the docker group): the worker said
    "containers: docker" and took every job that names an image, each failing on "Cannot connect to the Docker
    daemon". Now the runtime is asked (``docker info``) at start: one that fails is warned about, the next that works
    is used, and with none the worker takes no image job."""
    from plexloc.service.containers import usable_runtime

    bin_ = tmp_path / "bin"
    _fake_program(bin_, "docker", 1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    monkeypatch.setenv("PATH", str(bin_))
    monkeypatch.delenv("PLEXLOC_CONTAINER_RUNTIME", raising=False)
    runtime, warnings = usable_runtime()
    assert runtime is None and len(warnings) == 1, warnings
    assert warnings[0].startswith(f"warning: the container runtime docker ({bin_ / 'docker'}) does not work here: "
                                  f"'{bin_ / 'docker'} info' failed (exit 1): Cannot connect to the Docker daemon"), warnings
    _fake_program(bin_, "apptainer", 0, "apptainer version 1.3")
    runtime, warnings = usable_runtime()
    assert runtime is not None and runtime.name == "apptainer" and len(warnings) == 1, (runtime, warnings)
    runtime, warnings = usable_runtime("docker")  # chosen: not replaced by another
    assert runtime is None and len(warnings) == 1
    assert usable_runtime("none") == (None, [])
    runtime, warnings = usable_runtime("podman")
    assert runtime is None and warnings == ["warning: the container runtime 'podman' is not a program on PATH (podman, "
                                            "docker, apptainer or a path); this worker takes no job that names a "
                                            "container image"]


def test_the_worker_command_says_its_container_runtime_does_not_work(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    bin_ = tmp_path / "bin"
    _fake_program(bin_, "docker", 1, "permission denied while trying to connect to the Docker daemon socket")
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live:
        env = {**os.environ, "PATH": str(bin_), "PLEXLOC_WORKER_TOKEN": svc.worker_token}
        env.pop("PLEXLOC_CONTAINER_RUNTIME", None)
        p = subprocess.Popen([sys.executable, "-m", "plexloc.cli.main", "worker", "--server", live.url, "--cpus", "1",
                              "--gpus", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        import threading

        stop = threading.Timer(30, p.send_signal, [signal.SIGTERM])  # (a worker that says nothing more ends too)
        stop.start()
        lines = []
        while not (len(lines) > 1 and lines[-2].startswith("plexloc worker ->")):  # the start line, then the warning
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
        stop.cancel()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        out = "".join(lines) + p.stdout.read()
        p.stdout.close()
    svc.app.state.engine.dispose()
    assert "warning: the container runtime docker" in out and "permission denied while trying to connect" in out, out
    assert "containers: none" in out, out


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path, capsys):
    """A second ``plexloc serve`` on the lab's port printed "plexloc service on http://127.0.0.1:8748/", uvicorn's start
    lines, "[Errno 98] error while attempting to bind ... address already in use" and exited 3. Now one line naming the
    address and the fix, exit 2, no "service on" line."""
    import socket

    from plexloc.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--data-dir", str(tmp_path / "data"), "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "plexloc service on" not in out, out
    assert err.strip() == (f"plexloc serve: error: cannot listen on 127.0.0.1:{port}: Address already in use (another "
                           "plexloc serve or another program uses it: stop it, or choose another with --port)"), err


def test_a_parameter_the_entry_point_lacks_is_named_with_the_ones_it_has(svc):
    """``plexloc submit plexloc-fit --entry mle ... --set min_photon=3`` was refused with "config.min_photon: Extra inputs
    are not permitted (got 3)": pydantic's words, no list of the parameters, no hint of min_photons."""
    from plexloc.service.client import ServiceError

    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        with pytest.raises(ServiceError) as err:
            client.submit("ticker", entry_point="tick", config={"n": 2, "dtt": 0.5})
        assert err.value.status == 422
        assert err.value.detail == ("config.dtt: no such parameter (got 0.5); did you mean dt? the parameters are: n, dt")
        with pytest.raises(ServiceError) as err:
            client.submit("plexloc-fit", entry_point="mle", config={"min_photon": 3})
        assert err.value.detail.startswith("config.min_photon: no such parameter (got 3); did you mean min_photons? "
                                           "the parameters are: min_photons"), err.value.detail
        with pytest.raises(ServiceError) as err:
            client.submit("ticker", entry_point="gpu", config={"n": 2})
        assert err.value.detail == "config.n: no such parameter (got 2); the parameters are: none"


def test_status_lists_and_deletes_ones_uploads_to_get_under_the_quota(tmp_path, capsys):
    """Over the quota with 3.7 MB of uploaded movies and configurations (three copies of one YAML: each submit uploads
    its files), the 413 said "delete files", but the command line could delete only jobs. ``plexloc status --files``
    lists one's uploads, ``--delete-file ID`` deletes one, and the refused upload then passes."""
    from plexloc.cli.main import main
    from plexloc.service.client import ServiceError

    svc = make_service(tmp_path, user_quota_bytes=1500)
    src = tmp_path / "src"
    src.mkdir()
    (src / "movie.tif").write_bytes(b"II*\x00" + bytes(996))
    (src / "c.yaml").write_text("a: 1\n")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        movie = client.upload(src / "movie.tif")
        conf = client.upload(src / "c.yaml")
        job = client.submit("ticker", entry_point="tick")  # a job, whose log is no upload
        client.cancel(job["id"])
        with pytest.raises(ServiceError) as err:
            client.upload(src / "movie.tif")
        assert err.value.status == 413 and "plexloc status --files your uploads" in err.value.detail, err.value.detail
        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["status", "--files", *common]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == [conf["id"], movie["id"]], lines
        assert lines[1].endswith("  1000 B  movie.tif") and lines[0].endswith("     5 B  c.yaml"), lines
        assert main(["status", "--delete-file", movie["id"], *common]) == 0
        assert capsys.readouterr().out == f"deleted file {movie['id']}\n"
        assert [f["id"] for f in client.files()] == [conf["id"]]
        client.upload(src / "movie.tif")  # room again
        assert main(["status", "--files", job["id"], *common]) == 2  # a job's id is not a file's
        assert "not with JOB" in capsys.readouterr().err
    svc.app.state.engine.dispose()


def test_the_worker_command_refuses_a_users_token_before_it_starts(capsys):
    """``plexloc worker --token plxu_...`` (the admin pasted the user's token) started, printed its start line and then
    the server's 403 each minute; now one line before anything, exit 2."""
    from plexloc.cli.main import main

    assert main(["worker", "--server", "http://127.0.0.1:9", "--token", "plxu_abc", "--gpus", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ("plexloc worker: error: --token is a user's token (plxu_...); a worker needs a "
                                         "worker token (plxw_..., from plexloc admin create-worker NAME)"), (out, err)
