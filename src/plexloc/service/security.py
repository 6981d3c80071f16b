"""API tokens (stored only as SHA-256 hashes) and HMAC-signed, time-limited storage URLs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlencode

USER_PREFIX = "plxu_"
WORKER_PREFIX = "plxw_"


def new_token(prefix: str) -> str:
    """A fresh random token (256 bits), shown to its owner once."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are random, so a fast hash is enough (no dictionary to attack)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SignatureError(Exception):
    """A signed URL is expired, tampered with or for another operation (the storage route answers 403)."""


class Signer:
    """Signs ``(operation, storage key, expiry, extra fields)`` with HMAC-SHA256.

    >>> s = Signer(b"k")
    >>> q = s.sign("get", "u/1/abc", ttl_s=60)
    >>> s.verify("get", "u/1/abc", q)["exp"] == q["exp"]
    True
    """

    def __init__(self, key: bytes, *, clock=time.time):
        self._key = key
        self._clock = clock

    def _mac(self, op: str, key: str, fields: Mapping[str, str]) -> str:
        msg = "\n".join([op, key] + [f"{k}={fields[k]}" for k in sorted(fields)])
        return hmac.new(self._key, msg.encode(), hashlib.sha256).hexdigest()

    def sign(self, op: str, key: str, *, ttl_s: float, **extra: str | int) -> dict[str, str]:
        fields = {k: str(v) for k, v in extra.items() if v is not None}
        fields["exp"] = str(int(self._clock() + ttl_s))
        return {**fields, "sig": self._mac(op, key, fields)}

    def verify(self, op: str, key: str, query: Mapping[str, str]) -> dict[str, str]:
        """The signed fields of ``query`` if its signature holds and it has not expired."""
        fields = {k: v for k, v in query.items() if k not in ("sig", "offset")}
        sig = query.get("sig", "")
        if not hmac.compare_digest(sig, self._mac(op, key, fields)):
            raise SignatureError("bad signature")
        try:
            exp = int(fields["exp"])
        except (KeyError, ValueError):
            raise SignatureError("no expiry") from None
        if exp < self._clock():
            raise SignatureError("expired")
        return fields


def query_string(fields: Mapping[str, str]) -> str:
    return urlencode(fields)
