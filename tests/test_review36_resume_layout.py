"""A checkpoint resumed in another memory format than it was saved in (review of session 36).

``training.channels_last: None`` (the default) trains channels-last on a oneDNN CPU and NCHW on CUDA, so a CPU
run resumed on a GPU (or a GPU run resumed on the CPU) loads channels-last moments for NCHW weights or the reverse.
The fused AdamW kernel walks weights and moments in memory order: with mismatched layouts every weight was
updated with another weight's moments (max weight difference 2e-3 after 3 resumed steps of the tiny network,
against 1.5e-8 with matching layouts)."""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.train import Trainer
from plexloc.train import trainer as trainer_module


def _config() -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(amp=False, ema_steps=0)  # float32: NCHW and NHWC convolutions agree to rounding
    return TrainConfig.model_validate(d)


@pytest.mark.parametrize("saved_channels_last", [True, False])
def test_resume_in_the_other_layout_continues_as_in_the_same_one(tmp_path, monkeypatch, saved_channels_last):
    cfg = _config()
    monkeypatch.setattr(trainer_module, "cpu_channels_last_supported", lambda: saved_channels_last)
    tr = Trainer(cfg, tmp_path / "a", device="cpu")
    assert tr.channels_last is saved_channels_last
    tr.run(steps=3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    same = Trainer(cfg, tmp_path / "a", device="cpu", resume=True)
    same.run(steps=6)
    monkeypatch.setattr(trainer_module, "cpu_channels_last_supported", lambda: not saved_channels_last)
    other = Trainer(cfg, tmp_path / "b", device="cpu", resume=True)  # as a GPU (NCHW) resumes a CPU run, or back
    assert other.channels_last is not saved_channels_last and other.model.is_channels_last is not saved_channels_last
    for q in other.model.parameters():  # the moments follow their weights' layout
        for v in other.optimizer.state[q].values():
            if torch.is_tensor(v) and v.shape == q.shape:
                assert v.stride() == q.stride()
    other.run(steps=6)
    with torch.no_grad():
        diff = max(float((p - q).abs().max()) for p, q in zip(same.model.parameters(), other.model.parameters()))
    assert diff < 1e-5, diff  # mismatched moments: 2e-3 (the learning rate's order)
