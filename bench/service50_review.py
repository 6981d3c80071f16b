"""Session 50 review: cancel latency of a job whose worker waits out a full store, with the pause in progress 30 s (default pings 2 s).

    PYTHONPATH=src python bench/service50_review.py   (about 45 s)
"""
import sys, time, tempfile, json
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
from pathlib import Path
from service_support import AgentThread, LiveServer, make_service
from plexloc.service.client import Client
import plexloc
tmp = Path(tempfile.mkdtemp())
svc = make_service(tmp)
svc.app.state.storage.free_bytes = lambda: 0
with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
    with AgentThread(live.url, svc.worker_token, storage_wait_s=600, ping_s=2.0, poll_s=1.0):
        job = c.submit("ticker", entry_point="tick", config={"n": 1})
        while not any("retrying in 30 s" in x["line"] for x in c.log(job["id"])["lines"]):
            time.sleep(0.2)
        time.sleep(2)
        t0 = time.monotonic(); c.cancel(job["id"])
        done = c.wait(job["id"], timeout=120, poll_s=0.05)
        print(json.dumps({"code": plexloc.__file__, "cancel_to_end_s": round(time.monotonic() - t0, 1),
                          "state": done["state"], "error": done["error"]}))
svc.app.state.engine.dispose()
