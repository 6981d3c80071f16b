"""Review of session 51's register helper: the note that ``plexloc register``'s transform (in the tables' own
coordinates) is more than a shift (give --roi-offset) is given for the fitted linear part, not only for one the pairs
measure: a configuration applies the fitted transform, and a linear part made by the pairs' noise alone puts every
position ``(L - I) O`` off at an ROI ``O`` from the chip's corner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_register51 import _table, _write_pair

from plexloc.cli.main import main
from plexloc.post.registration import register_channels


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


def _bead_tables(n_beads, frames, noise1, seed):
    """Beads (or fiducials) seen in every frame in both channels, 1 degree and 1.01 (tests/test_multi50.py chip_T) at
    chip pixel (300, 200) on a 64-px field; channel 0 with 10 nm noise, channel 1 with ``noise1``."""
    from test_multi50 import PX, chip_T

    T = chip_T()
    rng = np.random.default_rng(seed)
    beads = rng.uniform(300.0, 64 * PX - 300.0, (n_beads, 2))
    o = np.array([300.0, 200.0]) * PX
    xy1 = (np.column_stack([beads + o, np.ones(n_beads)]) @ T.T)[:, :2] - o
    f = np.repeat(np.arange(frames), n_beads)
    a = np.tile(beads, (frames, 1)) + rng.normal(size=(frames * n_beads, 2)) * 10.0
    b = np.tile(xy1, (frames, 1)) + rng.normal(size=(frames * n_beads, 2)) * noise1
    return _table(a, f), _table(b, f)


def test_beads_seen_in_every_frame_are_not_chance_pairs():
    """30 beads in each of 20 frames (30 nm noise in channel 1): no chance pair at all, and the least-squares standard
    error is honest (one layout, 60 noise seeds: 7.9 nm rms error at the worst corner against 8.0). The frame-moved
    matching found each bead again in the moved frame and read the chance share's cap, 0.5: the uncertainty doubled
    (here 5.3 -> 10.4 nm) and was warned above 10 nm. Now the same bead found again is not counted."""
    from plexloc.post.registration import transform_uncertainty

    a, b = _bead_tables(30, 20, 30.0, seed=3)
    r = register_channels(a, b)
    assert r.chance_share < 0.05
    i, j = np.arange(len(a)), np.arange(len(b))  # row k of each table is the same bead in the same frame
    xy_a = np.column_stack([a["x_nm"], a["y_nm"]])
    res = np.hypot(*(xy_a @ r.transform[:2, :2].T + r.transform[:2, 2] - np.column_stack([b["x_nm"], b["y_nm"]])).T)
    extent = np.array([xy_a.min(axis=0), xy_a.max(axis=0)])
    se = transform_uncertainty(xy_a[i], res[j], extent)
    assert r.uncertainty_nm == pytest.approx(se, rel=0.1)
    assert r.warning is None
