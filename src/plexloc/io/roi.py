"""The camera ROI's position on the chip, from a TIFF movie's metadata.

A multi-channel model needs the chip position of the movie's frame corner (its transformation indicator
is ``T_c(p) - p`` at absolute chip positions). Where the metadata record it, it is read from:

1. **Micro-Manager per-image metadata** (TIFF tag 51123, JSON, on every page; tifffile decodes it):
   ``"ROI": "x-y-width-height"`` as Micro-Manager 2 writes it (``PropertyKey.ROI``: four integers joined by
   ``-``; MM's own reader notes that negative numbers occur, so ``"-2-0-64-64"`` is parsed as x = -2 and
   refused below), or the core's camera tags ``"ROI-X-start"`` / ``"ROI-Y-start"``.
2. **Micro-Manager summary metadata** (the file header that ``TiffFile.micromanager_metadata`` reads):
   ``"ROI": [x, y, width, height]``, as Micro-Manager 1.4's acquisition engine writes it.

Micro-Manager gives the ROI in binned camera pixels, the pixels of the frames. OME-XML has no element for
the camera ROI's position on the sensor (``Plane/@PositionX`` etc. are stage positions in physical units,
``ROI`` elements are drawn shapes), and ImageJ's description does not record it either, so neither is read;
OME-TIFFs written by Micro-Manager still carry tag 51123 and are covered by (1).

Bad metadata raise :class:`~plexloc.errors.InputError` naming the file and the value: a malformed ``ROI``,
a negative position, or a width and height other than the frames' (metadata that do not describe these
frames, e.g. after cropping). An error rather than a warning because a wrong offset silently shifts the
transformation indicator and degrades every localization, while the fix is one option away
(``plexloc fit --roi-offset X Y``, which takes precedence and skips the metadata).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from plexloc.errors import InputError
from plexloc.io._metadata import MM_METADATA_TAG, micro_manager_metadata

__all__ = ["MM_METADATA_TAG", "RoiOffset", "parse_mm_roi", "read_roi_offset"]

_FIX = "; give the ROI's chip position with --roi-offset X Y"
_MM_ROI = re.compile(r"^\s*(-?\d+)-(-?\d+)-(-?\d+)-(-?\d+)\s*$")


@dataclass(frozen=True)
class RoiOffset:
    """Chip pixel ``(x, y)`` of the frame's corner (pixel row 0, column 0) and where it was read."""

    x: int
    y: int
    source: str

    @property
    def px(self) -> tuple[int, int]:
        return (self.x, self.y)


def parse_mm_roi(value: Any, *, source: str | os.PathLike, key: str = "ROI") -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` from a Micro-Manager ``ROI`` value: ``"x-y-w-h"`` or ``[x, y, w, h]``."""
    if isinstance(value, str):
        m = _MM_ROI.match(value)
        if m is None:
            raise InputError(f"Micro-Manager metadata '{key}' = {value!r} is not 'x-y-width-height' (four integers){_FIX}",
                             source=source)
        return tuple(int(g) for g in m.groups())  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(
        isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in value
    ):
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    raise InputError(f"Micro-Manager metadata '{key}' = {value!r} is not [x, y, width, height] (four integers){_FIX}",
                     source=source)


def _as_int(value: Any, *, key: str, source) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not f.is_integer():
        raise InputError(f"Micro-Manager metadata '{key}' = {value!r} is not an integer pixel position{_FIX}",
                         source=source)
    return int(f)


def _checked(x: int, y: int, w: int | None, h: int | None, frame_shape: tuple[int, int], *, what: str,
             source) -> RoiOffset:
    if x < 0 or y < 0:
        raise InputError(f"{what}: the ROI position ({x}, {y}) is negative{_FIX}", source=source)
    if w is not None and h is not None and (h, w) != tuple(frame_shape):
        raise InputError(
            f"{what}: the ROI is {w}x{h} (width x height) but the frames are {frame_shape[1]}x{frame_shape[0]}; the "
            f"metadata do not describe these frames (cropped or binned after acquisition?){_FIX}", source=source)
    return RoiOffset(x, y, what)


def read_roi_offset(tf, *, path: str | os.PathLike, frame_shape: tuple[int, int]) -> RoiOffset | None:
    """The ROI offset recorded in an open ``tifffile.TiffFile`` (see the module docstring), or ``None``."""
    meta, summary = micro_manager_metadata(tf)
    if meta:
        if meta.get("ROI") not in (None, ""):
            x, y, w, h = parse_mm_roi(meta["ROI"], source=path)
            return _checked(x, y, w, h, frame_shape, source=path,
                            what=f"Micro-Manager image metadata 'ROI' = {meta['ROI']!r} (x-y-width-height)")
        if "ROI-X-start" in meta and "ROI-Y-start" in meta:
            x = _as_int(meta["ROI-X-start"], key="ROI-X-start", source=path)
            y = _as_int(meta["ROI-Y-start"], key="ROI-Y-start", source=path)
            w = _as_int(meta["Width"], key="Width", source=path) if "Width" in meta else None
            h = _as_int(meta["Height"], key="Height", source=path) if "Height" in meta else None
            return _checked(x, y, w, h, frame_shape, source=path,
                            what=f"Micro-Manager image metadata 'ROI-X-start' = {meta['ROI-X-start']!r}, "
                                 f"'ROI-Y-start' = {meta['ROI-Y-start']!r}")
    roi = summary.get("ROI")  # ({} where the header is damaged: tifffile logs it)
    if roi not in (None, "", []):
        x, y, w, h = parse_mm_roi(roi, source=path)
        return _checked(x, y, w, h, frame_shape, source=path,
                        what=f"Micro-Manager summary metadata 'ROI' = {roi!r} (x, y, width, height)")
    return None
