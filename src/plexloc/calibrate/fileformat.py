"""plexloc's own PSF calibration file (HDF5, ``PSF.h5``).

Layout (format ``plexloc-psf-calibration``, version 1)::

    /                       attrs: format, format_version, plexloc_version, created (ISO 8601, UTC),
                                   command, inputs (one per channel), n_channels, model ("spline"),
                                   px_size_nm (x, y), dz_nm, z0_definition, units (a description),
                                   roi_offset_px (x, y): the chip pixel at the bead stacks' corner (absent in
                                   files written before 2026-12-05: (0, 0))
    /channel_<c>/volume     float32 (n_z, n_y, n_x): the averaged, background-subtracted bead PSF,
                            normalised to sum 1 over the window at z = 0 (photon fractions per pixel)
    /channel_<c>/coeff      float32 (n_z - 1, n_y - 1, n_x - 1, 64): its cubic-spline coefficients
                            (:func:`plexloc.psf.spline.coefficients_from_volume`)
    /channel_<c>            attrs: x0_voxel, y0_voxel, z0_voxel (PSF centre, 0-based voxel coordinates
                            of ``volume``; z = 0 nm is voxel z0_voxel), transform_nm (3 x 3, reference ->
                            channel c, ``r_c = T_c r_0``, conventions.md, in camera-chip coordinates:
                            measured in the stacks' own and moved by roi_offset_px, :func:`chip_transform`),
                            throughput_ratio (this
                            channel's photons relative to channel 0 at z = 0, both PSFs normalised as
                            above), focus_offset_nm (this channel's own focus, in reference z),
                            n_beads_used, source

All channels share one z axis: z is relative to the focus of the reference channel 0, so a biplane's
second PSF already holds its focal offset (use it with ``z_offset_nm = 0``; ``focus_offset_nm`` only
reports it). Lateral voxels are camera pixels (``px_size_nm``), axial ones ``dz_nm``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path

FORMAT_NAME = "plexloc-psf-calibration"
FORMAT_VERSION = 1
CALIBRATION_SUFFIXES = (".h5", ".hdf5")

__all__ = [
    "CALIBRATION_SUFFIXES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ChannelCalibration",
    "PSFCalibration",
    "channel_out_of_range",
    "chip_transform",
    "load_calibration",
    "save_calibration",
]


def chip_transform(transform_nm: np.ndarray, roi_offset_nm: Sequence[float]) -> np.ndarray:
    """A channel transform measured in the coordinates of images whose corner sits at ``roi_offset_nm`` (x, y) on the
    camera chip, in chip coordinates: ``A T A^-1`` with ``A`` the shift by the offset.

    A transform that is not a pure shift (a rotation, a scale) moves points differently far from the origin: a 1
    degree rotation measured on a ROI 50 um from the chip's corner is off by 870 nm when used in chip coordinates
    as it was measured. The fit evaluates every transform at chip positions (conventions.md), so calibrations
    are stored that way."""
    ox, oy = (float(v) for v in roi_offset_nm)
    shift = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]])
    return shift @ np.asarray(transform_nm, dtype=np.float64) @ back


def channel_out_of_range(channel: int, n_channels: int, path: str | os.PathLike | None = None) -> str:
    """What is wrong when a configuration's ``psf.channel`` asks a calibration of ``n_channels`` channels for
    ``channel``, and how to get a file of them all (``path``: the file, named in the text where given; the
    configuration loader prefixes the YAML and the field, :func:`plexloc.config.io.load_config`)."""
    where = f"the calibration {path} has" if path is not None else "the file has"
    return (f"channel {channel} out of range; {where} {n_channels} channel(s): 0..{n_channels - 1} (a configuration's "
            "psf.channel names one of them; a calibration of one channel's beads serves that channel only: calibrate "
            "every channel's bead stacks together, plexloc calibrate BEADS_ch0.tif BEADS_ch1.tif ..., for one file of "
            "them all)")


@dataclasses.dataclass(eq=False)
class ChannelCalibration:
    """One channel of a calibration (see the module docstring for the meaning of each field)."""

    volume: np.ndarray
    x0_voxel: float
    y0_voxel: float
    z0_voxel: float
    coeff: np.ndarray | None = None
    transform_nm: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    throughput_ratio: float = 1.0
    focus_offset_nm: float = 0.0
    n_beads_used: int = 0
    source: str = ""

    def spline_coeff(self) -> np.ndarray:
        """The spline coefficients (computed from ``volume`` when not stored)."""
        if self.coeff is None:
            from plexloc.psf.spline import coefficients_from_volume

            self.coeff = coefficients_from_volume(self.volume)
        return self.coeff


@dataclasses.dataclass(eq=False)
class PSFCalibration:
    """A multi-channel spline PSF calibration with its provenance."""

    channels: list[ChannelCalibration]
    px_size_nm: tuple[float, float]
    dz_nm: float
    z0_definition: str = ""
    command: str = ""
    inputs: Sequence[str] = ()
    created: str = ""
    plexloc_version: str = ""
    source: str = ""
    #: chip pixel (x, y) at the corner of the bead stacks; the transforms are in chip coordinates
    roi_offset_px: tuple[int, int] = (0, 0)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def on_chip(self, roi_offset_px: tuple[int, int]) -> "PSFCalibration":
        """A copy whose transforms, measured on stacks whose corner sat at chip pixel ``roi_offset_px`` (x, y)
        (the camera ROI of the bead acquisition), are in chip coordinates (:func:`chip_transform`)."""
        off_nm = (roi_offset_px[0] * self.px_size_nm[0], roi_offset_px[1] * self.px_size_nm[1])
        channels = [dataclasses.replace(ch, transform_nm=chip_transform(ch.transform_nm, off_nm)) for ch in self.channels]
        return dataclasses.replace(self, channels=channels, roi_offset_px=(int(roi_offset_px[0]), int(roi_offset_px[1])))

    def psf(self, channel: int = 0, *, roi_px: int | None = None):
        """The :class:`~plexloc.psf.SplinePSF` of one channel."""
        from plexloc.psf.spline import SplinePSF

        if not 0 <= channel < self.n_channels:
            raise InputError(channel_out_of_range(channel, self.n_channels), source=self.source or None)
        ch = self.channels[channel]
        return SplinePSF(
            coeff=ch.spline_coeff(),
            x0=ch.x0_voxel,
            y0=ch.y0_voxel,
            z0=ch.z0_voxel,
            dz_nm=self.dz_nm,
            px_size_nm=self.px_size_nm,
            roi_px=roi_px,
        )


def save_calibration(cal: PSFCalibration, path: str | os.PathLike) -> None:
    """Write ``cal`` to ``path`` (HDF5) atomically; fills ``created`` and ``plexloc_version`` when empty."""
    from plexloc import __version__

    if cal.n_channels == 0:
        raise InputError("a calibration needs at least one channel", source=path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        a = f.attrs
        a["format"] = FORMAT_NAME
        a["format_version"] = FORMAT_VERSION
        a["plexloc_version"] = cal.plexloc_version or __version__
        a["created"] = cal.created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        a["command"] = cal.command
        a["inputs"] = np.array([str(s) for s in cal.inputs], dtype=h5py.string_dtype())
        a["n_channels"] = cal.n_channels
        a["model"] = "spline"
        a["px_size_nm"] = np.asarray(cal.px_size_nm, dtype=np.float64)
        a["dz_nm"] = float(cal.dz_nm)
        a["z0_definition"] = cal.z0_definition
        a["roi_offset_px"] = np.asarray(cal.roi_offset_px, dtype=np.int64)
        a["units"] = (
            "positions nm; px_size_nm = lateral voxel (camera pixel), dz_nm = axial voxel; volume in photon "
            "fractions per pixel (sum 1 over the window at z = 0); transform_nm maps reference nm -> channel nm"
        )
        for c, ch in enumerate(cal.channels):
            g = f.create_group(f"channel_{c}")
            g.create_dataset("volume", data=np.asarray(ch.volume, dtype=np.float32), compression="gzip")
            g.create_dataset("coeff", data=np.asarray(ch.spline_coeff(), dtype=np.float32), compression="gzip")
            g.attrs["x0_voxel"] = float(ch.x0_voxel)
            g.attrs["y0_voxel"] = float(ch.y0_voxel)
            g.attrs["z0_voxel"] = float(ch.z0_voxel)
            g.attrs["transform_nm"] = np.asarray(ch.transform_nm, dtype=np.float64)
            g.attrs["throughput_ratio"] = float(ch.throughput_ratio)
            g.attrs["focus_offset_nm"] = float(ch.focus_offset_nm)
            g.attrs["n_beads_used"] = int(ch.n_beads_used)
            g.attrs["source"] = str(ch.source)


def _attr(obj, name: str, *, path: Path, where: str):
    if name not in obj.attrs:
        raise InputError(f"missing attribute '{name}' in {where}; not a complete plexloc calibration", source=path)
    value = obj.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def is_plexloc_calibration(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file carrying our format name."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") in (FORMAT_NAME, FORMAT_NAME.encode())
    except OSError:
        return False


def calibration_channel_count(path: str | os.PathLike) -> int | None:
    """``n_channels`` of a plexloc calibration file, read from its header alone; None where the file is missing, not
    one, or cannot be read (its loader then says what is wrong)."""
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            return int(f.attrs["n_channels"]) if fmt == FORMAT_NAME and "n_channels" in f.attrs else None
    except (OSError, ValueError, TypeError):
        return None


def load_calibration(path: str | os.PathLike) -> PSFCalibration:
    """Read a calibration written by :func:`save_calibration`.

    Raises:
        InputError: not an HDF5 file, another format or a newer version, a missing dataset or
            attribute (the message names file and field), or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("calibration file not found", source=path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err})", source=path) from None
    with f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != FORMAT_NAME:
            raise InputError(f"attribute 'format' is {fmt!r}, expected {FORMAT_NAME!r}", source=path)
        version = int(_attr(f, "format_version", path=path, where="/"))
        if version > FORMAT_VERSION:
            raise InputError(
                f"format_version {version} is newer than this plexloc reads ({FORMAT_VERSION}); update plexloc",
                source=path,
            )
        n = int(_attr(f, "n_channels", path=path, where="/"))
        px = tuple(float(v) for v in np.atleast_1d(_attr(f, "px_size_nm", path=path, where="/")))
        if len(px) == 1:
            px = (px[0], px[0])
        dz = float(_attr(f, "dz_nm", path=path, where="/"))
        if not (dz > 0 and all(p > 0 for p in px)):
            raise InputError(f"dz_nm {dz} and px_size_nm {px} must be > 0", source=path)
        channels = []
        for c in range(n):
            name = f"channel_{c}"
            if name not in f:
                raise InputError(f"group '/{name}' is missing (n_channels = {n})", source=path)
            g = f[name]
            if "volume" not in g:
                raise InputError(f"dataset '/{name}/volume' is missing", source=path)
            volume = np.asarray(g["volume"], dtype=np.float32)
            coeff = np.asarray(g["coeff"], dtype=np.float32) if "coeff" in g else None
            if volume.ndim != 3 or min(volume.shape) < 4:
                raise InputError(f"'/{name}/volume' must be 3-D with >= 4 samples per axis, got {volume.shape}", source=path)
            if coeff is not None and coeff.shape != (*(s - 1 for s in volume.shape), 64):
                raise InputError(
                    f"'/{name}/coeff' has shape {coeff.shape}, expected {(*(s - 1 for s in volume.shape), 64)}", source=path
                )
            for label, arr in (("volume", volume), ("coeff", coeff)):
                if arr is not None and not np.all(np.isfinite(arr)):
                    raise InputError(f"'/{name}/{label}' contains NaN or inf", source=path)
            where = f"/{name}"
            t = np.asarray(_attr(g, "transform_nm", path=path, where=where), dtype=np.float64)
            if t.shape != (3, 3):
                raise InputError(f"'/{name}' attribute transform_nm has shape {t.shape}, expected (3, 3)", source=path)
            channels.append(
                ChannelCalibration(
                    volume=volume,
                    coeff=coeff,
                    x0_voxel=float(_attr(g, "x0_voxel", path=path, where=where)),
                    y0_voxel=float(_attr(g, "y0_voxel", path=path, where=where)),
                    z0_voxel=float(_attr(g, "z0_voxel", path=path, where=where)),
                    transform_nm=t,
                    throughput_ratio=float(_attr(g, "throughput_ratio", path=path, where=where)),
                    focus_offset_nm=float(g.attrs.get("focus_offset_nm", 0.0)),
                    n_beads_used=int(g.attrs.get("n_beads_used", 0)),
                    source=str(_attr(g, "source", path=path, where=where)) if "source" in g.attrs else "",
                )
            )
        inputs = [s.decode() if isinstance(s, bytes) else str(s) for s in np.atleast_1d(f.attrs.get("inputs", []))]
        return PSFCalibration(
            channels=channels,
            px_size_nm=(px[0], px[1]),
            dz_nm=dz,
            z0_definition=str(_attr(f, "z0_definition", path=path, where="/")),
            command=str(f.attrs.get("command", "")),
            inputs=inputs,
            created=str(f.attrs.get("created", "")),
            plexloc_version=str(f.attrs.get("plexloc_version", "")),
            source=str(path),
            roi_offset_px=tuple(int(v) for v in np.atleast_1d(f.attrs.get("roi_offset_px", (0, 0)))[:2]),
        )
