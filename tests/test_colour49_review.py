"""Review of the session-49 colour change (eq. 3 divided by the table's own noise scale).

The scale is read from each row's best colour's chi-square, which is biased low where the dyes overlap: calibrated
``sigma_photons_ch*`` read 0.38 for three dyes in two channels (AF647, an intermediate dye, CF680) and 0.40 for
AF647/CF680 at 200 photons. Below 0.5 the report said the sigmas "look too large (not scaled down): rows are rejected
that the data would colour", a false statement on right sigmas. It is now said only where the reading is below half
of what sigmas right for these rows read (the rows drawn again at their colour's ratio with their own sigmas)."""

from __future__ import annotations

import numpy as np
import pytest

from plexloc.post.color import assign_colors
from plexloc.table import LocTable

AF = [[0.173, 0.827], [0.019, 0.981]]
THREE = [[0.173, 0.827], [0.07, 0.93], [0.019, 0.981]]


def table(ratios, *, b: float = 1.0, photons: float = 1000.0, n: int = 4000, seed: int = 0, sigmas: bool = True):
    """Network-like rows (as tests/test_colour49.py): photons 1.5x the EMCCD shot noise, predicted sigmas ``b`` times
    that scatter with a log-normal spread of 0.2; ``sigmas`` False: no sigma columns (the shot-noise model's
    uncertainties, bg_chN given)."""
    r = np.asarray(ratios, float)
    rng = np.random.default_rng(seed)
    dye = rng.integers(0, len(r), n)
    mu = np.exp(rng.normal(np.log(photons), 0.6, n))[:, None] * r[dye]
    bg_px = 4.0 * np.pi * 50.0
    obs = mu + rng.normal(size=mu.shape) * 1.5 * np.sqrt(2.0 * (mu + bg_px))
    cols = {"frame": np.arange(n), "x_nm": np.zeros(n), "y_nm": np.zeros(n), "z_nm": np.zeros(n),
            "photons": obs.sum(axis=1)}
    for c in range(r.shape[1]):
        cols[f"photons_ch{c}"] = obs[:, c]
        cols[f"bg_ch{c}"] = np.full(n, 50.0)
        if sigmas:
            cols[f"sigma_photons_ch{c}"] = (b * 1.5 * np.sqrt(2.0 * (np.maximum(obs[:, c], 0.0) + bg_px))
                                            * np.exp(rng.normal(0.0, 0.2, n)))
    return LocTable(cols)


@pytest.mark.parametrize("ratios, photons", [(THREE, 1000.0), (AF, 200.0)])
def test_right_sigmas_where_dyes_overlap_are_not_called_too_large(ratios, photons):
    _, report = assign_colors(table(ratios, photons=photons), ratios, 0.9)
    assert report.noise_estimate < 0.45  # read low: the best colour of overlapping dyes (0.41 / 0.43 here)
    assert report.noise_factor == 1.0
    assert "too large" not in report.format_table()  # said before on these right sigmas
    assert 0.6 * report.noise_calibrated < report.noise_estimate  # what right sigmas read here
    assert report.to_dict()["noise_calibrated"] == report.noise_calibrated


@pytest.mark.parametrize("ratios, b", [(AF, 3.0), (THREE, 2.5), ([[0.8, 0.2], [0.3, 0.7]], 2.0)])
def test_sigmas_too_large_still_said(ratios, b):
    _, report = assign_colors(table(ratios, b=b), ratios, 0.9)
    assert report.noise_estimate < 0.5 * report.noise_calibrated
    line = [s for s in report.format_table().splitlines() if "too large" in s]
    assert len(line) == 1 and "uncertainties right for these rows would read" in line[0]
    ratio = report.noise_estimate / report.noise_calibrated
    assert f"{ratio:.2f}x the variance" in line[0]
    assert 0.5 / b**2 < ratio < 2.0 / b**2  # variances b^2 too large, within the spread of the sigmas


def test_shot_noise_model_path_and_calibrated_tables_unchanged():
    # without sigma columns the chi-squares come from the shot-noise model (1.5x too small: read above 1, scaled)
    _, report = assign_colors(table(AF, sigmas=False), AF, 0.9, excess_noise=2.0)
    assert report.noise_factor > 1.0 and report.noise_calibrated is None
    # calibrated, well separated dyes: read near 1, nothing measured again, nothing said
    _, report = assign_colors(table([[0.8, 0.2], [0.3, 0.7]]), [[0.8, 0.2], [0.3, 0.7]], 0.9)
    assert report.noise_estimate > 0.5 and report.noise_calibrated is None
    assert "too large" not in report.format_table()


def test_quad_plane_chained_transforms_name_the_pairs_not_checked():
    """Transforms 0.08 px apart channel by channel (0.24 px from channel 0 to 3): only neighbouring pairs are placed
    alike, and channels 0 and 3's swap is still checked; the note and summary said "channels 0, 1, 2, 3"."""
    import warnings
    from pathlib import Path

    import torch

    from plexloc.calibrate.alignment import check_channel_alignment
    from plexloc.config import load_config
    from plexloc.simulation import Simulator

    cfg = load_config(Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples" / "quad_plane.yaml")
    chans = []
    for c, ch in enumerate(cfg.channels):
        t = np.eye(3)
        t[0, 2] = 0.08 * cfg.px_size_xy_nm[0] * c
        chans.append(ch.model_copy(update={"transform": t.tolist()}))
    cfg = cfg.model_copy(update={"frame_size": (64, 64), "channels": chans})
    sim = Simulator(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        movie = sim.simulate_movie(60, generator=torch.Generator().manual_seed(0), density_per_um2=1.0)
        frames = [ch.camera.to_photons(movie.frames[c]).numpy() for c, ch in enumerate(sim.channels)]
    rep = check_channel_alignment(frames, [np.asarray(ch.transform, float) for ch in cfg.channels],
                                  cfg.px_size_xy_nm, warn=False)
    assert rep.status == "ok" and rep.indistinct == ((0, 1), (1, 2), (2, 3))
    said = [n for n in rep.notes if "and it cannot be" in n]
    assert len(said) == 1 and "channels 0 and 1, 1 and 2, 2 and 3 within 0.08 px" in said[0]
    assert "channels 0, 1, 2, 3" not in said[0] and "channels 0, 1, 2, 3" not in rep.summary()
    assert "the order of channels 0 and 1, 1 and 2, 2 and 3 is not checked" in rep.summary()
