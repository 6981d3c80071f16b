"""``plexloc status [JOB] --server URL --token T [-v] [--log] [--cancel | --delete | --rerun]`` (or ``--files``, ``--delete-file ID``): a job's state, or a list of one's
jobs (with the space one's files take, and the server's limits when it has any)."""

from __future__ import annotations

import argparse
import sys
import time

from plexloc.cli.submit import (STOPPED_WAITING, add_client_options, client_from, follow_new_job, patiently,
                                 say_warnings, service_errors, wait_for_end)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="state of a job on a plexloc service (or a list of your jobs; --cancel cancels it)",
        description="Print the job's state (queued, assigned, running, succeeded, failed, cancelled); with "
        "--verbose also stage, progress and error; with --log its log; with --cancel cancel it first (a queued job at "
        "once, a running one when its worker next pings: its command is stopped); with --delete delete an ended job with its "
        "outputs and log; with --rerun submit the job again (a new job, its id printed). Without JOB: your jobs, newest first, and the space your files take (against the server's "
        "quota and job limit, when it has them).",
    )
    p.add_argument("job", nargs="?", default=None, help="job id (as plexloc submit printed it); none: list your jobs")
    add_client_options(p)
    p.add_argument("--verbose", "-v", action="store_true", help="also the stage, progress and error")
    p.add_argument("--log", action="store_true", help="also print the job's log")
    p.add_argument("--cancel", action="store_true", help="cancel the job (then print its state)")
    p.add_argument("--delete", action="store_true",
                   help="delete the ended job with its outputs and log (frees their space; download them first)")
    p.add_argument("--rerun", action="store_true",
                   help="submit the job again as a new job, with the same inputs and parameters (prints the new "
                   "job's id; with --wait, waits for it)")
    p.add_argument("--wait", action="store_true",
                   help="wait until the job ends (exit 0 only on success; exit 3, the job left queued, when no worker "
                   "present can take it for 30 s); with --log, print the log as it grows")
    p.add_argument("--wait-queued", action="store_true",
                   help="wait even for a job no worker present can take (for a worker about to start)")
    p.add_argument("--files", action="store_true", help="list the files you uploaded (id, size, name), not jobs")
    p.add_argument("--delete-file", action="append", default=[], metavar="FILE_ID",
                   help="delete a file you uploaded (repeatable; jobs that used it keep its name as deleted:NAME)")
    p.set_defaults(func=run)


def _files(c, delete: list[str]) -> int:
    """Delete the uploads ``delete``, else list one's uploads (a user over the quota could free the space that jobs'
    outputs took, but not that of their uploads, from the command line)."""
    from plexloc.service.settings import size_text

    for file_id in delete:
        c.delete_file(file_id)
        print(f"deleted file {file_id}")
    if delete:
        return 0
    uploads = [f for f in c.files() if f.get("job_id") is None]
    if not uploads:
        print("no files")
    for f in uploads:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(f["created_at"]))
        print(f"{f['id']}  {when}  {size_text(f['size']):>9}  {f['name']}" + ("" if f["state"] == "ready" else f"  ({f['state']})"))
    return 0


def _list(c) -> int:
    from plexloc.service.settings import size_text

    jobs = c.jobs()
    if not jobs:
        print("no jobs")
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(j["created_at"]))
        # the space its outputs and log take (what --delete frees; older servers do not say)
        size = "-" if j.get("output_bytes") is None else size_text(j["output_bytes"])
        n = j.get("warning_count") or 0  # a job that succeeded with warnings (older servers do not say)
        said = j["error"][:80] if j["error"] else f"{n} warning{'' if n == 1 else 's'} (plexloc status JOB)" if n else ""
        print(f"{j['id']}  {when}  {j['application']} {j['entry_point']:<8} {j['state']:<9} {100 * j['progress']:3.0f}%"
              f"  {size:>9}" + (f"  {said}" if said else ""))
    use = c.usage()
    if "file_bytes" in use:  # older servers do not say; on stderr: stdout stays the list, a job per line, for scripts
        quota = use.get("quota_bytes")
        line = f"your files: {size_text(use['file_bytes'])}" + (f" of a {size_text(quota)} quota" if quota else "")
        if use.get("max_active_jobs"):
            line += f"; jobs queued or running: {use['active_jobs']} of at most {use['max_active_jobs']}"
        print(line, file=sys.stderr)
    return 0


def _rerun(c, args: argparse.Namespace) -> int:
    """``--rerun``: the job submitted again (the server's re-run, as the web page's Re-run button does); the new
    job's id on stdout (J2=$(plexloc status J --rerun)), and with ``--wait`` its end as ``plexloc submit --wait`` says
    it. The command line had no way to re-run a job, although a full store's error advised it."""
    from plexloc.errors import InputError

    if args.cancel or args.delete or args.log or args.verbose:
        raise InputError("--rerun submits the job again as a new job: not with --cancel, --delete, --log or -v (give "
                         "them the new job's id)")
    old = c.job(args.job)  # asked first: a failure of this question leaves no new job behind an error
    new = c.rerun(args.job)
    print(new["id"], flush=True)
    print(f"plexloc status: job {new['id']} re-runs job {args.job}", file=sys.stderr, flush=True)
    if old["state"] not in ("succeeded", "failed", "cancelled"):
        # a re-run is a second job beside the first, not a restart of it: said (it read as if the job had restarted,
        # and both ran, taking two workers and the space of two outputs)
        print(f"plexloc status: warning: job {args.job} is still {old['state']}: the re-run runs beside it, not "
              f"instead of it (plexloc status {args.job} --cancel stops it)", file=sys.stderr, flush=True)
    return follow_new_job(c, new, args, prog="status")


def run(args: argparse.Namespace) -> int:
    from plexloc.errors import InputError
    from plexloc.service.settings import size_text

    with client_from(args) as c, service_errors(args.server):
        if args.files or args.delete_file:
            if args.job is not None or args.cancel or args.log or args.delete or args.verbose or args.rerun:
                raise InputError("--files and --delete-file are about your uploads: not with JOB, --cancel, --delete, "
                                 "--rerun, --log or -v")
            return _files(c, args.delete_file)
        args.wait = args.wait or args.wait_queued
        if args.job is None:
            if args.cancel or args.log or args.delete or args.wait or args.rerun:
                raise InputError("--cancel, --delete, --rerun, --log and --wait need a JOB")
            return _list(c)
        if args.rerun:
            return _rerun(c, args)
        if args.delete:
            if args.cancel or args.log or args.wait:
                raise InputError("--delete removes the job and its log: not with --cancel, --log or --wait")
            c.delete(args.job)
            print(f"deleted {args.job} with its outputs and log")
            return 0
        job = (c.cancel(args.job) if args.cancel else c.job(args.job) if not args.wait
               else patiently(lambda: c.job(args.job), prog="status", server=c.server))  # --wait: across a restart
        after = 0

        def follow() -> None:  # --log --wait: the log printed as it grows (plexloc status JOB --log --wait watches it)
            nonlocal after
            while (page := c.log(args.job, after=after))["lines"]:
                for line in page["lines"]:
                    print(line["line"], flush=True)
                after = page["next_after"]

        if args.wait and job["state"] not in ("succeeded", "failed", "cancelled"):
            job = wait_for_end(c, args.job, prog="status", keep_waiting=args.wait_queued,
                               each=follow if args.log else None)
            if job is None:
                return STOPPED_WAITING
            if args.log:
                follow()  # the log's last lines before the state it ended in
        print(job["state"] + (" (cancel requested: the worker stops it at its next ping)"
                              if args.cancel and job.get("cancel_requested") and job["state"] != "cancelled" else ""),
              flush=True)
        say_warnings(job, prog="status")  # "succeeded with 2 warnings:" and each (they were only in the log)
        if args.verbose:
            print(f"stage {job['stage'] or '-'}  progress {100 * job['progress']:.0f}%  attempts {job['attempts']}"
                  + ("" if job.get("output_bytes") is None else f"  outputs and log {size_text(job['output_bytes'])}"))
            if job["error"]:
                print(f"error: {job['error']}")
            if job.get("note"):
                print(f"note: {job['note']}")
        if args.log:
            follow()  # the whole log, or (--wait) what came after the lines printed while waiting
        if args.wait:
            return 0 if job["state"] == "succeeded" else 1
    return 0
