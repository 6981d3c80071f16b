"""``plexloc download JOB --server URL --token T --out DIR``: the job's outputs, checksummed."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli.submit import add_client_options, client_from, service_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download a job's outputs from a plexloc service",
        description="Download every output (and the log) of a job into DIR, each checked against its SHA-256.",
    )
    p.add_argument("job", help="job id (as plexloc submit printed it)")
    add_client_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    with client_from(args) as c, service_errors(args.server):
        paths = c.download(args.job, args.out)
        for path in paths:
            print(path)
        if not paths:  # a job still queued or running has no outputs yet: say so instead of printing nothing
            state = c.job(args.job).get("state", "unknown")
            print(f"plexloc download: job {args.job} is {state} and has no outputs yet; nothing written to {args.out} "
                  f"(plexloc status {args.job} -v)", file=sys.stderr)
            return 1
    return 0
