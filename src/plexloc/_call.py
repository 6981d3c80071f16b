"""Small helpers about calling functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def keyword_defaults(fn: Callable, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``fn``'s keyword-only parameters and their defaults, read from its signature (one source for a wrapper
    that forwards ``**options`` to it)."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY and k not in exclude}
