"""Multi-colour walk of session 48 (colourwalk): two emitters of different dyes fitted as one, and a swapped
dual-colour layout.

Eq. 3 compares the dyes with one another only: a row that is two emitters of different dyes fitted as one (its photon
fraction between the dyes') still takes the nearer dye with color_prob near 1. On simulated split-view movies fitted
by MLE (dual_color_splitview, 0.5-2 emitters/um^2) 97-100 % of such rows had color_prob >= 0.99. assign_colors'
``mixed_prior`` (``plexloc color --reject-mixed``) weighs the two-dye hypothesis (mixing fraction uniform), with the
chi-squares scaled by the table's own noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plexloc.cli.main import main
from plexloc.errors import InputError
from plexloc.io import read_table, write_table
from plexloc.post.color import DEFAULT_PSF_AREA_PX, assign_colors, mixed_probability
from plexloc.table import LocTable

RATIOS = [[0.8, 0.2], [0.3, 0.7]]  # dual_color_splitview.yaml
BG = 50.0  # photons/px in both channels
EXCESS = 2.0  # EMCCD
EXTRA = 3.0  # the per-channel photons of an MLE fit scatter ~3x more than shot noise (chi2 4-18x)


def _photons(rng, dye, total):
    """(L, 2) per-channel photons of ``total`` photons of each ``dye`` with shot, background and extra noise."""
    mu = total[:, None] * np.asarray(RATIOS)[dye]
    sd = EXTRA * np.sqrt(EXCESS * (mu + DEFAULT_PSF_AREA_PX * BG))
    return mu + rng.normal(size=mu.shape) * sd


def _table(ph: np.ndarray, sigma: np.ndarray | None = None) -> LocTable:
    n = len(ph)
    cols = {"frame": np.arange(n), "x_nm": np.full(n, 1000.0), "y_nm": np.full(n, 1000.0), "z_nm": np.zeros(n),
            "photons": ph.sum(axis=1), "photons_ch0": ph[:, 0], "photons_ch1": ph[:, 1],
            "bg_ch0": np.full(n, BG), "bg_ch1": np.full(n, BG)}
    if sigma is not None:
        cols.update(sigma_photons_ch0=sigma[:, 0], sigma_photons_ch1=sigma[:, 1])
    return LocTable(cols)


def _singles_and_merged(seed: int = 0, n_single: int = 2000, n_merged: int = 200):
    """A table of single-dye rows (1,000-10,000 photons) followed by merged rows: one emitter of each dye fitted
    as one, the dimmer with 30-100 % of the brighter's photons. Returns ``(table, truth colour (-2: merged))``."""
    rng = np.random.default_rng(seed)
    dye = rng.integers(0, 2, n_single)
    single = _photons(rng, dye, rng.uniform(1000, 10000, n_single))
    a = rng.uniform(1000, 10000, n_merged)
    b = a * rng.uniform(0.3, 1.0, n_merged)
    first = rng.integers(0, 2, n_merged)
    merged = _photons(rng, first, a) + _photons(rng, 1 - first, b)
    return _table(np.concatenate([single, merged])), np.concatenate([dye, np.full(n_merged, -2)])


def test_merged_different_dye_rows_lose_their_confident_colour_and_single_rows_keep_theirs():
    """Eq. 3 alone gives most merged rows color_prob >= 0.99; with mixed_prior 0.01 at least 80 % of them are
    rejected while at most 2 % of the single-dye rows are (Gaussian noise here: 188 of 200 and 8 of 2,000; the
    misfit test at 1e-3 181 and 2, its false rejections grow with an MLE fit's heavier tails, see the next test)."""
    t, truth = _singles_and_merged()
    merged, single = truth == -2, truth >= 0
    eq3, _ = assign_colors(t, RATIOS, excess_noise=EXCESS)
    assert np.mean(np.asarray(eq3["color_prob"])[merged] >= 0.99) > 0.6
    out, report = assign_colors(t, RATIOS, excess_noise=EXCESS, mixed_prior=0.01)
    c, p = np.asarray(out["color"]), np.asarray(out["color_prob"])
    assert np.mean(c[merged] < 0) >= 0.8
    assert np.mean(c[single] < 0) <= 0.02
    assert np.mean(c[single][c[single] >= 0] == truth[single][c[single] >= 0]) > 0.995
    assert np.mean(p[merged] >= 0.99) < 0.1
    assert report.mixed_prior == 0.01 and report.noise_factor > 1.0
    assert report.n_mixed == int(np.sum((c < 0) & (np.asarray(eq3["color"]) >= 0)))
    assert "two dyes' emitters fitted as one" in report.format_table()
    assert report.to_dict()["n_mixed"] == report.n_mixed


def test_a_row_beyond_its_dyes_ratio_is_not_taken_for_two_dyes():
    """A fraction beyond a dye's ratio (away from the other dye) is noise, not a mixture: the two-dye hypothesis
    cannot explain it, so its color_prob stays; one between the dyes' ratios is taken for two dyes. The misfit test
    (a chi-square, either side) rejects both: on the MLE tables most of its false rejections (54 of 2,061 single-dye
    rows at 0.5 /um^2 against 19 with mixed_prior 0.01)."""
    ph = np.array([[4600.0, 400.0],    # fraction 0.92: beyond dye 0's 0.8
                   [2750.0, 2250.0],   # 0.55: half way between 0.8 and 0.3
                   [4000.0, 1000.0]])  # 0.80: dye 0 itself
    t = _table(np.concatenate([ph, _photons(np.random.default_rng(1), np.arange(200) % 2, np.full(200, 5000.0))]))
    out, _ = assign_colors(t, RATIOS, excess_noise=EXCESS, mixed_prior=0.01)
    c = np.asarray(out["color"])[:3]
    assert c.tolist() == [0, -1, 0]
    pm = mixed_probability(ph, np.asarray(RATIOS), 0.01, bg_var=np.full((3, 2), DEFAULT_PSF_AREA_PX * BG),
                           excess_noise=EXCESS, noise_factor=EXTRA**2)
    assert pm[0] < 0.05 and pm[1] > 0.9 and pm[2] < 0.05
    misfit, _ = assign_colors(t, RATIOS, excess_noise=EXCESS, misfit_alpha=1e-3)
    assert np.asarray(misfit["color"])[:3].tolist() == [-1, -1, 0]


def test_mixed_prior_with_sigma_photons_columns():
    """A network's table (sigma_photons_ch*): the same test with the given uncertainties."""
    t, truth = _singles_and_merged(seed=2, n_single=1000, n_merged=100)
    n = np.column_stack([t["photons_ch0"], t["photons_ch1"]])
    sigma = EXTRA * np.sqrt(EXCESS * (np.maximum(n, 0) + DEFAULT_PSF_AREA_PX * BG))
    out, report = assign_colors(_table(n, sigma), RATIOS, mixed_prior=0.01)
    c = np.asarray(out["color"])
    assert np.mean(c[truth == -2] < 0) >= 0.8 and np.mean(c[truth >= 0] < 0) <= 0.02
    assert report.sigma_source == "sigma_photons_ch*"


def test_mixed_prior_out_of_range_is_refused():
    t, _ = _singles_and_merged(n_single=20, n_merged=2)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(InputError, match="mixed_prior"):
            assign_colors(t, RATIOS, mixed_prior=bad)


def test_cli_reject_mixed(tmp_path, capsys):
    t, truth = _singles_and_merged(seed=3, n_single=600, n_merged=60)
    write_table(t, tmp_path / "locs.csv")
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "col.csv"), "--ratios", "0.8", "0.2",
                 "--ratios", "0.3", "0.7", "--excess-noise", "2", "--reject-mixed", "0.01",
                 "--json", str(tmp_path / "col.json")]) == 0
    out = capsys.readouterr().out
    assert "fit two dyes' emitters fitted as one better (prior 0.01" in out
    c = np.asarray(read_table(tmp_path / "col.csv")["color"])
    assert np.mean(c[truth == -2] < 0) >= 0.8
    with open(tmp_path / "col.json") as f:
        rep = json.load(f)
    assert rep["mixed_prior"] == 0.01 and rep["n_mixed"] >= 48
    with pytest.raises(SystemExit):
        main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c2.csv"), "--reject-mixed", "0"])
    assert main(["color", str(tmp_path / "locs.csv"), "--out", str(tmp_path / "c3.csv"), "--reject-mixed", "1"]) == 2
    assert "--reject-mixed 1: give a prior probability in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "c3.csv").exists()


# --- a swapped dual-colour layout ---------------------------------------------------------------------------------

def _dual_view_movie(transform, n_frames: int = 80, seed: int = 0, size: int = 48) -> np.ndarray:
    """Photon frames (C, T, H, W) of a two-channel movie (ideal cameras, size x size px of 100 nm, 1 emitter/um^2)."""
    import torch

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.simulation import Simulator

    d = {"px_size_nm": 100.0, "frame_size": [size, size], "photon_model": {"kind": "ratiometric", "ratios": RATIOS},
         "channels": [{"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}},
                      {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"},
                       "transform": np.asarray(transform).tolist()}],
         "emitters": {"density_per_um2": 1.0, "photons_range": [2000.0, 5000.0], "z_range_nm": [0.0, 0.0]},
         "background": {"range": [10.0, 10.0]}}
    cfg = validate_config(d, SimulationConfig)
    return Simulator(cfg).simulate_movie(n_frames, generator=torch.Generator().manual_seed(seed)).frames.numpy()


SUBPIXEL = np.array([[1.0, 0.0, 40.0], [0.0, 1.0, 25.0], [0.0, 0.0, 1.0]])  # dual_color_splitview.yaml's transform


@pytest.mark.parametrize("seed", [0, 1])
def test_swapped_halves_of_a_subpixel_transform_are_said_and_the_right_order_is_not(seed):
    """With a 47 nm transform the swapped geometry lines up as well as the configured one (no 2x better
    correlation), and the check said "ok" with the peak at 0.94 px, below the 1.5 px it calls misaligned. The peak is
    measured to a few hundredths of a pixel, at the place where channels in each other's place (or the transform
    reversed) put it: that is said, naming the boxes to swap; the right order stays quiet."""
    import warnings

    from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
    from plexloc.config.models import SplitViewConfig

    frames = _dual_view_movie(SUBPIXEL, seed=seed)
    split = SplitViewConfig(boxes=[[0, 0, 48, 48], [48, 0, 48, 48]], flip=["none", "none"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = check_channel_alignment([frames[0], frames[1]], [np.eye(3), SUBPIXEL], 100.0, split=split)
    assert ok.status == "ok" and not ok.findings
    assert any("channel order not decided" in n for n in ok.notes)
    with pytest.warns(ChannelAlignmentWarning, match="in each other's place") as rec:
        bad = check_channel_alignment([frames[1], frames[0]], [np.eye(3), SUBPIXEL], 100.0, split=split)
    assert bad.status == "misaligned"
    text = str(rec[0].message)
    assert "swap the split_view section's boxes of channels 0 and 1" in text
    assert "its inverse [[1, 0, -40], [0, 1, -25], [0, 0, 1]]" in text
    assert "plexloc color --config" in text
    dx, dy = bad.offsets_px[1]
    assert abs(dx + 0.8) < 0.15 and abs(dy + 0.5) < 0.15
    assert not any("channel order not decided" in n for n in bad.notes)


def test_swapped_boxes_of_a_mirroring_split_view_are_said():
    """Channel 1's box mirrored left-right (flip x) and the boxes swapped: the x part of the shift cancels, the
    configured peak sits 0.49 px off zero, and the swapped geometry's at zero: said (the reversed transform would not
    line it up, so only the boxes are named)."""
    from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import join_frames, split_frames

    frames = _dual_view_movie(SUBPIXEL, seed=3)
    true = SplitViewConfig(boxes=[[0, 0, 48, 48], [48, 0, 48, 48]], flip=["none", "x"])
    raw = join_frames(np.moveaxis(frames, 0, 1), true, (48, 96))
    wrong = SplitViewConfig(boxes=true.boxes[::-1], flip=["none", "x"])
    for split, quiet in ((true, True), (wrong, False)):
        cut = split_frames(raw, split)
        if quiet:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rep = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), SUBPIXEL], 100.0, split=split)
            assert rep.status == "ok"
        else:
            with pytest.warns(ChannelAlignmentWarning, match="swap the split_view section's boxes") as rec:
                rep = check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), SUBPIXEL], 100.0, split=split)
            assert "where channels 0 and 1 in each other's place put it" in str(rec[0].message)
            assert rep.status == "misaligned"


def test_a_wrong_rotation_that_lines_the_swap_up_by_chance_is_not_called_a_swap():
    """A movie simulated with a 35 / -20 nm shift checked against a 2-degree rotation (test_mle_movie's split-view
    test): at the window's centre the swapped geometry lines up to about 0.1 px, the configured one 0.86 px off, but
    not where the reversed transform puts it (the two coincide for a real swap without mirrors): no swap is named."""
    import warnings

    from plexloc.calibrate.alignment import check_channel_alignment

    true = np.array([[1.002, 0.001, 35.0], [-0.001, 0.998, -20.0], [0.0, 0.0, 1.0]])
    given = np.array([[0.998, -0.035, 40.0], [0.035, 0.998, -20.0], [0.0, 0.0, 1.0]])
    frames = _dual_view_movie(true, n_frames=30, seed=5, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment([frames[0], frames[1]], [np.eye(3), given], 100.0)
    assert not any("each other's place" in f for f in rep.findings)


def test_identity_transform_swaps_stay_undecided_and_quiet():
    """Where the transform moves the channel less than half a pixel the swap cannot be measured: noted, no
    warning."""
    import warnings

    from plexloc.calibrate.alignment import check_channel_alignment

    frames = _dual_view_movie(np.eye(3), n_frames=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = check_channel_alignment([frames[1], frames[0]], [np.eye(3), np.eye(3)], 100.0)
    assert rep.status == "ok" and not rep.findings


def _fitted_like(seed: int, swapped: bool) -> LocTable:
    rng = np.random.default_rng(seed)
    dye = rng.integers(0, 2, 600)
    ph = _photons(rng, dye, rng.uniform(1000, 10000, 600))
    return _table(ph[:, ::-1].copy() if swapped else ph)


def test_color_config_takes_its_ratios_and_says_a_swapped_table(tmp_path, capsys):
    """plexloc color --config CONFIG colours by the configuration's dye ratios (numbered as it numbers them) and its
    cameras (EMCCD: excess noise 2); a table fitted with the split-view boxes swapped (photon fractions 0.2 / 0.7
    for dyes of 0.8 / 0.3) is warned about, naming the layout; before, --ratios of the same numbers were compared
    with the channel order of the ratios in mind only, and without --ratios the colours came out numbered the other
    way round (0.88 % colour accuracy on a simulated split-view movie) without a word."""
    import shutil

    cfg = tmp_path / "dual.yaml"
    shutil.copy(__import__("plexloc").__path__[0] + "/examples/dual_color_splitview.yaml", cfg)
    write_table(_fitted_like(0, False), tmp_path / "ok.csv")
    write_table(_fitted_like(1, True), tmp_path / "swapped.csv")
    assert main(["color", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "ok_c.csv"), "--config", str(cfg),
                 "--json", str(tmp_path / "ok.json")]) == 0
    cap = capsys.readouterr()
    assert "--excess-noise 2" in cap.out and "warning" not in cap.err
    with open(tmp_path / "ok.json") as f:
        assert json.load(f)["ratios"] == [[0.8, 0.2], [0.3, 0.7]]
    import warnings

    with warnings.catch_warnings():  # shown as a user sees them (plexloc color: warning: ...), not raised
        warnings.simplefilter("default")
        assert main(["color", str(tmp_path / "swapped.csv"), "--out", str(tmp_path / "sw_c.csv"),
                     "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "dual.yaml's photon_model.ratios" in err and "reordered as [1, 0]" in err
    assert "split-view boxes or channel movies given in the wrong order" in err


def test_color_config_without_dye_ratios_is_refused(tmp_path, capsys):
    import shutil

    cfg = tmp_path / "biplane.yaml"
    shutil.copy(__import__("plexloc").__path__[0] + "/examples/biplane.yaml", cfg)
    write_table(_fitted_like(0, False), tmp_path / "ok.csv")
    assert main(["color", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "c.csv"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "biplane.yaml" in err and "photon_model is 'linked', not ratiometric" in err
    assert not (tmp_path / "c.csv").exists()
    # --ratios given: the configuration serves for its cameras only
    assert main(["color", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "c.csv"), "--config", str(cfg),
                 "--ratios", "0.8", "0.2", "--ratios", "0.3", "0.7"]) == 0


def test_register_refuses_one_table_twice_and_warns_on_identical_positions(tmp_path, capsys):
    """The same table as reference and channel gave an identity transform, 'residual rms 0.0 nm', without a word."""
    rng = np.random.default_rng(0)
    n = 120
    t = LocTable({"frame": np.repeat(np.arange(12), 10), "x_nm": rng.uniform(0, 6000, n),
                  "y_nm": rng.uniform(0, 6000, n), "z_nm": np.zeros(n), "photons": np.full(n, 5000.0)})
    write_table(t, tmp_path / "ch0.csv")
    write_table(t, tmp_path / "copy.csv")
    assert main(["register", str(tmp_path / "ch0.csv"), str(tmp_path / "ch0.csv"), "--out",
                 str(tmp_path / "T.json")]) == 2
    assert "given as both the reference and the channel" in capsys.readouterr().err
    assert not (tmp_path / "T.json").exists()
    assert main(["register", str(tmp_path / "ch0.csv"), str(tmp_path / "copy.csv"), "--out",
                 str(tmp_path / "T.json")]) == 0
    assert "hold the same positions" in capsys.readouterr().err
    moved = t.with_columns(x_nm=np.asarray(t["x_nm"]) + 40.0 + rng.normal(0, 5, n),
                           y_nm=np.asarray(t["y_nm"]) + 25.0 + rng.normal(0, 5, n))
    write_table(moved, tmp_path / "ch1.csv")
    assert main(["register", str(tmp_path / "ch0.csv"), str(tmp_path / "ch1.csv"), "--out",
                 str(tmp_path / "T1.json")]) == 0
    assert "same positions" not in capsys.readouterr().err
