"""The PSF-shape check (plexloc.psf.check): the spots' widths against the model's PSF, silent when they fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from plexloc.config import SimulationConfig, validate_config
from plexloc.errors import InputError
from plexloc.psf import GaussianPSF
from plexloc.psf.check import PSFShapeWarning, check_psf_shape, check_psf_shapes, fit_elliptical_gaussian
from plexloc.psf.functional import gaussian_patches
from plexloc.simulation import Simulator

EMCCD = {"kind": "emccd", "qe": 0.9, "spurious_charge": 0.002, "em_gain": 300.0, "e_per_adu": 45.0, "baseline": 100.0,
         "read_sigma": 74.4}
PSF_2D = {"kind": "gaussian", "sigma_nm": 130.0}
PSF_3D = {"kind": "astigmatic", "s0_nm": [120.0, 120.0], "c_nm": [-250.0, 250.0], "d_nm": 400.0}


def config(psf: dict, *, px: float = 100.0, z=(0.0, 0.0), size: int = 64) -> SimulationConfig:
    return validate_config({
        "px_size_nm": px, "frame_size": [size, size], "psf": psf, "camera": EMCCD,
        "emitters": {"density_per_um2": 0.5, "photons_range": [1000.0, 8000.0], "on_time_frames": 2.0, "z_range_nm": list(z)},
        "background": {"range": [20.0, 100.0]},
    }, SimulationConfig)


def movie(cfg: SimulationConfig, *, frames: int = 60, seed: int = 0, density: float = 0.5) -> torch.Tensor:
    sim = Simulator(cfg)
    m = sim.simulate_movie(frames, generator=torch.Generator().manual_seed(seed), density_per_um2=density)
    return sim.to_photons(m.frames)[0]


def run(frames, cfg: SimulationConfig, **kw):
    sim = Simulator(cfg)
    ch = sim.channels[0]
    kw.setdefault("max_spots", 150)  # small and quick; the bench measures with the defaults
    return check_psf_shape(frames, ch.psf, z_range_nm=cfg.emitters.z_range_nm, z_offset_nm=ch.z_offset_nm,
                           camera=ch.camera, **kw)


def test_elliptical_fit_recovers_widths():
    """Noiseless windows: the fit returns the rendered widths (the model it fits is the rendered one)."""
    n, R = 6, 11
    sx = torch.tensor([0.8, 1.0, 1.3, 1.6, 2.0, 2.5], dtype=torch.float64)
    sy = torch.tensor([2.2, 1.0, 1.3, 1.1, 1.4, 0.9], dtype=torch.float64)
    x = torch.full((n,), 5.3, dtype=torch.float64)
    y = torch.full((n,), 5.7, dtype=torch.float64)
    patch, _, _ = gaussian_patches(x, y, sx, sy, torch.full((n,), 3000.0, dtype=torch.float64), (R, R))
    fit = fit_elliptical_gaussian(patch + 50.0, sigma0_px=1.3)
    assert fit.ok.all()
    np.testing.assert_allclose(fit.sx, sx.numpy(), rtol=1e-3)
    np.testing.assert_allclose(fit.sy, sy.numpy(), rtol=1e-3)
    np.testing.assert_allclose(fit.bg, 50.0, rtol=1e-3)
    np.testing.assert_allclose(fit.x, 5.3, atol=1e-3)  # the patch starts at pixel floor(5.3) - R // 2 = 0
    assert (fit.crlb_sx > 0).all() and (fit.crlb_sy > 0).all()


def test_elliptical_fit_noisy_scatter_matches_crlb():
    """Poisson windows: widths unbiased to 2 %, their spread about the Cramér-Rao bound the fit reports."""
    g = torch.Generator().manual_seed(1)
    n, R = 400, 11
    x = 5.0 + torch.rand(n, generator=g, dtype=torch.float64)
    y = 5.0 + torch.rand(n, generator=g, dtype=torch.float64)
    sx, sy = torch.full((n,), 1.2, dtype=torch.float64), torch.full((n,), 1.8, dtype=torch.float64)
    patch, _, _ = gaussian_patches(x, y, sx, sy, torch.full((n,), 4000.0, dtype=torch.float64), (R, R))
    fit = fit_elliptical_gaussian(torch.poisson(patch + 30.0, generator=g), sigma0_px=1.3)
    assert fit.ok.mean() > 0.97
    f = fit.select(fit.ok)
    assert abs(np.median(f.sx) / 1.2 - 1) < 0.02 and abs(np.median(f.sy) / 1.8 - 1) < 0.02
    assert 0.8 < np.std(f.sx) / np.median(f.crlb_sx) < 1.25
    assert 0.8 < np.std(f.sy) / np.median(f.crlb_sy) < 1.25


def test_correct_2d_model_is_silent_and_measures_the_width():
    cfg = config(PSF_2D)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run(movie(cfg), cfg)
    assert r.warning is None and r.enough and r.n_spots >= 100
    mx, my = r.median_sigma_nm
    assert abs(mx - 130) < 8 and abs(my - 130) < 8
    # seeds 0-4: 0.07-0.16 far (the model's own spots in frames as crowded: 0.12-0.19, the warning's baseline)
    assert r.far_fraction < 0.2
    assert abs(r.width_scale - 1.0) < 0.08


def test_correct_3d_model_is_silent_and_spans_its_z_range():
    cfg = config(PSF_3D, z=(-500.0, 500.0))
    r = run(movie(cfg), cfg)
    assert r.warning is None and r.n_spots >= 100
    assert r.far_fraction < 0.2
    lo, hi = r.ellipticity_range
    assert lo < 0.65 and hi > 1.5  # the astigmatic spots, measured elongated both ways
    assert r.z_iqr_nm > 300  # spread over the z range (uniform over 1000 nm: IQR ~500)
    (xl, xh), _ = r.model_sigma_range_nm
    assert 115 < xl < 135 and 230 < xh < 280  # the model's own curve: 120 nm in focus, 255 nm at z = 500


def test_2d_model_on_3d_movie_warns_elongated():
    frames = movie(config(PSF_3D, z=(-500.0, 500.0)))
    with pytest.warns(PSFShapeWarning, match=r"elongated: sigma_x/sigma_y spans .*round \(2D\)|elongated.*is round"):
        r = run(frames, config(PSF_2D))
    assert r.far_fraction > 0.6
    assert "3D" in r.warning


def test_wrong_pixel_size_warns_with_the_width_ratio():
    """A 160-nm-pixel movie against a 100-nm model: spots 0.62x the model's width in pixels."""
    frames = movie(config(PSF_2D, px=160.0))
    with pytest.warns(PSFShapeWarning, match=r"narrower than the model's PSF.*px_size_nm"):
        r = run(frames, config(PSF_2D, px=100.0), movie_px_size_nm=(160.0, 160.0))
    assert r.far_fraction > 0.9
    assert abs(r.width_scale - 130 / 160 / 1.3) < 0.07  # 0.625
    assert "metadata say 160" in r.warning
    mx, _ = r.median_sigma_nm  # in the model's (wrong) nm: 130 nm / 1.6
    assert abs(mx - 81) < 8


def test_wider_spots_than_the_model_warn():
    """A 100-nm movie against a 160-nm model: spots 1.6x as wide as its PSF."""
    frames = movie(config(PSF_2D, px=100.0))
    with pytest.warns(PSFShapeWarning, match=r"wider than the model's PSF"):
        r = run(frames, config(PSF_2D, px=160.0))
    assert abs(r.width_scale - 1.6) < 0.12


def test_3d_model_on_2d_movie_is_reported_not_warned():
    frames = movie(config(PSF_2D))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run(frames, config(PSF_3D, z=(-500.0, 500.0)))
    assert r.warning is None
    assert r.z_iqr_nm < 150  # every spot at one z
    assert r.note is not None and "near z =" in r.note


def test_too_few_spots_is_reported_not_warned():
    g = torch.Generator().manual_seed(0)
    frames = torch.poisson(torch.full((20, 64, 64), 50.0), generator=g)
    frames[:, 30:35, 30:35] += 200.0  # one bright blob per frame, of the wrong shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = check_psf_shape(frames, GaussianPSF(sigma_nm=130.0), min_spots=30)
    assert r.warning is None and not r.enough and r.n_spots < 30
    assert r.note.startswith("too few spots")


def test_check_psf_shapes_from_a_configuration():
    cfg = config(PSF_2D)
    frames = movie(cfg, frames=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (r,) = check_psf_shapes([frames], cfg)
    assert r.channel is None and r.warning is None and r.n_spots >= 50
    with pytest.warns(PSFShapeWarning):
        (r,) = check_psf_shapes([movie(config(PSF_2D, px=160.0), frames=60)], cfg)
    assert "px_size_nm" in r.warning and r.as_dict()["far_fraction"] > 0.9


def test_bad_input_is_named():
    psf = GaussianPSF(sigma_nm=130.0)
    with pytest.raises(InputError, match=r"frames_photons must be \(T, H, W\)"):
        check_psf_shape(torch.zeros(2, 3, 16, 16), psf)
    with pytest.raises(InputError, match="z_range_nm"):
        check_psf_shape(torch.zeros(2, 16, 16), psf, z_range_nm=(100.0, -100.0))
    with pytest.raises(InputError, match="one per channel"):
        check_psf_shapes([torch.zeros(2, 16, 16)] * 2, config(PSF_2D))


def _astigmatic_movie_file(tmp_path) -> str:
    """An astigmatic movie (ADU, the tests' EMCCD) written as a TIFF: 100 frames of 64x64 at 0.5 emitters/um^2."""
    from plexloc.io.tiff import write_movie

    sim = Simulator(config(PSF_3D, z=(-500.0, 500.0)))
    m = sim.simulate_movie(100, generator=torch.Generator().manual_seed(3), density_per_um2=0.5)
    path = tmp_path / "astigmatic.tif"
    write_movie(path, np.clip(np.round(m.frames[0].numpy()), 0, 65535))
    return str(path)


def test_mle_fit_checks_the_spot_shape(tmp_path):
    """The MLE fit with a 2D Gaussian PSF on an astigmatic movie said nothing; it now warns before fitting and
    carries the report; with the movie's own (astigmatic) PSF it stays silent."""
    from plexloc.mle import fit_movie

    path = _astigmatic_movie_file(tmp_path)
    stats: dict = {}
    with pytest.warns(PSFShapeWarning, match=r"astigmatic\.tif.*elongated.*3D"):
        fit_movie(path, config(PSF_2D), stats=stats)
    (rep,) = stats["psf_shape"]
    assert rep.far_fraction > 0.6 and rep.n_spots >= 30 and rep.warning
    stats = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFShapeWarning)
        fit_movie(path, config(PSF_3D, z=(-500.0, 500.0)), stats=stats)
    (rep,) = stats["psf_shape"]
    assert rep.far_fraction < 0.3 and rep.warning is None


def test_network_fit_checks_the_spot_shape_against_the_models_psf(tmp_path):
    """A 2D model (its training configuration) fitting an astigmatic movie: the fit warns and reports; the check
    looks at the movie, not at what the (here untrained) network makes of it."""
    from plexloc.config import TrainConfig
    from plexloc.infer import fit_movie
    from plexloc.nets import Localizer, LocalizerSpec

    path = _astigmatic_movie_file(tmp_path)
    torch.manual_seed(0)
    net = Localizer(LocalizerSpec(features=4, depth=1, union_features=4, union_depth=1)).eval()
    cfg = validate_config(config(PSF_2D).model_dump(mode="json"), TrainConfig).model_dump(mode="json")
    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained network's photons and background (training-domain notes)
        warnings.simplefilter("error", PSFShapeWarning)
        with pytest.raises(PSFShapeWarning, match=r"elongated"):
            fit_movie(path, net, config=cfg, stats=stats)
    stats = {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fit_movie(path, net, config=cfg, stats=stats)
    assert any(issubclass(w.category, PSFShapeWarning) for w in seen)
    (rep,) = stats["psf_shape"]
    assert rep.far_fraction > 0.6 and rep.psf_kind


def test_movie_reading_copies_windows_and_reads_large_frames_a_few_at_a_time(monkeypatch):
    """The central window of each chunk was kept as a view, which kept the chunk's whole frames alive to the end
    (a 2048 x 2048 two-channel movie: 3.2 GB held for 0.2 GB of windows); whole frames are now read at most
    CHUNK_PIXELS at a time and every earlier chunk is freed when the next is read."""
    import gc
    import weakref

    import plexloc.psf.check as check

    monkeypatch.setattr(check, "CHUNK_PIXELS", 3 * 40 * 40)
    cfg = config(PSF_2D, size=40)
    frames = movie(cfg, frames=30)
    alive, sizes = [], []

    def photons_of(a, b):
        gc.collect()
        sizes.append(b - a)
        assert sum(r() is not None for r in alive) == 0  # the chunks read before are gone
        out = frames[a:b].clone()
        alive.append(weakref.ref(out))
        return [out]

    (rep,) = check.check_movie_psf_shapes(photons_of, 30, cfg, window_px=16, warn=False, max_spots=20)
    assert sizes[0] == 1 and max(sizes) == 3 and sum(sizes) == 30 and rep.frames <= 30


def test_each_channel_is_named_by_its_own_file_and_nan_pixels_do_not_stop_the_check():
    frames = movie(config(PSF_3D, z=(-500.0, 500.0)))
    bad = frames.clone()
    bad[3, 10, 10] = float("nan")
    two = validate_config({
        "px_size_nm": 100.0, "frame_size": [64, 64], "photon_model": {"kind": "linked"},
        "channels": [{"psf": PSF_3D, "camera": EMCCD, "throughput": 0.5}, {"psf": PSF_2D, "camera": EMCCD, "throughput": 0.5}],
        "emitters": {"density_per_um2": 0.5, "photons_range": [1000.0, 8000.0], "z_range_nm": [-500.0, 500.0]},
        "background": {"range": [20.0, 100.0]},
    }, SimulationConfig)
    with pytest.warns(PSFShapeWarning) as rec:
        reps = check_psf_shapes([bad, frames], two, source=["ch0.tif", "ch1.tif"], max_spots=150)
    assert reps[0].warning is None and reps[0].n_spots >= 30  # a NaN pixel: still spots (0 before: NaN threshold)
    assert len(rec) == 1 and str(rec[0].message).startswith("ch1.tif: channel 1:")
    with pytest.raises(InputError, match="3 source name"):
        check_psf_shapes([frames, frames], two, source=["a", "b", "c"], warn=False)


def test_plexloc_fit_prints_the_psf_note(tmp_path, capsys):
    """A 3D configuration on a movie whose spots all sit at one z: no warning, but plexloc fit says so."""
    from plexloc.cli.main import main
    from plexloc.config import save_config
    from plexloc.io.tiff import write_movie

    sim = Simulator(config(PSF_2D))
    m = sim.simulate_movie(60, generator=torch.Generator().manual_seed(0), density_per_um2=0.5)
    write_movie(tmp_path / "flat.tif", np.clip(np.round(m.frames[0].numpy()), 0, 65535))
    save_config(config(PSF_3D, z=(-500.0, 500.0)), tmp_path / "astig.yaml")
    assert main(["fit", str(tmp_path / "flat.tif"), "--method", "mle", "--config", str(tmp_path / "astig.yaml"),
                 "--out", str(tmp_path / "l.csv")]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "near z =" in err and "a 2D movie fitted with a 3D model?" in err
