"""The PSF interface shared by every model.

A PSF turns a batch of emitters (positions in nm in the channel's own image coordinates, photons)
into pixel-integrated expected photons. It works in two steps:

- :meth:`PSF.patches` renders one small patch per emitter, placed on the frame's pixel grid at
  ``(row0, col0)``; it is differentiable with respect to x, y, z and photons (the patch position is
  piecewise constant), which is what the CRLB and the MLE fitter need;
- :meth:`PSF.render` adds all patches into frames (one scatter-add, batched on any device).

Coordinates follow conventions.md: the centre of pixel (row i, column j) is at
``x = (j + 0.5) * px_x``, ``y = (i + 0.5) * px_y``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plexloc.errors import InputError


def _number(value: Any) -> float | None:
    """``value`` as a float where it is one number (int, float, numpy scalar, 0-d array or tensor; not a bool), else
    None."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    if isinstance(value, (np.ndarray, Tensor)) and value.ndim == 0 and value.dtype != torch.bool \
            and getattr(value.dtype, "kind", "f") in "iuf":
        return float(value)
    return None


def number_pair(value: Any, name: str, *, positive: bool = False) -> tuple[float, float]:
    """A per-axis (x, y) setting as two floats: one number for both axes, or two (a tuple, list, array or tensor).
    Anything else, a value that is not finite, or with ``positive`` one <= 0, is an :class:`InputError` naming
    ``name`` and the value."""
    one = _number(value)
    if one is not None:
        pair: tuple[float | None, float | None] = (one, one)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        pair = (None, None)
    else:
        pair = (_number(value[0]), _number(value[1]))
    bad = None in pair or not all(math.isfinite(v) for v in pair)  # type: ignore[arg-type]
    if bad or (positive and min(pair) <= 0):  # type: ignore[type-var]
        what = "a number > 0 or two (x, y)" if positive else "a finite number or two (x, y)"
        shown = value.tolist() if isinstance(value, (np.ndarray, Tensor)) else value
        raise InputError(f"{name} must be {what}, got {shown!r}")
    return pair  # type: ignore[return-value]


def patch_size(value: Any, name: str) -> int:
    """A patch side in pixels: an integer >= 1 (an :class:`InputError` naming ``name`` and the value otherwise)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a whole number of pixels >= 1, got {value!r}")
    return int(value)


class PSF(nn.Module):
    """Base class of the PSF models.

    Args:
        px_size_nm: pixel size (x, y) in nm.
        roi_px: patch shape (rows, cols) rendered per emitter.
    """

    kind: str = "psf"
    #: whether the model depends on z (3D) or ignores it (2D)
    is_3d: bool = True

    def __init__(self, *, px_size_nm: float | tuple[float, float], roi_px: tuple[int, int]):
        super().__init__()
        self.px_size_nm = number_pair(px_size_nm, f"{type(self).__name__} px_size_nm", positive=True)
        self.roi_px = (int(roi_px[0]), int(roi_px[1]))

    def emitters(self, x_nm: Any, y_nm: Any, z_nm: Any, photons: Any, *extra: Any
                 ) -> tuple[Tensor, ...]:
        """The emitters' arguments as 1-D tensors of one length N, as :meth:`patches` and :meth:`render` take them:
        tensors as they are (a 0-d one as one emitter), numpy arrays and numbers converted (numbers as float32, on the
        device of the tensors given, else of the model's buffers, else the CPU); a number or 0-d value stands for
        every emitter (``photons=1000.0``). ``extra``: more per-emitter arguments (``frame_ix``), checked alike.

        Raises:
            InputError: an argument of 2 or more dimensions, 1-D arguments of different lengths, one that is not
                numeric, naming the argument and its shape.
        """
        names = ("x_nm", "y_nm", "z_nm", "photons", "frame_ix")
        values = (x_nm, y_nm, z_nm, photons, *extra)
        device = next((v.device for v in values if isinstance(v, Tensor)),
                      next((b.device for b in self.buffers()), torch.device("cpu")))
        out: list[Tensor] = []
        for name, v in zip(names, values):
            if not isinstance(v, Tensor):
                arr = np.asarray(v)
                if arr.dtype.kind not in "biuf":
                    raise InputError(f"{type(self).__name__}: {name} must be numeric (a tensor, array or number), got "
                                     f"{type(v).__name__} of {arr.dtype}")
                v = torch.as_tensor(arr if arr.ndim else v, device=device)
            if v.ndim > 1:
                raise InputError(f"{type(self).__name__}: {name} must hold one value per emitter (1-D, N), got shape "
                                 f"{tuple(v.shape)}")
            out.append(v)
        lengths = {name: int(v.shape[0]) for name, v in zip(names, out) if v.ndim == 1}
        if len(set(lengths.values())) > 1:
            raise InputError(f"{type(self).__name__}: the emitters' arguments differ in length: "
                             + ", ".join(f"{k} {n}" for k, n in lengths.items()) + " (one value per emitter, or one "
                             "number for all)")
        n = next(iter(lengths.values()), 1)
        return tuple(v.expand(n) if v.ndim == 0 else v for v in out)

    @property
    def z_range_nm(self) -> tuple[float, float]:
        """z range in which the model is defined (infinite for analytic models)."""
        return (-float("inf"), float("inf"))

    def patches(self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Expected photons of each emitter on a patch of the pixel grid.

        Args:
            x_nm, y_nm, z_nm, photons: N emitters: positions in nm in the channel's own image (the centre of pixel
                (i, j) at ``x = (j + 0.5) px``, ``y = (i + 0.5) px``; z relative to the focal plane, ignored by a 2D
                model) and photons; 1-D tensors, numpy arrays or one number for all (:meth:`emitters`).

        Returns:
            ``(patch, row0, col0)``: patch ``(N, rows, cols)`` float; row0/col0 ``(N,)`` int64, the frame
            pixel index of each patch's top-left pixel.
        """
        raise NotImplementedError  # pragma: no cover

    def patch_groups(
        self, x_nm: Tensor, y_nm: Tensor, z_nm: Tensor, photons: Tensor
    ) -> list[tuple[Tensor | None, Tensor, Tensor, Tensor]]:
        """The emitters' patches in groups of one patch shape: ``(index, patch, row0, col0)`` per group, where
        ``index`` selects the group's emitters (``None``: all of them, in order). One group of :attr:`roi_px` here;
        models whose PSF width varies per emitter may render narrow ones on smaller patches."""
        return [(None, *self.patches(x_nm, y_nm, z_nm, photons))]

    def render(
        self,
        x_nm: Tensor,
        y_nm: Tensor,
        z_nm: Tensor,
        photons: Tensor,
        frame_ix: Tensor,
        *,
        n_frames: int,
        frame_shape: tuple[int, int],
        frame_slots: Tensor | None = None,
    ) -> Tensor:
        """Frames ``(n_frames, H, W)`` of expected photons per pixel (no background, no noise), in the photons'
        floating type (float32 where they are integers or Python numbers).

        The emitters as :meth:`patches` takes them; ``frame_ix`` (N,) int (0-based) says which frame each emitter lands
        in; emitters whose patch misses the
        frame contribute nothing. Differentiable with respect to positions and photons. ``frame_slots``:
        :func:`plexloc.psf.functional.frame_slots` of ``frame_ix`` where :meth:`uses_frame_slots` (several
        channels' renders of the same emitters share it); ignored by this patch-wise render.
        """
        x_nm, y_nm, z_nm, photons, frame_ix = self.emitters(x_nm, y_nm, z_nm, photons, frame_ix)
        H, W = _frame_shape(frame_shape, x_nm)
        dtype = photons.dtype if photons.is_floating_point() else torch.float32
        device = photons.device
        n_pix = n_frames * H * W
        # one extra "sink" element collects everything that falls outside the frame
        canvas = torch.zeros(n_pix + 1, dtype=dtype, device=device)
        if not x_nm.numel():
            return canvas[:n_pix].reshape(n_frames, H, W)
        for index, patch, row0, col0 in self.patch_groups(x_nm, y_nm, z_nm, photons):
            h, w = patch.shape[-2:]
            rows = row0[:, None] + torch.arange(h, device=device)[None, :]  # (N, h)
            cols = col0[:, None] + torch.arange(w, device=device)[None, :]  # (N, w)
            fr = (frame_ix if index is None else frame_ix[index]).to(torch.int64)
            ok_rows = (rows >= 0) & (rows < H) & ((fr >= 0) & (fr < n_frames))[:, None]
            inside = ok_rows[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
            # the (N, h, w) index is the largest tensor of a render (a 100,000-frame movie on a GPU holds
            # millions of patches): int32 where the canvas allows, built from in-range (clamped) rows and
            # columns, the rest sent to the sink in place
            idx = torch.int32 if n_pix < 2**31 - 1 else torch.int64
            base = (fr.clamp(0, max(n_frames - 1, 0)) * H)[:, None] + rows.clamp(0, max(H - 1, 0))
            flat = (base.to(idx) * W)[:, :, None] + cols.clamp(0, max(W - 1, 0)).to(idx)[:, None, :]
            flat.masked_fill_(~inside, n_pix)
            canvas = canvas.index_add(0, flat.reshape(-1), patch.reshape(-1).to(dtype))
        return canvas[:n_pix].reshape(n_frames, H, W)

    def uses_frame_slots(self, frame_shape: tuple[int, int]) -> bool:
        """Whether :meth:`render` of frames of this shape lays the emitters out per frame (``frame_slots``)."""
        return False

    def extra_repr(self) -> str:
        return f"px_size_nm={self.px_size_nm}, roi_px={self.roi_px}"


def _frame_shape(frame_shape: Any, x_nm: Tensor) -> tuple[int, int]:
    """``(H, W)`` of a render, checked: two whole numbers >= 0 (an :class:`InputError` naming ``frame_shape``); a
    render on the ``meta`` device, whose tensors hold no values, an :class:`InputError` (the emitters' frames and
    pixels decide where their light goes)."""
    if x_nm.is_meta:
        raise InputError("render needs the emitters' values, and tensors on the meta device hold none: give CPU or GPU "
                         "tensors (patches() takes meta tensors, for shapes)")
    if not hasattr(frame_shape, "__len__") or len(frame_shape) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in frame_shape):
        raise InputError(f"frame_shape must be (H, W) in pixels, got {frame_shape!r}")
    return int(frame_shape[0]), int(frame_shape[1])
