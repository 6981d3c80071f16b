"""Review of the day's changes (c2ae2ab..): CSV tables with missing values (e837f40/e52cdf3)."""

from __future__ import annotations

import pytest

from plexloc.errors import InputError
from plexloc.io import read_table


@pytest.mark.parametrize("body, said", [
    ("0,1,2,,100,,\n1,1,2,3,100,1,5\n", "line 2, column 'color': value '' is not a number (a missing value, which an "
                                        "integer column cannot hold)"),
    ("0,NA,2,,100,1,\n", "line 2, column 'x_nm': value 'NA' is not a number (a missing value, which a required "
                         "column cannot hold)"),
])
def test_a_missing_value_where_none_may_be_says_so(tmp_path, body, said):
    """Empty and NA cells read as NaN in optional float columns and z_nm since e837f40; in an integer column (R writes
    a missing colour as NA) or a required one the error said only "value '' is not a number", as for a typo, not that
    the column may not miss a value while the next one may."""
    path = tmp_path / "t.csv"
    path.write_text("frame,x_nm,y_nm,z_nm,photons,color,sigma_x_nm\n" + body)
    with pytest.raises(InputError) as err:
        read_table(path)
    assert said in str(err.value)
