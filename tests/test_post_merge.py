"""Merging on-events (count and 1/sqrt(n) precision gain) and filtering (counts per criterion)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.filter import filter_localizations
from plexloc.post.merge import link_localizations, merge_localizations
from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.table import LocTable


def _blinking(seed=0, precision_nm=10.0, **kw):
    rng = np.random.default_rng(seed)
    mol = structure_points("uniform", 8000, fov_nm=30000.0, rng=rng)
    return blinking_table(mol, n_frames=2000, rng=rng, precision_nm=precision_nm, events_per_molecule=3, **kw)


def test_merge_count_within_5_percent_of_on_events():
    t = _blinking()
    n_events = len(np.unique(t["event"]))
    assert len(t) > 2 * n_events  # there is something to merge
    m = merge_localizations(t, radius_nm=50.0, gap=1)
    assert abs(len(m) / n_events - 1) < 0.05
    assert int(m["n_merged"].sum()) == len(t)
    np.testing.assert_allclose(m["photons"].sum(), t["photons"].sum())


def test_merge_bridges_missing_frames_with_gap():
    t = _blinking(seed=1)
    rng = np.random.default_rng(2)
    dropped = t[rng.random(len(t)) > 0.15]  # missed detections inside events
    n_events = len(np.unique(dropped["event"]))
    strict = merge_localizations(dropped, radius_nm=50.0, gap=0)
    bridged = merge_localizations(dropped, radius_nm=50.0, gap=2)
    assert len(bridged) < len(strict)
    assert abs(len(bridged) / n_events - 1) < 0.05


def test_merged_rmse_follows_inverse_sqrt_n():
    t = _blinking(seed=3, precision_nm=10.0, mean_on_frames=3.0)
    m = merge_localizations(t, radius_nm=60.0, gap=0)
    for k in (1, 2, 3, 4):
        s = m[m["n_merged"] == k]
        assert len(s) > 300
        rmse = np.sqrt(np.mean((s["x_nm"] - s["x_true_nm"]) ** 2 + (s["y_nm"] - s["y_true_nm"]) ** 2) / 2)
        assert rmse == pytest.approx(10.0 / np.sqrt(k), rel=0.1)
        np.testing.assert_allclose(s["sigma_x_nm"], 10.0 / np.sqrt(k))


def test_merge_photon_weights_without_uncertainties():
    t = LocTable({"frame": [0, 1], "x_nm": [0.0, 30.0], "y_nm": [0.0, 0.0], "z_nm": [0.0, 0.0],
                  "photons": [1000.0, 3000.0], "prob": [0.5, 0.9]})
    m = merge_localizations(t, radius_nm=50.0)
    assert m["x_nm"].tolist() == [22.5] and m["photons"].tolist() == [4000.0] and m["prob"].tolist() == [0.9]
    assert "sigma_x_nm" not in m
    assert link_localizations(t, radius_nm=10.0, gap=3).tolist() == [0, 1]  # too far apart
    with pytest.raises(InputError, match="sigma_x_nm"):
        merge_localizations(t, weights="inverse_variance")
    with pytest.raises(InputError, match="radius"):
        merge_localizations(t, radius_nm=0.0)


def test_filter_counts_per_criterion():
    n = 1000
    rng = np.random.default_rng(0)
    t = LocTable({"frame": np.zeros(n, int), "x_nm": rng.uniform(0, 1e3, n), "y_nm": rng.uniform(0, 1e3, n),
                  "z_nm": rng.uniform(-800, 800, n), "photons": rng.uniform(0, 5000, n),
                  "prob": rng.uniform(0, 1, n), "sigma_x_nm": rng.uniform(0, 40, n), "sigma_y_nm": rng.uniform(0, 40, n)})
    kept, rep = filter_localizations(t, min_prob=0.5, max_sigma_nm=20.0, min_photons=1000.0, z_range_nm=(-500, 500))
    expect = (t["prob"] >= 0.5) & (np.maximum(t["sigma_x_nm"], t["sigma_y_nm"]) <= 20) & (t["photons"] >= 1000) \
        & (np.abs(t["z_nm"]) <= 500)
    assert len(kept) == rep.n_out == int(expect.sum())
    assert sum(rep.removed.values()) == n - len(kept)
    assert rep.failed["min_prob"] == int((t["prob"] < 0.5).sum())
    assert rep.removed["min_prob"] == rep.failed["min_prob"]  # first criterion
    assert "kept" in rep.format_table()
    with pytest.raises(InputError, match="bg"):
        filter_localizations(t, max_bg=10.0)
    with pytest.raises(InputError, match="z range"):
        filter_localizations(t, z_range_nm=(5, -5))
    for bad, message in ((dict(min_prob=1.5), r"min_prob must be a probability in \[0, 1\], got 1.5"),
                         (dict(min_prob=float("nan")), "min_prob must be a finite number"),
                         (dict(max_sigma_nm=-3.0), "max_sigma_nm must be > 0 nm"),
                         (dict(min_photons=100.0, max_photons=10.0), "nothing could pass")):
        with pytest.raises(InputError, match=message):
            filter_localizations(t, **bad)


def test_doctests():
    import doctest

    from plexloc.post import filter as filter_module, merge as merge_module, synthetic

    for mod in (merge_module, filter_module, synthetic):
        assert doctest.testmod(mod).failed == 0


def test_merged_photon_uncertainties_add_in_quadrature_and_colour_sees_the_frames_background():
    """Five frames of one molecule: photons per channel add up, their sigmas add in quadrature (15 -> 15 sqrt 5),
    and without sigma columns the colour assignment counts five frames of background under the summed photons."""
    from plexloc.post.color import photon_matrix

    k = 5
    t = LocTable({"frame": np.arange(k), "x_nm": np.full(k, 100.0), "y_nm": np.full(k, 100.0), "z_nm": np.zeros(k),
                  "photons": np.full(k, 200.0), "sigma_x_nm": np.full(k, 10.0), "sigma_y_nm": np.full(k, 10.0),
                  "photons_ch0": np.full(k, 100.0), "photons_ch1": np.full(k, 100.0), "bg_ch0": np.full(k, 20.0),
                  "bg_ch1": np.full(k, 20.0), "sigma_photons": np.full(k, 20.0),
                  "sigma_photons_ch0": np.full(k, 15.0), "sigma_photons_ch1": np.full(k, 15.0)})
    m = merge_localizations(t, radius_nm=50, gap=0)
    assert len(m) == 1 and m["photons_ch0"][0] == 500.0 and m["bg_ch0"][0] == 20.0
    np.testing.assert_allclose([m["sigma_photons_ch0"][0], m["sigma_photons"][0]], [15 * np.sqrt(k), 20 * np.sqrt(k)])
    bare = m.without_columns("sigma_photons_ch0", "sigma_photons_ch1")
    _, s, _ = photon_matrix(bare, psf_area_px=4 * np.pi)
    np.testing.assert_allclose(s[0], np.sqrt(500.0 + 4 * np.pi * 20.0 * k))  # not 500 + one frame's background


@pytest.mark.parametrize("sigmas", [False, True])
def test_merge_of_an_empty_table_is_an_empty_table(tmp_path, capsys, sigmas):
    """A header and no rows: an empty merged table with the same columns and n_merged, frame_last (before:
    IndexError 'boolean index did not match'), and plexloc merge exits 0 saying 0 % fewer (not 100 %)."""
    from plexloc.cli.main import main

    cols = ["frame", "x_nm", "y_nm", "z_nm", "photons"] + (["sigma_x_nm", "sigma_y_nm", "sigma_z_nm"] if sigmas else [])
    empty = LocTable({c: np.zeros(0, np.int64 if c == "frame" else float) for c in cols})
    m = merge_localizations(empty, radius_nm=50.0, gap=1)
    assert len(m) == 0 and list(m.columns) == cols + ["n_merged", "frame_last"]
    src = tmp_path / "zero.csv"
    src.write_text(",".join(cols) + "\n")
    assert main(["merge", str(src), "--out", str(tmp_path / "m.csv")]) == 0
    assert "into 0 (0.0 % fewer)" in capsys.readouterr().out
    assert (tmp_path / "m.csv").read_text().splitlines() == [",".join(cols + ["n_merged", "frame_last"])]


def test_merge_weights_has_help(capsys):
    from plexloc.cli.main import main

    with pytest.raises(SystemExit):
        main(["merge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "how positions are averaged: inverse_variance" in text and "auto (default:" in text
