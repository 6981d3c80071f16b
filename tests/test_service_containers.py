"""Entry points that name a container image: runtime detection, the runtime's command line, and a
job run through a fake runtime on PATH (a script that records its arguments and runs the command
with /work mapped back to the mounted folder; there is no real container runtime here). A worker
without a runtime does not claim such jobs."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from pathlib import Path

from service_support import LiveServer, make_service

from plexloc.service.agent import Agent, runnable
from plexloc.service.apps import EntryPoint, Hardware
from plexloc.service.client import Client
from plexloc.service.containers import Runtime, detect_runtime, to_container_path

FAKE = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_RUNTIME_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), *args]) + "\\n")
if args[0] == "rm":
    sys.exit(0)
assert args[0] == "run", args
i, host, env = 1, None, {{}}
while args[i].startswith("-"):
    if args[i] == "--rm":
        i += 1
        continue
    opt, val = args[i], args[i + 1]
    i += 2
    if opt == "-v":
        host, _, inside = val.partition(":")
        assert inside == "/work", val
    elif opt == "-e":
        k, _, v = val.partition("=")
        env[k] = v
image, cmd = args[i], args[i + 1:]
assert image == "ghcr.io/example/shout:1.0", image
assert not any(host in c for c in cmd), cmd  # the command sees container paths only
unmap = lambda s: s.replace("/work", host)
os.chdir(host)
os.execve(cmd[0], [unmap(c) for c in cmd], {{**os.environ, **{{k: unmap(v) for k, v in env.items()}}}})
"""

SHOUT = textwrap.dedent(
    """
    name: shout
    description: upper-cases a text file, from a container image
    versions:
      "1.0":
        entry_points:
          shout:
            image: ghcr.io/example/shout:1.0
            command: ["{python}", "-c", "import os, sys; open(sys.argv[2] + '/loud.txt', 'w').write(open(sys.argv[1]).read().upper() + os.environ['WHERE'])", "{{input.text}}", "{{output_dir}}"]
            env: {{WHERE: "in a box"}}
            inputs: {{text: {{kind: data, suffixes: [.txt]}}}}
            outputs: [{{path: loud.txt, required: true}}]
            hardware: {{cpus: 1, memory_mb: 100, gpus: 0}}
            timeout_s: 60
    """
)


def fake_runtime(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_container_paths_and_command_lines(tmp_path):
    work = tmp_path / "job"
    assert to_container_path(f"{work}/in/a.tif", work) == "/work/in/a.tif"
    assert to_container_path(str(work), work) == "/work"
    assert to_container_path(f"--out={work}/out", work) == "--out=/work/out"
    assert to_container_path(f"{work}x/a", work) == f"{work}x/a"  # not the folder itself: left alone
    cmd = ["plexloc", "fit", f"{work}/in/movie/m.tif", "--out", f"{work}/out/locs.csv"]
    assert Runtime("podman", "/usr/bin/podman").argv("img:1", cmd, work=work, env={"A": "1"}, gpus=1, cpus=2, memory_mb=500, name="j") == [
        "/usr/bin/podman", "run", "--rm", "-v", f"{work}:/work", "-w", "/work", "--name", "j",
        "--device", "nvidia.com/gpu=all", "--cpus", "2", "--memory", "500m", "-e", "A=1",
        "img:1", "plexloc", "fit", "/work/in/movie/m.tif", "--out", "/work/out/locs.csv"]
    assert Runtime("docker", "docker").argv("img:1", cmd, work=work, gpus=2)[:9] == [
        "docker", "run", "--rm", "-v", f"{work}:/work", "-w", "/work", "--gpus", "all"]
    assert Runtime("apptainer", "apptainer").argv("img:1", cmd, work=work, gpus=1) == [
        "apptainer", "exec", "--cleanenv", "--containall", "--bind", f"{work}:/work", "--pwd", "/work", "--nv",
        "docker://img:1", "plexloc", "fit", "/work/in/movie/m.tif", "--out", "/work/out/locs.csv"]
    assert Runtime("apptainer", "apptainer").argv("/images/x.sif", ["true"], work=work)[-2:] == ["/images/x.sif", "true"]


def test_runtime_detection_follows_path_and_preference(tmp_path, monkeypatch):
    monkeypatch.delenv("PLEXLOC_CONTAINER_RUNTIME", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert detect_runtime() is None
    bin_ = tmp_path / "bin"
    docker = fake_runtime(bin_, "docker")
    monkeypatch.setenv("PATH", str(bin_))
    assert detect_runtime() == Runtime("docker", str(docker))
    podman = fake_runtime(bin_, "podman")
    assert detect_runtime() == Runtime("podman", str(podman))  # daemonless first
    assert detect_runtime("docker") == Runtime("docker", str(docker))
    monkeypatch.setenv("PLEXLOC_CONTAINER_RUNTIME", "none")
    assert detect_runtime() is None
    monkeypatch.setenv("PLEXLOC_CONTAINER_RUNTIME", "apptainer")
    assert detect_runtime() is None  # asked for, not installed
    ep = EntryPoint(image="x:1", command=["tool"])
    assert not runnable(ep, None) and runnable(ep, Runtime("docker", str(docker)))


def test_a_worker_with_a_runtime_runs_the_image_one_without_does_not_claim_it(tmp_path, monkeypatch):
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "shout.yaml").write_text(SHOUT.format(python=sys.executable))
    podman = fake_runtime(tmp_path / "bin", "podman")
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_RUNTIME_LOG", str(calls))
    svc = make_service(tmp_path, apps_dirs=[apps])
    text = tmp_path / "quiet.txt"
    text.write_text("hello from the host\n")
    hw = Hardware(cpus=1, memory_mb=1000)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        job = c.submit("shout", inputs={"text": c.upload(text)["id"]})
        bare = Agent(live.url, svc.worker_token, hardware=hw, poll_s=0.05, runtime=None)
        try:
            assert all(x["application"] != "shout" for x in bare.can_run())
            assert bare.pull() is None  # asked with its own list, and the server checks too
            assert bare.http.post("/jobs/pull", json={"hardware": hw.model_dump(), "can_run": "*"}).status_code == 204
        finally:
            bare.close()
        assert c.job(job["id"])["state"] == "queued"
        agent = Agent(live.url, svc.worker2_token, hardware=hw, poll_s=0.05, ping_s=0.2, runtime=str(podman))
        worker = threading.Thread(target=agent.run, daemon=True)
        worker.start()
        try:
            done = c.wait(job["id"], timeout=60)
        finally:
            agent.stop.set()
            worker.join(timeout=30)
            agent.close()
        assert done["state"] == "succeeded", done["error"]
        c.download(job["id"], tmp_path / "got")
    assert (tmp_path / "got" / "loud.txt").read_text() == "HELLO FROM THE HOST\nin a box"
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call[:4] == ["podman", "run", "--rm", "-v"] and call[4].endswith(":/work")
    assert call[call.index("-e") + 1] == "WHERE=in a box" and call[call.index("--name") + 1] == f"plexloc-{job['id']}-0"
    image_at = call.index("ghcr.io/example/shout:1.0")
    assert call[image_at + 4].startswith("/work/in/text/") and call[image_at + 5] == "/work/out"
