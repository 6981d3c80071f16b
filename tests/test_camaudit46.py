"""Session 46, helper "camaudit": camera settings walked as an imaging facility would (``plexloc calibrate-camera``,
``plexloc info``, ``plexloc fit --method mle``) with the right camera and typical wrong ones.

- A baseline far above the camera's offset (an EMCCD's settings, offset 300 ADU, on an sCMOS movie whose pixels sit
  at 100-150 ADU) makes every dim pixel's photons negative: the noise check saw a signal of 0 photons/px and only noted
  that it could not measure there, and ``plexloc fit`` gave its photons 99.8 % low with no word about the camera (only
  a PSF-shape warning that blamed the pixel size). The camera check now says where the dimmest pixels sit against the
  baseline, naming the file, the field, its value and the baseline that would fit (:func:`plexloc.camera.check.
  dim_offset`), where the noise warning has not said it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from plexloc.camera import camera_from_config
from plexloc.camera.check import check_camera
from plexloc.camera.models import EMCCD, SCMOS
from plexloc.config import load_camera_config

# the sCMOS that recorded the movie: offset 100 ADU, 0.45 e-/ADU; 30 photons/px of background (153 ADU)
SCMOS_TRUE = dict(qe=0.8, spurious_charge=0.0, e_per_adu=0.45, baseline=100.0, read_sigma=1.4)
EMCCD_FILE = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 200.0, "e_per_adu": 12.0,
              "baseline": 300.0, "read_sigma": 60.0}


def _scmos_movie(bg: float = 30.0, n: int = 16, shape=(32, 32), seed: int = 0) -> torch.Tensor:
    return SCMOS(**SCMOS_TRUE)(torch.full((n, *shape), bg), generator=torch.Generator().manual_seed(seed))


def _camera(path: Path, fields: dict):
    path.write_text(yaml.safe_dump(fields))
    return camera_from_config(load_camera_config(path))


def _check(adu: torch.Tensor, cam):
    return check_camera([adu], [cam], dtype="uint16", adu=True, source="movie.tif", warn=False)


def test_an_emccds_settings_on_an_scmos_movie_name_the_baseline_that_fits(tmp_path):
    check = _check(_scmos_movie(), _camera(tmp_path / "camera.yaml", EMCCD_FILE))
    (w,) = [w for w in check.warnings if "baseline" in w]
    assert "movie.tif" in w and str(tmp_path / "camera.yaml") in w
    assert "below the camera's baseline" in w and "takes photons away" in w
    fit = float(w.split("baseline at most about ")[1].split()[0])
    assert 130 <= fit <= 160  # the dim pixels: 100 ADU offset + 53 ADU of background
    assert "(now 300)" in w
    ch = check.channels[0]
    assert ch.dim_photons < -5  # the photons this camera gives them: negative
    assert -170 < ch.dim_adu < -140


def test_a_baseline_far_above_an_emccds_offset_is_told(tmp_path):
    """The EMCCD's own movie (offset 300 ADU, 3 photons/px: 45 ADU above it) read with a baseline of 600."""
    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    adu = EMCCD(**true)(torch.full((16, 32, 32), 3.0), generator=torch.Generator().manual_seed(1))
    (w,) = _check(adu, _camera(tmp_path / "cam.yaml", {**EMCCD_FILE, "baseline": 600.0})).warnings
    fit = float(w.split("baseline at most about ")[1].split()[0])
    assert 300 <= fit <= 360 and "(now 600)" in w


@pytest.mark.parametrize("bg", [0.0, 0.5, 30.0])
def test_a_right_camera_is_not_told_about_its_baseline(tmp_path, bg):
    """Dark or dim frames (0 and 0.5 photons/px), on the sCMOS and on the EMCCD: no baseline warning."""
    adu = _scmos_movie(bg, n=32, seed=2)
    check = _check(adu, _camera(tmp_path / "scmos.yaml", {"kind": "scmos", **SCMOS_TRUE}))
    assert not check.baseline_warnings
    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    adu = EMCCD(**true)(torch.full((32, 32, 32), bg), generator=torch.Generator().manual_seed(3))
    check = _check(adu, _camera(tmp_path / "emccd.yaml", EMCCD_FILE))
    assert not check.baseline_warnings
    assert check.channels[0].dim_adu > -check.channels[0].dim_margin_adu


@pytest.mark.parametrize("above", [80.0, 200.0])
def test_an_offset_map_above_the_movies_offset_is_advised_first(tmp_path, above):
    """A per-pixel offset map 80 or 200 ADU above the movie's offset (another readout mode's dark frames): the noise
    warning named a read_sigma about 5.1 e- first (for 1.4), which would leave the photons negative; the dim pixels
    below the baseline put the baseline first, with the map's correction (80 and 200 ADU lower)."""
    np.save(tmp_path / "offset.npy", np.full((32, 32), 100.0 + above, dtype=np.float32))
    cam = _camera(tmp_path / "camera.yaml", {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0,
                                              "e_per_adu": 0.45, "baseline": "offset.npy", "read_sigma": 1.4})
    (w,) = _check(_scmos_movie(), cam).warnings
    assert "likely from a baseline above the camera's offset (half of the pixels sit " in w
    first = w.split("The settings that would fit, in ")[1].split(": ", 1)[1].split(";")[0]
    assert first.startswith("the baseline map about ") and first.endswith("ADU lower if the gain is right")
    assert abs(float(first.split("about ")[1].split()[0]) - above) <= 0.05 * above


def test_a_noise_warning_that_names_the_baseline_is_not_repeated(tmp_path):
    """Baseline 200 for 100 at 30 photons/px: the dim pixels still sit above it; the noise warning tells it alone."""
    check = _check(_scmos_movie(), _camera(tmp_path / "camera.yaml", {"kind": "scmos", **SCMOS_TRUE,
                                                                       "baseline": 200.0}))
    assert len(check.warnings) == 1 and not check.baseline_warnings


def test_dim_offset_of_a_camera_without_baseline_is_nan():
    from plexloc.camera.check import dim_offset
    from plexloc.camera.models import IdealCamera

    assert all(np.isnan(dim_offset(torch.ones(4, 8, 8), IdealCamera())))


def test_plexloc_fit_says_it_before_fitting(tmp_path, monkeypatch, capsys):
    """``plexloc fit --method mle`` of an sCMOS movie with an EMCCD's camera file: the warning names the file."""
    from plexloc.cli.main import main

    adu = _scmos_movie(n=8)
    tifffile.imwrite(tmp_path / "movie.tif", adu.numpy().astype(np.uint16))
    (tmp_path / "camera.yaml").write_text(yaml.safe_dump(EMCCD_FILE))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"px_size_nm": 100.0, "frame_size": [32, 32],
                                                          "psf": {"kind": "gaussian", "sigma_nm": 130.0},
                                                          "camera": "camera.yaml"}))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["fit", "movie.tif", "--method", "mle", "--config", "config.yaml", "--out", "locs.csv"]) == 0
    (w,) = [line for line in capsys.readouterr().err.splitlines() if "below the camera's baseline" in line]
    assert w.startswith("plexloc fit: warning: movie.tif: ")
    assert "in camera.yaml: baseline at most about" in w and "(now 300)" in w


# --- calibrate-camera: dark frames that light reached -------------------------------------------------------------------

def _stack(cam, photons, n: int, seed: int, shape=(32, 32)) -> np.ndarray:
    light = torch.as_tensor(photons, dtype=torch.float32).expand(n, *shape).clone()
    return cam(light, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.uint16)


def _write_stack(path: Path, frames: np.ndarray) -> Path:
    tifffile.imwrite(path, frames)
    return path


def _calibrate_cli(tmp_path, capsys, *args):
    from plexloc.cli.main import main

    code = main(["calibrate-camera", *map(str, args), "--out", str(tmp_path / "camera.yaml")])
    return code, capsys.readouterr()


def test_a_flat_given_as_dark_is_warned_about_naming_the_file(tmp_path, capsys):
    """An sCMOS's flat (50 photons/px) given as --dark: the read noise read 6.4 e- (offset 89 ADU high) without a word;
    the movie's photons then came out 28 % low. Now a warning names the dark stack and says light reached it."""
    cam = SCMOS(**SCMOS_TRUE)
    dark = _write_stack(tmp_path / "dark.tif", _stack(cam, 50.0, 40, 1))
    flats = [_write_stack(tmp_path / f"flat{k}.tif", _stack(cam, lvl, 40, 2 + k)) for k, lvl in enumerate((600.0, 1500.0))]
    code, out = _calibrate_cli(tmp_path, capsys, "--dark", dark, "--flat", *flats, "--kind", "scmos")
    assert code == 0
    (w,) = [line for line in out.err.splitlines() if "warning" in line]
    assert f"--dark {dark}" in w and "did light reach the dark frames" in w and "above any sCMOS's" in w
    read_e = float(w.split("the read noise measured is ")[1].split()[0])
    assert 5.5 < read_e < 7.5
    assert "did light reach the dark frames" in (tmp_path / "camera.yaml").read_text()  # kept with the notes


def test_a_right_scmos_dark_is_not_warned_about(tmp_path, capsys):
    cam = SCMOS(**{**SCMOS_TRUE, "read_sigma": 3.0})  # a noisy sCMOS still reads within its kind's range
    dark = _write_stack(tmp_path / "dark.tif", _stack(cam, 0.0, 40, 1))
    flats = [_write_stack(tmp_path / f"flat{k}.tif", _stack(cam, lvl, 40, 2 + k)) for k, lvl in enumerate((100.0, 600.0))]
    code, out = _calibrate_cli(tmp_path, capsys, "--dark", dark, "--flat", *flats, "--kind", "scmos")
    assert code == 0 and "warning" not in out.err


def test_a_dim_flat_refused_against_a_lit_dark_names_the_dark(tmp_path):
    """A dark of 40 photons/px (a light leak) refused the 50 photons/px flat as 'too dim; record it brighter' alone: the
    brighter flats' gain puts the dark's noise at 5.8 e-, and the error now says light reached the dark frames."""
    from plexloc.camera.calibration import calibrate_camera, stack_stats
    from plexloc.errors import InputError

    cam = SCMOS(**SCMOS_TRUE)
    dark = stack_stats([_stack(cam, 40.0, 40, 1)], source="dark.tif")
    flats = [stack_stats([_stack(cam, lvl, 40, 2 + k)], source=f"flat{lvl:g}.tif")
             for k, lvl in enumerate((50.0, 400.0, 1500.0))]
    with pytest.raises(InputError, match="too dim to measure the gain") as err:
        calibrate_camera(dark, kind="scmos", flats=flats)
    text = str(err.value)
    assert "flat50.tif" in text and "light reached the dark frames (--dark dark.tif)" in text
    assert 4.5 < float(text.split("their noise is ")[1].split()[0]) < 7.5


def test_a_dim_flat_against_a_clean_dark_is_refused_as_before():
    from plexloc.camera.calibration import calibrate_camera, stack_stats
    from plexloc.errors import InputError

    cam = SCMOS(**SCMOS_TRUE)
    dark = stack_stats([_stack(cam, 0.0, 40, 1)], source="dark.tif")
    flats = [stack_stats([_stack(cam, lvl, 40, 2 + k)], source=f"flat{lvl:g}.tif") for k, lvl in enumerate((0.3, 400.0))]
    with pytest.raises(InputError, match="too dim to measure the gain; record it brighter") as err:
        calibrate_camera(dark, kind="scmos", flats=flats)
    assert "light reached" not in str(err.value)


def test_an_emccd_dark_with_light_names_the_light_and_the_dark(tmp_path):
    """An EMCCD's dark of 2 photons/px: the warning asked only whether the frames were an sCMOS's or the gain lower."""
    from plexloc.camera.calibration import calibrate_camera, stack_stats

    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    cam = EMCCD(**true)
    dark = stack_stats([_stack(cam, 2.0, 60, 1)], source="dark.tif")
    flats = [stack_stats([_stack(cam, lvl, 60, 2 + k)], source=f"flat{k}.tif") for k, lvl in enumerate((20.0, 80.0))]
    cal = calibrate_camera(dark, kind="emccd", flats=flats, em_gain=200.0)
    (w,) = cal.warnings
    assert "did light reach the dark frames" in w and "--dark dark.tif" in w


# --- the camera check: an EMCCD's frames read with sCMOS settings --------------------------------------------------------

def test_an_emccd_movie_read_as_an_scmos_is_asked_about(tmp_path):
    """sCMOS settings that give an EMCCD movie's photons right (e_per_adu 12 / 200 = 0.06 photons-folded) read a noise
    ratio of about 2 (the excess noise) and were advised an e_per_adu of half, which would halve the photons: the
    warning now asks whether the frames are an EMCCD's."""
    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    adu = EMCCD(**true)(torch.full((32, 32, 32), 30.0), generator=torch.Generator().manual_seed(4))
    cam = _camera(tmp_path / "camera.yaml", {"kind": "scmos", "qe": 0.9, "spurious_charge": 0.0, "e_per_adu": 0.06,
                                              "baseline": 300.0, "read_sigma": 0.3})
    check = _check(adu, cam)
    (w,) = check.warnings
    assert 1.7 < check.channels[0].noise_ratio < 2.3
    assert "an EMCCD's frames read as an sCMOS's" in w and "kind: emccd" in w


def test_an_scmos_e_per_adu_off_by_4_is_not_asked_about_an_emccd(tmp_path):
    adu = _scmos_movie(n=32)
    (w,) = _check(adu, _camera(tmp_path / "camera.yaml", {"kind": "scmos", **SCMOS_TRUE, "e_per_adu": 1.8})).warnings
    assert "EMCCD" not in w


# --- the camera check: a saturation_adu the movie's pixels exceed ---------------------------------------------------------

def _bright_emccd_movie(saturation=None) -> torch.Tensor:
    """The EMCCD at 30 photons/px with a bright spot per frame (peak about 7,000 ADU)."""
    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    light = torch.full((16, 32, 32), 30.0)
    light[:, 14:18, 14:18] = 500.0
    return EMCCD(**true, saturation_adu=saturation)(light, generator=torch.Generator().manual_seed(6))


def test_a_12_bit_saturation_on_a_16_bit_movie_is_named_as_wrong(tmp_path):
    """saturation_adu 4095 on a movie whose pixels reach 7,000: the fit warned that they 'were clipped ... lower the EM
    gain' and flagged every bright spot as saturated; now it says the camera does not clip there, naming the file."""
    check = _check(_bright_emccd_movie(), _camera(tmp_path / "camera.yaml", {**EMCCD_FILE, "saturation_adu": 4095}))
    (w,) = check.warnings
    assert "lie above the camera's saturation_adu, 4095 ADU (saturation_adu in " in w and "camera.yaml" in w
    assert "does not clip there" in w and "Lower the EM gain" not in w
    assert check.channels[0].above_level == 16 * 16


def test_a_12_bit_camera_that_clips_at_its_saturation_is_told_as_before(tmp_path):
    adu = _bright_emccd_movie(saturation=4095)
    (w,) = _check(adu, _camera(tmp_path / "camera.yaml", {**EMCCD_FILE, "saturation_adu": 4095})).warnings
    assert "reach 4095 ADU, the camera's saturation_adu: they were clipped" in w


# --- the camera check: an e_per_adu written in another unit -------------------------------------------------------------

@pytest.mark.parametrize("written, unit", [(12.0 / 200.0 / 0.9, "photons per ADU"), (1.0 / 12.0, "ADU per e-")])
def test_an_e_per_adu_of_another_unit_gets_the_value_that_fits(tmp_path, written, unit):
    """An EMCCD YAML whose e_per_adu is photons per ADU (0.0667 for 12 e-/ADU at gain 200, qe 0.9) or ADU per e-
    (1/12): the photons came out 180-2,400x too few and the fit found nothing; the warning gave no value that fits."""
    true = {k: v for k, v in EMCCD_FILE.items() if k != "kind"}
    adu = EMCCD(**true)(torch.full((32, 32, 32), 30.0), generator=torch.Generator().manual_seed(7))
    (w,) = _check(adu, _camera(tmp_path / "camera.yaml", {**EMCCD_FILE, "e_per_adu": written})).warnings
    fit = w.split("The settings that would fit, in ")[1]
    assert f"e_per_adu about 12 e-/ADU (now {written:g};" in fit and f"written as {unit}?" in fit


@pytest.mark.parametrize("spread", [3.0, 10.0])
@pytest.mark.parametrize("bg", [0.0, 0.5, 1.0])
def test_a_scalar_baseline_over_spread_pixel_offsets_is_not_told_at_low_light(spread, bg):
    """An sCMOS whose pixel offsets spread by 3-10 ADU, given its mean offset as a scalar baseline: at 0-1 photons/px
    the 1st percentile of the pixels sits 6-7 ADU below it (no baseline error); not told."""
    g = torch.Generator().manual_seed(8)
    offsets = 100.0 + spread * torch.randn(32, 32, generator=g)
    adu = SCMOS(**{**SCMOS_TRUE, "baseline": offsets})(torch.full((32, 32, 32), bg), generator=g)
    assert not _check(adu, SCMOS(**SCMOS_TRUE)).baseline_warnings
