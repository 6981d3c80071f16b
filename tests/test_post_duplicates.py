"""Wrong-transform duplicates: pairs of localizations at a constant offset in the same frame."""

import numpy as np
import pytest

from plexloc.post.duplicates import DuplicateWarning, channel_duplicates
from plexloc.table import LocTable

PX = 100.0


def molecules(n=6000, frames=300, seed=0):
    """About 0.5 molecules per um^2 per frame on a 64x64-pixel field, with 20 nm localization noise."""
    rng = np.random.default_rng(seed)
    return rng, {"frame": rng.integers(0, frames, n), "x_nm": rng.uniform(0, 6400, n),
                 "y_nm": rng.uniform(0, 6400, n)}


def table(cols):
    n = len(cols["frame"])
    return LocTable({**cols, "z_nm": np.zeros(n), "photons": np.full(n, 1000.0)})


def with_duplicates(share, offset, seed=0):
    rng, c = molecules(seed=seed)
    dup = rng.uniform(size=len(c["frame"])) < share
    out = {k: np.concatenate([v, v[dup]]) for k, v in c.items()}
    out["x_nm"][len(c["frame"]):] += offset[0] + rng.normal(size=dup.sum()) * 20
    out["y_nm"][len(c["frame"]):] += offset[1] + rng.normal(size=dup.sum()) * 20
    return table(out), dup.mean()


def test_three_pixel_error_fires():
    t, share = with_duplicates(1.0, (3 * PX, 0.0))
    with pytest.warns(DuplicateWarning, match="transform is probably wrong"):
        rep = channel_duplicates(t)
    np.testing.assert_allclose(rep.offset_nm, [3 * PX, 0.0], atol=5.0)
    assert rep.fraction > 0.95 and rep.background < 0.05


def test_partial_duplicates_give_their_share_and_sign_is_canonical():
    t, share = with_duplicates(0.3, (-150.0, -260.0))  # reported in the half-plane dx > 0
    rep = channel_duplicates(t, warn=False)
    np.testing.assert_allclose(rep.offset_nm, [150.0, 260.0], atol=5.0)
    expected = 2 * share / (1 + share)  # both members of each pair over all rows
    assert rep.excess == pytest.approx(expected, abs=0.03)
    assert rep.warning is not None


def test_clean_table_is_silent():
    import warnings

    _, c = molecules(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateWarning)
        rep = channel_duplicates(table(c))
    assert rep.warning is None and abs(rep.excess) < 0.02
    rep2 = channel_duplicates(table(c), offsets_nm=[(300.0, 0.0)])
    assert abs(rep2.excess) < 0.02


# --- the decision rule on the densities (0.03 to 3 per um^2), 10,000 molecules per table ------------
DENSITIES = (0.03, 0.14, 0.65, 3.0)


@pytest.mark.parametrize("density", DENSITIES)
def test_each_molecule_twice_at_a_three_pixel_error_fires(density):
    from plexloc.post.synthetic_plex import doubled_table

    t = doubled_table(density, share=1.0, offset_nm=(3 * PX, 0.0), seed=11)
    with pytest.warns(DuplicateWarning):
        rep = channel_duplicates(t)
    np.testing.assert_allclose(rep.offset_nm, [3 * PX, 0.0], atol=10.0)
    # both copies carry 20 nm noise: their distance is within 50 nm of the offset for 1 - exp(-50^2 / (4 20^2)) = 79 %
    assert rep.fraction > 0.7 and rep.excess > 0.6 and rep.p_value < 1e-12


@pytest.mark.parametrize("density", DENSITIES)
def test_correct_transform_is_silent_at_realistic_densities(density):
    import warnings

    from plexloc.post.synthetic_plex import doubled_table

    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DuplicateWarning)
            rep = channel_duplicates(doubled_table(density, seed=seed))
        assert rep.warning is None
        assert abs(rep.excess) < 0.02  # chance pairs are what the ring predicts
        if density == 3.0:  # plenty of random close pairs, which the ring accounts for
            assert rep.pairs > 20 and rep.expected_pairs > 10


def test_a_few_coincident_pairs_are_significant_but_not_many():
    """At low density two dozen doubled molecules are a significant pattern, but 0.5 % of the table: no warning."""
    from plexloc.post.synthetic_plex import doubled_table

    rep = channel_duplicates(doubled_table(0.03, share=0.0025, seed=5), warn=False)
    assert rep.p_value * rep.looks < 1e-3 and rep.excess < 0.05 and rep.warning is None


def filaments(seed, share=0.0, density=6.0, n_filaments=10):
    """Localizations on ten random straight 5 um filaments (6 per um^2 per frame, 64x64 px field, 20 nm noise);
    a share of them again 3 px away in x in the same frame (a wrong transform)."""
    rng = np.random.default_rng(seed)
    per = int(density * 6.4**2)
    p0, ang = rng.uniform(0, 6400, (n_filaments, 2)), rng.uniform(0, np.pi, n_filaments)
    cols = {"frame": [], "x_nm": [], "y_nm": []}
    for f in range(8000 // per):
        k, s = rng.integers(0, n_filaments, per), rng.uniform(-2500, 2500, per)
        xy = p0[k] + s[:, None] * np.column_stack([np.cos(ang[k]), np.sin(ang[k])])
        xy = np.concatenate([xy, xy[rng.uniform(size=per) < share] + [3 * PX, 0.0]])
        xy += rng.normal(size=xy.shape) * 20
        cols["frame"].append(np.full(len(xy), f))
        cols["x_nm"].append(xy[:, 0])
        cols["y_nm"].append(xy[:, 1])
    return table({k: np.concatenate(v) for k, v in cols.items()})


@pytest.mark.parametrize("seed", [0, 5])
def test_filaments_with_a_correct_transform_are_silent(seed):
    """Pairs along a few straight filaments are denser at their directions than on the ring: these tables
    fired (excess 0.12 and 0.13); the pairs between other frames now predict them (excess < 0)."""
    rep = channel_duplicates(filaments(seed), warn=False)
    assert rep.warning is None and rep.excess < 0.02
    bad = channel_duplicates(filaments(seed, share=1.0), warn=False)
    assert bad.warning is not None
    np.testing.assert_allclose(bad.offset_nm, [3 * PX, 0.0], atol=10.0)
