"""``plexloc doctor [--json OUT] [--no-smoke] [--require-gpu]``: what this installation can run on."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the installation: torch build, CUDA, GPUs (with a test convolution), optional packages",
        description="Reports the torch build and the CUDA version it was built for, whether a GPU can be used and, "
        "where it cannot, why (CPU-only build, driver, architecture), runs a small convolution forward and backward on "
        "each GPU against the CPU, lists missing optional packages, and says how to fix each problem found.",
    )
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--no-smoke", action="store_true", help="skip the test convolution on the GPUs")
    p.add_argument("--require-gpu", action="store_true",
                   help="exit with code 1 unless a GPU passed the test (for scripts and worker set-up)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plexloc.cli._common import write_json
    from plexloc.doctor import check_environment, format_report

    report = check_environment(run_smoke=not args.no_smoke)
    print(format_report(report))
    if args.json is not None:
        write_json(report.to_dict(), args.json)
    return 1 if args.require_gpu and not report.gpu_ok else 0
