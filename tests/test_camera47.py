"""Session 47: an EMCCD's EM gain folded into e_per_adu (em_gain 1, e_per_adu 0.15 for a camera of gain 300 and
45 e-/ADU) with read_sigma kept at its value in e- after the gain register (74.4): the noise check read 0.02 and
advised a baseline 317 ADU above the camera's offset first, and an e_per_adu 8.6x its value, both wrong (the photons'
mean is right). It now says the gain may be folded in and that read_sigma must then be divided by it, and names the
read noise that fits (about 0) first; the baseline's advice follows it.
"""

from __future__ import annotations

import torch

from test_camaudit46 import _camera, _check

from plexloc.camera.models import EMCCD

TRUE = dict(qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4)
FOLDED = {"kind": "emccd", **TRUE, "em_gain": 1.0, "e_per_adu": 0.15}


def _movie(bg: float = 50.0) -> torch.Tensor:
    return EMCCD(**TRUE)(torch.full((16, 32, 32), bg), generator=torch.Generator().manual_seed(3))


def test_a_gain_folded_into_e_per_adu_is_named_with_the_read_noise_first(tmp_path):
    (w,) = _check(_movie(), _camera(tmp_path / "cam.yaml", FOLDED)).warnings
    assert "with em_gain 1 an EMCCD's EM gain may be folded into e_per_adu: read_sigma, in e- after the gain " \
           "register, is then divided by that gain too" in w
    fits = w.split("The settings that would fit, in ")[1]
    # (session 49: the emccd model at em_gain 1 has no excess noise, F^2 = 2 - 1/G, so the read noise that fits is no
    # longer 0; the folded gain's own warning follows once read_sigma is divided: the next test)
    assert fits.index("read_sigma about") < fits.index("baseline about")


def test_the_folded_gain_with_its_read_noise_divided_is_named_as_folded(tmp_path):
    # session 49: at em_gain 1 the model has no excess noise (F^2 = 1), the movie the EM register's (2): ratio 1.85,
    # named as the folded gain, whose noise with F^2 = 2 fits (0.93x); the photons' mean is right
    right = {**FOLDED, "read_sigma": 74.4 / 300.0}
    (w,) = _check(_movie(), _camera(tmp_path / "cam.yaml", right)).warnings
    assert "likely from an EM gain folded into e_per_adu (em_gain 1: the emccd model has then no excess noise" in w
    assert "the noise model is wrong" in w


def test_a_right_emccd_gets_no_folded_gain_remark(tmp_path):
    # a read_sigma 40x too high on a camera whose em_gain is set: no remark on a folded gain
    (w,) = _check(_movie(), _camera(tmp_path / "cam.yaml", {"kind": "emccd", **TRUE, "read_sigma": 3000.0})).warnings
    assert "folded" not in w and "read_sigma about" in w
