"""A maximum-likelihood fit's table is drawn as Gaussians of its CRLB by default, as a network's is of its predicted σ
(plexloc render, report, process and the napari reader take one rule: plexloc.render.image.default_method). Before,
every MLE table was drawn as a histogram unless --method gaussian was given."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.io.tables import write_table
from plexloc.render.image import default_method, render, rows_without_sigma, sigma_xy_columns
from plexloc.table import LocTable


def _mle_table(n: int = 300, **extra) -> LocTable:
    rng = np.random.default_rng(1)
    cols = {"frame": np.arange(n), "x_nm": rng.uniform(0, 3000, n), "y_nm": rng.uniform(0, 3000, n),
            "z_nm": np.zeros(n), "photons": np.full(n, 2000.0), "crlb_x_nm": rng.uniform(5, 15, n),
            "crlb_y_nm": rng.uniform(5, 15, n), "converged": np.ones(n, dtype=np.int64)}
    cols.update(extra)
    return LocTable(cols)


def test_an_mle_table_is_drawn_as_gaussians_of_its_crlb():
    t = _mle_table()
    assert sigma_xy_columns(t) == ("crlb_x_nm", "crlb_y_nm")
    assert default_method(t) == "gaussian" and not rows_without_sigma(t).any()
    # the image is the one render draws from those columns: a histogram holds no sub-pixel blur
    img = render(t, method=default_method(t), px_size_nm=10.0, min_sigma_nm=5.0).image
    hist = render(t, method="histogram", px_size_nm=10.0).image
    assert np.count_nonzero(img) > 20 * np.count_nonzero(hist)
    # a row whose bound is not finite (a fit that gave none): the histogram, which takes every row, with it named
    cx = np.asarray(t["crlb_x_nm"]).copy()
    cx[11] = np.inf
    bad = t.with_columns(crlb_x_nm=cx)
    assert default_method(bad) == "histogram" and np.flatnonzero(rows_without_sigma(bad)).tolist() == [11]


def test_predicted_sigma_comes_first_and_an_all_nan_sigma_gives_way_to_the_crlb():
    n = 300
    t = _mle_table(n, sigma_x_nm=np.full(n, 7.0), sigma_y_nm=np.full(n, 8.0))
    assert sigma_xy_columns(t) == ("sigma_x_nm", "sigma_y_nm") and default_method(t) == "gaussian"
    # sigma columns without a value in any row (a refined table's unrefined part, a converted file): the CRLB's
    t2 = _mle_table(n, sigma_x_nm=np.full(n, np.nan), sigma_y_nm=np.full(n, np.nan))
    assert sigma_xy_columns(t2) == ("crlb_x_nm", "crlb_y_nm") and default_method(t2) == "gaussian"
    # neither: a histogram
    plain = LocTable({k: t[k] for k in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    assert sigma_xy_columns(plain) is None and default_method(plain) == "histogram"


def test_plexloc_render_draws_an_mle_table_as_gaussians(tmp_path, capsys):
    src = tmp_path / "mle.csv"
    write_table(_mle_table(), src)
    assert main(["render", str(src), "--out", str(tmp_path / "img.png")]) == 0
    out = capsys.readouterr()
    assert "gaussian" in out.out and "histogram" not in out.out, out.out
    # a row without a bound: a histogram, and the note names the columns it read
    cx = np.asarray(_mle_table()["crlb_x_nm"]).copy()
    cx[4] = np.nan
    write_table(_mle_table().with_columns(crlb_x_nm=cx), src)
    assert main(["render", str(src), "--out", str(tmp_path / "img2.png")]) == 0
    out = capsys.readouterr()
    assert "histogram" in out.out and "crlb_x_nm/crlb_y_nm (first row 4)" in out.err, out


def test_napari_reader_draws_an_mle_table_with_its_crlb(tmp_path):
    pytest.importorskip("plexloc.napari._reader")
    from plexloc.napari._reader import read_localizations

    t = _mle_table()
    src = tmp_path / "mle.csv"
    write_table(t, src)
    image, points = read_localizations(str(src), px_size_nm=10.0)
    expected = 2 * np.sqrt(0.5 * (np.asarray(t["crlb_x_nm"]) ** 2 + np.asarray(t["crlb_y_nm"]) ** 2))
    np.testing.assert_allclose(points[1]["size"], expected, rtol=1e-9)
    hist = render(t, method="histogram", px_size_nm=10.0).image
    assert np.count_nonzero(image[0]) > 20 * np.count_nonzero(hist)


def test_grey_and_coloured_gaussian_images_of_one_table_share_their_frame():
    """The z-coloured and colour-channel Gaussian images took the histogram's bounding box while the grey one grows it
    by 3 σ (641 against 664 px on a README walk's table): the two images of one table did not overlay."""
    from plexloc.render.image import render_color

    n = 300
    rng = np.random.default_rng(3)
    t = _mle_table(n, z_nm=rng.uniform(-400, 400, n), color=rng.integers(0, 2, n))
    grey = render(t, method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)
    hist = render(t, method="histogram", px_size_nm=10.0)
    assert grey.image.shape[0] > hist.image.shape[0] + 4  # grown by 3 σ on both sides (σ 5-15 nm, 10-nm pixels)
    for by in ("z", "color"):
        col = render_color(t, color_by=by, method="gaussian", px_size_nm=10.0, min_sigma_nm=5.0)
        assert col.extent_nm == grey.extent_nm and col.image.shape[:2] == grey.image.shape
        assert col.n_outside == grey.n_outside == 0
    # the histogram keeps its own frame, coloured or not
    assert render_color(t, color_by="z", method="histogram", px_size_nm=10.0).extent_nm == hist.extent_nm
