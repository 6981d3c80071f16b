"""Review of the session-48 colour walk (revcolour): plexloc color --config against a table of another channel count,
or a configuration of one colour."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

import plexloc
from plexloc.cli.main import main
from plexloc.io import write_table
from plexloc.table import LocTable

EXAMPLES = plexloc.__path__[0] + "/examples/"


def _table(n_channels: int, n: int = 300) -> LocTable:
    rng = np.random.default_rng(0)
    dye = rng.integers(0, 2, n)
    frac = np.where(dye == 0, 0.8, 0.3)
    total = rng.uniform(2000, 6000, n)
    ph = np.zeros((n, n_channels))
    ph[:, 0], ph[:, 1] = frac * total, (1 - frac) * total
    ph += rng.normal(size=ph.shape) * 30.0
    cols = {"frame": np.arange(n), "x_nm": np.full(n, 1e3), "y_nm": np.full(n, 1e3), "z_nm": np.zeros(n),
            "photons": ph.sum(axis=1)}
    for c in range(n_channels):
        cols[f"photons_ch{c}"], cols[f"bg_ch{c}"] = ph[:, c], np.full(n, 20.0)
    return LocTable(cols)


@pytest.mark.parametrize("config, n_channels, ratios", [
    ("dual_color.yaml", 4, ["--ratios", "0.4", "0.3", "0.2", "0.1", "--ratios", "0.1", "0.2", "0.3", "0.4"]),
    ("quad_plane.yaml", 2, ["--ratios", "0.8", "0.2", "--ratios", "0.3", "0.7"]),
    ("dual_color.yaml", 4, []),
])
def test_config_of_another_channel_count_is_refused(tmp_path, capsys, config, n_channels, ratios):
    """A configuration of 2 (or 4) channels for a table of 4 (or 2): its cameras (the excess noise) and ratios are
    another setup's. With --ratios given the colours were assigned without a word (exit 0); without, the message
    spoke of the ratios' length only."""
    cfg = tmp_path / config
    shutil.copy(EXAMPLES + config, cfg)
    write_table(_table(n_channels), tmp_path / "locs.csv")
    out = tmp_path / "c.csv"
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(out), "--config", str(cfg), *ratios]) == 2
    err = capsys.readouterr().err
    other = 2 if n_channels == 4 else 4
    assert f"--config {cfg} has {other} channel(s), the table {n_channels} (photons_ch0" in err
    assert "locs.csv" in err and "not fitted with this configuration" in err
    assert not out.exists()


def test_config_of_the_right_channel_count_with_ratios_still_runs(tmp_path):
    cfg = tmp_path / "biplane.yaml"
    shutil.copy(EXAMPLES + "biplane.yaml", cfg)
    write_table(_table(2), tmp_path / "locs.csv")
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv"), "--config", str(cfg),
                 "--ratios", "0.8", "0.2", "--ratios", "0.3", "0.7"]) == 0


def test_config_of_one_colour_is_refused_naming_the_colours(tmp_path, capsys):
    """A ratiometric configuration of one dye: the message said its ratios 'are for 2 channel(s), the table has 2'."""
    with open(EXAMPLES + "dual_color.yaml") as f:
        d = yaml.safe_load(f)
    d["photon_model"]["ratios"] = d["photon_model"]["ratios"][:1]
    for key in ("color_fractions", "on_time_frames"):
        if d["photon_model"].get(key) is not None:
            d["photon_model"][key] = d["photon_model"][key][:1]
    cfg = tmp_path / "one.yaml"
    with open(cfg, "w") as f:
        yaml.safe_dump(d, f)
    write_table(_table(2), tmp_path / "locs.csv")
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c.csv"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "one.yaml" in err and "photon_model.ratios name 1 colour" in err
    assert "channel(s)" not in err


def test_mixed_probability_is_the_integral_over_the_mixing_fraction_for_bright_rows():
    """The two-dye marginal averaged the likelihood over 40 points of the mixing fraction q: rows of 50,000 photons
    at the model's own noise pin q down to ~0.01, under the spacing (0.025), and their P(mixed) was off by up to 0.24
    from the integral (a 4,000-point grid): 12 of 6,000 rows on the other side of 0.5. Now within 0.005."""
    from plexloc.post.color import DEFAULT_PSF_AREA_PX, mixed_probability

    R = np.array([[0.8, 0.2], [0.3, 0.7]])
    rng = np.random.default_rng(5)
    q = np.concatenate([np.ones(500), np.zeros(500), rng.uniform(0, 1, 1000)])
    mu = 50000.0 * (q[:, None] * R[0] + (1 - q[:, None]) * R[1])
    bg_var = np.full_like(mu, DEFAULT_PSF_AREA_PX * 50.0)
    n = mu + rng.normal(size=mu.shape) * np.sqrt(2.0 * (mu + bg_var))
    kw = dict(bg_var=bg_var, excess_noise=2.0, noise_factor=1.0)
    fine = mixed_probability(n, R, 0.01, grid=4000, **kw)
    assert np.max(np.abs(mixed_probability(n, R, 0.01, **kw) - fine)) < 0.005
    s = np.sqrt(2.0 * (np.maximum(n, 0) + bg_var))  # the same with sigma_photons_ch*
    fine_s = mixed_probability(n, R, 0.01, s=s, grid=4000)
    assert np.max(np.abs(mixed_probability(n, R, 0.01, s=s) - fine_s)) < 0.005


@pytest.mark.parametrize("flip", ["none", "x"])
def test_swapped_boxes_past_the_misaligned_limit_name_the_swap(flip):
    """A split view whose transform is a 2-degree rotation, its boxes swapped: the configured peak sits ~1.6 px off
    (past the 1.5 px of 'misaligned') and the swapped geometry's at zero, but not 2x better correlated; the finding
    told the user to re-run plexloc calibrate (the transform 'off by about that much'). It names the boxes now; the
    right boxes stay quiet."""
    import math
    import warnings

    from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import join_frames, split_frames
    from test_colourwalk48 import _dual_view_movie

    a = math.radians(2.0)
    rot = np.array([[math.cos(a), -math.sin(a), 40.0], [math.sin(a), math.cos(a), -30.0], [0.0, 0.0, 1.0]])
    frames = _dual_view_movie(rot, n_frames=60, seed=11, size=64)
    true = SplitViewConfig(boxes=[[0, 0, 64, 64], [64, 0, 64, 64]], flip=["none", flip])
    raw = join_frames(np.moveaxis(frames, 0, 1), true, (64, 128))
    cut = split_frames(raw, true)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), rot], 100.0, split=true)
    assert ok.status == "ok"
    wrong = SplitViewConfig(boxes=true.boxes[::-1], flip=["none", flip])
    cut = split_frames(raw, wrong)
    with pytest.warns(ChannelAlignmentWarning) as rec:
        bad = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), rot], 100.0, split=wrong)
    text = " ".join(str(r.message) for r in rec)
    assert bad.status == "misaligned" and math.hypot(*bad.offsets_px[1]) >= 1.5
    assert "swap the split_view section's boxes of channels 0 and 1" in text
    assert "re-run plexloc calibrate" not in text
