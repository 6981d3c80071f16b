"""What session 50 changed in the job service, measured on this machine (CPU, SQLite, loopback HTTP):

1. ``pickup``: seconds from a long job's end to the start of a job of an application the server gained while the
   worker ran it (the registry replaced, as a restart with ``--apps`` does), the worker's default 5-min re-read left as
   it is. Before: the worker kept its list read before, up to ``can_run_refresh_s`` (300 s).
2. ``serve_log``: lines of ``plexloc serve``'s output per minute with WORKERS idle workers (pull every 1 s, the
   default), by default and with ``--log-worker-requests`` (every request, as before this session).
3. ``full_store``: a job whose output is refused (507) for FULL_S seconds of a full store, then the space freed: its
   end state and wall time (before: failed at the first refusal, its outputs lost).
4. ``migration``: jobs of an old database (JOBS jobs, random logs with a lapsed attempt's warnings and ``WARNING:``
   lines) whose count after migration 0006 differs from what the server counts as it stores the same lines: by the
   old LIKE-over-all-attempts query (as 0006 did) and by this session's ``words.warning_counts``.

    PYTHONPATH=src python bench/service50.py --json bench/service50.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pickup(tmp: Path) -> dict:
    from service_support import AgentThread, LiveServer, make_service, script_app

    from plexloc.service.apps import Registry
    from plexloc.service.client import Client

    svc = make_service(tmp)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, poll_s=1.0, ping_s=2.0):
                long = c.submit("ticker", entry_point="tick", config={"n": 4, "dt": 0.5})
                c.wait(long["id"], timeout=60, until=("running", "succeeded", "failed"), poll_s=0.05)
                apps = script_app(tmp / "later", "import sys; open(sys.argv[2] + '/a.txt', 'w').write('a')", name="later")
                svc.app.state.registry = Registry.load(list(svc.settings.apps_dirs) + [apps])
                job = c.submit("later", entry_point="run", config={"mode": "x"})
                ended = c.wait(long["id"], timeout=60, poll_s=0.05)
                started = c.wait(job["id"], timeout=400, until=("running", "succeeded", "failed"), poll_s=0.05)
        return {"long_job_state": ended["state"], "new_app_job_state": started["state"],
                "seconds_after_long_job_end": round((started["started_at"] or time.time()) - ended["finished_at"], 2)}
    finally:
        svc.app.state.engine.dispose()


def serve_log(tmp: Path, *, workers: int, seconds: float, all_requests: bool) -> dict:
    import httpx
    from service_support import AgentThread

    from plexloc.service import admin
    from plexloc.service.db import open_database

    data = tmp / ("data_all" if all_requests else "data")
    data.mkdir()
    engine, sessions = open_database(f"sqlite:///{data / 'plexloc.db'}")
    with sessions.begin() as s:
        tokens = [admin.create_worker(s, f"w{i}")[1] for i in range(workers)]
    engine.dispose()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = data / "serve.log"
    argv = [sys.executable, "-m", "plexloc.cli.main", "serve", "--data-dir", str(data), "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv + (["--log-worker-requests"] if all_requests else []), stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        before = len(log.read_text().splitlines())
        agents = [AgentThread(url, t, poll_s=1.0) for t in tokens]
        for a in agents:
            a.__enter__()
        time.sleep(seconds)
        for a in agents:
            a.__exit__(None, None, None)
        lines = len(log.read_text().splitlines()) - before
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    return {"workers": workers, "seconds": seconds, "log_worker_requests": all_requests, "lines": lines,
            "lines_per_minute": round(lines * 60 / seconds, 1)}


def full_store(tmp: Path, *, full_s: float) -> dict:
    from service_support import AgentThread, LiveServer, make_service

    from plexloc.service.client import Client

    svc = make_service(tmp)
    store = svc.app.state.storage
    real, t_full = store.free_bytes, []

    def free():
        return 0 if time.monotonic() - t_full[0] < full_s else real()

    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, storage_wait_s=600):
                t_full.append(time.monotonic())
                store.free_bytes = free
                job = c.submit("ticker", entry_point="tick", config={"n": 2})
                t0 = time.monotonic()
                done = c.wait(job["id"], timeout=full_s + 120)
                wall = time.monotonic() - t0
            outputs = sorted(o["name"] for o in c.outputs(job["id"]))
            waits = sum("HTTP 507" in x["line"] for x in c.log(job["id"])["lines"])
        return {"full_s": full_s, "state": done["state"], "outputs": outputs, "wall_s": round(wall, 1),
                "refusals_waited_out": waits}
    finally:
        svc.app.state.engine.dispose()


def migration(tmp: Path, *, jobs: int, seed: int) -> dict:
    from alembic import command
    from sqlalchemy import text

    from plexloc.service.words import CLAIMED, warning_text
    from service_support import database_at_0005

    rng = random.Random(seed)
    kinds = ["tick", "plexloc fit: warning: dim", "x.py:3: UserWarning: b", "warning: noise", "plexloc fit: WARNING: c",
             "plexloc fit foo: warning: d", "WARNING: a logger's"]
    logs, expected = {}, {}
    for j in range(jobs):
        lines = []
        for attempt in range(rng.randint(1, 3)):
            lines.append(f"{CLAIMED}w1 (attempt {attempt + 1})")
            lines += [rng.choice(kinds) for _ in range(rng.randint(0, 12))]
        logs[f"j{j}"] = lines
        last = lines[max(i for i, x in enumerate(lines) if x.startswith(CLAIMED)) + 1:]
        expected[f"j{j}"] = sum(warning_text(x) is not None for x in last)  # as add_log counts the last attempt
    engine, cfg = database_at_0005(tmp / "old.db", logs, attempts=1)
    with engine.begin() as conn:
        # the old 0006's query (SQL LIKE over every attempt's lines)
        old = dict(conn.execute(text(
            "SELECT j.id, (SELECT count(*) FROM job_logs l WHERE l.job_id = j.id AND (l.line LIKE 'plexloc %: warning: %'"
            " OR l.line LIKE '%.py:%: %Warning: %' OR substr(l.line, 1, 9) = 'warning: ')) FROM jobs j")).all())
    t0 = time.perf_counter()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    upgrade_s = time.perf_counter() - t0
    with engine.begin() as conn:
        new = dict(conn.execute(text("SELECT id, warning_count FROM jobs")).all())
    engine.dispose()
    n_lines = sum(map(len, logs.values()))
    return {"jobs": jobs, "log_lines": n_lines, "seed": seed,
            "jobs_differing_old_like_query": sum(old[j] != expected[j] for j in logs),
            "jobs_differing_after_upgrade": sum(new[j] != expected[j] for j in logs),
            "upgrade_s": round(upgrade_s, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-seconds", type=float, default=20.0)
    ap.add_argument("--full-s", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, fn in [
            ("migration", lambda p: migration(p, jobs=args.jobs, seed=args.seed)),
            ("pickup", pickup),
            ("full_store", lambda p: full_store(p, full_s=args.full_s)),
            ("serve_log", lambda p: [serve_log(p, workers=args.workers, seconds=args.log_seconds, all_requests=a)
                                     for a in (False, True)]),
        ]:
            folder = tmp / name
            folder.mkdir()
            out[name] = fn(folder)
            print(name, json.dumps(out[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
