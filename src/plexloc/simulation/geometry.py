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


def transform_at_roi(transform, offset_px, px_size_nm) -> Tensor:
    """A chip-coordinate transform as it acts on the positions of an image (ROI) whose corner is at chip pixel
    ``offset_px`` (x, y): ``r -> T(r + o) - o``, the matrix ``S(-o) T S(o)`` with ``S`` a translation and ``o`` the
    corner in nm (``px_size_nm`` (x, y)). Computed in float64; a tensor comes back in its own dtype and device,
    anything else (a nested list, an array) as a float64 CPU tensor. Not a 3x3 matrix: ``ValueError``."""
    t = transform if isinstance(transform, Tensor) else torch.as_tensor(transform, dtype=torch.float64)
    if t.shape != (3, 3):
        raise ValueError(f"a channel transform must be 3x3, got shape {tuple(t.shape)}")
    ox, oy = float(offset_px[0]) * float(px_size_nm[0]), float(offset_px[1]) * float(px_size_nm[1])
    if ox == 0.0 and oy == 0.0:
        return t
    shift = lambda dx, dy: torch.tensor([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]], dtype=torch.float64)  # noqa: E731
    out = shift(-ox, -oy) @ t.detach().cpu().double() @ shift(ox, oy)
    return out.to(dtype=t.dtype, device=t.device)


def apply_transform(transform: Tensor, x_nm: Tensor, y_nm: Tensor) -> tuple[Tensor, Tensor]:
    """Map reference-channel positions into a channel's image (affine or projective)."""
    t = transform.to(dtype=x_nm.dtype, device=x_nm.device)
    xh = t[0, 0] * x_nm + t[0, 1] * y_nm + t[0, 2]
    yh = t[1, 0] * x_nm + t[1, 1] * y_nm + t[1, 2]
    w = t[2, 0] * x_nm + t[2, 1] * y_nm + t[2, 2]
    return xh / w, yh / w


def is_identity(transform: Tensor) -> bool:
    return bool(torch.equal(transform.cpu(), torch.eye(3, dtype=transform.dtype)))


def transform_indicator(
    transforms: list[Tensor] | Tensor,
    offset_px: Tensor,
    frame_shape: tuple[int, int],
    px_size_nm: tuple[float, float],
) -> Tensor:
    """The transformation indicator of DECODE-Plex: for every pixel and channel, ``T_c(p) - p`` in x and y
    (in pixels) at the pixel centre's absolute position ``p`` on the camera chip.

    Args:
        transforms: C transforms (3, 3), reference -> channel, in chip coordinates (nm).
        offset_px: (B, 2) chip pixel (x, y) at each ROI's corner.
        frame_shape: (H, W) of the ROI.
        px_size_nm: (x, y) pixel size.

    Returns:
        (B, 2C, H, W) float32: channel c's x shift at ``2c``, its y shift at ``2c + 1``.
    """
    h, w = frame_shape
    px, py = px_size_nm
    dev = offset_px.device
    off = offset_px.to(torch.float64)
    cols = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
    rows = torch.arange(h, device=dev, dtype=torch.float64) + 0.5
    x = ((cols.view(1, 1, w) + off[:, 0].view(-1, 1, 1)) * px).expand(-1, h, w)
    y = ((rows.view(1, h, 1) + off[:, 1].view(-1, 1, 1)) * py).expand(-1, h, w)
    maps = []
    for t in transforms:
        xc, yc = apply_transform(torch.as_tensor(t, dtype=torch.float64, device=dev), x, y)
        maps += [(xc - x) / px, (yc - y) / py]
    return torch.stack(maps, dim=1).to(torch.float32)
