"""Camera calibration from dark frames and flats or a movie (plexloc.camera.calibration, plexloc calibrate-camera):
known cameras simulated with the project's own camera models, their settings measured back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import torch

from plexloc.camera.calibration import (
    GAIN_MAP_MAX_SE,
    calibrate_camera,
    movie_stats,
    movie_transfer,
    stack_stats,
)
from plexloc.camera.models import EMCCD, SCMOS, camera_from_config
from plexloc.cli.main import main
from plexloc.config import SimulationConfig, load_camera_config
from plexloc.errors import InputError
from plexloc.simulation import Simulator

H = W = 40


def _scmos(seed: int = 1):
    rng = np.random.default_rng(seed)
    gain = torch.tensor(rng.normal(0.5, 0.01, (H, W)), dtype=torch.float32)
    base = torch.tensor(rng.normal(100.0, 3.0, (H, W)), dtype=torch.float32)
    read = torch.tensor(np.abs(rng.normal(1.5, 0.5, (H, W))), dtype=torch.float32)
    return SCMOS(qe=0.8, e_per_adu=gain, baseline=base, read_sigma=read), gain, base, read


def _frames(cam, photons: float, n: int, seed: int) -> np.ndarray:
    return cam(torch.full((n, H, W), float(photons)), generator=torch.Generator().manual_seed(seed)).numpy()


def test_scmos_dark_and_flats_give_the_offset_read_noise_and_gain_maps():
    cam, gain, base, read = _scmos()
    dark = stack_stats([_frames(cam, 0.0, 300, 1)])
    flats = [stack_stats(np.array_split(_frames(cam, level, 300, 2 + k), 3)) for k, level in enumerate((60.0, 400.0))]
    cal = calibrate_camera(dark, kind="scmos", flats=flats, gain_map="yes")
    # the global gain through the photon transfer: 1 / slope, within 1 % of the pixels' mean gain
    assert abs(1.0 / cal.transfer.slope / float(gain.mean()) - 1) < 0.01
    # per-pixel offset: within 5 standard errors (read noise / sqrt(frames)) of the true map, where the read noise
    # is over 1 ADU (below it, rounding to integers moves the mean: what the camera outputs, rightly measured)
    noisy = read.numpy() / gain.numpy() > 1.0
    se = (read.numpy() / gain.numpy()) / math.sqrt(300)
    assert noisy.mean() > 0.8
    assert np.all(np.abs(cal.maps["baseline"] - base.numpy())[noisy] < 5 * se[noisy])
    # read variance (e-²): median ratio to the truth within 3 %, and the map follows the pixels
    rv = cal.maps["read_variance"] / read.numpy() ** 2
    assert abs(float(np.median(rv[read.numpy() > 0.5])) - 1) < 0.03
    assert np.corrcoef(cal.maps["read_variance"].ravel(), (read.numpy() ** 2).ravel())[0, 1] > 0.9
    # a gain map asked for: its mean right, its scatter what the stated standard error says (within 25 %)
    g = cal.maps["e_per_adu"] / gain.numpy()
    assert abs(float(np.median(g)) - 1) < 0.01
    assert abs(float(np.std(g)) / cal.gain_map_se - 1) < 0.25
    # auto: 600 flat frames measure a pixel's gain to ~10 %, far from the 2 % a map needs -> one gain, and a note
    auto = calibrate_camera(dark, kind="scmos", flats=flats)
    assert "e_per_adu" not in auto.maps and isinstance(auto.config["e_per_adu"], float)
    assert auto.gain_map_se > GAIN_MAP_MAX_SE and any("one gain for every pixel" in n for n in auto.notes)


def test_emccd_dark_and_flats_give_e_per_adu_baseline_and_read_noise():
    cam = EMCCD(qe=0.9, spurious_charge=0.002, em_gain=300.0, e_per_adu=45.0, baseline=100.0, read_sigma=74.4)
    dark = stack_stats([_frames(cam, 0.0, 300, 5)])
    flats = [stack_stats([_frames(cam, level, 200, 6 + k)]) for k, level in enumerate((5.0, 20.0, 80.0))]
    cal = calibrate_camera(dark, kind="emccd", flats=flats, em_gain=300.0)
    c = cal.config
    assert c["kind"] == "emccd" and c["em_gain"] == 300.0 and c["qe"] == 0.9 and c["spurious_charge"] == 0.002
    assert abs(c["e_per_adu"] / 45.0 - 1) < 0.02
    assert abs(c["baseline"] - 100.0) < 0.05
    assert abs(c["read_sigma"] / 74.4 - 1) < 0.03  # the dark charge's share taken out, not counted twice
    assert not cal.maps
    with pytest.raises(InputError, match="EM gain"):
        calibrate_camera(dark, kind="emccd", flats=flats)


def test_gain_from_a_sparse_movie_within_five_percent():
    data = {"px_size_nm": 100.0, "frame_size": [64, 64], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
            "camera": {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5},
            "emitters": {"density_per_um2": 0.1, "photons_range": [1000.0, 5000.0]},
            "background": {"range": [40.0, 120.0]}}
    sim = Simulator(SimulationConfig.model_validate(data))
    gen = torch.Generator().manual_seed(4)
    frames = sim.simulate_movie(200, generator=gen).frames.reshape(200, 64, 64).numpy()
    dark = stack_stats([sim.channels[0].camera(torch.zeros(200, 64, 64), generator=gen).numpy()])
    tc = movie_transfer(np.array_split(frames, 4), dark.mean, np.maximum(dark.diff_var - 1 / 12, 0.0))
    cal = calibrate_camera(dark, kind="scmos", movie=tc)
    assert abs(cal.config["e_per_adu"] / 0.5 - 1) < 0.05
    assert tc.clipped < 0.0008 and not any("crowd" in n for n in cal.notes)
    # the camera check's favourite mistake, a gain 2x off, is plain in the slope
    assert abs(tc.slope - 2.0) < 0.1


def test_bad_stacks_are_refused_naming_the_problem(tmp_path):
    cam, *_ = _scmos()
    dark = stack_stats([_frames(cam, 0.0, 30, 1)])
    with pytest.raises(InputError, match="at least 20"):
        calibrate_camera(stack_stats([_frames(cam, 0.0, 10, 1)]), kind="scmos", flats=[dark])
    with pytest.raises(InputError, match="too dim"):
        calibrate_camera(dark, kind="scmos", flats=[stack_stats([_frames(cam, 0.0, 30, 2)])])
    other = stack_stats([np.zeros((5, 8, 8)) + np.arange(5)[:, None, None]], source="small.tif")
    with pytest.raises(InputError, match="small.tif.*frame size"):
        calibrate_camera(dark, kind="scmos", flats=[other])
    with pytest.raises(InputError, match="flat fields or a movie"):
        calibrate_camera(dark, kind="scmos")
    bad = _frames(cam, 0.0, 4, 3).astype(np.float32)
    bad[2, 5, 7] = np.nan
    with pytest.raises(InputError, match="frame 2 has nan at row 5, column 7"):
        stack_stats([bad[:2], bad[2:]])
    # a flat brighter than the dark but whose variance does not grow: not a camera (no photon transfer)
    flat = stack_stats([_frames(cam, 0.0, 30, 4) + 500.0])
    with pytest.raises(InputError, match="too dim"):
        calibrate_camera(dark, kind="scmos", flats=[flat])


def test_cli_writes_a_camera_yaml_that_fit_reads(tmp_path, capsys):
    cam, gain, base, read = _scmos()
    for name, level, seed in (("dark", 0.0, 1), ("flat1", 100.0, 2), ("flat2", 400.0, 3)):
        tifffile.imwrite(tmp_path / f"{name}.tif", _frames(cam, level, 100, seed).astype(np.uint16))
    out = tmp_path / "cal" / "camera.yaml"
    out.parent.mkdir()
    rc = main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--flat", str(tmp_path / "flat1.tif"),
               str(tmp_path / "flat2.tif"), "--kind", "scmos", "--qe", "0.8", "--out", str(out),
               "--json", str(tmp_path / "cal.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "e_per_adu 0.49" in text or "e_per_adu 0.50" in text
    for f in ("camera.yaml", "camera_baseline.npy", "camera_read_variance.npy", "camera.png"):
        assert (out.parent / f).exists(), f
    # the YAML names its maps relative to itself: it loads from anywhere, and converts like the true camera
    cfg = load_camera_config(out)
    measured = camera_from_config(cfg)
    adu = torch.tensor(_frames(cam, 200.0, 50, 9))
    ratio = float(measured.to_photons(adu.clone()).mean() / cam.to_photons(adu.clone()).mean())
    assert abs(ratio - 1) < 0.02
    assert np.isclose(movie_stats(tmp_path / "dark.tif").mean, np.load(out.parent / "camera_baseline.npy"), atol=1e-3).all()
    # an EMCCD without its gain setting: refused before any file is read
    assert main(["calibrate-camera", "--dark", str(tmp_path / "dark.tif"), "--movie", str(tmp_path / "flat1.tif"),
                 "--kind", "emccd", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "--em-gain" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_scmos_maps_of_another_size_name_their_files(tmp_path):
    """A camera file's maps measured on another camera region: the error names the map files and what to do."""
    np.save(tmp_path / "cam_baseline.npy", np.full((16, 16), 100.0, np.float32))
    (tmp_path / "cam.yaml").write_text("kind: scmos\nqe: 0.8\nspurious_charge: 0\ne_per_adu: 0.5\nbaseline: cam_baseline.npy\n"
                                      "read_sigma: 1.5\n")
    cam = camera_from_config(load_camera_config(tmp_path / "cam.yaml"))
    with pytest.raises(InputError, match=r"\(32, 32\).*\(16, 16\).*baseline: .*cam_baseline\.npy.*crop them"):
        cam.to_photons(torch.zeros(2, 32, 32))
