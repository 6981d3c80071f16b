"""Session 39: the simulator's stage drift (``emitters.drift``, ``plexloc simulate --drift-nm``).

Every frame's emitters are rendered displaced by that frame's drift; the truth keeps the sample's positions; the drift
per frame goes to ``truth_drift.csv``. Off (the default) the movie is the one without the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from plexloc.cli.main import main
from plexloc.config import SimulationConfig, validate_config
from plexloc.io.tables import read_table
from plexloc.io.tiff import read_movie
from plexloc.simulation import Simulator
from plexloc.simulation.emitters import movie_drift_nm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _config(drift: dict | None = None, size: int = 32, **emitters) -> SimulationConfig:
    data = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    data["frame_size"] = [size, size]
    data["emitters"].update(emitters)
    if drift is not None:
        data["emitters"]["drift"] = drift
    return validate_config(data, SimulationConfig)


def test_movie_drift_is_linear_plus_a_seeded_wobble_and_none_by_default():
    assert movie_drift_nm(_config().emitters.drift, 100) is None
    d = movie_drift_nm(_config({"linear_nm": [40.0, -20.0, 100.0]}).emitters.drift, 101)
    assert d.shape == (101, 3)
    np.testing.assert_allclose(d[0], 0.0)
    np.testing.assert_allclose(d[50], [20.0, -10.0, 50.0])
    np.testing.assert_allclose(d[100], [40.0, -20.0, 100.0])
    w = _config({"wobble_nm": [30.0, 0.0, 10.0], "seed": 3}).emitters.drift
    a, b = movie_drift_nm(w, 500), movie_drift_nm(w, 500)
    np.testing.assert_array_equal(a, b)  # the seed's
    np.testing.assert_allclose(a[0], 0.0, atol=1e-12)
    assert np.all(a[:, 1] == 0.0) and 10.0 < np.ptp(a[:, 0]) <= 60.0 and 2.0 < np.ptp(a[:, 2]) <= 20.0
    other = movie_drift_nm(w.model_copy(update={"seed": 4}), 500)
    assert not np.allclose(a, other)


def _rendered(sim: Simulator, n_frames: int, seed: int) -> tuple[list, object, np.ndarray]:
    """The emitters each chunk rendered (positions, frame), the truth table and the expected photons (no camera)."""
    seen = []
    render = sim.expected_photons

    def record(em, bg, **kw):
        seen.append((em.xyz_nm.clone(), em.frame_ix.clone(), bg.shape[1]))  # the frames of this render, in order
        return render(em, bg, **kw)

    sim.expected_photons = record
    sim.camera = lambda expected, **kw: expected  # the expected photons themselves: a centroid without noise
    try:
        mov = sim.simulate_movie(n_frames, generator=torch.Generator().manual_seed(seed), chunk_frames=7,
                                 margin_px=0.0)
    finally:
        del sim.expected_photons, sim.camera
    return seen, mov.truth, mov.frames[0].numpy()


def test_frames_show_the_drifting_sample_and_the_truth_keeps_its_positions():
    n = 40
    kw = dict(size=40, photons_range=[5000.0, 5000.0], density_per_um2=0.1)
    cfg, off = _config({"linear_nm": [190.0, -95.0, 0.0]}, **kw), _config(**kw)
    for c in (cfg, off):
        c.background.range = (0.0, 0.0)
    seen_on, truth_on, frames_on = _rendered(Simulator(cfg), n, 5)
    seen_off, truth_off, frames_off = _rendered(Simulator(off), n, 5)
    assert truth_on == truth_off and len(truth_on) > 40  # the same emitters, at the sample's own positions
    drift = movie_drift_nm(cfg.emitters.drift, n)
    start = 0
    for (xyz_on, f_on, n_on), (xyz_off, f_off, _) in zip(seen_on, seen_off):  # the emitters each render drew
        assert torch.equal(f_on, f_off)
        shift = (xyz_on - xyz_off).double().numpy()
        np.testing.assert_allclose(shift, drift[f_on.numpy() + start], atol=1e-3)
        start += n_on  # renders tile the movie (noise blocks of the movie since session 50, not chunks of 7)
    # fit-free: the frames' photon centroid moves by the drift, in frames whose every emitter lies 800 nm or more
    # inside the field (the Gaussian's 130 nm sigma and the drift's 212 nm keep its light inside)
    h, w = frames_on.shape[1:]
    yy, xx = (np.mgrid[0:h, 0:w] + 0.5) * 100.0
    x, y, f = truth_on["x_nm"], truth_on["y_nm"], truth_on["frame"]
    inside = (x > 800) & (x < w * 100 - 800) & (y > 800) & (y < h * 100 - 800)
    shifts = []
    for k in range(n):
        if not (f == k).any() or not inside[f == k].all() or frames_off[k].sum() < 1000:
            continue
        c = [np.sum(fr * g) / np.sum(fr) for fr in (frames_on[k], frames_off[k]) for g in (xx, yy)]
        shifts.append((k, c[0] - c[2], c[1] - c[3]))
    assert len(shifts) >= 3
    for k, dx, dy in shifts:
        assert abs(dx - drift[k, 0]) < 0.5 and abs(dy - drift[k, 1]) < 0.5, (k, dx, dy, drift[k])


def test_simulate_drift_option_writes_truth_drift_and_off_is_unchanged(tmp_path):
    data = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    data["frame_size"] = [24, 20]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))
    args = ["simulate", str(cfg), "--frames", "30", "--seed", "3", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "off")]) == 0
    assert not (tmp_path / "off" / "truth_drift.csv").exists()
    assert main([*args, "--out", str(tmp_path / "on"), "--drift-nm", "60", "-30", "20"]) == 0
    d = np.genfromtxt(tmp_path / "on" / "truth_drift.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(d["frame"], np.arange(30))
    assert d.dtype.names == ("frame", "x_nm", "y_nm", "z_nm")
    np.testing.assert_allclose([d["x_nm"][-1], d["y_nm"][-1], d["z_nm"][-1]], [60.0, -30.0, 20.0])
    np.testing.assert_allclose(d["x_nm"][15], 60.0 * 15 / 29, atol=1e-3)
    assert read_table(tmp_path / "on" / "truth.csv") == read_table(tmp_path / "off" / "truth.csv")
    assert not np.array_equal(read_movie(tmp_path / "on" / "movie.tif"), read_movie(tmp_path / "off" / "movie.tif"))
    saved = yaml.safe_load((tmp_path / "on" / "config.yaml").read_text())
    assert saved["emitters"]["drift"]["linear_nm"] == [60.0, -30.0, 20.0]
    # the config written holds the drift: simulating from it gives the same movie, and an explicit zero drift is none
    assert main(["simulate", str(tmp_path / "on" / "config.yaml"), "--frames", "30", "--seed", "3", "--device", "cpu",
                 "--out", str(tmp_path / "again")]) == 0
    again = read_movie(tmp_path / "again" / "movie.tif")
    np.testing.assert_array_equal(again, read_movie(tmp_path / "on" / "movie.tif"))
    assert main([*args, "--out", str(tmp_path / "on"), "--drift-nm", "0", "0", "0"]) == 0
    assert not (tmp_path / "on" / "truth_drift.csv").exists()  # the earlier run's file is not left for this movie
    np.testing.assert_array_equal(read_movie(tmp_path / "on" / "movie.tif"), read_movie(tmp_path / "off" / "movie.tif"))


def test_drift_config_is_checked():
    with pytest.raises(ValueError):
        _config({"wobble_nm": [-1.0, 0.0, 0.0]})
    with pytest.raises(ValueError):
        _config({"linear_nm": [1.0, 2.0]})
