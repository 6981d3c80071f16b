"""FRC: matches the expected resolution for random molecules, and grows with the localization noise."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.synthetic import blinking_table, structure_points
from plexloc.render.frc import expected_frc_resolution, frc


def _random_molecules(sigma_nm: float, events: float, seed: int = 0, m: int = 8000, fov_nm: float = 10000.0):
    rng = np.random.default_rng(seed)
    mol = structure_points("uniform", m, fov_nm=fov_nm, rng=rng)
    return blinking_table(mol, n_frames=1000, rng=rng, precision_nm=sigma_nm, events_per_molecule=events,
                          mean_on_frames=1.0), m


@pytest.mark.parametrize(("sigma", "events"), [(8.0, 2.0), (15.0, 6.0)])
def test_frc_matches_expected_resolution_within_20_percent(sigma, events):
    t, m = _random_molecules(sigma, events)
    res = frc(t, px_size_nm=4.0, seed=1)
    expected = expected_frc_resolution(sigma, len(t) / m / 2, px_size_nm=res.px_size_nm)
    assert res.resolution_nm == pytest.approx(expected, rel=0.2)
    # the curve itself against its closed form Q H² / (1 + Q H²), averaged over rings 4-39 (one ring is noisy): its
    # low rings had been lifted by the window's taper over the mean density (smoothed ring 1 above 0.5 for Q = 1)
    q = len(t) / m / 2
    h2 = np.exp(-4 * np.pi**2 * (sigma**2 + res.px_size_nm**2 / 12) * res.q_per_nm**2)
    assert res.frc[4:40].mean() == pytest.approx((q * h2 / (1 + q * h2))[4:40].mean(), abs=0.03)
    assert res.frc[-1] < 0.1


def test_frc_grows_with_localization_noise():
    values = [frc(_random_molecules(s, 4.0, seed=2, m=4000, fov_nm=7000.0)[0], px_size_nm=4.0).resolution_nm
              for s in (5.0, 10.0, 20.0)]
    assert values[0] < values[1] < values[2]
    assert values[2] / values[0] == pytest.approx(4.0, rel=0.25)


@pytest.mark.parametrize("n", [2000, 20000])
def test_molecules_at_random_places_each_seen_once_have_no_resolution(n):
    """Nothing repeats, so nothing is shared between the halves: no crossing of 1/7 (the window's taper over the
    mean density used to give 697 and 459 nm)."""
    from plexloc.table import LocTable

    xy = np.random.default_rng(1).random((n, 2)) * 6000.0
    t = LocTable({"frame": np.arange(n) % 500, "x_nm": xy[:, 0], "y_nm": xy[:, 1], "z_nm": np.zeros(n),
                  "photons": np.full(n, 1e3)})
    res = frc(t, px_size_nm=5.0)
    assert np.isnan(res.resolution_nm) and "share no structure" in res.info["no_crossing"]
    assert abs(res.frc[4:40].mean()) < 0.03  # the closed form for Q = 0 is 0 everywhere


def test_frc_needs_localizations():
    t, _ = _random_molecules(10.0, 1.0, m=30)
    with pytest.raises(InputError, match="at least 100"):
        frc(t)
    assert expected_frc_resolution(10.0, 0.1) == float("inf")


def _write(t, path):
    from plexloc.io.formats import write_locs

    write_locs(t, path)
    return str(path)


def test_frc_says_why_there_is_no_value(tmp_path, capsys):
    """No crossing of 1/7: the result is nan with info['no_crossing'] saying why, and plexloc frc prints 'none' and
    the reason on stderr (before: 'FRC resolution: nan nm' and nothing else)."""
    from plexloc.cli.main import main
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    m = 1500  # a ground-truth-like table: every molecule at exactly the same place in 3 consecutive frames
    xy = rng.uniform(0, 6400, (m, 2))
    exact = LocTable({"frame": np.repeat(np.arange(m) % 200, 3) + np.tile([0, 1, 2], m),
                      "x_nm": np.repeat(xy[:, 0], 3), "y_nm": np.repeat(xy[:, 1], 3), "z_nm": np.zeros(3 * m),
                      "photons": np.full(3 * m, 1e3)})
    res = frc(exact)
    assert np.isnan(res.resolution_nm) and "stays above the 1/7 threshold" in res.info["no_crossing"]
    n, rng = 150, np.random.default_rng(0)  # a few molecules at random places, each seen once
    sparse = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 20000, n), "y_nm": rng.uniform(0, 20000, n),
                       "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    res = frc(sparse)
    assert np.isnan(res.resolution_nm) and "share no structure" in res.info["no_crossing"]
    path = _write(exact, tmp_path / "truth.csv")
    assert main(["frc", path]) == 0
    out, err = capsys.readouterr()
    assert "nan" not in out and "FRC resolution: none (no crossing of 1/7)" in out
    assert f"{path}: no FRC resolution: the FRC curve stays above" in err


def test_frc_of_an_unmerged_table_carries_a_caveat(tmp_path, capsys):
    """Repeated localizations of one molecule in consecutive frames fake correlation: plexloc frc says so on stdout
    for an unmerged table (before: only in --help), not for the merged one."""
    from plexloc.cli.main import main
    from plexloc.post.merge import merge_localizations
    from plexloc.render.frc import unmerged_caveat

    rng = np.random.default_rng(3)
    mol = structure_points("uniform", 3000, fov_nm=8000.0, rng=rng)
    t = blinking_table(mol, n_frames=500, rng=rng, precision_nm=10.0, events_per_molecule=2, mean_on_frames=3.0)
    merged = merge_localizations(t, radius_nm=50.0, gap=1)
    caveat = unmerged_caveat(t)
    assert caveat is not None and "looks unmerged" in caveat and "plexloc merge" in caveat
    assert unmerged_caveat(merged) is None
    once = merged.without_columns("n_merged", "frame_last")  # no merge columns, but nothing repeats: no caveat
    assert unmerged_caveat(once) is None
    assert main(["frc", _write(t, tmp_path / "raw.csv")]) == 0
    assert "caveat: the table looks unmerged" in capsys.readouterr().out
    assert main(["frc", _write(merged, tmp_path / "merged.csv")]) == 0
    assert "caveat" not in capsys.readouterr().out
