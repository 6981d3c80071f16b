"""Review of the day's changes (c2ae2ab..): evaluate's gridding verdict (f728163)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io import write_table
from plexloc.table import LocTable


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_gridding_noise_is_measured_on_the_matched_predictions(tmp_path, capsys, seed):
    """gridding_dev_x/y are taken over the matched predictions, the noise level it was judged against over all of
    them: with fewer matched than predicted (600 of 4,000 uniform positions here: no gridding at all), the matched
    rows' histograms are noisier than the level, and evaluate said 'above counting noise' (seeds 1 and 3: 0.17 / 0.23
    and 0.18 / 0.22 against 0.15; seed 0 is at the edge)."""
    rng = np.random.default_rng(seed)
    n, m = 4000, 600
    x, y, fr = rng.uniform(0, 6400, n), rng.uniform(0, 6400, n), np.arange(n) // 40
    pred = LocTable({"frame": fr, "x_nm": x, "y_nm": y, "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    k = rng.choice(n, m, replace=False)
    truth = LocTable({"frame": fr[k], "x_nm": x[k] + rng.normal(0, 5, m), "y_nm": y[k] + rng.normal(0, 5, m),
                      "z_nm": np.zeros(m), "photons": np.full(m, 1e3)})
    write_table(pred, tmp_path / "p.csv")
    write_table(truth, tmp_path / "t.csv")
    assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "p.csv"), "--px-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "gridding: within counting noise" in out, out
