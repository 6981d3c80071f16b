"""bfloat16 autocast in CPU training (``training.amp``): on where the CPU runs bfloat16 natively, float32 elsewhere
and where the configuration turns it off; the network's convolutions then really compute in bfloat16."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.train import Trainer
from plexloc.train import trainer as trainer_module
from plexloc.train import validation as validation_module


def _config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def _conv_dtypes(tr: Trainer, call) -> set[torch.dtype]:
    """Output dtypes of the network's first convolution during ``call()``."""
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d))
    seen: set[torch.dtype] = set()
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    try:
        call()
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("supported", [True, False])
def test_cpu_training_uses_bfloat16_where_the_cpu_has_it(tmp_path, monkeypatch, supported):
    for module in (trainer_module, validation_module):
        monkeypatch.setattr(module, "cpu_bf16_supported", lambda: supported)
    tr = Trainer(_config(), tmp_path / "run", device="cpu")
    assert tr.amp is supported
    want = torch.bfloat16 if supported else torch.float32
    assert _conv_dtypes(tr, tr.train_step) == {want}
    # validation scores the network as it trains (the same arithmetic)
    scores: dict = {}
    avg = tr.evaluated
    conv = next(m for m in avg.modules() if isinstance(m, torch.nn.Conv2d))
    seen: set[torch.dtype] = set()
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    try:
        scores = tr.validation.score(avg, tr.sim, amp=tr.amp)
    finally:
        handle.remove()
    assert seen == {want}
    assert math.isfinite(scores["val_loss"])
    # the weights stay float32 whatever the arithmetic
    assert {q.dtype for q in tr.model.parameters()} == {torch.float32}


def test_amp_off_in_the_configuration_keeps_float32_on_a_bf16_cpu(tmp_path, monkeypatch):
    for module in (trainer_module, validation_module):
        monkeypatch.setattr(module, "cpu_bf16_supported", lambda: True)
    tr = Trainer(_config(amp=False), tmp_path / "run", device="cpu")
    assert tr.amp is False
    assert _conv_dtypes(tr, tr.train_step) == {torch.float32}


def test_bfloat16_training_stays_close_to_float32(tmp_path, monkeypatch):
    """The same batches (same seed): the bf16 losses follow the float32 ones to about bf16's precision."""
    for module in (trainer_module, validation_module):
        monkeypatch.setattr(module, "cpu_bf16_supported", lambda: True)
    a = Trainer(_config(amp=False), tmp_path / "a", device="cpu")
    b = Trainer(_config(), tmp_path / "b", device="cpu")
    assert not a.amp and b.amp
    la, lb = a.train_step(), b.train_step()
    assert not torch.equal(la, lb)  # bfloat16 arithmetic really ran
    torch.testing.assert_close(lb, la, rtol=0.05, atol=0.05)
