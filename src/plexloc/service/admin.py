"""Accounts: users and workers with hashed tokens (the token is returned once and never stored)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plexloc.errors import InputError
from plexloc.service.db import User, Worker
from plexloc.service.security import USER_PREFIX, WORKER_PREFIX, hash_token, new_token


def _add(session: Session, obj, name: str, kind: str) -> None:
    session.add(obj)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise InputError(f"a {kind} named {name!r} exists already", source="name") from None


def create_user(session: Session, name: str, *, email: str | None = None, group: str | None = None) -> tuple[User, str]:
    """A new user and their token (shown once)."""
    token = new_token(USER_PREFIX)
    user = User(name=name, token_hash=hash_token(token), email=email, group=group)
    _add(session, user, name, "user")
    return user, token


def create_worker(session: Session, name: str, *, group: str | None = None, tags: list[str] = ()) -> tuple[Worker, str]:
    """A new worker and its token (shown once)."""
    token = new_token(WORKER_PREFIX)
    worker = Worker(name=name, token_hash=hash_token(token), group=group, tags=list(tags))
    _add(session, worker, name, "worker")
    return worker, token


def rotate_token(session: Session, kind: str, name: str) -> tuple[str, list[str]]:
    """A new token for the user or worker ``name`` (enabled), and the ids of the jobs a worker held, which go back to
    the queue (:func:`release_jobs`: its process, which has the old token, cannot finish them)."""
    model = User if kind == "user" else Worker
    obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        raise InputError(f"no {kind} named {name!r}", source="name")
    token = new_token(USER_PREFIX if kind == "user" else WORKER_PREFIX)
    obj.token_hash = hash_token(token)
    obj.active = True
    return token, release_jobs(session, obj, "got a new token") if kind == "worker" else []


def set_active(session: Session, kind: str, name: str, active: bool) -> list[str]:
    """Enable or disable the user or worker ``name``; returns the ids of the jobs a disabled worker held, which go
    back to the queue (:func:`release_jobs`)."""
    model = User if kind == "user" else Worker
    obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        raise InputError(f"no {kind} named {name!r}", source="name")
    obj.active = active
    return release_jobs(session, obj, "was disabled") if kind == "worker" and not active else []


def release_jobs(session: Session, worker: Worker, why: str) -> list[str]:
    """The jobs ``worker`` holds go back to the queue at the server's next sweep (their lease ends now: the worker, its
    token refused, cannot ping or finish them), each job's log saying why; returns their ids. They waited for their
    lease to lapse, and their users read "lease of worker ... lapsed" with no word of the administrator's change."""
    from plexloc.service.db import now
    from plexloc.service.jobs import add_log

    held = _held(session, worker)
    at = now()
    for job in held:
        job.lease_expires_at = min(job.lease_expires_at or at, at)
        # the attempt the administrator ended does not count against the job: on its last attempt the sweep failed it
        # ("lease lost 3 times (worker stopped answering)") where the command had said it goes back to the queue
        job.max_attempts += 1
        add_log(session, job, [f"[service] worker {worker.name} {why} by the service's administrator during attempt "
                               f"{job.attempts}: the job goes back to the queue (that attempt does not count: "
                               f"{job.max_attempts - job.attempts} left)"], at=at)
    return [job.id for job in held]


def _held(session: Session, worker: Worker) -> list:
    from plexloc.service.db import Job
    from plexloc.service.states import JobState

    return list(session.scalars(select(Job).where(Job.worker_id == worker.id, Job.state.in_(
        [JobState.assigned.value, JobState.running.value])).order_by(Job.id)))


def usage(session: Session) -> dict[str, dict[str, dict[str, float]]]:
    """Jobs and compute (CPU and GPU seconds) by user and by worker (the last worker that ran each job)."""
    from sqlalchemy import func

    from plexloc.service.db import Job

    def rows(key, join_on):
        q = (
            select(key, func.count(Job.id), func.coalesce(func.sum(Job.cpu_seconds), 0.0), func.coalesce(func.sum(Job.gpu_seconds), 0.0))
            .join(Job, join_on)
            .group_by(key)
        )
        return {name: {"jobs": n, "cpu_seconds": float(c), "gpu_seconds": float(g)} for name, n, c, g in session.execute(q)}

    return {"users": rows(User.name, Job.user_id == User.id), "workers": rows(Worker.name, Job.worker_id == Worker.id)}


def open_jobs(session: Session, *, at: float | None = None) -> list[dict]:
    """The jobs of every user not ended yet (queued, waiting for another job, assigned, running), oldest first: what
    the service is doing, and for each queued job why no worker takes it, where the server can tell
    (:func:`plexloc.service.jobs.queue_note`; without the server's registry, so an application it no longer offers is
    not named). An admin asked "why does nothing run?" read it only in each user's ``plexloc status -v``."""
    from plexloc.service import jobs as ops
    from plexloc.service.db import Job
    from plexloc.service.states import JobState

    at = ops.now() if at is None else at
    live = [s.value for s in JobState if not s.terminal]
    users = {u.id: u.name for u in session.scalars(select(User))}
    workers = {w.id: w.name for w in session.scalars(select(Worker))}
    out = []
    for job in session.scalars(select(Job).where(Job.state.in_(live)).order_by(Job.created_at)):
        out.append({"id": job.id, "user": users.get(job.user_id, "?"), "application": job.application,
                    "version": job.version, "entry_point": job.entry_point,
                    "state": job.state + (" (waiting for inputs)" if job.waiting else ""),
                    "worker": workers.get(job.worker_id or "", "-"), "age_s": at - job.created_at,
                    "attempts": job.attempts, "note": ops.queue_note(session, job, at=at)})
    return out
