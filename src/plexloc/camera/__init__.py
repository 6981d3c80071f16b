"""Camera noise models (EMCCD, sCMOS, ideal, and the signal-independent noise of seed 002) and the ADU <-> photon normalisation."""

from plexloc.camera.models import CAMERAS, EMCCD, SCMOS, AdditiveNoiseCamera, Camera, IdealCamera, camera_from_config

__all__ = ["CAMERAS", "EMCCD", "SCMOS", "AdditiveNoiseCamera", "Camera", "IdealCamera", "camera_from_config"]
