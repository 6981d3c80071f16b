"""Review of the weights' moving average (``training.ema_steps``, commit ae73960): the callers of a Trainer that want
the network a training produces get the average, not the last step's weights."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def test_throughput_fits_with_the_network_a_training_saves(monkeypatch):
    """bench/throughput.py --fit-train-s S fits with "a network trained here for S s": the network that training
    validates and saves in model.pt (the weights' average), not the last step's weights (what it returned after
    ae73960, a network no training run hands out)."""
    monkeypatch.syspath_prepend(str(BENCH))
    throughput = importlib.import_module("throughput")
    made = []

    class Recorded(throughput.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(throughput, "Trainer", Recorded)
    net, _, about = throughput.fit_network(_config(ema_steps=20), torch.device("cpu"), train_s=0.3)
    (tr,) = made
    assert about["fit_model_step"] == tr.step >= 1
    saved = tr.evaluated.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    last = tr.model.state_dict()
    assert any(not torch.equal(v, last[k]) for k, v in net.state_dict().items())
    assert not net.training
