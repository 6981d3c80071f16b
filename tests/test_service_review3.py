"""Third review of the job service: a worker killed mid-job, a job printing without end, a cancel during a large
upload, and a cancelled job's end report. Each test failed before its fix (the numbers measured are in its docstring)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from service_support import (  # noqa: F401 (fixtures)
    LiveServer, all_log_lines, auth, gone_within, http, live, make_service, quick_kill_agent, script_app, service,
    ticker_app, wait_for_stage,
)
from sqlalchemy import select

from plexloc.service import agent as agent_mod
from plexloc.service import transfer
from plexloc.service.client import Client

#: one test application, its behaviour chosen by the ``mode`` parameter
SCRIPT = r'''
import os, pathlib, sys
mode, out, arg = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
if mode == "flood":  # many lines at once
    sys.stdout.write("".join(f"line {i}\n" for i in range(int(arg))))
elif mode == "big":  # one large output (sparse: written at once)
    with open(out / "big.bin", "wb") as f:
        f.truncate(int(arg) * 2**20)
sys.stdout.flush()
(out / "done.txt").write_text("ok")
'''


@pytest.fixture
def env(tmp_path):
    svc = make_service(tmp_path, lease_s=5.0, sweep_interval_s=0.2,
                       apps_dirs=[ticker_app(tmp_path / "apps"), script_app(tmp_path / "scr3", SCRIPT, name="scr3",
                                                                          outputs=("*.txt", "*.bin"))])
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        yield svc, live, client
    svc.app.state.engine.dispose()


# -- 1. a worker killed with SIGKILL -----------------------------------------------------------------------------------
#: the agent's side: runs ``COMMAND`` through the agent's own code path (``Agent._run_process``), as a job would
PARENT = r'''
import os, sys, time
from pathlib import Path
from plexloc.service.agent import Agent, _Reporter
from plexloc.service.apps import Hardware
work = Path(sys.argv[1])
agent = Agent("http://127.0.0.1:9", "plxw_x", hardware=Hardware(cpus=1, memory_mb=100), runtime=None, kill_grace_s=1.0)
rep = _Reporter(agent, "job", 60.0)
print(agent._run_process([sys.executable, str(work / "command.py"), str(work)], dict(os.environ), work, rep,
                         time.monotonic() + 60, base=0.0, scale=1.0), flush=True)
'''

#: the job's command: starts a child of its own (a worker process of a GPU program, say), says both pids, sleeps
COMMAND = r'''
import os, subprocess, sys, time
from pathlib import Path
work = Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
(work / "pids.tmp").write_text(f"{os.getpid()} {child.pid}")
os.replace(work / "pids.tmp", work / "pids")
time.sleep(60)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_a_killed_worker_takes_its_jobs_command_with_it(tmp_path):
    """The worker agent killed with SIGKILL (an OOM kill, a crash) while a job's command runs. Before: the command and
    its child ran on as orphans (both still alive 5 s later, for the whole of their 60 s: a GPU kept busy for
    nobody). After: both are gone within 0.03 s of the kill (the guard it runs under ends its process group)."""
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "command.py").write_text(COMMAND)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(tmp_path)])
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "pids").exists():
            assert parent.poll() is None, "the agent-like parent ended early"
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        command, child = map(int, (tmp_path / "pids").read_text().split())
    finally:
        parent.kill()
        parent.wait()
    took = [gone_within(command, 5.0), gone_within(child, 5.0)]
    assert None not in took, f"still running 5 s after the worker was killed (command, child): {took}"
    assert max(took) < 3.0, took


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_the_command_path_still_reports_exit_codes_and_missing_programs(tmp_path):
    """The guard that ends the command with the worker keeps what the worker saw before: a command's exit code (and
    death by a signal) in the failure, and a program that cannot start said as such."""
    agent = agent_mod.Agent("http://127.0.0.1:9", "plxw_x", hardware=agent_mod.Hardware(cpus=1, memory_mb=100),
                            runtime=None, kill_grace_s=1.0)
    try:
        rep = agent_mod._Reporter(agent, "job", 60.0)

        def run(argv):
            return agent._run_process(argv, dict(os.environ), tmp_path, rep, time.monotonic() + 30, base=0.0, scale=1.0)

        assert run([sys.executable, "-c", "print('hello')"]) is None
        state, error = run([sys.executable, "-c", "import sys; print('bad thing'); sys.exit(3)"])
        assert state == "failed" and "exited with code 3" in error and "bad thing" in error, error
        state, error = run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
        assert state == "failed" and f"exited with code {-signal.SIGSEGV}" in error, error
        state, error = run([str(tmp_path / "no-such-program")])
        assert state == "failed" and error.startswith(f"cannot start {tmp_path / 'no-such-program'}"), error
        # the command ignores the signals a command started directly ignores (Python ignores SIGPIPE and SIGXFSZ:
        # the guard, a Python process, must not pass that on)
        probe = ["/bin/sh", "-c", "grep SigIgn /proc/self/status"]
        baseline = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
        assert run(probe) is None
        assert list(rep.tail)[-1] == baseline, (list(rep.tail)[-3:], baseline)
    finally:
        rep.close()
        agent.close()


# -- 2. the worker's memory for a job's log ----------------------------------------------------------------------------
def test_the_workers_log_buffer_stays_bounded_and_every_line_arrives(env, monkeypatch):
    """30,000 lines printed at once, the worker's in-memory bound for pending lines set to 2,000. Before: the worker
    held every line of the job in memory for its log.txt (peaks of 31,903 and 59,002 lines, 308 and 570 kB of text,
    in two runs: a job printing millions grew the worker without bound). After: at most the bound (plus one batch
    put back after a failed ping) in memory, the rest spooled to disk (peak 2,000 lines, 17 kB here), and the server
    and log.txt still get every line, in order."""
    svc, live, c = env
    monkeypatch.setattr(agent_mod, "_MEMORY_LINES", 2000, raising=False)
    peak = {"lines": 0, "chars": 0}

    calls = [0]

    class Measured(agent_mod._Reporter):
        """The reporter, its lines in memory counted at every line logged (their characters at every 100th)."""

        def log(self, line):
            super().log(line)
            kept = getattr(self, "all_lines", [])  # (the old reporter's copy of every line)
            peak["lines"] = max(peak["lines"], len(self.lines) + len(kept))
            calls[0] += 1
            if calls[0] % 100 == 0:
                peak["chars"] = max(peak["chars"], sum(map(len, self.lines)) + sum(map(len, kept)))

    monkeypatch.setattr(agent_mod, "_Reporter", Measured)
    with quick_kill_agent(live.url, svc.worker_token):
        job = c.submit("scr3", config={"mode": "flood", "arg": "30000"})
        assert c.wait(job["id"], timeout=60)["state"] == "succeeded"
    expected = [f"line {i}" for i in range(30000)]
    assert [x for x in all_log_lines(c, job["id"]) if x.startswith("line ")] == expected
    log_txt = next(o for o in c.outputs(job["id"]) if o["name"] == "log.txt")
    text = c.bytes_http.get(log_txt["url"]).text
    assert [x for x in text.splitlines() if x.startswith("line ")] == expected
    assert peak["lines"] <= 2000 + agent_mod._BATCH, peak
    assert peak["chars"] <= (2000 + agent_mod._BATCH) * 20, peak


def test_the_spooled_pending_lines_keep_their_order_and_content(tmp_path, monkeypatch):
    """The reporter alone: lines past the in-memory bound go to disk and come back in order, line ends and all."""
    monkeypatch.setattr(agent_mod, "_MEMORY_LINES", 10, raising=False)
    agent = agent_mod.Agent("http://127.0.0.1:9", "plxw_x", hardware=agent_mod.Hardware(cpus=1, memory_mb=100),
                            runtime=None, work_dir=tmp_path)
    rep = agent_mod._Reporter(agent, "job", 60.0)
    try:
        sent = [f"l{i}" for i in range(95)] + ["two\nlines", "back\\slash", "é ü \x00"]
        for line in sent:
            rep.log(line)
        assert len(rep.lines) <= 10
        got = []
        while batch := rep.take(7):
            got += batch
            if len(got) < 150:
                rep.log(f"late {len(got)}")  # logged while the backlog drains: after it
        assert got[: len(sent)] == sent and all(x.startswith("late ") for x in got[len(sent):]), got
        late = [int(x.split()[1]) for x in got[len(sent):]]
        assert late and late == sorted(late), late
        assert rep.pending() == 0
        log_txt = tmp_path / "log.txt"
        rep.write_log(log_txt)
        assert log_txt.read_text().split("\n")[:3] == ["l0", "l1", "l2"]
    finally:
        rep.close()
        agent.close()


# -- 3. a cancel during one large upload -------------------------------------------------------------------------------
def test_a_cancel_stops_a_large_upload_in_progress(env, monkeypatch):
    """One 60 MiB output uploading at 10 MiB/s, cancelled half a second in. Before: the cancel was looked at only
    between files, so the job stayed running until the whole file was up (cancelled 5.8 s after the cancel). After:
    the upload stops at its next chunk (cancelled 0.2-0.3 s after: the next ping, then the chunk in flight), the job
    ends cancelled and the half-sent file is never an output (the sweeper deletes it with its bytes)."""
    from plexloc.service.db import File

    svc, live, c = env
    real = transfer._read_from

    def throttled(path, offset, chunk):
        for data in real(path, offset, chunk):
            time.sleep(0.1 * len(data) / 2**20)
            yield data

    monkeypatch.setattr(transfer, "_read_from", throttled)
    with quick_kill_agent(live.url, svc.worker_token):
        job = c.submit("scr3", config={"mode": "big", "arg": "60"})
        wait_for_stage(c, job["id"], "uploading")
        time.sleep(0.5)
        t0 = time.monotonic()
        c.cancel(job["id"])
        j = c.wait(job["id"], timeout=30, poll_s=0.05)
        took = time.monotonic() - t0
    assert j["state"] == "cancelled" and "uploading" in j["error"], j
    assert took < 2.0, f"the cancel took {took:.1f} s"
    assert "big.bin" not in [o["name"] for o in c.outputs(job["id"])]
    deadline = time.monotonic() + 5
    while True:  # the sweeper deletes the pending output of a job that is over, with its bytes
        with svc.sessions().begin() as s:
            pending = s.scalars(select(File.storage_key).where(File.job_id == job["id"], File.state == "pending")).all()
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert pending == []


def test_an_upload_told_to_stop_stops_between_chunks(http, service, tmp_path):  # noqa: F811
    """transfer.upload alone: ``cancelled()`` turning true mid-file raises UploadCancelled after that chunk."""
    import hashlib

    data = os.urandom(5 * 2**20)
    r = http.post("/api/v1/files", json={"name": "x.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                  headers=auth(service.user_token))
    assert r.status_code == 201, r.text
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(transfer.UploadCancelled):
        transfer.upload(http, r.json()["upload_url"], path, chunk=2**20, cancelled=cancelled)
    head = http.head(r.json()["upload_url"])
    assert int(head.headers["Upload-Offset"]) < len(data)


# -- 4. a cancelled job's end report -----------------------------------------------------------------------------------
def test_a_cancelled_job_refuses_another_end_state(http, service):  # noqa: F811
    """A job cancelled while it runs, then reported succeeded by its worker (which had not seen the cancel yet).
    Before: 200 and the job ended ``succeeded`` (the user's cancel undone). After: 409 naming the job and its state,
    the job still cancel-requested; the worker's ``cancelled`` is taken; any later report is 409 too."""
    w = auth(service.worker_token)
    job = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"},
                    headers=auth(service.user_token)).json()
    spec = http.post("/worker/v1/jobs/pull", json={}, headers=w).json()
    h = {**w, "X-Plexloc-Attempt": str(spec["attempt"])}
    assert http.post(f"/worker/v1/jobs/{job['id']}/ping", json={"stage": "running"}, headers=h).status_code == 200
    assert http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(service.user_token)).status_code == 200
    for state in ("succeeded", "failed"):
        r = http.post(f"/worker/v1/jobs/{job['id']}/finish", json={"state": state, "log": ["x"]}, headers=h)
        assert r.status_code == 409, r.text
        assert job["id"] in r.json()["detail"] and "cancel" in r.json()["detail"] and state in r.json()["detail"], r.text
        assert http.get(f"/api/v1/jobs/{job['id']}", headers=auth(service.user_token)).json()["state"] == "running"
    r = http.post(f"/worker/v1/jobs/{job['id']}/finish", json={"state": "cancelled"}, headers=h)
    assert r.status_code == 200, r.text
    assert http.get(f"/api/v1/jobs/{job['id']}", headers=auth(service.user_token)).json()["state"] == "cancelled"
    r = http.post(f"/worker/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=h)
    assert r.status_code == 409 and r.json()["state"] == "cancelled" and job["id"] in r.json()["detail"], r.text


def test_a_worker_that_missed_the_cancel_ends_the_job_cancelled(env, caplog):
    """The worker does not ping while its command runs (long ping interval), so it has not seen the cancel when it
    reports the end. Before: the job ended ``succeeded``. After: the server refuses (409), the worker logs that,
    reports ``cancelled`` instead, and runs on to its next job."""
    svc, live, c = env
    caplog.set_level(logging.WARNING, logger="plexloc.worker")
    agent = agent_mod.Agent(live.url, svc.worker_token, hardware=agent_mod.Hardware(cpus=2, memory_mb=8000),
                            ping_s=60.0, poll_s=0.05, kill_grace_s=1.0, runtime=None)
    ran = []
    t = threading.Thread(target=lambda: ran.append(agent.run(max_jobs=2)), daemon=True)
    try:
        job = c.submit("ticker", entry_point="tick", config={"n": 10, "dt": 0.1})
        t.start()
        deadline = time.monotonic() + 20
        while c.job(job["id"])["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        c.cancel(job["id"])
        j = c.wait(job["id"], timeout=20)
        nxt = c.submit("ticker", entry_point="tick")
        assert c.wait(nxt["id"], timeout=20)["state"] == "succeeded"
        t.join(timeout=10)
        assert ran == [2]
    finally:
        agent.stop.set()
        t.join(timeout=10)
        agent.close()
    assert j["state"] == "cancelled", j
    assert any("409" in r.getMessage() and job["id"] in r.getMessage() for r in caplog.records), caplog.text


def test_a_ping_answered_5xx_keeps_its_log_lines_for_the_next(tmp_path):
    """A ping that the server answered 500 or 503 (a restart, its database away) lost its batch of log lines: only a
    network error put them back. Now they go out with the next ping, in order."""
    agent = agent_mod.Agent("http://127.0.0.1:9", "plxw_x", hardware=agent_mod.Hardware(cpus=1, memory_mb=100),
                            runtime=None, work_dir=tmp_path)
    rep = agent_mod._Reporter(agent, "job", 60.0)
    posted: list[list[str]] = []
    answers = [503, 500, 200]

    class Answer:
        def __init__(self, code):
            self.status_code = code

        def json(self):
            return {}

    class FakeHTTP:
        def post(self, url, json, headers):
            code = answers.pop(0)
            if code == 200:
                posted.append(list(json["log"]))
            return Answer(code)

    real = agent.http
    agent.http = FakeHTTP()
    try:
        for i in range(5):
            rep.log(f"line {i}")
        rep.flush()  # 503: kept
        rep.flush()  # 500: kept
        assert rep.pending() == 5 and posted == []
        rep.flush()  # 200: sent, in order
        assert posted == [[f"line {i}" for i in range(5)]] and rep.pending() == 0
    finally:
        agent.http = real
        rep.close()
        agent.close()
