"""Container images as entry points: a worker with podman, Docker or Apptainer runs them.

An entry point that names ``image:`` runs its command inside that image. The job's work folder is
mounted at ``/work``; every argument that names a path in the work folder (inputs, the output
folder) is rewritten to the same path under ``/work``. The entry point's ``env`` is passed with
``-e``/``--env``; GPUs are passed through when the job has any; the container is removed at the end
(``--rm``) and named after the job, so that a cancelled job's container can be removed by name.
No Docker socket is given to the job, and the worker needs no daemon when the runtime is podman or
Apptainer (rootless).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: in order of preference (rootless and daemonless first)
RUNTIMES = ("podman", "docker", "apptainer")
MOUNT = "/work"


@dataclass(frozen=True)
class Runtime:
    name: str  # podman, docker or apptainer
    path: str  # the executable

    def argv(
        self,
        image: str,
        command: list[str],
        *,
        work: Path,
        env: dict[str, str] | None = None,
        gpus: int = 0,
        cpus: int | None = None,
        memory_mb: int | None = None,
        name: str | None = None,
    ) -> list[str]:
        """The argument list that runs ``command`` (host paths under ``work``) in ``image``."""
        inner = [to_container_path(a, work) for a in command]
        env = {k: to_container_path(v, work) for k, v in (env or {}).items()}
        if self.name == "apptainer":
            argv = [self.path, "exec", "--cleanenv", "--containall", "--bind", f"{work}:{MOUNT}", "--pwd", MOUNT]
            if gpus:
                argv.append("--nv")
            for k, v in env.items():
                argv += ["--env", f"{k}={v}"]
            # a local .sif file runs as it is; a registry name is pulled through docker://
            ref = image if image.endswith(".sif") or "://" in image else f"docker://{image}"
            return [*argv, ref, *inner]
        argv = [self.path, "run", "--rm", "-v", f"{work}:{MOUNT}", "-w", MOUNT]
        if name:
            argv += ["--name", name]
        if gpus:
            argv += ["--gpus", "all"] if self.name == "docker" else ["--device", "nvidia.com/gpu=all"]
        if cpus:
            argv += ["--cpus", str(cpus)]
        if memory_mb:
            argv += ["--memory", f"{memory_mb}m"]
        for k, v in env.items():
            argv += ["-e", f"{k}={v}"]
        return [*argv, image, *inner]

    def remove(self, name: str) -> None:
        """Remove a (still running) container by name; apptainer runs no daemon-held container."""
        if self.name == "apptainer":
            return
        try:
            subprocess.run([self.path, "rm", "-f", name], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass


def to_container_path(arg: str, work: Path) -> str:
    """``arg`` with the host's work folder replaced by the mount point (only where it is a path prefix)."""
    root = str(work).rstrip("/")
    out, i = [], 0
    while (j := arg.find(root, i)) >= 0:
        end = j + len(root)
        if end == len(arg) or arg[end] == "/":
            out.append(arg[i:j] + MOUNT)
        else:
            out.append(arg[i:end])
        i = end
    return "".join(out) + arg[i:]


def detect_runtime(preferred: str | None = None) -> Runtime | None:
    """The container runtime of this machine: ``preferred`` (or ``$PLEXLOC_CONTAINER_RUNTIME``: a name
    of :data:`RUNTIMES`, a path, or ``none``), else the first of :data:`RUNTIMES` on PATH; None when
    there is none (the worker then claims no job whose entry point names an image)."""
    from plexloc.service.agent import find_program

    choice = preferred or os.environ.get("PLEXLOC_CONTAINER_RUNTIME") or None
    if choice is not None:
        if choice.lower() == "none":
            return None
        path = find_program(choice)
        if path is None:
            return None
        base = Path(choice).name
        name = next((r for r in RUNTIMES if base.startswith(r)), None)
        if name is None and base == "singularity":
            name = "apptainer"  # the same command line
        return Runtime(name, path) if name else None
    return next(_on_path(), None)


def _on_path() -> Iterator[Runtime]:
    """Each of :data:`RUNTIMES` found on PATH, in that order (looked up as they are asked for)."""
    from plexloc.service.agent import find_program

    for name in RUNTIMES:
        path = find_program(name)
        if path is not None:
            yield Runtime(name, path)


def runtime_problem(runtime: Runtime, *, timeout_s: float = 30.0) -> str | None:
    """Why ``runtime`` cannot run containers here (its last line of error), or None when it can: ``docker info`` /
    ``podman info`` reach the daemon or the rootless store, ``apptainer --version`` runs. A Docker client without its
    daemon, or without the permission to reach its socket (a user not in the docker group), is on PATH all the same: the
    worker took every job that names an image, and each failed on "Cannot connect to the Docker daemon"."""
    argv = [runtime.path, "--version"] if runtime.name == "apptainer" else [runtime.path, "info"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"'{' '.join(argv)}' did not answer in {timeout_s:g} s"
    except OSError as err:
        return f"cannot run {runtime.path}: {err.strerror or err}"
    if r.returncode == 0:
        return None
    said = [line.strip() for line in (r.stderr or r.stdout or "").splitlines() if line.strip()]
    return f"'{' '.join(argv)}' failed (exit {r.returncode})" + (f": {said[-1]}" if said else "")


def usable_runtime(preferred: str | None = None) -> tuple[Runtime | None, list[str]]:
    """The runtime :func:`detect_runtime` chooses, if :func:`runtime_problem` finds none with it; found automatically,
    else the next of :data:`RUNTIMES` on PATH that works. Returns it (None: the worker claims no image job) and a warning
    for each runtime found but not working (the worker prints them at start)."""
    chosen = preferred or os.environ.get("PLEXLOC_CONTAINER_RUNTIME") or None
    candidates = [detect_runtime(chosen)] if chosen is not None else list(_on_path())
    failed: list[tuple[Runtime, str]] = []  # (runtime, why), said once the outcome is known

    def said(instead: Runtime | None) -> list[str]:
        # with another runtime that works, "takes no job that names a container image" was said beside
        # "containers: apptainer" on the start line
        outcome = (f"using {instead.name} ({instead.path}) instead" if instead is not None
                   else "this worker takes no job that names a container image")
        return [f"warning: the container runtime {r.name} ({r.path}) does not work here: {why}; {outcome} (start "
                f"{r.name}'s service or give this user access to it, or choose another with --container-runtime "
                "NAME|none)" for r, why in failed]

    for runtime in candidates:
        if runtime is None:
            if chosen.lower() != "none":
                return None, [f"warning: the container runtime {chosen!r} is not a program on PATH (podman, docker, "
                              "apptainer or a path); this worker takes no job that names a container image"]
            return None, []
        why = runtime_problem(runtime)
        if why is None:
            return runtime, said(runtime)
        failed.append((runtime, why))
    return None, said(None)
