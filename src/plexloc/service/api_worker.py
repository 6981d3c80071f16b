"""The worker API (``/worker/v1``): pull a job, ping it, fetch its inputs, upload its outputs, finish it.

A worker reaches a job's files only while it holds the job (its id on the job, state assigned or
running, lease unexpired); otherwise 403. Requests about a job may carry the header ``X-Plexloc-Attempt``
with the attempt number the claim returned (plexloc's worker always sends it): a request from an earlier attempt
(a process of the same worker whose lease lapsed before the job was claimed again) is then refused with 403 too.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from sqlalchemy import select

from plexloc.service import jobs as ops
from plexloc.service.api_user import check_size, signed_download, signed_upload
from plexloc.service.db import File, Job, JobInput, new_id
from plexloc.service.deps import SessionDep, WorkerDep
from plexloc.service.schemas import (
    APPS_HEADER,
    ATTEMPT_HEADER,
    FileOut,
    FinishIn,
    InputFile,
    JobSpec,
    OutputCreate,
    PingIn,
    PingOut,
    PullIn,
    UploadOut,
    UrlOut,
)
from plexloc.service.states import IllegalTransition, JobState
from plexloc.service.words import CLAIMED

log = logging.getLogger("plexloc.service")
router = APIRouter(prefix="/worker/v1", tags=["worker"])


#: the attempt number of the claim a request belongs to (``JobSpec.attempt``); absent: not checked
AttemptDep = Annotated[int | None, Header(alias=ATTEMPT_HEADER, ge=1, description="the claim's attempt number")]


def _held_job(session, worker, job_id: str, attempt: int | None) -> Job:
    job = session.get(Job, job_id, with_for_update=True)
    try:
        return ops.held(job, worker, attempt=attempt)
    except ops.NotHeld as err:
        why = f" ({err.reason})" if err.reason else ""
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"worker {worker.name} does not hold job {job_id}{why}") from None


@router.get("/applications")
def applications(request: Request, response: Response, worker: WorkerDep) -> list[dict[str, Any]]:
    registry = request.app.state.registry
    response.headers[APPS_HEADER] = registry.tag  # what the worker's list is read under
    return [app.model_dump(by_alias=True) for app in registry.apps.values()]


@router.post("/jobs/pull", response_model=JobSpec, responses={204: {"description": "nothing to do"}})
def pull(body: PullIn, request: Request, response: Response, session: SessionDep, worker: WorkerDep) -> JobSpec | Response:
    """Claim the next job this worker can run (atomic, with a lease). 204 when there is none. Either answer names the
    registry (:data:`APPS_HEADER`): a worker whose list of what it can run was read under another reads it again."""
    state = request.app.state
    registry = state.registry
    response.headers[APPS_HEADER] = registry.tag
    if body.can_run == "*":
        can_run = [
            (a.name, v, e) for a in registry.apps.values() for v, ver in a.versions.items() for e in ver.entry_points
        ]
    else:
        can_run = [(r.application, r.version, r.entry_point) for r in body.can_run]
    # an entry point with a container image needs a runtime on the worker (podman, docker, apptainer)
    can_run = [
        t for t in can_run
        if t[0] in registry.apps and t[1] in registry.apps[t[0]].versions
        and t[2] in registry.apps[t[0]].versions[t[1]].entry_points
        and (registry.apps[t[0]].versions[t[1]].entry_points[t[2]].image is None or body.runtimes)
    ]
    worker.hardware = body.hardware.model_dump()
    offered = sorted([list(t) for t in can_run])
    if worker.can_run != offered:  # what it runs: a queued job's note says when no worker present has its program
        worker.can_run = offered
    worker.last_seen = time.time()
    deadline = time.monotonic() + state.settings.pull_wait_s
    while True:
        job = ops.claim(
            session, worker, can_run=can_run, hardware=body.hardware, lease_s=state.settings.lease_s, min_age_s=body.min_job_age_s
        )
        if job is not None or time.monotonic() >= deadline:
            break
        session.commit()
        time.sleep(0.2)
    if job is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={APPS_HEADER: registry.tag})
    ops.add_log(session, job, [f"{CLAIMED}{worker.name} (attempt {job.attempts})"])  # where the attempt's warnings start
    # the server's log says which worker took which job (the pulls themselves are left out of the request log)
    log.info("job %s (%s %s %s) claimed by worker %s (attempt %d)", job.id, job.application, job.version,
             job.entry_point, worker.name, job.attempts)
    ep = registry.apps[job.application].versions[job.version].entry_points[job.entry_point]
    inputs = []
    for ji in job.inputs:
        f = session.get(File, ji.file_id)
        inputs.append(
            InputFile(slot=ji.slot, position=ji.position, file_id=f.id, name=f.name, size=f.size, sha256=f.sha256,
                      url=signed_download(request, f))
        )
    return JobSpec(
        job_id=job.id,
        application=job.application,
        version=job.version,
        entry_point=job.entry_point,
        spec=ep.model_dump(by_alias=True),
        config=job.config,
        hardware=job.hardware,
        timeout_s=job.timeout_s,
        lease_s=state.settings.lease_s,
        attempt=job.attempts,
        inputs=inputs,
    )


@router.post("/jobs/{job_id}/ping")
def ping(job_id: str, body: PingIn, request: Request, session: SessionDep, worker: WorkerDep, attempt: AttemptDep = None) -> PingOut:
    """Renew the lease and report progress, stage and log lines; ``cancel`` tells the worker to stop."""
    job = _held_job(session, worker, job_id, attempt)
    cancel = ops.ping(
        session, job, worker, lease_s=request.app.state.settings.lease_s, progress=body.progress, stage=body.stage, lines=body.log,
        attempt=attempt,
    )
    return PingOut(cancel=cancel, lease_expires_at=job.lease_expires_at)


@router.get("/jobs/{job_id}/files/{file_id}/url")
def input_url(job_id: str, file_id: str, request: Request, session: SessionDep, worker: WorkerDep,
              attempt: AttemptDep = None) -> UrlOut:
    """A fresh download URL for one input of a job this worker holds."""
    job = _held_job(session, worker, job_id, attempt)
    if session.scalar(select(JobInput).where(JobInput.job_id == job.id, JobInput.file_id == file_id)) is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"file {file_id} is not an input of job {job_id}")
    return UrlOut(url=signed_download(request, session.get(File, file_id)), expires_in_s=request.app.state.settings.url_ttl_s)


@router.post("/jobs/{job_id}/outputs", status_code=201)
def create_output(job_id: str, body: OutputCreate, request: Request, session: SessionDep, worker: WorkerDep,
                  attempt: AttemptDep = None) -> UploadOut:
    """Register an output file of the job (in its user's space) and get its upload URL."""
    job = _held_job(session, worker, job_id, attempt)
    ops.check_file_name(body.name, allow_dirs=True)
    check_size(request, body.size, body.name, job_id=job.id)
    # one file per output name: an earlier attempt's (whose lease lapsed) or an upload begun again is replaced,
    # so that a later job, and the user's download, get this attempt's file
    same = session.scalars(select(File).where(File.job_id == job.id, File.name == body.name)).all()
    other = next((f for f in same if f.kind != body.kind), None)
    if other is not None:  # another file of the job (an application's own log.txt and the worker's log): not replaced
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"name: job {job.id} already has a file {body.name!r} of kind {other.kind!r}; a {body.kind!r} "
                            "file does not replace it: give it another name")
    ops.delete_files(session, request.app.state.storage, list(same))
    fid = new_id()
    f = File(
        id=fid, user_id=job.user_id, name=body.name, size=body.size, sha256=body.sha256, kind=body.kind,
        job_id=job.id, storage_key=f"u/{job.user_id}/{fid}",
    )
    session.add(f)
    session.flush()
    return signed_upload(request, f)


@router.post("/jobs/{job_id}/outputs/{file_id}/upload-url")
def renew_output_url(job_id: str, file_id: str, request: Request, session: SessionDep, worker: WorkerDep,
                     attempt: AttemptDep = None) -> UploadOut:
    """A fresh upload URL for an output still uploading (resume after an expired URL or an outage)."""
    job = _held_job(session, worker, job_id, attempt)
    f = session.get(File, file_id)
    if f is None or f.job_id != job.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"file {file_id} is not an output of job {job_id}")
    if f.state != "pending":
        raise HTTPException(status.HTTP_409_CONFLICT, f"file {file_id} is already complete")
    return signed_upload(request, f)


@router.post("/jobs/{job_id}/outputs/{file_id}/complete")
def complete_output(job_id: str, file_id: str, request: Request, session: SessionDep, worker: WorkerDep,
                    attempt: AttemptDep = None) -> FileOut:
    job = _held_job(session, worker, job_id, attempt)
    f = session.get(File, file_id)
    if f is None or f.job_id != job.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"file {file_id} is not an output of job {job_id}")
    if f.state == "pending":
        f.sha256 = request.app.state.storage.finalize(f.storage_key, size=f.size, sha256=f.sha256)
        f.state = "ready"
    return FileOut.model_validate(f)


@router.post("/jobs/{job_id}/finish")
def finish(job_id: str, body: FinishIn, session: SessionDep, worker: WorkerDep, attempt: AttemptDep = None) -> dict[str, str]:
    """End the job. 409 (naming the job and its state) for an end the job cannot take: any end but ``cancelled`` of a
    job its user cancelled while it ran, and any end of a job this worker's attempt held that is over already."""
    job = session.get(Job, job_id, with_for_update=True)
    if (job is not None and job.worker_id == worker.id and JobState(job.state).terminal
            and (attempt is None or attempt == job.attempts)):
        raise IllegalTransition(job.id, JobState(job.state), JobState(body.state))
    job = _held_job(session, worker, job_id, attempt)
    ops.finish(
        session, job, worker, state=body.state, error=body.error, cpu_seconds=body.cpu_seconds,
        gpu_seconds=body.gpu_seconds, lines=body.log, attempt=attempt,
    )
    # how it ended, in the server's log: a job failed by the store (full) or by its worker was seen only by its user
    (log.warning if job.state == "failed" else log.info)(
        "job %s %s on worker %s%s", job.id, job.state, worker.name, f": {job.error}" if job.error else "")
    return {"job_id": job.id, "state": job.state}
