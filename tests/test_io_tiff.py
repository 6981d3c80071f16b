"""TIFF movies: reading (whole and streamed), folders, and atomic writers."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io import tiff as tiffmod
from plexloc.io.tiff import MovieReader, MovieWriter, open_movie, read_movie, write_movie

GREY = {"photometric": "minisblack"}


def _movie(seed: int = 0, shape: tuple[int, int, int] = (7, 5, 6), dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, size=shape).astype(dtype)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- read_movie -----------------------------------------------------------------------------------


def test_read_rank2_gives_one_frame(tmp_path):
    img = _movie(1)[0]
    tifffile.imwrite(tmp_path / "one.tif", img, **GREY)
    out = read_movie(tmp_path / "one.tif")
    assert out.shape == (1, 5, 6)
    np.testing.assert_array_equal(out[0], img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_rank3_all_allowed_dtypes(tmp_path, dtype):
    data = _movie(2, dtype=dtype)
    tifffile.imwrite(tmp_path / "m.tif", data, **GREY)
    out = read_movie(tmp_path / "m.tif")
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, np.bool_])
def test_read_refuses_other_dtypes(tmp_path, dtype):
    data = (_movie(3) % 2).astype(dtype)
    tifffile.imwrite(tmp_path / "bad.tif", data, **GREY)
    with pytest.raises(InputError, match=r"bad\.tif: pixel type .* not supported; allowed"):
        read_movie(tmp_path / "bad.tif")


def test_read_refuses_rank4_naming_shape(tmp_path):
    tifffile.imwrite(tmp_path / "tz.tif", np.zeros((2, 3, 4, 5), np.uint16), **GREY)
    with pytest.raises(InputError, match=r"tz\.tif: image has shape \(2, 3, 4, 5\)"):
        read_movie(tmp_path / "tz.tif")


def test_read_squeezes_singleton_axes(tmp_path):
    data = _movie(4)
    tifffile.imwrite(tmp_path / "t1.tif", data[:, None], **GREY)  # (T, 1, H, W)
    np.testing.assert_array_equal(read_movie(tmp_path / "t1.tif"), data)


def test_read_refuses_rgb(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 5, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match=r"rgb\.tif: .*RGB"):
        read_movie(tmp_path / "rgb.tif")


def test_read_missing_not_tiff_and_corrupt(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tif: file or folder not found"):
        read_movie(tmp_path / "nope.tif")
    (tmp_path / "text.tif").write_text("hello, I am not a TIFF\n")
    with pytest.raises(InputError, match=r"text\.tif: not a readable TIFF file"):
        read_movie(tmp_path / "text.tif")
    tifffile.imwrite(tmp_path / "full.tif", _movie(5), **GREY)
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[:100])  # header survives, IFD and data do not
    with pytest.raises(InputError, match=r"cut\.tif"):
        read_movie(tmp_path / "cut.tif")


def test_a_damaged_page_list_is_refused_not_cut_short(tmp_path):
    """A damaged IFD part-way through: tifffile logs it and offers the pages before it (here one frame of 40);
    the reader refuses the file, naming it, instead of fitting a fraction of the movie without a word."""
    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, _movie(0, shape=(40, 16, 16)), compression="zlib", **GREY)
    with tifffile.TiffFile(path) as tf:
        ifd = tf.pages[30].offset
    raw = bytearray(path.read_bytes())
    raw[ifd : ifd + 2] = (60000).to_bytes(2, "little")  # an impossible number of tags
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"damaged\.tif: corrupt TIFF file: .*30 pages can be reached of the 40 frames"):
        open_movie(path)


def test_the_damage_check_ignores_logging_settings_and_metadata_complaints(tmp_path):
    """A silenced tifffile logger does not switch the damaged-page check off (and its settings come back); a file
    whose shape metadata tifffile calls 'invalid ... or corrupted' but whose pages read whole is not refused."""
    import logging

    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, _movie(0, shape=(40, 16, 16)), compression="zlib", **GREY)
    with tifffile.TiffFile(path) as tf:
        ifd = tf.pages[30].offset
    raw = bytearray(path.read_bytes())
    raw[ifd : ifd + 2] = (60000).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    log = logging.getLogger("tifffile")
    old = (log.disabled, log.level)
    try:
        log.disabled, log.level = True, logging.CRITICAL
        with pytest.raises(InputError, match="corrupt TIFF file"):
            open_movie(path)
        assert (log.disabled, log.level) == (True, logging.CRITICAL)
    finally:
        log.disabled, log.level = old
    mixed = tmp_path / "mixed.tif"
    a = _movie(1, shape=(8, 16, 16))
    tifffile.imwrite(mixed, a[:5], **GREY)
    tifffile.imwrite(mixed, a[5:6], append=True, metadata=None, **GREY)
    tifffile.imwrite(mixed, a[6:], append=True, **GREY)
    with open_movie(mixed) as movie:
        np.testing.assert_array_equal(movie[:], a)


def test_fewer_frames_than_declared_are_read_with_a_warning(tmp_path):
    """An ImageJ file whose metadata promises more frames than it holds (an acquisition stopped early): the frames
    that are there are read, and the warning names the file and both counts."""
    path = tmp_path / "stopped.tif"
    tifffile.imwrite(path, _movie(0, shape=(10, 16, 16)), imagej=True, metadata={"axes": "TYX"})
    raw = path.read_bytes()
    assert raw.count(b"images=10") == 1
    path.write_bytes(raw.replace(b"images=10", b"images=99"))
    with pytest.warns(UserWarning, match=r"stopped\.tif: the file's metadata declares 99 frames but 10 can be read"):
        movie = open_movie(path)
    with movie:
        assert len(movie) == 10 and movie[:].shape == (10, 16, 16)


# --- open_movie: one file, every storage layout ---------------------------------------------------

LAYOUTS = {
    "plain": lambda p, a: tifffile.imwrite(p, a, **GREY),
    "zlib": lambda p, a: tifffile.imwrite(p, a, compression="zlib", **GREY),
    "bigtiff": lambda p, a: tifffile.imwrite(p, a, bigtiff=True, **GREY),
    "ome": lambda p, a: tifffile.imwrite(p, a, ome=True, **GREY),
    "imagej": lambda p, a: tifffile.imwrite(p, a, imagej=True),
    "bigendian": lambda p, a: tifffile.imwrite(p, a, byteorder=">", **GREY),
    "generic_pages": lambda p, a: [tifffile.imwrite(p, f, append=True, metadata=None, **GREY) for f in a],
    "series_per_page": lambda p, a: [tifffile.imwrite(p, f, append=True, **GREY) for f in a],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("memmap", [True, False])
def test_open_movie_layouts(tmp_path, layout, memmap):
    data = _movie(6)
    path = tmp_path / ("m.ome.tif" if layout == "ome" else "m.tif")
    LAYOUTS[layout](path, data)
    with MovieReader(path, memmap=memmap) as movie:
        assert (len(movie), movie.n_frames, movie.frame_shape) == (7, 7, (5, 6))
        assert movie.dtype == np.dtype(np.uint16) and movie.dtype.isnative
        np.testing.assert_array_equal(movie[:], data)
        np.testing.assert_array_equal(movie[2:5], data[2:5])
        np.testing.assert_array_equal(movie[-1], data[-1])
        out = movie[3]
    assert out.shape == (5, 6) and out.dtype.isnative
    np.testing.assert_array_equal(out, data[3])  # still valid after close


def test_contiguous_file_is_memory_mapped_and_compressed_is_not(tmp_path):
    data = _movie(7)
    tifffile.imwrite(tmp_path / "c.tif", data, **GREY)
    tifffile.imwrite(tmp_path / "z.tif", data, compression="zlib", **GREY)
    with open_movie(tmp_path / "c.tif") as c, open_movie(tmp_path / "z.tif") as z:
        assert c._sources[0]._mm is not None
        assert z._sources[0]._mm is None and z._sources[0]._pagewise


def test_indexing_rules(tmp_path):
    data = _movie(8)
    write_movie(tmp_path / "m.tif", data)
    with open_movie(tmp_path / "m.tif") as movie:
        assert movie[5:2].shape == (0, 5, 6)
        assert movie[-3:].shape == (3, 5, 6)
        with pytest.raises(IndexError):
            movie[7]
        with pytest.raises(InputError, match="step 1"):
            movie[::2]
        with pytest.raises(TypeError):
            movie["a"]
    with pytest.raises(ValueError, match="closed"):
        movie[0]


def test_iter_chunks_covers_movie_in_order(tmp_path):
    data = _movie(9, shape=(11, 4, 3))
    write_movie(tmp_path / "m.tif", data)
    with open_movie(tmp_path / "m.tif") as movie:
        chunks = list(movie.iter_chunks(4))
        with pytest.raises(InputError, match="chunk_frames"):
            next(movie.iter_chunks(0))
    assert [s for s, _ in chunks] == [0, 4, 8]
    assert [c.shape[0] for _, c in chunks] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), data)


# --- folders ----------------------------------------------------------------------------------------


def test_folder_natural_order_and_boundaries(tmp_path):
    data = _movie(10, shape=(9, 4, 5))
    # frames 0-1 in file2, 2-4 in file10, 5-8 in file100; file1 holds none: file1 < file2 < file10 < file100
    tifffile.imwrite(tmp_path / "file10.ome.tif", data[2:5], ome=True, **GREY)
    tifffile.imwrite(tmp_path / "file2.tif", data[0:2], compression="zlib", **GREY)
    tifffile.imwrite(tmp_path / "file100.TIFF", data[5:9], bigtiff=True, **GREY)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".file0.tif.tmp.tif").write_bytes(b"half-written temp file, ignored")
    with open_movie(tmp_path) as movie:
        assert [p.name for p in movie.files] == ["file2.tif", "file10.ome.tif", "file100.TIFF"]
        assert movie.n_frames == 9
        np.testing.assert_array_equal(movie[:], data)
        np.testing.assert_array_equal(movie[1:7], data[1:7])  # spans all three files
        np.testing.assert_array_equal(movie[4], data[4])
        assert [s for s, _ in movie.iter_chunks(3)] == [0, 3, 6]
    np.testing.assert_array_equal(read_movie(tmp_path), data)


def test_folder_odd_file_named(tmp_path):
    tifffile.imwrite(tmp_path / "a1.tif", np.zeros((2, 4, 5), np.uint16), **GREY)
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((2, 4, 6), np.uint16), **GREY)
    with pytest.raises(InputError, match=r"a2\.tif: frames are 4x6 uint16, but a1\.tif has 4x5 uint16"):
        open_movie(tmp_path)
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((2, 4, 5), np.float32), **GREY)
    with pytest.raises(InputError, match=r"a2\.tif: .*float32"):
        open_movie(tmp_path)


def test_a_non_finite_pixel_in_a_folder_names_its_file_and_frame(tmp_path):
    """A NaN/inf in a folder's third file: the error named the folder and only the movie's frame 9."""
    for k in range(3):
        frames = np.ones((4, 4, 5), np.float32)
        if k == 2:
            frames[1, 2, 3] = np.inf
        tifffile.imwrite(tmp_path / f"part_{k}.tif", frames, **GREY)
    with open_movie(tmp_path) as movie:
        movie[:8]  # the first two files are clean
        with pytest.raises(InputError, match=r"part_2\.tif: frame 1 \(frame 9 of the folder's movie\) has a "
                                             r"non-finite pixel value inf at row 2, column 3"):
            movie[6:12]


def test_an_ome_tiff_of_several_images_is_read_as_its_first_with_a_warning(tmp_path):
    """Two OME Images (e.g. stage positions) of 3 frames each were read as one movie of 6 frames."""
    first, second = _movie(1, shape=(3, 4, 5)), _movie(2, shape=(3, 4, 5))
    with tifffile.TiffWriter(tmp_path / "positions.ome.tif", ome=True) as tw:
        tw.write(first, metadata={"axes": "TYX"}, **GREY)
        tw.write(second, metadata={"axes": "TYX"}, **GREY)
    with pytest.warns(UserWarning, match=r"positions\.ome\.tif: the OME-TIFF holds 2 images .* reading only the first"):
        movie = open_movie(tmp_path / "positions.ome.tif")
    with movie:
        assert len(movie) == 3
        np.testing.assert_array_equal(movie[:], first)
    # a plain TIFF written page by page (a series per page) is still one movie of all its pages
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tw:
        for frame in np.concatenate([first, second]):
            tw.write(frame, **GREY)
    np.testing.assert_array_equal(read_movie(tmp_path / "pages.tif"), np.concatenate([first, second]))


def test_a_folder_holding_a_multi_file_micro_manager_stack_is_refused(tmp_path):
    """Micro-Manager splits a long acquisition into movie_MMStack_Pos0.ome.tif, ..._Pos0_1.ome.tif; tifffile reads
    the whole series through either file, so their folder gave every frame twice (12 frames for 6). A folder holding
    the data set's files alone is read through its first file (session 49); one holding another beside it is refused."""
    from test_io_roi import write_mm_stack

    data = _movie(3, shape=(6, 4, 5))
    write_mm_stack(tmp_path / "movie_MMStack_Pos0.ome.tif", data[:3], summary={"Frames": 6}, image_meta={})
    write_mm_stack(tmp_path / "movie_MMStack_Pos0_1.ome.tif", data[3:], summary={"Frames": 6}, image_meta={}, first=3)
    with open_movie(tmp_path / "movie_MMStack_Pos0.ome.tif") as movie:  # the data set, through its first file
        assert len(movie) == 6
        np.testing.assert_array_equal(movie[:], data)
    # frame by frame: no "reading array from closed file" warning per read of the second file (tifffile had closed
    # it after parsing; it stays open with the reader now). Warnings are errors in the tests.
    from plexloc.io.tiff import MovieReader

    with MovieReader(tmp_path / "movie_MMStack_Pos0.ome.tif", memmap=False) as movie:
        np.testing.assert_array_equal(np.stack([movie[i] for i in range(len(movie))]), data)
        np.testing.assert_array_equal(np.concatenate([c for _, c in movie.iter_chunks(2)]), data)
    with open_movie(tmp_path) as movie:  # a folder of the data set's files alone: read through its first file
        assert movie.files == [tmp_path / "movie_MMStack_Pos0.ome.tif"]
        np.testing.assert_array_equal(movie[:], data)
    # another position's data set beside it: the folder is refused
    write_mm_stack(tmp_path / "movie_MMStack_Pos1.ome.tif", data[:3], summary={"Frames": 6}, image_meta={})
    write_mm_stack(tmp_path / "movie_MMStack_Pos1_1.ome.tif", data[3:], summary={"Frames": 6}, image_meta={}, first=3)
    with pytest.raises(InputError, match=r"the TIFF files follow 2 name patterns .*movie_MMStack_Pos0\.ome\.tif"):
        open_movie(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "readme.md").write_text("no movie here")
    with pytest.raises(InputError, match="folder holds no TIFF files"):
        open_movie(tmp_path)


# --- writers ----------------------------------------------------------------------------------------


def test_write_movie_round_trip_and_rank2(tmp_path):
    data = _movie(11)
    write_movie(tmp_path / "m.tif", data)
    np.testing.assert_array_equal(read_movie(tmp_path / "m.tif"), data)
    write_movie(tmp_path / "one.tif", data[0])
    assert read_movie(tmp_path / "one.tif").shape == (1, 5, 6)
    write_movie(tmp_path / "f.tif", data.astype(np.float64) / 7, dtype=np.float32)
    np.testing.assert_allclose(read_movie(tmp_path / "f.tif"), data / 7, rtol=1e-6)
    assert _leftovers(tmp_path) == []


def test_write_movie_rounds_and_refuses_to_wrap(tmp_path):
    write_movie(tmp_path / "r.tif", np.array([[[0.4, 1.6], [65534.6, 2.5]]]))
    np.testing.assert_array_equal(read_movie(tmp_path / "r.tif"), [[[0, 2], [65535, 2]]])
    target = tmp_path / "w.tif"
    span = r"w\.tif: frame values span \[-1(\.0)?, 70000(\.0)?\], outside .*\[0, 65535\]"
    with pytest.raises(InputError, match=span):
        write_movie(target, np.array([[[-1.0, 70000.0]]]))
    with pytest.raises(InputError, match="NaN"):
        write_movie(target, np.array([[[np.nan, 1.0]]]))
    with pytest.raises(InputError, match=r"values span \[0, 300\]"):
        write_movie(target, np.array([[[0, 300]]]), dtype=np.uint8)
    with pytest.raises(InputError, match="not supported"):
        write_movie(target, np.zeros((1, 2, 2)), dtype=np.complex64)
    with pytest.raises(InputError, match=r"shape \(T, H, W\) or \(H, W\)"):
        write_movie(target, np.zeros(5))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_write_movie_uses_bigtiff_above_threshold(tmp_path, monkeypatch):
    data = _movie(12)
    write_movie(tmp_path / "small.tif", data)
    monkeypatch.setattr(tiffmod, "BIGTIFF_THRESHOLD_BYTES", data.nbytes - 1)
    write_movie(tmp_path / "big.tif", data)
    with tifffile.TiffFile(tmp_path / "small.tif") as a, tifffile.TiffFile(tmp_path / "big.tif") as b:
        assert not a.is_bigtiff and b.is_bigtiff
    np.testing.assert_array_equal(read_movie(tmp_path / "big.tif"), data)


def test_movie_writer_appends_one_contiguous_series(tmp_path):
    data = _movie(13, shape=(10, 4, 5))
    with MovieWriter(tmp_path / "w.tif") as w:
        assert not (tmp_path / "w.tif").exists()  # nothing in place before a clean exit
        w.write(data[:3])
        w.write(data[3])  # one (H, W) frame
        w.write(data[4:10].astype(np.float64))
        assert w.n_frames == 10
    with tifffile.TiffFile(tmp_path / "w.tif") as tf:
        assert len(tf.series) == 1 and tf.series[0].shape == (10, 4, 5)
    with open_movie(tmp_path / "w.tif") as movie:
        assert movie._sources[0]._mm is not None
        np.testing.assert_array_equal(movie[:], data)
    assert _leftovers(tmp_path) == []


def test_movie_writer_leaves_nothing_on_error_abort_or_empty(tmp_path):
    target = tmp_path / "w.tif"
    with pytest.raises(RuntimeError, match="boom"):
        with MovieWriter(target) as w:
            w.write(_movie(14))
            raise RuntimeError("boom")
    assert not target.exists()
    w = MovieWriter(target)
    w.write(_movie(14))
    w.abort()
    w.abort()
    assert not target.exists()
    with pytest.raises(InputError, match="no frames were written"):
        with MovieWriter(target):
            pass
    with pytest.raises(InputError, match=r"frames of shape \(4, 4\) do not match the movie's \(5, 6\)"):
        with MovieWriter(target) as w:
            w.write(_movie(15))
            w.write(np.zeros((1, 4, 4)))
    with pytest.raises(InputError, match="outside the range"):
        with MovieWriter(target, dtype=np.uint8) as w:
            w.write(np.full((1, 2, 2), 256))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_movie_writer_existing_file_survives_failure(tmp_path):
    target = tmp_path / "w.tif"
    old = _movie(16)
    write_movie(target, old)
    with pytest.raises(RuntimeError):
        with MovieWriter(target) as w:
            w.write(_movie(17))
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(read_movie(target), old)


def test_movie_writer_switches_to_bigtiff(tmp_path, monkeypatch):
    data = _movie(18, shape=(9, 4, 5))
    frame_bytes = 4 * 5 * 2
    monkeypatch.setattr(tiffmod, "BIGTIFF_THRESHOLD_BYTES", 5 * frame_bytes)
    with MovieWriter(tmp_path / "w.tif") as w:
        for start in range(0, 9, 3):  # the switch happens at the second chunk (6 frames > 5)
            w.write(data[start : start + 3])
    with tifffile.TiffFile(tmp_path / "w.tif") as tf:
        assert tf.is_bigtiff and len(tf.series) == 1
    np.testing.assert_array_equal(read_movie(tmp_path / "w.tif"), data)
    assert _leftovers(tmp_path) == []
    with MovieWriter(tmp_path / "c.tif", bigtiff=False) as w:
        w.write(data)
    with tifffile.TiffFile(tmp_path / "c.tif") as tf:
        assert not tf.is_bigtiff


def test_a_movie_without_frames_is_refused(tmp_path):
    """A TIFF of 0 frames opened as an empty movie: every command then wrote an empty table and exited 0."""
    import warnings

    import tifffile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile: "writing zero-size array to nonconformant TIFF"
        tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 16, 16), np.uint16))
    with pytest.raises(InputError, match=r"empty\.tif: the movie holds no frames"):
        open_movie(tmp_path / "empty.tif")


def test_the_pixel_size_recorded_in_the_metadata(tmp_path):
    """Micro-Manager, OME and ImageJ record the pixel size in the sample; a generic TIFF's 72 dpi is not one."""
    import tifffile
    from test_io_roi import write_mm_stack

    from plexloc.io.pixel_size import pixel_size_mismatch

    d = np.zeros((4, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", d, imagej=True, resolution=(1 / 0.16, 1 / 0.16), metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "ome.tif", d, ome=True, metadata={"PhysicalSizeX": 108.0, "PhysicalSizeXUnit": "nm",
                                                                   "PhysicalSizeY": 108.0, "PhysicalSizeYUnit": "nm"})
    tifffile.imwrite(tmp_path / "plain.tif", d, resolution=(72, 72), photometric="minisblack")
    write_mm_stack(tmp_path / "mm.tif", d, summary={}, image_meta={"PixelSizeUm": 0.1})
    write_mm_stack(tmp_path / "mm0.tif", d, summary={}, image_meta={"PixelSizeUm": 0.0})  # "not calibrated"
    found = {}
    for name in ("ij", "ome", "plain", "mm", "mm0"):
        with open_movie(tmp_path / f"{name}.tif") as m:
            found[name] = m.pixel_size
    assert (found["ij"].x_nm, found["ij"].y_nm) == pytest.approx((160.0, 160.0)) and "ImageJ" in found["ij"].source
    assert found["ome"].x_nm == pytest.approx(108.0) and "OME" in found["ome"].source
    assert found["mm"].x_nm == pytest.approx(100.0) and "PixelSizeUm" in found["mm"].source
    assert found["plain"] is None and found["mm0"] is None
    note = pixel_size_mismatch(found["ij"], (100.0, 100.0), what="the model was trained for", path="m.tif")
    assert "160 x 160 nm" in note and "100 x 100 nm" in note
    assert pixel_size_mismatch(found["mm"], (101.0, 101.0), what="x", path="m.tif") is None  # within 3 %
