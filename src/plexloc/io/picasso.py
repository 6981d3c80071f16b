"""Export to and import from Picasso's HDF5 localization files (Jungmann lab, Schnitzbauer et al. 2017).

A Picasso localization file is an HDF5 file with one dataset ``locs`` (a structured array, one
record per localization) and a YAML sidecar with the same stem (``locs.hdf5`` + ``locs.yaml``)
holding a list of metadata documents; Picasso refuses to open the HDF5 without it. Picasso reads
the sidecar with ``yaml.load_all`` and uses the first document's ``Frames``, ``Height``, ``Width``
and (for 3D and scale bars) ``Pixelsize`` in nm.

Fields written (``docs/conventions.md`` -> Picasso):

============  =======  ========================================================================
field         dtype    value
============  =======  ========================================================================
``frame``     u4       ``frame`` (both 0-based)
``x``, ``y``  f4       ``x_nm / px - 0.5``, ``y_nm / px - 0.5`` (camera pixels, see below)
``photons``   f4       ``photons`` (unchanged)
``sx, sy``    f4       PSF standard deviation in pixels: ``psf_sigma_nm / px`` if given, else NaN
``bg``        f4       ``bg`` (photons per pixel), NaN when the table has none
``lpx, lpy``  f4       localization precision in pixels: ``sigma_x_nm / px`` (and y), else
                       ``crlb_x_nm / px``; a table with neither cannot be exported
``z``         f4       ``z_nm`` in nm (only when some finite ``z_nm != 0``, i.e. a 3D table; a
                       2D table's z, 0 or NaN throughout, writes none; read back as NaN)
============  =======  ========================================================================

Every other column of the table (``id``, ``prob``, ``sigma_x_nm``, ...) is added as a field of its
own name (int64 for integer columns, float32 otherwise) - Picasso carries unknown fields along - so
that :func:`import_picasso` returns the table. ``sx``/``sy`` are NaN by default because our tables
do not hold a PSF width and a made-up number would pass silently through Picasso's filters; pass
``psf_sigma_nm`` when you need Picasso features that use them (ellipticity filters, astigmatic z
calibration). Missing ``bg`` is NaN for the same reason. The sidecar lists the fields written as such
placeholders (``PLACEHOLDERS_KEY``), so that the import leaves them out and keeps the others, also where no row
tells (an empty table's ``bg``).

Pixel convention. Picasso's Gaussian fitters integrate the model over pixel ``k`` from ``k - 0.5``
to ``k + 0.5`` (``picasso/gaussmle.py``, ``_gaussian_integral``: ``erf((d + 0.5) ...) -
erf((d - 0.5) ...)`` with ``d = k - mu``) and add the integer pixel index of the spot box to the
fitted offset (``picasso/localize.py``/``gausslq.py``, ``locs_from_fits``), so the centre of pixel
0 is at ``x = 0`` and its outer corner at ``-0.5`` (github.com/jungmannlab/picasso). Ours has the
corner at 0 and the centre at 0.5 px, hence ``x_picasso = x_nm / px - 0.5``.

Photons: Picasso converts ADU with sensitivity and EM gain only (no quantum efficiency since
v0.6.0), i.e. it counts detected photo-electrons, whereas ours count photons before quantum
efficiency. Values are passed unchanged in both directions; multiply by the QE yourself if you
compare the two. ``z``: Picasso's astigmatic 3D stores ``z`` in nm with the sign of its own
calibration; ours (> 0 away from the objective) is written unchanged.

Uncertainties of Picasso's 3D fits (Picasso 0.9.5 and later). ``lpz``, the axial precision, is in nm like ``z``
(where ``lpx``/``lpy`` are in camera pixels): Picasso's 3D view divides ``z`` and ``lpz`` by the pixel size alike
(``picasso/gui/rotation.py``, "z and lpz in camera pixels, as the rotation math expects them"), and its spline
documentation gives ``lpz`` in nm. It is imported as ``sigma_z_nm`` unchanged; ``photons_unc`` and ``bg_unc`` (the
spline fit's photon and background CRLB, in Picasso's photons) as ``sigma_photons`` and ``sigma_bg``. The export
writes none of them under Picasso's names (``sigma_z_nm`` is written under its own).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = LocTable({"frame": [0], "x_nm": [50.0], "y_nm": [150.0], "z_nm": [0.0],
    ...               "photons": [1000.0], "sigma_x_nm": [10.0], "sigma_y_nm": [12.0]})
    >>> export_picasso(t, d / "locs.hdf5", px_size_nm=100.0, frame_shape=(32, 32))
    >>> import h5py
    >>> with h5py.File(d / "locs.hdf5") as f:
    ...     rec = f["locs"][0]
    >>> float(rec["x"]), float(rec["y"]), round(float(rec["lpx"]), 6)
    (0.0, 1.0, 0.1)
    >>> import_picasso(d / "locs.hdf5")["x_nm"].tolist()  # pixel size from the sidecar
    [50.0]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from plexloc import __version__
from plexloc.errors import InputError
from plexloc.io._atomic import atomic_pair
from plexloc.io._readers import IgnoredFieldWarning, check_uint64, hdf5_errors
from plexloc.io.tables import check_frames
from plexloc.table import INTEGER_COLUMNS, LocTable

__all__ = ["PICASSO_FIELDS", "PLACEHOLDERS_KEY", "export_picasso", "import_picasso", "picasso_sidecar_path"]

#: The core Picasso fields and their dtypes, in Picasso's order.
PICASSO_FIELDS: tuple[tuple[str, str], ...] = (
    ("frame", "u4"),
    ("x", "f4"),
    ("y", "f4"),
    ("photons", "f4"),
    ("sx", "f4"),
    ("sy", "f4"),
    ("bg", "f4"),
    ("lpx", "f4"),
    ("lpy", "f4"),
)
_PICASSO_NAMES = {name for name, _ in PICASSO_FIELDS} | {"z"}
#: uncertainty fields of Picasso's 3D and spline fits -> the plexloc column they fill (unless the file carries it, or
#: the CRLB column beside it): ``lpz`` in nm (as ``z``, not pixels as ``lpx``), ``photons_unc`` in photons, ``bg_unc`` in
#: photons per pixel (module docstring)
_PICASSO_UNCERTAINTIES: dict[str, tuple[str, str]] = {
    "lpz": ("sigma_z_nm", "crlb_z_nm"),
    "photons_unc": ("sigma_photons", "crlb_photons"),
    "bg_unc": ("sigma_bg", "crlb_bg"),
}
#: the sidecar's record of the fields :func:`export_picasso` wrote as NaN placeholders (``bg``, ``sx``, ``sy``): an
#: empty table cannot show whether a field is NaN in every row, so the import reads it here
PLACEHOLDERS_KEY = "plexloc placeholder fields"
#: the fields that may be placeholders
_PLACEHOLDER_FIELDS = ("bg", "sx", "sy")


def picasso_sidecar_path(path: str | os.PathLike) -> Path:
    """The YAML metadata file Picasso expects next to ``path`` (same stem, ``.yaml``)."""
    return Path(path).with_suffix(".yaml")


def _positive(value: Any, name: str, *, source: str | os.PathLike) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}", source=source)
    return v


def _precision(table: LocTable, axis: str, *, source: str | os.PathLike) -> tuple[np.ndarray, str]:
    for name in (f"sigma_{axis}_nm", f"crlb_{axis}_nm"):
        if name in table:
            values = table[name]
            bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
            if bad.size:
                raise InputError(
                    f"column '{name}' is {float(values[bad[0]])!r} at row {bad[0]}; Picasso's lp{axis} needs "
                    "positive finite precisions",
                    source=source,
                )
            return values, name
    raise InputError(
        f"the table has neither sigma_{axis}_nm nor crlb_{axis}_nm; Picasso needs a localization precision "
        f"(lp{axis}) to render and link localizations - add predicted uncertainties or CRLBs",
        source=source,
    )


def export_picasso(
    table: LocTable,
    path: str | os.PathLike,
    *,
    px_size_nm: float,
    frame_shape: Sequence[int],
    n_frames: int | None = None,
    psf_sigma_nm: float | None = None,
) -> None:
    """Write ``table`` as a Picasso ``.hdf5`` localization file plus its ``.yaml`` sidecar, atomically as a pair.

    Both are written to temporaries; the ``.hdf5`` is renamed into place first and the sidecar last (an old
    sidecar is moved aside before), so a sidecar on disk always describes the ``.hdf5`` next to it; on an error
    the old pair, if any, is left as it was (:func:`plexloc.io._atomic.atomic_pair`).

    Args:
        table: localizations (nm, frames 0-based); needs ``sigma_x_nm``/``sigma_y_nm`` or
            ``crlb_x_nm``/``crlb_y_nm`` for Picasso's precisions ``lpx``/``lpy``.
        path: target file, usually ``*.hdf5``; the sidecar is ``path`` with suffix ``.yaml``.
        px_size_nm: camera pixel size in nm (Picasso's ``Pixelsize``).
        frame_shape: ``(H, W)`` of the camera frames in pixels (Picasso's ``Height``, ``Width``).
        n_frames: number of frames of the movie (``Frames``); default ``max(frame) + 1``.
        psf_sigma_nm: PSF standard deviation written to ``sx``/``sy``; NaN when None.

    Raises:
        InputError: no precision column, non-positive precisions, negative frames, bad sizes.
    """
    px = _positive(px_size_nm, "px_size_nm", source=path)
    try:
        height, width = (int(v) for v in frame_shape)
    except (TypeError, ValueError):
        raise InputError(f"frame_shape must be (height, width) in pixels, got {frame_shape!r}", source=path) from None
    if height < 1 or width < 1:
        raise InputError(f"frame_shape must be positive, got {tuple(frame_shape)}", source=path)
    if psf_sigma_nm is not None:
        _positive(psf_sigma_nm, "psf_sigma_nm", source=path)
    n = len(table)
    frames = table["frame"]
    check_frames(table, source=path)
    if n and frames.max() >= 2**32:
        raise InputError(f"frame {int(frames.max())} does not fit Picasso's uint32 frame field", source=path)
    max_frame = int(frames.max()) if n else -1
    if n_frames is None:
        n_frames = max_frame + 1
    elif int(n_frames) <= max_frame:
        raise InputError(f"n_frames={n_frames} but the table has frame {max_frame} (frames are 0-based)", source=path)
    lpx, lpx_from = _precision(table, "x", source=path)
    lpy, lpy_from = _precision(table, "y", source=path)
    is_3d = bool(n and np.any(table["z_nm"][~np.isnan(table["z_nm"])] != 0))  # z NaN throughout: a 2D table

    fields: list[tuple[str, str]] = list(PICASSO_FIELDS) + ([("z", "f4")] if is_3d else [])
    used = {"frame", "x_nm", "y_nm", "photons", "z_nm", "bg"}
    extras = [c for c in table.columns if c not in used]
    clash = [c for c in extras if c in _PICASSO_NAMES]
    if clash:
        raise InputError(f"column(s) {clash} clash with Picasso's own fields; rename them before export", source=path)
    fields += [(c, "i8" if table[c].dtype.kind in "iu" else "f4") for c in extras]

    locs = np.zeros(n, dtype=np.dtype(fields))
    locs["frame"] = frames
    locs["x"] = table["x_nm"] / px - 0.5
    locs["y"] = table["y_nm"] / px - 0.5
    locs["photons"] = table["photons"]
    sigma_px = np.nan if psf_sigma_nm is None else float(psf_sigma_nm) / px
    locs["sx"] = sigma_px
    locs["sy"] = sigma_px
    locs["bg"] = table["bg"] if "bg" in table else np.nan
    locs["lpx"] = lpx / px
    locs["lpy"] = lpy / px
    if is_3d:
        locs["z"] = table["z_nm"]
    for c in extras:
        locs[c] = table[c]

    info = {
        "Generated by": "plexloc",
        "plexloc version": __version__,
        "Frames": int(n_frames),
        "Height": height,
        "Width": width,
        "Pixelsize": float(px),
        "Localization precision from": f"{lpx_from}, {lpy_from}",
        "Pixel convention": "centre of pixel 0 at x = 0 (Picasso); plexloc x_nm = (x + 0.5) * Pixelsize",
        # NaN fields that hold no value of the table (import_picasso leaves them out, whatever the rows show)
        PLACEHOLDERS_KEY: (["sx", "sy"] if psf_sigma_nm is None else []) + ([] if "bg" in table else ["bg"]),
    }
    sidecar = picasso_sidecar_path(path)
    if Path(path).resolve() == sidecar.resolve():
        raise InputError("the Picasso file must not end in .yaml (that is its sidecar's name)", source=path)
    with atomic_pair(path, sidecar) as (tmp_h5, tmp_yaml):  # the data file is put in place first, the sidecar last
        with h5py.File(tmp_h5, "w") as f:
            f.create_dataset("locs", data=locs)
        with open(tmp_yaml, "w", encoding="utf-8") as f:
            yaml.safe_dump_all([info], f, default_flow_style=False, sort_keys=False, width=1000)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    sidecar = picasso_sidecar_path(path)
    if not sidecar.is_file():
        return None
    try:
        with open(sidecar, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]
    except yaml.YAMLError as err:
        raise InputError(f"sidecar is not valid YAML ({err})", source=sidecar) from None
    merged: dict[str, Any] = {}
    for d in docs:  # later Picasso steps append documents; the first one describes the movie
        for k, v in d.items():
            merged.setdefault(k, v)
    return merged


def _placeholders(info: dict[str, Any], path: Path) -> set[str] | None:
    """The fields the sidecar records as :func:`export_picasso`'s NaN placeholders; None where it keeps no such
    record (a file from Picasso itself). A record that is not a list of field names is an :class:`InputError`."""
    if PLACEHOLDERS_KEY not in info:
        return None
    value = info[PLACEHOLDERS_KEY]
    if value is None:
        return set()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"'{PLACEHOLDERS_KEY}' must be a list of field names (of {list(_PLACEHOLDER_FIELDS)}), got "
                         f"{value!r}", source=picasso_sidecar_path(path))
    return set(value)


class PixelSizeWarning(UserWarning):
    """A pixel size given for a Picasso file differs from the one its sidecar records."""


def import_picasso(path: str | os.PathLike, *, px_size_nm: float | None = None) -> LocTable:
    """Read a Picasso HDF5 localization file into a :class:`LocTable` (inverse of :func:`export_picasso`).

    Args:
        path: the ``.hdf5`` file (dataset ``locs``).
        px_size_nm: camera pixel size in nm; default: ``Pixelsize`` from the YAML sidecar.

    Returns:
        the table: ``x_nm = (x + 0.5) * px`` (likewise y), ``z_nm = z`` (nm; NaN for 2D files: z unknown),
        ``sigma_x_nm = lpx * px`` and ``sigma_y_nm = lpy * px`` (unless the file carries those
        columns itself), ``bg``; ``sx``/``sy`` become ``psf_sigma_x_nm``/``psf_sigma_y_nm`` (nm); the uncertainties
        of Picasso's 3D and spline fits ``lpz`` (nm, as ``z``), ``photons_unc`` and ``bg_unc`` become ``sigma_z_nm``,
        ``sigma_photons`` and ``sigma_bg`` unchanged (each unless the file carries that column or its ``crlb_``
        column, when the field keeps its name); any
        other numeric field (``net_gradient``, ``likelihood``, ``group``, ...) is kept under its name; a
        text or array field is not imported and an :class:`~plexloc.io.foreign.IgnoredFieldWarning` names it.
        ``bg``, ``sx`` and ``sy`` that the sidecar lists as placeholders (``PLACEHOLDERS_KEY``, written by
        :func:`export_picasso` for unknown values) give no column, and the others do, even with no rows; a file
        whose sidecar has no such list (Picasso's own) drops those that are NaN in every row.

    Raises:
        InputError: unreadable file, no ``locs`` dataset, missing frame/x/y/photons, no pixel size.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "is not a file", source=path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err})", source=path) from None
    with f, hdf5_errors(path):
        ds = f.get("locs")
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None:
            what = ("a group (a plexloc table? use plexloc.io.read_table)" if isinstance(ds, h5py.Group)
                    else f"a plain array (shape {ds.shape}, dtype {ds.dtype}) without named fields"
                    if isinstance(ds, h5py.Dataset) else f"missing (found {sorted(f.keys())})")
            raise InputError(f"dataset 'locs' (Picasso structured array) is {what}", source=path)
        locs = ds[()]
    names = list(locs.dtype.names)
    missing = [c for c in ("frame", "x", "y", "photons") if c not in names]
    if missing:
        raise InputError(f"'locs' lacks field(s) {missing} (has {names}); not a Picasso localization file", source=path)
    bad = [f"{c} ({locs.dtype[c]})" for c in ("frame", "x", "y", "photons", "z", "lpx", "lpy", "bg", "sx", "sy")
           if c in names and (locs.dtype[c].kind not in "biuf" or locs.dtype[c].shape)]
    if bad:
        raise InputError(f"field(s) {', '.join(bad)} of 'locs' must hold one number per localization", source=path)
    info = _read_sidecar(path) or {}
    if px_size_nm is None:
        if "Pixelsize" not in info:
            raise InputError(
                f"no pixel size: pass px_size_nm (--camera-px-size NM) or provide 'Pixelsize' in {picasso_sidecar_path(path).name}",
                source=path,
            )
        px = _positive(info["Pixelsize"], "Pixelsize in the sidecar", source=path)
    else:
        px = _positive(px_size_nm, "px_size_nm", source=path)
        side = info.get("Pixelsize")
        if isinstance(side, (int, float)) and side > 0 and abs(side - px) > 1e-3 * side:
            warnings.warn(f"{path}: the given pixel size {px:g} nm replaces the {side:g} nm of its sidecar "
                          f"({picasso_sidecar_path(path).name}); positions scale by {px / side:.4g}",
                          PixelSizeWarning, stacklevel=2)

    def col(name: str) -> np.ndarray:
        """Field ``name`` as int64 where it is plexloc's integer column (``frame``, ``id``, ...; a uint64 value beyond
        int64 refused, the cast would wrap it round to a negative one), else float64, as :class:`LocTable` keeps
        it (a uint64 ``group`` cast to int64 first had come out negative)."""
        if locs.dtype[name].kind in "iu" and name in INTEGER_COLUMNS:
            check_uint64(locs[name], f"field '{name}' of 'locs'", source=path)
            return np.asarray(locs[name], dtype=np.int64)
        return np.asarray(locs[name], dtype=np.float64)

    columns: dict[str, np.ndarray] = {
        "frame": col("frame"),
        "x_nm": (col("x") + 0.5) * px,
        "y_nm": (col("y") + 0.5) * px,
        "z_nm": col("z") if "z" in names else np.full(len(locs), np.nan),  # a 2D file: z unknown, as our 2D CSV
        "photons": col("photons"),
    }
    ignored = []
    for name in names:  # our own columns written by export_picasso, and Picasso's extra fields
        if name in _PICASSO_NAMES:
            continue
        if locs.dtype[name].kind not in "biuf" or locs.dtype[name].shape:
            ignored.append(f"{name} ({locs.dtype[name]})")
        else:
            columns[name] = col(name)
    if ignored:
        warnings.warn(f"{path}: field(s) {', '.join(ignored)} of 'locs' are not one number per localization and "
                      "were not imported", IgnoredFieldWarning, stacklevel=2)
    placeholders = _placeholders(info, path)

    def known(name: str) -> bool:
        """A field that holds values: not a placeholder by the sidecar's list; without the list (Picasso's own
        file, or one written before the list), not NaN in every row (see export_picasso)."""
        if placeholders is not None:
            return name not in placeholders
        return bool(np.any(~np.isnan(col(name))))

    if "bg" in names and known("bg"):
        columns["bg"] = col("bg")
    for field, (ours, crlb) in _PICASSO_UNCERTAINTIES.items():  # unchanged: nm, photons (a field of our own kept)
        if field in columns and ours not in columns and crlb not in columns:
            columns[ours] = columns.pop(field)
    for axis in ("x", "y"):
        if f"lp{axis}" in names and f"sigma_{axis}_nm" not in columns and f"crlb_{axis}_nm" not in columns:
            columns[f"sigma_{axis}_nm"] = col(f"lp{axis}") * px
        if f"s{axis}" in names and known(f"s{axis}"):
            columns[f"psf_sigma_{axis}_nm"] = col(f"s{axis}") * px
    table = LocTable(columns, source=str(path))
    table.check_readable()
    check_frames(table)
    return table
