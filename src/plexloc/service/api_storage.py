"""The local store's byte route (``/storage/v1/KEY?...&sig=``): only signed URLs open it.

``GET``: download (streamed from disk; HTTP ranges resume a download). ``HEAD`` on an upload URL:
``Upload-Offset`` says how many bytes arrived. ``PUT ...&offset=N``: append the body from byte N,
written in chunks as it arrives; when the declared size is reached the SHA-256 is checked and the
file moved into place. No bytes are ever held whole in memory.
"""

from __future__ import annotations

import os

import anyio
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select

from plexloc.service.db import File
from plexloc.service.security import SignatureError
from plexloc.service.storage import LocalStorage, StorageError, UploadConflict, sha256_file, write_all

router = APIRouter(prefix="/storage/v1", tags=["storage"], include_in_schema=False)
FLUSH = 4 * 1024 * 1024


def _store(request: Request) -> LocalStorage:
    store = request.app.state.storage
    if not isinstance(store, LocalStorage):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this server keeps files in an object store")
    return store


def _verify(store: LocalStorage, op: str, key: str, request: Request) -> dict[str, str]:
    try:
        store.path(key)
        return store.signer.verify(op, key, dict(request.query_params))
    except (SignatureError, StorageError) as err:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"signed URL refused: {err}") from None


@router.get("/{key:path}")
def download(key: str, request: Request) -> FileResponse:
    store = _store(request)
    fields = _verify(store, "get", key, request)
    path = store.path(key)
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(path, filename=fields.get("name") or path.name, media_type="application/octet-stream")


@router.head("/{key:path}")
def upload_offset(key: str, request: Request) -> Response:
    store = _store(request)
    fields = _verify(store, "put", key, request)
    return Response(headers={"Upload-Offset": str(store.received(key)), "Upload-Length": fields["size"]})


@router.put("/{key:path}")
async def upload(key: str, request: Request) -> JSONResponse:
    store = _store(request)
    fields = _verify(store, "put", key, request)
    await anyio.to_thread.run_sync(_registered, request, key)
    size = int(fields["size"])
    try:
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "offset must be an integer") from None
    length = request.headers.get("content-length")
    if length is not None and offset + int(length) > size:
        raise HTTPException(413, f"{offset} + {length} bytes exceed the declared size {size}")
    # the file may be deleted at any moment of the request (a user's delete, an expired upload, an output replaced):
    # after each thing it makes on disk, the request asks again (_still_registered) and removes what it made
    try:
        answer = await _receive(request, store, key, fields, offset, size)
    except Exception:
        await _gone_meanwhile(request, store, key)
        raise
    await _gone_meanwhile(request, store, key)
    return answer


async def _gone_meanwhile(request: Request, store: LocalStorage, key: str) -> None:
    """404 when the file of ``key`` was deleted while this request ran, and what it stored removed (a part file it made
    again, or the file it moved into place after the deletion had removed the part): no bytes that no file owns, which
    nothing would ever delete."""
    if not await anyio.to_thread.run_sync(_still_registered, request, key):
        await anyio.to_thread.run_sync(store.delete, key)
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            "no such upload: the file was deleted while this request was storing its bytes (discarded)")


async def _receive(request: Request, store: LocalStorage, key: str, fields: dict[str, str], offset: int,
                   size: int) -> JSONResponse:
    """Append the body to the part file from ``offset``; move it into place once ``size`` bytes are there."""
    try:
        received = await anyio.to_thread.run_sync(_begin, store, key, offset)
    except UploadConflict as err:
        return JSONResponse({"detail": str(err), "offset": err.offset}, status_code=409, headers={"Upload-Offset": str(err.offset)})
    f, ctx = received
    written = offset
    buf = bytearray()
    try:
        # deleted between the first check and the opening of the part file (which made it again): not a byte more
        await _gone_meanwhile(request, store, key)
        async for chunk in request.stream():
            written += len(chunk)
            if written > size:
                raise HTTPException(413, f"more bytes than the declared size {size}")
            buf += chunk
            if len(buf) >= FLUSH:
                await anyio.to_thread.run_sync(write_all, f, bytes(buf))
                buf.clear()
        if buf:
            await anyio.to_thread.run_sync(write_all, f, bytes(buf))
    except OSError as err:  # the store's disk is full (or over its quota): said, not a bare 500 and a traceback
        stored = await anyio.to_thread.run_sync(_stored_after_error, store, key, f)
        return JSONResponse(
            {"detail": f"the server's file store cannot take more bytes ({err.strerror or err}): {stored} of {size} "
                       "bytes stored; ask the server's administrator to free space, then upload again (it resumes)",
             "offset": stored},
            status_code=507, headers={"Upload-Offset": str(stored)})
    finally:
        await anyio.to_thread.run_sync(ctx.__exit__, None, None, None)
    digest = None
    if written == size:
        try:
            digest = await anyio.to_thread.run_sync(lambda: store.complete_part(key, sha256=fields.get("sha256")))
        except FileNotFoundError:  # the part file was removed while the bytes arrived (they went nowhere)
            await _gone_meanwhile(request, store, key)  # removed by a deletion of the file: 404
            digest = await anyio.to_thread.run_sync(_completed, store, key)
            if digest is None:  # removed by other hands (an administrator, a clean-up): said, and where to resume
                stored = await anyio.to_thread.run_sync(store.received, key)
                return JSONResponse(
                    {"detail": f"the bytes stored for this upload were removed while this request wrote them (its "
                               f"bytes up to {written} of {size} are lost): upload again from byte {stored}",
                     "offset": stored},
                    status_code=409, headers={"Upload-Offset": str(stored)})
            # else another request (a complete, a second PUT) moved every byte into place meanwhile
        except StorageError as err:
            raise HTTPException(422, str(err)) from None
    return JSONResponse({"offset": written, "complete": written == size, "sha256": digest}, headers={"Upload-Offset": str(written)})


def _completed(store: LocalStorage, key: str) -> str | None:
    """The SHA-256 of the complete file of ``key``, None when it is not in place."""
    path = store.path(key)
    side = path.with_name(path.name + ".sha256")
    try:
        return side.read_text().strip() if side.exists() else (sha256_file(path) if path.exists() else None)
    except FileNotFoundError:
        return None


def _stored_after_error(store: LocalStorage, key: str, f) -> int:
    """Bytes of the part file after a failed write (unbuffered: what it holds reached the disk); the upload resumes
    there."""
    try:
        return os.fstat(f.fileno()).st_size
    except OSError:
        return store.received(key)


def _registered(request: Request, key: str) -> None:
    """404 unless a file of ``key`` is registered: the signed URL of a file deleted since (a user's delete, an expired
    upload, an output an attempt replaced) lives on until it expires, and must not store bytes no file owns, which
    nothing would ever delete."""
    if not _still_registered(request, key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such upload (the file was deleted)")


def _still_registered(request: Request, key: str) -> bool:
    """Whether a file of ``key`` is registered, waiting for a deletion of it in progress to end: its row is locked
    (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` transactions run one at a time), and every deleter removes the row before
    the bytes (:func:`plexloc.service.jobs.delete_files`). So a PUT that asks this after each thing it makes on disk
    (the part file, the file moved into place) either sees the deletion and removes what it made, or made it before
    the deleter removes the bytes: no bytes are left that no file owns."""
    with request.app.state.sessions() as session:
        found = session.scalar(select(File.id).where(File.storage_key == key).with_for_update()) is not None
        session.commit()
        return found


def _begin(store: LocalStorage, key: str, offset: int):
    ctx = store.open_part(key, offset)
    f = ctx.__enter__()
    return f, ctx
