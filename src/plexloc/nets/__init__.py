"""Networks: the U-Net backbone and the channel-aware localizer (frame nets + union net + heads)."""

from plexloc.nets.localizer import Localizer, LocalizerSpec, Prediction, pad_to_multiple
from plexloc.nets.unet import UNet

__all__ = ["Localizer", "LocalizerSpec", "Prediction", "UNet", "pad_to_multiple"]
