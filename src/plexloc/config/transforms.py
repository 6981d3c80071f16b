"""Channel transforms read from the files plexloc commands write, instead of matrices copied by hand.

A channel's ``transform`` in a configuration may name such a file (:func:`plexloc.config.load_config` reads it,
relative to the YAML, and puts the matrix in its place)::

    transform: {file: T.json}               # plexloc register LOCS_ch0 LOCS_ch1 --out T.json
    transform: {file: PSF.json, channel: 1}  # plexloc calibrate (several channels): its report
    transform: {file: PSF.h5, channel: 1}    # plexloc calibrate: the calibration file itself

What each file holds (their writers: ``plexloc.cli.register``, ``plexloc.cli.calibrate``,
:mod:`plexloc.calibrate.fileformat`):

- ``T.json`` (``register``): ``transform``, one 3x3 matrix (reference -> the registered channel), with
  ``direction`` "reference -> channel, r_c = T r_0 (homogeneous, nm)" and ``coordinates``. It records no channel
  number (the same command registers any channel against the reference), so ``channel`` is not given with it.
- ``PSF.json`` (``calibrate`` of two or more channels): ``transforms``, one 3x3 matrix per calibrated channel
  (channel 0's the identity), in camera-chip coordinates. A calibration of one channel writes none.
- ``PSF.h5``: ``/channel_<c>`` attribute ``transform_nm`` for each of its ``n_channels``; the root's ``units``
  says "transform_nm maps reference nm -> channel nm".

``channel`` defaults to the configuration channel's own index (a file of several channels). Where a file records a
direction, it must be the convention's, reference -> channel (``r_c = T_c r_0``, conventions.md); a file saying
otherwise is refused rather than inverted silently.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from plexloc.errors import InputError

__all__ = ["TransformFileWarning", "TransformSource", "read_transform"]

#: the keys of a ``transform: {...}`` file reference in a configuration
TRANSFORM_FILE_KEYS = ("file", "channel")
#: how a direction that is the convention's begins (``register``'s T.json: "reference -> channel, r_c = T r_0 ...")
_DIRECTION = "reference -> channel"
_SUPPORTED = ("plexloc register's T.json ('transform'), plexloc calibrate's PSF.json ('transforms') or its "
              "calibration file PSF.h5")


class TransformFileWarning(UserWarning):
    """A transform file that says its own transform is not to be trusted (``plexloc register``'s ``warning``)."""


@dataclass(frozen=True)
class TransformSource:
    """What :func:`read_transform` found: the matrix and where it came from."""

    matrix: list[list[float]]
    path: Path
    #: the file's channel read (None for a file of one transform, T.json)
    channel: int | None
    #: the number of channels the file holds transforms for (None for a file of one transform)
    n_channels: int | None
    #: ``register`` (T.json), ``calibrate report`` (PSF.json) or ``calibration`` (PSF.h5)
    kind: str


def _matrix(value, *, path: Path, where: str) -> list[list[float]]:
    """``value`` as a 3x3 list of finite floats, or an :class:`InputError` naming ``path`` and ``where``."""
    ok = (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(r, (list, tuple)) and len(r) == 3 for r in value))
    if ok:
        try:
            rows = [[float(v) for v in r] for r in value]
        except (TypeError, ValueError):
            ok = False
        else:
            ok = (not any(isinstance(v, bool) for r in value for v in r)
                  and all(math.isfinite(v) for r in rows for v in r))
    if not ok:
        raise InputError(f"{where} is not a 3x3 matrix of finite numbers: {value!r}", source=path)
    return rows


def _check_direction(text, *, path: Path, where: str) -> None:
    if text is None:
        return
    if not isinstance(text, str) or not text.strip().lower().startswith(_DIRECTION):
        raise InputError(f"{where} is {text!r}, not {_DIRECTION!r}: plexloc reads a channel transform as reference -> "
                         "channel (r_c = T r_0, conventions.md); give the inverse matrix, or register again with the "
                         "reference channel's table first", source=path)


def _pick(transforms: list, channel: int | None, *, path: Path, kind: str) -> tuple[int, list]:
    n = len(transforms)
    if channel is None and n == 1:
        channel = 0
    if channel is None:
        raise InputError(f"holds the transforms of {n} channels ({kind}): say which, e.g. {{file: {path.name}, "
                         f"channel: {min(1, n - 1)}}}", source=path)
    if not 0 <= channel < n:
        raise InputError(f"holds the transforms of {n} channel(s) (0..{n - 1}), not of channel {channel} (calibrate "
                         "every channel's bead stacks together for one file of them all: plexloc calibrate "
                         "BEADS_ch0.tif BEADS_ch1.tif ...)", source=path)
    return channel, transforms[channel]


def _read_json(path: Path, channel: int | None, default_channel: int | None) -> TransformSource:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not a JSON file ({' '.join(str(err).split())}); expected {_SUPPORTED}",
                         source=path) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object holding 'transform' or 'transforms', got {type(data).__name__}",
                         source=path)
    _check_direction(data.get("direction"), path=path, where="its 'direction'")
    if "transform" in data and "transforms" in data:
        raise InputError("holds both 'transform' and 'transforms': which one is meant is not the file's to say",
                         source=path)
    if "transform" in data:  # plexloc register
        if channel is not None:
            raise InputError(f"holds one transform (plexloc register's, reference -> the registered channel) and no "
                             f"channel numbers: leave out 'channel' ({channel})", source=path)
        matrix = _matrix(data["transform"], path=path, where="its 'transform'")
        if data.get("warning"):
            warnings.warn(f"{path}: plexloc register wrote with this transform: {data['warning']}",
                          TransformFileWarning, stacklevel=4)
        return TransformSource(matrix, path, None, None, "register")
    if "transforms" in data:  # plexloc calibrate's PSF.json
        ts = data["transforms"]
        if not isinstance(ts, list) or not ts:
            raise InputError(f"its 'transforms' is not a list of 3x3 matrices: {ts!r}", source=path)
        c, value = _pick(ts, channel if channel is not None else default_channel, path=path,
                         kind="plexloc calibrate's report")
        return TransformSource(_matrix(value, path=path, where=f"its 'transforms'[{c}]"), path, c, len(ts),
                               "calibrate report")
    if "calibration" in data and "n_beads_used" in data:  # PSF.json of a calibration of one channel (or astigmatic)
        n = len(data["n_beads_used"]) if isinstance(data["n_beads_used"], list) else 1
        raise InputError(f"holds no channel transform: plexloc calibrate writes 'transforms' only for two or more "
                         f"channels, and this calibration has {n} channel(s); calibrate every channel's bead stacks "
                         "together (plexloc calibrate BEADS_ch0.tif BEADS_ch1.tif ...)", source=path)
    raise InputError(f"holds no channel transform: expected 'transform' (plexloc register) or 'transforms' (plexloc "
                     f"calibrate), found the keys {sorted(data)}", source=path)


def _read_h5(path: Path, channel: int | None) -> TransformSource:
    """A plexloc calibration's ``transform_nm`` attributes, read without its PSF volumes (tens of MB)."""
    import h5py

    from plexloc.calibrate.fileformat import FORMAT_NAME, FORMAT_VERSION

    def text(value) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err}); expected {_SUPPORTED}", source=path) from None
    with f:
        fmt = text(f.attrs.get("format", ""))
        if fmt != FORMAT_NAME:
            raise InputError(f"attribute 'format' is {fmt!r}, not {FORMAT_NAME!r}: not a plexloc calibration (a SMAP "
                             "calibration holds no plexloc transform)", source=path)
        if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(f"format_version {int(f.attrs['format_version'])} is newer than this plexloc reads "
                             f"({FORMAT_VERSION}); update plexloc", source=path)
        units = text(f.attrs.get("units", ""))
        if "transform_nm" in units and "reference nm -> channel nm" not in units:
            raise InputError(f"its 'units' attribute ({units!r}) does not say transform_nm maps reference nm -> "
                             "channel nm, the direction plexloc reads", source=path)
        n = int(f.attrs.get("n_channels", 0))
        if n < 1:
            raise InputError(f"attribute 'n_channels' is {f.attrs.get('n_channels')!r}: not a complete plexloc "
                             "calibration", source=path)
        c, _ = _pick([None] * n, channel, path=path, kind="a plexloc calibration")
        group = f.get(f"channel_{c}")
        if group is None or "transform_nm" not in group.attrs:
            raise InputError(f"'/channel_{c}' or its attribute transform_nm is missing (n_channels = {n}): not a "
                             "complete plexloc calibration", source=path)
        value = group.attrs["transform_nm"].tolist() if hasattr(group.attrs["transform_nm"], "tolist") else None
    return TransformSource(_matrix(value, path=path, where=f"/channel_{c} attribute transform_nm"), path, c, n,
                           "calibration")


def read_transform(path: str | os.PathLike, channel: int | None = None, *,
                   default_channel: int | None = None) -> TransformSource:
    """The channel transform (3x3, nm, reference -> channel) that ``path`` holds: a ``T.json`` of ``plexloc
    register`` (``channel`` not given), or channel ``channel`` of a ``PSF.json`` or ``PSF.h5`` of ``plexloc
    calibrate`` (module docstring). ``default_channel``: the channel of a file of several channels when ``channel`` is
    not given (a configuration channel's own index); a file of one transform ignores it.

    Raises:
        InputError: the file is missing or unreadable, holds no transform, no transform of ``channel`` (naming the
            file's number of channels), a matrix that is not 3x3 and finite, or records the reverse direction; the
            message names the file.

    Warns:
        TransformFileWarning: ``register`` wrote a warning with the transform (too few pairs matched).
    """
    path = Path(path)
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise InputError(f"channel must be a channel number >= 0, got {channel!r}", source=path)
    if not path.is_file():
        raise InputError("transform file not found", source=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return _read_json(path, channel, default_channel)
        if suffix in (".h5", ".hdf5"):
            return _read_h5(path, channel if channel is not None else default_channel)
    except OSError as err:
        raise InputError(f"cannot read it: {err.strerror or err}", source=path) from None
    raise InputError(f"a transform is read from {_SUPPORTED}, not a {suffix or 'suffix-less'} file", source=path)
