"""Colour assignment of the rows of a channel-by-channel merge that a channel missed (session 47, colormiss).

combine_channels writes 0 photons for a channel that did not see the molecule; assign_colors took that as a
measurement of 0 photons, so such a row always went, with color_prob 1, to the dye that puts the fewest photons in the
channel that missed it (a 60/40 dye missed in channel 0 got the 20/80 dye). A missed channel received fewer photons
than it detects: the colour comes from the channels seen and the probability that the missed one would have missed
each dye's photons there; rows that every dye would have shown there are rejected."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.errors import InputError
from plexloc.post.color import DEFAULT_PSF_AREA_PX, assign_colors, estimate_ratios
from plexloc.table import LocTable

DETECTION_SNR = 10.0  # plexloc.post.color.DETECTION_SNR (pinned: the docstrings' numbers were measured with it)

R2060 = [[0.2, 0.8], [0.6, 0.4]]
AF_CF = [[0.173, 0.827], [0.019, 0.981]]


def _merged(ph: np.ndarray, bg=(20.0, 135.0)) -> LocTable:
    """A table as combine_channels writes it: photons_chN 0 where channel N missed the row, bg_chN, n_channels_seen."""
    n = len(ph)
    cols = {"frame": np.arange(n), "x_nm": np.full(n, 1000.0), "y_nm": np.full(n, 1000.0), "z_nm": np.zeros(n),
            "photons": ph.sum(axis=1), "n_channels_seen": (ph != 0).sum(axis=1)}
    for c in range(ph.shape[1]):
        cols[f"photons_ch{c}"] = ph[:, c]
        cols[f"bg_ch{c}"] = np.full(n, bg[c])
    return LocTable(cols)


def _detected(rng, dye, total, ratios, bg, excess=1.0, spread=0.4):
    """Per-channel photons of ``total`` photons of each ``dye``, with shot and background noise, and 0 where a
    channel's detection limit (10 background noise units under the spot, spread log-normally) was not reached."""
    r = np.asarray(ratios)[dye]
    mu = total[:, None] * r
    bgv = DEFAULT_PSF_AREA_PX * np.asarray(bg)[None, :]
    ph = mu + rng.normal(size=mu.shape) * np.sqrt(excess * (mu + bgv))
    limit = DETECTION_SNR * np.sqrt(excess * bgv) * np.exp(spread * rng.normal(size=mu.shape))
    seen = ph > limit
    keep = seen.any(axis=1)
    return np.where(seen, ph, 0.0)[keep], dye[keep]


def test_a_dye_missed_where_both_dyes_are_bright_is_rejected_not_given_the_other_colour():
    """20/80 and 60/40, channel 1 alone saw 6,000 photons (background 20 and 135 photons/px): channel 0 would have
    received 1,500 (20/80) or 9,000 (60/40), both far above its limit of about 160: the row fits both dyes alike.
    It took the 20/80 dye with color_prob 1.0 (the 60/40 dye's truth: wrong); now it is rejected. A dim row (800
    photons in channel 1: 200 or 1,200 in channel 0, the first near the limit) keeps the 20/80 dye, and a row that
    channel 1 missed with 900 photons in channel 0 (channel 1 would have had 600 or 3,600) takes the 60/40 dye."""
    t = _merged(np.array([[0.0, 6000.0], [0.0, 800.0], [900.0, 0.0]]))
    out, report = assign_colors(t, R2060)
    assert out["color"].tolist() == [-1, 0, 1]
    p = np.asarray(out["color_prob"])
    assert p[0] < 0.75 and p[1] > 0.9 and p[2] > 0.9
    from plexloc.post import color

    assert color.DETECTION_SNR == DETECTION_SNR
    assert report.n_partial == 3 and report.n_partial_rejected == 1
    assert report.detection_limits[0] == pytest.approx(DETECTION_SNR * np.sqrt(DEFAULT_PSF_AREA_PX * 20.0))
    assert "seen in only some channels: 3 rows" in report.format_table()


@pytest.mark.parametrize("ratios, bg, min_given", [(AF_CF, (20.0, 135.0), 98.0), (R2060, (20.0, 135.0), 98.0)])
def test_one_channel_rows_are_coloured_right_or_rejected(ratios, bg, min_given):
    """Simulated rows of a channel-by-channel merge (two dyes, 200-5,000 photons, a channel misses a spot under its
    detection limit): among the rows one channel missed, the colours given are right (AF647/CF680: 90.3 % before,
    every row given a colour; 99.7 % now with 33 % rejected; 20/80 - 60/40: 95.2 %, now 99.4 % with 12 % rejected)
    and rows seen in both channels keep their colours."""
    rng = np.random.default_rng(47)
    dye = rng.integers(0, 2, 20000)
    ph, dye = _detected(rng, dye, rng.uniform(200.0, 5000.0, len(dye)), ratios, bg)
    out, _ = assign_colors(_merged(ph, bg), ratios)
    color = np.asarray(out["color"])
    one = (ph == 0).any(axis=1)
    given = one & (color >= 0)
    assert one.sum() > 2000
    assert 100.0 * np.mean(color[given] == dye[given]) > min_given
    assert given.sum() > 0.5 * one.sum()
    both = ~one & (color >= 0)
    assert np.mean(color[both] == dye[both]) > 0.97


def test_rows_seen_in_every_channel_are_coloured_as_before():
    """A table with n_channels_seen whose rows every channel saw (and a joint fit's table without it) get the
    colours and probabilities of eq. 3 as before: only rows that a channel missed change."""
    rng = np.random.default_rng(3)
    ph = np.abs(rng.normal(1000.0, 400.0, (200, 2))) + 50.0
    merged = _merged(ph)
    joint = merged.without_columns("n_channels_seen")
    a, _ = assign_colors(merged, R2060, excess_noise=2.0)
    b, report = assign_colors(joint, R2060, excess_noise=2.0)
    np.testing.assert_array_equal(a["color"], b["color"])
    np.testing.assert_array_equal(a["color_prob"], b["color_prob"])
    assert report.n_partial == 0 and "only some channels" not in report.format_table()
    # a joint fit's row with 0 photons in a channel is a measurement there (no n_channels_seen): unchanged
    zero = LocTable({**joint.to_dict(), "photons_ch0": np.where(np.arange(200) < 5, 0.0, ph[:, 0])})
    c, report = assign_colors(zero, R2060, excess_noise=2.0)
    assert report.n_partial == 0


def test_given_detection_limits_decide_and_are_checked():
    """detection_limits replace the background's: with channel 0 detecting from 1,500 photons, a row that channel 1
    alone saw with 2,400 photons (600 or 3,600 in channel 0) is the 20/80 dye (rejected with the background's limit
    of 160: both dyes would have been seen); one limit per channel, >= 0."""
    t = _merged(np.array([[0.0, 6000.0]]))
    assert assign_colors(t, R2060)[0]["color"].tolist() == [-1]
    t = _merged(np.array([[0.0, 2400.0]]))
    out, report = assign_colors(t, R2060, detection_limits=[1500.0, 500.0])
    assert out["color"].tolist() == [0] and report.detection_limits == [1500.0, 500.0]
    for bad in ([100.0], [100.0, -1.0], [np.nan, 1.0]):
        with pytest.raises(InputError, match="detection_limits must be one number of photons >= 0 per channel"):
            assign_colors(t, R2060, detection_limits=bad)
    with pytest.raises(InputError, match="miss_rate"):
        assign_colors(t, R2060, miss_rate=1.0)


def test_ratio_estimate_leaves_out_rows_that_a_channel_missed():
    """Rows that a channel missed (0 photons there) made clusters at fractions 0 and 1: on a 20/80 - 60/40 merge
    with a third of its rows seen in one channel the estimate was far from 0.2 / 0.6; now from the other rows."""
    rng = np.random.default_rng(5)
    dye = rng.integers(0, 2, 6000)
    ph, _ = _detected(rng, dye, rng.uniform(300.0, 3000.0, len(dye)), R2060, (20.0, 135.0))
    assert 0.2 < (ph == 0).any(axis=1).mean() < 0.6
    fit = estimate_ratios(_merged(ph), 2)
    np.testing.assert_allclose(fit.ratios[:, 0], [0.6, 0.2], atol=0.05)


def test_cli_detection_limit(tmp_path, capsys):
    """plexloc color --detection-limit: one number per channel (else an error naming the file), used for the rows a
    channel missed; the output says how many such rows there were."""
    from plexloc.cli.main import main
    from plexloc.io.tables import read_table, write_table

    src = tmp_path / "merged.csv"
    write_table(_merged(np.array([[0.0, 2400.0], [900.0, 0.0]] + [[400.0 + i, 1600.0 - i] for i in range(10)]
                                 + [[1200.0 + i, 800.0 - i] for i in range(10)])), src)
    assert main(["color", str(src), "--out", str(tmp_path / "x.csv"), "--ratios", "0.2", "0.8", "--ratios", "0.6",
                 "0.4", "--detection-limit", "100"]) == 2
    err = capsys.readouterr().err
    assert "merged.csv: --detection-limit 100: give one number of photons per channel of the table (2)" in err
    assert not (tmp_path / "x.csv").exists()
    out = tmp_path / "out.csv"
    assert main(["color", str(src), "--out", str(out), "--ratios", "0.2", "0.8", "--ratios", "0.6", "0.4",
                 "--detection-limit", "1500", "500"]) == 0
    assert read_table(out)["color"].tolist()[:2] == [0, 1]
    assert "seen in only some channels: 2 rows" in capsys.readouterr().out
