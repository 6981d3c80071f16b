"""Networks: the U-Net backbone and the channel-aware localizer (frame nets + union net + heads); model files.

:func:`load_model` reads a run folder or model file into ``(Localizer, training configuration dict, meta)``;
:func:`plexloc.infer.fit_movie` takes either the folder or the loaded model (with that configuration).
"""

from plexloc.nets.io import load_model
from plexloc.nets.localizer import Localizer, LocalizerSpec, Prediction
from plexloc.nets.unet import UNet

__all__ = ["Localizer", "LocalizerSpec", "Prediction", "UNet", "load_model"]
