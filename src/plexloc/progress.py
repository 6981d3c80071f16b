"""Progress bars for long work (library and CLI alike).

On a terminal: a tqdm bar on stderr. Where stderr is not a terminal (a log file, ``nohup``, a cluster job), work
that lasts longer than :data:`LOG_DELAY_S` writes a plain progress line every :data:`LOG_INTERVAL_S` seconds and one
at the end, so that a long ``plexloc train`` or ``fit`` shows that it runs; short work writes nothing. With
``PLEXLOC_PROGRESS`` set (the job service's workers do), the bar is written as on a terminal, for the service to
read its fraction.
"""

from __future__ import annotations

import os
import sys

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
    kwargs = {"delay": LOG_DELAY_S, "mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S, "ascii": True,
              "ncols": 100, **kwargs}
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_Lines(sys.stderr), **kwargs)
