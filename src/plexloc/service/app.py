"""The FastAPI application: user API, worker API, storage route, web page, stale-lease sweeper."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from plexloc import __version__
from plexloc.errors import InputError
from plexloc.service import api_storage, api_user, api_worker
from plexloc.service import jobs as ops
from plexloc.service.apps import Registry
from plexloc.service.db import open_database
from plexloc.service.notify import send_pending, smtp_sender
from plexloc.service.security import Signer
from plexloc.service.settings import Settings
from plexloc.service.states import CancelRequested, IllegalTransition
from plexloc.service.storage import StorageError, StorageUnavailable, open_storage

log = logging.getLogger("plexloc.service")
STATIC = Path(__file__).parent / "static"


def _sweeper(app: FastAPI, stop: threading.Event) -> None:
    interval = app.state.settings.sweep_interval_s
    while not stop.wait(interval):
        try:
            with app.state.sessions.begin() as session:
                for job_id, state in ops.sweep(session, timeout_grace_s=app.state.settings.timeout_grace_s,
                                                storage=app.state.storage):
                    log.warning("job %s: lease lapsed or time limit passed -> %s", job_id, state)
                expired = ops.expire_uploads(session, app.state.storage, max_age_s=app.state.settings.upload_expiry_s)
                if expired:
                    log.warning("deleted %d upload(s) never completed: %s", len(expired), ", ".join(expired))
        except Exception:  # keep sweeping through a passing database error
            log.exception("stale-lease sweep failed")


def _notifier(app: FastAPI, stop: threading.Event) -> None:
    st = app.state.settings
    send = smtp_sender(st.smtp_host, st.smtp_port, sender=st.smtp_from, user=st.smtp_user, password=st.smtp_password,
                       starttls=st.smtp_starttls)
    while not stop.wait(st.notify_interval_s):
        try:
            send_pending(app.state.sessions, send)
        except Exception:
            log.exception("sending notifications failed")


def _json_safe(value):
    """``value`` with non-finite floats as strings (``'nan'``, ``'inf'``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the database is upgraded and the applications validated here."""
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry.load(settings.apps_dirs)
    engine, sessions = open_database(settings.database_url)
    signer = Signer(settings.signing_key())
    storage = open_storage(settings.storage, signer)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        with sessions.begin() as session:  # the server's own down time is not the workers' silence
            renewed = ops.renew_leases(session, lease_s=settings.lease_s)
        if renewed:
            log.warning("%d running job(s): leases renewed for %g s (their workers could not ping while the server "
                        "was down)", renewed, settings.lease_s)
        stop = threading.Event()
        threads = []
        if settings.sweep_interval_s > 0:
            threads.append(threading.Thread(target=_sweeper, args=(app, stop), name="plexloc-sweeper", daemon=True))
        if settings.smtp_host:
            threads.append(threading.Thread(target=_notifier, args=(app, stop), name="plexloc-notifier", daemon=True))
        for t in threads:
            t.start()
        yield
        stop.set()
        for t in threads:
            t.join(timeout=5)
        engine.dispose()

    app = FastAPI(
        title="plexloc service",
        version=__version__,
        description="Jobs for plexloc and other SMLM applications: a user API (/api/v1), a worker API "
        "(/worker/v1), files through signed URLs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.engine = engine
    app.state.sessions = sessions
    # read by the sessions when used, so the app's current ones (an administrator's or a test's replacement included):
    # the registry, which set_state words a job's mail with (its error and warnings as plexloc status says them) and
    # _release_dependents takes a slot's columns from, and the storage, which _release_dependents reads a pipeline's
    # CSV header from (the columns its next job reads)
    sessions.configure(info={"registry": lambda: app.state.registry, "storage": lambda: app.state.storage})
    app.state.signer = signer
    app.state.storage = storage

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError):
        return JSONResponse({"detail": str(err), "field": err.source}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, err: RequestValidationError):
        # FastAPI's own answer, but with values JSON cannot carry (NaN, infinities) written as text: a 422, not a 500
        return JSONResponse({"detail": _json_safe(jsonable_encoder(err.errors(), sqlalchemy_safe=True))}, status_code=422)

    @app.exception_handler(IllegalTransition)
    async def _illegal(request: Request, err: IllegalTransition):
        body = {"detail": str(err), "state": err.current.value}
        if isinstance(err, CancelRequested):  # the job runs on only to be reported cancelled
            body["cancel_requested"] = True
        return JSONResponse(body, status_code=409)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, err: StorageError):
        code = 503 if isinstance(err, StorageUnavailable) else 422
        return JSONResponse({"detail": str(err)}, status_code=code)

    app.include_router(api_user.router)
    app.include_router(api_worker.router)
    app.include_router(api_storage.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
