"""``plexloc status JOB --server URL --token T [--log]``: prints the job's state."""

from __future__ import annotations

import argparse

from plexloc.cli.submit import add_client_options, client_from, service_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="state of a job on a plexloc service",
        description="Print the job's state (queued, assigned, running, succeeded, failed, cancelled); with "
        "--verbose also stage, progress and error; with --log its log.",
    )
    p.add_argument("job", help="job id (as plexloc submit printed it)")
    add_client_options(p)
    p.add_argument("--verbose", "-v", action="store_true", help="also the stage, progress and error")
    p.add_argument("--log", action="store_true", help="also print the job's log")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with client_from(args) as c, service_errors(args.server):
        job = c.job(args.job)
        print(job["state"])
        if args.verbose:
            print(f"stage {job['stage'] or '-'}  progress {100 * job['progress']:.0f}%  attempts {job['attempts']}")
            if job["error"]:
                print(f"error: {job['error']}")
        if args.log:
            after = 0
            while (page := c.log(args.job, after=after))["lines"]:
                for line in page["lines"]:
                    print(line["line"])
                after = page["next_after"]
    return 0
