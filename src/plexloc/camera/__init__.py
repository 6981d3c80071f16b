"""Camera noise models (EMCCD, sCMOS, ideal) and the ADU <-> photon normalisation."""

from plexloc.camera.models import CAMERAS, EMCCD, SCMOS, Camera, IdealCamera, camera_from_config

__all__ = ["CAMERAS", "EMCCD", "SCMOS", "Camera", "IdealCamera", "camera_from_config"]
