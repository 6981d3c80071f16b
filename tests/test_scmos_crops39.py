"""Training with sCMOS per-pixel maps of the full chip (``plexloc calibrate-camera``) and a smaller training ROI
(``frame_size``): each sample takes its own random cut of the maps, as DECODE does (Speiser et al. 2021). Until
2026-12-06 ``plexloc train`` refused such a configuration and told the user to train with the maps' means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_TRAIN, full_chip_camera

from plexloc.camera.models import SCMOS
from plexloc.config import SimulationConfig, TrainConfig, validate_config
from plexloc.errors import InputError
from plexloc.simulation import BatchGenerator, Simulator
from plexloc.train.validation import batch_photons

CAM = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5, "spurious_charge": 0.0}
HOT_ROW, HOT_COL = 12, 10  # inside every 16x16 cut of 24x20 maps (rows 8-15 and columns 4-15 are in all of them)


def _sim(maps: dict[str, torch.Tensor] | None = None, frame=(16, 16), **cfg) -> Simulator:
    """A one-channel 2D sCMOS simulation whose camera takes ``maps`` (e_per_adu, baseline, read_sigma tensors)."""
    sim = Simulator(validate_config({"frame_size": list(frame), "psf": {"kind": "gaussian"}, "camera": CAM,
                                     "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 1500.0]},
                                     "background": {"range": [20.0, 30.0]}, **cfg}, SimulationConfig))
    if maps:
        cam = sim.channels[0].camera
        sim.channels[0].camera = SCMOS(qe=cam.qe, spurious_charge=cam.spurious_charge,
                                       **{k: maps.get(k, getattr(cam, k))
                                          for k in ("e_per_adu", "baseline", "read_sigma")})
    return sim


def _hot_baseline(shape=(24, 20)) -> torch.Tensor:
    """A baseline map of 100 ADU with one pixel at 60000 ADU: the pixel shows where a frame's cut lies."""
    base = torch.full(shape, 100.0)
    base[HOT_ROW, HOT_COL] = 60000.0
    return base


def _hot_positions(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 2) (row, column) of the brightest pixel of every frame of a (B, T, 1, H, W) batch."""
    b, t, _, h, w = frames.shape
    flat = frames[:, :, 0].reshape(b, t, -1).argmax(-1)
    return torch.stack([flat // w, flat % w], dim=-1)


def test_a_hot_pixel_of_the_full_chip_maps_moves_with_each_samples_cut_uniformly():
    """24x20 maps (one hot pixel) and 16x16 frames: a cut's corner is uniform over the 9 x 5 positions that keep the
    frame inside the maps. The hot pixel sits at (12 - y0, 10 - x0) in the frames of the sample cut at (x0, y0), in
    all three frames of its window alike; its row and column are uniform (chi-square), and the frames convert to
    photons through the same cut (the hot pixel's photons are ordinary). The old code refused the maps."""
    torch.set_num_threads(1)
    sim = _sim({"baseline": _hot_baseline()})
    gen = BatchGenerator(sim, batch_size=600, window=3, seed=4)
    batch = gen()
    off = batch.map_offset_px
    assert off.shape == (600, 1, 2) and off.dtype == torch.int64
    pos = _hot_positions(batch.frames)
    assert bool((pos == pos[:, :1]).all())  # one cut for the whole window of a sample
    np.testing.assert_array_equal(pos[:, 0, 0].numpy(), HOT_ROW - off[:, 0, 1].numpy())
    np.testing.assert_array_equal(pos[:, 0, 1].numpy(), HOT_COL - off[:, 0, 0].numpy())
    for values, n_pos in ((off[:, 0, 0], 5), (off[:, 0, 1], 9)):  # x in [0, 4], y in [0, 8]
        counts = np.bincount(values.numpy(), minlength=n_pos)
        assert len(counts) == n_pos and counts.min() > 0
        expect = len(values) / n_pos
        chi2 = float(((counts - expect) ** 2 / expect).sum())
        assert chi2 < 26.1  # the 99.9 % point of chi-square with 8 degrees of freedom (4 for x: 18.5)
    # the cuts differ between samples: all 45 corners occur in 600 samples
    assert len({(int(x), int(y)) for x, y in off[:, 0]}) == 45
    x = batch_photons(sim, batch.frames, off)
    b = torch.arange(600)
    hot = x[b, 1, 0, pos[:, 1, 0], pos[:, 1, 1]]
    assert float(hot.abs().max()) < 3000.0  # ~60000 ADU * 0.5 / 0.8 = 37000 photons if converted with another cut
    assert abs(float(hot.mean()) - float(x.mean())) < 10.0


def test_the_read_noise_of_a_pixel_of_the_cut_is_the_maps_average_over_the_cuts():
    """Dark frames (no photons) through a read-noise map r(row, col) = 2 + 0.5 col + 0.25 row e- (e_per_adu 0.5):
    the variance of crop pixel (0, 0) over 20000 samples is the average over the uniform cut corners of
    (r / 0.5)^2, plus the rounding's 1/12 ADU^2: 67.75 ADU^2 (a fixed corner cut would give 16.08)."""
    torch.set_num_threads(1)
    rows, cols = torch.meshgrid(torch.arange(24.0), torch.arange(20.0), indexing="ij")
    read = 2.0 + 0.5 * cols + 0.25 * rows
    sim = _sim({"read_sigma": read, "baseline": torch.full((24, 20), 1000.0)})
    gen = BatchGenerator(sim, batch_size=20000, window=1, seed=0)
    off = gen.sample_map_offsets(20000)[:, 0]  # (N, 2): the generator's own cuts
    cam = sim.channels[0].camera
    adu = cam(torch.zeros(20000, 16, 16), generator=gen.generator, map_offset_px=off)
    want = float(((read[:9, :5] / 0.5) ** 2).mean()) + 1.0 / 12.0
    got = float(adu[:, 0, 0].double().var())
    assert want == pytest.approx(67.75, abs=0.01)
    assert got == pytest.approx(want, rel=0.04)  # 20000 samples: the variance's own spread is ~1.5 %
    # the closed-form variance of a cut matches too, pixel by pixel
    var = cam.noise_variance_photons(torch.zeros(20000, 16, 16), map_offset_px=off) * 0.8**2 / 0.5**2
    assert float(var[:, 0, 0].mean()) == pytest.approx(want, rel=0.02)


def test_the_same_seed_gives_the_same_cuts_and_frames_and_another_seed_other_cuts():
    torch.set_num_threads(1)
    sim = _sim({"baseline": _hot_baseline(), "e_per_adu": 0.5 + 0.01 * torch.rand(24, 20)})
    a, b = (BatchGenerator(sim, batch_size=8, window=3, seed=11)() for _ in range(2))
    c = BatchGenerator(sim, batch_size=8, window=3, seed=12)()
    assert torch.equal(a.map_offset_px, b.map_offset_px) and torch.equal(a.frames, b.frames)
    assert not torch.equal(a.map_offset_px, c.map_offset_px)


def test_the_fixed_validation_set_has_the_same_cuts_every_time(tmp_path):
    """The run's validation set (its own seed) is drawn again on --resume and by recalibrate-model: the same cuts of
    the maps and the same frames."""
    from plexloc.train.trainer import training_simulation, validation_set

    torch.set_num_threads(1)
    np.save(tmp_path / "off.npy", _hot_baseline().numpy())
    cfg = TrainConfig.model_validate({**TINY_TRAIN, "camera": {**CAM, "baseline": str(tmp_path / "off.npy")}})
    sets = [validation_set(cfg, Simulator(training_simulation(cfg)), window=3) for _ in range(2)]
    for x, y in zip(sets[0].batches, sets[1].batches):
        assert x.map_offset_px is not None and x.map_offset_px.shape == (x.frames.shape[0], 1, 2)
        assert torch.equal(x.map_offset_px, y.map_offset_px) and torch.equal(x.frames, y.frames)
    offs = torch.cat([b.map_offset_px for b in sets[0].batches])
    assert len(torch.unique(offs, dim=0)) > 1


def test_maps_of_the_frames_shape_take_the_old_path_bit_for_bit():
    """Maps exactly of frame_size: no cut, nothing more drawn from the generator, frames identical to the stream's
    own primitives (as the generator composed them before cutting existed); and the same frames as scalars where the
    maps are constant."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(5)
    maps = {"e_per_adu": 0.45 + 0.1 * torch.rand(16, 16, generator=g),
            "baseline": 100 + 5 * torch.rand(16, 16, generator=g),
            "read_sigma": 1 + torch.rand(16, 16, generator=g)}
    sim = _sim(maps)
    gen = BatchGenerator(sim, batch_size=6, window=3, seed=9, margin_px=2.0)
    assert gen.map_crops == {}
    batch = gen()
    assert batch.map_offset_px is None
    r = torch.Generator().manual_seed(9)
    em = sim.sample_emitters(n_sequences=6, n_frames=3, generator=r, margin_nm=2.0 * max(sim.px_size_nm))
    bg = sim.sample_background(n_sequences=6, n_frames=3, generator=r)
    off = gen.sample_roi_offsets(6)
    expected = sim.expected_photons(em, bg, roi_offset_nm=sim.roi_offset_nm(off)[em.frame_ix // 3])
    raw = sim.channels[0].camera(expected[0], generator=r)
    assert torch.equal(batch.frames[:, :, 0], raw.reshape(6, 3, 16, 16))
    x = batch_photons(sim, batch.frames)
    assert torch.equal(batch_photons(sim, batch.frames, batch.map_offset_px), x)
    const = _sim({"e_per_adu": torch.full((16, 16), 0.5), "baseline": torch.full((16, 16), 100.0),
                  "read_sigma": torch.full((16, 16), 1.5)})
    scalar = _sim()
    assert torch.equal(BatchGenerator(const, batch_size=6, seed=2)().frames,
                       BatchGenerator(scalar, batch_size=6, seed=2)().frames)


def test_maps_smaller_than_the_frame_are_refused_naming_field_files_and_shapes(tmp_path):
    np.save(tmp_path / "off.npy", np.full((24, 12), 100, np.float32))
    sim = _sim(frame=(16, 16))
    cam = SCMOS(qe=0.8, baseline=torch.full((24, 12), 100.0))
    cam.map_files = {"baseline": str(tmp_path / "off.npy")}
    sim.channels[0].camera = cam
    with pytest.raises(InputError, match=r"camera: the sCMOS maps \(baseline: .*off.npy\) are 24x12 px .* frame_size, "
                                         r"the simulated frame \(the training ROI\), is 16x16"):
        BatchGenerator(sim, batch_size=2)


def _two_channel(maps_shapes, **over) -> Simulator:
    ch = {"psf": {"kind": "gaussian"}, "camera": CAM, "throughput": 0.5}
    sim = Simulator(validate_config({"frame_size": [16, 16], "channels": [ch, ch], "photon_model": {"kind": "linked"},
                                     "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 1500.0]},
                                     "background": {"range": [20.0, 30.0]}, **over}, SimulationConfig))
    for c, shape in enumerate(maps_shapes):
        base = torch.full(shape, 100.0)
        base[15, 15] = 60000.0  # inside every 16x16 cut of maps up to 31x31
        sim.channels[c].camera = SCMOS(qe=0.8, baseline=base)
    return sim


@pytest.mark.parametrize("split", [None, {"boxes": [[0, 0, 20, 24], [20, 0, 20, 24]], "flip": ["none", "x"]}])
def test_each_channel_cuts_its_own_maps_independently(split):
    """Two channels with maps of 24x20 and 26x30 px (the second: a split view's box maps, or a second camera's): each
    channel's hot pixel follows its own cut, the two cuts are drawn independently (they differ in most samples), and
    the frames convert to photons through them."""
    torch.set_num_threads(1)
    # a split view's channel maps cover its box (24x20 for both here)
    sim = _two_channel([(24, 20), (24, 20)], split_view=split) if split else _two_channel([(24, 20), (26, 30)])
    batch = BatchGenerator(sim, batch_size=200, window=3, seed=1)()
    off = batch.map_offset_px
    assert off.shape == (200, 2, 2)
    for c in range(2):
        pos = _hot_positions(batch.frames[:, :, c:c + 1])
        assert bool((pos == pos[:, :1]).all())
        np.testing.assert_array_equal(pos[:, 0, 0].numpy(), 15 - off[:, c, 1].numpy())
        np.testing.assert_array_equal(pos[:, 0, 1].numpy(), 15 - off[:, c, 0].numpy())
    assert int((off[:, 0] != off[:, 1]).any(-1).sum()) > 150
    if not split:
        assert int(off[:, 1, 0].max()) == 14 and int(off[:, 1, 1].max()) == 10  # 30 - 16, 26 - 16
    assert float(batch_photons(sim, batch.frames, off).abs().max()) < 5000.0


def test_plexloc_train_with_full_chip_maps_runs_and_the_model_fits_a_camera_roi(tmp_path, capsys):
    """The configuration the walk of 2026-12-06 was refused with (a camera file naming 40x36 full-chip maps, a
    16x16 training ROI) now trains, saying that the maps are cut per sample; the model then fits a 24x20 camera ROI
    movie with the same camera file (plexloc fit cuts the maps at --roi-offset). Maps smaller than frame_size are
    still refused before anything is built, naming the camera field, the files and both shapes."""
    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    full_chip_camera(tmp_path)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "camera": str(tmp_path / "cam.yaml")}))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "train.yaml"), "--out", str(run), "--steps", "3", "--device", "cpu",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "sCMOS maps (40x36 px) larger than frame_size 16x16: each training sample takes its own random cut" in out
    assert "done: step 3" in out and (run / "model.pt").exists()
    write_movie(tmp_path / "roi.tif", rng.poisson(150, (4, 24, 20)).astype(np.uint16))
    assert main(["fit", str(tmp_path / "roi.tif"), "--model", str(run), "--out", str(tmp_path / "locs.csv"),
                 "--camera", str(tmp_path / "cam.yaml"), "--roi-offset", "6", "4", "--device", "cpu"]) == 0
    assert "cut to the movie's frames at chip x 6, y 4 (--roi-offset)" in capsys.readouterr().err
    assert (tmp_path / "locs.csv").exists()
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "frame_size": [40, 40],
                                                         "camera": str(tmp_path / "cam.yaml")}))
    assert main(["train", str(tmp_path / "small.yaml"), "--out", str(tmp_path / "run2"), "--steps", "1",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "small.yaml: camera: the sCMOS maps (e_per_adu: " in err and "var.npy" in err
    assert "are 40x36 px (rows x columns) but frame_size, the simulated frame (the training ROI), is 40x40" in err
    assert not (tmp_path / "run2").exists()
