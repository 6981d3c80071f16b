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


def as_device(device: Any) -> Any:
    """``device`` as a ``torch.device``; CUDA where torch has none is an :class:`~plexloc.errors.InputError` saying so
    (torch's own error is an AssertionError, "Torch not compiled with CUDA enabled", from deep inside the first
    transfer), and a name that is not a device one too."""
    import torch

    from plexloc.errors import InputError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: no CUDA device is available to torch {torch.__version__}; use "
                         "device='cpu' (`plexloc doctor` says what is missing)")
    return dev

