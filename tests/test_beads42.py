"""The bead calibration's pair-shape check: a double bead too close for the two-spot fit (``second bead in window``)
widens the bead along the pair's axis in every slice; ``calibrate_spline`` rejects it as ``outlier shape`` with
where it is and what was measured, and keeps clean sets of single beads whole."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.calibrate import beads as B
from plexloc.calibrate import calibrate_spline
from plexloc.calibrate.synthetic import bead_field

PX = 100.0
DZ = 50.0
ZS = np.arange(-800.0, 801.0, DZ)
BG = 20.0


def _grid(n: int, seed: int) -> np.ndarray:
    """n bead positions (nm) on a 3-column grid 20 px apart, random sub-pixel offsets."""
    rng = np.random.default_rng(seed)
    g = np.array([((15 + 20 * (i % 3)) * PX, (15 + 20 * (i // 3)) * PX) for i in range(n)])
    return g + rng.uniform(-50, 50, g.shape)


def _stack(n: int, *, model="gauss", pairs=(), sep_px=1.5, ratio=1.0, photons=2e4, seed=0, emccd=False):
    """Bead stack (photons) of n beads, those in ``pairs`` (index: angle deg) replaced by two beads ``sep_px`` apart
    (the second ``ratio`` times as bright), and the (row, col) pixel of each bead."""
    xy = _grid(n, seed)
    em = []
    for i, (x, y) in enumerate(xy):
        if i in dict(pairs):
            a, h = np.radians(dict(pairs)[i]), sep_px * PX / 2
            em += [(x - h * np.cos(a), y - h * np.sin(a), photons), (x + h * np.cos(a), y + h * np.sin(a), photons * ratio)]
        else:
            em.append((x, y, photons))
    rows = 20 * ((n + 2) // 3) + 10
    mu = bead_field(model, em, ZS, (rows, 70)) + BG
    rng = np.random.default_rng(100 + seed)
    counts = rng.poisson(mu).astype(np.float64)
    if emccd:  # excess noise: twice the variance
        counts = np.where(counts > 0, rng.gamma(np.maximum(counts, 1e-9), 1.0), 0.0)
    return counts, np.floor(xy[:, ::-1] / PX).astype(int)


def _reasons(res, rc):
    sel = res.selections[0]
    out = []
    for r, c in rc:
        i = int(np.argmin(np.hypot(sel.rows - r, sel.cols - c)))
        out.append(str(sel.reason[i]))
    return out


@pytest.fixture(scope="module")
def six_with_a_pair():
    """Six bright Gaussian beads, bead 4 two equal beads 1.5 px apart along y: the two-spot fit misses it (it fits
    pairs from 2 px on), and so did the registration residual (3 x the median) and the width check."""
    st, rc = _stack(6, pairs={4: 90.0})
    return calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15), rc


def test_a_close_pair_is_rejected_as_outlier_shape_with_where_and_what(six_with_a_pair):
    res, rc = six_with_a_pair
    assert _reasons(res, rc) == ["", "", "", "", "outlier shape", ""]
    assert res.summary["n_beads_used"] == [5]
    sel = res.selections[0]
    i = int(np.flatnonzero(sel.reason == "outlier shape")[0])
    text = B.describe_rejections(sel)
    assert f"outlier shape: bead at pixel (row, col) ({sel.rows[i]}, {sel.cols[i]}): anisotropic excess width" in text
    m = __import__("re").search(r"excess width (\d\.\d\d) px\^2 .*?: (\d+) sigma\), along ([+-]\d+) deg", text)
    width, sigmas, angle = float(m.group(1)), int(m.group(2)), int(m.group(3))
    assert 0.45 < width < 0.95 and sigmas >= 20  # a 1:1 pair 1.5 px apart: s^2 / 4 = 0.56 px^2
    assert 80 <= abs(angle) <= 90  # along y
    (entry,) = [b for b in res.summary["rejected_beads"][0] if b["reason"] == "outlier shape"]
    assert "anisotropic excess width" in entry["detail"]


def test_pair_shape_measures_the_pair_and_not_the_singles(six_with_a_pair):
    """On the used beads plus the pair, registered as calibrate_spline does: |v| ~ s^2 w (1 - w), its axis the
    pair's; single beads within a few standard errors of 0."""
    from plexloc.calibrate.spline import _bead_background, _register_all

    _, rc = six_with_a_pair
    for sep, ratio, angle in ((1.5, 1.0, 0.0), (1.5, 0.5, 45.0), (1.0, 1.0, 90.0)):
        st, _ = _stack(6, pairs={2: angle}, sep_px=sep, ratio=ratio, seed=3)
        rois = B.extract_rois(st, rc[:, 0], rc[:, 1], 15)
        bg = _bead_background(rois)
        sub = rois - bg[:, None, None, None]
        scale = np.clip(sub, 0, None).max(axis=(1, 2, 3))
        clean = sub / scale[:, None, None, None]
        shifts, _ = _register_all(clean, z_shifts=None)
        v, se = B.pair_shape(clean, shifts, bg, scale, 1.0)
        size = np.hypot(v[:, 0], v[:, 1])
        w = ratio / (1 + ratio)
        expect = sep**2 * w * (1 - w)
        assert expect * 0.9 < size[2] < expect * 1.5, (sep, ratio, size)
        assert abs(((np.degrees(0.5 * np.arctan2(v[2, 1], v[2, 0])) - angle + 90) % 180) - 90) < 10
        singles = np.delete(np.arange(6), 2)
        # each single's mean of the others holds the pair (1 in 5): they share its widening / 5, the median's
        dev = np.hypot(*(v[singles] - np.median(v, axis=0)).T)
        assert np.all(dev < 5 * se[singles] + 0.03), (v, se)
        bad, details = B.pair_shape_outliers(v, se)
        assert list(bad) == [False, False, sep > 1.2, False, False, False]


@pytest.mark.parametrize("model, photons, emccd, seed", [
    ("gauss", 2e4, False, 11), ("gauss", 3e3, True, 12), ("pupil", 1e5, False, 13), ("pupil", 1.5e4, True, 14)])
def test_clean_single_beads_are_all_kept(model, photons, emccd, seed):
    st, rc = _stack(6, model=model, photons=photons, emccd=emccd, seed=seed)
    res = calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [6], B.describe_rejections(res.selections[0])


def test_too_few_beads_left_is_said():
    """Five beads, two of them close pairs: three left, and the calibration says so (where the pairs were, what was
    measured, and that three beads are too few)."""
    st, rc = _stack(5, pairs={0: 0.0, 3: 135.0}, sep_px=1.5, seed=5)
    res = calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [3]
    assert _reasons(res, rc) == ["outlier shape", "", "", "outlier shape", ""]
    (note,) = [w for w in res.summary["warnings"] if w.startswith("only 3 bead(s) left")]
    assert "after 2 were rejected as outlier shape" in note and "anisotropic excess width" in note
    assert "take a stack with more single beads" in note


def test_four_beads_are_not_checked_and_a_registration_outlier_names_its_residual():
    """Below five beads the pair check does not run (the others' spread is not known); the registration residual's
    rejection now says what it measured."""
    st, rc = _stack(4, pairs={1: 0.0}, sep_px=1.5, seed=7)
    res = calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX, roi_px=15)
    assert res.summary["n_beads_used"] == [4]
    sel = B.BeadSelection(rows=np.array([3, 9]), cols=np.array([4, 9]), peaks=np.ones(2),
                          reason=np.array(["outlier shape", ""], dtype="U40"), background=0.0,
                          detail={0: "registration residual 0.300 of the average's norm > 0.150 (3 x the beads' median)"})
    assert "outlier shape: bead at pixel (row, col) (3, 4): registration residual 0.300" in B.describe_rejections(sel)
