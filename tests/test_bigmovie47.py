"""Large and awkward movies on their way to a fit (session 47's walk): memory that stays flat while a memory-mapped
movie is read, compressed pixels that need a package that is not there, a multi-file OME-TIFF data set missing a
file or opened through a later file, pages of another size, a hyperstack of frames and slices, a damaged file's
count, and OME's PhysicalSizeZ as a bead stack's z step."""

from __future__ import annotations

import argparse
import struct
import sys
import uuid

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.tiff import open_movie, write_movie


def _rss_file_kb() -> int | None:
    """This process's resident file-backed memory (kB), Linux only."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssFile:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux") or _rss_file_kb() is None, reason="needs /proc's RssFile")
def test_reading_a_memory_mapped_movie_keeps_its_pages_out_of_resident_memory(tmp_path):
    # 1,000 frames of 128 x 128 uint16: 32 MiB; every page of the map that was read stayed resident until the movie
    # was closed (a 659 MB movie of 20,000 frames: 711 MB peak RSS, the fit's peak grew by the movie's size)
    frames = np.random.default_rng(0).integers(0, 60000, size=(1000, 128, 128), dtype=np.uint16)
    write_movie(tmp_path / "long.tif", frames)
    del frames
    with open_movie(tmp_path / "long.tif") as movie:
        assert movie.memory_mapped == [True]
        first = movie[0:8]  # the code paths warmed up
        before = _rss_file_kb()
        total = 0
        for start, chunk in movie.iter_chunks(64):
            total += int(chunk[:, 5, 7].astype(np.int64).sum())
        grown_kb = _rss_file_kb() - before
        again = movie[0:8]  # pages dropped from the process are read again from the page cache, the same
    assert np.array_equal(first, again)
    assert total > 0
    assert grown_kb < 4 * 1024, f"resident file memory grew by {grown_kb} kB reading a 32 MiB movie"


def _write_lzw_tagged(path, frames):
    """A TIFF whose Compression tag says LZW (5): the tag of an uncompressed file patched (what a package that
    cannot decode LZW sees of an ImageJ/MATLAB/Pillow LZW file: the tag)."""
    tifffile.imwrite(path, frames, photometric="minisblack")
    with tifffile.TiffFile(path) as tf:
        offsets = [page.tags["Compression"].valueoffset for page in tf.pages]
    with open(path, "r+b") as f:
        for off in offsets:
            f.seek(off)
            f.write(struct.pack("<H", 5))


def test_lzw_movie_without_imagecodecs_is_refused_when_opened_with_the_fix(tmp_path):
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("imagecodecs is installed: LZW is read")
    path = tmp_path / "lzw.tif"
    _write_lzw_tagged(path, np.zeros((3, 8, 8), np.uint16))
    with pytest.raises(InputError) as err:  # at opening, not at the fit's first read
        open_movie(path).close()
    text = str(err.value)
    assert str(path) in text and "LZW" in text and "pip install imagecodecs" in text


def _ome_data_set(folder, n_files=3, per_file=4, shape=(16, 16)):
    """A multi-file OME-TIFF data set as Micro-Manager names it: the first file holds the OME-XML of all frames, the
    others a BinaryOnly element pointing to it. Returns (paths, frames)."""
    names = ["run_MMStack_Pos0.ome.tif"] + [f"run_MMStack_Pos0_{k}.ome.tif" for k in range(1, n_files)]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    n = n_files * per_file
    frames = (np.arange(n, dtype=np.uint16)[:, None, None] * 10 + 100 + np.zeros(shape, np.uint16)).astype(np.uint16)
    tiffdata = "".join(f'<TiffData FirstT="{k * per_file}" IFD="0" PlaneCount="{per_file}"><UUID FileName="{names[k]}">'
                       f"{uuids[k]}</UUID></TiffData>" for k in range(n_files))
    ns = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
    for k, name in enumerate(names):
        if k == 0:
            desc = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{ns}" UUID="{uuids[0]}"><Image ID="Image:0">'
                    f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="{shape[1]}" SizeY="{shape[0]}" '
                    f'SizeZ="1" SizeC="1" SizeT="{n}"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiffdata}'
                    "</Pixels></Image></OME>")
        else:
            desc = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{ns}" UUID="{uuids[k]}"><BinaryOnly '
                    f'MetadataFile="{names[0]}" UUID="{uuids[0]}"/></OME>')
        with tifffile.TiffWriter(folder / name) as tw:
            tw.write(frames[k * per_file:(k + 1) * per_file], description=desc, photometric="minisblack",
                     metadata=None, contiguous=True)
    return [folder / name for name in names], frames


def test_ome_data_set_reads_whole_through_its_first_file(tmp_path):
    paths, frames = _ome_data_set(tmp_path)
    with open_movie(paths[0]) as movie:
        assert len(movie) == 12 and np.array_equal(movie[:], frames)


def test_ome_data_set_missing_a_file_is_refused_naming_it_and_its_frames(tmp_path):
    paths, _ = _ome_data_set(tmp_path)
    paths[2].unlink()  # moved, deleted, not yet copied: tifffile gave its 4 frames as zeros, fitted without a word
    with pytest.raises(InputError) as err:
        open_movie(paths[0]).close()
    text = str(err.value)
    assert str(paths[0]) in text and "frames 8-11" in text and "run_MMStack_Pos0_2.ome.tif" in text


def test_a_later_file_of_an_ome_data_set_opened_alone_says_where_the_data_set_begins(tmp_path):
    from plexloc.io import tiff

    paths, frames = _ome_data_set(tmp_path)
    # plexloc's own category: the commands show it as one line, not as Python's warning with tiff.py's file and line
    category = getattr(tiff, "MovieWarning", UserWarning)
    assert category.__module__.startswith("plexloc.")
    with pytest.warns(category, match=r"metadata are in run_MMStack_Pos0\.ome\.tif; only its own 4 frames"):
        movie = open_movie(paths[1])
    with movie:
        assert np.array_equal(movie[:], frames[4:8])


def test_a_page_of_another_size_is_named_with_its_size_and_the_others(tmp_path):
    path = tmp_path / "ragged.tif"
    with tifffile.TiffWriter(path) as tw:  # pages written one by one, as an acquisition program does
        for k in range(12):
            tw.write(np.zeros((16, 16) if k != 7 else (12, 16), np.uint16), photometric="minisblack")
    with pytest.raises(InputError) as err:
        open_movie(path).close()
    text = str(err.value)
    assert "page 7 (frame 7) is 12x16 uint16" in text and "11 of the file's 12 pages are 16x16 uint16" in text


def test_a_hyperstack_of_frames_and_slices_is_refused_naming_its_axes_and_the_fix(tmp_path):
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.zeros((3, 5, 8, 8), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(InputError) as err:
        open_movie(path).close()
    text = str(err.value)
    assert "axes 'TZYX'" in text and "3 time points (T) x 5 z slices (Z)" in text and "Hyperstack to Stack" in text


def test_a_truncated_file_of_pages_written_one_by_one_does_not_claim_one_declared_frame(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:  # each page's description declares its own one frame
        for _ in range(20):
            tw.write(np.ones((16, 16), np.uint16), photometric="minisblack")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * 0.6))
    with pytest.raises(InputError) as err:
        open_movie(path).close()
    text = str(err.value)
    assert "pages can be reached" in text and "of the 1 frames" not in text


def test_ome_physical_size_z_is_a_bead_stacks_recorded_z_step(tmp_path):
    from plexloc.cli.calibrate import _metadata_scales
    from plexloc.io.pixel_size import read_z_step

    path = tmp_path / "beads.ome.tif"
    tifffile.imwrite(path, np.zeros((21, 16, 16), np.uint16), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 50,
                               "PhysicalSizeZUnit": "nm"})
    with tifffile.TiffFile(path) as tf:
        assert read_z_step(tf, 21) == (50.0, "OME-XML PhysicalSizeZ = 50 nm")
        assert read_z_step(tf, 20) is None  # not this stack's slices
    args = argparse.Namespace(stacks=[path], pixel_size=100.0, z_step=100.0)
    texts = _metadata_scales(args, n_slices=21)
    assert len(texts) == 1 and "z step of 50 nm (OME-XML PhysicalSizeZ = 50 nm)" in texts[0]
    args.z_step = 50.0
    assert _metadata_scales(args, n_slices=21) == []


def test_a_truncated_file_in_a_folder_is_refused_when_the_folder_is_opened(tmp_path):
    for k in range(4):  # single-frame files, their page headers before the pixels
        tifffile.imwrite(tmp_path / f"img_{k}.tif", np.full((32, 32), k, np.uint16), photometric="minisblack")
    bad = tmp_path / "img_2.tif"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])  # a copy cut short: the fit read 2 files' frames, then stopped
    with pytest.raises(InputError) as err:
        open_movie(tmp_path).close()
    text = str(err.value)
    assert str(bad) in text and "is truncated" in text and f"the file has {len(raw) // 2} bytes" in text


def test_a_fit_reads_large_frames_in_chunks_of_a_bounded_number_of_pixels(monkeypatch):
    # 256 frames per chunk whatever their size: 4 GiB of float32 photons a chunk of 2048 x 2048 frames, three chunks
    # in flight (the data path alone peaked at 3.0 GB of RSS for 1000 x 1000 frames). Here the budget is scaled down
    # to 4 frames of 32 x 32 pixels
    from plexloc.config.models import IdealCameraConfig
    from plexloc.infer import fit as infer_fit
    from plexloc.io.tiff import ArrayMovie
    from plexloc.nets.localizer import Localizer, LocalizerSpec

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0],
                                  input_scale=[20.0])).eval()
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    reads: list[tuple[int, int]] = []

    class CountedReads(ArrayMovie):
        def _read(self, start, stop):
            reads.append((start, stop))
            return super()._read(start, stop)

    frames = np.random.default_rng(0).poisson(40.0, size=(20, 32, 32)).astype(np.uint16)
    monkeypatch.setattr(infer_fit, "CHUNK_PIXELS", 4 * 32 * 32, raising=False)
    table = infer_fit.fit_movie([CountedReads(frames)], net, camera=IdealCameraConfig())
    chunked = [(a, b) for a, b in reads if a > 0]  # the fit's chunks after the first (the checks read frames 0..)
    assert chunked and max(b - a for a, b in chunked) <= 4
    monkeypatch.setattr(infer_fit, "CHUNK_PIXELS", 2**24, raising=False)
    whole = infer_fit.fit_movie(frames, net, camera=IdealCameraConfig())
    assert len(table) == len(whole) > 0
    np.testing.assert_allclose(table["x_nm"], whole["x_nm"], rtol=1e-5, atol=1e-3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_a_folder_of_many_files_holds_few_open_while_read_in_order(tmp_path):
    # every file of a folder held a handle and a memory map (two descriptors) from opening to closing: a folder of
    # 2,000 single-frame files failed at its 510th on 'Too many open files' under the usual limit of 1,024
    import os

    from plexloc.io import tiff

    max_open = getattr(tiff, "MAX_OPEN_FILES", 8)
    frames = np.arange(80 * 8 * 8, dtype=np.uint16).reshape(80, 8, 8)
    for k, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"img_{k}.tif", frame, photometric="minisblack")
    before = len(os.listdir("/proc/self/fd"))
    with open_movie(tmp_path) as movie:
        opened = len(os.listdir("/proc/self/fd")) - before
        assert movie.memory_mapped == [True] * 80
        read = np.concatenate([chunk for _, chunk in movie.iter_chunks(7)])
        after_reading = len(os.listdir("/proc/self/fd")) - before
        assert np.array_equal(movie[3:5], frames[3:5]) and np.array_equal(movie[77], frames[77])
    assert np.array_equal(read, frames)
    assert opened <= 4 and after_reading <= 2 * max_open + 4, (opened, after_reading)
    assert len(os.listdir("/proc/self/fd")) == before
