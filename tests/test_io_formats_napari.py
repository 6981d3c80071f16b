"""napari plugin: reader functions and manifest, checked without napari."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import yaml

import plexloc.napari
from plexloc.io.formats import write_locs
from plexloc.napari import get_reader, read_localizations
from plexloc.table import LocTable


def _table(n=500):
    rng = np.random.default_rng(0)
    return LocTable({"frame": rng.integers(0, 10, n), "x_nm": rng.uniform(1000, 3000, n),
                     "y_nm": rng.uniform(0, 1000, n), "z_nm": np.zeros(n), "photons": rng.uniform(100, 1000, n),
                     "sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 10.0)})


def test_reader_gives_image_and_points_layers_in_nm(tmp_path):
    t = _table()
    write_locs(t, tmp_path / "locs.smlm")
    reader = get_reader(str(tmp_path / "locs.smlm"))
    assert reader is read_localizations
    (img, img_kw, img_type), (pts, pts_kw, pts_type) = reader(str(tmp_path / "locs.smlm"))
    assert (img_type, pts_type) == ("image", "points")
    assert img.sum() > 0.9 * len(t)
    px = img_kw["scale"][0]
    # the brightest pixel maps back into the localizations' region
    i, j = np.unravel_index(np.argmax(img), img.shape)
    y, x = img_kw["translate"][0] + i * px, img_kw["translate"][1] + j * px
    assert 1000 - 3 * px <= x <= 3000 + 3 * px and -3 * px <= y <= 1000 + 3 * px
    np.testing.assert_allclose(pts[:, 1], t["x_nm"]) and np.testing.assert_allclose(pts[:, 0], t["y_nm"])
    assert set(pts_kw["properties"]) == set(t.columns)
    few = read_localizations(str(tmp_path / "locs.smlm"), max_points=100)[1]
    assert len(few[0]) == 100 and "100 of 500" in few[1]["name"]


def test_reader_declines_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.csv")) is None
    assert get_reader([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) is None


def test_manifest_points_at_the_reader():
    manifest = yaml.safe_load((Path(plexloc.napari.__file__).parent / "napari.yaml").read_text())
    assert manifest["name"] == "plexloc"
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    for reader in manifest["contributions"]["readers"]:
        module, func = commands[reader["command"]].split(":")
        assert getattr(importlib.import_module(module), func) is get_reader
        assert "*.smlm" in reader["filename_patterns"]
