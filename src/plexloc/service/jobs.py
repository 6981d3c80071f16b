"""Job operations on the database (the queue): submit, claim, start, ping, finish, cancel, re-run, sweep.

HTTP-free, so that the routers stay thin and the rules are tested directly. Every state change goes
through :func:`set_state`, which checks it against :mod:`plexloc.service.states`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import case, func, select, tuple_, update
from sqlalchemy.orm import Session

from plexloc.errors import InputError
from plexloc.service.apps import EntryPoint, Hardware, Registry
from plexloc.service.db import File, Job, JobInput, JobLog, Outbox, User, Worker, now
from plexloc.service.states import CancelRequested, IllegalTransition, JobState, check_transition

MAX_LOG_LINE = 4000
MAX_LOG_LINES_PER_PING = 1000
_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._\-+()\[\]]{0,200}")  # fullmatch: "$" also matched before a final newline


class NotHeld(Exception):
    """The worker does not hold this job (never did, lease lapsed, the job is over, or the request came from an
    earlier attempt of it)."""

    def __init__(self, job_id: str, reason: str = "") -> None:
        super().__init__(f"job {job_id}" + (f": {reason}" if reason else ""))
        self.job_id, self.reason = job_id, reason


def check_file_name(name: str, *, allow_dirs: bool = False) -> str:
    """A file name safe to use as a path part (``a/b`` with ``allow_dirs``); else :class:`InputError`."""
    parts = name.split("/") if allow_dirs else [name]
    if not name or any(not _SAFE_PART.fullmatch(p) or p in (".", "..") or ".." in p for p in parts):
        raise InputError(
            f"file name {name!r} is not allowed (letters, digits, space and ._-+()[] only; no path)", source="name"
        )
    return name


def set_state(session: Session, job: Job, target: JobState | str, *, at: float | None = None, error: str | None = None) -> None:
    """Move ``job`` to ``target`` (checked); stamps times, drops the lease on leaving a held state and
    queues a notification on reaching a terminal one."""
    target = check_transition(job.id, job.state, target)
    at = now() if at is None else at
    job.state = target.value
    job.updated_at = at
    if error is not None:
        job.error = clean_text(error)
    if target is JobState.running and job.started_at is None:
        job.started_at = at
    if not target.held:
        job.lease_expires_at = None
        job.stage = None
    if target is JobState.queued:
        job.worker_id = None
        job.progress = 0.0
    if target.terminal:
        job.finished_at = at
        job.waiting = False
        if target is JobState.succeeded:
            job.progress = 1.0
        _release_dependents(session, job, target, at=at)
        user = session.get(User, job.user_id)
        if user is not None and user.email:
            from plexloc.service.words import job_warnings, job_words, service_flags

            # a job that succeeded with warnings says so (they were only in its log); its error and warnings in the
            # service's words, as plexloc status says them ("--input camera=FILE", not its program's "--camera")
            words = job_words(registry_of(session), job)
            n = (job.warning_count or 0) if target is JobState.succeeded else 0
            said = "".join(f"\n- {service_flags(w, **words)}" for w in job_warnings(session, job.id)) if n else ""
            error = service_flags(job.error, **words)
            session.add(
                Outbox(
                    recipient=user.email,
                    subject=f"plexloc job {job.id} {target.value}" + (f" with {n} warning{'s' * (n != 1)}" if n else ""),
                    body=f"Job {job.id} ({job.application} {job.version} {job.entry_point}) {target.value}."
                    + (f"\n\n{error}" if error else "")
                    + (f"\n\nIts program warned {n} time{'s' * (n != 1)} (plexloc status {job.id} --log has them "
                       f"all):{said}" if n else ""),
                )
            )


def registry_of(session: Session) -> Registry | None:
    """The server's registry of applications, as its sessions carry it (``session.info["registry"]``, a callable:
    :func:`plexloc.service.app.create_app`); None for a session opened without it (``plexloc admin``, a test)."""
    get = session.info.get("registry")
    return get() if callable(get) else get


def _release_dependents(session: Session, job: Job, target: JobState, *, at: float) -> None:
    """Pipelines: hand ``job``'s outputs to the jobs waiting for them, or fail those jobs."""
    refs = session.scalars(select(JobInput).where(JobInput.source_job_id == job.id, JobInput.file_id.is_(None))).all()
    touched: dict[str, Job] = {}
    for ji in refs:
        dep = session.get(Job, ji.job_id)
        if dep is None or JobState(dep.state).terminal:
            continue
        touched[dep.id] = dep
        if target is not JobState.succeeded:
            set_state(session, dep, JobState.failed, at=at, error=f"input {ji.slot}: job {job.id} {target.value}")
            continue
        f = session.scalar(  # the newest, should an earlier attempt have left one of that name
            select(File).where(File.job_id == job.id, File.name == ji.source_name, File.state == "ready")
            .order_by(File.created_at.desc()).limit(1)
        )
        if f is None:
            set_state(session, dep, JobState.failed, at=at, error=f"input {ji.slot}: job {job.id} has no output {ji.source_name!r}")
        elif (lacks := _columns_lacking(session, dep, ji.slot, f)) is not None:
            set_state(session, dep, JobState.failed, at=at, error=f"input {ji.slot}: job {job.id}'s output {lacks}")
        else:
            ji.file_id = f.id
    session.flush()
    for dep in touched.values():
        if dep.state == JobState.queued.value and not any(x.file_id is None for x in dep.inputs):
            dep.waiting = False
            dep.updated_at = at


def _columns_lacking(session: Session, dep: Job, slot: str, f: File) -> str | None:
    """What ``f`` (a CSV output handed to ``dep``'s input ``slot``) lacks of the columns that slot reads, said as the
    submission's check says it; None when it has them, or they cannot be known here (a session without the server's
    registry and store, a slot without ``columns``). The check at submission knew only the columns a producer
    declares: an output of one that declares none went to a job that then failed on its worker (COMET's KeyError)."""
    registry, get_storage = registry_of(session), session.info.get("storage")
    storage = get_storage() if callable(get_storage) else get_storage
    if registry is None or storage is None or not registry.offers(dep.application, dep.version, dep.entry_point):
        return None
    spec = registry.apps[dep.application].versions[dep.version].entry_points[dep.entry_point].inputs.get(slot)
    if spec is None or not spec.columns or not f.name.lower().endswith(".csv"):
        return None
    try:
        found = csv_columns_missing(storage, f, spec.columns)
    except Exception:  # a store that cannot read it now: the job's program finds out, as before
        return None
    if found is None:
        return None
    missing, header = found
    has = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    return (f"{f.name} lacks the column(s) {', '.join(map(repr, missing))} that {dep.application} {dep.entry_point} "
            f"reads (its header: {has or 'empty'})" + (f"; {spec.columns_hint}" if spec.columns_hint else ""))


def clean_text(text: str) -> str:
    """``text`` without NUL characters (U+FFFD instead): PostgreSQL's text columns refuse them, and a job printing
    binary garbage must not make its pings and its finish fail (the lease lost, the job retried for nothing)."""
    return text.replace("\x00", "\ufffd")


def add_log(session: Session, job: Job, lines: list[str], *, at: float | None = None) -> None:
    """Store ``lines`` (at most :data:`MAX_LOG_LINES_PER_PING`, each cut at :data:`MAX_LOG_LINE` characters); what is
    left out is said in the log itself, never dropped silently."""
    from plexloc.service.words import warning_text

    at = now() if at is None else at
    for line in lines[:MAX_LOG_LINES_PER_PING]:
        line = clean_text(line)
        if warning_text(line) is not None:  # counted as stored: the list of jobs reads the count, not every log
            job.warning_count = (job.warning_count or 0) + 1
        if len(line) > MAX_LOG_LINE:
            line = line[:MAX_LOG_LINE] + f" [... {len(line) - MAX_LOG_LINE} characters cut]"
        session.add(JobLog(job_id=job.id, line=line, created_at=at))
    if len(lines) > MAX_LOG_LINES_PER_PING:
        session.add(JobLog(job_id=job.id, created_at=at, line=(
            f"[service] {len(lines) - MAX_LOG_LINES_PER_PING} more log line(s) of this request not stored (at most "
            f"{MAX_LOG_LINES_PER_PING} per request); the job's log.txt output has them all")))


# -- users ------------------------------------------------------------------------------------------
@dataclass
class JobRequest:
    application: str
    version: str | None = None
    entry_point: str | None = None
    config: dict[str, Any] | None = None
    inputs: dict[str, list[str]] | None = None  # slot -> file ids or "job:JOB_ID/OUTPUT_NAME"
    hardware: dict[str, int] | None = None  # overrides of the entry point's defaults
    timeout_s: float | None = None
    priority: int = 0


def submit(session: Session, user: User, registry: Registry, req: JobRequest, *, max_attempts: int = 3) -> Job:
    """Validate and queue a job; :class:`InputError` names the bad field."""
    version, entry_name, ep = registry.resolve(req.application, req.version, req.entry_point)
    config = ep.validate_config(req.config or {})
    inputs = _check_inputs(session, user, ep, req.inputs or {})
    try:
        hardware = Hardware(**{**ep.hardware.model_dump(), **(req.hardware or {})})
    except ValidationError as err:  # the field and the value named, as for the configuration's parameters
        e = err.errors()[0]
        allowed = f"; allowed: {', '.join(Hardware.model_fields)}" if e["type"] == "extra_forbidden" else ""
        raise InputError(f"{e['msg']} (got {e.get('input')!r}){allowed}",
                         source="hardware." + ".".join(str(x) for x in e["loc"])) from None
    if hardware.gpus == 0:
        # a GPU entry point run on a CPU ({"gpus": 0}) needs no GPU memory: its default (8000 MB for plexloc-train) kept
        # would match no CPU worker (0 MB), and the job would wait, queued, for ever
        hardware = hardware.model_copy(update={"gpu_memory_mb": 0})
    if req.timeout_s is not None and req.timeout_s <= 0:
        raise InputError(f"must be > 0, got {req.timeout_s}", source="timeout_s")
    job = Job(
        user_id=user.id,
        application=req.application,
        version=version,
        entry_point=entry_name,
        config=config,
        hardware=hardware.model_dump(),
        gpus=hardware.gpus,
        timeout_s=float(req.timeout_s or ep.timeout_s),
        priority=int(req.priority),
        group=user.group,
        state=JobState.queued.value,
        max_attempts=max_attempts,
    )
    session.add(job)
    for slot, items in inputs.items():
        for pos, (fid, src, name) in enumerate(items):
            job.inputs.append(JobInput(slot=slot, position=pos, file_id=fid, source_job_id=src, source_name=name))
    job.waiting = any(fid is None for items in inputs.values() for fid, _, _ in items)
    return job


#: the first bytes of a TIFF (little or big endian) and of a BigTIFF
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def check_tiff_inputs(session: Session, storage, job: Job) -> None:
    """:class:`InputError` (naming the slot, the file and its first bytes) for an uploaded input named ``.tif`` or
    ``.tiff`` that is not a TIFF (a file renamed, an empty or cut-off file), or whose header names its first image
    directory past its end (damaged, cut off): refused at submission, not found by the
    program on a worker after the job waited in the queue and its inputs were fetched. Outputs of other jobs (``job:``
    references) are not read."""
    for ji in job.inputs:
        f = session.get(File, ji.file_id) if ji.file_id else None
        if f is None or not f.name.lower().endswith((".tif", ".tiff")):
            continue
        head = storage.head(f.storage_key, 16) if f.size else b""
        if head[:4] not in TIFF_MAGIC:
            what = f"its first bytes are {head[:4]!r}" if head else "it is empty"
            raise InputError(f"file {f.id} ({f.name}) is not a TIFF: {what}, where a TIFF starts with II*\\0 or "
                             "MM\\0*; upload the movie itself", source=f"inputs.{ji.slot}")
        # where its first image directory lies (bytes 4-8, BigTIFF 8-16): a TIFF header followed by anything else (a
        # damaged file, one cut off before the directory that writers such as libtiff put after the pixels) passed,
        # and the job failed on a worker after its wait in the queue
        big = head[2:4] in (b"+\x00", b"\x00+")
        field = head[8:16] if big else head[4:8]
        first = int.from_bytes(field, "little" if head[:2] == b"II" else "big")
        if len(field) == (8 if big else 4) and first >= f.size:
            raise InputError(f"file {f.id} ({f.name}) is a damaged TIFF: its header puts the first image directory at "
                             f"byte {first}, past the file's end ({f.size} bytes); upload the whole movie again (a copy "
                             "that was cut off, or made while the movie was still being written)", source=f"inputs.{ji.slot}")


def check_input_files(session: Session, storage, registry: Registry, job: Job) -> None:
    """The checks that refuse a job before it is queued, of the files it has now (:class:`InputError`, a 422 naming
    the slot, the file and the field): a ``.tif`` that is not a TIFF (:func:`check_tiff_inputs`), a configuration or
    camera YAML that cannot load on the worker (:func:`plexloc.service.config_inputs.check_config_inputs`). At
    submission and at a re-run alike: a re-run's files are those of a job that may have been accepted under other
    rules (an older server, before a slot had its check) or without them (an output of another job, which came only
    after its submission), and would be queued only to fail on a worker."""
    from plexloc.service.config_inputs import check_config_inputs

    check_tiff_inputs(session, storage, job)
    _, _, ep = registry.resolve(job.application, job.version, job.entry_point)
    check_config_inputs(session, storage, job, ep)
    check_csv_columns(session, storage, job, ep, registry=registry)


#: bytes of a CSV input read for its header line
CSV_HEAD_BYTES = 65536


def csv_columns_missing(storage, f: File, columns: list[str]) -> tuple[list[str], list[str]] | None:
    """``(missing, header)`` when the CSV file ``f`` lacks some of ``columns`` in its header line; None when it has
    them all, or its header cannot be read here (no line end in its first :data:`CSV_HEAD_BYTES`, not text)."""
    import csv

    head = storage.head(f.storage_key, min(f.size, CSV_HEAD_BYTES)) if f.size else b""
    first, sep, _ = head.partition(b"\n")
    if not sep and len(head) >= CSV_HEAD_BYTES:
        return None
    try:
        line = first.decode("utf-8-sig").rstrip("\r")
        # the separator of ',', ';' and a tab that splits the header into most (',' on a tie), as plexloc's tables
        # are read (plexloc.io.tables): a table saved with ';' (a spreadsheet's) was refused, every column "lacking"
        header = max((next(csv.reader([line], delimiter=sep, skipinitialspace=True), []) for sep in (",", ";", "\t")),
                     key=len)
    except (UnicodeDecodeError, csv.Error):
        return None
    header = [h.strip() for h in header]
    missing = [c for c in columns if c not in header]
    return (missing, header) if missing else None


def check_csv_columns(session: Session, storage, job: Job, ep: EntryPoint, *, registry: Registry | None = None) -> None:
    """:class:`InputError` (naming the slot, the file, the columns missing, those it has, and the slot's hint) for an
    uploaded ``.csv`` input of a slot with ``columns`` whose header lacks some of them; with ``registry``, also for
    another job's output not made yet (``job:ID/locs.csv``) whose producing entry point declares its columns
    (:attr:`plexloc.service.apps.Output.columns`) without some of them (it waited for its source, then failed on a
    worker: COMET given a fit's plexloc table)."""
    for ji in job.inputs:
        spec = ep.inputs.get(ji.slot)
        if (spec is not None and spec.columns and ji.file_id is None and ji.source_job_id and registry is not None
                and (ji.source_name or "").lower().endswith(".csv")):
            _check_declared_columns(session, registry, job, ji, spec)
            continue
        f = session.get(File, ji.file_id) if ji.file_id else None
        if spec is None or not spec.columns or f is None or not f.name.lower().endswith(".csv"):
            continue
        found = csv_columns_missing(storage, f, spec.columns)
        if found is not None:
            missing, header = found
            has = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
            raise InputError(f"file {f.id} ({f.name}) lacks the column(s) {', '.join(map(repr, missing))} that "
                             f"{job.application} {job.entry_point} reads (its header: {has or 'empty'})"
                             + (f"; {spec.columns_hint}" if spec.columns_hint else ""), source=f"inputs.{ji.slot}")


def _check_declared_columns(session: Session, registry: Registry, job: Job, ji: JobInput, spec) -> None:
    """:func:`check_csv_columns` of a pipeline input not made yet, against the columns its producing entry point
    declares for the output (the first of its outputs whose glob matches the name); nothing said where it declares
    none, or the server no longer offers it."""
    from fnmatch import fnmatchcase

    src = session.get(Job, ji.source_job_id)
    if src is None or not registry.offers(src.application, src.version, src.entry_point):
        return
    src_ep = registry.apps[src.application].versions[src.version].entry_points[src.entry_point]
    out = next((o for o in src_ep.outputs if fnmatchcase(ji.source_name, o.path)), None)
    if out is None or not out.columns:
        return
    # a column the output may have besides those it declares (a plexloc table's bg, prob, sigma_x_nm) is not known
    # missing here: a lab's application reading one was refused though plexloc fit writes it
    missing = [c for c in spec.columns if c not in out.columns
               and not (out.other_columns and re.fullmatch(out.other_columns, c))]
    if missing:
        raise InputError(f"job:{src.id}/{ji.source_name} (an output of {src.application} {src.entry_point}, whose "
                         f"columns are {', '.join(out.columns)}) lacks the column(s) {', '.join(map(repr, missing))} "
                         f"that {job.application} {job.entry_point} reads"
                         + (f"; {spec.columns_hint}" if spec.columns_hint else ""), source=f"inputs.{ji.slot}")


Ref = tuple[str | None, str | None, str | None]  # (file id, source job id, source output name)


def _reference(session: Session, user: User, ref: str, *, field: str) -> Ref:
    """``job:ID/NAME``: output NAME of the user's job ID (now if it succeeded, else once it does)."""
    job_id, sep, name = ref[4:].partition("/")
    src = session.get(Job, job_id)
    if not sep or src is None or src.user_id != user.id:
        raise InputError(f"no job output {ref!r} (expected job:JOB_ID/OUTPUT_NAME of one of your jobs)", source=field)
    check_file_name(name, allow_dirs=True)
    state = JobState(src.state)
    if state is JobState.succeeded:
        f = session.scalar(select(File).where(File.job_id == src.id, File.name == name, File.state == "ready")
                           .order_by(File.created_at.desc()).limit(1))
        if f is None:
            raise InputError(f"job {src.id} has no output {name!r}", source=field)
        return f.id, None, None
    if state.terminal:
        raise InputError(f"job {src.id} is {state.value}: its outputs will not come", source=field)
    return None, src.id, name


def _check_inputs(session: Session, user: User, ep: EntryPoint, inputs: dict[str, list[str]]) -> dict[str, list[Ref]]:
    """Each slot's files: ids of the user's ready files, or references to other jobs' outputs."""
    for slot in inputs:
        if slot not in ep.inputs:
            raise InputError(f"no such input slot (have {sorted(ep.inputs)})", source=f"inputs.{slot}")
    out: dict[str, list[Ref]] = {}
    names: dict[str, list[tuple[str, str]]] = {}  # worker folder -> (slot, file name) of each input
    for slot, spec in ep.inputs.items():
        ids = inputs.get(slot) or []
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            if spec.required:
                raise InputError("a file is required", source=f"inputs.{slot}")
            continue
        if len(ids) > 1 and not spec.multiple:
            raise InputError(f"takes one file, got {len(ids)}", source=f"inputs.{slot}")
        items: list[Ref] = []
        for fid in ids:
            if fid.startswith("job:"):
                item = _reference(session, user, fid, field=f"inputs.{slot}")
                name = fid.partition("/")[2]
            else:
                f = session.get(File, fid)
                if f is None or f.user_id != user.id:
                    raise InputError(f"no file {fid!r}", source=f"inputs.{slot}")
                if f.state != "ready":
                    raise InputError(f"file {fid} ({f.name}) is not completely uploaded", source=f"inputs.{slot}")
                item, name = (f.id, None, None), f.name
            if spec.suffixes and not any(name.lower().endswith(s.lower()) for s in spec.suffixes):
                raise InputError(f"file {name!r} must end in one of {spec.suffixes}", source=f"inputs.{slot}")
            items.append(item)
            names.setdefault(ep.input_folder(slot), []).append((slot, name))
        out[slot] = items
    shared = ep.shared_input_folders()
    for folder in shared:  # files a configuration names keep their names beside it: two of one name cannot
        seen: dict[str, str] = {}
        for slot, name in names.get(folder, []):
            if name in seen:
                raise InputError(f"two files named {name!r} (slots {seen[name]!r} and {slot!r}) would share the "
                                 f"folder of slot {folder!r} on the worker", source=f"inputs.{slot}")
            seen[name] = slot
    return out


def cancel(session: Session, job: Job) -> None:
    """Queued: cancelled at once. Held: the worker is told at its next ping. Over: 409."""
    state = JobState(job.state)
    if state is JobState.queued:
        set_state(session, job, JobState.cancelled, error="cancelled by the user")
    elif state.held:
        job.cancel_requested = True
        job.updated_at = now()
    else:
        raise IllegalTransition(job.id, state, JobState.cancelled)


def rerun(session: Session, user: User, registry: Registry, job: Job) -> Job:
    """A new job with the same application, configuration, inputs and hardware (its files are checked as at
    submission by :func:`check_input_files`, which the caller runs once the new job is flushed)."""
    inputs: dict[str, list[str]] = {}
    for ji in job.inputs:
        if ji.file_id is None and ji.source_job_id is None:  # an upload deleted since: not re-run without it
            raise InputError(f"file {ji.source_name} (one of this job's inputs) was deleted after the job ran; a "
                             "re-run needs every file the job had: submit a new job with it uploaded again",
                             source=f"inputs.{ji.slot}")
        inputs.setdefault(ji.slot, []).append(input_ref(ji))
    new = submit(
        session,
        user,
        registry,
        JobRequest(
            application=job.application,
            version=job.version,
            entry_point=job.entry_point,
            config=job.config,
            inputs=inputs,
            hardware=job.hardware,
            timeout_s=job.timeout_s,
            priority=job.priority,
        ),
        max_attempts=job.max_attempts,
    )
    new.rerun_of = job.id
    return new


# -- workers ---------------------------------------------------------------------------------------
def claim(
    session: Session,
    worker: Worker,
    *,
    can_run: list[tuple[str, str, str]],
    hardware: Hardware,
    lease_s: float,
    min_age_s: float = 0.0,
    at: float | None = None,
    batch: int = 20,
) -> Job | None:
    """Atomically take the next queued job this worker can run: its own group's first, then jobs it
    did not drop before, then those of the users with the fewest jobs held by workers now (fair share), then by
    priority and age. PostgreSQL skips rows other claims have locked; any database is protected by
    the conditional update (``... WHERE state = 'queued'``), so two workers never hold one job."""
    at = now() if at is None else at
    if not can_run:
        return None
    # fair share: the jobs of the users with the fewest jobs held by workers now go first (one user's batch of 500 jobs,
    # or jobs submitted with a huge priority, no longer holds every worker until it is done); a small table (users with
    # jobs running), so an expression of constants rather than a subquery per candidate row
    held_by_user = dict(session.execute(
        select(Job.user_id, func.count(Job.id))
        .where(Job.state.in_([JobState.assigned.value, JobState.running.value])).group_by(Job.user_id)).all())
    fair = [case(held_by_user, value=Job.user_id, else_=0)] if held_by_user else []
    other_worker = case((Job.last_worker_id == worker.id, 1), else_=0)  # a job this worker dropped: preferably another
    if worker.group:
        order = [case((Job.group == worker.group, 0), else_=1), other_worker, *fair, Job.priority.desc()]
    else:
        order = [*fair, Job.priority.desc(), other_worker]
    query = (
        select(Job)
        .where(
            Job.state == JobState.queued.value,
            Job.waiting.is_(False),
            Job.gpus <= hardware.gpus,
            Job.created_at <= at - min_age_s,
            tuple_(Job.application, Job.version, Job.entry_point).in_(can_run),
        )
        .order_by(
            *order,
            Job.created_at,
        )
        .with_for_update(skip_locked=True)
    )
    for job in _pages(session, query, batch):  # page on: jobs too big for this worker must not hide the rest
        need = job.hardware or {}
        keys = ("cpus", "memory_mb", "gpu_memory_mb") if job.gpus > 0 else ("cpus", "memory_mb")  # no GPU: no GPU memory
        if any(need.get(k, 0) > getattr(hardware, k) for k in keys):
            continue
        check_transition(job.id, job.state, JobState.assigned)
        done = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.state == JobState.queued.value)
            .values(
                state=JobState.assigned.value,
                worker_id=worker.id,
                lease_expires_at=at + lease_s,
                run_started_at=None,
                attempts=Job.attempts + 1,
                warning_count=0,  # this attempt's warnings (a lapsed one's were counted with the one that succeeded)
                stage="downloading",
                updated_at=at,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:
            session.refresh(job)
            return job
    return None


#: workers that pulled within this many seconds count as present for :func:`queue_note`
WORKER_SEEN_S = 600.0


def _fits(need: dict, gpus: int, have: dict) -> bool:
    keys = ("cpus", "memory_mb", "gpus", "gpu_memory_mb") if gpus > 0 else ("cpus", "memory_mb")
    return all(int(need.get(k, 0) or 0) <= int(have.get(k, 0) or 0) for k in keys)


def queue_note(session: Session, job: Job, *, at: float | None = None, seen_s: float = WORKER_SEEN_S,
               registry: Registry | None = None) -> str | None:
    """Why the queued ``job`` is not taken, when the server can tell: its application, version or entry point is no
    longer in ``registry`` (the server restarted without it: no worker is offered the job again), no worker pulled
    lately, none of those that did can run its program (``Worker.can_run``, what each offered at its last pull) or
    has the hardware the job asks (a GPU job with CPU workers only waited, queued, without a word), or, for a job
    waiting for its inputs, a source job it waits for is queued so. None when some present worker could take it (one
    whose ``can_run`` is not reported yet is taken to run anything)."""
    if job.state != JobState.queued.value:
        return None
    if registry is not None and not registry.offers(job.application, job.version, job.entry_point):
        return (f"this server no longer offers {job.application} {job.version} {job.entry_point} (its administrator "
                f"removed it): no worker will take this job; end it with plexloc status {job.id} --cancel and submit "
                "again with an application the server has (the web page lists them; GET /api/v1/applications)")
    at = now() if at is None else at
    if job.waiting:
        # a pipeline: it waits for its sources; one that no worker can take holds it for ever (submit --wait on the
        # last job of a chain waited without a word while its first, a GPU training, sat queued on CPU workers)
        for ji in job.inputs:
            src = session.get(Job, ji.source_job_id) if ji.file_id is None and ji.source_job_id else None
            inner = queue_note(session, src, at=at, seen_s=seen_s, registry=registry) if src is not None else None
            if inner:
                return (f"it waits for job {src.id} ({src.application} {src.entry_point}, its input {ji.slot}), which "
                        f"is queued, but {inner}")
        return None
    seen = session.scalars(select(Worker).where(Worker.last_seen.is_not(None), Worker.last_seen >= at - seen_s)).all()
    workers = [w for w in seen if w.active]
    if not workers:
        # workers that asked but are disabled (plexloc admin disable): "no worker has asked" sent their admin looking
        # for a worker that was down
        disabled = [w.name for w in seen if not w.active]
        if disabled:
            return (f"no enabled worker has asked for jobs in the last {seen_s / 60:g} min (disabled by the service's "
                    f"administrator: {', '.join(sorted(disabled)[:5])}; plexloc admin enable worker NAME): the job waits "
                    "until one does")
        return f"no worker has asked for jobs in the last {seen_s / 60:g} min: the job waits until one does"
    key = [job.application, job.version, job.entry_point]
    able = [w for w in workers if w.can_run is None or key in w.can_run]
    if not able:
        # a worker without the job's program (plexloc-train on a worker without torch, comet without comet-smlm, an
        # image without a container runtime) never claims it: the job waited for ever, its note silent
        off = sorted(w.name for w in seen if not w.active and (w.can_run is None or key in w.can_run))
        names = ", ".join(sorted(w.name for w in workers)[:5])
        return (f"no worker seen in the last {seen_s / 60:g} min can run {job.application} {job.version} "
                f"{job.entry_point} ({names}: its program, or what its 'requires:' lists, is not installed there, or "
                "it needs a container runtime the worker lacks): the job waits until a worker that has it asks for "
                "jobs; a worker checks its programs when it starts and every 5 min (one installed is taken within 5 min)"
                + (f"; disabled by the service's administrator: {', '.join(off[:5])} (plexloc admin enable worker "
                   "NAME)" if off else ""))
    workers = able
    need = job.hardware or {}
    if any(_fits(need, job.gpus, w.hardware or {}) for w in workers):
        return None
    ask = ", ".join(f"{need.get(k, 0)} {label}" for k, label in
                    (("gpus", "GPU(s)"), ("gpu_memory_mb", "MB GPU memory"), ("cpus", "CPU(s)"), ("memory_mb", "MB RAM"))
                    if job.gpus > 0 or k not in ("gpus", "gpu_memory_mb"))
    have = "; ".join(f"{w.name}: {(w.hardware or {}).get('gpus', 0)} GPU(s), {(w.hardware or {}).get('cpus', '?')} CPU(s), "
                     f"{(w.hardware or {}).get('memory_mb', '?')} MB RAM" for w in workers[:5])
    return (f"no worker seen in the last {seen_s / 60:g} min has the hardware this job asks ({ask}): {have}"
            f"{_override_hint(need, job.gpus, workers)}")


def _override_hint(need: dict, gpus: int, workers) -> str:
    """How to submit the job again so that one of the present ``workers`` takes it: the override that fits one worker
    (the job's GPUs kept where that worker has them, else none: a GPU application on a CPU; the CPU cores and RAM
    lowered to that worker's), as ``plexloc submit --gpus 0 --cpus N --memory-mb M`` and the API's ``"hardware"``; of
    the workers, the one whose override keeps the GPUs, then changes the fewest keys, then grants the most cores and
    RAM. "" when no override fits any (workers that report no cores or RAM). Each worker on its own: the most cores of
    one worker and the most RAM of another (session 46's hint) fit neither, and a GPU worker short of cores only was
    told to drop the GPU."""
    best: tuple[tuple, dict[str, int]] | None = None
    for w in workers:
        have = w.hardware or {}
        keep_gpu = gpus > 0 and _fits({"gpus": need.get("gpus", gpus), "gpu_memory_mb": need.get("gpu_memory_mb", 0)},
                                      gpus, have)
        override: dict[str, int] = {} if gpus == 0 or keep_gpu else {"gpus": 0}
        for key in ("cpus", "memory_mb"):
            asked, offered = int(need.get(key, 0) or 0), int(have.get(key, 0) or 0)
            if asked > offered:
                if offered <= 0:  # the worker reports none: no count fits it
                    break
                override[key] = offered
        else:
            if override:
                rank = (gpus == 0 or keep_gpu, -len(override), override.get("cpus", int(need.get("cpus", 0) or 0)),
                        override.get("memory_mb", int(need.get("memory_mb", 0) or 0)))
                if best is None or rank > best[0]:
                    best = (rank, override)
    if best is None:
        return ""
    override = best[1]
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in override.items())
    body = ", ".join(f'"{k}": {v}' for k, v in override.items())
    where = "on a CPU" if "gpus" in override else "on these workers"
    return f" ({where}: submit with {flags}, or \"hardware\": {{{body}}})"


def _pages(session: Session, query, batch: int):
    """The rows of ``query``, ``batch`` at a time (only as many pages as the caller reads)."""
    page = 0
    while True:
        rows = session.scalars(query.limit(batch).offset(page * batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        page += 1


def held(job: Job | None, worker: Worker, *, at: float | None = None, attempt: int | None = None) -> Job:
    """``job`` if ``worker`` holds it now (state held, its id, lease unexpired), else :class:`NotHeld`.

    ``attempt`` (the number the claim returned) fences off earlier attempts of the same worker: a process whose
    lease lapsed while another process with the same worker token claimed the job again must not ping, upload or
    finish for the new attempt. ``None`` skips that check (workers that do not send it)."""
    at = now() if at is None else at
    if (
        job is None
        or job.worker_id != worker.id
        or not JobState(job.state).held
        or job.lease_expires_at is None
        or job.lease_expires_at < at
    ):
        raise NotHeld(job.id if job is not None else "?")
    if attempt is not None and attempt != job.attempts:
        raise NotHeld(job.id, f"attempt {attempt} is over (the job is at attempt {job.attempts})")
    return job


def ping(
    session: Session,
    job: Job,
    worker: Worker,
    *,
    lease_s: float,
    progress: float | None = None,
    stage: str | None = None,
    lines: list[str] = (),
    at: float | None = None,
    attempt: int | None = None,
) -> bool:
    """Renew the lease, record progress, stage and log lines; True when the job is to be cancelled."""
    at = now() if at is None else at
    held(job, worker, at=at, attempt=attempt)
    if stage == "running" and job.state == JobState.assigned.value:
        set_state(session, job, JobState.running, at=at)
        job.run_started_at = at  # this attempt's command: what the server-side time limit counts from
    if stage is not None:
        job.stage = stage
    if progress is not None:
        job.progress = min(1.0, max(0.0, float(progress)))
    job.lease_expires_at = at + lease_s
    job.updated_at = at
    worker.last_seen = at
    if lines:
        add_log(session, job, list(lines), at=at)
    return bool(job.cancel_requested)


def finish(
    session: Session,
    job: Job,
    worker: Worker,
    *,
    state: JobState | str,
    error: str | None = None,
    cpu_seconds: float = 0.0,
    gpu_seconds: float = 0.0,
    lines: list[str] = (),
    at: float | None = None,
    attempt: int | None = None,
) -> None:
    """End ``job`` in the terminal ``state`` its worker reports. A job whose user cancelled it ends ``cancelled`` only:
    another end (the worker had not seen the cancel yet) is refused with :class:`CancelRequested`, the job unchanged."""
    at = now() if at is None else at
    held(job, worker, at=at, attempt=attempt)
    state = JobState(state)
    if not state.terminal:
        raise IllegalTransition(job.id, JobState(job.state), state)
    if job.cancel_requested and state is not JobState.cancelled:  # the user's cancel stands: it is not undone
        raise CancelRequested(job.id, JobState(job.state), state)
    if lines:
        add_log(session, job, list(lines), at=at)
    job.cpu_seconds += max(0.0, cpu_seconds)
    job.gpu_seconds += max(0.0, gpu_seconds)
    if state == JobState.succeeded and JobState(job.state) == JobState.assigned:
        # a worker that never said "running" (its one ping lost, or a minimal worker): it did run
        set_state(session, job, JobState.running, at=at)
    set_state(session, job, state, at=at, error=error)


#: ids per IN list of a query: below the 999 bound variables of SQLite before 3.32 (32,766 since; PostgreSQL 65,535)
_IN_CHUNK = 500


def forget_inputs(session: Session, files: list[File]) -> None:
    """The jobs that ``files`` (about to be deleted) fed keep their place in them: the file gone (``file_id`` None), its
    name kept (``source_name``; a pipeline input keeps its source job too). The rows went with the file before (a
    cascade): an ended job's inputs then named fewer files than it ran on, and its re-run ran without the deleted ones
    (one movie of two, without a word) or was refused as if no file had been given. (Only ended jobs: a file that
    feeds a job not ended is not deleted.) The ids go :data:`_IN_CHUNK` to a query: one IN list of them all exceeded
    SQLite's bound-variable limit (999 before SQLite 3.32) when many files were deleted at once."""
    names = {f.id: f.name for f in files}
    ids = list(names)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        for ji in session.scalars(select(JobInput).where(JobInput.file_id.in_(chunk))).all():
            ji.source_name = ji.source_name or names[ji.file_id]
            ji.file_id = None
    if ids:
        session.flush()


def input_ref(ji: JobInput) -> str:
    """How a job's input is shown and re-submitted: its file id; ``job:JOB_ID/NAME`` for another job's output not
    resolved yet (or deleted since); ``deleted:NAME`` for a file deleted after the job ran."""
    if ji.file_id is not None:
        return ji.file_id
    if ji.source_job_id is not None:
        return f"job:{ji.source_job_id}/{ji.source_name}"
    return f"deleted:{ji.source_name}"


def delete_files(session: Session, storage, files: list[File], *, keep_going: bool = False) -> None:
    """Delete ``files``: their rows first (flushed, so that the deletion holds their locks until the transaction ends),
    then their bytes. An upload whose bytes are still arriving asks after each thing it stores whether its file is
    still registered, waiting on those locks (``api_storage._still_registered``): it sees the deletion and removes what
    it stored, or stored it before the bytes are removed here. Bytes removed before the rows, the other way round, an
    upload could store again in between, owned by no file, never deleted. ``keep_going``: bytes a store fails to
    delete (an object store down) are left, unreachable, and the rest goes on; else the error ends the transaction."""
    keys = [f.storage_key for f in files]
    forget_inputs(session, files)
    for f in files:
        session.delete(f)
    session.flush()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:
            if not keep_going:
                raise


def expire_uploads(session: Session, storage, *, max_age_s: float, at: float | None = None) -> list[str]:
    """Delete the user uploads still pending ``max_age_s`` after they were registered (abandoned: their partial data
    would stay forever), and the outputs still pending of jobs that are over (a worker killed or cut off while
    uploading: no worker holds the job any more, so nothing can complete them). Returns the file ids deleted."""
    at = now() if at is None else at
    stale = session.scalars(
        select(File).where(File.state == "pending", File.job_id.is_(None), File.created_at < at - max_age_s)
    ).all()
    stale += session.scalars(
        select(File).join(Job, Job.id == File.job_id)
        .where(File.state == "pending", Job.state.in_([s.value for s in JobState if s.terminal]))
    ).all()
    delete_files(session, storage, stale)
    return [f.id for f in stale]


def renew_leases(session: Session, *, lease_s: float, at: float | None = None) -> int:
    """At the server's start: every held job's lease runs at least ``lease_s`` from now. While the server was down
    (a restart, an upgrade, a reboot of its machine) no worker could ping: without this, the first sweep would take
    every running job from its worker, which is still running it, and retry it from the start (an attempt used up for
    the server's own outage, and after ``max_attempts`` such restarts the job failed). A worker that died meanwhile is
    found one lease later. Returns the number of jobs renewed."""
    at = now() if at is None else at
    done = session.execute(
        update(Job)
        .where(Job.state.in_([JobState.assigned.value, JobState.running.value]), Job.lease_expires_at < at + lease_s)
        .values(lease_expires_at=at + lease_s)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount or 0


#: how long past its ``timeout_s`` a job's command may run before the server ends the job (the worker's own limit
#: stops the command at ``timeout_s``; this is the backstop for a worker that keeps pinging but cannot stop it)
TIMEOUT_GRACE_S = 600.0


def sweep(session: Session, *, at: float | None = None, timeout_grace_s: float = TIMEOUT_GRACE_S,
          storage=None) -> list[tuple[str, str]]:
    """Jobs whose lease lapsed: cancelled if a cancel was asked for, failed when out of attempts,
    else queued again. Jobs whose command has run longer than ``timeout_s + timeout_grace_s`` in this attempt (stage
    ``running``, counted from the ping that started it; downloads and uploads are not limited here: a large upload
    may take hours) fail, not retried, when the worker keeps pinging but never ends them (a command its runtime would
    not kill): the worker's next request is refused and it abandons the job. Safe to run from any number of server processes
    at once (conditional updates). Returns ``(job id, new state)`` pairs.

    With ``storage``, the outputs an attempt whose lease lapsed had uploaded are deleted: that attempt never finished,
    so they are partial (some files, or files of a command cut short); served as the job's results while it waits
    for its next attempt, they would also stay beside that attempt's if it does not write the same files."""
    at = now() if at is None else at
    held_states = [JobState.assigned.value, JobState.running.value]
    stale = session.scalars(
        select(Job)
        .where(Job.state.in_(held_states), Job.lease_expires_at < at)
        .with_for_update(skip_locked=True)
    ).all()
    changed = []
    for job in stale:
        if job.cancel_requested:
            target, error = JobState.cancelled, "cancelled (the worker stopped answering)"
        elif job.attempts >= job.max_attempts:
            target, error = JobState.failed, f"lease lost {job.attempts} times (worker stopped answering)"
        else:
            target, error = JobState.queued, None
        w = session.get(Worker, job.worker_id) if job.worker_id else None
        add_log(session, job, [f"[service] lease of worker {w.name if w else job.worker_id} lapsed after attempt "
                               f"{job.attempts}: -> {target.value}"], at=at)
        job.last_worker_id = job.worker_id  # a retry goes preferably to another worker
        if storage is not None:
            dropped = session.scalars(select(File).where(File.job_id == job.id)).all()
            delete_files(session, storage, dropped, keep_going=True)  # an object store down: the sweep goes on
            if dropped:
                add_log(session, job, [f"[service] {len(dropped)} output(s) of attempt {job.attempts} deleted (it did "
                                       f"not finish): {', '.join(sorted(f.name for f in dropped))}"], at=at)
        set_state(session, job, target, at=at, error=error)
        changed.append((job.id, target.value))
    overdue = session.scalars(
        select(Job)
        .where(Job.state == JobState.running.value, Job.stage == "running", Job.run_started_at.is_not(None),
               Job.run_started_at + Job.timeout_s + timeout_grace_s < at)
        .with_for_update(skip_locked=True)
    ).all()
    for job in overdue:
        target = JobState.cancelled if job.cancel_requested else JobState.failed
        error = (f"running {at - job.run_started_at:.0f} s on worker {job.worker_id} (attempt {job.attempts}), past its time "
                 f"limit of {job.timeout_s:g} s and {timeout_grace_s:g} s of grace: ended by the server")
        add_log(session, job, [f"[service] {error}"], at=at)
        set_state(session, job, target, at=at, error=error)
        changed.append((job.id, target.value))
    return changed
