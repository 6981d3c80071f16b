"""Session 51's second set of job-service fixes: ``plexloc status JOB --rerun`` (the full store's error names it); a
store whose disk fills partway through an upload says so in the full store's words (worker and client); a message's
``{input.SLOT}`` names each of a slot's several files."""

from __future__ import annotations

import errno

from service_support import AgentThread, LiveServer, make_service, wait_for_stage

from plexloc.service.client import Client


def _disk_full(monkeypatch):
    """The store's disk is full while the bytes arrive (its free-space check before the upload passed)."""
    import plexloc.service.api_storage as api_storage

    def write_all(f, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api_storage, "write_all", write_all)


def test_status_rerun_submits_the_job_again_and_waits_for_it(tmp_path, capsys):
    """The command line had no way to re-run a job (only the web page and ``Client.rerun``): ``plexloc status J
    --rerun`` prints the new job's id, and with ``--wait`` its end."""
    from plexloc.cli.main import main

    svc = make_service(tmp_path)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            opts = ["--server", live.url, "--token", svc.user_token]
            with AgentThread(live.url, svc.worker_token):
                job = c.submit("ticker", entry_point="tick", config={"n": 1})
                assert c.wait(job["id"], timeout=60)["state"] == "succeeded"
                capsys.readouterr()
                rc = main(["status", job["id"], "--rerun", "--wait", *opts])
                out, err = capsys.readouterr()
                assert rc == 0, (out, err)
                new_id, state = out.split()
                assert new_id != job["id"] and state == "succeeded", out
                assert f"job {new_id} re-runs job {job['id']}" in err, err
                again = c.job(new_id)
                assert again["rerun_of"] == job["id"] and again["config"]["n"] == 1, again
                assert main(["status", "--rerun", *opts]) == 2  # no JOB
                assert main(["status", "--files", "--rerun", *opts]) == 2
                assert main(["status", job["id"], "--rerun", "--cancel", *opts]) == 2
                assert "--rerun submits the job again as a new job" in capsys.readouterr().err
    finally:
        svc.app.state.engine.dispose()


def test_a_store_that_fills_during_an_output_upload_fails_the_job_as_a_full_store(tmp_path, monkeypatch):
    """The store's disk filled during the PUT of an output (507 from the store itself): the worker waited it out as an
    outage and the job failed with "TransferError: upload of ticks.txt refused (507): {JSON}". Now it waits for the
    space as for a full store and fails in its words (file, size, what to do), naming ``plexloc status J --rerun``."""
    _disk_full(monkeypatch)
    svc = make_service(tmp_path)
    wait = 3.0
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, storage_wait_s=wait):
                job = c.submit("ticker", entry_point="tick", config={"n": 1})
                done = c.wait(job["id"], timeout=60)
        error = done["error"]
        assert done["state"] == "failed"
        assert error.startswith("the server's file store stayed full for "), error
        assert "outputs were not kept (ticks.txt: the server's file store filled up during the upload of the file's" in error
        assert "0 of them stored: ask the server's administrator to free space)" in error, error
        assert f"submit the job again (plexloc status {job['id']} --rerun, or Re-run on the web page)" in error, error
        assert "refused (507)" not in error and "TransferError" not in error, error
    finally:
        svc.app.state.engine.dispose()


def test_a_store_that_fills_during_a_submit_upload_says_so(tmp_path, monkeypatch, capsys):
    """``plexloc submit`` of a file the store's disk cannot take said "transfer failed: upload of big.bin refused
    (507): {JSON}"; now the file, its size, and what to do."""
    from plexloc.cli.main import main
    from plexloc.service import transfer

    _disk_full(monkeypatch)
    svc = make_service(tmp_path)
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 200_000)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            try:
                c.upload(src)
            except transfer.StoreFilled as err:
                said = str(err)
            else:
                raise AssertionError("the upload went through")
            assert said == ("big.bin: the server's file store filled up during the upload of the file's 200000 bytes, "
                            "0 of them stored: ask the server's administrator to free space"), said
            assert c.files(kind="upload") == []  # its registration removed (nothing counts against the quota)
            rc = main(["submit", "ticker", "--entry", "tick", "--input", f"data={src}", "--server", live.url,
                       "--token", svc.user_token])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"upload failed: {said}, then submit again" in err, err
    finally:
        svc.app.state.engine.dispose()


def test_a_fits_advice_names_each_of_several_models(tmp_path):
    """A job with several files in the slot a message names (``{input.model}``) named only the first, as if it were
    the job's only one: now each (the first four, the rest counted)."""
    from sqlalchemy import select

    from plexloc.service.db import File, Job, JobInput, JobLog, User

    svc = make_service(tmp_path)
    fit_said = ("plexloc fit: warning: the model detected poorly on its own validation set (JI 2.0 % at step 10, 0.1 "
                "min of training): it is not trained enough to fit movies; train it longer (plexloc train CONFIG --out "
                "RUN --resume --minutes M), on a GPU")
    with svc.sessions().begin() as s:
        uid = s.scalar(select(User.id).where(User.name == "alice"))
        for jid, models in (("F2", 2), ("F6", 6)):
            s.add(Job(id=jid, user_id=uid, application="plexloc-fit", version="0.1", entry_point="fit",
                      state="succeeded", warning_count=1))
            s.flush()
            s.add(JobLog(job_id=jid, line=fit_said))
            for i in range(models):
                fid = f"{jid}m{i}"
                s.add(File(id=fid, user_id=uid, name="model.pt", size=1, storage_key=f"k/{fid}", kind="artifact",
                           state="ready", job_id=None))
                s.flush()
                s.add(JobInput(job_id=jid, slot="model", position=i, file_id=fid))
    with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
        said = {j: c.job(j)["warnings"][0] for j in ("F2", "F6")}
    svc.app.state.engine.dispose()
    assert ("--input init_from=MODEL (one of file:F2m0, file:F2m1) --set minutes=M), on a GPU") in said["F2"], said
    assert ("--input init_from=MODEL (one of file:F6m0, file:F6m1, file:F6m2, file:F6m3 and 2 more) --set "
            "minutes=M)") in said["F6"], said



def test_status_rerun_of_a_job_still_running_says_it_runs_beside_it(tmp_path, capsys):
    """(review) ``--rerun`` of a job that still runs made a second job beside it, silently ("job N re-runs job J" read
    as a restart); and a re-run that no worker present can take (a GPU job, CPU workers) was not said, as plexloc submit
    says it."""
    from plexloc.cli.main import main

    svc = make_service(tmp_path)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            opts = ["--server", live.url, "--token", svc.user_token]
            with AgentThread(live.url, svc.worker_token):
                job = c.submit("ticker", entry_point="tick", config={"n": 400, "dt": 0.05})
                wait_for_stage(c, job["id"], "running")
                capsys.readouterr()
                assert main(["status", job["id"], "--rerun", *opts]) == 0
                out, err = capsys.readouterr()
                new_id = out.strip()
                assert (f"warning: job {job['id']} is still running: the re-run runs beside it, not instead of it "
                        f"(plexloc status {job['id']} --cancel stops it)") in err, err
                c.cancel(new_id)
                c.cancel(job["id"])
                gpu = c.submit("ticker", entry_point="gpu")
                c.cancel(gpu["id"])
                capsys.readouterr()
                assert main(["status", gpu["id"], "--rerun", *opts]) == 0
                out, err = capsys.readouterr()
                again = c.job(out.strip())
                assert again["note"] and f"job {again['id']} is queued, but {again['note']}" in err, (err, again)
                assert "is still" not in err, err  # the cancelled job: no warning
                c.cancel(again["id"])
    finally:
        svc.app.state.engine.dispose()


def test_a_store_write_error_that_is_not_a_full_disk_keeps_its_reason(tmp_path, monkeypatch):
    """(review) The store answers 507 for any error of its writes: an I/O error read "filled up during the upload ...:
    ask the server's administrator to free space" (its reason dropped; a worker waited for space). Now the reason."""
    import plexloc.service.api_storage as api_storage
    from plexloc.service import transfer

    def write_all(f, data):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(api_storage, "write_all", write_all)
    svc = make_service(tmp_path)
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 1000)
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            try:
                c.upload(src)
            except transfer.TransferError as err:
                caught = err
            else:
                raise AssertionError("the upload went through")
            assert not isinstance(caught, transfer.StoreFilled), caught
            assert str(caught) == ("big.bin: the server's file store could not write the file's 1000 bytes "
                                   "(Input/output error), 0 of them stored: tell the server's administrator"), caught
            assert c.files(kind="upload") == []
    finally:
        svc.app.state.engine.dispose()
