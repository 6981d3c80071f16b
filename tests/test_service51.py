"""Session 51's job-service fixes: a transfer whose signed link expired gets a fresh one and resumes; migration 0006
stands alone; ..."""

from __future__ import annotations

import sys
import textwrap
import time

import httpx
import pytest

from service_support import AgentThread, LiveServer, all_log_lines, make_service

from plexloc.service.client import Client

#: copies its input into the output folder (the bytes the worker fetched, to compare)
COPIER = """
import pathlib, shutil, sys
shutil.copy(sys.argv[1], pathlib.Path(sys.argv[2]) / "copy.bin")
"""


def copier_app(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "copier.py").write_text(COPIER)
    (folder / "copier.yaml").write_text(textwrap.dedent(f"""
        name: copier
        versions:
          "1":
            entry_points:
              run:
                command: ["{sys.executable}", "{folder / 'copier.py'}", "{{input.data}}", "{{output_dir}}"]
                inputs: {{data: {{kind: data}}}}
                outputs: [{{path: copy.bin, required: true}}]
                hardware: {{cpus: 1, memory_mb: 10}}
                timeout_s: 60
        """))
    return folder


class CutOnce(httpx.HTTPTransport):
    """Loopback transport that cuts the first download from the store after 1.5 MB, then waits ``stall_s``
    (past the signed link's life) before the cut is seen; records every store request's Range header."""

    def __init__(self, stall_s: float):
        super().__init__()
        self.stall_s, self.cut, self.ranges = stall_s, False, []

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method != "GET" or "/storage/v1/" not in request.url.path:
            return response
        self.ranges.append((request.headers.get("range"), response.status_code))
        if self.cut or response.status_code != 200:
            return response
        self.cut = True
        inner, stall = response.stream, self.stall_s

        class Stream(httpx.SyncByteStream):
            def __iter__(self):
                sent = 0
                for data in inner:  # (the download writes whole MiB chunks: 1.5 MiB leaves 1 MiB in its part file)
                    yield data
                    sent += len(data)
                    if sent >= 1_500_000:
                        break
                time.sleep(stall)
                raise httpx.ReadError("connection cut (test)")

            def close(self):
                inner.close()

        return httpx.Response(response.status_code, headers=response.headers, stream=Stream(),
                              extensions=response.extensions, request=request)


@pytest.fixture
def short_links(tmp_path):
    svc = make_service(tmp_path, url_ttl_s=2, apps_dirs=[copier_app(tmp_path / "apps")])
    with LiveServer(svc.app) as live:
        yield svc, live
    svc.app.state.engine.dispose()


def test_a_download_cut_after_its_link_expired_resumes_with_a_fresh_link(short_links, tmp_path):
    """An input's download that outlived its signed URL (2 s here, an hour by default) and was then cut: the worker
    asks for a fresh link and resumes from the bytes it has. Before, the retry's "refused (403)" failed the job."""
    svc, live = short_links
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with Client(live.url, svc.user_token) as c:
        fid = c.upload(src)["id"]
        job = c.submit("copier", inputs={"data": [fid]})
        cut = CutOnce(stall_s=3.2)
        worker = AgentThread(live.url, svc.worker_token)
        worker.agent.bytes_http.close()
        worker.agent.bytes_http = httpx.Client(timeout=60, transport=cut)
        with worker:
            done = c.wait(job["id"], timeout=60)
        lines = all_log_lines(c, job["id"])
        assert done["state"] == "succeeded", (done.get("error"), lines)
        assert any("asking the server for a fresh one and resuming" in line for line in lines), lines
        # the fresh link's request asked for the bytes after those kept (a range), not the whole file again
        resumed = [r for r, status in cut.ranges if r is not None and status == 206]
        assert resumed and int(resumed[-1].split("=")[1].rstrip("-")) == 1024 * 1024, cut.ranges
        assert any(status == 403 for _, status in cut.ranges), cut.ranges
        out = tmp_path / "out"
        c.download(job["id"], out)
        assert (out / "copy.bin").read_bytes() == data


class StallFirstPut(httpx.HTTPTransport):
    """Loopback transport whose first PUT to the store waits ``stall_s`` (past the link's life) and is then cut."""

    def __init__(self, stall_s: float):
        super().__init__()
        self.stall_s, self.cut, self.statuses = stall_s, False, []

    def handle_request(self, request):
        if request.method == "PUT" and "/storage/v1/" in request.url.path and not self.cut:
            self.cut = True
            time.sleep(self.stall_s)
            raise httpx.WriteError("connection cut (test)")
        response = super().handle_request(request)
        if "/storage/v1/" in request.url.path:
            self.statuses.append((request.method, response.status_code))
        return response


def test_the_client_renews_an_expired_link_for_an_upload_and_a_download(short_links, tmp_path):
    """``plexloc submit``'s upload and ``plexloc download`` whose link expired before a cut transfer was resumed: a
    fresh link (``POST /files/ID/upload-url``; the outputs listed again), where both failed with "refused (403)"."""
    svc, live = short_links
    data = bytes(range(256)) * (3 * 4096)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with Client(live.url, svc.user_token) as c:
        put = StallFirstPut(stall_s=3.2)
        c.bytes_http.close()
        c.bytes_http = httpx.Client(timeout=60, transport=put)
        f = c.upload(src)
        assert f["state"] == "ready" and f["size"] == len(data)
        assert ("HEAD", 403) in put.statuses and put.statuses[-1][0] == "PUT", put.statuses
        job = c.submit("copier", inputs={"data": [f["id"]]})
        with AgentThread(live.url, svc.worker_token):
            assert c.wait(job["id"], timeout=60)["state"] == "succeeded"
        cut = CutOnce(stall_s=3.2)
        c.bytes_http.close()
        c.bytes_http = httpx.Client(timeout=60, transport=cut)
        out = tmp_path / "out"
        c.download(job["id"], out, kinds=("output",))
        assert (out / "copy.bin").read_bytes() == data
        assert [s for _, s in cut.ranges] == [200, 403, 206], cut.ranges
