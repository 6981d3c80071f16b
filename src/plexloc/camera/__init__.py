"""Camera noise models (EMCCD, sCMOS, ideal, and the signal-independent noise of seed 002) and the ADU <-> photon normalisation, and
the check of a movie against its camera settings (:mod:`plexloc.camera.check`).

The names below are imported from their modules on first use (PEP 562): the models need torch, which takes about
2 s to import, and ``plexloc info`` without a camera uses only the check's numpy parts (clipping levels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexloc._lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _MODULES, _SUBMODULES)
