"""Review of session 51's cross-section hints: a channel's field is pointed to each entry of the channels list
(``channels.N.transform``; 'channels.transform' is no path a file can take), a single channel's psf/camera also to
the top level, and the generic ``kind`` tag is pointed nowhere (``background.kind`` was told 'photon_model.kind')."""

from __future__ import annotations

import pytest

from test_train51 import config_dict

from plexloc.config import TrainConfig, validate_config
from plexloc.errors import InputError


def _message(where, key, value) -> str:
    d = config_dict()
    d[where] = {**d.get(where, {}), key: value}
    with pytest.raises(InputError) as err:
        validate_config(d, TrainConfig, source="train.yaml")
    return str(err.value)


@pytest.mark.parametrize("where, key, value", [("emitters", "transform", [[1, 0, 0], [0, 1, 0]]),
                                               ("training", "z_offset_nm", 100.0),
                                               ("emitters", "throughput", 1.0)])
def test_a_channel_field_is_pointed_to_the_entries_of_channels(where, key, value):
    msg = _message(where, key, value)
    assert f"did you mean channels.N.{key} (in each entry of channels)? (move it there)" in msg, msg
    assert f"channels.{key}?" not in msg, msg


def test_a_psf_in_the_wrong_section_is_pointed_to_the_top_level_or_a_channel():
    msg = _message("emitters", "psf", {"kind": "gaussian", "sigma_nm": 120})
    assert "did you mean psf at the top level (one channel) or channels.N.psf (in each entry of channels)?" in msg, msg


@pytest.mark.parametrize("where", ["background", "emitters"])
def test_kind_is_pointed_to_no_other_section(where):
    msg = _message(where, "kind", "uniform")
    assert "unknown field" in msg and "did you mean" not in msg and "photon_model.kind" not in msg, msg
