"""The pixel size in the sample, from a TIFF movie's metadata, to check it against the model or configuration.

A network is trained for one pixel size (``px_size_nm`` of its configuration): a movie taken at another
(another objective, binning, camera adapter) gives wrong positions and a PSF of the wrong width in pixels, with
no error (a 160-nm-pixel movie fitted with a 100-nm model: JI 5 %, RMSE 170 nm). Where the movie's metadata
record its pixel size, it is read from (first found):

1. **Micro-Manager** per-image metadata (TIFF tag 51123) ``"PixelSizeUm"``, else the summary's ``"PixelSize_um"``
   (µm; 0 means "not calibrated" and is skipped);
2. **OME-XML** ``Pixels/@PhysicalSizeX``, ``@PhysicalSizeY`` with their units (default µm; any length unit of
   OME's UnitsLength, read by an XML parser: ``&#181;m`` and single-quoted attributes are µm too);
3. **ImageJ** calibration: the ``unit`` of the ImageJ description (micron, µm, um, nm, micrometer, nanometer) with
   the ``XResolution``/``YResolution`` tags (pixels per unit); ImageJ's ``cm`` and ``inch`` come from a generic
   writer's dots per inch or cm, not from a calibration, and are ignored.

Plain TIFF resolution tags without an ImageJ unit (often 72 dpi from a generic writer) are not a pixel size and
are ignored. Nothing is read where nothing is recorded.
"""

from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from plexloc.io._metadata import first_element, micro_manager_metadata, ome_root

__all__ = ["PixelSize", "PixelSizeWarning", "read_pixel_size", "pixel_size_mismatch", "read_z_step", "warn_pixel_size"]


class PixelSizeWarning(UserWarning):
    """A movie's metadata record another pixel size than the model or configuration it is fitted with."""

#: nm per unit of OME's UnitsLength (the schema's SI prefixes of m and its Imperial units; 'pixel' and
#: 'reference frame' are no length and give no pixel size). Written as the XML holds them: the micro sign (or
#: Greek mu), entities resolved by the XML parser.
_OME_NM = {"ym": 1e-15, "zm": 1e-12, "am": 1e-9, "fm": 1e-6, "pm": 1e-3, "Å": 0.1, "nm": 1.0, "µm": 1e3, "um": 1e3,
           "\u03bcm": 1e3, "micron": 1e3, "mm": 1e6, "cm": 1e7, "dm": 1e8, "m": 1e9, "dam": 1e10, "hm": 1e11,
           "km": 1e12, "thou": 25_400.0, "li": 2_116_666.6666666665, "in": 25_400_000.0, "ft": 304_800_000.0,
           "yd": 914_400_000.0, "pt": 352_777.7777777778}
_IMAGEJ_NM = {"micron": 1000.0, "microns": 1000.0, "µm": 1000.0, "\u03bcm": 1000.0, "um": 1000.0,
              "\\u00B5m": 1000.0, "micrometer": 1000.0, "micrometre": 1000.0, "nm": 1.0, "nanometer": 1.0,
              "nanometre": 1.0}


@dataclass(frozen=True)
class PixelSize:
    """Pixel size in the sample (nm along x and y) and where it was read."""

    x_nm: float
    y_nm: float
    source: str


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _ome_pixels_attributes(tf) -> dict[str, str] | None:
    """The attributes of the first OME ``Pixels`` element of an OME-TIFF, as an XML parser reads them
    (:func:`plexloc.io._metadata.ome_root`: entities such as ``&#181;m`` resolved, either quote); a regular expression
    had missed both, and the pixel size with them. A description that does not parse falls back to the expression."""
    root = ome_root(tf)
    if root is None:
        xml = tf.ome_metadata or ""
        m = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
        if m is None:
            return None
        return {k: html.unescape(v1 or v2) for k, v1, v2 in re.findall(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""",
                                                                       m.group(0))}
    pixels = first_element(root, "Pixels")
    return None if pixels is None else dict(pixels.attrib)


def read_pixel_size(tf, *, path: str | os.PathLike) -> PixelSize | None:
    """The pixel size recorded in an open ``tifffile.TiffFile`` (see the module docstring), or ``None``."""
    page = tf.pages.first
    meta, summary = micro_manager_metadata(tf)
    if (um := _positive(meta.get("PixelSizeUm"))) is not None:
        return PixelSize(1000.0 * um, 1000.0 * um, f"Micro-Manager image metadata 'PixelSizeUm' = {meta['PixelSizeUm']!r}")
    for key in ("PixelSize_um", "PixelSizeUm"):
        if (um := _positive(summary.get(key))) is not None:
            return PixelSize(1000.0 * um, 1000.0 * um, f"Micro-Manager summary metadata '{key}' = {summary[key]!r}")
    if getattr(tf, "is_ome", False):
        attrs = _ome_pixels_attributes(tf)
        if attrs is not None:
            sx, sy = _positive(attrs.get("PhysicalSizeX")), _positive(attrs.get("PhysicalSizeY"))
            if sx is not None:
                ux, uy = attrs.get("PhysicalSizeXUnit", "µm"), attrs.get("PhysicalSizeYUnit", "µm")
                if ux in _OME_NM and uy in _OME_NM:
                    sy = sx if sy is None else sy
                    return PixelSize(sx * _OME_NM[ux], sy * _OME_NM[uy],
                                     f"OME-XML PhysicalSizeX = {attrs['PhysicalSizeX']} {ux}")
    if getattr(tf, "is_imagej", False):
        unit = str((tf.imagej_metadata or {}).get("unit", "")).strip()
        scale = _IMAGEJ_NM.get(unit)
        if scale is not None:
            def per_unit(name: str) -> float | None:
                t = page.tags.get(name)
                if t is None:
                    return None
                v = t.value
                return _positive(v[0] / v[1]) if isinstance(v, tuple) and len(v) == 2 and v[1] else _positive(v)

            rx, ry = per_unit("XResolution"), per_unit("YResolution")
            if rx is not None:
                ry = rx if ry is None else ry
                return PixelSize(scale / rx, scale / ry, f"ImageJ calibration ({1 / rx:g} {unit} per pixel)")
    return None


def read_z_step(tf, n_slices: int) -> tuple[float, str] | None:
    """The z step (nm) between the slices of a z stack (a bead stack for ``plexloc calibrate``) that an open
    ``tifffile.TiffFile``'s metadata record, and where; None where none is recorded (or in a unit that is no length):

    1. **ImageJ** ``spacing`` in its ``unit`` (a z stack's description: ``slices`` > 1);
    2. **Micro-Manager** summary ``z-step_um`` where its ``Slices`` is the stack's number of slices;
    3. **OME-XML** ``Pixels/@PhysicalSizeZ`` in its ``PhysicalSizeZUnit`` (default µm) where ``SizeZ`` is the stack's
       number of slices (a stack saved by Bio-Formats, Micro-Manager's OME-TIFF or tifffile): it was not read, and
       a ``--z-step`` 2x off the step such a stack records went without a word.
    """
    meta = (tf.imagej_metadata or {}) if getattr(tf, "is_imagej", False) else {}
    spacing, unit = meta.get("spacing"), str(meta.get("unit", "")).strip()
    if isinstance(spacing, (int, float)) and spacing > 0 and int(meta.get("slices", 1) or 1) > 1 and unit in _IMAGEJ_NM:
        return float(spacing) * _IMAGEJ_NM[unit], f"ImageJ 'spacing' = {spacing:g} {unit}"
    _, summary = micro_manager_metadata(tf)
    step, slices = summary.get("z-step_um"), summary.get("Slices")
    if isinstance(step, (int, float)) and step > 0 and isinstance(slices, int) and slices == n_slices > 1:
        return float(step) * 1000.0, f"Micro-Manager 'z-step_um' = {step:g}"
    attrs = _ome_pixels_attributes(tf) if getattr(tf, "is_ome", False) else None
    if attrs is not None and (dz := _positive(attrs.get("PhysicalSizeZ"))) is not None:
        unit = attrs.get("PhysicalSizeZUnit", "µm")
        try:
            size_z = int(attrs.get("SizeZ", "0"))
        except ValueError:
            size_z = 0
        if unit in _OME_NM and size_z == n_slices > 1:
            return dz * _OME_NM[unit], f"OME-XML PhysicalSizeZ = {attrs['PhysicalSizeZ']} {unit}"
    return None


def pixel_size_mismatch(found: PixelSize | None, expected_nm: tuple[float, float], *, what: str,
                        path: str | os.PathLike, tolerance: float = 0.03, advice: str | None = None) -> str | None:
    """A warning when the movie's recorded pixel size differs from ``expected_nm`` (x, y) by more than
    ``tolerance`` (relative); None when it agrees or nothing is recorded. ``what`` names the expectation (e.g.
    "the model was trained for"); ``advice``, what follows (default: a fit's)."""
    if found is None:
        return None
    off = max(abs(found.x_nm / expected_nm[0] - 1.0), abs(found.y_nm / expected_nm[1] - 1.0))
    if off <= tolerance:
        return None
    advice = advice or ("positions and the PSF's width in pixels will be wrong; use a model or configuration for this "
                        "pixel size (or correct the metadata if they are wrong)")
    return (f"{path}: its metadata give pixels of {found.x_nm:g} x {found.y_nm:g} nm ({found.source}) but {what} "
            f"{expected_nm[0]:g} x {expected_nm[1]:g} nm: {advice}")


def recorded_pixel_size(reader) -> PixelSize | None:
    """``reader``'s recorded pixel size (:attr:`plexloc.io.tiff.MovieReader.pixel_size`); None where the metadata
    record none or cannot be read (damaged metadata: tifffile logs it, the frames may still be fine)."""
    try:
        return reader.pixel_size
    except Exception:
        return None


def warn_pixel_size(reader, expected_nm: tuple[float, float], *, what: str) -> str | None:
    """A :class:`PixelSizeWarning` (and the message returned) when ``reader``'s recorded pixel size
    (:func:`recorded_pixel_size`) is not ``expected_nm``; metadata that cannot be read are skipped (the check is a
    courtesy, not a requirement)."""
    import warnings

    found = recorded_pixel_size(reader)
    if found is None:
        return None
    message = pixel_size_mismatch(found, expected_nm, what=what, path=reader.path)
    if message:
        warnings.warn(message, PixelSizeWarning, stacklevel=3)
    return message
