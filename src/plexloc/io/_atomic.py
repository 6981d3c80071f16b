"""Write-to-temporary-then-rename, so that no half-written output is ever left behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from plexloc.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A target that cannot be written (its folder cannot be made, is read-only, or the target is a folder) raises
    :class:`~plexloc.errors.InputError` naming it, before any work is lost. The temporary file keeps the target's suffix (so that libraries that sniff the extension,
    like h5py or tifffile, behave the same). On any exception the temporary file is removed and
    ``path`` is left untouched.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
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
        raise InputError(f"cannot write the output: cannot create files in {path.parent} ({err.strerror or err})",
                         source=path) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
