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


# -- configurations at submission --------------------------------------------------------------------------------------
BAD = [  # (file text, what the 422 must name besides the slot and the file)
    (b"px_size_nm: [100\n", ["not valid YAML", "line"]),
    (b"- px_size_nm\n- 100\n", ["expected a mapping", "list"]),
    (b"", ["expected a mapping"]),
    (_yaml({**GOOD, "sigma_nm": 130}), ["unknown field 'sigma_nm'"]),
    (_yaml({**GOOD, "px_size_nm": "100 nm"}), ["field 'px_size_nm'", "'100 nm'"]),
    (_yaml({**GOOD, "psf": {"kind": "gaussian", "sigma_nm": -130}}), ["field 'psf.sigma_nm'", "-130"]),
    (_yaml({**GOOD, "camera": {**GOOD["camera"], "kind": "emcdd"}}), ["camera.kind", "'emcdd'"]),
    (b"\xff\xfe binary", ["cannot read configuration"]),
]


@pytest.mark.parametrize("text,words", BAD, ids=["yaml", "list", "empty", "unknown", "type", "value", "kind", "binary"])
def test_a_configuration_that_cannot_load_is_refused_at_submission(http, service, text, words):  # noqa: F811
    """Before: queued (201), the job failed on a worker after it waited in the queue and fetched its inputs. After: 422
    naming the slot, the file (id and name) and the field and value, and no job queued."""
    tok = service.user_token
    f = _upload(http, tok, "scope.yaml", text)
    r = _submit(http, tok, "plexloc-simulate", {"config": [f["id"]]}, config={"frames": 2})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "inputs.config"
    assert f"file {f['id']} (scope.yaml)" in body["detail"], body["detail"]
    for word in words:
        assert word in body["detail"], body["detail"]
    assert "plexloc-check-" not in body["detail"]  # the server's scratch folder is no name the user knows
    assert http.get("/api/v1/jobs", headers=auth(tok)).json() == []


def test_every_plexloc_application_checks_its_configuration_inputs(http, service):  # noqa: F811
    """train, fit --method mle, process --method mle and detect load the same configuration as simulate: each refuses
    one that cannot load; fit and process check their camera YAML as a camera."""
    tok = service.user_token
    bad = _upload(http, tok, "bad.yaml", _yaml({**GOOD, "frame_size": "big"}))
    movie = _upload(http, tok, "m.tif", b"II*\x00" + bytes(60))
    model = _upload(http, tok, "model.pt", b"weights")
    cases = [("plexloc-train", None, {"config": [bad["id"]]}),
             ("plexloc-fit", "mle", {"movie": [movie["id"]], "config": [bad["id"]]}),
             ("plexloc-process", "mle", {"movie": [movie["id"]], "config": [bad["id"]]}),
             ("plexloc-detect", None, {"movie": [movie["id"]], "config": [bad["id"]]})]
    for app, entry, inputs in cases:
        r = _submit(http, tok, app, inputs, entry_point=entry)
        assert r.status_code == 422 and r.json()["field"] == "inputs.config", (app, r.text)
        assert "field 'frame_size'" in r.json()["detail"], (app, r.text)
    bad_cam = _upload(http, tok, "cam.yaml", b"kind: emccd\nqe: 1.5\n")
    good_cam = _upload(http, tok, "cam2.yaml", _yaml(GOOD["camera"]))
    for app in ("plexloc-fit", "plexloc-process"):
        entry = "fit" if app == "plexloc-fit" else "process"
        inputs = {"movie": [movie["id"]], "model": [model["id"]]}
        r = _submit(http, tok, app, {**inputs, "camera": [bad_cam["id"]]}, entry_point=entry)
        assert r.status_code == 422 and r.json()["field"] == "inputs.camera", (app, r.text)
        assert "field 'qe'" in r.json()["detail"] and "1.5" in r.json()["detail"], r.text
        r = _submit(http, tok, app, {**inputs, "camera": [good_cam["id"]]}, entry_point=entry)
        assert r.status_code == 201, (app, r.text)
    # a whole configuration as the camera YAML (its camera is read): accepted
    whole = _upload(http, tok, "whole.yaml", EXAMPLE.read_bytes())
    r = _submit(http, tok, "plexloc-fit", {"movie": [movie["id"]], "model": [model["id"]], "camera": [whole["id"]]},
                entry_point="fit")
    assert r.status_code == 201, r.text


def test_a_configuration_with_its_included_and_named_files_is_accepted(http, service):  # noqa: F811
    """What loads on the worker is not refused: a camera included from camera.yaml, a spline PSF named by its file
    (PSF.h5), sCMOS maps named by relative path, all travelling in the `files` slot beside the configuration; a
    train configuration with its model and training sections; camera fields left out (defaults, a note on the
    worker)."""
    tok = service.user_token
    camera = _upload(http, tok, "camera.yaml", _yaml({"camera": {"kind": "scmos", "e_per_adu": "gain.npy",
                                                                  "baseline": 100.0, "read_sigma": 1.5}}))
    gain = _upload(http, tok, "gain.npy", b"\x93NUMPY not read at submission")
    psf = _upload(http, tok, "PSF.h5", b"not read at submission")
    cfg = {**GOOD, "camera": "camera.yaml", "psf": "PSF.h5",
           "model": {"features": 4, "depth": 1}, "training": {"batch_size": 4}}
    f = _upload(http, tok, "scope.yaml", _yaml(cfg))
    for app in ("plexloc-simulate", "plexloc-train"):
        r = _submit(http, tok, app, {"config": [f["id"]], "files": [camera["id"], gain["id"], psf["id"]]})
        assert r.status_code == 201, (app, r.text)
    from plexloc.config import io as config_io

    noted = set(config_io._noted)
    sparse = _upload(http, tok, "sparse.yaml", _yaml({**GOOD, "camera": {"kind": "emccd"}}))
    assert _submit(http, tok, "plexloc-simulate", {"config": [sparse["id"]]}).status_code == 201
    assert config_io._noted == noted  # the defaults note of a scratch path is not kept for the server's lifetime


def test_files_a_configuration_names_that_the_job_does_not_carry_are_refused(http, service):  # noqa: F811
    """A file named by relative path is looked for beside the configuration on the worker, nowhere else: one the job
    does not carry is named (field, file, the slot to give it in); an included file's own fields are checked."""
    tok = service.user_token
    cfg = _upload(http, tok, "scope.yaml", _yaml({**GOOD, "camera": "camera.yaml"}))
    r = _submit(http, tok, "plexloc-simulate", {"config": [cfg["id"]]})
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert "field 'camera'" in d and "'camera.yaml'" in d and "input slot 'files'" in d, d
    bad_cam = _upload(http, tok, "camera.yaml", _yaml({"kind": "emccd", "em_gain": "high"}))
    r = _submit(http, tok, "plexloc-simulate", {"config": [cfg["id"]], "files": [bad_cam["id"]]})
    assert r.status_code == 422 and "field 'camera.em_gain'" in r.json()["detail"], r.text
    maps = _upload(http, tok, "maps.yaml", _yaml({**GOOD, "camera": {"kind": "scmos", "e_per_adu": "gain.npy"}}))
    r = _submit(http, tok, "plexloc-simulate", {"config": [maps["id"]]})
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert "field 'channels.0.camera.e_per_adu' names the file 'gain.npy'" in d and "input slot 'files'" in d, d
    spline = _upload(http, tok, "spline.yaml", _yaml({**GOOD, "psf": "PSF.h5"}))
    r = _submit(http, tok, "plexloc-fit", {"movie": [_upload(http, tok, "m.tif", b"II*\x00")["id"]],
                                           "config": [spline["id"]]}, entry_point="mle")
    assert r.status_code == 422 and "'PSF.h5'" in r.json()["detail"], r.text
    # detect takes no files beside its configuration: said
    r = _submit(http, tok, "plexloc-detect", {"movie": [_upload(http, tok, "n.tif", b"II*\x00")["id"]],
                                              "config": [maps["id"]]})
    assert r.status_code == 422 and "takes no files beside its configuration" in r.json()["detail"], r.text


def test_what_only_the_worker_can_read_is_not_refused_and_the_servers_disk_is_not_read(http, service, tmp_path):  # noqa: F811
    """A YAML included by absolute path (the worker's disk may hold it: the server never reads a path a user names
    on its own disk, even one it has), a map named by absolute path, and a configuration still to come from another
    job are accepted; what can be checked of them (YAML, a mapping) still is."""
    tok = service.user_token
    secret = tmp_path / "server-only.yaml"
    secret.write_text("kind: emccd\nqe: 7\n")  # would be refused if the server read it
    for camera in (str(secret), "/nonexistent/plexloc/camera.yaml", {"kind": "scmos", "e_per_adu": "/maps/gain.npy"}):
        f = _upload(http, tok, "scope.yaml", _yaml({**GOOD, "camera": camera}))
        r = _submit(http, tok, "plexloc-simulate", {"config": [f["id"]]})
        assert r.status_code == 201, (camera, r.text)
    outside = _upload(http, tok, "up.yaml", _yaml({**GOOD, "camera": "../camera.yaml"}))
    assert _submit(http, tok, "plexloc-simulate", {"config": [outside["id"]]}).status_code == 201
    broken = _upload(http, tok, "broken.yaml", b"camera: /abs/camera.yaml\npsf: [\n")
    r = _submit(http, tok, "plexloc-simulate", {"config": [broken["id"]]})
    assert r.status_code == 422 and "not valid YAML" in r.json()["detail"], r.text
    # a job's output still to come: the worker loads it
    first = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"}, headers=auth(tok)).json()
    r = _submit(http, tok, "plexloc-simulate", {"config": [f"job:{first['id']}/out.yaml"]})
    assert r.status_code == 201, r.text


def _two_channels(transform) -> dict:
    ch = {"psf": GOOD["psf"], "camera": GOOD["camera"]}
    rest = {k: v for k, v in GOOD.items() if k not in ("psf", "camera")}
    return {**rest, "channels": [ch, {**ch, "transform": transform}]}


T_JSON = {"transform": [[1.0, 0.0, 100.0], [0.0, 1.0, -50.0], [0.0, 0.0, 1.0]],
          "direction": "reference -> channel, r_c = T r_0 (homogeneous, nm)"}


def test_a_channel_transform_read_from_a_file_is_checked_with_that_file(http, service, tmp_path):  # noqa: F811
    """A channel's ``transform: {file: T.json}`` is read by the loader: with the job's T.json (the files slot takes
    .json) it is checked and accepted; a T.json the job does not carry, or one that holds no transform, is refused
    naming the field; one named by absolute path is the worker's to read (the server's own file is not read)."""
    tok = service.user_token
    cfg = _upload(http, tok, "two.yaml", _yaml(_two_channels({"file": "T.json"})))
    import json

    t = _upload(http, tok, "T.json", json.dumps(T_JSON).encode())
    r = _submit(http, tok, "plexloc-simulate", {"config": [cfg["id"]], "files": [t["id"]]})
    assert r.status_code == 201, r.text
    r = _submit(http, tok, "plexloc-simulate", {"config": [cfg["id"]]})
    assert r.status_code == 422 and "field 'channels.1.transform.file'" in r.json()["detail"], r.text
    assert "input slot 'files'" in r.json()["detail"], r.text
    wrong = _upload(http, tok, "T.json", json.dumps({"matrix": T_JSON["transform"]}).encode())
    r = _submit(http, tok, "plexloc-simulate", {"config": [cfg["id"]], "files": [wrong["id"]]})
    assert r.status_code == 422 and "channels.1.transform" in r.json()["detail"], r.text
    assert "holds no channel transform" in r.json()["detail"], r.text
    secret = tmp_path / "T.json"
    secret.write_text(json.dumps({"matrix": 1}))  # would be refused if the server read it
    absolute = _upload(http, tok, "abs.yaml", _yaml(_two_channels({"file": str(secret)})))
    assert _submit(http, tok, "plexloc-simulate", {"config": [absolute["id"]]}).status_code == 201


def test_a_config_input_of_another_application_is_not_loaded_as_plexloc(tmp_path):
    """A slot of kind config without `check` (another program's own format) is not loaded as a plexloc
    configuration: its file is the program's business."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "other.yaml").write_text(yaml.safe_dump({"name": "other", "versions": {"1": {"entry_points": {"run": {
        "command": ["true", "{input.config}"], "inputs": {"config": {"kind": "config", "suffixes": [".yaml"]}}}}}}}))
    svc = make_service(tmp_path, apps_dirs=[apps])
    with LiveServer(svc.app) as srv, httpx.Client(base_url=srv.url, timeout=30) as h:
        f = _upload(h, svc.user_token, "own.yaml", b"- not: a plexloc mapping\n")
        assert _submit(h, svc.user_token, "other", {"config": [f["id"]]}).status_code == 201
    svc.app.state.engine.dispose()


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


def test_the_submission_check_knows_every_file_field_of_a_configuration():
    """A tripwire: the check reads (from the job's inputs, never the server's disk) the files the loader reads, as
    config_inputs._included_files lists them (camera/psf includes, a transform's ``file``); the other file fields are
    named, not read, at load. A new file field of the configuration must be sorted into one or the other there."""
    from plexloc.config.files import PATH_KEYS

    assert PATH_KEYS == {"calibration", "e_per_adu", "baseline", "read_sigma", "read_variance", "file"}, (
        "a new file field of the configuration: does load_config read it? then config_inputs._included_files must "
        "name it (the server must not read a path a user names on its own disk)")
