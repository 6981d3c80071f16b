"""The paths bench/gpu.sh runs on CUDA that no GPU test covered (review 38, a CUDA-readiness audit of the code since the
last GPU run, c8333481): a run from packed bfloat16 weights with the source's clock (plans dual / dual_more: NHWC,
fused AdamW, the weight average, the seam validation, resumed on the device and read on the CPU), per-sample densities
on the device's generator, a fit refined by the MLE (issue10's quad-plane model, ``--refine-mle``), and the patch-wise
render of large frames with adaptive patch sizes (the fitting and test movies).

Each helper takes the device: the ``gpu`` tests run it on CUDA (skipped without one); the CPU tests run the same
helper in CI, so that the GPU tests' own logic cannot rot unseen between leases. Small on purpose: bench/gpu.sh gives
all GPU tests 60-90 s."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.nets.io import load_model
from plexloc.simulation import Simulator
from plexloc.simulation.generator import BatchGenerator
from plexloc.train import Trainer
from plexloc.train.trainer import read_init_source

_spec = importlib.util.spec_from_file_location("pack_weights", Path(__file__).resolve().parents[1] / "bench" / "pack_weights.py")
pack_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pack_weights)


def _tiny(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(validate_every=4, validation_samples=8, **training)
    return TrainConfig.model_validate(d)


def _on(t: torch.Tensor, device: str) -> bool:
    return t.device.type == torch.device(device).type


def run_from_packed_weights(device: str, tmp_path: Path) -> None:
    """plan dual, then dual_more: a run trained on ``device`` (channels-last, as the speed plan's NHWC runs), its
    checkpoint's weights packed as bfloat16 parts and unpacked, and a new run from them with the source's clock (the
    seam row, the warm-up's rate, a fresh fused optimizer and weight average on the device), resumed on the device;
    its GPU-written files read on the CPU."""
    cfg = _tiny(channels_last=True)
    src = tmp_path / "src"
    tr = Trainer(cfg, src, device=device)
    assert tr.channels_last and tr.model.is_channels_last
    tr.run(steps=8)
    parts = pack_weights.pack(src / "checkpoint.pt", tmp_path / "parts", "tiny", part_mib=0.01)
    assert len(parts) > 1
    meta = pack_weights.unpack(tmp_path / "parts", "tiny", tmp_path / "w.pt")
    assert meta["weights_dtype"] == "bfloat16" and meta["step"] == 8
    ft = Trainer(cfg, tmp_path / "ft", device=device, init_from=tmp_path / "w.pt", clock_offset_min="source")
    assert ft.step == 8 and _on(ft._skipped, device)
    assert all(_on(q, device) for q in ft.model.parameters()) and all(_on(q, device) for q in ft.average.parameters())
    ft.run(steps=12)
    seam = next(r for r in ft.rows if r.get("segment") == 1)
    assert seam["step"] == 8 and math.isnan(seam["loss"]) and math.isfinite(seam["val_loss"])
    assert seam["lr"] == pytest.approx(cfg.training.lr / cfg.training.warmup_steps)
    assert ft.rows[-1]["step"] == 12 and math.isfinite(ft.rows[-1]["loss"])
    for q in ft.model.parameters():  # the fresh optimizer's state lives beside its weights
        state = ft.optimizer.state[q]
        assert _on(state["exp_avg"], device) and _on(state["exp_avg_sq"], device)
        assert state["exp_avg"].stride() == q.stride()
    # resumed on the device: the init_from run's origin, average and stream go on
    again = Trainer(cfg, tmp_path / "ft", device=device, resume=True)
    assert again.origin["segment"] == 1 and again.step == 12
    assert all(_on(q, device) for q in again.average.parameters())
    again.run(steps=14)
    assert again.step == 14 and [r["segment"] for r in again.rows[-2:]] == [1, 1]
    # what the device wrote opens on the CPU: the model, and the checkpoint as the next lease's source
    model, _, meta = load_model(tmp_path / "ft", device="cpu")
    assert next(model.parameters()).device.type == "cpu" and meta["origin"]["segment"] == 1
    back = read_init_source(tmp_path / "ft" / "checkpoint.pt")
    assert back.step == 14 and back.segment == 1 and next(back.model.parameters()).device.type == "cpu"


def per_sample_densities(device: str) -> None:
    """training.density_range_per_um2 on the device: each sample's density drawn with the device's generator, its
    emitters spread over the samples by torch.multinomial there."""
    cfg = _tiny()
    sim = Simulator(cfg.simulation()).to(device)
    gen = BatchGenerator(sim, batch_size=6, window=3, seed=3, density_range_per_um2=(0.3, 3.0))
    assert gen.generator.device.type == torch.device(device).type
    b = gen()
    assert _on(b.frames, device) and _on(b.target_mask, device) and b.frames.shape[0] == 6
    assert bool(torch.isfinite(b.frames).all())


def fit_refined_by_the_mle(device: str, tmp_path: Path) -> None:
    """plexloc fit --refine-mle on the device (issue10's quad-plane accuracy run): a two-channel model whose every
    pixel fires (so that the refiner has rows to fit: its windows, fits, neighbour images and goodness-of-fit test run
    on the device; these random rows' refits are mostly rejected, test_mle_refine covers the kept ones on CUDA); the
    refined table's columns."""
    from test_device_paths import _two_channel

    from plexloc.infer import fit_movie
    from plexloc.io.tiff import write_movie

    cfg = _two_channel(frame_size=[32, 32])
    Trainer(cfg, tmp_path / "run", device=device).run(steps=2)
    net, cfg_dict, _ = load_model(tmp_path / "run", device=device)
    with torch.no_grad():  # detections everywhere: the refinement has rows to fit
        net.head_prob[-1].weight.normal_(0.0, 3.0, generator=torch.Generator(device=net.head_prob[-1].weight.device).manual_seed(1))
        net.head_prob[-1].bias.fill_(0.0)
    movie = Simulator(cfg.simulation()).simulate_movie(4, generator=torch.Generator().manual_seed(2))
    paths = [tmp_path / f"ch{c}.tif" for c in range(2)]
    for c, p in enumerate(paths):
        write_movie(p, movie.frames[c].numpy().astype(np.uint16))
    stats: dict = {}
    table = fit_movie(paths, net, config=cfg_dict, device=device, refine_mle=True, stats=stats, batch_frames=2)
    assert len(table) > 0 and "refined" in table.columns and "crlb_x_nm" in table.columns
    assert np.all(np.isfinite(table["x_nm"])) and stats["frames"] == 4
    refined = np.asarray(table["refined"]) == 1
    assert np.all(np.isfinite(np.asarray(table["crlb_x_nm"])[refined]))
    for col in ("photons_ch0", "photons_ch1", "sigma_photons_ch1", "bg_ch1", "crlb_z_nm", "llr", "roi_px"):
        assert col in table.columns


def patch_wise_render(device: str) -> None:
    """A movie's frames larger than the separable render's limit (bench/throughput.py's 256-px fitting movies,
    bench/accuracy.py's test movies) render patch by patch, each emitter on its own patch size of the ladder
    (adaptive patches): on the device the same frames as on the CPU."""
    from plexloc.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "3d_astigmatic.yaml")
    cfg.frame_size = (150, 140)
    psf = Simulator(cfg).channels[0].psf
    assert psf.adaptive_roi and not psf.uses_frame_slots(cfg.frame_size)
    g = torch.Generator().manual_seed(3)
    n = 300
    args = (torch.rand(n, generator=g) * 14000.0, torch.rand(n, generator=g) * 15000.0,
            torch.empty(n).uniform_(-700.0, 700.0, generator=g), torch.empty(n).uniform_(500.0, 5000.0, generator=g),
            torch.randint(0, 3, (n,), generator=g))
    assert len(psf.patch_groups(*args[:4])) > 1  # several patch sizes
    ref = psf.render(*args, n_frames=3, frame_shape=cfg.frame_size)
    out = psf.to(device).render(*(a.to(device) for a in args), n_frames=3, frame_shape=cfg.frame_size)
    assert _on(out, device)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4 * float(ref.max()))


# ------------------------------------------------------------------------------------------- CPU (CI)
def test_run_from_packed_weights_on_the_cpu(tmp_path):
    run_from_packed_weights("cpu", tmp_path)


def test_per_sample_densities_on_the_cpu():
    per_sample_densities("cpu")


def test_fit_refined_by_the_mle_on_the_cpu(tmp_path):
    fit_refined_by_the_mle("cpu", tmp_path)


def test_patch_wise_render_on_the_cpu():
    patch_wise_render("cpu")


# ------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_cuda_run_from_packed_weights(tmp_path):
    run_from_packed_weights("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_per_sample_densities():
    per_sample_densities("cuda")


@pytest.mark.gpu
def test_cuda_fit_refined_by_the_mle(tmp_path):
    fit_refined_by_the_mle("cuda", tmp_path)


@pytest.mark.gpu
def test_cuda_patch_wise_render():
    patch_wise_render("cuda")


# ------------------------------------------------------------------------------------------- host-device syncs
class _SyncCounter:
    """Counts the dispatched ops that make a CUDA device's host wait (a boolean-mask index, nonzero, .item()), the
    same ops on the CPU (where they cost nothing): what bench/diag/sim_profile.py counts."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        counts: dict[str, int] = {}

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func.overloadpacket.__name__
                masked = name in ("index", "index_put_", "index_put") and any(
                    t is not None and getattr(t, "dtype", None) == torch.bool for t in (args[1] if len(args) > 1 else []))
                if masked or name in ("nonzero", "_local_scalar_dense") or (
                        name == "repeat_interleave" and not (kwargs or {}).get("output_size")):
                    key = "mask_index" if masked else name
                    counts[key] = counts.get(key, 0) + 1
                return func(*args, **(kwargs or {}))

        self.mode, self.counts = Mode(), counts

    def __enter__(self):
        self.mode.__enter__()
        return self.counts

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def test_selections_by_a_mask_synchronise_once():
    """Emitters.select and the tiles' core selection (predict._select) with a boolean mask: one nonzero, not one
    synchronising mask index per field (5 and 10 of them per call; a training step made 11 to 14 such, a fitted tile
    10); the same rows."""
    from plexloc.infer.predict import Extracted, _select
    from plexloc.simulation.emitters import Emitters

    g = torch.Generator().manual_seed(0)
    n = 50
    em = Emitters(xyz_nm=torch.rand(n, 3, generator=g), photons=torch.rand(n, 2, generator=g),
                  frame_ix=torch.arange(n), id=torch.arange(n), color=torch.zeros(n, dtype=torch.int64))
    mask = torch.rand(n, generator=g) > 0.5
    with _SyncCounter() as counts:
        sub = em.select(mask)
    assert counts == {"nonzero": 1}
    assert torch.equal(sub.id, torch.arange(n)[mask]) and torch.equal(sub.xyz_nm, em.xyz_nm[mask])
    ex = Extracted(*(torch.rand(n, 2, generator=g) if f in ("photons", "sigma", "bg") else torch.arange(n)
                     for f in Extracted.__dataclass_fields__))
    with _SyncCounter() as counts:
        kept = _select(ex, mask)
    assert counts == {"nonzero": 1}
    assert torch.equal(kept.sample, torch.arange(n)[mask]) and torch.equal(kept.sigma, ex.sigma[mask])


def test_sampling_emitters_synchronises_three_times():
    """sample_emitters: the Poisson count, the total of the frames the on-intervals span and the rows kept (it also
    synchronised in both repeat_interleave calls and in three mask indexes); the same emitters."""
    from plexloc.simulation.emitters import sample_emitters

    cfg = _tiny().simulation()
    kw = dict(n_sequences=4, n_frames=3, fov_nm=(1600.0, 1600.0), photon_model=cfg.photon_model, throughputs=[1.0])
    with _SyncCounter() as counts:
        em = sample_emitters(cfg.emitters, generator=torch.Generator().manual_seed(4), **kw)
    assert len(em) > 10
    assert counts == {"_local_scalar_dense": 2, "nonzero": 1}


# ------------------------------------------------------------------------------------------- no tensor off the device
def test_the_hot_paths_make_no_tensor_off_the_device(tmp_path):
    """A tensor made without ``device=`` lands on the CPU, and on CUDA meets the device's tensors in an error (or a
    copy) that no CPU test sees. Here every tensor made without a device lands on the ``meta`` device instead, which
    fails wherever it meets a real one: the training steps of a two-channel ratiometric model (transform indicator,
    registration jitter, per-sample densities, an sCMOS channel), its validations with the colour part, the
    checkpoints and the weight average, an init_from run's seam, and the network's fitting of frame blocks in tiles
    run clean. (The construction of the trainer and the Predictor, and the fit's checks, compute on the CPU on
    purpose and are left out.)"""
    from test_device_paths import _two_channel

    from plexloc.infer.fit import to_table
    from plexloc.infer.predict import Predictor, iter_frame_blocks

    cfg = _two_channel(training={"batch_size": 4, "validate_every": 3, "validation_samples": 8, "warmup_steps": 2,
                                 "transform_jitter_nm": 10.0, "density_range_per_um2": [0.3, 3.0]})
    tr = Trainer(cfg, tmp_path / "run", device="cpu")
    net = tr.evaluated
    predictor = Predictor(net, transforms=[ch.transform for ch in tr.sim.channels], threshold=0.05, tile_px=8)
    frames = torch.rand(7, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 60.0
    torch.set_default_device("meta")
    try:
        tr.run(steps=4)
        rows = 0
        for first, block in iter_frame_blocks([frames[:4], frames[4:]], window=net.spec.window, batch_frames=3):
            ex = predictor.localize_frames(block, (10, 4))
            n = block.shape[0] - 2 * (net.spec.window // 2)
            rows += len(to_table(ex, np.arange(first, first + n), net))
    finally:
        torch.set_default_device(None)
    assert tr.step == 4 and math.isfinite(tr.rows[-1]["val_loss"]) and "color_accuracy" in tr.rows[-1]
    ft = Trainer(cfg, tmp_path / "ft", device="cpu", init_from=tmp_path / "run", clock_offset_min="source")
    torch.set_default_device("meta")
    try:
        ft.run(steps=6)
    finally:
        torch.set_default_device(None)
    assert [r.get("segment") for r in ft.rows][-2:] == [1, 1] and ft.step == 6
