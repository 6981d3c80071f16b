"""Colour assignment on network-like tables (session 49, colour helper): eq. 3's chi-squares divided by the table's
own noise scale, as the misfit and mixed tests' are.

The tables are shaped like the network's output: per-channel photons that scatter 1.5x the EMCCD shot noise, and
predicted ``sigma_photons_chN`` ``b`` times that scatter (with a log-normal spread of 0.2). With sigmas too small
(``b`` 0.3), eq. 3 taken as given put 1,055 of 20,000 wrong colours at ``color_prob`` >= 0.999 and the rows at >= 0.9
were 91.8 % right (AF647/CF680 ratios at about 1,000 photons; ``bench/colour49.py``); ``--reject-mixed`` multiplied
that over-confident probability and rejected 30 % of two dyes' emitters fitted as one against 59 % with calibrated
sigmas."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.post.color import assign_colors, chi2_noise_factor, color_probabilities, photon_matrix
from plexloc.table import LocTable

AF = np.array([[0.173, 0.827], [0.019, 0.981]])


def network_like(b: float, *, n: int = 4000, merged: float = 0.0, seed: int = 0, photons: float = 1000.0):
    rng = np.random.default_rng(seed)
    dye = rng.integers(0, 2, n)
    total = np.exp(rng.normal(np.log(photons), 0.6, n))
    mu = total[:, None] * AF[dye]
    is_merged = rng.uniform(size=n) < merged
    second = total * rng.uniform(0.25, 1.0, n)
    mu[is_merged] += second[is_merged, None] * AF[1 - dye[is_merged]]
    bg_px = 4.0 * np.pi * 50.0
    obs = mu + rng.normal(size=mu.shape) * 1.5 * np.sqrt(2.0 * (mu + bg_px))
    sig = b * 1.5 * np.sqrt(2.0 * (np.maximum(obs, 0.0) + bg_px)) * np.exp(rng.normal(0.0, 0.2, mu.shape))
    t = LocTable({"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
                  "photons": obs.sum(axis=1), "photons_ch0": obs[:, 0], "photons_ch1": obs[:, 1],
                  "sigma_photons_ch0": sig[:, 0], "sigma_photons_ch1": sig[:, 1]})
    return t, dye, is_merged


def test_sigmas_too_small_no_longer_make_eq3_over_confident():
    t, dye, _ = network_like(0.3)
    out, report = assign_colors(t, AF, 0.9)
    c, p = np.asarray(out["color"]), np.asarray(out["color_prob"])
    kept = c >= 0
    assert report.noise_factor > 5.0 and report.noise_scaled
    assert np.mean(c[kept] == dye[kept]) > 0.96  # 0.918 unscaled
    assert np.sum(kept & (c != dye) & (p >= 0.999)) <= 10  # 200 of 4,000 unscaled
    # unscaled on request: eq. 3 with the sigmas as given
    raw, raw_report = assign_colors(t, AF, 0.9, noise_scale=False)
    n, s, _ = photon_matrix(t)
    np.testing.assert_allclose(np.asarray(raw["color_prob"]), color_probabilities(n, s, AF).max(axis=1))
    assert not raw_report.noise_scaled and raw_report.noise_factor == report.noise_factor
    assert np.mean(np.asarray(raw["color"])[np.asarray(raw["color"]) >= 0] == dye[np.asarray(raw["color"]) >= 0]) < 0.95


def test_colours_do_not_depend_on_how_much_too_small_the_sigmas_are():
    a, _ = assign_colors(network_like(0.5)[0], AF, 0.9)
    b, _ = assign_colors(network_like(0.3)[0], AF, 0.9)
    np.testing.assert_array_equal(np.asarray(a["color"]), np.asarray(b["color"]))
    np.testing.assert_allclose(np.asarray(a["color_prob"]), np.asarray(b["color_prob"]), atol=1e-6)


def test_reject_mixed_on_network_like_tables_with_small_sigmas():
    for b in (1.0, 0.3):
        t, dye, merged = network_like(b, merged=0.1, n=3000)
        out, _ = assign_colors(t, AF, 0.9, mixed_prior=0.01)
        c = np.asarray(out["color"])
        rejected = np.mean(c[merged] < 0)
        assert rejected > 0.5, (b, rejected)  # 0.30 at b 0.3 before: eq. 3's probability was not scaled
        assert np.mean(c[~merged] < 0) < 0.4


def test_sigmas_too_large_said_not_scaled_down():
    t, _, _ = network_like(3.0)
    _, report = assign_colors(t, AF, 0.9)
    assert report.noise_factor == 1.0 and report.noise_estimate < 0.2
    assert "look too large (not scaled down)" in report.format_table()


def test_small_tables_keep_scale_one():
    t, _, _ = network_like(0.3, n=15)
    out, report = assign_colors(t, AF, 0.9)
    n, s, _ = photon_matrix(t)
    assert report.noise_factor == 1.0
    np.testing.assert_allclose(np.asarray(out["color_prob"]), color_probabilities(n, s, AF).max(axis=1))


def test_noise_factor_truncation_resists_merged_rows():
    rng = np.random.default_rng(1)
    clean = 2.0 * rng.chisquare(1, 7000)
    merged = 2.0 * (rng.chisquare(1, 3000) + rng.uniform(0, 40, 3000))  # two dyes fitted as one: far off
    f = chi2_noise_factor(np.concatenate([clean, merged]), 1)
    assert abs(chi2_noise_factor(clean, 1) - 2.0) < 0.15
    assert 1.8 < f < 3.0  # the plain median: 5.9
    assert chi2_noise_factor(clean[:10], 1) == 1.0


@pytest.mark.parametrize("noise_scale", [True, False])
def test_cli_no_noise_scale(tmp_path, noise_scale):
    from plexloc.cli.main import main
    from plexloc.io import write_table

    t, _, _ = network_like(0.3, n=300)
    write_table(t, tmp_path / "locs.csv")
    args = ["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv"), "--ratios", "0.173", "0.827",
            "--ratios", "0.019", "0.981", "--json", str(tmp_path / "c.json")]
    assert main(args + ([] if noise_scale else ["--no-noise-scale"])) == 0
    import json

    rep = json.loads((tmp_path / "c.json").read_text())
    assert rep["noise_scaled"] is noise_scale and rep["noise_factor"] > 5.0


def test_ratios_in_percent_refused_with_the_fractions_named():
    from plexloc.errors import InputError

    t, _, _ = network_like(1.0, n=50)
    with pytest.raises(InputError, match=r"percentages\? give fractions: 0.8 0.2"):
        assign_colors(t, [[80, 20], [30, 70]])
    with pytest.raises(InputError) as err:
        assign_colors(t, [[1.1, 0.2], [0.3, 0.7]])
    assert "percentages" not in str(err.value)
