"""Review of the day's changes (c2ae2ab..): configuration error messages (1320624)."""

from __future__ import annotations

import pytest

from plexloc.config import SimulationConfig
from plexloc.config.io import validate_config
from plexloc.errors import InputError

CAM = {"kind": "ideal"}


@pytest.mark.parametrize("data, said", [
    ({"psf": {"kind": "gaussian", "sigma_nm": 130, "sigma-z": 5}, "camera": CAM}, "unknown field 'psf.sigma-z'"),
    ({"psf": {"kind": "gaussian", "sigma_nm": 130}, "camera": CAM, "frame-size": [8, 8]}, "unknown field 'frame-size'"),
    ({"channels": [{"psf": {"kind": "gaussian", "sigma_nm": 130, "sigma-z": 5}, "camera": CAM}]},
     "unknown field 'channels.0.psf.sigma-z'"),
])
def test_an_unknown_field_with_a_hyphen_is_named(data, said):
    """1320624 dropped every part of an error's location with a '-' in it as a pydantic type label
    ('constrained-float'): an unknown field the user wrote with a hyphen (sigma-z for sigma_z, frame-size) was then
    reported as "unknown field 'psf'" or "unknown field '<top level>'", its name gone."""
    with pytest.raises(InputError) as err:
        validate_config(data, SimulationConfig, source="c.yaml")
    assert said in str(err.value)


def test_a_number_or_pair_field_still_says_one_line():
    with pytest.raises(InputError) as err:
        validate_config({"psf": {"kind": "gaussian", "sigma_nm": -130}, "camera": CAM}, SimulationConfig, source="c.yaml")
    assert str(err.value) == "c.yaml: field 'psf.sigma_nm': Input should be greater than 0 (got -130)"
