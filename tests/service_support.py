"""Fixtures of the service tests: an app on a temporary data folder, tokens, a live server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

import uvicorn  # noqa: E402
import httpx  # noqa: E402

from plexloc.service import admin  # noqa: E402
from plexloc.service.app import create_app  # noqa: E402
from plexloc.service.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "2d_gaussian.yaml"

#: a third-party application given by its YAML alone: counts to N, printing progress, then writes a file
TICKER = """
import pathlib, struct, sys, time, zlib
n, dt, out = int(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3])
for i in range(n):
    print(f"tick {i}", flush=True)
    print(f"PLEXLOC_PROGRESS {(i + 1) / n:.3f}", flush=True)
    time.sleep(dt)
(out / "ticks.txt").write_text(str(n))
if len(sys.argv) > 4:  # an 8 x 8 grey PNG, for the web page's preview
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\\x00" + bytes(range(0, 256, 32)) for _ in range(8))
    png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
    (out / "preview.png").write_bytes(png + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
"""


def ticker_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ticker.py"
    script.write_text(TICKER)
    (folder / "ticker.yaml").write_text(
        textwrap.dedent(
            f"""
            name: ticker
            description: test application (counts, reports progress)
            versions:
              "1.0":
                entry_points:
                  tick:
                    command: ["{sys.executable}", "{script}", "{{param.n}}", "{{param.dt}}", "{{output_dir}}"]
                    params:
                      n: {{type: integer, default: 3, minimum: 1}}
                      dt: {{type: number, default: 0.01, minimum: 0}}
                    outputs: [{{path: ticks.txt, required: true}}]
                    hardware: {{cpus: 1, memory_mb: 10}}
                    timeout_s: 60
                  gpu:
                    command: ["{sys.executable}", "{script}", "1", "0", "{{output_dir}}"]
                    hardware: {{cpus: 1, memory_mb: 10, gpus: 1}}
                  picture:
                    command: ["{sys.executable}", "{script}", "{{param.n}}", "{{param.dt}}", "{{output_dir}}", "png"]
                    params:
                      n: {{type: integer, default: 3, minimum: 1}}
                      dt: {{type: number, default: 0.01, minimum: 0}}
                    outputs: [{{path: ticks.txt, required: true}}, {{path: "*.png"}}]
                    hardware: {{cpus: 1, memory_mb: 10}}
            """
        )
    )
    return folder


@dataclass
class Service:
    app: object
    settings: Settings
    user_token: str
    other_token: str
    worker_token: str
    worker2_token: str

    def sessions(self):
        return self.app.state.sessions


def script_app(folder: Path, script: str, *, name: str, outputs: tuple[str, ...] = ("*.txt",)) -> Path:
    """An application ``name`` in ``folder`` whose one entry point ``run`` runs the Python ``script`` as
    ``script MODE OUTPUT_DIR ARG`` (params ``mode``, ``arg``), keeping the files matching ``outputs``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(script)
    outs = ", ".join(f'{{path: "{o}"}}' for o in outputs)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(f"""
        name: {name}
        versions:
          "1":
            entry_points:
              run:
                command: ["{sys.executable}", "{folder / f'{name}.py'}", "{{param.mode}}", "{{output_dir}}", "{{param.arg}}"]
                params:
                  mode: {{type: string}}
                  arg: {{type: string, default: "0"}}
                outputs: [{outs}]
                hardware: {{cpus: 1, memory_mb: 10}}
                timeout_s: 120
        """))
    return folder


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not; Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def gone_within(pid: int, timeout: float = 5.0) -> float | None:
    """Seconds until process ``pid`` was gone, or None if it outlived ``timeout`` (it is killed then: no test leaves
    a process behind)."""
    import os
    import signal

    t0 = time.monotonic()
    while pid_alive(pid) and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        return None
    return time.monotonic() - t0


def quick_kill_agent(url: str, token: str, **kw) -> AgentThread:
    """The shared test agent with a 1 s kill grace (for tests that kill stubborn children)."""
    return AgentThread(url, token, **{"kill_grace_s": 1.0, **kw})


def all_log_lines(client, job_id: str) -> list[str]:
    """Every log line of a job, page by page, through the user API (``client``: a :class:`plexloc.service.Client`)."""
    lines, after = [], 0
    while True:
        page = client._get(f"/jobs/{job_id}/log", after=after, limit=10000)
        if not page["lines"]:
            return lines
        lines += [x["line"] for x in page["lines"]]
        after = page["next_after"]


def wait_for_stage(client, job_id: str, stage: str, timeout: float = 30.0) -> dict:
    """Poll a job until its ``stage`` is ``stage`` (it must not end before); the job's last state."""
    deadline = time.monotonic() + timeout
    while (j := client.job(job_id))["stage"] != stage:
        assert time.monotonic() < deadline and j["state"] in ("queued", "assigned", "running"), j
        time.sleep(0.02)
    return j


def make_service(tmp_path: Path, **overrides) -> Service:
    values = {"data_dir": tmp_path / "data", "sweep_interval_s": 0, "apps_dirs": [ticker_app(tmp_path / "apps")]}
    settings = Settings(**{**values, **overrides})
    app = create_app(settings)
    with app.state.sessions.begin() as s:
        _, ut = admin.create_user(s, "alice")
        _, ot = admin.create_user(s, "bob")
        _, wt = admin.create_worker(s, "w1")
        _, wt2 = admin.create_worker(s, "w2")
    return Service(app, settings, ut, ot, wt, wt2)


@pytest.fixture
def service(tmp_path) -> Service:
    return make_service(tmp_path)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def live(service):
    """The service on a loopback port (a real HTTP server: the bytes routes stream as in production)."""
    with LiveServer(service.app) as server:
        yield server


@pytest.fixture
def http(live):
    with httpx.Client(base_url=live.url, timeout=30) as c:
        yield c


@pytest.fixture
def user_server(tmp_path):
    """``(service, live server, client authorised as the user)``: what the submit tests drive."""
    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live, httpx.Client(base_url=live.url, timeout=30,
                                                   headers={"Authorization": f"Bearer {svc.user_token}"}) as client:
        yield svc, live, client


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app, port: int = 0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    import os

    if os.environ.get("PLEXLOC_PG_BIN"):  # a folder holding initdb and pg_ctl
        path = Path(os.environ["PLEXLOC_PG_BIN"]) / name
        return str(path) if path.exists() else None
    found = shutil.which(name)
    if found:
        return found
    # Debian/Ubuntu keep them off PATH, one folder per major version: take the newest (numerically)
    found = glob.glob(f"/usr/lib/postgresql/*/bin/{name}") + glob.glob(f"/usr/pgsql-*/bin/{name}")

    def major(path: str) -> float:
        digits = "".join(c for c in Path(path).parts[-3].split("-")[-1] if c.isdigit() or c == ".")
        try:
            return float(digits)
        except ValueError:
            return -1.0

    return max(found, key=major) if found else None


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A throw-away PostgreSQL cluster (Debian's package) on a free loopback port; skipped without one.
    As root the cluster runs as the ``postgres`` user (PostgreSQL refuses root)."""
    import os
    import pwd
    import subprocess

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    pytest.importorskip("psycopg")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL (initdb, pg_ctl) not installed")
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="plexloc-pg-"))  # not under pytest's 0700 folder: postgres must reach it
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    def run(*a, fail: bool = True):
        r = subprocess.run([*prefix, *a], capture_output=True, text=True)
        if r.returncode and fail:
            pytest.fail(f"{a[0]} failed: {r.stdout}{r.stderr}")
        return r.returncode

    run(initdb, "-D", str(data), "-A", "trust", "-U", "plexloc", "--no-sync")
    # a port found free may be taken before the cluster binds it (another pytest-xdist worker's server or cluster):
    # found again and tried again, up to three times
    for attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        opts = f"-p {port} -k {root} -h 127.0.0.1 -F -c fsync=off -c max_connections=200"
        if run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start", fail=attempt == 2) == 0:
            break
    try:
        yield f"postgresql+psycopg://plexloc@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


_pg_count = [0]


def fresh_postgres_db(server_url: str) -> str:
    """A new, empty database on the test cluster."""
    import psycopg

    _pg_count[0] += 1
    name = f"t{_pg_count[0]}_{int(time.time() * 1000) % 10**8}"
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"


class AgentThread:
    """A worker agent running in a thread for a test: ``with AgentThread(url, token, **agent_options) as agent``;
    stopped and closed on exit. Defaults: 2 CPUs and 8 GB offered, fast polling and pings, 2 s kill grace."""

    def __init__(self, url: str, token: str, **kw):
        from plexloc.service.agent import Agent
        from plexloc.service.apps import Hardware

        kw = {"hardware": Hardware(cpus=2, memory_mb=8000), "poll_s": 0.05, "ping_s": 0.2, "kill_grace_s": 2, **kw}
        self.agent = Agent(url, token, **kw)
        self.thread = threading.Thread(target=self.agent.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.agent

    def __exit__(self, *exc):
        self.agent.stop.set()
        self.thread.join(timeout=30)
        self.agent.close()


def chromium_executable() -> str | None:
    """PLEXLOC_CHROMIUM, else chromium on PATH, else Debian's and Ubuntu's fixed places (CI may run with a PATH that
    lacks /usr/bin): the browser the web page's tests drive; None where there is none."""
    if os.environ.get("PLEXLOC_CHROMIUM"):
        return os.environ["PLEXLOC_CHROMIUM"]
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    for path in ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/snap/bin/chromium"):
        if os.access(path, os.X_OK):
            return path
    return None


def signed_in_page(browser, url: str, token: str, name: str = "alice"):
    """A new page of the web page at ``url`` with ``token`` saved, once it says who is signed in."""
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#save-token")
    page.wait_for_selector(f"text=signed in as {name}")
    return page


def database_at_0005(path: Path, lines_of: dict[str, list[str]], *, attempts: int = 1):
    """A SQLite database at ``path`` upgraded to revision 0005 (before migration 0006 counted warnings), holding one
    user and a succeeded job per key of ``lines_of`` (``attempts`` attempts) whose log is ``lines_of[job id]``;
    returns ``(engine, cfg)``: the engine and the Alembic configuration to upgrade it further with
    ``cfg.attributes["connection"] = conn; command.upgrade(cfg, REV)``."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from plexloc.service import db

    engine = create_engine(f"sqlite:///{path}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(text("INSERT INTO users (id, name, token_hash, active, created_at) VALUES ('u', 'u', 'h', 1, 0)"))
        for jid, lines in lines_of.items():
            conn.execute(text("INSERT INTO jobs (id, user_id, application, version, entry_point, config, hardware, gpus, "
                              "timeout_s, priority, state, progress, cancel_requested, waiting, attempts, max_attempts, "
                              "cpu_seconds, gpu_seconds, created_at, updated_at) VALUES (:id, 'u', 'x', '1', 'e', '{}', "
                              "'{}', 0, 1, 0, 'succeeded', 1, 0, 0, :attempts, 3, 0, 0, 0, 0)"),
                         {"id": jid, "attempts": attempts})
            if lines:
                conn.execute(text("INSERT INTO job_logs (job_id, line, created_at) VALUES (:j, :line, 0)"),
                             [{"j": jid, "line": line} for line in lines])
    return engine, cfg
