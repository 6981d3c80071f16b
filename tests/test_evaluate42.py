"""plexloc evaluate says why it gives no colour scores when one table has colours, and the CRLB of a truth table
without a background names the table (a KeyError before)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.evaluate.uncertainty import table_crlb
from plexloc.io.tables import write_table
from plexloc.psf import GaussianPSF
from plexloc.camera import EMCCD
from plexloc.table import LocTable


def _table(**extra) -> LocTable:
    n = 20
    return LocTable({"frame": np.arange(n), "x_nm": np.linspace(100, 2000, n), "y_nm": np.linspace(100, 2000, n),
                     "z_nm": np.zeros(n), "photons": np.full(n, 2000.0), **extra})


def test_colour_scores_left_out_are_named(tmp_path, capsys):
    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    write_table(_table(color=np.zeros(20, dtype=np.int64)), truth)
    write_table(_table(), pred)
    assert main(["evaluate", str(truth), str(pred)]) == 0
    err = capsys.readouterr().err
    assert f"no colour scores: {truth} has a 'color' column but {pred} has none" in err
    write_table(_table(color=np.zeros(20, dtype=np.int64)), pred)
    assert main(["evaluate", str(truth), str(pred)]) == 0
    assert "no colour scores" not in capsys.readouterr().err


def test_the_crlb_of_a_table_without_background_names_it(tmp_path):
    path = tmp_path / "truth.csv"
    write_table(_table(), path)
    from plexloc.io.tables import read_table

    t = read_table(path)
    with pytest.raises(InputError, match="no 'bg' column") as err:
        table_crlb(t, [(GaussianPSF(), EMCCD())])
    assert str(path) in str(err.value)
    got = table_crlb(t, [(GaussianPSF(), EMCCD())], bg=np.full(20, 10.0))
    assert np.all(np.isfinite(got["crlb_x_nm"])) and got["crlb_x_nm"][0] > 0
