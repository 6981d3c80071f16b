"""Write-to-temporary-then-rename, so that no half-written output is ever left behind.

A full disk (``ENOSPC``) or an exhausted quota (``EDQUOT``) while a file is written is a :class:`DiskFullError`
(an ``OSError`` of the same errno) that names the file, the space left on its file system and that nothing
half-written was left (the bare ``[Errno 28] No space left on device`` named no file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from plexloc.errors import InputError

#: the errnos of a file system that takes no more bytes: the disk full, the user's quota exceeded
DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


class DiskFullError(OSError):
    """A file could not be written: its disk is full or the quota exceeded (``errno`` ENOSPC or EDQUOT, as the
    error it replaces). ``path``: the file being written; ``free_bytes``: the space left where it was written (None
    where it could not be read); ``reason``: the system's words (default ``os.strerror(err_no)``). Its message names
    the file and the space left; the partial file is removed before it is raised."""

    def __init__(self, path: str | os.PathLike, err_no: int = errno.ENOSPC, free_bytes: int | None = None,
                 reason: str | None = None):
        self.path = Path(path)
        self.free_bytes = free_bytes
        self.reason = reason or os.strerror(err_no)
        what = "the disk quota is exceeded" if err_no == getattr(errno, "EDQUOT", None) else "the disk is full"
        free = f"{_size(free_bytes)} free in {self.path.parent}" if free_bytes is not None else "free space unknown"
        self.message = (f"cannot write {self.path}: {what} ({self.reason}; {free}); nothing half-written was left: "
                        "free some space (or write elsewhere) and run again")
        super().__init__(err_no, self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.path, self.errno, self.free_bytes, self.reason)


def _size(n: int) -> str:
    """Bytes in words: ``0 bytes``, ``512 bytes``, ``3.1 MB``, ``12.0 GB``."""
    if n < 1000:
        return f"{n} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
    raise AssertionError  # pragma: no cover


def free_bytes(path: str | os.PathLike) -> int | None:
    """The bytes free on the file system of ``path`` (its nearest existing folder); None where that cannot be read."""
    p = Path(path)
    for folder in (p, *p.parents):
        try:
            if folder.is_dir():
                return int(shutil.disk_usage(folder).free)
        except OSError:
            return None
    return None


def disk_full(err: BaseException, path: str | os.PathLike) -> BaseException:
    """``err`` as a :class:`DiskFullError` naming ``path`` where it is an OSError of a full disk or quota (and not
    one already), else ``err`` itself."""
    if isinstance(err, OSError) and not isinstance(err, DiskFullError) and err.errno in DISK_FULL_ERRNOS:
        return DiskFullError(path, err.errno, free_bytes(Path(path).parent), err.strerror)
    return err


@contextlib.contextmanager
def naming_disk_full(path: str | os.PathLike) -> Iterator[None]:
    """Raise a full disk's OSError within the block as a :class:`DiskFullError` naming ``path``; other errors pass."""
    try:
        yield
    except OSError as err:
        new = disk_full(err, path)
        if new is err:
            raise
        raise new from err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_for(path: Path) -> Path:
    """A new empty temporary file next to ``path`` (same folder, same suffix); unwritable targets are InputErrors."""
    if path.is_dir():
        raise InputError("cannot write the output: a folder of that name exists", source=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise InputError(f"cannot write the output: {err.filename} is a file, not a folder", source=path) from None
    except OSError as err:
        raise InputError(f"cannot write the output: cannot make its folder ({err.strerror or err})", source=path) from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as err:  # a read-only folder, a full disk, a file system that takes no files
        if err.errno in DISK_FULL_ERRNOS:
            raise disk_full(err, path) from err
        raise InputError(f"cannot write the output: cannot create files in {path.parent} ({err.strerror or err})",
                         source=path) from None
    os.close(fd)
    return Path(tmp_name)


def _remove(*paths: Path | None) -> None:
    for p in paths:
        if p is not None:
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A target that cannot be written (its folder cannot be made, is read-only, or the target is a folder) raises
    :class:`~plexloc.errors.InputError` naming it, before any work is lost. The temporary file keeps the target's
    suffix (so that libraries that sniff the extension, like h5py or tifffile, behave the same). On any exception the
    temporary file is removed and ``path`` is left untouched; a full disk or quota (an OSError of errno ENOSPC or
    EDQUOT, from the block's writes or the rename) is raised as a :class:`DiskFullError` naming ``path``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
    tmp = _temporary_for(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)  # first: the space it took counts as free in the message
        new = disk_full(err, path)
        if new is not err:
            raise new from err
        raise


def _backup_name(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_pair(data: str | os.PathLike, sidecar: str | os.PathLike) -> Iterator[tuple[Path, Path]]:
    """Like :func:`atomic_path` for a data file and the sidecar that describes it (Picasso's ``.hdf5`` + ``.yaml``).

    Yields two temporaries ``(tmp_data, tmp_sidecar)`` next to the targets. If the block succeeds they are put in
    place so that, at every moment, a sidecar that is there describes the data file that is there: the old
    sidecar (if any) is moved aside first, then the data file is renamed into place, then the sidecar, last.
    Two renames cannot be one atomic step; a process killed between them leaves the new data file without a
    sidecar (never a sidecar with the wrong data), and the old sidecar aside as a hidden ``.NAME.*.old`` file.
    If the block or any rename fails (an exception), both temporaries are removed and the old pair, if there was
    one, is put back as it was (the old data file is kept by a hard link, or moved aside where the file system
    has none); a new data file that had no old one is removed again.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_pair(d / "a.hdf5", d / "a.yaml") as (tmp_data, tmp_side):
    ...     _ = tmp_data.write_text("data")
    ...     _ = tmp_side.write_text("about data")
    >>> sorted(p.name for p in d.iterdir())
    ['a.hdf5', 'a.yaml']
    """
    data, sidecar = Path(data), Path(sidecar)
    tmp_data = _temporary_for(data)
    try:
        tmp_side = _temporary_for(sidecar)
    except BaseException:
        _remove(tmp_data)
        raise
    old_side = old_data = None  # hidden names next to the targets where the old pair is kept meanwhile
    side_kept = data_kept = data_moved = data_placed = False
    try:
        yield tmp_data, tmp_side
        for tmp in (tmp_data, tmp_side):
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the files ordinary permissions
        if sidecar.exists():  # the old sidecar goes first: it must not describe the new data file
            old_side = _backup_name(sidecar)
            os.replace(sidecar, old_side)
            side_kept = True
        if data.exists():  # keep the old data file, to put it back if the sidecar cannot be put in place
            old_data = _backup_name(data)
            try:
                old_data.unlink()
                os.link(data, old_data)
            except OSError:  # no hard links here: move it aside (there is no sidecar now to describe it)
                os.replace(data, old_data)
                data_moved = True
            data_kept = True
        os.replace(tmp_data, data)
        data_placed = True
        os.replace(tmp_side, sidecar)
    except BaseException as err:
        # best effort: put the old pair back; a backup that cannot be put back stays (hidden) next to its target
        if data_placed or data_moved:  # the old data file is no longer at its name
            try:
                if data_kept:
                    os.replace(old_data, data)
                    data_kept = False
                else:  # there was none: the new one goes again
                    data.unlink()
            except OSError:
                pass
        elif data_kept:  # a hard link to the data file that is still in place
            data_kept = False
        if side_kept:
            try:
                os.replace(old_side, sidecar)
                side_kept = False
            except OSError:
                pass
        _remove(tmp_data, tmp_side, None if data_kept else old_data, None if side_kept else old_side)
        new = disk_full(err, data)  # a full disk: named (the data file; the pair is written together)
        if new is not err:
            raise new from err
        raise
    _remove(old_data, old_side)
