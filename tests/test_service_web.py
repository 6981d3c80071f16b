"""The web page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright
through token -> upload -> submit -> watch progress and log -> download. Skipped without them."""

from __future__ import annotations

import re

import pytest
from service_support import LiveServer, chromium_executable, make_service, signed_in_page

playwright = pytest.importorskip("playwright.sync_api")


CHROMIUM = chromium_executable()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable")


def test_upload_submit_watch_download_in_a_browser(tmp_path):
    from plexloc.service.agent import Agent
    from plexloc.service.apps import Hardware

    import threading

    svc = make_service(tmp_path)
    upload = tmp_path / "notes.txt"
    upload.write_text("hello from the browser\n")
    with LiveServer(svc.app) as live, playwright.sync_playwright() as pw:
        agent = Agent(live.url, svc.worker_token, hardware=Hardware(cpus=1, memory_mb=100), poll_s=0.1, ping_s=0.2)
        worker = threading.Thread(target=agent.run, daemon=True)
        worker.start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = signed_in_page(browser, live.url, svc.user_token)
            # upload a file (chunked PUT to its signed URL), then it is listed
            page.set_input_files("#file-input", str(upload))
            page.click("#upload")
            page.wait_for_selector("#upload-status:has-text('uploaded')")
            page.wait_for_selector("#files td:has-text('notes.txt')")
            page.wait_for_selector("#usage:has-text('your files: ')")  # the space used (no quota on this server)
            assert "quota" not in page.inner_text("#usage")
            # choose the application and entry point, fill its parameters, submit
            page.select_option("#app", "ticker")
            page.select_option("#entry", "picture")
            page.fill("#p-n", "25")
            page.fill("#p-dt", "0.12")
            page.click("#submit")
            page.wait_for_selector("#submit-status:has-text('submitted')")
            # live status: a running state with progress between 0 and 100 %, then success
            seen_running = page.wait_for_function(
                "() => /running.*\\b([1-9]\\d?)%/.test(document.querySelector('#d-state').textContent)", timeout=30000
            )
            assert seen_running
            page.wait_for_selector("#d-state:has-text('succeeded')", timeout=30000)
            page.wait_for_function("() => document.querySelector('#log').textContent.includes('tick 24')")
            link = page.wait_for_selector("#outputs a:has-text('ticks.txt')")
            body = page.request.get(link.get_attribute("href")).text()
            assert body == "25"
            # the PNG output is previewed on the page (the image loads through its signed URL)
            page.wait_for_function("() => { const i = document.querySelector('#previews img'); return i && i.complete && i.naturalWidth === 8; }")
            # the jobs list follows the detail (it is refreshed after it on each poll)
            page.wait_for_selector("#jobs td:has-text('succeeded')", timeout=5000)
            assert re.search(r"succeeded", page.text_content("#jobs"))
        finally:
            browser.close()
            agent.stop.set()
            worker.join(timeout=10)
            agent.close()
