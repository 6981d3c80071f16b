"""Networks: the U-Net backbone and the channel-aware localizer (frame nets + union net + heads)."""

from plexloc.nets.localizer import Localizer, LocalizerSpec, Prediction
from plexloc.nets.unet import UNet

__all__ = ["Localizer", "LocalizerSpec", "Prediction", "UNet"]
