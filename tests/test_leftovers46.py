"""Guards for constants that session 46 copied rather than imported (to keep torch out of a module's import)."""


def test_drift_z_bound_bit_is_the_fitters():
    # post/drift.py keeps its own copy of the MLE fit's z bit so that it does not import torch; the two must agree,
    # or rows on the fit's z bound would stay in the z pairs (or rows on the photons bound be dropped from them)
    from plexloc.mle.fit import AT_BOUND_BITS
    from plexloc.post.drift import Z_AT_BOUND_BIT

    assert Z_AT_BOUND_BIT == AT_BOUND_BITS["z"] == 2
