"""Job service queue: throughput and start latency with real worker processes on loopback.

A server (``plexloc serve``, its own process) on SQLite or PostgreSQL, W worker processes
(``plexloc worker``), and a no-op application (``/bin/true``). Two measurements:

- latency: one job at a time with every worker idle; time from submit (the job's ``created_at``)
  to running (its ``started_at``), both stamped by the server; median and p95 over ``--latency-jobs``;
- throughput: ``--jobs`` jobs submitted at once; jobs/s from the first submit to the last job done,
  and a check that each ran exactly once (one claim, one attempt, one command line in its log).

    python bench/service_queue.py [--db sqlite|postgresql] [--workers 8] [--jobs 500] [--poll 0.2]

Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
NOOP = """name: noop
versions:
  "1":
    entry_points:
      run:
        command: [/bin/true]
        hardware: {cpus: 1, memory_mb: 10}
        timeout_s: 60
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(root: Path) -> tuple[str, callable]:
    import pwd

    initdb = shutil.which("initdb") or sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
    pg_ctl = shutil.which("pg_ctl") or sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    prefix = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*prefix, str(initdb), "-D", str(root / "pg"), "-A", "trust", "-U", "plexloc", "--no-sync"], check=True, capture_output=True)
    opts = f"-p {port} -k {root} -h 127.0.0.1 -c max_connections=200"
    subprocess.run([*prefix, str(pg_ctl), "-D", str(root / "pg"), "-o", opts, "-l", str(root / "pg.log"), "-w", "start"], check=True, capture_output=True)
    import psycopg

    with psycopg.connect(f"postgresql://plexloc@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE plexloc")
    stop = lambda: subprocess.run([*prefix, str(pg_ctl), "-D", str(root / "pg"), "-m", "fast", "stop"], capture_output=True)  # noqa: E731
    return f"postgresql+psycopg://plexloc@127.0.0.1:{port}/plexloc", stop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--latency-jobs", type=int, default=40)
    ap.add_argument("--poll", type=float, default=0.2, help="worker idle poll period, s")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="plexloc-bench-"))
    os.chmod(root, 0o755)
    (root / "apps").mkdir()
    (root / "apps" / "noop.yaml").write_text(NOOP)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    plexloc = [sys.executable, "-m", "plexloc.cli.main"]
    procs: list[subprocess.Popen] = []
    stop_db = None
    try:
        db_args = []
        if args.db == "postgresql":
            url, stop_db = start_postgres(root)
            db_args = ["--db", url]
        data = ["--data-dir", str(root / "data"), *db_args]
        subprocess.run([*plexloc, "admin", *data, "create-user", "bench"], check=True, env=env, capture_output=True)
        user = subprocess.run([*plexloc, "admin", *data, "rotate", "user", "bench"], check=True, env=env, capture_output=True, text=True).stdout.strip()
        port = free_port()
        server = f"http://127.0.0.1:{port}"
        procs.append(subprocess.Popen([*plexloc, "serve", *data, "--port", str(port), "--apps", str(root / "apps")],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(args.workers):
            tok = subprocess.run([*plexloc, "admin", *data, "create-worker", f"w{i}"], check=True, env=env, capture_output=True, text=True).stdout.strip()
            procs.append(subprocess.Popen(
                [*plexloc, "worker", "--server", server, "--token", tok, "--poll", str(args.poll), "--ping", "1",
                 "--work-dir", str(root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        http = httpx.Client(base_url=server + "/api/v1", headers={"Authorization": f"Bearer {user}"}, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                http.get("/me").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(3.0)  # let every worker start polling

        def wait_done(ids: list[str], timeout: float) -> list[dict]:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                jobs = {j["id"]: j for j in http.get("/jobs", params={"limit": 1000}).json()}
                if all(jobs[i]["state"] in ("succeeded", "failed", "cancelled") for i in ids):
                    return [jobs[i] for i in ids]
                time.sleep(0.05)
            raise TimeoutError("jobs not done")

        # latency: one job at a time, all workers idle
        lat = []
        for _ in range(args.latency_jobs):
            jid = http.post("/jobs", json={"application": "noop"}).json()["id"]
            (j,) = wait_done([jid], 60)
            lat.append(j["started_at"] - j["created_at"])
            time.sleep(args.poll)  # everyone idle again
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]

        # throughput: a burst of jobs
        t0 = time.monotonic()
        ids = [http.post("/jobs", json={"application": "noop"}).json()["id"] for _ in range(args.jobs)]
        t_submit = time.monotonic() - t0
        done = wait_done(ids, 1800)
        elapsed = time.monotonic() - t0
        states = {s: sum(j["state"] == s for j in done) for s in ("succeeded", "failed", "cancelled")}
        once = 0
        for j in done:
            lines = [x["line"] for x in http.get(f"/jobs/{j['id']}/log").json()["lines"]]
            claims = sum("claimed by worker" in x for x in lines)
            runs = sum(x.startswith("[worker] $ ") for x in lines)
            once += int(j["attempts"] == 1 and claims == 1 and runs == 1)
        per_worker: dict[str, int] = {}
        for j in done:
            per_worker[j["worker"] or "?"] = per_worker.get(j["worker"] or "?", 0) + 1
        result = {
            "db": args.db, "workers": args.workers, "jobs": args.jobs, "poll_s": args.poll,
            "latency_median_s": statistics.median(lat), "latency_p95_s": p95, "latency_max_s": lat[-1],
            "submit_s": t_submit, "elapsed_s": elapsed, "jobs_per_s": args.jobs / elapsed,
            "succeeded": states["succeeded"], "ran_exactly_once": once,
            "jobs_per_worker_min": min(per_worker.values()), "jobs_per_worker_max": max(per_worker.values()),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if stop_db:
            stop_db()
        shutil.rmtree(root, ignore_errors=True)
    print("| db | workers | jobs | latency median s | latency p95 s | jobs/s | succeeded | exactly once | jobs/worker |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {result['db']} | {result['workers']} | {result['jobs']} | {result['latency_median_s']:.3f} | "
          f"{result['latency_p95_s']:.3f} | {result['jobs_per_s']:.1f} | {result['succeeded']} | "
          f"{result['ran_exactly_once']} | {result['jobs_per_worker_min']}-{result['jobs_per_worker_max']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ran_exactly_once"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
