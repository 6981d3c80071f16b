"""Scale review: what the commands that take whole tables or movies cost as the input grows (bench/scale_review.py).

Each test pins one cost that used to grow faster than the input, on an input small enough for seconds.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io.formats import write_locs
from plexloc.post.drift import comet_available, estimate_drift, estimate_pairs
from plexloc.post.synthetic import blinking_table, linear_drift, structure_points

needs_comet = pytest.mark.skipif(not comet_available(), reason="optional package comet-smlm not installed")


def _lines(n_mol: int = 2500, fov: float = 4000.0, n_frames: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = linear_drift(n_frames, (60.0, -40.0, 0.0))
    mol = structure_points("lines", n_mol, fov_nm=fov, rng=rng)
    return blinking_table(mol, n_frames=n_frames, rng=rng, drift_nm=truth, events_per_molecule=4), truth


def test_estimate_pairs_scales_a_sample_to_the_table():
    from scipy.spatial import cKDTree

    t, _ = _lines()
    xyz = np.column_stack([t["x_nm"], t["y_nm"], t["z_nm"]])
    exact = len(cKDTree(xyz).query_pairs(150.0, output_type="ndarray"))
    assert estimate_pairs(xyz, 150.0, sample=len(xyz)) == exact  # the whole table: exact
    est = estimate_pairs(xyz, 150.0, sample=3000)
    assert abs(est - exact) < 0.1 * exact, (est, exact)


@needs_comet
def test_comet_pairs_capped_before_they_are_found():
    """COMET pairs every two localizations within max_drift_nm: at a fixed field the pairs grow as the square of the
    table (16 million at 1e5 localizations of a 40 um field, 271 million and 6.5 GB at 1e6: about an hour on a 2-core
    CPU). Above max_pairs every window is sub-sampled, and the pairs COMET works on stay under the cap."""
    t, truth = _lines()
    xyz = np.column_stack([t["x_nm"], t["y_nm"], t["z_nm"]])
    full = estimate_pairs(xyz, 150.0)
    cap = 100_000
    assert full > 10 * cap
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the split-half check may find a sub-sampled estimate noisy
        res = estimate_drift(t, engine="comet", n_segments=6, max_drift_nm=150.0, backend="cpu", max_pairs=cap)
    assert time.perf_counter() - t0 < 60
    assert res.info["n_pairs"] <= 1.1 * cap, res.info
    assert res.info["pairs_estimated"] == pytest.approx(full, rel=0.1)
    assert 100 <= res.info["max_locs_per_segment"] < len(t) / 6
    err = res.at(np.arange(len(truth)))[:, :2] - truth[:, :2]
    err -= err.mean(axis=0)
    assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 10.0


@needs_comet
def test_drift_command_caps_comet_pairs_and_says_so(tmp_path, capsys, monkeypatch):
    import plexloc.post.drift as drift_module

    t, _ = _lines(n_mol=1500, fov=3000.0, n_frames=400)
    path = tmp_path / "locs.csv"
    write_locs(t, path)
    monkeypatch.setattr(drift_module, "COMET_MAX_PAIRS", 50_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["drift", str(path), "--out", str(tmp_path / "d.csv"), "--engine", "comet", "--segments", "4",
                     "--max-drift", "150", "--backend", "cpu", "--json", str(tmp_path / "d.json")]) == 0
    err = capsys.readouterr().err
    assert "sub-sampled at random" in err and "--max-pairs" in err
    import json

    info = json.loads((tmp_path / "d.json").read_text())
    assert info["n_pairs"] <= 55_000 and info["max_locs_per_segment"] > 0
