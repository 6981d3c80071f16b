"""Session 47's walk through filter, merge and de-biasing as a user: an MLE table's CRLB weighs the de-biasing shifts
(as filter, merge, render and NeNA read it), a 2D table's all-NaN CRLB of z and z of 0 are named by the filter, and a
bead stack's z beyond the PSF's calibrated range names what the user changes (--z-range, not emitters.z_range_nm)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.evaluate.gridding import gridding_deviation
from plexloc.post.debias import debias
from plexloc.post.filter import filter_localizations
from plexloc.post.synthetic_plex import pulled_table
from plexloc.table import LocTable

PX = 100.0


def _mle_table(n=6000, seed=1):
    """A table pulled towards pixel centres whose uncertainties are an MLE fit's CRLBs (no sigma_* columns)."""
    _, _, t = pulled_table(n, px_size_nm=PX, seed=seed)
    return t, t.without_columns("sigma_x_nm", "sigma_y_nm").with_columns(crlb_x_nm=t["sigma_x_nm"],
                                                                          crlb_y_nm=t["sigma_y_nm"])


def test_debias_weighs_an_mle_tables_shifts_by_its_crlb():
    """An MLE table (crlb_*, no sigma_*) got the plain mapped shift: its best fits moved as far as its worst, and the
    report had no |shift|/sigma. Its CRLB now plays the predicted sigma's part."""
    t, mle = _mle_table()
    out_s, rep_s = debias(t, PX, sigma_power=1.0)  # in proportion (the power measured here is 0: tests/test_z3d50.py)
    out_c, rep_c = debias(mle, PX, sigma_power=1.0)
    np.testing.assert_allclose(out_c["x_nm"], out_s["x_nm"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(out_c["y_nm"], out_s["y_nm"], rtol=0, atol=1e-9)
    assert gridding_deviation(out_c["x_nm"], PX) < 0.1 < gridding_deviation(mle["x_nm"], PX)
    shift = np.abs(out_c["x_nm"] - mle["x_nm"])
    crlb = mle["crlb_x_nm"]
    assert np.mean(shift[crlb > 25]) > 3 * np.mean(shift[crlb < 10])  # uncertain fits move more
    assert rep_c.shift_over_sigma == rep_s.shift_over_sigma and set(rep_c.shift_over_sigma) == {"x", "y"}
    assert rep_c.sigma_columns == ["crlb_x_nm", "crlb_y_nm"] and rep_s.sigma_columns == ["sigma_x_nm", "sigma_y_nm"]
    text = rep_c.format_table()
    assert "|shift|/crlb" in text and "weighted by crlb_x_nm, crlb_y_nm" in text
    assert "crlb" not in rep_s.format_table()
    # the predicted sigma comes first where a table has both
    both = t.with_columns(crlb_x_nm=np.full(len(t), 3.0), crlb_y_nm=np.full(len(t), 3.0))
    out_b, rep_b = debias(both, PX, sigma_power=1.0)
    np.testing.assert_array_equal(out_b["x_nm"], out_s["x_nm"])
    assert rep_b.sigma_columns == ["sigma_x_nm", "sigma_y_nm"]


def test_cli_debias_of_an_mle_table_prints_shift_over_crlb(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.io.formats import read_locs, write_locs

    _, mle = _mle_table(n=3000, seed=2)
    write_locs(mle, tmp_path / "mle.csv")
    assert main(["debias", str(tmp_path / "mle.csv"), "--out", str(tmp_path / "d.csv"), "--px-size", "100",
                 "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    assert "x: mean |shift|" in out and "|shift|/crlb" in out
    import json

    with open(tmp_path / "d.json") as fh:
        rep = json.load(fh)
    assert rep["sigma_columns"] == ["crlb_x_nm", "crlb_y_nm"] and set(rep["shift_over_sigma"]) == {"x", "y"}
    assert len(read_locs(tmp_path / "d.csv")) == 3000


def _two_d_mle(n=50):
    rng = np.random.default_rng(0)
    return LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 1e4, n), "y_nm": rng.uniform(0, 1e4, n),
                     "z_nm": np.zeros(n), "photons": np.full(n, 2000.0), "crlb_x_nm": np.full(n, 5.0),
                     "crlb_y_nm": np.full(n, 5.0), "crlb_z_nm": np.full(n, np.nan)})


def test_max_sigma_z_on_a_2d_mle_table_names_its_nan_crlb_z():
    """A 2D MLE table has crlb_z_nm, NaN in every row: the error said the table lacked ['sigma_z_nm'] (or
    ['crlb_z_nm']), listing crlb_z_nm among its columns in the same sentence."""
    t = _two_d_mle()
    with pytest.raises(InputError) as err:
        filter_localizations(t, max_sigma_z_nm=50.0)
    msg = str(err.value)
    assert "max_sigma_z_nm needs column(s) ['crlb_z_nm'], which are NaN in every row" in msg
    assert "lacks" not in msg
    # a table with neither column is still told both names
    with pytest.raises(InputError, match=r"\['sigma_z_nm'\] \(or \['crlb_z_nm'\].*lacks"):
        filter_localizations(t.without_columns("crlb_z_nm"), max_sigma_z_nm=50.0)
    kept, rep = filter_localizations(t, max_sigma_nm=10.0)  # x and y have their bounds
    assert len(kept) == 50 and rep.columns["max_sigma_nm"] == ["crlb_x_nm", "crlb_y_nm"]


def test_z_range_that_would_empty_a_2d_table_is_refused():
    """A 2D table's z is 0 in every row: --z-range 100 200 removed all of its rows (3471 of 3471 on a network's 2D
    table) with only the count to say why."""
    t = _two_d_mle()
    with pytest.raises(InputError, match=r"z_range_nm \(100, 200\) would remove every row: z_nm is 0 in all 50 rows"):
        filter_localizations(t, z_range_nm=(100.0, 200.0))
    kept, rep = filter_localizations(t, z_range_nm=(-100.0, 100.0))  # a range that holds 0 keeps them (no harm)
    assert len(kept) == 50 and rep.removed == {"z_range_nm": 0}
    t3 = t.with_columns(z_nm=np.r_[150.0, np.zeros(49)])  # one row with a z: a 3D table, filtered as asked
    kept, rep = filter_localizations(t3, z_range_nm=(100.0, 200.0))
    assert len(kept) == 1 and rep.removed == {"z_range_nm": 49}


def test_cli_filter_z_range_on_a_2d_table_names_the_file(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    write_locs(_two_d_mle(), tmp_path / "locs2d.csv")
    assert main(["filter", str(tmp_path / "locs2d.csv"), "--out", str(tmp_path / "f.csv"), "--z-range", "100",
                 "200"]) != 0
    err = capsys.readouterr().err
    assert "locs2d.csv" in err and "would remove every row" in err
    assert not (tmp_path / "f.csv").exists()


def _bead_config(psf: dict):
    """One channel of ``psf``, an ideal camera, emitters z [-200, 200] nm (a bead stack's z replaces them)."""
    from plexloc.config import SimulationConfig

    return SimulationConfig.model_validate({
        "px_size_nm": PX, "frame_size": [32, 32], "channels": [{"psf": psf, "camera": {"kind": "ideal"}}],
        "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 5000.0], "z_range_nm": [-200.0, 200.0]},
        "background": {"range": [10.0, 10.0]}})


def _bead_stack_error(cfg) -> str:
    """The error of a bead stack over z -900 to 900 nm through ``cfg``."""
    from plexloc.calibrate.synthetic import simulate_bead_stacks

    with pytest.raises(InputError) as err:
        simulate_bead_stacks(cfg, n_beads=1, z_nm=np.linspace(-900.0, 900.0, 7), photons=2e4, bg=20.0)
    return str(err.value)


def test_bead_stack_beyond_the_calibration_names_the_stacks_z_range(tmp_path):
    """The advice for a bead stack whose z leaves a spline's calibrated range named the configuration's
    emitters.z_range_nm, which a bead stack replaces with its own z: it names plexloc simulate's --z-range now."""
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration
    from plexloc.calibrate.synthetic import simulate_bead_stacks

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    volume = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    volume /= volume[10].sum()
    chans = [ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=np.eye(3))]
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(PX, PX), dz_nm=50.0), tmp_path / "PSF.h5")
    cfg = _bead_config({"kind": "spline", "calibration": str(tmp_path / "PSF.h5"), "channel": 0})
    msg = _bead_stack_error(cfg)
    assert "emitters.z_range_nm" not in msg
    assert "the bead stack's z from -900 to 900 nm: it leaves the PSF's calibrated z range [-500, 500] nm" in msg
    assert "plexloc simulate --beads --z-range -500 500" in msg
    assert "calibrate with a bead stack over a wider z range" in msg
    assert str(tmp_path / "PSF.h5") in msg  # the calibration file is still named
    # inside the calibration: a stack is made
    b = simulate_bead_stacks(cfg, n_beads=1, z_nm=np.linspace(-500.0, 500.0, 5), photons=2e4, bg=20.0)
    assert len(b.truth) == 5


def test_bead_stack_where_an_astigmatic_width_model_collapses_names_the_stacks_z():
    psf = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0, "B": [-0.5, -0.5]}
    msg = _bead_stack_error(_bead_config(psf))
    assert "collapses below 0.5 s0" in msg and "emitters" not in msg
    assert "narrow the stack's z (plexloc simulate --beads --z-range LO HI, or z_nm) to it" in msg


def _reference_groups(t: LocTable, radius: float, gap: int) -> np.ndarray:
    """The linking rule of plexloc.post.merge written out pair by pair: every row's best successor (smallest lag, then
    nearest, then lowest row index), every row's best predecessor among those, the chains' connected components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f, x, y = t["frame"], t["x_nm"], t["y_nm"]
    end = t["frame_last"] if "frame_last" in t else f
    n = len(t)
    succ = {}
    for i in range(n):
        lag = f - end[i]
        dist = np.hypot(x - x[i], y - y[i])
        ok = np.flatnonzero((lag >= 1) & (lag <= gap + 1) & (dist <= radius))
        if len(ok):
            j = min(ok, key=lambda j: (lag[j], dist[j], j))
            succ[i] = (j, lag[j] * 2 * radius + dist[j])
    pred = {}
    for i, (j, score) in succ.items():
        if j not in pred or (score, i) < pred[j]:
            pred[j] = (score, i)
    src = np.array([i for _, i in pred.values()], int)
    dst = np.array(list(pred), int)
    g = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    return connected_components(g, directed=True, connection="weak")[1]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("seed", range(4))
def test_linking_by_nearest_successor_queries_keeps_the_pairwise_rule(seed):
    """The linking asks a KD-tree for each row's two nearest rows per lag (12 s -> about 3 s for a 10^6-row merge):
    the groups are those of the rule pair by pair, with duplicated rows (equal distances), crowded frames, a merged
    table's frame_last and a table without any link."""
    from plexloc.post.merge import link_localizations, merge_localizations

    rng = np.random.default_rng(seed)
    n = 300
    t = LocTable({"frame": rng.integers(0, 30, n), "x_nm": rng.uniform(0, 600, n), "y_nm": rng.uniform(0, 600, n),
                  "z_nm": np.zeros(n), "photons": np.full(n, 1e3)})
    t = LocTable({c: np.concatenate([t[c], t[c][:40]]) for c in t.columns}).sort_by_frame()  # 40 duplicated rows
    for radius, gap in ((50.0, 0), (50.0, 1), (120.0, 2)):
        np.testing.assert_equal(_same_partition(link_localizations(t, radius_nm=radius, gap=gap),
                                                _reference_groups(t, radius, gap)), True)
        np.testing.assert_equal(_same_partition(link_localizations(t, radius_nm=radius, gap=gap, block_rows=37),
                                                _reference_groups(t, radius, gap)), True)
    m = merge_localizations(t, radius_nm=50.0, gap=1)
    assert _same_partition(link_localizations(m, radius_nm=50.0, gap=1), _reference_groups(m, 50.0, 1))
    apart = LocTable({"frame": np.arange(5), "x_nm": np.arange(5) * 1e3, "y_nm": np.zeros(5), "z_nm": np.zeros(5),
                      "photons": np.ones(5)})
    np.testing.assert_array_equal(link_localizations(apart, radius_nm=50.0, gap=1), np.arange(5))


def test_one_row_without_a_crlb_photon_weights_only_its_own_event():
    """merge --weights auto on an MLE table: one row without a usable CRLB (NaN: a fit without a bound, a --refine-mle
    row whose refit was not kept) photon-weighted every event of the table, in silence; now only its own event."""
    from plexloc.post.merge import merge_localizations

    t = LocTable({"frame": [0, 1, 0, 1], "x_nm": [100.0, 200.0, 5000.0, 5010.0], "y_nm": [0.0, 0.0, 0.0, 0.0],
                  "z_nm": [0.0] * 4, "photons": [1000.0] * 4, "crlb_x_nm": [5.0, 20.0, np.nan, 8.0],
                  "crlb_y_nm": [5.0, 20.0, 8.0, 8.0]})
    m = merge_localizations(t, radius_nm=150.0, gap=0)
    assert m["n_merged"].tolist() == [2, 2]
    near = int(np.argmin(m["x_nm"]))
    # inverse variance: (100 / 25 + 200 / 400) / (1 / 25 + 1 / 400) and 1 / sqrt(1 / 25 + 1 / 400) (photon weights gave
    # 150 nm and 10.3 nm)
    assert m["x_nm"][near] == pytest.approx(4.5 / 0.0425, rel=1e-12)
    assert m["crlb_x_nm"][near] == pytest.approx(1 / np.sqrt(0.0425), rel=1e-12)
    far = 1 - near
    assert m["x_nm"][far] == pytest.approx(5005.0, rel=1e-12)  # photon weights; no bound for the mean of a NaN
    assert np.isnan(m["crlb_x_nm"][far]) and m["crlb_y_nm"][far] == pytest.approx(np.sqrt(128.0) / 2, rel=1e-12)
    # all CRLBs usable: inverse variance everywhere, as before; none usable: photon weights everywhere
    full = merge_localizations(t.with_columns(crlb_x_nm=np.array([5.0, 20.0, 8.0, 8.0])), radius_nm=150.0, gap=0)
    assert full["crlb_x_nm"][far] == pytest.approx(8.0 / np.sqrt(2), rel=1e-12)
    none = merge_localizations(t.with_columns(crlb_x_nm=np.full(4, np.nan)), radius_nm=150.0, gap=0)
    assert none["x_nm"][int(np.argmin(none["x_nm"]))] == pytest.approx(150.0, rel=1e-12)
    # explicit inverse-variance weights refuse the row, naming the column, the row and its value as a plain number
    with pytest.raises(InputError, match=r"column 'crlb_x_nm' must be > 0 for inverse-variance weights, row 2 is nan$"):
        merge_localizations(t, radius_nm=150.0, gap=0, weights="inverse_variance")


def test_filter_errors_print_numpy_values_as_numbers():
    """Values given as numpy scalars read 'np.float64(1.5)' in the errors."""
    t = LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [1.0], "prob": [0.5],
                  "sigma_x_nm": [5.0], "sigma_y_nm": [5.0]})
    for kw, message in ((dict(min_prob=np.float64(1.5)), "min_prob must be a probability in [0, 1], got 1.5"),
                        (dict(max_sigma_nm=np.float64(-1.0)), "max_sigma_nm must be > 0 nm, got -1"),
                        (dict(min_photons=np.float64(5), max_photons=np.float64(2)),
                         "min_photons (5) is above max_photons (2): nothing could pass")):
        with pytest.raises(InputError) as err:
            filter_localizations(t, **kw)
        assert str(err.value) == f"filter {message}"
