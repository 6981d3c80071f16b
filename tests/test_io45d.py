"""Opening a TIFF movie parses its image series once, and ``plexloc info --camera`` opens the movie once.

A 30,000-page OME-TIFF took 0.84 s to open because the memory map (``tifffile.memmap(path)``) opened the file again and
built its OME series a second time, and ``plexloc info --camera`` opened the movie a second time for the camera check
(four OME series built in all). The tests count the calls of tifffile's series builders (``TiffFile._series_ome``,
``_series_shaped``, ``_series_imagej``), not wall time. Also: the Micro-Manager and OME-XML metadata are read by one
helper (:mod:`plexloc.io._metadata`) for the pixel size, the ROI and ``plexloc info``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml
from test_io_roi import write_mm_stack

from plexloc.cli.main import main
from plexloc.io.movie_info import compare_camera, read_movie_info
from plexloc.io.tiff import open_movie

GREY = {"photometric": "minisblack"}


def _frames(n=40, shape=(12, 10)):
    return (np.arange(n * shape[0] * shape[1]) % 997 + 100).astype(np.uint16).reshape(n, *shape)


def _count(monkeypatch, name: str) -> list[int]:
    """Count the calls of ``tifffile.TiffFile.<name>`` (a series builder) from now on."""
    calls = [0]
    real = getattr(tifffile.TiffFile, name)

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, name, counted)
    return calls


@pytest.mark.parametrize("kind, builder", [("ome", "_series_ome"), ("shaped", "_series_shaped"),
                                           ("imagej", "_series_imagej")])
def test_opening_a_movie_builds_its_series_once_and_still_maps_it(tmp_path, monkeypatch, kind, builder):
    data = _frames()
    path = tmp_path / ("m.ome.tif" if kind == "ome" else "m.tif")
    if kind == "ome":
        tifffile.imwrite(path, data, ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1},
                         **GREY)
    elif kind == "imagej":
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX", "unit": "um"}, resolution=(10, 10))
    else:
        tifffile.imwrite(path, data, metadata={"axes": "TYX"}, **GREY)
    calls = _count(monkeypatch, builder)
    with open_movie(path) as movie:
        assert calls[0] == 1  # was 2: tifffile.memmap(path) opened the file again and built the series again
        assert movie.memory_mapped == [True]
        np.testing.assert_array_equal(movie[:], data)
        np.testing.assert_array_equal(movie[7:9], data[7:9])
        if kind != "shaped":  # (a plain tifffile stack records no pixel size)
            assert round(movie.pixel_size.x_nm, 6) == 100.0
    assert calls[0] == 1


def test_a_compressed_or_byteswapped_file_maps_only_where_tifffile_would(tmp_path):
    """The map is made from the parsed series as tifffile.memmap made it: compressed pixels are read page by page, a
    big-endian file is mapped with its byte order (and read in native order)."""
    data = _frames(5)
    tifffile.imwrite(tmp_path / "z.tif", data, compression="zlib", **GREY)
    with open_movie(tmp_path / "z.tif") as movie:
        assert movie.memory_mapped == [False]
        np.testing.assert_array_equal(movie[:], data)
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">", **GREY)
    with open_movie(tmp_path / "be.tif") as movie:
        assert movie.memory_mapped == [True]
        out = movie[1:4]
        assert out.dtype == np.dtype("=u2")
        np.testing.assert_array_equal(out, data[1:4])


def _camera_yaml(tmp_path):
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump({"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0,
                                    "e_per_adu": 45.0, "baseline": 100.0, "read_sigma": 74.4}))
    return path


def test_info_with_a_camera_opens_the_movie_once(tmp_path, monkeypatch, capsys):
    """`plexloc info --camera` built the OME series four times (opened twice, each with the map's second parse)."""
    path = tmp_path / "m.ome.tif"
    rng = np.random.default_rng(1)
    tifffile.imwrite(path, rng.poisson(50, size=(70, 16, 16)).astype(np.uint16) + 100, ome=True,
                     metadata={"axes": "TYX"}, **GREY)
    calls = _count(monkeypatch, "_series_ome")
    assert main(["info", str(path), "--camera", str(_camera_yaml(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "camera check (64 frames, as fit runs it)" in out
    assert calls[0] == 1


def test_the_camera_check_on_the_kept_frames_is_the_check_on_the_reopened_movie(tmp_path):
    """compare_camera checks the frames read_movie_info kept; a MovieInfo without them (or a check that needs more
    frames than were read) opens the movie as before, with the same result."""
    from test_info45 import _camera

    path = tmp_path / "m.tif"
    rng = np.random.default_rng(2)
    tifffile.imwrite(path, (100 + rng.poisson(30, size=(80, 20, 24)) * 3).astype(np.uint16), **GREY)
    cams = [_camera(em_gain=1.0, e_per_adu=3.0, baseline=100.0, read_sigma=1.0, qe=1.0, spurious_charge=0.0)]
    for frames in (64, 1):  # --frames 1: the ADU statistics of one frame, the camera check's 64 frames still read
        info = read_movie_info(path, head_frames=frames)
        assert info.adu.frames == frames
        kept = compare_camera(info, cams, camera_file="camera.yaml")
        del info._head
        reopened = compare_camera(info, cams, camera_file="camera.yaml")
        assert kept.check is not None and kept.check.frames == 64
        assert kept.to_dict() == reopened.to_dict()
    assert "_head" not in read_movie_info(path).to_dict()  # kept, not shown or written


def test_info_bad_roi_metadata_stop_the_camera_check_as_before(tmp_path):
    """Full-chip sCMOS maps need the ROI: the metadata's error (kept by read_movie_info) is the check's error."""
    from test_info45 import MM_IMAGE

    path = write_mm_stack(tmp_path / "m_MMStack_Pos0.ome.tif", _frames(6, (24, 32)), summary={},
                          image_meta={**MM_IMAGE, "ROI": "0-0-64-64"})
    info = read_movie_info(path)
    assert "the ROI is 64x64" in info.roi_offset_error
    from plexloc.config import load_camera_configs

    np.save(tmp_path / "base.npy", np.full((64, 64), 100.0))
    cam_yaml = tmp_path / "scmos.yaml"
    cam_yaml.write_text(yaml.safe_dump({"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5,
                                        "baseline": "base.npy", "read_sigma": 1.5}))
    cams = load_camera_configs(cam_yaml)
    out = compare_camera(info, cams, camera_file=cam_yaml)
    assert out.check is None and out.check_error == info.roi_offset_error


def test_a_multi_file_micro_manager_stack_lists_its_files_once(tmp_path):
    """MovieReader.data_files (was movie_info._data_files, a second walk of the series' pages)."""
    data = _frames(6, (4, 5))
    first = write_mm_stack(tmp_path / "movie_MMStack_Pos0.ome.tif", data[:3], summary={"Frames": 6}, image_meta={})
    second = write_mm_stack(tmp_path / "movie_MMStack_Pos0_1.ome.tif", data[3:], summary={"Frames": 6}, image_meta={},
                            first=3)
    with open_movie(first) as movie:
        assert [p.name for p in movie.data_files] == [first.name, second.name]
    info = read_movie_info(first)
    assert [p.rsplit("/", 1)[-1] for p in info.files] == [first.name, second.name]
    assert info.bytes_on_disk == first.stat().st_size + second.stat().st_size
    with open_movie(first) as movie:
        pass
    with pytest.raises(ValueError, match="movie is closed"):
        movie.data_files


def test_metadata_helpers_read_once_for_every_caller(tmp_path):
    """The Micro-Manager and OME-XML metadata come from one helper each; the OME-XML is parsed once per open file."""
    from plexloc.io._metadata import micro_manager_metadata, ome_root
    from test_info45 import MM_IMAGE

    path = write_mm_stack(tmp_path / "m_MMStack_Pos0.ome.tif", _frames(3, (24, 32)), summary={"PixelSize_um": 0.2},
                          image_meta=MM_IMAGE)
    with open_movie(path) as movie:
        image, summary = micro_manager_metadata(movie.tiff_file)
        assert image["ROI"] == "16-8-32-24" and summary["PixelSize_um"] == 0.2
        assert movie.roi_offset.px == (16, 8) and movie.pixel_size.x_nm == pytest.approx(160.0)
    ome = tmp_path / "o.ome.tif"
    tifffile.imwrite(ome, _frames(3), ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.13}, **GREY)
    with open_movie(ome) as movie:
        tf = movie.tiff_file
        assert micro_manager_metadata(tf) == ({}, {})
        root = ome_root(tf)
        assert root is not None and ome_root(tf) is root  # parsed once
        assert movie.pixel_size.x_nm == pytest.approx(130.0)
    with tifffile.TiffFile(path) as tf:  # not OME-XML, whatever its name
        assert ome_root(tf) is None
