"""Session 49 review of the camera check: crowded frames of sharp spots (a PSF of about a pixel's sd or less: 160 nm
pixels, a 2x2-binned movie) stay in the 4-neighbour high-pass, and a right camera there must not be accused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexloc.camera import camera_from_config
from plexloc.camera.check import check_camera
from plexloc.camera.synthetic import spotted_light

EMCCD = {"kind": "emccd", "qe": 0.9, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 74.4,
         "spurious_charge": 0.002}
SCMOS = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.46, "baseline": 100.0, "read_sigma": 1.6}


def _raw(cfg, *, bg, density, sigma_px, px_nm, seed=0, n=32, size=96):
    light = spotted_light(np.random.default_rng(seed), n, (size, size), bg=bg, density=density, waist=0.35,
                          sigma_px=sigma_px, px_nm=px_nm)
    return camera_from_config(cfg)(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(1))


def _check(raw, cfg):
    cam = camera_from_config(cfg)
    return check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, source="movie.tif", warn=False)


@pytest.mark.parametrize("cfg", [EMCCD, SCMOS], ids=["emccd", "scmos"])
@pytest.mark.parametrize("sigma_px, px_nm, bg, density", [(0.8, 160.0, 30.0, 2.0), (0.8, 160.0, 1000.0, 2.0),
                                                          (0.5, 320.0, 30.0, 1.0)], ids=["160nm", "160nm-bright",
                                                                                         "binned"])
def test_a_right_camera_on_crowded_sharp_spots_is_not_accused(cfg, sigma_px, px_nm, bg, density):
    """Spots of sd 0.8 px (160 nm pixels) at 2 emitters/um^2 read 1.67-1.98x high-passed and were told (edbd232 said
    'too crowded'); 2x2-binned (sd 0.5 px, 320 nm) at 1 /um^2 read 2.3x. Too crowded to measure, not a wrong camera."""
    out = _check(_raw(cfg, bg=bg, density=density, sigma_px=sigma_px, px_nm=px_nm), cfg)
    assert out.warnings == []
    assert np.isnan(out.channels[0].noise_ratio) and "frames too crowded" in out.channels[0].noise_note


def test_a_wrong_gain_on_sparse_sharp_spots_is_still_told():
    wrong = {**SCMOS, "e_per_adu": 0.92}
    out = _check(_raw(SCMOS, bg=30.0, density=0.3, sigma_px=0.8, px_nm=160.0), wrong)
    assert len(out.warnings) == 1 and 1.7 < out.channels[0].noise_ratio < 2.6


def test_emccd_gains_swapped_on_crowded_sharp_spots_are_named():
    """Frames too crowded to measure: the swap (photons 44x high) is still named where the frames swapped back fit."""
    raw = _raw(EMCCD, bg=30.0, density=2.0, sigma_px=0.8, px_nm=160.0)
    (w,) = _check(raw, {**EMCCD, "em_gain": 45.0, "e_per_adu": 300.0}).warnings
    assert "likely from em_gain and e_per_adu swapped" in w


def test_a_low_em_gain_near_e_per_adu_is_not_named_a_swap():
    """An EMCCD at em_gain 10 and 8 e-/ADU given e_per_adu 16: the two exchanged (em_gain 16, e_per_adu 10) scale the
    photons by 1.56x only, and the noise 'fitted' (0.86x): the swap was named first and em_gain 16 advised."""
    true = {"kind": "emccd", "qe": 0.9, "baseline": 100.0, "spurious_charge": 0.002, "em_gain": 10.0, "e_per_adu": 8.0,
            "read_sigma": 20.0}
    light = spotted_light(np.random.default_rng(0), 24, (64, 64), bg=30.0, waist=0.35, density=0.5)
    raw = camera_from_config(true)(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(3))
    assert _check(raw, true).warnings == []
    (w,) = _check(raw, {**true, "e_per_adu": 16.0}).warnings
    assert "em_gain and e_per_adu swapped (" not in w and "em_gain about 16" not in w
    assert "an e_per_adu too high (photons scaled up about 2" in w and "the two swapped?" in w


def test_a_right_emccd_at_low_light_among_spots_is_not_told_too_low():
    """The SMLM Challenge EMCCD at 1.5 photons/px, 2 emitters/um^2: the spots lift the dimmer half over 2 photons/px and
    the plain ratio (1.5-2.7x) was swapped for the high-passed one, 0.72-0.75 (EM noise at a few photons/px reads low
    high-passed): told 'too low' in 4 of 4 seeds."""
    light = spotted_light(np.random.default_rng(0), 32, (96, 96), bg=1.5, density=2.0)
    raw = camera_from_config(EMCCD)(torch.tensor(light, dtype=torch.float32),
                                    generator=torch.Generator().manual_seed(11))
    out = _check(raw, EMCCD)
    assert out.warnings == [] and "frames too crowded" in out.channels[0].noise_note
