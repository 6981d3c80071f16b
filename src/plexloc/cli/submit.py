"""``plexloc submit APP --server URL --token T [--version V] [--entry E] [--config FILE] [--input SLOT=FILE ...]``."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path


def add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("PLEXLOC_SERVER"), help="server URL (default $PLEXLOC_SERVER)")
    p.add_argument("--token", default=os.environ.get("PLEXLOC_TOKEN"), help="user token (default $PLEXLOC_TOKEN)")


def client_from(args: argparse.Namespace):
    from plexloc.errors import InputError
    from plexloc.service.client import Client

    if not args.server or not args.token:
        raise InputError("--server and --token are required (or PLEXLOC_SERVER / PLEXLOC_TOKEN)")
    if not str(args.server).startswith(("http://", "https://")):
        raise InputError(f"--server must be a URL starting with http:// or https://, got {args.server!r}")
    return Client(args.server, args.token)


@contextlib.contextmanager
def service_errors(server: str):
    """The server's answers, an unreachable server, a failed transfer and a value JSON cannot carry: one line
    (:class:`InputError`, exit code 2) instead of a traceback."""
    import httpx

    from plexloc.errors import InputError
    from plexloc.service.client import ServiceError
    from plexloc.service.transfer import TransferError

    try:
        yield
    except ServiceError as err:
        raise InputError(str(err.detail), source=f"server ({err.status})") from None
    except httpx.HTTPError as err:
        raise InputError(f"cannot reach the server: {type(err).__name__}: {err}", source=server) from None
    except TransferError as err:
        raise InputError(f"transfer failed: {err}", source=server) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="submit a job to a plexloc service (prints the job id)",
        description="Upload the input files (streamed, resumable, checksummed) and submit a job of application "
        "APP. Inputs are SLOT=FILE (a local path, file:ID for a file already on the server, or job:JOB_ID/NAME "
        "for an output of another job, which this one then waits for); repeat a "
        "slot for several files. --config is a YAML/JSON file of the entry point's parameters; --set "
        "NAME=VALUE sets one. Prints the job id; --wait waits for the end and exits 0 only on success.",
    )
    p.add_argument("application")
    add_client_options(p)
    p.add_argument("--version", dest="app_version", default=None, help="application version (default: newest)")
    p.add_argument("--entry", default=None, help="entry point (default: the only one)")
    p.add_argument("--config", type=Path, default=None, help="parameters (YAML or JSON)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="one parameter (YAML value)")
    p.add_argument("--input", action="append", default=[], metavar="SLOT=FILE", help="an input file (repeatable)")
    p.add_argument("--gpus", type=int, default=None, help="override the entry point's GPUs")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="time limit in seconds")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--wait", action="store_true", help="wait until the job ends")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from plexloc.errors import InputError

    config: dict = {}
    if args.config is not None:
        try:
            config = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read parameters: {err}", source=args.config) from None
        if not isinstance(config, dict):
            raise InputError("parameters must be a mapping", source=args.config)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected NAME=VALUE")
        config[name] = yaml.safe_load(value)
    for name, value in config.items():  # JSON has no NaN or infinity: say so here, not in a traceback
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"parameter {name} is {value}; parameters must be finite numbers")
    with client_from(args) as c, service_errors(args.server):
        inputs: dict[str, list[str]] = {}
        for item in args.input:
            slot, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"--input {item!r}: expected SLOT=FILE")
            if value.startswith("file:"):
                inputs.setdefault(slot, []).append(value[5:])
                continue
            if value.startswith("job:"):  # another job's output (pipeline)
                inputs.setdefault(slot, []).append(value)
                continue
            path = Path(value)
            if not path.is_file():
                raise InputError("no such file", source=path)
            inputs.setdefault(slot, []).append(c.upload(path)["id"])
        job = c.submit(
            args.application, version=args.app_version, entry_point=args.entry, config=config, inputs=inputs,
            hardware=None if args.gpus is None else {"gpus": args.gpus}, timeout_s=args.timeout, priority=args.priority,
        )
        print(job["id"], flush=True)
        if args.wait:
            job = c.wait(job["id"], timeout=float("inf"), poll_s=1.0)
            print(job["state"] + (f": {job['error']}" if job["error"] else ""))
            return 0 if job["state"] == "succeeded" else 1
    return 0
