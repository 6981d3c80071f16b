"""One entry point for every localization-table format plexloc reads or writes, chosen by file name.

==========================  ======================  =====  =====
name ends with              format                  read   write
==========================  ======================  =====  =====
``.thunderstorm.csv``       ThunderSTORM CSV        yes    yes
``.csv``                    plexloc CSV, or SMLM    yes    yes (plexloc)
                            Challenge 2016 CSV
``.h5``                     plexloc HDF5, or DECODE yes    yes (plexloc)
``.hdf5``                   Picasso HDF5 + YAML     yes    yes
``.smlm``                   ShareLoc                yes    yes
``_sml.mat`` / ``.mat``     SMAP                    yes    no
==========================  ======================  =====  =====

Reading looks at the content where a suffix is shared: a ``.csv`` whose first line is the SMLM Challenge's header
(``Ground-truth,frame,xnano,ynano,znano,intensity``, or ``id,frame,x,y,z,intensity``: an index, then those names in
that order) or six numbers (its files without a header) is read as the challenge's table (frames from 1, read as
``frame - 1``; ``frame_origin=0`` for one numbered from 0; six numbers whose first column is sorted whole numbers
and whose second goes back, a table with the frame first, are refused: a header says the order), any other as
plexloc's (a plexloc CSV has ``x_nm``, a
ThunderSTORM CSV ``x [nm]``: neither is taken for the challenge's); a ``.h5`` with DECODE's ``data``/``meta``
groups is read as DECODE, one with ``/locs`` as plexloc; a ``.hdf5`` with a Picasso ``locs``
dataset as Picasso, a plexloc ``/locs`` group as plexloc. Writing Picasso needs the camera pixel
size and frame shape (``px_size_nm``, ``frame_shape``; the frame shape defaults to the pixels the
localizations fall in, which is the movie's only where some lie in its last row and column).

``frame_origin`` (``--frame-origin`` of the commands) gives the first frame number as written in the file, for every
format: the .smlm and Challenge readers take it themselves; the others' frames, read from their format's own first
number (:data:`FORMAT_FRAME_ORIGIN`: 1 for ThunderSTORM and SMAP, 0 for the rest), are moved by the difference (a
plexloc CSV a tool numbered from 1: ``frame_origin=1`` reads its frames as ``frame - 1``).

Example:
    >>> format_of("run1.thunderstorm.csv"), format_of("a/b.smlm"), format_of("cell_sml.mat")
    ('thunderstorm', 'smlm', 'smap')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from plexloc.errors import InputError
from plexloc.table import LocTable

__all__ = ["FORMATS", "format_of", "read_locs", "write_locs"]

#: format -> (suffix, readable, writable)
FORMATS: dict[str, tuple[str, bool, bool]] = {
    "thunderstorm": (".thunderstorm.csv", True, True),
    "csv": (".csv", True, True),
    "h5": (".h5", True, True),
    "picasso": (".hdf5", True, True),
    "smlm": (".smlm", True, True),
    "smap": ("_sml.mat", True, False),
}


def format_of(path: str | os.PathLike) -> str:
    """The format named by ``path``'s ending (table in the module docstring)."""
    name = Path(path).name.lower()
    if name.endswith(".thunderstorm.csv"):
        return "thunderstorm"
    for fmt, (suffix, _, _) in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    if name.endswith(".mat"):
        return "smap"
    allowed = ", ".join(s for s, _, _ in FORMATS.values())
    raise InputError(f"unknown table format of '{Path(path).name}'; file names must end with one of {allowed}",
                     source=path)


#: the first frame number a format writes, where its reader does not take ``frame_origin`` (0 where not named)
FORMAT_FRAME_ORIGIN = {"thunderstorm": 1, "smap": 1}


class FrameOriginError(InputError):
    """A ``frame_origin`` above a table's own frames: ``value`` (as written) in ``row``, the table's own first
    number ``own``; ``option`` names where the origin was given (a command re-raises it with its option's name)."""

    def __init__(self, value: int, row: int, origin: int, own: int, *, source, option: str = "frame_origin") -> None:
        self.value, self.row, self.origin, self.own = value, row, origin, own
        super().__init__(f"column 'frame' holds {value} (row {row}, counted from 0), below the first frame number "
                         f"{origin} that {option} gives it: the table numbers its frames from {own}, as its format "
                         "does; leave it out", source=source)


def read_locs(path: str | os.PathLike, *, frame_origin: int | None = None, **options: Any) -> LocTable:
    """Read any supported table (see the module docstring); ``options`` go to the format's reader
    (``px_size_nm`` for ThunderSTORM pixel files, Picasso without a sidecar, DECODE without px_size);
    ``frame_origin`` (0 or 1, ``None``: the format's own) the first frame number as written (module docstring)."""
    if frame_origin is not None and frame_origin not in (0, 1):
        raise InputError(f"frame_origin must be 0 or 1, got {frame_origin!r}", source=path)
    p = Path(path)
    if p.is_dir():  # "unknown table format of 'results'" said nothing of the real mistake
        raise InputError(f"'{p}' is a folder, not a table file: give the table inside it", source=path)
    fmt = format_of(path)
    table, own = _read_locs(p, fmt, frame_origin, **options)
    if frame_origin is None or own is None or frame_origin == own:
        return table
    frames = np.asarray(table["frame"], np.int64) + own - frame_origin
    if frames.size and frames.min() < 0:
        row = int(np.argmin(frames))
        raise FrameOriginError(int(table["frame"][row]) + own, row, frame_origin, own, source=path,
                               option=f"frame_origin={frame_origin} (--frame-origin {frame_origin})")
    return table.with_columns(frame=frames)


def _read_locs(p: Path, fmt: str, frame_origin: int | None, **options: Any) -> tuple[LocTable, int | None]:
    """``p`` read by ``fmt``'s reader, and the first frame number the reader took its frames from (``None``: the
    reader took ``frame_origin`` itself: .smlm and the Challenge's CSV)."""
    from plexloc.io._readers import hdf5_errors
    from plexloc.io.foreign import challenge_layout, is_decode_h5, read_challenge_csv, read_decode_h5, read_smap_sml
    from plexloc.io.picasso import import_picasso
    from plexloc.io.smlm import read_smlm
    from plexloc.io.tables import read_csv, read_hdf5
    from plexloc.io.thunderstorm import import_thunderstorm

    own = FORMAT_FRAME_ORIGIN.get(fmt, 0)
    origin = {} if frame_origin is None else {"frame_origin": frame_origin}
    if fmt == "thunderstorm":
        return import_thunderstorm(p, **options), own
    if fmt == "csv":
        if p.is_file() and challenge_layout(p) is not None:  # the SMLM Challenge's column order (module docstring)
            return read_challenge_csv(p, **origin), None
        return read_csv(p), own
    if fmt == "smlm":
        return read_smlm(p, **options, **origin), None
    if fmt == "smap":
        return read_smap_sml(p), own
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "is not a file", source=p)
    if is_decode_h5(p):
        return read_decode_h5(p, **options), own
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err})", source=p) from None
    with f, hdf5_errors(p):
        picasso = isinstance(f.get("locs"), h5py.Dataset)
    return (import_picasso(p, **options) if picasso else read_hdf5(p)), own


def write_locs(table: LocTable, path: str | os.PathLike, **options: Any) -> None:
    """Write ``table`` in the format ``path`` names (Picasso: ``px_size_nm`` required, ``frame_shape``
    optional; ThunderSTORM: ``psf_sigma_nm`` optional)."""
    from plexloc.io.picasso import export_picasso
    from plexloc.io.smlm import write_smlm
    from plexloc.io.tables import check_writable, write_csv, write_hdf5
    from plexloc.io.thunderstorm import export_thunderstorm

    fmt = format_of(path)
    if not FORMATS[fmt][2]:
        raise InputError(f"plexloc reads {fmt} files but does not write them; choose another suffix", source=path)
    check_writable(table, path)  # every format's reader refuses non-finite required columns (z_nm: NaN allowed)
    if fmt == "thunderstorm":
        export_thunderstorm(table, path, **{k: v for k, v in options.items() if k == "psf_sigma_nm"})
    elif fmt == "csv":
        write_csv(table, path)
    elif fmt == "h5":
        write_hdf5(table, path)
    elif fmt == "smlm":
        write_smlm(table, path)
    else:
        px = options.get("px_size_nm")
        if px is None:
            raise InputError("writing Picasso (.hdf5) needs the camera pixel size: pass px_size_nm (--camera-px-size NM)",
                             source=path)
        try:
            px = float(px)
        except (TypeError, ValueError):
            raise InputError(f"px_size_nm must be a number, got {px!r}", source=path) from None
        if not (np.isfinite(px) and px > 0):
            raise InputError(f"px_size_nm must be a positive pixel size in nm, got {px!r}", source=path)
        shape = options.get("frame_shape")
        if shape is None:  # the pixels the finite positions fall in (export_picasso names non-finite ones)
            xs, ys = table["x_nm"][np.isfinite(table["x_nm"])], table["y_nm"][np.isfinite(table["y_nm"])]
            shape = (int(np.floor(max(ys.max(initial=0.0), 0.0) / px)) + 1,
                     int(np.floor(max(xs.max(initial=0.0), 0.0) / px)) + 1)
        export_picasso(table, path, px_size_nm=px, frame_shape=shape, psf_sigma_nm=options.get("psf_sigma_nm"))
