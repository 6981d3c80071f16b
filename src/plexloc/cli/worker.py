"""``plexloc worker --server URL --token T``: pull and run jobs of a plexloc service."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run jobs of a plexloc service (pulls over outbound HTTP)",
        description="Pull jobs this machine can run from a plexloc service, run each as a subprocess in its "
        "own work folder, stream progress and log, upload the outputs. Hardware is detected (CPUs, RAM, "
        "NVIDIA GPUs); the options override it. SIGTERM finishes the running job, then stops; Ctrl-C stops at "
        "once (the server re-queues the job when its lease lapses).",
    )
    p.add_argument("--server", required=True, help="server URL, e.g. http://host:8000")
    p.add_argument("--token", default=os.environ.get("PLEXLOC_WORKER_TOKEN"), help="worker token (default $PLEXLOC_WORKER_TOKEN)")
    p.add_argument("--work-dir", type=Path, default=None, help="where job folders are made, created if missing (default: the temp folder)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs to offer (default: detected)")
    p.add_argument("--gpu-memory-mb", type=int, default=None, help="memory per GPU to offer, MB (default: detected)")
    p.add_argument("--cpus", type=int, default=None, help="CPU cores to offer (default: detected)")
    p.add_argument("--memory-mb", type=int, default=None, help="RAM to offer, MB (default: detected)")
    p.add_argument("--poll", type=float, default=1.0, metavar="S", help="seconds between pulls when idle (default 1)")
    p.add_argument("--ping", type=float, default=2.0, metavar="S", help="seconds between status pings (default 2)")
    p.add_argument("--min-job-age", type=float, default=0.0, metavar="S", help="take only jobs queued at least S seconds")
    p.add_argument("--container-runtime", default=None, metavar="NAME",
                   help="podman, docker, apptainer (or a path), or none; runs entry points that name an image "
                   "(default: $PLEXLOC_CONTAINER_RUNTIME, else the first of podman, docker, apptainer on PATH)")
    p.add_argument("--once", action="store_true", help="run at most one job, then exit")
    p.add_argument("--keep-work", action="store_true", help="keep job folders (debugging)")
    p.set_defaults(func=run)


def gpu_warning(gpus: int) -> str | None:
    """Where the machine offers GPUs but this Python's torch cannot use them (``plexloc doctor``): the warning a worker
    prints at start, since the jobs it runs natively on a GPU would fail (container images bring their own torch)."""
    if gpus <= 0:
        return None
    from plexloc.doctor import check_environment

    report = check_environment()
    if report.gpu_ok:
        return None
    why = report.problems[0] if report.problems else "no GPU passed the test convolution"
    return (f"warning: this machine offers {gpus} GPU(s) but plexloc's torch here cannot use them: {why}. Jobs that run "
            "natively on a GPU will fail on this worker (container images bring their own torch); fix it (plexloc "
            "doctor) or start the worker with --gpus 0")


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from plexloc.errors import InputError
    from plexloc.service.agent import Agent, detect_hardware

    if not args.token:
        raise InputError("--token is required (or set PLEXLOC_WORKER_TOKEN)")
    from plexloc.service.security import USER_PREFIX, WORKER_PREFIX

    if args.token.startswith(USER_PREFIX):  # said before the first pull (the server's 403 came after the start line)
        raise InputError(f"--token is a user's token ({USER_PREFIX}...); a worker needs a worker token ({WORKER_PREFIX}..., "
                         "from plexloc admin create-worker NAME)")
    if args.work_dir is not None:
        # absolute: a job's command runs inside its own folder, where a relative --work-dir's paths to the job's inputs
        # ('wk/plexloc-job-.../in/config/c.yaml') named nothing and every job failed with 'file not found'
        args.work_dir = args.work_dir.expanduser().resolve()
        # checked before the first claim: a missing folder ended the worker at its first job, left assigned
        try:
            args.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot make the work folder: {err.strerror or err}", source=args.work_dir) from None
        if not os.access(args.work_dir, os.W_OK | os.X_OK):
            raise InputError("the work folder is not writable", source=args.work_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # httpx logs every request at INFO: an idle worker's pull each second (86,400 lines a day) and a running job's
    # pings drowned the worker's own messages; its warnings and errors still show
    logging.getLogger("httpx").setLevel(logging.WARNING)
    hw = detect_hardware()
    overrides = {k: getattr(args, k) for k in ("gpus", "gpu_memory_mb", "cpus", "memory_mb") if getattr(args, k) is not None}
    hw = hw.model_copy(update=overrides)
    warning = gpu_warning(hw.gpus)
    if warning:
        print(warning, flush=True)
    from plexloc.service.containers import usable_runtime

    runtime, runtime_warnings = usable_runtime(args.container_runtime)  # one that answers, not only one on PATH
    agent = Agent(
        args.server, args.token, work_dir=args.work_dir, hardware=hw, poll_s=args.poll, ping_s=args.ping,
        min_job_age_s=args.min_job_age, keep_work=args.keep_work, runtime=runtime,
    )
    def finish_then_stop(*_) -> None:
        logging.getLogger("plexloc.worker").info("SIGTERM: stopping once the running job (if any) has ended")
        agent.stop.set()

    signal.signal(signal.SIGTERM, finish_then_stop)
    print(f"plexloc worker -> {args.server}: {hw.cpus} CPUs, {hw.memory_mb} MB, {hw.gpus} GPUs, "
          f"containers: {agent.runtime.name if agent.runtime else 'none'}", flush=True)
    for line in runtime_warnings:  # (after the start line, which says "containers: none")
        print(line, flush=True)
    try:
        agent.run(max_jobs=1 if args.once else None)
    finally:
        agent.close()
    return 0
