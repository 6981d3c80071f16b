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
    assert len(said) == 1 and "an em_gain set too low or an e_per_adu too high" in said[0] and "swapped" in said[0]


def test_a_map_path_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "var.npy", np.full((8, 8), 2.0, np.float32))
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "camera.yaml").write_text("kind: scmos\nqe: 0.8\ne_per_adu: 0.5\nbaseline: 100\n"
                                         "read_variance: ~/maps/var.npy\n")
    cam = load_camera_config(cfg_dir / "camera.yaml")  # it was looked for at configs/~/maps/var.npy: not found
    assert Path(str(cam.read_variance)) == tmp_path / "maps" / "var.npy"
