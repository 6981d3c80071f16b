"""Frame-by-frame matching of predictions to ground truth (plexloc.evaluate.matching)."""

from __future__ import annotations

import doctest
import itertools
import time

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import plexloc.evaluate.matching as matching_module
from plexloc.errors import InputError
from plexloc.evaluate import Matching, match
from plexloc.table import LocTable
from conftest import make_table


_table = make_table


def _pairs(m: Matching) -> list[tuple[int, int]]:
    return list(zip(m.tp_truth.tolist(), m.tp_pred.tolist()))


def _cost(truth: LocTable, pred: LocTable, m: Matching, dim: int) -> float:
    d = pred.xyz_nm[m.tp_pred] - truth.xyz_nm[m.tp_truth]
    if dim == 2:
        d = d[:, :2]
    return float(np.linalg.norm(d, axis=1).sum())


def _check_partition(m: Matching, n_truth: int, n_pred: int) -> None:
    assert sorted(m.tp_truth.tolist() + m.fn.tolist()) == list(range(n_truth))
    assert sorted(m.tp_pred.tolist() + m.fp.tolist()) == list(range(n_pred))
    assert np.all(np.diff(m.tp_truth) > 0) and np.all(np.diff(m.fp) > 0) and np.all(np.diff(m.fn) > 0)
    for arr in (m.tp_truth, m.tp_pred, m.fp, m.fn):
        assert arr.dtype.kind == "i"


def _brute_force(cost: np.ndarray) -> tuple[int, float]:
    """(most pairs, least summed cost among those) over every partial assignment; inf = forbidden."""
    m, n = cost.shape
    best = (0, 0.0)
    for k in range(1, min(m, n) + 1):
        for rows in itertools.combinations(range(m), k):
            for cols in itertools.permutations(range(n), k):
                c = cost[list(rows), list(cols)]
                if np.all(np.isfinite(c)):
                    s = float(c.sum())
                    if k > best[0] or (k == best[0] and s < best[1]):
                        best = (k, s)
    return best


def _random_tables(rng, n_frames, max_per_frame, box, *, z_range=0.0):
    def one():
        counts = rng.integers(0, max_per_frame + 1, n_frames)
        f = np.repeat(np.arange(n_frames), counts)
        n = f.size
        return _table(f, rng.uniform(0, box, n), rng.uniform(0, box, n), rng.uniform(-z_range, z_range, n))

    return one(), one()


# --- basic behaviour --------------------------------------------------------------------------------


def test_identity_matches_everything():
    rng = np.random.default_rng(0)
    xyz = rng.uniform([0, 0, -400], [5000, 5000, 400], (100, 3))
    t = _table(np.repeat(np.arange(20), 5), *xyz.T)
    m = match(t, t)
    assert _pairs(m) == [(i, i) for i in range(100)]
    assert m.fp.size == 0 and m.fn.size == 0
    np.testing.assert_array_equal(m.delta_nm, 0.0)
    assert (m.n_tp, m.n_fp, m.n_fn, m.dim) == (100, 0, 0, 3)


def test_deltas_are_pred_minus_truth():
    t = _table([0, 0], [100.0, 1000.0], [100.0, 100.0], [0.0, 50.0])
    p = _table([0, 0], [1006.0, 90.0], [108.0, 130.0], [20.0, -5.0])
    m = match(t, p)
    assert _pairs(m) == [(0, 1), (1, 0)]
    np.testing.assert_array_equal(m.dx, [-10.0, 6.0])
    np.testing.assert_array_equal(m.dy, [30.0, 8.0])
    np.testing.assert_array_equal(m.dz, [-5.0, -30.0])


@pytest.mark.parametrize("dim", [2, 3])
def test_lateral_threshold_boundary(dim):
    # truth at x = 0 in frames 0..2; predictions 249, 250 (inclusive) and 251 nm away
    t = _table([0, 1, 2], [0.0, 0.0, 0.0])
    p = _table([0, 1, 2], [249.0, 0.0, 251.0], [0.0, 250.0, 0.0])
    m = match(t, p, dim=dim)
    assert _pairs(m) == [(0, 0), (1, 1)]
    assert m.fp.tolist() == [2] and m.fn.tolist() == [2]


def test_far_points_are_fp_and_fn():
    t = _table([0, 0], [0.0, 5000.0])
    p = _table([0, 0], [1000.0, 3000.0])
    m = match(t, p)
    assert m.n_tp == 0 and m.fp.tolist() == [0, 1] and m.fn.tolist() == [0, 1]


def test_axial_threshold_in_3d_and_ignored_in_2d():
    t = _table([0, 1, 2], [0.0, 0.0, 0.0], z=[0.0, 0.0, 0.0])
    p = _table([0, 1, 2], [0.0, 0.0, 0.0], z=[499.0, 500.0, 501.0])
    m3 = match(t, p, dim=3)
    assert _pairs(m3) == [(0, 0), (1, 1)] and m3.fp.tolist() == [2] and m3.fn.tolist() == [2]
    m2 = match(t, p, dim=2)
    assert _pairs(m2) == [(0, 0), (1, 1), (2, 2)] and m2.max_ax_nm is None
    # a custom axial threshold
    assert _pairs(match(t, p, max_ax_nm=499.5)) == [(0, 0)]


def test_frames_are_never_mixed():
    t = _table([0, 1, 5], [100.0, 100.0, 100.0])
    p = _table([1, 2, 3], [100.0, 100.0, 100.0])
    m = match(t, p)
    assert _pairs(m) == [(1, 0)]
    assert m.fn.tolist() == [0, 2] and m.fp.tolist() == [1, 2]


def test_frames_need_not_be_sorted_or_contiguous():
    t = _table([7, 3, 7, 1000000], [0.0, 0.0, 500.0, 0.0])
    p = _table([1000000, 7, 3, 7], [10.0, 510.0, 20.0, 30.0])
    m = match(t, p)
    assert _pairs(m) == [(0, 3), (1, 2), (2, 1), (3, 0)]


def test_empty_tables():
    t = _table([0, 1], [0.0, 0.0])
    e = LocTable.empty()
    m = match(t, e)
    assert m.n_tp == 0 and m.fn.tolist() == [0, 1] and m.fp.size == 0 and m.delta_nm.shape == (0, 3)
    m = match(e, t)
    assert m.n_tp == 0 and m.fp.tolist() == [0, 1] and m.fn.size == 0
    m = match(e, e)
    assert (m.n_tp, m.n_fp, m.n_fn) == (0, 0, 0)


@pytest.mark.parametrize("dim", [0, 1, 4, "3", True, None])
def test_bad_dim(dim):
    t = _table([0], [0.0])
    with pytest.raises(InputError, match="dim must be 2 or 3"):
        match(t, t, dim=dim)


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"max_lat_nm": -1.0}, "max_lat_nm"),
        ({"max_lat_nm": float("inf")}, "max_lat_nm"),
        ({"max_lat_nm": float("nan")}, "max_lat_nm"),
        ({"max_ax_nm": -1.0}, "max_ax_nm"),
        ({"max_ax_nm": float("nan")}, "max_ax_nm"),
    ],
)
def test_bad_thresholds(kw, text):
    t = _table([0], [0.0])
    with pytest.raises(InputError, match=text):
        match(t, t, **kw)


def test_infinite_axial_threshold_is_allowed():
    t = _table([0], [0.0], z=[0.0])
    p = _table([0], [0.0], z=[1e6])
    assert match(t, p, max_ax_nm=float("inf")).n_tp == 1


def test_non_finite_coordinates_are_refused():
    t = _table([0, 0], [0.0, np.nan])
    with pytest.raises(InputError, match="x_nm"):
        match(t, _table([0], [0.0]))
    # z is not used in 2D, so NaN there is fine
    tz = _table([0], [0.0], z=[np.nan])
    assert match(tz, tz, dim=2).n_tp == 1
    with pytest.raises(InputError, match="z_nm"):
        match(tz, tz, dim=3)


# --- optimality -----------------------------------------------------------------------------------------


def _greedy(truth: LocTable, pred: LocTable, max_lat_nm: float = 250.0) -> list[tuple[int, int]]:
    """Global nearest-pair-first greedy matching (what DECODE called 'Hungarian')."""
    d = np.hypot(pred["x_nm"][None] - truth["x_nm"][:, None], pred["y_nm"][None] - truth["y_nm"][:, None])
    d[truth["frame"][:, None] != pred["frame"][None]] = np.inf
    d[d > max_lat_nm] = np.inf
    pairs = []
    while np.isfinite(d).any():
        i, j = np.unravel_index(np.argmin(d), d.shape)
        pairs.append((int(i), int(j)))
        d[i, :] = np.inf
        d[:, j] = np.inf
    return sorted(pairs)


@pytest.mark.parametrize("dim", [2, 3])
def test_more_matches_than_greedy(dim):
    # T0 = 0, T1 = 259; P0 = 10 (10 from T0, 249 from T1), P1 = -200 (200 from T0, 459 from T1).
    # Greedy takes T0-P0 first and is left with 1 pair; the optimum has 2.
    t = _table([0, 0], [0.0, 259.0])
    p = _table([0, 0], [10.0, -200.0])
    assert _greedy(t, p) == [(0, 0)]
    m = match(t, p, dim=dim)
    assert _pairs(m) == [(0, 1), (1, 0)]
    assert _cost(t, p, m, dim) == pytest.approx(449.0)


@pytest.mark.parametrize("dim", [2, 3])
def test_lower_cost_than_greedy(dim):
    # T: 0, 11; P: 10, 21. Greedy pairs T1-P0 (1) then T0-P1 (21): 22 nm in all; the optimum is 20.
    t = _table([0, 0], [0.0, 11.0])
    p = _table([0, 0], [10.0, 21.0])
    assert _greedy(t, p) == [(0, 1), (1, 0)]
    m = match(t, p, dim=dim)
    assert _pairs(m) == [(0, 0), (1, 1)]
    assert _cost(t, p, m, dim) == pytest.approx(20.0)


@pytest.mark.parametrize("dim", [2, 3])
def test_matches_brute_force_on_random_frames(dim):
    rng = np.random.default_rng(42)
    t, p = _random_tables(rng, 300, 5, 700.0, z_range=400.0)
    m = match(t, p, dim=dim)
    _check_partition(m, len(t), len(p))
    n_best, cost_best = 0, 0.0
    for f in range(300):
        it = np.flatnonzero(t["frame"] == f)
        ip = np.flatnonzero(p["frame"] == f)
        d = p.xyz_nm[ip][None] - t.xyz_nm[it][:, None]
        lat = np.hypot(d[..., 0], d[..., 1])
        c = lat if dim == 2 else np.sqrt(lat**2 + d[..., 2] ** 2)
        c = np.where((lat <= 250.0) & ((dim == 2) | (np.abs(d[..., 2]) <= 500.0)), c, np.inf)
        k, s = _brute_force(c)
        n_best += k
        cost_best += s
    assert m.n_tp == n_best
    assert _cost(t, p, m, dim) == pytest.approx(cost_best, rel=1e-12)
    # every pair respects the thresholds and the frames
    assert np.all(t["frame"][m.tp_truth] == p["frame"][m.tp_pred])
    assert np.all(np.hypot(m.dx, m.dy) <= 250.0)
    if dim == 3:
        assert np.all(np.abs(m.dz) <= 500.0)


def _reference_per_frame(t: LocTable, p: LocTable, dim: int) -> tuple[int, float]:
    """One dense Hungarian problem per whole frame, no splitting into components."""
    n, total = 0, 0.0
    for f in np.union1d(t["frame"], p["frame"]):
        it = np.flatnonzero(t["frame"] == f)
        ip = np.flatnonzero(p["frame"] == f)
        if not it.size or not ip.size:
            continue
        d = p.xyz_nm[ip][None] - t.xyz_nm[it][:, None]
        lat = np.hypot(d[..., 0], d[..., 1])
        c = lat if dim == 2 else np.sqrt(lat**2 + d[..., 2] ** 2)
        ok = (lat <= 250.0) & ((dim == 2) | (np.abs(d[..., 2]) <= 500.0))
        big = (min(c.shape) + 1) * (c[ok].max() + 1.0) if ok.any() else 1.0
        r, k = linear_sum_assignment(np.where(ok, c, big))
        keep = ok[r, k]
        n += int(keep.sum())
        total += float(c[r, k][keep].sum())
    return n, total


@pytest.mark.parametrize("force_hungarian", [False, True])
def test_dense_frames_match_whole_frame_hungarian(force_hungarian, monkeypatch):
    # ~50 emitters per um^2: large connected components, solved by the Hungarian algorithm; the
    # small ones are solved by exhaustive search unless forced through the Hungarian path too.
    if force_hungarian:
        monkeypatch.setattr(matching_module, "_MAX_ARRANGEMENTS", 0)
    rng = np.random.default_rng(7)
    for dim in (2, 3):
        t, p = _random_tables(rng, 6, 60, 1100.0, z_range=600.0)
        m = match(t, p, dim=dim)
        _check_partition(m, len(t), len(p))
        n_ref, cost_ref = _reference_per_frame(t, p, dim)
        assert m.n_tp == n_ref
        assert _cost(t, p, m, dim) == pytest.approx(cost_ref, rel=1e-9)
    # many sparse frames: exhaustive and Hungarian paths agree with the per-frame reference
    t, p = _random_tables(rng, 400, 12, 1500.0, z_range=600.0)
    m = match(t, p)
    n_ref, cost_ref = _reference_per_frame(t, p, 3)
    assert m.n_tp == n_ref
    assert _cost(t, p, m, 3) == pytest.approx(cost_ref, rel=1e-9)


def test_single_node_components():
    # one truth near three predictions; three truths near one prediction (same frame)
    t = _table([0, 0, 0, 0], [0.0, 1000.0, 1100.0, 1200.0])
    p = _table([0, 0, 0, 0], [-100.0, 30.0, 200.0, 1090.0])
    m = match(t, p)
    assert _pairs(m) == [(0, 1), (2, 3)]
    assert m.fp.tolist() == [0, 2] and m.fn.tolist() == [1, 3]


def test_more_truths_than_predictions_and_the_reverse():
    # frame 0: truths 0, 100, 210 and predictions 50, 150 -> T0-P0 + T1-P1 (100 nm) beats the
    # alternatives (110 nm); frame 1: the same with the roles swapped.
    t = _table([0, 0, 0, 1, 1], [0.0, 100.0, 210.0, 50.0, 150.0])
    p = _table([0, 0, 1, 1, 1], [50.0, 150.0, 0.0, 100.0, 210.0])
    for m in (match(t, p), match(t, p, dim=2)):
        assert _pairs(m) == [(0, 0), (1, 1), (3, 2), (4, 3)]
        assert m.fn.tolist() == [2] and m.fp.tolist() == [4]


def test_doctests():
    assert doctest.testmod(matching_module).failed == 0


# --- speed ------------------------------------------------------------------------------------------------


def _many_frames(n_frames: int, per_frame: int, seed: int):
    rng = np.random.default_rng(seed)
    f = np.repeat(np.arange(n_frames), per_frame)
    n = f.size
    xyz = np.column_stack([rng.uniform(0, 6400, n), rng.uniform(0, 6400, n), rng.uniform(-500, 500, n)])
    t = _table(f, *xyz.T)
    noisy = xyz + rng.normal(0.0, [15.0, 15.0, 30.0], (n, 3))
    keep = rng.random(n) < 0.9  # 10 % missed
    n_fp = n // 20  # 5 % spurious
    p = _table(
        np.concatenate([f[keep], rng.integers(0, n_frames, n_fp)]),
        np.concatenate([noisy[keep, 0], rng.uniform(0, 6400, n_fp)]),
        np.concatenate([noisy[keep, 1], rng.uniform(0, 6400, n_fp)]),
        np.concatenate([noisy[keep, 2], rng.uniform(-500, 500, n_fp)]),
    )
    return t, p, int(keep.sum())


def test_speed_ten_thousand_frames():
    t, p, n_kept = _many_frames(10_000, 10, seed=3)
    start = time.perf_counter()
    m = match(t, p)
    elapsed = time.perf_counter() - start
    _check_partition(m, len(t), len(p))
    # nearly every kept emitter is found (a few may swap with a close neighbour or a spurious one)
    assert abs(m.n_tp - n_kept) < 0.01 * n_kept
    assert elapsed < 30.0  # about 0.2 s on a laptop core; generous for loaded CI machines


@pytest.mark.slow
def test_speed_hundred_thousand_frames():
    t, p, n_kept = _many_frames(100_000, 10, seed=4)
    start = time.perf_counter()
    m = match(t, p)
    elapsed = time.perf_counter() - start
    assert abs(m.n_tp - n_kept) < 0.01 * n_kept
    assert elapsed < 60.0  # about 2 s on a laptop core


def test_a_2d_matching_takes_no_axial_tolerance():
    """A 2D Matching records max_ax_nm None; passing that back (or None) to match/evaluate works (it raised)."""
    from conftest import make_table

    from plexloc.evaluate import evaluate

    t = make_table(0, [100.0, 900.0], [100.0, 900.0], z=[0.0, 3000.0])
    m = match(t, t, dim=2)
    again = match(t, t, dim=2, max_ax_nm=m.max_ax_nm)
    assert m.max_ax_nm is None and len(again.tp_truth) == 2
    assert evaluate(t, t, dim=2, max_ax_nm=None).jaccard == 100.0
    from plexloc.evaluate.metrics import evaluate_matching

    with pytest.raises(InputError, match="3D scores need a 3D matching"):
        evaluate_matching(t, t, m, dim=3)
