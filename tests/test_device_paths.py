"""The code paths that only a CUDA device takes: training with bf16 autocast, checkpoints written on the
GPU and read on the CPU, multi-channel fitting of several TIFFs, the MLE fitter (spline and global
multi-channel fits). The ``gpu`` tests are compact (tiny models, a few steps, small movies) so that a
short GPU session runs them all first; the CPU tests check the device-independent parts of those paths.

Each ``_run_*`` helper takes the device, so that it can be tried on the CPU as well.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig, load_config, validate_config
from plexloc.config.models import SimulationConfig
from plexloc.evaluate import match
from plexloc.io import SplineCalibration, save_smap_3dcal
from plexloc.io.tiff import write_movie
from plexloc.mle.detection import _blur, _blur_torch
from plexloc.psf import coefficients_from_volume
from plexloc.simulation import Simulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PX = 100.0

# the tests' tiny 2D configuration with larger batches and fewer validations
TINY_2D = {**TINY_TRAIN, "training": {"batch_size": 8, "validate_every": 100, "validation_samples": 16, "warmup_steps": 2}}


def _rotation(deg: float, dx_nm: float, dy_nm: float) -> list[list[float]]:
    a = math.radians(deg)
    return [[math.cos(a), -math.sin(a), dx_nm], [math.sin(a), math.cos(a), dy_nm], [0.0, 0.0, 1.0]]


def _two_channel(**over) -> TrainConfig:
    d = {
        "px_size_nm": PX,
        "frame_size": [16, 16],
        "chip_size_px": [64, 80],
        "photon_model": {"kind": "ratiometric", "ratios": [[0.8, 0.2], [0.3, 0.7]]},
        "channels": [
            {"psf": {"kind": "astigmatic"}, "camera": {"kind": "emccd"}},
            {"psf": {"kind": "astigmatic"}, "camera": {"kind": "scmos"}, "z_offset_nm": 100.0,
             "transform": _rotation(1.0, 150.0, -80.0)},
        ],
        "emitters": {"density_per_um2": 1.0, "photons_range": [1000.0, 5000.0], "z_range_nm": [-300.0, 300.0]},
        "background": {"range": [20.0, 50.0]},
        "model": {"features": 4, "depth": 1, "union_features": 4, "union_depth": 1},
        "training": {"batch_size": 4, "validate_every": 10, "validation_samples": 8, "warmup_steps": 1,
                     "transform_jitter_nm": 10.0},
    }
    d.update(over)
    return TrainConfig.model_validate(d)


# ------------------------------------------------------------------------------------------- helpers
def _run_training(device: str, tmp_path: Path) -> None:
    """Train with autocast (on CUDA), resume on the device, then read the GPU-written files on the CPU."""
    from plexloc.nets.io import load_model
    from plexloc.train import Trainer

    cfg = TrainConfig.model_validate(TINY_2D)
    run = tmp_path / "run"
    tr = Trainer(cfg, run, device=device)
    assert tr.amp == (torch.device(device).type == "cuda") and tr.generator.generator.device.type == tr.device.type
    loss = tr.train_step()
    assert loss.device.type == tr.device.type and bool(torch.isfinite(loss).all())
    last = tr.run(steps=6)
    assert tr.step == 6 and [r["step"] for r in tr.rows] == [6]  # the final validation
    assert np.isfinite(last["val_loss"]) and np.isfinite(last["loss"])
    # resumed on the same device: the optimizer state goes back onto it
    again = Trainer(cfg, run, device=device, resume=True)
    again.run(steps=7)
    assert again.step == 7
    state = again.optimizer.state[next(iter(again.model.parameters()))]
    assert state["exp_avg"].device.type == again.device.type
    # the GPU's files open on the CPU: the model, and the checkpoint for a resumed run
    model, _, meta = load_model(run, device="cpu")
    assert next(model.parameters()).device.type == "cpu" and meta["step"] in (6, 7)
    on_cpu = Trainer(cfg, run, device="cpu", resume=True)
    on_cpu.run(steps=8)
    assert on_cpu.step == 8


def _run_two_channel(device: str, tmp_path: Path) -> None:
    """A two-channel ratiometric model (transform indicator, registration jitter, sCMOS channel) trains on
    ``device`` and fits one TIFF per channel there; the table has the columns of the CPU's fit."""
    from plexloc.infer import fit_movie
    from plexloc.nets.io import load_model
    from plexloc.train import Trainer

    cfg = _two_channel()
    tr = Trainer(cfg, tmp_path / "run", device=device)
    assert tr.model.spec.n_aux == 4 and tr.model.spec.n_photons == 2
    tr.run(steps=3)
    assert np.isfinite(tr.rows[-1]["val_loss"])
    sim = Simulator(cfg.simulation()).to(device)
    gen = torch.Generator(device=sim.device).manual_seed(5)
    movie = sim.simulate_movie(7, generator=gen)
    paths = [tmp_path / f"ch{c}.tif" for c in range(2)]
    for c, p in enumerate(paths):
        write_movie(p, movie.frames[c].cpu().numpy().astype(np.uint16))
    stats: dict = {}
    on_dev = fit_movie(paths, tmp_path / "run", device=device, threshold=0.05, roi_offset_px=(10, 4), stats=stats,
                       batch_frames=3, chunk_frames=4, tile_px=8)
    on_cpu = fit_movie(paths, tmp_path / "run", device="cpu", threshold=0.05, roi_offset_px=(10, 4),
                       batch_frames=3, chunk_frames=4, tile_px=8)
    assert on_dev.columns == on_cpu.columns and stats["frames"] == 7
    for col in ("photons_ch0", "photons_ch1", "bg_ch1", "sigma_z_nm"):
        assert col in on_dev.columns
    assert np.all(np.isfinite(on_dev["x_nm"])) and (len(on_dev) == 0 or on_dev["frame"].max() < 7)
    # the network's own output on the device (no autocast) is the CPU's up to TF32 convolutions
    from plexloc.infer.predict import Predictor

    net, _, _ = load_model(tmp_path / "run", device=device)
    cpu_net, _, _ = load_model(tmp_path / "run", device="cpu")
    x = torch.rand(2, net.spec.window, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 80
    tf = [torch.tensor(ch["transform"], dtype=torch.float64) for ch in cfg.model_dump(mode="json")["channels"]]
    for p in (Predictor(net, transforms=tf, amp=False, threshold=0.05), Predictor(net, transforms=tf, threshold=0.05)):
        ex = p.localize(x, (10, 4))
        assert ex.x_nm.device.type == torch.device(device).type and bool(torch.isfinite(ex.x_nm).all())
    with torch.no_grad():
        ind = Predictor(cpu_net, transforms=tf).transforms
        from plexloc.simulation.geometry import transform_indicator

        aux = transform_indicator(ind, torch.tensor([[10, 4]]), (16, 16), net.spec.px_size_nm).expand(2, -1, -1, -1)
        a = net.predict(x.to(device), aux.to(device))
        b = cpu_net.predict(x, aux)
    torch.testing.assert_close(a.prob.cpu(), b.prob, atol=2e-2, rtol=0.0)
    torch.testing.assert_close(a.offset[:, :2].cpu(), b.offset[:, :2], atol=2e-2, rtol=0.0)
    torch.testing.assert_close(a.offset[:, 2].cpu(), b.offset[:, 2], atol=2e-2 * net.spec.z_scale_nm, rtol=0.0)


def _spline_config(tmp_path: Path, spline_volume: np.ndarray) -> SimulationConfig:
    centre = (spline_volume.shape[2] // 2, spline_volume.shape[1] // 2, spline_volume.shape[0] // 2)
    path = tmp_path / "bead_3dcal.mat"
    save_smap_3dcal(path, SplineCalibration(coeff=coefficients_from_volume(spline_volume), dz_nm=25.0, x0=centre[0],
                                            y0=centre[1], z0=centre[2]))
    return validate_config(
        {"px_size_nm": PX, "frame_size": [48, 48], "psf": {"kind": "spline", "calibration": str(path)},
         "camera": {"kind": "emccd"}, "emitters": {"density_per_um2": 0.05, "photons_range": [2000.0, 6000.0],
                                                   "z_range_nm": [-400.0, 400.0]},
         "background": {"range": [20.0, 40.0]}},
        SimulationConfig,
    )


def _movie(cfg, tmp_path: Path, frames: int, seed: int) -> list[Path]:
    movie = Simulator(cfg).simulate_movie(frames, generator=torch.Generator().manual_seed(seed))
    paths = []
    for c in range(movie.frames.shape[0]):
        paths.append(tmp_path / f"mle_ch{c}.tif")
        write_movie(paths[-1], movie.frames[c].numpy())
    return paths


def _assert_same_fits(a, b, *, atol_lat: float, atol_ax: float) -> None:
    assert len(a) > 5 and abs(len(a) - len(b)) <= max(1, len(a) // 50), (len(a), len(b))
    m = match(a, b, dim=3, max_lat_nm=50.0, max_ax_nm=200.0)
    assert m.n_tp >= 0.97 * len(a), (m.n_tp, len(a))
    assert np.median(np.abs(m.dx)) < atol_lat and np.median(np.abs(m.dy)) < atol_lat
    assert np.median(np.abs(m.dz)) < atol_ax


# ------------------------------------------------------------------------------------------- CPU
def test_torch_detection_filter_is_scipys():
    """The DoG blur that runs on CUDA (torch convolutions in float64) is scipy's, which runs on the CPU."""
    g = torch.Generator().manual_seed(0)
    for sigma in (0.7, 1.3, 3.25):
        img = torch.rand(3, 23, 30, generator=g) * 100.0 + 20.0
        torch.testing.assert_close(_blur_torch(img, sigma), _blur(img, sigma), rtol=1e-6, atol=1e-4)


def test_localizer_compiles_to_one_graph(tmp_path):
    """``training.compile`` (CUDA only) needs the forward pass to trace: Dynamo with ``fullgraph=True``
    (an error at any graph break) and AOT autograd, without Inductor's code generation, on the CPU."""
    from plexloc.train import Trainer

    tr = Trainer(_two_channel(), tmp_path / "run")
    tr.forward = torch.compile(tr.model, backend="aot_eager", fullgraph=True)
    for _ in range(2):
        assert bool(torch.isfinite(tr.train_step()).all())


def test_psf_width_probe_follows_the_psf(make_psf):
    """psf_sigma_px probes a sampled PSF with tensors on the PSF's device: CPU probes of a spline on CUDA
    failed in MLEFitter (a bmm of CUDA coefficients with CPU monomials). On the CPU this checks the contract;
    test_cuda_mle_spline_fit_matches_cpu runs it on CUDA."""
    from plexloc.mle.pipeline import psf_sigma_px

    psf = make_psf("spline")
    seen = []
    patches = psf.patches

    def spy(x, y, z, n):
        seen.extend(t.device for t in (x, y, z, n))
        return patches(x, y, z, n)

    psf.patches = spy
    assert 0.5 < psf_sigma_px(psf) < 3.0
    assert seen and all(d == psf.coeff.device for d in seen)


# ------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_cuda_training_amp_resume_and_cpu_load(tmp_path):
    _run_training("cuda", tmp_path)


@pytest.mark.gpu
@pytest.mark.filterwarnings("ignore::plexloc.infer.fit.FrameSizeWarning")  # tile_px=8 on purpose: many tiles
def test_cuda_two_channel_training_and_fit_of_two_tiffs(tmp_path):
    _run_two_channel("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_detection_filter_is_the_cpus():
    img = torch.rand(4, 40, 36, generator=torch.Generator().manual_seed(1)) * 100.0 + 20.0
    for sigma in (1.3, 3.25):
        torch.testing.assert_close(_blur_torch(img.cuda(), sigma).cpu(), _blur(img, sigma), rtol=1e-6, atol=1e-4)


@pytest.mark.gpu
def test_cuda_mle_spline_fit_matches_cpu(tmp_path, spline_volume):
    from plexloc.mle import MLEFitter, fit_movie
    from plexloc.mle.pipeline import psf_sigma_px

    cfg = _spline_config(tmp_path, spline_volume)
    cpu_fitter, gpu_fitter = MLEFitter(cfg), MLEFitter(cfg, device="cuda")
    assert gpu_fitter.roi_px == cpu_fitter.roi_px
    assert psf_sigma_px(gpu_fitter.channels[0].psf) == pytest.approx(psf_sigma_px(cpu_fitter.channels[0].psf), rel=1e-5)
    paths = _movie(cfg, tmp_path, 30, seed=3)
    cpu = fit_movie(paths[0], cfg, device="cpu")
    gpu = fit_movie(paths[0], cfg, device="cuda")
    _assert_same_fits(cpu, gpu, atol_lat=1.0, atol_ax=5.0)


@pytest.mark.gpu
def test_cuda_mle_global_multichannel_fit_matches_cpu(tmp_path):
    from plexloc.mle import fit_movie

    cfg = load_config(EXAMPLES / "biplane.yaml")
    cfg.emitters.density_per_um2 = 0.05
    cfg.background.variation = 0.0
    cfg.frame_size = (48, 48)
    paths = _movie(cfg, tmp_path, 30, seed=4)
    cpu = fit_movie(paths, cfg, device="cpu")
    gpu = fit_movie(paths, cfg, device="cuda")
    assert gpu.columns == cpu.columns
    _assert_same_fits(cpu, gpu, atol_lat=1.0, atol_ax=5.0)
