"""Second known-answer review of network inference (plexloc.infer): tiling against the whole frame, the noise check
of constant movies, the pixel-size check of a network given without its configuration; and invariances that held
(batches, chunks, a folder of TIFFs, the first and last frames)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch

from plexloc.camera.check import CameraWarning
from plexloc.config.models import IdealCameraConfig
from plexloc.infer import Predictor, fit_movie
from plexloc.infer.predict import MAX_DEFAULT_MARGIN_PX, receptive_radius, tile_margin_px
from plexloc.io.pixel_size import PixelSizeWarning
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer, LocalizerSpec


def _random_model(seed: int = 0, **kw) -> Localizer:
    torch.manual_seed(seed)
    spec = LocalizerSpec(**{"features": 4, "depth": 2, "union_features": 4, "union_depth": 2, "input_offset": [50.0],
                            "input_scale": [20.0], **kw})
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    return net.eval()


def _by_pixel(ex) -> dict[tuple[int, int, int], np.ndarray]:
    vals = torch.cat([ex.x_nm[:, None], ex.y_nm[:, None], ex.z_nm[:, None], ex.photons, ex.prob[:, None], ex.sigma,
                      ex.bg], dim=1).numpy()
    return {(int(s), int(r), int(c)): v for s, r, c, v in zip(ex.sample, ex.pixel_row, ex.pixel_col, vals)}


@pytest.mark.parametrize("depth", [1, 2])
def test_receptive_radius_bounds_the_networks_reach_and_is_tight(depth):
    """The computed reach of the network (frame U-Nets, union U-Net, heads) holds every input pixel a gradient
    reaches, and is no more than a pooling cell's worth above the farthest one; a tile's default margin covers the
    reach and the extraction's 3 px (before: 24 px, for a depth-2 network whose gradient reaches 50 px)."""
    torch.set_num_threads(1)
    net = _random_model(1, depth=depth, union_depth=depth)
    r = receptive_radius(net.spec)
    assert r == {1: 22, 2: 52}[depth]
    size = 2 * r + 24
    reach = 0
    for centre in range(r + 8, r + 12):  # every position on the pooling grid (cells of 2 or 4)
        x = torch.rand(1, 3, 1, size, size, requires_grad=True)
        net(x)[0, :, centre, centre].sum().backward()
        rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2, 4)) > 0)[:, 0]
        reach = max(reach, centre - int(rows.min()), int(rows.max()) - centre)
    assert r - 2 ** depth <= reach <= r
    assert tile_margin_px(net.spec) >= reach + 3
    assert Predictor(net).margin_px == min(tile_margin_px(net.spec), MAX_DEFAULT_MARGIN_PX)


@pytest.mark.parametrize("shape, tile", [((150, 130), 32), ((38, 70), 23)])
def test_tiled_frames_give_the_whole_frames_localizations(shape, tile):
    """Tiles of 32 and 23 px (23 not a multiple of the pooling cell) over frames not multiples of it, non-square: the
    same localizations at the same pixels as the whole frame, also on the seams and at the corners. Before, the
    default margin was 24 px, under a depth-2 network's reach of 52 px: 150x130 frames in tiles of 32 gave 6,953
    localizations where the whole frames gave 6,952 (one more at a seam)."""
    torch.set_num_threads(1)
    net = _random_model(3)
    margin = tile_margin_px(net.spec)
    assert margin == 55
    gen = torch.Generator().manual_seed(0)
    block = torch.rand(6, 1, *shape, generator=gen) * 100 + 20  # 4 frames and the window's neighbours
    block[:, :, [0, 0, -1, -1], [0, -1, 0, -1]] += 400.0  # bright corners
    block[:, :, tile - 1 : tile + 1, :] += 200.0 * torch.rand(6, 1, 2, shape[1], generator=gen)  # bright seams
    # float32: the margin's guarantee is to float rounding (bfloat16, the CPU default where the CPU has it, rounds
    # this untrained network's outputs into ties that thin its detections below the count this test needs)
    whole = _by_pixel(Predictor(net, tile_px=256, precision="float32").localize_frames(block))
    tiled = _by_pixel(Predictor(net, tile_px=tile, margin_px=margin, precision="float32").localize_frames(block))
    assert len(whole) > 900 and sorted(whole) == sorted(tiled)
    seams = [k for k in whole if k[1] % tile in (0, tile - 1) or k[2] % tile in (0, tile - 1)]
    corners = [k for k in whole if k[1] in (0, shape[0] - 1) and k[2] in (0, shape[1] - 1)]
    assert len(seams) > 100 and corners
    worst = max(float(np.max(np.abs(whole[k] - tiled[k]))) for k in whole)
    assert worst < 5e-3  # float rounding (nm, photons)


def test_fit_movie_in_small_tiles_equals_the_whole_frame(tmp_path):
    """plexloc fit --tile 16 and the default (whole 40x37 frames) write the same table."""
    torch.set_num_threads(1)
    net = _random_model(4)
    movie = np.random.default_rng(2).poisson(45.0, size=(5, 40, 37)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    whole = fit_movie(tmp_path / "m.tif", net, camera=IdealCameraConfig())
    tiled = fit_movie(tmp_path / "m.tif", net, camera=IdealCameraConfig(), tile_px=16)
    assert len(whole) == len(tiled) > 100
    for col in whole.columns:
        np.testing.assert_allclose(tiled[col], whole[col], rtol=1e-5, atol=2e-3, err_msg=col)


def _model_file(tmp_path, net: Localizer):
    from conftest import TINY_TRAIN

    from plexloc.config import TrainConfig
    from plexloc.nets.io import save_model

    cfg = TrainConfig.model_validate({**TINY_TRAIN, "camera": {"kind": "ideal"}}).model_dump(mode="json")
    save_model(tmp_path / "model.pt", net, cfg, meta={"validation": {"jaccard": 80.0}})
    return tmp_path / "model.pt"


def test_a_movie_without_noise_between_frames_is_reported_not_a_zero_division(tmp_path):
    """A saturated movie (every pixel at 65535) and a movie of 1x1 frames have a measured noise ratio of 0: the
    domain check divided by it (ZeroDivisionError after the whole fit, from fit_movie(stats=...) and plexloc fit).
    Now the noise check says that no noise could be seen."""
    torch.set_num_threads(1)
    from conftest import TINY_TRAIN

    from plexloc.config import TrainConfig
    from plexloc.infer.domain import check_training_domain
    from plexloc.table import LocTable

    model = _model_file(tmp_path, _random_model(5))
    write_movie(tmp_path / "sat.tif", np.full((4, 20, 20), 65535, np.uint16))
    stats: dict = {}
    with pytest.warns(CameraWarning, match="65535"):
        fit_movie(tmp_path / "sat.tif", model, stats=stats)
    noise = next(c for c in stats["domain"].checks if c.column == "noise")
    assert noise.median == 0.0 and "no pixel noise between frames" in noise.warning
    write_movie(tmp_path / "one_px.tif", np.arange(4, dtype=np.uint16).reshape(4, 1, 1) * 7 + 40)
    stats = {}
    from plexloc.infer.fit import FrameSizeWarning

    with pytest.warns(FrameSizeWarning, match="frames of 1 x 1 px"):  # session 50: too narrow for a spot
        table = fit_movie(tmp_path / "one_px.tif", model, stats=stats)
    assert stats["frames"] == 4 and set(np.asarray(table["frame"])) <= set(range(4))
    assert "no pixel noise" in next(c for c in stats["domain"].checks if c.column == "noise").warning
    empty = LocTable({k: np.zeros(0) for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    cfg = TrainConfig.model_validate(TINY_TRAIN)
    assert "no pixel noise" in check_training_domain(empty, cfg, noise=[0.0], warn=False).warnings[0]


@pytest.mark.filterwarnings("always::plexloc.camera.check.CameraWarning")  # the CLI prints it
def test_the_cli_fits_a_saturated_movie_and_prints_the_noise_finding(tmp_path, capsys):
    from plexloc.cli.main import main

    model = _model_file(tmp_path, _random_model(5))
    write_movie(tmp_path / "sat.tif", np.full((3, 16, 16), 65535, np.uint16))
    assert main(["fit", str(tmp_path / "sat.tif"), "--model", str(model), "--out", str(tmp_path / "l.csv"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "sit at 65535 ADU" in err and "warning: noise: the movie's first frames show no pixel noise" in err
    assert (tmp_path / "l.csv").exists()


def test_a_loaded_network_checks_the_movies_pixel_size(tmp_path):
    """fit_movie(movie, Localizer) without its configuration: the positions use the network's own pixel size
    (spec.px_size_nm), and a movie whose metadata record another is warned about, as for a model file (before:
    silent)."""
    torch.set_num_threads(1)
    net = _random_model(6, depth=1, union_depth=1, px_size_nm=(100.0, 100.0))
    frames = np.random.default_rng(0).poisson(40.0, size=(3, 16, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m160.tif", frames, imagej=True, resolution=(1 / 0.16, 1 / 0.16),
                     metadata={"unit": "um", "axes": "TYX"})
    with pytest.warns(PixelSizeWarning, match="160 x 160 nm"):
        fit_movie(tmp_path / "m160.tif", net, camera=IdealCameraConfig())
    tifffile.imwrite(tmp_path / "m100.tif", frames, imagej=True, resolution=(1 / 0.1, 1 / 0.1),
                     metadata={"unit": "um", "axes": "TYX"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_movie(tmp_path / "m100.tif", net, camera=IdealCameraConfig())


def test_batches_chunks_folders_and_the_movies_ends(tmp_path):
    """Known answers that held: batch sizes 1, 7, 32 and chunks of 1, 5 frames give the table of the default; a
    folder of three TIFFs the table of the one stack (frames continuous); the first two and the last two frames
    fitted as movies of their own give those frames' rows (the window's missing neighbour repeats the edge frame)."""
    torch.set_num_threads(1)
    net = _random_model(7, depth=1, union_depth=1)
    movie = np.random.default_rng(3).poisson(45.0, size=(12, 18, 21)).astype(np.uint16)
    write_movie(tmp_path / "m.tif", movie)
    cam = IdealCameraConfig()
    ref = fit_movie(tmp_path / "m.tif", net, camera=cam)
    assert len(ref) > 100 and set(np.asarray(ref["frame"])) == set(range(12))

    def same(a, b, frame_shift=0):
        assert len(a) == len(b)
        for col in a.columns:
            want = np.asarray(b[col]) + (frame_shift if col == "frame" else 0)
            np.testing.assert_allclose(a[col], want, rtol=1e-5, atol=2e-3, err_msg=col)

    for batch, chunk in ((1, 5), (7, 1), (32, 256)):
        same(fit_movie(tmp_path / "m.tif", net, camera=cam, batch_frames=batch, chunk_frames=chunk), ref)
    (tmp_path / "folder").mkdir()
    for i, (a, b) in enumerate(((0, 5), (5, 6), (6, 12))):
        write_movie(tmp_path / "folder" / f"img_{i}.tif", movie[a:b])
    same(fit_movie(tmp_path / "folder", net, camera=cam), ref)
    write_movie(tmp_path / "first.tif", movie[:2])
    write_movie(tmp_path / "last.tif", movie[-2:])
    frame = np.asarray(ref["frame"])
    first = fit_movie(tmp_path / "first.tif", net, camera=cam)
    same(first[np.asarray(first["frame"]) == 0], ref[frame == 0])
    last = fit_movie(tmp_path / "last.tif", net, camera=cam)
    same(last[np.asarray(last["frame"]) == 1], ref[frame == 11], frame_shift=-10)
