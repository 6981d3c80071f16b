"""CSV tables separated by tabs with decimal commas (a European spreadsheet's "Unicode text" export) are read by the
translated numpy path where the decimal mark is told, with the refusals and messages of the line-by-line reader
(helper csvfast, 44)."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.io import tables
from plexloc.io.tables import CsvDialectWarning, read_csv

HEADER = ["frame", "x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm"]


def _write(path, rows, *, sep="\t", encoding="utf-8", newline="\n"):
    path.write_bytes((newline.join([sep.join(HEADER)] + [sep.join(r) for r in rows]) + newline).encode(encoding))
    return path


def _no_line_reader(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the line-by-line reader was called")

    monkeypatch.setattr(tables, "_read_lines", refuse)


@pytest.mark.parametrize("encoding, newline", [("utf-8", "\n"), ("utf-16", "\r\n"), ("utf-8-sig", "\r\n")])
def test_tab_decimal_commas_take_the_translated_path(tmp_path, monkeypatch, encoding, newline):
    """Was: every tab file with a comma was read line by line in Python (1 M rows: 6.8 s, ';' 1.4 s)."""
    monkeypatch.setattr(tables, "_TEXT_CHUNK", 2000)  # many chunks
    _no_line_reader(monkeypatch)
    rows = [[str(i), f"{i},5", "1,234", f"-{i % 50},25", "1000", "" if i % 3 else "4,5"] for i in range(400)]
    p = _write(tmp_path / "t.csv", rows, encoding=encoding, newline=newline)
    utf16 = "in UTF-16, " if encoding == "utf-16" else ""
    with pytest.warns(CsvDialectWarning, match=rf"t\.csv: read as a table {utf16}separated by tabs, with decimal commas "
                                               r"\(read as points\)$") as caught:
        t = read_csv(p)
    assert len(caught) == 1
    assert t["frame"].tolist() == list(range(400)) and t["x_nm"].tolist() == [i + 0.5 for i in range(400)]
    assert t["y_nm"].tolist() == [1.234] * 400 and t["z_nm"][3] == -3.25
    assert np.isnan(t["sigma_x_nm"][1]) and t["sigma_x_nm"][3] == 4.5


def test_tab_commas_told_only_in_a_later_chunk_are_read_fast(tmp_path, monkeypatch):
    """Values that could all be thousands separators for many chunks, then one that cannot (12,5): decimal commas,
    read by the translated path."""
    monkeypatch.setattr(tables, "_TEXT_CHUNK", 1000)
    _no_line_reader(monkeypatch)
    rows = [[str(i), "1,234", '"12,345"', " 3 ", "1,000", "7"] for i in range(300)] + [["300", "2", "3", "4", "12,5", ""]]
    with pytest.warns(CsvDialectWarning, match="separated by tabs, with decimal commas"):
        t = read_csv(_write(tmp_path / "t.csv", rows))
    assert t["x_nm"][0] == 1.234 and t["y_nm"][0] == 12.345 and t["photons"].tolist() == [1.0] * 300 + [12.5]


@pytest.mark.parametrize("chunk", [1 << 22, 500])
def test_tab_refusals_keep_their_messages(tmp_path, monkeypatch, chunk):
    """Every comma a possible thousands separator, or commas and points in one file: refused as before, naming the
    first such line, also where the file is read in many chunks."""
    monkeypatch.setattr(tables, "_TEXT_CHUNK", chunk)
    rows = [[str(i), "3", "-12,345" if i == 40 else "2", "4", "5", ""] for i in range(100)] + [["100", "1,234"] + ["1"] * 4]
    with pytest.raises(InputError, match=r"t\.csv: line 42, column 'y_nm': value '-12,345' in a tab-separated "
                                         r"file may be a decimal comma or a thousands separator, and no value of the "
                                         r"file tells which; save the table with '\.' as the decimal point$"):
        read_csv(_write(tmp_path / "t.csv", rows))
    rows = [[str(i), "12,5", "2", "4", "5", ""] for i in range(100)] + [["100", "1"] * 2 + ["3.5", "1"]]
    with pytest.raises(InputError, match=r"t\.csv: line 2, column 'x_nm' holds '12,5' and line 102, column 'photons' "
                                         r"holds '3\.5': decimal commas and decimal points in one file"):
        read_csv(_write(tmp_path / "t.csv", rows))
    rows = [[str(i), "12,5", "2", "4", "5", ""] for i in range(100)] + [["100", "abc", "2", "3", "4", "5"]]
    with pytest.raises(InputError, match=r"t\.csv: line 102, column 'x_nm': value 'abc' is not a number$"):
        read_csv(_write(tmp_path / "t.csv", rows))


@pytest.mark.parametrize("sep", [";", "\t"])
def test_mixed_decimal_marks_on_one_line_are_named_in_file_order(tmp_path, sep):
    """Was: the two columns sorted by name ('photons' before 'x_nm'), not as they stand on the line."""
    p = _write(tmp_path / "t.csv", [["0", "1.5", "2", "3", "4,5", "1"]], sep=sep)
    with pytest.raises(InputError, match=r"t\.csv: line 2, column 'x_nm' holds '1\.5' and line 2, column 'photons' "
                                         r"holds '4,5': decimal commas and decimal points in one file"):
        read_csv(p)
    p = _write(tmp_path / "t.csv", [["0", "2", "1,5", "3", "4.5", "1"]], sep=sep)
    with pytest.raises(InputError, match=r"line 2, column 'y_nm' holds '1,5' and line 2, column 'photons' holds "
                                         r"'4\.5'"):
        read_csv(p)


def _outcome(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CsvDialectWarning)
        try:
            t = read_csv(path)
        except InputError as err:
            return str(err)
    return [[None if v != v else v for v in t[c].tolist()] for c in t.columns]  # NaN == NaN here


def test_translated_and_line_readers_agree_on_tab_files(tmp_path, monkeypatch):
    """Random tab files of values that may or may not be thousands separators, quoted, blank-padded, missing: the
    translated path gives what the line-by-line reader gives (values, or the same refusal)."""
    could_be_thousands = ["1,234", "-12,345", '"1,234"', " 1,234 ", '" 9,876 "', "+1,000"]
    tells = ["12,5", ",5", "5,", "1,2e3", "1234,567", "1,0000", '" 3,25"']
    plain, missing, bad = ["7", "-3", "1e3"], ["nan", ""], ["1,234,567", "12.5", "1.234,5", "abc"]
    rng = random.Random(44)
    monkeypatch.setattr(tables, "_TEXT_CHUNK", 300)
    slow = tables._read_translated

    def irregular(*args, **kwargs):
        raise tables._Irregular

    fast_taken = 0
    for k in range(150):
        values = could_be_thousands + plain + (tells if k % 2 else [])  # half the files tell decimal commas
        rows = [[str(i)] + [rng.choice(values) for _ in range(4)] + [rng.choice(values + missing)]  # NaN: optional
                for i in range(rng.randint(1, 30))]
        if k % 5 == 0:  # a fifth of them with a malformed value or a decimal point somewhere
            rows[rng.randrange(len(rows))][rng.randrange(1, 6)] = rng.choice(bad)
        p = _write(tmp_path / f"t{k}.csv", rows)
        fast = _outcome(p)
        monkeypatch.setattr(tables, "_read_translated", irregular)
        assert _outcome(p) == fast, rows
        monkeypatch.setattr(tables, "_read_translated", slow)
        if not isinstance(fast, str):
            fast_taken += 1
    assert 40 < fast_taken < 140  # some files read, some refused


def test_not_thousands_finds_the_first_decimal_comma():
    assert not tables._not_thousands("0\t1,234\t\"12,345\"\t 3 \n1\t-1,000,000\t5\n")
    for value in ("12,5", ",5", "1234,5", "1,2345", "1,234e3", '"12,5"', " 1,5 "):
        assert tables._not_thousands(f"0\t1,234\t{value}\n"), value


def test_not_thousands_agrees_with_value_by_value_on_random_text():
    """The regular expression finds every value a value-by-value look finds (random values of digits, signs, commas,
    points, blanks, quotes and letters)."""
    rng = random.Random(4)

    def by_value(text):
        values = [v.strip().strip('"').strip() for line in text.split("\n") for v in line.split("\t")]
        return any("," in v and not tables._THOUSANDS.match(v) for v in values)

    def value():
        if rng.random() < 0.3:  # any characters
            return "".join(rng.choice('0123456789,,,,+- ".e') for _ in range(rng.randint(0, 9)))
        groups = [str(rng.randint(0, 999))[: rng.randint(1, 3)]] + [
            "".join(rng.choice("0123456789") for _ in range(3 if rng.random() < 0.9 else rng.randint(0, 4)))
            for _ in range(rng.randint(0, 3))]
        v = rng.choice(["", "", "+", "-", "x", "--"]) + ",".join(groups)  # thousands-like, or nearly
        return rng.choice(["", " ", '"', ' "']) + v + rng.choice(["", " ", '"', "e3", ",", "5"])

    found = 0
    for _ in range(20000):
        values = [value() for _ in range(rng.randint(1, 3))]
        text = "\t".join(values) + "\n" if rng.random() < 0.8 else "\t".join(values)
        assert tables._not_thousands(text) == by_value(text), text
        found += by_value(text)
    assert 2000 < found < 18000, found  # texts that tell, and texts that do not
    assert not tables._not_thousands("".join(f"{i}\t{i % 1000},{i % 997:03d}\t-12,345,678\t+1,000\n" for i in range(999)))
