"""plexloc process subtracts a 3D table's x/y drift but keeps z where only the z curve is unreliable."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.post.drift import UnreliableDriftWarning
from plexloc.post.synthetic import blinking_table, structure_points, wobbly_drift
from plexloc.workflow import ProcessOptions, _drift, _drift_line


def _table(precision_z: float, seed: int = 2, z_drift: float = 0.0):
    # lines, x and y to 9 nm (a reliable lateral curve), no z drift (or a linear one of z_drift nm)
    rng = np.random.default_rng(seed)
    truth = wobbly_drift(3000, 70.0, rng=rng)
    truth[:, 2] = z_drift * np.linspace(0.0, 1.0, 3000)
    mol = structure_points("lines", 400, fov_nm=12000.0, rng=rng, z_range_nm=(-400.0, 400.0))
    return blinking_table(mol, n_frames=3000, rng=rng, drift_nm=truth, events_per_molecule=5, precision_nm=9.0,
                          precision_z_nm=precision_z)


def test_an_unreliable_z_curve_is_not_subtracted_but_x_and_y_are(tmp_path):
    t = _table(precision_z=800.0)  # z to 800 nm: its curve is noise
    with pytest.warns(UnreliableDriftWarning, match="z drift is known to about"):
        out, info = _drift(t, tmp_path, ProcessOptions(drift_segments=5), progress=False)
    assert info["state"] == "applied" and info["z_unreliable"] and info["z_subtracted"] is False
    # a z curve was found (noise), and not subtracted (session 46: not beyond its noise, so the engine's z curve is 0)
    assert info["z_significant"] is False and info["z_estimated_rms_nm"] > 10.0 and info["range_nm"][2] == 0.0
    np.testing.assert_array_equal(out["z_nm"], t["z_nm"])
    assert np.all(out["drift_z_nm"] == 0.0)
    assert np.abs(out["drift_x_nm"]).max() > 20.0  # the lateral drift (70 nm wobble) is subtracted
    np.testing.assert_allclose(out["x_nm"] + out["drift_x_nm"], t["x_nm"])
    assert "z was not subtracted" in _drift_line(info)


def test_a_reliable_z_curve_is_subtracted(tmp_path):
    t = _table(precision_z=40.0, z_drift=40.0)  # session 46: a drift-free table's z curve (noise) is no longer subtracted
    out, info = _drift(t, tmp_path, ProcessOptions(drift_segments=5), progress=False)
    assert info["state"] == "applied" and not info["z_unreliable"] and "z_subtracted" not in info
    np.testing.assert_allclose(out["z_nm"] + out["drift_z_nm"], t["z_nm"])
    assert np.abs(out["drift_z_nm"]).max() > 0.0
    assert "not subtracted" not in _drift_line(info)
