"""Shared pieces of the table readers: a damaged HDF5 file as one :class:`InputError`, and the warning that names
fields of a foreign file that no column can hold."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from plexloc.errors import InputError

__all__ = ["IgnoredFieldWarning", "hdf5_errors"]


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
