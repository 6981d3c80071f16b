"""Readers of localization tables: the losses and needless refusals left by the last sessions (helper io, 44).

SMAP fields of several columns, SMAP's per-axis errors, .smlm frames given as times, and CSV as spreadsheets and
quoting writers save it."""

from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from plexloc.errors import InputError
from plexloc.io import read_locs
from plexloc.io._readers import IgnoredFieldWarning
from plexloc.io.foreign import read_smap_sml

# --- SMAP _sml.mat -----------------------------------------------------------------------------------------------


def _sml(path, extra, *, v73=False, n=3):
    """A SMAP _sml.mat with frame, xnm, ynm, phot (n localizations) and the fields of ``extra`` (as MATLAB has them:
    (n, 1) columns, (n, k) for k columns)."""
    loc = {"frame": np.arange(1.0, n + 1)[:, None], "xnm": np.linspace(100.0, 300.0, n)[:, None],
           "ynm": np.full((n, 1), 50.0), "phot": np.full((n, 1), 1000.0), **extra}
    if v73:  # MATLAB v7.3 stores the axes reversed: an (n, k) field as (k, n)
        with h5py.File(path, "w", userblock_size=512) as f:
            g = f.create_group("saveloc").create_group("loc")
            for k, v in loc.items():
                g.create_dataset(k, data=np.asarray(v).T).attrs["MATLAB_class"] = np.bytes_("double")
    else:
        scipy.io.savemat(path, {"saveloc": {"loc": loc}})
    return path


@pytest.mark.parametrize("v73", [False, True])
def test_smap_field_of_two_columns_is_skipped_with_a_warning(tmp_path, v73):
    """Was: a field of 2 columns (2n values) refused the whole file ('has 6 values, expected 3')."""
    p = _sml(tmp_path / "a_sml.mat", {"PSFxy": np.arange(6.0).reshape(3, 2), "LLrel": np.array([[-1.0], [-2], [-3]])},
             v73=v73)
    with pytest.warns(IgnoredFieldWarning, match=r"a_sml\.mat: saveloc\.loc field\(s\) PSFxy \(shape \(3, 2\)\) do not "
                                                 r"hold one value per localization \(3\) and were not imported"):
        t = read_smap_sml(p)
    assert len(t) == 3 and "PSFxy" not in t.columns and t["LLrel"].tolist() == [-1, -2, -3]
    assert t["x_nm"].tolist() == [100, 200, 300] and t["frame"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("v73", [False, True])
def test_smap_required_or_mapped_field_of_two_columns_is_refused(tmp_path, v73):
    p = _sml(tmp_path / "b_sml.mat", {"xnmerr": np.ones((3, 2))}, v73=v73)
    with pytest.raises(InputError, match=r"b_sml\.mat: saveloc\.loc\.xnmerr has 6 value\(s\) \(shape \(3, 2\)\), "
                                         r"expected 3"):
        read_smap_sml(p)


@pytest.mark.parametrize("v73", [False, True])
def test_smap_xnmerr_ynmerr_are_the_per_axis_uncertainties(tmp_path, v73):
    """Was: xnmerr/ynmerr kept under their own names and sigma_x_nm = sigma_y_nm = locprecnm, the per-axis errors
    of an astigmatic 3D fit (x and y differ) lost from the convention's columns."""
    extra = {"xnmerr": np.array([[5.0], [6.0], [7.0]]), "ynmerr": np.array([[9.0], [10.0], [11.0]]),
             "locprecnm": np.array([[7.2], [8.2], [9.2]]), "znmerr": np.array([[30.0], [31.0], [32.0]])}
    t = read_smap_sml(_sml(tmp_path / "c_sml.mat", extra, v73=v73))
    assert t["sigma_x_nm"].tolist() == [5, 6, 7] and t["sigma_y_nm"].tolist() == [9, 10, 11]
    assert t["locprecnm"].tolist() == [7.2, 8.2, 9.2]  # SMAP's combined one, kept under its name
    assert t["sigma_z_nm"].tolist() == [30, 31, 32] and "znmerr" not in t.columns
    assert "xnmerr" not in t.columns and "ynmerr" not in t.columns
    # locprecnm alone: both axes, as before, and not kept twice
    t = read_smap_sml(_sml(tmp_path / "d_sml.mat", {"locprecnm": np.array([[8.0], [6.0], [7.0]])}, v73=v73))
    assert t["sigma_x_nm"].tolist() == t["sigma_y_nm"].tolist() == [8, 6, 7] and "locprecnm" not in t.columns
    # locprecznm wins over znmerr, which keeps its name
    t = read_smap_sml(_sml(tmp_path / "e_sml.mat", {"locprecznm": np.array([[20.0], [21.0], [22.0]]),
                                                      "znmerr": np.array([[30.0], [31.0], [32.0]])}, v73=v73))
    assert t["sigma_z_nm"].tolist() == [20, 21, 22] and t["znmerr"].tolist() == [30, 31, 32]


def test_smap_field_named_as_a_mapped_column_is_refused_not_dropped(tmp_path):
    """Was: a field 'sigma_x_nm' beside 'locprecnm' (or 'x_nm' beside 'xnm') silently replaced one by the other."""
    p = _sml(tmp_path / "f_sml.mat", {"xnmerr": np.ones((3, 1)), "sigma_x_nm": np.full((3, 1), 2.0)})
    with pytest.raises(InputError, match=r"f_sml\.mat: saveloc\.loc\.sigma_x_nm is plexloc's column 'sigma_x_nm', "
                                         r"which saveloc\.loc\.xnmerr gives too"):
        read_smap_sml(p)
    p = _sml(tmp_path / "g_sml.mat", {"x_nm": np.full((3, 1), 2.0)})
    with pytest.raises(InputError, match=r"saveloc\.loc\.x_nm is plexloc's column 'x_nm', which saveloc\.loc\.xnm"):
        read_smap_sml(p)


# --- .smlm: frames given as times --------------------------------------------------------------------------------


def _smlm_times(path, times, *, unit="ms", exposure=20):
    """A .smlm archive (not plexloc's: no frame_origin mark) whose frame column holds ``times`` in ``unit``."""
    n = len(times)
    rec = np.zeros(n, dtype=[("frame", "<f8"), ("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
    rec["frame"], rec["x"], rec["y"], rec["intensity"] = times, np.arange(n) * 10.0, 5.0, 100.0
    fmt = {"name": "t", "type": "table", "mode": "binary", "headers": ["frame", "x", "y", "intensity"],
           "dtype": ["float64", "float32", "float32", "float32"], "shape": [1, 1, 1, 1],
           "units": [unit, "nm", "nm", "photon"]}
    info = {"name": "t.bin", "type": "table", "format": "t", "rows": n, "offset": {}}
    if exposure is not None:
        info["exposure"] = exposure
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"format_version": "0.2", "formats": {"t": fmt}, "files": [info]}))
        z.writestr("t.bin", rec.tobytes())
    return path


@pytest.mark.parametrize("unit, times", [("ms", [20.0, 40.0, 200.0]), ("s", [0.02, 0.04, 0.2]),
                                          ("us", [20e3, 40e3, 200e3])])
def test_smlm_frames_in_ms_are_converted_with_the_exposure(tmp_path, unit, times):
    """Was: a frame column in ms read as frame numbers: frames 20, 40, 200 (20 times too many), or with the origin
    guess 19, 39, 199."""
    from plexloc.io.smlm import FrameUnitWarning

    p = _smlm_times(tmp_path / "t.smlm", times, unit=unit)
    with pytest.warns(FrameUnitWarning, match=rf"t\.smlm: table 't\.bin' gives its frames as times \('frame' in "
                                              rf"{unit}\); frame numbers taken as time / exposure \(20 ms\)"):
        t = read_locs(p)
    assert t["frame"].tolist() == [1, 2, 10] and t["frame"].dtype == np.int64  # time 0 = frame 0: no origin guess


@pytest.mark.parametrize("exposure", [None, -1, 0, "20 ms"])
def test_smlm_frames_in_ms_without_exposure_are_refused(tmp_path, exposure):
    p = _smlm_times(tmp_path / "t.smlm", [20.0, 40.0], exposure=exposure)
    with pytest.raises(InputError, match=r"t\.smlm: column 'frame' of table 't\.bin' holds times in 'ms', not frame "
                                         r"numbers, and the table's 'exposure' in manifest\.json is "):
        read_locs(p)


def test_smlm_frame_times_between_frames_or_other_units_are_refused(tmp_path):
    p = _smlm_times(tmp_path / "a.smlm", [20.0, 30.0, 50.0])
    with pytest.raises(InputError, match=r"a\.smlm: column 'frame' of table 't\.bin' holds times in 'ms'; row 1 "
                                         r"\(30\.0 ms\) is 1\.5 exposures of 20 ms, not a whole number of frames "
                                         r"\(2 such row\(s\)\)"):
        read_locs(p)
    p = _smlm_times(tmp_path / "b.smlm", [1.0, 2.0], unit="nm")
    with pytest.raises(InputError, match=r"b\.smlm: column 'frame' of table 't\.bin' has unit 'nm'; frames must be"):
        read_locs(p)
    for unit in ("frame", "Frames", "1", ""):  # frame numbers, as before (1-based guess: smallest frame 1)
        p = _smlm_times(tmp_path / "c.smlm", [1.0, 2.0], unit=unit)
        with pytest.warns(UserWarning, match="frames taken as 1-based"):
            assert read_locs(p)["frame"].tolist() == [0, 1]


# --- CSV as spreadsheets and quoting writers save it -------------------------------------------------------------


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


def test_csv_semicolons_with_decimal_commas_are_read(tmp_path):
    """Was: refused ('the header is separated by ';''); a spreadsheet in a European locale saves CSV so."""
    from plexloc.io.tables import CsvDialectWarning, read_csv

    p = _csv(tmp_path, "frame;x_nm;y_nm;z_nm;photons;sigma_x_nm\r\n0;12,5;3;-20,25;1000;\r\n\r\n7;1234,75;0,5;0;2e3;4,5\r\n")
    with pytest.warns(CsvDialectWarning, match=r"t\.csv: read as a table separated by ';', with decimal commas \(read "
                                               r"as points\)$"):
        t = read_csv(p)
    assert t["frame"].tolist() == [0, 7] and t["x_nm"].tolist() == [12.5, 1234.75] and t["y_nm"].tolist() == [3, 0.5]
    assert t["z_nm"].tolist() == [-20.25, 0] and t["photons"].tolist() == [1000, 2000]
    assert np.isnan(t["sigma_x_nm"][0]) and t["sigma_x_nm"][1] == 4.5  # an empty optional cell: NaN, as with ','
    # ThunderSTORM's importer reads through the same parser
    p = _csv(tmp_path, '"frame";"x [nm]";"y [nm]";"intensity [photon]"\n1;10,5;20;300,25\n', "a.thunderstorm.csv")
    with pytest.warns(CsvDialectWarning, match=r"separated by ';', with decimal commas"):
        t = read_locs(p)
    assert t["x_nm"].tolist() == [10.5] and t["photons"].tolist() == [300.25] and t["frame"].tolist() == [0]


def test_csv_semicolons_with_points_and_tabs_are_read(tmp_path):
    from plexloc.io.tables import CsvDialectWarning, read_csv

    p = _csv(tmp_path, "frame;x_nm;y_nm;z_nm;photons\n0;12.5;3;4;1000\n")
    with pytest.warns(CsvDialectWarning, match=r"read as a table separated by ';'$"):
        assert read_csv(p)["x_nm"].tolist() == [12.5]
    p = _csv(tmp_path, "frame\tx_nm\ty_nm\tz_nm\tphotons\n0\t12.5\t3\t4\t1000\n1\t2\t3\t4\t5\n")
    with pytest.warns(CsvDialectWarning, match=r"read as a table separated by tabs$"):
        assert read_csv(p)["x_nm"].tolist() == [12.5, 2]
    # decimal commas in a tab-separated file: read where a value cannot be a thousands separator (12,5) ...
    p = _csv(tmp_path, "frame\tx_nm\ty_nm\tz_nm\tphotons\n0\t1,234\t3\t4\t1000\n1\t12,5\t3\t4\t5\n")
    with pytest.warns(CsvDialectWarning, match=r"separated by tabs, with decimal commas"):
        assert read_csv(p)["x_nm"].tolist() == [1.234, 12.5]
    # ... refused where every comma could be one (1,234: 1.234 or 1234?)
    p = _csv(tmp_path, "frame\tx_nm\ty_nm\tz_nm\tphotons\n0\t1,234\t3\t4\t1000\n")
    with pytest.raises(InputError, match=r"t\.csv: line 2, column 'x_nm': value '1,234' in a tab-separated file may "
                                         r"be a decimal comma or a thousands separator"):
        read_csv(p)


def test_csv_quoted_numbers_are_read(tmp_path):
    """Was: 'line 2, column 'frame': value '"0"' is not a number' for a file whose writer quotes every field."""
    from plexloc.io.tables import CsvDialectWarning, read_csv

    p = _csv(tmp_path, '"frame","x_nm","y_nm","z_nm","photons","bg"\n"0","12.5","3", "4" ,"1000",""\n1,2,3,4,5,6\n')
    with pytest.warns(CsvDialectWarning, match=r"t\.csv: read as a table with quoted numbers$"):
        t = read_csv(p)
    assert t["frame"].tolist() == [0, 1] and t["x_nm"].tolist() == [12.5, 2] and t["z_nm"].tolist() == [4, 4]
    assert np.isnan(t["bg"][0]) and t["bg"][1] == 6
    p = _csv(tmp_path, '"frame";"x_nm";"y_nm";"z_nm";"photons"\n"0";"12,5";"3";"4";"1000"\n')  # both at once
    with pytest.warns(CsvDialectWarning, match=r"separated by ';', with decimal commas \(read as points\), with "
                                               r"quoted numbers$"):
        assert read_csv(p)["x_nm"].tolist() == [12.5]


@pytest.mark.parametrize("text, match", [
    ('frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,4\n1,"12,5",2,3,4\n',
     r"line 3, column 'x_nm': value '12,5' holds a comma in a comma-separated file: a decimal comma and a thousands "
     r"separator \(12,5 or 1,234\) cannot be told apart"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;12,5;2;3;4\n1;3.25;2;3;4\n",
     r"line 2, column 'x_nm' holds '12,5' and line 3, column 'x_nm' holds '3\.25': decimal commas and decimal points "
     r"in one file"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;1.5;2;3;4\n1;2;2;3;1000,5\n",
     r"line 2, column 'x_nm' holds '1\.5' and line 3, column 'photons' holds '1000,5'"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;1.234,5;2;3;4\n",
     r"line 2, column 'x_nm': value '1\.234,5' holds both ',' and '\.', one of them a thousands separator"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;1,5;2;3;4\n\n1;abc;2;3;4\n", r"line 4, column 'x_nm': value 'abc' is not a number"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;1,5;2;3;4\n1;1,5;2;3\n", r"line 3: 4 value\(s\), expected 5"),
    ("frame;x_nm;y_nm;z_nm;photons\n0;1,5;;3;4\n", r"line 2, column 'y_nm': value '' is not a number \(a missing "
                                                   r"value, which a required column cannot hold\)"),
    ("frame;x_nm;y_nm;z_nm;photons\n0,5;1,5;2;3;4\n", r"line 2: column 'frame' must hold integers, found 0\.5"),
])
@pytest.mark.filterwarnings("ignore::plexloc.io.tables.CsvDialectWarning")  # the last case: read, then refused
def test_csv_ambiguous_or_malformed_values_are_refused_naming_line_column_value(tmp_path, text, match):
    from plexloc.io.tables import read_csv

    with pytest.raises(InputError, match=r"t\.csv: " + match):
        read_csv(_csv(tmp_path, text))


def test_csv_dialects_keep_integers_beyond_2_53_exact(tmp_path):
    """The second, exact reading of a large integer column parses the file's own separator, quotes and decimals."""
    from plexloc.io.tables import CsvDialectWarning, read_csv

    big = 2**53 + 1
    for text in (f"frame;x_nm;y_nm;z_nm;photons;id\n0;1,5;2;3;4;{big}\n1;2,5;2;3;4;7\n",
                 f'frame,x_nm,y_nm,z_nm,photons,id\n0,1.5,2,3,4,"{big}"\n1,2.5,2,3,4,7\n',
                 f"frame\tx_nm\ty_nm\tz_nm\tphotons\tid\n0\t1.5\t2\t3\t4\t{big}\n1\t2.5\t2\t3\t4\t7\n"):
        with pytest.warns(CsvDialectWarning):
            t = read_csv(_csv(tmp_path, text))
        assert t["id"].tolist() == [big, 7] and t["x_nm"].tolist() == [1.5, 2.5]


def test_csv_plain_file_gives_no_warning_and_rows_are_all_read(tmp_path, monkeypatch):
    from plexloc.io import tables
    from plexloc.io.tables import read_csv

    monkeypatch.setattr(tables, "_TEXT_CHUNK", 10_000, raising=False)  # many chunks of either reader
    monkeypatch.setattr(tables, "_CHUNK_ROWS", 1000)

    rows = "".join(f"{i},{i}.5,2,3,4\n" for i in range(1000))
    t = read_csv(_csv(tmp_path, "frame,x_nm,y_nm,z_nm,photons\n" + rows))  # warnings are errors here
    assert len(t) == 1000 and t["x_nm"][-1] == 999.5
    for sep in (";", "\t"):  # translated and parsed by numpy in chunks (tabs with commas too, since 12,5 tells)
        header = sep.join(["frame", "x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm"])
        rows = "".join(f"{i}{sep}{i},5{sep}2{sep}3{sep}4{sep}{i % 7 or ''}\n" for i in range(5000))
        with pytest.warns(UserWarning) as caught:
            t = read_csv(_csv(tmp_path, header + "\n" + rows))
        assert len(caught) == 1, [str(w.message) for w in caught]  # one warning line
        assert len(t) == 5000 and t["x_nm"][-1] == 4999.5 and t["frame"][-1] == 4999
        assert np.isnan(t["sigma_x_nm"][::7]).all() and t["sigma_x_nm"][1] == 1


def test_csv_utf16_unicode_text_is_read(tmp_path):
    """Was: 'not a UTF-8 text file' for a spreadsheet's "Unicode text" export (UTF-16 with its mark, tabs)."""
    from plexloc.io.tables import CsvDialectWarning, read_csv

    p = tmp_path / "u.csv"
    big = 2**53 + 1
    p.write_bytes(f"frame\tx_nm\ty_nm\tz_nm\tphotons\tid\r\n0\t1.5\t2\t3\t4\t{big}\r\n1\t2\t3\t4\t5\t6\r\n".encode("utf-16"))
    with pytest.warns(CsvDialectWarning, match=r"u\.csv: read as a table in UTF-16, separated by tabs$"):
        t = read_csv(p)
    assert t["x_nm"].tolist() == [1.5, 2] and t["id"].tolist() == [big, 6]
    p.write_bytes("frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,4\n1,abc,2,3,4\n".encode("utf-16"))
    with pytest.raises(InputError, match=r"u\.csv: line 3, column 'x_nm': value 'abc' is not a number"):
        read_csv(p)
    p.write_bytes("frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,4\n".encode("utf-16"))  # plain commas: said too
    with pytest.warns(CsvDialectWarning, match=r"u\.csv: read as a table in UTF-16$"):
        assert read_csv(p)["x_nm"].tolist() == [1.5]
    p.write_bytes("frame,x_nm,y_nm,z_nm,photons\n0,1.5,2,3,4\n".encode("utf-16")[:-1])  # cut inside a character
    with pytest.raises(InputError, match=r"u\.csv: not a UTF-16 text file"):
        read_csv(p)


def test_smap_frame_zero_is_refused_naming_the_field_and_the_numbering(tmp_path):
    """SMAP numbers frames from 1: a frame 0 is named with its field, row and value (the SMAP and DECODE readers
    share one check since session 46)."""
    p = _sml(tmp_path / "z_sml.mat", {})
    loc = scipy.io.loadmat(p, simplify_cells=True)["saveloc"]["loc"]
    loc["frame"] = np.array([[2.0], [0.0], [3.0]])
    scipy.io.savemat(p, {"saveloc": {"loc": {k: np.asarray(v).reshape(3, 1) for k, v in loc.items()}}})
    with pytest.raises(InputError, match=r"z_sml\.mat: saveloc\.loc\.frame has 1 value\(s\) below 1, first at row 1 "
                                         r"\(0\); SMAP numbers frames from 1"):
        read_smap_sml(p)
