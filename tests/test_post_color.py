"""Colour assignment (eq. 3 of DECODE-Plex) and ratio estimation on simulated ratiometric tables."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from plexloc.errors import InputError
from plexloc.evaluate import evaluate
from plexloc.post.color import assign_colors, estimate_ratios, ratio_figure
from plexloc.post.synthetic_plex import ratiometric_table
from plexloc.table import LocTable

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dual_color.yaml"
BG = 50.0  # photons per pixel per channel


def noisy_table(ratios, photons, *, seed=0, frames=200, with_sigma=True):
    """Dual-colour example truth; per-channel photons with noise sigma^2 = 2 (n + 4 pi bg)."""
    return ratiometric_table(yaml.safe_load(EXAMPLE.read_text()), ratios, photons, bg=BG, frames=frames,
                             seed=seed, with_sigma=with_sigma)


EASY = [[0.2, 0.8], [0.6, 0.4]]
HARD = [[0.173, 0.827], [0.019, 0.981]]  # AF647 / CF680, the manuscript's protocol


@pytest.mark.parametrize(("ratios", "photons", "min_acc", "max_rej"), [
    (EASY, 2000, 99.9, 0.1),
    (EASY, 500, 98.0, 2.0),
    (HARD, 5000, 99.9, 0.1),
    (HARD, 2000, 98.5, 1.5),
])
def test_accuracy_on_bright_localizations(ratios, photons, min_acc, max_rej):
    truth, pred = noisy_table(ratios, photons)
    out, report = assign_colors(pred, ratios)
    bright = truth["photons"] >= 0.5 * photons  # frames where the emitter is on at least half the time
    m = evaluate(truth[bright], out[bright], dim=2)
    assert m.color_accuracy >= min_acc
    assert m.color_rejection <= max_rej
    assert m.color_accuracy + m.color_rejection > 99.5  # hardly any wrong colour at threshold 0.9
    assert sum(report.counts.values()) == len(pred)
    assert np.all((out["color_prob"] >= 0.5) & (out["color_prob"] <= 1.0))


def test_dim_localizations_are_rejected_not_misassigned():
    truth, pred = noisy_table(HARD, 2000)
    out, _ = assign_colors(pred, HARD)
    m = evaluate(truth, out, dim=2)  # all rows, including emitters on for a sliver of a frame
    assert 75.0 <= m.color_accuracy <= 85.0
    assert 100.0 - m.color_accuracy - m.color_rejection < 2.0  # wrong colours stay rare
    lo, _ = assign_colors(pred, HARD, threshold=0.0)
    assert np.all(lo["color"] >= 0)


def test_poisson_background_sigma_estimate_matches_given_sigma():
    truth, with_sigma = noisy_table(EASY, 1000)
    _, without = noisy_table(EASY, 1000, with_sigma=False)
    a, ra = assign_colors(with_sigma, EASY)
    b, rb = assign_colors(without, EASY, excess_noise=2.0)  # same noise model as the simulated one
    assert rb.sigma_source.startswith("shot noise")
    assert ra.sigma_source == "sigma_photons_ch*"
    assert np.mean(a["color"] == b["color"]) > 0.99


def test_probabilities_follow_eq3_by_hand():
    t = LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [100.0],
                  "photons_ch0": [40.0], "photons_ch1": [60.0], "sigma_photons_ch0": [10.0],
                  "sigma_photons_ch1": [10.0]})
    out, _ = assign_colors(t, [[0.2, 0.8], [0.6, 0.4]], threshold=0.0)
    # equal sigmas: N_k = (r . n) / |r|^2, chi2_k = |n|^2 - (r . n)^2 / |r|^2 (in units of sigma^2)
    chi = [(40**2 + 60**2 - (0.2 * 40 + 0.8 * 60) ** 2 / 0.68) / 100, (40**2 + 60**2 - (0.6 * 40 + 0.4 * 60) ** 2 / 0.52) / 100]
    p0 = 1 / (1 + np.exp(-0.5 * (chi[1] - chi[0])))
    assert out["color"][0] == (0 if p0 > 0.5 else 1)
    assert out["color_prob"][0] == pytest.approx(max(p0, 1 - p0), rel=1e-9)


@pytest.mark.parametrize("ratios", [EASY, HARD])
def test_estimated_ratios_recover_the_truth(ratios, tmp_path):
    _, pred = noisy_table(ratios, 5000)
    fit = estimate_ratios(pred, min_photons=2500)
    got = np.sort(fit.ratios[:, 0])
    want = np.sort([r[0] for r in ratios])
    np.testing.assert_allclose(got, want, atol=0.006)
    np.testing.assert_allclose(fit.ratios.sum(axis=1), 1.0)
    assert fit.converged
    # assigning with the estimated ratios gives the same colours up to the order of the components
    a, _ = assign_colors(pred, ratios)
    b, _ = assign_colors(pred, fit.ratios)
    perm = np.argsort(np.argsort(-np.array([r[0] for r in ratios])))  # fitted components: descending fraction
    mapped = np.where(a["color"] >= 0, perm[a["color"]], -1)
    assert np.mean(mapped == b["color"]) > 0.98
    ratio_figure(fit, tmp_path / "ratios.png", ratios=ratios)
    assert (tmp_path / "ratios.png").stat().st_size > 5000


def test_bad_input():
    t = LocTable({"frame": [0], "x_nm": [0.0], "y_nm": [0.0], "z_nm": [0.0], "photons": [1.0]})
    with pytest.raises(InputError, match="photons_ch0"):
        assign_colors(t, EASY)
    _, pred = noisy_table(EASY, 1000, frames=5)
    with pytest.raises(InputError, match="ratios"):
        assign_colors(pred, [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    with pytest.raises(InputError, match="threshold"):
        assign_colors(pred, EASY, threshold=1.5)


def test_cli_color(tmp_path, capsys):
    from plexloc.cli.main import main
    from plexloc.io.formats import read_locs, write_locs

    truth, pred = noisy_table(EASY, 2000, frames=50)
    write_locs(pred, tmp_path / "locs.csv")
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv"),
                 "--ratios", "0.2", "0.8", "--ratios", "0.6", "0.4", "--figure", str(tmp_path / "r.png")]) == 0
    out = read_locs(tmp_path / "c.csv")
    bright = truth["photons"] >= 1000
    assert np.mean(out["color"][bright] == truth["color"][bright]) > 0.995
    assert (tmp_path / "r.png").exists()
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "e.csv")]) == 0
    assert "estimated ratios" in capsys.readouterr().out
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "x.csv"), "--ratios", "0.2"]) == 2


def mixture_table(ratios, weights, n, seed):
    """Rows of known colour, total photons uniform in 1000-5000, per-channel noise sigma^2 = 2 (n + 4 pi bg)."""
    rng = np.random.default_rng(seed)
    r = np.asarray(ratios, float)
    k = rng.choice(len(r), n, p=weights)
    lam = rng.uniform(1000, 5000, n)[:, None] * r[k]
    s = np.sqrt(2 * (lam + 4 * np.pi * BG))
    obs = lam + rng.normal(size=lam.shape) * s
    cols = {"frame": np.zeros(n, int), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
            "photons": obs.sum(axis=1)}
    for c in range(r.shape[1]):
        cols[f"photons_ch{c}"], cols[f"sigma_photons_ch{c}"] = obs[:, c], s[:, c]
    return LocTable(cols), k


def test_estimated_ratios_find_a_rare_dye():
    """One variance per component let the rare dye's component take the tails of the common one (0.098 for a
    true 0.019 at 5 % of 1000 rows; 0.0216 at 50 % of 50000 rows, where dropping rows with a negative dim
    channel also truncated it); three dyes at 90/5/5 % came out as two splitting the common dye."""
    t, _ = mixture_table(HARD, [0.95, 0.05], 1000, seed=0)
    fit = estimate_ratios(t)
    np.testing.assert_allclose(fit.ratios[:, 0], [0.173, 0.019], atol=0.003)
    np.testing.assert_allclose(fit.weights, [0.95, 0.05], atol=0.01)
    t, _ = mixture_table(HARD, [0.5, 0.5], 50000, seed=1)
    np.testing.assert_allclose(estimate_ratios(t).ratios[:, 0], [0.173, 0.019], atol=0.001)
    three = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]]
    t, _ = mixture_table(three, [0.9, 0.05, 0.05], 10000, seed=3)
    fit = estimate_ratios(t, 3)
    np.testing.assert_allclose(fit.ratios, three, atol=0.005)
    np.testing.assert_allclose(fit.weights, [0.9, 0.05, 0.05], atol=0.01)


def test_negative_photons_give_no_colour():
    """photons_ch = (-50, -30) without sigma or bg took colour 0 with p = 1.0 (a total of -47 photons fitted
    dye 0 better); with sigma 20 p was 0.68. The total is now >= 0: every dye fits equally, p = 1/2."""
    t = LocTable({"frame": [0, 0], "x_nm": [0.0, 0.0], "y_nm": [0.0, 0.0], "z_nm": [0.0, 0.0], "photons": [-80.0, -80.0],
                  "photons_ch0": [-50.0, -50.0], "photons_ch1": [-30.0, -30.0]})
    out, _ = assign_colors(t, HARD)
    assert out["color"].tolist() == [-1, -1]
    np.testing.assert_allclose(out["color_prob"], 0.5)
    out, _ = assign_colors(t.with_columns(sigma_photons_ch0=[20.0, 20.0], sigma_photons_ch1=[20.0, 20.0]), HARD)
    np.testing.assert_allclose(out["color_prob"], 0.5)


def test_ratio_rows_above_one_and_swapped_channels_are_caught(tmp_path, capsys):
    """--ratios rows summing to 1.1 were silently normalised (the config refuses them): now refused naming the row.
    Ratios given with the channels swapped (each within 0.1 of a cluster, colours assigned the wrong way round)
    were silent: now a RatioMismatchWarning says where the data's own fractions cluster and that the channel
    order may be swapped; the right ratios stay quiet."""
    import warnings

    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs
    from plexloc.post.color import RatioMismatchWarning, ratio_mismatch

    table, _ = mixture_table([[0.8, 0.2], [0.3, 0.7]], [0.55, 0.45], 600, seed=3)
    with pytest.raises(InputError, match=r"ratios\[0\].*1\.1"):
        assign_colors(table, [[0.8, 0.3], [0.3, 0.7]])
    fit = estimate_ratios(table, 2)
    assert ratio_mismatch([[0.8, 0.2], [0.3, 0.7]], fit) is None
    assert "swapped" in ratio_mismatch([[0.2, 0.8], [0.7, 0.3]], fit)
    assert "swapped" in ratio_mismatch([[0.95, 0.05], [0.3, 0.7]], fit)
    write_locs(table, tmp_path / "locs.csv")
    args = ["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv")]
    assert main([*args, "--ratios", "0.8", "0.3", "--ratios", "0.3", "0.7"]) == 2
    assert "ratios[0]" in capsys.readouterr().err
    with warnings.catch_warnings():  # shown as a user sees them (plexloc color: warning: ...), not raised
        warnings.simplefilter("default")
        assert main([*args, "--ratios", "0.2", "0.8", "--ratios", "0.7", "0.3"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "locs.csv: --ratios" in err and "0.801" in err and "swapped" in err
    assert main([*args, "--ratios", "0.8", "0.2", "--ratios", "0.3", "0.7"]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.warns(RatioMismatchWarning, match="swapped"):
        warnings.warn(ratio_mismatch([[0.2, 0.8], [0.7, 0.3]], fit), RatioMismatchWarning)


def test_without_network_sigmas_each_colours_expected_noise_is_used():
    """AF647 / CF680 (0.173 / 0.019 of their photons in channel 0) at 100 photons, no background: the observed
    photons' variance called a channel that got few photons by chance precise (0.87 % wrong colours on 200,000 rows);
    each colour's expected variance gives 0.27 % (exact Poisson likelihood with the true photons: 0.18 %)."""
    from plexloc.post.color import assign_colors, color_probabilities, photon_matrix

    ratios = np.array([[0.173, 0.827], [0.019, 0.981]])
    rng = np.random.default_rng(0)
    m = 60_000
    k = rng.integers(0, 2, m)
    n = rng.poisson(100.0 * ratios[k]).astype(float)
    t = LocTable({"frame": np.zeros(m, int), "x_nm": np.zeros(m), "y_nm": np.zeros(m), "z_nm": np.zeros(m),
                  "photons": n.sum(1), "photons_ch0": n[:, 0], "photons_ch1": n[:, 1]})
    out, rep = assign_colors(t, ratios, threshold=0.0)
    wrong = np.mean(np.asarray(out["color"]) != k)
    _, s, _ = photon_matrix(t)
    wrong_observed = np.mean(color_probabilities(n, s, ratios).argmax(1) != k)
    assert wrong < 0.0045 and wrong_observed > 0.006  # 0.27 % against 0.87 % (binomial sd ~0.02 / 0.04 points)
    assert "expected photons" in rep.sigma_source
    # at 0.9 the rejected share falls too (2.3 % -> 0.6 %)
    out9, rep9 = assign_colors(t, ratios, threshold=0.9)
    assert rep9.counts[-1] / m < 0.012
