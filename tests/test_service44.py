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
