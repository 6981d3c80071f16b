"""Training: the DECODE loss, the fixed validation set, the on-the-fly training loop and checkpoints."""

from plexloc.train.loss import LossParts, decode_loss
from plexloc.train.trainer import Trainer, make_spec, recalibrate_model
from plexloc.train.validation import ValidationSet, batch_photons

__all__ = ["LossParts", "Trainer", "ValidationSet", "batch_photons", "decode_loss", "make_spec", "recalibrate_model"]
