"""Helpers shared by the sub-commands."""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

from plexloc.errors import InputError
from plexloc.progress import progress  # noqa: F401  (re-exported for the sub-commands)

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when there is one; 'cuda' without one is an InputError, not a crash."""
    import torch  # kept out of module import: `plexloc evaluate` needs no torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no usable GPU"
        raise InputError(f"--device {name}: no CUDA device is available (torch {torch.__version__}, {why}); use --device "
                         "cpu, and `plexloc doctor` for what is missing")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """JSON (NaN/inf written as null), atomically."""
    from plexloc.io._atomic import atomic_path  # lazily: `plexloc.io` pulls in torch

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2) + "\n")
