"""Session 41: Gaussian images (grey and coloured) against the slow, obvious image: each localization's sampled 2D
kernel (its σx, σy quantised to the σ levels of the rows drawn with it) added at its pixel, one row at a time; both
ways of drawing a σy level (each row's 2D kernel, or spread along x and filtered along y) give it; a coloured image
is the sum of its colours' images times their RGB (a histogram's to the last bit)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from plexloc.render import image
from plexloc.render.image import render_color, render_gaussian, render_histogram
from plexloc.table import LocTable


def _table(n=300, seed=0, field=1000.0, nan_z=0.0, sigma="sigma", lo=3.0, hi=40.0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-400, 400, n)
    if nan_z:
        z[rng.random(n) < nan_z] = np.nan
    d = {"frame": np.arange(n), "x_nm": rng.uniform(0, field, n), "y_nm": rng.uniform(0, field, n), "z_nm": z,
         "photons": rng.uniform(500, 5000, n), "color": rng.integers(-1, 3, n)}
    sx, sy = np.exp(rng.uniform(np.log(lo), np.log(hi), (2, n)))
    if sigma == "sigma":
        d.update(sigma_x_nm=sx, sigma_y_nm=sy)
    elif sigma == "crlb":
        d.update(crlb_x_nm=sx, crlb_y_nm=sy)
    else:  # crlb_x_nm only: round
        d.update(crlb_x_nm=sx)
    return LocTable(d)


def _reference(t, px, extent, *, sigma_nm=None, min_sigma_nm=0.0, sigma_step=0.1, weights=None):
    """The Gaussian image the slow way: per row, the outer product of its y and x kernels at its pixel."""
    x0, x1, y0, y1 = extent
    w, h = int(np.ceil((x1 - x0) / px - 1e-9)), int(np.ceil((y1 - y0) / px - 1e-9))
    img = np.zeros((h, w))
    if len(t) == 0:
        return img
    if sigma_nm is not None:
        sx = sy = np.full(len(t), float(sigma_nm))
    elif "sigma_x_nm" in t:
        sx, sy = t["sigma_x_nm"], t["sigma_y_nm"]
    elif "crlb_y_nm" in t:
        sx, sy = t["crlb_x_nm"], t["crlb_y_nm"]
    else:
        sx = sy = t["crlb_x_nm"]
    cap = image.MAX_SIGMA_PX * px
    sx, sy = (np.minimum(np.maximum(s, min_sigma_nm), cap) for s in (sx, sy))
    lev_x = image._levels(sx.min(), sx.max(), sigma_step, px)
    lev_y = image._levels(sy.min(), sy.max(), sigma_step, px)
    kx_of = image._level_of(sx, lev_x)
    ky_of = image._level_of(sy, lev_y)
    for r in range(len(t)):
        j = int(np.floor((t["x_nm"][r] - x0) / px))
        i = int(np.floor((t["y_nm"][r] - y0) / px))
        if not (0 <= i < h and 0 <= j < w):
            continue
        kx = image._kernel(lev_x[kx_of[r]] / px)
        ky = image._kernel(lev_y[ky_of[r]] / px)
        k2 = np.outer(ky, kx) * (1.0 if weights is None else weights[r])
        ry, rx = len(ky) // 2, len(kx) // 2
        a, b = max(0, i - ry), min(h, i + ry + 1)
        c, d = max(0, j - rx), min(w, j + rx + 1)
        img[a:b, c:d] += k2[a - (i - ry) : b - (i - ry), c - (j - rx) : d - (j - rx)]
    return img


@pytest.fixture(params=["model", "direct", "filtered", "direct-rgb"])
def way(request, monkeypatch):
    """Each σy level drawn as the cost model chooses, or forced: every row its 2D kernel, or spread and filtered;
    direct-rgb: every row its 2D kernel, a colour's straight into the RGB image (else a plane of the colour where its
    rows hold many kernel entries)."""
    if request.param.startswith("direct"):
        monkeypatch.setattr(image, "_direct_saving", lambda *a: 1.0)
    elif request.param == "filtered":
        monkeypatch.setattr(image, "_direct_saving", lambda *a: -1e30)
    if request.param == "direct-rgb":
        monkeypatch.setattr(image._ColorSink, "prepare", lambda self, *a: None)
    return request.param


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("sigma", ["sigma", "crlb", "crlb_x"])
def test_grey_gaussian_is_the_sum_of_each_rows_kernel(way, sigma):
    t = _table(sigma=sigma)
    ext = (-100.0, 1100.0, -50.0, 1050.0)
    r = render_gaussian(t, px_size_nm=10.0, extent_nm=ext, min_sigma_nm=5.0)
    _close(r.image, _reference(t, 10.0, ext, min_sigma_nm=5.0))
    assert r.n_outside == 0


def test_grey_gaussian_border_weights_points_and_a_fixed_sigma(way):
    t = _table(lo=0.1, hi=60.0)  # down to 0.01 px: drawn as points (no floor)
    wts = t["photons"] / 1000
    ext = (200.0, 700.0, 100.0, 900.0)  # cuts the field: rows outside, kernels cut at every edge
    r = render_gaussian(t, px_size_nm=10.0, extent_nm=ext, weights=wts, sigma_step=0.2)
    _close(r.image, _reference(t, 10.0, ext, weights=wts, sigma_step=0.2))
    inside = (t["x_nm"] >= 200) & (t["x_nm"] < 700) & (t["y_nm"] >= 100) & (t["y_nm"] < 900)
    assert r.n_outside == int((~inside).sum())
    r = render_gaussian(t, px_size_nm=10.0, extent_nm=ext, sigma_nm=15.0)
    _close(r.image, _reference(t, 10.0, ext, sigma_nm=15.0))
    # widths capped at MAX_SIGMA_PX pixels
    t = _table(n=40, lo=100.0, hi=600.0)
    r = render_gaussian(t, px_size_nm=5.0, extent_nm=(0.0, 1000.0, 0.0, 1000.0))
    _close(r.image, _reference(t, 5.0, (0.0, 1000.0, 0.0, 1000.0)))


def test_a_crowded_table_mixes_both_ways_and_gives_the_same_image(way, monkeypatch):
    # 20k rows of sigma 8-10 nm on 40 x 40 pixels and 30 rows of 20-60 nm: the cost model filters the crowded sigma
    # levels and draws the sparse ones directly
    a, b = _table(n=20000, field=400.0, lo=8.0, hi=10.0), _table(n=30, seed=1, field=400.0, lo=20.0, hi=60.0)
    t = LocTable({c: np.concatenate([a[c], b[c]]) for c in a.columns})
    ext = (0.0, 400.0, 0.0, 400.0)
    real, savings = image._direct_saving, []
    monkeypatch.setattr(image, "_direct_saving", lambda *a: savings.append(real(*a)) or savings[-1])
    r = render_gaussian(t, px_size_nm=10.0, extent_nm=ext, min_sigma_nm=5.0)
    _close(r.image, _reference(t, 10.0, ext, min_sigma_nm=5.0))
    if way == "model":
        assert min(savings) < 0 < max(savings)  # both ways


def _z_groups(t, z0, z1, n_levels, cmap="turbo"):
    z = t["z_nm"]
    finite = np.isfinite(z)
    level = np.clip(np.nan_to_num((z - z0) / (z1 - z0) * n_levels).astype(np.int64), 0, n_levels - 1)
    colors = matplotlib.colormaps[cmap](np.linspace(0, 1, n_levels))[:, :3]
    groups = [((level == k) & finite, colors[k]) for k in range(n_levels)]
    if not finite.all():
        groups.append((~finite, np.array([0.5, 0.5, 0.5])))
    return groups


@pytest.mark.parametrize("sigma", ["sigma", "crlb"])
def test_z_coloured_gaussian_is_each_z_levels_image_tinted(way, sigma):
    t = _table(n=400, nan_z=0.1, sigma=sigma)
    ext = (-50.0, 1000.0, 0.0, 1000.0)
    r = render_color(t, color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=ext, min_sigma_nm=5.0,
                     z_range_nm=(-300.0, 300.0), n_levels=16)
    ref = np.zeros(r.image.shape)
    for mask, col in _z_groups(t, -300.0, 300.0, 16):  # each z level with the sigma levels of its own rows
        if mask.any():
            ref += _reference(t[mask], 10.0, ext, min_sigma_nm=5.0)[..., None] * col
    _close(r.image, ref)
    n_nan = int((~np.isfinite(t["z_nm"])).sum())
    assert n_nan > 0 and f"{n_nan} without a finite z in grey" in r.legend
    # the old definition, one render per colour, is the same image
    old = sum(render_gaussian(t[m], px_size_nm=10.0, extent_nm=ext, min_sigma_nm=5.0).image[..., None] * c
              for m, c in _z_groups(t, -300.0, 300.0, 16) if m.any())
    _close(r.image, old)


def test_z_coloured_options_weights_cmap_and_channels(way):
    t = _table(n=300, nan_z=0.05)
    ext = (100.0, 900.0, 0.0, 1000.0)
    wts = t["photons"] / 1000
    r = render_color(t, color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=ext, cmap="viridis", n_levels=5,
                     z_range_nm=(0.0, 200.0), sigma_step=0.25, weights=wts)
    ref = sum(_reference(t[m], 10.0, ext, sigma_step=0.25, weights=wts[m])[..., None] * c
              for m, c in _z_groups(t, 0.0, 200.0, 5, "viridis") if m.any())
    _close(r.image, ref)
    assert r.n_outside == int(((t["x_nm"] < 100) | (t["x_nm"] >= 900)).sum())
    assert r.cmap == "viridis" and r.n_levels == 5 and r.z_range_nm == (0.0, 200.0)
    # by channel: each colour's hue, rejected (-1) rows grey
    r = render_color(t, color_by="color", method="gaussian", px_size_nm=10.0, extent_nm=ext, sigma_nm=12.0)
    c = t["color"]
    groups = [(c == k, image.COLOR_PALETTE[k]) for k in range(3)] + [(c < 0, np.array([0.5, 0.5, 0.5]))]
    ref = sum(_reference(t[m], 10.0, ext, sigma_nm=12.0)[..., None] * col for m, col in groups)
    _close(r.image, ref)


def test_histogram_colours_are_each_colours_histogram_tinted_to_the_last_bit():
    t = _table(n=20000, nan_z=0.05)
    wts = t["photons"] / 1000
    for kw in ({}, {"weights": wts}, {"extent_nm": (100.0, 800.0, -20.0, 600.0)}):
        r = render_color(t, color_by="z", method="histogram", px_size_nm=10.0, z_range_nm=(-200.0, 250.0), **kw)
        ext = r.extent_nm
        ref = np.zeros(r.image.shape)
        n_out = 0
        for m, col in _z_groups(t, -200.0, 250.0, 16):
            if not m.any():
                continue
            h = render_histogram(t[m], px_size_nm=10.0, extent_nm=ext,
                                 weights=None if "weights" not in kw else wts[m])
            n_out += h.n_outside
            for ch in range(3):
                if col[ch]:
                    ref[..., ch] += col[ch] * h.image
        assert np.array_equal(r.image, ref)
        assert r.n_outside == n_out
    r = render_color(t, color_by="color", method="histogram", px_size_nm=10.0)
    c = t["color"]
    ref = np.zeros(r.image.shape)
    for m, col in [(c == k, image.COLOR_PALETTE[k]) for k in range(3)] + [(c < 0, np.array([0.5, 0.5, 0.5]))]:
        h = render_histogram(t[m], px_size_nm=10.0, extent_nm=r.extent_nm)
        for ch in range(3):
            ref[..., ch] += col[ch] * h.image
    assert np.array_equal(r.image, ref)


def test_a_colour_of_no_rows_an_empty_table_and_errors():
    t = _table(n=50)
    ext = (0.0, 1000.0, 0.0, 1000.0)
    r = render_color(t[np.zeros(50, bool)], color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=ext,
                     z_range_nm=(0.0, 1.0))
    assert r.image.shape == (100, 100, 3) and not r.image.any()
    bad = t.with_columns(sigma_y_nm=np.where(np.arange(50) == 7, np.nan, t["sigma_y_nm"]))
    with pytest.raises(image.InputError, match="1 localization"):
        render_color(bad, color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=ext)
    with pytest.raises(image.InputError, match="render method"):
        render_color(t, color_by="z", method="splat", px_size_nm=10.0, extent_nm=ext)
    with pytest.raises(image.InputError, match="sigma_step"):
        render_color(t, color_by="z", method="gaussian", px_size_nm=10.0, extent_nm=ext, sigma_step=0.0)
