"""``estimate-priors``: photon and background ranges of a simulated movie recovered by the MLE pre-fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.cli.main import main
from plexloc.config import load_config
from plexloc.errors import InputError
from plexloc.io.tiff import write_movie
from plexloc.mle.priors import estimate_priors, link_tracks, track_flux, uniform_range
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_uniform_range_inverts_the_quantiles():
    rng = np.random.default_rng(0)
    lo, hi = uniform_range(rng.uniform(300.0, 900.0, 200_000))
    assert abs(lo - 300.0) < 3 and abs(hi - 900.0) < 3
    with pytest.raises(InputError, match="too few"):
        uniform_range(np.ones(3))


def test_tracks_give_one_flux_sample_per_emitter_with_three_whole_frames():
    from plexloc.table import LocTable

    rows = [  # (frame, x, photons) per track; tracks far apart in x
        [(0, 1000, 300), (1, 1005, 5000), (2, 998, 5100), (3, 1002, 4900), (4, 1001, 200)],  # partial ends seen
        [(2, 3000, 1000), (3, 3003, 1050), (4, 2999, 980)],  # a dim one: partial ends not detected
        [(5, 5000, 2000), (6, 5001, 2000)],  # too short
        [(7, 7000, 500), (8, 7002, 3000), (9, 7001, 400)],  # one whole frame only
    ]
    flat = [r for t in rows for r in t]
    locs = LocTable({"frame": [r[0] for r in flat], "x_nm": [float(r[1]) for r in flat], "y_nm": [500.0] * len(flat),
                     "z_nm": [0.0] * len(flat), "photons": [float(r[2]) for r in flat]})
    track = link_tracks(locs, radius_nm=100.0)
    assert len(np.unique(track)) == 4 and track[0] == track[4] and track[5] == track[7]
    np.testing.assert_allclose(np.sort(track_flux(locs, track)), [1000.0, 5000.0])


def test_estimate_priors_recovers_the_simulated_ranges(tmp_path, capsys):
    """2D Gaussian movie, 0.1 /um², flux 1,000-10,000, background 20-100: background range and the upper
    photon bound within 10 %, the lower photon bound within 15 % (measured: photons [999, 9847], background
    [19.9, 101.1]; with the crowded-spot windows of 2026-12-04 [870, 9848], [20.0, 101.1]). With ~300 flux
    samples (tracks with three whole frames) the lower photon bound has a statistical error of ~10 %;
    at 2,000 frames and 0.1-0.5 /um² it came out 16-44 % high (dim emitters are detected less often), and on
    seeds 5-9 of this movie 972 / 1,368 / 988 / 1,212 / 1,574 with one 11-px window for every spot against
    870 / 1,329 / 960 / 1,217 / 1,613 with the crowded-spot windows (2026-12-04)."""
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    cfg.emitters.density_per_um2 = 0.1
    cfg.emitters.photons_range = (1000.0, 10000.0)
    movie = Simulator(cfg).simulate_movie(1500, generator=torch.Generator().manual_seed(5))
    write_movie(tmp_path / "movie.tif", movie.frames[0].numpy())
    cfg_path = tmp_path / "config.yaml"
    from plexloc.config import save_config

    save_config(cfg, cfg_path)
    out = tmp_path / "priors.yaml"
    rc = main(["estimate-priors", str(tmp_path / "movie.tif"), "--config", str(cfg_path), "--out", str(out),
               "--json", str(tmp_path / "priors.json"), "--device", "cpu"])
    assert rc == 0
    pri = load_config(out)  # a valid configuration
    lo, hi = pri.emitters.photons_range
    blo, bhi = pri.background.range
    assert abs(hi / 10000.0 - 1) < 0.10, (lo, hi)
    assert abs(lo / 1000.0 - 1) < 0.15, (lo, hi)
    assert abs(blo / 20.0 - 1) < 0.10 and abs(bhi / 100.0 - 1) < 0.10, (blo, bhi)
    # everything else is the input configuration
    assert pri.channels == cfg.channels and pri.frame_size == cfg.frame_size
    assert (tmp_path / "priors.json").exists()
    if not torch.cuda.is_available():  # the DECODE-sized network of train.yaml and a CPU: said, with what trains there
        assert "needs a GPU" in capsys.readouterr().err


def test_estimate_priors_needs_one_movie_per_channel(tmp_path):
    cfg = load_config(EXAMPLES / "biplane.yaml")
    with pytest.raises(InputError, match="channel"):
        estimate_priors(tmp_path / "movie.tif", cfg)


def test_estimate_priors_ratiometric_flux_is_not_divided_by_the_channel_count(tmp_path):
    """Dual colour (ratiometric, ratios summing to 1 per dye): the flux is the total over both channels. It was
    divided by the throughputs' sum (2), which the ratiometric model does not use: [712, 5010] for [1000, 10000]
    (measured now on this movie: [1230, 10054])."""
    assert main(["simulate", str(EXAMPLES / "dual_color.yaml"), "--frames", "300", "--density", "0.3", "--out",
                 str(tmp_path / "sim"), "--seed", "2", "--device", "cpu"]) == 0
    out = tmp_path / "pri.yaml"
    assert main(["estimate-priors", str(tmp_path / "sim" / "movie_ch0.tif"), str(tmp_path / "sim" / "movie_ch1.tif"),
                 "--config", str(EXAMPLES / "dual_color.yaml"), "--out", str(out), "--device", "cpu"]) == 0
    lo, hi = load_config(out).emitters.photons_range
    assert abs(hi / 10000.0 - 1) < 0.1 and 0.8 < lo / 1000.0 < 1.5, (lo, hi)


def test_estimate_priors_names_the_camera_check_when_it_finds_no_tracks(tmp_path):
    """e_per_adu and em_gain swapped (the SMLM Challenge EMCCD's 45 and 300): the pre-fit found 0 tracks and the
    error blamed the frames alone; now the camera check warns (noise 43x the prediction) and the error says so."""
    from plexloc.camera import CameraWarning
    from plexloc.config import validate_config

    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    movie = Simulator(cfg).simulate_movie(120, generator=torch.Generator().manual_seed(4))
    write_movie(tmp_path / "m.tif", movie.frames[0].numpy())
    data = cfg.model_dump()
    data["channels"][0]["camera"].update(em_gain=45.0, e_per_adu=300.0)
    swapped = validate_config(data, type(cfg))
    with pytest.warns(CameraWarning, match="pixel noise between frames is 4"):
        with pytest.raises(InputError, match=r"m.tif: .*tracks.*; the camera check found: .*em_gain 45, e_per_adu 300"):
            estimate_priors(tmp_path / "m.tif", swapped)


def _two_channel_movies(tmp_path, frames: int = 150):
    """A dual-colour movie (examples/dual_color.yaml at 32x32 px): its configuration and one TIFF per channel."""
    from plexloc.config import validate_config

    base = load_config(EXAMPLES / "dual_color.yaml")
    data = base.model_dump()
    data["frame_size"] = [32, 32]
    data["emitters"]["density_per_um2"] = 0.3
    cfg = validate_config(data, type(base))
    movie = Simulator(cfg).simulate_movie(frames, generator=torch.Generator().manual_seed(3))
    paths = []
    for c in range(2):
        paths.append(tmp_path / f"movie_ch{c}.tif")
        write_movie(paths[-1], movie.frames[c].numpy())
    return cfg, movie, paths


def test_estimate_priors_takes_one_split_view_movie(tmp_path):
    """One split-view TIFF with a split_view configuration (channel 1 mirrored in x, to the right of channel 0) gives
    the ranges of one TIFF per channel. Before, it was refused: 'the configuration has 2 channel(s) but 1 movie(s)
    were given', naming no file, and there was no way to split the movie."""
    import yaml

    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import join_frames

    cfg, movie, paths = _two_channel_movies(tmp_path)
    split = SplitViewConfig(boxes=[(0, 0, 32, 32), (40, 0, 32, 32)], flip=["none", "x"])
    chans = np.stack([movie.frames[c].numpy() for c in range(2)], axis=1)
    write_movie(tmp_path / "split.tif", join_frames(chans, split, (32, 72)))
    _, per_channel = estimate_priors(paths, cfg)
    split_cfg = cfg.model_copy(update={"split_view": split})
    # the command line (estimate_priors on the split-view movie, its ranges written to p.yaml): one movie and a
    # configuration with split_view
    cfg_path = tmp_path / "split.yaml"
    cfg_path.write_text(yaml.safe_dump(split_cfg.model_dump(mode="json")))
    assert main(["estimate-priors", str(tmp_path / "split.tif"), "--config", str(cfg_path), "--out",
                 str(tmp_path / "p.yaml"), "--device", "cpu"]) == 0
    joined = load_config(tmp_path / "p.yaml")
    np.testing.assert_allclose(joined.emitters.photons_range, per_channel["photons_range"], rtol=1e-6)
    np.testing.assert_allclose(joined.background.range, per_channel["background_range"], rtol=1e-6)
    # without split_view the error names the file and says what to give
    with pytest.raises(InputError, match=r"split\.tif.*split_view"):
        estimate_priors(tmp_path / "split.tif", cfg)


def test_estimate_priors_refuses_channel_movies_of_different_lengths(tmp_path):
    """Channel 1 shorter than channel 0: refused naming both files and their frame counts (as fit does). Before, a
    raw 'RuntimeError: stack expects each tensor to be equal size ... [0, 32, 32]'."""
    cfg, movie, paths = _two_channel_movies(tmp_path, frames=60)
    write_movie(tmp_path / "short.tif", movie.frames[1].numpy()[:40])
    with pytest.raises(InputError, match=r"short\.tif has 40 frames .*movie_ch0\.tif 60"):
        estimate_priors([paths[0], tmp_path / "short.tif"], cfg)
