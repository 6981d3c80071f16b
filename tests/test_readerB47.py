"""Read of session 47's report, progress, napari and MLE-chunk changes (helper readerB): the MLE table does not depend
on the chunk size, the FRC's scipy FFT gives numpy's numbers, the report's new rows on tables without the new columns,
and the napari colour layers on render's own grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from plexloc.table import LocTable

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _table(n: int, seed: int = 0, **extra) -> LocTable:
    rng = np.random.default_rng(seed)
    cols = {"frame": np.arange(n) % 7, "x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 2000, n),
            "z_nm": np.zeros(n), "photons": np.full(n, 1000.0)}
    cols.update(extra)
    return LocTable(cols)


def test_mle_table_is_the_same_for_every_chunk_size():
    # the chunks only cut the loop over frames: detection and fits are per frame, and the camera check of the first
    # frames (clip levels) gave the same levels for a chunk of one frame as for the whole movie
    from test_mlestream47 import _movie

    from plexloc.mle import fit_movie

    cfg, frames = _movie(frames=16, size=32)
    tables = {}
    for b in (1, 7, 16, 256):
        stats: dict = {}
        tables[b] = fit_movie(frames, cfg, batch_frames=b, stats=stats)
        assert stats["chunk_frames"] == b and stats["frames"] == 16
        assert np.isfinite(stats["frames_per_s"]) and stats["frames_per_s"] > 0
    ref = tables[256]
    assert len(ref) > 20
    for b, t in tables.items():
        assert t.columns == ref.columns
        for c in ref.columns:
            np.testing.assert_array_equal(np.asarray(t[c]), np.asarray(ref[c]), err_msg=f"batch_frames {b}: {c}")


def test_mle_frames_per_s_of_a_one_frame_movie():
    from test_mlestream47 import _movie

    from plexloc.mle import fit_movie

    cfg, frames = _movie(frames=1, size=32)
    stats: dict = {}
    fit_movie(frames, cfg, stats=stats)
    assert stats["frames"] == 1 and stats["chunk_frames"] == 256
    assert stats["seconds"] > 0 and stats["frames_per_s"] == pytest.approx(1 / stats["seconds"])


@pytest.mark.parametrize("n", [64, 97, 563])
def test_frc_scipy_fft_gives_numpys_numbers(n):
    # frc() transforms float64 tiles (its window is float64): scipy's FFT and numpy's agree bit for bit there
    import scipy.fft

    from plexloc.render.frc import _tukey

    img = np.random.default_rng(n).poisson(0.3, (n, n)).astype(np.float32)  # a histogram tile
    win = np.outer(_tukey(n), _tukey(n))
    x = (img - (img * win).sum() / win.sum()) * win
    assert x.dtype == np.float64
    np.testing.assert_array_equal(scipy.fft.rfft2(x), np.fft.rfft2(x))


def test_report_rows_on_tables_without_the_new_columns():
    from plexloc.render.report import build_report

    one = build_report(_table(1)).summary
    assert one["mean localizations per frame"].startswith("1 ")
    assert "converged (maximum-likelihood fit)" not in one
    assert "NeNA: the nearest localization of the next frame within 150 nm" in one["report settings"]
    no_bound = build_report(_table(50, converged=np.r_[np.ones(40, int), np.zeros(10, int)])).summary
    assert no_bound["converged (maximum-likelihood fit)"].startswith("40 of 50 rows (80.0 %); 10 rows did not "
                                                                     "converge")
    assert "at_bound" not in no_bound["converged (maximum-likelihood fit)"]
    page = build_report(_table(50, z_nm=np.linspace(-300, 300, 50),
                               converged=np.r_[np.ones(40, int), np.zeros(10, int)],
                               at_bound=np.r_[np.zeros(40, int), np.full(6, 2), np.full(4, 1)]))
    assert "10 z on its bound" not in page.summary["converged (maximum-likelihood fit)"]
    assert "6 z on its bound" in page.summary["converged (maximum-likelihood fit)"]
    assert "6 of 50 rows (12.0 %) ended on the fit&#x27;s z bound" in page.html
    nan_z = build_report(_table(50, z_nm=np.full(50, np.nan))).summary
    assert nan_z["mean localizations per frame"].startswith("7.14 ")


def test_report_settings_name_nenas_own_default_radius(monkeypatch):
    # the settings row said 150 nm (a copy of nena's default) where NeNA was not run (a table of one row)
    import plexloc.render.nena as nena_module
    from plexloc.render.report import build_report

    monkeypatch.setattr(nena_module.nena, "__kwdefaults__", {"r_max_nm": 200.0})
    assert "within 200 nm" in build_report(_table(1)).summary["report settings"]


@pytest.mark.parametrize("sigma", [False, True])
def test_napari_colour_layers_lie_on_renders_grid(tmp_path, sigma):
    from plexloc.io.formats import write_locs
    from plexloc.napari._reader import read_localizations
    from plexloc.render.image import render

    n = 300
    colour = np.r_[np.zeros(150, int), np.ones(140, int), np.full(10, -1)]
    extra = {"sigma_x_nm": np.full(n, 10.0), "sigma_y_nm": np.full(n, 12.0)} if sigma else {}
    table = _table(n, seed=1, color=colour, **extra)
    path = tmp_path / "t.csv"
    write_locs(table, path)
    layers = read_localizations(str(path))
    images = [(d, m) for d, m, kind in layers if kind == "image"]
    assert [m["colormap"] for _, m in images] == ["gray", "magenta", "green"]
    assert [m["visible"] for _, m in images] == [False, True, True]
    whole = render(table, method="gaussian" if sigma else "histogram", px_size_nm=5.0,
                   **({"min_sigma_nm": 2.5} if sigma else {}))
    for (data, meta), k in zip(images, (-1, 0, 1)):
        assert data.shape == whole.image.shape
        assert meta["translate"] == (whole.extent_nm[2] + 2.5, whole.extent_nm[0] + 2.5)
        assert float(data.sum()) == pytest.approx(np.sum(colour == k), rel=1e-4)
    np.testing.assert_allclose(sum(d.astype(np.float64) for d, _ in images), whole.image, atol=1e-5)
    points = layers[-1][1]
    np.testing.assert_allclose(points["face_color"][colour < 0, :3], 0.5)
