"""The library as a method developer uses it in a notebook (session 47's walk): PSFs and cameras built in code and fed
numpy arrays, numbers, 0-d and meta tensors; tables from tensors; process_movies given one path; a model load that left
the caller's random numbers alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN
from test_infer import _random_model

from plexloc.camera import EMCCD, SCMOS, IdealCamera, camera_from_config
from plexloc.config import load_config
from plexloc.config import TrainConfig
from plexloc.errors import InputError
from plexloc.psf import AstigmaticPSF, GaussianPSF, SplinePSF, psf_from_config
from plexloc.table import LocTable

EXAMPLE_2D = Path(__file__).resolve().parents[1] / "src" / "plexloc" / "examples" / "demo_2d.yaml"
ONE = {"frame": [0, 1], "x_nm": [50.0, 150.0], "y_nm": [50.0, 60.0], "z_nm": [0.0, 0.0], "photons": [1000.0, 2000.0]}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _spline() -> SplinePSF:
    zs = np.arange(-300.0, 301.0, 50.0)
    yy, xx = np.mgrid[0:25, 0:25]
    vol = np.stack([np.exp(-((xx - 12) ** 2 + (yy - 12) ** 2) / (2 * (1.3 * (1 + (z / 400) ** 2)) ** 2)) for z in zs])
    return SplinePSF.from_volume(vol / vol.sum(axis=(1, 2), keepdims=True), dz_nm=50.0)


# --- PSFs ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: GaussianPSF(sigma_nm=130.0), lambda: AstigmaticPSF(), _spline])
def test_psf_in_focus_sums_to_one_and_takes_numbers_and_arrays(make):
    """render(numpy arrays / Python numbers / 0-d tensors) was "'numpy.ndarray' object has no attribute 'numel'",
    "'float' object has no attribute 'numel'" and "IndexError: tuple index out of range"; the same frames now."""
    psf = make()
    ref = psf.render(torch.tensor([3205.0]), torch.tensor([3195.0]), torch.zeros(1), torch.ones(1),
                     torch.zeros(1, dtype=torch.long), n_frames=1, frame_shape=(64, 64))
    assert ref.dtype == torch.float32
    assert float(ref.sum()) == pytest.approx(1.0, abs=2e-5)
    numbers = psf.render(3205.0, 3195.0, 0.0, 1.0, 0, n_frames=1, frame_shape=(64, 64))
    zero_d = psf.render(torch.tensor(3205.0), torch.tensor(3195.0), torch.tensor(0.0), torch.tensor(1.0),
                        torch.tensor(0), n_frames=1, frame_shape=(64, 64))
    arrays = psf.render(np.array([3205.0]), np.array([3195.0]), np.zeros(1), np.ones(1), np.zeros(1, int),
                        n_frames=1, frame_shape=(64, 64))
    assert numbers.dtype == zero_d.dtype == torch.float32 and arrays.dtype == torch.float64  # the arrays' float64 kept
    torch.testing.assert_close(numbers, ref)
    torch.testing.assert_close(zero_d, ref)
    torch.testing.assert_close(arrays.float(), ref, atol=1e-6, rtol=1e-4)
    # one number of photons for every emitter
    two = psf.render(torch.tensor([1000.0, 4000.0]), torch.tensor([1000.0, 4000.0]), 0.0, 500.0,
                     torch.tensor([0, 0]), n_frames=1, frame_shape=(64, 64))
    assert float(two.sum()) == pytest.approx(1000.0, rel=1e-4)


def test_psf_emitter_arguments_are_checked_by_name():
    psf = GaussianPSF(sigma_nm=130.0)
    one, fr = torch.ones(1), torch.zeros(1, dtype=torch.long)
    with pytest.raises(InputError, match=r"differ in length: x_nm 2, y_nm 1"):  # was torch.stack's RuntimeError
        psf.render(torch.ones(2), one, one, one, fr, n_frames=1, frame_shape=(16, 16))
    with pytest.raises(InputError, match=r"x_nm must hold one value per emitter \(1-D, N\), got shape \(2, 2\)"):
        psf.render(torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2), torch.zeros(2, 2).long(),
                   n_frames=1, frame_shape=(16, 16))
    with pytest.raises(InputError, match="meta device hold none"):  # was "Tensor.item() cannot be called on meta"
        psf.render(*(t.to("meta") for t in (one, one, one, one, fr)), n_frames=1, frame_shape=(16, 16))
    with pytest.raises(InputError, match=r"frame_shape must be \(H, W\) in pixels, got 16"):
        psf.render(one, one, one, one, fr, n_frames=1, frame_shape=16)
    patch, row0, col0 = psf.patches(*(t.to("meta") for t in (one, one, one, one)))  # shapes only: fine on meta
    assert patch.shape == (1, *psf.roi_px) and patch.is_meta


def test_psf_constructors_refuse_bad_numbers_and_take_scalars():
    """Negative widths were taken (sigma -1 nm: patches of negative light), a zero pixel was a ZeroDivisionError,
    d_nm 0 'cannot convert float NaN to integer', a numpy float32 sigma 'cannot unpack non-iterable', a scalar
    s0_nm or px_size_nm "'float' object is not subscriptable"."""
    with pytest.raises(InputError, match=r"GaussianPSF sigma_nm must be a number > 0 or two \(x, y\), got -1.0"):
        GaussianPSF(sigma_nm=-1.0)
    with pytest.raises(InputError, match=r"px_size_nm must be a number > 0 or two \(x, y\), got \(0.0, 100.0\)"):
        GaussianPSF(px_size_nm=(0.0, 100.0))
    with pytest.raises(InputError, match=r"AstigmaticPSF d_nm must be a number > 0 .*got 0.0"):
        AstigmaticPSF(d_nm=0.0)
    with pytest.raises(InputError, match=r"AstigmaticPSF s0_nm .*got \(-120.0, 120.0\)"):
        AstigmaticPSF(s0_nm=(-120.0, 120.0))
    with pytest.raises(InputError, match=r"GaussianPSF roi_px must be a whole number of pixels >= 1, got 7.5"):
        GaussianPSF(roi_px=7.5)
    with pytest.raises(InputError, match=r"sigma_nm must be a number > 0 or two \(x, y\), got '130'"):
        GaussianPSF(sigma_nm="130")
    with pytest.raises(InputError, match=r"PSF volume must be 3-D \(n_z, n_y, n_x\), got shape \(4, 4\)"):
        SplinePSF.from_volume(np.ones((4, 4)), dz_nm=10.0)
    assert GaussianPSF(sigma_nm=np.float32(130.0), px_size_nm=100).sigma_nm == (130.0, 130.0)
    assert GaussianPSF(sigma_nm=torch.tensor(130.0)).px_size_nm == (100.0, 100.0)
    a = AstigmaticPSF(s0_nm=110.0, px_size_nm=np.float64(110.0))
    assert a.s0_nm == (110.0, 110.0) and a.px_size_nm == (110.0, 110.0)


def test_psf_and_camera_from_dicts_as_in_a_yaml_file():
    """A dict was 'unknown PSF kind {...}' / 'unknown camera kind {...}'."""
    psf = psf_from_config({"kind": "astigmatic", "s0_nm": [110, 120]}, px_size_nm=100.0)
    assert isinstance(psf, AstigmaticPSF) and psf.s0_nm == (110.0, 120.0)
    with pytest.raises(InputError, match=r"psf: field 'sigma_nm': Input should be greater than 0 \(got 0\)"):
        psf_from_config({"kind": "gaussian", "sigma_nm": 0}, px_size_nm=100.0)
    with pytest.raises(InputError, match=r"psf: field 'kind' must be one of \['astigmatic', 'gaussian', 'spline'\], "
                                         "got 'gauss'"):
        psf_from_config({"kind": "gauss"}, px_size_nm=100.0)
    cam = camera_from_config({"kind": "emccd", "em_gain": 100})
    assert isinstance(cam, EMCCD) and cam.em_gain == 100.0
    with pytest.raises(InputError, match=r"camera: field 'qe': Input should be less than or equal to 1 \(got 2\)"):
        camera_from_config({"kind": "scmos", "qe": 2})


# --- cameras ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cam", [EMCCD(), SCMOS(), IdealCamera()])
def test_cameras_take_numpy_frames(cam):
    """to_photons / forward of a numpy array: "'numpy.ndarray' object has no attribute 'to'" ('clamp_min') before."""
    raw = np.full((2, 4, 4), 600, dtype=np.uint16)
    ph = cam.to_photons(raw)
    assert isinstance(ph, torch.Tensor) and ph.dtype == torch.float32
    torch.testing.assert_close(ph, cam.to_photons(torch.from_numpy(raw.astype(np.float32))))
    frames = cam(np.full((4, 4), 10.0), generator=torch.Generator().manual_seed(0))
    assert frames.shape == (4, 4) and frames.dtype == torch.float64
    expected = cam.expected_adu(torch.full((4, 4), 10.0, dtype=torch.float64))
    torch.testing.assert_close(cam.expected_adu(np.full((4, 4), 10.0)), expected)
    with pytest.raises(TypeError, match="adu must be a torch tensor or a numpy array, got list"):
        cam.to_photons([[1, 2]])


def test_ideal_camera_to_photons_is_a_new_float32_tensor():
    """It returned the input tensor itself (so a caller's in-place change of the photons changed the raw frames) and
    kept float64, where every other camera, and the contract, give a new float32 tensor."""
    cam = IdealCamera()
    for adu in (torch.full((3, 3), 7.0), torch.full((3, 3), 7.0, dtype=torch.float64)):
        ph = cam.to_photons(adu)
        assert ph is not adu and ph.dtype == torch.float32
        ph += 1
        assert float(adu[0, 0]) == 7.0


def test_camera_numbers_are_checked_when_built_in_code():
    """EMCCD(em_gain=0) or qe 0 made every photon count infinite without a word (the configuration refuses them)."""
    with pytest.raises(InputError, match=r"EMCCD em_gain \(EM gain\) must be a number >= 1, got 0"):
        EMCCD(em_gain=0)
    with pytest.raises(InputError, match=r"EMCCD qe \(fraction of photons detected, 0-1\) must be a number in "
                                         r"\(0, 1\], got 0.0"):
        EMCCD(qe=0.0)
    with pytest.raises(InputError, match=r"sCMOS qe .* got 1.5"):
        SCMOS(qe=1.5)
    with pytest.raises(InputError, match=r"sCMOS baseline \(ADU\) must be finite everywhere; it holds 1 NaN"):
        SCMOS(baseline=torch.tensor([[100.0, float("nan")]]))


def test_camera_input_that_is_not_finite_is_named():
    """NaN photons were torch's "invalid Poisson rate, expected rate to be non-negative" (the clamp at 0 keeps NaN)."""
    x = torch.tensor([[float("nan"), 5.0], [float("inf"), -3.0]])
    for cam in (EMCCD(), SCMOS(), IdealCamera()):
        with pytest.raises(InputError, match=r"must be finite: 2 of 4 value\(s\) are NaN or infinite \(1 NaN\)"):
            cam(x, generator=torch.Generator().manual_seed(0))


# --- tables ----------------------------------------------------------------------------------------------------------

def test_table_from_tensors_with_grad_half_precision_or_meta():
    """A column tensor that requires grad was torch's RuntimeError ("Can't call numpy() on Tensor that requires
    grad"), a bfloat16 one "Got unsupported ScalarType BFloat16", a meta one numpy's TypeError."""
    x = torch.tensor([50.0, 150.0], requires_grad=True)
    t = LocTable({**ONE, "x_nm": x * 1, "photons": torch.tensor([1000.0, 2000.0], dtype=torch.bfloat16)})
    assert t["x_nm"].tolist() == [50.0, 150.0] and t["photons"].dtype == np.float64
    with pytest.raises(InputError, match="column 'y_nm' is a tensor on the meta device, which holds no values"):
        LocTable({**ONE, "y_nm": torch.zeros(2, device="meta")})
    with pytest.raises(InputError, match=r"column names must be text, got 3 \(int\)"):
        LocTable({**ONE, 3: [1.0, 2.0]})


def test_table_row_and_iteration():
    """t[1] was "column 'frame' must be 1-D, got shape ()" and list(t) the same error: now one row, and iterating a
    TypeError that says what to use."""
    t = LocTable(ONE)
    assert t[1]["x_nm"].tolist() == [150.0] and t[-2]["frame"].tolist() == [0]
    with pytest.raises(TypeError, match=r"a LocTable is not iterated: its column names are t.columns"):
        list(t)  # (column names made pandas.DataFrame(t) a one-column frame of names: tests/test_review47b.py)
    with pytest.raises(IndexError, match="row 2 is out of range: the table has 2 rows"):
        t[2]
    with pytest.raises(TypeError, match=r"concat takes a list of tables, got one LocTable"):
        LocTable.concat(t)
    with pytest.raises(TypeError, match=r"concat: item 1 is dict, not a LocTable"):
        LocTable.concat([t, ONE])


# --- models and the workflow -----------------------------------------------------------------------------------------

def test_load_model_leaves_the_global_random_numbers_alone(tmp_path):
    """Building the network before its weights were loaded drew its initial weights from torch's global generator:
    the caller's next random numbers changed with every load (fit_movie of a run folder did it)."""
    from plexloc.nets import load_model
    from plexloc.nets.io import save_model

    save_model(tmp_path / "model.pt", _random_model(2), TrainConfig.model_validate(TINY_TRAIN).model_dump(mode="json"))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model(tmp_path / "model.pt")
    torch.testing.assert_close(torch.rand(3), expected)


def test_process_movies_takes_one_path_as_one_movie(tmp_path):
    """A string was iterated letter by letter: process_movies("cell1.tif", ...) processed '/', 'c', 'e', ... (the root
    folder scanned, a '.failed' folder written beside ``out``)."""
    from plexloc.workflow import ProcessOptions, acquisition_name, group_movies

    options = ProcessOptions(method="mle", config=load_config(EXAMPLE_2D))
    for movie in (str(tmp_path / "cell1.tif"), tmp_path / "cell1.tif"):
        acqs = group_movies(movie, options)
        assert [(a.name, a.movies) for a in acqs] == [("cell1", (tmp_path / "cell1.tif",))]
    assert acquisition_name(["/"]) == "movie"  # was '': the acquisition's folder was out itself
    (tmp_path / "cell2").mkdir()
    assert acquisition_name([tmp_path / "cell2" / "."]) == "cell2"  # was '' too
    assert acquisition_name([tmp_path / "cell2" / ".."]) == tmp_path.name  # was '..': out's parent


def test_process_movies_refuses_what_it_cannot_process_before_any_fit(tmp_path):
    """Frames held in memory and a dict of options were pathlib's TypeError / an AttributeError, a network without
    a model "expected str, bytes or os.PathLike object, not NoneType"."""
    from plexloc.workflow import ProcessOptions, process_movies

    with pytest.raises(TypeError, match=r"movies\[0\] is ndarray of shape \(3, 8, 8\), not the path"):
        process_movies([np.zeros((3, 8, 8))], tmp_path / "out", ProcessOptions(method="mle", config="x.yaml"))
    with pytest.raises(TypeError, match=r"got frames held in memory \(Tensor of shape \(3, 8, 8\)\)"):
        process_movies(torch.zeros(3, 8, 8), tmp_path / "out", ProcessOptions(method="mle", config="x.yaml"))
    with pytest.raises(TypeError, match="options must be a ProcessOptions"):
        process_movies(["a.tif"], tmp_path / "out", {"model": "run"})
    with pytest.raises(InputError, match=r"method 'network' needs ProcessOptions.model"):
        process_movies(["a.tif"], tmp_path / "out", ProcessOptions())
    with pytest.raises(InputError, match=r"device 'gpu' is not a torch device"):
        process_movies(["a.tif"], tmp_path / "out", ProcessOptions(method="mle", config="x.yaml", device="gpu"))
    from plexloc.workflow import process_acquisition

    with pytest.raises(TypeError, match="acq must be an Acquisition .*, got str"):  # was AttributeError
        process_acquisition("a.tif", tmp_path / "out", ProcessOptions(method="mle", config="x.yaml"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device, said", [("meta", "holds no values"), ("mps", "has no mps device here"),
                                           ("xpu", "has no xpu device here")])
def test_fits_refuse_devices_that_cannot_run_them(device, said):
    """fit_movie(device="meta") was "unsupported autocast device_type 'meta'" (the MLE: "Cannot copy out of meta
    tensor"), "mps" "PyTorch is not linked with support for mps devices", "xpu" an AssertionError."""
    from plexloc._call import as_device
    from plexloc.mle import MLEFitter

    backend = torch.backends.mps if device == "mps" else getattr(torch, device, None)
    if device != "meta" and backend is not None and backend.is_available():
        pytest.skip(f"this torch has {device}")
    with pytest.raises(InputError, match=f"device '{device}'.*{said}"):
        as_device(device)
    with pytest.raises(InputError, match=f"device '{device}'.*{said}"):
        MLEFitter(load_config(EXAMPLE_2D), device=device)
