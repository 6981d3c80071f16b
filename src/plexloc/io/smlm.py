"""ShareLoc's ``.smlm`` files (Ouyang, Bai et al. 2023, Nat. Methods; format 0.2): read and write.

A ``.smlm`` file is a ZIP archive (DEFLATE) holding ``manifest.json`` and one binary table per
file entry. The manifest's ``formats`` describe each table: ``headers`` (column names),
``dtype`` (``uint8, uint16, uint32, float32, float64``), ``shape`` (1 per column here) and
``units``; ``files`` list the tables with their ``name``, ``format``, ``rows``, ``channel`` and an
``offset`` per column. The binary table is row-major: the values of one row, column after
column, then the next row (the layout of the format's JavaScript reference reader), little-endian.

Mapping (headers of ShareLoc's built-in set and of the ThunderSTORM plug-in, which writes
ThunderSTORM's labels without units):

=====================================  =====================================
.smlm header                           plexloc column
=====================================  =====================================
``x``, ``y``, ``z`` (nm; ``um`` too)   ``x_nm``, ``y_nm``, ``z_nm`` (z = 0 when absent)
``frame``                              ``frame`` (origin: see below)
``intensity``                          ``photons``
``background``, ``offset``, ``bg``     ``bg``
``x_precision``/``y_precision``        ``sigma_x_nm``/``sigma_y_nm``
``uncertainty_xy``, ``uncertainty``    ``sigma_x_nm`` and ``sigma_y_nm``
``z_precision``, ``uncertainty_z``     ``sigma_z_nm``
=====================================  =====================================

Other headers are kept under their names (a column of several values per localization, e.g. an
image patch, is not imported; an :class:`~plexloc.io.foreign.IgnoredFieldWarning` names it), and so is a second header for a column already taken
(``bg`` wins over ``offset`` and ``background``, which then keep their names; otherwise the first
one wins). ``intensity`` and the background headers must be in photons: a unit other than
``photon(s)`` (e.g. ThunderSTORM's ``ADU``) is refused. When the archive holds several tables (e.g.
one per colour), they are stacked and a column ``color`` (the table's index) is added unless
present. Offsets given per column are added.

Frame origin. The specification does not fix it; the ThunderSTORM plug-in stores ThunderSTORM's
1-based frames. Files written by plexloc carry ``"plexloc": {"frame_origin": 0}`` in their
format entry and read back unchanged; other files are taken as 1-based when their smallest frame
is >= 1 (with a :class:`FrameOriginWarning` that says so) and as 0-based otherwise, unless
``frame_origin`` is given (``--frame-origin`` of the commands). A table without a frame column (a summed image's
localizations, or an export that left the frames out) gives frame 0 for every row, with a
:class:`MissingFrameWarning` naming the file: it is read (its image renders as it is), but drift correction,
merging and per-frame evaluation then see one frame.

Frame unit. The ``frame`` column's unit must be a frame number (``frame``, ``frames``, ``1`` or none). A time
(``ms``, ``s``, ``us``) is turned into frame numbers with the table's ``exposure`` (its entry in ``files``, in ms as
in the specification's examples): ``frame = time / exposure``, time 0 being the start of frame 0 (so these frames
are 0-based whatever their smallest value, unless ``frame_origin`` is given), with a :class:`FrameUnitWarning` that
says so; a time that is not a whole number of exposures is refused naming it. Without an exposure (absent, or
``-1``, as plexloc writes it) a time is refused: read as frame numbers, 20 ms frames would be 20 times too many and
drift correction, linking and per-frame evaluation wrong without a word. Any other unit is refused.

Writing stores every column of the table under its own name (plus ``x``, ``y``, ``z``, ``frame``,
``intensity`` aliases in place of ``x_nm``...), float64 for float columns and uint32 for
``frame`` and the int columns whose values all fit it (int columns with negative values, e.g. ``color = -1``, as
float64, which holds them exactly), so that a round trip returns the table exactly. An int column with a value
>= 2**32 or beyond +-2**53 (where float64 rounds neighbouring integers together: 2**53 + 1 read back as 2**53) is
written ``int64``: exact, but not among the dtypes that format 0.2 lists (``uint8, uint16, uint32, float32,
float64``), so a reader other than plexloc's may not know it. Integer columns (``uint*``, ``int*``, ``int64``
included) are read as integers, exactly. A user column named like a header of the format (``x``,
``intensity``...) is written as ``user_x``...; frames beyond the uint32 range are refused.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = LocTable({"frame": [0, 3], "x_nm": [10.5, 20.0], "y_nm": [5.0, 6.0], "z_nm": [0.0, -30.0],
    ...               "photons": [1000.0, 2000.0]})
    >>> write_smlm(t, d / "locs.smlm")
    >>> read_smlm(d / "locs.smlm") == t
    True
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from plexloc import __version__
from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path
from plexloc.io._readers import IgnoredFieldWarning
from plexloc.io.tables import check_frames
from plexloc.table import INTEGER_COLUMNS, LocTable

__all__ = ["FrameOriginWarning", "FrameUnitWarning", "MissingFrameWarning", "read_smlm", "write_smlm"]


class FrameOriginWarning(UserWarning):
    """A ``.smlm`` file's frame origin was guessed from its smallest frame."""


class MissingFrameWarning(UserWarning):
    """A ``.smlm`` table has no frame column: every localization was put in frame 0."""


class FrameUnitWarning(UserWarning):
    """A ``.smlm`` file's frames were given as times and turned into frame numbers with the table's exposure."""


#: units of a frame column that are frame numbers; and times -> ms
_FRAME_UNITS = {"", "1", "frame", "frames"}
_TIME_TO_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "µs": 1e-3, "\u03bcs": 1e-3}


_DTYPES = {"uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "float32": "<f4", "float64": "<f8",
           "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "uint64": "<u8"}
_LENGTH = {"nm": 1.0, "um": 1000.0, "µm": 1000.0, "\u03bcm": 1000.0, "": 1.0, "1": 1.0}  # µ: micro sign or Greek mu
_TO_OURS = {
    "x": "x_nm", "y": "y_nm", "z": "z_nm", "frame": "frame", "intensity": "photons",
    "background": "bg", "offset": "bg", "bg": "bg",
    "x_precision": "sigma_x_nm", "y_precision": "sigma_y_nm", "z_precision": "sigma_z_nm",
    "uncertainty_z": "sigma_z_nm", "uncertainty_z_nm": "sigma_z_nm",
}
_LATERAL_UNCERTAINTY = ("uncertainty_xy", "uncertainty")
_PHOTON_UNITS = {"", "1", "photon", "photons", "photon/px", "photons/px", "photon/pixel", "photons/pixel"}
_FROM_OURS = {"x_nm": "x", "y_nm": "y", "z_nm": "z", "frame": "frame", "photons": "intensity"}
_LENGTH_COLUMNS = {"x_nm", "y_nm", "z_nm", "sigma_x_nm", "sigma_y_nm", "sigma_z_nm"}


def _stat(values: np.ndarray, reduce) -> float | None:
    """The manifest's min or max of a column over its non-NaN values; None for none (an empty table, or a column
    NaN throughout, e.g. z of a 2D table: np.nanmin warned 'All-NaN slice encountered')."""
    known = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if not known.size:
        return None
    return int(reduce(known)) if known.dtype.kind in "iu" else float(reduce(known))  # int64 ids beyond 2**53 exact


def write_smlm(table: LocTable, path: str | os.PathLike, *, name: str | None = None) -> None:
    """Write ``table`` as a ``.smlm`` archive (one table, see the module docstring), atomically."""
    n = len(table)
    check_frames(table, source=path)
    if n and table["frame"].max() >= 2**32:
        raise InputError(f"frames must be < 2**32 (the format's uint32), found {int(table['frame'].max())}", source=path)
    headers, dtypes, units, arrays = [], [], [], []
    taken = set(_FROM_OURS.values())
    for col in table.columns:
        v = table[col]
        if col == "frame":
            dt = "uint32"
        elif v.dtype.kind in "iu" and (not n or v.min() >= 0) and (not n or v.max() < 2**32):
            dt = "uint32"
        elif v.dtype.kind in "iu" and n and (v.max() >= 2**32 or v.min() < -(2**53)):  # float64 rounds above 2**53
            dt = "int64"
        else:
            dt = "float64"
        headers.append(_FROM_OURS.get(col, f"user_{col}" if col in taken else col))
        dtypes.append(dt)
        units.append("nm" if col in _LENGTH_COLUMNS else ("frame" if col == "frame" else "1"))
        arrays.append(v)
    rec = np.zeros(n, dtype=[(h, _DTYPES[d]) for h, d in zip(headers, dtypes)])
    for h, a in zip(headers, arrays):
        rec[h] = a
    fmt_name = "smlm-table(binary)"
    bin_name = (name or Path(path).stem) + ".bin"
    stats = {"min": {h: _stat(rec[h], np.min) for h in headers}, "max": {h: _stat(rec[h], np.max) for h in headers}}
    manifest: dict[str, Any] = {
        "format_version": "0.2",
        "formats": {
            fmt_name: {
                "name": fmt_name,
                "type": "table",
                "mode": "binary",
                "extension": ".bin",
                "columns": len(headers),
                "headers": headers,
                "dtype": dtypes,
                "shape": [1] * len(headers),
                "units": units,
                "description": "localization table written by plexloc",
                "plexloc": {"frame_origin": 0, "version": __version__},
            }
        },
        "files": [
            {"name": bin_name, "type": "table", "format": fmt_name, "channel": "default", "rows": n,
             "offset": {}, "exposure": -1, **stats}
        ],
        "name": Path(path).name,
        "tags": [],
    }
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=1))
            z.writestr(bin_name, rec.tobytes())


def _targets(headers: list[str]) -> dict[str, str]:
    """Each header's plexloc column: the mapped name, unless another header takes it (the header that is the
    name itself, e.g. ``bg``, else the first), in which case the header keeps its own name."""
    target: dict[str, str] = {}
    owner: dict[str, str] = {}
    for h in headers:
        if h in _LATERAL_UNCERTAINTY:
            target[h] = h
            continue
        name = _TO_OURS.get(h, h)
        if name not in owner or (h == name and owner[name] != name):
            if name in owner:
                target[owner[name]] = owner[name]  # the earlier claimant keeps its own name
            owner[name] = h
            target[h] = name
        else:
            target[h] = h
    return target


def _unit_factor(unit: str, header: str, source: Path) -> float:
    u = (unit or "").strip().lower()
    if u in _LENGTH:
        return _LENGTH[u]
    raise InputError(f"column '{header}' has unit '{unit}'; only nm or um positions can be converted", source=source)


def _member(z: zipfile.ZipFile, name: str, source: Path) -> bytes:
    """The bytes of archive member ``name``; a damaged member (bad CRC, a broken DEFLATE stream, cut short) is an
    :class:`InputError` naming the file and the member, not zlib's bare 'Error -3 while decompressing data'."""
    try:
        return z.read(name)
    except Exception as err:  # zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError (compression), OSError
        raise InputError(f"archive member '{name}' cannot be read, a damaged file ({type(err).__name__}: {err})",
                         source=source) from None


def _read_one(z: zipfile.ZipFile, info: dict, fmt: dict, source: Path) -> tuple[dict[str, np.ndarray], dict]:
    name = info.get("name")
    if name not in z.namelist():
        raise InputError(f"table file '{name}' listed in manifest.json is missing from the archive", source=source)
    if not isinstance(fmt, dict):
        raise InputError(f"the format '{info.get('format')}' of '{name}' in manifest.json is a "
                         f"{type(fmt).__name__}, not an object", source=source)
    if fmt.get("mode", "binary") != "binary":
        raise InputError(f"table '{name}' has mode '{fmt.get('mode')}'; only binary tables are read", source=source)
    if not isinstance(fmt, dict) or not isinstance(fmt.get("headers"), list) or "dtype" not in fmt:
        raise InputError(f"the format of '{name}' in manifest.json needs a list 'headers' and 'dtype'", source=source)
    headers = [str(h)[1:] if str(h).startswith("_") else str(h) for h in fmt["headers"]]
    dtypes = fmt["dtype"]
    shapes = fmt.get("shape", [1] * len(headers))
    if isinstance(dtypes, str):
        dtypes = [dtypes] * len(headers)
    for field, value in (("dtype", dtypes), ("shape", shapes)):
        if not isinstance(value, list):
            raise InputError(f"format of '{name}': '{field}' is {value!r}, not a list (one entry per header)",
                             source=source)
    if not (len(headers) == len(dtypes) == len(shapes)):
        raise InputError(f"format of '{name}': headers, dtype and shape differ in length", source=source)
    fields = []
    for h, d, s in zip(headers, dtypes, shapes):
        if not isinstance(d, str) or d not in _DTYPES:
            raise InputError(f"format of '{name}': unknown dtype {d!r} of column '{h}'; allowed {sorted(_DTYPES)}",
                             source=source)
        dims = s if isinstance(s, list) else [s]
        if not dims or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in dims):
            raise InputError(f"format of '{name}': shape {s!r} of column '{h}' is not a positive whole number (or a "
                             "list of them)", source=source)
        fields.append((h, _DTYPES[d], () if dims == [1] else tuple(dims)))
    dt = np.dtype(fields)
    raw = _member(z, name, source)
    rows = info.get("rows", len(raw) // dt.itemsize)
    if isinstance(rows, bool) or not isinstance(rows, (int, float)) or not float(rows).is_integer() or rows < 0:
        raise InputError(f"'rows' of table '{name}' in manifest.json is {rows!r}, not a whole number >= 0",
                         source=source)
    rows = int(rows)
    if len(raw) != rows * dt.itemsize:
        raise InputError(f"table '{name}' has {len(raw)} bytes; manifest says {rows} rows of {dt.itemsize} bytes",
                         source=source)
    rec = np.frombuffer(raw, dtype=dt, count=rows)
    units = fmt.get("units")
    units = [] if units is None else units  # no units at all: nm (and photons), as before
    # a units list of another length matched no header: x in um was read as nm (1,000 times too small), unsaid
    if not isinstance(units, list) or (units and len(units) != len(headers)):
        what = f"{len(units)} entries" if isinstance(units, list) else f"{units!r}, not a list"
        raise InputError(f"format of '{name}': 'units' is {what} for {len(headers)} headers {headers}; each column's "
                         "unit cannot be told (fix the manifest: one unit per header)", source=source)
    unit_of = {h: str(u) if u is not None else "" for h, u in zip(headers, units)}
    offset = info.get("offset") or {}
    if not isinstance(offset, dict):
        raise InputError(f"'offset' of table '{name}' in manifest.json is {offset!r}, not an object "
                         "(header: value)", source=source)
    for h, off in offset.items():
        if isinstance(off, bool) or not isinstance(off, (int, float)) or not np.isfinite(off):
            raise InputError(f"'offset' of column '{h}' of table '{name}' in manifest.json is {off!r}, not a number",
                             source=source)
    cols: dict[str, np.ndarray] = {}
    arrays = [f"{h} (shape {rec[h].shape[1:]})" for h in headers if rec[h].ndim != 1]
    if arrays:  # image patches and other array columns are not table columns
        warnings.warn(f"{source}: table '{name}' column(s) {', '.join(arrays)} hold several values per "
                      "localization and were not imported", IgnoredFieldWarning, stacklevel=3)
    for h in headers:
        v = rec[h]
        if v.ndim != 1:
            continue
        off = float(offset.get(h, 0.0))
        if v.dtype.kind in "iu" and off.is_integer():  # integers stay exact (an int64 id beyond 2**53)
            if v.dtype == np.uint64 and v.size and int(v.max()) > np.iinfo(np.int64).max:
                raise InputError(f"column '{h}' of '{name}' holds {int(v.max())}, beyond int64", source=source)
            v = v.astype(np.int64) + int(off)
        else:
            v = v.astype(np.float64) + off
        cols[h] = v
    return cols, unit_of


def _frames_from_unit(v: np.ndarray, unit: str, header: str, info: dict, source: Path) -> np.ndarray:
    """The frame column ``v`` of unit ``unit`` as frame numbers: ``v`` itself for a frame unit, times divided by the
    table's exposure (module docstring); an :class:`InputError` for a time without exposure or another unit."""
    u = unit.strip().lower()
    if u in _FRAME_UNITS:
        return v
    name = info.get("name")
    if u not in _TIME_TO_MS:
        raise InputError(f"column '{header}' of table '{name}' has unit '{unit}'; frames must be frame numbers "
                         f"(unit 'frame', '1' or none) or times ({', '.join(sorted(_TIME_TO_MS))}) with the table's "
                         "exposure", source=source)
    exposure = info.get("exposure")
    known = (isinstance(exposure, (int, float)) and not isinstance(exposure, bool) and np.isfinite(exposure)
             and exposure > 0)
    if not known:
        raise InputError(f"column '{header}' of table '{name}' holds times in '{unit}', not frame numbers, and the "
                         f"table's 'exposure' in manifest.json is {exposure!r}, not a positive number of ms; the "
                         "frames cannot be told: add the exposure (ms) to the table's entry in 'files', or store frame "
                         "numbers", source=source)
    ms = v.astype(np.float64) * _TIME_TO_MS[u]
    frames = ms / float(exposure)
    whole = np.round(frames)
    off = np.flatnonzero(~np.isfinite(frames) | (np.abs(frames - whole) > 1e-3))
    if off.size:
        i = int(off[0])
        raise InputError(f"column '{header}' of table '{name}' holds times in '{unit}'; row {i} ({float(v[i])!r} "
                         f"{unit}) is {float(frames[i])!r} exposures of {exposure} ms, not a whole number of frames "
                         f"({off.size} such row(s))", source=source)
    warnings.warn(f"{source}: table '{name}' gives its frames as times ('{header}' in {unit}); frame numbers taken "
                  f"as time / exposure ({exposure} ms), time 0 the start of frame 0", FrameUnitWarning, stacklevel=4)
    return whole.astype(np.int64)


def read_smlm(path: str | os.PathLike, *, frame_origin: int | None = None) -> LocTable:
    """Read a ``.smlm`` archive (all its tables; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "is not a file", source=path)
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise InputError(f"not a .smlm (ZIP) archive ({err})", source=path) from None
    with z:
        names = {n.lower(): n for n in z.namelist()}
        if "manifest.json" not in names:
            raise InputError(f"no manifest.json in the archive (found {z.namelist()[:5]})", source=path)
        try:
            manifest = json.loads(_member(z, names["manifest.json"], path).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"manifest.json is not valid JSON ({err})", source=path) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("formats", {}), dict) \
                or not isinstance(manifest.get("files", []), list):
            raise InputError("manifest.json must be an object with 'formats' (an object) and 'files' (a list)",
                             source=path)
        formats = manifest.get("formats", {})
        files = manifest.get("files", [])
        odd = [f for f in files if not isinstance(f, dict)]
        if odd:
            raise InputError(f"manifest.json 'files' holds {odd[0]!r}, not an object (name, format, rows ...)",
                             source=path)
        # 'Table' is a table too (it was skipped, its rows lost without a word); other types (images) are named
        tables = [f for f in files if str(f.get("type", "table")).strip().lower() == "table"]
        others = [f"{f.get('name')!r} (type {f.get('type')!r})" for f in files if f not in tables]
        if others:
            warnings.warn(f"{path}: manifest.json lists file(s) {', '.join(others)} that are not tables; not read",
                          IgnoredFieldWarning, stacklevel=2)
        if not tables:
            raise InputError("manifest.json lists no table", source=path)
        parts = []
        ours = True
        for k, info in enumerate(tables):
            key = info.get("format")
            fmt = formats.get(key) if isinstance(key, str) else None
            if fmt is None:
                raise InputError(f"file '{info.get('name')}' uses format '{info.get('format')}', which manifest.json "
                                 "does not define", source=path)
            cols, unit_of = _read_one(z, info, fmt, path)
            mark = fmt.get("plexloc")
            ours = ours and isinstance(mark, dict) and mark.get("frame_origin") == 0
            parts.append((cols, unit_of, k, info))
    out_parts = []
    from_time = False  # some table's frames were times
    no_frame: list[tuple[str, int]] = []  # the tables without a frame column (name, rows)
    has_frame: list[np.ndarray] = []  # per row: whether its table gives frames (only those tell the origin)
    for cols, unit_of, k, info in parts:
        table: dict[str, np.ndarray] = {}
        n = len(next(iter(cols.values()))) if cols else 0
        target = _targets(list(cols))
        for h, v in cols.items():
            ours_name = target[h]
            if h in _LATERAL_UNCERTAINTY and ours_name == h:
                table.setdefault("sigma_x_nm", v * _unit_factor(unit_of.get(h, "nm"), h, path))
                table.setdefault("sigma_y_nm", v * _unit_factor(unit_of.get(h, "nm"), h, path))
                continue
            if ours_name in _LENGTH_COLUMNS:
                v = v * _unit_factor(unit_of.get(h, "nm"), h, path)
            if ours_name in ("photons", "bg"):
                unit = str(unit_of.get(h) or "").strip()
                if unit.lower() not in _PHOTON_UNITS:
                    raise InputError(f"column '{h}' has unit '{unit}'; plexloc reads intensity and background in "
                                     "photons only (convert the file, e.g. in ThunderSTORM with the camera's "
                                     "e-/ADU and gain, before reading it)", source=path)
            if ours_name == "frame":
                converted = _frames_from_unit(v, str(unit_of.get(h) or ""), h, info, path)
                from_time = from_time or converted is not v
                v = converted
            table[ours_name] = v
        for req in ("x_nm", "y_nm"):
            if req not in table:
                raise InputError(f"table {k} has no '{req[0]}' column (headers: {list(cols)})", source=path)
        table.setdefault("z_nm", np.zeros(n))
        if "photons" not in table:
            raise InputError(f"table {k} has no 'intensity' column (photons), headers {list(cols)}; plexloc tables "
                             "need photons", source=path)
        has_frame.append(np.full(n, "frame" in table))
        if "frame" not in table:
            no_frame.append((str(info.get("name", k)), n))
            table["frame"] = np.zeros(n, dtype=np.int64)  # set to the origin below: frame 0 once it is taken off
        if len(parts) > 1:
            table.setdefault("color", np.full(n, k, dtype=np.int64))
        out_parts.append(table)
    names0 = set(out_parts[0])
    if any(set(p) != names0 for p in out_parts[1:]):
        raise InputError("the archive's tables have different columns; they cannot be stacked into one table",
                         source=path)
    merged = {c: np.concatenate([p[c] for p in out_parts]) for c in out_parts[0]}
    has_frame = np.concatenate(has_frame)
    n_no_frame = sum(n for _, n in no_frame)
    if n_no_frame:
        which = "" if len(parts) == 1 else f"table(s) {', '.join(repr(t) for t, _ in no_frame)}: "
        warnings.warn(f"{path}: {which}no frame column, so all {n_no_frame} localizations were put in frame 0 "
                      "(drift correction, merging and per-frame evaluation need the frames of the acquisition: export "
                      "them with the file if they are known)", MissingFrameWarning, stacklevel=2)
    frame = merged["frame"]
    if frame.size and np.any(frame != np.round(frame)):
        bad = frame[frame != np.round(frame)][0]
        raise InputError(f"frame values must be whole numbers, found {bad!r}", source=path)
    if frame_origin is not None and frame_origin not in (0, 1):
        raise InputError(f"frame_origin must be 0 or 1, got {frame_origin!r}", source=path)
    given = frame[has_frame]  # a table without frames tells nothing of the others' origin
    origin = frame_origin if frame_origin is not None else (
        0 if ours or from_time else (1 if given.size and given.min() >= 1 else 0))
    if frame_origin is None and origin == 1:
        warnings.warn(f"{path}: frames taken as 1-based (as ThunderSTORM writes them) because the smallest is "
                      f"{int(given.min())}; give the frame origin (--frame-origin 0) if they are 0-based",
                      FrameOriginWarning, stacklevel=2)
    frame = np.where(has_frame, frame, origin)  # the rows without a frame: frame 0 once the origin is taken off
    merged["frame"] = frame - origin
    below = np.flatnonzero(frame < origin)
    if below.size:
        raise InputError(f"column 'frame' has {below.size} value(s) below {origin}, first at row {below[0]} "
                         f"({int(frame[below[0]])}); frames are numbered from {origin} here"
                         + (" (frame origin 1: give frame_origin=0, --frame-origin 0, if they are 0-based)"
                            if origin == 1 else ""), source=path)
    for c in INTEGER_COLUMNS & set(merged):
        v = merged[c]
        if v.size and np.any(v != np.round(v)):
            raise InputError(f"column '{c}' must hold whole numbers", source=path)
    table = LocTable(merged, source=str(path))
    table.check_readable()
    check_frames(table)  # frame_last
    return table
