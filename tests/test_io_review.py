"""Known-answer review of plexloc.io: round trips, foreign imports, damaged input, folders of TIFFs.

Each test builds its input by hand and states the answer; the tests marked "was:" failed before the fix they pin.
"""

from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io import TableWriter, open_movie, read_locs, read_table, write_locs, write_table
from plexloc.io.foreign import IgnoredFieldWarning
from plexloc.table import LocTable

GREY = {"photometric": "minisblack"}


def _every_column(n: int = 4) -> LocTable:
    """A table with every documented column, per-channel columns, a user column, NaN in optional columns."""
    nan = np.nan
    return LocTable({
        "frame": [0, 1, 2**31, 7][:n], "x_nm": [10.5, 220.25, 3000.0, 0.125][:n], "y_nm": [5.0, 6.5, 7.0, 8.0][:n],
        "z_nm": [0.0, -10.5, 20.0, 5.0][:n], "photons": [1000.0, 2000.0, 3000.0, 4000.0][:n],
        "id": [1, 2, 3, 2**45][:n], "bg": [1.0, nan, 3.0, 4.0][:n], "sigma_x_nm": [5.0, 6.0, 7.0, 8.0][:n],
        "sigma_y_nm": [5.5, 6.0, 7.0, 8.0][:n], "sigma_z_nm": [9.0, 9.0, 9.0, 9.0][:n],
        "sigma_photons": [1.0, 2.0, 3.0, 4.0][:n], "prob": [0.5, 0.625, 0.75, 0.875][:n],
        "photons_ch0": [1.0, 2.0, 3.0, 4.0][:n], "photons_ch1": [1.0, 2.0, 3.0, nan][:n],
        "bg_ch0": [1.0, 2.0, 3.0, 4.0][:n], "bg_ch1": [1.0, 2.0, 3.0, 4.0][:n],
        "sigma_photons_ch0": [1.0, 2.0, 3.0, 4.0][:n], "color": [0, -1, 1, 0][:n],
        "color_prob": [0.875, 0.125, 0.5, 0.5][:n], "crlb_x_nm": [1.0, 2.0, 3.0, 4.0][:n],
        "crlb_y_nm": [1.0, 2.0, 3.0, 4.0][:n], "crlb_z_nm": [1.0, 2.0, 3.0, 4.0][:n],
        "n_merged": [1.0, 2.0, 3.0, 4.0][:n], "frame_last": [0.0, 2.0, 2.0**31 + 3, 9.0][:n],
        "my col": [1.5, 2.0, 3.0, 4.0][:n],
    })


@pytest.mark.parametrize("name", ["t.csv", "t.h5", "t.hdf5", "t.thunderstorm.csv", "t.smlm"])
@pytest.mark.parametrize("rows", [4, 1, 0])
def test_every_column_round_trips_in_every_writable_format(tmp_path, name, rows):
    """Values (chosen exact in float32 and in 10 digits; Picasso's float32 pixel positions to 1e-4 nm), dtypes and column order come back in every format, through
    a folder with a non-ASCII name (found right: no fix needed). The empty table keeps its bg in Picasso's format too
    (the sidecar lists the export's NaN placeholders; it came back without bg before)."""
    t = _every_column(rows)
    path = tmp_path / "données µ" / name
    write_locs(t, path, px_size_nm=100.0)
    back = read_locs(path)
    expected = t
    if name.endswith(".hdf5") and rows and not np.any(t["z_nm"]):  # z 0 throughout: a 2D table, written without z
        expected = t.with_columns(z_nm=np.full(rows, np.nan))  # and read back with z unknown (NaN)
    assert back.columns == expected.columns
    for c in expected.columns:
        assert back[c].dtype == expected[c].dtype, c
        if name.endswith(".hdf5") and c in ("x_nm", "y_nm"):  # Picasso stores float32 pixels (documented)
            np.testing.assert_allclose(back[c], expected[c], rtol=0, atol=1e-4, err_msg=c)
        else:
            np.testing.assert_array_equal(back[c], expected[c], err_msg=c)


def _decode(path, *, px_size=(100.0, 100.0), extra=None):
    with h5py.File(path, "w") as f:
        m = f.create_group("meta")
        m.attrs["xy_unit"] = "px"
        m.attrs["px_size"] = h5py.Empty("f") if px_size is None else np.array(px_size)  # DECODE's None
        g = f.create_group("data")
        g.create_dataset("xyz", data=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        g.create_dataset("phot", data=np.array([100.0, 200.0]))
        g.create_dataset("frame_ix", data=np.array([0, 3]))
        for k, v in (extra or {}).items():
            g.create_dataset(k, data=v)


def test_decode_px_size_stored_empty_is_no_pixel_size(tmp_path, capsys):
    """DECODE saves a None px_size as an empty attribute. Was: TypeError traceback (float() of h5py.Empty), also
    from plexloc convert; now the error that asks for the pixel size, and the pixel size given converts."""
    _decode(tmp_path / "e.h5", px_size=None)
    with pytest.raises(InputError, match=r"e\.h5: no pixel size .*px_size_nm"):
        read_locs(tmp_path / "e.h5")
    t = read_locs(tmp_path / "e.h5", px_size_nm=100.0)
    np.testing.assert_allclose(t["x_nm"], [250.0, 550.0])  # DECODE axis 1 -> x, centre of pixel 0 at 0 px
    np.testing.assert_allclose(t["y_nm"], [150.0, 450.0])
    assert main(["convert", str(tmp_path / "e.h5"), str(tmp_path / "out.csv")]) == 2
    assert "no pixel size" in capsys.readouterr().err and not (tmp_path / "out.csv").exists()


def test_decode_datasets_it_does_not_know_are_kept_or_named(tmp_path):
    """Was: a dataset of data other than EmitterSet's was dropped without a word."""
    _decode(tmp_path / "e.h5", extra={"snr": np.array([5.0, 6.0]), "patch": np.ones((2, 4))})
    with pytest.warns(IgnoredFieldWarning, match=r"e\.h5: data field\(s\) patch \(shape \(2, 4\)"):
        t = read_locs(tmp_path / "e.h5")
    assert t["snr"].tolist() == [5.0, 6.0] and len(t) == 2


def test_smap_text_fields_are_named(tmp_path):
    """Was: a loc field that is not numeric (a cell of text) was dropped without a word."""
    loc = {"frame": np.array([1.0, 2.0]), "xnm": np.array([10.0, 20.0]), "ynm": np.array([1.0, 2.0]),
           "phot": np.array([100.0, 200.0]), "note": np.array(["a", "b"], dtype=object)}
    scipy.io.savemat(tmp_path / "c_sml.mat", {"saveloc": {"loc": loc}})
    with pytest.warns(IgnoredFieldWarning, match=r"c_sml\.mat: saveloc\.loc field\(s\) note \(object\)"):
        t = read_locs(tmp_path / "c_sml.mat")
    assert t["frame"].tolist() == [0, 1] and t["x_nm"].tolist() == [10.0, 20.0]


def test_smlm_array_column_is_named(tmp_path):
    """Was: a column of several values per localization (an image patch) was dropped without a word."""
    rec = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4"), ("frame", "<u4"),
                             ("patch", "<f4", (2, 2))])
    rec["x"], rec["intensity"], rec["frame"] = [1.0, 2.0], [100.0, 200.0], [0, 5]
    fmt = {"name": "f", "type": "table", "mode": "binary", "headers": ["x", "y", "intensity", "frame", "patch"],
           "dtype": ["float32", "float32", "float32", "uint32", "float32"], "shape": [1, 1, 1, 1, [2, 2]],
           "units": ["nm", "nm", "photon", "frame", "photon"]}
    man = {"format_version": "0.2", "formats": {"f": fmt},
           "files": [{"name": "t.bin", "format": "f", "type": "table", "rows": 2}]}
    with zipfile.ZipFile(tmp_path / "p.smlm", "w") as z:
        z.writestr("manifest.json", json.dumps(man))
        z.writestr("t.bin", rec.tobytes())
    with pytest.warns(IgnoredFieldWarning, match=r"p\.smlm: table 't\.bin' column\(s\) patch \(shape \(2, 2\)\)"):
        t = read_locs(tmp_path / "p.smlm", frame_origin=0)
    assert t["frame"].tolist() == [0, 5] and t["photons"].tolist() == [100.0, 200.0]


def test_picasso_text_field_is_named_not_a_traceback(tmp_path):
    """Was: ValueError 'could not convert string to float' from a text field of 'locs'."""
    locs = np.zeros(2, dtype=[("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("name", "S5")])
    locs["x"] = [0.0, 1.0]
    with h5py.File(tmp_path / "p.hdf5", "w") as f:
        f.create_dataset("locs", data=locs)
    with pytest.warns(IgnoredFieldWarning, match=r"p\.hdf5: field\(s\) name \(\|S5\)"):
        t = read_locs(tmp_path / "p.hdf5", px_size_nm=100.0)
    assert t["x_nm"].tolist() == [50.0, 150.0]
    locs = np.zeros(1, dtype=[("frame", "u4"), ("x", "S4"), ("y", "f4"), ("photons", "f4")])
    with h5py.File(tmp_path / "q.hdf5", "w") as f:
        f.create_dataset("locs", data=locs)
    with pytest.raises(InputError, match=r"q\.hdf5: field\(s\) x \(\|S4\) of 'locs' must hold one number"):
        read_locs(tmp_path / "q.hdf5", px_size_nm=100.0)


def _damage_object(path, name):
    """Overwrite the object header of ``name`` (a group or dataset) with 0xff: the file still opens."""
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f[name].id).addr
    raw = bytearray(path.read_bytes())
    raw[addr : addr + 16] = b"\xff" * 16
    path.write_bytes(bytes(raw))


def test_hdf5_damaged_inside_is_an_input_error(tmp_path):
    """Was: KeyError 'bad object header version number' (or RuntimeError) tracebacks from a file that opens but
    whose group or dataset is damaged."""
    t = _every_column()
    write_table(t, tmp_path / "a.h5")
    _damage_object(tmp_path / "a.h5", "locs/x_nm")
    for read in (read_table, read_locs):
        with pytest.raises(InputError, match=r"a\.h5: corrupt HDF5 file \(KeyError: .*object header"):
            read(tmp_path / "a.h5")
    write_locs(t, tmp_path / "p.hdf5", px_size_nm=100.0)
    _damage_object(tmp_path / "p.hdf5", "locs")
    with pytest.raises(InputError, match=r"p\.hdf5: corrupt HDF5 file"):
        read_locs(tmp_path / "p.hdf5")
    _decode(tmp_path / "d.h5")
    _damage_object(tmp_path / "d.h5", "data/phot")
    with pytest.raises(InputError, match=r"d\.h5: corrupt HDF5 file"):
        read_locs(tmp_path / "d.h5")


@pytest.mark.parametrize("column", ["ratio a/b", ".", "100%", "a%2Fb"])
def test_hdf5_column_names_with_slash_or_dot_round_trip(tmp_path, column):
    """Was: a column 'a/b' was written as a group 'a' holding 'b' (the file could not be read back: "'/locs/a' must
    be a 1-D numeric dataset"), a column '.' failed with h5py's 'name already exists' ValueError."""
    t = _every_column(2).with_columns(**{column: [1.25, 2.5]})
    write_table(t, tmp_path / "a.h5")
    assert read_table(tmp_path / "a.h5") == t
    with TableWriter(tmp_path / "s.h5", buffer_rows=1) as w:
        w.append(t[:1])
        w.append(t[1:])
    assert read_table(tmp_path / "s.h5") == t


def test_csv_value_with_underscore_is_named_by_line_and_column(tmp_path):
    """Python's float() takes '1_0', numpy's parser does not. Was: 'malformed CSV (could not convert string '1_0'
    to float64 at row 0, column 2.)', numpy's row and column numbers; now the line and the column's name."""
    (tmp_path / "u.csv").write_text("frame,x_nm,y_nm,z_nm,photons\n0,1,2,3,4\n1,1_0,2,3,4\n")
    with pytest.raises(InputError, match=r"u\.csv: line 3, column 'x_nm': value '1_0' is not a number"):
        read_table(tmp_path / "u.csv")


def _folder(path, names, frames=2):
    path.mkdir()
    for k, name in enumerate(names):
        tifffile.imwrite(path / name, np.full((frames, 4, 5), k, np.uint16), **GREY)


def test_folder_with_a_missing_numbered_file_is_refused(tmp_path):
    """Was: img_0, img_1, img_3 read as 6 frames, img_3's frames numbered 4-5 (they are 6-7)."""
    _folder(tmp_path / "gap", ["img_0.tif", "img_1.tif", "img_3.tif", "img_4.tif"])
    with pytest.raises(InputError, match=r"gap: the files are numbered, but after img_1\.tif comes img_3\.tif "
                                         r"\(number 3, expected 2\)"):
        open_movie(tmp_path / "gap")
    # complete numberings: by one (zero-padded), by the frames of each file, by one regular step
    for sub, names in (("ones", ["img_008.tif", "img_009.tif", "img_010.tif"]),
                       ("frames", ["m_0.tif", "m_2.tif", "m_4.tif"]),
                       ("step", ["s_0.tif", "s_5.tif", "s_10.tif"])):
        _folder(tmp_path / sub, names)
        with open_movie(tmp_path / sub) as movie:
            assert movie.n_frames == 6 and movie[5][0, 0] == 2
    _folder(tmp_path / "framegap", ["m_0.tif", "m_2.tif", "m_6.tif", "m_8.tif"])
    with pytest.raises(InputError, match=r"after m_2\.tif comes m_6\.tif \(number 6, expected 4\)"):
        open_movie(tmp_path / "framegap")


def test_folder_file_without_frames_is_refused(tmp_path):
    """Was: a zero-frame file in a folder added nothing, silently (a single zero-frame file is refused)."""
    _folder(tmp_path / "z", ["a_1.tif"])
    with pytest.warns(UserWarning, match="zero-size"):  # tifffile's own warning while we make the file
        tifffile.imwrite(tmp_path / "z" / "a_2.tif", np.zeros((0, 4, 5), np.uint16), **GREY)
    with pytest.raises(InputError, match=r"a_2\.tif: holds no frames"):
        open_movie(tmp_path / "z")
