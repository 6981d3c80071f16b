"""The database: SQLAlchemy 2 models, the engine, and the Alembic upgrade that creates the schema.

SQLite (default) runs in WAL mode with every transaction opened ``BEGIN IMMEDIATE`` so that a
read-then-write (a claim) never fails on a stale snapshot; PostgreSQL claims rows with
``FOR UPDATE SKIP LOCKED``. Times are UTC seconds since the epoch (floats), so that a lease
comparison is the same on every database. Ids are random hex strings (one id per job, everywhere).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


def new_id() -> str:
    return secrets.token_hex(8)


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    group: Mapped[str | None] = mapped_column(String(100), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    group: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    hardware: Mapped[dict] = mapped_column(JSON, default=dict)  # as last reported
    #: the [application, version, entry point] triples it offered to run at its last pull (its programs installed, a
    #: container runtime for those with an image); None: not reported yet (it may run anything)
    can_run: Mapped[list | None] = mapped_column(JSON, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)


class File(Base):
    """A file in a user's space: an upload (``kind='upload'``) or a job's output / log."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="upload")  # upload | output | log
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | ready
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    application: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    entry_point: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    hardware: Mapped[dict] = mapped_column(JSON, default=dict)  # cpus, memory_mb, gpus, gpu_memory_mb
    gpus: Mapped[int] = mapped_column(Integer, default=0)  # copied out of hardware for the claim query
    timeout_s: Mapped[float] = mapped_column(Float, default=3600.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    group: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    waiting: Mapped[bool] = mapped_column(Boolean, default=False)  # for the outputs of other jobs (pipeline)
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    last_worker_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # lost the lease last time
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # the current attempt's command
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    rerun_of: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: warning lines its last attempt wrote to the log (counted as they are stored, set to 0 when an attempt is
    #: claimed: the list of jobs reads this, not the log)
    warning_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[float] = mapped_column(Float, default=now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=now)

    inputs: Mapped[list["JobInput"]] = relationship(
        order_by="JobInput.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (Index("ix_jobs_claim", "state", "priority", "created_at"),)


class JobInput(Base):
    """File ``file_id`` fills input slot ``slot`` of job ``job_id`` (``position`` orders a multi-file slot).

    In a pipeline the file is first a reference, output ``source_name`` of job ``source_job_id``;
    ``file_id`` is filled in when that job succeeds."""

    __tablename__ = "job_inputs"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), nullable=True, index=True)
    source_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    source_name: Mapped[str | None] = mapped_column(String(255), nullable=True)


class JobLog(Base):
    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Outbox(Base):
    """Notifications to send (e-mail), written in the job's transaction and sent by a background task."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creates it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def open_database(url: str) -> tuple[Engine, sessionmaker]:
    """Engine (schema upgraded) and session factory for ``url``."""
    engine = make_engine(url)
    upgrade(engine)
    return engine, session_factory(engine)
