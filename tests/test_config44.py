"""Configuration loading for a dual-view lab: a channel transform named by the file a plexloc command wrote it to
(T.json of ``register``, PSF.json / PSF.h5 of ``calibrate``), a spline ``psf.channel`` beyond its calibration file
named by the YAML's field, and the example configurations (a split-view one among them)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import tifffile
import yaml

from plexloc.cli.main import main
from plexloc.config import SimulationConfig, load_config, save_config
from plexloc.config.examples import example_names, example_path
from plexloc.errors import InputError

EYE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
SHIFT = [[1.0, 0.0, 60.0], [0.0, 1.0, -35.0], [0.0, 0.0, 1.0]]
CAMERA = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0,
          "baseline": 100.0, "read_sigma": 74.4}
PSF = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}


def _config(n: int = 2, transform=None, channel: int = 1) -> dict:
    chans = [{"psf": PSF, "camera": CAMERA} for _ in range(n)]
    if transform is not None:
        chans[channel]["transform"] = transform
    return {"px_size_nm": 100.0, "frame_size": [32, 32], "photon_model": {"kind": "independent"},
            "emitters": {"z_range_nm": [-300.0, 300.0], "density_per_um2": 1.0}, "channels": chans}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _volume():
    zz, yy, xx = np.meshgrid(np.arange(21) - 10.0, np.arange(15) - 7.0, np.arange(15) - 7.0, indexing="ij")
    v = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 0.02 * zz**2) ** 2))
    return v / v[10].sum()


def _calibration(path, transforms):
    from plexloc.calibrate.fileformat import ChannelCalibration, PSFCalibration, save_calibration

    chans = [ChannelCalibration(volume=_volume(), x0_voxel=7.0, y0_voxel=7.0, z0_voxel=10.0,
                                transform_nm=np.array(t)) for t in transforms]
    save_calibration(PSFCalibration(channels=chans, px_size_nm=(100.0, 100.0), dz_nm=50.0), path)
    return path


def _registered(tmp_path, capsys) -> tuple:
    """T.json of ``plexloc register`` on two tables of the same molecules, channel 1 = T r_0 (+1 nm noise)."""
    from plexloc.io.formats import write_locs
    from plexloc.table import LocTable

    rng = np.random.default_rng(4)
    true_t = np.array([[1.001, 0.002, 47.0], [-0.002, 0.999, -23.0], [0.0, 0.0, 1.0]])
    n = 600
    xy = rng.uniform(500.0, 9500.0, (n, 2))
    frame = np.repeat(np.arange(n // 20), 20)
    moved = xy @ true_t[:2, :2].T + true_t[:2, 2] + rng.normal(0.0, 1.0, (n, 2))
    for name, pts in (("ch0.csv", xy), ("ch1.csv", moved)):
        write_locs(LocTable({"frame": frame, "x_nm": pts[:, 0], "y_nm": pts[:, 1], "z_nm": np.zeros(n),
                             "photons": np.full(n, 2000.0)}), tmp_path / name)
    out = tmp_path / "reg" / "T.json"
    assert main(["register", str(tmp_path / "ch0.csv"), str(tmp_path / "ch1.csv"), "--out", str(out)]) == 0
    capsys.readouterr()
    return out, true_t


# --- 1. a transform named by its file ------------------------------------------------------------------------------
def test_a_register_file_gives_the_channel_its_transform_and_a_saved_config_holds_the_matrix(tmp_path, capsys):
    t_json, true_t = _registered(tmp_path, capsys)
    written = json.loads(t_json.read_text())
    assert written["direction"].startswith("reference -> channel")  # what register writes, read as it is
    # named relative to the YAML (a sub-folder of the YAML's folder, run from elsewhere)
    cfg = load_config(_write(tmp_path / "reg" / "cfg.yaml", _config(transform={"file": "T.json"})))
    assert cfg.channels[1].transform == written["transform"]
    np.testing.assert_allclose(cfg.channels[1].transform, true_t, atol=0.5)  # register measured the true one
    assert cfg.channels[0].transform == EYE
    inline = load_config(_write(tmp_path / "inline.yaml", _config(transform=written["transform"])))
    assert cfg.model_dump() == inline.model_dump()  # simulate, train and fit read the same configuration
    # the YAML names the file as other file fields do (plexloc submit carries them with a job)
    from plexloc.config.files import referenced_files

    raw = yaml.safe_load((tmp_path / "reg" / "cfg.yaml").read_text())
    assert referenced_files(raw) == [("channels.1.transform.file", "T.json")]
    # saved again (a run folder's config.yaml): the matrix itself, no reference; it loads without T.json
    save_config(cfg, tmp_path / "run" / "config.yaml")
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert "T.json" not in text and "file" not in text
    t_json.unlink()
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again.channels[1].transform == written["transform"]
    # the library API reads the same file
    from plexloc.config import read_transform

    _registered(tmp_path, capsys)
    found = read_transform(t_json)
    assert found.matrix == written["transform"] and found.channel is None and found.kind == "register"


def test_register_file_refusals_name_the_yaml_the_field_and_the_file(tmp_path, capsys):
    t_json, _ = _registered(tmp_path, capsys)
    data = json.loads(t_json.read_text())
    # a file recording the reverse direction is refused, not used (nor inverted) silently
    rev = tmp_path / "reg" / "T_rev.json"
    rev.write_text(json.dumps({**data, "direction": "channel -> reference"}))
    with pytest.raises(InputError) as err:
        load_config(_write(tmp_path / "reg" / "a.yaml", _config(transform={"file": "T_rev.json"})))
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "reg" / "a.yaml") + ": field 'channels.1.transform'")
    assert "T_rev.json" in msg and "'channel -> reference'" in msg and "reference -> channel" in msg
    # register records no channel number: a 'channel' with it is refused
    with pytest.raises(InputError, match=r"field 'channels.1.transform' .*T.json.*leave out 'channel' \(1\)"):
        load_config(_write(tmp_path / "reg" / "b.yaml", _config(transform={"file": "T.json", "channel": 1})))
    # the reference channel's transform is the identity: a registered channel's file there is the wrong channel
    with pytest.raises(InputError, match=r"field 'channels.0.transform': channel 0 is the reference.*belongs to "
                                         r"another channel"):
        load_config(_write(tmp_path / "reg" / "c.yaml", _config(transform={"file": "T.json"}, channel=0)))
    # a missing file: YAML, field and the path looked for
    with pytest.raises(InputError) as err:
        load_config(_write(tmp_path / "d.yaml", _config(transform={"file": "nowhere/T.json"})))
    assert str(err.value) == (f"{tmp_path / 'd.yaml'}: field 'channels.1.transform.file': the file 'nowhere/T.json' "
                              f"it names was not found (looked for {tmp_path / 'nowhere' / 'T.json'})")
    # a matrix written transposed (the translation in the bottom row): the model's refusal, naming the file
    transposed = np.array(data["transform"]).T.tolist()
    (tmp_path / "reg" / "T_t.json").write_text(json.dumps({**data, "transform": transposed}))
    with pytest.raises(InputError, match=r"a.yaml: field 'channels.1.transform': .*T_t.json: transform .* looks "
                                         r"transposed"):
        load_config(_write(tmp_path / "reg" / "a.yaml", _config(transform={"file": "T_t.json"})))
    # a misspelt key, a file of no transform
    with pytest.raises(InputError, match=r"field 'channels.1.transform'.*unknown key\(s\) \['chanel'\]"):
        load_config(_write(tmp_path / "reg" / "e.yaml", _config(transform={"file": "T.json", "chanel": 1})))
    (tmp_path / "reg" / "other.json").write_text(json.dumps({"rms": 3.0}))
    with pytest.raises(InputError, match=r"other.json: holds no channel transform.*found the keys \['rms'\]"):
        load_config(_write(tmp_path / "reg" / "f.yaml", _config(transform={"file": "other.json"})))
    # register's own warning about its transform is passed on
    (tmp_path / "reg" / "weak.json").write_text(json.dumps({**data, "warning": "only 5 pairs matched"}))
    from plexloc.config.transforms import TransformFileWarning

    with pytest.warns(TransformFileWarning, match=r"weak.json: plexloc register wrote .*only 5 pairs matched"):
        load_config(_write(tmp_path / "reg" / "g.yaml", _config(transform={"file": "weak.json"})))


def test_a_calibration_file_gives_each_channel_its_transform_and_refuses_a_channel_it_lacks(tmp_path):
    other = [[1.0, 0.0, -20.0], [0.0, 1.0, 15.0], [0.0, 0.0, 1.0]]
    _calibration(tmp_path / "cal" / "PSF.h5", [EYE, SHIFT])
    (tmp_path / "cal" / "PSF.json").write_text(json.dumps({  # calibrate's report of two channels (its keys)
        "calibration": "PSF.h5", "n_beads_used": [12, 12], "transforms": [EYE, SHIFT],
        "transform_coordinates": "camera chip, nm"}))
    for name in ("PSF.h5", "PSF.json"):
        for ref in ({"file": f"cal/{name}"}, {"file": f"cal/{name}", "channel": 1}):  # channel: this one's own index
            cfg = load_config(_write(tmp_path / "c.yaml", _config(transform=ref)))
            assert cfg.channels[1].transform == SHIFT
        # channel 3 of a 4-channel configuration from a file of 2 channels: both counts named
        data = _config(n=4, transform={"file": f"cal/{name}"}, channel=3)
        with pytest.raises(InputError) as err:
            load_config(_write(tmp_path / "four.yaml", data))
        msg = str(err.value)
        assert msg == (f"{tmp_path / 'four.yaml'}: field 'channels.3.transform' (channel 3 of a 4-channel "
                       f"configuration) = {{file: cal/{name}}}: {tmp_path / 'cal' / name}: holds the transforms of 2 "
                       "channel(s) (0..1), not of channel 3 (calibrate every channel's bead stacks together for one "
                       "file of them all: plexloc calibrate BEADS_ch0.tif BEADS_ch1.tif ...)")
        data["channels"][3]["transform"] = {"file": f"cal/{name}", "channel": 2}
        with pytest.raises(InputError, match=r"channels.3.transform' \(channel 3 of a 4-channel configuration\) = "
                                             r"\{file: cal/PSF.*, channel: 2\}: .*holds the transforms of 2 "
                                             r"channel\(s\) \(0..1\), not of channel 2"):
            load_config(_write(tmp_path / "four.yaml", data))
    # calibrate's report of one channel holds no transform: said so, with how to get one
    (tmp_path / "cal" / "PSF1.json").write_text(json.dumps({"calibration": "PSF1.h5", "n_beads_used": [12]}))
    with pytest.raises(InputError, match=r"PSF1.json: holds no channel transform: .*this calibration has 1 channel"):
        load_config(_write(tmp_path / "one.yaml", _config(transform={"file": "cal/PSF1.json"})))
    # files that hold no plexloc transform: another HDF5, a SMAP calibration
    import h5py

    with h5py.File(tmp_path / "cal" / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(InputError, match=r"field 'channels.1.transform' .*other.h5: attribute 'format' is "
                                         r"'something-else', not 'plexloc-psf-calibration'"):
        load_config(_write(tmp_path / "o.yaml", _config(transform={"file": "cal/other.h5"})))
    (tmp_path / "cal" / "x_3dcal.mat").write_bytes(b"MATLAB")
    with pytest.raises(InputError, match=r"x_3dcal.mat: a transform is read from plexloc register's T.json .*not a "
                                         r"\.mat file"):
        load_config(_write(tmp_path / "m.yaml", _config(transform={"file": "cal/x_3dcal.mat"})))
    # the library API: a file of several channels needs the channel
    from plexloc.config import read_transform

    with pytest.raises(InputError, match=r"PSF.h5: holds the transforms of 2 channels .*say which.*channel: 1"):
        read_transform(tmp_path / "cal" / "PSF.h5")
    assert read_transform(tmp_path / "cal" / "PSF.h5", 1).matrix == SHIFT
    # a transform of another channel than the PSF's is used as written (a subset of a calibration's channels)
    _calibration(tmp_path / "cal" / "PSF3.h5", [EYE, SHIFT, other])
    cfg = load_config(_write(tmp_path / "sub.yaml", _config(transform={"file": "cal/PSF3.h5", "channel": 2})))
    assert cfg.channels[1].transform == other
    # a matrix given in code as a file reference: the model says how to read it
    with pytest.raises(Exception, match=r"read by plexloc.config.load_config.*read_transform"):
        SimulationConfig.model_validate(_config(transform={"file": str(tmp_path / "cal" / "PSF.h5")}))
    # plain matrices as before
    assert load_config(_write(tmp_path / "plain.yaml", _config(transform=other))).channels[1].transform == other


def test_transforms_from_calibrate_split_view_simulate_as_the_matrix_does(tmp_path, capsys):
    """The split-view example's bead stack, calibrated by ``plexloc calibrate --split-view``: its PSF.json and PSF.h5
    give channel 1 the measured transform (the example's +40, +25 nm shift within 3 nm), which a movie simulates
    exactly as the same matrix written in the YAML does, without the simulator's transform-mismatch warning."""
    import torch

    from plexloc.simulation import Simulator

    ex = example_path("dual_color_splitview")
    assert main(["simulate", str(ex), "--beads", "9", "--z-step", "50", "--z-range", "-500", "500",
                 "--out", str(tmp_path / "beads"), "--seed", "3"]) == 0
    assert main(["calibrate", str(tmp_path / "beads" / "beads.tif"), "--z-step", "50", "--pixel-size", "100",
                 "--config", str(ex), "--split-view", str(ex), "--out", str(tmp_path / "beads" / "PSF.h5"),
                 "--no-validate"]) == 0
    capsys.readouterr()
    measured = json.loads((tmp_path / "beads" / "PSF.json").read_text())["transforms"][1]
    # 9 beads measure the shift to 1.1-1.2 nm rms, at most 2.5 nm off (12 seeds; 2.05 nm with the beads piled on the
    # bounds before session 45, 2.3 nm at this seed since: tests/test_simulate_beads45.py)
    np.testing.assert_allclose(np.array(measured)[:2, 2], [40.0, 25.0], atol=3.0)
    base = yaml.safe_load(ex.read_text())
    configs = {}
    for name, ref in (("json", {"file": "beads/PSF.json", "channel": 1}), ("h5", {"file": "beads/PSF.h5"}),
                      ("inline", measured)):
        data = json.loads(json.dumps(base))
        data["channels"][1]["transform"] = ref
        data["channels"][1]["psf"] = {"kind": "spline", "calibration": "beads/PSF.h5", "channel": 1}
        data["channels"][0]["psf"] = {"kind": "spline", "calibration": "beads/PSF.h5", "channel": 0}
        data["emitters"]["z_range_nm"] = [-300.0, 300.0]
        configs[name] = load_config(_write(tmp_path / f"{name}.yaml", data))
        np.testing.assert_allclose(configs[name].channels[1].transform, measured, rtol=0, atol=1e-9)
    frames = {}
    for name, cfg in configs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no SplineChannelWarning: the transform is the calibration's own
            frames[name] = Simulator(cfg).simulate_movie(2, generator=torch.Generator().manual_seed(0)).frames
    # the same matrix reached the simulator: the same movies
    assert frames["inline"].shape == (2, 2, 64, 64)
    for name in ("json", "h5"):
        torch.testing.assert_close(frames[name], frames["inline"], rtol=0, atol=0)


# --- 2. a spline calibration's channel beyond its file -------------------------------------------------------------
def test_a_spline_channel_beyond_its_calibration_names_the_yaml_and_the_field(tmp_path, capsys):
    _calibration(tmp_path / "PSF1.h5", [EYE])  # one channel's beads
    data = _config()
    for c in range(2):
        data["channels"][c]["psf"] = {"kind": "spline", "calibration": "PSF1.h5", "channel": c}
    cfg = _write(tmp_path / "two.yaml", data)
    assert main(["simulate", str(cfg), "--frames", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: field 'channels.1.psf.channel' = 1: channel 1 out of range; the calibration " in err
    assert f"{tmp_path / 'PSF1.h5'} has 1 channel(s): 0..0" in err
    assert "plexloc calibrate BEADS_ch0.tif BEADS_ch1.tif" in err
    assert not (tmp_path / "x").exists()
    # a single-channel configuration's top-level psf
    single = {"px_size_nm": 100.0, "frame_size": [32, 32], "camera": CAMERA,
              "psf": {"kind": "spline", "calibration": "PSF1.h5", "channel": 2}}
    with pytest.raises(InputError, match=r"one.yaml: field 'psf.channel' = 2: channel 2 out of range"):
        load_config(_write(tmp_path / "one.yaml", single))
    # a calibration that is missing, or not one (a server's placeholder), is left to the PSF loader
    data["channels"][1]["psf"]["calibration"] = "missing.h5"
    load_config(_write(tmp_path / "missing.yaml", data))
    (tmp_path / "empty.h5").write_bytes(b"")
    data["channels"][1]["psf"]["calibration"] = "empty.h5"
    load_config(_write(tmp_path / "empty.yaml", data))


# --- 3. the examples -----------------------------------------------------------------------------------------------
def test_every_example_loads_and_a_split_view_one_simulates_its_joined_frame(tmp_path, capsys):
    names = example_names()
    assert "dual_color_splitview" in names
    split = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cfg = load_config(example_path(name))
        if cfg.split_view is not None:
            split.append(name)
            boxes = cfg.split_view.boxes
            assert all(tuple(b[2:]) == (cfg.frame_size[1], cfg.frame_size[0]) for b in boxes)
            assert len(boxes) == cfg.n_channels
    assert split == ["dual_color_splitview"]
    # plexloc examples lists it and copies it; the copy simulates one joined movie, the boxes side by side
    assert main(["examples"]) == 0
    assert re.search(r"^dual_color_splitview\s+Dual colour through an image splitter", capsys.readouterr().out, re.M)
    assert main(["examples", "dual_color_splitview", "--copy", str(tmp_path / "mine")]) == 0
    copied = tmp_path / "mine" / "dual_color_splitview.yaml"
    assert copied.read_text() == example_path("dual_color_splitview").read_text()
    assert main(["simulate", str(copied), "--frames", "3", "--out", str(tmp_path / "sim")]) == 0
    movie = tifffile.imread(tmp_path / "sim" / "movie.tif")
    cfg = load_config(copied)
    width = max(b[0] + b[2] for b in cfg.split_view.boxes)
    height = max(b[1] + b[3] for b in cfg.split_view.boxes)
    assert movie.shape == (3, height, width) == (3, 64, 128)


def test_a_ratiometric_example_trains_on_independent_photons_as_its_comment_says(tmp_path):
    """dual_color.yaml's header said a multi-colour network trains with photon_model 'independent' (as if the file had
    to be changed for training); plexloc train takes it as it is and draws independent photons per channel."""
    from plexloc.config import TrainConfig
    from plexloc.train.trainer import training_simulation

    path = example_path("dual_color")
    header = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    assert "train on it as it is" in header and "never the ratios" in header
    cfg = load_config(path, TrainConfig)
    assert cfg.photon_model.kind == "ratiometric"
    sim = training_simulation(cfg)
    assert sim.photon_model.kind == "independent"
    lo, hi = cfg.emitters.photons_range
    f = cfg.training.photon_range_widen
    np.testing.assert_allclose(sim.photon_model.channel_photons_range,
                               [(lo * 0.3 / f, hi * 0.8 * f), (lo * 0.2 / f, hi * 0.7 * f)])
