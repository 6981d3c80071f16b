"""The job service, session 44: configurations checked at submission, uploads that race a deletion, and the worker's
lease kept while it uploads its log."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest
import yaml
from service_support import (  # noqa: F401 (fixtures)
    EXAMPLE, AgentThread, LiveServer, auth, fresh_postgres_db, http, live, make_service, postgres_server, service,
)

from plexloc.service import api_storage, transfer
from plexloc.service.client import Client
from plexloc.service.db import File

GOOD = yaml.safe_load(EXAMPLE.read_text())


def _upload(http, token: str, name: str, data: bytes) -> dict:
    r = http.post("/api/v1/files", json={"name": name, "size": len(data)}, headers=auth(token))
    assert r.status_code == 201, r.text
    up = r.json()
    assert http.put(up["upload_url"], content=data).status_code == 200
    r = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def _yaml(data) -> bytes:
    return yaml.safe_dump(data).encode()


def _submit(http, token: str, app: str, inputs: dict, **kw):
    return http.post("/api/v1/jobs", json={"application": app, "inputs": inputs, **kw}, headers=auth(token))


# -- uploads that race a deletion ----------------------------------------------------------------------------------------
def _register(http, token: str, data: bytes) -> dict:
    r = http.post("/api/v1/files", json={"name": "movie.tif", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                  headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def _stored(service) -> list:  # noqa: F811
    return sorted(p.name for p in service.app.state.storage.root.rglob("*") if p.is_file())


def test_a_file_deleted_between_the_puts_check_and_its_part_file_leaves_nothing(http, live, service, monkeypatch):  # noqa: F811
    """The user deletes the file after the PUT checked that it is registered and before the PUT opened its part file.
    Before: the open made the part file again and the bytes went into it (here all of them: moved into place), owned
    by no file, never deleted (200). After: 404 that says so, nothing stored."""
    data = b"x" * 1000
    up = _register(http, service.user_token, data)
    real = api_storage._begin

    def delete_then_begin(store, key, offset):
        r = httpx.delete(f"{live.url}/api/v1/files/{up['file']['id']}", headers=auth(service.user_token), timeout=30)
        assert r.status_code == 204, r.text
        return real(store, key, offset)

    monkeypatch.setattr(api_storage, "_begin", delete_then_begin)
    r = http.put(up["upload_url"] + "&offset=0", content=data)
    assert r.status_code == 404 and "deleted" in r.json()["detail"], r.text
    assert _stored(service) == []
    # a resumed upload (offset past the part's end) raced the same way: its 409 leaves no empty part behind either
    up = _register(http, service.user_token, data)
    r = http.put(up["upload_url"] + "&offset=10", content=data[10:])
    assert r.status_code == 404, r.text
    assert _stored(service) == []


def test_a_file_deleted_while_its_bytes_arrive_gets_a_clear_answer_and_leaves_nothing(http, live, service, monkeypatch):  # noqa: F811
    """The file is deleted (its part file with it) while the PUT writes its bytes. Before: the PUT went on writing into
    the deleted part and, at the last byte, answered a bare 500 (the part to move into place was gone). After: 404 that
    says the file was deleted meanwhile; nothing stored."""
    data = b"y" * 1000
    up = _register(http, service.user_token, data)
    real = api_storage.write_all
    once = []

    def delete_then_write(f, chunk):
        if not once:
            once.append(1)
            r = httpx.delete(f"{live.url}/api/v1/files/{up['file']['id']}", headers=auth(service.user_token), timeout=30)
            assert r.status_code == 204, r.text
        return real(f, chunk)

    monkeypatch.setattr(api_storage, "write_all", delete_then_write)
    r = http.put(up["upload_url"] + "&offset=0", content=data)
    assert r.status_code == 404 and "deleted while this request" in r.json()["detail"], r.text
    assert _stored(service) == []


def test_a_part_file_removed_by_other_hands_mid_upload_is_said_and_the_upload_resumes(http, service, monkeypatch):  # noqa: F811
    """The part file is removed (by hand, a clean-up) while the PUT writes, its file still registered. Before: a bare
    500. After: 409 with the offset to resume from (0), and the client's upload then completes."""
    data = b"z" * 1000
    up = _register(http, service.user_token, data)
    with service.sessions().begin() as s:
        key = s.get(File, up["file"]["id"]).storage_key
    part = service.app.state.storage.part_path(key)
    real = api_storage.write_all
    once = []

    def remove_then_write(f, chunk):
        if not once:
            once.append(1)
            part.unlink()
        return real(f, chunk)

    monkeypatch.setattr(api_storage, "write_all", remove_then_write)
    r = http.put(up["upload_url"] + "&offset=0", content=data)
    assert r.status_code == 409 and r.headers["Upload-Offset"] == "0" and "upload again from byte 0" in r.json()["detail"], r.text
    monkeypatch.setattr(api_storage, "write_all", real)
    transfer.upload(http, up["upload_url"], _write(service, data))
    r = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(service.user_token))
    assert r.status_code == 200 and r.json()["sha256"] == hashlib.sha256(data).hexdigest(), r.text


def _write(service, data: bytes):
    path = service.settings.data_dir.parent / "upload.bin"
    path.write_bytes(data)
    return path


def test_deleters_remove_the_row_before_the_bytes_on_postgresql(tmp_path, postgres_server, monkeypatch):  # noqa: F811
    """PostgreSQL runs requests at once: a PUT asking whether its file is still registered while a delete of it is
    under way must wait for that delete and see it. Before: the delete removed the bytes first and the row only at its
    commit, so a PUT that asked in between saw the file, made its part again and kept it. After: the row's deletion is
    flushed (and locked) before the bytes go; the PUT's question waits for the commit and answers 'deleted'."""
    svc = make_service(tmp_path, db_url=fresh_postgres_db(postgres_server))
    store = svc.app.state.storage
    answers: list[bool] = []
    real_delete = type(store).delete

    def ask(key):  # the PUT's question (api_storage._still_registered): the row, locked
        from sqlalchemy import select

        with svc.sessions()() as s:
            answers.append(s.scalar(select(File.id).where(File.storage_key == key).with_for_update()) is not None)
            s.commit()

    def delete_and_ask(self, key):
        t = threading.Thread(target=ask, args=(key,))
        t.start()
        t.join(1.0)  # before the fix it answers at once (True); after, it waits for the deleting transaction
        answered_early = bool(answers)
        real_delete(self, key)
        return answered_early, t

    with LiveServer(svc.app) as srv, httpx.Client(base_url=srv.url, timeout=30) as h:
        up = _register(h, svc.user_token, b"abc")
        seen: list = []
        monkeypatch.setattr(type(store), "delete", lambda self, key: seen.append(delete_and_ask(self, key)))
        assert h.delete(f"/api/v1/files/{up['file']['id']}", headers=auth(svc.user_token)).status_code == 204
        (answered_early, t), = seen
        t.join(30)
        assert not answered_early and answers == [False], answers
    svc.app.state.engine.dispose()


# -- the worker's lease while it uploads its log ---------------------------------------------------------------------------
def test_the_worker_keeps_its_lease_while_it_uploads_its_log(tmp_path, monkeypatch):
    """The worker stopped pinging before it uploaded its own log.txt: a log upload longer than the lease (a long log,
    a slow link, a busy server) lost the lease of a job that had ended. The job was taken from the worker, its outputs
    deleted, and run again (here: out of attempts, failed). After: the pings go on until the finish; succeeded on
    attempt 1."""
    svc = make_service(tmp_path, lease_s=2.0, sweep_interval_s=0.1)
    real = transfer.upload

    def slow_log(http, url, path, **kw):
        if str(path).endswith("log.txt"):
            time.sleep(5.0)  # 2.5 leases without a ping before the fix
        return real(http, url, path, **kw)

    monkeypatch.setattr(transfer, "upload", slow_log)
    with LiveServer(svc.app) as srv, Client(srv.url, svc.user_token) as c:
        with AgentThread(srv.url, svc.worker_token):
            job = c.submit("ticker", entry_point="tick", config={"n": 2, "dt": 0.01})
            j = c.wait(job["id"], timeout=90)
        assert j["state"] == "succeeded" and j["attempts"] == 1, j
        assert {o["name"] for o in c.outputs(job["id"])} == {"ticks.txt", "log.txt"}
    svc.app.state.engine.dispose()
