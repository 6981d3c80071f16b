"""The one ``plexloc`` entry point. Each sub-command lives in its own module of this package and
exposes ``register(subparsers)``; the module's ``run(args)`` does the work by calling the library.

Bad input (:class:`plexloc.errors.InputError`), a file the system will not read or write (``OSError``), and a
package the command needs that is not installed (an optional one: its extra, ``pip install 'plexloc[service]'``) or
a torch that cannot be imported (:func:`plexloc.doctor.missing_package_message`), end in a one-line message on stderr
and exit code 2. Ctrl-C, and SIGTERM (:func:`terminate_as_interrupt`), exit 130 with
nothing half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

from plexloc import __version__
from plexloc.errors import InputError

#: sub-command name -> module in plexloc.cli (imported lazily so that ``plexloc --help`` is fast)
COMMANDS: dict[str, str] = {
    "simulate": "plexloc.cli.simulate",
    "detect": "plexloc.cli.detect",
    "evaluate": "plexloc.cli.evaluate",
    "crlb": "plexloc.cli.crlb",
    "demo": "plexloc.cli.demo",
    "train": "plexloc.cli.train",
    "fit": "plexloc.cli.fit",
    "process": "plexloc.cli.process",
    "serve": "plexloc.cli.serve",
    "worker": "plexloc.cli.worker",
    "admin": "plexloc.cli.admin",
    "submit": "plexloc.cli.submit",
    "status": "plexloc.cli.status",
    "download": "plexloc.cli.download",
    "drift": "plexloc.cli.drift",
    "merge": "plexloc.cli.merge",
    "filter": "plexloc.cli.filter",
    "render": "plexloc.cli.render",
    "frc": "plexloc.cli.frc",
    "report": "plexloc.cli.report",
    "convert": "plexloc.cli.convert",
    "columns": "plexloc.cli.columns",
    "estimate-priors": "plexloc.cli.estimate_priors",
    "calibrate": "plexloc.cli.calibrate",
    "calibrate-camera": "plexloc.cli.calibrate_camera",
    "color": "plexloc.cli.color",
    "debias": "plexloc.cli.debias",
    "register": "plexloc.cli.register",
    "split": "plexloc.cli.split",
    "doctor": "plexloc.cli.doctor",
    "examples": "plexloc.cli.examples",
    "info": "plexloc.cli.info",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexloc",
        description="Single-molecule localization microscopy: simulate, train a network on the simulator, fit movies "
        "(network or maximum likelihood), post-process, evaluate, and run the job service. "
        "'plexloc COMMAND --help' describes each command; 'plexloc doctor' checks the installation and the GPU.",
    )
    parser.add_argument("--version", action="version", version=f"plexloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """plexloc's own warnings as one line, ``plexloc COMMAND: warning: ...`` (no source file and line); others as
    Python shows them."""
    if getattr(category, "__module__", "").startswith("plexloc."):
        print(f"plexloc {_command}: warning: {message}", file=file or sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning
_command = ""


#: commands with their own SIGTERM handling (the worker finishes its job; the server's own shutdown)
OWN_SIGTERM = ("serve", "worker")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cluster's scheduler, ``timeout``, ``kill``, the job service cancelling) ends a command as Ctrl-C does:
    its temporary files removed, an earlier output kept, exit code 130. SIGTERM's default action killed the process
    where it stood: ``plexloc simulate`` left ``.movie.tif.*.tmp.tif`` (125 MB after 5 s) beside the movie's name for
    good, ``plexloc fit`` its partial table, although every file is written under a temporary name for exactly this.
    Only in the main thread (where signal handlers live); the handler before is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # a handler installed from C (plexloc embedded) reads as None: the default then
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


def main(argv: Sequence[str] | None = None) -> int:
    global _command
    parser = build_parser()
    args = parser.parse_args(argv)
    _command = args.command
    try:
        with warnings.catch_warnings(), (terminate_as_interrupt() if args.command not in OWN_SIGTERM
                                         else contextlib.nullcontext()):
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except InputError as err:
        print(f"plexloc {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output stopped (plexloc columns LOCS | head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush of stdout must not fail again
        return 0
    except OSError as err:  # a file that cannot be read or written (permissions, a full disk, a parent that is a file)
        what = f"{err.strerror}: {err.filename}" if err.strerror and err.filename else str(err)
        print(f"plexloc {args.command}: error: {what}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"plexloc {args.command}: interrupted", file=sys.stderr)
        return 130
    except ImportError as err:  # e.g. `plexloc serve` without the service extra: what to install, not a traceback
        from plexloc.doctor import missing_package_message

        message = missing_package_message(err)
        if message is None:  # not a package plexloc knows of: a bug, shown as one
            raise
        print(f"plexloc {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
