"""Session 51, final read: a full store met first by the worker's log upload (a job with no outputs, or whose outputs
fit) raised StoreFull out of ``Agent._upload_log``, which catches only transfer errors: the job's end was never sent
and the worker's loop (``plexloc worker``) ended with a traceback. Before 86282bc the log upload's 507 was warned
about and the job ended as its command did."""

from __future__ import annotations

from service_support import AgentThread, LiveServer, make_service, script_app

from plexloc.service.client import Client


def test_a_full_store_at_the_log_upload_still_ends_the_job_and_keeps_the_worker(tmp_path):
    svc = make_service(tmp_path, apps_dirs=[script_app(tmp_path / "apps", "print('hello')\n", name="quiet")])
    svc.app.state.storage.free_bytes = lambda: 0  # no output to keep; log.txt meets the full store
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, storage_wait_s=1.0):
                first = c.wait(c.submit("quiet", config={"mode": "x"})["id"], timeout=30)
                second = c.wait(c.submit("quiet", config={"mode": "y"})["id"], timeout=30)  # the worker goes on
        assert first["state"] == "succeeded", first
        assert second["state"] == "succeeded", second
    finally:
        svc.app.state.engine.dispose()
