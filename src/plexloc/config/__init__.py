"""Typed configuration models and their YAML reading/writing."""

from plexloc.config.io import load_config, save_config, validate_config
from plexloc.config.models import (
    AstigmaticPSFConfig,
    BackgroundConfig,
    CameraConfig,
    ChannelConfig,
    EMCCDConfig,
    EmitterConfig,
    GaussianPSFConfig,
    IdealCameraConfig,
    PhotonModelConfig,
    PSFConfig,
    SCMOSConfig,
    SimulationConfig,
    SplinePSFConfig,
)

__all__ = [
    "AstigmaticPSFConfig",
    "BackgroundConfig",
    "CameraConfig",
    "ChannelConfig",
    "EMCCDConfig",
    "EmitterConfig",
    "GaussianPSFConfig",
    "IdealCameraConfig",
    "PSFConfig",
    "PhotonModelConfig",
    "SCMOSConfig",
    "SimulationConfig",
    "SplinePSFConfig",
    "load_config",
    "save_config",
    "validate_config",
]
