"""Extraction, temporal windows, tiling and whole-movie fitting with a (randomly initialised) network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexloc.errors import InputError
from plexloc.infer import (FrameSample, Predictor, candidates, extract, fit_movie, fit_movie_to_file, iter_frame_blocks,
                            iter_windows, sliding_windows, tiles)
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer, LocalizerSpec
from plexloc.nets.io import load_model, save_model
from plexloc.nets.localizer import Prediction
from plexloc.table import LocTable


def _maps(prob: torch.Tensor) -> Prediction:
    b, _, h, w = prob.shape
    return Prediction(prob=prob, photons=torch.full((b, 1, h, w), 1000.0), offset=torch.zeros(b, 3, h, w),
                      sigma=torch.ones(b, 4, h, w), bg=torch.full((b, 1, h, w), 7.0))


def test_probability_split_over_two_pixels_gives_one_localization():
    p = torch.zeros(1, 1, 8, 8)
    p[0, 0, 3, 3] = 0.45
    p[0, 0, 3, 4] = 0.45
    keep, integ = candidates(p, threshold=0.5)
    assert int(keep.sum()) == 1 and float(integ[keep]) == pytest.approx(0.9)
    # neither pixel alone would pass
    p2 = torch.zeros(1, 1, 8, 8)
    p2[0, 0, 3, 3] = 0.45
    assert int(candidates(p2, threshold=0.5)[0].sum()) == 0
    # exact ties on maps of realistic size and values, in every direction: one localization, the later pixel in
    # raster order (a float bias vanished in rounding here: two localizations)
    for size, value in ((8, 0.7), (64, 0.45), (304, 0.3), (304, 1.0)):
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            p3 = torch.zeros(1, 1, size, size)
            p3[0, 0, 5, 5] = p3[0, 0, 5 + dr, 5 + dc] = value
            keep3 = candidates(p3, threshold=0.5)[0]
            assert int(keep3.sum()) == 1 and bool(keep3[0, 5 + dr, 5 + dc]), (size, value, dr, dc)


def test_extract_positions_and_separate_emitters():
    spec = LocalizerSpec(px_size_nm=(100.0, 110.0))
    p = torch.zeros(2, 1, 10, 10)
    p[0, 0, 2, 2] = 0.95
    p[0, 0, 2, 6] = 0.9  # 4 px away: a second emitter
    p[1, 0, 7, 1] = 0.3  # below threshold
    pred = _maps(p)
    pred.offset[0, 0, 2, 2] = 0.25
    pred.offset[0, 1, 2, 2] = -0.5
    ex = extract(pred, spec, threshold=0.5, origin_px=(10, 20))
    assert len(ex) == 2 and ex.sample.tolist() == [0, 0]
    i = int(torch.argmin(ex.x_nm))
    assert float(ex.x_nm[i]) == pytest.approx((20 + 2 + 0.5 + 0.25) * 100.0)
    assert float(ex.y_nm[i]) == pytest.approx((10 + 2 + 0.5 - 0.5) * 110.0)
    assert float(ex.sigma[i, 0]) == pytest.approx(100.0) and float(ex.sigma[i, 1]) == pytest.approx(110.0)
    assert float(ex.bg[i, 0]) == 7.0 and int(ex.pixel_row[i]) == 12 and int(ex.pixel_col[i]) == 22


def test_position_is_the_probability_weighted_mean_of_agreeing_pixels():
    spec = LocalizerSpec(px_size_nm=(100.0, 100.0))
    p = torch.zeros(1, 1, 10, 10)
    p[0, 0, 4, 4] = 0.6  # the maximum: predicts x = 4.5 + 0.4 = 4.9 px
    p[0, 0, 4, 5] = 0.3  # its right neighbour: x = 5.5 - 0.4 = 5.1 px (the same emitter, 0.2 px apart)
    p[0, 0, 5, 4] = 0.1  # below it: predicts y = 5.5 + 0.45 = 5.95 px, 1.45 px from the maximum's 4.5: another emitter
    pred = _maps(p)
    pred.offset[0, 0, 4, 4], pred.offset[0, 0, 4, 5] = 0.4, -0.4
    pred.offset[0, 1, 5, 4] = 0.45
    pred.offset[0, 2, 4, 4], pred.offset[0, 2, 4, 5] = 100.0, 130.0
    pred.sigma[0, 0, 4, 4], pred.sigma[0, 0, 4, 5] = 0.1, 0.4
    ex = extract(pred, spec, threshold=0.5, merge_radius_px=0.5)
    assert len(ex) == 1
    assert float(ex.x_nm[0]) == pytest.approx((0.6 * 4.9 + 0.3 * 5.1) / 0.9 * 100.0, rel=1e-5)
    assert float(ex.y_nm[0]) == pytest.approx(4.5 * 100.0, rel=1e-5)  # the pixel below is not pulled in
    assert float(ex.z_nm[0]) == pytest.approx((0.6 * 100.0 + 0.3 * 130.0) / 0.9, rel=1e-5)
    # sigma: the agreeing pixels' mean sigma, and the spread of the pixels that predict within 1.5 px (the pixel
    # below predicts 1.52 px away: not counted) about the reported position, added in quadrature
    xh = (0.6 * 4.9 + 0.3 * 5.1) / 0.9
    spread = (0.6 * (4.9 - xh) ** 2 + 0.3 * (5.1 - xh) ** 2) / 0.9
    assert float(ex.sigma[0, 0]) == pytest.approx(np.sqrt(((0.6 * 0.1 + 0.3 * 0.4) / 0.9) ** 2 + spread) * 100.0, rel=1e-5)
    assert float(ex.photons[0, 0]) == 1000.0 and float(ex.prob[0]) == pytest.approx(1.0)
    # radius 0: the maximum pixel's own prediction, as before
    ex0 = extract(pred, spec, threshold=0.5, merge_radius_px=0.0, spread_radius_px=0.0)
    assert float(ex0.x_nm[0]) == pytest.approx(490.0) and float(ex0.sigma[0, 0]) == pytest.approx(10.0)
    # ... with the spread: the right neighbour predicts 0.2 px from the maximum's 4.9
    ex0s = extract(pred, spec, threshold=0.5, merge_radius_px=0.0)
    assert float(ex0s.sigma[0, 0]) == pytest.approx(np.sqrt(0.1**2 + 0.3 * 0.2**2 / 0.9) * 100.0, rel=1e-5)
    # a wide radius takes the third pixel in as well
    exw = extract(pred, spec, threshold=0.5, merge_radius_px=2.0)
    assert float(exw.y_nm[0]) == pytest.approx((0.9 * 4.5 + 0.1 * 5.95) * 100.0, rel=1e-5)


def test_background_is_the_local_median_around_the_spot():
    spec = LocalizerSpec(px_size_nm=(100.0, 100.0))
    p = torch.zeros(1, 1, 12, 12)
    p[0, 0, 5, 5] = 0.9
    p[0, 0, 0, 11] = 0.9  # at a corner: 16 of the 49 window pixels exist
    pred = _maps(p)
    pred.bg[:] = 60.0
    pred.bg[0, 0, 4:7, 4:7] = 30.0  # the map pulled down under the spot (9 of 49 pixels)
    pred.bg[0, 0, 0, 10:12] = 10.0  # 2 of the corner's 16
    ex = extract(pred, spec, threshold=0.5)
    got = {(int(r), int(c)): float(b) for r, c, b in zip(ex.pixel_row, ex.pixel_col, ex.bg[:, 0])}
    assert got == {(5, 5): 60.0, (0, 11): 60.0}
    none = extract(_maps(torch.zeros(1, 1, 12, 12)), spec, threshold=0.5)
    assert len(none) == 0 and none.bg.shape == (0, 1)


def test_neighbourhood_mean_at_the_map_border():
    spec = LocalizerSpec(px_size_nm=(100.0, 100.0))
    p = torch.zeros(1, 1, 6, 6)
    p[0, 0, 0, 0] = 0.9  # a corner maximum: five of its nine neighbours lie outside the map
    p[0, 0, 0, 1] = 0.2
    pred = _maps(p)
    pred.offset[0, 0, 0, 0], pred.offset[0, 0, 0, 1] = 0.3, -0.7  # both say x = 0.8 px
    ex = extract(pred, spec, threshold=0.5, merge_radius_px=0.5)
    assert len(ex) == 1 and float(ex.x_nm[0]) == pytest.approx(80.0, rel=1e-5)


#: the windows of 3 of frames 0..9 (frame t holds the value t), the edge frames repeated
_TEN_FRAME_WINDOWS = torch.tensor([[max(t - 1, 0), t, min(t + 1, 9)] for t in range(10)], dtype=torch.float32)


def _ten_frames_in(chunks: list[int]):
    """Frames 0..9 of 1 x 2 x 2 pixels (frame t holds t), as chunks of the given lengths."""
    frames = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 2, 2)
    bounds = np.cumsum([0, *chunks])
    return iter([frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])])


@pytest.mark.parametrize("chunks,batch", [([10], 4), ([3, 1, 6], 4), ([1] * 10, 3), ([10], 16)])
def test_windows_cover_every_frame_with_edge_repetition(chunks, batch):
    got = list(iter_windows(_ten_frames_in(chunks), window=3, batch_frames=batch))
    firsts = [f for f, _ in got]
    wins = torch.cat([w for _, w in got])
    assert wins.shape == (10, 3, 1, 2, 2)
    assert firsts == list(range(0, 10, batch))
    assert torch.equal(wins[:, :, 0, 0, 0], _TEN_FRAME_WINDOWS)


@pytest.mark.parametrize("chunks,batch", [([10], 4), ([3, 1, 6], 4), ([1] * 10, 3)])
def test_frame_blocks_hold_each_frames_window(chunks, batch):
    got = list(iter_frame_blocks(_ten_frames_in(chunks), window=3, batch_frames=batch))
    assert [f for f, _ in got] == list(range(0, 10, batch))
    for first, block in got:  # n frames and their neighbours, the edges repeated
        n = block.shape[0] - 2
        assert block[:, 0, 0, 0].tolist() == [min(max(t, 0), 9) for t in range(first - 1, first + n + 1)]
    wins = torch.cat([sliding_windows(b, 3) for _, b in got])
    assert wins.shape == (10, 3, 1, 2, 2)
    assert torch.equal(wins[:, :, 0, 0, 0], _TEN_FRAME_WINDOWS)


def test_tiles_partition_the_axis():
    for size, tile, margin, align in [(100, 32, 8, 1), (64, 64, 8, 4), (65, 64, 24, 4), (10, 256, 24, 8), (300, 18, 5, 4)]:
        t = tiles(size, tile, margin, align)
        covered = np.zeros(size, int)
        for c0, c1, i0, i1 in t:
            covered[c0:c1] += 1
            assert i0 <= c0 - min(margin, c0) and i1 >= c1 and i0 >= 0 and i1 <= size and i0 % align == 0
        assert (covered == 1).all()


def test_tiles_pool_on_the_whole_frames_grid():
    """Tile inputs start on the pooling grid of a depth-2 network: a tiled fit equals the whole frame's to float
    rounding (tile cores at multiples of 18 would start inputs off the grid, shifting every pooling cell)."""
    torch.manual_seed(1)
    spec = LocalizerSpec(features=4, depth=2, union_features=4, union_depth=2, input_offset=[50.0], input_scale=[20.0])
    net = Localizer(spec).eval()
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)
    x = torch.rand(2, 3, 1, 64, 90) * 100 + 20
    whole = Predictor(net, tile_px=256).localize(x)
    tiled = Predictor(net, tile_px=18, margin_px=57).localize(x)  # beyond the receptive field; 72 - 57 = 15 is off the grid
    assert len(whole) == len(tiled) > 20
    key = lambda e: (e.sample * 10**6 + e.pixel_row * 1000 + e.pixel_col).argsort()  # noqa: E731
    torch.testing.assert_close(whole.x_nm[key(whole)], tiled.x_nm[key(tiled)], rtol=0, atol=1e-3)
    torch.testing.assert_close(whole.prob[key(whole)], tiled.prob[key(tiled)], rtol=0, atol=1e-5)


def _random_model(seed: int = 0, **kw) -> Localizer:
    torch.manual_seed(seed)
    spec = LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0], input_scale=[20.0], **kw)
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    return net.eval()


@pytest.mark.parametrize("tile", [256, 16])
def test_frame_features_once_per_frame_give_the_windows_predictions(tile):
    """localize_frames (frame U-Nets once per frame) = localize of the same block's windows."""
    net = _random_model(seed=3)
    block = torch.rand(7, 1, 40, 36) * 100 + 20  # 5 frames and their neighbours
    p = Predictor(net, tile_px=tile, margin_px=40)
    a, b = p.localize(sliding_windows(block, 3)), p.localize_frames(block)
    assert len(a) == len(b) > 20 and set(a.sample.tolist()) == set(range(5))
    assert torch.equal(a.sample, b.sample) and torch.equal(a.pixel_row, b.pixel_row)
    for f in ("x_nm", "y_nm", "photons", "prob", "sigma", "bg"):
        assert torch.allclose(getattr(a, f), getattr(b, f), rtol=1e-4, atol=1e-3), f


def test_tiled_prediction_equals_whole_frame_prediction():
    net = _random_model()
    x = torch.rand(2, 3, 1, 60, 52) * 100 + 20
    whole = Predictor(net, tile_px=256).localize(x)
    tiled = Predictor(net, tile_px=16, margin_px=40).localize(x)  # margin beyond the receptive field
    assert len(whole) > 20
    key = lambda e: torch.stack([e.sample.float(), e.pixel_row.float(), e.pixel_col.float()], 1)  # noqa: E731
    order_w = np.lexsort(key(whole).numpy().T[::-1])
    order_t = np.lexsort(key(tiled).numpy().T[::-1])
    assert torch.equal(key(whole)[order_w], key(tiled)[order_t])  # same pixels, none twice
    assert torch.allclose(whole.x_nm[order_w], tiled.x_nm[order_t], atol=1e-2)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")  # torch's own (torch.jit) while compiling
def test_fit_movie_compiled_gives_the_same_table(tmp_path):
    """fit_movie(compile=True): torch.compile of the network (CPU inductor here) finds the same localizations, also
    in the last, shorter batch (a recompilation for its shape)."""
    from plexloc.config.models import IdealCameraConfig

    net = _random_model(2)
    movie = np.random.default_rng(1).poisson(40.0, size=(11, 24, 24)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    kw = dict(camera=IdealCameraConfig(), batch_frames=8)
    from torch._dynamo.utils import counters

    plain = fit_movie(tmp_path / "m.tif", net, **kw)
    counters.clear()
    comp = fit_movie(tmp_path / "m.tif", net, compile=True, **kw)
    assert counters["stats"]["unique_graphs"] >= 2  # the frame U-Nets and the union net did go through the compiler
    assert len(plain) == len(comp) > 20 and set(np.asarray(comp["frame"])) == set(range(11))
    for col in ("frame", "x_nm", "y_nm", "photons", "prob", "sigma_x_nm"):
        np.testing.assert_allclose(comp[col], plain[col], rtol=1e-4, atol=1e-3)


def test_model_file_round_trip_and_bad_files(tmp_path):
    net = _random_model(3)
    save_model(tmp_path / "model.pt", net, {"px_size_nm": 100.0}, meta={"step": 7})
    loaded, cfg, meta = load_model(tmp_path)
    x = torch.rand(1, 3, 1, 8, 8) * 50
    assert torch.allclose(loaded(x), net(x)) and meta["step"] == 7 and cfg["px_size_nm"] == 100.0
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    from plexloc.errors import InputError

    with pytest.raises(InputError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(InputError, match="no model.pt"):
        load_model(tmp_path / "empty_run")


def test_fit_movie_applies_the_validation_sigma_calibration(tmp_path):
    from plexloc.config.models import IdealCameraConfig

    net = _random_model(2, is_3d=True, z_scale_nm=500.0)
    movie = np.random.default_rng(1).poisson(40.0, size=(6, 20, 20)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    cal = {"sigma_cal_x": 2.0, "sigma_cal_y": 0.5, "sigma_cal_z": float("nan"),  # z: no factor measured
           "offset_cal_x": 0.0, "offset_cal_y": 3.0, "offset_cal_z": -10.0}  # x: not significant
    save_model(tmp_path / "cal.pt", net, {}, meta={"validation": {"jaccard": 50.0, **cal}})
    cam = IdealCameraConfig()
    raw = fit_movie(tmp_path / "m.tif", tmp_path / "cal.pt", camera=cam, calibrate_sigma=False)
    stats: dict = {}
    got = fit_movie(tmp_path / "m.tif", tmp_path / "cal.pt", camera=cam, stats=stats)
    assert len(raw) == len(got) > 0 and stats["sigma_calibration"] == {"x": 2.0, "y": 0.5}
    np.testing.assert_allclose(got["sigma_x_nm"], 2.0 * raw["sigma_x_nm"], rtol=1e-6)
    np.testing.assert_allclose(got["sigma_y_nm"], 0.5 * raw["sigma_y_nm"], rtol=1e-6)
    np.testing.assert_allclose(got["sigma_z_nm"], raw["sigma_z_nm"])
    np.testing.assert_allclose(got["x_nm"], raw["x_nm"])
    np.testing.assert_allclose(got["y_nm"], raw["y_nm"] - 3.0, rtol=1e-9)
    np.testing.assert_allclose(got["z_nm"], raw["z_nm"] + 10.0, rtol=1e-9)
    assert stats["offset_calibration"] == {"y": 3.0, "z": -10.0}
    # the max-sigma filter sees the calibrated sigmas
    cut = float(np.median(got["sigma_x_nm"]))
    kept = fit_movie(tmp_path / "m.tif", tmp_path / "cal.pt", camera=cam, filters={"max_sigma_nm": cut})
    assert len(kept) < len(got)
    # the photon scale: photons and their sigma divided by it
    save_model(tmp_path / "scale.pt", net, {},
               meta={"validation": {"jaccard": 50.0, "photon_cal": 1.25, "photon_sigma_cal": 2.0}})
    stats = {}
    scaled = fit_movie(tmp_path / "m.tif", tmp_path / "scale.pt", camera=cam, stats=stats)
    np.testing.assert_allclose(scaled["photons"], raw["photons"] / 1.25, rtol=1e-6)
    np.testing.assert_allclose(scaled["sigma_photons"], raw["sigma_photons"] * 2.0 / 1.25, rtol=1e-6)
    np.testing.assert_allclose(scaled["x_nm"], raw["x_nm"])
    assert stats["photon_calibration"] == {"scale": 1.25, "sigma": 2.0} and stats["sigma_calibration"] == {}
    # a model saved without factors (before they existed) is left alone
    save_model(tmp_path / "old.pt", net, {}, meta={"validation": {"jaccard": 50.0}})
    stats = {}
    old = fit_movie(tmp_path / "m.tif", tmp_path / "old.pt", camera=cam, stats=stats)
    # (against its own raw fit: cal.pt's factors were measured without the extraction's spread, so its fits, raw
    # ones too, have none, where a model without factors gets the default)
    old_raw = fit_movie(tmp_path / "m.tif", tmp_path / "old.pt", camera=cam, calibrate_sigma=False)
    np.testing.assert_allclose(old["sigma_x_nm"], old_raw["sigma_x_nm"])
    np.testing.assert_allclose(old["photons"], raw["photons"])
    assert stats["sigma_calibration"] == {} and stats["photon_calibration"] == {}


def test_fit_movie_streams_and_is_independent_of_chunking(tmp_path):
    from plexloc.config.models import IdealCameraConfig

    net = _random_model(1)
    rng = np.random.default_rng(0)
    movie = rng.poisson(40.0, size=(23, 20, 28)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    cam = IdealCameraConfig()
    a = fit_movie(tmp_path / "m.tif", net, camera=cam, batch_frames=5, chunk_frames=7)
    b = fit_movie(tmp_path / "m.tif", net, camera=cam, batch_frames=16, chunk_frames=256)
    assert len(a) == len(b) > 0
    for col in ("frame", "x_nm", "y_nm", "photons", "prob", "bg", "sigma_x_nm", "sigma_photons"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-4, atol=1e-3)
    assert set(a["frame"]) <= set(range(23)) and np.all(np.diff(a["frame"]) >= 0)
    assert "sigma_z_nm" not in a.columns  # a 2D model predicts no z uncertainty
    f = fit_movie(tmp_path / "m.tif", net, camera=cam, filters={"min_prob": 0.9, "max_sigma_nm": 150.0})
    assert len(f) < len(a) and (f["prob"] >= 0.9).all() and (np.maximum(f["sigma_x_nm"], f["sigma_y_nm"]) <= 150.0).all()


def test_channel_movies_of_different_lengths_are_refused_naming_both_files(tmp_path):
    """Channel 1 with 7 frames against channel 0's 9: the error named only one file and neither channel."""
    from plexloc.config.models import IdealCameraConfig

    net = _random_model(0, n_channels=2)
    movie = np.random.default_rng(0).poisson(40.0, size=(9, 20, 28)).astype(np.uint16)
    write_movie(tmp_path / "ch0.tif", movie)
    write_movie(tmp_path / "ch1.tif", movie[:7])
    cams = [IdealCameraConfig(), IdealCameraConfig()]
    with pytest.raises(InputError, match=r"ch1\.tif: channel movies differ: channel 1's has 7 frames .* but channel "
                                         r"0's \(.*ch0\.tif\) has 9"):
        fit_movie([tmp_path / "ch0.tif", tmp_path / "ch1.tif"], net, camera=cams)


def test_split_view_camera_maps_of_the_whole_frame_are_refused_naming_the_box_shape(tmp_path):
    """A whole-frame sCMOS map for a split-view movie: the error read 'camera maps are (20, 60) but the movie's
    frames are (20, 60)'."""
    from plexloc.config.models import SCMOSConfig, SplitViewConfig

    net = _random_model(0, n_channels=2)
    write_movie(tmp_path / "sv.tif", np.random.default_rng(0).poisson(140.0, size=(4, 20, 60)).astype(np.uint16))
    np.save(tmp_path / "offset.npy", np.full((20, 60), 100.0, np.float32))
    cam = SCMOSConfig(baseline=str(tmp_path / "offset.npy"))
    split = SplitViewConfig(boxes=[[0, 0, 28, 20], [30, 0, 28, 20]], flip=["none", "x"])
    with pytest.raises(InputError, match=r"sv\.tif: channel 0's camera maps are \(20, 60\) .* but the split-view "
                                         r"channel boxes are \(20, 28\)"):
        fit_movie(tmp_path / "sv.tif", net, camera=[cam, cam], split_view=split)


def _frames_table(rows_per_frame: np.ndarray) -> LocTable:
    frame = np.repeat(np.arange(len(rows_per_frame)), rows_per_frame)
    n = len(frame)
    return LocTable({"frame": frame, "x_nm": np.arange(n, dtype=float), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
                     "photons": np.ones(n)})


def test_frame_sample_is_whole_random_frames_within_the_row_limit():
    rng = np.random.default_rng(0)
    whole = _frames_table(rng.integers(0, 40, 3000))  # ~60,000 rows
    parts = [whole[(whole["frame"] >= a) & (whole["frame"] < a + 16)] for a in range(0, 3000, 16)]
    small = FrameSample(10**6)
    for p in parts:
        small.add(p)
    assert small.table() == whole and small.rows_seen == len(whole)  # under the limit: every row
    sample = FrameSample(5000, seed=1)
    for p in parts:
        sample.add(p)
    got = sample.table()
    counts = np.bincount(whole["frame"], minlength=3000)
    frames, n_rows = np.unique(got["frame"], return_counts=True)
    assert 4000 < len(got) <= 5000 and np.array_equal(n_rows, counts[frames])  # whole frames only
    assert np.all(np.diff(got["frame"]) >= 0) and set(got["x_nm"]) <= set(whole["x_nm"])  # rows as they were
    # spread over the movie, not its start: the sampled frames' mean is near the middle (sd of the mean ~ 60)
    assert abs(frames.mean() - 1500) < 300 and frames.min() < 300 and frames.max() > 2700
    one = FrameSample(10)  # a frame larger than the limit: one frame is kept
    one.add(_frames_table(np.array([30, 40])))
    assert len(one.table()) in (30, 40) and FrameSample(3).table() is None
    slim = FrameSample(100, keep_column=lambda c: c == "bg")
    first = whole[whole["frame"] < 10]
    slim.add(first.with_columns(bg=np.ones(len(first)), prob=np.ones(len(first))))
    assert slim.table().columns == ["frame", "x_nm", "y_nm", "z_nm", "photons", "bg"]
    with pytest.raises(InputError, match="max_rows"):
        FrameSample(0)


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_fit_movie_to_file_writes_the_table_of_fit_movie(tmp_path, suffix):
    """Streamed to a file in batches: the same rows, columns, calibration, filters and stats as fit_movie; the
    checks see a sample when the table is larger than check_rows; a bad movie leaves no file."""
    from plexloc.config.models import IdealCameraConfig
    from plexloc.io import read_table, write_table

    net = _random_model(2, is_3d=True, z_scale_nm=500.0)
    movie = np.random.default_rng(4).poisson(40.0, size=(21, 20, 20)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    save_model(tmp_path / "cal.pt", net, {}, meta={"validation": {"sigma_cal_x": 2.0, "offset_cal_y": 3.0}})
    kw = dict(camera=IdealCameraConfig(), batch_frames=4, filters={"min_photons": 5742.0})
    stats_mem: dict = {}
    table = fit_movie(tmp_path / "m.tif", tmp_path / "cal.pt", stats=stats_mem, **kw)
    write_table(table, tmp_path / f"mem{suffix}")
    stats: dict = {}
    n = fit_movie_to_file(tmp_path / "m.tif", tmp_path / "cal.pt", tmp_path / f"streamed{suffix}", stats=stats, **kw)
    assert n == len(table) == stats["rows"] == stats["checked_rows"] > 50
    assert read_table(tmp_path / f"streamed{suffix}") == read_table(tmp_path / f"mem{suffix}")
    assert stats["sigma_calibration"] == stats_mem["sigma_calibration"] == {"x": 2.0}
    assert stats["filtered"].n_out == stats_mem["filtered"].n_out == n
    assert stats["filtered"].n_in == stats_mem["filtered"].n_in > n and stats["frames"] == 21
    few: dict = {}
    fit_movie_to_file(tmp_path / "m.tif", tmp_path / "cal.pt", tmp_path / f"few{suffix}", stats=few, check_rows=50, **kw)
    assert 0 < few["checked_rows"] <= 50 and few["rows"] == n
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="bad.tif"):
        fit_movie_to_file(tmp_path / "bad.tif", net, tmp_path / f"bad{suffix}", camera=IdealCameraConfig())
    with pytest.raises(TypeError, match="batch_size"):
        fit_movie_to_file(tmp_path / "m.tif", net, tmp_path / f"bad{suffix}", batch_size=3)
    assert not (tmp_path / f"bad{suffix}").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fit_movie_channels_last_same_table_and_follows_the_training_config(tmp_path, monkeypatch):
    from plexloc.config.models import IdealCameraConfig

    net = _random_model(5)
    movie = np.random.default_rng(2).poisson(40.0, size=(9, 24, 24)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    cam = IdealCameraConfig()
    plain = fit_movie(tmp_path / "m.tif", net, camera=cam, channels_last=False)
    nhwc = fit_movie(tmp_path / "m.tif", net, camera=cam, channels_last=True)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert len(plain) == len(nhwc) > 20
    for col in ("frame", "x_nm", "y_nm", "photons", "prob", "sigma_x_nm"):
        np.testing.assert_allclose(nhwc[col], plain[col], rtol=1e-4, atol=1e-3)
    calls = []  # on the CPU the default is channels-last where oneDNN runs it, whatever the training configuration
    monkeypatch.setattr(Localizer, "channels_last_", lambda self, enabled=True: calls.append(enabled) or self)
    for trained_nhwc in (True, False):
        save_model(tmp_path / "model.pt", _random_model(5), {"training": {"channels_last": trained_nhwc}}, meta={})
        calls.clear()
        fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam)
        assert calls == [True]
        fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam, channels_last=False)
        assert calls == [True]  # explicit NCHW: the model (NCHW, the spy converts nothing) is left as it is


def test_fit_threshold_defaults_to_the_models_training_threshold(tmp_path):
    """A model trained with training.detection_threshold 0.9 (its calibration measured there) is fitted at 0.9
    unless --threshold says otherwise (it was always 0.5)."""
    from plexloc.config.models import IdealCameraConfig

    movie = np.random.default_rng(4).poisson(40.0, size=(6, 24, 24)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    net = _random_model(6)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(-2.2)  # about 0.104 per pixel: 3x3 sums of about 0.93 inside the frame
    save_model(tmp_path / "model.pt", net, {"training": {"detection_threshold": 0.9}}, meta={})
    cam = IdealCameraConfig()
    default = fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam)
    at_09 = fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam, threshold=0.9)
    at_095 = fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam, threshold=0.95)
    assert len(default) == len(at_09) > len(at_095) and np.array_equal(default["x_nm"], at_09["x_nm"])
    assert len(fit_movie(tmp_path / "m.tif", tmp_path / "model.pt", camera=cam, threshold=0.5)) >= len(default)


def test_neighbourhood_pixels_that_disagree_widen_the_sigma():
    """Two overlapping emitters placed as one: the neighbourhood's pixels point at both, and that spread about the
    reported position (law of total variance over the pixels' mixture) is added to the sigma. Pixels that agree leave
    the sigma as the network gave it. (Demo-config model at 1 emitter/um^2: x z-score sd 2.45 -> 1.63, pairs with a
    neighbour closer than 250 nm 5.85 -> 3.64; bench/RESULTS.md.)"""
    spec = LocalizerSpec(px_size_nm=(100.0, 100.0))
    p = torch.zeros(1, 1, 10, 10)
    p[0, 0, 4, 4], p[0, 0, 4, 5] = 0.6, 0.5  # predicting x = 4.8 and 5.8 px: 1 px apart, not merged (radius 0.5)
    pred = _maps(p)
    pred.offset[0, 0, 4, 4], pred.offset[0, 0, 4, 5] = 0.3, 0.3
    pred.offset[0, 2, 4, 4], pred.offset[0, 2, 4, 5] = 0.0, 200.0  # and z 0 and 200 nm
    pred.sigma[:, :2] = 0.1
    pred.sigma[:, 2] = 20.0
    ex = extract(pred, spec, threshold=0.5)
    assert len(ex) == 1 and float(ex.x_nm[0]) == pytest.approx(480.0, rel=1e-5)
    assert float(ex.sigma[0, 0]) == pytest.approx(np.sqrt(0.1**2 + 0.5 * 1.0**2 / 1.1) * 100.0, rel=1e-5)  # 68 nm
    assert float(ex.sigma[0, 1]) == pytest.approx(10.0, rel=1e-5)  # they agree in y
    assert float(ex.sigma[0, 2]) == pytest.approx(np.sqrt(20.0**2 + 0.5 * 200.0**2 / 1.1), rel=1e-5)
    # no spread: the network's sigma alone
    assert float(extract(pred, spec, threshold=0.5, spread_radius_px=0).sigma[0, 0]) == pytest.approx(10.0)
    # agreeing pixels (both predict x = 5.0): unchanged
    pred.offset[0, 0, 4, 4], pred.offset[0, 0, 4, 5] = 0.5, -0.5
    pred.offset[0, 2, 4, 5] = 0.0
    ex = extract(pred, spec, threshold=0.5)
    assert float(ex.sigma[0, 0]) == pytest.approx(10.0, rel=1e-5) and float(ex.sigma[0, 2]) == pytest.approx(20.0)


def test_a_model_calibrated_before_the_spread_keeps_its_sigmas(tmp_path):
    """A model whose sigma factors were measured without the neighbourhood spread (saved before it was added) is
    fitted without it, so that its sigmas stay as calibrated; one trained now records the spread and gets it."""
    from conftest import TINY_TRAIN

    from plexloc.cli.main import main
    from plexloc.config import TrainConfig, save_config
    from plexloc.infer import fit_movie
    from plexloc.infer.fit import extraction_spread
    from plexloc.nets.io import load_model, save_model

    cfg = tmp_path / "train.yaml"
    save_config(TrainConfig.model_validate(TINY_TRAIN), cfg)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--steps", "3", "--device", "cpu"]) == 0
    assert main(["simulate", str(cfg), "--frames", "4", "--out", str(tmp_path / "sim"), "--seed", "1", "--device", "cpu"]) == 0
    net, conf, meta = load_model(tmp_path / "run")
    with torch.no_grad():  # an untrained detector sees nothing: make it see spots, and disagree between pixels
        net.head_prob[-1].bias.fill_(4.0)
    val = dict(meta["validation"], sigma_cal_x=0.8, sigma_cal_y=0.8)
    assert val["extraction_spread_px"] == pytest.approx(1.5)
    save_model(tmp_path / "new.pt", net, conf, dict(meta, validation=val))
    old = {k: v for k, v in val.items() if k != "extraction_spread_px"}
    save_model(tmp_path / "old.pt", net, conf, dict(meta, validation=old))
    assert extraction_spread({"validation": val}) == pytest.approx(1.5)
    assert extraction_spread({"validation": old}) == 0.0 and extraction_spread({"validation": {}}) is None
    movie = tmp_path / "sim" / "movie.tif"
    s_new, s_old = {}, {}
    t_new = fit_movie(movie, tmp_path / "new.pt", stats=s_new)
    t_old = fit_movie(movie, tmp_path / "old.pt", stats=s_old)
    assert len(t_new) == len(t_old) > 0 and s_old["legacy_sigma"] and not s_new["legacy_sigma"]
    np.testing.assert_array_equal(np.asarray(t_new["x_nm"]), np.asarray(t_old["x_nm"]))
    sn, so = np.asarray(t_new["sigma_x_nm"]), np.asarray(t_old["sigma_x_nm"])
    assert (sn >= so - 1e-4).all() and (sn > so * 1.01).any()  # the spread only widens


def test_a_neighbour_on_the_merge_radius_does_not_make_the_position_jump():
    """A neighbour pixel predicting 0.5 px from the maximum's position (the merge radius) joined the mean on one side
    of float rounding and not on the other: tiled and whole frames differed by up to 21 nm for 1-3 of ~20,000
    localizations (bench/tile_margin.py). Its weight now tapers over 0.45-0.55 px."""
    spec = LocalizerSpec(px_size_nm=(100.0, 100.0))
    xs = []
    for d in (0.5 - 1e-5, 0.5 + 1e-5, 0.40, 0.60):
        p = torch.zeros(1, 1, 10, 10)
        p[0, 0, 4, 4], p[0, 0, 4, 5] = 0.6, 0.4
        pred = _maps(p)
        pred.offset[0, 0, 4, 4] = 0.0  # the maximum predicts x = 4.5 px
        pred.offset[0, 0, 4, 5] = -1.0 + d  # the neighbour 4.5 + d px
        xs.append(float(extract(pred, spec, threshold=0.5).x_nm[0]))
    assert abs(xs[0] - xs[1]) < 0.01  # was 0.4 * 0.5 px = 20 nm
    assert xs[2] == pytest.approx((0.6 * 4.5 + 0.4 * 4.9) * 100.0, rel=1e-6)  # inside the taper: fully merged
    assert xs[3] == pytest.approx(450.0, rel=1e-6)  # beyond it: not at all
    assert xs[0] == pytest.approx((0.6 * 4.5 + 0.2 * 5.0) / 0.8 * 100.0, rel=1e-4)  # on the radius: half weight
