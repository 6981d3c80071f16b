"""``fit_movie`` end to end on simulated movies at 0.05 emitters/um² (the issue's bar), streaming,
multi-channel global fits and input errors.

The bar is measured on matched, *isolated* emitters (no other emitter within 1 um in the frame, those just
outside the field that the movie simulates too among them, and >= 500 nm from the frame edge, where the
single-emitter CRLB is the bound), after dropping fits whose
log-likelihood ratio says they are not one spot (chi-square p-value < 1e-3); the reference bound is
:func:`plexloc.evaluate.crlb.crlb` at the true parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from plexloc.config import load_config
from plexloc.errors import InputError
from plexloc.evaluate import match
from plexloc.evaluate.crlb import crlb
from plexloc.io.tiff import write_movie
from plexloc.mle import Candidates, MLEFitter, fit_movie, fit_movie_to_file
from plexloc.mle.pipeline import detection_noise_variance
from plexloc.post.channels import channel_config
from plexloc.simulation import Simulator
from plexloc.table import COLUMN_DOCS, LocTable

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _simulate(name: str, frames: int, tmp_path: Path, *, seed: int, photons=None, frame_size=None):
    """(config, simulator, truth, movie paths) of an example at 0.05 /um², flat background."""
    return _simulate_all(name, frames, tmp_path, seed=seed, photons=photons, frame_size=frame_size)[:4]


def _simulate_all(name: str, frames: int, tmp_path: Path, *, seed: int, photons=None, frame_size=None):
    """:func:`_simulate` and, last, every emitter of the movie: those just outside the field too, which light its
    edges and are neighbours of the emitters there (the truth keeps those inside)."""
    cfg = load_config(EXAMPLES / name)
    cfg.emitters.density_per_um2 = 0.05
    cfg.background.variation = 0.0
    if photons is not None:
        cfg.emitters.photons_range = photons
    if frame_size is not None:
        cfg.frame_size = frame_size
    sim = Simulator(cfg)
    movie = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    paths = []
    for c in range(movie.frames.shape[0]):
        p = tmp_path / f"movie_ch{c}.tif"
        write_movie(p, movie.frames[c].numpy())
        paths.append(p)
    return cfg, sim, movie.truth, paths, sim.truth_table(movie.emitters, inside_only=False)


def _scmos_movie(tmp_path: Path, camera: dict, shape, *, density, photons, bg, frames, seed):
    """A 2D Gaussian movie on the sCMOS ``camera`` written to ``tmp_path / 'm.tif'``: (config, simulated movie)."""
    from plexloc.config import validate_config
    from plexloc.config.models import SimulationConfig

    cfg = validate_config({"px_size_nm": 100.0, "frame_size": list(shape), "psf": {"kind": "gaussian", "sigma_nm": 130.0},
                           "camera": camera, "emitters": {"density_per_um2": density, "photons_range": photons},
                           "background": {"range": bg}}, SimulationConfig)
    movie = Simulator(cfg).simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    write_movie(tmp_path / "m.tif", movie.frames[0].numpy())
    return cfg, movie


def _isolated(truth: LocTable, rows: np.ndarray, fov_nm: tuple[float, float], *, radius_nm=1000.0, edge_nm=500.0,
              everyone: LocTable | None = None):
    """Which truth ``rows`` have no other emitter within ``radius_nm`` in their frame, among ``everyone`` (all
    the movie's emitters, those just outside the field too; default the truth), and lie ``edge_nm`` inside."""
    others_t = truth if everyone is None else everyone
    fr, x, y = truth["frame"], truth["x_nm"], truth["y_nm"]
    ofr, ox, oy = others_t["frame"], others_t["x_nm"], others_t["y_nm"]
    order = np.argsort(ofr, kind="stable")
    starts = np.searchsorted(ofr[order], fr[rows])
    stops = np.searchsorted(ofr[order], fr[rows], side="right")
    keep = np.ones(len(rows), bool)
    for i, (r, a, b) in enumerate(zip(rows, starts, stops)):
        others = order[a:b]
        d = np.hypot(ox[others] - x[r], oy[others] - y[r])
        keep[i] = np.sum(d < radius_nm) == 1
    w, h = fov_nm
    keep &= (x[rows] > edge_nm) & (y[rows] > edge_nm) & (x[rows] < w - edge_nm) & (y[rows] < h - edge_nm)
    return keep


def _scores(sim, truth, locs, *, dim, roi_px, n_params, fov_nm, detail=False, everyone=None):
    m = match(truth, locs, dim=dim)
    t = truth[m.tp_truth]
    p = locs[m.tp_pred]
    # each fit's own window (crowded spots get smaller ones): the table's roi_px, else the one given
    dof = (p["roi_px"] if "roi_px" in p.columns else roi_px) ** 2 * sim.n_channels - n_params
    keep = _isolated(truth, m.tp_truth, fov_nm, everyone=everyone) & (chi2.sf(p["llr"], dof) >= 1e-3)
    chans = [(ch.psf, ch.camera) for ch in sim.channels]
    opts = {}
    flux = t["photons"]
    if len(chans) > 1:
        opts = dict(
            transforms=[ch.transform for ch in sim.channels],
            z_offsets_nm=[ch.z_offset_nm for ch in sim.channels],
            photon_fractions=[ch.throughput for ch in sim.channels],
        )
        flux = flux / sum(ch.throughput for ch in sim.channels)
    sel = lambda a: torch.as_tensor(a[keep])  # noqa: E731
    b = crlb(chans, x_nm=sel(t["x_nm"]), y_nm=sel(t["y_nm"]), z_nm=sel(t["z_nm"]), photons=sel(flux), bg=sel(t["bg"]), **opts)
    out = {"n": int(keep.sum()), "jaccard": 100.0 * m.n_tp / (m.n_tp + m.n_fp + m.n_fn)}
    for ax, d in (("x", m.dx), ("y", m.dy), ("z", m.dz))[: 2 + (dim == 3)]:
        d = d[keep]
        out[f"ratio_{ax}"] = float(np.sqrt(np.mean(d**2)) / np.sqrt(np.mean(b[f"crlb_{ax}_nm"].numpy() ** 2)))
        out[f"bias_{ax}"] = float(d.mean())
        out[f"rmse_{ax}"] = float(np.sqrt(np.mean(d**2)))
        if detail:  # per-pair errors and bounds of the kept pairs (bench/mle_bars.py breaks them down)
            out[f"d_{ax}"], out[f"crlb_{ax}"] = d, b[f"crlb_{ax}_nm"].numpy()
    if detail:
        out["photons"], out["z_true"] = t["photons"][keep], t["z_nm"][keep]
    return out


def test_2d_gaussian_movie_meets_the_bar(tmp_path):
    """2D Gaussian, EMCCD, 0.05 /um², photons 1,000-10,000 per frame while on (blinking spreads them):
    RMSE / sqrt(mean CRLB²) <= 1.05 and |bias| < 1 nm over ~4,000 isolated emitters."""
    cfg, sim, truth, paths, everyone = _simulate_all("2d_gaussian.yaml", 2500, tmp_path, seed=11, photons=(1000.0, 10000.0))
    locs = fit_movie(paths[0], cfg, batch_frames=1000)
    fitter = MLEFitter(cfg)
    s = _scores(sim, truth, locs, dim=2, roi_px=fitter.roi_px, n_params=4, fov_nm=sim.fov_nm, everyone=everyone)
    assert s["n"] > 2500
    assert s["jaccard"] > 80
    for ax in "xy":
        assert s[f"ratio_{ax}"] <= 1.05, s
        assert abs(s[f"bias_{ax}"]) < 1.0, s
    # the table carries the documented columns
    for col in ("crlb_x_nm", "crlb_photons", "crlb_bg", "iterations", "converged", "loglik", "llr"):
        assert col in locs.columns and col in COLUMN_DOCS
    assert set(np.unique(locs["converged"])) <= {0.0, 1.0} and locs["converged"].mean() > 0.95
    assert np.all(np.isnan(locs["crlb_z_nm"])) and np.all(locs["z_nm"] == 0)


@pytest.mark.parametrize("frames", [3000, pytest.param(12000, marks=pytest.mark.slow)])
def test_3d_astigmatic_movie_meets_the_bar(tmp_path, frames):
    """3D astigmatic (examples/3d_astigmatic.yaml, flat background), 0.05 /um²: RMSE / CRLB <= 1.05 on
    every axis, |bias| < 1 nm laterally; axially < 1 nm at 12,000 frames (< 2 nm at 3,000, where the
    standard error of the mean is ~0.9 nm). The z bounds are the configured emitter range: with 250 nm
    wider bounds the axial ratio was 1.06 at 12,000 frames (dim spots fitted into the likelihood's
    other branch beyond the range).

    The 1.05 bar holds at 12,000 frames (1.005 / 0.988 / 1.018). One 3,000-frame movie cannot hold it: seeds 12-15
    gave 0.98-1.074 on single axes (a few hundred outlying fits carry the RMSE), so the fast run asserts 1.10."""
    cfg, sim, truth, paths, everyone = _simulate_all("3d_astigmatic.yaml", frames, tmp_path, seed=12)
    locs = fit_movie(paths[0], cfg, batch_frames=1000)
    fitter = MLEFitter(cfg)
    assert fitter.z_range_nm == tuple(cfg.emitters.z_range_nm)
    s = _scores(sim, truth, locs, dim=3, roi_px=fitter.roi_px, n_params=5, fov_nm=sim.fov_nm, everyone=everyone)
    assert s["n"] > frames
    bar = 1.05 if frames >= 12000 else 1.10
    assert s["ratio_x"] <= bar and s["ratio_y"] <= bar and s["ratio_z"] <= bar, s
    assert abs(s["bias_x"]) < 1.0 and abs(s["bias_y"]) < 1.0, s
    assert abs(s["bias_z"]) < (1.0 if frames >= 12000 else 2.0), s
    assert locs["z_nm"].min() >= -500.0 and locs["z_nm"].max() <= 500.0


def test_default_window_is_full_for_isolated_spots_and_shrinks_for_crowded_ones():
    """examples/3d_astigmatic.yaml: 19 px (+-3.5 sigma of the widest PSF in the z range, 2.55 px at |z| = 500 nm)
    for an isolated spot; a spot with another detection of its frame d px away (Chebyshev) gets half-width
    d - 4 (1.5 sigma of the widest PSF, rounded up), never below 7 px. A window given by the caller is used for
    every spot."""
    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml")
    f = MLEFitter(cfg)
    assert (f.roi_px, f.min_roi_px, f.crowded_gap_px) == (19, 7, 4)
    # frame 0: a close pair (d = 3) and a far spot; frame 1: a pair 10 px apart; frame 2: a lone spot where
    # frame 0 had its pair (other frames do not count)
    cand = Candidates(frame=np.array([0, 0, 0, 1, 1, 2]), row=np.array([10, 13, 45, 10, 20, 10]),
                      col=np.array([10, 12, 45, 10, 14, 10]), height=np.ones(6))
    assert f.window_sizes(cand).tolist() == [7, 7, 19, 13, 13, 19]
    assert MLEFitter(cfg, roi_px=19).window_sizes(cand).tolist() == [19] * 6
    assert MLEFitter(cfg, roi_px=19, min_roi_px=7).window_sizes(cand).tolist() == [7, 7, 19, 13, 13, 19]
    f2d = MLEFitter(load_config(EXAMPLES / "2d_gaussian.yaml"))
    assert (f2d.roi_px, f2d.min_roi_px, f2d.crowded_gap_px) == (11, 7, 2)
    with pytest.raises(InputError, match="min_roi_px"):
        MLEFitter(cfg, min_roi_px=8)


def test_crowded_movie_fits_better_with_the_default_windows(tmp_path):
    """3D astigmatic at 1 emitter/um² (bench/RESULTS.md, 2026-12-04: one 19-px window for every spot absorbs the
    neighbours): the default (smaller windows for crowded spots) matches more emitters, more accurately, and
    reports each fit's window; rows stay in frame order."""
    cfg, sim, truth, paths = _simulate("3d_astigmatic.yaml", 60, tmp_path, seed=18)
    cfg.emitters.density_per_um2 = 1.0
    sim = Simulator(cfg)
    movie = sim.simulate_movie(60, generator=torch.Generator().manual_seed(18))
    write_movie(paths[0], movie.frames[0].numpy())
    truth = movie.truth[movie.truth["photons"] >= 500.0]
    adaptive = fit_movie(paths[0], cfg)
    fixed = fit_movie(paths[0], cfg, roi_px=19)
    ma, mf = match(truth, adaptive, dim=3), match(truth, fixed, dim=3)
    ji = lambda m: 100.0 * m.n_tp / (m.n_tp + m.n_fp + m.n_fn)  # noqa: E731
    rmse = lambda m: float(np.sqrt(np.mean(m.dx**2 + m.dy**2)))  # noqa: E731
    assert ji(ma) > ji(mf) + 5.0, (ji(ma), ji(mf))
    assert rmse(ma) < 0.9 * rmse(mf), (rmse(ma), rmse(mf))
    sizes = set(adaptive["roi_px"].astype(int).tolist())
    assert 19 in sizes and min(sizes) == 7 and all(s % 2 == 1 for s in sizes)
    assert np.all(fixed["roi_px"] == 19) and np.all(np.diff(adaptive["frame"]) >= 0)


def test_streaming_gives_the_same_table_for_any_chunk_size(tmp_path):
    cfg, sim, truth, paths = _simulate("2d_gaussian.yaml", 60, tmp_path, seed=13, frame_size=(40, 48))
    a = fit_movie(paths[0], cfg, batch_frames=60)
    b = fit_movie(paths[0], cfg, batch_frames=7, threshold_photons=None)
    assert len(a) > 20 and len(a) == len(b)
    np.testing.assert_allclose(a["x_nm"], b["x_nm"], atol=1e-3)
    assert np.all(np.diff(b["frame"]) >= 0)
    # written batch by batch (plexloc fit --method mle): the file of the whole table
    from plexloc.io import read_table, write_table

    n = fit_movie_to_file(paths[0], cfg, tmp_path / "streamed.csv", batch_frames=7)
    write_table(b, tmp_path / "whole.csv")
    assert n == len(b) and (tmp_path / "streamed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    blank = tmp_path / "blank.tif"
    write_movie(blank, np.full((3, 40, 48), 100, np.uint16))
    assert fit_movie_to_file(blank, cfg, tmp_path / "blank.h5") == 0
    assert read_table(tmp_path / "blank.h5").columns == a.columns


def test_free_sigma_option_reports_the_width(tmp_path):
    """A movie whose PSF is 20 nm wider than the configuration's: the free-width fit reports the movie's width,
    the fixed-width one has no such column."""
    cfg, sim, truth, paths = _simulate("2d_gaussian.yaml", 100, tmp_path, seed=14)
    wide = cfg.model_copy(deep=True)
    wide.channels[0].psf.sigma_nm = 150.0
    movie = Simulator(wide).simulate_movie(100, generator=torch.Generator().manual_seed(14))
    write_movie(paths[0], movie.frames[0].numpy())
    locs = fit_movie(paths[0], cfg, free_sigma=True)  # the configuration still says 130 nm
    bright = locs["photons"] > 2000
    assert abs(np.median(locs["psf_sigma_x_nm"][bright]) - 150.0) < 4.0
    assert abs(np.median(locs["psf_sigma_y_nm"][bright]) - 150.0) < 4.0
    assert "psf_sigma_x_nm" not in fit_movie(paths[0], cfg).columns


def test_bad_inputs_are_clear_errors(tmp_path):
    cfg, sim, truth, paths = _simulate("2d_gaussian.yaml", 5, tmp_path, seed=15, frame_size=(32, 32))
    with pytest.raises(InputError, match="channel"):
        fit_movie([paths[0], paths[0]], cfg)
    with pytest.raises(InputError, match="not found"):
        fit_movie(tmp_path / "missing.tif", cfg)
    with pytest.raises(InputError, match="larger than the frame"):
        fit_movie(paths[0], cfg, roi_px=41)
    # a chunk without a single pixel above the threshold gives no rows, not an error
    blank = tmp_path / "blank.tif"
    write_movie(blank, np.full((3, 32, 32), 100, np.uint16))
    assert len(fit_movie(blank, cfg)) == 0
    # the configuration's frame size (e.g. a 16-px training ROI) does not limit the window: the movie's does
    small = cfg.model_copy(update={"frame_size": (16, 16)})
    assert len(fit_movie(paths[0], small, roi_px=21)) == len(fit_movie(paths[0], cfg, roi_px=21))


def test_biplane_global_fit_beats_each_channel_and_reaches_the_joint_crlb(tmp_path):
    """Biplane (examples/biplane.yaml: two planes 500 nm apart, an affine residual transform, linked
    photons): the global fit's RMSE_ax is lower than that of fitting either channel alone and within
    1.1x of the two-channel CRLB (lateral checked at 1.1x too)."""
    cfg, sim, truth, paths, everyone = _simulate_all("biplane.yaml", 1500, tmp_path, seed=16)
    locs = fit_movie(paths, cfg, batch_frames=500)
    fitter = MLEFitter(cfg)
    s = _scores(sim, truth, locs, dim=3, roi_px=fitter.roi_px, n_params=6, fov_nm=sim.fov_nm, everyone=everyone)
    assert s["n"] > 900
    assert s["ratio_z"] <= 1.10, s
    assert s["ratio_x"] <= 1.10 and s["ratio_y"] <= 1.10, s
    assert {"photons_ch0", "photons_ch1", "bg_ch0", "bg_ch1"} <= set(locs.columns)
    np.testing.assert_allclose(locs["photons_ch0"] + locs["photons_ch1"], locs["photons"], rtol=1e-9)
    for c in (0, 1):
        alone = channel_config(cfg, c)  # its own image coordinates, focal plane and z range
        single = fit_movie(paths[c], alone, batch_frames=500)
        # back to reference coordinates: inverse transform laterally, focal offset axially
        t_inv = np.linalg.inv(np.asarray(cfg.channels[c].transform))
        xh = t_inv @ np.stack([single["x_nm"], single["y_nm"], np.ones(len(single))])
        single = single.with_columns(x_nm=xh[0] / xh[2], y_nm=xh[1] / xh[2], z_nm=single["z_nm"] + cfg.channels[c].z_offset_nm)
        m = match(truth, single, dim=3)
        rmse_ax = float(np.sqrt(np.mean(m.dz**2)))
        assert s["rmse_z"] < rmse_ax, (c, s["rmse_z"], rmse_ax)


@pytest.mark.gpu
def test_cuda_fit_matches_cpu(tmp_path):
    cfg, sim, truth, paths = _simulate("3d_astigmatic.yaml", 40, tmp_path, seed=17, frame_size=(48, 48))
    cpu = fit_movie(paths[0], cfg, device="cpu")
    gpu = fit_movie(paths[0], cfg, device="cuda")
    assert len(cpu) > 10 and len(gpu) == len(cpu)
    np.testing.assert_allclose(gpu["x_nm"], cpu["x_nm"], atol=0.5)
    np.testing.assert_allclose(gpu["z_nm"], cpu["z_nm"], atol=3.0)


def test_scmos_maps_through_the_pipeline_and_camera_override(tmp_path):
    """sCMOS with per-pixel maps (npy files): the windows carry the maps (Huang et al. weighting);
    overriding the camera with a flat one of the median noise gives a worse RMSE on the same movie."""
    from plexloc.config.models import SCMOSConfig

    rng = np.random.default_rng(0)
    shape = (40, 40)
    read = np.where(rng.uniform(size=shape) < 0.15, 25.0, 1.5).astype(np.float32)
    np.save(tmp_path / "read.npy", read)
    np.save(tmp_path / "gain.npy", rng.uniform(0.45, 0.55, shape).astype(np.float32))
    np.save(tmp_path / "offset.npy", rng.uniform(95, 105, shape).astype(np.float32))
    cam = {"kind": "scmos", "qe": 0.8, "e_per_adu": str(tmp_path / "gain.npy"),
           "baseline": str(tmp_path / "offset.npy"), "read_sigma": str(tmp_path / "read.npy")}
    cfg, movie = _scmos_movie(tmp_path, cam, shape, density=0.1, photons=[800.0, 3000.0], bg=[5.0, 15.0],
                              frames=1500, seed=18)
    seen: dict = {}
    good = fit_movie(tmp_path / "m.tif", cfg, stats=seen)
    flat = SCMOSConfig(qe=0.8, e_per_adu=str(tmp_path / "gain.npy"), baseline=str(tmp_path / "offset.npy"),
                       read_sigma=float(np.median(read)))
    import warnings

    from plexloc.camera import CameraWarning

    flat_seen: dict = {}
    with warnings.catch_warnings():  # at the edge of the accepted range: a warning or not
        warnings.simplefilter("ignore", CameraWarning)
        bad = fit_movie(tmp_path / "m.tif", cfg, camera=flat, stats=flat_seen)
    # the camera check sees the flat map miss the noisy pixels (1.33 against 1.01; a check made for gains, it reads a
    # read-noise map wrong on 15 % of the pixels at about the edge of its accepted range, 1.35)
    assert seen["camera"].channels[0].noise_ratio < 1.1 and flat_seen["camera"].channels[0].noise_ratio > 1.25
    rmse = {}
    for name, locs in (("maps", good), ("flat", bad)):
        m = match(movie.truth, locs, dim=2)
        rmse[name] = float(np.sqrt(np.mean(m.dx**2 + m.dy**2)))
    assert rmse["maps"] < 0.95 * rmse["flat"], rmse


def test_linked_channels_photons_add_up_to_the_total(tmp_path):
    """Quad-plane (four planes of throughput 1): each plane's photons_chN is its share of the fitted total; they
    were each the total (4x too large: the share times the throughputs' sum again)."""
    cfg, sim, truth, paths = _simulate("quad_plane.yaml", 12, tmp_path, seed=2)
    locs = fit_movie(paths, cfg)
    assert len(locs) > 5
    chans = np.stack([locs[f"photons_ch{c}"] for c in range(4)], 1)
    np.testing.assert_allclose(chans.sum(1), locs["photons"], rtol=1e-6)
    np.testing.assert_allclose(chans / locs["photons"][:, None], 0.25, rtol=1e-6)
    # the truth's convention
    np.testing.assert_allclose(truth["photons_ch0"] / truth["photons"], 0.25, rtol=1e-6)


def test_low_background_emccd_frames_give_no_false_spots(tmp_path):
    """EMCCD at 1-2 photons/px: single pixels are so skewed that the frame median (0.33 at 1 photon/px) understated
    the noise and the 6-sigma threshold acted at about 3.6 sigma: precision 67 % on this movie, 97 % now."""
    cfg = load_config(EXAMPLES / "2d_gaussian.yaml")
    cfg.emitters.density_per_um2 = 0.05
    cfg.background.range = (1.0, 2.0)
    movie = Simulator(cfg).simulate_movie(150, generator=torch.Generator().manual_seed(1))
    write_movie(tmp_path / "m.tif", movie.frames[0].numpy())
    locs = fit_movie(tmp_path / "m.tif", cfg)
    m = match(movie.truth, locs, dim=2)
    precision = m.n_tp / max(len(locs), 1)
    recall = m.n_tp / max(len(movie.truth), 1)
    assert precision > 0.9 and recall > 0.9, (precision, recall, len(locs), len(movie.truth))


def test_noisy_scmos_pixels_raise_the_threshold_around_them(tmp_path):
    """A 9x4 patch of 40 e- read noise on an otherwise quiet sCMOS (1.5 e-): the detection threshold follows each
    pixel's noise, so the patch makes no spots (with the map's median noise it made about 2 per frame)."""
    shape = (40, 40)
    read = np.full(shape, 1.5, np.float32)
    read[10:19, 20:24] = 40.0
    np.save(tmp_path / "read.npy", read)
    cam = {"kind": "scmos", "qe": 0.8, "e_per_adu": 0.5, "baseline": 100.0, "read_sigma": str(tmp_path / "read.npy")}
    cfg, movie = _scmos_movie(tmp_path, cam, shape, density=0.05, photons=[2000.0, 4000.0], bg=[10.0, 10.0],
                              frames=300, seed=4)
    locs = fit_movie(tmp_path / "m.tif", cfg)
    m = match(movie.truth, locs, dim=2)
    fp = np.setdiff1d(np.arange(len(locs)), m.tp_pred)
    in_patch = (locs["y_nm"][fp] > 800) & (locs["y_nm"][fp] < 2100) & (locs["x_nm"][fp] > 1800) & (locs["x_nm"][fp] < 2600)
    assert int(in_patch.sum()) < 15, int(in_patch.sum())  # was about 2 per frame
    assert m.n_tp / len(movie.truth) > 0.9


def test_split_view_movie_and_the_roi_offset_from_metadata(tmp_path):
    """``plexloc fit --method mle`` on one split-view TIFF (the configuration's boxes, channel 1 mirrored) gives the
    table of one TIFF per channel; the camera ROI in the movie's Micro-Manager metadata places the frames on the chip
    (the transforms act there), as an explicit ``roi_offset_px`` does. Before, a split-view movie was refused
    ('2 channel(s) but 1 movie(s)') and the metadata were not read (the configuration's offset was used)."""
    from test_io_roi import write_mm_stack

    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import join_frames
    from plexloc.io.tables import read_table
    from plexloc.io.tiff import read_movie
    from plexloc.mle import fit_movie_to_file

    cfg, sim, truth, paths = _simulate("biplane.yaml", 30, tmp_path, seed=5, frame_size=(32, 32))
    cfg.channels[1].transform = [[0.998, -0.035, 40.0], [0.035, 0.998, -20.0], [0.0, 0.0, 1.0]]  # 2 degrees
    chans = np.stack([read_movie(p) for p in paths], axis=1)  # (T, 2, 32, 32)
    split = SplitViewConfig(boxes=[(0, 0, 32, 32), (40, 0, 32, 32)], flip=["none", "x"])
    write_movie(tmp_path / "split.tif", join_frames(chans, split, (32, 72)))
    plain: dict = {}
    fit_movie_to_file(paths, cfg, tmp_path / "plain.csv", stats=plain)
    per_channel = read_table(tmp_path / "plain.csv")
    assert len(per_channel) > 5
    # no metadata, no roi_offset_px in the configuration: said as the network's fit says it (session 46: it named
    # "the configuration's roi_offset_px", which the configuration did not have)
    assert "roi_offset_px" not in cfg.model_fields_set and plain["roi_offset_px"] == (0, 0)
    assert plain["roi_offset_source"].startswith("default (0, 0): no ROI position in the metadata of ")
    joined = fit_movie(tmp_path / "split.tif", cfg.model_copy(update={"split_view": split}))
    np.testing.assert_allclose(joined["x_nm"], per_channel["x_nm"], atol=1e-6)
    np.testing.assert_allclose(joined["z_nm"], per_channel["z_nm"], atol=1e-6)
    mm = []
    for c in range(2):
        mm.append(write_mm_stack(tmp_path / f"mm{c}.tif", chans[:, c], summary={}, image_meta={"ROI": "300-200-32-32"}))
    stats: dict = {}

    # the movie was simulated without the rotation: at (300, 200) the channel check sees channel 1 ~10 px off
    from plexloc.calibrate.alignment import ChannelAlignmentWarning

    with pytest.warns(ChannelAlignmentWarning, match="does not line up"):
        fit_movie_to_file(mm, cfg, tmp_path / "meta.csv", stats=stats)
    assert stats["roi_offset_px"] == (300, 200) and "metadata" in stats["roi_offset_source"]
    meta = read_table(tmp_path / "meta.csv")
    with pytest.warns(ChannelAlignmentWarning, match="does not line up"):
        given = fit_movie(paths, cfg, roi_offset_px=(300, 200))
    np.testing.assert_allclose(meta["x_nm"], given["x_nm"], atol=0.01)
    # the offset matters: the 2-degree transform moves channel 1 by about 1 um at chip pixel (300, 200)
    assert len(given) != len(per_channel) or np.abs(given["x_nm"] - per_channel["x_nm"]).max() > 1.0


def test_an_ideal_camera_movie_gets_a_finite_detection_threshold(tmp_path):
    """An ideal camera's noise variance is its input: the expanded background level itself, whose median torch
    (2.13, CPU) returned as NaN, so no spot passed the threshold and a photon movie gave 0 rows."""
    from plexloc.config import SimulationConfig, validate_config

    cfg = validate_config({
        "px_size_nm": 100.0, "frame_size": [32, 32], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"},
        "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 2500.0], "z_range_nm": [0.0, 0.0]},
        "background": {"range": [10.0, 10.0]},
    }, SimulationConfig)
    sim = Simulator(cfg)
    m = sim.simulate_movie(20, generator=torch.Generator().manual_seed(0))
    fitter = MLEFitter(cfg)
    photons = fitter.to_photons([m.frames[0].numpy()])
    var = detection_noise_variance(photons[0], fitter.channels[0].camera, fitter.sigma_px)
    assert torch.isfinite(var).all() and 9.0 < float(var.median()) < 14.0  # Poisson: the ~10 photons/px background
    write_movie(tmp_path / "m.tif", np.round(m.frames[0].numpy()))
    table = fit_movie(tmp_path / "m.tif", cfg)
    truth = m.truth
    assert len(table) > 0.5 * len(truth)  # 123 of 181 (crowded, partly on, at edges); 0 before


def test_fits_left_out_are_counted_by_reason(tmp_path, capsys):
    """No row leaves silently: on a crowded movie some fits run out of their window; stats count every fit made and
    every one left out by reason (fits = rows + dropped), and plexloc fit --method mle says how many and why."""
    cfg, sim, truth, paths = _simulate("2d_gaussian.yaml", 40, tmp_path, seed=21)
    cfg.emitters.density_per_um2 = 2.0
    movie = Simulator(cfg).simulate_movie(40, generator=torch.Generator().manual_seed(21))
    write_movie(paths[0], movie.frames[0].numpy())
    stats: dict = {}
    n = fit_movie_to_file(paths[0], cfg, tmp_path / "locs.csv", stats=stats, min_llr_pvalue=1e-6)
    dropped = stats["dropped"]
    assert set(dropped) == {"outside_window", "not_finite", "goodness_of_fit"}
    assert stats["fits"] == n + sum(dropped.values())
    assert dropped["outside_window"] > 0 and dropped["goodness_of_fit"] > 0, dropped
    from plexloc.cli.main import main

    cfg_path = tmp_path / "cfg.yaml"
    from plexloc.config import save_config

    save_config(cfg, cfg_path)
    assert main(["fit", str(paths[0]), "--method", "mle", "--config", str(cfg_path), "--out", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    assert "fits left out:" in err and "left the fitting window" in err
