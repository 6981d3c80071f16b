"""Classical localization: spot detection (and, with the MLE issue, batched maximum-likelihood fits)."""

from plexloc.mle.detection import Candidates, detect, localize_centroid

__all__ = ["Candidates", "detect", "localize_centroid"]
