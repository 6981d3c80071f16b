"""The camera check's words fit the camera (no em_gain advice for an sCMOS, which has none), and a camera map path
under ~ is the home folder's."""

from pathlib import Path

import numpy as np

from plexloc.config.io import load_camera_config
from test_camera43 import EMCCD, SCMOS, _camera, _check, _movie


def test_scmos_noise_warning_names_no_em_gain(tmp_path):
    raw = _movie(SCMOS)
    _, up = _check(raw, _camera(tmp_path, SCMOS | {"e_per_adu": 2.0}))  # photons 4x too high
    _, down = _check(raw, _camera(tmp_path, SCMOS | {"e_per_adu": 0.1}))  # 5x too low
    assert len(up) == 1 and len(down) == 1
    assert "em_gain" not in up[0] and "an e_per_adu too high" in up[0] and "swapped" not in up[0]
    assert "em_gain" not in down[0] and "an e_per_adu too low" in down[0]
    raw = _movie(EMCCD)
    _, said = _check(raw, _camera(tmp_path, EMCCD | {"em_gain": 45.0, "e_per_adu": 300.0}))
    # (the em_gain alone would have to be about 1950, which no EMCCD has: the e_per_adu and the swap are named; since
    # session 49 the swap, converted back, fits and is named first: tests/test_camera49.py)
    assert len(said) == 1 and "likely from em_gain and e_per_adu swapped" in said[0]
    assert "an e_per_adu too high (photons scaled up" in said[0]


def test_a_map_path_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "var.npy", np.full((8, 8), 2.0, np.float32))
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "camera.yaml").write_text("kind: scmos\nqe: 0.8\nspurious_charge: 0\ne_per_adu: 0.5\nbaseline: 100\n"
                                         "read_variance: ~/maps/var.npy\n")
    cam = load_camera_config(cfg_dir / "camera.yaml")  # it was looked for at configs/~/maps/var.npy: not found
    assert Path(str(cam.read_variance)) == tmp_path / "maps" / "var.npy"


def test_maps_smaller_than_the_movie_are_named_with_the_movie(tmp_path):
    """sCMOS maps of a region smaller than the movie's frames: the error named the maps but not the movie."""
    import pytest
    import torch

    from test_infer_review2 import _model_file, _random_model
    from test_nwalk38 import _chip_and_roi_maps

    from plexloc.config import load_config
    from plexloc.errors import InputError
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.mle.pipeline import fit_movie as mle_fit_movie

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    _, _, (x0, y0, h, w), _, roi = _chip_and_roi_maps(tmp_path, rng)  # roi: maps of 24x20 px
    write_movie(tmp_path / "big.tif", rng.poisson(150, (4, h + 8, w + 8)).astype(np.uint16))
    model = _model_file(tmp_path, _random_model(2))
    with pytest.raises(InputError, match=r"big\.tif.*maps are \(24, 20\).*off_roi\.npy.*smaller than the movie's "
                                         r"frames \(32, 28\)"):
        fit_movie(tmp_path / "big.tif", model, camera=roi)
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "2d_gaussian.yaml")
    with pytest.raises(InputError, match=r"big\.tif.*smaller than the movie's frames"):
        mle_fit_movie(tmp_path / "big.tif", config, camera=roi)
