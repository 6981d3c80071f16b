"""Session 51 (svc2): a store whose disk fills during an output's upload (write_all raises ENOSPC), storage_wait_s 3 s: time to the
job's end and its error; a submit of a 200,000-byte file: the message."""
import errno, sys, tempfile, time, io, contextlib
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_support import AgentThread, LiveServer, make_service
import plexloc.service.api_storage as api_storage
from plexloc.service.client import Client
from plexloc.cli.main import main

def write_all(f, data):
    raise OSError(errno.ENOSPC, "No space left on device")
api_storage.write_all = write_all
tmp = Path(tempfile.mkdtemp(prefix="service51b-"))
svc = make_service(tmp)
with LiveServer(svc.app) as live, Client(live.url, svc.user_token) as c:
    with AgentThread(live.url, svc.worker_token, storage_wait_s=3.0):
        job = c.submit("ticker", entry_point="tick", config={"n": 1})
        t0 = time.monotonic()
        done = c.wait(job["id"], timeout=60)
        print(f"worker: {done['state']} after {time.monotonic() - t0:.1f} s: {done['error']}")
    src = tmp / "big.bin"; src.write_bytes(b"x" * 200_000)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["submit", "ticker", "--entry", "tick", "--input", f"data={src}", "--server", live.url, "--token", svc.user_token])
    print(f"submit: rc {rc}: {err.getvalue().strip()}")
svc.app.state.engine.dispose()
import shutil
shutil.rmtree(tmp, ignore_errors=True)
