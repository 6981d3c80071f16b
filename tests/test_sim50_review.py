"""Review of session 50's simulator change (helper "sim"): the note on stderr that names the emitter / background
fields a configuration leaves to plexloc's defaults named fields the movie does not use (a channel's own background,
a dye's own on-time, an independent channel's own photon range) and went silent whenever ``--frame-size``,
``--density``, ``--drift-nm`` or ``--blinks-per-molecule`` was given; the summary line's "1 localizations of 1
emitters"."""

from __future__ import annotations

import re

import yaml

from plexloc.cli.main import main

EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
         "read_sigma": 74.4}
CHANNEL = {"psf": {"kind": "gaussian", "sigma_nm": 130.0}, "camera": EMCCD}
EMITTERS = {"density_per_um2": 0.5, "photons_range": [1000.0, 2000.0], "on_time_frames": 2.0}


def _simulate(tmp_path, data, *options, capsys, name="c"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["simulate", str(path), "--frames", "2", "--out", str(tmp_path / name), "--device", "cpu",
                 *options]) == 0
    return capsys.readouterr()


def _noted(err: str) -> str:
    """The defaults note's list of fields ('' without a note)."""
    m = re.search(r"does not give (.*): plexloc's default", err)
    return "" if m is None else m.group(1)


def _two_channels(**fields):
    return {"px_size_nm": 100.0, "frame_size": [16, 16], "channels": [dict(CHANNEL), dict(CHANNEL)], **fields}


def test_fields_the_movie_does_not_use_are_not_named(tmp_path, capsys):
    """Every channel with its own background: the top-level background.range is not used, and was named; a dye's own
    on-time (ratiometric photon_model.on_time_frames) replaces emitters.on_time_frames; an independent channel's own
    photons_range (photon_model.channel_photons_range) replaces emitters.photons_range."""
    data = _two_channels(emitters=EMITTERS)
    for c, level in enumerate((20.0, 135.0)):
        data["channels"][c] = {**CHANNEL, "background": {"range": [level, level]}}
    assert _noted(_simulate(tmp_path, data, capsys=capsys, name="own_bg").err) == ""

    data = _two_channels(emitters={k: v for k, v in EMITTERS.items() if k != "on_time_frames"},
                         background={"range": [20.0, 40.0]},
                         photon_model={"kind": "ratiometric", "ratios": [[0.2, 0.8], [0.02, 0.98]],
                                       "on_time_frames": [3.0, 1.0]})
    assert _noted(_simulate(tmp_path, data, capsys=capsys, name="dyes").err) == ""

    data = _two_channels(emitters={k: v for k, v in EMITTERS.items() if k != "photons_range"},
                         background={"range": [20.0, 40.0]},
                         photon_model={"kind": "independent", "channel_photons_range": [[100.0, 200.0], [1e3, 3e3]]})
    assert _noted(_simulate(tmp_path, data, capsys=capsys, name="independent").err) == ""


def test_a_channel_left_to_the_default_background_is_still_named(tmp_path, capsys):
    """One channel with its own background, the other on the top level's, which is left out: that default is used and
    named; a channel's own background without a range gets the default range, named with the channel."""
    data = _two_channels(emitters=EMITTERS)
    data["channels"][1] = {**CHANNEL, "background": {"variation": 0.1}}
    noted = _noted(_simulate(tmp_path, data, capsys=capsys).err)
    assert "background.range [20, 200]" in noted and "channels.1.background.range [20, 200]" in noted
    assert "emitters" not in noted


def test_the_note_survives_the_options_that_change_the_configuration(tmp_path, capsys):
    """--frame-size (make demo gives it), --density, --drift-nm and --blinks-per-molecule rebuilt the configuration
    from its dump, in which every field counts as given: the note went silent though the file gave no emitters or
    background. --density gives the density: it is not named then."""
    data = {"px_size_nm": 100.0, "frame_size": [32, 32], **CHANNEL}
    for options in ((), ("--frame-size", "16", "16"), ("--drift-nm", "5", "5", "0"), ("--blinks-per-molecule", "2")):
        noted = _noted(_simulate(tmp_path, data, *options, capsys=capsys).err)
        assert "emitters.density_per_um2 1" in noted and "background.range [20, 200]" in noted, options
        assert "emitters.photons_range [1000, 10000]" in noted, options
    noted = _noted(_simulate(tmp_path, data, "--frame-size", "16", "16", "--density", "0.5", capsys=capsys).err)
    assert "density" not in noted and "emitters.photons_range [1000, 10000]" in noted


def test_one_localization_of_one_emitter_is_said_in_the_singular(tmp_path, capsys):
    """'1 localizations of 1 emitters': a single row and emitter in the singular, other counts as before."""
    data = {"px_size_nm": 100.0, "frame_size": [16, 16], **CHANNEL, "background": {"range": [20.0, 20.0]},
            "emitters": {**EMITTERS, "blinking": False, "density_per_um2": 0.0}}
    out = _simulate(tmp_path, data, capsys=capsys).out
    assert "(0 localizations of 0 emitters)" in out
    # one emitter in one frame: without blinking, each emitter is on for one whole frame; the seed finds one
    data["emitters"]["density_per_um2"] = 0.3
    for seed in range(40):
        out = _simulate(tmp_path, data, "--frames", "1", "--seed", str(seed), "--margin-px", "0", capsys=capsys).out
        if re.search(r"\(1 localizations? of", out):
            break
    assert "(1 localization of 1 emitter)" in out, out


def test_the_reference_channels_background_alone_still_makes_a_truth_table():
    """``truth_table(emitters, bg)`` with only the reference channel's background (C = 1) of a two-channel simulation
    gave the table its ``bg`` before session 50; the pixel-under-the-emitter lookup indexed channel 1 of it
    (IndexError). Now the table has the reference's background under each emitter, and no bg_chN."""
    import numpy as np
    import torch

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.simulation import Simulator

    data = _two_channels(emitters=EMITTERS, background={"range": [40.0, 40.0], "variation": 0.5,
                                                        "variation_scale_nm": 800.0})
    data["channels"][1] = {**CHANNEL, "transform": [[1.0, 0.0, 250.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}
    sim = Simulator(validate_config(data, SimulationConfig))
    g = torch.Generator().manual_seed(4)
    em = sim.sample_emitters(n_sequences=1, n_frames=6, generator=g)
    bg = sim.sample_background(n_sequences=1, n_frames=6, generator=g)
    full, ref = sim.truth_table(em, bg), sim.truth_table(em, bg[:1])
    assert len(ref) > 3 and "bg_ch1" in full.columns and "bg_ch1" not in ref.columns
    np.testing.assert_array_equal(ref["bg"], full["bg"])
    assert np.ptp(ref["bg"]) > 5  # the pixel's own, not a frame's mean of 40


def test_grad_clip_inf_means_no_clipping_and_nan_is_refused(tmp_path):
    """``training.grad_clip: .inf`` (torch's clip_grad_norm_ then leaves the gradient as it is) was accepted before
    session 50 and saved as .inf in a run's config.yaml; the configuration-wide refusal of infinity refused it (a run
    with it could not be resumed). It is accepted again; NaN stays refused, naming the field."""
    import math

    import pytest

    from plexloc.config import load_config
    from plexloc.errors import InputError

    data = {"px_size_nm": 100.0, "frame_size": [16, 16], **CHANNEL, "training": {"grad_clip": float("inf")}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    assert ".inf" in path.read_text()
    assert math.isinf(load_config(path).training.grad_clip)
    data["training"]["grad_clip"] = float("nan")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="grad_clip"):
        load_config(path)


def test_a_3d_psf_without_a_z_range_is_named(tmp_path, capsys):
    """An astigmatic PSF and no emitters.z_range_nm: every emitter at z 0 (in focus), a '3D' movie without z, without
    a word; a 2D (gaussian) PSF's z range is not named."""
    astig = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}
    data = {"px_size_nm": 100.0, "frame_size": [16, 16], "psf": astig, "camera": EMCCD, "emitters": EMITTERS,
            "background": {"range": [20.0, 40.0]}}
    assert _noted(_simulate(tmp_path, data, capsys=capsys).err) == "emitters.z_range_nm [0, 0]"
    data["psf"] = CHANNEL["psf"]
    assert _noted(_simulate(tmp_path, data, capsys=capsys).err) == ""
    data["psf"], data["emitters"] = astig, {**EMITTERS, "z_range_nm": [-500.0, 500.0]}
    assert _noted(_simulate(tmp_path, data, capsys=capsys).err) == ""


def test_truth_bg_is_read_where_the_stage_drift_put_the_emitter(tmp_path):
    """With emitters.drift the movie renders each emitter displaced by its frame's drift, over the background field,
    which stays with the camera; the truth's bg was read at the sample's own position: at variation 0.5 and a linear
    drift of 500 nm (3d_astigmatic, 100 frames) rms 5.9 % and up to 25 % off the background under the spot. Now it
    is the pixel where the drift put the emitter, in the library and in truth.csv alike."""
    import numpy as np
    import torch

    from plexloc.config import SimulationConfig, validate_config
    from plexloc.io.tables import read_table
    from plexloc.simulation import Simulator
    from plexloc.simulation.emitters import movie_drift_nm

    data = {"px_size_nm": 100.0, "frame_size": [24, 24], **CHANNEL, "emitters": {**EMITTERS, "density_per_um2": 1.0,
            "drift": {"linear_nm": [600.0, -400.0, 0.0]}},
            "background": {"range": [50.0, 50.0], "variation": 0.5, "variation_scale_nm": 800.0}}
    sim = Simulator(validate_config(data, SimulationConfig))
    n = 12
    mov = sim.simulate_movie(n, generator=torch.Generator().manual_seed(2))
    t = mov.truth
    f = np.asarray(t["frame"])
    d = movie_drift_nm(sim.config.emitters.drift, n)
    j = np.clip(np.floor((np.asarray(t["x_nm"]) + d[f, 0]) / 100).astype(int), 0, 23)
    i = np.clip(np.floor((np.asarray(t["y_nm"]) + d[f, 1]) / 100).astype(int), 0, 23)
    assert len(t) > 50
    np.testing.assert_allclose(t["bg"], mov.bg[0].numpy()[f, i, j], rtol=1e-6)
    path = tmp_path / "drift.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["simulate", str(path), "--frames", str(n), "--out", str(tmp_path / "o"), "--seed", "2", "--chunk", "5",
                 "--device", "cpu"]) == 0
    np.testing.assert_allclose(read_table(tmp_path / "o" / "truth.csv")["bg"], t["bg"], rtol=1e-6)
