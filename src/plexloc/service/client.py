"""A small Python client of the user API.

>>> from plexloc.service import Client                         # doctest: +SKIP
>>> c = Client("http://localhost:8000", token)                  # doctest: +SKIP
>>> cfg = c.upload("examples/2d_gaussian.yaml")                 # doctest: +SKIP
>>> job = c.submit("plexloc-simulate", config={"frames": 10}, inputs={"config": [cfg["id"]]})  # doctest: +SKIP
>>> c.wait(job["id"])["state"]                                   # doctest: +SKIP
'succeeded'
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from plexloc.service import transfer


def _q(identifier: str) -> str:
    """An id as one path segment (``../x`` or ``a?b`` name no other resource)."""
    return urllib.parse.quote(str(identifier), safe="")


class ServiceError(Exception):
    """The server answered with an error (``status``, ``detail``)."""

    def __init__(self, status: int, detail: Any):
        self.status, self.detail = status, detail
        super().__init__(f"HTTP {status}: {detail}")


def check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise ServiceError(r.status_code, detail)
    return None if r.status_code == 204 or not r.content else r.json()


class Client:
    """The user API of a plexloc server, with token ``token``."""

    def __init__(self, server: str, token: str, *, timeout: float = 60.0):
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        self.bytes_http = httpx.Client(timeout=timeout)  # signed URLs: no token
        #: files this large go to an S3 store as a multipart upload (resumable by part), in parts of
        #: ``part_size`` bytes (None: the server's choice, 64 MiB)
        self.multipart_min = 64 * 1024**2
        self.part_size: int | None = None

    def close(self) -> None:
        self.http.close()
        self.bytes_http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str, **params) -> Any:
        return check(self.http.get(path, params={k: v for k, v in params.items() if v is not None}))

    def _post(self, path: str, json: Any = None) -> Any:
        return check(self.http.post(path, json=json))

    # files
    def upload(self, path: str | os.PathLike, *, name: str | None = None, reuse: bool = False) -> dict[str, Any]:
        """Upload a file (streamed, resumed, SHA-256 checked) into the user's space; returns the file. ``reuse``: a
        file of the user's space with the same name, size and SHA-256 (an upload, complete) is returned instead, with
        ``"reused": True``, and nothing is sent (a configuration submitted with every job was stored once per job); a
        file that another upload completed first while this one's bytes were sent is answered when this one completes
        (the server removes this copy), also with ``"reused": True``."""
        path = Path(path)
        name = name or path.name
        size, sha256 = path.stat().st_size, transfer.sha256_of(path)
        if reuse and (same := self.find_upload(name, size, sha256)) is not None:
            return {**same, "reused": True}
        created = self._post("/files", {"name": name, "size": size, "sha256": sha256})
        fid = created["file"]["id"]
        try:
            if "/storage/v1/" not in created["upload_url"] and path.stat().st_size >= self.multipart_min:
                self._upload_parts(fid, path)
            else:
                try:
                    transfer.upload(self.bytes_http, created["upload_url"], path)
                except transfer.LinkRefused:  # the link expired (url_ttl_s) during a long or cut upload: a fresh one,
                    url = self._post(f"/files/{_q(fid)}/upload-url")["upload_url"]  # resumed at the store's offset
                    transfer.upload(self.bytes_http, url, path)
            done = self._post(f"/files/{fid}/complete" + ("?reuse=true" if reuse else ""))
            # another submission uploaded the same file meanwhile: its copy is the one kept (this one was removed)
            return {**done, "reused": True} if done["id"] != fid else done
        except BaseException:
            # an upload that failed after its retries, or was interrupted (Ctrl-C), is not resumed by a later call (each
            # registers a new file): its registration, counted against the quota at its full size until it expired
            # (days later), and the bytes stored so far are removed now (best effort: the failure is what is told)
            with contextlib.suppress(Exception):
                self.delete_file(fid)
            raise

    def _upload_parts(self, file_id: str, path: Path, *, retries: int = 3) -> None:
        """A large file to an S3 store in parts; after a failure the server's plan lists only the
        parts still missing, so the upload resumes where it stopped."""
        last: Exception | None = None
        for _ in range(retries + 1):
            plan = self._post(f"/files/{_q(file_id)}/parts", {"part_size": self.part_size} if self.part_size else None)
            try:
                transfer.upload_parts(self.bytes_http, plan, path)
                return
            except (transfer.TransferError, httpx.TransportError) as err:
                last = err
        raise transfer.TransferError(f"upload of {path.name} failed after {retries + 1} tries: {last}")

    def files(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self._get("/files", kind=kind)

    def find_upload(self, name: str, size: int, sha256: str) -> dict[str, Any] | None:
        """The newest complete upload of the user's with this name, size and SHA-256, or None. The server is asked for
        that hash only (an older server, which ignores the filter, answers every file: the match is made here)."""
        for f in self._get("/files", kind="upload", sha256=sha256.lower()):
            if (f.get("kind") == "upload" and f.get("state") == "ready" and f.get("name") == name and f.get("size") == size
                    and (f.get("sha256") or "").lower() == sha256.lower()):
                return f
        return None

    def delete_file(self, file_id: str) -> None:
        check(self.http.delete(f"/files/{_q(file_id)}"))

    def applications(self) -> list[dict[str, Any]]:
        return self._get("/applications")

    # jobs
    def submit(
        self,
        application: str,
        *,
        version: str | None = None,
        entry_point: str | None = None,
        config: dict[str, Any] | None = None,
        inputs: dict[str, list[str] | str] | None = None,
        hardware: dict[str, int] | None = None,
        timeout_s: float | None = None,
        priority: int = 0,
    ) -> dict[str, Any]:
        inputs = {k: [v] if isinstance(v, str) else list(v) for k, v in (inputs or {}).items()}
        body = {
            "application": application, "version": version, "entry_point": entry_point, "config": config or {},
            "inputs": inputs, "hardware": hardware, "timeout_s": timeout_s, "priority": priority,
        }
        return self._post("/jobs", body)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._get(f"/jobs/{_q(job_id)}")

    def jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        return self._get("/jobs", state=state)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._post(f"/jobs/{_q(job_id)}/cancel")

    def rerun(self, job_id: str) -> dict[str, Any]:
        return self._post(f"/jobs/{_q(job_id)}/rerun")

    def delete(self, job_id: str) -> None:
        check(self.http.delete(f"/jobs/{_q(job_id)}"))

    def usage(self) -> dict[str, Any]:
        """Jobs and compute used; bytes of one's files against the quota; jobs not ended against the limit."""
        return self._get("/usage")

    def log(self, job_id: str, after: int = 0) -> dict[str, Any]:
        return self._get(f"/jobs/{_q(job_id)}/log", after=after)

    def outputs(self, job_id: str) -> list[dict[str, Any]]:
        return self._get(f"/jobs/{_q(job_id)}/outputs")

    def wait(self, job_id: str, *, timeout: float = 600.0, poll_s: float = 0.25, until: tuple = ("succeeded", "failed", "cancelled")) -> dict[str, Any]:
        """Poll until the job reaches a state in ``until`` (default: any final state)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in until:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(poll_s)

    def download(self, job_id: str, out_dir: str | os.PathLike, *, kinds: tuple = ("output", "artifact", "log")) -> list[Path]:
        """Download the job's outputs into ``out_dir`` (names as the job gave them, e.g. ``STEM/locs.csv``)."""
        out = Path(out_dir)
        paths = []
        for f in self.outputs(job_id):
            if f["kind"] in kinds:
                dest = (out / f["name"]).resolve()
                if out.resolve() not in dest.parents:
                    raise ServiceError(500, f"output name {f['name']!r} leaves the output folder")
                try:
                    paths.append(transfer.download(self.bytes_http, f["url"], out / f["name"], sha256=f["sha256"]))
                except transfer.LinkRefused:
                    # the link expired (url_ttl_s, an hour by default) while the files before this one were fetched, or
                    # during this one's cut transfer: a fresh one, and the download resumes from its part file
                    fresh = {g["id"]: g for g in self.outputs(job_id)}.get(f["id"])
                    if fresh is None:
                        raise
                    paths.append(transfer.download(self.bytes_http, fresh["url"], out / f["name"], sha256=f["sha256"]))
        return paths
