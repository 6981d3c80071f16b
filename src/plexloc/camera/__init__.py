"""Camera noise models (EMCCD, sCMOS, ideal, and the signal-independent noise of seed 002) and the ADU <-> photon normalisation, and
the check of a movie against its camera settings (:mod:`plexloc.camera.check`)."""

from plexloc.camera.check import CameraCheck, CameraWarning, check_camera
from plexloc.camera.models import CAMERAS, EMCCD, SCMOS, AdditiveNoiseCamera, Camera, IdealCamera, camera_from_config

__all__ = ["CameraCheck", "CameraWarning", "check_camera", "CAMERAS", "EMCCD", "SCMOS", "AdditiveNoiseCamera", "Camera", "IdealCamera", "camera_from_config"]
