"""Session 50 (helper clip): one clipping level for every path. A camera that clips below its file's maximum at a value
that is no full scale 2^k - 1 (a full well: a 16-bit movie clipped at 1000 or 4000 ADU) was found by the network fit
alone (infer.fit.piled_up_level): ``plexloc fit --method mle`` flagged no row, ``plexloc info`` and the camera check
said nothing. camera.check.find_clip_adu finds it for all of them. The crowded-EMCCD swap path of the camera check
reads the noise statistics noise_measure computed (it computed them again: 4 times a check, now 2)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_saturation41 import _config, _movie

from plexloc.camera import EMCCD
from plexloc.camera.check import CameraWarning, check_camera, clip_level, noise_measure


def _piled(n=20, shape=(32, 32), level=320, seed=1):
    return np.minimum(np.random.default_rng(seed).poisson(300.0, size=(n, *shape)), level).astype(np.uint16)


def test_clip_level_finds_a_pile_up_below_any_full_scale_and_keeps_the_guards():
    clipped = _movie(clip=4000)  # the bright spot clipped at 4000 ADU, no 2^k - 1
    assert clip_level(clipped, EMCCD(), np.uint16) == (4000.0, "pile-up")
    assert clip_level(_movie(), EMCCD(), np.uint16) == (4095.0, "found")  # a 12-bit full scale, as before
    assert clip_level(clipped, EMCCD(saturation_adu=5000.0), np.uint16) == (5000.0, "setting")
    # a split view's channel cut as float32 from a uint16 file: looked at as the file's integers
    assert clip_level(clipped.astype(np.float32), EMCCD(), np.uint16) == (4000.0, "pile-up")
    # guards: a float movie, the file's own maximum, a hot pixel, blank or constant frames, values under 16
    assert clip_level(clipped.astype(np.float32), EMCCD(), np.float32) == (None, "")
    assert clip_level(np.minimum(_piled(), 255).astype(np.uint8), EMCCD(), np.uint8) == (255.0, "dtype")
    dim = np.random.default_rng(1).poisson(5.0, size=(20, 32, 32)).astype(np.uint16)
    hot = dim.copy()
    hot[:, 4, 7] = 900
    assert clip_level(hot, EMCCD(), np.uint16) == (65535.0, "dtype")
    assert clip_level(np.zeros((2, 64, 64), np.uint16), EMCCD(), np.uint16) == (65535.0, "dtype")
    assert clip_level(np.full((2, 64, 64), 100, np.uint16), EMCCD(), np.uint16) == (65535.0, "dtype")
    low = np.random.default_rng(2).poisson(2.0, size=(64, 32, 32)).astype(np.uint16)
    assert clip_level(low, EMCCD(), np.uint16) == (65535.0, "dtype")
    assert clip_level(_movie(clip=65535), EMCCD(), np.uint16) == (65535.0, "dtype")  # not clipped


def test_the_network_fits_pile_up_level_is_the_shared_one():
    from plexloc.camera.check import piled_up_level as shared
    from plexloc.infer.fit import piled_up_level

    assert piled_up_level is shared and piled_up_level(_piled()) == 320.0


def test_the_camera_check_tells_a_pile_up_with_its_level():
    clipped = _movie(clip=4000)
    with pytest.warns(CameraWarning, match=r"sit at exactly 4000 ADU, piled up there and none above it in the first 6 "
                                           r"frames: the camera clips there \(its full well.*saturation_adu: 4000"):
        out = check_camera([clipped], [EMCCD()], dtype=np.uint16, adu=True, noise=False)
    ch = out.channels[0]
    assert ch.level_source == "pile-up" and ch.saturation_adu == 4000.0
    assert ch.saturated == int((clipped == 4000).sum()) > 0
    with warnings.catch_warnings():  # the same movie unclipped: no level, no finding
        warnings.simplefilter("error")
        check_camera([_movie(clip=65535, bright=3000.0)], [EMCCD()], dtype=np.uint16, adu=True, noise=False)


@pytest.mark.filterwarnings("always::plexloc.camera.check.CameraWarning")  # the CLI prints it
def test_plexloc_fit_mle_flags_the_rows_of_a_movie_clipped_at_a_full_well(tmp_path, capsys):
    """The bright spot clipped at 4000 ADU (4 frames): 0 of its rows flagged before (the MLE fit took the pixel type's
    maximum, 65535), all 4 now, and the dim spot's none; the summary and the camera check name the level."""
    import yaml

    from plexloc.cli.main import main
    from plexloc.io.tables import read_table
    from plexloc.io.tiff import write_movie

    write_movie(tmp_path / "m.tif", _movie(n_frames=4, clip=4000))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config().model_dump(mode="json")))
    assert main(["fit", str(tmp_path / "m.tif"), "--method", "mle", "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "l.csv")]) == 0
    err = capsys.readouterr().err
    table = read_table(tmp_path / "l.csv")
    bright = np.hypot(table["x_nm"] - 850.0, table["y_nm"] - 850.0) < 150.0
    assert int(bright.sum()) == 4 and (table["saturated_px"][bright] > 0).all()
    assert (table["saturated_px"][~bright] == 0).all()
    assert "4 rows touch pixels clipped at 4000 ADU (where the movie's pixels pile up)" in err
    assert "sit at exactly 4000 ADU, piled up there" in err


def test_plexloc_info_says_a_pile_up_and_its_share(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    movie = _movie(clip=4000)
    write_movie(tmp_path / "m.tif", movie)
    assert main(["info", str(tmp_path / "m.tif")]) == 0
    out = capsys.readouterr().out
    n = int((movie == 4000).sum())
    assert (f"clipping: the values pile up at 4000 ADU ({n} px = {100 * n / movie.size:.3g} %) and none is above: the "
            "camera clips there (no full scale 2^k - 1") in out
    write_movie(tmp_path / "u.tif", _movie(clip=65535))
    assert main(["info", str(tmp_path / "u.tif")]) == 0
    assert "clipping:" not in capsys.readouterr().out


def test_a_split_view_channel_clipped_at_a_full_well_is_found_by_the_network_fits_level(tmp_path):
    """A dual view whose right half clips at 4000 ADU: the network fit cuts the channels as float32 and looked for a
    pile-up in integer frames only, so neither channel had a level but 65535 (its rows unflagged)."""
    from plexloc.config.models import SplitViewConfig
    from plexloc.infer.fit import _clip_levels
    from plexloc.io.tiff import open_movie, write_movie

    left = _movie(clip=65535, bright=3000.0)
    right = _movie(clip=4000, seed=1)
    write_movie(tmp_path / "s.tif", np.concatenate([left, right], axis=2))
    split = SplitViewConfig(boxes=[(0, 0, 32, 32), (32, 0, 32, 32)])
    with open_movie(tmp_path / "s.tif") as movie:
        levels = _clip_levels([movie], split, [EMCCD(), EMCCD()], len(movie))
    assert levels == [(65535.0, "dtype"), (4000.0, "pile-up")]


def _crowded_swapped():
    from test_camera49_review import EMCCD as TRUE
    from test_camera49_review import _raw

    from plexloc.camera import camera_from_config

    raw = _raw(TRUE, bg=30.0, density=2.0, sigma_px=0.8, px_nm=160.0)
    cam = camera_from_config({**TRUE, "em_gain": 45.0, "e_per_adu": 300.0})
    return cam.to_photons(raw), cam


def test_the_crowded_emccd_swap_path_computes_the_noise_statistics_once_per_camera(monkeypatch):
    """Frames too crowded, em_gain and e_per_adu swapped: noise_measure's statistics were computed again by _swap_ratio
    and by check_camera (4 times a check); now once for the camera and once for the swap (2), with the same ratios
    and messages: the ratio is the high-passed one of those statistics, the swap's that of the frames swapped back."""
    import plexloc.camera.check as check

    ph, cam = _crowded_swapped()
    calls: list = []
    real = check._noise_stats
    monkeypatch.setattr(check, "_noise_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = check_camera([ph], [cam], dtype=np.uint16, source="movie.tif", warn=False)
    assert len(calls) == 2
    monkeypatch.setattr(check, "_noise_stats", real)
    (w,) = out.warnings
    assert "likely from em_gain and e_per_adu swapped" in w
    st = real(ph[:check.head_frames(ph.shape)].float(), cam)
    want = min(st["hp_ratios"][q] for q in check.NOISE_QUANTILES)
    assert out.channels[0].noise_ratio == want and out.channels[0].noise_note == ""
    assert out.channels[0].swap_ratio == pytest.approx(1.625, abs=5e-4)  # bench/clip50.json, before and after


def test_noise_measure_hands_back_its_statistics():
    ph, cam = _crowded_swapped()
    st: dict = {}
    ratio, note, _ = noise_measure(ph, cam, stats=st)
    assert note.startswith("frames too crowded") and np.isnan(ratio)
    assert set(st) >= {"ratios", "hp_ratios", "level", "counts"} and st["level"] > 0


def _later_clipped(n=72, start=66, level=4000):
    """The bright spot at 3000 photons (a peak of about 2000 ADU) in the first ``start`` frames, at 20000 from then
    on, where it clips at ``level`` ADU (the illumination raised; 32 x 32 frames: the camera check reads the first 64)."""
    early = _movie(n_frames=start, clip=65535, bright=3000.0)
    assert early.max() < level
    return np.concatenate([early, _movie(n_frames=n - start, clip=level, seed=1)])


def test_later_frames_spread_over_the_rest_of_the_movie():
    from plexloc.camera.check import later_frames

    assert later_frames(64, 64) == [] and later_frames(10, 0) == []
    assert later_frames(72, 64) == list(range(64, 72))
    more = later_frames(100_000, 64)
    assert len(more) == 64 and more[0] == 64 and more[-1] == 99_999


def test_a_movie_clipped_only_after_the_checked_frames_has_its_level_in_both_fits(tmp_path):
    """Clipped at 4000 ADU from frame 66 of 72 (the check reads 64): the level was the pixel type's maximum in both
    fits, and the rows fitted from clipped light went unflagged."""
    from plexloc.infer.fit import _clip_levels
    from plexloc.io.tiff import open_movie, write_movie
    from plexloc.mle.pipeline import ChannelMovies, frame_clip_levels, later_raw_frames, movie_fitter

    write_movie(tmp_path / "m.tif", _later_clipped())
    with open_movie(tmp_path / "m.tif") as movie:
        assert _clip_levels([movie], None, [EMCCD()], len(movie)) == [(4000.0, "pile-up")]
    with ChannelMovies(tmp_path / "m.tif", _config()) as movies:
        fitter = movie_fitter(movies, _config(), device="cpu", camera=None, threshold_photons=None)
        frames = movies.frames(0, 64)
        assert frame_clip_levels(fitter, frames, dtype=np.uint16) == [(65535.0, "dtype")]  # the first frames alone
        assert frame_clip_levels(fitter, frames, dtype=np.uint16, later=later_raw_frames(movies)) == \
            [(4000.0, "pile-up")]


@pytest.mark.filterwarnings("ignore::plexloc.camera.check.CameraWarning")
def test_mle_flags_the_rows_of_spots_clipped_only_in_later_frames():
    from plexloc.mle import fit_movie

    movie = _later_clipped()
    table = fit_movie(movie, _config())
    bright = np.hypot(table["x_nm"] - 850.0, table["y_nm"] - 850.0) < 150.0
    late = np.asarray(table["frame"]) >= 66
    assert int((bright & late).sum()) == 6 and (table["saturated_px"][bright & late] > 0).all()
    assert (table["saturated_px"][~late] == 0).all()
