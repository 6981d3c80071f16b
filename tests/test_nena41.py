"""NeNA where the precision varies from row to row: the NeNA the predicted σ give and their fitted scale k.

The tables are blinking molecules whose every localization is drawn with its own σ = 10 nm · sqrt(1000 / photons)
(photons log-normal or exponential, as in SMLM), with that σ in sigma_x_nm / sigma_y_nm (or crlb_x_nm / crlb_y_nm).
The single-σ NeNA of such a table is neither the median nor the rms of the σ (bench/nena41.py); what it should be
compared with is the NeNA the σ give, and k, the factor the σ need, says whether they are right.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.render.nena import nena, nena_against_predicted_text, nena_predicted_density, predicted_sigma_columns
from plexloc.render.report import build_report
from plexloc.table import LocTable


def _table(photons: str = "constant", *, too_small: float = 1.0, columns: str = "sigma", anisotropy: float = 1.0,
           dense: bool = False, seed: int = 1) -> LocTable:
    """2,000 molecules over 20 x 20 µm (dense: 10,000 over 7 x 7 µm, about 10 % chance neighbours); every row
    redrawn about its molecule with σ_x = 10 nm · sqrt(1000 / photons), σ_y = anisotropy · σ_x; the predicted σ
    divided by ``too_small``."""
    rng = np.random.default_rng(seed)
    m, fov = (10000, 7000.0) if dense else (2000, 20000.0)
    t = blinking_table(structure_points("uniform", m, fov_nm=fov, rng=rng), n_frames=1000, rng=rng,
                       precision_nm=1.0, mean_on_frames=2.5)
    n = len(t)
    if photons == "constant":
        n_ph = np.full(n, 1000.0)
    elif photons == "lognormal":
        n_ph = 1000.0 * np.exp(rng.normal(0.0, 1.2, n))
    else:
        n_ph = np.maximum(100.0, rng.exponential(1000.0, n))
    sx = 10.0 * np.sqrt(1000.0 / n_ph)
    sy = anisotropy * sx
    cols = {"frame": np.asarray(t["frame"]), "x_nm": np.asarray(t["x_true_nm"]) + rng.normal(0.0, 1.0, n) * sx,
            "y_nm": np.asarray(t["y_true_nm"]) + rng.normal(0.0, 1.0, n) * sy, "z_nm": np.zeros(n), "photons": n_ph}
    cx, cy = ("sigma_x_nm", "sigma_y_nm") if columns == "sigma" else ("crlb_x_nm", "crlb_y_nm")
    cols[cx], cols[cy] = sx / too_small, sy / too_small
    return LocTable(cols)


@pytest.mark.parametrize("dense", [False, True])
def test_constant_precision_gives_k_one_and_the_nena_it_measures(dense):
    t = _table(dense=dense)
    r = nena(t)
    assert len(r.distances_nm) > (40000 if dense else 8000)
    assert (0.05 < r.predicted_chance_share < 0.2) if dense else (r.predicted_chance_share < 0.01)
    assert r.scale_k == pytest.approx(1.0, abs=min(4 * r.scale_k_se, 0.02))
    assert r.scale_k_se == pytest.approx(1.0 / np.sqrt(2 * r.info["n_pairs_predicted"]), rel=0.4)
    assert r.expected_sigma_nm == pytest.approx(10.0, abs=0.02)  # the predicted σ give their own value
    assert r.sigma_nm == pytest.approx(r.expected_sigma_nm, abs=4 * r.sigma_se_nm)
    assert r.predicted_from == ("sigma_x_nm", "sigma_y_nm")


@pytest.mark.parametrize("photons, dense, anisotropy", [("lognormal", False, 1.0), ("exponential", False, 1.0),
                                                        ("lognormal", True, 1.0), ("exponential", True, 1.0),
                                                        ("lognormal", False, 1.5)])
def test_varying_precision_nena_matches_the_expected_one_not_the_median(photons, dense, anisotropy):
    """σ ∝ 1/√photons over an order of magnitude: NeNA reads 20-30 % above the median σ, and within 4 of its
    standard errors of the NeNA that the σ give (bench/nena41.py: |difference| <= 2.9 standard errors over 5 seeds
    of 10 tables); σ_y = 1.5 σ_x needs the Hoyt density (the Rayleigh of the mean variance read 2.3 % off)."""
    t = _table(photons, dense=dense, anisotropy=anisotropy)
    r = nena(t)
    median = float(np.median(np.sqrt((np.asarray(t["sigma_x_nm"]) ** 2 + np.asarray(t["sigma_y_nm"]) ** 2) / 2)))
    assert r.sigma_nm > 1.15 * median  # the median σ is no measure of what NeNA reads
    assert r.sigma_nm == pytest.approx(r.expected_sigma_nm, abs=4 * r.sigma_se_nm)
    assert abs(r.sigma_nm / r.expected_sigma_nm - 1) < 0.015
    assert r.scale_k == pytest.approx(1.0, abs=4 * r.scale_k_se)
    rms = float(np.sqrt(np.mean(np.asarray(t["sigma_x_nm"]) ** 2 + np.asarray(t["sigma_y_nm"]) ** 2) / 2))
    assert r.sigma_nm < 0.95 * rms  # nor is the rms (the fit gives the wide tail partly to the chance neighbours)


@pytest.mark.parametrize("photons", ["constant", "lognormal"])
def test_predicted_sigma_too_small_by_1_5_gives_k_1_5(photons):
    t = _table(photons, too_small=1.5)
    r = nena(t)
    assert r.scale_k == pytest.approx(1.5, abs=min(4 * r.scale_k_se, 0.03))
    assert r.sigma_nm / r.expected_sigma_nm > 1.35  # NeNA well above what the σ give
    if photons == "constant":
        assert r.expected_sigma_nm == pytest.approx(10.0 / 1.5, abs=0.02)


def test_the_report_line_gives_the_expected_nena_and_k():
    t = _table("lognormal", too_small=1.5)
    rep = build_report(t, px_size_nm=50.0, frc_px_size_nm=20.0)  # (coarse image and FRC: the NeNA section is tested)
    line = rep.summary["NeNA precision (nm)"]
    m = re.fullmatch(r"([\d.]+) ± ([\d.e-]+) \((\d+) pairs in consecutive frames\); ([\d.]+) nm expected from the "
                     r"predicted σ \(sigma_x_nm, sigma_y_nm\); measured / predicted σ: k = ([\d.]+) ± ([\d.e-]+) "
                     r"\(1: calibrated\)", line)
    assert m, line
    r = rep.nena
    assert float(m[1]) == pytest.approx(r.sigma_nm, abs=0.05)
    assert float(m[4]) == pytest.approx(r.expected_sigma_nm, abs=0.05) and float(m[4]) < 0.75 * float(m[1])
    assert float(m[5]) == pytest.approx(1.5, abs=0.02) and 0 < float(m[6]) < 0.02
    assert "nm expected from the predicted σ (sigma_x_nm, sigma_y_nm)" in rep.html
    d = r.to_dict()
    assert d["scale_k"] == r.scale_k and d["expected_sigma_nm"] == r.expected_sigma_nm
    assert d["predicted_from"] == "sigma_x_nm, sigma_y_nm" and d["scale_k_se"] > 0


def test_crlb_columns_serve_where_there_is_no_sigma_and_none_gives_no_expected_value():
    crlb = _table("lognormal", columns="crlb")
    assert predicted_sigma_columns(crlb) == ("crlb_x_nm", "crlb_y_nm")
    r = nena(crlb)
    assert r.scale_k == pytest.approx(1.0, abs=4 * r.scale_k_se)
    assert "expected from the predicted σ (crlb_x_nm, crlb_y_nm)" in nena_against_predicted_text(r)  # the report's
    both = crlb.with_columns(sigma_x_nm=np.asarray(crlb["crlb_x_nm"]) / 2, sigma_y_nm=np.asarray(crlb["crlb_y_nm"]) / 2)
    assert nena(both).scale_k == pytest.approx(2.0, abs=0.04)  # the network's σ first
    bare = LocTable({c: crlb[c] for c in ("frame", "x_nm", "y_nm", "z_nm", "photons")})
    r = nena(bare)
    assert np.isfinite(r.sigma_nm) and np.isnan(r.expected_sigma_nm) and np.isnan(r.scale_k)
    assert "no predicted σ" in r.info["no_expected"] and nena_against_predicted_text(r) is None
    nans = crlb.with_columns(crlb_x_nm=np.full(len(crlb), np.nan))
    assert predicted_sigma_columns(nans) is None


def test_the_predicted_density_is_the_density_of_the_distances():
    """One pair's scale and ellipticity: the density integrates to 1 on the disk and is that of |Δ| for Δ ~ N(0,
    diag(a²(1 + e), a²(1 - e))) (numerically over the angle), the Hoyt density where e ≠ 0."""
    d = np.linspace(0.0, 150.0, 30001)
    for a, e in ((14.0, 0.0), (14.0, 0.385), (20.0, -0.7)):
        p = nena_predicted_density(d, np.array([a]), np.array([1.0]), 0.0, 150.0, ellipticity=np.array([e]))
        assert np.trapezoid(p, d) == pytest.approx(1.0, abs=1e-5)
        vx, vy = a * a * (1 + e), a * a * (1 - e)
        th = np.linspace(0.0, 2 * np.pi, 4001)[:-1]
        q = d[::100, None]
        ref = (q[:, 0] * np.mean(np.exp(-(q * np.cos(th)) ** 2 / (2 * vx) - (q * np.sin(th)) ** 2 / (2 * vy)), axis=1)
               * 2 * np.pi / (2 * np.pi * np.sqrt(vx * vy)))
        np.testing.assert_allclose(p[::100], ref, atol=1e-6 * p.max())
    mix = nena_predicted_density(d, np.array([5.0, 30.0]), np.array([0.7, 0.3]), 0.1, 150.0)
    assert np.trapezoid(mix, d) == pytest.approx(1.0, abs=1e-4)


def test_the_figure_draws_the_predicted_density_and_its_k_times():
    from plexloc.render.figures import nena_figure

    r = nena(_table("lognormal", too_small=1.5))
    calls = []

    def density(x, k=1.0):
        calls.append(k)
        return r.predicted_density(x, k=k)

    png = nena_figure(r.distances_nm, r.sigma_nm, r.chance_share, r.r_max_nm, predicted_density=density,
                      expected_sigma_nm=r.expected_sigma_nm, scale_k=r.scale_k, scale_k_se=r.scale_k_se)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and calls == [1.0, r.scale_k]
    # the k-scaled density is that of the distances (χ² per bin about 1 on 1 nm bins), the k = 1 one is not
    n = len(r.distances_nm)
    h, edges = np.histogram(r.distances_nm, bins=60, range=(0.0, 60.0))
    mid = (edges[:-1] + edges[1:]) / 2
    chi2 = {k: float(np.mean((h - n * r.predicted_density(mid, k=k)) ** 2 / (n * r.predicted_density(mid, k=k))))
            for k in (r.scale_k, 1.0)}
    assert chi2[r.scale_k] < 2.0 and chi2[1.0] > 20.0, chi2
    calls.clear()
    r1 = nena(_table("lognormal"))
    nena_figure(r1.distances_nm, r1.sigma_nm, r1.chance_share, r1.r_max_nm, predicted_density=density,
                expected_sigma_nm=r1.expected_sigma_nm, scale_k=r1.scale_k, scale_k_se=r1.scale_k_se)
    assert calls == [1.0]  # k = 1 within its errors: one curve


def test_doctests():
    import doctest

    import plexloc.render.nena as module

    assert doctest.testmod(module).failed == 0


def test_predicted_sigma_far_off_still_give_k_and_say_why_there_is_no_expected_value():
    """σ 20x too large predict a NeNA of 187 nm, beyond the search radius's reach (r_max / 4): no expected value,
    said, and k = 0.05; σ 100x too small: k = 100."""
    big = nena(_table(too_small=1 / 20))
    assert np.isnan(big.expected_sigma_nm) and "not small against the search radius" in big.info["no_expected"]
    assert big.scale_k == pytest.approx(0.05, rel=0.02)
    text = nena_against_predicted_text(big)
    assert text.startswith("no NeNA expected from the predicted σ (sigma_x_nm, sigma_y_nm)") and "k = 0.05" in text
    small = nena(_table(too_small=100.0))
    assert small.scale_k == pytest.approx(100.0, rel=0.02) and small.expected_sigma_nm == pytest.approx(0.1, abs=0.01)
