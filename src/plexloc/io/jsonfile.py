"""JSON files that plexloc writes (reports, summaries, calibration reports): NaN and infinity become ``null``, so
that every JSON reader takes them, and the file is written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from plexloc.io._atomic import atomic_path

__all__ = ["json_safe", "write_json"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced by None.

    >>> json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})
    {'a': None, 'b': [1.0, None], 'c': 'x'}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """``data`` as indented JSON at ``path`` (NaN/inf written as null), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2) + "\n")
