"""``plexloc download JOB --server URL --token T --out DIR``: the job's outputs, checksummed."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli.submit import add_client_options, client_from, service_errors

_OVER = ("succeeded", "failed", "cancelled")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download a job's outputs from a plexloc service",
        description="Download every output (and the log) of a job into DIR, each checked against its SHA-256 and "
        "written whole or not at all. Exit 0 only for a job that succeeded: a job still queued or running is refused "
        "(its outputs are not all there yet), a failed or cancelled job's outputs (its log, what it wrote before it "
        "stopped) are written with a warning and exit 1.",
    )
    p.add_argument("job", help="job id (as plexloc submit printed it)")
    add_client_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    with client_from(args) as c, service_errors(args.server):
        job = c.job(args.job)
        state = job.get("state", "unknown")
        if state not in _OVER:
            # a running job's outputs appear one by one as its worker uploads them: a download now would be a part of
            # them, with exit 0
            print(f"plexloc download: job {args.job} is {state}: its outputs are not final yet; nothing written to "
                  f"{args.out} (plexloc status {args.job} -v; plexloc submit --wait waits for the end)", file=sys.stderr)
            return 1
        paths = c.download(args.job, args.out)
        for path in paths:
            print(path)
        if state != "succeeded":
            print(f"plexloc download: warning: job {args.job} {state}" + (f" ({job['error']})" if job.get("error") else "")
                  + f": its {len(paths)} file(s) are what it left (the log, outputs written before it stopped), not a "
                  "result", file=sys.stderr)
            return 1
        if not paths:
            print(f"plexloc download: job {args.job} succeeded but has no outputs; nothing written to {args.out}",
                  file=sys.stderr)
            return 1
    return 0
