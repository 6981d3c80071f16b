"""Downloads: a ranged reply from the wrong offset, and part files of earlier versions of a file (session 39)."""

from __future__ import annotations

import hashlib
import os
import time

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
    (another checksum) could never resume it, and the part stayed for ever. Now it is removed once untouched for an
    hour; a part being written now (another download into the folder), another file's part and a part of a name that
    only starts alike are kept."""
    old = tmp_path / f".locs.csv.{'a' * 12}.part"
    old.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 7200, time.time() - 7200))  # given up two hours ago
    live = tmp_path / f".locs.csv.{'b' * 12}.part"  # another download into this folder, writing now: kept
    live.write_bytes(b"w" * 10)
    other = tmp_path / f".b.csv.{'a' * 12}.part"
    other.write_bytes(b"y")
    alike = tmp_path / f".locs.csv.{'a' * 12}.part.keep"
    alike.write_bytes(b"z")
    with httpx.Client(transport=httpx.MockTransport(_Store(cut=None, wrong_start=None))) as h:
        transfer.download(h, "http://store/f", tmp_path / "locs.csv", sha256=SHA)
    assert not old.exists()
    assert other.exists() and alike.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["locs.csv", other.name, alike.name, live.name])


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
        assert "of a 3.91 KiB quota; jobs queued or running: 0 of at most 2" in err
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


def _sample(param):
    """A valid value of an application parameter, for rendering its command."""
    if param.choices:
        return param.choices[-1]
    if param.type == "boolean":
        return True
    lo, hi = param.minimum, param.maximum
    value = (lo + hi) / 2 if lo is not None and hi is not None else (lo + 1 if lo is not None else 1)
    return int(value) if param.type == "integer" else float(value)


def test_every_shipped_plexloc_command_line_is_one_the_cli_accepts():
    """plexloc-fit's mle entry point offered max_sigma and rendered --max-sigma, which `plexloc fit --method mle`
    refuses (network only): a job with it failed on its worker after its inputs were fetched. Every shipped entry
    point that runs plexloc, rendered with every parameter given, must now parse and pass the fit options' checks."""
    import argparse

    from plexloc.cli.fit import check_fit_method_options
    from plexloc.cli.main import build_parser
    from plexloc.service.apps import Registry

    parser = build_parser()
    checked = 0
    for name, app in Registry.load().apps.items():
        for version in app.versions.values():
            for entry_name, ep in version.entry_points.items():
                if ep.command[0] != "plexloc":
                    continue
                dropped = {name for group in ep.exclusive for name in group[1:]}  # one of each exclusive group
                config = ep.validate_config({k: _sample(p) for k, p in ep.params.items() if k not in dropped})
                inputs = {slot: [f"{slot}{(s.suffixes or ['.dat'])[0]}"] for slot, s in ep.inputs.items()}
                argv = ep.render(config=config, inputs=inputs, output_dir="o", work_dir="w", device="cpu")
                try:
                    args = parser.parse_args(argv[1:])
                except SystemExit:
                    pytest.fail(f"{name} {entry_name}: plexloc refuses {argv}")
                if args.func.__module__ in ("plexloc.cli.fit", "plexloc.cli.process"):
                    check_fit_method_options(args)
                checked += 1
    assert checked >= 6
    assert isinstance(parser, argparse.ArgumentParser)


def test_parameters_the_program_refuses_together_are_refused_at_submission():
    """plexloc-train took steps and minutes together and its job failed on the worker (`--minutes: not allowed with
    argument --steps`) after the configuration and files had been fetched; the entry point's `exclusive` groups refuse
    it when the job is submitted, naming both."""
    from plexloc.errors import InputError
    from plexloc.service.apps import EntryPoint, Registry

    _, _, train = Registry.load().resolve("plexloc-train", None, None)
    assert train.validate_config({"steps": 5})["steps"] == 5
    with pytest.raises(InputError, match=r"config.minutes: give at most one of steps, minutes; got steps=5, minutes=2.0"):
        train.validate_config({"steps": 5, "minutes": 2.0})
    with pytest.raises(ValueError, match=r"exclusive: \['steps', 'hours'\] must name two or more parameters \(\['hours'\]"):
        EntryPoint(command=["x"], params={"steps": {"type": "integer"}}, exclusive=[["steps", "hours"]])
