"""plexaudit46: a user's walk through colour assignment (plexloc color): the ratio figure's mixture curve, the
fractions beyond its axes, tables too small to estimate the ratios (the file named; --ratios with --figure)."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plexloc.cli.main import main  # noqa: E402
from plexloc.io.formats import read_locs, write_locs  # noqa: E402
from plexloc.post.color import estimate_ratios, ratio_figure  # noqa: E402
from plexloc.table import LocTable  # noqa: E402


@pytest.fixture
def figs(monkeypatch):
    """Every figure closed during the test, in order."""
    kept = []
    close = plt.close

    def keep(fig=None):
        if fig is not None and not isinstance(fig, str):
            kept.append(fig)
        return close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return kept


def two_dye_table(n=4000, seed=0, *, negative=0):
    """Dyes at 0.8 / 0.3 of their photons in channel 0, totals log-uniform over 200-20,000 photons (rows measured
    well and badly), Poisson counts plus the noise of 20 background photons/px; ``negative`` rows with a negative
    channel-1 count."""
    rng = np.random.default_rng(seed)
    r0 = np.where(rng.integers(0, 2, n) == 0, 0.8, 0.3)
    tot = np.exp(rng.uniform(np.log(200.0), np.log(20000.0), n))
    bg_sd = np.sqrt(4.0 * np.pi * 20.0)  # the background's photons under a spot, as photon_matrix models them
    n0 = rng.poisson(tot * r0) + rng.normal(0.0, bg_sd, n)
    n1 = rng.poisson(tot * (1.0 - r0)) + rng.normal(0.0, bg_sd, n)
    n1[:negative] = -30.0
    return LocTable({"frame": np.arange(n) // 20, "x_nm": rng.uniform(0, 6400, n), "y_nm": rng.uniform(0, 6400, n),
                     "z_nm": np.zeros(n), "photons": n0 + n1, "photons_ch0": n0, "photons_ch1": n1,
                     "bg": np.full(n, 20.0)})


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_ratio_figure_draws_the_fitted_mixture_not_one_gaussian_of_the_mean_spread(figs, tmp_path):
    # rows of one dye measured at 200 and at 20,000 photons scatter by 0.035 and 0.0035 about its ratio: the mixture
    # EM fits is a sum of Gaussians of each row's own variance, sharp at the centre. The figure drew one Gaussian of
    # the mean variance per colour instead: peaks at 7.9 per unit fraction under a histogram of 17.5, as if the fit
    # had missed the data
    fit = estimate_ratios(two_dye_table(), 2)
    ratio_figure(fit, tmp_path / "r.png")
    ax = figs[-1].axes[0]
    curve = _line(ax, "mixture fit")
    x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    f0 = fit.fractions[:, 0]
    hist, edges = np.histogram(f0, bins=50, range=(0, 1))
    hist = hist / (len(f0) * np.diff(edges))
    which = np.minimum((x / 0.02).astype(int), 49)
    model = np.array([y[which == b].mean() for b in range(50)])  # the curve's mean over each bar
    l1 = np.sum(np.abs(model - hist)) * 0.02
    assert l1 < 0.15, l1  # L1 distance of two densities (at most 2); it was 0.46
    centre = 0.5 * (edges[1:] + edges[:-1])
    for r in (0.8, 0.3):  # the curve's peak reaches the bars' (it stood at about half of them)
        assert model[np.abs(centre - r) < 0.02].max() > 0.85 * hist[np.abs(centre - r) < 0.02].max()
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02)  # a density over the fractions
    bars = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert bars == pytest.approx(1.0, abs=1e-6)


def test_ratio_figure_counts_the_fractions_beyond_its_axes(figs, tmp_path):
    # a negative count in one channel (a network's noisy dim channel) puts a fraction above 1: the histogram of
    # range (0, 1) left 40 of 2000 rows out while its title and legend said 2000 localizations
    table = two_dye_table(2000, seed=3, negative=40)
    fit = estimate_ratios(table, 2)
    assert np.count_nonzero(fit.fractions[:, 0] > 1.0) == 40
    ratio_figure(fit, tmp_path / "r.png")
    ax = figs[-1].axes[0]
    assert "40 of 2000 fractions beyond the axes" in ax.get_title()
    assert sum(p.get_height() * p.get_width() for p in ax.patches) == pytest.approx(1960 / 2000)


def test_color_without_ratios_on_a_small_table_names_the_file(tmp_path, capsys):
    locs = tmp_path / "fit.csv"
    write_locs(two_dye_table(6), locs)
    assert main(["color", str(locs), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert str(locs) in err and "needs >= 10 localizations" in err and "got 6" in err and "--ratios" in err
    assert not (tmp_path / "c.csv").exists()


def test_color_given_ratios_draws_the_figure_of_a_table_too_small_to_estimate(figs, tmp_path, capsys):
    # --ratios with --figure on 7 rows: the figure's own estimate of the ratios failed the command, which wrote
    # neither the table nor the figure (a network fitted on a short movie, or barely trained, gives such tables)
    locs = tmp_path / "fit.csv"
    write_locs(two_dye_table(7, seed=1), locs)
    args = ["color", str(locs), "--out", str(tmp_path / "c.csv"), "--ratios", "0.8", "0.2", "--ratios", "0.3", "0.7",
            "--figure", str(tmp_path / "r.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "not compared with the data" in out and "wrote" in out
    colored = read_locs(tmp_path / "c.csv")
    assert len(colored) == 7 and set(np.asarray(colored["color"]).tolist()) <= {-1, 0, 1}
    assert (tmp_path / "r.png").stat().st_size > 0
    ax = figs[-1].axes[0]
    assert "7 localizations, 2 colours" in ax.get_title() and "too few localizations" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "r_0 = 0.800 (given)" in labels and "r_1 = 0.300 (given)" in labels
    assert not any("fitted" in s for s in labels) and not any(ln.get_label() == "mixture fit" for ln in ax.get_lines())
    # no rows at all: the figure says so, the (empty) table is written
    write_locs(two_dye_table(0), locs)
    assert main(args) == 0
    assert len(read_locs(tmp_path / "c.csv")) == 0


def _frames_table(frames, shift_nm=0.0, seed=0):
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.asarray(frames), 10)
    return LocTable({"frame": frame, "x_nm": rng.uniform(0, 6400, len(frame)) + shift_nm,
                     "y_nm": rng.uniform(0, 6400, len(frame)), "z_nm": np.zeros(len(frame)),
                     "photons": np.full(len(frame), 1000.0)})


def test_register_names_both_tables_when_they_share_no_frame(tmp_path, capsys):
    # "no localizations of the two tables share a frame within 3000.0 nm": which tables, and frames or distance?
    write_locs(_frames_table(range(50)), tmp_path / "a.csv")
    write_locs(_frames_table(range(100, 150)), tmp_path / "b.csv")
    assert main(["register", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "T.json")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.csv'} has frames 0-49" in err and f"{tmp_path / 'b.csv'} frames 100-149" in err
    assert "within 3000 nm" in err and not (tmp_path / "T.json").exists()
    # the same frames, every pair farther apart than --max-shift
    write_locs(_frames_table(range(50), shift_nm=20000.0), tmp_path / "b.csv")
    assert main(["register", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "T.json"),
                 "--max-shift", "500"]) == 2
    err = capsys.readouterr().err
    assert "share 50 frame(s) but no pair of the same frame lies within 500 nm (--max-shift)" in err
    assert str(tmp_path / "a.csv") in err and str(tmp_path / "b.csv") in err


def test_evaluate_says_when_the_colours_are_numbered_the_other_way(tmp_path, capsys):
    # plexloc color without --ratios numbers colours by descending fraction in channel 0; a simulation whose
    # configuration lists its dyes the other way scored 1.06 % colour accuracy for 98.94 % right colours, silently
    rng = np.random.default_rng(5)
    n = 400
    color = rng.integers(0, 2, n)
    truth = LocTable({"frame": np.arange(n) // 4, "x_nm": rng.uniform(0, 6400, n), "y_nm": rng.uniform(0, 6400, n),
                      "z_nm": np.zeros(n), "photons": np.full(n, 2000.0), "color": color})
    pred_color = 1 - color
    pred_color[:8] = -1  # rejected
    pred_color[8:12] = color[8:12]  # 4 right as numbered
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(truth.with_columns(color=pred_color), tmp_path / "swapped.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "swapped.csv"), "--dim", "2"]) == 0
    out, err = capsys.readouterr()
    assert "color_accuracy     1.00  %" in out
    assert "read as 0 -> 1, 1 -> 0 they would score a colour accuracy of 97.00 % instead of 1.00 %" in err
    assert "give --ratios in the truth's colour order" in err
    # numbered as the truth: nothing said
    write_locs(truth.with_columns(color=np.where(pred_color >= 0, 1 - pred_color, -1)), tmp_path / "right.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "right.csv"), "--dim", "2"]) == 0
    assert "another order" not in capsys.readouterr().err
    # three colours estimated for two dyes (plexloc color --colors 3): the extra one is said to match none
    three = np.where(color == 0, 2, 0)
    three[:40] = 1
    write_locs(truth.with_columns(color=three), tmp_path / "three.csv")
    assert main(["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "three.csv"), "--dim", "2"]) == 0
    err = capsys.readouterr().err
    assert "read as 0 -> 1, 1 -> none of the truth colours, 2 -> 0" in err and "of 90.00 % instead of" in err


def test_evaluate_says_how_many_rows_the_voxel_box_leaves_out(tmp_path, capsys):
    # README's --voxel-ji 192 192 400 --voxel-shape 64 64 4 spans z -200..1400 nm: on a sample at z -500..500 nm it
    # scored without 29 % of the truth, and only --json's voxel_truth_outside said so
    rng = np.random.default_rng(2)
    n = 200
    truth = LocTable({"frame": np.arange(n) // 4, "x_nm": rng.uniform(0, 6400, n), "y_nm": rng.uniform(0, 6400, n),
                      "z_nm": np.linspace(-500.0, 500.0, n), "photons": np.full(n, 2000.0)})
    write_locs(truth, tmp_path / "truth.csv")
    write_locs(truth, tmp_path / "pred.csv")
    base = ["evaluate", str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv"), "--voxel-ji", "192", "192", "400"]
    assert main(base + ["--voxel-shape", "64", "64", "4"]) == 0
    below = int(np.count_nonzero(truth["z_nm"] < -200.0))
    err = capsys.readouterr().err
    assert (f"leaves out {below} of {n} truth rows and {below} of {n} predicted rows, outside its box "
            "(x 0..12288, y 0..12288, z -200..1400 nm: --voxel-shape 64 64 4 from the default origin)") in err
    assert main(base + ["--voxel-shape", "34", "34", "3", "--voxel-origin", "0", "0", "-600"]) == 0
    assert "leaves out" not in capsys.readouterr().err  # a box that holds them all: nothing said


def _with_overlaps(n=3000, n_mixed=150, seed=4):
    """two_dye_table plus ``n_mixed`` rows that are an emitter of each dye fitted as one (photons summed)."""
    single = two_dye_table(n, seed=seed)
    rng = np.random.default_rng(seed + 10)
    a, b = (np.exp(rng.uniform(np.log(1000.0), np.log(10000.0), n_mixed)) for _ in range(2))
    bg_sd = np.sqrt(4.0 * np.pi * 20.0)
    n0 = rng.poisson(0.8 * a + 0.3 * b) + rng.normal(0.0, bg_sd, n_mixed)
    n1 = rng.poisson(0.2 * a + 0.7 * b) + rng.normal(0.0, bg_sd, n_mixed)
    cols = {c: np.concatenate([np.asarray(single[c], float), v]) for c, v in {
        "frame": np.arange(n_mixed) % 150, "x_nm": rng.uniform(0, 6400, n_mixed), "y_nm": rng.uniform(0, 6400, n_mixed),
        "z_nm": np.zeros(n_mixed), "photons": n0 + n1, "photons_ch0": n0, "photons_ch1": n1,
        "bg": np.full(n_mixed, 20.0)}.items()}
    cols["frame"] = cols["frame"].astype(np.int64)
    mixed = np.r_[np.zeros(n, bool), np.ones(n_mixed, bool)]
    return LocTable(cols), mixed


def test_reject_misfit_rejects_rows_that_fit_no_colour(tmp_path, capsys):
    from plexloc.post.color import assign_colors

    table, mixed = _with_overlaps()
    ratios = [[0.8, 0.2], [0.3, 0.7]]
    plain, report = assign_colors(table, ratios)
    # eq. 3 alone: most rows of two dyes take a colour, with a probability near 1
    assert np.mean(np.asarray(plain["color"])[mixed] >= 0) > 0.7 and report.n_misfit == 0
    out, report = assign_colors(table, ratios, misfit_alpha=1e-3)
    color = np.asarray(out["color"])
    assert np.mean(color[mixed] == -1) > 0.8  # rows of two dyes: rejected
    assert np.mean(color[~mixed] == -1) < 0.02  # single emitters: kept
    assert np.array_equal(np.asarray(out["color_prob"]), np.asarray(plain["color_prob"]), equal_nan=True)
    assert report.n_misfit == np.count_nonzero((color == -1) & (np.asarray(plain["color"]) >= 0))
    assert 0.9 < report.noise_factor < 1.5  # the uncertainties fit this table's single emitters
    assert report.to_dict()["n_misfit"] == report.n_misfit and report.to_dict()["misfit_alpha"] == 1e-3
    # the command: the share said, and a level of 1 refused naming the option
    write_locs(table, tmp_path / "locs.csv")
    base = ["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv"), "--ratios", "0.8", "0.2",
            "--ratios", "0.3", "0.7"]
    assert main(base + ["--reject-misfit", "1e-3"]) == 0
    assert f"fit none of the ratios (chi-square p < 0.001, noise scale {report.noise_factor:.2f}): " \
           f"{report.n_misfit} (" in capsys.readouterr().out
    assert np.array_equal(np.asarray(read_locs(tmp_path / "c.csv")["color"]), color)
    assert main(base + ["--reject-misfit", "1"]) == 2
    assert "--reject-misfit 1: give a false-rejection level below 1" in capsys.readouterr().err
