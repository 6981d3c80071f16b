"""The render functions as a method developer calls them (the library walk of 2026-12-06): a dict or DataFrame of
columns is a table (it was an AttributeError 'check_finite'); save_image with its arguments swapped says so (it was
a TypeError from pathlib)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.render import render, save_image
from plexloc.render.image import render_color, render_gaussian, render_histogram
from plexloc.table import LocTable

COLS = {"frame": np.zeros(4, np.int64), "x_nm": np.array([10.0, 20.0, 30.0, 95.0]),
        "y_nm": np.array([5.0, 15.0, 40.0, 45.0]), "z_nm": np.array([-100.0, 0.0, 50.0, 100.0]),
        "photons": np.full(4, 1000.0), "sigma_x_nm": np.full(4, 8.0), "sigma_y_nm": np.full(4, 8.0)}


@pytest.mark.parametrize("kind", ["dict", "dataframe"])
def test_a_dict_or_dataframe_renders_as_its_table(kind):
    import pandas as pd

    given = COLS if kind == "dict" else pd.DataFrame(COLS)
    ref = LocTable(COLS)
    for fn, opts in [(render, {}), (render_histogram, {}), (render_gaussian, {}), (render_color, {"color_by": "z"})]:
        a, b = fn(given, px_size_nm=10.0, **opts), fn(ref, px_size_nm=10.0, **opts)
        assert np.array_equal(a.image, b.image) and a.extent_nm == b.extent_nm
    assert render(given, px_size_nm=10.0).image.sum() == 4


def test_save_image_says_when_its_arguments_are_swapped(tmp_path):
    img = render(LocTable(COLS), px_size_nm=10.0)
    with pytest.raises(TypeError, match=r"save_image takes \(rendered, path\): the arguments are swapped"):
        save_image(tmp_path / "a.png", img)
    with pytest.raises(TypeError, match=r"got ndarray for rendered \(make one with render"):
        save_image(img.image, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    assert tuple(save_image(img, tmp_path / "a.png")["shape"])[:2] == img.image.shape[:2]
    with pytest.raises(TypeError, match="must be a LocTable"):
        render([1, 2, 3], px_size_nm=10.0)
