"""Training loop review: resume continues exactly, counts survive a resume, schedules reach their ends (tiny models)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_TRAIN

from plexloc.config import TrainConfig
from plexloc.train import Trainer

TIMING = ("elapsed_s", "samples_per_s")  # wall-clock columns: differ between any two runs


def tiny_config(**training) -> TrainConfig:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TRAIN.items()}
    d["training"].update(training)
    return TrainConfig.model_validate(d)


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path):
    """12 steps in one call and 6 + --resume 6 give the same weights, optimizer state and log rows: the checkpoint
    keeps the sample stream's position (a resumed run used to draw a fresh stream seeded by the step, and its
    weights differed by 2e-3 after 6 more steps)."""
    cfg = tiny_config()
    whole = Trainer(cfg, tmp_path / "whole")
    whole.run(steps=12)
    cut = Trainer(cfg, tmp_path / "cut")
    cut.run(steps=6)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True)
    resumed.run(steps=12)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for sa, sb in zip(whole.optimizer.state.values(), resumed.optimizer.state.values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert [r["step"] for r in resumed.rows] == [r["step"] for r in whole.rows] == [3, 6, 9, 12]
    for ra, rb in zip(whole.rows, resumed.rows):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k not in TIMING:
                assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), (ra["step"], k, ra[k], rb[k])


def test_skipped_steps_count_over_a_resume(tmp_path):
    """skipped_steps counts the non-finite batches "so far" (log_columns): a resumed run goes on from the checkpoint's
    count (it restarted at 0, and the log lost the batch skipped before the resume)."""
    tr = Trainer(tiny_config(), tmp_path / "run")
    real, calls = tr.generator, {"n": 0}

    def poisoned():
        batch = real()
        calls["n"] += 1
        if calls["n"] == 2:
            batch.frames[...] = float("nan")
        return batch

    tr.generator = poisoned
    tr.run(steps=3)
    assert tr.rows[-1]["skipped_steps"] == 1
    resumed = Trainer(tiny_config(), tmp_path / "run", resume=True)
    resumed.run(steps=6)
    assert [r["skipped_steps"] for r in resumed.rows] == [1, 1]
