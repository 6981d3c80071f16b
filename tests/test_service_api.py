"""The user and worker APIs: tokens, isolation, worker file access, bad input, OpenAPI."""

from __future__ import annotations

import pytest
from service_support import EXAMPLE, auth, http, live, postgres_server, service  # noqa: F401 (fixtures)

from plexloc.service import transfer


def _upload(http, token, name="cfg.yaml", data=b"a: 1\n"):
    r = http.post("/api/v1/files", json={"name": name, "size": len(data)}, headers=auth(token))
    assert r.status_code == 201, r.text
    up = r.json()
    http.put(up["upload_url"], content=data)
    return http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(token)).json()


def _tick_job(http, token, **config):
    r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick", "config": config}, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def _pull(http, token):
    return http.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 2, "memory_mb": 8000}}, headers=auth(token))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_no_or_wrong_token_is_401(http, headers):
    for method, path in [("get", "/api/v1/jobs"), ("get", "/api/v1/files"), ("post", "/worker/v1/jobs/pull")]:
        r = http.request(method, path, headers=headers, json={})
        assert r.status_code == 401, (path, r.text)


def test_worker_token_on_user_api_and_reverse_is_403(http, service):
    assert http.get("/api/v1/jobs", headers=auth(service.worker_token)).status_code == 403
    assert _pull(http, service.user_token).status_code == 403


def test_disabled_user_is_401(http, service):
    from plexloc.service import admin

    with service.sessions().begin() as s:
        admin.set_active(s, "user", "bob", False)
    assert http.get("/api/v1/jobs", headers=auth(service.other_token)).status_code == 401


def test_users_see_only_their_own_files_and_jobs(http, service):
    alice, bob = service.user_token, service.other_token
    f = _upload(http, alice)
    job = _tick_job(http, alice)
    assert [x["id"] for x in http.get("/api/v1/files", headers=auth(alice)).json()] == [f["id"]]
    assert http.get("/api/v1/files", headers=auth(bob)).json() == []
    assert http.get("/api/v1/jobs", headers=auth(bob)).json() == []
    for method, path in [
        ("get", f"/api/v1/files/{f['id']}"),
        ("get", f"/api/v1/files/{f['id']}/download-url"),
        ("delete", f"/api/v1/files/{f['id']}"),
        ("get", f"/api/v1/jobs/{job['id']}"),
        ("get", f"/api/v1/jobs/{job['id']}/log"),
        ("get", f"/api/v1/jobs/{job['id']}/outputs"),
        ("post", f"/api/v1/jobs/{job['id']}/cancel"),
        ("post", f"/api/v1/jobs/{job['id']}/rerun"),
        ("delete", f"/api/v1/jobs/{job['id']}"),
    ]:
        assert http.request(method, path, headers=auth(bob)).status_code == 404, path
    # bob cannot feed alice's file to his job either
    r = http.post(
        "/api/v1/jobs",
        json={"application": "plexloc-simulate", "inputs": {"config": [f["id"]]}},
        headers=auth(bob),
    )
    assert r.status_code == 422 and r.json()["field"] == "inputs.config"
    assert http.get(f"/api/v1/jobs/{job['id']}", headers=auth(alice)).status_code == 200


def test_worker_reaches_only_files_of_the_job_it_holds(http, service):
    alice = service.user_token
    cfg = _upload(http, alice, "c.yaml", EXAMPLE.read_bytes())
    other = _upload(http, alice, "other.yaml")
    r = http.post("/api/v1/jobs", json={"application": "plexloc-simulate", "config": {"frames": 2},
                                        "inputs": {"config": [cfg["id"]]}}, headers=auth(alice))
    job = r.json()
    w1, w2 = auth(service.worker_token), auth(service.worker2_token)
    # nobody holds it yet
    assert http.get(f"/worker/v1/jobs/{job['id']}/files/{cfg['id']}/url", headers=w1).status_code == 403
    spec = _pull(http, service.worker_token).json()
    assert spec["job_id"] == job["id"] and [i["file_id"] for i in spec["inputs"]] == [cfg["id"]]
    assert http.get(spec["inputs"][0]["url"]).content == EXAMPLE.read_bytes()
    assert http.get(f"/worker/v1/jobs/{job['id']}/files/{cfg['id']}/url", headers=w1).status_code == 200
    # not a file of this job; not the holder
    assert http.get(f"/worker/v1/jobs/{job['id']}/files/{other['id']}/url", headers=w1).status_code == 403
    assert http.get(f"/worker/v1/jobs/{job['id']}/files/{cfg['id']}/url", headers=w2).status_code == 403
    assert http.post(f"/worker/v1/jobs/{job['id']}/ping", json={}, headers=w2).status_code == 403
    assert http.post(f"/worker/v1/jobs/{job['id']}/outputs", json={"name": "x", "size": 1}, headers=w2).status_code == 403
    # once the job is over, its holder cannot reach its files any more
    http.post(f"/worker/v1/jobs/{job['id']}/finish", json={"state": "failed", "error": "test"}, headers=w1)
    assert http.get(f"/worker/v1/jobs/{job['id']}/files/{cfg['id']}/url", headers=w1).status_code == 403
    assert http.get(f"/api/v1/jobs/{job['id']}", headers=auth(alice)).json()["error"] == "test"


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.tif", "..", ".hidden", "x\x00y", "a\\b", ""])
def test_path_traversal_in_file_names_is_422(http, service, name):
    r = http.post("/api/v1/files", json={"name": name, "size": 1}, headers=auth(service.user_token))
    assert r.status_code == 422


def test_worker_output_names_stay_inside(http, service):
    _tick_job(http, service.user_token)
    spec = _pull(http, service.worker_token).json()
    for name in ["../x", "/abs", "a/../../b", "a//b"]:
        r = http.post(f"/worker/v1/jobs/{spec['job_id']}/outputs", json={"name": name, "size": 1}, headers=auth(service.worker_token))
        assert r.status_code == 422, name
    r = http.post(f"/worker/v1/jobs/{spec['job_id']}/outputs", json={"name": "cell1/locs.csv", "size": 1}, headers=auth(service.worker_token))
    assert r.status_code == 201


def test_upload_over_the_size_limit_is_413(http, service):
    too_big = service.settings.max_upload_bytes + 1
    r = http.post("/api/v1/files", json={"name": "big.tif", "size": too_big}, headers=auth(service.user_token))
    assert r.status_code == 413


def test_malformed_configuration_is_422_naming_the_field(http, service):
    tok = auth(service.user_token)
    r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick", "config": {"n": "many"}}, headers=tok)
    assert r.status_code == 422 and r.json()["field"] == "config.n" and "many" in r.json()["detail"]
    r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick", "config": {"typo": 1}}, headers=tok)
    assert r.status_code == 422 and r.json()["field"] == "config.typo"
    r = http.post("/api/v1/jobs", json={"application": "nope"}, headers=tok)
    assert r.status_code == 422 and "no application 'nope'" in r.json()["detail"]
    r = http.post("/api/v1/jobs", json={"application": "ticker"}, headers=tok)  # two entry points: which?
    assert r.status_code == 422 and "choose an entry point" in r.json()["detail"]
    r = http.post("/api/v1/jobs", json={"application": "plexloc-simulate"}, headers=tok)
    assert r.status_code == 422 and r.json()["field"] == "inputs.config"


@pytest.mark.parametrize(
    "text,field",
    [
        ("name: x\nversions: {'1': {entry_points: {run: {command: [echo], bogus: 1}}}}", "bogus"),
        ("name: x\nversions: {'1': {entry_points: {run: {command: []}}}}", "command"),
        ("name: x\nversions: {'1': {entry_points: {run: {command: [echo, '{input.data}']}}}}", "input.data"),
        ("name: x\nversions: {'1': {entry_points: {run: {command: [echo], hardware: {gpus: -1}}}}}", "gpus"),
        ("name: 'bad name!'\nversions: {'1': {entry_points: {run: {command: [echo]}}}}", "name"),
        ("name: [unclosed", "YAML"),
    ],
)
def test_malformed_application_yaml_is_422_naming_the_field(http, service, text, field):
    r = http.post("/api/v1/applications/validate", content=text, headers={**auth(service.user_token), "Content-Type": "text/plain"})
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_good_application_yaml_validates(http, service):
    text = (service.settings.apps_dirs[0] / "ticker.yaml").read_text()
    r = http.post("/api/v1/applications/validate", content=text, headers={**auth(service.user_token), "Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json() == {"name": "ticker", "versions": ["1.0"]}


def test_illegal_state_transitions_are_409(http, service):
    tok = auth(service.user_token)
    job = _tick_job(http, service.user_token)
    assert http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=tok).json()["state"] == "cancelled"
    r = http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=tok)
    assert r.status_code == 409 and r.json()["state"] == "cancelled"
    # a worker cannot report a non-final state as the end
    job2 = _tick_job(http, service.user_token)
    spec = _pull(http, service.worker_token).json()
    assert spec["job_id"] == job2["id"]
    w = auth(service.worker_token)
    assert http.post(f"/worker/v1/jobs/{job2['id']}/finish", json={"state": "running"}, headers=w).status_code == 422
    # a job that is not over cannot be deleted
    assert http.delete(f"/api/v1/jobs/{job2['id']}", headers=tok).status_code == 409
    assert http.delete(f"/api/v1/jobs/{job['id']}", headers=tok).status_code == 204
    # a finished job cannot be finished again
    assert http.post(f"/worker/v1/jobs/{job2['id']}/finish", json={"state": "failed"}, headers=w).status_code < 300
    assert http.post(f"/worker/v1/jobs/{job2['id']}/finish", json={"state": "succeeded"}, headers=w).status_code in (403, 409)


def test_files_in_use_cannot_be_deleted(http, service):
    tok = auth(service.user_token)
    cfg = _upload(http, service.user_token, "c.yaml", EXAMPLE.read_bytes())
    job = http.post("/api/v1/jobs", json={"application": "plexloc-simulate", "inputs": {"config": [cfg["id"]]}}, headers=tok).json()
    assert http.delete(f"/api/v1/files/{cfg['id']}", headers=tok).status_code == 409
    http.post(f"/api/v1/jobs/{job['id']}/cancel", headers=tok)
    assert http.delete(f"/api/v1/files/{cfg['id']}", headers=tok).status_code == 204
    assert http.get(f"/api/v1/files/{cfg['id']}", headers=tok).status_code == 404


def test_pull_with_nothing_to_do_is_204_and_applications_listed(http, service):
    assert _pull(http, service.worker_token).status_code == 204
    apps = {a["name"] for a in http.get("/api/v1/applications", headers=auth(service.user_token)).json()}
    assert {"plexloc-simulate", "plexloc-detect", "plexloc-evaluate", "plexloc-train", "plexloc-fit", "ticker"} <= apps


def test_openapi_schema_and_web_page_are_served(http):
    schema = http.get("/openapi.json").json()
    assert "/api/v1/jobs" in schema["paths"] and "/worker/v1/jobs/pull" in schema["paths"]
    assert not any(p.startswith("/storage") for p in schema["paths"])
    page = http.get("/")
    assert page.status_code == 200 and "plexloc" in page.text
    assert http.get("/static/app.js").status_code == 200


def test_transfer_download_checks_checksum(http, service, tmp_path):
    f = _upload(http, service.user_token, "a.txt", b"abc")
    url = http.get(f"/api/v1/files/{f['id']}/download-url", headers=auth(service.user_token)).json()["url"]
    with pytest.raises(transfer.TransferError, match="checksum"):
        transfer.download(http, url, tmp_path / "a.txt", sha256="0" * 64)
    assert not (tmp_path / "a.txt").exists()  # nothing half-written


def test_clients_read_their_own_writes_on_postgresql(tmp_path, postgres_server):
    """The session commits before the response is sent: a job is visible the moment its 201 arrives
    (PostgreSQL, READ COMMITTED, shows the race that SQLite's write lock hides)."""
    import httpx
    from service_support import LiveServer, fresh_postgres_db, make_service

    import time

    from sqlalchemy import event

    svc = make_service(tmp_path, db_url=fresh_postgres_db(postgres_server))
    event.listen(svc.app.state.sessions, "before_commit", lambda session: time.sleep(0.1))  # a slow commit
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, headers=auth(svc.user_token)) as c:
        for _ in range(3):
            job = c.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick"}).json()
            assert c.get(f"/api/v1/jobs/{job['id']}").status_code == 200
            assert c.post(f"/api/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    svc.app.state.engine.dispose()


def test_parts_are_for_s3_only_and_for_ones_own_pending_files(http, service):
    """The local store resumes by offset on its one upload URL: asking it for parts is a clear 409."""
    r = http.post("/api/v1/files", json={"name": "m.tif", "size": 10}, headers=auth(service.user_token))
    fid = r.json()["file"]["id"]
    r = http.post(f"/api/v1/files/{fid}/parts", headers=auth(service.user_token))
    assert r.status_code == 409 and "upload-url" in r.text
    assert http.post(f"/api/v1/files/{fid}/parts", headers=auth(service.other_token)).status_code == 404


def _output(http, token, job_id, name="out.yaml", data=b"cfg: 1\n"):
    import hashlib

    r = http.post(f"/worker/v1/jobs/{job_id}/outputs", json={"name": name, "size": len(data),
                                                              "sha256": hashlib.sha256(data).hexdigest()},
                  headers=auth(token))
    assert r.status_code in (200, 201), r.text
    up = r.json()
    http.put(up["upload_url"], content=data)
    assert http.post(f"/worker/v1/jobs/{job_id}/outputs/{up['file']['id']}/complete", headers=auth(token)).status_code < 300
    return up["file"]["id"]


def test_deleting_a_job_whose_output_feeds_an_unfinished_job_is_refused(http, service):
    """Deleting job A would drop the input of the queued job B that reads A's output (its input row cascades
    away and B would run without it): 409, as deleting that file directly is."""
    a = _tick_job(http, service.user_token)
    assert _pull(http, service.worker_token).json()["job_id"] == a["id"]
    http.post(f"/worker/v1/jobs/{a['id']}/ping", json={"stage": "running"}, headers=auth(service.worker_token))
    _output(http, service.worker_token, a["id"], data=EXAMPLE.read_bytes())  # a configuration: checked at submission
    assert http.post(f"/worker/v1/jobs/{a['id']}/finish", json={"state": "succeeded"},
                     headers=auth(service.worker_token)).status_code < 300
    movie = _upload(http, service.user_token, name="m.tif", data=b"II*\x00xx")  # a TIFF header: a non-TIFF .tif is refused at submission
    b = http.post("/api/v1/jobs", json={"application": "plexloc-fit", "entry_point": "mle",
                                        "inputs": {"movie": [movie["id"]], "config": [f"job:{a['id']}/out.yaml"]}},
                  headers=auth(service.user_token))
    assert b.status_code == 201, b.text
    r = http.delete(f"/api/v1/jobs/{a['id']}", headers=auth(service.user_token))
    assert r.status_code == 409 and "is an input of unfinished job" in r.json()["detail"]
    assert http.get(f"/api/v1/jobs/{a['id']}", headers=auth(service.user_token)).status_code == 200


def test_a_worker_may_finish_a_job_it_never_reported_running(http, service):
    a = _tick_job(http, service.user_token)
    assert _pull(http, service.worker_token).json()["job_id"] == a["id"]
    _output(http, service.worker_token, a["id"], name="ticks.txt", data=b"3")
    r = http.post(f"/worker/v1/jobs/{a['id']}/finish", json={"state": "succeeded"}, headers=auth(service.worker_token))
    assert r.status_code < 300, r.text
    assert http.get(f"/api/v1/jobs/{a['id']}", headers=auth(service.user_token)).json()["state"] == "succeeded"


@pytest.mark.parametrize("body, where", [
    ({"config": {"dt": float("inf")}}, "dt"),
    ({"config": {"n": True}}, "n"),
    ({"config": {"n": "7"}}, "n"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"timeout_s": float("inf")}, "timeout_s"),
    ({"priority": 10**23}, "priority"),
    ({"hardware": {"gpus": 10**23}}, "hardware"),
])
def test_impossible_numbers_are_4xx_naming_the_field(http, service, body, where):
    import json

    payload = json.dumps({"application": "ticker", "entry_point": "tick", **body})  # Infinity/NaN as JSON allows them
    r = http.post("/api/v1/jobs", content=payload, headers={**auth(service.user_token), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert where in r.text
    assert http.get("/api/v1/jobs/x/log", params={"after": 10**20}, headers=auth(service.user_token)).status_code == 422
    r = http.post("/worker/v1/jobs/pull", json={"hardware": {"cpus": 2, "memory_mb": 8000, "gpus": 10**20}},
                  headers=auth(service.worker_token))
    assert r.status_code == 422


def test_jobs_too_big_for_a_worker_do_not_hide_the_ones_it_can_run(http, service):
    for _ in range(25):  # more than one page of the claim's query, all ahead by priority
        r = http.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick",
                                            "hardware": {"memory_mb": 100000}, "priority": 5},
                      headers=auth(service.user_token))
        assert r.status_code == 201, r.text
    small = _tick_job(http, service.user_token)
    r = _pull(http, service.worker_token)  # 8,000 MB of memory
    assert r.status_code == 200 and r.json()["job_id"] == small["id"]


def test_an_attempt_that_lost_its_lease_leaves_no_output_behind_the_next_ones(http, service):
    """Attempt 1 uploads o.yaml, its lease lapses; attempt 2 (another worker) uploads o.yaml again: the job has one
    o.yaml, attempt 2's, and a job reading job:A/o.yaml gets that one."""
    import hashlib
    import time

    from plexloc.service import jobs as ops

    a = _tick_job(http, service.user_token)
    assert _pull(http, service.worker_token).json()["job_id"] == a["id"]
    _output(http, service.worker_token, a["id"], name="o.yaml", data=b"stale")
    with service.sessions().begin() as s:
        assert ops.sweep(s, at=time.time() + 1000) == [(a["id"], "queued")]
    assert _pull(http, service.worker2_token).json()["job_id"] == a["id"]
    _output(http, service.worker2_token, a["id"], name="o.yaml", data=b"fresh")
    _output(http, service.worker2_token, a["id"], name="ticks.txt", data=b"3")
    assert http.post(f"/worker/v1/jobs/{a['id']}/finish", json={"state": "succeeded"},
                     headers=auth(service.worker2_token)).status_code < 300
    outs = [o for o in http.get(f"/api/v1/jobs/{a['id']}/outputs", headers=auth(service.user_token)).json()
            if o["name"] == "o.yaml"]
    assert len(outs) == 1 and outs[0]["sha256"] == hashlib.sha256(b"fresh").hexdigest()


def test_uploads_never_completed_expire_with_their_partial_data(http, service):
    import time

    from plexloc.service import jobs as ops

    r = http.post("/api/v1/files", json={"name": "big.tif", "size": 10}, headers=auth(service.user_token))
    fid = r.json()["file"]["id"]
    http.put(r.json()["upload_url"], content=b"12345", headers={"Content-Range": "bytes 0-4/10"})  # half of it
    done = _upload(http, service.user_token)  # a completed upload stays
    storage = service.app.state.storage
    with service.sessions().begin() as s:
        assert ops.expire_uploads(s, storage, max_age_s=3600.0) == []  # young: kept
        assert ops.expire_uploads(s, storage, max_age_s=3600.0, at=time.time() + 7200) == [fid]
    assert http.get(f"/api/v1/files/{fid}", headers=auth(service.user_token)).status_code == 404
    assert http.get(f"/api/v1/files/{done['id']}", headers=auth(service.user_token)).status_code == 200


def test_a_beside_slot_must_name_a_single_file_slot():
    """``beside`` puts a slot's files in another slot's folder (what a configuration names by relative path); it must
    name another slot that holds one file in its own folder."""
    from pydantic import ValidationError

    from plexloc.service.apps import EntryPoint

    ok = EntryPoint(command=["x", "{input.config}"], inputs={"config": {}, "files": {"multiple": True, "beside": "config"}})
    assert ok.input_folder("files") == "config" and ok.input_folder("config") == "config"
    bad = [({"config": {}, "files": {"beside": "nope"}}, "names no other input slot"),
           ({"config": {}, "files": {"beside": "files"}}, "names no other input slot"),
           ({"config": {"multiple": True}, "files": {"beside": "config"}}, "must hold one file"),
           ({"config": {}, "a": {"beside": "config"}, "b": {"beside": "a"}}, "must hold one file")]
    for inputs, match in bad:
        with pytest.raises(ValidationError, match=match):
            EntryPoint(command=["x"], inputs=inputs)


def test_a_conditional_argument_may_depend_on_an_optional_input():
    """`{if: SLOT, args: [...]}` adds the arguments only when the job gives that slot a file; a name that is neither
    a parameter nor a slot is refused."""
    from pydantic import ValidationError

    from plexloc.service.apps import EntryPoint

    ep = EntryPoint(command=["fit", "{input.movie}", {"if": "camera", "args": ["--camera", "{input.camera}"]}],
                    inputs={"movie": {}, "camera": {"required": False}})
    kw = dict(config={}, output_dir="o", work_dir="w", device="cpu")
    assert ep.render(inputs={"movie": ["m.tif"]}, **kw) == ["fit", "m.tif"]
    assert ep.render(inputs={"movie": ["m.tif"], "camera": ["c.yaml"]}, **kw) == ["fit", "m.tif", "--camera", "c.yaml"]
    with pytest.raises(ValidationError, match="names no parameter or input slot"):
        EntryPoint(command=["x", {"if": "nope", "args": ["-n"]}])


def test_a_worker_process_of_an_earlier_attempt_is_fenced_off(live, http, service):
    """Two processes with one worker token: attempt 1's lease lapses and the same worker claims the job again.
    Requests of attempt 1 (the X-Plexloc-Attempt header) are refused with 403 and the old process's agent gives the
    job up without uploading or finishing; attempt 2 still holds it."""
    import time

    from plexloc.service import jobs as ops
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    a = _tick_job(http, service.user_token, n=2)
    spec1 = _pull(http, service.worker_token).json()
    with service.sessions().begin() as s:
        assert ops.sweep(s, at=time.time() + 1000) == [(a["id"], "queued")]
    spec2 = _pull(http, service.worker_token).json()
    assert (spec1["job_id"], spec1["attempt"], spec2["job_id"], spec2["attempt"]) == (a["id"], 1, a["id"], 2)
    old, new = ({**auth(service.worker_token), "X-Plexloc-Attempt": str(n)} for n in (1, 2))
    r = http.post(f"/worker/v1/jobs/{a['id']}/ping", json={"stage": "running"}, headers=old)
    assert r.status_code == 403 and "attempt 1 is over" in r.text
    r = http.post(f"/worker/v1/jobs/{a['id']}/finish", json={"state": "succeeded"}, headers=old)
    assert r.status_code == 403
    agent = Agent(live.url, service.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05, ping_s=0.1)
    try:
        assert agent.execute(spec1) == "lost"
    finally:
        agent.close()
    job = http.get(f"/api/v1/jobs/{a['id']}", headers=auth(service.user_token)).json()
    assert job["state"] == "assigned" and job["attempts"] == 2
    assert http.get(f"/api/v1/jobs/{a['id']}/outputs", headers=auth(service.user_token)).json() == []
    assert http.post(f"/worker/v1/jobs/{a['id']}/ping", json={"stage": "running"}, headers=new).status_code == 200


def test_a_job_whose_work_folder_cannot_be_made_is_failed_and_said_so(live, http, service, tmp_path):
    """The agent made the job's folder before its try: a missing --work-dir (or a full disk) ended the agent with the
    job claimed, left 'assigned' until the lease ran out. Now the job fails at once, naming the folder."""
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    a = _tick_job(http, service.user_token, n=1)
    spec = _pull(http, service.worker_token).json()
    gone = tmp_path / "no" / "such" / "folder"
    agent = Agent(live.url, service.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05, ping_s=0.1,
                  work_dir=gone)
    try:
        assert agent.execute(spec) == "failed"
    finally:
        agent.close()
    job = http.get(f"/api/v1/jobs/{a['id']}", headers=auth(service.user_token)).json()
    assert job["state"] == "failed"
    assert f"cannot make the job's folder in {gone}" in job["error"]
    assert not gone.exists()
