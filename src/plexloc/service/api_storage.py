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
from plexloc.service.storage import LocalStorage, StorageError, UploadConflict, write_all

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
    try:
        received = await anyio.to_thread.run_sync(_begin, store, key, offset)
    except UploadConflict as err:
        return JSONResponse({"detail": str(err), "offset": err.offset}, status_code=409, headers={"Upload-Offset": str(err.offset)})
    f, ctx = received
    written = offset
    buf = bytearray()
    try:
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
        except StorageError as err:
            raise HTTPException(422, str(err)) from None
    return JSONResponse({"offset": written, "complete": written == size, "sha256": digest}, headers={"Upload-Offset": str(written)})


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
    with request.app.state.sessions() as session:
        if session.scalar(select(File.id).where(File.storage_key == key)) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such upload (the file was deleted)")


def _begin(store: LocalStorage, key: str, offset: int):
    ctx = store.open_part(key, offset)
    f = ctx.__enter__()
    return f, ctx
