"""``plexloc split``: a split-view movie cut into one TIFF (and one configuration) per channel, and the commands it
prints, which take a split-view movie to the channel transform T.json. Before, there was no such path: a user cut the
movie by hand (Fiji) with the exact boxes and flips and had to know which ROI offset ``register`` wants."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.config import load_config
from plexloc.config.examples import example_path
from plexloc.config.models import SplitViewConfig
from plexloc.io.splitview import join_frames, split_frames

# a rotation of 0.5 degrees, a scale of 1.002 and a shift (150, -80) nm: reference -> channel 1, chip coordinates
_TH, _S = math.radians(0.5), 1.002
TRUE_T = [[_S * math.cos(_TH), -_S * math.sin(_TH), 150.0], [_S * math.sin(_TH), _S * math.cos(_TH), -80.0],
          [0.0, 0.0, 1.0]]


def _config(tmp_path, *, roi=(40, 20), flip=("none", "x"), boxes=None):
    data = yaml.safe_load(example_path("dual_color_splitview.yaml").read_text())
    data["roi_offset_px"] = list(roi)
    data["split_view"]["flip"] = list(flip)
    if boxes is not None:
        data["split_view"]["boxes"] = boxes
    data["channels"][1]["transform"] = TRUE_T
    path = tmp_path / "sv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _next_commands(out: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in out.splitlines() if line.startswith("  plexloc ")]


def test_split_writes_each_channel_cut_as_the_fit_cuts_it(tmp_path, capsys):
    cfg = _config(tmp_path, boxes=[[2, 1, 8, 6], [12, 1, 8, 6]], flip=("none", "xy"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4000, size=(7, 9, 22)).astype(np.uint16)
    movie = tmp_path / "beads 1.ome.tif"  # a space and a double suffix
    tifffile.imwrite(movie, frames)
    out = tmp_path / "cut"
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(out), "--chunk", "3"]) == 0
    printed = capsys.readouterr().out
    split = load_config(cfg).split_view
    want = split_frames(frames, split)
    for c in range(2):
        got = tifffile.imread(out / f"beads 1_ch{c}.tif")
        assert got.dtype == np.uint16 and got.shape == (7, 6, 8)
        np.testing.assert_array_equal(got, want[:, c])
    np.testing.assert_array_equal(tifffile.imread(out / "beads 1_ch1.tif")[:, ::-1, ::-1], frames[:, 1:7, 12:20])
    # each channel's configuration alone: its own PSF and camera, identity transform, no split_view
    for c in range(2):
        one = load_config(out / f"beads 1_ch{c}.yaml")
        assert one.n_channels == 1 and one.split_view is None
        np.testing.assert_array_equal(one.channels[0].transform, np.eye(3))
        assert one.channels[0].psf == load_config(cfg).channels[c].psf
    assert sorted(p.name for p in out.iterdir()) == ["beads 1_ch0.tif", "beads 1_ch0.yaml", "beads 1_ch1.tif",
                                                     "beads 1_ch1.yaml"]
    cmds = _next_commands(printed)
    assert cmds[0] == ["fit", str(out / "beads 1_ch0.tif"), "--method", "mle", "--config", str(out / "beads 1_ch0.yaml"),
                       "--out", str(out / "beads 1_ch0.csv")]
    assert cmds[2] == ["register", str(out / "beads 1_ch0.csv"), str(out / "beads 1_ch1.csv"), "--out",
                       str(out / "T.json"), "--camera-px-size", "100", "--roi-offset", "40", "20"]
    assert "camera ROI offset x 40, y 20 px (the configuration's roi_offset_px)" in printed


def test_roi_offset_from_the_movie_metadata_and_the_option(tmp_path, capsys):
    from test_io_roi import write_mm_stack

    cfg = _config(tmp_path, roi=(0, 0))
    frames = np.full((2, 64, 128), 100, dtype=np.uint16)
    movie = tmp_path / "mm.tif"
    write_mm_stack(movie, frames, summary={"ROI": [300, 200, 128, 64]}, image_meta={"ROI": "300-200-128-64"})
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "--roi-offset 300 200" in printed and "camera ROI offset x 300, y 200 px" in printed
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "b"), "--roi-offset", "7", "9"]) == 0
    assert "--roi-offset 7 9" in capsys.readouterr().out


def test_a_split_view_only_file_cuts_without_channel_configurations(tmp_path, capsys):
    sv = tmp_path / "boxes.yaml"
    sv.write_text("split_view:\n  boxes: [[0, 0, 4, 4], [4, 0, 4, 4]]\n")
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.arange(2 * 4 * 8, dtype=np.uint16).reshape(2, 4, 8))
    assert main(["split", str(movie), "--config", str(sv), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["m_ch0.tif", "m_ch1.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "m_ch1.tif"), tifffile.imread(movie)[:, :, 4:])
    assert "--config CONFIG_OF_CHANNEL_1" in captured.out and "holds no channels" in captured.err


def test_a_box_outside_the_frame_names_the_field_values_and_files(tmp_path, capsys):
    cfg = _config(tmp_path)  # boxes [0, 0, 64, 64], [64, 0, 64, 64]: a 128 x 64 frame
    movie = tmp_path / "small.tif"
    tifffile.imwrite(movie, np.zeros((3, 64, 120), dtype=np.uint16), photometric="minisblack")
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "split_view box 1 [x, y, width, height] = [64, 0, 64, 64]" in err
    assert "120 (width) x 64 (height)" in err and "x + width = 128 > 120" in err
    assert str(movie) in err and str(cfg) in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_refusals_leave_nothing(tmp_path, capsys, monkeypatch):
    cfg = _config(tmp_path)
    folder = tmp_path / "m"  # a movie folder whose one file has the first output's name
    folder.mkdir()
    tifffile.imwrite(folder / "m_ch0.tif", np.zeros((5, 64, 128), dtype=np.uint16))
    assert main(["split", str(folder), "--config", str(cfg), "--out", str(folder)]) == 2
    assert "is the movie itself" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["m_ch0.tif"]
    assert tifffile.imread(folder / "m_ch0.tif").shape == (5, 64, 128)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((5, 64, 128), dtype=np.uint16))
    # a config whose channels and boxes disagree
    data = yaml.safe_load(cfg.read_text())
    data["split_view"]["boxes"].append([0, 64, 64, 64])
    data["split_view"]["flip"].append("none")
    bad = tmp_path / "three.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["split", str(movie), "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "split_view has 3 boxes for 2 channels" in err
    # interrupted after the first chunk: no output, no temporary file, an earlier output untouched
    out = tmp_path / "int"
    out.mkdir()
    (out / "movie_ch1.tif").write_bytes(b"earlier")
    import plexloc.io.splitview as sv

    calls = []

    def interrupted(frames, split):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return split_frames(frames, split)

    monkeypatch.setattr(sv, "split_frames", interrupted)
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(out), "--chunk", "2"]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["movie_ch1.tif"]
    assert (out / "movie_ch1.tif").read_bytes() == b"earlier"


def _field_error(cfg, T):
    """The rms and the largest distance (nm) between ``T`` and the configured transform over the movie's field, in
    chip coordinates."""
    config = load_config(cfg)
    px = np.asarray(config.px_size_xy_nm)
    (ox, oy), (h, w) = np.asarray(config.roi_offset_px) * px, config.frame_size
    gx, gy = np.meshgrid(np.linspace(0, w * px[0], 17) + ox, np.linspace(0, h * px[1], 17) + oy)
    r = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    d = np.hypot(*((np.asarray(T) - np.asarray(config.channels[1].transform)) @ r)[:2])
    return float(np.sqrt(np.mean(d**2))), float(d.max())


def test_split_view_beads_to_the_simulated_transform(tmp_path, capsys):
    """The whole walk: a simulated split-view bead stack (channel 1 mirrored by the splitter, rotated 0.5 degrees,
    scaled 1.002 and shifted, camera ROI at chip pixel (40, 20)) -> plexloc split -> the printed fit and register
    commands -> T.json, which recovers the simulated transform to a few nanometres over the whole field."""
    cfg = _config(tmp_path)
    assert main(["simulate", str(cfg), "--beads", "9", "--z-step", "100", "--z-range", "-500", "500",
                 "--out", str(tmp_path / "sim"), "--seed", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["split", str(tmp_path / "sim" / "beads.tif"), "--config", str(cfg), "--out", str(tmp_path / "s")]) == 0
    said = capsys.readouterr().out
    cmds = _next_commands(said)
    assert [c[0] for c in cmds] == ["fit", "fit", "register"]
    link = re.search(r"then in the configuration: channels\[1\]\.transform: \{file: (.+)\}$", said, flags=re.M)
    for cmd in cmds:
        assert main(cmd) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "s" / "T.json").read_text())
    assert result["coordinates"] == "camera chip (nm)" and result["warning"] is None
    assert result["n_used"] >= 90 and result["residual_nm"]["rms"] < 10
    rms, worst = _field_error(cfg, result["transform"])
    assert rms < 3.0 and worst < 6.0  # 1.7 and 3.0 nm; the beads' localizations 6 nm rms apart
    A = np.asarray(result["transform"])[:2, :2]
    assert math.degrees(math.atan2(A[1, 0] - A[0, 1], A[0, 0] + A[1, 1])) == pytest.approx(0.5, abs=0.03)
    assert math.sqrt(np.linalg.det(A)) == pytest.approx(_S, abs=5e-4)
    # the ROI offset matters: the same fit in the cut channels' own coordinates is off by tens of nm on the chip
    assert _field_error(cfg, result["transform_in_table_coordinates"])[1] > 20
    assert "wrote" in printed
    # and the configuration takes it: channels[1].transform: {file: T.json}
    data = yaml.safe_load(cfg.read_text())
    assert link.group(1) == str((tmp_path / "s" / "T.json").resolve())
    data["channels"][1]["transform"] = {"file": link.group(1)}
    linked = tmp_path / "linked.yaml"
    linked.write_text(yaml.safe_dump(data))
    np.testing.assert_allclose(load_config(linked).channels[1].transform, result["transform"])


def test_split_movie_streams_in_chunks_of_the_memory_bound(tmp_path, monkeypatch):
    """The movie is read in chunks of about CHUNK_BYTES, never whole."""
    import plexloc.cli.split as split_cli
    from plexloc.io.tiff import MovieReader

    split = SplitViewConfig(boxes=[[0, 0, 4, 4], [4, 0, 4, 4]], flip=["none", "y"])
    frames = np.arange(10 * 4 * 8, dtype=np.uint16).reshape(10, 4, 8)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, frames)
    sizes = []
    real = MovieReader.iter_chunks

    def counting(self, n):
        for start, chunk in real(self, n):
            sizes.append(len(chunk))
            yield start, chunk

    monkeypatch.setattr(MovieReader, "iter_chunks", counting)
    monkeypatch.setattr(split_cli, "CHUNK_BYTES", 3 * 4 * 8 * 2)  # three frames
    n, shape = split_cli.split_movie(movie, split, [tmp_path / "a.tif", tmp_path / "b.tif"])
    assert (n, shape) == (10, (4, 4)) and sizes == [3, 3, 3, 1]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), frames[:, ::-1, 4:])
    np.testing.assert_array_equal(join_frames(np.stack([tifffile.imread(tmp_path / "a.tif"),
                                                        tifffile.imread(tmp_path / "b.tif")], axis=1), split, (4, 8)),
                                  frames)


def test_scmos_maps_are_cut_to_each_channels_box_as_its_pixels(tmp_path, capsys):
    """A channel's per-pixel maps travel with its pixels: a map of the joined frame is cut at the box, a full-chip one
    at the camera ROI plus the box, both flipped as the view is; a map of the box's shape is the channel's already.
    (Fitting a cut channel through the joined frame's maps read them at the frame's corner: channel 1's pixels with
    channel 0's offsets and gains.)"""
    rng = np.random.default_rng(1)
    boxes, frame, roi = [[0, 0, 8, 6], [10, 1, 8, 6]], (7, 20), (30, 12)
    chip_gain = rng.uniform(0.3, 0.6, size=(60, 90))
    frame_base = rng.uniform(95, 105, size=frame)
    own_base = rng.uniform(95, 105, size=(6, 8))
    np.save(tmp_path / "gain_chip.npy", chip_gain)
    np.save(tmp_path / "base_frame.npy", frame_base)
    np.save(tmp_path / "base_ch0.npy", own_base)
    scmos = {"kind": "scmos", "qe": 0.8, "read_sigma": 1.5, "spurious_charge": 0.0}
    data = {"px_size_nm": 100.0, "frame_size": [6, 8], "roi_offset_px": list(roi),
            "split_view": {"boxes": boxes, "flip": ["none", "xy"]},
            "channels": [{"psf": {"kind": "gaussian"}, "camera": {**scmos, "e_per_adu": "gain_chip.npy",
                                                                  "baseline": "base_ch0.npy"}},
                         {"psf": {"kind": "gaussian"}, "camera": {**scmos, "e_per_adu": "gain_chip.npy",
                                                                  "baseline": "base_frame.npy"}}]}
    cfg = tmp_path / "scmos.yaml"
    cfg.write_text(yaml.safe_dump(data))
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.full((2, *frame), 100, dtype=np.uint16))
    out = tmp_path / "o"
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    split = load_config(cfg).split_view
    on_frame = chip_gain[roi[1]:roi[1] + frame[0], roi[0]:roi[0] + frame[1]]  # the chip's pixels under the frame
    for c in range(2):
        one = load_config(out / f"m_ch{c}.yaml")
        cam = one.channels[0].camera
        want_gain = split_frames(on_frame[None], split)[0, c]
        np.testing.assert_array_equal(np.load(cam.e_per_adu), want_gain.astype(np.float32))  # as the fit reads maps
        assert Path(cam.e_per_adu) == out / f"m_ch{c}_e_per_adu.npy"
    np.testing.assert_array_equal(np.load(out / "m_ch1_baseline.npy"),
                                  split_frames(frame_base[None], split)[0, 1].astype(np.float32))
    assert Path(load_config(out / "m_ch0.yaml").channels[0].camera.baseline) == tmp_path / "base_ch0.npy"  # kept
    assert not (out / "m_ch0_baseline.npy").exists()
    assert "channel 1's camera baseline map cut to its box" in printed
    # a ROI that puts a box outside the chip's maps: named, nothing written
    assert main(["split", str(movie), "--config", str(cfg), "--out", str(tmp_path / "o2"), "--roi-offset", "80", "0"]) == 2
    err = capsys.readouterr().err
    assert "channels[1].camera.e_per_adu map" in err and "reaches row 7, column 98" in err and str(cfg) in err
    assert not (tmp_path / "o2").exists()
