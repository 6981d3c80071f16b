"""End to end on loopback: a live server, real worker agents running real plexloc commands as
subprocesses, files through signed URLs; cancel, time limit, a killed worker's job taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from service_support import EXAMPLE, REPO, AgentThread, LiveServer, make_service

from plexloc.cli.main import main
from plexloc.io.tiff import read_movie
from plexloc.service.client import Client


def small_config(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["frame_size"] = [24, 20]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def env(tmp_path):
    svc = make_service(tmp_path, lease_s=1.5, sweep_interval_s=0.2)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as client:
        yield svc, live, client


def test_simulate_detect_evaluate_chain_matches_direct_runs(env, tmp_path):
    svc, live, c = env
    cfg = small_config(tmp_path)
    with AgentThread(live.url, svc.worker_token):
        f_cfg = c.upload(cfg)
        # the whole pipeline is submitted at once: each job waits for the outputs it names
        sim = c.submit("plexloc-simulate", config={"frames": 6, "seed": 1}, inputs={"config": f_cfg["id"]})
        # one detect job over two movies (many acquisitions per job; here the same one twice)
        det = c.submit("plexloc-detect", inputs={"movie": [f"job:{sim['id']}/movie.tif"] * 2, "config": f_cfg["id"]})
        ev = c.submit(
            "plexloc-evaluate", config={"dim": 2},
            inputs={"truth": f"job:{sim['id']}/truth.csv", "pred": f"job:{det['id']}/movie/locs.csv"},
        )
        assert det["waiting"] and ev["waiting"] and not sim["waiting"]
        ev = c.wait(ev["id"], timeout=180)
        sim, det = c.job(sim["id"]), c.job(det["id"])
        assert [sim["state"], det["state"], ev["state"]] == ["succeeded"] * 3, [sim["error"], det["error"], ev["error"]]
        assert sim["progress"] == 1.0 and sim["cpu_seconds"] > 0
        assert sim["finished_at"] <= det["started_at"] and det["finished_at"] <= ev["started_at"]
        outs = {o["name"]: o for o in c.outputs(sim["id"])}
        assert set(outs) == {"movie.tif", "truth.csv", "config.yaml", "log.txt"}
        assert det["inputs"]["movie"] == [outs["movie.tif"]["id"]] * 2  # references resolved to the files
        det_out = {o["name"]: o for o in c.outputs(det["id"])}
        assert {"movie/locs.csv", "1_movie/locs.csv", "log.txt"} <= set(det_out)  # same names: the second is 1_movie
        got = tmp_path / "got"
        c.download(sim["id"], got / "sim")
        c.download(det["id"], got / "det")
        assert (got / "det" / "movie" / "locs.csv").read_bytes() == (got / "det" / "1_movie" / "locs.csv").read_bytes()
        c.download(ev["id"], got / "ev")
        log = (got / "sim" / "log.txt").read_text()
        assert "simulate" in log and "[worker] succeeded" in log
    # the same commands run directly give the same results
    ref = tmp_path / "ref"
    assert main(["simulate", str(cfg), "--frames", "6", "--seed", "1", "--out", str(ref / "sim"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_movie(got / "sim" / "movie.tif"), read_movie(ref / "sim" / "movie.tif"))
    assert (got / "sim" / "truth.csv").read_bytes() == (ref / "sim" / "truth.csv").read_bytes()
    assert main(["detect", str(ref / "sim" / "movie.tif"), "--config", str(cfg), "--out", str(ref / "locs.csv"), "--device", "cpu"]) == 0
    assert (got / "det" / "movie" / "locs.csv").read_bytes() == (ref / "locs.csv").read_bytes()
    assert main(["evaluate", str(ref / "sim" / "truth.csv"), str(ref / "locs.csv"), "--dim", "2", "--json", str(ref / "m.json")]) == 0
    a, b = json.loads((got / "ev" / "metrics.json").read_text()), json.loads((ref / "m.json").read_text())
    for d in (a, b):  # the paths differ; every score must not
        d.pop("truth_file"), d.pop("pred_file")
    assert a == b and a["tp"] > 0


def test_cancel_a_running_job(env):
    svc, live, c = env
    with AgentThread(live.url, svc.worker_token):
        job = c.submit("ticker", entry_point="tick", config={"n": 400, "dt": 0.05})
        deadline = time.monotonic() + 30
        while (j := c.job(job["id"]))["progress"] < 0.01:
            assert time.monotonic() < deadline and j["state"] in ("queued", "assigned", "running"), j
            time.sleep(0.05)
        assert j["state"] == "running" and j["stage"] == "running"
        c.cancel(job["id"])
        j = c.wait(job["id"], timeout=30)
        assert j["state"] == "cancelled" and j["progress"] < 0.5
        lines = [x["line"] for x in c.log(job["id"])["lines"]]
        assert "tick 0" in lines and any("cancelled" in x for x in lines)
        assert [o["name"] for o in c.outputs(job["id"])] == ["log.txt"]  # stopped before writing ticks.txt
        # re-run gives a new job that runs to the end
        again = c.rerun(job["id"])
        assert again["rerun_of"] == job["id"]
        c.cancel(again["id"])


def test_time_limit_and_failing_command(env, tmp_path):
    svc, live, c = env
    bad = tmp_path / "bad.yaml"
    # a camera included by absolute path: only the worker reads it (the server accepts the job), and it is not there
    bad.write_text("px_size_nm: 100\nframe_size: [8, 8]\npsf: {kind: gaussian}\ncamera: /nonexistent/plexloc/camera.yaml\n")
    with AgentThread(live.url, svc.worker_token):
        slow = c.submit("ticker", entry_point="tick", config={"n": 400, "dt": 0.05}, timeout_s=0.5)
        fail = c.submit("plexloc-simulate", config={"frames": 2}, inputs={"config": c.upload(bad)["id"]})
        j = c.wait(slow["id"], timeout=30)
        assert j["state"] == "failed" and j["error"] == "time limit exceeded"
        j = c.wait(fail["id"], timeout=60)
        assert j["state"] == "failed" and "exited with code 2" in j["error"] and "bad.yaml" in j["error"]


def test_killed_worker_job_is_requeued_and_finished_by_another(env, tmp_path):
    svc, live, c = env
    job = c.submit("ticker", entry_point="tick", config={"n": 40, "dt": 0.05})
    env_vars = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plexloc.cli.main", "worker", "--server", live.url, "--token", svc.worker_token,
         "--poll", "0.05", "--ping", "0.2", "--cpus", "2", "--memory-mb", "8000"],
        env=env_vars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (j := c.job(job["id"]))["progress"] < 0.05:
            assert time.monotonic() < deadline and proc.poll() is None, j
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its job's process... of its own session
    finally:
        proc.wait()
    with AgentThread(live.url, svc.worker2_token):
        j = c.wait(job["id"], timeout=60)
    assert j["state"] == "succeeded" and j["attempts"] == 2, j
    lines = [x["line"] for x in c.log(job["id"])["lines"]]
    assert any("lease of worker" in x and "-> queued" in x for x in lines)
    assert any("claimed by worker w2" in x for x in lines)
    assert [o["name"] for o in c.outputs(job["id"])] == ["log.txt", "ticks.txt"]



def test_server_restart_keeps_state_and_workers_reconnect(tmp_path):
    from plexloc.service.app import create_app

    svc = make_service(tmp_path, lease_s=10.0, sweep_interval_s=0.2)
    first = LiveServer(svc.app)
    port = first.sock.getsockname()[1]
    with first, Client(first.url, svc.user_token) as c:
        job = c.submit("ticker", entry_point="tick", config={"n": 30, "dt": 0.05})
        worker = AgentThread(first.url, svc.worker_token)
        worker.__enter__()
        while c.job(job["id"])["progress"] < 0.2:
            time.sleep(0.05)
    # the server is down: the job runs on, the worker's pings fail and are retried
    time.sleep(0.5)
    try:
        with LiveServer(create_app(svc.settings), port=port) as second, Client(second.url, svc.user_token) as c:
            j = c.wait(job["id"], timeout=60)
            lines = [x["line"] for x in c.log(job["id"])["lines"]]
    finally:
        worker.__exit__(None, None, None)
    assert j["state"] == "succeeded" and j["attempts"] == 1, j
    assert [f"tick {i}" for i in range(30)] == [x for x in lines if x.startswith("tick")]  # no line lost


@pytest.mark.slow
def test_comet_drift_application_from_its_yaml_alone(env, tmp_path):
    """COMET (PyPI comet-smlm) as shipped by comet.yaml, no code: a linear drift is removed.
    Slow (COMET's numba kernels compile on first use); skipped where comet-smlm is absent."""
    from plexloc.service.agent import find_program

    if find_program("comet") is None:
        pytest.skip("comet-smlm not installed")
    svc, live, c = env
    rng = np.random.default_rng(0)
    cx, cy = rng.uniform(1000, 9000, 60), rng.uniform(1000, 9000, 60)
    rows = ['"frame","x [nm]","y [nm]","id"']  # extra columns are carried through
    for f in range(600):
        for i in np.flatnonzero(rng.random(60) < 0.5):
            rows.append(f"{f + 1},{cx[i] + 0.2 * f + rng.normal(0, 10):.2f},{cy[i] - 0.1 * f + rng.normal(0, 10):.2f},{i}")
    locs = tmp_path / "drifting.csv"
    locs.write_text("\n".join(rows) + "\n")
    with AgentThread(live.url, svc.worker_token):
        job = c.submit("comet", config={"segmentation_var": 60, "backend": "cpu"}, inputs={"locs": c.upload(locs)["id"]})
        j = c.wait(job["id"], timeout=300)
    assert j["state"] == "succeeded", j["error"]
    c.download(job["id"], tmp_path / "out")
    data = np.genfromtxt(tmp_path / "out" / "corrected.csv", delimiter=",", skip_header=1)
    raw = np.genfromtxt(locs, delimiter=",", skip_header=1)
    assert len(data) == len(raw)

    def drift(table):  # x offset from each emitter's true position, late minus early frames
        res = table[:, 1] - cx[table[:, 3].astype(int)]
        return res[table[:, 0] > 540].mean() - res[table[:, 0] <= 60].mean()

    assert drift(raw) == pytest.approx(0.2 * 540, abs=5)
    assert abs(drift(data)) < 15, drift(data)


def test_store_outage_makes_the_job_wait_not_fail(env):
    """The store answers 503 for a while (e.g. an S3 restart): the worker waits and retries, the
    job succeeds with all its outputs, and the log says what happened."""
    from plexloc.service.storage import StorageUnavailable

    svc, live, c = env
    store = svc.app.state.storage
    real, calls = store.finalize, []

    def flaky(key, **kw):
        calls.append(key)
        if len(calls) <= 3:
            raise StorageUnavailable("object store unreachable: connection refused")
        return real(key, **kw)

    store.finalize = flaky
    with AgentThread(live.url, svc.worker_token):
        job = c.submit("ticker", entry_point="tick", config={"n": 2})
        j = c.wait(job["id"], timeout=60)
    assert j["state"] == "succeeded", j["error"]
    assert sorted(o["name"] for o in c.outputs(job["id"])) == ["log.txt", "ticks.txt"]
    lines = [x["line"] for x in c.log(job["id"])["lines"]]
    assert sum("HTTP 503" in x and "retrying" in x for x in lines) == 3


def test_a_configuration_with_map_files_trains_and_its_model_fits_on_a_worker(env, tmp_path, monkeypatch):
    """A configuration names its sCMOS maps by relative path: they travel in the `files` slot and land beside it on
    the worker; the trained model carries them, so a fit job (another work folder, the training one deleted) needs
    only the model. Two inputs of one name in that folder are refused at submission."""
    svc, live, c = env
    monkeypatch.setenv("PLEXLOC_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "gain.npy", rng.uniform(0.45, 0.55, (16, 16)))
    np.save(src / "offset.npy", rng.uniform(98.0, 102.0, (16, 16)))
    data = {"px_size_nm": 100.0, "frame_size": [16, 16], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
            "camera": {"kind": "scmos", "e_per_adu": "gain.npy", "baseline": "offset.npy", "qe": 0.8,
                       "spurious_charge": 0.0, "read_sigma": 1.5},  # every field given: no defaults note
            "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0]}, "background": {"range": [20.0, 50.0]},
            "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1},
            "training": {"batch_size": 4, "validate_every": 2, "validation_samples": 8, "warmup_steps": 1}}
    (src / "cam.yaml").write_text(yaml.safe_dump(data))
    assert main(["simulate", str(src / "cam.yaml"), "--frames", "3", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    f_cfg, f_gain, f_off = (c.upload(src / n) for n in ("cam.yaml", "gain.npy", "offset.npy"))
    f_movie = c.upload(tmp_path / "sim" / "movie.tif")
    with pytest.raises(Exception, match="two files named 'gain.npy'"):
        c.submit("plexloc-train", config={"steps": 2}, inputs={"config": f_cfg["id"], "files": [f_gain["id"], f_gain["id"]]})
    with AgentThread(live.url, svc.worker_token):
        cpu = {"cpus": 1, "gpus": 0, "gpu_memory_mb": 0, "memory_mb": 2000}  # what this test worker has
        train = c.submit("plexloc-train", config={"steps": 2, "threads": 1}, hardware=cpu,
                         inputs={"config": f_cfg["id"], "files": [f_gain["id"], f_off["id"]]})
        fit = c.submit("plexloc-fit", entry_point="fit", hardware=cpu,
                       inputs={"movie": f_movie["id"], "model": f"job:{train['id']}/model.pt"})
        # the movie's camera given to the fit (the optional `camera` slot adds --camera), its maps beside it
        fit_cam = c.submit("plexloc-fit", entry_point="fit", hardware=cpu,
                           inputs={"movie": f_movie["id"], "model": f"job:{train['id']}/model.pt",
                                   "camera": f_cfg["id"], "camera_files": [f_gain["id"], f_off["id"]]})
        fit = c.wait(fit["id"], timeout=240)
        fit_cam = c.wait(fit_cam["id"], timeout=240)
        train = c.job(train["id"])
        assert [train["state"], fit["state"], fit_cam["state"]] == ["succeeded"] * 3, [train["error"], fit["error"], fit_cam["error"]]
        c.download(fit["id"], tmp_path / "fit")
        c.download(fit_cam["id"], tmp_path / "fit_cam")
        assert "--camera" in (tmp_path / "fit_cam" / "log.txt").read_text() and "--camera" not in (tmp_path / "fit" / "log.txt").read_text()
    assert (tmp_path / "fit" / "movie" / "locs.csv").read_text().startswith("frame,x_nm")
    # the same camera as the model's: the same table
    assert (tmp_path / "fit_cam" / "movie" / "locs.csv").read_bytes() == (tmp_path / "fit" / "movie" / "locs.csv").read_bytes()
    # the worker's copies of the maps came from the model (the training's work folder is gone)
    assert len(list((tmp_path / "cache" / "embedded").glob("*/*.npy"))) == 2
