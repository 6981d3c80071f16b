"""Session 49: the camera check on crowded frames, an EMCCD's em_gain and e_per_adu swapped, the EM register's
excess-noise factor at low gain, the noise check's memory, one source of the camera numbers' limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexloc.camera import camera_from_config
from plexloc.camera.check import check_camera, noise_measure
from plexloc.camera.synthetic import spotted_light

EMCCD_CAM = {"kind": "emccd", "qe": 0.9, "em_gain": 200.0, "e_per_adu": 20.0, "baseline": 100.0, "read_sigma": 50.0,
             "spurious_charge": 0.002}
SCMOS_CAM = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}


def _movie(cfg, *, bg, density, waist=0.35, n=32, size=96, seed=0):
    light = spotted_light(np.random.default_rng(seed), n, (size, size), bg=bg, density=density, waist=waist)
    return camera_from_config(cfg)(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(1))


def _check(raw, cfg):
    cam = camera_from_config(cfg)
    return check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, source="movie.tif", warn=False)


@pytest.mark.parametrize("cfg", [EMCCD_CAM, SCMOS_CAM], ids=["emccd", "scmos"])
def test_a_right_camera_on_a_crowded_bright_movie_is_not_accused(cfg):
    """1000 photons/px under a beam, 2 emitters/um^2: the dimmer pixels are ranked by the beam, the old crowding guard
    saw nothing and the right camera read 2.6 (EMCCD) and 3.1 (sCMOS): told. The high-passed differences read 1.1."""
    out = _check(_movie(cfg, bg=1000.0, density=2.0), cfg)
    assert out.warnings == []
    assert 0.9 < out.channels[0].noise_ratio < 1.25


def test_a_wrong_gain_on_a_crowded_bright_movie_is_told_by_its_factor():
    # e_per_adu 2x on the sCMOS: the plain ratio read 6.3 (spots and gain), the high-passed one the gain's 2.3
    wrong = {**SCMOS_CAM, "e_per_adu": 1.0}
    out = _check(_movie(SCMOS_CAM, bg=1000.0, density=2.0), wrong)
    assert len(out.warnings) == 1 and 1.8 < out.channels[0].noise_ratio < 2.6


def test_frames_too_crowded_even_for_the_high_pass_say_so():
    cam = camera_from_config(SCMOS_CAM)
    ratio, note, _ = noise_measure(cam.to_photons(_movie(SCMOS_CAM, bg=30.0, density=5.0)), cam)
    assert np.isnan(ratio) and note.startswith("frames too crowded: the dimmer pixels change ")
    out = _check(_movie(SCMOS_CAM, bg=30.0, density=5.0), SCMOS_CAM)
    assert out.warnings == [] and out.notes and "frames too crowded" in out.notes[0]


@pytest.mark.parametrize("bg, density", [(2.0, 0.2), (10.0, 0.2), (30.0, 5.0)])
def test_emccd_gains_swapped_name_the_swap_with_both_values(bg, density):
    """The SMLM Challenge EMCCD (gain 300, 45 e-/ADU) given as em_gain 45, e_per_adu 300: photons 44x high. At 2
    photons/px it went untold (looked crowded) or was advised as an e_per_adu of about 10; at 5 emitters/um^2 the
    frames swapped back are too crowded to measure, and their high-passed ratio confirms the swap."""
    true = {**EMCCD_CAM, "em_gain": 300.0, "e_per_adu": 45.0, "read_sigma": 60.0}
    raw = _movie(true, bg=bg, density=density, n=48, size=112)
    (w,) = _check(raw, {**true, "em_gain": 45.0, "e_per_adu": 300.0}).warnings
    assert "likely from em_gain and e_per_adu swapped" in w
    fits = w.split("The settings that would fit: ")[1]
    assert fits.startswith("em_gain about 300 and e_per_adu about 45 e-/ADU (the two swapped back")


def test_the_excess_noise_factor_follows_the_em_gain():
    from plexloc.camera.models import EMCCD, excess_noise_factor

    assert excess_noise_factor(1.0) == 1.0 and excess_noise_factor(10.0) == pytest.approx(1.9)
    assert excess_noise_factor(300.0) == 2.0
    x = torch.full((100_000,), 20.0)
    for g in (1.0, 2.0, 10.0):
        cam = EMCCD(em_gain=g, e_per_adu=0.05, read_sigma=0.0, spurious_charge=0.0, baseline=1000.0)
        ph = cam.to_photons(cam(x, generator=torch.Generator().manual_seed(0)))
        want = float(cam.noise_variance_photons(x)[0])
        assert want == pytest.approx(20.0 * 0.9 * (2.0 - 1.0 / g) / 0.81, rel=1e-4)  # (+ rounding, 3e-4)
        assert float(ph.var()) == pytest.approx(want, rel=0.03) and float(ph.mean()) == pytest.approx(20.0, rel=0.01)


def test_an_emccd_without_em_gain_fits_the_emccd_model_at_gain_1():
    # the conventional amplifier (em_gain 1): no excess noise, and the emccd model now has none there
    cfg = {**EMCCD_CAM, "em_gain": 1.0, "e_per_adu": 4.0, "read_sigma": 8.0}
    amp = {k: v for k, v in cfg.items() if k != "em_gain"} | {"kind": "scmos"}  # Poisson and read noise alone
    out = _check(_movie(amp, bg=50.0, density=0.2, waist=None), cfg)  # (it read 0.7 and was told before)
    assert out.warnings == [] and 0.85 < out.channels[0].noise_ratio < 1.15


def test_the_noise_check_in_chunks_gives_the_same_ratio(monkeypatch):
    import plexloc.camera.check as check

    cam = camera_from_config(SCMOS_CAM)
    ph = cam.to_photons(_movie(SCMOS_CAM, bg=20.0, density=0.5, n=12, size=64))
    whole = noise_measure(ph, cam)
    monkeypatch.setattr(check, "NOISE_CHUNK_PX", 64 * 64 * 3)  # 3 pairs at a time
    assert noise_measure(ph, cam) == whole


def test_camera_number_limits_come_from_the_config_models():
    import plexloc.camera.mapfit as mapfit
    import plexloc.camera.models as models
    from plexloc.errors import InputError

    assert not hasattr(models, "_NUMBER_RANGES") and not hasattr(mapfit, "_robust_sd")
    assert models._number_range("em_gain") == (1.0, True, None)
    assert models._number_range("qe") == (0.0, False, 1.0)
    with pytest.raises(InputError, match=r"EMCCD em_gain .* must be a number >= 1, got 0.5"):
        models.EMCCD(em_gain=0.5)


def test_calibrate_camera_at_a_low_em_gain_takes_its_excess_noise():
    """Flats of an EMCCD at em_gain 5 (drawn here in numpy with the register's variance 2 - 1/G = 1.8 times the
    signal's): e_per_adu read 2/1.8 = 11 % high when the excess noise was taken as 2 at any gain."""
    from plexloc.camera.calibration import calibrate_camera, stack_stats

    g, e, qe, sc, rs = 5.0, 2.0, 0.9, 0.002, 10.0

    def frames(level, n, seed):
        rng = np.random.default_rng(seed)
        k = rng.poisson(qe * level + sc, (n, 32, 32)).astype(np.float64)
        out = g * k + np.sqrt(1 - 1 / g) * (rng.gamma(np.maximum(k, 1e-9), g) * (k > 0) - g * k)
        return np.round((out + rs * rng.standard_normal(k.shape)) / e + 100.0).astype(np.uint16)

    dark = stack_stats([frames(0.0, 200, 5)])
    flats = [stack_stats([frames(level, 150, 6 + i)]) for i, level in enumerate((20.0, 80.0, 300.0))]
    c = calibrate_camera(dark, kind="emccd", flats=flats, em_gain=g, qe=qe, spurious_charge=sc).config
    assert abs(c["e_per_adu"] / e - 1) < 0.04


def test_an_emccd_baseline_above_the_offset_at_low_light_is_told():
    """The SMLM Challenge EMCCD's baseline 50 ADU high, 2 photons/px, 2 emitters/um^2: the dimmer half read a signal
    of 0 photons/px (not measured there) and half of the pixels were still above the baseline: nothing was told."""
    true = {**EMCCD_CAM, "em_gain": 300.0, "e_per_adu": 45.0, "read_sigma": 74.4}
    raw = _movie(true, bg=2.0, density=2.0, seed=3)
    (w,) = _check(raw, {**true, "baseline": 150.0}).warnings
    assert "likely from a baseline above the camera's offset (the dimmer half of the pixels reads 0 photons/px" in w


def test_a_binned_movie_under_flat_unbinned_maps_is_named_by_its_read_noise():
    """A 2x2-binned movie (four pixels summed, 2 photons/px each) under nearly flat maps measured without binning: the
    offsets' correlation cannot tell (camwalk48: 26 of 90 such movies untold); its read noise is 2x the maps'."""
    from plexloc.camera.models import SCMOS

    rng, h = np.random.default_rng(0), 64

    def cam(n):
        return SCMOS(qe=0.8, e_per_adu=torch.full((n, n), 0.46), read_sigma=torch.full((n, n), 1.6),
                     baseline=torch.tensor(100 + rng.normal(0, 0.1, (n, n)), dtype=torch.float32))

    light = spotted_light(rng, 32, (2 * h, 2 * h), bg=2.0, density=0.3, px_nm=50.0)
    raw = cam(2 * h)(torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(1))
    binned = raw.reshape(32, h, 2, h, 2).sum(dim=(2, 4)) - 300.0
    maps = cam(h)
    (w,) = check_camera([maps.to_photons(binned)], [maps], dtype=np.uint16, warn=False).warnings
    assert "the read_sigma map about 2." in w and "(a movie binned 2x2 under maps measured without binning" in w
