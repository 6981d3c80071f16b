"""Review 43 of the job service, as a lab's users and admin would meet it. Each test failed on the code before its fix
(what it did then is in the test's docstring)."""

from __future__ import annotations

import httpx
import pytest
from service_support import (  # noqa: F401 (fixtures)
    AgentThread, LiveServer, auth, http, live, make_service, script_app, service, ticker_app,
)
from sqlalchemy import select

from plexloc.service.client import Client
from plexloc.service.db import File

#: a third-party application writing a file named log.txt among its results (as many do)
SCRIPT = r'''
import pathlib, sys
mode, out, arg = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
(out / "log.txt").write_text("the application's own log.txt: " + arg)
(out / "result.txt").write_text("42")
print("hello from the command", flush=True)
'''


@pytest.fixture
def env(tmp_path):
    svc = make_service(tmp_path, lease_s=5.0, sweep_interval_s=0.2,
                       apps_dirs=[ticker_app(tmp_path / "apps"), script_app(tmp_path / "own", SCRIPT, name="ownlog")])
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        yield svc, live, client
    svc.app.state.engine.dispose()


def test_an_output_named_log_txt_is_not_replaced_by_the_workers_log(env, tmp_path):
    """An application whose result is a file ``log.txt`` (outputs ``*.txt``). Before: the worker's own log, uploaded
    after the outputs under the same name, replaced it (the server keeps one file per output name): the job succeeded
    and the application's log.txt was gone, its bytes deleted from the store. After: both are kept, the worker's log
    under another name, of kind ``log``."""
    svc, live, client = env
    job = client.submit("ownlog", entry_point="run", config={"mode": "x", "arg": "abc"})
    with AgentThread(live.url, svc.worker_token):
        done = client.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded", done
    outs = {o["name"]: o for o in client.outputs(job["id"])}
    assert outs["log.txt"]["kind"] == "output", outs
    got = client.download(job["id"], tmp_path / "dl")
    texts = {p.relative_to(tmp_path / "dl").as_posix(): p.read_text() for p in got}
    assert texts["log.txt"] == "the application's own log.txt: abc"
    assert texts["result.txt"] == "42"
    logs = [o for o in outs.values() if o["kind"] == "log"]
    assert len(logs) == 1 and logs[0]["name"] != "log.txt", outs
    assert "hello from the command" in texts[logs[0]["name"]]


def test_an_output_name_taken_by_another_kind_is_refused(service, http):
    """The worker API: an output registered under a name the job already has as an output of another kind. Before:
    201, the first file deleted (bytes and row) and replaced. After: 409 naming the name and both kinds; the first
    file is kept. The same name and kind again (an upload begun again) still replaces."""
    h = http
    h.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"}, headers=auth(service.user_token))
    spec = h.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 2, "memory_mb": 8000}},
                  headers=auth(service.worker_token)).json()
    jid, W = spec["job_id"], auth(service.worker_token)
    first = h.post(f"/worker/v1/jobs/{jid}/outputs", json={"name": "log.txt", "size": 3}, headers=W)
    assert first.status_code == 201, first.text
    r = h.post(f"/worker/v1/jobs/{jid}/outputs", json={"name": "log.txt", "size": 5, "kind": "log"}, headers=W)
    assert r.status_code == 409, r.text
    assert "log.txt" in r.json()["detail"] and "output" in r.json()["detail"] and "log" in r.json()["detail"]
    again = h.post(f"/worker/v1/jobs/{jid}/outputs", json={"name": "log.txt", "size": 4}, headers=W)
    assert again.status_code == 201, again.text
    with service.sessions()() as s:
        rows = s.scalars(select(File).where(File.job_id == jid)).all()
    assert [(f.name, f.kind, f.size) for f in rows] == [("log.txt", "output", 4)]


@pytest.mark.parametrize("name", ["movie.tif\n", "a\n", "cells.tif\n"])
def test_a_name_ending_in_a_newline_is_refused(service, http, name):
    """File names are checked against a pattern ending in ``$``, which also matches before a final newline. Before: a
    user's file ``'movie.tif\\n'`` was registered (201) and a worker's output ``'a\\n'`` too (a file of that name written
    into the user's folder by plexloc download). After: 422 naming the field and the name, for both; nothing
    registered."""
    r = http.post("/api/v1/files", json={"name": name, "size": 3}, headers=auth(service.user_token))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "name" and repr(name) in r.json()["detail"]
    http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"}, headers=auth(service.user_token))
    W = auth(service.worker_token)
    jid = http.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 2, "memory_mb": 8000}}, headers=W).json()["job_id"]
    r = http.post(f"/worker/v1/jobs/{jid}/outputs", json={"name": "out/" + name, "size": 1}, headers=W)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "name"
    with service.sessions()() as s:
        assert s.scalars(select(File)).all() == []


def test_a_storage_key_ending_in_a_newline_is_refused():
    """Storage keys were checked with the same ``$``: ``'u/a/b\\n'`` passed check_key (a path the server never made)."""
    from plexloc.service.storage import StorageError, check_key

    assert check_key("u/a/b") == "u/a/b"
    for key in ("u/a/b\n", "u/../b", "/u/a", "u/a/"):
        with pytest.raises(StorageError, match="invalid storage key"):
            check_key(key)


def test_a_queued_job_of_an_application_no_longer_offered_says_so(tmp_path):
    """The admin restarts the server without an application (an apps folder left out, a version dropped in an upgrade)
    while a job of it is queued. No worker is offered it again (pull lists the server's applications), so the job waits
    queued for ever. Before: GET /jobs/ID said nothing (note None, a worker present with the hardware). After: the
    note names the application, version and entry point and says how to end the job."""
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        job = client.submit("ticker", entry_point="tick")
    svc.app.state.engine.dispose()
    from plexloc.service.app import create_app

    app = create_app(svc.settings.model_copy(update={"apps_dirs": []}))  # the shipped applications only
    with LiveServer(app) as live, Client(live.url, svc.user_token) as client:
        with httpx.Client(base_url=live.url) as h:  # a worker that could take it, were it offered
            r = h.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 8, "memory_mb": 64000}},
                       headers=auth(svc.worker_token))
            assert r.status_code == 204
        got = client.job(job["id"])
        assert got["state"] == "queued"
        assert got["note"] is not None and "ticker" in got["note"] and "1.0" in got["note"] and "tick" in got["note"]
        assert "no longer" in got["note"] and "--cancel" in got["note"], got["note"]
        assert client.cancel(job["id"])["state"] == "cancelled"
    app.state.engine.dispose()


def _upload(client: Client, tmp_path, name: str, data: bytes) -> dict:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return client.upload(path)


@pytest.mark.parametrize("data", [b"GIF89a" + bytes(100), b"", b"II*"])
def test_a_movie_that_is_not_a_tiff_is_refused_at_submission(env, tmp_path, data):
    """A file named movie.tif that is not a TIFF (a GIF renamed, an empty file, a file cut off after 3 bytes). Before:
    the job was queued (201), waited for a worker, which downloaded it and failed in plexloc fit. After: 422 at
    submission naming the slot, the file and what its first bytes are; no job made."""
    svc, live, client = env
    movie = _upload(client, tmp_path, "movie.tif", data)
    model = _upload(client, tmp_path, "model.pt", b"not looked at")
    from plexloc.service.client import ServiceError

    with pytest.raises(ServiceError) as err:
        client.submit("plexloc-fit", entry_point="fit", inputs={"movie": [movie["id"]], "model": [model["id"]]})
    assert err.value.status == 422
    detail = str(err.value.detail)
    assert "inputs.movie" in detail and "movie.tif" in detail and "TIFF" in detail, detail
    assert client.jobs() == []


def test_tiff_and_bigtiff_movies_are_accepted(env, tmp_path):
    svc, live, client = env
    model = _upload(client, tmp_path, "model.pt", b"x")
    for name, head in (("a.tif", b"II*\x00"), ("b.TIFF", b"MM\x00*"), ("c.tif", b"II+\x00")):
        movie = _upload(client, tmp_path, name, head + bytes(60))
        job = client.submit("plexloc-fit", entry_point="fit", inputs={"movie": [movie["id"]], "model": [model["id"]]})
        assert job["state"] == "queued"
