"""The files a configuration names (spline PSF calibrations, sCMOS per-pixel maps), carried inside model files.

A trained model must work wherever it is taken: another folder, another lab, a worker of the job service that
never saw the training machine's disk. Its configuration names its calibration and camera maps by path, so
:func:`embed_files` reads them into the model file (and the training checkpoint), and :func:`restore_files` gives
the configuration back with every path pointing at exactly those bytes: the original path where it still holds
them, else a copy written once into the cache folder (:func:`cache_dir`), named by its SHA-256.

The embedded record (``files`` in a model payload)::

    {"refs": {"channels.0.psf.calibration": {"path": "/abs/PSF.h5", "sha256": "..."}, ...},
     "blobs": {"<sha256>": {"name": "PSF.h5", "data": b"..."}}}

A file named by several fields (one gain map for four planes) is stored once.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path

#: configuration fields whose string values are file paths (resolved against the YAML's folder when read); ``file``
#: is a channel transform's file (``transform: {file: T.json}``), which :func:`plexloc.config.load_config` reads into
#: the matrix: a loaded configuration names none, a YAML does (``plexloc submit`` carries it with the job)
PATH_KEYS = frozenset({"calibration", "e_per_adu", "baseline", "read_sigma", "read_variance", "file"})


class EmbeddedFileWarning(UserWarning):
    """A file a model was trained with has changed or gone; the model's own copy is used instead."""


def referenced_files(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(field, path)`` of every file path in a configuration dict (``field`` dotted, list items by index)."""
    found: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if k in PATH_KEYS and isinstance(v, str):
                found.append((key, v))
            else:
                found.extend(referenced_files(v, key))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found.extend(referenced_files(v, f"{prefix}.{i}" if prefix else str(i)))
    return found


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embed_files(config: dict[str, Any], *, source: str | os.PathLike | None = None) -> dict[str, Any]:
    """The embedded record of every file ``config`` names (empty ``refs`` and ``blobs`` when it names none).

    Raises:
        InputError: a named file cannot be read (the field and the path named)."""
    refs: dict[str, dict[str, str]] = {}
    blobs: dict[str, dict[str, Any]] = {}
    for field, path in referenced_files(config):
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise InputError(f"field '{field}': cannot read {path} to keep it with the model: "
                             f"{err.strerror or err}", source=source) from None
        digest = hashlib.sha256(data).hexdigest()
        refs[field] = {"path": str(path), "sha256": digest}
        blobs.setdefault(digest, {"name": Path(path).name, "data": data})
    return {"refs": refs, "blobs": blobs}


def cache_dir() -> Path:
    """Where embedded files are written when their original is gone: ``$PLEXLOC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/plexloc``, else ``~/.cache/plexloc``."""
    if os.environ.get("PLEXLOC_CACHE_DIR"):
        return Path(os.environ["PLEXLOC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plexloc"


def _cached_copy(digest: str, blob: dict[str, Any], *, source: str | os.PathLike | None) -> Path:
    """The blob as a file in the cache (written once, atomically; an existing copy is checked, not trusted)."""
    folder = cache_dir() / "embedded" / digest[:32]
    target = folder / str(blob["name"])
    if target.is_file() and _sha256_file(target) == digest:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(bytes(blob["data"]))
    except (OSError, InputError) as err:
        raise InputError(f"cannot write the model's copy of {blob['name']} into {folder} ({err}); set "
                         "PLEXLOC_CACHE_DIR to a writable folder", source=source) from None
    return target


def _set(config: dict[str, Any], field: str, value: str) -> None:
    node: Any = config
    *parents, last = field.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value


def restore_files(config: dict[str, Any], files: dict[str, Any] | None, *,
                  source: str | os.PathLike | None = None) -> dict[str, Any]:
    """A copy of ``config`` whose file paths all hold the embedded bytes.

    A path that still holds the same file is kept; one that is missing or changed is replaced by the cached copy
    (a changed one with an :class:`EmbeddedFileWarning`: the model was trained with the old file). Fields without
    an embedded file (models saved before embedding existed) are left as they are.

    Raises:
        InputError: a cached copy is needed and cannot be written."""
    import copy

    out = copy.deepcopy(config)
    if not files:
        return out
    refs, blobs = files.get("refs", {}), files.get("blobs", {})
    # (path, content) -> the fields that name it: each file is checked, and warned about, once
    wanted: dict[tuple[str, str], list[str]] = {}
    for field, path in referenced_files(out):
        ref = refs.get(field)
        if ref is not None and ref["sha256"] in blobs:
            wanted.setdefault((path, ref["sha256"]), []).append(field)
    for (path, digest), fields in wanted.items():
        p = Path(path)
        if p.is_file():
            if _sha256_file(p) == digest:
                continue
            warnings.warn(f"{p} ({', '.join(fields)}) changed since the model was trained; the model's own copy of "
                          "it is used", EmbeddedFileWarning, stacklevel=2)
        copy_path = str(_cached_copy(digest, blobs[digest], source=source))
        for field in fields:
            _set(out, field, copy_path)
    return out
