"""Export to and import from ThunderSTORM's CSV (ImageJ plug-in, Ovesný et al. 2014).

ThunderSTORM writes a header of quoted labels ``"name [unit]"`` and one row per localization.
Mapping to our columns (``docs/conventions.md``):

================================  ==========================================================
ThunderSTORM                      plexloc
================================  ==========================================================
``"id"``                          ``id`` (written only when the table has one)
``"frame"`` (1-based)             ``frame`` (0-based): ``frame_ts = frame + 1``
``"x [nm]"``, ``"y [nm]"``        ``x_nm``, ``y_nm`` (same origin, see below)
``"z [nm]"``                      ``z_nm`` (unchanged; absent on import -> NaN, z unknown: a 2D file, as plexloc's
                                  own 2D CSV; a table whose z is NaN throughout is written without it)
``"intensity [photon]"``          ``photons``
``"offset [photon]"``             ``bg`` (fitted background level per pixel)
``"uncertainty [nm]"``            lateral precision: mean of ``sigma_x_nm`` and ``sigma_y_nm``,
                                  else of ``crlb_x_nm`` and ``crlb_y_nm``
``"uncertainty_z [nm]"``          ``sigma_z_nm``, else ``crlb_z_nm``
``"sigma [nm]"``                  PSF width, only when ``psf_sigma_nm`` is given to the export
================================  ==========================================================

A value that is not a number (a z unknown in some rows, a missing precision) is written ``NaN`` and an infinity
``Infinity`` / ``-Infinity``, as ThunderSTORM's importer (Java's ``Double.parseDouble``) reads them; it refuses the
``nan`` and ``inf`` of plexloc's own CSV. All our other columns are written too, under their own names
(ThunderSTORM keeps columns it does not know), so that export followed by import returns the table.
On import, ``"uncertainty [nm]"`` (or ``"uncertainty_xy [nm]"``, its name in newer ThunderSTORM versions: ``LABEL_UNCERTAINTY_XY``
in ``estimators/PSF/MoleculeDescriptor.java``, formerly ``LABEL_THOMPSON = "uncertainty"``) fills ``sigma_x_nm`` and
``sigma_y_nm`` and ``"uncertainty_z [nm]"`` fills ``sigma_z_nm`` when the file lacks those columns;
columns we do not know (``"sigma [nm]"``, ``"bkgstd [photon]"``, ``"chi2"``, ...) are kept under
their names as they appear in the file. Positions and uncertainties may also be given in ``[um]``
(converted), or in ``[px]`` when ``px_size_nm`` is passed (a lateral uncertainty in ``[px]`` is then converted
too). A column of the file named as one of ours that another label already gives (``bg`` beside ``"offset
[photon]"``, ``x_nm`` beside ``"x [nm]"``) is refused: one of the two would be dropped. The z sign is the one of the ThunderSTORM calibration that
produced it; it is not changed.

Coordinate origin. ThunderSTORM's fitters work on a sub-image whose grid puts 0 at the centre of
the pixel ``xInt`` that seeded the fit, and then report ``x = fit + xInt + 0.5`` (source:
ThunderSTORM, ``src/main/java/cz/cuni/lf1/lge/ThunderSTORM/estimators/MultipleLocationsImageFitting.java``,
``psf.setX(psf.getX() + xInt + 0.5)``, github.com/zitmen/thunderstorm). The centre of pixel ``j``
is therefore at ``x = (j + 0.5)`` px, the outer corner of pixel 0 at 0 - the same origin as ours
(its FAQ adds that these coordinates match ImageJ's image coordinates). Positions are converted
to nm by multiplying with the pixel size, so ``x [nm]`` equals our ``x_nm`` with no shift. Frames
are ImageJ stack slice numbers, 1-based (``AnalysisPlugIn.storeFits(fits, ip.getSliceNumber())``).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = LocTable({"frame": [0, 3], "x_nm": [50.0, 150.5], "y_nm": [50.0, 75.0],
    ...               "z_nm": [0.0, 0.0], "photons": [1000.0, 2000.0]})
    >>> export_thunderstorm(t, d / "ts.csv")
    >>> print((d / "ts.csv").read_text().splitlines()[:2])
    ['"frame","x [nm]","y [nm]","z [nm]","intensity [photon]"', '1,50,50,0,1000']
    >>> import_thunderstorm(d / "ts.csv") == t
    True
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from plexloc.errors import InputError
from plexloc.io.tables import (
    DEFAULT_FLOAT_FORMAT,
    _check_float_format,
    _check_frames,
    _check_integers,
    _CsvData,
    _format_header,
    _read_csv,
    _write_csv_rows,
    check_frames,
)
from plexloc.table import INTEGER_COLUMNS, NAN_ALLOWED_COLUMNS, LocTable

__all__ = ["export_thunderstorm", "import_thunderstorm"]

_POS_UNITS_TO_NM = {"nm": 1.0, "um": 1000.0, "µm": 1000.0}


def _split_label(label: str) -> tuple[str, str | None]:
    """``'x [nm]'`` -> ``('x', 'nm')``; ``'frame'`` -> ``('frame', None)``."""
    label = label.strip()
    if label.endswith("]") and "[" in label:
        i = label.rindex("[")
        return label[:i].strip(), label[i + 1 : -1].strip()
    return label, None


def _lateral_precision(table: LocTable) -> np.ndarray | None:
    for a, b in (("sigma_x_nm", "sigma_y_nm"), ("crlb_x_nm", "crlb_y_nm")):
        if a in table and b in table:
            return (table[a] + table[b]) / 2
    return None


def export_thunderstorm(
    table: LocTable,
    path: str | os.PathLike,
    *,
    psf_sigma_nm: float | None = None,
    uncertainty_label: str = "uncertainty [nm]",
    float_format: str = DEFAULT_FLOAT_FORMAT,
) -> None:
    """Write ``table`` as a ThunderSTORM CSV, atomically (mapping in the module docstring).

    Args:
        table: localizations (positions in nm, frames 0-based).
        path: target ``.csv`` file.
        psf_sigma_nm: PSF standard deviation to write as ``"sigma [nm]"`` (ThunderSTORM's fitted
            PSF width, used by some of its post-processing); omitted when None.
        uncertainty_label: label of the lateral precision column: ``"uncertainty [nm]"``
            (conventions.md, older ThunderSTORM) or ``"uncertainty_xy [nm]"`` (newer ThunderSTORM).
        float_format: %-format of float values.

    Raises:
        InputError: negative frames, or a bad ``psf_sigma_nm``/``uncertainty_label``.
    """
    _check_float_format(float_format)
    if uncertainty_label not in ("uncertainty [nm]", "uncertainty_xy [nm]"):
        raise InputError(
            f"uncertainty_label must be 'uncertainty [nm]' or 'uncertainty_xy [nm]', got {uncertainty_label!r}",
            source=path,
        )
    n = len(table)
    check_frames(table, source=path)
    last = np.flatnonzero(table["frame"] == np.iinfo(np.int64).max)
    if last.size:  # frame + 1 would wrap around to a negative number
        raise InputError(f"column 'frame' is {int(table['frame'][last[0]])} at row {last[0]}; ThunderSTORM's 1-based "
                         "frame (frame + 1) does not fit in int64", source=path)
    labels: list[str] = []
    cols: list[np.ndarray] = []
    fmts: list[str] = []

    def put(label: str, values: np.ndarray, *, integer: bool = False) -> None:
        labels.append(label)
        cols.append(np.asarray(values))
        fmts.append("%d" if integer else float_format)

    used = {"frame", "x_nm", "y_nm", "z_nm", "photons"}
    if "id" in table:
        put("id", table["id"], integer=True)
        used.add("id")
    put("frame", table["frame"] + 1, integer=True)
    put("x [nm]", table["x_nm"])
    put("y [nm]", table["y_nm"])
    two_d = bool(n) and bool(np.isnan(table["z_nm"]).all())  # a 2D table: ThunderSTORM's 2D file has no z column
    if not two_d:  # (a z unknown in some rows only is written NaN, which its Java reader takes)
        put("z [nm]", table["z_nm"])
    if psf_sigma_nm is not None:
        if not (np.isfinite(psf_sigma_nm) and psf_sigma_nm > 0):
            raise InputError(f"psf_sigma_nm must be a positive number, got {psf_sigma_nm!r}", source=path)
        put("sigma [nm]", np.full(n, float(psf_sigma_nm)))
    put("intensity [photon]", table["photons"])
    if "bg" in table:
        put("offset [photon]", table["bg"])
        used.add("bg")
    lateral = _lateral_precision(table)
    if lateral is not None:
        put(uncertainty_label, lateral)
    axial = table.get("sigma_z_nm", table.get("crlb_z_nm"))
    if axial is not None and not (two_d and np.isnan(axial).all()):
        put("uncertainty_z [nm]", axial)
    for name in table.columns:  # everything else under its own name, for a lossless round trip
        if name not in used:
            put(name, table[name], integer=table[name].dtype.kind in "iu")
    _write_csv_rows(path, _format_header(labels, quote_all=True), cols, fmts, java=True)  # NaN, not nan: Java reads it


def _position(data: _CsvData, axis: str, px_size_nm: float | None, *, required: bool) -> np.ndarray | None:
    found = [(i, _split_label(n)[1]) for i, n in enumerate(data.names) if _split_label(n)[0] == axis]
    if not found:
        if required:
            raise InputError(
                f"no '{axis} [nm]' column (found {data.names}); a ThunderSTORM CSV needs frame, x, y and intensity",
                source=data.path,
            )
        return None
    i, unit = found[0]
    if unit in _POS_UNITS_TO_NM:
        return data.values[:, i] * _POS_UNITS_TO_NM[unit]
    if unit == "px":
        if px_size_nm is None:
            raise InputError(
                f"column '{data.names[i]}' is in pixels; pass px_size_nm (--camera-px-size NM) to convert it (or export in nm)",
                source=data.path,
            )
        return data.values[:, i] * float(px_size_nm)
    raise InputError(f"column '{data.names[i]}' has unit '{unit}'; allowed are nm, um or px", source=data.path)


def import_thunderstorm(path: str | os.PathLike, *, px_size_nm: float | None = None) -> LocTable:
    """Read a ThunderSTORM CSV into a :class:`LocTable` (mapping in the module docstring).

    Column labels may be quoted or not and come in any order. Required: ``frame``, ``x``, ``y``
    and ``intensity [photon]``; ``z`` defaults to 0 when absent.

    Args:
        path: the CSV file.
        px_size_nm: pixel size, needed only when positions are given in ``[px]``.

    Raises:
        InputError: malformed rows (with line number), missing required columns, intensity not in
            photons, frames that are not integers >= 1, NaN/inf in frame/x/y/z/intensity.
    """
    path = Path(path)
    if px_size_nm is not None and not (np.isfinite(px_size_nm) and px_size_nm > 0):
        raise InputError(f"px_size_nm must be a positive number, got {px_size_nm!r}", source=path)
    data = _read_csv(path)
    base = {n: _split_label(n) for n in data.names}
    by_base = {}
    for label, (name, unit) in base.items():
        by_base.setdefault(name, (label, unit))

    if "frame" not in by_base:
        raise InputError(
            f"no 'frame' column (found {data.names}); a ThunderSTORM CSV needs frame, x, y and intensity", source=path
        )
    frame_label = by_base["frame"][0]
    columns: dict[str, np.ndarray] = {}
    consumed: set[str] = {frame_label}
    _check_integers(data, [frame_label])
    frame = data.column(frame_label)
    if frame.size and frame.min() < 1:
        row = int(np.argmin(frame))
        raise data.fail_row(row, f"frame {int(frame[row])} < 1; ThunderSTORM numbers frames from 1")
    columns["frame"] = data.integers(frame_label) - 1

    made_from = {"frame": frame_label}  # plexloc column -> the file's label it was made from
    for axis, required in (("x", True), ("y", True), ("z", False)):
        values = _position(data, axis, px_size_nm, required=required)
        if axis in by_base:
            consumed.add(by_base[axis][0])
            made_from[f"{axis}_nm"] = by_base[axis][0]
        # no z column: a 2D file, z unknown (NaN, conventions.md), not z = 0 at the focal plane
        columns[f"{axis}_nm"] = values if values is not None else np.full(len(data.values), np.nan)

    if "intensity" not in by_base:
        raise InputError(
            f"no 'intensity [photon]' column (found {data.names}); a ThunderSTORM CSV needs frame, x, y and intensity",
            source=path,
        )
    label, unit = by_base["intensity"]
    if unit != "photon":
        raise InputError(
            f"column '{label}' is not in photons; set the camera (photons per ADU) in ThunderSTORM and export "
            "'intensity [photon]'",
            source=path,
        )
    columns["photons"] = data.column(label)
    consumed.add(label)
    made_from["photons"] = label

    if "offset" in by_base and by_base["offset"][1] == "photon":
        columns["bg"] = data.column(by_base["offset"][0])
        consumed.add(by_base["offset"][0])
        made_from["bg"] = by_base["offset"][0]
    if "id" in by_base:
        _check_integers(data, [by_base["id"][0]])
        columns["id"] = data.integers(by_base["id"][0])
        consumed.add(by_base["id"][0])

    # columns under our own names (written by export_thunderstorm) and unknown ones, kept as they are
    ours = [label for label in data.names if label not in consumed and label in INTEGER_COLUMNS]
    _check_integers(data, ours)
    for i, label in enumerate(data.names):
        if label not in consumed:
            if label in columns:  # e.g. 'bg' beside 'offset [photon]': one of the two would be dropped unseen
                given = (f"its column '{made_from[label]}' gives it too" if label in made_from
                         else "ThunderSTORM's 2D files (no 'z [nm]') give it as 0")
                raise InputError(f"the file's column '{label}' is plexloc's column '{label}', and {given}; one of the "
                                 "two would be dropped: rename or remove one of them", source=path)
            columns[label] = data.integers(label) if label in ours else data.values[:, i]

    # Precision columns: derived from ours on export (then dropped), else they fill sigma_*_nm.
    def derived(*pairs: tuple[str, ...]) -> bool:
        return any(all(c in columns for c in pair) for pair in pairs)

    to_nm = {**_POS_UNITS_TO_NM, **({"px": float(px_size_nm)} if px_size_nm is not None else {})}
    for ts_name in ("uncertainty_xy", "uncertainty"):
        if ts_name in by_base and by_base[ts_name][1] in to_nm:  # in px with the pixel size given, as the positions
            lab, unit = by_base[ts_name]
            if not derived(("sigma_x_nm", "sigma_y_nm"), ("crlb_x_nm", "crlb_y_nm")):
                columns.setdefault("sigma_x_nm", data.column(lab) * to_nm[unit])
                columns.setdefault("sigma_y_nm", data.column(lab) * to_nm[unit])
            columns.pop(lab, None)
            break
    if "uncertainty_z" in by_base and by_base["uncertainty_z"][1] in _POS_UNITS_TO_NM:  # [nm], or [um] as z
        lab, unit = by_base["uncertainty_z"]
        if not derived(("sigma_z_nm",), ("crlb_z_nm",)):
            columns["sigma_z_nm"] = data.column(lab) * _POS_UNITS_TO_NM[unit]
        columns.pop(lab, None)

    table = LocTable(columns, source=str(path))
    for name in ("x_nm", "y_nm", "z_nm", "photons"):  # z may be NaN (unknown: a 2D table), never inf
        bad = np.flatnonzero(np.isinf(table[name]) if name in NAN_ALLOWED_COLUMNS else ~np.isfinite(table[name]))
        if bad.size:
            raise data.fail_row(int(bad[0]), f"{name} is {float(table[name][bad[0]])!r}; it must be finite")
    if "frame_last" in ours:  # our own 0-based column (plexloc merge), not ThunderSTORM's frame
        _check_frames(data, ["frame_last"])
    return table
