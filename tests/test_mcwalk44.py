"""The multi-channel workflow walked as a new dual-view lab would (session 44): what was wrong or unclear on the way.

Each test fails on the code before its fix."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from plexloc.calibrate.alignment import ChannelAlignmentWarning, check_channel_alignment
from plexloc.config import SimulationConfig, validate_config
from plexloc.config.models import SplitViewConfig
from plexloc.simulation import Simulator

from test_alignment import EYE, PX, SIZE
from test_alignment import shift as _shift
from test_alignment import two_channels as _two_channels


@pytest.fixture(scope="module")
def shifted() -> np.ndarray:
    """Photon frames (C, T, H, W): channel 1 three pixels right of channel 0 (r_1 = r_0 + 300 nm)."""
    cfg = validate_config(_two_channels(_shift(3.0)), SimulationConfig)
    return Simulator(cfg).simulate_movie(80, generator=torch.Generator().manual_seed(0)).frames.numpy()


# --- a channel transform given the wrong way round (channel -> reference) ------------------------------------------
def test_reversed_transform_is_named_beside_swapped_movies(shifted):
    """Two channel movies: the inverse transform and swapped movies line up alike; the warning named only the movie
    order, and sent a lab whose movies were in the right order to swap them (a biplane: then the focal planes too)."""
    with pytest.warns(ChannelAlignmentWarning) as rec:
        rep = check_channel_alignment(list(shifted), [EYE, _shift(-3.0)], PX, sources=["a.tif", "b.tif"])
    assert rep.status == "wrong geometry"
    (msg,) = [str(r.message) for r in rec]
    assert "give them to plexloc fit as b.tif a.tif" in msg
    assert "channels.1.transform given in the reverse direction" in msg
    assert "its inverse [[1, 0, 300], [0, 1, 0], [0, 0, 1]] would line up" in msg


def test_reversed_transform_of_a_mirrored_split_view_is_named(shifted):
    """A split view with channel 1 mirrored (flip [none, x]): swapped boxes are no explanation there, and the reversed
    transform was reported as a transform 'off by' 6 px, to be re-measured on beads."""
    split = SplitViewConfig(boxes=[(0, 0, SIZE, SIZE), (SIZE, 0, SIZE, SIZE)], flip=["none", "x"])
    with pytest.warns(ChannelAlignmentWarning) as rec:
        rep = check_channel_alignment(list(shifted), [EYE, _shift(-3.0)], PX, split=split, sources="sv.tif")
    # session 50: the boxes swapped with their flips line up exactly as the reversed transform (as two channel movies
    # in the wrong order do), so the two are named together, the swap as the better geometry
    assert rep.status == "wrong geometry"
    (msg,) = [str(r.message) for r in rec]
    assert "swap the split_view section's boxes of channels 0 and 1 together with their flips" in msg
    assert "channels.1.transform given in the reverse direction" in msg
    assert "[[1, 0, 300], [0, 1, 0], [0, 0, 1]]" in msg
    assert "re-run plexloc calibrate" not in msg
    # a transform simply 3 px off (not reversed) keeps the old advice
    with pytest.warns(ChannelAlignmentWarning, match="re-run plexloc calibrate") as rec:
        check_channel_alignment(list(shifted), [EYE, EYE], PX, split=split)
    assert "reverse direction" not in str(rec[0].message)


# --- plexloc calibrate: a rotated channel's transform and the bead stacks' unknown place on the chip ---------------
def _rotated_config(tmp_path, *, roi=(60, 40)):
    import yaml

    a = np.radians(1.0)
    rot = [[float(np.cos(a)), float(-np.sin(a)), 30.0], [float(np.sin(a)), float(np.cos(a)), -20.0], [0.0, 0.0, 1.0]]
    astig = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}
    emccd = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
             "baseline": 100.0, "read_sigma": 74.4}
    d = {"px_size_nm": PX, "frame_size": [48, 48], "chip_size_px": [256, 256], "roi_offset_px": list(roi),
         "photon_model": {"kind": "linked"},
         "channels": [{"psf": astig, "camera": emccd, "throughput": 0.5},
                      {"psf": astig, "camera": emccd, "throughput": 0.5, "transform": rot}],
         "emitters": {"z_range_nm": [-400.0, 400.0]}, "background": {"range": [20.0, 20.0]}}
    path = tmp_path / "rot.yaml"
    path.write_text(yaml.safe_dump(d))
    return path, np.array(rot)


def test_calibrate_warns_when_a_rotated_transform_gets_no_roi_offset(tmp_path, capsys):
    """Beads recorded in a camera ROI at chip pixel (60, 40), a 1 degree rotation between the channels: without
    --roi-offset the translation written is off by (L - I) o (about 1 px here, 175 nm per 100 px), under a note only."""
    import json

    from plexloc.cli.main import main

    cfg, rot = _rotated_config(tmp_path)
    assert main(["simulate", str(cfg), "--beads", "4", "--z-step", "100", "--z-range", "-400", "400",
                 "--out", str(tmp_path / "b"), "--seed", "2"]) == 0
    capsys.readouterr()
    stacks = [str(tmp_path / "b" / f"beads_ch{c}.tif") for c in range(2)]
    base = ["calibrate", *stacks, "--z-step", "100", "--pixel-size", "100", "--config", str(cfg), "--no-validate"]
    assert main([*base, "--out", str(tmp_path / "no_roi.h5")]) == 0
    err = capsys.readouterr().err
    assert "warning: the transforms are more than a shift" in err
    assert re.search(r"off by up to (1[5-9]\d|20\d) nm \(channel 1\)", err), err
    assert "--roi-offset X Y" in err
    report = json.loads((tmp_path / "no_roi.json").read_text())
    assert any("more than a shift" in w for w in report["warnings"])
    # given, the transform is the configuration's and nothing is said
    assert main([*base, "--roi-offset", "60", "40", "--out", str(tmp_path / "roi.h5")]) == 0
    assert "more than a shift" not in capsys.readouterr().err
    t = np.array(json.loads((tmp_path / "roi.json").read_text())["transforms"][1])
    wrong = np.array(report["transforms"][1])
    # 4 beads: the linear part's error times the 60 px lever leaves ~10 nm; without the offset ~125 nm
    assert np.hypot(*(t[:2, 2] - rot[:2, 2])) < 20.0 < 80.0 < np.hypot(*(wrong[:2, 2] - rot[:2, 2]))


# --- plexloc simulate --beads: beads inside every channel's frame ----------------------------------------------------
def test_simulated_beads_keep_their_window_inside_every_channel():
    """Beads were placed inside channel 0's frame only: a channel shifted 3.5 px right put the beads near the right
    edge at its border, where plexloc calibrate rejected them ('border', then 'unmatched in channel 1')."""
    from plexloc.calibrate.synthetic import simulate_bead_stacks
    from plexloc.errors import InputError

    astig = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}
    d = _two_channels(_shift(3.5, -2.0), frame_size=[48, 48], emitters={"z_range_nm": [-300.0, 300.0]})
    for ch in d["channels"]:
        ch["psf"] = astig
    cfg = validate_config(d, SimulationConfig)
    z = np.array([-300.0, -100.0, 100.0, 300.0])
    half = 15 // 2
    for seed in range(10):
        b = simulate_bead_stacks(cfg, n_beads=4, z_nm=z, photons=2e4, bg=20.0, seed=seed)
        x0, y0 = b.xy_nm[:, 0] / PX, b.xy_nm[:, 1] / PX
        for x, y in ((x0, y0), (x0 + 3.5, y0 - 2.0)):  # channel 0 and channel 1 (r_1 = r_0 + (350, -200) nm)
            assert np.all(x >= half + 1) and np.all(x <= 48 - half - 1), (seed, x)
            assert np.all(y >= half + 1) and np.all(y <= 48 - half - 1), (seed, y)
    with pytest.raises(InputError, match=r"at most 4 beads fit .* of every channel"):
        simulate_bead_stacks(cfg, n_beads=5, z_nm=z, photons=2e4, bg=20.0)
    from plexloc.calibrate.synthetic import bead_capacity, channel_margins_px

    margins = channel_margins_px(cfg)
    np.testing.assert_allclose(margins, (0.0, 3.5, 2.0, 0.0), atol=1e-9)  # left, right, top, bottom
    assert bead_capacity((48, 48), 15) == 9 and bead_capacity((48, 48), 15, margins) == 4


def test_bead_stack_of_a_configuration_error_does_not_blame_the_z_range(tmp_path):
    """A one-channel calibration named for two channels failed inside the bead simulation and was reported as
    '--z-range -500 500: the bead stack's z from -500 to 500 nm: ... channel 1 out of range'."""
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration
    from plexloc.calibrate.synthetic import simulate_bead_stacks
    from plexloc.errors import InputError

    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    volume = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    volume /= volume[10].sum()
    chans = [ChannelCalibration(volume=volume, x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0, transform_nm=EYE)]
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(PX, PX), dz_nm=50.0), tmp_path / "PSF1.h5")
    d = _two_channels(EYE, emitters={"z_range_nm": [-200.0, 200.0]})
    for c in range(2):
        d["channels"][c]["psf"] = {"kind": "spline", "calibration": str(tmp_path / "PSF1.h5"), "channel": c}
    cfg = SimulationConfig.model_validate(d)  # the file is opened by the simulator, not by the validation
    z = np.array([-200.0, -100.0, 0.0, 100.0, 200.0])
    with pytest.raises(InputError) as err:
        simulate_bead_stacks(cfg, n_beads=1, z_nm=z, photons=2e4, bg=20.0)
    assert "channel 1 out of range" in str(err.value)
    assert "the file has 1 channel(s): 0..0 (a configuration's psf.channel names one of them" in str(err.value)
    assert "plexloc calibrate BEADS_ch0.tif BEADS_ch1.tif" in str(err.value)
    assert "bead stack's z" not in str(err.value)
    # a z beyond the calibration still names the z
    d["channels"][1]["psf"]["channel"] = 0
    cfg = SimulationConfig.model_validate(d)
    with pytest.raises(InputError, match=r"the bead stack's z from -900 to 900 nm: .*calibrated z range"):
        simulate_bead_stacks(cfg, n_beads=1, z_nm=np.linspace(-900.0, 900.0, 7), photons=2e4, bg=20.0)


# --- plexloc color ------------------------------------------------------------------------------------------------
def _photon_table(fractions0, n: int, seed: int, photons=3000.0, bg=50.0):
    """Rows whose channel-0 fraction is drawn from ``fractions0`` (one per row, or a constant), shot noise x 2."""
    from plexloc.table import LocTable

    rng = np.random.default_rng(seed)
    f = np.broadcast_to(np.asarray(fractions0, float), (n,))
    lam = photons * np.column_stack([f, 1.0 - f])
    s = np.sqrt(2 * (lam + 4 * np.pi * bg))
    obs = lam + rng.normal(size=lam.shape) * s
    return LocTable({"frame": np.zeros(n, int), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
                     "photons": obs.sum(axis=1), "photons_ch0": obs[:, 0], "photons_ch1": obs[:, 1],
                     "sigma_photons_ch0": s[:, 0], "sigma_photons_ch1": s[:, 1]})


def test_color_says_when_the_estimated_colours_coincide_and_most_rows_are_rejected(tmp_path, capsys):
    """An undertrained dual-colour network's table (every row near a 50/50 split) gave estimated ratios 0.5001 /
    0.4999 for both colours and 100 % of the rows rejected, exit 0 without a word."""
    import warnings

    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs

    write_locs(_photon_table(0.5, 300, seed=0), tmp_path / "one.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # the CLI prints warnings; pyproject's "error" would raise them here
        assert main(["color", str(tmp_path / "one.csv"), "--out", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: .*one\.csv: the estimated ratios of colours 0 and 1 are 0\.0\d\d apart at most", err)
    assert "not 2 colours" in err and "color_accuracy" in err
    assert re.search(r"warning: .*one\.csv: (2\d\d|300) of 300 rows \(\d+\.\d %\) get no colour \(color -1\)", err)
    # two real dyes: silent
    two = np.where(np.random.default_rng(1).random(300) < 0.5, 0.8, 0.3)
    write_locs(_photon_table(two, 300, seed=1), tmp_path / "two.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["color", str(tmp_path / "two.csv"), "--out", str(tmp_path / "c2.csv")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_color_ratios_of_the_wrong_length_name_the_option_and_the_table(tmp_path, capsys):
    """--ratios 0.8 0.2 --ratios 0.3 0.6 0.1 ended in numpy's traceback ('inhomogeneous shape', exit 1)."""
    from plexloc.cli.main import main
    from plexloc.errors import InputError
    from plexloc.io.formats import write_locs
    from plexloc.post.color import assign_colors

    t = _photon_table(0.5, 20, seed=0)
    write_locs(t, tmp_path / "t.csv")
    rc = main(["color", str(tmp_path / "t.csv"), "--out", str(tmp_path / "c.csv"),
               "--ratios", "0.8", "0.2", "--ratios", "0.3", "0.6", "0.1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "t.csv: --ratios 0.8 0.2; 0.3 0.6 0.1: give --ratios once per colour" in err
    assert "(2: photons_ch0, photons_ch1)" in err and "Traceback" not in err
    with pytest.raises(InputError, match="rows have different lengths"):
        assign_colors(t, [[0.8, 0.2], [0.3, 0.6, 0.1]])


# --- plexloc debias -----------------------------------------------------------------------------------------------
def test_debias_says_why_rows_were_left_as_they_were(tmp_path, capsys):
    """A 176-row network table in 13 slabs of 50 nm: 'de-biased 0 of 176 localizations in 13 z slabs', exit 0, and
    the table written unchanged, without saying that every slab was under --min-count 200."""
    from plexloc.cli.main import main
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(0)
    n = 300
    z = np.where(np.arange(n) < 250, 10.0, 200.0)  # 250 rows in one slab, 50 in another
    t = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 5000, n), "y_nm": rng.uniform(0, 5000, n),
                  "z_nm": z, "photons": np.full(n, 1000.0)})
    write_locs(t, tmp_path / "t.csv")
    assert main(["debias", str(tmp_path / "t.csv"), "--out", str(tmp_path / "d.csv"), "--px-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "de-biased 250 of 300 localizations in 2 z slabs of 50 nm" in out
    assert "left as they were: 50 localizations in 1 slab(s) of fewer than 200" in out and "--min-count N" in out
    assert "the table is unchanged" not in out
    assert main(["debias", str(tmp_path / "t.csv"), "--out", str(tmp_path / "d.csv"), "--px-size", "100",
                 "--min-count", "400"]) == 0
    got = capsys.readouterr()
    out = got.out
    assert "left as they were: 300 localizations in 2 slab(s) of fewer than 400" in out
    assert "the table is unchanged" in out
    # session 46: it went on to say "de-biasing only flattened noise; keep the input table" of the table it left as it was
    assert "flattened noise" not in got.err


# --- plexloc render --color-by color --------------------------------------------------------------------------------
def test_render_by_colour_counts_the_rejected_rows_it_draws_grey():
    """The printed line named the colours only; the rows without a colour (-1), drawn grey, went unmentioned (as the
    rows without a z of --color-by z are: 'N without a finite z in grey')."""
    from plexloc.render.image import render_color
    from plexloc.table import LocTable

    n = 40
    t = LocTable({"frame": np.zeros(n, int), "x_nm": np.linspace(0, 2000, n), "y_nm": np.linspace(0, 2000, n),
                  "z_nm": np.zeros(n), "photons": np.ones(n), "color": np.array([0, 1, -1, 1] * 10)})
    r = render_color(t, color_by="color", px_size_nm=20.0)
    assert r.legend.startswith("colour 0: RGB [1.0, 0.2, 1.0], colour 1: RGB [0.2, 1.0, 0.2]")  # magenta, green
    assert r.legend.endswith("; 10 rejected (color -1) in grey")
    assert "rejected" not in render_color(t.with_columns(color=np.array([0, 1] * 20)), color_by="color",
                                          px_size_nm=20.0).legend
