"""LocTable's integer columns refuse values beyond int64 instead of wrapping them."""

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.table import LocTable


def _cols(**extra):
    return {"frame": [0, 1], "x_nm": [0.0, 1.0], "y_nm": [0.0, 1.0], "z_nm": [0.0, 0.0], "photons": [1.0, 1.0],
            **extra}


@pytest.mark.parametrize("value", [1e19, -1e19, 2.0**63])
def test_float_beyond_int64_in_an_integer_column_is_refused(value):
    with pytest.raises(InputError, match=r"column 'id' holds .*beyond the 64-bit integer range"):
        LocTable(_cols(id=[1.0, value]))


def test_uint64_beyond_int64_is_refused_and_the_edges_kept():
    with pytest.raises(InputError, match="column 'color' holds 9223372036854775813"):
        LocTable(_cols(color=np.array([0, 2**63 + 5], dtype=np.uint64)))
    t = LocTable(_cols(id=np.array([0, 2**63 - 1], dtype=np.uint64)))
    assert t["id"][1] == 2**63 - 1
    assert LocTable(_cols(id=[-(2.0**63), 2.0**62]))["id"][0] == -(2**63)


def test_text_in_an_integer_column_is_refused():
    with pytest.raises(InputError, match="column 'frame' must hold integers, got dtype"):
        LocTable(_cols(frame=np.array(["a", "b"])))
