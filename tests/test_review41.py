"""Session 41's review: defects found in the day's changes, one test each."""

from __future__ import annotations

import numpy as np

from plexloc.table import LocTable


def test_merging_ors_the_at_bound_bits_of_a_molecule():
    """at_bound is a sum of bits (plexloc.mle.fit.AT_BOUND_BITS): a merged event holds the bits of its rows. Averaged
    (as before), rows with 0, 2 (z) and 8 (bg) gave 3.33, which names bounds (xy 1, z 2) no row hit."""
    from plexloc.mle.fit import AT_BOUND_BITS
    from plexloc.post.merge import merge_localizations

    t = LocTable({"frame": [0, 1, 2, 10], "x_nm": [100.0, 101.0, 100.5, 5000.0], "y_nm": [100.0, 100.0, 100.0, 5000.0],
                  "z_nm": [0.0] * 4, "photons": [1000.0] * 4, "crlb_x_nm": [5.0] * 4, "crlb_y_nm": [5.0] * 4,
                  "converged": [1.0, 0.0, 1.0, 1.0], "at_bound": [0.0, 2.0, 8.0, np.nan]})
    merged = merge_localizations(t)
    assert len(merged) == 2
    order = np.argsort(merged["frame"])
    assert np.asarray(merged["at_bound"])[order].tolist() == [AT_BOUND_BITS["z"] | AT_BOUND_BITS["bg"], 0]
