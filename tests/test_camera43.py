"""Camera settings a user gets wrong (session 43's review): each a movie simulated with one camera and checked or read
with a wrong camera YAML."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.camera import camera_from_config
from plexloc.camera.check import CameraWarning, check_camera
from plexloc.config import load_config, validate_config
from plexloc.config.io import load_camera_config
from plexloc.errors import InputError
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EMCCD = dict(kind="emccd", qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4)
SCMOS = dict(kind="scmos", qe=0.8, spurious_charge=0.0, e_per_adu=0.5, baseline=100.0, read_sigma=1.5)


def _movie(camera: dict, *, bg: tuple[float, float] = (20.0, 100.0), frames: int = 64, seed: int = 1):
    """Raw ADU frames (T, 64, 64) of examples/2d_gaussian.yaml (0.5 emitters/um^2) through ``camera``."""
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    data = cfg.model_dump(mode="json", exclude={"model", "training"})
    data["channels"][0]["camera"] = camera
    data["background"]["range"] = list(bg)
    sim = Simulator(validate_config(data, type(cfg)))
    return sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed)).frames[0]


def _camera(tmp_path: Path, camera: dict):
    """The camera as plexloc fit --camera reads it from a YAML."""
    path = tmp_path / "camera.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in camera.items()))
    return camera_from_config(load_camera_config(path))


def _check(raw, camera):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = check_camera([raw], [camera], dtype=np.uint16, adu=True, source="movie.tif")
    return out, [str(w.message) for w in rec if issubclass(w.category, CameraWarning)]


@pytest.mark.parametrize(("field", "text", "said"), [
    ("em_gain", "true", "not true or false"),  # read as em_gain 1: every photon count 300x too high, without a word
    ("em_gain", ".inf", "finite"),  # every photon count 0
    ("e_per_adu", ".inf", "finite"),
    ("spurious_charge", ".inf", "finite"),
    ("read_sigma", ".inf", "finite"),
])
def test_a_camera_yaml_with_true_or_infinity_for_a_number_is_refused(tmp_path, field, text, said):
    path = tmp_path / "camera.yaml"
    path.write_text("kind: emccd\nqe: 0.9\nspurious_charge: 0.002\nem_gain: 300\ne_per_adu: 45\nbaseline: 100\n"
                    "read_sigma: 74.4\n".replace(f"{field}: ", f"{field}: {text} #"))
    with pytest.raises(InputError, match=rf"camera.yaml.*field '{field}'.*{said}"):
        load_camera_config(path)
    scmos = tmp_path / "scmos.yaml"
    scmos.write_text("kind: scmos\nqe: true\n")  # an sCMOS's qe: true was read as 1
    with pytest.raises(InputError, match=r"field 'qe'.*not true or false"):
        load_camera_config(scmos)


def test_an_emccd_e_per_adu_written_as_adu_per_electron_is_warned(tmp_path):
    """The SMLM Challenge EMCCD (45 e-/ADU) with e_per_adu written as 1/45 (ADU/e-): every photon count 2,025x too
    low, which put the signal at 0.03 photons/px, under the 2 photons/px from which an EMCCD's noise is measured: a
    note that the check could not measure, and no warning. Now the ratio (0.0002; a right camera reads 0.37 or more
    at that signal) is a warning. The right camera on the same movie, and on a dim one, stays quiet."""
    raw = _movie(EMCCD)
    right = _camera(tmp_path, EMCCD)
    ok, said = _check(raw, right)
    assert said == [] and 0.75 < ok.channels[0].noise_ratio < 1.35
    wrong = _camera(tmp_path, EMCCD | {"e_per_adu": 1 / 45})
    ph_right, ph_wrong = right.to_photons(raw), wrong.to_photons(raw)
    assert float(ph_wrong.mean() / ph_right.mean()) == pytest.approx(1 / 2025, rel=0.1)  # (less spurious charge)
    bad, said = _check(raw, wrong)
    assert len(said) == 1 and bad.channels[0].noise_ratio < 0.01
    assert re.search(r"movie.tif: the pixel noise between frames is .*e_per_adu 0.0222222 e-/ADU.*photons scaled down "
                     r"many times: they read 0.0\d+ photons/px.*an e_per_adu written as ADU/e-\?", said[0]), said[0]
    # a 10x error on a dim movie (1-2 photons/px), also under the 2 photons/px, also warned; the right camera is not
    dim = _movie(EMCCD, bg=(1.0, 2.0))
    assert _check(dim, right)[1] == []
    ten, said = _check(dim, _camera(tmp_path, EMCCD | {"e_per_adu": 4.5}))
    assert len(said) == 1 and ten.channels[0].noise_ratio < 0.2


def _likely(message: str, what: str) -> float:
    found = re.search(rf"{what} about ([\d.]+)", message)
    assert found, message
    return float(found.group(1))


@pytest.mark.parametrize(("true", "given", "baseline"), [
    (SCMOS, SCMOS | {"baseline": 0.0}, 100.0),  # a baseline left at 0: background 62.5 photons/px too high
    (SCMOS, SCMOS | {"baseline": 200.0}, 100.0),  # the movie's dim values below the baseline: read as a gain 11x off
    (EMCCD, EMCCD | {"baseline": 400.0}, 100.0),  # 50 photons/px too low: 'em_gain too low, photons scaled up 11x'
    (EMCCD | {"baseline": 400.0}, EMCCD, 400.0),  # the default 100 for a camera at 400: 50 photons/px too high
])
def test_a_wrong_baseline_is_told_with_the_baseline_that_fits(tmp_path, true, given, baseline):
    """A baseline off by 100-300 ADU was warned about as a noise ratio of 0.49-11 whose likely causes were a gain or
    e_per_adu (with a factor for them) or 'a baseline below the camera's offset', never above it, and no value for
    it. The warning now names the baseline the movie's photon transfer gives if the gain is right (the dimmer half of
    the pixels: their mean squared frame-to-frame difference against their mean signal), and the gain if the
    baseline is right."""
    raw = _movie(true)
    check, said = _check(raw, _camera(tmp_path, given))
    assert len(said) == 1, said
    assert "if the gain is right" in said[0] and "if the baseline is right" in said[0]
    assert _likely(said[0], "baseline") == pytest.approx(baseline, abs=10.0)  # measured 100, 100, 106, 406 ADU
    if check.channels[0].noise_ratio > 1:
        assert "a baseline above the camera's offset" in said[0]


def test_a_wrong_gain_is_told_with_the_gain_that_fits(tmp_path):
    """e_per_adu given as ADU/e- on an sCMOS (2 for 0.5: photons 4x too high), an EMCCD's em_gain at 100 for 300
    (photons 3x): the warning names the e_per_adu (and em_gain) that fits with the baseline right, within 5 %."""
    raw = _movie(SCMOS)
    _, said = _check(raw, _camera(tmp_path, SCMOS | {"e_per_adu": 2.0}))
    assert len(said) == 1 and _likely(said[0], "e_per_adu") == pytest.approx(0.5, rel=0.05)  # measured 0.48
    raw = _movie(EMCCD)
    _, said = _check(raw, _camera(tmp_path, EMCCD | {"em_gain": 100.0}))
    assert len(said) == 1 and _likely(said[0], "em_gain") == pytest.approx(300.0, rel=0.05)  # measured 292
    assert _likely(said[0], "e_per_adu") == pytest.approx(15.0, rel=0.05)  # 45 / 3
