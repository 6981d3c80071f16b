"""The physics simulator: emitters and blinking, background, channel geometry and photon models,
rendering through each channel's PSF and camera, and the on-the-fly training batch generator."""

from plexloc.simulation.background import sample_background, smooth_field
from plexloc.simulation.emitters import Emitters, sample_emitters
from plexloc.simulation.generator import Batch, BatchGenerator
from plexloc.simulation.geometry import apply_transform, shift_transform
from plexloc.simulation.simulator import Channel, MovieSimulation, Simulator

__all__ = [
    "Batch",
    "BatchGenerator",
    "Channel",
    "Emitters",
    "MovieSimulation",
    "Simulator",
    "apply_transform",
    "sample_background",
    "sample_emitters",
    "shift_transform",
    "smooth_field",
]
