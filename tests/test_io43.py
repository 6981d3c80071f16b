"""Review 43 of reading and writing files: what users' real files do to the readers (tables and movies).

Each test pins a case that was read wrong or refused without saying why before: a uint64 id wrapped round to a
negative number, a column dropped without a word, a folder of several channels read as one movie, a CSV with a
line of blanks refused, a semicolon-separated file named as a malformed row.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.io.formats import read_locs, write_locs
from plexloc.io.tables import read_csv, read_hdf5, write_hdf5
from plexloc.io.thunderstorm import import_thunderstorm
from plexloc.io.tiff import open_movie
from plexloc.table import LocTable

REQ = ("frame", "x_nm", "y_nm", "z_nm", "photons")
BEYOND_INT64 = 2**63 + 5  # numpy's cast to int64 made it -9223372036854775803


def _h5_table(path, **extra):
    with h5py.File(path, "w") as f:
        g = f.create_group("locs")
        for c in REQ:
            g.create_dataset(c, data=np.arange(3, dtype=np.float64))
        for name, values in extra.items():
            g.create_dataset(name, data=values)
    return path


# --- integers beyond int64 ---------------------------------------------------------------------------------------


def test_hdf5_uint64_id_beyond_int64_is_refused_not_wrapped(tmp_path):
    p = _h5_table(tmp_path / "t.h5", id=np.array([1, BEYOND_INT64, 2], np.uint64))
    with pytest.raises(InputError, match=rf"t\.h5: column 'id' .*holds {BEYOND_INT64} at row 1 .*int64"):
        read_hdf5(p)
    # uint64 ids within int64 are read exactly
    ok = _h5_table(tmp_path / "ok.h5", id=np.array([0, 2**63 - 1, 7], np.uint64))
    assert read_hdf5(ok)["id"].tolist() == [0, 2**63 - 1, 7]


def test_picasso_uint64_field_beyond_int64_is_not_wrapped(tmp_path):
    """An unsigned 64-bit field was cast to int64 first: a value beyond int64 came out negative (an id, or a group
    number Picasso's own tools would never give as such)."""
    locs = np.zeros(2, [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("lpx", "f4"), ("lpy", "f4"),
                        ("id", "u8"), ("group", "u8")])
    locs["lpx"] = locs["lpy"] = 0.1
    locs["id"] = [3, BEYOND_INT64]
    locs["group"] = [3, BEYOND_INT64]
    with h5py.File(tmp_path / "p.hdf5", "w") as f:
        f.create_dataset("locs", data=locs)
    with pytest.raises(InputError, match=rf"p\.hdf5: field 'id' of 'locs' holds {BEYOND_INT64} at row 1"):
        read_locs(tmp_path / "p.hdf5", px_size_nm=100.0)
    locs["id"] = [3, 2**63 - 1]
    with h5py.File(tmp_path / "q.hdf5", "w") as f:
        f.create_dataset("locs", data=locs)
    back = read_locs(tmp_path / "q.hdf5", px_size_nm=100.0)
    assert back["id"].tolist() == [3, 2**63 - 1]  # an integer column: exact
    assert back["group"].tolist() == [3.0, float(BEYOND_INT64)]  # another column: float64, positive


def test_decode_uint64_id_beyond_int64_is_refused_not_wrapped(tmp_path):
    p = tmp_path / "emitters.h5"
    with h5py.File(p, "w") as f:
        d = f.create_group("data")
        d.create_dataset("xyz", data=np.zeros((2, 3)))
        d.create_dataset("frame_ix", data=np.array([0, 1]))
        d.create_dataset("phot", data=np.array([1000.0, 2000.0]))
        d.create_dataset("id", data=np.array([1, BEYOND_INT64], np.uint64))
        m = f.create_group("meta")
        m.attrs["xy_unit"] = "nm"
        m.attrs["px_size"] = np.array([100.0, 100.0])
    with pytest.raises(InputError, match=rf"emitters\.h5: column 'id' holds {BEYOND_INT64} at row 1"):
        read_locs(p)


# --- plexloc HDF5: a column the file names but does not hold -----------------------------------------------------


def test_hdf5_column_listed_but_absent_is_refused(tmp_path):
    p = tmp_path / "t.h5"
    write_hdf5(LocTable({c: np.arange(3) for c in REQ} | {"prob": np.full(3, 0.5)}), p)
    with h5py.File(p, "a") as f:
        del f["locs/prob"]  # the attribute 'columns' still lists it: read without it, it was lost without a word
    with pytest.raises(InputError, match=r"t\.h5: '/locs' lists column\(s\) \['prob'\] .* holds no dataset"):
        read_hdf5(p)


# --- CSV as users' editors and spreadsheets write it -------------------------------------------------------------


def test_csv_line_of_blanks_is_an_empty_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,400\n   \n1,2.5,3,4,500\n \t \n")
    t = read_csv(p)
    assert t["frame"].tolist() == [0, 1] and t["x_nm"].tolist() == [1.5, 2.5] and t["photons"].tolist() == [400, 500]
    # the line numbers of errors count the blank lines, as before
    p.write_text("frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,400\n   \n1,abc,3,4,500\n")
    with pytest.raises(InputError, match=r"line 4, column 'x_nm': value 'abc' is not a number"):
        read_csv(p)


@pytest.mark.parametrize("text, match", [
    ("# exported by X\nframe,x_nm,y_nm,z_nm,photons\n0,1,2,3,4\n", r"line 1 is a comment \('# exported by X'\)"),
])
def test_csv_comment_or_other_separator_is_named(tmp_path, text, match):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(InputError, match=r"t\.csv: " + match):
        read_csv(tmp_path / "t.csv")
    (tmp_path / "t.thunderstorm.csv").write_text(text.replace("x_nm", "x [nm]"))
    with pytest.raises(InputError, match=match):
        read_locs(tmp_path / "t.thunderstorm.csv")


# --- ThunderSTORM ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header, row, ours, theirs", [
    ('"frame","x [nm]","y [nm]","intensity [photon]","offset [photon]","bg"', "1,10,20,300,4,99", "bg",
     "offset \\[photon\\]"),
    ('"frame","x [nm]","y [nm]","intensity [photon]","photons"', "1,10,20,300,99", "photons", "intensity \\[photon\\]"),
    ('"frame","x [nm]","y [nm]","intensity [photon]","x_nm"', "1,10,20,300,99", "x_nm", "x \\[nm\\]"),
])
def test_thunderstorm_column_that_a_label_already_gives_is_refused_not_dropped(tmp_path, header, row, ours, theirs):
    p = tmp_path / "a.thunderstorm.csv"
    p.write_text(f"{header}\n{row}\n")
    with pytest.raises(InputError, match=rf"a\.thunderstorm\.csv: the file's column '{ours}' is plexloc's column "
                                         rf"'{ours}', and its column '{theirs}' gives it too"):
        import_thunderstorm(p)


def test_thunderstorm_z_nm_without_z_label_is_refused_not_zeroed(tmp_path):
    p = tmp_path / "a.thunderstorm.csv"
    p.write_text('"frame","x [nm]","y [nm]","intensity [photon]","z_nm"\n1,10,20,300,-250\n')
    with pytest.raises(InputError, match=r"column 'z_nm' is plexloc's column 'z_nm', and ThunderSTORM's 2D files"):
        import_thunderstorm(p)


def test_thunderstorm_uncertainties_in_um_are_converted_as_the_positions(tmp_path):
    p = tmp_path / "a.thunderstorm.csv"
    p.write_text('"frame","x [um]","y [um]","z [um]","intensity [photon]","uncertainty [um]","uncertainty_z [um]"\n'
                 "2,1.5,2.25,0.3,500,0.012,0.045\n")
    t = import_thunderstorm(p)
    assert t.columns == ["frame", "x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm", "sigma_y_nm", "sigma_z_nm"]
    np.testing.assert_allclose([t[c][0] for c in t.columns[1:]], [1500, 2250, 300, 500, 12, 12, 45], rtol=1e-12)
    assert t["frame"].tolist() == [1]


# --- Picasso -----------------------------------------------------------------------------------------------------


def test_picasso_locs_without_named_fields_is_named_as_such(tmp_path):
    with h5py.File(tmp_path / "p.hdf5", "w") as f:
        f.create_dataset("locs", data=np.ones((3, 5)))
    with pytest.raises(InputError, match=r"p\.hdf5: dataset 'locs' \(Picasso structured array\) is a plain array "
                                         r"\(shape \(3, 5\), dtype float64\) without named fields"):
        read_locs(tmp_path / "p.hdf5", px_size_nm=100.0)


# --- movie folders -----------------------------------------------------------------------------------------------


def _frames(k, n=2):
    return np.full((n, 6, 7), k, np.uint16)


def test_folder_of_micro_manager_channels_is_refused(tmp_path):
    """Micro-Manager's separate image files of two channels: read in name order, all of channel 0's frames came
    first and then channel 1's, as one movie of twice the frames."""
    for c in range(2):
        for t in range(3):
            tifffile.imwrite(tmp_path / f"img_channel{c:03d}_position000_time{t:09d}_z000.tif", _frames(10 * c + t, 1))
    with pytest.raises(InputError, match=r"holds Micro-Manager image files of 2 channels \(0, 1\).*a folder of its own"):
        open_movie(tmp_path)
    # one channel's time series is one movie, in time order
    for t in range(3):
        (tmp_path / f"img_channel001_position000_time{t:09d}_z000.tif").unlink()
    with open_movie(tmp_path) as movie:
        assert len(movie) == 3 and [int(movie[i][0, 0]) for i in range(3)] == [0, 1, 2]


def test_folder_with_a_file_of_another_name_is_refused(tmp_path):
    """dark.tif beside img_0.tif ... sorted first and became frame 0, shifting every frame number by one."""
    for i in range(3):
        tifffile.imwrite(tmp_path / f"img_{i}.tif", _frames(i + 1))
    tifffile.imwrite(tmp_path / "dark.tif", _frames(0, 1))
    with pytest.raises(InputError, match=r"follow 2 name patterns \(img_N: 3 file\(s\), e\.g\. img_0\.tif; dark: 1 "
                                         r"file\(s\), e\.g\. dark\.tif\)"):
        open_movie(tmp_path)


def test_folder_of_a_split_acquisition_is_one_movie_in_order(tmp_path):
    """Andor Solis splits a long acquisition into movie.tif, movie_X2.tif, movie_X3.tif ...: one movie; and BigTIFF's
    own suffix .btf is a TIFF file of the folder (it was left out without a word)."""
    tifffile.imwrite(tmp_path / "movie.tif", _frames(1))
    tifffile.imwrite(tmp_path / "movie_X2.tif", _frames(2))
    tifffile.imwrite(tmp_path / "movie_X10.btf", _frames(10), bigtiff=True)
    tifffile.imwrite(tmp_path / "movie_X3.tiff", _frames(3))
    (tmp_path / "movie.txt").write_text("acquisition notes")
    with open_movie(tmp_path) as movie:
        assert [p.name for p in movie.files] == ["movie.tif", "movie_X2.tif", "movie_X3.tiff", "movie_X10.btf"]
        assert [int(movie[i][0, 0]) for i in range(len(movie))] == [1, 1, 2, 2, 3, 3, 10, 10]


def test_damaged_tiff_of_a_folder_is_named_as_damaged(tmp_path):
    """A TIFF header whose offset to the first page leads nowhere said only 'holds no image'."""
    for i in range(3):
        tifffile.imwrite(tmp_path / f"img_{i}.tif", _frames(i))
    (tmp_path / "img_3.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(InputError, match=r"img_3\.tif: TIFF file holds no image \(0 readable page\(s\): a damaged or "
                                         r"empty file; <tifffile\.TiffPages @\d+> invalid offset to first page"):
        open_movie(tmp_path)


# --- every format keeps every row and column ---------------------------------------------------------------------


def test_round_trip_through_every_format_keeps_rows_and_values(tmp_path):
    rng = np.random.default_rng(43)
    n = 40
    t = LocTable({
        "frame": rng.integers(0, 10**6, n), "x_nm": rng.uniform(0, 3e4, n), "y_nm": rng.uniform(0, 3e4, n),
        "z_nm": rng.uniform(-500, 500, n), "photons": rng.uniform(100, 1e5, n), "bg": rng.uniform(0, 100, n),
        "sigma_x_nm": rng.uniform(1, 30, n), "sigma_y_nm": rng.uniform(1, 30, n), "sigma_z_nm": rng.uniform(1, 60, n),
        "prob": rng.uniform(0, 1, n), "id": np.arange(n) + 2**53 + 1, "color": rng.integers(-1, 3, n),
        "my col": rng.normal(size=n), "a,b": rng.normal(size=n),
    })
    for name, rtol in (("t.csv", 1e-9), ("t.h5", 0), ("t.thunderstorm.csv", 1e-9), ("t.smlm", 0),
                       ("t.hdf5", 1e-6)):  # Picasso stores float32
        write_locs(t, tmp_path / name, px_size_nm=107.0, frame_shape=(300, 300))
        back = read_locs(tmp_path / name)
        assert len(back) == n and set(back.columns) == set(t.columns), name
        for c in t.columns:
            if t[c].dtype.kind == "i":
                np.testing.assert_array_equal(back[c], t[c], err_msg=f"{name}: {c}")
            else:
                np.testing.assert_allclose(back[c], t[c], rtol=rtol, atol=1e-3 if rtol == 1e-6 else 0,
                                           err_msg=f"{name}: {c}")
