"""Frames unlike the movie around them (blank, saturated): found from the frames' means, named with their neighbours
in the network's temporal window, and removable with plexloc filter --exclude-frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexloc.camera.frames import FrameOutlierWarning, frame_outlier_warning, frame_ranges, outlier_frames
from plexloc.cli.filter import frame_list
from plexloc.errors import InputError
from plexloc.post.filter import filter_localizations
from plexloc.table import LocTable


def _means(t: int = 1000, seed: int = 0) -> np.ndarray:
    """Mean photons per pixel of a bleaching movie: 60 -> 30 over the movie, a few percent of blinking noise."""
    rng = np.random.default_rng(seed)
    return 60.0 * np.exp(-np.arange(t) / t * np.log(2)) * (1 + 0.03 * rng.standard_normal(t))


def test_a_bleaching_flickering_movie_has_no_outliers():
    m = _means()
    m[300:320] *= 1.2  # 20 % laser flicker over 20 frames: the network handles it, not a broken frame
    assert outlier_frames(m).tolist() == []
    assert frame_outlier_warning(m, window=3, warn=False) is None


def test_blank_and_saturated_frames_are_found_in_any_channel():
    m = np.stack([_means(seed=1), _means(seed=2)], axis=1)
    m[0, 0] = 0.0  # the first frame blank in channel 0
    m[500, 1] = 6.5e4  # a saturated frame in channel 1
    m[700, :] = np.nan  # a frame that is not a number
    assert outlier_frames(m).tolist() == [0, 500, 700]
    with pytest.warns(FrameOutlierWarning, match=r"3 frame\(s\) of 1000 .* and so are those of frame\(s\) 1, 499, 501, "
                                                 r"699, 701: the network's temporal window of 3 frames") as rec:
        frame_outlier_warning(m, window=3, source="movie.tif")
    assert "--exclude-frames 0-1,499-501,699-701" in str(rec[0].message)
    assert "and so are those" not in frame_outlier_warning(m, window=1, warn=False)  # one frame at a time: itself only


def test_frame_ranges_and_the_filter_read_each_other():
    assert frame_ranges([0, 1, 4, 5, 6, 9]) == "0-1,4-6,9"
    assert frame_list("0-1,4-6,9") == [0, 1, 4, 5, 6, 9]
    import argparse

    for bad in ("3-1", "a", "-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            frame_list(bad)
    t = LocTable({"frame": np.array([0, 1, 2, 3, 3]), "x_nm": np.zeros(5), "y_nm": np.zeros(5), "z_nm": np.zeros(5),
                  "photons": np.ones(5)})
    kept, report = filter_localizations(t, exclude_frames=[1, 3])
    assert kept["frame"].tolist() == [0, 2] and report.removed == {"exclude_frames": 3}
    with pytest.raises(InputError, match="exclude_frames"):
        filter_localizations(t, exclude_frames=[1.5])


def test_the_network_fit_names_a_saturated_frame_and_its_neighbours(tmp_path):
    """A saturated frame in the middle of a movie: the fit warns, naming it and the frames its window shares
    (a review measured 82 spurious localizations next to such a frame, against about 7, with only the general
    saturation warning to show for it); stats['outlier_frames'] lists it. A clean movie is not warned about."""
    from plexloc.config.models import IdealCameraConfig
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.nets import Localizer, LocalizerSpec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0],
                                  input_scale=[20.0])).eval()
    movie = np.random.default_rng(0).poisson(45.0, size=(30, 32, 32)).astype(np.uint16)
    write_movie(tmp_path / "clean.tif", movie)
    stats: dict = {}
    fit_movie(tmp_path / "clean.tif", net, camera=IdealCameraConfig(), stats=stats, chunk_frames=7)
    assert stats["outlier_frames"] == []
    movie[12] = 65535
    write_movie(tmp_path / "glitch.tif", movie)
    stats = {}
    with pytest.warns(FrameOutlierWarning, match=r"glitch.tif: 1 frame\(s\) of 30 .* 12 \(6.55e\+04\).* frame\(s\) "
                                                 r"11, 13: the network's temporal window of 3 frames"):
        fit_movie(tmp_path / "glitch.tif", net, camera=IdealCameraConfig(), stats=stats, chunk_frames=7)
    assert stats["outlier_frames"] == [12]
