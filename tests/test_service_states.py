"""The job state machine and the queue operations (claim, ping, finish, cancel, sweep) on a real database."""

from __future__ import annotations

import itertools
import threading

import pytest
from service_support import Service, fresh_postgres_db, make_service, postgres_server  # noqa: F401

from plexloc.errors import InputError
from plexloc.service import jobs as ops
from plexloc.service.apps import Hardware
from plexloc.service.db import Job, User, Worker
from plexloc.service.states import TRANSITIONS, IllegalTransition, JobState, check_transition
from sqlalchemy import select

ALL = list(JobState)
ALLOWED = {
    ("queued", "assigned"), ("queued", "cancelled"), ("queued", "failed"),
    ("assigned", "running"), ("assigned", "queued"), ("assigned", "failed"), ("assigned", "cancelled"),
    ("running", "succeeded"), ("running", "failed"), ("running", "cancelled"), ("running", "queued"),
}  # fmt: skip
TICK = [("ticker", "1.0", "tick"), ("ticker", "1.0", "gpu")]
CPU = Hardware(cpus=2, memory_mb=1000)


@pytest.mark.parametrize("current,target", list(itertools.product(ALL, ALL)), ids=lambda s: s.value)
def test_transition_table(current, target):
    if (current.value, target.value) in ALLOWED:
        assert check_transition("j", current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"from {current.value} to {target.value}"):
            check_transition("j", current, target)


def test_terminal_states_are_final():
    assert {s for s in JobState if s.terminal} == {JobState.succeeded, JobState.failed, JobState.cancelled}
    assert all(not TRANSITIONS[s] for s in JobState if s.terminal)


@pytest.fixture(params=["sqlite", "postgresql"])
def svc(request, tmp_path) -> Service:
    """The service on SQLite, and on PostgreSQL where Debian's package is installed."""
    db_url = None
    if request.param == "postgresql":
        db_url = fresh_postgres_db(request.getfixturevalue("postgres_server"))
    service = make_service(tmp_path, lease_s=10.0, max_attempts=2, db_url=db_url)
    yield service
    service.app.state.engine.dispose()


def _submit(svc, session, *, entry="tick", user="alice", **kw) -> Job:
    u = session.scalar(select(User).where(User.name == user))
    job = ops.submit(session, u, svc.app.state.registry, ops.JobRequest("ticker", entry_point=entry, **kw), max_attempts=2)
    job.created_at = 0.0  # the tests run on a clock of their own (at=...)
    session.flush()
    return job


def _worker(session, name="w1") -> Worker:
    return session.scalar(select(Worker).where(Worker.name == name))


def test_lifecycle_claim_ping_finish(svc):
    with svc.sessions().begin() as s:
        job = _submit(svc, s, config={"n": 5})
        assert job.config == {"n": 5, "dt": 0.01} and job.state == "queued" and job.hardware["memory_mb"] == 10
        w = _worker(s)
        claimed = ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=100.0)
        assert claimed.id == job.id and claimed.state == "assigned" and claimed.attempts == 1
        assert claimed.lease_expires_at == 110.0
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=100.0) is None  # nothing left
        assert ops.ping(s, job, w, lease_s=10, progress=0.5, stage="running", lines=["a", "b"], at=105.0) is False
        assert job.state == "running" and job.progress == 0.5 and job.lease_expires_at == 115.0
        ops.finish(s, job, w, state="succeeded", cpu_seconds=1.5, at=106.0)
        assert job.state == "succeeded" and job.progress == 1.0 and job.lease_expires_at is None
        assert job.cpu_seconds == 1.5 and job.finished_at == 106.0
        with pytest.raises(ops.NotHeld):  # over: no more pings
            ops.ping(s, job, w, lease_s=10, at=107.0)


def test_other_worker_and_expired_lease_do_not_hold(svc):
    with svc.sessions().begin() as s:
        job = _submit(svc, s)
        w1, w2 = _worker(s, "w1"), _worker(s, "w2")
        ops.claim(s, w1, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        with pytest.raises(ops.NotHeld):
            ops.held(job, w2, at=1.0)
        assert ops.held(job, w1, at=10.0) is job
        with pytest.raises(ops.NotHeld):
            ops.held(job, w1, at=10.5)


def test_claim_respects_hardware_apps_age_and_priority(svc):
    with svc.sessions().begin() as s:
        gpu_job = _submit(svc, s, entry="gpu")
        gpu_job.created_at = 0.0
        low = _submit(svc, s, priority=0)
        low.created_at = 1.0
        high = _submit(svc, s, priority=5)
        high.created_at = 2.0
        w = _worker(s)
        # an app this worker cannot run is never claimed
        assert ops.claim(s, w, can_run=[("plexloc-simulate", "0.1", "simulate")], hardware=CPU, lease_s=10, at=3.0) is None
        # min job age: nothing has waited 10 s at t=3
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=3.0, min_age_s=10) is None
        # too little memory for any job
        assert ops.claim(s, w, can_run=TICK, hardware=Hardware(cpus=1, memory_mb=5), lease_s=10, at=3.0) is None
        # highest priority first, then oldest; the GPU job waits for a GPU worker
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=3.0).id == high.id
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=3.0).id == low.id
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=3.0) is None
        gpu = Hardware(cpus=1, memory_mb=100, gpus=1, gpu_memory_mb=1000)
        assert ops.claim(s, w, can_run=TICK, hardware=gpu, lease_s=10, at=3.0).id == gpu_job.id


def test_own_group_first(svc):
    with svc.sessions().begin() as s:
        s.scalar(select(User).where(User.name == "bob")).group = "lab"
        alice_job = _submit(svc, s, priority=3)
        bob_job = _submit(svc, s, user="bob")
        w = _worker(s)
        w.group = "lab"
        assert ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10).id == bob_job.id
        assert ops.claim(s, _worker(s, "w2"), can_run=TICK, hardware=CPU, lease_s=10).id == alice_job.id


def test_concurrent_claims_take_each_job_once(svc):
    with svc.sessions().begin() as s:
        ids = {_submit(svc, s).id for _ in range(12)}
    got: list[str] = []
    lock = threading.Lock()

    def work(name):
        while True:
            with svc.sessions().begin() as s:
                job = ops.claim(s, _worker(s, name), can_run=TICK, hardware=CPU, lease_s=10)
                if job is None:
                    return
                with lock:
                    got.append(job.id)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("w1", "w2", "w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)  # every job once, none twice


def test_sweep_requeues_then_fails_after_attempt_limit(svc):
    with svc.sessions().begin() as s:
        job = _submit(svc, s)
        w1, w2 = _worker(s, "w1"), _worker(s, "w2")
        ops.claim(s, w1, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        assert ops.sweep(s, at=9.0) == []  # lease still valid
        assert ops.sweep(s, at=11.0) == [(job.id, "queued")]
        assert job.state == "queued" and job.worker_id is None and job.error is None
        ops.claim(s, w2, can_run=TICK, hardware=CPU, lease_s=10, at=12.0)
        ops.ping(s, job, w2, lease_s=10, stage="running", at=13.0)
        with pytest.raises(ops.NotHeld):  # the first worker lost it for good
            ops.held(job, w1, at=13.0)
        assert ops.sweep(s, at=30.0) == [(job.id, "failed")]  # second lapse: max_attempts = 2
        assert job.state == "failed" and "lease lost 2 times" in job.error


def test_cancel(svc):
    with svc.sessions().begin() as s:
        queued = _submit(svc, s)
        ops.cancel(s, queued)
        assert queued.state == "cancelled"
        with pytest.raises(IllegalTransition):
            ops.cancel(s, queued)
        running = _submit(svc, s)
        w = _worker(s)
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        ops.ping(s, running, w, lease_s=10, stage="running", at=1.0)
        ops.cancel(s, running)
        assert running.state == "running" and running.cancel_requested
        assert ops.ping(s, running, w, lease_s=10, at=2.0) is True  # the worker is told
        ops.finish(s, running, w, state="cancelled", at=3.0)
        assert running.state == "cancelled"
        # a dead worker's cancelled job ends cancelled, not re-queued
        ghost = _submit(svc, s)
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        ops.cancel(s, ghost)
        assert ops.sweep(s, at=20.0) == [(ghost.id, "cancelled")]


def test_finish_rejects_non_terminal_and_takes_assigned_through_running(svc):
    """A worker whose 'running' ping was lost (or that never sends one) may still report success: the job passes
    through running (its history says so) instead of hanging until its lease lapses and running again."""
    with svc.sessions().begin() as s:
        job = _submit(svc, s)
        w = _worker(s)
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        with pytest.raises(IllegalTransition):
            ops.finish(s, job, w, state="running", at=1.0)
        ops.finish(s, job, w, state="succeeded", at=1.0)
        assert job.state == "succeeded"
        with pytest.raises(Exception):  # over: no second finish
            ops.finish(s, job, w, state="failed", at=2.0)
        failed = _submit(svc, s)
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=3.0)
        ops.finish(s, failed, w, state="failed", error="download failed", at=4.0)
        assert failed.state == "failed" and failed.error == "download failed"


def test_submit_validation_names_the_field(svc):
    with svc.sessions().begin() as s:
        with pytest.raises(InputError, match=r"config\.n"):
            _submit(svc, s, config={"n": 0})
        with pytest.raises(InputError, match=r"config\.bogus"):
            _submit(svc, s, config={"bogus": 1})
        with pytest.raises(InputError, match=r"inputs\.movie"):
            _submit(svc, s, inputs={"movie": ["x"]})
        with pytest.raises(InputError, match="hardware"):
            _submit(svc, s, hardware={"gpus": -1})


def test_rerun_copies_the_job(svc):
    with svc.sessions().begin() as s:
        job = _submit(svc, s, config={"n": 7}, priority=2)
        ops.cancel(s, job)
        u = s.scalar(select(User).where(User.name == "alice"))
        new = ops.rerun(s, u, svc.app.state.registry, job)
        s.flush()
        assert new.id != job.id and new.rerun_of == job.id and new.state == "queued"
        assert new.config == job.config and new.priority == 2


def test_migration_matches_models(svc):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from plexloc.service.db import Base

    with svc.app.state.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _finish_with_output(s, job, w, name: str, *, state="succeeded"):
    from plexloc.service.db import File

    ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=1.0)
    ops.ping(s, job, w, lease_s=10, stage="running", at=2.0)
    f = File(user_id=job.user_id, name=name, size=1, storage_key=f"u/x/{job.id}{name}", kind="output", state="ready", job_id=job.id)
    s.add(f)
    s.flush()
    ops.finish(s, job, w, state=state, at=3.0)
    return f


def test_pipeline_waits_for_and_receives_an_output(svc):
    with svc.sessions().begin() as s:
        first = _submit(svc, s)
        # plexloc-evaluate's two input slots are filled by outputs `first` will make
        u = s.scalar(select(User).where(User.name == "alice"))
        ev = ops.submit(s, u, svc.app.state.registry, ops.JobRequest(
            "plexloc-evaluate", inputs={"truth": [f"job:{first.id}/truth.csv"], "pred": [f"job:{first.id}/sub/locs.csv"]}))
        s.flush()
        ev.created_at = 0.0
        assert ev.waiting and ev.state == "queued"
        w = _worker(s)
        can = TICK + [("plexloc-evaluate", "0.1", "evaluate")]
        # waiting: never claimed, however free the worker
        assert ops.claim(s, w, can_run=[("plexloc-evaluate", "0.1", "evaluate")], hardware=CPU, lease_s=10, at=1.0) is None
        from plexloc.service.db import File

        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=1.0)  # takes `first`
        ops.ping(s, first, w, lease_s=10, stage="running", at=2.0)
        for name in ("truth.csv", "sub/locs.csv"):
            s.add(File(user_id=u.id, name=name, size=1, storage_key=f"u/x/{name.replace('/', '_')}", kind="output",
                       state="ready", job_id=first.id))
        s.flush()
        ops.finish(s, first, w, state="succeeded", at=3.0)
        assert not ev.waiting and all(ji.file_id for ji in ev.inputs)
        assert ops.claim(s, w, can_run=can, hardware=CPU, lease_s=10, at=4.0).id == ev.id


def test_pipeline_fails_when_its_source_fails_or_lacks_the_output(svc):
    with svc.sessions().begin() as s:
        u = s.scalar(select(User).where(User.name == "alice"))
        reg = svc.app.state.registry
        a = _submit(svc, s)
        b = _submit(svc, s)
        ev_a = ops.submit(s, u, reg, ops.JobRequest("plexloc-evaluate", inputs={"truth": [f"job:{a.id}/t.csv"], "pred": [f"job:{a.id}/p.csv"]}))
        ev_b = ops.submit(s, u, reg, ops.JobRequest("plexloc-evaluate", inputs={"truth": [f"job:{b.id}/t.csv"], "pred": [f"job:{b.id}/missing.csv"]}))
        s.flush()
        ops.cancel(s, a)
        assert ev_a.state == "failed" and f"job {a.id} cancelled" in ev_a.error
        _finish_with_output(s, b, _worker(s), "t.csv")
        assert ev_b.state == "failed" and "no output 'missing.csv'" in ev_b.error
        # references are checked at submission: other users' jobs, finished jobs' missing outputs, bad names
        bob = s.scalar(select(User).where(User.name == "bob"))
        for user, ref, msg in [
            (bob, f"job:{b.id}/t.csv", "no job output"),
            (u, f"job:{b.id}/nope.csv", "has no output"),
            (u, f"job:{a.id}/t.csv", "cancelled"),
            (u, f"job:{b.id}/../t.csv", "not allowed"),
        ]:
            with pytest.raises(InputError, match=msg):
                ops.submit(s, user, reg, ops.JobRequest("plexloc-evaluate", inputs={"truth": [ref], "pred": [ref]}))


def test_a_retry_goes_preferably_to_another_worker(svc):
    with svc.sessions().begin() as s:
        dropped = _submit(svc, s)
        w1, w2 = _worker(s, "w1"), _worker(s, "w2")
        ops.claim(s, w1, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        fresh = _submit(svc, s)
        fresh.created_at = 5.0  # newer: by age it would come second
        assert ops.sweep(s, at=20.0) == [(dropped.id, "queued")]
        assert dropped.last_worker_id == w1.id
        assert ops.claim(s, w1, can_run=TICK, hardware=CPU, lease_s=10, at=21.0).id == fresh.id
        assert ops.claim(s, w2, can_run=TICK, hardware=CPU, lease_s=10, at=21.0).id == dropped.id


def test_usage_by_user_and_worker(svc):
    from plexloc.service.admin import usage

    with svc.sessions().begin() as s:
        w = _worker(s)
        for cpu in (1.5, 2.5):
            job = _submit(svc, s, hardware={"gpus": 0})
            ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=1.0)
            ops.ping(s, job, w, lease_s=10, stage="running", at=2.0)
            ops.finish(s, job, w, state="succeeded", cpu_seconds=cpu, gpu_seconds=0.5, at=3.0)
        _submit(svc, s, user="bob")
        u = usage(s)
    assert u["users"]["alice"] == {"jobs": 2, "cpu_seconds": 4.0, "gpu_seconds": 1.0}
    assert u["users"]["bob"] == {"jobs": 1, "cpu_seconds": 0.0, "gpu_seconds": 0.0}
    assert u["workers"]["w1"] == {"jobs": 2, "cpu_seconds": 4.0, "gpu_seconds": 1.0}


def test_an_earlier_attempt_of_the_same_worker_does_not_hold(svc):
    """One worker token, two processes: attempt 1's lease lapses, the job is claimed again (attempt 2) by the same
    worker. Requests that name attempt 1 are refused; attempt 2's are taken."""
    with svc.sessions().begin() as s:
        job = _submit(svc, s)
        w = _worker(s, "w1")
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        assert job.attempts == 1
        assert ops.sweep(s, at=11.0) == [(job.id, "queued")]
        ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=12.0)
        assert job.attempts == 2
        with pytest.raises(ops.NotHeld, match="attempt 1 is over"):
            ops.ping(s, job, w, lease_s=10, stage="running", at=13.0, attempt=1)
        with pytest.raises(ops.NotHeld):
            ops.finish(s, job, w, state="succeeded", at=13.0, attempt=1)
        assert job.state == "assigned"
        assert ops.ping(s, job, w, lease_s=10, stage="running", at=13.0, attempt=2) is False
        ops.finish(s, job, w, state="succeeded", at=14.0, attempt=2)
        assert job.state == "succeeded"


def test_the_server_ends_a_job_whose_command_runs_past_its_time_limit(svc):
    """A worker that keeps pinging but never ends its job's command (one its runtime would not kill): past
    ``timeout_s`` + the grace since the command started (the ping with stage ``running``), the sweep fails it (not
    retried) and the worker's next ping is refused; a cancel asked for meanwhile ends it cancelled. The download
    before and the upload after are not limited: a job uploading for hours stays."""
    with svc.sessions().begin() as s:
        for j in (_submit(svc, s), _submit(svc, s), _submit(svc, s)):
            j.timeout_s = 100.0
        w, w2 = _worker(s, "w1"), _worker(s, "w2")
        w3 = w  # one worker may hold two jobs (two slots)
        job = ops.claim(s, w, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        asked = ops.claim(s, w2, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        slow = ops.claim(s, w3, can_run=TICK, hardware=CPU, lease_s=10, at=0.0)
        ops.cancel(s, asked)
        for t in range(5, 30, 5):  # 25 s of downloads: not counted
            for j, wk in ((job, w), (asked, w2), (slow, w3)):
                ops.ping(s, j, wk, lease_s=10, stage="downloading", at=float(t))
        for j, wk in ((job, w), (asked, w2), (slow, w3)):
            ops.ping(s, j, wk, lease_s=10, stage="running", at=30.0)
        for t in range(35, 185, 5):  # the pings go on: the leases never lapse
            ops.ping(s, job, w, lease_s=10, at=float(t))
            ops.ping(s, asked, w2, lease_s=10, at=float(t))
            # the third job's command ended in time (at 120 s); it uploads on
            ops.ping(s, slow, w3, lease_s=10, at=float(t), stage="uploading" if t >= 120 else None)
            assert ops.sweep(s, at=float(t), timeout_grace_s=50.0) == []  # up to 180 s: 30 + 100 + 50
        assert sorted(ops.sweep(s, at=181.0, timeout_grace_s=50.0)) == sorted([(job.id, "failed"), (asked.id, "cancelled")])
        assert "past its time limit of 100 s" in job.error and job.attempts == 1
        with pytest.raises(ops.NotHeld):
            ops.ping(s, job, w, lease_s=10, at=182.0)
        assert slow.state == "running" and slow.stage == "uploading"
        for t in range(185, 2000, 5):  # an upload of half an hour: not the server's to end
            ops.ping(s, slow, w3, lease_s=10, at=float(t))
        assert ops.sweep(s, at=2000.0, timeout_grace_s=50.0) == []
