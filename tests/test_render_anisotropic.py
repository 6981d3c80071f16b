"""Gaussian rendering with each localization's own σx and σy (axis-aligned, separable), against references that do
not share its code: scipy's 2D ``gaussian_filter`` of one localization with per-axis σ, and the round renderer that
drew one σ per row (the quadratic mean of σx and σy), kept below as the reference for round tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from plexloc.errors import InputError
from plexloc.render.image import MAX_SIGMA_PX, render_gaussian, render_histogram
from plexloc.table import LocTable


def _table(x, y, source=None, **extra) -> LocTable:
    n = len(x)
    return LocTable({"frame": np.zeros(n, int), "x_nm": np.asarray(x, float), "y_nm": np.asarray(y, float),
                     "z_nm": np.zeros(n), "photons": np.ones(n), **extra}, source=source)


def _moments(img: np.ndarray, px: float, x0: float = 0.0, y0: float = 0.0) -> tuple[float, float, float, float]:
    """Centre (x, y) and standard deviations (x, y) of an image, in nm."""
    yy, xx = np.indices(img.shape)
    xc, yc = x0 + (xx + 0.5) * px, y0 + (yy + 0.5) * px
    m = img.sum()
    cx, cy = (img * xc).sum() / m, (img * yc).sum() / m
    return cx, cy, np.sqrt((img * (xc - cx) ** 2).sum() / m), np.sqrt((img * (yc - cy) ** 2).sum() / m)


@pytest.mark.parametrize("px", [2.0, 10.0])
def test_one_localization_has_second_moments_sigma_x_and_sigma_y(px):
    # sigma_x 10 nm, sigma_y 30 nm: the image's standard deviations are 10 and 30 nm (the round renderer drew
    # both at sqrt((10^2 + 30^2) / 2) = 22.4 nm); the spot sits on a pixel centre so binning adds nothing
    t = _table([500.0 + px / 2], [500.0 + px / 2], sigma_x_nm=[10.0], sigma_y_nm=[30.0])
    r = render_gaussian(t, px_size_nm=px, extent_nm=(0, 1000, 0, 1000))
    cx, cy, sx, sy = _moments(r.image, px)
    assert r.image.sum() == pytest.approx(1.0, rel=1e-12)
    assert (cx, cy) == (pytest.approx(500.0 + px / 2, abs=1e-9), pytest.approx(500.0 + px / 2, abs=1e-9))
    assert sx == pytest.approx(10.0, rel=0.01) and sy == pytest.approx(30.0, rel=0.01)
    # x runs along columns: swapping the columns turns the spot by 90 degrees
    swapped = render_gaussian(_table([500.0 + px / 2], [500.0 + px / 2], sigma_x_nm=[30.0], sigma_y_nm=[10.0]),
                              px_size_nm=px, extent_nm=(0, 1000, 0, 1000))
    np.testing.assert_allclose(swapped.image, r.image.T, atol=1e-15)


def _filtered_deltas(shape, x, y, sx, sy, wts, px) -> np.ndarray:
    """The reference image: each row a weighted delta at its pixel, blurred by its own 2D Gaussian (scipy)."""
    ref = np.zeros(shape)
    for k in range(len(x)):
        delta = np.zeros(shape)
        delta[int(y[k] // px), int(x[k] // px)] = wts[k]
        ref += gaussian_filter(delta, (sy[k] / px, sx[k] / px), mode="constant", truncate=4.0)
    return ref


def test_mixed_table_matches_a_2d_filter_per_localization():
    # sigma on exact levels (10, 20, 40 nm with sigma_step 1.0), so no quantisation: every localization must be
    # scipy's 2D Gaussian filter of a unit pixel with its own (sigma_y, sigma_x); round, wide and narrow mixed,
    # some near the border (their tails are cut off, as by the filter's zeros outside)
    rng = np.random.default_rng(4)
    n = 60
    levels = np.array([10.0, 20.0, 40.0])
    sx, sy = levels[rng.integers(0, 3, n)], levels[rng.integers(0, 3, n)]
    sx[:3], sy[:3] = 10.0, 40.0  # at least one of each extreme pair
    x, y = rng.uniform(0, 1200, n), rng.uniform(0, 800, n)
    wts = rng.uniform(0.5, 3.0, n)
    px = 5.0
    r = render_gaussian(_table(x, y, sigma_x_nm=sx, sigma_y_nm=sy), px_size_nm=px, extent_nm=(0, 1200, 0, 800),
                        sigma_step=1.0, weights=wts)
    ref = _filtered_deltas(r.image.shape, x, y, sx, sy, wts, px)
    np.testing.assert_allclose(r.image, ref, rtol=0, atol=1e-12 * ref.max())
    # sigma anywhere, with a step so fine that each row has its own levels (some 10^7 x 10^7 level pairs, of which
    # only the 60 that occur are visited): the same 2D filters, to the step's 1e-6 relative change of sigma
    sx, sy = rng.uniform(6, 40, n), rng.uniform(6, 40, n)
    r = render_gaussian(_table(x, y, sigma_x_nm=sx, sigma_y_nm=sy), px_size_nm=px, extent_nm=(0, 1200, 0, 800),
                        sigma_step=1e-6, weights=wts)
    ref = _filtered_deltas(r.image.shape, x, y, sx, sy, wts, px)
    np.testing.assert_allclose(r.image, ref, rtol=0, atol=1e-5 * ref.max())


def test_each_row_integrates_to_one_or_its_weight():
    # rows on a 500 nm grid, sigma 6-40 nm per axis (support <= 160 nm), quantised with the default step
    rng = np.random.default_rng(7)
    gx, gy = np.meshgrid(np.arange(10) * 500.0 + 250.0, np.arange(8) * 500.0 + 250.0)
    x, y = gx.ravel() + rng.uniform(-20, 20, gx.size), gy.ravel() + rng.uniform(-20, 20, gy.size)
    sx, sy = rng.uniform(6, 40, x.size), rng.uniform(6, 40, x.size)
    wts = rng.uniform(0.1, 10.0, x.size)
    t = _table(x, y, sigma_x_nm=sx, sigma_y_nm=sy)
    for weights, expect in ((None, np.ones(x.size)), (wts, wts)):
        img = render_gaussian(t, px_size_nm=5.0, extent_nm=(0, 5000, 0, 4000), weights=weights).image
        blocks = img.reshape(8, 100, 10, 100).sum(axis=(1, 3)).ravel()  # 500 nm blocks, in the rows' order
        np.testing.assert_allclose(blocks, expect, rtol=1e-10)
        # and each spot has its own widths, within the half step (5 %) that quantisation moves a sigma
        spots = img.reshape(8, 100, 10, 100).transpose(0, 2, 1, 3).reshape(-1, 100, 100)
        widths = np.array([_moments(s, 5.0)[2:] for s in spots])
        assert np.all(np.abs(widths / np.c_[sx, sy] - 1) < 0.055)
        assert np.corrcoef(widths[:, 0], sx)[0, 1] > 0.99 and np.corrcoef(widths[:, 1], sy)[0, 1] > 0.99


def test_floor_applies_to_each_axis():
    # sigma_x 1 nm is raised to the 10 nm floor, sigma_y 30 nm stays (the round renderer floored the mean, 21 nm)
    t = _table([500.0, 1500.0], [500.0, 500.0], sigma_x_nm=[1.0, 30.0], sigma_y_nm=[30.0, 1.0])
    r = render_gaussian(t, px_size_nm=2.0, extent_nm=(0, 2000, 0, 1000), min_sigma_nm=10.0, sigma_step=0.01)
    left, right = r.image[:, :500], r.image[:, 500:]
    assert _moments(left, 2.0)[2:] == (pytest.approx(10.0, rel=0.01), pytest.approx(30.0, rel=0.01))
    assert _moments(right, 2.0)[2:] == (pytest.approx(30.0, rel=0.01), pytest.approx(10.0, rel=0.01))
    # the cap applies per axis too: sigma_x of 100 px is drawn 32 px wide, sigma_y keeps its 5 px
    wide = render_gaussian(_table([4000.0], [4000.0], sigma_x_nm=[100.0], sigma_y_nm=[5.0]), px_size_nm=1.0,
                           extent_nm=(3000, 5000, 3900, 4100))
    assert _moments(wide.image, 1.0, 3000, 3900)[2:] == (pytest.approx(MAX_SIGMA_PX, rel=0.01),
                                                        pytest.approx(5.0, rel=0.01))


def _round_reference(table: LocTable, *, px: float, extent, sigma: np.ndarray, min_sigma_nm=0.0, sigma_step=0.1,
                     weights=None) -> np.ndarray:
    """The round renderer before σx and σy were drawn apart: one σ per row, geometric levels, a 2D filter per level."""
    sigma = np.minimum(np.maximum(sigma, min_sigma_nm), MAX_SIGMA_PX * px)
    lo = max(float(sigma.min()), 1e-3 * px)
    hi = max(float(sigma.max()), lo)
    levels = np.geomspace(lo, hi, max(1, int(np.ceil(np.log(hi / lo) / np.log1p(sigma_step))) + 1))
    which = np.searchsorted(np.sqrt(levels[1:] * levels[:-1]), sigma)
    img = 0.0
    for k, s in enumerate(levels):
        rows = which == k
        part = render_histogram(table[rows], px_size_nm=px, extent_nm=extent,
                                weights=None if weights is None else weights[rows]).image if rows.any() else 0.0
        img = img + (gaussian_filter(part, s / px, mode="constant", truncate=4.0) if s / px > 0.05 else part)
    return img


def test_round_tables_render_as_before():
    rng = np.random.default_rng(11)
    n = 20000
    s = np.r_[rng.uniform(2, 60, n - 1), 900.0]  # one wide outlier, capped at 32 px
    x, y = rng.uniform(-300, 3300, n), rng.uniform(-300, 2300, n)  # some outside the image
    wts = rng.uniform(0.2, 5.0, n)
    extent = (0.0, 3000.0, 0.0, 2000.0)
    cases = [
        (_table(x, y, sigma_x_nm=s, sigma_y_nm=s), s, dict(px_size_nm=5.0, min_sigma_nm=2.5)),
        (_table(x, y, sigma_x_nm=s, sigma_y_nm=s), s, dict(px_size_nm=10.0, weights=wts, sigma_step=0.25)),
        (_table(x, y, crlb_x_nm=s), s, dict(px_size_nm=10.0)),  # one bound: round
        (_table(x, y), np.full(n, 15.0), dict(px_size_nm=10.0, sigma_nm=15.0)),  # a fixed sigma_nm: round
        (_table(x, y, sigma_x_nm=s / 1e3, sigma_y_nm=s / 1e3), s / 1e3, dict(px_size_nm=10.0)),  # points
    ]
    for t, sigma, kw in cases:
        r = render_gaussian(t, extent_nm=extent, **kw)
        ref = _round_reference(t, px=kw["px_size_nm"], extent=extent, sigma=sigma, weights=kw.get("weights"),
                               min_sigma_nm=kw.get("min_sigma_nm", 0.0), sigma_step=kw.get("sigma_step", 0.1))
        np.testing.assert_allclose(r.image, ref, rtol=0, atol=1e-12 * ref.max())
        assert r.n_outside == int(np.count_nonzero((x < 0) | (x >= 3000) | (y < 0) | (y >= 2000)))


def test_crlb_pair_is_drawn_anisotropic_and_one_sigma_column_is_refused():
    t = _table([500.0 + 1.0], [500.0 + 1.0], crlb_x_nm=[30.0], crlb_y_nm=[10.0])
    sx, sy = _moments(render_gaussian(t, px_size_nm=2.0, extent_nm=(0, 1000, 0, 1000)).image, 2.0)[2:]
    assert sx == pytest.approx(30.0, rel=0.01) and sy == pytest.approx(10.0, rel=0.01)
    with pytest.raises(InputError, match=r"needs sigma_x_nm and sigma_y_nm.*has only sigma_x_nm"):
        render_gaussian(_table([1.0], [1.0], sigma_x_nm=[10.0]), px_size_nm=2.0)
    with pytest.raises(InputError, match="weights has 2 values for a table of 1 rows"):
        render_gaussian(t, px_size_nm=2.0, weights=[1.0, 2.0])
    with pytest.raises(InputError, match="sigma_step"):
        render_gaussian(t, px_size_nm=2.0, sigma_step=0.0)


def test_nan_sigma_is_an_error_naming_its_column_and_negative_sigma_is_raised_to_the_floor():
    x, y = np.array([100.0, 300.0, 500.0]), np.array([100.0, 100.0, 100.0])
    t = _table(x, y, sigma_x_nm=[10.0, 10.0, 10.0], sigma_y_nm=[10.0, np.nan, np.inf], source="locs.csv")
    with pytest.raises(InputError, match=r"locs.csv: 2 localization\(s\) have no finite uncertainty in sigma_y_nm "
                                         r"\(first row 1: nan\)"):
        render_gaussian(t, px_size_nm=5.0)
    with pytest.raises(InputError, match="in sigma_x_nm"):
        render_gaussian(t.with_columns(sigma_x_nm=np.array([10.0, 10.0, np.nan])), px_size_nm=5.0)
    # a negative sigma is raised to the floor on its own axis, as the floor does to any smaller sigma
    neg = _table([500.0 + 1.0], [500.0 + 1.0], sigma_x_nm=[-20.0], sigma_y_nm=[20.0])
    img = render_gaussian(neg, px_size_nm=2.0, extent_nm=(0, 1000, 0, 1000), min_sigma_nm=8.0).image
    assert _moments(img, 2.0)[2:] == (pytest.approx(8.0, rel=0.01), pytest.approx(20.0, rel=0.01))
    # with no floor it is a point along x: the x profile is the histogram's
    img0 = render_gaussian(neg, px_size_nm=2.0, extent_nm=(0, 1000, 0, 1000)).image
    np.testing.assert_allclose(img0.sum(axis=0), render_histogram(neg, px_size_nm=2.0, extent_nm=(0, 1000, 0, 1000))
                               .image.sum(axis=0), atol=1e-15)
    # a negative floor leaves a negative sigma negative: an error, as before
    with pytest.raises(InputError, match=r"in sigma_x_nm \(first row 0: -20.0\)"):
        render_gaussian(neg, px_size_nm=2.0, min_sigma_nm=-50.0)


def test_many_rows_in_one_group_take_the_filtered_histogram_path_with_the_same_result(monkeypatch):
    # 300k rows at one (sigma_x, sigma_y) on a 200 x 200 image: crowded enough to be histogrammed and filtered along
    # x instead of spread row by row; both give scipy's filter of the histogram
    rng = np.random.default_rng(2)
    n = 300_000
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 2000, n)
    t = _table(x, y, sigma_x_nm=np.full(n, 25.0), sigma_y_nm=np.full(n, 12.0))
    r = render_gaussian(t, px_size_nm=10.0, extent_nm=(0, 2000, 0, 2000))
    hist = render_histogram(t, px_size_nm=10.0, extent_nm=(0, 2000, 0, 2000)).image
    ref = gaussian_filter(hist, (1.2, 2.5), mode="constant", truncate=4.0)
    np.testing.assert_allclose(r.image, ref, rtol=1e-10, atol=1e-12 * ref.max())
    from plexloc.render import image

    real, asked = image._spread_is_cheaper, []
    monkeypatch.setattr(image, "_spread_is_cheaper", lambda *a: asked.append(a) or True)  # force row by row
    spread = render_gaussian(t, px_size_nm=10.0, extent_nm=(0, 2000, 0, 2000))
    np.testing.assert_allclose(spread.image, ref, rtol=1e-10, atol=1e-12 * ref.max())
    assert asked == [(n, 21, 200 * 200)]  # one group of 21 taps (+-10 px for 2.5 px)...
    assert not real(*asked[0])  # ...which the first render drew as a filtered histogram
