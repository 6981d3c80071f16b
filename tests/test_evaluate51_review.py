"""Session 51 review of helper evaluate: ``plexloc evaluate``'s z-scores line on a table whose z uncertainty column is
there but holds no finite value (an MLE table with every z held on its bound) said the column was missing."""

from __future__ import annotations

import numpy as np

from plexloc.cli.main import main
from plexloc.io import write_table
from test_evaluate51 import _tables


def test_cli_evaluate_names_an_uncertainty_column_without_a_finite_value(tmp_path, capsys):
    truth, mle, _, _ = _tables(n=300)
    write_table(truth, tmp_path / "truth.csv")
    write_table(mle.with_columns(crlb_z_nm=np.full(len(mle), np.nan)), tmp_path / "mle.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "mle.csv"), "--dim", "3"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("z-scores (error / predicted sigma"))
    assert "crlb_x_nm, 300 pairs" in line
    # it read "z - (no sigma_z_nm or crlb_z_nm)" although the file has crlb_z_nm
    assert "z - (crlb_z_nm without a finite value in any row)" in line and "no sigma_z_nm" not in line
