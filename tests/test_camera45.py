"""Session 45: the camera check names the file to edit, and says something true where the noise is under the rounding.

- A camera read from a file (``--camera camera.yaml``, a configuration's camera section, or the file its ``camera:``
  names) is named in the noise warning with each setting's field there, its value now and the one that would fit
  ("... The settings that would fit, in camera.yaml: e_per_adu about 0.439 e-/ADU (now 4.6) ..."); the warning named
  the movie alone, and a user of a configuration that includes a camera file had to find the file. A camera built in
  Python keeps the wording it had.
- The note of a noise under ``MIN_NOISE_ADU`` said "a pixel noise of 0 photons" of Poisson frames at 0.1 photons/px
  (their noise, less the rounding and the dither, reads 0 or below): it says the noise is no larger than the rounding.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from plexloc.camera import camera_from_config
from plexloc.camera import check as camera_check
from plexloc.camera.check import check_camera
from plexloc.camera.models import SCMOS, IdealCamera, cut_maps_to_movie
from plexloc.config import load_camera_config, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRUE_E = 0.46  # the camera that recorded the movie: an sCMOS of 0.46 e-/ADU
CAMERA = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 4.6, "baseline": 100.0, "read_sigma": 1.6}


@pytest.fixture(scope="module")
def adu() -> torch.Tensor:
    torch.manual_seed(0)
    return SCMOS(qe=0.8, e_per_adu=TRUE_E, baseline=100.0, read_sigma=1.6)(torch.full((16, 64, 64), 50.0))


def _warning(adu, camera) -> str:
    (w,) = check_camera([adu], [camera], dtype="uint16", adu=True, source="movie.tif", warn=False).warnings
    return w


def _advised(text: str, field: str) -> tuple[float, float]:
    """The value advised for ``field`` and the value now, from '<field> about X e-/ADU (now Y)'."""
    fit = float(text.split(f" {field} about ")[1].split()[0])
    now = float(text.split(f" {field} about ")[1].split("(now ")[1].split(")")[0])
    return fit, now


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_camera_yaml_of_the_cameras_fields_is_named_with_the_field_and_both_values(tmp_path, adu):
    path = _write(tmp_path / "camera.yaml", CAMERA)
    w = _warning(adu, camera_from_config(load_camera_config(path)))
    assert w.startswith("movie.tif: the pixel noise between frames is ")
    assert f"scmos camera of {path} (e_per_adu 4.6 e-/ADU" in w
    assert f"The settings that would fit, in {path}: e_per_adu about " in w
    fit, now = _advised(w, "e_per_adu")
    assert now == 4.6 and fit == pytest.approx(TRUE_E, rel=0.1)
    assert f"Check the camera's values in {path} against the movie" in w


def test_a_camera_file_holding_a_camera_section_names_camera_dot_field(tmp_path, adu):
    path = _write(tmp_path / "cam.yaml", {"camera": CAMERA})
    cam = camera_from_config(load_camera_config(path))
    assert camera_check.camera_source(cam) == (str(path), "camera.")
    w = _warning(adu, cam)
    assert f"The settings that would fit, in {path}: camera.e_per_adu about " in w
    assert _advised(w, "camera.e_per_adu")[1] == 4.6


def _config(tmp_path: Path, camera) -> Path:
    data = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    data["camera"] = camera
    return _write(tmp_path / "config.yaml", data)


def test_a_configurations_inline_camera_names_the_configuration_and_camera_dot_field(tmp_path, adu):
    path = _config(tmp_path, CAMERA)
    cam = camera_from_config(load_config(path).channels[0].camera)
    assert camera_check.camera_source(cam) == (str(path), "camera.")
    w = _warning(adu, cam)
    assert f"scmos camera of {path} (" in w
    assert f"The settings that would fit, in {path}: camera.e_per_adu about " in w


@pytest.mark.parametrize("nested", [False, True])
def test_a_configuration_that_names_a_camera_file_names_that_file(tmp_path, adu, nested):
    """``camera: camera.yaml`` in the configuration: the value to change is in camera.yaml, not in the configuration."""
    cam_file = _write(tmp_path / "camera.yaml", {"camera": CAMERA} if nested else CAMERA)
    path = _config(tmp_path, "camera.yaml")
    cam = camera_from_config(load_config(path).channels[0].camera)
    assert camera_check.camera_source(cam) == (str(cam_file), "camera." if nested else "")
    w = _warning(adu, cam)
    assert f"The settings that would fit, in {cam_file}: {'camera.' if nested else ''}e_per_adu about " in w
    assert str(path) not in w


def test_a_channel_of_a_multi_channel_configuration_is_named_by_its_field_path(tmp_path):
    data = yaml.safe_load((EXAMPLES / "biplane.yaml").read_text())
    data["channels"][1]["camera"] = CAMERA
    path = _write(tmp_path / "biplane.yaml", data)
    cfg = load_config(path)
    assert [camera_check.camera_source(camera_from_config(ch.camera)) for ch in cfg.channels] == [
        (str(path), "channels.0.camera."), (str(path), "channels.1.camera.")]


def test_a_camera_built_in_python_keeps_the_old_wording(adu):
    w = _warning(adu, SCMOS(**{k: v for k, v in CAMERA.items() if k != "kind"}))
    assert "scmos camera (e_per_adu 4.6 e-/ADU" in w
    assert "The settings that would fit: e_per_adu about " in w and "(now " not in w
    assert "Check the camera's values against the movie" in w


def test_a_camera_cut_to_the_movies_roi_keeps_its_file(tmp_path):
    cam = SCMOS(qe=0.8, e_per_adu=torch.full((16, 16), 0.5), baseline=torch.full((16, 16), 100.0),
                read_sigma=torch.full((16, 16), 1.5))
    cam.config_source = ("camera.yaml", "")
    out, at, _ = cut_maps_to_movie(cam, None, (4, 2), (8, 8), channel=0, source="movie.tif")
    assert at == (4, 2) and camera_check.camera_source(out) == ("camera.yaml", "")


def test_the_clipping_advice_names_the_camera_file(tmp_path):
    """A level found in the movie (a 12-bit camera's 4095 in a 16-bit file): set saturation_adu there."""
    path = _write(tmp_path / "camera.yaml", {"camera": CAMERA | {"e_per_adu": TRUE_E}})
    rng = np.random.default_rng(0)
    raw = rng.integers(100, 3000, size=(4, 32, 32)).astype(np.uint16)
    raw[:, :3, :3] = 4095
    cam = camera_from_config(load_camera_config(path))
    (w,) = check_camera([raw], [cam], dtype=np.uint16, adu=True, noise=False, source="movie.tif", warn=False).warnings
    assert f"Set camera.saturation_adu: 4095 in {path} to make it the level" in w
    (w,) = check_camera([raw], [SCMOS()], dtype=np.uint16, adu=True, noise=False, source="movie.tif",
                        warn=False).warnings
    assert "Set saturation_adu: 4095 in the camera section (camera YAML or configuration)" in w


def test_plexloc_detect_names_the_camera_file_a_configuration_includes(tmp_path, adu, capsys):
    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    cam_file = _write(tmp_path / "camera.yaml", CAMERA)
    path = _config(tmp_path, "camera.yaml")
    movie = tmp_path / "movie.tif"
    write_movie(movie, adu.numpy(), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["detect", str(movie), "--config", str(path), "--out", str(tmp_path / "d.csv")]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "the pixel noise between frames" in line]
    assert len(said) == 1, err
    assert said[0].startswith(f"plexloc detect: warning: {movie}: ")
    assert f"The settings that would fit, in {cam_file}: e_per_adu about " in said[0]


# --- the note of a noise under MIN_NOISE_ADU ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2])
def test_an_ideal_cameras_whole_photons_are_not_said_to_have_no_noise(rate):
    """Poisson frames at 0.05-0.2 photons/px (noise 0.22-0.45 photons) read "a pixel noise of 0 photons"."""
    torch.manual_seed(0)
    frames = torch.poisson(torch.full((16, 64, 64), rate))
    ch = check_camera([frames], [IdealCamera()], dtype="float32", adu=True, warn=False).channels[0]
    assert math.isnan(ch.noise_ratio)
    assert ch.noise_note.startswith("a pixel noise no larger than the rounding to whole photons, under the 0.5 "
                                    "photons it is measured from (an ideal camera's frames are photons)")
    assert "of 0 " not in ch.noise_note


def test_the_coarse_step_note_says_the_noise_is_within_the_rounding_and_keeps_a_measured_one():
    torch.manual_seed(0)
    cam = SCMOS(qe=0.8, e_per_adu=4.0, baseline=100.0, read_sigma=0.3)
    under = check_camera([cam(torch.full((16, 64, 64), 0.5))], [cam], dtype="uint16", adu=True, warn=False)
    assert under.channels[0].noise_note.startswith("a pixel noise no larger than the rounding to whole ADU, under the "
                                                   "0.5 ADU it is measured from (the camera's steps are too coarse")
    some = check_camera([cam(torch.full((16, 64, 64), 2.0))], [cam], dtype="uint16", adu=True, warn=False)
    noise = float(some.channels[0].noise_note.split("a pixel noise of ")[1].split(" ADU")[0])
    assert 0.1 < noise < 0.5


# --- a camera file that gives the read noise as read_variance ----------------------------------------------------------


@pytest.fixture(scope="module")
def dim_adu() -> torch.Tensor:
    """An sCMOS movie at 3 photons/px, read noise 1.6 e- (read noise dominates the pixel variance)."""
    torch.manual_seed(0)
    return SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)(torch.full((16, 64, 64), 3.0))


@pytest.mark.parametrize("as_map", [False, True])
def test_a_read_variance_file_is_advised_by_its_read_variance(tmp_path, dim_adu, as_map):
    """``plexloc calibrate-camera`` writes the read noise as ``read_variance`` (a map, e-²), and a camera YAML may give
    it as a number. The advice named the file with "read_sigma about 1.59 e- (now 5)" (or "the read_sigma map about
    0.32x its values"): a field the file does not hold, with a value it does not say (it says 25), and one the loader
    refuses beside read_variance. It names read_variance, its value now and the variance that would fit."""
    cam_data = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.46, "baseline": 100.0}
    if as_map:
        np.save(tmp_path / "var.npy", np.full((64, 64), 25.0, dtype=np.float32))
        cam_data["read_variance"] = "var.npy"
    else:
        cam_data["read_variance"] = 25.0
    path = _write(tmp_path / "camera.yaml", cam_data)
    w = _warning(dim_adu, camera_from_config(load_camera_config(path)))
    assert "read_sigma about" not in w and "read_sigma map" not in w, w
    assert "likely from a read_variance set too high" in w and "read_variance is in e-²" in w, w
    if as_map:
        k = float(w.split("the read_variance map about ")[1].split("x its values")[0])
        assert k == pytest.approx(1.6 ** 2 / 25.0, rel=0.15), w  # the variance's factor: the noise's squared
    else:
        fit, now = _advised(w, "read_variance")
        assert now == 25.0 and fit == pytest.approx(1.6 ** 2, rel=0.15), w
        assert f"The settings that would fit, in {path}: read_variance about {w.split(' read_variance about ')[1]}" in w
    # a camera given read_sigma keeps its advice in e-
    cam_data.pop("read_variance")
    cam_data["read_sigma"] = 5.0
    fit, now = _advised(_warning(dim_adu, camera_from_config(load_camera_config(
        _write(tmp_path / "sigma.yaml", cam_data)))), "read_sigma")
    assert now == 5.0 and fit == pytest.approx(1.6, rel=0.1)


def test_a_read_variance_camera_cut_to_the_movies_roi_keeps_the_field(tmp_path):
    """A camera whose maps are cut to the movie's region is advised by the fields of its file still."""
    np.save(tmp_path / "e.npy", np.full((16, 16), 0.5))
    cam = camera_from_config(load_camera_config(_write(tmp_path / "c.yaml", {
        "kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "baseline": 100.0, "read_variance": 2.25,
        "e_per_adu": "e.npy"})))
    out, _, _ = cut_maps_to_movie(cam, None, (4, 2), (8, 8), channel=0, source="movie.tif")
    assert getattr(out, "read_noise_field", None) == "read_variance"
