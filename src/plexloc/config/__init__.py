"""Typed configuration models and their YAML reading/writing."""

from plexloc.config.io import CameraDefaultsWarning, load_camera_config, load_camera_configs, load_config, save_config, validate_config
from plexloc.config.models import (
    AdditiveNoiseCameraConfig,
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
from plexloc.config.training import ModelConfig, TrainConfig, TrainingConfig
from plexloc.config.transforms import read_transform

__all__ = [
    "CameraDefaultsWarning",
    "AdditiveNoiseCameraConfig",
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
    "ModelConfig",
    "TrainConfig",
    "TrainingConfig",
    "load_camera_config",
    "load_camera_configs",
    "load_config",
    "read_transform",
    "save_config",
    "validate_config",
]
