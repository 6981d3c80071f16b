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
    with client_from(args) as c, service_errors(args.server):
        for path in c.download(args.job, args.out):
            print(path)
    return 0
