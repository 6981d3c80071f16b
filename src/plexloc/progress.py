"""Progress bars for long work (library and CLI alike).

On a terminal: a tqdm bar on stderr. Where stderr is not a terminal (a log file, ``nohup``, a cluster job), work
that lasts longer than :data:`LOG_DELAY_S` writes a plain progress line every :data:`LOG_INTERVAL_S` seconds and one
at the end, so that a long ``plexloc train`` or ``fit`` shows that it runs; short work writes nothing. With
``PLEXLOC_PROGRESS`` set (the job service's workers do), the bar is written as on a terminal, for the service to
read its fraction.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time

#: seconds before a bar in a log (stderr not a terminal) writes its first line
LOG_DELAY_S = 30.0
#: seconds between lines of a bar in a log
LOG_INTERVAL_S = 60.0


class _Lines:
    """A stream that writes tqdm's carriage-return refreshes as separate lines (for log files)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line.strip() and line != self.last:  # tqdm's closing refresh repeats the last line
                self.stream.write(line + "\n")
                self.last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable, *, total: int | None = None, desc: str = "", unit: str = "it", **kwargs):
    """A tqdm progress bar on stderr (see the module docstring for where stderr is not a terminal)."""
    from tqdm import tqdm

    if sys.stderr.isatty() or os.environ.get("PLEXLOC_PROGRESS"):
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, **kwargs)
    # miniters=1: a line when LOG_INTERVAL_S have passed at an update, never from tqdm's monitor thread, which
    # redrew a stalled bar (a training's validation) with its count unchanged, and the next step wrote the next
    # count at once ("262step" then "263step" in the same second, around every validation)
    kwargs = {"delay": LOG_DELAY_S, "mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S, "miniters": 1,
              "ascii": True, "ncols": 100, **kwargs}
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_Lines(sys.stderr), **kwargs)


@contextlib.contextmanager
def outside_bar(bar, file=None):
    """Write to ``file`` (default stdout) between a bar's refreshes: a tqdm bar (on a terminal, or for the job service) is cleared first and
    drawn again after, so that a line printed while it runs starts a line of its own where stdout and stderr are one
    stream (the service's workers read them merged: without this the bar and the line ran together)."""
    file = sys.stdout if file is None else file
    mode = getattr(type(bar), "external_write_mode", None) if bar is not None else None
    if mode is None:
        yield
        return
    with mode(file=file):
        yield
        file.flush()


class FractionLines:
    """``PLEXLOC_PROGRESS <fraction>`` lines on stderr for work whose bar shows no percentage (a training given
    ``--minutes``: its end is a time, not a step), written only where ``PLEXLOC_PROGRESS`` is set (the job service's
    workers read them; see :mod:`plexloc.service.agent`), at most one every ``every_s`` seconds."""

    def __init__(self, bar=None, *, every_s: float = 2.0) -> None:
        self.bar = bar
        self.every_s = every_s
        self.enabled = bool(os.environ.get("PLEXLOC_PROGRESS"))
        self._last = -math.inf

    def __call__(self, fraction: float, *, force: bool = False) -> None:
        if not self.enabled or not math.isfinite(fraction):
            return
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        with outside_bar(self.bar, sys.stderr):  # "\r": after an unfinished line (a bar not cleared), one of its own
            sys.stderr.write(f"\rPLEXLOC_PROGRESS {min(max(fraction, 0.0), 1.0):.4f}\n")
            sys.stderr.flush()
