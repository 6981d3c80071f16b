"""Review of session 39's z drift: a 3D table whose time windows have no pairs of localizations within 50 nm
laterally in other windows (each molecule seen once) was an InputError for the whole drift, x and y included; now the
z drift is 0 with an UnreliableDriftWarning, the lateral estimate kept."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from plexloc.cli.main import main
from plexloc.io.tables import read_table, write_table
from plexloc.post.drift import UnreliableDriftWarning, rcc_drift
from plexloc.table import LocTable


def _once_each(n_mol: int = 400) -> LocTable:
    """One localization per molecule, molecules on a 1 um grid, one every 10 frames: no molecule in two windows."""
    rng = np.random.default_rng(0)
    g = np.arange(n_mol)
    n = n_mol
    return LocTable({
        "frame": g * 10, "x_nm": (g % 20) * 1000.0 + 500 + rng.normal(0, 9, n),
        "y_nm": (g // 20) * 1000.0 + 500 + rng.normal(0, 9, n), "z_nm": rng.uniform(-300, 300, n),
        "photons": np.full(n, 1000.0), "sigma_x_nm": np.full(n, 9.0), "sigma_y_nm": np.full(n, 9.0)})


def test_z_without_pairs_is_left_uncorrected_with_a_warning_not_an_error():
    t = _once_each()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rcc_drift(t, n_segments=10)  # InputError 'z drift: the localizations of 0 of 10 time windows ...'
    msgs = [str(w.message) for w in caught if issubclass(w.category, UnreliableDriftWarning)]
    assert any("no z drift" in m and "0 of 10 time windows" in m for m in msgs)
    assert res.info["z_unreliable"] and "z_uncertainty_nm" not in res.info
    assert np.all(res.drift_nm[:, 2] == 0.0) and np.all(res.segment_drift_nm[:, 2] == 0.0)
    assert np.isfinite(res.drift_nm).all()


def test_cli_writes_the_table_when_z_has_no_pairs(tmp_path, capsys):
    write_table(_once_each(), tmp_path / "locs.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the lateral estimate warns too: printed, as for a user
        assert main(["drift", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "out.csv"), "--engine", "rcc"]) == 0
    cap = capsys.readouterr()
    assert "z not known (NOT RELIABLE" in cap.out and "nan" not in cap.out
    assert "no z drift" in cap.err
    assert np.all(read_table(tmp_path / "out.csv")["drift_z_nm"] == 0.0)


def test_simulated_stage_drift_must_be_finite():
    """emitters.drift with a NaN or inf (YAML .nan, .inf) was accepted and failed inside the camera ('invalid Poisson
    rate, expected rate to be non-negative'); now the configuration is refused naming the field."""
    from test_simulate_drift39 import _config

    for bad in ({"linear_nm": [float("nan"), 0.0, 0.0]}, {"linear_nm": [0.0, float("inf"), 0.0]},
                {"wobble_nm": [float("inf"), 0.0, 0.0]}, {"wobble_cycles": float("inf")}):
        with pytest.raises(ValueError, match="drift"):
            _config(bad)
    assert _config({"linear_nm": [10.0, -5.0, 0.0], "wobble_nm": [3.0, 0.0, 0.0]}).emitters.drift.active
