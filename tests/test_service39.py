"""Downloads: a ranged reply from the wrong offset, and part files of earlier versions of a file (session 39)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from plexloc.service import transfer

DATA = bytes(range(256)) * 4096 * 2  # 2 MiB
SHA = hashlib.sha256(DATA).hexdigest()


class _Store:
    """A store whose first reply is cut after ``cut`` bytes; ranged requests are answered 206 from ``wrong_start``
    (a proxy or store that ignores the asked offset yet says 206) or, when it is None, from the asked byte."""

    def __init__(self, cut: int | None, wrong_start: int | None):
        self.cut, self.wrong_start, self.ranges = cut, wrong_start, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        rng = request.headers.get("range")
        self.ranges.append(rng)
        if rng is None:
            cut, self.cut = self.cut, None
            if cut is None:
                return httpx.Response(200, content=DATA)

            def stream():
                yield DATA[:cut]
                raise httpx.ReadError("connection reset by peer")

            return httpx.Response(200, content=stream())
        asked = int(rng.split("=")[1].rstrip("-"))
        start = asked if self.wrong_start is None else self.wrong_start
        return httpx.Response(206, content=DATA[start:],
                              headers={"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"})


@pytest.mark.parametrize("sha256", [SHA, None], ids=["checksum", "no-checksum"])
def test_a_ranged_reply_from_another_offset_is_not_appended(tmp_path, sha256):
    """A reply 206 whose Content-Range starts elsewhere than the byte asked for was appended at the part's end: the
    file came out corrupted (1 MiB too long here), silently without a checksum and as a checksum error with one. Now
    the part is dropped and the next try asks for the whole file, which arrives intact."""
    store = _Store(cut=2**20, wrong_start=0)
    with httpx.Client(transport=httpx.MockTransport(store)) as h:
        out = transfer.download(h, "http://store/f", tmp_path / "locs.csv", sha256=sha256, retries=2)
    assert out.read_bytes() == DATA
    assert store.ranges == [None, f"bytes={2**20}-", None]
    assert [p.name for p in tmp_path.iterdir()] == ["locs.csv"]


def test_a_ranged_reply_from_the_asked_offset_is_still_resumed(tmp_path):
    store = _Store(cut=2**20, wrong_start=None)
    with httpx.Client(transport=httpx.MockTransport(store)) as h:
        assert transfer.download(h, "http://store/f", tmp_path / "a.bin", sha256=SHA, retries=1).read_bytes() == DATA
    assert store.ranges == [None, f"bytes={2**20}-"]


def test_part_files_of_other_versions_of_the_file_are_removed(tmp_path):
    """A download given up keeps its part file to resume later; a later download of another version of the same file
    (another checksum) could never resume it, and the part stayed for ever. Now it is removed; another file's part
    and a part of a name that only starts alike are kept."""
    old = tmp_path / f".locs.csv.{'a' * 12}.part"
    old.write_bytes(b"x" * 1000)
    other = tmp_path / f".b.csv.{'a' * 12}.part"
    other.write_bytes(b"y")
    alike = tmp_path / f".locs.csv.{'a' * 12}.part.keep"
    alike.write_bytes(b"z")
    with httpx.Client(transport=httpx.MockTransport(_Store(cut=None, wrong_start=None))) as h:
        transfer.download(h, "http://store/f", tmp_path / "locs.csv", sha256=SHA)
    assert not old.exists()
    assert other.exists() and alike.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["locs.csv", other.name, alike.name])


def test_per_user_quota_and_job_limit(tmp_path, capsys):
    """A shared server had no per-user limits: one user could fill the store or queue hundreds of jobs ahead of a
    lab's colleagues (the fair share orders claims but does not cap them). Now `serve --user-quota-gb` refuses an
    upload past the quota and a new job once over it, `--max-active-jobs` refuses a job past the limit, each with
    what is used and the way out; `status` shows the use, and `status JOB --delete` frees the space."""
    from service_support import LiveServer, make_service

    from plexloc.cli.main import main
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware
    from plexloc.service.client import Client, ServiceError

    svc = make_service(tmp_path, user_quota_bytes=4000, max_active_jobs=2)
    params = tmp_path / "p.yaml"
    params.write_text("n: 1\n")
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(b"b" * 2500)
    small.write_bytes(b"s" * 1200)
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        common = ["--server", live.url, "--token", svc.user_token]
        submit = ["submit", "ticker", *common, "--entry", "tick", "--config", str(params), "--set", "dt=0"]
        big_id = c.upload(big)["id"]
        assert main(submit) == 0
        first = capsys.readouterr().out.strip()
        assert main(submit) == 0
        capsys.readouterr()
        assert main(submit) == 2  # a third job while two are queued
        err = capsys.readouterr().err
        assert "server (429)" in err and "you have 2 jobs queued or running" in err and "(2)" in err
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.05)
        assert agent.run(max_jobs=2) == 2
        agent.close()
        use = c.usage()
        assert 2500 < use["file_bytes"] < 3200 and use["active_jobs"] == 0  # the upload, 2 outputs and 2 logs
        assert main(["status", *common]) == 0
        out, err = capsys.readouterr()
        assert len(out.splitlines()) == 2  # stdout: the jobs alone, one per line (scripts take their ids)
        assert "GB of a 3.73e-06 GB quota; jobs queued or running: 0 of at most 2" in err
        with pytest.raises(ServiceError) as refused:  # 2,500 + outputs and logs + 1,200 > 4,000
            c.upload(small)
        assert refused.value.status == 413
        assert "small.bin: your files take" in str(refused.value.detail) and "--delete" in str(refused.value.detail)
        bob = httpx.get(f"{live.url}/api/v1/usage", headers={"Authorization": f"Bearer {svc.other_token}"}).json()
        assert bob["file_bytes"] == 0 and bob["quota_bytes"] == 4000  # the quota is per user
        svc.app.state.settings.user_quota_bytes = 2000  # now over it: a new job, whose outputs would add, is refused
        assert main(submit) == 2
        assert "server (413)" in (err := capsys.readouterr().err) and "a new job: your files take" in err
        svc.app.state.settings.user_quota_bytes = 4000
        assert main(["status", first, *common, "--delete"]) == 0
        assert capsys.readouterr().out.strip() == f"deleted {first} with its outputs and log"
        c.delete_file(big_id)
        assert c.usage()["file_bytes"] < 600  # the second job's output and log
        assert c.upload(small)["size"] == 1200
        assert main(submit) == 0


def test_without_limits_usage_says_none(tmp_path):
    from service_support import LiveServer, make_service

    svc = make_service(tmp_path)
    with LiveServer(svc.app) as live:
        use = httpx.get(f"{live.url}/api/v1/usage", headers={"Authorization": f"Bearer {svc.user_token}"}).json()
    assert use["quota_bytes"] is None and use["max_active_jobs"] is None and use["file_bytes"] == 0
