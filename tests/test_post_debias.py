"""De-biasing of sub-pixel positions in z slabs (DECODE-Plex Methods 4.2.2)."""

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.evaluate.metrics import gridding_deviation
from plexloc.post.debias import debias
from plexloc.post.synthetic_plex import pulled_table
from plexloc.table import LocTable

PX = 100.0


def pulled(n=10000, seed=0):
    """(truth x, truth y, noise-only x, noise-only y, table) of positions pulled towards pixel centres."""
    txy, nxy, t = pulled_table(n, px_size_nm=PX, seed=seed)
    return txy[:, 0], txy[:, 1], nxy[:, 0], nxy[:, 1], t


def rmse(x, y, tx, ty):
    return float(np.sqrt(np.mean((x - tx) ** 2 + (y - ty) ** 2)))


def test_debias_flattens_histogram_and_does_not_hurt_rmse():
    tx, ty, nx, ny, t = pulled()
    assert gridding_deviation(t["x_nm"], PX) > 0.8
    out, rep = debias(t, PX, slab_nm=50)
    for ax in "xy":
        assert gridding_deviation(out[f"{ax}_nm"], PX) < 0.1
    before = rmse(t["x_nm"], t["y_nm"], tx, ty)
    after = rmse(out["x_nm"], out["y_nm"], tx, ty)
    noise_only = rmse(nx, ny, tx, ty)
    assert after < before - 1.0  # the bias (about 2 nm per axis here) is removed
    assert after < 1.03 * noise_only  # the sigma-weighted map is close to the inverse of the pull
    assert rep.n_slabs == 12 and rep.n_skipped == 0
    # diagnostic: the shifts are of the order of half a sigma here
    assert 0.3 < rep.shift_over_sigma["x"]["q50"] < 0.7
    np.testing.assert_array_equal(out["z_nm"], t["z_nm"])
    np.testing.assert_array_equal(out["sigma_x_nm"], t["sigma_x_nm"])


def test_shift_is_distributed_by_sigma_and_flags_small_sigma():
    *_, t = pulled(n=6000, seed=1)
    # in proportion to sigma, as asked (the measured power is 0 here: this pull does not grow with sigma)
    out, rep = debias(t, PX, sigma_power=1.0)
    shift = np.abs(out["x_nm"] - t["x_nm"])
    sig = t["sigma_x_nm"]
    assert np.mean(shift[sig > 25]) > 3 * np.mean(shift[sig < 10])  # uncertain localizations move more
    small = t.with_columns(sigma_x_nm=t["sigma_x_nm"] / 5, sigma_y_nm=t["sigma_y_nm"] / 5)
    _, rep_small = debias(small, PX, sigma_power=1.0)  # same shifts, sigma under-reported five times
    assert rep_small.shift_over_sigma["x"]["q90"] == pytest.approx(5 * rep.shift_over_sigma["x"]["q90"], rel=1e-6)


def test_without_sigma_and_small_slabs():
    *_, t = pulled(n=3000, seed=2)
    plain = t.without_columns("sigma_x_nm", "sigma_y_nm")
    out, rep = debias(plain, PX, slab_nm=1000)
    assert gridding_deviation(out["x_nm"], PX) < 0.1
    assert rep.shift_over_sigma == {} and rep.n_slabs == 1
    out2, rep2 = debias(t, PX, slab_nm=10)  # 60 slabs of about 50 localizations: all below min_count
    assert rep2.n_skipped == len(t)
    np.testing.assert_array_equal(out2["x_nm"], t["x_nm"])
    with pytest.raises(InputError, match="px_size_nm"):
        debias(t, 0.0)


def test_cli_debias(tmp_path):
    from plexloc.cli.main import main
    from plexloc.io.formats import read_locs, write_locs

    *_, t = pulled(n=3000, seed=3)
    write_locs(t, tmp_path / "l.csv")
    assert main(["debias", str(tmp_path / "l.csv"), "--out", str(tmp_path / "d.csv"), "--px-size", "100",
                 "--json", str(tmp_path / "d.json")]) == 0
    assert gridding_deviation(read_locs(tmp_path / "d.csv")["x_nm"], PX) < 0.1
    assert (tmp_path / "d.json").exists()


def test_report_covers_only_the_rows_of_debiased_slabs():
    """900 rows in a de-biased slab, 100 in one too small to de-bias: the report's |shift|/sigma is the mean over
    the 900 moved rows (the 100 untouched ones used to dilute it); with every slab skipped it reports nothing."""
    rng = np.random.default_rng(0)
    n = 1000
    x = (rng.integers(0, 50, n) + 0.5 + 0.5 * (rng.uniform(size=n) - 0.5)) * 100
    sig = np.full(n, 10.0)
    t = LocTable({"frame": np.zeros(n, int), "x_nm": x, "y_nm": x.copy(), "z_nm": np.where(np.arange(n) < 900, 0.0, 500.0),
                  "photons": np.ones(n), "sigma_x_nm": sig, "sigma_y_nm": sig})
    out, rep = debias(t, 100.0)
    assert rep.n_skipped == 100 and np.array_equal(out["x_nm"][900:], x[900:])
    moved = np.abs(out["x_nm"][:900] - x[:900]) / 10.0
    assert rep.shift_over_sigma["x"]["mean"] == pytest.approx(moved.mean(), rel=1e-9)
    _, none = debias(t, 100.0, min_count=2000)
    assert none.n_skipped == n and none.shift_over_sigma == {}


def test_non_finite_sigma_or_position_rows_do_not_spoil_the_slab():
    """5 NaN sigma made 2324 of 10000 positions NaN (the running sum of sigma carried the NaN); 500 NaN x left
    the other rows' histogram at a deviation of 0.47 (the NaN rows took ranks). Both now: no new NaN, flat."""
    tx, _, _, _, t = pulled()
    s = np.array(t["sigma_x_nm"])
    s[:5] = np.nan
    out, rep = debias(t.with_columns(sigma_x_nm=s), PX)
    assert np.isfinite(out["x_nm"]).all()
    assert gridding_deviation(out["x_nm"], PX) < 0.1
    assert np.isfinite(rep.shift_over_sigma["x"]["mean"])
    x = np.array(t["x_nm"])
    x[:500] = np.nan
    out, _ = debias(t.with_columns(x_nm=x), PX)
    assert np.isnan(out["x_nm"][:500]).all() and np.isfinite(out["x_nm"][500:]).all()
    assert gridding_deviation(out["x_nm"][500:], PX) < 0.1
    assert rmse(out["x_nm"][500:], 0.0, tx[500:], 0.0) < rmse(t["x_nm"][500:], 0.0, tx[500:], 0.0) - 0.5
