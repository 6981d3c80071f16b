"""Rendering: histogram counts, Gaussian normalisation and width, colour, 16-bit TIFF / PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plexloc.errors import InputError
from plexloc.render.image import nice_scale_bar_nm, render, render_color, render_gaussian, render_histogram, save_image
from plexloc.table import LocTable


def _table(n=20000, seed=0, **extra):
    rng = np.random.default_rng(seed)
    return LocTable({"frame": np.zeros(n, int), "x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 1000, n),
                     "z_nm": rng.uniform(-400, 400, n), "photons": np.ones(n), **extra})


def test_histogram_counts_every_inside_localization():
    t = _table()
    r = render_histogram(t, px_size_nm=10.0, extent_nm=(0, 1000, 0, 1000))
    assert r.image.shape == (100, 100)
    inside = int(np.count_nonzero(t["x_nm"] < 1000))
    assert r.image.sum() == inside and r.n_outside == len(t) - inside
    # one localization lands in its pixel: x along columns, y along rows
    one = LocTable({"frame": [0], "x_nm": [35.0], "y_nm": [12.0], "z_nm": [0.0], "photons": [1.0]})
    img = render_histogram(one, px_size_nm=10.0, extent_nm=(0, 50, 0, 30)).image
    assert img[1, 3] == 1 and img.sum() == 1


def test_gaussian_is_normalised_and_has_the_localizations_sigma():
    n = 4000
    t = LocTable({"frame": np.zeros(n, int), "x_nm": np.full(n, 500.0), "y_nm": np.full(n, 500.0),
                  "z_nm": np.zeros(n), "photons": np.ones(n), "sigma_x_nm": np.r_[np.full(n // 2, 20.0), np.full(n // 2, 40.0)],
                  "sigma_y_nm": np.r_[np.full(n // 2, 20.0), np.full(n // 2, 40.0)]})
    r = render_gaussian(t, px_size_nm=2.0, extent_nm=(0, 1000, 0, 1000))
    assert r.image.sum() == pytest.approx(n, rel=1e-3)
    prof = r.image.sum(axis=0)
    xc = (np.arange(prof.size) + 0.5) * 2.0
    var = np.sum(prof * (xc - 500) ** 2) / prof.sum()
    assert var == pytest.approx((20.0**2 + 40.0**2) / 2 + 2.0**2 / 12, rel=0.03)
    with pytest.raises(InputError, match="sigma"):
        render_gaussian(_table(), px_size_nm=10.0)
    padded = (-100, 2100, -100, 1100)  # blur spills past the bounding box: pad it
    assert render_gaussian(_table(), px_size_nm=10.0, sigma_nm=15.0, extent_nm=padded).image.sum() == pytest.approx(20000)


def test_color_by_z_and_channel():
    t = _table(color=np.r_[np.zeros(10000, int), np.ones(10000, int)])
    rz = render_color(t, color_by="z", px_size_nm=20.0)
    assert rz.image.shape[-1] == 3 and "z from" in rz.legend
    rc = render_color(t, color_by="color", px_size_nm=20.0)
    # colour 0 is magenta (as much red as blue), colour 1 green-dominated; each channel's brightness is counted once
    assert rc.image[..., 0].sum() == pytest.approx(rc.image[..., 2].sum(), rel=1e-9) and rc.image[..., 0].sum() > 0
    assert rc.image[..., 1].sum() == pytest.approx(rc.image[..., 0].sum(), rel=1e-9)
    with pytest.raises(InputError, match="color"):
        render_color(_table(), color_by="color", px_size_nm=20.0)
    with pytest.raises(InputError, match="color_by"):
        render_color(t, color_by="photons", px_size_nm=20.0)


def test_files_tiff16_png_scale_bar(tmp_path):
    r = render(_table(), method="histogram", px_size_nm=10.0)
    # by default a TIFF's pixels are data: no bar burned in (its 65535 pixels read as localizations in Fiji)
    plain = save_image(r, tmp_path / "plain.tif")
    assert plain["scale_bar_nm"] == 0.0
    data = tifffile.imread(tmp_path / "plain.tif")
    assert (data == 65535).sum() == (r.image == r.image.max()).sum()
    assert save_image(r, tmp_path / "bar.png")["scale_bar_nm"] == 200.0  # a PNG is a picture: bar by default
    info = save_image(r, tmp_path / "img.tif", scale_bar=True)
    assert info["scale_bar_nm"] == nice_scale_bar_nm(r.image.shape[1] * 10.0) == 200.0
    with tifffile.TiffFile(tmp_path / "img.tif") as f:
        arr = f.asarray()
        assert arr.dtype == np.uint16 and arr.shape == r.image.shape and arr.max() == 65535
        assert f.imagej_metadata["unit"] == "um"
        assert f.pages[0].tags["XResolution"].value == (100, 1)  # 100 px per µm at 10 nm
    # the scale bar: a row of saturated pixels 20 px long at the bottom right
    row = arr[np.flatnonzero((arr == 65535).sum(axis=1) >= 20)[-1]]
    assert (row == 65535).sum() >= 20
    rgb = render_color(_table(), color_by="z", px_size_nm=10.0)
    save_image(rgb, tmp_path / "rgb.tif")
    assert tifffile.imread(tmp_path / "rgb.tif").shape == rgb.image.shape
    save_image(rgb, tmp_path / "rgb.png")
    import matplotlib.image

    png = matplotlib.image.imread(tmp_path / "rgb.png")
    assert png.shape[:2] == rgb.image.shape[:2]
    with pytest.raises(InputError, match="suffix"):
        save_image(r, tmp_path / "img.jpg")
    assert not (tmp_path / "img.jpg").exists()


def test_bad_geometry():
    with pytest.raises(InputError, match="pixel size"):
        render_histogram(_table(), px_size_nm=0.0)
    with pytest.raises(InputError, match="exceeds"):
        render_histogram(_table(), px_size_nm=0.001)
    assert nice_scale_bar_nm(10000.0) == 2000.0 and nice_scale_bar_nm(2600.0) == 500.0


def test_doctests():
    import doctest

    from plexloc.render import image

    assert doctest.testmod(image).failed == 0


def test_render_color_takes_each_colours_weights():
    from plexloc.render.image import render_color

    t = LocTable({"frame": [0, 0, 0], "x_nm": [5.0, 15.0, 25.0], "y_nm": [5.0, 5.0, 5.0], "z_nm": [0.0, 0, 0],
                  "photons": [1.0, 1, 1], "color": [0, 1, 0]})
    r = render_color(t, color_by="color", px_size_nm=10, extent_nm=(0, 30, 0, 10), method="histogram",
                     weights=np.array([1.0, 10.0, 100.0]))
    plain = render_color(t, color_by="color", px_size_nm=10, extent_nm=(0, 30, 0, 10), method="histogram")
    # each pixel holds one localization: its weight scales that pixel's colour
    ratio = r.image[0].sum(axis=1) / np.maximum(plain.image[0].sum(axis=1), 1e-12)
    np.testing.assert_allclose(ratio, [1.0, 10.0, 100.0], rtol=1e-6)


def test_a_gaussian_image_of_the_default_extent_keeps_the_outermost_spots_whole():
    """The default extent was the bounding box: a localization on its edge lost half its Gaussian or more
    (this image summed to 0.59 of 2). Grown by 3 sigma, the image holds both whole."""
    t = LocTable({"frame": [0, 0], "x_nm": [100.0, 900.0], "y_nm": [100.0, 700.0], "z_nm": [0.0, 0.0],
                  "photons": [1.0, 1.0], "sigma_x_nm": [20.0, 20.0], "sigma_y_nm": [30.0, 30.0]})
    r = render_gaussian(t, px_size_nm=5.0)
    assert r.image.sum() == pytest.approx(2.0, abs=0.01)
    x0, x1, y0, y1 = r.extent_nm
    assert x0 <= 100.0 - 3 * 30.0 and x1 >= 900.0 + 3 * 30.0 and y0 <= 100.0 - 90.0 and y1 >= 790.0
