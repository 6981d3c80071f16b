"""Review of session 47's movie-reading and colour changes (helper review3): what they broke or left, each test failing
on the code before its fix."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.tiff import MovieWarning, open_movie
from plexloc.table import LocTable


def _movie(n=8, shape=(16, 20)) -> np.ndarray:
    return np.arange(n * shape[0] * shape[1], dtype=np.uint16).reshape(n, *shape)


def test_a_tifffile_without_a_micro_manager_reader_still_opens_movies(tmp_path, monkeypatch):
    """pyproject allows tifffile >= 2023.1, whose TiffFile has no is_mmstack (its __getattr__ raises AttributeError):
    every movie, a plain stack too, failed to open with 'TiffFile' object has no attribute 'is_mmstack'."""
    path = tmp_path / "m.tif"
    data = _movie()
    tifffile.imwrite(path, data)
    monkeypatch.delattr(tifffile.TiffFile, "is_mmstack")
    with open_movie(path) as movie:
        np.testing.assert_array_equal(movie[:], data)


def _ome_with_sizet(path, data, size_t: int, tiffdata: str | None = None) -> None:
    """An OME-TIFF of ``data`` whose OME-XML declares ``size_t`` time points (and, if given, these TiffData)."""
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TYX"})
    with tifffile.TiffFile(path) as tf:
        xml = tf.pages[0].description
    xml2 = xml.replace(f'SizeT="{len(data)}"', f'SizeT="{size_t}"')
    if tiffdata is not None:
        start = xml2.index("<TiffData")
        xml2 = xml2[:start] + tiffdata + xml2[xml2.index("/>", start) + 2:]
    assert xml2 != xml
    tifffile.tiffcomment(path, xml2.encode())


def test_an_ome_tiff_stopped_early_reads_the_frames_it_holds(tmp_path):
    """An OME-TIFF whose metadata declare 12 time points and whose single file holds 8 (an acquisition stopped
    early) was refused as a multi-file data set with files missing ('frames 8-11 ... are in files that cannot be read
    ... put the data set's files together in one folder'); before that, its 4 missing frames were fitted as zeros.
    Now its 8 frames are read, with the warning that fewer frames than declared can be read."""
    path = tmp_path / "short.ome.tif"
    data = _movie(8)
    _ome_with_sizet(path, data, 12)
    with pytest.warns(MovieWarning, match=r"short\.ome\.tif: the file's metadata declares 12 frames but 8 can be read"):
        movie = open_movie(path)
    with movie:
        assert len(movie) == 8
        np.testing.assert_array_equal(movie[:], data)
        np.testing.assert_array_equal(np.concatenate([c for _, c in movie.iter_chunks(3)]), data)


def test_an_ome_tiff_whose_planes_are_missing_between_its_pages_names_the_frames_not_a_missing_file(tmp_path):
    """Planes 4-7 declared but not stored, in a file that names no other file: not 'in files that cannot be read,
    put the data set's files together' (there is no other file), but the frames the file lacks."""
    path = tmp_path / "gap.ome.tif"
    tiffdata = '<TiffData FirstT="0" IFD="0" PlaneCount="4"/><TiffData FirstT="8" IFD="4" PlaneCount="4"/>'
    _ome_with_sizet(path, _movie(8), 12, tiffdata)
    with pytest.raises(InputError) as err:
        open_movie(path).close()
    text = str(err.value)
    assert "gap.ome.tif" in text and "frames 4-7 (4 of the 12 its OME metadata declare) are not stored" in text
    assert "files together" not in text


def _table(ph, seen, bg) -> LocTable:
    ph = np.asarray(ph, float)
    cols = {"frame": np.arange(len(ph)), "x_nm": np.full(len(ph), 500.0), "y_nm": np.full(len(ph), 500.0),
            "z_nm": np.zeros(len(ph)), "photons": ph.sum(axis=1), "n_channels_seen": np.asarray(seen)}
    for c in range(ph.shape[1]):
        cols[f"photons_ch{c}"] = ph[:, c]
        cols[f"bg_ch{c}"] = np.asarray(bg, float)[:, c]
    return LocTable(cols)


def test_a_background_that_is_not_a_number_is_counted_and_named():
    """A row whose bg_chN is NaN (used for its photon noise, or for the detection limit of a channel that missed
    it) came out color -1 with color_prob NaN, counted among neither the not-finite rows nor named; the other rows
    keep their colours."""
    from plexloc.post.color import assign_colors

    t = _table([[1000.0, 4000.0], [3000.0, 2000.0], [0.0, 2000.0], [1000.0, 4000.0]], [2, 2, 1, 2],
               [[20.0, 135.0], [np.nan, 135.0], [20.0, np.nan], [20.0, 135.0]])
    out, report = assign_colors(t, [[0.2, 0.8], [0.6, 0.4]], excess_noise=2.0)
    assert out["color"].tolist() == [0, -1, -1, 0]
    assert report.n_not_finite == 2 and report.not_finite == "column bg_ch0 is nan at row 1"
    assert report.n_partial == 0  # the partial row is among the not finite
    # with sigma_photons_ch* and the detection limits given, the background is not used: nothing to reject
    t2 = t.with_columns(sigma_photons_ch0=np.full(4, 100.0), sigma_photons_ch1=np.full(4, 100.0))
    out, report = assign_colors(t2, [[0.2, 0.8], [0.6, 0.4]], detection_limits=[200.0, 500.0])
    assert report.n_not_finite == 0 and out["color"].tolist()[:2] == [0, 1]


def test_cli_says_that_a_table_without_background_gives_no_detection_limit(tmp_path, capsys):
    """Without bg_chN (or with 0) the detection limits are 0 photons: a channel's miss tells nothing of the colour
    and every row seen in one channel was rejected, said only as '(0, 0 photons)' in the summary."""
    from plexloc.cli.main import main
    from plexloc.io.tables import write_table
    ph = np.array([[0.0, 2400.0], [900.0, 0.0]] + [[1000.0 + i, 4000.0 - i] for i in range(10)]
                  + [[3000.0 + i, 2000.0 - i] for i in range(10)])
    src = tmp_path / "merged.csv"
    write_table(_table(ph, (ph != 0).sum(axis=1), np.zeros_like(ph)), src)
    args = ["color", str(src), "--out", str(tmp_path / "out.csv"), "--ratios", "0.2", "0.8", "--ratios", "0.6", "0.4"]
    with warnings.catch_warnings():  # shown as a user sees them (plexloc color: warning: ...), not raised
        warnings.simplefilter("default")
        assert main(args) == 0
        err = capsys.readouterr().err
        assert re.search(r"plexloc color: warning: \S*merged\.csv: 2 row\(s\) were seen in only some channels.*"
                         r"channel\(s\) 0, 1 no background.*\(2 of those rows rejected\): give --detection-limit", err)
        assert main(args + ["--detection-limit", "1500", "500"]) == 0  # given: nothing to say
        assert "warning" not in capsys.readouterr().err


def test_a_table_coloured_again_keeps_its_partial_rows_photons_and_sigma():
    """assign_colors divides the photons of a row seen in one channel by its dye's fraction there, and scaled
    sigma_photons by the same factor on every run: colouring the output again (another --threshold) made a 20/80
    dye's sigma 50 -> 62.5 -> 78.1, and a row rejected on the second run kept the first run's total (2500, not the
    2000 photons its channel saw)."""
    from plexloc.post.color import assign_colors

    ph = np.array([[0.0, 2000.0], [3000.0, 0.0], [1000.0, 4000.0]])
    t = _table(ph, [1, 1, 2], [[20.0, 135.0]] * 3).with_columns(sigma_photons=np.array([50.0, 60.0, 70.0]))
    ratios = [[0.2, 0.8], [0.6, 0.4]]
    once, _ = assign_colors(t, ratios, excess_noise=2.0)
    assert once["color"].tolist() == [0, 1, 0]
    np.testing.assert_allclose(once["photons"], [2500.0, 5000.0, 5000.0])
    np.testing.assert_allclose(once["sigma_photons"], [62.5, 100.0, 70.0])
    twice, _ = assign_colors(once, ratios, excess_noise=2.0)
    np.testing.assert_allclose(twice["photons"], once["photons"])
    np.testing.assert_allclose(twice["sigma_photons"], once["sigma_photons"])
    strict, _ = assign_colors(once, ratios, 0.999999, excess_noise=2.0)  # the one-channel rows now rejected
    assert strict["color"].tolist() == [-1, -1, 0]
    np.testing.assert_allclose(strict["photons"], [2000.0, 3000.0, 5000.0])
    np.testing.assert_allclose(strict["sigma_photons"], [50.0, 60.0, 70.0])


def test_the_reported_detection_limits_are_those_of_the_rows_a_channel_missed():
    """ColorReport.detection_limits (the summary's 'others' detection limits (...)') was the median over every row of
    the table: NaN where a row seen everywhere had a NaN background, and the limit of rows that no channel missed."""
    from plexloc.post.color import DEFAULT_PSF_AREA_PX, assign_colors

    ph = np.array([[1000.0, 4000.0], [1000.0, 4000.0], [0.0, 2000.0]])
    bg = np.array([[np.nan, 135.0], [np.nan, 135.0], [20.0, 135.0]])
    _, report = assign_colors(_table(ph, [2, 2, 1], bg), [[0.2, 0.8], [0.6, 0.4]], excess_noise=2.0)
    expected = [10.0 * np.sqrt(2.0 * DEFAULT_PSF_AREA_PX * b) for b in (20.0, 135.0)]
    assert report.n_partial == 1 and report.n_not_finite == 2
    np.testing.assert_allclose(report.detection_limits, expected)


def test_a_folder_whose_first_file_is_the_odd_one_names_it(tmp_path):
    """A folder's first file of another frame size than the rest: the error named the second file, which agrees with
    every other ('img_1.tif: frames are 16x20 uint16, but img_0.tif has 8x20 uint16')."""
    tifffile.imwrite(tmp_path / "img_0.tif", np.zeros((8, 20), np.uint16), photometric="minisblack")
    for k in range(1, 4):
        tifffile.imwrite(tmp_path / f"img_{k}.tif", np.zeros((16, 20), np.uint16), photometric="minisblack")
    with pytest.raises(InputError) as err:
        open_movie(tmp_path).close()
    assert str(err.value).startswith(f"{tmp_path / 'img_0.tif'}: frames are 8x20 uint16, but the folder's next "
                                     "files (img_1.tif, img_2.tif) have 16x20 uint16")
    (tmp_path / "img_2.tif").unlink()  # the second file odd: named as before
    (tmp_path / "img_3.tif").unlink()
    tifffile.imwrite(tmp_path / "img_1.tif", np.zeros((16, 20), np.float32), photometric="minisblack")
    tifffile.imwrite(tmp_path / "img_0.tif", np.zeros((16, 20), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match=r"img_1\.tif: frames are 16x20 float32, but img_0\.tif has 16x20 uint16"):
        open_movie(tmp_path).close()
