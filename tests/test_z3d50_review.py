"""Session 50, review of helper z3d's 3D walk: de-biasing's z slabs with rows of NaN z, plexloc evaluate's z-scores
per z slab (issue 10)."""

import numpy as np

from test_z3d50 import table_3d

from plexloc.post.debias import debias
from plexloc.table import LocTable

PX = 100.0


def test_debias_a_row_of_nan_z_does_not_move_the_other_rows_slabs():
    """The slabs started at the smallest z with NaN counted as 0: one row of unknown z in a table over z 125..625 nm
    moved every slab's edges by 25 nm and changed the de-biased positions of all the other rows (by up to 5.7 nm
    here). They start at the smallest finite z now: the other rows come out as without that row."""
    _, _, t = table_3d(n=6000, seed=3)
    t = t.with_columns(z_nm=np.asarray(t["z_nm"], float) * 0.5 + 375.0)  # 125..625 nm
    one = LocTable({c: np.asarray(t[c])[:1] for c in t.columns})
    one = one.with_columns(z_nm=np.array([np.nan]))
    both = LocTable({c: np.concatenate([np.asarray(t[c]), np.asarray(one[c])]) for c in t.columns})
    alone, _ = debias(t, PX)
    with_nan, rep = debias(both, PX)
    assert rep.n == 6001
    np.testing.assert_allclose(np.asarray(with_nan["x_nm"])[:-1], np.asarray(alone["x_nm"]), atol=1e-9)
    np.testing.assert_allclose(np.asarray(with_nan["y_nm"])[:-1], np.asarray(alone["y_nm"]), atol=1e-9)
    # the row of NaN z is in a slab of its own here (z = 0 is below the table's range): too small, left as it was
    assert rep.n_skipped >= 1 and np.asarray(with_nan["x_nm"])[-1] == np.asarray(one["x_nm"])[0]
