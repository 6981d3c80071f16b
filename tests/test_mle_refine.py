"""Maximum-likelihood refinement of a localization table with the neighbours modelled (plexloc.mle.refine),
the MLE fitter's ROI offset, and ``fit_movie(refine_mle=True)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import load_config
from plexloc.mle import Candidates, MLEFitter
from plexloc.mle.fit import _Problem
from plexloc.mle.refine import _photons_per_channel, others_images, refine_frames
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def neighbour_images(problem: _Problem, theta_abs: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """(N, C, R, R): in every window i, the expected photons of the localizations j paired with it (no background),
    pair by pair: the reference for :func:`others_images`. ``theta_abs`` (N, P): x, y in absolute reference pixels."""
    n, C, R = theta_abs.shape[0], problem.C, problem.roi
    out = torch.zeros(n, C * R * R, device=theta_abs.device, dtype=theta_abs.dtype)
    org = problem.origins[:, 0].to(theta_abs.dtype)  # (N, 2) row, col of channel 0's window
    th = theta_abs[j].clone()
    th[:, 0] -= org[i, 1]
    th[:, 1] -= org[i, 0]
    th[:, problem.i_bg :] = 0.0
    out.index_add_(0, i, problem.expected_photons(th, i))
    return out.reshape(n, C, R, R)


def _sim_config(name: str, *, size: int, density: float):
    cfg = load_config(EXAMPLES / name)
    cfg = cfg.simulation() if hasattr(cfg, "simulation") else cfg
    cfg.frame_size = [size, size]
    cfg.emitters.density_per_um2 = density
    return cfg


@pytest.mark.parametrize("name", ["biplane_plex.yaml", "dual_color_plex.yaml", "3d_astigmatic.yaml"])
def test_neighbour_images_are_the_simulators_expected_photons(name):
    """Every localization of a frame drawn into every window of that frame (itself included) gives the window of
    the simulator's noiseless image: positions, z, transforms and the linked / per-channel photons agree."""
    cfg = _sim_config(name, size=40, density=2.0)
    sim = Simulator(cfg)
    mov = sim.simulate_movie(3, generator=torch.Generator().manual_seed(1))
    # the truth's emitters (the reference field; a multi-channel movie also renders a margin around it)
    xy = mov.emitters.xyz_nm[:, :2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < sim.fov_nm[0]) & (xy[:, 1] >= 0) & (xy[:, 1] < sim.fov_nm[1])
    expected = sim.expected_photons(mov.emitters.select(inside), torch.zeros(cfg.n_channels, 3, 40, 40)).double()
    truth = mov.truth
    fitter = MLEFitter(cfg)
    px = cfg.px_size_xy_nm
    x, y = np.asarray(truth["x_nm"]) / px[0], np.asarray(truth["y_nm"]) / px[1]
    frame = np.asarray(truth["frame"])
    cand = Candidates(frame, np.floor(y).astype(int).clip(0, 39), np.floor(x).astype(int).clip(0, 39), np.zeros(len(truth)))
    rois, origins, *_ = fitter.windows(expected, cand, fitter.roi_px)
    problem = _Problem(fitter.fit_channels, fitter.roi_px, linked=fitter.linked, origins=origins, device="cpu",
                       dtype=torch.float64)
    n_ph = _photons_per_channel(truth, cfg.n_channels, [c.fraction for c in fitter.fit_channels], fitter.linked)
    parts = [x[:, None], y[:, None]] + ([np.asarray(truth["z_nm"])[:, None]] if problem.is_3d else [])
    theta = torch.tensor(np.concatenate(parts + [n_ph, np.zeros((len(truth), cfg.n_channels))], axis=1))
    i, j = np.nonzero(frame[:, None] == frame[None, :])
    got = neighbour_images(problem, theta, torch.as_tensor(i), torch.as_tensor(j))
    want = torch.stack(rois, dim=1)
    assert len(truth) > 30 and float(want.sum()) > 1e4
    assert float((got - want).abs().max()) < 0.1  # photons per pixel, of peaks of several hundred
    assert float((got - want).abs().sum() / want.sum()) < 1e-4
    # every other localization of the frame drawn once on a canvas (O(N)): the same as over the pairs i != j
    other = i != j
    pairs = neighbour_images(problem, theta, torch.as_tensor(i[other]), torch.as_tensor(j[other]))
    canvas = others_images(problem, theta, torch.as_tensor(frame), 3, (40, 40))
    assert float(pairs.sum()) > 1e3
    assert float((canvas - pairs).abs().max()) < 0.1  # the tails beyond a localization's own window
    assert float((canvas - pairs).abs().sum() / pairs.sum()) < 1e-4


def _crowded_movie(seed: int = 0):
    cfg = _sim_config("3d_astigmatic.yaml", size=32, density=1.0)
    sim = Simulator(cfg)
    # no emitter outside the field: the table holds every emitter that lights the frames but the dim ones
    mov = sim.simulate_movie(24, generator=torch.Generator().manual_seed(seed), margin_px=0)
    truth = mov.truth[np.asarray(mov.truth["photons"]) >= 500]
    fitter = MLEFitter(cfg)
    photons = fitter.to_photons([mov.frames[0].numpy()])
    rng = np.random.default_rng(seed)
    n = len(truth)
    start = truth.with_columns(x_nm=truth["x_nm"] + rng.normal(0, 40, n), y_nm=truth["y_nm"] + rng.normal(0, 40, n),
                               z_nm=truth["z_nm"] + rng.normal(0, 100, n), photons=truth["photons"] * rng.uniform(0.8, 1.2, n),
                               sigma_photons=np.ones(n))
    return fitter, photons, truth, start


def _rmse(a, b, col):
    return float(np.sqrt(np.mean((np.asarray(a[col]) - np.asarray(b[col])) ** 2)))


def test_refinement_brings_crowded_estimates_down_and_needs_the_neighbours():
    """3D astigmatic frames at 1 emitter/um^2 (spots overlap), a table 40 / 100 nm off the truth: the refined
    positions are several times closer, near the CRLB, and modelling the neighbours is what makes that so."""
    fitter, photons, truth, start = _crowded_movie()
    out = refine_frames(fitter, photons, start)
    alone = refine_frames(fitter, photons, start, model_neighbours=False)
    assert len(truth) > 80
    assert np.asarray(out["id"]).dtype.kind == "i" and np.asarray(out["frame"]).dtype.kind == "i"
    refined = np.asarray(out["refined"]) == 1
    assert refined.mean() > 0.8
    for col, before, gain in (("x_nm", 40.0, 0.6), ("y_nm", 40.0, 0.6), ("z_nm", 100.0, 0.92)):  # z: its bound is ~80 nm
        assert _rmse(start, truth, col) == pytest.approx(before, rel=0.25)
        # the refined rows against their own start (the others keep it), and the whole table with / without neighbours
        assert _rmse(out[refined], truth[refined], col) < gain * _rmse(start[refined], truth[refined], col), col
        assert _rmse(out, truth, col) < _rmse(alone, truth, col), col
    assert (np.asarray(alone["refined"]) == 1).mean() < refined.mean() - 0.2  # alone, many fits run onto a neighbour
    # the refined rows' errors are near their own bound, and their sigma is that bound
    crlb_x = np.asarray(out["crlb_x_nm"])[refined]
    err_x = (np.asarray(out["x_nm"]) - np.asarray(truth["x_nm"]))[refined]
    assert np.sqrt(np.mean(err_x**2)) < 1.3 * np.sqrt(np.mean(crlb_x**2))
    # the photon sigma of a refined row is its bound: above the Poisson limit sqrt(N) (EMCCD excess noise, background)
    sig_n = np.asarray(out["sigma_photons"])
    assert (sig_n[~refined] == 1.0).all()
    assert (sig_n[refined] > np.sqrt(np.asarray(out["photons"])[refined])).all()
    assert (sig_n[refined] < 0.5 * np.asarray(out["photons"])[refined]).mean() > 0.95


def test_refinement_leaves_other_frames_and_far_fits_alone():
    fitter, photons, truth, start = _crowded_movie(1)
    # frames 0..11 of the photons are frames 100..111 of the movie: rows of frame 5 are outside
    shifted = start.with_columns(frame=np.asarray(start["frame"]) + 100)
    moved = np.asarray(shifted["frame"]).copy()
    moved[np.asarray(start["frame"]) == 5] = 5
    table = shifted.with_columns(frame=moved)
    out = refine_frames(fitter, photons, table, frame_offset=100)
    other = moved == 5
    assert other.any() and (np.asarray(out["refined"])[other] == 0).all()
    np.testing.assert_array_equal(np.asarray(out["x_nm"])[other], np.asarray(table["x_nm"])[other])
    # a tight shift limit keeps the table's values where a fit moved further
    tight = refine_frames(fitter, photons, start, max_shift_px=0.05)
    kept = np.asarray(tight["refined"]) == 0
    assert kept.sum() > 0.3 * len(tight)
    np.testing.assert_array_equal(np.asarray(tight["x_nm"])[kept], np.asarray(start["x_nm"])[kept])
    # the table's own sigmas bound the shift (chi-square test): honest ones let most refits through, 1-nm ones only those with a wide bound
    n = len(start)
    honest = start.with_columns(sigma_x_nm=np.full(n, 40.0), sigma_y_nm=np.full(n, 40.0), sigma_z_nm=np.full(n, 100.0))
    tight_sigma = honest.with_columns(sigma_x_nm=np.ones(n), sigma_y_nm=np.ones(n), sigma_z_nm=np.ones(n))
    assert (np.asarray(refine_frames(fitter, photons, honest)["refined"]) == 1).mean() > 0.7
    assert (np.asarray(refine_frames(fitter, photons, tight_sigma)["refined"]) == 1).mean() < 0.3
    # refined a few frames at a time (memory): the same table
    small = refine_frames(fitter, photons, table, frame_offset=100, max_windows=7)
    for col in ("x_nm", "z_nm", "sigma_photons", "crlb_x_nm", "refined"):
        np.testing.assert_allclose(np.asarray(small[col]), np.asarray(out[col]), rtol=1e-9, equal_nan=True)
    with pytest.raises(ValueError, match="rounds"):
        refine_frames(fitter, photons, start, rounds=0)
    for bad in (dict(fit_pvalue=0.0), dict(shift_pvalue=1.5), dict(joint_neighbours=-1), dict(max_windows=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            refine_frames(fitter, photons, start, **bad)
    with pytest.raises(ValueError, match="larger than the frames"):
        refine_frames(fitter, photons[..., :5, :5], start)


def test_mle_fitter_maps_roi_positions_through_the_chip_transform():
    """Transforms are in chip coordinates: a fitter for an ROI at chip pixel o maps r -> T(r + o) - o, as the
    simulator's channels do."""
    cfg = _sim_config("biplane_plex.yaml", size=32, density=0.5)
    sim = Simulator(cfg)
    ch1 = sim.channels[1]
    pts = torch.tensor([[100.0, 200.0, 0.0], [2500.0, 1800.0, 0.0], [3000.0, 150.0, 0.0]])
    for offset in ((0, 0), (96, 40)):
        fitter = MLEFitter(cfg, roi_offset_px=offset)
        o = torch.tensor([offset], dtype=torch.float32) * torch.tensor(cfg.px_size_xy_nm)
        want_x, want_y, _ = ch1.positions(pts, o.expand(3, 2))
        t = fitter.channels[1].transform.double()
        xh = t[0, 0] * pts[:, 0] + t[0, 1] * pts[:, 1] + t[0, 2]
        yh = t[1, 0] * pts[:, 0] + t[1, 1] * pts[:, 1] + t[1, 2]
        w = t[2, 0] * pts[:, 0] + t[2, 1] * pts[:, 1] + t[2, 2]
        np.testing.assert_allclose((xh / w).numpy(), want_x.double().numpy(), atol=1e-2)
        np.testing.assert_allclose((yh / w).numpy(), want_y.double().numpy(), atol=1e-2)
    far = MLEFitter(cfg, roi_offset_px=(96, 40)).channels[1].transform
    assert not torch.allclose(far, MLEFitter(cfg).channels[1].transform)  # 1 degree over 10 um: ~170 nm


def refine_model_setup(tmp_path: Path, *, prob_bias: float = 0.0, meta: dict | None = None):
    """A tiny untrained network saved with its 2D configuration (ideal camera, 24x24 px frames, 1 emitter/um^2) as
    ``net.pt`` and a 4-frame movie of that configuration as ``m.tif``: (movie path, model path, movie, network)."""
    from plexloc.config import TrainConfig
    from plexloc.config.models import IdealCameraConfig
    from plexloc.io.tiff import write_movie
    from plexloc.nets import Localizer, LocalizerSpec
    from plexloc.nets.io import save_model

    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1, input_offset=[20.0],
                                  input_scale=[20.0], px_size_nm=(100.0, 100.0)))
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(prob_bias)
    cfg = TrainConfig.model_validate(load_config(EXAMPLES / "2d_gaussian.yaml").model_dump())
    cfg.frame_size = [24, 24]
    cfg.emitters.density_per_um2 = 1.0
    cfg.channels[0].camera = IdealCameraConfig()
    mov = Simulator(cfg.simulation()).simulate_movie(4, generator=torch.Generator().manual_seed(2))
    write_movie(tmp_path / "m.tif", mov.frames[0].numpy().astype(np.uint16))
    save_model(tmp_path / "net.pt", net, cfg.model_dump(mode="json"), meta={} if meta is None else meta)
    return tmp_path / "m.tif", tmp_path / "net.pt", mov, net


def test_fit_movie_refine_mle(tmp_path, monkeypatch):
    """The network's table refined in fit_movie: refined rows carry the CRLB as sigma, without the network's
    validation calibration, which the other rows keep; a model without its configuration is refused."""
    import functools

    import plexloc.mle.refine as refine_module

    # the untrained network's rows are mostly not emitters, and the core-deviance test rightly refuses all their refits:
    # the plumbing is what is tested here, so that test is off (it has its own test above). The refits it kept with the
    # 1 px shift limit were all fits of noise with photons on their bound (1 photon, sigma_x 20-24 um), no longer kept
    # (tests/test_mle41_bounds.py); a 3 px limit lets the refits of the emitters near the network's rows through
    monkeypatch.setattr(refine_module, "refine_frames", functools.partial(refine_frames, fit_pvalue=None, max_shift_px=3.0))
    from plexloc.config.models import IdealCameraConfig
    from plexloc.errors import InputError
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.nets.io import save_model

    _, _, mov, net = refine_model_setup(tmp_path, meta={"validation": {"sigma_cal_x": 2.0}})
    raw = fit_movie(tmp_path / "m.tif", tmp_path / "net.pt")
    out = fit_movie(tmp_path / "m.tif", tmp_path / "net.pt", refine_mle=True)
    assert len(out) == len(raw) > 0
    r = np.asarray(out["refined"]) == 1
    assert r.any()
    assert (np.asarray(out["photons"])[r] > 100).all()  # refits of emitters, not of noise held at 1 photon
    np.testing.assert_array_equal(np.asarray(out["sigma_x_nm"])[r], np.asarray(out["crlb_x_nm"])[r])
    np.testing.assert_allclose(np.asarray(out["sigma_x_nm"])[~r], np.asarray(raw["sigma_x_nm"])[~r])
    # the command line: the same table
    from plexloc.cli.main import main
    from plexloc.io.tables import read_table

    assert main(["fit", str(tmp_path / "m.tif"), "--model", str(tmp_path / "net.pt"), "--out", str(tmp_path / "r.csv"),
                 "--device", "cpu", "--refine-mle"]) == 0
    cli = read_table(tmp_path / "r.csv")
    np.testing.assert_allclose(np.asarray(cli["x_nm"]), np.asarray(out["x_nm"]), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(cli["refined"]), np.asarray(out["refined"]))
    # frames smaller than the MLE's fitting window: refused up front, the movie named
    write_movie(tmp_path / "tiny.tif", mov.frames[0].numpy().astype(np.uint16)[:, :8, :8])
    with pytest.raises(InputError, match="fitting window") as err:
        fit_movie(tmp_path / "tiny.tif", tmp_path / "net.pt", refine_mle=True)
    assert "tiny.tif" in str(err.value)
    save_model(tmp_path / "bare.pt", net, {}, meta={})
    with pytest.raises(InputError, match="training configuration"):
        fit_movie(tmp_path / "m.tif", tmp_path / "bare.pt", camera=IdealCameraConfig(), refine_mle=True)


def test_refits_pulled_by_a_missed_emitter_fail_the_core_deviance_test():
    """An emitter missing from the table next to a row pulls that row's refit off; the deviance of the pixels around
    the fitted emitter (chi-square, ``fit_pvalue``) notices and keeps the table's row, while a complete table's
    refits nearly all pass (the test's false alarms are about its p-value)."""
    fitter, photons, truth, start = _crowded_movie(2)
    frame = np.asarray(truth["frame"])
    x, y = np.asarray(truth["x_nm"]), np.asarray(truth["y_nm"])
    ph = np.asarray(truth["photons"])
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    close = (frame[:, None] == frame[None, :]) & (d > 100) & (d < 300) & (ph[None, :] > 0.7 * ph[:, None])
    victims, missed = [], set()
    for i, j in zip(*np.nonzero(close)):
        if i not in missed and j not in missed and i not in victims:
            victims.append(i)
            missed.add(j)
    keep = np.array([r not in missed for r in range(len(truth))])
    table, ref = start[keep], truth[keep]
    victim = np.isin(np.flatnonzero(keep), victims)
    assert victim.sum() >= 8
    without = refine_frames(fitter, photons, table, fit_pvalue=None)
    tested = refine_frames(fitter, photons, table)
    err = lambda t: np.hypot(np.asarray(t["x_nm"]) - np.asarray(ref["x_nm"]), np.asarray(t["y_nm"]) - np.asarray(ref["y_nm"]))  # noqa: E731
    was_refined = np.asarray(without["refined"]) == 1
    pulled = victim & was_refined & (err(without) > 60.0)
    assert pulled.sum() >= 4
    assert (np.asarray(tested["refined"])[pulled] == 0).mean() >= 0.75
    # every emitter in the table (the dim ones too): the test's false alarms are about its p-value
    cfg = _sim_config("3d_astigmatic.yaml", size=32, density=1.0)
    mov = Simulator(cfg).simulate_movie(48, generator=torch.Generator().manual_seed(5), margin_px=0)  # none outside
    photons = fitter.to_photons([mov.frames[0].numpy()])
    full = refine_frames(fitter, photons, mov.truth)
    full_without = refine_frames(fitter, photons, mov.truth, fit_pvalue=None)
    n_with, n_without = (np.asarray(full["refined"]) == 1).sum(), (np.asarray(full_without["refined"]) == 1).sum()
    assert n_without > 400 and n_with >= 0.99 * n_without
    assert np.isfinite(np.asarray(full["llr"])[np.asarray(full["refined"]) == 1]).all()


def _no_neighbour_within(table, reach_px: float, px_nm: float) -> np.ndarray:
    """Rows without another row of their frame within ``reach_px`` pixels in x and in y (no pair of windows)."""
    frame, x, y = (np.asarray(table[c]) for c in ("frame", "x_nm", "y_nm"))
    cheb = np.maximum(np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])) / px_nm
    cheb[frame[:, None] != frame[None, :]] = np.inf
    np.fill_diagonal(cheb, np.inf)
    return cheb.min(axis=1) > reach_px


def test_refined_bound_frees_the_overlapping_neighbours():
    """A refined row's CRLB is that of its emitter with its nearest neighbours' positions and photons free too: larger
    than the fit's own (neighbours held) where spots overlap, the same where the neighbours are far or absent."""
    fitter, photons, truth, start = _crowded_movie(3)
    held = refine_frames(fitter, photons, truth, joint_neighbours=0)
    joint = refine_frames(fitter, photons, truth)
    both = (np.asarray(held["refined"]) == 1) & (np.asarray(joint["refined"]) == 1)
    frame, x, y = (np.asarray(truth[c]) for c in ("frame", "x_nm", "y_nm"))
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    d[frame[:, None] != frame[None, :]] = np.inf
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1) / fitter.config.px_size_xy_nm[0]
    ratio = np.asarray(joint["crlb_x_nm"]) / np.asarray(held["crlb_x_nm"])
    close = both & (nearest < 2.5)
    assert close.sum() >= 10
    assert np.median(ratio[close]) > 1.2 and np.percentile(ratio[both], 1) > 0.97  # (the fit had the previous round's neighbours)
    with_sigma = refine_frames(fitter, photons, truth.with_columns(sigma_x_nm=np.full(len(truth), 500.0)))
    r = np.asarray(with_sigma["refined"]) == 1
    np.testing.assert_array_equal(np.asarray(with_sigma["sigma_x_nm"])[r], np.asarray(with_sigma["crlb_x_nm"])[r])
    # sparse frames: rows without a neighbour in their window keep the fit's own bound
    cfg = _sim_config("3d_astigmatic.yaml", size=32, density=0.1)
    mov = Simulator(cfg).simulate_movie(40, generator=torch.Generator().manual_seed(4))
    ph = fitter.to_photons([mov.frames[0].numpy()])
    t = mov.truth
    held, joint = refine_frames(fitter, ph, t, joint_neighbours=0), refine_frames(fitter, ph, t)
    alone = _no_neighbour_within(t, fitter.roi_px + 1, cfg.px_size_xy_nm[0]) & (np.asarray(joint["refined"]) == 1)
    assert alone.sum() >= 10
    np.testing.assert_allclose(np.asarray(joint["crlb_x_nm"])[alone], np.asarray(held["crlb_x_nm"])[alone], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(joint["crlb_z_nm"])[alone], np.asarray(held["crlb_z_nm"])[alone], rtol=1e-6)


def test_refined_bound_of_a_free_width_fit_is_at_the_fitted_width():
    """A 2D fit with a free PSF width: the refined rows' bound is taken at the fitted width (a PSF 30 % wider than
    the calibration), so a row without neighbours has the fit's own bound, not the one at the calibrated width."""
    cfg = _sim_config("2d_gaussian.yaml", size=48, density=0.3)
    wide = cfg.model_copy(deep=True)
    wide.channels[0].psf.sigma_nm = cfg.channels[0].psf.sigma_nm * 1.3
    mov = Simulator(wide).simulate_movie(20, generator=torch.Generator().manual_seed(1))
    fitter = MLEFitter(cfg, free_sigma=True)
    ph = fitter.to_photons([mov.frames[0].numpy()])
    t = mov.truth
    held, joint = refine_frames(fitter, ph, t, joint_neighbours=0), refine_frames(fitter, ph, t)
    alone = _no_neighbour_within(t, fitter.roi_px + 1, cfg.px_size_xy_nm[0]) & (np.asarray(joint["refined"]) == 1) & (np.asarray(held["refined"]) == 1)
    assert alone.sum() >= 10
    np.testing.assert_allclose(np.asarray(joint["crlb_x_nm"])[alone], np.asarray(held["crlb_x_nm"])[alone], rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["biplane_plex.yaml", "dual_color_plex.yaml", "3d_astigmatic.yaml"])
def test_cuda_refinement_matches_the_cpus(name):
    """refine_frames on CUDA (float32) against the CPU (float64): the same rows kept but for a few at a test's
    edge, the same positions and bounds (core deviance, joint bound, canvas of the other localizations)."""
    cfg = _sim_config(name, size=40, density=1.0)
    mov = Simulator(cfg).simulate_movie(16, generator=torch.Generator().manual_seed(7))
    truth = mov.truth[np.asarray(mov.truth["photons"]) >= 300]
    rng = np.random.default_rng(7)
    n = len(truth)
    start = truth.with_columns(x_nm=truth["x_nm"] + rng.normal(0, 20, n), y_nm=truth["y_nm"] + rng.normal(0, 20, n),
                               sigma_x_nm=np.full(n, 25.0), sigma_y_nm=np.full(n, 25.0), sigma_z_nm=np.full(n, 60.0))
    out = {}
    for dev in ("cpu", "cuda"):
        fitter = MLEFitter(cfg, device=dev)
        out[dev] = refine_frames(fitter, fitter.to_photons([f.numpy() for f in mov.frames]), start)
    r_cpu, r_gpu = (np.asarray(out[d]["refined"]) == 1 for d in ("cpu", "cuda"))
    assert n > 60 and r_cpu.mean() > 0.5
    assert (r_cpu == r_gpu).mean() > 0.97
    both = r_cpu & r_gpu
    for col, tol in (("x_nm", 1.0), ("y_nm", 1.0), ("z_nm", 5.0)):
        np.testing.assert_allclose(np.asarray(out["cuda"][col])[both], np.asarray(out["cpu"][col])[both], atol=tol)
    np.testing.assert_allclose(np.asarray(out["cuda"]["crlb_x_nm"])[both], np.asarray(out["cpu"]["crlb_x_nm"])[both], rtol=0.02)


def test_linked_refinement_splits_the_photons_over_the_channel_columns():
    """A linked (biplane) table that carries photons_chN (the simulator's truth does): a refined row's per-channel
    photons and their sigmas are its one photon parameter's shares, summing to the refined total; rows left alone
    keep theirs."""
    cfg = _sim_config("biplane_plex.yaml", size=32, density=0.3)
    mov = Simulator(cfg).simulate_movie(12, generator=torch.Generator().manual_seed(2))
    fitter = MLEFitter(cfg)
    assert fitter.linked
    truth = mov.truth
    n = len(truth)
    start = truth.with_columns(photons=np.asarray(truth["photons"]) * 1.3,
                               sigma_photons=np.full(n, 9.0), sigma_photons_ch0=np.full(n, 7.0), sigma_photons_ch1=np.full(n, 7.0))
    out = refine_frames(fitter, fitter.to_photons([f.numpy() for f in mov.frames]), start)
    r = np.asarray(out["refined"]) == 1
    assert n >= 10 and r.mean() > 0.5
    ch0, ch1, tot = (np.asarray(out[c]) for c in ("photons_ch0", "photons_ch1", "photons"))
    fr = np.array([ch.fraction for ch in fitter.fit_channels])
    np.testing.assert_allclose(ch0[r] + ch1[r], tot[r], rtol=1e-9)
    np.testing.assert_allclose(ch0[r] / tot[r], fr[0] / fr.sum(), rtol=1e-9)
    # the refit moved them off the start (30 % too bright) towards the truth
    true_ch0 = np.asarray(truth["photons_ch0"])
    assert np.median(np.abs(ch0[r] / true_ch0[r] - 1)) < 0.15
    sig = np.asarray(out["sigma_photons"])
    np.testing.assert_allclose(np.asarray(out["sigma_photons_ch0"])[r], sig[r] * fr[0] / fr.sum(), rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(out["photons_ch1"])[~r], np.asarray(start["photons_ch1"])[~r])
    assert (np.asarray(out["sigma_photons_ch1"])[~r] == 7.0).all()
