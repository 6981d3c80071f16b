"""Channel geometry: 3x3 homogeneous transforms in nm, reference channel -> channel c (``r_c = T_c r_0``)."""

from __future__ import annotations

import torch
from torch import Tensor


def as_transform(matrix, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """A (3, 3) tensor from a nested list / array."""
    t = torch.as_tensor(matrix, dtype=dtype, device=device)
    if t.shape != (3, 3):
        raise ValueError(f"a channel transform must be 3x3, got shape {tuple(t.shape)}")
    return t


def shift_transform(dx_nm: float, dy_nm: float) -> Tensor:
    """The transform of a channel whose image is shifted by (+dx, +dy) nm: ``T[0, 2] = dx``, ``T[1, 2] = dy``."""
    return torch.tensor([[1.0, 0.0, dx_nm], [0.0, 1.0, dy_nm], [0.0, 0.0, 1.0]])


def apply_transform(transform: Tensor, x_nm: Tensor, y_nm: Tensor) -> tuple[Tensor, Tensor]:
    """Map reference-channel positions into a channel's image (affine or projective)."""
    t = transform.to(dtype=x_nm.dtype, device=x_nm.device)
    xh = t[0, 0] * x_nm + t[0, 1] * y_nm + t[0, 2]
    yh = t[1, 0] * x_nm + t[1, 1] * y_nm + t[1, 2]
    w = t[2, 0] * x_nm + t[2, 1] * y_nm + t[2, 2]
    return xh / w, yh / w


def is_identity(transform: Tensor) -> bool:
    return bool(torch.equal(transform.cpu(), torch.eye(3, dtype=transform.dtype)))
