"""Review of session 45's loader, service and camera-check changes, as a user meets them.

- The camera's source tag (config.io._mark_source: the file and field path the camera check names) is no field: a
  configuration saved again (save_config, a run folder's config.yaml, a model file's dict) does not carry it, a saved
  and reloaded configuration names the file it was reloaded from, and copies keep it.
- A re-run is checked as a submission is, and like a submission it leaves to the worker what is still to come: the
  re-run of a job whose configuration includes another job's output not yet written is queued; once that output is
  written and cannot load, a re-run is refused naming the field.
"""

from __future__ import annotations

import copy
import textwrap
import warnings

import httpx
import yaml
from service_support import EXAMPLE, AgentThread, LiveServer, auth, make_service, script_app, ticker_app

from plexloc.camera import camera_from_config
from plexloc.camera.check import camera_source
from plexloc.config import load_config, save_config
from plexloc.service.client import Client

GOOD = yaml.safe_load(EXAMPLE.read_text())
CAMERA = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
          "baseline": 100.0, "read_sigma": 74.4}


def test_the_cameras_source_is_no_field_of_a_saved_configuration_and_survives_copies(tmp_path):
    (tmp_path / "camera.yaml").write_text(yaml.safe_dump(CAMERA))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "camera": "camera.yaml"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(path)
    cam = config.channels[0].camera
    assert camera_source(camera_from_config(cam)) == (str(tmp_path / "camera.yaml"), "")
    dumped = config.model_dump(mode="json")
    assert "_source" not in yaml.safe_dump(dumped) and "_source" not in config.model_dump_json()
    # copies keep it (a command that copies the configuration still names the file)
    for copied in (config.model_copy(deep=True), copy.deepcopy(config), config.model_copy()):
        assert camera_source(camera_from_config(copied.channels[0].camera)) == (str(tmp_path / "camera.yaml"), "")
    # saved again: no tag in the YAML; reloaded, the camera is the saved file's, inline
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    assert "_source" not in saved.read_text()
    again = load_config(saved)
    assert camera_source(camera_from_config(again.channels[0].camera)) == (str(saved), "channels.0.camera.")
    assert again == config  # the tag makes no difference to what the configuration is


#: writes camera.yaml (the text of the file ARG names) into its output folder once released (MODE: a file to wait for)
MAKER = textwrap.dedent("""
    import pathlib, sys, time
    gate, out, src = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    while not gate.exists():
        time.sleep(0.05)
    (out / "camera.yaml").write_text(src.read_text())
""")


def test_a_rerun_leaves_an_output_still_to_come_to_the_worker_and_checks_it_once_written(tmp_path):
    """A simulate job whose configuration (uploaded) includes `camera: camera.yaml`, the output of a job still running.
    Its re-run is queued (201) as its submission was: the server cannot judge a file not yet written. Once the output
    is written (qe 1.5: it cannot load), a re-run is refused (422) naming the configuration's slot and the field."""
    bad = tmp_path / "bad_camera.yaml"
    bad.write_text(yaml.safe_dump({**CAMERA, "qe": 1.5}))
    gate = tmp_path / "gate"
    svc = make_service(tmp_path, apps_dirs=[ticker_app(tmp_path / "apps"),
                                            script_app(tmp_path / "maker", MAKER, name="maker", outputs=("*.yaml",))])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({**GOOD, "camera": "camera.yaml"}))
    with LiveServer(svc.app) as srv, Client(srv.url, svc.user_token) as c, \
            httpx.Client(base_url=srv.url, timeout=30) as h:
        data = cfg.read_bytes()
        up = h.post("/api/v1/files", json={"name": "config.yaml", "size": len(data)},
                    headers=auth(svc.user_token)).json()
        assert h.put(up["upload_url"], content=data).status_code == 200
        fid = h.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(svc.user_token)).json()["id"]
        maker = c.submit("maker", entry_point="run", config={"mode": str(gate), "arg": str(bad)})
        sim = c.submit("plexloc-simulate", config={"frames": 2},
                       inputs={"config": [fid], "files": [f"job:{maker['id']}/camera.yaml"]})
        assert sim["waiting"], sim
        r = h.post(f"/api/v1/jobs/{sim['id']}/rerun", headers=auth(svc.user_token))
        assert r.status_code == 201 and r.json()["waiting"] and r.json()["rerun_of"] == sim["id"], r.text
        with AgentThread(srv.url, svc.worker_token):
            gate.write_text("go")
            assert c.wait(maker["id"], timeout=120)["state"] == "succeeded"
            failed = c.wait(sim["id"], timeout=120)
            assert failed["state"] == "failed" and "qe" in (failed["error"] or ""), failed
            c.wait(r.json()["id"], timeout=120)
        before = {j["id"] for j in c._get("/jobs")}
        r = h.post(f"/api/v1/jobs/{sim['id']}/rerun", headers=auth(svc.user_token))
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["field"] == "inputs.config", body
        assert "(config.yaml)" in body["detail"] and "qe" in body["detail"] and "1.5" in body["detail"], body
        assert "plexloc-check-" not in body["detail"], body
        assert {j["id"] for j in c._get("/jobs")} == before
    svc.app.state.engine.dispose()
