"""NeNA: the precision of repeated localizations in consecutive frames, against the precision they were made with."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.merge import merge_localizations
from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.render.nena import MIN_PAIRS, nena, nena_caveat, nena_density
from plexloc.render.report import build_report
from plexloc.table import LocTable


def _table(precision_nm: float, n_molecules: int = 2000, fov_nm: float = 20000.0, seed: int = 1) -> LocTable:
    rng = np.random.default_rng(seed)
    return blinking_table(structure_points("uniform", n_molecules, fov_nm=fov_nm, rng=rng), n_frames=1000, rng=rng,
                          precision_nm=precision_nm, mean_on_frames=2.5)


@pytest.mark.parametrize("precision", [8.0, 12.0, 20.0])
def test_nena_recovers_the_precision_the_localizations_were_made_with(precision):
    res = nena(_table(precision))
    assert len(res.distances_nm) > 5000
    assert res.sigma_nm == pytest.approx(precision, abs=4 * res.sigma_se_nm)
    assert res.sigma_se_nm == pytest.approx(precision / np.sqrt(4 * len(res.distances_nm)), rel=0.3)
    assert res.chance_share < 0.01  # sparse: nearly every neighbour is the molecule itself


def test_nena_of_a_crowded_table_fits_the_chance_neighbours_apart():
    """20,000 molecules in 10 µm: 6 % of the nearest next-frame neighbours are other molecules. The mixture still
    gives the precision (a Rayleigh fit alone would read the chance neighbours as a wider spread)."""
    res = nena(_table(10.0, n_molecules=20000, fov_nm=10000.0))
    assert 0.03 < res.chance_share < 0.12
    assert res.sigma_nm == pytest.approx(10.0, abs=4 * res.sigma_se_nm)
    naive = np.sqrt(np.mean(res.distances_nm**2) / 4.0)  # the Rayleigh's mean square is 4 sigma^2
    assert naive > 1.5 * res.sigma_nm


def test_the_fitted_density_is_a_density_on_the_search_disk():
    d = np.linspace(0.0, 150.0, 20001)
    for sigma, share in ((5.0, 0.0), (20.0, 0.3), (40.0, 0.9)):
        assert np.trapezoid(nena_density(d, sigma, share, 150.0), d) == pytest.approx(1.0, abs=1e-6)


def test_merged_or_unrepeated_tables_have_no_value_and_say_why():
    t = _table(10.0)
    merged = merge_localizations(t, radius_nm=50.0, gap=1)
    res = nena(merged)
    assert np.isnan(res.sigma_nm) and "merged" in res.info["no_value"]
    rng = np.random.default_rng(0)
    n = 3000  # molecules at random places, each in one frame: no repeats, only chance neighbours
    once = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 50000, n), "y_nm": rng.uniform(0, 50000, n),
                     "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    res = nena(once)
    assert np.isnan(res.sigma_nm) and f"at least {MIN_PAIRS}" in res.info["no_value"]
    with pytest.raises(InputError, match="r_max_nm"):
        nena(t, r_max_nm=0.0)


def test_the_report_gives_the_nena_precision_next_to_the_predicted_one():
    t = _table(12.0)
    t = t.with_columns(sigma_x_nm=np.full(len(t), 12.0), sigma_y_nm=np.full(len(t), 12.0))
    rep = build_report(t)
    value = float(rep.summary["NeNA precision (nm)"].split()[0])
    assert value == pytest.approx(12.0, abs=0.5)
    assert "nena" not in rep.missing and "Localization precision from the data (NeNA)" in rep.html
    merged = build_report(merge_localizations(t, radius_nm=50.0, gap=1))
    assert merged.summary["NeNA precision (nm)"].startswith("none: the table is merged")


def test_a_network_table_gets_the_caveat_of_correlated_frames():
    """A network with a temporal window shares input between consecutive frames (the demo network read 5.1 nm where
    its errors spread 7.7 nm): tables with its prob column get the caveat, in the report too; an MLE table does not."""
    t = _table(12.0)
    assert nena_caveat(t) is None
    net = t.with_columns(prob=np.ones(len(t)))
    assert "correlated" in nena_caveat(net)
    assert "caveat: a network with a temporal window" in build_report(net).summary["NeNA precision (nm)"]
