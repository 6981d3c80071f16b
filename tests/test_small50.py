"""Session 50 (helper "small"): tiny movies and crops. The camera check on frames too small or too few to judge a
right camera from (it accused them: "1.60x" on 20 x 20 px, "0.16x ... baseline about 573 ADU too low" on a 3 x 5
crop), and fit's warnings for frames narrower than the network sees a spot in and for tiny --tile sizes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from plexloc.camera import camera_from_config
from plexloc.camera.check import check_camera, noise_measure
from plexloc.camera.synthetic import spotted_light

EMCCD = {"kind": "emccd", "qe": 0.9, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 60.0,
         "spurious_charge": 0.002}
SCMOS = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}


def _raw(cfg, size, frames, seed):  # as bench/small50.py: 20 photons/px, 2 emitters/um^2, 100 nm pixels
    light = spotted_light(np.random.default_rng(seed), frames, size, bg=20.0, density=2.0)
    return camera_from_config(cfg)(torch.tensor(light, dtype=torch.float32),
                                   generator=torch.Generator().manual_seed(seed + 1))


def _check(raw, cfg):
    cam = camera_from_config(cfg)
    return check_camera([cam.to_photons(raw)], [cam], dtype=np.uint16, source="movie.tif", warn=False)


# right cameras the check accused before (bench/small50.py, seeds 0-5): each was told, now none is
ACCUSED = [("emccd", (20, 20), 6, 0), ("emccd", (20, 20), 6, 5), ("emccd", (20, 20), 2, 0), ("emccd", (40, 40), 2, 2),
           ("scmos", (16, 16), 6, 0), ("scmos", (32, 32), 6, 2), ("emccd", (4, 4), 6, 0), ("scmos", (3, 5), 16, 0),
           ("emccd", (8, 8), 2, 0), ("scmos", (3, 3), 16, 0)]


@pytest.mark.parametrize("cam, size, frames, seed", ACCUSED)
def test_a_right_camera_on_a_small_movie_is_not_accused(cam, size, frames, seed):
    cfg = EMCCD if cam == "emccd" else SCMOS
    out = _check(_raw(cfg, size, frames, seed), cfg)
    assert out.warnings == []
    ch = out.channels[0]
    assert np.isnan(ch.noise_ratio) and ch.noise_note.startswith(f"too few pixels to check the camera: {size[0]} x "
                                                                 f"{size[1]} px per frame")
    assert out.notes and "too few pixels to check the camera" in out.notes[0]


def test_a_crop_narrower_than_12_px_is_not_measured_and_says_why():
    cam = camera_from_config(SCMOS)
    ratio, note, level = noise_measure(cam.to_photons(_raw(SCMOS, (3, 5), 16, 0)), cam)
    assert np.isnan(ratio) and np.isnan(level)
    assert note == ("too few pixels to check the camera: 3 x 5 px per frame, under the 12 px a side its noise is "
                    "judged from; check the camera on a larger region or more frames of the same camera and settings")


@pytest.mark.parametrize("size, frames", [((12, 12), 6), ((20, 20), 6), ((24, 24), 16)])
def test_em_gain_and_e_per_adu_swapped_are_still_told_on_small_frames(size, frames):
    wrong = {**EMCCD, "em_gain": 45.0, "e_per_adu": 300.0}
    told = [bool(_check(_raw(EMCCD, size, frames, seed), wrong).warnings) for seed in range(3)]
    assert all(told)


def test_a_baseline_above_the_offset_is_still_told_on_a_small_crop():
    # the dim pixels' offset check does not need the noise ratio: told on 6 x 6 px too (here 16 frames)
    wrong = {**SCMOS, "baseline": 200.0}
    assert _check(_raw(SCMOS, (6, 6), 16, 1), wrong).warnings
    assert _check(_raw(SCMOS, (20, 20), 6, 0), wrong).warnings


def test_a_large_movie_is_measured_as_before():
    cam = camera_from_config(SCMOS)
    ratio, note, _ = noise_measure(cam.to_photons(_raw(SCMOS, (64, 64), 6, 0)), cam)
    assert note == "" and 0.75 <= ratio <= 1.35


def test_frame_size_warnings_name_the_size_and_the_fix():
    from plexloc.infer.fit import MIN_FRAME_SIDE_PX, MIN_TILE_PX, frame_size_warnings

    assert MIN_FRAME_SIDE_PX == 3 and MIN_TILE_PX == 16
    (w,) = frame_size_warnings((2, 700), 256, 40, source="strip.tif")
    assert w.startswith("strip.tif: frames of 2 x 700 px (rows x columns): a side under 3 px is too narrow")
    assert "fit the movie before it is cropped" in w
    assert frame_size_warnings((3, 700), 256, 40) == [] and frame_size_warnings((700, 1), 256, 40)
    (t,) = frame_size_warnings((128, 128), 8, 40)
    assert t.startswith("--tile 8 (tile_px) is under 16 px") and "about 121x its own pixels" in t
    assert frame_size_warnings((128, 128), 16, 40) == [] and frame_size_warnings((8, 8), 8, 40) == []


def test_fit_warns_once_per_movie_of_strips(tmp_path):
    from plexloc.config.models import IdealCameraConfig
    from plexloc.infer.fit import FrameSizeWarning, fit_movie
    from plexloc.io.tiff import write_movie
    from test_infer import _random_model

    net = _random_model(2)
    write_movie(tmp_path / "m.tif", np.random.default_rng(1).poisson(40.0, size=(6, 2, 40)).astype(np.uint16))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fit_movie(tmp_path / "m.tif", net, camera=IdealCameraConfig(), batch_frames=2, chunk_frames=2)
    sizes = [w for w in got if issubclass(w.category, FrameSizeWarning)]
    assert len(sizes) == 1 and "frames of 2 x 40 px" in str(sizes[0].message)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fit_movie(tmp_path / "m.tif", net, camera=IdealCameraConfig(), tile_px=4)
    tiles = [str(w.message) for w in got if issubclass(w.category, FrameSizeWarning)]
    assert len(tiles) == 2 and tiles[1].startswith(f"{tmp_path / 'm.tif'}: --tile 4 (tile_px) is under 16 px")
