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
