"""Defects found by deploying the service as a lab would (session 38): each test fails on the code before its fix."""

from __future__ import annotations

import pytest
from service_support import make_service

from plexloc.service import jobs as ops
from plexloc.service.apps import Hardware
from plexloc.service.db import Job, User, Worker
from sqlalchemy import select

CPU_WORKER = Hardware(cpus=8, memory_mb=16000, gpus=0, gpu_memory_mb=0)  # what `plexloc worker` detects on a CPU box


@pytest.fixture
def svc(tmp_path):
    service = make_service(tmp_path, lease_s=10.0)
    yield service
    service.app.state.engine.dispose()


def _user(session, name="alice") -> User:
    return session.scalar(select(User).where(User.name == name))


def _worker(session, name="w1") -> Worker:
    return session.scalar(select(Worker).where(Worker.name == name))


def test_gpu_entry_point_run_on_cpu_is_claimed_by_a_cpu_worker(svc):
    """plexloc-train's defaults ask one GPU with 8000 MB: a job submitted with ``{"gpus": 0}`` (``plexloc submit
    --gpus 0``, as the README says for a CPU worker) kept the 8000 MB of GPU memory and waited, queued, for ever: no CPU
    worker (0 MB of GPU memory) took it."""
    reg = svc.app.state.registry
    with svc.sessions().begin() as s:
        job = ops.submit(s, _user(s), reg, _train_request(s, svc))
        s.flush()
        assert job.hardware["gpu_memory_mb"] == 0
        can = [("plexloc-train", job.version, "train")]
        got = ops.claim(s, _worker(s), can_run=can, hardware=CPU_WORKER, lease_s=10.0)
        assert got is not None and got.id == job.id


def test_queued_cpu_job_with_gpu_memory_left_in_its_hardware_is_claimed(svc):
    """A job queued before the fix (gpus 0, gpu_memory_mb 8000 in its row) is claimed too: a job with no GPU needs no
    GPU memory."""
    reg = svc.app.state.registry
    with svc.sessions().begin() as s:
        job = ops.submit(s, _user(s), reg, _train_request(s, svc))
        job.hardware = {**job.hardware, "gpu_memory_mb": 8000}
        s.flush()
        got = ops.claim(s, _worker(s), can_run=[("plexloc-train", job.version, "train")], hardware=CPU_WORKER, lease_s=10.0)
        assert got is not None and got.id == job.id


def _train_request(session, svc) -> ops.JobRequest:
    from plexloc.service.db import File

    f = File(user_id=_user(session).id, name="train.yaml", size=1, sha256="0" * 64, storage_key="u/x/train", state="ready")
    session.add(f)
    session.flush()
    return ops.JobRequest("plexloc-train", inputs={"config": [f.id]}, hardware={"gpus": 0})
