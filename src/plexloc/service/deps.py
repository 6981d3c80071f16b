"""FastAPI dependencies: the database session, the caller (user or worker) from its bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexloc.service.db import User, Worker
from plexloc.service.security import USER_PREFIX, WORKER_PREFIX, hash_token

bearer = HTTPBearer(auto_error=False, description="an API token (users: plxu_..., workers: plxw_...)")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the route returns without an error."""
    with request.app.state.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": the commit happens before the response leaves, so a client reads its own writes
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def _lookup(session: Session, creds: HTTPAuthorizationCredentials | None, model):
    """The active user (or worker) of the bearer token; else 401 saying which of missing, unknown or disabled, and the
    way out (one "missing or invalid token" left a user whose account was disabled looking for a typo)."""
    kind, prefix = ("user", USER_PREFIX) if model is User else ("worker", WORKER_PREFIX)
    if creds is None or not creds.credentials:
        raise _unauthorized(f"no token: send the {kind}'s token as 'Authorization: Bearer {prefix}...'")
    digest = hash_token(creds.credentials)
    found = session.scalar(select(model).where(model.token_hash == digest))
    if found is not None and found.active:
        return found
    if found is not None:
        raise _unauthorized(f"the {kind} {found.name!r} is disabled: the service's administrator enables it again "
                            f"(plexloc admin enable {kind} {found.name})")
    other = Worker if model is User else User
    if session.scalar(select(other.id).where(other.token_hash == digest)) is not None:
        other_kind = "worker" if other is Worker else "user"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a {other_kind} token cannot use this API: use a {kind} token "
                                                       f"({prefix}...)")
    raise _unauthorized(f"unknown token (mistyped, or replaced by 'plexloc admin rotate {kind} NAME'): use the {kind}'s "
                        "latest token from the service's administrator")


def current_user(session: SessionDep, creds: Creds) -> User:
    return _lookup(session, creds, User)


def current_worker(session: SessionDep, creds: Creds) -> Worker:
    return _lookup(session, creds, Worker)


UserDep = Annotated[User, Depends(current_user)]
WorkerDep = Annotated[Worker, Depends(current_worker)]


def base_url(request: Request) -> str:
    """Base of signed local-storage URLs: the configured public URL, else the one the caller used."""
    return request.app.state.settings.public_url or str(request.base_url)
