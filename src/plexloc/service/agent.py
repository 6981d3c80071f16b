"""The worker agent: pulls jobs over outbound HTTP and runs them as subprocesses.

One job at a time: claim -> download the inputs (signed URLs, checksums) into a fresh work folder ->
run the entry point's command (no shell, no container daemon) under the job's time limit, its
output and progress streamed to the server by pings that also renew the lease -> upload the
outputs -> report the end state. A cancel (the ping's answer) stops the process group; a lost lease
stops it and abandons the job (the server has re-queued it).

Progress: an application reports it by printing ``PLEXLOC_PROGRESS <fraction>`` lines, or by a tqdm
bar (``NN%|``) on its output, which plexloc's own commands show with ``PLEXLOC_PROGRESS=1``.

A worker that dies (SIGKILL, an out-of-memory kill, a crash) takes its job's command with it, on Linux: the command
runs under a small guard process (:data:`_GUARD`, the leader of the job's process group) that the kernel tells when
the worker is gone (``PR_SET_PDEATHSIG``); the guard then ends the whole group (SIGTERM, ``kill_grace_s``, SIGKILL).
Elsewhere there is no such signal and the command starts directly, as before: a worker killed there leaves its
command running. (The signal follows the worker *thread* that started the command: :meth:`Agent.run` must not be
called from a thread that ends while its job runs.)

Memory: a job's log lines are kept in memory only until they are sent, up to :data:`_MEMORY_LINES` lines /
:data:`_MEMORY_CHARS` characters; past that they wait in a spool file, in order. The whole log (the job's ``log.txt``
output) is written to a file as it comes, never kept in memory.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from plexloc.errors import InputError
from plexloc.service import transfer
from plexloc.service.apps import EntryPoint, Hardware
from plexloc.service.client import ServiceError, check
from plexloc.service.containers import RUNTIMES, Runtime, detect_runtime
from plexloc.service.schemas import APPS_HEADER, ATTEMPT_HEADER

log = logging.getLogger("plexloc.worker")
_TQDM = re.compile(r"(\d{1,3})%\|")
_EXPLICIT = re.compile(r"^PLEXLOC_PROGRESS[ =:]+([0-9.eE+-]+)\s*$")
_TAIL = 40
#: log lines per ping (the server stores at most this many per request, see jobs.MAX_LOG_LINES_PER_PING)
_BATCH = 1000
#: log lines not sent yet kept in memory (and their characters, at most): the next ones wait in a spool file on disk
#: until these are sent, so that the worker's memory stays bounded however fast a job prints, and every line reaches
#: the server, in order (only a disk that refuses the spool file loses lines, said in the log)
_MEMORY_LINES = 5000
_MEMORY_CHARS = 4 * 2**20
#: the server unreachable for long: the worker's log says so again this often (seconds)
_OUTAGE_SAY_S = 600.0
#: bytes of output without a line end kept as one line: past it the line is cut (binary output has few line ends)
_LINE_BYTES = 64 * 1024


def detect_hardware() -> Hardware:
    """CPUs, RAM, and NVIDIA GPUs (through nvidia-smi when it is installed)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    gpus, gpu_mem = 0, 0
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
            ).stdout.split()
            gpus, gpu_mem = len(out), min((int(float(x)) for x in out), default=0)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return Hardware(cpus=cpus, memory_mb=memory_mb, gpus=gpus, gpu_memory_mb=gpu_mem)


def find_program(name: str) -> str | None:
    """``name`` on PATH, or beside this interpreter (the agent's own environment, e.g. a venv's bin/)."""
    found = shutil.which(name)
    if found is None and "/" not in name:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return found


def runnable(ep: EntryPoint, runtime: Runtime | None = None) -> bool:
    """This machine can run ``ep``: its program and every ``requires`` entry are here, or, for an
    entry point that names a container image, a container runtime is (the image holds the rest)."""
    if ep.image is not None:
        return runtime is not None
    first = ep.command[0]
    if isinstance(first, str) and first != "plexloc" and find_program(first) is None:
        return False
    for req in ep.requires:
        if "/" in req or "." not in req:
            if find_program(req) is None:
                return False
        else:
            try:
                if importlib.util.find_spec(req) is None:
                    return False
            except ModuleNotFoundError:
                return False
    return True


def resolve_program(argv: list[str]) -> list[str]:
    """``plexloc`` runs as this interpreter's plexloc (the same installation as the agent); other
    programs are looked up as :func:`find_program` does."""
    if argv and argv[0] == "plexloc":
        return [sys.executable, "-m", "plexloc.cli.main", *argv[1:]]
    return [find_program(argv[0]) or argv[0], *argv[1:]] if argv else argv


#: the guard a job's command runs under on Linux (``python -I -S -c _GUARD AGENT_PID GRACE_S ERR_FD COMMAND...``): the
#: leader of the job's process group, it starts the command (signals at their defaults, the error of an exec that
#: fails written to ERR_FD), waits for it and exits as it did (a death by signal N: exit 128 + N and "S<N>" on
#: ERR_FD). SIGTERM, SIGINT and SIGHUP, which the agent sends the whole group, leave the guard waiting for its
#: command. When the agent dies, the kernel sends the guard SIGUSR1 (PR_SET_PDEATHSIG): it ends the whole group,
#: SIGTERM, up to GRACE_S for the command to end, SIGKILL (the guard with it).
_GUARD = r"""
import os, signal, sys, time
agent, grace, err_fd, argv = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
me, pid = os.getpid(), 0
def orphaned(signum, frame):
    if os.getpid() != me or os.getppid() == agent:
        return  # a SIGUSR1 sent to the group, not the agent's death
    os.killpg(0, signal.SIGTERM)
    end = time.monotonic() + grace
    while pid and time.monotonic() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    os.killpg(0, signal.SIGKILL)
KEPT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
for s in KEPT:
    signal.signal(s, lambda *a: None)
signal.signal(signal.SIGUSR1, orphaned)
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGUSR1), 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != agent:  # the agent died before the signal was asked for
    os._exit(1)
os.set_inheritable(err_fd, False)  # the command does not get it
pid = os.fork()
if pid == 0:
    for s in (*KEPT, signal.SIGUSR1, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except BaseException as err:
        os.write(err_fd, ("E" + (getattr(err, "strerror", None) or str(err))).encode(errors="replace"))
    os._exit(127)
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
if code < 0:
    os.write(err_fd, f"S{-code}".encode())
os._exit(code if code >= 0 else 128 - code)
"""

#: the command runs under :data:`_GUARD` (Linux: the kernel's parent-death signal; elsewhere no guard)
_GUARDED = sys.platform.startswith("linux") and bool(sys.executable)


class _LeaseLost(Exception):
    """The server gave the job to another worker while this one was downloading its inputs."""


class StoreFull(Exception):
    """The server's file store stayed full (507) for the whole wait (``storage_wait_s``): the job's outputs were not
    kept. Its message says so and what to do; the job fails with it."""


class _Reporter(threading.Thread):
    """Pings the server every ``interval`` s with progress, stage and new log lines.

    Lines not sent yet: the oldest in :attr:`lines` (memory, bounded by :data:`_MEMORY_LINES` / :data:`_MEMORY_CHARS`),
    the newer ones, once memory is full, in a spool file (one JSON string a line) until memory has been sent. Every
    line also goes to the log file that becomes the job's ``log.txt`` (:meth:`write_log`). Both files are temporary
    (in the agent's work folder), gone at :meth:`close`."""

    def __init__(self, agent: "Agent", job_id: str, interval: float, attempt: int | None = None):
        super().__init__(name=f"ping-{job_id}", daemon=True)
        self.agent, self.job_id, self.interval = agent, job_id, interval
        #: sent with every request about the job: the server refuses those of an attempt that is over
        self.headers = {ATTEMPT_HEADER: str(attempt)} if attempt is not None else {}
        self.lines: deque[str] = deque()
        self._chars = 0  # characters in self.lines
        self._spool: Any = None  # the pending lines after self.lines, once memory is full
        self._spool_read = 0  # offset of the next line to read from the spool
        self._spooled = 0  # lines in the spool not read yet
        self._log: Any = None  # every line, as log.txt
        self._log_error: str | None = None  # why the log file is incomplete
        self.dropped = 0  # lines never sent (the spool file could not be written), said in the next batch
        self.tail: deque[str] = deque(maxlen=_TAIL)
        self.progress = 0.0
        self.stage = "downloading"
        self.outputs: set[str] = set()  # names of the outputs registered (the worker's log takes a name not among them)
        self.store_full = False  # a wait for the full store's space gave up: the log is not waited for again
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        #: since when the pings find the server down or failing (None: they get through), said once and on its return
        self._down_since: float | None = None

    def _file(self):
        return tempfile.TemporaryFile(prefix=f"plexloc-log-{self.job_id}-", dir=self.agent.work_dir)

    def log(self, line: str) -> None:
        with self.lock:
            self.tail.append(line)
            self._keep(line)
            if self._spooled or len(self.lines) >= _MEMORY_LINES or self._chars + len(line) > _MEMORY_CHARS:
                try:
                    if self._spool is None:
                        self._spool = self._file()
                    self._spool.seek(0, os.SEEK_END)
                    self._spool.write(json.dumps(line).encode() + b"\n")
                    self._spooled += 1
                except (OSError, ValueError) as err:
                    if not self.dropped:
                        log.warning("job %s: cannot spool log lines (%s): lines lost", self.job_id, err)
                    self.dropped += 1
                return
            self.lines.append(line)
            self._chars += len(line)

    def _keep(self, line: str) -> None:
        if self._log_error is not None:
            return
        try:
            if self._log is None:
                self._log = self._file()
            self._log.write(line.encode(errors="replace") + b"\n")
        except (OSError, ValueError) as err:
            self._log_error = f"{type(err).__name__}: {err}"
            log.warning("job %s: cannot write the log file: %s", self.job_id, self._log_error)

    def pending(self) -> int:
        """Lines not sent yet (in memory and spooled)."""
        with self.lock:
            return len(self.lines) + self._spooled

    def take(self, n: int = _BATCH) -> list[str]:
        """Up to ``n`` pending lines, oldest first (the first says how many were dropped, if any)."""
        with self.lock:
            batch = []
            if self.dropped:
                batch.append(f"[worker] {self.dropped} log line(s) not sent (the worker could not spool them to disk)")
                self.dropped = 0
            while self.lines and len(batch) < n:
                line = self.lines.popleft()
                self._chars -= len(line)
                batch.append(line)
            if len(batch) < n and self._spooled:  # memory is sent: the spool's lines are next
                self._spool.seek(self._spool_read)
                while self._spooled and len(batch) < n:
                    batch.append(json.loads(self._spool.readline()))
                    self._spooled -= 1
                self._spool_read = self._spool.tell()
                if not self._spooled:  # all read: the file starts again empty
                    self._spool.seek(0)
                    self._spool.truncate()
                    self._spool_read = 0
            return batch

    def untake(self, batch: list[str]) -> None:
        """Put back a batch :meth:`take` gave that could not be sent (it stays first; memory may pass its bound by
        this one batch)."""
        with self.lock:
            self.lines.extendleft(reversed(batch))
            self._chars += sum(map(len, batch))

    def write_log(self, path: Path) -> None:
        """The whole log (every line logged so far) into ``path``."""
        with self.lock:
            with open(path, "wb") as out:
                if self._log is not None:
                    self._log.flush()
                    self._log.seek(0)
                    shutil.copyfileobj(self._log, out)
                    self._log.seek(0, os.SEEK_END)
                if self._log_error is not None:
                    out.write(f"[worker] log incomplete: {self._log_error}\n".encode())

    def close(self) -> None:
        with self.lock:
            for f in (self._spool, self._log):
                if f is not None:
                    f.close()

    def flush(self, *, max_requests: int = 20) -> None:
        """Ping; a backlog of lines goes out :data:`_BATCH` a request (the server stores no more per request), up to
        ``max_requests`` requests now and the rest with the next pings."""
        for _ in range(max_requests):
            batch = self.take()
            try:
                r = self.agent.http.post(
                    f"/jobs/{self.job_id}/ping", json={"progress": self.progress, "stage": self.stage, "log": batch},
                    headers=self.headers,
                )
            except httpx.HTTPError as err:  # the server may be restarting: keep the lines, try again
                self.untake(batch)
                self._server_down(str(err))
                return
            if r.status_code in (401, 403, 404):  # 401: this worker's token was disabled or rotated: the job is not
                if r.status_code == 401 and not self.lost.is_set():  # its any more (the server gives it to another
                    # worker): stop it, said once (the pings until the command has stopped get the same answer)
                    self.agent.token_refused(_detail(r), job_id=self.job_id)
                self.lost.set()
                return
            if r.status_code >= 500:  # the server failed this request (a restart, its database): the lines were lost
                self.untake(batch)
                self._server_down(f"HTTP {r.status_code}")
                return
            if self._down_since is not None:
                log.info("job %s: the server answers pings again (after %.0f s); the job's log lines kept meanwhile "
                         "are sent", self.job_id, time.monotonic() - self._down_since)
                self._down_since = None
            if r.status_code == 200 and r.json().get("cancel"):
                self.cancel.set()
            if not self.pending():
                return

    def _server_down(self, why: str) -> None:
        """A ping that did not get through (the server restarting, unreachable, failing): said once while it lasts (a
        running job's worker said "ping failed" at each ping, 30 lines a minute of a server's restart); the job runs on
        and its lines are kept for the next ping."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("job %s: cannot ping the server (%s); the job runs on, its log lines are kept and sent when "
                        "the server answers (asked every %g s)", self.job_id, why, self.interval)

    def run(self) -> None:
        while not self.stop.wait(self.interval) and not self.lost.is_set():  # lost: no ping has anything to say
            self.flush()


class Agent:
    """A worker: ``Agent(server, token).run()`` pulls and runs jobs until stopped."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        work_dir: str | os.PathLike | None = None,
        hardware: Hardware | None = None,
        poll_s: float = 1.0,
        ping_s: float = 2.0,
        min_job_age_s: float = 0.0,
        kill_grace_s: float = 5.0,
        keep_work: bool = False,
        storage_wait_s: float = 600.0,
        runtime: Runtime | None | str = "auto",
    ):
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server + "/worker/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.bytes_http = httpx.Client(timeout=60)
        # absolute: a job's command runs inside its own folder, where a relative work folder's paths named nothing
        self.work_dir = Path(work_dir).expanduser().resolve() if work_dir else None
        self.hardware = hardware or detect_hardware()
        self.poll_s, self.ping_s, self.min_job_age_s = poll_s, ping_s, min_job_age_s
        self.kill_grace_s, self.keep_work = kill_grace_s, keep_work
        self.storage_wait_s = storage_wait_s
        self.auth_retry_s = 60.0  # a refused token: the pull is asked again this much later
        # the server unreachable: the longest pause between two pulls (10 s), so that the worker takes jobs at most
        # that long after the server is back (30 s let a 63-s outage cost 28 s more) while asking 6 times a minute
        # where an idle worker asks 60
        self.max_pull_pause_s = 10 * poll_s
        self._refused = False  # the server refuses the token, said in the log (once, until it is accepted again)
        self.stop = threading.Event()
        self._can_run: list[dict[str, str]] | None = None
        #: what it can run is read again from the server's registry this often (and after an outage): an application
        #: the server's administrator added (plexloc serve --apps DIR, a restart) was never run by a worker that had
        #: started before, until it was restarted too
        self.can_run_refresh_s = 300.0
        self._can_run_at = 0.0
        self._can_run_stale = False  # the last re-read failed (said once)
        self._apps_tag: str | None = None  # the server's registry the list was read under (its APPS_HEADER)
        self._unreadable: set[tuple[str, str, str]] = set()  # entry points this worker's models refuse (said once)
        #: podman, docker or apptainer (entry points with an image); "auto": the first on PATH
        self.runtime = detect_runtime() if runtime == "auto" else detect_runtime(runtime) if isinstance(runtime, str) else runtime

    def close(self) -> None:
        self.http.close()
        self.bytes_http.close()

    def can_run(self) -> list[dict[str, str]]:
        """The (application, version, entry point) triples of the server's registry this machine can run."""
        if self._can_run is None or time.monotonic() - self._can_run_at > self.can_run_refresh_s:
            try:
                r = self.http.get("/applications")
                apps = check(r)
            except (httpx.HTTPError, ServiceError) as err:
                if self._can_run is None:
                    raise
                # the 5-minute re-read failed (the server busy or restarting): the list read before serves on, and is
                # asked again at the next pull; the worker stopped taking jobs (the re-read failed each pull, an outage)
                if not self._can_run_stale:
                    log.warning("cannot read the server's applications again (%s): taking the jobs of those read before",
                                err)
                self._can_run_stale = True
                return self._can_run
            self._can_run_at = time.monotonic()
            self._can_run_stale = False
            self._apps_tag = r.headers.get(APPS_HEADER)
            importlib.invalidate_caches()  # a package installed since is found
            out = []
            for a in apps:
                for v, ver in a["versions"].items():
                    for e, spec in ver["entry_points"].items():
                        try:
                            ep = EntryPoint.model_validate(spec)
                        except ValueError as err:  # a newer server's entry point this worker cannot read: not run here
                            if (a["name"], v, e) not in self._unreadable:
                                self._unreadable.add((a["name"], v, e))
                                log.warning("cannot read the server's %s %s %s (a newer plexloc's? upgrade this worker):"
                                            " its jobs are left to other workers (%s)", a["name"], v, e,
                                            str(err).splitlines()[0])
                            continue
                        if runnable(ep, self.runtime):
                            out.append({"application": a["name"], "version": v, "entry_point": e})
            self._can_run = out
        return self._can_run

    def pull(self) -> dict[str, Any] | None:
        body = {"hardware": self.hardware.model_dump(), "can_run": self.can_run(), "min_job_age_s": self.min_job_age_s,
                "runtimes": [self.runtime.name] if self.runtime else []}
        r = self.http.post("/jobs/pull", json=body)
        tag = r.headers.get(APPS_HEADER)
        if tag is not None and self._apps_tag is not None and tag != self._apps_tag:
            # the server's registry changed since the list was read (a restart with an application added, while this
            # worker ran a job and never saw the server down): read again at the next pull, not up to 5 min later
            self._can_run_at = -math.inf
            self._apps_tag = None
        if r.status_code == 204:
            return None
        return check(r)

    def remove_stale_folders(self) -> list[Path]:
        """Delete the job folders a worker killed mid-job left in the work folder (``kill -9``, an out-of-memory kill,
        a power cut: its inputs, a training's checkpoints, gigabytes each): those whose :data:`_MARK` names a process
        that is gone. A folder without the mark (a job that ended, kept by ``--keep-work``) or of a worker still
        running (another worker sharing the folder) stays. Returns the folders deleted."""
        root = self.work_dir or Path(tempfile.gettempdir())
        gone = []
        for folder in sorted(root.glob("plexloc-job-*")):
            try:
                pid, started, host, *rest = (folder / _MARK).read_text().split()
                boot, pidns = (rest + ["-", "-"])[:2]  # "-": not known (a mark of 3 fields, written before these)
                if host != _host():
                    continue  # its worker runs elsewhere (another machine or container sharing the folder)
                if boot == "-" or boot == _boot_id():  # else a boot since then: its process is gone, whatever its pid says
                    if pidns != "-" and pidns != _pid_namespace():
                        continue  # another pid namespace on this machine (a container of the same host name, as with
                        # --network host): its pids are not this one's, its worker may well run
                    if _process_start(int(pid)) == started:
                        continue  # its worker runs
            except (OSError, ValueError):
                continue  # no mark (or unreadable): not this worker's to judge
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():  # not this user's to delete (a shared /tmp), or busy: said, not reported removed
                log.warning("cannot remove %s (its worker, pid %s, is gone): delete it by hand", folder, pid)
                continue
            gone.append(folder)
            log.warning("removed %s: the worker that ran its job (pid %s) is gone", folder, pid)
        return gone

    def run(self, *, max_jobs: int | None = None) -> int:
        """Pull and run jobs until :attr:`stop` is set (or ``max_jobs`` ran); returns the number run. First the job
        folders that dead workers left behind are deleted (:meth:`remove_stale_folders`)."""
        try:
            self.remove_stale_folders()
        except OSError as err:
            log.warning("cannot look for job folders left behind: %s", err)
        done = 0
        # the server unreachable or failing (a restart, an upgrade, a network outage): said once (and every
        # _OUTAGE_SAY_S while it lasts), asked again with growing pauses; a worker said "pull failed ... retrying" each
        # second while its server was down (3,600 lines an hour) and asked as often
        down_since: float | None = None
        pause = say_at = 0.0
        while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
            try:
                spec = self.pull()
            except (httpx.HTTPError, ServiceError) as err:
                if isinstance(err, ServiceError) and err.status in (401, 403):  # not a passing outage: said once, then
                    self.token_refused(str(err.detail), status=err.status)  # asked again each auth_retry_s, quietly
                    self.stop.wait(self.auth_retry_s)
                    continue
                t = time.monotonic()
                if down_since is None:
                    down_since, pause, say_at = t, self.poll_s, t + _OUTAGE_SAY_S
                    log.warning("cannot pull jobs from %s (%s); asking again with growing pauses, up to %g s",
                                self.server, err, self.max_pull_pause_s)
                elif t >= say_at:
                    say_at = t + _OUTAGE_SAY_S
                    log.warning("still cannot pull jobs from %s after %.0f min (%s); asking every %g s", self.server,
                                (t - down_since) / 60, err, pause)
                self.stop.wait(pause)
                pause = min(2 * pause, self.max_pull_pause_s)
                continue
            if down_since is not None:
                log.info("the server answers again (after %.0f s): taking jobs", time.monotonic() - down_since)
                down_since = None
                self._can_run = None  # a server back from a restart or an upgrade may offer other applications
            if self._refused:
                self._refused = False
                log.info("the server accepts this worker's token again: taking jobs")
            if spec is None:
                self.stop.wait(self.poll_s)
                continue
            self.execute(spec)
            done += 1
        return done

    def token_refused(self, detail: str, *, status: int = 401, job_id: str | None = None) -> None:
        """Say once (until the token is accepted again) that the server refuses this worker's token, why (the server's
        answer: disabled, unknown), what became of the job it ran, and the fix. A disabled worker said it on each
        ping until its command had stopped, again when the job was abandoned, and then once a minute for ever."""
        if self._refused:
            return
        self._refused = True
        if "plexloc admin" in detail or "plxw_" in detail:  # the server's answer names the fix (disabled, unknown,
            fix = ""                                           # a user's token)
        elif status == 403:  # (an older server's answer) a user's token given to a worker
            fix = "; start the worker with a worker token (plxw_..., from plexloc admin create-worker NAME)"
        else:
            fix = "; plexloc admin list, enable worker NAME, or rotate worker NAME and restart the worker with its new token"
        job = f"; job {job_id} is stopped and abandoned (the server gives it to another worker)" if job_id else ""
        log.error("the server refuses this worker's token (HTTP %s: %s)%s%s; no job is taken until it is accepted (asked "
                  "every %g s)", status, detail, job, fix, self.auth_retry_s)

    # -- one job ---------------------------------------------------------------------------------
    def execute(self, spec: dict[str, Any]) -> str:
        """Run one claimed job to its end; returns the state reported (or ``'lost'``)."""
        job_id = spec["job_id"]
        ep = EntryPoint.model_validate(spec["spec"])
        # the worker's own log (journalctl, a terminal) says which job it runs and how each ended
        log.info("job %s: %s %s %s claimed (attempt %s)", job_id, spec.get("application"), spec.get("version"),
                 spec.get("entry_point"), spec.get("attempt"))
        rep = _Reporter(self, job_id, self.ping_s, spec.get("attempt"))
        rep.start()
        work: Path | None = None
        cpu0 = _children_cpu()
        t0 = time.monotonic()
        state, error = "failed", None
        try:
            # inside the try: a work folder that cannot be made (deleted, a full disk) fails this job, reported, where
            # it ended the worker with the job claimed (assigned until its lease ran out, an attempt used up)
            try:
                work = Path(tempfile.mkdtemp(prefix=f"plexloc-job-{job_id}-", dir=self.work_dir))
                (work / _MARK).write_text(_mark())  # remove_stale_folders
            except OSError as err:
                raise OSError(f"cannot make the job's folder in {self.work_dir or tempfile.gettempdir()}: "
                              f"{err.strerror or err}") from None
            inputs = self._download(spec, ep, work, rep)
            if rep.lost.is_set():
                raise _LeaseLost  # the clean-up below, as for a lease lost while running
            if rep.cancel.is_set():
                state, error = "cancelled", "cancelled by the user"
            else:
                state, error = self._run_command(spec, ep, inputs, work, rep)
            if state == "succeeded" or state == "failed":
                rep.stage = "uploading"
                missing = self._upload_outputs(spec, ep, work / "out", rep)
                if rep.cancel.is_set():  # the user cancelled while the outputs were uploading: the job is cancelled
                    state, error = "cancelled", "cancelled by the user (while uploading the outputs)"
                elif state == "succeeded" and missing:
                    state, error = "failed", f"required output(s) missing: {', '.join(missing)}"
        except _LeaseLost:
            pass
        except Exception as err:  # a failed download/upload is the job's failure, reported, not the agent's end
            if rep.cancel.is_set():  # stopped by its user's cancel (waiting out a full store): cancelled, not failed
                # (it ended "cancelled ... before the worker saw it, the job had failed: ServiceError: HTTP 507 ...")
                state, error = "cancelled", "cancelled by the user"
            elif isinstance(err, StoreFull):  # said in full: no traceback in the worker's log
                log.error("job %s failed: %s", job_id, err)
                state, error = "failed", str(err)
            else:
                log.exception("job %s failed", job_id)
                state, error = "failed", f"{type(err).__name__}: {err}"
        except BaseException:  # the agent itself stopped (KeyboardInterrupt): no pings left behind
            rep.stop.set()
            rep.join()
            raise
        try:
            if rep.lost.is_set():
                if not self._refused:  # (a refused token said so, naming the job, where it was found)
                    log.warning("job %s: lease lost (the server gave the job back to the queue): abandoned", job_id)
                return "lost"
            rep.log(f"[worker] {state}" + (f": {error}" if error else ""))
            if work is not None:
                # the pings go on meanwhile: a long log on a slow link (or a busy server) took longer than the lease,
                # and a job that had ended was taken from its worker, its outputs deleted, and run again
                self._upload_log(job_id, work, rep)
            rep.stop.set()
            rep.join()  # from here on the pings are sent below, one at a time, in the order of the lines
            while rep.pending() > _BATCH and not rep.lost.is_set():  # the finish carries one batch: the rest by pings
                before = rep.pending()
                rep.flush(max_requests=1)
                if rep.pending() >= before:  # the server does not answer: the finish below says so
                    break
            wall = time.monotonic() - t0
            body = {
                "state": state,
                "error": error,
                "cpu_seconds": _children_cpu() - cpu0,
                "gpu_seconds": wall * int(spec["hardware"].get("gpus", 0)),
                "log": rep.take(),
            }
            ended = self._finish(job_id, body, rep)
            if ended != "lost":  # (a lost one is warned about where it is found)
                log.info("job %s: %s", job_id, ended + (f": {error}" if error and ended == state else ""))
            return ended
        finally:
            rep.stop.set()
            rep.join()
            rep.close()
            self._cleanup(work)

    def _finish(self, job_id: str, body: dict[str, Any], rep: _Reporter) -> str:
        """Report the job's end; returns the state the job ended in (``'lost'``: not accepted). A job its user cancelled
        after the worker's last ping ends only ``cancelled``: the server refuses another end (409), said here, and the
        job is reported cancelled instead."""
        state = body["state"]
        try:
            r = self._deliver_finish(job_id, body, rep)
            if r is None:
                return "lost"
            if r.status_code == 409 and r.json().get("state") == state:  # a finish whose answer was lost got through
                return state
            if r.status_code == 409 and state != "cancelled":
                answer = r.json()
                log.warning("job %s: the server refused %r (HTTP 409: %s)", job_id, state, answer.get("detail"))
                if answer.get("state") == "cancelled":  # over already (cancelled when the worker stopped answering)
                    return "cancelled"
                if answer.get("cancel_requested"):
                    error = f"cancelled by the user (before the worker saw it, the job had {state}"
                    error += f": {body['error']})" if body.get("error") else ")"
                    # the refused report changed nothing (its log lines and times included): all of it again
                    body, state = {**body, "state": "cancelled", "error": error}, "cancelled"
                    r = self.http.post(f"/jobs/{job_id}/finish", json=body, headers=rep.headers)
            check(r)
        except (httpx.HTTPError, ServiceError, ValueError) as err:
            log.warning("job %s: finish not accepted: %s", job_id, err)
            return "lost"
        return state

    def _deliver_finish(self, job_id: str, body: dict[str, Any], rep: _Reporter) -> httpx.Response | None:
        """POST the finish, again with growing pauses (up to ``storage_wait_s``) while the server does not answer or
        answers 5xx (a restart, a network outage): one lost request at the end of a job lost all of it (the lease
        lapsed, the job ran again from the start, its uploaded outputs deleted). Meanwhile pings keep the lease; a
        refused one (the lease is gone) ends the waiting. None: not delivered."""
        deadline = time.monotonic() + self.storage_wait_s
        pause = 0.5
        while True:
            try:
                r = self.http.post(f"/jobs/{job_id}/finish", json=body, headers=rep.headers)
                if r.status_code < 500:
                    return r
                why = f"HTTP {r.status_code}"
            except httpx.TransportError as err:
                why = f"{type(err).__name__}: {err}"
            if time.monotonic() + pause > deadline:
                log.warning("job %s: finish not delivered (%s); giving up", job_id, why)
                return None
            log.warning("job %s: finish not delivered (%s); again in %g s", job_id, why, pause)
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
            try:
                p = self.http.post(f"/jobs/{job_id}/ping", json={"progress": rep.progress, "stage": rep.stage, "log": []},
                                   headers=rep.headers)
                if p.status_code in (401, 403, 404):  # over (an earlier finish got through, its answer lost) or lost
                    try:
                        r = self.http.post(f"/jobs/{job_id}/finish", json=body, headers=rep.headers)
                        if r.status_code < 500:
                            return r
                    except httpx.TransportError:
                        pass
                    log.warning("job %s: the lease is gone (HTTP %s): finish not delivered", job_id, p.status_code)
                    return None
            except httpx.TransportError:
                pass

    def _retrying(self, what: str, fn, rep: _Reporter):
        """``fn()``, tried again with growing pauses (up to ``storage_wait_s`` in all) while the store or
        the server is unreachable: the job waits out an outage instead of failing or losing its files."""
        started = time.monotonic()
        deadline = started + self.storage_wait_s
        pause = 0.5
        mismatches = 0
        links, link_at = 0, 0.0  # signed links refused (403) in quick succession, and when the last one was
        while True:
            try:
                return fn()
            except (httpx.TransportError, transfer.TransferError, ServiceError) as err:
                if isinstance(err, transfer.UploadCancelled):
                    raise
                if isinstance(err, transfer.LinkRefused) and time.monotonic() - link_at > 60:
                    links = 0  # a link that served a while before it was refused (a long transfer cut again): expired
                if isinstance(err, transfer.LinkRefused) and links < 2 and not (rep.cancel.is_set() or rep.lost.is_set()):
                    # its signed URL expired (an input's download that outlived url_ttl_s, an hour by default, and was
                    # then cut; an output's upload): ``fn`` asks the server for a fresh one and the transfer resumes
                    # where it stopped (before, the job failed with "refused (403)", the bytes fetched so far lost). A
                    # fresh link refused twice more is not an expiry: the job fails with it
                    links, link_at = links + 1, time.monotonic()
                    rep.log(f"[worker] {what}: the signed link was refused ({err}); asking the server for a fresh "
                            "one and resuming")
                    continue
                transient = not isinstance(err, ServiceError) or err.status in (502, 503, 504)
                # 507: the server's store is full. Its administrator can free space: the job waits for it (up to
                # storage_wait_s), its outputs kept, where a day's training failed at its end, its model lost
                # (or its disk filled partway through an upload: the store's own 507, StoreFilled; it was waited out
                # as an outage and the job failed with "TransferError: upload of NAME refused (507): {JSON}")
                full = (isinstance(err, ServiceError) and err.status == 507) or isinstance(err, transfer.StoreFilled)
                transient = transient or full
                if isinstance(err, transfer.TransferError) and "refused (4" in str(err):
                    transient = False
                if isinstance(err, transfer.ChecksumMismatch):  # corrupted in flight: twice more; a bad copy stays bad
                    mismatches += 1
                    transient = mismatches <= 2
                if full and rep.store_full:  # waited out once already (an output): the log upload does not wait
                    raise  # as long again (a store never freed failed the job after twice storage_wait_s, 20 min)
                if full and transient and time.monotonic() + pause > deadline and not (rep.cancel.is_set()
                                                                                       or rep.lost.is_set()):
                    rep.store_full = True
                    raise StoreFull(
                        f"the server's file store stayed full for {time.monotonic() - started:.0f} s, so the job's "
                        f"outputs were not kept ({err.detail}); once space is freed, submit the job again (plexloc "
                        f"status {rep.job_id} --rerun, or Re-run on the web page)"
                    ) from None
                if not transient or time.monotonic() + pause > deadline or rep.cancel.is_set() or rep.lost.is_set():
                    raise
                rep.log(f"[worker] {what}: {err}; retrying in {pause:g} s"
                        + (f" (waiting up to {self.storage_wait_s:g} s in all for the space)" if full else ""))
                # a cancel (or a lost lease) ends the pause: a job waiting for a full store's space was cancelled up
                # to 30 s after its user asked
                end = time.monotonic() + pause
                while (left := end - time.monotonic()) > 0 and not rep.cancel.is_set() and not rep.lost.is_set():
                    rep.cancel.wait(min(left, 0.25))
                if rep.cancel.is_set() or rep.lost.is_set():
                    raise err
                pause = min(pause * 2, 30.0)

    def _cleanup(self, work: Path | None) -> None:
        if work is not None and not self.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        elif work is not None:  # kept (--keep-work): its job is over, no later worker deletes it
            (work / _MARK).unlink(missing_ok=True)

    def _download(self, spec: dict[str, Any], ep: EntryPoint, work: Path, rep: _Reporter) -> dict[str, list[str]]:
        inputs: dict[str, list[str]] = {}
        shared = ep.shared_input_folders()
        for f in spec["inputs"]:
            if rep.cancel.is_set() or rep.lost.is_set():
                break
            folder_name = ep.input_folder(f["slot"])
            folder = work / "in" / folder_name
            name = f["name"]
            if (folder / name).exists():
                if folder_name in shared:  # a configuration names these files: a renamed copy would not be found
                    raise InputError(f"two input files named {name!r} in the folder of slot {folder_name!r}")
                name = f"{f['position']}_{name}"

            def fetch(f=f, name=name, folder=folder):
                url = check(self.http.get(f"/jobs/{spec['job_id']}/files/{f['file_id']}/url", headers=rep.headers))["url"]
                transfer.download(self.bytes_http, url, folder / name, sha256=f["sha256"])

            self._retrying(f"download of {f['name']}", fetch, rep)
            inputs.setdefault(f["slot"], []).append(str(folder / name))
            rep.log(f"[worker] downloaded {f['slot']}: {f['name']} ({f['size']} bytes)")
        rep.progress = 0.0
        return inputs

    def _run_command(self, spec, ep: EntryPoint, inputs: dict[str, list[str]], work: Path, rep: _Reporter) -> tuple[str, str | None]:
        device = "cuda" if int(spec["hardware"].get("gpus", 0)) > 0 else "cpu"
        out = work / "out"
        runs: list[tuple[str | None, dict[str, list[str]], Path]] = []
        if ep.foreach:
            seen: set[str] = set()
            for path in inputs.get(ep.foreach, []):
                stem = Path(path).stem
                while stem in seen:
                    stem += "_"
                seen.add(stem)
                runs.append((stem, {**inputs, ep.foreach: [path]}, out / stem))
        else:
            runs.append((None, inputs, out))
        rep.stage = "running"
        rep.flush()
        deadline = time.monotonic() + float(spec["timeout_s"])
        env = {**os.environ, **ep.env}
        for i, (stem, run_inputs, run_out) in enumerate(runs):
            run_out.mkdir(parents=True, exist_ok=True)
            argv = ep.render(config=spec["config"], inputs=run_inputs, output_dir=str(run_out), work_dir=str(work), device=device, stem=stem)
            program = Path(str(argv[0])).name  # as the application names it ("plexloc", not the interpreter running it)
            container = None
            if ep.image is not None:  # claimed only with a runtime (runnable); the image's own programs run
                if self.runtime is None:
                    return "failed", f"entry point needs a container runtime ({', '.join(RUNTIMES)}) for image {ep.image}"
                container = f"plexloc-{spec['job_id']}-{i}"
                hw = spec["hardware"]
                argv = self.runtime.argv(ep.image, argv, work=work, env=ep.env, gpus=int(hw.get("gpus", 0)),
                                         cpus=hw.get("cpus"), memory_mb=hw.get("memory_mb"), name=container)
            else:
                argv = resolve_program(argv)
            rep.log("[worker] $ " + " ".join(argv))
            result = self._run_process(argv, env, work, rep, deadline, base=i / len(runs), scale=1 / len(runs),
                                       program=program)
            if result is not None:
                if container is not None:
                    self.runtime.remove(container)  # a killed client can leave its container running
                return result
        rep.progress = 1.0
        return "succeeded", None

    def _run_process(self, argv, env, cwd: Path, rep: _Reporter, deadline: float, *, base: float, scale: float,
                     program: str | None = None):
        """None on success; else (state, error). The command leads a process group of its own (under
        :data:`_GUARD` on Linux), which a cancel, a lost lease or the time limit ends, and its end too."""
        run, err_r, err_w = argv, None, None
        try:
            if _GUARDED:
                err_r, err_w = os.pipe()
                run = [sys.executable, "-I", "-S", "-c", _GUARD, str(os.getpid()), str(self.kill_grace_s), str(err_w),
                       *argv]
            proc = subprocess.Popen(run, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(err_w,) if err_w is not None else ())
        except OSError as err:
            for fd in (err_r, err_w):
                if fd is not None:
                    os.close(fd)
            return "failed", f"cannot start {argv[0]}: {err}"
        if err_w is not None:
            os.close(err_w)
        reader = threading.Thread(target=self._read_output, args=(proc, rep, base, scale), daemon=True)
        reader.start()
        outcome = None
        while proc.poll() is None:
            if rep.cancel.is_set():
                outcome = ("cancelled", "cancelled by the user")
            elif rep.lost.is_set():
                outcome = ("lost", "lease lost")
            elif time.monotonic() > deadline:
                outcome = ("failed", "time limit exceeded")
            if outcome:
                self._kill(proc)
                break
            time.sleep(0.05)
        proc.wait()
        returncode, said = proc.returncode, ""
        if err_r is not None:  # what the guard said: the command could not start, or a signal ended it
            os.set_blocking(err_r, False)
            with os.fdopen(err_r, "rb") as f:
                try:
                    said = (f.read() or b"").decode(errors="replace")
                except BlockingIOError:  # (the guard killed between its fork and the command's start)
                    pass
            if said.startswith("S") and said[1:].isdigit():
                returncode = -int(said[1:])
        # what the command left behind in its process group (a background child, a child that ignored the SIGTERM
        # its exiting parent shared) would run on, unseen, on a shared GPU, and hold the output pipe open
        self._end_group(proc.pid)
        reader.join(timeout=5)
        if reader.is_alive():  # a process outside the group (it left it) holds the pipe: do not wait for it
            rep.log("[worker] a process the command started outside its process group still holds its output")
        else:
            proc.stdout.close()
        if outcome:
            return outcome
        if said.startswith("E") and returncode == 127:
            return "failed", f"cannot start {argv[0]}: {said[1:]}"
        if returncode != 0:
            # the user's error: the paths of this worker's job folder cut to what the user knows, the input's slot
            # and file name (".../plexloc-job-ID-xyz/in/movie/bad.tif" -> "movie/bad.tif")
            tail = [_short_paths(l, cwd) for l in rep.tail if not l.startswith("[worker]")][-5:]
            return "failed", f"{program or Path(argv[0]).name} exited with code {returncode}: " + " | ".join(tail)
        return None

    def _kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.kill_grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _end_group(self, pgid: int) -> None:
        """End every process left in the job's process group ``pgid`` (its leader has been reaped): SIGTERM, up to
        ``kill_grace_s`` to exit, then SIGKILL."""
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return  # none left
        deadline = time.monotonic() + self.kill_grace_s
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _read_output(proc: subprocess.Popen, rep: _Reporter, base: float, scale: float) -> None:
        buf = b""
        cut = 0  # bytes of the current line left out (a line longer than _LINE_BYTES)
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
            if not data:
                break
            buf += data
            *pieces, buf = re.split(rb"(\r|\n)", buf)
            if len(buf) > _LINE_BYTES:  # no line end for long (binary output): keep the start, count the rest
                if not cut:
                    buf, cut = buf[:_LINE_BYTES], len(buf) - _LINE_BYTES
                else:
                    buf, cut = buf[:_LINE_BYTES], cut + len(buf) - _LINE_BYTES
            if pieces and cut:
                pieces[0] += f" [... {cut} bytes cut]".encode()
                cut = 0
            # pieces alternate text, separator
            for text, sep in zip(pieces[0::2], pieces[1::2]):
                line = text.decode(errors="replace").rstrip()
                m = _EXPLICIT.match(line) or _TQDM.search(line)
                if m:
                    value = float(m.group(1))
                    frac = value / 100 if m.re is _TQDM else value
                    rep.progress = base + scale * min(1.0, max(0.0, frac))
                if sep == b"\n" and line and not _EXPLICIT.match(line):
                    rep.log(line)
        if cut:
            buf += f" [... {cut} bytes cut]".encode()
        if buf.strip():
            rep.log(buf.decode(errors="replace").rstrip())

    def _upload_outputs(self, spec, ep: EntryPoint, out: Path, rep: _Reporter) -> list[str]:
        folders = [p for p in sorted(out.iterdir()) if p.is_dir()] if ep.foreach else [out]
        missing: list[str] = []
        seen: set[Path] = set()
        for folder in folders:
            for decl in ep.outputs:
                matches = sorted(p for p in folder.glob(decl.path) if p.is_file())
                if not matches and decl.required:
                    missing.append(str((folder / decl.path).relative_to(out)))
                for path in matches:
                    if rep.cancel.is_set() or rep.lost.is_set():  # cancelled while uploading: no more files
                        return missing
                    if path in seen:
                        continue
                    seen.add(path)
                    name = path.relative_to(out).as_posix()
                    try:
                        self._upload_one(spec["job_id"], path, name, decl.kind, rep, stoppable=True)
                    except transfer.UploadCancelled:  # the file stays pending on the server: never an output
                        rep.log(f"[worker] upload of {name} stopped: "
                                + ("cancelled by the user" if rep.cancel.is_set() else "lease lost"))
                        return missing
                    rep.log(f"[worker] uploaded {name}")
        return missing

    def _upload_one(self, job_id: str, path: Path, name: str, kind: str, rep: _Reporter, *,
                    stoppable: bool = False) -> None:
        """Register and upload one output. ``stoppable``: a cancel or a lost lease stops it between chunks (also while
        its checksum is computed), with :class:`transfer.UploadCancelled`."""
        stop = (lambda: rep.cancel.is_set() or rep.lost.is_set()) if stoppable else None
        if kind != "log":
            rep.outputs.add(name)
        sha256 = transfer.sha256_of(path, cancelled=stop)
        body = {"name": name, "size": path.stat().st_size, "sha256": sha256, "kind": kind}
        created = self._retrying(
            f"registering {name}", lambda: check(self.http.post(f"/jobs/{job_id}/outputs", json=body, headers=rep.headers)), rep
        )
        fid = created["file"]["id"]
        urls = iter([created["upload_url"]])

        def put_and_complete():
            url = next(urls, None) or check(
                self.http.post(f"/jobs/{job_id}/outputs/{fid}/upload-url", headers=rep.headers))["upload_url"]
            transfer.upload(self.bytes_http, url, path, cancelled=stop)  # continues where the store stopped
            check(self.http.post(f"/jobs/{job_id}/outputs/{fid}/complete", headers=rep.headers))

        self._retrying(f"upload of {name}", put_and_complete, rep)

    def _upload_log(self, job_id: str, work: Path, rep: _Reporter) -> None:
        path = work / "log.txt"
        # log.txt, unless the application wrote a result of that name (the server keeps one file per name: the worker's
        # log replaced the application's log.txt, which was lost)
        name, i = "log.txt", 1
        while name in rep.outputs:  # worker-log.txt, worker-log-2.txt, ... (a tuple of them all cost 0.35 s and 86 MB)
            name = f"worker-log{'-' + str(i) if i > 1 else ''}.txt"
            i += 1
        try:
            rep.write_log(path)
            self._upload_one(job_id, path, name, "log", rep)
        except (httpx.HTTPError, ServiceError, transfer.TransferError, StoreFull, OSError) as err:  # (the finish carries
            # the lines; a store that stayed full for the log alone, no output before it, ended neither the job nor,
            # raised, the worker's loop)
            log.warning("job %s: log upload failed: %s", job_id, err)


#: the file in a job folder that names the worker process using it (pid and start time: a pid can be used again)
_MARK = ".plexloc-worker"


def _host() -> str:
    """This machine's (or container's) name, as one word."""
    return "".join(socket.gethostname().split()) or "-"


def _boot_id() -> str:
    """This boot of the machine (Linux: a random id per boot), or ``"-"`` when unknown."""
    try:
        return "".join(Path("/proc/sys/kernel/random/boot_id").read_text().split()) or "-"
    except OSError:
        return "-"


def _pid_namespace() -> str:
    """The pid namespace this process sees pids in (Linux: ``pid:[inode]``), or ``"-"`` when unknown: two containers
    can share a host name (``--network host``) but not their pids."""
    try:
        return "".join(os.readlink("/proc/self/ns/pid").split()) or "-"
    except OSError:
        return "-"


def _mark() -> str:
    """The text of a job folder's :data:`_MARK`: pid, its start, host, boot and pid namespace of this worker."""
    return f"{os.getpid()} {_process_start(os.getpid())} {_host()} {_boot_id()} {_pid_namespace()}"


def _process_start(pid: int) -> str:
    """An id of the process ``pid``'s start (Linux: its start time in /proc; elsewhere ``"alive"``), or ``""`` when
    there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    if Path("/proc/self/stat").exists():
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass
    return "alive"


def _detail(r: httpx.Response) -> str:
    """The server's reason in an error answer (its ``detail``, as :func:`check` reads it)."""
    try:
        check(r)
    except ServiceError as err:
        return str(err.detail)
    return ""


def _short_paths(line: str, work: Path) -> str:
    """``line`` with the job folder's paths relative to it, inputs as ``SLOT/NAME``, outputs as ``out/NAME``."""
    for folder in (work, work.resolve()):
        line = line.replace(f"{folder}/in/", "").replace(f"{folder}/", "")
    return line


def _group_alive(pgid: int) -> bool:
    """Some process of group ``pgid`` still runs (zombies waiting for their parent to reap them do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
