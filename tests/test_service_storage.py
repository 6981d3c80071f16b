"""Signed URLs and the local store's byte route: expiry, tampering, chunked resumable uploads, checksums."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from service_support import auth, http, live, service  # noqa: F401 (fixtures)

from plexloc.service import transfer
from plexloc.service.security import SignatureError, Signer


def test_signer_roundtrip_expiry_and_tampering():
    clock = [1000.0]
    s = Signer(b"secret", clock=lambda: clock[0])
    q = s.sign("get", "u/a/b", ttl_s=60, name="x.tif")
    assert s.verify("get", "u/a/b", q)["name"] == "x.tif"
    with pytest.raises(SignatureError, match="signature"):
        s.verify("put", "u/a/b", q)  # another operation
    with pytest.raises(SignatureError, match="signature"):
        s.verify("get", "u/a/c", q)  # another key
    with pytest.raises(SignatureError, match="signature"):
        s.verify("get", "u/a/b", {**q, "name": "y.tif"})
    with pytest.raises(SignatureError, match="signature"):
        s.verify("get", "u/a/b", {**q, "exp": str(int(q["exp"]) + 3600)})  # a longer life
    with pytest.raises(SignatureError, match="signature"):
        Signer(b"other").verify("get", "u/a/b", q)
    clock[0] += 61
    with pytest.raises(SignatureError, match="expired"):
        s.verify("get", "u/a/b", q)


def _create(http, token, name, data: bytes, *, sha=True):
    body = {"name": name, "size": len(data)}
    if sha:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    r = http.post("/api/v1/files", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def _offset(http, url) -> int:
    r = http.head(url)
    assert r.status_code == 200
    return int(r.headers["Upload-Offset"])


def test_chunked_resumable_upload_with_checksum(http, service):
    data = os.urandom(3 * 1024 * 1024 + 17)
    up = _create(http, service.user_token, "movie.tif", data)
    url, fid = up["upload_url"], up["file"]["id"]
    assert _offset(http, url) == 0
    # first piece, then an "interrupted" connection; the store keeps what arrived
    r = http.put(url + "&offset=0", content=data[:1_000_000])
    assert r.status_code == 200 and r.json() == {"offset": 1_000_000, "complete": False, "sha256": None}
    assert _offset(http, url) == 1_000_000
    # a chunk at the wrong offset is refused with the right one
    r = http.put(url + "&offset=5", content=data[5:10])
    assert r.status_code == 409 and r.json()["offset"] == 1_000_000
    # not complete yet: the file cannot be used
    r = http.post(f"/api/v1/files/{fid}/complete", headers=auth(service.user_token))
    assert r.status_code == 422 and "1000000 of" in r.json()["detail"]
    # resume where it stopped, in two more chunks
    http.put(url + "&offset=1000000", content=data[1_000_000:2_000_000])
    r = http.put(url + "&offset=2000000", content=data[2_000_000:])
    assert r.json()["complete"] and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    r = http.post(f"/api/v1/files/{fid}/complete", headers=auth(service.user_token))
    assert r.status_code == 200 and r.json()["state"] == "ready"
    # download: streamed, identical; a byte range resumes a download
    dl = http.get(f"/api/v1/files/{fid}/download-url", headers=auth(service.user_token)).json()["url"]
    assert http.get(dl).content == data
    part = http.get(dl, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]


def test_client_upload_resumes_after_interruption(http, service, tmp_path):
    data = os.urandom(2_500_000)
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    up = _create(http, service.user_token, "a.bin", data)
    http.put(up["upload_url"] + "&offset=0", content=data[:700_000])  # an earlier, interrupted attempt
    transfer.upload(http, up["upload_url"], path, chunk=100_000)  # continues at 700000
    r = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(service.user_token))
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    got = transfer.download(http, http.get(f"/api/v1/files/{up['file']['id']}/download-url", headers=auth(service.user_token)).json()["url"], tmp_path / "b.bin", sha256=r.json()["sha256"])
    assert got.read_bytes() == data


def test_checksum_mismatch_is_rejected_and_discarded(http, service):
    data = b"x" * 1000
    up = _create(http, service.user_token, "a.bin", data)
    r = http.put(up["upload_url"] + "&offset=0", content=b"y" * 1000)
    assert r.status_code == 422 and "checksum mismatch" in r.json()["detail"]
    assert _offset(http, up["upload_url"]) == 0  # start again from nothing
    assert http.put(up["upload_url"] + "&offset=0", content=data).json()["complete"]


def test_without_declared_checksum_the_store_computes_it(http, service):
    data = b"hello"
    up = _create(http, service.user_token, "h.txt", data, sha=False)
    http.put(up["upload_url"], content=data)
    r = http.post(f"/api/v1/files/{up['file']['id']}/complete", headers=auth(service.user_token))
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_more_bytes_than_declared_is_413(http, service):
    up = _create(http, service.user_token, "a.bin", b"12345")
    r = http.put(up["upload_url"], content=b"123456")
    assert r.status_code == 413


def _with(url: str, **changes) -> str:
    parts = urlsplit(url)
    q = dict(parse_qsl(parts.query))
    q.update(changes)
    return parts._replace(query=urlencode(q)).geturl()


def test_tampered_expired_or_misused_urls_are_403(http, service):
    up = _create(http, service.user_token, "a.bin", b"abc")
    url = up["upload_url"]
    assert http.put(_with(url, size="10"), content=b"abc").status_code == 403  # bigger size
    assert http.put(_with(url, exp="99999999999"), content=b"abc").status_code == 403  # longer life
    assert http.put(_with(url, sig="0" * 64), content=b"abc").status_code == 403
    other_key = url.replace(up["file"]["id"], "0" * 16)
    assert http.put(other_key, content=b"abc").status_code == 403
    assert http.get(url).status_code == 403  # an upload URL does not download
    traversal = url.replace("/storage/v1/u/", "/storage/v1/../../u/")
    assert http.put(traversal, content=b"abc").status_code in (403, 404)
    # expired: sign with a life in the past
    signer = service.app.state.signer
    key = f"u/x/{up['file']['id']}"
    q = signer.sign("get", key, ttl_s=-1)
    r = http.get(f"/storage/v1/{key}?{urlencode(q)}")
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_a_checksum_mismatch_is_retried_twice_not_for_the_whole_storage_wait():
    """A download whose bytes are not the file's: tried three times in all, then the job's failure (it used to be
    retried as an outage for up to storage_wait_s, 10 minutes)."""
    import threading
    import time
    from types import SimpleNamespace

    from plexloc.service import transfer
    from plexloc.service.agent import Agent

    calls = []

    def fn():
        calls.append(1)
        raise transfer.ChecksumMismatch("m.tif: checksum mismatch")

    rep = SimpleNamespace(cancel=threading.Event(), lost=threading.Event(), log=lambda line: None)
    t0 = time.monotonic()
    with pytest.raises(transfer.ChecksumMismatch):
        Agent._retrying(SimpleNamespace(storage_wait_s=600.0), "download", fn, rep)
    assert len(calls) == 3 and time.monotonic() - t0 < 10
