"""Session 40: re-blinking molecules (``emitters.blinks_per_molecule``, ``plexloc simulate --blinks-per-molecule``).

The simulator's on-events (same density, same on-times) are grouped into molecules, each at a position of its own and
blinking ``blinks_per_molecule`` times on average (geometric); ``id`` is the molecule. The default (1) draws the same
random numbers and gives the same output as before the option existed (hashes made with the code before it)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from plexloc.cli.main import main
from plexloc.config import EmitterConfig, SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.io.tables import read_table
from plexloc.io.tiff import read_movie
from plexloc.simulation import BatchGenerator, Simulator
from plexloc.simulation.emitters import movie_drift_nm, sample_emitters

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FOV = (10_000.0, 10_000.0)
FLUX = 4000.0
RATIOS = [[0.173, 0.827], [0.019, 0.981]]
CHAN = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}


def _events(ids: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive frames of one id (an on-event, where two events of a molecule do not touch): the run of
    every row (in id-then-frame order), the order, and the number of runs of every id (sorted ids)."""
    order = np.lexsort((frames, ids))
    i, f = ids[order], frames[order]
    new = np.r_[True, (i[1:] != i[:-1]) | (f[1:] != f[:-1] + 1)]
    run = np.cumsum(new) - 1
    _, mol = np.unique(i, return_inverse=True)
    return run, order, np.bincount(mol[new])


def _sample(b: float, *, n_frames: int = 4000, seed: int = 0, density: float = 0.5, on_time: float = 1.0):
    cfg = EmitterConfig(density_per_um2=density, on_time_frames=on_time, photons_range=(FLUX, FLUX),
                        blinks_per_molecule=b)
    return sample_emitters(cfg, n_sequences=1, n_frames=n_frames, fov_nm=FOV, blinks_per_molecule=b,
                           generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("b", [3.0, 12.0])
def test_mean_blinks_per_molecule_and_geometric_counts(b):
    em = _sample(b)
    ids, frames = em.id.numpy(), em.frame_ix.numpy()
    _, _, n_ev = _events(ids, frames)
    m = len(n_ev)
    # geometric with mean b: variance b (b - 1); two events of one molecule that touch count as one run (a bias of
    # about (b - 1) (on + 2) / frames, under 1 %)
    sd = np.sqrt(b * (b - 1) / m)
    assert abs(n_ev.mean() - b) < 4 * sd + 0.01 * b, (n_ev.mean(), b, sd)
    assert np.mean(n_ev == 1) == pytest.approx(1 / b, abs=4 * np.sqrt(1 / b / m) + 0.02)  # P(1) = 1/b, not Poisson's
    assert n_ev.max() > 2 * b  # a geometric tail, not a fixed count
    # one row per molecule and frame, and a molecule is never on twice at once
    assert len(np.unique(ids.astype(np.int64) * 10_000 + frames)) == len(ids)
    ph = em.photons.sum(dim=1).double().numpy()
    assert ph.max() <= FLUX * (1 + 1e-5)


def test_active_density_per_frame_is_unchanged():
    n, area = 2000, FOV[0] * FOV[1] * 1e-6
    for b in (1.0, 8.0):
        em = _sample(b, n_frames=n, density=0.4, on_time=2.0)
        per_frame = np.bincount(em.frame_ix.numpy(), minlength=n)
        # expected 0.4 * 100 = 40 per frame; the mean over 2000 frames has a relative sd under 0.5 %
        assert per_frame.mean() == pytest.approx(0.4 * area, rel=0.025), (b, per_frame.mean())
        assert per_frame[: n // 2].mean() == pytest.approx(per_frame[n // 2:].mean(), rel=0.04)  # stationary
        # every frame's emitters are spread over the field as before (molecules uniform)
        x = em.xyz_nm[:, 0].numpy()
        assert x.mean() == pytest.approx(FOV[0] / 2, rel=0.05) and (0 <= x).all() and (x < FOV[0]).all()
    assert len(np.unique(_sample(8.0, n_frames=n).id.numpy())) < len(np.unique(_sample(1.0, n_frames=n).id.numpy())) / 5


def _dual_color(b: float, taus=(3.0, 1.0)) -> SimulationConfig:
    return validate_config({
        "px_size_nm": 127.0, "frame_size": [32, 32], "channels": [CHAN, CHAN],
        "photon_model": {"kind": "ratiometric", "ratios": RATIOS, "color_fractions": [0.4, 0.6],
                         **({} if taus is None else {"on_time_frames": list(taus)})},
        "emitters": {"density_per_um2": 0.5, "photons_range": [FLUX, FLUX], "blinks_per_molecule": b},
    }, SimulationConfig)


@pytest.mark.parametrize("taus", [(3.0, 1.0), None])
def test_a_molecule_keeps_its_position_and_colour_and_each_dye_its_on_time(taus):
    n = 3000
    cfg = _dual_color(6.0, taus)
    em = sample_emitters(cfg.emitters, n_sequences=1, n_frames=n, fov_nm=FOV, photon_model=cfg.photon_model,
                         throughputs=[1.0, 1.0], blinks_per_molecule=6.0, generator=torch.Generator().manual_seed(1))
    ids, frames, color = em.id.numpy(), em.frame_ix.numpy(), em.color.numpy()
    xyz = em.xyz_nm.numpy()
    order = np.argsort(ids, kind="stable")
    first = np.r_[True, ids[order][1:] != ids[order][:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))  # each row's id's first row
    np.testing.assert_array_equal(xyz[order], xyz[order][start])  # every row of a molecule at its xyz
    np.testing.assert_array_equal(color[order], color[order][start])  # and in its colour
    # the photons split by the molecule's colour's ratios
    ph = em.photons.double().numpy()
    np.testing.assert_allclose(ph[:, 0] / ph.sum(1), np.asarray(RATIOS)[color, 0], rtol=1e-4)
    _, _, n_ev = _events(ids, frames)
    assert n_ev.mean() == pytest.approx(6.0, rel=0.12)
    # colour fractions stay shares of the active emitters
    assert np.mean(color == 0) == pytest.approx(0.4, abs=0.02)
    if taus is None:
        return
    # each dye's on-time: the photons of an on-event (a run not cut by the movie's ends) over the flux
    run, order, _ = _events(ids, frames)
    tot = ph.sum(1)[order]
    on = np.bincount(run, weights=tot) / FLUX
    run_col = np.zeros(len(on), np.int64)
    run_col[run] = color[order]
    cut = np.zeros(len(on), bool)
    cut[run[(frames[order] == 0) | (frames[order] == n - 1)]] = True
    for k, tau in enumerate(taus):
        sel = on[(run_col == k) & ~cut]
        assert len(sel) > 3000
        # exponential mean tau, sd tau / sqrt(n) (< 2 %); two touching events of a molecule read as one (< 1 %)
        assert sel.mean() == pytest.approx(tau, rel=0.06), (k, sel.mean())


# hashes of the emitters, movies and CLI output of the code before blinks_per_molecule (git 395b7f7, torch 2.13.0+cpu)
_OLD = {
    "2d_emitters": "1346d126b807db3a", "2d_window": "2974b035987ad016", "2d_movie": ("3c77257027857812", "66ae9539fcf56730"),
    "whole_emitters": "0393309b5e3a9a5e", "whole_window": "f69c9f91ccfbdd29",
    "whole_movie": ("0ebc331bc46931cc", "193b7e279143c8ec"),
    "dyes_emitters": "71cf094e39f9d85e", "dyes_window": "10ed9f66a1f0e7e1",
    "dyes_movie": ("41dca6737ee5e6d9", "e6c63a7cf9b9203d"),
    "ratio_emitters": "4669b80384f36d44", "ratio_window": "93fd86815c6f9f03",
    "ratio_movie": ("c48843aa086b5ba0", "6cb7ca2bae47d760"),
    "cli_movie": "0138eea1c2440c6b", "cli_truth": "64743b56a3f48c01",
}
_REF_CONFIGS = {
    "2d": {"px_size_nm": 100.0, "frame_size": [32, 32], "channels": [CHAN],
           "emitters": {"density_per_um2": 0.8, "photons_range": [1000, 5000], "on_time_frames": 2.5}},
    "whole": {"px_size_nm": 100.0, "frame_size": [32, 32], "channels": [CHAN],
              "emitters": {"density_per_um2": 0.8, "blinking": False, "z_range_nm": [-300, 300]}},
    "dyes": {"px_size_nm": 127.0, "frame_size": [32, 32], "channels": [CHAN, CHAN],
             "photon_model": {"kind": "ratiometric", "ratios": RATIOS, "on_time_frames": [3.0, 1.0],
                              "color_fractions": [0.3, 0.7]},
             "emitters": {"density_per_um2": 1.0, "photons_range": [2000, 5000]}},
    "ratio": {"px_size_nm": 127.0, "frame_size": [32, 32], "channels": [CHAN, CHAN],
              "photon_model": {"kind": "ratiometric", "ratios": RATIOS},
              "emitters": {"density_per_um2": 1.0, "photons_range": [2000, 5000]}},
}


def _hash(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.skipif(torch.__version__ != "2.13.0+cpu", reason="hashes made with torch 2.13.0+cpu")
@pytest.mark.parametrize("name", sorted(_REF_CONFIGS))
@pytest.mark.parametrize("explicit", [False, True])
def test_default_is_bit_identical_to_the_code_before(name, explicit):
    data = yaml.safe_load(yaml.safe_dump(_REF_CONFIGS[name]))
    if explicit:  # 1 given is the default: the same (with blinking: false too, as a dumped configuration has it)
        data["emitters"]["blinks_per_molecule"] = 1.0
    sim = Simulator(validate_config(data, SimulationConfig))
    em = sim.sample_emitters(n_sequences=3, n_frames=50, generator=torch.Generator().manual_seed(7), margin_nm=150.0)
    assert _hash(em.xyz_nm, em.photons, em.frame_ix, em.id, em.color) == _OLD[f"{name}_emitters"]
    em = sim.sample_emitters(n_sequences=4, n_frames=3, generator=torch.Generator().manual_seed(3),
                             sequence_density=torch.tensor([0.5, 1.0, 2.0, 0.0]))
    assert _hash(em.xyz_nm, em.photons, em.frame_ix, em.id, em.color) == _OLD[f"{name}_window"]
    mv = sim.simulate_movie(20, generator=torch.Generator().manual_seed(11))
    assert (_hash(mv.frames), _hash(torch.as_tensor(mv.truth["x_nm"]), torch.as_tensor(mv.truth["id"]))) == \
        _OLD[f"{name}_movie"]


@pytest.mark.skipif(torch.__version__ != "2.13.0+cpu", reason="hashes made with torch 2.13.0+cpu")
def test_default_cli_movie_and_truth_are_bit_identical(tmp_path):
    args = ["simulate", str(EXAMPLES / "2d_gaussian.yaml"), "--frames", "20", "--frame-size", "32", "32",
            "--drift-nm", "30", "-10", "0", "--seed", "5", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--blinks-per-molecule", "1", "--out", str(tmp_path / "b")]) == 0
    for d in ("a", "b"):
        assert _hash(read_movie(tmp_path / d / "movie.tif")) == _OLD["cli_movie"]
        assert hashlib.sha256((tmp_path / d / "truth.csv").read_bytes()).hexdigest()[:16] == _OLD["cli_truth"]


def test_config_checks_blinks_per_molecule():
    assert EmitterConfig().blinks_per_molecule == 1.0
    with pytest.raises(ValueError, match=r"blinks_per_molecule \(3\) needs blinking: true"):
        EmitterConfig(blinking=False, blinks_per_molecule=3.0)
    EmitterConfig(blinking=False, blinks_per_molecule=1.0)  # the default, as a dumped configuration writes it
    for bad in (0.5, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="blinks_per_molecule"):
            EmitterConfig(blinks_per_molecule=bad)
    with pytest.raises(InputError, match="blinks_per_molecule"):
        validate_config({**_REF_CONFIGS["whole"], "emitters": {"blinking": False, "blinks_per_molecule": 2}},
                        SimulationConfig)
    with pytest.raises(ValueError, match=r"blinks_per_molecule \(2\) needs emitters.blinking: true"):
        sample_emitters(EmitterConfig(blinking=False), n_sequences=1, n_frames=5, fov_nm=FOV, blinks_per_molecule=2.0)
    with pytest.raises(ValueError, match="blinks_per_molecule must be a finite number >= 1, got 0.5"):
        sample_emitters(EmitterConfig(), n_sequences=1, n_frames=5, fov_nm=FOV, blinks_per_molecule=0.5)
    cfg = _dual_color(4.0)
    assert validate_config(cfg.model_dump(), SimulationConfig).emitters.blinks_per_molecule == 4.0  # round trip


def test_cli_option_writes_truth_with_repeated_ids(tmp_path, capsys):
    args = ["simulate", str(EXAMPLES / "2d_gaussian.yaml"), "--frames", "300", "--frame-size", "32", "32",
            "--density", "0.3", "--seed", "2", "--device", "cpu", "--chunk", "100"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--blinks-per-molecule", "8", "--out", str(tmp_path / "many")]) == 0
    out = capsys.readouterr().out
    assert "molecules, blinks_per_molecule 8" in out
    assert yaml.safe_load((tmp_path / "many" / "config.yaml").read_text())["emitters"]["blinks_per_molecule"] == 8.0
    one, many = read_table(tmp_path / "one" / "truth.csv"), read_table(tmp_path / "many" / "truth.csv")
    _, _, ev_one = _events(one["id"], one["frame"])
    _, _, ev_many = _events(many["id"], many["frame"])
    assert ev_one.max() == 1  # every id one on-event
    assert ev_many.mean() > 3 and len(np.unique(many["id"])) < len(np.unique(one["id"])) / 3
    assert len(many) == pytest.approx(len(one), rel=0.2)  # the same density
    for k in np.unique(many["id"]):
        sel = many["id"] == k
        assert np.ptp(many["x_nm"][sel]) == 0 and np.ptp(many["y_nm"][sel]) == 0
    # the movie shows them: a molecule's frames hold light at its position
    movie = read_movie(tmp_path / "many" / "movie.tif")
    k = np.unique(many["id"], return_counts=True)
    big = k[0][np.argmax(k[1])]
    sel = many["id"] == big
    px = 100.0
    r, c = int(many["y_nm"][sel][0] // px), int(many["x_nm"][sel][0] // px)
    on = movie[many["frame"][sel], r, c].astype(float)
    off = np.delete(movie[:, r, c].astype(float), many["frame"][sel])
    assert np.median(on) > np.median(off)
    # and the saved configuration simulates the same movie again
    assert main(["simulate", str(tmp_path / "many" / "config.yaml"), "--frames", "300", "--seed", "2", "--density",
                 "0.3", "--device", "cpu", "--out", str(tmp_path / "again")]) == 0
    assert read_table(tmp_path / "again" / "truth.csv") == many


def test_cli_refuses_blinks_without_blinking(tmp_path, capsys):
    data = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    data["emitters"]["blinking"] = False
    data["emitters"].pop("on_time_frames", None)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))
    args = ["simulate", str(cfg), "--frames", "5", "--frame-size", "16", "16", "--device", "cpu", "--out",
            str(tmp_path / "o")]
    assert main([*args, "--blinks-per-molecule", "4"]) == 2
    err = capsys.readouterr().err
    assert "blinks_per_molecule (4) needs blinking: true" in err and "--blinks-per-molecule" in err
    assert main([*args, "--blinks-per-molecule", "0.5"]) == 2
    assert "blinks_per_molecule" in capsys.readouterr().err


def _drift_case(b: float, n_frames: int = 2000):
    data = yaml.safe_load((EXAMPLES / "2d_gaussian.yaml").read_text())
    data["frame_size"] = [100, 100]
    data["emitters"].update(density_per_um2=0.05, blinks_per_molecule=b,
                            drift={"linear_nm": [80.0, -50.0, 0.0], "wobble_nm": [20.0, 20.0, 0.0]})
    cfg = validate_config(data, SimulationConfig)
    sim = Simulator(cfg)
    truth = sim.truth_table(sim.sample_emitters(n_sequences=1, n_frames=n_frames, blinks_per_molecule=b,
                                                generator=torch.Generator().manual_seed(0)))
    drift = movie_drift_nm(cfg.emitters.drift, n_frames)
    rng = np.random.default_rng(1)
    f = truth["frame"]
    locs = truth.with_columns(x_nm=truth["x_nm"] + drift[f, 0] + rng.normal(0, 10.0, len(f)),
                              y_nm=truth["y_nm"] + drift[f, 1] + rng.normal(0, 10.0, len(f)))
    return locs, drift


def test_reblinking_molecules_let_rcc_recover_the_drift():
    from plexloc.post.drift import UnreliableDriftWarning, drift_error_rms, estimate_drift

    n = 2000
    locs, drift = _drift_case(20.0, n)
    assert drift_error_rms(np.zeros_like(drift), drift) > 20.0  # the drift to find
    res = estimate_drift(locs)  # no unreliability warning (an error here)
    assert drift_error_rms(res.at(np.arange(n)), drift) < 3.0
    # single-blink molecules: no molecule is in two time windows, nothing to correlate
    locs, drift = _drift_case(1.0, n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_drift(locs)
    err = drift_error_rms(res.at(np.arange(n)), drift)
    assert err > 20.0 or any(issubclass(w.category, UnreliableDriftWarning) for w in caught), err


def test_training_samples_ignore_it():
    """Like drift, blinks_per_molecule shapes whole movies only: a training window of a few frames is a piece of a
    long movie, where a molecule's next blink is far away."""
    data = dict(_REF_CONFIGS["2d"])
    sims = [Simulator(validate_config({**data, "emitters": {**data["emitters"], "blinks_per_molecule": b}},
                                      SimulationConfig)) for b in (1.0, 10.0)]
    batches = [BatchGenerator(sim, batch_size=4, window=3, seed=3)() for sim in sims]
    for a, b in zip(batches[0].__dict__.values(), batches[1].__dict__.values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
