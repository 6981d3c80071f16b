"""Session 48, camera walk: sCMOS maps of another ROI or binning than the movie (plexloc.camera.mapfit), and the MLE
fit's first frames converted to photons once (not once for the camera check and again for the fit)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from plexloc.camera.check import CameraWarning, check_camera
from plexloc.camera.models import SCMOS, cut_maps_to_movie
from plexloc.camera.synthetic import spotted_light
from plexloc.errors import InputError

CHIP, H, T = 128, 48, 16


def _chip(seed: int = 1):
    rng = np.random.default_rng(seed)
    base = (100 + rng.normal(0, 3, (CHIP, CHIP)) + rng.normal(0, 2, (1, CHIP))).astype(np.float32)
    gain = (0.46 * (1 + rng.normal(0, 0.02, (CHIP, CHIP)))).astype(np.float32)
    rs = (1.4 * np.exp(rng.normal(0, 0.3, (CHIP, CHIP)))).astype(np.float32)
    return base, gain, rs


def _cam(base, gain, rs):
    return SCMOS(qe=0.8, e_per_adu=torch.tensor(base * 0 + gain), baseline=torch.tensor(base),
                 read_sigma=torch.tensor(rs))


def _movie(chip, x0: int, y0: int, *, h: int = H, frames: int = T, bg: float = 30.0, seed: int = 0):
    base, gain, rs = chip
    sl = np.s_[y0:y0 + h, x0:x0 + h]
    light = spotted_light(np.random.default_rng(seed), frames, (h, h), bg=bg, density=0.3)
    return _cam(base[sl], gain[sl], rs[sl])(torch.tensor(light, dtype=torch.float32),
                                            generator=torch.Generator().manual_seed(seed)).numpy()


class _Reader:
    """A movie reader as cut_maps_to_movie reads it: frames, their shape, the metadata's ROI (none)."""

    roi_offset = None

    def __init__(self, raw):
        self.raw, self.frame_shape = raw, raw.shape[1:]

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, item):
        return self.raw[item]


def _check(raw, cam):
    return check_camera([cam.to_photons(torch.as_tensor(raw))], [cam], dtype=np.uint16, source="movie.tif", warn=False)


def test_maps_of_the_wrong_corner_cropped_by_hand_are_told_and_the_right_ones_are_not():
    chip = _chip()
    base, gain, rs = chip
    raw = _movie(chip, 40, 24)
    right = _check(raw, _cam(base[24:72, 40:88], gain[24:72, 40:88], rs[24:72, 40:88]))
    wrong = _check(raw, _cam(base[:H, :H], gain[:H, :H], rs[:H, :H]))  # cropped at the chip's corner, not the ROI's
    assert right.warnings == [] and len(wrong.warnings) == 1
    text = wrong.warnings[0]
    assert "is not this movie's pixels' offset map" in text and "as given, the frames' size" in text
    m = right.channels[0].map_match
    assert m.r > 0.6 * m.expected and m.decisive
    assert abs(wrong.channels[0].map_match.r) < 0.1
    with pytest.warns(CameraWarning, match="another ROI or binning"):
        wrong.warn()
    with pytest.warns(CameraWarning, match="another ROI or binning"):  # a network fit warns the maps' finding too
        wrong.warn(noise=False)


def test_full_chip_maps_cut_at_a_wrong_roi_offset_name_the_one_that_fits():
    chip = _chip()
    raw = _movie(chip, 40, 24)
    full = _cam(*chip)
    cam, at, where = cut_maps_to_movie(full, [_Reader(raw)], (0, 0), (H, H), channel=0, source="movie.tif")
    out = _check(raw, cam)
    assert len(out.warnings) == 1 and "cut at chip x 0, y 0 (--roi-offset)" in out.warnings[0]
    assert "give --roi-offset 40 24" in out.warnings[0]
    assert out.channels[0].map_match.found[:3] == (40, 24, 1)
    cam, _, _ = cut_maps_to_movie(full, [_Reader(raw)], (40, 24), (H, H), channel=0, source="movie.tif")
    assert _check(raw, cam).warnings == []  # the right offset: nothing said


def test_full_chip_maps_without_a_roi_offset_say_which_one_fits():
    chip = _chip()
    raw = _movie(chip, 40, 24)
    with pytest.raises(InputError, match=r"fit the maps at chip x 40, y 24 .*: --roi-offset 40 24"):
        cut_maps_to_movie(_cam(*chip), [_Reader(raw)], None, (H, H), channel=0, source="movie.tif")


def test_a_binned_movie_under_unbinned_maps_is_told_as_binned():
    chip = _chip()
    base, gain, rs = chip
    light = spotted_light(np.random.default_rng(3), T, (2 * H, 2 * H), bg=8.0, density=0.1)
    raw = _cam(base[:2 * H, :2 * H], gain[:2 * H, :2 * H], rs[:2 * H, :2 * H])(
        torch.tensor(light, dtype=torch.float32), generator=torch.Generator().manual_seed(3)).numpy()
    binned = raw.reshape(T, H, 2, H, 2).sum(axis=(2, 4)) - 300  # the camera's 2x2 sums, offset back to about 100
    cam, _, _ = cut_maps_to_movie(_cam(*chip), [_Reader(binned)], (0, 0), (H, H), channel=0, source="movie.tif")
    out = _check(binned, cam)
    assert len(out.warnings) == 1
    assert "2x2 binned sums" in out.warnings[0] and "recorded with 2x2 binning" in out.warnings[0]
    assert out.channels[0].map_match.found[:3] == (0, 0, 2)
    with pytest.raises(InputError, match="2x2 binned sums"):  # and without a ROI offset: the error says so
        cut_maps_to_movie(_cam(*chip), [_Reader(binned)], None, (H, H), channel=0, source="movie.tif")


def test_maps_too_flat_to_tell_say_nothing():
    """A map with almost no pixel-to-pixel structure against noisy frames: a wrong region cannot be told (not
    decisive), and nothing is said."""
    rng = np.random.default_rng(4)
    base = (100 + rng.normal(0, 0.05, (CHIP, CHIP))).astype(np.float32)
    chip = (base, np.full_like(base, 0.46), np.full_like(base, 1.4))
    raw = _movie(chip, 40, 24, frames=4, bg=100.0)
    out = _check(raw, _cam(base[:H, :H], chip[1][:H, :H], chip[2][:H, :H]))
    assert not out.channels[0].map_match.decisive and out.warnings == []


def test_mle_fit_converts_the_first_frames_once(tmp_path, monkeypatch):
    """The camera check of the first chunk read the frames converted to photons, and the fit converted the same chunk
    again: every frame is converted once now."""
    import tifffile

    from plexloc.config import SimulationConfig
    from plexloc.mle import fit_movie, pipeline

    raw = _movie(_chip(), 40, 24, frames=12)
    tifffile.imwrite(tmp_path / "m.tif", raw.astype(np.uint16))
    cfg = SimulationConfig.model_validate({"px_size_nm": 100, "psf": {"kind": "gaussian", "sigma_nm": 130},
                                           "camera": {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.46,
                                                      "baseline": 100.0, "read_sigma": 1.4}})
    converted = []
    orig = pipeline.MLEFitter.to_photons

    def counting(self, frames):
        caller = sys._getframe(1).f_code.co_name  # the PSF check reads its own frames through a lambda: not counted
        if caller != "<lambda>":
            converted.append((caller, int(np.shape(frames[0])[0])))
        return orig(self, frames)

    monkeypatch.setattr(pipeline.MLEFitter, "to_photons", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (what the fit says about this movie is not what is counted here)
        fit_movie(tmp_path / "m.tif", cfg, batch_frames=6)
    assert sum(n for _, n in converted) == 12, converted  # two chunks of 6 frames, each converted once


@pytest.mark.parametrize("kind", ["scmos", "emccd"])
def test_a_qe_written_as_a_percentage_gets_the_fraction(tmp_path, kind):
    from plexloc.config import load_camera_config

    (tmp_path / "cam.yaml").write_text(f"kind: {kind}\nqe: 80\n")
    with pytest.raises(InputError, match=r"field 'qe': .*80 reads as a percentage; write qe: 0\.8"):
        load_camera_config(tmp_path / "cam.yaml")
    (tmp_path / "cam.yaml").write_text(f"kind: {kind}\nqe: 1.8\n")  # not a percentage: the bound alone
    with pytest.raises(InputError, match=r"field 'qe': Input should be less than or equal to 1"):
        load_camera_config(tmp_path / "cam.yaml")


def test_an_em_gain_in_an_scmos_names_the_emccd_kind(tmp_path):
    from plexloc.config import load_camera_config

    (tmp_path / "cam.yaml").write_text("kind: scmos\nem_gain: 300\ne_per_adu: 0.46\n")
    with pytest.raises(InputError, match=r"unknown field 'em_gain'; allowed: .*an sCMOS has no EM gain: an EMCCD's "
                                         r"movie needs kind: emccd"):
        load_camera_config(tmp_path / "cam.yaml")


def test_a_baseline_far_below_the_offset_under_a_beam_is_told_though_it_looks_crowded():
    """An sCMOS at 100 photons/px under a beam (corners 13 % of the centre) given baseline 0 for its 100 ADU: the
    noiseless photons it adds read less the dimmer the pixel, which the crowding guard took for crowding (1.19x) and
    said only that it could not measure; the photons came out 1.6x high. Right cameras in crowded frames stay quiet."""
    from plexloc.camera import camera_from_config

    rng = np.random.default_rng(0)
    right = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}
    raw = camera_from_config(right)(torch.tensor(spotted_light(rng, 32, (96, 96), bg=100.0, waist=0.35, density=0.3),
                                                 dtype=torch.float32), generator=torch.Generator().manual_seed(1))
    wrong = camera_from_config({**right, "baseline": 0.0})
    out = check_camera([wrong.to_photons(raw)], [wrong], dtype=np.uint16, warn=False)
    assert out.channels[0].noise_ratio < 0.75 and len(out.warnings) == 1
    assert "baseline below the camera's offset" in out.warnings[0]
    for kind, cfg in [("scmos", right), ("emccd", {"kind": "emccd", "em_gain": 200, "e_per_adu": 20.0})]:
        cam = camera_from_config(cfg)
        crowded = cam(torch.tensor(spotted_light(rng, 32, (96, 96), bg=10.0, density=4.0), dtype=torch.float32),
                      generator=torch.Generator().manual_seed(2))
        out = check_camera([cam.to_photons(crowded)], [cam], dtype=np.uint16, warn=False)
        assert out.warnings == [] and "too crowded" in out.channels[0].noise_note, kind
