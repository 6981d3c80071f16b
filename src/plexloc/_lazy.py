"""Names of a package imported from their modules on first use (PEP 562), for packages whose modules pull in heavy
imports (torch, about 2 s) that some of their users never need."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_names(package: str, names: Mapping[str, str], submodules: Sequence[str] = ()
               ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each of ``names`` (name -> its module, relative to the
    package) is imported from its module when first used and kept in the package; each of ``submodules`` (the
    modules that a plain import of the package used to make its attributes) is imported when first used."""

    def __getattr__(name: str) -> object:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")  # (the import sets it in the package's globals)
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(sys.modules[package], name, value)  # once
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names, *submodules})  # (a name fetched is in both: listed once)

    return __getattr__, __dir__
