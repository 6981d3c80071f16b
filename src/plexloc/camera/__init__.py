"""Camera noise models (EMCCD, sCMOS, ideal, and the signal-independent noise of seed 002) and the ADU <-> photon normalisation, and
the check of a movie against its camera settings (:mod:`plexloc.camera.check`).

The names below are imported from their modules on first use (PEP 562): the models need torch, which takes about
2 s to import, and ``plexloc info`` without a camera uses only the check's numpy parts (clipping levels)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as type checkers and editors see them (at run time: __getattr__, on first use)
    from plexloc.camera.check import CameraCheck, CameraWarning, check_camera
    from plexloc.camera.models import (CAMERAS, EMCCD, SCMOS, AdditiveNoiseCamera, Camera, IdealCamera,
                                       camera_from_config)

#: each name's module
_MODULES = {"CameraCheck": "check", "CameraWarning": "check", "check_camera": "check", "CAMERAS": "models",
            "EMCCD": "models", "SCMOS": "models", "AdditiveNoiseCamera": "models", "Camera": "models",
            "IdealCamera": "models", "camera_from_config": "models"}
#: the modules that ``import plexloc.camera`` made attributes of the package when it imported its names
#: (``plexloc.camera.check.saturation_adu`` after a plain import): imported on first use too
_SUBMODULES = ("check", "functional", "models")

__all__ = ["CameraCheck", "CameraWarning", "check_camera", "CAMERAS", "EMCCD", "SCMOS", "AdditiveNoiseCamera", "Camera", "IdealCamera", "camera_from_config"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # (the import sets it in the package's globals)
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES, *_SUBMODULES})  # (a name fetched is in both: listed once)
