"""The camera check on cameras of coarse steps, and where the read noise dominates.

Coarse steps: an sCMOS of several e- per ADU (a high-well mode) gives differences of a few whole ADU between frames,
whose median absolute deviation jumps (a right camera read 1.21 at 1 e-/ADU and 1-2 photons/px, 1.47-1.78 at
4-7.5 e-/ADU: false warnings); the differences are now dithered by a uniform ADU and the noise is not measured below
half an ADU.

Read noise: the camera check names the read noise where it makes up much of the predicted pixel noise (an sCMOS at a photon
or two per pixel): a read noise written in ADU for e- was advised as a wrong e_per_adu, and a wrong e_per_adu was
advised at the shot-noise factor 1 / ratio, which overshoots where the read noise dominates."""

from __future__ import annotations

import math

import pytest
import torch

from plexloc.camera.check import READ_NOISE_SHARE, camera_settings, check_camera, read_noise_share
from plexloc.camera.models import EMCCD, SCMOS

E_PER_ADU, READ = 0.46, 1.6  # a typical sCMOS: 0.46 e-/ADU, 1.6 e- read noise


def _movie(background: float, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return SCMOS(qe=0.8, e_per_adu=E_PER_ADU, baseline=100.0, read_sigma=READ)(torch.full((32, 64, 64), background))


def _check(adu, **settings):
    cam = SCMOS(**{"qe": 0.8, "e_per_adu": E_PER_ADU, "baseline": 100.0, "read_sigma": READ, **settings})
    return check_camera([adu], [cam], dtype="uint16", adu=True, source="m.tif", warn=False)


def _number(text: str, before: str) -> float:
    head = text.split(before)[0].split()
    return float(head[-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_read_noise_in_adu_is_named_with_the_value_that_fits(seed):
    adu = _movie(2.0, seed)
    check = _check(adu, read_sigma=READ / E_PER_ADU)  # 3.48: the camera's read noise in ADU, given as e-
    ch = check.channels[0]
    assert ch.noise_ratio < 0.5
    assert ch.read_share > 0.8
    (w,) = check.warnings
    assert "likely from a read_sigma set too high" in w
    assert "read noise is" in w and "a read noise in ADU times e_per_adu" in w
    fit = _number(ch.likely.split("read_sigma about ")[1], "e- if the gain and baseline are right")
    assert fit == pytest.approx(READ, rel=0.12)


def test_a_wrong_e_per_adu_under_dominant_read_noise_is_advised_near_the_truth():
    adu = _movie(2.0)
    ch = _check(adu, e_per_adu=E_PER_ADU / 2).channels[0]
    assert ch.read_share > READ_NOISE_SHARE
    advised = _number(ch.likely.split("e_per_adu about ")[1], "e-/ADU")
    # 1 / ratio would give 0.23 / 0.31 = 0.74 e-/ADU, 1.6x the truth
    assert advised == pytest.approx(E_PER_ADU, rel=0.1)
    assert ch.gain_factor == pytest.approx(2.0, rel=0.1)
    (w,) = _check(adu, e_per_adu=E_PER_ADU / 2).warnings
    scale = float(w.split("photons scaled down about ")[1].split("x")[0])
    assert scale == pytest.approx(2.0, rel=0.1)  # 1 / ratio would say 3.2x


def test_right_camera_quiet_and_shot_noise_advice_unchanged():
    adu = _movie(2.0)
    assert _check(adu).warnings == []
    # bright background: the read noise is a small share, the advice stays 1 / ratio and read_sigma is not named
    bright = _movie(200.0)
    ch = _check(bright, e_per_adu=E_PER_ADU * 3).channels[0]
    assert ch.read_share < READ_NOISE_SHARE
    assert "read_sigma about" not in ch.likely
    assert ch.gain_factor == pytest.approx(1 / ch.noise_ratio)
    assert "read_sigma set too" not in _check(bright, e_per_adu=E_PER_ADU * 3).warnings[0]


def test_read_noise_share_closed_form():
    cam = SCMOS(qe=0.8, e_per_adu=0.5, baseline=100.0, read_sigma=1.5)
    level = 3.0
    total = (0.8 * level + 1.5**2 + 0.5**2 / 12) / 0.8**2
    assert read_noise_share(cam, level) == pytest.approx((1.5**2 / 0.8**2) / total, rel=1e-6)
    em = EMCCD(qe=0.9, em_gain=300.0, e_per_adu=45.0, read_sigma=74.4, spurious_charge=0.0)
    total = (2 * 0.9 * level + (74.4 / 300) ** 2 + (45 / 300) ** 2 / 12) / 0.9**2
    assert read_noise_share(em, level) == pytest.approx(((74.4 / 300) ** 2 / 0.9**2) / total, rel=1e-6)
    assert math.isnan(read_noise_share(cam, math.nan))


def test_settings_name_the_read_noise_in_electrons():
    assert "read_sigma 1.5 e-" in camera_settings(SCMOS(read_sigma=1.5))
    assert "read_sigma per-pixel map" in camera_settings(SCMOS(read_sigma=torch.full((4, 4), 1.5),
                                                               e_per_adu=torch.full((4, 4), 0.5),
                                                               baseline=torch.full((4, 4), 100.0)))


@pytest.mark.parametrize("e_per_adu", [0.5, 1.0, 2.0, 4.0, 7.5])
@pytest.mark.parametrize("background", [1.0, 5.0, 20.0, 200.0])
def test_a_right_camera_of_coarse_steps_is_measured_near_1_or_not_at_all(e_per_adu, background):
    torch.manual_seed(1)
    cam = SCMOS(qe=0.8, e_per_adu=e_per_adu, baseline=100.0, read_sigma=1.6)
    adu = cam(torch.full((32, 64, 64), background))
    check = check_camera([adu], [cam], dtype="uint16", adu=True, source="m.tif", warn=False)
    ch = check.channels[0]
    assert check.warnings == []
    if math.isnan(ch.noise_ratio):
        assert "under the 0.5 ADU it is measured from" in ch.noise_note
        predicted_adu = math.sqrt(float(cam.noise_variance_photons(torch.tensor(background)))) * 0.8 / e_per_adu
        assert predicted_adu < 0.6
    else:
        assert 0.9 <= ch.noise_ratio <= 1.12


def test_a_gain_16x_off_on_a_fine_camera_is_still_measured():
    """The half-ADU gate looks at the movie's noise in ADU, not at the settings' prediction: an e_per_adu set 16x too
    high predicts a noise of a fraction of an ADU, but the movie's is measured and the warning comes."""
    adu = _movie(20.0)
    ch = _check(adu, e_per_adu=E_PER_ADU * 16).channels[0]
    assert ch.noise_ratio > 5 and ch.likely


def test_frames_without_noise_still_read_0():
    frames = torch.full((8, 32, 32), 105.0)
    ch = _check(frames).channels[0]
    assert ch.noise_ratio == 0.0 and _check(frames).warnings == []


def test_an_emccd_camera_given_an_scmos_map_says_only_scmos_takes_maps(tmp_path):
    """A calibrate-camera sCMOS YAML hand-edited to kind emccd: the map path was refused as "units are not written in
    the value", which sent the user looking for a unit."""
    from plexloc.config.io import load_camera_config
    from plexloc.errors import InputError

    np_path = tmp_path / "sc_baseline.npy"
    import numpy as np

    np.save(np_path, np.full((4, 4), 100.0))
    cam = tmp_path / "cam.yaml"
    cam.write_text("kind: emccd\nqe: 0.9\nspurious_charge: 0.002\nem_gain: 300\ne_per_adu: 45\n"
                   "baseline: sc_baseline.npy\nread_sigma: 74.4\n")
    with pytest.raises(InputError, match=r"cam\.yaml.*baseline.*not a per-pixel map: only kind scmos takes maps"):
        load_camera_config(cam)


@pytest.mark.parametrize("setting, first", [({"baseline": 200.0}, "baseline"), ({"em_gain": 30.0}, "gain")])
def test_a_baseline_error_is_told_first_where_the_gain_would_need_an_impossible_em_gain(setting, first):
    """An EMCCD (SMLM Challenge: em_gain 300, 45 e-/ADU, offset 100 ADU) at 22 photons/px with its baseline set 100 ADU
    high read 8x; the warning led with "an em_gain set too low" and advised em_gain 2399 before the right baseline.
    An em_gain of 30 for 300 (9.3x) still leads with the gain, advised 278."""
    torch.manual_seed(0)
    adu = EMCCD()(torch.full((32, 64, 64), 22.0))
    check = check_camera([adu], [EMCCD(**setting)], dtype="uint16", adu=True, source="m.tif", warn=False)
    ch = check.channels[0]
    (w,) = check.warnings
    cause = w.split("likely from ")[1]
    if first == "baseline":
        assert cause.startswith("a baseline above the camera's offset")
        assert "which no EMCCD has" in cause
        assert ch.likely.startswith("baseline about 10")  # 103 ADU for the camera's 100
        assert float(ch.likely.split("baseline about ")[1].split(" ADU")[0]) == pytest.approx(100, abs=6)
    else:
        assert cause.startswith("an em_gain set too low")
        assert ch.likely.startswith("e_per_adu about")
        assert ch.em_gain_fit == pytest.approx(300, rel=0.1)


def test_an_e_per_adu_typed_10x_is_told_first_even_where_the_em_gain_would_be_impossible():
    """e_per_adu 450 for 45: only the em_gain explanation needs an impossible gain (3015); the e_per_adu one (44.8)
    is the likely one, and no baseline can be named, so the baseline must not come first (it did, after d89ab1b)."""
    torch.manual_seed(0)
    adu = EMCCD()(torch.full((32, 64, 64), 22.0))
    check = check_camera([adu], [EMCCD(e_per_adu=450.0)], dtype="uint16", adu=True, source="m.tif", warn=False)
    (w,) = check.warnings
    cause = w.split("likely from ")[1]
    assert cause.startswith("an e_per_adu too high") and "which no EMCCD has" in cause
    assert "baseline about" not in check.channels[0].likely
    advised = float(check.channels[0].likely.split("e_per_adu about ")[1].split(" e-/ADU")[0])
    assert advised == pytest.approx(45.0, rel=0.1)


def test_the_coarse_step_note_never_says_a_noise_of_0_adu():
    """A noise well under one ADU read "a pixel noise of 0 ADU" once the rounding and the dither were taken out."""
    torch.manual_seed(1)
    cam = SCMOS(qe=0.8, e_per_adu=7.5, baseline=100.0, read_sigma=1.6)
    ch = check_camera([cam(torch.full((32, 64, 64), 1.0))], [cam], dtype="uint16", adu=True, warn=False).channels[0]
    assert math.isnan(ch.noise_ratio)
    assert "a pixel noise no larger than the rounding to whole ADU, under the 0.5 ADU it is measured from" in ch.noise_note
