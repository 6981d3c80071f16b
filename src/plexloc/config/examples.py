"""The example configurations installed with plexloc (the repository's ``examples/`` folder, packaged as
``plexloc/examples``), so that ``plexloc demo`` and a new configuration can start from them in any folder.

    >>> "demo_2d" in example_names()
    True
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path

from plexloc.errors import InputError


def _folder():
    return importlib.resources.files("plexloc") / "examples"


def example_names() -> list[str]:
    """The names (file stems) of the installed example configurations, sorted."""
    folder = _folder()
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")) if folder.is_dir() else []


def example_path(name: str) -> Path:
    """The installed file of example ``name`` (``demo_2d``, ``demo_2d.yaml`` or ``examples/demo_2d.yaml``).

    Raises:
        InputError: no such example (the message lists them)."""
    stem = Path(name).name
    stem = stem[:-5] if stem.endswith(".yaml") else stem
    if stem in example_names():
        return Path(str(_folder() / f"{stem}.yaml"))
    raise InputError(f"no example configuration {name!r}; installed: {', '.join(example_names()) or 'none'}")


def resolve_config_path(path: str | os.PathLike) -> Path:
    """``path`` where it exists; else, where it names an installed example (``examples/demo_2d.yaml`` run outside the
    repository), that example; else ``path`` (the loader then says it is missing)."""
    p = Path(path)
    if p.exists():
        return p
    try:
        return example_path(str(p))
    except InputError:
        return p


def copy_examples(folder: str | os.PathLike, names: list[str] | None = None, *, overwrite: bool = False) -> list[Path]:
    """Copy the example configurations (all, or ``names``) into ``folder``; an existing file is kept unless
    ``overwrite``. Returns the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or example_names():
        src = example_path(name)
        dst = out / src.name
        if dst.exists() and not overwrite:
            raise InputError(f"{dst} exists (give --overwrite to replace it)")
        shutil.copyfile(src, dst)
        written.append(dst)
    return written
