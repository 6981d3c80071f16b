"""Moving file bytes to and from signed URLs: streamed in chunks, uploads resumed at the offset the
store reports, downloads checked against their SHA-256. Used by the client and the worker agent.

An upload (and the checksum before it) may be given ``cancelled``, a function asked between chunks: when it answers
true the transfer stops there with :class:`UploadCancelled` (the store keeps the bytes sent so far as an unfinished
upload, never as a complete file)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from plexloc.errors import InputError

CHUNK = 1024 * 1024


class TransferError(Exception):
    """An upload or download failed (after retries) or its checksum did not match."""


class ChecksumMismatch(TransferError):
    """The bytes that arrived are not the file's (corrupted in flight, or a damaged copy in the store)."""


class UploadCancelled(TransferError):
    """The upload was told to stop (its ``cancelled()`` turned true) before it was complete."""


class LinkRefused(TransferError):
    """The store refused the signed URL itself (HTTP 403: expired after its TTL, an hour by default, or signed for
    something else). Not retried with the same URL: a caller that can ask the server for a fresh link does, and the
    transfer resumes where it stopped (a download's part file, an upload's offset in the store)."""


class StoreFilled(TransferError):
    """The store's disk filled while the bytes arrived (HTTP 507 from the store itself, partway through a PUT): the
    bytes stored so far stay (the worker's next try of the output resumes from them; ``Client.upload`` removes the
    registration with them). ``detail`` says the file, its size, how much was stored and what to do; the worker waits
    for the space as for a full store, the client says it."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _store_filled(path: Path, size: int, r: httpx.Response) -> TransferError:
    """The store's 507 for ``path`` (``size`` bytes) in the full store's words. It failed as "upload of NAME refused
    (507): {JSON}", which a worker waited out as an outage and then failed with. The store answers 507 for any error
    of its disk's writes: one that is not a lack of space (an I/O error, a read-only disk) is said with the store's
    reason, as a plain :class:`TransferError` (no space to wait for; it read "filled up", the reason dropped)."""
    try:
        body = r.json()
    except ValueError:
        body = {}
    stored = body.get("offset") if isinstance(body, dict) else None
    so_far = f", {stored} of them stored" if isinstance(stored, int) else ""
    detail = body.get("detail") if isinstance(body, dict) else None
    why = re.search(r"cannot take more bytes \((?P<why>[^)]*)\)", detail) if isinstance(detail, str) else None
    bytes_ = f"the file's {size} byte{'' if size == 1 else 's'}"
    if why is not None and not re.search(r"no space|quota", why.group("why"), re.IGNORECASE):
        return TransferError(f"{path.name}: the server's file store could not write {bytes_} ({why.group('why')})"
                             f"{so_far}: tell the server's administrator")
    return StoreFilled(f"{path.name}: the server's file store filled up during the upload of {bytes_}"
                       f"{so_far}: ask the server's administrator to free space")


def _refused(what: str, r: httpx.Response) -> TransferError:
    kind = LinkRefused if r.status_code == 403 else TransferError
    return kind(f"{what} refused ({r.status_code}): {r.text}")


def _check(cancelled: Callable[[], bool] | None, path: Path) -> None:
    if cancelled is not None and cancelled():
        raise UploadCancelled(f"upload of {path.name} cancelled")


def sha256_of(path: str | os.PathLike, *, cancelled: Callable[[], bool] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            _check(cancelled, Path(path))
            h.update(chunk)
    return h.hexdigest()


def _read_from(path: Path, offset: int, chunk: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(offset)
        while data := f.read(chunk):
            yield data


def _is_local(url: str) -> bool:
    return "/storage/v1/" in url


def _body(path: Path, offset: int, chunk: int, cancelled: Callable[[], bool] | None) -> Iterator[bytes]:
    """The bytes of ``path`` from ``offset``; :class:`UploadCancelled` before a chunk once ``cancelled()`` is true
    (raised from inside the request, it ends the PUT there: the connection is closed, the store keeps what came)."""
    for data in _read_from(path, offset, chunk):
        _check(cancelled, path)
        yield data


def upload(http: httpx.Client, url: str, path: str | os.PathLike, *, retries: int = 3, chunk: int = CHUNK,
           cancelled: Callable[[], bool] | None = None) -> None:
    """PUT ``path`` to a signed upload URL. On the local store an interrupted upload continues from the
    offset the store has (``HEAD``), up to ``retries`` times; an S3 URL takes one whole PUT. ``cancelled`` is asked
    before each chunk: true stops the upload with :class:`UploadCancelled` (not retried)."""
    path = Path(path)
    size = path.stat().st_size
    last: Exception | None = None
    for _ in range(retries + 1):
        _check(cancelled, path)
        offset = 0
        try:
            if _is_local(url):
                head = http.head(url)
                if head.status_code != 200:
                    raise _refused(f"upload URL of {path.name}", head)
                offset = int(head.headers["Upload-Offset"])
                if offset >= size and size > 0:
                    return
                target = f"{url}&offset={offset}"
            else:
                target = url
            r = http.put(target, content=_body(path, offset, chunk, cancelled),
                         headers={"Content-Length": str(size - offset)})
            if r.status_code in (200, 201):
                return
            if r.status_code == 409:  # another offset: ask again
                last = TransferError(r.text)
                continue
            if r.status_code == 507:  # the store's disk filled while the bytes arrived
                raise _store_filled(path, size, r)
            raise _refused(f"upload of {path.name}", r)
        except (httpx.TransportError, httpx.TimeoutException) as err:
            last = err
    raise TransferError(f"upload of {path.name} failed after {retries + 1} tries: {last}")


def upload_parts(http: httpx.Client, plan: dict, path: str | os.PathLike, *, chunk: int = CHUNK) -> int:
    """PUT every part of a multipart plan (``POST /files/ID/parts``) that the store does not have yet,
    each streamed from its byte range of ``path``; returns the bytes sent. A part that fails raises
    (ask for the plan again to resume: the parts stored so far are not sent twice)."""
    path = Path(path)
    sent = 0
    for part in plan["parts"]:
        if part["done"]:
            continue
        offset, n = part["offset"], part["size"]

        def body(offset=offset, n=n) -> Iterator[bytes]:
            left = n
            for data in _read_from(path, offset, min(chunk, max(n, 1))):
                yield data[:left]
                left -= len(data)
                if left <= 0:
                    return

        r = http.put(part["url"], content=body(), headers={"Content-Length": str(n)})
        if r.status_code not in (200, 201):
            raise TransferError(f"upload of {path.name} part {part['number']} refused ({r.status_code}): {r.text}")
        sent += n
    return sent


def download(
    http: httpx.Client, url: str, dest: str | os.PathLike, *, sha256: str | None = None, retries: int = 3
) -> Path:
    """Stream a signed download URL into ``dest``; check the SHA-256 when given. The bytes go to a part file beside
    ``dest`` (``.NAME.SHA.part``), renamed onto ``dest`` only once complete and checked: ``dest`` is never half
    written. An interrupted transfer continues where it stopped (an HTTP range), in this call's retries and, when
    ``sha256`` is given, in a later call for the same file (the part file stays after a failure)."""
    dest = Path(dest)
    try:
        return _download(http, url, dest, sha256=sha256, retries=retries)
    except OSError as err:  # this side's disk: full, read-only, a folder in the way (not retried: said)
        raise InputError(f"cannot write the download: {err.strerror or err}", source=dest) from None


def _range_start(r: httpx.Response) -> int | None:
    """The first byte of a 206 reply's ``Content-Range: bytes START-END/TOTAL``; None when absent or unreadable."""
    value = r.headers.get("content-range", "")
    unit, _, spec = value.strip().partition(" ")
    start = spec.split("-", 1)[0]
    return int(start) if unit.lower() == "bytes" and start.isdigit() else None


#: a part file of another checksum untouched this long is a download given up (a live one is written every second)
STALE_PART_S = 3600.0


def _remove_stale_parts(dest: Path, keep: Path) -> None:
    """Part files of earlier downloads to ``dest`` with another checksum (an older version of the file, a download
    given up): never resumable into this one, so they would only take disk space. Only those untouched for
    :data:`STALE_PART_S`: another ``plexloc download`` into the same folder may be writing one now (a same-named
    output of another job)."""
    now = time.time()
    for old in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):  # '[1]' in a name is not a character class
        if old != keep and len(old.name) == len(keep.name):
            try:
                if now - old.stat().st_mtime > STALE_PART_S:
                    old.unlink()
            except FileNotFoundError:  # removed meanwhile by another download
                pass


def _download(http: httpx.Client, url: str, dest: Path, *, sha256: str | None, retries: int) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{(sha256 or 'x' * 12)[:12]}.part")
    _remove_stale_parts(dest, part)
    if sha256 is None:
        part.unlink(missing_ok=True)  # no checksum: an earlier part file might be another file's
    last: Exception | None = None
    try:
        for _ in range(retries + 1):
            have = part.stat().st_size if part.exists() else 0
            resumed = False  # whether bytes kept from an earlier try or call are part of this one's file
            try:
                with http.stream("GET", url, headers={"Range": f"bytes={have}-"} if have else {}) as r:
                    if r.status_code == 416 and have:  # nothing after byte `have`: the part holds the whole file
                        r.read()
                        resumed = True
                    elif r.status_code not in (200, 206):
                        r.read()
                        raise _refused(f"download of {dest.name}", r)
                    else:
                        if r.status_code == 200:  # the whole file (the store ignored the range): from the start
                            have = 0
                        elif _range_start(r) != have:  # bytes from elsewhere than asked: appended they would corrupt
                            r.close()  # the file; the part is dropped and the next try asks for the whole file
                            part.unlink(missing_ok=True)
                            raise httpx.TransportError(
                                f"the store answered the range from byte {have} with "
                                f"'{r.headers.get('content-range', 'no Content-Range')}'")
                        resumed = have > 0
                        with open(part, "r+b" if have else "wb") as f:
                            f.seek(have)
                            f.truncate()
                            for data in r.iter_bytes(CHUNK):
                                f.write(data)
                h = hashlib.sha256()
                with open(part, "rb") as f:
                    while data := f.read(CHUNK):
                        h.update(data)
                if sha256 and h.hexdigest() != sha256:
                    part.unlink(missing_ok=True)
                    mismatch = ChecksumMismatch(f"{dest.name}: checksum mismatch (got {h.hexdigest()}, "
                                                f"expected {sha256})")
                    if resumed:  # the bytes kept from before were not this file's (a damaged part file): again, whole
                        last = mismatch
                        continue
                    raise mismatch
                os.replace(part, dest)
                return dest
            except (httpx.TransportError, httpx.TimeoutException) as err:
                last = err
    except BaseException:
        if sha256 is None:
            part.unlink(missing_ok=True)
        raise
    if sha256 is None:
        part.unlink(missing_ok=True)
    raise TransferError(f"download of {dest.name} failed after {retries + 1} tries: {last}")
