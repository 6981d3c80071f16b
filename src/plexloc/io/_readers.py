"""Shared pieces of the table readers: a damaged HDF5 file as one :class:`InputError`, and the warning that names
fields of a foreign file that no column can hold."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from plexloc.errors import InputError

__all__ = ["IgnoredFieldWarning", "check_uint64", "hdf5_errors"]


class IgnoredFieldWarning(UserWarning):
    """A field of a foreign localization file was not imported (text, or not one value per localization); the
    message names each such field and why."""


@contextlib.contextmanager
def hdf5_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn the errors h5py raises for a damaged file (a bad object header, a broken B-tree, a chunk that cannot be
    read: ``OSError``, ``KeyError``, ``RuntimeError``, ``ValueError``) into an :class:`InputError` naming ``path``.

    Opening a truncated file fails at once; a file damaged inside opens and fails only when a group or dataset
    is reached, with an error that names neither the file nor what is wrong with it."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        raise InputError(f"corrupt HDF5 file ({type(err).__name__}: {err})", source=path) from None


def check_uint64(values: np.ndarray, what: str, *, source: str | os.PathLike) -> None:
    """Refuse an unsigned 64-bit column with a value beyond int64 (2**63 - 1): plexloc's integer columns are int64,
    and numpy's cast wraps such a value round to a negative number without a word (an id 2**63 + 5 read as
    -9223372036854775803). ``what`` names the column or field in the message."""
    values = np.asarray(values)
    if values.dtype != np.uint64 or not values.size:
        return
    big = np.flatnonzero(values > np.uint64(np.iinfo(np.int64).max))
    if big.size:
        raise InputError(f"{what} holds {int(values[big[0]])} at row {big[0]} ({big.size} value(s) beyond "
                         f"{np.iinfo(np.int64).max}), beyond the range of an integer column (int64: -2**63 .. "
                         "2**63 - 1)", source=source)
