"""Cost of a job's warnings in the user API's answers (session 49): ``GET /api/v1/jobs`` (100 jobs, their warnings
counted) and ``GET /api/v1/jobs/ID`` (the first warnings' texts) on SQLite, each job with LINES log lines of which
WARN are warnings. Run at this commit and at an older one (PYTHONPATH=OLD/src) to compare.

    PYTHONPATH=src python bench/service49.py --jobs 100 --lines 2000 --warn 5 --json bench/service49.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--warn", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import insert, select

    from plexloc.service import admin
    from plexloc.service.app import create_app
    from plexloc.service.db import Job, JobLog, User, new_id
    from plexloc.service.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), sweep_interval_s=0))
        with app.state.sessions.begin() as s:
            _, token = admin.create_user(s, "alice")
        # ended jobs as rows (what the list reads), each with its log
        with app.state.sessions.begin() as s:
            user = s.scalar(select(User))
            ids = []
            for i in range(args.jobs):
                jid = new_id()
                job = Job(id=jid, user_id=user.id, application="plexloc-simulate", version="0.1", entry_point="simulate",
                          config={}, hardware={}, state="succeeded", created_at=time.time() + i)
                if hasattr(Job, "warning_count"):  # as add_log counts them (an older commit: no such column)
                    job.warning_count = args.warn
                s.add(job)
                ids.append(jid)
            s.flush()
            every = max(1, args.lines // max(1, args.warn))
            rows = [{"job_id": jid, "line": (f"plexloc simulate: warning: number {n}" if n % every == 0 and
                                             n // every < args.warn else f"frame {n}: 12 spots"), "created_at": 0.0}
                    for jid in ids for n in range(args.lines)]
            s.execute(insert(JobLog), rows)
        client = TestClient(app)
        auth = {"Authorization": f"Bearer {token}"}

        def timed(path: str) -> tuple[float, dict | list]:
            out = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                r = client.get(path, headers=auth)
                out.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            return 1000 * statistics.median(out), r.json()

        list_ms, jobs = timed("/api/v1/jobs")
        one_ms, one = timed(f"/api/v1/jobs/{ids[0]}")
        result = {"jobs": args.jobs, "lines_per_job": args.lines, "warnings_per_job": args.warn,
                  "list_ms_median": round(list_ms, 1), "one_ms_median": round(one_ms, 1),
                  "list_warning_count": jobs[0].get("warning_count"), "one_warnings": len(one.get("warnings", []))}
        app.state.engine.dispose()
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
