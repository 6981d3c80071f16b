"""Session 45: ``plexloc simulate --beads`` spreads the beads over the frame's allowed area instead of piling them on its
bounds.

Where random sequential addition jammed (9 beads of a 64 x 64 px frame, whose capacity is 16, for 17 of 20 seeds) the
beads were put on a grid whose end cells sat on the bounds and whose jitter was clipped onto them: 67 % of the beads
lay exactly on the bound (half a window plus a pixel from the frame's edge). The grid's cells now hold their beads
inside the area with room on every side (:func:`plexloc.calibrate.synthetic._grid_positions`)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

from plexloc.calibrate.synthetic import _bead_span_px, bead_positions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROI = 15
D = ROI + 1  # beads are this far apart in x or y (calibrate's windows do not overlap)


def _bounds(shape, margins=(0.0, 0.0, 0.0, 0.0)):
    left, right, top, bottom = margins
    return _bead_span_px(shape[1], ROI, left, right), _bead_span_px(shape[0], ROI, top, bottom)


def _spread(xy_px: np.ndarray, bounds) -> tuple[float, float]:
    """(distance of the bead nearest a bound, px; smallest Chebyshev distance between two beads, px)."""
    (xlo, xhi), (ylo, yhi) = bounds
    edge = min((xy_px[:, 0] - xlo).min(), (xhi - xy_px[:, 0]).min(), (xy_px[:, 1] - ylo).min(),
               (yhi - xy_px[:, 1]).min())
    d = np.max(np.abs(xy_px[:, None] - xy_px[None]), axis=2) + np.eye(len(xy_px)) * 1e9
    return float(edge), float(d.min())


@pytest.mark.parametrize(("n", "shape", "margins"), [
    (7, (64, 64), (0.0, 0.0, 0.0, 0.0)),
    (9, (64, 64), (0.0, 0.0, 0.0, 0.0)),  # jammed for 17 of 20 seeds: 67 % of the beads on the bound
    (9, (64, 64), (0.0, 3.5, 0.0, 2.0)),  # another channel's shift narrows the area
    (12, (64, 80), (0.0, 0.0, 0.0, 0.0)),
])
def test_no_bead_sits_on_the_bound_and_the_windows_stay_apart(n, shape, margins):
    bounds = _bounds(shape, margins)
    edges = []
    for seed in range(20):
        xy = bead_positions(n, shape, px_size_nm=(100.0, 100.0), roi_px=ROI, seed=seed, margins_px=margins) / 100.0
        assert xy.shape == (n, 2)
        edge, apart = _spread(xy, bounds)
        assert edge > 1e-6, (seed, edge)  # on the bound: 0 (the old grid clipped half its end cells' jitter there)
        assert apart >= D - 1e-9, (seed, apart)
        edges.append(edge)
    # spread, not pushed inwards either: the bead nearest a bound is within a few px of it in most fields
    assert np.median(edges) < 3.0


def test_the_beads_spread_over_the_area_and_change_with_the_seed():
    bounds = _bounds((64, 64))
    (xlo, xhi), (ylo, yhi) = bounds
    fields = [bead_positions(9, (64, 64), px_size_nm=(1.0, 1.0), roi_px=ROI, seed=s) for s in range(20)]
    for xy in fields:  # 9 beads 16 px apart cover the 48 px span both ways
        assert np.ptp(xy[:, 0]) >= 2 * D - 1e-9 and np.ptp(xy[:, 1]) >= 2 * D - 1e-9
    allxy = np.concatenate(fields)
    assert len(np.unique(np.round(allxy, 6), axis=0)) == len(allxy)  # no position repeated (no pile on one value)
    # the share of beads within 1 px of a bound: 0.68 before (all of them on it), about a uniform bead's now
    (xlo, xhi), (ylo, yhi) = bounds
    near = np.minimum.reduce([allxy[:, 0] - xlo, xhi - allxy[:, 0], allxy[:, 1] - ylo, yhi - allxy[:, 1]]) < 1.0
    assert near.mean() < 0.35


def test_a_field_packed_to_capacity_still_places_every_bead():
    """16 beads of a 64 x 64 px frame fill its grid exactly: the outer ones lie on the bound, as they must."""
    xy = bead_positions(16, (64, 64), px_size_nm=(1.0, 1.0), roi_px=ROI, seed=0)
    assert _spread(xy, _bounds((64, 64)))[1] >= D - 1e-9
    assert sorted(set(np.round(xy[:, 0], 9))) == [8.0, 24.0, 40.0, 56.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_plexloc_simulate_beads_writes_beads_off_the_bound(tmp_path, seed):
    from plexloc.cli.main import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the camera defaults note of the example, if any)
        assert main(["simulate", str(EXAMPLES / "3d_astigmatic.yaml"), "--beads", "9", "--z-step", "200", "--z-range",
                     "-400", "400", "--out", str(tmp_path), "--seed", str(seed)]) == 0
    with open(tmp_path / "beads_truth.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["frame"] == "0"]
    xy = np.array([[float(r["x_nm"]), float(r["y_nm"])] for r in rows]) / 100.0  # px of 100 nm
    assert len(xy) == 9
    edge, apart = _spread(xy, _bounds((64, 64)))
    assert edge > 1e-6 and apart >= D - 1e-6
