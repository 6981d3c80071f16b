"""``plexloc admin`` and ``plexloc serve`` from the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")  # the service extra: skipped, not a collection error, where absent
from service_support import REPO  # noqa: E402

from plexloc.cli.main import main  # noqa: E402


def test_admin_creates_users_and_workers_with_tokens_shown_once(tmp_path, capsys):
    data = ["--data-dir", str(tmp_path)]
    assert main(["admin", *data, "create-user", "alice", "--group", "lab"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("plxu_") and len(token) > 40
    assert main(["admin", *data, "create-worker", "gpu1", "--group", "lab", "--tags", "gpu,a100"]) == 0
    wtoken = capsys.readouterr().out.strip()
    assert wtoken.startswith("plxw_")
    assert main(["admin", *data, "create-user", "alice"]) == 2  # a name is taken once
    assert "exists already" in capsys.readouterr().err
    assert main(["admin", *data, "list"]) == 0
    listing = capsys.readouterr().out
    assert "user\talice\tlab\tactive" in listing and "worker\tgpu1\tlab\tactive\tgpu,a100" in listing
    assert token not in listing and token not in (tmp_path / "plexloc.db").read_bytes().decode(errors="ignore")
    assert main(["admin", *data, "disable", "user", "alice"]) == 0
    assert main(["admin", *data, "rotate", "user", "nobody"]) == 2


def test_serve_starts_and_answers(tmp_path, capsys):
    """``plexloc serve`` answers on its port. The port is found free, then given to the server: another process (a
    second pytest-xdist worker's server) may take it in between, and the server then stops at once ("address already
    in use"): tried again on another port, up to three times; the user of this data folder answering proves the
    server is this one."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert main(["admin", "--data-dir", str(tmp_path), "create-user", "u"]) == 0
    token = capsys.readouterr().out.strip()
    for attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "plexloc.cli.main", "serve", "--port", str(port), "--data-dir", str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            auth = {"Authorization": f"Bearer {token}"}
            while proc.poll() is None:  # until this data folder's user answers (another server would say 401)
                try:
                    me = httpx.get(f"http://127.0.0.1:{port}/api/v1/me", headers=auth, timeout=1)
                    if me.status_code == 200 and me.json()["name"] == "u":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.2)
            if proc.poll() is not None:  # ended: the port was taken meanwhile (or a real failure, said below)
                out = proc.stdout.read().decode()
                if "already in use" in out.lower() and attempt < 2:
                    continue
                raise AssertionError(out)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs").status_code == 401
            return
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            proc.stdout.close()


@pytest.mark.parametrize("bad", ["name: x\\nversions: {}\\n", "::: not yaml"])
def test_serve_refuses_a_bad_application_yaml(tmp_path, capsys, bad):
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "bad.yaml").write_text(bad.replace("\\n", "\n"))
    assert main(["serve", "--data-dir", str(tmp_path), "--apps", str(apps), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err


def test_submit_status_download_commands(tmp_path, capsys):
    from service_support import LiveServer, make_service

    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    svc = make_service(tmp_path)
    params = tmp_path / "p.yaml"
    params.write_text("n: 3\n")
    with LiveServer(svc.app) as live:
        common = ["--server", live.url, "--token", svc.user_token]
        assert main(["submit", "ticker", *common, "--entry", "tick", "--config", str(params), "--set", "dt=0"]) == 0
        job_id = capsys.readouterr().out.strip()
        assert main(["status", job_id, *common]) == 0
        assert capsys.readouterr().out.strip() == "queued"
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05)
        assert agent.run(max_jobs=1) == 1
        agent.close()
        assert main(["status", job_id, *common, "-v", "--log"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("succeeded\n") and "progress 100%" in out and "tick 2" in out
        assert main(["download", job_id, *common, "--out", str(tmp_path / "dl")]) == 0
        assert (tmp_path / "dl" / "ticks.txt").read_text() == "3"
        used = httpx.get(f"{live.url}/api/v1/usage", headers={"Authorization": f"Bearer {svc.user_token}"}).json()
        assert used["jobs"] == 1 and used["by_application"]["ticker"]["jobs"] == 1 and used["cpu_seconds"] > 0
        assert main(["admin", "--data-dir", str(svc.settings.data_dir), "usage"]) == 0
        out = capsys.readouterr().out
        assert "user\talice\t1 jobs" in out and "worker\tw1\t1 jobs" in out
        # a pipeline input: another job's output, by reference
        assert main(["submit", "plexloc-evaluate", *common, "--input", f"truth=job:{job_id}/ticks.txt",
                     "--input", f"pred=job:{job_id}/ticks.txt"]) == 2  # wrong suffix for the slot: named
        assert "inputs.truth" in capsys.readouterr().err
        # errors are one line, exit 2
        assert main(["submit", "ticker", *common, "--entry", "tick", "--set", "n=0"]) == 2
        assert "config.n" in capsys.readouterr().err
        assert main(["status", "nope", *common]) == 2
        assert main(["submit", "plexloc-simulate", *common, "--input", f"config={tmp_path / 'missing.yaml'}"]) == 2
        assert main(["status", job_id, "--server", live.url, "--token", "bad"]) == 2
        capsys.readouterr()
        # an id is one path segment: '../files' names no other resource
        assert main(["status", "../files", *common]) == 2
        assert "server (404)" in capsys.readouterr().err
        assert main(["submit", "ticker", *common, "--entry", "tick", "--set", "dt=.inf"]) == 2
        assert "parameter dt is inf; parameters must be finite" in capsys.readouterr().err
    # no server there, no scheme: one line each, no traceback
    assert main(["status", "abc", "--server", "http://127.0.0.1:9", "--token", "t"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server: ConnectError" in err and "Traceback" not in err
    assert main(["status", "abc", "--server", "localhost:8000", "--token", "t"]) == 2
    assert "must be a URL starting with http://" in capsys.readouterr().err


def test_submit_attaches_the_files_a_configuration_names(tmp_path, capsys):
    """`--input config=cam.yaml` of an app with a `files` slot beside the configuration uploads the maps the YAML
    names by relative path (they would not be found on the worker otherwise); one that is missing, or in a
    sub-folder, is named before anything is submitted; files given by hand are left as they are."""
    from service_support import LiveServer, make_service

    svc = make_service(tmp_path)
    np_ = __import__("numpy")
    np_.save(tmp_path / "gain.npy", np_.full((8, 8), 0.5))
    cfg = tmp_path / "cam.yaml"
    cfg.write_text("px_size_nm: 100\nframe_size: [8, 8]\npsf: {kind: gaussian}\n"
                   "camera: {kind: scmos, e_per_adu: gain.npy, read_variance: gain.npy}\n")
    with LiveServer(svc.app) as live:
        common = ["--server", live.url, "--token", svc.user_token]
        client = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {svc.user_token}"})
        assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 0
        cap = capsys.readouterr()
        out = cap.out  # the job id alone; "attaching" on stderr (session 50)
        assert cap.err.count("attaching") == 1 and "gain.npy to input files (named by" in cap.err
        job = client.get(f"/api/v1/jobs/{out.strip().splitlines()[-1]}").json()
        names = [client.get(f"/api/v1/files/{fid}").json()["name"] for fid in job["inputs"]["files"]]
        assert names == ["gain.npy"]
        # given by hand: nothing attached on top
        assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}",
                     "--input", f"files={tmp_path / 'gain.npy'}"]) == 0
        assert "attaching" not in capsys.readouterr().err
        cfg.write_text(cfg.read_text().replace("e_per_adu: gain.npy", "e_per_adu: maps/gain.npy"))
        n_files = len(client.get("/api/v1/files").json())
        assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 2
        assert "maps/gain.npy, which is not next to the configuration" in capsys.readouterr().err
        (tmp_path / "maps").mkdir()
        np_.save(tmp_path / "maps" / "gain.npy", np_.full((8, 8), 0.5))
        assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 2
        assert "in a sub-folder" in capsys.readouterr().err
        assert len(client.get("/api/v1/files").json()) == n_files  # refused before any upload
        client.close()


def test_the_cli_parser_imports_no_heavy_dependency():
    """`plexloc serve` stays small (the 5 GB bar: < 300 MB resident) only while building the parser
    imports neither torch nor the other commands' numerics."""
    code = ("import sys; from plexloc.cli.main import build_parser; build_parser(); "
            "print(' '.join(m for m in ('torch', 'scipy', 'h5py', 'tifffile', 'matplotlib') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
