"""Session 51's job-service fixes: a transfer whose signed link expired gets a fresh one and resumes; migration 0006
stands alone; a training job that kept no model.pt is advised a new job, and a fit's advice names a training job;
two first uploads of one file keep one copy; a store never freed fails the job after one wait; ``plexloc status
--wait`` goes on across a restart of the server."""

from __future__ import annotations

import sys
import textwrap
import time

import httpx
import pytest

from service_support import AgentThread, LiveServer, all_log_lines, make_service

from plexloc.service.client import Client

#: copies its input into the output folder (the bytes the worker fetched, to compare)
COPIER = """
import pathlib, shutil, sys
shutil.copy(sys.argv[1], pathlib.Path(sys.argv[2]) / "copy.bin")
"""


def copier_app(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "copier.py").write_text(COPIER)
    (folder / "copier.yaml").write_text(textwrap.dedent(f"""
        name: copier
        versions:
          "1":
            entry_points:
              run:
                command: ["{sys.executable}", "{folder / 'copier.py'}", "{{input.data}}", "{{output_dir}}"]
                inputs: {{data: {{kind: data}}}}
                outputs: [{{path: copy.bin, required: true}}]
                hardware: {{cpus: 1, memory_mb: 10}}
                timeout_s: 60
        """))
    return folder


class CutOnce(httpx.HTTPTransport):
    """Loopback transport that cuts the first download from the store after 1.5 MB, then waits ``stall_s``
    (past the signed link's life) before the cut is seen; records every store request's Range header."""

    def __init__(self, stall_s: float):
        super().__init__()
        self.stall_s, self.cut, self.ranges = stall_s, False, []

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method != "GET" or "/storage/v1/" not in request.url.path:
            return response
        self.ranges.append((request.headers.get("range"), response.status_code))
        if self.cut or response.status_code != 200:
            return response
        self.cut = True
        inner, stall = response.stream, self.stall_s

        class Stream(httpx.SyncByteStream):
            def __iter__(self):
                sent = 0
                for data in inner:  # (the download writes whole MiB chunks: 1.5 MiB leaves 1 MiB in its part file)
                    yield data
                    sent += len(data)
                    if sent >= 1_500_000:
                        break
                time.sleep(stall)
                raise httpx.ReadError("connection cut (test)")

            def close(self):
                inner.close()

        return httpx.Response(response.status_code, headers=response.headers, stream=Stream(),
                              extensions=response.extensions, request=request)


@pytest.fixture
def short_links(tmp_path):
    svc = make_service(tmp_path, url_ttl_s=2, apps_dirs=[copier_app(tmp_path / "apps")])
    with LiveServer(svc.app) as live:
        yield svc, live
    svc.app.state.engine.dispose()


def test_a_download_cut_after_its_link_expired_resumes_with_a_fresh_link(short_links, tmp_path):
    """An input's download that outlived its signed URL (2 s here, an hour by default) and was then cut: the worker
    asks for a fresh link and resumes from the bytes it has. Before, the retry's "refused (403)" failed the job."""
    svc, live = short_links
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with Client(live.url, svc.user_token) as c:
        fid = c.upload(src)["id"]
        job = c.submit("copier", inputs={"data": [fid]})
        cut = CutOnce(stall_s=3.2)
        worker = AgentThread(live.url, svc.worker_token)
        worker.agent.bytes_http.close()
        worker.agent.bytes_http = httpx.Client(timeout=60, transport=cut)
        with worker:
            done = c.wait(job["id"], timeout=60)
        lines = all_log_lines(c, job["id"])
        assert done["state"] == "succeeded", (done.get("error"), lines)
        assert any("asking the server for a fresh one and resuming" in line for line in lines), lines
        # the fresh link's request asked for the bytes after those kept (a range), not the whole file again
        resumed = [r for r, status in cut.ranges if r is not None and status == 206]
        assert resumed and int(resumed[-1].split("=")[1].rstrip("-")) == 1024 * 1024, cut.ranges
        assert any(status == 403 for _, status in cut.ranges), cut.ranges
        out = tmp_path / "out"
        c.download(job["id"], out)
        assert (out / "copy.bin").read_bytes() == data


class StallFirstPut(httpx.HTTPTransport):
    """Loopback transport whose first PUT to the store waits ``stall_s`` (past the link's life) and is then cut."""

    def __init__(self, stall_s: float):
        super().__init__()
        self.stall_s, self.cut, self.statuses = stall_s, False, []

    def handle_request(self, request):
        if request.method == "PUT" and "/storage/v1/" in request.url.path and not self.cut:
            self.cut = True
            time.sleep(self.stall_s)
            raise httpx.WriteError("connection cut (test)")
        response = super().handle_request(request)
        if "/storage/v1/" in request.url.path:
            self.statuses.append((request.method, response.status_code))
        return response


def test_the_client_renews_an_expired_link_for_an_upload_and_a_download(short_links, tmp_path):
    """``plexloc submit``'s upload and ``plexloc download`` whose link expired before a cut transfer was resumed: a
    fresh link (``POST /files/ID/upload-url``; the outputs listed again), where both failed with "refused (403)"."""
    svc, live = short_links
    data = bytes(range(256)) * (3 * 4096)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with Client(live.url, svc.user_token) as c:
        put = StallFirstPut(stall_s=3.2)
        c.bytes_http.close()
        c.bytes_http = httpx.Client(timeout=60, transport=put)
        f = c.upload(src)
        assert f["state"] == "ready" and f["size"] == len(data)
        assert ("HEAD", 403) in put.statuses and put.statuses[-1][0] == "PUT", put.statuses
        job = c.submit("copier", inputs={"data": [f["id"]]})
        with AgentThread(live.url, svc.worker_token):
            assert c.wait(job["id"], timeout=60)["state"] == "succeeded"
        cut = CutOnce(stall_s=3.2)
        c.bytes_http.close()
        c.bytes_http = httpx.Client(timeout=60, transport=cut)
        out = tmp_path / "out"
        c.download(job["id"], out, kinds=("output",))
        assert (out / "copy.bin").read_bytes() == data
        assert [s for _, s in cut.ranges] == [200, 403, 206], cut.ranges


def _old_logs(jobs: int, seed: int) -> dict[str, list[str]]:
    import random

    from plexloc.service.words import CLAIMED

    rng = random.Random(seed)
    kinds = ["tick", "plexloc fit: warning: dim", "x.py:3: UserWarning: b", "warning: noise", "plexloc fit: WARNING: c",
             "plexloc fit foo: warning: d", "WARNING: a logger's", "plexloc train: warning: slow"]
    logs = {}
    for j in range(jobs):
        lines = []
        for attempt in range(rng.randint(1, 3)):
            lines.append(f"{CLAIMED}w1 (attempt {attempt + 1})")
            lines += [rng.choice(kinds) for _ in range(rng.randint(0, 12))]
        logs[f"j{j}"] = lines
    logs["none"] = []
    logs["unclaimed"] = ["warning: from before the claim line existed", "tick", "plexloc fit: warning: x"]
    return logs


def test_migration_0006_stands_alone_and_gives_the_same_rows(tmp_path, monkeypatch):
    """Migration 0006 imported today's rules and model (``plexloc.service.words.warning_counts``, ``db.JobLog``): a
    later change to them would have changed (or broken) what upgrading an old database gives. It now holds the table
    and the rules of its revision. Upgraded from 0005 with today's rules broken on purpose, it gives the rows that
    session 50's rules give."""
    import ast
    from pathlib import Path

    from alembic import command
    from sqlalchemy import text

    import plexloc.service.words as words
    from plexloc.service import db
    from service_support import database_at_0005

    source = Path(db.__file__).parent / "migrations" / "versions" / "0006_job_warning_count.py"
    imported = [getattr(n, "module", None) or n.names[0].name for n in ast.walk(ast.parse(source.read_text()))
                if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [m for m in imported if m.startswith("plexloc")], imported

    logs = _old_logs(120, seed=3)
    engine, cfg = database_at_0005(tmp_path / "old.db", logs)
    with engine.begin() as conn:
        expected = words.warning_counts(conn)  # session 50's rules, on the revision-0005 table
    assert len(expected) > 50 and "unclaimed" in expected and "none" not in expected
    # today's rules, changed: the migration must not follow them
    monkeypatch.setattr(words, "warning_counts", lambda *a, **k: pytest.fail("0006 used today's warning_counts"))
    monkeypatch.setattr(words, "_PLEXLOC", __import__("re").compile("(?!)"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        rows = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    engine.dispose()
    assert rows == {jid: expected.get(jid, 0) for jid in logs}


def test_training_advice_names_what_the_job_kept_and_a_fits_advice_names_a_training_job(tmp_path):
    """A cancelled training (no outputs kept) advised ``--input init_from=job:C/model.pt``, which is refused: it now
    says a new job. A fit's "train it longer (plexloc train CONFIG --out RUN --resume --minutes M)" named a local
    command: it now names a training job from the fit's own model (``job:T/model.pt``)."""
    from sqlalchemy import select

    from plexloc.service.db import File, Job, JobInput, JobLog, User

    svc = make_service(tmp_path)
    poor = ("plexloc train: warning: the model detects poorly on its validation set (JI 2.0 % after 10 steps, 90 "
            "samples/s on cpu); it is not ready to fit movies: train on (--resume --minutes M), on a GPU")
    fit_said = ("plexloc fit: warning: the model detected poorly on its own validation set (JI 2.0 % at step 10, 0.1 "
                "min of training): it is not trained enough to fit movies; train it longer (plexloc train CONFIG --out "
                "RUN --resume --minutes M), on a GPU")
    with svc.sessions().begin() as s:
        uid = s.scalar(select(User.id).where(User.name == "alice"))

        def job(jid, app, ep, state, line):
            s.add(Job(id=jid, user_id=uid, application=app, version="0.1", entry_point=ep, state=state,
                      warning_count=1, error="cancelled by the user" if state == "cancelled" else None))
            s.flush()
            s.add(JobLog(job_id=jid, line=line))

        job("T", "plexloc-train", "train", "succeeded", poor)
        job("C", "plexloc-train", "train", "cancelled", poor)
        job("F", "plexloc-fit", "fit", "succeeded", fit_said)
        s.add(File(id="m1", user_id=uid, name="model.pt", size=1, storage_key="k/m1", kind="artifact", state="ready",
                   job_id="T"))
        s.flush()
        s.add(JobInput(job_id="F", slot="model", position=0, file_id="m1"))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        said = {j: c.job(j)["warnings"] for j in ("T", "C", "F")}
    svc.app.state.engine.dispose()
    assert "train on (--input init_from=job:T/model.pt --set minutes=M)" in said["T"][0], said
    assert "job:C/model.pt" not in said["C"][0], said
    assert ("train on (a new job, as job C kept no model.pt to continue from, with --set minutes=M), on a GPU"
            in said["C"][0]), said
    assert ("train it longer (a new plexloc-train job with --input config=CONFIG --input init_from=job:T/model.pt "
            "--set minutes=M), on a GPU") in said["F"][0], said
    assert "plexloc train CONFIG" not in said["F"][0]


def test_two_first_uploads_of_the_same_file_at_once_keep_one_copy(tmp_path):
    """Two submissions upload the same new file at once (neither finds the other's: it is still arriving): both were
    stored, counted twice against the quota. Completed with ``reuse`` (plexloc submit, the web page), the second
    answers the first's file and its own copy is removed; without it (``--no-reuse``) both stay."""
    from plexloc.service import transfer

    svc = make_service(tmp_path)
    src = tmp_path / "cfg.bin"
    src.write_bytes(b"x" * 300_000)
    sha = transfer.sha256_of(src)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        created = [c._post("/files", {"name": "cfg.bin", "size": src.stat().st_size, "sha256": sha}) for _ in range(2)]
        for up in created:  # both arrive before either is complete
            transfer.upload(c.bytes_http, up["upload_url"], src)
        a, b = created[0]["file"]["id"], created[1]["file"]["id"]
        assert c._post(f"/files/{a}/complete?reuse=true")["id"] == a
        assert c._post(f"/files/{b}/complete?reuse=true")["id"] == a
        assert [f["id"] for f in c.files(kind="upload")] == [a]
        assert c.usage()["file_bytes"] == 300_000
        # the client's upload of a file already complete is answered with it, marked reused (found before the upload;
        # Client.upload's other reuse, a copy completed first by another upload, is the server's answer above)
        again = c.upload(src, reuse=True)  # (found before the upload: reused at once)
        assert again["id"] == a and again["reused"]
        third = c._post("/files", {"name": "cfg.bin", "size": src.stat().st_size, "sha256": sha})
        transfer.upload(c.bytes_http, third["upload_url"], src)
        assert c._post(f"/files/{third['file']['id']}/complete")["id"] == third["file"]["id"]  # no reuse: kept
        assert len(c.files(kind="upload")) == 2
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.stat().st_size == 300_000]
    svc.app.state.engine.dispose()
    assert len(stored) == 2, stored


def test_a_store_never_freed_fails_the_job_once_saying_why_and_the_admin_sees_it(tmp_path, caplog):
    """The store stays full: the worker waited ``storage_wait_s`` for the output, then as long again for log.txt (20
    min by default), and the job failed with "ServiceError: HTTP 507: ticks.txt: ..." after a traceback in the worker's
    log; the server's log named neither the job nor its end, and the claim (a pull) was left out of it. Now the job
    fails after one wait, saying the store stayed full and its outputs were not kept, and the server logs the claim,
    the refused output's job and the job's end with its error."""
    import logging

    svc = make_service(tmp_path)
    svc.app.state.storage.free_bytes = lambda: 0
    wait = 3.0
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with caplog.at_level(logging.INFO, logger="plexloc"):
                with AgentThread(live.url, svc.worker_token, storage_wait_s=wait):
                    job = c.submit("ticker", entry_point="tick", config={"n": 1})
                    t0 = time.monotonic()
                    done = c.wait(job["id"], timeout=60)
                    took = time.monotonic() - t0
        jid = job["id"]
        assert done["state"] == "failed"
        assert done["error"].startswith("the server's file store stayed full for "), done["error"]
        assert "outputs were not kept (ticks.txt: the server's file store has 0 bytes free" in done["error"]
        assert "submit the job again" in done["error"]
        assert took < 1.6 * wait, took  # one wait, not one for the output and one more for log.txt
        said = [r.getMessage() for r in caplog.records if r.name.startswith("plexloc.service")]
        assert any(m.startswith(f"job {jid} (ticker 1.0 tick) claimed by worker w1 (attempt 1)") for m in said), said
        assert any(f"an output of job {jid}) refused" in m for m in said), said
        assert any(m.startswith(f"job {jid} failed on worker w1: the server's file store stayed full") for m in said), said
        assert not [r for r in caplog.records if r.name == "plexloc.worker" and r.exc_info], "a traceback was logged"
    finally:
        svc.app.state.engine.dispose()


def test_status_wait_goes_on_across_a_restart_of_the_server(tmp_path, capsys):
    """``plexloc status JOB --wait`` asked while the server restarts (walk: serve stopped and started again under a
    running training) ended at once, exit 2, "cannot reach the server: ConnectError"; the job went on and succeeded.
    Now the wait says once that the server does not answer and waits for it."""
    import threading

    from plexloc.cli.main import main
    from plexloc.service.app import create_app

    svc = make_service(tmp_path)
    first = LiveServer(svc.app)
    port = int(first.url.rsplit(":", 1)[1])
    with first, Client(first.url, svc.user_token) as c:
        job = c.submit("ticker", entry_point="tick", config={"n": 30, "dt": 0.1})
    rc: list = []
    with AgentThread(first.url, svc.worker_token):
        waiter = threading.Thread(target=lambda: rc.append(main(
            ["status", job["id"], "--wait", "--server", first.url, "--token", svc.user_token])))
        waiter.start()  # (the server is down: stopped above, as a restart begins)
        time.sleep(2.0)
        again = create_app(svc.settings)  # the server started again on the same data folder and port
        with LiveServer(again, port=port):
            waiter.join(timeout=60)
            assert not waiter.is_alive()
        again.state.engine.dispose()
    svc.app.state.engine.dispose()
    out, err = capsys.readouterr()
    assert rc == [0], (out, err)
    assert out.strip() == "succeeded", out
    assert " does not answer" in err and "waiting up to 30 s for it" in err, err
