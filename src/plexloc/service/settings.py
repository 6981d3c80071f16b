"""Typed settings of the server, from arguments or the environment (``PLEXLOC_*``); none at import."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from plexloc.errors import InputError

from plexloc.service.jobs import TIMEOUT_GRACE_S


def size_text(n: float) -> str:
    """Bytes for people: '512 B', '3.9 KiB', '1.25 GiB' (binary units, three significant digits)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


class Settings(BaseModel):
    """Everything the server needs to start.

    ``data_dir`` holds the SQLite database, the local file store and the signing key unless
    ``db_url``, ``storage_url`` or ``secret`` say otherwise.
    """

    data_dir: Path = Path("plexloc-data")
    db_url: str | None = None  # default sqlite:///DATA_DIR/plexloc.db
    storage_url: str | None = None  # default DATA_DIR/files; or s3://bucket/prefix?endpoint=http://...
    secret: str | None = None  # HMAC key of signed URLs; default: DATA_DIR/secret.key (created once)
    public_url: str | None = None  # base URL of signed local-storage links; default: the request's
    apps_dirs: list[Path] = Field(default_factory=list)  # extra application YAML folders
    lease_s: float = Field(default=30.0, gt=0)  # a claim lapses this long after the last ping
    max_attempts: int = Field(default=3, ge=1)  # claims of one job before it fails for good
    url_ttl_s: int = 3600  # life of a signed URL
    max_upload_bytes: int = Field(default=64 * 1024**3, ge=1)
    # per user (None: no limit): bytes of all their files (uploads, job outputs and logs), and jobs not yet ended
    user_quota_bytes: int | None = Field(default=None, ge=0)
    max_active_jobs: int | None = Field(default=None, ge=1)
    sweep_interval_s: float = 5.0  # stale-lease sweeper period (0: no background sweeper)
    # a claimed job still held this long past its timeout_s is ended by the server (downloads and uploads
    # are outside the worker's own limit, which counts the command alone)
    timeout_grace_s: float = Field(default=TIMEOUT_GRACE_S, ge=0.0)
    upload_expiry_s: float = 7 * 86400.0  # an upload never completed is deleted (with its partial data) this long after
    pull_wait_s: float = 0.0  # long-poll: a pull with nothing to do waits up to this long
    smtp_host: str | None = None  # e-mail notifications (outbox) when set
    smtp_port: int = 25
    smtp_from: str = "plexloc@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    notify_interval_s: float = 10.0

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """``PLEXLOC_DATA_DIR``, ``PLEXLOC_DB``, ``PLEXLOC_STORAGE``, ``PLEXLOC_SECRET``,
        ``PLEXLOC_PUBLIC_URL``, ``PLEXLOC_LEASE_S``, ``PLEXLOC_MAX_ATTEMPTS``, ``PLEXLOC_TIMEOUT_GRACE_S``,
        ``PLEXLOC_MAX_UPLOAD_BYTES``, ``PLEXLOC_USER_QUOTA_BYTES``, ``PLEXLOC_MAX_ACTIVE_JOBS``; ``overrides`` that are
        not None win.

        Raises:
            InputError: a value the server cannot run with (a lease of 0 s, a job limit of 0, text for a number), named
                with the environment variable or the setting that gave it."""
        env = os.environ
        values: dict = {}
        given_by: dict[str, str] = {}  # setting -> the environment variable that gave it
        for key, var in [
            ("data_dir", "PLEXLOC_DATA_DIR"),
            ("db_url", "PLEXLOC_DB"),
            ("storage_url", "PLEXLOC_STORAGE"),
            ("secret", "PLEXLOC_SECRET"),
            ("public_url", "PLEXLOC_PUBLIC_URL"),
            ("lease_s", "PLEXLOC_LEASE_S"),
            ("max_attempts", "PLEXLOC_MAX_ATTEMPTS"),
            ("timeout_grace_s", "PLEXLOC_TIMEOUT_GRACE_S"),
            ("max_upload_bytes", "PLEXLOC_MAX_UPLOAD_BYTES"),
            ("user_quota_bytes", "PLEXLOC_USER_QUOTA_BYTES"),
            ("max_active_jobs", "PLEXLOC_MAX_ACTIVE_JOBS"),
            ("smtp_host", "PLEXLOC_SMTP_HOST"),
            ("smtp_port", "PLEXLOC_SMTP_PORT"),
            ("smtp_from", "PLEXLOC_SMTP_FROM"),
            ("smtp_user", "PLEXLOC_SMTP_USER"),
            ("smtp_password", "PLEXLOC_SMTP_PASSWORD"),
        ]:
            if env.get(var):
                values[key], given_by[key] = env[var], var
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
                given_by.pop(key, None)
        try:
            return cls(**values)
        except ValidationError as err:  # one line naming where the value came from, not pydantic's report
            e = err.errors()[0]
            key = str(e["loc"][0]) if e["loc"] else ""
            raise InputError(f"{e['msg']} (got {e.get('input')!r})",
                             source=given_by.get(key, key or "settings")) from None

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'plexloc.db').resolve()}"

    @property
    def storage(self) -> str:
        return self.storage_url or str((self.data_dir / "files").resolve())

    def signing_key(self) -> bytes:
        """The secret, or the key file in ``data_dir`` (made on first use, mode 0600)."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:  # first writer wins; a racing process reads the winner's key
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()
