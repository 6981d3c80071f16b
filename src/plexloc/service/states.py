"""The job state machine: every change of a job's state goes through :func:`check_transition`.

    queued ──claim──> assigned ──start──> running ──> succeeded | failed | cancelled
      │                  │                   │
      └──> cancelled     └──> queued (lease lost or given back; retry) / failed / cancelled
      └──> failed (a job it waits for in a pipeline failed, or lacks the output it needs)

``assigned``: a worker holds the job's lease and fetches its inputs; ``running``: its command runs
(``stage`` says running or uploading). A lapsed lease sends the job back to ``queued`` while attempts
remain, else to ``failed``; a job whose cancel was requested goes to ``cancelled`` instead. A held job whose
cancel was requested ends ``cancelled`` only: its worker's report of another end is refused
(:class:`CancelRequested`), so that a cancel the worker had not seen yet is not undone.
Terminal states are final: a re-run is a new job.
"""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    queued = "queued"
    assigned = "assigned"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def held(self) -> bool:
        """A worker holds the job (it has a lease)."""
        return self in (JobState.assigned, JobState.running)


TERMINAL = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})

#: state -> the states it may move to
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.assigned, JobState.cancelled, JobState.failed}),
    JobState.assigned: frozenset({JobState.running, JobState.queued, JobState.failed, JobState.cancelled}),
    JobState.running: frozenset(
        {JobState.succeeded, JobState.failed, JobState.cancelled, JobState.queued}
    ),
    JobState.succeeded: frozenset(),
    JobState.failed: frozenset(),
    JobState.cancelled: frozenset(),
}


class IllegalTransition(Exception):
    """A state change the machine does not allow (the API answers 409)."""

    def __init__(self, job_id: str, current: JobState, target: JobState):
        self.job_id, self.current, self.target = job_id, JobState(current), JobState(target)
        super().__init__(f"job {job_id}: cannot go from {self.current.value} to {self.target.value}")


class CancelRequested(IllegalTransition):
    """A worker reports an end other than ``cancelled`` for a job whose user cancelled it while it ran (the worker had
    not seen the cancel yet): the job stays cancel-requested, and its worker is to report ``cancelled`` (the API
    answers 409)."""

    def __init__(self, job_id: str, current: JobState, target: JobState):
        super().__init__(job_id, current, target)
        self.args = (f"job {job_id} is {self.current.value} with a cancel requested by its user: it cannot end "
                     f"{self.target.value}, only cancelled",)


def check_transition(job_id: str, current: JobState | str, target: JobState | str) -> JobState:
    """Return ``target`` as a :class:`JobState` if ``current -> target`` is allowed, else raise."""
    current, target = JobState(current), JobState(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(job_id, current, target)
    return target
