"""The paths changed since the last CUDA audit (review 39, tests/test_cuda_audit39.py) that bench/gpu.sh and a GPU user
reach: the MLE's at_bound flags (758562c), its detection test spot_llr / p_spot with the background-only fit (Newton
steps for sCMOS maps, 13be01f), the clipped-pixel counts of the MLE's windows and of the network's spots (63995a1),
and the clipping levels found in a chunk's first raw frames (b5cab60, ae9bba7).

Each helper takes the device (the ``gpu`` twins run it on CUDA, skipped without one); then the ``meta``-device guard
of test_cuda_audit38/39 over the same paths: every tensor made there without ``device=`` lands on the meta device and
fails where it meets a real one (on CUDA it would have been a CPU tensor). Small on purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plexloc.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
R_FRAME = 24  # frames R_FRAME x R_FRAME px


class _OnMeta:
    """Every tensor made without ``device=`` lands on the meta device inside."""

    def __enter__(self):
        torch.set_default_device("meta")

    def __exit__(self, *exc):
        torch.set_default_device(None)


def _scmos_3d_fitter(device: str, saturation_adu: float | None = None):
    """An MLE fitter of examples/3d_astigmatic.yaml with an sCMOS camera of per-pixel maps (the background-only fit
    takes its Newton steps there) and raw uint16 frames with three bright spots, one of them clipped at 4095."""
    from plexloc.camera import SCMOS
    from plexloc.mle import MLEFitter

    cfg = load_config(EXAMPLES / "3d_astigmatic.yaml").simulation()
    g = torch.Generator().manual_seed(3)
    read = 1.0 + torch.rand(R_FRAME, R_FRAME, generator=g)
    cam = SCMOS(qe=0.8, e_per_adu=0.5, baseline=100.0, read_sigma=read)
    if saturation_adu is not None:
        cam.saturation_adu = saturation_adu
    fitter = MLEFitter(cfg, device=device)
    for ch in fitter.channels:
        ch.camera = cam.to(device)
    yy, xx = torch.meshgrid(torch.arange(R_FRAME, dtype=torch.float64), torch.arange(R_FRAME, dtype=torch.float64),
                            indexing="ij")
    rng = np.random.default_rng(5)
    frames = np.empty((3, R_FRAME, R_FRAME), np.uint16)
    for t in range(3):
        img = torch.full((R_FRAME, R_FRAME), 20.0, dtype=torch.float64)
        for (r, c), n in zip([(6.3, 6.6), (16.8, 8.2), (11.5, 17.4)], (800.0, 1500.0, 60000.0)):
            img += n / (2 * np.pi * 1.3**2) * torch.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.3**2))
        adu = rng.poisson(0.8 * img.numpy()) / 0.5 + 100.0 + rng.normal(0, 1.0, img.shape)
        frames[t] = np.clip(np.round(adu), 0, 4095).astype(np.uint16)  # a 12-bit camera's clipping level
    return fitter, frames


def mle_flags_on(device: str) -> None:
    """fit_frames of raw uint16 frames on ``device``: the new columns are there and hold numbers (at_bound int64,
    spot_llr >= 0, p_spot in [0, 1], saturated_px > 0 at the clipped spot), the clipping level found in the frames."""
    from plexloc.mle.pipeline import frame_clip_levels

    fitter, frames = _scmos_3d_fitter(device)
    fitter.clip_levels = frame_clip_levels(fitter, [frames], dtype=frames.dtype)
    assert fitter.clip_levels[0] == (4095.0, "found")
    table = fitter.fit_frames(frames)
    assert len(table) >= 6
    assert np.asarray(table["at_bound"]).dtype == np.int64
    spot = np.asarray(table["spot_llr"])
    p = np.asarray(table["p_spot"])
    assert np.all(np.isfinite(spot)) and np.all(spot >= 0) and np.all((p >= 0) & (p <= 1))
    assert np.asarray(table["saturated_px"]).max() > 0
    assert np.all(np.isfinite(np.asarray(table["x_nm"])))


def clip_levels_of_tensors(device: str) -> None:
    """A chunk's first frames given as tensors on ``device`` (MLEFitter.fit_frames takes them): the clipping level is
    found in them as in the same frames as a numpy array, and the camera check runs on them (np.asarray of a CUDA
    tensor raised a TypeError)."""
    from plexloc.mle.pipeline import camera_check, frame_clip_levels

    fitter, frames = _scmos_3d_fitter(device)
    want = frame_clip_levels(fitter, [frames], dtype=frames.dtype)
    t = torch.as_tensor(frames.astype(np.int32)).to(device)
    assert frame_clip_levels(fitter, [t], dtype=frames.dtype) == want == [(4095.0, "found")]
    check = camera_check(fitter, [t], dtype=frames.dtype, warn=False)
    assert check.channels[0].saturation_adu == 4095.0 and check.channels[0].saturated > 0


# ------------------------------------------------------------------------------------------- CPU (CI)
def test_mle_flags_on_the_cpu():
    mle_flags_on("cpu")


def test_clip_levels_of_tensors_on_the_cpu():
    clip_levels_of_tensors("cpu")


def test_clip_levels_of_a_tensor_that_numpy_cannot_read():
    """The CPU stand-in for a CUDA tensor: a tensor that np.asarray refuses (one that requires grad; np.asarray of a
    CUDA tensor raises likewise) has its clipping level found all the same (frame_clip_levels called np.asarray on it)."""
    from plexloc.mle.pipeline import frame_clip_levels

    fitter, frames = _scmos_3d_fitter("cpu")
    t = torch.as_tensor(frames.astype(np.float32)).requires_grad_(True)
    with pytest.raises((RuntimeError, TypeError)):
        np.asarray(t)
    assert frame_clip_levels(fitter, [t], dtype=frames.dtype) == [(4095.0, "found")]


# ------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_cuda_mle_flags():
    mle_flags_on("cuda")


@pytest.mark.gpu
def test_cuda_clip_levels_of_tensors():
    clip_levels_of_tensors("cuda")


# ------------------------------------------------------------------------------------------- no tensor off the device
def test_the_mle_fit_with_its_flags_makes_no_tensor_off_the_device(monkeypatch):
    """The MLE's batch fit (the bounds hit, the background-only fit by Newton steps on sCMOS maps, spot_llr) and the
    count of clipped pixels in its windows under the guard (the fitter's collection of the results, on the CPU on
    purpose, is left out)."""
    import plexloc.mle.fit as fit_mod
    import plexloc.mle.pipeline as pipe_mod
    from plexloc.mle.pipeline import frame_clip_levels

    calls = {"batch": 0, "clipped": 0}
    batch, clipped = fit_mod._fit_batch, pipe_mod._clipped_in_windows

    def batch_guarded(*args, **kwargs):
        calls["batch"] += 1
        with _OnMeta():
            return batch(*args, **kwargs)

    def clipped_guarded(*args, **kwargs):
        calls["clipped"] += 1
        with _OnMeta():
            return clipped(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "_fit_batch", batch_guarded)
    monkeypatch.setattr(pipe_mod, "_clipped_in_windows", clipped_guarded)
    fitter, frames = _scmos_3d_fitter("cpu")
    fitter.clip_levels = frame_clip_levels(fitter, [frames], dtype=frames.dtype)
    table = fitter.fit_frames(frames)
    assert calls["batch"] >= 1 and calls["clipped"] >= 1
    assert len(table) >= 6 and np.asarray(table["saturated_px"]).max() > 0
    assert np.all(np.isfinite(np.asarray(table["spot_llr"])))


@pytest.mark.filterwarnings("ignore::plexloc.infer.fit.FrameSizeWarning")  # tile_px=8 on purpose: many tiles
def test_the_network_fit_of_a_clipping_movie_makes_no_tensor_off_the_device(tmp_path, monkeypatch):
    """The network's fit of a two-channel uint16 movie with a clipping level (its spots' clipped pixels counted in
    each channel where the transform puts them: clipped_near, 63995a1) under the guard from the first block to the
    last (test_cuda_audit39 guarded a float movie, where no level is looked for and clipped_near returns at once)."""
    import plexloc.infer.fit as fit_mod
    from test_cuda_audit39 import fitted_two_channel, guard_frame_blocks

    net, cfg_dict, frames = fitted_two_channel(tmp_path)
    frames = np.clip(np.round(frames.numpy()), 0, 65535).astype(np.uint16)
    frames[:, :, 6:9, 6:9] = 65535  # a clipped spot in every frame of both channels
    near = fit_mod.clipped_near
    counted = []
    guarded = guard_frame_blocks(monkeypatch)

    def near_counted(*args, **kwargs):
        out = near(*args, **kwargs)
        counted.append(int(out.sum()))
        return out

    monkeypatch.setattr(fit_mod, "clipped_near", near_counted)
    table = fit_mod.fit_movie(frames, net, config=cfg_dict, device="cpu", batch_frames=2, roi_offset_px=(5, 7),
                              tile_px=8)
    assert guarded == [0, 2, 4] and len(table) > 0 and np.all(np.isfinite(table["x_nm"]))
    assert sum(counted) > 0 and np.asarray(table["saturated_px"]).max() > 0
