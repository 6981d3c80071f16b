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


def test_split_names_its_own_option_in_the_configurations_errors(tmp_path, capsys):
    """plexloc split takes the configuration as --config; its errors named fit's --split-view, an option split has
    not."""
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.zeros((2, 4, 8), dtype=np.uint16), photometric="minisblack")
    plain = tmp_path / "plain.yaml"
    plain.write_text("px_size_nm: 100\nchannels:\n  - psf: {kind: gaussian}\n    camera: {kind: ideal}\n")
    assert main(["split", str(movie), "--config", str(plain), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{plain}: --config: the file has no split_view section" in err and "--split-view" not in err
    uneven = _splitview_only(tmp_path, boxes="[[0, 0, 4, 4], [4, 0, 3, 4]]")
    assert main(["split", str(movie), "--config", str(uneven), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"--config {uneven}: split_view:" in err and "all channel boxes must have the same width and height" in err
    assert "--split-view" not in err and not (tmp_path / "o").exists()


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


# ------------------------------------------------------------------------------------------------ plexloc info


def _two_cameras(tmp_path, *, split=False) -> tuple:
    """A configuration of two channels, each with its own movie (channel 0: EM gain 300, channel 1: 100), and an
    Andor Micro-Manager movie whose metadata record an EM gain of 300 (a 24 x 32 frame)."""
    from test_info45 import mm_movie

    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "e_per_adu": 45.0, "baseline": 100.0,
           "read_sigma": 74.4}
    data = {"px_size_nm": 160.0, "frame_size": [24, 32] if not split else [24, 16],
            "channels": [{"psf": {"kind": "gaussian"}, "camera": {**cam, "em_gain": 300.0}},
                         {"psf": {"kind": "gaussian"}, "camera": {**cam, "em_gain": 100.0}}]}
    if split:
        data["split_view"] = {"boxes": [[0, 0, 16, 24], [16, 0, 16, 24]]}
    cfg = tmp_path / ("sv.yaml" if split else "two.yaml")
    cfg.write_text(yaml.safe_dump(data))
    return cfg, mm_movie(tmp_path)


def test_info_compares_the_movie_with_the_channel_it_names(tmp_path, capsys):
    """One movie, a configuration of two channels each with its own movie: the movie is compared with channel 0's
    camera by default, with a note naming the channel, and with another channel's by --channel N (it could be
    checked against channel 0's camera only: channel 1's movie drew a false EM-gain warning, and a wrong channel 1
    camera went unseen)."""
    cfg, movie = _two_cameras(tmp_path)
    assert main(["info", str(movie), "--config", str(cfg), "--json", str(tmp_path / "c0.json")]) == 0
    out = capsys.readouterr().out
    assert (f"note: {cfg} has 2 channels, each with its own movie: {movie} is compared with channel 0's camera; for "
            "another channel's movie, give --channel N") in out
    assert "EM gain differs" not in out  # channel 0's 300 as recorded
    c0 = json.loads((tmp_path / "c0.json").read_text())["camera"]
    assert c0["channel"] == 0 and len(c0["check"]["channels"]) == 1
    assert [r["camera"] for r in c0["rows"] if r["setting"] == "em_gain"] == ["300"]
    # channel 1's camera (EM gain 100) against this movie (300 recorded): warned, naming channel 1's field
    assert main(["info", str(movie), "--config", str(cfg), "--channel", "1", "--json", str(tmp_path / "c1.json")]) == 0
    out = capsys.readouterr().out
    assert "compared with channel 1's camera" in out
    assert f"warning: the EM gain differs: {cfg}'s channels.1.camera.em_gain is 100 but the movie's metadata record 300" \
        in out and "off by about 3x" in out
    c1 = json.loads((tmp_path / "c1.json").read_text())["camera"]
    assert c1["channel"] == 1 and [r["camera"] for r in c1["rows"] if r["setting"] == "em_gain"] == ["100"]
    assert "(em_gain 100, e_per_adu 45" in c1["check"]["channels"][0]["settings"]  # the check ran on channel 1's
    assert "(em_gain 300, e_per_adu 45" in c0["check"]["channels"][0]["settings"]
    # the same through --camera (a multi-channel file's cameras)
    assert main(["info", str(movie), "--camera", str(cfg), "--channel", "1"]) == 0
    assert "channels.1.camera.em_gain is 100" in capsys.readouterr().out


def test_info_channel_refusals_name_the_file_and_value(tmp_path, capsys):
    cfg, movie = _two_cameras(tmp_path)
    assert main(["info", str(movie), "--config", str(cfg), "--channel", "2"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "--channel 2: the file has 2 channel(s), numbered from 0 to 1" in err
    assert main(["info", str(movie), "--channel", "1"]) == 2
    assert "--channel 1 picks the camera of one channel of a configuration: give --config" in capsys.readouterr().err
    sv, _ = _two_cameras(tmp_path, split=True)
    assert main(["info", str(movie), "--config", str(sv), "--channel", "1"]) == 2
    err = capsys.readouterr().err
    assert str(sv) in err and "split_view section" in err and "leave out --channel" in err
    assert main(["info", str(movie), "--config", str(sv), "--json", str(tmp_path / "sv.json")]) == 0
    capsys.readouterr()
    got = json.loads((tmp_path / "sv.json").read_text())["camera"]
    assert got["channel"] is None and len(got["check"]["channels"]) == 2  # every channel's box, its own camera


def test_compare_camera_channel_out_of_range():
    from plexloc.io.movie_info import CameraComparison, compare_camera

    assert CameraComparison().channel == 0
    with pytest.raises(ValueError, match="channel 3 of 1 camera"):
        compare_camera(None, [object()], camera_file="c.yaml", channel=3)


def test_info_reads_a_camera_file_once(tmp_path, capsys, monkeypatch):
    """Its cameras and whether it has a split view, from one read (_has_split_view read the file a second time)."""
    from pathlib import Path

    cfg, movie = _two_cameras(tmp_path)
    reads = []
    real = Path.read_text

    def counting(self, *args, **kwargs):
        if self.name == cfg.name:
            reads.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    assert main(["info", str(movie), "--camera", str(cfg)]) == 0
    assert len(reads) == 1, reads
    assert "compared with channel 0's camera" in capsys.readouterr().out
    sv, _ = _two_cameras(tmp_path, split=True)
    cfg = sv  # (counted by name)
    reads.clear()  # a split-view file given as --camera: refused, from the same one read
    assert main(["info", str(movie), "--camera", str(sv)]) == 2
    assert "sv.yaml: a split-view configuration: give it as --config" in capsys.readouterr().err
    assert len(reads) == 1, reads


def test_info_without_a_camera_does_not_import_torch(tmp_path):
    """The numpy-only parts of the camera check (clipping levels) no longer pull in torch (about 2 s of the command's
    3.5-4 s); with a camera the check needs it and imports it."""
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.random.default_rng(0).integers(100, 200, size=(4, 16, 16)).astype(np.uint16),
                     photometric="minisblack")
    code = ("import sys; from plexloc.cli.main import main; rc = main(['info', sys.argv[1]]); "
            "print('torch' in sys.modules, rc)")
    got = subprocess.run([sys.executable, "-c", code, str(movie)], capture_output=True, text=True, check=True)
    assert got.stdout.splitlines()[-1] == "False 0", got.stdout + got.stderr
    import plexloc.camera as camera

    assert camera.check_camera is camera.check.check_camera and "camera_from_config" in dir(camera)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        camera.nothing  # noqa: B018


def test_adu_statistics_refuses_empty_frames_and_keeps_its_numbers():
    from plexloc.io.movie_info import adu_statistics

    with pytest.raises(ValueError, match=r"adu_statistics takes frames \(T, H, W\) with a pixel at least, got shape "
                                         r"\(0, 4, 4\)"):
        adu_statistics(np.zeros((0, 4, 4), np.uint16))
    one = adu_statistics(np.arange(100, dtype=np.uint16).reshape(10, 10))
    assert one.frames == 1 and one.dim_level == 0.0 and np.isnan(one.dim_noise)
    two = adu_statistics(np.stack([np.full((10, 10), 100, np.uint16), np.full((10, 10), 104, np.uint16)]))
    assert two.frames == 2 and two.dim_level == 102.0 and two.dim_noise == 0.0


def test_info_names_the_chosen_channel_in_its_camera_maps_error(tmp_path, capsys):
    """Channel 1's sCMOS maps that do not fit the movie: the check's error names channel 1 (the channel compared)."""
    from test_info45 import mm_movie

    np.save(tmp_path / "small.npy", np.full((10, 10), 100.0))
    cam = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}
    data = {"px_size_nm": 160.0, "frame_size": [24, 32],
            "channels": [{"psf": {"kind": "gaussian"}, "camera": cam},
                         {"psf": {"kind": "gaussian"}, "camera": {**cam, "baseline": "small.npy"}}]}
    cfg = tmp_path / "two_scmos.yaml"
    cfg.write_text(yaml.safe_dump(data))
    movie = mm_movie(tmp_path)
    assert main(["info", str(movie), "--config", str(cfg), "--channel", "1", "--json", str(tmp_path / "i.json")]) == 0
    got = json.loads((tmp_path / "i.json").read_text())["camera"]
    assert got["check"] is None and "channel 1's camera maps are (10, 10)" in got["check_error"], got["check_error"]
    assert "camera check could not run" in capsys.readouterr().out
    assert main(["info", str(movie), "--config", str(cfg), "--json", str(tmp_path / "j.json")]) == 0
    assert json.loads((tmp_path / "j.json").read_text())["camera"]["check_error"] == ""  # channel 0: no maps
