"""Fixtures of the service tests: an app on a temporary data folder, tokens, a live server on loopback."""

from __future__ import annotations

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
import pathlib, sys, time
n, dt, out = int(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3])
for i in range(n):
    print(f"tick {i}", flush=True)
    print(f"PLEXLOC_PROGRESS {(i + 1) / n:.3f}", flush=True)
    time.sleep(dt)
(out / "ticks.txt").write_text(str(n))
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
