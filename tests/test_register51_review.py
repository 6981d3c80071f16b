"""Review of session 51's register helper: the note that ``plexloc register``'s transform (in the tables' own
coordinates) is more than a shift (give --roi-offset) is given for the fitted linear part, not only for one the pairs
measure: a configuration applies the fitted transform, and a linear part made by the pairs' noise alone puts every
position ``(L - I) O`` off at an ROI ``O`` from the chip's corner."""

from __future__ import annotations

import json

import numpy as np
from test_register51 import _table, _write_pair

from plexloc.cli.main import main


def test_a_shift_fitted_from_noisy_pairs_keeps_the_note_with_the_error_it_makes(tmp_path, capsys):
    """A shift (50, 0) nm and 30 nm noise, 100 pairs over 6 um: the fitted linear part is about 2e-3 off the identity
    (noise), which the session-51 rule (corners moved by 3 standard errors) left silent. Read in chip coordinates with
    the movie's ROI at chip pixel (300, 200) (100 nm pixels) and no --roi-offset, every position is tens of nm off."""
    rng = np.random.default_rng(1)
    n = 100
    xy = rng.uniform(0, 6000.0, (n, 2))
    b = xy + (50.0, 0.0) + rng.normal(size=(n, 2)) * 30.0
    assert main(["register", *_write_pair(tmp_path, _table(xy, np.arange(n)), _table(b, np.arange(n)))]) == 0
    err = capsys.readouterr().err
    T = np.array(json.loads((tmp_path / "T.json").read_text())["transform"])
    d = T[:2, :2] - np.eye(2)
    assert np.hypot(*(d @ (30000.0, 20000.0))) > 20.0  # the error the note is about, for an ROI at (300, 200) px
    assert "tables' own coordinates" in err and "give --roi-offset X Y" in err
    assert f"up to {1e4 * np.linalg.norm(d, 2):.0f} nm for each 10 um" in err


def test_a_transform_within_the_threshold_of_the_identity_gets_no_note(tmp_path, capsys):
    """Exact shift, 1 nm noise over 100 pairs: the linear part is 1e-5 off the identity, no note."""
    rng = np.random.default_rng(2)
    n = 100
    xy = rng.uniform(0, 6000.0, (n, 2))
    b = xy + (50.0, 0.0) + rng.normal(size=(n, 2)) * 1.0
    assert main(["register", *_write_pair(tmp_path, _table(xy, np.arange(n)), _table(b, np.arange(n)))]) == 0
    assert "tables' own coordinates" not in capsys.readouterr().err
