"""plexloc's job service: a user API, a worker API, pulling workers, file storage and a web page.

The design follows DECODE-OpenCloud (a user-facing and a worker-facing REST API, workers that pull
jobs over outbound HTTP, signed URLs for file bytes, the job database as the queue, status pings,
stale-lease recovery, applications declared in a small YAML), without its cloud identity provider,
second job database, Docker socket or whole-file buffering.

Modules: ``settings`` (typed settings from the environment), ``db`` (SQLAlchemy models, engine,
Alembic upgrade), ``states`` (the job state machine, checked in one place), ``security`` (tokens,
signed URLs), ``storage`` (local directory and S3 backends), ``apps`` (the application registry),
``jobs`` (claims, leases, sweeps), ``api_user`` / ``api_worker`` / ``api_storage`` (routers),
``app`` (the FastAPI application), ``agent`` (the worker), ``client`` (a Python client).
Nothing here is imported by ``import plexloc``; FastAPI and SQLAlchemy come with the ``service`` extra.
"""

from __future__ import annotations

__all__ = ["Client"]


def __getattr__(name: str):
    if name == "Client":
        from plexloc.service.client import Client

        return Client
    raise AttributeError(name)
