"""File storage behind signed URLs: a local directory (default) or an S3-compatible object store.

File bytes never go through the JSON API: the API hands out a time-limited URL and the client
moves the bytes to or from it. For the local backend the URL points at the storage route of the
same server (:mod:`plexloc.service.api_storage`), which streams in chunks, resumes an upload at
the offset the client gives, and checks the SHA-256 when the last byte has arrived. For S3 the
URL is the store's own presigned URL.

Storage keys are made by the server (``u/<user id>/<file id>``), never from a user's file name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlparse

from plexloc.service.security import Signer, query_string

CHUNK = 1024 * 1024
_KEY = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")  # fullmatch ("$" matches before a final newline)


class StorageError(Exception):
    """The store cannot do what was asked (unreachable, missing object, checksum mismatch)."""


class StorageUnavailable(StorageError):
    """The store did not answer (the API answers 503; nothing is lost, try again)."""


class UploadConflict(StorageError):
    """An upload chunk does not start where the stored part ends."""

    def __init__(self, offset: int):
        self.offset = offset
        super().__init__(f"upload continues at byte {offset}")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or len(key) > 300:
        raise StorageError(f"invalid storage key {key!r}")
    return key


def write_all(f, data: bytes) -> None:
    """All of ``data`` to the unbuffered file ``f`` (its writes may be short)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class Storage(Protocol):
    def upload_url(self, key: str, *, size: int, sha256: str | None, base_url: str, ttl_s: float) -> str: ...

    def download_url(self, key: str, *, filename: str, base_url: str, ttl_s: float) -> str: ...

    def finalize(self, key: str, *, size: int, sha256: str | None) -> str:
        """Check that the whole object is there (size, and checksum when given); return its SHA-256."""
        ...

    def head(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of a complete file (fewer if it is shorter)."""
        ...

    def delete(self, key: str) -> None: ...


class LocalStorage:
    """Files under ``root``; uploads land in ``KEY.part`` and are renamed once complete and checked."""

    route = "/storage/v1/"

    def __init__(self, root: str | os.PathLike, signer: Signer):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.signer = signer

    def free_bytes(self) -> int:
        """Bytes free on the store's disk."""
        return shutil.disk_usage(self.root).free

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise StorageError(f"invalid storage key {key!r}")
        return path

    def part_path(self, key: str) -> Path:
        return self.path(key).with_name(self.path(key).name + ".part")

    def _url(self, base_url: str, key: str, fields: dict[str, str]) -> str:
        return f"{base_url.rstrip('/')}{self.route}{key}?{query_string(fields)}"

    def upload_url(self, key: str, *, size: int, sha256: str | None, base_url: str, ttl_s: float) -> str:
        return self._url(base_url, key, self.signer.sign("put", key, ttl_s=ttl_s, size=size, sha256=sha256))

    def download_url(self, key: str, *, filename: str, base_url: str, ttl_s: float) -> str:
        return self._url(base_url, key, self.signer.sign("get", key, ttl_s=ttl_s, name=filename))

    # -- the storage route's side -----------------------------------------------------------
    def received(self, key: str) -> int:
        """Bytes stored so far for an upload (its full size once complete)."""
        final = self.path(key)
        if final.exists():
            return final.stat().st_size
        part = self.part_path(key)
        return part.stat().st_size if part.exists() else 0

    @contextlib.contextmanager
    def open_part(self, key: str, offset: int):
        """The part file, locked and positioned at ``offset`` (which must be where it ends); unbuffered (write with
        :func:`write_all`), so that after a failed write (a full disk) the file holds exactly what reached it, and
        closing it raises nothing more."""
        part = self.part_path(key)
        if self.path(key).exists():  # complete: no (empty) part file made again
            raise UploadConflict(self.received(key))
        part.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
        with os.fdopen(fd, "wb", buffering=0) as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            end = os.fstat(fd).st_size
            if self.path(key).exists() or offset != end:
                raise UploadConflict(self.received(key))
            f.seek(offset)
            yield f

    def complete_part(self, key: str, *, sha256: str | None) -> str:
        """Check the finished part's checksum and move it into place; a mismatch deletes it."""
        part = self.part_path(key)
        digest = sha256_file(part)
        if sha256 and digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise StorageError(f"checksum mismatch: got sha256 {digest}, expected {sha256}")
        part.with_name(part.name[: -len(".part")] + ".sha256").write_text(digest)
        os.replace(part, self.path(key))
        return digest

    # -- the API's side -----------------------------------------------------------------------
    def finalize(self, key: str, *, size: int, sha256: str | None) -> str:
        path = self.path(key)
        part = self.part_path(key)
        if not path.exists() and part.exists() and part.stat().st_size == size:
            # every byte arrived but the PUT that brought the last ones did not move the part into place (the server
            # stopped, or the client gave up waiting while the checksum was computed): the client sees the whole size
            # stored and sends nothing more, so complete it here
            try:
                return self.complete_part(key, sha256=sha256)
            except FileNotFoundError:  # that PUT has just done it
                pass
        if not path.exists():
            raise StorageError(f"upload incomplete: {self.received(key)} of {size} bytes received")
        if path.stat().st_size != size:
            raise StorageError(f"stored size {path.stat().st_size} != declared size {size}")
        side = path.with_name(path.name + ".sha256")
        digest = side.read_text().strip() if side.exists() else sha256_file(path)
        if sha256 and digest != sha256.lower():
            raise StorageError(f"checksum mismatch: stored sha256 {digest}, expected {sha256}")
        return digest

    def head(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of a complete file (fewer if it is shorter)."""
        try:
            with open(self.path(key), "rb") as f:
                return f.read(n)
        except OSError as err:  # the stored object gone or unreadable: a StorageError, as S3's, not a bare 500
            raise StorageError(f"cannot read stored file {key}: {err.strerror or err}") from None

    def delete(self, key: str) -> None:
        path = self.path(key)
        for p in (path, self.part_path(key), path.with_name(path.name + ".sha256")):
            p.unlink(missing_ok=True)


class S3Storage:
    """An S3-compatible bucket (AWS, SeaweedFS, MinIO, ...) through boto3 presigned URLs.

    ``s3://BUCKET/PREFIX?endpoint=http://host:8333&region=us-east-1``; credentials from the usual
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. Uploads are one presigned PUT, or, for large
    files, a multipart upload: :meth:`upload_parts` hands out a presigned URL per part still missing
    (the store itself says which parts arrived, so an interrupted upload resumes with the parts left)
    and :meth:`finalize` assembles the parts, then checks size and SHA-256.
    """

    #: smallest part S3 accepts (except the last one); at most 10,000 parts per object
    MIN_PART = 5 * 1024**2
    MAX_PARTS = 10_000

    def __init__(self, url: str):
        import boto3
        from botocore.config import Config

        parsed = urlparse(url)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=query.get("endpoint"),
            region_name=query.get("region", "us-east-1"),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                          connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def upload_url(self, key: str, *, size: int, sha256: str | None, base_url: str, ttl_s: float) -> str:
        return self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=int(ttl_s)
        )

    def download_url(self, key: str, *, filename: str, base_url: str, ttl_s: float) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(ttl_s))

    # -- multipart (resumable) uploads -------------------------------------------------------------
    def part_size(self, size: int, wanted: int | None = None) -> int:
        """Bytes per part: ``wanted`` (default 64 MiB), at least 5 MiB and enough for 10,000 parts."""
        return max(wanted or 64 * 1024**2, self.MIN_PART, -(-size // self.MAX_PARTS))

    def _multipart_id(self, key: str, *, create: bool) -> str | None:
        """The open multipart upload of ``key`` (the store keeps it: no id in the database), or a new one."""
        k = self._key(key)
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=k)
            ids = sorted((u["Initiated"], u["UploadId"]) for u in listing.get("Uploads", []) if u["Key"] == k)
            if ids:
                return ids[-1][1]
            return self.client.create_multipart_upload(Bucket=self.bucket, Key=k)["UploadId"] if create else None
        except Exception as err:
            raise StorageUnavailable(f"object store unreachable: {err}") from None

    def _parts(self, key: str, upload_id: str) -> dict[int, dict]:
        parts: dict[int, dict] = {}
        kw = {"Bucket": self.bucket, "Key": self._key(key), "UploadId": upload_id}
        while True:
            page = self.client.list_parts(**kw)
            for p in page.get("Parts", []):
                parts[p["PartNumber"]] = p
            if not page.get("IsTruncated"):
                return parts
            kw["PartNumberMarker"] = page["NextPartNumberMarker"]

    def upload_parts(self, key: str, *, size: int, part_size: int, ttl_s: float) -> dict:
        """The multipart plan of ``key``: part size, and per part its byte range, whether the store has
        it, and (when not) a presigned PUT URL. Called again after an interruption, it lists only what
        is missing."""
        upload_id = self._multipart_id(key, create=True)
        try:
            have = self._parts(key, upload_id)
        except Exception as err:
            raise StorageUnavailable(f"object store unreachable: {err}") from None
        parts = []
        for i, offset in enumerate(range(0, max(size, 1), part_size), start=1):
            n = min(part_size, size - offset)
            done = i in have and have[i]["Size"] == n
            url = None if done else self.client.generate_presigned_url(
                "upload_part", Params={"Bucket": self.bucket, "Key": self._key(key), "UploadId": upload_id, "PartNumber": i},
                ExpiresIn=int(ttl_s),
            )
            parts.append({"number": i, "offset": offset, "size": n, "done": done, "url": url})
        return {"part_size": part_size, "parts": parts}

    def _assemble(self, key: str, size: int) -> bool:
        """Complete an open multipart upload of ``key`` whose parts are all there; False when there is none."""
        upload_id = self._multipart_id(key, create=False)
        if upload_id is None:
            return False
        have = self._parts(key, upload_id)
        got = sum(p["Size"] for p in have.values())
        if sorted(have) != list(range(1, len(have) + 1)) or got != size:
            raise StorageError(f"upload incomplete: {got} of {size} bytes in {len(have)} part(s)")
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": have[n]["ETag"]} for n in sorted(have)]},
        )
        return True

    def finalize(self, key: str, *, size: int, sha256: str | None) -> str:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as err:  # botocore's ClientError and connection errors alike
            code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
            if code not in ("404", "NoSuchKey", "NotFound"):
                raise StorageUnavailable(f"object store unreachable: {err}") from None
            if not self._assemble(key, size):
                raise StorageError(f"upload incomplete: no object yet ({err})") from None
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        if head["ContentLength"] != size:
            raise StorageError(f"stored size {head['ContentLength']} != declared size {size}")
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        h = hashlib.sha256()
        for chunk in body.iter_chunks(CHUNK):
            h.update(chunk)
        digest = h.hexdigest()
        if sha256 and digest != sha256.lower():
            self.delete(key)
            raise StorageError(f"checksum mismatch: stored sha256 {digest}, expected {sha256}")
        return digest

    def head(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of a complete, non-empty object (an HTTP range)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=0-{n - 1}")["Body"].read()
        except Exception as err:
            raise StorageUnavailable(f"object store unreachable: {err}") from None

    def delete(self, key: str) -> None:
        upload_id = self._multipart_id(key, create=False)
        if upload_id is not None:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def open_storage(url: str, signer: Signer) -> LocalStorage | S3Storage:
    """``s3://...`` -> :class:`S3Storage`; anything else is a local directory."""
    if url.startswith("s3://"):
        return S3Storage(url)
    return LocalStorage(url.removeprefix("file://"), signer)
