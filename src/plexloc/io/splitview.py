"""Split-view movies: several channels side by side on one camera frame.

The boxes and flips come from :class:`plexloc.config.models.SplitViewConfig`. Cropping and mirroring
are pixel-preserving global operations (conventions.md): they are applied to the raw frames first, so
the channel transforms stay close to the identity.
"""

from __future__ import annotations

import os

import numpy as np

from plexloc.config.models import SplitViewConfig
from plexloc.errors import InputError


def check_boxes(split: SplitViewConfig, frame_shape: tuple[int, int], *, source: str | os.PathLike | None = None) -> None:
    """Refuse a ``split_view`` box that reaches outside the camera frame, or two boxes that overlap.

    ``frame_shape`` is the movie's ``(rows, columns)``; the message labels both the box (``[x, y, width, height]``)
    and the frame (``W (width) x H (height)``) and names the edge crossed (it had read 'box 1 [48, 0, 48, 48] (x, y,
    width, height) leaves the 48x96 frame': height x width, unlabelled, where the calibration said 'w x h').

    Raises:
        InputError: naming ``source`` (the movie), the box's index and values, and the frame's size.
    """
    h, w = frame_shape
    for c, (x, y, bw, bh) in enumerate(split.boxes):
        over = [f"x + width = {x + bw} > {w}"] if x + bw > w else []
        over += [f"y + height = {y + bh} > {h}"] if y + bh > h else []
        if over:
            raise InputError(
                f"split_view box {c} [x, y, width, height] = [{x}, {y}, {bw}, {bh}] leaves the {w} (width) x {h} "
                f"(height) frame ({', '.join(over)})", source=source
            )
    # two channels' boxes that share pixels: each molecule of the shared region would be fitted in both channels
    # as if two views saw it (a typo, e.g. x 200 for 256, gave no word)
    for a, (xa, ya, wa, ha) in enumerate(split.boxes):
        for b in range(a + 1, len(split.boxes)):
            xb, yb, wb, hb = split.boxes[b]
            ow, oh = min(xa + wa, xb + wb) - max(xa, xb), min(ya + ha, yb + hb) - max(ya, yb)
            if ow > 0 and oh > 0:
                raise InputError(
                    f"split_view boxes {a} [{xa}, {ya}, {wa}, {ha}] and {b} [{xb}, {yb}, {wb}, {hb}] ([x, y, width, "
                    f"height]) overlap by {ow} (width) x {oh} (height) pixels at x {max(xa, xb)}, y {max(ya, yb)}: "
                    "each channel must have pixels of its own", source=source)


def flips(split: SplitViewConfig) -> list[str]:
    """Each box's flip (``none``, ``x``, ``y`` or ``xy``): the configured ones, else ``none`` for every box."""
    return list(split.flip or ["none"] * len(split.boxes))


def flip_image(a: np.ndarray, flip: str) -> np.ndarray:
    """``a`` (its last two axes rows x columns) mirrored as ``flip`` says: ``x`` left-right, ``y`` up-down, ``xy``
    both, ``none`` as it is (a view, no copy). A flip is its own inverse."""
    if "x" in flip:
        a = a[..., :, ::-1]
    if "y" in flip:
        a = a[..., ::-1, :]
    return a


def cut_box(a: np.ndarray, box, flip: str, *, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One channel's box ``[x, y, width, height]`` cut out of ``a`` (its last two axes rows x columns: a frame, a stack
    of frames, a per-pixel camera map) and flipped (:func:`flip_image`), as the fits cut it (a view, no copy).

    ``origin``: the ``(x, y)`` position in ``a`` of the movie frame's corner, which the box's corner is relative to: (0,
    0) for frames and frame-sized maps; a full-chip map's is the camera ROI's chip position."""
    x, y, bw, bh = (int(v) for v in box)
    x0, y0 = int(origin[0]) + x, int(origin[1]) + y
    return flip_image(a[..., y0:y0 + bh, x0:x0 + bw], flip)


def split_frames(frames: np.ndarray, split: SplitViewConfig) -> np.ndarray:
    """(T, H, W) raw frames -> (T, C, h, w), each channel cropped and flipped as configured (:func:`cut_box`)."""
    return np.ascontiguousarray(np.stack([cut_box(frames, box, flip) for box, flip in zip(split.boxes, flips(split))],
                                         axis=1))


def join_frames(channels: np.ndarray, split: SplitViewConfig, frame_shape: tuple[int, int], *,
                fill: float = 0) -> np.ndarray:
    """The inverse of :func:`split_frames`: (T, C, h, w) -> (T, H, W) camera frames, ``fill`` outside the boxes (a
    simulated camera's baseline: a dark region of the chip reads its offset, not 0)."""
    out = np.full((channels.shape[0], *frame_shape), fill, dtype=channels.dtype)
    for c, ((x, y, bw, bh), flip) in enumerate(zip(split.boxes, flips(split))):
        out[:, y : y + bh, x : x + bw] = flip_image(channels[:, c], flip)
    return out
