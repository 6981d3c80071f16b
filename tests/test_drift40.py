"""Session 40: is RCC's ``uncertainty_nm`` calibrated on sparse tables, and does its ``unreliable`` flag keep good
corrections? Not yet: these tests encode the target and are strict xfails (they fail, as expected, on the code of
session 40; they XPASS, which strict turns into a failure, once the estimate is calibrated: then drop the marks).

Measured (``bench/drift_calibration40.py``; the tables of ``bench/drift_engines39.py``, 10 um field, 1,000 rows over
1,000 frames, about 80 molecules, 10 windows): RCC's reported / actual error 2.10, 1.53, 5.18 (lines, linear drift,
seeds 0-2) and 1.47, 6.15, 12.90 (uniform, wobble); the split-half test's halves (50 rows a window) lose the
cross-correlation peak at windows where the full table (100 a window) keeps it. Seed 2 of the uniform table: actual
error 1.7 nm against a drift of 27 nm rms, reported 21 nm and flagged unreliable (``plexloc process`` would leave
the table uncorrected). Spatial halves, a delete-a-quarter jackknife over tiles and a tile bootstrap were tried and
read as high (session 40's report).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, estimate_drift

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import drift_engines39 as e39  # noqa: E402

GAP = "session 40: RCC's split-half uncertainty over-reads on sparse tables (see the module docstring)"


def _run(structure: str, drift: str, seed: int):
    table, truth = e39.case_table(structure, drift, 1000, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableDriftWarning)
        res = estimate_drift(table, engine="rcc", max_drift_nm=300.0, n_segments=10)
    actual = drift_error_rms(res.drift_nm, truth[res.frames])
    none = drift_error_rms(np.zeros_like(res.drift_nm), truth[res.frames])
    return res, actual, none


@pytest.mark.xfail(strict=True, reason=GAP)
@pytest.mark.parametrize(("structure", "drift"), [("lines", "linear"), ("uniform", "wobble")])
def test_rcc_uncertainty_is_calibrated_on_sparse_tables(structure, drift):
    ratios = []
    for seed in range(3):
        res, actual, _ = _run(structure, drift, seed)
        ratios.append(res.info["uncertainty_nm"] / actual)
    ratios = np.array(ratios)
    assert np.all((ratios > 0.5) & (ratios < 2.0)), ratios
    assert 0.7 <= np.exp(np.mean(np.log(ratios))) <= 1.4, ratios


def test_the_sparse_tables_are_what_the_docstring_says():
    """The xfails above are about calibration, not a failed correction: the estimates are good."""
    res, actual, none = _run("uniform", "wobble", 2)
    assert actual < 3.0 and none > 20.0
    assert res.info["uncertainty_nm"] > 5 * actual  # the over-read (12.9x measured)


@pytest.mark.xfail(strict=True, reason=GAP)
def test_rcc_does_not_flag_a_good_sparse_correction():
    res, actual, none = _run("uniform", "wobble", 2)
    assert actual < 0.1 * none  # the correction helps: 1.7 nm left of 27 nm
    assert not res.info.get("unreliable", False)


def test_rcc_flags_a_correction_that_hurts():
    """Every localization a new molecule (nothing the windows share): the flag fires, as it must stay."""
    from plexloc.table import LocTable

    rng = np.random.default_rng(7)
    n = 1000
    noise = LocTable({"frame": np.sort(rng.integers(0, 1000, n)), "x_nm": rng.uniform(0, 10000, n),
                      "y_nm": rng.uniform(0, 10000, n), "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    with pytest.warns(UnreliableDriftWarning, match="not reliable"):
        res = estimate_drift(noise, engine="rcc", max_drift_nm=300.0, n_segments=10)
    assert res.info["unreliable"]
