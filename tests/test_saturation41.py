"""Clipped spots flagged per localization (column ``saturated_px``) and cameras that clip below the file's maximum
(``saturation_adu`` in the camera section, or a level ``2**k - 1`` found in the movie)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from plexloc.camera import EMCCD, SCMOS, camera_from_config
from plexloc.camera.check import (CameraWarning, check_camera, clip_level, clip_threshold_photons, detect_clip_adu)
from plexloc.config.models import EMCCDConfig, IdealCameraConfig, SCMOSConfig
from plexloc.errors import InputError
from plexloc.table import LocTable


def _spot(shape, row, col, photons, sigma_px=1.3):
    """Expected photons of a pixel-centred Gaussian spot (point-sampled; enough for these tests)."""
    r, c = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((r + 0.5 - row) ** 2 + (c + 0.5 - col) ** 2) / (2 * sigma_px**2))
    return photons * g / g.sum()


def _movie(n_frames=6, shape=(32, 32), *, bright=20000.0, dim=2000.0, clip=4095, seed=0):
    """Raw uint16 frames of the SMLM Challenge EMCCD (6 ADU per photon) with a bright spot at (8.5, 8.5), whose
    peak goes past ``clip`` ADU, and a dim one at (22.5, 22.5) that stays far below it; clipped at ``clip``."""
    gen = torch.Generator().manual_seed(seed)
    cam = EMCCD()
    expected = 30.0 + _spot(shape, 8.5, 8.5, bright) + _spot(shape, 22.5, 22.5, dim)
    raw = cam(torch.as_tensor(np.broadcast_to(expected, (n_frames, *shape)).copy(), dtype=torch.float32), generator=gen)
    return raw.clamp_max(clip).numpy().astype(np.uint16)


# --- configuration and camera ---------------------------------------------------------------------------------------
def test_saturation_adu_is_validated_and_left_out_of_the_dump_when_unset():
    assert "saturation_adu" not in EMCCDConfig().model_dump()  # saved configurations stay as they were
    assert EMCCDConfig(saturation_adu="4095").saturation_adu == 4095.0
    assert SCMOSConfig(saturation_adu=16383).model_dump()["saturation_adu"] == 16383.0
    for bad in (50.0, 100.0, float("inf"), float("nan"), "4095 ADU"):
        with pytest.raises(ValueError, match="saturation_adu|ADU"):
            EMCCDConfig(saturation_adu=bad)  # at or below the baseline (100 ADU), not finite, a unit in the value
    with pytest.raises(InputError, match="above the baseline"):  # an sCMOS baseline map reaching the level
        SCMOS(baseline=torch.full((4, 4), 120.0), saturation_adu=110.0)


def test_a_camera_with_saturation_adu_clips_its_simulated_frames_there():
    cam = camera_from_config(EMCCDConfig(saturation_adu=4095))
    assert cam.saturation_adu == 4095.0
    raw = cam(torch.full((2, 8, 8), 5000.0), generator=torch.Generator().manual_seed(0))
    assert float(raw.max()) == 4095.0  # 5,000 photons are ~30,000 ADU: every pixel clipped at 4,095
    plain = camera_from_config(EMCCDConfig())(torch.full((2, 8, 8), 5000.0), generator=torch.Generator().manual_seed(0))
    assert float(plain.min()) > 20000.0
    assert camera_from_config(IdealCameraConfig(saturation_adu=10))(torch.full((3, 3), 50.0)).max() == 10.0


# --- the level: set, found, or the pixel type's ----------------------------------------------------------------------
def test_detect_clip_adu_finds_a_12_bit_camera_and_not_an_ordinary_movie():
    clipped = _movie()
    assert detect_clip_adu(clipped, np.uint16) == 4095.0
    assert clip_level(clipped, EMCCD(), np.uint16) == (4095.0, "found")
    assert clip_level(clipped, EMCCD(saturation_adu=4000.0), np.uint16) == (4000.0, "setting")
    assert clip_level(None, EMCCD(), np.uint16) == (65535.0, "dtype")
    assert clip_level(None, EMCCD(), np.float32) == (None, "")
    unclipped = _movie(clip=65535)
    assert int(unclipped.max()) > 4095 and detect_clip_adu(unclipped, np.uint16) is None
    # an ordinary movie whose largest value happens to be 2^k - 1: one pixel is no pile-up
    rng = np.random.default_rng(1)
    x = rng.poisson(150.0, (10, 32, 32)).astype(np.uint16)
    x[x >= 255] = 254
    x[0, 3, 3] = 255
    assert detect_clip_adu(x, np.uint16) is None
    # the file's own maximum is not a finding (the default level covers it); float movies have no level to find
    assert detect_clip_adu(np.full((2, 4, 4), 255, np.uint8), np.uint8) is None
    assert detect_clip_adu(clipped.astype(np.float32), np.float32) is None
    assert detect_clip_adu(clipped.astype(np.int32), np.int32) == 4095.0


def test_the_threshold_in_photons_selects_the_pixels_at_the_level_in_adu_also_with_scmos_maps():
    rng = np.random.default_rng(2)
    shape = (6, 7)
    cam = SCMOS(e_per_adu=torch.as_tensor(rng.uniform(0.3, 2.5, shape), dtype=torch.float32),
                baseline=torch.as_tensor(rng.uniform(90, 110, shape), dtype=torch.float32))
    for level in (4095.0, 65535.0):
        raw = torch.as_tensor(rng.integers(int(level) - 3, int(level) + 1, (5, *shape)), dtype=torch.float32)
        top = clip_threshold_photons(cam, level, shape)
        assert top.shape == shape
        assert torch.equal(cam.to_photons(raw) >= top, raw >= level)
    scalar = clip_threshold_photons(EMCCD(), 65535.0)
    assert scalar.ndim == 0 and float(EMCCD().to_photons(torch.tensor(65534.0))) < float(scalar) \
        < float(EMCCD().to_photons(torch.tensor(65535.0)))


def test_the_camera_check_names_a_found_level_and_the_setting():
    with pytest.warns(CameraWarning, match=r"exactly 4095 ADU \(2\^12 - 1\).*saturation_adu: 4095"):
        out = check_camera([_movie()], [EMCCD()], dtype=np.uint16, adu=True, noise=False)
    assert out.channels[0].level_source == "found" and out.channels[0].saturated > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no clipping, no finding
        check_camera([_movie(clip=65535, bright=3000.0)], [EMCCD()], dtype=np.uint16, adu=True, noise=False)
    with pytest.warns(CameraWarning, match="the camera's saturation_adu"):
        check_camera([_movie()], [EMCCD(saturation_adu=4095.0)], dtype=np.uint16, adu=True, noise=False)


# --- the per-row flag: MLE ------------------------------------------------------------------------------------------
def _config():
    from plexloc.config import SimulationConfig, validate_config

    return validate_config({"px_size_nm": 100.0, "frame_size": [32, 32], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
                            "camera": {"kind": "emccd"}, "emitters": {"photons_range": [500.0, 8000.0],
                                                                      "z_range_nm": [0.0, 0.0]}}, SimulationConfig)


def test_mle_rows_of_a_clipped_spot_are_flagged_and_the_others_not():
    from plexloc.mle import fit_movie

    stats: dict = {}
    with pytest.warns(CameraWarning, match="4095"):
        table = fit_movie(_movie(), _config())
    bright = np.hypot(table["x_nm"] - 850.0, table["y_nm"] - 850.0) < 150.0
    dim = np.hypot(table["x_nm"] - 2250.0, table["y_nm"] - 2250.0) < 150.0
    assert bright.sum() == 6 and dim.sum() == 6  # one of each per frame
    assert (table["saturated_px"][bright] >= 3).all() and (table["saturated_px"][dim] == 0).all()
    assert table["saturated_px"].dtype == np.int64
    # the flagged rows are the wrong ones: their photons far below the 20,000 sent (the dim spot's close to 2,000)
    assert np.median(table["photons"][bright]) < 0.8 * 20000.0  # 0.68x here
    assert abs(np.median(table["photons"][dim]) / 2000.0 - 1.0) < 0.15
    # the same movie in a 16-bit file without clipping: nothing flagged
    unclipped = fit_movie(_movie(clip=65535), _config())
    assert len(unclipped) == 12 and (unclipped["saturated_px"] == 0).all()
    del stats


def test_mle_stats_count_the_rows_and_name_the_level(tmp_path):
    from plexloc.mle.pipeline import _fit_parts

    stats: dict = {}
    cam = EMCCDConfig(saturation_adu=4095)
    with pytest.warns(CameraWarning, match="saturation_adu"):
        parts = list(_fit_parts(_movie(), _config(), device="cpu", camera=cam, batch_frames=4,
                                threshold_photons=None, progress=False, stats=stats))
    table = LocTable.concat(parts)
    assert stats["saturated_rows"] == int((table["saturated_px"] > 0).sum()) == 6
    assert stats["clip_levels"] == [(4095.0, "setting")]


# --- the per-row flag: network -------------------------------------------------------------------------------------
def _random_model(seed: int = 0):
    from plexloc.nets.localizer import Localizer, LocalizerSpec

    torch.manual_seed(seed)
    spec = LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0], input_scale=[20.0])
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # detections everywhere: rows near the clipped pixels and far from them
    return net.eval()


def test_network_rows_count_the_clipped_raw_pixels_of_the_7x7_around_them(tmp_path):
    from plexloc.infer import fit_movie
    from plexloc.infer.fit import SPOT_PX
    from plexloc.io.tiff import write_movie

    movie = _movie(n_frames=5, shape=(24, 28))
    write_movie(tmp_path / "m.tif", movie)
    stats: dict = {}
    with pytest.warns(CameraWarning, match="4095"):
        table = fit_movie(tmp_path / "m.tif", _random_model(), camera=EMCCDConfig(), stats=stats, calibrate_sigma=False)
    assert len(table) > 20 and table["saturated_px"].dtype == np.int64
    # brute force on the raw frames: the 7 x 7 pixels around each row's pixel, shifted inside the frame
    h, w = movie.shape[1:]
    want = []
    for f, x, y in zip(table["frame"], table["x_nm"], table["y_nm"]):
        r0 = min(max(int(y // 100.0) - SPOT_PX // 2, 0), h - SPOT_PX)
        c0 = min(max(int(x // 100.0) - SPOT_PX // 2, 0), w - SPOT_PX)
        want.append(int((movie[f, r0 : r0 + SPOT_PX, c0 : c0 + SPOT_PX] >= 4095).sum()))
    want = np.array(want)
    assert 0 < (want > 0).sum() < len(table)  # rows on both sides
    np.testing.assert_array_equal(table["saturated_px"], want)
    assert stats["saturated_rows"] == int((want > 0).sum()) and stats["clip_levels"] == [(4095.0, "found")]


def test_network_rows_of_an_unclipped_movie_are_not_flagged(tmp_path):
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie

    write_movie(tmp_path / "m.tif", _movie(n_frames=4, shape=(24, 28), clip=65535))
    table = fit_movie(tmp_path / "m.tif", _random_model(), camera=EMCCDConfig(), calibrate_sigma=False)
    assert len(table) > 20 and (table["saturated_px"] == 0).all()


# --- filter ---------------------------------------------------------------------------------------------------------
def test_filter_no_saturated_keeps_the_rows_without_clipped_pixels(tmp_path):
    from plexloc.cli.main import main
    from plexloc.io.tables import read_table, write_table
    from plexloc.post.filter import CRITERIA, filter_localizations

    t = LocTable({"frame": [0, 0, 1, 2], "x_nm": [1.0, 2.0, 3.0, 4.0], "y_nm": [0.0] * 4, "z_nm": [0.0] * 4,
                  "photons": [1e3] * 4, "saturated_px": [0, 5, 0, 1]})
    kept, report = filter_localizations(t, saturated=False)
    assert list(kept["x_nm"]) == [1.0, 3.0] and report.removed == {"saturated": 2}
    assert "saturated" in CRITERIA
    with pytest.raises(InputError, match="saturated must be False"):
        filter_localizations(t, saturated=True)
    with pytest.raises(InputError, match="saturated_px"):
        filter_localizations(t.without_columns("saturated_px"), saturated=False)
    write_table(t, tmp_path / "t.csv")
    assert main(["filter", str(tmp_path / "t.csv"), "--out", str(tmp_path / "k.csv"), "--no-saturated"]) == 0
    assert list(read_table(tmp_path / "k.csv")["x_nm"]) == [1.0, 3.0]


def test_mle_flag_with_scmos_maps_reads_each_pixels_threshold(tmp_path):
    """Per-pixel sCMOS maps: each window pixel is compared with its own threshold (the map read at the window)."""
    from plexloc.mle import fit_movie

    rng = np.random.default_rng(4)
    shape = (32, 32)
    gain = rng.uniform(0.4, 0.6, shape).astype(np.float32)  # e-/ADU per pixel
    base = rng.uniform(95, 105, shape).astype(np.float32)
    np.save(tmp_path / "gain.npy", gain)
    np.save(tmp_path / "base.npy", base)
    cam_cfg = SCMOSConfig(e_per_adu=tmp_path / "gain.npy", baseline=tmp_path / "base.npy", read_sigma=1.5)
    cam = camera_from_config(cam_cfg)  # about 1.6 ADU per photon: 40,000 photons peak near 6,000 ADU
    expected = 30.0 + _spot(shape, 8.5, 8.5, 40000.0) + _spot(shape, 22.5, 22.5, 2000.0)
    raw = cam(torch.as_tensor(np.broadcast_to(expected, (4, *shape)).copy(), dtype=torch.float32),
              generator=torch.Generator().manual_seed(0)).clamp_max(4095).numpy().astype(np.uint16)
    with pytest.warns(CameraWarning, match="4095"):
        table = fit_movie(raw, _config(), camera=cam_cfg)
    bright = np.hypot(table["x_nm"] - 850.0, table["y_nm"] - 850.0) < 150.0
    dim = np.hypot(table["x_nm"] - 2250.0, table["y_nm"] - 2250.0) < 150.0
    assert bright.sum() == 4 and dim.sum() == 4
    # the bright spot's clipped pixels of each frame, counted on the raw frames, all inside its fitting window
    want = [int((raw[f] >= 4095).sum()) for f in range(4)]
    assert min(want) > 0
    np.testing.assert_array_equal(table["saturated_px"][bright], want)
    assert (table["saturated_px"][dim] == 0).all()


@pytest.mark.filterwarnings("always::plexloc.camera.check.CameraWarning")  # the CLI prints it
def test_plexloc_fit_says_how_many_rows_touch_clipped_pixels(tmp_path, capsys):
    import yaml

    from plexloc.cli.main import main
    from plexloc.io.tables import read_table
    from plexloc.io.tiff import write_movie

    write_movie(tmp_path / "m.tif", _movie(n_frames=4))
    cfg = _config().model_dump(mode="json")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fit", str(tmp_path / "m.tif"), "--method", "mle", "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "l.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "exactly 4095 ADU (2^12 - 1)" in err and "saturation_adu: 4095" in err
    table = read_table(tmp_path / "l.csv")
    n = int((table["saturated_px"] > 0).sum())
    assert n == 4 and f"{n} rows touch pixels clipped at 4095 ADU (found in the movie)" in err
    assert f"plexloc filter {tmp_path / 'l.csv'} --out OUT --no-saturated" in err


def test_process_says_how_many_rows_touch_clipped_pixels(tmp_path, capsys):
    """plexloc process keeps the count in summary.json's fit and says it among the fit's notes, as plexloc fit does."""
    import json

    import tifffile

    from plexloc.cli.main import main
    from plexloc.config import save_config
    from plexloc.io.tables import read_table

    movie, cfg, out = tmp_path / "clipped.tif", tmp_path / "c.yaml", tmp_path / "out"
    tifffile.imwrite(movie, _movie())
    save_config(_config(), cfg)
    assert main(["process", str(movie), "--method", "mle", "--config", str(cfg), "--out", str(out), "--device", "cpu",
                 "--no-drift"]) == 0
    capsys.readouterr()
    s = json.loads((out / "clipped" / "summary.json").read_text())
    locs = read_table(out / "clipped" / "locs.csv")
    assert s["fit"]["saturated_rows"] == int((np.asarray(locs["saturated_px"]) > 0).sum()) == 6
    assert any(n.startswith("6 rows touch pixels clipped at 4095 ADU (found in the movie)") for n in s["fit"]["notes"])


@pytest.mark.filterwarnings("always::plexloc.camera.check.CameraWarning")  # the CLI prints it
def test_detect_finds_the_12_bit_level_as_fit_does(tmp_path, capsys):
    """plexloc detect's camera check looked only at the file type's maximum: a 12-bit camera's 4095 went unsaid."""
    import yaml

    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    write_movie(tmp_path / "m.tif", _movie(n_frames=4))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config().model_dump(mode="json")))
    assert main(["detect", str(tmp_path / "m.tif"), "--config", str(tmp_path / "c.yaml"), "--out",
                 str(tmp_path / "d.csv"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "exactly 4095 ADU (2^12 - 1)" in err and "saturation_adu: 4095" in err


def test_the_priors_pre_fit_finds_the_12_bit_level(tmp_path):
    """estimate-priors' camera check (mle.pipeline.camera_check without levels) finds the level in the raw frames."""
    from plexloc.mle.pipeline import MLEFitter, camera_check

    fitter = MLEFitter(_config(), device="cpu")
    with pytest.warns(CameraWarning, match=r"exactly 4095 ADU \(2\^12 - 1\)"):
        check = camera_check(fitter, [_movie(n_frames=4)], dtype=np.uint16, source="m.tif")
    assert check.channels[0].saturation_adu == 4095.0


def test_the_mle_fitter_computes_the_thresholds_of_fixed_levels_once():
    """fit_movie's levels are fixed for the movie: the thresholds come from a cache for every later batch, and anew
    when the levels change."""
    from plexloc.mle.pipeline import MLEFitter

    fitter = MLEFitter(_config(), device="cpu")
    fitter.clip_levels = [(4095.0, "found")]
    first = fitter.clip_thresholds()
    assert fitter.clip_thresholds() is first  # the same list: not computed again
    fitter.clip_levels = [(2000.0, "setting")]
    again = fitter.clip_thresholds()
    assert again is not first and float(again[0]) < float(first[0])
    fitter.clip_levels = None  # no fixed levels: from the frames' type, each time
    assert fitter.clip_thresholds([_movie(n_frames=1)]) is not fitter.clip_thresholds([_movie(n_frames=1)])
