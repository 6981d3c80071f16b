"""Multi-channel data path of the network: ROI position on the chip, the transformation indicator,
training and fitting with two channels (tiny models; the accuracy bars are benchmarks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plexloc.config import TrainConfig
from plexloc.infer import Predictor, fit_movie, sliding_windows
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer, LocalizerSpec
from plexloc.simulation import BatchGenerator, Simulator
from plexloc.simulation.geometry import apply_transform, shift_transform, transform_indicator
from plexloc.train import Trainer

PX = 100.0


def rotation(deg: float, dx_nm: float = 0.0, dy_nm: float = 0.0) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), -math.sin(a), dx_nm], [math.sin(a), math.cos(a), dy_nm], [0.0, 0.0, 1.0]])


def test_indicator_is_the_local_shift_in_pixels():
    off = torch.tensor([[0.0, 0.0], [7.0, 3.0]])
    ind = transform_indicator([torch.eye(3), shift_transform(PX, -0.5 * PX)], off, (4, 5), (PX, PX))
    assert ind.shape == (2, 4, 4, 5)
    assert torch.count_nonzero(ind[:, :2]) == 0  # the reference channel maps onto itself
    assert torch.allclose(ind[:, 2], torch.ones(2, 4, 5)) and torch.allclose(ind[:, 3], torch.full((2, 4, 5), -0.5))
    # a rotation's indicator depends on the absolute chip position: an ROI at (7, 3) sees the big map's crop
    rot = [torch.eye(3), rotation(1.0, 30.0, -20.0)]
    big = transform_indicator(rot, torch.zeros(1, 2), (12, 16), (PX, PX))
    roi = transform_indicator(rot, torch.tensor([[7.0, 3.0]]), (4, 5), (PX, PX))
    assert torch.allclose(roi[0], big[0, :, 3:7, 7:12], atol=1e-5)
    # and it is T(p) - p at the pixel centre
    x, y = (7 + 2 + 0.5) * PX, (3 + 1 + 0.5) * PX
    tx, ty = apply_transform(rot[1].double(), torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
    assert float(roi[0, 2, 1, 2]) == pytest.approx((float(tx) - x) / PX, abs=1e-5)
    assert float(roi[0, 3, 1, 2]) == pytest.approx((float(ty) - y) / PX, abs=1e-5)


def two_channel_config(**over) -> TrainConfig:
    cam = {"kind": "emccd"}
    d = {
        "px_size_nm": PX,
        "frame_size": [16, 16],
        "chip_size_px": [64, 80],
        "photon_model": {"kind": "linked"},
        "channels": [
            {"psf": {"kind": "astigmatic"}, "camera": cam, "throughput": 0.5},
            {"psf": {"kind": "astigmatic"}, "camera": cam, "throughput": 0.5, "z_offset_nm": 300.0,
             "transform": rotation(1.0, 150.0, -80.0).tolist()},
        ],
        "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0], "z_range_nm": [-300.0, 500.0]},
        "background": {"range": [20.0, 50.0]},
        "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1},
        "training": {"batch_size": 4, "validate_every": 2, "validation_samples": 4, "warmup_steps": 1},
    }
    d.update(over)
    return TrainConfig.model_validate(d)


def test_training_samples_roi_positions_over_the_chip_and_renders_through_them():
    cfg = two_channel_config()
    sim = Simulator(cfg.simulation())
    b = BatchGenerator(sim, batch_size=64, seed=3)()
    off = b.roi_offset_px
    assert off.shape == (64, 2) and off.min() >= 0
    assert off[:, 0].max() <= 80 - 16 and off[:, 1].max() <= 64 - 16 and len(torch.unique(off[:, 0])) > 10
    # channel 1 sees an emitter at T(r + o) - o: at a chip position far from the origin the rotation adds
    # a large shift, which the ROI-relative position must carry
    ch = sim.channels[1]
    r = torch.tensor([[800.0, 800.0, 0.0]])
    o = torch.tensor([[6000.0, 4000.0]])
    x, y, z = ch.positions(r, o)
    tx, ty = apply_transform(ch.transform, r[:, 0] + o[:, 0], r[:, 1] + o[:, 1])
    assert float(x) == pytest.approx(float(tx - o[0, 0])) and float(y) == pytest.approx(float(ty - o[0, 1]))
    assert float(z) == -300.0
    x0, y0, _ = ch.positions(r)
    assert abs(float(x) - float(x0)) > 50.0  # the ROI's chip position matters for a rotated channel


def test_training_roi_positions_cover_the_chips_border_pixels_as_often_as_its_middle():
    """16-px ROIs on an 80 x 64 chip, 20,000 samples: every chip pixel (per axis) is inside a sampled ROI at least
    about as often as the middle ones and at most about twice as often (a uniform corner would leave the border
    pixel in 1/16 of the middle's ROIs); corners stay on the chip."""
    cfg = two_channel_config()
    sim = Simulator(cfg.simulation())
    gen = BatchGenerator(sim, batch_size=4, seed=5)
    off = gen.sample_roi_offsets(20_000).long()
    assert off.min() >= 0 and off[:, 0].max() == 80 - 16 and off[:, 1].max() == 64 - 16
    for axis, chip in ((0, 80), (1, 64)):
        cover = torch.zeros(chip)
        for c, k in zip(*torch.unique(off[:, axis], return_counts=True)):
            cover[c:c + 16] += k
        middle = cover[chip // 2 - 4:chip // 2 + 4].mean()
        assert cover.min() >= 0.85 * middle and cover.max() <= 2.2 * middle, (axis, cover / middle)
        assert cover[0] >= 0.85 * middle and cover[-1] >= 0.85 * middle


def test_chip_smaller_than_the_frame_is_an_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="chip_size_px"):
        two_channel_config(chip_size_px=[8, 8])


def test_two_channel_model_trains_and_fits_two_movies(tmp_path):
    torch.manual_seed(0)
    cfg = two_channel_config()
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.model.spec.n_channels == 2 and tr.model.spec.n_aux == 4 and tr.model.spec.n_photons == 1
    tr.run(steps=3)
    assert np.isfinite(tr.rows[-1]["val_loss"])
    use = [tr.rows[-1][f"channel_use_{c}"] for c in range(2)]  # logged at every validation
    assert max(use) == 1.0 and min(use) >= 0.0
    rng = np.random.default_rng(1)
    for c in range(2):
        write_movie(tmp_path / f"ch{c}.tif", (rng.poisson(30.0, size=(5, 24, 20)) * 10 + 100).astype(np.uint16))
    # three steps detect nothing: the same model with a detection bias of 0, so that the table has rows
    from plexloc.nets.io import load_model, save_model

    net, net_cfg, meta = load_model(tmp_path / "run")
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)
    save_model(tmp_path / "eager.pt", net, net_cfg, meta=meta)
    stats: dict = {}
    t = fit_movie([tmp_path / "ch0.tif", tmp_path / "ch1.tif"], tmp_path / "eager.pt", threshold=0.5,
                  roi_offset_px=(10, 4), stats=stats)
    assert len(t) > 20 and "duplicates" in stats  # the wrong-transform check runs on multi-channel output
    assert stats["roi_offset_px"] == (10, 4)
    for col in ("bg_ch0", "bg_ch1", "sigma_z_nm"):
        assert col in t.columns and np.isfinite(t[col]).all()
    from plexloc.errors import InputError

    with pytest.raises(InputError, match="2 channel"):
        fit_movie(tmp_path / "ch0.tif", tmp_path / "run")


def test_ratiometric_training_samples_independent_photons(tmp_path):
    cfg = two_channel_config(photon_model={"kind": "ratiometric", "ratios": [[0.8, 0.2], [0.3, 0.7]]},
                             channels=[{"psf": {"kind": "gaussian"}, "camera": {"kind": "emccd"}},
                                       {"psf": {"kind": "gaussian"}, "camera": {"kind": "emccd"}}],
                             emitters={"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0]})
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.sim.config.photon_model.kind == "independent" and tr.model.spec.n_photons == 2
    b = tr.generator()
    p = b.target_photons[b.target_mask]
    ratio = (p[:, 0] / p.sum(1)).numpy()
    assert ratio.std() > 0.1  # not the two dye ratios 0.8 / 0.3


def test_channel_use_finds_a_channel_the_network_ignores():
    """train.validation.channel_use: swapping one channel's content between samples moves the outputs of a network
    that reads it, and leaves them unchanged where that channel's path is cut; format_row warns about the latter."""
    from plexloc.train.trainer import format_row
    from plexloc.train.validation import channel_use

    torch.manual_seed(0)
    spec = LocalizerSpec(n_channels=2, n_aux=4, features=4, depth=1, union_features=4, union_depth=1,
                         input_offset=[50.0, 50.0], input_scale=[20.0, 20.0])
    net = Localizer(spec).eval()
    x = torch.rand(4, 3, 2, 16, 16) * 100 + 20
    aux = torch.zeros(4, 4, 16, 16)
    both = channel_use(net, x, aux)
    assert len(both) == 2 and max(both) == 1.0 and min(both) > 0.05
    with torch.no_grad():  # cut channel 1's path: its frame net's first convolution ignores the photon input
        first = next(m for m in net.frame_nets[1].modules() if isinstance(m, torch.nn.Conv2d))
        first.weight[:, 0] = 0.0
    cut = channel_use(net, x, aux)
    assert cut[0] == 1.0 and cut[1] < 1e-6
    assert channel_use(net, x[:1], aux[:1]) == [] and channel_use(Localizer(LocalizerSpec(features=4, depth=1,
                                                                         union_features=4, union_depth=1)), x[:, :, :1], None) == []
    row = {"step": 10, "channel_use_0": cut[0], "channel_use_1": cut[1]}
    text = format_row(row)
    assert "channel use 1.00 / 0.00" in text and "barely uses channel 1" in text
    assert "barely" not in format_row({"step": 10, "channel_use_0": 1.0, "channel_use_1": 0.36})


def test_tiles_get_their_own_chip_position():
    torch.manual_seed(0)
    spec = LocalizerSpec(n_channels=2, n_aux=4, features=4, depth=1, union_features=4, union_depth=1,
                         input_offset=[50.0, 50.0], input_scale=[20.0, 20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)
    tf = [torch.eye(3, dtype=torch.float64), rotation(2.0, 100.0, 50.0).double()]
    x = torch.rand(2, 3, 2, 40, 36) * 100 + 20
    whole = Predictor(net, transforms=tf).localize(x, (30, 12))
    tiled = Predictor(net, tile_px=16, margin_px=40, transforms=tf).localize(x, (30, 12))
    assert len(whole) == len(tiled) > 10
    a = torch.stack([whole.sample, whole.pixel_row, whole.pixel_col], 1).tolist()
    b = torch.stack([tiled.sample, tiled.pixel_row, tiled.pixel_col], 1).tolist()
    assert sorted(a) == sorted(b)
    moved = Predictor(net, transforms=tf).localize(x, (300, 200))
    assert len(moved) != len(whole) or not torch.allclose(moved.x_nm, whole.x_nm)


def test_frame_features_once_per_frame_with_the_transformation_indicator():
    torch.manual_seed(1)
    spec = LocalizerSpec(n_channels=2, n_aux=4, features=4, depth=1, union_features=4, union_depth=1,
                         input_offset=[50.0, 50.0], input_scale=[20.0, 20.0])
    net = Localizer(spec).eval()
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)
    tf = [torch.eye(3, dtype=torch.float64), rotation(2.0, 100.0, 50.0).double()]
    block = torch.rand(6, 2, 40, 36) * 100 + 20
    for p in (Predictor(net, transforms=tf), Predictor(net, tile_px=16, margin_px=40, transforms=tf)):
        a, b = p.localize(sliding_windows(block, 3), (30, 12)), p.localize_frames(block, (30, 12))
        assert len(a) == len(b) > 10 and torch.equal(a.pixel_col, b.pixel_col)
        assert torch.allclose(a.x_nm, b.x_nm, atol=1e-3) and torch.allclose(a.photons, b.photons, rtol=1e-4)


def test_margin_emitters_light_the_frame_but_are_not_targets():
    cfg = two_channel_config(chip_size_px=None)
    sim = Simulator(cfg.simulation())
    gen = BatchGenerator(sim, batch_size=256, seed=5, margin_px=8.0)
    b = gen()
    xy = b.target_xyz_nm[b.target_mask][:, :2]
    assert xy.min() >= 0 and xy[:, 0].max() < 1600 and xy[:, 1].max() < 1600
    em = sim.sample_emitters(n_sequences=2000, n_frames=1, generator=torch.Generator().manual_seed(0), margin_nm=800.0)
    x = em.xyz_nm[:, 0]
    assert x.min() < -700 and x.max() > 2300  # sampled over the widened area (1.6 um + 2 x 0.8 um)
    inside = ((x >= 0) & (x < 1600) & (em.xyz_nm[:, 1] >= 0) & (em.xyz_nm[:, 1] < 1600)).float().mean()
    assert float(inside) == pytest.approx((1.6 / 3.2) ** 2, abs=0.03)  # the density is unchanged


def test_registration_jitter_moves_only_the_other_channels():
    cfg = two_channel_config(chip_size_px=None, emitters={"density_per_um2": 2.0, "photons_range": [5000.0, 5000.0]},
                             background={"range": [0.0, 0.0]})
    sim = Simulator(cfg.simulation())
    em = sim.sample_emitters(n_sequences=1, n_frames=1, generator=torch.Generator().manual_seed(0))
    bg = torch.zeros(2, 1, 16, 16)
    shift = torch.zeros(2, len(em), 2)
    shift[1, :, 0] = 100.0  # one pixel in x
    a = sim.expected_photons(em, bg)
    b = sim.expected_photons(em, bg, channel_shift_nm=shift)
    assert torch.equal(a[0], b[0])
    # channel 1's image moved by exactly one column (pixel-integrated PSFs shift with their emitters)
    assert not torch.allclose(a[1, 0], b[1, 0])
    assert torch.allclose(b[1, 0][:, 1:], a[1, 0][:, :-1], rtol=1e-4, atol=1e-3)


def test_split_view_movie_fits_like_one_movie_per_channel(tmp_path):
    from plexloc.cli.main import main
    from plexloc.config import save_config
    from plexloc.io.splitview import split_frames
    from plexloc.io.tiff import read_movie

    torch.manual_seed(0)
    split = {"boxes": [[0, 0, 16, 16], [20, 0, 16, 16]], "flip": ["none", "x"]}
    cfg = two_channel_config(chip_size_px=None, split_view=split)
    save_config(cfg, tmp_path / "cfg.yaml")
    Trainer(cfg, tmp_path / "run").run(steps=2)
    assert main(["simulate", str(tmp_path / "cfg.yaml"), "--frames", "4", "--out", str(tmp_path / "sim"), "--device", "cpu"]) == 0
    raw = read_movie(tmp_path / "sim" / "movie.tif")
    assert raw.shape == (4, 16, 36)
    chans = split_frames(raw, cfg.split_view)
    for c in range(2):
        write_movie(tmp_path / f"ch{c}.tif", chans[:, c])
    from plexloc.nets.io import load_model

    net, run_cfg, _ = load_model(tmp_path / "run")
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # an untrained model: plenty of detections to compare
    a = fit_movie(tmp_path / "sim" / "movie.tif", net, config=run_cfg, threshold=0.3)
    b = fit_movie([tmp_path / "ch0.tif", tmp_path / "ch1.tif"], net, config=run_cfg, threshold=0.3)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a["x_nm"], b["x_nm"], atol=1e-3)
    # the right box is mirrored: channel 1's left column is the raw frame's column 35
    np.testing.assert_array_equal(chans[:, 1, :, 0], raw[:, :, 35])


@pytest.mark.parametrize("name,channels,photons", [
    ("2d_gaussian", 1, 1), ("3d_astigmatic", 1, 1), ("biplane", 2, 1), ("dual_color", 2, 2), ("demo_2d", 1, 1),
    ("quad_plane", 4, 1), ("dual_color_plex", 2, 2), ("dual_color_plex_2060", 2, 2), ("biplane_plex", 2, 1),
])
def test_every_example_simulates_and_gives_a_network(name, channels, photons):
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.train import make_spec
    from plexloc.train.trainer import training_simulation

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / f"{name}.yaml", TrainConfig)
    sim = Simulator(training_simulation(cfg))
    movie = sim.simulate_movie(2, generator=torch.Generator().manual_seed(0))
    assert movie.frames.shape[:2] == (channels, 2) and torch.isfinite(movie.frames).all()
    spec = make_spec(cfg, sim)
    assert (spec.n_channels, spec.n_photons, spec.n_aux) == (channels, photons, 2 * channels if channels > 1 else 0)
    if name == "dual_color_plex":  # per-channel backgrounds
        assert [float(b.mean()) for b in movie.bg] == [20.0, 135.0]


def test_multicolour_training_photons_are_independent_over_each_channels_widened_dye_range():
    """AF647/CF680 at 5000 photons: the dyes put 95-865 photons in channel 0 and 4135-4905 in channel 1;
    training (default ``photon_range_widen`` 2) draws channel 0 in [47.5, 1730] and channel 1 in [2067.5, 9810],
    independently (no correlation, every combination), so the test data's counts lie well inside the training
    distribution (a single 5000-photon range for both channels would leave channel 0's 95-865 unseen)."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.simulation.emitters import sample_emitters
    from plexloc.train.trainer import training_simulation

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "dual_color_plex.yaml", TrainConfig)
    assert cfg.training.photon_range_widen == 2.0
    sim_cfg = training_simulation(cfg)
    assert sim_cfg.photon_model.kind == "independent"
    np.testing.assert_allclose(sim_cfg.photon_model.channel_photons_range, [(47.5, 1730.0), (2067.5, 9810.0)])
    em = sample_emitters(sim_cfg.emitters, n_sequences=200, n_frames=5, fov_nm=(5000.0, 5000.0),
                         photon_model=sim_cfg.photon_model, throughputs=[1.0, 1.0],
                         generator=torch.Generator().manual_seed(0))
    ph = em.photons.double().numpy()
    assert len(ph) > 1000
    # per-frame counts carry the share of the frame the emitter was on (same in both channels): their
    # maxima are the flux bounds and their ratio is the flux ratio, which spans every combination
    assert 1600.0 < ph[:, 0].max() <= 1730.0 + 1e-3 and 9500.0 < ph[:, 1].max() <= 9810.0 + 1e-3
    ratio = ph[:, 0] / ph[:, 1]
    assert ratio.min() >= 47.5 / 9810.0 - 1e-6 and ratio.max() <= 1730.0 / 2067.5 + 1e-6
    assert ratio.min() < 0.019 and ratio.max() > 0.4  # beyond both dyes' ratios (0.019 / 0.981, 0.173 / 0.827)
    with pytest.raises(Exception, match="channel_photons_range"):
        type(sim_cfg).model_validate({**sim_cfg.model_dump(), "photon_model": {"kind": "linked", "channel_photons_range": [(1, 2), (1, 2)]}})
    with pytest.raises(Exception, match="one per channel"):
        type(sim_cfg).model_validate({**sim_cfg.model_dump(), "photon_model": {"kind": "independent", "channel_photons_range": [(1, 2)]}})


def test_photon_range_widen_stretches_each_channels_training_range_and_leaves_other_models_alone():
    """``training.photon_range_widen`` = 1 keeps AF647/CF680's own channel ranges [95, 865] / [4135, 4905], 3 makes
    them [95 / 3, 2595] / [4135 / 3, 14715]; a value below 1 is refused by name; a linked (biplane) model is unchanged."""
    from pathlib import Path

    from plexloc.config import load_config
    from plexloc.config.training import TrainingConfig
    from plexloc.train.trainer import training_simulation

    examples = Path(__file__).resolve().parents[1] / "examples"
    cfg = load_config(examples / "dual_color_plex.yaml", TrainConfig)
    def widened(c, f):
        return c.model_copy(update={"training": c.training.model_copy(update={"photon_range_widen": f})})

    np.testing.assert_allclose(training_simulation(widened(cfg, 1.0)).photon_model.channel_photons_range,
                               [(95.0, 865.0), (4135.0, 4905.0)])
    np.testing.assert_allclose(training_simulation(widened(cfg, 3.0)).photon_model.channel_photons_range,
                               [(95.0 / 3, 2595.0), (4135.0 / 3, 14715.0)])
    with pytest.raises(Exception, match="photon_range_widen"):
        TrainingConfig.model_validate({"photon_range_widen": 0.5})
    bi = load_config(examples / "biplane_plex.yaml", TrainConfig)
    assert training_simulation(widened(bi, 3.0)).photon_model == training_simulation(widened(bi, 1.0)).photon_model
