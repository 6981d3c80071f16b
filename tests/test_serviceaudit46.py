"""A facility's walk through the job service (README "## Job service"), session 46: what it found wrong.

- a submission the server refused (a wrong parameter, a full job limit) left the files ``plexloc submit`` had
  uploaded for it in the user's space, counted against the quota, and the command line cannot delete a file;
- a 2-core CPU worker could not take ``plexloc-train`` (4 cores by default): ``plexloc submit`` overrode only the GPUs,
  and the queued job's note gave no way out for the CPU cores or the RAM;
- an unknown hardware key was answered ``hardware: 1 validation error for Hardware: {'cpu': 1}``;
- the web page wrote a refused job's field twice (``422: inputs.config: inputs.config: file ...``) and had no CPU or
  RAM override either;
- the worker's own log showed its banner and nothing of the jobs it ran, nor that SIGTERM would stop it;
- a file deleted after a job ran vanished from the job's inputs, and the job's re-run ran without it (one movie of two);
- a bad ``PLEXLOC_*`` setting was pydantic's traceback, and a lease of 0 s or 0 attempts started a server;
- a damaged part file failed ``plexloc download`` (a second call was needed); an upload stopped half-way left its file
  pending, counted against the quota for a week.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")  # the service extra: skipped, not a collection error, where absent
from service_support import (REPO, LiveServer, auth, chromium_executable, make_service,  # noqa: E402,F401
                             postgres_server, signed_in_page)

from plexloc.cli.main import main  # noqa: E402

DEMO = REPO / "examples" / "demo_2d.yaml"  # plexloc-train's 4 CPU cores and 8000 MB by default


def _files(live, token: str) -> list[dict]:
    with httpx.Client(base_url=live.url, headers=auth(token)) as h:
        return h.get("/api/v1/files").json()


def test_a_refused_submission_leaves_no_upload_behind(tmp_path, capsys):
    svc = make_service(tmp_path, max_active_jobs=1)
    with LiveServer(svc.app) as live:
        common = ["--server", live.url, "--token", svc.user_token]
        # a wrong parameter: refused after the configuration was uploaded
        assert main(["submit", "plexloc-train", *common, "--input", f"config={DEMO}", "--set", "steps=0",
                     "--gpus", "0"]) == 2
        assert "config.steps: Input should be greater than or equal to 1 (got 0)" in capsys.readouterr().err
        assert _files(live, svc.user_token) == []
        # two uploads, then the job limit (429): both removed again
        assert main(["submit", "ticker", *common, "--entry", "tick"]) == 0
        capsys.readouterr()
        locs = tmp_path / "locs.csv"
        locs.write_text("frame,x_nm,y_nm,z_nm,photons\n0,100,100,0,1000\n")
        assert main(["submit", "plexloc-evaluate", *common, "--input", f"truth={locs}", "--input", f"pred={locs}"]) == 2
        assert "server (429): you have 1 job queued or running, the most this server allows one user (1)" in \
            capsys.readouterr().err
        assert _files(live, svc.user_token) == []
        # a submission that goes through keeps its upload, and a file already on the server is never deleted
        up = tmp_path / "up.yaml"
        shutil.copy(DEMO, up)
        from plexloc.service.client import Client

        with Client(live.url, svc.user_token) as c:
            kept = c.upload(up)["id"]
            c.cancel(c.jobs()[0]["id"])
        assert main(["submit", "plexloc-train", *common, "--input", f"config=file:{kept}", "--set", "steps=0"]) == 2
        capsys.readouterr()
        assert main(["submit", "plexloc-train", *common, "--input", f"config={DEMO}", "--set", "steps=5",
                     "--gpus", "0"]) == 0
        names = sorted(f["name"] for f in _files(live, svc.user_token))
        assert names == ["demo_2d.yaml", "up.yaml"]
    svc.app.state.engine.dispose()


def test_a_two_core_worker_runs_train_with_the_cpu_override_its_note_names(tmp_path, capsys):
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    hw = {"cpus": 2, "memory_mb": 6000, "gpus": 0, "gpu_memory_mb": 0}
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c, httpx.Client(base_url=live.url) as h:
        def pull():
            return h.post("/worker/v1/jobs/pull", json={"hardware": hw}, headers=auth(svc.worker_token))

        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["submit", "plexloc-train", *common, "--input", f"config={DEMO}", "--gpus", "0", "--set",
                     "steps=5"]) == 0
        job = capsys.readouterr().out.strip().splitlines()[-1]
        assert pull().status_code == 204  # 4 cores, 8000 MB asked: the worker cannot take it
        note = c.job(job)["note"]
        assert "(4 CPU(s), 8000 MB RAM): w1: 0 GPU(s), 2 CPU(s), 6000 MB RAM" in note
        assert note.endswith('(on these workers: submit with --cpus 2 --memory-mb 6000, or "hardware": '
                             '{"cpus": 2, "memory_mb": 6000})')
        # a GPU job on it: the GPU, the cores and the RAM in one hint
        gpu = c.submit("plexloc-train", inputs={"config": c.job(job)["inputs"]["config"]}, config={"steps": 5})
        assert c.job(gpu["id"])["note"].endswith('(on a CPU: submit with --gpus 0 --cpus 2 --memory-mb 6000, or '
                                                 '"hardware": {"gpus": 0, "cpus": 2, "memory_mb": 6000})')
        c.cancel(gpu["id"])
        c.cancel(job)
        # what the note says, done: the worker takes the job
        assert main(["submit", "plexloc-train", *common, "--input", f"config={DEMO}", "--gpus", "0", "--cpus", "2",
                     "--memory-mb", "6000", "--set", "steps=5"]) == 0
        job = capsys.readouterr().out.strip().splitlines()[-1]
        assert c.job(job)["hardware"] == {"cpus": 2, "memory_mb": 6000, "gpus": 0, "gpu_memory_mb": 0}
        assert c.job(job)["note"] is None
        assert pull().json()["job_id"] == job
    # the options take only sensible counts
    with pytest.raises(SystemExit):
        main(["submit", "ticker", "--cpus", "0"])
    assert "argument --cpus: must be a positive integer, got '0'" in capsys.readouterr().err
    svc.app.state.engine.dispose()


def test_an_unknown_or_impossible_hardware_key_is_named_with_its_value(tmp_path):
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, headers=auth(svc.user_token)) as h:
        r = h.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick", "hardware": {"cpu": 1}})
        assert r.status_code == 422
        assert r.json() == {"field": "hardware.cpu", "detail": "hardware.cpu: Extra inputs are not permitted (got 1); "
                            "allowed: cpus, memory_mb, gpus, gpu_memory_mb"}
        r = h.post("/api/v1/jobs", json={"application": "ticker", "entry_point": "tick", "hardware": {"cpus": 0}})
        assert r.status_code == 422
        assert r.json()["detail"] == "hardware.cpus: Input should be greater than or equal to 1 (got 0)"
    svc.app.state.engine.dispose()


@pytest.mark.skipif(chromium_executable() is None, reason="no chromium executable")
def test_the_web_page_names_a_refused_field_once_and_overrides_cpus_and_ram(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable(), headless=True, args=["--no-sandbox"])
        try:
            page = signed_in_page(browser, live.url, svc.user_token)
            page.select_option("#app", "ticker")
            page.select_option("#entry", "tick")
            page.fill("#p-n", "0")  # below the minimum 1 (the browser sends it all the same)
            page.click("#submit")
            page.wait_for_selector("#error:has-text('config.n')")
            assert page.inner_text("#error") == "422: config.n: Input should be greater than or equal to 1 (got 0)"
            page.fill("#p-n", "2")
            page.fill("#gpus", "-1")  # the API's schema refuses it: its place and value, not a JSON dump
            page.click("#submit")
            page.wait_for_selector("#error:has-text('hardware.gpus')")
            assert page.inner_text("#error") == ("422: hardware.gpus: Input should be greater than or equal to 0 "
                                                 "(got -1)")
            page.fill("#gpus", "0")
            page.fill("#cpus", "3")
            page.fill("#memory", "70")
            page.click("#submit")
            page.wait_for_selector("#submit-status:has-text('submitted')")
            job = page.inner_text("#submit-status").split()[-1]
        finally:
            browser.close()
        with httpx.Client(base_url=live.url, headers=auth(svc.user_token)) as h:
            assert h.get(f"/api/v1/jobs/{job}").json()["hardware"] == {"cpus": 3, "memory_mb": 70, "gpus": 0,
                                                                        "gpu_memory_mb": 0}
    svc.app.state.engine.dispose()


def test_the_worker_log_names_each_job_it_runs_and_how_it_ended(tmp_path, caplog):
    """The worker's own log (journalctl -u plexloc-worker) showed its banner and nothing else while it ran jobs."""
    import logging

    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        ok = c.submit("ticker", entry_point="tick", config={"n": 2, "dt": 0})["id"]
        bad = c.submit("ticker", entry_point="tick", config={"n": 50, "dt": 0.1}, timeout_s=0.3)["id"]
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05)
        with caplog.at_level(logging.INFO, logger="plexloc.worker"):
            assert agent.run(max_jobs=2) == 2
        agent.close()
        said = [r.getMessage() for r in caplog.records if r.name == "plexloc.worker"]
        assert f"job {ok}: ticker 1.0 tick claimed (attempt 1)" in said and f"job {ok}: succeeded" in said
        assert f"job {bad}: failed: time limit exceeded" in said
        assert c.job(bad)["error"] == "time limit exceeded"
    svc.app.state.engine.dispose()


def test_sigterm_tells_the_worker_log_it_stops_after_the_running_job(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import plexloc

    svc = make_service(tmp_path)
    src = Path(plexloc.__file__).parents[1]  # the plexloc this test imported
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with LiveServer(svc.app) as live:
        proc = subprocess.Popen([sys.executable, "-m", "plexloc.cli.main", "worker", "--server", live.url, "--token",
                                 svc.worker_token, "--gpus", "0", "--work-dir", str(tmp_path / "wk")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            with proc.stdout:
                assert proc.stdout.readline().startswith(f"plexloc worker -> {live.url}")
                time.sleep(0.5)  # the handler is set before the banner: the worker is pulling now
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
                assert "SIGTERM: stopping once the running job (if any) has ended" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    svc.app.state.engine.dispose()


def test_a_deleted_input_is_still_named_by_its_job_and_its_rerun_is_refused(tmp_path):
    """A fit job on two movies whose second movie the user deleted afterwards (the web page's Files, delete): its
    record named one movie, and its Re-run ran on that one alone, without a word."""
    _deleted_input(tmp_path, make_service(tmp_path))


def test_a_deleted_input_on_postgresql(tmp_path, postgres_server):
    from service_support import fresh_postgres_db

    _deleted_input(tmp_path, make_service(tmp_path, db_url=fresh_postgres_db(postgres_server)))


def _deleted_input(tmp_path, svc):
    from plexloc.service.client import Client, ServiceError

    (tmp_path / "a.tif").write_bytes(b"II*\x00" + bytes(60))
    (tmp_path / "b.tif").write_bytes(b"II*\x00" + bytes(60))
    (tmp_path / "model.pt").write_bytes(b"weights")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        a, b, model = (c.upload(tmp_path / n)["id"] for n in ("a.tif", "b.tif", "model.pt"))
        job = c.submit("plexloc-fit", entry_point="fit", inputs={"movie": [a, b], "model": [model]},
                       hardware={"gpus": 0})["id"]
        c.cancel(job)  # queued: ended at once
        c.delete_file(b)
        assert c.job(job)["inputs"] == {"model": [model], "movie": [a, "deleted:b.tif"]}
        with pytest.raises(ServiceError) as refused:
            c.rerun(job)
        assert refused.value.status == 422
        assert refused.value.detail == ("inputs.movie: file b.tif (one of this job's inputs) was deleted after the job "
                                        "ran; a re-run needs every file the job had: submit a new job with it uploaded "
                                        "again")
        assert len(c.jobs()) == 1  # nothing re-run
        # with every file still there, the re-run goes on as before
        other = c.submit("plexloc-fit", entry_point="fit", inputs={"movie": [a], "model": [model]},
                         hardware={"gpus": 0})["id"]
        c.cancel(other)
        again = c.rerun(other)
        assert again["inputs"] == {"model": [model], "movie": [a]}
        c.cancel(again["id"])
        # a file still feeding a job that has not ended is not deleted (as before)
        queued = c.submit("plexloc-fit", entry_point="fit", inputs={"movie": [a], "model": [model]},
                          hardware={"gpus": 0})["id"]
        with pytest.raises(ServiceError) as busy:
            c.delete_file(a)
        assert busy.value.status == 409 and queued in busy.value.detail
        # deleting the job deletes its own rows; the file it had is the user's still
        c.cancel(queued)
        c.delete(queued)
        assert {f["id"] for f in c.files()} == {a, model}
    svc.app.state.engine.dispose()


@pytest.mark.parametrize("var, value, said", [
    ("PLEXLOC_LEASE_S", "abc", "PLEXLOC_LEASE_S: Input should be a valid number, unable to parse string as a number "
                               "(got 'abc')"),
    ("PLEXLOC_LEASE_S", "0", "PLEXLOC_LEASE_S: Input should be greater than 0 (got '0')"),
    ("PLEXLOC_MAX_ATTEMPTS", "0", "PLEXLOC_MAX_ATTEMPTS: Input should be greater than or equal to 1 (got '0')"),
    ("PLEXLOC_MAX_ACTIVE_JOBS", "0", "PLEXLOC_MAX_ACTIVE_JOBS: Input should be greater than or equal to 1 (got '0')"),
])
def test_a_setting_the_server_cannot_run_with_is_one_line_naming_it(tmp_path, capsys, monkeypatch, var, value, said):
    """A bad PLEXLOC_* variable printed pydantic's traceback; a lease of 0 s (jobs taken from their workers at once,
    run again and again) or --max-attempts 0 started a server."""
    import uvicorn

    def started(*a, **kw):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    monkeypatch.setenv(var, value)
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"plexloc serve: error: {said}" and "Traceback" not in err
    assert main(["admin", "--data-dir", str(tmp_path), "list"]) == 2  # the same settings
    assert said in capsys.readouterr().err
    monkeypatch.delenv(var)
    for option in (["--lease", "0"], ["--max-attempts", "0"]):
        with pytest.raises(SystemExit):
            main(["serve", "--data-dir", str(tmp_path), *option])
        assert f"argument {option[0]}: must be a positive" in capsys.readouterr().err


def test_a_damaged_part_file_is_downloaded_again_whole_in_the_same_call(tmp_path):
    """``plexloc download`` resumed from a part file whose bytes were not the file's (a crash, a bad disk): the
    checksum failed, the call ended with exit 2 and wrote none of the job's other outputs; a second call was needed."""
    import hashlib

    from plexloc.service import transfer
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    data = bytes(range(256)) * 400
    (tmp_path / "big.bin").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c, httpx.Client() as h:
        fid = c.upload(tmp_path / "big.bin")["id"]
        url = c._get(f"/files/{fid}/download-url")["url"]
        out = tmp_path / "dl"
        out.mkdir()
        part = out / f".big.bin.{sha[:12]}.part"
        part.write_bytes(b"\xff" * 30000)  # not the file's first bytes
        assert transfer.download(h, url, out / "big.bin", sha256=sha).read_bytes() == data
        assert sorted(p.name for p in out.iterdir()) == ["big.bin"]
        # a good part file is resumed (the range asked from its end), as before
        (out / "big.bin").unlink()
        part.write_bytes(data[:30000])
        assert transfer.download(h, url, out / "big.bin", sha256=sha).read_bytes() == data
        # the whole file arriving wrong is still an error, with nothing written
        with pytest.raises(transfer.ChecksumMismatch):
            transfer.download(h, url, out / "again.bin", sha256="0" * 64)
        assert sorted(p.name for p in out.iterdir()) == ["big.bin"]
    svc.app.state.engine.dispose()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, "transfer"])
def test_an_upload_that_stops_half_way_leaves_no_pending_file(tmp_path, monkeypatch, stop):
    """``plexloc submit`` stopped by Ctrl-C in an upload, or an upload failing after its retries: the registered file
    stayed, pending, counted against the quota at its full size until it expired a week later (and a later call
    uploads it anew, never resuming it)."""
    from plexloc.service import transfer
    from plexloc.service.client import Client

    real = transfer.upload

    def half_then_stop(http, url, path, **kw):
        r = http.put(url + "&offset=0", content=path.read_bytes()[:500])
        assert r.status_code == 200 and r.json()["offset"] == 500
        if stop is KeyboardInterrupt:
            raise KeyboardInterrupt
        raise transfer.TransferError(f"upload of {path.name} failed after 4 tries: the store did not answer")

    svc = make_service(tmp_path, user_quota_bytes=3000)
    (tmp_path / "movie.tif").write_bytes(b"II*\x00" + bytes(1996))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        monkeypatch.setattr(transfer, "upload", half_then_stop)
        with pytest.raises(KeyboardInterrupt if stop is KeyboardInterrupt else transfer.TransferError):
            c.upload(tmp_path / "movie.tif")
        assert c.files() == [] and c.usage()["file_bytes"] == 0
        assert list((svc.settings.data_dir / "files").rglob("*.part")) == []
        monkeypatch.setattr(transfer, "upload", real)
        assert c.upload(tmp_path / "movie.tif")["state"] == "ready"  # within the quota: the first try left nothing
    svc.app.state.engine.dispose()
