"""Progress bars for long work (library and CLI alike)."""

from __future__ import annotations

import os
import sys


def progress(iterable, *, total: int | None = None, desc: str = "", unit: str = "it", **kwargs):
    """A tqdm progress bar on stderr (quiet when stderr is not a terminal and PLEXLOC_PROGRESS is unset)."""
    from tqdm import tqdm

    disable = not (sys.stderr.isatty() or os.environ.get("PLEXLOC_PROGRESS"))
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, **kwargs)
