"""Review of session 49's movie input (helper "io"): the pile-up clipping level of the network fit, and the
truncated-file check when a TIFF is opened."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.tiff import open_movie
from test_io49 import run_and_raw  # noqa: F401 - the fixture (a random-weight run and a simulated raw movie)


def test_a_dim_uint16_movie_under_16_adu_has_no_pile_up_level():
    """A 16-bit movie whose values stay under 16 (photon counts, Poisson mean 2): ``top - 16`` of its uint16 maximum
    wrapped round (a RuntimeWarning), no value counted below it, and its largest value (10, at 7 pixels) was called a
    clipping level: its rows would be flagged as clipped. The same frames as int32 had none."""
    from plexloc.infer.fit import piled_up_level

    x = np.random.default_rng(2).poisson(2.0, size=(64, 32, 32)).astype(np.uint16)
    assert x.max() == 10 and int((x == 10).sum()) == 7
    assert piled_up_level(x) is None
    assert piled_up_level(x.astype(np.int32)) is None
    clipped = np.minimum(np.random.default_rng(1).poisson(300.0, size=(20, 32, 32)), 320).astype(np.uint16)
    assert piled_up_level(clipped) == 320.0  # a clipped tail is still found


def test_blank_first_frames_are_no_clipping_level():
    """First frames all at one value (zeros: frames dropped and filled in; a closed shutter written as a constant):
    every pixel 'piled up' on it, and the level (0 ADU) made every pixel of the movie clipped."""
    from plexloc.infer.fit import piled_up_level

    assert piled_up_level(np.zeros((2, 64, 64), np.uint16)) is None
    assert piled_up_level(np.full((2, 64, 64), 100, np.uint16)) is None


@pytest.mark.filterwarnings("ignore::plexloc.camera.frames.FrameOutlierWarning")  # the real frames, said
def test_a_fit_of_a_movie_with_blank_first_frames_flags_no_row_as_clipped(tmp_path, run_and_raw, capsys):  # noqa: F811
    """64 blank frames (zeros: as many as the clipping check reads of 32 x 32 frames), then the simulated movie: its
    rows were all flagged (saturated_px > 0) and the summary said they touch pixels clipped at 0 ADU."""
    import pandas as pd

    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    run, raw = run_and_raw
    movie = np.concatenate([np.zeros((64, *raw.shape[1:]), raw.dtype), raw])
    write_movie(tmp_path / "blank.tif", movie)
    assert main(["fit", str(tmp_path / "blank.tif"), "--model", str(run), "--out", str(tmp_path / "b.csv"),
                 "--device", "cpu", "--precision", "float32"]) == 0
    err = capsys.readouterr().err
    table = pd.read_csv(tmp_path / "b.csv")
    assert len(table) > 10 and int((table["saturated_px"] > 0).sum()) == 0
    assert "clipped at 0 ADU" not in err and "pile up" not in err


def _strips_file(path, frames, rows_per_strip: int) -> None:
    with tifffile.TiffWriter(path) as tw:  # page by page: a series per page (the last page is checked)
        for f in frames:
            tw.write(f, rowsperstrip=rows_per_strip, photometric="minisblack", metadata=None)


def test_an_uncompressed_file_whose_last_strip_is_stated_a_whole_strip_is_read(tmp_path):
    """Some writers state the last strip's byte count as a whole strip's rows (5 rows of a 32-row frame in strips of 5:
    its last strip holds 2). tifffile reads such a file whole, and the check of the last page's pixels refused it
    as truncated ('the pixels of its last frame (3) end at byte 9344, but the file has 9152 bytes'). A file cut in
    its last strip is still refused."""
    frames = np.random.default_rng(0).integers(100, 4000, size=(4, 32, 32)).astype(np.uint16)
    path = tmp_path / "padded.tif"
    _strips_file(path, frames, 5)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[-1]
        tag = page.tags["StripByteCounts"]
        assert page.databytecounts[-1] == 2 * 32 * 2 and page.dataoffsets[-1] + 128 == tf.filehandle.size
        fmt = {3: "<H", 4: "<I", 16: "<Q"}[int(tag.dtype)]
        where = tag.valueoffset + struct.calcsize(fmt) * (tag.count - 1)
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, where, 5 * 32 * 2)  # the last strip's count: a whole strip
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(tifffile.imread(path), frames)  # tifffile reads it whole
    with open_movie(path) as movie:
        np.testing.assert_array_equal(movie[:], frames)
    cut = tmp_path / "cut.tif"
    _strips_file(cut, frames, 5)
    cut.write_bytes(cut.read_bytes()[:-1])
    with pytest.raises(InputError, match=r"cut\.tif: is truncated: the pixels of its last frame \(3\) end at byte "
                                         r"9152, but the file has 9151 bytes"):
        open_movie(cut)


def _jpeg_tiff(path, sof: int) -> None:
    """A 16-bit TIFF of compression 7 (JPEG) whose one strip is a JPEG stream's head with the frame header ``sof``
    (0xC3: lossless; 0xC0, 0xC1: baseline and extended, lossy), written without a JPEG encoder."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = bytes([0xFF, sof]) + struct.pack(">HBHHB", 11, 16, 32, 32, 1) + b"\x01\x11\x00"
    stream = b"\xff\xd8" + app0 + frame + b"\xff\xda" + bytes(40) + b"\xff\xd9"
    with tifffile.TiffWriter(path) as tw:
        tw.write(iter([stream]), shape=(32, 32), dtype=np.uint16, compression="zlib", photometric="minisblack",
                 rowsperstrip=32)
    with tifffile.TiffFile(path) as tf:
        where = tf.pages[0].tags["Compression"].offset + 8
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, where, 7)
    path.write_bytes(bytes(data))


def test_a_lossless_jpeg_strip_is_told_from_a_lossy_one(tmp_path):
    """A TIFF of compression 7 holds lossless JPEG (ITU T.81 process 14, frame header SOF3: 16-bit JPEG TIFFs are)
    or lossy JPEG; it was warned of as lossy whichever it was."""
    from plexloc.io.tiff import _jpeg_is_lossless

    for sof, lossless in ((0xC3, True), (0xC0, False), (0xC1, False)):
        path = tmp_path / f"j{sof:x}.tif"
        _jpeg_tiff(path, sof)
        with tifffile.TiffFile(path) as tf:
            assert int(tf.pages[0].compression) == 7
            assert _jpeg_is_lossless(tf.pages[0]) is lossless


def test_a_lossless_jpeg_movie_read_with_imagecodecs_is_not_warned_lossy(tmp_path):
    """With imagecodecs, a 16-bit lossless JPEG movie (values read back equal) was warned 'lossy: they are not the
    camera's counts'; a lossy 8-bit one still is."""
    pytest.importorskip("imagecodecs")
    import warnings

    from plexloc.io.tiff import MovieWarning

    frames = np.random.default_rng(0).integers(100, 4000, size=(4, 32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ll.tif", frames, compression="jpeg", compressionargs={"lossless": True},
                     photometric="minisblack")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MovieWarning)
        with open_movie(tmp_path / "ll.tif") as movie:
            np.testing.assert_array_equal(movie[:], frames)
    tifffile.imwrite(tmp_path / "lossy.tif", (frames % 256).astype(np.uint8), compression="jpeg",
                     photometric="minisblack")
    with pytest.warns(MovieWarning, match=r"lossy\.tif: its pixels are compressed JPEG \(7\), which is lossy"):
        open_movie(tmp_path / "lossy.tif").close()
