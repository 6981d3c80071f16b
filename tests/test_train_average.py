"""The moving average of the weights (``training.ema_steps``): what it averages, what validation scores and
``model.pt`` holds, and that a resumed run keeps it."""

from __future__ import annotations

import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.nets.io import load_model
from plexloc.train import Trainer
from plexloc.train.trainer import CHECKPOINT_FILE


def _config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def _params(model) -> list[torch.Tensor]:
    return [q.detach().clone() for q in model.parameters()]


def test_one_step_moves_the_average_by_the_warm_up_decay(tmp_path):
    """After step s the average is decay * average + (1 - decay) * weights, decay = min(1 - 1/T, (1 + s)/(10 + s))."""
    tr = Trainer(_config(ema_steps=50, validate_every=1000), tmp_path / "run")
    before = _params(tr.average)
    assert all(torch.equal(a, w) for a, w in zip(before, _params(tr.model)))  # starts at the initial weights
    for step in (1, 2):
        avg0 = _params(tr.average)
        tr.train_step()
        assert tr.step == step
        decay = min(1 - 1 / 50, (1 + step) / (10 + step))
        for a0, a1, w in zip(avg0, _params(tr.average), _params(tr.model)):
            torch.testing.assert_close(a1, decay * a0 + (1 - decay) * w, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(a, w) for a, w in zip(_params(tr.average), _params(tr.model)))
    assert not any(q.requires_grad for q in tr.average.parameters())


def test_model_file_holds_the_average_and_ema_steps_0_the_weights(tmp_path):
    tr = Trainer(_config(ema_steps=20), tmp_path / "a")
    tr.run(steps=6)
    saved, _, meta = load_model(tmp_path / "a" / "model.pt")
    avg, last = tr.average.state_dict(), tr.model.state_dict()
    step = meta["step"]
    assert step == 6 or step == 3  # the best validation of the two
    if step == 6:
        assert all(torch.equal(saved.state_dict()[k], avg[k]) for k in avg)
        assert any(not torch.equal(saved.state_dict()[k], last[k]) for k in last)
    plain = Trainer(_config(ema_steps=0), tmp_path / "b")
    assert plain.average is None and plain.evaluated is plain.model
    plain.run(steps=6)
    saved, _, meta = load_model(tmp_path / "b" / "model.pt")
    if meta["step"] == 6:
        assert all(torch.equal(v, plain.model.state_dict()[k]) for k, v in saved.state_dict().items())


def test_validation_scores_the_average(tmp_path, monkeypatch):
    """The row's metrics are the average's: validation is handed the averaged network."""
    tr = Trainer(_config(ema_steps=20, validate_every=1000), tmp_path / "run")
    for _ in range(3):
        tr.train_step()
    seen = []
    real = tr.validation.score
    monkeypatch.setattr(tr.validation, "score", lambda model, *a, **k: seen.append(model) or real(model, *a, **k))
    tr.validate(None, 1.0)
    assert seen == [tr.average]


def test_a_resumed_run_keeps_the_average_and_an_old_checkpoint_starts_one(tmp_path):
    cfg = _config(ema_steps=20)
    whole = Trainer(cfg, tmp_path / "whole")
    whole.run(steps=6)
    cut = Trainer(cfg, tmp_path / "cut")
    cut.run(steps=3)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    assert all(torch.equal(a, b) for a, b in zip(_params(resumed.average), _params(cut.average)))
    resumed.run(steps=6)
    for a, b in zip(_params(resumed.average), _params(whole.average)):
        torch.testing.assert_close(a, b)
    # a checkpoint written before the average existed: the resumed run starts it from the checkpoint's weights
    ck = torch.load(tmp_path / "cut" / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    ck.pop("average")
    torch.save(ck, tmp_path / "cut" / CHECKPOINT_FILE)
    old = Trainer(cfg, tmp_path / "cut", resume=True)
    assert all(torch.equal(a, w) for a, w in zip(_params(old.average), _params(old.model)))


def test_a_checkpoint_loaded_as_a_model_gives_the_average(tmp_path):
    tr = Trainer(_config(ema_steps=20), tmp_path / "run")
    tr.run(steps=4)
    net = load_model(tmp_path / "run" / CHECKPOINT_FILE)[0]
    avg = tr.average.state_dict()
    assert all(torch.equal(v, avg[k]) for k, v in net.state_dict().items())
    assert any(not torch.equal(v, tr.model.state_dict()[k]) for k, v in net.state_dict().items())


def test_a_fine_tuning_phase_restarts_the_averages_warm_up(tmp_path):
    """A resume with a new schedule starts the average from the weights and counts its warm-up from there, so that a
    short phase's model.pt is the phase's own network; a plain resume carries the count on."""
    run = tmp_path / "run"
    Trainer(_config(ema_steps=1000, validate_every=1000), run).run(steps=5)
    plain = Trainer(_config(ema_steps=1000, validate_every=1000), run, resume=True)
    assert plain.average_from == 0
    assert any(not torch.equal(a, w) for a, w in zip(_params(plain.average), _params(plain.model)))
    ft = Trainer(_config(ema_steps=1000, validate_every=1000), run, resume=True, schedule={"lr": 1e-4})
    assert ft.average_from == 5
    assert all(torch.equal(a, w) for a, w in zip(_params(ft.average), _params(ft.model)))
    avg0 = _params(ft.average)
    ft.train_step()
    decay = 2 / 11  # (1 + k) / (10 + k) at k = 1 step into the phase, not (1 + 6) / (10 + 6)
    for a0, a1, w in zip(avg0, _params(ft.average), _params(ft.model)):
        torch.testing.assert_close(a1, decay * a0 + (1 - decay) * w, rtol=1e-5, atol=1e-7)
    ft.run(steps=8)
    again = Trainer(_config(ema_steps=1000, validate_every=1000), run, resume=True)
    assert again.average_from == 5  # kept in the checkpoint
