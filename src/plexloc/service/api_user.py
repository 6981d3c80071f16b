"""The user API (``/api/v1``): files, applications, jobs. A user sees only their own files and jobs
(anything else is 404, as if it did not exist)."""

from __future__ import annotations

import logging

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from sqlalchemy import select

from plexloc.config.io import load_yaml
from plexloc.errors import InputError
from plexloc.service import jobs as ops
from plexloc.service.apps import parse_application
from plexloc.service.db import File, Job, JobInput, JobLog, new_id
from plexloc.service.deps import SessionDep, UserDep, base_url
from plexloc.service.settings import size_text
from plexloc.service.schemas import (
    FileCreate, FileOut, JobCreate, JobOut, LogLine, LogOut, OutputOut, PartsIn, PartsOut, UploadOut, UrlOut,
)
from plexloc.service.states import JobState
from plexloc.service.storage import StorageError
from plexloc.service.words import job_warnings, job_words, service_flags

router = APIRouter(prefix="/api/v1", tags=["user"])


def job_out(job: Job, output_bytes: int | None = None, *, registry=None, warning_count: int = 0,
            warnings: list[str] = ()) -> JobOut:
    """The job's answer; ``output_bytes`` from :func:`_output_bytes` (None: not said). With ``registry``, its error and
    ``warnings`` name the options of the entry point's command as a submission gives them
    (:func:`plexloc.service.words.service_flags`: "--input camera=CAMERA.yaml", not ``plexloc fit``'s "--camera")."""
    inputs: dict[str, list[str]] = {}
    for ji in job.inputs:
        inputs.setdefault(ji.slot, []).append(ops.input_ref(ji))
    skip = ("inputs", "worker", "note", "output_bytes", "warning_count", "warnings")
    data = {c: getattr(job, c) for c in JobOut.model_fields if c not in skip}
    words = job_words(registry, job)
    data["error"] = service_flags(data["error"], **words)
    return JobOut(**data, inputs=inputs, worker=job.worker_id, output_bytes=output_bytes, warning_count=warning_count,
                  warnings=[service_flags(w, **words) for w in warnings])


def _output_bytes(session, job_ids: list[str]) -> dict[str, int]:
    """Bytes the outputs and log of each job take (one query): a user over the quota saw which jobs to delete only by
    downloading each."""
    from sqlalchemy import func

    rows = session.execute(select(File.job_id, func.sum(File.size)).where(File.job_id.in_(job_ids)).group_by(File.job_id))
    return {job_id: int(n or 0) for job_id, n in rows}


def _own_file(session, user, file_id: str) -> File:
    f = session.get(File, file_id)
    if f is None or f.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {file_id}")
    return f


def _own_job(session, user, job_id: str, *, lock: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=lock or None)
    if job is None or job.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return job


def check_size(request: Request, size: int, name: str, *, job_id: str | None = None) -> None:
    """413 over the server's upload limit; 507 when the local store's disk has not room for ``size`` bytes (said before
    a byte is sent, not as an upload that fails when the disk is full). Both name the file ``name`` (of a job's several
    inputs or outputs, which one)."""
    limit = request.app.state.settings.max_upload_bytes
    if size > limit:
        raise HTTPException(413, f"{name}: size {size} exceeds the limit of {limit} bytes")
    free = getattr(request.app.state.storage, "free_bytes", None)
    if free is not None and size > (left := free()):
        # said in the server's own log too: the administrator, who can free space, saw nothing there (a job's worker
        # waits for the space, its user sees it in the job's log)
        logging.getLogger("plexloc.service").warning(
            "the file store is full: %s (%d bytes%s) refused, %d bytes free; free space in %s", name, size,
            f", an output of job {job_id}" if job_id else "", left, getattr(request.app.state.storage, "root", "the store"))
        raise HTTPException(507, f"{name}: the server's file store has {left} bytes free, fewer than the file's {size}: "
                                 "ask the server's administrator to free space")


def signed_upload(request: Request, f: File) -> UploadOut:
    settings = request.app.state.settings
    url = request.app.state.storage.upload_url(
        f.storage_key, size=f.size, sha256=f.sha256, base_url=base_url(request), ttl_s=settings.url_ttl_s
    )
    return UploadOut(file=FileOut.model_validate(f), upload_url=url, expires_in_s=settings.url_ttl_s)


def signed_download(request: Request, f: File) -> str:
    return request.app.state.storage.download_url(
        f.storage_key, filename=f.name.replace("/", "_"), base_url=base_url(request), ttl_s=request.app.state.settings.url_ttl_s
    )


def _user_bytes(session, user) -> int:
    from sqlalchemy import func

    return int(session.execute(select(func.coalesce(func.sum(File.size), 0)).where(File.user_id == user.id)).scalar_one())


def _active_jobs(session, user) -> int:
    from sqlalchemy import func

    live = [s.value for s in JobState if not s.terminal]
    return int(session.execute(select(func.count(Job.id)).where(Job.user_id == user.id, Job.state.in_(live))).scalar_one())


def check_quota(request: Request, session, user, size: int, name: str) -> None:
    """413 when a new file of ``size`` bytes would take the user past the server's per-user quota (their uploads, job
    outputs and logs together); ``size`` 0 (a new job) is refused once they are already over it, since its outputs
    would add to it. The message gives what they use, the quota, and the way out.

    A soft limit: the sum is read, not locked, so requests of one user that run at the same time each pass on the same
    sum and may together go past the quota by what they register at once (their declared sizes); job outputs are
    never refused (a job over the quota finishes; the user's next upload or job is refused). Enough to keep one user
    from filling a shared store by mistake, not a guarantee against one who races it."""
    quota = request.app.state.settings.user_quota_bytes
    if quota is None:
        return
    used = _user_bytes(session, user)
    if used + size > quota or (size == 0 and used >= quota):
        # over it already (a job's outputs are never refused: a training's checkpoints took a user of a 2 MiB quota to
        # 48.5 MiB), said so; "small.tif needs 408 KiB more" read as if 408 KiB were missing
        where = (f"already over your quota of {size_text(quota)} (a job's outputs are kept even past it)" if used >= quota
                 else f"of your quota of {size_text(quota)}, {size_text(quota - used)} free")
        need = f"; {name} is {size_text(size)}" if size else ""
        raise HTTPException(413, f"{name}: your files take {size_text(used)}, {where}{need}: delete files or ended jobs "
                                 "you no longer need (plexloc status lists your jobs and their space, plexloc status "
                                 "--files your uploads; plexloc status JOB --delete, plexloc status --delete-file ID, or "
                                 "the web page), or ask the server's administrator for a larger quota (plexloc serve "
                                 "--user-quota-gb)")


def check_active_jobs(request: Request, session, user) -> None:
    """429 when the user already has the server's limit of jobs queued or running (soft, as :func:`check_quota`:
    submissions at the same time may each pass on the same count)."""
    limit = request.app.state.settings.max_active_jobs
    if limit is not None and (n := _active_jobs(session, user)) >= limit:
        raise HTTPException(429, f"you have {n} job{'' if n == 1 else 's'} queued or running, the most this server "
                                 f"allows one user ({limit}): submit again once one has ended (plexloc status lists "
                                 "them)")


@router.get("/me")
def me(user: UserDep) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "group": user.group}


@router.get("/usage")
def my_usage(request: Request, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """The caller's jobs and the compute they used (CPU and GPU seconds), by application; the bytes their files take
    and the server's quota (None: no limit); their jobs not yet ended and the most they may have."""
    from sqlalchemy import func

    q = (
        select(Job.application, func.count(Job.id), func.coalesce(func.sum(Job.cpu_seconds), 0.0), func.coalesce(func.sum(Job.gpu_seconds), 0.0))
        .where(Job.user_id == user.id)
        .group_by(Job.application)
    )
    by_app = {a: {"jobs": n, "cpu_seconds": float(c), "gpu_seconds": float(g)} for a, n, c, g in session.execute(q)}
    total = {k: sum(v[k] for v in by_app.values()) for k in ("jobs", "cpu_seconds", "gpu_seconds")}
    settings = request.app.state.settings
    limits = {"file_bytes": _user_bytes(session, user), "quota_bytes": settings.user_quota_bytes,
              "active_jobs": _active_jobs(session, user), "max_active_jobs": settings.max_active_jobs}
    return {**total, **limits, "by_application": by_app}


# -- files ---------------------------------------------------------------------------------------------
@router.post("/files", status_code=201)
def create_file(body: FileCreate, request: Request, session: SessionDep, user: UserDep) -> UploadOut:
    """Register a file and get a signed upload URL (PUT the bytes there, in chunks with ``offset``)."""
    ops.check_file_name(body.name)
    check_size(request, body.size, body.name)
    check_quota(request, session, user, body.size, body.name)
    fid = new_id()
    f = File(id=fid, user_id=user.id, name=body.name, size=body.size, sha256=body.sha256, storage_key=f"u/{user.id}/{fid}")
    session.add(f)
    session.flush()
    return signed_upload(request, f)


@router.post("/files/{file_id}/upload-url")
def renew_upload_url(file_id: str, request: Request, session: SessionDep, user: UserDep) -> UploadOut:
    """A fresh upload URL for a file still uploading (resume after the old URL expired)."""
    f = _own_file(session, user, file_id)
    if f.state != "pending":
        raise HTTPException(status.HTTP_409_CONFLICT, f"file {file_id} is already complete")
    return signed_upload(request, f)


@router.post("/files/{file_id}/parts")
def upload_parts(file_id: str, request: Request, session: SessionDep, user: UserDep, body: PartsIn | None = None) -> PartsOut:
    """A multipart upload of a large file to an S3 store: a presigned URL per part the store does not
    have yet (ask again after an interruption: only the missing parts come back), then ``complete``.
    The local store resumes by offset on its single upload URL instead (409 here)."""
    f = _own_file(session, user, file_id)
    if f.state != "pending":
        raise HTTPException(status.HTTP_409_CONFLICT, f"file {file_id} is already complete")
    store = request.app.state.storage
    if not hasattr(store, "upload_parts"):
        raise HTTPException(status.HTTP_409_CONFLICT, "this store takes one resumable upload URL (upload-url), not parts")
    ttl = request.app.state.settings.url_ttl_s
    plan = store.upload_parts(f.storage_key, size=f.size, part_size=store.part_size(f.size, body.part_size if body else None), ttl_s=ttl)
    return PartsOut(**plan, expires_in_s=ttl)


@router.post("/files/{file_id}/complete")
def complete_file(file_id: str, request: Request, session: SessionDep, user: UserDep, reuse: bool = False) -> FileOut:
    """Check that all bytes arrived (size and SHA-256) and make the file usable by jobs. ``reuse`` (as ``plexloc
    submit`` and the web page ask, unless told not to): when another complete upload of the user has the same name,
    size and SHA-256, that one is answered and this one removed, so that two submissions that both uploaded a new file
    at once (neither found the other's, still arriving) keep one copy, counted once against the quota."""
    f = _own_file(session, user, file_id)
    if f.state == "pending":
        f.sha256 = request.app.state.storage.finalize(f.storage_key, size=f.size, sha256=f.sha256)
        f.state = "ready"
    if reuse and f.kind == "upload" and f.sha256:
        same = session.scalars(select(File).where(
            File.user_id == user.id, File.kind == "upload", File.state == "ready", File.id != f.id, File.name == f.name,
            File.size == f.size, File.sha256 == f.sha256).order_by(File.created_at, File.id))
        kept = next((g for g in same if _stored(request.app.state.storage, g)), None)
        in_use = session.scalar(select(JobInput.job_id).where(JobInput.file_id == f.id).limit(1))
        if kept is not None and in_use is None:
            ops.delete_files(session, request.app.state.storage, [f])
            return FileOut.model_validate(kept)
    return FileOut.model_validate(f)


@router.get("/files")
def list_files(request: Request, session: SessionDep, user: UserDep, kind: str | None = None,
               sha256: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{64}$")] = None) -> list[FileOut]:
    """The user's files, newest first; ``kind`` (upload, output, log) and ``sha256`` (the bytes' hash: whether a file
    is on the server already, to use it again instead of uploading it once more) filter them."""
    q = select(File).where(File.user_id == user.id).order_by(File.created_at.desc())
    if kind:
        q = q.where(File.kind == kind)
    if sha256:
        q = q.where(File.sha256 == sha256.lower())
        # asked to use a file again (plexloc submit): one whose stored bytes are gone (lost from the store since) is
        # left out, and uploaded again, instead of being given to a job that then failed on its worker's download
        # ("download of cfg.yaml refused (404)"); a few files at most, each read for one byte
        return [FileOut.model_validate(f) for f in session.scalars(q) if _stored(request.app.state.storage, f)]
    return [FileOut.model_validate(f) for f in session.scalars(q)]


def _stored(storage, f: File) -> bool:
    """The bytes of the complete file ``f`` are in the store (an empty file, or one still uploading: True)."""
    if f.state != "ready" or not f.size:
        return True
    try:
        storage.head(f.storage_key, 1)
    except StorageError:
        return False
    return True


@router.get("/files/{file_id}")
def get_file(file_id: str, session: SessionDep, user: UserDep) -> FileOut:
    return FileOut.model_validate(_own_file(session, user, file_id))


@router.get("/files/{file_id}/download-url")
def file_download_url(file_id: str, request: Request, session: SessionDep, user: UserDep) -> UrlOut:
    f = _own_file(session, user, file_id)
    if f.state != "ready":
        raise HTTPException(status.HTTP_409_CONFLICT, f"file {file_id} is not completely uploaded")
    return UrlOut(url=signed_download(request, f), expires_in_s=request.app.state.settings.url_ttl_s)


@router.delete("/files/{file_id}", status_code=204)
def delete_file(file_id: str, request: Request, session: SessionDep, user: UserDep) -> None:
    f = _own_file(session, user, file_id)
    busy = session.scalars(
        select(JobInput.job_id)
        .join(Job, Job.id == JobInput.job_id)
        .where(JobInput.file_id == f.id, Job.state.in_([s.value for s in JobState if not s.terminal]))
    ).first()
    if busy:
        raise HTTPException(status.HTTP_409_CONFLICT, f"file {file_id} is an input of unfinished job {busy}")
    ops.delete_files(session, request.app.state.storage, [f])


# -- applications -------------------------------------------------------------------------------------
@router.get("/applications")
def list_applications(request: Request, user: UserDep) -> list[dict[str, Any]]:
    """Every application, version and entry point with its inputs, parameters and hardware."""
    return [app.model_dump(by_alias=True) for app in request.app.state.registry.apps.values()]


@router.post("/applications/validate")
def validate_application(user: UserDep, text: Annotated[str, Body(media_type="text/plain")]) -> dict[str, Any]:
    """Check an application YAML (422 names the field); nothing is registered."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        raise InputError(f"not YAML: {err}", source="application") from None
    app = parse_application(data, source="application")
    return {"name": app.name, "versions": sorted(app.versions)}


# -- jobs -----------------------------------------------------------------------------------------------
@router.post("/jobs", status_code=201)
def create_job(body: JobCreate, request: Request, session: SessionDep, user: UserDep) -> JobOut:
    check_active_jobs(request, session, user)
    check_quota(request, session, user, 0, "a new job")
    job = ops.submit(
        session,
        user,
        request.app.state.registry,
        ops.JobRequest(**body.model_dump()),
        max_attempts=request.app.state.settings.max_attempts,
    )
    session.flush()
    # a movie that is not a TIFF, a configuration that cannot load: 422, and the error rolls the job back (not queued)
    ops.check_input_files(session, request.app.state.storage, request.app.state.registry, job)
    return _with_note(request, session, job)


@router.get("/jobs")
def list_jobs(
    request: Request, session: SessionDep, user: UserDep, state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[JobOut]:
    q = select(Job).where(Job.user_id == user.id).order_by(Job.created_at.desc()).limit(limit)
    if state:
        q = q.where(Job.state == state)
    jobs = list(session.scalars(q))
    sizes = _output_bytes(session, [j.id for j in jobs])
    registry = request.app.state.registry
    return [job_out(j, sizes.get(j.id, 0), registry=registry, warning_count=j.warning_count or 0) for j in jobs]


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request, session: SessionDep, user: UserDep) -> JobOut:
    return _with_note(request, session, _own_job(session, user, job_id))


def _with_note(request: Request, session, job: Job) -> JobOut:
    """The job with its ``note`` (why no worker present takes it, :func:`ops.queue_note`), also in the answer to its
    submission: a job no worker could take was submitted without a word and sat queued until its user asked."""
    registry = request.app.state.registry
    out = job_out(job, _output_bytes(session, [job.id]).get(job.id, 0), registry=registry,
                  warning_count=job.warning_count or 0,  # its last attempt's, counted as its log was stored
                  warnings=job_warnings(session, job.id) if job.warning_count else [])  # none: not looked for
    return out.model_copy(update={"note": ops.queue_note(session, job, registry=registry)})


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request, session: SessionDep, user: UserDep) -> JobOut:
    """Queued: cancelled now. Running: the worker stops it at its next ping. Finished: 409."""
    job = _own_job(session, user, job_id, lock=True)
    ops.cancel(session, job)
    return _with_note(request, session, job)  # as the other answers about a job


@router.post("/jobs/{job_id}/rerun", status_code=201)
def rerun_job(job_id: str, request: Request, session: SessionDep, user: UserDep) -> JobOut:
    check_active_jobs(request, session, user)
    check_quota(request, session, user, 0, "a new job")
    new = ops.rerun(session, user, request.app.state.registry, _own_job(session, user, job_id))
    session.flush()
    # as at submission: a configuration that no longer loads (or was never checked: another job's output, an older
    # server's rules) is refused here, not queued to fail on a worker
    ops.check_input_files(session, request.app.state.storage, request.app.state.registry, new)
    return _with_note(request, session, new)


@router.delete("/jobs/{job_id}", status_code=204)
def delete_job(job_id: str, request: Request, session: SessionDep, user: UserDep) -> None:
    job = _own_job(session, user, job_id, lock=True)
    if not JobState(job.state).terminal:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} is {job.state}: cancel it first")
    busy = session.execute(  # its outputs feeding a job that has not finished (as delete_file refuses too)
        select(JobInput.job_id, File.name)
        .join(File, File.id == JobInput.file_id)
        .join(Job, Job.id == JobInput.job_id)
        .where(File.job_id == job.id, Job.state.in_([s.value for s in JobState if not s.terminal]))
    ).first()
    if busy:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"job {job_id}'s output {busy[1]} is an input of unfinished job {busy[0]}")
    ops.delete_files(session, request.app.state.storage, list(session.scalars(select(File).where(File.job_id == job.id))))
    session.delete(job)


@router.get("/jobs/{job_id}/log")
def job_log(
    job_id: str, session: SessionDep, user: UserDep, after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000
) -> LogOut:
    """Log lines with id > ``after`` (poll with the returned ``next_after``)."""
    _own_job(session, user, job_id)
    rows = session.scalars(
        select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after).order_by(JobLog.id).limit(limit)
    ).all()
    return LogOut(lines=[LogLine(id=r.id, t=r.created_at, line=r.line) for r in rows], next_after=rows[-1].id if rows else after)


@router.get("/jobs/{job_id}/outputs")
def job_outputs(job_id: str, request: Request, session: SessionDep, user: UserDep) -> list[OutputOut]:
    """The job's uploaded outputs and logs, each with a signed download URL."""
    _own_job(session, user, job_id)
    files = session.scalars(select(File).where(File.job_id == job_id, File.state == "ready").order_by(File.name))
    ttl = request.app.state.settings.url_ttl_s
    return [OutputOut(**FileOut.model_validate(f).model_dump(), url=signed_download(request, f), expires_in_s=ttl)
            for f in files]
