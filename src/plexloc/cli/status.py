"""``plexloc status [JOB] --server URL --token T [-v] [--log] [--cancel]``: a job's state, or a list of one's jobs."""

from __future__ import annotations

import argparse
import time

from plexloc.cli.submit import add_client_options, client_from, service_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="state of a job on a plexloc service (or a list of your jobs; --cancel cancels it)",
        description="Print the job's state (queued, assigned, running, succeeded, failed, cancelled); with "
        "--verbose also stage, progress and error; with --log its log; with --cancel cancel it first (a queued job at "
        "once, a running one when its worker next pings: its command is stopped). Without JOB: your jobs, newest first.",
    )
    p.add_argument("job", nargs="?", default=None, help="job id (as plexloc submit printed it); none: list your jobs")
    add_client_options(p)
    p.add_argument("--verbose", "-v", action="store_true", help="also the stage, progress and error")
    p.add_argument("--log", action="store_true", help="also print the job's log")
    p.add_argument("--cancel", action="store_true", help="cancel the job (then print its state)")
    p.set_defaults(func=run)


def _list(c) -> int:
    jobs = c.jobs()
    if not jobs:
        print("no jobs")
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j["created_at"]))
        print(f"{j['id']}  {when}  {j['application']} {j['entry_point']:<8} {j['state']:<9} {100 * j['progress']:3.0f}%"
              + (f"  {j['error'][:80]}" if j["error"] else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    from plexloc.errors import InputError

    with client_from(args) as c, service_errors(args.server):
        if args.job is None:
            if args.cancel or args.log:
                raise InputError("--cancel and --log need a JOB")
            return _list(c)
        job = c.cancel(args.job) if args.cancel else c.job(args.job)
        print(job["state"] + (" (cancel requested: the worker stops it at its next ping)"
                              if args.cancel and job.get("cancel_requested") and job["state"] != "cancelled" else ""))
        if args.verbose:
            print(f"stage {job['stage'] or '-'}  progress {100 * job['progress']:.0f}%  attempts {job['attempts']}")
            if job["error"]:
                print(f"error: {job['error']}")
            if job.get("note"):
                print(f"note: {job['note']}")
        if args.log:
            after = 0
            while (page := c.log(args.job, after=after))["lines"]:
                for line in page["lines"]:
                    print(line["line"])
                after = page["next_after"]
    return 0
