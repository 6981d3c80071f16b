"""Per-dye on-times (ratiometric multi-colour): each colour blinks with its own mean on-time, the
configured colour fractions are shares of the active emitters, and the default stays the global on-time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexloc.config import SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.simulation import Simulator
from plexloc.simulation.emitters import sample_emitters

FLUX = 5000.0
RATIOS = [[0.173, 0.827], [0.019, 0.981]]


def dual_color(**photon_model) -> SimulationConfig:
    chan = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    return validate_config({
        "px_size_nm": 127.0, "frame_size": [32, 32], "channels": [chan, chan],
        "photon_model": {"kind": "ratiometric", "ratios": RATIOS, **photon_model},
        "emitters": {"density_per_um2": 1.0, "photons_range": [FLUX, FLUX], "on_time_frames": 2.0},
    }, SimulationConfig)


def _emitters(cfg: SimulationConfig, n_frames: int, seed: int = 0):
    return sample_emitters(cfg.emitters, n_sequences=1, n_frames=n_frames, fov_nm=(20000.0, 20000.0),
                           photon_model=cfg.photon_model, throughputs=[1.0, 1.0],
                           generator=torch.Generator().manual_seed(seed))


def on_times_per_color(em, n_frames: int) -> dict[int, np.ndarray]:
    """On-time (frames) of every fluorophore not cut by the movie's ends: its photons over the flux."""
    ids = em.id.numpy()
    frames = em.frame_ix.numpy()
    total = em.photons.sum(dim=1).double().numpy()
    color = em.color.numpy()
    on = np.bincount(ids, weights=total) / FLUX
    cut = np.zeros(on.shape, bool)
    cut[ids[(frames == 0) | (frames == n_frames - 1)]] = True
    col = np.full(on.shape, -1)
    col[ids] = color
    seen = np.zeros(on.shape, bool)
    seen[ids] = True
    keep = seen & ~cut
    return {k: on[keep & (col == k)] for k in (0, 1)}


def test_per_dye_mean_on_time_matches_the_configuration():
    n = 400
    em = _emitters(dual_color(on_time_frames=[3.0, 1.0]), n)
    on = on_times_per_color(em, n)
    for k, tau in ((0, 3.0), (1, 1.0)):
        assert len(on[k]) > 5000
        # exponential: mean tau, standard error tau / sqrt(n) (< 1.5 %); 4 % leaves room for the edge cut
        assert on[k].mean() == pytest.approx(tau, rel=0.04), (k, on[k].mean())
        assert np.median(on[k]) == pytest.approx(tau * np.log(2), rel=0.06)  # the shape is exponential too
    # colour fractions are shares of the active emitters: equal numbers of rows per frame
    color = em.color.numpy()
    n_rows = np.bincount(color, minlength=2)
    assert n_rows[0] / n_rows.sum() == pytest.approx(0.5, abs=0.02)
    # and the total active density is the configured one: 1 / um^2 over 20 x 20 um
    assert len(em) / n == pytest.approx(400.0, rel=0.03)


def test_without_per_dye_on_times_every_colour_has_the_global_one():
    n = 300
    on = on_times_per_color(_emitters(dual_color(), n), n)
    for k in (0, 1):
        assert on[k].mean() == pytest.approx(2.0, rel=0.05)


def test_example_dual_color_plex_has_the_manuscripts_on_times():
    from plexloc.config import load_config

    cfg = load_config("examples/dual_color_plex.yaml")
    assert cfg.photon_model.on_time_frames == [3.0, 1.0]
    movie = Simulator(cfg).simulate_movie(4, generator=torch.Generator().manual_seed(1))
    assert set(np.unique(movie.truth["color"])) <= {0, 1} and len(movie.truth) > 0


@pytest.mark.parametrize("photon_model, match", [
    ({"kind": "ratiometric", "ratios": RATIOS, "on_time_frames": [3.0]}, "one entry per colour"),
    ({"kind": "ratiometric", "ratios": RATIOS, "on_time_frames": [3.0, 0.0]}, "greater than 0"),
    ({"kind": "linked", "on_time_frames": [3.0, 1.0]}, "needs photon_model 'ratiometric'"),
])
def test_bad_per_dye_on_times_are_refused(photon_model, match):
    chan = {"psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}}
    with pytest.raises(InputError, match=match):
        validate_config({"channels": [chan, chan], "photon_model": photon_model}, SimulationConfig)
