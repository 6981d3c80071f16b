"""Review of the day's job-service changes (c2ae2ab..): defects found and fixed, each test failing on the old code."""

from __future__ import annotations

import os
import subprocess

from plexloc.service.apps import Hardware


def _agent(work):
    from plexloc.service.agent import Agent

    return Agent("http://127.0.0.1:9", "plxw_x", work_dir=work, hardware=Hardware(cpus=1, memory_mb=100))


def test_stale_folder_cleanup_judges_pids_only_in_its_own_pid_namespace_and_boot(tmp_path):
    """f314a36/fc33fe7 judged a job folder by its mark's pid on the same host name. Two worker containers started with
    --network host share the host's name but not their pids: worker B starting deleted worker A's live job folder (A's
    pid is no process in B's namespace). And after a reboot (a power cut) the pid and start time of the mark can be a
    new process's: the folder stayed. The mark now names the boot and the pid namespace too."""
    from plexloc.service import agent as ag

    dead = subprocess.Popen(["true"])
    dead.wait()
    work = tmp_path / "work"
    host, boot, ns = ag._host(), ag._boot_id(), ag._pid_namespace()
    me = f"{os.getpid()} {ag._process_start(os.getpid())}"
    folders = {
        # a worker in another pid namespace of this machine (a container, --network host): its pid means nothing here
        "other_ns": f"{dead.pid} 12345 {host} {boot} pid:[1]",
        # written before the machine rebooted: gone, though its pid and start time name a process that runs now
        "rebooted": f"{me} {host} another-boot {ns}",
        # this worker's own namespace and boot, its process gone
        "dead": f"{dead.pid} 12345 {host} {boot} {ns}",
        # a running worker of this namespace
        "running": f"{me} {host} {boot} {ns}",
        # a mark of the earlier 3-field form: judged by its pid as before
        "old_dead": f"{dead.pid} 12345 {host}",
        "old_running": f"{me} {host}",
    }
    for name, mark in folders.items():
        (work / f"plexloc-job-{name}").mkdir(parents=True)
        (work / f"plexloc-job-{name}" / ag._MARK).write_text(mark)
    agent = _agent(work)
    try:
        gone = {p.name.removeprefix("plexloc-job-") for p in agent.remove_stale_folders()}
    finally:
        agent.close()
    assert gone == {"rebooted", "dead", "old_dead"}
    assert all((work / f"plexloc-job-{n}").exists() for n in ("other_ns", "running", "old_running"))


def test_the_mark_a_job_folder_gets_names_boot_and_pid_namespace():
    from plexloc.service import agent as ag

    pid, start, host, boot, ns = ag._mark().split()
    assert (int(pid), start, host) == (os.getpid(), ag._process_start(os.getpid()), ag._host())
    assert boot == ag._boot_id() and ns == ag._pid_namespace()
    if os.path.exists("/proc/self/ns/pid"):
        assert ns.startswith("pid:[") and boot != "-"


def test_a_file_refused_at_registration_is_named(tmp_path, monkeypatch):
    """7ecea9b's 507 (the store's disk has not room) and the upload limit's 413 named the sizes but not the file: a
    submit with several inputs said 'HTTP 507: the server's file store has 1000 bytes free, fewer than the file's
    3145728' without saying which input. The server knows the name; it says it."""
    import pytest
    from service_support import LiveServer, make_service

    from plexloc.service import storage as st
    from plexloc.service.client import Client

    svc = make_service(tmp_path)
    svc.app.state.settings.max_upload_bytes = 2**20
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with pytest.raises(Exception, match="413") as err:
                c._post("/files", {"name": "movie_ch1.tif", "size": 2**20 + 1})
            assert "movie_ch1.tif" in str(err.value)
            monkeypatch.setattr(st.LocalStorage, "free_bytes", lambda self: 1000)
            with pytest.raises(Exception, match="507") as err:
                c._post("/files", {"name": "movie_ch0.tif", "size": 5000})
            assert "movie_ch0.tif" in str(err.value) and "1000 bytes free" in str(err.value)
    finally:
        svc.app.state.engine.dispose()


def test_a_stale_folder_that_cannot_be_deleted_is_not_reported_deleted(tmp_path, monkeypatch, caplog):
    """remove_stale_folders deletes with ignore_errors (another user's folder in a shared /tmp, a busy file system)
    and then logged 'removed' and returned the folder, which was still there."""
    import logging

    from plexloc.service import agent as ag

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "work" / "plexloc-job-x"
    folder.mkdir(parents=True)
    (folder / ag._MARK).write_text(f"{dead.pid} 12345 {ag._host()} {ag._boot_id()} {ag._pid_namespace()}")
    monkeypatch.setattr(ag.shutil, "rmtree", lambda *a, **k: None)  # permission denied, ignored
    agent = _agent(tmp_path / "work")
    try:
        with caplog.at_level(logging.WARNING, logger=ag.log.name):
            assert agent.remove_stale_folders() == []
    finally:
        agent.close()
    assert "cannot remove" in caplog.text and "removed " not in caplog.text
