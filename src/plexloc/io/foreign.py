"""Read-only imports of two more programs' localization files: SMAP ``_sml.mat`` and DECODE ``.h5``.

SMAP (Ries 2020, ``_sml.mat``)
    A MATLAB file (v7.3 = HDF5, or v5/v7) with a struct ``saveloc`` whose field ``loc`` holds one
    column per quantity. Mapping: ``xnm, ynm, znm`` -> ``x_nm, y_nm, z_nm`` (nm, unchanged; ``znm``
    absent -> NaN: z unknown, a 2D file, as plexloc's own 2D CSV), ``frame`` (MATLAB, 1-based) -> ``frame - 1``, ``phot`` -> ``photons``, ``bg`` ->
    ``bg`` (photons per pixel), ``channel`` -> ``color``. Uncertainties: ``photerr`` -> ``sigma_photons`` and
    ``bgerr`` -> ``sigma_bg`` (SMAP's fitters' square root of the CRLB of ``phot`` and ``bg``, in their units: photons,
    photons per pixel; unchanged); ``xnmerr``, ``ynmerr`` ->
    ``sigma_x_nm``, ``sigma_y_nm`` (SMAP's per-axis 1-σ errors in nm: its fitters' square root of the CRLB at the
    fit, ``xpixerr`` times the pixel size; SMAP's DECODE import puts DECODE's predicted σ there); ``locprecnm``
    (SMAP's lateral precision, ``sqrt((xnmerr² + ynmerr²) / 2)`` where it has both) fills the axis that has no
    own field, and is kept under its own name where ``xnmerr`` or ``ynmerr`` is there; ``locprecznm`` ->
    ``sigma_z_nm``, else ``znmerr`` (a second one kept under its name). Every other field of ``loc`` with one value
    per localization is kept under its name (``PSFxnm``, ``LLrel``, ``filenumber``, ...); a field that is not
    numeric (text, cells) or does not hold one value per localization (a field of 2 columns, of another length)
    is not imported and an :class:`IgnoredFieldWarning` names it (the fields that give plexloc's columns are
    refused instead: ``frame, xnm, ynm, phot`` and the mapped ones). A field named as the plexloc column another
    field gives (``sigma_x_nm`` beside ``xnmerr``) is refused: one of the two would be dropped. SMAP
    stores positions already in nm; no origin shift is applied.
DECODE (Speiser et al. 2021, ``EmitterSet.save('*.h5')``)
    Groups ``data`` (datasets ``xyz`` (N, 3), ``xyz_sig``, ``xyz_cr``, ``phot``, ``phot_sig``,
    ``phot_cr``, ``frame_ix``, ``id``, ``prob``, ``bg``, ``bg_sig``, ``bg_cr``; an all-NaN
    dataset is stored empty) and ``meta`` (attributes ``xy_unit`` = ``'px'`` or ``'nm'`` and
    ``px_size``, one value or one per DECODE axis, nm). DECODE's first lateral axis is the frame's
    first array axis: it loads a TIFF stack as (frames, rows, columns) and calls the row axis x (its
    plots transpose the frame to show x to the right). So DECODE's ``xyz[:, 0]`` runs along the
    image rows and becomes our ``y_nm``, ``xyz[:, 1]`` our ``x_nm`` (likewise ``xyz_sig``,
    ``xyz_cr`` and ``px_size``); read any other way a DECODE table is mirrored on the diagonal.
    DECODE puts the centre of pixel 0 at 0 (px) and converts to nm by multiplying with the pixel
    size, so ``y_nm = xyz[:, 0] * px[0] + px[0] / 2`` and ``x_nm = xyz[:, 1] * px[1] + px[1] / 2``
    (for ``xy_unit = 'nm'``: the half pixel only); σ and CRLB of the lateral axes scale by the pixel
    size in px units; z and its σ are nm, unchanged. ``frame_ix`` is 0-based (unchanged). A file
    without ``px_size`` (absent, or stored empty as DECODE stores ``None``) needs ``px_size_nm``
    (given in DECODE's axis order, or one value). Any other dataset of ``data`` with one value per
    row is kept under its name; one that cannot be a column (another shape, text) is not imported
    and an :class:`IgnoredFieldWarning` names it.

SMLM Challenge 2016 (Sage et al. 2019, ``.csv``)
    The challenge's ground truth (``activations.csv``) and the localization files scored against it share one
    column order: an index, the frame (numbered from 1), x, y, z (nm) and the intensity (photons). The ground truth
    has the header ``Ground-truth,frame,xnano,ynano,znano,intensity``; localization files come with it, with short
    names (``id,frame,x,y,z,intensity``) or without a header. :func:`challenge_layout` tells such a file from a
    plexloc CSV (which has ``x_nm``) or a ThunderSTORM one (``x [nm]``): its first line is a header of those six names
    in that order, or six numbers; :func:`read_challenge_csv` reads it as a table (frames from 0: ``frame - 1``;
    ``x_nm, y_nm, z_nm``; ``photons``; ``id``, the index, where it holds whole numbers).
    :func:`plexloc.io.formats.read_locs` reads a ``.csv`` so laid out with it (every command that reads a table);
    read as plexloc's CSV it was refused for its missing ``x_nm``. Six numbers a line without a header whose first
    column is sorted whole numbers and whose second (the frame, in the challenge's order) goes back are refused: a
    table with the frame first (frame, x, y, z, photons, bg) read in the challenge's order had every column one
    place off, silently where x was written as whole nm; the challenge's tables list their rows in frame order.

All raise :class:`InputError` naming the file and field when something is missing or the file is
damaged; no row is ever dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from plexloc.errors import InputError
from plexloc.io._readers import IgnoredFieldWarning, check_uint64, hdf5_errors
from plexloc.io.tables import check_frames
from plexloc.table import INTEGER_COLUMNS, LocTable

__all__ = ["CHALLENGE_COLUMNS", "IgnoredFieldWarning", "challenge_layout", "read_challenge_csv", "read_decode_h5",
           "read_smap_sml", "is_decode_h5"]

_SMAP_MAP = {"xnm": "x_nm", "ynm": "y_nm", "znm": "z_nm", "phot": "photons", "bg": "bg", "channel": "color",
             "photerr": "sigma_photons", "bgerr": "sigma_bg"}
#: plexloc uncertainty column -> SMAP fields that give it, the first one present wins (module docstring)
_SMAP_SIGMA = {"sigma_x_nm": ("xnmerr", "locprecnm"), "sigma_y_nm": ("ynmerr", "locprecnm"),
               "sigma_z_nm": ("locprecznm", "znmerr")}


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "is not a file", source=path)


#: MATLAB classes of a v7.3 field that are not numbers (their HDF5 datasets are: char as uint16 codes, a cell or
#: struct as references)
_MATLAB_NOT_NUMERIC = {"char", "cell", "struct", "function_handle", "string"}


def _smap_loc_fields(path: Path, ignored: list[str]) -> dict[str, np.ndarray]:
    """The fields of ``saveloc.loc``, flat; a v7.3 field that holds no numbers (text, a cell, an empty array) is
    named in ``ignored`` instead (its HDF5 dataset is numeric: text as character codes, an empty array as its
    dimensions, so it was read as a column of codes or of two zeros, or refused for its length)."""
    if h5py.is_hdf5(path):
        with hdf5_errors(path), h5py.File(path, "r") as f:
            if "saveloc" not in f or "loc" not in f["saveloc"]:
                raise InputError(f"no struct 'saveloc.loc' (variables: {sorted(f.keys())}); not a SMAP _sml.mat",
                                 source=path)
            loc = f["saveloc"]["loc"]
            if not isinstance(loc, h5py.Group):
                raise InputError(f"'saveloc.loc' is a {type(loc).__name__}, not a struct of columns; not a SMAP "
                                 "_sml.mat", source=path)
            out = {}
            for k in loc:
                d = loc[k]
                if not isinstance(d, h5py.Dataset):
                    ignored.append(f"{k} (a struct)")
                    continue
                cls = d.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if cls in _MATLAB_NOT_NUMERIC or h5py.check_dtype(ref=d.dtype) is not None:
                    ignored.append(f"{k} (MATLAB {cls or 'reference'})")
                elif np.any(np.asarray(d.attrs.get("MATLAB_empty", 0))):
                    ignored.append(f"{k} (empty)")
                else:
                    out[k] = np.asarray(d[()]).T  # MATLAB's axes, as the v5 reader gives them: (N, 1), (N, 2)
            return out
    import scipy.io

    try:
        raw = scipy.io.loadmat(path, variable_names=["saveloc"], squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for a file that is not a .mat
        raise InputError(f"not a readable MATLAB .mat file ({type(err).__name__}: {err})", source=path) from None
    if "saveloc" not in raw or not hasattr(raw["saveloc"], "loc"):
        raise InputError("no struct 'saveloc.loc'; not a SMAP _sml.mat", source=path)
    loc = raw["saveloc"].loc
    return {k: np.atleast_1d(np.asarray(getattr(loc, k))) for k in loc._fieldnames}


def _one_per_row(v: np.ndarray, n: int) -> bool:
    """Whether field ``v`` holds one value per localization: a vector of ``n`` values (row or column)."""
    return v.size == n and sum(d > 1 for d in v.shape) <= 1


def read_smap_sml(path: str | os.PathLike) -> LocTable:
    """Read a SMAP ``_sml.mat`` localization file (module docstring)."""
    path = Path(path)
    _check_file(path)
    ignored: list[str] = []
    fields = _smap_loc_fields(path, ignored)
    for req in ("frame", "xnm", "ynm", "phot"):
        if req not in fields:
            held = "".join(f"; {i}" for i in ignored if i.split(" ")[0] == req)
            raise InputError(f"saveloc.loc has no field '{req}'{held and ' that holds numbers' + held} (fields: "
                             f"{sorted(fields)})", source=path)
    xnm = fields["xnm"]
    n = xnm.size
    if not _one_per_row(xnm, n):
        raise InputError(f"saveloc.loc.xnm has shape {xnm.shape}; expected one column of x positions", source=path)
    numeric = {k: v for k, v in fields.items() if v.dtype.kind in "biuf"}
    mapped = set(_SMAP_MAP) | {"frame"} | {f for fs in _SMAP_SIGMA.values() for f in fs}
    for k, v in numeric.items():  # the fields that give plexloc's columns must be columns; others are skipped below
        if k in mapped and not _one_per_row(v, n):
            raise InputError(f"saveloc.loc.{k} has {v.size} value(s) (shape {v.shape}), expected {n} (one per "
                             "localization, as xnm)", source=path)
    skipped = ignored + [f"{k} ({v.dtype})" for k, v in fields.items() if v.dtype.kind not in "biuf"]
    if skipped:
        warnings.warn(f"{path}: saveloc.loc field(s) {', '.join(skipped)} are not numeric and were not imported",
                      IgnoredFieldWarning, stacklevel=2)
    shaped = [f"{k} (shape {v.shape})" for k, v in numeric.items() if not _one_per_row(v, n)]
    if shaped:  # e.g. a field of 2 columns: the file is read without it (it sank the whole file)
        warnings.warn(f"{path}: saveloc.loc field(s) {', '.join(shaped)} do not hold one value per localization "
                      f"({n}) and were not imported", IgnoredFieldWarning, stacklevel=2)
    columns = {k: v.ravel() for k, v in numeric.items() if _one_per_row(v, n)}
    cols: dict[str, np.ndarray] = {"frame": columns.pop("frame").astype(np.float64) - 1.0}
    made_from = {"frame": "frame"}
    for ours, candidates in _SMAP_SIGMA.items():
        given = next((c for c in candidates if c in columns), None)
        if given is not None:
            cols[ours] = columns[given].astype(float)
            made_from[ours] = given
    used = set(made_from.values())
    for k, v in columns.items():
        name = _SMAP_MAP.get(k, k)
        if k in used and k not in _SMAP_MAP:  # an uncertainty field used above; locprecnm used for both axes too
            if not (k == "locprecnm" and any(c in columns for c in ("xnmerr", "ynmerr"))):
                continue
        if name in cols:  # e.g. 'sigma_x_nm' beside 'xnmerr': one of the two would be dropped unseen
            raise InputError(f"saveloc.loc.{k} is plexloc's column '{name}', which saveloc.loc.{made_from[name]} "
                             "gives too; one of the two would be dropped: rename or remove one of them", source=path)
        cols[name] = v
        made_from[name] = k
    cols.setdefault("z_nm", np.full(n, np.nan))  # no znm: a 2D file, z unknown
    if "color" in cols:  # SMAP channels are numbered from 0 too? keep as-is but they must be whole numbers
        cols["color"] = np.asarray(cols["color"], dtype=float)
    return _checked_table(cols, path, field="saveloc.loc.frame", first=1, program="SMAP")


def _checked_table(cols: dict[str, np.ndarray], path: str | os.PathLike, *, field: str, first: int,
                   program: str) -> LocTable:
    """The table of an imported file's columns ``cols`` (frames already from 0), checked: integer columns in int64's
    range, values readable, no frame before the first (``field`` in the file numbers frames from ``first``, as
    ``program`` does), ``frame_last`` consistent."""
    for name in INTEGER_COLUMNS & set(cols):  # made int64: a uint64 value beyond it would wrap round, negative
        check_uint64(cols[name], f"column '{name}'", source=path)
    table = LocTable(cols, source=str(path))
    table.check_readable()
    below = np.flatnonzero(table["frame"] < 0)
    if below.size:
        what = "negative value(s)" if first == 0 else f"value(s) below {first}"
        shown = int(table["frame"][below[0]]) + first
        raise InputError(f"{field} has {below.size} {what}, first at row {below[0]} ({shown}); {program} numbers "
                         f"frames from {first}", source=path)
    check_frames(table)  # frame_last, if a user put one in
    return table


def is_decode_h5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with DECODE's ``data`` and ``meta`` groups."""
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("data"), h5py.Group) and isinstance(f.get("meta"), h5py.Group) and "xyz" in f["data"]
    except (OSError, KeyError, RuntimeError, ValueError):  # not HDF5, or damaged: the reader that follows says which
        return False


def read_decode_h5(path: str | os.PathLike, *, px_size_nm: tuple[float, float] | float | None = None) -> LocTable:
    """Read a DECODE ``EmitterSet`` HDF5 file (module docstring)."""
    path = Path(path)
    _check_file(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err})", source=path) from None
    with f, hdf5_errors(path):
        if not is_decode_h5(path):
            raise InputError(f"no DECODE groups 'data' (with 'xyz') and 'meta' (found {sorted(f.keys())})", source=path)
        g = f["data"]
        data = {k: np.asarray(g[k][()]) for k in g if isinstance(g[k], h5py.Dataset) and g[k].shape is not None}
        others = [k for k in g if not isinstance(g[k], h5py.Dataset)]
        # DECODE stores None as an empty attribute (h5py.Empty): the same as an absent one
        meta = {k: v for k, v in f["meta"].attrs.items() if not isinstance(v, h5py.Empty)}

    def get(name: str) -> np.ndarray | None:  # all-NaN datasets are stored empty by DECODE
        return data.get(name)

    unit = meta.get("xy_unit")
    unit = unit.decode() if isinstance(unit, bytes) else unit
    if unit not in ("px", "nm"):
        raise InputError(f"meta attribute xy_unit is {unit!r}; expected 'px' or 'nm'", source=path)
    def pixel_size(value, what: str) -> np.ndarray:
        px = np.asarray(value, dtype=float).ravel()
        if px.size not in (1, 2) or not np.all(np.isfinite(px) & (px > 0)):
            raise InputError(f"{what} must be one or two positive pixel sizes in nm, got {value!r}", source=path)
        return np.broadcast_to(px, (2,)).copy()

    if px_size_nm is not None:
        px = pixel_size(px_size_nm, "px_size_nm")
    elif meta.get("px_size") is not None:
        px = pixel_size(meta["px_size"], "meta attribute px_size")
    else:
        raise InputError("no pixel size (meta attribute px_size); pass px_size_nm (--camera-px-size NM)", source=path)
    xyz = get("xyz")
    if xyz is None or xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"data/xyz must be (N, 3), got {None if xyz is None else xyz.shape}", source=path)
    n = len(xyz)
    scale = px if unit == "px" else np.ones(2)
    # DECODE's axis 0 is the image rows (our y), its axis 1 the columns (our x): module docstring
    cols: dict[str, np.ndarray] = {
        "frame": get("frame_ix"),
        "x_nm": xyz[:, 1] * scale[1] + px[1] / 2,
        "y_nm": xyz[:, 0] * scale[0] + px[0] / 2,
        "z_nm": xyz[:, 2].astype(float),
        "photons": get("phot"),
    }
    if cols["frame"] is None or cols["photons"] is None:
        raise InputError("data/frame_ix and data/phot are required", source=path)
    for src, dst in (("xyz_sig", "sigma"), ("xyz_cr", "crlb")):
        v = get(src)
        if v is not None:
            if v.shape != (n, 3):
                raise InputError(f"data/{src} must be ({n}, 3) like data/xyz, got {v.shape}", source=path)
            cols[f"{dst}_x_nm"] = v[:, 1] * scale[1]
            cols[f"{dst}_y_nm"] = v[:, 0] * scale[0]
            cols[f"{dst}_z_nm"] = v[:, 2]
    for src, dst in (("frame_ix", "frame"), ("phot", "photons"), ("id", "id"), ("prob", "prob"), ("bg", "bg"),
                     ("phot_sig", "sigma_photons"), ("phot_cr", "crlb_photons"), ("bg_sig", "sigma_bg"),
                     ("bg_cr", "crlb_bg")):
        v = get(src)
        if v is None:
            continue
        if v.ndim != 1 or len(v) != n:  # a column of another length cannot be matched to the rows
            raise InputError(f"data/{src} has shape {v.shape}; expected ({n},), one value per row of data/xyz",
                             source=path)
        cols[dst] = v
    known = {"xyz", "xyz_sig", "xyz_cr", "frame_ix", "phot", "id", "prob", "bg", "phot_sig", "phot_cr", "bg_sig",
             "bg_cr"}
    ignored = [f"{k} (a group)" for k in others]
    for k, v in data.items():  # datasets DECODE's EmitterSet does not define (a user's own): kept when they can be
        if k in known:
            continue
        if v.ndim == 1 and len(v) == n and v.dtype.kind in "biuf" and k not in cols:
            cols[k] = v
        else:
            ignored.append(f"{k} (shape {v.shape}, dtype {v.dtype})")
    if ignored:
        warnings.warn(f"{path}: data field(s) {', '.join(ignored)} are not one number per localization and were not "
                      "imported", IgnoredFieldWarning, stacklevel=2)
    return _checked_table(cols, path, field="data/frame_ix", first=0, program="DECODE")


# --- SMLM Challenge 2016 CSV (module docstring) ---------------------------------------------------------------

#: the challenge's columns, in order, and the plexloc column each is read as
CHALLENGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Ground-truth", "id"), ("frame", "frame"), ("xnano", "x_nm"), ("ynano", "y_nm"), ("znano", "z_nm"),
    ("intensity", "photons"),
)
#: header names taken for each column of the challenge's order (lower case, blanks removed); the first, an index,
#: may be named anything
_NAMES: tuple[frozenset[str] | None, ...] = (
    None, frozenset({"frame"}), frozenset({"xnano", "x"}), frozenset({"ynano", "y"}), frozenset({"znano", "z"}),
    frozenset({"intensity", "photons", "i"}),
)


def _fields(line: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.strip().split(",")]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return line
    except (OSError, UnicodeError):  # not this reader's to say: the plexloc reader names what is wrong
        return ""
    return ""


def challenge_layout(path: str | os.PathLike) -> str | None:
    """``'header'`` where ``path``'s first line is a header in the challenge's column order (index, ``frame``,
    ``xnano``/``x``, ``ynano``/``y``, ``znano``/``z``, ``intensity``), ``'bare'`` where it is six numbers (the
    challenge's order without a header), else ``None`` (a plexloc CSV, with its ``x_nm``, is never taken)."""
    fields = _fields(_first_line(Path(path)))
    if len(fields) != len(CHALLENGE_COLUMNS):
        return None
    if all(_number(f) for f in fields):
        return "bare"
    names = [f.lower().replace(" ", "") for f in fields]
    if all(ok is None or name in ok for name, ok in zip(names, _NAMES)):
        return "header"
    return None


def read_challenge_csv(path: str | os.PathLike, *, frame_origin: int = 1) -> LocTable:
    """Read an SMLM Challenge CSV (module docstring) as a plexloc table: ``frame`` from 0 (``frame - frame_origin``),
    ``x_nm, y_nm, z_nm`` (nm, as the challenge's), ``photons`` (its intensity) and ``id`` (its index, where it holds
    whole numbers). Errors name the file, line, column and value: a value that is no number, NaN or inf, a frame that
    is not a whole number or is below ``frame_origin`` (a table numbering its frames from 0: ``frame_origin=0``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "is not a file", source=p)
    if frame_origin not in (0, 1):
        raise InputError(f"frame_origin must be 0 or 1, got {frame_origin!r}", source=p)
    layout = challenge_layout(p)
    if layout is None:
        raise InputError("not in the SMLM Challenge's column order (an index, frame, x, y, z in nm, intensity; with "
                         "the header Ground-truth,frame,xnano,ynano,znano,intensity or none)", source=p)
    values, names = _parse_fast(p, layout)
    lines = None
    if values is None:  # the numbers as they are written: the line, column and value that is wrong is said
        values, names, lines = _parse_lines(p, layout)
    frame = values[:, 1]
    if layout == "bare":
        _check_bare_order(p, values, lines)
    bad = np.flatnonzero((frame != np.round(frame)) | (frame < frame_origin) | (np.abs(frame) > 2.0**53))
    if bad.size:
        k = int(bad[0])
        v = frame[k]
        why = (f"below {frame_origin}, the first frame number of the challenge's tables; a table numbering its frames "
               f"from 0 is read with frame_origin=0 (read_locs(..., frame_origin=0); plexloc evaluate --truth-frame-origin 0 / "
               f"--pred-frame-origin 0)"
               if v == np.round(v) and v < frame_origin else "not a whole number" + (_BARE_HINT if layout == "bare"
                                                                                    else ""))
        if lines is None:
            lines = _parse_lines(p, layout)[2]
        raise InputError(f"line {lines[k]}, column '{names[1]}': frame {_num(v)} is {why}", source=p)
    columns: dict[str, np.ndarray] = {"frame": frame.astype(np.int64) - frame_origin}
    for i, (_, col) in enumerate(CHALLENGE_COLUMNS):
        if col == "frame":
            continue
        if col == "id":
            ids = values[:, 0]
            if np.all(ids == np.round(ids)) and np.all(np.abs(ids) <= 2.0**53):  # an index; left out where it is not
                columns["id"] = ids.astype(np.int64)
            continue
        columns[col] = values[:, i]
    return LocTable(columns, source=str(p))


#: what a CSV without a header is read as, and how to say another order
_BARE_HINT = ("; a CSV of six numbers a line without a header is read in the SMLM Challenge's column order (index, "
              "frame, x, y, z in nm, intensity): give the file a header, plexloc's column names for a table in another "
              "order (e.g. frame,x_nm,y_nm,z_nm,photons,bg) or id,frame,x,y,z,intensity for the challenge's")


def _num(v: float) -> str:
    """A value as written: whole numbers without a decimal point, others in full ('{:g}' wrote 14793.968 as 14794,
    'frame 14794 is not a whole number')."""
    v = float(v)
    return str(int(v)) if v == round(v) and abs(v) <= 2.0**53 else repr(v)


def _check_bare_order(p: Path, values: np.ndarray, lines: list[int] | None) -> None:
    """A headerless table in another column order (plexloc's frame, x_nm, y_nm, z_nm, photons, bg) read in the
    challenge's would have its x as the frames: with x written as whole numbers, every column one place off without
    a word. Such a table is sorted by its first column (its frames), which the challenge's order reads as an index,
    while the column read as the frame goes back; the challenge's own tables list their rows in frame order (the
    frame column never goes back). Refused, naming the line and the header that says the order."""
    if len(values) < 2:
        return
    first, second = values[:, 0], values[:, 1]
    back = np.flatnonzero(np.diff(second) < 0)
    if not back.size or np.any(np.diff(first) < 0) or np.any(first != np.round(first)):
        return
    k = int(back[0]) + 1
    if lines is None:
        lines = _parse_lines(p, "bare")[2]
    raise InputError(f"line {lines[k]}: the second column, the frame in the SMLM Challenge's column order, goes back "
                     f"from {_num(second[k - 1])} to {_num(second[k])} while the first column, whole numbers, "
                     "never does: the file looks like a table whose first column is the frame" + _BARE_HINT, source=p)


def _parse_fast(p: Path, layout: str) -> tuple[np.ndarray | None, list[str]]:
    """numpy's parser on the whole file: the values (rows, 6) and the column names, or ``None`` for the values where
    it refuses a line or a value is NaN or inf (:func:`_parse_lines` then says which)."""
    import warnings

    names = _fields(_first_line(p)) if layout == "header" else [c for c, _ in CHALLENGE_COLUMNS]
    with open(p, encoding="utf-8-sig") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": a header alone
        if layout == "header":
            for line in f:  # up to the header (blank lines before it)
                if line.strip():
                    break
        try:
            values = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            return None, names
    if values.size == 0:
        return np.zeros((0, len(CHALLENGE_COLUMNS))), names
    if values.shape[1] != len(CHALLENGE_COLUMNS) or not np.isfinite(values).all():
        return None, names
    return values, names


def _parse_lines(p: Path, layout: str) -> tuple[np.ndarray, list[str], list[int]]:
    """The values (rows, 6), column names and each row's 1-based line, line by line; an
    :class:`~plexloc.errors.InputError` names the line, column and value that is not a finite number."""
    names = [c for c, _ in CHALLENGE_COLUMNS]
    rows: list[list[float]] = []
    lines: list[int] = []
    with open(p, encoding="utf-8-sig") as f:
        skip_header = layout == "header"
        for ln, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if skip_header:
                names = _fields(line)
                skip_header = False
                continue
            fields = _fields(line)
            if len(fields) != len(names):
                raise InputError(f"line {ln} has {len(fields)} values where the challenge's table has "
                                 f"{len(names)} ({', '.join(names)})", source=p)
            row = []
            for name, text in zip(names, fields):
                try:
                    v = float(text)
                except ValueError:
                    raise InputError(f"line {ln}, column '{name}': value {text!r} is not a number", source=p) from None
                if not np.isfinite(v):
                    raise InputError(f"line {ln}, column '{name}' is {text!r}; the challenge's columns must be finite "
                                     "(drop the rows without a position)", source=p)
                row.append(v)
            rows.append(row)
            lines.append(ln)
    return np.asarray(rows, float).reshape(-1, len(CHALLENGE_COLUMNS)), names, lines
