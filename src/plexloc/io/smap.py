"""Cubic-spline PSF calibrations from SMAP (``*_3dcal.mat``, Li et al. 2018, Ries lab).

File layout. SMAP's ``calibrate3DsplinePSF`` saves a MATLAB variable ``SXY``: a struct, or a struct
array with one element per channel or field of view, whose field ``cspline`` holds

- ``coeff``: single array ``(n_rows, n_cols, n_z, 64)``, or a MATLAB cell of such arrays, one per
  channel, in multi-channel (global) calibrations;
- ``dz``: distance between z slices in nm;
- ``z0``: the focal slice; ``x0``: the lateral centre (MATLAB, 1-based; the same for rows and columns);
- optionally ``normf`` (per-channel normalization), ``mirror``, ``isglobal`` (read but not applied).

Channels are numbered 0, 1, ... over the elements of ``SXY`` (MATLAB order) and, inside each, over
the cells of ``coeff``. Files saved as MATLAB v7.3 (HDF5) are read with h5py; their arrays are stored
with MATLAB's axes reversed, which is undone here.

Coefficient convention. SMAP's fitter takes the image row as its first coordinate (SMAP sets
``locs.ypix = P(:, 1)``, ``locs.xpix = P(:, 2)``). The 64 coefficients of voxel ``(r, c, k)`` multiply
``dz^i * dc^j * dr^k`` at index ``i*16 + j*4 + k``, where ``dr, dc, dz`` in ``[0, 1)`` are the fractional
positions inside the voxel along rows, columns and z. :class:`SplineCalibration` keeps this index order
and reorders only the voxel axes to ours, ``(z, y, x)`` = ``(z, row, column)``: index ``i*16 + j*4 + k``
multiplies ``dz^i dx^j dy^k`` (x = column, y = row), as :mod:`plexloc.psf.spline` evaluates it.

Centre. ``x0 = y0 = SMAP x0 - 1`` (0-based voxel coordinate of the PSF centre) and ``z0 = SMAP z0``
unchanged, which is how DECODE reads these files (``decode/utils/calibration_io.py``:
``ref0 = (cspline.x0 - 1, cspline.x0 - 1, cspline.z0)``). The spline's value at voxel coordinate
``(x0, y0, z0)`` is the in-focus PSF centre; ``z_nm = (s_z - z0) * dz_nm``.

The .mat files are read with ``scipy.io.loadmat(struct_as_record=False, squeeze_me=False)``: without
squeezing, a calibration with a single z slice or a single row keeps its 4-D shape.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import mat_struct

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path

__all__ = ["SplineCalibration", "list_smap_channels", "load_smap_3dcal", "save_smap_3dcal"]


@dataclasses.dataclass(frozen=True, eq=False)
class SplineCalibration:
    """A cubic-spline PSF calibration (one channel), axes in plexloc's order.

    Attributes:
        coeff: float32 array ``(n_z, n_rows, n_cols, 64)``; voxel ``(kz, ky, kx)``'s coefficient
            ``i*16 + j*4 + k`` multiplies ``dz^i dx^j dy^k`` (fractional positions in the voxel,
            x along columns, y along rows). The calibration holds its own copy; treat it as
            read-only (it is left writable because ``torch.as_tensor`` warns on read-only arrays).
        dz_nm: axial voxel size in nm (lateral voxels are camera pixels).
        x0, y0, z0: PSF centre in 0-based voxel coordinates (see the module docstring).
        source: the file it was read from ('' when built in memory).
        channel: channel index in that file.
        normf: SMAP's normalization factor of this channel, when the file has one.
    """

    coeff: np.ndarray
    dz_nm: float
    x0: float
    y0: float
    z0: float
    source: str = ""
    channel: int = 0
    normf: float | None = None

    def __post_init__(self) -> None:
        src = self.source or None
        coeff = np.array(self.coeff, dtype=np.float32)  # a copy we own
        if coeff.ndim != 4 or coeff.shape[-1] != 64:
            raise InputError(
                f"spline coefficients must have shape (n_z, n_rows, n_cols, 64), got {coeff.shape}", source=src
            )
        n_bad = int(np.count_nonzero(~np.isfinite(coeff)))
        if n_bad:
            raise InputError(f"spline coefficients of channel {self.channel} hold {n_bad} NaN/inf value(s)", source=src)
        if not (np.isfinite(self.dz_nm) and self.dz_nm > 0):
            raise InputError(f"dz must be a positive number of nm, got {self.dz_nm!r}", source=src)
        for name in ("x0", "y0", "z0"):
            if not np.isfinite(getattr(self, name)):
                raise InputError(f"{name} must be finite, got {getattr(self, name)!r}", source=src)
        object.__setattr__(self, "coeff", coeff)
        for name in ("dz_nm", "x0", "y0", "z0"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "channel", int(self.channel))
        object.__setattr__(self, "source", str(self.source))
        if self.normf is not None:
            object.__setattr__(self, "normf", float(self.normf))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel grid ``(n_z, n_rows, n_cols)``."""
        n_z, n_rows, n_cols, _ = self.coeff.shape
        return n_z, n_rows, n_cols

    def __repr__(self) -> str:
        return (
            f"SplineCalibration(shape={self.shape}, dz_nm={self.dz_nm}, x0={self.x0}, y0={self.y0}, "
            f"z0={self.z0}, channel={self.channel}, source={self.source!r})"
        )


# --- a small neutral form of MATLAB data (shared by the v5 and the v7.3 readers) -------------------


class _Structs(list):
    """A MATLAB struct (array): list of field dicts, in MATLAB (column-major) order."""


class _Cell(list):
    """A MATLAB cell array: list of values, in MATLAB (column-major) order."""


def _from_scipy(value: Any) -> Any:
    if isinstance(value, mat_struct):
        return _Structs([{k: _from_scipy(getattr(value, k)) for k in value._fieldnames}])
    if isinstance(value, np.ndarray) and value.dtype == object:
        items = list(value.ravel(order="F"))
        if items and all(isinstance(v, mat_struct) for v in items):
            return _Structs([{k: _from_scipy(getattr(v, k)) for k in v._fieldnames} for v in items])
        return _Cell([_from_scipy(v) for v in items])
    return value


def _h5_class(obj: h5py.HLObject) -> str:
    cls = obj.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _is_ref(ds: h5py.Dataset) -> bool:
    return h5py.check_dtype(ref=ds.dtype) is not None


class _Undecodable(str):
    """A v7.3 field this reader cannot decode (function handle, object, null reference, ...)."""


def _decode_field(f: h5py.File, get: Any) -> Any:
    """Decode one struct field; an odd field (not needed for the spline) must not sink the file."""
    try:
        return _from_h5(f, get())
    except (ValueError, KeyError, TypeError, OSError) as err:
        return _Undecodable(f"<undecodable: {err}>")


def _from_h5(f: h5py.File, obj: h5py.HLObject) -> Any:
    if isinstance(obj, h5py.Group):
        fields = [k for k in obj.keys() if not k.startswith("#")]
        ref_fields = [k for k in fields if isinstance(obj[k], h5py.Dataset) and _is_ref(obj[k])
                      and _h5_class(obj[k]) != "cell"]
        if ref_fields:  # struct array: every field is an array of references, one per element
            n = obj[ref_fields[0]].size
            elements = [{} for _ in range(n)]
            for k in fields:
                refs = obj[k][()].ravel()
                for i in range(n):
                    elements[i][k] = _decode_field(f, lambda: f[refs[i]])
            return _Structs(elements)
        return _Structs([{k: _decode_field(f, lambda k=k: obj[k]) for k in fields}])
    cls = _h5_class(obj)
    empty = obj.attrs.get("MATLAB_empty")
    if empty is not None and np.any(np.asarray(empty)):
        return np.zeros((0, 0))
    if _is_ref(obj):
        return _Cell([_from_h5(f, f[r]) for r in obj[()].ravel()])
    arr = np.asarray(obj[()]).T  # MATLAB stores column-major: reverse the axes back
    if cls == "char":
        return "".join(chr(c) for c in arr.ravel(order="F"))
    return arr


# --- reading --------------------------------------------------------------------------------------


def _load_sxy(path: Path) -> tuple[list[str], Any]:
    """Names of the file's variables, and its ``SXY`` in neutral form (None when absent)."""
    if not path.exists():
        raise InputError("file not found", source=path)
    if path.suffix.lower() != ".mat":
        raise InputError(f"expected a SMAP calibration '*_3dcal.mat', got suffix '{path.suffix}'", source=path)
    try:
        names = [name for name, _, _ in scipy.io.whosmat(path)]
        if "SXY" not in names:
            return names, None
        raw = scipy.io.loadmat(path, variable_names=["SXY"], struct_as_record=False, squeeze_me=False)
        return names, _from_scipy(raw["SXY"])
    except Exception as err:  # NotImplementedError for v7.3; ValueError/MatReadError/OSError otherwise
        if not h5py.is_hdf5(path):
            raise InputError(f"not a readable MATLAB .mat file ({type(err).__name__}: {err})", source=path) from None
    try:  # MATLAB v7.3 is HDF5
        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if not k.startswith("#")]
            return names, (_from_h5(f, f["SXY"]) if "SXY" in names else None)
    except OSError as err:
        raise InputError(f"unreadable MATLAB v7.3 file ({err})", source=path) from None


def _scalar(cs: dict[str, Any], name: str, *, where: str, source: Path) -> float:
    if name not in cs:
        raise InputError(f"{where} has no field '{name}' (fields: {sorted(cs)})", source=source)
    value = cs[name]
    if isinstance(value, (int, float)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.size != 1 or value.dtype.kind not in "biuf":
        shown = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise InputError(f"{where}.{name} must be one number, got {shown}", source=source)
    return float(value.ravel()[0])


def _channels(path: Path) -> list[dict[str, Any]]:
    """One dict per channel: SMAP-order ``coeff``, ``dz``, ``x0`` (1-based), ``z0``, ``normf``."""
    names, sxy = _load_sxy(path)
    if sxy is None:
        raise InputError(
            f"no variable 'SXY' (found: {sorted(names) or 'none'}); expected a SMAP 3D calibration "
            "'*_3dcal.mat' from calibrate3DsplinePSF",
            source=path,
        )
    if not isinstance(sxy, _Structs) or not sxy:
        raise InputError("variable 'SXY' is not a MATLAB struct; not a SMAP 3D calibration", source=path)
    channels: list[dict[str, Any]] = []
    for e, element in enumerate(sxy):
        where = "SXY" if len(sxy) == 1 else f"SXY({e + 1})"
        cspline = element.get("cspline")
        has_coeff = (
            isinstance(cspline, _Structs) and len(cspline) == 1 and "coeff" in cspline[0]
            and not (isinstance(cspline[0]["coeff"], np.ndarray) and cspline[0]["coeff"].size == 0)
        )
        if not has_coeff:
            raise InputError(
                f"{where} has no cubic-spline coefficients ('cspline.coeff'; fields: {sorted(element)}); "
                "a cubic-spline calibration is needed - a Gaussian/astigmatic-only calibration cannot be used, "
                "recalibrate with SMAP's calibrate3DsplinePSF with 'cspline' selected",
                source=path,
            )
        cs = cspline[0]
        where_cs = f"{where}.cspline"
        coeffs = list(cs["coeff"]) if isinstance(cs["coeff"], _Cell) else [cs["coeff"]]
        common = {
            "dz": _scalar(cs, "dz", where=where_cs, source=path),
            "x0": _scalar(cs, "x0", where=where_cs, source=path),
            "z0": _scalar(cs, "z0", where=where_cs, source=path),
        }
        normf = np.asarray(cs["normf"], dtype=float).ravel() if "normf" in cs and not isinstance(
            cs["normf"], (_Cell, _Structs)) else np.zeros(0)
        for k, coeff in enumerate(coeffs):
            name = f"{where_cs}.coeff" + (f"{{{k + 1}}}" if isinstance(cs["coeff"], _Cell) else "")
            if not isinstance(coeff, np.ndarray) or coeff.dtype.kind not in "biuf" or coeff.ndim != 4 \
                    or coeff.shape[-1] != 64:
                shape = coeff.shape if isinstance(coeff, np.ndarray) else type(coeff).__name__
                raise InputError(
                    f"{name} has shape {shape}; expected a 4-D array (rows, columns, z slices, 64)", source=path
                )
            nf = float(normf[k]) if normf.size == len(coeffs) else (float(normf[0]) if normf.size == 1 else None)
            channels.append({**common, "coeff": coeff, "normf": nf, "name": name})
    return channels


def list_smap_channels(path: str | os.PathLike) -> int:
    """Number of channels in a SMAP ``_3dcal.mat`` (elements of ``SXY`` times cells of ``coeff``)."""
    return len(_channels(Path(path)))


def load_smap_3dcal(path: str | os.PathLike, *, channel: int = 0) -> SplineCalibration:
    """Load one channel of a SMAP cubic-spline calibration.

    Args:
        path: the ``*_3dcal.mat`` file (MATLAB v5/v7 or v7.3).
        channel: 0-based channel index (see :func:`list_smap_channels`).

    Returns:
        the calibration, coefficients in ``(z, y, x, 64)`` order (module docstring).

    Raises:
        InputError: not a readable .mat file; no ``SXY`` variable; no ``cspline`` coefficients;
            coefficients not 4-D with 64 per voxel; NaN/inf coefficients; channel out of range.
    """
    path = Path(path)
    channels = _channels(path)
    if not isinstance(channel, (int, np.integer)) or not 0 <= int(channel) < len(channels):
        raise InputError(
            f"channel {channel!r} out of range; the file has {len(channels)} channel(s): 0..{len(channels) - 1}",
            source=path,
        )
    ch = channels[int(channel)]
    coeff = np.asarray(ch["coeff"], dtype=np.float32)
    n_bad = int(np.count_nonzero(~np.isfinite(coeff)))
    if n_bad:
        raise InputError(f"{ch['name']} holds {n_bad} NaN/inf coefficient(s); recalibrate", source=path)
    return SplineCalibration(
        coeff=coeff.transpose(2, 0, 1, 3),
        dz_nm=ch["dz"],
        x0=ch["x0"] - 1.0,
        y0=ch["x0"] - 1.0,
        z0=ch["z0"],
        source=str(path),
        channel=int(channel),
        normf=ch["normf"],
    )


# --- writing --------------------------------------------------------------------------------------


def _cspline_dict(cal: SplineCalibration) -> dict[str, Any]:
    return {
        "coeff": np.ascontiguousarray(cal.coeff.transpose(1, 2, 0, 3), dtype=np.float32),
        "dz": float(cal.dz_nm),
        "z0": float(cal.z0),
        "x0": float(cal.x0) + 1.0,
    }


def save_smap_3dcal(
    path: str | os.PathLike, calibrations: SplineCalibration | Sequence[SplineCalibration]
) -> None:
    """Write calibrations as a SMAP ``_3dcal.mat`` (MATLAB v5 via scipy), atomically.

    One calibration gives ``SXY.cspline`` with a plain ``coeff`` array. Several calibrations that share
    ``dz_nm``, ``x0`` and ``z0`` give SMAP's multi-channel layout (``coeff`` a cell, ``normf`` a
    vector when every channel has one); otherwise ``SXY`` becomes a struct array, one element per
    calibration. :func:`load_smap_3dcal` reads every layout back.

    Raises:
        InputError: no calibrations, or ``x0 != y0`` (SMAP stores one lateral centre).
    """
    cals = [calibrations] if isinstance(calibrations, SplineCalibration) else list(calibrations)
    if not cals or not all(isinstance(c, SplineCalibration) for c in cals):
        raise InputError("expected one or more SplineCalibration objects", source=path)
    for c in cals:
        if c.x0 != c.y0:
            raise InputError(
                f"channel {c.channel}: x0={c.x0} differs from y0={c.y0}; SMAP files hold one lateral centre",
                source=path,
            )
    shared = len({(c.dz_nm, c.x0, c.z0) for c in cals}) == 1
    if len(cals) == 1 or shared:
        cs = _cspline_dict(cals[0])
        if len(cals) > 1:
            cell = np.empty((1, len(cals)), dtype=object)
            for k, c in enumerate(cals):
                cell[0, k] = _cspline_dict(c)["coeff"]
            cs["coeff"] = cell
        if all(c.normf is not None for c in cals):
            cs["normf"] = np.array([[c.normf for c in cals]], dtype=float)
        sxy: Any = {"cspline": cs}
    else:
        sxy = np.empty((1, len(cals)), dtype=[("cspline", object)])
        for k, c in enumerate(cals):
            cs = _cspline_dict(c)
            if c.normf is not None:
                cs["normf"] = float(c.normf)
            sxy[0, k]["cspline"] = cs
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {"SXY": sxy}, appendmat=False, format="5")

