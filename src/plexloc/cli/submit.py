"""``plexloc submit APP --server URL --token T [--version V] [--entry E] [--config FILE] [--input SLOT=FILE ...]``."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

from plexloc.cli._common import nonnegative_int, positive_int


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
    from plexloc.service.transfer import StoreFilled, TransferError

    try:
        yield
    except ServiceError as err:
        raise InputError(str(err.detail), source=f"server ({err.status})") from None
    except httpx.HTTPError as err:
        raise InputError(f"cannot reach the server: {type(err).__name__}: {err}", source=server) from None
    except StoreFilled as err:  # the store's disk filled during an upload (it read "refused (507): {JSON}")
        raise InputError(f"upload failed: {err}, then submit again", source=server) from None
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
    p.add_argument("application", help="application name (the server's registry: GET /api/v1/applications)")
    add_client_options(p)
    p.add_argument("--version", dest="app_version", default=None, help="application version (default: newest)")
    p.add_argument("--entry", default=None, help="entry point (default: the only one)")
    p.add_argument("--config", type=Path, default=None, help="parameters (YAML or JSON)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="one parameter (YAML value)")
    p.add_argument("--input", action="append", default=[], metavar="SLOT=FILE", help="an input file (repeatable)")
    p.add_argument("--gpus", type=nonnegative_int, default=None,
                   help="override the entry point's GPUs (0: run on a CPU worker)")
    p.add_argument("--cpus", type=positive_int, default=None,
                   help="override the entry point's CPU cores (e.g. 2 for workers with fewer cores than it asks)")
    p.add_argument("--memory-mb", type=positive_int, default=None, metavar="MB",
                   help="override the entry point's RAM, MB")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="time limit in seconds")
    p.add_argument("--priority", type=int, default=0, help="higher runs first, after the fair share between users (the jobs of users with the fewest "
                   "jobs running go first) (default 0)")
    p.add_argument("--wait", action="store_true",
                   help="wait until the job ends (exit 0 only on success); it stops, exit 3, the job left queued, when "
                   "no worker present can take it for 30 s (none has asked lately, none has its hardware or program, or those "
                   "are disabled): the server's note says which")
    p.add_argument("--wait-queued", action="store_true",
                   help="with --wait: wait even for a job no worker present can take (for a worker about to start)")
    p.add_argument("--no-reuse", action="store_true",
                   help="upload every local file again, even one already in your space (same name and SHA-256: by "
                   "default that file is used, not uploaded again)")
    p.set_defaults(func=run)


#: exit code of ``--wait`` when it stops waiting because no worker present can take the job (1: the job failed)
STOPPED_WAITING = 3
#: seconds the server's note (no worker present can take the job) must hold before ``--wait`` stops: a worker started
#: together with the job (``plexloc worker ... &`` then ``plexloc submit ... --wait``, or a worker restarted after a
#: program was installed) is seen only at its first pull, after its start-up; ``--wait`` stopped at its first poll
STOP_AFTER_S = 30.0


#: how long a wait (--wait) goes on while the server does not answer (restarted, briefly down), the job running on
SERVER_WAIT_S = 600.0
#: as long, for a server that has not answered this command yet (``plexloc status JOB --wait``'s first question): a
#: restart (its start-up took about 16 s on a loaded 2-core machine) is waited out, a wrong --server (a port refused)
#: is said within this; a host name that is not known fails at once
FIRST_ANSWER_WAIT_S = 30.0


def _unknown_host(err: BaseException) -> bool:
    """Whether ``err`` is a host name that does not resolve (not a temporary failure of the name service)."""
    import socket

    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return seen.errno != socket.EAI_AGAIN
        seen = seen.__cause__ or seen.__context__
    return False


def patiently(fn, *, prog: str, said: list | None = None, server: str | None = None):
    """``fn()``, asked again every 2 s while the server does not answer (a connection refused, 502-504: restarted or
    briefly down; its workers go on with their jobs) for up to :data:`SERVER_WAIT_S`, said once on stderr. ``plexloc
    status JOB --wait`` across a restart of the server ended at once with "cannot reach the server".

    ``server`` given: the server at that URL has not answered this command yet, so a wrong URL is as likely as a
    restart: a host name that does not resolve fails at once, anything else after :data:`FIRST_ANSWER_WAIT_S`, the
    message naming the URL (a wrong ``--server`` waited 10 min)."""
    import httpx

    from plexloc.service.client import ServiceError

    said = [] if said is None else said
    limit = SERVER_WAIT_S if server is None else FIRST_ANSWER_WAIT_S
    since = None
    while True:
        try:
            out = fn()
        except (httpx.TransportError, ServiceError) as err:
            if isinstance(err, ServiceError) and err.status not in (502, 503, 504):
                raise
            if server is not None and _unknown_host(err):
                raise
            since = time.monotonic() if since is None else since
            if time.monotonic() - since > limit:
                raise
            if not said:
                then = ("waiting for it (up to {:g} s; the job goes on on its worker)" if server is None else
                        "waiting up to {:g} s for it (a restart); if that address is wrong, give --server URL or set "
                        "PLEXLOC_SERVER").format(limit)
                print(f"plexloc {prog}: the server{'' if server is None else ' at ' + server} does not answer "
                      f"({type(err).__name__}: {err}); {then}", file=sys.stderr, flush=True)
                said.append(True)
            time.sleep(2.0)
            continue
        if said and since is not None:
            print(f"plexloc {prog}: the server answers again", file=sys.stderr, flush=True)
            said.clear()
        return out


def wait_for_end(c, job_id: str, *, prog: str, keep_waiting: bool, told: str | None = None,
                 poll_s: float = 1.0, each=None) -> dict | None:
    """The job once it has ended; None when it is queued and the server says no worker present can take it (its
    ``note``), unless ``keep_waiting``: then the note is said once (``told``: the note said already) and the wait goes
    on. ``plexloc submit --wait`` waited for ever on a job no worker could take (a GPU job on CPU workers, a program
    no worker has, every worker disabled, no worker at all), without a word. ``each()`` is called at each poll (the log
    followed as it grows)."""
    before = None
    noted_at: float | None = None  # since when the note has held
    said: list = []
    while True:
        if each is not None:
            patiently(each, prog=prog, said=said)
        job = patiently(lambda: c.job(job_id), prog=prog, said=said)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        if job["state"] == "queued" and before in ("assigned", "running"):  # the wait went on without a word
            print(f"plexloc {prog}: job {job_id} is queued again: attempt {job['attempts']} of {job['max_attempts']} "
                  f"ended without a result (its worker stopped answering, or gave it back: plexloc status {job_id} "
                  "--log says which); waiting for a worker to take it", file=sys.stderr, flush=True)
        before = job["state"]
        note = job.get("note") if job["state"] == "queued" else None
        noted_at = None if not note else time.monotonic() if noted_at is None else noted_at
        if note and not keep_waiting and time.monotonic() - noted_at >= STOP_AFTER_S:
            print(f"plexloc {prog}: job {job_id} is queued, but {note}. Stopped waiting; the job stays queued "
                  f"(plexloc status {job_id} --wait waits again, --cancel ends it; --wait-queued waits even so)",
                  file=sys.stderr, flush=True)
            return None
        if note and note != told:
            more = "(--wait-queued)" if keep_waiting else f"{STOP_AFTER_S:g} s for a worker to start before it stops"
            print(f"plexloc {prog}: warning: job {job_id} is queued, but {note}; waiting {more}",
                  file=sys.stderr, flush=True)
            told = note
        time.sleep(poll_s)


def say_warnings(job: dict, *, prog: str) -> None:
    """A job's warnings on stderr, ``plexloc PROG: job ID succeeded with 2 warnings:`` and each on its own line (they
    were only in the job's log: a user saw "succeeded" and never looked). stdout keeps the state alone, for scripts."""
    n = job.get("warning_count") or 0
    if not n:
        return
    shown = job.get("warnings") or []
    more = f" (the first {len(shown)}; plexloc status {job['id']} --log has them all)" if n > len(shown) else ""
    print(f"plexloc {prog}: job {job['id']} {job['state']} with {n} warning{'' if n == 1 else 's'}{more}:"
          + "".join(f"\n  warning: {w}" for w in shown), file=sys.stderr, flush=True)


def follow_new_job(c, job: dict, args: argparse.Namespace, *, prog: str) -> int:
    """After a job was created (``plexloc submit``, ``plexloc status --rerun``): say at once when no worker present can
    take it, and with ``--wait`` wait for its end, print its state (and error) on stdout and its warnings on stderr.
    Returns the exit code: 0 succeeded (or not waited for), 1 failed or cancelled, STOPPED_WAITING."""
    note = job.get("note")
    if note and not (args.wait and not args.wait_queued):
        # no worker present can take it (the hardware asked, no worker lately): said now, on stderr (--wait alone
        # says it as it stops)
        print(f"plexloc {prog}: warning: job {job['id']} is queued, but {note}", file=sys.stderr, flush=True)
    if not args.wait:
        return 0
    ended = wait_for_end(c, job["id"], prog=prog, keep_waiting=args.wait_queued, told=note if args.wait_queued else None)
    if ended is None:
        return STOPPED_WAITING
    print(ended["state"] + (f": {ended['error']}" if ended["error"] else ""), flush=True)
    say_warnings(ended, prog=prog)
    return 0 if ended["state"] == "succeeded" else 1


def run(args: argparse.Namespace) -> int:
    import yaml

    from plexloc.config.io import load_yaml
    from plexloc.errors import InputError

    args.wait = args.wait or args.wait_queued
    config: dict = {}
    if args.config is not None:
        try:
            config = load_yaml(args.config.read_text()) or {}
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
        # every local file is checked, and the configuration's own files found, before anything is uploaded
        items: list[tuple[str, str | Path]] = []  # (slot, file id / job reference, or a local path)
        for item in args.input:
            slot, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"--input {item!r}: expected SLOT=FILE")
            if value.startswith("file:"):
                items.append((slot, value[5:]))
            elif value.startswith("job:"):  # another job's output (pipeline)
                items.append((slot, value))
            elif not Path(value).is_file():
                raise InputError("no such file", source=value)
            else:
                items.append((slot, Path(value)))
        local: dict[str, Path] = {}  # slot -> the first local file given for it
        for slot, value in items:
            if isinstance(value, Path):
                local.setdefault(slot, value)
        for slot, path, config_path in attached_files(c, args, local, given={slot for slot, _ in items}):
            # on stderr, as every other line but the job id and its state: J=$(plexloc submit ...) read them into J
            print(f"attaching {path} to input {slot} (named by {config_path})", file=sys.stderr, flush=True)
            items.append((slot, path))
        inputs: dict[str, list[str]] = {}
        reused: dict[str, Path] = {}  # file id -> the local file it stands for
        with _uploads_removed_unless_submitted(c) as uploaded:
            for slot, value in items:
                if isinstance(value, Path):
                    f = c.upload(value, reuse=not args.no_reuse)
                    if f.get("reused"):  # the same bytes under the same name, already in the user's space
                        # on stderr: stdout is the job id alone (J=$(plexloc submit ...))
                        print(f"{value}: already on the server (file:{f['id']}), not uploaded again", file=sys.stderr,
                              flush=True)
                        reused[f["id"]] = value
                    else:
                        uploaded.append(f["id"])
                    inputs.setdefault(slot, []).append(f["id"])
                else:
                    inputs.setdefault(slot, []).append(value)
            job = _submit_reuse_checked(c, args, config, inputs, reused, uploaded)
        print(job["id"], flush=True)
        return follow_new_job(c, job, args, prog="submit")
    return 0


def _submit_reuse_checked(c, args, config: dict, inputs: dict[str, list[str]], reused: dict[str, Path],
                          uploaded: list[str]) -> dict:
    """The job submitted; a file reused from the user's space that is gone when the job is created (another
    submission of the same file, refused, removed its upload in between: ``no file 'ID'``) is uploaded again and the
    job submitted once more, instead of this submission being refused for a file the user gave."""
    from plexloc.service.client import ServiceError

    while True:
        try:
            return c.submit(
                args.application, version=args.app_version, entry_point=args.entry, config=config, inputs=inputs,
                hardware=_hardware(args), timeout_s=args.timeout, priority=args.priority,
            )
        except ServiceError as err:
            gone = next((fid for fid in reused if err.status == 422 and f"no file {fid!r}" in str(err.detail)), None)
            if gone is None:
                raise
        path = reused.pop(gone)
        f = c.upload(path, reuse=False)
        uploaded.append(f["id"])
        print(f"{path}: file:{gone} was removed from the server meanwhile (another submission's clean-up); uploaded "
              f"again as file:{f['id']}", file=sys.stderr, flush=True)
        for ids in inputs.values():
            ids[:] = [f["id"] if fid == gone else fid for fid in ids]


def _hardware(args: argparse.Namespace) -> dict[str, int] | None:
    """The entry point's hardware that the command line overrides (``--gpus``, ``--cpus``, ``--memory-mb``), or None."""
    given = {"gpus": args.gpus, "cpus": args.cpus, "memory_mb": args.memory_mb}
    return {k: v for k, v in given.items() if v is not None} or None


@contextlib.contextmanager
def _uploads_removed_unless_submitted(c):
    """The ids of the files this call uploads (the caller appends them); when the job is not submitted after all (the
    server refuses it, an upload fails, the user presses Ctrl-C) they are deleted from the user's space again: a
    refused submission leaves nothing behind that counts against the user's quota (and the command line has no way to
    delete a file)."""
    uploaded: list[str] = []
    try:
        yield uploaded
    except BaseException:
        for file_id in uploaded:
            with contextlib.suppress(Exception):  # best effort: the error that stopped the submission is the one told
                c.delete_file(file_id)
        raise


def _entry_point(c, args):
    """The entry point the server will resolve for this submission, or None (the server then names the problem)."""
    from plexloc.errors import InputError
    from plexloc.service.apps import Application

    for data in c.applications():
        if data.get("name") == args.application:
            try:
                return Application.model_validate(data).entry(args.app_version, args.entry)[2]
            except (InputError, ValueError):
                return None
    return None


def attached_files(c, args, local: dict[str, Path], *, given: set[str]) -> list[tuple[str, Path, Path]]:
    """``(slot, file, YAML)`` for each file a configuration given as a local file names by relative path (a spline
    calibration, sCMOS maps, a channel transform's file), for an entry point with a slot ``beside`` that configuration's
    slot which the command line left empty: the worker finds them beside the configuration only if they travel with it.
    ``YAML`` is the file that names it: the configuration, or a YAML the configuration includes.

    A configuration checked as one (``check: plexloc-config``) may include YAMLs (``camera: camera.yaml``, ``psf:
    PSF.yaml``, or a spline ``psf: PSF.h5``: :func:`plexloc.config.io.load_config`): each is attached, and so are the
    files it names in turn (an sCMOS camera.yaml's maps), each file once.

    Raises:
        InputError: a named file is not next to the configuration (the YAML that names it, the field and the path
            named)."""
    import yaml

    from plexloc.config.io import load_yaml

    ep = _entry_point(c, args)
    if ep is None:
        return []
    out: list[tuple[str, Path, Path]] = []
    for slot, spec in ep.inputs.items():
        if spec.beside is None or slot in given or spec.beside not in local:
            continue
        config = local[spec.beside]
        try:
            data = load_yaml(config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not a configuration this can read: the job says what is wrong
        # a camera YAML's loader (check: plexloc-camera) includes no file: a 'camera: camera.yaml' there is its error
        includes = ep.inputs[spec.beside].check != "plexloc-camera"
        seen: set[Path] = {config.resolve()}  # the configuration travels in its own slot
        out += [(slot, path, by) for path, by in _named_files(data, config, includes=includes, seen=seen)]
    return out


def _named_files(data, yaml_path: Path, *, includes: bool, seen: set[Path], prefix: str = "",
                 via: str = "") -> list[tuple[Path, Path]]:
    """``(file, YAML)`` of the files that ``data`` (the mapping read from ``yaml_path``; its fields under ``prefix``)
    names by relative path, the YAMLs it includes and theirs in turn, each once (``seen``: the resolved paths already
    found). ``via``: which YAML includes ``yaml_path`` and by which field, for the errors."""
    import warnings

    import yaml

    from plexloc.config.files import referenced_files
    from plexloc.config.io import SPLINE_SUFFIXES, included_names, load_yaml, names_file
    from plexloc.errors import InputError

    # (field, path, the include's key where the loader reads the file as a YAML in place); of the file fields, only
    # the text the loader reads as a path (a camera's baseline: "100 ADU" is a value, refused by the server's check)
    named: list[tuple[str, str, str | None]] = [(f, n, None) for f, n in referenced_files(data, prefix)
                                                if names_file(f.rsplit(".", 1)[-1], n)]
    for where, key, value in included_names(data) if includes else []:
        field = f"{prefix}.{where}{key}" if prefix else f"{where}{key}"
        spline = Path(value).suffix.lower() in SPLINE_SUFFIXES and key == "psf"
        named.append((field, value, None if spline else key))  # a spline file is named, not read
    out: list[tuple[Path, Path]] = []
    for field, name, key in named:
        if Path(name).is_absolute() or name.startswith("~"):
            what = "a path in a home folder" if name.startswith("~") else "an absolute path"
            warnings.warn(f"{yaml_path}: {field} is {what} ({name}); a worker reads it only if its disk has that path "
                          "(a path relative to the configuration travels with it)", stacklevel=2)
            continue
        path = (yaml_path.parent / name).resolve()
        if not path.is_file():
            raise InputError(f"field '{field}' names {name}, which is not next to the configuration{via}",
                             source=yaml_path)
        if Path(name).parent != Path("."):
            raise InputError(f"field '{field}' names {name} in a sub-folder; on a worker the files a configuration "
                             f"names lie beside it: name it {Path(name).name} and keep it next to the configuration"
                             f"{via}", source=yaml_path)
        if path in seen:
            continue
        seen.add(path)
        out.append((path, yaml_path))
        if key is None:
            continue
        try:  # an included YAML: its own files, relative to its folder (the loader's rule), travel too
            included = load_yaml(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # attached as it is: the server's check (or the job) says what is wrong with it
        own = ""
        if isinstance(included, dict) and isinstance(included.get(key), dict):
            included, own = included[key], key  # a whole configuration: the loader reads its 'camera' / 'psf'
        out += _named_files(included, path, includes=includes, seen=seen, prefix=own,
                            via=f" ({path.name} is included by {yaml_path}, field '{field}')")
    return out
