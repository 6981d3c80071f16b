"""Session 50's walk of the simulator as a method developer and a microscopist: the physics against closed forms
(camera moments per pixel, density, photons and on-times, pixel centres, photon models), and the fixes: non-finite
configuration values refused naming the field, ``--chunk`` no longer changing the movie, ``--density`` kept in
``DIR/config.yaml`` with the options that make the movie again, and the emitter / background defaults named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import torch
import yaml

from plexloc.cli.main import main
from plexloc.config import SimulationConfig, load_config, validate_config
from plexloc.config.models import EmitterConfig
from plexloc.errors import InputError
from plexloc.io.tables import read_table
from plexloc.simulation import Emitters, Simulator, sample_emitters

EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
         "read_sigma": 74.4}
SCMOS = {"kind": "scmos", "qe": 0.8, "spurious_charge": 0.0, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": 1.5}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _config(**fields) -> SimulationConfig:
    data = {"px_size_nm": 100.0, "frame_size": [32, 40], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    if "channels" in fields:
        del data["psf"], data["camera"]
    data.update(fields)
    return validate_config(data, SimulationConfig)


# ------------------------------------------------------------------------------------------ camera moments
@pytest.mark.parametrize("camera", [EMCCD, SCMOS], ids=["emccd", "scmos"])
def test_camera_output_mean_and_variance_per_pixel_follow_the_closed_forms(camera):
    """A movie of a flat background of 50 photons/px and no emitters: every pixel's ADU has the mean
    ``(qe p + c) G / e + b`` and variance ``(F^2 (qe p + c) G^2 + r^2) / e^2 + 1/12`` (G = 1, F^2 = 1 for the sCMOS;
    F^2 = 2 at G = 300; 1/12 the rounding to whole ADU)."""
    p = 50.0
    sim = Simulator(_config(camera=camera, frame_size=[64, 64], emitters={"density_per_um2": 0.0},
                            background={"range": [p, p]}))
    frames = sim.simulate_movie(48, generator=_gen(1)).frames.double()  # 196,608 pixels
    gain = camera.get("em_gain", 1.0)
    f2 = 2.0 if "em_gain" in camera else 1.0
    e = camera["qe"] * p + camera["spurious_charge"]
    mean = e * gain / camera["e_per_adu"] + camera["baseline"]
    var = (f2 * e * gain**2 + camera["read_sigma"] ** 2) / camera["e_per_adu"] ** 2 + 1.0 / 12.0
    assert abs(float(frames.mean()) / mean - 1) < 0.002
    assert abs(float(frames.var()) / var - 1) < 0.03


# ------------------------------------------------------------------------------- emitters and blinking
def test_density_photons_and_on_times_follow_the_configuration():
    """The density is the active emitters per µm² in every frame (inside the field); an event's on-time is
    exponential with the configured mean (fraction above the mean e^-1); a row's mean photons are the mean flux times
    ``tau / (tau + 1)`` (the photons of partial frames included)."""
    tau, lo, hi = 2.0, 1000.0, 3000.0
    cfg = EmitterConfig(density_per_um2=1.5, photons_range=(lo, hi), on_time_frames=tau)
    fov, S, T = (3000.0, 2000.0), 400, 10
    em = sample_emitters(cfg, n_sequences=S, n_frames=T, fov_nm=fov, generator=_gen(2))
    area = fov[0] * fov[1] * 1e-6
    per_frame = torch.bincount(em.frame_ix % T, minlength=T).double() / (S * area)
    assert abs(float(per_frame.mean()) / 1.5 - 1) < 0.03
    assert float((per_frame / 1.5 - 1).abs().max()) < 0.08  # frame 0 as dense as the others (the lead-in)
    assert abs(float(em.photons.mean()) / ((lo + hi) / 2 * tau / (tau + 1)) - 1) < 0.02

    fixed = EmitterConfig(density_per_um2=1.0, photons_range=(1000.0, 1000.0), on_time_frames=tau)
    T = 3000
    em = sample_emitters(fixed, n_sequences=1, n_frames=T, fov_nm=(4000.0, 4000.0), generator=_gen(3))
    n_id = int(em.id.max()) + 1
    on = torch.zeros(n_id, dtype=torch.float64).index_add_(0, em.id, em.photons[:, 0].double() / 1000.0)
    first = torch.full((n_id,), T, dtype=torch.int64).scatter_reduce(0, em.id, em.frame_ix, "amin")
    last = torch.full((n_id,), -1, dtype=torch.int64).scatter_reduce(0, em.id, em.frame_ix, "amax")
    inner = on[(first >= 1) & (last <= T - 2) & (last >= 0)]  # events that start and end inside the movie
    assert inner.numel() > 5000
    assert abs(float(inner.mean()) / tau - 1) < 0.04
    assert abs(float((inner > tau).double().mean()) - math.exp(-1)) < 0.02


def test_without_blinking_every_emitter_is_on_for_one_whole_frame():
    cfg = EmitterConfig(density_per_um2=2.0, photons_range=(500.0, 500.0), blinking=False)
    em = sample_emitters(cfg, n_sequences=50, n_frames=4, fov_nm=(2000.0, 2000.0), generator=_gen(4))
    assert len(torch.unique(em.id)) == len(em)  # one frame each
    assert torch.equal(em.photons, torch.full_like(em.photons, 500.0))
    assert abs(len(em) / (50 * 4 * 4.0 * 2.0) - 1) < 0.05


def test_linked_and_independent_photons_per_channel_and_their_sum():
    """linked: channel c gets throughput_c of the frame's photons; independent: each channel its own uniform count
    (its own range) times the frame's on-fraction; the truth's ``photons`` is their sum."""
    eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    ch = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}, "transform": eye}
    linked = Simulator(_config(channels=[{**ch, "throughput": 0.7}, {**ch, "throughput": 0.2}],
                               emitters={"density_per_um2": 2.0, "photons_range": [1000.0, 1000.0]}))
    t = linked.simulate_movie(20, generator=_gen(5)).truth
    assert len(t) > 100
    np.testing.assert_allclose(t["photons_ch0"] / t["photons"], 0.7 / 0.9, rtol=1e-5)
    assert float(np.max(t["photons"])) == pytest.approx(900.0, rel=1e-5)  # a whole frame: 1000 x (0.7 + 0.2)

    ranges = [[100.0, 200.0], [1000.0, 3000.0]]
    cfg = {"channels": [ch, ch], "photon_model": {"kind": "independent", "channel_photons_range": ranges},
           "emitters": {"density_per_um2": 2.0, "blinking": False}}
    ind = Simulator(_config(**cfg)).simulate_movie(40, generator=_gen(6)).truth
    for c, (lo, hi) in enumerate(ranges):
        v = ind[f"photons_ch{c}"]
        assert v.min() >= lo and v.max() <= hi and abs(v.mean() / ((lo + hi) / 2) - 1) < 0.03
    np.testing.assert_allclose(ind["photons"], ind["photons_ch0"] + ind["photons_ch1"], rtol=1e-6)


def test_an_emitter_at_a_pixel_centre_is_rendered_centred_on_that_pixel():
    """conventions.md: the centre of pixel (row i, column j) is at x = (j + 0.5) px, y = (i + 0.5) px."""
    sim = Simulator(_config(frame_size=[15, 17], psf={"kind": "gaussian", "sigma_nm": 110.0}))
    i, j = 6, 9  # 6 px (5.5 sigma) or more from every edge: the spot is not cut
    em = Emitters(xyz_nm=torch.tensor([[(j + 0.5) * 100.0, (i + 0.5) * 100.0, 0.0]]), photons=torch.tensor([[1e4]]),
                  frame_ix=torch.tensor([0]), id=torch.tensor([0]), color=torch.tensor([0]))
    img = sim.expected_photons(em, torch.zeros(1, 1, 15, 17))[0, 0].double()
    assert divmod(int(img.argmax()), 17) == (i, j)
    yy, xx = torch.meshgrid(torch.arange(15.0, dtype=torch.float64), torch.arange(17.0, dtype=torch.float64),
                            indexing="ij")
    assert float((img * xx).sum() / img.sum()) == pytest.approx(j, abs=1e-3)
    assert float((img * yy).sum() / img.sum()) == pytest.approx(i, abs=1e-3)


def test_edge_cases_one_frame_no_emitters_odd_sizes():
    sim = Simulator(_config(frame_size=[5, 7], camera=EMCCD, emitters={"density_per_um2": 0.0}))
    one = sim.simulate_movie(1, generator=_gen(7))
    assert one.frames.shape == (1, 1, 5, 7) and len(one.truth) == 0
    assert list(one.truth.columns)[:5] == ["frame", "x_nm", "y_nm", "z_nm", "photons"]
    with pytest.raises(InputError, match=r"field 'frame_size': is \[height, width\].*1 px is below 4"):  # session 51
        _config(frame_size=[1, 10])


# ------------------------------------------------------------------------------------------- the fixes
@pytest.mark.parametrize("field, value", [
    ("emitters.photons_range", [1000.0, math.inf]),
    ("emitters.z_range_nm", [math.nan, 0.0]),
    ("emitters.density_per_um2", math.inf),
    ("emitters.on_time_frames", math.inf),
    ("background.range", [20.0, math.nan]),
    ("background.variation_scale_nm", math.inf),
    ("px_size_nm", math.inf),
    ("psf.sigma_nm", math.inf),
])
def test_a_non_finite_value_is_refused_naming_the_field(tmp_path, field, value):
    """NaN and infinity were accepted: a NaN z went into truth.csv silently, an infinite density crashed inside torch
    ("SymIntArrayRef expected to contain only concrete integers"), NaN photons failed in the camera without a field."""
    data = {"frame_size": [16, 16], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    node = data
    keys = field.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_config(path, SimulationConfig)
    assert str(path) in str(err.value) and field in str(err.value) and "finite" in str(err.value)


@pytest.mark.parametrize("camera", [EMCCD, SCMOS], ids=["emccd", "scmos"])
def test_chunks_that_cut_noise_blocks_make_the_same_frames(monkeypatch, camera):
    """Blocks of 5 frames (as 2048 x 2048 px frames get 4): chunks of 1, 3, 7 and 11 frames cut them anywhere, and
    two channels draw their noise block by block; every chunking gives the frames of one whole call."""
    import plexloc.simulation.simulator as simulator

    eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    ch = {"psf": {"kind": "gaussian"}, "camera": camera, "transform": eye}
    sim = Simulator(_config(frame_size=[12, 14], channels=[ch, {**ch, "throughput": 0.5}],
                            emitters={"density_per_um2": 3.0}))
    monkeypatch.setattr(simulator, "NOISE_BLOCK_PIXELS", 5 * 12 * 14 * 2)
    assert simulator.noise_block_frames((12, 14), 2) == 5
    whole = sim.simulate_movie(23, generator=_gen(8))
    for chunk in (1, 3, 7, 11):
        _, chunks = sim.iter_movie(23, generator=_gen(8), chunk_frames=chunk)
        parts = list(chunks)
        assert [s for s, _, _ in parts] == list(range(0, 23, chunk))
        assert all(raw.shape[1] == min(chunk, 23 - s) for s, raw, _ in parts)
        assert torch.equal(torch.cat([raw for _, raw, _ in parts], dim=1), whole.frames)
    monkeypatch.setattr(simulator, "NOISE_BLOCK_PIXELS", 23 * 12 * 14 * 2)  # one block: another draw
    assert not torch.equal(sim.simulate_movie(23, generator=_gen(8)).frames, whole.frames)


def _simulate(cfg, out, *extra) -> None:
    assert main(["simulate", str(cfg), "--frames", "20", "--out", str(out), "--seed", "3", "--device", "cpu",
                 *extra]) == 0


def _movie(out):
    return tifffile.imread(out / "movie.tif")


@pytest.fixture
def emccd_yaml(tmp_path):
    data = {"px_size_nm": 100.0, "frame_size": [24, 33], "psf": {"kind": "gaussian", "sigma_nm": 130.0},
            "camera": EMCCD, "emitters": {"density_per_um2": 0.5, "photons_range": [500.0, 8000.0],
                                          "on_time_frames": 2.0}, "background": {"range": [20.0, 100.0]}}
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_chunk_size_does_not_change_the_movie(tmp_path, emccd_yaml):
    """--chunk is a memory bound: the camera noise is drawn in blocks of the movie (an EMCCD's frames differed by up
    to 912 ADU between --chunk 7 and the default before)."""
    _simulate(emccd_yaml, tmp_path / "a")
    for chunk in ("7", "1", "16", "17"):
        _simulate(emccd_yaml, tmp_path / chunk, "--chunk", chunk)
        np.testing.assert_array_equal(_movie(tmp_path / chunk), _movie(tmp_path / "a"))
        assert (tmp_path / chunk / "truth.csv").read_text() == (tmp_path / "a" / "truth.csv").read_text()


def test_the_saved_configuration_makes_the_same_movie_again(tmp_path, emccd_yaml, capsys):
    """DIR/config.yaml holds --density (it kept the file's 0.5 for a movie of 2.0 before) and names the options that
    make the movie again: that command on it gives the same frames and truth."""
    _simulate(emccd_yaml, tmp_path / "a", "--density", "2.0", "--margin-px", "1")
    saved = tmp_path / "a" / "config.yaml"
    assert load_config(saved).emitters.density_per_um2 == 2.0
    head = saved.read_text().splitlines()[0]
    assert head.startswith("# made by: plexloc simulate config.yaml --frames 20 --seed 3 --margin-px 1 --device cpu")
    _simulate(saved, tmp_path / "b", "--margin-px", "1")
    np.testing.assert_array_equal(_movie(tmp_path / "b"), _movie(tmp_path / "a"))
    assert (tmp_path / "b" / "truth.csv").read_text() == (tmp_path / "a" / "truth.csv").read_text()
    truth = read_table(tmp_path / "a" / "truth.csv")
    assert len(truth) / (20 * 24 * 33 * 0.01) == pytest.approx(2.0, rel=0.35)  # the density simulated


def test_emitter_and_background_defaults_are_named(tmp_path, capsys):
    """A configuration without an emitters or background section simulated 1 emitter/µm² of 1000-10000 photons on
    20-200 photons/px without a word."""
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump({"frame_size": [16, 16], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"},
                                    "emitters": {"photons_range": [100.0, 200.0]}}))
    assert main(["simulate", str(path), "--frames", "2", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "emitters.density_per_um2 1" in err and "background.range [20, 200]" in err
    assert "emitters.on_time_frames 2" in err and "photons_range" not in err and str(path) in err
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "o" / "config.yaml"), "--frames", "2", "--out", str(tmp_path / "p"),
                 "--device", "cpu"]) == 0
    assert "note" not in capsys.readouterr().err  # the saved configuration gives every value


def test_a_movie_never_holds_its_whole_background(monkeypatch):
    """iter_movie made the background of every frame before the first chunk (1500 frames of 256 x 256 px: 0.4 GB);
    now each chunk's frames come from the random numbers drawn once, the same numbers as the whole background."""
    from plexloc.simulation.background import background_frames, sample_background, sample_background_parts

    cfg = _config(frame_size=[11, 13], emitters={"density_per_um2": 1.0},
                  background={"range": [20.0, 80.0], "variation": 0.4, "variation_scale_nm": 500.0})
    kw = dict(n_sequences=3, n_frames=5, frame_shape=(11, 13), px_size_nm=100.0)
    whole = sample_background(cfg.background, generator=_gen(9), **kw)
    level, field = sample_background_parts(cfg.background, generator=_gen(9), **kw)
    for lo, hi in ((0, 15), (0, 1), (4, 11), (14, 15)):
        assert torch.equal(background_frames(level, field, frame_shape=(11, 13), n_frames=5, start=lo, stop=hi),
                           whole[lo:hi])
    sim = Simulator(cfg)
    ref = sim.simulate_movie(40, generator=_gen(10))
    assert torch.equal(ref.bg[0], sample_background(cfg.background, n_sequences=1, n_frames=40, frame_shape=(11, 13),
                                                    px_size_nm=100.0, generator=_bg_generator(sim, 40)))

    def whole_background(*args, **kwargs):
        raise AssertionError("the whole movie's background was built")

    monkeypatch.setattr(Simulator, "sample_background", whole_background)
    _, chunks = sim.iter_movie(40, generator=_gen(10), chunk_frames=6)
    parts = list(chunks)
    assert torch.equal(torch.cat([bg for _, _, bg in parts], dim=1), ref.bg)
    assert torch.equal(torch.cat([raw for _, raw, _ in parts], dim=1), ref.frames)


def _bg_generator(sim: Simulator, n_frames: int) -> torch.Generator:
    """The generator of ``sim.simulate_movie(n_frames, generator=_gen(10))`` as it stands when the background is drawn
    (after the emitters)."""
    g = _gen(10)
    sim.sample_emitters(n_sequences=1, n_frames=n_frames, generator=g, margin_nm=sim.channel_margin_px() * 100.0)
    return g


@pytest.mark.parametrize("edit, text", [
    ({"emitters": {"photons_range": 1000}}, "field 'emitters.photons_range': is a range [min, max], two numbers; for "
                                            "the one value 1000 write [1000, 1000]"),
    ({"emitters": {"z_range_nm": 0}}, "field 'emitters.z_range_nm': is a range [min, max]"),
    ({"background": {"range": 50.5}}, "write [50.5, 50.5]"),
    ({"psf": None, "camera": None}, "no channel: give 'psf' and 'camera' (one channel) or 'channels'"),
])
def test_a_microscopists_edit_gets_the_value_to_write(tmp_path, edit, text):
    """A range given as one number said "Input should be a valid tuple"; a file without psf, camera or channels said
    "missing field 'channels'" alone."""
    data = {"frame_size": [16, 16], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    for key, value in edit.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_config(path, SimulationConfig)
    assert text in str(err.value) and str(path) in str(err.value)


def test_truth_bg_is_the_background_under_the_emitter(tmp_path):
    """With background.variation the truth's bg was the frame's mean, up to the variation (here 50 %) off the
    background a fit sees under the emitter; it is the expected background of the emitter's pixel, in each channel at
    its position through the channel's transform (bg_chN), in the library and in truth.csv alike."""
    shift = [[1.0, 0.0, 300.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    ch = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    data = {"px_size_nm": 100.0, "frame_size": [40, 48], "channels": [ch, {**ch, "transform": shift}],
            "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 2000.0], "on_time_frames": 2.0},
            "background": {"range": [50.0, 50.0], "variation": 0.5, "variation_scale_nm": 1500.0}}
    sim = Simulator(validate_config(data, SimulationConfig))
    mov = sim.simulate_movie(30, generator=_gen(3))
    t = mov.truth
    assert len(t) > 200 and np.ptp(t["bg"]) > 20  # 25-75 photons, not the frame's 50
    f = np.asarray(t["frame"])
    i = np.floor(np.asarray(t["y_nm"]) / 100).astype(int)
    for c, dx in ((0, 0.0), (1, 300.0)):
        j = np.clip(np.floor((np.asarray(t["x_nm"]) + dx) / 100).astype(int), 0, 47)
        np.testing.assert_allclose(t[f"bg_ch{c}"], mov.bg[c].numpy()[f, i, j], rtol=1e-6)
    np.testing.assert_allclose(t["bg"], t["bg_ch0"])
    path = tmp_path / "var.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["simulate", str(path), "--frames", "30", "--out", str(tmp_path / "o"), "--seed", "3", "--chunk", "7",
                 "--device", "cpu"]) == 0
    csv = read_table(tmp_path / "o" / "truth.csv")
    for col in ("bg", "bg_ch0", "bg_ch1", "x_nm", "frame"):
        np.testing.assert_allclose(csv[col], t[col], rtol=1e-6)
