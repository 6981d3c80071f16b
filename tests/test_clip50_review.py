"""Session 50, review of helper clip's one clipping level. ``plexloc calibrate-camera`` knew only a full scale
2^k - 1 (camera.check.detect_clip_adu): flats of a camera that clips at 1000 ADU (a full well, or an ADC range that
ends there, in a 16-bit file) were taken without a word, their clipped variance read as a higher e_per_adu. It now
uses the shared finder (camera.check.find_clip_adu) and says the level with how it was known."""

from __future__ import annotations

import numpy as np
import tifffile
import torch

from plexloc.camera.models import SCMOS
from plexloc.cli.main import main


def _write(path, cam, photons, seed, clip, n=60, shape=(32, 48)):
    x = cam(torch.full((n, *shape), float(photons)), generator=torch.Generator().manual_seed(seed)).numpy()
    tifffile.imwrite(path, np.minimum(x, clip).astype(np.uint16))


def _calibrate(tmp_path, clip, levels, capsys):
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    _write(tmp_path / "dark.tif", cam, 0.0, 1, clip)
    flats = []
    for k, level in enumerate(levels):
        flats.append(tmp_path / f"flat{k}.tif")
        _write(flats[-1], cam, level, 2 + k, clip)
    rc = main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *map(str, flats), "--kind", "scmos",
               "--gain-map", "no", "--out", str(tmp_path / "cam.yaml")])
    return rc, capsys.readouterr().err


def test_flats_clipped_at_a_level_that_is_no_full_scale_are_warned_about(tmp_path, capsys):
    # the last flat's mean sits 1.5 sd below 1000 ADU (0.8 * 480 / 0.46 + 100 = 935 ADU, sd 43 ADU): those above
    # 1000 ADU clipped, a few % of its values at exactly 1000; no 2^k - 1 anywhere
    rc, err = _calibrate(tmp_path, 1000, (100.0, 250.0, 480.0), capsys)
    assert rc == 0
    assert "plexloc calibrate-camera: warning:" in err and "flat2.tif" in err
    assert "sit at 1000 ADU, where its values pile up" in err and "bit camera" not in err
    assert "flat0.tif: " not in err and "flat1.tif: " not in err  # the flats below it are not named
    assert "1000 ADU" in (tmp_path / "cam.yaml").read_text()  # kept with the notes in the YAML


def test_flats_clipped_for_the_most_part_or_all_are_told_so(tmp_path, capsys):
    """A flat whose mean sits above 1000 ADU (60 % of its values at it) read e_per_adu 41.9 for 0.46 with no word of
    clipping (the shared finder leaves a value most pixels hold to blank frames); a flat all at it was refused as 'too
    dim; record it brighter'. Both now name the level and say to record it dimmer."""
    rc, err = _calibrate(tmp_path, 1000, (100.0, 250.0, 560.0), capsys)
    assert rc == 0 and "flat2.tif: " in err and "sit at 1000 ADU, where its values pile up" in err
    rc, err = _calibrate(tmp_path, 1000, (100.0, 250.0, 2000.0), capsys)
    assert rc != 0 and "flat2.tif" in err and "sit at 1000 ADU, where the camera clips" in err
    assert "record it dimmer, below 1000 ADU" in err and "record it brighter" not in err


def test_unclipped_flats_and_a_12_bit_full_scale_keep_their_words(tmp_path, capsys):
    rc, err = _calibrate(tmp_path, 65535, (100.0, 250.0, 480.0), capsys)
    assert rc == 0 and "pile up" not in err and "full scale" not in err
    rc, err = _calibrate(tmp_path, 4095, (200.0, 800.0, 2240.0), capsys)
    assert rc == 0 and "4095 ADU, a 12-bit camera's full scale" in err and "pile up" not in err


def _scmos_movie(n=40, shape=(48, 48), seed=0):
    """Raw uint16 frames of an sCMOS (2.2 ADU per photon, offset 100 ADU) with blinking spots, unclipped."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    ph = np.full((n, *shape), 10.0)
    for t in range(n):
        for _ in range(6):
            y, x, big = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(500, 5000)
            ph[t] += big / (2 * np.pi * 1.69) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.69))
    cam = SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)
    return np.round(cam(torch.as_tensor(ph, dtype=torch.float32), generator=torch.Generator().manual_seed(seed))
                    .numpy()).astype(np.uint16)


def test_stuck_pixels_or_a_stuck_column_above_every_spot_are_no_clipping_level():
    """5 defect pixels, or one column, stuck at a value above every spot of an unclipped movie were taken as its
    clipping level ('pile-up'): the camera check warned that the camera clips there and the fits flagged every spot
    touching them. A spot clipped in every frame (a bead) keeps its level: its rim is bright, a defect's is not."""
    import warnings

    from plexloc.camera import EMCCD
    from plexloc.camera.check import check_camera, clip_level

    raw = _scmos_movie()
    stuck = int(raw.max()) + 40
    assert clip_level(raw, EMCCD(), np.uint16) == (65535.0, "dtype")
    pixels = raw.copy()
    pixels[:, [3, 10, 20, 30, 40], [5, 30, 44, 12, 25]] = stuck
    column = raw.copy()
    column[:, :, 17] = stuck
    for movie in (pixels, column):
        assert clip_level(movie, EMCCD(), np.uint16) == (65535.0, "dtype")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_camera([movie], [SCMOS(qe=0.8, e_per_adu=0.46, baseline=100.0, read_sigma=1.6)], dtype=np.uint16,
                         adu=True, noise=False)
    # the same movie clipped at 600 ADU keeps its level with the stuck column at it; a bead clipped in every frame too
    clipped = np.minimum(column, 600)
    assert clip_level(clipped, EMCCD(), np.uint16) == (600.0, "pile-up")
    bead = raw.copy()
    yy, xx = np.mgrid[0:48, 0:48] + 0.5
    bead = np.minimum(bead + 80000 * np.exp(-((yy - 20.3) ** 2 + (xx - 30.6) ** 2) / (2 * 0.49)), 9000).astype(np.uint16)
    assert (bead == 9000).all(axis=0).sum() >= 4 and clip_level(bead, EMCCD(), np.uint16) == (9000.0, "pile-up")
