"""Review of the service walk (session 48): what the review found wrong in its changes, each test failing on the code
before its fix, and checks of what it found right (the attempt fence after a disabled worker's lease was ended,
the per-job space on PostgreSQL)."""

from __future__ import annotations

import logging
import socket

from service_support import LiveServer, all_log_lines, fresh_postgres_db, make_service, postgres_server  # noqa: F401

from plexloc.service import admin
from plexloc.service import jobs as ops
from plexloc.service.agent import Agent, _Reporter
from plexloc.service.apps import Hardware
from plexloc.service.client import Client

HW = Hardware(cpus=2, memory_mb=8000)


def _agent(url: str, token: str) -> Agent:
    return Agent(url, token, hardware=HW, runtime=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_disabling_a_worker_on_the_jobs_last_attempt_sends_it_back_to_the_queue(tmp_path, capsys):
    """``plexloc admin disable worker w1`` said the job "goes back to the queue", but on its last attempt (the server's
    max_attempts, 1 here) the sweep failed it: "lease lost 1 times (worker stopped answering)". The attempt the
    administrator ended does not count now."""
    from plexloc.cli.main import main

    svc = make_service(tmp_path, max_attempts=1)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick")
        agent = _agent(live.url, svc.worker_token)
        assert agent.pull()["attempt"] == 1
        assert main(["admin", "--data-dir", str(svc.settings.data_dir), "disable", "worker", "w1"]) == 0
        assert f"its job(s) {job['id']} go back to the queue" in capsys.readouterr().err
        agent.close()
        with svc.sessions().begin() as s:
            assert ops.sweep(s) == [(job["id"], "queued")]
        answer = client.job(job["id"])
        assert (answer["state"], answer["error"], answer["attempts"], answer["max_attempts"]) == ("queued", None, 1, 2)
        assert ("[service] worker w1 was disabled by the service's administrator during attempt 1: the job goes back to "
                "the queue (that attempt does not count: 1 left)") in all_log_lines(client, job["id"])
        other = _agent(live.url, svc.worker2_token)  # the job's next (and last) attempt
        assert other.pull()["attempt"] == 2
        other.close()
    svc.app.state.engine.dispose()


def test_a_disabled_workers_attempt_cannot_ping_upload_or_finish_once_another_worker_holds_the_job(tmp_path):
    """Could a job run twice, the disabled worker still uploading while another has taken it? Its token refused, then
    (re-enabled) the attempt fence: the old attempt's ping, output and finish are all refused, and the job's outputs
    are the new attempt's alone."""
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick")
        old = _agent(live.url, svc.worker_token)
        assert old.pull()["attempt"] == 1
        with svc.sessions().begin() as s:
            assert admin.set_active(s, "worker", "w1", False) == [job["id"]]
        head = {"X-Plexloc-Attempt": "1"}
        assert old.http.post(f"/jobs/{job['id']}/ping", json={"progress": 0.5}, headers=head).status_code == 401
        with svc.sessions().begin() as s:
            ops.sweep(s, storage=svc.app.state.storage)
        new = _agent(live.url, svc.worker2_token)
        assert new.pull()["attempt"] == 2
        with svc.sessions().begin() as s:  # the administrator changes their mind: w1's token is good again
            admin.set_active(s, "worker", "w1", True)
        refused = [
            old.http.post(f"/jobs/{job['id']}/ping", json={"progress": 0.5}, headers=head),
            old.http.post(f"/jobs/{job['id']}/outputs", json={"name": "locs.csv", "size": 3, "kind": "output"}, headers=head),
            old.http.post(f"/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=head),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
        assert client.job(job["id"])["state"] == "assigned" and client.job(job["id"])["worker"] is not None
        assert client.outputs(job["id"]) == []
        old.close()
        new.close()
    svc.app.state.engine.dispose()


def test_a_running_jobs_pings_to_a_server_that_is_down_are_said_once(tmp_path, caplog):
    """The walk's fix made an idle worker say once that its server is down; a worker running a job said "job J: ping
    failed: [Errno 111] Connection refused" at every ping (each 2 s: 30 lines a minute of a server's restart). Now
    once, and once when the server answers again; the lines logged meanwhile reach the server."""
    svc = make_service(tmp_path)
    caplog.set_level(logging.INFO, logger="plexloc.worker")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick")
        agent = _agent(live.url, svc.worker_token)
        spec = agent.pull()
        rep = _Reporter(agent, job["id"], 2.0, spec["attempt"])
        up = agent.http.base_url
        agent.http.base_url = f"http://127.0.0.1:{_free_port()}/worker/v1"  # the server down (nothing listens there)
        for i in range(5):
            rep.log(f"line {i} while the server is down")
            rep.flush()
        agent.http.base_url = up
        rep.flush()
        rep.close()
        agent.close()
        lines = [r.getMessage() for r in caplog.records if r.name == "plexloc.worker"]
        assert not any("ping failed" in line for line in lines), lines
        down = [line for line in lines if "cannot ping the server" in line]
        assert len(down) == 1 and down[0].startswith(f"job {job['id']}: cannot ping the server ("), lines
        assert sum(f"job {job['id']}: the server answers pings again" in line for line in lines) == 1, lines
        logged = all_log_lines(client, job["id"])
        assert [line for line in logged if "while the server is down" in line] == \
            [f"line {i} while the server is down" for i in range(5)]
    svc.app.state.engine.dispose()


def test_the_openapi_schema_describes_a_jobs_note_and_output_bytes_and_cancel_answers_them(tmp_path):
    """The walk added ``note`` and ``output_bytes`` to a job's answer with code comments only: /openapi.json (the API's
    documentation at /docs) said nothing of them. A cancel's answer gave output_bytes null, where the others give it."""
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        props = client.http.get(f"{live.url}/openapi.json").json()["components"]["schemas"]["JobOut"]["properties"]
        assert "outputs and log" in props["output_bytes"]["description"], props["output_bytes"]
        assert "queued job is not taken" in props["note"]["description"], props["note"]
        job = client.submit("ticker", entry_point="tick")
        assert client.cancel(job["id"])["output_bytes"] == 0
    svc.app.state.engine.dispose()


def test_output_bytes_on_postgresql(tmp_path, postgres_server):  # noqa: F811
    """The grouped query of the jobs list (one sum per job) on PostgreSQL, whose sum of a bigint is a numeric: whole
    numbers in the answer, 0 for a job without files, the job's own sum for each."""
    svc = make_service(tmp_path, db_url=fresh_postgres_db(postgres_server))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        done = client.submit("ticker", entry_point="tick", config={"n": 2})
        agent = _agent(live.url, svc.worker_token)
        assert agent.execute(agent.pull()) == "succeeded"
        agent.close()
        queued = client.submit("ticker", entry_point="tick", config={"n": 2})
        from sqlalchemy import func, select

        from plexloc.service.db import File

        with svc.sessions().begin() as s:
            size = s.scalar(select(func.sum(File.size)).where(File.job_id == done["id"]))
        listed = {j["id"]: j["output_bytes"] for j in client.jobs()}
        assert listed == {done["id"]: int(size), queued["id"]: 0} and type(listed[done["id"]]) is int and size > 0
        assert client.job(done["id"])["output_bytes"] == int(size)
    svc.app.state.engine.dispose()



def test_a_worker_whose_server_is_down_asks_again_at_most_10_polls_apart(tmp_path):
    """The walk's back-off grew the pause between pulls to 30 polls (30 s): measured with a server down 63 s, the
    worker asked again 28 s after it was back (its pulls at 31 and 61 s, then 91). At most 10 polls now (a 63-s outage:
    back within 10 s), 9 pulls in the first minute where an idle worker makes 60."""
    import threading

    class Pauses(threading.Event):  # the agent's stop event: records each pause instead of sleeping it
        def __init__(self):
            super().__init__()
            self.pauses: list[float] = []

        def wait(self, timeout=None):
            self.pauses.append(timeout)
            if len(self.pauses) >= 9:
                self.set()
            return self.is_set()

    agent = Agent(f"http://127.0.0.1:{_free_port()}", "plxw_x", hardware=HW, runtime=None, poll_s=1.0)
    agent.stop = Pauses()
    agent.run()
    agent.close()
    assert agent.stop.pauses == [1, 2, 4, 8, 10, 10, 10, 10, 10]
    asked = [sum(agent.stop.pauses[:i]) for i in range(len(agent.stop.pauses) + 1)]  # when each pull was made
    assert sum(t < 60 for t in asked) == 9 and min(t for t in asked if t >= 63) - 63 <= 10


def test_a_container_runtime_that_fails_beside_one_that_works_is_said_with_the_one_used(tmp_path, monkeypatch):
    """The walk's probe warned "docker does not work here ...; this worker takes no job that names a container image"
    while it used apptainer (the start line said "containers: apptainer"). Now the warning names the one used."""
    from plexloc.service.containers import usable_runtime

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, code, said in [("docker", 1, "Cannot connect to the Docker daemon"), ("apptainer", 0, "apptainer 1.3")]:
        (bin_ / name).write_text(f"#!/bin/sh\necho '{said}' >&2\nexit {code}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))
    monkeypatch.delenv("PLEXLOC_CONTAINER_RUNTIME", raising=False)
    runtime, warnings = usable_runtime()
    assert runtime.name == "apptainer" and warnings == [
        f"warning: the container runtime docker ({bin_ / 'docker'}) does not work here: '{bin_ / 'docker'} info' failed "
        f"(exit 1): Cannot connect to the Docker daemon; using apptainer ({bin_ / 'apptainer'}) instead (start docker's "
        "service or give this user access to it, or choose another with --container-runtime NAME|none)"], warnings
    (bin_ / "apptainer").unlink()
    runtime, warnings = usable_runtime()
    assert runtime is None and len(warnings) == 1 and "; this worker takes no job that names a container image (start" \
        in warnings[0], warnings


def test_serve_on_an_address_that_is_not_this_machines_says_so(tmp_path, capsys):
    """``plexloc serve --host`` an address of another machine (a typo in the lab's IP): the walk's check said "Cannot
    assign requested address (another plexloc serve or another program uses it: stop it, or choose another with
    --port)", a fix that does not apply. Now the fix names --host."""
    from plexloc.cli.main import main

    port = _free_port()
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--host", "192.0.2.1", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "plexloc service on" not in out, out
    assert err.strip() == (f"plexloc serve: error: cannot listen on 192.0.2.1:{port}: Cannot assign requested address "
                           "(192.0.2.1 is not an address of this machine: give one of its own with --host, 0.0.0.0 for "
                           "all of them or 127.0.0.1 for this machine alone)"), err
