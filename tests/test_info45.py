"""``plexloc info``: what plexloc reads from a movie (format, metadata with their sources, the first frames' ADU
statistics) and a camera's settings beside them, with the camera check as fit runs it (:mod:`plexloc.io.movie_info`).

Movies written here: a Micro-Manager stack (as ``test_io_roi`` lays it out), an OME-TIFF with an Instrument, an
ImageJ hyperstack, plain and compressed TIFFs, a folder of TIFFs, a ``plexloc simulate`` movie; and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from test_io_roi import write_mm_stack

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io.movie_info import adu_statistics, compare_camera, read_movie_info

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

MM_IMAGE = {"Camera": "Andor", "Andor-Gain": "300", "Exposure-ms": 30.0, "Binning": "1", "Andor-ReadMode": "Image",
            "Andor-Output_Amplifier": "Electron Multiplying", "Andor-CCDTemperature": "-70",
            "Andor-CCDTemperatureSetPoint": "-80", "PixelSizeUm": 0.16, "ROI": "16-8-32-24"}


def mm_movie(tmp_path, *, image=None, summary=None, name="m_MMStack_Pos0.ome.tif"):
    frames = np.random.default_rng(0).integers(100, 400, size=(6, 24, 32)).astype(np.uint16)
    return write_mm_stack(tmp_path / name, frames, summary={"Interval_ms": 50, **(summary or {})},
                          image_meta=MM_IMAGE if image is None else image)


def camera_yaml(tmp_path, **fields) -> Path:
    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
           "baseline": 100.0, "read_sigma": 74.4, **fields}
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump(cam))
    return path


def test_micro_manager_metadata_each_with_its_key(tmp_path):
    info = read_movie_info(mm_movie(tmp_path))
    rec = info.recorded
    assert (rec["camera"].value, rec["camera"].source) == ("Andor", "Micro-Manager image metadata 'Camera'")
    assert rec["exposure_ms"].value == 30.0 and "'Exposure-ms'" in rec["exposure_ms"].source
    assert rec["frame_interval_ms"].value == 50.0 and "summary metadata 'Interval_ms'" in rec["frame_interval_ms"].source
    # Andor's 'Gain' is the EM gain where its output amplifier is the EM one (said with both keys)
    assert rec["em_gain"].value == 300.0 and "'Andor-Gain'" in rec["em_gain"].source
    assert "'Andor-Output_Amplifier' = 'Electron Multiplying'" in rec["em_gain"].source and "gain" not in rec
    assert rec["temperature_c"].value == -70.0 and "'Andor-CCDTemperature'" in rec["temperature_c"].source  # not the set point
    assert "ReadMode Image" in rec["readout"].value and "Output_Amplifier Electron Multiplying" in rec["readout"].value
    assert rec["binning"].value == 1.0 and rec["bit_depth"].value == 16.0  # the summary's BitDepth
    assert "z_spacing" not in rec  # not recorded: never guessed
    assert info.pixel_size.x_nm == pytest.approx(160.0) and "'PixelSizeUm'" in info.pixel_size.source
    assert info.roi_offset.px == (16, 8) and "'ROI'" in info.roi_offset.source  # as fit reads it
    assert (info.n_frames, info.frame_shape, info.dtype) == (6, (24, 32), "uint16")
    assert "micromanager" in info.tiff.formats and info.tiff.pages == 6
    assert info.bytes_on_disk == (tmp_path / "m_MMStack_Pos0.ome.tif").stat().st_size


def test_em_gain_in_the_camera_yaml_against_the_metadata(tmp_path, capsys):
    movie = mm_movie(tmp_path)
    cam = camera_yaml(tmp_path, em_gain=100.0)
    assert main(["info", str(movie), "--camera", str(cam)]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning: the EM gain differs")]
    assert len(warning) == 1
    assert "camera.yaml's em_gain is 100" in warning[0] and "300" in warning[0] and "'Andor-Gain'" in warning[0]
    assert "about 3x" in warning[0]
    assert "camera check (" in out  # the verdict, as fit runs it
    # the same gain: no warning
    cam = camera_yaml(tmp_path, em_gain=300.0)
    assert main(["info", str(movie), "--camera", str(cam)]) == 0
    assert "EM gain differs" not in capsys.readouterr().out


def test_a_12_bit_camera_without_saturation_adu_and_a_baseline_above_the_data(tmp_path):
    movie = mm_movie(tmp_path, summary={"BitDepth": 12})
    info = read_movie_info(movie)
    cmp = compare_camera(info, [_camera(baseline=500.0)], camera_file="camera.yaml")
    text = " ".join(cmp.warnings)
    assert "12-bit camera" in text and "clip at 4095 ADU" in text and "saturation_adu: 4095" in text
    assert "baseline is 500 ADU" in text and "takes photons away" in text
    # the right camera: neither
    ok = compare_camera(info, [_camera(baseline=100.0, saturation_adu=4095.0)], camera_file="camera.yaml")
    assert not ok.warnings, ok.warnings


def _camera(**fields):
    from pydantic import TypeAdapter

    from plexloc.config.models import CameraConfig

    cam = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
           "baseline": 100.0, "read_sigma": 74.4, **fields}
    return TypeAdapter(CameraConfig).validate_python(cam)


def test_bad_roi_metadata_are_shown_not_fatal(tmp_path):
    info = read_movie_info(mm_movie(tmp_path, image={**MM_IMAGE, "ROI": "0-0-64-64"}))
    assert info.roi_offset is None and "the ROI is 64x64" in info.roi_offset_error
    assert info.pixel_size is not None  # the rest is read


def test_ome_tiff_detector_and_plane(tmp_path, capsys):
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<Instrument ID="Instrument:0"><Detector ID="Detector:0" Manufacturer="Andor" Model="iXon Ultra 897" '
           'Type="EMCCD" AmplificationGain="200"/></Instrument><Image ID="Image:0"><Pixels ID="Pixels:0" '
           'DimensionOrder="XYZCT" Type="uint16" SizeX="16" SizeY="12" SizeZ="1" SizeC="1" SizeT="5" '
           'PhysicalSizeX="0.108" PhysicalSizeXUnit="&#181;m" PhysicalSizeY="0.108" SignificantBits="14" '
           'TimeIncrement="20" TimeIncrementUnit="ms"><Channel ID="Channel:0:0" SamplesPerPixel="1">'
           '<DetectorSettings ID="Detector:0" Binning="2x2" ReadOutRate="17" ReadOutRateUnit="MHz"/></Channel>'
           '<TiffData IFD="0" PlaneCount="5"/><Plane TheC="0" TheZ="0" TheT="0" ExposureTime="0.015" '
           'ExposureTimeUnit="s"/></Pixels></Image></OME>')
    frames = np.full((5, 12, 16), 300, np.uint16)
    frames[:, :2, :] = 16383  # 32 px a frame at the 14-bit full scale: clipped
    path = tmp_path / "m.ome.tif"
    tifffile.imwrite(path, frames, description=xml, metadata=None, photometric="minisblack")
    info = read_movie_info(path)
    rec = info.recorded
    assert rec["camera"].value == "Andor iXon Ultra 897 (EMCCD)"
    assert rec["em_gain"].value == 200.0 and "AmplificationGain" in rec["em_gain"].source
    assert rec["exposure_ms"].value == pytest.approx(15.0) and rec["frame_interval_ms"].value == pytest.approx(20.0)
    assert rec["binning"].value == "2x2" and rec["bit_depth"].value == 14.0 and "17 MHz" in rec["readout"].value
    assert info.pixel_size.x_nm == pytest.approx(108.0) and "ome" in info.tiff.formats
    assert info.adu.clip_level == 16383.0
    assert (16383.0, 5 * 32, 0) in info.adu.at_full_scale
    assert info.adu.clipped_share(16383.0) == pytest.approx(32 / 192)
    # an EMCCD configured at another gain, and a configuration of another pixel size
    cfg = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    cfg.update(frame_size=[12, 16])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["info", str(path), "--config", str(tmp_path / "cfg.yaml"), "--json", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    assert "cfg.yaml's camera.em_gain is 300 but the movie's metadata record 200 (OME-XML Detector/@AmplificationGain" in out
    assert "108 x 108 nm (OME-XML PhysicalSizeX = 0.108 µm)" in out and "cfg.yaml says 100 x 100 nm" in out
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["recorded"]["em_gain"] == {"value": 200.0, "unit": "", "source": "OME-XML Detector/@AmplificationGain"}
    assert data["camera"]["file"].endswith("cfg.yaml") and data["camera"]["check"]["frames"] == 5
    assert any("EM gain differs" in w for w in data["camera"]["warnings"])
    # the camera check saw the 14-bit clipping as fit would (a level found in the raw frames)
    assert data["camera"]["check"]["channels"][0]["level_source"] == "found"
    assert data["camera"]["check"]["channels"][0]["saturation_adu"] == 16383.0


def test_imagej_hyperstack(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, np.zeros((4, 1, 16, 16), np.uint16), imagej=True, resolution=(1 / 0.16, 1 / 0.16),
                     metadata={"unit": "micron", "finterval": 0.03, "spacing": 0.2, "axes": "TZYX"})
    info = read_movie_info(path)
    assert "imagej" in info.tiff.formats and info.n_frames == 4
    assert info.pixel_size.x_nm == pytest.approx(160.0) and "ImageJ" in info.pixel_size.source
    assert info.recorded["frame_interval_ms"].value == pytest.approx(30.0)
    assert "'finterval'" in info.recorded["frame_interval_ms"].source
    assert (info.recorded["z_spacing"].value, info.recorded["z_spacing"].unit) == (0.2, "micron")
    assert "camera" not in info.recorded and info.roi_offset is None


def test_plain_and_compressed_tiff_and_folder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    frames = rng.integers(90, 110, size=(10, 20, 30)).astype(np.uint16)
    frames[3, 5, 5] = 65535
    tifffile.imwrite(tmp_path / "plain.tif", frames, photometric="minisblack")
    info = read_movie_info(tmp_path / "plain.tif")
    assert info.recorded == {} and info.pixel_size is None and info.memory_mapped.startswith("yes")
    a = info.adu
    flat = frames.ravel()
    expect = [np.quantile(flat, q, method="inverted_cdf") for q in (0.01, 0.5, 0.999)]
    assert (a.min, a.p1, a.median, a.p99_9, a.max) == (90.0, *map(float, expect), 65535.0)
    assert (65535.0, 1, 0) in a.at_full_scale and a.clip_level is None
    assert a.frames == 10 and a.pixels == 6000
    assert 90 <= a.dim_level <= 100 and 3 < a.dim_noise < 9  # uniform 90..109: sd 5.8
    assert main(["info", str(tmp_path / "plain.tif")]) == 0
    out = capsys.readouterr().out
    assert "pixel size         not recorded" in out and "EM gain            not recorded" in out
    assert "65535 (uint16 maximum) 1 px = 0.0167 %" in out

    tifffile.imwrite(tmp_path / "z.tif", frames, photometric="minisblack", compression="zlib")
    info = read_movie_info(tmp_path / "z.tif")
    assert info.memory_mapped.startswith("no: compressed pixels (ADOBE_DEFLATE)")
    # a folder of TIFFs: every file, their bytes together
    d = tmp_path / "folder"
    d.mkdir()
    for k in range(3):
        tifffile.imwrite(d / f"img_{k}.tif", frames[3 * k:3 * k + 3], photometric="minisblack")
    info = read_movie_info(d)
    assert info.n_frames == 9 and len(info.files) == 3
    assert info.bytes_on_disk == sum((d / f"img_{k}.tif").stat().st_size for k in range(3))
    # at most max_pixels are measured (whole frames, at least two)
    assert read_movie_info(tmp_path / "plain.tif", max_pixels=1800).adu.frames == 3
    assert read_movie_info(tmp_path / "plain.tif", max_pixels=10).adu.frames == 2
    assert read_movie_info(tmp_path / "plain.tif", head_frames=1).adu.frames == 1
    assert read_movie_info(tmp_path / "plain.tif", head_frames=3).adu.frames == 3


def test_float_movie_statistics():
    x = np.linspace(0, 1, 2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    a = adu_statistics(x)
    assert a.min == 0.0 and a.max == 1.0 and a.clip_level is None
    assert all(n == 0 for _, n, _ in a.at_full_scale)  # no full scale among values up to 1


def test_simulated_movie_and_camera_check(tmp_path, capsys):
    cfg = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    cfg["frame_size"] = [32, 32]
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(tmp_path / "cfg.yaml"), "--frames", "20", "--out", str(tmp_path / "sim"),
                 "--seed", "1", "--device", "cpu"]) == 0
    movie = tmp_path / "sim" / "movie.tif"
    capsys.readouterr()
    assert main(["info", str(movie), "--config", str(tmp_path / "cfg.yaml")]) == 0
    out = capsys.readouterr().out
    assert "consistent with the camera settings" in out and "warning:" not in out
    assert "frames          20 of 32 x 32 px (rows x columns), uint16" in out
    # e_per_adu and em_gain swapped: the camera check's warning, as fit gives it
    cfg["camera"].update(e_per_adu=300.0, em_gain=45.0)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["info", str(movie), "--config", str(tmp_path / "bad.yaml")]) == 0
    out = capsys.readouterr().out
    assert "camera check (20 frames, as fit runs it): 1 warning(s), below" in out
    told = [line for line in out.splitlines() if line.startswith("warning: camera check: ")]
    assert len(told) == 1 and "pixel noise between frames is" in told[0] and "bad.yaml" in told[0]


@pytest.mark.parametrize("make, expected", [
    (lambda p: (p.write_text("not a tiff"), p)[1], r"notes\.tif: not a readable TIFF file"),
    (lambda p: (p.parent / "empty").mkdir() or p.parent / "empty", r"empty: folder holds no TIFF files"),
    (lambda p: p.parent / "missing.tif", r"missing\.tif: file or folder not found"),
])
def test_bad_input_names_the_file(tmp_path, capsys, make, expected):
    path = make(tmp_path / "notes.tif")
    with pytest.raises(InputError, match=expected):
        read_movie_info(path)
    assert main(["info", str(path), "--json", str(tmp_path / "o.json")]) == 2
    assert "plexloc info: error:" in capsys.readouterr().err and not (tmp_path / "o.json").exists()


def test_corrupt_tiff_names_the_file(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((20, 32, 32), np.uint16), photometric="minisblack")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "m.tif").read_bytes()[:3000])
    assert main(["info", str(tmp_path / "cut.tif")]) == 2
    assert "cut.tif: corrupt TIFF file" in capsys.readouterr().err


def test_frame_interval_from_the_elapsed_times(tmp_path):
    """The interval taken (the first frames' ElapsedTime-ms) comes before the interval asked for (Interval_ms)."""
    path = mm_movie(tmp_path, image={**MM_IMAGE, "ElapsedTime-ms": "000000"})
    raw = path.read_bytes()
    marker = b'"ElapsedTime-ms": "000000"'
    assert raw.count(marker) == 6
    parts = raw.split(marker)  # frame k taken at 33 k ms (the same length: the file's offsets stay)
    path.write_bytes(parts[0] + b"".join(f'"ElapsedTime-ms": "{33 * k:06d}"'.encode() + part
                                         for k, part in enumerate(parts[1:])))
    rec = read_movie_info(path).recorded["frame_interval_ms"]
    assert rec.value == pytest.approx(33.0) and "'ElapsedTime-ms' (median step of frames 0-5)" in rec.source


def test_split_view_configuration(tmp_path, capsys):
    """Each channel's box with its own camera, as fit cuts them; a split-view configuration given as --camera is
    refused (the whole frame would be checked against channel 0's camera: a false alarm of 2.3x)."""
    cfg = yaml.safe_load((EXAMPLES / "dual_color_splitview.yaml").read_text())
    cfg["frame_size"] = [32, 32]
    cfg["split_view"]["boxes"] = [[0, 0, 32, 32], [32, 0, 32, 32]]
    (tmp_path / "sv.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["simulate", str(tmp_path / "sv.yaml"), "--frames", "20", "--out", str(tmp_path / "sim"), "--seed", "1",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    movie = tmp_path / "sim" / "movie.tif"
    assert main(["info", str(movie), "--config", str(tmp_path / "sv.yaml"), "--json", str(tmp_path / "i.json")]) == 0
    check = json.loads((tmp_path / "i.json").read_text())["camera"]["check"]
    assert len(check["channels"]) == 2 and not check["warnings"]
    assert all(0.75 <= c["noise_ratio"] <= 1.35 for c in check["channels"])
    assert main(["info", str(movie), "--camera", str(tmp_path / "sv.yaml")]) == 2
    assert "sv.yaml: a split-view configuration: give it as --config" in capsys.readouterr().err


def test_full_chip_scmos_maps_are_cut_at_the_metadata_roi(tmp_path):
    """sCMOS maps of the whole chip: cut at the movie's ROI (from its Micro-Manager metadata) as the fits cut them;
    without a ROI position the check cannot run, and says why (the fits would stop there too)."""
    np.save(tmp_path / "base.npy", np.full((64, 64), 100.0))
    cam = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": "base.npy", "read_sigma": 1.5}
    (tmp_path / "scmos.yaml").write_text(yaml.safe_dump(cam))
    from plexloc.config import load_camera_configs

    cams = load_camera_configs(tmp_path / "scmos.yaml")
    with_roi = compare_camera(read_movie_info(mm_movie(tmp_path)), cams, camera_file="scmos.yaml")
    assert with_roi.check is not None and with_roi.check_error == ""
    assert with_roi.check.channels[0].pixels == 6 * 24 * 32
    tifffile.imwrite(tmp_path / "plain.tif", np.full((4, 24, 32), 120, np.uint16), photometric="minisblack")
    without = compare_camera(read_movie_info(tmp_path / "plain.tif"), cams, camera_file="scmos.yaml")
    assert without.check is None and "do not record the camera ROI's position" in without.check_error


def test_what_opening_the_movie_warns_about_is_shown(tmp_path, capsys):
    """An OME-TIFF of two images: the fits read the first, with a warning; info shows it (and raises nothing)."""
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(np.zeros((3, 8, 8), np.uint16), metadata={"axes": "TYX"})
        tw.write(np.zeros((2, 8, 8), np.uint16), metadata={"axes": "TYX"})
    info = read_movie_info(path)
    assert info.n_frames == 3 and len(info.notes) == 1 and "holds 2 images" in info.notes[0]
    assert main(["info", str(path)]) == 0
    assert "warning: " + info.notes[0] in capsys.readouterr().out


def test_a_saturation_adu_below_the_movies_own_pixels_is_warned(tmp_path):
    """A camera YAML's saturation_adu of 4095 on a movie whose pixels reach above it: no camera clipping there writes
    such values, and the fits would flag every spot above it as saturated; info compared it only with a recorded bit
    depth (a README walk, session 45)."""
    movie = mm_movie(tmp_path)
    info = read_movie_info(movie)
    assert info.adu.max > 200.0
    low = info.adu.max * 0.5
    cmp = compare_camera(info, [_camera(baseline=100.0, saturation_adu=low)], camera_file="camera.yaml")
    text = " ".join(cmp.warnings)
    assert f"saturation_adu is {low:g} ADU, but pixels of the movie's first" in text and f"{info.adu.max:g}" in text
    ok = compare_camera(info, [_camera(baseline=100.0, saturation_adu=info.adu.max)], camera_file="camera.yaml")
    assert not any("saturation_adu is" in w for w in ok.warnings), ok.warnings
