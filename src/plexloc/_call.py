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
    """``device`` as a ``torch.device`` that can run the work; an :class:`~plexloc.errors.InputError` saying why not
    for CUDA where torch has none (torch's own error is an AssertionError, "Torch not compiled with CUDA enabled",
    from deep inside the first transfer), a CUDA index beyond the GPUs, another accelerator (``mps``, ``xpu``) that
    torch has not here (an AssertionError or "not linked with support" from inside too), the ``meta`` device (its
    tensors hold no values: "Cannot copy out of meta tensor" or an autocast error), and a name that is not a device."""
    import torch

    from plexloc.errors import InputError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: no CUDA device is available to torch {torch.__version__}; use "
                         "device='cpu' (`plexloc doctor` says what is missing)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    if dev.type == "meta":
        raise InputError(f"device {device!r} holds no values (shapes only), so nothing can be fitted or trained on it; "
                         "use 'cpu' or 'cuda'")
    if dev.type not in ("cpu", "cuda"):
        backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise InputError(f"device {device!r}: torch {torch.__version__} has no {dev.type} device here; use "
                             "device='cpu' or 'cuda'")
    return dev

