"""``plexloc serve [--host H] [--port P] [--data-dir DIR] [--db URL] [--storage DIR|s3://...]``."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from plexloc.cli._common import nonnegative_float, positive_float, positive_int


def add_server_options(p: argparse.ArgumentParser) -> None:
    """Where the service keeps its state (shared by ``serve`` and ``admin``)."""
    p.add_argument("--data-dir", type=Path, default=None, help="state folder (default $PLEXLOC_DATA_DIR or ./plexloc-data)")
    p.add_argument("--db", default=None, metavar="URL", help="database URL (default sqlite in DATA_DIR; postgresql+psycopg://...)")
    p.add_argument("--storage", default=None, metavar="DIR|s3://BUCKET/PREFIX?endpoint=URL", help="file store (default DATA_DIR/files)")


def settings_from(args: argparse.Namespace, **extra):
    from plexloc.service.settings import Settings

    return Settings.from_env(data_dir=args.data_dir, db_url=args.db, storage_url=args.storage, **extra)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the job service (user API, worker API, web page)",
        description="Run the job service: the user API under /api/v1, the worker API under /worker/v1, "
        "signed-URL file storage, the web page at /, the OpenAPI schema at /docs. Create users and "
        "workers with `plexloc admin`. Needs the `service` extra (pip install plexloc[service]).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_server_options(p)
    p.add_argument("--public-url", default=None, help="base URL clients reach this server at (for signed links)")
    p.add_argument("--apps", type=Path, action="append", default=[], metavar="DIR", help="extra application YAML folder (repeatable)")
    p.add_argument("--lease", type=positive_float, default=None, metavar="S",
                   help="seconds a job's lease lasts without a ping (default 30)")
    p.add_argument("--max-attempts", type=positive_int, default=None,
                   help="claims of a job before it fails for good (default 3)")
    p.add_argument("--timeout-grace", type=nonnegative_float, default=None, metavar="S",
                   help="seconds a job's command may run past its timeout_s before the server fails the job (a worker "
                        "that cannot stop it; default 600)")
    p.add_argument("--max-upload-mb", type=positive_float, default=None, metavar="MB",
                   help="largest file a user or a worker may upload, MB (default 65536; $PLEXLOC_MAX_UPLOAD_BYTES)")
    p.add_argument("--user-quota-gb", type=positive_float, default=None, metavar="GB",
                   help="space each user's files may take (uploads, job outputs, logs), GB; an upload past it is refused "
                        "and so is a new job once the user is over it (default: no limit; $PLEXLOC_USER_QUOTA_BYTES)")
    p.add_argument("--max-active-jobs", type=positive_int, default=None, metavar="N",
                   help="jobs one user may have queued or running at once; more are refused until one ends "
                        "(default: no limit; $PLEXLOC_MAX_ACTIVE_JOBS)")
    p.add_argument("--log-worker-requests", action="store_true",
                   help="log every request of the workers (by default their routine pulls, pings and reads of the "
                        "applications that succeed are "
                        "left out of the request log: one line a second per idle worker hid the service's warnings)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from plexloc.service.app import create_app

    settings = settings_from(
        args, public_url=args.public_url, apps_dirs=args.apps or None, lease_s=args.lease, max_attempts=args.max_attempts,
        timeout_grace_s=args.timeout_grace,
        max_upload_bytes=_bytes(args.max_upload_mb, 2**20, "--max-upload-mb"),
        user_quota_bytes=_bytes(args.user_quota_gb, 2**30, "--user-quota-gb"),
        max_active_jobs=args.max_active_jobs,
    )
    app = create_app(settings)  # (its errors first: an application YAML, a setting)
    _check_address(args.host, args.port)
    print(f"plexloc service on http://{args.host}:{args.port}/ (data in {settings.data_dir.resolve()})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                log_config=log_config(worker_requests=args.log_worker_requests))
    return 0


#: the worker API's routine requests: a pull (nothing to do, or a job), a ping and a read of the applications; logged
#: only when they fail
_ROUTINE = re.compile(r"^/worker/v1/(?:jobs/pull|jobs/[^/]+/ping|applications)(?:\?|$)")


class RoutineWorkerRequests(logging.Filter):
    """Leaves out of uvicorn's request log the workers' pulls, pings and reads of the applications that succeed: an
    idle worker pulls about once a second, a busy one pings every 2 s, and the server's own warnings (a job's lease
    lapsed, the store full) were a line among thousands."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 5:
            return True
        path, status = str(args[2]), args[4]
        return not (_ROUTINE.match(path) and isinstance(status, int) and status < 400)


def log_config(*, worker_requests: bool = False) -> dict:
    """uvicorn's logging, each line with its time (the server's warnings had none: when did a lease lapse?), the
    service's own loggers (``plexloc.service``) through the same handler, and the workers' routine requests left out
    of the request log unless ``worker_requests``."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["formatters"]["default"]["fmt"] = "%(asctime)s %(levelprefix)s %(message)s"
    cfg["formatters"]["access"]["fmt"] = '%(asctime)s %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    cfg["loggers"]["plexloc"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if not worker_requests:
        cfg["filters"] = {"routine": {"()": RoutineWorkerRequests}}
        cfg["handlers"]["access"]["filters"] = ["routine"]
    return cfg


def _check_address(host: str, port: int) -> None:
    """:class:`InputError` naming the address where it cannot be listened on (a port in use: another plexloc serve, or
    another program). The server printed "plexloc service on http://HOST:PORT/" first, then uvicorn's "[Errno 98]
    error while attempting to bind on address" among its start-up lines, and exit code 3."""
    import socket

    from plexloc.errors import InputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise InputError(f"--host {host}: not an address of this machine ({getattr(err, 'strerror', None) or err})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as err:
            import errno

            # the fix for what the bind said: a port in use was the only one named, also for an address that is not
            # this machine's ("Cannot assign requested address") and a port below 1024 without root
            fix = {errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: give one of its own with --host, "
                                        "0.0.0.0 for all of them or 127.0.0.1 for this machine alone",
                   errno.EACCES: "ports below 1024 need root: choose --port 1024 or above"}.get(
                err.errno, "another plexloc serve or another program uses it: stop it, or choose another with --port")
            raise InputError(f"cannot listen on {host}:{port}: {err.strerror or err} ({fix})") from None


def _bytes(value: float | None, unit: int, option: str) -> int | None:
    """``value`` (MB or GB: ``unit`` bytes each) in whole bytes, None where not given. A positive value below one byte
    is refused naming the option: it became a limit of 0 bytes, refused as the setting's name and 0 (``max_upload_bytes:
    Input should be greater than or equal to 1 (got 0)``), or a quota that refused every upload."""
    if value is None:
        return None
    n = int(value * unit)
    if n < 1:
        from plexloc.errors import InputError

        per = option.rsplit("-", 1)[-1].upper()  # MB, GB
        raise InputError(f"{option} {value:g} is less than one byte ({1 / unit:.3g} {per}); give a larger value")
    return n
