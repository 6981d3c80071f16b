"""CSV: a malformed value deep in a large file is named without reading the whole file again in Python; the
ThunderSTORM export writes NaN and infinities as Java reads them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.io import tables
from plexloc.io.tables import CsvDialectWarning, read_csv, write_table
from plexloc.io.thunderstorm import export_thunderstorm, import_thunderstorm
from plexloc.table import LocTable
from test_io45 import timed_read_and_refusal

HEADER = "frame,x_nm,y_nm,z_nm,photons\n"


def _rows(n: int, start: int = 0) -> list[str]:
    return [f"{i // 50},{i % 997}.25,{i % 991}.5,{i % 13 - 6},{1000 + i % 7000}\n" for i in range(start, start + n)]


# --- a malformed value near the end of a large comma-separated file -----------------------------------------------


@pytest.mark.parametrize("bad", ["abc", "1.2.3"])
def test_malformed_value_near_the_end_is_refused_in_about_the_time_of_a_read(tmp_path, bad, monkeypatch):
    """Was: the fast read failed, then the whole file was read again line by line in Python to name the value (7-11 s
    for a value near the end of 1M rows, 7-10x a read); now numpy's parser finds the chunk, then the block of lines
    it refuses, and the line-by-line reader starts there."""
    n = 200_000
    rows = _rows(n)
    ok, p = tmp_path / "ok.csv", tmp_path / "bad.csv"
    ok.write_text(HEADER + "".join(rows))
    fields = rows[n - 10].split(",")
    fields[1] = bad
    rows[n - 10] = ",".join(fields)
    p.write_text(HEADER + "".join(rows))
    split_calls = []
    split = tables._split
    monkeypatch.setattr(tables, "_split", lambda line, sep: split_calls.append(1) or split(line, sep))
    took_ok, took, err = timed_read_and_refusal(ok, p)
    assert str(err.value) == f"{p}: line {n - 8}, column 'x_nm': value {bad!r} is not a number"
    # the work, which load on the machine does not change: the line-by-line reader parses only from the refused
    # block on (at most two refusals x 4096 lines), not the whole file again (2 x 200,000 lines in the old code)
    assert 0 < len(split_calls) <= 2 * 4096, len(split_calls)
    # and the time, loosely (was 9-10x a read at 200k rows; now ~3x, 2x at 1M; a busy machine stretches both)
    assert min(took) < 8 * min(took_ok) + 0.5, (took, took_ok)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 lines or ~2 kB and blocks of 8 lines, so that small files have many."""
    monkeypatch.setattr(tables, "_CHUNK_ROWS", 64)
    monkeypatch.setattr(tables, "_TEXT_CHUNK", 2048)
    monkeypatch.setattr(tables, "_BLOCK_LINES", 8, raising=False)  # (none in the old code)


def test_first_malformed_line_is_named_with_its_physical_line_number(tmp_path, small_chunks):
    rows = _rows(600)
    rows[433] = rows[433].replace(".5,", ".5,x", 1)  # line 435 before the blank lines, 438 after
    rows[500] = "1,2,3\n"  # a later malformed line is not the one named
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "".join(rows[:100]) + "\n   \n\n" + "".join(rows[100:]))
    with pytest.raises(InputError, match=rf"^{p}: line 438, column 'z_nm': value 'x-?\d+' is not a number$"):
        read_csv(p)
    rows[433] = "1,2,3,4\n"  # a line of the wrong length
    p.write_text(HEADER + "".join(rows))
    with pytest.raises(InputError, match=r": line 435: 4 value\(s\), expected 5 \(one per header column"):
        read_csv(p)
    # a missing value in a required column, then a malformed one: the first is named
    rows[433] = "3,,2,1,100\n"
    rows[434] = "3,1,2,1,abc\n"
    p.write_text(HEADER + "".join(rows))
    with pytest.raises(InputError, match=r": line 435, column 'x_nm': value '' is not a number \(a missing value"):
        read_csv(p)


def test_a_chunk_refused_for_no_malformed_line_is_still_read_whole(tmp_path, small_chunks):
    """A literal NaN x beside an empty optional cell makes numpy's chunk irregular, though no line is malformed: the
    file is read line by line as before, and the NaN refused by the finite check naming its line."""
    rows = [r.rstrip("\n") + ",\n" for r in _rows(400)]
    rows[300] = "6,nan,1,0,100,\n"
    p = tmp_path / "t.csv"
    p.write_text(HEADER.rstrip("\n") + ",sigma_x_nm\n" + "".join(rows))
    with pytest.raises(InputError, match=r": line 302: column 'x_nm' is nan; required columns must be finite"):
        read_csv(p)
    rows[300] = "6,1,1,0,100,\n"
    p.write_text(HEADER.rstrip("\n") + ",sigma_x_nm\n" + "".join(rows))
    t = read_csv(p)
    assert len(t) == 400 and np.isnan(t["sigma_x_nm"]).all() and t["x_nm"][300] == 1.0
    # numpy takes the lines as they are up to a missing value deep in the file, then the rest is translated
    rows = [r.rstrip("\n") + ",7.5\n" for r in _rows(400)]
    rows[330] = "6,1,1,0,100,\n"
    p.write_text(HEADER.rstrip("\n") + ",sigma_x_nm\n" + "".join(rows[:200]) + "\n" + "".join(rows[200:]))
    t = read_csv(p)
    expected = np.array([[float(v) for v in r.split(",")] for r in rows[:330] + rows[331:]])
    assert np.array_equal(np.delete(t["frame"], 330), expected[:, 0]) and np.isnan(t["sigma_x_nm"][330])
    assert np.array_equal(np.delete(t["sigma_x_nm"], 330), expected[:, 5])
    assert np.array_equal(np.delete(t["x_nm"], 330), expected[:, 1]) and len(t) == 400


def test_semicolon_file_decimal_marks_are_judged_over_the_whole_file(tmp_path, small_chunks):
    rows = [r.replace(",", ";").replace(".", ",") for r in _rows(500)]
    p = tmp_path / "t.csv"
    bad = list(rows)
    bad[450] = "9;1,5;2x;0;100\n"  # a malformed value after chunks of decimal commas
    p.write_text(HEADER.replace(",", ";") + "".join(bad))
    with pytest.raises(InputError, match=r": line 452, column 'y_nm': value '2x' is not a number$"):
        read_csv(p)
    mixed = list(rows)
    mixed[450] = "9;1.5;2;0;100\n"  # a decimal point after chunks of decimal commas: both named, in file order
    p.write_text(HEADER.replace(",", ";") + "".join(mixed))
    with pytest.raises(InputError, match=r": line 2, column 'x_nm' holds '0,25' and line 452, column 'x_nm' holds "
                                         r"'1.5': decimal commas and decimal points in one file"):
        read_csv(p)
    p.write_text(HEADER.replace(",", ";") + "".join(rows))
    with pytest.warns(CsvDialectWarning, match="separated by ';', with decimal commas"):
        assert read_csv(p)["x_nm"][1] == 1.25


# --- ThunderSTORM export: NaN as Java reads it ------------------------------------------------------------------


def test_thunderstorm_export_writes_nan_as_java_reads_it(tmp_path):
    """Was 'nan', which ThunderSTORM's importer (Java's Double.parseDouble) refuses; plexloc's own CSV keeps 'nan'."""
    t = LocTable({"frame": [0, 1, 2], "x_nm": [1.0, 2.0, 3.0], "y_nm": [4.0, 5.0, 6.0], "z_nm": [10.0, np.nan, -5.5],
                  "photons": [100.0, 200.0, 300.0], "sigma_x_nm": [5.0, np.nan, np.inf],
                  "sigma_y_nm": [5.0, 6.0, 7.0], "bg": [1.0, -np.inf, 2.0]})
    p = tmp_path / "ts.csv"
    export_thunderstorm(t, p)
    lines = p.read_text().splitlines()
    assert lines[0] == ('"frame","x [nm]","y [nm]","z [nm]","intensity [photon]","offset [photon]",'
                        '"uncertainty [nm]","sigma_x_nm","sigma_y_nm"')
    assert lines[1:] == ["1,1,4,10,100,1,5,5,5", "2,2,5,NaN,200,-Infinity,NaN,NaN,6",
                         "3,3,6,-5.5,300,2,Infinity,Infinity,7"]
    java_double = re.compile(r"^(NaN|[+-]?Infinity|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$")  # Double.valueOf's
    assert all(java_double.match(v) for line in lines[1:] for v in line.split(","))
    back = import_thunderstorm(p)
    assert back == t and np.isnan(back["z_nm"][1]) and back["bg"][1] == -np.inf
    export_thunderstorm(t, p, float_format="%.3E")  # upper-case formats: 'NAN', 'INF'
    assert p.read_text().splitlines()[2].split(",")[3:7] == ["NaN", "2.000E+02", "-Infinity", "NaN"]
    # NaN in most rows (the text at once); in a few rows (line by line); in a whole column (a constant)
    m = 1000
    z = np.linspace(-100, 100, m)
    z[::2] = np.nan
    big = LocTable({"frame": np.arange(m), "x_nm": np.full(m, 1.5), "y_nm": np.full(m, 2.0), "z_nm": z,
                    "photons": np.full(m, 100.0), "sigma_z_nm": np.full(m, np.nan), "bg": np.arange(m) * 1.0})
    big["bg"][7] = np.nan
    big["bg"][9] = np.inf
    for table in (big, big[1::2]):
        export_thunderstorm(table, p)
        text = p.read_text()
        assert "nan" not in text and "inf" not in text
        assert all(java_double.match(v) for line in text.splitlines()[1:] for v in line.split(","))
        back = import_thunderstorm(p)
        for name in table.columns:
            np.testing.assert_allclose(back[name], table[name], rtol=1e-9, err_msg=name)
    assert p.read_text().splitlines()[4:6] == ["8,1.5,2,-98.5985986,100,NaN,NaN,NaN",
                                                 "10,1.5,2,-98.1981982,100,Infinity,NaN,NaN"]
    # plexloc's own CSV is unchanged
    q = tmp_path / "own.csv"
    write_table(LocTable({k: t[k] for k in ("frame", "x_nm", "y_nm", "photons", "sigma_x_nm")}
                         | {"z_nm": np.full(3, np.nan)}), q)
    assert q.read_text().splitlines()[2] == "1,2,5,nan,200,nan"
