"""Training review (session 42), small experiments of known answer on tiny models: the plateau rule against a fake
validation sequence (when it halves, its patience, its floor, warm-up), the plateau count over a stop and a
--resume, the sample stream of an init_from run, and the loss (count + Gaussian mixture + background) and its
targets against hand computation."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.nets.localizer import LocalizerSpec, Prediction
from plexloc.simulation.emitters import Emitters
from plexloc.simulation.generator import BatchGenerator
from plexloc.simulation.simulator import Simulator
from plexloc.train import Trainer
from plexloc.train.loss import decode_loss
from plexloc.train import trainer as trainer_module
from plexloc.train.trainer import training_simulation


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    """No curves.png: drawing it is most of a tiny model's validation time (the curves are tested elsewhere)."""
    monkeypatch.setattr(trainer_module, "plot_curves", lambda rows, path: None)


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def fake_validation(tr: Trainer, val_loss) -> list[float]:
    """``tr``'s validations score ``val_loss(step)`` as their loss; returns the rate each later step trains with."""
    score, step = tr.validation.score, tr.train_step
    rates: list[float] = []

    def scored(model, sim, **kw):
        return {**score(model, sim, **kw), "val_loss": val_loss(tr.step)}

    def spy():
        out = step()
        rates.append(tr.optimizer.param_groups[0]["lr"])
        return out

    tr.validation.score, tr.train_step = scored, spy
    return rates


def test_the_plateau_rule_halves_after_patience_bad_validations_and_stops_at_min_lr(tmp_path):
    """lr 1e-3, warm-up 3 steps, a validation every step, lr_patience 2, min_lr 2e-4. Warm-up: 1/3, 2/3, 1 x lr, and
    its validations (steps 1, 2) are not counted. From step 3 (loss 4, the baseline) the losses are 4, 4, 3 (step 6:
    better), then 3 for ever: the third validation in a row without improvement halves the rate (after steps 9, 12,
    15: torch's patience, validations tolerated), and the floor holds it at 2e-4 (5e-4, 2.5e-4, then 2e-4, not
    1.25e-4)."""
    cfg = tiny_config(validate_every=1, lr_patience=2, warmup_steps=3, lr=1e-3, min_lr=2e-4, ema_steps=0)
    tr = Trainer(cfg, tmp_path / "run")
    losses = {1: 5.0, 2: 4.0, 3: 4.0, 4: 4.0, 5: 4.0}
    rates = fake_validation(tr, lambda s: losses.get(s, 3.0))
    tr.run(steps=20)
    want = [1e-3 / 3, 2e-3 / 3] + [1e-3] * 7 + [5e-4] * 3 + [2.5e-4] * 3 + [2e-4] * 5
    assert rates == pytest.approx(want, rel=1e-12)


def test_a_run_stopped_off_the_validation_grid_resumes_with_the_uninterrupted_rates(tmp_path):
    """Validations every 4 steps, lr_patience 1, losses 3.0 (step 4), 3.5 (6), 3.2 (8), 3.1 (12). Uninterrupted, steps
    8 and 12 are the first two without improvement: the rate is halved after step 12. Stopped at step 6 and resumed, the
    stop's validation (of the partial interval) counted for the plateau too, and the rate was halved after step 8:
    steps 9-12 trained at 5e-4, and the weights differed. The stop's row stays in the log; the rates and weights are
    now the uninterrupted run's, bit for bit."""
    cfg = tiny_config(validate_every=4, lr_patience=1, warmup_steps=0, lr=1e-3)
    losses = {4: 3.0, 6: 3.5, 8: 3.2, 12: 3.1}
    whole = Trainer(cfg, tmp_path / "whole")
    want = fake_validation(whole, losses.__getitem__)
    whole.run(steps=12)
    cut = Trainer(cfg, tmp_path / "cut")
    got = fake_validation(cut, losses.__getitem__)
    cut.run(steps=6)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    after = fake_validation(resumed, losses.__getitem__)
    resumed.run(steps=12)
    assert want == got + after == [1e-3] * 12
    assert [r["step"] for r in resumed.rows] == [4, 6, 8, 12]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # step 12, the second validation in a row without improvement, halves the rate for the steps after it, in both
    assert resumed.scheduler.state_dict() == whole.scheduler.state_dict()
    assert resumed.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"] == 5e-4


def test_a_ctrl_c_in_a_validations_saves_counts_that_validation_once(tmp_path, monkeypatch):
    """Ctrl-C while step 8's validation writes the checkpoint: run() validates step 8 again. lr_patience 1, losses 3.0
    (step 4), 3.5 (8), 3.4 (12): uninterrupted, the rate is halved only after step 12. Counted twice, step 8 alone
    halved it (the resumed run trained steps 9-12 at 5e-4)."""
    cfg = tiny_config(validate_every=4, lr_patience=1, warmup_steps=0, lr=1e-3)
    losses = {4: 3.0, 8: 3.5, 12: 3.4}
    whole = Trainer(cfg, tmp_path / "whole")
    want = fake_validation(whole, losses.__getitem__)
    whole.run(steps=12)
    cut = Trainer(cfg, tmp_path / "cut")
    got = fake_validation(cut, losses.__getitem__)
    save = cut.save_checkpoint
    calls: list[int] = []

    def interrupted_at_8():
        calls.append(cut.step)
        if cut.step == 8 and calls.count(8) == 1:
            raise KeyboardInterrupt
        save()

    monkeypatch.setattr(cut, "save_checkpoint", interrupted_at_8)
    cut.run(steps=12)
    assert cut.interrupted and calls == [4, 8, 8] and cut.step == 8
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    after = fake_validation(resumed, losses.__getitem__)
    resumed.run(steps=12)
    assert want == got + after == [1e-3] * 12
    assert resumed.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"] == 5e-4


def _batch_hashes(tr: Trainer) -> list[str]:
    seen: list[str] = []
    draw = tr.generator

    class Recorded:
        def __call__(self):
            b = draw()
            seen.append(hashlib.sha1(b.frames.cpu().numpy().tobytes()).hexdigest())
            return b

        def __getattr__(self, name):
            return getattr(draw, name)

    tr.generator = Recorded()
    return seen


def test_an_init_from_run_does_not_train_on_its_sources_batches(tmp_path):
    """The same configuration and seed: a run started from a model's weights with its clock at 0 drew the source
    run's batches again, one for one (its stream was seeded by the step alone, 0 in both); now each optimizer
    segment has its own stream. A run trained from scratch keeps its stream (same batches with the same seed)."""
    cfg = tiny_config(validate_every=3)
    src = Trainer(cfg, tmp_path / "src")
    source = _batch_hashes(src)
    src.run(steps=6)
    again = Trainer(cfg, tmp_path / "again")
    same = _batch_hashes(again)
    again.run(steps=3)
    assert same == source[:3]
    for clock, steps in ((None, 6), ("source", 12), (5.0, 12)):
        tr = Trainer(cfg, tmp_path / f"ft_{clock}", init_from=tmp_path / "src", clock_offset_min=clock)
        seen = _batch_hashes(tr)
        tr.run(steps=steps)
        assert len(seen) == 6 and not set(seen) & set(source), clock


# ---------------------------------------------------------------------------------------------------------------
# the loss against a hand computation (numpy, float64)

def _hand_loss(prob, off, sig, phot, bg, spec, xyz, photons, mask, bg_true):
    """DECODE-Plex eq. 2 and the count and background terms, written out pixel by pixel."""
    b, _, h, w = prob.shape
    p = prob.reshape(b, -1)
    n = mask.sum(1)
    mean, var = p.sum(1), np.maximum((p * (1 - p)).sum(1), 0.01)
    count = np.mean(0.5 * (n - mean) ** 2 / var + 0.5 * np.log(var) + 0.5 * np.log(2 * np.pi))
    ll = []
    for s in range(b):
        for k in np.flatnonzero(mask[s]):
            u = [xyz[s, k, 0] / spec.px_size_nm[0], xyz[s, k, 1] / spec.px_size_nm[1]]
            if spec.is_3d:
                u.append(xyz[s, k, 2] / spec.z_scale_nm)
            ph = photons[s, k] if spec.n_photons == photons.shape[-1] else [photons[s, k].sum()]
            u = np.array(u + [v / spec.photon_scale for v in ph])
            terms = []
            for i in range(h):
                for j in range(w):
                    mu = [j + 0.5 + off[s, 0, i, j], i + 0.5 + off[s, 1, i, j]]  # the pixel centre + offset (pixels)
                    sd = [sig[s, 0, i, j], sig[s, 1, i, j]]
                    if spec.is_3d:
                        mu.append(off[s, 2, i, j] / spec.z_scale_nm)
                        sd.append(sig[s, 2, i, j] / spec.z_scale_nm)
                    for c in range(spec.n_photons):
                        mu.append(phot[s, c, i, j] / spec.photon_scale)
                        sd.append(sig[s, 3 + c, i, j] / spec.photon_scale)
                    mu, sd = np.array(mu), np.array(sd)
                    log_n = np.sum(-0.5 * ((u - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi))
                    terms.append(np.log(p[s, i * w + j] / mean[s]) + log_n)
            ll.append(np.log(np.sum(np.exp(terms))))
    loc = -np.mean(ll) if ll else 0.0  # eq. 2: the mean over the batch's emitters
    norm = np.array(spec.bg_loss_scale).reshape(1, -1, 1, 1)
    return count, loc, np.mean(((bg - bg_true) / norm) ** 2)


@pytest.mark.parametrize("kind", ["2d_one_emitter", "3d_two_colours", "linked_two_channels"])
def test_the_loss_is_the_hand_computed_one(kind):
    rng = np.random.default_rng(7)
    if kind == "2d_one_emitter":  # one emitter at the centre of pixel (row 0, column 1): x 150, y 50 nm
        spec = LocalizerSpec(n_channels=1, n_photons=1, px_size_nm=(100.0, 100.0), photon_scale=6000.0,
                             bg_loss_scale=[8.0])
        b, h, w = 1, 2, 3
        xyz, photons, mask = np.array([[[150.0, 50.0, 0.0]]]), np.array([[[2000.0]]]), np.array([[True]])
    else:  # two samples, the second with one target and a padded slot; non-square pixels
        spec = LocalizerSpec(n_channels=2, n_photons=2 if kind == "3d_two_colours" else 1, px_size_nm=(100.0, 120.0),
                             is_3d=kind == "3d_two_colours", z_scale_nm=480.0, photon_scale=6000.0,
                             bg_loss_scale=[8.0, 12.0])
        b, h, w = 2, 3, 4
        xyz = np.array([[[150.0, 50.0, -100.0], [230.0, 310.0, 200.0]], [[10.0, 20.0, 0.0], [0.0, 0.0, 0.0]]])
        photons = np.array([[[2000.0, 500.0], [800.0, 3000.0]], [[1500.0, 1500.0], [0.0, 0.0]]])
        mask = np.array([[True, True], [True, False]])
    n_ph = spec.n_photons
    prob = rng.uniform(0.01, 0.9, (b, 1, h, w))
    off = np.concatenate([rng.uniform(-0.9, 0.9, (b, 2, h, w)), rng.uniform(-400, 400, (b, 1, h, w))], 1)
    sig = np.concatenate([rng.uniform(0.2, 1.5, (b, 2, h, w)), rng.uniform(30, 200, (b, 1, h, w)),
                          rng.uniform(50, 800, (b, n_ph, h, w))], 1)
    phot = rng.uniform(500, 5000, (b, n_ph, h, w))
    bg, bg_true = rng.uniform(10, 60, (2, b, spec.n_channels, h, w))
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    parts = decode_loss(Prediction(f32(prob), f32(phot), f32(off), f32(sig), f32(bg)), spec,
                        target_xyz_nm=f32(xyz), target_photons=f32(photons), target_mask=torch.tensor(mask),
                        bg=f32(bg_true))
    count, loc, bg_loss = _hand_loss(prob, off, sig, phot, bg, spec, xyz, photons, mask, bg_true)
    assert float(parts.count) == pytest.approx(count, rel=1e-6)
    assert float(parts.loc) == pytest.approx(loc, rel=1e-6)
    assert float(parts.bg) == pytest.approx(bg_loss, rel=1e-6)
    assert float(parts.total) == pytest.approx(count + loc + bg_loss, rel=1e-6)


def test_dim_and_outside_emitters_light_the_frame_but_are_not_targets():
    """One window of 3 frames, every emitter in its middle frame, no background or camera noise: 99 photons (under
    min_target_photons 100) and emitters outside the frame (x -30 nm, x = width, y -0.01 nm) are rendered but not
    targets; 100 photons, x = width - 0.01 nm and y = 0 are targets."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["background"] = {"range": [0.0, 0.0]}
    d["camera"] = {"kind": "emccd", "read_sigma": 0.0, "spurious_charge": 0.0}
    sim = Simulator(training_simulation(TrainConfig.model_validate(d)))
    width = 1600.0
    rows = [(800, 800, 5000), (400, 400, 99), (1200, 400, 100), (-30, 800, 5000), (width, 800, 5000),
            (width - 0.01, 1200, 5000), (800, -0.01, 5000), (800, 0.0, 5000)]
    n = len(rows)
    sim.sample_emitters = lambda **kw: Emitters(
        torch.tensor([[x, y, 0.0] for x, y, _ in rows]), torch.tensor([[float(p)] for *_, p in rows]),
        torch.ones(n, dtype=torch.long), torch.arange(n), torch.zeros(n, dtype=torch.long))
    b = BatchGenerator(sim, batch_size=1, window=3, min_target_photons=100.0, seed=0, margin_px=2.0)()
    got = b.target_xyz_nm[0][b.target_mask[0]][:, :2].tolist()
    assert np.allclose(got, [[800, 800], [1200, 400], [width - 0.01, 1200], [800, 0]])
    frame = b.frames[0, 1, 0] - 100.0  # ADU above the baseline
    assert float(frame[3:6, 3:6].sum()) > 100  # the 99-photon emitter at pixel (4, 4)
    assert float(frame[7:10, 0].sum()) > 1000  # the one 30 nm left of the frame lights column 0
    assert float(b.frames[0, 0].std()) == float(b.frames[0, 2].std()) == 0.0
    assert math.isclose(float(b.target_photons[0][b.target_mask[0]][1, 0]), 100.0)


def test_a_2d_model_of_a_3d_psf_is_validated_in_2d_as_plexloc_evaluate_scores_it(tmp_path, monkeypatch):
    """An astigmatic PSF trained at z 0 only (z_range_nm [0, 0]): the model predicts no z. Its validation matched and
    scored in 3D, and read rmse_ax 0, eff_ax 100 (= JI), eff_3d 95 and crlb_ratio_ax 0 for predictions 10 nm off in x,
    where plexloc evaluate scores the same tables in 2D (the truth has no z): JI 100, RMSE 10 nm, E_lat 90 %."""
    import plexloc.train.validation as validation
    from plexloc.table import LocTable

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["psf"] = {"kind": "astigmatic"}
    d["emitters"]["z_range_nm"] = [0.0, 0.0]
    tr = Trainer(TrainConfig.model_validate(d), tmp_path / "run")
    assert not tr.model.spec.is_3d
    truth = tr.validation.truth

    def the_truth_10_nm_off(ex, frames, model):  # the network's table of a batch: its truth, x + 10 nm
        sel = np.isin(np.asarray(truth["frame"]), frames)
        cols = {k: np.asarray(truth[k], float)[sel] for k in ("x_nm", "y_nm", "z_nm", "photons")}
        return LocTable({"frame": np.asarray(truth["frame"])[sel], **cols, "x_nm": cols["x_nm"] + 10.0})

    monkeypatch.setattr(validation, "to_table", the_truth_10_nm_off)
    s = tr.validation.score(tr.evaluated, tr.sim)
    assert (s["jaccard"], s["rmse_lat"], s["eff_lat"]) == pytest.approx((100.0, 10.0, 90.0))
    assert all(math.isnan(s[k]) for k in ("rmse_ax", "eff_ax", "eff_3d", "crlb_ratio_ax"))
