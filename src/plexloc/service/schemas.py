"""Request and response models of the two APIs (separate create / public shapes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plexloc.service.apps import Hardware

#: the header a worker sends with every request about a job it claimed: ``JobSpec.attempt``, so that the server
#: refuses the requests of an attempt that is over (see :mod:`plexloc.service.api_worker`)
ATTEMPT_HEADER = "X-Plexloc-Attempt"
#: the header of the worker API's answers to ``/applications`` and ``/jobs/pull`` that names the server's registry of
#: applications (:attr:`plexloc.service.apps.Registry.tag`): a worker whose list was read under another reads it again
APPS_HEADER = "X-Plexloc-Applications"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FileCreate(_In):
    name: str = Field(max_length=255)
    size: int = Field(ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class FileOut(_Out):
    id: str
    name: str
    size: int
    sha256: str | None
    kind: str
    state: str
    job_id: str | None
    created_at: float


class UploadOut(BaseModel):
    file: FileOut
    upload_url: str
    expires_in_s: int


class PartsIn(_In):
    part_size: int | None = Field(None, ge=5 * 1024**2, description="bytes per part (default 64 MiB)")


class PartOut(BaseModel):
    number: int
    offset: int
    size: int
    done: bool
    url: str | None  # a presigned PUT for a part not yet stored


class PartsOut(BaseModel):
    part_size: int
    parts: list[PartOut]
    expires_in_s: int


class UrlOut(BaseModel):
    url: str
    expires_in_s: int


class JobCreate(_In):
    application: str
    version: str | None = None
    entry_point: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, list[str]] = Field(
        default_factory=dict, description="slot -> file ids, or job:JOB_ID/OUTPUT_NAME for another job's output (pipeline)"
    )
    hardware: dict[str, Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = None
    timeout_s: float | None = Field(None, gt=0, le=366 * 86400)
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1)


class JobOut(_Out):
    id: str
    application: str
    version: str
    entry_point: str
    config: dict[str, Any]
    inputs: dict[str, list[str]]
    hardware: dict[str, Any]
    timeout_s: float
    priority: int
    state: str
    stage: str | None
    progress: float
    cancel_requested: bool
    waiting: bool
    attempts: int
    max_attempts: int
    error: str | None
    rerun_of: str | None
    worker: str | None = None
    cpu_seconds: float
    gpu_seconds: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    note: str | None = Field(None, description="why a queued job is not taken, when the server can tell (no worker "
                             "seen lately has its program or the hardware it asks, or those that have are disabled; "
                             "or a job whose output it waits for is so)")
    output_bytes: int | None = Field(None, description="bytes its outputs and log take in its user's space (what "
                                     "deleting the job frees); null from servers that do not say")
    warning_count: int = Field(0, description="warnings its program wrote to the log (a job that succeeded may have "
                               "to be looked at all the same)")
    warnings: list[str] = Field(default_factory=list, description="the first of those warnings, each once (in "
                                "GET /jobs/ID; the list of jobs gives the count only)")


class LogLine(BaseModel):
    id: int
    t: float
    line: str


class LogOut(BaseModel):
    lines: list[LogLine]
    next_after: int


class OutputOut(FileOut):
    url: str
    #: life of ``url`` (a page that shows it asks again before it expires)
    expires_in_s: float | None = None


# -- worker API ---------------------------------------------------------------------------------------
class AppRef(_In):
    application: str
    version: str
    entry_point: str


class PullIn(_In):
    hardware: Hardware = Field(default_factory=Hardware)
    can_run: list[AppRef] | Literal["*"] = "*"
    min_job_age_s: float = Field(0.0, ge=0)
    runtimes: list[str] = Field(default_factory=list)


class InputFile(BaseModel):
    slot: str
    position: int
    file_id: str
    name: str
    size: int
    sha256: str | None
    url: str


class JobSpec(BaseModel):
    job_id: str
    application: str
    version: str
    entry_point: str
    spec: dict[str, Any]  # the entry point as the registry holds it
    config: dict[str, Any]
    hardware: dict[str, Any]
    timeout_s: float
    lease_s: float
    attempt: int  # send it back in the X-Plexloc-Attempt header of every request about this job
    inputs: list[InputFile]


class PingIn(_In):
    progress: float | None = Field(None, ge=0, le=1)
    stage: Literal["downloading", "running", "uploading"] | None = None
    log: list[str] = Field(default_factory=list)


class PingOut(BaseModel):
    cancel: bool
    lease_expires_at: float


class OutputCreate(_In):
    name: str = Field(max_length=255)
    size: int = Field(ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    kind: Literal["output", "log", "artifact"] = "output"


class FinishIn(_In):
    state: Literal["succeeded", "failed", "cancelled"]
    error: str | None = None
    cpu_seconds: float = Field(0.0, ge=0)
    gpu_seconds: float = Field(0.0, ge=0)
    log: list[str] = Field(default_factory=list)
