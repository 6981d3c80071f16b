"""`plexloc simulate` (and Simulator.iter_movie) with sCMOS maps of the full chip and a smaller frame: the movie is
the camera ROI's at roi_offset_px, its pixels converted through the maps' cut there. Until 2026-12-06 it failed
with 'frame shape does not match the sCMOS maps' shape' (training cut such maps per sample; movies did not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from conftest import full_chip_camera

from plexloc.camera.models import SCMOS
from plexloc.config import SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.simulation import Simulator

CAM = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5, "spurious_charge": 0.0}


def _sim(offset, base: torch.Tensor) -> Simulator:
    sim = Simulator(validate_config({"frame_size": [16, 12], "roi_offset_px": list(offset), "psf": {"kind": "gaussian"},
                                     "camera": CAM, "emitters": {"density_per_um2": 0.3, "photons_range": [500.0, 1500.0]},
                                     "background": {"range": [20.0, 30.0]}}, SimulationConfig))
    cam = sim.channels[0].camera
    sim.channels[0].camera = SCMOS(qe=cam.qe, spurious_charge=0.0, e_per_adu=torch.full_like(base, 0.5), baseline=base,
                                   read_sigma=torch.full_like(base, 1.5))
    return sim


def test_a_movie_is_the_camera_rois_cut_of_the_full_chip_maps():
    base = 100.0 + 50.0 * torch.rand(30, 40, generator=torch.Generator().manual_seed(2))  # 100-150 ADU per pixel
    sim = _sim((7, 5), base)
    movie = sim.simulate_movie(40, generator=torch.Generator().manual_seed(0))
    assert movie.frames.shape == (1, 40, 16, 12)
    # every pixel's offset is the map's at (5 + row, 7 + column): the dark level of each pixel (its minimum over the
    # movie minus the background it got) follows the cut, not the maps' corner
    cut = base[5:21, 7:19]
    excess = movie.frames[0].float().median(dim=0).values - cut
    corner = movie.frames[0].float().median(dim=0).values - base[:16, :12]
    assert float(excess.std()) < 4.0  # the same background everywhere (a few emitters and noise aside)
    assert float(corner.std()) > 15.0  # read against the maps' corner the pixels scatter by the offsets' spread
    cams = sim.movie_cameras()
    assert torch.equal(cams[0].baseline, cut)
    assert torch.equal(sim.channels[0].camera.baseline, base)  # the simulator's own camera keeps the whole chip


def test_a_roi_reaching_outside_the_maps_is_refused_with_the_numbers():
    sim = _sim((30, 5), 100.0 + torch.zeros(30, 40))
    with pytest.raises(InputError, match=r"roi_offset_px: camera: the sCMOS maps are 30x40 px .* 16x12 frames at "
                                         r"roi_offset_px \[30, 5\] .* reach row 21, column 42: outside the maps"):
        sim.simulate_movie(2, generator=torch.Generator().manual_seed(0))


def test_maps_of_the_frames_shape_give_the_same_movie_as_before():
    base = 100.0 + torch.rand(16, 12, generator=torch.Generator().manual_seed(3)) * 20
    a = _sim((0, 0), base).simulate_movie(5, generator=torch.Generator().manual_seed(1)).frames
    sim = _sim((0, 0), base)
    sim._movie_map_offsets = lambda: {}  # noqa: SLF001 (the path of maps that are not larger than the frame)
    b = sim.simulate_movie(5, generator=torch.Generator().manual_seed(1)).frames
    assert torch.equal(a, b)


def test_plexloc_simulate_then_fit_with_the_same_camera_file(tmp_path, capsys):
    from plexloc.cli.main import main

    full_chip_camera(tmp_path)
    cfg = {"frame_size": [24, 20], "roi_offset_px": [6, 4], "psf": {"kind": "gaussian"},
           "camera": str(tmp_path / "cam.yaml"), "emitters": {"density_per_um2": 0.3}}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(tmp_path / "sim.yaml"), "--frames", "20", "--out", str(tmp_path / "m"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sCMOS maps (40x36 px) cut at roi_offset_px x 6, y 4" in out and "--roi-offset 6 4" in out
    assert (tmp_path / "m" / "movie.tif").exists()
    assert main(["fit", str(tmp_path / "m" / "movie.tif"), "--method", "mle", "--config", str(tmp_path / "sim.yaml"),
                 "--camera", str(tmp_path / "cam.yaml"), "--roi-offset", "6", "4", "--out",
                 str(tmp_path / "locs.csv")]) == 0
    assert (tmp_path / "locs.csv").stat().st_size > 100


def test_the_simulator_says_what_it_takes():
    """The library walk of 2026-12-06: Simulator(dict) failed with "'dict' object has no attribute 'px_size_xy_nm'",
    simulate_movie(5.0) with a TypeError from torch.rand deep in the background, generator=0 with poisson()'s."""
    with pytest.raises(TypeError, match="Simulator takes a SimulationConfig .* got dict: load a YAML file with "
                                        r"plexloc.config.load_config\(path\)"):
        Simulator({"frame_size": [16, 16]})
    sim = _sim((0, 0), 100.0 + torch.zeros(16, 12))
    with pytest.raises(TypeError, match="n_frames must be an integer number of frames, got 5.0"):
        sim.simulate_movie(5.0)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator .* got 0"):
        sim.simulate_movie(5, generator=0)
    assert sim.simulate_movie(np.int64(3), generator=torch.Generator().manual_seed(0)).frames.shape[1] == 3
