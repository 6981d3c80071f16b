"""The library as a method developer uses it (session 39's walk): frames held in memory fitted by the network and by
the MLE, and clear errors where a configuration, a dict or a wrong shape goes where a model, a table or frames belong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_infer import _random_model

from plexloc.config.models import IdealCameraConfig
from plexloc.errors import InputError
from plexloc.infer import fit_movie, fit_movie_to_file
from plexloc.io import read_table
from plexloc.io.tiff import write_movie
from plexloc.nets import Localizer
from plexloc.table import LocTable

COLS = ("frame", "x_nm", "y_nm", "photons", "prob", "bg", "sigma_x_nm", "sigma_photons")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _same(a: LocTable, b: LocTable) -> None:
    assert len(a) == len(b) > 0
    for col in COLS:
        np.testing.assert_array_equal(a[col], b[col])


def test_fit_movie_takes_frames_held_in_memory(tmp_path):
    """A numpy array or tensor of raw frames, (T, H, W), (C, T, H, W) or a list per channel, gives the table of the
    same frames in a TIFF; before, fit_movie needed a file (TypeError from pathlib for a tensor, and for a (T, H, W)
    array "the model has 1 channel(s) but 23 movie(s) were given", the array printed as the file name)."""
    net = _random_model(1)
    movie = np.random.default_rng(0).poisson(40.0, size=(23, 20, 28)).astype(np.float32)
    keep = movie.copy()
    write_movie(tmp_path / "m.tif", movie, dtype=np.float32)
    cam = IdealCameraConfig()
    ref = fit_movie(tmp_path / "m.tif", net, camera=cam, batch_frames=5, chunk_frames=7)
    for given in (movie, torch.from_numpy(movie), torch.from_numpy(movie)[None], [movie], movie.astype(np.float64),
                  movie.astype(np.uint16)):
        _same(fit_movie(given, net, camera=cam, batch_frames=5, chunk_frames=7), ref)
    np.testing.assert_array_equal(movie, keep)  # the caller's frames are not converted in place
    n = fit_movie_to_file(torch.from_numpy(movie), net, tmp_path / "locs.csv", camera=cam)
    assert n == len(ref) and len(read_table(tmp_path / "locs.csv")) == n


def test_fit_movie_of_a_simulation_in_memory_with_the_models_own_camera(tmp_path):
    """MovieSimulation.frames (C, T, H, W) straight into fit_movie with a model file that carries its configuration:
    the camera and pixel size are the model's; the checks of the first frames run (stats)."""
    from plexloc.config import TrainConfig
    from plexloc.nets.io import save_model
    from plexloc.simulation import Simulator

    from conftest import TINY_TRAIN

    cfg = TrainConfig.model_validate(TINY_TRAIN)
    mov = Simulator(cfg.simulation()).simulate_movie(6, generator=torch.Generator().manual_seed(0))
    net = _random_model(2)
    save_model(tmp_path / "model.pt", net, cfg.model_dump(mode="json"), meta={})
    write_movie(tmp_path / "sim.tif", mov.frames[0], dtype=np.float32)
    stats: dict = {}
    got = fit_movie(mov.frames, tmp_path / "model.pt", stats=stats)
    _same(got, fit_movie(tmp_path / "sim.tif", tmp_path / "model.pt"))
    assert stats["frames"] == 6 and "camera" in stats


def test_in_memory_channel_movies_are_named_in_errors():
    net = _random_model(0, n_channels=2)
    a = np.full((9, 20, 28), 50.0, np.float32)
    with pytest.raises(InputError, match=r"in-memory movie, channel 1: channel movies differ: channel 1's has 7 frames"):
        fit_movie([a, a[:7]], net, camera=[IdealCameraConfig()] * 2)
    bad = a.copy()
    bad[3, 2, 5] = np.nan
    with pytest.raises(InputError, match=r"in-memory movie: frame 3 has a non-finite pixel value nan at row 2, column 5"):
        fit_movie(bad, _random_model(0), camera=IdealCameraConfig())


def test_channel_movies_says_what_it_takes():
    from plexloc.io.tiff import ArrayMovie, channel_movies

    a = np.zeros((4, 8, 8), np.uint16)
    assert channel_movies("m.tif") == ["m.tif"]
    assert [m.n_frames for m in channel_movies(np.zeros((2, 4, 8, 8)))] == [4, 4]
    assert channel_movies(np.zeros((8, 8)))[0].n_frames == 1
    with pytest.raises(InputError, match=r"item 0 of the movie list is an array of shape \(8, 8\).*numpy.stack"):
        channel_movies([a[0], a[1]])  # a list of frames
    with pytest.raises(InputError, match=r"\(T, H, W\) for one channel or \(C, T, H, W\).*got \(1, 2, 4, 8, 8\)"):
        channel_movies(np.zeros((1, 2, 4, 8, 8)))
    with pytest.raises(TypeError, match="movie must be a TIFF file or folder, a numpy array or torch tensor"):
        channel_movies(3)
    with pytest.raises(InputError, match="pixel type bool is not supported"):
        ArrayMovie(np.zeros((2, 4, 4), bool))
    with pytest.raises(InputError, match="holds no frames"):
        ArrayMovie(np.zeros((0, 4, 4)))
    m = ArrayMovie(torch.zeros(3, 4, 5, dtype=torch.bfloat16))
    assert m.dtype == np.float32 and m[1:3].shape == (2, 4, 5) and m.roi_offset is None and m.pixel_size is None


def test_fit_movie_refuses_what_is_not_a_model_clearly(tmp_path):
    """A configuration or dict as the model was a TypeError from pathlib; a Localizer without its configuration named
    the whole module's repr as the error's source; a camera dict was "unknown camera kind {...}"."""
    from plexloc.config import TrainConfig

    from conftest import TINY_TRAIN

    movie = np.random.default_rng(0).poisson(40.0, size=(5, 16, 16)).astype(np.uint16)
    with pytest.raises(TypeError, match="model must be a run folder or model file .* got dict"):
        fit_movie(movie, dict(TINY_TRAIN))
    with pytest.raises(TypeError, match="got TrainConfig"):
        fit_movie(movie, TrainConfig.model_validate(TINY_TRAIN))
    net = _random_model(0)
    with pytest.raises(InputError, match=r"^the given Localizer: no camera given") as err:
        fit_movie(movie, net)
    assert "Conv2d" not in str(err.value)
    _same(fit_movie(movie, net, camera={"kind": "ideal"}), fit_movie(movie, net, camera=IdealCameraConfig()))
    with pytest.raises(InputError, match=r"camera \{'kind': 'emccd', 'gain': 3\} is not a valid camera configuration"):
        fit_movie(movie, net, camera={"kind": "emccd", "gain": 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_movie_on_cuda_without_it_is_an_input_error():
    """torch's own error was an AssertionError ("Torch not compiled with CUDA enabled") from inside the transfer."""
    with pytest.raises(InputError, match="device 'cuda': no CUDA device is available"):
        fit_movie(np.zeros((3, 16, 16), np.uint16), _random_model(0), camera=IdealCameraConfig(), device="cuda")


def test_mle_fits_frames_held_in_memory(tmp_path):
    """plexloc.mle.fit_movie of an array or tensor = of the same frames in a TIFF (it was a TypeError from pathlib);
    MLEFitter.fit_frames takes a single channel's (T, H, W) array (it read it as T movies: "20 movies for 1
    channels"); a dict as the configuration is a TypeError saying what to pass (an AttributeError before)."""
    from plexloc.config import load_config
    from plexloc.mle import MLEFitter
    from plexloc.mle import fit_movie as mle_fit
    from plexloc.simulation import Simulator

    from conftest import TINY_TRAIN
    from plexloc.config import TrainConfig

    cfg = TrainConfig.model_validate(TINY_TRAIN).simulation()
    mov = Simulator(cfg).simulate_movie(8, generator=torch.Generator().manual_seed(3))
    write_movie(tmp_path / "m.tif", mov.frames[0], dtype=np.float32)
    ref = mle_fit(tmp_path / "m.tif", cfg)
    assert len(ref) > 0
    for given in (mov.frames, mov.frames[0], mov.frames[0].numpy(), [mov.frames[0].numpy()]):
        got = mle_fit(given, cfg)
        np.testing.assert_array_equal(got["x_nm"], ref["x_nm"])
    fitter = MLEFitter(cfg)
    a, b = fitter.fit_frames(mov.frames[0]), fitter.fit_frames([mov.frames[0]])
    np.testing.assert_array_equal(a["x_nm"], b["x_nm"])
    np.testing.assert_array_equal(fitter.fit_frames(mov.frames)["x_nm"], b["x_nm"])
    with pytest.raises(InputError, match=r"channel 0's frames have shape \(16, 16\)"):
        fitter.fit_frames([mov.frames[0, 0]])
    with pytest.raises(TypeError, match="config must be a validated SimulationConfig .* got dict"):
        MLEFitter(cfg.model_dump())
    with pytest.raises(TypeError, match="got dict"):
        mle_fit(mov.frames, cfg.model_dump())
    assert load_config  # the message's way to a configuration


def test_evaluate_takes_dicts_and_dataframes_of_columns():
    """evaluate/match of a dict or a pandas DataFrame raised AttributeError: 'dict' object has no attribute
    'check_finite'."""
    from plexloc.evaluate import evaluate, match

    t = {"frame": [0, 1], "x_nm": [100.0, 300.0], "y_nm": [100.0, 100.0], "z_nm": [0.0, 0.0], "photons": [1e3, 1e3]}
    p = dict(t, x_nm=[110.0, 310.0])
    assert evaluate(t, p).rmse_lat == pytest.approx(10.0)
    assert evaluate(LocTable(t), LocTable(p)) == evaluate(t, p)
    assert match(t, p).n_tp == 2
    pd = pytest.importorskip("pandas")
    assert evaluate(pd.DataFrame(t), pd.DataFrame(p)).jaccard == 100.0
    with pytest.raises(TypeError, match="pred must be a LocTable .* got list"):
        evaluate(t, [1, 2])
    with pytest.raises(InputError, match=r"truth: missing required column\(s\) \['photons'\]"):
        evaluate({k: v for k, v in t.items() if k != "photons"}, p)


def test_crlb_refuses_configurations_and_a_missing_camera_clearly():
    """A PSF configuration was "'str' object has no attribute 'roi_px'", a camera configuration "'EMCCDConfig' object
    has no attribute 'to'", no camera "'NoneType' object has no attribute 'to'"."""
    from plexloc.camera import IdealCamera
    from plexloc.config.models import EMCCDConfig, GaussianPSFConfig
    from plexloc.evaluate.crlb import crlb
    from plexloc.psf import GaussianPSF

    psf, cam = GaussianPSF(sigma_nm=150.0), IdealCamera()
    with pytest.raises(TypeError, match="psf must be a PSF model .* got GaussianPSFConfig"):
        crlb(GaussianPSFConfig(), cam, photons=1000.0, bg=10.0)
    with pytest.raises(TypeError, match="channel 0: got a GaussianPSF and a EMCCDConfig"):
        crlb(psf, EMCCDConfig(), photons=1000.0, bg=10.0)
    with pytest.raises(TypeError, match="needs the camera"):
        crlb(psf, photons=1000.0, bg=10.0)
    one = crlb(psf, cam, photons=[1000.0, 2000.0], bg=np.float64(10.0))["crlb_x_nm"]
    pairs = crlb([(psf, cam)], photons=torch.tensor([1000.0, 2000.0]), bg=10.0)["crlb_x_nm"]
    torch.testing.assert_close(one, pairs)


def test_load_model_is_exported_from_nets(tmp_path):
    """The Localizer fit_movie takes comes from load_model, which plexloc.nets did not export."""
    import plexloc.nets
    from plexloc.nets.io import save_model

    assert "load_model" in plexloc.nets.__all__
    save_model(tmp_path / "model.pt", _random_model(0), {"px_size_nm": 100.0}, meta={})
    net, cfg, meta = plexloc.nets.load_model(tmp_path / "model.pt")
    assert isinstance(net, Localizer) and cfg["px_size_nm"] == 100.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_it_is_an_input_error_for_the_mle_and_the_trainer(tmp_path):
    """MLEFitter(device="cuda") and Trainer(device="cuda") on a CPU-only torch: AssertionError ("Torch not compiled
    with CUDA enabled") before."""
    from plexloc.config import TrainConfig
    from plexloc.mle import MLEFitter
    from plexloc.train import Trainer

    from conftest import TINY_TRAIN

    cfg = TrainConfig.model_validate(TINY_TRAIN)
    with pytest.raises(InputError, match="device 'cuda': no CUDA device is available"):
        MLEFitter(cfg.simulation(), device="cuda")
    with pytest.raises(InputError, match="device 'cuda': no CUDA device is available"):
        Trainer(cfg, tmp_path / "run", device="cuda")
    with pytest.raises(InputError, match="device 'gpu0' is not a torch device"):
        MLEFitter(cfg.simulation(), device="gpu0")


def test_trainer_refuses_a_dict_or_a_simulation_configuration(tmp_path):
    """Trainer(dict) was "'dict' object has no attribute 'model_dump'", Trainer(SimulationConfig) "'SimulationConfig'
    object has no attribute 'training'"."""
    from plexloc.config import TrainConfig
    from plexloc.train import Trainer

    from conftest import TINY_TRAIN

    with pytest.raises(TypeError, match=r"config must be a validated TrainConfig .* got dict"):
        Trainer(dict(TINY_TRAIN), tmp_path / "a")
    with pytest.raises(TypeError, match="got SimulationConfig"):
        Trainer(TrainConfig.model_validate(TINY_TRAIN).simulation(), tmp_path / "b")
    assert not (tmp_path / "a").exists()
