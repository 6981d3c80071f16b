"""Large files through signed URLs: upload (interrupted, then resumed), checksum, download, and the
API process's resident memory while the bytes stream through it.

The server runs as its own process (``plexloc serve`` on SQLite and the local store); its RSS is
sampled from /proc every 20 ms. The upload is cut off after ``--cut`` of the file (the connection
dies mid-body), resumed from the offset the store reports, completed and checked (SHA-256), then
downloaded and checked again.

    python bench/service_large.py [--gb 5] [--cut 0.4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from plexloc.service import transfer  # noqa: E402


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=5.0)
    ap.add_argument("--cut", type=float, default=0.4, help="fraction sent before the connection is cut")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--lean", action="store_true",
                    help="start the server through the serve command's module alone, without the other "
                    "sub-commands' imports (the full `plexloc` parser imports every command module)")
    args = ap.parse_args()
    size = int(args.gb * 1024**3)
    root = Path(tempfile.mkdtemp(prefix="plexloc-large-"))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    plexloc = [sys.executable, "-m", "plexloc.cli.main"]
    data = ["--data-dir", str(root / "data")]
    server = None
    try:
        src = root / "movie.bin"
        block = os.urandom(64 * 1024**2)
        with open(src, "wb") as f:  # a 64 MB random block, each copy made unique by its first bytes
            for i in range(0, size, len(block)):
                n = min(len(block), size - i)
                f.write(i.to_bytes(8, "little") + block[8:n] if n >= 8 else block[:n])
        t = time.monotonic()
        digest = transfer.sha256_of(src)
        t_sha = time.monotonic() - t
        user = subprocess.run([*plexloc, "admin", *data, "create-user", "big"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve = [*plexloc, "serve"]
        if args.lean:
            serve = [sys.executable, "-c", "import argparse, sys; from plexloc.cli import serve; p = argparse.ArgumentParser(); "
                     "serve.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); a.func(a)", "serve"]
        server = subprocess.Popen([*serve, *data, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {user}"}, timeout=600)
        while True:
            try:
                api.get("/me").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(1.0)
        idle = rss_mb(server.pid)
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.02):
                peak[0] = max(peak[0], rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        raw = httpx.Client(timeout=600)
        up = api.post("/files", json={"name": "movie.tif", "size": size, "sha256": digest}).json()
        cut = int(size * args.cut)

        def cut_body():
            sent = 0
            with open(src, "rb") as f:
                while sent < cut:
                    chunk = f.read(min(1024**2, cut - sent))
                    sent += len(chunk)
                    yield chunk
            raise ConnectionAbortedError("simulated network failure")

        t0 = time.monotonic()
        try:
            raw.put(up["upload_url"] + "&offset=0", content=cut_body(), headers={"Content-Length": str(size)})
        except Exception:
            pass
        time.sleep(0.5)
        got = int(raw.head(up["upload_url"]).headers["Upload-Offset"])
        transfer.upload(raw, up["upload_url"], src)  # resumes at `got`
        t_up = time.monotonic() - t0
        done = api.post(f"/files/{up['file']['id']}/complete").json()
        assert done["sha256"] == digest, done
        dl = api.get(f"/files/{up['file']['id']}/download-url").json()["url"]
        t0 = time.monotonic()
        transfer.download(raw, dl, root / "back.bin", sha256=digest)
        t_down = time.monotonic() - t0
        stop.set()
        sampler.join()
        hwm = rss_mb(server.pid, "VmHWM")
        result = {
            "gb": args.gb, "bytes": size, "lean": args.lean, "cut_at": cut, "resumed_from": got, "sha256_ok": True,
            "upload_s": t_up, "upload_mb_s": size / 2**20 / t_up, "download_s": t_down, "download_mb_s": size / 2**20 / t_down,
            "client_sha256_s": t_sha, "server_rss_idle_mb": idle, "server_rss_peak_mb": peak[0], "server_vmhwm_mb": hwm,
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    print("| server | GB | cut at | resumed from | upload MB/s | download MB/s | server RSS idle MB | server RSS peak MB | checksum |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {'serve module alone' if args.lean else 'plexloc serve'} | {args.gb:g} | {cut} | {got} | {result['upload_mb_s']:.0f} | {result['download_mb_s']:.0f} | "
          f"{idle:.0f} | {peak[0]:.0f} | ok |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
