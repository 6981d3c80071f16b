"""The paths changed since the last CUDA audit (review 39, c.f. tests/test_cuda_audit38.py) that bench/gpu.sh can reach
on CUDA: training and validation with sCMOS maps larger than ``frame_size`` (a random cut per sample, ca00f88), a
movie simulated through full-chip maps at ``roi_offset_px`` (ce9e98b), and the network's fit of frames held in memory
(d83d7db, fit_movie with a tensor).

Each helper takes the device: the ``gpu`` tests run it on CUDA (skipped without one), the CPU tests run the same
helper in CI. Then the ``meta``-device guard of test_cuda_audit38 over the same paths (a tensor made without
``device=`` fails where it meets a real one), and the host-device synchronisations of a training step and a
validation with cut maps against frame-sized maps. Small on purpose: all of it runs in well under a minute."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN
from test_cuda_audit38 import _SyncCounter
from test_device_paths import _two_channel

from plexloc.config import TrainConfig
from plexloc.errors import InputError
from plexloc.simulation import Simulator
from plexloc.train import Trainer

CHIP = (40, 36)  # the maps' rows x columns; the frames are 16 x 16


def _maps(tmp_path: Path, shape=CHIP) -> dict[str, str]:
    """sCMOS maps of ``shape`` as .npy files (gain, offset, read noise vary per pixel)."""
    rng = np.random.default_rng(0)
    files = {"e_per_adu": 0.5 * (1 + rng.normal(0, 0.05, shape)), "baseline": 100 + rng.normal(0, 5, shape),
             "read_sigma": rng.uniform(1.0, 2.0, shape)}
    out = {}
    for k, v in files.items():
        out[k] = str(tmp_path / f"{k}_{shape[0]}x{shape[1]}.npy")
        np.save(out[k], v.astype(np.float32))
    return out


def _two_channel_full_chip(tmp_path: Path, shape=CHIP, **training) -> TrainConfig:
    """test_device_paths' two-channel ratiometric configuration (transform, jitter, chip-sampled ROIs, a colour
    part) whose second channel's sCMOS maps are ``shape`` (larger than the 16 x 16 frames: cut per sample; the
    first channel, an EMCCD, is not)."""
    t = {"batch_size": 4, "validate_every": 3, "validation_samples": 8, "warmup_steps": 2,
         "transform_jitter_nm": 10.0, "density_range_per_um2": [0.3, 3.0], **training}
    d = _two_channel(training=t).model_dump(mode="json")
    d["channels"][1]["camera"] = {"kind": "scmos", "qe": 0.8, **_maps(tmp_path, shape)}
    return TrainConfig.model_validate(d)


def _one_channel(tmp_path: Path, shape) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["camera"] = {"kind": "scmos", "qe": 0.8, **_maps(tmp_path, shape)}
    return TrainConfig.model_validate(d)


def _on(t: torch.Tensor, device: str) -> bool:
    return t.device.type == torch.device(device).type


# ------------------------------------------------------------------------------------------- helpers (device)
def full_chip_training(device: str, tmp_path: Path) -> None:
    """Training steps and validations with one channel's maps cut per sample on ``device``: the cuts drawn there,
    inside the maps, the maps moved with the simulator; the validation's colour part converts through its cuts."""
    cfg = _two_channel_full_chip(tmp_path)
    tr = Trainer(cfg, tmp_path / "run", device=device)
    assert tr.sim.map_crops() == {1: CHIP}
    assert _on(tr.sim.channels[1].camera.baseline, device)
    b = tr.generator()
    off = b.map_offset_px
    assert _on(off, device) and off.shape == (4, 2, 2) and off.dtype == torch.int64
    assert bool((off[:, 0] == 0).all())  # the EMCCD channel is not cut
    assert bool((off[:, 1] >= 0).all())
    assert int(off[:, 1, 0].max()) <= CHIP[1] - 16 and int(off[:, 1, 1].max()) <= CHIP[0] - 16
    tr.run(steps=4)
    assert tr.step == 4 and math.isfinite(tr.rows[-1]["val_loss"]) and math.isfinite(tr.rows[-1]["loss"])
    assert "color_accuracy" in tr.rows[-1]
    assert all(b.map_offset_px is not None and _on(b.map_offset_px, device) for b in tr.validation.batches)


def full_chip_movie(device: str, tmp_path: Path) -> None:
    """A movie simulated on ``device`` through full-chip maps cut at roi_offset_px: the frames are those of the cut
    camera (Simulator.movie_cameras), noise aside: their mean ADU follows the cut's baseline."""
    cfg = _one_channel_sim(tmp_path)
    sim = Simulator(cfg).to(device)
    emitters, chunks = sim.iter_movie(6, generator=torch.Generator(device=device).manual_seed(1), chunk_frames=4)
    frames = torch.cat([raw for _, raw, _ in chunks], dim=1)
    assert _on(frames, device) and frames.shape == (1, 6, 16, 16)
    cam = sim.movie_cameras()[0]
    assert tuple(cam.baseline.shape) == (16, 16)
    base = sim.channels[0].camera.baseline[7 : 7 + 16, 5 : 5 + 16]
    torch.testing.assert_close(cam.baseline, base)
    # a dark pixel's offset shows: the frames' per-pixel minimum over time tracks the cut's baseline map
    assert float(torch.corrcoef(torch.stack([frames[0].min(0).values.flatten(), base.flatten()]))[0, 1]) > 0.5


def _one_channel_sim(folder: Path):
    from plexloc.config import SimulationConfig, validate_config

    base = np.full(CHIP, 100.0, np.float32)
    base[::2] += 400.0  # stripes of offset: where the cut lies shows in the frames
    np.save(folder / "off.npy", base)
    return validate_config({"frame_size": [16, 16], "roi_offset_px": [5, 7], "psf": {"kind": "gaussian"},
                            "camera": {"kind": "scmos", "baseline": str(folder / "off.npy")},
                            "emitters": {"density_per_um2": 0.3, "photons_range": [500.0, 1500.0]},
                            "background": {"range": [5.0, 10.0]}}, SimulationConfig)


def fit_frames_in_memory(device: str, tmp_path: Path) -> None:
    """fit_movie with a tensor (C, T, H, W) on ``device`` (a CUDA tensor is read through the CPU once, as a file's
    frames are): the same table as the movie's TIFF files, the full-chip maps cut at roi_offset_px."""
    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie
    from plexloc.nets.io import load_model

    cfg = _two_channel_full_chip(tmp_path)
    Trainer(cfg, tmp_path / "run", device=device).run(steps=2)
    net, cfg_dict, _ = load_model(tmp_path / "run", device=device)
    with torch.no_grad():  # detections everywhere: the tables have rows
        net.head_prob[-1].bias.fill_(3.0)
    sim = Simulator(cfg.simulation().model_copy(update={"roi_offset_px": (5, 7)}))
    frames = sim.simulate_movie(5, generator=torch.Generator().manual_seed(2)).frames  # (2, 5, 16, 16) ADU
    kw = dict(config=cfg_dict, device=device, batch_frames=2, roi_offset_px=(5, 7))
    table = fit_movie(frames.to(device), net, **kw)
    paths = [tmp_path / f"ch{c}.tif" for c in range(2)]
    for c, p in enumerate(paths):
        write_movie(p, frames[c].numpy().astype(np.uint16))
    ref = fit_movie(paths, net, **kw)
    assert len(table) > 0 and len(table) == len(ref)
    np.testing.assert_allclose(np.asarray(table["x_nm"]), np.asarray(ref["x_nm"]), rtol=1e-5, atol=1e-3)


def cut_outside_the_maps(device: str) -> None:
    """A cut that reaches outside the maps is an InputError on every device (it was checked only for CPU tensors:
    on CUDA a negative corner wrapped round to the maps' far edge unseen, one past the far edge was a device-side
    assert); the generator's own cuts, drawn inside, are not checked again (no synchronisation per step)."""
    from plexloc.camera.models import SCMOS

    cam = SCMOS(baseline=torch.full(CHIP, 100.0)).to(device)
    x = torch.zeros(3, 16, 16, device=device)
    for bad in ([[-1, 0]], [[0, CHIP[0] - 15]], [[CHIP[1] - 15, 0]]):
        off = torch.tensor(bad * 3, device=device)
        with pytest.raises(InputError, match="reach outside the 40x36 maps"):
            cam.to_photons(x, map_offset_px=off)
        with pytest.raises(InputError, match="reach outside"):
            cam(x, map_offset_px=off)
    ok = torch.tensor([[0, 0], [CHIP[1] - 16, CHIP[0] - 16], [3, 4]], device=device)
    with _SyncCounter() as counts:
        cam.to_photons(x, map_offset_px=ok)
    assert counts.get("_local_scalar_dense", 0) == 1  # the check: one synchronisation
    with _SyncCounter() as counts:
        cam.to_photons(x, map_offset_px=ok, offsets_inside=True)
    assert counts == {}


# ------------------------------------------------------------------------------------------- CPU (CI)
def test_full_chip_training_on_the_cpu(tmp_path):
    full_chip_training("cpu", tmp_path)


def test_full_chip_movie_on_the_cpu(tmp_path):
    full_chip_movie("cpu", tmp_path)


def test_fit_frames_in_memory_on_the_cpu(tmp_path):
    fit_frames_in_memory("cpu", tmp_path)


def test_a_cut_outside_the_maps_on_the_cpu():
    cut_outside_the_maps("cpu")


# ------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_cuda_full_chip_training(tmp_path):
    full_chip_training("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_full_chip_movie(tmp_path):
    full_chip_movie("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_fit_frames_in_memory(tmp_path):
    fit_frames_in_memory("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_a_cut_outside_the_maps():
    cut_outside_the_maps("cuda")


# ------------------------------------------------------------------------------------------- no tensor off the device
class _OnMeta:
    """Every tensor made without ``device=`` lands on the meta device inside (test_cuda_audit38's guard)."""

    def __enter__(self):
        torch.set_default_device("meta")

    def __exit__(self, *exc):
        torch.set_default_device(None)


def test_full_chip_training_and_validation_make_no_tensor_off_the_device(tmp_path):
    """Training steps of the two-channel model whose sCMOS channel's maps are cut per sample (the cuts, the gather
    of the maps, the conversion to photons through them), its validations with the colour part, under the guard."""
    tr = Trainer(_two_channel_full_chip(tmp_path), tmp_path / "run", device="cpu")
    assert tr.sim.map_crops() == {1: CHIP}
    with _OnMeta():
        tr.run(steps=4)
    assert tr.step == 4 and math.isfinite(tr.rows[-1]["val_loss"]) and "color_accuracy" in tr.rows[-1]


def test_a_movie_through_full_chip_maps_makes_no_tensor_off_the_device(tmp_path):
    """iter_movie's chunks through maps cut at roi_offset_px under the guard (its set-up, the emitters and the
    channels' margins, computes on the CPU on purpose and is left out)."""
    sim = Simulator(_one_channel_sim(tmp_path))
    emitters, chunks = sim.iter_movie(6, generator=torch.Generator().manual_seed(1), chunk_frames=4)
    with _OnMeta():
        parts = [raw for _, raw, _ in chunks]
    assert [p.shape[1] for p in parts] == [4, 2] and all(p.device.type == "cpu" for p in parts)


@pytest.mark.filterwarnings("ignore::plexloc.infer.fit.FrameSizeWarning")  # tile_px=8 on purpose: many tiles
def test_the_fit_of_a_tensor_makes_no_tensor_off_the_device(tmp_path, monkeypatch):
    """fit_movie with a (C, T, H, W) tensor and the full-chip maps cut at roi_offset_px: every block's fit (the
    reading of the array, its conversion to photons, the tiles, the table) under the guard, from the first block
    to the last (the fit's checks before and after compute on the CPU on purpose and are left out)."""
    import plexloc.infer.fit as fit_mod

    net, cfg_dict, frames = fitted_two_channel(tmp_path)
    guarded = guard_frame_blocks(monkeypatch)
    table = fit_mod.fit_movie(frames, net, config=cfg_dict, device="cpu", batch_frames=2, roi_offset_px=(5, 7),
                              tile_px=8)
    assert guarded == [0, 2, 4] and len(table) > 0 and np.all(np.isfinite(table["x_nm"]))


def fitted_two_channel(tmp_path):
    """A two-channel full-chip model trained one step that detects everywhere (its configuration dict) and 5 frames
    (C, T, H, W) simulated at roi_offset_px (5, 7)."""
    from plexloc.nets.io import load_model

    cfg = _two_channel_full_chip(tmp_path)
    Trainer(cfg, tmp_path / "run", device="cpu").run(steps=1)
    net, cfg_dict, _ = load_model(tmp_path / "run", device="cpu")
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(3.0)
    sim = Simulator(cfg.simulation().model_copy(update={"roi_offset_px": (5, 7)}))
    return net, cfg_dict, sim.simulate_movie(5, generator=torch.Generator().manual_seed(2)).frames


def guard_frame_blocks(monkeypatch) -> list:
    """Every tensor made while the fit's blocks are fitted goes to the meta device (one left on the host by mistake
    fails); returns the list of the guarded blocks' first frames."""
    import plexloc.infer.fit as fit_mod

    blocks = fit_mod.iter_frame_blocks
    guarded: list = []

    def iter_guarded(*args, **kwargs):
        inner = blocks(*args, **kwargs)
        torch.set_default_device("meta")  # until the last block is fitted
        try:
            for item in inner:
                guarded.append(item[0])
                yield item
        finally:
            torch.set_default_device(None)

    monkeypatch.setattr(fit_mod, "iter_frame_blocks", iter_guarded)
    return guarded


# ------------------------------------------------------------------------------------------- host-device syncs
def _step_and_validation_syncs(cfg: TrainConfig, run: Path) -> tuple[list[dict], dict]:
    tr = Trainer(cfg, run, device="cpu")
    tr.train_step()
    steps = []
    for _ in range(2):
        with _SyncCounter() as counts:
            tr.train_step()
        steps.append(dict(counts))
    with _SyncCounter() as counts:
        tr.validation.score(tr.evaluated, tr.sim)
    return steps, dict(counts)


def test_cut_maps_add_no_synchronisation_to_a_step_or_a_validation(tmp_path):
    """A training step with full-chip maps (40 x 36, a cut per sample) synchronises as often as one with maps of the
    frame's shape (16 x 16): the cuts are drawn inside the maps when the generator is built, so the gather checks
    nothing per batch. The old code checked every cut of CPU tensors with three synchronisations, twice a step
    (simulation and conversion to photons: 10 against 4 per step, 14 against 8 per validation), and never on CUDA."""
    torch.set_num_threads(1)
    full = _step_and_validation_syncs(_one_channel(tmp_path, CHIP), tmp_path / "full")
    frame = _step_and_validation_syncs(_one_channel(tmp_path, (16, 16)), tmp_path / "frame")
    assert full[0][0] == full[0][1] == frame[0][0]
    assert full[1] == frame[1]
