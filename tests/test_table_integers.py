"""Counts and indices are int64 in tables and files: merge's n_merged and frame_last were stored as floats."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.io.tables import read_table, write_table
from plexloc.post.merge import merge_localizations
from plexloc.table import LocTable


def blinks() -> LocTable:
    """One molecule on in frames 0-1, another in frame 5."""
    return LocTable({"frame": np.array([0, 1, 5]), "x_nm": np.array([10.0, 12.0, 500.0]),
                     "y_nm": np.array([10.0, 11.0, 300.0]), "z_nm": np.zeros(3),
                     "photons": np.array([1000.0, 1000.0, 900.0]),
                     "sigma_x_nm": np.full(3, 10.0), "sigma_y_nm": np.full(3, 10.0)})


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_merged_counts_stay_integers_through_a_file(tmp_path, suffix):
    merged = merge_localizations(blinks(), radius_nm=50.0, gap=1)
    assert merged["n_merged"].dtype == np.int64 and merged["frame_last"].dtype == np.int64
    assert merged["n_merged"].tolist() == [2, 1] and merged["frame_last"].tolist() == [1, 5]
    path = tmp_path / f"merged{suffix}"
    write_table(merged, path)
    back = read_table(path)
    assert back["n_merged"].dtype == np.int64 and back["frame_last"].dtype == np.int64
    assert back["n_merged"].tolist() == [2, 1] and back["frame_last"].tolist() == [1, 5]
    if suffix == ".csv":
        assert path.read_text().splitlines()[1].endswith(",2,1")  # not "2.0,1.0"
    again = merge_localizations(back, radius_nm=50.0, gap=1)  # merging a merged table adds the counts
    assert again["n_merged"].dtype == np.int64 and again["n_merged"].tolist() == [2, 1]


def test_a_fractional_count_is_refused_by_name():
    cols = {k: blinks()[k] for k in blinks().columns}
    cols["n_merged"] = np.array([1.0, 2.5, 1.0])
    with pytest.raises(InputError, match=r"n_merged.*2\.5"):
        LocTable(cols)


@pytest.mark.parametrize("name", ["t.csv", "t.h5", "t.thunderstorm.csv", "t.smlm", "t.hdf5"])
def test_a_table_no_reader_would_take_back_is_not_written(tmp_path, name):
    """NaN in a required column: every reader refuses it, so the writers refuse it first, naming the column and row,
    and leave no file (a file was written that could not be read back)."""
    from plexloc.io.formats import write_locs

    cols = {k: blinks()[k] for k in blinks().columns}
    cols["z_nm"] = np.array([0.0, np.nan, 0.0])
    table = LocTable(cols)
    with pytest.raises(InputError, match=r"not written: column 'z_nm' has 1 non-finite value\(s\), first at row 1"):
        write_locs(table, tmp_path / name, px_size_nm=100.0)
    assert list(tmp_path.iterdir()) == []


def test_the_streamed_writer_refuses_a_non_finite_part(tmp_path):
    from plexloc.io.tables import TableWriter

    cols = {k: blinks()[k] for k in blinks().columns}
    cols["x_nm"] = np.array([0.0, 1.0, np.inf])
    with pytest.raises(InputError, match="x_nm"):
        with TableWriter(tmp_path / "t.csv") as w:
            w.append(blinks())
            w.append(LocTable(cols))
    assert not (tmp_path / "t.csv").exists()


def test_a_thunderstorm_file_given_to_the_plexloc_csv_reader_is_pointed_to_read_locs(tmp_path):
    """The hint for ThunderSTORM columns asked to rename l.thunderstorm.csv to l.thunderstorm.thunderstorm.csv."""
    from plexloc.io.tables import read_table

    path = tmp_path / "l.thunderstorm.csv"
    path.write_text('"frame","x [nm]","y [nm]","intensity [photon]"\n1,100,200,1000\n')
    with pytest.raises(InputError, match="read_locs") as err:
        read_table(path)
    assert "thunderstorm.thunderstorm" not in str(err.value)
    plain = tmp_path / "l.csv"
    plain.write_text(path.read_text())
    with pytest.raises(InputError, match=r"name the file l\.thunderstorm\.csv"):
        read_table(plain)
