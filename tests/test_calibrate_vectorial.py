"""The bar: beads rendered with an independent vectorial PSF (psfmodels, biplane, EMCCD) are calibrated, and
held-out beads fitted with the calibrated splines recover z, x, y and the channel transform."""

from __future__ import annotations

import pytest

pytest.importorskip("psfmodels")

from plexloc.calibrate.synthetic import biplane_accuracy  # noqa: E402


def test_biplane_vectorial_beads_meet_the_bar():
    r = biplane_accuracy(n_beads=6, n_test_beads=6, z_half_range_nm=800.0, roi_px=13, seed=0)
    assert r["n_beads_used"] == [6, 6]
    assert abs(r["z_bias_nm"]) < 10.0
    assert r["z_rmse_nm"] < 15.0
    assert abs(r["x_bias_nm"]) < 3.0 and abs(r["y_bias_nm"]) < 3.0
    assert r["transform_residual_max_nm"] < 10.0
    # the second plane's focus is recovered (500 nm plane offset, 50 nm slices)
    assert abs(r["focus_offset_nm"] - 500.0) < 25.0
