"""``plexloc split`` and ``plexloc info``, session 46: one crop-and-flip of a channel box for frames and camera maps
(:func:`plexloc.io.splitview.cut_box`), the movie opened once by ``split``, ``info``'s camera file read once, ``info``
free of torch without a camera, and a multi-channel configuration of one movie per channel checked with the camera of
the channel the movie is (``--channel N``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.config.models import SplitViewConfig


# ------------------------------------------------------------------------------------------------ splitview helpers


def test_cut_box_crops_at_the_origin_and_flips_frames_and_maps_alike():
    from plexloc.io.splitview import cut_box

    chip = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    box = (3, 2, 5, 4)  # [x, y, width, height]
    np.testing.assert_array_equal(cut_box(chip, box, "none"), chip[2:6, 3:8])
    np.testing.assert_array_equal(cut_box(chip, box, "x"), chip[2:6, 3:8][:, ::-1])
    np.testing.assert_array_equal(cut_box(chip, box, "y"), chip[2:6, 3:8][::-1, :])
    np.testing.assert_array_equal(cut_box(chip, box, "xy"), chip[2:6, 3:8][::-1, ::-1])
    # a full-chip map: the box sits at the camera ROI (x 10, y 7) plus its corner
    np.testing.assert_array_equal(cut_box(chip, box, "x", origin=(10, 7)), chip[9:13, 13:18][:, ::-1])
    # a stack of frames is cut as each frame is (split_frames)
    frames = np.stack([chip, chip + 1000])
    np.testing.assert_array_equal(cut_box(frames, box, "xy")[1], cut_box(chip + 1000, box, "xy"))
    assert np.shares_memory(cut_box(chip, box, "xy"), chip)  # a view: the callers copy once


def test_split_and_join_frames_through_the_shared_helpers():
    from plexloc.io.splitview import flip_image, flips, join_frames, split_frames

    split = SplitViewConfig(boxes=[[0, 1, 4, 3], [5, 0, 4, 3]], flip=["y", "xy"])
    frames = np.arange(2 * 4 * 9, dtype=np.uint16).reshape(2, 4, 9)
    parts = split_frames(frames, split)
    assert parts.shape == (2, 2, 3, 4) and parts.flags.c_contiguous
    np.testing.assert_array_equal(parts[:, 0], frames[:, 1:4, 0:4][:, ::-1, :])
    np.testing.assert_array_equal(parts[:, 1], frames[:, 0:3, 5:9][:, ::-1, ::-1])
    back = join_frames(parts, split, (4, 9), fill=7)
    np.testing.assert_array_equal(back[:, 1:4, 0:4], frames[:, 1:4, 0:4])
    np.testing.assert_array_equal(back[:, 0:3, 5:9], frames[:, 0:3, 5:9])
    assert np.all(back[:, :, 4] == 7)
    assert flips(SplitViewConfig(boxes=[[0, 0, 2, 2], [2, 0, 2, 2]])) == ["none", "none"]
    a = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(flip_image(flip_image(a, "xy"), "xy"), a)  # its own inverse


# ------------------------------------------------------------------------------------------------ plexloc split


def _splitview_only(tmp_path, boxes="[[0, 0, 4, 4], [4, 0, 4, 4]]"):
    sv = tmp_path / "boxes.yaml"
    sv.write_text(f"split_view:\n  boxes: {boxes}\n  flip: [none, x]\n")
    return sv


def _channels_config(tmp_path):
    """Two channels of a split view, each a 4 x 4 box of an 8-pixel-wide frame."""
    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 100.0, "e_per_adu": 45.0,
           "baseline": 100.0, "read_sigma": 74.4}
    data = {"px_size_nm": 100.0, "frame_size": [4, 4], "roi_offset_px": [5, 6],
            "split_view": {"boxes": [[0, 0, 4, 4], [4, 0, 4, 4]], "flip": ["none", "x"]},
            "channels": [{"psf": {"kind": "gaussian"}, "camera": cam}, {"psf": {"kind": "gaussian"}, "camera": cam}]}
    cfg = tmp_path / "sv.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


@pytest.mark.parametrize("with_channels", [False, True])
def test_split_opens_the_movie_once(tmp_path, capsys, monkeypatch, with_channels):
    """Its ROI metadata, its frame for the boxes and the maps, its frames: one reader (it was opened three times, each
    parsing the TIFF's pages again)."""
    from plexloc.io.tiff import MovieReader

    cfg = _channels_config(tmp_path) if with_channels else _splitview_only(tmp_path)
    frames = np.arange(3 * 4 * 8, dtype=np.uint16).reshape(3, 4, 8)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, frames, photometric="minisblack")
    opened = []
    real = MovieReader.__init__

    def counting(self, *args, **kwargs):
        opened.append(args[0])
        real(self, *args, **kwargs)

    monkeypatch.setattr(MovieReader, "__init__", counting)
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert len(opened) == 1, opened
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "m_ch1.tif"), frames[:, :, 4:][:, :, ::-1])
    if with_channels:
        assert "camera ROI offset x 5, y 6 px (the configuration's roi_offset_px)" in printed
    else:
        assert "camera ROI offset x 0, y 0 px (default (0, 0): no ROI position in the metadata of" in printed


def test_split_view_only_file_with_a_box_outside_the_frame_creates_no_folder(tmp_path, capsys):
    """The boxes are checked before --out is made (a split_view section alone was checked only once the folder
    existed, which it left behind, empty)."""
    sv = _splitview_only(tmp_path, boxes="[[0, 0, 4, 4], [6, 0, 4, 4]]")
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.zeros((2, 4, 8), dtype=np.uint16))
    assert main(["split", str(movie), "--config", str(sv), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "split_view box 1 [x, y, width, height] = [6, 0, 4, 4]" in err and "x + width = 10 > 8" in err
    assert str(movie) in err and str(sv) in err
    assert not (tmp_path / "o").exists()


def test_split_movie_takes_a_path_or_an_open_reader(tmp_path):
    import plexloc.cli.split as split_cli

    split = SplitViewConfig(boxes=[[0, 0, 4, 4], [4, 0, 4, 4]], flip=["none", "y"])
    frames = np.arange(5 * 4 * 8, dtype=np.uint16).reshape(5, 4, 8)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, frames)
    with split_cli.open_split_source(movie) as reader:
        assert split_cli.split_movie(reader, split, [tmp_path / "a.tif", tmp_path / "b.tif"], chunk_frames=2) \
            == (5, (4, 4))
        assert reader[0:1].shape == (1, 4, 8)  # used, not closed
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), frames[:, ::-1, 4:])
    assert split_cli.split_movie(movie, split, [tmp_path / "c.tif", tmp_path / "d.tif"]) == (5, (4, 4))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), frames[:, :, :4])
