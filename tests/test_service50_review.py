"""Review of session 50's job-service changes: each test fails on the code before its fix."""

from __future__ import annotations

import sys
import textwrap
import time

from service_support import AgentThread, LiveServer, make_service

from plexloc.service.client import Client, ServiceError


def _lab_app(folder, columns: str, name: str = "labrender"):
    """A lab's own application ``name`` whose slot ``locs`` reads a plexloc table's ``columns`` (a YAML list)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "render.yaml").write_text(textwrap.dedent(f"""
        name: {name}
        versions:
          "1":
            entry_points:
              run:
                command: ["{sys.executable}", "-c", "pass", "{{input.locs}}"]
                inputs:
                  locs: {{kind: data, suffixes: [.csv], columns: {columns}}}
                outputs: [{{path: "*.png"}}]
                hardware: {{cpus: 1, memory_mb: 10}}
        """))
    return folder


def test_a_pipeline_input_reading_a_plexloc_tables_optional_column_is_not_refused(tmp_path):
    """The producer's declared columns (frame, x_nm, y_nm, z_nm, photons) were taken as all a plexloc table has: a
    lab's application reading ``sigma_x_nm`` (or bg, prob: what plexloc fit writes besides) from ``job:FIT/locs.csv``
    was refused at submission. Now such a column is left to the check when the table is made; a column no plexloc
    table has (COMET's 'x [nm]', a capitalised 'Frame') is still refused at submission."""
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", _lab_app(tmp_path / "lab", "[frame, x_nm, sigma_x_nm, prob]"),
                                            _lab_app(tmp_path / "lab2", "[Frame, x_nm]", "labcaps")])
    movie, model = tmp_path / "m.tif", tmp_path / "model.pt"
    movie.write_bytes(b"II*\x00" + bytes(60))
    model.write_bytes(b"not read")
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            fit = c.submit("plexloc-fit", entry_point="fit",
                           inputs={"movie": [c.upload(movie)["id"]], "model": [c.upload(model)["id"]]})
            job = c.submit("labrender", entry_point="run", inputs={"locs": [f"job:{fit['id']}/locs.csv"]})
            assert job["state"] == "queued", job
            try:
                c.submit("labcaps", entry_point="run", inputs={"locs": [f"job:{fit['id']}/locs.csv"]})
                raise AssertionError("accepted")
            except ServiceError as err:
                assert err.status == 422 and "lacks the column(s) 'Frame' that labcaps run reads" in str(err.detail), err
    finally:
        svc.app.state.engine.dispose()


def test_a_job_waiting_for_a_full_stores_space_is_cancelled_at_once_and_said_cancelled(tmp_path):
    """A job whose worker waits for a full store's space (session 50: up to storage_wait_s, pauses growing to 30 s)
    was cancelled only at the end of the pause in progress, and ended "cancelled by the user (before the worker saw
    it, the job had failed: ServiceError: HTTP 507 ...)" after a traceback in the worker's log. Now the cancel ends
    the pause and the job is cancelled by the user, said so; one attempt, on one worker (the pings kept its lease)."""
    svc = make_service(tmp_path, lease_s=2.0)
    svc.app.state.storage.free_bytes = lambda: 0  # full for good
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            with AgentThread(live.url, svc.worker_token, storage_wait_s=120):
                job = c.submit("ticker", entry_point="tick", config={"n": 1})
                deadline = time.monotonic() + 60
                while not any("retrying in 8 s" in x["line"] for x in c.log(job["id"])["lines"]):
                    assert time.monotonic() < deadline, c.log(job["id"])
                    time.sleep(0.1)
                t0 = time.monotonic()
                c.cancel(job["id"])
                done = c.wait(job["id"], timeout=30)
                took = time.monotonic() - t0
            lines = [x["line"] for x in c.log(job["id"])["lines"]]
        assert done["state"] == "cancelled" and done["error"] == "cancelled by the user", done
        assert took < 4, took  # the pause in progress was 8 s
        assert done["attempts"] == 1 and sum("claimed by worker" in x for x in lines) == 1, lines
    finally:
        svc.app.state.engine.dispose()


def test_the_web_page_uploads_a_file_it_cannot_hash(tmp_path):
    """The web page hashes a chosen file (crypto.subtle, the file read whole) to use the copy already on the server:
    a file it could not read whole (changed on disk meanwhile: NotReadableError; no memory for it) failed its upload
    with the hashing's error. Now it is uploaded as before the hashing existed."""
    import pytest
    from service_support import chromium_executable, signed_in_page

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = chromium_executable()
    if chromium is None:
        pytest.skip("no chromium executable")
    svc = make_service(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello from the browser\n")
    try:
        with LiveServer(svc.app) as live, sync_api.sync_playwright() as pw, Client(live.url, svc.user_token) as c:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = signed_in_page(browser, live.url, svc.user_token)
                page.evaluate("() => { crypto.subtle.digest = () => Promise.reject("
                              "new DOMException('the file changed on disk', 'NotReadableError')); }")
                page.set_input_files("#file-input", str(notes))
                page.click("#upload")
                page.wait_for_function("() => /notes.txt: uploaded|changed on disk/.test(document.body.innerText)")
                status = page.inner_text("#upload-status")
            finally:
                browser.close()
            uploads = c.files(kind="upload")
        assert status == "notes.txt: uploaded", status
        assert [(f["name"], f["size"], f["state"]) for f in uploads] == [("notes.txt", 23, "ready")], uploads
    finally:
        svc.app.state.engine.dispose()


def test_a_table_with_semicolons_or_tabs_is_not_refused_for_lacking_its_columns(tmp_path):
    """The columns check read a header split at commas only: a table saved with ';' (a spreadsheet's) or tabs, which
    plexloc's own tables reader takes, was refused with every column "lacking" (at submission, and since session 50
    when a pipeline's source made it). Now the header's separator is the one plexloc reads it with; a table that
    truly lacks a column is still refused, with a BOM or quotes in its header."""
    svc = make_service(tmp_path, apps_dirs=[tmp_path / "apps", _lab_app(tmp_path / "lab", "[frame, x_nm, sigma_x_nm]")])
    tables = {"semi.csv": "frame;x_nm;y_nm;sigma_x_nm\n1;2;3;4\n", "tabs.csv": "frame\tx_nm\tsigma_x_nm\n1\t2\t3\n",
              "bom.csv": '\ufeff"frame", "x_nm" ,"sigma_x_nm"\n1,2,3\n', "lacks.csv": "\ufeff" + "frame;x_nm;y_nm\n1;2;3\n"}
    for name, text in tables.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    try:
        with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
            for name in ("semi.csv", "tabs.csv", "bom.csv"):
                job = c.submit("labrender", entry_point="run", inputs={"locs": [c.upload(tmp_path / name)["id"]]})
                assert job["state"] == "queued", (name, job)
            try:
                c.submit("labrender", entry_point="run", inputs={"locs": [c.upload(tmp_path / "lacks.csv")["id"]]})
                raise AssertionError("accepted")
            except ServiceError as err:
                assert err.status == 422 and "'sigma_x_nm'" in str(err.detail) and "'frame'" not in str(err.detail), err
    finally:
        svc.app.state.engine.dispose()
