"""plexloc's own table formats: CSV and HDF5."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.io import read_table, write_table
from plexloc.io import tables as tablesmod
from plexloc.table import LocTable

HEADER = "frame,x_nm,y_nm,z_nm,photons"


def _table(n: int = 50, seed: int = 0, *, full: bool = True) -> LocTable:
    rng = np.random.default_rng(seed)
    cols = {
        "frame": rng.integers(0, 20, n),
        "x_nm": rng.uniform(0, 6400, n),
        "y_nm": rng.uniform(0, 6400, n),
        "z_nm": rng.normal(0, 300, n),
        "photons": rng.uniform(500, 5000, n),
    }
    if full:
        bg = rng.uniform(5, 50, n)
        bg[::7] = np.nan  # NaN is allowed in optional columns
        cols.update(
            id=np.arange(n) + 10**12,  # beyond float32, exact in int64/CSV
            bg=bg,
            sigma_x_nm=rng.uniform(3, 30, n),
            sigma_y_nm=rng.uniform(3, 30, n),
            prob=rng.uniform(0, 1, n),
            color=rng.integers(-1, 3, n),
            photons_ch0=rng.uniform(100, 2000, n),
            photons_ch1=rng.uniform(100, 2000, n),
            my_score=rng.normal(size=n),  # a user column
        )
    return LocTable(cols)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_round_trip_exact_with_17_digits(tmp_path):
    t = _table()
    write_table(t, tmp_path / "t.csv", float_format="%.17g")
    back = read_table(tmp_path / "t.csv")
    assert back == t
    assert back.source == str(tmp_path / "t.csv")
    assert back["frame"].dtype == np.int64 and back["id"].dtype == np.int64


def test_csv_default_format_keeps_sub_nm(tmp_path):
    t = _table(seed=1)
    write_table(t, tmp_path / "t.csv")
    back = read_table(tmp_path / "t.csv")
    assert back.columns == t.columns
    for c in ("x_nm", "y_nm", "z_nm"):
        np.testing.assert_allclose(back[c], t[c], rtol=0, atol=1e-5)  # '%.10g' of < 1e4 nm
    np.testing.assert_array_equal(back["id"], t["id"])
    np.testing.assert_array_equal(np.isnan(back["bg"]), np.isnan(t["bg"]))


def test_csv_text_layout(tmp_path):
    t = LocTable({"frame": [3, 4], "x_nm": [50.125, 1e-3], "y_nm": [1.0, 2.0], "z_nm": [0.0, -5.5],
                  "photons": [1000.0, 20.0], "bg": [np.nan, 3.0]})
    write_table(t, tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines == [HEADER + ",bg", "3,50.125,1,0,1000,nan", "4,0.001,2,-5.5,20,3"]


def test_csv_header_only_gives_empty_table_and_unknown_columns_kept(tmp_path):
    (tmp_path / "e.csv").write_text(HEADER + ",extra\n")
    t = read_table(tmp_path / "e.csv")
    assert len(t) == 0 and t.columns == ["frame", "x_nm", "y_nm", "z_nm", "photons", "extra"]
    write_table(t, tmp_path / "e2.csv")
    assert read_table(tmp_path / "e2.csv") == t


def test_csv_accepts_spaces_quotes_crlf_and_blank_lines(tmp_path):
    (tmp_path / "q.csv").write_bytes(b'"frame", "x_nm","y_nm","z_nm","photons"\r\n0, 1.5 ,2,3,4\r\n\r\n1,2,3,4,5\r\n')
    t = read_table(tmp_path / "q.csv")
    assert t["frame"].tolist() == [0, 1] and t["x_nm"].tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("0,1,2,3,4\n\n1,2,3,abc,5\n", r"bad\.csv: line 4, column 'z_nm': value 'abc' is not a number"),
        ("0,1,2,3,4\n1,2,3,4\n", r"bad\.csv: line 3: 4 value\(s\), expected 5"),
        ("0,1,2,3,4,9\n", r"bad\.csv: line 2: 6 value\(s\), expected 5"),
        ("0,1,2,3,4\n1,2,,4,5\n", r"bad\.csv: line 3, column 'y_nm': value '' is not a number"),
        ("0,1,2,3,4\n0.5,1,2,3,4\n", r"bad\.csv: line 3: column 'frame' must hold integers, found 0\.5"),
        ("0,1,2,3,4\n\n\n1,2,nan,4,5\n", r"bad\.csv: line 5: column 'y_nm' is nan; required columns must be finite"),
        ("0,1,2,3,inf\n", r"bad\.csv: line 2: column 'photons' is inf"),
    ],
)
def test_csv_malformed_rows_name_line_and_value(tmp_path, body, message):
    (tmp_path / "bad.csv").write_text(HEADER + "\n" + body)
    with pytest.raises(InputError, match=message):
        read_table(tmp_path / "bad.csv")


def test_csv_header_problems(tmp_path):
    (tmp_path / "h.csv").write_text("x_nm,y_nm,z_nm,photons\n1,2,3,4\n")  # (no z_nm is a 2D table: test_io45)
    with pytest.raises(InputError, match=r"h\.csv: missing required column\(s\) \['frame'\]"):
        read_table(tmp_path / "h.csv")
    (tmp_path / "h.csv").write_text("")
    with pytest.raises(InputError, match=r"h\.csv: empty file; expected a header row"):
        read_table(tmp_path / "h.csv")
    (tmp_path / "h.csv").write_text(HEADER + ",x_nm\n")
    with pytest.raises(InputError, match=r"duplicate column name\(s\) \['x_nm'\]"):
        read_table(tmp_path / "h.csv")
    (tmp_path / "h.csv").write_bytes(HEADER.encode() + b"\n0,1,2,3,\x81\n")  # (0xff: Windows-1252 'ÿ', test_io45)
    with pytest.raises(InputError, match=r"h\.csv: not a text file: not UTF-8"):
        read_table(tmp_path / "h.csv")
    with pytest.raises(InputError, match=r"missing\.csv: file not found"):
        read_table(tmp_path / "missing.csv")


def test_nan_in_optional_column_allowed(tmp_path):
    (tmp_path / "o.csv").write_text(HEADER + ",bg,sigma_x_nm\n0,1,2,3,4,nan,NaN\n")
    t = read_table(tmp_path / "o.csv")
    assert np.isnan(t["bg"][0]) and np.isnan(t["sigma_x_nm"][0])


def test_csv_many_rows(tmp_path):
    t = _table(n=50_000, seed=3)
    write_table(t, tmp_path / "big.csv")
    back = read_table(tmp_path / "big.csv")
    assert len(back) == 50_000
    np.testing.assert_array_equal(back["frame"], t["frame"])
    np.testing.assert_allclose(back["x_nm"], t["x_nm"], rtol=1e-9)


# --- HDF5 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".H5"])
def test_hdf5_round_trip_exact(tmp_path, suffix):
    t = _table(seed=4)
    write_table(t, tmp_path / f"t{suffix}")
    back = read_table(tmp_path / f"t{suffix}")
    assert back == t and back.columns == t.columns


def test_hdf5_layout_and_attributes(tmp_path):
    t = _table(seed=5)
    write_table(t, tmp_path / "t.h5")
    with h5py.File(tmp_path / "t.h5", "r") as f:
        g = f["locs"]
        assert g.attrs["format"] == "plexloc-locs" and int(g.attrs["version"]) == 1
        assert list(g.attrs["columns"]) == t.columns
        assert g["frame"].dtype == np.int64 and g["x_nm"].dtype == np.float64 and g["x_nm"].ndim == 1
        assert g["x_nm"].attrs["unit"] == "nm" and "columns" in g["x_nm"].attrs["description"]
        assert g["photons"].attrs["unit"] == "photons"
        assert g["bg"].attrs["unit"] == "photons/pixel/frame"
        assert g["photons_ch1"].attrs["description"].startswith("photons in channel 1")
        assert "unit" not in g["my_score"].attrs and "description" not in g["my_score"].attrs


def test_hdf5_errors(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(InputError, match=r"other\.h5: no group '/locs' \(found \['data'\]\)"):
        read_table(tmp_path / "other.h5")
    with h5py.File(tmp_path / "picasso.hdf5", "w") as f:
        f.create_dataset("locs", data=np.zeros(2, dtype=[("frame", "u4"), ("x", "f4")]))
    with pytest.raises(InputError, match=r"picasso\.hdf5: .*import_picasso"):
        read_table(tmp_path / "picasso.hdf5")
    write_table(_table(5, full=False), tmp_path / "wrong.h5")
    with h5py.File(tmp_path / "wrong.h5", "a") as f:
        f["locs"].attrs["format"] = "something-else"
    with pytest.raises(InputError, match="format 'something-else'"):
        read_table(tmp_path / "wrong.h5")
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        g = f.create_group("locs")
        for c in ("frame", "x_nm", "y_nm", "z_nm", "photons"):
            g.create_dataset(c, data=np.array([0.0, 1.0]))
        g["x_nm"][1] = np.nan
    with pytest.raises(InputError, match=r"nan\.h5: column 'x_nm' has 1 non-finite"):
        read_table(tmp_path / "nan.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5: not a readable HDF5 file"):
        read_table(tmp_path / "text.h5")


def test_hdf5_failed_write_leaves_old_file(tmp_path, monkeypatch):
    t_old, t_new = _table(5, seed=6), _table(5, seed=7)
    write_table(t_old, tmp_path / "t.h5")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        write_table(t_new, tmp_path / "t.h5")
    monkeypatch.undo()
    assert read_table(tmp_path / "t.h5") == t_old
    assert _leftovers(tmp_path) == []


# --- dispatch ------------------------------------------------------------------------------------


def test_unknown_suffix_lists_allowed(tmp_path):
    with pytest.raises(InputError, match=r"t\.txt: unknown table suffix '\.txt'; allowed are \.csv, \.h5, \.hdf5"):
        read_table(tmp_path / "t.txt")
    with pytest.raises(InputError, match=r"unknown table suffix '\.parquet'"):
        write_table(_table(3), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_float_format_and_non_tables(tmp_path):
    with pytest.raises(InputError, match="float_format"):
        write_table(_table(3), tmp_path / "t.csv", float_format="%s%s")
    with pytest.raises(InputError, match="expected a LocTable"):
        write_table({"frame": [0]}, tmp_path / "t.csv")  # type: ignore[arg-type]


def test_unit_helpers():
    assert tablesmod.column_unit("crlb_z_nm") == "nm"
    assert tablesmod.column_unit("photons_ch3") == "photons"
    assert tablesmod.column_unit("frame") == "1"
    assert tablesmod.column_unit("whatever") is None


# --- streamed writing ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_table_writer_parts_give_the_file_of_the_whole_table(tmp_path, suffix):
    """Parts appended one by one (buffered, flushed several times) = write_table of their concatenation; empty
    parts, even with other columns, add nothing; the file appears only on close."""
    whole = _table(1000, seed=3)
    cuts = [0, 1, 1, 250, 251, 700, 1000]  # includes empty parts
    writer = tablesmod.TableWriter(tmp_path / f"parts{suffix}", buffer_rows=128)
    writer.append(LocTable.empty())  # an empty part without the optional columns
    for a, b in zip(cuts[:-1], cuts[1:]):
        writer.append(whole[np.arange(a, b)])
    assert not (tmp_path / f"parts{suffix}").exists() and writer.rows == 1000
    writer.close()
    write_table(whole, tmp_path / f"whole{suffix}")
    assert read_table(tmp_path / f"parts{suffix}") == read_table(tmp_path / f"whole{suffix}")
    if suffix == ".csv":
        assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    else:
        assert read_table(tmp_path / "parts.h5") == whole
        with h5py.File(tmp_path / "parts.h5") as f:
            assert f["locs/x_nm"].attrs["unit"] == "nm" and f["locs/x_nm"].maxshape == (None,)
            assert list(f["locs"].attrs["columns"]) == whole.columns
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_table_writer_without_rows_writes_the_empty_parts_columns(tmp_path, suffix):
    empty = _table(0)
    with tablesmod.TableWriter(tmp_path / f"e{suffix}") as w:
        w.append(empty)
    back = read_table(tmp_path / f"e{suffix}")
    assert len(back) == 0 and back.columns == empty.columns


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_table_writer_error_leaves_no_file_and_the_old_one(tmp_path, suffix):
    write_table(_table(5, seed=1), tmp_path / f"t{suffix}")
    old = read_table(tmp_path / f"t{suffix}")
    with pytest.raises(RuntimeError, match="interrupted"):
        with tablesmod.TableWriter(tmp_path / f"t{suffix}", buffer_rows=2) as w:
            w.append(_table(10, seed=2))  # flushed into the temporary file
            raise RuntimeError("interrupted")
    assert read_table(tmp_path / f"t{suffix}") == old and _leftovers(tmp_path) == []
    with pytest.raises(InputError, match=r"t2\.csv: a part has columns .* the table has"):
        with tablesmod.TableWriter(tmp_path / "t2.csv") as w:
            w.append(_table(3, full=True))
            w.append(_table(3, full=False))
    assert not (tmp_path / "t2.csv").exists() and _leftovers(tmp_path) == []
    with pytest.raises(InputError, match=r"unknown table suffix '\.txt'"):  # before any work is done
        tablesmod.TableWriter(tmp_path / "t.txt")
    with pytest.raises(InputError, match="float_format"):
        tablesmod.TableWriter(tmp_path / "t.csv", float_format="%q")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_table_writer_in_the_background_gives_the_same_file_and_raises_the_workers_error(tmp_path, suffix, monkeypatch):
    whole = _table(2000, seed=4)
    with tablesmod.TableWriter(tmp_path / f"bg{suffix}", buffer_rows=100, background=True) as w:
        for a in range(0, 2000, 37):
            w.append(whole[np.arange(a, min(a + 37, 2000))])
    write_table(whole, tmp_path / f"fg{suffix}")
    assert read_table(tmp_path / f"bg{suffix}") == read_table(tmp_path / f"fg{suffix}")
    write_table(_table(5, seed=1), tmp_path / f"old{suffix}")
    old = read_table(tmp_path / f"old{suffix}")

    def full_disk(self, cols):
        raise OSError("No space left on device")

    monkeypatch.setattr(tablesmod.TableWriter, "_write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        with tablesmod.TableWriter(tmp_path / f"old{suffix}", buffer_rows=10, background=True) as w:
            for a in range(0, 2000, 10):
                w.append(whole[np.arange(a, a + 10)])
    assert read_table(tmp_path / f"old{suffix}") == old and _leftovers(tmp_path) == []


def test_a_thunderstorm_export_under_a_plain_csv_name_says_how_to_import_it(tmp_path):
    """ThunderSTORM's usual file name is results.csv: it was refused as 'missing required column(s) [x_nm, ...]'
    without a hint; the error now says to name it .thunderstorm.csv."""
    from plexloc.io.tables import read_table

    (tmp_path / "results.csv").write_text('"id","frame","x [nm]","y [nm]","intensity [photon]"\n1,1,100.5,200.5,900\n')
    with pytest.raises(InputError, match=r"ThunderSTORM's: name the file results\.thunderstorm\.csv"):
        read_table(tmp_path / "results.csv")
